//! Sparkplug 3.0 conformance of the Edge Node session, without sockets.
//!
//! Each test is named after the `tck-id-*` statement of spec/sparkplug-3.0.md §4 it checks
//! (`tck-id-` dropped, `-` as `_`); a test that covers several closely related statements
//! lists the others in its doc comment. The tests drive [`EdgeNodeSession`] through its
//! public API with explicit times and decode every publish the way a host would: the topic
//! with [`Topic::parse`], the payload with the generated protobuf types (to see what is on
//! the wire, including field presence) and with [`Payload::decode_with`], typing DATA
//! metrics from the aliases their births declared. `CONFORMANCE.md` maps every Edge and Any
//! statement to its test.

use std::collections::{HashMap, HashSet};

use prost::Message as _;
use sparkplug::proto;
use sparkplug::session::{BD_SEQ, NEXT_SERVER, REBIRTH};
use sparkplug::topic::validate_id;
use sparkplug::{
    BasicValue, DataSet, DataType, DeviceDef, EdgeNodeSession, MessageType, Metric, MetricDef,
    MetricUpdate, MetricValue, Output, Parameter, Payload, PropertySet, Publish, QoS, Quality,
    SessionConfig, Template, Topic, ValueError, WriteRequest,
};

const T0: u64 = 1_700_000_000_000;
const NCMD: &str = "spBv1.0/plant-a/NCMD/edge1";
const DCMD_PLC1: &str = "spBv1.0/plant-a/DCMD/edge1/plc1";
const STATE: &str = "spBv1.0/STATE/scada";

fn metric_def(name: &str, datatype: DataType, unit: Option<&str>, writable: bool) -> MetricDef {
    MetricDef {
        name: name.into(),
        datatype,
        unit: unit.map(Into::into),
        writable,
        eng_range: None,
    }
}

/// Two devices that both have a metric called `line3/temperature` (aliases must still
/// differ), one writable metric, and node-level metrics besides the mandatory ones.
fn config() -> SessionConfig {
    SessionConfig {
        group_id: "plant-a".into(),
        edge_node_id: "edge1".into(),
        devices: vec![
            DeviceDef {
                device_id: "plc1".into(),
                metrics: vec![
                    metric_def("line3/temperature", DataType::Float, Some("degC"), false),
                    metric_def("line3/setpoint", DataType::Int32, None, true),
                    metric_def("line3/recipe", DataType::String, None, true),
                ],
            },
            DeviceDef {
                device_id: "plc2".into(),
                metrics: vec![metric_def(
                    "line3/temperature",
                    DataType::Float,
                    None,
                    false,
                )],
            },
        ],
        rebirth_debounce_ms: 1000,
        node_metrics: vec![
            ("Properties/OS".into(), MetricValue::String("Linux".into())),
            ("Node Control/Scan Rate".into(), MetricValue::Int64(1000)),
        ],
        ..SessionConfig::default()
    }
}

fn with_primary_host(servers: usize) -> SessionConfig {
    SessionConfig {
        primary_host_id: Some("scada".into()),
        server_count: servers,
        ..config()
    }
}

/// A publish as a host sees it.
#[derive(Clone, Debug)]
struct Msg {
    topic: String,
    verb: MessageType,
    device: Option<String>,
    qos: QoS,
    retain: bool,
    /// The protobuf message as on the wire (field presence included).
    raw: proto::Payload,
    /// The typed payload, DATA metrics typed from their births.
    payload: Payload,
}

impl Msg {
    fn metric(&self, name: &str) -> &Metric {
        self.payload
            .metrics
            .iter()
            .find(|m| m.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{}: no metric {name:?}", self.topic))
    }

    fn raw_metric(&self, name: &str) -> &proto::payload::Metric {
        self.raw
            .metrics
            .iter()
            .find(|m| m.name.as_deref() == Some(name))
            .unwrap_or_else(|| panic!("{}: no metric {name:?}", self.topic))
    }

    fn bd_seq(&self) -> MetricValue {
        self.metric(BD_SEQ)
            .value
            .clone()
            .expect("bdSeq has a value")
    }
}

/// A host application's view: remembers the datatype of every alias from the births so
/// that DATA metrics (alias only, no datatype) can be typed.
#[derive(Default)]
struct Host {
    types: HashMap<u64, DataType>,
}

impl Host {
    fn decode(&mut self, p: &Publish) -> Msg {
        let Topic::Edge {
            message_type,
            device_id,
            ..
        } = Topic::parse(&p.topic).unwrap_or_else(|e| panic!("{}: {e}", p.topic))
        else {
            panic!("{}: an edge node publishes no STATE", p.topic);
        };
        let raw = proto::Payload::decode(p.payload.as_slice())
            .unwrap_or_else(|e| panic!("{}: not protobuf: {e}", p.topic));
        let types = &self.types;
        let payload = Payload::decode_with(&p.payload, |_, alias| {
            alias.and_then(|a| types.get(&a).copied())
        })
        .unwrap_or_else(|e| panic!("{}: not a valid Sparkplug payload: {e}", p.topic));
        if matches!(message_type, MessageType::NBirth | MessageType::DBirth) {
            for m in &payload.metrics {
                if let (Some(alias), Some(dt)) = (m.alias, m.datatype) {
                    self.types.insert(alias, dt);
                }
            }
        }
        Msg {
            topic: p.topic.clone(),
            verb: message_type,
            device: device_id,
            qos: p.qos,
            retain: p.retain,
            raw,
            payload,
        }
    }

