//! The I/O shell around [`sparkplug::EdgeNodeSession`]: one MQTT connection at a time
//! (rumqttc over TCP or TLS) to one server of a list, walking to the next one on failure or
//! when the session asks; bdSeq persisted in the store before every CONNECT, samples from the
//! hub turned into metric updates, and writes from DCMD handed to the hub. A changed model
//! arrives through the mailbox ([`NodeModel`]) and goes to [`EdgeNodeSession::reconfigure`]
//! on the open connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet};
use southbound::{DeviceId, WriteCommand, now_ms};
use sparkplug::{
    DataType, DeviceDef, EdgeNodeSession, MetricDef, MetricUpdate, MetricValue, Output, Publish,
    SessionConfig,
};
use tokio::sync::{mpsc, oneshot, watch};
use uns_model::{Array, Model, Quality, Store, TagId, Value};

use crate::config::ServerAddr;
use crate::hub::{Delivery, Mailbox, Write};
use crate::pipeline::SinkModel;

/// Where one Sparkplug session connects and how it identifies itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// The key under which bdSeq is persisted (one counter per connection).
    pub name: String,
    /// Tried in order; the session is on at most one of them at a time.
    pub servers: Vec<ServerAddr>,
    /// `None`: `sparkedge-<edge node id>`, following the model's edge node id.
    pub client_id: Option<String>,
    pub credentials: Option<(String, String)>,
    /// PEM of the CA for `mqtts://` servers.
    pub ca_pem: Option<Vec<u8>>,
    /// The Primary Host id set for this connection by the configuration file (`Some(None)`:
    /// none), or `None` to follow the model's `sparkplug.primary_host_id`, which the web UI
    /// edits.
    pub pinned_primary_host: Option<Option<String>>,
}

/// How the model's tags map onto the session's devices and metrics.
#[derive(Debug)]
pub struct MetricMap {
    /// Per tag: (session device index, metric index), `None` for tags of disabled devices.
    by_tag: Vec<Option<(usize, usize)>>,
    /// Per session device and metric: the tag.
    tags: Vec<Vec<TagId>>,
    /// Per model device: the session device index.
    by_device: Vec<Option<usize>>,
}

/// A session's part of a model: what [`EdgeNodeSession::reconfigure`] takes, and how tags
/// map onto it.
#[derive(Debug)]
pub struct NodeModel {
    pub config: SessionConfig,
    /// Shared by the sessions of every connection.
    pub map: Arc<MetricMap>,
    /// The model's number, carried by the writes this map numbers.
    pub generation: u64,
}

/// Builds the session configuration from the model, with names from [`uns_model::tag_names`]
/// and the aliases remembered from earlier runs.
pub fn session_config(
    model: &Model,
    known_aliases: HashMap<(String, String), u64>,
) -> (SessionConfig, MetricMap) {
    let mut map = MetricMap {
        by_tag: vec![None; model.tags.len()],
        tags: Vec::new(),
        by_device: vec![None; model.devices.len()],
    };
    let mut devices = Vec::new();
    for (d, device) in model.devices.iter().enumerate().filter(|(_, d)| d.enabled) {
        let mut metrics = Vec::new();
        let mut tags = Vec::new();
        for (t, tag) in model
            .tags
            .iter()
            .enumerate()
            .filter(|(_, t)| t.device == device.name)
        {
            map.by_tag[t] = Some((devices.len(), metrics.len()));
            tags.push(TagId(t as u32));
            metrics.push(MetricDef {
                name: uns_model::tag_names(model, tag).metric_name.into(),
                datatype: sparkplug_type(tag.datatype),
                unit: tag.unit.clone(),
                writable: tag.writable,
                eng_range: tag.eng_range().map(Box::new),
            });
        }
        metrics.shrink_to_fit();
        tags.shrink_to_fit();
        map.by_device[d] = Some(devices.len());
        map.tags.push(tags);
        devices.push(DeviceDef {
            device_id: device.name.clone(),
            metrics,
        });
    }
    // The fastest poll among the devices and the scan classes in use, for hosts that show a
    // node's scan rate. Read-only: periods are set in the model.
    let classes_in_use = model
        .scan_classes
        .iter()
        .filter(|c| {
            model
                .tags
                .iter()
                .any(|t| t.scan_class() == Some(c.name.as_str()))
        })
        .map(|c| c.period_ms);
    let scan_rate_ms = model
        .devices
        .iter()
        .filter(|d| d.enabled)
        .map(|d| d.driver.period_ms())
        .chain(classes_in_use)
        .map(i64::from)
        .min()
        .unwrap_or(0);
    let config = SessionConfig {
        group_id: model.sparkplug_group_id().to_owned(),
        edge_node_id: model.sparkplug.edge_node_id.clone(),
        devices,
        rebirth_debounce_ms: 2000,
        primary_host_id: model.sparkplug.primary_host_id.clone(),
        server_count: 1,
        node_metrics: vec![
            (
                "Node Control/Scan Rate".into(),
                MetricValue::Int64(scan_rate_ms),
            ),
            (
                "Properties/Software".into(),
                MetricValue::String(format!("sparkedge {}", env!("CARGO_PKG_VERSION"))),
            ),
            ("Properties/OS".into(), MetricValue::String(os_name())),
        ],
        known_aliases,
    };
    (config, map)
}

