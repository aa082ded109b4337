//! The Modbus driver of one *line*: a TCP connection to one device, a serial port (RTU), or
//! a TCP connection to a serial gateway (RTU over TCP), with every device (unit id) on it.
//!
//! A line carries one request at a time, so one task owns it and takes turns between its
//! units: it plans each unit's reads once, polls each unit's scan groups when they are due,
//! lets writes jump ahead of the next read, isolates refused addresses, and turns timeouts
//! and lost connections into quality and, after `offline_after` failed cycles, into an
//! offline device. Then it tries again with back-off, forever.
//!
//! On a shared half-duplex line a unit that does not answer costs its whole timeout, during
//! which nobody else can talk. So a failed unit is *held back* (exponential back-off with
//! jitter, up to 30 s) rather than retried every period: a dead meter costs one timeout per
//! back-off interval while the live units keep their periods. A timeout is the unit's
//! failure, not the line's; only when no unit on the line answers any more is the port or
//! connection reopened (which is also how a Modbus TCP device, alone on its connection,
//! reconnects).

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};
use tokio_modbus::ExceptionCode;
use uns_model::{
    ByteOrder, Conversion, DataType, ModbusAddress, Quality, Tag, TagId, TagSample, Value,
};

use super::backoff::Backoff;
use super::codec;
use super::link::{Data, Failure, Link, Op, Transport};
use super::plan::{Read, RegisterKind, Span, plan, split};
use crate::{DeviceId, DriverEvent, WriteCommand, now_ms};
/// One device (unit id) on a line and how it is polled.
#[derive(Clone, Debug)]
pub(crate) struct UnitConfig {
    pub device: DeviceId,
    pub unit: u8,
    /// The device's period: its tags' unless they have a scan class.
    pub period_ms: u32,
    pub timeout: Duration,
    pub offline_after: u32,
    pub max_gap: u16,
    pub tags: Vec<ModbusTag>,
}

/// A tag as the driver needs it.
#[derive(Clone, Debug)]
pub(crate) struct ModbusTag {
    id: TagId,
    pub(crate) address: ModbusAddress,
    /// The tag's type; also the register's unless `conversion` says otherwise.
    datatype: DataType,
    /// Register type and scaling, for the few tags that have them (boxed: a large plain
    /// model should not pay for it per tag).
    conversion: Option<Box<Conversion>>,
    order: ByteOrder,
    length: u16,
    writable: bool,
    /// How often it is read, in ms: its scan class's period, or its device's.
    period_ms: u32,
}

impl ModbusTag {
    pub(crate) fn from_model(id: TagId, tag: &Tag, period_ms: u32) -> Option<ModbusTag> {
        let conversion = tag.conversion();
        Some(ModbusTag {
            id,
            address: tag.address.parse().ok()?,
            datatype: tag.datatype,
            conversion: (!conversion.is_identity()).then(|| Box::new(conversion)),
            order: match &tag.byte_order {
                Some(o) => o.parse().ok()?,
                None => ByteOrder::ABCD,
            },
            length: tag.length.unwrap_or(0),
            writable: tag.writable,
            period_ms,
        })
    }

    /// The type the register holds.
    fn raw_type(&self) -> DataType {
        self.conversion
            .as_ref()
            .map_or(self.datatype, |c| c.raw_type)
    }

    /// Registers (or bits) this tag occupies.
    pub(crate) fn count(&self) -> u16 {
        if self.address.kind.is_bit() || self.address.bit.is_some() {
            1
        } else {
            codec::register_count(self.raw_type(), usize::from(self.length)) as u16
        }
    }

    /// Its value from the data of a read starting at `start`.
    pub(crate) fn decode(&self, data: &Data, start: u16) -> Result<Value, String> {
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
                    None => {
                        let length = usize::from(self.length);
                        let raw = codec::decode(regs, self.raw_type(), self.order, length)
                            .map_err(|e| e.to_string())?;
                        match &self.conversion {
                            Some(c) => c.to_eng(raw),
                            None => Ok(raw),
                        }
                    }
                }
            }
            Data::Written => Err("a write has no data".to_owned()),
        }
    }
}

