//! Helpers for tests across process and socket boundaries: start the real `sparkedge`
//! binary on free loopback ports, and observe it over MQTT as a Sparkplug Host Application
//! and a UNS subscriber would.
//!
//! Every wait has a deadline; nothing sleeps to synchronise.

pub mod bench;
pub mod browser;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, LastWill, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

/// How long any single expected event may take before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The `sparkedge` binary of this workspace, built if it is not there yet.
pub fn sparkedge_binary() -> PathBuf {
    // Test executables live in target/<profile>/deps; the binary in target/<profile>.
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile> directory");
    let binary = profile_dir.join("sparkedge");
    if !binary.exists() {
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "appliance", "--bin", "sparkedge"])
            .status()
            .expect("run cargo build");
        assert!(status.success(), "cargo build of sparkedge failed");
    }
    binary
}

/// A free TCP port on 127.0.0.1 (bound, read back, released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind an ephemeral port")
        .port()
}

/// A running `sparkedge demo`; killed when dropped if the test did not stop it.
#[derive(Debug)]
pub struct Appliance {
    pub child: Child,
    pub mqtt_port: u16,
    pub web_port: u16,
}

impl Appliance {
    /// Starts `sparkedge demo` with `data_dir` on free ports, plus `extra` arguments.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Appliance {
        let (mqtt_port, web_port) = (free_port(), free_port());
        let child = Command::new(sparkedge_binary())
            .arg("demo")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--mqtt-listen", &format!("127.0.0.1:{mqtt_port}")])
            .args(["--web-listen", &format!("127.0.0.1:{web_port}")])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start sparkedge");
        Appliance {
            child,
            mqtt_port,
            web_port,
        }
    }

    /// Starts `sparkedge run` with a configuration file written into `data_dir`: the
    /// embedded broker (anonymous clients allowed, so observers need no login) and web UI on
    /// free ports, plus `extra` TOML (e.g. `[[northbound]]`).
    pub fn run(data_dir: &Path, extra: &str) -> Appliance {
        Appliance::run_with_mqtt(data_dir, "allow_anonymous = true\n", extra)
    }

    /// [`Appliance::run`] with `mqtt` as further keys of the `[mqtt]` section (nothing: the
    /// service's defaults, anonymous MQTT off).
    pub fn run_with_mqtt(data_dir: &Path, mqtt: &str, extra: &str) -> Appliance {
        Appliance::run_with_env(data_dir, mqtt, extra, &[], Stdio::inherit())
    }

    /// [`Appliance::run_with_mqtt`] with `env` added to the process's environment, and its
    /// standard error (the log) going to `stderr`.
    pub fn run_with_env(
        data_dir: &Path,
        mqtt: &str,
        extra: &str,
        env: &[(&str, &Path)],
        stderr: Stdio,
    ) -> Appliance {
        let (mqtt_port, web_port) = (free_port(), free_port());
        let config = data_dir.join("sparkedge.toml");
        let text = format!(
            "data_dir = {:?}\n[mqtt]\nlisten = \"127.0.0.1:{mqtt_port}\"\n{mqtt}[web]\nlisten = \"127.0.0.1:{web_port}\"\n{extra}",
            data_dir.display().to_string()
        );
        std::fs::write(&config, text).expect("write sparkedge.toml");
        let child = Command::new(sparkedge_binary())
            .arg("run")
            .arg("--config")
            .arg(&config)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start sparkedge run");
        Appliance {
            child,
            mqtt_port,
            web_port,
        }
    }

    /// Reads the appliance's standard output (of [`Appliance::start`]) up to the first line
    /// containing `needle`, and returns the lines read, that one last.
    pub fn stdout_until(&mut self, needle: &str) -> Vec<String> {
        use std::io::BufRead;
        let stdout = self
            .child
            .stdout
            .take()
            .expect("stdout is piped and not taken yet");
        let (tx, rx) = std::sync::mpsc::channel();
        // Reads on to the end: a closed pipe would fail the appliance's next print.
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let _ = tx.send(line);
            }
        });
        let deadline = std::time::Instant::now() + DEADLINE;
        let mut lines = Vec::new();
        loop {
            let wait = deadline.saturating_duration_since(std::time::Instant::now());
            let line = rx
                .recv_timeout(wait)
                .unwrap_or_else(|_| panic!("no {needle:?} on sparkedge's output: {lines:?}"));
            let found = line.contains(needle);
            lines.push(line);
            if found {
                return lines;
            }
        }
    }

    /// SIGKILL: no NDEATH from the appliance, so the broker must publish the Will.
    pub fn kill_hard(&mut self) {
        self.child.kill().expect("kill -9 sparkedge");
        self.child.wait().expect("reap sparkedge");
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).expect("child pid");
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("send SIGTERM");
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for sparkedge") {
                return status;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "sparkedge did not exit within {DEADLINE:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20)); // polling a child's exit, not synchronising
        }
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs a `sparkedge` subcommand against `data_dir` and returns its standard output;
/// panics with its standard error if it fails.
pub fn sparkedge(data_dir: &Path, args: &[&str]) -> String {
    let out = Command::new(sparkedge_binary())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("run sparkedge");
    assert!(
        out.status.success(),
        "sparkedge {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// A Mosquitto broker (Debian's `mosquitto`) on 127.0.0.1:`port`, as a plant's northbound
/// broker. Killed when dropped.
#[derive(Debug)]
pub struct Mosquitto {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Mosquitto {
    /// Starts Mosquitto on `port` (anonymous, no persistence) and waits until it accepts
    /// MQTT connections.
    pub async fn start(port: u16) -> Mosquitto {
        Mosquitto::start_with(port, "").await
    }

    /// Starts Mosquitto with a plain listener on `port` and a TLS listener on `tls_port`
    /// serving the certificate of `certs` (see [`TestCertificates`]).
    pub async fn start_tls(port: u16, tls_port: u16, certs: &TestCertificates) -> Mosquitto {
        let dir = certs.dir.path().display();
        let tls = format!(
            "listener {tls_port} 127.0.0.1\ncafile {dir}/ca.pem\ncertfile {dir}/server.pem\nkeyfile {dir}/server.key\n"
        );
        Mosquitto::start_with(port, &tls).await
    }

    async fn start_with(port: u16, extra: &str) -> Mosquitto {
        let dir = tempfile::tempdir().expect("temp dir");
        let conf = dir.path().join("mosquitto.conf");
        // Started as root, Mosquitto would switch to its own user and lose access to our files.
        let user = if rustix::process::getuid().is_root() {
            "user root\n"
        } else {
            ""
        };
        std::fs::write(
            &conf,
            format!(
                "{user}allow_anonymous true\npersistence false\nlistener {port} 127.0.0.1\n{extra}"
            ),
        )
        .expect("write mosquitto.conf");
        // Debian installs it in /usr/sbin, which is not on every user's PATH.
        let binary = ["/usr/sbin/mosquitto", "/usr/bin/mosquitto"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or("mosquitto");
        let child = Command::new(binary)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start mosquitto (apt-get install mosquitto)");
        let broker = Mosquitto {
            child,
            port,
            _dir: dir,
        };
        // Connecting proves it is up; the probe client goes away at once.
        drop(Observer::connect(port, "mosquitto-probe", None).await);
        broker
    }

    /// Stops the broker abruptly, as a crash or a network cut would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A throw-away CA and a server certificate for 127.0.0.1 signed by it, made with the
/// `openssl` command line (P-256 keys, valid for two days).
#[derive(Debug)]
pub struct TestCertificates {
    pub dir: tempfile::TempDir,
}

impl TestCertificates {
    pub fn new() -> TestCertificates {
        let dir = tempfile::tempdir().expect("temp dir");
        let run = |args: &[&str]| {
            let out = Command::new("openssl")
                .args(args)
                .current_dir(dir.path())
                .output()
                .expect("run openssl");
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(&[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=sparkedge test CA",
            ],
        ]
        .concat());
        run(&[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=127.0.0.1",
            ],
        ]
        .concat());
        std::fs::write(dir.path().join("san.ext"), "subjectAltName=IP:127.0.0.1\n")
            .expect("write san.ext");
        run(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ]);
        TestCertificates { dir }
    }

    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }
}

impl Default for TestCertificates {
    fn default() -> Self {
        TestCertificates::new()
    }
}

/// A plain HTTP/1.0 GET to 127.0.0.1:`port`: the status code and the body.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let response = http(port, "GET", path, &[], "");
    (response.status, response.body)
}

/// An HTTP/1.0 GET as the logged-in `session`.
pub fn http_get_as(port: u16, path: &str, session: &WebSession) -> (u16, String) {
    let response = http(port, "GET", path, &[("Cookie", &session.cookie)], "");
    (response.status, response.body)
}

/// An HTTP response: status, headers (names in lower case), body.
#[derive(Clone, Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    /// The value of cookie `name` that the response sets.
    pub fn set_cookie(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .filter(|(h, _)| h == "set-cookie")
            .filter_map(|(_, v)| v.split(';').next()?.split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, value)| value.to_owned())
    }

    /// The `value` of the first `<input name="{name}" value="…">` in the body.
    pub fn input_value(&self, name: &str) -> Option<String> {
        let at = self.body.find(&format!("name=\"{name}\" value=\""))?;
        let rest = &self.body[at..];
        let start = rest.find("value=\"")? + "value=\"".len();
        Some(rest[start..].split('"').next()?.to_owned())
    }
}

