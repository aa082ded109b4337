//! The latest sample of every tag, with a version per tag so each reader can ask what changed
//! since it last looked, and a model count that tells readers when tag numbers changed.

use std::sync::{PoisonError, RwLock};

use tokio::sync::watch;
use uns_model::{TagId, TagSample};

/// Latest value of every tag, shared by the appliance (writer) and the web server (readers).
///
/// Every [`update`](LiveValues::update) batch bumps one global version and stamps it on the
/// tags it touched. A reader remembers the version it last saw and asks for everything newer,
/// so there is no per-reader queue: a slow reader skips intermediate values and gets the
/// newest ones.
#[derive(Debug)]
pub struct LiveValues {
    slots: RwLock<Slots>,
    /// Carries the latest version; wakes live-view streams.
    changed: watch::Sender<u64>,
}

#[derive(Debug)]
struct Slots {
    version: u64,
    /// How many times [`LiveValues::remap`] renumbered the tags.
    model: u64,
    samples: Vec<Option<TagSample>>,
    versions: Vec<u64>,
}

impl LiveValues {
    pub fn new(tag_count: usize) -> LiveValues {
        LiveValues {
            slots: RwLock::new(Slots {
                version: 0,
                model: 0,
                samples: vec![None; tag_count],
                versions: vec![0; tag_count],
            }),
            changed: watch::Sender::new(0),
        }
    }

    /// Records the samples `accept` lets through and returns them; wakes live-view streams
    /// if there are any. `accept` sees the tag's current sample (if any) and may amend the new
    /// one. This is how the hub reports by exception against this table, so the appliance
    /// keeps one last value per tag, not one here and one in the hub. Samples for tags outside
    /// the model are ignored (they cannot come from the model this was created for).
    pub fn record(
        &self,
        samples: Vec<TagSample>,
        mut accept: impl FnMut(Option<&TagSample>, &mut TagSample) -> bool,
    ) -> Vec<TagSample> {
        let mut accepted = Vec::with_capacity(samples.len());
        let version = {
            let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
            let slots = &mut *slots;
            let version = slots.version + 1;
            for mut sample in samples {
                let i = sample.tag.index();
                let Some(slot) = slots.samples.get_mut(i) else {
                    continue;
                };
                if accept(slot.as_ref(), &mut sample) {
                    *slot = Some(sample.clone());
                    slots.versions[i] = version;
                    accepted.push(sample);
                }
            }
            if accepted.is_empty() {
                return accepted;
            }
            slots.version = version;
            version
        };
        self.changed.send_replace(version);
        accepted
    }

    /// Records samples as they are; wakes live-view streams.
    pub fn update(&self, samples: &[TagSample]) {
        if samples.is_empty() {
            return;
        }
        let version = {
            let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
            slots.version += 1;
            let version = slots.version;
            for sample in samples {
                let i = sample.tag.index();
                if let Some(slot) = slots.samples.get_mut(i) {
                    *slot = Some(sample.clone());
                    slots.versions[i] = version;
                }
            }
            version
        };
        self.changed.send_replace(version);
    }

    /// Renumbers the table for a changed model of `tag_count` tags: each `(old, new)` pair
    /// moves the last sample of a tag that persists to its new number; every other tag starts
    /// without a value. The moved samples get a new version, so a reader that keeps going
    /// receives them under their new numbers, and [`LiveValues::model`] counts up, so a
    /// reader that shows names (the page) knows to load the model again.
    pub fn remap(&self, tag_count: usize, moves: impl IntoIterator<Item = (TagId, TagId)>) {
        let version = {
            let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
            let slots = &mut *slots;
            let version = slots.version + 1;
            let mut old = std::mem::replace(&mut slots.samples, vec![None; tag_count]);
            slots.versions = vec![0; tag_count];
            for (from, to) in moves {
                let (Some(slot), Some(sample)) = (
                    slots.samples.get_mut(to.index()),
                    old.get_mut(from.index()).and_then(Option::take),
                ) else {
                    continue;
                };
                *slot = Some(TagSample { tag: to, ..sample });
                slots.versions[to.index()] = version;
            }
            slots.version = version;
            slots.model += 1;
            version
        };
        self.changed.send_replace(version);
    }

    /// Counts the model changes ([`LiveValues::remap`]); tag numbers read under one count
    /// mean nothing under another.
    pub fn model(&self) -> u64 {
        self.slots
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .model
    }

