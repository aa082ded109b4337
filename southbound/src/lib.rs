//! PLC drivers: each device runs as its own task that sends samples out and takes writes in.
//!
//! A driver never waits on a sink: it hands [`DriverEvent`]s to the hub over a bounded
//! channel, and the hub fans them out without blocking (see the appliance's mailboxes). One
//! slow or dead device therefore never delays another.
//!
//! Drivers: the built-in [`sim`]ulated PLC and [`modbus`] TCP. OPC UA comes next behind the
//! same [`spawn`] interface.

pub mod modbus;
pub mod sim;

use tokio::sync::{mpsc, oneshot};
use uns_model::{Device, DriverConfig, Tag, TagId, TagSample, Value};

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

/// The running driver of one device. Dropping it stops the driver.
#[derive(Debug)]
pub struct DriverHandle {
    writes: mpsc::Sender<WriteCommand>,
    task: tokio::task::JoinHandle<()>,
}

impl DriverHandle {
    /// Queues a write; writes jump ahead of polling inside the driver.
    pub fn write(&self, command: WriteCommand) -> Result<(), String> {
        self.writes
            .try_send(command)
            .map_err(|e| format!("the driver cannot take the write now: {e}"))
    }
}

impl Drop for DriverHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the driver for `device` with its `tags`, sending events to `events`. The driver
/// keeps only what it needs of each tag, so a large model is not copied into every driver.
pub fn spawn(
    id: DeviceId,
    device: &Device,
    tags: &[(TagId, &Tag)],
    events: mpsc::Sender<DriverEvent>,
) -> DriverHandle {
    let (writes, write_rx) = mpsc::channel(64);
    let task = match &device.driver {
        DriverConfig::Simulator { period_ms } => tokio::spawn(sim::run(
            id,
            std::time::Duration::from_millis(u64::from(*period_ms)),
            sim::sim_tags(tags),
            events,
            write_rx,
        )),
        DriverConfig::ModbusTcp {
            host,
            port,
            unit,
            period_ms,
            timeout_ms,
            offline_after,
            max_gap,
        } => {
            let ms = |v: &u32| std::time::Duration::from_millis(u64::from(*v));
            let settings = modbus::TcpSettings {
                host: host.clone(),
                port: *port,
                unit: *unit,
                period: ms(period_ms),
                timeout: ms(timeout_ms),
                offline_after: *offline_after,
                max_gap: *max_gap,
            };
            let tags = modbus::driver::modbus_tags(tags);
            tokio::spawn(modbus::driver::run(id, settings, tags, events, write_rx))
        }
    };
    DriverHandle { writes, task }
}

/// Milliseconds since the Unix epoch, the timestamp unit of every sample.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
