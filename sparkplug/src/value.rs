//! Metric values and their mapping onto the Sparkplug B value fields (spec §3.2).
//!
//! Signed integers travel as two's-complement bit patterns in the unsigned protobuf fields:
//! an Int8 of -1 is `int_value = 0xFFFF_FFFF`, never `0xFF`. UInt32 is sent in `long_value`
//! (what Tahu and Ignition read) and accepted from either field.

use crate::proto::payload::metric::Value as Field;

/// Sparkplug B data types with their wire codes (spec §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum DataType {
    Int8 = 1,
    Int16 = 2,
    Int32 = 3,
    Int64 = 4,
    UInt8 = 5,
    UInt16 = 6,
    UInt32 = 7,
    UInt64 = 8,
    Float = 9,
    Double = 10,
    Boolean = 11,
    String = 12,
    DateTime = 13,
    Text = 14,
    Uuid = 15,
    Bytes = 17,
}

impl DataType {
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The data type for a wire code, or `None` for codes this codec does not carry.
    pub fn from_code(code: u32) -> Option<DataType> {
        use DataType::*;
        Some(match code {
            1 => Int8,
            2 => Int16,
            3 => Int32,
            4 => Int64,
            5 => UInt8,
            6 => UInt16,
            7 => UInt32,
            8 => UInt64,
            9 => Float,
            10 => Double,
            11 => Boolean,
            12 => String,
            13 => DateTime,
            14 => Text,
            15 => Uuid,
            17 => Bytes,
            _ => return None,
        })
    }
}

/// A typed metric value.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricValue {
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    UInt8(u8),
    UInt16(u16),
    UInt32(u32),
    UInt64(u64),
    Float(f32),
    Double(f64),
    Boolean(bool),
    String(String),
    /// Milliseconds since the Unix epoch, UTC.
    DateTime(u64),
    Text(String),
    Uuid(String),
    Bytes(Vec<u8>),
}

/// Metric quality as the `Quality` property carries it (spec §3.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Quality {
    Bad,
    Good,
    Stale,
}

impl Quality {
    /// The property value: 0 = BAD, 192 = GOOD, 500 = STALE.
    pub fn code(self) -> u32 {
        match self {
            Quality::Bad => 0,
            Quality::Good => 192,
            Quality::Stale => 500,
        }
    }
}

/// A value field that does not fit the metric's data type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    #[error("datatype {0} is not one this edge node accepts")]
    UnsupportedType(u32),
    #[error("a {datatype:?} value must be in {expected}, the metric carries {found}")]
    WrongField {
        datatype: DataType,
        expected: &'static str,
        found: &'static str,
    },
    #[error("{value} does not fit in {datatype:?}")]
    OutOfRange { datatype: DataType, value: u64 },
    #[error("the metric has no value")]
    Missing,
}

impl MetricValue {
    pub fn datatype(&self) -> DataType {
        match self {
            MetricValue::Int8(_) => DataType::Int8,
            MetricValue::Int16(_) => DataType::Int16,
            MetricValue::Int32(_) => DataType::Int32,
            MetricValue::Int64(_) => DataType::Int64,
            MetricValue::UInt8(_) => DataType::UInt8,
            MetricValue::UInt16(_) => DataType::UInt16,
            MetricValue::UInt32(_) => DataType::UInt32,
            MetricValue::UInt64(_) => DataType::UInt64,
            MetricValue::Float(_) => DataType::Float,
            MetricValue::Double(_) => DataType::Double,
            MetricValue::Boolean(_) => DataType::Boolean,
            MetricValue::String(_) => DataType::String,
            MetricValue::DateTime(_) => DataType::DateTime,
            MetricValue::Text(_) => DataType::Text,
            MetricValue::Uuid(_) => DataType::Uuid,
            MetricValue::Bytes(_) => DataType::Bytes,
        }
    }

