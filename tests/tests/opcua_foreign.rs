//! Against an OPC UA server none of us wrote: asyncua, a pure-Python stack from PyPI
//! (`tests/fixtures/asyncua_server.py`), serving only Basic256Sha256 SignAndEncrypt and
//! trusting only the appliance's certificate. Trust is explicit on our side too: the server is
//! refused until `sparkedge opcua trust` names its thumbprint. Then every scalar type, a
//! DateTime and an Int32 array arrive in the DBIRTH with their Sparkplug types, their values
//! and the server's source timestamps; a bad
//! status arrives as bad quality; a subscription delivers changes; a DCMD lands in the server;
//! and a server that dies and comes back gives DDEATH, then DBIRTH.
//!
//! The interpreter is `$SPARKEDGE_TEST_PYTHON`, by default the venv `.ci/run` makes
//! (`/opt/sparkedge-test-python/bin/python`). Without it the test fails rather than skips:
//! a skipped test would pass CI having proved nothing.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use prost::Message as _;
use rumqttc::QoS;
use sparkplug::proto::payload::Metric as WireMetric;
use sparkplug::proto::payload::metric::Value as Field;
use sparkplug::{DataType, MetricValue, Payload, Quality};
use system_tests::{
    Appliance, DEADLINE, KillOnDrop, Message, free_port, import_model, now_ms, primary_host,
    sparkedge,
};
use tokio::sync::mpsc;

const HOST_ID: &str = "scada";
const NBIRTH: &str = "spBv1.0/plant-u/NBIRTH/edge-u";
const DBIRTH: &str = "spBv1.0/plant-u/DBIRTH/edge-u/boiler";
const DDEATH: &str = "spBv1.0/plant-u/DDEATH/edge-u/boiler";
const DDATA: &str = "spBv1.0/plant-u/DDATA/edge-u/boiler";
const DCMD: &str = "spBv1.0/plant-u/DCMD/edge-u/boiler";
const NAMESPACE: &str = "urn:sparkedge:test:asyncua";
const DEFAULT_PYTHON: &str = "/opt/sparkedge-test-python/bin/python";

/// The fixture's SOURCE_TIME_MS: the source timestamp of the first fixed node; each next one
/// is a second later, the faulty sensor's a second earlier.
const SOURCE_TIME_MS: u64 = 1_777_777_777_123;

/// The driver retries an unreachable or untrusted server with back-off up to 30 s: a birth
/// after trusting or restarting may wait out one such delay on top of connecting.
const RECONNECT_DEADLINE: Duration = Duration::from_secs(45);

/// Tag name, model datatype, node (`s=` identifier), Sparkplug type, value: the fixture's
/// FIXED, in its order (the order gives each its source timestamp).
fn fixed() -> Vec<(
    &'static str,
    &'static str,
    &'static str,
    DataType,
    MetricValue,
)> {
    vec![
        (
            "boolean",
            "bool",
            "Scalar.Boolean",
            DataType::Boolean,
            MetricValue::Boolean(true),
        ),
        (
            "sbyte",
            "int8",
            "Scalar.SByte",
            DataType::Int8,
            MetricValue::Int8(-100),
        ),
        (
            "byte",
            "uint8",
            "Scalar.Byte",
            DataType::UInt8,
            MetricValue::UInt8(200),
        ),
        (
            "int16",
            "int16",
            "Scalar.Int16",
            DataType::Int16,
            MetricValue::Int16(-1234),
        ),
        (
            "uint16",
            "uint16",
            "Scalar.UInt16",
            DataType::UInt16,
            MetricValue::UInt16(54321),
        ),
        (
            "int32",
            "int32",
            "Scalar.Int32",
            DataType::Int32,
            MetricValue::Int32(-123_456),
        ),
        (
            "uint32",
            "uint32",
            "Scalar.UInt32",
            DataType::UInt32,
            MetricValue::UInt32(3_000_000_000),
        ),
        (
            "int64",
            "int64",
            "Scalar.Int64",
            DataType::Int64,
            MetricValue::Int64(-9_876_543_210),
        ),
        (
            "uint64",
            "uint64",
            "Scalar.UInt64",
            DataType::UInt64,
            MetricValue::UInt64(18_000_000_000_000_000_000),
        ),
        (
            "float",
            "float32",
            "Scalar.Float",
            DataType::Float,
            MetricValue::Float(12.5),
        ),
        (
            "double",
            "float64",
            "Scalar.Double",
            DataType::Double,
            MetricValue::Double(1234.5678),
        ),
        (
            "string",
            "string",
            "Scalar.String",
            DataType::String,
            MetricValue::String("Grüße, Kessel 3".into()),
        ),
        (
            "datetime",
            "datetime",
            "Scalar.DateTime",
            DataType::DateTime,
            // 2026-03-01T06:30:00.123Z
            MetricValue::DateTime(1_772_346_600_123),
        ),
        (
            "int32_array",
            "int32[]",
            "Array.Int32",
            DataType::Int32Array,
            MetricValue::Int32Array(vec![i32::MIN, -1, 0, 7, i32::MAX]),
        ),
    ]
}

