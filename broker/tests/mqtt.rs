//! The broker over real TCP, driven by rumqttc clients and by raw bytes where the exact
//! packet matters.

use std::net::SocketAddr;
use std::time::Duration;

use broker::{Broker, Config};
use rumqttc::{
    AsyncClient, ConnAck, ConnectReturnCode, Event, EventLoop, LastWill, MqttOptions, Packet,
    Publish, QoS,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(10);

async fn broker() -> Broker {
    Broker::start(Config::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap()
}

/// A connected client whose incoming packets arrive on a channel.
struct Client {
    mqtt: AsyncClient,
    incoming: mpsc::UnboundedReceiver<Packet>,
    task: tokio::task::JoinHandle<()>,
}

impl Client {
    async fn connect(
        addr: SocketAddr,
        id: &str,
        configure: impl FnOnce(&mut MqttOptions),
    ) -> Client {
        let mut options = MqttOptions::new(id, addr.ip().to_string(), addr.port());
        options.set_keep_alive(Duration::from_secs(30));
        configure(&mut options);
        let (mqtt, eventloop) = AsyncClient::new(options, 100);
        let (tx, incoming) = mpsc::unbounded_channel();
        let task = tokio::spawn(pump(eventloop, tx));
        let mut client = Client {
            mqtt,
            incoming,
            task,
        };
        client.expect(|p| matches!(p, Packet::ConnAck(_))).await;
        client
    }

    /// The next incoming packet that satisfies `wanted`, skipping others, within [`WAIT`].
    async fn expect(&mut self, wanted: impl Fn(&Packet) -> bool) -> Packet {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let packet = tokio::time::timeout_at(deadline, self.incoming.recv())
                .await
                .expect("timed out waiting for a packet")
                .expect("the client's event loop ended");
            if wanted(&packet) {
                return packet;
            }
        }
    }

    async fn publish_on(&mut self, topic: &str) -> Publish {
        match self
            .expect(|p| matches!(p, Packet::Publish(p) if p.topic == topic))
            .await
        {
            Packet::Publish(p) => p,
            _ => unreachable!(),
        }
    }

    async fn subscribe(&mut self, filter: &str, qos: QoS) {
        self.mqtt.subscribe(filter, qos).await.unwrap();
        self.expect(|p| matches!(p, Packet::SubAck(_))).await;
    }

    /// Publishes nothing more and collects what is already on the way: every packet that
    /// arrives before a marker message the client publishes to itself.
    async fn drain(&mut self, marker_topic: &str) -> Vec<Publish> {
        self.mqtt
            .subscribe(marker_topic, QoS::AtMostOnce)
            .await
            .unwrap();
        self.mqtt
            .publish(marker_topic, QoS::AtMostOnce, false, "marker")
            .await
            .unwrap();
        let mut seen = Vec::new();
        loop {
            match self.expect(|p| matches!(p, Packet::Publish(_))).await {
                Packet::Publish(p) if p.topic == marker_topic => return seen,
                Packet::Publish(p) => seen.push(p),
                _ => unreachable!(),
            }
        }
    }

    /// Ends the TCP connection without DISCONNECT, as a crash or a pulled cable would.
    fn drop_connection(self) {
        self.task.abort();
    }
}

async fn pump(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Packet>) {
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(p)) => {
                if tx.send(p).is_err() {
                    return;
                }
            }
            Ok(Event::Outgoing(_)) => {}
            Err(_) => return,
        }
    }
}

