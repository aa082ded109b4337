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

use prost::Message;

use crate::proto::Payload;
use crate::proto::payload::{Metric, PropertySet, PropertyValue, metric, property_value};
use crate::topic::{MessageType, Topic};
use crate::value::{DataType, MetricValue, Quality};

/// The mandatory node control metric; never aliased so a host can always address it.
pub const REBIRTH: &str = "Node Control/Rebirth";
/// The birth/death sequence metric of NBIRTH and NDEATH.
pub const BD_SEQ: &str = "bdSeq";

/// What the session needs to know about this Edge Node.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    pub group_id: String,
    pub edge_node_id: String,
    pub devices: Vec<DeviceDef>,
    /// Rebirth requests arriving within this many milliseconds of the last birth are ignored,
    /// so that several hosts asking at once cause one rebirth, not a storm.
    pub rebirth_debounce_ms: u64,
    /// The Primary Host Application to wait for (spec §2.5): births only while its STATE
    /// says online, and NDEATH plus a reconnect when it goes offline.
    pub primary_host_id: Option<String>,
}

#[derive(Clone, Debug)]
pub struct DeviceDef {
    pub device_id: String,
    pub metrics: Vec<MetricDef>,
}

#[derive(Clone, Debug)]
pub struct MetricDef {
    pub name: String,
    pub datatype: DataType,
    /// Engineering unit, sent in births as the `engUnit` property.
    pub unit: Option<String>,
    /// Whether DCMD writes to it are accepted.
    pub writable: bool,
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
    /// a new session: the Primary Host went offline.
    Reconnect,
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
}

#[derive(Clone, Debug)]
struct DeviceState {
    online: bool,
    metrics: Vec<MetricState>,
}

/// One Edge Node's Sparkplug session on one MQTT server.
#[derive(Debug)]
pub struct EdgeNodeSession {
    config: SessionConfig,
    state: State,
    bd_seq: u8,
    seq: u8,
    last_birth_ms: u64,
    /// Timestamp of the last Primary Host STATE accepted; kept across reconnects so that a
    /// stale STATE (e.g. an old Will delivered late) is recognised.
    host_state_timestamp: Option<u64>,
    devices: Vec<DeviceState>,
}

impl EdgeNodeSession {
    /// Aliases are numbered from 1 across all devices in configuration order, so they are
    /// unique within the node and stable across rebirths of the same configuration.
    pub fn new(config: SessionConfig) -> EdgeNodeSession {
        let mut next_alias = 1;
        let devices = config
            .devices
            .iter()
            .map(|d| DeviceState {
                online: false,
                metrics: d
                    .metrics
                    .iter()
                    .map(|_| {
                        next_alias += 1;
                        MetricState {
                            alias: next_alias - 1,
                            value: None,
                            quality: Quality::Bad,
                            timestamp_ms: 0,
                            published_quality: Quality::Good,
                            in_batch: false,
                        }
                    })
                    .collect(),
            })
            .collect();
        EdgeNodeSession {
            config,
            state: State::Disconnected,
            bd_seq: 0,
            seq: 0,
            last_birth_ms: 0,
            host_state_timestamp: None,
            devices,
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
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
    /// every CONNECT it sends). Returns the Will to put in the CONNECT packet.
    pub fn connect(&mut self, bd_seq: u8, now_ms: u64) -> Publish {
        self.bd_seq = bd_seq;
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
        if self.config.primary_host_id.is_some() {
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
    /// its changed metrics; otherwise the values are kept for the next birth.
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
            let ms = metrics
                .into_iter()
                .map(|i| self.metric_payload(device, i, false))
                .collect();
            out.push(self.device_message(MessageType::DData, device, ms, now_ms));
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
        if self
            .host_state_timestamp
            .is_some_and(|last| timestamp < last)
        {
            return vec![Output::CommandRejected(format!(
                "{topic}: stale STATE ignored (timestamp {timestamp} is older than {})",
                self.host_state_timestamp.unwrap_or_default()
            ))];
        }
        self.host_state_timestamp = Some(timestamp);
        match (online, self.state) {
            (true, State::WaitingForHost) => {
                self.state = State::Online;
                self.births(now_ms)
            }
            (false, State::Online) => {
                let death = self.ndeath(now_ms);
                self.state = State::Disconnected;
                vec![Output::Publish(death), Output::Reconnect]
            }
            _ => Vec::new(),
        }
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
                        out.push(Output::CommandRejected(format!(
                            "{topic}: rebirth ignored, the last birth was {} ms ago (debounce {} ms)",
                            now_ms.saturating_sub(self.last_birth_ms),
                            self.config.rebirth_debounce_ms
                        )));
                    } else {
                        out.extend(self.births(now_ms));
                    }
                }
                (Some(REBIRTH), _) => {} // false (or no value) is not a request
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

    fn births(&mut self, now_ms: u64) -> Vec<Output> {
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
        ];
        let topic = Topic::node(
            &self.config.group_id,
            MessageType::NBirth,
            &self.config.edge_node_id,
        );
        self.sequenced(topic, metrics, now_ms)
    }

    fn dbirth(&mut self, device: usize, now_ms: u64) -> Output {
        let metrics = (0..self.devices[device].metrics.len())
            .map(|i| self.metric_payload(device, i, true))
            .collect();
        self.device_message(MessageType::DBirth, device, metrics, now_ms)
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
    fn metric_payload(&mut self, device: usize, index: usize, birth: bool) -> Metric {
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
            name: birth.then(|| def.name.clone()),
            alias: Some(state.alias),
            timestamp: Some(state.timestamp_ms),
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
                        },
                        MetricDef {
                            name: "line3/setpoint".into(),
                            datatype: DataType::Int32,
                            unit: None,
                            writable: true,
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
                    }],
                },
            ],
            rebirth_debounce_ms: 1000,
            primary_host_id: None,
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
        s.connect(bd_seq, T0);
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
        let will = s.connect(7, T0);
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
        assert_eq!(props.keys, ["engUnit", "Quality"]);
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
        assert!(matches!(
            &s.handle_message(topic, &ask, T0 + 10)[..],
            [Output::CommandRejected(_)]
        ));
        let p = publishes(&s.handle_message(topic, &ask, T0 + 5000));
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].1.seq, Some(0));
        assert_eq!(bd_seq_of(&p[0].1), Some(MetricValue::Int64(9)));
        let no = command(vec![Metric {
            name: Some(REBIRTH.into()),
            value: Some(metric::Value::BooleanValue(false)),
            ..Metric::default()
        }]);
        assert!(s.handle_message(topic, &no, T0 + 99_000).is_empty());
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
    fn primary_host_gates_births_and_its_death_ends_the_session() {
        let mut s = EdgeNodeSession::new(SessionConfig {
            primary_host_id: Some("scada".into()),
            ..config()
        });
        s.connect(1, T0);
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
            matches!(&out[..], [Output::Publish(p), Output::Reconnect] if p.topic.ends_with("NDEATH/edge1"))
        );
        assert!(!s.is_online());
        // The timestamp survives the reconnect: a stale online STATE does not trigger births.
        s.connect(2, T0);
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
}
