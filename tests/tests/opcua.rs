//! An OPC UA server (the `sparkedge sim opcua` process) subscribed to by the appliance,
//! observed as a Sparkplug Primary Host would: typed values in the DBIRTH (arrays and
//! datetimes included), DCMDs written to the server, and a server that goes away and comes
//! back (DDEATH, then DBIRTH).

use std::process::Command;

use prost::Message as _;
use rumqttc::QoS;
use sparkplug::proto::Payload;
use sparkplug::proto::payload::Metric;
use sparkplug::proto::payload::metric::Value as Field;
use sparkplug::{DataType, MetricValue};
use system_tests::{
    Appliance, KillOnDrop, decode, free_port, import_model, now_ms, primary_host, sparkedge_binary,
};

const HOST_ID: &str = "scada";
const DBIRTH: &str = "spBv1.0/plant-o/DBIRTH/edge-o/mixer";
const DDEATH: &str = "spBv1.0/plant-o/DDEATH/edge-o/mixer";
const DDATA: &str = "spBv1.0/plant-o/DDATA/edge-o/mixer";
const DCMD: &str = "spBv1.0/plant-o/DCMD/edge-o/mixer";

fn model(port: u16) -> String {
    let mut text = format!(
        r#"
[namespace]
enterprise = "acme"
site = "plant-o"
[sparkplug]
edge_node_id = "edge-o"
[[area]]
name = "mixing"
[[area.line]]
name = "line1"
[[device]]
name = "mixer"
driver = "opc-ua"
endpoint = "opc.tcp://127.0.0.1:{port}/"
period_ms = 100
timeout_ms = 2000
"#
    );
    for (name, datatype, node, writable) in [
        ("speed", "float32", "Changing.Float", false),
        ("count", "int64", "Changing.Int64", false),
        ("state", "string", "Changing.String", false),
        ("running", "bool", "Changing.Boolean", false),
        ("setpoint", "float64", "Writable.Double", true),
        ("profile", "float32[]", "Changing.FloatArray", false),
        ("serviced", "datetime", "Changing.DateTime", false),
        ("recipe", "int32[]", "Writable.Int32Array", true),
    ] {
        text.push_str(&format!(
            r#"[[tag]]
device = "mixer"
location = "mixing/line1"
name = "{name}"
datatype = "{datatype}"
address = "nsu=urn:sparkedge:sim;s={node}"
writable = {writable}
"#
        ));
    }
    text
}

/// `sparkedge sim opcua` on `port`, killed when dropped.
fn start_sim(port: u16) -> KillOnDrop {
    KillOnDrop::spawn(
        Command::new(sparkedge_binary())
            .args(["sim", "opcua", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--tick-ms", "200", "--bulk", "10"]),
        "sparkedge sim opcua",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn opcua_server_to_sparkplug_and_back() {
    let port = free_port();
    let sim = start_sim(port);
    let data = tempfile::tempdir().expect("temp dir");
    import_model(data.path(), &model(port));

    let app = Appliance::start(data.path(), &["--primary-host-id", HOST_ID]);
    let mut host = primary_host(app.mqtt_port, HOST_ID, "spBv1.0/plant-o/#").await;

    // The device is born with a value of the right Sparkplug type for every tag.
    let birth = decode(&host.next_where("DBIRTH", |m| m.topic == DBIRTH).await);
    let metric = |name: &str| -> Metric {
        birth
            .metrics
            .iter()
            .find(|m| m.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{name} in DBIRTH"))
            .clone()
    };
    assert!(matches!(
        metric("mixing/line1/speed").value,
        Some(Field::FloatValue(_))
    ));
    assert!(matches!(
        metric("mixing/line1/count").value,
        Some(Field::LongValue(_))
    ));
    match metric("mixing/line1/state").value {
        Some(Field::StringValue(s)) => assert!(s.starts_with("state "), "{s}"),
        other => panic!("state: {other:?}"),
    }
    assert!(matches!(
        metric("mixing/line1/running").value,
        Some(Field::BooleanValue(_))
    ));
    let setpoint = metric("mixing/line1/setpoint");
    assert_eq!(setpoint.value, Some(Field::DoubleValue(0.0)));
    // Arrays are born with their array type and packed bytes (four Floats of the simulator),
    // datetimes with DateTime in long_value.
    let profile = metric("mixing/line1/profile");
    assert_eq!(profile.datatype, Some(DataType::FloatArray.code()));
    match &profile.value {
        Some(Field::BytesValue(b)) => assert_eq!(b.len(), 4 * 4, "{b:?}"),
        other => panic!("profile: {other:?}"),
    }
    let serviced = metric("mixing/line1/serviced");
    assert_eq!(serviced.datatype, Some(DataType::DateTime.code()));
    match serviced.value {
        // The simulator counts seconds from 2026-01-01T00:00:00Z.
        Some(Field::LongValue(ms)) => assert!(ms >= 1_767_225_600_000, "{ms}"),
        other => panic!("serviced: {other:?}"),
    }
    let recipe = metric("mixing/line1/recipe");
    assert_eq!(recipe.datatype, Some(DataType::Int32Array.code()));

    // DCMD: the value is written to the server and comes back as DDATA.
    let dcmd = Payload {
        timestamp: Some(now_ms()),
        metrics: vec![Metric {
            alias: setpoint.alias,
            value: Some(Field::DoubleValue(42.25)),
            ..Metric::default()
        }],
        ..Payload::default()
    };
    host.client
        .publish(DCMD, QoS::AtMostOnce, false, dcmd.encode_to_vec())
        .await
        .expect("publish DCMD");
    host.next_where("DDATA with the setpoint", |m| {
        m.topic == DDATA
            && decode(m)
                .metrics
                .iter()
                .any(|x| x.alias == setpoint.alias && x.value == Some(Field::DoubleValue(42.25)))
    })
    .await;

    // An array DCMD: decoded by the birth's type, written whole, read back as DDATA.
    let written = MetricValue::Int32Array(vec![7, -1, 300]).to_field();
    let dcmd = Payload {
        timestamp: Some(now_ms()),
        metrics: vec![Metric {
            alias: recipe.alias,
            value: Some(written.clone()),
            ..Metric::default()
        }],
        ..Payload::default()
    };
    host.client
        .publish(DCMD, QoS::AtMostOnce, false, dcmd.encode_to_vec())
        .await
        .expect("publish DCMD");
    host.next_where("DDATA with the recipe", |m| {
        m.topic == DDATA
            && decode(m)
                .metrics
                .iter()
                .any(|x| x.alias == recipe.alias && x.value.as_ref() == Some(&written))
    })
    .await;

    // The server goes away: DDEATH. It comes back: DBIRTH.
    drop(sim);
    host.next_where("DDEATH", |m| m.topic == DDEATH).await;
    let _sim = start_sim(port);
    host.next_where("DBIRTH after the server returns", |m| m.topic == DBIRTH)
        .await;
}
