//! The packed `bytes_value` encodings of the thirteen array types (spec §3.4).
//!
//! Sparkplug arrays are not repeated protobuf fields but one opaque byte string, and the
//! 3.0.0 PDF got several examples wrong (big-endian floats, truncated DateTimes, spec §6
//! pitfall 25), so the layouts live here, each tested against the corrected byte vectors:
//!
//! - numeric arrays: elements packed little-endian, no length prefix, no padding;
//! - BooleanArray: a 4-byte little-endian element count, then the bits MSB-first
//!   (element *i* is bit `0x80 >> (i % 8)` of byte `4 + i / 8`), padding bits written as 0
//!   and ignored when read;
//! - StringArray: UTF-8 strings, each terminated by NUL (so an element cannot contain NUL).
//!
//! Decoding checks every length before it allocates, so a hostile count cannot make it
//! reserve gigabytes, and it never panics: malformed input is a [`ValueError`].

use crate::value::{DataType, MetricValue, ValueError};

macro_rules! packed {
    ($encode:ident, $decode:ident, $t:ty, $datatype:ident) => {
        pub(crate) fn $encode(values: &[$t]) -> Vec<u8> {
            let mut out = Vec::with_capacity(values.len() * size_of::<$t>());
            for v in values {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out
        }

        fn $decode(bytes: &[u8]) -> Result<Vec<$t>, ValueError> {
            const N: usize = size_of::<$t>();
            if !bytes.len().is_multiple_of(N) {
                return Err(ValueError::ArrayLength {
                    datatype: DataType::$datatype,
                    len: bytes.len(),
                    element_size: N,
                });
            }
            Ok(bytes
                .chunks_exact(N)
                .map(|chunk| {
                    let mut le = [0u8; N];
                    le.copy_from_slice(chunk);
                    <$t>::from_le_bytes(le)
                })
                .collect())
        }
    };
}

packed!(encode_i8, decode_i8, i8, Int8Array);
packed!(encode_i16, decode_i16, i16, Int16Array);
packed!(encode_i32, decode_i32, i32, Int32Array);
packed!(encode_i64, decode_i64, i64, Int64Array);
packed!(encode_u16, decode_u16, u16, UInt16Array);
packed!(encode_u32, decode_u32, u32, UInt32Array);
packed!(encode_u64, decode_u64, u64, UInt64Array);
packed!(encode_f32, decode_f32, f32, FloatArray);
packed!(encode_f64, decode_f64, f64, DoubleArray);

/// BooleanArray: 4-byte LE count, then bits MSB-first, padding 0.
pub(crate) fn encode_bool(values: &[bool]) -> Vec<u8> {
    // More than u32::MAX elements would be a 512 MiB payload, beyond any MQTT broker's
    // packet limit, so the count cannot truncate in practice.
    let count = values.len() as u32;
    let mut out = Vec::with_capacity(4 + values.len().div_ceil(8));
    out.extend_from_slice(&count.to_le_bytes());
    out.resize(4 + values.len().div_ceil(8), 0);
    for (i, _) in values.iter().enumerate().filter(|(_, b)| **b) {
        out[4 + i / 8] |= 0x80 >> (i % 8);
    }
    out
}

fn decode_bool(bytes: &[u8]) -> Result<Vec<bool>, ValueError> {
    let Some((count, bits)) = bytes.split_first_chunk::<4>() else {
        return Err(ValueError::BooleanArrayHeader { len: bytes.len() });
    };
    let count = u32::from_le_bytes(*count);
    let available = bits.len() as u64 * 8;
    if u64::from(count) > available {
        return Err(ValueError::BooleanArrayCount { count, available });
    }
    Ok((0..count as usize)
        .map(|i| bits[i / 8] & (0x80 >> (i % 8)) != 0)
        .collect())
}

/// StringArray: each element's UTF-8 followed by NUL. An element containing NUL is written
/// as is and would read back as two elements; [`MetricValue::validate`] refuses it.
pub(crate) fn encode_string(values: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.iter().map(|s| s.len() + 1).sum());
    for s in values {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }
    out
}

fn decode_string(bytes: &[u8]) -> Result<Vec<String>, ValueError> {
    let Some((&last, body)) = bytes.split_last() else {
        return Ok(Vec::new());
    };
    if last != 0 {
        return Err(ValueError::StringArrayUnterminated);
    }
    body.split(|b| *b == 0)
        .enumerate()
        .map(|(index, s)| {
            std::str::from_utf8(s)
                .map(str::to_owned)
                .map_err(|_| ValueError::StringArrayUtf8 { index })
        })
        .collect()
}

