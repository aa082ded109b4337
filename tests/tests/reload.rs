//! A model changed while `sparkedge` runs, by `sparkedge import` from another process, as a
//! Sparkplug Primary Host, a UNS subscriber, the web API and a PLC see it: tags and devices
//! come and go with DDEATH/DBIRTH inside one session, retained UNS topics move, a new edge
//! node id starts a new session, an invalid model changes nothing, and writes still land.
//! The same through the REST API, whose changes are applied before the call returns.

use std::process::Command;

use prost::Message as _;
use rumqttc::QoS;
use sparkplug::proto::Payload;
use sparkplug::proto::payload::Metric;
use sparkplug::proto::payload::metric::Value as Field;
use system_tests::{
    Appliance, KillOnDrop, Message, Observer, decode, free_port, import_model, now_ms,
    primary_host, sparkedge_binary,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_modbus::client::{Reader, Writer};

const HOST_ID: &str = "scada";

fn topic(verb: &str, node: &str, device: Option<&str>) -> String {
    match device {
        Some(d) => format!("spBv1.0/plant-r/{verb}/{node}/{d}"),
        None => format!("spBv1.0/plant-r/{verb}/{node}"),
    }
}

fn device(name: &str, port: u16) -> String {
    format!(
        "[[device]]\nname = \"{name}\"\ndriver = \"modbus-tcp\"\nhost = \"127.0.0.1\"\nport = {port}\nperiod_ms = 200\ntimeout_ms = 300\noffline_after = 2\n"
    )
}

fn tag(device: &str, name: &str, datatype: &str, address: &str, extra: &str) -> String {
    format!(
        "[[tag]]\ndevice = \"{device}\"\nlocation = \"forming/press1\"\nname = \"{name}\"\ndatatype = \"{datatype}\"\naddress = \"{address}\"\n{extra}"
    )
}

/// The model: namespace, edge node `node`, and `parts` (devices and tags).
fn model(node: &str, parts: &[String]) -> String {
    format!(
        "[namespace]\nenterprise = \"acme\"\nsite = \"plant-r\"\n[sparkplug]\nedge_node_id = \"{node}\"\n\
         [[area]]\nname = \"forming\"\n[[area.line]]\nname = \"press1\"\n{}",
        parts.concat()
    )
}

fn metric<'a>(p: &'a Payload, name: &str) -> &'a Metric {
    p.metrics
        .iter()
        .find(|m| m.name.as_deref() == Some(&format!("forming/press1/{name}")))
        .unwrap_or_else(|| panic!("{name} in {p:?}"))
}

fn aliases(p: &Payload) -> Vec<(String, Option<u64>)> {
    let mut a: Vec<_> = p
        .metrics
        .iter()
        .map(|m| (m.name.clone().unwrap_or_default(), m.alias))
        .collect();
    a.sort();
    a
}

fn bd_seq(p: &Payload) -> Option<Field> {
    p.metrics
        .iter()
        .find(|m| m.name.as_deref() == Some("bdSeq"))
        .and_then(|m| m.value.clone())
}

/// Every message up to and including the first that `done` accepts.
async fn until(host: &mut Observer, what: &str, done: impl Fn(&Message) -> bool) -> Vec<Message> {
    let mut seen = Vec::new();
    loop {
        let m = host.next(what).await;
        let last = done(&m);
        seen.push(m);
        if last {
            return seen;
        }
    }
}

/// The topics of `messages` that are births or deaths.
fn lifecycle(messages: &[Message]) -> Vec<&str> {
    messages
        .iter()
        .map(|m| m.topic.as_str())
        .filter(|t| t.contains("BIRTH") || t.contains("DEATH"))
        .collect()
}

/// Reads the stream until `text` arrives.
async fn read_until(stream: &mut tokio::net::TcpStream, text: &str) {
    let mut received = String::new();
    let deadline = tokio::time::Instant::now() + system_tests::DEADLINE;
    while !received.contains(text) {
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("no {text:?} on the live stream: {received}"))
            .expect("read the live stream");
        assert!(n > 0, "live stream closed");
        received.push_str(&String::from_utf8_lossy(&chunk[..n]));
    }
}

