//! The configuration model: what the user edits (TOML today, the web UI later).

use compact_str::CompactString;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::scaling::{Conversion, Scaling};
use crate::value::DataType;

/// The whole configuration of one appliance: its place in the ISA-95 hierarchy, its devices
/// and their tags. One appliance serves one site of one enterprise.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Model {
    pub namespace: Namespace,
    #[serde(default)]
    pub sparkplug: SparkplugIds,
    /// Plant MQTT brokers that get their own Sparkplug session besides the embedded broker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub northbound: Vec<crate::northbound::Northbound>,
    /// Named poll periods that tags can choose instead of their device's period.
    #[serde(default, rename = "scan_class", skip_serializing_if = "Vec::is_empty")]
    pub scan_classes: Vec<ScanClass>,
    #[serde(default, rename = "area")]
    pub areas: Vec<Area>,
    #[serde(default, rename = "device")]
    pub devices: Vec<Device>,
    #[serde(default, rename = "tag")]
    pub tags: Vec<Tag>,
}

/// The two top levels of ISA-95 that every topic starts with.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Namespace {
    pub enterprise: String,
    pub site: String,
}

/// The Sparkplug identity of this appliance's Edge Node.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SparkplugIds {
    /// Sparkplug group; when absent the site name is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    pub edge_node_id: String,
    /// The SCADA host whose STATE gates this node's births on the embedded broker (spec
    /// §5.5, Primary Host): births wait until it says it is online, and the session ends
    /// when it goes offline. `None`: publish as soon as connected. A `primary_host_id` in
    /// the configuration file (or `demo --primary-host-id`) takes precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_host_id: Option<String>,
}

impl Default for SparkplugIds {
    fn default() -> Self {
        SparkplugIds {
            group_id: None,
            edge_node_id: "sparkedge".to_owned(),
            primary_host_id: None,
        }
    }
}

/// A named poll period, e.g. `fast` at 100 ms for a few control values while the rest of a
/// device is read every second. Each device reads its tags of one scan class together, on
/// that class's period.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScanClass {
    pub name: String,
    pub period_ms: u32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Area {
    pub name: String,
    #[serde(default, rename = "line")]
    pub lines: Vec<Line>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Line {
    pub name: String,
    #[serde(default)]
    pub cells: Vec<String>,
}

/// A connection to one PLC (or one simulated PLC).
///
/// No `deny_unknown_fields` here: serde does not support it together with `flatten` (it
/// rejects the `driver` tag itself). Every key that is neither `name` nor `enabled` goes to
/// [`DriverConfig`], which denies unknown keys, so a misspelt key is still an error.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Device {
    pub name: String,
    #[serde(default = "enabled_default", skip_serializing_if = "is_true")]
    pub enabled: bool,
    #[serde(flatten)]
    pub driver: DriverConfig,
}

