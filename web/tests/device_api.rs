//! The device endpoints' own rules, through the real router, with a stand-in for the
//! devices that records what reaches it: what is refused never reaches a device, probes are
//! bounded in number, and the routes for unsaved devices leave a device named `test` alone.
//! (The devices themselves, over real sockets, are tested in tests/tests/device_api.rs.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value as JsonValue, json};
use tokio::sync::Notify;
use tower::ServiceExt;
use uns_model::{Device, NodeAddress, Tag, TagId, Value, file::demo_model};
use web::devices::{BrowseLevel, DeviceCall, PreviewRequest, RegisterPreview, TagReading};
use web::{AppState, Auth, DeviceAccess, Devices, LiveValues, MemoryModel, Role, UserStore};

/// Records every call; connection tests wait for `release` while `hold` is set.
#[derive(Debug, Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
    /// Each write's tag, the model generation it was looked up under, and the value.
    writes: Mutex<Vec<(TagId, u64, Value)>>,
    hold: std::sync::atomic::AtomicBool,
    release: Notify,
}

impl Recorder {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl DeviceAccess for Recorder {
    fn test_connection(&self, device: Device) -> DeviceCall<'_, String> {
        Box::pin(async move {
            self.calls
                .lock()
                .unwrap()
                .push(format!("test {}", device.name));
            if self.hold.load(std::sync::atomic::Ordering::SeqCst) {
                self.release.notified().await;
            }
            Ok(format!("{} answered", device.name))
        })
    }

    fn test_read(&self, device: Device, tags: Vec<Tag>) -> DeviceCall<'_, Vec<TagReading>> {
        Box::pin(async move {
            self.calls
                .lock()
                .unwrap()
                .push(format!("read {} {}", device.name, tags.len()));
            Err("unreachable in this test".to_owned())
        })
    }

    fn modbus_preview(&self, _: Device, _: PreviewRequest) -> DeviceCall<'_, RegisterPreview> {
        Box::pin(async { Err("no registers here".to_owned()) })
    }

    fn browse(&self, _: Device, _: Option<NodeAddress>, _: usize) -> DeviceCall<'_, BrowseLevel> {
        Box::pin(async { Err("no server here".to_owned()) })
    }

    fn write(&self, tag: TagId, generation: u64, value: Value) -> DeviceCall<'_, ()> {
        Box::pin(async move {
            self.writes.lock().unwrap().push((tag, generation, value));
            Ok(())
        })
    }
}

/// The app with an admin's session (cookie and CSRF token) to send with every request.
#[derive(Clone)]
struct App {
    state: AppState,
    cookie: String,
    csrf: String,
}

fn app() -> (App, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let mut model = demo_model();
    model.devices.push(Device {
        name: "test".into(),
        enabled: true,
        driver: uns_model::DriverConfig::Simulator { period_ms: 1000 },
    });
    let users = UserStore::open_in_memory().unwrap();
    users.add("root", Role::Admin, "root password", 0).unwrap();
    let now = web::auth::Clock::system().now_ms();
    let session = users.start_session("root", now).unwrap();
    let state = AppState {
        devices: Devices::new(recorder.clone()),
        ..AppState::in_memory(model, Auth::new(users).unwrap())
    };
    let app = App {
        state,
        cookie: format!("sparkedge_session={}", session.token),
        csrf: session.csrf,
    };
    (app, recorder)
}

async fn send(
    app: &App,
    method: Method,
    uri: &str,
    body: Option<JsonValue>,
) -> (StatusCode, JsonValue) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::COOKIE, &app.cookie)
        .header("x-csrf-token", &app.csrf);
    let request = match body {
        Some(b) => request
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => request.body(Body::empty()),
    }
    .unwrap();
    let response = web::router(app.state.clone())
        .oneshot(request)
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(JsonValue::Null),
    )
}

