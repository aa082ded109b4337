//! JSON API: a snapshot of every tag, and live changes over Server-Sent Events.
//!
//! A live stream belongs to a login: it is checked every [`SESSION_CHECK_INTERVAL`], and once
//! the session or API token it was opened with stands for nobody (logout, expiry, the user
//! deleted) or for another role, the stream sends `event: session` and ends. A page reloads
//! on that event (to the login page, or with the controls of the new role); without the check
//! a tab would go on showing live values after its user logged out.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::{Extension, Json};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};
use tokio::sync::watch;
use tokio::time::Instant;
use uns_model::{TagId, TagSample, tag_names};

use crate::api_error::ApiError;
use crate::auth::Auth;
use crate::live::TagSet;
use crate::{AppState, CurrentUser, LiveValues, Role, ShutdownSignal};

/// The least time between two events to one client; changes in between are merged.
const EVENT_INTERVAL: Duration = Duration::from_millis(250);

/// How often a live stream asks whether its login still holds: a logged-out tab stops
/// receiving values within about this long.
const SESSION_CHECK_INTERVAL: Duration = Duration::from_secs(1);

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

/// `?tags=0-199,350`: only these tags (a page's rows); every tag without it.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct LiveQuery {
    tags: Option<String>,
}

/// `GET /api/live`: first every tag (of `tags`) that has a value, then only what changed, at
/// most one event per [`EVENT_INTERVAL`]. Ends when the server shuts down, so shutdown is not
/// held up by open browser tabs, and when its login ends (`event: session`).
pub(crate) async fn live(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Query(query): Query<LiveQuery>,
    shutdown: Option<Extension<ShutdownSignal>>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let wanted = match &query.tags {
        None => TagSet::all(),
        Some(text) => TagSet::parse(text).map_err(|reason| {
            ApiError::field(
                StatusCode::BAD_REQUEST,
                "tags",
                text.clone(),
                format!(
                    "{reason}; tags must be tag numbers and ranges separated by commas, like \
                     0-199,350 (the `tag` of /api/values)"
                ),
            )
        })?,
    };
    // Only what names the login: the rest of the request is not kept for the stream's life.
    let mut credentials = HeaderMap::new();
    for name in [COOKIE, AUTHORIZATION] {
        for value in headers.get_all(&name) {
            credentials.append(name.clone(), value.clone());
        }
    }
    let client = LiveClient {
        changes: state.live.subscribe(),
        live: state.live,
        wanted,
        stop: shutdown.map(|Extension(ShutdownSignal(rx))| rx),
        seen: None,
        model: 0,
        next_event_at: Instant::now(),
        login: Login {
            auth: state.auth,
            credentials,
            user: user.name,
            role: user.role,
            check_at: Instant::now() + SESSION_CHECK_INTERVAL,
        },
        ended: false,
    };
    let events = futures_util::stream::unfold(client, |mut client| async move {
        if client.ended {
            return None;
        }
        let event = match client.next_changes().await? {
            Next::Samples(samples) => Event::default().data(live_json(&samples).to_string()),
            // The tags were renumbered: a page reloads to show the new model; the stream goes
            // on with every value under its new number.
            Next::ModelChanged => Event::default().event("model").data("changed"),
            // Said before the end, so a page knows not to reconnect but to reload.
            Next::SessionEnded => {
                client.ended = true;
                Event::default().event("session").data("ended")
            }
        };
        Some((Ok(event), client))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

/// What a live stream sends next.
enum Next {
    Samples(Vec<TagSample>),
    /// The model changed; the next batch is every value.
    ModelChanged,
    /// The login the stream was opened with no longer holds as it was.
    SessionEnded,
}

/// One SSE client's position in the stream of changes.
struct LiveClient {
    live: Arc<LiveValues>,
    changes: watch::Receiver<u64>,
    /// The tags this client is sent.
    wanted: TagSet,
    stop: Option<watch::Receiver<bool>>,
    /// The version of the last event sent; `None` before the first.
    seen: Option<u64>,
    /// The model count ([`LiveValues::model`]) of the tag numbers sent.
    model: u64,
    next_event_at: Instant,
    login: Login,
    /// The `session` event was sent: the stream ends.
    ended: bool,
}

/// The login a stream was opened with, checked again while it runs.
struct Login {
    auth: Arc<Auth>,
    /// The request's `Cookie` and `Authorization` headers.
    credentials: HeaderMap,
    user: String,
    role: Role,
    check_at: Instant,
}

impl Login {
    /// Whether the credentials still stand for the same user with the same role. A store
    /// that cannot answer logs nobody out: the next check asks again.
    async fn holds(&mut self) -> bool {
        self.check_at = Instant::now() + SESSION_CHECK_INTERVAL;
        match self.auth.current(&self.credentials).await {
            Ok(Some(session)) => session.user == self.user && session.role == self.role,
            Ok(None) => false,
            Err(e) => {
                tracing::warn!(user = %self.user, "live view: cannot check the login: {e}");
                true
            }
        }
    }
}

impl LiveClient {
    /// Waits for what to send next; `None` once the server shuts down.
    async fn next_changes(&mut self) -> Option<Next> {
        let Some(mut seen) = self.seen else {
            // Mark seen before the snapshot: an update racing with it wakes us again, and
            // `changed_since` then returns only what the snapshot missed. The model count
            // likewise, so a renumbering racing with the snapshot is announced.
            self.changes.borrow_and_update();
            self.model = self.live.model();
            let (version, samples) = self.live.changed_since(0, &self.wanted);
            self.seen = Some(version);
            self.next_event_at = Instant::now() + EVENT_INTERVAL;
            return Some(Next::Samples(samples));
        };
        loop {
            tokio::select! {
                changed = self.changes.changed() => changed.ok()?,
                () = stopped(&mut self.stop) => return None,
                () = tokio::time::sleep_until(self.login.check_at) => {
                    if !self.login.holds().await {
                        return Some(Next::SessionEnded);
                    }
                    continue;
                }
            }
            tokio::select! {
                () = tokio::time::sleep_until(self.next_event_at) => {}
                () = stopped(&mut self.stop) => return None,
            }
            self.changes.borrow_and_update();
            if self.live.model() != self.model {
                self.seen = None;
                return Some(Next::ModelChanged);
            }
            let (version, samples) = self.live.changed_since(seen, &self.wanted);
            seen = version;
            self.seen = Some(version);
            // Empty when an earlier event already carried the changes that woke us (or only
            // tags this client does not show changed).
            if !samples.is_empty() {
                self.next_event_at = Instant::now() + EVENT_INTERVAL;
                return Some(Next::Samples(samples));
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
