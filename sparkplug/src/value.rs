//! Metric values and their mapping onto the Sparkplug B value fields (spec §3.2, §3.3).
//!
//! The protobuf schema has one `oneof value` per message (Metric, DataSetValue, Parameter,
//! PropertyValue) and a separate `uint32` datatype code, so the wire alone never says what a
//! value *is*: an `int_value` of `0xFFFF_FFFF` is an Int8 of -1, an Int32 of -1 or a UInt32 of
//! 4294967295 depending on the datatype. This module owns that mapping in one place:
//!
//! - [`DataType`]: all 35 codes of spec §3.2 (`Unknown` = 0 … `DateTimeArray` = 34), with the
//!   type groups the validation rules use ([`DataType::is_basic`], [`DataType::is_metric_type`]).
//! - [`BasicValue`]: the fourteen basic types, the only ones a DataSet cell, a Template
//!   parameter or a property may hold, so illegal cells cannot be built.
//! - [`MetricValue`]: every metric type, scalars, arrays (packed by [`crate::array`]), DataSet,
//!   Template and File.
//!
//! Signed integers travel as two's-complement bit patterns in the unsigned protobuf fields:
//! an Int8 of -1 is `int_value = 0xFFFF_FFFF`, never `0xFF` (spec §6 pitfall 24). UInt32 is
//! sent in `long_value` (what Tahu and Ignition read) and accepted from either field (pitfall
//! 23). Decoding never panics on input from the wire: every mismatch is a [`ValueError`].

use crate::array;
use crate::dataset::DataSet;
use crate::payload::DecodeError;
use crate::property::{PropertyData, PropertyValue};
use crate::proto::payload::metric::Value as Field;
use crate::proto::payload::{data_set::data_set_value, property_value, template::parameter};
use crate::template::Template;

/// How deep Templates and PropertySets may nest in a decoded payload. Anything deeper is
/// refused with [`ValueError::TooDeep`] rather than recursed into, so a hostile payload
/// cannot exhaust the stack; real UDTs nest a handful of levels.
pub const MAX_NESTING: usize = 32;

/// Sparkplug B data types with their wire codes (spec §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum DataType {
    /// Code 0: never valid on a metric.
    Unknown = 0,
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
    DataSet = 16,
    Bytes = 17,
    File = 18,
    Template = 19,
    /// Only as a property value type.
    PropertySet = 20,
    /// Only as a property value type.
    PropertySetList = 21,
    Int8Array = 22,
    Int16Array = 23,
    Int32Array = 24,
    Int64Array = 25,
    UInt8Array = 26,
    UInt16Array = 27,
    UInt32Array = 28,
    UInt64Array = 29,
    FloatArray = 30,
    DoubleArray = 31,
    BooleanArray = 32,
    StringArray = 33,
    DateTimeArray = 34,
}

impl DataType {
    /// Every data type, indexed by its code.
    pub const ALL: [DataType; 35] = {
        use DataType::*;
        [
            Unknown,
            Int8,
            Int16,
            Int32,
            Int64,
            UInt8,
            UInt16,
            UInt32,
            UInt64,
            Float,
            Double,
            Boolean,
            String,
            DateTime,
            Text,
            Uuid,
            DataSet,
            Bytes,
            File,
            Template,
            PropertySet,
            PropertySetList,
            Int8Array,
            Int16Array,
            Int32Array,
            Int64Array,
            UInt8Array,
            UInt16Array,
            UInt32Array,
            UInt64Array,
            FloatArray,
            DoubleArray,
            BooleanArray,
            StringArray,
            DateTimeArray,
        ]
    };

    pub fn code(self) -> u32 {
        self as u32
    }

    /// The data type for a wire code (0..=34), or `None` for a code Sparkplug 3.0 does not
    /// define.
    pub fn from_code(code: u32) -> Option<DataType> {
        usize::try_from(code)
            .ok()
            .and_then(|i| Self::ALL.get(i))
            .copied()
    }

