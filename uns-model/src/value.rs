//! Values as they travel from a driver to the sinks: typed, with quality and acquisition time.

use serde::{Deserialize, Serialize};

/// The data type of a tag, as configured. Names are the ones users type in TOML and CSV:
/// the scalar types (`float32`, `datetime`…) and a one-dimensional array of each, written
/// with `[]` after the element type (`float32[]`, `string[]`), as in most PLC languages.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Float32,
    Float64,
    String,
    /// A point in time, UTC, to the millisecond (OPC UA DateTime, Sparkplug DateTime).
    DateTime,
    #[serde(rename = "bool[]")]
    BoolArray,
    #[serde(rename = "int8[]")]
    Int8Array,
    #[serde(rename = "int16[]")]
    Int16Array,
    #[serde(rename = "int32[]")]
    Int32Array,
    #[serde(rename = "int64[]")]
    Int64Array,
    #[serde(rename = "uint8[]")]
    UInt8Array,
    #[serde(rename = "uint16[]")]
    UInt16Array,
    #[serde(rename = "uint32[]")]
    UInt32Array,
    #[serde(rename = "uint64[]")]
    UInt64Array,
    #[serde(rename = "float32[]")]
    Float32Array,
    #[serde(rename = "float64[]")]
    Float64Array,
    #[serde(rename = "string[]")]
    StringArray,
    #[serde(rename = "datetime[]")]
    DateTimeArray,
}

impl DataType {
    /// Each scalar type with the array type of its elements, in the order users see them
    /// listed: the one table the lists and conversions below are derived from.
    const PAIRS: [(DataType, DataType); 13] = [
        (DataType::Bool, DataType::BoolArray),
        (DataType::Int8, DataType::Int8Array),
        (DataType::Int16, DataType::Int16Array),
        (DataType::Int32, DataType::Int32Array),
        (DataType::Int64, DataType::Int64Array),
        (DataType::UInt8, DataType::UInt8Array),
        (DataType::UInt16, DataType::UInt16Array),
        (DataType::UInt32, DataType::UInt32Array),
        (DataType::UInt64, DataType::UInt64Array),
        (DataType::Float32, DataType::Float32Array),
        (DataType::Float64, DataType::Float64Array),
        (DataType::String, DataType::StringArray),
        (DataType::DateTime, DataType::DateTimeArray),
    ];

    /// The scalar types, in the order users see them listed.
    pub const SCALARS: [DataType; 13] = {
        let mut out = [DataType::Bool; 13];
        let mut i = 0;
        while i < out.len() {
            out[i] = DataType::PAIRS[i].0;
            i += 1;
        }
        out
    };

    /// Every data type: the scalars, then the array of each in the same order.
    pub const ALL: [DataType; 26] = {
        let mut out = [DataType::Bool; 26];
        let mut i = 0;
        while i < DataType::PAIRS.len() {
            out[i] = DataType::PAIRS[i].0;
            out[i + DataType::PAIRS.len()] = DataType::PAIRS[i].1;
            i += 1;
        }
        out
    };

    /// The name used in TOML, CSV and UNS payloads (`"float32"`, `"float32[]"`).
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Bool => "bool",
            DataType::Int8 => "int8",
            DataType::Int16 => "int16",
            DataType::Int32 => "int32",
            DataType::Int64 => "int64",
            DataType::UInt8 => "uint8",
            DataType::UInt16 => "uint16",
            DataType::UInt32 => "uint32",
            DataType::UInt64 => "uint64",
            DataType::Float32 => "float32",
            DataType::Float64 => "float64",
            DataType::String => "string",
            DataType::DateTime => "datetime",
            DataType::BoolArray => "bool[]",
            DataType::Int8Array => "int8[]",
            DataType::Int16Array => "int16[]",
            DataType::Int32Array => "int32[]",
            DataType::Int64Array => "int64[]",
            DataType::UInt8Array => "uint8[]",
            DataType::UInt16Array => "uint16[]",
            DataType::UInt32Array => "uint32[]",
            DataType::UInt64Array => "uint64[]",
            DataType::Float32Array => "float32[]",
            DataType::Float64Array => "float64[]",
            DataType::StringArray => "string[]",
            DataType::DateTimeArray => "datetime[]",
        }
    }

    /// The array type whose elements are of this scalar type; `None` for an array type
    /// (arrays do not nest).
    pub fn array(self) -> Option<DataType> {
        DataType::PAIRS
            .iter()
            .find(|(scalar, _)| *scalar == self)
            .map(|(_, array)| *array)
    }

    /// The type of an array's elements; a scalar type is its own element type.
    pub fn element(self) -> DataType {
        DataType::PAIRS
            .iter()
            .find(|(_, array)| *array == self)
            .map_or(self, |(scalar, _)| *scalar)
    }

    pub fn is_array(self) -> bool {
        self.element() != self
    }

    /// The scalar integer types (not datetime, though it is a count of milliseconds: it is
    /// neither scaled nor given a deadband).
    pub fn is_integer(self) -> bool {
        matches!(
            self,
            DataType::Int8
                | DataType::Int16
                | DataType::Int32
                | DataType::Int64
                | DataType::UInt8
                | DataType::UInt16
                | DataType::UInt32
                | DataType::UInt64
        )
    }

    pub fn is_float(self) -> bool {
        matches!(self, DataType::Float32 | DataType::Float64)
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for DataType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DataType::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| {
                let allowed: Vec<&str> = DataType::ALL.iter().map(|t| t.as_str()).collect();
                format!("unknown data type {s:?}; allowed: {}", allowed.join(", "))
            })
    }
}

