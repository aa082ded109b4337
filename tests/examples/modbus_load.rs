//! The Modbus → Sparkplug load run (a benchmark, not a test): 100,000 tags over 10 simulated
//! PLCs, all changing every second, polled at 1 s by one `sparkedge run` process.
//!
//! Run: `cargo run --release --locked -p system-tests --example modbus_load [-- --uns]`
//!
//! Ten `sparkedge sim modbus` processes serve the bulk area (hr:1000…, every register changes
//! every second). The appliance's model has 10 devices × 10,000 uint16 tags (one writable at
//! hr:0). After the births and a 5 s warm-up it measures, over 30 s: the appliance's CPU time
//! (utime + stime from /proc) as a share of one core, its peak RSS (VmHWM), and the DDATA
//! metrics a Sparkplug host receives. Then 200 DCMD writes to hr:0 of one PLC, each timed from
//! publishing the DCMD to the register holding the value (polled every millisecond with a
//! second Modbus connection). Last, 100 changes of hr:1 made directly on that PLC, each timed
//! until a Sparkplug host sees the new value in DDATA (PLC change -> subscriber).
//! `--uns` also publishes the tags as UNS JSON to one subscriber; `--devices N` polls N PLCs
//! instead of 10 (`--devices 1 --uns`: the UNS path at 10,000 tags/s); `--period-ms N` polls
//! every N ms instead of 1000. `--reload` last imports the model with one tag more on the
//! last PLC while the appliance runs, and times it until that PLC's DBIRTH (the appliance
//! logs how long applying took), with the peak RSS after.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prost::Message as _;
use rumqttc::QoS;
use sparkplug::proto::Payload;
use sparkplug::proto::payload::Metric;
use sparkplug::proto::payload::metric::Value as Field;
use system_tests::bench::{
    Terminate, core_percent, count_ddata_metrics, cpu_ticks, proc_status as status, report,
    request_rebirth, run_appliance,
};
use system_tests::{Observer, free_port, now_ms, sparkedge, sparkedge_binary};
use tokio_modbus::client::{Reader, Writer};

