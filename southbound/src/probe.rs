//! One-off contact with a device, for the people configuring it: test a connection, read a
//! few tags once, read raw Modbus registers and decode them under every byte order, list one
//! level of an OPC UA server. The device and its tags may be saved or only typed into a form.
//!
//! A probe is built from the drivers' own parts — the Modbus line transport ([`Link`]) and
//! tag decoding ([`ModbusTag`], with its scaling), the OPC UA connection ([`Connection`],
//! with its security and its error hints) and value conversion ([`convert`]) — but not from
//! their loops, because a driver is made to keep running, not to explain itself: it reports a
//! bad tag as bad quality and keeps the reason for its log, declares a Modbus device offline
//! only after `offline_after` failed cycles with back-off in between, and keeps its OPC UA
//! session until it is dropped (without closing it on the server). A probe asks each
//! question once, answers each tag with its value or its reason (the Modbus exception, the
//! OPC UA status code, the conversion error), closes what it opened and bounds every wait:
//! each request by the device's timeout, the whole call by [`time_limit`].
//!
//! Only the built-in simulator is probed by running its driver ([`crate::spawn`]): it has no
//! parts to borrow, and nothing to connect to.

use std::time::Duration;

use opcua::types::{AttributeId, DataValue, ReadValueId, TimestampsToReturn, VariableId, Variant};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout, timeout_at};
use uns_model::opcua::NodeAddress;
use uns_model::{
    ByteOrder, Conversion, DataType, Device, DriverConfig, Quality, RegisterKind, Tag, TagId, Value,
};

use crate::modbus::codec::{self, CodecError};
use crate::modbus::driver::ModbusTag;
use crate::modbus::link::{Data, Failure, Link, Op};
use crate::opcua::browse::{self, BrowseError, BrowseOptions, Children};
use crate::opcua::connect::{Connection, Opened};
use crate::opcua::convert;
use crate::opcua::pki::Pki;
use crate::{Context, DeviceId, DriverEvent, now_ms};

/// Tags one [`read_tags`] reads at most: a form's worth, not a device's.
pub const MAX_TAGS: usize = 100;

/// The longest any probe may take, whatever the device's timeout says.
pub const MAX_TIME: Duration = Duration::from_secs(120);

/// How long a probe of `device` making `requests` requests may take: the device's timeout
/// for each request plus five for connecting (name lookup, connect; for OPC UA the
/// endpoints, the session, the namespace table) and closing, at most [`MAX_TIME`].
pub fn time_limit(device: &Device, requests: usize) -> Duration {
    let per_request = request_timeout(&device.driver);
    let n = u32::try_from(requests)
        .unwrap_or(u32::MAX)
        .saturating_add(5);
    per_request.saturating_mul(n).min(MAX_TIME)
}

/// The device's limit for one request.
fn request_timeout(driver: &DriverConfig) -> Duration {
    let ms = match driver {
        DriverConfig::OpcUa { timeout_ms, .. } => *timeout_ms,
        DriverConfig::Simulator { period_ms } => (*period_ms).max(1000),
        other => other.modbus().map_or(1000, |m| m.timeout_ms),
    };
    Duration::from_millis(u64::from(ms.max(1)))
}

/// Why a probe gave no answer.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// No connection or session: the text the transport or the server gave, with what to do
    /// when it is known (an untrusted certificate names its thumbprint and the command).
    #[error("{0}")]
    Unreachable(String),
    /// The device answered, and refused the request (a Modbus exception).
    #[error("{0}")]
    Refused(String),
    /// The request cannot be made of this device (a register preview of an OPC UA server,
    /// a count beyond what one Modbus read may carry).
    #[error("{0}")]
    Unsupported(String),
    #[error("{0}")]
    Browse(#[from] BrowseError),
    /// The whole probe outlasted [`time_limit`].
    #[error("no result within {} s", .0.as_secs())]
    TimeLimit(Duration),
}

