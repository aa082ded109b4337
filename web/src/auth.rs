//! Who is asking, and may they: sessions from the cookie, roles, CSRF and `Origin` checks.
//!
//! Every route but the public ones (`/healthz`, `/login`, `/setup`, static assets) sits behind
//! [`require`], a router layer that needs a valid session with at least a given role. It puts
//! the [`CurrentUser`] into the request's extensions, so handlers only name it when they show
//! it. Refusals are JSON under `/api/` (401 not logged in, 403 wrong role or CSRF) and pages
//! elsewhere (a redirect to `/login?next=…`, a 403 page).
//!
//! CSRF: each session has a random token. An unsafe request (not GET/HEAD/OPTIONS) must carry
//! it, in the `X-CSRF-Token` header (scripts and the page's JavaScript, which reads it from
//! `<meta name="csrf-token">`) or in the form field `csrf` of a url-encoded form. The login
//! and setup forms, which come before any session, use a double-submit cookie instead
//! (`sparkedge_csrf`, compared with the form field), so a foreign page cannot log a browser
//! into an account of its choosing. On top of that, any unsafe request whose `Origin` is not
//! this server is refused ([`check_origin`]), and the cookies are `SameSite=Strict`.
//!
//! Scripts may instead send `Authorization: Bearer TOKEN` with an API token from
//! `sparkedge user token NAME`: it acts with that user's role and needs no CSRF token, since a
//! browser never attaches it on its own.
//!
//! The cookies are not `Secure`: the appliance serves plain HTTP on the plant network, and a
//! `Secure` cookie would never be sent back. Put it behind a TLS reverse proxy to protect the
//! cookie in transit.

pub(crate) mod limiter;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE, HOST, LOCATION, ORIGIN, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use subtle::ConstantTimeEq;
use tokio::sync::Semaphore;

use crate::AppState;
use crate::users::{Role, Session, UserError, UserStore};

pub const SESSION_COOKIE: &str = "sparkedge_session";
/// The double-submit cookie of the login and setup forms.
pub const FORM_COOKIE: &str = "sparkedge_csrf";
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The hidden field of every HTML form that changes something.
pub const CSRF_FIELD: &str = "csrf";
/// Forms are small; a larger url-encoded body is refused before it is buffered for the check.
const FORM_LIMIT: usize = 2 << 20;
/// argon2 needs 19 MiB per hash: at most this many at once, however many logins arrive.
const CONCURRENT_HASHES: usize = 2;

/// Where the time comes from: the system clock, or one a test sets.
#[derive(Clone)]
pub struct Clock(Arc<dyn Fn() -> u64 + Send + Sync>);

impl Clock {
    pub fn system() -> Clock {
        Clock(Arc::new(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        }))
    }

    /// A clock that reads `now_ms`, for tests that move time.
    pub fn manual(now_ms: Arc<AtomicU64>) -> Clock {
        Clock(Arc::new(move || now_ms.load(Ordering::Relaxed)))
    }

    pub fn now_ms(&self) -> u64 {
        (self.0)()
    }
}

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Clock")
    }
}

/// Everything logins need, shared by all requests: the user store, the one-time setup token,
/// the failed-login counts.
#[derive(Debug)]
pub struct Auth {
    users: Arc<UserStore>,
    /// Set at start while there is no user; taken by the setup that creates the first admin.
    setup_token: Mutex<Option<String>>,
    pub(crate) limiter: limiter::Limiter,
    hashing: Semaphore,
    pub(crate) clock: Clock,
    /// Given the MQTT users after every change made here, so the broker has them before
    /// the request returns (set by the appliance).
    mqtt_hook: std::sync::OnceLock<HookSlot>,
}

/// What the appliance does with the MQTT users after a change: hand them to the broker.
pub type MqttHook = Box<dyn Fn(Vec<crate::mqtt_users::MqttCredential>) + Send + Sync>;

struct HookSlot(MqttHook);

impl fmt::Debug for HookSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MqttHook")
    }
}

impl Auth {
    /// Wraps `users`; if it holds no user yet, makes the one-time setup token that lets a
    /// browser create the first admin (print it with [`setup_token`](Auth::setup_token)).
    pub fn new(users: UserStore) -> Result<Auth, UserError> {
        let setup_token = if users.has_users()? {
            None
        } else {
            Some(crate::users::random_token()?)
        };
        Ok(Auth {
            users: Arc::new(users),
            setup_token: Mutex::new(setup_token),
            limiter: limiter::Limiter::default(),
            hashing: Semaphore::new(CONCURRENT_HASHES),
            clock: Clock::system(),
            mqtt_hook: std::sync::OnceLock::new(),
        })
    }

