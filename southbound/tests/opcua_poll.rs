//! OPC UA acquisition choices against the simulated server over TCP on 127.0.0.1: tags of
//! a scan class are read by polling, in reads the server's MaxNodesPerRead allows, next to
//! subscribed tags; a deadband is asked of the server as a data-change filter; a server that
//! limits the items of a subscription gets several; an uncertain status passes its value on
//! as uncertain, a bad one drops it, whether read by polling or by subscription.

use std::time::Duration;

use opcua::types::StatusCode;
use southbound::opcua::sim_server::{SimConfig, SimServer};
use southbound::{Context, DeviceId, DriverEvent};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout};
use uns_model::{DataType, Device, DriverConfig, Quality, ScanClass, Tag, TagId, TagSample, Value};

const DEADLINE: Duration = Duration::from_secs(20);

async fn start_sim(pki: &std::path::Path) -> (SimServer, u16) {
    start_sim_with(pki, |_| {}).await
}

async fn start_sim_with(
    pki: &std::path::Path,
    edit: impl FnOnce(&mut SimConfig),
) -> (SimServer, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut config = SimConfig {
        tick: Duration::from_millis(50),
        // Fewer than the polled tags: the driver must split its reads.
        max_nodes_per_read: 2,
        pki_dir: pki.to_owned(),
        ..SimConfig::default()
    };
    edit(&mut config);
    (SimServer::start(listener, config).await.unwrap(), port)
}

fn device(port: u16) -> Device {
    let mut driver = DriverConfig::opc_ua(format!("opc.tcp://127.0.0.1:{port}/"));
    if let DriverConfig::OpcUa {
        period_ms,
        timeout_ms,
        ..
    } = &mut driver
    {
        *period_ms = 100;
        *timeout_ms = 2000;
    }
    Device {
        name: "plc".into(),
        enabled: true,
        driver,
    }
}

fn tag(name: &str, datatype: DataType, node: &str) -> Tag {
    Tag::new(
        "plc",
        "a/l",
        name,
        datatype,
        format!("nsu=urn:sparkedge:sim;s={node}"),
    )
}

/// Starts the driver of `device(port)` with `tags` (tag ids 0, 1, …) and scan classes.
fn start_driver(
    port: u16,
    tags: &[Tag],
    scan_classes: &[ScanClass],
) -> (mpsc::Receiver<DriverEvent>, southbound::DriverHandle) {
    let (tx, events) = mpsc::channel(256);
    let ids: Vec<(TagId, &Tag)> = tags
        .iter()
        .enumerate()
        .map(|(i, t)| (TagId(i as u32), t))
        .collect();
    let context = Context {
        scan_classes,
        opcua_pki: None,
    };
    let driver = southbound::spawn(DeviceId(0), &device(port), &ids, &context, tx);
    (events, driver)
}

/// Collects samples until `done` holds for what was collected so far.
async fn collect(
    events: &mut mpsc::Receiver<DriverEvent>,
    mut done: impl FnMut(&[TagSample]) -> bool,
) -> Vec<TagSample> {
    let deadline = Instant::now() + DEADLINE;
    let mut samples = Vec::new();
    while !done(&samples) {
        let left = deadline.saturating_duration_since(Instant::now());
        match timeout(left, events.recv()).await {
            Err(_) => panic!("not done within {DEADLINE:?}; got {samples:?}"),
            Ok(None) => panic!("the driver stopped"),
            Ok(Some(DriverEvent::Samples(s))) => samples.extend(s),
            Ok(Some(DriverEvent::DeviceStatus { online: true, .. })) => {}
            Ok(Some(other)) => panic!("unexpected {other:?}"),
        }
    }
    samples
}

