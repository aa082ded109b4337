//! The Devices and Tags pages through the router: who sees which page and which controls,
//! what a page shows of the model and the live values, and that nothing from a PLC or a user
//! reaches the page as markup.

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use tower::ServiceExt;
use uns_model::{
    DataType, Device, DriverConfig, Model, Quality, TagId, TagSample, Value, file::demo_model,
};
use web::status::DeviceStatus;
use web::{AppState, Auth, Role, UserStore};

const PASSWORD: &str = "correct horse battery";

/// The demo model with a Modbus PLC (a writable and a read-only tag, and a description that
/// looks like markup), an OPC UA server with a stored password, and a device named `new`.
fn model() -> Model {
    let mut model = demo_model();
    let modbus: DriverConfig = serde_json::from_value(serde_json::json!({
        "driver": "modbus-tcp", "host": "10.0.0.5", "port": 5020
    }))
    .unwrap();
    let mut opc = DriverConfig::opc_ua("opc.tcp://10.0.0.6:4840");
    if let DriverConfig::OpcUa {
        identity,
        username,
        password,
        ..
    } = &mut opc
    {
        *identity = uns_model::OpcUaIdentity::Username;
        *username = Some("plc-user".to_owned());
        *password = Some("s3cret-pw".to_owned());
    }
    for (name, driver) in [
        ("press-plc", modbus),
        ("line-opc", opc),
        ("new", DriverConfig::Simulator { period_ms: 500 }),
    ] {
        model.devices.push(Device {
            name: name.to_owned(),
            enabled: true,
            driver,
        });
    }
    let mut speed = uns_model::Tag::new(
        "press-plc",
        "packaging/line3",
        "speed",
        DataType::Float32,
        "hr:10",
    );
    speed.writable = true;
    speed.byte_order = Some("CDAB".to_owned());
    speed.unit = Some("m/min".to_owned());
    model.tags.push(speed);
    let mut label = uns_model::Tag::new(
        "press-plc",
        "packaging/line3/filler",
        "label",
        DataType::String,
        "hr:130",
    );
    label.length = Some(16);
    label.description = Some("<script>alert(1)</script>".to_owned());
    model.tags.push(label);
    model.validate().unwrap();
    model
}

struct App {
    state: AppState,
}

impl App {
    fn new() -> App {
        let model = model();
        let users = UserStore::open_in_memory().unwrap();
        for (name, role) in [
            ("vera", Role::Viewer),
            ("otto", Role::Operator),
            ("anna", Role::Admin),
        ] {
            users.add(name, role, PASSWORD, 0).unwrap();
        }
        let state = AppState::in_memory(model, Auth::new(users).unwrap());
        App { state }
    }

