//! The model's northbound connections over the REST API: plant MQTT brokers, each with its
//! own Sparkplug session carrying the same births as the embedded broker's.
//!
//! - `GET /api/northbound`, `GET /api/northbound/{name}`: the connections as
//!   [`NorthboundView`], never a password (`password_set` says whether one is stored).
//! - `PUT /api/northbound/{name}`: creates (201) or replaces (200) one connection. The body
//!   is a [`uns_model::Northbound`]; its `name` may be left out and otherwise must be the
//!   URL's. With `If-None-Match: *` it only creates (412 if the name is taken), which is
//!   what the settings page's "Add" form sends so it cannot overwrite a connection.
//! - `DELETE /api/northbound/{name}`.
//!
//! Passwords are write-only, so what a client read can be written back: see
//! [`PasswordSent`] for the rule. `password_set` in a body is ignored for the same reason.
//!
//! Every change goes through [`edit::change`](crate::edit::change): validated as a whole
//! model, stored and applied at once (the appliance ends the session of a changed or removed
//! connection with NDEATH and starts the new one), or refused with nothing changed. Errors on
//! the connection being saved are named as its body writes them (`servers[1]`, `ca_pem`).
//!
//! All of it is for admins, reading too: the answers carry broker user names and where the
//! plant's brokers are.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value as JsonValue, json};
use uns_model::{Model, Northbound};

use crate::AppState;
use crate::api_error::{ApiError, JsonBody};
use crate::edit::{Scope, change, running};

/// A northbound connection as the API and the settings page show it: everything but the
/// password. Every field is always present (`null` when not set), so a script need not know
/// the defaults to read it.
#[derive(Clone, Debug, PartialEq, Serialize, schemars::JsonSchema)]
pub(crate) struct NorthboundView {
    pub name: String,
    /// `mqtt://host[:port]` or `mqtts://host[:port]`, tried in this order.
    pub servers: Vec<String>,
    /// `null`: `sparkedge-<edge node id>`.
    pub client_id: Option<String>,
    pub username: Option<String>,
    /// Whether a password is stored; the password itself is never shown.
    pub password_set: bool,
    /// PEM of the CA certificate(s) for `mqtts://` servers (public, so shown).
    pub ca_pem: Option<String>,
    /// The SCADA host whose STATE gates this session's births; `null`: none.
    pub primary_host_id: Option<String>,
    pub enabled: bool,
}

impl Default for NorthboundView {
    /// A new connection as the add form starts it: nothing set, enabled.
    fn default() -> NorthboundView {
        NorthboundView {
            name: String::new(),
            servers: Vec::new(),
            client_id: None,
            username: None,
            password_set: false,
            ca_pem: None,
            primary_host_id: None,
            enabled: true,
        }
    }
}

impl From<&Northbound> for NorthboundView {
    fn from(n: &Northbound) -> NorthboundView {
        NorthboundView {
            name: n.name.clone(),
            servers: n.servers.clone(),
            client_id: n.client_id.clone(),
            username: n.username.clone(),
            password_set: n.password.is_some(),
            ca_pem: n.ca_pem.clone(),
            primary_host_id: n.primary_host_id.clone(),
            enabled: n.enabled,
        }
    }
}

impl NorthboundView {
    /// The servers one per line, as the settings page's textarea takes them.
    pub(crate) fn servers_text(&self) -> String {
        self.servers.join("\n")
    }

    /// Whether any server is reached over TLS.
    pub(crate) fn tls(&self) -> bool {
        self.servers.iter().any(|s| s.starts_with("mqtts://"))
    }
}

/// What a PUT body says about the password. The rule, as the API documents it:
/// - a string sets the password;
/// - `null` means no password (a stored one is removed);
/// - left out keeps the stored password while the username stays the same. With another
///   username the stored password belongs to a different login, so it is refused rather than
///   sent under the new name: the body must give the new login's password, or `null`.
///   Without a username there is no password (MQTT sends none without a user name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PasswordSent {
    Given,
    Null,
    LeftOut,
}