    /// The protobuf value field for this value.
    pub fn to_field(&self) -> Field {
        match self {
            MetricValue::Int8(v) => Field::IntValue(i32::from(*v) as u32),
            MetricValue::Int16(v) => Field::IntValue(i32::from(*v) as u32),
            MetricValue::Int32(v) => Field::IntValue(*v as u32),
            MetricValue::Int64(v) => Field::LongValue(*v as u64),
            MetricValue::UInt8(v) => Field::IntValue(u32::from(*v)),
            MetricValue::UInt16(v) => Field::IntValue(u32::from(*v)),
            MetricValue::UInt32(v) => Field::LongValue(u64::from(*v)),
            MetricValue::UInt64(v) => Field::LongValue(*v),
            MetricValue::Float(v) => Field::FloatValue(*v),
            MetricValue::Double(v) => Field::DoubleValue(*v),
            MetricValue::Boolean(v) => Field::BooleanValue(*v),
            MetricValue::String(v) | MetricValue::Text(v) | MetricValue::Uuid(v) => {
                Field::StringValue(v.clone())
            }
            MetricValue::DateTime(v) => Field::LongValue(*v),
            MetricValue::Bytes(v) => Field::BytesValue(v.clone()),
        }
    }

    /// Reads a value of `datatype` from a protobuf value field, refusing a field that does
    /// not belong to the type and integers that do not fit.
    pub fn from_field(
        datatype: DataType,
        field: Option<&Field>,
    ) -> Result<MetricValue, ValueError> {
        let field = field.ok_or(ValueError::Missing)?;
        let wrong = |expected| ValueError::WrongField {
            datatype,
            expected,
            found: field_name(field),
        };
        // Small integers arrive sign-extended (or zero-extended) to 32 bits; anything that
        // does not round-trip through the narrow type is out of range.
        let narrow = |v: u32| -> Result<i64, ValueError> {
            let s = v as i32;
            let ok = match datatype {
                DataType::Int8 => i8::try_from(s).is_ok(),
                DataType::Int16 => i16::try_from(s).is_ok(),
                DataType::UInt8 => u8::try_from(v).is_ok(),
                DataType::UInt16 => u16::try_from(v).is_ok(),
                _ => true,
            };
            if ok {
                Ok(i64::from(s))
            } else {
                Err(ValueError::OutOfRange {
                    datatype,
                    value: u64::from(v),
                })
            }
        };
        Ok(match (datatype, field) {
            (DataType::Int8, Field::IntValue(v)) => MetricValue::Int8(narrow(*v)? as i8),
            (DataType::Int16, Field::IntValue(v)) => MetricValue::Int16(narrow(*v)? as i16),
            (DataType::Int32, Field::IntValue(v)) => MetricValue::Int32(*v as i32),
            (DataType::UInt8, Field::IntValue(v)) => MetricValue::UInt8(narrow(*v)? as u8),
            (DataType::UInt16, Field::IntValue(v)) => MetricValue::UInt16(narrow(*v)? as u16),
            (DataType::UInt32, Field::IntValue(v)) => MetricValue::UInt32(*v),
            (DataType::UInt32, Field::LongValue(v)) => {
                MetricValue::UInt32(u32::try_from(*v).map_err(|_| ValueError::OutOfRange {
                    datatype,
                    value: *v,
                })?)
            }
            (DataType::Int64, Field::LongValue(v)) => MetricValue::Int64(*v as i64),
            (DataType::UInt64, Field::LongValue(v)) => MetricValue::UInt64(*v),
            (DataType::DateTime, Field::LongValue(v)) => MetricValue::DateTime(*v),
            (DataType::Float, Field::FloatValue(v)) => MetricValue::Float(*v),
            (DataType::Double, Field::DoubleValue(v)) => MetricValue::Double(*v),
            (DataType::Boolean, Field::BooleanValue(v)) => MetricValue::Boolean(*v),
            (DataType::String, Field::StringValue(v)) => MetricValue::String(v.clone()),
            (DataType::Text, Field::StringValue(v)) => MetricValue::Text(v.clone()),
            (DataType::Uuid, Field::StringValue(v)) => MetricValue::Uuid(v.clone()),
            (DataType::Bytes, Field::BytesValue(v)) => MetricValue::Bytes(v.clone()),
            (
                DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::UInt8
                | DataType::UInt16,
                _,
            ) => return Err(wrong("int_value")),
            (DataType::UInt32, _) => return Err(wrong("int_value or long_value")),
            (DataType::Int64 | DataType::UInt64 | DataType::DateTime, _) => {
                return Err(wrong("long_value"));
            }
            (DataType::Float, _) => return Err(wrong("float_value")),
            (DataType::Double, _) => return Err(wrong("double_value")),
            (DataType::Boolean, _) => return Err(wrong("boolean_value")),
            (DataType::String | DataType::Text | DataType::Uuid, _) => {
                return Err(wrong("string_value"));
            }
            (DataType::Bytes, _) => return Err(wrong("bytes_value")),
        })
    }
}