fn of(samples: &[TagSample], tag: u32) -> Vec<Value> {
    samples
        .iter()
        .filter(|s| s.tag.0 == tag && s.quality == Quality::Good)
        .filter_map(|s| s.value.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scan_class_tags_are_polled_in_batches_beside_subscribed_ones() {
    let pki = tempfile::tempdir().unwrap();
    let (_sim, port) = start_sim(pki.path()).await;
    let classes = [ScanClass {
        name: "fast".into(),
        period_ms: 100,
    }];
    // Five polled tags (three reads of at most two nodes), two subscribed.
    let mut tags = Vec::new();
    for (name, datatype, node) in [
        ("w_i32", DataType::Int32, "Writable.Int32"),
        ("w_f64", DataType::Float64, "Writable.Double"),
        ("w_str", DataType::String, "Writable.String"),
        ("w_bool", DataType::Bool, "Writable.Boolean"),
        ("c_u16", DataType::UInt16, "Changing.UInt16"),
    ] {
        let mut t = tag(name, datatype, node);
        t.acquisition_mut().scan_class = Some("fast".into());
        tags.push(t);
    }
    tags.push(tag("sub_unchanging", DataType::Int64, "Writable.Int64"));
    tags.push(tag("sub_changing", DataType::Int32, "Changing.Int32"));

    let (mut events, _driver) = start_driver(port, &tags, &classes);

    // A polled tag is read every period whether or not it changed: an unchanged value keeps
    // arriving, which a subscription would send once. Every polled tag is read.
    let samples = collect(&mut events, |s| of(s, 0).len() >= 4 && of(s, 6).len() >= 4).await;
    for k in 0..5 {
        assert!(
            !of(&samples, k).is_empty(),
            "tag {k} never read: {samples:?}"
        );
    }
    let polled = of(&samples, 0);
    assert!(polled.iter().all(|v| *v == polled[0]), "{polled:?}");
    // The unchanging subscribed tag reported its value once, at the birth.
    assert_eq!(of(&samples, 5).len(), 1, "{samples:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadband_is_applied_by_the_server() {
    let pki = tempfile::tempdir().unwrap();
    let (_sim, port) = start_sim(pki.path()).await;
    // Changing.Float goes up by 0.5 every tick; with a deadband of 1.2 the server reports
    // only every third step or so, never two values closer than the deadband.
    let mut t = tag("level", DataType::Float32, "Changing.Float");
    t.acquisition_mut().deadband = Some(1.2);
    let tags = [t];
    let (mut events, _driver) = start_driver(port, &tags, &[]);
    let samples = collect(&mut events, |s| of(s, 0).len() >= 6).await;
    let values: Vec<f32> = of(&samples, 0)
        .into_iter()
        .map(|v| match v {
            Value::Float32(f) => f,
            other => panic!("{other:?}"),
        })
        .collect();
    for pair in values.windows(2) {
        assert!(pair[1] - pair[0] > 1.2, "{values:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn items_beyond_a_subscriptions_limit_go_into_more_subscriptions() {
    let pki = tempfile::tempdir().unwrap();
    // Three items per subscription, calls of up to 1000: the driver's first call is refused
    // whole and must be split, then continued in new subscriptions.
    let (_sim, port) = start_sim_with(pki.path(), |c| {
        c.max_monitored_items_per_subscription = 3;
    })
    .await;
    let names = [
        "Int16", "Int32", "Int64", "UInt16", "UInt32", "Float", "Double",
    ];
    let types = [
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::UInt16,
        DataType::UInt32,
        DataType::Float32,
        DataType::Float64,
    ];
    let tags: Vec<Tag> = names
        .iter()
        .zip(types)
        .map(|(n, dt)| tag(n, dt, &format!("Changing.{n}")))
        .collect();
    let (mut events, _driver) = start_driver(port, &tags, &[]);
    // Every item is monitored, once: each tag changes, and no sample is bad.
    let samples = collect(&mut events, |s| (0..7).all(|k| of(s, k).len() >= 3)).await;
    assert!(
        samples.iter().all(|s| s.quality == Quality::Good),
        "{samples:?}"
    );
    // An item monitored twice would deliver each change twice.
    for k in 0..7 {
        let values = of(&samples, k);
        assert!(
            values.windows(2).all(|w| w[0] != w[1]),
            "tag {k}: {values:?}"
        );
    }
}

/// The values of `tag`'s samples of `quality`, in order.
fn with(samples: &[TagSample], tag: u32, quality: Quality) -> Vec<Option<Value>> {
    samples
        .iter()
        .filter(|s| s.tag.0 == tag && s.quality == quality)
        .map(|s| s.value.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_uncertain_status_keeps_its_value_and_a_bad_one_drops_it() {
    let pki = tempfile::tempdir().unwrap();
    let (sim, port) = start_sim(pki.path()).await;
    let classes = [ScanClass {
        name: "fast".into(),
        period_ms: 100,
    }];
    // One node read both ways: tag 0 by polling, tag 1 by subscription.
    let mut polled = tag("polled", DataType::Float64, "Writable.Double");
    polled.acquisition_mut().scan_class = Some("fast".into());
    let tags = [
        polled,
        tag("subscribed", DataType::Float64, "Writable.Double"),
    ];
    let (mut events, _driver) = start_driver(port, &tags, &classes);
    let both = |quality| move |s: &[TagSample]| (0..2).all(|k| !with(s, k, quality).is_empty());
    collect(&mut events, both(Quality::Good)).await;

    // A sensor out of calibration: the value arrives, flagged.
    sim.set_status(
        "Writable.Double",
        &Value::Float64(21.5),
        StatusCode::UncertainSensorNotAccurate,
    )
    .unwrap();
    let samples = collect(&mut events, both(Quality::Uncertain)).await;
    for k in 0..2 {
        let values = with(&samples, k, Quality::Uncertain);
        assert!(
            values.iter().all(|v| *v == Some(Value::Float64(21.5))),
            "tag {k}: {samples:?}"
        );
    }

    // A failed sensor: whatever value the server still sends is not passed on.
    sim.set_status(
        "Writable.Double",
        &Value::Float64(99.0),
        StatusCode::BadSensorFailure,
    )
    .unwrap();
    let samples = collect(&mut events, both(Quality::Bad)).await;
    for k in 0..2 {
        assert!(
            with(&samples, k, Quality::Bad).iter().all(Option::is_none),
            "tag {k}: {samples:?}"
        );
    }
    assert!(
        samples
            .iter()
            .all(|s| s.value != Some(Value::Float64(99.0))),
        "{samples:?}"
    );

    // Good again.
    sim.set("Writable.Double", &Value::Float64(4.0)).unwrap();
    let samples = collect(&mut events, both(Quality::Good)).await;
    for k in 0..2 {
        assert_eq!(
            with(&samples, k, Quality::Good).last(),
            Some(&Some(Value::Float64(4.0))),
            "tag {k}: {samples:?}"
        );
    }
}
