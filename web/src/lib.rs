//! The web side of sparkedge: the local UI and its HTTP API.
//!
//! This crate owns the axum router, the askama templates (in `templates/`), the REST API, the
//! live view of tag values over Server-Sent Events, and who may use them: users, roles and
//! login sessions ([`users`], [`auth`]). It owns [`LiveValues`], the latest sample of every
//! tag, which the appliance's hub writes and the web server reads. Names shown for a tag
//! always come from [`uns_model::tag_names`], the same rule every sink uses.
//!
//! Routes, by the least role they need (see [`router`] for how a new route picks one):
//! - public: `GET /healthz` (`ok`); `GET/POST /login`; `GET/POST /setup` (the first admin,
//!   with the one-time token from the log, only while there is no user).
//! - viewer: the pages — `GET /` the dashboard (broker, Sparkplug sessions, devices;
//!   [`dashboard`]), `GET /namespace` the ISA-95 tree, each node's tags (`GET /namespace/tags`,
//!   a page at a time) with UNS topic, Sparkplug metric and current value, updated in place
//!   from `/api/live` ([`namespace`]; its edit controls only for admins), `GET /sparkplug` the births the broker holds, decoded
//!   ([`sparkplug_page`]); `GET /api/values` — every tag with its names and latest value, as JSON;
//!   `GET /api/live` — SSE: first every tag (or those of `?tags=0-199,350`) that has a value,
//!   then only changed tags, at most one event per 250 ms per client, `event: model` when the
//!   tags were renumbered (the model changed), followed by every value again, and
//!   `event: session` before it ends with its login; the REST API's reads (`GET /api/…`,
//!   described by `GET /api/openapi.json`, which names each operation's role);
//!   `POST /logout`; `GET/POST /account` (own password); `GET /devices`, `GET /devices/{name}` —
//!   devices, their status and their tags with live values, a page at a time
//!   (`?filter=&page=`; operators also get "Write…" on writable tags, admins the forms; see
//!   `device_pages`).
//! - operator: `POST /api/tags/{location/name}/value` — write a tag's value (`device_api`).
//! - admin: the REST API's writes and the whole model (`/api/model`, which holds device
//!   passwords); the probes that reach the devices themselves with whatever settings they are
//!   given: test a connection, read tags once, preview Modbus registers, browse an OPC UA
//!   server (`device_api`, through [`DeviceAccess`]); the northbound connections, reading
//!   too, since they hold broker logins (`/api/northbound`, `northbound`); `/settings` —
//!   Sparkplug ids, northbound brokers, scan classes, model export and import, and the
//!   process configuration (`/api/settings/runtime`, [`settings`]); `/users` — list, add,
//!   change role, reset password, delete; the configuration forms `GET /devices/new`,
//!   `GET /devices/{name}/tags/new`, `GET /tags/{location/name}/edit`, `GET /tags/import`
//!   (`tag_pages`).

mod account;
mod api;
pub mod api_error;
pub mod auth;
mod dashboard;
mod device_api;
mod device_pages;
pub mod devices;
mod edit;
mod inspector;
mod live;
pub mod mqtt_users;
mod namespace;
mod northbound;
mod openapi;
mod paging;
mod scripts;
pub mod settings;
mod sparkplug_page;
pub mod status;
mod tag_pages;
pub mod users;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{get, post, put};
use tokio::sync::watch;

pub use auth::{Auth, CurrentUser};
pub use devices::{DeviceAccess, Devices};
pub use inspector::SparkplugBirths;
pub use live::LiveValues;
pub use settings::{NorthboundSettings, RuntimeSettings};
pub use status::StatusBoard;
pub use users::{Role, UserStore};

/// Where request handlers get the model the appliance runs, and where they send a changed one.
///
/// The appliance reads the model from its store for each request rather than keeping a
/// 100,000-tag model in memory for a page that is rarely open. Both calls may block (SQLite,
/// waiting for the running pipeline to take a new model): call them from `spawn_blocking`.
pub trait ModelSource: Send + Sync + std::fmt::Debug {
    /// The model running now.
    fn load(&self) -> Result<Arc<uns_model::Model>, String>;

    /// Validates `model`, stores it and applies it to the running appliance (drivers re-plan,
    /// Sparkplug re-births what changed, UNS topics move) before returning. On any error
    /// nothing changed: not the store, not what runs.
    fn apply(&self, model: uns_model::Model) -> Result<(), ApplyError>;
}