/// The tags of one unit read at one period, and when that is next due.
struct Group {
    period: Duration,
    reads: Vec<Read>,
    next_due: Instant,
    /// Read in full since the unit came (back) online.
    done: bool,
}

struct Unit {
    cfg: UnitConfig,
    spans: Vec<Span>,
    groups: Vec<Group>,
    online: bool,
    /// Failed cycles in a row.
    failures: u32,
    backoff: Backoff,
    /// Not polled before this: a unit that failed waits out its back-off.
    hold_until: Instant,
    /// Samples kept until every group was read once, so the device's birth carries every
    /// value.
    pending: Vec<TagSample>,
}

impl Unit {
    fn new(cfg: UnitConfig, now: Instant, seed: u64) -> Unit {
        let spans: Vec<Span> = cfg
            .tags
            .iter()
            .map(|t| Span {
                unit: cfg.unit,
                kind: t.address.kind,
                start: t.address.offset,
                count: t.count(),
            })
            .collect();
        let mut periods: Vec<u32> = cfg.tags.iter().map(|t| t.period_ms).collect();
        periods.sort();
        periods.dedup();
        if periods.is_empty() {
            // A device without tags is still polled (with no reads), so it is born when
            // its line works and dies when it does not.
            periods.push(cfg.period_ms);
        }
        let groups = periods
            .into_iter()
            .map(|period| {
                let members: Vec<usize> = (0..cfg.tags.len())
                    .filter(|&k| cfg.tags[k].period_ms == period)
                    .collect();
                let subset: Vec<Span> = members.iter().map(|&k| spans[k]).collect();
                let mut reads = plan(&subset, cfg.max_gap);
                for r in &mut reads {
                    for t in &mut r.tags {
                        *t = members[*t];
                    }
                }
                Group {
                    period: Duration::from_millis(u64::from(period)),
                    reads,
                    next_due: now,
                    done: false,
                }
            })
            .collect();
        Unit {
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(30), seed),
            cfg,
            spans,
            groups,
            online: false,
            failures: 0,
            hold_until: now,
            pending: Vec::new(),
        }
    }

    /// The group due first and when.
    fn next(&self) -> Option<(usize, Instant)> {
        self.groups
            .iter()
            .enumerate()
            .map(|(g, group)| (g, group.next_due.max(self.hold_until)))
            .min_by_key(|(_, due)| *due)
    }
}

/// The next time after `now` on the grid `due + k·period`: a poll that ran late does not
/// make the following ones run back to back.
fn next_tick(due: Instant, period: Duration, now: Instant) -> Instant {
    let next = due + period;
    if next > now {
        return next;
    }
    let behind = now.duration_since(due).as_nanos();
    let period_ns = period.as_nanos().max(1);
    let steps = behind / period_ns + 1;
    due + Duration::from_nanos((steps * period_ns).min(u128::from(u64::MAX)) as u64)
}

struct Bus {
    link: Link,
    units: Vec<Unit>,
    events: mpsc::Sender<DriverEvent>,
}

