//! OPC UA security against the simulated server (async-opcua's server) over TCP on
//! 127.0.0.1: Basic256Sha256 SignAndEncrypt with certificates trusted both ways, each trust
//! an explicit act on its own side; user name and X.509 identities; a wrong password.

use std::path::Path;
use std::time::Duration;

use southbound::opcua::pki::Pki;
use southbound::opcua::sim_server::{SimConfig, SimSecurity, SimServer};
use southbound::{Context, DeviceId, DriverEvent, WriteCommand};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, timeout};
use uns_model::{
    DataType, Device, DriverConfig, OpcUaIdentity, OpcUaSecurityPolicy, Quality, Tag, TagId, Value,
};

const DEADLINE: Duration = Duration::from_secs(30);

async fn start_sim(pki: &Path, security: SimSecurity) -> (SimServer, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let config = SimConfig {
        tick: Duration::from_millis(100),
        pki_dir: pki.to_owned(),
        security: Some(security),
        ..SimConfig::default()
    };
    (SimServer::start(listener, config).await.unwrap(), port)
}

fn device(port: u16, policy: OpcUaSecurityPolicy, identity: OpcUaIdentity) -> Device {
    let mut driver = DriverConfig::opc_ua(format!("opc.tcp://127.0.0.1:{port}/"));
    if let DriverConfig::OpcUa {
        security_policy,
        identity: id,
        period_ms,
        timeout_ms,
        ..
    } = &mut driver
    {
        *security_policy = policy;
        *id = identity;
        *period_ms = 100;
        *timeout_ms = 3000;
    }
    Device {
        name: "plc".into(),
        enabled: true,
        driver,
    }
}

fn tags() -> Vec<Tag> {
    vec![
        Tag::new(
            "plc",
            "a/l",
            "counter",
            DataType::Int32,
            "nsu=urn:sparkedge:sim;s=Changing.Int32",
        ),
        Tag {
            writable: true,
            ..Tag::new(
                "plc",
                "a/l",
                "setpoint",
                DataType::Float64,
                "nsu=urn:sparkedge:sim;s=Writable.Double",
            )
        },
    ]
}

struct Driver {
    events: mpsc::Receiver<DriverEvent>,
    handle: southbound::DriverHandle,
}

impl Driver {
    fn start(device: &Device, pki: &Pki) -> Driver {
        let (tx, events) = mpsc::channel(256);
        let tags = tags();
        let tags: Vec<(TagId, &Tag)> = tags
            .iter()
            .enumerate()
            .map(|(i, t)| (TagId(i as u32), t))
            .collect();
        let context = Context {
            scan_classes: &[],
            opcua_pki: Some(pki),
        };
        let handle = southbound::spawn(DeviceId(0), device, &tags, &context, tx);
        Driver { events, handle }
    }

    /// The next device status: online, or offline with its reason.
    async fn status(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.events.recv()).await {
                Err(_) => panic!("no device status within {DEADLINE:?}"),
                Ok(None) => panic!("the driver stopped"),
                Ok(Some(DriverEvent::DeviceStatus { online: true, .. })) => return Ok(()),
                Ok(Some(DriverEvent::DeviceStatus { error, .. })) => {
                    return Err(error.unwrap_or_default());
                }
                Ok(Some(DriverEvent::Samples(_))) => {}
            }
        }
    }

    /// Waits for a good sample of `tag`.
    async fn good_value(&mut self, tag: u32) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.events.recv()).await {
                Err(_) => panic!("no value of tag {tag} within {DEADLINE:?}"),
                Ok(None) => panic!("the driver stopped"),
                Ok(Some(DriverEvent::Samples(samples))) => {
                    if let Some(v) = samples
                        .into_iter()
                        .find(|s| s.tag.0 == tag && s.quality == Quality::Good)
                        .and_then(|s| s.value)
                    {
                        return v;
                    }
                }
                Ok(Some(other)) => panic!("unexpected {other:?}"),
            }
        }
    }

    async fn write(&mut self, tag: u32, value: Value) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        self.handle
            .write(WriteCommand {
                tag: TagId(tag),
                value,
                reply: Some(reply),
            })
            .unwrap();
        timeout(DEADLINE, answer).await.unwrap().unwrap()
    }
}

