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
//!
//! When the model changes, topics move ([`UnsModel`]): the retained message of a topic no tag
//! has any more is cleared (an empty retained message), a tag that persists under a new topic
//! (or with a new type or unit) is published there at once with its last value, and a new
//! tag is published on its first sample.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, ClientError, Event, MqttOptions, Packet, QoS};
use tokio::sync::{Notify, watch};
use uns_model::{Model, TagId, TagSample};

use crate::hub::{Mailbox, NONE};
use crate::pipeline::SinkModel;

#[derive(Debug)]
pub struct UnsTag {
    topic: String,
    datatype: &'static str,
    unit: Option<String>,
}

/// The topic and payload fields of every tag of `model`.
pub fn tags(model: &Model) -> Vec<UnsTag> {
    model
        .tags
        .iter()
        .map(|t| UnsTag {
            topic: uns_model::tag_names(model, t).uns_topic,
            datatype: t.datatype.as_str(),
            unit: t.unit.clone(),
        })
        .collect()
}

/// The publisher's part of a new model.
#[derive(Debug)]
pub struct UnsModel {
    tags: Vec<UnsTag>,
    /// Per tag of the model before: its number in this one, or [`NONE`].
    moved: Vec<u32>,
}

impl UnsModel {
    pub fn new(tags: Vec<UnsTag>, moved: Vec<u32>) -> UnsModel {
        UnsModel { tags, moved }
    }

    /// The topics, for a publisher starting with this model.
    pub fn into_tags(self) -> Vec<UnsTag> {
        self.tags
    }

    /// This model followed by `later`, for a publisher that took neither yet.
    pub fn then(self, later: UnsModel) -> UnsModel {
        let moved = self
            .moved
            .iter()
            .map(|&to| later.moved.get(to as usize).copied().unwrap_or(NONE))
            .collect();
        UnsModel {
            tags: later.tags,
            moved,
        }
    }
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

/// Publishes every change from `mailbox` until `shutdown` turns true; `live` has the last
/// value of a tag whose topic moves.
pub async fn run(
    mut tags: Vec<UnsTag>,
    mut options: MqttOptions,
    mailbox: Arc<Mailbox>,
    live: Arc<web::LiveValues>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last: Vec<Option<Vec<u8>>> = vec![None; tags.len()];
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
                if let Some(SinkModel::Uns(model)) = delivery.model
                    && let Err(e) = move_topics(&client, &mut tags, &mut last, *model, &live).await
                {
                    tracing::warn!("UNS topics not moved: {e}");
                }
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

/// Switches to a new model's topics (see the module documentation); the switch happens
/// even when a publish fails, since the samples that follow are numbered by the new model.
async fn move_topics(
    client: &AsyncClient,
    tags: &mut Vec<UnsTag>,
    last: &mut Vec<Option<Vec<u8>>>,
    model: UnsModel,
    live: &web::LiveValues,
) -> Result<(), ClientError> {
    let UnsModel {
        tags: new_tags,
        moved,
    } = model;
    let (cleared, new_last, republish) = retopic(tags, last, &new_tags, &moved);
    let cleared: Vec<String> = cleared
        .into_iter()
        .map(|old| std::mem::take(&mut tags[old].topic))
        .collect();
    *tags = new_tags;
    *last = new_last;
    let mut bodies = Vec::with_capacity(republish.len());
    for new in republish {
        if let (Some(tag), Some(sample)) = (tags.get(new), live.get(TagId(new as u32))) {
            let body = payload(tag, &sample);
            last[new] = Some(body.clone());
            bodies.push((new, body));
        }
    }
    for topic in cleared {
        client
            .publish(topic, QoS::AtMostOnce, true, Vec::new())
            .await?;
    }
    for (new, body) in bodies {
        client
            .publish(tags[new].topic.as_str(), QoS::AtMostOnce, true, body)
            .await?;
    }
    Ok(())
}

/// What moving from `tags` to `new_tags` takes: the old tags whose published topic no tag
/// has any more, the retained payloads that stay as they are (by new tag), and the new tags
/// that persist but must be published again (new topic, type or unit).
fn retopic(
    tags: &[UnsTag],
    last: &mut [Option<Vec<u8>>],
    new_tags: &[UnsTag],
    moved: &[u32],
) -> (Vec<usize>, Vec<Option<Vec<u8>>>, Vec<usize>) {
    let topics: HashSet<&str> = new_tags.iter().map(|t| t.topic.as_str()).collect();
    let cleared = tags
        .iter()
        .zip(last.iter())
        .enumerate()
        .filter(|(_, (tag, body))| body.is_some() && !topics.contains(tag.topic.as_str()))
        .map(|(old, _)| old)
        .collect();
    let mut new_last = vec![None; new_tags.len()];
    let mut republish = Vec::new();
    for (old, tag) in tags.iter().enumerate() {
        let Some((new, new_tag)) = moved
            .get(old)
            .and_then(|&n| Some((n as usize, new_tags.get(n as usize)?)))
        else {
            continue;
        };
        if (&new_tag.topic, new_tag.datatype, &new_tag.unit)
            == (&tag.topic, tag.datatype, &tag.unit)
        {
            new_last[new] = last[old].take();
        } else {
            republish.push(new);
        }
    }
    (cleared, new_last, republish)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uns_model::{Quality, TagId, Value};

    fn uns_tag(topic: &str, unit: Option<&str>) -> UnsTag {
        UnsTag {
            topic: topic.into(),
            datatype: "float32",
            unit: unit.map(str::to_owned),
        }
    }

    #[test]
    fn moved_topics_are_cleared_and_persisting_tags_keep_or_republish_their_payload() {
        let tags = [
            uns_tag("acme/p/a/l/same", None),
            uns_tag("acme/p/a/l/old-name", None),
            uns_tag("acme/p/a/l/removed", None),
            uns_tag("acme/p/a/l/unit", None),
            uns_tag("acme/p/a/l/never-read", None),
        ];
        let mut last = vec![
            Some(b"same".to_vec()),
            Some(b"renamed".to_vec()),
            Some(b"removed".to_vec()),
            Some(b"unit".to_vec()),
            None,
        ];
        // "old-name" became "new-name" (a persisting tag with a new topic, as when the
        // enterprise is renamed); "unit" got a unit; "fresh" is new.
        let new_tags = [
            uns_tag("acme/p/a/l/fresh", None),
            uns_tag("acme/p/a/l/unit", Some("mm")),
            uns_tag("acme/p/a/l/same", None),
            uns_tag("acme/p/a/l/new-name", None),
        ];
        let moved = [2, 3, NONE, 1, NONE];
        let (cleared, new_last, republish) = retopic(&tags, &mut last, &new_tags, &moved);
        assert_eq!(cleared, [1, 2], "a topic never published needs no clearing");
        assert_eq!(new_last, [None, None, Some(b"same".to_vec()), None]);
        assert_eq!(republish, [3, 1]);
    }

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
