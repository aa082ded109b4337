//! The UNS publisher: one retained JSON message per tag on its ISA-95 topic.
//!
//! Payload: `{"value": …, "timestamp": <ms, read time>, "quality":
//! "good"|"uncertain"|"bad"|"stale", "datatype": "float32", "unit": "degC"}` (`unit` only
//! when configured). An uncertain sample carries the value just read, which the source says
//! not to trust fully; a bad or stale one carries the last value read, so a subscriber
//! always has a value and knows how far to trust it.
//!
//! Messages are QoS 0: the publisher keeps the newest payload of every tag and republishes
//! all of them after every (re)connect, so a lost connection cannot leave a stale retained
//! value behind, and the broker never has to track acknowledgements for 10,000 tags a second.

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::{Notify, watch};
use uns_model::{Model, TagSample};

use crate::hub::Mailbox;

struct UnsTag {
    topic: String,
    datatype: &'static str,
    unit: Option<String>,
}

/// The JSON document of one sample, fields in the documented order.
#[derive(serde::Serialize)]
struct UnsPayload<'a> {
    value: serde_json::Value,
    timestamp: u64,
    quality: &'static str,
    datatype: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    unit: Option<&'a str>,
}

/// The retained payload of one sample.
fn payload(tag: &UnsTag, sample: &TagSample) -> Vec<u8> {
    let doc = UnsPayload {
        value: sample
            .value
            .as_ref()
            .map_or(serde_json::Value::Null, |v| v.to_json()),
        timestamp: sample.timestamp_ms,
        quality: sample.quality.as_str(),
        datatype: tag.datatype,
        unit: tag.unit.as_deref(),
    };
    serde_json::to_vec(&doc).unwrap_or_default()
}

/// Publishes every change from `mailbox` until `shutdown` turns true.
pub async fn run(
    model: Arc<Model>,
    host: String,
    port: u16,
    mailbox: Arc<Mailbox>,
    mut shutdown: watch::Receiver<bool>,
) {
    let tags: Vec<UnsTag> = model
        .tags
        .iter()
        .map(|t| UnsTag {
            topic: uns_model::tag_names(&model, t).uns_topic,
            datatype: t.datatype.as_str(),
            unit: t.unit.clone(),
        })
        .collect();
    let mut last: Vec<Option<Vec<u8>>> = vec![None; tags.len()];
    let client_id = format!("sparkedge-uns-{}", model.sparkplug.edge_node_id);
    // An async fn keeps its arguments alive: let the model go now that the topics are built.
    drop(model);
    let mut options = MqttOptions::new(client_id, host, port);
    options.set_keep_alive(Duration::from_secs(15));
    options.set_clean_session(true);
    let (client, mut eventloop) = AsyncClient::new(options, 4096);
    eventloop.network_options.set_tcp_nodelay(true);
    let connected = Arc::new(Notify::new());
    let poller = tokio::spawn({
        let connected = connected.clone();
        async move {
            // rumqttc reconnects on the next poll after an error but never waits: back off here.
            let mut backoff = Duration::from_millis(200);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        backoff = Duration::from_millis(200);
                        connected.notify_one();
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!("UNS connection lost: {e}");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
        }
    });
    loop {
        tokio::select! {
            delivery = mailbox.take() => {
                for sample in &delivery.samples {
                    let Some(tag) = tags.get(sample.tag.index()) else { continue };
                    let body = payload(tag, sample);
                    last[sample.tag.index()] = Some(body.clone());
                    if client.publish(tag.topic.as_str(), QoS::AtMostOnce, true, body).await.is_err() {
                        break;
                    }
                }
            }
            _ = connected.notified() => {
                for (tag, body) in tags.iter().zip(&last) {
                    if let Some(body) = body
                        && client.publish(tag.topic.as_str(), QoS::AtMostOnce, true, body.clone()).await.is_err() {
                            break;
                        }
                }
            }
            _ = crate::stopped(&mut shutdown) => break,
        }
    }
    poller.abort();
}

#[cfg(test)]
mod tests {
    use super::*;
    use uns_model::{Quality, TagId, Value};

    #[test]
    fn payload_has_value_timestamp_quality_and_type() {
        let tag = UnsTag {
            topic: "acme/plant-a/packaging/line3/filler/temperature".into(),
            datatype: "float32",
            unit: Some("degC".into()),
        };
        let sample = TagSample {
            tag: TagId(0),
            value: Some(Value::Float32(21.7)),
            quality: Quality::Stale,
            timestamp_ms: 1_700_000_000_123,
        };
        assert_eq!(
            String::from_utf8(payload(&tag, &sample)).unwrap(),
            r#"{"value":21.7,"timestamp":1700000000123,"quality":"stale","datatype":"float32","unit":"degC"}"#
        );
        let uncertain = TagSample {
            value: Some(Value::Float32(22.5)),
            quality: Quality::Uncertain,
            ..sample
        };
        assert_eq!(
            String::from_utf8(payload(&tag, &uncertain)).unwrap(),
            r#"{"value":22.5,"timestamp":1700000000123,"quality":"uncertain","datatype":"float32","unit":"degC"}"#
        );
    }
}
