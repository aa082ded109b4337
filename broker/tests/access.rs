//! MQTT users, anonymous access and the internal login, over real TCP with rumqttc clients.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use broker::{Access, Broker, Config, INTERNAL_USER, MqttUser, Permission, hash_password};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, LastWill, MqttOptions,
    Packet, Publish, QoS,
};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

async fn broker(access: Access) -> Broker {
    let mut config = Config::new("127.0.0.1:0".parse().unwrap());
    config.access = access;
    Broker::start(config).await.unwrap()
}

fn user(name: &str, password: &str, permission: Permission) -> MqttUser {
    MqttUser {
        name: name.into(),
        password_hash: hash_password(password),
        permission,
    }
}

/// A client whose incoming packets arrive on a channel, ended by the error that ended its
/// event loop.
struct Client {
    mqtt: AsyncClient,
    incoming: mpsc::UnboundedReceiver<Result<Packet, ConnectionError>>,
    /// Packets passed over while waiting for another, in the order they arrived: a client's
    /// own message can arrive before the PUBACK of its publish.
    passed: VecDeque<Packet>,
    task: tokio::task::JoinHandle<()>,
}

/// Connects with `login` as (user name, password), and returns the client once the broker
/// accepted it, or the return code it refused it with.
async fn connect(
    addr: SocketAddr,
    id: &str,
    login: Option<(&str, &str)>,
    configure: impl FnOnce(&mut MqttOptions),
) -> Result<Client, ConnectReturnCode> {
    let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
    options.set_keep_alive(Duration::from_secs(30));
    if let Some((user, password)) = login {
        options.set_credentials(user, password);
    }
    configure(&mut options);
    let (mqtt, eventloop) = AsyncClient::new(options, 100);
    let (tx, mut incoming) = mpsc::unbounded_channel();
    let task = tokio::spawn(pump(eventloop, tx));
    let first = tokio::time::timeout(WAIT, incoming.recv())
        .await
        .expect("timed out waiting for a CONNACK")
        .expect("the client's event loop ended");
    match first {
        Ok(Packet::ConnAck(_)) => Ok(Client {
            mqtt,
            incoming,
            passed: VecDeque::new(),
            task,
        }),
        Err(ConnectionError::ConnectionRefused(code)) => Err(code),
        other => panic!("{id}: expected a CONNACK, got {other:?}"),
    }
}

async fn pump(
    mut eventloop: EventLoop,
    tx: mpsc::UnboundedSender<Result<Packet, ConnectionError>>,
) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(p)) => {
                if tx.send(Ok(p)).is_err() {
                    return;
                }
            }
            Ok(Event::Outgoing(_)) => {}
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        }
    }
}

impl Client {
    /// The first incoming packet that satisfies `wanted`, within [`WAIT`]. Others are kept
    /// for later calls.
    async fn expect(&mut self, wanted: impl Fn(&Packet) -> bool) -> Packet {
        if let Some(i) = self.passed.iter().position(&wanted) {
            return self.passed.remove(i).unwrap();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let packet = tokio::time::timeout_at(deadline, self.incoming.recv())
                .await
                .expect("timed out waiting for a packet")
                .expect("the client's event loop ended")
                .expect("the connection ended");
            if wanted(&packet) {
                return packet;
            }
            self.passed.push_back(packet);
        }
    }

    async fn next_publish(&mut self) -> Publish {
        match self.expect(|p| matches!(p, Packet::Publish(_))).await {
            Packet::Publish(p) => p,
            _ => unreachable!(),
        }
    }

    async fn subscribe(&mut self, filter: &str, qos: QoS) {
        self.mqtt.subscribe(filter, qos).await.unwrap();
        self.expect(|p| matches!(p, Packet::SubAck(_))).await;
    }

    /// Publishes at QoS 1 and waits for the PUBACK: by then the broker has routed the
    /// message, or dropped it.
    async fn publish_acknowledged(&mut self, topic: &str, payload: &str) {
        self.mqtt
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .unwrap();
        self.expect(|p| matches!(p, Packet::PubAck(_))).await;
    }