    pub fn with_clock(mut self, clock: Clock) -> Auth {
        self.clock = clock;
        self
    }

    /// The token `/setup?token=…` needs, while the first admin is still to be created.
    pub fn setup_token(&self) -> Option<String> {
        self.setup_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn take_setup_token(&self) {
        *self
            .setup_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
    }

    pub fn users(&self) -> &Arc<UserStore> {
        &self.users
    }

    /// Sets what happens with the MQTT users after the web UI or API changed one (see
    /// [`crate::mqtt_users`]); called from a blocking thread. Only the first call counts.
    pub fn on_mqtt_users_changed(&self, hook: MqttHook) {
        let _ = self.mqtt_hook.set(HookSlot(hook));
    }

    pub(crate) fn mqtt_hook(&self) -> Option<&MqttHook> {
        self.mqtt_hook.get().map(|slot| &slot.0)
    }

    /// Runs a user-store call off the async threads.
    pub(crate) async fn store<T: Send + 'static>(
        &self,
        call: impl FnOnce(&UserStore) -> Result<T, UserError> + Send + 'static,
    ) -> Result<T, UserError> {
        let users = self.users.clone();
        tokio::task::spawn_blocking(move || call(&users))
            .await
            .map_err(|e| UserError::Worker(e.to_string()))?
    }

    /// Like [`store`](Auth::store), for calls that hash a password: at most
    /// [`CONCURRENT_HASHES`] run at once, so a flood of logins cannot exhaust memory.
    pub(crate) async fn hashing<T: Send + 'static>(
        &self,
        call: impl FnOnce(&UserStore) -> Result<T, UserError> + Send + 'static,
    ) -> Result<T, UserError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|e| UserError::Worker(e.to_string()))?;
        self.store(call).await
    }

    /// Who an `Authorization: Bearer` header stands for: `None` without the header,
    /// `Some(None)` for a header that is not a valid API token.
    async fn bearer(&self, headers: &HeaderMap) -> Result<Option<Option<Session>>, UserError> {
        let Some(value) = headers.get(AUTHORIZATION) else {
            return Ok(None);
        };
        let Some(token) = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned())
        else {
            return Ok(Some(None));
        };
        self.store(move |users| users.api_token(&token))
            .await
            .map(Some)
    }

    /// Who the request's credentials stand for now: an API token before a cookie, as
    /// [`require`] takes them; `None` once they stand for nobody. For long responses (the
    /// live stream) that must end with their login.
    pub(crate) async fn current(&self, headers: &HeaderMap) -> Result<Option<Session>, UserError> {
        match self.bearer(headers).await? {
            Some(token) => Ok(token),
            None => self.session(headers).await,
        }
    }

    /// The session the request's cookie names, if it is valid now.
    pub(crate) async fn session(&self, headers: &HeaderMap) -> Result<Option<Session>, UserError> {
        let Some(token) = cookie(headers, SESSION_COOKIE).map(str::to_owned) else {
            return Ok(None);
        };
        let now = self.clock.now_ms();
        self.store(move |users| users.session(&token, now)).await
    }
}

/// The logged-in user of this request; put there by [`require`].
#[derive(Clone, Debug)]
pub struct CurrentUser {
    pub name: String,
    pub role: Role,
    /// This session's CSRF token, for the forms and the `csrf-token` meta tag of a page.
    pub csrf: String,
}

impl CurrentUser {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

impl<S: Send + Sync> FromRequestParts<S> for CurrentUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<CurrentUser>()
            .cloned()
            .ok_or_else(|| {
                // A handler that shows the user is on a route without `require`: a wiring bug.
                refuse(
                    is_api(parts.uri.path()),
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "this route has no login check".to_owned(),
                )
            })
    }
}

/// The client's address (the TCP peer; no proxy headers are trusted), unspecified when the
/// server runs without connection info (router tests).
#[derive(Clone, Copy, Debug)]
pub struct ClientIp(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip()),
        ))
    }
}

/// What [`require`] is given: the app and the least role its routes need.
#[derive(Clone, Debug)]
pub(crate) struct Guard {
    pub state: AppState,
    pub role: Role,
}

