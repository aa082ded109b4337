//! One client connection: a reader that turns packets into router calls, and a writer that
//! drains the session's queue onto the socket. All state lives in the router.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use rumqttc::mqttbytes::v4::{ConnAck, ConnectReturnCode, Packet, PubAck, PubComp, PubRec};
use rumqttc::mqttbytes::{Error as CodecError, Protocol, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::access::{Gate, Identity, Permission};
use crate::router::{Link, Message, Out, Router, min_qos};
use crate::{Config, topic};

/// Why a connection ended, for the log.
#[derive(Debug)]
enum End {
    /// The client sent DISCONNECT: no Will.
    Graceful,
    /// Anything else: the Will is published.
    Lost(String),
}

pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    router: Arc<Mutex<Router>>,
    gate: Arc<Gate>,
    config: Arc<Config>,
) {
    // Nagle would hold small publishes back for tens of milliseconds (see BENCHMARKS.md).
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let mut buf = BytesMut::with_capacity(4096);
    // One deadline for the CONNECT and its login check, so a client cannot hold a
    // connection open longer by being slow at both.
    let deadline = tokio::time::Instant::now() + config.connect_timeout;
    let first = tokio::time::timeout_at(deadline, async {
        // Anything but CONNECT first (an HTTP request, a TLS hello) is closed at once instead
        // of waiting for a frame length made of other bytes.
        while buf.is_empty() {
            if reader.read_buf(&mut buf).await? == 0 {
                return Err(CodecError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
        if buf[0] != 0x10 {
            return Err(CodecError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("the first byte is {:#04x}, not a CONNECT", buf[0]),
            )));
        }
        read_packet(&mut reader, &mut buf, config.max_connect_size).await
    })
    .await;
    let mut connect = match first {
        Ok(Ok(Packet::Connect(c))) if c.protocol == Protocol::V4 => c,
        Ok(Ok(Packet::Connect(_)))
        | Ok(Err(CodecError::InvalidProtocol | CodecError::InvalidProtocolLevel(_))) => {
            // [MQTT-3.1.2-2]: refuse protocol levels we do not speak with return code 1, so
            // an MQTT 5 client can fall back to 3.1.1.
            tracing::info!(%peer, "refused a client that does not speak MQTT 3.1.1");
            refuse(&mut writer, ConnectReturnCode::RefusedProtocolVersion).await;
            return;
        }
        Ok(Ok(other)) => {
            tracing::warn!(%peer, "closed a connection whose first packet was {other:?}, not CONNECT");
            return;
        }
        Ok(Err(e)) => {
            tracing::debug!(%peer, "closed a connection before CONNECT: {e}");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, "closed a connection that sent no CONNECT in time");
            return;
        }
    };
    // For the logs of a refusal; a connection that gets in names its user by its identity.
    let user = connect
        .login
        .as_ref()
        .map(|l| l.username.clone())
        .unwrap_or_default();
    // The password leaves the CONNECT here: the connection keeps the rest for its lifetime.
    let table = lock(&router).access();
    let checked = tokio::time::timeout_at(deadline, gate.check(connect.login.take(), table));
    let login = match checked.await {
        Ok(Ok(login)) => login,
        Ok(Err(refused)) => {
            lock(&router).count_refused_login();
            tracing::warn!(%peer, client_id = connect.client_id, user, "refused a login: {}", refused.why);
            refuse(&mut writer, refused.code).await;
            return;
        }
        Err(_) => {
            // Logins are checked one at a time; under a flood of them, this one waited too
            // long. Code 3 tells the client to try again later, unlike 4 or 5.
            tracing::warn!(%peer, client_id = connect.client_id, user, "refused a connection: its login could not be checked in time");
            refuse(&mut writer, ConnectReturnCode::ServiceUnavailable).await;
            return;
        }
    };
    if login.permission == Permission::Subscribe && connect.last_will.take().is_some() {
        // Accepting the connection without the Will, like a read-only client's PUBLISHes:
        // refusing it would lock out clients that set a Will by default and only read.
        tracing::warn!(%peer, client_id = connect.client_id, user, "ignored the Will of a read-only user");
    }
    if let Some(will) = &connect.last_will
        && let Err(why) = check_publish_topic(&will.topic)
    {
        tracing::warn!(%peer, client_id = connect.client_id, topic = will.topic, "refused a Will: {why}");
        refuse(&mut writer, ConnectReturnCode::NotAuthorized).await;
        return;
    }
    let permission = login.permission;
    let who = login.who.clone();
    let link = Arc::new(Link::default());
    let attached = lock(&router).connect(&connect, link.clone(), login);
    let (client_id, conn) = match attached {
        Ok(a) => a,
        Err(code) => {
            tracing::warn!(%peer, client_id = connect.client_id, user, "refused a connection: {code:?}");
            refuse(&mut writer, code).await;
            return;
        }
    };
    drop(user);
    tracing::debug!(%peer, client_id, user = who.user_name(), "client connected");
    let write_task = tokio::spawn(write_loop(
        writer,
        router.clone(),
        client_id.clone(),
        conn,
        link.clone(),
    ));
    let client = Client {
        id: &client_id,
        who,
        permission,
        keep_alive: connect.keep_alive,
    };
    let end = read_loop(reader, buf, &client, &router, &link, &config).await;
    lock(&router).detach(&client_id, Some(conn), matches!(end, End::Graceful));
    match end {
        End::Graceful => tracing::debug!(%peer, client_id, "client disconnected"),
        End::Lost(why) => tracing::info!(%peer, client_id, "connection lost: {why}"),
    }
    let _ = write_task.await;
}

