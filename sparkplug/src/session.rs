//! The Edge Node session as a sans-IO state machine (spec §2.18).
//!
//! The caller owns the MQTT connection and the clock. It tells the session what happened
//! (connecting, connected, subscribed, a message arrived, values changed, a device went away
//! or came back, shutdown) with the current time in milliseconds since the Unix epoch, and
//! carries out the [`Output`]s it gets back, in order.
//!
//! ```text
//! Disconnected --connect(bdSeq)--> Connecting  (returns the Will: NDEATH carrying bdSeq)
//! Connecting   --connected()-----> Subscribing (returns the NCMD/DCMD subscriptions)
//! Subscribing  --subscribed()----> Online      (returns NBIRTH seq 0, then a DBIRTH per online device)
//! Online: update() -> DDATA by device; device_online() -> DBIRTH/DDEATH;
//!         NCMD Rebirth=true -> NBIRTH+DBIRTHs, same bdSeq; DCMD -> WriteRequest
//! any --disconnected()--> Disconnected;  Online --shutdown()--> NDEATH (QoS 1), Disconnected
//! ```
//!
//! bdSeq is chosen by the caller, which persists it (the session has no storage); seq is one
//! counter for every node and device message, reset to 0 by each NBIRTH.

use std::collections::{HashMap, HashSet};

use compact_str::CompactString;
use prost::Message;

use crate::proto::Payload;
use crate::proto::payload::{Metric, PropertySet, PropertyValue, metric, property_value};
use crate::topic::{MessageType, Topic};
use crate::value::{DataType, MetricValue, Quality};

/// The mandatory node control metric; never aliased so a host can always address it.
pub const REBIRTH: &str = "Node Control/Rebirth";
/// The birth/death sequence metric of NBIRTH and NDEATH.
pub const BD_SEQ: &str = "bdSeq";
/// Asks the node to end its session and connect to the next MQTT server in its list.
pub const NEXT_SERVER: &str = "Node Control/Next Server";

/// What the session needs to know about this Edge Node.
#[derive(Clone, Debug, Default)]
pub struct SessionConfig {
    pub group_id: String,
    pub edge_node_id: String,
    pub devices: Vec<DeviceDef>,
    /// A rebirth requested within this many milliseconds of the last birth is answered when
    /// that time is up ([`EdgeNodeSession::timer`]), so several hosts asking at once cause
    /// one rebirth, not a storm, and no request goes unanswered.
    pub rebirth_debounce_ms: u64,
    /// The Primary Host Application to wait for (spec §2.5): births only while its STATE
    /// says online, and NDEATH plus a reconnect when it goes offline.
    pub primary_host_id: Option<String>,
    /// How many MQTT servers the caller walks between. With more than one, a Primary Host
    /// that is offline before the births sends the node to the next server (spec §2.5).
    pub server_count: usize,
    /// Read-only node-level metrics for the NBIRTH, such as `Properties/OS` or
    /// `Node Control/Scan Rate`.
    pub node_metrics: Vec<(String, MetricValue)>,
    /// Aliases given before to (device id, metric name), e.g. by an earlier run, so hosts see
    /// the same alias for the same metric across restarts. Unknown metrics get new ones.
    pub known_aliases: HashMap<(String, String), u64>,
}

#[derive(Clone, Debug)]
pub struct DeviceDef {
    pub device_id: String,
    pub metrics: Vec<MetricDef>,
}

impl DeviceDef {
    /// Whether a DBIRTH of `other` would define the same metrics as one of `self`: names,
    /// types and properties in the same order. When not, [`EdgeNodeSession::reconfigure`]
    /// re-births the device.
    pub fn same_metrics(&self, other: &DeviceDef) -> bool {
        self.metrics.len() == other.metrics.len()
            && self.metrics.iter().zip(&other.metrics).all(|(a, b)| {
                (&a.name, a.datatype, &a.unit, a.writable, &a.eng_range)
                    == (&b.name, b.datatype, &b.unit, b.writable, &b.eng_range)
            })
    }
}

#[derive(Clone, Debug)]
pub struct MetricDef {
    /// Inline when up to 24 bytes, as most metric names are: a node keeps one per metric.
    pub name: CompactString,
    pub datatype: DataType,
    /// Engineering unit, sent in births as the `engUnit` property.
    pub unit: Option<String>,
    /// Whether DCMD writes to it are accepted.
    pub writable: bool,
    /// Engineering range (low, high), sent in births as the `engLow`/`engHigh` properties
    /// (Double, as Tahu and Ignition use them). Boxed: few metrics have one, and a node
    /// keeps a definition per metric.
    pub eng_range: Option<Box<(f64, f64)>>,
}

/// A new reading of one device metric. `device` and `metric` index [`SessionConfig::devices`]
/// and [`DeviceDef::metrics`].
#[derive(Clone, Debug, PartialEq)]
pub struct MetricUpdate {
    pub device: usize,
    pub metric: usize,
    /// `None` when the metric has never had a value (sent as `is_null`).
    pub value: Option<MetricValue>,
    pub quality: Quality,
    pub timestamp_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QoS {
    AtMostOnce,
    AtLeastOnce,
}

/// An MQTT publish for the caller to send.
#[derive(Clone, Debug, PartialEq)]
pub struct Publish {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: QoS,
    pub retain: bool,
}

/// A write a host asked for, already checked against the metric's birth datatype.
#[derive(Clone, Debug, PartialEq)]
pub struct WriteRequest {
    pub device: usize,
    pub metric: usize,
    pub value: MetricValue,
}

/// What the caller must do, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Publish(Publish),
    /// Subscribe to these topic filters at QoS 1 and call [`EdgeNodeSession::subscribed`]
    /// once the broker has acknowledged them.
    Subscribe(Vec<String>),
    Write(WriteRequest),
    /// A command was ignored; the reason is for the log.
    CommandRejected(String),
    /// Close the MQTT connection (after sending the publishes before this output) and start
    /// a new session, on the next server of the list when `next_server` is set: the Primary
    /// Host went offline, or a host sent `Node Control/Next Server`.
    Reconnect {
        next_server: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Disconnected,
    Connecting,
    Subscribing,
    /// Subscribed, waiting for the Primary Host to be online before any publish.
    WaitingForHost,
    Online,
}

#[derive(Clone, Debug)]
struct MetricState {
    alias: u64,
    value: Option<MetricValue>,
    quality: Quality,
    timestamp_ms: u64,
    /// The quality hosts last saw, so a return to good is announced explicitly.
    published_quality: Quality,
    /// Already listed in the update batch being built.
    in_batch: bool,
    /// The alias was numbered in this process and the caller has not taken it to persist.
    new_alias: bool,
}

#[derive(Clone, Debug)]
struct DeviceState {
    online: bool,
    metrics: Vec<MetricState>,
}

impl MetricState {
    fn new(alias: u64) -> MetricState {
        MetricState {
            alias,
            value: None,
            quality: Quality::Bad,
            timestamp_ms: 0,
            published_quality: Quality::Good,
            in_batch: false,
            new_alias: false,
        }
    }
}

/// One Edge Node's Sparkplug session on one MQTT server.
#[derive(Debug)]
pub struct EdgeNodeSession {
    config: SessionConfig,
    state: State,
    bd_seq: u8,
    seq: u8,
    last_birth_ms: u64,
    /// When a rebirth held back by the debounce is due.
    rebirth_due: Option<u64>,
    /// Whether the Primary Host's STATE on this connection says online. It may arrive before
    /// the SUBACK (MQTT lets a broker send retained messages first).
    host_online: bool,
    /// Per MQTT server, the timestamp of the last Primary Host STATE accepted there; kept
    /// across reconnects so that a stale STATE (e.g. an old Will delivered late) is recognised.
    host_state_timestamps: HashMap<usize, u64>,
    /// The server of the current MQTT session (index in the caller's list).
    server: usize,
    devices: Vec<DeviceState>,
    /// Aliases are never reused within a process, even for removed metrics.
    next_alias: u64,
}

impl EdgeNodeSession {
    /// Aliases come from [`SessionConfig::known_aliases`] where known, else are numbered
    /// after the highest one in use, so they are unique within the node and stable across
    /// rebirths and (when the caller persists [`EdgeNodeSession::aliases`]) restarts.
    pub fn new(config: SessionConfig) -> EdgeNodeSession {
        let mut session = EdgeNodeSession {
            config: SessionConfig::default(),
            state: State::Disconnected,
            bd_seq: 0,
            seq: 0,
            last_birth_ms: 0,
            rebirth_due: None,
            host_online: false,
            host_state_timestamps: HashMap::new(),
            server: 0,
            devices: Vec::new(),
            next_alias: 1,
        };
        session.devices = session.device_states(&config, &[]);
        session.config = config;
        // Only needed to assign the aliases; a 100,000-tag node would otherwise keep a second
        // copy of every metric name for nothing.
        session.config.known_aliases = HashMap::new();
        session
    }

