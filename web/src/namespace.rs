//! `GET /namespace`: the ISA-95 tree (enterprise › site › area › line › cell) with the tag
//! count of every node. Copyable `mosquitto_sub` lines show where to watch both namespaces.
//!
//! A model may hold 100,000 tags, so the page holds the tree only. The tags of a line or cell
//! (each with its UNS topic, Sparkplug device and metric, and current value, quality and time)
//! come from `GET /namespace/tags?location=…&page=…` when the node is opened, one page
//! ([`PAGE_ROWS`](crate::paging::PAGE_ROWS)) at a time, rendered here like the page; the
//! script (`/static/namespace.js`) puts them in the tree, and app.js keeps their values current
//! from `/api/live` (`data-live`), subscribed to the tags shown. A model small enough for one
//! page opens every node.
//!
//! Admins also get the tree's edit controls (the page's script): add, rename and remove
//! areas, lines and cells, and change enterprise and site. A rename goes through
//! `POST /api/namespace/rename`, which moves the tags below it (their UNS topics and metric
//! names change); everything else through `PUT /api/namespace`, which refuses to drop a line
//! or cell that still holds tags and names each of them.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::http::header::HOST;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use uns_model::{Array, Model, Tag, TagId, TagSample, Value, tag_names};

use crate::paging::{PAGE_ROWS, Pager, thousands};
use crate::{AppState, CurrentUser, LiveValues};

#[derive(askama::Template, askama_web::WebTemplate)]
#[template(path = "namespace.html")]
pub(crate) struct NamespacePage {
    /// Who is logged in: the header's account links, logout form and CSRF meta tag.
    user: Option<CurrentUser>,
    /// Whether to show the edit controls (the API refuses others anyway).
    admin: bool,
    enterprise: String,
    site: String,
    group_id: String,
    /// No group id is set: the site's name is the Sparkplug group, so renaming the site
    /// starts a new edge node.
    group_from_site: bool,
    edge_node_id: String,
    mqtt_address: String,
    uns_command: String,
    sparkplug_command: String,
    areas: Vec<AreaView>,
    /// Locations of tags that are not in the hierarchy; a valid model has none, but a tag
    /// must never silently vanish from the page.
    unplaced: Vec<StrayView>,
    tag_count: usize,
    /// Lines and cells start open (their tags loaded): the whole model fits one page.
    open: bool,
}

struct AreaView {
    name: String,
    lines: Vec<LineView>,
    tag_count: usize,
}

struct LineView {
    name: String,
    /// `area/line`, as tag locations and the rename API write it.
    path: String,
    /// Tags placed on the line itself, not in one of its cells.
    own_tags: usize,
    cells: Vec<CellView>,
    /// With its cells' tags.
    tag_count: usize,
}

struct CellView {
    name: String,
    path: String,
    tag_count: usize,
}

struct StrayView {
    location: String,
    tag_count: usize,
}

pub(crate) async fn page(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
) -> Response {
    let model = match crate::running_model(&state).await {
        Ok(model) => model,
        Err((status, reason)) => return crate::account::message_page(status, Some(&user), &reason),
    };
    let browser_host = headers.get(HOST).and_then(|h| h.to_str().ok());
    NamespacePage {
        admin: user.is_admin(),
        user: Some(user),
        ..NamespacePage::new(&model, &state.mqtt_address, browser_host)
    }
    .into_response()
}

