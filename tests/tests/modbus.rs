//! A Modbus PLC (the `sparkedge sim modbus` process) polled by the appliance, observed as a
//! Sparkplug Primary Host would: values decoded by type and byte order, a DCMD landing in
//! the right registers, and a PLC that goes away and comes back (DDEATH, then DBIRTH).

use std::process::Command;

use prost::Message as _;
use rumqttc::QoS;
use sparkplug::proto::Payload;
use sparkplug::proto::payload::Metric;
use sparkplug::proto::payload::metric::Value as Field;
use system_tests::{
    Appliance, KillOnDrop, decode, free_port, import_model, now_ms, primary_host, sparkedge,
    sparkedge_binary,
};
use tokio_modbus::client::Reader;

const HOST_ID: &str = "scada";
const DBIRTH: &str = "spBv1.0/plant-c/DBIRTH/edge-m/press";
const DDEATH: &str = "spBv1.0/plant-c/DDEATH/edge-m/press";
const DDATA: &str = "spBv1.0/plant-c/DDATA/edge-m/press";
const DCMD: &str = "spBv1.0/plant-c/DCMD/edge-m/press";

fn model(port: u16) -> String {
    format!(
        r#"
[namespace]
enterprise = "acme"
site = "plant-c"
[sparkplug]
edge_node_id = "edge-m"
[[area]]
name = "forming"
[[area.line]]
name = "press1"
[[device]]
name = "press"
driver = "modbus-tcp"
host = "127.0.0.1"
port = {port}
period_ms = 200
timeout_ms = 300
offline_after = 2
[[tag]]
device = "press"
location = "forming/press1"
name = "seconds"
datatype = "uint16"
address = "hr:100"
[[tag]]
device = "press"
location = "forming/press1"
name = "sine"
datatype = "float32"
address = "hr:110"
byte_order = "CDAB"
[[tag]]
device = "press"
location = "forming/press1"
name = "label"
datatype = "string"
address = "40131"
length = 16
[[tag]]
device = "press"
location = "forming/press1"
name = "tenfold"
datatype = "float64"
raw_type = "uint16"
address = "hr:100"
raw_low = 0
raw_high = 1
eng_low = 0
eng_high = 10
deadband = 15
[[tag]]
device = "press"
location = "forming/press1"
name = "setpoint"
datatype = "float32"
address = "hr:10"
writable = true
"#
    )
}

/// `sparkedge sim modbus` on `port`, killed when dropped.
fn start_sim(port: u16) -> KillOnDrop {
    KillOnDrop::spawn(
        Command::new(sparkedge_binary()).args([
            "sim",
            "modbus",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ]),
        "sparkedge sim modbus",
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn modbus_plc_to_sparkplug_and_back() {
    let plc_port = free_port();
    let sim = start_sim(plc_port);
    let data = tempfile::tempdir().expect("temp dir");
    import_model(data.path(), &model(plc_port));
    let exported = sparkedge(data.path(), &["export"]);
    assert!(
        exported.contains("address = \"hr:130\""),
        "classic address normalised:\n{exported}"
    );

    let app = Appliance::start(data.path(), &["--primary-host-id", HOST_ID]);
    let mut host = primary_host(app.mqtt_port, HOST_ID, "spBv1.0/plant-c/#").await;

    // The device is born once it has been read, with decoded values.
    let dbirth = host.next_where("DBIRTH", |m| m.topic == DBIRTH).await;
    let birth = decode(&dbirth);
    let metric = |name: &str| -> Metric {
        birth
            .metrics
            .iter()
            .find(|m| m.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{name} in DBIRTH"))
            .clone()
    };
    assert_eq!(
        metric("forming/press1/label").value,
        Some(Field::StringValue("SPARKEDGE SIM".into()))
    );
    match metric("forming/press1/sine").value {
        Some(Field::FloatValue(f)) => assert!((0.0..=100.0).contains(&f), "sine {f}"),
        other => panic!("sine: {other:?}"),
    }
    let setpoint_alias = metric("forming/press1/setpoint").alias;

    // A scaled tag: the register read once, ten times its value, with its engineering range.
    let seconds = match metric("forming/press1/seconds").value {
        Some(Field::IntValue(t)) => f64::from(t),
        other => panic!("seconds: {other:?}"),
    };
    let tenfold = metric("forming/press1/tenfold");
    assert_eq!(tenfold.value, Some(Field::DoubleValue(seconds * 10.0)));
    let props = tenfold.properties.clone().expect("properties");
    assert_eq!(props.keys, ["engLow", "engHigh"]);
    let double = |i: usize| match props.values[i].value {
        Some(sparkplug::proto::payload::property_value::Value::DoubleValue(v)) => v,
        ref other => panic!("engLow/engHigh as Double: {other:?}"),
    };
    assert_eq!((double(0), double(1)), (0.0, 10.0));
    // Its deadband of 15: it moves by 10 a second, so reports come at least 20 apart.
    let tenfold_alias = tenfold.alias;
    let mut reported = vec![seconds * 10.0];
    while reported.len() < 3 {
        let m = host.next_where("DDATA", |m| m.topic == DDATA).await;
        for x in decode(&m).metrics {
            if x.alias == tenfold_alias
                && let Some(Field::DoubleValue(v)) = x.value
            {
                reported.push(v);
            }
        }
    }
    for pair in reported.windows(2) {
        assert!(pair[1] - pair[0] >= 20.0, "reports {reported:?}");
    }

    // DCMD: the value lands in hr:10–11 (ABCD) and comes back as DDATA.
    let dcmd = Payload {
        timestamp: Some(now_ms()),
        metrics: vec![Metric {
            alias: setpoint_alias,
            value: Some(Field::FloatValue(12.5)),
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
                .any(|x| x.alias == setpoint_alias && x.value == Some(Field::FloatValue(12.5)))
    })
    .await;
    let addr = format!("127.0.0.1:{plc_port}").parse().expect("address");
    let mut client = tokio_modbus::client::tcp::connect(addr)
        .await
        .expect("connect to the PLC");
    let words = client
        .read_holding_registers(10, 2)
        .await
        .expect("transport")
        .expect("no exception");
    let bits = 12.5f32.to_bits();
    assert_eq!(words, [(bits >> 16) as u16, bits as u16]);
    drop(client);

    // The PLC goes away: DDEATH. It comes back: DBIRTH.
    drop(sim);
    host.next_where("DDEATH", |m| m.topic == DDEATH).await;
    let _sim = start_sim(plc_port);
    host.next_where("DBIRTH after the PLC returns", |m| m.topic == DBIRTH)
        .await;
}
