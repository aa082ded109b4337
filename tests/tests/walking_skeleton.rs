//! The walking skeleton end to end: `sparkedge demo` as a separate process, observed over
//! TCP by a Sparkplug Primary Host Application and by a UNS subscriber.

use prost::Message as _;
use rumqttc::QoS;
use sparkplug::proto::Payload;
use sparkplug::proto::payload::metric::Value as Field;
use system_tests::{Appliance, Observer, decode, now_ms};

const HOST_ID: &str = "test-host";
const NODE: &str = "spBv1.0/plant-a/NBIRTH/sparkedge";
const DEATH: &str = "spBv1.0/plant-a/NDEATH/sparkedge";
const DBIRTH: &str = "spBv1.0/plant-a/DBIRTH/sparkedge/demo-plc";
const DDATA: &str = "spBv1.0/plant-a/DDATA/sparkedge/demo-plc";
const DCMD: &str = "spBv1.0/plant-a/DCMD/sparkedge/demo-plc";
/// The demo tags, as the README documents them.
const UNS_TAGS: [(&str, &str); 6] = [
    ("temperature", "float32"),
    ("level", "int32"),
    ("running", "bool"),
    ("bottles", "uint32"),
    ("state", "string"),
    ("setpoint", "float32"),
];

fn bd_seq(p: &Payload) -> i64 {
    let m = p
        .metrics
        .iter()
        .find(|m| m.name.as_deref() == Some("bdSeq"))
        .expect("bdSeq metric");
    assert_eq!(m.datatype, Some(4), "bdSeq must be Int64");
    match m.value {
        Some(Field::LongValue(v)) => v as i64,
        ref other => panic!("bdSeq must be in long_value, got {other:?}"),
    }
}