impl NamespacePage {
    fn new(model: &Model, mqtt_address: &str, browser_host: Option<&str>) -> Self {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for tag in &model.tags {
            *counts.entry(tag.location.as_str()).or_default() += 1;
        }
        let mut take = |location: &str| counts.remove(location).unwrap_or_default();
        let areas: Vec<AreaView> = model
            .areas
            .iter()
            .map(|area| {
                let lines: Vec<LineView> = area
                    .lines
                    .iter()
                    .map(|line| {
                        let path = format!("{}/{}", area.name, line.name);
                        let own_tags = take(&path);
                        let cells: Vec<CellView> = line
                            .cells
                            .iter()
                            .map(|cell| {
                                let path = format!("{path}/{cell}");
                                CellView {
                                    name: cell.clone(),
                                    tag_count: take(&path),
                                    path,
                                }
                            })
                            .collect();
                        LineView {
                            name: line.name.clone(),
                            tag_count: own_tags + cells.iter().map(|c| c.tag_count).sum::<usize>(),
                            own_tags,
                            path,
                            cells,
                        }
                    })
                    .collect();
                AreaView {
                    name: area.name.clone(),
                    tag_count: lines.iter().map(|l| l.tag_count).sum(),
                    lines,
                }
            })
            .collect();
        let mut unplaced: Vec<StrayView> = counts
            .into_iter()
            .map(|(location, tag_count)| StrayView {
                location: location.to_owned(),
                tag_count,
            })
            .collect();
        unplaced.sort_by(|a, b| a.location.cmp(&b.location));

        let (enterprise, site) = (&model.namespace.enterprise, &model.namespace.site);
        let group_id = model.sparkplug_group_id().to_owned();
        let edge_node_id = model.sparkplug.edge_node_id.clone();
        let (host, port) = mqtt_host_port(mqtt_address, browser_host);
        NamespacePage {
            user: None,
            admin: false,
            uns_command: format!("mosquitto_sub -h {host} -p {port} -t '{enterprise}/{site}/#' -v"),
            // Sparkplug payloads are protobuf: print topic and size, not bytes.
            sparkplug_command: format!(
                "mosquitto_sub -h {host} -p {port} -t 'spBv1.0/{group_id}/+/{edge_node_id}/#' -F '%t (%l bytes)'"
            ),
            enterprise: enterprise.clone(),
            site: site.clone(),
            group_id,
            group_from_site: model.sparkplug.group_id.is_none(),
            edge_node_id,
            mqtt_address: mqtt_address.to_owned(),
            areas,
            unplaced,
            tag_count: model.tags.len(),
            open: model.tags.len() <= PAGE_ROWS,
        }
    }

    fn tag_count_text(&self) -> String {
        thousands(self.tag_count)
    }
}

/// One page of the tags at one location: the rows `namespace.js` puts into an opened node.
#[derive(askama::Template, askama_web::WebTemplate)]
#[template(path = "namespace_tags.html")]
pub(crate) struct NodeTags {
    location: String,
    rows: Vec<TagRow>,
    pager: Pager,
}

/// One table row, formatted as the page shows it.
struct TagRow {
    index: usize,
    name: String,
    uns_topic: String,
    device: String,
    metric: String,
    datatype: &'static str,
    unit: String,
    value: String,
    /// `good`, `uncertain`, `bad`, `stale`, or `none` before the first sample; the badge's
    /// CSS class is `q-` and this.
    quality: &'static str,
    /// ISO 8601 UTC to the millisecond, as the live updates write it; empty before a sample.
    time: String,
}

impl TagRow {
    fn new(model: &Model, live: &LiveValues, index: usize, tag: &Tag) -> TagRow {
        let names = tag_names(model, tag);
        let sample = u32::try_from(index).ok().and_then(|i| live.get(TagId(i)));
        TagRow {
            index,
            name: tag.name.to_string(),
            uns_topic: names.uns_topic,
            device: names.device_id,
            metric: names.metric_name,
            datatype: tag.datatype.as_str(),
            unit: tag.unit.clone().unwrap_or_default(),
            value: value_text(sample.as_ref()),
            quality: sample.as_ref().map_or("none", |s| s.quality.as_str()),
            time: sample
                .map(|s| time_text(s.timestamp_ms))
                .unwrap_or_default(),
        }
    }
}

/// `?location=packaging/line3/filler&page=2`; the page as text, so a stale or hand-made
/// number shows a page rather than an error.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct NodeQuery {
    location: String,
    page: String,
}

/// `GET /namespace/tags` (viewer): the tags placed at exactly `location` (a line's own tags,
/// not its cells'), in model order, one page of them.
pub(crate) async fn tags(
    State(state): State<AppState>,
    Query(query): Query<NodeQuery>,
) -> Response {
    let model = match crate::running_model(&state).await {
        Ok(model) => model,
        Err(refusal) => return refusal.into_response(),
    };
    let here: Vec<(usize, &Tag)> = model
        .tags
        .iter()
        .enumerate()
        .filter(|(_, t)| t.location.as_str() == query.location)
        .collect();
    let pager = Pager::new(here.len(), &query.page);
    NodeTags {
        rows: here[pager.rows()]
            .iter()
            .map(|(index, tag)| TagRow::new(&model, &state.live, *index, tag))
            .collect(),
        location: query.location,
        pager,
    }
    .into_response()
}

