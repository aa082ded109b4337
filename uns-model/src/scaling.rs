//! Linear scaling between what a PLC register holds (the *raw* value, of the tag's register
//! type) and what the tag means (the *engineering* value, of the tag's datatype), and its
//! exact inverse for writes.
//!
//! A tag gives either `gain`/`offset` (`eng = gain · raw + offset`) or two ranges
//! (`raw_low..raw_high` maps linearly onto `eng_low..eng_high`). The raw type is explicit
//! (`raw_type`, e.g. `int16` under a `float32` tag) because the register width, the range a
//! write must fit and the rounding all follow from it, not from the engineering type.

use crate::value::{DataType, Value};

/// `eng = gain · raw + offset`. `gain` is never 0 in a validated model, so the inverse
/// exists.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scaling {
    pub gain: f64,
    pub offset: f64,
}

impl Scaling {
    /// The scaling that maps `raw_low..raw_high` onto `eng_low..eng_high`.
    pub fn from_ranges(raw: (f64, f64), eng: (f64, f64)) -> Scaling {
        let gain = (eng.1 - eng.0) / (raw.1 - raw.0);
        Scaling {
            gain,
            offset: eng.0 - gain * raw.0,
        }
    }

    pub fn to_eng(self, raw: f64) -> f64 {
        self.gain * raw + self.offset
    }

    pub fn to_raw(self, eng: f64) -> f64 {
        (eng - self.offset) / self.gain
    }
}

/// The smallest and largest value of a numeric type, as f64 (`None` for bool, string,
/// datetime and arrays).
pub fn numeric_range(datatype: DataType) -> Option<(f64, f64)> {
    Some(match datatype {
        DataType::Int8 => (i8::MIN.into(), i8::MAX.into()),
        DataType::Int16 => (i16::MIN.into(), i16::MAX.into()),
        DataType::Int32 => (i32::MIN.into(), i32::MAX.into()),
        DataType::Int64 => (i64::MIN as f64, i64::MAX as f64),
        DataType::UInt8 => (0.0, u8::MAX.into()),
        DataType::UInt16 => (0.0, u16::MAX.into()),
        DataType::UInt32 => (0.0, u32::MAX.into()),
        DataType::UInt64 => (0.0, u64::MAX as f64),
        DataType::Float32 => (f64::from(f32::MIN), f64::from(f32::MAX)),
        DataType::Float64 => (f64::MIN, f64::MAX),
        _ => return None,
    })
}

impl Value {
    /// A numeric value as f64 (64-bit integers beyond 2^53 round); `None` for bool, string,
    /// datetime and arrays.
    pub fn as_f64(&self) -> Option<f64> {
        Some(match self {
            Value::Int8(v) => f64::from(*v),
            Value::Int16(v) => f64::from(*v),
            Value::Int32(v) => f64::from(*v),
            Value::Int64(v) => *v as f64,
            Value::UInt8(v) => f64::from(*v),
            Value::UInt16(v) => f64::from(*v),
            Value::UInt32(v) => f64::from(*v),
            Value::UInt64(v) => *v as f64,
            Value::Float32(v) => f64::from(*v),
            Value::Float64(v) => *v,
            Value::Bool(_) | Value::String(_) | Value::DateTime(_) | Value::Array(_) => {
                return None;
            }
        })
    }

    /// `x` as a value of the numeric `datatype`: integers round to the nearest (ties away
    /// from zero); `None` when it is not finite or does not fit.
    pub fn from_f64(x: f64, datatype: DataType) -> Option<Value> {
        if !x.is_finite() {
            return None;
        }
        let (min, max) = numeric_range(datatype)?;
        let v = if datatype.is_integer() { x.round() } else { x };
        // i64::MAX as f64 is 2^63, which does not fit: compare the top end strictly.
        let fits = match datatype {
            DataType::Int64 | DataType::UInt64 => v >= min && v < max,
            _ => v >= min && v <= max,
        };
        if !fits {
            return None;
        }
        Some(match datatype {
            DataType::Int8 => Value::Int8(v as i8),
            DataType::Int16 => Value::Int16(v as i16),
            DataType::Int32 => Value::Int32(v as i32),
            DataType::Int64 => Value::Int64(v as i64),
            DataType::UInt8 => Value::UInt8(v as u8),
            DataType::UInt16 => Value::UInt16(v as u16),
            DataType::UInt32 => Value::UInt32(v as u32),
            DataType::UInt64 => Value::UInt64(v as u64),
            DataType::Float32 => Value::Float32(v as f32),
            DataType::Float64 => Value::Float64(v),
            _ => return None,
        })
    }
}

/// How a tag's raw value becomes its engineering value and back.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conversion {
    /// The type the register holds.
    pub raw_type: DataType,
    /// The tag's type.
    pub datatype: DataType,
    pub scaling: Option<Scaling>,
}

impl Conversion {
    /// Whether raw and engineering values are the same thing (no arithmetic, exact even for
    /// 64-bit integers).
    pub fn is_identity(&self) -> bool {
        self.scaling.is_none() && self.raw_type == self.datatype
    }

    /// The engineering value of a raw reading.
    pub fn to_eng(&self, raw: Value) -> Result<Value, String> {
        if self.is_identity() {
            return Ok(raw);
        }
        let x = raw
            .as_f64()
            .ok_or_else(|| format!("a {} reading cannot be scaled", raw.datatype()))?;
        let eng = self.scaling.map_or(x, |s| s.to_eng(x));
        Value::from_f64(eng, self.datatype).ok_or_else(|| {
            format!(
                "raw {x} scales to {eng}, which does not fit the tag's type {}",
                self.datatype
            )
        })
    }

