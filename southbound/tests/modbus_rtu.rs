//! Modbus RTU against the simulated PLC: on a real pseudo-terminal pair made by socat (the
//! driver on one end, the simulated units on the other), and over TCP to a simulated serial
//! gateway. Several units share each line; one of them never answers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use southbound::modbus::sim_server::{self, SimLine, SimPlc};
use southbound::modbus::{SerialLine, open_serial};
use southbound::{DeviceId, DriverEvent, DriverHandle, WriteCommand};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use uns_model::{
    Area, DataType, Device, DriverConfig, Line, Model, Namespace, Parity, Quality, SparkplugIds,
    Tag, TagId, Value,
};

const DEADLINE: Duration = Duration::from_secs(20);

/// A pseudo-terminal pair joined by socat, reachable as `a` and `b`; socat is killed on drop.
struct PtyPair {
    child: Child,
    a: PathBuf,
    b: PathBuf,
    _dir: tempfile::TempDir,
}

impl PtyPair {
    async fn new() -> PtyPair {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("A"), dir.path().join("B"));
        let end = |p: &Path| format!("pty,raw,echo=0,link={}", p.display());
        let child = Command::new("socat")
            .args(["-d", "-d", &end(&a), &end(&b)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("socat must be installed (apt-get install socat)");
        let pair = PtyPair {
            child,
            a,
            b,
            _dir: dir,
        };
        // socat creates the links once both terminals exist.
        let deadline = Instant::now() + DEADLINE;
        while !(pair.a.exists() && pair.b.exists()) {
            assert!(Instant::now() < deadline, "socat made no pty links");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        pair
    }
}

impl Drop for PtyPair {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn line(path: &Path) -> SerialLine {
    SerialLine {
        path: path.display().to_string(),
        baud: 115_200,
        parity: Parity::Even,
        data_bits: 8,
        stop_bits: 1,
        inter_frame_delay: SerialLine::default_inter_frame_delay(115_200),
    }
}

fn rtu(path: &Path, unit: u8) -> DriverConfig {
    DriverConfig::ModbusRtu {
        path: path.display().to_string(),
        baud: 115_200,
        parity: Parity::Even,
        data_bits: 8,
        stop_bits: 1,
        unit,
        inter_frame_delay_us: None,
        period_ms: 100,
        timeout_ms: 150,
        offline_after: 2,
        max_gap: 16,
    }
}

fn gateway(port: u16, unit: u8) -> DriverConfig {
    DriverConfig::ModbusRtuTcp {
        host: "127.0.0.1".into(),
        port,
        unit,
        period_ms: 100,
        timeout_ms: 150,
        offline_after: 2,
        max_gap: 16,
    }
}

fn tag(device: &str, address: &str, datatype: DataType, writable: bool) -> Tag {
    Tag {
        writable,
        ..Tag::new(
            device,
            "a/l",
            format!("{device}_{}", address.replace([':', '.'], "_")),
            datatype,
            address,
        )
    }
}

/// Devices `plc1`, `plc2`, … with the given drivers, each with three tags: its unit id
/// (hr:139), seconds since start (hr:100) and writable memory (hr:0). Tag `3·d + k` is tag
/// `k` of device `d`.
fn model(drivers: Vec<DriverConfig>) -> Model {
    let devices: Vec<Device> = drivers
        .into_iter()
        .enumerate()
        .map(|(i, driver)| Device {
            name: format!("plc{}", i + 1),
            enabled: true,
            driver,
        })
        .collect();
    let tags = devices
        .iter()
        .flat_map(|d| {
            [
                tag(&d.name, "hr:139", DataType::UInt16, false),
                tag(&d.name, "hr:100", DataType::UInt16, false),
                tag(&d.name, "hr:0", DataType::Int16, true),
            ]
        })
        .collect();
    Model {
        namespace: Namespace {
            enterprise: "e".into(),
            site: "s".into(),
        },
        sparkplug: SparkplugIds::default(),
        northbound: Vec::new(),
        scan_classes: Vec::new(),
        areas: vec![Area {
            name: "a".into(),
            lines: vec![Line {
                name: "l".into(),
                cells: Vec::new(),
            }],
        }],
        devices,
        tags,
    }
}

struct Drivers {
    events: mpsc::Receiver<DriverEvent>,
    handles: Vec<Option<DriverHandle>>,
}

impl Drivers {
    fn start(model: &Model) -> Drivers {
        let (tx, events) = mpsc::channel(256);
        let handles = southbound::spawn_model(model, None, tx);
        Drivers { events, handles }
    }

    /// The next event that `pick` accepts, within the deadline.
    async fn next<T>(&mut self, what: &str, mut pick: impl FnMut(&DriverEvent) -> Option<T>) -> T {
        tokio::time::timeout(DEADLINE, async {
            loop {
                let e = self.events.recv().await.expect("drivers running");
                if let Some(v) = pick(&e) {
                    return v;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {what} within {DEADLINE:?}"))
    }

    /// Waits for a good value of `tag` that `accept` takes.
    async fn value(&mut self, tag: u32, mut accept: impl FnMut(&Value) -> bool) -> Value {
        self.next(&format!("value of tag {tag}"), |e| match e {
            DriverEvent::Samples(s) => s
                .iter()
                .filter(|x| x.tag == TagId(tag) && x.quality == Quality::Good)
                .filter_map(|x| x.value.clone())
                .find(|v| accept(v)),
            _ => None,
        })
        .await
    }

    async fn write(&mut self, device: usize, tag: u32, value: Value) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.handles[device]
            .as_ref()
            .expect("device running")
            .write(WriteCommand {
                tag: TagId(tag),
                value,
                reply: Some(reply),
            })
            .expect("queue the write");
        tokio::time::timeout(DEADLINE, answer)
            .await
            .expect("write answered")
            .expect("reply")
    }
}

fn seconds(v: &Value) -> u16 {
    match v {
        Value::UInt16(t) => *t,
        other => panic!("uint16 expected, got {other:?}"),
    }
}

/// Units 1 and 2 answer; unit 3 is configured but absent. Checks values per unit, a write
/// landing at the right unit, and that the dead unit goes offline on its own while the
/// others keep updating and the dead one is asked less and less often.
async fn several_units_one_dead(model: &Model, plcs: &[Arc<SimPlc>], line: &SimLine) {
    let mut d = Drivers::start(model);
    let mut online = Vec::new();
    let mut offline = None;
    let mut stale = Vec::new();
    // Every unit's birth carries its own unit id, read from its own registers.
    let mut ids = [None, None];
    while online.len() < 2 || offline.is_none() || ids.contains(&None) {
        match d.next("unit status", |e| Some(e.clone())).await {
            DriverEvent::DeviceStatus {
                device,
                online: true,
                ..
            } => online.push(device),
            DriverEvent::DeviceStatus {
                device,
                online: false,
                error,
            } => {
                assert!(error.is_some_and(|e| e.contains("no answer")));
                offline = Some(device);
            }
            DriverEvent::Samples(samples) => {
                for s in &samples {
                    match (s.tag.0, &s.quality, &s.value) {
                        (0, Quality::Good, Some(v)) => ids[0] = Some(v.clone()),
                        (3, Quality::Good, Some(v)) => ids[1] = Some(v.clone()),
                        (6..=8, Quality::Stale, None) => stale.push(s.tag),
                        (6..=8, q, _) => panic!("unit 3 is absent, yet {s:?} ({q:?})"),
                        _ => {}
                    }
                }
            }
        }
    }
    online.sort_by_key(|d| d.0);
    assert_eq!(online, [DeviceId(0), DeviceId(1)]);
    assert_eq!(offline, Some(DeviceId(2)));
    assert_eq!(ids, [Some(Value::UInt16(1)), Some(Value::UInt16(2))]);
    assert_eq!(stale, [TagId(6), TagId(7), TagId(8)]);

    // The live units keep updating after the dead one went offline: their clocks advance.
    let t1 = seconds(&d.value(1, |_| true).await);
    let t2 = seconds(&d.value(4, |_| true).await);
    d.value(1, |v| seconds(v) > t1).await;
    d.value(4, |v| seconds(v) > t2).await;

    // A write lands in unit 2's memory only, and its read-back comes out.
    d.write(1, 5, Value::Int16(-42)).await.unwrap();
    assert_eq!(plcs[1].read_holding(0, 1), Ok(vec![(-42i16) as u16]));
    assert_eq!(plcs[0].read_holding(0, 1), Ok(vec![0]));
    d.value(5, |v| *v == Value::Int16(-42)).await;
    // A write to the silent unit is refused without costing the line a timeout.
    let err = d.write(2, 8, Value::Int16(1)).await.unwrap_err();
    assert!(err.contains("did not answer"), "{err}");

    // The dead unit is held back: while the live unit 1 is read 30 more times, unit 3 is
    // asked far fewer times than once per period.
    let asked_before = line.unanswered();
    let mut reads = 0;
    while reads < 30 {
        d.next("a read of unit 1", |e| match e {
            DriverEvent::Samples(s) => s.iter().any(|x| x.tag == TagId(1)).then_some(()),
            _ => None,
        })
        .await;
        reads += 1;
    }
    let asked = line.unanswered() - asked_before;
    assert!(asked <= 10, "unit 3 was asked {asked} times in 30 periods");
}

#[tokio::test]
async fn units_on_one_serial_line_share_it_and_a_dead_one_is_held_back() {
    let pty = PtyPair::new().await;
    let plcs = vec![
        Arc::new(SimPlc::with_unit(1)),
        Arc::new(SimPlc::with_unit(2)),
    ];
    let line_state = SimLine::new(plcs.clone());
    let port = open_serial(&line(&pty.b)).expect("open the simulator's end");
    let server = tokio::spawn(sim_server::serve_rtu(port, line_state.clone()));
    let m = model(vec![rtu(&pty.a, 1), rtu(&pty.a, 2), rtu(&pty.a, 3)]);
    m.validate().unwrap();
    several_units_one_dead(&m, &plcs, &line_state).await;
    server.abort();
}

#[tokio::test]
async fn units_behind_an_rtu_over_tcp_gateway_share_its_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let plcs = vec![
        Arc::new(SimPlc::with_unit(1)),
        Arc::new(SimPlc::with_unit(2)),
    ];
    let line_state = SimLine::new(plcs.clone());
    let server = tokio::spawn(sim_server::serve_rtu_over_tcp(listener, line_state.clone()));
    let m = model(vec![gateway(port, 1), gateway(port, 2), gateway(port, 3)]);
    m.validate().unwrap();
    several_units_one_dead(&m, &plcs, &line_state).await;
    server.abort();
}

#[tokio::test]
async fn a_serial_port_that_is_missing_makes_its_units_offline_not_the_process_fail() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("ttyUSB9");
    let m = model(vec![rtu(&missing, 1), rtu(&missing, 2)]);
    let mut d = Drivers::start(&m);
    let mut offline = Vec::new();
    while offline.len() < 2 {
        let (device, error) = d
            .next("offline status", |e| match e {
                DriverEvent::DeviceStatus {
                    device,
                    online: false,
                    error,
                } => Some((*device, error.clone())),
                _ => None,
            })
            .await;
        let error = error.unwrap_or_default();
        assert!(error.contains("cannot open serial port"), "{error}");
        offline.push(device);
    }
    offline.sort_by_key(|d| d.0);
    assert_eq!(offline, [DeviceId(0), DeviceId(1)]);
}