fn value_text(sample: Option<&TagSample>) -> String {
    match sample.and_then(|s| s.value.as_ref()) {
        None => "—".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) => array_text(a),
        // A datetime's JSON is its RFC 3339 text, shown without quotes like a string.
        Some(v) => match v.to_json() {
            serde_json::Value::String(s) => s,
            json => json.to_string(),
        },
    }
}

/// As the live updates write it (app.js): `2026-03-01T06:30:00.123Z`.
fn time_text(ms: u64) -> String {
    match Value::DateTime(ms).to_json() {
        serde_json::Value::String(iso) => iso,
        other => other.to_string(),
    }
}

/// Elements of an array shown in the table; the rest is counted, so a row stays one line
/// however long the array (app.js formats live updates the same way).
const SHOWN_ELEMENTS: usize = 4;

/// `[1.5, 2, 3, 4, …] (100 items)`: the first elements as JSON, then the count.
fn array_text(a: &Array) -> String {
    let shown: Vec<String> = a
        .iter()
        .take(SHOWN_ELEMENTS)
        .map(|v| v.to_json().to_string())
        .collect();
    if a.len() > SHOWN_ELEMENTS {
        format!("[{}, …] ({} items)", shown.join(", "), a.len())
    } else {
        format!("[{}]", shown.join(", "))
    }
}

/// Host and port for the `mosquitto_sub` lines. A broker listening on all interfaces
/// (`0.0.0.0`) is reached under the name the browser used for this page.
pub(crate) fn mqtt_host_port<'a>(
    mqtt_address: &'a str,
    browser_host: Option<&'a str>,
) -> (&'a str, &'a str) {
    let (host, port) = mqtt_address
        .rsplit_once(':')
        .unwrap_or((mqtt_address, "1883"));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let unspecified = host.parse::<IpAddr>().is_ok_and(|ip| ip.is_unspecified());
    if !unspecified {
        return (host, port);
    }
    let browser_host = browser_host.map(|h| match h.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(v6),
        None => h.split(':').next().unwrap_or(h),
    });
    (
        browser_host
            .filter(|h| !h.is_empty())
            .unwrap_or("localhost"),
        port,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrays_show_their_first_elements_and_count_and_datetimes_their_time() {
        let text = |value: Value| {
            value_text(Some(&TagSample {
                tag: TagId(0),
                value: Some(value),
                quality: uns_model::Quality::Good,
                timestamp_ms: 0,
            }))
        };
        assert_eq!(text(Array::Float32(vec![1.5, -2.0]).into()), "[1.5, -2.0]");
        let long: Vec<u16> = (1..=100).collect();
        assert_eq!(
            text(Array::UInt16(long).into()),
            "[1, 2, 3, 4, …] (100 items)"
        );
        assert_eq!(
            text(Array::String(vec!["a".into(), "b".into()]).into()),
            "[\"a\", \"b\"]"
        );
        assert_eq!(text(Array::Bool(vec![]).into()), "[]");
        assert_eq!(
            text(Value::DateTime(1_772_346_600_123)),
            "2026-03-01T06:30:00.123Z"
        );
        assert_eq!(time_text(1_772_346_600_123), "2026-03-01T06:30:00.123Z");
    }

    #[test]
    fn subscribe_host_falls_back_to_the_browser_host_for_unspecified_addresses() {
        assert_eq!(
            mqtt_host_port("127.0.0.1:1883", Some("box:8080")),
            ("127.0.0.1", "1883")
        );
        assert_eq!(
            mqtt_host_port("0.0.0.0:1884", Some("box:8080")),
            ("box", "1884")
        );
        assert_eq!(
            mqtt_host_port("[::]:1883", Some("[fe80::1]:8080")),
            ("fe80::1", "1883")
        );
        assert_eq!(mqtt_host_port("0.0.0.0:1883", None), ("localhost", "1883"));
    }
}