    /// The raw value to write for engineering value `eng`; refused, naming the value and
    /// the range the register can hold, when it does not fit.
    pub fn to_raw(&self, eng: &Value) -> Result<Value, String> {
        if self.is_identity() {
            return Ok(eng.clone());
        }
        let x = eng.as_f64().ok_or_else(|| {
            format!(
                "a {} value cannot be written to a {} tag",
                eng.datatype(),
                self.datatype
            )
        })?;
        let raw = self.scaling.map_or(x, |s| s.to_raw(x));
        Value::from_f64(raw, self.raw_type).ok_or_else(|| {
            let (low, high) = self.eng_limits();
            format!(
                "{x} is outside what the {} register holds: the engineering range is {low} to {high}",
                self.raw_type
            )
        })
    }

    /// The engineering values the register type can represent, lowest first.
    pub fn eng_limits(&self) -> (f64, f64) {
        let (min, max) = numeric_range(self.raw_type).unwrap_or((f64::MIN, f64::MAX));
        let (a, b) = match self.scaling {
            Some(s) => (s.to_eng(min), s.to_eng(max)),
            None => (min, max),
        };
        (a.min(b), a.max(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn range(raw: (f64, f64), eng: (f64, f64)) -> Conversion {
        Conversion {
            raw_type: DataType::Int16,
            datatype: DataType::Float32,
            scaling: Some(Scaling::from_ranges(raw, eng)),
        }
    }

    #[test]
    fn a_raw_range_maps_onto_the_engineering_range() {
        // A Siemens analog input: 0..27648 is 0..100 %.
        let c = range((0.0, 27648.0), (0.0, 100.0));
        assert_eq!(c.to_eng(Value::Int16(13824)), Ok(Value::Float32(50.0)));
        assert_eq!(c.to_eng(Value::Int16(27648)), Ok(Value::Float32(100.0)));
        assert_eq!(c.to_raw(&Value::Float32(25.0)), Ok(Value::Int16(6912)));
        let err = c.to_raw(&Value::Float32(150.0)).unwrap_err();
        assert!(
            err.starts_with("150 is outside what the int16 register holds"),
            "{err}"
        );
        assert!(
            err.contains("-118.51851851851852 to 118.51490162037037"),
            "{err}"
        );
    }

    #[test]
    fn gain_and_offset_with_integer_types_round_and_check_range() {
        let c = Conversion {
            raw_type: DataType::UInt16,
            datatype: DataType::Int16,
            scaling: Some(Scaling {
                gain: 0.5,
                offset: -40.0,
            }),
        };
        assert_eq!(c.to_eng(Value::UInt16(101)), Ok(Value::Int16(11))); // 10.5 rounds up
        assert_eq!(c.to_raw(&Value::Int16(-40)), Ok(Value::UInt16(0)));
        assert!(c.to_raw(&Value::Int16(-41)).is_err());
        assert_eq!(c.eng_limits(), (-40.0, 32727.5));
        // A raw value whose engineering value does not fit the tag type is an error.
        let narrow = Conversion {
            raw_type: DataType::UInt32,
            datatype: DataType::Int8,
            scaling: None,
        };
        assert!(
            narrow
                .to_eng(Value::UInt32(300))
                .unwrap_err()
                .contains("int8")
        );
        assert!(
            narrow
                .to_raw(&Value::String("x".into()))
                .unwrap_err()
                .contains("cannot be written")
        );
    }

    #[test]
    fn no_scaling_and_one_type_is_exact_for_64_bit_integers() {
        let c = Conversion {
            raw_type: DataType::UInt64,
            datatype: DataType::UInt64,
            scaling: None,
        };
        assert_eq!(
            c.to_eng(Value::UInt64(u64::MAX)),
            Ok(Value::UInt64(u64::MAX))
        );
        assert_eq!(Value::from_f64(2f64.powi(63), DataType::Int64), None);
        assert_eq!(Value::from_f64(f64::NAN, DataType::Float64), None);
    }

    fn int_type() -> impl Strategy<Value = DataType> {
        prop_oneof![
            Just(DataType::Int16),
            Just(DataType::UInt16),
            Just(DataType::Int32),
            Just(DataType::UInt32),
        ]
    }

    proptest! {
        /// Writing back what was read puts the same raw value in the register: the inverse
        /// is exact on every raw integer, for any sane scaling.
        #[test]
        fn writing_back_a_reading_restores_the_register(
            raw_type in int_type(),
            raw in any::<i64>(),
            gain in prop_oneof![0.001f64..1000.0, -1000.0f64..-0.001],
            offset in -1e6f64..1e6,
        ) {
            let (min, max) = numeric_range(raw_type).unwrap();
            let raw = (raw as f64).clamp(min, max).round();
            let c = Conversion {
                raw_type,
                datatype: DataType::Float64,
                scaling: Some(Scaling { gain, offset }),
            };
            let raw_value = Value::from_f64(raw, raw_type).unwrap();
            let eng = c.to_eng(raw_value.clone()).unwrap();
            prop_assert_eq!(c.to_raw(&eng), Ok(raw_value));
        }
    }
}