/// The login check of a group of routes: a valid session, at least `guard.role`, and for an
/// unsafe request the session's CSRF token.
pub(crate) async fn require(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let api = is_api(request.uri().path());
    let auth = &guard.state.auth;
    // A script's API token: the role check, but no CSRF check (no browser sends it unasked).
    match auth.bearer(request.headers()).await {
        Err(e) => return server_error(api, &e),
        Ok(Some(None)) => {
            return refuse(
                api,
                StatusCode::UNAUTHORIZED,
                "the Authorization header is not a valid API token (\"Bearer TOKEN\", from \
                 `sparkedge user token NAME`)"
                    .to_owned(),
            );
        }
        Ok(Some(Some(token))) => return admit(&guard, token, Csrf::NotNeeded, request, next).await,
        Ok(None) => {}
    }
    let session = match auth.session(request.headers()).await {
        Ok(session) => session,
        Err(e) => return server_error(api, &e),
    };
    let Some(session) = session else {
        let had_cookie = cookie(request.headers(), SESSION_COOKIE).is_some();
        let mut response = match auth.store(|users| users.has_users()).await {
            Err(e) => return server_error(api, &e),
            Ok(false) if api => refuse(true, StatusCode::UNAUTHORIZED, NO_USERS_REASON.to_owned()),
            Ok(false) => see_other("/setup"),
            Ok(true) if api => refuse(
                true,
                StatusCode::UNAUTHORIZED,
                "not logged in: send `Authorization: Bearer TOKEN` (a token from `sparkedge user \
                 token NAME`), or the sparkedge_session cookie of a login at /login"
                    .to_owned(),
            ),
            Ok(true) => {
                // Come back to the page after login; a form post is not repeated.
                let next = if request.method() == Method::GET {
                    request.uri().path_and_query().map_or("/", |p| p.as_str())
                } else {
                    "/"
                };
                see_other(&format!("/login?next={}", percent_encode(next)))
            }
        };
        if had_cookie {
            // Expired or logged out: let the browser forget it.
            response
                .headers_mut()
                .append(SET_COOKIE, clear_cookie(SESSION_COOKIE));
        }
        return response;
    };
    admit(&guard, session, Csrf::Check, request, next).await
}

/// Whether an unsafe request must carry the session's CSRF token: yes for a cookie, which
/// the browser sends whoever made the page; no for an API token, which it never sends unasked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Csrf {
    Check,
    NotNeeded,
}

/// The role check, the CSRF check, then the route with the [`CurrentUser`].
async fn admit(
    guard: &Guard,
    session: Session,
    csrf: Csrf,
    request: Request,
    next: Next,
) -> Response {
    let api = is_api(request.uri().path());
    if !session.role.allows(guard.role) {
        tracing::info!(
            user = %session.user,
            role = %session.role,
            needed = %guard.role,
            path = %request.uri().path(),
            "refused: role too low"
        );
        return forbidden_role(api, guard.role, &session);
    }
    let mut request = if is_unsafe(request.method()) && csrf == Csrf::Check {
        match check_csrf(request, &session.csrf).await {
            Ok(request) => request,
            Err(reason) => {
                tracing::warn!(user = %session.user, "refused: {reason}");
                return refuse(api, StatusCode::FORBIDDEN, reason);
            }
        }
    } else {
        request
    };
    request.extensions_mut().insert(CurrentUser {
        name: session.user,
        role: session.role,
        csrf: session.csrf,
    });
    next.run(request).await
}

pub(crate) const NO_USERS_REASON: &str = "no users yet: open the /setup?token=… address from \
     the service log to create the admin, or run `sparkedge user add NAME --role admin`";

/// Refuses an unsafe request that a page of another site sent (its `Origin` names another
/// host than this request's `Host`). Browsers send `Origin` on every cross-origin POST, so
/// this stops cross-site form posts even before the CSRF token is looked at.
pub(crate) async fn check_origin(request: Request, next: Next) -> Response {
    if is_unsafe(request.method())
        && let Some(origin) = request.headers().get(ORIGIN)
    {
        let host = request
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| request.uri().authority().map(|a| a.as_str()));
        let origin_host = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .map(|(_, host)| host);
        let same = matches!((origin_host, host), (Some(o), Some(h)) if o.eq_ignore_ascii_case(h));
        if !same {
            let origin = String::from_utf8_lossy(origin.as_bytes()).into_owned();
            tracing::warn!(%origin, path = %request.uri().path(), "refused: request from another site");
            return refuse(
                is_api(request.uri().path()),
                StatusCode::FORBIDDEN,
                format!(
                    "refused: this request came from another site (Origin {origin:?}, this server \
                     is {:?})",
                    host.unwrap_or("")
                ),
            );
        }
    }
    next.run(request).await
}