fn model(port: u16) -> String {
    let mut text = format!(
        r#"
[namespace]
enterprise = "acme"
site = "plant-u"
[sparkplug]
edge_node_id = "edge-u"
[[area]]
name = "utilities"
[[area.line]]
name = "boiler3"
[[device]]
name = "boiler"
driver = "opc-ua"
endpoint = "opc.tcp://127.0.0.1:{port}/"
security_policy = "basic256sha256"
security_mode = "sign-and-encrypt"
period_ms = 100
timeout_ms = 3000
"#
    );
    let mut tags: Vec<(&str, &str, &str, bool)> = fixed()
        .into_iter()
        .map(|(name, datatype, node, _, _)| (name, datatype, node, false))
        .collect();
    tags.push(("sensor", "float64", "Faulty.Sensor", false));
    tags.push(("setpoint", "float64", "Writable.Setpoint", true));
    tags.push(("counter", "int32", "Changing.Counter", false));
    for (name, datatype, node, writable) in tags {
        text.push_str(&format!(
            r#"[[tag]]
device = "boiler"
location = "utilities/boiler3"
name = "{name}"
datatype = "{datatype}"
address = "nsu={NAMESPACE};s={node}"
writable = {writable}
"#
        ));
    }
    text
}

/// The Python interpreter with asyncua; fails the test, with what to do, when it is missing.
fn python() -> PathBuf {
    let python = PathBuf::from(
        std::env::var_os("SPARKEDGE_TEST_PYTHON").unwrap_or_else(|| DEFAULT_PYTHON.into()),
    );
    let setup = "create it as .ci/run does: python3 -m venv /opt/sparkedge-test-python && \
                 /opt/sparkedge-test-python/bin/pip install asyncua==2.1.0 (or point \
                 SPARKEDGE_TEST_PYTHON at an interpreter that has asyncua 2.1.0)";
    let probe = Command::new(&python)
        .args(["-c", "import asyncua"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {setup}", python.display()));
    assert!(
        probe.status.success(),
        "{} cannot import asyncua: {}; {setup}",
        python.display(),
        String::from_utf8_lossy(&probe.stderr).trim()
    );
    python
}

/// The asyncua server process (killed when dropped) and the lines it prints.
struct AsyncuaServer {
    _process: KillOnDrop,
    lines: mpsc::UnboundedReceiver<String>,
    /// Its standard error (asyncua's log), shown when the server does not do what is awaited.
    log: PathBuf,
}

impl AsyncuaServer {
    /// Starts the fixture on `port` with its certificate in `cert_dir`, trusting the client
    /// certificate `trusted_client`, and waits until it listens.
    async fn start(
        python: &Path,
        port: u16,
        cert_dir: &Path,
        trusted_client: &Path,
    ) -> AsyncuaServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/asyncua_server.py");
        let log = cert_dir
            .parent()
            .unwrap_or(cert_dir)
            .join(format!("asyncua-{}.log", now_ms()));
        let stderr = std::fs::File::create(&log).expect("create the server's log file");
        let mut child = Command::new(python)
            .arg(script)
            .arg(port.to_string())
            .arg(cert_dir)
            .arg(trusted_client)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", python.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        // A blocking reader of its own: it ends when the process dies and closes the pipe.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = AsyncuaServer {
            _process: KillOnDrop(child),
            lines,
            log,
        };
        server
            .line_where("the server's ready line", |l| l.starts_with("ready "))
            .await;
        server
    }

    /// The next line printed that satisfies `filter`, skipping others.
    async fn line_where(&mut self, what: &str, filter: impl Fn(&str) -> bool) -> String {
        let wait = async {
            while let Some(line) = self.lines.recv().await {
                if filter(&line) {
                    return Some(line);
                }
            }
            None // the process ended
        };
        match tokio::time::timeout(DEADLINE, wait).await {
            Ok(Some(line)) => line,
            outcome => panic!(
                "no {what} from the asyncua server ({}); its log:\n{}",
                if outcome.is_ok() {
                    "it exited"
                } else {
                    "deadline passed"
                },
                std::fs::read_to_string(&self.log).unwrap_or_default()
            ),
        }
    }
}

