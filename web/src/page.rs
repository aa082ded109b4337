//! `GET /`: the namespace tree with every tag and its current value.

use std::collections::HashMap;
use std::net::IpAddr;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::header::HOST;
use uns_model::{Array, Model, TagId, TagSample, Value, tag_names};

use crate::{AppState, CurrentUser, LiveValues};

#[derive(askama::Template, askama_web::WebTemplate)]
#[template(path = "index.html")]
pub(crate) struct IndexPage {
    /// Who is logged in: the header's account links, logout form and CSRF meta tag.
    user: Option<CurrentUser>,
    enterprise: String,
    site: String,
    mqtt_address: String,
    subscribe_command: String,
    areas: Vec<AreaView>,
    /// Tags whose location is not in the hierarchy; a valid model has none, but a tag must
    /// never silently vanish from the page.
    unplaced: Vec<TagRow>,
}

struct AreaView {
    name: String,
    lines: Vec<LineView>,
}

struct LineView {
    name: String,
    tags: Vec<TagRow>,
    cells: Vec<CellView>,
}

struct CellView {
    name: String,
    tags: Vec<TagRow>,
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
    /// Milliseconds since the epoch, or empty; the browser turns it into ISO time.
    timestamp_ms: String,
}

pub(crate) async fn index(
    State(state): State<AppState>,
    user: CurrentUser,
    headers: HeaderMap,
) -> Result<IndexPage, (axum::http::StatusCode, String)> {
    let model = crate::running_model(&state).await?;
    let browser_host = headers.get(HOST).and_then(|h| h.to_str().ok());
    Ok(IndexPage {
        user: Some(user),
        ..IndexPage::new(&model, &state.live, &state.mqtt_address, browser_host)
    })
}

impl IndexPage {
    fn new(
        model: &Model,
        live: &LiveValues,
        mqtt_address: &str,
        browser_host: Option<&str>,
    ) -> Self {
        let mut by_location: HashMap<&str, Vec<TagRow>> = HashMap::new();
        for (index, tag) in model.tags.iter().enumerate() {
            let names = tag_names(model, tag);
            let sample = u32::try_from(index).ok().and_then(|i| live.get(TagId(i)));
            by_location
                .entry(tag.location.as_str())
                .or_default()
                .push(TagRow {
                    index,
                    name: tag.name.to_string(),
                    uns_topic: names.uns_topic,
                    device: names.device_id,
                    metric: names.metric_name,
                    datatype: tag.datatype.as_str(),
                    unit: tag.unit.clone().unwrap_or_default(),
                    value: value_text(sample.as_ref()),
                    quality: sample.as_ref().map_or("none", |s| s.quality.as_str()),
                    timestamp_ms: sample
                        .map(|s| s.timestamp_ms.to_string())
                        .unwrap_or_default(),
                });
        }
        let mut take = |location: String| by_location.remove(location.as_str()).unwrap_or_default();
        let areas = model
            .areas
            .iter()
            .map(|area| AreaView {
                name: area.name.clone(),
                lines: area
                    .lines
                    .iter()
                    .map(|line| {
                        let path = format!("{}/{}", area.name, line.name);
                        LineView {
                            name: line.name.clone(),
                            tags: take(path.clone()),
                            cells: line
                                .cells
                                .iter()
                                .map(|cell| CellView {
                                    name: cell.clone(),
                                    tags: take(format!("{path}/{cell}")),
                                })
                                .collect(),
                        }
                    })
                    .collect(),
            })
            .collect();
        let mut unplaced: Vec<TagRow> = by_location.into_values().flatten().collect();
        unplaced.sort_by_key(|row| row.index);

        let enterprise = model.namespace.enterprise.clone();
        let (host, port) = mqtt_host_port(mqtt_address, browser_host);
        IndexPage {
            user: None,
            subscribe_command: format!("mosquitto_sub -h {host} -p {port} -t '{enterprise}/#' -v"),
            enterprise,
            site: model.namespace.site.clone(),
            mqtt_address: mqtt_address.to_owned(),
            areas,
            unplaced,
        }
    }
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

/// Elements of an array shown in the table; the rest is counted, so a row stays one line
/// however long the array (the page's script formats live updates the same way).
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

/// Host and port for the `mosquitto_sub` line. A broker listening on all interfaces
/// (`0.0.0.0`) is reached under the name the browser used for this page.
fn mqtt_host_port<'a>(mqtt_address: &'a str, browser_host: Option<&'a str>) -> (&'a str, &'a str) {
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
