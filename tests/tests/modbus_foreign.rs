//! Against a Modbus server none of us wrote: pymodbus (Debian's `python3-pymodbus`) serves
//! register images computed in Python from the byte-order names (`tests/fixtures/
//! pymodbus_server.py`). The appliance must decode every type in every order exactly, as a
//! Sparkplug host sees it in the DBIRTH, and a DCMD must land in pymodbus's registers.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use prost::Message as _;
use rumqttc::QoS;
use sparkplug::MetricValue;
use sparkplug::proto::payload::Metric as WireMetric;
use sparkplug::proto::payload::metric::Value as Field;
use system_tests::{
    Appliance, DEADLINE, KillOnDrop, free_port, import_model, now_ms, primary_host,
};
use tokio_modbus::client::Reader;

const HOST_ID: &str = "scada";
const DBIRTH: &str = "spBv1.0/plant-f/DBIRTH/edge-f/rig";
const DDATA: &str = "spBv1.0/plant-f/DDATA/edge-f/rig";
const DCMD: &str = "spBv1.0/plant-f/DCMD/edge-f/rig";

/// The pymodbus server process, killed when dropped.
fn start_pymodbus(port: u16) -> KillOnDrop {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pymodbus_server.py");
    // Debian's interpreter, where `apt-get install python3-pymodbus` puts the module (another
    // python3 may come first on PATH).
    KillOnDrop::spawn(
        Command::new("/usr/bin/python3")
            .arg(script)
            .arg(port.to_string())
            .stderr(Stdio::null()),
        "/usr/bin/python3 (apt-get install python3-pymodbus)",
    )
}

fn model(port: u16) -> String {
    let mut model = format!(
        r#"
[namespace]
enterprise = "acme"
site = "plant-f"
[sparkplug]
edge_node_id = "edge-f"
[[area]]
name = "lab"
[[area.line]]
name = "bench"
[[device]]
name = "rig"
driver = "modbus-tcp"
host = "127.0.0.1"
port = {port}
period_ms = 200
"#
    );
    for (name, datatype, address, extra) in TAGS {
        model += &format!(
            "[[tag]]\ndevice = \"rig\"\nlocation = \"lab/bench\"\nname = \"{name}\"\n\
             datatype = \"{datatype}\"\naddress = \"{address}\"\n{extra}\n"
        );
    }
    model
}

/// name, datatype, address, further settings: the map of `pymodbus_server.py`.
const TAGS: [(&str, &str, &str, &str); 17] = [
    ("u16", "uint16", "hr:0", ""),
    ("i16", "int16", "hr:1", ""),
    ("f32_abcd", "float32", "hr:2", "byte_order = \"ABCD\""),
    ("f32_cdab", "float32", "hr:4", "byte_order = \"CDAB\""),
    ("i32_badc", "int32", "hr:6", "byte_order = \"BADC\""),
    ("u32_dcba", "uint32", "hr:8", "byte_order = \"DCBA\""),
    (
        "f64_abcdefgh",
        "float64",
        "hr:10",
        "byte_order = \"ABCDEFGH\"",
    ),
    (
        "i64_ghefcdab",
        "int64",
        "hr:14",
        "byte_order = \"GHEFCDAB\"",
    ),
    (
        "u64_badcfehg",
        "uint64",
        "hr:18",
        "byte_order = \"BADCFEHG\"",
    ),
    (
        "f64_hgfedcba",
        "float64",
        "hr:22",
        "byte_order = \"HGFEDCBA\"",
    ),
    ("text", "string", "hr:26", "length = 6"),
    ("bit3", "bool", "hr:29.3", ""),
    ("target", "uint16", "hr:30", "writable = true"),
    ("ir0", "uint16", "ir:0", ""),
    ("coil0", "bool", "coil:0", ""),
    ("coil1", "bool", "coil:1", ""),
    ("di1", "bool", "di:1", ""),
];