/// One tag as read once.
#[derive(Clone, Debug, PartialEq)]
pub struct TagReading {
    /// `None` when the read failed; `error` says why.
    pub value: Option<Value>,
    pub quality: Quality,
    /// When the value was read (at the source for OPC UA when the server says).
    pub timestamp_ms: u64,
    /// Why there is no value, or what is uncertain about it.
    pub error: Option<String>,
}

impl TagReading {
    fn good(value: Value, timestamp_ms: u64) -> TagReading {
        TagReading {
            value: Some(value),
            quality: Quality::Good,
            timestamp_ms,
            error: None,
        }
    }

    fn bad(error: impl Into<String>) -> TagReading {
        TagReading {
            value: None,
            quality: Quality::Bad,
            timestamp_ms: now_ms(),
            error: Some(error.into()),
        }
    }
}

/// What one Modbus read returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Registers {
    /// Holding or input registers.
    Words(Vec<u16>),
    /// Coils or discrete inputs.
    Bits(Vec<bool>),
}

/// Runs `probe` within `limit`.
async fn bounded<T>(
    limit: Duration,
    probe: impl Future<Output = Result<T, ProbeError>>,
) -> Result<T, ProbeError> {
    timeout(limit, probe)
        .await
        .unwrap_or(Err(ProbeError::TimeLimit(limit)))
}

// ---- connection test ----

/// Connects to `device` and proves it answers; returns what happened. A Modbus device is
/// asked for holding register 0 (a TCP connection alone proves nothing: a gateway accepts
/// it whether or not the unit behind it is there), and an exception counts as an answer.
/// An OPC UA server gets a session with the device's security and identity, which is then
/// closed. `pki` is needed for OPC UA security policies other than none.
pub async fn test_connection(device: &Device, pki: Option<&Pki>) -> Result<String, ProbeError> {
    bounded(time_limit(device, 2), async {
        match &device.driver {
            DriverConfig::Simulator { .. } => Ok(
                "the built-in simulator runs inside sparkedge: there is nothing to connect to"
                    .to_owned(),
            ),
            DriverConfig::OpcUa { .. } => opcua_test(device, pki).await,
            _ => modbus_test(device).await,
        }
    })
    .await
}

async fn modbus_test(device: &Device) -> Result<String, ProbeError> {
    let (mut link, unit, limit) = modbus_link(device).await?;
    let op = Op::Read(RegisterKind::HoldingRegister, 0, 1);
    match link.call(unit, limit, op).await {
        Ok(Data::Words(words)) => Ok(format!(
            "unit {unit} answered: hr:0 holds {}",
            words
                .first()
                .map_or_else(|| "nothing".to_owned(), |w| format!("{w:#06x}"))
        )),
        Ok(_) => Ok(format!("unit {unit} answered")),
        Err(Failure::Exception(code)) => Ok(format!(
            "unit {unit} answered (with exception {} \"{code}\" to a read of hr:0, which it \
             may not have): the device is reachable",
            u8::from(code)
        )),
        Err(Failure::Timeout(e)) => Err(ProbeError::Unreachable(format!(
            "connected, but unit {unit} did not answer a read of hr:0: {e} (is the unit id \
             right? is the device behind a gateway powered?)"
        ))),
        Err(Failure::Transport(e) | Failure::Refused(e)) => Err(ProbeError::Unreachable(e)),
    }
}

