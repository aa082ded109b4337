//! Payload codec tests: explicit presence on the wire, birth-typed DATA decoding, errors that
//! name the metric and field, and property tests that every datatype round-trips through
//! bytes and that arbitrary bytes never panic the decoder.

use super::*;
use crate::dataset::DataSet;
use crate::property::{PropertyData, PropertyValue};
use crate::proto::payload::metric::Value as Field;
use crate::template::{Parameter, Template};
use crate::value::{BasicValue, Quality};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use std::collections::HashMap;

#[test]
fn seq_and_timestamp_zero_are_on_the_wire() {
    let p = Payload {
        timestamp: Some(0),
        seq: Some(0),
        ..Payload::default()
    };
    // field 1 (timestamp) varint 0, field 3 (seq) varint 0
    assert_eq!(p.encode(), [0x08, 0x00, 0x18, 0x00]);
    assert_eq!(Payload::decode(&p.encode()), Ok(p));
    // and absent stays absent (NDEATH has no seq)
    let death = Payload {
        timestamp: Some(1),
        ..Payload::default()
    };
    assert_eq!(death.encode(), [0x08, 0x01]);
    assert_eq!(Payload::decode(&death.encode()).unwrap().seq, None);
}

#[test]
fn metric_timestamp_zero_and_null_are_on_the_wire() {
    let m = Metric {
        alias: Some(0),
        timestamp: Some(0),
        ..Metric::null("n", DataType::Int32)
    };
    let bytes = m.to_proto().encode_to_vec();
    // name "n", alias 0, timestamp 0, datatype 3, is_null true
    assert_eq!(
        bytes,
        [
            0x0A, 0x01, b'n', 0x10, 0x00, 0x18, 0x00, 0x20, 0x03, 0x38, 0x01
        ]
    );
}

#[test]
fn spec_example_dbirth_round_trips() {
    let mut props = PropertySet::new();
    props.insert(
        "engUnit",
        PropertyValue::new(BasicValue::String("degC".into())),
    );
    let birth = Payload {
        timestamp: Some(1_700_000_000_130),
        seq: Some(1),
        metrics: vec![
            Metric {
                alias: Some(10),
                timestamp: Some(1_700_000_000_101),
                properties: Some(props),
                ..Metric::new("Inputs/Temp", MetricValue::Float(21.5))
            },
            Metric {
                alias: Some(11),
                timestamp: Some(1_700_000_000_101),
                ..Metric::new("Outputs/Valve", MetricValue::Boolean(false))
            },
            Metric {
                alias: Some(12),
                timestamp: Some(1_700_000_000_101),
                ..Metric::null("Counters/Raw", DataType::Int32)
            },
        ],
        ..Payload::default()
    };
    birth.validate().unwrap();
    let decoded = Payload::decode(&birth.encode()).unwrap();
    assert_eq!(decoded, birth);
    let proto = crate::proto::Payload::decode(birth.encode().as_slice()).unwrap();
    assert_eq!(proto.metrics[2].is_null, Some(true));
    assert_eq!(proto.metrics[2].datatype, Some(3));
    assert_eq!(proto.metrics[0].value, Some(Field::FloatValue(21.5)));
}

#[test]
fn ddata_is_typed_from_the_birth() {
    let birth = Payload {
        seq: Some(1),
        metrics: vec![
            Metric {
                alias: Some(10),
                ..Metric::new("Inputs/Temp", MetricValue::Int8(0))
            },
            Metric {
                alias: Some(11),
                ..Metric::new("Counts", MetricValue::UInt16Array(vec![]))
            },
        ],
        ..Payload::default()
    };
    let birth = Payload::decode(&birth.encode()).unwrap();
    // What a host keeps from the DBIRTH.
    let mut by_alias = HashMap::new();
    let mut by_name = HashMap::new();
    for m in &birth.metrics {
        let dt = m.datatype.unwrap();
        by_alias.insert(m.alias.unwrap(), dt);
        by_name.insert(m.name.clone().unwrap(), dt);
    }
    let ddata = Payload {
        seq: Some(2),
        timestamp: Some(5),
        metrics: vec![
            Metric {
                alias: Some(10),
                timestamp: Some(5),
                value: Some(MetricValue::Int8(-1)),
                ..Metric::default()
            },
            Metric {
                name: Some("Counts".into()),
                value: Some(MetricValue::UInt16Array(vec![1, 65535])),
                ..Metric::default()
            },
        ],
        ..Payload::default()
    };
    ddata.validate().unwrap();
    let bytes = ddata.encode();
    let resolve = |name: Option<&str>, alias: Option<u64>| match alias {
        Some(a) => by_alias.get(&a).copied(),
        None => by_name.get(name?).copied(),
    };
    let decoded = Payload::decode_with(&bytes, resolve).unwrap();
    assert_eq!(decoded, ddata);
    // datatype stays as on the wire: re-encoding gives the same bytes.
    assert_eq!(decoded.encode(), bytes);

    // Without the birth, the metric is named in the error.
    let e = Payload::decode(&bytes).unwrap_err();
    assert_eq!(
        e,
        DecodeError::Metric {
            index: 0,
            name: None,
            alias: Some(10),
            field: "datatype",
            error: ValueError::NoDatatype
        }
    );
    // Late typing from a raw protobuf metric works too.
    let raw = crate::proto::Payload::decode(bytes.as_slice()).unwrap();
    assert_eq!(
        MetricValue::from_field(DataType::Int8, raw.metrics[0].value.as_ref()),
        Ok(MetricValue::Int8(-1))
    );
}

