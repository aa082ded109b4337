//! Between OPC UA and the model: NodeIds, values, status codes and timestamps. Pure
//! functions; the driver and the simulator use them.

use opcua::types::{
    ByteString, DateTime, Guid, Identifier, NodeId, StatusCode, UAString, Variant,
    VariantScalarTypeId,
};
use uns_model::opcua::{Identifier as Id, Namespace, NodeAddress, opcua_type, opcua_type_name};
use uns_model::{Array, DataType, Quality, Value};

/// The OPC UA NodeId of `address`; a namespace URI is looked up in the server's namespace
/// array (`Server.NamespaceArray`, index = namespace index).
pub fn node_id(address: &NodeAddress, namespaces: &[String]) -> Result<NodeId, String> {
    let ns = match &address.namespace {
        Namespace::Index(i) => *i,
        Namespace::Uri(uri) => namespaces
            .iter()
            .position(|n| n == uri)
            .and_then(|i| u16::try_from(i).ok())
            .ok_or_else(|| {
                format!(
                    "{address}: the server has no namespace {uri:?}; it has: {}",
                    namespaces.join(", ")
                )
            })?,
    };
    let identifier = match &address.identifier {
        Id::Numeric(n) => Identifier::Numeric(*n),
        Id::String(s) => Identifier::String(UAString::from(s.as_str())),
        Id::Guid(g) => Identifier::Guid(Guid::from_bytes(guid_byte_order(*g))),
        Id::Opaque(b) => Identifier::ByteString(ByteString::from(b.clone())),
    };
    Ok(NodeId::new(ns, identifier))
}

/// The model's address of `id`, the inverse of [`node_id`]. A node outside namespace 0 is
/// addressed by its namespace URI when `namespaces` (the server's namespace array) names
/// one: a URI stays valid when the server's configuration renumbers its namespaces, an index
/// may not. Namespace 0 is the OPC UA standard's own and never moves.
pub fn node_address(id: &NodeId, namespaces: &[String]) -> NodeAddress {
    let uri = namespaces
        .get(usize::from(id.namespace))
        // The address notation ends the URI at the first `;`, so such a URI cannot be
        // written; the index still addresses the node.
        .filter(|uri| id.namespace != 0 && !uri.is_empty() && !uri.contains(';'));
    let namespace = match uri {
        Some(uri) => Namespace::Uri(uri.clone()),
        None => Namespace::Index(id.namespace),
    };
    let identifier = match &id.identifier {
        Identifier::Numeric(n) => Id::Numeric(*n),
        Identifier::String(s) => Id::String(s.as_ref().to_owned()),
        Identifier::Guid(g) => Id::Guid(guid_byte_order(g.to_bytes())),
        Identifier::ByteString(b) => Id::Opaque(b.as_ref().to_vec()),
    };
    NodeAddress {
        namespace,
        identifier,
    }
}

/// Swaps a GUID between the order it is written in (the model's) and the order OPC UA
/// encodes it in, which async-opcua's `Guid` bytes use: the first three fields
/// little-endian (Part 6, the binary encoding of Guid). The swap is its own inverse.
fn guid_byte_order(mut bytes: [u8; 16]) -> [u8; 16] {
    bytes[0..4].reverse();
    bytes[4..6].reverse();
    bytes[6..8].reverse();
    bytes
}

