//! The hub: last value of every tag, report by exception, and fan-out to the sinks.
//!
//! Drivers send [`DriverEvent`]s into bounded channels. The hub keeps the last reported
//! sample per tag, drops samples that change nothing (or move a numeric value no more than
//! the tag's deadband), lets a bad or stale sample keep the last value read (good or
//! uncertain), and hands the changes to each sink's [`Mailbox`]. A mailbox holds at most one
//! pending sample per tag (a newer one replaces the older), so a slow sink costs memory
//! bounded by the tag count and never blocks the hub or a poll loop.
//!
//! When the model changes, the pipeline hands the hub a [`Reload`] and the hub switches in
//! one step, with no await in between: drivers whose device and tags are unchanged keep
//! running, the others stop and new ones start; the last values and every mailbox's pending
//! samples move to the new tag numbers; and each mailbox gets its sink's part of the new
//! model ahead of anything numbered by it. A reload may also bring new mailboxes (a new
//! Sparkplug session) and drop others: a new one is seeded with every last value and every
//! online device, as if they had just changed. Drivers keep the tag and device numbers of the
//! model they were started with, so the hub translates each batch of drivers' numbers
//! ([`DriverSet`]) to the running model's, and writes back.

use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use southbound::{DeviceId, DriverEvent, DriverHandle, WriteCommand};
use tokio::sync::{Notify, mpsc};
use uns_model::{Model, TagId, TagSample};

use crate::pipeline::SinkModel;

/// "No such tag or device" in the `u32` tables below: four bytes a tag rather than eight
/// for an `Option<u32>`, because a 100,000-tag node has several such tables.
pub const NONE: u32 = u32::MAX;

/// Pending changes for one sink.
#[derive(Debug)]
pub struct Mailbox {
    pending: Mutex<Pending>,
    notify: Notify,
}

#[derive(Debug, Default)]
struct Pending {
    /// Per tag, the index of its undelivered sample in `samples`, or [`NONE`]: four bytes a
    /// tag, because a 100,000-tag node has a mailbox per sink.
    slot: Vec<u32>,
    /// Latest undelivered samples, in the order their tags first changed.
    samples: Vec<TagSample>,
    /// Device status changes in order (they are rare and each one is a birth or death).
    status: VecDeque<(DeviceId, bool)>,
    /// The sink's part of a new model, to take before the samples (which are numbered by it).
    model: Option<SinkModel>,
}

/// What a sink takes from its mailbox in one go: first the new model, if any, then the
/// samples and device status changes, all numbered by that model.
#[derive(Debug, Default)]
pub struct Delivery {
    pub model: Option<SinkModel>,
    pub samples: Vec<TagSample>,
    pub status: Vec<(DeviceId, bool)>,
}

impl Mailbox {
    pub fn new(tag_count: usize) -> Arc<Mailbox> {
        Arc::new(Mailbox {
            pending: Mutex::new(Pending {
                slot: vec![NONE; tag_count],
                ..Pending::default()
            }),
            notify: Notify::new(),
        })
    }

    fn post(&self, samples: &[TagSample], status: Option<(DeviceId, bool)>) {
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let p = &mut *p;
            for s in samples {
                let Some(slot) = p.slot.get_mut(s.tag.index()) else {
                    continue;
                };
                match p.samples.get_mut(*slot as usize) {
                    Some(pending) if *slot != NONE => *pending = s.clone(),
                    _ => {
                        *slot = p.samples.len() as u32;
                        p.samples.push(s.clone());
                    }
                }
            }
            p.status.extend(status);
        }
        self.notify.notify_one();
    }

    /// Renumbers what is pending for a new model of `tag_count` tags and queues the sink's
    /// part of it. `tags` maps each tag of the running model to its new number, `kept` each
    /// device whose driver keeps running; a status change of any other device came from a
    /// driver that stopped, and its new driver reports afresh.
    fn reload(&self, model: SinkModel, tags: &[u32], tag_count: usize, kept: &[u32]) {
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            let p = &mut *p;
            p.slot = vec![NONE; tag_count];
            let samples = std::mem::take(&mut p.samples);
            for mut s in samples {
                let Some(&to) = tags.get(s.tag.index()) else {
                    continue;
                };
                let Some(slot) = p.slot.get_mut(to as usize) else {
                    continue;
                };
                *slot = p.samples.len() as u32;
                s.tag = TagId(to);
                p.samples.push(s);
            }
            p.status.retain_mut(|(device, _)| match kept.get(device.0) {
                Some(&to) if to != NONE => {
                    device.0 = to as usize;
                    true
                }
                _ => false,
            });
            p.model = Some(match p.model.take() {
                Some(earlier) => earlier.then(model),
                None => model,
            });
        }
        self.notify.notify_one();
    }

    /// Waits until something is pending and takes all of it.
    pub async fn take(&self) -> Delivery {
        loop {
            {
                let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                if !p.samples.is_empty() || !p.status.is_empty() || p.model.is_some() {
                    let samples = std::mem::take(&mut p.samples);
                    for s in &samples {
                        if let Some(slot) = p.slot.get_mut(s.tag.index()) {
                            *slot = NONE;
                        }
                    }
                    return Delivery {
                        model: p.model.take(),
                        samples,
                        status: p.status.drain(..).collect(),
                    };
                }
            }
            self.notify.notified().await;
        }
    }
}