    /// Waits until the broker closes the connection.
    async fn closed(mut self) {
        tokio::time::timeout(WAIT, async {
            while let Some(Ok(_)) = self.incoming.recv().await {}
        })
        .await
        .expect("the broker did not close the connection");
    }

    /// Ends the TCP connection without DISCONNECT, as a crash would.
    fn drop_connection(self) {
        self.task.abort();
    }
}

/// Waits until the broker has exactly `n` clients attached.
async fn wait_for_connections(broker: &Broker, n: usize) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while broker.stats().connections != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {} connections, expected {n}",
            broker.stats().connections
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn code(result: Result<Client, ConnectReturnCode>) -> Option<ConnectReturnCode> {
    result.err()
}

#[tokio::test]
async fn anonymous_clients_are_refused_with_code_5_when_off_and_accepted_when_on() {
    let broker = broker(Access {
        allow_anonymous: false,
        users: vec![],
    })
    .await;
    let addr = broker.local_addr();
    assert_eq!(
        code(connect(addr, "anon", None, |_| {}).await),
        Some(ConnectReturnCode::NotAuthorized)
    );
    assert_eq!(broker.stats().refused_logins, 1);

    broker.set_access(Access {
        allow_anonymous: true,
        users: vec![],
    });
    let mut anon = connect(addr, "anon", None, |_| {}).await.unwrap();
    anon.subscribe("t", QoS::AtLeastOnce).await;
    anon.publish_acknowledged("t", "hello").await;
    assert_eq!(&anon.next_publish().await.payload[..], b"hello");
}

#[tokio::test]
async fn a_known_user_gets_in_and_a_wrong_password_or_unknown_user_gets_code_4() {
    let broker = broker(Access {
        allow_anonymous: true,
        users: vec![user("scada", "s3cret", Permission::PublishSubscribe)],
    })
    .await;
    let addr = broker.local_addr();
    let refused = [
        ("scada", "wrong"),
        ("nobody", "s3cret"),
        // A password without a user name: rumqttc sets only the password flag.
        ("", "s3cret"),
        (INTERNAL_USER, "s3cret"),
    ];
    // Credentials are checked even though anonymous clients are allowed.
    for login in refused {
        assert_eq!(
            code(connect(addr, "c", Some(login), |_| {}).await),
            Some(ConnectReturnCode::BadUserNamePassword),
            "{login:?}"
        );
    }
    assert_eq!(broker.stats().refused_logins, refused.len() as u64);
    let mut scada = connect(addr, "scada", Some(("scada", "s3cret")), |_| {})
        .await
        .unwrap();
    scada.subscribe("t", QoS::AtMostOnce).await;
    scada.publish_acknowledged("t", "in").await;
    assert_eq!(&scada.next_publish().await.payload[..], b"in");
}

#[tokio::test]
async fn the_internal_login_gets_in_whatever_the_access_settings_say() {
    // A configured user with the reserved name is ignored: its password does not work.
    let broker = broker(Access {
        allow_anonymous: false,
        users: vec![user(INTERNAL_USER, "guess", Permission::PublishSubscribe)],
    })
    .await;
    let addr = broker.local_addr();
    assert_eq!(
        code(connect(addr, "fake", Some((INTERNAL_USER, "guess")), |_| {}).await),
        Some(ConnectReturnCode::BadUserNamePassword)
    );
    let (name, password) = broker.internal_login();
    assert_eq!(name, INTERNAL_USER);
    assert!(password.len() >= 32, "a long random secret");
    let mut internal = connect(addr, "edge", Some((&name, &password)), |_| {})
        .await
        .unwrap();
    internal.subscribe("spBv1.0/#", QoS::AtLeastOnce).await;
    internal
        .publish_acknowledged("spBv1.0/G/NDATA/E", "data")
        .await;
    assert_eq!(&internal.next_publish().await.payload[..], b"data");

    // A new table does not close it.
    broker.set_access(Access {
        allow_anonymous: false,
        users: vec![],
    });
    internal
        .publish_acknowledged("spBv1.0/G/NDATA/E", "still")
        .await;
    assert_eq!(&internal.next_publish().await.payload[..], b"still");
    assert_eq!(broker.stats().connections, 1);
}

