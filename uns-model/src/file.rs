//! The TOML file read by `sparkedge import` and written by `sparkedge export`.
//!
//! The file is the model's serde form, so there is one definition of the format (the structs
//! in [`crate::model`]); this module only adds error reporting in the model's own terms (a
//! field path, the offending text and the parser's line/column) and validation, so a file is
//! either accepted whole or rejected with every problem named.

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::model::{Area, Device, DriverConfig, Line, Model, Namespace, SparkplugIds, Tag};
use crate::validate::{ModelError, ModelErrors};
use crate::value::DataType;

const HEADER: &str = "\
# sparkedge model: the namespace, devices and tags of one appliance.
# Import with `sparkedge import FILE`; `sparkedge export` writes this format.
#
# [namespace]  enterprise and site, the first two levels of every UNS topic.
# [sparkplug]  edge_node_id, group_id (defaults to the site), and primary_host_id (the SCADA
#              host whose STATE gates births; none by default).
# [[northbound]] a plant MQTT broker with its own Sparkplug session: name, servers
#              (\"mqtt://host:1883\", \"mqtts://host:8883\", tried in order), optional client_id,
#              username, password, ca_pem (PEM text; needed for mqtts://), primary_host_id,
#              enabled.
# [[area]]     an ISA-95 area; each [[area.line]] below it has a name and its cells.
# [[device]]   a PLC connection; `driver` selects the protocol: \"simulator\", \"modbus-tcp\",
#              \"modbus-rtu\" (serial line), \"modbus-rtu-tcp\" (serial gateway) or \"opc-ua\"
#              (endpoint = \"opc.tcp://host:4840\"; tag addresses are NodeIds like ns=2;s=Temp).
# [[tag]]      one value: device, location (\"area/line\" or \"area/line/cell\"), name,
#              datatype, address (driver syntax), optional unit, description, writable;
#              datatype: bool, int8..int64, uint8..uint64, float32, float64, string,
#              datetime, or an array of one of them from OPC UA: \"float32[]\"…;
#              numeric tags: eng_low/eng_high, deadband or deadband_percent; Modbus tags:
#              byte_order, length, raw_type with gain/offset or raw_low/raw_high (onto
#              eng_low/eng_high), scan_class.
# [[scan_class]] a named poll period (name, period_ms) that tags can use.
#
# A tag is published to the UNS as enterprise/site/location/name and to Sparkplug as
# metric location/name of device `device`. Names: ASCII letters, digits, '_' and '-'.

";

/// Parses and validates a model file. Syntax and shape errors come back as a single
/// [`ModelError`]; a well-formed file then gets every validation error.
pub fn from_toml(text: &str) -> Result<Model, ModelErrors> {
    let mut model: Model = toml::from_str(text).map_err(|e| shape_error(text, &e))?;
    model.validate()?;
    normalise_addresses(&mut model);
    Ok(model)
}

/// Rewrites classic Modbus addresses (`40101`) in the 0-based form (`hr:100`), so the store
/// and every export hold one spelling. Runs on a validated model.
fn normalise_addresses(model: &mut Model) {
    for tag in &mut model.tags {
        let modbus = model
            .devices
            .iter()
            .any(|d| d.name == tag.device && d.driver.is_modbus());
        if modbus && let Ok(address) = tag.address.parse::<crate::ModbusAddress>() {
            tag.address = address.to_string().into();
        }
    }
}

/// Writes a model in the file format, with a header explaining it.
pub fn to_toml(model: &Model) -> String {
    // Serializing plain structs, strings and integers cannot fail.
    let body = toml::to_string(model).expect("the model always serializes to TOML");
    format!("{HEADER}{body}")
}