/// Why a changed model was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The model breaks a rule; every problem, each naming its field, value and rule.
    #[error("{0}")]
    Invalid(uns_model::ModelErrors),
    /// The store or the appliance could not take it (disk full, shutting down).
    #[error("{0}")]
    Failed(String),
}

/// A model held in memory (tests, small tools): `apply` validates and replaces it.
#[derive(Debug)]
pub struct MemoryModel(std::sync::RwLock<Arc<uns_model::Model>>);

impl MemoryModel {
    pub fn new(model: uns_model::Model) -> MemoryModel {
        MemoryModel(std::sync::RwLock::new(Arc::new(model)))
    }
}

impl ModelSource for MemoryModel {
    fn load(&self) -> Result<Arc<uns_model::Model>, String> {
        Ok(self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone())
    }

    fn apply(&self, model: uns_model::Model) -> Result<(), ApplyError> {
        model.validate().map_err(ApplyError::Invalid)?;
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(model);
        Ok(())
    }
}

/// The running model, loaded off the async threads (a store read may block).
async fn running_model(
    state: &AppState,
) -> Result<Arc<uns_model::Model>, (axum::http::StatusCode, String)> {
    let source = state.model.clone();
    let unavailable = |e: String| (axum::http::StatusCode::SERVICE_UNAVAILABLE, e);
    tokio::task::spawn_blocking(move || source.load())
        .await
        .map_err(|e| unavailable(format!("loading the model failed: {e}")))?
        .map_err(unavailable)
}

/// What every request handler needs.
#[derive(Clone, Debug)]
pub struct AppState {
    pub model: Arc<dyn ModelSource>,
    pub live: Arc<LiveValues>,
    /// Address of the embedded MQTT broker (`127.0.0.1:1883`), shown on the page.
    pub mqtt_address: String,
    /// Held from loading the model to applying the changed copy, so concurrent edits cannot
    /// overwrite each other.
    pub edits: Arc<tokio::sync::Mutex<()>>,
    /// Broker, Sparkplug sessions and devices as the appliance last reported them.
    pub status: Arc<StatusBoard>,
    /// The births the embedded broker holds, decoded; `None` where there is no broker.
    pub births: Option<Arc<dyn SparkplugBirths>>,
    /// Users, sessions, the first-run setup token.
    pub auth: Arc<Auth>,
    /// The devices themselves: probes for the configuration pages, writes of values.
    pub devices: Devices,
}

impl AppState {
    /// `model` served from memory with `auth`: no broker, no inspector, no device access,
    /// live values for the model's tags. What the web crate's tests run on.
    pub fn in_memory(model: uns_model::Model, auth: Auth) -> AppState {
        AppState {
            live: Arc::new(LiveValues::new(model.tags.len())),
            model: Arc::new(MemoryModel::new(model)),
            mqtt_address: "127.0.0.1:1883".to_owned(),
            edits: Default::default(),
            status: Default::default(),
            births: None,
            auth: Arc::new(auth),
            devices: Devices::unavailable(),
        }
    }
}

/// Tells long-lived responses (SSE) that the server is shutting down; set by [`serve`].
#[derive(Clone, Debug)]
struct ShutdownSignal(watch::Receiver<bool>);

/// The whole app: [`Routes::app`] built with `state`.
pub fn router(state: AppState) -> Router {
    Routes::app().build(state)
}

/// Routes grouped by the least role they need. [`build`](Routes::build) gives each group the
/// login check for its role as a route layer, so handlers need no checks of their own:
///
/// - a new route goes into the group of the least role that may use it (`viewer` to read,
///   `operator` to write tag values, `admin` to change configuration or users);
/// - the same path may sit in two groups with different methods (`GET` viewer, `POST`
///   admin): each method keeps its own check;
/// - a handler that shows who is logged in (or needs the CSRF token for a form) takes a
///   [`CurrentUser`] argument;
/// - unsafe methods (POST, PUT, PATCH, DELETE) are checked for the session's CSRF token in the
///   guarded groups, and for a foreign `Origin` everywhere.
#[derive(Debug, Default)]
pub struct Routes {
    /// No login: health check, login, first-run setup.
    pub public: Router<AppState>,
    pub viewer: Router<AppState>,
    pub operator: Router<AppState>,
    pub admin: Router<AppState>,
}

