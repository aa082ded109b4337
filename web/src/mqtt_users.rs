//! MQTT users of the embedded broker: the clients (SCADA, MES, historians) that may connect,
//! and whether each may publish or only subscribe.
//!
//! They live in `users.db` beside the web users, so their password hashes stay in the one
//! file only the service reads, and a model export never carries them. Admins manage them on
//! the settings page and through `/api/mqtt/users`; `sparkedge mqtt-user` does the same on
//! the box. The appliance hands the table to the broker at start, after every change made
//! here ([`crate::Auth::on_mqtt_users_changed`]), and after changes made by the CLI, which
//! it looks for every couple of seconds.
//!
//! Hashes are made by [`broker::hash_password`]: argon2id PHC strings like the web users',
//! with OWASP's lighter profile (7 MiB instead of 19 MiB), because MQTT clients reconnect on
//! every network hiccup and each CONNECT is one verification inside the appliance's memory
//! budget.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use rusqlite::{OptionalExtension, TransactionBehavior, params};
use serde::{Deserialize, Serialize};
use uns_model::ModelError;

use crate::api_error::{ApiError, JsonBody};
use crate::users::{UserError, UserStore, check_name, check_password};
use crate::{AppState, CurrentUser};

/// Names the appliance keeps for its own clients (the broker's internal login).
pub const RESERVED_PREFIX: &str = broker::INTERNAL_USER;

/// What an MQTT user may do on the embedded broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MqttAccess {
    /// Subscribe only: dashboards, MES and historians that read the UNS or Sparkplug.
    Subscribe,
    /// Publish and subscribe: a SCADA Primary Host (STATE, NCMD/DCMD) or an application
    /// that writes into the namespace.
    Publish,
}

impl MqttAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            MqttAccess::Subscribe => "subscribe",
            MqttAccess::Publish => "publish",
        }
    }

    fn parse(text: &str) -> Result<MqttAccess, UserError> {
        match text {
            "subscribe" => Ok(MqttAccess::Subscribe),
            "publish" => Ok(MqttAccess::Publish),
            other => Err(UserError::Corrupt(format!(
                "mqtt_users.access is {other:?}; allowed: subscribe, publish"
            ))),
        }
    }
}

/// An MQTT user as listed: never the hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct MqttUser {
    pub name: String,
    pub access: MqttAccess,
    /// Milliseconds since the Unix epoch.
    pub created_ms: u64,
}

/// What the broker needs to check a CONNECT: only the appliance reads these.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MqttCredential {
    pub name: String,
    pub password_hash: String,
    pub access: MqttAccess,
}

fn check_mqtt_name(name: &str) -> Result<(), UserError> {
    check_name(name)?;
    if name.to_ascii_lowercase().starts_with(RESERVED_PREFIX) {
        return Err(UserError::Invalid(ModelError::new(
            "name",
            name,
            format!(
                "names starting with {RESERVED_PREFIX:?} are kept for the appliance's own clients"
            ),
        )));
    }
    Ok(())
}

impl UserStore {
    /// Every MQTT user, by name.
    pub fn mqtt_users(&self) -> Result<Vec<MqttUser>, UserError> {
        let conn = self.conn();
        let mut statement =
            conn.prepare("SELECT name, access, created_ms FROM mqtt_users ORDER BY name")?;
        let rows = statement.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })?;
        let mut users = Vec::new();
        for row in rows {
            let (name, access, created_ms) = row?;
            users.push(MqttUser {
                name,
                access: MqttAccess::parse(&access)?,
                created_ms: u64::try_from(created_ms).unwrap_or(0),
            });
        }
        Ok(users)
    }

    /// Every MQTT user with the hash, for the broker.
    pub fn mqtt_credentials(&self) -> Result<Vec<MqttCredential>, UserError> {
        let conn = self.conn();
        let mut statement =
            conn.prepare("SELECT name, password_hash, access FROM mqtt_users ORDER BY name")?;
        let rows = statement.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        let mut credentials = Vec::new();
        for row in rows {
            let (name, password_hash, access) = row?;
            credentials.push(MqttCredential {
                name,
                password_hash,
                access: MqttAccess::parse(&access)?,
            });
        }
        Ok(credentials)
    }

    /// Adds an MQTT user; name and password are checked first, nothing is stored on an error.
    pub fn add_mqtt_user(
        &self,
        name: &str,
        password: &str,
        access: MqttAccess,
        now_ms: u64,
    ) -> Result<MqttUser, UserError> {
        check_mqtt_name(name)?;
        check_password(password)?;
        let hash = broker::hash_password(password);
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Unique ignoring case: brokers compare names exactly, people do not.
        let taken: Option<String> = tx
            .query_row(
                "SELECT name FROM mqtt_users WHERE lower(name) = lower(?1)",
                [name],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(taken) = taken {
            return Err(UserError::Exists(taken));
        }
        tx.execute(
            "INSERT INTO mqtt_users (name, access, password_hash, created_ms) VALUES (?1, ?2, ?3, ?4)",
            params![name, access.as_str(), hash, i64::try_from(now_ms).unwrap_or(i64::MAX)],
        )?;
        tx.commit()?;
        Ok(MqttUser {
            name: name.to_owned(),
            access,
            created_ms: now_ms,
        })
    }

    /// Changes an MQTT user's password, access, or both. Clients logged in under the old
    /// ones are disconnected by the broker when the appliance passes the table on.
    pub fn update_mqtt_user(
        &self,
        name: &str,
        password: Option<&str>,
        access: Option<MqttAccess>,
    ) -> Result<MqttUser, UserError> {
        if let Some(password) = password {
            check_password(password)?;
        }
        let hash = password.map(broker::hash_password);
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let found: Option<(String, i64)> = tx
            .query_row(
                "SELECT access, created_ms FROM mqtt_users WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((old_access, created_ms)) = found else {
            return Err(UserError::NotFound(name.to_owned()));
        };
        if let Some(hash) = hash {
            tx.execute(
                "UPDATE mqtt_users SET password_hash = ?2 WHERE name = ?1",
                params![name, hash],
            )?;
        }
        let access = match access {
            Some(access) => access,
            None => MqttAccess::parse(&old_access)?,
        };
        tx.execute(
            "UPDATE mqtt_users SET access = ?2 WHERE name = ?1",
            params![name, access.as_str()],
        )?;
        tx.commit()?;
        Ok(MqttUser {
            name: name.to_owned(),
            access,
            created_ms: u64::try_from(created_ms).unwrap_or(0),
        })
    }

    pub fn remove_mqtt_user(&self, name: &str) -> Result<(), UserError> {
        let removed = self
            .conn()
            .execute("DELETE FROM mqtt_users WHERE name = ?1", [name])?;
        if removed == 0 {
            return Err(UserError::NotFound(name.to_owned()));
        }
        Ok(())
    }
}

