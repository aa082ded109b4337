//! `GET /settings` (admins): the Sparkplug ids and Primary Host, the northbound brokers, the
//! scan classes, the embedded broker's MQTT users, the whole model as a TOML file (export, and
//! import with a preview of what would change), and, read-only, the process configuration the
//! appliance was started with.
//!
//! Every change goes through the REST API (`PUT /api/sparkplug`, `/api/northbound/{name}`,
//! `PUT /api/scan-classes`, `/api/mqtt/users`, `PUT /api/model.toml[?dry_run=true]`) from
//! the page's forms (`data-api`, app.js) and script (`/static/settings.js`), so the page is
//! checked by exactly the rules a script is, and errors come back naming field, value and
//! reason.
//!
//! The process configuration (listeners, anonymous MQTT, a Primary Host id that overrides the
//! model's, and possibly northbound brokers of its own) lives in the configuration file
//! (`/etc/sparkedge/sparkedge.toml`), not in the model: the appliance reports it once at start
//! ([`RuntimeSettings`]) and it is shown here and at `GET /api/settings/runtime`, without
//! passwords. Changing it means editing the file and restarting the service. When the file
//! lists northbound brokers, those run and the model's list does not: the page says so above
//! the model's list, which stays editable for when the file's are removed.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::api_error::ApiError;
use crate::mqtt_users::MqttUser;
use crate::northbound::NorthboundView;
use crate::{AppState, CurrentUser};

/// The process configuration the appliance runs with, as far as it concerns a user: no
/// passwords, no key material.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct RuntimeSettings {
    /// Where it comes from: the configuration file's path, or the command line of
    /// `sparkedge demo`.
    pub source: String,
    pub data_dir: String,
    /// The embedded MQTT broker's listener (plain MQTT; the only one so far).
    pub mqtt_listen: String,
    /// Whether the embedded broker lets clients in without a user name.
    pub mqtt_allow_anonymous: bool,
    pub web_listen: String,
    /// Whether the UNS JSON tree is published.
    pub uns_enabled: bool,
    /// The Primary Host id the configuration file (or `demo --primary-host-id`) sets for
    /// the session on the embedded broker; it overrides the model's `sparkplug.primary_host_id`.
    pub primary_host_id: Option<String>,
    /// The configuration file's own `[[northbound]]` connections. Any at all: these run, and
    /// the model's are not used.
    pub northbound: Vec<NorthboundSettings>,
}

/// A plant MQTT broker (or cluster) with its own Sparkplug session.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NorthboundSettings {
    pub name: String,
    /// `mqtt://host:port` or `mqtts://host:port`, tried in this order.
    pub servers: Vec<String>,
    pub client_id: Option<String>,
    pub username: Option<String>,
    /// Whether a password is configured (never the password).
    pub password_set: bool,
    pub ca_file: Option<String>,
    pub primary_host_id: Option<String>,
}

#[derive(askama::Template, askama_web::WebTemplate)]
#[template(path = "settings.html")]
pub(crate) struct SettingsPage {
    user: Option<CurrentUser>,
    site: String,
    group_id: String,
    edge_node_id: String,
    /// The model's, empty for none.
    primary_host_id: String,
    /// The model's northbound connections.
    northbound: Vec<NorthboundView>,
    /// Whether the configuration file lists northbound brokers of its own, which run instead.
    northbound_from_file: bool,
    /// The add form's starting point: nothing set, enabled.
    new_northbound: NorthboundView,
    /// What a connection without a client id uses.
    default_client_id: String,
    scan_classes: Vec<ScanClassRow>,
    devices: usize,
    tags: usize,
    runtime: Option<RuntimeSettings>,
    mqtt_users: Vec<MqttUser>,
}

struct ScanClassRow {
    name: String,
    period_ms: u32,
    /// Tags that use it: a class in use cannot be removed.
    used_by: usize,
}

pub(crate) async fn page(State(state): State<AppState>, user: CurrentUser) -> Response {
    let model = match crate::running_model(&state).await {
        Ok(model) => model,
        Err((status, reason)) => return crate::account::message_page(status, Some(&user), &reason),
    };
    let mqtt_users = match state.auth.store(|users| users.mqtt_users()).await {
        Ok(users) => users,
        Err(e) => {
            return crate::account::message_page(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                Some(&user),
                &e.to_string(),
            );
        }
    };
    let scan_classes = model
        .scan_classes
        .iter()
        .map(|class| ScanClassRow {
            name: class.name.clone(),
            period_ms: class.period_ms,
            used_by: model
                .tags
                .iter()
                .filter(|t| t.scan_class() == Some(class.name.as_str()))
                .count(),
        })
        .collect();
    let runtime = state.status.snapshot().runtime;
    SettingsPage {
        user: Some(user),
        site: model.namespace.site.clone(),
        group_id: model.sparkplug.group_id.clone().unwrap_or_default(),
        edge_node_id: model.sparkplug.edge_node_id.clone(),
        primary_host_id: model.sparkplug.primary_host_id.clone().unwrap_or_default(),
        northbound: model.northbound.iter().map(Into::into).collect(),
        new_northbound: NorthboundView::default(),
        default_client_id: format!("sparkedge-{}", model.sparkplug.edge_node_id),
        scan_classes,
        devices: model.devices.len(),
        tags: model.tags.len(),
        northbound_from_file: runtime.as_ref().is_some_and(|r| !r.northbound.is_empty()),
        runtime,
        mqtt_users,
    }
    .into_response()
}

/// `GET /api/settings/runtime`: the process configuration, as [`RuntimeSettings`].
pub(crate) async fn runtime(
    State(state): State<AppState>,
) -> Result<Json<RuntimeSettings>, ApiError> {
    state.status.snapshot().runtime.map(Json).ok_or_else(|| {
        ApiError::unavailable("the appliance has not reported its configuration (yet)")
    })
}
