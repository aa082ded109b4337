//! Pages of a model of 12,000 tags stay small: the namespace tree holds no tag until a node is
//! opened, a node's tags and a device's tag table come a page at a time, and the live stream
//! sends only the tags a page shows.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use futures_util::StreamExt;
use serde_json::{Value as JsonValue, json};
use tower::ServiceExt;
use uns_model::{
    Area, DataType, Device, DriverConfig, Line, Model, Namespace, Quality, SparkplugIds, Tag,
    TagId, TagSample, Value,
};
use web::{AppState, Auth, Role, UserStore};

/// A page a browser can still handle at once; the pages here used to be tens of megabytes.
const SMALL_PAGE: usize = 300 * 1024;
const PER_DEVICE: usize = 6_000;
const DEADLINE: Duration = Duration::from_secs(5);

/// Tags 0–5999: `big-plc` (Modbus), `t00000`… at `hr:0`… in the cell; tags 6000–11999:
/// `sim` (simulator), `s00000`… on the line itself.
fn model() -> Model {
    let modbus: DriverConfig = serde_json::from_value(json!({
        "driver": "modbus-tcp", "host": "10.0.0.5"
    }))
    .unwrap();
    let mut tags = Vec::with_capacity(2 * PER_DEVICE);
    for i in 0..PER_DEVICE {
        let mut tag = Tag::new(
            "big-plc",
            "packaging/line3/filler",
            format!("t{i:05}"),
            DataType::Int16,
            format!("hr:{i}"),
        );
        tag.writable = i % 2 == 0;
        tags.push(tag);
    }
    for i in 0..PER_DEVICE {
        tags.push(Tag::new(
            "sim",
            "packaging/line3",
            format!("s{i:05}"),
            DataType::Float32,
            "sine",
        ));
    }
    let model = Model {
        namespace: Namespace {
            enterprise: "acme".to_owned(),
            site: "plant-a".to_owned(),
        },
        sparkplug: SparkplugIds::default(),
        scan_classes: Vec::new(),
        northbound: Vec::new(),
        areas: vec![Area {
            name: "packaging".to_owned(),
            lines: vec![Line {
                name: "line3".to_owned(),
                cells: vec!["filler".to_owned()],
            }],
        }],
        devices: vec![
            Device {
                name: "big-plc".to_owned(),
                enabled: true,
                driver: modbus,
            },
            Device {
                name: "sim".to_owned(),
                enabled: true,
                driver: DriverConfig::Simulator { period_ms: 1000 },
            },
        ],
        tags,
    };
    model.validate().unwrap();
    model
}

struct App {
    state: AppState,
    admin: String,
}

impl App {
    fn new() -> App {
        let model = model();
        let users = UserStore::open_in_memory().unwrap();
        users.add("anna", Role::Admin, "admin password", 0).unwrap();
        let session = users.start_session("anna", now_ms()).unwrap();
        let state = AppState::in_memory(model, Auth::new(users).unwrap());
        App {
            state,
            admin: format!("sparkedge_session={}", session.token),
        }
    }

    async fn get(&self, uri: &str) -> Response<Body> {
        let request = Request::get(uri)
            .header("cookie", &self.admin)
            .body(Body::empty())
            .unwrap();
        web::router(self.state.clone())
            .oneshot(request)
            .await
            .unwrap()
    }

