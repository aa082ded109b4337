//! Modbus RTU across process boundaries: `sparkedge sim modbus --rtu` serves units 1 and 2
//! on one end of a socat pseudo-terminal pair, the appliance polls three devices on the
//! other end (unit 3 is absent), and a Sparkplug host and a UNS subscriber watch.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use prost::Message as _;
use rumqttc::{LastWill, QoS};
use sparkplug::proto::Payload;
use sparkplug::proto::payload::Metric;
use sparkplug::proto::payload::metric::Value as Field;
use system_tests::{
    Appliance, DEADLINE, KillOnDrop, Observer, decode, free_port, import_model, now_ms,
    sparkedge_binary,
};

/// A pseudo-terminal pair joined by socat, as `a` and `b`; socat is killed on drop.
struct PtyPair {
    child: Child,
    a: PathBuf,
    b: PathBuf,
    _dir: tempfile::TempDir,
}

impl PtyPair {
    fn new() -> PtyPair {
        let dir = tempfile::tempdir().expect("temp dir");
        let (a, b) = (dir.path().join("A"), dir.path().join("B"));
        let end = |p: &Path| format!("pty,raw,echo=0,link={}", p.display());
        let child = Command::new("socat")
            .args(["-d", "-d", &end(&a), &end(&b)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat must be installed (apt-get install socat)");
        let deadline = Instant::now() + DEADLINE;
        while !(a.exists() && b.exists()) {
            assert!(Instant::now() < deadline, "socat made no pty links");
            std::thread::sleep(Duration::from_millis(10)); // polling for the links, not synchronising
        }
        PtyPair {
            child,
            a,
            b,
            _dir: dir,
        }
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn model(path: &Path) -> String {
    let device = |name: &str, unit: u8| {
        format!(
            "[[device]]\nname = \"{name}\"\ndriver = \"modbus-rtu\"\npath = \"{}\"\nbaud = 115200\n\
             unit = {unit}\nperiod_ms = 200\ntimeout_ms = 200\noffline_after = 2\n",
            path.display()
        )
    };
    let tag = |device: &str, name: &str, datatype: &str, address: &str, writable: bool| {
        format!(
            "[[tag]]\ndevice = \"{device}\"\nlocation = \"utilities/meters\"\nname = \"{name}\"\n\
             datatype = \"{datatype}\"\naddress = \"{address}\"\nwritable = {writable}\n"
        )
    };
    let mut text = "[namespace]\nenterprise = \"acme\"\nsite = \"plant-r\"\n[sparkplug]\n\
                    edge_node_id = \"edge-r\"\n[[area]]\nname = \"utilities\"\n[[area.line]]\n\
                    name = \"meters\"\n"
        .to_owned();
    for (name, unit) in [("meter1", 1), ("meter2", 2), ("meter3", 3)] {
        text += &device(name, unit);
    }
    for name in ["meter1", "meter2", "meter3"] {
        text += &tag(name, &format!("{name}_unit"), "uint16", "hr:139", false);
        text += &tag(name, &format!("{name}_seconds"), "uint16", "hr:100", false);
    }
    text += &tag("meter2", "meter2_setpoint", "int16", "hr:0", true);
    text
}

fn metric(p: &Payload, name: &str) -> Metric {
    p.metrics
        .iter()
        .find(|m| m.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("{name} in the birth"))
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn rtu_units_on_one_line_to_sparkplug_and_uns() {
    let pty = PtyPair::new();
    let _sim = KillOnDrop::spawn(
        Command::new(sparkedge_binary())
            .args([
                "sim",
                "modbus",
                "--listen",
                &format!("127.0.0.1:{}", free_port()),
            ])
            .arg("--rtu")
            .arg(&pty.b)
            .args(["--units", "1,2", "--baud", "115200"]),
        "sparkedge sim modbus --rtu",
    );
    let data = tempfile::tempdir().expect("temp dir");
    import_model(data.path(), &model(&pty.a));

    // Births wait for the Primary Host, so the host sees them whenever it subscribes.
    let app = Appliance::start(data.path(), &["--primary-host-id", "scada"]);
    let state = |online: bool| format!(r#"{{"online":{online},"timestamp":{}}}"#, now_ms());
    let will = LastWill::new("spBv1.0/STATE/scada", state(false), QoS::AtLeastOnce, true);
    let mut host = Observer::connect(app.mqtt_port, "scada", Some(will)).await;
    host.subscribe("spBv1.0/plant-r/#").await;
    let mut uns = Observer::connect(app.mqtt_port, "uns", None).await;
    uns.subscribe("acme/plant-r/utilities/meters/meter3_unit")
        .await;
    host.client
        .publish("spBv1.0/STATE/scada", QoS::AtLeastOnce, true, state(true))
        .await
        .expect("publish STATE");

    // Each live unit is born with its own unit id, read from its own registers.
    let mut setpoint_alias = None;
    for (device, unit) in [("meter1", 1u32), ("meter2", 2)] {
        let topic = format!("spBv1.0/plant-r/DBIRTH/edge-r/{device}");
        let birth = decode(&host.next_where("DBIRTH", |m| m.topic == topic).await);
        let id = metric(&birth, &format!("utilities/meters/{device}_unit"));
        assert_eq!(id.value, Some(Field::IntValue(unit)), "{device}");
        if device == "meter2" {
            setpoint_alias = metric(&birth, "utilities/meters/meter2_setpoint").alias;
        }
    }

    // The absent unit's tags are stale in the UNS.
    let stale = uns
        .next_where("stale meter3", |m| {
            String::from_utf8_lossy(&m.payload).contains("\"quality\":\"stale\"")
        })
        .await;
    assert!(stale.topic.ends_with("meter3_unit"), "{}", stale.topic);

    // A DCMD lands at unit 2 and comes back as DDATA.
    let dcmd = Payload {
        timestamp: Some(now_ms()),
        metrics: vec![Metric {
            alias: setpoint_alias,
            value: Some(Field::IntValue((-7i32) as u32)),
            ..Metric::default()
        }],
        ..Payload::default()
    };
    host.client
        .publish(
            "spBv1.0/plant-r/DCMD/edge-r/meter2",
            QoS::AtMostOnce,
            false,
            dcmd.encode_to_vec(),
        )
        .await
        .expect("publish DCMD");
    host.next_where("DDATA with the setpoint", |m| {
        m.topic == "spBv1.0/plant-r/DDATA/edge-r/meter2"
            && decode(m).metrics.iter().any(|x| {
                x.alias == setpoint_alias && x.value == Some(Field::IntValue((-7i32) as u32))
            })
    })
    .await;

    // Unit 1 keeps reporting while unit 3 stays silent.
    host.next_where("DDATA of meter1", |m| {
        m.topic == "spBv1.0/plant-r/DDATA/edge-r/meter1"
    })
    .await;
}
