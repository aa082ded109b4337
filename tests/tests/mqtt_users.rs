//! MQTT logins on the embedded broker of `sparkedge run` with the service's defaults
//! (anonymous MQTT off), as SCADA and MES clients see them: refused without a login, let in
//! with a user the admin added in the web API or with `sparkedge mqtt-user`, and put out
//! when that user's password changes. The appliance's own Sparkplug session and UNS
//! publisher keep publishing throughout, on their internal login.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Packet, QoS,
};
use system_tests::{Appliance, DEADLINE, add_web_user, http_json, import_model, sparkedge_binary};

/// The demo model: a simulated PLC whose values change every second, so UNS topics flow.
fn demo_model() -> String {
    uns_model::file::to_toml(&uns_model::file::demo_model())
}

/// One CONNECT to the broker with `login`: the event loop once connected, or the refusal.
/// Retries only while nothing listens yet.
async fn connect(
    port: u16,
    id: &str,
    login: Option<(&str, &str)>,
) -> Result<(AsyncClient, EventLoop), ConnectReturnCode> {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let mut options = MqttOptions::new(id, "127.0.0.1", port);
        options.set_keep_alive(Duration::from_secs(5));
        if let Some((user, password)) = login {
            options.set_credentials(user, password);
        }
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        match tokio::time::timeout_at(deadline, eventloop.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(_)))) => return Ok((client, eventloop)),
            Ok(Err(ConnectionError::ConnectionRefused(code))) => return Err(code),
            Ok(other) if tokio::time::Instant::now() < deadline => {
                // Not listening yet (the appliance is starting).
                let _ = other;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("{id}: no CONNACK within {DEADLINE:?}: {other:?}"),
        }
    }
}

/// Subscribes and waits for the first message on `filter`.
async fn first_message(client: &AsyncClient, eventloop: &mut EventLoop, filter: &str) -> String {
    client
        .subscribe(filter, QoS::AtMostOnce)
        .await
        .expect("subscribe");
    let wait = async {
        loop {
            match eventloop.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => return p.topic,
                Ok(_) => {}
                Err(e) => panic!("connection lost while waiting for {filter}: {e}"),
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .unwrap_or_else(|_| panic!("nothing on {filter} within {DEADLINE:?}"))
}

/// Waits until the broker closes the connection.
async fn closed(eventloop: &mut EventLoop) {
    let wait = async {
        loop {
            if eventloop.poll().await.is_err() {
                return;
            }
        }
    };
    tokio::time::timeout(DEADLINE, wait)
        .await
        .expect("the broker closes the connection of a changed login");
}

#[tokio::test(flavor = "multi_thread")]
async fn mqtt_clients_log_in_as_users_the_admin_manages() {
    let data = tempfile::tempdir().expect("temp dir");
    import_model(data.path(), &demo_model());
    add_web_user(data.path(), "ada", "admin", "admin password");
    let app = Appliance::run_with_mqtt(data.path(), "", "");
    let port = app.mqtt_port;

    assert_eq!(
        connect(port, "anonymous", None).await.err(),
        Some(ConnectReturnCode::NotAuthorized),
        "anonymous MQTT is off by default"
    );
    assert_eq!(
        connect(port, "guess", Some(("scada", "not yet a user")))
            .await
            .err(),
        Some(ConnectReturnCode::BadUserNamePassword)
    );

    let ada = system_tests::web_login(app.web_port, "ada", "admin password");
    let user =
        serde_json::json!({"name": "scada", "password": "scada password", "access": "publish"});
    let (status, body) = http_json(app.web_port, &ada, "POST", "/api/mqtt/users", &user);
    assert_eq!(status, 201, "{body}");
    // The broker has the user when the call returns (the appliance is told at once).
    let (scada, mut scada_events) = connect(port, "scada", Some(("scada", "scada password")))
        .await
        .expect("scada logs in");
    // The appliance's own clients publish with anonymous MQTT off: Sparkplug births (kept
    // by the broker) and the UNS tree.
    let birth = first_message(
        &scada,
        &mut scada_events,
        "$sparkplug/certificates/spBv1.0/+/NBIRTH/#",
    )
    .await;
    assert!(birth.contains("/NBIRTH/"), "{birth}");
    let uns = first_message(&scada, &mut scada_events, "acme/#").await;
    assert!(uns.starts_with("acme/"), "{uns}");

    // A new password puts out the client logged in with the old one.
    let change = serde_json::json!({"password": "new scada password"});
    let (status, body) = http_json(app.web_port, &ada, "PUT", "/api/mqtt/users/scada", &change);
    assert_eq!(status, 200, "{body}");
    closed(&mut scada_events).await;
    assert_eq!(
        connect(port, "scada", Some(("scada", "scada password")))
            .await
            .err(),
        Some(ConnectReturnCode::BadUserNamePassword)
    );
    connect(port, "scada", Some(("scada", "new scada password")))
        .await
        .expect("the new password works");

    // A user added on the box from another process is picked up while running.
    let mut add = Command::new(sparkedge_binary())
        .args(["mqtt-user", "add", "mes", "--password-stdin", "--data-dir"])
        .arg(data.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("run sparkedge mqtt-user add");
    add.stdin
        .take()
        .expect("stdin")
        .write_all(b"mes password\n")
        .expect("write the password");
    assert!(add.wait().expect("wait").success());
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match connect(port, "mes", Some(("mes", "mes password"))).await {
            Ok(_) => break,
            Err(code) if tokio::time::Instant::now() < deadline => {
                assert_eq!(code, ConnectReturnCode::BadUserNamePassword);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(code) => panic!("mes is still refused ({code:?}) after {DEADLINE:?}"),
        }
    }
}
