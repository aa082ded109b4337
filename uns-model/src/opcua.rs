//! How OPC UA tags are addressed in the model: a NodeId in its standard string form, and
//! which OPC UA built-in type each of our data types is read and written as.
//!
//! Address notation (OPC UA Part 6, 5.3.1.10):
//!
//! | form | example |
//! |---|---|
//! | `ns=<n>;i=<u32>` | `ns=2;i=1001` |
//! | `ns=<n>;s=<string>` | `ns=2;s=Line3.Filler.Temperature` |
//! | `ns=<n>;g=<guid>` | `ns=2;g=09087e75-8e5e-499b-954f-f2a9603db28a` |
//! | `ns=<n>;b=<base64>` | `ns=2;b=M/RbKBsRVkePCePcx24oRA==` |
//! | `nsu=<uri>;...` | `nsu=urn:sparkedge:sim;s=Demo.Counter` |
//!
//! `ns=` may be left out, meaning namespace 0. A namespace *URI* is resolved to its index
//! on the server when the driver connects, because indexes may change when the server's
//! configuration does, while URIs do not.

use std::fmt;

use crate::value::DataType;

/// Which namespace a node is in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Namespace {
    Index(u16),
    Uri(String),
}

/// The identifier of a node within its namespace.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Identifier {
    Numeric(u32),
    String(String),
    /// The 16 bytes of the GUID in the order they are written (big-endian text form).
    Guid([u8; 16]),
    Opaque(Vec<u8>),
}

/// A parsed OPC UA NodeId.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeAddress {
    pub namespace: Namespace,
    pub identifier: Identifier,
}

const FORMS: &str = "ns=<index>;i=<number>, ns=<index>;s=<string>, ns=<index>;g=<guid>, \
                     ns=<index>;b=<base64> (ns= optional, meaning 0), or nsu=<uri>;… instead of ns=";

impl std::str::FromStr for NodeAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<NodeAddress, String> {
        let bad = |why: &str| format!("{s:?} is not a NodeId: {why}; write {FORMS}");
        let (namespace, rest) = if let Some(rest) = s.strip_prefix("nsu=") {
            let (uri, rest) = rest
                .split_once(';')
                .ok_or_else(|| bad("nsu=<uri> must be followed by ;"))?;
            if uri.is_empty() {
                return Err(bad("the namespace URI is empty"));
            }
            (Namespace::Uri(uri.to_owned()), rest)
        } else if let Some(rest) = s.strip_prefix("ns=") {
            let (index, rest) = rest
                .split_once(';')
                .ok_or_else(|| bad("ns=<index> must be followed by ;"))?;
            let index = index
                .parse::<u16>()
                .map_err(|_| bad("the namespace index must be a number from 0 to 65535"))?;
            (Namespace::Index(index), rest)
        } else {
            (Namespace::Index(0), s)
        };
        let (kind, id) = rest
            .split_once('=')
            .ok_or_else(|| bad("missing the identifier (i=, s=, g= or b=)"))?;
        let identifier =
            match kind {
                "i" => Identifier::Numeric(
                    id.parse()
                        .map_err(|_| bad("i= takes a number from 0 to 4294967295"))?,
                ),
                "s" => {
                    if id.is_empty() {
                        return Err(bad("s= takes a non-empty string"));
                    }
                    if id.chars().count() > 4096 {
                        return Err(bad("s= is limited to 4096 characters"));
                    }
                    Identifier::String(id.to_owned())
                }
                "g" => Identifier::Guid(parse_guid(id).ok_or_else(|| {
                    bad("g= takes a GUID like 09087e75-8e5e-499b-954f-f2a9603db28a")
                })?),
                "b" => {
                    let bytes = decode_base64(id)
                        .filter(|b| !b.is_empty())
                        .ok_or_else(|| bad("b= takes non-empty standard base64"))?;
                    Identifier::Opaque(bytes)
                }
                other => {
                    return Err(bad(&format!(
                        "unknown identifier type {other:?} (allowed: i, s, g, b)"
                    )));
                }
            };
        Ok(NodeAddress {
            namespace,
            identifier,
        })
    }
}