#[test]
fn errors_name_metric_and_field() {
    let p = Payload {
        metrics: vec![
            Metric::new("ok", MetricValue::Int32(1)),
            Metric {
                alias: Some(7),
                ..Metric::new("arr", MetricValue::Int32Array(vec![1]))
            },
        ],
        ..Payload::default()
    };
    let mut proto = p.to_proto();
    proto.metrics[1].value = Some(Field::BytesValue(vec![1, 2, 3]));
    let e = Payload::from_proto(proto).unwrap_err();
    assert_eq!(
        e.to_string(),
        "metric #1 \"arr\" (alias 7), field bytes_value: a Int32Array is packed in 4-byte elements, but bytes_value has 3 bytes"
    );

    let mut proto = p.to_proto();
    proto.metrics[0].datatype = Some(0);
    assert_eq!(
        Payload::from_proto(proto).unwrap_err().to_string(),
        "metric #0 \"ok\", field datatype: Unknown is not a metric data type (allowed: 1..=19, 22..=34)"
    );

    let mut proto = p.to_proto();
    proto.metrics[0].datatype = Some(99);
    assert!(matches!(
        Payload::from_proto(proto),
        Err(DecodeError::Metric {
            field: "datatype",
            error: ValueError::UnsupportedType(99),
            ..
        })
    ));

    let mut proto = p.to_proto();
    proto.metrics[0].is_null = Some(true);
    assert!(matches!(
        Payload::from_proto(proto),
        Err(DecodeError::Metric {
            field: "is_null",
            ..
        })
    ));

    let mut proto = p.to_proto();
    proto.metrics[0].value = None;
    assert!(matches!(
        Payload::from_proto(proto),
        Err(DecodeError::Metric {
            field: "value",
            error: ValueError::Missing,
            ..
        })
    ));

    let mut proto = p.to_proto();
    proto.metrics[0].properties = Some(crate::proto::payload::PropertySet {
        keys: vec!["a".into()],
        values: vec![],
    });
    assert!(matches!(
        Payload::from_proto(proto),
        Err(DecodeError::Metric {
            field: "properties",
            ..
        })
    ));

    assert!(matches!(
        Payload::decode(&[0xFF, 0xFF]),
        Err(DecodeError::Protobuf(_))
    ));
}

#[test]
fn validate_refuses_what_would_not_decode_back() {
    let mut m = Metric::new("x", MetricValue::Float(1.0));
    m.datatype = Some(DataType::Double);
    let p = Payload {
        metrics: vec![m],
        ..Payload::default()
    };
    assert!(matches!(
        p.validate(),
        Err(DecodeError::Metric {
            field: "datatype",
            error: ValueError::TypeMismatch { .. },
            ..
        })
    ));
    let p = Payload {
        metrics: vec![Metric::new(
            "s",
            MetricValue::StringArray(vec!["a\0b".into()]),
        )],
        ..Payload::default()
    };
    assert_eq!(
        p.validate().unwrap_err().to_string(),
        "metric #0 \"s\", field bytes_value: StringArray element 0 contains NUL, which the encoding uses as terminator"
    );
    let p = Payload {
        metrics: vec![Metric::null("p", DataType::PropertySet)],
        ..Payload::default()
    };
    assert!(p.validate().is_err());
    assert!(Payload::decode(&p.encode()).is_err());
}