fn enabled_default() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// Protocol-specific connection settings, selected by `driver = "..."`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "driver", rename_all = "kebab-case", deny_unknown_fields)]
pub enum DriverConfig {
    /// The built-in simulated PLC: every tag's address names a signal (see [`SimSignal`]).
    Simulator {
        /// How often the simulated PLC is read, in milliseconds.
        #[serde(default = "sim_period_default")]
        period_ms: u32,
    },
    /// A Modbus TCP server (PLC or gateway), one unit id per device.
    ModbusTcp {
        host: String,
        #[serde(default = "modbus_port_default")]
        port: u16,
        /// Unit (slave) id; 1 unless a gateway routes to several.
        #[serde(default = "modbus_unit_default")]
        unit: u8,
        /// How often every tag is read, in milliseconds.
        #[serde(default = "sim_period_default")]
        period_ms: u32,
        /// How long one request may take before it counts as failed.
        #[serde(default = "modbus_timeout_default")]
        timeout_ms: u32,
        /// Failed poll cycles in a row before the device is declared offline (DDEATH).
        #[serde(default = "modbus_offline_after_default")]
        offline_after: u32,
        /// Unused registers a single read may span to save a request.
        #[serde(default = "modbus_max_gap_default")]
        max_gap: u16,
    },
    /// A Modbus RTU device on a serial line (RS-485/RS-232). Devices naming the same `path`
    /// share one port: their requests take turns on the line, so they must agree on its
    /// settings and each needs its own unit id.
    ModbusRtu {
        /// The serial device, e.g. `/dev/ttyUSB0` or `/dev/serial/by-id/...`.
        path: String,
        #[serde(default = "modbus_baud_default")]
        baud: u32,
        /// `even` by default, as the Modbus serial line specification asks.
        #[serde(default)]
        parity: Parity,
        /// Always 8: an RTU frame is made of 8-bit bytes. Written out so a line's settings
        /// read in full.
        #[serde(default = "modbus_data_bits_default")]
        data_bits: u8,
        #[serde(default = "modbus_stop_bits_default")]
        stop_bits: u8,
        /// Unit (slave) id of this device on the line, 1 to 247.
        #[serde(default = "modbus_unit_default")]
        unit: u8,
        /// Silence on the line between a reply and the next request, in microseconds. When
        /// absent: 3.5 character times at the line's baud rate (1750 µs above 19200 baud), the
        /// minimum the Modbus serial line specification requires. Slow devices may need more.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inter_frame_delay_us: Option<u32>,
        #[serde(default = "sim_period_default")]
        period_ms: u32,
        #[serde(default = "modbus_timeout_default")]
        timeout_ms: u32,
        #[serde(default = "modbus_offline_after_default")]
        offline_after: u32,
        #[serde(default = "modbus_max_gap_default")]
        max_gap: u16,
    },
    /// A Modbus RTU device behind a serial gateway that passes RTU frames through a TCP
    /// stream (RTU over TCP, "transparent" gateway mode). Devices naming the same gateway
    /// share one connection and take turns, like devices on one serial line.
    ModbusRtuTcp {
        host: String,
        #[serde(default = "modbus_port_default")]
        port: u16,
        #[serde(default = "modbus_unit_default")]
        unit: u8,
        #[serde(default = "sim_period_default")]
        period_ms: u32,
        #[serde(default = "modbus_timeout_default")]
        timeout_ms: u32,
        #[serde(default = "modbus_offline_after_default")]
        offline_after: u32,
        #[serde(default = "modbus_max_gap_default")]
        max_gap: u16,
    },
    /// An OPC UA server. Tags are addressed by NodeId (see [`crate::opcua`]) and read by
    /// subscription, or by polled reads for tags of a scan class (and every tag when
    /// `acquisition = "poll"`).
    OpcUa {
        /// `opc.tcp://host:port[/path]`. The appliance always connects to this address, even
        /// when the server announces another one (NAT, containers).
        endpoint: String,
        #[serde(default)]
        security_policy: OpcUaSecurityPolicy,
        /// `sign-and-encrypt` when absent and the policy is not `none`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        security_mode: Option<OpcUaSecurityMode>,
        #[serde(default)]
        identity: OpcUaIdentity,
        /// With `identity = "username"`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        username: Option<String>,
        /// With `identity = "username"`. Kept in the store and in exports like every other
        /// setting: protect both as the credentials they contain.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<String>,
        /// With `identity = "certificate"`: the user certificate (DER or PEM) and its private
        /// key (PEM), as paths on the appliance.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_certificate: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_private_key: Option<String>,
        /// `subscription` (the default): the server reports changes; tags with a scan class
        /// are still polled at its period. `poll`: every tag is read at its period, for
        /// servers whose subscriptions cannot be relied on.
        #[serde(default, skip_serializing_if = "OpcUaAcquisition::is_default")]
        acquisition: OpcUaAcquisition,
        /// Publishing interval of the subscription (and poll period), in milliseconds.
        #[serde(default = "sim_period_default")]
        period_ms: u32,
        /// How often the server samples each node, in milliseconds; the period when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sampling_interval_ms: Option<u32>,
        /// Changes the server keeps per item between two publishes; 1 keeps only the
        /// latest, which is what a last-value sink needs.
        #[serde(default = "opcua_queue_size_default")]
        queue_size: u32,
        /// How long one request (connect, read, write, subscribe) may take.
        #[serde(default = "opcua_timeout_default")]
        timeout_ms: u32,
    },
}