/// The operating system as /etc/os-release names it, e.g. "Debian GNU/Linux 12 (bookworm)".
fn os_name() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| std::env::consts::OS.to_owned())
}

pub fn sparkplug_type(t: uns_model::DataType) -> DataType {
    use uns_model::DataType as U;
    match t {
        U::Bool => DataType::Boolean,
        U::Int8 => DataType::Int8,
        U::Int16 => DataType::Int16,
        U::Int32 => DataType::Int32,
        U::Int64 => DataType::Int64,
        U::UInt8 => DataType::UInt8,
        U::UInt16 => DataType::UInt16,
        U::UInt32 => DataType::UInt32,
        U::UInt64 => DataType::UInt64,
        U::Float32 => DataType::Float,
        U::Float64 => DataType::Double,
        U::String => DataType::String,
        U::DateTime => DataType::DateTime,
        U::BoolArray => DataType::BooleanArray,
        U::Int8Array => DataType::Int8Array,
        U::Int16Array => DataType::Int16Array,
        U::Int32Array => DataType::Int32Array,
        U::Int64Array => DataType::Int64Array,
        U::UInt8Array => DataType::UInt8Array,
        U::UInt16Array => DataType::UInt16Array,
        U::UInt32Array => DataType::UInt32Array,
        U::UInt64Array => DataType::UInt64Array,
        U::Float32Array => DataType::FloatArray,
        U::Float64Array => DataType::DoubleArray,
        U::StringArray => DataType::StringArray,
        U::DateTimeArray => DataType::DateTimeArray,
    }
}

fn metric_value(v: &Value) -> MetricValue {
    match v {
        Value::Bool(v) => MetricValue::Boolean(*v),
        Value::Int8(v) => MetricValue::Int8(*v),
        Value::Int16(v) => MetricValue::Int16(*v),
        Value::Int32(v) => MetricValue::Int32(*v),
        Value::Int64(v) => MetricValue::Int64(*v),
        Value::UInt8(v) => MetricValue::UInt8(*v),
        Value::UInt16(v) => MetricValue::UInt16(*v),
        Value::UInt32(v) => MetricValue::UInt32(*v),
        Value::UInt64(v) => MetricValue::UInt64(*v),
        Value::Float32(v) => MetricValue::Float(*v),
        Value::Float64(v) => MetricValue::Double(*v),
        Value::String(v) => MetricValue::String(v.clone()),
        Value::DateTime(v) => MetricValue::DateTime(*v),
        Value::Array(a) => match &**a {
            Array::Bool(v) => MetricValue::BooleanArray(v.clone()),
            Array::Int8(v) => MetricValue::Int8Array(v.clone()),
            Array::Int16(v) => MetricValue::Int16Array(v.clone()),
            Array::Int32(v) => MetricValue::Int32Array(v.clone()),
            Array::Int64(v) => MetricValue::Int64Array(v.clone()),
            Array::UInt8(v) => MetricValue::UInt8Array(v.clone()),
            Array::UInt16(v) => MetricValue::UInt16Array(v.clone()),
            Array::UInt32(v) => MetricValue::UInt32Array(v.clone()),
            Array::UInt64(v) => MetricValue::UInt64Array(v.clone()),
            Array::Float32(v) => MetricValue::FloatArray(v.clone()),
            Array::Float64(v) => MetricValue::DoubleArray(v.clone()),
            // A StringArray element ends at NUL on the wire, so a NUL inside one would split
            // it and shift every later element; U+FFFD keeps count and positions (the UNS
            // carries the exact text).
            Array::String(v) => MetricValue::StringArray(
                v.iter()
                    .map(|s| {
                        if s.contains('\0') {
                            s.replace('\0', "\u{FFFD}")
                        } else {
                            s.clone()
                        }
                    })
                    .collect(),
            ),
            Array::DateTime(v) => MetricValue::DateTimeArray(v.clone()),
        },
    }
}

