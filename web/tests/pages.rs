//! The dashboard, namespace, Sparkplug inspector and settings pages through the real router:
//! who sees what (a viewer reads, an admin gets the edit controls, nobody logged out gets
//! anything but the login page), that what the appliance reports is on the page, and that
//! everything from outside (a PLC's error text, a metric name) is escaped.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value as JsonValue, json};
use tower::ServiceExt;
use uns_model::file::demo_model;
use web::status::{DeviceStatus, SessionStatus};
use web::{
    AppState, Auth, MemoryModel, NorthboundSettings, Role, RuntimeSettings, SparkplugBirths,
    UserStore,
};

/// Births as the appliance's inspector would list them: the demo node and its device.
#[derive(Debug)]
struct Births(Vec<JsonValue>);

impl SparkplugBirths for Births {
    fn list(&self) -> Vec<JsonValue> {
        self.0.clone()
    }

    fn get(&self, topic: &str) -> Option<JsonValue> {
        self.0.iter().find(|b| b["topic"] == topic).cloned()
    }
}

fn demo_births() -> Vec<JsonValue> {
    vec![
        json!({"topic": "spBv1.0/plant-a/NBIRTH/sparkedge", "type": "NBIRTH", "group_id": "plant-a",
               "edge_node_id": "sparkedge", "device_id": null, "timestamp": 1_772_346_600_000u64,
               "seq": 0, "bd_seq": 7, "metrics": 3}),
        json!({"topic": "spBv1.0/plant-a/DBIRTH/sparkedge/demo-plc", "type": "DBIRTH",
               "group_id": "plant-a", "edge_node_id": "sparkedge", "device_id": "demo-plc",
               "timestamp": 1_772_346_600_001u64, "seq": 1, "bd_seq": null, "metrics": 6}),
        // Left on the broker from before the edge node was renamed.
        json!({"topic": "spBv1.0/plant-a/NBIRTH/old-node", "type": "NBIRTH", "group_id": "plant-a",
               "edge_node_id": "old-node", "timestamp": 1_772_346_000_000u64, "seq": 0,
               "bd_seq": 2, "metrics": 3}),
    ]
}

struct App {
    state: AppState,
    viewer: String,
    admin: String,
}

impl App {
    fn new() -> App {
        let users = UserStore::open_in_memory().unwrap();
        users
            .add("vera", Role::Viewer, "viewer password", 0)
            .unwrap();
        users.add("root", Role::Admin, "admin password", 0).unwrap();
        let now = now_ms();
        let cookie = |name: &str| {
            let session = users.start_session(name, now).unwrap();
            format!("sparkedge_session={}", session.token)
        };
        let (viewer, admin) = (cookie("vera"), cookie("root"));
        let model = demo_model();
        let state = AppState {
            births: Some(Arc::new(Births(demo_births()))),
            ..AppState::in_memory(model, Auth::new(users).unwrap())
        };
        App {
            state,
            viewer,
            admin,
        }
    }