#[tokio::test]
async fn qos0_and_qos1_round_trip_and_retained_messages_reach_late_subscribers() {
    let broker = broker().await;
    let addr = broker.local_addr();
    let mut sub = Client::connect(addr, "sub", |_| {}).await;
    sub.subscribe("plant/#", QoS::AtLeastOnce).await;
    let mut publisher = Client::connect(addr, "pub", |_| {}).await;
    publisher
        .mqtt
        .publish("plant/a", QoS::AtMostOnce, false, "zero")
        .await
        .unwrap();
    publisher
        .mqtt
        .publish("plant/b", QoS::AtLeastOnce, true, "one")
        .await
        .unwrap();
    publisher.expect(|p| matches!(p, Packet::PubAck(_))).await;
    let a = sub.publish_on("plant/a").await;
    assert_eq!((a.qos, &a.payload[..]), (QoS::AtMostOnce, &b"zero"[..]));
    let b = sub.publish_on("plant/b").await;
    assert_eq!(b.qos, QoS::AtLeastOnce);
    assert!(
        !b.retain,
        "a live subscriber gets retain = 0 [MQTT-3.3.1-9]"
    );

    let mut late = Client::connect(addr, "late", |_| {}).await;
    late.subscribe("plant/+", QoS::AtMostOnce).await;
    let b = late.publish_on("plant/b").await;
    assert!(b.retain);
    assert_eq!(b.qos, QoS::AtMostOnce, "delivered at the granted QoS");
    assert_eq!(&b.payload[..], b"one");
    assert!(
        late.drain("late/marker").await.is_empty(),
        "plant/a was not retained"
    );

    // An empty retained message clears; late subscribers get nothing afterwards.
    publisher
        .mqtt
        .publish("plant/b", QoS::AtLeastOnce, true, "")
        .await
        .unwrap();
    publisher.expect(|p| matches!(p, Packet::PubAck(_))).await;
    let mut later = Client::connect(addr, "later", |_| {}).await;
    later.subscribe("plant/#", QoS::AtMostOnce).await;
    assert!(later.drain("later/marker").await.is_empty());
}

#[tokio::test]
async fn a_lost_connection_publishes_its_retained_qos1_will_and_a_disconnect_does_not() {
    let broker = broker().await;
    let addr = broker.local_addr();
    let mut watcher = Client::connect(addr, "watcher", |_| {}).await;
    watcher.subscribe("wills/#", QoS::AtLeastOnce).await;

    let polite = Client::connect(addr, "polite", |o| {
        o.set_last_will(LastWill::new(
            "wills/polite",
            "gone",
            QoS::AtLeastOnce,
            false,
        ));
    })
    .await;
    polite.mqtt.disconnect().await.unwrap();
    wait_for_connections(&broker, 1).await;
    let crashing = Client::connect(addr, "crashing", |o| {
        o.set_last_will(LastWill::new(
            "wills/crashing",
            "dead",
            QoS::AtLeastOnce,
            true,
        ));
    })
    .await;
    crashing.drop_connection();

    let will = watcher.publish_on("wills/crashing").await;
    assert_eq!(
        (&will.payload[..], will.qos),
        (&b"dead"[..], QoS::AtLeastOnce)
    );
    let mut late = Client::connect(addr, "late", |_| {}).await;
    late.subscribe("wills/#", QoS::AtLeastOnce).await;
    let retained = late.publish_on("wills/crashing").await;
    assert!(retained.retain, "the Will was retained");
    assert!(
        watcher
            .drain("watcher/marker")
            .await
            .iter()
            .all(|p| p.topic != "wills/polite"),
        "a client that said DISCONNECT has no Will published"
    );
}

#[tokio::test]
async fn keep_alive_expiry_and_takeover_publish_the_will() {
    let broker = broker().await;
    let addr = broker.local_addr();
    let mut watcher = Client::connect(addr, "watcher", |_| {}).await;
    watcher.subscribe("wills/#", QoS::AtMostOnce).await;

    // A raw client that connects with a 1 s keep-alive and then falls silent.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    silent
        .write_all(&connect_packet(
            4,
            "silent",
            1,
            Some(("wills/silent", b"timeout")),
        ))
        .await
        .unwrap();
    let mut connack = [0u8; 4];
    silent.read_exact(&mut connack).await.unwrap();
    assert_eq!(connack, [0x20, 2, 0, 0]);
    let will = watcher.publish_on("wills/silent").await;
    assert_eq!(&will.payload[..], b"timeout");

    let mut first = Client::connect(addr, "edge", |o| {
        o.set_last_will(LastWill::new(
            "wills/edge",
            "taken over",
            QoS::AtMostOnce,
            false,
        ));
    })
    .await;
    let _second = Client::connect(addr, "edge", |_| {}).await;
    let will = watcher.publish_on("wills/edge").await;
    assert_eq!(&will.payload[..], b"taken over");
    // The first connection was closed by the broker: its event loop ends.
    tokio::time::timeout(WAIT, async {
        while first.incoming.recv().await.is_some() {}
    })
    .await
    .expect("the taken-over connection was not closed");
}