async fn opcua_test(device: &Device, pki: Option<&Pki>) -> Result<String, ProbeError> {
    let connection = opcua_connection(device, pki)?;
    let opened = connection
        .connect()
        .await
        .map_err(ProbeError::Unreachable)?;
    let product = read_values(
        &opened,
        connection.timeout,
        &[
            VariableId::Server_ServerStatus_BuildInfo_ProductName,
            VariableId::Server_ServerStatus_BuildInfo_SoftwareVersion,
        ],
    )
    .await
    .ok()
    .map(|values| {
        let text = |v: Option<&Variant>| match v {
            Some(Variant::String(s)) => s.as_ref().to_owned(),
            _ => String::new(),
        };
        format!(
            "{} {}",
            text(values[0].value.as_ref()),
            text(values[1].value.as_ref())
        )
    })
    .filter(|p| !p.trim().is_empty());
    close(opened, connection.timeout).await;
    let DriverConfig::OpcUa {
        security_policy,
        security_mode,
        identity,
        ..
    } = &device.driver
    else {
        return Err(not_opcua(device));
    };
    let mode = uns_model::OpcUaSecurityMode::effective(*security_mode, *security_policy);
    Ok(format!(
        "session opened with {} (security policy {}, mode {}, {} identity){}",
        connection.endpoint,
        security_policy.as_str(),
        mode.as_str(),
        identity.as_str(),
        product.map_or_else(String::new, |p| format!("; the server is {}", p.trim()))
    ))
}

// ---- reading tags ----

/// Reads each of `tags` of `device` once (at most [`MAX_TAGS`]); one reading per tag, in
/// order. `Err` when the device cannot be reached at all. Modbus tags are read one request
/// each, so each gets its own answer; after a timeout or a lost connection the rest are not
/// asked (each would cost another timeout) and say so. OPC UA tags are read in one Read of
/// the resolved nodes.
pub async fn read_tags(
    device: &Device,
    tags: &[Tag],
    pki: Option<&Pki>,
) -> Result<Vec<TagReading>, ProbeError> {
    if tags.len() > MAX_TAGS {
        return Err(ProbeError::Unsupported(format!(
            "{} tags given; a test reads at most {MAX_TAGS}",
            tags.len()
        )));
    }
    let limit = time_limit(device, tags.len());
    let deadline = Instant::now() + limit;
    bounded(limit, async {
        match &device.driver {
            DriverConfig::Simulator { .. } => simulator_read(device, tags, deadline).await,
            DriverConfig::OpcUa { .. } => opcua_read(device, tags, pki).await,
            _ => modbus_read(device, tags, deadline).await,
        }
    })
    .await
}

async fn modbus_read(
    device: &Device,
    tags: &[Tag],
    deadline: Instant,
) -> Result<Vec<TagReading>, ProbeError> {
    let (mut link, unit, limit) = modbus_link(device).await?;
    let mut readings = Vec::with_capacity(tags.len());
    // Set once the device stops answering: the tags after it are not asked.
    let mut stopped: Option<String> = None;
    for (i, tag) in tags.iter().enumerate() {
        if let Some(why) = &stopped {
            readings.push(TagReading::bad(format!("not read: {why}")));
            continue;
        }
        let Some(modbus) = ModbusTag::from_model(TagId(i as u32), tag, 0) else {
            readings.push(TagReading::bad(format!(
                "address {:?} or byte order {:?} is not a Modbus tag's",
                tag.address,
                tag.byte_order.as_deref().unwrap_or("")
            )));
            continue;
        };
        let (kind, start, count) = (modbus.address.kind, modbus.address.offset, modbus.count());
        let t = now_ms();
        let answer = timeout_at(
            deadline,
            link.call(unit, limit, Op::Read(kind, start, count)),
        )
        .await
        .unwrap_or_else(|_| Err(Failure::Timeout("the test's time ran out".to_owned())));
        readings.push(match answer {
            Ok(data) => match modbus.decode(&data, start) {
                Ok(value) => TagReading::good(value, t),
                Err(e) => TagReading::bad(e),
            },
            Err(Failure::Exception(code)) => TagReading::bad(exception(code, kind, start, count)),
            Err(Failure::Timeout(e)) => {
                stopped = Some("the device stopped answering".to_owned());
                TagReading::bad(e)
            }
            Err(Failure::Transport(e) | Failure::Refused(e)) => {
                stopped = Some(e.clone());
                TagReading::bad(e)
            }
        });
    }
    Ok(readings)
}