/// Applies [`PasswordSent`] to `new`, replacing `old`.
fn settle_password(
    old: Option<&Northbound>,
    new: &mut Northbound,
    sent: PasswordSent,
) -> Result<(), ApiError> {
    match sent {
        PasswordSent::Given => Ok(()),
        PasswordSent::Null => {
            new.password = None;
            Ok(())
        }
        PasswordSent::LeftOut => {
            let Some(old) = old.filter(|o| o.password.is_some()) else {
                return Ok(());
            };
            match (&new.username, &old.username) {
                (None, _) => Ok(()),
                (Some(user), Some(stored)) if user == stored => {
                    new.password = old.password.clone();
                    Ok(())
                }
                (Some(user), stored) => Err(ApiError::field(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "password",
                    "(left out)",
                    format!(
                        "the username changes from {} to {user:?}, so the stored password \
                         cannot be kept: give the password of {user:?}, or null for no password",
                        stored
                            .as_deref()
                            .map_or_else(|| "none".to_owned(), |s| format!("{s:?}"))
                    ),
                )),
            }
        }
    }
}

/// Reads a PUT body for the connection named `name` in the URL.
fn parse_body(name: &str, body: JsonValue) -> Result<(Northbound, PasswordSent), ApiError> {
    let JsonValue::Object(mut map) = body else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a northbound connection must be a JSON object",
        ));
    };
    // What GET shows, written back: read-only, not a setting.
    map.remove("password_set");
    let sent = match map.get("password") {
        None => PasswordSent::LeftOut,
        Some(JsonValue::Null) => PasswordSent::Null,
        Some(_) => PasswordSent::Given,
    };
    match map.get("name") {
        None | Some(JsonValue::Null) => {
            map.insert("name".to_owned(), json!(name));
        }
        Some(JsonValue::String(n)) if n == name => {}
        Some(other) => {
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "name",
                crate::api_error::text_of(other),
                format!(
                    "must be {name:?}, the name in the URL, or be left out; to rename a \
                     connection, add it under the new name and delete the old one"
                ),
            ));
        }
    }
    let connection = crate::api_error::parse(&JsonValue::Object(map))?;
    Ok((connection, sent))
}

/// The connection called `name`: the exact name first, else one differing only in case (as
/// validation compares names).
fn find(model: &Model, name: &str) -> Result<usize, ApiError> {
    model
        .northbound
        .iter()
        .position(|n| n.name == name)
        .or_else(|| {
            model
                .northbound
                .iter()
                .position(|n| n.name.eq_ignore_ascii_case(name))
        })
        .ok_or_else(|| ApiError::not_found("name", name, "northbound connection"))
}

/// `GET /api/northbound`.
pub(crate) async fn list(
    State(state): State<AppState>,
) -> Result<Json<Vec<NorthboundView>>, ApiError> {
    let model = running(&state).await?;
    Ok(Json(model.northbound.iter().map(Into::into).collect()))
}