/// The body of `POST /api/mqtt/users`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewMqttUser {
    pub name: String,
    /// 8 to 128 characters.
    pub password: String,
    pub access: MqttAccess,
}

/// The body of `PUT /api/mqtt/users/{name}`: what to change; a field left out stays.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MqttUserChange {
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub access: Option<MqttAccess>,
}

fn api_error(e: UserError) -> ApiError {
    let status = match &e {
        UserError::NotFound(_) => StatusCode::NOT_FOUND,
        UserError::Exists(_) => StatusCode::CONFLICT,
        e if e.is_user_fault() => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    match e {
        UserError::Invalid(e) => ApiError::field(status, e.field, e.value, e.reason),
        UserError::Exists(name) => ApiError::field(
            status,
            "name",
            name,
            "an MQTT user of this name (ignoring case) exists already",
        ),
        UserError::NotFound(name) => ApiError::not_found("name", &name, "MQTT user"),
        e => ApiError::new(status, e.to_string()),
    }
}

/// Runs a store call off the async threads, then hands the new table to the appliance, so
/// the broker has it when the request returns.
async fn change<T: Send + 'static>(
    state: &AppState,
    call: impl FnOnce(&UserStore) -> Result<T, UserError> + Send + 'static,
) -> Result<T, ApiError> {
    let auth = state.auth.clone();
    state
        .auth
        .hashing(move |users| {
            let done = call(users)?;
            if let Some(hook) = auth.mqtt_hook() {
                hook(users.mqtt_credentials()?);
            }
            Ok(done)
        })
        .await
        .map_err(api_error)
}

/// `GET /api/mqtt/users`.
pub(crate) async fn list(State(state): State<AppState>) -> Result<Json<Vec<MqttUser>>, ApiError> {
    state
        .auth
        .store(|users| users.mqtt_users())
        .await
        .map(Json)
        .map_err(api_error)
}

/// `POST /api/mqtt/users`.
pub(crate) async fn create(
    State(state): State<AppState>,
    admin: CurrentUser,
    JsonBody(new): JsonBody<NewMqttUser>,
) -> Result<Response, ApiError> {
    let now = state.auth.clock.now_ms();
    let user = change(&state, move |users| {
        users.add_mqtt_user(&new.name, &new.password, new.access, now)
    })
    .await?;
    tracing::info!(target: "audit", admin = %admin.name, mqtt_user = %user.name, access = user.access.as_str(), "MQTT user added");
    Ok((StatusCode::CREATED, Json(user)).into_response())
}

/// `PUT /api/mqtt/users/{name}`.
pub(crate) async fn update(
    State(state): State<AppState>,
    admin: CurrentUser,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<MqttUserChange>,
) -> Result<Json<MqttUser>, ApiError> {
    let password_changed = body.password.is_some();
    let user = change(&state, move |users| {
        users.update_mqtt_user(&name, body.password.as_deref(), body.access)
    })
    .await?;
    tracing::info!(target: "audit", admin = %admin.name, mqtt_user = %user.name, access = user.access.as_str(), password_changed, "MQTT user changed");
    Ok(Json(user))
}

/// `DELETE /api/mqtt/users/{name}`.
pub(crate) async fn remove(
    State(state): State<AppState>,
    admin: CurrentUser,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let removed = name.clone();
    change(&state, move |users| users.remove_mqtt_user(&name)).await?;
    tracing::info!(target: "audit", admin = %admin.name, mqtt_user = %removed, "MQTT user removed");
    Ok(StatusCode::NO_CONTENT)
}
