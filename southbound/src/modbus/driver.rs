//! The Modbus TCP driver of one device: plans its reads once, polls them every period, lets
//! writes jump ahead of the next read, isolates refused addresses, and turns timeouts and
//! lost connections into quality and, after `offline_after` failed cycles, into an offline
//! device; then it reconnects with back-off, forever. One device never waits on another:
//! each runs in its own task with its own connection.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, timeout};
use tokio_modbus::ExceptionCode;
use tokio_modbus::client::{Context, Reader, Writer};
use tokio_modbus::prelude::{Slave, tcp};
use uns_model::{ByteOrder, DataType, ModbusAddress, Quality, Tag, TagId, TagSample, Value};

use super::backoff::Backoff;
use super::codec;
use super::plan::{Read, RegisterKind, Span, plan, split};
use crate::{DeviceId, DriverEvent, WriteCommand, now_ms};

/// Connection and polling settings of one Modbus TCP device.
#[derive(Clone, Debug)]
pub struct TcpSettings {
    pub host: String,
    pub port: u16,
    pub unit: u8,
    pub period: Duration,
    pub timeout: Duration,
    pub offline_after: u32,
    pub max_gap: u16,
}

/// A tag as the driver needs it.
#[derive(Clone, Debug)]
pub(crate) struct ModbusTag {
    id: TagId,
    address: ModbusAddress,
    datatype: DataType,
    order: ByteOrder,
    length: usize,
    writable: bool,
}

impl ModbusTag {
    fn from_model(id: TagId, tag: &Tag) -> Option<ModbusTag> {
        Some(ModbusTag {
            id,
            address: tag.address.parse().ok()?,
            datatype: tag.datatype,
            order: match &tag.byte_order {
                Some(o) => o.parse().ok()?,
                None => ByteOrder::ABCD,
            },
            length: usize::from(tag.length.unwrap_or(0)),
            writable: tag.writable,
        })
    }

    /// Registers (or bits) this tag occupies.
    fn count(&self) -> u16 {
        if self.address.kind.is_bit() || self.address.bit.is_some() {
            1
        } else {
            codec::register_count(self.datatype, self.length) as u16
        }
    }

    /// Its value from the data of a read starting at `start`.
    fn decode(&self, data: &Data, start: u16) -> Result<Value, String> {
        let at = usize::from(self.address.offset - start);
        let count = usize::from(self.count());
        match data {
            Data::Bits(bits) => bits
                .get(at)
                .map(|b| Value::Bool(*b))
                .ok_or_else(|| "the reply was shorter than asked".to_owned()),
            Data::Words(words) => {
                let regs = words
                    .get(at..at + count)
                    .ok_or_else(|| "the reply was shorter than asked".to_owned())?;
                match self.address.bit {
                    Some(bit) => Ok(Value::Bool(regs[0] >> bit & 1 == 1)),
                    None => codec::decode(regs, self.datatype, self.order, self.length)
                        .map_err(|e| e.to_string()),
                }
            }
        }
    }
}

enum Data {
    Bits(Vec<bool>),
    Words(Vec<u16>),
}

/// Why a request did not produce data.
enum Failure {
    /// The device answered with an exception: the connection is fine.
    Exception(ExceptionCode),
    /// Timeout or transport error: the connection is gone.
    Transport(String),
}

async fn request<T>(
    limit: Duration,
    call: impl Future<Output = tokio_modbus::Result<T>>,
) -> Result<T, Failure> {
    match timeout(limit, call).await {
        Ok(Ok(Ok(v))) => Ok(v),
        Ok(Ok(Err(exception))) => Err(Failure::Exception(exception)),
        Ok(Err(e)) => Err(Failure::Transport(e.to_string())),
        Err(_) => Err(Failure::Transport(format!(
            "no answer within {} ms",
            limit.as_millis()
        ))),
    }
}

async fn read(ctx: &mut Context, r: &Read, limit: Duration) -> Result<Data, Failure> {
    match r.kind {
        RegisterKind::Coil => request(limit, ctx.read_coils(r.start, r.count))
            .await
            .map(Data::Bits),
        RegisterKind::DiscreteInput => request(limit, ctx.read_discrete_inputs(r.start, r.count))
            .await
            .map(Data::Bits),
        RegisterKind::InputRegister => request(limit, ctx.read_input_registers(r.start, r.count))
            .await
            .map(Data::Words),
        RegisterKind::HoldingRegister => {
            request(limit, ctx.read_holding_registers(r.start, r.count))
                .await
                .map(Data::Words)
        }
    }
}

struct Poller {
    device: DeviceId,
    settings: TcpSettings,
    tags: Vec<ModbusTag>,
    spans: Vec<Span>,
    reads: Vec<Read>,
    events: mpsc::Sender<DriverEvent>,
    ctx: Option<Context>,
    online: bool,
    failures: u32,
    backoff: Backoff,
    next_attempt: Instant,
}