    pub fn get(&self, tag: TagId) -> Option<TagSample> {
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        slots.samples.get(tag.index()).cloned().flatten()
    }

    /// Every tag's latest sample, in tag order (what a sink that starts late begins with).
    pub fn all(&self) -> Vec<TagSample> {
        self.changed_since(0, &TagSet::all()).1
    }

    /// The current version and every sample of the tags in `wanted` recorded after `version`
    /// (all their samples for 0), in tag order.
    pub(crate) fn changed_since(&self, version: u64, wanted: &TagSet) -> (u64, Vec<TagSample>) {
        let slots = self.slots.read().unwrap_or_else(PoisonError::into_inner);
        let changed_in = |range: std::ops::Range<usize>| {
            let end = range.end.min(slots.samples.len());
            let start = range.start.min(end);
            slots.samples[start..end]
                .iter()
                .zip(&slots.versions[start..end])
                .filter(|(_, v)| **v > version)
                .filter_map(|(sample, _)| sample.clone())
                .collect::<Vec<_>>()
        };
        let changed = match &wanted.0 {
            None => changed_in(0..slots.samples.len()),
            // Only the ranges asked for are looked at: a page of 200 rows of a 100,000-tag
            // model costs 200 comparisons per event, not 100,000.
            Some(ranges) => ranges
                .iter()
                .flat_map(|&(first, last)| changed_in(first as usize..last as usize + 1))
                .collect(),
        };
        (slots.version, changed)
    }

    /// A receiver that is marked changed after every update.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

/// The tags a live-view reader wants: every tag, or some by number (the rows of a page).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct TagSet(Option<Vec<(u32, u32)>>);

impl TagSet {
    pub(crate) fn all() -> TagSet {
        TagSet(None)
    }