/// Runs the line until the hub goes away.
pub(crate) async fn run(
    transport: Transport,
    units: Vec<UnitConfig>,
    events: mpsc::Sender<DriverEvent>,
    mut writes: mpsc::Receiver<WriteCommand>,
) {
    let now = Instant::now();
    let units: Vec<Unit> = units
        .into_iter()
        .map(|cfg| {
            let seed = now_ms() ^ (cfg.device.0 as u64) << 32;
            Unit::new(cfg, now, seed)
        })
        .collect();
    for u in &units {
        tracing::info!(
            device = u.cfg.device.0,
            unit = u.cfg.unit,
            tags = u.cfg.tags.len(),
            requests = u.groups.iter().map(|g| g.reads.len()).sum::<usize>(),
            "Modbus poll plan"
        );
    }
    let mut bus = Bus {
        link: Link::new(transport),
        units,
        events,
    };
    loop {
        let next = bus
            .units
            .iter()
            .enumerate()
            .filter_map(|(u, unit)| unit.next().map(|(g, due)| (u, g, due)))
            .min_by_key(|(_, _, due)| *due);
        let alive = match next {
            Some((u, g, due)) => tokio::select! {
                // A write never waits behind a poll that has not started.
                biased;
                w = writes.recv() => match w {
                    Some(w) => bus.write(w).await,
                    None => false,
                },
                _ = sleep_until(due) => bus.poll(u, g, &mut writes).await,
            },
            None => match writes.recv().await {
                Some(w) => bus.write(w).await,
                None => false,
            },
        };
        if !alive {
            return;
        }
    }
}

impl Bus {
    /// Whether every unit but `u` is failing: then nobody on the line answers, and the
    /// port or connection is reopened in case the fault is there.
    fn no_other_unit_answers(&self, u: usize) -> bool {
        self.units
            .iter()
            .enumerate()
            .all(|(i, unit)| i == u || unit.failures > 0)
    }

    /// Reads group `g` of unit `u` once. False when the hub is gone.
    async fn poll(
        &mut self,
        u: usize,
        g: usize,
        writes: &mut mpsc::Receiver<WriteCommand>,
    ) -> bool {
        let due = self.units[u].groups[g].next_due;
        if !self.link.is_open()
            && let Err(e) = self.link.open(self.units[u].cfg.timeout).await
        {
            return self.failed(u, g, due, e).await;
        }
        let mut samples = Vec::new();
        let mut i = 0;
        while i < self.units[u].groups[g].reads.len() {
            // Writes that arrived meanwhile go before the next read.
            while let Ok(w) = writes.try_recv() {
                if !self.write(w).await {
                    return false;
                }
            }
            if !self.link.is_open() {
                let e = "the connection was lost during a write".to_owned();
                return self.failed(u, g, due, e).await;
            }
            let unit = &self.units[u];
            let r = &unit.groups[g].reads[i];
            let t = now_ms();
            let op = Op::Read(r.kind, r.start, r.count);
            match self.link.call(unit.cfg.unit, unit.cfg.timeout, op).await {
                Ok(data) => {
                    let unit = &self.units[u];
                    let r = &unit.groups[g].reads[i];
                    for &k in &r.tags {
                        let tag = &unit.cfg.tags[k];
                        samples.push(match tag.decode(&data, r.start) {
                            Ok(v) => sample(tag.id, Some(v), Quality::Good, t),
                            Err(why) => {
                                tracing::warn!(device = unit.cfg.device.0, address = %tag.address, "{why}");
                                sample(tag.id, None, Quality::Bad, t)
                            }
                        });
                    }
                    i += 1;
                }
                Err(Failure::Exception(ExceptionCode::IllegalDataAddress))
                    if self.units[u].groups[g].reads[i].tags.len() > 1 =>
                {
                    // Some tag in the block does not exist: halve until it stands alone.
                    let unit = &mut self.units[u];
                    if let Some((a, b)) = split(&unit.groups[g].reads[i], &unit.spans) {
                        unit.groups[g].reads.splice(i..=i, [a, b]);
                    }
                }
                Err(Failure::Exception(exception)) => {
                    let unit = &self.units[u];
                    for &k in &unit.groups[g].reads[i].tags {
                        let tag = &unit.cfg.tags[k];
                        tracing::warn!(device = unit.cfg.device.0, address = %tag.address, "Modbus exception {exception:?}");
                        samples.push(sample(tag.id, None, Quality::Bad, t));
                    }
                    i += 1;
                }
                Err(Failure::Timeout(e)) => {
                    let alive = self.failed(u, g, due, e).await;
                    if self.no_other_unit_answers(u) {
                        self.link.close();
                    }
                    return alive;
                }
                Err(Failure::Transport(e) | Failure::Refused(e)) => {
                    return self.failed(u, g, due, e).await;
                }
            }
            // Each read's values go out as soon as they are decoded, so a change waits for
            // its own read, not for the whole cycle. Until the unit is online they are held,
            // so its birth carries every value.
            let unit = &mut self.units[u];
            if !samples.is_empty() {
                if unit.online {
                    if !send(
                        &self.events,
                        DriverEvent::Samples(std::mem::take(&mut samples)),
                    )
                    .await
                    {
                        return false;
                    }
                } else {
                    unit.pending.append(&mut samples);
                }
            }
        }
        let now = Instant::now();
        let unit = &mut self.units[u];
        unit.failures = 0;
        unit.backoff.reset();
        unit.hold_until = now;
        let group = &mut unit.groups[g];
        group.next_due = next_tick(due, group.period, now);
        group.done = true;
        if !unit.online && unit.groups.iter().all(|g| g.done) {
            unit.online = true;
            let pending = std::mem::take(&mut unit.pending);
            let device = unit.cfg.device;
            if !pending.is_empty() && !send(&self.events, DriverEvent::Samples(pending)).await {
                return false;
            }
            return send(
                &self.events,
                DriverEvent::DeviceStatus {
                    device,
                    online: true,
                    error: None,
                },
            )
            .await;
        }
        true
    }