#[tokio::test]
async fn sparkplug_births_are_kept_on_certificate_topics() {
    let broker = broker().await;
    let addr = broker.local_addr();
    let mut host = Client::connect(addr, "host", |_| {}).await;
    host.subscribe("spBv1.0/G/#", QoS::AtLeastOnce).await;
    host.subscribe("$sparkplug/certificates/spBv1.0/G/#", QoS::AtLeastOnce)
        .await;
    let mut everything = Client::connect(addr, "everything", |_| {}).await;
    everything.subscribe("#", QoS::AtMostOnce).await;

    let edge = Client::connect(addr, "edge", |_| {}).await;
    for (topic, payload) in [
        ("spBv1.0/G/NBIRTH/E", "nbirth-1"),
        ("spBv1.0/G/DBIRTH/E/D", "dbirth-1"),
        ("spBv1.0/G/NBIRTH/E", "nbirth-2"),
        ("spBv1.0/G/NDATA/E", "data"),
    ] {
        edge.mqtt
            .publish(topic, QoS::AtMostOnce, false, payload)
            .await
            .unwrap();
    }
    let birth = host.publish_on("spBv1.0/G/NBIRTH/E").await;
    assert!(!birth.retain, "births stay non-retained on their own topic");
    let certificate = host
        .publish_on("$sparkplug/certificates/spBv1.0/G/NBIRTH/E")
        .await;
    assert_eq!(&certificate.payload[..], b"nbirth-1");
    assert!(
        !certificate.retain,
        "live delivery to an existing subscription"
    );

    host.publish_on("spBv1.0/G/NDATA/E").await;

    // A new subscriber gets the latest births, unmodified and retained.
    let mut late = Client::connect(addr, "late", |_| {}).await;
    late.subscribe("$sparkplug/certificates/#", QoS::AtLeastOnce)
        .await;
    let mut got: Vec<_> = late
        .drain("late/marker")
        .await
        .into_iter()
        .map(|p| (p.topic, p.payload.to_vec(), p.retain))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            (
                "$sparkplug/certificates/spBv1.0/G/DBIRTH/E/D".to_owned(),
                b"dbirth-1".to_vec(),
                true
            ),
            (
                "$sparkplug/certificates/spBv1.0/G/NBIRTH/E".to_owned(),
                b"nbirth-2".to_vec(),
                true
            ),
        ]
    );
    // `#` never sees `$` topics [MQTT-4.7.2-1].
    assert!(
        everything
            .drain("everything/marker")
            .await
            .iter()
            .all(|p| !p.topic.starts_with('$'))
    );
}

#[tokio::test]
async fn clients_cannot_forge_certificates() {
    let broker = broker().await;
    let addr = broker.local_addr();
    let mut forger = Client::connect(addr, "forger", |_| {}).await;
    forger
        .mqtt
        .publish(
            "$sparkplug/certificates/spBv1.0/G/NBIRTH/E",
            QoS::AtLeastOnce,
            true,
            "forged",
        )
        .await
        .unwrap();
    // Acknowledged (as an ACL refusal would be), so the client does not resend forever...
    forger.expect(|p| matches!(p, Packet::PubAck(_))).await;
    // ...and neither stored nor forwarded.
    let mut reader = Client::connect(addr, "reader", |_| {}).await;
    reader
        .subscribe("$sparkplug/certificates/#", QoS::AtMostOnce)
        .await;
    assert!(reader.drain("reader/marker").await.is_empty());
    assert_eq!(broker.stats().retained, 0);
}

#[tokio::test]
async fn a_persistent_session_gets_what_was_published_while_it_was_away() {
    let broker = broker().await;
    let addr = broker.local_addr();
    let mut mes = Client::connect(addr, "mes", |o| {
        o.set_clean_session(false);
    })
    .await;
    mes.subscribe("orders/#", QoS::AtLeastOnce).await;
    mes.mqtt.disconnect().await.unwrap();
    wait_for_connections(&broker, 0).await;

    let mut erp = Client::connect(addr, "erp", |_| {}).await;
    erp.mqtt
        .publish("orders/1", QoS::AtLeastOnce, false, "order 1")
        .await
        .unwrap();
    erp.expect(|p| matches!(p, Packet::PubAck(_))).await;

    let mut mes = Client::connect(addr, "mes", |o| {
        o.set_clean_session(false);
    })
    .await;
    let order = mes.publish_on("orders/1").await;
    assert_eq!(&order.payload[..], b"order 1");
}