/// The tag value for a command value the session already checked against the birth type
/// (which came from the tag's type), so every pairing below is the one the birth made.
fn tag_value(v: MetricValue) -> Option<Value> {
    Some(match v {
        MetricValue::Boolean(v) => Value::Bool(v),
        MetricValue::Int8(v) => Value::Int8(v),
        MetricValue::Int16(v) => Value::Int16(v),
        MetricValue::Int32(v) => Value::Int32(v),
        MetricValue::Int64(v) => Value::Int64(v),
        MetricValue::UInt8(v) => Value::UInt8(v),
        MetricValue::UInt16(v) => Value::UInt16(v),
        MetricValue::UInt32(v) => Value::UInt32(v),
        MetricValue::UInt64(v) => Value::UInt64(v),
        MetricValue::Float(v) => Value::Float32(v),
        MetricValue::Double(v) => Value::Float64(v),
        MetricValue::String(v) => Value::String(v),
        MetricValue::DateTime(v) => Value::DateTime(v),
        MetricValue::BooleanArray(v) => Array::Bool(v).into(),
        MetricValue::Int8Array(v) => Array::Int8(v).into(),
        MetricValue::Int16Array(v) => Array::Int16(v).into(),
        MetricValue::Int32Array(v) => Array::Int32(v).into(),
        MetricValue::Int64Array(v) => Array::Int64(v).into(),
        MetricValue::UInt8Array(v) => Array::UInt8(v).into(),
        MetricValue::UInt16Array(v) => Array::UInt16(v).into(),
        MetricValue::UInt32Array(v) => Array::UInt32(v).into(),
        MetricValue::UInt64Array(v) => Array::UInt64(v).into(),
        MetricValue::FloatArray(v) => Array::Float32(v).into(),
        MetricValue::DoubleArray(v) => Array::Float64(v).into(),
        MetricValue::StringArray(v) => Array::String(v).into(),
        MetricValue::DateTimeArray(v) => Array::DateTime(v).into(),
        _ => return None,
    })
}

/// Sparkplug's `Quality` property has three values only (spec §3.7: 0 bad, 192 good,
/// 500 stale); a code of our own (OPC UA's 64 for uncertain) would be read as invalid or
/// ignored by hosts. Uncertain is sent as bad *with its value*: a host shows the value and
/// that it is not to be trusted, the conservative reading of "uncertain". Hosts cannot tell
/// it from a failed read that kept the last value, so a change from uncertain to bad with
/// the same value is no news to them either (the session drops it); the UNS and the web
/// view say "uncertain".
fn quality(q: Quality) -> sparkplug::Quality {
    match q {
        Quality::Good => sparkplug::Quality::Good,
        Quality::Uncertain | Quality::Bad => sparkplug::Quality::Bad,
        Quality::Stale => sparkplug::Quality::Stale,
    }
}

fn qos(q: sparkplug::QoS) -> rumqttc::QoS {
    match q {
        sparkplug::QoS::AtMostOnce => rumqttc::QoS::AtMostOnce,
        sparkplug::QoS::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
    }
}

/// Why a connection ended.
enum Ended {
    /// The process is stopping; NDEATH was sent (or could not be).
    Shutdown,
    /// Lost, or ended by the session (Primary Host offline, Next Server): connect again.
    /// `bd_seq_seen` is false when the CONNECT carrying the Will never reached a broker;
    /// `by_session` when the session chose to end it (reconnect at once, spec §6 pitfall 33).
    Reconnect {
        bd_seq_seen: bool,
        next_server: bool,
        by_session: bool,
    },
}

/// Whether a failed attempt ended before our CONNECT could reach a broker: the TCP connection
/// itself failed. bdSeq counts CONNECT packets sent (spec §2.2), so such an attempt's bdSeq is
/// used again rather than skipped.
fn connect_never_sent(e: &rumqttc::ConnectionError) -> bool {
    use std::io::ErrorKind::*;
    matches!(e, rumqttc::ConnectionError::Io(io)
        if matches!(io.kind(), ConnectionRefused | HostUnreachable | NetworkUnreachable | AddrNotAvailable))
}