#[tokio::test]
async fn a_subscribe_user_publishes_to_nobody_and_a_publish_subscribe_user_does() {
    let broker = broker(Access {
        allow_anonymous: false,
        users: vec![
            user("mes", "read", Permission::Subscribe),
            user("scada", "write", Permission::PublishSubscribe),
        ],
    })
    .await;
    let addr = broker.local_addr();
    let mut reader = connect(addr, "mes", Some(("mes", "read")), |_| {})
        .await
        .unwrap();
    let mut writer = connect(addr, "scada", Some(("scada", "write")), |_| {})
        .await
        .unwrap();
    for client in [&mut reader, &mut writer] {
        client.subscribe("plant/#", QoS::AtLeastOnce).await;
        client
            .subscribe("$sparkplug/certificates/#", QoS::AtLeastOnce)
            .await;
    }

    // Acknowledged (MQTT 3.1.1 has no refusal for a PUBLISH), and routed nowhere: the first
    // message either subscriber sees is the writer's, published after the PUBACK.
    reader.publish_acknowledged("plant/from-reader", "no").await;
    reader
        .mqtt
        .publish("plant/from-reader", QoS::ExactlyOnce, false, "no")
        .await
        .unwrap();
    reader.expect(|p| matches!(p, Packet::PubComp(_))).await;
    writer
        .publish_acknowledged("plant/from-writer", "yes")
        .await;
    writer
        .publish_acknowledged("spBv1.0/G/NBIRTH/E", "birth")
        .await;
    for client in [&mut reader, &mut writer] {
        assert_eq!(client.next_publish().await.topic, "plant/from-writer");
        let certificate = client.next_publish().await;
        assert_eq!(
            certificate.topic,
            "$sparkplug/certificates/spBv1.0/G/NBIRTH/E"
        );
    }
    assert_eq!(broker.stats().refused_publishes, 2);

    // A read-only user's Will is ignored.
    let with_will = connect(addr, "mes-2", Some(("mes", "read")), |o| {
        o.set_last_will(LastWill::new("plant/will", "gone", QoS::AtLeastOnce, false));
    })
    .await
    .unwrap();
    wait_for_connections(&broker, 3).await;
    with_will.drop_connection();
    wait_for_connections(&broker, 2).await;
    writer.publish_acknowledged("plant/marker", "after").await;
    assert_eq!(writer.next_publish().await.topic, "plant/marker");
}