    /// Basic types (1..=14): the only types a DataSet column or a Template parameter may have.
    pub fn is_basic(self) -> bool {
        (1..=14).contains(&self.code())
    }

    /// Types a metric may have: 1..=19 and 22..=34 (not Unknown, PropertySet, PropertySetList).
    pub fn is_metric_type(self) -> bool {
        matches!(self.code(), 1..=19 | 22..=34)
    }

    /// Types a property value may have: the basic types, PropertySet and PropertySetList.
    pub fn is_property_type(self) -> bool {
        self.is_basic() || matches!(self, DataType::PropertySet | DataType::PropertySetList)
    }

    /// The array types (22..=34), all carried packed in `bytes_value`.
    pub fn is_array(self) -> bool {
        (22..=34).contains(&self.code())
    }

    /// The protobuf value field a value of this type travels in (for error messages).
    pub fn value_field(self) -> &'static str {
        use DataType::*;
        match self {
            Int8 | Int16 | Int32 | UInt8 | UInt16 => "int_value",
            UInt32 => "int_value or long_value",
            Int64 | UInt64 | DateTime => "long_value",
            Float => "float_value",
            Double => "double_value",
            Boolean => "boolean_value",
            String | Text | Uuid => "string_value",
            DataSet => "dataset_value",
            Template => "template_value",
            PropertySet => "propertyset_value",
            PropertySetList => "propertysets_value",
            Unknown => "no value field",
            _ => "bytes_value",
        }
    }
}

/// A value of one of the basic types (1..=14): a DataSet cell, a Template parameter value,
/// or a scalar property value.
#[derive(Clone, Debug, PartialEq)]
pub enum BasicValue {
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
}

/// A DataSet cell (spec §3.5); `None` in [`DataSet::rows`] is a null cell.
pub type DataSetValue = BasicValue;
/// A Template parameter value (spec §3.6).
pub type ParameterValue = BasicValue;

impl BasicValue {
    pub fn datatype(&self) -> DataType {
        match self {
            BasicValue::Int8(_) => DataType::Int8,
            BasicValue::Int16(_) => DataType::Int16,
            BasicValue::Int32(_) => DataType::Int32,
            BasicValue::Int64(_) => DataType::Int64,
            BasicValue::UInt8(_) => DataType::UInt8,
            BasicValue::UInt16(_) => DataType::UInt16,
            BasicValue::UInt32(_) => DataType::UInt32,
            BasicValue::UInt64(_) => DataType::UInt64,
            BasicValue::Float(_) => DataType::Float,
            BasicValue::Double(_) => DataType::Double,
            BasicValue::Boolean(_) => DataType::Boolean,
            BasicValue::String(_) => DataType::String,
            BasicValue::DateTime(_) => DataType::DateTime,
            BasicValue::Text(_) => DataType::Text,
        }
    }

    pub(crate) fn to_scalar(&self) -> Scalar {
        match self {
            BasicValue::Int8(v) => Scalar::Int(i32::from(*v) as u32),
            BasicValue::Int16(v) => Scalar::Int(i32::from(*v) as u32),
            BasicValue::Int32(v) => Scalar::Int(*v as u32),
            BasicValue::Int64(v) => Scalar::Long(*v as u64),
            BasicValue::UInt8(v) => Scalar::Int(u32::from(*v)),
            BasicValue::UInt16(v) => Scalar::Int(u32::from(*v)),
            BasicValue::UInt32(v) => Scalar::Long(u64::from(*v)),
            BasicValue::UInt64(v) | BasicValue::DateTime(v) => Scalar::Long(*v),
            BasicValue::Float(v) => Scalar::Float(*v),
            BasicValue::Double(v) => Scalar::Double(*v),
            BasicValue::Boolean(v) => Scalar::Boolean(*v),
            BasicValue::String(v) | BasicValue::Text(v) => Scalar::String(v.clone()),
        }
    }