impl fmt::Display for NodeAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Namespace::Index(0) => {}
            Namespace::Index(n) => write!(f, "ns={n};")?,
            Namespace::Uri(uri) => write!(f, "nsu={uri};")?,
        }
        match &self.identifier {
            Identifier::Numeric(n) => write!(f, "i={n}"),
            Identifier::String(s) => write!(f, "s={s}"),
            Identifier::Guid(g) => {
                f.write_str("g=")?;
                for (i, b) in g.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        f.write_str("-")?;
                    }
                    write!(f, "{b:02x}")?;
                }
                Ok(())
            }
            Identifier::Opaque(b) => write!(f, "b={}", encode_base64(b)),
        }
    }
}

/// `8-4-4-4-12` hexadecimal digits, either case.
fn parse_guid(s: &str) -> Option<[u8; 16]> {
    let groups: Vec<&str> = s.split('-').collect();
    let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    if lengths != [8, 4, 4, 4, 12] {
        return None;
    }
    let hex: String = groups.concat();
    let mut out = [0u8; 16];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4), as OPC UA writes ByteString identifiers.
fn decode_base64(s: &str) -> Option<Vec<u8>> {
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (n, chunk) in bytes.chunks(4).enumerate() {
        let last = n + 1 == bytes.len() / 4;
        let pad = chunk.iter().rev().take_while(|&&b| b == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut acc = 0u32;
        for &b in &chunk[..4 - pad] {
            let v = BASE64.iter().position(|&c| c == b)? as u32;
            acc = acc << 6 | v;
        }
        acc <<= 6 * pad as u32;
        let three = [(acc >> 16) as u8, (acc >> 8) as u8, acc as u8];
        out.extend_from_slice(&three[..3 - pad]);
    }
    Some(out)
}

fn encode_base64(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let mut acc = 0u32;
        for (i, &b) in chunk.iter().enumerate() {
            acc |= u32::from(b) << (16 - 8 * i);
        }
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[(acc >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The OPC UA built-in type a tag of `datatype` is read and written as (Part 6, 5.1.2),
/// with its numeric id. For an array type it is the type of the elements: the node holds a
/// one-dimensional array (ValueRank 1) of them. Every one of our types has one; OPC UA's
/// ByteString, Guid and structured types have no counterpart in our model yet.
pub fn opcua_type(datatype: DataType) -> (&'static str, u32) {
    match datatype.element() {
        DataType::Bool => ("Boolean", 1),
        DataType::Int8 => ("SByte", 2),
        DataType::UInt8 => ("Byte", 3),
        DataType::Int16 => ("Int16", 4),
        DataType::UInt16 => ("UInt16", 5),
        DataType::Int32 => ("Int32", 6),
        DataType::UInt32 => ("UInt32", 7),
        DataType::Int64 => ("Int64", 8),
        DataType::UInt64 => ("UInt64", 9),
        DataType::Float32 => ("Float", 10),
        DataType::Float64 => ("Double", 11),
        DataType::String => ("String", 12),
        // `element()` is always a scalar, so the rest is datetime.
        _ => ("DateTime", 13),
    }
}

/// How OPC UA writes the type in messages: `Float`, or `Float[]` for an array of Float.
pub fn opcua_type_name(datatype: DataType) -> String {
    let name = opcua_type(datatype).0;
    if datatype.is_array() {
        format!("{name}[]")
    } else {
        name.to_owned()
    }
}

/// Our scalar data type for an OPC UA built-in type name, or an error naming what is
/// supported. A node holding a one-dimensional array of it (ValueRank 1) is a tag of
/// [`DataType::array`] of the result.
pub fn datatype_for_opcua(name: &str) -> Result<DataType, String> {
    DataType::SCALARS
        .into_iter()
        .find(|&dt| opcua_type(dt).0 == name)
        .ok_or_else(|| {
            let names: Vec<&str> = DataType::SCALARS.iter().map(|&d| opcua_type(d).0).collect();
            format!(
                "OPC UA type {name:?} has no sparkedge data type; supported: {} (and \
                 one-dimensional arrays of each)",
                names.join(", ")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(s: &str) -> String {
        s.parse::<NodeAddress>().unwrap().to_string()
    }

    #[test]
    fn every_standard_form_parses_and_prints_back() {
        let n: NodeAddress = "ns=2;i=1001".parse().unwrap();
        assert_eq!(n.namespace, Namespace::Index(2));
        assert_eq!(n.identifier, Identifier::Numeric(1001));
        let n: NodeAddress = "i=2258".parse().unwrap();
        assert_eq!(n.namespace, Namespace::Index(0));
        let n: NodeAddress = "ns=3;s=Line 3.Filler;Temp=1".parse().unwrap();
        assert_eq!(
            n.identifier,
            Identifier::String("Line 3.Filler;Temp=1".into())
        );
        let n: NodeAddress = "nsu=urn:x:y;s=a".parse().unwrap();
        assert_eq!(n.namespace, Namespace::Uri("urn:x:y".into()));
        let g: NodeAddress = "ns=1;g=09087E75-8E5E-499B-954F-F2A9603DB28A"
            .parse()
            .unwrap();
        assert_eq!(
            g.identifier,
            Identifier::Guid([
                0x09, 0x08, 0x7e, 0x75, 0x8e, 0x5e, 0x49, 0x9b, 0x95, 0x4f, 0xf2, 0xa9, 0x60, 0x3d,
                0xb2, 0x8a
            ])
        );
        let b: NodeAddress = "ns=1;b=AAEC/w==".parse().unwrap();
        assert_eq!(b.identifier, Identifier::Opaque(vec![0, 1, 2, 255]));
        for s in [
            "ns=2;i=1001",
            "i=85",
            "ns=3;s=A.B",
            "nsu=urn:sparkedge:sim;s=Counter",
            "ns=1;g=09087e75-8e5e-499b-954f-f2a9603db28a",
            "ns=1;b=AAEC/w==",
            "ns=1;b=YWJj",
            "ns=1;b=YWI=",
        ] {
            assert_eq!(round(s), s);
        }
        assert_eq!(round("ns=0;i=85"), "i=85");
    }

    #[test]
    fn bad_node_ids_name_the_value_and_the_forms() {
        for bad in [
            "",
            "ns=2",
            "ns=x;i=1",
            "ns=70000;i=1",
            "ns=2;i=-1",
            "ns=2;i=4294967296",
            "ns=2;s=",
            "ns=2;g=1234",
            "ns=2;g=09087e75-8e5e-499b-954f-f2a9603db28z",
            "ns=2;b=abc",
            "ns=2;b=a=bc",
            "ns=2;b=",
            "ns=2;x=1",
            "nsu=;s=a",
            "nsu=urn:x",
            "Temperature",
        ] {
            let err = bad.parse::<NodeAddress>().unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{bad}: {err}");
            assert!(err.contains("ns=<index>;i=<number>"), "{bad}: {err}");
        }
    }

    #[test]
    fn base64_round_trips_any_bytes() {
        for len in 0..40u8 {
            let bytes: Vec<u8> = (0..len).map(|i| i.wrapping_mul(37) ^ 0xa5).collect();
            assert_eq!(decode_base64(&encode_base64(&bytes)), Some(bytes));
        }
    }

    #[test]
    fn every_data_type_has_an_opcua_type_and_back() {
        for dt in DataType::SCALARS {
            let (name, id) = opcua_type(dt);
            assert_eq!(datatype_for_opcua(name), Ok(dt));
            assert!((1..=13).contains(&id));
            let array = dt.array().unwrap();
            assert_eq!(
                opcua_type(array),
                (name, id),
                "arrays are of their element type"
            );
            assert_eq!(opcua_type_name(array), format!("{name}[]"));
        }
        assert_eq!(opcua_type(DataType::Float32), ("Float", 10));
        assert_eq!(opcua_type(DataType::DateTime), ("DateTime", 13));
        let err = datatype_for_opcua("Guid").unwrap_err();
        assert!(
            err.contains("\"Guid\"") && err.contains("Boolean, SByte") && err.contains("DateTime"),
            "{err}"
        );
    }
}