/// A Modbus exception as users read it: its number, its meaning, the request.
fn exception(
    code: tokio_modbus::ExceptionCode,
    kind: RegisterKind,
    start: u16,
    count: u16,
) -> String {
    let what = if kind.is_bit() { "bits" } else { "registers" };
    format!(
        "the device answered exception {} \"{code}\" to a read of {count} {what} from {}:{start}",
        u8::from(code),
        kind.prefix()
    )
}

async fn opcua_read(
    device: &Device,
    tags: &[Tag],
    pki: Option<&Pki>,
) -> Result<Vec<TagReading>, ProbeError> {
    let connection = opcua_connection(device, pki)?;
    let opened = connection
        .connect()
        .await
        .map_err(ProbeError::Unreachable)?;
    let result = opcua_read_in(&opened, connection.timeout, tags).await;
    close(opened, connection.timeout).await;
    result
}

async fn opcua_read_in(
    opened: &Opened,
    limit: Duration,
    tags: &[Tag],
) -> Result<Vec<TagReading>, ProbeError> {
    let namespaces = read_values(opened, limit, &[VariableId::Server_NamespaceArray])
        .await
        .map_err(|e| ProbeError::Unreachable(format!("cannot read the namespace table: {e}")))?;
    let namespaces = convert::namespace_table(namespaces[0].value.as_ref());
    // Each tag's node, or why it has none.
    let nodes: Vec<Result<_, String>> = tags
        .iter()
        .map(|tag| {
            let address: NodeAddress = tag.address.parse()?;
            convert::node_id(&address, &namespaces)
        })
        .collect();
    let reads: Vec<ReadValueId> = nodes
        .iter()
        .filter_map(|n| n.as_ref().ok())
        .map(|id| ReadValueId {
            node_id: id.clone(),
            attribute_id: AttributeId::Value as u32,
            ..Default::default()
        })
        .collect();
    let mut values = Vec::new();
    // Small enough for any server's MaxNodesPerRead.
    for chunk in reads.chunks(browse::DEFAULT_NODES_PER_READ) {
        let got = timeout(
            limit,
            opened.session.read(chunk, TimestampsToReturn::Both, 0.0),
        )
        .await
        .map_err(|_| {
            ProbeError::Unreachable(format!(
                "no answer to a Read within {} ms",
                limit.as_millis()
            ))
        })?
        .map_err(|e| ProbeError::Unreachable(format!("the Read failed: {e}")))?;
        values.extend(got);
    }
    let mut values = values.into_iter();
    Ok(tags
        .iter()
        .zip(nodes)
        .map(|(tag, node)| match node {
            Err(e) => TagReading::bad(e),
            Ok(_) => match values.next() {
                Some(dv) => opcua_reading(tag.datatype, dv),
                None => TagReading::bad("the server sent no value for this node"),
            },
        })
        .collect())
}

/// A value the server sent, as the driver would take it: the status decides the quality,
/// the value must be of the tag's type.
fn opcua_reading(datatype: DataType, dv: DataValue) -> TagReading {
    let t = dv
        .source_timestamp
        .as_ref()
        .or(dv.server_timestamp.as_ref())
        .and_then(convert::unix_ms)
        .unwrap_or_else(now_ms);
    let code = dv.status();
    let quality = convert::quality(code);
    if quality == Quality::Bad {
        return TagReading {
            timestamp_ms: t,
            ..TagReading::bad(format!("the server answered {code}"))
        };
    }
    let converted = match &dv.value {
        None | Some(Variant::Empty) => Err("the node has no value".to_owned()),
        Some(v) => convert::to_value(datatype, v),
    };
    match converted {
        Ok(value) => TagReading {
            value: Some(value),
            quality,
            timestamp_ms: t,
            error: (quality == Quality::Uncertain).then(|| format!("the server says {code}")),
        },
        Err(e) => TagReading {
            timestamp_ms: t,
            ..TagReading::bad(e)
        },
    }
}