    /// Reads a basic value of `datatype` from a scalar field, refusing a field that does not
    /// belong to the type and integers that do not fit.
    pub(crate) fn from_scalar(
        datatype: DataType,
        scalar: Scalar,
    ) -> Result<BasicValue, ValueError> {
        use BasicValue as B;
        let out_of_range = |value: u64| ValueError::OutOfRange { datatype, value };
        // Small integers arrive sign-extended (or zero-extended) to 32 bits; anything that
        // does not round-trip through the narrow type is out of range.
        Ok(match (datatype, scalar) {
            (DataType::Int8, Scalar::Int(v)) => {
                B::Int8(i8::try_from(v as i32).map_err(|_| out_of_range(v.into()))?)
            }
            (DataType::Int16, Scalar::Int(v)) => {
                B::Int16(i16::try_from(v as i32).map_err(|_| out_of_range(v.into()))?)
            }
            (DataType::Int32, Scalar::Int(v)) => B::Int32(v as i32),
            (DataType::UInt8, Scalar::Int(v)) => {
                B::UInt8(u8::try_from(v).map_err(|_| out_of_range(v.into()))?)
            }
            (DataType::UInt16, Scalar::Int(v)) => {
                B::UInt16(u16::try_from(v).map_err(|_| out_of_range(v.into()))?)
            }
            (DataType::UInt32, Scalar::Int(v)) => B::UInt32(v),
            (DataType::UInt32, Scalar::Long(v)) => {
                B::UInt32(u32::try_from(v).map_err(|_| out_of_range(v))?)
            }
            (DataType::Int64, Scalar::Long(v)) => B::Int64(v as i64),
            (DataType::UInt64, Scalar::Long(v)) => B::UInt64(v),
            (DataType::DateTime, Scalar::Long(v)) => B::DateTime(v),
            (DataType::Float, Scalar::Float(v)) => B::Float(v),
            (DataType::Double, Scalar::Double(v)) => B::Double(v),
            (DataType::Boolean, Scalar::Boolean(v)) => B::Boolean(v),
            (DataType::String, Scalar::String(v)) => B::String(v),
            (DataType::Text, Scalar::String(v)) => B::Text(v),
            (datatype, scalar) if datatype.is_basic() => {
                return Err(ValueError::WrongField {
                    datatype,
                    expected: datatype.value_field(),
                    found: scalar.field_name(),
                });
            }
            (datatype, _) => return Err(ValueError::NotBasic(datatype)),
        })
    }
}

impl From<BasicValue> for MetricValue {
    fn from(v: BasicValue) -> MetricValue {
        match v {
            BasicValue::Int8(v) => MetricValue::Int8(v),
            BasicValue::Int16(v) => MetricValue::Int16(v),
            BasicValue::Int32(v) => MetricValue::Int32(v),
            BasicValue::Int64(v) => MetricValue::Int64(v),
            BasicValue::UInt8(v) => MetricValue::UInt8(v),
            BasicValue::UInt16(v) => MetricValue::UInt16(v),
            BasicValue::UInt32(v) => MetricValue::UInt32(v),
            BasicValue::UInt64(v) => MetricValue::UInt64(v),
            BasicValue::Float(v) => MetricValue::Float(v),
            BasicValue::Double(v) => MetricValue::Double(v),
            BasicValue::Boolean(v) => MetricValue::Boolean(v),
            BasicValue::String(v) => MetricValue::String(v),
            BasicValue::DateTime(v) => MetricValue::DateTime(v),
            BasicValue::Text(v) => MetricValue::Text(v),
        }
    }
}

impl TryFrom<MetricValue> for BasicValue {
    /// A value of a non-basic type is handed back unchanged.
    type Error = MetricValue;