impl Routes {
    /// Every route of the app. The roles are those `/api/openapi.json` documents.
    pub fn app() -> Routes {
        let viewer =
            Router::new()
                .route("/", get(dashboard::page))
                .route("/namespace", get(namespace::page))
                .route("/namespace/tags", get(namespace::tags))
                .route("/sparkplug", get(sparkplug_page::page))
                .route("/api/values", get(api::values))
                .route("/api/live", get(api::live))
                .route("/api/openapi.json", get(openapi::document))
                .route(
                    "/api/status",
                    get(|State(state): State<AppState>| async move {
                        axum::Json(state.status.snapshot())
                    }),
                )
                .route("/api/sparkplug/births", get(inspector::list))
                .route("/api/sparkplug/births/{*topic}", get(inspector::get))
                // Devices as shown here never carry their passwords.
                .route("/api/devices", get(edit::list_devices))
                .route("/api/devices/{name}", get(edit::get_device))
                .route("/api/tags", get(edit::list_tags))
                .route("/api/tags.csv", get(edit::export_csv))
                .route("/api/tags/{*path}", get(edit::get_tag))
                .route("/api/namespace", get(edit::get_namespace))
                .route("/devices", get(device_pages::list))
                .route("/devices/{name}", get(device_pages::device))
                .route("/api/sparkplug", get(edit::get_sparkplug))
                .route("/api/scan-classes", get(edit::get_scan_classes))
                .merge(account::own_routes());
        let admin = Router::new()
            // The whole model includes device passwords: admins only, reading too.
            .route("/api/model", get(edit::get_model).put(edit::put_model))
            .route(
                "/api/model.toml",
                get(edit::get_model_toml).put(edit::put_model_toml),
            )
            .route("/api/devices", post(edit::create_device))
            .route(
                "/api/devices/{name}",
                put(edit::update_device)
                    .delete(edit::delete_device)
                    // POST /api/devices/test and /api/devices/test-read: unsaved devices.
                    .post(device_api::post_device),
            )
            // Probes connect to plant equipment with whatever settings they are given.
            .route("/api/devices/{name}/test", post(device_api::test_saved))
            .route("/api/devices/{name}/read", post(device_api::read_saved))
            .route(
                "/api/devices/{name}/modbus-preview",
                post(device_api::modbus_preview),
            )
            .route("/api/devices/{name}/browse", get(device_api::browse))
            .route("/api/tags", post(edit::create_tags))
            .route("/api/tags.csv", post(edit::import_csv))
            .route(
                "/api/tags/{*path}",
                put(edit::update_tag).delete(edit::delete_tag),
            )
            .route("/api/namespace", put(edit::put_namespace))
            .route("/api/namespace/rename", post(edit::rename_node))
            .route("/api/sparkplug", put(edit::put_sparkplug))
            .route("/api/scan-classes", put(edit::put_scan_classes))
            // Northbound connections hold broker logins: admins only, reading too.
            .route("/api/northbound", get(northbound::list))
            .route(
                "/api/northbound/{name}",
                get(northbound::get)
                    .put(northbound::put)
                    .delete(northbound::delete),
            )
            .route("/settings", get(settings::page))
            .route("/api/settings/runtime", get(settings::runtime))
            .route(
                "/api/mqtt/users",
                get(mqtt_users::list).post(mqtt_users::create),
            )
            .route(
                "/api/mqtt/users/{name}",
                put(mqtt_users::update).delete(mqtt_users::remove),
            )
            // `/devices/new` is the form, not a device: a device named `new` is linked as
            // `/devices/New` (device_pages::device_url).
            .route("/devices/new", get(device_pages::new_device))
            .route("/devices/{name}/tags/new", get(tag_pages::new_tag))
            .route("/tags/import", get(tag_pages::import))
            // `/tags/{location/name}/edit`: a tag's path has no fixed length.
            .route("/tags/{*path}", get(tag_pages::edit_tag))
            .merge(account::admin_routes());
        Routes {
            public: Router::new()
                .route("/healthz", get(|| async { "ok" }))
                .route("/static/app.js", get(app_js))
                .merge(scripts::routes())
                .merge(account::public_routes()),
            viewer,
            // Writing a tag's value; `{*path}` ends in `/value` (device_api::post_tag).
            operator: Router::new().route("/api/tags/{*path}", post(device_api::post_tag)),
            admin,
        }
    }