/// OPC UA security policy of the connection (OPC UA Part 7 profiles).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OpcUaSecurityPolicy {
    /// No signing, no encryption: for a trusted network or a first connection test.
    #[default]
    None,
    #[serde(rename = "basic256sha256")]
    Basic256Sha256,
    #[serde(rename = "aes128-sha256-rsaoaep")]
    Aes128Sha256RsaOaep,
    #[serde(rename = "aes256-sha256-rsapss")]
    Aes256Sha256RsaPss,
}

impl OpcUaSecurityPolicy {
    pub const ALL: [OpcUaSecurityPolicy; 4] = [
        OpcUaSecurityPolicy::None,
        OpcUaSecurityPolicy::Basic256Sha256,
        OpcUaSecurityPolicy::Aes128Sha256RsaOaep,
        OpcUaSecurityPolicy::Aes256Sha256RsaPss,
    ];

    /// The name in the model (`basic256sha256`).
    pub fn as_str(self) -> &'static str {
        match self {
            OpcUaSecurityPolicy::None => "none",
            OpcUaSecurityPolicy::Basic256Sha256 => "basic256sha256",
            OpcUaSecurityPolicy::Aes128Sha256RsaOaep => "aes128-sha256-rsaoaep",
            OpcUaSecurityPolicy::Aes256Sha256RsaPss => "aes256-sha256-rsapss",
        }
    }
}

/// What OPC UA security does to each message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum OpcUaSecurityMode {
    None,
    Sign,
    SignAndEncrypt,
}

impl OpcUaSecurityMode {
    pub fn as_str(self) -> &'static str {
        match self {
            OpcUaSecurityMode::None => "none",
            OpcUaSecurityMode::Sign => "sign",
            OpcUaSecurityMode::SignAndEncrypt => "sign-and-encrypt",
        }
    }

    /// The mode a device uses: the one configured, else what its policy implies.
    pub fn effective(
        mode: Option<OpcUaSecurityMode>,
        policy: OpcUaSecurityPolicy,
    ) -> OpcUaSecurityMode {
        mode.unwrap_or(match policy {
            OpcUaSecurityPolicy::None => OpcUaSecurityMode::None,
            _ => OpcUaSecurityMode::SignAndEncrypt,
        })
    }
}

/// Who the appliance says it is to an OPC UA server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OpcUaIdentity {
    #[default]
    Anonymous,
    /// `username` and `password`.
    Username,
    /// An X.509 user certificate: `user_certificate` and `user_private_key`.
    Certificate,
}

impl OpcUaIdentity {
    pub fn as_str(self) -> &'static str {
        match self {
            OpcUaIdentity::Anonymous => "anonymous",
            OpcUaIdentity::Username => "username",
            OpcUaIdentity::Certificate => "certificate",
        }
    }
}

/// How an OPC UA device's tags without a scan class are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OpcUaAcquisition {
    #[default]
    Subscription,
    Poll,
}

impl OpcUaAcquisition {
    fn is_default(&self) -> bool {
        *self == OpcUaAcquisition::Subscription
    }
}

fn opcua_queue_size_default() -> u32 {
    1
}

fn opcua_timeout_default() -> u32 {
    5000
}

/// The settings every Modbus device has, whatever carries its frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModbusPolling {
    pub unit: u8,
    pub period_ms: u32,
    pub timeout_ms: u32,
    pub offline_after: u32,
    pub max_gap: u16,
}

impl DriverConfig {
    /// An OPC UA device at `endpoint` with every other setting at its default: security
    /// policy none, anonymous, subscription at 1 s.
    pub fn opc_ua(endpoint: impl Into<String>) -> DriverConfig {
        DriverConfig::OpcUa {
            endpoint: endpoint.into(),
            security_policy: OpcUaSecurityPolicy::None,
            security_mode: None,
            identity: OpcUaIdentity::Anonymous,
            username: None,
            password: None,
            user_certificate: None,
            user_private_key: None,
            acquisition: OpcUaAcquisition::Subscription,
            period_ms: sim_period_default(),
            sampling_interval_ms: None,
            queue_size: opcua_queue_size_default(),
            timeout_ms: opcua_timeout_default(),
        }
    }

