//! Checks a whole [`Model`] before anything uses it.
//!
//! Names become MQTT topic levels and Sparkplug ids, so a bad one would only surface later as
//! a broker refusing a publish, or worse, two tags silently sharing a topic. Validation runs
//! on every import and before every store write, and reports *all* problems at once, each with
//! the field path, the offending value and what is allowed, so a user fixes a file in one pass.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use crate::modbus::{ByteOrder, ModbusAddress};
use crate::model::{
    DriverConfig, Model, OpcUaIdentity, OpcUaSecurityMode, OpcUaSecurityPolicy, SimSignal, Tag,
};
use crate::value::DataType;

/// One problem in a model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelError {
    /// Where, e.g. `tag[3].datatype` or `area[1].line[0].cells[2]` (0-based, file order).
    pub field: String,
    /// The offending value as written.
    pub value: String,
    /// What is wrong and what is allowed.
    pub reason: String,
}

impl ModelError {
    pub fn new(
        field: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        ModelError {
            field: field.into(),
            value: value.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ModelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} = {:?}: {}", self.field, self.value, self.reason)
    }
}

impl std::error::Error for ModelError {}

/// Every problem found in a model, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelErrors(pub Vec<ModelError>);

impl fmt::Display for ModelErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ModelErrors {}

impl From<ModelError> for ModelErrors {
    fn from(e: ModelError) -> Self {
        ModelErrors(vec![e])
    }
}

const NAME_RULE: &str = "must be 1 to 64 characters: ASCII letters, digits, '_' or '-', starting with a letter or digit";
pub(crate) const HOST_ID_RULE: &str = "must be 1 to 256 characters, without '+', '#', '/' or control characters (a Sparkplug topic level)";
const TEXT_RULE: &str = "must be at most 256 characters, without control characters";
const PERIOD_MS: std::ops::RangeInclusive<u32> = 10..=3_600_000;

fn is_valid_name(s: &str) -> bool {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars().all(ok_char)
}

/// Collects errors while walking the model.
#[derive(Default)]
struct Checker {
    errors: Vec<ModelError>,
}

impl Checker {
    fn push(&mut self, field: impl Into<String>, value: &str, reason: impl Into<String>) {
        self.errors.push(ModelError::new(field, value, reason));
    }

    fn name(&mut self, field: impl Into<String>, value: &str) {
        if !is_valid_name(value) {
            self.push(field, value, NAME_RULE);
        }
    }

    fn text(&mut self, field: impl Into<String>, value: Option<&str>) {
        if let Some(v) = value
            && (v.chars().count() > 256 || v.chars().any(char::is_control))
        {
            self.push(field, v, TEXT_RULE);
        }
    }

    /// Checks a name and that no earlier sibling has the same one.
    fn sibling(&mut self, seen: &mut HashMap<String, String>, field: String, value: &str) {
        self.name(field.clone(), value);
        self.unique(seen, value, field, value);
    }

    /// Sibling keys are compared ignoring case: topics differing only in case confuse people
    /// and case-insensitive consumers alike.
    fn unique(
        &mut self,
        seen: &mut HashMap<String, String>,
        key: &str,
        field: String,
        value: &str,
    ) {
        match seen.entry(key.to_ascii_lowercase()) {
            Entry::Occupied(first) => {
                let reason = format!(
                    "duplicate of {}; sibling names must be unique (ignoring case)",
                    first.get()
                );
                self.push(field, value, reason);
            }
            Entry::Vacant(slot) => {
                slot.insert(field);
            }
        }
    }
}