    fn try_from(v: MetricValue) -> Result<BasicValue, MetricValue> {
        Ok(match v {
            MetricValue::Int8(v) => BasicValue::Int8(v),
            MetricValue::Int16(v) => BasicValue::Int16(v),
            MetricValue::Int32(v) => BasicValue::Int32(v),
            MetricValue::Int64(v) => BasicValue::Int64(v),
            MetricValue::UInt8(v) => BasicValue::UInt8(v),
            MetricValue::UInt16(v) => BasicValue::UInt16(v),
            MetricValue::UInt32(v) => BasicValue::UInt32(v),
            MetricValue::UInt64(v) => BasicValue::UInt64(v),
            MetricValue::Float(v) => BasicValue::Float(v),
            MetricValue::Double(v) => BasicValue::Double(v),
            MetricValue::Boolean(v) => BasicValue::Boolean(v),
            MetricValue::String(v) => BasicValue::String(v),
            MetricValue::DateTime(v) => BasicValue::DateTime(v),
            MetricValue::Text(v) => BasicValue::Text(v),
            other => return Err(other),
        })
    }
}

/// The six scalar fields every `oneof value` of the schema shares, so the basic-type mapping
/// is written once for metrics, DataSet cells, parameters and properties.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Scalar {
    Int(u32),
    Long(u64),
    Float(f32),
    Double(f64),
    Boolean(bool),
    String(String),
}

impl Scalar {
    fn field_name(&self) -> &'static str {
        match self {
            Scalar::Int(_) => "int_value",
            Scalar::Long(_) => "long_value",
            Scalar::Float(_) => "float_value",
            Scalar::Double(_) => "double_value",
            Scalar::Boolean(_) => "boolean_value",
            Scalar::String(_) => "string_value",
        }
    }
}

/// A generated `oneof value` enum that has the six scalar fields.
pub(crate) trait ScalarField: Sized {
    fn from_scalar(scalar: Scalar) -> Self;
    /// The scalar this field holds, or the name of the non-scalar field it is.
    fn into_scalar(self) -> Result<Scalar, &'static str>;
}

macro_rules! scalar_field {
    ($t:ty, [$($other:ident => $name:literal),*]) => {
        impl ScalarField for $t {
            fn from_scalar(scalar: Scalar) -> Self {
                match scalar {
                    Scalar::Int(v) => Self::IntValue(v),
                    Scalar::Long(v) => Self::LongValue(v),
                    Scalar::Float(v) => Self::FloatValue(v),
                    Scalar::Double(v) => Self::DoubleValue(v),
                    Scalar::Boolean(v) => Self::BooleanValue(v),
                    Scalar::String(v) => Self::StringValue(v),
                }
            }

            fn into_scalar(self) -> Result<Scalar, &'static str> {
                match self {
                    Self::IntValue(v) => Ok(Scalar::Int(v)),
                    Self::LongValue(v) => Ok(Scalar::Long(v)),
                    Self::FloatValue(v) => Ok(Scalar::Float(v)),
                    Self::DoubleValue(v) => Ok(Scalar::Double(v)),
                    Self::BooleanValue(v) => Ok(Scalar::Boolean(v)),
                    Self::StringValue(v) => Ok(Scalar::String(v)),
                    $(Self::$other(..) => Err($name),)*
                }
            }
        }
    };
}

scalar_field!(Field, [
    BytesValue => "bytes_value",
    DatasetValue => "dataset_value",
    TemplateValue => "template_value",
    ExtensionValue => "extension_value"
]);
scalar_field!(data_set_value::Value, [ExtensionValue => "extension_value"]);
scalar_field!(parameter::Value, [ExtensionValue => "extension_value"]);
scalar_field!(property_value::Value, [
    PropertysetValue => "propertyset_value",
    PropertysetsValue => "propertysets_value",
    ExtensionValue => "extension_value"
]);