/// `GET /api/northbound/{name}`.
pub(crate) async fn get(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<NorthboundView>, ApiError> {
    let model = running(&state).await?;
    let index = find(&model, &name)?;
    Ok(Json((&model.northbound[index]).into()))
}

/// `PUT /api/northbound/{name}` (see the module doc).
pub(crate) async fn put(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<JsonValue>,
) -> Result<Response, ApiError> {
    let create_only = headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == b"*");
    let (mut connection, sent) = parse_body(&name, body)?;
    let (created, shown) = change(&state, move |model| {
        let exact = model.northbound.iter().position(|n| n.name == name);
        let taken = |status, existing: &str, what: &str| {
            ApiError::field(
                status,
                "name",
                &name,
                format!("a northbound connection named {existing:?} exists already; {what}"),
            )
        };
        if let Some(other) = model
            .northbound
            .iter()
            .find(|n| n.name != name && n.name.eq_ignore_ascii_case(&name))
        {
            return Err(taken(
                StatusCode::CONFLICT,
                &other.name,
                "names are unique ignoring case: replace it under its own name",
            ));
        }
        let index = match exact {
            Some(_) if create_only => {
                return Err(taken(
                    StatusCode::PRECONDITION_FAILED,
                    &name,
                    "edit it in the list, or choose another name",
                ));
            }
            Some(i) => {
                settle_password(Some(&model.northbound[i]), &mut connection, sent)?;
                model.northbound[i] = connection;
                i
            }
            None => {
                settle_password(None, &mut connection, sent)?;
                model.northbound.push(connection);
                model.northbound.len() - 1
            }
        };
        let shown = NorthboundView::from(&model.northbound[index]);
        Ok(((exact.is_none(), shown), Scope::Northbound(index)))
    })
    .await?;
    if created {
        let location = format!("/api/northbound/{}", shown.name);
        Ok((
            StatusCode::CREATED,
            [(header::LOCATION, location)],
            Json(shown),
        )
            .into_response())
    } else {
        Ok(Json(shown).into_response())
    }
}

/// `DELETE /api/northbound/{name}`: the connection's session ends (NDEATH).
pub(crate) async fn delete(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<JsonValue>, ApiError> {
    change(&state, move |model| {
        let index = find(model, &name)?;
        let removed = model.northbound.remove(index);
        Ok((json!({ "deleted": removed.name }), Scope::Whole))
    })
    .await
    .map(Json)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(username: Option<&str>, password: Option<&str>) -> Northbound {
        Northbound {
            name: "plant".to_owned(),
            servers: vec!["mqtt://10.0.0.5".to_owned()],
            client_id: None,
            username: username.map(str::to_owned),
            password: password.map(str::to_owned),
            ca_pem: None,
            primary_host_id: None,
            enabled: true,
        }
    }

    #[test]
    fn a_left_out_password_is_kept_only_for_the_same_username() {
        let old = connection(Some("edge"), Some("secret"));
        let mut same = connection(Some("edge"), None);
        settle_password(Some(&old), &mut same, PasswordSent::LeftOut).unwrap();
        assert_eq!(same.password.as_deref(), Some("secret"));

        let mut other = connection(Some("edge2"), None);
        let error = settle_password(Some(&old), &mut other, PasswordSent::LeftOut).unwrap_err();
        assert_eq!(error.errors[0].field.as_deref(), Some("password"));
        assert!(
            error.errors[0].reason.contains(r#"from "edge" to "edge2""#),
            "{error:?}"
        );

        let mut anonymous = connection(None, None);
        settle_password(Some(&old), &mut anonymous, PasswordSent::LeftOut).unwrap();
        assert_eq!(anonymous.password, None);

        let mut cleared = connection(Some("edge"), None);
        settle_password(Some(&old), &mut cleared, PasswordSent::Null).unwrap();
        assert_eq!(cleared.password, None);

        // Nothing stored: nothing to keep, whatever the username.
        let mut new = connection(Some("edge2"), None);
        settle_password(
            Some(&connection(Some("edge"), None)),
            &mut new,
            PasswordSent::LeftOut,
        )
        .unwrap();
        settle_password(None, &mut new, PasswordSent::LeftOut).unwrap();
        assert_eq!(new.password, None);
    }

    #[test]
    fn a_body_names_its_connection_as_the_url_does_or_not_at_all() {
        let (parsed, sent) = parse_body(
            "plant",
            json!({"servers": ["mqtt://10.0.0.5"], "password_set": true, "password": null}),
        )
        .unwrap();
        assert_eq!((parsed.name.as_str(), sent), ("plant", PasswordSent::Null));

        let error = parse_body("plant", json!({"name": "other", "servers": []})).unwrap_err();
        let e = &error.errors[0];
        assert_eq!(
            (e.field.as_deref(), e.value.as_deref()),
            (Some("name"), Some("other"))
        );
        assert!(e.reason.contains(r#"must be "plant""#), "{}", e.reason);
    }
}