#[tokio::test(flavor = "multi_thread")]
async fn values_from_pymodbus_decode_exactly_and_writes_land() {
    let plc_port = free_port();
    let _plc = start_pymodbus(plc_port);
    let addr = format!("127.0.0.1:{plc_port}").parse().expect("address");
    // pymodbus starts in its own time: wait until it answers a read.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let mut client = loop {
        if let Ok(mut c) = tokio_modbus::client::tcp::connect(addr).await
            && matches!(c.read_holding_registers(0, 1).await, Ok(Ok(_)))
        {
            break c;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "pymodbus did not answer on port {plc_port}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await; // retry pacing while it starts
    };

    let data = tempfile::tempdir().expect("temp dir");
    import_model(data.path(), &model(plc_port));
    let app = Appliance::start(data.path(), &["--primary-host-id", HOST_ID]);
    let mut host = primary_host(app.mqtt_port, HOST_ID, "spBv1.0/plant-f/#").await;

    let dbirth = host.next_where("DBIRTH", |m| m.topic == DBIRTH).await;
    let birth = sparkplug::Payload::decode(&dbirth.payload).expect("DBIRTH decodes");
    let value = |name: &str| -> Option<MetricValue> {
        let full = format!("lab/bench/{name}");
        birth
            .metrics
            .iter()
            .find(|m| m.name.as_deref() == Some(full.as_str()))
            .unwrap_or_else(|| panic!("{full} in DBIRTH"))
            .value
            .clone()
    };
    let expected = [
        ("u16", MetricValue::UInt16(1234)),
        ("i16", MetricValue::Int16(-1234)),
        ("f32_abcd", MetricValue::Float(12.5)),
        ("f32_cdab", MetricValue::Float(-3.75)),
        ("i32_badc", MetricValue::Int32(-123_456)),
        ("u32_dcba", MetricValue::UInt32(3_000_000_000)),
        ("f64_abcdefgh", MetricValue::Double(1234.5678)),
        ("i64_ghefcdab", MetricValue::Int64(-9_876_543_210)),
        ("u64_badcfehg", MetricValue::UInt64(12_345_678_901_234)),
        ("f64_hgfedcba", MetricValue::Double(-0.001)),
        ("text", MetricValue::String("PUMP01".into())),
        ("bit3", MetricValue::Boolean(true)),
        ("target", MetricValue::UInt16(0)),
        ("ir0", MetricValue::UInt16(42)),
        ("coil0", MetricValue::Boolean(true)),
        ("coil1", MetricValue::Boolean(false)),
        ("di1", MetricValue::Boolean(true)),
    ];
    for (name, want) in expected {
        assert_eq!(value(name), Some(want), "{name}");
    }

    // A DCMD by name lands in pymodbus's hr:30 and comes back as DDATA.
    let target_alias = birth
        .metrics
        .iter()
        .find(|m| m.name.as_deref() == Some("lab/bench/target"))
        .and_then(|m| m.alias);
    let dcmd = sparkplug::proto::Payload {
        timestamp: Some(now_ms()),
        metrics: vec![WireMetric {
            name: Some("lab/bench/target".into()),
            datatype: Some(6),
            value: Some(Field::IntValue(4321)),
            ..WireMetric::default()
        }],
        ..sparkplug::proto::Payload::default()
    };
    host.client
        .publish(DCMD, QoS::AtMostOnce, false, dcmd.encode_to_vec())
        .await
        .expect("publish DCMD");
    host.next_where("DDATA with the written value", |m| {
        m.topic == DDATA
            && sparkplug::proto::Payload::decode(m.payload.as_slice()).is_ok_and(|p| {
                p.metrics
                    .iter()
                    .any(|x| x.alias == target_alias && x.value == Some(Field::IntValue(4321)))
            })
    })
    .await;
    let written = client
        .read_holding_registers(30, 1)
        .await
        .expect("transport")
        .expect("no exception");
    assert_eq!(written, [4321]);
}