/// Runs the Edge Node session until `shutdown` turns true, reconnecting with back-off and
/// walking the server list. On shutdown it publishes NDEATH at QoS 1 and waits for the PUBACK.
pub async fn run(
    connection: ConnectionConfig,
    model: NodeModel,
    store: Arc<Mutex<Store>>,
    mailbox: Arc<Mailbox>,
    writes: mpsc::Sender<Write>,
    status: Arc<web::StatusBoard>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut config = model.config;
    if let Some(pinned) = &connection.pinned_primary_host {
        config.primary_host_id.clone_from(pinned);
    }
    config.server_count = connection.servers.len();
    let mut node = Node {
        session: EdgeNodeSession::new(config),
        pinned_primary_host: connection.pinned_primary_host.clone(),
        map: model.map,
        generation: model.generation,
        writes,
        store: store.clone(),
        status,
        name: connection.name.clone(),
        ending: shutdown.clone(),
    };
    save_aliases(store.clone(), node.session.take_new_aliases()).await;
    let mut backoff = Duration::from_millis(200);
    let mut unsent_bd_seq = None;
    let mut index = 0;
    loop {
        let server = &connection.servers[index];
        let next = match unsent_bd_seq.take() {
            Some(b) => Ok(b),
            None => next_bd_seq(&store, &connection.name).await,
        };
        let bd_seq = match next {
            Ok(b) => b,
            Err(e) => {
                // Without a persisted bdSeq, hosts could match a stale death to our birth.
                tracing::error!(
                    "cannot persist bdSeq, not connecting to {}: {e}",
                    connection.name
                );
                if wait_or_shutdown(&mut shutdown, Duration::from_secs(5)).await {
                    return;
                }
                continue;
            }
        };
        let will = node.session.connect(bd_seq, index, now_ms());
        let client_id = connection
            .client_id
            .clone()
            .unwrap_or_else(|| format!("sparkedge-{}", node.session.config().edge_node_id));
        let mut options = MqttOptions::new(client_id, &server.host, server.port);
        if let Some((user, password)) = &connection.credentials {
            options.set_credentials(user, password);
        }
        if server.tls {
            options.set_transport(rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Simple {
                ca: connection.ca_pem.clone().unwrap_or_default(),
                alpn: None,
                client_auth: None,
            }));
        }
        options.set_keep_alive(Duration::from_secs(15));
        options.set_clean_session(true);
        options.set_max_packet_size(4 << 20, 4 << 20);
        options.set_last_will(LastWill::new(
            will.topic,
            will.payload,
            qos(will.qos),
            will.retain,
        ));
        // A fresh client per connection: rumqttc would otherwise replay requests queued for
        // the old connection before our NBIRTH.
        let (client, mut eventloop) = AsyncClient::new(options, 1024);
        eventloop.network_options.set_tcp_nodelay(true);
        tracing::info!(connection = %connection.name, %server, bd_seq, "connecting Sparkplug session");
        node.report(|s| {
            s.server = server.to_string();
            s.state = "connecting".to_owned();
        });
        let ended = node
            .connection(
                &client,
                &mut eventloop,
                &mailbox,
                &mut shutdown,
                &mut backoff,
            )
            .await;
        node.session.disconnected();
        match ended {
            Ended::Shutdown => return,
            Ended::Reconnect {
                bd_seq_seen,
                next_server,
                by_session,
            } => {
                if !bd_seq_seen {
                    unsent_bd_seq = Some(bd_seq);
                }
                if next_server {
                    index = (index + 1) % connection.servers.len();
                }
                let delay = if by_session {
                    Duration::from_millis(100)
                } else {
                    backoff
                };
                if wait_or_shutdown(&mut shutdown, delay).await {
                    return;
                }
                if !by_session {
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

/// Resolves at `due` (ms since the epoch), or never when there is nothing due.
async fn until(due: Option<u64>) {
    match due {
        Some(due) => tokio::time::sleep(Duration::from_millis(due.saturating_sub(now_ms()))).await,
        None => std::future::pending().await,
    }
}

/// Waits `delay`; true if shutdown was requested meanwhile.
async fn wait_or_shutdown(shutdown: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => false,
        _ = crate::stopped(shutdown) => true,
    }
}

/// Persists aliases numbered by the session, so hosts see the same ones after a restart.
async fn save_aliases(store: Arc<Mutex<Store>>, aliases: Vec<(String, String, u64)>) {
    if aliases.is_empty() {
        return;
    }
    let saved = tokio::task::spawn_blocking(move || {
        store
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .save_sparkplug_aliases(&aliases)
    })
    .await;
    if !matches!(saved, Ok(Ok(()))) {
        tracing::warn!("Sparkplug aliases not saved; hosts may see new aliases after a restart");
    }
}

async fn next_bd_seq(store: &Arc<Mutex<Store>>, server: &str) -> Result<u8, uns_model::StoreError> {
    let store = store.clone();
    let server = server.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut store = store.lock().unwrap_or_else(|e| e.into_inner());
        let next = store.last_bd_seq(&server)?.map_or(0, |b| b.wrapping_add(1));
        store.set_last_bd_seq(&server, next)?;
        Ok(next)
    })
    .await
    .unwrap_or_else(|e| {
        Err(uns_model::StoreError::Corrupt(format!(
            "bdSeq task failed: {e}"
        )))
    })
}

struct Node {
    session: EdgeNodeSession,
    /// See [`ConnectionConfig::pinned_primary_host`].
    pinned_primary_host: Option<Option<String>>,
    map: Arc<MetricMap>,
    /// The model `map` belongs to.
    generation: u64,
    writes: mpsc::Sender<Write>,
    store: Arc<Mutex<Store>>,
    /// The dashboard's board, and this session's name on it.
    status: Arc<web::StatusBoard>,
    name: String,
    /// Set when the session is to end: it no longer reports, so a session whose
    /// connection was removed leaves no row behind on the dashboard.
    ending: watch::Receiver<bool>,
}

impl Node {
    /// Tells the dashboard what this session is doing.
    fn report(&self, change: impl FnOnce(&mut web::status::SessionStatus)) {
        if *self.ending.borrow() {
            return;
        }
        let host = self.session.primary_host_online();
        let primary = self.session.config().primary_host_id.clone();
        self.status.update(|s| {
            let entry = s.session(&self.name);
            entry.bd_seq = Some(self.session.bd_seq());
            // The last one sent is one before the next.
            entry.seq = self
                .session
                .is_online()
                .then(|| self.session.next_seq().wrapping_sub(1));
            entry.primary_host_id = primary;
            entry.primary_host_online = host;
            change(entry);
        });
    }

    async fn connection(
        &mut self,
        client: &AsyncClient,
        eventloop: &mut EventLoop,
        mailbox: &Mailbox,
        shutdown: &mut watch::Receiver<bool>,
        backoff: &mut Duration,
    ) -> Ended {
        let mut was_online = false;
        // The state last told to the dashboard: the board is written when it changes, not
        // on every delivery of samples; seq, which changes with every message, at most
        // once a second.
        let mut reported = "connecting";
        let mut seq_reported = tokio::time::Instant::now();
        let mut connack = false;
        loop {
            let outputs = tokio::select! {
                event = eventloop.poll() => match event {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        connack = true;
                        *backoff = Duration::from_millis(200);
                        self.session.connected()
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => self.session.subscribed(now_ms()),
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        self.session.handle_message(&p.topic, &p.payload, now_ms())
                    }
                    Ok(_) => Vec::new(),
                    Err(e) => {
                        tracing::warn!("Sparkplug connection lost: {e}");
                        self.report(|s| {
                            s.state = "offline".to_owned();
                            s.last_error = Some(e.to_string());
                        });
                        return Ended::Reconnect {
                            bd_seq_seen: connack || !connect_never_sent(&e),
                            // Fail over to the next server, if there is one.
                            next_server: true,
                            by_session: false,
                        };
                    }
                },
                // Only once connected: rumqttc's `poll` is not cancel-safe while it connects.
                // Dropped by another branch then (a sample arriving), it drops the connection
                // whose CONNECT is already sent, and the broker publishes its Will: an NDEATH
                // with the very bdSeq the next connection births with. Samples wait in the
                // mailbox meanwhile; shutdown may still cut the connecting short.
                delivery = mailbox.take(), if connack => self.deliver(delivery),
                // A rebirth held back by the session's debounce.
                _ = until(self.session.next_timer()), if connack => self.session.timer(now_ms()),
                _ = crate::stopped(shutdown) => {
                    self.shutdown(client, eventloop).await;
                    return Ended::Shutdown;
                }
            };
            for output in outputs {
                match output {
                    Output::Publish(p) => {
                        if p.topic.contains("/NBIRTH/") {
                            self.report(|s| {
                                s.births += 1;
                                s.last_birth_ms = Some(now_ms());
                            });
                        }
                        if let Err(e) = publish(client, p) {
                            tracing::warn!("Sparkplug publish failed: {e}");
                            return Ended::Reconnect {
                                bd_seq_seen: true,
                                next_server: false,
                                by_session: false,
                            };
                        }
                    }
                    Output::Subscribe(filters) => {
                        let subs = filters
                            .into_iter()
                            .map(|f| rumqttc::SubscribeFilter::new(f, rumqttc::QoS::AtLeastOnce));
                        if let Err(e) = client.try_subscribe_many(subs) {
                            tracing::warn!("Sparkplug subscribe failed: {e}");
                            return Ended::Reconnect {
                                bd_seq_seen: true,
                                next_server: false,
                                by_session: false,
                            };
                        }
                    }
                    Output::Write(w) => self.write(w),
                    Output::CommandRejected(why) => tracing::warn!("command ignored: {why}"),
                    Output::Reconnect { next_server } => {
                        let _ = client.try_disconnect();
                        // Let the NDEATH and DISCONNECT reach the socket before dropping it.
                        flush(eventloop, Duration::from_secs(2)).await;
                        return Ended::Reconnect {
                            bd_seq_seen: true,
                            next_server,
                            by_session: true,
                        };
                    }
                }
            }
            let state = if self.session.is_online() {
                "online"
            } else if connack && self.session.primary_host_online() == Some(false) {
                "waiting for primary host"
            } else {
                "connecting"
            };
            if state != reported {
                reported = state;
                self.report(|s| s.state = state.to_owned());
            } else if self.session.is_online() && seq_reported.elapsed() >= Duration::from_secs(1) {
                seq_reported = tokio::time::Instant::now();
                self.report(|_| {});
            }
            if self.session.is_online() != was_online {
                was_online = self.session.is_online();
                if was_online {
                    tracing::info!(
                        bd_seq = self.session.bd_seq(),
                        "Sparkplug session online: NBIRTH published"
                    );
                }
            }
        }
    }

    /// Hands a DCMD write to the hub. The driver, or the hub when the tag is gone, says
    /// in the log why a write was refused; a write that gets no answer at all was still
    /// queued in a driver that stopped (its device was changed), which is logged here.
    fn write(&self, w: sparkplug::WriteRequest) {
        let Some(&tag) = self.map.tags.get(w.device).and_then(|d| d.get(w.metric)) else {
            return;
        };
        let Some(value) = tag_value(w.value) else {
            return;
        };
        let (reply, answer) = oneshot::channel();
        let write = Write {
            generation: self.generation,
            command: WriteCommand {
                tag,
                value,
                reply: Some(reply),
            },
        };
        match self.writes.try_send(write) {
            Ok(()) => {
                tokio::spawn(async move {
                    if answer.await.is_err() {
                        tracing::warn!(
                            "DCMD write to tag {} was not carried out: its driver stopped \
                             before writing it (the device was changed)",
                            tag.0
                        );
                    }
                });
            }
            Err(e) => tracing::warn!("DCMD write to tag {} dropped: {e}", tag.0),
        }
    }

    /// Takes a new model (spec §2.11: a changed metric set needs a new birth).
    fn reconfigure(&mut self, model: NodeModel, now: u64) -> Vec<Output> {
        let NodeModel {
            mut config,
            map,
            generation,
        } = model;
        let current = self.session.config();
        // These come from the process configuration, not the model.
        if let Some(pinned) = &self.pinned_primary_host {
            config.primary_host_id.clone_from(pinned);
        }
        config.server_count = current.server_count;
        let mut out = Vec::new();
        if config.group_id == current.group_id
            && config.edge_node_id == current.edge_node_id
            && config.primary_host_id == current.primary_host_id
        {
            // A device whose metrics change dies now and is born again once its driver,
            // restarted with the new tags, has read them: so its DBIRTH carries every new
            // metric with a value rather than a null (the session would re-birth it at once).
            // A removed device dies now too, also when a rebirth follows (a new scan rate).
            let changed: Vec<usize> = current
                .devices
                .iter()
                .enumerate()
                .filter(|(_, def)| {
                    config
                        .devices
                        .iter()
                        .find(|d| d.device_id == def.device_id)
                        .is_none_or(|d| !def.same_metrics(d))
                })
                .map(|(d, _)| d)
                .collect();
            for d in changed {
                out.extend(self.session.device_online(d, false, now));
            }
        }
        out.extend(self.session.reconfigure(config, now));
        self.map = map;
        self.generation = generation;
        let aliases = self.session.take_new_aliases();
        if !aliases.is_empty() {
            tokio::spawn(save_aliases(self.store.clone(), aliases));
        }
        out
    }

    fn deliver(&mut self, delivery: Delivery) -> Vec<Output> {
        let now = now_ms();
        let mut out = match delivery.model {
            Some(SinkModel::Sparkplug(model)) => self.reconfigure(*model, now),
            _ => Vec::new(),
        };
        let updates: Vec<MetricUpdate> = delivery
            .samples
            .iter()
            .filter_map(|s| {
                let (device, metric) = (*self.map.by_tag.get(s.tag.index())?)?;
                Some(MetricUpdate {
                    device,
                    metric,
                    value: s.value.as_ref().map(metric_value),
                    quality: quality(s.quality),
                    timestamp_ms: s.timestamp_ms,
                })
            })
            .collect();
        out.extend(self.session.update(&updates, now));
        for (DeviceId(d), online) in delivery.status {
            if let Some(Some(device)) = self.map.by_device.get(d) {
                out.extend(self.session.device_online(*device, online, now));
            }
        }
        out
    }

    /// Intentional disconnect (spec §2.12): NDEATH at QoS 1, wait for its PUBACK, DISCONNECT.
    async fn shutdown(&mut self, client: &AsyncClient, eventloop: &mut EventLoop) {
        let Some(death) = self.session.shutdown(now_ms()) else {
            return;
        };
        if publish(client, death).is_err() {
            return;
        }
        let acked = tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => return true,
                    Ok(_) => {}
                    Err(_) => return false,
                }
            }
        })
        .await
        .unwrap_or(false);
        if !acked {
            tracing::warn!("NDEATH was not acknowledged; the broker will publish the Will");
            return;
        }
        let _ = client.try_disconnect();
        flush(eventloop, Duration::from_secs(1)).await;
        tracing::info!("Sparkplug session ended with NDEATH");
    }
}