/// Reads a basic value of `datatype` from any scalar-carrying field.
pub(crate) fn basic_from_field<F: ScalarField>(
    datatype: DataType,
    field: F,
) -> Result<BasicValue, ValueError> {
    if !datatype.is_basic() {
        return Err(ValueError::NotBasic(datatype));
    }
    match field.into_scalar() {
        Ok(scalar) => BasicValue::from_scalar(datatype, scalar),
        Err(found) => Err(ValueError::WrongField {
            datatype,
            expected: datatype.value_field(),
            found,
        }),
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
    /// Boxed, like [`MetricValue::Template`]: the large variants would otherwise make every
    /// scalar metric value of a 100,000-tag node as big as a DataSet.
    DataSet(Box<DataSet>),
    Bytes(Vec<u8>),
    /// File contents; the name, type and md5 go in the metric's [`crate::MetaData`].
    File(Vec<u8>),
    Template(Box<Template>),
    Int8Array(Vec<i8>),
    Int16Array(Vec<i16>),
    Int32Array(Vec<i32>),
    Int64Array(Vec<i64>),
    UInt8Array(Vec<u8>),
    UInt16Array(Vec<u16>),
    UInt32Array(Vec<u32>),
    UInt64Array(Vec<u64>),
    FloatArray(Vec<f32>),
    DoubleArray(Vec<f64>),
    BooleanArray(Vec<bool>),
    /// Strings must not contain NUL: the wire format terminates each element with one.
    /// [`MetricValue::validate`] refuses such a string; an unvalidated encode would split it.
    StringArray(Vec<String>),
    /// Milliseconds since the Unix epoch, UTC.
    DateTimeArray(Vec<u64>),
}

/// Metric quality as the `Quality` property carries it (spec §3.7).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Quality {
    Bad,
    Good,
    Stale,
}

impl Quality {
    /// The property key, the only one the spec defines.
    pub const PROPERTY_KEY: &'static str = "Quality";

    /// The property value: 0 = BAD, 192 = GOOD, 500 = STALE.
    pub fn code(self) -> u32 {
        match self {
            Quality::Bad => 0,
            Quality::Good => 192,
            Quality::Stale => 500,
        }
    }

    pub fn from_code(code: u32) -> Option<Quality> {
        match code {
            0 => Some(Quality::Bad),
            192 => Some(Quality::Good),
            500 => Some(Quality::Stale),
            _ => None,
        }
    }

    /// The typed property value the spec prescribes: type Int32 (3), `int_value` = code.
    pub fn to_property(self) -> PropertyValue {
        PropertyValue::new(BasicValue::Int32(self.code() as i32))
    }

    /// The same property value as a protobuf message, for code that builds payloads from
    /// the generated types directly.
    pub fn to_proto_property(self) -> crate::proto::payload::PropertyValue {
        crate::proto::payload::PropertyValue {
            r#type: Some(DataType::Int32.code()),
            is_null: None,
            value: Some(property_value::Value::IntValue(self.code())),
        }
    }

    /// Reads a Quality property value. Besides the spec's Int32 this accepts the Int64 /
    /// `long_value` form the 3.0 TCK checks for (spec §5.6) and the unsigned forms.
    pub fn from_property(value: &PropertyValue) -> Option<Quality> {
        let code = match value.value.as_ref()? {
            PropertyData::Basic(BasicValue::Int32(v)) => u32::try_from(*v).ok()?,
            PropertyData::Basic(BasicValue::Int64(v)) => u32::try_from(*v).ok()?,
            PropertyData::Basic(BasicValue::UInt32(v)) => *v,
            PropertyData::Basic(BasicValue::UInt16(v)) => u32::from(*v),
            PropertyData::Basic(BasicValue::UInt64(v)) => u32::try_from(*v).ok()?,
            _ => return None,
        };
        Quality::from_code(code)
    }
}

