//! Logins, roles, CSRF and first-run setup, through the router as a browser or script uses it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, Response, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value as JsonValue, json};
use tower::ServiceExt;
use web::auth::{Clock, CurrentUser, SESSION_COOKIE};
use web::{AppState, Auth, Role, Routes, UserStore};

const T0: u64 = 1_800_000_000_000;
const HOUR: u64 = 3600 * 1000;
const PASSWORD: &str = "correct horse battery";
/// A double-submit token the test's "browser" holds for the login and setup forms.
const FORM_TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct App {
    state: AppState,
    router: Router,
    now: Arc<AtomicU64>,
}

/// A logged-in browser: its session cookie and CSRF token.
struct Browser {
    cookie: String,
    csrf: String,
}

impl App {
    /// The app with `users` (each with [`PASSWORD`]) and two test routes: `/api/probe` (GET
    /// for viewers, POST for operators) and `/api/admin-probe` (GET for admins).
    fn new(users: &[(&str, Role)]) -> App {
        let store = UserStore::open_in_memory().unwrap();
        for (name, role) in users {
            store.add(name, *role, PASSWORD, T0).unwrap();
        }
        let now = Arc::new(AtomicU64::new(T0));
        let auth = Auth::new(store)
            .unwrap()
            .with_clock(Clock::manual(now.clone()));
        let model = uns_model::file::demo_model();
        let state = AppState::in_memory(model, auth);
        let mut routes = Routes::app();
        let who = |user: CurrentUser| async move { Json(json!({"user": user.name})) };
        routes.viewer = routes.viewer.route("/api/probe", get(who));
        routes.operator = routes.operator.route("/api/probe", post(who));
        routes.admin = routes.admin.route("/api/admin-probe", get(who));
        App {
            router: routes.build(state.clone()),
            state,
            now,
        }
    }

    async fn send(&self, request: Request<Body>) -> Response<Body> {
        self.send_from(7, request).await
    }

    /// `request` from the client 192.0.2.`host`.
    async fn send_from(&self, host: u8, mut request: Request<Body>) -> Response<Body> {
        let peer: SocketAddr = ([192, 0, 2, host], 50_000).into();
        request.extensions_mut().insert(ConnectInfo(peer));
        self.router.clone().oneshot(request).await.unwrap()
    }

    async fn get(&self, uri: &str, browser: Option<&Browser>) -> Response<Body> {
        let mut request = Request::get(uri);
        if let Some(b) = browser {
            request = request.header("cookie", &b.cookie);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    /// A url-encoded form post, with `cookie` if given.
    async fn post_form(&self, uri: &str, cookie: &str, fields: &[(&str, &str)]) -> Response<Body> {
        let request = Request::post(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", cookie)
            .body(Body::from(form(fields)))
            .unwrap();
        self.send(request).await
    }

    async fn try_login(&self, name: &str, password: &str) -> Response<Body> {
        self.try_login_from(7, name, password).await
    }

    async fn try_login_from(&self, host: u8, name: &str, password: &str) -> Response<Body> {
        let fields = [
            ("username", name),
            ("password", password),
            ("csrf", FORM_TOKEN),
            ("next", "/"),
        ];
        let request = Request::post("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .header("cookie", format!("sparkedge_csrf={FORM_TOKEN}"))
            .body(Body::from(form(&fields)))
            .unwrap();
        self.send_from(host, request).await
    }

    async fn login(&self, name: &str) -> Browser {
        let response = self.try_login(name, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        browser_of(&response, &self.state).await
    }
}

/// The session a response's `Set-Cookie` started, with its CSRF token read off a page.
async fn browser_of(response: &Response<Body>, state: &AppState) -> Browser {
    let cookie = session_cookie(response).expect("a session cookie");
    let token = cookie.split_once('=').unwrap().1.to_owned();
    let csrf = state
        .auth
        .users()
        .session(&token, T0)
        .unwrap()
        .expect("a stored session")
        .csrf;
    Browser { cookie, csrf }
}

fn session_cookie(response: &Response<Body>) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{SESSION_COOKIE}=")) && !v.contains("Max-Age=0"))
        .map(|v| v.split(';').next().unwrap().to_owned())
}

fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            let v: String = v
                .bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                        char::from(b).to_string()
                    }
                    b' ' => "+".to_owned(),
                    _ => format!("%{b:02X}"),
                })
                .collect();
            format!("{k}={v}")
        })
        .collect::<Vec<_>>()
        .join("&")
}

