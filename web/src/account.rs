//! The pages around accounts: login, logout, first-run setup, one's own password, and the
//! admins' user list. Server-rendered forms, no JavaScript.
//!
//! Every login, failed login, logout and change to a user is logged (target `audit`) with the
//! user name and client address.

use std::net::IpAddr;

use axum::extract::{Path, Query, State};
use axum::http::header::{RETRY_AFTER, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Form, Router};
use serde::Deserialize;

use crate::AppState;
use crate::auth::limiter::Key;
use crate::auth::{
    self, ClientIp, CurrentUser, FORM_COOKIE, SESSION_COOKIE, clear_cookie, cookie, local_path,
    same_secret, see_other, set_cookie,
};
use crate::users::{Role, SESSION_MAX_MS, User, UserError};

/// `GET/POST /login`, `GET/POST /setup`: before any session, so public.
pub(crate) fn public_routes() -> Router<AppState> {
    use axum::routing::get;
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/setup", get(setup_form).post(setup))
}

/// What every logged-in user may do with their own account.
pub(crate) fn own_routes() -> Router<AppState> {
    use axum::routing::{get, post};
    Router::new()
        .route("/logout", post(logout))
        .route("/account", get(account).post(change_password))
}

/// User management, for admins.
pub(crate) fn admin_routes() -> Router<AppState> {
    use axum::routing::{get, post};
    Router::new()
        .route("/users", get(users).post(add_user))
        .route("/users/{name}/role", post(set_role))
        .route("/users/{name}/password", post(reset_password))
        .route("/users/{name}/delete", post(remove_user))
}

#[derive(askama::Template)]
#[template(path = "message.html")]
struct MessagePage<'a> {
    user: Option<&'a CurrentUser>,
    title: String,
    message: &'a str,
}