/// What the driver keeps of each tag.
pub(crate) fn modbus_tags(tags: &[(TagId, &Tag)]) -> Vec<ModbusTag> {
    // The model was validated; a tag that still does not parse is skipped, not a panic.
    tags.iter()
        .filter_map(|(id, t)| ModbusTag::from_model(*id, t))
        .collect()
}

/// Runs the driver until the hub goes away.
pub(crate) async fn run(
    device: DeviceId,
    settings: TcpSettings,
    tags: Vec<ModbusTag>,
    events: mpsc::Sender<DriverEvent>,
    mut writes: mpsc::Receiver<WriteCommand>,
) {
    let spans: Vec<Span> = tags
        .iter()
        .map(|t| Span {
            unit: settings.unit,
            kind: t.address.kind,
            start: t.address.offset,
            count: t.count(),
        })
        .collect();
    let reads = plan(&spans, settings.max_gap);
    tracing::info!(
        device = device.0,
        tags = tags.len(),
        requests = reads.len(),
        "Modbus poll plan"
    );
    let mut ticker = tokio::time::interval(settings.period);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut p = Poller {
        backoff: Backoff::new(
            Duration::from_millis(500),
            Duration::from_secs(30),
            now_ms() ^ (device.0 as u64) << 32,
        ),
        device,
        settings,
        tags,
        spans,
        reads,
        events,
        ctx: None,
        online: false,
        failures: 0,
        next_attempt: Instant::now(),
    };
    loop {
        let alive = tokio::select! {
            // A write never waits behind a poll cycle that has not started.
            biased;
            Some(w) = writes.recv() => p.write(w).await,
            _ = ticker.tick() => p.cycle(&mut writes).await,
        };
        if !alive {
            return;
        }
    }
}

impl Poller {
    /// One poll cycle. False when the hub is gone.
    async fn cycle(&mut self, writes: &mut mpsc::Receiver<WriteCommand>) -> bool {
        if self.ctx.is_none() {
            if Instant::now() < self.next_attempt {
                return true;
            }
            match self.connect().await {
                Ok(ctx) => self.ctx = Some(ctx),
                Err(e) => return self.failed(e).await,
            }
        }
        let mut samples = Vec::with_capacity(self.tags.len());
        let mut i = 0;
        while i < self.reads.len() {
            // Writes that arrived during the cycle go before the next read.
            while let Ok(w) = writes.try_recv() {
                if !self.write(w).await {
                    return false;
                }
            }
            let Some(ctx) = self.ctx.as_mut() else {
                return self
                    .failed("the connection was lost during a write".into())
                    .await;
            };
            let t = now_ms();
            match read(ctx, &self.reads[i], self.settings.timeout).await {
                Ok(data) => {
                    let r = &self.reads[i];
                    for &k in &r.tags {
                        let tag = &self.tags[k];
                        samples.push(match tag.decode(&data, r.start) {
                            Ok(v) => sample(tag.id, Some(v), Quality::Good, t),
                            Err(why) => {
                                tracing::warn!(device = self.device.0, address = %tag.address, "{why}");
                                sample(tag.id, None, Quality::Bad, t)
                            }
                        });
                    }
                    i += 1;
                }
                Err(Failure::Exception(ExceptionCode::IllegalDataAddress))
                    if self.reads[i].tags.len() > 1 =>
                {
                    // Some tag in the block does not exist: halve until it stands alone.
                    if let Some((a, b)) = split(&self.reads[i], &self.spans) {
                        self.reads.splice(i..=i, [a, b]);
                    }
                }
                Err(Failure::Exception(exception)) => {
                    for &k in &self.reads[i].tags {
                        let tag = &self.tags[k];
                        tracing::warn!(device = self.device.0, address = %tag.address, "Modbus exception {exception:?}");
                        samples.push(sample(tag.id, None, Quality::Bad, t));
                    }
                    i += 1;
                }
                Err(Failure::Transport(e)) => {
                    self.ctx = None;
                    return self.failed(e).await;
                }
            }
            // Each read's values go out as soon as they are decoded, so a change waits for
            // its own read, not for the whole cycle. Before the device's first full cycle
            // they are held, so its birth carries every value.
            if self.online
                && !samples.is_empty()
                && self
                    .events
                    .send(DriverEvent::Samples(std::mem::take(&mut samples)))
                    .await
                    .is_err()
            {
                return false;
            }
        }
        self.failures = 0;
        self.backoff.reset();
        if !samples.is_empty()
            && self
                .events
                .send(DriverEvent::Samples(samples))
                .await
                .is_err()
        {
            return false;
        }
        if !self.online {
            self.online = true;
            return self.status(None).await;
        }
        true
    }