    async fn get(&self, uri: &str, user: Option<&str>) -> Response<Body> {
        let mut request = Request::get(uri);
        if let Some(user) = user {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64;
            let session = self.state.auth.users().start_session(user, now).unwrap();
            request = request.header("cookie", format!("sparkedge_session={}", session.token));
        }
        web::router(self.state.clone())
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    /// The page at `uri` as `user`, which must answer 200.
    async fn page(&self, uri: &str, user: &str) -> String {
        let response = self.get(uri, Some(user)).await;
        let status = response.status();
        let body = text(response).await;
        assert_eq!(status, StatusCode::OK, "{uri} as {user}: {body}");
        body
    }
}

async fn text(response: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn has(html: &str, expected: &[&str]) {
    for e in expected {
        assert!(html.contains(e), "page lacks {e:?}:\n{html}");
    }
}

fn lacks(html: &str, unexpected: &[&str]) {
    for e in unexpected {
        assert!(!html.contains(e), "page has {e:?}:\n{html}");
    }
}

#[tokio::test]
async fn logged_out_every_page_redirects_to_the_login_and_back() {
    let app = App::new();
    for uri in [
        "/devices",
        "/devices/press-plc",
        "/devices/new",
        "/devices/press-plc/tags/new",
        "/tags/packaging/line3/speed/edit",
        "/tags/import",
    ] {
        let response = app.get(uri, None).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{uri}");
        let to = response.headers()["location"].to_str().unwrap();
        assert!(to.starts_with("/login?next=/"), "{uri} → {to}");
    }
    // The pages' script is public, like app.js (the login page needs no more).
    let script = app.get("/static/devices.js", None).await;
    assert_eq!(script.status(), StatusCode::OK);
    assert!(text(script).await.contains("csvImport"));
}

#[tokio::test]
async fn the_device_list_shows_each_device_with_its_status_and_admins_get_the_forms() {
    let app = App::new();
    app.state.status.update(|s| {
        *s.device("press-plc") = DeviceStatus {
            name: "press-plc".to_owned(),
            driver: "modbus-tcp".to_owned(),
            enabled: true,
            online: false,
            last_error: Some("cannot connect to 10.0.0.5:5020: Connection refused".to_owned()),
            since_ms: Some(1_772_346_600_000),
            ..DeviceStatus::default()
        };
        s.device("demo-plc").online = true;
        s.device("demo-plc").enabled = true;
        s.device("demo-plc").last_error = Some("timeout after 1000 ms".to_owned());
    });
    let viewer = app.page("/devices", "vera").await;
    has(
        &viewer,
        &[
            "4 devices · 8 tags",
            r#"<a href="/devices/press-plc">press-plc</a>"#,
            "10.0.0.5:5020",
            "opc.tcp://10.0.0.6:4840",
            r#"data-device-state="press-plc" title="since 2026-03-01T06:30:00.000Z">offline<"#,
            r#"<div class="device-error" data-device-error="press-plc">cannot connect to 10.0.0.5:5020: Connection refused</div>"#,
            // Once back online, an old error is marked as past.
            r#"<div class="device-error past" data-device-error="demo-plc">last error: timeout after 1000 ms</div>"#,
            r#"data-device-state="demo-plc">online<"#,
            // Nothing reported yet: said so, not shown as offline.
            r#"data-device-state="line-opc">unknown<"#,
            r#"<td class="num">2</td>"#,
            r#"href="/api/tags.csv?device=press-plc""#,
            // A device named like the new-device form is still reachable.
            r#"<a href="/devices/New">new</a>"#,
        ],
    );
    lacks(&viewer, &["/devices/new\"", "/tags/import", "Add device"]);
    let admin = app.page("/devices", "anna").await;
    has(
        &admin,
        &[
            r#"href="/devices/new" id="add-device">Add device"#,
            "/tags/import",
        ],
    );
    // The device named `new` has its page; the form has its own route.
    let page = app.page("/devices/New", "vera").await;
    has(&page, &["<h2 class=\"grow\">new"]);
}

#[tokio::test]
async fn a_device_page_shows_tags_with_live_values_and_controls_by_role() {
    let app = App::new();
    // speed is tag 6, label tag 7 of the running model.
    app.state.live.update(&[
        TagSample {
            tag: TagId(6),
            value: Some(Value::Float32(42.5)),
            quality: Quality::Good,
            timestamp_ms: 1_772_346_600_123,
        },
        TagSample {
            tag: TagId(7),
            value: Some(Value::String("<b>LOT 7</b>".to_owned())),
            quality: Quality::Stale,
            timestamp_ms: 1_772_346_600_000,
        },
    ]);
    let viewer = app.page("/devices/press-plc", "vera").await;
    has(
        &viewer,
        &[
            "modbus-tcp · <span class=\"mono\">10.0.0.5:5020</span>",
            r#"<tr data-tag="packaging/line3/speed" data-index="6">"#,
            r#"hr:10 <span class="muted">CDAB</span>"#,
            r#"data-live="6">42.5<"#,
            r#"<span class="q q-good" data-live-quality="6">good</span>"#,
            r#"data-live-time="6">2026-03-01T06:30:00.123Z<"#,
            r#"<span class="q q-stale" data-live-quality="7">stale</span>"#,
            // From a PLC and from a user: text, never markup.
            "&#60;b&#62;LOT 7&#60;/b&#62;",
            "&#60;script&#62;alert(1)&#60;/script&#62;",
            r#"href="/api/tags.csv?device=press-plc""#,
            // Settings, read only.
            "<dt>Host</dt><dd class=\"mono\">10.0.0.5</dd>",
        ],
    );
    lacks(
        &viewer,
        &[
            "<script>alert",
            "<b>LOT",
            "Write…",
            "id=\"device-form\"",
            "Delete",
            "/tags/packaging/line3/speed/edit",
            "Add tag",
        ],
    );

    let operator = app.page("/devices/press-plc", "otto").await;
    has(
        &operator,
        &[
            r#"data-path="packaging/line3/speed" data-datatype="float32" data-input="number" data-unit="m/min">Write…"#,
            "id=\"write-dialog\"",
        ],
    );
    // Only the writable tag can be written; configuration stays admin's.
    assert_eq!(operator.matches(r#"class="small write""#).count(), 1);
    lacks(&operator, &["id=\"device-form\"", "Add tag", "delete-tag"]);

    let admin = app.page("/devices/press-plc", "anna").await;
    has(
        &admin,
        &[
            r#"data-api="PUT /api/devices/press-plc""#,
            r#"id="d-host" name="host" value="10.0.0.5""#,
            r#"id="d-port" name="port" value="5020""#,
            r#"href="/devices/press-plc/tags/new">Add tag"#,
            r#"href="/tags/packaging/line3/speed/edit">Edit"#,
            r#"class="small danger delete-tag" data-path="packaging/line3/filler/label""#,
            r#"id="delete-device">Delete…"#,
            r#"data-tags="2""#,
            "Test connection",
            ">Write…",
        ],
    );
    // Settings of other drivers are there for switching, but hidden and not sent.
    has(
        &admin,
        &[r#"id="d-endpoint" name="endpoint" value="" disabled"#],
    );
    // Modbus devices have no browse picker.
    lacks(&admin, &["browse-open"]);
}

#[tokio::test]
async fn an_opc_ua_password_is_never_on_a_page() {
    let app = App::new();
    for user in ["vera", "anna"] {
        let page = app.page("/devices/line-opc", user).await;
        lacks(&page, &["s3cret-pw"]);
    }
    let admin = app.page("/devices/line-opc", "anna").await;
    has(
        &admin,
        &[
            r#"placeholder="stored; leave empty to keep it""#,
            r#"<option value="username" selected>username</option>"#,
            "id=\"browse-open\"",
            r#"<option value="packaging/line3/filler">"#,
        ],
    );
    let viewer = app.page("/devices/line-opc", "vera").await;
    lacks(&viewer, &["<dt>Password</dt>", "browse-open"]);
}

#[tokio::test]
async fn the_forms_are_for_admins_only() {
    let app = App::new();
    for uri in [
        "/devices/new",
        "/devices/press-plc/tags/new",
        "/tags/packaging/line3/speed/edit",
        "/tags/import",
    ] {
        for user in ["vera", "otto"] {
            let response = app.get(uri, Some(user)).await;
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{uri} as {user}");
        }
    }

    let new = app.page("/devices/new", "anna").await;
    has(
        &new,
        &[
            r#"data-api="POST /api/devices""#,
            r#"<option value="modbus-tcp" selected>"#,
            // Defaults are placeholders, not values.
            r#"name="port" value="""#,
            r#"placeholder="502""#,
            r#"data-defaults="opc-ua=5000;*=1000;""#,
        ],
    );

    let tag = app
        .page(
            "/devices/press-plc/tags/new?location=packaging/line3",
            "anna",
        )
        .await;
    has(
        &tag,
        &[
            r#"data-api="POST /api/tags""#,
            r#"<option value="press-plc" data-driver="modbus-tcp" selected>"#,
            r#"<option value="packaging/line3" selected>packaging/line3</option>"#,
            r#"<option value="packaging/line3/filler">"#,
            r#"<option value="float32">float32</option>"#,
            "Decode preview",
            "Test read",
        ],
    );

    let edit = app.page("/tags/packaging/line3/speed/edit", "anna").await;
    has(
        &edit,
        &[
            r#"data-api="PUT /api/tags/packaging/line3/speed""#,
            r#"name="name" class="mono" value="speed""#,
            r#"<option value="float32" selected>float32</option>"#,
            r#"name="address" class="mono" value="hr:10""#,
            r#"<option value="CDAB" selected>"#,
            r#"id="t-writable" name="writable" checked"#,
            r#"data-redirect="/devices/{device}""#,
        ],
    );

    let import = app.page("/tags/import", "anna").await;
    has(
        &import,
        &["<code>deadband_percent</code>", "Preview", "Import"],
    );
}

#[tokio::test]
async fn unknown_devices_and_tags_get_a_page_saying_so() {
    let app = App::new();
    for (uri, says) in [
        ("/devices/nope", "no device named &#34;nope&#34;"),
        ("/devices/nope/tags/new", "no device named &#34;nope&#34;"),
        ("/tags/packaging/line3/nope/edit", "no tag"),
        ("/tags/packaging/line3/speed", "/tags/LOCATION/NAME/edit"),
    ] {
        let response = app.get(uri, Some("anna")).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{uri}");
        let page = text(response).await;
        assert!(page.contains(says), "{uri}: {page}");
        // With the navigation, as every page of a logged-in user.
        assert!(page.contains("anna (admin)"), "{uri}: {page}");
    }
}
