//! The OPC UA driver against the simulated OPC UA server (async-opcua's server) over TCP on
//! 127.0.0.1: values of every type, subscription updates, writes, and a server restart.

use std::time::Duration;

use southbound::opcua::sim_server::{NAMESPACE_URI, SimConfig, SimServer, bulk_name, node_name};
use southbound::{DeviceId, DriverEvent, WriteCommand};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout};
use uns_model::{Array, DataType, Device, DriverConfig, Quality, Tag, TagId, TagSample, Value};

const DEADLINE: Duration = Duration::from_secs(20);

async fn start_sim(listener: TcpListener, tick: Duration, pki: &std::path::Path) -> SimServer {
    let config = SimConfig {
        tick,
        // Lower than the number of tags, so the driver must create its items in batches.
        max_monitored_items_per_call: 5,
        pki_dir: pki.to_owned(),
        ..SimConfig::default()
    };
    SimServer::start(listener, config).await.unwrap()
}

fn device(port: u16) -> Device {
    Device {
        name: "plc".into(),
        enabled: true,
        driver: with_opcua(
            DriverConfig::opc_ua(format!("opc.tcp://127.0.0.1:{port}/")),
            |period_ms, timeout_ms| {
                *period_ms = 50;
                *timeout_ms = 2000;
            },
        ),
    }
}

/// `driver` with its period and timeout edited.
fn with_opcua(mut driver: DriverConfig, edit: impl FnOnce(&mut u32, &mut u32)) -> DriverConfig {
    if let DriverConfig::OpcUa {
        period_ms,
        timeout_ms,
        ..
    } = &mut driver
    {
        edit(period_ms, timeout_ms);
    }
    driver
}

/// `float32[]` as a tag name: `float32_array`.
fn name_of(dt: DataType) -> String {
    dt.as_str().replace("[]", "_array")
}

/// Changing.<Type> by namespace URI, Writable.<Type> by index, then special cases.
fn tags(ns: u16) -> Vec<Tag> {
    let mut tags = Vec::new();
    for dt in DataType::ALL {
        let address = format!("nsu={NAMESPACE_URI};s={}", node_name("Changing", dt));
        tags.push(Tag::new(
            "plc",
            "a/l",
            format!("changing_{}", name_of(dt)),
            dt,
            address,
        ));
    }
    for dt in DataType::ALL {
        let address = format!("ns={ns};s={}", node_name("Writable", dt));
        tags.push(Tag {
            writable: true,
            ..Tag::new(
                "plc",
                "a/l",
                format!("writable_{}", name_of(dt)),
                dt,
                address,
            )
        });
    }
    tags
}

/// Index of the first tag after the per-type ones.
const EXTRA: usize = 2 * DataType::ALL.len();

struct Driver {
    events: mpsc::Receiver<DriverEvent>,
    handle: southbound::DriverHandle,
}

impl Driver {
    fn start(device: &Device, tags: &[Tag]) -> Driver {
        let (tx, events) = mpsc::channel(256);
        let tags: Vec<(TagId, &Tag)> = tags
            .iter()
            .enumerate()
            .map(|(i, t)| (TagId(i as u32), t))
            .collect();
        let handle = southbound::spawn(DeviceId(0), device, &tags, &Default::default(), tx);
        Driver { events, handle }
    }

    async fn next(&mut self, deadline: Instant) -> DriverEvent {
        timeout(
            deadline.saturating_duration_since(Instant::now()),
            self.events.recv(),
        )
        .await
        .expect("no driver event before the deadline")
        .expect("driver stopped")
    }

    /// Samples until the device reports `online`, which must come before the deadline.
    async fn until_status(&mut self, online: bool) -> Vec<TagSample> {
        let deadline = Instant::now() + DEADLINE;
        let mut samples = Vec::new();
        loop {
            match self.next(deadline).await {
                DriverEvent::Samples(s) => samples.extend(s),
                DriverEvent::DeviceStatus { online: o, .. } if o == online => return samples,
                DriverEvent::DeviceStatus { .. } => {}
            }
        }
    }

