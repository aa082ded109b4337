//! Cost of the typed payload codec on the biggest messages an Edge Node handles: a
//! 10,000-metric DBIRTH (names, aliases, timestamps, mixed types, an `engUnit` property on
//! half of them) and a 1,000-metric DDATA (alias + value + timestamp), each encoded to bytes
//! and decoded back. DDATA is decoded the way a host does it, typed from the birth.
//!
//! Run: `cargo bench -p sparkplug --bench codec`.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sparkplug::{BasicValue, DataType, Metric, MetricValue, Payload, PropertySet, PropertyValue};

const T0: u64 = 1_700_000_000_000;

/// Mixed PLC-like values: mostly numbers and booleans, some strings and a small array.
fn value(i: usize) -> MetricValue {
    match i % 8 {
        0 | 1 => MetricValue::Float(i as f32 * 0.5),
        2 => MetricValue::Double(i as f64 * 0.25),
        3 => MetricValue::Int32(-(i as i32)),
        4 => MetricValue::Boolean(i.is_multiple_of(3)),
        5 => MetricValue::UInt16((i % 65_536) as u16),
        6 => MetricValue::String(format!("state {}", i % 10)),
        _ => MetricValue::Int16Array(vec![i as i16, -(i as i16), 7, 8]),
    }
}

fn dbirth(metrics: usize) -> Payload {
    Payload {
        timestamp: Some(T0),
        seq: Some(1),
        metrics: (0..metrics)
            .map(|i| {
                let properties = i.is_multiple_of(2).then(|| {
                    let mut p = PropertySet::new();
                    p.insert(
                        "engUnit",
                        PropertyValue::new(BasicValue::String("degC".into())),
                    );
                    p
                });
                Metric {
                    alias: Some(i as u64),
                    timestamp: Some(T0 + i as u64),
                    properties,
                    ..Metric::new(
                        format!("area{}/line{}/cell{}/tag{i}", i % 7, i % 13, i % 17),
                        value(i),
                    )
                }
            })
            .collect(),
        ..Payload::default()
    }
}

fn ddata(metrics: usize) -> Payload {
    Payload {
        timestamp: Some(T0),
        seq: Some(2),
        metrics: (0..metrics)
            .map(|i| Metric {
                alias: Some(i as u64),
                timestamp: Some(T0 + i as u64),
                value: Some(value(i + 1)),
                ..Metric::default()
            })
            .collect(),
        ..Payload::default()
    }
}

fn codec(c: &mut Criterion) {
    let birth = dbirth(10_000);
    let birth_bytes = birth.encode();
    let mut g = c.benchmark_group("DBIRTH 10k metrics");
    g.throughput(Throughput::Bytes(birth_bytes.len() as u64));
    g.bench_function("encode", |b| b.iter(|| black_box(&birth).encode()));
    g.bench_function("decode", |b| {
        b.iter(|| Payload::decode(black_box(&birth_bytes)).unwrap())
    });
    // Reference: protobuf decoding alone, without typing and checks.
    g.bench_function("decode (protobuf only)", |b| {
        b.iter(|| {
            <sparkplug::proto::Payload as prost::Message>::decode(black_box(&birth_bytes[..]))
                .unwrap()
        })
    });
    g.finish();

    // What a host keeps from the birth to type DATA metrics.
    let types: HashMap<u64, DataType> = (0..1_000u64)
        .map(|i| (i, value(i as usize + 1).datatype()))
        .collect();
    let data = ddata(1_000);
    let data_bytes = data.encode();
    let mut g = c.benchmark_group("DDATA 1k metrics");
    g.throughput(Throughput::Bytes(data_bytes.len() as u64));
    g.bench_function("encode", |b| b.iter(|| black_box(&data).encode()));
    g.bench_function("decode (typed from birth)", |b| {
        b.iter(|| {
            Payload::decode_with(black_box(&data_bytes), |_, alias| {
                types.get(&alias?).copied()
            })
            .unwrap()
        })
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