#[test]
fn quality_travels_as_a_property() {
    let mut props = PropertySet::new();
    props.set_quality(Quality::Stale);
    let p = Payload {
        metrics: vec![Metric {
            alias: Some(1),
            properties: Some(props),
            ..Metric::new("t", MetricValue::Double(1.0))
        }],
        ..Payload::default()
    };
    let d = Payload::decode(&p.encode()).unwrap();
    assert_eq!(
        d.metrics[0].properties.as_ref().unwrap().quality(),
        Some(Quality::Stale)
    );
}

// ---- property tests -------------------------------------------------------------------

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9/ _é€]{0,10}"
}

fn no_nul_text() -> impl Strategy<Value = String> {
    "[^\\x00]{0,8}"
}

/// NaN breaks `PartialEq`, so round-trip comparisons use every other float.
fn f32_no_nan() -> impl Strategy<Value = f32> {
    any::<f32>().prop_map(|f| if f.is_nan() { 0.0 } else { f })
}

fn f64_no_nan() -> impl Strategy<Value = f64> {
    any::<f64>().prop_map(|f| if f.is_nan() { 0.0 } else { f })
}

fn basic_type() -> impl Strategy<Value = DataType> + Clone {
    select(DataType::ALL[1..=14].to_vec())
}

fn metric_type() -> impl Strategy<Value = DataType> + Clone {
    select(
        DataType::ALL
            .into_iter()
            .filter(|d| d.is_metric_type())
            .collect::<Vec<_>>(),
    )
}

fn basic_of(datatype: DataType) -> BoxedStrategy<BasicValue> {
    use BasicValue as B;
    match datatype {
        DataType::Int8 => any::<i8>().prop_map(B::Int8).boxed(),
        DataType::Int16 => any::<i16>().prop_map(B::Int16).boxed(),
        DataType::Int32 => any::<i32>().prop_map(B::Int32).boxed(),
        DataType::Int64 => any::<i64>().prop_map(B::Int64).boxed(),
        DataType::UInt8 => any::<u8>().prop_map(B::UInt8).boxed(),
        DataType::UInt16 => any::<u16>().prop_map(B::UInt16).boxed(),
        DataType::UInt32 => any::<u32>().prop_map(B::UInt32).boxed(),
        DataType::UInt64 => any::<u64>().prop_map(B::UInt64).boxed(),
        DataType::Float => f32_no_nan().prop_map(B::Float).boxed(),
        DataType::Double => f64_no_nan().prop_map(B::Double).boxed(),
        DataType::Boolean => any::<bool>().prop_map(B::Boolean).boxed(),
        DataType::String => text().prop_map(B::String).boxed(),
        DataType::DateTime => any::<u64>().prop_map(B::DateTime).boxed(),
        _ => text().prop_map(B::Text).boxed(),
    }
}

fn any_basic() -> BoxedStrategy<BasicValue> {
    basic_type().prop_flat_map(basic_of).boxed()
}

fn dataset() -> impl Strategy<Value = DataSet> {
    vec(basic_type(), 0..5)
        .prop_flat_map(|types| {
            let row: Vec<_> = types.iter().map(|t| option::of(basic_of(*t))).collect();
            let columns = vec(text(), types.len());
            (Just(types), columns, vec(row, 0..4))
        })
        .prop_map(|(types, columns, rows)| DataSet {
            columns,
            types,
            rows,
        })
}

fn property_set() -> BoxedStrategy<PropertySet> {
    fn set(pairs: Vec<(String, PropertyValue)>) -> PropertySet {
        let (keys, values) = pairs.into_iter().unzip();
        PropertySet { keys, values }
    }
    let scalar = prop_oneof![
        3 => any_basic().prop_map(PropertyValue::new),
        1 => prop_oneof![basic_type(), Just(DataType::PropertySet), Just(DataType::PropertySetList)]
            .prop_map(PropertyValue::null),
    ];
    vec((text(), scalar.clone()), 0..4)
        .prop_map(set)
        .prop_recursive(3, 16, 4, move |inner| {
            vec(
                (
                    text(),
                    prop_oneof![
                        scalar.clone(),
                        inner.clone().prop_map(PropertyValue::new),
                        vec(inner, 0..3).prop_map(PropertyValue::new),
                    ],
                ),
                0..4,
            )
            .prop_map(set)
        })
        .boxed()
}

fn metadata() -> impl Strategy<Value = MetaData> {
    (
        option::of(any::<bool>()),
        option::of(text()),
        option::of(any::<u64>()),
        option::of(any::<u64>()),
        option::of(text()),
        option::of(text()),
        option::of(text()),
        option::of(text()),
    )
        .prop_map(
            |(is_multi_part, content_type, size, seq, file_name, file_type, md5, description)| {
                MetaData {
                    is_multi_part,
                    content_type,
                    size,
                    seq,
                    file_name,
                    file_type,
                    md5,
                    description,
                }
            },
        )
}