/// The request back if it carries `expected`, in the header or the url-encoded form.
async fn check_csrf(request: Request, expected: &str) -> Result<Request, String> {
    if let Some(sent) = request.headers().get(CSRF_HEADER) {
        return if same_secret(sent.as_bytes(), expected) {
            Ok(request)
        } else {
            Err("refused: wrong X-CSRF-Token (reload the page)".to_owned())
        };
    }
    if !is_form(request.headers()) {
        return Err(format!(
            "refused: a {} request needs the session's CSRF token in the X-CSRF-Token header",
            request.method()
        ));
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, FORM_LIMIT)
        .await
        .map_err(|e| format!("refused: cannot read the form: {e}"))?;
    if !form_field(&bytes, CSRF_FIELD)
        .await
        .is_some_and(|sent| same_secret(sent.as_bytes(), expected))
    {
        return Err(
            "refused: the form's CSRF token is missing or out of date (reload the page)".to_owned(),
        );
    }
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"))
}

/// One field of a url-encoded body.
async fn form_field(body: &axum::body::Bytes, name: &'static str) -> Option<String> {
    let request = Request::builder()
        .method(Method::POST)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body.clone()))
        .ok()?;
    let axum::Form(fields) =
        axum::Form::<std::collections::HashMap<String, String>>::from_request(request, &())
            .await
            .ok()?;
    fields.get(name).cloned()
}

/// Compares a secret without leaking, by time, how much of it matched.
pub(crate) fn same_secret(sent: &[u8], expected: &str) -> bool {
    bool::from(sent.ct_eq(expected.as_bytes()))
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

pub(crate) fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// The value of cookie `name`, if the request sends it.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, value)| value)
}

/// `Set-Cookie` for a cookie only this site's pages send back, hidden from scripts.
pub(crate) fn set_cookie(name: &str, value: &str, max_age_s: u64) -> HeaderValue {
    HeaderValue::try_from(format!(
        "{name}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_s}"
    ))
    .unwrap_or_else(|_| clear_cookie(name))
}

pub(crate) fn clear_cookie(name: &str) -> HeaderValue {
    HeaderValue::try_from(format!(
        "{name}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
    ))
    .unwrap_or(HeaderValue::from_static("sparkedge_invalid=; Max-Age=0"))
}

/// 303 to `location` (a local path we built).
pub(crate) fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::try_from(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// `next` if it is a path on this server, else `/`: a login link must not send the browser on
/// to another site (`//evil.example` and `/\evil.example` are other sites to a browser).
pub(crate) fn local_path(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control());
    if local { next } else { "/" }
}

/// Percent-encodes everything but unreserved characters and `/`, for a path in a query.
pub(crate) fn percent_encode(s: &str) -> String {
    use fmt::Write;
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A refusal: JSON `{"error":{"reason":…}}` for the API, a page otherwise.
pub(crate) fn refuse(api: bool, status: StatusCode, reason: String) -> Response {
    if api {
        (status, axum::Json(json!({"error": {"reason": reason}}))).into_response()
    } else {
        crate::account::message_page(status, None, &reason)
    }
}

fn forbidden_role(api: bool, needed: Role, session: &Session) -> Response {
    let reason = format!(
        "forbidden: this needs the role {needed} (or higher); {} has the role {}",
        session.user, session.role
    );
    if api {
        let body = json!({"error": {
            "reason": reason,
            "role_needed": needed.as_str(),
            "role": session.role.as_str(),
        }});
        (StatusCode::FORBIDDEN, axum::Json(body)).into_response()
    } else {
        let user = CurrentUser {
            name: session.user.clone(),
            role: session.role,
            csrf: session.csrf.clone(),
        };
        crate::account::message_page(StatusCode::FORBIDDEN, Some(&user), &reason)
    }
}

pub(crate) fn server_error(api: bool, e: &UserError) -> Response {
    tracing::error!("user database: {e}");
    refuse(api, StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_server() {
        assert_eq!(local_path("/users?x=1"), "/users?x=1");
        for foreign in [
            "//evil.example/",
            "/\\evil.example",
            "https://evil.example",
            "",
            "x",
        ] {
            assert_eq!(local_path(foreign), "/", "{foreign}");
        }
        assert_eq!(percent_encode("/a b?c=d&e"), "/a%20b%3Fc%3Dd%26e");
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.append(
            COOKIE,
            HeaderValue::from_static("a=1; sparkedge_session=abc"),
        );
        headers.append(COOKIE, HeaderValue::from_static("b=2"));
        assert_eq!(cookie(&headers, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&headers, "b"), Some("2"));
        assert_eq!(cookie(&headers, "sparkedge"), None);
        let set = set_cookie(SESSION_COOKIE, "abc", 60);
        let set = set.to_str().unwrap();
        for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(set.contains(part), "{set}");
        }
    }
}