/// The `bytes_value` of an array value, or `None` when `value` is not an array.
pub fn encode(value: &MetricValue) -> Option<Vec<u8>> {
    Some(match value {
        MetricValue::Int8Array(v) => encode_i8(v),
        MetricValue::Int16Array(v) => encode_i16(v),
        MetricValue::Int32Array(v) => encode_i32(v),
        MetricValue::Int64Array(v) => encode_i64(v),
        MetricValue::UInt8Array(v) => v.clone(),
        MetricValue::UInt16Array(v) => encode_u16(v),
        MetricValue::UInt32Array(v) => encode_u32(v),
        MetricValue::UInt64Array(v) | MetricValue::DateTimeArray(v) => encode_u64(v),
        MetricValue::FloatArray(v) => encode_f32(v),
        MetricValue::DoubleArray(v) => encode_f64(v),
        MetricValue::BooleanArray(v) => encode_bool(v),
        MetricValue::StringArray(v) => encode_string(v),
        _ => return None,
    })
}

/// Reads an array of `datatype` from its `bytes_value`, checking lengths, the BooleanArray
/// count, StringArray termination and UTF-8.
pub fn decode(datatype: DataType, bytes: &[u8]) -> Result<MetricValue, ValueError> {
    Ok(match datatype {
        DataType::Int8Array => MetricValue::Int8Array(decode_i8(bytes)?),
        DataType::Int16Array => MetricValue::Int16Array(decode_i16(bytes)?),
        DataType::Int32Array => MetricValue::Int32Array(decode_i32(bytes)?),
        DataType::Int64Array => MetricValue::Int64Array(decode_i64(bytes)?),
        DataType::UInt8Array => MetricValue::UInt8Array(bytes.to_vec()),
        DataType::UInt16Array => MetricValue::UInt16Array(decode_u16(bytes)?),
        DataType::UInt32Array => MetricValue::UInt32Array(decode_u32(bytes)?),
        DataType::UInt64Array => MetricValue::UInt64Array(decode_u64(bytes)?),
        DataType::FloatArray => MetricValue::FloatArray(decode_f32(bytes)?),
        DataType::DoubleArray => MetricValue::DoubleArray(decode_f64(bytes)?),
        DataType::BooleanArray => MetricValue::BooleanArray(decode_bool(bytes)?),
        DataType::StringArray => MetricValue::StringArray(decode_string(bytes)?),
        DataType::DateTimeArray => {
            let v = decode_u64(bytes).map_err(|e| match e {
                ValueError::ArrayLength {
                    len, element_size, ..
                } => ValueError::ArrayLength {
                    datatype,
                    len,
                    element_size,
                },
                e => e,
            })?;
            MetricValue::DateTimeArray(v)
        }
        _ => {
            return Err(ValueError::WrongField {
                datatype,
                expected: datatype.value_field(),
                found: "bytes_value",
            });
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        s.split_whitespace()
            .map(|b| u8::from_str_radix(b, 16).unwrap())
            .collect()
    }

    /// Both directions for one spec §3.4 example.
    fn check(value: MetricValue, bytes: &str) {
        let bytes = hex(bytes);
        assert_eq!(encode(&value).unwrap(), bytes, "encoding {value:?}");
        assert_eq!(
            decode(value.datatype(), &bytes).unwrap(),
            value,
            "decoding {bytes:02X?}"
        );
        // And through the metric value field.
        let field = value.to_field();
        assert_eq!(
            MetricValue::from_field(value.datatype(), Some(&field)),
            Ok(value)
        );
    }

    #[test]
    fn int8_array_spec_example() {
        check(MetricValue::Int8Array(vec![-23, 123]), "E9 7B");
    }

    #[test]
    fn int16_array_spec_example() {
        check(MetricValue::Int16Array(vec![-30000, 30000]), "D0 8A 30 75");
    }

    #[test]
    fn int32_array_spec_examples() {
        check(
            MetricValue::Int32Array(vec![-1, 315338746]),
            "FF FF FF FF FA AF CB 12",
        );
        check(
            MetricValue::Int32Array(vec![123456789, 987654321]),
            "15 CD 5B 07 B1 68 DE 3A",
        );
    }

    #[test]
    fn int64_array_spec_example() {
        check(
            MetricValue::Int64Array(vec![-4270929666821191986, -3601064768563266876]),
            "CE 06 72 AC 18 9C BA C4 C4 BA 9C 18 AC 72 06 CE",
        );
    }

    #[test]
    fn uint8_array_spec_example() {
        check(MetricValue::UInt8Array(vec![23, 250]), "17 FA");
    }

    #[test]
    fn uint16_array_spec_example() {
        check(MetricValue::UInt16Array(vec![30, 52360]), "1E 00 88 CC");
    }

    #[test]
    fn uint32_array_spec_example() {
        check(
            MetricValue::UInt32Array(vec![52, 3293969225]),
            "34 00 00 00 49 FB 55 C4",
        );
    }

    #[test]
    fn uint64_array_spec_example() {
        check(
            MetricValue::UInt64Array(vec![52, 16444743074749521625]),
            "34 00 00 00 00 00 00 00 D9 9E 02 D1 B2 76 37 E4",
        );
    }

    #[test]
    fn float_array_spec_example() {
        check(
            MetricValue::FloatArray(vec![1.23, 89.341]),
            "A4 70 9D 3F 98 AE B2 42",
        );
    }

    #[test]
    fn double_array_spec_example() {
        check(
            MetricValue::DoubleArray(vec![12.354213, 1022.9123213]),
            "D7 A2 05 68 5B B5 28 40 8E 17 1C 6F 4C F7 8F 40",
        );
    }

    #[test]
    fn boolean_array_spec_example() {
        let (f, t) = (false, true);
        check(
            MetricValue::BooleanArray(vec![f, f, t, t, f, t, f, f, t, t, f, t]),
            "0C 00 00 00 34 D0",
        );
    }

    #[test]
    fn string_array_spec_example() {
        check(
            MetricValue::StringArray(vec!["ABC".into(), "hello".into()]),
            "41 42 43 00 68 65 6C 6C 6F 00",
        );
    }

    #[test]
    fn datetime_array_spec_example() {
        check(
            MetricValue::DateTimeArray(vec![1256102875335, 1656107875000]),
            "C7 D0 90 75 24 01 00 00 B8 BA B8 97 81 01 00 00",
        );
    }

    #[test]
    fn empty_arrays_are_empty_bytes_except_boolean() {
        check(MetricValue::Int32Array(vec![]), "");
        check(MetricValue::StringArray(vec![]), "");
        check(MetricValue::BooleanArray(vec![]), "00 00 00 00");
        check(MetricValue::StringArray(vec![String::new()]), "00");
    }

    #[test]
    fn boolean_padding_bits_are_ignored_and_extra_bytes_tolerated() {
        assert_eq!(
            decode(DataType::BooleanArray, &hex("02 00 00 00 FF")),
            Ok(MetricValue::BooleanArray(vec![true, true]))
        );
        assert_eq!(
            decode(DataType::BooleanArray, &hex("01 00 00 00 80 00")),
            Ok(MetricValue::BooleanArray(vec![true]))
        );
    }

    #[test]
    fn malformed_arrays_name_the_problem() {
        assert_eq!(
            decode(DataType::Int32Array, &[1, 2, 3]),
            Err(ValueError::ArrayLength {
                datatype: DataType::Int32Array,
                len: 3,
                element_size: 4
            })
        );
        assert_eq!(
            decode(DataType::DateTimeArray, &[0; 9]),
            Err(ValueError::ArrayLength {
                datatype: DataType::DateTimeArray,
                len: 9,
                element_size: 8
            })
        );
        assert_eq!(
            decode(DataType::BooleanArray, &[1, 0]),
            Err(ValueError::BooleanArrayHeader { len: 2 })
        );
        assert_eq!(
            decode(DataType::BooleanArray, &hex("09 00 00 00 FF")),
            Err(ValueError::BooleanArrayCount {
                count: 9,
                available: 8
            })
        );
        // A huge count is refused before anything is allocated.
        assert_eq!(
            decode(DataType::BooleanArray, &hex("FF FF FF FF")),
            Err(ValueError::BooleanArrayCount {
                count: u32::MAX,
                available: 0
            })
        );
        assert_eq!(
            decode(DataType::StringArray, b"abc"),
            Err(ValueError::StringArrayUnterminated)
        );
        assert_eq!(
            decode(DataType::StringArray, b"ok\0\xFF\0"),
            Err(ValueError::StringArrayUtf8 { index: 1 })
        );
        let e = decode(DataType::Int16Array, &[1]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a Int16Array is packed in 2-byte elements, but bytes_value has 1 bytes"
        );
    }

    #[test]
    fn non_array_types_are_not_decoded_as_arrays() {
        assert!(matches!(
            decode(DataType::Int32, &[0; 4]),
            Err(ValueError::WrongField { .. })
        ));
        assert_eq!(encode(&MetricValue::Int32(1)), None);
    }

    const ARRAY_TYPES: [DataType; 13] = [
        DataType::Int8Array,
        DataType::Int16Array,
        DataType::Int32Array,
        DataType::Int64Array,
        DataType::UInt8Array,
        DataType::UInt16Array,
        DataType::UInt32Array,
        DataType::UInt64Array,
        DataType::FloatArray,
        DataType::DoubleArray,
        DataType::BooleanArray,
        DataType::StringArray,
        DataType::DateTimeArray,
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Arbitrary bytes as every array type: an error or a value, never a panic; and a
        /// value that decodes re-encodes to a canonical form that decodes the same.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            for datatype in ARRAY_TYPES {
                if let Ok(v) = decode(datatype, &bytes) {
                    prop_assert_eq!(v.datatype(), datatype);
                    let again = encode(&v).unwrap();
                    prop_assert_eq!(encode(&decode(datatype, &again).unwrap()).unwrap(), again);
                }
            }
        }
    }
}