fn parameter() -> impl Strategy<Value = Parameter> {
    (text(), basic_type())
        .prop_flat_map(|(name, datatype)| {
            (Just(name), Just(datatype), option::of(basic_of(datatype)))
        })
        .prop_map(|(name, datatype, value)| Parameter {
            name,
            datatype,
            value,
        })
}

/// A Template whose members may be Templates down to `depth` more levels.
fn template(depth: u32) -> BoxedStrategy<Template> {
    let member_value = if depth == 0 {
        leaf_value().boxed()
    } else {
        prop_oneof![3 => leaf_value(), 1 => template(depth - 1).prop_map(|t| MetricValue::Template(Box::new(t)))]
            .boxed()
    };
    let member = (
        text(),
        option::of(member_value),
        metric_type(),
        option::of(any::<u64>()),
    )
        .prop_map(|(name, value, null_type, timestamp)| {
            let mut m = match value {
                Some(v) => Metric::new(name, v),
                None => Metric::null(name, null_type),
            };
            m.timestamp = timestamp;
            m
        });
    (
        option::of(text()),
        any::<bool>(),
        text(),
        vec(member, 0..3),
        vec(parameter(), 0..3),
    )
        .prop_map(
            |(version, is_definition, r, metrics, parameters)| Template {
                version,
                template_ref: (!is_definition).then_some(r),
                is_definition,
                metrics,
                parameters,
            },
        )
        .boxed()
}

/// A value of `datatype`, for every metric type.
fn value_of(datatype: DataType) -> BoxedStrategy<MetricValue> {
    use MetricValue as V;
    let n = 0..12;
    match datatype {
        d if d.is_basic() => basic_of(d).prop_map(MetricValue::from).boxed(),
        DataType::Uuid => text().prop_map(V::Uuid).boxed(),
        DataType::DataSet => dataset().prop_map(|d| V::DataSet(Box::new(d))).boxed(),
        DataType::Bytes => vec(any::<u8>(), n).prop_map(V::Bytes).boxed(),
        DataType::File => vec(any::<u8>(), n).prop_map(V::File).boxed(),
        DataType::Template => template(2).prop_map(|t| V::Template(Box::new(t))).boxed(),
        DataType::Int8Array => vec(any::<i8>(), n).prop_map(V::Int8Array).boxed(),
        DataType::Int16Array => vec(any::<i16>(), n).prop_map(V::Int16Array).boxed(),
        DataType::Int32Array => vec(any::<i32>(), n).prop_map(V::Int32Array).boxed(),
        DataType::Int64Array => vec(any::<i64>(), n).prop_map(V::Int64Array).boxed(),
        DataType::UInt8Array => vec(any::<u8>(), n).prop_map(V::UInt8Array).boxed(),
        DataType::UInt16Array => vec(any::<u16>(), n).prop_map(V::UInt16Array).boxed(),
        DataType::UInt32Array => vec(any::<u32>(), n).prop_map(V::UInt32Array).boxed(),
        DataType::UInt64Array => vec(any::<u64>(), n).prop_map(V::UInt64Array).boxed(),
        DataType::FloatArray => vec(f32_no_nan(), n).prop_map(V::FloatArray).boxed(),
        DataType::DoubleArray => vec(f64_no_nan(), n).prop_map(V::DoubleArray).boxed(),
        DataType::BooleanArray => vec(any::<bool>(), 0..20).prop_map(V::BooleanArray).boxed(),
        DataType::StringArray => vec(no_nul_text(), 0..5).prop_map(V::StringArray).boxed(),
        DataType::DateTimeArray => vec(any::<u64>(), n).prop_map(V::DateTimeArray).boxed(),
        other => unreachable!("{other:?} is not a metric type"),
    }
}

/// Any metric value except a Template.
fn leaf_value() -> BoxedStrategy<MetricValue> {
    metric_type()
        .prop_filter("templates are built by template()", |d| {
            *d != DataType::Template
        })
        .prop_flat_map(value_of)
        .boxed()
}