/// A typed tag value. The variant always matches the tag's [`DataType`].
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    Int8(i8),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    UInt8(u8),
    UInt16(u16),
    UInt32(u32),
    UInt64(u64),
    Float32(f32),
    Float64(f64),
    String(String),
    /// Milliseconds since the Unix epoch, UTC (as Sparkplug carries a DateTime).
    DateTime(u64),
    /// Boxed: a `Vec` beside the `String` would grow every value from 24 to 32 bytes, and
    /// the hub and every mailbox hold a value per tag, for arrays and scalars alike.
    Array(Box<Array>),
}

/// The elements of an array value, all of one scalar type; the variant names it.
#[derive(Clone, Debug, PartialEq)]
pub enum Array {
    Bool(Vec<bool>),
    Int8(Vec<i8>),
    Int16(Vec<i16>),
    Int32(Vec<i32>),
    Int64(Vec<i64>),
    UInt8(Vec<u8>),
    UInt16(Vec<u16>),
    UInt32(Vec<u32>),
    UInt64(Vec<u64>),
    Float32(Vec<f32>),
    Float64(Vec<f64>),
    String(Vec<String>),
    /// Milliseconds since the Unix epoch, UTC.
    DateTime(Vec<u64>),
}

impl Array {
    /// An empty array with elements of `datatype`'s element type, room for `capacity`.
    pub fn with_capacity(datatype: DataType, capacity: usize) -> Array {
        let n = capacity;
        match datatype.element() {
            DataType::Bool => Array::Bool(Vec::with_capacity(n)),
            DataType::Int8 => Array::Int8(Vec::with_capacity(n)),
            DataType::Int16 => Array::Int16(Vec::with_capacity(n)),
            DataType::Int32 => Array::Int32(Vec::with_capacity(n)),
            DataType::Int64 => Array::Int64(Vec::with_capacity(n)),
            DataType::UInt8 => Array::UInt8(Vec::with_capacity(n)),
            DataType::UInt16 => Array::UInt16(Vec::with_capacity(n)),
            DataType::UInt32 => Array::UInt32(Vec::with_capacity(n)),
            DataType::UInt64 => Array::UInt64(Vec::with_capacity(n)),
            DataType::Float32 => Array::Float32(Vec::with_capacity(n)),
            DataType::Float64 => Array::Float64(Vec::with_capacity(n)),
            DataType::String => Array::String(Vec::with_capacity(n)),
            // `element()` of any type is a scalar, so this arm is datetime.
            _ => Array::DateTime(Vec::with_capacity(n)),
        }
    }

