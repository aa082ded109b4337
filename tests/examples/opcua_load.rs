//! The OPC UA load run (a benchmark, not a test): 10,000 monitored items, all changing every
//! second, subscribed at 1 s by one `sparkedge run` process and published as Sparkplug.
//!
//! Run: `cargo run --release --locked -p system-tests --example opcua_load [-- --items N]
//! [--sampling-ms N]`
//!
//! One `sparkedge sim opcua --bulk N` process serves N Double variables that all change every
//! second. The appliance's model has one OPC UA device with a float64 tag on each. After the
//! birth and a 5 s warm-up it measures, over 30 s: the appliance's CPU time (utime + stime
//! from /proc) as a share of one core, its peak RSS (VmHWM), and the DDATA metrics a
//! Sparkplug host receives. The simulated server runs on the same two cores.

use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use prost::Message as _;
use sparkplug::proto::Payload;
use system_tests::bench::{
    Terminate, core_percent, count_ddata_metrics, cpu_ticks, proc_status, request_rebirth,
    run_appliance,
};
use system_tests::{Observer, free_port, sparkedge, sparkedge_binary};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let items: usize = args
        .iter()
        .position(|a| a == "--items")
        .and_then(|i| args.get(i + 1))
        .map_or(10_000, |n| n.parse().expect("--items N"));
    // `--sampling-ms N`: how often the server samples each item (1000, the period, unless
    // given).
    let sampling: u64 = args
        .iter()
        .position(|a| a == "--sampling-ms")
        .and_then(|i| args.get(i + 1))
        .map_or(1000, |n| n.parse().expect("--sampling-ms N"));
    let binary = sparkedge_binary();
    let port = free_port();
    let _sim = Terminate(
        Command::new(&binary)
            .args(["sim", "opcua", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--bulk", &items.to_string(), "--tick-ms", "1000"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start the simulated OPC UA server"),
    );

    let data = tempfile::tempdir().expect("temp dir");
    let mut model = format!(
        "[namespace]\nenterprise = \"bench\"\nsite = \"s1\"\n[sparkplug]\nedge_node_id = \"edge\"\n\
         [[area]]\nname = \"load\"\n[[area.line]]\nname = \"ua\"\n\
         [[device]]\nname = \"ua\"\ndriver = \"opc-ua\"\nendpoint = \"opc.tcp://127.0.0.1:{port}/\"\n\
         period_ms = 1000\nsampling_interval_ms = {sampling}\ntimeout_ms = 10000\n"
    );
    for k in 0..items {
        model += &format!(
            "[[tag]]\ndevice = \"ua\"\nlocation = \"load/ua\"\nname = \"t{k}\"\ndatatype = \"float64\"\n\
             address = \"nsu=urn:sparkedge:sim;s=Bulk.{k}\"\n"
        );
    }
    let model_path = data.path().join("model.toml");
    std::fs::write(&model_path, model).expect("write model");
    sparkedge(
        data.path(),
        &["import", model_path.to_str().expect("UTF-8")],
    );

    let mqtt_port = free_port();
    let started = Instant::now();
    let app = run_appliance(data.path(), mqtt_port, false);
    let pid = app.0.id();

    let mut host = Observer::connect(mqtt_port, "bench-host", None).await;
    host.subscribe("spBv1.0/s1/#").await;
    // The node may have been born before we subscribed: a rebirth brings the DBIRTH again.
    request_rebirth(&host, "s1", "edge").await;
    let birth = host
        .next_where("the device's DBIRTH", |m| {
            m.topic.ends_with("/DBIRTH/edge/ua")
        })
        .await;
    let born = Payload::decode(birth.payload.as_slice()).expect("DBIRTH payload");
    println!(
        "DBIRTH with {} metrics {:?} after start",
        born.metrics.len(),
        started.elapsed()
    );
    let (metrics, count_task) = count_ddata_metrics(host);

    tokio::time::sleep(Duration::from_secs(5)).await; // warm-up, not synchronisation
    let (t0, cpu0, n0) = (
        Instant::now(),
        cpu_ticks(pid),
        metrics.load(Ordering::Relaxed),
    );
    tokio::time::sleep(Duration::from_secs(30)).await; // the measurement window
    let (elapsed, cpu1, n1) = (
        t0.elapsed(),
        cpu_ticks(pid),
        metrics.load(Ordering::Relaxed),
    );
    println!(
        "{items} items over {:.1} s: CPU {:.1} % of one core, DDATA metrics received {:.0}/s, VmHWM {}, VmRSS {}",
        elapsed.as_secs_f64(),
        core_percent(cpu1 - cpu0, elapsed),
        (n1 - n0) as f64 / elapsed.as_secs_f64(),
        proc_status(pid, "VmHWM"),
        proc_status(pid, "VmRSS"),
    );
    count_task.abort();
}
