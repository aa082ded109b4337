//! The REST endpoints that reach the devices, against a running `sparkedge` and the
//! simulators over real sockets: connection tests with the real error text, test reads of
//! unsaved tags, the Modbus register preview under every byte order, browsing an OPC UA
//! server, and writing values (refused when the tag is not writable or the value does not
//! fit, confirmed by the PLC and read back otherwise). Probes are an admin's, writes an
//! operator's: each test logs both in through the login form.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value as JsonValue, json};
use std::path::Path;

use system_tests::{
    Appliance, DEADLINE, KillOnDrop, WebSession, add_web_user, free_port, import_model,
    sparkedge_binary, web_login,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_modbus::client::{Reader, Writer};

const PASSWORD: &str = "a long enough password";

/// The web UI as one logged-in user sees it.
struct Web {
    port: u16,
    /// `None`: not logged in.
    who: Option<WebSession>,
}

/// Adds the admin `ada` and the operator `otto` (before the appliance starts).
fn add_users(data_dir: &Path) {
    add_web_user(data_dir, "ada", "admin", PASSWORD);
    add_web_user(data_dir, "otto", "operator", PASSWORD);
}

/// `user` logged in on the web UI at `port`, once it answers.
async fn login(port: u16, user: &str) -> Web {
    web_up(port).await;
    let who = web_login(port, user, PASSWORD);
    Web {
        port,
        who: Some(who),
    }
}

/// One HTTP/1.0 request with an optional JSON body as `web`'s user: the status and the body
/// as JSON.
async fn http(web: &Web, method: &str, path: &str, body: Option<JsonValue>) -> (u16, JsonValue) {
    let port = web.port;
    let session = match &web.who {
        Some(s) => format!("Cookie: {}\r\nX-CSRF-Token: {}\r\n", s.cookie, s.csrf),
        None => String::new(),
    };
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to the web UI");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let content_type = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/json\r\n"
        };
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{session}{content_type}Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.expect("send");
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.expect("read");
        String::from_utf8(response).expect("UTF-8 response")
    };
    let response = tokio::time::timeout(DEADLINE, exchange)
        .await
        .unwrap_or_else(|_| panic!("{method} {path}: no response within {DEADLINE:?}"));
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let json = serde_json::from_str(body).unwrap_or_else(|_| JsonValue::String(body.to_owned()));
    (status, json)
}

async fn post(web: &Web, path: &str, body: JsonValue) -> (u16, JsonValue) {
    http(web, "POST", path, Some(body)).await
}

async fn get(web: &Web, path: &str) -> (u16, JsonValue) {
    http(web, "GET", path, None).await
}

/// Waits until `ready` holds, checking every 50 ms, failing after [`DEADLINE`].
async fn wait_for<F: Future<Output = bool>>(what: &str, mut ready: impl FnMut() -> F) {
    let deadline = Instant::now() + DEADLINE;
    while !ready().await {
        assert!(Instant::now() < deadline, "{what}: not within {DEADLINE:?}");
        tokio::time::sleep(Duration::from_millis(50)).await; // polling a condition
    }
}

async fn listening(port: u16) -> bool {
    tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_ok()
}

/// The web UI answers.
async fn web_up(port: u16) {
    wait_for("the web UI", || async move {
        let anyone = Web { port, who: None };
        listening(port).await && get(&anyone, "/healthz").await.0 == 200
    })
    .await;
}

/// The one error of an error response, as (field, value, reason).
fn only_error(body: &JsonValue) -> (String, String, String) {
    let errors = body["errors"].as_array().expect("an errors list");
    assert_eq!(errors.len(), 1, "{body}");
    let text = |k: &str| errors[0][k].as_str().unwrap_or_default().to_owned();
    (text("field"), text("value"), text("reason"))
}

fn sim(kind: &str, port: u16) -> KillOnDrop {
    KillOnDrop::spawn(
        Command::new(sparkedge_binary()).args([
            "sim",
            kind,
            "--listen",
            &format!("127.0.0.1:{port}"),
        ]),
        "a sparkedge simulator",
    )
}