async fn text(response: Response<Body>) -> String {
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

async fn json_of(response: Response<Body>) -> JsonValue {
    serde_json::from_str(&text(response).await).unwrap()
}

fn location(response: &Response<Body>) -> &str {
    response.headers()["location"].to_str().unwrap()
}

#[tokio::test]
async fn without_a_session_the_api_says_401_in_json_and_pages_redirect_to_login() {
    let app = App::new(&[("root", Role::Admin)]);
    let response = app.get("/api/values", None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let body = json_of(response).await;
    assert!(
        body["error"]["reason"].as_str().unwrap().contains("/login"),
        "{body}"
    );

    let response = app.get("/users?x=1", None).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login?next=/users%3Fx%3D1");
    // Public routes stay public.
    assert_eq!(app.get("/healthz", None).await.status(), StatusCode::OK);
    let login = app.get("/login?next=/users", None).await;
    assert_eq!(login.status(), StatusCode::OK);
    let page = text(login).await;
    assert!(page.contains(r#"name="next" value="/users""#), "{page}");
    // A foreign `next` is not kept.
    let page = text(app.get("/login?next=//evil.example/", None).await).await;
    assert!(page.contains(r#"name="next" value="/""#), "{page}");
}

#[tokio::test]
async fn roles_are_enforced_and_a_refusal_names_both_roles() {
    let app = App::new(&[
        ("root", Role::Admin),
        ("vera", Role::Viewer),
        ("otto", Role::Operator),
    ]);
    let vera = app.login("vera").await;
    let response = app.get("/api/admin-probe", Some(&vera)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let body = json_of(response).await;
    assert_eq!(body["error"]["role_needed"], "admin");
    assert_eq!(body["error"]["role"], "viewer");
    let reason = body["error"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("admin") && reason.contains("vera"),
        "{reason}"
    );
    // The page says the same.
    let response = app.get("/users", Some(&vera)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let page = text(response).await;
    assert!(
        page.contains("role admin") && page.contains("role viewer"),
        "{page}"
    );

    // Same path, two groups: GET for viewers, POST for operators.
    let probe = |b: &Browser| {
        Request::post("/api/probe")
            .header("cookie", &b.cookie)
            .header("x-csrf-token", &b.csrf)
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        app.get("/api/probe", Some(&vera)).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.send(probe(&vera)).await.status(), StatusCode::FORBIDDEN);
    let otto = app.login("otto").await;
    let response = app.send(probe(&otto)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_of(response).await, json!({"user": "otto"}));
    let root = app.login("root").await;
    assert_eq!(app.send(probe(&root)).await.status(), StatusCode::OK);
    assert_eq!(
        app.get("/api/admin-probe", Some(&root)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_wrong_password_is_401_without_a_cookie_and_the_sixth_failure_429() {
    let app = App::new(&[("root", Role::Admin)]);
    let response = app.try_login("root", "wrong password").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(session_cookie(&response), None);
    assert!(text(response).await.contains("Wrong user name or password"));
    for _ in 0..4 {
        let status = app.try_login("root", "wrong password").await.status();
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // Five failures: the sixth attempt is refused before the password is checked, even with
    // the right one.
    let response = app.try_login("root", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "60");
    assert_eq!(session_cookie(&response), None);
    // Locked per name (from another client too) and per client (for other names too) …
    let status = app.try_login_from(8, "root", PASSWORD).await.status();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let status = app.try_login("nobody", PASSWORD).await.status();
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    // … but not for everyone: an unknown name elsewhere is an ordinary failure.
    let response = app.try_login_from(9, "nobody", PASSWORD).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(text(response).await.contains("Wrong user name or password"));
    // The lock ends.
    app.now.store(T0 + 61_000, Ordering::Relaxed);
    assert_eq!(
        app.try_login("root", PASSWORD).await.status(),
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn login_needs_the_forms_own_csrf_cookie() {
    let app = App::new(&[("root", Role::Admin)]);
    let fields = [
        ("username", "root"),
        ("password", PASSWORD),
        ("csrf", FORM_TOKEN),
    ];
    // A foreign page posting the login form has no sparkedge_csrf cookie to match.
    let response = app.post_form("/login", "", &fields).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(session_cookie(&response), None);
    let other = "sparkedge_csrf=ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";
    assert_eq!(
        app.post_form("/login", other, &fields).await.status(),
        StatusCode::FORBIDDEN
    );

    // The form page sets the cookie and carries the same token.
    let page = app.get("/login", None).await;
    let set = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let token = set
        .strip_prefix("sparkedge_csrf=")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(text(page).await.contains(&format!(r#"value="{token}""#)));
    let fields = [
        ("username", "root"),
        ("password", PASSWORD),
        ("csrf", &token),
    ];
    let response = app
        .post_form("/login", &format!("sparkedge_csrf={token}"), &fields)
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .find(|v| v.starts_with("sparkedge_session="))
        .unwrap();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(part), "{cookie}");
    }
}

#[tokio::test]
async fn first_run_setup_needs_the_token_creates_the_admin_once_and_logs_in() {
    let app = App::new(&[]);
    let token = app
        .state
        .auth
        .setup_token()
        .expect("a setup token with no users");
    // Nothing else works yet: pages lead to setup, the API says how to create the admin.
    let response = app.get("/", None).await;
    assert_eq!(location(&response), "/setup");
    let response = app.get("/api/values", None).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let reason = json_of(response).await["error"]["reason"].to_string();
    assert!(reason.contains("sparkedge user add"), "{reason}");
    assert_eq!(location(&app.get("/login", None).await), "/setup");
    let page = text(app.get(&format!("/setup?token={token}"), None).await).await;
    assert!(page.contains(&format!(r#"value="{token}""#)), "{page}");

    let cookie = format!("sparkedge_csrf={FORM_TOKEN}");
    let setup = |token: &str, name: &str, password2: &str| {
        [
            ("token", token.to_owned()),
            ("username", name.to_owned()),
            ("password", PASSWORD.to_owned()),
            ("password2", password2.to_owned()),
            ("csrf", FORM_TOKEN.to_owned()),
        ]
    };
    let post = |fields: [(&'static str, String); 5]| {
        let cookie = cookie.clone();
        let app = &app;
        async move {
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.post_form("/setup", &cookie, &fields).await
        }
    };
    let wrong = post(setup(&"0".repeat(64), "root", PASSWORD)).await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    assert_eq!(session_cookie(&wrong), None);
    assert!(text(wrong).await.contains("token: wrong setup token"));
    let mismatch = post(setup(&token, "root", "another password")).await;
    assert_eq!(mismatch.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        text(mismatch)
            .await
            .contains("password2: the two passwords differ")
    );
    let bad_name = post(setup(&token, "root admin", PASSWORD)).await;
    assert_eq!(bad_name.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = text(bad_name).await;
    assert!(
        page.contains("name = &#34;root admin&#34;") && page.contains("1 to 64"),
        "{page}"
    );
    assert!(!app.state.auth.users().has_users().unwrap());

    let created = post(setup(&token, "root", PASSWORD)).await;
    assert_eq!(created.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&created), "/");
    let root = browser_of(&created, &app.state).await;
    assert_eq!(
        app.get("/users", Some(&root)).await.status(),
        StatusCode::OK
    );
    assert_eq!(app.state.auth.setup_token(), None);

    // Once: the same token again, or a new visit, finds setup gone.
    let again = post(setup(&token, "eve", PASSWORD)).await;
    assert_eq!(again.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/setup", None).await.status(),
        StatusCode::NOT_FOUND
    );
    let names: Vec<String> = app
        .state
        .auth
        .users()
        .list()
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, ["root"]);
}

#[tokio::test]
async fn unsafe_requests_need_the_sessions_csrf_token_and_our_origin() {
    let app = App::new(&[("root", Role::Admin)]);
    let root = app.login("root").await;
    let probe = |csrf: Option<&str>, origin: Option<&str>| {
        let mut request = Request::post("/api/probe")
            .header("cookie", &root.cookie)
            .header("host", "box:8080");
        if let Some(csrf) = csrf {
            request = request.header("x-csrf-token", csrf);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.body(Body::empty()).unwrap()
    };
    let response = app.send(probe(None, None)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(
        json_of(response).await["error"]["reason"]
            .as_str()
            .unwrap()
            .contains("X-CSRF-Token")
    );
    assert_eq!(
        app.send(probe(Some("wrong"), None)).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.send(probe(Some(&root.csrf), None)).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.send(probe(Some(&root.csrf), Some("http://box:8080")))
            .await
            .status(),
        StatusCode::OK
    );
    for foreign in ["http://evil.example", "http://box:8081", "null"] {
        let response = app.send(probe(Some(&root.csrf), Some(foreign))).await;
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{foreign}");
    }

    // A form carries it in its hidden field; the handler still gets every field.
    for (csrf, status) in [
        ("", StatusCode::FORBIDDEN),
        (root.csrf.as_str(), StatusCode::OK),
    ] {
        let fields = [
            ("username", "anna"),
            ("role", "viewer"),
            ("password", "anna password"),
            ("csrf", csrf),
        ];
        let response = app.post_form("/users", &root.cookie, &fields).await;
        assert_eq!(response.status(), status, "csrf {csrf:?}");
    }
    let users = app.state.auth.users().list().unwrap();
    assert_eq!(users.len(), 2, "{users:?}");
}

#[tokio::test]
async fn logout_ends_the_session_on_the_server() {
    let app = App::new(&[("root", Role::Admin)]);
    let root = app.login("root").await;
    assert_eq!(
        app.get("/api/values", Some(&root)).await.status(),
        StatusCode::OK
    );
    // Without the CSRF token a foreign page cannot log us out.
    let response = app.post_form("/logout", &root.cookie, &[]).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let response = app
        .post_form("/logout", &root.cookie, &[("csrf", &root.csrf)])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/login");
    // The browser is told to forget it, and a copy kept anyway no longer works.
    let set = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        set.starts_with("sparkedge_session=;") && set.contains("Max-Age=0"),
        "{set}"
    );
    let response = app.get("/api/values", Some(&root)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sessions_expire_after_twelve_idle_hours() {
    let app = App::new(&[("root", Role::Admin)]);
    let root = app.login("root").await;
    app.now.store(T0 + 11 * HOUR, Ordering::Relaxed);
    assert_eq!(
        app.get("/api/values", Some(&root)).await.status(),
        StatusCode::OK
    );
    // Used at 11 h: idle from then on.
    app.now.store(T0 + 23 * HOUR, Ordering::Relaxed);
    assert_eq!(
        app.get("/api/values", Some(&root)).await.status(),
        StatusCode::OK
    );
    app.now.store(T0 + 35 * HOUR + 1, Ordering::Relaxed);
    let response = app.get("/", Some(&root)).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(location(&response).starts_with("/login"));
}

#[tokio::test]
async fn the_users_page_keeps_the_last_admin_and_names_bad_fields() {
    let app = App::new(&[("root", Role::Admin), ("vera", Role::Viewer)]);
    let root = app.login("root").await;
    let csrf = root.csrf.as_str();

    let response = app
        .post_form("/users/root/delete", &root.cookie, &[("csrf", csrf)])
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert!(text(response).await.contains("last admin"));
    let response = app
        .post_form(
            "/users/root/role",
            &root.cookie,
            &[("csrf", csrf), ("role", "viewer")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::CONFLICT);
    assert_eq!(
        app.get("/users", Some(&root)).await.status(),
        StatusCode::OK
    );

    let add = |name: &'static str, role: &'static str, password: &'static str| {
        [
            ("csrf", csrf),
            ("username", name),
            ("role", role),
            ("password", password),
        ]
    };
    let response = app
        .post_form(
            "/users",
            &root.cookie,
            &add("bad name", "viewer", "long enough"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = text(response).await;
    assert!(
        page.contains("name = &#34;bad name&#34;: must be 1 to 64"),
        "{page}"
    );
    let response = app
        .post_form("/users", &root.cookie, &add("anna", "viewer", "short"))
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let page = text(response).await;
    assert!(
        page.contains("password = &#34;(5 characters, not shown)&#34;: must be 8 to 128"),
        "{page}"
    );
    assert!(!page.contains("short"), "the password must not be shown");
    let response = app
        .post_form("/users", &root.cookie, &add("anna", "boss", "long enough"))
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        text(response)
            .await
            .contains("role = &#34;boss&#34;: must be one of")
    );

    // Promote vera, then root may step down; vera's open session has the new role at once.
    let vera = app.login("vera").await;
    let response = app
        .post_form(
            "/users/vera/role",
            &root.cookie,
            &[("csrf", csrf), ("role", "admin")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        app.get("/users", Some(&vera)).await.status(),
        StatusCode::OK
    );
    let response = app
        .post_form(
            "/users/root/role",
            &root.cookie,
            &[("csrf", csrf), ("role", "operator")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    // root's open session is an operator's now.
    assert_eq!(
        app.get("/users", Some(&root)).await.status(),
        StatusCode::FORBIDDEN
    );
    let response = app
        .post_form(
            "/users/root/delete",
            &vera.cookie,
            &[("csrf", vera.csrf.as_str())],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(text(response).await.contains("Removed root."));
    assert_eq!(
        app.get("/api/values", Some(&root)).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

/// Every operation `/api/openapi.json` documents is refused to the role below the one it
/// names (403) and allowed to that role: the document and the router agree.
#[tokio::test]
async fn every_documented_operation_needs_exactly_its_documented_role() {
    let app = App::new(&[
        ("vera", Role::Viewer),
        ("otto", Role::Operator),
        ("root", Role::Admin),
    ]);
    let browsers = [
        (Role::Viewer, app.login("vera").await),
        (Role::Operator, app.login("otto").await),
        (Role::Admin, app.login("root").await),
    ];
    let doc = json_of(app.get("/api/openapi.json", Some(&browsers[0].1)).await).await;
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let uri = path
            .replace("{name}", "demo-plc")
            .replace("{path}", "packaging/line3/filler/temperature")
            .replace("{topic}", "spBv1.0/plant-a/NBIRTH/sparkedge");
        for (method, op) in item.as_object().unwrap() {
            let needed: Role = op["x-required-role"].as_str().unwrap().parse().unwrap();
            for (role, browser) in &browsers {
                let request = Request::builder()
                    .method(method.to_uppercase().as_str())
                    .uri(&uri)
                    .header("cookie", &browser.cookie)
                    .header("x-csrf-token", &browser.csrf)
                    .body(Body::empty())
                    .unwrap();
                let status = app.send(request).await.status();
                let refused = [StatusCode::UNAUTHORIZED, StatusCode::FORBIDDEN].contains(&status);
                assert_eq!(
                    refused,
                    !role.allows(needed),
                    "{method} {uri} (documented for {needed}) as {role}: {status}"
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} operations documented");
}

#[tokio::test]
async fn scripts_use_api_tokens_with_their_users_role_and_no_csrf() {
    let app = App::new(&[("root", Role::Admin), ("scada", Role::Viewer)]);
    let users = app.state.auth.users();
    let token = users.create_api_token("scada", T0).unwrap();
    let bearer = |method: &str, uri: &str, token: &str| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let response = app.send(bearer("GET", "/api/probe", &token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_of(response).await, json!({"user": "scada"}));
    // The role still counts; no CSRF token is needed.
    let response = app.send(bearer("POST", "/api/probe", &token)).await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    users.set_role("scada", Role::Operator).unwrap();
    let response = app.send(bearer("POST", "/api/probe", &token)).await;
    assert_eq!(response.status(), StatusCode::OK);

    // A bad token is refused outright, even next to a good cookie.
    let root = app.login("root").await;
    let mut request = bearer("GET", "/api/probe", "not-a-token");
    request
        .headers_mut()
        .insert("cookie", root.cookie.parse().unwrap());
    let response = app.send(request).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let reason = json_of(response).await["error"]["reason"].to_string();
    assert!(reason.contains("sparkedge user token"), "{reason}");
    users.revoke_api_tokens("scada").unwrap();
    let response = app.send(bearer("GET", "/api/probe", &token)).await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

/// Serves `app`'s state on a free loopback port, as the appliance does, until the returned
/// sender is dropped.
async fn serve(app: &App) -> (SocketAddr, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(web::serve(listener, app.state.clone(), async {
        let _ = stopped.await;
    }));
    (address, stop)
}

const DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// `GET /api/live` over a socket with the header `credentials` (a `Cookie:` or
/// `Authorization:` line), read up to its first event.
async fn open_live(address: SocketAddr, credentials: &str) -> tokio::net::TcpStream {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "GET /api/live HTTP/1.1\r\nHost: 127.0.0.1\r\n{credentials}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    while !received.windows(5).any(|w| w == b"data:") {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(DEADLINE, stream.read(&mut chunk))
            .await
            .expect("no first event before the deadline")
            .unwrap();
        assert!(n > 0, "closed before the first event: {received:?}");
        received.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&received);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    stream
}

/// What the server sends until it closes the stream, which it must within [`DEADLINE`].
async fn rest_of(mut stream: tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut rest = Vec::new();
    tokio::time::timeout(DEADLINE, stream.read_to_end(&mut rest))
        .await
        .expect("the live stream was still open at the deadline")
        .unwrap();
    String::from_utf8_lossy(&rest).into_owned()
}

/// What the server has sent so far, without waiting for more.
async fn sent_so_far(stream: &mut tokio::net::TcpStream) -> String {
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = stream.try_read(&mut chunk) {
        if n == 0 {
            out.extend_from_slice(b"<closed>");
            break;
        }
        out.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn a_live_stream_ends_with_its_login() {
    let app = App::new(&[
        ("root", Role::Admin),
        ("otto", Role::Operator),
        ("vera", Role::Viewer),
        ("scada", Role::Viewer),
    ]);
    let (address, _stop) = serve(&app).await;
    let cookie = |b: &Browser| format!("Cookie: {}", b.cookie);

    // Logout.
    let root = app.login("root").await;
    let vera = app.login("vera").await;
    let mut vera_live = open_live(address, &cookie(&vera)).await;
    let live = open_live(address, &cookie(&root)).await;
    let response = app
        .post_form("/logout", &root.cookie, &[("csrf", &root.csrf)])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let rest = rest_of(live).await;
    assert!(rest.contains("event: session\ndata: ended"), "{rest}");
    // Another user's stream is not touched.
    let sent = sent_so_far(&mut vera_live).await;
    assert!(
        !sent.contains("event: session") && !sent.contains("<closed>"),
        "{sent}"
    );

    // A changed role: the page reloads with the controls of the new one.
    let otto = app.login("otto").await;
    let live = open_live(address, &cookie(&otto)).await;
    app.state
        .auth
        .users()
        .set_role("otto", Role::Viewer)
        .unwrap();
    assert!(rest_of(live).await.contains("event: session"));

    // A script's token, when its user is deleted.
    let token = app
        .state
        .auth
        .users()
        .create_api_token("scada", T0)
        .unwrap();
    let live = open_live(address, &format!("Authorization: Bearer {token}")).await;
    app.state.auth.users().remove("scada").unwrap();
    assert!(rest_of(live).await.contains("event: session"));

    // Expiry: nobody used vera's session for longer than it may idle.
    app.now.store(T0 + 13 * HOUR, Ordering::Relaxed);
    assert!(rest_of(vera_live).await.contains("event: session"));
}