impl Model {
    /// Checks every rule and returns every violation, not just the first.
    pub fn validate(&self) -> Result<(), ModelErrors> {
        let mut c = Checker::default();
        c.name("namespace.enterprise", &self.namespace.enterprise);
        c.name("namespace.site", &self.namespace.site);
        if let Some(group) = &self.sparkplug.group_id {
            c.name("sparkplug.group_id", group);
        }
        c.name("sparkplug.edge_node_id", &self.sparkplug.edge_node_id);
        if let Some(host) = &self.sparkplug.primary_host_id {
            // The host's id is chosen by the SCADA system, not by us: only the Sparkplug rule
            // for a topic level applies (spec §4.1.1: no '+', '#' or '/').
            if host.is_empty()
                || host.chars().count() > 256
                || host.contains(['+', '#', '/'])
                || host.chars().any(char::is_control)
            {
                c.push("sparkplug.primary_host_id", host, HOST_ID_RULE);
            }
        }

        let mut connections = HashMap::new();
        for (i, nb) in self.northbound.iter().enumerate() {
            for (field, value, reason) in crate::northbound::problems(nb) {
                c.push(format!("northbound[{i}].{field}"), &value, reason);
            }
            c.unique(
                &mut connections,
                &nb.name,
                format!("northbound[{i}].name"),
                &nb.name,
            );
        }

        // Every valid tag location, as written in `Tag::location`.
        let mut locations = Vec::new();
        let mut areas = HashMap::new();
        for (a, area) in self.areas.iter().enumerate() {
            c.sibling(&mut areas, format!("area[{a}].name"), &area.name);
            let mut lines = HashMap::new();
            for (l, line) in area.lines.iter().enumerate() {
                c.sibling(&mut lines, format!("area[{a}].line[{l}].name"), &line.name);
                locations.push(format!("{}/{}", area.name, line.name));
                let mut cells = HashMap::new();
                for (i, cell) in line.cells.iter().enumerate() {
                    c.sibling(&mut cells, format!("area[{a}].line[{l}].cells[{i}]"), cell);
                    locations.push(format!("{}/{}/{}", area.name, line.name, cell));
                }
            }
        }

        let mut classes = HashMap::new();
        for (i, class) in self.scan_classes.iter().enumerate() {
            c.sibling(&mut classes, format!("scan_class[{i}].name"), &class.name);
            if !PERIOD_MS.contains(&class.period_ms) {
                let reason = format!(
                    "must be between {} and {} milliseconds",
                    PERIOD_MS.start(),
                    PERIOD_MS.end()
                );
                c.push(
                    format!("scan_class[{i}].period_ms"),
                    &class.period_ms.to_string(),
                    reason,
                );
            }
        }

        let mut devices = HashMap::new();
        for (d, device) in self.devices.iter().enumerate() {
            c.sibling(&mut devices, format!("device[{d}].name"), &device.name);
            if let Some(m) = device.driver.modbus() {
                modbus_device(&mut c, d, &device.driver, m, &self.devices[..d]);
            }
            if matches!(device.driver, DriverConfig::OpcUa { .. }) {
                opcua_device(&mut c, d, &device.driver);
            }
            let period_ms = device.driver.period_ms();
            if !PERIOD_MS.contains(&period_ms) {
                let reason = format!(
                    "must be between {} and {} milliseconds",
                    PERIOD_MS.start(),
                    PERIOD_MS.end()
                );
                c.push(
                    format!("device[{d}].period_ms"),
                    &period_ms.to_string(),
                    reason,
                );
            }
        }

        let mut tags = HashMap::new();
        for (t, tag) in self.tags.iter().enumerate() {
            let f = |field: &str| format!("tag[{t}].{field}");
            c.name(f("name"), &tag.name);
            let key = format!("{}/{}", tag.location, tag.name);
            c.unique(&mut tags, &key, f("name"), &tag.name);

            if !locations.iter().any(|l| *l == tag.location) {
                let reason = format!(
                    "must be area/line or area/line/cell naming a defined line or cell; defined: {}",
                    list_or_none(&locations)
                );
                c.push(f("location"), &tag.location, reason);
            }
            c.text(f("unit"), tag.unit.as_deref());
            c.text(f("description"), tag.description.as_deref());
            tag_numbers(&mut c, &f, tag);
            if let Some(class) = tag.scan_class()
                && !self.scan_classes.iter().any(|s| s.name == class)
            {
                let names: Vec<String> = self.scan_classes.iter().map(|s| s.name.clone()).collect();
                let reason = format!(
                    "must name a defined scan class; defined: {}",
                    list_or_none(&names)
                );
                c.push(f("scan_class"), class, reason);
            }

            let Some(device) = self.devices.iter().find(|d| d.name == tag.device) else {
                let names: Vec<String> = self.devices.iter().map(|d| d.name.clone()).collect();
                let reason = format!(
                    "must name a defined device; defined: {}",
                    list_or_none(&names)
                );
                c.push(f("device"), &tag.device, reason);
                continue;
            };
            if !device.driver.is_modbus() {
                for (field, set) in [
                    ("byte_order", tag.byte_order.is_some()),
                    ("length", tag.length.is_some()),
                    ("raw_type", tag.acquisition().raw_type.is_some()),
                    ("gain", tag.acquisition().gain.is_some()),
                    ("offset", tag.acquisition().offset.is_some()),
                    ("raw_low", tag.acquisition().raw_low.is_some()),
                    ("raw_high", tag.acquisition().raw_high.is_some()),
                    ("scan_class", tag.scan_class().is_some()),
                ] {
                    if set {
                        let reason = "only Modbus tags have this setting".to_owned();
                        c.push(f(field), "(set)", reason);
                    }
                }
            }
            match device.driver {
                DriverConfig::ModbusTcp { .. }
                | DriverConfig::ModbusRtu { .. }
                | DriverConfig::ModbusRtuTcp { .. } => modbus_tag(&mut c, &f, tag),
                DriverConfig::OpcUa { .. } => {
                    if let Err(reason) = tag.address.parse::<crate::opcua::NodeAddress>() {
                        c.push(f("address"), &tag.address, reason);
                    }
                }
                DriverConfig::Simulator { .. } => match tag.address.parse::<SimSignal>() {
                    Err(reason) => c.push(f("address"), &tag.address, reason),
                    Ok(signal) => {
                        if !signal.supports(tag.datatype) {
                            let ok: Vec<&str> = DataType::ALL
                                .into_iter()
                                .filter(|&dt| signal.supports(dt))
                                .map(DataType::as_str)
                                .collect();
                            let reason = format!(
                                "simulator signal {} supports only: {}",
                                signal.as_str(),
                                ok.join(", ")
                            );
                            c.push(f("datatype"), tag.datatype.as_str(), reason);
                        }
                        if tag.writable && signal != SimSignal::Memory {
                            let reason = format!(
                                "simulator signal {} is read-only; only {} is writable",
                                signal.as_str(),
                                SimSignal::Memory.as_str()
                            );
                            c.push(f("writable"), "true", reason);
                        }
                    }
                },
            }
        }

        if c.errors.is_empty() {
            Ok(())
        } else {
            Err(ModelErrors(c.errors))
        }
    }
}

fn opcua_device(c: &mut Checker, d: usize, driver: &DriverConfig) {
    let DriverConfig::OpcUa {
        endpoint,
        security_policy,
        security_mode,
        identity,
        username,
        password,
        user_certificate,
        user_private_key,
        sampling_interval_ms,
        queue_size,
        timeout_ms,
        ..
    } = driver
    else {
        return;
    };
    let (timeout_ms, sampling_interval_ms) = (*timeout_ms, *sampling_interval_ms);
    let f = |field: &str| format!("device[{d}].{field}");
    let host = endpoint
        .strip_prefix("opc.tcp://")
        .map(|rest| rest.split('/').next().unwrap_or(""))
        .map(|authority| match authority.rsplit_once(':') {
            Some((host, port)) if port.parse::<u16>().is_ok_and(|p| p > 0) => host,
            Some(_) => "",
            None => authority,
        });
    if !host.is_some_and(|h| host_ok(h.trim_start_matches('[').trim_end_matches(']'))) {
        c.push(
            f("endpoint"),
            endpoint,
            "must be opc.tcp://HOST[:PORT][/PATH], e.g. opc.tcp://192.168.0.10:4840",
        );
    }
    if !(100..=60_000).contains(&timeout_ms) {
        c.push(
            f("timeout_ms"),
            &timeout_ms.to_string(),
            "must be between 100 and 60000 milliseconds",
        );
    }
    if let Some(ms) = sampling_interval_ms
        && !PERIOD_MS.contains(&ms)
    {
        let reason = format!(
            "must be between {} and {} milliseconds",
            PERIOD_MS.start(),
            PERIOD_MS.end()
        );
        c.push(f("sampling_interval_ms"), &ms.to_string(), reason);
    }
    if !(1..=1000).contains(queue_size) {
        c.push(
            f("queue_size"),
            &queue_size.to_string(),
            "must be between 1 and 1000",
        );
    }
    // Policy none means no certificates; any other policy signs at least.
    let none = *security_policy == OpcUaSecurityPolicy::None;
    match security_mode {
        Some(OpcUaSecurityMode::None) if !none => c.push(
            f("security_mode"),
            "none",
            format!(
                "security_policy {:?} needs sign or sign-and-encrypt; for no security set \
                 security_policy = \"none\"",
                security_policy.as_str()
            ),
        ),
        Some(mode @ (OpcUaSecurityMode::Sign | OpcUaSecurityMode::SignAndEncrypt)) if none => c
            .push(
                f("security_mode"),
                mode.as_str(),
                "needs a security policy other than none (basic256sha256, \
                 aes128-sha256-rsaoaep, aes256-sha256-rsapss)",
            ),
        _ => {}
    }
    // Each identity needs its own settings and no other's, so a leftover password is not
    // mistaken for one in use.
    let settings = [
        ("username", username, OpcUaIdentity::Username),
        ("password", password, OpcUaIdentity::Username),
        (
            "user_certificate",
            user_certificate,
            OpcUaIdentity::Certificate,
        ),
        (
            "user_private_key",
            user_private_key,
            OpcUaIdentity::Certificate,
        ),
    ];
    for (name, value, needed_by) in settings {
        match value {
            None if *identity == needed_by => c.push(
                f(name),
                "",
                format!("is required with identity = {:?}", needed_by.as_str()),
            ),
            Some(v) if *identity != needed_by => c.push(
                f(name),
                if name == "password" { "(hidden)" } else { v },
                format!(
                    "is only used with identity = {:?}; this device's identity is {:?}",
                    needed_by.as_str(),
                    identity.as_str()
                ),
            ),
            Some(v) if v.is_empty() => c.push(f(name), "", "must not be empty"),
            _ => {}
        }
    }
}

