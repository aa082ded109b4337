//! Everything the broker knows, behind one lock: sessions, their subscriptions and outgoing
//! queues, retained messages and the Sparkplug certificates. No I/O happens here; connection
//! tasks call in, and are woken through their [`Link`] when their queue has something.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use rumqttc::mqttbytes::QoS;
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, Packet, SubAck, Subscribe, SubscribeReasonCode, UnsubAck,
    Unsubscribe,
};

use crate::access::{Identity, Table, Verified};
use crate::topic;

/// A message as it travels through the broker. Cloning shares topic and payload.
#[derive(Clone, Debug)]
pub(crate) struct Message {
    pub topic: Arc<str>,
    pub payload: Bytes,
    pub qos: QoS,
}

/// What a connection's writer sends next.
#[derive(Debug)]
pub(crate) enum Out {
    Publish {
        message: Message,
        qos: QoS,
        retain: bool,
        dup: bool,
        /// 0 until the writer gives a QoS 1 message its packet id.
        pkid: u16,
    },
    Control(Packet),
}

/// The connection tasks' side of an attached session.
#[derive(Debug, Default)]
pub(crate) struct Link {
    /// Wakes the writer: its queue has something, or the session left it.
    pub wake: tokio::sync::Notify,
    /// Tells the reader to stop: the session was taken over by a new connection.
    pub kill: tokio::sync::Notify,
    pub detached: AtomicBool,
}

impl Link {
    fn detach(&self) {
        self.detached.store(true, Ordering::Release);
        self.wake.notify_one();
        self.kill.notify_one();
    }
}

/// Limits that keep one client from taking the appliance down.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections attached at once; more are refused with CONNACK "server unavailable".
    pub max_connections: usize,
    /// QoS 1 messages sent to one client and not yet acknowledged.
    pub max_inflight: usize,
    /// Bytes of payload queued for one client. Beyond this, new messages for it are dropped
    /// (and counted) rather than growing memory without bound for a client that stopped
    /// reading; messages for other clients are unaffected.
    pub max_queued_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 1000,
            max_inflight: 1000,
            max_queued_bytes: 32 << 20,
        }
    }
}

#[derive(Debug)]
struct Subscription {
    filter: String,
    qos: QoS,
}

#[derive(Debug)]
struct Attached {
    conn: u64,
    link: Arc<Link>,
    will: Option<(Message, bool)>,
    who: Identity,
}

#[derive(Debug, Default)]
struct Session {
    clean: bool,
    attached: Option<Attached>,
    /// Who logged in last with this client id: the session is theirs.
    owner: Option<Identity>,
    subscriptions: Vec<Subscription>,
    queue: VecDeque<Out>,
    queued_bytes: usize,
    /// QoS 1 messages sent and not yet acknowledged, by packet id.
    inflight: BTreeMap<u16, (Message, bool)>,
    last_pkid: u16,
    /// Messages dropped since the queue last had room.
    dropped: u64,
}

impl Session {
    fn push(&mut self, out: Out) {
        self.queue.push_back(out);
        if let Some(a) = &self.attached {
            a.link.wake.notify_one();
        }
    }

    fn next_pkid(&mut self) -> u16 {
        // Packet ids are 1..=65535; skip ids still in flight.
        loop {
            self.last_pkid = self.last_pkid.checked_add(1).unwrap_or(1);
            if !self.inflight.contains_key(&self.last_pkid) {
                return self.last_pkid;
            }
        }
    }
}

/// The lower of two QoS levels (`QoS` is only `PartialOrd`).
pub(crate) fn min_qos(a: QoS, b: QoS) -> QoS {
    if (a as u8) <= (b as u8) { a } else { b }
}

/// Counters for the UI and the logs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub connections: usize,
    pub sessions: usize,
    pub retained: usize,
    /// Messages dropped because a client's queue was full, since start.
    pub dropped: u64,
    /// Messages published by clients since start.
    pub received: u64,
    /// Messages queued for delivery to subscribers since start (one per subscriber).
    pub delivered: u64,
    /// CONNECTs refused for their login (no user name, unknown user, wrong password) since
    /// start.
    pub refused_logins: u64,
    /// PUBLISHes acknowledged but not routed since start: from read-only users, or to `$`
    /// topics.
    pub refused_publishes: u64,
}

