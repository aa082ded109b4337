//! Template (UDT) values (spec §3.6): definitions in the NBIRTH, instances anywhere.
//!
//! A Template is a list of member [`Metric`]s plus typed parameters, and members may be
//! Template instances themselves, so decoding recurses. The recursion is bounded by
//! [`MAX_NESTING`]: a payload nesting deeper is refused with [`ValueError::TooDeep`] instead
//! of walking the stack into the ground. Member metrics must carry their datatype when they
//! carry a value (Tahu always writes it); the birth-based typing of
//! [`crate::Payload::decode_with`] applies to top-level metrics only.
//!
//! Shape rules checked both ways: a definition (`is_definition = true`) has no
//! `template_ref`; an instance names its definition in `template_ref`. Parameter types must
//! be basic and parameter values must sit in the field their type prescribes.

use crate::payload::{DecodeError, Metric, metric_from_proto};
use crate::proto::payload as pb;
use crate::value::{
    BasicValue, DataType, MAX_NESTING, ParameterValue, ScalarField, ValueError, basic_from_field,
};

/// A Template definition or instance.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Template {
    pub version: Option<String>,
    /// The definition's name; set on instances only.
    pub template_ref: Option<String>,
    pub is_definition: bool,
    pub metrics: Vec<Metric>,
    pub parameters: Vec<Parameter>,
}

/// A Template parameter: a name, a basic type and an optional value (a definition's value is
/// the default).
#[derive(Clone, Debug, PartialEq)]
pub struct Parameter {
    pub name: String,
    pub datatype: DataType,
    pub value: Option<ParameterValue>,
}

impl Parameter {
    /// A parameter with a value; its datatype is the value's.
    pub fn new(name: impl Into<String>, value: ParameterValue) -> Parameter {
        Parameter {
            name: name.into(),
            datatype: value.datatype(),
            value: Some(value),
        }
    }
}

impl Template {
    /// The protobuf message, written as given (see [`Template::validate`]).
    pub fn to_proto(&self) -> pb::Template {
        pb::Template {
            version: self.version.clone(),
            metrics: self.metrics.iter().map(Metric::to_proto).collect(),
            parameters: self
                .parameters
                .iter()
                .map(|p| pb::template::Parameter {
                    name: Some(p.name.clone()),
                    r#type: Some(p.datatype.code()),
                    value: p
                        .value
                        .as_ref()
                        .map(|v| ScalarField::from_scalar(v.to_scalar())),
                })
                .collect(),
            template_ref: self.template_ref.clone(),
            is_definition: Some(self.is_definition),
        }
    }

    /// Reads and checks a Template message at the top level.
    pub fn from_proto(p: pb::Template) -> Result<Template, ValueError> {
        Template::from_proto_at(p, 1)
    }