/// A Primary Host named HOST_ID, subscribed to the edge node's group and online, which is
/// what lets the node publish its births.
async fn primary_host(port: u16) -> Observer {
    system_tests::primary_host(port, HOST_ID, "spBv1.0/plant-a/#").await
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_publishes_sparkplug_and_uns_and_dies_cleanly() {
    let data = tempfile::tempdir().expect("temp dir");
    system_tests::add_web_user(data.path(), "vera", "viewer", "viewer password");
    let mut app = Appliance::start(data.path(), &["--primary-host-id", HOST_ID]);
    let mut host = primary_host(app.mqtt_port).await;

    // NBIRTH is the first thing the node publishes in its session.
    let nbirth = host.next("NBIRTH").await;
    assert_eq!(nbirth.topic, NODE);
    assert!(!nbirth.retain, "births are not retained");
    let nbirth = decode(&nbirth);
    assert_eq!(nbirth.seq, Some(0), "NBIRTH seq present and 0");
    assert!(nbirth.timestamp.is_some());
    let first_bd_seq = bd_seq(&nbirth);
    let rebirth = nbirth
        .metrics
        .iter()
        .find(|m| m.name.as_deref() == Some("Node Control/Rebirth"))
        .expect("Node Control/Rebirth in NBIRTH");
    assert_eq!(rebirth.datatype, Some(11), "Rebirth is Boolean");
    assert_eq!(rebirth.alias, None, "Rebirth has no alias");
    assert_eq!(rebirth.value, Some(Field::BooleanValue(false)));

    // DBIRTH next, with every demo tag named, typed and timestamped.
    let dbirth = host.next("DBIRTH").await;
    assert_eq!(dbirth.topic, DBIRTH);
    let dbirth = decode(&dbirth);
    assert_eq!(dbirth.seq, Some(1));
    assert_eq!(dbirth.metrics.len(), UNS_TAGS.len());
    for m in &dbirth.metrics {
        assert!(
            m.name.is_some() && m.alias.is_some() && m.datatype.is_some(),
            "{m:?}"
        );
        assert!(m.timestamp.is_some(), "{m:?}");
    }
    let setpoint = dbirth
        .metrics
        .iter()
        .find(|m| m.name.as_deref() == Some("packaging/line3/filler/setpoint"))
        .expect("setpoint metric");
    let setpoint_alias = setpoint.alias;
    // Metric name → alias (DBIRTH lists metrics in the order they were read, not by name).
    let aliases = |p: &Payload| -> std::collections::BTreeMap<String, u64> {
        p.metrics
            .iter()
            .map(|m| {
                (
                    m.name.clone().unwrap_or_default(),
                    m.alias.unwrap_or(u64::MAX),
                )
            })
            .collect()
    };
    let first_aliases = aliases(&dbirth);

    // DDATA by exception: seq continues mod 256, every metric carries alias and timestamp.
    let mut seq = 1u64;
    for _ in 0..3 {
        let m = host.next("DDATA").await;
        assert_eq!(
            m.topic, DDATA,
            "only DDATA is expected between births and shutdown"
        );
        let p = decode(&m);
        assert_eq!(p.seq, Some((seq + 1) % 256));
        seq = p.seq.unwrap_or_default();
        assert!(!p.metrics.is_empty());
        for metric in &p.metrics {
            assert!(metric.timestamp.is_some(), "{metric:?}");
            assert!(
                metric.alias.is_some() && metric.name.is_none(),
                "{metric:?}"
            );
        }
    }

    // A DCMD write by name lands in the device and comes back as DDATA.
    let dcmd = Payload {
        timestamp: Some(now_ms()),
        metrics: vec![sparkplug::proto::payload::Metric {
            name: Some("packaging/line3/filler/setpoint".into()),
            value: Some(Field::FloatValue(42.5)),
            ..Default::default()
        }],
        ..Default::default()
    };
    host.client
        .publish(DCMD, QoS::AtMostOnce, false, dcmd.encode_to_vec())
        .await
        .expect("publish DCMD");
    host.next_where("DDATA with the written setpoint", |m| {
        m.topic == DDATA
            && decode(m)
                .metrics
                .iter()
                .any(|x| x.alias == setpoint_alias && x.value == Some(Field::FloatValue(42.5)))
    })
    .await;

    // A late UNS subscriber gets one retained JSON message per demo tag.
    let mut uns = Observer::connect(app.mqtt_port, "uns-reader", None).await;
    uns.subscribe("acme/#").await;
    let mut seen = std::collections::BTreeMap::new();
    while seen.len() < UNS_TAGS.len() {
        let m = uns.next_where("retained UNS message", |m| m.retain).await;
        let json: serde_json::Value = serde_json::from_slice(&m.payload)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", m.topic));
        seen.insert(m.topic.clone(), json);
    }
    for (name, datatype) in UNS_TAGS {
        let topic = format!("acme/plant-a/packaging/line3/filler/{name}");
        let json = seen
            .get(&topic)
            .unwrap_or_else(|| panic!("no retained {topic}"));
        assert!(!json["value"].is_null(), "{topic}: {json}");
        assert!(json["timestamp"].as_u64().is_some(), "{topic}: {json}");
        assert_eq!(json["quality"], "good", "{topic}: {json}");
        assert_eq!(json["datatype"], datatype, "{topic}: {json}");
    }
    assert_eq!(
        seen["acme/plant-a/packaging/line3/filler/setpoint"]["value"],
        42.5
    );

    // The web API serves the running model with its live values, to a logged-in user only.
    let (status, body) = system_tests::http_get(app.web_port, "/api/values");
    assert_eq!(status, 401, "{body}");
    let vera = system_tests::web_login(app.web_port, "vera", "viewer password");
    let (status, body) = system_tests::http_get_as(app.web_port, "/api/values", &vera);
    assert_eq!(status, 200, "{body}");
    let values: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(values.as_array().map(Vec::len), Some(UNS_TAGS.len()));
    assert!(values[0]["value"].is_number(), "{body}");

    // The dashboard's status: the Sparkplug session born on the embedded broker, the demo
    // PLC online with samples counted.
    let (status, body) = system_tests::http_get_as(app.web_port, "/api/status", &vera);
    assert_eq!(status, 200, "{body}");
    let board: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let session = &board["sessions"][0];
    assert_eq!(
        (&session["name"], &session["state"]),
        (&serde_json::json!("embedded"), &serde_json::json!("online")),
        "{body}"
    );
    assert!(session["births"].as_u64() >= Some(1), "{body}");
    let device = &board["devices"][0];
    assert_eq!(device["name"], "demo-plc", "{body}");
    assert_eq!(device["online"], true, "{body}");
    assert!(device["samples"].as_u64() > Some(0), "{body}");

    // Insert a tag ahead of the others: numbering by position would now shift every alias.
    let sparkedge = |args: &[&str]| {
        let out = std::process::Command::new(system_tests::sparkedge_binary())
            .args(args)
            .arg("--data-dir")
            .arg(data.path())
            .output()
            .expect("run sparkedge");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 output")
    };
    let model = sparkedge(&["export"]).replacen(
        "\n[[tag]]\n",
        "\n[[tag]]\ndevice = \"demo-plc\"\nlocation = \"packaging/line3/filler\"\nname = \"speed\"\ndatatype = \"float64\"\naddress = \"ramp\"\n\n[[tag]]\n",
        1,
    );
    let model_file = data.path().join("model.toml");
    std::fs::write(&model_file, model).expect("write model");
    sparkedge(&["import", model_file.to_str().expect("UTF-8 path")]);

    // A model imported while running runs at once: the device is born again with the new
    // tag, and the web API lists it.
    let reborn = host
        .next_where("DBIRTH with the new tag", |m| {
            m.topic == DBIRTH
                && decode(m)
                    .metrics
                    .iter()
                    .any(|x| x.name.as_deref() == Some("packaging/line3/filler/speed"))
        })
        .await;
    let mut reborn = aliases(&decode(&reborn));
    reborn.remove("packaging/line3/filler/speed");
    assert_eq!(reborn, first_aliases, "known metrics keep their aliases");
    let (status, body) = system_tests::http_get_as(app.web_port, "/api/values", &vera);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("packaging/line3/filler/speed"), "{body}");

    // SIGTERM: NDEATH with the NBIRTH's bdSeq, then a clean exit.
    let status = app.terminate();
    let death = host.next_where("NDEATH", |m| m.topic == DEATH).await;
    assert_eq!(decode(&death).seq, None, "NDEATH has no seq");
    assert_eq!(bd_seq(&decode(&death)), first_bd_seq);
    assert!(status.success(), "sparkedge exited with {status}");

    // The same data dir again: the next session uses bdSeq + 1.
    let app = Appliance::start(data.path(), &["--primary-host-id", HOST_ID]);
    let mut host = primary_host(app.mqtt_port).await;
    let nbirth = host.next_where("second NBIRTH", |m| m.topic == NODE).await;
    assert_eq!(bd_seq(&decode(&nbirth)), (first_bd_seq + 1) % 256);
    // Aliases are remembered: every metric a host already knows keeps its alias, and the new
    // one gets an alias nobody had.
    let dbirth = host
        .next_where("second DBIRTH", |m| m.topic == DBIRTH)
        .await;
    let mut second = aliases(&decode(&dbirth));
    let speed = second
        .remove("packaging/line3/filler/speed")
        .expect("the new tag is born");
    assert_eq!(second, first_aliases);
    assert!(
        first_aliases.values().all(|a| *a != speed),
        "{first_aliases:?} / {speed}"
    );
}