    /// Parses `0-199,350,400-410`: tag numbers and inclusive ranges, separated by commas, in
    /// any order (overlaps are merged); empty for no tag. On error, what is wrong with it.
    pub(crate) fn parse(text: &str) -> Result<TagSet, String> {
        let number = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| format!("{s:?} is no tag number (a whole number from 0)"))
        };
        let mut ranges = Vec::new();
        for item in text.split(',').filter(|i| !i.trim().is_empty()) {
            let (first, last) = match item.split_once('-') {
                Some((first, last)) => (number(first)?, number(last)?),
                None => (number(item)?, number(item)?),
            };
            if first > last {
                return Err(format!(
                    "the range {item:?} runs backwards: write the lower number first"
                ));
            }
            ranges.push((first, last));
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u32, u32)> = Vec::with_capacity(ranges.len());
        for (first, last) in ranges {
            match merged.last_mut() {
                Some(prev) if first <= prev.1.saturating_add(1) => prev.1 = prev.1.max(last),
                _ => merged.push((first, last)),
            }
        }
        Ok(TagSet(Some(merged)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uns_model::{Quality, Value};

    fn sample(tag: u32, value: f64) -> TagSample {
        TagSample {
            tag: TagId(tag),
            value: Some(Value::Float64(value)),
            quality: Quality::Good,
            timestamp_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn record_keeps_what_is_accepted_and_bumps_the_version_only_then() {
        let live = LiveValues::new(2);
        let all = live.record(vec![sample(0, 1.0), sample(1, 2.0)], |prev, _| {
            prev.is_none()
        });
        assert_eq!(all.len(), 2);
        let (v1, _) = live.changed_since(0, &TagSet::all());
        // Nothing accepted: no new version, nothing returned.
        assert!(live.record(vec![sample(0, 9.0)], |_, _| false).is_empty());
        assert_eq!(live.changed_since(v1, &TagSet::all()), (v1, vec![]));
        // The closure may amend the sample it accepts.
        let amended = live.record(vec![sample(1, 3.0)], |prev, s| {
            s.value = prev.and_then(|p| p.value.clone());
            true
        });
        assert_eq!(amended, vec![sample(1, 2.0)]);
        assert_eq!(live.get(TagId(1)), Some(sample(1, 2.0)));
    }

    #[test]
    fn get_returns_the_latest_sample() {
        let live = LiveValues::new(2);
        assert_eq!(live.get(TagId(0)), None);
        live.update(&[sample(0, 1.0), sample(1, 2.0)]);
        live.update(&[sample(0, 3.0)]);
        assert_eq!(live.get(TagId(0)), Some(sample(0, 3.0)));
        assert_eq!(live.get(TagId(1)), Some(sample(1, 2.0)));
        assert_eq!(live.get(TagId(7)), None);
    }

    #[test]
    fn changed_since_returns_only_newer_tags_and_ignores_unknown_ones() {
        let live = LiveValues::new(2);
        live.update(&[sample(0, 1.0), sample(1, 2.0), sample(9, 0.0)]);
        let (v1, all) = live.changed_since(0, &TagSet::all());
        assert_eq!(all, vec![sample(0, 1.0), sample(1, 2.0)]);
        live.update(&[sample(1, 5.0)]);
        let (v2, changed) = live.changed_since(v1, &TagSet::all());
        assert_eq!(changed, vec![sample(1, 5.0)]);
        assert!(live.changed_since(v2, &TagSet::all()).1.is_empty());
    }

    #[test]
    fn remap_moves_the_samples_of_persisting_tags_and_announces_the_change() {
        let live = LiveValues::new(3);
        live.update(&[sample(0, 1.0), sample(1, 2.0), sample(2, 3.0)]);
        let (v1, _) = live.changed_since(0, &TagSet::all());
        let mut changes = live.subscribe();
        changes.borrow_and_update();
        assert_eq!(live.model(), 0);
        // Tag 0 is removed, 1 becomes 2 and 2 becomes 0; tag 1 is new. Moves naming a tag
        // outside either table are ignored.
        live.remap(
            3,
            [
                (TagId(1), TagId(2)),
                (TagId(2), TagId(0)),
                (TagId(7), TagId(1)),
                (TagId(0), TagId(9)),
            ],
        );
        assert_eq!(live.model(), 1);
        assert!(changes.has_changed().unwrap(), "readers are woken");
        assert_eq!(live.get(TagId(0)), Some(sample(0, 3.0)));
        assert_eq!(live.get(TagId(1)), None);
        assert_eq!(live.get(TagId(2)), Some(sample(2, 2.0)));
        // A reader that keeps going receives the moved samples under their new numbers.
        let (v2, moved) = live.changed_since(v1, &TagSet::all());
        assert!(v2 > v1);
        assert_eq!(moved, vec![sample(0, 3.0), sample(2, 2.0)]);
        // The table has the new size: samples for tag 3 are outside it.
        live.update(&[sample(3, 1.0)]);
        assert_eq!(live.get(TagId(3)), None);
        live.remap(5, []);
        assert_eq!(live.changed_since(0, &TagSet::all()).1, vec![]);
        live.update(&[sample(4, 4.0)]);
        assert_eq!(live.get(TagId(4)), Some(sample(4, 4.0)));
    }

    #[test]
    fn a_reader_gets_only_the_tags_it_asked_for() {
        let live = LiveValues::new(6);
        live.update(&[
            sample(0, 0.0),
            sample(1, 1.0),
            sample(3, 3.0),
            sample(4, 4.0),
            sample(5, 5.0),
        ]);
        let wanted = TagSet::parse("4-9, 1,0").unwrap();
        let (v1, first) = live.changed_since(0, &wanted);
        assert_eq!(
            first,
            vec![
                sample(0, 0.0),
                sample(1, 1.0),
                sample(4, 4.0),
                sample(5, 5.0)
            ]
        );
        live.update(&[sample(3, 9.0), sample(5, 9.0)]);
        assert_eq!(live.changed_since(v1, &wanted).1, vec![sample(5, 9.0)]);
        assert_eq!(live.changed_since(0, &TagSet::parse("").unwrap()).1, vec![]);
    }

    #[test]
    fn tag_sets_merge_ranges_and_name_what_is_wrong() {
        assert_eq!(
            TagSet::parse("10-12,0,1,2-4,11").unwrap(),
            TagSet(Some(vec![(0, 4), (10, 12)]))
        );
        assert_eq!(TagSet::parse("").unwrap(), TagSet(Some(vec![])));
        assert!(TagSet::parse("5-3").unwrap_err().contains("backwards"));
        assert!(
            TagSet::parse("a")
                .unwrap_err()
                .contains("\"a\" is no tag number")
        );
        assert!(TagSet::parse("-1").is_err());
    }
}