/// A value field that does not fit the metric's data type, or a value that is malformed.
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
    #[error("{0:?} is not a metric data type (allowed: 1..=19, 22..=34)")]
    NotMetricType(DataType),
    #[error(
        "{0:?} is not a basic data type (1..=14), which DataSet columns and Template parameters need"
    )]
    NotBasic(DataType),
    #[error("{0:?} is not a property data type (allowed: 1..=14, 20, 21)")]
    NotPropertyType(DataType),
    #[error(
        "the metric carries no datatype and none is known for it (DATA metrics are typed by their birth)"
    )]
    NoDatatype,
    #[error("no type is given")]
    NoType,
    #[error("is_null is set but a value is present in {found}")]
    NullWithValue { found: &'static str },
    #[error("the declared datatype is {declared:?} but the value is a {value:?}")]
    TypeMismatch { declared: DataType, value: DataType },
    #[error(
        "a {datatype:?} is packed in {element_size}-byte elements, but bytes_value has {len} bytes"
    )]
    ArrayLength {
        datatype: DataType,
        len: usize,
        element_size: usize,
    },
    #[error("a BooleanArray starts with a 4-byte element count, but bytes_value has {len} bytes")]
    BooleanArrayHeader { len: usize },
    #[error("the BooleanArray count is {count} but bytes_value holds only {available} bits")]
    BooleanArrayCount { count: u32, available: u64 },
    #[error("the last StringArray element is not terminated by NUL")]
    StringArrayUnterminated,
    #[error("StringArray element {index} is not valid UTF-8")]
    StringArrayUtf8 { index: usize },
    #[error("StringArray element {index} contains NUL, which the encoding uses as terminator")]
    NulInString { index: usize },
    #[error(
        "a DataSet needs num_of_columns = number of columns = number of types; it has num_of_columns {num_of_columns:?}, {columns} columns and {types} types"
    )]
    DataSetColumns {
        num_of_columns: Option<u64>,
        columns: usize,
        types: usize,
    },
    #[error("DataSet column {column} type: {error}")]
    DataSetColumnType {
        column: usize,
        error: Box<ValueError>,
    },
    #[error("DataSet row {row} has {elements} elements for {columns} columns")]
    DataSetRow {
        row: usize,
        elements: usize,
        columns: usize,
    },
    #[error("DataSet row {row} column {column}: {error}")]
    DataSetCell {
        row: usize,
        column: usize,
        error: Box<ValueError>,
    },
    #[error("template parameter {index} has no name")]
    ParameterName { index: usize },
    #[error("template parameter {index} ({name:?}): {error}")]
    Parameter {
        index: usize,
        name: String,
        error: Box<ValueError>,
    },
    #[error("{0}")]
    TemplateShape(&'static str),
    #[error("template member {0}")]
    TemplateMetric(Box<DecodeError>),
    #[error("a PropertySet has {keys} keys but {values} values")]
    PropertyCount { keys: usize, values: usize },
    #[error("property {key:?}: {error}")]
    Property { key: String, error: Box<ValueError> },
    #[error("Templates or PropertySets nest deeper than {limit} levels")]
    TooDeep { limit: usize },
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
            MetricValue::DataSet(_) => DataType::DataSet,
            MetricValue::Bytes(_) => DataType::Bytes,
            MetricValue::File(_) => DataType::File,
            MetricValue::Template(_) => DataType::Template,
            MetricValue::Int8Array(_) => DataType::Int8Array,
            MetricValue::Int16Array(_) => DataType::Int16Array,
            MetricValue::Int32Array(_) => DataType::Int32Array,
            MetricValue::Int64Array(_) => DataType::Int64Array,
            MetricValue::UInt8Array(_) => DataType::UInt8Array,
            MetricValue::UInt16Array(_) => DataType::UInt16Array,
            MetricValue::UInt32Array(_) => DataType::UInt32Array,
            MetricValue::UInt64Array(_) => DataType::UInt64Array,
            MetricValue::FloatArray(_) => DataType::FloatArray,
            MetricValue::DoubleArray(_) => DataType::DoubleArray,
            MetricValue::BooleanArray(_) => DataType::BooleanArray,
            MetricValue::StringArray(_) => DataType::StringArray,
            MetricValue::DateTimeArray(_) => DataType::DateTimeArray,
        }
    }

    /// The protobuf value field for this value. Infallible: it writes what it is given, so a
    /// value built from untrusted parts should pass [`MetricValue::validate`] first.
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
            MetricValue::Bytes(v) | MetricValue::File(v) => Field::BytesValue(v.clone()),
            MetricValue::DataSet(v) => Field::DatasetValue(v.to_proto()),
            MetricValue::Template(v) => Field::TemplateValue(v.to_proto()),
            MetricValue::Int8Array(v) => Field::BytesValue(array::encode_i8(v)),
            MetricValue::Int16Array(v) => Field::BytesValue(array::encode_i16(v)),
            MetricValue::Int32Array(v) => Field::BytesValue(array::encode_i32(v)),
            MetricValue::Int64Array(v) => Field::BytesValue(array::encode_i64(v)),
            MetricValue::UInt8Array(v) => Field::BytesValue(v.clone()),
            MetricValue::UInt16Array(v) => Field::BytesValue(array::encode_u16(v)),
            MetricValue::UInt32Array(v) => Field::BytesValue(array::encode_u32(v)),
            MetricValue::UInt64Array(v) | MetricValue::DateTimeArray(v) => {
                Field::BytesValue(array::encode_u64(v))
            }
            MetricValue::FloatArray(v) => Field::BytesValue(array::encode_f32(v)),
            MetricValue::DoubleArray(v) => Field::BytesValue(array::encode_f64(v)),
            MetricValue::BooleanArray(v) => Field::BytesValue(array::encode_bool(v)),
            MetricValue::StringArray(v) => Field::BytesValue(array::encode_string(v)),
        }
    }

    /// Reads a value of `datatype` from a protobuf value field, refusing a field that does
    /// not belong to the type, integers that do not fit and malformed arrays, DataSets and
    /// Templates.
    ///
    /// This is also the late-typing entry point: a host holding a raw DDATA metric (no
    /// datatype on the wire) types it with the datatype its DBIRTH declared.
    pub fn from_field(
        datatype: DataType,
        field: Option<&Field>,
    ) -> Result<MetricValue, ValueError> {
        let field = field.ok_or(ValueError::Missing)?;
        MetricValue::from_field_owned(datatype, field.clone(), 0)
    }

    /// [`MetricValue::from_field`] taking the field by value (no copy of strings and byte
    /// arrays); `depth` is the Template/PropertySet nesting the field sits in.
    pub(crate) fn from_field_owned(
        datatype: DataType,
        field: Field,
        depth: usize,
    ) -> Result<MetricValue, ValueError> {
        if datatype.is_basic() {
            return basic_from_field(datatype, field).map(MetricValue::from);
        }
        let found = field_name(&field);
        Ok(match (datatype, field) {
            (DataType::Uuid, Field::StringValue(v)) => MetricValue::Uuid(v),
            (DataType::Bytes, Field::BytesValue(v)) => MetricValue::Bytes(v),
            (DataType::File, Field::BytesValue(v)) => MetricValue::File(v),
            (DataType::DataSet, Field::DatasetValue(v)) => {
                MetricValue::DataSet(Box::new(DataSet::from_proto(v)?))
            }
            (DataType::Template, Field::TemplateValue(v)) => {
                MetricValue::Template(Box::new(Template::from_proto_at(v, depth + 1)?))
            }
            (datatype, Field::BytesValue(v)) if datatype.is_array() => array::decode(datatype, &v)?,
            (DataType::Unknown | DataType::PropertySet | DataType::PropertySetList, _) => {
                return Err(ValueError::NotMetricType(datatype));
            }
            (datatype, _) => {
                return Err(ValueError::WrongField {
                    datatype,
                    expected: datatype.value_field(),
                    found,
                });
            }
        })
    }

    /// Checks what [`MetricValue::to_field`] cannot express faithfully and a decoder would
    /// refuse: NUL inside StringArray elements, DataSet cells that do not match their column
    /// type, Template parameters and members whose values do not match their datatypes,
    /// nesting deeper than [`MAX_NESTING`].
    pub fn validate(&self) -> Result<(), ValueError> {
        self.validate_at(0)
    }

    pub(crate) fn validate_at(&self, depth: usize) -> Result<(), ValueError> {
        match self {
            MetricValue::StringArray(v) => match v.iter().position(|s| s.contains('\0')) {
                Some(index) => Err(ValueError::NulInString { index }),
                None => Ok(()),
            },
            MetricValue::DataSet(v) => v.validate(),
            MetricValue::Template(v) => v.validate_at(depth + 1),
            _ => Ok(()),
        }
    }
}

