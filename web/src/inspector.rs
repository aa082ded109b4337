//! The Sparkplug inspector: the births this appliance's broker holds, decoded, so an engineer
//! can see exactly what a SCADA host was told: every metric's name, alias, datatype,
//! properties and birth value.
//!
//! The embedded broker keeps the latest NBIRTH and DBIRTH of every Edge Node as Sparkplug
//! Aware certificates (spec §2.19); the appliance decodes them on request
//! ([`SparkplugBirths`]). The sessions on northbound servers publish the same births (same
//! model, same aliases), with their own bdSeq and seq, which the dashboard shows per server.

use axum::Json;
use axum::extract::{Path, State};
use serde_json::Value as JsonValue;

use crate::AppState;
use crate::api_error::ApiError;

/// Decoded births, from the appliance (the web crate does not speak Sparkplug B).
pub trait SparkplugBirths: Send + Sync + std::fmt::Debug {
    /// One summary per birth held: `{"topic", "type", "group_id", "edge_node_id",
    /// "device_id", "timestamp", "seq", "bd_seq", "metrics"}` (`metrics` a count).
    fn list(&self) -> Vec<JsonValue>;

    /// The birth on `topic` (`spBv1.0/group/DBIRTH/node/device`) decoded in full: the
    /// summary plus `"metric_list"`, each metric with `name`, `alias`, `datatype`, `value`,
    /// `timestamp` and `properties`; `None` if the broker holds no birth there.
    fn get(&self, topic: &str) -> Option<JsonValue>;
}

fn births(state: &AppState) -> Result<std::sync::Arc<dyn SparkplugBirths>, ApiError> {
    state
        .births
        .clone()
        .ok_or_else(|| ApiError::unavailable("this server has no Sparkplug inspector"))
}

/// `GET /api/sparkplug/births`.
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Vec<JsonValue>>, ApiError> {
    let births = births(&state)?;
    let list = tokio::task::spawn_blocking(move || births.list())
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(list))
}

/// `GET /api/sparkplug/births/{topic}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(topic): Path<String>,
) -> Result<Json<JsonValue>, ApiError> {
    let births = births(&state)?;
    let lookup = topic.clone();
    // A 10,000-metric DBIRTH takes a few milliseconds to decode: off the async threads.
    let birth = tokio::task::spawn_blocking(move || births.get(&lookup))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    birth.map(Json).ok_or_else(|| {
        ApiError::field(
            axum::http::StatusCode::NOT_FOUND,
            "topic",
            topic,
            "the broker holds no NBIRTH or DBIRTH on this topic; GET /api/sparkplug/births lists them",
        )
    })
}