fn only_error(body: &JsonValue) -> (String, String) {
    let errors = body["errors"].as_array().expect("an errors list");
    assert_eq!(errors.len(), 1, "{body}");
    let text = |k: &str| errors[0][k].as_str().unwrap_or_default().to_owned();
    (text("field"), text("value"))
}

const SETPOINT: &str = "/api/tags/packaging/line3/filler/setpoint/value";

/// The model source of an appliance where another process imports a model while the web
/// loads it: each of the next `imports` loads first renumbers the live values, as the hub
/// does when it takes a new model.
#[derive(Debug)]
struct Importing {
    model: MemoryModel,
    live: Arc<LiveValues>,
    imports: std::sync::atomic::AtomicUsize,
}

impl web::ModelSource for Importing {
    fn load(&self) -> Result<Arc<uns_model::Model>, String> {
        let pending = self.imports.load(std::sync::atomic::Ordering::SeqCst);
        if pending > 0 {
            self.imports
                .store(pending - 1, std::sync::atomic::Ordering::SeqCst);
            let count = demo_model().tags.len() + 1;
            self.live
                .remap(count, (0..count as u32).map(|i| (TagId(i), TagId(i))));
        }
        self.model.load()
    }

    fn apply(&self, model: uns_model::Model) -> Result<(), web::ApplyError> {
        self.model.apply(model)
    }
}