fn host_ok(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:".contains(c))
}

/// The serial line or gateway a Modbus device's frames travel on: devices with equal keys
/// share one port or connection.
#[derive(PartialEq)]
enum LineKey<'a> {
    Tcp(&'a str, u16),
    Serial(&'a str),
    Gateway(&'a str, u16),
}

fn line_key(driver: &DriverConfig) -> Option<LineKey<'_>> {
    match driver {
        DriverConfig::Simulator { .. } | DriverConfig::OpcUa { .. } => None,
        DriverConfig::ModbusTcp { host, port, .. } => Some(LineKey::Tcp(host, *port)),
        DriverConfig::ModbusRtu { path, .. } => Some(LineKey::Serial(path)),
        DriverConfig::ModbusRtuTcp { host, port, .. } => Some(LineKey::Gateway(host, *port)),
    }
}

/// Checks the settings of Modbus device `d`; `earlier` are the devices before it, against
/// which shared serial lines and gateways are checked.
fn modbus_device(
    c: &mut Checker,
    d: usize,
    driver: &DriverConfig,
    m: crate::model::ModbusPolling,
    earlier: &[crate::model::Device],
) {
    let f = |field: &str| format!("device[{d}].{field}");
    match driver {
        DriverConfig::ModbusTcp { host, port, .. }
        | DriverConfig::ModbusRtuTcp { host, port, .. } => {
            if !host_ok(host) {
                c.push(f("host"), host, "must be a host name or IP address");
            }
            if *port == 0 {
                c.push(f("port"), "0", "must be 1 to 65535");
            }
        }
        DriverConfig::ModbusRtu {
            path,
            baud,
            data_bits,
            stop_bits,
            inter_frame_delay_us,
            ..
        } => {
            if !path.starts_with('/') || path.len() > 4096 || path.chars().any(char::is_control) {
                c.push(
                    f("path"),
                    path,
                    "must be the absolute path of a serial device, e.g. /dev/ttyUSB0",
                );
            }
            if !(300..=4_000_000).contains(baud) {
                c.push(
                    f("baud"),
                    &baud.to_string(),
                    "must be 300 to 4000000 bits per second",
                );
            }
            if *data_bits != 8 {
                c.push(
                    f("data_bits"),
                    &data_bits.to_string(),
                    "must be 8: Modbus RTU frames are made of 8-bit bytes",
                );
            }
            if !(1..=2).contains(stop_bits) {
                c.push(f("stop_bits"), &stop_bits.to_string(), "must be 1 or 2");
            }
            if let Some(us) = inter_frame_delay_us
                && *us > 1_000_000
            {
                c.push(
                    f("inter_frame_delay_us"),
                    &us.to_string(),
                    "must be 0 to 1000000 microseconds",
                );
            }
        }
        DriverConfig::Simulator { .. } | DriverConfig::OpcUa { .. } => {}
    }
    let unit_ok = match driver {
        // On a serial line 0 is broadcast (no reply) and 248-255 are reserved.
        DriverConfig::ModbusRtu { .. } | DriverConfig::ModbusRtuTcp { .. } => {
            (1..=247).contains(&m.unit)
        }
        _ => true,
    };
    if !unit_ok {
        c.push(
            f("unit"),
            &m.unit.to_string(),
            "must be 1 to 247 on a serial line (0 is broadcast, 248 to 255 are reserved)",
        );
    }
    if !(10..=60_000).contains(&m.timeout_ms) {
        c.push(
            f("timeout_ms"),
            &m.timeout_ms.to_string(),
            "must be between 10 and 60000 milliseconds",
        );
    }
    if m.offline_after == 0 {
        c.push(
            f("offline_after"),
            "0",
            "must be at least 1 failed poll cycle",
        );
    }
    if m.max_gap > 124 {
        c.push(
            f("max_gap"),
            &m.max_gap.to_string(),
            "must be 0 to 124 registers (a read holds at most 125)",
        );
    }
    // Devices sharing a serial line or gateway: one set of line settings, distinct units,
    // and one framing per TCP endpoint.
    let Some(key) = line_key(driver) else { return };
    for (e, other) in earlier.iter().enumerate() {
        let Some(other_key) = line_key(&other.driver) else {
            continue;
        };
        let same_endpoint = match (&key, &other_key) {
            (LineKey::Tcp(h, p), LineKey::Gateway(oh, op))
            | (LineKey::Gateway(h, p), LineKey::Tcp(oh, op)) => {
                h.eq_ignore_ascii_case(oh) && p == op
            }
            _ => false,
        };
        if same_endpoint {
            let reason = format!(
                "device[{e}] ({}) talks to the same host and port with the other framing; one \
                 endpoint speaks either Modbus TCP or RTU over TCP",
                other.name
            );
            c.push(f("driver"), driver_name(driver), reason);
            continue;
        }
        if key != other_key || matches!(key, LineKey::Tcp(..)) {
            continue;
        }
        if let (
            DriverConfig::ModbusRtu {
                baud,
                parity,
                data_bits,
                stop_bits,
                inter_frame_delay_us,
                ..
            },
            DriverConfig::ModbusRtu {
                baud: b,
                parity: p,
                data_bits: db,
                stop_bits: sb,
                inter_frame_delay_us: ifd,
                ..
            },
        ) = (driver, &other.driver)
        {
            let show = |v: Option<u32>| v.map_or("(default)".to_owned(), |v| v.to_string());
            for (field, mine, theirs) in [
                ("baud", baud.to_string(), b.to_string()),
                ("parity", parity.as_str().to_owned(), p.as_str().to_owned()),
                ("data_bits", data_bits.to_string(), db.to_string()),
                ("stop_bits", stop_bits.to_string(), sb.to_string()),
                (
                    "inter_frame_delay_us",
                    show(*inter_frame_delay_us),
                    show(*ifd),
                ),
            ] {
                if mine != theirs {
                    let reason = format!(
                        "must be {theirs}, as on device[{e}] ({}): devices on one serial line \
                         share its settings",
                        other.name
                    );
                    c.push(f(field), &mine, reason);
                }
            }
        }
        if other.driver.modbus().map(|o| o.unit) == Some(m.unit) {
            let reason = format!(
                "device[{e}] ({}) already has this unit id on the same line; each device on a \
                 line needs its own",
                other.name
            );
            c.push(f("unit"), &m.unit.to_string(), reason);
        }
    }
}

fn driver_name(driver: &DriverConfig) -> &'static str {
    match driver {
        DriverConfig::Simulator { .. } => "simulator",
        DriverConfig::OpcUa { .. } => "opc-ua",
        DriverConfig::ModbusTcp { .. } => "modbus-tcp",
        DriverConfig::ModbusRtu { .. } => "modbus-rtu",
        DriverConfig::ModbusRtuTcp { .. } => "modbus-rtu-tcp",
    }
}

