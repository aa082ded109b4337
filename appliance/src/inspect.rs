//! Decodes the births the embedded broker holds for the web UI's Sparkplug inspector.
//!
//! The broker keeps the latest NBIRTH and DBIRTH of every Edge Node, unmodified, on
//! `$sparkplug/certificates/<birth topic>` (Sparkplug Aware, spec §2.19). Decoding them shows
//! what hosts were really sent, not what we meant to send.

use std::sync::Arc;

use serde_json::{Map, Value as JsonValue, json};
use sparkplug::payload::{Metric, Payload};
use sparkplug::property::{PropertyData, PropertySet};
use sparkplug::value::{BasicValue, MetricValue};

const CERTIFICATES: &str = "$sparkplug/certificates/";

/// The inspector's view of the embedded broker.
#[derive(Debug)]
pub struct Births(pub Arc<broker::Broker>);

impl Births {
    fn held(&self) -> Vec<(String, Payload)> {
        let mut births: Vec<(String, Payload)> = self
            .0
            .retained(&format!("{CERTIFICATES}spBv1.0/#"))
            .into_iter()
            .filter_map(|(topic, bytes)| {
                let topic = topic.strip_prefix(CERTIFICATES)?.to_owned();
                // A payload that does not decode is listed with no metrics rather than hidden:
                // the broker did hand it to hosts.
                let payload = Payload::decode(&bytes).unwrap_or_default();
                Some((topic, payload))
            })
            .collect();
        // Each node's NBIRTH first, then its devices' DBIRTHs by name.
        births.sort_by_cached_key(|(topic, _)| {
            let levels: Vec<String> = topic.split('/').map(str::to_owned).collect();
            let level = |i: usize| levels.get(i).cloned().unwrap_or_default();
            (level(1), level(3), levels.len() > 4, level(4))
        });
        births
    }
}

impl web::SparkplugBirths for Births {
    fn list(&self) -> Vec<JsonValue> {
        self.held()
            .iter()
            .map(|(topic, payload)| summary(topic, payload))
            .collect()
    }

    fn get(&self, topic: &str) -> Option<JsonValue> {
        let bytes = self
            .0
            .retained(&format!("{CERTIFICATES}{topic}"))
            .into_iter()
            .next()?
            .1;
        let (payload, error) = match Payload::decode(&bytes) {
            Ok(p) => (p, None),
            Err(e) => (Payload::default(), Some(e.to_string())),
        };
        let mut birth = summary(topic, &payload);
        birth["metric_list"] = payload.metrics.iter().map(metric_json).collect();
        if let Some(error) = error {
            birth["decode_error"] = json!(error);
        }
        Some(birth)
    }
}

fn summary(topic: &str, payload: &Payload) -> JsonValue {
    let levels: Vec<&str> = topic.split('/').collect();
    let bd_seq = payload
        .metrics
        .iter()
        .find(|m| m.name.as_deref() == Some(sparkplug::session::BD_SEQ))
        .and_then(|m| match &m.value {
            Some(MetricValue::Int64(v)) => Some(*v as u64),
            Some(MetricValue::UInt64(v)) => Some(*v),
            _ => None,
        });
    json!({
        "topic": topic,
        "type": levels.get(2),
        "group_id": levels.get(1),
        "edge_node_id": levels.get(3),
        "device_id": levels.get(4),
        "timestamp": payload.timestamp,
        "seq": payload.seq,
        "bd_seq": bd_seq,
        "metrics": payload.metrics.len(),
    })
}

fn metric_json(metric: &Metric) -> JsonValue {
    json!({
        "name": metric.name,
        "alias": metric.alias,
        "datatype": metric.datatype.map(|d| format!("{d:?}")),
        "value": metric.value.as_ref().map_or(JsonValue::Null, value_json),
        "timestamp": metric.timestamp,
        "properties": metric.properties.as_ref().map_or(JsonValue::Null, properties_json),
    })
}

fn basic_json(value: &BasicValue) -> JsonValue {
    match value {
        BasicValue::Int8(v) => json!(v),
        BasicValue::Int16(v) => json!(v),
        BasicValue::Int32(v) => json!(v),
        BasicValue::Int64(v) => json!(v),
        BasicValue::UInt8(v) => json!(v),
        BasicValue::UInt16(v) => json!(v),
        BasicValue::UInt32(v) => json!(v),
        BasicValue::UInt64(v) => json!(v),
        BasicValue::Float(v) => json!(v),
        BasicValue::Double(v) => json!(v),
        BasicValue::Boolean(v) => json!(v),
        BasicValue::DateTime(v) => json!(v),
        BasicValue::String(v) | BasicValue::Text(v) => json!(v),
    }
}

fn value_json(value: &MetricValue) -> JsonValue {
    match value {
        MetricValue::Int8(v) => json!(v),
        MetricValue::Int16(v) => json!(v),
        MetricValue::Int32(v) => json!(v),
        MetricValue::Int64(v) => json!(v),
        MetricValue::UInt8(v) => json!(v),
        MetricValue::UInt16(v) => json!(v),
        MetricValue::UInt32(v) => json!(v),
        MetricValue::UInt64(v) => json!(v),
        MetricValue::Float(v) => json!(v),
        MetricValue::Double(v) => json!(v),
        MetricValue::Boolean(v) => json!(v),
        MetricValue::DateTime(v) => json!(v),
        MetricValue::String(v) | MetricValue::Text(v) | MetricValue::Uuid(v) => json!(v),
        MetricValue::Int8Array(v) => json!(v),
        MetricValue::Int16Array(v) => json!(v),
        MetricValue::Int32Array(v) => json!(v),
        MetricValue::Int64Array(v) => json!(v),
        MetricValue::UInt8Array(v) => json!(v),
        MetricValue::UInt16Array(v) => json!(v),
        MetricValue::UInt32Array(v) => json!(v),
        MetricValue::UInt64Array(v) => json!(v),
        MetricValue::FloatArray(v) => json!(v),
        MetricValue::DoubleArray(v) => json!(v),
        MetricValue::BooleanArray(v) => json!(v),
        MetricValue::StringArray(v) => json!(v),
        MetricValue::DateTimeArray(v) => json!(v),
        // Structured and binary values are named, not dumped: the inspector is for reading.
        MetricValue::Bytes(b) | MetricValue::File(b) => json!(format!("({} bytes)", b.len())),
        MetricValue::DataSet(d) => json!(format!(
            "(DataSet: {} columns, {} rows)",
            d.columns.len(),
            d.rows.len()
        )),
        MetricValue::Template(t) => json!(format!(
            "(Template{}: {} metrics)",
            t.template_ref
                .as_deref()
                .map(|r| format!(" of {r}"))
                .unwrap_or_default(),
            t.metrics.len()
        )),
    }
}

fn properties_json(set: &PropertySet) -> JsonValue {
    let mut map = Map::new();
    for (key, value) in set.keys.iter().zip(&set.values) {
        let shown = match &value.value {
            None => JsonValue::Null,
            Some(PropertyData::Basic(b)) => basic_json(b),
            Some(PropertyData::PropertySet(inner)) => properties_json(inner),
            Some(PropertyData::PropertySetList(list)) => list.iter().map(properties_json).collect(),
        };
        map.insert(key.clone(), shown);
    }
    JsonValue::Object(map)
}