pub(crate) fn field_name(field: &Field) -> &'static str {
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
        let err =
            MetricValue::from_field(DataType::Int32Array, Some(&Field::IntValue(1))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "a Int32Array value must be in bytes_value, the metric carries int_value"
        );
    }

    #[test]
    fn every_code_maps_to_its_type_and_back() {
        for code in 0..=34 {
            let dt = DataType::from_code(code).unwrap();
            assert_eq!(dt.code(), code);
        }
        assert_eq!(DataType::from_code(35), None);
        assert_eq!(DataType::from_code(u32::MAX), None);
        assert_eq!(DataType::from_code(16), Some(DataType::DataSet));
        assert_eq!(DataType::from_code(34), Some(DataType::DateTimeArray));
    }

    #[test]
    fn type_groups_follow_spec_3_2() {
        let basic: Vec<u32> = DataType::ALL
            .iter()
            .filter(|d| d.is_basic())
            .map(|d| d.code())
            .collect();
        assert_eq!(basic, (1..=14).collect::<Vec<_>>());
        let metric: Vec<u32> = DataType::ALL
            .iter()
            .filter(|d| d.is_metric_type())
            .map(|d| d.code())
            .collect();
        assert_eq!(metric, (1..=19).chain(22..=34).collect::<Vec<_>>());
        assert!(DataType::PropertySetList.is_property_type());
        assert!(!DataType::Uuid.is_property_type());
    }

    #[test]
    fn types_that_are_not_metric_types_are_refused() {
        for dt in [
            DataType::Unknown,
            DataType::PropertySet,
            DataType::PropertySetList,
        ] {
            assert_eq!(
                MetricValue::from_field(dt, Some(&Field::IntValue(1))),
                Err(ValueError::NotMetricType(dt))
            );
        }
    }

    #[test]
    fn quality_property_is_int32_with_the_spec_codes() {
        for q in [Quality::Bad, Quality::Good, Quality::Stale] {
            let p = q.to_property();
            assert_eq!(p.datatype, DataType::Int32);
            assert_eq!(Quality::from_property(&p), Some(q));
            let proto = q.to_proto_property();
            assert_eq!(proto.r#type, Some(3));
            assert_eq!(proto.value, Some(property_value::Value::IntValue(q.code())));
        }
        // The 3.0 TCK's Int64 form is read too.
        let tck = PropertyValue::new(BasicValue::Int64(500));
        assert_eq!(Quality::from_property(&tck), Some(Quality::Stale));
        assert_eq!(Quality::from_code(7), None);
    }

    #[test]
    fn string_array_with_nul_fails_validation() {
        let v = MetricValue::StringArray(vec!["ok".into(), "a\0b".into()]);
        assert_eq!(v.validate(), Err(ValueError::NulInString { index: 1 }));
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
        #![proptest_config(ProptestConfig::with_cases(128))]

        #[test]
        fn every_value_round_trips_through_its_field(v in any_value()) {
            let field = v.to_field();
            prop_assert_eq!(MetricValue::from_field(v.datatype(), Some(&field)), Ok(v.clone()));
            prop_assert_eq!(DataType::from_code(v.datatype().code()), Some(v.datatype()));
        }
    }
}