fn modbus_model(port: u16) -> String {
    format!(
        r#"
[namespace]
enterprise = "acme"
site = "plant-d"
[[area]]
name = "assembly"
[[area.line]]
name = "line1"
[[device]]
name = "plc"
driver = "modbus-tcp"
host = "127.0.0.1"
port = {port}
period_ms = 200
timeout_ms = 500
[[device]]
name = "sim"
driver = "simulator"
[[tag]]
device = "plc"
location = "assembly/line1"
name = "seconds"
datatype = "uint16"
address = "hr:100"
[[tag]]
device = "plc"
location = "assembly/line1"
name = "setpoint"
datatype = "int16"
address = "hr:10"
writable = true
[[tag]]
device = "plc"
location = "assembly/line1"
name = "missing"
datatype = "int16"
address = "hr:250"
writable = true
[[tag]]
device = "sim"
location = "assembly/line1"
name = "wave"
datatype = "float64"
address = "sine"
"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn modbus_devices_are_tested_read_previewed_and_written() {
    let plc_port = free_port();
    let _plc = sim("modbus", plc_port);
    let data = tempfile::tempdir().expect("temp dir");
    import_model(data.path(), &modbus_model(plc_port));
    add_users(data.path());
    let app = Appliance::start(data.path(), &[]);
    wait_for("the Modbus simulator", || listening(plc_port)).await;
    let web = &login(app.web_port, "ada").await;
    let operator = &login(app.web_port, "otto").await;

    // -- test connection: an unsaved device, a closed port, a saved device --
    let unsaved = json!({"name": "new-plc", "driver": "modbus-tcp", "host": "127.0.0.1", "port": plc_port, "timeout_ms": 500});
    let (status, body) = post(web, "/api/devices/test", unsaved.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("unit 1 answered"),
        "{body}"
    );

    let closed = free_port();
    let refused =
        json!({"name": "new-plc", "driver": "modbus-tcp", "host": "127.0.0.1", "port": closed});
    let (status, body) = post(web, "/api/devices/test", refused).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], false, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains(&format!("cannot connect to 127.0.0.1:{closed}"))
            && error.contains("Connection refused"),
        "{body}"
    );

    let (status, body) = post(web, "/api/devices/plc/test", json!(null)).await;
    assert_eq!((status, &body["ok"]), (200, &json!(true)), "{body}");

    // Probes are an admin's; nobody else reaches the plant through them.
    let (status, body) = post(operator, "/api/devices/plc/test", json!(null)).await;
    assert_eq!(status, 403, "{body}");
    let anyone = &Web {
        port: web.port,
        who: None,
    };
    let (status, body) = post(anyone, "/api/devices/plc/test", json!(null)).await;
    assert_eq!(status, 401, "{body}");

    // A setting a save would refuse is refused before anything connects.
    let bad = json!({"name": "new-plc", "driver": "modbus-tcp", "host": "127.0.0.1", "port": plc_port, "timeout_ms": 0});
    let (status, body) = post(web, "/api/devices/test", bad).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(only_error(&body).0, "timeout_ms", "{body}");

    // -- test read of unsaved tags: values, and the device's refusal per tag --
    let tags = json!([
        {"location": "assembly/line1", "name": "label", "datatype": "string", "address": "hr:130", "length": 16},
        {"location": "assembly/line1", "name": "hole", "datatype": "uint16", "address": "hr:200"},
        {"location": "assembly/line1", "name": "unit-id", "datatype": "uint16", "address": "40140"},
    ]);
    let (status, body) = post(web, "/api/devices/plc/read", tags.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    let read = &body["tags"];
    assert_eq!(read[0]["tag"], "assembly/line1/label");
    assert_eq!(
        (&read[0]["value"], &read[0]["quality"]),
        (&json!("SPARKEDGE SIM"), &json!("good")),
        "{body}"
    );
    assert_eq!(read[1]["quality"], "bad", "{body}");
    assert!(
        read[1]["error"]
            .as_str()
            .unwrap()
            .contains("exception 2 \"Illegal data address\""),
        "{body}"
    );
    // The simulator's unit id register: 0 over Modbus TCP.
    assert_eq!(read[2]["value"], 0, "{body}");

    let (status, body) = post(
        web,
        "/api/devices/test-read",
        json!({"device": unsaved, "tags": tags[0]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["tags"][0]["value"], "SPARKEDGE SIM", "{body}");
    // A bad tag is named as it was sent.
    let (status, body) = post(
        web,
        "/api/devices/plc/read",
        json!([tags[0], {"location": "assembly/line1", "name": "x", "datatype": "flaot32", "address": "hr:0"}]),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(only_error(&body).0, "[1].datatype", "{body}");

    // -- the register preview: the same registers under every order --
    // 1234.5 is 0x449A5000; written low word first (CDAB) into the PLC's memory.
    let mut modbus =
        tokio_modbus::client::tcp::connect(format!("127.0.0.1:{plc_port}").parse().unwrap())
            .await
            .expect("connect to the Modbus simulator");
    modbus
        .write_multiple_registers(20, &[0x5000, 0x449A])
        .await
        .unwrap()
        .unwrap();
    let (status, body) = post(
        web,
        "/api/devices/plc/modbus-preview",
        json!({"address": "hr:20", "datatype": "float32", "byte_order": "CDAB"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ok"], true, "{body}");
    let hex: Vec<&str> = body["registers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["hex"].as_str().unwrap())
        .collect();
    assert_eq!(hex, ["5000", "449A"], "{body}");
    let orders: Vec<(&str, f64, bool)> = body["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["byte_order"].as_str().unwrap(),
                o["value"].as_f64().unwrap_or(f64::NAN),
                o["selected"] == true,
            )
        })
        .collect();
    let f = |bits: u32| f64::from(f32::from_bits(bits));
    let expected = [
        ("ABCD", f(0x5000_449A)),
        ("BADC", f(0x0050_9A44)),
        ("CDAB", 1234.5),
        ("DCBA", f(0x9A44_0050)),
    ];
    assert_eq!(orders.len(), 4, "{body}");
    for ((name, value, selected), (want_name, want)) in orders.iter().zip(expected) {
        assert_eq!(*name, want_name);
        assert!(
            (value - want).abs() <= want.abs() * 1e-6 || value.is_nan() && want.is_nan(),
            "{name}: {value} ≠ {want}"
        );
        assert_eq!(*selected, *name == "CDAB");
    }

    // The simulator documents hr:110 as float32 CDAB holding a sine between 0 and 100.
    let (status, body) = post(
        web,
        "/api/devices/plc/modbus-preview",
        json!({"address": "hr:110", "datatype": "float32"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let cdab = body["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["byte_order"] == "CDAB")
        .unwrap();
    let sine = cdab["value"].as_f64().unwrap();
    assert!((0.0..=100.0).contains(&sine), "{body}");
    // And scaling shows the tag's value beside the register's.
    let (status, body) = post(
        web,
        "/api/devices/plc/modbus-preview",
        json!({"address": "hr:10", "datatype": "float32", "raw_type": "int16", "gain": 0.5}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["orders"].as_array().unwrap().len(), 2, "{body}");

    // A hole in the PLC's map: what the PLC said.
    let (status, body) = post(
        web,
        "/api/devices/plc/modbus-preview",
        json!({"address": "hr:200", "count": 4}),
    )
    .await;
    assert_eq!((status, &body["ok"]), (200, &json!(false)), "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("Illegal data address"),
        "{body}"
    );

    // Previews and browsing are for their protocol only.
    let (status, body) = post(
        web,
        "/api/devices/sim/modbus-preview",
        json!({"address": "hr:0"}),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(only_error(&body).0, "device", "{body}");
    let (status, body) = get(web, "/api/devices/plc/browse").await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(only_error(&body).0, "device", "{body}");

    // -- writing values, once the running driver has read the device --
    wait_for("the PLC's first values", || async {
        get(web, "/api/tags/assembly/line1/setpoint").await.1["live"]["quality"] == "good"
    })
    .await;
    let (status, body) = post(
        operator,
        "/api/tags/assembly/line1/setpoint/value",
        json!({"value": -1234}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["written"], true, "{body}");
    let regs = modbus.read_holding_registers(10, 1).await.unwrap().unwrap();
    assert_eq!(regs, [(-1234i16) as u16], "the PLC holds the value");
    wait_for("the written value to come back as a sample", || async {
        let (_, tag) = get(web, "/api/tags/assembly/line1/setpoint").await;
        tag["live"]["value"] == -1234
    })
    .await;

    let (status, body) = post(
        operator,
        "/api/tags/assembly/line1/seconds/value",
        json!({"value": 5}),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(only_error(&body).0, "writable", "{body}");

    for (value, shown, why) in [
        (json!("abc"), "abc", "not an integer; int16 needs one"),
        (
            json!(40000),
            "40000",
            "out of range for int16 (-32768..=32767)",
        ),
    ] {
        let (status, body) = post(
            operator,
            "/api/tags/assembly/line1/setpoint/value",
            json!({"value": value}),
        )
        .await;
        assert_eq!(status, 422, "{body}");
        let (field, v, reason) = only_error(&body);
        assert_eq!((field.as_str(), v.as_str()), ("value", shown), "{body}");
        assert!(reason.contains(why), "{body}");
    }

    // The PLC refuses a register it does not have: its own reason comes back.
    let (status, body) = post(
        operator,
        "/api/tags/assembly/line1/missing/value",
        json!({"value": 1}),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    let (field, _, reason) = only_error(&body);
    assert_eq!(field, "value");
    assert!(
        reason.contains("refused the write") && reason.contains("IllegalDataAddress"),
        "{body}"
    );
}

fn opcua_model(port: u16) -> String {
    format!(
        r#"
[namespace]
enterprise = "acme"
site = "plant-e"
[[area]]
name = "mixing"
[[area.line]]
name = "line1"
[[device]]
name = "ua"
driver = "opc-ua"
endpoint = "opc.tcp://127.0.0.1:{port}/"
period_ms = 200
timeout_ms = 5000
[[tag]]
device = "ua"
location = "mixing/line1"
name = "target"
datatype = "int32"
address = "nsu=urn:sparkedge:sim;s=Writable.Int32"
writable = true
"#
    )
}

/// `s` percent-encoded for a query string.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The child named `name` of a browse answer.
fn child<'a>(body: &'a JsonValue, name: &str) -> &'a JsonValue {
    body["children"]
        .as_array()
        .unwrap_or_else(|| panic!("no children: {body}"))
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no child {name}: {body}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn an_opcua_server_is_browsed_tested_read_and_written() {
    let ua_port = free_port();
    let _server = sim("opcua", ua_port);
    let data = tempfile::tempdir().expect("temp dir");
    import_model(data.path(), &opcua_model(ua_port));
    add_users(data.path());
    wait_for("the OPC UA simulator", || listening(ua_port)).await;
    let app = Appliance::start(data.path(), &[]);
    let web = &login(app.web_port, "ada").await;
    let operator = &login(app.web_port, "otto").await;

    // -- browse, level by level from the Objects folder --
    let (status, body) = get(web, "/api/devices/ua/browse").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["ok"], &body["node"]),
        (&json!(true), &json!("i=85")),
        "{body}"
    );
    let folder = child(&body, "Sim");
    assert_eq!(
        (&folder["node_class"], &folder["has_children"]),
        (&json!("folder"), &json!(true))
    );
    assert_eq!(folder["address"], "nsu=urn:sparkedge:sim;s=Sim");

    let (status, body) = get(
        web,
        &format!(
            "/api/devices/ua/browse?node={}",
            encode("nsu=urn:sparkedge:sim;s=Sim")
        ),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    child(&body, "Changing");
    let writable = child(&body, "Writable")["address"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, body) = get(
        web,
        &format!("/api/devices/ua/browse?node={}", encode(&writable)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["truncated"], false);
    let int32 = child(&body, "Int32");
    assert_eq!(int32["address"], "nsu=urn:sparkedge:sim;s=Writable.Int32");
    assert_eq!(
        (
            &int32["node_class"],
            &int32["datatype"],
            &int32["opcua_type"],
            &int32["writable"]
        ),
        (
            &json!("variable"),
            &json!("int32"),
            &json!("Int32"),
            &json!(true)
        ),
        "{body}"
    );
    assert_eq!(
        child(&body, "FloatArray")["datatype"],
        "float32[]",
        "{body}"
    );
    assert_eq!(child(&body, "DateTime")["datatype"], "datetime", "{body}");

    // The limit holds, and says there was more.
    let (status, body) = get(
        web,
        &format!("/api/devices/ua/browse?node={}&limit=3", encode(&writable)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (
            body["children"].as_array().unwrap().len(),
            &body["truncated"]
        ),
        (3, &json!(true)),
        "{body}"
    );
    // Bad parameters are named.
    let (status, body) = get(web, "/api/devices/ua/browse?node=ns%3Dx").await;
    assert_eq!(
        (status, only_error(&body).0.as_str()),
        (422, "node"),
        "{body}"
    );
    let (status, body) = get(web, "/api/devices/ua/browse?limit=0").await;
    assert_eq!(
        (status, only_error(&body).0.as_str()),
        (422, "limit"),
        "{body}"
    );
    // A node the server does not have: the server's word for it.
    let (status, body) = get(
        web,
        &format!(
            "/api/devices/ua/browse?node={}",
            encode("nsu=urn:sparkedge:sim;s=Nope")
        ),
    )
    .await;
    assert_eq!((status, &body["ok"]), (200, &json!(false)), "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("BadNodeIdUnknown"),
        "{body}"
    );

    // -- connection tests --
    let (status, body) = post(web, "/api/devices/ua/test", json!(null)).await;
    assert_eq!((status, &body["ok"]), (200, &json!(true)), "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .starts_with("session opened with"),
        "{body}"
    );
    let closed = free_port();
    let (status, body) = post(
        web,
        "/api/devices/test",
        json!({"name": "ua2", "driver": "opc-ua", "endpoint": format!("opc.tcp://127.0.0.1:{closed}/"), "timeout_ms": 2000}),
    )
    .await;
    assert_eq!((status, &body["ok"]), (200, &json!(false)), "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains(&format!("127.0.0.1:{closed}")),
        "{body}"
    );

    // -- test read: a value, a node the server lacks, a type that does not match --
    let (status, body) = post(
        web,
        "/api/devices/ua/read",
        json!([
            {"location": "mixing/line1", "name": "a", "datatype": "float64", "address": "nsu=urn:sparkedge:sim;s=Changing.Double"},
            {"location": "mixing/line1", "name": "b", "datatype": "float64", "address": "nsu=urn:sparkedge:sim;s=Nope"},
            {"location": "mixing/line1", "name": "c", "datatype": "int16", "address": "nsu=urn:sparkedge:sim;s=Changing.Float"},
        ]),
    )
    .await;
    assert_eq!((status, &body["ok"]), (200, &json!(true)), "{body}");
    let read = &body["tags"];
    assert!(
        read[0]["value"].is_f64() && read[0]["quality"] == "good",
        "{body}"
    );
    assert!(
        read[1]["error"]
            .as_str()
            .unwrap()
            .contains("BadNodeIdUnknown"),
        "{body}"
    );
    assert!(
        read[2]["error"]
            .as_str()
            .unwrap()
            .contains("the tag is int16"),
        "{body}"
    );

    // -- a write through the running driver, read back --
    wait_for("the server's first values", || async {
        get(web, "/api/tags/mixing/line1/target").await.1["live"]["quality"] == "good"
    })
    .await;
    let (status, body) = post(
        operator,
        "/api/tags/mixing/line1/target/value",
        json!({"value": 4242}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    wait_for("the written value to come back", || async {
        get(web, "/api/tags/mixing/line1/target").await.1["live"]["value"] == 4242
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secure_server_is_tested_until_both_sides_trust_each_other() {
    let ua_port = free_port();
    let server_pki = tempfile::tempdir().expect("temp dir");
    let _server = KillOnDrop::spawn(
        Command::new(sparkedge_binary())
            .args([
                "sim",
                "opcua",
                "--secure",
                "--listen",
                &format!("127.0.0.1:{ua_port}"),
            ])
            .arg("--pki-dir")
            .arg(server_pki.path()),
        "sparkedge sim opcua --secure",
    );
    // The demo model: no secure device, so the appliance has opened no certificate folder.
    let data = tempfile::tempdir().expect("temp dir");
    add_users(data.path());
    let app = Appliance::start(data.path(), &[]);
    wait_for("the OPC UA simulator", || listening(ua_port)).await;
    let web = &login(app.web_port, "ada").await;
    let device = json!({
        "name": "secure-plc", "driver": "opc-ua", "endpoint": format!("opc.tcp://127.0.0.1:{ua_port}/"),
        "security_policy": "basic256sha256", "timeout_ms": 5000,
    });

    // 1. We do not trust the server yet: the error says how, with its thumbprint.
    let (status, body) = post(web, "/api/devices/test", device.clone()).await;
    assert_eq!((status, &body["ok"]), (200, &json!(false)), "{body}");
    let error = body["error"].as_str().unwrap();
    let thumbprint = error
        .split_once("sparkedge opcua trust ")
        .map(|(_, t)| t.trim().to_owned())
        .unwrap_or_else(|| panic!("no trust command in {error:?}"));
    assert!(error.contains("is not trusted"), "{error}");
    system_tests::sparkedge(data.path(), &["opcua", "trust", &thumbprint]);

    // 2. The server does not trust us yet: the error names our certificate.
    let (status, body) = post(web, "/api/devices/test", device.clone()).await;
    assert_eq!((status, &body["ok"]), (200, &json!(false)), "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(
        error.contains("may not trust the appliance's certificate"),
        "{error}"
    );
    assert!(error.contains("opcua-pki/own/cert.der"), "{error}");

    // 3. The server's administrator trusts what it refused: the session opens.
    let rejected = server_pki.path().join("rejected");
    for entry in std::fs::read_dir(&rejected).expect("the server's rejected folder") {
        let entry = entry.unwrap();
        std::fs::rename(
            entry.path(),
            server_pki.path().join("trusted").join(entry.file_name()),
        )
        .expect("trust our certificate on the server");
    }
    let (status, body) = post(web, "/api/devices/test", device).await;
    assert_eq!((status, &body["ok"]), (200, &json!(true)), "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("security policy basic256sha256, mode sign-and-encrypt"),
        "{message}"
    );
}