    /// `depth` counts the Templates and PropertySets this one sits in, itself included.
    pub(crate) fn from_proto_at(p: pb::Template, depth: usize) -> Result<Template, ValueError> {
        if depth > MAX_NESTING {
            return Err(ValueError::TooDeep { limit: MAX_NESTING });
        }
        let is_definition = p.is_definition.unwrap_or(false);
        check_shape(is_definition, p.template_ref.is_some())?;
        let parameters = p
            .parameters
            .into_iter()
            .enumerate()
            .map(|(index, p)| {
                let name = p.name.ok_or(ValueError::ParameterName { index })?;
                let typed = |error| ValueError::Parameter {
                    index,
                    name: name.clone(),
                    error: Box::new(error),
                };
                let code = p.r#type.ok_or_else(|| typed(ValueError::NoType))?;
                let datatype = DataType::from_code(code)
                    .ok_or_else(|| typed(ValueError::UnsupportedType(code)))?;
                if !datatype.is_basic() {
                    return Err(typed(ValueError::NotBasic(datatype)));
                }
                let value = p
                    .value
                    .map(|v| basic_from_field(datatype, v))
                    .transpose()
                    .map_err(typed)?;
                Ok(Parameter {
                    name,
                    datatype,
                    value,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let metrics = p
            .metrics
            .into_iter()
            .enumerate()
            .map(|(index, m)| {
                metric_from_proto(m, index, &mut |_, _| None, depth)
                    .map_err(|e| ValueError::TemplateMetric(Box::new(e)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Template {
            version: p.version,
            template_ref: p.template_ref,
            is_definition,
            metrics,
            parameters,
        })
    }

    /// Checks what [`Template::to_proto`] writes as given: the definition/instance shape,
    /// parameter types and values, and every member metric.
    pub fn validate(&self) -> Result<(), ValueError> {
        self.validate_at(1)
    }

    pub(crate) fn validate_at(&self, depth: usize) -> Result<(), ValueError> {
        if depth > MAX_NESTING {
            return Err(ValueError::TooDeep { limit: MAX_NESTING });
        }
        check_shape(self.is_definition, self.template_ref.is_some())?;
        for (index, p) in self.parameters.iter().enumerate() {
            let error = if !p.datatype.is_basic() {
                ValueError::NotBasic(p.datatype)
            } else {
                match p.value.as_ref().map(BasicValue::datatype) {
                    Some(value) if value != p.datatype => ValueError::TypeMismatch {
                        declared: p.datatype,
                        value,
                    },
                    _ => continue,
                }
            };
            return Err(ValueError::Parameter {
                index,
                name: p.name.clone(),
                error: Box::new(error),
            });
        }
        for (index, m) in self.metrics.iter().enumerate() {
            m.validate_at(index, depth)
                .map_err(|e: DecodeError| ValueError::TemplateMetric(Box::new(e)))?;
        }
        Ok(())
    }
}

fn check_shape(is_definition: bool, has_ref: bool) -> Result<(), ValueError> {
    match (is_definition, has_ref) {
        (true, true) => Err(ValueError::TemplateShape(
            "a template definition must not have a template_ref",
        )),
        (false, false) => Err(ValueError::TemplateShape(
            "a template instance must name its definition in template_ref",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::MetricValue;

    fn motor_definition() -> Template {
        Template {
            version: Some("1.0".into()),
            template_ref: None,
            is_definition: true,
            metrics: vec![
                Metric::new("speed", MetricValue::Float(0.0)),
                Metric::null("torque", DataType::Double),
            ],
            parameters: vec![
                Parameter::new("max_rpm", BasicValue::UInt32(3000)),
                Parameter {
                    name: "site".into(),
                    datatype: DataType::String,
                    value: None,
                },
            ],
        }
    }

    fn instance_of(inner: Template) -> Template {
        Template {
            version: None,
            template_ref: Some("Motor".into()),
            is_definition: false,
            metrics: vec![Metric::new("inner", MetricValue::Template(Box::new(inner)))],
            parameters: vec![],
        }
    }

    #[test]
    fn definitions_and_nested_instances_round_trip() {
        let def = motor_definition();
        def.validate().unwrap();
        assert_eq!(Template::from_proto(def.to_proto()), Ok(def.clone()));
        let mut inner = def;
        inner.is_definition = false;
        inner.template_ref = Some("Motor".into());
        let nested = instance_of(inner);
        nested.validate().unwrap();
        assert_eq!(Template::from_proto(nested.to_proto()), Ok(nested));
    }

    #[test]
    fn nesting_is_bounded() {
        let mut t = Template {
            template_ref: Some("Leaf".into()),
            ..Template::default()
        };
        for _ in 1..MAX_NESTING {
            t = instance_of(t);
        }
        // Exactly MAX_NESTING levels decode.
        assert_eq!(Template::from_proto(t.to_proto()), Ok(t.clone()));
        let too_deep = instance_of(t);
        assert_eq!(
            too_deep
                .validate()
                .map_err(|e| e.to_string().contains("nest deeper than 32")),
            Err(true)
        );
        let e = Template::from_proto(too_deep.to_proto()).unwrap_err();
        assert!(e.to_string().contains("nest deeper than 32"), "{e}");
    }

    #[test]
    fn parameter_errors_name_the_parameter() {
        let mut p = motor_definition().to_proto();
        p.parameters[0].r#type = Some(DataType::Int8Array.code());
        assert_eq!(
            Template::from_proto(p).unwrap_err().to_string(),
            "template parameter 0 (\"max_rpm\"): Int8Array is not a basic data type (1..=14), which DataSet columns and Template parameters need"
        );
        let mut p = motor_definition().to_proto();
        p.parameters[1].name = None;
        assert_eq!(
            Template::from_proto(p),
            Err(ValueError::ParameterName { index: 1 })
        );
        let mut p = motor_definition().to_proto();
        p.parameters[1].r#type = None;
        assert!(matches!(
            Template::from_proto(p),
            Err(ValueError::Parameter { index: 1, .. })
        ));
        let mut def = motor_definition();
        def.parameters[0].datatype = DataType::Int16;
        assert!(matches!(
            def.validate(),
            Err(ValueError::Parameter { index: 0, .. })
        ));
    }

    #[test]
    fn member_errors_name_the_member() {
        let mut p = motor_definition().to_proto();
        p.metrics[0].datatype = Some(DataType::Boolean.code());
        let e = Template::from_proto(p).unwrap_err();
        assert_eq!(
            e.to_string(),
            "template member metric #0 \"speed\", field float_value: a Boolean value must be in boolean_value, the metric carries float_value"
        );
    }

    #[test]
    fn shape_rules() {
        let mut def = motor_definition();
        def.template_ref = Some("X".into());
        assert!(matches!(def.validate(), Err(ValueError::TemplateShape(_))));
        assert!(matches!(
            Template::from_proto(def.to_proto()),
            Err(ValueError::TemplateShape(_))
        ));
        let mut inst = motor_definition();
        inst.is_definition = false;
        assert!(matches!(
            Template::from_proto(inst.to_proto()),
            Err(ValueError::TemplateShape(_))
        ));
    }
}