/// Checks a tag's register type, scaling, engineering range and deadband: every number
/// finite, each setting complete, and only where it means something.
fn tag_numbers(c: &mut Checker, f: &dyn Fn(&str) -> String, tag: &Tag) {
    let n = tag.acquisition();
    let numeric = tag.datatype.is_integer() || tag.datatype.is_float();
    let mut bad = |field: &str, value: String, reason: &str| c.push(f(field), &value, reason);
    let show = |v: f64| v.to_string();
    for (field, value) in [
        ("gain", n.gain),
        ("offset", n.offset),
        ("raw_low", n.raw_low),
        ("raw_high", n.raw_high),
        ("eng_low", n.eng_low),
        ("eng_high", n.eng_high),
        ("deadband", n.deadband),
        ("deadband_percent", n.deadband_percent),
    ] {
        if let Some(v) = value
            && !v.is_finite()
        {
            bad(field, show(v), "must be a finite number");
        }
    }
    let scaled =
        n.gain.is_some() || n.offset.is_some() || n.raw_low.is_some() || n.raw_high.is_some();
    let ranged = n.eng_low.is_some() || n.eng_high.is_some();
    if !numeric {
        let number = |v: Option<f64>| v.map(show);
        for (field, value) in [
            ("raw_type", n.raw_type.map(|t| t.as_str().to_owned())),
            ("gain", number(n.gain)),
            ("offset", number(n.offset)),
            ("raw_low", number(n.raw_low)),
            ("raw_high", number(n.raw_high)),
            ("eng_low", number(n.eng_low)),
            ("eng_high", number(n.eng_high)),
            ("deadband", number(n.deadband)),
            ("deadband_percent", number(n.deadband_percent)),
        ] {
            if let Some(value) = value {
                // Arrays, datetimes, strings and bools are reported on every change: there
                // is no distance between two of them for a deadband to measure.
                let reason = format!(
                    "only integer and float tags have this setting, not {}; a {} tag is \
                     reported whenever it changes{}",
                    tag.datatype,
                    tag.datatype,
                    if tag.datatype.is_array() {
                        " (any element)"
                    } else {
                        ""
                    }
                );
                bad(field, value, &reason);
            }
        }
        return;
    }
    if let Some(raw) = n.raw_type
        && !(raw.is_integer() || raw.is_float())
    {
        bad(
            "raw_type",
            raw.as_str().to_owned(),
            "must be an integer or float type: the register holds a number to scale",
        );
    }
    if n.gain == Some(0.0) {
        bad("gain", "0".to_owned(), "must not be 0: writes divide by it");
    }
    let by_gain = n.gain.is_some() || n.offset.is_some();
    let by_range = n.raw_low.is_some() || n.raw_high.is_some();
    if by_gain && by_range {
        bad(
            if n.raw_low.is_some() {
                "raw_low"
            } else {
                "raw_high"
            },
            "(set)".to_owned(),
            "scale either by gain/offset or by raw_low/raw_high onto eng_low/eng_high, not both",
        );
    }
    let pair = |low: Option<f64>, high: Option<f64>| match (low, high) {
        (Some(l), Some(h)) => Some((l, h)),
        _ => None,
    };
    for (low_name, high_name, low, high) in [
        ("raw_low", "raw_high", n.raw_low, n.raw_high),
        ("eng_low", "eng_high", n.eng_low, n.eng_high),
    ] {
        match (low, high) {
            (Some(_), None) => bad(
                high_name,
                "(none)".to_owned(),
                &format!("{low_name} needs {high_name} too"),
            ),
            (None, Some(_)) => bad(
                low_name,
                "(none)".to_owned(),
                &format!("{high_name} needs {low_name} too"),
            ),
            _ => {}
        }
    }
    if let Some((low, high)) = pair(n.raw_low, n.raw_high)
        && low >= high
    {
        bad(
            "raw_high",
            show(high),
            &format!("must be greater than raw_low ({low})"),
        );
    }
    if let Some((low, high)) = pair(n.eng_low, n.eng_high)
        && low == high
    {
        bad(
            "eng_high",
            show(high),
            "must differ from eng_low: the range would be empty",
        );
    }
    if by_range && !ranged {
        bad(
            "eng_low",
            "(none)".to_owned(),
            "raw_low/raw_high scale onto eng_low/eng_high, which must be given too",
        );
    }
    match (n.deadband, n.deadband_percent) {
        (Some(_), Some(_)) => bad(
            "deadband_percent",
            "(set)".to_owned(),
            "give either deadband (engineering units) or deadband_percent, not both",
        ),
        (Some(d), None) if d < 0.0 => bad("deadband", show(d), "must be 0 or more"),
        (None, Some(p)) if !(0.0..=100.0).contains(&p) => bad(
            "deadband_percent",
            show(p),
            "must be 0 to 100 (percent of the engineering range)",
        ),
        (None, Some(_)) if pair(n.eng_low, n.eng_high).is_none() => bad(
            "deadband_percent",
            show(n.deadband_percent.unwrap_or_default()),
            "a percentage needs the engineering range: set eng_low and eng_high",
        ),
        _ => {}
    }
    // The register range must map somewhere the tag type can hold, or every read fails.
    if !scaled
        && let Some(raw) = n.raw_type
        && raw != tag.datatype
        && tag.datatype.is_integer()
        && raw.is_float()
    {
        bad(
            "raw_type",
            raw.as_str().to_owned(),
            &format!(
                "a float register under an integer tag ({}) would round silently; make the tag a float type",
                tag.datatype
            ),
        );
    }
}

