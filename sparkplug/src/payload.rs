//! The typed Sparkplug B payload: [`Payload`], [`Metric`], [`MetaData`], and their codec.
//!
//! The generated [`crate::proto`] types mirror the wire (every field optional, values as loose
//! `oneof`s). These types say what a payload *means*: a metric's value is a [`MetricValue`]
//! of a definite type, null is `None`, a DataSet/Template/PropertySet is checked. Decoding
//! refuses anything malformed with a [`DecodeError`] that names the metric (index, name,
//! alias) and the field, and never panics on input from a broker.
//!
//! ## Typing DATA metrics
//!
//! NDATA/DDATA/NCMD/DCMD metrics normally carry no datatype — the birth declared it, keyed
//! by name and alias — and the value field alone cannot say whether `int_value = 5` is an
//! Int8 or a UInt16. So a metric's datatype comes from the metric when present, and
//! otherwise from the caller: [`Payload::decode_with`] takes a resolver
//! `FnMut(name, alias) -> Option<DataType>` that a host backs with what it learned from the
//! NBIRTH/DBIRTH. [`Payload::decode`] is `decode_with` with a resolver that knows nothing,
//! which suits births and any payload whose metrics all carry datatypes; a valued metric
//! without one is then an error naming it. [`Metric::datatype`] always records what was on
//! the wire (so re-encoding a DDATA does not grow datatypes); the value's type is
//! `value.datatype()`. Code that holds raw protobuf metrics can type them late with
//! [`MetricValue::from_field`].
//!
//! ## Explicit presence
//!
//! Sparkplug is proto2: `seq = 0` on the wire and `seq` absent mean different things (the
//! NBIRTH has seq 0, the NDEATH has none, spec §6 pitfall 4). `timestamp` and `seq` are
//! therefore `Option`s and `Some(0)` is written.
//!
//! ## Encoding
//!
//! [`Payload::encode`] is infallible and writes what it is given; values assembled from
//! untrusted parts should pass [`Payload::validate`] first, which checks exactly the rules
//! decoding enforces plus what the wire cannot express (a NUL inside a StringArray element).

use prost::Message;

use crate::property::PropertySet;
use crate::proto::payload as pb;
use crate::value::{DataType, MetricValue, ValueError, field_name};

/// A Sparkplug B payload.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Payload {
    /// Publish time, UTC ms. Written when `Some`, including `Some(0)`.
    pub timestamp: Option<u64>,
    pub metrics: Vec<Metric>,
    /// 0..=255 sequence number; absent in NDEATH and commands. Written when `Some`,
    /// including `Some(0)`.
    pub seq: Option<u64>,
    pub uuid: Option<String>,
    pub body: Option<Vec<u8>>,
}

/// A metric of a payload.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metric {
    pub name: Option<String>,
    pub alias: Option<u64>,
    /// Acquisition time, UTC ms.
    pub timestamp: Option<u64>,
    /// The datatype as on the wire: required in births, usually absent in DATA/CMD.
    pub datatype: Option<DataType>,
    pub is_historical: bool,
    pub is_transient: bool,
    /// `None` is a null value (`is_null = true`, no value field).
    pub value: Option<MetricValue>,
    pub properties: Option<PropertySet>,
    pub metadata: Option<MetaData>,
}

/// Metric metadata (spec §3.8), for Bytes/File values and multi-part transfers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MetaData {
    pub is_multi_part: Option<bool>,
    pub content_type: Option<String>,
    pub size: Option<u64>,
    /// Part number of a multi-part value.
    pub seq: Option<u64>,
    pub file_name: Option<String>,
    pub file_type: Option<String>,
    pub md5: Option<String>,
    pub description: Option<String>,
}

/// A payload that is not protobuf, or a metric in it that breaks a Sparkplug rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    Protobuf(prost::DecodeError),
    /// Metric `index` (in its payload or Template) is wrong in `field` (a protobuf field
    /// name such as `datatype`, `is_null`, `bytes_value` or `properties`).
    Metric {
        index: usize,
        name: Option<String>,
        alias: Option<u64>,
        field: &'static str,
        error: ValueError,
    },
}

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DecodeError::Protobuf(e) => write!(f, "not a Sparkplug B payload: {e}"),
            DecodeError::Metric {
                index,
                name,
                alias,
                field,
                error,
            } => {
                write!(f, "metric #{index}")?;
                if let Some(name) = name {
                    write!(f, " {name:?}")?;
                }
                if let Some(alias) = alias {
                    write!(f, " (alias {alias})")?;
                }
                write!(f, ", field {field}: {error}")
            }
        }
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DecodeError::Protobuf(e) => Some(e),
            DecodeError::Metric { .. } => None,
        }
    }
}