/// The namespace table from the value of `Server.NamespaceArray` (index = namespace index);
/// empty when the server sent something else.
pub fn namespace_table(value: Option<&Variant>) -> Vec<String> {
    match value {
        Some(Variant::Array(a)) => a
            .values
            .iter()
            .map(|v| match v {
                Variant::String(s) => s.as_ref().to_owned(),
                _ => String::new(),
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The value of a tag of `datatype` from what the server sent. The server's type must be
/// the one the tag is read as ([`opcua_type`]), scalar for a scalar tag and a
/// one-dimensional array for an array tag: a silent conversion could lose range or
/// precision, so a mismatch is an error naming both types.
pub fn to_value(datatype: DataType, variant: &Variant) -> Result<Value, String> {
    let expected = || {
        format!(
            "the tag is {datatype} (read as OPC UA {})",
            opcua_type_name(datatype)
        )
    };
    match variant {
        Variant::Empty => Err("the node has no value".to_owned()),
        Variant::Array(array) if datatype.is_array() => to_array(datatype, array),
        // OPC UA treats a ByteString and a one-dimensional Byte array as the same value
        // (Part 4, 7.22), and servers send either for a Byte[] variable.
        Variant::ByteString(bytes) if datatype == DataType::UInt8Array => {
            Ok(Array::UInt8(bytes.value.clone().unwrap_or_default()).into())
        }
        Variant::Array(array) => Err(format!(
            "the node holds an array ({:?}[]), {}; make the tag an array type",
            array.value_type,
            expected()
        )),
        scalar if datatype.is_array() => Err(format!(
            "the node holds a single {}, not an array; {}",
            variant_type_name(scalar),
            expected()
        )),
        scalar => {
            let value = scalar_value(scalar).ok_or_else(|| {
                format!(
                    "the node holds a {}, which has no sparkedge data type; {}",
                    variant_type_name(scalar),
                    expected()
                )
            })?;
            if value.datatype() != datatype {
                return Err(format!(
                    "the node holds {}, {}",
                    opcua_type_name(value.datatype()),
                    expected()
                ));
            }
            Ok(value)
        }
    }
}

/// A one-dimensional array of the tag's element type.
fn to_array(datatype: DataType, array: &opcua::types::Array) -> Result<Value, String> {
    if let Some(dims) = array.dimensions.as_ref().filter(|d| d.len() > 1) {
        return Err(format!(
            "the node holds a {}-dimensional {:?} array, the tag is {datatype} (a \
             one-dimensional OPC UA {})",
            dims.len(),
            array.value_type,
            opcua_type_name(datatype)
        ));
    }
    let (element_name, element_id) = opcua_type(datatype);
    if array.value_type as u32 != element_id {
        return Err(format!(
            "the node holds {:?}[], the tag is {datatype} (read as OPC UA {element_name}[])",
            array.value_type
        ));
    }
    let mut out = Array::with_capacity(datatype, array.values.len());
    for (i, element) in array.values.iter().enumerate() {
        // A well-formed array has only elements of its type; check rather than trust.
        let value = scalar_value(element)
            .filter(|v| v.datatype() == datatype.element())
            .ok_or_else(|| {
                format!(
                    "element {i} of the {element_name}[] array is a {}",
                    variant_type_name(element)
                )
            })?;
        let _ = out.push(value);
    }
    Ok(out.into())
}

/// The value of a scalar variant of one of our types; `None` for any other.
fn scalar_value(variant: &Variant) -> Option<Value> {
    Some(match variant {
        Variant::Boolean(v) => Value::Bool(*v),
        Variant::SByte(v) => Value::Int8(*v),
        Variant::Byte(v) => Value::UInt8(*v),
        Variant::Int16(v) => Value::Int16(*v),
        Variant::UInt16(v) => Value::UInt16(*v),
        Variant::Int32(v) => Value::Int32(*v),
        Variant::UInt32(v) => Value::UInt32(*v),
        Variant::Int64(v) => Value::Int64(*v),
        Variant::UInt64(v) => Value::UInt64(*v),
        Variant::Float(v) => Value::Float32(*v),
        Variant::Double(v) => Value::Float64(*v),
        // A null string (length -1 on the wire) reads as empty: the tag has a value.
        Variant::String(s) => Value::String(s.as_ref().to_owned()),
        Variant::DateTime(t) => Value::DateTime(datetime_ms(t)),
        _ => return None,
    })
}

/// The OPC UA name of a variant's type (`Guid`, `Double[]`).
fn variant_type_name(variant: &Variant) -> String {
    match variant.type_id() {
        opcua::types::VariantTypeId::Scalar(t) => format!("{t:?}"),
        opcua::types::VariantTypeId::Array(t, _) => format!("{t:?}[]"),
        opcua::types::VariantTypeId::Empty => "nothing".to_owned(),
    }
}

/// The OPC UA value of `value`, of the built-in type [`opcua_type`] names; an array value
/// becomes a one-dimensional array of it.
pub fn to_variant(value: &Value) -> Variant {
    match value {
        Value::Bool(v) => Variant::Boolean(*v),
        Value::Int8(v) => Variant::SByte(*v),
        Value::UInt8(v) => Variant::Byte(*v),
        Value::Int16(v) => Variant::Int16(*v),
        Value::UInt16(v) => Variant::UInt16(*v),
        Value::Int32(v) => Variant::Int32(*v),
        Value::UInt32(v) => Variant::UInt32(*v),
        Value::Int64(v) => Variant::Int64(*v),
        Value::UInt64(v) => Variant::UInt64(*v),
        Value::Float32(v) => Variant::Float(*v),
        Value::Float64(v) => Variant::Double(*v),
        Value::String(v) => Variant::String(UAString::from(v.as_str())),
        Value::DateTime(ms) => Variant::DateTime(Box::new(opcua_datetime(*ms))),
        Value::Array(array) => {
            let element = array.datatype().element();
            // Every scalar type of ours is one of OPC UA's built-in scalar types.
            let value_type = VariantScalarTypeId::try_from(opcua_type(element).1)
                .unwrap_or(VariantScalarTypeId::Boolean);
            Variant::Array(Box::new(opcua::types::Array {
                value_type,
                values: array.iter().map(|v| to_variant(&v)).collect(),
                dimensions: None,
            }))
        }
    }
}

/// Milliseconds since the Unix epoch of an OPC UA DateTime value. Our datetimes start at
/// 1970, so earlier times (above all the null DateTime, 1601-01-01, which servers use for
/// "never") read as the epoch, the usual "no time" of Unix systems.
fn datetime_ms(t: &DateTime) -> u64 {
    unix_ms(t).unwrap_or(0)
}

/// The OPC UA DateTime of `ms` milliseconds since the Unix epoch; times beyond OPC UA's
/// range (about year 30800) saturate.
fn opcua_datetime(ms: u64) -> DateTime {
    let ticks = i64::try_from(ms)
        .ok()
        .and_then(|ms| ms.checked_mul(10_000))
        .and_then(|t| t.checked_add(UNIX_EPOCH_TICKS))
        .unwrap_or(i64::MAX);
    DateTime::from(ticks)
}

/// The three severities of an OPC UA status code (Part 4, 7.39).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Good,
    Uncertain,
    Bad,
}

/// A status code's severity and its name (`BadNodeIdUnknown`), the reason users see.
pub fn status(code: StatusCode) -> (Severity, String) {
    let severity = if code.is_good() {
        Severity::Good
    } else if code.is_uncertain() {
        Severity::Uncertain
    } else {
        Severity::Bad
    };
    (severity, code.to_string())
}

/// The quality of a sample with status `code`. An uncertain status (sensor out of
/// calibration, last usable value, substituted value…) still qualifies a value the server
/// sent, so it is passed on with that value; a bad one has no value worth passing on.
pub fn quality(code: StatusCode) -> Quality {
    match status(code).0 {
        Severity::Good => Quality::Good,
        Severity::Uncertain => Quality::Uncertain,
        Severity::Bad => Quality::Bad,
    }
}

/// 100 ns ticks from 1601-01-01 to 1970-01-01.
const UNIX_EPOCH_TICKS: i64 = 116_444_736_000_000_000;

/// Milliseconds since the Unix epoch of an OPC UA time; `None` for the null time or one
/// before 1970 (a source that does not keep time).
pub fn unix_ms(t: &DateTime) -> Option<u64> {
    let ticks = t.ticks();
    (ticks > UNIX_EPOCH_TICKS).then(|| ((ticks - UNIX_EPOCH_TICKS) / 10_000) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value_of(dt: DataType) -> Value {
        match dt {
            DataType::Bool => Value::Bool(true),
            DataType::Int8 => Value::Int8(-8),
            DataType::Int16 => Value::Int16(-16),
            DataType::Int32 => Value::Int32(-32),
            DataType::Int64 => Value::Int64(-64),
            DataType::UInt8 => Value::UInt8(8),
            DataType::UInt16 => Value::UInt16(16),
            DataType::UInt32 => Value::UInt32(32),
            DataType::UInt64 => Value::UInt64(u64::MAX),
            DataType::Float32 => Value::Float32(1.5),
            DataType::Float64 => Value::Float64(-2.25),
            DataType::String => Value::String("Grüße".into()),
            DataType::DateTime => Value::DateTime(1_772_346_600_123),
            array => {
                let mut a = Array::with_capacity(array, 3);
                for v in [value_of(array.element()), Value::zero(array.element())] {
                    a.push(v.clone()).unwrap();
                    a.push(v).unwrap();
                }
                a.into()
            }
        }
    }

    #[test]
    fn every_type_round_trips_through_its_variant() {
        for dt in DataType::ALL {
            let v = value_of(dt);
            let variant = to_variant(&v);
            // The variant is of the built-in type the tag maps to, by its numeric id, and
            // an array exactly when the tag is one.
            assert_eq!(
                variant.scalar_type_id().map(|t| t as u32),
                Some(opcua_type(dt).1),
                "{dt}"
            );
            assert_eq!(variant.is_array(), dt.is_array(), "{dt}");
            assert_eq!(to_value(dt, &variant), Ok(v));
        }
    }

    #[test]
    fn datetimes_are_unix_milliseconds_and_the_null_time_is_the_epoch() {
        let t = to_variant(&Value::DateTime(1_795_300_012_345));
        let Variant::DateTime(ua) = &t else {
            panic!("{t:?}")
        };
        assert_eq!(ua.ticks(), UNIX_EPOCH_TICKS + 1_795_300_012_345 * 10_000);
        let null = Variant::DateTime(Box::new(DateTime::null()));
        assert_eq!(to_value(DataType::DateTime, &null), Ok(Value::DateTime(0)));
        // Out of OPC UA's range: saturates rather than overflowing.
        assert!(matches!(
            to_variant(&Value::DateTime(u64::MAX)),
            Variant::DateTime(_)
        ));
    }

    #[test]
    fn a_byte_string_reads_as_a_byte_array() {
        let bytes = Variant::ByteString(ByteString::from(vec![1u8, 2, 255]));
        assert_eq!(
            to_value(DataType::UInt8Array, &bytes),
            Ok(Array::UInt8(vec![1, 2, 255]).into())
        );
    }

    #[test]
    fn a_type_mismatch_names_both_types() {
        let err = to_value(DataType::Int32, &Variant::Int16(3)).unwrap_err();
        assert!(
            err.contains("Int16") && err.contains("int32") && err.contains("Int32"),
            "{err}"
        );
        let err = to_value(DataType::Float64, &Variant::from(DateTime::now())).unwrap_err();
        assert!(err.contains("DateTime") && err.contains("Double"), "{err}");
        let err = to_value(DataType::Bool, &Variant::Empty).unwrap_err();
        assert!(err.contains("no value"), "{err}");
        let guid = Variant::Guid(Box::default());
        let err = to_value(DataType::String, &guid).unwrap_err();
        assert!(
            err.contains("Guid") && err.contains("no sparkedge data type"),
            "{err}"
        );
    }

    #[test]
    fn array_mismatches_name_both_types() {
        let ints = to_variant(&Array::Int32(vec![1, 2]).into());
        let err = to_value(DataType::Float32Array, &ints).unwrap_err();
        assert!(
            err.contains("Int32[]") && err.contains("float32[]") && err.contains("Float[]"),
            "{err}"
        );
        let err = to_value(DataType::Int32, &ints).unwrap_err();
        assert!(
            err.contains("an array (Int32[])") && err.contains("the tag is int32"),
            "{err}"
        );
        let err = to_value(DataType::Int32Array, &Variant::Int32(1)).unwrap_err();
        assert!(
            err.contains("single Int32, not an array") && err.contains("Int32[]"),
            "{err}"
        );
        let matrix = opcua::types::Array::new_multi(
            VariantScalarTypeId::Int32,
            vec![Variant::Int32(1); 4],
            vec![2u32, 2],
        )
        .unwrap();
        let err = to_value(DataType::Int32Array, &Variant::Array(Box::new(matrix))).unwrap_err();
        assert!(
            err.contains("2-dimensional Int32 array") && err.contains("int32[]"),
            "{err}"
        );
        // One dimension given explicitly is still a plain array.
        let row = opcua::types::Array::new_multi(
            VariantScalarTypeId::Int32,
            vec![Variant::Int32(1); 2],
            vec![2u32],
        )
        .unwrap();
        assert_eq!(
            to_value(DataType::Int32Array, &Variant::Array(Box::new(row))),
            Ok(Array::Int32(vec![1, 1]).into())
        );
        // An array whose elements do not match its declared type is refused, not trusted.
        let forged = Variant::Array(Box::new(opcua::types::Array {
            value_type: VariantScalarTypeId::Int32,
            values: vec![Variant::Int32(1), Variant::Int16(2)],
            dimensions: None,
        }));
        let err = to_value(DataType::Int32Array, &forged).unwrap_err();
        assert!(err.contains("element 1") && err.contains("Int16"), "{err}");
    }

    #[test]
    fn status_codes_map_to_quality_with_their_name() {
        assert_eq!(quality(StatusCode::Good), Quality::Good);
        assert_eq!(quality(StatusCode::GoodLocalOverride), Quality::Good);
        for uncertain in [
            StatusCode::Uncertain,
            StatusCode::UncertainLastUsableValue,
            StatusCode::UncertainSensorNotAccurate,
            StatusCode::UncertainSubstituteValue,
            StatusCode::UncertainNoCommunicationLastUsableValue,
        ] {
            assert_eq!(quality(uncertain), Quality::Uncertain, "{uncertain}");
        }
        assert_eq!(quality(StatusCode::BadNodeIdUnknown), Quality::Bad);
        assert_eq!(quality(StatusCode::BadSensorFailure), Quality::Bad);
        assert_eq!(
            status(StatusCode::UncertainLastUsableValue),
            (Severity::Uncertain, "UncertainLastUsableValue".to_owned())
        );
        assert_eq!(
            status(StatusCode::BadNodeIdUnknown),
            (Severity::Bad, "BadNodeIdUnknown".to_owned())
        );
    }

    #[test]
    fn node_ids_resolve_namespace_uris() {
        let ns = vec![
            "http://opcfoundation.org/UA/".to_owned(),
            "urn:a".to_owned(),
            "urn:b".to_owned(),
        ];
        let a: NodeAddress = "nsu=urn:b;i=7".parse().unwrap();
        assert_eq!(node_id(&a, &ns), Ok(NodeId::new(2, 7u32)));
        let s: NodeAddress = "ns=1;s=X.Y".parse().unwrap();
        assert_eq!(node_id(&s, &[]), Ok(NodeId::new(1, "X.Y")));
        let missing: NodeAddress = "nsu=urn:c;i=7".parse().unwrap();
        let err = node_id(&missing, &ns).unwrap_err();
        assert!(
            err.contains("urn:c") && err.contains("urn:a, urn:b"),
            "{err}"
        );
    }

    #[test]
    fn node_ids_print_back_as_the_address_they_came_from() {
        let ns = vec![
            "http://opcfoundation.org/UA/".to_owned(),
            "urn:a".to_owned(),
            "urn:b".to_owned(),
            // Not writable in the notation: such a node keeps its index.
            "urn:odd;uri".to_owned(),
        ];
        for (address, index) in [
            ("i=85", "i=85"),
            ("nsu=urn:b;i=7", "ns=2;i=7"),
            (
                "nsu=urn:a;s=Line 3.Filler;Temp=1",
                "ns=1;s=Line 3.Filler;Temp=1",
            ),
            (
                "nsu=urn:a;g=09087e75-8e5e-499b-954f-f2a9603db28a",
                "ns=1;g=09087e75-8e5e-499b-954f-f2a9603db28a",
            ),
            ("nsu=urn:b;b=AAEC/w==", "ns=2;b=AAEC/w=="),
            ("ns=3;s=X", "ns=3;s=X"),
            // An index the namespace array does not have stays an index.
            ("ns=9;i=1", "ns=9;i=1"),
        ] {
            let parsed: NodeAddress = address.parse().unwrap();
            let id = node_id(&parsed, &ns).unwrap();
            // With the namespace array the URI form comes back, without it the index form;
            // both resolve to the same node.
            assert_eq!(node_address(&id, &ns).to_string(), address);
            let by_index = node_address(&id, &[]);
            assert_eq!(by_index.to_string(), index);
            assert_eq!(node_id(&by_index, &[]), Ok(id));
        }
    }

    #[test]
    fn guids_keep_their_written_form() {
        // The text form on both sides: the model's and the one OPC UA tools show.
        let a: NodeAddress = "ns=1;g=09087e75-8e5e-499b-954f-f2a9603db28a"
            .parse()
            .unwrap();
        let id = node_id(&a, &[]).unwrap();
        assert_eq!(
            id.to_string(),
            "ns=1;g=09087e75-8e5e-499b-954f-f2a9603db28a"
        );
    }

    #[test]
    fn source_times_become_unix_milliseconds() {
        let t = DateTime::from(UNIX_EPOCH_TICKS + 1_795_300_012_345 * 10_000);
        assert_eq!(unix_ms(&t), Some(1_795_300_012_345));
        assert_eq!(unix_ms(&DateTime::null()), None);
    }
}
