//! `sparkedge import` / `export` as a user runs them.

use std::path::Path;
use std::process::{Command, Output};

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