/// The simulator's first values, from its driver.
async fn simulator_read(
    device: &Device,
    tags: &[Tag],
    deadline: Instant,
) -> Result<Vec<TagReading>, ProbeError> {
    let ids: Vec<(TagId, &Tag)> = tags
        .iter()
        .enumerate()
        .map(|(i, t)| (TagId(i as u32), t))
        .collect();
    let (tx, mut rx) = mpsc::channel(8);
    let _driver = crate::spawn(DeviceId(0), device, &ids, &Context::default(), tx);
    let mut readings: Vec<TagReading> = tags
        .iter()
        .map(|t| {
            TagReading::bad(format!(
                "{:?} is not a signal of the simulator; see the README for the signals",
                t.address
            ))
        })
        .collect();
    loop {
        match timeout_at(deadline, rx.recv()).await {
            Ok(Some(DriverEvent::Samples(samples))) => {
                for s in samples {
                    if let (Some(r), Some(v)) = (readings.get_mut(s.tag.index()), s.value) {
                        *r = TagReading::good(v, s.timestamp_ms);
                    }
                }
                return Ok(readings);
            }
            Ok(Some(DriverEvent::DeviceStatus { .. })) => {}
            Ok(None) | Err(_) => return Ok(readings),
        }
    }
}

// ---- Modbus registers ----

/// Reads `count` registers (or bits) of `kind` from `start` in one request, as they are.
/// One request of exactly the span asked, rather than the driver's plan, so what the device
/// answers (an exception for a register it does not have) is about that span.
pub async fn read_registers(
    device: &Device,
    kind: RegisterKind,
    start: u16,
    count: u16,
) -> Result<Registers, ProbeError> {
    if !device.driver.is_modbus() {
        return Err(ProbeError::Unsupported(format!(
            "{} is not a Modbus device: it has no registers to read",
            device.name
        )));
    }
    if count == 0 || count > kind.max_per_read() || u32::from(start) + u32::from(count) > 65536 {
        return Err(ProbeError::Unsupported(format!(
            "a read of {count} from {}:{start}: one request reads 1 to {} {}, ending at 65535",
            kind.prefix(),
            kind.max_per_read(),
            if kind.is_bit() { "bits" } else { "registers" }
        )));
    }
    bounded(time_limit(device, 1), async {
        let (mut link, unit, limit) = modbus_link(device).await?;
        match link.call(unit, limit, Op::Read(kind, start, count)).await {
            Ok(Data::Words(words)) => Ok(Registers::Words(words)),
            Ok(Data::Bits(mut bits)) => {
                // Bits come in whole bytes: the padding is no value of the device's.
                bits.truncate(usize::from(count));
                Ok(Registers::Bits(bits))
            }
            Ok(Data::Written) => Err(ProbeError::Refused("the device answered no data".into())),
            Err(Failure::Exception(code)) => {
                Err(ProbeError::Refused(exception(code, kind, start, count)))
            }
            Err(Failure::Timeout(e) | Failure::Transport(e) | Failure::Refused(e)) => {
                Err(ProbeError::Unreachable(e))
            }
        }
    })
    .await
}

/// A value decoded from registers under one byte order.
#[derive(Clone, Debug, PartialEq)]
pub struct OrderedValue {
    pub order: ByteOrder,
    /// Its name for a value of this many registers (`CDAB`, `GHEFCDAB`), as a tag's
    /// `byte_order` takes it.
    pub name: &'static str,
    /// The register's type decoded (`conversion.raw_type`).
    pub raw: Result<Value, String>,
    /// The tag's value: the raw value scaled and converted to the tag's type.
    pub value: Result<Value, String>,
}