/// One HTTP/1.0 request to 127.0.0.1:`port`; a body is sent as a url-encoded form.
pub fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> HttpResponse {
    use std::io::{Read, Write};
    let mut stream =
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the web UI");
    stream
        .set_read_timeout(Some(DEADLINE))
        .expect("set a read timeout");
    let mut request = format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    let typed = headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
    if !body.is_empty() && !typed {
        request.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream
        .write_all(request.as_bytes())
        .expect("send the request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("read the response");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A JSON API call as `session`: (status, body).
pub fn http_json(
    port: u16,
    session: &WebSession,
    method: &str,
    path: &str,
    body: &serde_json::Value,
) -> (u16, String) {
    let response = http(
        port,
        method,
        path,
        &[
            ("Cookie", &session.cookie),
            ("X-CSRF-Token", &session.csrf),
            ("Content-Type", "application/json"),
        ],
        &body.to_string(),
    );
    (response.status, response.body)
}

/// A logged-in browser: the `Cookie` header to send and the session's CSRF token.
#[derive(Clone, Debug)]
pub struct WebSession {
    pub cookie: String,
    pub csrf: String,
}

/// Adds a web user with `sparkedge user add NAME --role ROLE --password-stdin`.
pub fn add_web_user(data_dir: &Path, name: &str, role: &str, password: &str) {
    use std::io::Write;
    let mut child = Command::new(sparkedge_binary())
        .args([
            "user",
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
            "--data-dir",
        ])
        .arg(data_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sparkedge user add");
    let mut stdin = child.stdin.take().expect("stdin of sparkedge user add");
    writeln!(stdin, "{password}").expect("write the password");
    drop(stdin);
    let out = child
        .wait_with_output()
        .expect("wait for sparkedge user add");
    assert!(
        out.status.success(),
        "sparkedge user add failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Logs in through the login form as a browser does: the form's CSRF cookie and field, then
/// the session cookie, and the session's CSRF token from the start page.
pub fn web_login(port: u16, name: &str, password: &str) -> WebSession {
    let form = http(port, "GET", "/login", &[], "");
    assert_eq!(form.status, 200, "GET /login: {}", form.body);
    let form_token = form
        .set_cookie("sparkedge_csrf")
        .expect("the form's CSRF cookie");
    let fields = format!(
        "username={}&password={}&csrf={form_token}&next=%2F",
        form_encode(name),
        form_encode(password)
    );
    let cookie = format!("sparkedge_csrf={form_token}");
    let response = http(port, "POST", "/login", &[("Cookie", &cookie)], &fields);
    assert_eq!(response.status, 303, "POST /login: {}", response.body);
    let session = response
        .set_cookie("sparkedge_session")
        .expect("a session cookie");
    let cookie = format!("sparkedge_session={session}");
    let page = http(port, "GET", "/", &[("Cookie", &cookie)], "");
    let csrf = page
        .body
        .split("<meta name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no csrf-token on the start page: {}", page.body))
        .to_owned();
    WebSession { cookie, csrf }
}

/// Percent-encodes a form value.
pub fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// One received MQTT publish.
#[derive(Clone, Debug)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

/// An MQTT client whose received publishes arrive on a channel.
#[derive(Debug)]
pub struct Observer {
    pub client: AsyncClient,
    messages: mpsc::UnboundedReceiver<Message>,
    subacks: mpsc::UnboundedReceiver<()>,
}

impl Observer {
    /// Connects to the broker at 127.0.0.1:`port`, retrying until it answers (it may still be
    /// starting), with an optional Will.
    pub async fn connect(port: u16, client_id: &str, will: Option<LastWill>) -> Observer {
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
            options.set_keep_alive(Duration::from_secs(5));
            options.set_max_packet_size(4 << 20, 4 << 20);
            if let Some(will) = will.clone() {
                options.set_last_will(will);
            }
            let (client, mut eventloop) = AsyncClient::new(options, 100);
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    let (tx, messages) = mpsc::unbounded_channel();
                    let (sub_tx, subacks) = mpsc::unbounded_channel();
                    tokio::spawn(async move {
                        while let Ok(event) = eventloop.poll().await {
                            match event {
                                Event::Incoming(Packet::Publish(p)) => {
                                    let _ = tx.send(Message {
                                        topic: p.topic.clone(),
                                        payload: p.payload.to_vec(),
                                        retain: p.retain,
                                    });
                                }
                                Event::Incoming(Packet::SubAck(_)) => {
                                    let _ = sub_tx.send(());
                                }
                                _ => {}
                            }
                        }
                    });
                    return Observer {
                        client,
                        messages,
                        subacks,
                    };
                }
                _ if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await; // retry pacing while the broker starts
                }
                other => panic!("cannot connect to the broker on port {port}: {other:?}"),
            }
        }
    }

    /// Subscribes at QoS 1 and waits for the SUBACK.
    pub async fn subscribe(&mut self, filter: &str) {
        self.client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("queue SUBSCRIBE");
        tokio::time::timeout(DEADLINE, self.subacks.recv())
            .await
            .expect("SUBACK within the deadline")
            .expect("observer connection open");
    }

    /// The next message whose topic satisfies `filter`, skipping others.
    pub async fn next_where(&mut self, what: &str, filter: impl Fn(&Message) -> bool) -> Message {
        self.next_where_within(what, DEADLINE, filter).await
    }

    /// As [`Observer::next_where`], with a deadline of `within` for an event that may
    /// legitimately take longer than [`DEADLINE`] (a driver waiting out its back-off).
    pub async fn next_where_within(
        &mut self,
        what: &str,
        within: Duration,
        filter: impl Fn(&Message) -> bool,
    ) -> Message {
        let wait = async {
            loop {
                let m = self
                    .messages
                    .recv()
                    .await
                    .expect("observer connection open");
                if filter(&m) {
                    return m;
                }
            }
        };
        tokio::time::timeout(within, wait)
            .await
            .unwrap_or_else(|_| panic!("no {what} within {within:?}"))
    }

    /// The messages received so far and not yet taken, without waiting.
    pub fn received(&mut self) -> Vec<Message> {
        std::iter::from_fn(|| self.messages.try_recv().ok()).collect()
    }

    /// The next message, whatever its topic.
    pub async fn next(&mut self, what: &str) -> Message {
        self.next_where(what, |_| true).await
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

/// A child process (a simulated PLC or server) killed and reaped when dropped.
#[derive(Debug)]
pub struct KillOnDrop(pub Child);

impl KillOnDrop {
    /// Spawns `command` with its stdout discarded; `what` names it if it cannot start.
    pub fn spawn(command: &mut Command, what: &str) -> KillOnDrop {
        KillOnDrop(
            command
                .stdout(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("start {what}: {e}")),
        )
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Writes the model file `toml` into `data_dir` and imports it with `sparkedge import`.
pub fn import_model(data_dir: &Path, toml: &str) {
    let path = data_dir.join("model.toml");
    std::fs::write(&path, toml).expect("write model file");
    sparkedge(data_dir, &["import", path.to_str().expect("UTF-8 path")]);
}

/// A Sparkplug Primary Host Application `host_id` on the broker at `port`: its Will is the
/// offline STATE; it subscribes to `filter`, then announces itself online, which is what
/// lets an edge node configured with this host publish its births.
pub async fn primary_host(port: u16, host_id: &str, filter: &str) -> Observer {
    let topic = format!("spBv1.0/STATE/{host_id}");
    let state = |online: bool| format!(r#"{{"online":{online},"timestamp":{}}}"#, now_ms());
    let will = LastWill::new(topic.as_str(), state(false), QoS::AtLeastOnce, true);
    let mut host = Observer::connect(port, host_id, Some(will)).await;
    host.subscribe(filter).await;
    host.client
        .publish(topic, QoS::AtLeastOnce, true, state(true))
        .await
        .expect("publish STATE");
    host
}

/// A received message's payload as the Sparkplug B protobuf, failing the test if it is not one.
pub fn decode(m: &Message) -> sparkplug::proto::Payload {
    use prost::Message as _;
    sparkplug::proto::Payload::decode(m.payload.as_slice())
        .unwrap_or_else(|e| panic!("{} is not a Sparkplug B payload: {e}", m.topic))
}