fn lock(router: &Mutex<Router>) -> std::sync::MutexGuard<'_, Router> {
    // A panic while holding the lock is a bug; keep serving the other clients.
    router.lock().unwrap_or_else(|e| e.into_inner())
}

async fn refuse(writer: &mut OwnedWriteHalf, code: ConnectReturnCode) {
    let mut out = BytesMut::new();
    if ConnAck::new(code, false).write(&mut out).is_ok() {
        let _ = writer.write_all(&out).await;
    }
    let _ = writer.shutdown().await;
}

/// Clients may not publish under `$`: those topics belong to the broker (the Sparkplug
/// certificates, spec §2.19, would otherwise be forgeable).
fn check_publish_topic(topic: &str) -> Result<(), &'static str> {
    topic::check_name(topic)?;
    if topic.starts_with('$') {
        return Err("topics starting with $ are reserved to the broker");
    }
    Ok(())
}

async fn read_packet(
    reader: &mut OwnedReadHalf,
    buf: &mut BytesMut,
    max_size: usize,
) -> Result<Packet, CodecError> {
    loop {
        match Packet::read(buf, max_size) {
            Err(CodecError::InsufficientBytes(needed)) => {
                buf.reserve(needed.max(4096));
                if reader.read_buf(buf).await? == 0 {
                    return Err(CodecError::Io(std::io::ErrorKind::UnexpectedEof.into()));
                }
            }
            other => return other,
        }
    }
}

/// What the reader knows of the client it serves.
struct Client<'a> {
    id: &'a str,
    who: Identity,
    permission: Permission,
    /// From the CONNECT, in seconds.
    keep_alive: u16,
}

async fn read_loop(
    mut reader: OwnedReadHalf,
    mut buf: BytesMut,
    client: &Client<'_>,
    router: &Mutex<Router>,
    link: &Link,
    config: &Config,
) -> End {
    let client_id = client.id;
    // [MQTT-3.1.2-24]: one and a half keep-alive periods of silence end the connection.
    let keep_alive =
        (client.keep_alive > 0).then(|| Duration::from_millis(u64::from(client.keep_alive) * 1500));
    // A read-only client that publishes usually does so in a loop: one warning is enough.
    let mut warned_read_only = false;
    // QoS 2 packet ids received and not yet released, so a resent PUBLISH is not routed twice.
    let mut awaiting_release = HashSet::new();
    loop {
        let read = read_packet(&mut reader, &mut buf, config.max_packet_size);
        let packet = tokio::select! {
            r = async {
                match keep_alive {
                    Some(limit) => tokio::time::timeout(limit, read).await.ok(),
                    None => Some(read.await),
                }
            } => match r {
                None => return End::Lost("keep-alive expired".into()),
                Some(Err(e)) => return End::Lost(e.to_string()),
                Some(Ok(p)) => p,
            },
            () = link.kill.notified() => {
                return End::Lost("closed by the broker (taken over by a new connection, or its login was revoked)".into());
            }
        };
        match packet {
            Packet::Publish(p) => {
                // Refusals are acknowledged and not routed, as an ACL would: MQTT 3.1.1 has
                // no negative acknowledgement, and a client that got none would resend.
                let may_route = match check_publish_topic(&p.topic) {
                    Ok(()) if client.permission == Permission::PublishSubscribe => true,
                    Ok(()) => {
                        if !warned_read_only {
                            warned_read_only = true;
                            tracing::warn!(
                                client_id,
                                user = client.who.user_name(),
                                topic = p.topic,
                                "publish refused: the user may only subscribe (further ones \
                                 from this connection are dropped without a warning)"
                            );
                        }
                        false
                    }
                    Err(why) if p.topic.starts_with('$') && topic::check_name(&p.topic).is_ok() => {
                        tracing::warn!(client_id, topic = p.topic, "publish refused: {why}");
                        false
                    }
                    Err(why) => {
                        return End::Lost(format!(
                            "publish to an invalid topic {:?}: {why}",
                            p.topic
                        ));
                    }
                };
                if !may_route {
                    lock(router).count_refused_publish();
                } else {
                    let duplicate = p.qos == QoS::ExactlyOnce && !awaiting_release.insert(p.pkid);
                    if !duplicate {
                        let message = Message {
                            topic: p.topic.into(),
                            payload: p.payload,
                            qos: min_qos(p.qos, QoS::AtLeastOnce),
                        };
                        lock(router).publish(message, p.retain);
                    }
                }
                let ack = match p.qos {
                    QoS::AtMostOnce => None,
                    QoS::AtLeastOnce => Some(Packet::PubAck(PubAck::new(p.pkid))),
                    QoS::ExactlyOnce => Some(Packet::PubRec(PubRec::new(p.pkid))),
                };
                if let Some(ack) = ack {
                    lock(router).send(client_id, ack);
                }
            }
            Packet::PubAck(ack) => lock(router).acknowledged(client_id, ack.pkid),
            Packet::PubRel(rel) => {
                awaiting_release.remove(&rel.pkid);
                lock(router).send(client_id, Packet::PubComp(PubComp::new(rel.pkid)));
            }
            Packet::Subscribe(s) => lock(router).subscribe(client_id, s),
            Packet::Unsubscribe(u) => lock(router).unsubscribe(client_id, u),
            Packet::PingReq => lock(router).send(client_id, Packet::PingResp),
            Packet::Disconnect => return End::Graceful,
            // We never send QoS 2, so PUBREC/PUBCOMP are as unexpected as a second CONNECT.
            other => return End::Lost(format!("unexpected packet from a client: {other:?}")),
        }
    }
}

