//! PropertySets (spec §3.7): the key/value metadata on a metric (`Quality`, `engUnit`, …).
//!
//! Two wire details shape this module. `PropertyValue.type` is a Sparkplug [`DataType`]
//! code (12 for a String), not a protobuf field number (spec §6 pitfall 26), and values may
//! themselves be PropertySets or lists of them, so property trees nest. Decoding checks that
//! `keys` and `values` pair up, that each type is a property type (basic, 20 or 21), that
//! the value sits in the field its type prescribes, and that nesting stays within
//! [`MAX_NESTING`]. Errors name the key.
//!
//! The spec's one defined key, `Quality`, has typed helpers here ([`PropertySet::quality`],
//! [`PropertySet::set_quality`]) and on [`Quality`].

use crate::proto::payload as pb;
use crate::proto::payload::property_value::Value as Field;
use crate::value::{
    BasicValue, DataType, MAX_NESTING, Quality, ScalarField, ValueError, basic_from_field,
};

/// Keys and values, paired by index (`keys[i]` ↔ `values[i]`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PropertySet {
    pub keys: Vec<String>,
    pub values: Vec<PropertyValue>,
}

/// A typed property value. `datatype` is what goes on the wire as `type`; when `value` is
/// `Some`, it must be the value's own datatype ([`PropertyValue::new`] guarantees that).
#[derive(Clone, Debug, PartialEq)]
pub struct PropertyValue {
    pub datatype: DataType,
    /// `None` is a null value (`is_null = true`).
    pub value: Option<PropertyData>,
}

/// What a property can hold.
#[derive(Clone, Debug, PartialEq)]
pub enum PropertyData {
    Basic(BasicValue),
    PropertySet(PropertySet),
    PropertySetList(Vec<PropertySet>),
}

impl PropertyData {
    pub fn datatype(&self) -> DataType {
        match self {
            PropertyData::Basic(v) => v.datatype(),
            PropertyData::PropertySet(_) => DataType::PropertySet,
            PropertyData::PropertySetList(_) => DataType::PropertySetList,
        }
    }
}

impl From<BasicValue> for PropertyData {
    fn from(v: BasicValue) -> PropertyData {
        PropertyData::Basic(v)
    }
}

impl From<PropertySet> for PropertyData {
    fn from(v: PropertySet) -> PropertyData {
        PropertyData::PropertySet(v)
    }
}

impl From<Vec<PropertySet>> for PropertyData {
    fn from(v: Vec<PropertySet>) -> PropertyData {
        PropertyData::PropertySetList(v)
    }
}

impl PropertyValue {
    /// A value whose datatype is the value's own.
    pub fn new(value: impl Into<PropertyData>) -> PropertyValue {
        let value = value.into();
        PropertyValue {
            datatype: value.datatype(),
            value: Some(value),
        }
    }

    /// A null value of `datatype`.
    pub fn null(datatype: DataType) -> PropertyValue {
        PropertyValue {
            datatype,
            value: None,
        }
    }

    pub fn to_proto(&self) -> pb::PropertyValue {
        pb::PropertyValue {
            r#type: Some(self.datatype.code()),
            is_null: self.value.is_none().then_some(true),
            value: self.value.as_ref().map(|v| match v {
                PropertyData::Basic(b) => ScalarField::from_scalar(b.to_scalar()),
                PropertyData::PropertySet(s) => Field::PropertysetValue(s.to_proto()),
                PropertyData::PropertySetList(l) => Field::PropertysetsValue(pb::PropertySetList {
                    propertyset: l.iter().map(PropertySet::to_proto).collect(),
                }),
            }),
        }
    }

    fn from_proto_at(p: pb::PropertyValue, depth: usize) -> Result<PropertyValue, ValueError> {
        let code = p.r#type.ok_or(ValueError::NoType)?;
        let datatype = DataType::from_code(code).ok_or(ValueError::UnsupportedType(code))?;
        if !datatype.is_property_type() {
            return Err(ValueError::NotPropertyType(datatype));
        }
        let value = match (p.is_null == Some(true), p.value) {
            (true, None) => None,
            (false, None) => return Err(ValueError::Missing),
            (true, Some(v)) => {
                return Err(ValueError::NullWithValue {
                    found: field_name(&v),
                });
            }
            (false, Some(v)) => Some(match (datatype, v) {
                (DataType::PropertySet, Field::PropertysetValue(s)) => {
                    PropertyData::PropertySet(PropertySet::from_proto_at(s, depth + 1)?)
                }
                (DataType::PropertySetList, Field::PropertysetsValue(l)) => {
                    PropertyData::PropertySetList(
                        l.propertyset
                            .into_iter()
                            .map(|s| PropertySet::from_proto_at(s, depth + 1))
                            .collect::<Result<_, _>>()?,
                    )
                }
                (DataType::PropertySet | DataType::PropertySetList, v) => {
                    return Err(ValueError::WrongField {
                        datatype,
                        expected: datatype.value_field(),
                        found: field_name(&v),
                    });
                }
                (_, v) => PropertyData::Basic(basic_from_field(datatype, v)?),
            }),
        };
        Ok(PropertyValue { datatype, value })
    }