#[tokio::test]
async fn a_write_carries_the_model_generation_its_tag_was_looked_up_under() {
    let (mut app, recorder) = app();
    let model = app.state.model.load().unwrap();
    let live = app.state.live.clone();
    let importing = |imports: usize| Importing {
        model: MemoryModel::new(model.as_ref().clone()),
        live: live.clone(),
        imports: imports.into(),
    };
    // An import lands while the tag is looked up: looked up again, under the new generation.
    app.state.model = Arc::new(importing(1));
    let (status, body) = send(&app, Method::POST, SETPOINT, Some(json!({"value": 1}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        *recorder.writes.lock().unwrap(),
        [(TagId(5), 1, Value::Float32(1.0))]
    );
    // A model that keeps changing is said so, and nothing is written.
    app.state.model = Arc::new(importing(5));
    let (status, body) = send(&app, Method::POST, SETPOINT, Some(json!({"value": 2}))).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let reason = body["errors"][0]["reason"].as_str().unwrap();
    assert!(reason.contains("nothing was written"), "{reason}");
    assert_eq!(recorder.writes.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_write_reaches_the_device_only_when_the_tag_and_value_allow_it() {
    let (app, recorder) = app();
    let (status, body) = send(&app, Method::POST, SETPOINT, Some(json!({"value": 42.5}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"tag": "packaging/line3/filler/setpoint", "value": 42.5, "written": true})
    );
    // The tag's index in the running model: the sixth tag.
    assert_eq!(
        *recorder.writes.lock().unwrap(),
        [(TagId(5), 0, Value::Float32(42.5))]
    );

    for (uri, body, status, field) in [
        (
            "/api/tags/packaging/line3/filler/temperature/value",
            json!({"value": 1}),
            StatusCode::CONFLICT,
            "writable",
        ),
        (
            SETPOINT,
            json!({"value": "warm"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "value",
        ),
        (
            SETPOINT,
            json!({"value": 1e300}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "value",
        ),
        (
            SETPOINT,
            json!({"valeu": 1}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "valeu",
        ),
        (
            "/api/tags/packaging/line3/filler/nope/value",
            json!({"value": 1}),
            StatusCode::NOT_FOUND,
            "tag",
        ),
        (
            "/api/tags/packaging/line3/filler/setpoint",
            json!({"value": 1}),
            StatusCode::METHOD_NOT_ALLOWED,
            "path",
        ),
    ] {
        let (got, answer) = send(&app, Method::POST, uri, Some(body.clone())).await;
        assert_eq!(got, status, "{uri} {body}: {answer}");
        assert_eq!(only_error(&answer).0, field, "{uri} {body}: {answer}");
    }
    assert_eq!(
        recorder.writes.lock().unwrap().len(),
        1,
        "nothing refused was written"
    );
}

#[tokio::test]
async fn a_device_named_test_stays_reachable_beside_the_test_of_unsaved_devices() {
    let (app, recorder) = app();
    let (status, body) = send(&app, Method::GET, "/api/devices/test", None).await;
    assert_eq!(
        (status, &body["name"]),
        (StatusCode::OK, &json!("test")),
        "{body}"
    );
    let (status, body) = send(&app, Method::POST, "/api/devices/test/test", None).await;
    assert_eq!(
        (status, &body["message"]),
        (StatusCode::OK, &json!("test answered")),
        "{body}"
    );
    let unsaved = json!({"name": "new", "driver": "modbus-tcp", "host": "10.0.0.9"});
    let (status, body) = send(&app, Method::POST, "/api/devices/test", Some(unsaved)).await;
    assert_eq!(
        (status, &body["ok"]),
        (StatusCode::OK, &json!(true)),
        "{body}"
    );
    let (status, body) = send(&app, Method::POST, "/api/devices/demo-plc", Some(json!({}))).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{body}");
    assert_eq!(recorder.calls(), ["test test", "test new"]);
}

#[tokio::test]
async fn unsaved_settings_are_checked_before_any_device_is_contacted() {
    let (app, recorder) = app();
    let bad_device = json!({"name": "new", "driver": "modbus-tcp", "host": "10.0.0.9", "port": 0});
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/devices/test",
        Some(bad_device.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(only_error(&body), ("port".to_owned(), "0".to_owned()));

    let tag =
        json!({"location": "packaging/line3", "name": "t", "datatype": "int16", "address": "hr:0"});
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/devices/test-read",
        Some(json!({"device": bad_device, "tags": [tag]})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(only_error(&body).0, "device.port");

    let good_device = json!({"name": "new", "driver": "modbus-tcp", "host": "10.0.0.9"});
    let bad_tag = json!({"location": "packaging/nowhere", "name": "t", "datatype": "int16", "address": "hr:0"});
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/devices/test-read",
        Some(json!({"device": good_device, "tags": [tag, bad_tag]})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(only_error(&body).0, "tags[1].location", "{body}");
    assert!(recorder.calls().is_empty(), "{:?}", recorder.calls());

    // Valid: the device is asked, and its failure is the answer, per tag.
    let (status, body) = send(
        &app,
        Method::POST,
        "/api/devices/test-read",
        Some(json!({"device": good_device, "tags": tag})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["ok"], false);
    assert_eq!(
        body["tags"][0]["error"],
        "not read: unreachable in this test"
    );
    assert_eq!(recorder.calls(), ["read new 1"]);
}

#[tokio::test]
async fn at_most_four_probes_run_at_once() {
    let (app, recorder) = app();
    recorder
        .hold
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let mut running = Vec::new();
    for _ in 0..4 {
        let app = app.clone();
        running.push(tokio::spawn(async move {
            send(&app, Method::POST, "/api/devices/demo-plc/test", None).await
        }));
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while recorder.calls().len() < 4 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "four probes did not start"
        );
        tokio::task::yield_now().await;
    }
    let (status, body) = send(&app, Method::POST, "/api/devices/demo-plc/test", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("4 device tests"),
        "{body}"
    );
    // Writes are not probes: they still go through.
    let (status, _) = send(&app, Method::POST, SETPOINT, Some(json!({"value": 1}))).await;
    assert_eq!(status, StatusCode::OK);

    recorder
        .hold
        .store(false, std::sync::atomic::Ordering::SeqCst);
    recorder.release.notify_waiters();
    for r in running {
        assert_eq!(r.await.unwrap().0, StatusCode::OK);
    }
    let (status, _) = send(&app, Method::POST, "/api/devices/demo-plc/test", None).await;
    assert_eq!(status, StatusCode::OK, "a slot is free again");
}