/// Bytes encoded before they are written to the socket.
const WRITE_CHUNK: usize = 64 * 1024;

async fn write_loop(
    mut writer: OwnedWriteHalf,
    router: Arc<Mutex<Router>>,
    client_id: String,
    conn: u64,
    link: Arc<Link>,
) {
    let mut batch = Vec::new();
    let mut out = BytesMut::with_capacity(16 * 1024);
    loop {
        link.wake.notified().await;
        loop {
            let attached = lock(&router).take(&client_id, conn, &mut batch, 512);
            if batch.is_empty() {
                if !attached {
                    let _ = writer.shutdown().await;
                    return;
                }
                break;
            }
            for item in batch.drain(..) {
                encode(&item, &mut out);
                // Written in chunks, so the buffer stays near WRITE_CHUNK however much a
                // client has queued.
                if out.len() >= WRITE_CHUNK {
                    if writer.write_all(&out).await.is_err() {
                        return;
                    }
                    out.clear();
                }
            }
            if writer.write_all(&out).await.is_err() {
                // The reader sees the same broken socket and detaches the session.
                return;
            }
            out.clear();
        }
    }
}

fn encode(item: &Out, out: &mut BytesMut) {
    match item {
        Out::Control(packet) => {
            // Acknowledgements are a few bytes; they cannot exceed any size limit.
            let _ = packet.write(out, usize::MAX);
        }
        Out::Publish {
            message,
            qos,
            retain,
            dup,
            pkid,
        } => {
            // Encoded here rather than through a `Publish` value so the topic and payload
            // shared by every subscriber are not copied into a struct per delivery.
            let mut byte1 = 0x30 | (*qos as u8) << 1;
            if *dup {
                byte1 |= 0x08;
            }
            if *retain {
                byte1 |= 0x01;
            }
            let id_len = if *qos == QoS::AtMostOnce { 0 } else { 2 };
            let remaining = 2 + message.topic.len() + id_len + message.payload.len();
            out.reserve(5 + remaining);
            out.put_u8(byte1);
            let mut len = remaining;
            loop {
                let mut byte = (len % 128) as u8;
                len /= 128;
                if len > 0 {
                    byte |= 0x80;
                }
                out.put_u8(byte);
                if len == 0 {
                    break;
                }
            }
            out.put_u16(message.topic.len() as u16);
            out.put_slice(message.topic.as_bytes());
            if id_len > 0 {
                out.put_u16(*pkid);
            }
            out.put_slice(&message.payload);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::v4::Publish;

    #[test]
    fn publish_encoding_matches_the_codec() {
        for (qos, retain, dup, payload_len) in [
            (QoS::AtMostOnce, false, false, 0),
            (QoS::AtLeastOnce, true, true, 200),
            (QoS::AtLeastOnce, false, false, 20_000),
            (QoS::AtMostOnce, true, false, 3_000_000),
        ] {
            let payload = vec![7u8; payload_len];
            let message = Message {
                topic: "spBv1.0/G/DDATA/E/D".into(),
                payload: payload.clone().into(),
                qos,
            };
            let pkid = if qos == QoS::AtMostOnce { 0 } else { 42 };
            let mut ours = BytesMut::new();
            encode(
                &Out::Publish {
                    message,
                    qos,
                    retain,
                    dup,
                    pkid,
                },
                &mut ours,
            );
            let mut theirs = Publish::new("spBv1.0/G/DDATA/E/D", qos, payload);
            theirs.retain = retain;
            theirs.dup = dup;
            theirs.pkid = pkid;
            let mut expected = BytesMut::new();
            theirs.write(&mut expected).unwrap();
            assert_eq!(
                ours, expected,
                "{qos:?} retain={retain} dup={dup} len={payload_len}"
            );
        }
    }
}