/// Spec §2.19: the embedded broker keeps the latest births, byte for byte, as retained
/// messages on `$sparkplug/certificates/...` for hosts that join later.
#[tokio::test(flavor = "multi_thread")]
async fn the_embedded_broker_keeps_births_as_certificates() {
    let data = tempfile::tempdir().expect("temp dir");
    let app = Appliance::start(data.path(), &["--primary-host-id", HOST_ID]);
    let mut host = primary_host(app.mqtt_port).await;
    let nbirth = host.next_where("NBIRTH", |m| m.topic == NODE).await;
    let dbirth = host.next_where("DBIRTH", |m| m.topic == DBIRTH).await;

    let mut late = Observer::connect(app.mqtt_port, "late-host", None).await;
    late.subscribe("$sparkplug/certificates/spBv1.0/plant-a/#")
        .await;
    let mut certificates = Vec::new();
    for _ in 0..2 {
        certificates.push(late.next("a certificate").await);
    }
    certificates.sort_by(|a, b| a.topic.cmp(&b.topic));
    let [dbirth_cert, nbirth_cert] = &certificates[..] else {
        unreachable!()
    };
    assert_eq!(nbirth_cert.topic, format!("$sparkplug/certificates/{NODE}"));
    assert_eq!(
        dbirth_cert.topic,
        format!("$sparkplug/certificates/{DBIRTH}")
    );
    assert!(nbirth_cert.retain && dbirth_cert.retain);
    assert_eq!(nbirth_cert.payload, nbirth.payload, "unmodified NBIRTH");
    assert_eq!(dbirth_cert.payload, dbirth.payload, "unmodified DBIRTH");
}
