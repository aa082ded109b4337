//! PLC drivers: each device runs as its own task that sends samples out and takes writes in.
//!
//! A driver never waits on a sink: it hands [`DriverEvent`]s to the hub over a bounded
//! channel, and the hub fans them out without blocking (see the appliance's mailboxes). One
//! slow or dead device therefore never delays another.
//!
//! Drivers: the built-in [`sim`]ulated PLC, [`modbus`] (TCP, RTU on a serial line, RTU
//! over TCP) and [`opcua`] (subscriptions), all behind the same [`spawn`] interface; and
//! [`probe`], one-off contact with a device for the people configuring it (test a
//! connection, read tags once, preview registers, browse a server).

pub mod modbus;
pub mod opcua;
pub mod probe;
pub mod sim;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use uns_model::{Device, DriverConfig, Model, ScanClass, Tag, TagId, TagSample, Value};

/// Index of a device in the running model ([`uns_model::Model::devices`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DeviceId(pub usize);

/// What drivers tell the hub.
#[derive(Clone, Debug, PartialEq)]
pub enum DriverEvent {
    /// Readings from one poll or subscription callback, in acquisition order.
    Samples(Vec<TagSample>),
    /// The device became reachable, or stopped being so (with the reason).
    DeviceStatus {
        device: DeviceId,
        online: bool,
        error: Option<String>,
    },
}

/// A write of `value` to `tag`; the driver answers on `reply` once the PLC confirmed it (or
/// refused), and publishes the read-back value as a normal sample.
#[derive(Debug)]
pub struct WriteCommand {
    pub tag: TagId,
    pub value: Value,
    pub reply: Option<oneshot::Sender<Result<(), String>>>,
}

/// The running driver of one device. Dropping it stops the driver (a line shared by several
/// devices stops when the last of their handles is dropped).
#[derive(Debug)]
pub struct DriverHandle {
    writes: mpsc::Sender<WriteCommand>,
    _task: Arc<Task>,
}

/// Aborts its task when dropped.
#[derive(Debug)]
struct Task(tokio::task::JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl DriverHandle {
    /// Queues a write; writes jump ahead of polling inside the driver.
    pub fn write(&self, command: WriteCommand) -> Result<(), String> {
        self.writes
            .try_send(command)
            .map_err(|e| format!("the driver cannot take the write now: {e}"))
    }
}

/// What drivers share beyond their own device and tags.
#[derive(Clone, Copy, Debug, Default)]
pub struct Context<'a> {
    /// The model's scan classes, by which tags choose their poll period.
    pub scan_classes: &'a [ScanClass],
    /// The appliance's OPC UA certificates; without them only security policy none works.
    pub opcua_pki: Option<&'a opcua::pki::Pki>,
}

/// Starts the driver for `device` with its `tags`, sending events to `events`. The driver
/// keeps only what it needs of each tag, so a large model is not copied into every driver.
///
/// A Modbus RTU device started this way has its line to itself; [`spawn_model`] is what
/// puts devices sharing a serial line or gateway on one line.
pub fn spawn(
    id: DeviceId,
    device: &Device,
    tags: &[(TagId, &Tag)],
    context: &Context<'_>,
    events: mpsc::Sender<DriverEvent>,
) -> DriverHandle {
    let (writes, write_rx) = mpsc::channel(WRITE_QUEUE);
    let task = match modbus_unit(id, &device.driver, tags, context.scan_classes) {
        Some((transport, unit)) => {
            tokio::spawn(modbus::driver::run(transport, vec![unit], events, write_rx))
        }
        None if matches!(device.driver, DriverConfig::OpcUa { .. }) => {
            let dev = opcua_device(id, &device.driver, tags, context);
            tokio::spawn(opcua::driver::run(dev, events, write_rx))
        }
        None => tokio::spawn(sim::run(
            id,
            Duration::from_millis(u64::from(device.driver.period_ms())),
            sim::sim_tags(tags),
            events,
            write_rx,
        )),
    };
    DriverHandle {
        writes,
        _task: Arc::new(Task(task)),
    }
}

/// Starts a driver for every enabled device of `model`; the result has one entry per
/// device, `None` for disabled ones. Modbus RTU devices on the same serial port, and those
/// behind the same RTU-over-TCP gateway, share one line task, which serialises their
/// requests.
pub fn spawn_model(
    model: &Model,
    opcua_pki: Option<&opcua::pki::Pki>,
    events: mpsc::Sender<DriverEvent>,
) -> Vec<Option<DriverHandle>> {
    let context = Context {
        scan_classes: &model.scan_classes,
        opcua_pki,
    };
    let mut handles: Vec<Option<DriverHandle>> = model.devices.iter().map(|_| None).collect();
    // Shared lines: transport, and the devices on it with their unit settings.
    let mut lines: Vec<(
        modbus::Transport,
        Vec<(DeviceId, modbus::driver::UnitConfig)>,
    )> = Vec::new();
    for (d, device) in model.devices.iter().enumerate().filter(|(_, d)| d.enabled) {
        let id = DeviceId(d);
        let tags: Vec<(TagId, &Tag)> = model
            .tags
            .iter()
            .enumerate()
            .filter(|(_, t)| t.device == device.name)
            .map(|(i, t)| (TagId(i as u32), t))
            .collect();
        match &device.driver {
            DriverConfig::ModbusRtu { .. } | DriverConfig::ModbusRtuTcp { .. } => {
                let Some((transport, unit)) =
                    modbus_unit(id, &device.driver, &tags, &model.scan_classes)
                else {
                    continue;
                };
                match lines.iter_mut().find(|(t, _)| same_line(t, &transport)) {
                    Some((_, units)) => units.push((id, unit)),
                    None => lines.push((transport, vec![(id, unit)])),
                }
            }
            _ => {
                let handle = spawn(id, device, &tags, &context, events.clone());
                handles[d] = Some(handle);
            }
        }
    }
    for (transport, units) in lines {
        let (writes, write_rx) = mpsc::channel(WRITE_QUEUE);
        let ids: Vec<DeviceId> = units.iter().map(|(id, _)| *id).collect();
        let units = units.into_iter().map(|(_, u)| u).collect();
        let task = Arc::new(Task(tokio::spawn(modbus::driver::run(
            transport,
            units,
            events.clone(),
            write_rx,
        ))));
        for id in ids {
            handles[id.0] = Some(DriverHandle {
                writes: writes.clone(),
                _task: task.clone(),
            });
        }
    }
    handles
}

