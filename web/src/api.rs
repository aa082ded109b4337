//! JSON API: a snapshot of every tag, and live changes over Server-Sent Events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::{Extension, Json};
use futures_util::Stream;
use serde_json::{Value as JsonValue, json};
use tokio::sync::watch;
use tokio::time::Instant;
use uns_model::{TagId, TagSample, tag_names};

use crate::{AppState, LiveValues, ShutdownSignal};

/// The least time between two events to one client; changes in between are merged.
const EVENT_INTERVAL: Duration = Duration::from_millis(250);

/// `GET /api/values`: one object per tag, in model order.
pub(crate) async fn values(
    State(state): State<AppState>,
) -> Result<Json<Vec<JsonValue>>, (axum::http::StatusCode, String)> {
    let model = crate::running_model(&state).await?;
    let model = &*model;
    let values = model
        .tags
        .iter()
        .enumerate()
        .map(|(index, tag)| {
            let names = tag_names(model, tag);
            let sample = u32::try_from(index)
                .ok()
                .and_then(|i| state.live.get(TagId(i)));
            json!({
                "tag": index,
                "uns_topic": names.uns_topic,
                "device": names.device_id,
                "metric": names.metric_name,
                "datatype": tag.datatype.as_str(),
                "value": sample.as_ref().and_then(|s| s.value.as_ref()).map(|v| v.to_json()),
                "quality": sample.as_ref().map(|s| s.quality.as_str()),
                "timestamp": sample.as_ref().map(|s| s.timestamp_ms),
            })
        })
        .collect();
    Ok(Json(values))
}

/// `GET /api/live`: first every tag that has a value, then only what changed, at most one
/// event per [`EVENT_INTERVAL`]. Ends when the server shuts down, so shutdown is not held up
/// by open browser tabs.
pub(crate) async fn live(
    State(state): State<AppState>,
    shutdown: Option<Extension<ShutdownSignal>>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let client = LiveClient {
        changes: state.live.subscribe(),
        live: state.live,
        stop: shutdown.map(|Extension(ShutdownSignal(rx))| rx),
        seen: None,
        model: 0,
        next_event_at: Instant::now(),
    };
    let events = futures_util::stream::unfold(client, |mut client| async move {
        let event = match client.next_changes().await? {
            Some(samples) => Event::default().data(live_json(&samples).to_string()),
            // The tags were renumbered: a page reloads to show the new model; the stream goes
            // on with every value under its new number.
            None => Event::default().event("model").data("changed"),
        };
        Some((Ok(event), client))
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

/// One SSE client's position in the stream of changes.
struct LiveClient {
    live: Arc<LiveValues>,
    changes: watch::Receiver<u64>,
    stop: Option<watch::Receiver<bool>>,
    /// The version of the last event sent; `None` before the first.
    seen: Option<u64>,
    /// The model count ([`LiveValues::model`]) of the tag numbers sent.
    model: u64,
    next_event_at: Instant,
}

impl LiveClient {
    /// Waits for the next batch of changes to send; `None` once the server shuts down,
    /// `Some(None)` when the model changed (the next batch is then every value).
    async fn next_changes(&mut self) -> Option<Option<Vec<TagSample>>> {
        let Some(mut seen) = self.seen else {
            // Mark seen before the snapshot: an update racing with it wakes us again, and
            // `changed_since` then returns only what the snapshot missed. The model count
            // likewise, so a renumbering racing with the snapshot is announced.
            self.changes.borrow_and_update();
            self.model = self.live.model();
            let (version, samples) = self.live.changed_since(0);
            self.seen = Some(version);
            self.next_event_at = Instant::now() + EVENT_INTERVAL;
            return Some(Some(samples));
        };
        loop {
            tokio::select! {
                changed = self.changes.changed() => changed.ok()?,
                () = stopped(&mut self.stop) => return None,
            }
            tokio::select! {
                () = tokio::time::sleep_until(self.next_event_at) => {}
                () = stopped(&mut self.stop) => return None,
            }
            self.changes.borrow_and_update();
            if self.live.model() != self.model {
                self.seen = None;
                return Some(None);
            }
            let (version, samples) = self.live.changed_since(seen);
            seen = version;
            self.seen = Some(version);
            // Empty when an earlier event already carried the changes that woke us.
            if !samples.is_empty() {
                self.next_event_at = Instant::now() + EVENT_INTERVAL;
                return Some(Some(samples));
            }
        }
    }
}

/// Completes when the server shuts down (or its signal is gone); never without one.
async fn stopped(stop: &mut Option<watch::Receiver<bool>>) {
    match stop {
        Some(rx) => {
            let _ = rx.wait_for(|stopping| *stopping).await;
        }
        None => std::future::pending().await,
    }
}

fn live_json(samples: &[TagSample]) -> JsonValue {
    samples
        .iter()
        .map(|s| {
            json!({
                "tag": s.tag.0,
                "value": s.value.as_ref().map(|v| v.to_json()),
                "quality": s.quality.as_str(),
                "timestamp": s.timestamp_ms,
            })
        })
        .collect()
}