    async fn connect(&mut self) -> Result<Context, String> {
        let (host, port) = (self.settings.host.as_str(), self.settings.port);
        let addr: SocketAddr =
            timeout(self.settings.timeout, tokio::net::lookup_host((host, port)))
                .await
                .map_err(|_| format!("resolving {host} took longer than the timeout"))?
                .map_err(|e| format!("cannot resolve {host}: {e}"))?
                .next()
                .ok_or_else(|| format!("{host} has no address"))?;
        timeout(
            self.settings.timeout,
            tcp::connect_slave(addr, Slave(self.settings.unit)),
        )
        .await
        .map_err(|_| format!("no connection to {addr} within the timeout"))?
        .map_err(|e| format!("cannot connect to {addr}: {e}"))
    }

    /// A failed cycle: count it, schedule the reconnect, and after `offline_after` of them in
    /// a row report the device offline with every tag stale.
    async fn failed(&mut self, error: String) -> bool {
        self.failures += 1;
        self.next_attempt = Instant::now() + self.backoff.next_delay();
        tracing::debug!(device = self.device.0, failures = self.failures, "{error}");
        if self.failures == self.settings.offline_after {
            let t = now_ms();
            let stale = self
                .tags
                .iter()
                .map(|tag| sample(tag.id, None, Quality::Stale, t))
                .collect();
            if self.events.send(DriverEvent::Samples(stale)).await.is_err() {
                return false;
            }
            self.online = false;
            return self.status(Some(error)).await;
        }
        true
    }

    async fn status(&mut self, error: Option<String>) -> bool {
        let online = self.online;
        self.events
            .send(DriverEvent::DeviceStatus {
                device: self.device,
                online,
                error,
            })
            .await
            .is_ok()
    }

    /// Carries out a write and publishes the value read back. False when the hub is gone.
    async fn write(&mut self, w: WriteCommand) -> bool {
        let result = self.try_write(&w).await;
        if let Err(e) = &result {
            tracing::warn!(device = self.device.0, tag = w.tag.0, "write refused: {e}");
        }
        let sample = result.as_ref().ok().cloned();
        if let Some(reply) = w.reply {
            let _ = reply.send(result.map(|_| ()));
        }
        match sample {
            Some(s) => self
                .events
                .send(DriverEvent::Samples(vec![s]))
                .await
                .is_ok(),
            None => true,
        }
    }

    async fn try_write(&mut self, w: &WriteCommand) -> Result<TagSample, String> {
        let tag = self
            .tags
            .iter()
            .find(|t| t.id == w.tag)
            .ok_or("the tag is not on this device")?
            .clone();
        if !tag.writable || !tag.address.kind.is_writable() {
            return Err(format!("{} is not writable", tag.address));
        }
        let limit = self.settings.timeout;
        let ctx = self.ctx.as_mut().ok_or("the device is not connected")?;
        let a = tag.address.offset;
        let outcome = async {
            match (tag.address.kind, tag.address.bit, &w.value) {
                (RegisterKind::Coil, _, Value::Bool(on)) => {
                    request(limit, ctx.write_single_coil(a, *on)).await
                }
                (_, Some(bit), Value::Bool(on)) => {
                    // Read-modify-write: the other 15 bits belong to someone else.
                    let word = request(limit, ctx.read_holding_registers(a, 1))
                        .await?
                        .first()
                        .copied()
                        .unwrap_or(0);
                    let mask = 1u16 << bit;
                    let word = if *on { word | mask } else { word & !mask };
                    request(limit, ctx.write_single_register(a, word)).await
                }
                (_, None, value) => {
                    let regs = codec::encode(value, tag.datatype, tag.order, tag.length)
                        .map_err(|e| Failure::Transport(format!("refused: {e}")))?;
                    if regs.len() == 1 {
                        request(limit, ctx.write_single_register(a, regs[0])).await
                    } else {
                        request(limit, ctx.write_multiple_registers(a, &regs)).await
                    }
                }
                (_, _, value) => Err(Failure::Transport(format!(
                    "refused: a {} value cannot be written to a bit",
                    value.datatype()
                ))),
            }?;
            // Read back what the PLC now holds: that, not the request, is the new value.
            let back = Read {
                unit: self.settings.unit,
                kind: tag.address.kind,
                start: a,
                count: tag.count(),
                tags: Vec::new(),
            };
            read(ctx, &back, limit).await
        }
        .await;
        match outcome {
            Ok(data) => {
                let value = tag.decode(&data, a)?;
                Ok(sample(tag.id, Some(value), Quality::Good, now_ms()))
            }
            Err(Failure::Exception(e)) => Err(format!("the device refused the write: {e:?}")),
            Err(Failure::Transport(e)) if e.starts_with("refused: ") => {
                Err(e.trim_start_matches("refused: ").to_owned())
            }
            Err(Failure::Transport(e)) => {
                self.ctx = None;
                Err(format!("connection lost during the write: {e}"))
            }
        }
    }
}

fn sample(tag: TagId, value: Option<Value>, quality: Quality, timestamp_ms: u64) -> TagSample {
    TagSample {
        tag,
        value,
        quality,
        timestamp_ms,
    }
}