/// The thumbprints listed under a heading of `sparkedge opcua certificates`
/// (`trusted server certificates: N`, `rejected server certificates: N`).
fn listed(certificates: &str, heading: &str) -> Vec<String> {
    certificates
        .lines()
        .skip_while(|l| !l.starts_with(heading))
        .skip(1)
        .take_while(|l| l.starts_with(' ') || l.is_empty())
        .filter_map(|l| l.trim().strip_prefix("thumbprint"))
        .map(|t| t.trim().to_owned())
        .collect()
}

fn metric<'a>(payload: &'a Payload, name: &str) -> &'a sparkplug::Metric {
    let full = format!("utilities/boiler3/{name}");
    payload
        .metrics
        .iter()
        .find(|m| m.name.as_deref() == Some(full.as_str()))
        .unwrap_or_else(|| panic!("{full} in the DBIRTH"))
}

/// A DDATA payload, its metrics typed by their alias in `birth` (DATA metrics carry no
/// datatype of their own).
fn decode_data(m: &Message, birth: &Payload) -> Payload {
    Payload::decode_with(&m.payload, |_, alias| {
        birth
            .metrics
            .iter()
            .find(|b| b.alias.is_some() && b.alias == alias)
            .and_then(|b| b.datatype)
    })
    .unwrap_or_else(|e| panic!("{} does not decode: {e}", m.topic))
}

fn quality(m: &sparkplug::Metric) -> Option<Quality> {
    m.properties.as_ref().and_then(|p| p.quality())
}

/// Everything the DBIRTH says about the server's nodes.
fn check_birth(message: &Message) -> Payload {
    let birth = Payload::decode(&message.payload).expect("the DBIRTH decodes");
    for (k, (name, _, _, datatype, value)) in fixed().into_iter().enumerate() {
        let m = metric(&birth, name);
        assert_eq!(m.datatype, Some(datatype), "{name}: Sparkplug datatype");
        assert_eq!(m.value, Some(value), "{name}: value");
        assert_eq!(
            m.timestamp,
            Some(SOURCE_TIME_MS + k as u64 * 1000),
            "{name}: the metric's timestamp is the node's source timestamp"
        );
        // Hosts take a metric without the Quality property as good.
        assert!(
            matches!(quality(m), None | Some(Quality::Good)),
            "{name}: quality {:?}",
            quality(m)
        );
    }

    let sensor = metric(&birth, "sensor");
    assert_eq!(sensor.datatype, Some(DataType::Double), "sensor: datatype");
    assert_eq!(
        quality(sensor),
        Some(Quality::Bad),
        "BadSensorFailure is bad quality"
    );
    assert_eq!(sensor.value, None, "a bad value is published as null");
    assert_eq!(
        sensor.timestamp,
        Some(SOURCE_TIME_MS - 1000),
        "sensor: the bad value's source timestamp"
    );

    let counter = metric(&birth, "counter");
    assert_eq!(counter.datatype, Some(DataType::Int32), "counter: datatype");
    assert!(
        matches!(counter.value, Some(MetricValue::Int32(n)) if n >= 0),
        "counter: {:?}",
        counter.value
    );
    birth
}