const WRITE_QUEUE: usize = 64;

/// Whether two transports are one line: the same serial port, or the same gateway.
fn same_line(a: &modbus::Transport, b: &modbus::Transport) -> bool {
    use modbus::Transport::{RtuOverTcp, Serial};
    match (a, b) {
        (Serial(a), Serial(b)) => a.path == b.path,
        (RtuOverTcp { host: h, port: p }, RtuOverTcp { host, port }) => {
            h.eq_ignore_ascii_case(host) && p == port
        }
        _ => false,
    }
}

/// The transport and unit settings of a Modbus device; `None` for other drivers. A tag is
/// read at its scan class's period, or else at its device's.
pub(crate) fn modbus_unit(
    id: DeviceId,
    driver: &DriverConfig,
    tags: &[(TagId, &Tag)],
    scan_classes: &[ScanClass],
) -> Option<(modbus::Transport, modbus::driver::UnitConfig)> {
    let ms = |v: u32| Duration::from_millis(u64::from(v));
    let transport = match driver {
        DriverConfig::ModbusRtu {
            path,
            baud,
            parity,
            data_bits,
            stop_bits,
            inter_frame_delay_us,
            ..
        } => modbus::Transport::Serial(modbus::SerialLine {
            path: path.clone(),
            baud: *baud,
            parity: *parity,
            data_bits: *data_bits,
            stop_bits: *stop_bits,
            inter_frame_delay: inter_frame_delay_us.map_or_else(
                || modbus::SerialLine::default_inter_frame_delay(*baud),
                |us| Duration::from_micros(u64::from(us)),
            ),
        }),
        DriverConfig::ModbusRtuTcp { host, port, .. } => modbus::Transport::RtuOverTcp {
            host: host.clone(),
            port: *port,
        },
        DriverConfig::ModbusTcp { host, port, .. } => modbus::Transport::Tcp {
            host: host.clone(),
            port: *port,
        },
        DriverConfig::Simulator { .. } | DriverConfig::OpcUa { .. } => return None,
    };
    let m = driver.modbus()?;
    // The model was validated; a tag that still does not parse is skipped, not a panic.
    let modbus_tags = tags
        .iter()
        .filter_map(|(tag_id, t)| {
            let period = t
                .scan_class()
                .and_then(|name| scan_classes.iter().find(|c| c.name == name))
                .map_or(m.period_ms, |c| c.period_ms);
            modbus::driver::ModbusTag::from_model(*tag_id, t, period)
        })
        .collect();
    let unit = modbus::driver::UnitConfig {
        device: id,
        unit: m.unit,
        period_ms: m.period_ms,
        timeout: ms(m.timeout_ms),
        offline_after: m.offline_after,
        max_gap: m.max_gap,
        tags: modbus_tags,
    };
    Some((transport, unit))
}

/// What the OPC UA driver keeps of a device and its tags.
fn opcua_device(
    id: DeviceId,
    driver: &DriverConfig,
    tags: &[(TagId, &Tag)],
    context: &Context<'_>,
) -> opcua::driver::OpcUaDevice {
    let (period_ms, sampling_ms, queue_size, poll_all) = match driver {
        DriverConfig::OpcUa {
            period_ms,
            sampling_interval_ms,
            queue_size,
            acquisition,
            ..
        } => (
            *period_ms,
            sampling_interval_ms.unwrap_or(*period_ms),
            *queue_size,
            *acquisition == uns_model::OpcUaAcquisition::Poll,
        ),
        _ => (1000, 1000, 1, false),
    };
    let ms = |v: u32| Duration::from_millis(u64::from(v));
    let connection = opcua::connect::Connection::from_model(driver, context.opcua_pki.cloned())
        .expect("an OPC UA device");
    opcua::driver::OpcUaDevice {
        device: id,
        connection,
        period: ms(period_ms),
        sampling_ms: f64::from(sampling_ms),
        queue_size,
        // The model was validated; a tag that still does not parse is skipped, not a panic.
        tags: tags
            .iter()
            .filter_map(|(tag_id, t)| {
                // A tag of a scan class is polled at its period; with `acquisition = "poll"`
                // so is every other tag, at the device's period.
                let class = t
                    .scan_class()
                    .and_then(|name| context.scan_classes.iter().find(|c| c.name == name));
                let poll = match class {
                    Some(c) => Some(ms(c.period_ms)),
                    None => poll_all.then(|| ms(period_ms)),
                };
                opcua::driver::OpcUaTag::from_model(*tag_id, t, poll)
            })
            .collect(),
    }
}

/// Milliseconds since the Unix epoch, the timestamp unit of every sample.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