fn shape_error(text: &str, e: &toml::de::Error) -> ModelError {
    let span = e.span();
    let mut value = span.clone().and_then(|s| text.get(s)).unwrap_or_default();
    let mut field = span
        .and_then(|s| {
            let doc = DeTable::parse(text).ok()?;
            let mut path = String::new();
            table_path(doc.get_ref(), s.start, &mut path).then_some(path)
        })
        .unwrap_or_else(|| "file".to_owned());
    // Keys that serde buffers (those of a flattened `driver`) lose their span and the error
    // points at the enclosing table; the message still names the key.
    if let Some(key) = e
        .message()
        .strip_prefix("unknown field `")
        .and_then(|m| m.split('`').next())
        && !field.ends_with(&format!(".{key}"))
    {
        field = format!("{field}.{key}");
        value = key;
    }
    let value = value.trim_matches(|c| c == '"' || c == '\'');
    // The Display form carries line, column and a caret under the offending text.
    ModelError::new(field, value, e.to_string().trim_end())
}

/// Appends to `path` the key path (`tag[2].colour`) of the innermost key or value whose span
/// contains byte offset `at`.
fn table_path(table: &DeTable<'_>, at: usize, path: &mut String) -> bool {
    table.iter().any(|(key, value)| {
        let len = path.len();
        if !path.is_empty() {
            path.push('.');
        }
        path.push_str(key.get_ref());
        if key.span().contains(&at) || value_path(value, at, path) {
            return true;
        }
        path.truncate(len);
        false
    })
}

fn value_path(value: &Spanned<DeValue<'_>>, at: usize, path: &mut String) -> bool {
    let inner = match value.get_ref() {
        DeValue::Table(table) => table_path(table, at, path),
        DeValue::Array(items) => items.iter().enumerate().any(|(i, item)| {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            if value_path(item, at, path) {
                return true;
            }
            path.truncate(len);
            false
        }),
        _ => false,
    };
    inner || value.span().contains(&at)
}

/// The model `sparkedge run` stores in a data directory that never held one (a fresh
/// installation): a namespace and nothing else, to be renamed in the web UI (enterprise and
/// site are the first two levels of every UNS topic, and the site is the Sparkplug group)
/// and filled with areas, devices and tags, or replaced with `sparkedge import FILE`.
pub fn starter_model() -> Model {
    Model {
        namespace: Namespace {
            enterprise: "enterprise".to_owned(),
            site: "site".to_owned(),
        },
        sparkplug: SparkplugIds {
            group_id: None,
            edge_node_id: "sparkedge".to_owned(),
            primary_host_id: None,
        },
        northbound: Vec::new(),
        scan_classes: Vec::new(),
        areas: Vec::new(),
        devices: Vec::new(),
        tags: Vec::new(),
    }
}

