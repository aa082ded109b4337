//! The hub: last value of every tag, report by exception, and fan-out to the sinks.
//!
//! Drivers send [`DriverEvent`]s into one bounded channel. The hub keeps the last reported
//! sample per tag, drops samples that change nothing (or move a numeric value no more than
//! the tag's deadband), lets a bad or stale sample keep the last value read (good or
//! uncertain), and hands the changes to each sink's [`Mailbox`]. A mailbox holds at most one
//! pending sample per tag (a newer one replaces the older), so a slow sink costs memory
//! bounded by the tag count and never blocks the hub or a poll loop.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use southbound::{DeviceId, DriverEvent, DriverHandle, WriteCommand};
use tokio::sync::{Notify, mpsc};
use uns_model::TagSample;

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
}

const NONE: u32 = u32::MAX;

/// What a sink takes from its mailbox in one go.
#[derive(Debug, Default)]
pub struct Delivery {
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

    /// Waits until something is pending and takes all of it.
    pub async fn take(&self) -> Delivery {
        loop {
            {
                let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
                if !p.samples.is_empty() || !p.status.is_empty() {
                    let samples = std::mem::take(&mut p.samples);
                    for s in &samples {
                        p.slot[s.tag.index()] = NONE;
                    }
                    return Delivery {
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

/// Runs the hub until the driver channel closes. `deadbands` has one entry per tag (0 for
/// none), or none at all when no tag has a deadband.
pub async fn run(
    mut events: mpsc::Receiver<DriverEvent>,
    mut writes: mpsc::Receiver<WriteCommand>,
    drivers: Vec<Option<DriverHandle>>,
    tag_devices: Vec<DeviceId>,
    deadbands: Vec<f64>,
    sinks: Vec<Arc<Mailbox>>,
    live: Arc<web::LiveValues>,
) {
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(DriverEvent::Samples(samples)) => {
                    // The web view's table is the hub's last-value table too.
                    let changes = live.record(samples, |prev, sample| {
                        let Some(prev) = prev else { return true };
                        if sample.value.is_none() {
                            // A failed read keeps the last value; the quality says why.
                            sample.value = prev.value.clone();
                        }
                        let deadband = deadbands.get(sample.tag.index()).copied().unwrap_or(0.0);
                        reportable(prev, sample, deadband) // report by exception
                    });
                    if !changes.is_empty() {
                        for sink in &sinks {
                            sink.post(&changes, None);
                        }
                    }
                }
                Some(DriverEvent::DeviceStatus { device, online, error }) => {
                    match error {
                        Some(e) => tracing::warn!(device = device.0, online, "device status: {e}"),
                        None => tracing::info!(device = device.0, online, "device status"),
                    }
                    for sink in &sinks {
                        sink.post(&[], Some((device, online)));
                    }
                }
                None => return,
            },
            Some(write) = writes.recv() => {
                let driver = tag_devices
                    .get(write.tag.index())
                    .and_then(|d| drivers.get(d.0))
                    .and_then(Option::as_ref);
                match driver {
                    Some(driver) => {
                        if let Err(e) = driver.write(write) {
                            tracing::warn!("write dropped: {e}");
                        }
                    }
                    None => {
                        let reason = format!("tag {} has no running driver (device disabled?)", write.tag.0);
                        match write.reply {
                            Some(reply) => { let _ = reply.send(Err(reason)); }
                            None => tracing::warn!("{reason}"),
                        }
                    }
                }
            }
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
}