/// Whether `new` is worth reporting after `reported`, for a tag with `deadband` (engineering
/// units, 0 = any change). A quality change always is: a value coming back good after bad,
/// stale or uncertain is news even if it did not move, and so is a good value turning
/// uncertain. Between two samples of the same quality the deadband applies whatever the
/// quality: an uncertain value is a reading like a good one (a sensor out of calibration
/// still moves with the process), and reporting its every wobble would cost the sinks more
/// than a good value's. Only numeric scalars have a distance for the
/// deadband to measure; an array, a datetime or a string is reported on any change (an
/// array when any element or its length changed).
fn reportable(reported: &TagSample, new: &TagSample, deadband: f64) -> bool {
    if reported.quality != new.quality {
        return true;
    }
    match (&reported.value, &new.value) {
        (Some(a), Some(b)) if deadband > 0.0 => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => (x - y).abs() > deadband,
            _ => a != b,
        },
        (a, b) => a != b,
    }
}

/// A write on its way to a driver, numbered by the model of `generation` (a sink may send
/// one just before it takes a new model).
#[derive(Debug)]
pub struct Write {
    pub generation: u64,
    pub command: WriteCommand,
}

/// A new model for the hub, prepared by the pipeline: the numbers are those of the running
/// model ("old") and of the new one.
#[derive(Debug)]
pub struct Reload {
    /// Counts the models; writes carry it.
    pub generation: u64,
    /// Per old tag: its new number, or [`NONE`] when it is gone (or no longer the same
    /// tag: another device or type). Its last value moves with it.
    pub tags: Vec<u32>,
    /// Per old device: its new number when its driver keeps running, else [`NONE`].
    pub kept: Vec<u32>,
    /// The drivers to start: a model holding just their devices and tags, whose numbers
    /// `start_devices` and `start_tags` map to the new model's.
    pub start: Model,
    pub start_devices: Vec<u32>,
    pub start_tags: Vec<u32>,
    pub opcua_pki: Option<southbound::opcua::pki::Pki>,
    pub device_count: usize,
    /// Per new device: what the dashboard shows of it.
    pub devices: Vec<DeviceInfo>,
    /// Per new tag: its device.
    pub tag_devices: Vec<u32>,
    /// Per new tag: its deadband (0 for none), or empty when no tag has one.
    pub deadbands: Vec<f64>,
    /// Every sink's mailbox from now on, in order, with its part of the new model (`None`
    /// for a sink that was started with it).
    pub sinks: Vec<(Arc<Mailbox>, Option<SinkModel>)>,
    /// Told once the hub runs the new model.
    pub taken: Option<std::sync::mpsc::SyncSender<()>>,
}

/// Drivers started together, with the numbers they know their devices and tags by.
#[derive(Debug)]
struct DriverSet {
    events: mpsc::Receiver<DriverEvent>,
    /// Per tag number of these drivers: the running model's, or [`NONE`] (gone, or its
    /// driver was replaced: a last sample still queued from it is dropped).
    tags: Vec<u32>,
    /// Per device number of these drivers: the running model's, or [`NONE`].
    devices: Vec<u32>,
}

/// Events queued from one set of drivers before they wait for the hub.
const EVENT_QUEUE: usize = 1024;

/// A device as the dashboard names it.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    pub name: String,
    pub driver: String,
    pub enabled: bool,
}