    /// Samples until one satisfies `done` (returned last).
    async fn until(&mut self, mut done: impl FnMut(&TagSample) -> bool) -> Vec<TagSample> {
        let deadline = Instant::now() + DEADLINE;
        let mut samples = Vec::new();
        loop {
            match self.next(deadline).await {
                DriverEvent::Samples(s) => {
                    for s in s {
                        let stop = done(&s);
                        samples.push(s);
                        if stop {
                            return samples;
                        }
                    }
                }
                DriverEvent::DeviceStatus { online, error, .. } => {
                    panic!("unexpected device status online={online} {error:?}")
                }
            }
        }
    }

    async fn write(&mut self, tag: usize, value: Value) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.handle
            .write(WriteCommand {
                tag: TagId(tag as u32),
                value,
                reply: Some(reply),
            })
            .unwrap();
        timeout(DEADLINE, answer).await.unwrap().unwrap()
    }
}

fn sample_value(dt: DataType) -> Value {
    match dt {
        DataType::Bool => Value::Bool(true),
        DataType::Int8 => Value::Int8(-7),
        DataType::Int16 => Value::Int16(-1234),
        DataType::Int32 => Value::Int32(-123_456),
        DataType::Int64 => Value::Int64(-1 << 40),
        DataType::UInt8 => Value::UInt8(200),
        DataType::UInt16 => Value::UInt16(60_000),
        DataType::UInt32 => Value::UInt32(4_000_000_000),
        DataType::UInt64 => Value::UInt64(u64::MAX - 1),
        DataType::Float32 => Value::Float32(21.5),
        DataType::Float64 => Value::Float64(-0.125),
        DataType::String => Value::String("läuft".into()),
        DataType::DateTime => Value::DateTime(1_772_346_600_123),
        // Three elements where the server starts with four: the length may change too.
        array => {
            let element = array.element();
            let mut a = Array::with_capacity(array, 3);
            for v in [
                sample_value(element),
                Value::zero(element),
                sample_value(element),
            ] {
                a.push(v).unwrap();
            }
            a.into()
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_arrives_changes_and_writes_land() {
    let pki = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let sim = start_sim(listener, Duration::from_millis(100), pki.path()).await;
    let ns = sim.namespace();
    let mut tags = tags(ns);
    // A node the server does not have, and a read-only node the model calls writable.
    tags.push(Tag::new(
        "plc",
        "a/l",
        "missing",
        DataType::Int32,
        format!("ns={ns};s=Nope"),
    ));
    tags.push(Tag {
        writable: true,
        ..Tag::new(
            "plc",
            "a/l",
            "read_only",
            DataType::Int32,
            format!("ns={ns};s={}", node_name("Changing", DataType::Int32)),
        )
    });
    let mut driver = Driver::start(&device(port), &tags);

    // The birth carries a good value of the right type for every node that exists.
    let birth = driver.until_status(true).await;
    for (k, tag) in tags.iter().enumerate().take(EXTRA) {
        let s = birth
            .iter()
            .find(|s| s.tag.index() == k)
            .unwrap_or_else(|| panic!("no value for {} in the birth", tag.name));
        assert_eq!(s.quality, Quality::Good, "{}", tag.name);
        let v = s.value.as_ref().unwrap();
        assert_eq!(v.datatype(), tag.datatype, "{}", tag.name);
        // A source timestamp of the server's (now-ish), not zero.
        assert!(s.timestamp_ms > 1_700_000_000_000, "{}", tag.name);
    }
    let missing = birth.iter().find(|s| s.tag.index() == EXTRA).unwrap();
    assert_eq!((missing.quality, &missing.value), (Quality::Bad, &None));

    // Subscription updates: every changing variable takes a second, different value.
    let mut first: Vec<Option<Value>> = (0..DataType::ALL.len())
        .map(|k| {
            birth
                .iter()
                .find(|s| s.tag.index() == k)
                .and_then(|s| s.value.clone())
        })
        .collect();
    let mut changed = vec![false; DataType::ALL.len()];
    driver
        .until(|s| {
            let k = s.tag.index();
            if let Some(v) = &s.value
                && k < changed.len()
                && s.value != first[k]
            {
                assert_eq!(v.datatype(), DataType::ALL[k]);
                changed[k] = true;
                first[k] = None;
            }
            changed.iter().all(|c| *c)
        })
        .await;

    // A write of every type lands, and the value read back is published.
    for (i, dt) in DataType::ALL.into_iter().enumerate() {
        let k = DataType::ALL.len() + i;
        let value = sample_value(dt);
        driver.write(k, value.clone()).await.unwrap();
        driver
            .until(|s| s.tag.index() == k && s.value.as_ref() == Some(&value))
            .await;
    }

    // The server's refusal comes back with its status code's name.
    let err = driver.write(EXTRA + 1, Value::Int32(5)).await.unwrap_err();
    assert!(err.contains("refused") && err.contains("Bad"), "{err}");
    // Writes the model forbids or cannot type never reach the server.
    let err = driver.write(0, Value::Bool(true)).await.unwrap_err();
    assert!(err.contains("not writable"), "{err}");
    let err = driver
        .write(DataType::ALL.len(), Value::Int32(1))
        .await
        .unwrap_err();
    assert!(err.contains("int32") && err.contains("bool"), "{err}");
    // An array of the wrong element type is refused as a whole.
    let float32_array = DataType::ALL.len()
        + DataType::ALL
            .iter()
            .position(|d| *d == DataType::Float32Array)
            .unwrap();
    let err = driver
        .write(float32_array, Array::Float64(vec![1.0]).into())
        .await
        .unwrap_err();
    assert!(
        err.contains("float64[]") && err.contains("float32[]"),
        "{err}"
    );
    drop(sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_variables_change_every_tick() {
    let pki = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = SimConfig {
        tick: Duration::from_millis(100),
        pki_dir: pki.path().to_owned(),
        bulk: 200,
        ..SimConfig::default()
    };
    let sim = SimServer::start(listener, config).await.unwrap();
    let tags: Vec<Tag> = [0, 199]
        .into_iter()
        .map(|k| {
            let address = format!("ns={};s={}", sim.namespace(), bulk_name(k));
            Tag::new(
                "plc",
                "a/l",
                format!("bulk_{k}"),
                DataType::Float64,
                address,
            )
        })
        .collect();
    let mut driver = Driver::start(&device(port), &tags);
    let birth = driver.until_status(true).await;
    let mut last: Vec<Option<Value>> = (0..2)
        .map(|k| {
            birth
                .iter()
                .find(|s| s.tag.index() == k)
                .and_then(|s| s.value.clone())
        })
        .collect();
    assert!(last.iter().all(Option::is_some), "{birth:?}");
    // Both the first and the last bulk variable move on from their birth value.
    let mut moved = [false; 2];
    driver
        .until(|s| {
            let k = s.tag.index();
            if s.value.is_some() && s.value != last[k] {
                moved[k] = true;
                last[k] = None;
            }
            moved.iter().all(|m| *m)
        })
        .await;
    drop(sim);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_server_is_offline_then_online_and_each_change_arrives_once() {
    let pki = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // The changing variables stay still: only the test's own changes happen.
    let still = Duration::from_secs(3600);
    let sim = start_sim(listener, still, pki.path()).await;
    let tags = tags(sim.namespace());
    let mut driver = Driver::start(&device(addr.port()), &tags);
    driver.until_status(true).await;

    drop(sim);
    let down = driver.until_status(false).await;
    // Every tag goes stale with the device.
    for k in 0..tags.len() {
        assert!(
            down.iter()
                .any(|s| s.tag.index() == k && s.quality == Quality::Stale),
            "tag {k} not stale"
        );
    }

    // Same port again; the old listener may take a moment to be released.
    let deadline = Instant::now() + DEADLINE;
    let listener = loop {
        match TcpListener::bind(addr).await {
            Ok(l) => break l,
            // Retry pacing while the old server releases the port, bounded by the deadline.
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("cannot listen on {addr} again: {e}"),
        }
    };
    let sim = start_sim(listener, still, pki.path()).await;
    let birth = driver.until_status(true).await;
    assert!(birth.iter().all(|s| s.quality == Quality::Good));

    // Each change is delivered exactly once: a tag monitored twice would repeat each one.
    let int32 = DataType::ALL.len()
        + DataType::ALL
            .iter()
            .position(|d| *d == DataType::Int32)
            .unwrap();
    let int16 = DataType::ALL.len()
        + DataType::ALL
            .iter()
            .position(|d| *d == DataType::Int16)
            .unwrap();
    let mut seen = Vec::new();
    for v in 1..=5 {
        sim.set(&node_name("Writable", DataType::Int32), &Value::Int32(v))
            .unwrap();
        let samples = driver
            .until(|s| s.tag.index() == int32 && s.value == Some(Value::Int32(v)))
            .await;
        seen.extend(samples.into_iter().filter(|s| s.tag.index() == int32));
    }
    // A last change on another tag: a duplicate of the 5 would be published before it.
    sim.set(&node_name("Writable", DataType::Int16), &Value::Int16(7))
        .unwrap();
    let tail = driver
        .until(|s| s.tag.index() == int16 && s.value == Some(Value::Int16(7)))
        .await;
    seen.extend(tail.into_iter().filter(|s| s.tag.index() == int32));
    let values: Vec<Option<Value>> = seen.into_iter().map(|s| s.value).collect();
    let expected: Vec<Option<Value>> = (1..=5).map(|v| Some(Value::Int32(v))).collect();
    assert_eq!(values, expected);
}

/// A TCP relay to `target` that can stop passing bytes while keeping every connection open,
/// as a pulled cable or a hung server does.
async fn relay(target: std::net::SocketAddr) -> (u16, tokio::sync::watch::Sender<bool>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (frozen_tx, frozen) = tokio::sync::watch::channel(false);
    async fn pump(
        mut from: tokio::net::tcp::OwnedReadHalf,
        mut to: tokio::net::tcp::OwnedWriteHalf,
        mut frozen: tokio::sync::watch::Receiver<bool>,
    ) {
        let mut buf = vec![0; 64 * 1024];
        loop {
            let n = match from.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if frozen.wait_for(|f| !*f).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    }
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                continue;
            };
            let (cr, cw) = client.into_split();
            let (sr, sw) = server.into_split();
            tokio::spawn(pump(cr, sw, frozen.clone()));
            tokio::spawn(pump(sr, cw, frozen.clone()));
        }
    });
    (port, frozen_tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_falls_silent_is_offline_then_online_again() {
    let pki = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let sim = start_sim(listener, Duration::from_millis(100), pki.path()).await;
    let (port, frozen) = relay(addr).await;
    let mut device = device(port);
    if let DriverConfig::OpcUa { timeout_ms, .. } = &mut device.driver {
        *timeout_ms = 1000;
    }
    let tags = tags(sim.namespace());
    let mut driver = Driver::start(&device, &tags);
    driver.until_status(true).await;

    // No byte passes, no connection closes: the keep-alives notice.
    frozen.send_replace(true);
    let down = driver.until_status(false).await;
    assert!(down.iter().any(|s| s.quality == Quality::Stale));

    frozen.send_replace(false);
    let birth = driver.until_status(true).await;
    assert!(
        birth
            .iter()
            .any(|s| s.tag.index() == 0 && s.quality == Quality::Good)
    );
    drop(sim);
}