#[derive(Debug)]
pub(crate) struct Router {
    limits: Limits,
    /// Kept here, under the same lock as the sessions, so that a new table and the
    /// connections it closes change together, and a connection is attached only under a
    /// table that admits it.
    access: Arc<Table>,
    sessions: HashMap<String, Session>,
    retained: HashMap<Arc<str>, Message>,
    connections: usize,
    last_conn: u64,
    dropped: u64,
    received: u64,
    delivered: u64,
    refused_logins: u64,
    refused_publishes: u64,
}

/// The Sparkplug Aware topic under which a birth is kept (spec §2.19), if `topic` is an
/// NBIRTH or DBIRTH topic.
fn certificate_topic(topic: &str) -> Option<String> {
    let levels: Vec<&str> = topic.split('/').collect();
    match levels.as_slice() {
        ["spBv1.0", _, "NBIRTH", _] | ["spBv1.0", _, "DBIRTH", _, _] => {
            Some(format!("$sparkplug/certificates/{topic}"))
        }
        _ => None,
    }
}

/// An NDEATH Will was written when its edge node connected, possibly days ago. Spec §2.19
/// lets an Aware server set its timestamp to the time of delivery, which is when the node
/// was found dead: the time hosts want to record. A payload that does not decode is
/// delivered unmodified.
fn stamp_ndeath(will: &mut Message) {
    use prost::Message as _;
    let levels: Vec<&str> = will.topic.split('/').collect();
    if !matches!(levels.as_slice(), ["spBv1.0", _, "NDEATH", _]) {
        return;
    }
    let Ok(mut payload) = sparkplug::proto::Payload::decode(&will.payload[..]) else {
        return;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    payload.timestamp = Some(now);
    will.payload = payload.encode_to_vec().into();
}

impl Router {
    pub fn new(limits: Limits, access: Arc<Table>) -> Router {
        Router {
            limits,
            access,
            sessions: HashMap::new(),
            retained: HashMap::new(),
            connections: 0,
            last_conn: 0,
            dropped: 0,
            received: 0,
            delivered: 0,
            refused_logins: 0,
            refused_publishes: 0,
        }
    }

    /// The table new logins are checked against.
    pub fn access(&self) -> Arc<Table> {
        self.access.clone()
    }

    /// Replaces the access table and closes the connections it no longer admits with the
    /// login they made (see [`Table::admits`]). They end as any abnormal end does, Will
    /// included: subscribers, Sparkplug hosts above all, learn that the client is gone, and
    /// the Will was accepted while the client had the right to leave one.
    pub fn set_access(&mut self, access: Arc<Table>) {
        let old = std::mem::replace(&mut self.access, access);
        let revoked: Vec<(String, Identity)> = self
            .sessions
            .iter()
            .filter_map(|(client_id, session)| {
                let attached = session.attached.as_ref()?;
                let kept = self.access.admits(&attached.who, &old).is_some();
                (!kept).then(|| (client_id.clone(), attached.who.clone()))
            })
            .collect();
        for (client_id, who) in revoked {
            tracing::info!(
                client_id,
                user = who.user_name(),
                "closing a connection: the new MQTT access settings no longer admit its login"
            );
            self.detach(&client_id, None, false);
        }
    }

    pub fn count_refused_login(&mut self) {
        self.refused_logins += 1;
    }

    pub fn count_refused_publish(&mut self) {
        self.refused_publishes += 1;
    }

    /// The retained messages whose topics match `filter`, as (topic, payload).
    pub fn retained(&self, filter: &str) -> Vec<(Arc<str>, Bytes)> {
        self.retained
            .values()
            .filter(|m| topic::matches(filter, &m.topic))
            .map(|m| (m.topic.clone(), m.payload.clone()))
            .collect()
    }

    pub fn stats(&self) -> Stats {
        Stats {
            connections: self.connections,
            sessions: self.sessions.len(),
            retained: self.retained.len(),
            dropped: self.dropped,
            received: self.received,
            delivered: self.delivered,
            refused_logins: self.refused_logins,
            refused_publishes: self.refused_publishes,
        }
    }

    /// Attaches a new connection to its session. On success the CONNACK is already queued
    /// and the returned connection number identifies this attachment in later calls.
    /// The login is consumed so that the table it was checked against is not kept alive.
    pub fn connect(
        &mut self,
        connect: &Connect,
        link: Arc<Link>,
        login: Verified,
    ) -> Result<(String, u64), ConnectReturnCode> {
        // The login was checked outside the lock; the table may have changed since.
        if self.access.admits(&login.who, &login.against).is_none() {
            self.refused_logins += 1;
            return Err(match login.who {
                Identity::Anonymous => ConnectReturnCode::NotAuthorized,
                _ => ConnectReturnCode::BadUserNamePassword,
            });
        }
        let client_id = if connect.client_id.is_empty() {
            if !connect.clean_session {
                // [MQTT-3.1.3-8]: a persistent session needs a name.
                return Err(ConnectReturnCode::BadClientId);
            }
            format!("sparkedge-auto-{}", self.last_conn + 1)
        } else {
            connect.client_id.clone()
        };
        // A client id belongs to whoever holds it. Another login may not take over a live
        // connection (a read-only user could otherwise knock the appliance's own Sparkplug
        // session off and publish its Will), nor inherit a stored session's messages.
        let owner = self.sessions.get(&client_id).and_then(|s| s.owner.as_ref());
        if owner.is_some_and(|owner| *owner != login.who) {
            if self.sessions[&client_id].attached.is_some() {
                return Err(ConnectReturnCode::BadClientId);
            }
            self.sessions.remove(&client_id);
        }
        let taking_over = self
            .sessions
            .get(&client_id)
            .is_some_and(|s| s.attached.is_some());
        if !taking_over && self.connections >= self.limits.max_connections {
            return Err(ConnectReturnCode::ServiceUnavailable);
        }
        if taking_over {
            // [MQTT-3.1.4-2]: the new connection wins. The old one did not say goodbye, so
            // its Will goes out now, before anything the new connection publishes.
            self.detach(&client_id, None, false);
        }
        if connect.clean_session {
            self.sessions.remove(&client_id);
        }
        self.last_conn += 1;
        let conn = self.last_conn;
        let will = connect.last_will.as_ref().map(|w| {
            (
                Message {
                    topic: w.topic.as_str().into(),
                    payload: w.message.clone(),
                    qos: min_qos(w.qos, QoS::AtLeastOnce),
                },
                w.retain,
            )
        });
        let session_present = self.sessions.contains_key(&client_id);
        let session = self.sessions.entry(client_id.clone()).or_default();
        session.clean = connect.clean_session;
        session.owner = Some(login.who.clone());
        session.attached = Some(Attached {
            conn,
            link,
            will,
            who: login.who,
        });
        session
            .queue
            .push_front(Out::Control(Packet::ConnAck(ConnAck::new(
                ConnectReturnCode::Success,
                session_present,
            ))));
        if let Some(a) = &session.attached {
            a.link.wake.notify_one();
        }
        self.connections += 1;
        Ok((client_id, conn))
    }

    /// Detaches connection `conn` (any connection when `None`) from its session. Without a
    /// clean DISCONNECT the Will is published. A clean session ends here; a persistent one
    /// keeps its subscriptions and queue, and unacknowledged messages go out again (with the
    /// DUP flag) when the client returns.
    pub fn detach(&mut self, client_id: &str, conn: Option<u64>, graceful: bool) {
        let Some(session) = self.sessions.get_mut(client_id) else {
            return;
        };
        let Some(attached) = session
            .attached
            .take_if(|a| conn.is_none_or(|c| c == a.conn))
        else {
            return;
        };
        attached.link.detach();
        let clean = session.clean;
        if !clean {
            session.queue.retain(|o| matches!(o, Out::Publish { .. }));
            for (pkid, (message, retain)) in std::mem::take(&mut session.inflight).into_iter().rev()
            {
                session.queued_bytes += message.payload.len();
                session.queue.push_front(Out::Publish {
                    qos: QoS::AtLeastOnce,
                    message,
                    retain,
                    dup: true,
                    pkid,
                });
            }
        }
        self.connections -= 1;
        if clean {
            self.sessions.remove(client_id);
        }
        if !graceful && let Some((mut will, retain)) = attached.will {
            stamp_ndeath(&mut will);
            self.publish(will, retain);
        }
    }

    /// Routes a message to every matching subscription, keeps it when retained, and keeps
    /// Sparkplug births as certificates.
    pub fn publish(&mut self, message: Message, retain: bool) {
        self.received += 1;
        if retain {
            if message.payload.is_empty() {
                // [MQTT-3.3.1-10]: a retained empty message clears; it is still forwarded.
                self.retained.remove(&message.topic);
            } else {
                // A copy of the payload: a received payload is a slice of the connection's read
                // buffer, and a retained slice would keep that whole buffer alive for as long
                // as the topic is not republished.
                let stored = Message {
                    payload: Bytes::copy_from_slice(&message.payload),
                    ..message.clone()
                };
                self.retained.insert(stored.topic.clone(), stored);
            }
        }
        self.route(&message);
        if let Some(certificate) = certificate_topic(&message.topic) {
            // Spec §2.19: the unmodified birth, retained on its certificate topic. The birth
            // itself stays non-retained on its own topic.
            let certificate = Message {
                topic: certificate.into(),
                payload: Bytes::copy_from_slice(&message.payload),
                qos: message.qos,
            };
            self.retained
                .insert(certificate.topic.clone(), certificate.clone());
            self.route(&certificate);
        }
    }

    fn route(&mut self, message: &Message) {
        let max_queued = self.limits.max_queued_bytes;
        for (client_id, session) in &mut self.sessions {
            // One delivery per client, at the highest QoS its matching subscriptions grant.
            let Some(granted) = session
                .subscriptions
                .iter()
                .filter(|s| topic::matches(&s.filter, &message.topic))
                .map(|s| s.qos)
                .reduce(|a, b| if b > a { b } else { a })
            else {
                continue;
            };
            let qos = min_qos(message.qos, granted);
            if session.attached.is_none() && qos == QoS::AtMostOnce {
                continue;
            }
            if session.queued_bytes + message.payload.len() > max_queued {
                if session.dropped == 0 {
                    tracing::warn!(
                        client_id,
                        "client is not keeping up: its queue holds {} bytes, so new messages \
                         for it are dropped until it catches up",
                        session.queued_bytes
                    );
                }
                session.dropped += 1;
                self.dropped += 1;
                continue;
            }
            session.queued_bytes += message.payload.len();
            self.delivered += 1;
            session.push(Out::Publish {
                message: message.clone(),
                qos,
                retain: false,
                dup: false,
                pkid: 0,
            });
        }
    }

    /// Adds subscriptions, queues the SUBACK and then the retained messages they match.
    pub fn subscribe(&mut self, client_id: &str, subscribe: Subscribe) {
        let Some(session) = self.sessions.get_mut(client_id) else {
            return;
        };
        let mut codes = Vec::with_capacity(subscribe.filters.len());
        let mut retained = Vec::new();
        for f in subscribe.filters {
            if let Err(why) = topic::check_filter(&f.path) {
                tracing::warn!(client_id, filter = f.path, "subscription refused: {why}");
                codes.push(SubscribeReasonCode::Failure);
                continue;
            }
            // QoS 2 is granted as QoS 1 (allowed by [MQTT-3.9.3-2]); nothing we carry
            // needs exactly-once delivery.
            let qos = min_qos(f.qos, QoS::AtLeastOnce);
            codes.push(SubscribeReasonCode::Success(qos));
            for m in self.retained.values() {
                if topic::matches(&f.path, &m.topic) {
                    retained.push((m.clone(), qos));
                }
            }
            match session
                .subscriptions
                .iter_mut()
                .find(|s| s.filter == f.path)
            {
                Some(existing) => existing.qos = qos,
                None => session.subscriptions.push(Subscription {
                    filter: f.path,
                    qos,
                }),
            }
        }
        session.push(Out::Control(Packet::SubAck(SubAck::new(
            subscribe.pkid,
            codes,
        ))));
        // Retained messages are the state a new subscriber asks for; they are not dropped
        // for the queue limit.
        for (message, granted) in retained {
            session.queued_bytes += message.payload.len();
            let qos = min_qos(message.qos, granted);
            session.push(Out::Publish {
                message,
                qos,
                retain: true,
                dup: false,
                pkid: 0,
            });
        }
    }

    pub fn unsubscribe(&mut self, client_id: &str, unsubscribe: Unsubscribe) {
        let Some(session) = self.sessions.get_mut(client_id) else {
            return;
        };
        session
            .subscriptions
            .retain(|s| !unsubscribe.topics.contains(&s.filter));
        session.push(Out::Control(Packet::UnsubAck(UnsubAck::new(
            unsubscribe.pkid,
        ))));
    }

    /// Queues a control packet (an acknowledgement) for the client.
    pub fn send(&mut self, client_id: &str, packet: Packet) {
        if let Some(session) = self.sessions.get_mut(client_id) {
            session.push(Out::Control(packet));
        }
    }

    /// The client acknowledged a QoS 1 message.
    pub fn acknowledged(&mut self, client_id: &str, pkid: u16) {
        if let Some(session) = self.sessions.get_mut(client_id)
            && session.inflight.remove(&pkid).is_some()
            && let Some(a) = &session.attached
        {
            // Room in flight again: the writer may have QoS 1 messages waiting.
            a.link.wake.notify_one();
        }
    }

    /// Moves what connection `conn` may send now into `batch`. Returns `false` once the
    /// session is no longer attached to this connection: the writer stops.
    pub fn take(&mut self, client_id: &str, conn: u64, batch: &mut Vec<Out>, max: usize) -> bool {
        let Some(session) = self.sessions.get_mut(client_id) else {
            return false;
        };
        if session.attached.as_ref().is_none_or(|a| a.conn != conn) {
            return false;
        }
        while batch.len() < max {
            let in_flight_full = session.inflight.len() >= self.limits.max_inflight;
            let Some(front) = session.queue.front() else {
                break;
            };
            if in_flight_full
                && matches!(
                    front,
                    Out::Publish {
                        qos: QoS::AtLeastOnce,
                        ..
                    }
                )
            {
                // Wait for a PUBACK; order is kept, so QoS 0 behind it waits too.
                break;
            }
            let Some(mut out) = session.queue.pop_front() else {
                break;
            };
            if let Out::Publish {
                message,
                qos,
                retain,
                pkid,
                ..
            } = &mut out
            {
                session.queued_bytes = session.queued_bytes.saturating_sub(message.payload.len());
                if *qos == QoS::AtLeastOnce {
                    if *pkid == 0 {
                        *pkid = session.next_pkid();
                    }
                    session.inflight.insert(*pkid, (message.clone(), *retain));
                }
            }
            batch.push(out);
        }
        if session.dropped > 0 && session.queue.is_empty() {
            tracing::warn!(
                client_id,
                dropped = session.dropped,
                "client caught up; messages were dropped while its queue was full"
            );
            session.dropped = 0;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::{Access, Permission};
    use rumqttc::mqttbytes::v4::LastWill;

    fn router(limits: Limits) -> Router {
        let open = Access {
            allow_anonymous: true,
            users: Vec::new(),
        };
        Router::new(limits, Arc::new(Table::new(open)))
    }

    fn anonymous(router: &Router) -> Verified {
        Verified {
            who: Identity::Anonymous,
            permission: Permission::PublishSubscribe,
            against: router.access(),
        }
    }

    fn connect(router: &mut Router, id: &str, clean: bool) -> (u64, Arc<Link>) {
        let mut c = Connect::new(id);
        c.clean_session = clean;
        let link = Arc::new(Link::default());
        let (_, conn) = router.connect(&c, link.clone(), anonymous(router)).unwrap();
        (conn, link)
    }

    fn drain(router: &mut Router, id: &str, conn: u64) -> Vec<Out> {
        let mut batch = Vec::new();
        assert!(router.take(id, conn, &mut batch, usize::MAX));
        batch
    }

    fn publishes(out: &[Out]) -> Vec<(String, bool, bool)> {
        out.iter()
            .filter_map(|o| match o {
                Out::Publish {
                    message,
                    retain,
                    dup,
                    ..
                } => Some((message.topic.to_string(), *retain, *dup)),
                Out::Control(_) => None,
            })
            .collect()
    }

    fn msg(topic: &str, payload: &'static [u8], qos: QoS) -> Message {
        Message {
            topic: topic.into(),
            payload: Bytes::from_static(payload),
            qos,
        }
    }

    fn sub(router: &mut Router, id: &str, filter: &str, qos: QoS) {
        router.subscribe(id, Subscribe::new(filter, qos));
    }

    #[test]
    fn births_are_kept_as_retained_certificates_and_not_retained_on_their_own_topic() {
        let mut r = router(Limits::default());
        r.publish(msg("spBv1.0/G/NBIRTH/E", b"n1", QoS::AtMostOnce), false);
        r.publish(msg("spBv1.0/G/DBIRTH/E/D", b"d1", QoS::AtMostOnce), false);
        r.publish(msg("spBv1.0/G/NBIRTH/E", b"n2", QoS::AtMostOnce), false);
        r.publish(msg("spBv1.0/G/NDATA/E", b"x", QoS::AtMostOnce), false);
        let mut keys: Vec<_> = r.retained.keys().map(|k| k.to_string()).collect();
        keys.sort();
        assert_eq!(
            keys,
            [
                "$sparkplug/certificates/spBv1.0/G/DBIRTH/E/D",
                "$sparkplug/certificates/spBv1.0/G/NBIRTH/E"
            ]
        );
        // Always the latest birth.
        assert_eq!(
            &r.retained["$sparkplug/certificates/spBv1.0/G/NBIRTH/E"].payload[..],
            b"n2"
        );
        let (conn, _) = connect(&mut r, "host", true);
        sub(&mut r, "host", "#", QoS::AtLeastOnce);
        assert!(
            publishes(&drain(&mut r, "host", conn)).is_empty(),
            "# must not see $ topics"
        );
        sub(
            &mut r,
            "host",
            "$sparkplug/certificates/#",
            QoS::AtLeastOnce,
        );
        assert_eq!(publishes(&drain(&mut r, "host", conn)).len(), 2);
        r.publish(msg("spBv1.0/G/NBIRTH/E", b"n3", QoS::AtMostOnce), false);
        let live = publishes(&drain(&mut r, "host", conn));
        assert_eq!(
            live,
            [
                ("spBv1.0/G/NBIRTH/E".into(), false, false),
                (
                    "$sparkplug/certificates/spBv1.0/G/NBIRTH/E".into(),
                    false,
                    false
                )
            ]
        );
    }

    #[test]
    fn a_taken_over_session_publishes_the_old_will_first() {
        let mut r = router(Limits::default());
        let (watcher, _) = connect(&mut r, "watcher", true);
        sub(&mut r, "watcher", "will/#", QoS::AtLeastOnce);
        let mut c = Connect::new("edge");
        c.last_will = Some(LastWill::new("will/edge", "gone", QoS::AtLeastOnce, false));
        let old = Arc::new(Link::default());
        r.connect(&c, old.clone(), anonymous(&r)).unwrap();
        drain(&mut r, "watcher", watcher);
        r.connect(
            &Connect::new("edge"),
            Arc::new(Link::default()),
            anonymous(&r),
        )
        .unwrap();
        assert!(old.detached.load(Ordering::Acquire));
        assert_eq!(
            publishes(&drain(&mut r, "watcher", watcher)),
            [("will/edge".into(), false, false)]
        );
        assert_eq!(r.stats().connections, 2);
    }

    #[test]
    fn a_persistent_session_keeps_qos1_messages_and_resends_unacknowledged_ones() {
        let mut r = router(Limits::default());
        let (conn, _) = connect(&mut r, "mes", false);
        sub(&mut r, "mes", "a/#", QoS::AtLeastOnce);
        r.publish(msg("a/1", b"1", QoS::AtLeastOnce), false);
        let sent = drain(&mut r, "mes", conn);
        assert_eq!(publishes(&sent), [("a/1".into(), false, false)]);
        r.detach("mes", Some(conn), false);
        r.publish(msg("a/2", b"2", QoS::AtLeastOnce), false);
        r.publish(msg("a/3", b"3", QoS::AtMostOnce), false);
        let (conn, _) = connect(&mut r, "mes", false);
        let out = drain(&mut r, "mes", conn);
        assert!(matches!(
            &out[0],
            Out::Control(Packet::ConnAck(ConnAck {
                session_present: true,
                ..
            }))
        ));
        assert_eq!(
            publishes(&out),
            [("a/1".into(), false, true), ("a/2".into(), false, false)]
        );
    }

    #[test]
    fn a_full_queue_drops_new_messages_for_that_client_only() {
        let mut r = router(Limits {
            max_queued_bytes: 4,
            ..Limits::default()
        });
        let (slow, _) = connect(&mut r, "slow", true);
        let (fast, _) = connect(&mut r, "fast", true);
        sub(&mut r, "slow", "t", QoS::AtMostOnce);
        sub(&mut r, "fast", "t", QoS::AtMostOnce);
        for _ in 0..3 {
            r.publish(msg("t", b"12", QoS::AtMostOnce), false);
            drain(&mut r, "fast", fast);
        }
        let stats = r.stats();
        assert_eq!((stats.received, stats.delivered, stats.dropped), (3, 5, 1));
        assert_eq!(publishes(&drain(&mut r, "slow", slow)).len(), 2);
    }

    #[test]
    fn inflight_limit_holds_qos1_until_acknowledged() {
        let mut r = router(Limits {
            max_inflight: 1,
            ..Limits::default()
        });
        let (conn, _) = connect(&mut r, "c", true);
        sub(&mut r, "c", "t", QoS::AtLeastOnce);
        r.publish(msg("t", b"1", QoS::AtLeastOnce), false);
        r.publish(msg("t", b"2", QoS::AtLeastOnce), false);
        let first = drain(&mut r, "c", conn);
        let pkid = first
            .iter()
            .find_map(|o| match o {
                Out::Publish { pkid, .. } => Some(*pkid),
                Out::Control(_) => None,
            })
            .unwrap();
        assert_eq!(publishes(&first).len(), 1);
        assert!(publishes(&drain(&mut r, "c", conn)).is_empty());
        r.acknowledged("c", pkid);
        assert_eq!(publishes(&drain(&mut r, "c", conn)).len(), 1);
    }

    #[test]
    fn an_ndeath_will_is_stamped_with_the_time_it_is_delivered() {
        use prost::Message as _;
        use sparkplug::proto::Payload;
        let mut r = router(Limits::default());
        let (watcher, _) = connect(&mut r, "host", true);
        sub(&mut r, "host", "spBv1.0/#", QoS::AtMostOnce);
        let written_at = Payload {
            timestamp: Some(1),
            ..Payload::default()
        };
        let mut c = Connect::new("edge");
        c.last_will = Some(LastWill::new(
            "spBv1.0/G/NDEATH/E",
            written_at.encode_to_vec(),
            QoS::AtLeastOnce,
            false,
        ));
        let (conn, _) = {
            let link = Arc::new(Link::default());
            r.connect(&c, link.clone(), anonymous(&r))
                .map(|(_, conn)| (conn, link))
                .unwrap()
        };
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        r.detach("edge", Some(conn), false);
        let out = drain(&mut r, "host", watcher);
        let Some(Out::Publish { message, .. }) = out.last() else {
            panic!("no NDEATH delivered: {out:?}");
        };
        let delivered = Payload::decode(&message.payload[..]).unwrap();
        assert!(delivered.timestamp.unwrap() >= before);
    }

    #[test]
    fn a_login_checked_against_a_table_replaced_since_is_not_attached() {
        let mut r = router(Limits::default());
        let checked = anonymous(&r);
        r.set_access(Arc::new(Table::new(Access {
            allow_anonymous: false,
            users: Vec::new(),
        })));
        let refused = r.connect(&Connect::new("late"), Arc::new(Link::default()), checked);
        assert_eq!(refused, Err(ConnectReturnCode::NotAuthorized));
        assert_eq!((r.stats().connections, r.stats().refused_logins), (0, 1));
    }

    #[test]
    fn set_access_detaches_the_clients_it_no_longer_admits_and_publishes_their_wills() {
        let mut r = router(Limits::default());
        let internal = Verified {
            who: Identity::Internal,
            ..anonymous(&r)
        };
        let (_, watcher) = r
            .connect(
                &Connect::new("watcher"),
                Arc::new(Link::default()),
                internal,
            )
            .unwrap();
        sub(&mut r, "watcher", "will/#", QoS::AtLeastOnce);
        let mut c = Connect::new("edge");
        c.last_will = Some(LastWill::new("will/edge", "gone", QoS::AtLeastOnce, false));
        let edge = Arc::new(Link::default());
        r.connect(&c, edge.clone(), anonymous(&r)).unwrap();
        drain(&mut r, "watcher", watcher);
        r.set_access(Arc::new(Table::new(Access {
            allow_anonymous: false,
            users: Vec::new(),
        })));
        assert!(edge.detached.load(Ordering::Acquire));
        assert_eq!(
            publishes(&drain(&mut r, "watcher", watcher)),
            [("will/edge".into(), false, false)]
        );
    }

    #[test]
    fn retained_empty_message_clears_and_a_plain_empty_one_does_not() {
        let mut r = router(Limits::default());
        r.publish(msg("t", b"v", QoS::AtMostOnce), true);
        r.publish(msg("t", b"", QoS::AtMostOnce), false);
        assert_eq!(r.stats().retained, 1);
        r.publish(msg("t", b"", QoS::AtMostOnce), true);
        assert_eq!(r.stats().retained, 0);
    }
}