    async fn get(&self, uri: &str, cookie: Option<&str>) -> (StatusCode, String, String) {
        let mut request = Request::get(uri);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        let response = web::router(self.state.clone())
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let location = response
            .headers()
            .get(header::LOCATION)
            .map(|l| l.to_str().unwrap().to_owned())
            .unwrap_or_default();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, String::from_utf8(bytes.to_vec()).unwrap(), location)
    }

    async fn page(&self, uri: &str, cookie: &str) -> String {
        let (status, body, _) = self.get(uri, Some(cookie)).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {body}");
        body
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn assert_contains(html: &str, expected: &[&str]) {
    for e in expected {
        assert!(html.contains(e), "page lacks {e:?}:\n{html}");
    }
}

fn assert_lacks(html: &str, unexpected: &[&str]) {
    for e in unexpected {
        assert!(!html.contains(e), "page has {e:?}:\n{html}");
    }
}

#[tokio::test]
async fn logged_out_every_page_leads_to_the_login_and_back() {
    let app = App::new();
    for page in ["/", "/namespace", "/sparkplug", "/settings"] {
        let (status, _, location) = app.get(page, None).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
        assert_eq!(location, format!("/login?next={page}"), "{page}");
    }
    // The pages' scripts are public, like app.js: they hold no data.
    for script in [
        "/static/dashboard.js",
        "/static/namespace.js",
        "/static/sparkplug.js",
        "/static/settings.js",
    ] {
        let (status, body, _) = app.get(script, None).await;
        assert_eq!(status, StatusCode::OK, "{script}");
        assert!(body.contains("\"use strict\""), "{script}");
        if script == "/static/settings.js" {
            // The import preview lists northbound changes with the rest.
            assert!(body.contains("changesCell(c.northbound"), "{script}");
        }
    }
}

#[tokio::test]
async fn the_dashboard_says_no_data_yet_before_anything_reported() {
    let app = App::new();
    let html = app.page("/", &app.viewer).await;
    assert_contains(
        &html,
        &[
            "<h1>Dashboard</h1>",
            "No data yet: no Sparkplug session has reported its state.",
            "No data yet: no device has reported its state.",
            r#"<script src="/static/dashboard.js" defer>"#,
            // The script needs the session's CSRF token for nothing, but the nav does.
            r#"<meta name="csrf-token""#,
        ],
    );
}

#[tokio::test]
async fn the_dashboard_shows_the_broker_sessions_and_devices_and_marks_what_is_wrong() {
    let app = App::new();
    let now = now_ms();
    app.state.status.update(|s| {
        s.started_ms = now - 3_600_000;
        s.broker.listen = "0.0.0.0:1883".to_owned();
        s.broker.connections = 3;
        s.broker.messages_in_per_s = 12.04;
        s.broker.messages_out_per_s = 30.0;
        s.broker.dropped = 2;
        *s.session("embedded") = SessionStatus {
            name: "embedded".to_owned(),
            server: "127.0.0.1:1883".to_owned(),
            state: "online".to_owned(),
            bd_seq: Some(7),
            seq: Some(42),
            primary_host_id: Some("scada".to_owned()),
            primary_host_online: Some(true),
            last_birth_ms: Some(now - 5_000),
            births: 2,
            last_error: None,
        };
        *s.session("northbound/plant") = SessionStatus {
            name: "northbound/plant".to_owned(),
            server: "mqtts://10.0.0.6:8883".to_owned(),
            state: "waiting for primary host".to_owned(),
            bd_seq: Some(1),
            primary_host_id: Some("scada".to_owned()),
            primary_host_online: Some(false),
            last_error: Some("connection refused".to_owned()),
            ..SessionStatus::default()
        };
        *s.device("demo-plc") = DeviceStatus {
            name: "demo-plc".to_owned(),
            driver: "simulator".to_owned(),
            enabled: true,
            online: true,
            since_ms: Some(now - 60_000),
            samples: 1234,
            last_sample_ms: Some(now - 1_000),
            ..DeviceStatus::default()
        };
        *s.device("press-plc") = DeviceStatus {
            name: "press-plc".to_owned(),
            driver: "modbus-tcp".to_owned(),
            enabled: true,
            online: false,
            since_ms: Some(now - 120_000),
            failures: 4,
            last_error: Some(
                "10.0.0.9:502: connection timed out after 3000 ms <check the cable & the unit id>"
                    .to_owned(),
            ),
            ..DeviceStatus::default()
        };
    });
    let html = app.page("/", &app.viewer).await;
    assert_contains(
        &html,
        &[
            "0.0.0.0:1883",
            "12.0/s",
            "30.0/s",
            // Dropped messages and an offline device stand out.
            r#"<div id="tile-dropped" class="tile warn">"#,
            r#"<div id="tile-devices" class="tile bad">"#,
            r#"<div class="big">1 / 2</div><div class="label">devices online</div>"#,
            r#"<div class="big">1 / 2</div><div class="label">Sparkplug sessions online</div>"#,
            // The session: server, state, bdSeq, seq, the Primary Host and its state, births.
            "127.0.0.1:1883",
            r#"<span class="q q-good">online</span>"#,
            r#"<td class="num">7</td>
      <td class="num">42</td>"#,
            r#"<span class="mono">scada</span>"#,
            "5 s ago",
            r#"<td class="num">2</td>"#,
            r#"<tr class="row-warn">"#,
            r#"<span class="q q-warn">waiting for primary host</span>"#,
            r#"<span class="q q-bad">offline</span>"#,
            "connection refused",
            // The devices, the offline one marked, its error in full and escaped.
            "demo-plc",
            r#"<td class="num">1234</td>"#,
            r#"<tr class="row-bad">"#,
            "10.0.0.9:502: connection timed out after 3000 ms &#60;check the cable &#38; the unit id&#62;",
            r#"<td class="num">4</td>"#,
            "2 min ago",
            "(1 h ago)",
        ],
    );
    assert_lacks(&html, &["<check the cable"]);
}

#[tokio::test]
async fn the_inspector_lists_the_births_and_flags_a_leftover() {
    let app = App::new();
    let html = app.page("/sparkplug", &app.viewer).await;
    assert_contains(
        &html,
        &[
            r#"<dd class="mono" id="group-id">plant-a <span class="muted">(the site's name; none set)</span></dd>"#,
            r#"<dd class="mono" id="edge-node-id">sparkedge</dd>"#,
            "spBv1.0/plant-a/NBIRTH/sparkedge",
            r#"<a href="/sparkplug?birth=spBv1.0/plant-a/DBIRTH/sparkedge/demo-plc#birth">DBIRTH</a>"#,
            "2026-03-01 06:30:00Z",
            r#"<td class="num">7</td>"#,
            "not this node&#39;s ids (plant-a / sparkedge)",
            "mosquitto_sub -h 127.0.0.1 -p 1883 -t &#39;$sparkplug/certificates/spBv1.0/plant-a/#&#39;",
        ],
    );
    // No birth chosen: no metrics table.
    assert_lacks(&html, &[r#"id="birth""#]);

    let html = app
        .page(
            "/sparkplug?birth=spBv1.0%2Fplant-a%2FDBIRTH%2Fsparkedge%2Fdemo-plc",
            &app.viewer,
        )
        .await;
    assert_contains(
        &html,
        &[
            r#"<section id="birth" data-topic="spBv1.0/plant-a/DBIRTH/sparkedge/demo-plc">"#,
            r#"<tr class="selected">"#,
            r#"<script src="/static/sparkplug.js" defer>"#,
        ],
    );

    let html = app
        .page(
            "/sparkplug?birth=spBv1.0/plant-a/DBIRTH/sparkedge/%3Cgone%3E",
            &app.viewer,
        )
        .await;
    assert_contains(
        &html,
        &[
            "The broker holds no birth on <code>spBv1.0/plant-a/DBIRTH/sparkedge/&#60;gone&#62;</code>",
        ],
    );
    assert_lacks(&html, &[r#"id="birth""#]);
}

#[tokio::test]
async fn without_a_broker_the_inspector_says_so() {
    let mut app = App::new();
    app.state.births = None;
    let html = app.page("/sparkplug", &app.viewer).await;
    assert_contains(&html, &["This server has no embedded broker"]);
}

#[tokio::test]
async fn settings_are_for_admins_with_every_form_and_the_process_configuration() {
    let app = App::new();
    let (status, body, _) = app.get("/settings", Some(&app.viewer)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("this needs the role admin"), "{body}");
    let (status, _, _) = app.get("/api/settings/runtime", Some(&app.viewer)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // The nav shows Settings only to admins.
    assert_lacks(
        &app.page("/", &app.viewer).await,
        &[r#"<a href="/settings">"#],
    );

    let html = app.page("/settings", &app.admin).await;
    assert_contains(
        &html,
        &[
            r#"<a href="/settings">"#,
            r#"data-api="PUT /api/sparkplug" data-error-prefix="sparkplug.""#,
            r#"name="edge_node_id" value="sparkedge""#,
            r#"name="primary_host_id" value="" placeholder="none""#,
            r#"placeholder="plant-a (the site's name)""#,
            "Changing either ends the Sparkplug session",
            r#"id="add-scan-class""#,
            r#"class="empty">No scan classes"#,
            r#"href="/api/model.toml" download="sparkedge-model.toml""#,
            "1 devices, 6 tags",
            r#"id="import-file""#,
            "The appliance has not reported its process configuration.",
            "/etc/sparkedge/sparkedge.toml",
            // The model's northbound brokers: none yet, and the form to add one.
            "None: Sparkplug goes to the embedded broker only.",
            r#"data-api="PUT /api/northbound/{name}" data-northbound data-create"#,
        ],
    );
    assert_lacks(&html, &[r#"id="northbound-from-file""#]);
    let (status, body, _) = app.get("/api/settings/runtime", Some(&app.admin)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    app.state.status.update(|s| {
        s.runtime = Some(RuntimeSettings {
            source: "/etc/sparkedge/sparkedge.toml".to_owned(),
            data_dir: "/var/lib/sparkedge".to_owned(),
            mqtt_listen: "0.0.0.0:1883".to_owned(),
            mqtt_allow_anonymous: false,
            web_listen: "0.0.0.0:8080".to_owned(),
            uns_enabled: true,
            primary_host_id: Some("scada".to_owned()),
            northbound: vec![NorthboundSettings {
                name: "plant".to_owned(),
                servers: vec![
                    "mqtt://10.0.0.5:1883".to_owned(),
                    "mqtts://10.0.0.6:8883".to_owned(),
                ],
                username: Some("edge".to_owned()),
                password_set: true,
                ca_file: Some("/etc/sparkedge/plant-ca.pem".to_owned()),
                primary_host_id: Some("scada".to_owned()),
                ..NorthboundSettings::default()
            }],
        });
    });
    let html = app.page("/settings", &app.admin).await;
    assert_contains(
        &html,
        &[
            r#"<dd class="mono">/var/lib/sparkedge</dd>"#,
            "0.0.0.0:8080",
            "MQTT users",
            "mqtts://10.0.0.6:8883",
            "edge <span class=\"muted\">(password set)</span>",
            "/etc/sparkedge/plant-ca.pem",
            // The file's Primary Host id wins over the model's, and the form says so.
            r#"id="primary-host-pinned""#,
            "sets <code>scada</code>, which the session uses instead",
            // The file's own northbound brokers run instead of the model's: said above them.
            r#"id="northbound-from-file""#,
            "The configuration file <code>/etc/sparkedge/sparkedge.toml</code> lists its own northbound brokers",
            "those run, and the list below is",
            r#"<table id="northbound-file">"#,
            "Once this list runs instead of the file's",
        ],
    );
    let (status, body, _) = app.get("/api/settings/runtime", Some(&app.admin)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let runtime: JsonValue = serde_json::from_str(&body).unwrap();
    assert_eq!(
        runtime["northbound"][0]["servers"][1],
        "mqtts://10.0.0.6:8883"
    );
    assert_eq!(runtime["primary_host_id"], "scada");
    // The status everyone polls does not carry it.
    let (_, status, _) = app.get("/api/status", Some(&app.viewer)).await;
    assert!(!status.contains("northbound"), "{status}");
}

#[tokio::test]
async fn settings_list_the_models_northbound_brokers_with_a_form_for_each() {
    let app = App::new();
    let mut model = demo_model();
    model.northbound = serde_json::from_value(json!([
        {"name": "plant", "servers": ["mqtt://10.0.0.5:1883", "mqtts://10.0.0.6"],
         "username": "edge", "password": "s3cret-broker-pass",
         "ca_pem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
         "primary_host_id": "scada"},
        {"name": "lab", "servers": ["mqtt://lab-broker"], "enabled": false},
    ]))
    .unwrap();
    let app = App {
        state: AppState {
            model: Arc::new(MemoryModel::new(model)),
            ..app.state
        },
        ..app
    };
    let html = app.page("/settings", &app.admin).await;
    assert_contains(
        &html,
        &[
            r#"<tr data-northbound="plant">"#,
            "<div>mqtt://10.0.0.5:1883</div><div>mqtts://10.0.0.6</div>",
            r#"edge <span class="muted">(password set)</span>"#,
            "<td>TLS, CA set</td>",
            r#"<td class="mono">scada</td>"#,
            r#"<tr data-northbound="lab" class="row-off">"#,
            "no: no session",
            // Edit: the servers one per line, the CA as text, the password left to keep.
            r#"data-api="PUT /api/northbound/plant" data-northbound"#,
            "Save northbound broker plant? Its session ends (NDEATH) and starts again",
            r#"data-type="lines""#,
            "mqtt://10.0.0.5:1883\nmqtts://10.0.0.6</textarea>",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----</textarea>",
            r#"placeholder="empty: keep the stored password""#,
            "data-password-none",
            r#"name="client_id" value="" placeholder="sparkedge-sparkedge""#,
            // Delete names the broker.
            r#"data-api="DELETE /api/northbound/plant""#,
            r#"data-confirm="Delete northbound broker plant? Its Sparkplug session there ends (NDEATH)"#,
            "Saving a broker ends its session (NDEATH) and starts it\n  again with the new settings",
            "Add northbound broker",
        ],
    );
    assert_lacks(&html, &["s3cret"]);
}

#[tokio::test]
async fn settings_list_scan_classes_with_the_tags_that_use_them() {
    let app = App::new();
    let mut model = demo_model();
    model.scan_classes = vec![uns_model::ScanClass {
        name: "fast".to_owned(),
        period_ms: 100,
    }];
    let app = App {
        state: AppState {
            model: Arc::new(MemoryModel::new(model)),
            ..app.state
        },
        ..app
    };
    let html = app.page("/settings", &app.admin).await;
    assert_contains(
        &html,
        &[
            r#"name="scan_class[0].name" value="fast""#,
            r#"name="scan_class[0].period_ms" value="100""#,
            "0 tags",
        ],
    );
    assert_contains(&html, &[r#"class="empty" hidden>No scan classes"#]);
}

#[tokio::test]
async fn the_namespace_page_shows_both_names_of_every_tag_and_edit_controls_only_to_admins() {
    let app = App::new();
    let html = app.page("/namespace", &app.viewer).await;
    assert_contains(
        &html,
        &[
            r#"<span class="path" id="ns-root">acme › plant-a</span>"#,
            "mosquitto_sub -h 127.0.0.1 -p 1883 -t &#39;acme/plant-a/#&#39; -v",
            "mosquitto_sub -h 127.0.0.1 -p 1883 -t &#39;spBv1.0/plant-a/+/sparkedge/#&#39; -F &#39;%t (%l bytes)&#39;",
            r#"data-copy="cmd-uns""#,
            // Six tags fit one page: every node starts open, its tags fetched by the script.
            r#"<details class="node cell" data-path="packaging/line3/filler" open>"#,
            r#"<div class="tags" data-location="packaging/line3/filler" data-count="6"></div>"#,
            r#"<span class="aside">6 tags</span>"#,
            "6 tags on the broker",
        ],
    );
    // The tags of a node, with both names and the live-value hooks.
    let cell = app
        .page(
            "/namespace/tags?location=packaging/line3/filler",
            &app.viewer,
        )
        .await;
    assert_contains(
        &cell,
        &[
            "acme/plant-a/packaging/line3/filler/temperature",
            "demo-plc / packaging/line3/filler/temperature",
            r#"data-live="0""#,
            r#"data-live-quality="5""#,
        ],
    );
    // The line holds no tags of its own: no table to fetch for it.
    assert_lacks(&html, &[r#"data-location="packaging/line3""#]);
    let line = app
        .page("/namespace/tags?location=packaging/line3", &app.viewer)
        .await;
    assert_contains(&line, &["No tags at packaging/line3."]);
    assert_lacks(&line, &["<html", "<table"]);
    assert_lacks(
        &html,
        &[
            r#"class="ns-rename""#,
            r#"class="ns-add""#,
            r#"class="ns-remove""#,
            r#"id="ns-ids""#,
            r#"<details class="edit""#,
        ],
    );

    let html = app.page("/namespace", &app.admin).await;
    assert_contains(
        &html,
        &[
            r#"<form id="ns-ids">"#,
            r#"name="enterprise" value="acme""#,
            "Moves every UNS topic, and the Sparkplug group id",
            r#"<form class="ns-rename" data-path="packaging/line3/filler">"#,
            r#"name="to" value="filler""#,
            r#"<form class="ns-add" data-parent="packaging" data-level="line">"#,
            r#"<form class="ns-add" data-parent="packaging/line3" data-level="cell">"#,
            r#"<form class="ns-remove" data-path="packaging/line3" data-level="line">"#,
            r#"<form class="ns-add" data-parent="" data-level="area">"#,
            "Renaming an area, line or cell moves its tags",
        ],
    );
}

#[tokio::test]
async fn an_empty_namespace_says_so() {
    let app = App::new();
    let mut model = demo_model();
    model.areas.clear();
    model.tags.clear();
    let app = App {
        state: AppState {
            model: Arc::new(MemoryModel::new(model)),
            ..app.state
        },
        ..app
    };
    let html = app.page("/namespace", &app.admin).await;
    assert_contains(&html, &["No areas yet. Add one below", "Add area"]);
}
