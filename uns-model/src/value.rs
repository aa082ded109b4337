//! Values as they travel from a driver to the sinks: typed, with quality and acquisition time.

use serde::{Deserialize, Serialize};

/// The data type of a tag, as configured. Names are the ones users type in TOML and CSV.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
}

impl DataType {
    /// Every data type, in the order users see them listed.
    pub const ALL: [DataType; 12] = [
        DataType::Bool,
        DataType::Int8,
        DataType::Int16,
        DataType::Int32,
        DataType::Int64,
        DataType::UInt8,
        DataType::UInt16,
        DataType::UInt32,
        DataType::UInt64,
        DataType::Float32,
        DataType::Float64,
        DataType::String,
    ];

    /// The name used in TOML, CSV and UNS payloads (`"float32"`).
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
        }
    }

    pub fn is_integer(self) -> bool {
        !matches!(
            self,
            DataType::Bool | DataType::Float32 | DataType::Float64 | DataType::String
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
        }
    }

    /// The JSON form used in UNS payloads and the web UI. Non-finite floats have no JSON
    /// number, so they become `null` rather than an invalid document.
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
        }
    }

    /// Converts a JSON value (from the web UI or a UNS write) into a value of `datatype`,
    /// refusing anything that does not fit exactly.
    pub fn from_json(datatype: DataType, json: &serde_json::Value) -> Result<Value, String> {
        use serde_json::Value as J;
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
        })
    }
}

/// How far a value can be trusted. Every sample carries one, through every sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quality {
    /// Read from the PLC on the last attempt.
    Good,
    /// The last read failed; the value is the last good one, if any.
    Bad,
    /// The device is unreachable or the value has not been refreshed when it should have been.
    Stale,
}

impl Quality {
    pub fn as_str(self) -> &'static str {
        match self {
            Quality::Good => "good",
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
