//! Encoding cost of the biggest messages an Edge Node sends: a 10,000-metric DBIRTH, and a
//! DDATA carrying all 10,000 metrics (every tag of a device changed in one poll).
//!
//! Run: `cargo bench -p sparkplug --bench births`. Target: a 10,000-metric DBIRTH in ≤ 5 ms.

use criterion::{Criterion, criterion_group, criterion_main};
use sparkplug::{
    DataType, DeviceDef, EdgeNodeSession, MetricDef, MetricUpdate, MetricValue, Quality,
    SessionConfig,
};

const METRICS: usize = 10_000;
const T0: u64 = 1_700_000_000_000;

fn online_session() -> EdgeNodeSession {
    let metrics = (0..METRICS)
        .map(|i| MetricDef {
            name: format!("area{}/line{}/cell{}/tag{i}", i % 7, i % 13, i % 17).into(),
            datatype: DataType::Float,
            unit: (i % 2 == 0).then(|| "degC".to_owned()),
            writable: false,
            eng_range: None,
        })
        .collect();
    let mut s = EdgeNodeSession::new(SessionConfig {
        group_id: "plant-a".into(),
        edge_node_id: "edge".into(),
        devices: vec![DeviceDef {
            device_id: "plc".into(),
            metrics,
        }],
        ..SessionConfig::default()
    });
    s.connect(0, 0, T0);
    s.connected();
    s.subscribed(T0);
    s.update(&updates(0), T0);
    s
}

fn updates(round: u64) -> Vec<MetricUpdate> {
    (0..METRICS)
        .map(|i| MetricUpdate {
            device: 0,
            metric: i,
            value: Some(MetricValue::Float(i as f32 + round as f32)),
            quality: Quality::Good,
            timestamp_ms: T0 + round,
        })
        .collect()
}

fn births(c: &mut Criterion) {
    let mut s = online_session();
    c.bench_function("DBIRTH 10k metrics (with the DDEATH before it)", |b| {
        b.iter(|| {
            s.device_online(0, false, T0);
            let out = s.device_online(0, true, T0);
            assert_eq!(out.len(), 1);
            out
        })
    });
    let mut s = online_session();
    // Two batches in turn, so every metric really changes each time (the session drops
    // readings that change nothing).
    let batches = [updates(1), updates(2)];
    let mut round = 0;
    c.bench_function("DDATA 10k changed metrics", |b| {
        b.iter(|| {
            round += 1;
            s.update(&batches[round % 2], T0)
        })
    });
}

criterion_group!(benches, births);
criterion_main!(benches);