/// Moves every certificate the server refused into its trusted folder, as its administrator
/// would; returns how many there were.
fn trust_on_server(server_pki: &Path) -> usize {
    let rejected = std::fs::read_dir(server_pki.join("rejected")).unwrap();
    let mut n = 0;
    for entry in rejected {
        let path = entry.unwrap().path();
        let target = server_pki.join("trusted").join(path.file_name().unwrap());
        std::fs::rename(&path, target).unwrap();
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic256sha256_sign_and_encrypt_after_trust_on_both_sides() {
    let client_dir = tempfile::tempdir().unwrap();
    let server_dir = tempfile::tempdir().unwrap();
    let pki = Pki::open(client_dir.path()).unwrap();
    let security = SimSecurity {
        user: Some(("operator".into(), "s3cret".into())),
        ..SimSecurity::default()
    };
    let (_sim, port) = start_sim(server_dir.path(), security).await;
    let mut dev = device(
        port,
        OpcUaSecurityPolicy::Basic256Sha256,
        OpcUaIdentity::Username,
    );
    if let DriverConfig::OpcUa {
        username, password, ..
    } = &mut dev.driver
    {
        *username = Some("operator".into());
        *password = Some("s3cret".into());
    }
    let mut driver = Driver::start(&dev, &pki);

    // 1. We do not know the server: refused before anything is sent, with the thumbprint
    //    and the command that trusts it; the certificate waits in our rejected folder.
    let err = driver.status().await.unwrap_err();
    let rejected = pki.rejected().unwrap();
    assert_eq!(rejected.len(), 1, "{err}");
    let thumbprint = &rejected[0].thumbprint;
    assert!(
        err.contains("not trusted") && err.contains(&format!("sparkedge opcua trust {thumbprint}")),
        "{err}"
    );
    pki.trust(thumbprint).unwrap();

    // 2. The server does not know us: it refuses, and the error names our certificate.
    let err = driver.status().await.unwrap_err();
    let own = pki.own().unwrap();
    assert!(err.contains(&own.thumbprint), "{err}");
    assert_eq!(trust_on_server(server_dir.path()), 1, "{err}");

    // 3. Trusted both ways: the session comes up encrypted, values arrive, a write lands.
    driver.status().await.unwrap();
    assert!(matches!(driver.good_value(0).await, Value::Int32(_)));
    driver.write(1, Value::Float64(12.5)).await.unwrap();
    assert_eq!(driver.good_value(1).await, Value::Float64(12.5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_reported_and_a_user_certificate_is_accepted() {
    let client_dir = tempfile::tempdir().unwrap();
    let server_dir = tempfile::tempdir().unwrap();
    let user_dir = tempfile::tempdir().unwrap();
    let pki = Pki::open(client_dir.path()).unwrap();
    // Any key pair serves as a user's; this one is made the same way as ours.
    let user = Pki::open(user_dir.path()).unwrap();
    let security = SimSecurity {
        user: Some(("operator".into(), "s3cret".into())),
        user_certificate: Some(user.certificate_path()),
    };
    let (_sim, port) = start_sim(server_dir.path(), security).await;

    // Trust set up beforehand, as a commissioning engineer would with both certificates.
    let server_cert = server_dir.path().join("own/cert.der");
    pki.trust(server_cert.to_str().unwrap()).unwrap();
    // The server's folder has our layout, so our own tool trusts on its side too.
    Pki::open(server_dir.path())
        .unwrap()
        .trust(pki.certificate_path().to_str().unwrap())
        .unwrap();

    let mut dev = device(
        port,
        OpcUaSecurityPolicy::Aes256Sha256RsaPss,
        OpcUaIdentity::Username,
    );
    if let DriverConfig::OpcUa {
        username, password, ..
    } = &mut dev.driver
    {
        *username = Some("operator".into());
        *password = Some("wrong".into());
    }
    let mut driver = Driver::start(&dev, &pki);
    let err = driver.status().await.unwrap_err();
    assert!(
        err.contains("BadUserAccessDenied") || err.contains("BadIdentityToken"),
        "{err}"
    );
    drop(driver);

    let mut dev = device(
        port,
        OpcUaSecurityPolicy::Aes128Sha256RsaOaep,
        OpcUaIdentity::Certificate,
    );
    if let DriverConfig::OpcUa {
        user_certificate,
        user_private_key,
        ..
    } = &mut dev.driver
    {
        *user_certificate = Some(user.certificate_path().display().to_string());
        *user_private_key = Some(user.private_key_path().display().to_string());
    }
    let mut driver = Driver::start(&dev, &pki);
    driver.status().await.unwrap();
    assert!(matches!(driver.good_value(0).await, Value::Int32(_)));
}