    /// The groups behind their login checks, merged, with the `Origin` check on everything.
    pub fn build(self, state: AppState) -> Router {
        self.public
            .merge(guarded(&state, Role::Viewer, self.viewer))
            .merge(guarded(&state, Role::Operator, self.operator))
            .merge(guarded(&state, Role::Admin, self.admin))
            .layer(from_fn(auth::check_origin))
            // A whole model or a CSV of 100,000 tags is about 10 MB; axum's default is 2 MB.
            .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
            .with_state(state)
    }
}

/// The pages' script, compiled in (no CDN: the appliance works without internet). Public,
/// like the login page that uses it; revalidated on every load so an upgrade takes effect.
async fn app_js() -> impl axum::response::IntoResponse {
    (
        [
            (
                axum::http::header::CONTENT_TYPE,
                "text/javascript; charset=utf-8",
            ),
            (axum::http::header::CACHE_CONTROL, "no-cache"),
        ],
        include_str!("../static/app.js"),
    )
}

/// `routes` behind the login check for `role`.
fn guarded(state: &AppState, role: Role, routes: Router<AppState>) -> Router<AppState> {
    if !routes.has_routes() {
        return routes; // axum refuses a route layer without routes
    }
    let guard = auth::Guard {
        state: state.clone(),
        role,
    };
    routes.route_layer(from_fn_with_state(guard, auth::require))
}