#[tokio::test]
async fn qos2_publishes_are_delivered_once() {
    let broker = broker().await;
    let addr = broker.local_addr();
    let mut sub = Client::connect(addr, "sub", |_| {}).await;
    sub.subscribe("exact", QoS::ExactlyOnce).await;
    let mut publisher = Client::connect(addr, "pub", |_| {}).await;
    publisher
        .mqtt
        .publish("exact", QoS::ExactlyOnce, false, "once")
        .await
        .unwrap();
    publisher.expect(|p| matches!(p, Packet::PubComp(_))).await;
    let got = sub.publish_on("exact").await;
    assert_eq!(
        got.qos,
        QoS::AtLeastOnce,
        "QoS 2 subscriptions are granted QoS 1"
    );
    assert!(sub.drain("sub/marker").await.is_empty(), "delivered once");
}

#[tokio::test]
async fn other_protocol_levels_are_refused_with_return_code_1() {
    let broker = broker().await;
    for level in [3u8, 5] {
        let mut stream = TcpStream::connect(broker.local_addr()).await.unwrap();
        stream
            .write_all(&connect_packet(level, "v", 10, None))
            .await
            .unwrap();
        let mut connack = [0u8; 4];
        stream.read_exact(&mut connack).await.unwrap();
        assert_eq!(
            ConnAck::new(ConnectReturnCode::RefusedProtocolVersion, false).code as u8,
            connack[3],
            "level {level}"
        );
    }
}

#[tokio::test]
async fn garbage_closes_only_its_own_connection() {
    let broker = broker().await;
    let addr = broker.local_addr();
    let mut sub = Client::connect(addr, "sub", |_| {}).await;
    sub.subscribe("t", QoS::AtMostOnce).await;
    let garbage: [&[u8]; 5] = [
        b"GET / HTTP/1.1\r\n\r\n",
        &[0x10, 0xff, 0xff, 0xff, 0xff, 0x7f],
        &[0x30, 0x02, 0x00, 0x05],
        &[0x10, 0x00],
        &[0xf0, 0x00],
    ];
    for bytes in garbage {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(bytes).await.unwrap();
        let mut rest = Vec::new();
        tokio::time::timeout(WAIT, stream.read_to_end(&mut rest))
            .await
            .expect("the broker did not close a garbage connection")
            .ok();
    }
    let publisher = Client::connect(addr, "pub", |_| {}).await;
    publisher
        .mqtt
        .publish("t", QoS::AtMostOnce, false, "still here")
        .await
        .unwrap();
    assert_eq!(&sub.publish_on("t").await.payload[..], b"still here");
}

#[tokio::test]
async fn a_connect_too_large_for_a_stranger_is_closed_at_once() {
    let broker = broker().await;
    let mut stream = TcpStream::connect(broker.local_addr()).await.unwrap();
    // A CONNECT announcing 1 MiB: the broker does not wait for it (nor for its timeout).
    stream.write_all(&[0x10, 0x80, 0x80, 0x40]).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(
        Config::new(broker.local_addr()).connect_timeout / 2,
        stream.read_to_end(&mut rest),
    )
    .await
    .expect("the broker waited for an oversized CONNECT")
    .ok();
    assert!(rest.is_empty(), "no CONNACK: {rest:?}");
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

/// An MQTT CONNECT with a clean session, as bytes, for protocol `level` (3 is MQTT 3.1,
/// which names itself "MQIsdp").
fn connect_packet(level: u8, id: &str, keep_alive: u16, will: Option<(&str, &[u8])>) -> Vec<u8> {
    let name: &[u8] = if level == 3 { b"MQIsdp" } else { b"MQTT" };
    let mut body = Vec::new();
    body.extend_from_slice(&(name.len() as u16).to_be_bytes());
    body.extend_from_slice(name);
    body.push(level);
    body.push(0x02 | if will.is_some() { 0x04 } else { 0 });
    body.extend_from_slice(&keep_alive.to_be_bytes());
    if level == 5 {
        body.push(0); // no properties
    }
    body.extend_from_slice(&(id.len() as u16).to_be_bytes());
    body.extend_from_slice(id.as_bytes());
    if let Some((topic, payload)) = will {
        body.extend_from_slice(&(topic.len() as u16).to_be_bytes());
        body.extend_from_slice(topic.as_bytes());
        body.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        body.extend_from_slice(payload);
    }
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend_from_slice(&body);
    packet
}