/// The hub's state; [`Hub::run`] drives it.
#[derive(Debug)]
pub struct Hub {
    sets: Vec<DriverSet>,
    /// The set polled first next time, so a busy set cannot starve the others.
    first_set: usize,
    /// Per device: its driver, `None` when disabled.
    drivers: Vec<Option<DriverHandle>>,
    /// Per tag: its device.
    tag_devices: Vec<u32>,
    /// Per tag: the number its driver knows it by.
    tag_local: Vec<u32>,
    /// Per tag (0 for none), or empty when no tag has a deadband.
    deadbands: Vec<f64>,
    sinks: Vec<Arc<Mailbox>>,
    live: Arc<web::LiveValues>,
    generation: u64,
    /// Old → new tag numbers of the last reload, for writes sent just before it.
    previous: Vec<u32>,
    /// Per device: its name, for the dashboard.
    device_names: Vec<String>,
    /// Per device: its driver's last word on whether it is online, for new sinks.
    online: Vec<bool>,
    /// The dashboard's board: device status and sample counts.
    status: Arc<web::StatusBoard>,
}

impl Hub {
    /// A hub with no model yet: [`Hub::reload`] gives it one.
    pub fn new(sinks: Vec<Arc<Mailbox>>, live: Arc<web::LiveValues>) -> Hub {
        Hub {
            sets: Vec::new(),
            first_set: 0,
            drivers: Vec::new(),
            tag_devices: Vec::new(),
            tag_local: Vec::new(),
            deadbands: Vec::new(),
            sinks,
            live,
            generation: 0,
            previous: Vec::new(),
            device_names: Vec::new(),
            online: Vec::new(),
            status: Arc::default(),
        }
    }

    /// Reports device status and sample counts to `board` (the web dashboard).
    pub fn with_status(mut self, board: Arc<web::StatusBoard>) -> Hub {
        self.status = board;
        self
    }

