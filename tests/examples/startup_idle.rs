//! Measures start-to-NBIRTH time and idle memory of `sparkedge demo` (a benchmark, not a test).
//!
//! Run: `cargo run --release --locked -p system-tests --example startup_idle`
//!
//! Start to NBIRTH: from spawning the process to the log line it writes right after the
//! NBIRTH left for the broker, over 10 starts with a fresh data directory each (so every
//! start also creates and seeds the database). Idle memory: VmRSS and VmHWM (peak) from
//! /proc after the demo has run for 30 s.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use system_tests::{free_port, sparkedge_binary};

fn main() {
    let binary = sparkedge_binary();
    let mut startups = Vec::new();
    for run in 0..10 {
        let data = tempfile::tempdir().expect("temp dir");
        let start = Instant::now();
        let mut child = Command::new(&binary)
            .arg("demo")
            .arg("--data-dir")
            .arg(data.path())
            .args(["--mqtt-listen", &format!("127.0.0.1:{}", free_port())])
            .args(["--web-listen", &format!("127.0.0.1:{}", free_port())])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sparkedge");
        let stderr = BufReader::new(child.stderr.take().expect("stderr"));
        let mut lines = stderr.lines();
        let birth = lines
            .by_ref()
            .map_while(Result::ok)
            .find(|l| l.contains("NBIRTH published"))
            .map(|_| start.elapsed());
        let elapsed = birth.expect("sparkedge logged its NBIRTH");
        startups.push(elapsed);
        if run == 9 {
            // Keep draining the log so the child never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines {});
            std::thread::sleep(Duration::from_secs(30));
            let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
                .expect("read /proc status");
            for line in status.lines() {
                if line.starts_with("VmRSS") || line.starts_with("VmHWM") {
                    println!("idle after 30 s: {line}");
                }
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    startups.sort();
    println!(
        "start to NBIRTH over {} starts: min {:?}, median {:?}, max {:?}",
        startups.len(),
        startups[0],
        startups[startups.len() / 2],
        startups[startups.len() - 1]
    );
}