#[tokio::test]
async fn set_access_closes_the_connections_whose_login_no_longer_holds() {
    let kept = user("kept", "pw-kept", Permission::PublishSubscribe);
    let removed = user("removed", "pw-removed", Permission::PublishSubscribe);
    let rehashed = user("rehashed", "pw-rehashed", Permission::PublishSubscribe);
    let demoted = user("demoted", "pw-demoted", Permission::PublishSubscribe);
    let broker = broker(Access {
        allow_anonymous: true,
        users: vec![
            kept.clone(),
            removed.clone(),
            rehashed.clone(),
            demoted.clone(),
        ],
    })
    .await;
    let addr = broker.local_addr();
    let mut watcher = connect(addr, "watcher", Some(("kept", "pw-kept")), |_| {})
        .await
        .unwrap();
    watcher.subscribe("wills/#", QoS::AtLeastOnce).await;
    let removed_client = connect(addr, "removed", Some(("removed", "pw-removed")), |o| {
        o.set_last_will(LastWill::new(
            "wills/removed",
            "revoked",
            QoS::AtLeastOnce,
            false,
        ));
    })
    .await
    .unwrap();
    let rehashed_client = connect(addr, "rehashed", Some(("rehashed", "pw-rehashed")), |_| {})
        .await
        .unwrap();
    let demoted_client = connect(addr, "demoted", Some(("demoted", "pw-demoted")), |_| {})
        .await
        .unwrap();
    let anonymous = connect(addr, "anon", None, |_| {}).await.unwrap();
    assert_eq!(broker.stats().connections, 5);

    broker.set_access(Access {
        allow_anonymous: false,
        users: vec![
            kept,
            user("rehashed", "pw-rehashed", Permission::PublishSubscribe),
            MqttUser {
                permission: Permission::Subscribe,
                ..demoted
            },
        ],
    });
    removed_client.closed().await;
    rehashed_client.closed().await;
    demoted_client.closed().await;
    anonymous.closed().await;
    // A revoked client ends like any connection lost without DISCONNECT: its Will goes out.
    let will = watcher.next_publish().await;
    assert_eq!(
        (will.topic.as_str(), &will.payload[..]),
        ("wills/removed", &b"revoked"[..])
    );

    assert_eq!(
        code(connect(addr, "removed", Some(("removed", "pw-removed")), |_| {}).await),
        Some(ConnectReturnCode::BadUserNamePassword)
    );
    assert_eq!(
        code(connect(addr, "anon", None, |_| {}).await),
        Some(ConnectReturnCode::NotAuthorized)
    );
    // The same password under a new hash, and the same login with its new permission, get
    // back in.
    let _rehashed = connect(addr, "rehashed", Some(("rehashed", "pw-rehashed")), |_| {})
        .await
        .unwrap();
    let mut demoted = connect(addr, "demoted", Some(("demoted", "pw-demoted")), |_| {})
        .await
        .unwrap();
    demoted.publish_acknowledged("wills/forged", "x").await;

    // The unaffected user stayed connected throughout.
    watcher.subscribe("watcher/marker", QoS::AtMostOnce).await;
    watcher.publish_acknowledged("watcher/marker", "here").await;
    assert_eq!(watcher.next_publish().await.topic, "watcher/marker");
    assert_eq!(broker.stats().connections, 3);
}

#[tokio::test]
async fn a_client_id_in_use_cannot_be_taken_over_by_another_login() {
    let broker = broker(Access {
        allow_anonymous: true,
        users: vec![
            user("mes", "mes password", Permission::Subscribe),
            user("scada", "scada password", Permission::PublishSubscribe),
        ],
    })
    .await;
    let addr = broker.local_addr();
    let (name, password) = broker.internal_login();
    let will = |options: &mut MqttOptions| {
        options.set_last_will(LastWill::new(
            "spBv1.0/G/NDEATH/E",
            "death",
            QoS::AtLeastOnce,
            false,
        ));
    };
    let mut edge = connect(addr, "sparkedge-E", Some((&name, &password)), will)
        .await
        .unwrap();
    let mut watcher = connect(addr, "watcher", Some(("scada", "scada password")), |_| {})
        .await
        .unwrap();
    watcher.subscribe("spBv1.0/#", QoS::AtLeastOnce).await;
    // Neither a read-only user nor an anonymous client can knock the session off.
    for login in [Some(("mes", "mes password")), None] {
        assert_eq!(
            code(connect(addr, "sparkedge-E", login, |_| {}).await),
            Some(ConnectReturnCode::BadClientId),
            "{login:?}"
        );
    }
    edge.publish_acknowledged("spBv1.0/G/NDATA/E", "alive")
        .await;
    assert_eq!(
        &watcher.next_publish().await.payload[..],
        b"alive",
        "no Will went out"
    );

    // The same login takes over, as a reconnecting client must.
    let scada = connect(addr, "scada-1", Some(("scada", "scada password")), |_| {})
        .await
        .unwrap();
    let _again = connect(addr, "scada-1", Some(("scada", "scada password")), |_| {})
        .await
        .unwrap();
    scada.closed().await;
}