/// Writes `model` to a file and imports it while the appliance runs.
fn import(data: &std::path::Path, model: &str) {
    import_model(data, model);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_imported_while_running_applies_without_restart() {
    let plc_port = free_port();
    let _plc = KillOnDrop::spawn(
        Command::new(sparkedge_binary()).args([
            "sim",
            "modbus",
            "--listen",
            &format!("127.0.0.1:{plc_port}"),
        ]),
        "sparkedge sim modbus",
    );
    let press = device("press", plc_port);
    let seconds = tag("press", "seconds", "uint16", "hr:100", "");
    let setpoint = tag("press", "setpoint", "float32", "hr:10", "writable = true\n");
    let label = tag("press", "label", "string", "40131", "length = 16\n");
    let mixer = device("mixer", plc_port);
    let sine = tag(
        "mixer",
        "sine",
        "float32",
        "hr:110",
        "byte_order = \"CDAB\"\n",
    );
    let v1 = model(
        "edge-r",
        &[
            press.clone(),
            mixer.clone(),
            seconds.clone(),
            setpoint.clone(),
            label.clone(),
            sine.clone(),
        ],
    );
    let data = tempfile::tempdir().expect("temp dir");
    import_model(data.path(), &v1);
    system_tests::add_web_user(data.path(), "vera", "viewer", "viewer password");
    let mut app = Appliance::start(data.path(), &["--primary-host-id", HOST_ID]);
    let mut host = primary_host(app.mqtt_port, HOST_ID, "spBv1.0/plant-r/#").await;
    let mut uns = Observer::connect(app.mqtt_port, "uns-watcher", None).await;
    uns.subscribe("acme/#").await;

    let births = until(&mut host, "both DBIRTHs", {
        let (p, m) = (
            topic("DBIRTH", "edge-r", Some("press")),
            topic("DBIRTH", "edge-r", Some("mixer")),
        );
        move |msg| msg.topic == p || msg.topic == m
    })
    .await;
    let nbirth = decode(&births[0]);
    assert_eq!(births[0].topic, topic("NBIRTH", "edge-r", None));
    let first_bd_seq = bd_seq(&nbirth);
    if !births.iter().any(|m| m.topic.ends_with("/mixer")) {
        host.next_where("mixer DBIRTH", |m| m.topic.ends_with("DBIRTH/edge-r/mixer"))
            .await;
    }
    let press_birth = births
        .iter()
        .rev()
        .find(|m| m.topic.ends_with("/press"))
        .map(decode);
    let press_birth = match press_birth {
        Some(b) => b,
        None => decode(
            &host
                .next_where("press DBIRTH", |m| m.topic.ends_with("DBIRTH/edge-r/press"))
                .await,
        ),
    };

    // The PLC holds a known value where the next tag will be.
    let addr = format!("127.0.0.1:{plc_port}").parse().expect("address");
    let mut plc = tokio_modbus::client::tcp::connect(addr)
        .await
        .expect("connect to the PLC");
    plc.write_single_register(300, 4242)
        .await
        .expect("transport")
        .expect("no exception");

    // A live view open in a browser (its first event received) is told the model changed.
    let vera = system_tests::web_login(app.web_port, "vera", "viewer password");
    let mut live = tokio::net::TcpStream::connect(("127.0.0.1", app.web_port))
        .await
        .expect("connect to the web UI");
    let request = format!(
        "GET /api/live HTTP/1.1\r\nHost: test\r\nCookie: {}\r\n\r\n",
        vera.cookie
    );
    live.write_all(request.as_bytes())
        .await
        .expect("request the live stream");
    read_until(&mut live, "data:").await;

    // (1) A tag added to an online device: DDEATH and DBIRTH of that device only, with the
    // new metric and its value; the other metrics keep their aliases; no NDEATH.
    let word = tag("press", "word", "uint16", "hr:300", "");
    let v2 = |label: &String| {
        model(
            "edge-r",
            &[
                press.clone(),
                mixer.clone(),
                seconds.clone(),
                setpoint.clone(),
                label.clone(),
                word.clone(),
                sine.clone(),
            ],
        )
    };
    import(data.path(), &v2(&label));
    let seen = until(&mut host, "press DBIRTH after the tag was added", |m| {
        m.topic == topic("DBIRTH", "edge-r", Some("press"))
    })
    .await;
    assert_eq!(
        lifecycle(&seen),
        [
            topic("DDEATH", "edge-r", Some("press")),
            topic("DBIRTH", "edge-r", Some("press"))
        ],
        "only the changed device dies and is born again"
    );
    let rebirth = decode(seen.last().expect("DBIRTH"));
    assert_eq!(metric(&rebirth, "word").value, Some(Field::IntValue(4242)));
    let mut before = aliases(&press_birth);
    let mut after = aliases(&rebirth);
    after.retain(|(name, _)| !name.ends_with("/word"));
    before.sort();
    assert_eq!(before, after, "existing metrics keep their aliases");

    read_until(&mut live, "event: model").await;

    // The web API lists the new tag with its value.
    let deadline = tokio::time::Instant::now() + system_tests::DEADLINE;
    let values = loop {
        let (status, body) = system_tests::http_get_as(app.web_port, "/api/values", &vera);
        assert_eq!(status, 200, "{body}");
        let values: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let word = values
            .as_array()
            .and_then(|v| v.iter().find(|t| t["metric"] == "forming/press1/word"));
        if word.is_some_and(|w| w["value"] == 4242) {
            break values;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no word in {values}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await; // polling the API
    };
    assert_eq!(values.as_array().map(Vec::len), Some(5));

    // (4) A renamed tag: its old retained UNS topic is cleared, the new one has the value.
    let title = label.replace("name = \"label\"", "name = \"title\"");
    import(data.path(), &v2(&title));
    let old_topic = "acme/plant-r/forming/press1/label";
    let new_topic = "acme/plant-r/forming/press1/title";
    let cleared = uns
        .next_where("the old topic cleared", |m| {
            m.topic == old_topic && m.payload.is_empty()
        })
        .await;
    assert!(cleared.payload.is_empty());
    let renamed = uns
        .next_where("the new topic", |m| m.topic == new_topic)
        .await;
    let json: serde_json::Value = serde_json::from_slice(&renamed.payload).expect("JSON");
    assert_eq!(json["value"], "SPARKEDGE SIM");
    // A subscriber arriving now finds the new topic retained and not the old one. The
    // broker sends retained messages right after the SUBACK, ahead of a marker published
    // after it.
    let mut late = Observer::connect(app.mqtt_port, "late-uns", None).await;
    late.subscribe("acme/plant-r/forming/#").await;
    let marker = "acme/plant-r/forming/marker";
    host.client
        .publish(marker, QoS::AtLeastOnce, false, "end")
        .await
        .expect("publish the marker");
    let retained = until(&mut late, "the marker", |m| m.topic == marker).await;
    let retained: Vec<&str> = retained.iter().map(|m| m.topic.as_str()).collect();
    assert!(retained.contains(&new_topic), "{retained:?}");
    assert!(!retained.contains(&old_topic), "{retained:?}");
    host.next_where("press DBIRTH with the renamed tag", |m| {
        m.topic == topic("DBIRTH", "edge-r", Some("press"))
            && decode(m)
                .metrics
                .iter()
                .any(|x| x.name.as_deref() == Some("forming/press1/title"))
    })
    .await;

    // (2) and (3): a device removed dies; a device added is born once its driver has read.
    let pump = device("pump", plc_port);
    let pressure = tag("pump", "pressure", "uint16", "hr:100", "");
    let v4 = model(
        "edge-r",
        &[
            press.clone(),
            pump.clone(),
            seconds.clone(),
            setpoint.clone(),
            title.clone(),
            word.clone(),
            pressure.clone(),
        ],
    );
    import(data.path(), &v4);
    let seen = until(&mut host, "pump DBIRTH", |m| {
        m.topic == topic("DBIRTH", "edge-r", Some("pump"))
    })
    .await;
    assert_eq!(
        lifecycle(&seen),
        [
            topic("DDEATH", "edge-r", Some("mixer")),
            topic("DBIRTH", "edge-r", Some("pump"))
        ]
    );
    let pump_birth = decode(seen.last().expect("DBIRTH"));
    assert!(
        matches!(
            metric(&pump_birth, "pressure").value,
            Some(Field::IntValue(_))
        ),
        "{pump_birth:?}"
    );

    // (6) An invalid model is refused by import, and the running appliance is untouched.
    let invalid = v4.replace("hr:300", "nowhere");
    let file = data.path().join("invalid.toml");
    std::fs::write(&file, &invalid).expect("write the invalid model");
    let out = Command::new(sparkedge_binary())
        .args(["import", file.to_str().expect("UTF-8 path"), "--data-dir"])
        .arg(data.path())
        .output()
        .expect("run sparkedge import");
    assert!(!out.status.success(), "an invalid model was imported");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("nothing changed"), "{stderr}");
    assert!(stderr.contains("nowhere"), "{stderr}");

    // (7) A DCMD still reaches the PLC, numbered by the running model. Everything the host
    // sees until its value comes back must be data: no birth or death followed the refusal.
    let setpoint_alias = metric(&rebirth, "setpoint").alias;
    let dcmd = Payload {
        timestamp: Some(now_ms()),
        metrics: vec![Metric {
            alias: setpoint_alias,
            value: Some(Field::FloatValue(31.5)),
            ..Metric::default()
        }],
        ..Payload::default()
    };
    host.client
        .publish(
            topic("DCMD", "edge-r", Some("press")),
            QoS::AtMostOnce,
            false,
            dcmd.encode_to_vec(),
        )
        .await
        .expect("publish DCMD");
    let seen = until(&mut host, "DDATA with the setpoint", |m| {
        m.topic == topic("DDATA", "edge-r", Some("press"))
            && decode(m)
                .metrics
                .iter()
                .any(|x| x.alias == setpoint_alias && x.value == Some(Field::FloatValue(31.5)))
    })
    .await;
    assert_eq!(lifecycle(&seen), Vec::<&str>::new());
    let words = plc
        .read_holding_registers(10, 2)
        .await
        .expect("transport")
        .expect("no exception");
    let bits = 31.5f32.to_bits();
    assert_eq!(words, [(bits >> 16) as u16, bits as u16]);

    // (5) A new edge node id ends the session (NDEATH with its bdSeq) and starts one under
    // the new id with the next bdSeq.
    import(
        data.path(),
        &v4.replace("edge_node_id = \"edge-r\"", "edge_node_id = \"edge-s\""),
    );
    let seen = until(&mut host, "NBIRTH under the new id", |m| {
        m.topic == topic("NBIRTH", "edge-s", None)
    })
    .await;
    let death = seen
        .iter()
        .find(|m| m.topic == topic("NDEATH", "edge-r", None))
        .expect("NDEATH of the old edge node before the new NBIRTH");
    assert_eq!(bd_seq(&decode(death)), first_bd_seq);
    let Some(Field::LongValue(first)) = first_bd_seq else {
        panic!("bdSeq {first_bd_seq:?}");
    };
    assert_eq!(
        bd_seq(&decode(seen.last().expect("NBIRTH"))),
        Some(Field::LongValue((first + 1) % 256))
    );
    for d in ["press", "pump"] {
        host.next_where("DBIRTH under the new id", |m| {
            m.topic == topic("DBIRTH", "edge-s", Some(d))
        })
        .await;
    }

    // The same process all along.
    assert!(
        app.child.try_wait().expect("wait").is_none(),
        "sparkedge exited"
    );
    assert!(app.terminate().success());
}

/// One HTTP request with a JSON body as the logged-in `session`: the status and the body.
#[tokio::test(flavor = "multi_thread")]
async fn a_tag_added_through_the_rest_api_runs_when_the_call_returns() {
    let plc_port = free_port();
    let _plc = KillOnDrop::spawn(
        Command::new(sparkedge_binary()).args([
            "sim",
            "modbus",
            "--listen",
            &format!("127.0.0.1:{plc_port}"),
        ]),
        "sparkedge sim modbus",
    );
    let v1 = model(
        "edge-r",
        &[
            device("press", plc_port),
            tag("press", "seconds", "uint16", "hr:100", ""),
            tag("press", "setpoint", "float32", "hr:10", "writable = true\n"),
        ],
    );
    let data = tempfile::tempdir().expect("temp dir");
    import_model(data.path(), &v1);
    system_tests::add_web_user(data.path(), "ada", "admin", "admin password");
    system_tests::add_web_user(data.path(), "otto", "operator", "operator password");
    let app = Appliance::start(data.path(), &["--primary-host-id", HOST_ID]);
    let mut host = primary_host(app.mqtt_port, HOST_ID, "spBv1.0/plant-r/#").await;
    let dbirth = topic("DBIRTH", "edge-r", Some("press"));
    host.next_where("press DBIRTH", |m| m.topic == dbirth).await;

    let addr = format!("127.0.0.1:{plc_port}").parse().expect("address");
    let mut plc = tokio_modbus::client::tcp::connect(addr)
        .await
        .expect("connect to the PLC");
    plc.write_single_register(301, 777)
        .await
        .expect("transport")
        .expect("no exception");

    let ada = system_tests::web_login(app.web_port, "ada", "admin password");
    let new_tag = serde_json::json!({"device": "press", "location": "forming/press1",
        "name": "extra", "datatype": "uint16", "address": "hr:301"});
    let (status, body) = system_tests::http_json(app.web_port, &ada, "POST", "/api/tags", &new_tag);
    assert_eq!(status, 201, "{body}");
    // Returned means running: the live values are those of the new model already.
    let (status, body) = system_tests::http_get_as(app.web_port, "/api/values", &ada);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("forming/press1/extra"), "{body}");

    let seen = until(&mut host, "press DBIRTH with the new tag", |m| {
        m.topic == dbirth
    })
    .await;
    assert_eq!(
        lifecycle(&seen),
        [topic("DDEATH", "edge-r", Some("press")), dbirth.clone()]
    );
    let birth = decode(seen.last().expect("DBIRTH"));
    assert_eq!(metric(&birth, "extra").value, Some(Field::IntValue(777)));

    // A value written from the web after the change reaches the PLC.
    let otto = system_tests::web_login(app.web_port, "otto", "operator password");
    let (status, body) = system_tests::http_json(
        app.web_port,
        &otto,
        "POST",
        "/api/tags/forming/press1/setpoint/value",
        &serde_json::json!({"value": 12.5}),
    );
    assert_eq!(status, 200, "{body}");
    let words = plc
        .read_holding_registers(10, 2)
        .await
        .expect("transport")
        .expect("no exception");
    let bits = 12.5f32.to_bits();
    assert_eq!(words, [(bits >> 16) as u16, bits as u16]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_primary_host_set_through_the_rest_api_gates_the_next_births() {
    let data = tempfile::tempdir().expect("temp dir");
    import_model(data.path(), &model("edge-r", &[]));
    system_tests::add_web_user(data.path(), "ada", "admin", "admin password");
    let app = Appliance::start(data.path(), &[]);
    // Sees STATE and the node's messages in the broker's order.
    let mut watcher = Observer::connect(app.mqtt_port, "watcher", None).await;
    watcher.subscribe("spBv1.0/#").await;
    // The broker keeps the NBIRTH it saw (Sparkplug Aware): the session was born already.
    watcher.subscribe("$sparkplug/certificates/#").await;
    let nbirth = topic("NBIRTH", "edge-r", None);
    let certificate = format!("$sparkplug/certificates/{nbirth}");
    watcher
        .next_where("NBIRTH without a Primary Host", |m| m.topic == certificate)
        .await;

    let ada = system_tests::web_login(app.web_port, "ada", "admin password");
    let ids = serde_json::json!({"edge_node_id": "edge-r", "primary_host_id": HOST_ID});
    let (status, body) = system_tests::http_json(app.web_port, &ada, "PUT", "/api/sparkplug", &ids);
    assert_eq!(status, 200, "{body}");
    let ndeath = topic("NDEATH", "edge-r", None);
    watcher
        .next_where("NDEATH: the session ends for the new host", |m| {
            m.topic == ndeath
        })
        .await;

    // Only the host's online STATE lets the node birth again.
    let _host = primary_host(app.mqtt_port, HOST_ID, "spBv1.0/plant-r/#").await;
    let state = format!("spBv1.0/STATE/{HOST_ID}");
    let seen = until(&mut watcher, "NBIRTH for the new host", |m| {
        m.topic == nbirth
    })
    .await;
    let order: Vec<&str> = seen
        .iter()
        .map(|m| m.topic.as_str())
        .filter(|t| *t == state || *t == nbirth)
        .collect();
    assert_eq!(order.first(), Some(&state.as_str()), "{order:?}");
    let (status, body) = system_tests::http_get_as(app.web_port, "/api/status", &ada);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains(r#""primary_host_id":"scada""#), "{body}");
}