/// Decodes the value at the start of `registers` under every byte order that makes a
/// difference for its type, side by side, first as the register type of `conversion` and
/// then as the tag's value. A value of one register has two orders (bytes swapped or not),
/// and so has a string (its characters run first register first); wider values have four.
/// `string_len` is a string's length in characters.
pub fn decode_every_order(
    registers: &[u16],
    conversion: &Conversion,
    string_len: usize,
) -> Result<Vec<OrderedValue>, CodecError> {
    let raw_type = conversion.raw_type;
    let needed = codec::register_count(raw_type, string_len);
    if needed == 0 {
        return Err(CodecError::Unsupported(raw_type));
    }
    let registers = registers.get(..needed).ok_or(CodecError::Length {
        datatype: raw_type,
        needed,
        got: registers.len(),
    })?;
    let orders: &[ByteOrder] = if needed == 1 || raw_type == DataType::String {
        &[ByteOrder::ABCD, ByteOrder::BADC]
    } else {
        &[
            ByteOrder::ABCD,
            ByteOrder::BADC,
            ByteOrder::CDAB,
            ByteOrder::DCBA,
        ]
    };
    Ok(orders
        .iter()
        .map(|&order| {
            let raw =
                codec::decode(registers, raw_type, order, string_len).map_err(|e| e.to_string());
            let value = match &raw {
                Ok(r) => conversion.to_eng(r.clone()),
                Err(e) => Err(e.clone()),
            };
            OrderedValue {
                order,
                name: order.name(needed),
                raw,
                value,
            }
        })
        .collect())
}

// ---- OPC UA browse ----

/// Lists the children of `node` (the Objects folder when `None`) on `device`'s server, at
/// most `limit` of them, connecting with the device's security and identity; the session
/// is closed afterwards.
pub async fn browse(
    device: &Device,
    node: Option<&NodeAddress>,
    limit: usize,
    pki: Option<&Pki>,
) -> Result<Children, ProbeError> {
    let connection = opcua_connection(device, pki)?;
    let start = node.cloned().unwrap_or_else(browse::objects_folder);
    let options = BrowseOptions {
        limit,
        request_timeout: connection.timeout,
        ..BrowseOptions::default()
    };
    // Pages of 250: a level of `limit` children takes that many requests, each with its
    // reads of attributes.
    let pages = limit.div_ceil(options.page.max(1) as usize) * 3;
    bounded(time_limit(device, pages), async {
        let opened = connection
            .connect()
            .await
            .map_err(ProbeError::Unreachable)?;
        let result = browse::browse_children(&opened.session, &start, &options, |_| {}).await;
        close(opened, connection.timeout).await;
        Ok(result?)
    })
    .await
}

// ---- shared ----

/// An open line to a Modbus device, its unit id and its request timeout.
async fn modbus_link(device: &Device) -> Result<(Link, u8, Duration), ProbeError> {
    let (transport, unit) =
        crate::modbus_unit(DeviceId(0), &device.driver, &[], &[]).ok_or_else(|| {
            ProbeError::Unsupported(format!("{} is not a Modbus device", device.name))
        })?;
    let mut link = Link::new(transport);
    link.open(unit.timeout).await.map_err(|e| {
        ProbeError::Unreachable(if e.contains("Device or resource busy") {
            format!(
                "{e}: another program holds the port; if it is this appliance's own driver \
                 for a device on this line, watch that device's live values instead"
            )
        } else {
            e
        })
    })?;
    Ok((link, unit.unit, unit.timeout))
}

fn not_opcua(device: &Device) -> ProbeError {
    ProbeError::Unsupported(format!("{} is not an OPC UA device", device.name))
}

fn opcua_connection(device: &Device, pki: Option<&Pki>) -> Result<Connection, ProbeError> {
    Connection::from_model(&device.driver, pki.cloned()).ok_or_else(|| not_opcua(device))
}

/// The values of a few server variables, one Read within `limit`.
async fn read_values(
    opened: &Opened,
    limit: Duration,
    variables: &[VariableId],
) -> Result<Vec<DataValue>, String> {
    let reads: Vec<ReadValueId> = variables
        .iter()
        .map(|v| ReadValueId {
            node_id: (*v).into(),
            attribute_id: AttributeId::Value as u32,
            ..Default::default()
        })
        .collect();
    let values = timeout(
        limit,
        opened
            .session
            .read(&reads, TimestampsToReturn::Neither, 0.0),
    )
    .await
    .map_err(|_| format!("no answer within {} ms", limit.as_millis()))?
    .map_err(|e| e.to_string())?;
    if values.len() != reads.len() {
        return Err(format!(
            "the server answered a Read of {} values with {}",
            reads.len(),
            values.len()
        ));
    }
    Ok(values)
}