/// Serves until `shutdown` completes.
///
/// Open live-view streams are ended when `shutdown` completes, so a browser tab cannot keep
/// the server (and the appliance's shutdown) waiting.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let app = router(state).layer(axum::Extension(ShutdownSignal(stop_rx)));
    // The peer address is what failed logins are counted and logged against.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stop_tx.send_replace(true);
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::body::{Body, BodyDataStream};
    use axum::http::{Request, StatusCode};
    use futures_util::StreamExt;
    use serde_json::{Value as JsonValue, json};
    use tower::ServiceExt;
    use uns_model::{
        Area, DataType, Line, Model, Namespace, Quality, SparkplugIds, Tag, TagId, TagSample, Value,
    };

    use super::*;

    const DEADLINE: Duration = Duration::from_secs(5);

    fn tag(location: &str, name: &str, datatype: DataType, unit: Option<&str>) -> Tag {
        Tag {
            unit: unit.map(str::to_owned),
            ..Tag::new("filler-plc", location, name, datatype, "sine")
        }
    }

    fn state() -> AppState {
        let model = Model {
            namespace: Namespace {
                enterprise: "acme".to_owned(),
                site: "plant-a".to_owned(),
            },
            sparkplug: SparkplugIds::default(),
            northbound: Vec::new(),
            scan_classes: Vec::new(),
            areas: vec![Area {
                name: "packaging".to_owned(),
                lines: vec![Line {
                    name: "line3".to_owned(),
                    cells: vec!["filler".to_owned()],
                }],
            }],
            devices: vec![],
            tags: vec![
                tag(
                    "packaging/line3/filler",
                    "temperature",
                    DataType::Float32,
                    Some("°C"),
                ),
                tag("packaging/line3", "state", DataType::String, None),
            ],
        };
        let users = UserStore::open_in_memory().unwrap();
        users
            .add("vera", Role::Viewer, "viewer password", 0)
            .unwrap();
        AppState::in_memory(model, Auth::new(users).unwrap())
    }

    /// The `Cookie` header of a new session of the viewer `state` has.
    fn viewer_cookie(state: &AppState) -> String {
        let now = state.auth.clock.now_ms();
        let session = state.auth.users().start_session("vera", now).unwrap();
        format!("{}={}", auth::SESSION_COOKIE, session.token)
    }

    fn sample(tag: u32, value: Value, quality: Quality) -> TagSample {
        TagSample {
            tag: TagId(tag),
            value: Some(value),
            quality,
            timestamp_ms: 1_700_000_000_000 + u64::from(tag),
        }
    }

    /// GET as a logged-in viewer.
    async fn get(state: &AppState, uri: &str) -> (StatusCode, Body) {
        let request = Request::get(uri)
            .header("cookie", viewer_cookie(state))
            .body(Body::empty())
            .unwrap();
        let response = router(state.clone()).oneshot(request).await.unwrap();
        (response.status(), response.into_body())
    }

    async fn text(body: Body) -> String {
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    /// Reads the next SSE event that carries data and parses that data as JSON.
    async fn next_event(stream: &mut BodyDataStream, buffer: &mut String) -> JsonValue {
        loop {
            if let Some(end) = buffer.find("\n\n") {
                let event: String = buffer.drain(..end + 2).collect();
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .collect();
                if !data.is_empty() {
                    return serde_json::from_str(data.join("\n").trim()).unwrap();
                }
                continue;
            }
            let chunk = tokio::time::timeout(DEADLINE, stream.next())
                .await
                .expect("no SSE event before the deadline")
                .expect("SSE stream ended")
                .unwrap();
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    #[tokio::test]
    async fn page_shows_the_tree_names_and_current_values() {
        let state = state();
        state.live.update(&[
            sample(0, Value::Float32(21.5), Quality::Good),
            sample(1, Value::String("<running>".to_owned()), Quality::Stale),
        ]);
        let (status, body) = get(&state, "/namespace").await;
        assert_eq!(status, StatusCode::OK);
        let html = text(body).await;
        for expected in [
            "acme › plant-a",
            "mosquitto_sub -h 127.0.0.1 -p 1883 -t &#39;acme/plant-a/#&#39; -v",
            "packaging",
            "line3",
            "filler",
        ] {
            assert!(html.contains(expected), "page lacks {expected:?}:\n{html}");
        }
        // The tags come with their node, when it is opened.
        let (status, body) = get(&state, "/namespace/tags?location=packaging/line3/filler").await;
        assert_eq!(status, StatusCode::OK);
        let html = text(body).await;
        for expected in [
            "temperature",
            "acme/plant-a/packaging/line3/filler/temperature",
            "filler-plc / packaging/line3/filler/temperature",
            "float32",
            "°C",
            r#"id="v0" data-live="0">21.5<"#,
        ] {
            assert!(html.contains(expected), "node lacks {expected:?}:\n{html}");
        }
        let html = text(
            get(&state, "/namespace/tags?location=packaging/line3")
                .await
                .1,
        )
        .await;
        for expected in [
            r#"id="q1" data-live-quality="1">stale<"#,
            // Values from a PLC are escaped, never markup.
            "&#60;running&#62;",
        ] {
            assert!(html.contains(expected), "node lacks {expected:?}:\n{html}");
        }
    }

    #[tokio::test]
    async fn an_uncertain_value_is_shown_with_its_own_badge() {
        let state = state();
        state
            .live
            .update(&[sample(0, Value::Float32(21.5), Quality::Uncertain)]);
        let html = text(
            get(&state, "/namespace/tags?location=packaging/line3/filler")
                .await
                .1,
        )
        .await;
        for expected in [
            r#"id="v0" data-live="0">21.5<"#,
            r#"<span class="q q-uncertain" id="q0" data-live-quality="0">uncertain</span>"#,
        ] {
            assert!(html.contains(expected), "node lacks {expected:?}:\n{html}");
        }
        // Styled apart from good, bad and stale (the live view sets the same class).
        let html = text(get(&state, "/namespace").await.1).await;
        assert!(html.contains(".q-uncertain {"), "{html}");
        let values: JsonValue =
            serde_json::from_str(&text(get(&state, "/api/values").await.1).await).unwrap();
        assert_eq!(
            (&values[0]["value"], &values[0]["quality"]),
            (&json!(21.5), &json!("uncertain"))
        );
    }

    #[tokio::test]
    async fn api_values_returns_names_and_the_latest_value() {
        let state = state();
        state
            .live
            .update(&[sample(0, Value::Float32(21.7), Quality::Bad)]);
        let (status, body) = get(&state, "/api/values").await;
        assert_eq!(status, StatusCode::OK);
        let values: JsonValue = serde_json::from_str(&text(body).await).unwrap();
        assert_eq!(
            values,
            json!([
                {
                    "tag": 0,
                    "uns_topic": "acme/plant-a/packaging/line3/filler/temperature",
                    "device": "filler-plc",
                    "metric": "packaging/line3/filler/temperature",
                    "datatype": "float32",
                    "value": 21.7,
                    "quality": "bad",
                    "timestamp": 1_700_000_000_000u64,
                },
                {
                    "tag": 1,
                    "uns_topic": "acme/plant-a/packaging/line3/state",
                    "device": "filler-plc",
                    "metric": "packaging/line3/state",
                    "datatype": "string",
                    "value": null,
                    "quality": null,
                    "timestamp": null,
                },
            ])
        );
    }

    #[tokio::test]
    async fn live_sends_current_values_then_only_changes() {
        let state = state();
        state.live.update(&[
            sample(0, Value::Float32(1.5), Quality::Good),
            sample(1, Value::String("idle".to_owned()), Quality::Good),
        ]);
        let (status, body) = get(&state, "/api/live").await;
        assert_eq!(status, StatusCode::OK);
        let mut stream = body.into_data_stream();
        let mut buffer = String::new();

        let first = next_event(&mut stream, &mut buffer).await;
        assert_eq!(
            first,
            json!([
                {"tag": 0, "value": 1.5, "quality": "good", "timestamp": 1_700_000_000_000u64},
                {"tag": 1, "value": "idle", "quality": "good", "timestamp": 1_700_000_000_001u64},
            ])
        );

        state.live.update(&[sample(
            1,
            Value::String("running".to_owned()),
            Quality::Stale,
        )]);
        let second = next_event(&mut stream, &mut buffer).await;
        assert_eq!(
            second,
            json!([
                {"tag": 1, "value": "running", "quality": "stale", "timestamp": 1_700_000_000_001u64},
            ])
        );
    }

    #[tokio::test]
    async fn live_announces_a_changed_model_then_sends_every_value_renumbered() {
        let state = state();
        state
            .live
            .update(&[sample(0, Value::Float32(1.5), Quality::Good)]);
        let (_, body) = get(&state, "/api/live").await;
        let mut stream = body.into_data_stream();
        let mut buffer = String::new();
        next_event(&mut stream, &mut buffer).await;

        // A tag was inserted ahead of the first: it is tag 1 now.
        state.live.remap(3, [(TagId(0), TagId(1))]);
        while !buffer.contains("event: model\n") {
            let chunk = tokio::time::timeout(DEADLINE, stream.next())
                .await
                .expect("no model event before the deadline")
                .expect("SSE stream ended")
                .unwrap();
            buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        let end = buffer.find("event: model\n").unwrap();
        let end = end + buffer[end..].find("\n\n").unwrap() + 2;
        buffer.drain(..end);
        assert_eq!(
            next_event(&mut stream, &mut buffer).await,
            json!([{"tag": 1, "value": 1.5, "quality": "good", "timestamp": 1_700_000_000_000u64}])
        );
    }

    #[tokio::test]
    async fn healthz_says_ok() {
        let (status, body) = get(&state(), "/healthz").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(text(body).await, "ok");
    }

    #[tokio::test]
    async fn serve_ends_open_live_streams_on_shutdown() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let state = state();
        let cookie = viewer_cookie(&state);
        let server = tokio::spawn(serve(listener, state, async {
            let _ = stop_rx.await;
        }));

        let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        client
            .write_all(
                format!("GET /api/live HTTP/1.1\r\nHost: test\r\nCookie: {cookie}\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .unwrap();
        // Wait until the stream is open (its first event arrived) before shutting down.
        let mut received = Vec::new();
        while !received.windows(5).any(|w| w == b"data:") {
            let mut chunk = [0u8; 1024];
            let n = tokio::time::timeout(DEADLINE, client.read(&mut chunk))
                .await
                .unwrap()
                .unwrap();
            assert!(n > 0, "connection closed before the first event");
            received.extend_from_slice(&chunk[..n]);
        }

        stop_tx.send(()).unwrap();
        tokio::time::timeout(DEADLINE, server)
            .await
            .expect("server still running with a live stream open")
            .unwrap()
            .unwrap();
    }

    #[derive(Debug)]
    struct Unreadable;

    impl ModelSource for Unreadable {
        fn load(&self) -> Result<Arc<Model>, String> {
            Err("cannot read the model: disk I/O error".to_owned())
        }

        fn apply(&self, _: Model) -> Result<(), ApplyError> {
            Err(ApplyError::Failed("read only".to_owned()))
        }
    }

    #[tokio::test]
    async fn a_model_that_cannot_be_served_is_an_error_with_its_reason() {
        let mut state = state();
        state.model = Arc::new(Unreadable);
        for uri in ["/namespace", "/api/values"] {
            let (status, body) = get(&state, uri).await;
            assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{uri}");
            let text = text(body).await;
            assert!(text.contains("disk I/O error"), "{uri}: {text}");
        }
    }
}