    /// How often the device is read, in milliseconds.
    pub fn period_ms(&self) -> u32 {
        match self {
            DriverConfig::Simulator { period_ms } | DriverConfig::OpcUa { period_ms, .. } => {
                *period_ms
            }
            _ => self.modbus().map_or(0, |m| m.period_ms),
        }
    }

    /// The Modbus settings shared by TCP, RTU and RTU over TCP; `None` for other drivers.
    pub fn modbus(&self) -> Option<ModbusPolling> {
        match self {
            DriverConfig::Simulator { .. } | DriverConfig::OpcUa { .. } => None,
            DriverConfig::ModbusTcp {
                unit,
                period_ms,
                timeout_ms,
                offline_after,
                max_gap,
                ..
            }
            | DriverConfig::ModbusRtu {
                unit,
                period_ms,
                timeout_ms,
                offline_after,
                max_gap,
                ..
            }
            | DriverConfig::ModbusRtuTcp {
                unit,
                period_ms,
                timeout_ms,
                offline_after,
                max_gap,
                ..
            } => Some(ModbusPolling {
                unit: *unit,
                period_ms: *period_ms,
                timeout_ms: *timeout_ms,
                offline_after: *offline_after,
                max_gap: *max_gap,
            }),
        }
    }

    pub fn is_modbus(&self) -> bool {
        self.modbus().is_some()
    }
}

/// Parity of a serial line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Parity {
    None,
    #[default]
    Even,
    Odd,
}

impl Parity {
    pub fn as_str(self) -> &'static str {
        match self {
            Parity::None => "none",
            Parity::Even => "even",
            Parity::Odd => "odd",
        }
    }
}

fn modbus_baud_default() -> u32 {
    19200
}
fn modbus_data_bits_default() -> u8 {
    8
}
fn modbus_stop_bits_default() -> u8 {
    1
}
fn modbus_port_default() -> u16 {
    502
}
fn modbus_unit_default() -> u8 {
    1
}
fn modbus_timeout_default() -> u32 {
    1000
}
fn modbus_offline_after_default() -> u32 {
    3
}
fn modbus_max_gap_default() -> u16 {
    16
}

fn sim_period_default() -> u32 {
    1000
}

/// One value in a PLC, placed in the namespace.
///
/// In files the tag is one flat table ([`TagFile`]); in memory the rarely used settings sit
/// behind one pointer ([`Acquisition`]), and the four strings every tag has are stored inline
/// when short (up to 24 bytes, [`CompactString`]), because a 100,000-tag model is held in
/// memory for as long as the appliance runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "TagFile", into = "TagFile")]
pub struct Tag {
    /// Name of the [`Device`] it is read from.
    pub device: CompactString,
    /// Where it sits in the hierarchy below the site: `area/line` or `area/line/cell`.
    pub location: CompactString,
    /// The last level of its topic and metric name.
    pub name: CompactString,
    pub datatype: DataType,
    /// Where the value lives in the device; the syntax belongs to the device's driver.
    pub address: CompactString,
    pub unit: Option<String>,
    pub description: Option<String>,
    pub writable: bool,
    /// Modbus: byte/word order of a multi-register value (`ABCD` when absent).
    pub byte_order: Option<String>,
    /// Modbus: length in characters of a string tag.
    pub length: Option<u16>,
    /// Scan class, register type, scaling, engineering range and deadband; `None` when all
    /// are unset.
    pub acquisition: Option<Box<Acquisition>>,
}

