//! `sparkedge run` under a service manager's eyes (systemd's `Type=notify` protocol, without
//! systemd): READY=1 arrives only once the broker and the web UI answer, STOPPING=1 at
//! SIGTERM; a log the journal can rank when standard error is the journal's stream.

use std::os::unix::net::UnixDatagram;

use system_tests::{Appliance, DEADLINE, http_get, import_model};

/// The next notification on `socket`, as text.
fn notification(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = socket
        .recv(&mut buf)
        .expect("a notification before the deadline");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn ready_is_sent_once_broker_and_web_answer_and_stopping_at_sigterm() {
    let data = tempfile::tempdir().expect("temp dir");
    import_model(
        data.path(),
        &uns_model::file::to_toml(&uns_model::file::demo_model()),
    );
    let path = data.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    socket
        .set_read_timeout(Some(DEADLINE))
        .expect("set a read timeout");
    let mut app = Appliance::run_with_env(
        data.path(),
        "",
        "",
        &[("NOTIFY_SOCKET", &path)],
        std::process::Stdio::inherit(),
    );

    let ready = notification(&socket);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    // Ready means serving: no retry, no wait.
    let (status, body) = http_get(app.web_port, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok"));
    std::net::TcpStream::connect(("127.0.0.1", app.mqtt_port)).expect("the broker listens");

    assert!(app.terminate().success());
    let stopping = notification(&socket);
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
}

/// A fresh installation: the service's first start finds an empty data directory. It must
/// serve (a unit that exits would be restarted in a loop), with the starter namespace, and
/// store it, so that the web UI edits a model that is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_data_directory_starts_with_the_starter_model() {
    let data = tempfile::tempdir().expect("temp dir");
    // A Primary Host holds the births back until it listens.
    let mut app = Appliance::run(data.path(), "[sparkplug]\nprimary_host_id = \"scada\"\n");
    let mut host = system_tests::primary_host(app.mqtt_port, "scada", "spBv1.0/site/#").await;
    let birth = host.next("the NBIRTH of the starter model").await;
    assert_eq!(birth.topic, "spBv1.0/site/NBIRTH/sparkedge");
    let (status, body) = http_get(app.web_port, "/healthz");
    assert_eq!((status, body.as_str()), (200, "ok"));
    assert!(app.terminate().success());

    let stored = system_tests::sparkedge(data.path(), &["export"]);
    let stored = uns_model::file::from_toml(&stored).expect("the stored model parses");
    assert_eq!(stored, uns_model::file::starter_model());
}

/// Under systemd, standard error is a stream to the journal that `$JOURNAL_STREAM` names
/// (device:inode). Such a log carries each line's syslog priority (`<4>` warning, `<6>`
/// info) for `journalctl -p`, and no timestamp of its own; the same variable with another
/// stream (inherited by a child) changes nothing.
#[test]
fn a_log_into_the_journal_carries_priorities_and_no_timestamps() {
    use std::io::BufRead;
    use std::os::unix::fs::MetadataExt;

    for journal in [true, false] {
        let data = tempfile::tempdir().expect("temp dir");
        let (reader, writer) = std::io::pipe().expect("a pipe");
        let stream = if journal {
            let stat = std::fs::metadata(format!("/proc/self/fd/{}", {
                use std::os::fd::AsRawFd;
                writer.as_raw_fd()
            }))
            .expect("stat the pipe");
            format!("{}:{}", stat.dev(), stat.ino())
        } else {
            "1:1".to_owned()
        };
        // The service's defaults: anonymous MQTT off and no MQTT user, which is a warning.
        let mut app = Appliance::run_with_env(
            data.path(),
            "",
            "",
            &[("JOURNAL_STREAM", std::path::Path::new(&stream))],
            writer.into(),
        );
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(reader).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = std::time::Instant::now() + DEADLINE;
        let mut lines = Vec::new();
        let (mut warning, mut info) = (None, None);
        while warning.is_none() || info.is_none() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                panic!("no warning and info line within {DEADLINE:?}: {lines:?}")
            });
            if line.contains("WARN") && line.contains("anonymous MQTT is off") {
                warning = Some(line.clone());
            } else if line.contains("INFO") && line.contains("Sparkplug session online") {
                // Logged once the appliance handles SIGTERM (and so exits 0 below).
                info = Some(line.clone());
            }
            lines.push(line);
        }
        let status = app.terminate();
        assert!(status.success(), "journal {journal}: {status:?}: {lines:?}");
        let (warning, info) = (warning.unwrap_or_default(), info.unwrap_or_default());
        if journal {
            assert!(warning.starts_with("<4> WARN "), "{warning}");
            assert!(info.starts_with("<6> INFO "), "{info}");
        } else {
            // tracing's usual line: an RFC 3339 timestamp first.
            assert!(
                warning.starts_with("20") && warning.contains("Z  WARN "),
                "{warning}"
            );
            assert!(info.starts_with("20"), "{info}");
        }
    }
}