/// Checks a tag of a Modbus device: address, type against the register table, string
/// length, byte order and writability.
fn modbus_tag(c: &mut Checker, f: &dyn Fn(&str) -> String, tag: &Tag) {
    let address = match tag.address.parse::<ModbusAddress>() {
        Ok(a) => a,
        Err(reason) => return c.push(f("address"), &tag.address, reason),
    };
    if tag.datatype.is_array() || tag.datatype == DataType::DateTime {
        let reason = "arrays and datetime are read from OPC UA devices only; a Modbus tag is \
                      bool, an integer or float type, or string";
        return c.push(f("datatype"), tag.datatype.as_str(), reason);
    }
    let one_bit = address.kind.is_bit() || address.bit.is_some();
    if one_bit && tag.datatype != DataType::Bool {
        let reason = format!("{} is a single bit, so the datatype must be bool", address);
        c.push(f("datatype"), tag.datatype.as_str(), reason);
    }
    let string = tag.datatype == DataType::String;
    match tag.length {
        None if string => c.push(
            f("length"),
            "(none)",
            "a string tag needs its length in characters, 1 to 250".to_owned(),
        ),
        Some(len) if string && !(1..=250).contains(&len) => c.push(
            f("length"),
            &len.to_string(),
            "must be 1 to 250 characters (125 registers, one read)".to_owned(),
        ),
        Some(len) if !string => c.push(
            f("length"),
            &len.to_string(),
            "only string tags have a length".to_owned(),
        ),
        _ => {}
    }
    let registers = match tag.raw_type() {
        DataType::String => usize::from(tag.length.unwrap_or(0)).div_ceil(2),
        DataType::Int32 | DataType::UInt32 | DataType::Float32 => 2,
        DataType::Int64 | DataType::UInt64 | DataType::Float64 => 4,
        _ => 1,
    };
    if let Some(order) = &tag.byte_order {
        match order.parse::<ByteOrder>() {
            Err(reason) => c.push(f("byte_order"), order, reason),
            Ok(_) if registers < 2 && !string => c.push(
                f("byte_order"),
                order,
                format!(
                    "{} fits one register; byte orders apply to 32- and 64-bit values and strings",
                    tag.datatype
                ),
            ),
            Ok(o) if string && o.word_swap => c.push(
                f("byte_order"),
                order,
                "strings run first register first; only ABCD or BADC (bytes swapped) apply"
                    .to_owned(),
            ),
            Ok(_) => {}
        }
    }
    if usize::from(address.offset) + registers.max(1) > 65536 {
        c.push(
            f("address"),
            &tag.address,
            format!(
                "{} registers from offset {} run past 65535",
                registers, address.offset
            ),
        );
    }
    if tag.writable && !address.kind.is_writable() {
        let reason = format!(
            "{} is read-only in Modbus; only coils (coil:) and holding registers (hr:) can be written",
            address.kind.prefix()
        );
        c.push(f("writable"), "true", reason);
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::demo_model;
    use crate::model::Line;

    /// Validates `model` and returns its only error.
    fn only_error(model: &Model) -> ModelError {
        let mut errors = model.validate().unwrap_err().0;
        assert_eq!(errors.len(), 1, "{errors:?}");
        errors.remove(0)
    }

    fn assert_error(model: &Model, field: &str, value: &str, allowed: &str) {
        let e = only_error(model);
        assert_eq!((e.field.as_str(), e.value.as_str()), (field, value), "{e}");
        assert!(
            e.reason.contains(allowed),
            "reason {:?} does not say {allowed:?}",
            e.reason
        );
    }

    #[test]
    fn demo_model_is_valid() {
        demo_model().validate().unwrap();
    }

    #[test]
    fn names_are_limited_to_topic_safe_characters() {
        for bad in [
            "",
            "a+b",
            "a/b",
            "a#",
            "a.b",
            "-lead",
            "_lead",
            "spa ce",
            "é",
            &"x".repeat(65),
        ] {
            let mut m = demo_model();
            m.namespace.site = bad.to_owned();
            assert_error(
                &m,
                "namespace.site",
                bad,
                "ASCII letters, digits, '_' or '-'",
            );
        }
        for good in ["a", "Line_3", "9-x", &"x".repeat(64)] {
            let mut m = demo_model();
            m.sparkplug.edge_node_id = good.to_owned();
            m.validate().unwrap();
        }
    }

    #[test]
    fn every_bad_field_of_a_northbound_connection_is_named() {
        let connection = |name: &str| crate::Northbound {
            name: name.to_owned(),
            servers: vec!["mqtt://10.0.0.5".to_owned()],
            client_id: None,
            username: None,
            password: None,
            ca_pem: None,
            primary_host_id: None,
            enabled: true,
        };
        let mut m = demo_model();
        m.northbound = vec![connection("plant"), connection("Plant"), connection("b")];
        m.northbound[0].servers = vec!["mqtts://x".into(), "http://y".into()];
        m.northbound[0].password = Some("p".into());
        m.northbound[0].ca_pem = Some("not a certificate".into());
        m.northbound[2].name = "b c".into();
        m.northbound[2].servers.clear();
        m.northbound[2].primary_host_id = Some("a/b".into());
        let errors = m.validate().unwrap_err().0;
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                // servers[0] is mqtts:// with a CA given (a bad one, reported as such).
                "northbound[0].servers[1]",
                "northbound[0].password",
                "northbound[0].ca_pem",
                "northbound[1].name",
                "northbound[2].name",
                "northbound[2].servers",
                "northbound[2].primary_host_id",
            ],
            "{errors:?}"
        );
        assert!(errors[3].reason.contains("duplicate of northbound[0].name"));
        assert!(
            !errors
                .iter()
                .any(|e| e.value.contains('p') && e.field.ends_with("password"))
        );
        m.northbound = vec![connection("plant")];
        m.validate().unwrap();
    }

    #[test]
    fn primary_host_ids_follow_the_sparkplug_rule_not_ours() {
        // SCADA products name their hosts: a dot or a space is theirs to use.
        for good in ["IamHost", "SCADA.Host 1", "scada"] {
            let mut m = demo_model();
            m.sparkplug.primary_host_id = Some(good.to_owned());
            m.validate().unwrap();
        }
        for bad in ["", "a/b", "a+", "#", "tab\there"] {
            let mut m = demo_model();
            m.sparkplug.primary_host_id = Some(bad.to_owned());
            assert_error(
                &m,
                "sparkplug.primary_host_id",
                bad,
                "without '+', '#', '/'",
            );
        }
    }

    #[test]
    fn every_name_field_is_checked() {
        let mut m = demo_model();
        m.namespace.enterprise = "a/b".into();
        m.sparkplug.group_id = Some("g+".into());
        m.sparkplug.edge_node_id = "#".into();
        m.devices[0].name = "plc 1".into();
        for tag in &mut m.tags {
            tag.device = "plc 1".into();
        }
        m.tags[2].name = "run.ning".into();
        let fields: Vec<String> = m
            .validate()
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(
            fields,
            [
                "namespace.enterprise",
                "sparkplug.group_id",
                "sparkplug.edge_node_id",
                "device[0].name",
                "tag[2].name"
            ]
        );
    }

    #[test]
    fn hierarchy_names_are_checked_with_their_path() {
        let mut m = demo_model();
        m.areas[0].lines[0].cells.push("bad cell".into());
        assert_error(&m, "area[0].line[0].cells[1]", "bad cell", "ASCII letters");
    }

    #[test]
    fn sibling_names_are_unique_ignoring_case() {
        let mut m = demo_model();
        m.areas.push(m.areas[0].clone());
        m.areas[1].name = "Packaging".into();
        assert_error(&m, "area[1].name", "Packaging", "duplicate of area[0].name");

        let mut m = demo_model();
        m.areas[0].lines.push(Line {
            name: "LINE3".into(),
            cells: vec![],
        });
        assert_error(
            &m,
            "area[0].line[1].name",
            "LINE3",
            "duplicate of area[0].line[0].name",
        );

        let mut m = demo_model();
        m.areas[0].lines[0].cells.push("Filler".into());
        assert_error(
            &m,
            "area[0].line[0].cells[1]",
            "Filler",
            "duplicate of area[0].line[0].cells[0]",
        );

        let mut m = demo_model();
        m.devices.push(m.devices[0].clone());
        m.devices[1].name = "DEMO-plc".into();
        assert_error(
            &m,
            "device[1].name",
            "DEMO-plc",
            "duplicate of device[0].name",
        );

        let mut m = demo_model();
        m.tags[3].name = "Temperature".into();
        assert_error(&m, "tag[3].name", "Temperature", "duplicate of tag[0].name");
        // The same tag name at another location is fine.
        m.tags[3].location = "packaging/line3".into();
        m.validate().unwrap();
    }

    #[test]
    fn tag_device_must_exist() {
        let mut m = demo_model();
        m.tags[1].device = "other-plc".into();
        assert_error(&m, "tag[1].device", "other-plc", "defined: demo-plc");
    }

    #[test]
    fn tag_location_must_name_a_line_or_cell() {
        for bad in [
            "packaging",
            "packaging/line4",
            "packaging/line3/capper",
            "packaging/line3/filler/x",
            "",
        ] {
            let mut m = demo_model();
            m.tags[0].location = bad.into();
            assert_error(&m, "tag[0].location", bad, "area/line or area/line/cell");
        }
        let mut m = demo_model();
        m.tags[0].location = "packaging/line3".into();
        m.validate().unwrap();
    }

    #[test]
    fn simulator_period_is_bounded() {
        for bad in [0, 9, 3_600_001] {
            let mut m = demo_model();
            m.devices[0].driver = DriverConfig::Simulator { period_ms: bad };
            assert_error(
                &m,
                "device[0].period_ms",
                &bad.to_string(),
                "between 10 and 3600000",
            );
        }
    }

    #[test]
    fn simulator_address_must_be_a_signal() {
        let mut m = demo_model();
        m.tags[0].address = "square".into();
        assert_error(
            &m,
            "tag[0].address",
            "square",
            "allowed: sine, ramp, toggle, counter, text, memory",
        );
    }

    #[test]
    fn simulator_signal_must_support_the_datatype() {
        let mut m = demo_model();
        m.tags[0].datatype = DataType::Int16; // sine
        assert_error(
            &m,
            "tag[0].datatype",
            "int16",
            "sine supports only: float32, float64",
        );
        let mut m = demo_model();
        m.tags[2].datatype = DataType::Float32; // toggle
        assert_error(
            &m,
            "tag[2].datatype",
            "float32",
            "toggle supports only: bool",
        );
    }

    #[test]
    fn arrays_and_datetimes_have_no_deadband_or_scaling() {
        for datatype in [
            DataType::Float32Array,
            DataType::DateTime,
            DataType::StringArray,
        ] {
            let mut m = opcua_model("ns=2;s=A");
            m.tags[0].datatype = datatype;
            m.validate().unwrap();
            m.tags[0].acquisition_mut().deadband = Some(0.5);
            assert_error(&m, "tag[0].deadband", "0.5", "only integer and float tags");
        }
        let mut m = opcua_model("ns=2;s=A");
        m.tags[0].datatype = DataType::Int32Array;
        m.tags[0].acquisition_mut().eng_low = Some(0.0);
        let e = only_error(&m);
        assert_eq!(
            (e.field.as_str(), e.value.as_str()),
            ("tag[0].eng_low", "0")
        );
        assert!(
            e.reason.contains("not int32[]") && e.reason.contains("any element"),
            "{e}"
        );
    }

    #[test]
    fn modbus_refuses_arrays_and_datetimes() {
        for datatype in [
            DataType::DateTime,
            DataType::UInt16Array,
            DataType::BoolArray,
        ] {
            assert_error(
                &modbus_model(modbus_tag("hr:0", datatype)),
                "tag[0].datatype",
                datatype.as_str(),
                "arrays and datetime are read from OPC UA devices only",
            );
        }
    }

    #[test]
    fn the_simulator_holds_arrays_and_datetimes_in_memory_only() {
        let mut m = demo_model();
        m.tags.truncate(1);
        m.tags[0].address = "memory".into();
        for datatype in [
            DataType::DateTime,
            DataType::Float64Array,
            DataType::StringArray,
        ] {
            m.tags[0].datatype = datatype;
            m.validate().unwrap();
        }
        m.tags[0].address = "sine".into();
        assert_error(
            &m,
            "tag[0].datatype",
            "string[]",
            "supports only: float32, float64",
        );
    }

    fn opcua_model(address: &str) -> Model {
        let mut m = demo_model();
        m.devices[0].driver = DriverConfig::opc_ua("opc.tcp://10.0.0.7:4840/plc");
        if let DriverConfig::OpcUa { period_ms, .. } = &mut m.devices[0].driver {
            *period_ms = 500;
        }
        m.tags.truncate(1);
        m.tags[0].address = address.into();
        m
    }

    #[test]
    fn opcua_devices_and_node_ids_are_checked() {
        for ok in ["ns=2;s=Line3.Temp", "i=2258", "nsu=urn:plc;i=5"] {
            opcua_model(ok).validate().unwrap();
        }
        assert_error(
            &opcua_model("Temp"),
            "tag[0].address",
            "Temp",
            "ns=<index>;s=<string>",
        );
        for bad in [
            "http://10.0.0.7:4840",
            "opc.tcp://",
            "opc.tcp://plc:0",
            "opc.tcp://plc:x/a",
            "opc.tcp://pl c:4840",
        ] {
            let mut m = opcua_model("i=85");
            if let DriverConfig::OpcUa { endpoint, .. } = &mut m.devices[0].driver {
                *endpoint = bad.into();
            }
            assert_error(
                &m,
                "device[0].endpoint",
                bad,
                "opc.tcp://HOST[:PORT][/PATH]",
            );
        }
        for ok in [
            "opc.tcp://plc",
            "opc.tcp://[::1]:4840/",
            "opc.tcp://plc.local:4840/a/b",
        ] {
            let mut m = opcua_model("i=85");
            if let DriverConfig::OpcUa { endpoint, .. } = &mut m.devices[0].driver {
                *endpoint = ok.into();
            }
            m.validate().unwrap();
        }
        let mut m = opcua_model("i=85");
        if let DriverConfig::OpcUa {
            timeout_ms,
            sampling_interval_ms,
            ..
        } = &mut m.devices[0].driver
        {
            *timeout_ms = 50;
            *sampling_interval_ms = Some(5);
        }
        let errors = m.validate().unwrap_err().0;
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["device[0].timeout_ms", "device[0].sampling_interval_ms"]
        );
    }

    #[test]
    fn opcua_security_and_identity_settings_must_agree() {
        let with = |edit: &dyn Fn(&mut DriverConfig)| {
            let mut m = opcua_model("i=85");
            edit(&mut m.devices[0].driver);
            m
        };
        let secure = with(&|d| {
            if let DriverConfig::OpcUa {
                security_policy, ..
            } = d
            {
                *security_policy = OpcUaSecurityPolicy::Basic256Sha256;
            }
        });
        secure.validate().unwrap();
        let mut m = secure.clone();
        if let DriverConfig::OpcUa { security_mode, .. } = &mut m.devices[0].driver {
            *security_mode = Some(OpcUaSecurityMode::None);
        }
        assert_error(
            &m,
            "device[0].security_mode",
            "none",
            "needs sign or sign-and-encrypt",
        );
        let m = with(&|d| {
            if let DriverConfig::OpcUa { security_mode, .. } = d {
                *security_mode = Some(OpcUaSecurityMode::Sign);
            }
        });
        assert_error(
            &m,
            "device[0].security_mode",
            "sign",
            "needs a security policy other than none",
        );
        // A user name without its password; a password without its identity is named but
        // never shown.
        let m = with(&|d| {
            if let DriverConfig::OpcUa {
                identity, username, ..
            } = d
            {
                *identity = OpcUaIdentity::Username;
                *username = Some("operator".into());
            }
        });
        assert_error(
            &m,
            "device[0].password",
            "",
            "is required with identity = \"username\"",
        );
        let m = with(&|d| {
            if let DriverConfig::OpcUa { password, .. } = d {
                *password = Some("secret".into());
            }
        });
        assert_error(
            &m,
            "device[0].password",
            "(hidden)",
            "only used with identity = \"username\"; this device's identity is \"anonymous\"",
        );
        let m = with(&|d| {
            if let DriverConfig::OpcUa {
                identity,
                user_certificate,
                user_private_key,
                ..
            } = d
            {
                *identity = OpcUaIdentity::Certificate;
                *user_certificate = Some("/etc/sparkedge/op.der".into());
                *user_private_key = Some("/etc/sparkedge/op.pem".into());
            }
        });
        m.validate().unwrap();
    }

    #[test]
    fn only_the_memory_signal_is_writable() {
        let mut m = demo_model();
        m.tags[0].writable = true;
        assert_error(&m, "tag[0].writable", "true", "only memory is writable");
    }

    #[test]
    fn unit_and_description_are_short_printable_text() {
        let mut m = demo_model();
        m.tags[0].unit = Some("deg\nC".into());
        assert_error(&m, "tag[0].unit", "deg\nC", "without control characters");
        let mut m = demo_model();
        m.tags[1].description = Some("ü".repeat(257));
        assert_error(
            &m,
            "tag[1].description",
            &"ü".repeat(257),
            "at most 256 characters",
        );
        m.tags[1].description = Some("ü".repeat(256));
        m.validate().unwrap();
    }

    #[test]
    fn all_errors_are_reported_in_file_order() {
        let mut m = demo_model();
        m.namespace.site = "plant/a".into();
        m.devices[0].driver = DriverConfig::Simulator { period_ms: 1 };
        m.tags[0].address = "square".into();
        m.tags[4].location = "nowhere/x".into();
        m.tags[5].device = "ghost".into();
        let errors = m.validate().unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "namespace.site",
                "device[0].period_ms",
                "tag[0].address",
                "tag[4].location",
                "tag[5].device"
            ]
        );
        let text = errors.to_string();
        assert_eq!(text.lines().count(), 5);
        assert!(
            text.starts_with("namespace.site = \"plant/a\": must be 1 to 64 characters"),
            "{text}"
        );
    }

    /// The demo model with its device turned into a Modbus TCP PLC and one tag `tag`.
    fn modbus_model(tag: Tag) -> Model {
        let mut m = demo_model();
        m.devices[0].driver = DriverConfig::ModbusTcp {
            host: "10.0.0.5".into(),
            port: 502,
            unit: 1,
            period_ms: 1000,
            timeout_ms: 1000,
            offline_after: 3,
            max_gap: 16,
        };
        m.tags = vec![Tag {
            device: m.devices[0].name.as_str().into(),
            location: "packaging/line3".into(),
            ..tag
        }];
        m
    }

    fn modbus_tag(address: &str, datatype: DataType) -> Tag {
        Tag::new("", "", "t", datatype, address)
    }

    #[test]
    fn modbus_tags_validate_address_type_length_order_and_writability() {
        for (address, datatype) in [
            ("hr:0", DataType::Float64),
            ("40001", DataType::Int16),
            ("hr:5.3", DataType::Bool),
            ("coil:9", DataType::Bool),
        ] {
            modbus_model(modbus_tag(address, datatype))
                .validate()
                .unwrap();
        }
        assert_error(
            &modbus_model(modbus_tag("hr:x", DataType::Int16)),
            "tag[0].address",
            "hr:x",
            "hr:OFFSET",
        );
        assert_error(
            &modbus_model(modbus_tag("coil:1", DataType::Int16)),
            "tag[0].datatype",
            "int16",
            "must be bool",
        );
        assert_error(
            &modbus_model(modbus_tag("hr:65535", DataType::Int32)),
            "tag[0].address",
            "hr:65535",
            "past 65535",
        );
        assert_error(
            &modbus_model(modbus_tag("hr:1", DataType::String)),
            "tag[0].length",
            "(none)",
            "1 to 250",
        );
        let mut t = modbus_tag("hr:1", DataType::Int16);
        t.byte_order = Some("CDAB".into());
        assert_error(
            &modbus_model(t),
            "tag[0].byte_order",
            "CDAB",
            "one register",
        );
        let mut t = modbus_tag("hr:1", DataType::Float32);
        t.byte_order = Some("ACBD".into());
        assert_error(
            &modbus_model(t),
            "tag[0].byte_order",
            "ACBD",
            "allowed: ABCD",
        );
        let mut t = modbus_tag("ir:1", DataType::Int16);
        t.writable = true;
        assert_error(
            &modbus_model(t),
            "tag[0].writable",
            "true",
            "holding registers",
        );
    }

    #[test]
    fn modbus_device_settings_are_checked() {
        let mut m = modbus_model(modbus_tag("hr:0", DataType::Int16));
        if let DriverConfig::ModbusTcp { host, max_gap, .. } = &mut m.devices[0].driver {
            *host = "plc one".into();
            *max_gap = 200;
        }
        let fields: Vec<String> = m
            .validate()
            .unwrap_err()
            .0
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["device[0].host", "device[0].max_gap"]);
    }

    fn rtu(path: &str, unit: u8, baud: u32) -> DriverConfig {
        DriverConfig::ModbusRtu {
            path: path.into(),
            baud,
            parity: crate::Parity::Even,
            data_bits: 8,
            stop_bits: 1,
            unit,
            inter_frame_delay_us: None,
            period_ms: 1000,
            timeout_ms: 200,
            offline_after: 3,
            max_gap: 16,
        }
    }

    /// The Modbus model with devices `drivers` named plc0, plc1, … (the tag on plc0).
    fn line_model(drivers: Vec<DriverConfig>) -> Model {
        let mut m = modbus_model(modbus_tag("hr:0", DataType::Int16));
        m.devices = drivers
            .into_iter()
            .enumerate()
            .map(|(i, driver)| crate::model::Device {
                name: format!("plc{i}"),
                enabled: true,
                driver,
            })
            .collect();
        m.tags[0].device = "plc0".into();
        m
    }

    #[test]
    fn rtu_devices_share_a_line_with_one_setting_and_distinct_units() {
        line_model(vec![
            rtu("/dev/ttyUSB0", 1, 19200),
            rtu("/dev/ttyUSB0", 2, 19200),
            rtu("/dev/ttyUSB1", 1, 9600),
        ])
        .validate()
        .unwrap();
        assert_error(
            &line_model(vec![
                rtu("/dev/ttyUSB0", 1, 19200),
                rtu("/dev/ttyUSB0", 2, 9600),
            ]),
            "device[1].baud",
            "9600",
            "must be 19200, as on device[0] (plc0)",
        );
        assert_error(
            &line_model(vec![
                rtu("/dev/ttyUSB0", 5, 19200),
                rtu("/dev/ttyUSB0", 5, 19200),
            ]),
            "device[1].unit",
            "5",
            "device[0] (plc0) already has this unit id",
        );
        let gateway = |unit| DriverConfig::ModbusRtuTcp {
            host: "10.0.0.9".into(),
            port: 4001,
            unit,
            period_ms: 1000,
            timeout_ms: 500,
            offline_after: 3,
            max_gap: 16,
        };
        line_model(vec![gateway(1), gateway(2)]).validate().unwrap();
        assert_error(
            &line_model(vec![gateway(3), gateway(3)]),
            "device[1].unit",
            "3",
            "already has this unit id",
        );
        let tcp = DriverConfig::ModbusTcp {
            host: "10.0.0.9".into(),
            port: 4001,
            unit: 1,
            period_ms: 1000,
            timeout_ms: 500,
            offline_after: 3,
            max_gap: 16,
        };
        assert_error(
            &line_model(vec![gateway(1), tcp]),
            "device[1].driver",
            "modbus-tcp",
            "either Modbus TCP or RTU over TCP",
        );
    }

    #[test]
    fn rtu_line_settings_are_checked() {
        let mut bad = rtu("dev/ttyUSB0", 0, 100);
        if let DriverConfig::ModbusRtu {
            data_bits,
            stop_bits,
            inter_frame_delay_us,
            ..
        } = &mut bad
        {
            *data_bits = 7;
            *stop_bits = 3;
            *inter_frame_delay_us = Some(2_000_000);
        }
        let errors = line_model(vec![bad]).validate().unwrap_err().0;
        let got: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.field.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("device[0].path", "dev/ttyUSB0"),
                ("device[0].baud", "100"),
                ("device[0].data_bits", "7"),
                ("device[0].stop_bits", "3"),
                ("device[0].inter_frame_delay_us", "2000000"),
                ("device[0].unit", "0"),
            ]
        );
        assert!(errors[2].reason.contains("8-bit bytes"), "{}", errors[2]);
        assert!(errors[5].reason.contains("1 to 247"), "{}", errors[5]);
    }

    #[test]
    fn scaling_settings_are_complete_numeric_and_invertible() {
        let scaled = |f: &dyn Fn(&mut Tag)| {
            let mut t = modbus_tag("hr:0", DataType::Float32);
            t.acquisition_mut().raw_type = Some(DataType::Int16);
            f(&mut t);
            modbus_model(t)
        };
        scaled(&|t| {
            t.acquisition_mut().raw_low = Some(0.0);
            t.acquisition_mut().raw_high = Some(27648.0);
            t.acquisition_mut().eng_low = Some(0.0);
            t.acquisition_mut().eng_high = Some(100.0);
            t.acquisition_mut().deadband_percent = Some(1.0);
        })
        .validate()
        .unwrap();
        scaled(&|t| {
            t.acquisition_mut().gain = Some(0.1);
            t.acquisition_mut().deadband = Some(0.5);
        })
        .validate()
        .unwrap();
        assert_error(
            &scaled(&|t| t.acquisition_mut().gain = Some(0.0)),
            "tag[0].gain",
            "0",
            "must not be 0",
        );
        assert_error(
            &scaled(&|t| {
                t.acquisition_mut().raw_low = Some(0.0);
                t.acquisition_mut().raw_high = Some(10.0);
            }),
            "tag[0].eng_low",
            "(none)",
            "must be given too",
        );
        assert_error(
            &scaled(&|t| {
                t.acquisition_mut().raw_low = Some(10.0);
                t.acquisition_mut().raw_high = Some(10.0);
                t.acquisition_mut().eng_low = Some(0.0);
                t.acquisition_mut().eng_high = Some(1.0);
            }),
            "tag[0].raw_high",
            "10",
            "greater than raw_low (10)",
        );
        assert_error(
            &scaled(&|t| {
                t.acquisition_mut().gain = Some(2.0);
                t.acquisition_mut().raw_low = Some(0.0);
                t.acquisition_mut().raw_high = Some(1.0);
                t.acquisition_mut().eng_low = Some(0.0);
                t.acquisition_mut().eng_high = Some(1.0);
            }),
            "tag[0].raw_low",
            "(set)",
            "not both",
        );
        assert_error(
            &scaled(&|t| t.acquisition_mut().raw_type = Some(DataType::String)),
            "tag[0].raw_type",
            "string",
            "integer or float type",
        );
        assert_error(
            &scaled(&|t| t.acquisition_mut().offset = Some(f64::NAN)),
            "tag[0].offset",
            "NaN",
            "finite",
        );
        assert_error(
            &scaled(&|t| t.acquisition_mut().deadband_percent = Some(5.0)),
            "tag[0].deadband_percent",
            "5",
            "set eng_low and eng_high",
        );
        assert_error(
            &scaled(&|t| t.acquisition_mut().deadband = Some(-1.0)),
            "tag[0].deadband",
            "-1",
            "0 or more",
        );
        let mut t = modbus_tag("coil:1", DataType::Bool);
        t.acquisition_mut().deadband = Some(1.0);
        assert_error(
            &modbus_model(t),
            "tag[0].deadband",
            "1",
            "only integer and float tags have this setting, not bool",
        );
        // The register type decides the register count: an int16 fits hr:65535.
        let mut t = modbus_tag("hr:65535", DataType::Float64);
        t.acquisition_mut().raw_type = Some(DataType::Int16);
        t.acquisition_mut().gain = Some(0.5);
        modbus_model(t).validate().unwrap();
    }

    #[test]
    fn scan_classes_are_named_bounded_and_referenced() {
        let mut m = modbus_model(modbus_tag("hr:0", DataType::Int16));
        m.scan_classes = vec![
            crate::ScanClass {
                name: "fast".into(),
                period_ms: 100,
            },
            crate::ScanClass {
                name: "FAST".into(),
                period_ms: 5,
            },
        ];
        m.tags[0].acquisition_mut().scan_class = Some("slow".into());
        let errors = m.validate().unwrap_err().0;
        let got: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.field.as_str(), e.value.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("scan_class[1].name", "FAST"),
                ("scan_class[1].period_ms", "5"),
                ("tag[0].scan_class", "slow"),
            ]
        );
        assert!(
            errors[2].reason.contains("defined: fast, FAST"),
            "{}",
            errors[2]
        );
        let mut m = demo_model();
        m.scan_classes = vec![crate::ScanClass {
            name: "fast".into(),
            period_ms: 100,
        }];
        m.tags[0].acquisition_mut().scan_class = Some("fast".into());
        assert_error(&m, "tag[0].scan_class", "(set)", "only Modbus");
    }

    #[test]
    fn only_modbus_tags_take_a_byte_order() {
        let mut m = demo_model();
        m.tags[0].byte_order = Some("ABCD".into());
        assert_error(&m, "tag[0].byte_order", "(set)", "only Modbus");
    }
}