/// How a tag is read and reported beyond its address: when (scan class), what the register
/// holds and how that becomes the value (register type, scaling), and when a change is worth
/// reporting (deadband).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Acquisition {
    /// Name of the [`ScanClass`] whose period this tag is read at, instead of its device's.
    pub scan_class: Option<String>,
    /// Modbus: the type the register holds, when it is not the tag's `datatype` (an `int16`
    /// register under a scaled `float32` tag). Register count, byte order and the range a
    /// write must fit follow from it.
    pub raw_type: Option<DataType>,
    /// Modbus scaling `value = gain · raw + offset` (`gain` 1 and `offset` 0 when absent).
    pub gain: Option<f64>,
    pub offset: Option<f64>,
    /// Modbus scaling by ranges: `raw_low..raw_high` maps onto `eng_low..eng_high`.
    pub raw_low: Option<f64>,
    pub raw_high: Option<f64>,
    /// The engineering range: the target of range scaling, sent to Sparkplug hosts as
    /// `engLow`/`engHigh`, and what a percent deadband is a percentage of.
    pub eng_low: Option<f64>,
    pub eng_high: Option<f64>,
    /// A good value is reported only when it moved more than this from the last reported
    /// one (engineering units).
    pub deadband: Option<f64>,
    /// The same, as a percentage of the engineering range.
    pub deadband_percent: Option<f64>,
}

impl Acquisition {
    const NONE: Acquisition = Acquisition {
        scan_class: None,
        raw_type: None,
        gain: None,
        offset: None,
        raw_low: None,
        raw_high: None,
        eng_low: None,
        eng_high: None,
        deadband: None,
        deadband_percent: None,
    };

    /// Boxed, or `None` when nothing is set (so equal tags compare equal).
    pub fn boxed(self) -> Option<Box<Acquisition>> {
        (self != Acquisition::NONE).then(|| Box::new(self))
    }
}

/// A tag's schema is that of its file form, which is what serde reads and writes.
impl JsonSchema for Tag {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Tag".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        TagFile::json_schema(generator)
    }
}

/// The file form of a [`Tag`]: one flat table, every setting a key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct TagFile {
    device: String,
    location: String,
    name: String,
    datatype: DataType,
    address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    writable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    byte_order: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    length: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    raw_type: Option<DataType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gain: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    offset: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    raw_low: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    raw_high: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    eng_low: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    eng_high: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deadband: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    deadband_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scan_class: Option<String>,
}

impl From<TagFile> for Tag {
    fn from(f: TagFile) -> Tag {
        Tag {
            device: f.device.into(),
            location: f.location.into(),
            name: f.name.into(),
            datatype: f.datatype,
            address: f.address.into(),
            unit: f.unit,
            description: f.description,
            writable: f.writable,
            byte_order: f.byte_order,
            length: f.length,
            acquisition: Acquisition {
                scan_class: f.scan_class,
                raw_type: f.raw_type,
                gain: f.gain,
                offset: f.offset,
                raw_low: f.raw_low,
                raw_high: f.raw_high,
                eng_low: f.eng_low,
                eng_high: f.eng_high,
                deadband: f.deadband,
                deadband_percent: f.deadband_percent,
            }
            .boxed(),
        }
    }
}

impl From<Tag> for TagFile {
    fn from(t: Tag) -> TagFile {
        let c = t.acquisition.map(|c| *c).unwrap_or_default();
        TagFile {
            device: t.device.into(),
            location: t.location.into(),
            name: t.name.into(),
            datatype: t.datatype,
            address: t.address.into(),
            unit: t.unit,
            description: t.description,
            writable: t.writable,
            byte_order: t.byte_order,
            length: t.length,
            raw_type: c.raw_type,
            gain: c.gain,
            offset: c.offset,
            raw_low: c.raw_low,
            raw_high: c.raw_high,
            eng_low: c.eng_low,
            eng_high: c.eng_high,
            deadband: c.deadband,
            deadband_percent: c.deadband_percent,
            scan_class: c.scan_class,
        }
    }
}

impl Tag {
    /// A tag with only the required fields set.
    pub fn new(
        device: impl Into<CompactString>,
        location: impl Into<CompactString>,
        name: impl Into<CompactString>,
        datatype: DataType,
        address: impl Into<CompactString>,
    ) -> Tag {
        Tag {
            device: device.into(),
            location: location.into(),
            name: name.into(),
            datatype,
            address: address.into(),
            unit: None,
            description: None,
            writable: false,
            byte_order: None,
            length: None,
            acquisition: None,
        }
    }