fn publish(client: &AsyncClient, p: Publish) -> Result<(), rumqttc::ClientError> {
    client.try_publish(p.topic, qos(p.qos), p.retain, p.payload)
}

/// Drives the event loop until it has sent what is queued (the connection closes after a
/// DISCONNECT) or `limit` passes.
async fn flush(eventloop: &mut EventLoop, limit: Duration) {
    let _ = tokio::time::timeout(limit, async { while eventloop.poll().await.is_ok() {} }).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use sparkplug::Payload;
    use std::io::{Error, ErrorKind};

    #[test]
    fn only_a_failed_tcp_connect_keeps_the_bdseq() {
        let io = |kind| rumqttc::ConnectionError::Io(Error::from(kind));
        assert!(connect_never_sent(&io(ErrorKind::ConnectionRefused)));
        assert!(!connect_never_sent(&io(ErrorKind::ConnectionReset)));
        assert!(!connect_never_sent(
            &rumqttc::ConnectionError::NetworkTimeout
        ));
    }

    #[test]
    fn every_tag_type_has_its_sparkplug_type_and_values_map_both_ways() {
        for dt in uns_model::DataType::ALL {
            let value = Value::zero(dt);
            let metric = metric_value(&value);
            assert_eq!(metric.datatype(), sparkplug_type(dt), "{dt}");
            assert_eq!(sparkplug_type(dt).is_array(), dt.is_array(), "{dt}");
            assert_eq!(tag_value(metric), Some(value), "{dt}");
        }
        assert_eq!(sparkplug_type(uns_model::DataType::DateTime).code(), 13);
        assert_eq!(sparkplug_type(uns_model::DataType::BoolArray).code(), 32);
        assert_eq!(
            sparkplug_type(uns_model::DataType::DateTimeArray).code(),
            34
        );
        let floats: Value = Array::Float32(vec![1.5, -2.0]).into();
        assert_eq!(
            metric_value(&floats),
            MetricValue::FloatArray(vec![1.5, -2.0])
        );
        assert_eq!(
            tag_value(MetricValue::DateTimeArray(vec![7])),
            Some(Array::DateTime(vec![7]).into())
        );
    }

    #[test]
    fn a_nul_in_a_string_array_cannot_split_the_element() {
        let v: Value = Array::String(vec!["a\0b".into(), "c".into()]).into();
        let m = metric_value(&v);
        assert_eq!(m.validate(), Ok(()));
        assert_eq!(
            m,
            MetricValue::StringArray(vec!["a\u{FFFD}b".into(), "c".into()])
        );
    }

    /// A node for `model` whose session is online (NBIRTH published), no device online yet.
    fn online_node(model: &Model) -> Node {
        let (config, map) = session_config(model, HashMap::new());
        let (writes, _) = mpsc::channel(1);
        let mut node = Node {
            session: EdgeNodeSession::new(config),
            pinned_primary_host: None,
            map: Arc::new(map),
            generation: 1,
            writes,
            store: Arc::new(Mutex::new(Store::open_in_memory().unwrap())),
            status: Arc::default(),
            name: "test".to_owned(),
            ending: watch::channel(false).1,
        };
        node.session.connect(0, 0, now_ms());
        node.session.connected();
        node.session.subscribed(now_ms());
        node
    }

    #[test]
    fn an_uncertain_sample_reaches_hosts_as_bad_with_its_value() {
        let mut node = online_node(&uns_model::file::demo_model());
        let online = Delivery {
            samples: Vec::new(),
            status: vec![(DeviceId(0), true)],
            ..Delivery::default()
        };
        assert_eq!(node.deliver(online).len(), 1, "DBIRTH");
        let reading = |value: f32, quality| uns_model::TagSample {
            tag: TagId(0),
            value: Some(Value::Float32(value)),
            quality,
            timestamp_ms: 1_700_000_000_000,
        };
        let mut data = |sample| {
            let out = node.deliver(Delivery {
                samples: vec![sample],
                ..Delivery::default()
            });
            let [Output::Publish(p)] = &out[..] else {
                return None;
            };
            let payload = Payload::decode_with(&p.payload, |_, _| Some(DataType::Float)).unwrap();
            let m = payload.metrics.into_iter().next()?;
            Some((m.value, m.properties.and_then(|p| p.quality())))
        };
        assert_eq!(
            data(reading(21.5, Quality::Uncertain)),
            Some((
                Some(MetricValue::Float(21.5)),
                Some(sparkplug::Quality::Bad)
            ))
        );
        // Good again with the same value: the quality change is news to hosts.
        assert_eq!(
            data(reading(21.5, Quality::Good)),
            Some((
                Some(MetricValue::Float(21.5)),
                Some(sparkplug::Quality::Good)
            ))
        );
    }

    fn topics(out: &[Output]) -> Vec<&str> {
        out.iter()
            .map(|o| match o {
                Output::Publish(p) => p.topic.as_str(),
                Output::Reconnect { .. } => "reconnect",
                _ => "other",
            })
            .collect()
    }

    fn reload(model: &Model, generation: u64) -> Delivery {
        let (config, map) = session_config(model, HashMap::new());
        Delivery {
            model: Some(SinkModel::Sparkplug(Box::new(NodeModel {
                config,
                map: Arc::new(map),
                generation,
            }))),
            ..Delivery::default()
        }
    }

    #[tokio::test]
    async fn a_device_with_a_new_tag_dies_and_is_born_with_its_value_once_read() {
        let mut model = uns_model::file::demo_model();
        let mut node = online_node(&model);
        let dbirth = "spBv1.0/plant-a/DBIRTH/sparkedge/demo-plc";
        let online = |online| Delivery {
            status: vec![(DeviceId(0), online)],
            ..Delivery::default()
        };
        assert_eq!(topics(&node.deliver(online(true))), [dbirth]);
        let aliases = node.session.aliases();

        // A tag is inserted ahead of the others: every tag number shifts.
        let mut speed = model.tags[0].clone();
        speed.name = "speed".into();
        speed.datatype = uns_model::DataType::Float64;
        model.tags.insert(0, speed);
        let out = node.deliver(reload(&model, 2));
        assert_eq!(
            topics(&out),
            ["spBv1.0/plant-a/DDEATH/sparkedge/demo-plc"],
            "no NDEATH, no birth before the new tag was read"
        );
        assert_eq!((node.generation, node.map.tags[0][0]), (2, TagId(0)));
        // The restarted driver reads, then says the device is online.
        let out = node.deliver(Delivery {
            samples: vec![uns_model::TagSample {
                tag: TagId(0),
                value: Some(Value::Float64(7.5)),
                quality: Quality::Good,
                timestamp_ms: 1_700_000_000_000,
            }],
            status: vec![(DeviceId(0), true)],
            ..Delivery::default()
        });
        let [Output::Publish(birth)] = &out[..] else {
            panic!("{out:?}");
        };
        assert_eq!(birth.topic, dbirth);
        let payload = Payload::decode_with(&birth.payload, |_, _| None).unwrap();
        let speed = payload
            .metrics
            .iter()
            .find(|m| m.name.as_deref() == Some("packaging/line3/filler/speed"))
            .expect("the new metric in the DBIRTH");
        assert_eq!(speed.value, Some(MetricValue::Double(7.5)));
        // The metrics hosts knew keep their aliases.
        let now = node.session.aliases();
        assert!(
            aliases.iter().all(|a| now.contains(a)),
            "{aliases:?} / {now:?}"
        );

        // The device is disabled: DDEATH, and a new NBIRTH for the node's scan rate. The edge
        // node is renamed: NDEATH and a new session.
        model.devices[0].enabled = false;
        let out = node.deliver(reload(&model, 3));
        assert_eq!(
            topics(&out),
            [
                "spBv1.0/plant-a/DDEATH/sparkedge/demo-plc",
                "spBv1.0/plant-a/NBIRTH/sparkedge"
            ]
        );
        model.sparkplug.edge_node_id = "edge-2".into();
        let out = node.deliver(reload(&model, 4));
        assert_eq!(
            topics(&out),
            ["spBv1.0/plant-a/NDEATH/sparkedge", "reconnect"]
        );
    }

    #[test]
    fn session_config_follows_the_naming_rule_and_skips_disabled_devices() {
        let mut model = uns_model::file::demo_model();
        let (config, map) = session_config(&model, HashMap::new());
        assert_eq!(
            (config.group_id.as_str(), config.edge_node_id.as_str()),
            ("plant-a", "sparkedge")
        );
        assert_eq!(config.devices[0].device_id, "demo-plc");
        assert_eq!(
            config.devices[0].metrics[0].name,
            "packaging/line3/filler/temperature"
        );
        assert_eq!(map.tags[0].len(), model.tags.len());
        model.devices[0].enabled = false;
        let (config, map) = session_config(&model, HashMap::new());
        assert!(config.devices.is_empty());
        assert!(map.by_tag.iter().all(Option::is_none));
    }
}