    /// A failed cycle of unit `u`: count it, hold the unit back, and after `offline_after`
    /// of them in a row report the device offline with every tag stale.
    async fn failed(&mut self, u: usize, g: usize, due: Instant, error: String) -> bool {
        let now = Instant::now();
        let unit = &mut self.units[u];
        unit.failures += 1;
        unit.hold_until = now + unit.backoff.next_delay();
        let group = &mut unit.groups[g];
        group.next_due = next_tick(due, group.period, now);
        tracing::debug!(
            device = unit.cfg.device.0,
            unit = unit.cfg.unit,
            failures = unit.failures,
            "{error}"
        );
        if unit.failures != unit.cfg.offline_after {
            return true;
        }
        unit.online = false;
        unit.pending.clear();
        for group in &mut unit.groups {
            group.done = false;
        }
        let t = now_ms();
        let stale = unit
            .cfg
            .tags
            .iter()
            .map(|tag| sample(tag.id, None, Quality::Stale, t))
            .collect();
        let device = unit.cfg.device;
        send(&self.events, DriverEvent::Samples(stale)).await
            && send(
                &self.events,
                DriverEvent::DeviceStatus {
                    device,
                    online: false,
                    error: Some(error),
                },
            )
            .await
    }

    /// Carries out a write and publishes the value read back. False when the hub is gone.
    async fn write(&mut self, w: WriteCommand) -> bool {
        let result = self.try_write(&w).await;
        if let Err(e) = &result {
            tracing::warn!(tag = w.tag.0, "write refused: {e}");
        }
        let sample = result.as_ref().ok().cloned();
        if let Some(reply) = w.reply {
            let _ = reply.send(result.map(|_| ()));
        }
        match sample {
            Some(s) => send(&self.events, DriverEvent::Samples(vec![s])).await,
            None => true,
        }
    }