#[tokio::test(flavor = "multi_thread")]
async fn values_from_asyncua_arrive_typed_with_quality_and_source_time() {
    let python = python();
    let data = tempfile::tempdir().expect("temp dir");
    let server_files = tempfile::tempdir().expect("temp dir");
    let cert_dir = server_files.path().join("pki");
    let port = free_port();
    import_model(data.path(), &model(port));

    // Our certificate, made now, is what the server is told to trust.
    let ours = sparkedge(data.path(), &["opcua", "certificates"]);
    let our_cert = ours
        .lines()
        .find_map(|l| l.trim().strip_prefix("file"))
        .map(|p| PathBuf::from(p.trim()))
        .unwrap_or_else(|| panic!("no certificate file in:\n{ours}"));
    assert!(our_cert.is_file(), "{}", our_cert.display());

    let mut server = AsyncuaServer::start(&python, port, &cert_dir, &our_cert).await;
    let announced = server
        .line_where("the server's certificate line", |l| {
            l.starts_with("certificate ")
        })
        .await;
    let thumbprint = announced
        .split_whitespace()
        .nth(1)
        .expect("a thumbprint")
        .to_owned();

    let app = Appliance::start(data.path(), &["--primary-host-id", HOST_ID]);
    let mut host = primary_host(app.mqtt_port, HOST_ID, "spBv1.0/plant-u/#").await;
    host.next_where("NBIRTH", |m| m.topic == NBIRTH).await;

    // We do not know the server: its certificate is refused and waits among the rejected,
    // with the thumbprint the server itself computes.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let listing = sparkedge(data.path(), &["opcua", "certificates"]);
        let rejected = listed(&listing, "rejected server certificates");
        if rejected.contains(&thumbprint) {
            assert!(
                listed(&listing, "trusted server certificates").is_empty(),
                "{listing}"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server's certificate {thumbprint} was not refused within {DEADLINE:?}:\n{listing}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await; // pacing a poll of the folder
    }
    let early: Vec<String> = host
        .received()
        .into_iter()
        .map(|m| m.topic)
        .filter(|t| t == DBIRTH)
        .collect();
    assert!(early.is_empty(), "born from an untrusted server: {early:?}");

    let trusted = sparkedge(data.path(), &["opcua", "trust", &thumbprint]);
    assert!(trusted.contains(&thumbprint), "{trusted}");

    // Trusted: the driver connects at its next attempt and the device is born.
    let dbirth = host
        .next_where_within("DBIRTH once trusted", RECONNECT_DEADLINE, |m| {
            m.topic == DBIRTH
        })
        .await;
    let birth = check_birth(&dbirth);
    let setpoint = metric(&birth, "setpoint").clone();
    assert_eq!(setpoint.datatype, Some(DataType::Double));
    assert_eq!(setpoint.value, Some(MetricValue::Double(1.5)));
    let counter_alias = metric(&birth, "counter").alias;

    // The subscription delivers the counter's changes, each stamped with its own source
    // time, in order.
    let mut seen: Vec<(i32, u64)> = Vec::new();
    while seen.len() < 2 {
        let m = host
            .next_where("DDATA with the counter", |m| m.topic == DDATA)
            .await;
        let data = decode_data(&m, &birth);
        for c in data.metrics.iter().filter(|x| x.alias == counter_alias) {
            let Some(MetricValue::Int32(n)) = c.value else {
                panic!("counter: {:?}", c.value);
            };
            seen.push((n, c.timestamp.expect("a timestamp on every metric")));
        }
    }
    assert!(
        seen.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 < w[1].1),
        "counter values and source times rise together: {seen:?}"
    );

    // DCMD: asyncua receives the write as a Double, and the value read back is published.
    let dcmd = sparkplug::proto::Payload {
        timestamp: Some(now_ms()),
        metrics: vec![WireMetric {
            alias: setpoint.alias,
            datatype: Some(DataType::Double.code()),
            value: Some(Field::DoubleValue(42.25)),
            ..WireMetric::default()
        }],
        ..sparkplug::proto::Payload::default()
    };
    host.client
        .publish(DCMD, QoS::AtMostOnce, false, dcmd.encode_to_vec())
        .await
        .expect("publish DCMD");
    let write = server
        .line_where("the write of the setpoint", |l| l.starts_with("write "))
        .await;
    let fields: Vec<&str> = write.split_whitespace().collect();
    assert!(
        fields.len() == 5
            && fields[1].ends_with(";s=Writable.Setpoint")
            && fields[2..] == ["Double", "42.25", "Good"],
        "asyncua received: {write}"
    );
    host.next_where("DDATA with the written setpoint", |m| {
        m.topic == DDATA
            && decode_data(m, &birth)
                .metrics
                .iter()
                .any(|x| x.alias == setpoint.alias && x.value == Some(MetricValue::Double(42.25)))
    })
    .await;

    // The server dies: DDEATH. It comes back on the same port with the same certificate,
    // still trusted: DBIRTH again, from a fresh address space.
    drop(server);
    host.next_where("DDEATH", |m| m.topic == DDEATH).await;
    let _server = AsyncuaServer::start(&python, port, &cert_dir, &our_cert).await;
    let reborn = host
        .next_where_within("DBIRTH after the server returns", RECONNECT_DEADLINE, |m| {
            m.topic == DBIRTH
        })
        .await;
    let birth = check_birth(&reborn);
    assert_eq!(
        metric(&birth, "setpoint").value,
        Some(MetricValue::Double(1.5)),
        "the restarted server's own setpoint"
    );
}
