//! Register decoding and encoding: Modbus moves 16-bit registers (big-endian on the wire);
//! what they mean is the tag's type and byte/word order, which is ours to get exactly right.
//!
//! Orders are named by where the bytes of the value `A B C D …` (most significant first) sit
//! in the registers as read:
//!
//! | 32-bit | 64-bit | registers hold | meaning |
//! |---|---|---|---|
//! | `ABCD` | `ABCDEFGH` | `AB CD (EF GH)` | big-endian, high word first (Modbus convention) |
//! | `BADC` | `BADCFEHG` | `BA DC (FE HG)` | bytes swapped in each register |
//! | `CDAB` | `GHEFCDAB` | `(GH EF) CD AB` | low word first |
//! | `DCBA` | `HGFEDCBA` | `(HG FE) DC BA` | fully little-endian |
//!
//! A 64-bit tag may also be given the 4-letter name of the same rule (`CDAB` = low word
//! first). Strings are packed two characters per register, `AB` (first character in the high
//! byte) or `BA`; trailing NULs are dropped on read and added on write.

pub use uns_model::ByteOrder as Order;
use uns_model::{DataType, Value};

/// How many registers a value of `datatype` occupies (`string_len` characters for strings);
/// 0 for the types Modbus tags cannot have (datetime and arrays, refused by validation).
pub fn register_count(datatype: DataType, string_len: usize) -> usize {
    match datatype {
        DataType::Bool | DataType::Int8 | DataType::UInt8 | DataType::Int16 | DataType::UInt16 => 1,
        DataType::Int32 | DataType::UInt32 | DataType::Float32 => 2,
        DataType::Int64 | DataType::UInt64 | DataType::Float64 => 4,
        DataType::String => string_len.div_ceil(2),
        _ => 0,
    }
}

/// Puts the registers into big-endian `ABCD…` byte order.
fn to_bytes(registers: &[u16], order: Order) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(registers.len() * 2);
    let mut push = |r: u16| {
        let [hi, lo] = r.to_be_bytes();
        if order.byte_swap {
            bytes.extend([lo, hi]);
        } else {
            bytes.extend([hi, lo]);
        }
    };
    if order.word_swap {
        registers.iter().rev().copied().for_each(&mut push);
    } else {
        registers.iter().copied().for_each(&mut push);
    }
    bytes
}

/// The inverse of [`to_bytes`].
fn from_bytes(bytes: &[u8], order: Order) -> Vec<u16> {
    let mut registers: Vec<u16> = bytes
        .chunks(2)
        .map(|pair| {
            let (hi, lo) = (pair[0], pair.get(1).copied().unwrap_or(0));
            if order.byte_swap {
                u16::from_be_bytes([lo, hi])
            } else {
                u16::from_be_bytes([hi, lo])
            }
        })
        .collect();
    if order.word_swap {
        registers.reverse();
    }
    registers
}

/// Why registers could not become a value, or a value registers.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("{datatype} needs {needed} registers, got {got}")]
    Length {
        datatype: DataType,
        needed: usize,
        got: usize,
    },
    #[error("value {value} does not fit {datatype}")]
    Range { datatype: DataType, value: String },
    #[error("a {value} value cannot be written to a {datatype} tag")]
    Type { datatype: DataType, value: DataType },
    #[error("{len} characters do not fit a string of {max}")]
    TooLong { len: usize, max: usize },
    #[error("{0} has no register encoding; arrays and datetime are read from OPC UA only")]
    Unsupported(DataType),
}

/// Registers → value. `string_len` is the string tag's length in characters; `string_order`
/// its byte order within registers.
pub fn decode(
    registers: &[u16],
    datatype: DataType,
    order: Order,
    string_len: usize,
) -> Result<Value, CodecError> {
    if register_count(datatype, string_len) == 0 && datatype != DataType::String {
        return Err(CodecError::Unsupported(datatype));
    }
    let needed = register_count(datatype, string_len);
    if registers.len() != needed {
        return Err(CodecError::Length {
            datatype,
            needed,
            got: registers.len(),
        });
    }
    if datatype == DataType::String {
        // Only the byte order applies: characters run first register first.
        let bytes = to_bytes(
            registers,
            Order {
                word_swap: false,
                ..order
            },
        );
        let text: Vec<u8> = bytes
            .into_iter()
            .take(string_len)
            .take_while(|b| *b != 0)
            .collect();
        return Ok(Value::String(String::from_utf8_lossy(&text).into_owned()));
    }
    let b = to_bytes(registers, order);
    // The length was checked above, so each arm has exactly the bytes it converts.
    let w2 = || be::<2>(&b);
    let w4 = || be::<4>(&b);
    let w8 = || be::<8>(&b);
    Ok(match datatype {
        DataType::Bool => Value::Bool(u16::from_be_bytes(w2()) != 0),
        // An 8-bit tag is the low byte of its register.
        DataType::Int8 => Value::Int8(u16::from_be_bytes(w2()) as u8 as i8),
        DataType::UInt8 => Value::UInt8(u16::from_be_bytes(w2()) as u8),
        DataType::Int16 => Value::Int16(i16::from_be_bytes(w2())),
        DataType::UInt16 => Value::UInt16(u16::from_be_bytes(w2())),
        DataType::Int32 => Value::Int32(i32::from_be_bytes(w4())),
        DataType::UInt32 => Value::UInt32(u32::from_be_bytes(w4())),
        DataType::Float32 => Value::Float32(f32::from_be_bytes(w4())),
        DataType::Int64 => Value::Int64(i64::from_be_bytes(w8())),
        DataType::UInt64 => Value::UInt64(u64::from_be_bytes(w8())),
        DataType::Float64 => Value::Float64(f64::from_be_bytes(w8())),
        // Strings are handled above, datetime and arrays refused.
        other => return Err(CodecError::Unsupported(other)),
    })
}