    /// The body at `uri`, which must answer 200 and stay small.
    async fn small_page(&self, uri: &str) -> String {
        let response = self.get(uri).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = String::from_utf8(bytes.to_vec()).unwrap();
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        assert!(
            body.len() < SMALL_PAGE,
            "{uri} is {} bytes, more than {SMALL_PAGE}",
            body.len()
        );
        body
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn has(html: &str, expected: &[&str]) {
    for e in expected {
        assert!(html.contains(e), "lacks {e:?}:\n{html}");
    }
}

fn lacks(html: &str, unexpected: &[&str]) {
    for e in unexpected {
        assert!(!html.contains(e), "has {e:?}:\n{html}");
    }
}

/// The tag names of a device page's rows, in order.
fn device_rows(html: &str) -> Vec<&str> {
    html.split(r#"<tr data-tag=""#)
        .skip(1)
        .map(|row| row.split('"').next().unwrap())
        .collect()
}

#[tokio::test]
async fn the_namespace_page_holds_the_tree_and_a_node_its_tags_a_page_at_a_time() {
    let app = App::new();
    let html = app.small_page("/namespace").await;
    has(
        &html,
        &[
            "12,000 tags on the broker",
            r#"<span class="aside">12000 tags</span>"#,
            // Too many to open everything: lines and cells start folded.
            r#"<details class="node line" data-path="packaging/line3">"#,
            r#"<details class="node cell" data-path="packaging/line3/filler">"#,
            r#"<div class="tags" data-location="packaging/line3" data-count="6000"></div>"#,
            r#"<div class="tags" data-location="packaging/line3/filler" data-count="6000"></div>"#,
            // The admin's controls are there all the same.
            r#"<form class="ns-rename" data-path="packaging/line3/filler">"#,
        ],
    );
    lacks(&html, &["data-live="]);

    // The line's own tags (not its cell's), the second page of them.
    let node = app
        .small_page("/namespace/tags?location=packaging/line3&page=2")
        .await;
    has(
        &node,
        &[
            "rows 201–400 of 6,000",
            r#"id="v6200" data-live="6200""#,
            r#"id="v6399" data-live="6399""#,
            "acme/plant-a/packaging/line3/s00200",
            "sim / packaging/line3/s00399",
            r#"<button type="button" data-page="1">‹ previous</button>"#,
            r#"<button type="button" data-page="3">next ›</button>"#,
            r#"<button type="button" data-page="30">30</button>"#,
        ],
    );
    lacks(
        &node,
        &[r#"data-live="6199""#, r#"data-live="6400""#, "t00"],
    );
    assert_eq!(
        node.matches("<tr>").count(),
        1 + 200,
        "the header and 200 rows"
    );

    // A page past the end shows the last one.
    let last = app
        .small_page("/namespace/tags?location=packaging/line3/filler&page=99")
        .await;
    has(&last, &["rows 5,801–6,000 of 6,000", r#"data-live="5999""#]);
}

#[tokio::test]
async fn a_device_page_shows_a_page_of_tags_and_finds_them_by_name_or_address() {
    let app = App::new();
    let html = app.small_page("/devices/big-plc").await;
    has(
        &html,
        &[
            r#"data-tags="6000""#,
            "Tags <span class=\"sub muted\">6,000</span>",
            "rows 1–200 of 6,000",
            r#"<a href="/devices/big-plc?page=2" rel="next">next ›</a>"#,
            r#"<a href="/devices/big-plc?page=30">30</a>"#,
            // Every row keeps its controls.
            r#"data-path="packaging/line3/filler/t00000" data-datatype="int16" data-input="number" data-unit="">Write…"#,
            r#"href="/tags/packaging/line3/filler/t00199/edit">Edit"#,
        ],
    );
    let rows = device_rows(&html);
    assert_eq!(rows.len(), 200);
    assert_eq!(rows[0], "packaging/line3/filler/t00000");
    assert_eq!(rows[199], "packaging/line3/filler/t00199");

    let page3 = app.small_page("/devices/big-plc?page=3").await;
    let rows = device_rows(&page3);
    assert_eq!(
        (rows.len(), rows[0], rows[199]),
        (
            200,
            "packaging/line3/filler/t00400",
            "packaging/line3/filler/t00599"
        )
    );
    has(
        &page3,
        &[
            r#"data-index="400""#,
            "rows 401–600 of 6,000",
            r#"<a href="/devices/big-plc?page=2" rel="prev">‹ previous</a>"#,
            r#"<strong aria-current="page">3</strong>"#,
        ],
    );

    // By name, any case.
    let by_name = app.small_page("/devices/big-plc?filter=T0599").await;
    let rows = device_rows(&by_name);
    assert_eq!(rows.len(), 10, "{rows:?}");
    assert!(rows.iter().all(|r| r.contains("/t0599")), "{rows:?}");
    has(
        &by_name,
        &[
            "rows 1–10 of 10 (filtered from 6,000)",
            r#"name="filter" value="T0599""#,
            r#"<a class="small button" href="/devices/big-plc">Show all</a>"#,
        ],
    );
    lacks(&by_name, &[r#"class="pager""#]);

    // By address.
    let by_address = app.small_page("/devices/big-plc?filter=hr:4321").await;
    assert_eq!(
        device_rows(&by_address),
        vec!["packaging/line3/filler/t04321"]
    );

    // Page links keep the filter: t00 is t00000–t00999.
    let filtered = app.small_page("/devices/big-plc?filter=t00&page=2").await;
    let rows = device_rows(&filtered);
    assert_eq!(rows[0], "packaging/line3/filler/t00200");
    has(
        &filtered,
        &[
            "rows 201–400 of 1,000 (filtered from 6,000)",
            r#"<a href="/devices/big-plc?page=3&#38;filter=t00" rel="next">"#,
        ],
    );

    let none = app
        .small_page("/devices/big-plc?filter=nothing-like-it")
        .await;
    has(
        &none,
        &["No tag of big-plc has &#8220;nothing-like-it&#8221; in its name, location or address."],
    );
    assert!(device_rows(&none).is_empty());
}

/// Reads SSE events up to the first that carries data, and parses that data.
async fn first_data(response: Response<Body>) -> JsonValue {
    let mut stream = response.into_body().into_data_stream();
    let mut buffer = String::new();
    loop {
        if let Some(data) = buffer
            .split("\n\n")
            .flat_map(|event| event.lines())
            .find_map(|line| line.strip_prefix("data:"))
        {
            return serde_json::from_str(data.trim()).unwrap();
        }
        let chunk = tokio::time::timeout(DEADLINE, stream.next())
            .await
            .expect("no event before the deadline")
            .expect("the stream ended")
            .unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test]
async fn the_live_stream_sends_only_the_tags_asked_for() {
    let app = App::new();
    let sample = |tag: u32| TagSample {
        tag: TagId(tag),
        value: Some(Value::Int16(7)),
        quality: Quality::Good,
        timestamp_ms: 1_772_346_600_000,
    };
    app.state.live.update(&[
        sample(3),
        sample(7),
        sample(6000),
        sample(6001),
        sample(11_999),
    ]);
    let response = app.get("/api/live?tags=6000-6001,3,11999").await;
    assert_eq!(response.status(), StatusCode::OK);
    let tags: Vec<JsonValue> = first_data(response)
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["tag"].clone())
        .collect();
    assert_eq!(
        tags,
        vec![json!(3), json!(6000), json!(6001), json!(11_999)]
    );

    let response = app.get("/api/live?tags=5-2").await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let error: JsonValue = serde_json::from_slice(&bytes).unwrap();
    let error = &error["errors"][0];
    assert_eq!(
        (&error["field"], &error["value"]),
        (&json!("tags"), &json!("5-2"))
    );
    let reason = error["reason"].as_str().unwrap();
    assert!(
        reason.contains("backwards") && reason.contains("0-199,350"),
        "{reason}"
    );
}