/// A page with one message (403, 404, 429, 500 …) and the status.
pub(crate) fn message_page(
    status: StatusCode,
    user: Option<&CurrentUser>,
    message: &str,
) -> Response {
    let page = MessagePage {
        user,
        title: format!(
            "{} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        ),
        message,
    };
    (status, html(&page)).into_response()
}

fn html(page: &impl askama::Template) -> Response {
    match page.render() {
        Ok(body) => axum::response::Html(body).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

/// A form's error: the field at fault (empty if none, its input is marked) and the message,
/// which names the field itself.
#[derive(Debug, Default)]
struct FormError {
    field: String,
    text: String,
}

impl FormError {
    fn new(field: &str, text: impl Into<String>) -> FormError {
        FormError {
            field: field.to_owned(),
            text: text.into(),
        }
    }

    /// A store error as it reads: `name = "x y": must be …`.
    fn from_user_error(e: &UserError) -> FormError {
        FormError::new(e.field().unwrap_or(""), e.to_string())
    }
}

/// `self.invalid("field")` in a template marks the input the error is about.
macro_rules! invalid_field {
    ($($page:ident),*) => {$(
        impl $page<'_> {
            fn invalid(&self, field: &str) -> bool {
                self.error.as_ref().is_some_and(|e| e.field == field)
            }
        }
    )*};
}
invalid_field!(SetupPage, AccountPage, UsersPage);

fn status_of(e: &UserError) -> StatusCode {
    match e {
        UserError::NotFound(_) => StatusCode::NOT_FOUND,
        UserError::Exists(_) | UserError::LastAdmin(_) | UserError::NotFirst => {
            StatusCode::CONFLICT
        }
        e if e.is_user_fault() => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The double-submit token of the login and setup forms: the browser's if it has a
/// well-formed one (several open tabs keep working), else a new one.
fn form_token(headers: &HeaderMap) -> Result<String, UserError> {
    match cookie(headers, FORM_COOKIE) {
        Some(t) if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) => Ok(t.to_owned()),
        _ => crate::users::random_token(),
    }
}

fn with_form_cookie(mut response: Response, token: &str) -> Response {
    response
        .headers_mut()
        .append(SET_COOKIE, set_cookie(FORM_COOKIE, token, 24 * 3600));
    response
}

/// True if the form carries the token of its own cookie: it was posted by our page.
fn form_posted_by_us(headers: &HeaderMap, sent: &str) -> bool {
    cookie(headers, FORM_COOKIE).is_some_and(|c| !c.is_empty() && same_secret(sent.as_bytes(), c))
}

fn expired_form(path: &str) -> Response {
    message_page(
        StatusCode::FORBIDDEN,
        None,
        &format!(
            "This form has expired or was sent from another page. Open {path} again and retry \
             (cookies must be enabled)."
        ),
    )
}

/// Starts a session and answers with its cookie and a redirect to `next`.
async fn logged_in(state: &AppState, user: &str, next: &str) -> Response {
    let now = state.auth.clock.now_ms();
    let name = user.to_owned();
    match state
        .auth
        .store(move |users| users.start_session(&name, now))
        .await
    {
        Ok(session) => {
            let mut response = see_other(local_path(next));
            let headers = response.headers_mut();
            headers.append(
                SET_COOKIE,
                set_cookie(SESSION_COOKIE, &session.token, SESSION_MAX_MS / 1000),
            );
            headers.append(SET_COOKIE, clear_cookie(FORM_COOKIE));
            response
        }
        Err(e) => auth::server_error(false, &e),
    }
}

fn too_many(wait_ms: u64, ip: IpAddr, user: &str) -> Response {
    let seconds = wait_ms.div_ceil(1000);
    tracing::warn!(target: "audit", %user, %ip, "login refused: too many failures, locked for {seconds} s");
    let mut response = message_page(
        StatusCode::TOO_MANY_REQUESTS,
        None,
        &format!(
            "Too many failed attempts. Try again in {} minute(s).",
            seconds.div_ceil(60)
        ),
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    response
}

// ---- login, logout --------------------------------------------------------------------------

#[derive(askama::Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    user: Option<&'a CurrentUser>,
    csrf: &'a str,
    username: &'a str,
    next: &'a str,
    error: Option<FormError>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct NextQuery {
    next: String,
}

async fn login_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> Response {
    match state.auth.store(|users| users.has_users()).await {
        Ok(false) => return see_other("/setup"),
        Ok(true) => {}
        Err(e) => return auth::server_error(false, &e),
    }
    let token = match form_token(&headers) {
        Ok(token) => token,
        Err(e) => return auth::server_error(false, &e),
    };
    let page = LoginPage {
        user: None,
        csrf: &token,
        username: "",
        next: local_path(&query.next),
        error: None,
    };
    with_form_cookie(html(&page), &token)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct LoginForm {
    username: String,
    password: String,
    csrf: String,
    next: String,
}

async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !form_posted_by_us(&headers, &form.csrf) {
        tracing::warn!(target: "audit", user = %form.username, %ip, "login refused: form without its CSRF cookie");
        return expired_form("/login");
    }
    let auth = &state.auth;
    let keys = [
        Key::Address(ip),
        Key::User(form.username.to_ascii_lowercase()),
    ];
    if let Some(wait) = auth.limiter.locked(&keys, auth.clock.now_ms()) {
        return too_many(wait, ip, &form.username);
    }
    let (name, password) = (form.username.clone(), form.password.clone());
    match auth
        .hashing(move |users| users.check_login(&name, &password))
        .await
    {
        Ok(Some(user)) => {
            auth.limiter.succeeded(&keys[1]);
            tracing::info!(target: "audit", user = %user.name, role = %user.role, %ip, "login");
            logged_in(&state, &user.name, &form.next).await
        }
        Ok(None) => {
            auth.limiter.failed(&keys, auth.clock.now_ms());
            tracing::warn!(target: "audit", user = %form.username, %ip, "login failed: wrong user name or password");
            let page = LoginPage {
                user: None,
                csrf: &form.csrf,
                username: &form.username,
                next: local_path(&form.next),
                error: Some(FormError::new("", "Wrong user name or password.")),
            };
            (StatusCode::UNAUTHORIZED, html(&page)).into_response()
        }
        Err(e) => auth::server_error(false, &e),
    }
}

async fn logout(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    user: CurrentUser,
    headers: HeaderMap,
) -> Response {
    if let Some(token) = cookie(&headers, SESSION_COOKIE).map(str::to_owned)
        && let Err(e) = state
            .auth
            .store(move |users| users.end_session(&token))
            .await
    {
        return auth::server_error(false, &e);
    }
    tracing::info!(target: "audit", user = %user.name, %ip, "logout");
    let mut response = see_other("/login");
    response
        .headers_mut()
        .append(SET_COOKIE, clear_cookie(SESSION_COOKIE));
    response
}

// ---- first-run setup ------------------------------------------------------------------------

#[derive(askama::Template)]
#[template(path = "setup.html")]
struct SetupPage<'a> {
    user: Option<&'a CurrentUser>,
    csrf: &'a str,
    token: &'a str,
    username: &'a str,
    error: Option<FormError>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SetupQuery {
    token: String,
}

/// The setup page exists only while there is no user and the server holds a setup token.
async fn setup_gone(state: &AppState) -> Option<Response> {
    match state.auth.store(|users| users.has_users()).await {
        Err(e) => Some(auth::server_error(false, &e)),
        Ok(true) => Some(message_page(
            StatusCode::NOT_FOUND,
            None,
            "Setup is done: the admin account exists. Log in at /login.",
        )),
        Ok(false) if state.auth.setup_token().is_none() => Some(message_page(
            StatusCode::NOT_FOUND,
            None,
            "There is no user and no setup token: create the admin with \
             `sparkedge user add NAME --role admin`, or restart sparkedge for a new setup link.",
        )),
        Ok(false) => None,
    }
}

async fn setup_form(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SetupQuery>,
) -> Response {
    if let Some(gone) = setup_gone(&state).await {
        return gone;
    }
    let csrf = match form_token(&headers) {
        Ok(token) => token,
        Err(e) => return auth::server_error(false, &e),
    };
    let page = SetupPage {
        user: None,
        csrf: &csrf,
        token: &query.token,
        username: "admin",
        error: None,
    };
    with_form_cookie(html(&page), &csrf)
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SetupForm {
    token: String,
    username: String,
    password: String,
    password2: String,
    csrf: String,
}

async fn setup(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Form(form): Form<SetupForm>,
) -> Response {
    if let Some(gone) = setup_gone(&state).await {
        return gone;
    }
    if !form_posted_by_us(&headers, &form.csrf) {
        return expired_form("/setup");
    }
    let auth = &state.auth;
    let keys = [Key::Address(ip)];
    if let Some(wait) = auth.limiter.locked(&keys, auth.clock.now_ms()) {
        return too_many(wait, ip, "(setup)");
    }
    let refuse = |status: StatusCode, error: FormError| {
        let page = SetupPage {
            user: None,
            csrf: &form.csrf,
            token: &form.token,
            username: &form.username,
            error: Some(error),
        };
        (status, html(&page)).into_response()
    };
    let token_ok = auth
        .setup_token()
        .is_some_and(|t| same_secret(form.token.as_bytes(), &t));
    if !token_ok {
        auth.limiter.failed(&keys, auth.clock.now_ms());
        tracing::warn!(target: "audit", %ip, "setup refused: wrong setup token");
        return refuse(
            StatusCode::FORBIDDEN,
            FormError::new(
                "token",
                "token: wrong setup token; copy the whole /setup?token=… address from the service log.",
            ),
        );
    }
    if form.password != form.password2 {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            FormError::new("password2", "password2: the two passwords differ."),
        );
    }
    let now = auth.clock.now_ms();
    let (name, password) = (form.username.clone(), form.password.clone());
    match auth
        .hashing(move |users| users.add_first_admin(&name, &password, now))
        .await
    {
        Ok(user) => {
            auth.take_setup_token();
            tracing::info!(target: "audit", user = %user.name, %ip, "setup: created the first admin");
            logged_in(&state, &user.name, "/").await
        }
        Err(e) => refuse(status_of(&e), FormError::from_user_error(&e)),
    }
}

// ---- one's own account ----------------------------------------------------------------------

#[derive(askama::Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    user: Option<&'a CurrentUser>,
    message: &'a str,
    error: Option<FormError>,
}

async fn account(user: CurrentUser) -> Response {
    html(&AccountPage {
        user: Some(&user),
        message: "",
        error: None,
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PasswordForm {
    current: String,
    password: String,
    password2: String,
}

async fn change_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    user: CurrentUser,
    Form(form): Form<PasswordForm>,
) -> Response {
    let refuse = |status: StatusCode, error: FormError| {
        let page = AccountPage {
            user: Some(&user),
            message: "",
            error: Some(error),
        };
        (status, html(&page)).into_response()
    };
    if form.password != form.password2 {
        return refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            FormError::new("password2", "password2: the two new passwords differ."),
        );
    }
    let auth = &state.auth;
    // A stolen session must not be a way to guess the password at leisure.
    let key = Key::User(user.name.to_ascii_lowercase());
    if let Some(wait) = auth
        .limiter
        .locked(std::slice::from_ref(&key), auth.clock.now_ms())
    {
        return too_many(wait, ip, &user.name);
    }
    let name = user.name.clone();
    let result = auth
        .hashing(
            move |users| match users.check_login(&name, &form.current)? {
                Some(_) => users.set_password(&name, &form.password).map(|()| true),
                None => Ok(false),
            },
        )
        .await;
    match result {
        Ok(true) => {
            tracing::info!(target: "audit", user = %user.name, %ip, "changed own password");
            // Setting it ended every session, this one too: start a fresh one.
            logged_in(&state, &user.name, "/account").await
        }
        Ok(false) => {
            auth.limiter
                .failed(std::slice::from_ref(&key), auth.clock.now_ms());
            tracing::warn!(target: "audit", user = %user.name, %ip, "password change refused: wrong current password");
            refuse(
                StatusCode::FORBIDDEN,
                FormError::new("current", "current: the current password is wrong."),
            )
        }
        Err(e) => refuse(status_of(&e), FormError::from_user_error(&e)),
    }
}

// ---- users (admins) -------------------------------------------------------------------------

#[derive(askama::Template)]
#[template(path = "users.html")]
struct UsersPage<'a> {
    user: Option<&'a CurrentUser>,
    users: Vec<User>,
    roles: [Role; 3],
    message: String,
    error: Option<FormError>,
}

/// The user list, with the outcome of the action just taken.
async fn users_page(
    state: &AppState,
    user: &CurrentUser,
    outcome: Result<String, UserError>,
) -> Response {
    let users = match state.auth.store(|users| users.list()).await {
        Ok(users) => users,
        Err(e) => return auth::server_error(false, &e),
    };
    let (status, message, error) = match outcome {
        Ok(message) => (StatusCode::OK, message, None),
        Err(e) => (
            status_of(&e),
            String::new(),
            Some(FormError::from_user_error(&e)),
        ),
    };
    let page = UsersPage {
        user: Some(user),
        users,
        roles: Role::ALL,
        message,
        error,
    };
    (status, html(&page)).into_response()
}

impl UsersPage<'_> {
    fn csrf(&self) -> &str {
        self.user.map_or("", |u| u.csrf.as_str())
    }
}

async fn users(State(state): State<AppState>, user: CurrentUser) -> Response {
    users_page(&state, &user, Ok(String::new())).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AddUserForm {
    username: String,
    role: String,
    password: String,
}

async fn add_user(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    admin: CurrentUser,
    Form(form): Form<AddUserForm>,
) -> Response {
    let now = state.auth.clock.now_ms();
    let outcome = match form.role.parse::<Role>() {
        Err(e) => Err(e),
        Ok(role) => {
            let (name, password) = (form.username.clone(), form.password);
            state
                .auth
                .hashing(move |users| users.add(&name, role, &password, now))
                .await
        }
    };
    let outcome = outcome.map(|added| {
        tracing::info!(target: "audit", admin = %admin.name, %ip, user = %added.name, role = %added.role, "user added");
        format!("Added {} ({}).", added.name, added.role)
    });
    users_page(&state, &admin, outcome).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct RoleForm {
    role: String,
}

async fn set_role(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    admin: CurrentUser,
    Path(name): Path<String>,
    Form(form): Form<RoleForm>,
) -> Response {
    let outcome = match form.role.parse::<Role>() {
        Err(e) => Err(e),
        Ok(role) => {
            let target = name.clone();
            state
                .auth
                .store(move |users| users.set_role(&target, role))
                .await
                .map(|()| {
                    tracing::info!(target: "audit", admin = %admin.name, %ip, user = %name, %role, "role changed");
                    format!("{name} is now {role}.")
                })
        }
    };
    users_page(&state, &admin, outcome).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ResetForm {
    password: String,
}

async fn reset_password(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    admin: CurrentUser,
    Path(name): Path<String>,
    Form(form): Form<ResetForm>,
) -> Response {
    let target = name.clone();
    let outcome = state
        .auth
        .hashing(move |users| users.set_password(&target, &form.password))
        .await
        .map(|()| {
            tracing::info!(target: "audit", admin = %admin.name, %ip, user = %name, "password reset");
            format!("New password set for {name}; their sessions were ended.")
        });
    users_page(&state, &admin, outcome).await
}

async fn remove_user(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    admin: CurrentUser,
    Path(name): Path<String>,
) -> Response {
    let target = name.clone();
    let outcome = state
        .auth
        .store(move |users| users.remove(&target))
        .await
        .map(|()| {
            tracing::info!(target: "audit", admin = %admin.name, %ip, user = %name, "user removed");
            format!("Removed {name}.")
        });
    if outcome.is_ok() && name == admin.name {
        // Their own account: the session went with it.
        return see_other("/login");
    }
    users_page(&state, &admin, outcome).await
}