/// The first `N` bytes (zero-padded if there are fewer, which the callers rule out).
fn be<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = N.min(bytes.len());
    out[..n].copy_from_slice(&bytes[..n]);
    out
}

/// Value → registers, the exact inverse of [`decode`] for every value that fits the tag.
pub fn encode(
    value: &Value,
    datatype: DataType,
    order: Order,
    string_len: usize,
) -> Result<Vec<u16>, CodecError> {
    if value.datatype() != datatype {
        return Err(CodecError::Type {
            datatype,
            value: value.datatype(),
        });
    }
    let bytes: Vec<u8> = match value {
        Value::Bool(v) => u16::from(*v).to_be_bytes().to_vec(),
        Value::Int8(v) => i16::from(*v).to_be_bytes().to_vec(),
        Value::UInt8(v) => u16::from(*v).to_be_bytes().to_vec(),
        Value::Int16(v) => v.to_be_bytes().to_vec(),
        Value::UInt16(v) => v.to_be_bytes().to_vec(),
        Value::Int32(v) => v.to_be_bytes().to_vec(),
        Value::UInt32(v) => v.to_be_bytes().to_vec(),
        Value::Float32(v) => v.to_be_bytes().to_vec(),
        Value::Int64(v) => v.to_be_bytes().to_vec(),
        Value::UInt64(v) => v.to_be_bytes().to_vec(),
        Value::Float64(v) => v.to_be_bytes().to_vec(),
        Value::String(s) => {
            if s.len() > string_len {
                return Err(CodecError::TooLong {
                    len: s.len(),
                    max: string_len,
                });
            }
            let mut bytes = s.as_bytes().to_vec();
            bytes.resize(register_count(datatype, string_len) * 2, 0);
            return Ok(from_bytes(
                &bytes,
                Order {
                    word_swap: false,
                    ..order
                },
            ));
        }
        Value::DateTime(_) | Value::Array(_) => return Err(CodecError::Unsupported(datatype)),
    };
    Ok(from_bytes(&bytes, order))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dec(regs: &[u16], t: DataType, order: &str) -> Value {
        decode(regs, t, order.parse().unwrap(), 0).unwrap()
    }

    /// 0x12345678 and 123456.0f32 (0x47F12000) in every 32-bit order.
    #[test]
    fn thirty_two_bit_vectors_in_every_order() {
        for (order, regs) in [
            ("ABCD", [0x1234, 0x5678]),
            ("BADC", [0x3412, 0x7856]),
            ("CDAB", [0x5678, 0x1234]),
            ("DCBA", [0x7856, 0x3412]),
        ] {
            assert_eq!(
                dec(&regs, DataType::UInt32, order),
                Value::UInt32(0x1234_5678),
                "{order}"
            );
            let o: Order = order.parse().unwrap();
            assert_eq!(
                encode(&Value::UInt32(0x1234_5678), DataType::UInt32, o, 0).unwrap(),
                regs
            );
        }
        for (order, regs) in [
            ("ABCD", [0x47F1, 0x2000]),
            ("BADC", [0xF147, 0x0020]),
            ("CDAB", [0x2000, 0x47F1]),
            ("DCBA", [0x0020, 0xF147]),
        ] {
            assert_eq!(
                dec(&regs, DataType::Float32, order),
                Value::Float32(123456.0),
                "{order}"
            );
        }
        assert_eq!(
            dec(&[0xFFFF, 0xFFFE], DataType::Int32, "ABCD"),
            Value::Int32(-2)
        );
    }

    /// 0x0102030405060708 and -1.5f64 (0xBFF8000000000000) in every 64-bit order — the word
    /// swap reverses all four registers, not just the two halves.
    #[test]
    fn sixty_four_bit_vectors_in_every_order() {
        for (order, regs) in [
            ("ABCDEFGH", [0x0102, 0x0304, 0x0506, 0x0708]),
            ("BADCFEHG", [0x0201, 0x0403, 0x0605, 0x0807]),
            ("GHEFCDAB", [0x0708, 0x0506, 0x0304, 0x0102]),
            ("HGFEDCBA", [0x0807, 0x0605, 0x0403, 0x0201]),
        ] {
            assert_eq!(
                dec(&regs, DataType::UInt64, order),
                Value::UInt64(0x0102_0304_0506_0708),
                "{order}"
            );
        }
        assert_eq!(
            dec(&[0x0000, 0x0000, 0x0000, 0xBFF8], DataType::Float64, "CDAB"),
            Value::Float64(-1.5)
        );
        assert_eq!(
            dec(
                &[0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF],
                DataType::Int64,
                "ABCDEFGH"
            ),
            Value::Int64(-1)
        );
    }

    #[test]
    fn sixteen_bit_and_strings() {
        assert_eq!(
            dec(&[0x8000], DataType::Int16, "ABCD"),
            Value::Int16(i16::MIN)
        );
        assert_eq!(
            dec(&[0x0080], DataType::Int16, "BADC"),
            Value::Int16(i16::MIN)
        );
        assert_eq!(
            dec(&[0xFFFF], DataType::UInt16, "ABCD"),
            Value::UInt16(65535)
        );
        assert_eq!(dec(&[0x0001], DataType::Bool, "ABCD"), Value::Bool(true));
        // "PUMP-7" in 4 registers (8 characters), high byte first, NUL padded.
        let regs = [0x5055, 0x4D50, 0x2D37, 0x0000];
        assert_eq!(
            decode(&regs, DataType::String, Order::ABCD, 8).unwrap(),
            Value::String("PUMP-7".into())
        );
        assert_eq!(
            encode(
                &Value::String("PUMP-7".into()),
                DataType::String,
                Order::ABCD,
                8
            )
            .unwrap(),
            regs
        );
        let swapped = [0x5550, 0x504D, 0x372D, 0x0000];
        assert_eq!(
            decode(&swapped, DataType::String, Order::BADC, 8).unwrap(),
            Value::String("PUMP-7".into())
        );
        assert!(matches!(
            encode(
                &Value::String("TOO LONG!".into()),
                DataType::String,
                Order::ABCD,
                8
            ),
            Err(CodecError::TooLong { len: 9, max: 8 })
        ));
    }

    #[test]
    fn wrong_lengths_types_and_names_are_errors() {
        assert_eq!(
            decode(&[1], DataType::Float32, Order::ABCD, 0),
            Err(CodecError::Length {
                datatype: DataType::Float32,
                needed: 2,
                got: 1
            })
        );
        assert!(matches!(
            encode(&Value::Int32(1), DataType::Float32, Order::ABCD, 0),
            Err(CodecError::Type { .. })
        ));
    }

    fn any_order() -> impl Strategy<Value = Order> {
        (any::<bool>(), any::<bool>()).prop_map(|(byte_swap, word_swap)| Order {
            byte_swap,
            word_swap,
        })
    }

    #[test]
    fn datetime_and_arrays_have_no_registers() {
        let order = Order::ABCD;
        for t in [DataType::DateTime, DataType::UInt16Array] {
            assert_eq!(register_count(t, 0), 0);
            assert_eq!(decode(&[1], t, order, 0), Err(CodecError::Unsupported(t)));
            let err = encode(&Value::zero(t), t, order, 0).unwrap_err();
            assert_eq!(err, CodecError::Unsupported(t));
            assert!(err.to_string().contains("OPC UA only"), "{err}");
        }
    }

    fn any_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            any::<bool>().prop_map(Value::Bool),
            any::<i8>().prop_map(Value::Int8),
            any::<u8>().prop_map(Value::UInt8),
            any::<i16>().prop_map(Value::Int16),
            any::<u16>().prop_map(Value::UInt16),
            any::<i32>().prop_map(Value::Int32),
            any::<u32>().prop_map(Value::UInt32),
            any::<i64>().prop_map(Value::Int64),
            any::<u64>().prop_map(Value::UInt64),
            any::<f32>()
                .prop_filter("NaN", |f| !f.is_nan())
                .prop_map(Value::Float32),
            any::<f64>()
                .prop_filter("NaN", |f| !f.is_nan())
                .prop_map(Value::Float64),
            "[ -~]{0,20}".prop_map(Value::String),
        ]
    }

    proptest! {
        #[test]
        fn decode_inverts_encode_for_every_type_and_order(value in any_value(), order in any_order()) {
            let t = value.datatype();
            let len = 20;
            let regs = encode(&value, t, order, len).unwrap();
            prop_assert_eq!(regs.len(), register_count(t, len));
            prop_assert_eq!(decode(&regs, t, order, len).unwrap(), value);
        }

        #[test]
        fn decoding_any_registers_never_panics(regs in proptest::collection::vec(any::<u16>(), 0..12), order in any_order()) {
            for t in DataType::ALL {
                let _ = decode(&regs, t, order, regs.len() * 2);
            }
        }
    }
}
