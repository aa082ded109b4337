//! What changes between two models, in the words a user checks before applying an import:
//! which northbound connections, devices and tags are added, removed or changed, and whether
//! the namespace, the Sparkplug ids or the scan classes changed.
//!
//! Devices are matched by name and tags by their place in the namespace (`location/name`,
//! ignoring case as validation does), so a tag that moved is a removal plus an addition:
//! its UNS topic and Sparkplug metric change, which is what subscribers will see.

use std::collections::HashMap;

use serde::Serialize;

use crate::model::Model;

/// The differences from one model to another; empty lists when nothing changed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ModelDiff {
    pub namespace_changed: bool,
    pub sparkplug_changed: bool,
    pub scan_classes_changed: bool,
    /// Northbound connections by name.
    pub northbound: Changes,
    pub devices: Changes,
    /// Tags by `location/name`.
    pub tags: Changes,
}

/// Names of what was added, removed or changed, each in model order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl Changes {
    fn between<'a, T: PartialEq + 'a>(
        old: impl Iterator<Item = (String, &'a T)>,
        new: impl Iterator<Item = (String, &'a T)>,
    ) -> Changes {
        let mut before: HashMap<String, (usize, String, &T)> = old
            .enumerate()
            .map(|(i, (name, item))| (name.to_ascii_lowercase(), (i, name, item)))
            .collect();
        let mut changes = Changes::default();
        for (name, item) in new {
            match before.remove(&name.to_ascii_lowercase()) {
                None => changes.added.push(name),
                Some((_, _, old)) if old != item => changes.changed.push(name),
                Some(_) => {}
            }
        }
        // What is left was removed; report it in the old model's order.
        let mut removed: Vec<(usize, String, &T)> = before.into_values().collect();
        removed.sort_unstable_by_key(|r| r.0);
        changes.removed = removed.into_iter().map(|(_, name, _)| name).collect();
        changes
    }

    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl ModelDiff {
    pub fn between(old: &Model, new: &Model) -> ModelDiff {
        ModelDiff {
            namespace_changed: old.namespace != new.namespace || old.areas != new.areas,
            sparkplug_changed: old.sparkplug != new.sparkplug,
            scan_classes_changed: old.scan_classes != new.scan_classes,
            northbound: Changes::between(
                old.northbound.iter().map(|n| (n.name.clone(), n)),
                new.northbound.iter().map(|n| (n.name.clone(), n)),
            ),
            devices: Changes::between(
                old.devices.iter().map(|d| (d.name.clone(), d)),
                new.devices.iter().map(|d| (d.name.clone(), d)),
            ),
            tags: Changes::between(
                old.tags
                    .iter()
                    .map(|t| (format!("{}/{}", t.location, t.name), t)),
                new.tags
                    .iter()
                    .map(|t| (format!("{}/{}", t.location, t.name), t)),
            ),
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.namespace_changed
            && !self.sparkplug_changed
            && !self.scan_classes_changed
            && self.northbound.is_empty()
            && self.devices.is_empty()
            && self.tags.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::demo_model;

    #[test]
    fn the_same_model_has_no_differences() {
        let model = demo_model();
        assert!(ModelDiff::between(&model, &model).is_empty());
    }

    #[test]
    fn added_removed_and_changed_tags_and_devices_are_named() {
        let old = demo_model();
        let mut new = old.clone();
        let removed = new.tags.remove(0);
        new.tags[0].unit = Some("bar".to_owned());
        let mut added = new.tags[1].clone();
        added.name = "new-tag".into();
        new.tags.push(added.clone());
        new.devices[0].enabled = false;
        new.sparkplug.edge_node_id = "other".to_owned();

        let diff = ModelDiff::between(&old, &new);
        assert_eq!(
            diff.tags.removed,
            vec![format!("{}/{}", removed.location, removed.name)]
        );
        assert_eq!(
            diff.tags.changed,
            vec![format!("{}/{}", new.tags[0].location, new.tags[0].name)]
        );
        assert_eq!(
            diff.tags.added,
            vec![format!("{}/{}", added.location, added.name)]
        );
        assert_eq!(diff.devices.changed, vec![new.devices[0].name.clone()]);
        assert!(diff.devices.added.is_empty() && diff.devices.removed.is_empty());
        assert!(diff.sparkplug_changed);
        assert!(!diff.namespace_changed && !diff.scan_classes_changed);
        assert!(!diff.is_empty());
    }

    #[test]
    fn a_renamed_device_is_one_removal_and_one_addition() {
        let old = demo_model();
        let mut new = old.clone();
        new.devices[0].name = "renamed".to_owned();
        let diff = ModelDiff::between(&old, &new);
        assert_eq!(diff.devices.added, vec!["renamed".to_owned()]);
        assert_eq!(diff.devices.removed, vec![old.devices[0].name.clone()]);
    }
}