    async fn try_write(&mut self, w: &WriteCommand) -> Result<TagSample, String> {
        // Each unit's tags are in id order (the model's order): no map per tag needed.
        let (u, k) = self
            .units
            .iter()
            .enumerate()
            .find_map(|(u, unit)| {
                let k = unit.cfg.tags.binary_search_by_key(&w.tag, |t| t.id).ok()?;
                Some((u, k))
            })
            .ok_or("the tag is not on this device")?;
        let unit = &self.units[u];
        let tag = unit.cfg.tags[k].clone();
        let (id, limit) = (unit.cfg.unit, unit.cfg.timeout);
        if !tag.writable || !tag.address.kind.is_writable() {
            return Err(format!("{} is not writable", tag.address));
        }
        if !self.link.is_open() {
            return Err("the device is not connected".to_owned());
        }
        if unit.failures > 0 {
            // On a shared line a write to a silent unit would cost everyone its timeout.
            return Err(format!(
                "the device (unit {id}) did not answer its last poll; the write was not sent"
            ));
        }
        let a = tag.address.offset;
        let outcome = async {
            match (tag.address.kind, tag.address.bit, &w.value) {
                (RegisterKind::Coil, _, Value::Bool(on)) => {
                    self.link.call(id, limit, Op::WriteCoil(a, *on)).await
                }
                (_, Some(bit), Value::Bool(on)) => {
                    // Read-modify-write: the other 15 bits belong to someone else.
                    let op = Op::Read(RegisterKind::HoldingRegister, a, 1);
                    let word = match self.link.call(id, limit, op).await? {
                        Data::Words(words) => words.first().copied().unwrap_or(0),
                        _ => 0,
                    };
                    let mask = 1u16 << bit;
                    let word = if *on { word | mask } else { word & !mask };
                    self.link.call(id, limit, Op::WriteRegister(a, word)).await
                }
                (_, None, value) => {
                    if value.datatype() != tag.datatype {
                        return Err(Failure::Refused(format!(
                            "a {} value cannot be written to a {} tag",
                            value.datatype(),
                            tag.datatype
                        )));
                    }
                    let raw = match &tag.conversion {
                        Some(c) => c.to_raw(value).map_err(Failure::Refused)?,
                        None => value.clone(),
                    };
                    let length = usize::from(tag.length);
                    let regs = codec::encode(&raw, tag.raw_type(), tag.order, length)
                        .map_err(|e| Failure::Refused(e.to_string()))?;
                    let op = if regs.len() == 1 {
                        Op::WriteRegister(a, regs[0])
                    } else {
                        Op::WriteRegisters(a, &regs)
                    };
                    self.link.call(id, limit, op).await
                }
                (_, _, value) => Err(Failure::Refused(format!(
                    "a {} value cannot be written to a bit",
                    value.datatype()
                ))),
            }?;
            // Read back what the PLC now holds: that, not the request, is the new value.
            let back = Op::Read(tag.address.kind, a, tag.count());
            self.link.call(id, limit, back).await
        }
        .await;
        match outcome {
            Ok(data) => {
                let value = tag.decode(&data, a)?;
                Ok(sample(tag.id, Some(value), Quality::Good, now_ms()))
            }
            Err(Failure::Exception(e)) => Err(format!("the device refused the write: {e:?}")),
            Err(Failure::Refused(e)) => Err(e),
            Err(Failure::Timeout(e)) => {
                if self.no_other_unit_answers(u) {
                    self.link.close();
                }
                Err(format!("the write got no answer: {e}"))
            }
            Err(Failure::Transport(e)) => Err(format!("connection lost during the write: {e}")),
        }
    }
}

/// Hands an event to the hub; false when the hub is gone. A free function so that the
/// future borrows only the channel, not the line (whose Modbus client is not `Sync`).
async fn send(events: &mpsc::Sender<DriverEvent>, event: DriverEvent) -> bool {
    events.send(event).await.is_ok()
}

fn sample(tag: TagId, value: Option<Value>, quality: Quality, timestamp_ms: u64) -> TagSample {
    TagSample {
        tag,
        value,
        quality,
        timestamp_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_polls_skip_to_the_next_tick_on_the_grid() {
        let t0 = Instant::now();
        let p = Duration::from_millis(100);
        assert_eq!(next_tick(t0, p, t0), t0 + p);
        assert_eq!(next_tick(t0, p, t0 + Duration::from_millis(50)), t0 + p);
        assert_eq!(
            next_tick(t0, p, t0 + Duration::from_millis(100)),
            t0 + 2 * p
        );
        assert_eq!(
            next_tick(t0, p, t0 + Duration::from_millis(350)),
            t0 + 4 * p
        );
    }
}