    /// Switches to a new model (see the module documentation). Nothing here waits, so no
    /// event or write is handled half under one model and half under the other.
    pub fn reload(&mut self, r: Reload) {
        let Reload {
            generation,
            tags,
            kept,
            start,
            start_devices,
            start_tags,
            opcua_pki,
            device_count,
            devices,
            tag_devices,
            deadbands,
            sinks,
            taken,
        } = r;
        // The dashboard lists the new model's devices; a device that stays keeps its counts.
        self.status.update(|s| {
            let mut old = std::mem::take(&mut s.devices);
            s.devices = devices
                .iter()
                .map(|d| {
                    let mut entry = old
                        .iter()
                        .position(|o| o.name == d.name)
                        .map(|i| old.swap_remove(i))
                        .unwrap_or_default();
                    entry.name.clone_from(&d.name);
                    entry.driver.clone_from(&d.driver);
                    entry.enabled = d.enabled;
                    if !d.enabled {
                        entry.online = false;
                    }
                    entry
                })
                .collect();
        });
        self.device_names = devices.into_iter().map(|d| d.name).collect();
        let kept_device = |device: u32| {
            kept.get(device as usize)
                .copied()
                .filter(|&d| d != NONE)
                .is_some()
        };
        // The numbers of running drivers, moved to the new model.
        let mut tag_local = vec![NONE; tag_devices.len()];
        for (old, &local) in self.tag_local.iter().enumerate() {
            if let (Some(&to), Some(&device)) = (tags.get(old), self.tag_devices.get(old))
                && to != NONE
                && kept_device(device)
                && let Some(slot) = tag_local.get_mut(to as usize)
            {
                *slot = local;
            }
        }
        for set in &mut self.sets {
            for tag in &mut set.tags {
                let device = self.tag_devices.get(*tag as usize).copied();
                *tag = match (tags.get(*tag as usize), device) {
                    (Some(&to), Some(device)) if kept_device(device) => to,
                    _ => NONE,
                };
            }
            for device in &mut set.devices {
                *device = kept.get(*device as usize).copied().unwrap_or(NONE);
            }
        }
        // Replaced and removed drivers stop here (dropping the handle aborts the task),
        // before their successors start: a serial port is free for the new line task.
        let mut drivers: Vec<Option<DriverHandle>> = (0..device_count).map(|_| None).collect();
        for (old, handle) in std::mem::take(&mut self.drivers).into_iter().enumerate() {
            if let Some(&to) = kept.get(old)
                && let Some(slot) = drivers.get_mut(to as usize)
            {
                *slot = handle;
            }
        }
        if !start.devices.is_empty() {
            let (events, rx) = mpsc::channel(EVENT_QUEUE);
            let handles = southbound::spawn_model(&start, opcua_pki.as_ref(), events);
            for (local, handle) in handles.into_iter().enumerate() {
                if let (Some(handle), Some(&to)) = (handle, start_devices.get(local))
                    && let Some(slot) = drivers.get_mut(to as usize)
                {
                    *slot = Some(handle);
                }
            }
            for (local, &to) in start_tags.iter().enumerate() {
                if let Some(slot) = tag_local.get_mut(to as usize) {
                    *slot = local as u32;
                }
            }
            self.sets.push(DriverSet {
                events: rx,
                tags: start_tags,
                devices: start_devices,
            });
        }
        drop(start);
        let tag_count = tag_devices.len();
        let moves = tags
            .iter()
            .enumerate()
            .filter(|(_, to)| **to != NONE)
            .map(|(from, &to)| (TagId(from as u32), TagId(to)));
        self.live.remap(tag_count, moves);
        // A device whose driver keeps running keeps its state; a new driver reports afresh.
        let mut online = vec![false; device_count];
        for (old, &was) in self.online.iter().enumerate() {
            if let Some(&to) = kept.get(old)
                && let Some(slot) = online.get_mut(to as usize)
            {
                *slot = was;
            }
        }
        self.online = online;
        let old_sinks = std::mem::take(&mut self.sinks);
        let mut seed = None;
        for (sink, model) in sinks {
            if old_sinks.iter().any(|old| Arc::ptr_eq(old, &sink)) {
                if let Some(model) = model {
                    sink.reload(model, &tags, tag_count, &kept);
                }
            } else {
                // A sink that starts now: everything it would have been told so far.
                let seed = seed.get_or_insert_with(|| self.live.all());
                sink.post(seed, None);
                for (device, _) in self.online.iter().enumerate().filter(|(_, on)| **on) {
                    sink.post(&[], Some((DeviceId(device), true)));
                }
            }
            self.sinks.push(sink);
        }
        self.drivers = drivers;
        self.tag_devices = tag_devices;
        self.tag_local = tag_local;
        self.deadbands = deadbands;
        self.previous = tags;
        self.generation = generation;
        if let Some(taken) = taken {
            let _ = taken.send(());
        }
    }

    /// Runs the hub: driver events, writes and new models, until the process ends.
    pub async fn run(
        mut self,
        mut writes: mpsc::Receiver<Write>,
        mut reloads: mpsc::UnboundedReceiver<Reload>,
    ) {
        loop {
            tokio::select! {
                (set, event) = self.next_event() => self.event(set, event),
                Some(write) = writes.recv() => self.write(write),
                Some(reload) = reloads.recv() => self.reload(reload),
            }
        }
    }

    /// The next event of any driver set, with the set's index; a set whose drivers are all
    /// gone is removed. Pending while there is none.
    async fn next_event(&mut self) -> (usize, DriverEvent) {
        poll_fn(|cx| {
            let mut tried = 0;
            while tried < self.sets.len() {
                let index = (self.first_set + tried) % self.sets.len();
                match self.sets[index].events.poll_recv(cx) {
                    Poll::Ready(Some(event)) => {
                        self.first_set = index + 1;
                        return Poll::Ready((index, event));
                    }
                    // Another set takes its place: poll that one next.
                    Poll::Ready(None) => {
                        self.sets.swap_remove(index);
                    }
                    Poll::Pending => tried += 1,
                }
            }
            Poll::Pending
        })
        .await
    }