/// Closes the session on the server now rather than leaving it to time out there: servers
/// allow few sessions, and a form's every click would otherwise hold one for a minute.
async fn close(opened: Opened, limit: Duration) {
    let _ = timeout(limit, opened.session.disconnect()).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use uns_model::Scaling;

    fn plain(datatype: DataType) -> Conversion {
        Conversion {
            raw_type: datatype,
            datatype,
            scaling: None,
        }
    }

    fn names_and_values(decoded: &[OrderedValue]) -> Vec<(&'static str, Value)> {
        decoded
            .iter()
            .map(|d| (d.name, d.value.clone().unwrap()))
            .collect()
    }

    #[test]
    fn a_float32_is_shown_under_all_four_orders() {
        // 1234.5 is 0x449A5000: bytes A=44 B=9A C=50 D=00.
        let decoded = decode_every_order(&[0x449A, 0x5000], &plain(DataType::Float32), 0).unwrap();
        let f = |bytes: [u8; 4]| Value::Float32(f32::from_be_bytes(bytes));
        assert_eq!(
            names_and_values(&decoded),
            vec![
                ("ABCD", Value::Float32(1234.5)),
                ("BADC", f([0x9A, 0x44, 0x00, 0x50])),
                ("CDAB", f([0x50, 0x00, 0x44, 0x9A])),
                ("DCBA", f([0x00, 0x50, 0x9A, 0x44])),
            ]
        );
        // The same registers written low word first read back right under CDAB.
        let swapped = decode_every_order(&[0x5000, 0x449A], &plain(DataType::Float32), 0).unwrap();
        assert_eq!(swapped[2].value, Ok(Value::Float32(1234.5)));
    }

    #[test]
    fn sixty_four_bit_orders_have_their_long_names_and_extra_registers_are_ignored() {
        let registers = [0x0000, 0x0000, 0x0000, 0x0001, 0xFFFF];
        let decoded = decode_every_order(&registers, &plain(DataType::UInt64), 0).unwrap();
        assert_eq!(
            names_and_values(&decoded),
            vec![
                ("ABCDEFGH", Value::UInt64(1)),
                ("BADCFEHG", Value::UInt64(0x100)),
                ("GHEFCDAB", Value::UInt64(1 << 48)),
                ("HGFEDCBA", Value::UInt64(1 << 56)),
            ]
        );
    }

    #[test]
    fn one_register_values_and_strings_have_two_orders() {
        let decoded = decode_every_order(&[0x0102], &plain(DataType::Int16), 0).unwrap();
        assert_eq!(
            names_and_values(&decoded),
            vec![
                ("ABCD", Value::Int16(0x0102)),
                ("BADC", Value::Int16(0x0201))
            ]
        );
        let decoded = decode_every_order(&[0x5350, 0x4B00], &plain(DataType::String), 4).unwrap();
        assert_eq!(
            names_and_values(&decoded),
            vec![
                ("ABCD", Value::String("SPK".into())),
                ("BADC", Value::String("PS".into())),
            ]
        );
    }

    #[test]
    fn scaling_gives_the_tag_value_beside_the_raw_one() {
        let conversion = Conversion {
            raw_type: DataType::Int16,
            datatype: DataType::Float32,
            scaling: Some(Scaling::from_ranges((0.0, 27648.0), (0.0, 100.0))),
        };
        let decoded = decode_every_order(&[13824], &conversion, 0).unwrap();
        assert_eq!(decoded[0].raw, Ok(Value::Int16(13824)));
        assert_eq!(decoded[0].value, Ok(Value::Float32(50.0)));
        // 13824 = 0x3600; swapped 0x0036 = 54.
        assert_eq!(decoded[1].raw, Ok(Value::Int16(54)));
    }

    #[test]
    fn too_few_registers_or_an_undecodable_type_is_an_error() {
        assert_eq!(
            decode_every_order(&[1], &plain(DataType::Float64), 0),
            Err(CodecError::Length {
                datatype: DataType::Float64,
                needed: 4,
                got: 1
            })
        );
        assert_eq!(
            decode_every_order(&[1, 2, 3, 4], &plain(DataType::DateTime), 0),
            Err(CodecError::Unsupported(DataType::DateTime))
        );
    }

    #[test]
    fn a_value_that_does_not_scale_into_the_tag_type_is_shown_as_an_error() {
        let conversion = Conversion {
            raw_type: DataType::UInt16,
            datatype: DataType::Int8,
            scaling: None,
        };
        let decoded = decode_every_order(&[0x0100], &conversion, 0).unwrap();
        assert_eq!(decoded[0].raw, Ok(Value::UInt16(256)));
        assert!(decoded[0].value.is_err(), "{:?}", decoded[0].value);
        assert_eq!(decoded[1].value, Ok(Value::Int8(1)));
    }

    fn modbus(port: u16) -> Device {
        Device {
            name: "plc".into(),
            enabled: true,
            driver: DriverConfig::ModbusTcp {
                host: "127.0.0.1".into(),
                port,
                unit: 1,
                period_ms: 1000,
                timeout_ms: 500,
                offline_after: 3,
                max_gap: 16,
            },
        }
    }

    /// The simulated PLC on a free port, served for the rest of the test.
    async fn sim() -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let plc = std::sync::Arc::new(crate::modbus::sim_server::SimPlc::default());
        tokio::spawn(crate::modbus::sim_server::serve(listener, plc));
        port
    }

    /// A port nobody listens on.
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn a_modbus_test_says_who_answered_or_why_nobody_did() {
        let port = sim().await;
        let ok = test_connection(&modbus(port), None).await.unwrap();
        assert!(ok.starts_with("unit 1 answered"), "{ok}");
        let refused = test_connection(&modbus(closed_port()), None)
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("Connection refused"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn each_modbus_tag_gets_its_value_or_the_device_s_exception() {
        let port = sim().await;
        let tag =
            |address: &str, datatype: DataType| Tag::new("plc", "a/b", "t", datatype, address);
        let readings = read_tags(
            &modbus(port),
            &[
                Tag {
                    length: Some(16),
                    ..tag("hr:130", DataType::String)
                },
                tag("hr:200", DataType::UInt16),
                tag("hr:139", DataType::UInt16),
            ],
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            readings[0].value,
            Some(Value::String("SPARKEDGE SIM".into()))
        );
        assert_eq!(readings[0].quality, Quality::Good);
        assert_eq!(readings[1].quality, Quality::Bad);
        let error = readings[1].error.as_deref().unwrap();
        assert!(
            error.contains("exception 2 \"Illegal data address\"") && error.contains("hr:200"),
            "{error}"
        );
        // A refused tag does not stop the others.
        assert_eq!(readings[2].value, Some(Value::UInt16(0)));
    }

    #[tokio::test]
    async fn registers_are_read_as_asked_and_bounds_are_checked_first() {
        let port = sim().await;
        let device = modbus(port);
        let regs = read_registers(&device, RegisterKind::HoldingRegister, 130, 2)
            .await
            .unwrap();
        assert_eq!(regs, Registers::Words(vec![0x5350, 0x4152]));
        let bits = read_registers(&device, RegisterKind::Coil, 0, 3)
            .await
            .unwrap();
        assert_eq!(bits, Registers::Bits(vec![false; 3]));
        let e = read_registers(&device, RegisterKind::HoldingRegister, 0, 126)
            .await
            .unwrap_err();
        assert!(matches!(e, ProbeError::Unsupported(_)), "{e}");
        let e = read_registers(&device, RegisterKind::HoldingRegister, 199, 2)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("Illegal data address"), "{e}");
    }
}