    /// The array's own type (`float32[]`).
    pub fn datatype(&self) -> DataType {
        match self {
            Array::Bool(_) => DataType::BoolArray,
            Array::Int8(_) => DataType::Int8Array,
            Array::Int16(_) => DataType::Int16Array,
            Array::Int32(_) => DataType::Int32Array,
            Array::Int64(_) => DataType::Int64Array,
            Array::UInt8(_) => DataType::UInt8Array,
            Array::UInt16(_) => DataType::UInt16Array,
            Array::UInt32(_) => DataType::UInt32Array,
            Array::UInt64(_) => DataType::UInt64Array,
            Array::Float32(_) => DataType::Float32Array,
            Array::Float64(_) => DataType::Float64Array,
            Array::String(_) => DataType::StringArray,
            Array::DateTime(_) => DataType::DateTimeArray,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Array::Bool(v) => v.len(),
            Array::Int8(v) => v.len(),
            Array::Int16(v) => v.len(),
            Array::Int32(v) => v.len(),
            Array::Int64(v) => v.len(),
            Array::UInt8(v) => v.len(),
            Array::UInt16(v) => v.len(),
            Array::UInt32(v) => v.len(),
            Array::UInt64(v) => v.len(),
            Array::Float32(v) => v.len(),
            Array::Float64(v) => v.len(),
            Array::String(v) => v.len(),
            Array::DateTime(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i` as a scalar value.
    pub fn get(&self, i: usize) -> Option<Value> {
        Some(match self {
            Array::Bool(v) => Value::Bool(*v.get(i)?),
            Array::Int8(v) => Value::Int8(*v.get(i)?),
            Array::Int16(v) => Value::Int16(*v.get(i)?),
            Array::Int32(v) => Value::Int32(*v.get(i)?),
            Array::Int64(v) => Value::Int64(*v.get(i)?),
            Array::UInt8(v) => Value::UInt8(*v.get(i)?),
            Array::UInt16(v) => Value::UInt16(*v.get(i)?),
            Array::UInt32(v) => Value::UInt32(*v.get(i)?),
            Array::UInt64(v) => Value::UInt64(*v.get(i)?),
            Array::Float32(v) => Value::Float32(*v.get(i)?),
            Array::Float64(v) => Value::Float64(*v.get(i)?),
            Array::String(v) => Value::String(v.get(i)?.clone()),
            Array::DateTime(v) => Value::DateTime(*v.get(i)?),
        })
    }

    /// The elements as scalar values, in order.
    pub fn iter(&self) -> impl Iterator<Item = Value> + '_ {
        (0..self.len()).map_while(|i| self.get(i))
    }

    /// Appends `value`; gives it back when it is not of the element type.
    pub fn push(&mut self, value: Value) -> Result<(), Value> {
        match (self, value) {
            (Array::Bool(v), Value::Bool(x)) => v.push(x),
            (Array::Int8(v), Value::Int8(x)) => v.push(x),
            (Array::Int16(v), Value::Int16(x)) => v.push(x),
            (Array::Int32(v), Value::Int32(x)) => v.push(x),
            (Array::Int64(v), Value::Int64(x)) => v.push(x),
            (Array::UInt8(v), Value::UInt8(x)) => v.push(x),
            (Array::UInt16(v), Value::UInt16(x)) => v.push(x),
            (Array::UInt32(v), Value::UInt32(x)) => v.push(x),
            (Array::UInt64(v), Value::UInt64(x)) => v.push(x),
            (Array::Float32(v), Value::Float32(x)) => v.push(x),
            (Array::Float64(v), Value::Float64(x)) => v.push(x),
            (Array::String(v), Value::String(x)) => v.push(x),
            (Array::DateTime(v), Value::DateTime(x)) => v.push(x),
            (_, other) => return Err(other),
        }
        Ok(())
    }
}

impl From<Array> for Value {
    fn from(array: Array) -> Value {
        Value::Array(Box::new(array))
    }
}

/// The RFC 3339 text of a datetime value, UTC, to the millisecond
/// (`2026-03-01T06:30:00.000Z`); `None` beyond the years RFC 3339 can write.
pub fn datetime_text(ms: u64) -> Option<String> {
    let t = chrono::DateTime::from_timestamp_millis(i64::try_from(ms).ok()?)?;
    (t.timestamp() <= LAST_RFC3339_S)
        .then(|| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
}

/// 9999-12-31T23:59:59Z: RFC 3339 has four-digit years.
const LAST_RFC3339_S: i64 = 253_402_300_799;

/// Milliseconds since the Unix epoch of RFC 3339 text (any offset); an error names the
/// text and the form.
pub fn parse_datetime(text: &str) -> Result<u64, String> {
    let t = chrono::DateTime::parse_from_rfc3339(text).map_err(|e| {
        format!("{text:?} is not an RFC 3339 time ({e}); write e.g. 2026-03-01T06:30:00.000Z")
    })?;
    u64::try_from(t.timestamp_millis())
        .map_err(|_| format!("{text:?} is before 1970-01-01T00:00:00Z, the earliest datetime"))
}

impl Value {
    pub fn datatype(&self) -> DataType {
        match self {
            Value::Bool(_) => DataType::Bool,
            Value::Int8(_) => DataType::Int8,
            Value::Int16(_) => DataType::Int16,
            Value::Int32(_) => DataType::Int32,
            Value::Int64(_) => DataType::Int64,
            Value::UInt8(_) => DataType::UInt8,
            Value::UInt16(_) => DataType::UInt16,
            Value::UInt32(_) => DataType::UInt32,
            Value::UInt64(_) => DataType::UInt64,
            Value::Float32(_) => DataType::Float32,
            Value::Float64(_) => DataType::Float64,
            Value::String(_) => DataType::String,
            Value::DateTime(_) => DataType::DateTime,
            Value::Array(a) => a.datatype(),
        }
    }

    /// The value a tag of `datatype` starts with before anything is known or written:
    /// zero, false, the empty string, the Unix epoch, the empty array.
    pub fn zero(datatype: DataType) -> Value {
        match datatype {
            DataType::Bool => Value::Bool(false),
            DataType::Int8 => Value::Int8(0),
            DataType::Int16 => Value::Int16(0),
            DataType::Int32 => Value::Int32(0),
            DataType::Int64 => Value::Int64(0),
            DataType::UInt8 => Value::UInt8(0),
            DataType::UInt16 => Value::UInt16(0),
            DataType::UInt32 => Value::UInt32(0),
            DataType::UInt64 => Value::UInt64(0),
            DataType::Float32 => Value::Float32(0.0),
            DataType::Float64 => Value::Float64(0.0),
            DataType::String => Value::String(String::new()),
            DataType::DateTime => Value::DateTime(0),
            array => Array::with_capacity(array, 0).into(),
        }
    }

    /// The JSON form used in UNS payloads and the web UI. Non-finite floats have no JSON
    /// number, so they become `null` rather than an invalid document. Arrays are JSON
    /// arrays of their elements.
    ///
    /// A datetime is RFC 3339 text in UTC (`"2026-03-01T06:30:00.000Z"`), not epoch
    /// milliseconds: JSON has no time type, and the text is what MES and historian
    /// consumers parse as a time without a schema (ISO 8601 is OPC UA's own JSON encoding
    /// of DateTime, Part 6 5.4.2.6), cannot be mistaken for a counter, and sorts as text.
    /// The payload's `timestamp` stays epoch milliseconds: that is metadata every sample
    /// has, compared and subtracted by machines.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match self {
            Value::Bool(v) => J::Bool(*v),
            Value::Int8(v) => J::from(*v),
            Value::Int16(v) => J::from(*v),
            Value::Int32(v) => J::from(*v),
            Value::Int64(v) => J::from(*v),
            Value::UInt8(v) => J::from(*v),
            Value::UInt16(v) => J::from(*v),
            Value::UInt32(v) => J::from(*v),
            Value::UInt64(v) => J::from(*v),
            // f32 → f64 widening would print 21.700000762939453; go through the shortest
            // decimal form of the f32 instead, which is what the PLC engineer typed.
            Value::Float32(v) => v
                .to_string()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map_or(J::Null, J::Number),
            Value::Float64(v) => serde_json::Number::from_f64(*v).map_or(J::Null, J::Number),
            Value::String(v) => J::String(v.clone()),
            // Past year 9999 there is no RFC 3339 text; the milliseconds are still the value.
            Value::DateTime(ms) => datetime_text(*ms).map_or(J::from(*ms), J::String),
            Value::Array(a) => J::Array(a.iter().map(|v| v.to_json()).collect()),
        }
    }

    /// Converts a JSON value (from the web UI or a UNS write) into a value of `datatype`,
    /// refusing anything that does not fit exactly. A datetime is RFC 3339 text or epoch
    /// milliseconds; an array is a JSON array whose every element fits the element type.
    pub fn from_json(datatype: DataType, json: &serde_json::Value) -> Result<Value, String> {
        use serde_json::Value as J;
        if datatype.is_array() {
            let J::Array(items) = json else {
                return Err(format!("{json} is not a JSON array; {datatype} needs one"));
            };
            let mut array = Array::with_capacity(datatype, items.len());
            for (i, item) in items.iter().enumerate() {
                let element = Value::from_json(datatype.element(), item)
                    .map_err(|e| format!("element {i} of {datatype}: {e}"))?;
                // from_json returned a value of the element type, which push accepts.
                let _ = array.push(element);
            }
            return Ok(array.into());
        }
        let int = || -> Result<i128, String> {
            match json {
                J::Number(n) if n.is_i64() => Ok(i128::from(n.as_i64().unwrap_or_default())),
                J::Number(n) if n.is_u64() => Ok(i128::from(n.as_u64().unwrap_or_default())),
                _ => Err(format!("{json} is not an integer; {datatype} needs one")),
            }
        };
        let range = |v: i128, min: i128, max: i128| {
            if (min..=max).contains(&v) {
                Ok(v)
            } else {
                Err(format!(
                    "{v} is out of range for {datatype} ({min}..={max})"
                ))
            }
        };
        Ok(match datatype {
            DataType::Bool => match json {
                J::Bool(b) => Value::Bool(*b),
                _ => return Err(format!("{json} is not true or false")),
            },
            DataType::Int8 => Value::Int8(range(int()?, i8::MIN.into(), i8::MAX.into())? as i8),
            DataType::Int16 => {
                Value::Int16(range(int()?, i16::MIN.into(), i16::MAX.into())? as i16)
            }
            DataType::Int32 => {
                Value::Int32(range(int()?, i32::MIN.into(), i32::MAX.into())? as i32)
            }
            DataType::Int64 => {
                Value::Int64(range(int()?, i64::MIN.into(), i64::MAX.into())? as i64)
            }
            DataType::UInt8 => Value::UInt8(range(int()?, 0, u8::MAX.into())? as u8),
            DataType::UInt16 => Value::UInt16(range(int()?, 0, u16::MAX.into())? as u16),
            DataType::UInt32 => Value::UInt32(range(int()?, 0, u32::MAX.into())? as u32),
            DataType::UInt64 => Value::UInt64(range(int()?, 0, u64::MAX.into())? as u64),
            DataType::Float32 | DataType::Float64 => {
                let f = json
                    .as_f64()
                    .ok_or_else(|| format!("{json} is not a number; {datatype} needs one"))?;
                if datatype == DataType::Float32 {
                    Value::Float32(f as f32)
                } else {
                    Value::Float64(f)
                }
            }
            DataType::String => match json {
                J::String(s) => Value::String(s.clone()),
                _ => return Err(format!("{json} is not a string")),
            },
            DataType::DateTime => match json {
                J::String(s) => Value::DateTime(parse_datetime(s)?),
                J::Number(_) => Value::DateTime(range(int()?, 0, u64::MAX.into()).map_err(|_| {
                    format!("{json} is not a datetime: give RFC 3339 text or milliseconds since 1970 (0 or more)")
                })? as u64),
                _ => {
                    return Err(format!(
                        "{json} is not a datetime: give RFC 3339 text like \
                         \"2026-03-01T06:30:00.000Z\" or milliseconds since 1970"
                    ));
                }
            },
            // Arrays returned above.
            array => return Err(format!("{json}: {array} is not a scalar type")),
        })
    }
}

/// How far a value can be trusted. Every sample carries one, through every sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    /// Read from the PLC on the last attempt.
    Good,
    /// Read from the PLC on the last attempt, but the source says the value should not be
    /// fully trusted (OPC UA Uncertain: a sensor out of calibration, the last usable value,
    /// a substituted value). The sample carries that value: an operator may still act on it
    /// where no value at all would leave them blind.
    Uncertain,
    /// The last read failed; the value is the last one read (good or uncertain), if any.
    Bad,
    /// The device is unreachable or the value has not been refreshed when it should have been.
    Stale,
}

impl Quality {
    /// The name in UNS payloads, the REST API and the web view (`"uncertain"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Good => "good",
            Quality::Uncertain => "uncertain",
            Quality::Bad => "bad",
            Quality::Stale => "stale",
        }
    }
}

/// Index of a tag in the running model ([`crate::Model::tags`]). Dense, so sinks can keep
/// per-tag state in vectors rather than maps; valid only for the model it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagId(pub u32);

impl TagId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One reading of one tag, as a driver produced it.
#[derive(Clone, Debug, PartialEq)]
pub struct TagSample {
    pub tag: TagId,
    /// `None` when the tag has never been read successfully.
    pub value: Option<Value>,
    pub quality: Quality,
    /// Acquisition time at the PLC side, milliseconds since the Unix epoch (UTC).
    pub timestamp_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_value_stays_as_small_as_a_string() {
        // The hub, the web view and every sink mailbox hold one value per tag.
        assert!(size_of::<Value>() <= size_of::<String>());
    }