    /// Device states for `config`. A metric that the current configuration already has (same
    /// device id, name and datatype) keeps its alias and value, and a device its online state;
    /// `old` holds the current states.
    fn device_states(&mut self, config: &SessionConfig, old: &[DeviceState]) -> Vec<DeviceState> {
        let current = |device_id: &str| {
            self.config
                .devices
                .iter()
                .position(|d| d.device_id == device_id)
                .and_then(|d| Some((&self.config.devices[d], old.get(d)?)))
        };
        let mut kept: Vec<Vec<Option<MetricState>>> = config
            .devices
            .iter()
            .map(|d| {
                let Some((cur_def, cur)) = current(&d.device_id) else {
                    return vec![None; d.metrics.len()];
                };
                // Looked up by name, not searched: a device may have 10,000 metrics.
                let by_name: HashMap<&str, usize> = cur_def
                    .metrics
                    .iter()
                    .enumerate()
                    .map(|(i, m)| (m.name.as_str(), i))
                    .collect();
                d.metrics
                    .iter()
                    .map(|def| {
                        let &m = by_name.get(def.name.as_str())?;
                        if cur_def.metrics[m].datatype != def.datatype {
                            return None;
                        }
                        cur.metrics.get(m).cloned()
                    })
                    .collect()
            })
            .collect();
        let online: Vec<bool> = config
            .devices
            .iter()
            .map(|d| current(&d.device_id).is_some_and(|(_, s)| s.online))
            .collect();
        let mut used: HashSet<u64> = kept.iter().flatten().flatten().map(|m| m.alias).collect();
        // Known aliases next, unless a kept metric already holds them.
        for (d, device) in config.devices.iter().enumerate() {
            for (m, def) in device.metrics.iter().enumerate() {
                if kept[d][m].is_none()
                    && let Some(&alias) = config
                        .known_aliases
                        .get(&(device.device_id.clone(), def.name.to_string()))
                    && used.insert(alias)
                {
                    kept[d][m] = Some(MetricState::new(alias));
                }
            }
        }
        self.next_alias = self.next_alias.max(used.iter().max().map_or(1, |a| a + 1));
        kept.into_iter()
            .zip(online)
            .map(|(metrics, online)| DeviceState {
                online,
                metrics: metrics
                    .into_iter()
                    .map(|m| {
                        m.unwrap_or_else(|| {
                            self.next_alias += 1;
                            MetricState {
                                new_alias: true,
                                ..MetricState::new(self.next_alias - 1)
                            }
                        })
                    })
                    .collect(),
            })
            .collect()
    }

    /// Every (device id, metric name, alias) of the current configuration: the alias map hosts
    /// learn from the births. To persist aliases, use [`EdgeNodeSession::take_new_aliases`].
    pub fn aliases(&self) -> Vec<(String, String, u64)> {
        self.config
            .devices
            .iter()
            .zip(&self.devices)
            .flat_map(|(def, state)| {
                def.metrics
                    .iter()
                    .zip(&state.metrics)
                    .map(|(m, s)| (def.device_id.clone(), m.name.to_string(), s.alias))
            })
            .collect()
    }

    /// The (device id, metric name, alias) of every alias numbered since the last call, for
    /// the caller to persist; the ones that came from [`SessionConfig::known_aliases`] are
    /// already stored. Empty on a restart with an unchanged metric set.
    pub fn take_new_aliases(&mut self) -> Vec<(String, String, u64)> {
        let mut out = Vec::new();
        for (def, state) in self.config.devices.iter().zip(&mut self.devices) {
            for (m, s) in def.metrics.iter().zip(&mut state.metrics) {
                if std::mem::take(&mut s.new_alias) {
                    out.push((def.device_id.clone(), m.name.to_string(), s.alias));
                }
            }
        }
        out
    }

    /// Replaces the node's metric set at run time (tags added, removed or changed) and
    /// returns what the spec requires: NDEATH and [`Output::Reconnect`] when the group id,
    /// the edge node id or the Primary Host changed; a full rebirth when node-level metrics (or their values) changed;
    /// otherwise DDEATH for each removed online device, and DDEATH + DBIRTH for each online
    /// device whose metrics changed. Values and aliases of unchanged metrics carry over; new
    /// devices start offline until [`EdgeNodeSession::device_online`].
    pub fn reconfigure(&mut self, config: SessionConfig, now_ms: u64) -> Vec<Output> {
        // tck-id-message-flow-device-birth-publish-dbirth-match-edge-node-topic,
        // tck-id-topics-nbirth-bdseq-matching: a new group or edge node id is a different
        // Edge Node, whose messages need their own NBIRTH and a Will on their own NDEATH
        // topic. So the current session ends (NDEATH under the old ids if it was born) and
        // the caller reconnects with a new bdSeq and a new Will.
        // A different Primary Host means another STATE topic to subscribe to before any
        // publish, and births gated on that host (tck-id-message-flow-edge-node-birth-
        // publish-phid-wait): the same fresh start, an intentional disconnect for a
        // configuration change (NDEATH first).
        let ids_changed = config.group_id != self.config.group_id
            || config.edge_node_id != self.config.edge_node_id
            || config.primary_host_id != self.config.primary_host_id;
        let death = (ids_changed && self.state == State::Online).then(|| self.ndeath(now_ms));
        let old_states = std::mem::take(&mut self.devices);
        self.devices = self.device_states(&config, &old_states);
        let old = std::mem::replace(&mut self.config, config);
        self.config.known_aliases = HashMap::new();
        if old.primary_host_id != self.config.primary_host_id {
            // The timestamps were the old host's: the new one's STATE is judged afresh.
            self.host_state_timestamps.clear();
            self.host_online = false;
        }
        if ids_changed && self.state != State::Disconnected {
            self.state = State::Disconnected;
            let mut out: Vec<Output> = death.map(Output::Publish).into_iter().collect();
            out.push(Output::Reconnect { next_server: false });
            return out;
        }
        if self.state != State::Online {
            return Vec::new();
        }
        // tck-id-topics-ndata-payload: a node metric whose value changed must reach hosts.
        // Node metrics are constants of the configuration and this node publishes no NDATA,
        // so a changed value, like a changed name or type, is announced by a new NBIRTH.
        let node_changed = old.node_metrics.len() != self.config.node_metrics.len()
            || old
                .node_metrics
                .iter()
                .zip(&self.config.node_metrics)
                .any(|((a, av), (b, bv))| a != b || av != bv);
        if node_changed {
            return self.births(now_ms);
        }
        let mut out = Vec::new();
        for (d, def) in old.devices.iter().enumerate() {
            let was_online = old_states.get(d).is_some_and(|s| s.online);
            if was_online
                && !self
                    .config
                    .devices
                    .iter()
                    .any(|n| n.device_id == def.device_id)
            {
                let topic = Topic::device(
                    &old.group_id,
                    MessageType::DDeath,
                    &old.edge_node_id,
                    &def.device_id,
                );
                out.push(self.sequenced(topic, Vec::new(), now_ms));
            }
        }
        for d in 0..self.config.devices.len() {
            let def = &self.config.devices[d];
            let Some(before) = old.devices.iter().find(|o| o.device_id == def.device_id) else {
                continue;
            };
            if !before.same_metrics(def) && self.devices[d].online {
                out.push(self.device_message(MessageType::DDeath, d, Vec::new(), now_ms));
                out.push(self.dbirth(d, now_ms));
            }
        }
        out
    }

