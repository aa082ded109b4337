//! What the web needs from the devices themselves, beyond the model: connect to one as a form
//! describes it, read tags once, read raw Modbus registers, browse an OPC UA server, write a
//! tag's value. The appliance implements [`DeviceAccess`] with its drivers (this crate
//! depends on the model only, as with [`ModelSource`](crate::ModelSource)); the REST
//! endpoints are in `device_api`.
//!
//! Every call talks to plant equipment over a network or a serial line, so [`Devices`] holds
//! the implementation together with a bound on how many such calls run at once: a browser
//! (or a script) clicking "test" in a loop gets 503 rather than a pile of half-open
//! connections to a PLC.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uns_model::{
    ByteOrder, Conversion, DataType, Device, NodeAddress, Quality, RegisterKind, Tag, TagId, Value,
};

/// The answer of a device call: `Err` carries the text to show, as the device or the
/// transport gave it (a refused connection, a Modbus exception, an OPC UA status code, an
/// untrusted certificate with the command that trusts it).
pub type DeviceCall<'a, T> = Pin<Box<dyn Future<Output = Result<T, String>> + Send + 'a>>;

/// Access to the devices, saved or only described by a form. Each call is bounded in time by
/// the implementation (the device's timeout per request); the endpoints bound it again.
pub trait DeviceAccess: Send + Sync + fmt::Debug {
    /// Connects to `device` and says what happened ("unit 1 answered", "session opened with
    /// … (security policy …)").
    fn test_connection(&self, device: Device) -> DeviceCall<'_, String>;

    /// Reads each of `tags` of `device` once; one reading per tag, in order. `Err` when the
    /// device cannot be reached at all.
    fn test_read(&self, device: Device, tags: Vec<Tag>) -> DeviceCall<'_, Vec<TagReading>>;

    /// Reads the registers or bits `request` names from a Modbus device, and decodes the
    /// registers under every byte order when it asks for a type.
    fn modbus_preview(
        &self,
        device: Device,
        request: PreviewRequest,
    ) -> DeviceCall<'_, RegisterPreview>;

    /// The children of `node` (the Objects folder when `None`) on an OPC UA device's server,
    /// at most `limit`.
    fn browse(
        &self,
        device: Device,
        node: Option<NodeAddress>,
        limit: usize,
    ) -> DeviceCall<'_, BrowseLevel>;

    /// Writes `value` to tag `tag` of the running model through the path Sparkplug commands
    /// take, and answers once the device confirmed it (the value read back then arrives as a
    /// normal sample) or refused it (`Err` with the device's reason).
    ///
    /// `tag` is a number in the model of `generation` (the count of
    /// [`LiveValues::model`](crate::LiveValues::model) the caller looked it up under). A
    /// model applied since (an import by another process) may have renumbered the tags: the
    /// write then goes to the same tag under its new number, or is refused, never to the tag
    /// that now has the old number.
    fn write(&self, tag: TagId, generation: u64, value: Value) -> DeviceCall<'_, ()>;
}

/// One tag as read once.
#[derive(Clone, Debug, PartialEq)]
pub struct TagReading {
    pub value: Option<Value>,
    pub quality: Quality,
    pub timestamp_ms: u64,
    /// Why there is no value, or what is uncertain about it.
    pub error: Option<String>,
}

/// A register preview to make: one read, and optionally a value to decode from its start.
#[derive(Clone, Debug, PartialEq)]
pub struct PreviewRequest {
    pub kind: RegisterKind,
    pub start: u16,
    pub count: u16,
    pub decode: Option<Decode>,
}

/// How to decode the registers: the register type, scaling and tag type of `conversion`;
/// `length` characters for a string.
#[derive(Clone, Debug, PartialEq)]
pub struct Decode {
    pub conversion: Conversion,
    pub length: u16,
}

/// What one Modbus read returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegisterData {
    Words(Vec<u16>),
    Bits(Vec<bool>),
}

/// Raw registers, and the value at their start under each byte order.
#[derive(Clone, Debug, PartialEq)]
pub struct RegisterPreview {
    pub data: RegisterData,
    /// Empty when no decoding was asked for.
    pub orders: Vec<DecodedOrder>,
}

/// The value under one byte order.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedOrder {
    pub order: ByteOrder,
    /// The order's name for this many registers (`CDAB`, `GHEFCDAB`).
    pub name: String,
    /// The register type's value.
    pub raw: Result<Value, String>,
    /// The tag's value (scaled, converted).
    pub value: Result<Value, String>,
}

/// One level of an OPC UA server's address space.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BrowseLevel {
    pub nodes: Vec<BrowsedNode>,
    /// More children were left on the server (beyond the limit).
    pub truncated: bool,
}

/// What a node is, as a tree shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeClass {
    Folder,
    Object,
    Variable,
}

impl NodeClass {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeClass::Folder => "folder",
            NodeClass::Object => "object",
            NodeClass::Variable => "variable",
        }
    }
}

/// One child of a browsed node.
#[derive(Clone, Debug, PartialEq)]
pub struct BrowsedNode {
    /// As a tag's `address` takes it (`nsu=urn:plc;s=Line1.Speed`).
    pub address: String,
    pub display_name: String,
    pub browse_name: String,
    pub node_class: NodeClass,
    pub description: Option<String>,
    /// Worth an expander (see the browse of `southbound` for why this is a guess).
    pub has_children: bool,
    /// For variables: the OPC UA type's name, the tag type it maps to, access.
    pub opcua_type: Option<String>,
    pub datatype: Option<DataType>,
    pub value_rank: Option<i32>,
    pub readable: bool,
    pub writable: bool,
}

/// Probes that may run at once (test, read, preview, browse); more get 503.
pub const CONCURRENT_PROBES: usize = 4;

/// The devices as handlers reach them: the access and the bound on concurrent probes.
#[derive(Clone, Debug)]
pub struct Devices {
    access: Arc<dyn DeviceAccess>,
    slots: Arc<Semaphore>,
}

impl Devices {
    pub fn new(access: Arc<dyn DeviceAccess>) -> Devices {
        Devices {
            access,
            slots: Arc::new(Semaphore::new(CONCURRENT_PROBES)),
        }
    }

    /// No devices to reach (tests of the model API, tools): every call says so.
    pub fn unavailable() -> Devices {
        Devices::new(Arc::new(Unavailable))
    }

    pub(crate) fn access(&self) -> &dyn DeviceAccess {
        &*self.access
    }

    /// A slot for one probe, held until it is dropped; `None` when all are taken.
    pub(crate) fn slot(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }
}

/// [`DeviceAccess`] where there are no devices.
#[derive(Debug)]
struct Unavailable;

const UNAVAILABLE: &str = "this server has no access to devices";

fn unavailable<'a, T: Send + 'a>() -> DeviceCall<'a, T> {
    Box::pin(async { Err(UNAVAILABLE.to_owned()) })
}

impl DeviceAccess for Unavailable {
    fn test_connection(&self, _: Device) -> DeviceCall<'_, String> {
        unavailable()
    }
    fn test_read(&self, _: Device, _: Vec<Tag>) -> DeviceCall<'_, Vec<TagReading>> {
        unavailable()
    }
    fn modbus_preview(&self, _: Device, _: PreviewRequest) -> DeviceCall<'_, RegisterPreview> {
        unavailable()
    }
    fn browse(&self, _: Device, _: Option<NodeAddress>, _: usize) -> DeviceCall<'_, BrowseLevel> {
        unavailable()
    }
    fn write(&self, _: TagId, _: u64, _: Value) -> DeviceCall<'_, ()> {
        unavailable()
    }
}