    fn see(&mut self, out: &[Output]) -> Vec<Msg> {
        out.iter()
            .filter_map(|o| match o {
                Output::Publish(p) => Some(self.decode(p)),
                _ => None,
            })
            .collect()
    }
}

fn publishes(out: &[Output]) -> usize {
    out.iter()
        .filter(|o| matches!(o, Output::Publish(_)))
        .count()
}

fn verbs(msgs: &[Msg]) -> Vec<(MessageType, Option<&str>)> {
    msgs.iter().map(|m| (m.verb, m.device.as_deref())).collect()
}

fn reading(device: usize, metric: usize, value: MetricValue, t: u64) -> MetricUpdate {
    MetricUpdate {
        device,
        metric,
        value: Some(value),
        quality: Quality::Good,
        timestamp_ms: t,
    }
}

/// A node with plc1 online, connected with `bd_seq` and born at T0; returns the births.
fn online(host: &mut Host, bd_seq: u8) -> (EdgeNodeSession, Vec<Msg>) {
    online_with(host, config(), bd_seq)
}

fn online_with(host: &mut Host, config: SessionConfig, bd_seq: u8) -> (EdgeNodeSession, Vec<Msg>) {
    let mut s = EdgeNodeSession::new(config);
    s.device_online(0, true, T0);
    s.connect(bd_seq, 0, T0);
    assert!(matches!(&s.connected()[..], [Output::Subscribe(_)]));
    let births = host.see(&s.subscribed(T0));
    assert!(s.is_online());
    (s, births)
}

/// A node waiting for its Primary Host on `server`, after CONNECT, CONNACK and SUBACK.
fn waiting(config: SessionConfig, bd_seq: u8, server: usize) -> EdgeNodeSession {
    let mut s = EdgeNodeSession::new(config);
    s.device_online(0, true, T0);
    s.connect(bd_seq, server, T0);
    s.connected();
    assert_eq!(s.subscribed(T0), []);
    s
}

fn state(online: bool, timestamp: u64) -> Vec<u8> {
    format!(r#"{{"online":{online},"timestamp":{timestamp}}}"#).into_bytes()
}

fn command(metrics: Vec<Metric>) -> Vec<u8> {
    Payload {
        timestamp: Some(T0),
        metrics,
        ..Payload::default()
    }
    .encode()
}

fn rebirth_request(value: bool) -> Vec<u8> {
    command(vec![Metric::new(REBIRTH, MetricValue::Boolean(value))])
}

/// Every kind of message this node publishes, each with the time it was published at:
/// NBIRTH, DBIRTH plc1, DDATA plc1, DBIRTH plc2, DDATA plc2, DDEATH plc2, then a rebirth
/// (NBIRTH, DBIRTH plc1), DDATA plc1 and the NDEATH of an intentional disconnect. Also the
/// Will of the CONNECT (bdSeq 7).
struct Run {
    will: Publish,
    sent: Vec<(u64, Msg)>,
}

fn scenario() -> Run {
    let mut host = Host::default();
    let mut sent = Vec::new();
    let mut push = |t: u64, out: Vec<Output>, host: &mut Host| {
        sent.extend(host.see(&out).into_iter().map(|m| (t, m)));
    };
    let mut s = EdgeNodeSession::new(config());
    s.device_online(0, true, T0);
    let will = s.connect(7, 0, T0);
    s.connected();
    push(T0 + 1, s.subscribed(T0 + 1), &mut host);
    let out = s.update(
        &[
            reading(0, 0, MetricValue::Float(20.5), T0 + 2),
            reading(0, 1, MetricValue::Int32(-3), T0 + 2),
        ],
        T0 + 2,
    );
    push(T0 + 2, out, &mut host);
    push(T0 + 3, s.device_online(1, true, T0 + 3), &mut host);
    let out = s.update(&[reading(1, 0, MetricValue::Float(1.0), T0 + 4)], T0 + 4);
    push(T0 + 4, out, &mut host);
    push(T0 + 5, s.device_online(1, false, T0 + 5), &mut host);
    let out = s.handle_message(NCMD, &rebirth_request(true), T0 + 2000);
    push(T0 + 2000, out, &mut host);
    let out = s.update(
        &[reading(0, 0, MetricValue::Float(21.0), T0 + 2001)],
        T0 + 2001,
    );
    push(T0 + 2001, out, &mut host);
    let death = s.shutdown(T0 + 2002).expect("NDEATH");
    push(T0 + 2002, vec![Output::Publish(death)], &mut host);
    Run { will, sent }
}

impl Run {
    fn of(&self, verb: MessageType) -> Vec<&(u64, Msg)> {
        let found: Vec<_> = self.sent.iter().filter(|(_, m)| m.verb == verb).collect();
        assert!(!found.is_empty(), "the scenario publishes no {verb:?}");
        found
    }
}

// ---------------------------------------------------------------------------------------
// Topics (spec §1, §4.4)

/// tck-id-topic-structure, also tck-id-topic-structure-namespace-a,
/// tck-id-topic-structure-namespace-device-id-associated-message-types and
/// tck-id-topic-structure-namespace-device-id-non-associated-message-types: every topic is
/// `spBv1.0/group/VERB/node[/device]`, with the device level exactly on the D verbs.
#[test]
fn topic_structure() {
    let run = scenario();
    let topics = run
        .sent
        .iter()
        .map(|(_, m)| m.topic.clone())
        .chain([run.will.topic.clone()]);
    for topic in topics {
        let levels: Vec<&str> = topic.split('/').collect();
        assert_eq!(levels[0], "spBv1.0", "{topic}");
        assert_eq!(levels[1], "plant-a", "{topic}");
        assert_eq!(levels[3], "edge1", "{topic}");
        let device_verb = matches!(levels[2], "DBIRTH" | "DDEATH" | "DDATA" | "DCMD");
        let node_verb = matches!(levels[2], "NBIRTH" | "NDEATH" | "NDATA" | "NCMD");
        assert!(device_verb || node_verb, "{topic}");
        assert_eq!(levels.len(), if device_verb { 5 } else { 4 }, "{topic}");
        if device_verb {
            assert!(["plc1", "plc2"].contains(&levels[4]), "{topic}");
        }
    }
    // The parser a host would use holds topics to the same rules.
    for bad in [
        "spAv1.0/plant-a/NBIRTH/edge1",
        "spBv1.0/plant-a/NBIRTH/edge1/plc1",
        "spBv1.0/plant-a/DDATA/edge1",
        "spBv1.0/plant-a/NFOO/edge1",
        "spBv1.0/STATE/scada/extra",
    ] {
        assert!(Topic::parse(bad).is_err(), "{bad}");
    }
}

/// tck-id-topics-nbirth-topic, also tck-id-message-flow-edge-node-birth-publish-nbirth-topic.
#[test]
fn topics_nbirth_topic() {
    for (_, m) in scenario().of(MessageType::NBirth) {
        assert_eq!(m.topic, "spBv1.0/plant-a/NBIRTH/edge1");
    }
}

/// tck-id-topics-dbirth-topic, also tck-id-message-flow-device-birth-publish-dbirth-topic.
#[test]
fn topics_dbirth_topic() {
    let run = scenario();
    let topics: Vec<&str> = run
        .of(MessageType::DBirth)
        .iter()
        .map(|(_, m)| m.topic.as_str())
        .collect();
    assert_eq!(
        topics,
        [
            "spBv1.0/plant-a/DBIRTH/edge1/plc1",
            "spBv1.0/plant-a/DBIRTH/edge1/plc2",
            "spBv1.0/plant-a/DBIRTH/edge1/plc1"
        ]
    );
}

/// tck-id-topics-ddata-topic.
#[test]
fn topics_ddata_topic() {
    let run = scenario();
    let topics: Vec<&str> = run
        .of(MessageType::DData)
        .iter()
        .map(|(_, m)| m.topic.as_str())
        .collect();
    assert_eq!(
        topics,
        [
            "spBv1.0/plant-a/DDATA/edge1/plc1",
            "spBv1.0/plant-a/DDATA/edge1/plc2",
            "spBv1.0/plant-a/DDATA/edge1/plc1"
        ]
    );
}

/// tck-id-topics-ddeath-topic.
#[test]
fn topics_ddeath_topic() {
    let run = scenario();
    let ddeath = run.of(MessageType::DDeath);
    assert_eq!(ddeath.len(), 1);
    assert_eq!(ddeath[0].1.topic, "spBv1.0/plant-a/DDEATH/edge1/plc2");
}

/// tck-id-topics-ndeath-topic, also
/// tck-id-message-flow-edge-node-birth-publish-will-message-topic: the Will and the NDEATH
/// of an intentional disconnect.
#[test]
fn topics_ndeath_topic() {
    let run = scenario();
    assert_eq!(run.will.topic, "spBv1.0/plant-a/NDEATH/edge1");
    for (_, m) in run.of(MessageType::NDeath) {
        assert_eq!(m.topic, "spBv1.0/plant-a/NDEATH/edge1");
    }
}

/// tck-id-message-flow-device-birth-publish-dbirth-match-edge-node-topic: a DBIRTH names
/// the group and edge node of the NBIRTH before it, also when the configuration renames
/// the node at run time (the session then ends and the next one births under the new name).
#[test]
fn message_flow_device_birth_publish_dbirth_match_edge_node_topic() {
    let mut host = Host::default();
    let (mut s, births) = online(&mut host, 3);
    let ids = |m: &Msg| {
        let levels: Vec<String> = m.topic.split('/').map(str::to_owned).collect();
        (levels[1].clone(), levels[3].clone())
    };
    assert_eq!(ids(&births[1]), ids(&births[0]));

    let mut renamed = config();
    renamed.edge_node_id = "edge9".into();
    let out = s.reconfigure(renamed, T0 + 10);
    let msgs = host.see(&out);
    assert_eq!(verbs(&msgs), [(MessageType::NDeath, None)]);
    assert_eq!(msgs[0].topic, "spBv1.0/plant-a/NDEATH/edge1");
    assert_eq!(msgs[0].bd_seq(), MetricValue::Int64(3));
    assert_eq!(out.last(), Some(&Output::Reconnect { next_server: false }));
    assert!(!s.is_online());
    // Nothing under either name until the new session is born.
    assert_eq!(
        s.update(&[reading(0, 0, MetricValue::Float(1.0), T0 + 11)], T0 + 11),
        []
    );
    let will = s.connect(4, 0, T0 + 12);
    assert_eq!(will.topic, "spBv1.0/plant-a/NDEATH/edge9");
    s.connected();
    let births = host.see(&s.subscribed(T0 + 13));
    assert_eq!(births[0].topic, "spBv1.0/plant-a/NBIRTH/edge9");
    assert_eq!(births[1].topic, "spBv1.0/plant-a/DBIRTH/edge9/plc1");
}

/// tck-id-topic-structure-namespace-valid-group-id, also
/// tck-id-topic-structure-namespace-valid-edge-node-id,
/// tck-id-topic-structure-namespace-valid-device-id, tck-id-intro-group-id-string,
/// tck-id-intro-group-id-chars, tck-id-intro-edge-node-id-string,
/// tck-id-intro-edge-node-id-chars, tck-id-intro-device-id-string and
/// tck-id-intro-device-id-chars: ids are UTF-8 without `+`, `/`, `#` (or NUL, or empty);
/// non-ASCII ids travel unchanged.
#[test]
fn topic_structure_namespace_valid_group_id() {
    for bad in ["a+b", "a/b", "a#b", "#", "+", "", "a\0b"] {
        assert!(validate_id(bad).is_err(), "{bad:?} must be refused");
    }
    for good in ["plant-a", "Kühlhaus 3", "設備_1", "edge.node:1"] {
        assert!(validate_id(good).is_ok(), "{good:?} is a valid id");
    }
    assert!(Topic::parse("spBv1.0/a+b/NBIRTH/edge1").is_err());
    assert!(Topic::parse("spBv1.0/plant-a/DDATA/edge1/pl#c").is_err());

    let mut cfg = config();
    cfg.group_id = "Kühlhaus 3".into();
    cfg.edge_node_id = "設備_1".into();
    cfg.devices[0].device_id = "Presse-Ä".into();
    let mut host = Host::default();
    let (_, births) = online_with(&mut host, cfg, 0);
    assert_eq!(
        Topic::parse(&births[1].topic),
        Ok(Topic::device(
            "Kühlhaus 3",
            MessageType::DBirth,
            "設備_1",
            "Presse-Ä"
        ))
    );
}

/// tck-id-topic-structure-namespace-duplicate-device-id-across-edge-node (MAY): two edge
/// nodes may each have a device with the same id; their topics stay distinct.
#[test]
fn topic_structure_namespace_duplicate_device_id_across_edge_node() {
    let mut host = Host::default();
    let (_, a) = online(&mut host, 0);
    let mut cfg = config();
    cfg.edge_node_id = "edge2".into();
    let (_, b) = online_with(&mut Host::default(), cfg, 0);
    assert_eq!(a[1].device.as_deref(), Some("plc1"));
    assert_eq!(b[1].device.as_deref(), Some("plc1"));
    assert_ne!(a[1].topic, b[1].topic);
}

// ---------------------------------------------------------------------------------------
// QoS and retain (spec §1.3)

/// tck-id-topics-nbirth-mqtt, also tck-id-payloads-nbirth-qos, tck-id-payloads-nbirth-retain,
/// tck-id-message-flow-edge-node-birth-publish-nbirth-qos and
/// tck-id-message-flow-edge-node-birth-publish-nbirth-retained.
#[test]
fn topics_nbirth_mqtt() {
    for (_, m) in scenario().of(MessageType::NBirth) {
        assert_eq!((m.qos, m.retain), (QoS::AtMostOnce, false), "{}", m.topic);
    }
}

/// tck-id-topics-dbirth-mqtt, also tck-id-payloads-dbirth-qos, tck-id-payloads-dbirth-retain,
/// tck-id-message-flow-device-birth-publish-dbirth-qos and
/// tck-id-message-flow-device-birth-publish-dbirth-retained.
#[test]
fn topics_dbirth_mqtt() {
    for (_, m) in scenario().of(MessageType::DBirth) {
        assert_eq!((m.qos, m.retain), (QoS::AtMostOnce, false), "{}", m.topic);
    }
}

/// tck-id-topics-ddata-mqtt, also tck-id-payloads-ddata-qos and tck-id-payloads-ddata-retain.
#[test]
fn topics_ddata_mqtt() {
    for (_, m) in scenario().of(MessageType::DData) {
        assert_eq!((m.qos, m.retain), (QoS::AtMostOnce, false), "{}", m.topic);
    }
}

/// tck-id-topics-ddeath-mqtt.
#[test]
fn topics_ddeath_mqtt() {
    for (_, m) in scenario().of(MessageType::DDeath) {
        assert_eq!((m.qos, m.retain), (QoS::AtMostOnce, false), "{}", m.topic);
    }
}

/// tck-id-message-flow-edge-node-birth-publish-will-message, also
/// tck-id-message-flow-edge-node-birth-publish-will-message-payload,
/// tck-id-message-flow-edge-node-birth-publish-will-message-qos,
/// tck-id-message-flow-edge-node-birth-publish-will-message-will-retained,
/// tck-id-payloads-ndeath-will-message, tck-id-payloads-ndeath-will-message-qos and
/// tck-id-payloads-ndeath-will-message-retain: `connect` returns the Will for the CONNECT,
/// a Sparkplug B NDEATH at QoS 1, not retained.
#[test]
fn message_flow_edge_node_birth_publish_will_message() {
    let mut s = EdgeNodeSession::new(config());
    let will = s.connect(12, 0, T0);
    assert_eq!((will.qos, will.retain), (QoS::AtLeastOnce, false));
    let m = Host::default().decode(&will);
    assert_eq!(m.verb, MessageType::NDeath);
    assert_eq!(m.bd_seq(), MetricValue::Int64(12));
}

// ---------------------------------------------------------------------------------------
// seq (spec §2.3)

/// tck-id-topics-nbirth-seq-num, also tck-id-payloads-nbirth-seq,
/// tck-id-payloads-sequence-num-req-nbirth and
/// tck-id-message-flow-edge-node-birth-publish-nbirth-payload-seq: every NBIRTH carries
/// seq, explicitly present and 0, also a rebirth after the counter has moved on.
#[test]
fn topics_nbirth_seq_num() {
    let mut host = Host::default();
    let (mut s, births) = online(&mut host, 0);
    assert_eq!(births[0].raw.seq, Some(0));
    // A proto2 field written as 0 is on the wire: tag 0x18 (field 3, varint), value 0.
    let bytes = births[0].raw.encode_to_vec();
    assert!(bytes.windows(2).any(|w| w == [0x18, 0x00]), "{bytes:02x?}");
    for i in 0..40u64 {
        let t = T0 + 1 + i;
        s.update(&[reading(0, 0, MetricValue::Float(i as f32), t)], t);
    }
    let rebirth = host.see(&s.handle_message(NCMD, &rebirth_request(true), T0 + 5000));
    assert_eq!(rebirth[0].verb, MessageType::NBirth);
    assert_eq!(rebirth[0].raw.seq, Some(0));
    assert_eq!(rebirth[1].raw.seq, Some(1));
}

/// tck-id-payloads-sequence-num-incrementing, also tck-id-topics-dbirth-seq,
/// tck-id-topics-ddata-seq-num, tck-id-topics-ddeath-seq-num, tck-id-payloads-dbirth-seq,
/// tck-id-payloads-dbirth-seq-inc, tck-id-payloads-ddata-seq, tck-id-payloads-ddata-seq-inc,
/// tck-id-payloads-ddeath-seq, tck-id-payloads-ddeath-seq-inc,
/// tck-id-payloads-ddeath-seq-number and
/// tck-id-message-flow-device-birth-publish-dbirth-payload-seq: one counter for all node
/// and device messages, previous + 1, 255 followed by 0.
#[test]
fn payloads_sequence_num_incrementing() {
    let run = scenario();
    let seqs: Vec<Option<u64>> = run.sent.iter().map(|(_, m)| m.raw.seq).collect();
    // NBIRTH, DBIRTH, DDATA, DBIRTH, DDATA, DDEATH | rebirth: NBIRTH, DBIRTH, DDATA | NDEATH
    assert_eq!(
        seqs,
        [
            Some(0),
            Some(1),
            Some(2),
            Some(3),
            Some(4),
            Some(5),
            Some(0),
            Some(1),
            Some(2),
            None
        ]
    );

    // Across the wrap, with every sequenced verb and both devices taking turns.
    let mut host = Host::default();
    let (mut s, births) = online(&mut host, 0);
    let mut last = births.last().unwrap().raw.seq.unwrap();
    let mut wrapped = 0;
    let mut seen_verbs = HashSet::new();
    for i in 0..700u64 {
        let t = T0 + 1 + i;
        let out = match i % 7 {
            0 => s.device_online(1, true, t),
            3 => s.device_online(1, false, t),
            k => s.update(
                &[reading(
                    usize::from(k % 2 == 0 && (1..3).contains(&k)),
                    0,
                    MetricValue::Float(i as f32),
                    t,
                )],
                t,
            ),
        };
        for m in host.see(&out) {
            let seq = m.raw.seq.expect("seq present");
            assert!(seq <= 255);
            assert_eq!(seq, (last + 1) % 256, "{} after {last}", m.topic);
            if seq == 0 {
                wrapped += 1;
            }
            seen_verbs.insert(m.verb);
            last = seq;
        }
    }
    assert!(wrapped >= 2, "the counter wrapped {wrapped} times");
    assert_eq!(
        seen_verbs,
        HashSet::from([MessageType::DBirth, MessageType::DData, MessageType::DDeath])
    );
}

/// tck-id-payloads-sequence-num-always-included, also tck-id-topics-ndeath-seq and
/// tck-id-payloads-ndeath-seq: every message of the node carries seq except NDEATH (Will,
/// explicit, or sent because the Primary Host went offline).
#[test]
fn payloads_sequence_num_always_included() {
    let run = scenario();
    for (_, m) in &run.sent {
        let expected = m.verb != MessageType::NDeath;
        assert_eq!(m.raw.seq.is_some(), expected, "{}", m.topic);
    }
    let will = proto::Payload::decode(run.will.payload.as_slice()).unwrap();
    assert_eq!(will.seq, None);

    let mut s = waiting(with_primary_host(1), 0, 0);
    s.handle_message(STATE, &state(true, 10), T0);
    let out = s.handle_message(STATE, &state(false, 20), T0 + 1);
    let death = Host::default().see(&out);
    assert_eq!(death[0].verb, MessageType::NDeath);
    assert_eq!(death[0].raw.seq, None);
}

// ---------------------------------------------------------------------------------------
// Timestamps (spec §2.13)

/// tck-id-topics-nbirth-timestamp, also tck-id-payloads-nbirth-timestamp: the payload
/// timestamp is the time the NBIRTH is published.
#[test]
fn topics_nbirth_timestamp() {
    for (t, m) in scenario().of(MessageType::NBirth) {
        assert_eq!(m.raw.timestamp, Some(*t), "{}", m.topic);
    }
}

/// tck-id-topics-dbirth-timestamp, also tck-id-payloads-dbirth-timestamp.
#[test]
fn topics_dbirth_timestamp() {
    for (t, m) in scenario().of(MessageType::DBirth) {
        assert_eq!(m.raw.timestamp, Some(*t), "{}", m.topic);
    }
}

/// tck-id-topics-ddata-timestamp, also tck-id-payloads-ddata-timestamp.
#[test]
fn topics_ddata_timestamp() {
    for (t, m) in scenario().of(MessageType::DData) {
        assert_eq!(m.raw.timestamp, Some(*t), "{}", m.topic);
    }
}

/// tck-id-payloads-ddeath-timestamp: hosts use it as the time the device went offline.
#[test]
fn payloads_ddeath_timestamp() {
    for (t, m) in scenario().of(MessageType::DDeath) {
        assert_eq!(m.raw.timestamp, Some(*t), "{}", m.topic);
        assert!(m.raw.metrics.is_empty());
    }
}

/// tck-id-payloads-name-birth-data-requirement: every metric of NBIRTH, DBIRTH and DDATA
/// carries a timestamp (the statement's id says "name", its content is the timestamp).
#[test]
fn payloads_name_birth_data_requirement() {
    let run = scenario();
    let mut checked = 0;
    for (_, m) in &run.sent {
        if matches!(
            m.verb,
            MessageType::NBirth | MessageType::DBirth | MessageType::DData
        ) {
            for metric in &m.raw.metrics {
                assert!(metric.timestamp.is_some(), "{}: {metric:?}", m.topic);
                checked += 1;
            }
        }
    }
    assert!(checked > 20, "{checked}");
}

/// tck-id-payloads-timestamp-in-UTC, also tck-id-payloads-metric-timestamp-in-UTC: payload
/// timestamps are the UTC epoch milliseconds the caller passes in, metric timestamps the
/// acquisition time of the reading; a metric never read yet carries the birth time, not 0.
#[test]
fn payloads_timestamp_in_utc() {
    let mut host = Host::default();
    let mut s = EdgeNodeSession::new(config());
    s.device_online(0, true, T0);
    let read_at = T0 - 250;
    s.update(&[reading(0, 0, MetricValue::Float(3.5), read_at)], T0);
    s.connect(0, 0, T0);
    s.connected();
    let births = host.see(&s.subscribed(T0 + 7));
    assert_eq!(births[0].raw.timestamp, Some(T0 + 7));
    for m in &births[0].raw.metrics {
        assert_eq!(m.timestamp, Some(T0 + 7), "{m:?}");
    }
    assert_eq!(
        births[1].metric("line3/temperature").timestamp,
        Some(read_at)
    );
    // Never read: null, stamped with the birth.
    let setpoint = births[1].metric("line3/setpoint");
    assert_eq!(
        (setpoint.value.as_ref(), setpoint.timestamp),
        (None, Some(T0 + 7))
    );
    let data = host.see(&s.update(&[reading(0, 1, MetricValue::Int32(9), T0 + 20)], T0 + 30));
    assert_eq!(data[0].raw.timestamp, Some(T0 + 30));
    assert_eq!(data[0].raw.metrics[0].timestamp, Some(T0 + 20));
}

// ---------------------------------------------------------------------------------------
// NBIRTH content (spec §2.6)

/// tck-id-topics-nbirth-bdseq-included, also tck-id-payloads-nbirth-bdseq: a `bdSeq`
/// metric, Int64 in `long_value`.
#[test]
fn topics_nbirth_bdseq_included() {
    let mut host = Host::default();
    let (_, births) = online(&mut host, 200);
    let raw = births[0].raw_metric(BD_SEQ);
    assert_eq!(raw.datatype, Some(DataType::Int64.code()));
    assert_eq!(
        raw.value,
        Some(proto::payload::metric::Value::LongValue(200))
    );
    assert_eq!(births[0].bd_seq(), MetricValue::Int64(200));
}

/// tck-id-topics-nbirth-bdseq-matching, also
/// tck-id-message-flow-edge-node-birth-publish-nbirth-payload-bdSeq and
/// tck-id-payloads-ndeath-bdseq: the NBIRTH carries the bdSeq of the Will of the CONNECT
/// that opened the session, and so does the NDEATH of that session.
#[test]
fn topics_nbirth_bdseq_matching() {
    for bd_seq in [0u8, 1, 77, 255] {
        let mut host = Host::default();
        let mut s = EdgeNodeSession::new(config());
        let will = host.decode(&s.connect(bd_seq, 0, T0));
        s.connected();
        let births = host.see(&s.subscribed(T0));
        assert_eq!(births[0].bd_seq(), will.bd_seq());
        assert_eq!(births[0].bd_seq(), MetricValue::Int64(i64::from(bd_seq)));
        let death = host.decode(&s.shutdown(T0 + 1).unwrap());
        assert_eq!(death.bd_seq(), will.bd_seq());
    }
}

/// tck-id-topics-nbirth-bdseq-increment, also
/// tck-id-message-flow-edge-node-birth-publish-will-message-payload-bdSeq (session part):
/// each CONNECT's Will and NBIRTH carry the bdSeq the caller chose for that CONNECT,
/// including the wrap 255 -> 0; choosing it (+1 per CONNECT, persisted) is the shell's job
/// and is checked by the system tests.
#[test]
fn topics_nbirth_bdseq_increment() {
    let mut host = Host::default();
    let mut s = EdgeNodeSession::new(config());
    for (i, bd_seq) in [254u8, 255, 0, 1].into_iter().enumerate() {
        let t = T0 + i as u64;
        let will = host.decode(&s.connect(bd_seq, 0, t));
        assert_eq!(will.bd_seq(), MetricValue::Int64(i64::from(bd_seq)));
        s.connected();
        let births = host.see(&s.subscribed(t));
        assert_eq!(births[0].bd_seq(), MetricValue::Int64(i64::from(bd_seq)));
        assert_eq!(s.bd_seq(), bd_seq);
        s.disconnected();
    }
}

/// tck-id-topics-nbirth-rebirth-metric, also tck-id-payloads-nbirth-rebirth-req,
/// tck-id-operational-behavior-data-commands-rebirth-name,
/// tck-id-operational-behavior-data-commands-rebirth-name-aliases,
/// tck-id-operational-behavior-data-commands-rebirth-datatype and
/// tck-id-operational-behavior-data-commands-rebirth-value: `Node Control/Rebirth`, Boolean
/// false, without alias although the node uses aliases.
#[test]
fn topics_nbirth_rebirth_metric() {
    let mut host = Host::default();
    let (_, births) = online(&mut host, 0);
    let raw = births[0].raw_metric(REBIRTH);
    assert_eq!(raw.datatype, Some(DataType::Boolean.code()));
    assert_eq!(raw.alias, None);
    assert_eq!(
        raw.value,
        Some(proto::payload::metric::Value::BooleanValue(false))
    );
    // Aliases are in use in this session.
    assert!(births[1].raw.metrics.iter().all(|m| m.alias.is_some()));
}

/// tck-id-topics-nbirth-metrics, also tck-id-topics-nbirth-metric-reqs,
/// tck-id-operational-behavior-data-publish-nbirth and
/// tck-id-operational-behavior-data-publish-nbirth-values: the NBIRTH lists every node
/// metric (bdSeq, the Node Controls, the configured ones) with name, datatype and value.
#[test]
fn topics_nbirth_metrics() {
    let mut host = Host::default();
    let (_, births) = online(&mut host, 0);
    let nbirth = &births[0];
    let names: Vec<&str> = nbirth
        .payload
        .metrics
        .iter()
        .filter_map(|m| m.name.as_deref())
        .collect();
    assert_eq!(
        names.len(),
        nbirth.payload.metrics.len(),
        "every metric named"
    );
    for expected in [
        BD_SEQ,
        REBIRTH,
        NEXT_SERVER,
        "Properties/OS",
        "Node Control/Scan Rate",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    for m in &nbirth.payload.metrics {
        let value = m.value.as_ref().expect("node metrics have values");
        assert_eq!(m.datatype, Some(value.datatype()), "{m:?}");
    }
    assert_eq!(
        nbirth.metric("Properties/OS").value,
        Some(MetricValue::String("Linux".into()))
    );
    assert_eq!(
        nbirth.metric("Node Control/Scan Rate").value,
        Some(MetricValue::Int64(1000))
    );
}

/// tck-id-topics-ndata-payload (by NBIRTH, as this node publishes no NDATA): a node metric
/// whose value changes at run time reaches hosts in a new NBIRTH (same bdSeq, seq 0), and
/// the DBIRTHs follow.
#[test]
fn topics_ndata_payload() {
    let mut host = Host::default();
    let (mut s, _) = online(&mut host, 5);
    let mut cfg = config();
    cfg.node_metrics[1].1 = MetricValue::Int64(250);
    let msgs = host.see(&s.reconfigure(cfg, T0 + 10));
    assert_eq!(
        verbs(&msgs),
        [
            (MessageType::NBirth, None),
            (MessageType::DBirth, Some("plc1"))
        ]
    );
    assert_eq!(
        msgs[0].metric("Node Control/Scan Rate").value,
        Some(MetricValue::Int64(250))
    );
    assert_eq!(msgs[0].raw.seq, Some(0));
    assert_eq!(msgs[0].bd_seq(), MetricValue::Int64(5));
    // The same configuration again changes nothing.
    let mut cfg = config();
    cfg.node_metrics[1].1 = MetricValue::Int64(250);
    assert_eq!(s.reconfigure(cfg, T0 + 11), []);
}

/// tck-id-operational-behavior-data-publish-nbirth-order: non-historical metrics of an
/// NBIRTH are in chronological order.
#[test]
fn operational_behavior_data_publish_nbirth_order() {
    let mut host = Host::default();
    let (_, births) = online(&mut host, 0);
    let ts: Vec<u64> = births[0]
        .raw
        .metrics
        .iter()
        .map(|m| m.timestamp.unwrap())
        .collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{ts:?}");
    assert!(
        births[0]
            .raw
            .metrics
            .iter()
            .all(|m| m.is_historical != Some(true))
    );
}

// ---------------------------------------------------------------------------------------
// DBIRTH content (spec §2.7)

/// tck-id-topics-dbirth-metrics, also tck-id-topics-dbirth-metric-reqs,
/// tck-id-operational-behavior-data-publish-dbirth,
/// tck-id-operational-behavior-data-publish-dbirth-values and
/// tck-id-message-flow-device-birth-publish-dbirth-payload: a DBIRTH lists every metric of
/// the device with name, datatype and current value, or `is_null` and no value field.
#[test]
fn topics_dbirth_metrics() {
    let mut host = Host::default();
    let mut s = EdgeNodeSession::new(config());
    s.device_online(0, true, T0);
    s.update(
        &[
            reading(0, 0, MetricValue::Float(18.25), T0),
            reading(0, 2, MetricValue::String("IPA-40".into()), T0),
        ],
        T0,
    );
    s.connect(0, 0, T0);
    s.connected();
    let births = host.see(&s.subscribed(T0 + 1));
    let dbirth = &births[1];
    let names: Vec<&str> = dbirth
        .raw
        .metrics
        .iter()
        .map(|m| m.name.as_deref().unwrap())
        .collect();
    // Chronological (tck-id-operational-behavior-data-publish-dbirth-order): the metric never
    // read carries the birth's time, after the two read at T0.
    assert_eq!(
        names,
        ["line3/temperature", "line3/recipe", "line3/setpoint"]
    );
    let times: Vec<u64> = dbirth
        .raw
        .metrics
        .iter()
        .map(|m| m.timestamp.unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    assert_eq!(
        dbirth.metric("line3/temperature").value,
        Some(MetricValue::Float(18.25))
    );
    assert_eq!(
        dbirth.metric("line3/recipe").value,
        Some(MetricValue::String("IPA-40".into()))
    );
    let null = dbirth.raw_metric("line3/setpoint");
    assert_eq!(
        (null.is_null, null.value.as_ref(), null.datatype),
        (Some(true), None, Some(DataType::Int32.code()))
    );
    // A value read while the device was offline is its current value at the next DBIRTH.
    s.device_online(1, false, T0 + 2);
    s.update(&[reading(1, 0, MetricValue::Float(-4.0), T0 + 3)], T0 + 3);
    let dbirth = host.see(&s.device_online(1, true, T0 + 4));
    assert_eq!(
        dbirth[0].metric("line3/temperature").value,
        Some(MetricValue::Float(-4.0))
    );
}

/// tck-id-payloads-metric-datatype-req: every NBIRTH and DBIRTH metric carries its datatype.
#[test]
fn payloads_metric_datatype_req() {
    let run = scenario();
    for (_, m) in &run.sent {
        if matches!(m.verb, MessageType::NBirth | MessageType::DBirth) {
            for metric in &m.raw.metrics {
                assert!(metric.datatype.is_some(), "{}: {metric:?}", m.topic);
            }
        }
    }
}

/// tck-id-payloads-metric-datatype-not-req (SHOULD NOT): DDATA metrics carry no datatype.
#[test]
fn payloads_metric_datatype_not_req() {
    for (_, m) in scenario().of(MessageType::DData) {
        for metric in &m.raw.metrics {
            assert_eq!(metric.datatype, None, "{}: {metric:?}", m.topic);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Aliases (spec §2.14)

/// tck-id-payloads-alias-uniqueness: aliases are unique across the node's whole metric set,
/// also for two devices with a metric of the same name, and after a run-time change.
#[test]
fn payloads_alias_uniqueness() {
    let mut host = Host::default();
    let (mut s, mut births) = online(&mut host, 0);
    births.extend(host.see(&s.device_online(1, true, T0 + 1)));
    let check = |births: &[Msg]| {
        let aliases: Vec<u64> = births
            .iter()
            .flat_map(|b| b.raw.metrics.iter().filter_map(|m| m.alias))
            .collect();
        let unique: HashSet<u64> = aliases.iter().copied().collect();
        assert_eq!(aliases.len(), unique.len(), "{aliases:?}");
        aliases.len()
    };
    assert_eq!(check(&births), 4);
    let plc1 = births[1].raw_metric("line3/temperature").alias;
    let plc2 = births[2].raw_metric("line3/temperature").alias;
    assert_ne!(plc1, plc2);

    let mut cfg = config();
    cfg.devices[1]
        .metrics
        .push(metric_def("line3/pressure", DataType::Double, None, false));
    s.reconfigure(cfg, T0 + 2);
    let births = host.see(&s.handle_message(NCMD, &rebirth_request(true), T0 + 5000));
    assert_eq!(check(&births), 5);
}

/// tck-id-payloads-alias-birth-requirement: a birth metric that has an alias also has its
/// name.
#[test]
fn payloads_alias_birth_requirement() {
    let run = scenario();
    for (_, m) in &run.sent {
        if matches!(m.verb, MessageType::NBirth | MessageType::DBirth) {
            for metric in &m.raw.metrics {
                assert!(metric.name.is_some(), "{}: {metric:?}", m.topic);
            }
        }
    }
    assert!(
        run.of(MessageType::DBirth).iter().all(|(_, m)| m
            .raw
            .metrics
            .iter()
            .all(|x| x.alias.is_some()))
    );
}

/// tck-id-payloads-alias-data-cmd-requirement, also tck-id-payloads-name-requirement: DATA
/// metrics carry the alias only; every metric is identified by a name or an alias. Hosts
/// may address commands by alias (or by name, for those that missed the births).
#[test]
fn payloads_alias_data_cmd_requirement() {
    let run = scenario();
    for (_, m) in run.of(MessageType::DData) {
        for metric in &m.raw.metrics {
            assert!(
                metric.alias.is_some() && metric.name.is_none(),
                "{}: {metric:?}",
                m.topic
            );
        }
    }
    for (_, m) in &run.sent {
        for metric in &m.raw.metrics {
            assert!(
                metric.name.is_some() || metric.alias.is_some(),
                "{metric:?}"
            );
        }
    }
    let mut host = Host::default();
    let (mut s, births) = online(&mut host, 0);
    let alias = births[1].raw_metric("line3/setpoint").alias;
    let by_alias = command(vec![Metric {
        alias,
        value: Some(MetricValue::Int32(-12)),
        ..Metric::default()
    }]);
    assert_eq!(
        s.handle_message(DCMD_PLC1, &by_alias, T0 + 1),
        [Output::Write(WriteRequest {
            device: 0,
            metric: 1,
            value: MetricValue::Int32(-12)
        })]
    );
}

// ---------------------------------------------------------------------------------------
// Order of messages (spec §2.4)

/// tck-id-principles-birth-certificates-order, also
/// tck-id-message-flow-edge-node-birth-publish-connect,
/// tck-id-message-flow-device-birth-publish-nbirth-wait, tck-id-payloads-dbirth-order and
/// tck-id-payloads-ddata-order: nothing is published before the MQTT session is up; the
/// first publish is the NBIRTH, the DBIRTHs of the online devices follow it directly, and
/// DATA only comes after them.
#[test]
fn principles_birth_certificates_order() {
    let mut s = EdgeNodeSession::new(config());
    // Before CONNECT: readings, devices and commands publish nothing.
    assert_eq!(s.device_online(0, true, T0), []);
    assert_eq!(
        s.update(&[reading(0, 0, MetricValue::Float(1.0), T0)], T0),
        []
    );
    assert_eq!(s.connected(), []);
    assert_eq!(s.subscribed(T0), []);
    assert_eq!(
        publishes(&s.handle_message(NCMD, &rebirth_request(true), T0)),
        0
    );
    s.connect(0, 0, T0);
    // CONNECT sent, not acknowledged: still nothing.
    assert_eq!(s.subscribed(T0), []);
    assert_eq!(s.device_online(1, true, T0), []);
    assert_eq!(
        s.update(&[reading(1, 0, MetricValue::Float(2.0), T0)], T0),
        []
    );
    let subs = s.connected();
    assert!(matches!(&subs[..], [Output::Subscribe(_)]));
    assert_eq!(
        s.update(&[reading(0, 0, MetricValue::Float(3.0), T0)], T0),
        []
    );
    let mut host = Host::default();
    let births = host.see(&s.subscribed(T0 + 1));
    assert_eq!(
        verbs(&births),
        [
            (MessageType::NBirth, None),
            (MessageType::DBirth, Some("plc1")),
            (MessageType::DBirth, Some("plc2"))
        ]
    );
    // What was read before the births is in them, not in DATA.
    assert_eq!(
        births[1].metric("line3/temperature").value,
        Some(MetricValue::Float(3.0))
    );
    let data = host.see(&s.update(&[reading(0, 0, MetricValue::Float(4.0), T0 + 2)], T0 + 2));
    assert_eq!(verbs(&data), [(MessageType::DData, Some("plc1"))]);
}

/// tck-id-message-flow-edge-node-ncmd-subscribe, also tck-id-message-flow-device-dcmd-subscribe:
/// after CONNACK the session asks for the NCMD and DCMD subscriptions (at QoS 1, per
/// [`Output::Subscribe`]) and publishes its births only once they are acknowledged.
#[test]
fn message_flow_edge_node_ncmd_subscribe() {
    let mut s = EdgeNodeSession::new(config());
    s.connect(0, 0, T0);
    let out = s.connected();
    let [Output::Subscribe(filters)] = &out[..] else {
        panic!("{out:?}")
    };
    assert!(filters.contains(&NCMD.to_owned()), "{filters:?}");
    assert!(
        filters.contains(&"spBv1.0/plant-a/DCMD/edge1/+".to_owned()),
        "{filters:?}"
    );
    assert!(publishes(&s.subscribed(T0)) > 0);
}

/// tck-id-operational-behavior-data-publish-dbirth-order (DDATA part): the metrics of a
/// DDATA are in chronological order even when the readings arrive out of order.
#[test]
fn operational_behavior_data_publish_dbirth_order() {
    let mut host = Host::default();
    let (mut s, _) = online(&mut host, 0);
    let out = s.update(
        &[
            reading(0, 2, MetricValue::String("late".into()), T0 + 30),
            reading(0, 0, MetricValue::Float(1.0), T0 + 10),
            reading(0, 1, MetricValue::Int32(2), T0 + 20),
        ],
        T0 + 40,
    );
    let data = host.see(&out);
    let ts: Vec<u64> = data[0]
        .raw
        .metrics
        .iter()
        .map(|m| m.timestamp.unwrap())
        .collect();
    assert_eq!(ts, [T0 + 10, T0 + 20, T0 + 30]);
}

// ---------------------------------------------------------------------------------------
// DATA (spec §2.8)

/// tck-id-topics-ddata-payload: a DDATA carries the metrics of that device that changed,
/// and only those; changes of several devices go to one DDATA each.
#[test]
fn topics_ddata_payload() {
    let mut host = Host::default();
    let (mut s, births) = online(&mut host, 0);
    let more = host.see(&s.device_online(1, true, T0));
    let setpoint = births[1].raw_metric("line3/setpoint").alias;
    let plc2_temp = more[0].raw_metric("line3/temperature").alias;
    let data = host.see(&s.update(
        &[
            reading(0, 1, MetricValue::Int32(70), T0 + 1),
            reading(1, 0, MetricValue::Float(5.5), T0 + 1),
        ],
        T0 + 1,
    ));
    assert_eq!(
        verbs(&data),
        [
            (MessageType::DData, Some("plc1")),
            (MessageType::DData, Some("plc2"))
        ]
    );
    let aliases = |m: &Msg| m.raw.metrics.iter().map(|x| x.alias).collect::<Vec<_>>();
    assert_eq!(aliases(&data[0]), [setpoint]);
    assert_eq!(aliases(&data[1]), [plc2_temp]);
    assert_eq!(
        data[0].payload.metrics[0].value,
        Some(MetricValue::Int32(70))
    );
    assert_eq!(
        data[1].payload.metrics[0].value,
        Some(MetricValue::Float(5.5))
    );
    // The same metric twice in one batch: one entry, the last value.
    let data = host.see(&s.update(
        &[
            reading(0, 1, MetricValue::Int32(71), T0 + 2),
            reading(0, 1, MetricValue::Int32(72), T0 + 3),
        ],
        T0 + 3,
    ));
    assert_eq!(data[0].payload.metrics.len(), 1);
    assert_eq!(
        data[0].payload.metrics[0].value,
        Some(MetricValue::Int32(72))
    );
}

/// tck-id-operational-behavior-data-publish-dbirth-change (SHOULD), also
/// tck-id-principles-rbe-recommended (SHOULD): report by exception, a reading with the last
/// value and quality publishes nothing; a change of value or of quality does.
#[test]
fn operational_behavior_data_publish_dbirth_change() {
    let mut host = Host::default();
    let (mut s, _) = online(&mut host, 0);
    let r = |v: f32, q: Quality, t: u64| MetricUpdate {
        device: 0,
        metric: 0,
        value: Some(MetricValue::Float(v)),
        quality: q,
        timestamp_ms: t,
    };
    assert_eq!(
        publishes(&s.update(&[r(1.0, Quality::Good, T0 + 1)], T0 + 1)),
        1
    );
    assert_eq!(s.update(&[r(1.0, Quality::Good, T0 + 2)], T0 + 2), []);
    assert_eq!(
        publishes(&s.update(&[r(1.0, Quality::Stale, T0 + 3)], T0 + 3)),
        1
    );
    assert_eq!(
        publishes(&s.update(&[r(1.5, Quality::Stale, T0 + 4)], T0 + 4)),
        1
    );
}

/// tck-id-payloads-propertyset-quality-value-type, also
/// tck-id-payloads-propertyset-quality-value-value,
/// tck-id-payloads-metric-propertyvalue-type-req, tck-id-payloads-propertyset-keys-array-size
/// and tck-id-payloads-propertyset-values-array-size (on what the node sends): `Quality`
/// is Int32 (3) in `int_value`, 0 / 192 / 500; property values in births carry their type;
/// keys and values pair up.
#[test]
fn payloads_propertyset_quality_value_type() {
    let mut host = Host::default();
    let (mut s, births) = online(&mut host, 0);
    let temp = births[1].raw_metric("line3/temperature");
    let props = temp.properties.as_ref().expect("engUnit");
    assert_eq!(props.keys.len(), props.values.len());
    for v in &props.values {
        assert!(v.r#type.is_some(), "{v:?}");
    }
    let unit = props.keys.iter().position(|k| k == "engUnit").unwrap();
    assert_eq!(props.values[unit].r#type, Some(DataType::String.code()));

    let mut quality_of = |q: Quality, value: Option<MetricValue>, t: u64| {
        let out = s.update(
            &[MetricUpdate {
                device: 0,
                metric: 0,
                value,
                quality: q,
                timestamp_ms: t,
            }],
            t,
        );
        let data = host.see(&out);
        let m = &data[0].raw.metrics[0];
        let props = m.properties.clone().unwrap_or_default();
        assert_eq!(props.keys.len(), props.values.len());
        let i = props.keys.iter().position(|k| k == "Quality")?;
        let v = &props.values[i];
        assert_eq!(v.r#type, Some(DataType::Int32.code()));
        match v.value {
            Some(proto::payload::property_value::Value::IntValue(code)) => Some(code),
            ref other => panic!("Quality in {other:?}"),
        }
    };
    assert_eq!(
        quality_of(Quality::Good, Some(MetricValue::Float(0.5)), T0 + 1),
        Some(192),
        "good again after the null, bad birth value"
    );
    assert_eq!(quality_of(Quality::Bad, None, T0 + 1), Some(0));
    assert_eq!(
        quality_of(Quality::Stale, Some(MetricValue::Float(1.0)), T0 + 2),
        Some(500)
    );
    assert_eq!(
        quality_of(Quality::Good, Some(MetricValue::Float(1.0)), T0 + 3),
        Some(192)
    );
    // Good again and already announced: no Quality property (hosts assume good).
    assert_eq!(
        quality_of(Quality::Good, Some(MetricValue::Float(2.0)), T0 + 4),
        None
    );
}

// ---------------------------------------------------------------------------------------
// Devices lost and found (spec §2.9)

/// tck-id-operational-behavior-device-ddeath: a lost device gets a DDEATH (timestamp, seq,
/// no metrics), no DATA while it is dead, and a DBIRTH with its current values when back.
#[test]
fn operational_behavior_device_ddeath() {
    let mut host = Host::default();
    let (mut s, births) = online(&mut host, 0);
    let death = host.see(&s.device_online(0, false, T0 + 10));
    assert_eq!(verbs(&death), [(MessageType::DDeath, Some("plc1"))]);
    assert_eq!(
        death[0].raw.seq,
        Some(births.last().unwrap().raw.seq.unwrap() + 1)
    );
    assert_eq!(death[0].raw.timestamp, Some(T0 + 10));
    assert_eq!(
        s.update(&[reading(0, 0, MetricValue::Float(9.0), T0 + 11)], T0 + 11),
        []
    );
    assert_eq!(
        s.device_online(0, false, T0 + 12),
        [],
        "one DDEATH per loss"
    );
    let back = host.see(&s.device_online(0, true, T0 + 13));
    assert_eq!(verbs(&back), [(MessageType::DBirth, Some("plc1"))]);
    assert_eq!(
        back[0].metric("line3/temperature").value,
        Some(MetricValue::Float(9.0))
    );
    assert_eq!(back[0].raw.seq, Some(death[0].raw.seq.unwrap() + 1));
}

// ---------------------------------------------------------------------------------------
// Rebirth (spec §2.11)

/// tck-id-operational-behavior-data-commands-rebirth-action-1, also
/// tck-id-operational-behavior-data-commands-rebirth-action-2: a rebirth request is answered
/// at once with the complete birth sequence (NBIRTH, then a DBIRTH per online device with
/// current values) and nothing else in between; DATA resumes after it. `Rebirth = false` is
/// not a request.
#[test]
fn operational_behavior_data_commands_rebirth_action_1() {
    let mut host = Host::default();
    let (mut s, _) = online(&mut host, 0);
    host.see(&s.device_online(1, true, T0 + 1));
    host.see(&s.update(&[reading(0, 0, MetricValue::Float(7.5), T0 + 2)], T0 + 2));
    assert_eq!(
        publishes(&s.handle_message(NCMD, &rebirth_request(false), T0 + 3000)),
        0
    );
    let out = s.handle_message(NCMD, &rebirth_request(true), T0 + 3001);
    assert_eq!(publishes(&out), out.len(), "only publishes: {out:?}");
    let births = host.see(&out);
    assert_eq!(
        verbs(&births),
        [
            (MessageType::NBirth, None),
            (MessageType::DBirth, Some("plc1")),
            (MessageType::DBirth, Some("plc2"))
        ]
    );
    assert_eq!(
        births[1].metric("line3/temperature").value,
        Some(MetricValue::Float(7.5))
    );
    let data = host.see(&s.update(
        &[reading(0, 0, MetricValue::Float(8.0), T0 + 3002)],
        T0 + 3002,
    ));
    assert_eq!(verbs(&data), [(MessageType::DData, Some("plc1"))]);
    assert_eq!(data[0].raw.seq, Some(3));
}

/// tck-id-operational-behavior-data-commands-rebirth-action-3, also
/// tck-id-payloads-nbirth-bdseq-repeat: the NBIRTH of a rebirth keeps the bdSeq of the
/// current CONNECT (no new CONNECT, so no new bdSeq), and no NDEATH comes before it.
#[test]
fn operational_behavior_data_commands_rebirth_action_3() {
    let mut host = Host::default();
    let (mut s, births) = online(&mut host, 42);
    for i in 0..3u64 {
        let out = s.handle_message(NCMD, &rebirth_request(true), T0 + 5000 * (i + 1));
        let again = host.see(&out);
        assert_eq!(again[0].verb, MessageType::NBirth);
        assert_eq!(again[0].bd_seq(), births[0].bd_seq());
        assert_eq!(again[0].bd_seq(), MetricValue::Int64(42));
    }
}

// ---------------------------------------------------------------------------------------
// Primary Host Application (spec §2.5)

/// tck-id-message-flow-edge-node-birth-publish-phid-wait, also
/// tck-id-operational-behavior-edge-node-birth-sequence-wait: with a Primary Host
/// configured the node subscribes to its STATE and publishes nothing (not even on a rebirth
/// request or device change) until that STATE says online.
#[test]
fn message_flow_edge_node_birth_publish_phid_wait() {
    let mut s = EdgeNodeSession::new(with_primary_host(1));
    s.connect(0, 0, T0);
    let out = s.connected();
    let [Output::Subscribe(filters)] = &out[..] else {
        panic!("{out:?}")
    };
    assert!(filters.contains(&STATE.to_owned()), "{filters:?}");
    assert_eq!(s.subscribed(T0), []);
    assert_eq!(s.device_online(0, true, T0), []);
    assert_eq!(
        s.update(&[reading(0, 0, MetricValue::Float(1.0), T0)], T0),
        []
    );
    assert_eq!(
        publishes(&s.handle_message(NCMD, &rebirth_request(true), T0 + 5000)),
        0
    );
    assert!(!s.is_online());
    let births = Host::default().see(&s.handle_message(STATE, &state(true, 100), T0 + 5001));
    assert_eq!(
        verbs(&births),
        [
            (MessageType::NBirth, None),
            (MessageType::DBirth, Some("plc1"))
        ]
    );
}

/// tck-id-message-flow-edge-node-birth-publish-phid-wait-id: only the STATE of the
/// configured Primary Host counts.
#[test]
fn message_flow_edge_node_birth_publish_phid_wait_id() {
    let mut s = waiting(with_primary_host(1), 0, 0);
    for topic in [
        "spBv1.0/STATE/other",
        "spBv1.0/STATE/scada2",
        "spBv1.0/STATE/SCADA",
    ] {
        assert_eq!(
            publishes(&s.handle_message(topic, &state(true, 100), T0)),
            0
        );
    }
    assert!(!s.is_online());
    assert_eq!(
        publishes(&s.handle_message(STATE, &state(true, 100), T0)),
        2
    );
}

/// tck-id-message-flow-edge-node-birth-publish-phid-wait-online: `online` must be true;
/// an offline STATE, or one that is not the 3.0 JSON form, starts nothing.
#[test]
fn message_flow_edge_node_birth_publish_phid_wait_online() {
    let mut s = waiting(with_primary_host(1), 0, 0);
    for payload in [
        state(false, 100),
        b"ONLINE".to_vec(),
        br#"{"online":"true","timestamp":100}"#.to_vec(),
        br#"{"online":true}"#.to_vec(),
    ] {
        assert_eq!(publishes(&s.handle_message(STATE, &payload, T0)), 0);
    }
    assert!(!s.is_online());
    assert_eq!(
        publishes(&s.handle_message(STATE, &state(true, 100), T0)),
        2
    );
}

/// tck-id-message-flow-edge-node-birth-publish-phid-wait-timestamp: the first STATE is
/// accepted whatever its timestamp; later ones only with a timestamp >= the last one
/// accepted, remembered across reconnects to the same server.
#[test]
fn message_flow_edge_node_birth_publish_phid_wait_timestamp() {
    let mut s = waiting(with_primary_host(1), 0, 0);
    assert_eq!(
        publishes(&s.handle_message(STATE, &state(true, 16671135), T0)),
        2
    );
    // The host goes offline for real (newer timestamp): NDEATH, reconnect.
    let out = s.handle_message(STATE, &state(false, T0), T0 + 1);
    assert!(matches!(out.last(), Some(Output::Reconnect { .. })));
    s.connect(1, 0, T0 + 2);
    s.connected();
    assert_eq!(s.subscribed(T0 + 2), []);
    // An online STATE older than the offline one it follows is stale: no births.
    assert_eq!(
        publishes(&s.handle_message(STATE, &state(true, 16671135), T0 + 3)),
        0
    );
    assert_eq!(
        publishes(&s.handle_message(STATE, &state(true, T0 - 1), T0 + 3)),
        0
    );
    assert!(!s.is_online());
    // Equal is not older.
    assert_eq!(
        publishes(&s.handle_message(STATE, &state(true, T0), T0 + 4)),
        2
    );
}

/// tck-id-message-flow-edge-node-birth-publish-phid-offline, also
/// tck-id-operational-behavior-edge-node-termination-host-offline: an offline STATE of the
/// Primary Host with a timestamp >= the last online one ends the session at once: NDEATH
/// (bdSeq of the session, QoS 1), then disconnect.
#[test]
fn message_flow_edge_node_birth_publish_phid_offline() {
    for offline_at in [500, 501] {
        let mut s = waiting(with_primary_host(1), 9, 0);
        s.handle_message(STATE, &state(true, 500), T0);
        let out = s.handle_message(STATE, &state(false, offline_at), T0 + 1);
        let [Output::Publish(death), Output::Reconnect { .. }] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!((death.qos, death.retain), (QoS::AtLeastOnce, false));
        let death = Host::default().decode(death);
        assert_eq!(death.verb, MessageType::NDeath);
        assert_eq!(death.bd_seq(), MetricValue::Int64(9));
        assert!(!s.is_online());
        assert_eq!(
            s.update(&[reading(0, 0, MetricValue::Float(1.0), T0 + 2)], T0 + 2),
            []
        );
    }
}

/// tck-id-operational-behavior-edge-node-termination-host-offline-timestamp: an offline
/// STATE older than the last online one (a late Will of the host's previous session) does
/// not end the session.
#[test]
fn operational_behavior_edge_node_termination_host_offline_timestamp() {
    let mut host = Host::default();
    let mut s = waiting(with_primary_host(1), 0, 0);
    host.see(&s.handle_message(STATE, &state(true, T0 - 1000), T0));
    assert_eq!(
        publishes(&s.handle_message(STATE, &state(false, T0 - 1001), T0 + 1)),
        0
    );
    assert_eq!(
        publishes(&s.handle_message(STATE, &state(false, 16671135), T0 + 1)),
        0
    );
    assert!(s.is_online());
    let data = host.see(&s.update(&[reading(0, 0, MetricValue::Float(1.0), T0 + 2)], T0 + 2));
    assert_eq!(verbs(&data), [(MessageType::DData, Some("plc1"))]);
}

/// tck-id-operational-behavior-edge-node-termination-host-offline-reconnect, also
/// tck-id-operational-behavior-primary-application-state-with-multiple-servers-walk: after
/// the Primary Host went offline the caller is told to connect to the next server; there
/// the session is established again (new bdSeq, subscriptions, wait, births from seq 0).
/// With several servers, a host already offline before the births sends the node on
/// without publishing anything.
#[test]
fn operational_behavior_edge_node_termination_host_offline_reconnect() {
    let mut host = Host::default();
    let mut s = waiting(with_primary_host(2), 3, 0);
    host.see(&s.handle_message(STATE, &state(true, 500), T0));
    let out = s.handle_message(STATE, &state(false, 600), T0 + 1);
    assert_eq!(out.last(), Some(&Output::Reconnect { next_server: true }));

    let will = host.decode(&s.connect(4, 1, T0 + 2));
    assert_eq!(will.bd_seq(), MetricValue::Int64(4));
    assert!(matches!(&s.connected()[..], [Output::Subscribe(f)] if f.contains(&STATE.to_owned())));
    assert_eq!(s.subscribed(T0 + 3), []);
    let births = host.see(&s.handle_message(STATE, &state(true, 100), T0 + 4));
    assert_eq!(births[0].verb, MessageType::NBirth);
    assert_eq!(births[0].raw.seq, Some(0));
    assert_eq!(births[0].bd_seq(), MetricValue::Int64(4));

    // Not born yet and the host is offline on this server: walk on, publish nothing.
    let mut s = waiting(with_primary_host(2), 0, 0);
    assert_eq!(
        s.handle_message(STATE, &state(false, 100), T0),
        [Output::Reconnect { next_server: true }]
    );
    // With a single server there is nowhere to go: keep waiting.
    let mut s = waiting(with_primary_host(1), 0, 0);
    assert_eq!(
        publishes(&s.handle_message(STATE, &state(false, 100), T0)),
        0
    );
    assert!(
        !s.handle_message(STATE, &state(false, 100), T0)
            .iter()
            .any(|o| matches!(o, Output::Reconnect { .. }))
    );
}

/// tck-id-operational-behavior-primary-application-state-with-multiple-servers-state-subs
/// (Edge part): the node subscribes to the Primary Host's STATE on every server it
/// connects to, and judges each server's STATE against that server's own history.
#[test]
fn operational_behavior_primary_application_state_with_multiple_servers_state_subs() {
    let mut s = EdgeNodeSession::new(with_primary_host(2));
    for (server, bd_seq) in [(0usize, 0u8), (1, 1), (0, 2)] {
        s.connect(bd_seq, server, T0);
        let out = s.connected();
        assert!(
            matches!(&out[..], [Output::Subscribe(f)] if f.contains(&STATE.to_owned())),
            "server {server}: {out:?}"
        );
        s.subscribed(T0);
        s.disconnected();
    }
    let mut s = waiting(with_primary_host(2), 0, 0);
    assert_eq!(
        publishes(&s.handle_message(STATE, &state(true, 900), T0)),
        2
    );
    s.disconnected();
    s.connect(1, 1, T0);
    s.connected();
    s.subscribed(T0);
    // Older than what server 0 said, but server 1 has its own history.
    assert_eq!(
        publishes(&s.handle_message(STATE, &state(true, 100), T0)),
        2
    );
    s.disconnected();
    s.connect(2, 0, T0);
    s.connected();
    s.subscribed(T0);
    assert_eq!(
        publishes(&s.handle_message(STATE, &state(true, 899), T0)),
        0
    );
}

/// tck-id-operational-behavior-primary-application-state-with-multiple-servers-single-server
/// (session part): once a session ends the node publishes nothing until the caller has
/// opened the next one; the session only ever knows one server at a time.
#[test]
fn operational_behavior_primary_application_state_with_multiple_servers_single_server() {
    let mut s = waiting(with_primary_host(2), 0, 0);
    s.handle_message(STATE, &state(true, 10), T0);
    s.handle_message(STATE, &state(false, 20), T0 + 1);
    assert_eq!(s.device_online(1, true, T0 + 2), []);
    assert_eq!(
        s.update(&[reading(0, 0, MetricValue::Float(1.0), T0 + 3)], T0 + 3),
        []
    );
    assert_eq!(
        publishes(&s.handle_message(NCMD, &rebirth_request(true), T0 + 9000)),
        0
    );
    assert_eq!(s.shutdown(T0 + 4), None, "no session, no NDEATH");
}

// ---------------------------------------------------------------------------------------
// Termination (spec §2.12)

/// tck-id-operational-behavior-edge-node-intentional-disconnect-ndeath, also
/// tck-id-payloads-ndeath-will-message-publisher and
/// tck-id-payloads-ndeath-will-message-publisher-disconnect-mqtt311: `shutdown` gives the
/// NDEATH to publish (QoS 1, bdSeq of the session) before the DISCONNECT; afterwards the
/// node publishes nothing. `Node Control/Next Server` ends the session the same way.
#[test]
fn operational_behavior_edge_node_intentional_disconnect_ndeath() {
    let mut host = Host::default();
    let (mut s, _) = online(&mut host, 17);
    let death = s.shutdown(T0 + 1).expect("NDEATH");
    assert_eq!((death.qos, death.retain), (QoS::AtLeastOnce, false));
    let death = host.decode(&death);
    assert_eq!(death.topic, "spBv1.0/plant-a/NDEATH/edge1");
    assert_eq!(death.bd_seq(), MetricValue::Int64(17));
    assert_eq!(s.shutdown(T0 + 2), None);
    assert_eq!(
        s.update(&[reading(0, 0, MetricValue::Float(1.0), T0 + 3)], T0 + 3),
        []
    );

    let (mut s, _) = online(&mut host, 18);
    let next = command(vec![Metric::new(NEXT_SERVER, MetricValue::Boolean(true))]);
    let out = s.handle_message(NCMD, &next, T0 + 4);
    let [
        Output::Publish(death),
        Output::Reconnect { next_server: true },
    ] = &out[..]
    else {
        panic!("{out:?}")
    };
    assert_eq!(host.decode(death).bd_seq(), MetricValue::Int64(18));
}

/// tck-id-topics-ndeath-payload: every NDEATH (the Will, an intentional disconnect, the
/// Primary Host going offline) has exactly one metric, `bdSeq`, Int64 in `long_value`.
#[test]
fn topics_ndeath_payload() {
    let mut deaths = Vec::new();
    let mut s = waiting(with_primary_host(1), 33, 0);
    deaths.push(s.connect(33, 0, T0));
    s.connected();
    s.subscribed(T0);
    s.handle_message(STATE, &state(true, 1), T0);
    if let [Output::Publish(p), ..] = &s.handle_message(STATE, &state(false, 2), T0)[..] {
        deaths.push(p.clone());
    }
    let (mut s, _) = online(&mut Host::default(), 33);
    deaths.push(s.shutdown(T0).unwrap());
    assert_eq!(deaths.len(), 3);
    for d in &deaths {
        let raw = proto::Payload::decode(d.payload.as_slice()).unwrap();
        assert_eq!(raw.metrics.len(), 1, "{raw:?}");
        let m = &raw.metrics[0];
        assert_eq!(m.name.as_deref(), Some(BD_SEQ));
        assert_eq!(m.datatype, Some(DataType::Int64.code()));
        assert_eq!(m.value, Some(proto::payload::metric::Value::LongValue(33)));
    }
}

// ---------------------------------------------------------------------------------------
// Payload codec (spec §3): what any Sparkplug payload must satisfy, checked by encoding
// and decoding with the crate's codec.

/// tck-id-payloads-metric-datatype-value, also tck-id-payloads-metric-datatype-value-type:
/// a metric's datatype is a DataType code (uint32) of a metric type, and its value sits in
/// the field that type prescribes (spec §3.2, arrays per the corrected §3.4 vectors);
/// anything else is refused when decoding.
#[test]
fn payloads_metric_datatype_value() {
    use proto::payload::metric::Value as F;
    let cases: Vec<(MetricValue, F)> = vec![
        (MetricValue::Int8(-1), F::IntValue(0xFFFF_FFFF)),
        (MetricValue::Int16(-30000), F::IntValue((-30000i32) as u32)),
        (MetricValue::Int32(-1), F::IntValue(u32::MAX)),
        (MetricValue::Int64(-2), F::LongValue(u64::MAX - 1)),
        (MetricValue::UInt8(250), F::IntValue(250)),
        (MetricValue::UInt16(52360), F::IntValue(52360)),
        (MetricValue::UInt32(3293969225), F::LongValue(3293969225)),
        (MetricValue::UInt64(u64::MAX), F::LongValue(u64::MAX)),
        (MetricValue::Float(1.5), F::FloatValue(1.5)),
        (MetricValue::Double(-0.25), F::DoubleValue(-0.25)),
        (MetricValue::Boolean(true), F::BooleanValue(true)),
        (MetricValue::String("s".into()), F::StringValue("s".into())),
        (
            MetricValue::DateTime(1656107875000),
            F::LongValue(1656107875000),
        ),
        (MetricValue::Text("t".into()), F::StringValue("t".into())),
        (
            MetricValue::Uuid("0b7a3c1e-0000-4000-8000-000000000001".into()),
            F::StringValue("0b7a3c1e-0000-4000-8000-000000000001".into()),
        ),
        (MetricValue::Bytes(vec![1, 2]), F::BytesValue(vec![1, 2])),
        (
            MetricValue::Int8Array(vec![-23, 123]),
            F::BytesValue(vec![0xE9, 0x7B]),
        ),
        (
            MetricValue::Int16Array(vec![-30000, 30000]),
            F::BytesValue(vec![0xD0, 0x8A, 0x30, 0x75]),
        ),
        (
            MetricValue::UInt32Array(vec![52, 3293969225]),
            F::BytesValue(vec![0x34, 0, 0, 0, 0x49, 0xFB, 0x55, 0xC4]),
        ),
        (
            MetricValue::FloatArray(vec![1.23, 89.341]),
            F::BytesValue(vec![0xA4, 0x70, 0x9D, 0x3F, 0x98, 0xAE, 0xB2, 0x42]),
        ),
        (
            MetricValue::DoubleArray(vec![12.354213, 1022.9123213]),
            F::BytesValue(vec![
                0xD7, 0xA2, 0x05, 0x68, 0x5B, 0xB5, 0x28, 0x40, 0x8E, 0x17, 0x1C, 0x6F, 0x4C, 0xF7,
                0x8F, 0x40,
            ]),
        ),
        (
            MetricValue::BooleanArray(vec![
                false, false, true, true, false, true, false, false, true, true, false, true,
            ]),
            F::BytesValue(vec![0x0C, 0, 0, 0, 0x34, 0xD0]),
        ),
        (
            MetricValue::StringArray(vec!["ABC".into(), "hello".into()]),
            F::BytesValue(b"ABC\0hello\0".to_vec()),
        ),
        (
            MetricValue::DateTimeArray(vec![1256102875335, 1656107875000]),
            F::BytesValue(vec![
                0xC7, 0xD0, 0x90, 0x75, 0x24, 0x01, 0, 0, 0xB8, 0xBA, 0xB8, 0x97, 0x81, 0x01, 0, 0,
            ]),
        ),
    ];
    for (value, field) in cases {
        let dt = value.datatype();
        assert!(dt.is_metric_type(), "{dt:?}");
        assert_eq!(value.to_field(), field, "{dt:?}");
        let bytes = Payload {
            timestamp: Some(T0),
            metrics: vec![Metric::new("m", value.clone())],
            seq: Some(0),
            ..Payload::default()
        }
        .encode();
        let raw = proto::Payload::decode(bytes.as_slice()).unwrap();
        assert_eq!(raw.metrics[0].datatype, Some(dt.code()));
        assert_eq!(
            Payload::decode(&bytes).unwrap().metrics[0].value,
            Some(value)
        );
    }
    // UInt32 is also accepted from int_value, what the spec text names.
    assert_eq!(
        MetricValue::from_field(DataType::UInt32, Some(&F::IntValue(7))),
        Ok(MetricValue::UInt32(7))
    );
    // Unknown (0), the property-only types (20, 21) and codes past 34 are not metric types.
    for code in [0u32, 20, 21, 35, 1000] {
        let bytes = proto::Payload {
            metrics: vec![proto::payload::Metric {
                name: Some("m".into()),
                datatype: Some(code),
                value: Some(F::IntValue(1)),
                ..Default::default()
            }],
            ..Default::default()
        }
        .encode_to_vec();
        assert!(Payload::decode(&bytes).is_err(), "datatype {code}");
    }
    // A value in the wrong field for its datatype.
    let bytes = proto::Payload {
        metrics: vec![proto::payload::Metric {
            name: Some("m".into()),
            datatype: Some(DataType::Boolean.code()),
            value: Some(F::StringValue("true".into())),
            ..Default::default()
        }],
        ..Default::default()
    }
    .encode_to_vec();
    assert!(Payload::decode(&bytes).is_err());
}

fn raw_property(
    keys: &[&str],
    values: Vec<proto::payload::PropertyValue>,
) -> proto::payload::PropertySet {
    proto::payload::PropertySet {
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        values,
    }
}

fn raw_string_property(s: &str) -> proto::payload::PropertyValue {
    proto::payload::PropertyValue {
        r#type: Some(DataType::String.code()),
        is_null: None,
        value: Some(proto::payload::property_value::Value::StringValue(s.into())),
    }
}

/// tck-id-payloads-propertyset-keys-array-size, also
/// tck-id-payloads-propertyset-values-array-size: the codec refuses a PropertySet whose key
/// and value counts differ, both ways, and never writes one.
#[test]
fn payloads_propertyset_keys_array_size() {
    let ok = raw_property(&["engUnit"], vec![raw_string_property("degC")]);
    assert!(PropertySet::from_proto(ok).is_ok());
    let more_keys = raw_property(&["engUnit", "engLow"], vec![raw_string_property("degC")]);
    assert_eq!(
        PropertySet::from_proto(more_keys),
        Err(ValueError::PropertyCount { keys: 2, values: 1 })
    );
    let more_values = raw_property(
        &["engUnit"],
        vec![raw_string_property("degC"), raw_string_property("x")],
    );
    assert_eq!(
        PropertySet::from_proto(more_values),
        Err(ValueError::PropertyCount { keys: 1, values: 2 })
    );
    let mut set = PropertySet::new();
    set.set_quality(Quality::Stale);
    set.insert(
        "engUnit",
        sparkplug::PropertyValue::new(BasicValue::String("K".into())),
    );
    let p = set.to_proto();
    assert_eq!((p.keys.len(), p.values.len()), (2, 2));
}

/// tck-id-payloads-metric-propertyvalue-type-value, also
/// tck-id-payloads-metric-propertyvalue-type-type and
/// tck-id-payloads-metric-propertyvalue-type-req (codec side): a PropertyValue's type is a
/// uint32 DataType code, one of the basic types or PropertySet / PropertySetList, present,
/// and matching the value field.
#[test]
fn payloads_metric_propertyvalue_type_value() {
    use proto::payload::property_value::Value as P;
    let pv = |t: Option<u32>, v: P| proto::payload::PropertyValue {
        r#type: t,
        is_null: None,
        value: Some(v),
    };
    let decode = |v| PropertySet::from_proto(raw_property(&["k"], vec![v]));
    assert!(decode(pv(Some(3), P::IntValue(192))).is_ok());
    assert!(decode(pv(Some(20), P::PropertysetValue(raw_property(&[], vec![])))).is_ok());
    for t in [0u32, 15, 16, 19, 22, 34, 99] {
        assert!(decode(pv(Some(t), P::IntValue(1))).is_err(), "type {t}");
    }
    assert!(decode(pv(None, P::IntValue(1))).is_err(), "type missing");
    assert!(
        decode(pv(Some(12), P::IntValue(1))).is_err(),
        "String in int_value"
    );
    // What the codec writes always has the type.
    let written = sparkplug::PropertyValue::new(BasicValue::Double(1.0)).to_proto();
    assert_eq!(written.r#type, Some(DataType::Double.code()));
    assert_eq!(Quality::Bad.to_proto_property().r#type, Some(3));
}

fn raw_dataset(
    num: Option<u64>,
    columns: &[&str],
    types: &[u32],
    rows: Vec<Vec<Option<proto::payload::data_set::data_set_value::Value>>>,
) -> proto::payload::DataSet {
    proto::payload::DataSet {
        num_of_columns: num,
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
        types: types.to_vec(),
        rows: rows
            .into_iter()
            .map(|r| proto::payload::data_set::Row {
                elements: r
                    .into_iter()
                    .map(|value| proto::payload::data_set::DataSetValue { value })
                    .collect(),
            })
            .collect(),
    }
}

/// tck-id-payloads-dataset-types-num, also tck-id-payloads-dataset-column-size,
/// tck-id-payloads-dataset-column-num-headers, tck-id-payloads-dataset-types-def and
/// tck-id-payloads-dataset-types-type: `num_of_columns` (uint64) = number of `columns` =
/// number of `types` (uint32 codes), on what the codec writes and what it accepts.
#[test]
fn payloads_dataset_types_num() {
    let ds = DataSet {
        columns: vec!["id".into(), "name".into()],
        types: vec![DataType::Int32, DataType::String],
        rows: vec![vec![
            Some(BasicValue::Int32(1)),
            Some(BasicValue::String("a".into())),
        ]],
    };
    let p = ds.to_proto();
    assert_eq!(p.num_of_columns, Some(2));
    assert_eq!((p.columns.len(), p.types.len()), (2, 2));
    assert_eq!(p.types, [3, 12]);
    assert_eq!(DataSet::from_proto(p), Ok(ds));
    for bad in [
        raw_dataset(Some(3), &["a", "b"], &[3, 12], vec![]),
        raw_dataset(None, &["a", "b"], &[3, 12], vec![]),
        raw_dataset(Some(2), &["a", "b"], &[3], vec![]),
        raw_dataset(Some(2), &["a"], &[3, 12], vec![]),
    ] {
        assert!(
            matches!(
                DataSet::from_proto(bad),
                Err(ValueError::DataSetColumns { .. })
            ),
            "counts must agree"
        );
    }
}

/// tck-id-payloads-dataset-types-value: DataSet column types are basic types (1..=14).
#[test]
fn payloads_dataset_types_value() {
    for t in 1..=14u32 {
        assert!(DataSet::from_proto(raw_dataset(Some(1), &["c"], &[t], vec![])).is_ok());
    }
    for t in [0u32, 15, 16, 17, 19, 20, 22, 34, 35] {
        assert!(
            DataSet::from_proto(raw_dataset(Some(1), &["c"], &[t], vec![])).is_err(),
            "type {t}"
        );
    }
    let ds = DataSet {
        columns: vec!["c".into()],
        types: vec![DataType::Bytes],
        rows: vec![],
    };
    assert!(ds.validate().is_err());
}

/// tck-id-payloads-dataset-parameter-type-req: every DataSet has its `types`; columns
/// without types are refused.
#[test]
fn payloads_dataset_parameter_type_req() {
    assert!(DataSet::from_proto(raw_dataset(Some(1), &["c"], &[], vec![])).is_err());
    let ds = DataSet {
        columns: vec!["c".into()],
        types: vec![],
        rows: vec![],
    };
    assert!(ds.validate().is_err());
    assert_eq!(DataSet::default().to_proto().types.len(), 0);
}

/// tck-id-payloads-template-dataset-value: a DataSet cell is one of uint32, uint64, float,
/// double, bool, string, in the field its column type prescribes.
#[test]
fn payloads_template_dataset_value() {
    use proto::payload::data_set::data_set_value::Value as V;
    let ok = [
        (3u32, V::IntValue(5)),
        (4, V::LongValue(5)),
        (9, V::FloatValue(0.5)),
        (10, V::DoubleValue(0.5)),
        (11, V::BooleanValue(true)),
        (12, V::StringValue("x".into())),
        (13, V::LongValue(T0)),
    ];
    for (t, v) in ok {
        let ds = raw_dataset(Some(1), &["c"], &[t], vec![vec![Some(v)]]);
        assert!(DataSet::from_proto(ds).is_ok(), "type {t}");
    }
    let bad = [
        (3u32, V::StringValue("5".into())),
        (11, V::IntValue(1)),
        (12, V::BooleanValue(false)),
        (10, V::FloatValue(0.5)),
    ];
    for (t, v) in bad {
        let ds = raw_dataset(Some(1), &["c"], &[t], vec![vec![Some(v)]]);
        assert!(DataSet::from_proto(ds).is_err(), "type {t}");
    }
}

fn motor_definition() -> Template {
    Template {
        version: Some("1.0".into()),
        template_ref: None,
        is_definition: true,
        metrics: vec![Metric::new("speed", MetricValue::Float(0.0))],
        parameters: vec![Parameter::new("max_rpm", BasicValue::UInt32(3000))],
    }
}

/// tck-id-payloads-template-definition-ref, also
/// tck-id-payloads-template-definition-is-definition, tck-id-payloads-template-ref-definition,
/// tck-id-payloads-template-is-definition, tck-id-payloads-template-is-definition-definition,
/// tck-id-payloads-template-is-definition-instance,
/// tck-id-payloads-template-instance-is-definition, tck-id-payloads-template-instance-ref,
/// tck-id-payloads-template-ref-instance and tck-id-payloads-template-version (codec side;
/// this node publishes no Templates): a definition has `is_definition = true` and no
/// `template_ref`; an instance has `is_definition = false` and names its definition;
/// `is_definition` is always written; the version is a UTF-8 string.
#[test]
fn payloads_template_definition_ref() {
    let def = motor_definition();
    let p = def.to_proto();
    assert_eq!(
        (p.is_definition, p.template_ref.as_deref()),
        (Some(true), None)
    );
    assert_eq!(p.version.as_deref(), Some("1.0"));
    let inst = Template {
        template_ref: Some("Motor".into()),
        is_definition: false,
        version: None,
        ..def.clone()
    };
    let p = inst.to_proto();
    assert_eq!(
        (p.is_definition, p.template_ref.as_deref()),
        (Some(false), Some("Motor"))
    );
    assert_eq!(Template::from_proto(p), Ok(inst));

    let mut bad_def = def.clone();
    bad_def.template_ref = Some("Motor".into());
    assert!(bad_def.validate().is_err());
    assert!(Template::from_proto(bad_def.to_proto()).is_err());
    let mut bad_inst = def.clone();
    bad_inst.is_definition = false;
    assert!(bad_inst.validate().is_err());
    assert!(Template::from_proto(bad_inst.to_proto()).is_err());

    // The same through a whole payload, and a version that is not UTF-8 is not a payload.
    let bytes = Payload {
        timestamp: Some(T0),
        metrics: vec![Metric::new("Motor", MetricValue::Template(Box::new(def)))],
        seq: Some(0),
        ..Payload::default()
    }
    .encode();
    let decoded = Payload::decode(&bytes).unwrap();
    assert_eq!(decoded.metrics[0].datatype, Some(DataType::Template));
    let mut raw = proto::Payload::decode(bytes.as_slice())
        .unwrap()
        .encode_to_vec();
    let at = raw.windows(3).position(|w| w == b"1.0").unwrap();
    raw[at] = 0xFF;
    assert!(Payload::decode(&raw).is_err());
}

/// tck-id-payloads-template-parameter-type-value, also
/// tck-id-payloads-template-parameter-name-required,
/// tck-id-payloads-template-parameter-name-type, tck-id-payloads-template-parameter-value-type,
/// tck-id-payloads-template-parameter-type-req and tck-id-payloads-template-parameter-value
/// (codec side): a parameter has a name, a basic type code, and a value in the field of
/// that type.
#[test]
fn payloads_template_parameter_type_value() {
    use proto::payload::template::parameter::Value as V;
    let with = |name: Option<&str>, t: Option<u32>, v: Option<V>| {
        let mut p = motor_definition().to_proto();
        p.parameters = vec![proto::payload::template::Parameter {
            name: name.map(str::to_owned),
            r#type: t,
            value: v,
        }];
        Template::from_proto(p)
    };
    assert!(with(Some("max_rpm"), Some(7), Some(V::LongValue(3000))).is_ok());
    assert!(with(Some("site"), Some(12), Some(V::StringValue("x".into()))).is_ok());
    assert!(
        with(Some("site"), Some(12), None).is_ok(),
        "value is optional"
    );
    assert!(
        with(None, Some(7), Some(V::LongValue(1))).is_err(),
        "no name"
    );
    assert!(
        with(Some("p"), None, Some(V::LongValue(1))).is_err(),
        "no type"
    );
    for t in [0u32, 15, 16, 19, 22, 35] {
        assert!(
            with(Some("p"), Some(t), Some(V::IntValue(1))).is_err(),
            "type {t}"
        );
    }
    assert!(with(Some("p"), Some(11), Some(V::StringValue("true".into()))).is_err());
    let p = motor_definition().to_proto();
    assert_eq!(p.parameters[0].name.as_deref(), Some("max_rpm"));
    assert_eq!(p.parameters[0].r#type, Some(DataType::UInt32.code()));
}
