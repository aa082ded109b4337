//! The first login of a fresh appliance, as its first user meets it: no default password,
//! the one-time link that `sparkedge demo` prints, and a session that outlives a restart.

use system_tests::{Appliance, form_encode, http, http_get, http_get_as, web_login};

#[test]
fn the_printed_setup_link_creates_the_admin_once_and_the_session_survives_a_restart() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut app = Appliance::start(data.path(), &[]);
    let lines = app.stdout_until("first login");
    let line = lines.last().expect("the first login line");
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no link in {line:?}"));
    let path = url
        .strip_prefix(&format!("http://127.0.0.1:{}", app.web_port))
        .unwrap_or_else(|| panic!("{url} is not on the web port"));
    assert!(path.starts_with("/setup?token="), "{path}");

    // No user yet: the API says how to get one, and nothing is served.
    let (status, body) = http_get(app.web_port, "/api/values");
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("sparkedge user add"), "{body}");

    let form = http(app.web_port, "GET", path, &[], "");
    assert_eq!(form.status, 200, "{}", form.body);
    let csrf = form.set_cookie("sparkedge_csrf").expect("form cookie");
    let token = form.input_value("token").expect("the token in the form");
    let cookie = format!("sparkedge_csrf={csrf}");
    let setup = |token: &str| {
        format!(
            "token={token}&username=root&password={0}&password2={0}&csrf={csrf}",
            form_encode("correct horse battery")
        )
    };
    let wrong = http(
        app.web_port,
        "POST",
        "/setup",
        &[("Cookie", &cookie)],
        &setup("nope"),
    );
    assert_eq!(wrong.status, 403, "{}", wrong.body);
    let created = http(
        app.web_port,
        "POST",
        "/setup",
        &[("Cookie", &cookie)],
        &setup(&token),
    );
    assert_eq!(created.status, 303, "{}", created.body);
    let session = created.set_cookie("sparkedge_session").expect("logged in");
    let root_cookie = format!("sparkedge_session={session}");
    let page = http(
        app.web_port,
        "GET",
        "/users",
        &[("Cookie", &root_cookie)],
        "",
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("root"), "{}", page.body);
    let again = http(
        app.web_port,
        "POST",
        "/setup",
        &[("Cookie", &cookie)],
        &setup(&token),
    );
    assert_eq!(again.status, 404, "setup works once: {}", again.body);

    // The CLI sees the admin the browser created.
    let listed = system_tests::sparkedge(data.path(), &["user", "list"]);
    assert!(
        listed.contains("root") && listed.contains("admin"),
        "{listed}"
    );

    // Sessions are on disk: the same login works after a restart, and no setup link is
    // printed once a user exists.
    let root = web_login(app.web_port, "root", "correct horse battery");
    let status = app.terminate();
    assert!(status.success(), "sparkedge exited with {status}");
    let mut app = Appliance::start(data.path(), &[]);
    let lines = app.stdout_until("MQTT");
    assert!(
        !lines.iter().any(|l| l.contains("first login")),
        "{lines:?}"
    );
    let (status, body) = http_get_as(app.web_port, "/api/values", &root);
    assert_eq!(status, 200, "{body}");
}