    fn validate_at(&self, depth: usize) -> Result<(), ValueError> {
        if !self.datatype.is_property_type() {
            return Err(ValueError::NotPropertyType(self.datatype));
        }
        match &self.value {
            None => Ok(()),
            Some(v) if v.datatype() != self.datatype => Err(ValueError::TypeMismatch {
                declared: self.datatype,
                value: v.datatype(),
            }),
            Some(PropertyData::Basic(_)) => Ok(()),
            Some(PropertyData::PropertySet(s)) => s.validate_at(depth + 1),
            Some(PropertyData::PropertySetList(l)) => {
                l.iter().try_for_each(|s| s.validate_at(depth + 1))
            }
        }
    }
}

fn field_name(v: &Field) -> &'static str {
    match v {
        Field::IntValue(_) => "int_value",
        Field::LongValue(_) => "long_value",
        Field::FloatValue(_) => "float_value",
        Field::DoubleValue(_) => "double_value",
        Field::BooleanValue(_) => "boolean_value",
        Field::StringValue(_) => "string_value",
        Field::PropertysetValue(_) => "propertyset_value",
        Field::PropertysetsValue(_) => "propertysets_value",
        Field::ExtensionValue(_) => "extension_value",
    }
}

impl PropertySet {
    pub fn new() -> PropertySet {
        PropertySet::default()
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The value of the first property named `key`.
    pub fn get(&self, key: &str) -> Option<&PropertyValue> {
        let i = self.keys.iter().position(|k| k == key)?;
        self.values.get(i)
    }

    /// Sets `key` to `value`, replacing an existing value in place (keeping key order) or
    /// appending a new key.
    pub fn insert(&mut self, key: impl Into<String>, value: PropertyValue) {
        let key = key.into();
        match self.keys.iter().position(|k| *k == key) {
            Some(i) if i < self.values.len() => self.values[i] = value,
            _ => {
                self.keys.push(key);
                self.values.push(value);
            }
        }
    }

    /// The `Quality` property, if present and one of the spec's codes. A metric without it is
    /// good (spec §3.7).
    pub fn quality(&self) -> Option<Quality> {
        Quality::from_property(self.get(Quality::PROPERTY_KEY)?)
    }

    pub fn set_quality(&mut self, quality: Quality) {
        self.insert(Quality::PROPERTY_KEY, quality.to_property());
    }

    pub fn to_proto(&self) -> pb::PropertySet {
        pb::PropertySet {
            keys: self.keys.clone(),
            values: self.values.iter().map(PropertyValue::to_proto).collect(),
        }
    }

    /// Reads and checks a PropertySet message at the top level.
    pub fn from_proto(p: pb::PropertySet) -> Result<PropertySet, ValueError> {
        PropertySet::from_proto_at(p, 1)
    }

    /// `depth` counts the Templates and PropertySets this one sits in, itself included.
    pub(crate) fn from_proto_at(
        p: pb::PropertySet,
        depth: usize,
    ) -> Result<PropertySet, ValueError> {
        if depth > MAX_NESTING {
            return Err(ValueError::TooDeep { limit: MAX_NESTING });
        }
        if p.keys.len() != p.values.len() {
            return Err(ValueError::PropertyCount {
                keys: p.keys.len(),
                values: p.values.len(),
            });
        }
        let values = p
            .values
            .into_iter()
            .zip(&p.keys)
            .map(|(v, key)| {
                PropertyValue::from_proto_at(v, depth).map_err(|error| ValueError::Property {
                    key: key.clone(),
                    error: Box::new(error),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PropertySet {
            keys: p.keys,
            values,
        })
    }

    /// Checks what [`PropertySet::to_proto`] writes as given: keys and values pair up, each
    /// datatype is a property type matching its value, nesting within [`MAX_NESTING`].
    pub fn validate(&self) -> Result<(), ValueError> {
        self.validate_at(1)
    }

    pub(crate) fn validate_at(&self, depth: usize) -> Result<(), ValueError> {
        if depth > MAX_NESTING {
            return Err(ValueError::TooDeep { limit: MAX_NESTING });
        }
        if self.keys.len() != self.values.len() {
            return Err(ValueError::PropertyCount {
                keys: self.keys.len(),
                values: self.values.len(),
            });
        }
        for (key, value) in self.keys.iter().zip(&self.values) {
            value
                .validate_at(depth)
                .map_err(|error| ValueError::Property {
                    key: key.clone(),
                    error: Box::new(error),
                })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> PropertySet {
        let mut limits = PropertySet::new();
        limits.insert("engLow", PropertyValue::new(BasicValue::Double(-40.0)));
        limits.insert("engHigh", PropertyValue::new(BasicValue::Double(120.0)));
        let mut set = PropertySet::new();
        set.insert(
            "engUnit",
            PropertyValue::new(BasicValue::String("degC".into())),
        );
        set.insert("limits", PropertyValue::new(limits.clone()));
        set.insert(
            "history",
            PropertyValue::new(vec![limits, PropertySet::new()]),
        );
        set.insert("tooltip", PropertyValue::null(DataType::String));
        set.set_quality(Quality::Stale);
        set
    }

    #[test]
    fn nested_trees_round_trip() {
        let set = tree();
        set.validate().unwrap();
        let p = set.to_proto();
        // PropertyValue.type is the DataType code, not a protobuf field number.
        assert_eq!(p.values[0].r#type, Some(12));
        assert_eq!(p.values[1].r#type, Some(20));
        assert_eq!(p.values[2].r#type, Some(21));
        assert_eq!(p.values[3].is_null, Some(true));
        assert_eq!(PropertySet::from_proto(p), Ok(set));
    }

    #[test]
    fn quality_helpers() {
        let mut set = tree();
        assert_eq!(set.quality(), Some(Quality::Stale));
        set.set_quality(Quality::Bad);
        assert_eq!(set.quality(), Some(Quality::Bad));
        assert_eq!(set.keys.iter().filter(|k| *k == "Quality").count(), 1);
        let q = &set.to_proto().values[4];
        assert_eq!(q.r#type, Some(3));
        assert_eq!(q.value, Some(Field::IntValue(0)));
        assert_eq!(PropertySet::new().quality(), None);
    }

    #[test]
    fn errors_name_the_key() {
        let mut p = tree().to_proto();
        p.keys.pop();
        assert_eq!(
            PropertySet::from_proto(p),
            Err(ValueError::PropertyCount { keys: 4, values: 5 })
        );
        let mut p = tree().to_proto();
        p.values[0].value = Some(Field::IntValue(3));
        assert_eq!(
            PropertySet::from_proto(p).unwrap_err().to_string(),
            "property \"engUnit\": a String value must be in string_value, the metric carries int_value"
        );
        let mut p = tree().to_proto();
        p.values[0].r#type = Some(DataType::Bytes.code());
        assert!(matches!(
            PropertySet::from_proto(p),
            Err(ValueError::Property { .. })
        ));
        let mut p = tree().to_proto();
        p.values[1].r#type = None;
        assert_eq!(
            PropertySet::from_proto(p).unwrap_err().to_string(),
            "property \"limits\": no type is given"
        );
        let mut p = tree().to_proto();
        p.values[3].value = Some(Field::StringValue("x".into()));
        assert!(
            PropertySet::from_proto(p)
                .unwrap_err()
                .to_string()
                .contains("is_null is set")
        );
        let mut p = tree().to_proto();
        p.values[0].value = None;
        assert!(matches!(
            PropertySet::from_proto(p),
            Err(ValueError::Property { .. })
        ));
        let mut set = tree();
        set.values[0].datatype = DataType::Text;
        assert!(matches!(set.validate(), Err(ValueError::Property { .. })));
    }

    #[test]
    fn nesting_is_bounded() {
        let mut set = PropertySet::new();
        for _ in 1..MAX_NESTING {
            let mut outer = PropertySet::new();
            outer.insert("child", PropertyValue::new(set));
            set = outer;
        }
        assert_eq!(PropertySet::from_proto(set.to_proto()), Ok(set.clone()));
        let mut outer = PropertySet::new();
        outer.insert("child", PropertyValue::new(set));
        assert!(
            outer
                .validate()
                .unwrap_err()
                .to_string()
                .contains("deeper than 32")
        );
        assert!(
            PropertySet::from_proto(outer.to_proto())
                .unwrap_err()
                .to_string()
                .contains("deeper than 32")
        );
    }
}