impl From<prost::DecodeError> for DecodeError {
    fn from(e: prost::DecodeError) -> DecodeError {
        DecodeError::Protobuf(e)
    }
}

impl Payload {
    /// The protobuf bytes. Written as given; see [`Payload::validate`].
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Decodes a payload whose valued metrics all carry their datatype (births, NDEATH,
    /// and DATA/CMD from senders that include datatypes). See [`Payload::decode_with`].
    pub fn decode(bytes: &[u8]) -> Result<Payload, DecodeError> {
        Payload::decode_with(bytes, |_, _| None)
    }

    /// Decodes a payload, asking `resolve(name, alias)` for the datatype of each valued
    /// metric that does not carry one (DATA/CMD metrics are typed by their birth).
    pub fn decode_with<F>(bytes: &[u8], resolve: F) -> Result<Payload, DecodeError>
    where
        F: FnMut(Option<&str>, Option<u64>) -> Option<DataType>,
    {
        Payload::from_proto_with(pb_payload_decode(bytes)?, resolve)
    }

    pub fn to_proto(&self) -> crate::proto::Payload {
        crate::proto::Payload {
            timestamp: self.timestamp,
            metrics: self.metrics.iter().map(Metric::to_proto).collect(),
            seq: self.seq,
            uuid: self.uuid.clone(),
            body: self.body.clone(),
        }
    }

    /// Reads and checks a decoded protobuf payload; see [`Payload::decode`].
    pub fn from_proto(p: crate::proto::Payload) -> Result<Payload, DecodeError> {
        Payload::from_proto_with(p, |_, _| None)
    }

    /// Reads and checks a decoded protobuf payload; see [`Payload::decode_with`].
    pub fn from_proto_with<F>(
        p: crate::proto::Payload,
        mut resolve: F,
    ) -> Result<Payload, DecodeError>
    where
        F: FnMut(Option<&str>, Option<u64>) -> Option<DataType>,
    {
        let metrics = p
            .metrics
            .into_iter()
            .enumerate()
            .map(|(index, m)| metric_from_proto(m, index, &mut resolve, 0))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Payload {
            timestamp: p.timestamp,
            metrics,
            seq: p.seq,
            uuid: p.uuid,
            body: p.body,
        })
    }

    /// Checks every metric against the rules decoding enforces, so that what
    /// [`Payload::encode`] writes decodes to the same payload (given the datatypes of the
    /// metrics that carry none).
    pub fn validate(&self) -> Result<(), DecodeError> {
        self.metrics
            .iter()
            .enumerate()
            .try_for_each(|(index, m)| m.validate_at(index, 0))
    }
}

fn pb_payload_decode(bytes: &[u8]) -> Result<crate::proto::Payload, DecodeError> {
    Ok(crate::proto::Payload::decode(bytes)?)
}

impl Metric {
    /// A birth-style metric: name, the value's datatype, the value.
    pub fn new(name: impl Into<String>, value: MetricValue) -> Metric {
        Metric {
            name: Some(name.into()),
            datatype: Some(value.datatype()),
            value: Some(value),
            ..Metric::default()
        }
    }

    /// A null metric of `datatype`.
    pub fn null(name: impl Into<String>, datatype: DataType) -> Metric {
        Metric {
            name: Some(name.into()),
            datatype: Some(datatype),
            ..Metric::default()
        }
    }

    /// The protobuf message, written as given (see [`Payload::validate`]).
    pub fn to_proto(&self) -> pb::Metric {
        pb::Metric {
            name: self.name.clone(),
            alias: self.alias,
            timestamp: self.timestamp,
            datatype: self.datatype.map(DataType::code),
            is_historical: self.is_historical.then_some(true),
            is_transient: self.is_transient.then_some(true),
            is_null: self.value.is_none().then_some(true),
            metadata: self.metadata.as_ref().map(MetaData::to_proto),
            properties: self.properties.as_ref().map(PropertySet::to_proto),
            value: self.value.as_ref().map(MetricValue::to_field),
        }
    }

