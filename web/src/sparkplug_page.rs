//! `GET /sparkplug`: the Sparkplug inspector page — this node's group and edge node id, the
//! births the embedded broker holds (NBIRTH, then each DBIRTH, with seq, bdSeq, timestamp
//! and metric count), and, for the birth chosen with `?birth=<topic>`, every metric decoded:
//! name, alias, datatype, value, timestamp and properties. That table is the alias map a
//! SCADA host was given.
//!
//! The list is rendered here. The decoded metrics are rendered by the page's script
//! (`/static/sparkplug.js`) from `GET /api/sparkplug/births/{topic}`, a page of rows at a
//! time with a filter on name or alias, because a device may have 10,000 metrics: one
//! JSON download, then only the rows in view are in the DOM.
//!
//! Each birth in the list also carries the checks its summary allows (spec §2.2, §2.3):
//! an NBIRTH has seq 0 and a bdSeq, and a birth under ids other than the current ones is a
//! leftover the broker still holds, not what this node says now.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header::HOST};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value as JsonValue;

use crate::dashboard::iso_time;
use crate::{AppState, CurrentUser};

#[derive(Debug, Deserialize)]
pub(crate) struct Selection {
    /// The birth topic to decode, `spBv1.0/<group>/DBIRTH/<node>/<device>`.
    birth: Option<String>,
}

#[derive(askama::Template, askama_web::WebTemplate)]
#[template(path = "sparkplug.html")]
pub(crate) struct SparkplugPage {
    user: Option<CurrentUser>,
    group_id: String,
    /// The group id is the site's name (none is set).
    group_from_site: bool,
    edge_node_id: String,
    /// `None` when this server has no inspector (no embedded broker).
    births: Option<Vec<BirthRow>>,
    /// The birth whose metrics the script shows, if it is one the broker holds.
    selected: Option<String>,
    /// A topic asked for that the broker does not hold.
    missing: Option<String>,
    certificates_command: String,
}

/// One birth of the list, formatted.
struct BirthRow {
    topic: String,
    kind: String,
    /// The device of a DBIRTH; empty for an NBIRTH.
    device: String,
    seq: String,
    bd_seq: String,
    timestamp: String,
    metrics: String,
    /// Conformance problems the summary shows; empty when none.
    warnings: Vec<String>,
}

pub(crate) async fn page(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
    Query(Selection { birth }): Query<Selection>,
) -> Response {
    let model = match crate::running_model(&state).await {
        Ok(model) => model,
        Err((status, reason)) => return crate::account::message_page(status, Some(&user), &reason),
    };
    let group_id = model.sparkplug_group_id().to_owned();
    let edge_node_id = model.sparkplug.edge_node_id.clone();
    let group_from_site = model.sparkplug.group_id.is_none();
    drop(model);

    let births = match state.births.clone() {
        None => None,
        Some(births) => match tokio::task::spawn_blocking(move || births.list()).await {
            Ok(list) => Some(list),
            Err(e) => {
                return crate::account::message_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Some(&user),
                    &format!("reading the births failed: {e}"),
                );
            }
        },
    };
    let births: Option<Vec<BirthRow>> = births.map(|list| {
        list.iter()
            .map(|b| birth_row(b, &group_id, &edge_node_id))
            .collect()
    });
    let held = |topic: &str| births.iter().flatten().any(|b| b.topic == topic);
    let (selected, missing) = match birth {
        Some(topic) if held(&topic) => (Some(topic), None),
        Some(topic) => (None, Some(topic)),
        None => (None, None),
    };
    let browser_host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let (host, port) = crate::namespace::mqtt_host_port(&state.mqtt_address, browser_host);
    SparkplugPage {
        user: Some(user),
        certificates_command: format!(
            "mosquitto_sub -h {host} -p {port} -t '$sparkplug/certificates/spBv1.0/{group_id}/#' -F '%t (%l bytes)'"
        ),
        group_id,
        group_from_site,
        edge_node_id,
        births,
        selected,
        missing,
    }
    .into_response()
}

fn birth_row(birth: &JsonValue, group_id: &str, edge_node_id: &str) -> BirthRow {
    let text = |key: &str| birth.get(key).and_then(JsonValue::as_str).unwrap_or("");
    let number = |key: &str| birth.get(key).and_then(JsonValue::as_u64);
    let kind = text("type").to_owned();
    let mut warnings = Vec::new();
    if kind == "NBIRTH" {
        match number("seq") {
            Some(0) => {}
            Some(seq) => warnings.push(format!("seq is {seq}: an NBIRTH must have seq 0")),
            None => warnings.push("no seq: an NBIRTH must have seq 0".to_owned()),
        }
        if number("bd_seq").is_none() {
            warnings.push("no bdSeq metric (Int64): hosts cannot match the NDEATH".to_owned());
        }
    } else if number("seq").is_none() {
        warnings.push("no seq: every birth carries one".to_owned());
    }
    if text("group_id") != group_id || text("edge_node_id") != edge_node_id {
        warnings.push(format!(
            "not this node's ids ({group_id} / {edge_node_id}): the broker still holds this birth \
             from before they changed"
        ));
    }
    let shown = |n: Option<u64>| n.map_or_else(|| "—".to_owned(), |n| n.to_string());
    BirthRow {
        topic: text("topic").to_owned(),
        kind,
        device: text("device_id").to_owned(),
        seq: shown(number("seq")),
        bd_seq: shown(number("bd_seq")),
        timestamp: number("timestamp").map_or_else(|| "—".to_owned(), iso_time),
        metrics: shown(number("metrics")),
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_nbirth_without_seq_0_or_bdseq_and_a_leftover_birth_are_flagged() {
        let good = json!({"topic": "spBv1.0/g/NBIRTH/n", "type": "NBIRTH", "group_id": "g",
            "edge_node_id": "n", "seq": 0, "bd_seq": 3, "timestamp": 0, "metrics": 5});
        let row = birth_row(&good, "g", "n");
        assert!(row.warnings.is_empty(), "{:?}", row.warnings);
        assert_eq!((row.seq.as_str(), row.bd_seq.as_str()), ("0", "3"));

        let bad = json!({"topic": "spBv1.0/g/NBIRTH/old", "type": "NBIRTH", "group_id": "g",
            "edge_node_id": "old", "seq": 4});
        let row = birth_row(&bad, "g", "n");
        assert_eq!(row.warnings.len(), 3, "{:?}", row.warnings);
        assert_eq!(row.timestamp, "—");

        let dbirth = json!({"topic": "spBv1.0/g/DBIRTH/n/d", "type": "DBIRTH", "group_id": "g",
            "edge_node_id": "n", "device_id": "d", "seq": 1, "bd_seq": null});
        let row = birth_row(&dbirth, "g", "n");
        assert!(row.warnings.is_empty(), "{:?}", row.warnings);
        assert_eq!(row.device, "d");
    }

    #[test]
    fn a_birth_that_is_not_an_object_is_shown_empty_not_a_panic() {
        let row = birth_row(&json!("garbage"), "g", "n");
        assert_eq!(row.topic, "");
        assert_eq!(row.metrics, "—");
    }
}
