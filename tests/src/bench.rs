//! What the load runs (`tests/examples/*_load.rs`) share: a child stopped the way systemd
//! stops the appliance, its CPU time and memory from /proc, and latency percentiles.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use prost::Message as _;
use rumqttc::QoS;
use sparkplug::proto::Payload;
use sparkplug::proto::payload::Metric;
use sparkplug::proto::payload::metric::Value as Field;

use crate::{Observer, free_port, now_ms, sparkedge_binary};

/// A child process that gets SIGTERM when dropped, so the appliance ends its sessions
/// cleanly (and a heap profiler wrapped around it writes its report); SIGKILL if it is not
/// gone within 10 s.
#[derive(Debug)]
pub struct Terminate(pub Child);

impl Drop for Terminate {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.0.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20)); // polling the child's exit, bounded
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// User + system CPU time of a process so far, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime")
}

/// The share of one core that `ticks` of CPU time over `elapsed` is, in percent.
pub fn core_percent(ticks: u64, elapsed: Duration) -> f64 {
    ticks as f64 / rustix::param::clock_ticks_per_second() as f64 / elapsed.as_secs_f64() * 100.0
}

/// A line of /proc/<pid>/status (`VmHWM`, `VmRSS`), without its key.
pub fn proc_status(pid: u32, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("read /proc status")
        .lines()
        .find(|l| l.starts_with(key))
        .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// Prints p50, p99 and the maximum of `latencies`.
pub fn report(what: &str, latencies: &mut [Duration]) {
    assert!(!latencies.is_empty(), "{what}: no samples");
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "{what} over {} samples: p50 {:?}, p99 {:?}, max {:?}",
        latencies.len(),
        pct(0.50),
        pct(0.99),
        latencies[latencies.len() - 1]
    );
}

/// Starts `sparkedge run` on the model imported into `data`, its embedded broker on
/// `mqtt_port`, the UNS on or off, logging warnings (and model changes) only.
pub fn run_appliance(data: &Path, mqtt_port: u16, uns: bool) -> Terminate {
    let config = data.join("sparkedge.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\n[mqtt]\nlisten = \"127.0.0.1:{mqtt_port}\"\n[web]\nlisten = \"127.0.0.1:{}\"\n[uns]\nenabled = {uns}\n",
            data.display().to_string(),
            free_port()
        ),
    )
    .expect("write config");
    Terminate(
        Command::new(sparkedge_binary())
            .args(["run", "--config", config.to_str().expect("UTF-8")])
            // Applying a changed model says how long it took.
            .env("RUST_LOG", "warn,sparkedge::pipeline=info")
            .stdout(Stdio::null())
            .spawn()
            .expect("start sparkedge run"),
    )
}

/// Asks edge node `edge` of `group` for a rebirth (NCMD Node Control/Rebirth): births sent
/// before a host subscribed come again.
pub async fn request_rebirth(host: &Observer, group: &str, edge: &str) {
    let rebirth = Payload {
        timestamp: Some(now_ms()),
        metrics: vec![Metric {
            name: Some("Node Control/Rebirth".into()),
            value: Some(Field::BooleanValue(true)),
            ..Metric::default()
        }],
        ..Payload::default()
    };
    host.client
        .publish(
            format!("spBv1.0/{group}/NCMD/{edge}"),
            QoS::AtMostOnce,
            false,
            rebirth.encode_to_vec(),
        )
        .await
        .expect("publish rebirth");
}

/// Counts the metrics of every DDATA `host` receives, in a task of its own (the caller
/// aborts it when done).
pub fn count_ddata_metrics(mut host: Observer) -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let metrics = Arc::new(AtomicU64::new(0));
    let counter = metrics.clone();
    let task = tokio::spawn(async move {
        loop {
            let m = host.next("DDATA").await;
            if m.topic.contains("/DDATA/") {
                let p = Payload::decode(m.payload.as_slice()).expect("DDATA payload");
                counter.fetch_add(p.metrics.len() as u64, Ordering::Relaxed);
            }
        }
    });
    (metrics, task)
}