fn metric() -> impl Strategy<Value = Metric> {
    (
        (
            option::of(text()),
            option::of(any::<u64>()),
            option::of(any::<u64>()),
            metric_type().prop_flat_map(|d| (Just(d), option::of(value_of(d)))),
            any::<bool>(),
        ),
        (
            any::<bool>(),
            any::<bool>(),
            option::of(property_set()),
            option::of(metadata()),
        ),
    )
        .prop_map(
            |(
                (name, alias, timestamp, (datatype, value), untyped_null),
                (is_historical, is_transient, properties, metadata),
            )| Metric {
                name,
                alias,
                timestamp,
                // A null may come without a datatype; a value always declares its own.
                datatype: (value.is_some() || !untyped_null).then_some(datatype),
                is_historical,
                is_transient,
                value,
                properties,
                metadata,
            },
        )
}

fn payload() -> impl Strategy<Value = Payload> {
    (
        option::of(any::<u64>()),
        vec(metric(), 0..4),
        option::of(0..256u64),
        option::of(text()),
        option::of(vec(any::<u8>(), 0..8)),
    )
        .prop_map(|(timestamp, metrics, seq, uuid, body)| Payload {
            timestamp,
            metrics,
            seq,
            uuid,
            body,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every metric datatype, through bytes and back.
    #[test]
    fn every_datatype_round_trips_through_bytes(
        (datatype, value) in metric_type().prop_flat_map(|d| (Just(d), value_of(d)))
    ) {
        prop_assert_eq!(value.datatype(), datatype);
        let p = Payload {
            seq: Some(0),
            timestamp: Some(0),
            metrics: vec![Metric::new("m", value)],
            ..Payload::default()
        };
        prop_assert_eq!(p.validate(), Ok(()));
        prop_assert_eq!(Payload::decode(&p.encode()), Ok(p));
    }

    /// Whole payloads: metrics with properties (nested sets and lists), metadata, nulls,
    /// DataSets and nested Templates.
    #[test]
    fn payloads_round_trip_through_bytes(p in payload()) {
        prop_assert_eq!(p.validate(), Ok(()));
        let bytes = p.encode();
        let decoded = Payload::decode(&bytes);
        prop_assert_eq!(decoded.as_ref(), Ok(&p));
        prop_assert_eq!(decoded.unwrap().encode(), bytes);
    }

    #[test]
    fn property_sets_round_trip(set in property_set()) {
        prop_assert_eq!(set.validate(), Ok(()));
        prop_assert_eq!(PropertySet::from_proto(set.to_proto()), Ok(set));
    }

    #[test]
    fn nested_templates_round_trip(t in template(3)) {
        prop_assert_eq!(t.validate(), Ok(()));
        prop_assert_eq!(Template::from_proto(t.to_proto()), Ok(t));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes: an error or a payload, never a panic; and what decodes re-encodes
    /// to bytes that decode to the same thing.
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in vec(any::<u8>(), 0..256)) {
        if let Ok(p) = Payload::decode(&bytes) {
            let again = p.encode();
            prop_assert_eq!(Payload::decode(&again).map(|q| q.encode()), Ok(again));
        }
    }

    /// Valid payloads with one byte changed and a tail cut off reach far deeper into the
    /// decoder than random bytes do.
    #[test]
    fn decoding_mutated_payloads_never_panics(
        p in payload(),
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = p.encode();
        if !bytes.is_empty() {
            let i = at.index(bytes.len());
            bytes[i] = byte;
            bytes.truncate(bytes.len() - cut.index(bytes.len()) / 4);
        }
        if let Ok(p) = Payload::decode(&bytes) {
            let again = p.encode();
            prop_assert_eq!(Payload::decode(&again).map(|q| q.encode()), Ok(again));
        }
    }

    /// Arbitrary `bytes_value` under every array datatype, through the metric decoder.
    #[test]
    fn arbitrary_array_bytes_never_panic(
        datatype in metric_type().prop_filter("arrays", |d| d.is_array()),
        bytes in vec(any::<u8>(), 0..40),
    ) {
        let p = crate::proto::Payload {
            metrics: vec![pb::Metric {
                datatype: Some(datatype.code()),
                value: Some(Field::BytesValue(bytes)),
                ..pb::Metric::default()
            }],
            ..crate::proto::Payload::default()
        };
        match Payload::from_proto(p) {
            Ok(p) => prop_assert_eq!(p.metrics[0].value.as_ref().map(MetricValue::datatype), Some(datatype)),
            Err(DecodeError::Metric { index, field, .. }) => {
                prop_assert_eq!(index, 0);
                prop_assert_eq!(field, "bytes_value");
            }
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }
}

#[test]
fn property_data_from_conversions() {
    assert_eq!(
        PropertyData::from(PropertySet::new()).datatype(),
        DataType::PropertySet
    );
    assert_eq!(
        PropertyData::from(vec![PropertySet::new()]).datatype(),
        DataType::PropertySetList
    );
}
