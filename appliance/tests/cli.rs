//! `sparkedge import` / `export` and `sparkedge user` as a user runs them.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn sparkedge(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sparkedge"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run sparkedge")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const GOOD: &str = r#"
[namespace]
enterprise = "acme"
site = "plant-b"

[sparkplug]
edge_node_id = "edge-7"

[[area]]
name = "utilities"
[[area.line]]
name = "boiler"
cells = ["burner"]

[[device]]
name = "sim"
driver = "simulator"
period_ms = 500

[[tag]]
device = "sim"
location = "utilities/boiler/burner"
name = "flame"
datatype = "bool"
address = "toggle"
"#;

#[test]
fn import_then_export_round_trips_and_a_bad_import_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");

    let out = sparkedge(&data, &["export"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("holds no model yet"),
        "{}",
        text(&out.stderr)
    );

    let good = dir.path().join("good.toml");
    std::fs::write(&good, GOOD).expect("write good.toml");
    let out = sparkedge(&data, &["import", good.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("imported 1 devices and 1 tags"));

    let before = sparkedge(&data, &["export"]);
    assert!(before.status.success());
    let exported = text(&before.stdout);
    assert!(exported.contains("site = \"plant-b\""), "{exported}");
    assert!(exported.contains("name = \"flame\""), "{exported}");

    // Two independent mistakes: both are reported, by field, and nothing is applied.
    let bad = dir.path().join("bad.toml");
    let bad_text = GOOD
        .replace("datatype = \"bool\"", "datatype = \"boolean\"")
        .replace("device = \"sim\"", "device = \"nope\"");
    std::fs::write(&bad, bad_text).expect("write bad.toml");
    let out = sparkedge(&data, &["import", bad.to_str().expect("utf-8 path")]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("nothing changed"), "{err}");
    assert!(err.contains("tag[0]"), "{err}");
    let after = sparkedge(&data, &["export"]);
    assert_eq!(
        text(&after.stdout),
        exported,
        "a failed import must not change the store"
    );

    // Export to a file, and that file imports again to the same model.
    let file = dir.path().join("export.toml");
    let out = sparkedge(&data, &["export", file.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = sparkedge(&data, &["import", file.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&sparkedge(&data, &["export"]).stdout), exported);
}

/// `sparkedge ARGS --data-dir DATA --password-stdin` with `password` and a newline as input.
fn with_password(data_dir: &Path, args: &[&str], password: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sparkedge"))
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--password-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sparkedge");
    let mut stdin = child.stdin.take().expect("stdin");
    // A command that refuses its arguments (bad role, bad name) exits without reading
    // standard input: the write then fails with a broken pipe, which is its answer, not an
    // error of the test.
    if let Err(e) = writeln!(stdin, "{password}") {
        assert_eq!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe,
            "write the password: {e}"
        );
    }
    drop(stdin);
    child.wait_with_output().expect("wait for sparkedge")
}

#[test]
fn users_are_added_listed_and_kept_apart_from_the_model() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");

    let out = sparkedge(&data, &["user", "list"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("no users yet"),
        "{}",
        text(&out.stdout)
    );

    let out = with_password(
        &data,
        &["user", "add", "root", "--role", "admin"],
        "correct horse",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("added root (admin)"),
        "{}",
        text(&out.stdout)
    );
    let out = with_password(
        &data,
        &["user", "add", "vera", "--role", "viewer"],
        "vera's password",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = sparkedge(&data, &["user", "list"]);
    let listed = text(&out.stdout);
    let rows: Vec<Vec<&str>> = listed
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows, [["root", "admin"], ["vera", "viewer"]], "{listed}");

    // The users have a file of their own, readable by the service user only.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("users.db"))
        .expect("users.db")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // An API token is printed alone on standard output, for `TOKEN=$(sparkedge user token …)`.
    let out = sparkedge(&data, &["user", "token", "vera"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let token = text(&out.stdout);
    assert_eq!(token.trim().len(), 64, "{token}");
    assert!(
        token.trim().bytes().all(|b| b.is_ascii_hexdigit()),
        "{token}"
    );
    let out = sparkedge(&data, &["user", "token", "vera", "--revoke"]);
    assert!(
        text(&out.stdout).contains("revoked 1 API token"),
        "{}",
        text(&out.stdout)
    );
    let out = sparkedge(&data, &["user", "token", "nobody"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no user \"nobody\""),
        "{}",
        text(&out.stderr)
    );

    let out = sparkedge(&data, &["user", "remove", "root"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("last admin"),
        "{}",
        text(&out.stderr)
    );
    let out = with_password(&data, &["user", "passwd", "vera"], "a new password");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = sparkedge(&data, &["user", "remove", "vera"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&sparkedge(&data, &["user", "list"]).stdout)
            .lines()
            .count(),
        1
    );
}

#[test]
fn a_bad_role_name_or_password_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let out = with_password(
        &data,
        &["user", "add", "root", "--role", "boss"],
        "correct horse",
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("\"boss\" is not a role"), "{err}");
    assert!(
        err.contains("viewer") && err.contains("operator") && err.contains("admin"),
        "{err}"
    );

    let out = with_password(
        &data,
        &["user", "add", "root admin", "--role", "admin"],
        "correct horse",
    );
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("name = \"root admin\"") && err.contains("1 to 64"),
        "{err}"
    );

    let out = with_password(&data, &["user", "add", "root", "--role", "admin"], "short");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("password") && err.contains("8 to 128"),
        "{err}"
    );
    assert!(
        !err.contains("short"),
        "the password must not be shown: {err}"
    );

    // Without --password-stdin and without a terminal, it says what to do.
    let out = Command::new(env!("CARGO_BIN_EXE_sparkedge"))
        .args(["user", "add", "root", "--role", "admin", "--data-dir"])
        .arg(&data)
        .stdin(Stdio::null())
        .output()
        .expect("run sparkedge");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("--password-stdin"),
        "{}",
        text(&out.stderr)
    );
    let out = sparkedge(&data, &["user", "list"]);
    assert!(text(&out.stdout).contains("no users yet"));
}

/// Root running a command on the service's data directory (owned by the user `sparkedge`)
/// would leave root-owned SQLite files there that the service cannot write: refused, naming
/// the way to do it, and nothing is created.
#[test]
fn root_is_refused_in_a_data_directory_another_user_owns() {
    if !rustix::process::getuid().is_root() {
        eprintln!("skipped: only root can be refused (CI runs as root)");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    std::fs::create_dir(&data).expect("create the data directory");
    // 65534: `nobody`, a user that is not root on every Debian.
    std::os::unix::fs::chown(&data, Some(65534), Some(65534)).expect("chown");

    let model = dir.path().join("good.toml");
    std::fs::write(&model, GOOD).expect("write the model");
    let model = model.to_str().expect("UTF-8 path");
    for args in [&["mqtt-user", "list"][..], &["import", model], &["export"]] {
        let out = sparkedge(&data, args);
        assert!(!out.status.success(), "{args:?} succeeded as root");
        let err = text(&out.stderr);
        assert!(
            err.contains("belongs to the user with id 65534") && err.contains("sudo -u sparkedge"),
            "{args:?}: {err}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(&data).expect("read dir").collect();
    assert!(left.is_empty(), "files were made: {left:?}");

    // Another user (not root) who may not write there is refused the same way, instead of
    // failing somewhere inside SQLite.
    std::os::unix::fs::chown(&data, Some(0), Some(0)).expect("chown");
    std::fs::set_permissions(&data, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let out = {
        use std::os::unix::process::CommandExt;
        Command::new(env!("CARGO_BIN_EXE_sparkedge"))
            .args(["mqtt-user", "list", "--data-dir"])
            .arg(&data)
            .uid(65534)
            .gid(65534)
            .output()
            .expect("run sparkedge as nobody")
    };
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("belongs to the user with id 0, and this user may not write in it")
            && err.contains("sudo -u sparkedge"),
        "{err}"
    );
}