    #[test]
    fn every_type_has_one_name_and_arrays_pair_with_their_elements() {
        for dt in DataType::ALL {
            assert_eq!(dt.as_str().parse::<DataType>(), Ok(dt));
            let toml = toml::Value::try_from(dt).unwrap();
            assert_eq!(toml.as_str(), Some(dt.as_str()), "serde and as_str agree");
            assert_eq!(Value::zero(dt).datatype(), dt);
        }
        for scalar in DataType::SCALARS {
            let array = scalar.array().unwrap();
            assert!(array.is_array() && !scalar.is_array());
            assert_eq!(array.element(), scalar);
            assert_eq!(array.as_str(), format!("{scalar}[]"));
            assert_eq!(array.array(), None, "arrays do not nest");
        }
        let err = "float32[][]".parse::<DataType>().unwrap_err();
        assert!(
            err.contains("\"float32[][]\"") && err.contains("datetime[]"),
            "{err}"
        );
        assert!(!DataType::DateTime.is_integer() && !DataType::Int32Array.is_integer());
    }

    #[test]
    fn datetimes_are_rfc3339_utc_text_in_json() {
        let t = Value::DateTime(1_772_346_600_123);
        assert_eq!(t.to_json(), json!("2026-03-01T06:30:00.123Z"));
        assert_eq!(
            Value::from_json(DataType::DateTime, &t.to_json()),
            Ok(t.clone())
        );
        // Other offsets and epoch milliseconds are accepted on writes.
        let offset = json!("2026-03-01T07:30:00.123+01:00");
        assert_eq!(Value::from_json(DataType::DateTime, &offset), Ok(t.clone()));
        let ms = json!(1_772_346_600_123u64);
        assert_eq!(Value::from_json(DataType::DateTime, &ms), Ok(t));
        for (bad, says) in [
            (json!("yesterday"), "RFC 3339"),
            (json!("1969-12-31T23:59:59Z"), "before 1970"),
            (json!(-1), "0 or more"),
            (json!(true), "not a datetime"),
        ] {
            let err = Value::from_json(DataType::DateTime, &bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
        // Beyond year 9999 RFC 3339 has no text; the number is kept rather than lost.
        assert_eq!(Value::DateTime(u64::MAX).to_json(), json!(u64::MAX));
        assert_eq!(
            Value::DateTime(0).to_json(),
            json!("1970-01-01T00:00:00.000Z")
        );
    }

    #[test]
    fn arrays_are_json_arrays_checked_element_by_element() {
        let a: Value = Array::Float32(vec![21.7, -1.5]).into();
        assert_eq!(a.to_json(), json!([21.7, -1.5]));
        assert_eq!(
            Value::from_json(DataType::Float32Array, &a.to_json()),
            Ok(a)
        );
        let dates: Value = Array::DateTime(vec![0]).into();
        assert_eq!(dates.to_json(), json!(["1970-01-01T00:00:00.000Z"]));
        let empty = Value::from_json(DataType::StringArray, &json!([])).unwrap();
        assert_eq!(empty, Value::zero(DataType::StringArray));

        let err = Value::from_json(DataType::UInt8Array, &json!([1, 300])).unwrap_err();
        assert!(
            err.contains("element 1 of uint8[]") && err.contains("300"),
            "{err}"
        );
        let err = Value::from_json(DataType::BoolArray, &json!(true)).unwrap_err();
        assert!(
            err.contains("not a JSON array") && err.contains("bool[]"),
            "{err}"
        );
    }

    #[test]
    fn every_quality_has_one_name_in_serde_and_as_str() {
        let all = [
            Quality::Good,
            Quality::Uncertain,
            Quality::Bad,
            Quality::Stale,
        ];
        let names: Vec<&str> = all.iter().map(|q| q.as_str()).collect();
        assert_eq!(names, ["good", "uncertain", "bad", "stale"]);
        for q in all {
            assert_eq!(serde_json::to_value(q).unwrap(), json!(q.as_str()));
        }
    }

    #[test]
    fn arrays_take_only_their_element_type() {
        let mut a = Array::with_capacity(DataType::Int16Array, 2);
        assert_eq!(a.push(Value::Int16(-3)), Ok(()));
        assert_eq!(a.push(Value::Int32(4)), Err(Value::Int32(4)));
        assert_eq!(
            (a.len(), a.get(0), a.get(1)),
            (1, Some(Value::Int16(-3)), None)
        );
        assert_eq!(a.datatype(), DataType::Int16Array);
    }
}