fn field_name(field: &Field) -> &'static str {
    match field {
        Field::IntValue(_) => "int_value",
        Field::LongValue(_) => "long_value",
        Field::FloatValue(_) => "float_value",
        Field::DoubleValue(_) => "double_value",
        Field::BooleanValue(_) => "boolean_value",
        Field::StringValue(_) => "string_value",
        Field::BytesValue(_) => "bytes_value",
        Field::DatasetValue(_) => "dataset_value",
        Field::TemplateValue(_) => "template_value",
        Field::ExtensionValue(_) => "extension_value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn negative_small_integers_are_sign_extended_to_32_bits() {
        assert_eq!(
            MetricValue::Int8(-1).to_field(),
            Field::IntValue(0xFFFF_FFFF)
        );
        assert_eq!(
            MetricValue::Int16(-2).to_field(),
            Field::IntValue(0xFFFF_FFFE)
        );
        assert_eq!(
            MetricValue::Int64(-1).to_field(),
            Field::LongValue(u64::MAX)
        );
    }

    #[test]
    fn uint32_is_sent_as_long_and_accepted_from_both_fields() {
        assert_eq!(MetricValue::UInt32(7).to_field(), Field::LongValue(7));
        for field in [Field::IntValue(7), Field::LongValue(7)] {
            assert_eq!(
                MetricValue::from_field(DataType::UInt32, Some(&field)),
                Ok(MetricValue::UInt32(7))
            );
        }
        assert!(matches!(
            MetricValue::from_field(DataType::UInt32, Some(&Field::LongValue(1 << 40))),
            Err(ValueError::OutOfRange { .. })
        ));
    }

    #[test]
    fn wrong_field_names_what_was_expected() {
        let err =
            MetricValue::from_field(DataType::Boolean, Some(&Field::IntValue(1))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a Boolean value must be in boolean_value, the metric carries int_value"
        );
        assert!(matches!(
            MetricValue::from_field(DataType::Int8, Some(&Field::IntValue(300))),
            Err(ValueError::OutOfRange { .. })
        ));
    }

    fn any_value() -> impl Strategy<Value = MetricValue> {
        prop_oneof![
            any::<i8>().prop_map(MetricValue::Int8),
            any::<i16>().prop_map(MetricValue::Int16),
            any::<i32>().prop_map(MetricValue::Int32),
            any::<i64>().prop_map(MetricValue::Int64),
            any::<u8>().prop_map(MetricValue::UInt8),
            any::<u16>().prop_map(MetricValue::UInt16),
            any::<u32>().prop_map(MetricValue::UInt32),
            any::<u64>().prop_map(MetricValue::UInt64),
            any::<f32>()
                .prop_filter("NaN != NaN", |f| !f.is_nan())
                .prop_map(MetricValue::Float),
            any::<f64>()
                .prop_filter("NaN != NaN", |f| !f.is_nan())
                .prop_map(MetricValue::Double),
            any::<bool>().prop_map(MetricValue::Boolean),
            ".*".prop_map(MetricValue::String),
            any::<u64>().prop_map(MetricValue::DateTime),
            ".*".prop_map(MetricValue::Text),
            ".*".prop_map(MetricValue::Uuid),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(MetricValue::Bytes),
        ]
    }

    proptest! {
        #[test]
        fn every_value_round_trips_through_its_field(v in any_value()) {
            let field = v.to_field();
            prop_assert_eq!(MetricValue::from_field(v.datatype(), Some(&field)), Ok(v.clone()));
            prop_assert_eq!(DataType::from_code(v.datatype().code()), Some(v.datatype()));
        }
    }
}