const TAGS: usize = 10_000;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let uns = args.iter().any(|a| a == "--uns");
    // `--devices N`: fewer PLCs (10,000 tags each), e.g. 1 for the UNS path at 10,000 tags/s.
    let devices: usize = args
        .iter()
        .position(|a| a == "--devices")
        .and_then(|i| args.get(i + 1))
        .map_or(10, |n| n.parse().expect("--devices N"));
    // `--period-ms N`: the poll period of every PLC (1000 unless given).
    let period_ms: u64 = args
        .iter()
        .position(|a| a == "--period-ms")
        .and_then(|i| args.get(i + 1))
        .map_or(1000, |n| n.parse().expect("--period-ms N"));
    let binary = sparkedge_binary();
    let ports: Vec<u16> = (0..devices).map(|_| free_port()).collect();
    let _sims: Vec<Terminate> = ports
        .iter()
        .map(|p| {
            Terminate(
                Command::new(&binary)
                    .args(["sim", "modbus", "--listen", &format!("127.0.0.1:{p}")])
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("start a simulated PLC"),
            )
        })
        .collect();

    let data = tempfile::tempdir().expect("temp dir");
    let mut model = String::from(
        "[namespace]\nenterprise = \"bench\"\nsite = \"s1\"\n[sparkplug]\nedge_node_id = \"edge\"\n[[area]]\nname = \"load\"\n",
    );
    for d in 0..devices {
        model += &format!("[[area.line]]\nname = \"plc{d}\"\n");
    }
    for (d, port) in ports.iter().enumerate() {
        model += &format!(
            "[[device]]\nname = \"plc{d}\"\ndriver = \"modbus-tcp\"\nhost = \"127.0.0.1\"\nport = {port}\nperiod_ms = {period_ms}\n"
        );
    }
    for d in 0..devices {
        model += &format!(
            "[[tag]]\ndevice = \"plc{d}\"\nlocation = \"load/plc{d}\"\nname = \"w\"\ndatatype = \"uint16\"\naddress = \"hr:0\"\nwritable = true\n"
        );
        // A second writable tag, changed behind the appliance's back for the latency run.
        model += &format!(
            "[[tag]]\ndevice = \"plc{d}\"\nlocation = \"load/plc{d}\"\nname = \"c\"\ndatatype = \"uint16\"\naddress = \"hr:1\"\n"
        );
        for i in 2..TAGS {
            model += &format!(
                "[[tag]]\ndevice = \"plc{d}\"\nlocation = \"load/plc{d}\"\nname = \"t{i}\"\ndatatype = \"uint16\"\naddress = \"hr:{}\"\n",
                999 + i
            );
        }
    }
    let model_path = data.path().join("model.toml");
    std::fs::write(&model_path, &model).expect("write model");
    let started = Instant::now();
    sparkedge(
        data.path(),
        &["import", model_path.to_str().expect("UTF-8")],
    );
    println!("import of {} tags: {:?}", devices * TAGS, started.elapsed());

    let mqtt_port = free_port();
    let app = run_appliance(data.path(), mqtt_port, uns);
    let pid = app.0.id();

    let mut host = Observer::connect(mqtt_port, "bench-host", None).await;
    host.subscribe("spBv1.0/s1/#").await;
    // The node was born before we subscribed: ask for a rebirth to learn the aliases.
    let mut births = 0;
    let mut c_alias = None;
    let deadline = Instant::now() + Duration::from_secs(120);
    request_rebirth(&host, "s1", "edge").await;
    while births < devices && Instant::now() < deadline {
        let m = host.next("messages while waiting for the births").await;
        if m.topic.contains("/DBIRTH/") {
            births += 1;
        }
        if m.topic.ends_with("/DBIRTH/edge/plc0") {
            let p = Payload::decode(m.payload.as_slice()).expect("DBIRTH payload");
            c_alias = p
                .metrics
                .iter()
                .find(|x| x.name.as_deref() == Some("load/plc0/c"))
                .and_then(|x| x.alias);
        }
        if births < devices && m.topic.contains("/NBIRTH/") {
            births = 0;
        }
    }
    assert_eq!(births, devices, "every device born");
    println!("all {devices} devices born after {:?}", started.elapsed());
    // With the UNS on, one subscriber takes the whole JSON tree, as a MES would.
    let uns_messages = Arc::new(AtomicU64::new(0));
    let uns_task = if uns {
        let mut reader = Observer::connect(mqtt_port, "bench-uns", None).await;
        reader.subscribe("bench/#").await;
        let counter = uns_messages.clone();
        Some(tokio::spawn(async move {
            loop {
                reader.next("UNS messages").await;
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }))
    } else {
        None
    };
    let (metrics, count_task) = count_ddata_metrics(host);

    tokio::time::sleep(Duration::from_secs(5)).await; // warm-up, not synchronisation
    let (t0, cpu0, n0) = (
        Instant::now(),
        cpu_ticks(pid),
        metrics.load(Ordering::Relaxed),
    );
    let u0 = uns_messages.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(30)).await; // the measurement window
    let (elapsed, cpu1, n1) = (
        t0.elapsed(),
        cpu_ticks(pid),
        metrics.load(Ordering::Relaxed),
    );
    let u1 = uns_messages.load(Ordering::Relaxed);
    let core = core_percent(cpu1 - cpu0, elapsed);
    println!(
        "over {:.1} s: CPU {core:.1} % of one core, DDATA metrics received {:.0}/s, UNS messages received {:.0}/s, VmHWM {}, VmRSS {}",
        elapsed.as_secs_f64(),
        (n1 - n0) as f64 / elapsed.as_secs_f64(),
        (u1 - u0) as f64 / elapsed.as_secs_f64(),
        status(pid, "VmHWM"),
        status(pid, "VmRSS"),
    );
    println!(
        "Modbus reads per device per cycle: {} (10,000 registers, 125 per read)",
        TAGS.div_ceil(125)
    );

    // DCMD → register written, under the load.
    let writer = Observer::connect(mqtt_port, "bench-writer", None).await;
    let addr = format!("127.0.0.1:{}", ports[0]).parse().expect("address");
    let mut plc = tokio_modbus::client::tcp::connect(addr)
        .await
        .expect("connect to plc0");
    let mut latencies = Vec::new();
    for k in 1..=200u16 {
        let dcmd = Payload {
            timestamp: Some(now_ms()),
            metrics: vec![Metric {
                name: Some("load/plc0/w".into()),
                value: Some(Field::IntValue(u32::from(k))),
                ..Metric::default()
            }],
            ..Payload::default()
        };
        let start = Instant::now();
        writer
            .client
            .publish(
                "spBv1.0/s1/DCMD/edge/plc0",
                QoS::AtMostOnce,
                false,
                dcmd.encode_to_vec(),
            )
            .await
            .expect("publish DCMD");
        loop {
            let words = plc
                .read_holding_registers(0, 1)
                .await
                .expect("transport")
                .expect("read hr:0");
            if words[0] == k {
                latencies.push(start.elapsed());
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "write {k} never landed"
            );
            tokio::time::sleep(Duration::from_millis(1)).await; // polling the PLC, not synchronising
        }
    }
    report("DCMD -> register written", &mut latencies);

    // PLC change -> subscriber: a register changed by someone else (here: a Modbus write from
    // this program) until a host sees the new value in DDATA. Starts are spread over the poll
    // period, so the wait for the next poll (0 to one period) is sampled evenly.
    let mut watcher = Observer::connect(mqtt_port, "bench-watcher", None).await;
    watcher.subscribe("spBv1.0/s1/DDATA/edge/plc0").await;
    let mut latencies = Vec::new();
    for k in 1..=100u16 {
        tokio::time::sleep(Duration::from_millis(u64::from(k) * 37 % period_ms)).await; // spreading starts, not synchronising
        let value = 1000 + k;
        plc.write_single_register(1, value)
            .await
            .expect("transport")
            .expect("write hr:1");
        let start = Instant::now();
        watcher
            .next_where("DDATA with the changed register", |m| {
                Payload::decode(m.payload.as_slice()).is_ok_and(|p| {
                    p.metrics.iter().any(|x| {
                        x.alias == c_alias && x.value == Some(Field::IntValue(u32::from(value)))
                    })
                })
            })
            .await;
        latencies.push(start.elapsed());
    }
    report(
        &format!("PLC change -> subscriber (poll period {period_ms} ms)"),
        &mut latencies,
    );
    count_task.abort();
    if let Some(task) = uns_task {
        task.abort();
    }

    if args.iter().any(|a| a == "--reload") {
        let last = devices - 1;
        let added = format!("load/plc{last}/added");
        model += &format!(
            "[[tag]]\ndevice = \"plc{last}\"\nlocation = \"load/plc{last}\"\nname = \"added\"\ndatatype = \"uint16\"\naddress = \"hr:2\"\n"
        );
        std::fs::write(&model_path, &model).expect("write model");
        let mut births = Observer::connect(mqtt_port, "bench-reload", None).await;
        births
            .subscribe(&format!("spBv1.0/s1/DBIRTH/edge/plc{last}"))
            .await;
        let start = Instant::now();
        sparkedge(
            data.path(),
            &["import", model_path.to_str().expect("UTF-8")],
        );
        let imported = start.elapsed();
        births
            .next_where("the DBIRTH with the added tag", |m| {
                Payload::decode(m.payload.as_slice())
                    .is_ok_and(|p| p.metrics.iter().any(|x| x.name.as_deref() == Some(&added)))
            })
            .await;
        println!(
            "reload (one tag more on plc{last}): import {imported:?}; import to its DBIRTH {:?} \
             (includes up to 2 s until the store check); VmHWM {}, VmRSS {}",
            start.elapsed(),
            status(pid, "VmHWM"),
            status(pid, "VmRSS"),
        );
    }
}