    fn event(&mut self, set: usize, event: DriverEvent) {
        let Some(set) = self.sets.get(set) else {
            return;
        };
        match event {
            DriverEvent::Samples(mut samples) => {
                samples.retain_mut(|s| match set.tags.get(s.tag.index()) {
                    Some(&to) if to != NONE => {
                        s.tag = TagId(to);
                        true
                    }
                    _ => false,
                });
                let deadbands = &self.deadbands;
                // The web view's table is the hub's last-value table too.
                let changes = self.live.record(samples, |prev, sample| {
                    let Some(prev) = prev else { return true };
                    if sample.value.is_none() {
                        // A failed read keeps the last value; the quality says why.
                        sample.value = prev.value.clone();
                    }
                    let deadband = deadbands.get(sample.tag.index()).copied().unwrap_or(0.0);
                    reportable(prev, sample, deadband) // report by exception
                });
                if !changes.is_empty() {
                    for sink in &self.sinks {
                        sink.post(&changes, None);
                    }
                }
                // A batch comes from one poll of one device: count it against the device of
                // its first tag.
                if let Some(name) = changes
                    .first()
                    .and_then(|s| self.tag_devices.get(s.tag.index()))
                    .and_then(|&d| self.device_names.get(d as usize))
                {
                    let now = southbound::now_ms();
                    self.status.update(|s| {
                        let d = s.device(name);
                        d.samples += changes.len() as u64;
                        d.last_sample_ms = Some(now);
                    });
                }
            }
            DriverEvent::DeviceStatus {
                device,
                online,
                error,
            } => {
                let Some(&to) = set.devices.get(device.0).filter(|&&d| d != NONE) else {
                    return;
                };
                let device = DeviceId(to as usize);
                match &error {
                    Some(e) => tracing::warn!(device = device.0, online, "device status: {e}"),
                    None => tracing::info!(device = device.0, online, "device status"),
                }
                if let Some(slot) = self.online.get_mut(device.0) {
                    *slot = online;
                }
                if let Some(name) = self.device_names.get(device.0) {
                    let now = southbound::now_ms();
                    self.status.update(|s| {
                        let d = s.device(name);
                        if d.online != online || d.since_ms.is_none() {
                            d.since_ms = Some(now);
                            if !online {
                                d.failures += 1;
                            }
                        }
                        d.online = online;
                        if error.is_some() {
                            d.last_error = error;
                        }
                    });
                }
                for sink in &self.sinks {
                    sink.post(&[], Some((device, online)));
                }
            }
        }
    }