    /// What the Primary Host's last STATE said (`false` until it said online); `None` when
    /// no Primary Host is configured.
    pub fn primary_host_online(&self) -> Option<bool> {
        self.config
            .primary_host_id
            .as_ref()
            .map(|_| self.host_online)
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The `seq` the next NDATA, DDATA, DBIRTH or DDEATH will carry (0 after an NBIRTH's).
    pub fn next_seq(&self) -> u8 {
        self.seq
    }

    /// bdSeq of the current (or last) MQTT session.
    pub fn bd_seq(&self) -> u8 {
        self.bd_seq
    }

    /// Whether births have been published in the current MQTT session.
    pub fn is_online(&self) -> bool {
        self.state == State::Online
    }

    /// Starts a new MQTT session with `bd_seq` (the caller increments and persists it for
    /// every CONNECT it sends) on server `server` of its list. Returns the Will to put in
    /// the CONNECT packet.
    pub fn connect(&mut self, bd_seq: u8, server: usize, now_ms: u64) -> Publish {
        self.bd_seq = bd_seq;
        self.server = server;
        self.host_online = false;
        self.rebirth_due = None;
        self.state = State::Connecting;
        self.ndeath(now_ms)
    }

    /// The broker accepted the CONNECT. Subscriptions come before any publish.
    pub fn connected(&mut self) -> Vec<Output> {
        if self.state != State::Connecting {
            return Vec::new();
        }
        self.state = State::Subscribing;
        let g = &self.config.group_id;
        let e = &self.config.edge_node_id;
        let mut filters = vec![
            Topic::node(g, MessageType::NCmd, e).to_string(),
            Topic::device(g, MessageType::DCmd, e, "+").to_string(),
        ];
        if let Some(host_id) = &self.config.primary_host_id {
            filters.push(
                Topic::State {
                    host_id: host_id.clone(),
                }
                .to_string(),
            );
        }
        vec![Output::Subscribe(filters)]
    }

    /// The subscriptions are acknowledged: publish the birth sequence.
    pub fn subscribed(&mut self, now_ms: u64) -> Vec<Output> {
        if self.state != State::Subscribing {
            return Vec::new();
        }
        if self.config.primary_host_id.is_some() && !self.host_online {
            // The retained STATE arrives right after the subscription; birth on it.
            self.state = State::WaitingForHost;
            return Vec::new();
        }
        self.state = State::Online;
        self.births(now_ms)
    }

    /// The MQTT connection is gone; the broker publishes the Will for us.
    pub fn disconnected(&mut self) {
        self.state = State::Disconnected;
    }

    /// Intentional disconnect: the NDEATH to publish at QoS 1 (and wait for its PUBACK)
    /// before closing the connection. `None` if no MQTT session is open.
    pub fn shutdown(&mut self, now_ms: u64) -> Option<Publish> {
        let was = std::mem::replace(&mut self.state, State::Disconnected);
        (was != State::Disconnected).then(|| self.ndeath(now_ms))
    }

    /// New readings. While online, each device that is online gets one DDATA with all of
    /// its changed metrics (a reading with the last value and quality is dropped), in
    /// chronological order; otherwise the values are kept for the next birth.
    pub fn update(&mut self, updates: &[MetricUpdate], now_ms: u64) -> Vec<Output> {
        let mut changed: Vec<Vec<usize>> = vec![Vec::new(); self.devices.len()];
        for u in updates {
            let Some(m) = self
                .devices
                .get_mut(u.device)
                .and_then(|d| d.metrics.get_mut(u.metric))
            else {
                continue;
            };
            // tck-id-operational-behavior-data-publish-dbirth-change (SHOULD), report by
            // exception: a reading that changes neither value nor quality is not news. The
            // first reading always is, even a bad one without a value (which looks like the
            // initial state): its time is the metric's time in the next birth.
            if m.timestamp_ms != 0 && m.value == u.value && m.quality == u.quality {
                continue;
            }
            m.value = u.value.clone();
            m.quality = u.quality;
            m.timestamp_ms = u.timestamp_ms;
            if !m.in_batch {
                m.in_batch = true;
                changed[u.device].push(u.metric);
            }
        }
        for (device, metrics) in changed.iter().enumerate() {
            for &m in metrics {
                self.devices[device].metrics[m].in_batch = false;
            }
        }
        if self.state != State::Online {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (device, metrics) in changed.into_iter().enumerate() {
            if metrics.is_empty() || !self.devices[device].online {
                continue;
            }
            out.push(self.metrics_message(MessageType::DData, device, metrics, false, now_ms));
        }
        out
    }

    /// A device became reachable (DBIRTH with its current values) or was lost (DDEATH).
    pub fn device_online(&mut self, device: usize, online: bool, now_ms: u64) -> Vec<Output> {
        let Some(d) = self.devices.get_mut(device) else {
            return Vec::new();
        };
        if d.online == online {
            return Vec::new();
        }
        d.online = online;
        if self.state != State::Online {
            return Vec::new();
        }
        vec![if online {
            self.dbirth(device, now_ms)
        } else {
            self.device_message(MessageType::DDeath, device, Vec::new(), now_ms)
        }]
    }

    /// A message on one of our subscriptions (NCMD or DCMD).
    pub fn handle_message(&mut self, topic: &str, payload: &[u8], now_ms: u64) -> Vec<Output> {
        let reject = |why: String| vec![Output::CommandRejected(why)];
        let (message_type, device_id) = match Topic::parse(topic) {
            Ok(Topic::Edge {
                group_id,
                message_type,
                edge_node_id,
                device_id,
            }) if group_id == self.config.group_id && edge_node_id == self.config.edge_node_id => {
                (message_type, device_id)
            }
            Ok(Topic::State { host_id })
                if Some(&host_id) == self.config.primary_host_id.as_ref() =>
            {
                return self.host_state(topic, payload, now_ms);
            }
            Ok(_) => return reject(format!("{topic}: not addressed to this edge node")),
            Err(e) => return reject(e.to_string()),
        };
        let payload = match Payload::decode(payload) {
            Ok(p) => p,
            Err(e) => return reject(format!("{topic}: undecodable payload: {e}")),
        };
        match (message_type, device_id) {
            (MessageType::NCmd, None) => self.node_command(topic, &payload, now_ms),
            (MessageType::DCmd, Some(device_id)) => {
                self.device_command(topic, &device_id, &payload)
            }
            _ => reject(format!("{topic}: not a command")),
        }
    }

    fn host_state(&mut self, topic: &str, payload: &[u8], now_ms: u64) -> Vec<Output> {
        let state: serde_json::Value = match serde_json::from_slice(payload) {
            Ok(v) => v,
            Err(e) => return vec![Output::CommandRejected(format!("{topic}: not JSON: {e}"))],
        };
        let (Some(online), Some(timestamp)) =
            (state["online"].as_bool(), state["timestamp"].as_u64())
        else {
            return vec![Output::CommandRejected(format!(
                "{topic}: STATE needs a boolean \"online\" and an integer \"timestamp\", got {state}"
            ))];
        };
        if let Some(&last) = self.host_state_timestamps.get(&self.server)
            && timestamp < last
        {
            return vec![Output::CommandRejected(format!(
                "{topic}: stale STATE ignored (timestamp {timestamp} is older than {last})"
            ))];
        }
        self.host_state_timestamps.insert(self.server, timestamp);
        self.host_online = online;
        match (online, self.state) {
            (true, State::WaitingForHost) => {
                self.state = State::Online;
                self.births(now_ms)
            }
            (false, State::Online) => self.end_session(now_ms),
            // Not born yet: with other servers to try, go and find the host there.
            (false, State::WaitingForHost | State::Subscribing) if self.config.server_count > 1 => {
                self.state = State::Disconnected;
                vec![Output::Reconnect { next_server: true }]
            }
            _ => Vec::new(),
        }
    }

    /// NDEATH, then off to the next server.
    fn end_session(&mut self, now_ms: u64) -> Vec<Output> {
        let death = self.ndeath(now_ms);
        self.state = State::Disconnected;
        vec![
            Output::Publish(death),
            Output::Reconnect { next_server: true },
        ]
    }

    fn node_command(&mut self, topic: &str, payload: &Payload, now_ms: u64) -> Vec<Output> {
        let mut out = Vec::new();
        for m in &payload.metrics {
            match (m.name.as_deref(), &m.value) {
                (Some(REBIRTH), Some(metric::Value::BooleanValue(true))) => {
                    if self.state != State::Online {
                        out.push(Output::CommandRejected(format!(
                            "{topic}: rebirth requested before the session is online"
                        )));
                    } else if now_ms.saturating_sub(self.last_birth_ms)
                        < self.config.rebirth_debounce_ms
                    {
                        // Answered when the debounce is over (see `timer`), once for all
                        // requests that arrive meanwhile.
                        self.rebirth_due =
                            Some(self.last_birth_ms + self.config.rebirth_debounce_ms);
                    } else {
                        out.extend(self.births(now_ms));
                    }
                }
                (Some(REBIRTH), _) => {} // false (or no value) is not a request
                (Some(NEXT_SERVER), Some(metric::Value::BooleanValue(true))) => {
                    if self.state == State::Online {
                        out.extend(self.end_session(now_ms));
                        return out;
                    }
                }
                (Some(NEXT_SERVER), _) => {}
                (Some(name), _) if self.config.node_metrics.iter().any(|(n, _)| n == name) => out
                    .push(Output::CommandRejected(format!(
                        "{topic}: node metric {name:?} is read-only"
                    ))),
                (name, _) => out.push(Output::CommandRejected(format!(
                    "{topic}: unknown node metric {:?} (alias {:?})",
                    name.unwrap_or(""),
                    m.alias
                ))),
            }
        }
        out
    }

    fn device_command(&self, topic: &str, device_id: &str, payload: &Payload) -> Vec<Output> {
        let Some(device) = self
            .config
            .devices
            .iter()
            .position(|d| d.device_id == device_id)
        else {
            return vec![Output::CommandRejected(format!("{topic}: unknown device"))];
        };
        let def = &self.config.devices[device];
        let state = &self.devices[device];
        payload
            .metrics
            .iter()
            .map(|m| {
                // Hosts that have not seen our births can only use names: accept both.
                let index = match (m.alias, m.name.as_deref()) {
                    (Some(alias), _) => state.metrics.iter().position(|s| s.alias == alias),
                    (None, Some(name)) => def.metrics.iter().position(|d| d.name == name),
                    (None, None) => None,
                };
                let Some(index) = index else {
                    return Output::CommandRejected(format!(
                        "{topic}: no metric {:?} (alias {:?}) on this device",
                        m.name.as_deref().unwrap_or(""),
                        m.alias
                    ));
                };
                let metric_def = &def.metrics[index];
                if !metric_def.writable {
                    return Output::CommandRejected(format!(
                        "{topic}: metric {:?} is not writable",
                        metric_def.name
                    ));
                }
                // The birth's datatype rules; a datatype in the command is ignored.
                match MetricValue::from_field(metric_def.datatype, m.value.as_ref()) {
                    Ok(value) => Output::Write(WriteRequest {
                        device,
                        metric: index,
                        value,
                    }),
                    Err(e) => Output::CommandRejected(format!(
                        "{topic}: write to {:?} refused: {e}",
                        metric_def.name
                    )),
                }
            })
            .collect()
    }

    /// When the caller should call [`EdgeNodeSession::timer`] next, if at all.
    pub fn next_timer(&self) -> Option<u64> {
        self.rebirth_due.filter(|_| self.state == State::Online)
    }

    /// Time has passed: a rebirth held back by the debounce is published once it is due.
    pub fn timer(&mut self, now_ms: u64) -> Vec<Output> {
        match self.next_timer() {
            Some(due) if now_ms >= due => self.births(now_ms),
            _ => Vec::new(),
        }
    }

    fn births(&mut self, now_ms: u64) -> Vec<Output> {
        self.rebirth_due = None;
        self.seq = 0;
        self.last_birth_ms = now_ms;
        let mut out = vec![self.nbirth(now_ms)];
        for device in 0..self.devices.len() {
            if self.devices[device].online {
                out.push(self.dbirth(device, now_ms));
            }
        }
        out
    }

    fn nbirth(&mut self, now_ms: u64) -> Output {
        let metrics = vec![
            Metric {
                name: Some(BD_SEQ.to_owned()),
                timestamp: Some(now_ms),
                datatype: Some(DataType::Int64.code()),
                value: Some(MetricValue::Int64(i64::from(self.bd_seq)).to_field()),
                ..Metric::default()
            },
            Metric {
                name: Some(REBIRTH.to_owned()),
                timestamp: Some(now_ms),
                datatype: Some(DataType::Boolean.code()),
                value: Some(metric::Value::BooleanValue(false)),
                ..Metric::default()
            },
            Metric {
                name: Some(NEXT_SERVER.to_owned()),
                timestamp: Some(now_ms),
                datatype: Some(DataType::Boolean.code()),
                value: Some(metric::Value::BooleanValue(false)),
                ..Metric::default()
            },
        ];
        let node_metrics = self.config.node_metrics.iter().map(|(name, value)| Metric {
            name: Some(name.clone()),
            timestamp: Some(now_ms),
            datatype: Some(value.datatype().code()),
            value: Some(value.to_field()),
            ..Metric::default()
        });
        let metrics = metrics.into_iter().chain(node_metrics).collect();
        let topic = Topic::node(
            &self.config.group_id,
            MessageType::NBirth,
            &self.config.edge_node_id,
        );
        self.sequenced(topic, metrics, now_ms)
    }

    fn dbirth(&mut self, device: usize, now_ms: u64) -> Output {
        let all = (0..self.devices[device].metrics.len()).collect();
        self.metrics_message(MessageType::DBirth, device, all, true, now_ms)
    }

    /// A DBIRTH or DDATA of `device` carrying the metrics at `indices`.
    ///
    /// tck-id-operational-behavior-data-publish-dbirth-order: the metrics go in chronological
    /// order of their timestamps (a stable sort, so metrics read together keep their
    /// configuration order). The payload is written one metric at a time, in the field order
    /// prost would use, so a 10,000-metric message never holds 10,000 protobuf structs.
    fn metrics_message(
        &mut self,
        message_type: MessageType,
        device: usize,
        mut indices: Vec<usize>,
        birth: bool,
        now_ms: u64,
    ) -> Output {
        let states = &self.devices[device].metrics;
        indices.sort_by_key(|&i| match states[i].timestamp_ms {
            0 => now_ms,
            t => t,
        });
        let mut buf = Vec::with_capacity(16 + indices.len() * if birth { 64 } else { 24 });
        // Field 1 (timestamp, varint), field 2 (metrics, length-delimited), field 3 (seq).
        buf.push(0x08);
        prost::encoding::encode_varint(now_ms, &mut buf);
        for i in indices {
            let metric = self.metric_payload(device, i, birth, now_ms);
            buf.push(0x12);
            // Writing into a Vec cannot run out of space.
            let _ = metric.encode_length_delimited(&mut buf);
        }
        buf.push(0x18);
        prost::encoding::encode_varint(u64::from(self.seq), &mut buf);
        self.seq = self.seq.wrapping_add(1);
        let topic = Topic::device(
            &self.config.group_id,
            message_type,
            &self.config.edge_node_id,
            &self.config.devices[device].device_id,
        );
        Output::Publish(Publish {
            topic: topic.to_string(),
            payload: buf,
            qos: QoS::AtMostOnce,
            retain: false,
        })
    }

    fn ndeath(&self, now_ms: u64) -> Publish {
        let payload = Payload {
            timestamp: Some(now_ms),
            metrics: vec![Metric {
                name: Some(BD_SEQ.to_owned()),
                datatype: Some(DataType::Int64.code()),
                value: Some(MetricValue::Int64(i64::from(self.bd_seq)).to_field()),
                ..Metric::default()
            }],
            ..Payload::default()
        };
        Publish {
            topic: Topic::node(
                &self.config.group_id,
                MessageType::NDeath,
                &self.config.edge_node_id,
            )
            .to_string(),
            payload: payload.encode_to_vec(),
            qos: QoS::AtLeastOnce,
            retain: false,
        }
    }

    fn device_message(
        &mut self,
        message_type: MessageType,
        device: usize,
        metrics: Vec<Metric>,
        now_ms: u64,
    ) -> Output {
        let topic = Topic::device(
            &self.config.group_id,
            message_type,
            &self.config.edge_node_id,
            &self.config.devices[device].device_id,
        );
        self.sequenced(topic, metrics, now_ms)
    }

    /// A QoS 0, non-retained message carrying the next seq (explicitly, even when 0).
    fn sequenced(&mut self, topic: Topic, metrics: Vec<Metric>, now_ms: u64) -> Output {
        let payload = Payload {
            timestamp: Some(now_ms),
            metrics,
            seq: Some(u64::from(self.seq)),
            ..Payload::default()
        };
        self.seq = self.seq.wrapping_add(1);
        Output::Publish(Publish {
            topic: topic.to_string(),
            payload: payload.encode_to_vec(),
            qos: QoS::AtMostOnce,
            retain: false,
        })
    }

    /// A metric as births (name, alias, datatype, properties) or DATA (alias only) carry it.
    fn metric_payload(&mut self, device: usize, index: usize, birth: bool, now_ms: u64) -> Metric {
        let def = &self.config.devices[device].metrics[index];
        let state = &mut self.devices[device].metrics[index];
        let mut properties = PropertySet::default();
        if birth && let Some(unit) = &def.unit {
            properties.keys.push("engUnit".to_owned());
            properties.values.push(PropertyValue {
                r#type: Some(DataType::String.code()),
                is_null: None,
                value: Some(property_value::Value::StringValue(unit.clone())),
            });
        }
        if birth && let Some(&(low, high)) = def.eng_range.as_deref() {
            for (key, v) in [("engLow", low), ("engHigh", high)] {
                properties.keys.push(key.to_owned());
                properties.values.push(PropertyValue {
                    r#type: Some(DataType::Double.code()),
                    is_null: None,
                    value: Some(property_value::Value::DoubleValue(v)),
                });
            }
        }
        // Hosts treat a metric without Quality as good, so send it when not good and once
        // more when it returns to good.
        if state.quality != Quality::Good || (!birth && state.published_quality != Quality::Good) {
            properties.keys.push("Quality".to_owned());
            properties.values.push(PropertyValue {
                r#type: Some(DataType::Int32.code()),
                is_null: None,
                value: Some(property_value::Value::IntValue(state.quality.code())),
            });
        }
        state.published_quality = state.quality;
        Metric {
            name: birth.then(|| def.name.to_string()),
            alias: Some(state.alias),
            // tck-id-payloads-metric-timestamp-in-UTC, tck-id-payloads-name-birth-data-requirement:
            // a metric never read yet (null in its birth) has no acquisition time; stamp it
            // with the birth's time rather than 0, which is 1970 to a host (and outside the
            // TCK's UTC window).
            timestamp: Some(if state.timestamp_ms == 0 {
                now_ms
            } else {
                state.timestamp_ms
            }),
            datatype: birth.then(|| def.datatype.code()),
            is_null: state.value.is_none().then_some(true),
            properties: (!properties.keys.is_empty()).then_some(properties),
            value: state.value.as_ref().map(MetricValue::to_field),
            ..Metric::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: u64 = 1_700_000_000_000;

    fn config() -> SessionConfig {
        SessionConfig {
            group_id: "plant-a".into(),
            edge_node_id: "edge1".into(),
            devices: vec![
                DeviceDef {
                    device_id: "plc1".into(),
                    metrics: vec![
                        MetricDef {
                            name: "line3/temperature".into(),
                            datatype: DataType::Float,
                            unit: Some("degC".into()),
                            writable: false,
                            eng_range: Some(Box::new((-20.0, 150.5))),
                        },
                        MetricDef {
                            name: "line3/setpoint".into(),
                            datatype: DataType::Int32,
                            unit: None,
                            writable: true,
                            eng_range: None,
                        },
                    ],
                },
                DeviceDef {
                    device_id: "plc2".into(),
                    metrics: vec![MetricDef {
                        name: "line3/temperature".into(),
                        datatype: DataType::Float,
                        unit: None,
                        writable: false,
                        eng_range: None,
                    }],
                },
            ],
            rebirth_debounce_ms: 1000,
            ..SessionConfig::default()
        }
    }

    fn publishes(out: &[Output]) -> Vec<(String, Payload)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Publish(p) => Some((
                    p.topic.clone(),
                    Payload::decode(p.payload.as_slice()).unwrap(),
                )),
                _ => None,
            })
            .collect()
    }

    fn online(bd_seq: u8) -> (EdgeNodeSession, Vec<Output>) {
        let mut s = EdgeNodeSession::new(config());
        s.device_online(0, true, T0);
        s.connect(bd_seq, 0, T0);
        assert!(matches!(&s.connected()[..], [Output::Subscribe(_)]));
        let births = s.subscribed(T0);
        (s, births)
    }

    fn bd_seq_of(p: &Payload) -> Option<MetricValue> {
        let m = p
            .metrics
            .iter()
            .find(|m| m.name.as_deref() == Some(BD_SEQ))?;
        MetricValue::from_field(DataType::from_code(m.datatype?)?, m.value.as_ref()).ok()
    }

    #[test]
    fn will_carries_only_bdseq_and_no_seq() {
        let mut s = EdgeNodeSession::new(config());
        let will = s.connect(7, 0, T0);
        assert_eq!(will.topic, "spBv1.0/plant-a/NDEATH/edge1");
        assert_eq!((will.qos, will.retain), (QoS::AtLeastOnce, false));
        let p = Payload::decode(will.payload.as_slice()).unwrap();
        assert_eq!(p.seq, None);
        assert_eq!(p.metrics.len(), 1);
        assert_eq!(p.metrics[0].datatype, Some(4));
        assert_eq!(bd_seq_of(&p), Some(MetricValue::Int64(7)));
    }

    #[test]
    fn births_follow_subscriptions_with_seq_zero_then_one() {
        let (_, births) = online(3);
        let p = publishes(&births);
        assert_eq!(p[0].0, "spBv1.0/plant-a/NBIRTH/edge1");
        assert_eq!(p[0].1.seq, Some(0));
        assert_eq!(bd_seq_of(&p[0].1), Some(MetricValue::Int64(3)));
        let rebirth = p[0]
            .1
            .metrics
            .iter()
            .find(|m| m.name.as_deref() == Some(REBIRTH))
            .unwrap();
        assert_eq!((rebirth.alias, rebirth.datatype), (None, Some(11)));
        assert_eq!(rebirth.value, Some(metric::Value::BooleanValue(false)));
        // Only the online device is born.
        assert_eq!(p.len(), 2);
        assert_eq!(p[1].0, "spBv1.0/plant-a/DBIRTH/edge1/plc1");
        assert_eq!(p[1].1.seq, Some(1));
        let temp = &p[1].1.metrics[0];
        assert_eq!(temp.name.as_deref(), Some("line3/temperature"));
        assert_eq!(
            (temp.alias, temp.datatype, temp.is_null),
            (Some(1), Some(9), Some(true))
        );
        let props = temp.properties.as_ref().unwrap();
        assert_eq!(props.keys, ["engUnit", "engLow", "engHigh", "Quality"]);
        let double = |v: &PropertyValue| (v.r#type, v.value.clone());
        assert_eq!(
            double(&props.values[1]),
            (Some(10), Some(property_value::Value::DoubleValue(-20.0)))
        );
        assert_eq!(
            double(&props.values[2]),
            (Some(10), Some(property_value::Value::DoubleValue(150.5)))
        );
    }

    #[test]
    fn ddata_carries_alias_value_and_timestamp_and_seq_wraps() {
        let (mut s, _) = online(0);
        let mut last = 1;
        for i in 0..300u64 {
            let out = s.update(
                &[MetricUpdate {
                    device: 0,
                    metric: 0,
                    value: Some(MetricValue::Float(i as f32)),
                    quality: Quality::Good,
                    timestamp_ms: T0 + i,
                }],
                T0 + i,
            );
            let p = publishes(&out);
            assert_eq!(p.len(), 1);
            assert_eq!(p[0].0, "spBv1.0/plant-a/DDATA/edge1/plc1");
            let seq = p[0].1.seq.unwrap();
            assert_eq!(seq, (last + 1) % 256);
            last = seq;
            let m = &p[0].1.metrics[0];
            assert_eq!(
                (m.name.as_deref(), m.alias, m.datatype),
                (None, Some(1), None)
            );
            assert_eq!(m.timestamp, Some(T0 + i));
            assert_eq!(m.value, Some(metric::Value::FloatValue(i as f32)));
        }
    }

    #[test]
    fn a_first_reading_that_is_bad_keeps_its_time_for_the_birth() {
        let mut s = EdgeNodeSession::new(config());
        s.update(
            &[MetricUpdate {
                device: 0,
                metric: 0,
                value: None,
                quality: Quality::Bad,
                timestamp_ms: T0 - 5000,
            }],
            T0,
        );
        s.device_online(0, true, T0);
        s.connect(0, 0, T0);
        s.connected();
        let births = publishes(&s.subscribed(T0));
        let temp = &births[1].1.metrics[0];
        assert_eq!(temp.timestamp, Some(T0 - 5000));
        assert_eq!(temp.is_null, Some(true));
    }

    /// An edge node maps a doubtful reading (OPC UA Uncertain) to bad quality with its value:
    /// the value must reach hosts, in data and in births, not be nulled by the quality.
    #[test]
    fn a_bad_reading_with_a_value_carries_the_value() {
        let quality_of = |m: &Metric| {
            let props = m.properties.as_ref()?;
            let i = props.keys.iter().position(|k| k == "Quality")?;
            props.values[i].value.clone()
        };
        let (mut s, _) = online(0);
        let bad = |v: f32, t: u64| MetricUpdate {
            device: 0,
            metric: 0,
            value: Some(MetricValue::Float(v)),
            quality: Quality::Bad,
            timestamp_ms: t,
        };
        let p = publishes(&s.update(&[bad(21.5, T0 + 1)], T0 + 1));
        let m = &p[0].1.metrics[0];
        assert_eq!(m.value, Some(metric::Value::FloatValue(21.5)));
        assert_eq!(m.is_null, None);
        assert_eq!(quality_of(m), Some(property_value::Value::IntValue(0)));
        // The same value and quality again is no news; a moved value is, still bad.
        assert!(s.update(&[bad(21.5, T0 + 2)], T0 + 2).is_empty());
        let p = publishes(&s.update(&[bad(22.0, T0 + 3)], T0 + 3));
        assert_eq!(
            p[0].1.metrics[0].value,
            Some(metric::Value::FloatValue(22.0))
        );
        // A birth (after a reconnect) carries the value with its bad quality.
        s.disconnected();
        s.connect(1, 0, T0 + 4);
        s.connected();
        let births = publishes(&s.subscribed(T0 + 4));
        let temp = &births[1].1.metrics[0];
        assert_eq!(temp.name.as_deref(), Some("line3/temperature"));
        assert_eq!(
            (temp.value.clone(), temp.is_null, temp.timestamp),
            (Some(metric::Value::FloatValue(22.0)), None, Some(T0 + 3))
        );
        assert_eq!(quality_of(temp), Some(property_value::Value::IntValue(0)));
    }

    #[test]
    fn offline_device_is_not_published_until_its_birth() {
        let (mut s, _) = online(0);
        let upd = MetricUpdate {
            device: 1,
            metric: 0,
            value: Some(MetricValue::Float(1.5)),
            quality: Quality::Good,
            timestamp_ms: T0,
        };
        assert!(s.update(&[upd], T0).is_empty());
        let p = publishes(&s.device_online(1, true, T0));
        assert_eq!(p[0].0, "spBv1.0/plant-a/DBIRTH/edge1/plc2");
        // Aliases are unique across devices.
        assert_eq!(p[0].1.metrics[0].alias, Some(3));
        assert_eq!(
            p[0].1.metrics[0].value,
            Some(metric::Value::FloatValue(1.5))
        );
        let p = publishes(&s.device_online(1, false, T0 + 5));
        assert_eq!(p[0].0, "spBv1.0/plant-a/DDEATH/edge1/plc2");
        assert_eq!((p[0].1.seq, p[0].1.timestamp), (Some(3), Some(T0 + 5)));
    }

    fn command(metrics: Vec<Metric>) -> Vec<u8> {
        Payload {
            timestamp: Some(T0),
            metrics,
            ..Payload::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn rebirth_keeps_bdseq_resets_seq_and_is_debounced() {
        let (mut s, _) = online(9);
        let ask = command(vec![Metric {
            name: Some(REBIRTH.into()),
            value: Some(metric::Value::BooleanValue(true)),
            ..Metric::default()
        }]);
        let topic = "spBv1.0/plant-a/NCMD/edge1";
        // Within the debounce: held back, answered once when it is over.
        assert!(s.handle_message(topic, &ask, T0 + 10).is_empty());
        assert!(s.handle_message(topic, &ask, T0 + 20).is_empty());
        assert_eq!(s.next_timer(), Some(T0 + 1000));
        assert!(s.timer(T0 + 999).is_empty());
        let p = publishes(&s.timer(T0 + 1000));
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].1.seq, Some(0));
        assert_eq!(bd_seq_of(&p[0].1), Some(MetricValue::Int64(9)));
        assert_eq!(s.next_timer(), None);
        // Outside the debounce: at once.
        let p = publishes(&s.handle_message(topic, &ask, T0 + 5000));
        assert_eq!(p.len(), 2);
        let no = command(vec![Metric {
            name: Some(REBIRTH.into()),
            value: Some(metric::Value::BooleanValue(false)),
            ..Metric::default()
        }]);
        assert!(s.handle_message(topic, &no, T0 + 99_000).is_empty());
    }

    #[test]
    fn an_online_state_before_the_suback_is_not_lost() {
        let mut s = EdgeNodeSession::new(SessionConfig {
            primary_host_id: Some("scada".into()),
            ..config()
        });
        s.connect(0, 0, T0);
        s.connected();
        let state = br#"{"online":true,"timestamp":5}"#;
        assert!(
            s.handle_message("spBv1.0/STATE/scada", state, T0)
                .is_empty()
        );
        let births = publishes(&s.subscribed(T0));
        assert_eq!(births[0].0, "spBv1.0/plant-a/NBIRTH/edge1");
        // A new connection does not inherit it: the retained STATE comes again.
        s.connect(1, 0, T0);
        s.connected();
        assert!(s.subscribed(T0).is_empty());
    }

    #[test]
    fn dcmd_resolves_alias_or_name_and_checks_the_birth_datatype() {
        let (mut s, _) = online(0);
        let topic = "spBv1.0/plant-a/DCMD/edge1/plc1";
        let by_alias = command(vec![Metric {
            alias: Some(2),
            value: Some(metric::Value::IntValue((-5i32) as u32)),
            ..Metric::default()
        }]);
        assert_eq!(
            s.handle_message(topic, &by_alias, T0),
            [Output::Write(WriteRequest {
                device: 0,
                metric: 1,
                value: MetricValue::Int32(-5)
            })]
        );
        let by_name = command(vec![Metric {
            name: Some("line3/setpoint".into()),
            datatype: Some(9), // ignored: the birth says Int32
            value: Some(metric::Value::IntValue(4)),
            ..Metric::default()
        }]);
        assert!(matches!(
            &s.handle_message(topic, &by_name, T0)[..],
            [Output::Write(_)]
        ));
        for bad in [
            Metric {
                alias: Some(2),
                value: Some(metric::Value::FloatValue(1.0)),
                ..Metric::default()
            },
            Metric {
                alias: Some(1),
                value: Some(metric::Value::FloatValue(1.0)),
                ..Metric::default()
            },
            Metric {
                alias: Some(99),
                value: Some(metric::Value::IntValue(1)),
                ..Metric::default()
            },
        ] {
            assert!(matches!(
                &s.handle_message(topic, &command(vec![bad]), T0)[..],
                [Output::CommandRejected(_)]
            ));
        }
        assert!(matches!(
            &s.handle_message(topic, b"\xff\xff\xff", T0)[..],
            [Output::CommandRejected(_)]
        ));
    }

    #[test]
    fn shutdown_publishes_ndeath_with_the_session_bdseq() {
        let (mut s, _) = online(42);
        let death = s.shutdown(T0).unwrap();
        assert_eq!(death.qos, QoS::AtLeastOnce);
        let p = Payload::decode(death.payload.as_slice()).unwrap();
        assert_eq!(bd_seq_of(&p), Some(MetricValue::Int64(42)));
        assert!(s.shutdown(T0).is_none());
    }

    #[test]
    fn a_new_primary_host_ends_the_session_and_gates_the_next_births() {
        let mut s = EdgeNodeSession::new(SessionConfig {
            primary_host_id: Some("scada".into()),
            ..config()
        });
        s.connect(1, 0, T0);
        s.connected();
        s.subscribed(T0);
        let state = |online: bool, ts: u64| format!(r#"{{"online":{online},"timestamp":{ts}}}"#);
        s.handle_message("spBv1.0/STATE/scada", state(true, 500).as_bytes(), T0);
        assert!(s.is_online());
        let out = s.reconfigure(
            SessionConfig {
                primary_host_id: Some("backup".into()),
                ..config()
            },
            T0,
        );
        assert!(
            matches!(&out[..], [Output::Publish(p), Output::Reconnect { next_server: false }] if p.topic.ends_with("NDEATH/edge1")),
            "{out:?}"
        );
        assert_eq!(s.primary_host_online(), Some(false));
        s.connect(2, 0, T0);
        let subs = s.connected();
        assert!(
            matches!(&subs[..], [Output::Subscribe(f)] if f.contains(&"spBv1.0/STATE/backup".to_string())),
            "{subs:?}"
        );
        assert!(
            s.subscribed(T0).is_empty(),
            "no birth before the new host is online"
        );
        // The old host's STATE no longer counts; the new host's does, whatever its clock.
        assert!(matches!(
            &s.handle_message("spBv1.0/STATE/scada", state(true, 900).as_bytes(), T0)[..],
            [Output::CommandRejected(_)]
        ));
        let births =
            publishes(&s.handle_message("spBv1.0/STATE/backup", state(true, 100).as_bytes(), T0));
        assert_eq!(births[0].0, "spBv1.0/plant-a/NBIRTH/edge1");
        // Removing the Primary Host is a change too: a new session that births at once.
        let out = s.reconfigure(config(), T0);
        assert!(matches!(
            &out[..],
            [Output::Publish(_), Output::Reconnect { .. }]
        ));
        s.connect(3, 0, T0);
        s.connected();
        assert_eq!(
            publishes(&s.subscribed(T0))[0].0,
            "spBv1.0/plant-a/NBIRTH/edge1"
        );
    }

    #[test]
    fn primary_host_gates_births_and_its_death_ends_the_session() {
        let mut s = EdgeNodeSession::new(SessionConfig {
            primary_host_id: Some("scada".into()),
            ..config()
        });
        s.connect(1, 0, T0);
        let subs = s.connected();
        assert!(
            matches!(&subs[..], [Output::Subscribe(f)] if f.contains(&"spBv1.0/STATE/scada".to_string()))
        );
        assert!(s.subscribed(T0).is_empty());
        let state = |online: bool, ts: u64| format!(r#"{{"online":{online},"timestamp":{ts}}}"#);
        let topic = "spBv1.0/STATE/scada";
        assert!(
            s.handle_message(topic, state(false, 100).as_bytes(), T0)
                .is_empty()
        );
        let births = publishes(&s.handle_message(topic, state(true, 200).as_bytes(), T0));
        assert_eq!(births[0].0, "spBv1.0/plant-a/NBIRTH/edge1");
        // An old Will of the host arriving late must not end the session.
        assert!(matches!(
            &s.handle_message(topic, state(false, 150).as_bytes(), T0)[..],
            [Output::CommandRejected(_)]
        ));
        assert!(s.is_online());
        let out = s.handle_message(topic, state(false, 200).as_bytes(), T0);
        assert!(
            matches!(&out[..], [Output::Publish(p), Output::Reconnect { next_server: true }] if p.topic.ends_with("NDEATH/edge1"))
        );
        assert!(!s.is_online());
        // The timestamp survives the reconnect: a stale online STATE does not trigger births.
        s.connect(2, 0, T0);
        s.connected();
        s.subscribed(T0);
        assert!(publishes(&s.handle_message(topic, state(true, 199).as_bytes(), T0)).is_empty());
        assert!(!publishes(&s.handle_message(topic, state(true, 300).as_bytes(), T0)).is_empty());
    }

    use proptest::strategy::Strategy as _;

    proptest::proptest! {
        /// Commands come from the network: no bytes on any topic may panic the session.
        #[test]
        fn arbitrary_commands_never_panic(
            bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256),
            topic in "spBv1.0/plant-a/(NCMD/edge1|DCMD/edge1/plc1|DCMD/edge1/x|STATE/h|NCMD)",
        ) {
            let (mut s, _) = online(0);
            let _ = s.handle_message(&topic, &bytes, T0);
        }

        /// Well-formed payloads with any mix of names, aliases and value fields: each metric
        /// is either a write or a rejection with a reason, never a panic.
        #[test]
        fn arbitrary_metrics_are_written_or_rejected(
            metrics in proptest::collection::vec((
                proptest::option::of("line3/setpoint|line3/temperature|Node Control/Rebirth|x"),
                proptest::option::of(0u64..5),
                proptest::option::of(proptest::prop_oneof![
                    proptest::num::u32::ANY.prop_map(metric::Value::IntValue),
                    proptest::num::u64::ANY.prop_map(metric::Value::LongValue),
                    proptest::num::f32::ANY.prop_map(metric::Value::FloatValue),
                    proptest::bool::ANY.prop_map(metric::Value::BooleanValue),
                    ".*".prop_map(metric::Value::StringValue),
                ]),
            ), 0..8),
        ) {
            let (mut s, _) = online(0);
            let payload = command(metrics.iter().cloned().map(|(name, alias, value)| Metric {
                name, alias, value, ..Metric::default()
            }).collect());
            let out = s.handle_message("spBv1.0/plant-a/DCMD/edge1/plc1", &payload, T0);
            proptest::prop_assert_eq!(out.len(), metrics.len());
            for o in out {
                proptest::prop_assert!(matches!(o, Output::Write(_) | Output::CommandRejected(_)));
            }
        }
    }

    #[test]
    fn aliases_survive_a_restart_and_new_metrics_get_fresh_ones() {
        let (first, _) = online(0);
        let known: HashMap<(String, String), u64> = first
            .aliases()
            .into_iter()
            .map(|(d, m, a)| ((d, m), a + 10))
            .collect();
        let mut cfg = config();
        cfg.known_aliases = known;
        cfg.devices[1].metrics.push(MetricDef {
            name: "line3/new".into(),
            datatype: DataType::Boolean,
            unit: None,
            writable: false,
            eng_range: None,
        });
        let s = EdgeNodeSession::new(cfg);
        let aliases: Vec<u64> = s.aliases().into_iter().map(|(_, _, a)| a).collect();
        assert_eq!(aliases, [11, 12, 13, 14]);
    }

    #[test]
    fn node_metrics_and_next_server_are_in_the_nbirth() {
        let mut cfg = config();
        cfg.node_metrics = vec![("Properties/OS".into(), MetricValue::String("Linux".into()))];
        let mut s = EdgeNodeSession::new(cfg);
        s.connect(0, 0, T0);
        s.connected();
        let p = publishes(&s.subscribed(T0));
        let names: Vec<_> = p[0]
            .1
            .metrics
            .iter()
            .filter_map(|m| m.name.clone())
            .collect();
        assert_eq!(names, [BD_SEQ, REBIRTH, NEXT_SERVER, "Properties/OS"]);
        let write_os = command(vec![Metric {
            name: Some("Properties/OS".into()),
            value: Some(metric::Value::StringValue("DOS".into())),
            ..Metric::default()
        }]);
        assert!(matches!(
            &s.handle_message("spBv1.0/plant-a/NCMD/edge1", &write_os, T0)[..],
            [Output::CommandRejected(why)] if why.contains("read-only")
        ));
    }

    #[test]
    fn next_server_ends_the_session_with_ndeath() {
        let (mut s, _) = online(5);
        let ask = command(vec![Metric {
            name: Some(NEXT_SERVER.into()),
            value: Some(metric::Value::BooleanValue(true)),
            ..Metric::default()
        }]);
        let out = s.handle_message("spBv1.0/plant-a/NCMD/edge1", &ask, T0);
        assert!(matches!(
            &out[..],
            [Output::Publish(p), Output::Reconnect { next_server: true }] if p.topic.ends_with("NDEATH/edge1")
        ));
        assert!(!s.is_online());
    }

    #[test]
    fn offline_host_before_births_walks_only_when_there_is_another_server() {
        let state_off = br#"{"online":false,"timestamp":10}"#;
        for (servers, expected_walk) in [(1, false), (2, true)] {
            let mut s = EdgeNodeSession::new(SessionConfig {
                primary_host_id: Some("scada".into()),
                server_count: servers,
                ..config()
            });
            s.connect(0, 0, T0);
            s.connected();
            s.subscribed(T0);
            let out = s.handle_message("spBv1.0/STATE/scada", state_off, T0);
            assert_eq!(
                out == [Output::Reconnect { next_server: true }],
                expected_walk,
                "{servers} servers: {out:?}"
            );
        }
    }

    #[test]
    fn state_timestamps_are_kept_per_server() {
        let mut s = EdgeNodeSession::new(SessionConfig {
            primary_host_id: Some("scada".into()),
            server_count: 2,
            ..config()
        });
        let topic = "spBv1.0/STATE/scada";
        s.connect(0, 0, T0);
        s.connected();
        s.subscribed(T0);
        assert!(
            !s.handle_message(topic, br#"{"online":true,"timestamp":500}"#, T0)
                .is_empty()
        );
        // Server 1 has its own history: an older timestamp there is not stale.
        s.connect(1, 1, T0);
        s.connected();
        s.subscribed(T0);
        let births = publishes(&s.handle_message(topic, br#"{"online":true,"timestamp":100}"#, T0));
        assert_eq!(births[0].0, "spBv1.0/plant-a/NBIRTH/edge1");
    }

    #[test]
    fn changed_device_metrics_rebirth_that_device_with_stable_aliases() {
        let (mut s, _) = online(0);
        s.device_online(1, true, T0);
        let before = s.aliases();
        let mut cfg = config();
        cfg.devices[0].metrics.push(MetricDef {
            name: "line3/pressure".into(),
            datatype: DataType::Double,
            unit: None,
            writable: false,
            eng_range: None,
        });
        let p = publishes(&s.reconfigure(cfg, T0));
        let topics: Vec<&str> = p.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            topics,
            [
                "spBv1.0/plant-a/DDEATH/edge1/plc1",
                "spBv1.0/plant-a/DBIRTH/edge1/plc1"
            ]
        );
        let aliases: Vec<_> = p[1].1.metrics.iter().map(|m| m.alias).collect();
        assert_eq!(aliases, [Some(before[0].2), Some(before[1].2), Some(4)]);
    }

    #[test]
    fn a_removed_device_dies_and_a_changed_node_metric_set_rebirths_everything() {
        let (mut s, _) = online(0);
        let mut cfg = config();
        cfg.devices.remove(0);
        let p = publishes(&s.reconfigure(cfg.clone(), T0));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].0, "spBv1.0/plant-a/DDEATH/edge1/plc1");
        cfg.node_metrics = vec![("Properties/OS".into(), MetricValue::String("Linux".into()))];
        s.device_online(0, true, T0);
        let p = publishes(&s.reconfigure(cfg, T0));
        let topics: Vec<&str> = p.iter().map(|(t, _)| t.as_str()).collect();
        assert_eq!(
            topics,
            [
                "spBv1.0/plant-a/NBIRTH/edge1",
                "spBv1.0/plant-a/DBIRTH/edge1/plc2"
            ]
        );
        assert_eq!(p[0].1.seq, Some(0));
    }

    #[test]
    fn only_newly_numbered_aliases_are_handed_out_for_persisting() {
        let mut first = EdgeNodeSession::new(config());
        let all = first.take_new_aliases();
        assert_eq!(all.len(), 3);
        assert!(first.take_new_aliases().is_empty(), "taken once");
        let mut cfg = config();
        cfg.known_aliases = all.into_iter().map(|(d, m, a)| ((d, m), a)).collect();
        cfg.devices[1].metrics.push(MetricDef {
            name: "line3/new".into(),
            datatype: DataType::Boolean,
            unit: None,
            writable: false,
            eng_range: None,
        });
        let mut second = EdgeNodeSession::new(cfg);
        assert_eq!(
            second.take_new_aliases(),
            [("plc2".to_owned(), "line3/new".to_owned(), 4)]
        );
    }

    #[test]
    fn streamed_payloads_are_byte_identical_to_prost() {
        let (mut s, _) = online(0);
        let out = s.update(
            &[
                MetricUpdate {
                    device: 0,
                    metric: 1,
                    value: Some(MetricValue::Int32(-4)),
                    quality: Quality::Good,
                    timestamp_ms: T0 + 2,
                },
                MetricUpdate {
                    device: 0,
                    metric: 0,
                    value: Some(MetricValue::Float(1.5)),
                    quality: Quality::Good,
                    timestamp_ms: T0 + 1,
                },
            ],
            T0 + 3,
        );
        let Output::Publish(p) = &out[0] else {
            panic!("{out:?}")
        };
        let decoded = Payload::decode(p.payload.as_slice()).unwrap();
        assert_eq!(decoded.encode_to_vec(), p.payload);
        // Chronological: the metric read first comes first.
        assert_eq!(decoded.metrics[0].alias, Some(1));
        assert_eq!((decoded.timestamp, decoded.seq), (Some(T0 + 3), Some(2)));
    }
}