    /// Its acquisition settings (all unset when it has none).
    pub fn acquisition(&self) -> &Acquisition {
        self.acquisition.as_deref().unwrap_or(&Acquisition::NONE)
    }

    /// Its acquisition settings, to change them.
    pub fn acquisition_mut(&mut self) -> &mut Acquisition {
        self.acquisition.get_or_insert_with(Default::default)
    }

    /// The name of its scan class, if it has one.
    pub fn scan_class(&self) -> Option<&str> {
        self.acquisition().scan_class.as_deref()
    }

    /// The type in the register: `raw_type`, or the tag's own.
    pub fn raw_type(&self) -> DataType {
        self.acquisition().raw_type.unwrap_or(self.datatype)
    }

    /// How the register value becomes the tag value (on a validated model).
    pub fn conversion(&self) -> Conversion {
        let c = self.acquisition();
        let scaling = match (c.raw_low, c.raw_high, c.eng_low, c.eng_high) {
            (Some(rl), Some(rh), Some(el), Some(eh)) => {
                Some(Scaling::from_ranges((rl, rh), (el, eh)))
            }
            _ if c.gain.is_some() || c.offset.is_some() => Some(Scaling {
                gain: c.gain.unwrap_or(1.0),
                offset: c.offset.unwrap_or(0.0),
            }),
            _ => None,
        };
        Conversion {
            raw_type: self.raw_type(),
            datatype: self.datatype,
            scaling,
        }
    }

    /// The engineering range, lowest first, when both ends are given.
    pub fn eng_range(&self) -> Option<(f64, f64)> {
        let c = self.acquisition();
        let (a, b) = (c.eng_low?, c.eng_high?);
        Some((a.min(b), a.max(b)))
    }

    /// The deadband in engineering units: `deadband`, or `deadband_percent` of the
    /// engineering range.
    pub fn deadband_abs(&self) -> Option<f64> {
        let c = self.acquisition();
        if let Some(d) = c.deadband {
            return Some(d);
        }
        let (low, high) = self.eng_range()?;
        Some(c.deadband_percent? / 100.0 * (high - low))
    }
}

/// The signals the simulator driver can produce; a simulator tag's `address` names one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SimSignal {
    /// A sine wave with a 60 s period between 0 and 100 (float types).
    Sine,
    /// Climbs by one each period and wraps at 1000 (integer and float types).
    Ramp,
    /// Flips every period (bool).
    Toggle,
    /// Counts periods since start (integer types).
    Counter,
    /// Cycles through a few machine states (string).
    Text,
    /// Holds what was last written to it (any type); the writable signal.
    Memory,
}

impl SimSignal {
    pub const ALL: [SimSignal; 6] = [
        SimSignal::Sine,
        SimSignal::Ramp,
        SimSignal::Toggle,
        SimSignal::Counter,
        SimSignal::Text,
        SimSignal::Memory,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SimSignal::Sine => "sine",
            SimSignal::Ramp => "ramp",
            SimSignal::Toggle => "toggle",
            SimSignal::Counter => "counter",
            SimSignal::Text => "text",
            SimSignal::Memory => "memory",
        }
    }

    /// Whether this signal can produce values of `datatype`.
    pub fn supports(self, datatype: DataType) -> bool {
        match self {
            SimSignal::Sine => datatype.is_float(),
            SimSignal::Ramp => datatype.is_float() || datatype.is_integer(),
            SimSignal::Toggle => datatype == DataType::Bool,
            SimSignal::Counter => datatype.is_integer(),
            SimSignal::Text => datatype == DataType::String,
            SimSignal::Memory => true,
        }
    }
}

impl std::str::FromStr for SimSignal {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SimSignal::ALL
            .into_iter()
            .find(|sig| sig.as_str() == s)
            .ok_or_else(|| {
                let allowed: Vec<&str> = SimSignal::ALL.iter().map(|s| s.as_str()).collect();
                format!(
                    "unknown simulator signal {s:?}; allowed: {}",
                    allowed.join(", ")
                )
            })
    }
}
