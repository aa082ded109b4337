//! The single rule that names a tag in the UNS and in Sparkplug.
//!
//! Both sinks and the UI call [`tag_names`], so a tag can never be published under two
//! inconsistent names. The Sparkplug group plays the role of the site, so the metric name is
//! the tag's path *below* the site, and UNS topic = enterprise / site / metric name:
//!
//! | name            | rule                                              |
//! |-----------------|---------------------------------------------------|
//! | UNS topic       | `{enterprise}/{site}/{location}/{tag}`            |
//! | Sparkplug group | `sparkplug.group_id`, or else `{site}`            |
//! | edge node id    | `sparkplug.edge_node_id`                          |
//! | device id       | the tag's `device`                                |
//! | metric name     | `{location}/{tag}`                                |
//!
//! Example: enterprise `acme`, site `plant-a`, edge node `sparkedge`, and tag `temperature` at
//! `packaging/line3/filler` read from device `filler-plc`:
//!
//! - UNS topic `acme/plant-a/packaging/line3/filler/temperature`
//! - Sparkplug group `plant-a`, edge node `sparkedge`, device `filler-plc`,
//!   metric `packaging/line3/filler/temperature`
//!   (so its DDATA goes to `spBv1.0/plant-a/DDATA/sparkedge/filler-plc`).

use crate::model::{Model, Tag};

/// Every name one tag is published under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagNames {
    pub uns_topic: String,
    pub group_id: String,
    pub edge_node_id: String,
    pub device_id: String,
    pub metric_name: String,
}

impl Model {
    /// The Sparkplug group of this appliance's Edge Node: `sparkplug.group_id`, or else the site.
    pub fn sparkplug_group_id(&self) -> &str {
        self.sparkplug
            .group_id
            .as_deref()
            .unwrap_or(&self.namespace.site)
    }
}

/// Derives all names of `tag` in `model`. The model should be valid; this does not check it.
pub fn tag_names(model: &Model, tag: &Tag) -> TagNames {
    let ns = &model.namespace;
    let metric_name = format!("{}/{}", tag.location, tag.name);
    TagNames {
        uns_topic: format!("{}/{}/{}", ns.enterprise, ns.site, metric_name),
        group_id: model.sparkplug_group_id().to_owned(),
        edge_node_id: model.sparkplug.edge_node_id.clone(),
        device_id: tag.device.to_string(),
        metric_name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::demo_model;

    #[test]
    fn names_follow_the_documented_example() {
        let mut model = demo_model();
        let mut tag = model.tags[0].clone();
        tag.device = "filler-plc".into();
        model.devices[0].name = "filler-plc".to_owned();
        assert_eq!(
            tag_names(&model, &tag),
            TagNames {
                uns_topic: "acme/plant-a/packaging/line3/filler/temperature".to_owned(),
                group_id: "plant-a".to_owned(),
                edge_node_id: "sparkedge".to_owned(),
                device_id: "filler-plc".to_owned(),
                metric_name: "packaging/line3/filler/temperature".to_owned(),
            }
        );
    }

    #[test]
    fn explicit_group_id_replaces_the_site_only_in_sparkplug() {
        let mut model = demo_model();
        model.sparkplug.group_id = Some("north".to_owned());
        let mut tag = model.tags[1].clone();
        tag.location = "packaging/line3".into();
        let names = tag_names(&model, &tag);
        assert_eq!(names.group_id, "north");
        assert_eq!(names.uns_topic, "acme/plant-a/packaging/line3/level");
        assert_eq!(names.metric_name, "packaging/line3/level");
    }
}