/// The model `sparkedge demo` runs: one simulated PLC exercising every simulator signal.
pub fn demo_model() -> Model {
    let tag = |name: &str, datatype, address: &str, unit: Option<&str>, description: &str| Tag {
        unit: unit.map(str::to_owned),
        description: Some(description.to_owned()),
        ..Tag::new(
            "demo-plc",
            "packaging/line3/filler",
            name,
            datatype,
            address,
        )
    };
    Model {
        namespace: Namespace {
            enterprise: "acme".to_owned(),
            site: "plant-a".to_owned(),
        },
        areas: vec![Area {
            name: "packaging".to_owned(),
            lines: vec![Line {
                name: "line3".to_owned(),
                cells: vec!["filler".to_owned()],
            }],
        }],
        devices: vec![Device {
            name: "demo-plc".to_owned(),
            enabled: true,
            driver: DriverConfig::Simulator { period_ms: 1000 },
        }],
        tags: vec![
            tag(
                "temperature",
                DataType::Float32,
                "sine",
                Some("degC"),
                "Product temperature at the filler",
            ),
            tag(
                "level",
                DataType::Int32,
                "ramp",
                Some("mm"),
                "Bowl fill level",
            ),
            tag(
                "running",
                DataType::Bool,
                "toggle",
                None,
                "Filler is running",
            ),
            tag(
                "bottles",
                DataType::UInt32,
                "counter",
                None,
                "Bottles filled since start",
            ),
            tag("state", DataType::String, "text", None, "Machine state"),
            Tag {
                writable: true,
                ..tag(
                    "setpoint",
                    DataType::Float32,
                    "memory",
                    Some("degC"),
                    "Temperature setpoint (writable)",
                )
            },
        ],
        // The same Sparkplug ids as a fresh installation; no northbound broker or scan class.
        ..starter_model()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starter_model_is_valid_and_round_trips() {
        let model = starter_model();
        model.validate().unwrap();
        assert_eq!(from_toml(&to_toml(&model)).unwrap(), model);
    }

    #[test]
    fn demo_model_is_valid_and_round_trips() {
        let model = demo_model();
        model.validate().unwrap();
        let text = to_toml(&model);
        assert!(text.starts_with("# sparkedge model"));
        assert!(text.contains(
            "[[device]]\nname = \"demo-plc\"\ndriver = \"simulator\"\nperiod_ms = 1000\n"
        ));
        assert_eq!(from_toml(&text).unwrap(), model);
    }

    #[test]
    fn northbound_connections_round_trip_with_a_multi_line_ca() {
        let text = format!(
            "{}\n[[northbound]]\nname = \"plant\"\nservers = [\"mqtts://10.0.0.6\"]\n\
             ca_pem = '''\n-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'''\n\
             enabled = false\n",
            to_toml(&demo_model())
        );
        let model = from_toml(&text).unwrap();
        assert_eq!(model.northbound.len(), 1);
        assert!(!model.northbound[0].enabled);
        assert_eq!(from_toml(&to_toml(&model)).unwrap(), model);
    }

    #[test]
    fn syntax_error_names_line_and_column() {
        let text = to_toml(&demo_model()).replacen("name = \"level\"", "name = level", 1);
        let errors = from_toml(&text).unwrap_err().0;
        assert_eq!(errors.len(), 1);
        let line = text.lines().position(|l| l == "name = level").unwrap() + 1;
        assert!(
            errors[0].reason.contains(&format!("line {line}, column 8")),
            "{}",
            errors[0].reason
        );
        assert_eq!(errors[0].value, "level");
    }

    #[test]
    fn unknown_key_is_rejected_by_name() {
        let text = to_toml(&demo_model()).replacen("unit = \"mm\"", "unit = \"mm\"\ncolour = 3", 1);
        let errors = from_toml(&text).unwrap_err().0;
        assert_eq!(errors[0].field, "tag[1].colour");
        assert_eq!(errors[0].value, "colour");
        assert!(errors[0].reason.contains("unknown field `colour`"));

        // Device keys go through serde's flatten buffer, which loses spans; still named.
        let text =
            to_toml(&demo_model()).replacen("period_ms = 1000", "period_ms = 1000\nspeed = 3", 1);
        let errors = from_toml(&text).unwrap_err().0;
        assert_eq!(errors[0].field, "device[0].speed");
        assert!(
            errors[0].reason.contains("expected `period_ms`"),
            "{}",
            errors[0].reason
        );
    }

    #[test]
    fn wrong_type_names_the_path() {
        let text =
            to_toml(&demo_model()).replacen("cells = [\"filler\"]", "cells = [\"filler\", 3]", 1);
        let errors = from_toml(&text).unwrap_err().0;
        assert_eq!(errors[0].field, "area[0].line[0].cells[1]");
        assert_eq!(errors[0].value, "3");
    }

    #[test]
    fn a_well_formed_but_invalid_file_reports_validation_errors() {
        let text = to_toml(&demo_model()).replacen("address = \"sine\"", "address = \"square\"", 1);
        let errors = from_toml(&text).unwrap_err().0;
        assert_eq!(errors[0].field, "tag[0].address");
    }

    #[test]
    fn minimal_file_uses_defaults() {
        let model = from_toml("[namespace]\nenterprise = \"acme\"\nsite = \"plant-a\"\n").unwrap();
        assert_eq!(model.sparkplug, SparkplugIds::default());
        assert!(model.tags.is_empty());
    }

    proptest::proptest! {
        /// Any text a user may put in a name, unit or description survives export/import.
        #[test]
        fn any_valid_model_round_trips(
            site in "[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}",
            cell in "[a-zA-Z0-9][a-zA-Z0-9_-]{0,20}",
            unit in proptest::option::of("[^\\p{Cc}]{0,20}"),
            description in proptest::option::of("[^\\p{Cc}]{0,80}"),
            period_ms in 10u32..=3_600_000,
            enabled: bool,
        ) {
            let mut model = demo_model();
            model.namespace.site = site;
            model.areas[0].lines[0].cells = vec![cell.clone()];
            model.devices[0].enabled = enabled;
            model.devices[0].driver = DriverConfig::Simulator { period_ms };
            for tag in &mut model.tags {
                tag.location = format!("packaging/line3/{cell}").into();
                tag.unit = unit.clone();
                tag.description = description.clone();
            }
            proptest::prop_assert_eq!(from_toml(&to_toml(&model)), Ok(model));
        }
    }

    #[test]
    fn modbus_devices_round_trip_and_classic_addresses_are_normalised() {
        let text = r#"
[namespace]
enterprise = "acme"
site = "plant-a"
[[area]]
name = "utilities"
[[area.line]]
name = "boiler"
[[device]]
name = "plc"
driver = "modbus-tcp"
host = "10.0.0.5"
[[tag]]
device = "plc"
location = "utilities/boiler"
name = "pressure"
datatype = "float32"
address = "40101"
byte_order = "CDAB"
"#;
        let model = from_toml(text).unwrap();
        assert_eq!(model.tags[0].address, "hr:100");
        assert!(matches!(
            model.devices[0].driver,
            crate::DriverConfig::ModbusTcp {
                port: 502,
                unit: 1,
                max_gap: 16,
                ..
            }
        ));
        assert_eq!(from_toml(&to_toml(&model)).unwrap(), model);
    }
    #[test]
    fn opcua_devices_round_trip_with_their_defaults() {
        let text = r#"
[namespace]
enterprise = "acme"
site = "plant-a"
[[area]]
name = "utilities"
[[area.line]]
name = "boiler"
[[device]]
name = "boiler-plc"
driver = "opc-ua"
endpoint = "opc.tcp://10.0.0.7:4840"
[[tag]]
device = "boiler-plc"
location = "utilities/boiler"
name = "pressure"
datatype = "float64"
address = "nsu=urn:boiler;s=Pressure"
"#;
        let model = from_toml(text).unwrap();
        assert_eq!(
            model.devices[0].driver,
            crate::DriverConfig::opc_ua("opc.tcp://10.0.0.7:4840")
        );
        assert_eq!(from_toml(&to_toml(&model)).unwrap(), model);
        // Every setting round-trips, and a misspelt policy is refused with the ones there are.
        let secure = text.replace(
            "endpoint =",
            "security_policy = \"aes256-sha256-rsapss\"\nsecurity_mode = \"sign\"\n\
             identity = \"username\"\nusername = \"op\"\npassword = \"pw\"\n\
             acquisition = \"poll\"\nqueue_size = 5\nendpoint =",
        );
        let model = from_toml(&secure).unwrap();
        assert!(matches!(
            &model.devices[0].driver,
            crate::DriverConfig::OpcUa {
                security_policy: crate::OpcUaSecurityPolicy::Aes256Sha256RsaPss,
                security_mode: Some(crate::OpcUaSecurityMode::Sign),
                identity: crate::OpcUaIdentity::Username,
                acquisition: crate::OpcUaAcquisition::Poll,
                queue_size: 5,
                ..
            }
        ));
        assert_eq!(from_toml(&to_toml(&model)).unwrap(), model);
        let err =
            from_toml(&text.replace("endpoint =", "security_policy = \"basic256\"\nendpoint ="))
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("basic256") && err.contains("basic256sha256") && err.contains("none"),
            "{err}"
        );
    }

    #[test]
    fn rtu_devices_round_trip_with_their_defaults() {
        let text = r#"
[namespace]
enterprise = "acme"
site = "plant-a"
[[area]]
name = "utilities"
[[area.line]]
name = "boiler"
[[device]]
name = "meter"
driver = "modbus-rtu"
path = "/dev/ttyUSB0"
unit = 7
inter_frame_delay_us = 5000
[[device]]
name = "drive"
driver = "modbus-rtu"
path = "/dev/ttyUSB0"
unit = 8
inter_frame_delay_us = 5000
[[device]]
name = "remote"
driver = "modbus-rtu-tcp"
host = "gw.local"
port = 4001
unit = 2
[[tag]]
device = "meter"
location = "utilities/boiler"
name = "energy"
datatype = "uint32"
address = "30001"
"#;
        let model = from_toml(text).unwrap();
        assert_eq!(
            model.devices[0].driver,
            DriverConfig::ModbusRtu {
                path: "/dev/ttyUSB0".into(),
                baud: 19200,
                parity: crate::Parity::Even,
                data_bits: 8,
                stop_bits: 1,
                unit: 7,
                inter_frame_delay_us: Some(5000),
                period_ms: 1000,
                timeout_ms: 1000,
                offline_after: 3,
                max_gap: 16,
            }
        );
        assert_eq!(model.tags[0].address, "ir:0");
        let text = to_toml(&model);
        assert!(text.contains("driver = \"modbus-rtu-tcp\""), "{text}");
        assert_eq!(from_toml(&text).unwrap(), model);

        let bad = text.replacen("parity = \"even\"", "parity = \"mark\"", 1);
        let errors = from_toml(&bad).unwrap_err().0;
        assert!(errors[0].reason.contains("none`, `even`"), "{}", errors[0]);
    }
    #[test]
    fn scaling_deadband_and_scan_classes_round_trip() {
        let text = r#"
[namespace]
enterprise = "acme"
site = "plant-a"
[[scan_class]]
name = "fast"
period_ms = 100
[[area]]
name = "utilities"
[[area.line]]
name = "boiler"
[[device]]
name = "plc"
driver = "modbus-tcp"
host = "10.0.0.5"
[[tag]]
device = "plc"
location = "utilities/boiler"
name = "level"
datatype = "float32"
raw_type = "int16"
address = "hr:4"
raw_low = 0
raw_high = 27648
eng_low = 0
eng_high = 100
deadband_percent = 0.5
scan_class = "fast"
"#;
        let model = from_toml(text).unwrap();
        let tag = &model.tags[0];
        assert_eq!(tag.acquisition().raw_type, Some(DataType::Int16));
        assert_eq!(tag.deadband_abs(), Some(0.5));
        assert_eq!(tag.eng_range(), Some((0.0, 100.0)));
        assert_eq!(model.scan_classes[0].period_ms, 100);
        let out = to_toml(&model);
        assert!(out.contains("[[scan_class]]"), "{out}");
        assert_eq!(from_toml(&out).unwrap(), model);
    }

    #[test]
    fn datetime_and_array_tags_round_trip_and_bad_types_list_the_allowed() {
        let text = r#"
[namespace]
enterprise = "acme"
site = "plant-a"
[[area]]
name = "utilities"
[[area.line]]
name = "boiler"
[[device]]
name = "plc"
driver = "opc-ua"
endpoint = "opc.tcp://10.0.0.7:4840"
[[tag]]
device = "plc"
location = "utilities/boiler"
name = "serviced"
datatype = "datetime"
address = "ns=2;s=Boiler.Serviced"
[[tag]]
device = "plc"
location = "utilities/boiler"
name = "profile"
datatype = "float32[]"
address = "ns=2;s=Boiler.Profile"
writable = true
"#;
        let model = from_toml(text).unwrap();
        let types: Vec<DataType> = model.tags.iter().map(|t| t.datatype).collect();
        assert_eq!(types, [DataType::DateTime, DataType::Float32Array]);
        let out = to_toml(&model);
        assert!(out.contains("datatype = \"float32[]\""), "{out}");
        assert_eq!(from_toml(&out).unwrap(), model);

        let bad = text.replacen("\"float32[]\"", "\"float32[4]\"", 1);
        let errors = from_toml(&bad).unwrap_err().0;
        assert_eq!(
            (errors[0].field.as_str(), errors[0].value.as_str()),
            ("tag[1].datatype", "float32[4]")
        );
        assert!(errors[0].reason.contains("`datetime[]`"), "{}", errors[0]);
    }
}