    /// The error for this metric, at `index`, in `field`.
    fn error(&self, index: usize, field: &'static str, error: ValueError) -> DecodeError {
        DecodeError::Metric {
            index,
            name: self.name.clone(),
            alias: self.alias,
            field,
            error,
        }
    }

    /// `depth` is the number of Templates this metric sits in.
    pub(crate) fn validate_at(&self, index: usize, depth: usize) -> Result<(), DecodeError> {
        if let Some(dt) = self.datatype
            && !dt.is_metric_type()
        {
            return Err(self.error(index, "datatype", ValueError::NotMetricType(dt)));
        }
        if let Some(v) = &self.value {
            let value = v.datatype();
            if let Some(declared) = self.datatype
                && declared != value
            {
                return Err(self.error(
                    index,
                    "datatype",
                    ValueError::TypeMismatch { declared, value },
                ));
            }
            if !value.is_metric_type() {
                return Err(self.error(index, "datatype", ValueError::NotMetricType(value)));
            }
            v.validate_at(depth)
                .map_err(|e| self.error(index, value.value_field(), e))?;
        }
        if let Some(p) = &self.properties {
            p.validate_at(depth + 1)
                .map_err(|e| self.error(index, "properties", e))?;
        }
        Ok(())
    }
}

/// Supplies the datatype of a metric that carries none, from its name and alias (see the
/// module docs): what [`Payload::decode_with`] takes, as a trait object.
pub type Resolve<'a> = dyn FnMut(Option<&str>, Option<u64>) -> Option<DataType> + 'a;

/// Reads metric `index` of a payload or Template; `depth` is the number of Templates it
/// sits in. `resolve` supplies the datatype of a valued metric that carries none.
pub(crate) fn metric_from_proto(
    m: pb::Metric,
    index: usize,
    resolve: &mut Resolve<'_>,
    depth: usize,
) -> Result<Metric, DecodeError> {
    let pb::Metric {
        name,
        alias,
        timestamp,
        datatype,
        is_historical,
        is_transient,
        is_null,
        metadata,
        properties,
        value,
    } = m;
    let err = |field: &'static str, error: ValueError| DecodeError::Metric {
        index,
        name: name.clone(),
        alias,
        field,
        error,
    };
    let datatype = match datatype {
        None => None,
        Some(code) => {
            let dt = DataType::from_code(code)
                .ok_or_else(|| err("datatype", ValueError::UnsupportedType(code)))?;
            if !dt.is_metric_type() {
                return Err(err("datatype", ValueError::NotMetricType(dt)));
            }
            Some(dt)
        }
    };
    let value = match (is_null == Some(true), value) {
        (true, None) => None,
        (true, Some(v)) => {
            return Err(err(
                "is_null",
                ValueError::NullWithValue {
                    found: field_name(&v),
                },
            ));
        }
        (false, None) => return Err(err("value", ValueError::Missing)),
        (false, Some(v)) => {
            let found = field_name(&v);
            let dt = match datatype {
                Some(dt) => dt,
                None => resolve(name.as_deref(), alias)
                    .ok_or_else(|| err("datatype", ValueError::NoDatatype))?,
            };
            Some(MetricValue::from_field_owned(dt, v, depth).map_err(|e| err(found, e))?)
        }
    };
    let properties = properties
        .map(|p| PropertySet::from_proto_at(p, depth + 1))
        .transpose()
        .map_err(|e| err("properties", e))?;
    Ok(Metric {
        name,
        alias,
        timestamp,
        datatype,
        is_historical: is_historical.unwrap_or(false),
        is_transient: is_transient.unwrap_or(false),
        value,
        properties,
        metadata: metadata.map(MetaData::from_proto),
    })
}

impl MetaData {
    pub fn to_proto(&self) -> pb::MetaData {
        pb::MetaData {
            is_multi_part: self.is_multi_part,
            content_type: self.content_type.clone(),
            size: self.size,
            seq: self.seq,
            file_name: self.file_name.clone(),
            file_type: self.file_type.clone(),
            md5: self.md5.clone(),
            description: self.description.clone(),
        }
    }

    pub fn from_proto(p: pb::MetaData) -> MetaData {
        MetaData {
            is_multi_part: p.is_multi_part,
            content_type: p.content_type,
            size: p.size,
            seq: p.seq,
            file_name: p.file_name,
            file_type: p.file_type,
            md5: p.md5,
            description: p.description,
        }
    }
}

#[cfg(test)]
mod tests;