    fn write(&mut self, write: Write) {
        let Write {
            generation,
            mut command,
        } = write;
        let tag = command.tag.0;
        let current = if generation == self.generation {
            Some(tag)
        } else if generation + 1 == self.generation {
            self.previous.get(command.tag.index()).copied()
        } else {
            None
        };
        let target = current.filter(|&t| t != NONE).and_then(|t| {
            let device = *self.tag_devices.get(t as usize)?;
            let driver = self.drivers.get(device as usize)?.as_ref()?;
            Some((driver, *self.tag_local.get(t as usize)?))
        });
        let reason = match (current, target) {
            (_, Some((driver, local))) => {
                command.tag = TagId(local);
                match driver.write(command) {
                    Ok(()) => return,
                    Err(e) => {
                        tracing::warn!("write to tag {tag} dropped: {e}");
                        return;
                    }
                }
            }
            (Some(t), None) if t != NONE => {
                format!("tag {t} has no running driver (device disabled?)")
            }
            _ => format!(
                "tag {tag} was removed from the model (or the model changed again) while the \
                 write was on its way; nothing was written"
            ),
        };
        match command.reply {
            Some(reply) => {
                let _ = reply.send(Err(reason));
            }
            None => tracing::warn!("write refused: {reason}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uns_model::{Array, Quality, TagId, Value};

    fn sample(tag: u32, v: i32) -> TagSample {
        TagSample {
            tag: TagId(tag),
            value: Some(Value::Int32(v)),
            quality: Quality::Good,
            timestamp_ms: v as u64,
        }
    }

    fn at(quality: Quality, v: f64) -> TagSample {
        TagSample {
            tag: TagId(0),
            value: Some(Value::Float64(v)),
            quality,
            timestamp_ms: 0,
        }
    }

    #[test]
    fn deadband_holds_small_moves_but_never_a_quality_change() {
        let good = |v| at(Quality::Good, v);
        assert!(
            !reportable(&good(10.0), &good(10.5), 0.5),
            "within the band"
        );
        assert!(reportable(&good(10.0), &good(10.6), 0.5), "beyond it");
        assert!(reportable(&good(10.0), &good(9.4), 0.5), "either way");
        assert!(
            reportable(&good(10.0), &good(10.1), 0.0),
            "no band: any change"
        );
        assert!(!reportable(&good(10.0), &good(10.0), 0.0), "no change");
        // Bad → good with the same value still reports.
        assert!(reportable(&at(Quality::Bad, 10.0), &good(10.0), 0.5));
        assert!(reportable(&good(10.0), &at(Quality::Stale, 10.0), 0.5));
        // Non-numeric values compare exactly whatever the band.
        let text = |s: &str| TagSample {
            value: Some(Value::String(s.into())),
            ..good(0.0)
        };
        assert!(reportable(&text("a"), &text("b"), 5.0));
    }

    #[test]
    fn an_uncertain_value_reports_on_a_quality_change_and_beyond_the_deadband() {
        let good = |v| at(Quality::Good, v);
        let uncertain = |v| at(Quality::Uncertain, v);
        // Into and out of uncertain, with or without a move, inside the band or not.
        assert!(reportable(&good(10.0), &uncertain(10.0), 0.5));
        assert!(reportable(&uncertain(10.0), &good(10.0), 0.5));
        assert!(reportable(&uncertain(10.0), &at(Quality::Bad, 10.0), 0.5));
        assert!(reportable(&at(Quality::Stale, 10.0), &uncertain(10.2), 0.5));
        // Uncertain to uncertain: the band holds small moves as it does for good values.
        assert!(!reportable(&uncertain(10.0), &uncertain(10.5), 0.5));
        assert!(reportable(&uncertain(10.0), &uncertain(10.6), 0.5));
        assert!(reportable(&uncertain(10.0), &uncertain(10.1), 0.0));
        assert!(!reportable(&uncertain(10.0), &uncertain(10.0), 0.0));
    }

    #[test]
    fn an_array_changes_when_any_element_does_and_a_datetime_on_any_change() {
        let good = |value: Value| TagSample {
            value: Some(value),
            ..at(Quality::Good, 0.0)
        };
        let floats = |v: &[f32]| good(Array::Float32(v.to_vec()).into());
        let a = floats(&[1.0, 2.0, 3.0]);
        assert!(!reportable(&a, &floats(&[1.0, 2.0, 3.0]), 0.0));
        assert!(
            reportable(&a, &floats(&[1.0, 2.0, 3.5]), 0.0),
            "last element"
        );
        assert!(reportable(&a, &floats(&[1.0, 2.0]), 0.0), "shorter");
        // Validation refuses a deadband on arrays; were one given, it still could not hide
        // a change.
        assert!(reportable(&a, &floats(&[1.1, 2.0, 3.0]), 5.0));
        let t = |ms| good(Value::DateTime(ms));
        assert!(reportable(&t(1000), &t(1001), 5.0));
        assert!(!reportable(&t(1000), &t(1000), 0.0));
    }

    #[tokio::test]
    async fn mailbox_keeps_the_newest_sample_per_tag_in_arrival_order() {
        let m = Mailbox::new(3);
        m.post(&[sample(2, 1), sample(0, 1)], None);
        m.post(&[sample(2, 5)], Some((DeviceId(0), false)));
        let d = m.take().await;
        assert_eq!(d.samples, vec![sample(2, 5), sample(0, 1)]);
        assert_eq!(d.status, vec![(DeviceId(0), false)]);
        // Out-of-range tags are ignored rather than panicking.
        m.post(&[sample(7, 1), sample(1, 2)], None);
        assert_eq!(m.take().await.samples, vec![sample(1, 2)]);
    }

    fn uns_model(moved: Vec<u32>) -> SinkModel {
        SinkModel::Uns(Box::new(crate::uns::UnsModel::new(Vec::new(), moved)))
    }

    #[tokio::test]
    async fn a_reload_renumbers_what_is_pending_and_comes_first() {
        let m = Mailbox::new(3);
        m.post(&[sample(2, 1), sample(0, 1), sample(1, 1)], None);
        m.post(&[], Some((DeviceId(0), false)));
        m.post(&[], Some((DeviceId(1), true)));
        // Tag 0 → 1, tag 1 is gone, tag 2 → 0; device 0 keeps its driver as device 1,
        // device 1's driver is replaced.
        m.reload(uns_model(vec![1, NONE, 0]), &[1, NONE, 0], 2, &[1, NONE]);
        // A sample of the new model, after the reload, goes to its new slot.
        m.post(&[sample(0, 7)], None);
        let d = m.take().await;
        assert!(matches!(d.model, Some(SinkModel::Uns(_))));
        assert_eq!(d.samples, vec![sample(0, 7), sample(1, 1)]);
        assert_eq!(d.status, vec![(DeviceId(1), false)]);
    }

    #[tokio::test]
    async fn reloads_not_yet_taken_add_up() {
        let m = Mailbox::new(3);
        m.reload(uns_model(vec![2, 0, NONE]), &[2, 0, NONE], 3, &[]);
        m.reload(uns_model(vec![NONE, 1, 0]), &[NONE, 1, 0], 2, &[]);
        let Some(SinkModel::Uns(model)) = m.take().await.model else {
            panic!("no model");
        };
        // First tag 0 → 2 → 0, tag 1 → 0 → gone, tag 2 gone.
        let combined = crate::uns::UnsModel::new(Vec::new(), vec![2, 0, NONE])
            .then(crate::uns::UnsModel::new(Vec::new(), vec![NONE, 1, 0]));
        assert_eq!(format!("{model:?}"), format!("{combined:?}"));
        assert!(format!("{model:?}").contains("moved: [0, 4294967295, 4294967295]"));
    }

    fn test_sample(tag: u32, v: i32) -> DriverEvent {
        DriverEvent::Samples(vec![sample(tag, v)])
    }

    /// A reload that starts no driver.
    fn reload(generation: u64, tags: Vec<u32>, kept: Vec<u32>, tag_devices: Vec<u32>) -> Reload {
        let mut start = uns_model::file::demo_model();
        start.devices.clear();
        start.tags.clear();
        Reload {
            generation,
            tags,
            kept,
            start,
            start_devices: Vec::new(),
            start_tags: Vec::new(),
            opcua_pki: None,
            device_count: tag_devices.iter().max().map_or(0, |d| *d as usize + 1),
            devices: (0..tag_devices.iter().max().map_or(0, |d| *d + 1))
                .map(|d| DeviceInfo {
                    name: format!("d{d}"),
                    driver: "simulator".to_owned(),
                    enabled: true,
                })
                .collect(),
            tag_devices,
            deadbands: Vec::new(),
            sinks: Vec::new(),
            taken: None,
        }
    }

    #[tokio::test]
    async fn events_of_kept_drivers_are_renumbered_and_those_of_stopped_ones_dropped() {
        let live = Arc::new(web::LiveValues::new(0));
        let mailbox = Mailbox::new(3);
        let board = Arc::new(web::StatusBoard::default());
        let mut hub = Hub::new(vec![mailbox.clone()], live.clone()).with_status(board.clone());
        // Tags 0 and 1 on device 0, tag 2 on device 1, all read by one set of drivers.
        let mut first = reload(1, Vec::new(), Vec::new(), vec![0, 0, 1]);
        first.sinks = vec![(mailbox.clone(), None)];
        hub.reload(first);
        let (events, rx) = mpsc::channel(8);
        hub.sets.push(DriverSet {
            events: rx,
            tags: vec![0, 1, 2],
            devices: vec![0, 1],
        });
        hub.tag_local = vec![0, 1, 2];
        for (tag, v) in [(0, 10), (1, 11), (2, 12)] {
            events.send(test_sample(tag, v)).await.unwrap();
            let (set, event) = hub.next_event().await;
            hub.event(set, event);
        }
        assert_eq!(live.get(TagId(2)), Some(sample(2, 12)));
        mailbox.take().await;
        // The dashboard counts each device's samples.
        let counts: Vec<(String, u64, bool)> = board
            .snapshot()
            .devices
            .iter()
            .map(|d| (d.name.clone(), d.samples, d.last_sample_ms.is_some()))
            .collect();
        assert_eq!(counts, [("d0".into(), 2, true), ("d1".into(), 1, true)]);

        // A tag is inserted ahead on a new device 0; device 0 becomes 1 and keeps its
        // driver; device 1 is removed.
        let mut second = reload(2, vec![1, 2, NONE], vec![1, NONE], vec![0, 1, 1]);
        second.sinks = vec![(mailbox.clone(), Some(uns_model(vec![1, 2, NONE])))];
        hub.reload(second);
        assert_eq!(live.get(TagId(1)), Some(sample(1, 10)), "moved last value");
        assert_eq!(live.get(TagId(2)), Some(sample(2, 11)));
        assert_eq!(live.get(TagId(0)), None);
        assert_eq!(hub.tag_local, [NONE, 0, 1]);
        // The kept driver still numbers by the first model.
        events.send(test_sample(1, 21)).await.unwrap();
        events.send(test_sample(2, 22)).await.unwrap();
        let device = |d, online| DriverEvent::DeviceStatus {
            device: DeviceId(d),
            online,
            error: None,
        };
        events.send(device(1, false)).await.unwrap();
        events.send(device(0, false)).await.unwrap();
        for _ in 0..4 {
            let (set, event) = hub.next_event().await;
            hub.event(set, event);
        }
        let d = mailbox.take().await;
        assert_eq!(d.samples, vec![sample(2, 21)]);
        assert_eq!(d.status, vec![(DeviceId(1), false)]);
        // ...and shows the offline device (the removed one's news is dropped).
        let status = board.snapshot();
        assert_eq!(status.devices.len(), 2);
        let d1 = &status.devices[1];
        assert!(
            !d1.online && d1.failures == 1 && d1.since_ms.is_some(),
            "{d1:?}"
        );
        assert_eq!(status.devices[0].failures, 0);
        // Its drivers gone, the set is forgotten.
        drop(events);
        let next = tokio::time::timeout(std::time::Duration::from_millis(50), hub.next_event());
        assert!(next.await.is_err());
        assert!(hub.sets.is_empty());
    }

    fn sim_model(devices: &[&str], tags: &[(&str, &str)]) -> Model {
        let mut text = String::from(
            "[namespace]\nenterprise = \"acme\"\nsite = \"plant\"\n\
             [[area]]\nname = \"a\"\n[[area.line]]\nname = \"l\"\n",
        );
        for d in devices {
            text += &format!(
                "[[device]]\nname = \"{d}\"\ndriver = \"simulator\"\nperiod_ms = 3600000\n"
            );
        }
        for (d, t) in tags {
            text += &format!(
                "[[tag]]\ndevice = \"{d}\"\nlocation = \"a/l\"\nname = \"{t}\"\n\
                 datatype = \"int32\"\naddress = \"memory\"\nwritable = true\n"
            );
        }
        uns_model::file::from_toml(&text).unwrap()
    }

    async fn write(writes: &mpsc::Sender<Write>, generation: u64, tag: u32) -> Result<(), String> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let command = WriteCommand {
            tag: TagId(tag),
            value: uns_model::Value::Int32(5),
            reply: Some(reply),
        };
        writes
            .send(Write {
                generation,
                command,
            })
            .await
            .unwrap();
        answer.await.unwrap()
    }

    #[tokio::test]
    async fn writes_reach_the_right_driver_across_a_reload() {
        use crate::pipeline::{Fingerprint, Sinks, plan};
        let dir = std::path::Path::new("/nonexistent");
        let none = Sinks {
            sparkplug: 0,
            uns: false,
        };
        let first = sim_model(&["a"], &[("a", "m0"), ("a", "m1")]);
        let p1 = plan(
            &Fingerprint::default(),
            first,
            1,
            none,
            Default::default(),
            dir,
        );
        let mut hub = Hub::new(Vec::new(), Arc::new(web::LiveValues::new(0)));
        hub.reload(p1.reload);
        // Device b and its tag come first now; a keeps its driver.
        let second = sim_model(&["b", "a"], &[("b", "x"), ("a", "m0"), ("a", "m1")]);
        let p2 = plan(&p1.print, second, 2, none, Default::default(), dir);
        assert_eq!((p2.kept, p2.started, p2.stopped), (1, 1, 0));
        hub.reload(p2.reload);
        let (writes, rx) = mpsc::channel(8);
        let (_reloads, reload_rx) = mpsc::unbounded_channel();
        tokio::spawn(hub.run(rx, reload_rx));
        // The simulator refuses a tag number it does not have, so Ok means the right one.
        assert_eq!(write(&writes, 2, 2).await, Ok(()), "a's m1, kept driver");
        assert_eq!(write(&writes, 2, 0).await, Ok(()), "b's x, new driver");
        assert_eq!(write(&writes, 1, 1).await, Ok(()), "m1 as numbered before");
        let stale = write(&writes, 0, 0).await.unwrap_err();
        assert!(stale.contains("while the write was on its way"), "{stale}");
        assert!(write(&writes, 2, 9).await.is_err(), "no such tag");
    }
}
