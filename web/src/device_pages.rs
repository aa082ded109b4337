//! The Devices pages: the list of devices (`GET /devices`), the form for a new one
//! (`GET /devices/new`), and a device's page (`GET /devices/{name}`): its status, its tags with
//! live values, and its settings.
//!
//! The pages are rendered here from the running model; every change they make goes through
//! the REST API from `/static/devices.js` (the same validation, errors named by field, nothing
//! half-applied), so the forms hold no rules of their own. Who sees what:
//!
//! - viewers see devices, settings (read only, never a password) and live values;
//! - operators also get a "Write…" control on writable tags;
//! - admins get the forms: add, edit, enable/disable, delete, test connection, tags.
//!
//! The API enforces the roles whatever the page shows; hiding a control only spares a user a
//! button that would answer 403.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value as JsonValue;
use uns_model::{DataType, Device, DriverConfig, Model, Tag, TagId, TagSample, Value};

use crate::paging::{Pager, thousands};
use crate::status::DeviceStatus;
use crate::{AppState, CurrentUser, Role};

/// A page that cannot be shown: a message page with the status and the reason.
pub(crate) fn page_error(status: StatusCode, user: &CurrentUser, reason: &str) -> Response {
    crate::account::message_page(status, Some(user), reason)
}

/// The running model, or the page saying why there is none.
pub(crate) async fn model_or_page(
    state: &AppState,
    user: &CurrentUser,
) -> Result<Arc<Model>, Response> {
    crate::running_model(state)
        .await
        .map_err(|(status, reason)| page_error(status, user, &reason))
}

/// Renders `page`, or a 500 page naming the template error.
pub(crate) fn render(page: &impl askama::Template, user: &CurrentUser) -> Response {
    match page.render() {
        Ok(body) => axum::response::Html(body).into_response(),
        Err(e) => page_error(StatusCode::INTERNAL_SERVER_ERROR, user, &e.to_string()),
    }
}

/// The URL of a device's page. `/devices/new` is the form for a new device, so a device named
/// `new` is linked as `/devices/New`: the page finds devices ignoring case, as the API does.
pub(crate) fn device_url(name: &str) -> String {
    if name == "new" {
        "/devices/New".to_owned()
    } else {
        format!("/devices/{name}")
    }
}

/// The driver's name as the model and the API write it.
pub(crate) fn driver_name(driver: &DriverConfig) -> &'static str {
    match driver {
        DriverConfig::Simulator { .. } => "simulator",
        DriverConfig::ModbusTcp { .. } => "modbus-tcp",
        DriverConfig::ModbusRtu { .. } => "modbus-rtu",
        DriverConfig::ModbusRtuTcp { .. } => "modbus-rtu-tcp",
        DriverConfig::OpcUa { .. } => "opc-ua",
    }
}

/// Where the device is: `host:port`, the serial port, the endpoint.
fn device_address(driver: &DriverConfig) -> String {
    match driver {
        DriverConfig::Simulator { .. } => "built in".to_owned(),
        DriverConfig::ModbusTcp { host, port, .. }
        | DriverConfig::ModbusRtuTcp { host, port, .. } => {
            if host.contains(':') {
                format!("[{host}]:{port}") // an IPv6 address
            } else {
                format!("{host}:{port}")
            }
        }
        DriverConfig::ModbusRtu {
            path, baud, parity, ..
        } => format!("{path} {baud} {}", parity.as_str()),
        DriverConfig::OpcUa { endpoint, .. } => endpoint.clone(),
    }
}

/// A device's state as the list and the device page show it.
pub(crate) struct StatusView {
    /// `online`, `offline`, `disabled` or `unknown` (nothing reported yet); also the CSS
    /// class `st-…`.
    pub(crate) state: &'static str,
    /// The device's last error, shown in full: it is what an engineer needs to fix it.
    pub(crate) error: String,
    /// Since when, ISO time, or empty.
    pub(crate) since: String,
}

impl StatusView {
    /// The last error as shown: as it is while the device is offline; once it is back, marked
    /// as past, so an old error is not read as the current state.
    pub(crate) fn error_text(&self) -> String {
        match (self.state, self.error.is_empty()) {
            (_, true) => String::new(),
            ("offline", false) => self.error.clone(),
            (_, false) => format!("last error: {}", self.error),
        }
    }

    /// Red while it explains why the device is offline, grey after.
    pub(crate) fn error_class(&self) -> &'static str {
        if self.state == "offline" {
            "device-error"
        } else {
            "device-error past"
        }
    }

    fn new(device: &Device, reported: Option<&DeviceStatus>) -> StatusView {
        let state = match reported {
            _ if !device.enabled => "disabled",
            None => "unknown",
            Some(s) if s.online => "online",
            Some(_) => "offline",
        };
        StatusView {
            state,
            error: reported
                .and_then(|s| s.last_error.clone())
                .unwrap_or_default(),
            since: reported
                .and_then(|s| s.since_ms)
                .and_then(uns_model::value::datetime_text)
                .unwrap_or_default(),
        }
    }
}

/// One row of the device list.
struct DeviceRow {
    name: String,
    url: String,
    driver: &'static str,
    address: String,
    enabled: bool,
    status: StatusView,
    tags: usize,
}

#[derive(askama::Template)]
#[template(path = "devices.html")]
struct DevicesPage {
    user: Option<CurrentUser>,
    devices: Vec<DeviceRow>,
    tags: usize,
}

impl DevicesPage {
    fn is_admin(&self) -> bool {
        self.user.as_ref().is_some_and(CurrentUser::is_admin)
    }
}

/// `GET /devices` (viewer).
pub(crate) async fn list(State(state): State<AppState>, user: CurrentUser) -> Response {
    let model = match model_or_page(&state, &user).await {
        Ok(model) => model,
        Err(page) => return page,
    };
    let status = state.status.snapshot();
    let devices = model
        .devices
        .iter()
        .map(|d| DeviceRow {
            name: d.name.clone(),
            url: device_url(&d.name),
            driver: driver_name(&d.driver),
            address: device_address(&d.driver),
            enabled: d.enabled,
            status: StatusView::new(d, status.devices.iter().find(|s| s.name == d.name)),
            tags: model.tags.iter().filter(|t| t.device == d.name).count(),
        })
        .collect();
    let page = DevicesPage {
        user: Some(user.clone()),
        devices,
        tags: model.tags.len(),
    };
    render(&page, &user)
}

// ---- the device form ----

/// How a setting is entered.
pub(crate) enum Input {
    Text,
    Number,
    /// Write-only: never filled in; empty keeps the stored one.
    Password,
    /// One of these; the empty choice leaves the setting out (its default applies).
    Select(&'static [&'static str]),
}

/// One driver setting of the device form. Which rows show follows the chosen driver (and
/// for some, another choice: `when`), in `/static/devices.js`; hidden rows are disabled, so
/// they are not sent.
pub(crate) struct Setting {
    pub(crate) name: &'static str,
    pub(crate) label: &'static str,
    /// The drivers that have it.
    pub(crate) drivers: &'static [&'static str],
    pub(crate) input: Input,
    /// The default per driver (`*` for every driver): the placeholder of an empty field.
    pub(crate) defaults: &'static [(&'static str, &'static str)],
    /// Only shown while the select named first has the value second.
    pub(crate) when: Option<(&'static str, &'static str)>,
    pub(crate) help: &'static str,
}

impl Setting {
    /// The drivers, space-separated, for `data-drivers`.
    pub(crate) fn drivers_attr(&self) -> String {
        self.drivers.join(" ")
    }

    /// The placeholder for `driver`.
    pub(crate) fn default_for(&self, driver: &str) -> &'static str {
        self.defaults
            .iter()
            .find(|(d, _)| *d == driver)
            .or_else(|| self.defaults.iter().find(|(d, _)| *d == "*"))
            .map_or("", |(_, v)| *v)
    }

    pub(crate) fn when_attr(&self) -> String {
        self.when
            .map(|(f, v)| format!("{f}={v}"))
            .unwrap_or_default()
    }
}

const MODBUS: &[&str] = &["modbus-tcp", "modbus-rtu", "modbus-rtu-tcp"];
const TCP: &[&str] = &["modbus-tcp", "modbus-rtu-tcp"];
const RTU: &[&str] = &["modbus-rtu"];
const OPC: &[&str] = &["opc-ua"];
const ALL: &[&str] = &[
    "simulator",
    "modbus-tcp",
    "modbus-rtu",
    "modbus-rtu-tcp",
    "opc-ua",
];
const POLLED: &[&str] = &["modbus-tcp", "modbus-rtu", "modbus-rtu-tcp", "opc-ua"];

/// The drivers a device can have, as the model names them, with what each is for.
pub(crate) const DRIVERS: [(&str, &str); 5] = [
    ("modbus-tcp", "Modbus TCP"),
    ("modbus-rtu", "Modbus RTU (serial line)"),
    ("modbus-rtu-tcp", "Modbus RTU over TCP (serial gateway)"),
    ("opc-ua", "OPC UA"),
    ("simulator", "Simulator (built in)"),
];

/// Every driver setting, in the order the form shows them. Defaults as in `uns_model`.
pub(crate) const SETTINGS: &[Setting] = &[
    Setting {
        name: "host",
        label: "Host",
        drivers: TCP,
        input: Input::Text,
        defaults: &[("*", "192.168.1.10")],
        when: None,
        help: "IP address or DNS name of the PLC or gateway",
    },
    Setting {
        name: "port",
        label: "Port",
        drivers: TCP,
        input: Input::Number,
        defaults: &[("*", "502")],
        when: None,
        help: "",
    },
    Setting {
        name: "path",
        label: "Serial port",
        drivers: RTU,
        input: Input::Text,
        defaults: &[("*", "/dev/ttyUSB0")],
        when: None,
        help: "/dev/serial/by-id/… names survive re-plugging; devices on one port share it",
    },
    Setting {
        name: "baud",
        label: "Baud rate",
        drivers: RTU,
        input: Input::Number,
        defaults: &[("*", "19200")],
        when: None,
        help: "",
    },
    Setting {
        name: "parity",
        label: "Parity",
        drivers: RTU,
        input: Input::Select(&["none", "even", "odd"]),
        defaults: &[("*", "even")],
        when: None,
        help: "",
    },
    Setting {
        name: "data_bits",
        label: "Data bits",
        drivers: RTU,
        input: Input::Number,
        defaults: &[("*", "8")],
        when: None,
        help: "always 8 for Modbus RTU",
    },
    Setting {
        name: "stop_bits",
        label: "Stop bits",
        drivers: RTU,
        input: Input::Number,
        defaults: &[("*", "1")],
        when: None,
        help: "1 or 2",
    },
    Setting {
        name: "unit",
        label: "Unit id",
        drivers: MODBUS,
        input: Input::Number,
        defaults: &[("*", "1")],
        when: None,
        help: "the slave id: 1 to 247 on a serial line; usually 1 (or 255) over TCP",
    },
    Setting {
        name: "inter_frame_delay_us",
        label: "Inter-frame delay (µs)",
        drivers: RTU,
        input: Input::Number,
        defaults: &[("*", "3.5 characters at the baud rate")],
        when: None,
        help: "silence between a reply and the next request; slow devices may need more",
    },
    Setting {
        name: "endpoint",
        label: "Endpoint",
        drivers: OPC,
        input: Input::Text,
        defaults: &[("*", "opc.tcp://192.168.1.20:4840")],
        when: None,
        help: "always connected to as written, whatever the server announces",
    },
    Setting {
        name: "security_policy",
        label: "Security policy",
        drivers: OPC,
        input: Input::Select(&[
            "none",
            "basic256sha256",
            "aes128-sha256-rsaoaep",
            "aes256-sha256-rsapss",
        ]),
        defaults: &[("*", "none")],
        when: None,
        help: "",
    },
    Setting {
        name: "security_mode",
        label: "Security mode",
        drivers: OPC,
        input: Input::Select(&["none", "sign", "sign-and-encrypt"]),
        defaults: &[("*", "sign-and-encrypt unless the policy is none")],
        when: None,
        help: "",
    },
    Setting {
        name: "identity",
        label: "User identity",
        drivers: OPC,
        input: Input::Select(&["anonymous", "username", "certificate"]),
        defaults: &[("*", "anonymous")],
        when: None,
        help: "",
    },
    Setting {
        name: "username",
        label: "User name",
        drivers: OPC,
        input: Input::Text,
        defaults: &[],
        when: Some(("identity", "username")),
        help: "",
    },
    Setting {
        name: "password",
        label: "Password",
        drivers: OPC,
        input: Input::Password,
        defaults: &[],
        when: Some(("identity", "username")),
        help: "never shown again once saved; leave empty to keep the stored one",
    },
    Setting {
        name: "user_certificate",
        label: "User certificate",
        drivers: OPC,
        input: Input::Text,
        defaults: &[("*", "/etc/sparkedge/pki/user.der")],
        when: Some(("identity", "certificate")),
        help: "path on the appliance, DER or PEM",
    },
    Setting {
        name: "user_private_key",
        label: "User private key",
        drivers: OPC,
        input: Input::Text,
        defaults: &[("*", "/etc/sparkedge/pki/user.key")],
        when: Some(("identity", "certificate")),
        help: "path on the appliance, PEM",
    },
    Setting {
        name: "acquisition",
        label: "Acquisition",
        drivers: OPC,
        input: Input::Select(&["subscription", "poll"]),
        defaults: &[("*", "subscription")],
        when: None,
        help: "poll: read every tag at its period, for servers whose subscriptions are unreliable",
    },
    Setting {
        name: "period_ms",
        label: "Period (ms)",
        drivers: ALL,
        input: Input::Number,
        defaults: &[("*", "1000")],
        when: None,
        help: "how often every tag is read (OPC UA: the publishing interval)",
    },
    Setting {
        name: "sampling_interval_ms",
        label: "Sampling interval (ms)",
        drivers: OPC,
        input: Input::Number,
        defaults: &[("*", "the period")],
        when: None,
        help: "how often the server samples each node",
    },
    Setting {
        name: "queue_size",
        label: "Queue size",
        drivers: OPC,
        input: Input::Number,
        defaults: &[("*", "1")],
        when: None,
        help: "changes the server keeps per item between publishes",
    },
    Setting {
        name: "timeout_ms",
        label: "Timeout (ms)",
        drivers: POLLED,
        input: Input::Number,
        defaults: &[("opc-ua", "5000"), ("*", "1000")],
        when: None,
        help: "how long one request may take",
    },
    Setting {
        name: "offline_after",
        label: "Offline after (cycles)",
        drivers: MODBUS,
        input: Input::Number,
        defaults: &[("*", "3")],
        when: None,
        help: "failed poll cycles in a row before the device is reported offline (DDEATH)",
    },
    Setting {
        name: "max_gap",
        label: "Max gap (registers)",
        drivers: MODBUS,
        input: Input::Number,
        defaults: &[("*", "16")],
        when: None,
        help: "unused registers one read may span to save a request",
    },
];

/// The device form: a new device or a saved one's settings.
pub(crate) struct DeviceForm {
    /// `None` for a new device.
    pub(crate) saved_name: Option<String>,
    pub(crate) name: String,
    pub(crate) enabled: bool,
    pub(crate) driver: &'static str,
    /// The saved settings as text, by name (never the password).
    values: serde_json::Map<String, JsonValue>,
    /// An OPC UA password is stored (the field says so rather than showing it).
    pub(crate) has_password: bool,
}

impl DeviceForm {
    fn new_device() -> DeviceForm {
        DeviceForm {
            saved_name: None,
            name: String::new(),
            enabled: true,
            driver: "modbus-tcp",
            values: serde_json::Map::new(),
            has_password: false,
        }
    }

    fn of(device: &Device) -> DeviceForm {
        let mut values = match serde_json::to_value(&device.driver) {
            Ok(JsonValue::Object(map)) => map,
            _ => serde_json::Map::new(),
        };
        values.remove("password");
        DeviceForm {
            saved_name: Some(device.name.clone()),
            name: device.name.clone(),
            enabled: device.enabled,
            driver: driver_name(&device.driver),
            values,
            has_password: matches!(
                &device.driver,
                DriverConfig::OpcUa {
                    password: Some(_),
                    ..
                }
            ),
        }
    }

    /// The saved value of setting `name` as the form shows it; empty when unset.
    pub(crate) fn value(&self, name: &str) -> String {
        match self.values.get(name) {
            None | Some(JsonValue::Null) => String::new(),
            Some(JsonValue::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        }
    }

    /// Whether setting `setting` is shown for the form's driver (before any script runs).
    pub(crate) fn shows(&self, setting: &Setting) -> bool {
        setting.drivers.contains(&self.driver)
            && setting
                .when
                .is_none_or(|(field, value)| self.value(field) == value)
    }

    /// The API call the form's Save makes.
    pub(crate) fn api(&self) -> String {
        match &self.saved_name {
            None => "POST /api/devices".to_owned(),
            Some(name) => format!("PUT /api/devices/{name}"),
        }
    }
}

#[derive(askama::Template)]
#[template(path = "device_new.html")]
struct NewDevicePage {
    user: Option<CurrentUser>,
    form: DeviceForm,
    settings: &'static [Setting],
    drivers: [(&'static str, &'static str); 5],
}

/// `GET /devices/new` (admin).
pub(crate) async fn new_device(user: CurrentUser) -> Response {
    let page = NewDevicePage {
        user: Some(user.clone()),
        form: DeviceForm::new_device(),
        settings: SETTINGS,
        drivers: DRIVERS,
    };
    render(&page, &user)
}

// ---- a device's page ----

/// One tag of a device's table.
pub(crate) struct TagRow {
    /// Its number in the running model: what live values are keyed by.
    pub(crate) index: usize,
    /// `location/name`, how the API addresses it.
    pub(crate) path: String,
    pub(crate) name: String,
    pub(crate) location: String,
    pub(crate) datatype: &'static str,
    pub(crate) address: String,
    pub(crate) byte_order: String,
    pub(crate) unit: String,
    pub(crate) description: String,
    pub(crate) writable: bool,
    pub(crate) value: String,
    pub(crate) quality: &'static str,
    pub(crate) time: String,
    /// How the write dialog asks for a value: `bool`, `number`, `json` (arrays) or `text`.
    pub(crate) input: &'static str,
}

/// A value as the tables show it (as `/static/app.js` shows live updates).
pub(crate) fn value_text(sample: Option<&TagSample>) -> String {
    match sample.and_then(|s| s.value.as_ref()) {
        None => "—".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(v) => match v.to_json() {
            JsonValue::String(s) => s,
            json => json.to_string(),
        },
    }
}

fn write_input(datatype: DataType) -> &'static str {
    if datatype == DataType::Bool {
        "bool"
    } else if datatype.is_integer() || datatype.is_float() {
        "number"
    } else if datatype.is_array() {
        "json"
    } else {
        "text"
    }
}

/// The tags of `device` that `filter` matches, with their numbers in the model, in model
/// order. The filter is a piece of the tag's name, `location/name` or address, any case: what
/// an engineer has at hand (a name from a drawing, a register from a PLC's manual).
fn device_tags<'a>(model: &'a Model, device: &str, filter: &str) -> Vec<(usize, &'a Tag)> {
    let needle = filter.trim().to_lowercase();
    model
        .tags
        .iter()
        .enumerate()
        .filter(|(_, t)| t.device == device)
        .filter(|(_, t)| {
            needle.is_empty()
                || format!("{}/{}", t.location, t.name)
                    .to_lowercase()
                    .contains(&needle)
                || t.address.to_string().to_lowercase().contains(&needle)
        })
        .collect()
}

/// The table row of tag number `index`, with its live value.
fn tag_row(state: &AppState, index: usize, t: &Tag) -> TagRow {
    let sample = u32::try_from(index)
        .ok()
        .and_then(|i| state.live.get(TagId(i)));
    TagRow {
        index,
        path: format!("{}/{}", t.location, t.name),
        name: t.name.to_string(),
        location: t.location.to_string(),
        datatype: t.datatype.as_str(),
        address: t.address.to_string(),
        byte_order: t.byte_order.clone().unwrap_or_default(),
        unit: t.unit.clone().unwrap_or_default(),
        description: t.description.clone().unwrap_or_default(),
        writable: t.writable,
        value: value_text(sample.as_ref()),
        quality: sample.as_ref().map_or("none", |s| s.quality.as_str()),
        time: sample
            .as_ref()
            .and_then(|s| uns_model::value::datetime_text(s.timestamp_ms))
            .unwrap_or_default(),
        input: write_input(t.datatype),
    }
}

/// A line or cell a tag can be placed at: `area/line` or `area/line/cell`.
pub(crate) struct LocationOption {
    pub(crate) path: String,
    /// Indented for the select: cells under their line.
    pub(crate) label: String,
}

/// Every line and cell of the namespace, in tree order.
pub(crate) fn locations(model: &Model) -> Vec<LocationOption> {
    let mut out = Vec::new();
    for area in &model.areas {
        for line in &area.lines {
            let path = format!("{}/{}", area.name, line.name);
            out.push(LocationOption {
                label: path.clone(),
                path: path.clone(),
            });
            for cell in &line.cells {
                out.push(LocationOption {
                    path: format!("{path}/{cell}"),
                    label: format!("\u{a0}\u{a0}\u{a0}\u{a0}{path}/{cell}"),
                });
            }
        }
    }
    out
}

#[derive(askama::Template)]
#[template(path = "device.html")]
struct DevicePage {
    user: Option<CurrentUser>,
    name: String,
    /// The device page's URL.
    url: String,
    driver: &'static str,
    address: String,
    enabled: bool,
    status: StatusView,
    /// The rows of this page of the table: those the filter matches, one page of them.
    tags: Vec<TagRow>,
    /// Every tag of the device, whatever the filter.
    tag_total: usize,
    /// What the table is filtered by, as typed; empty for every tag.
    filter: String,
    pager: Pager,
    form: DeviceForm,
    settings: &'static [Setting],
    drivers: [(&'static str, &'static str); 5],
    locations: Vec<LocationOption>,
    /// Every tag type, space-separated, for the browse picker's type selects.
    datatypes: String,
    is_admin: bool,
    can_write: bool,
}

impl DevicePage {
    fn tag_total_text(&self) -> String {
        thousands(self.tag_total)
    }

    /// The link to page `page` of the table under the same filter (by value or reference:
    /// the template has both).
    fn page_url(&self, page: impl std::borrow::Borrow<usize>) -> String {
        let mut url = format!("{}?page={}", self.url, page.borrow());
        if !self.filter.is_empty() {
            url.push_str("&filter=");
            url.push_str(&crate::auth::percent_encode(&self.filter));
        }
        url
    }
}

/// Which part of a device's tag table to show: `?filter=speed&page=2`. Taken as text, so a
/// hand-edited link that is no page number shows the first page rather than an error.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct TableQuery {
    filter: String,
    page: String,
}

/// `GET /devices/{name}` (viewer).
pub(crate) async fn device(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(name): Path<String>,
    Query(query): Query<TableQuery>,
) -> Response {
    let model = match model_or_page(&state, &user).await {
        Ok(model) => model,
        Err(page) => return page,
    };
    let Some(device) = find_device(&model, &name) else {
        return page_error(
            StatusCode::NOT_FOUND,
            &user,
            &format!("There is no device named {name:?}."),
        );
    };
    let status = state.status.snapshot();
    let tag_total = model
        .tags
        .iter()
        .filter(|t| t.device == device.name)
        .count();
    let filter = query.filter.trim().to_owned();
    let matching = device_tags(&model, &device.name, &filter);
    let pager = Pager::new(matching.len(), &query.page);
    let page = DevicePage {
        name: device.name.clone(),
        url: device_url(&device.name),
        driver: driver_name(&device.driver),
        address: device_address(&device.driver),
        enabled: device.enabled,
        status: StatusView::new(
            device,
            status.devices.iter().find(|s| s.name == device.name),
        ),
        tags: matching[pager.rows()]
            .iter()
            .map(|(index, tag)| tag_row(&state, *index, tag))
            .collect(),
        tag_total,
        filter,
        pager,
        form: DeviceForm::of(device),
        settings: SETTINGS,
        drivers: DRIVERS,
        locations: locations(&model),
        datatypes: DataType::ALL.map(DataType::as_str).join(" "),
        is_admin: user.is_admin(),
        can_write: user.role.allows(Role::Operator),
        user: Some(user.clone()),
    };
    render(&page, &user)
}

/// The device named `name`, exactly or else ignoring case (as the API finds it).
pub(crate) fn find_device<'a>(model: &'a Model, name: &str) -> Option<&'a Device> {
    model.devices.iter().find(|d| d.name == name).or_else(|| {
        model
            .devices
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_setting_names_a_field_of_its_drivers() {
        // Each setting must be a key the API takes for each driver it is shown for, or the
        // form would send a field the API refuses.
        let mut examples = vec![
            DriverConfig::Simulator { period_ms: 1000 },
            DriverConfig::opc_ua("opc.tcp://x:4840"),
        ];
        for driver in ["modbus-tcp", "modbus-rtu-tcp"] {
            examples.push(
                serde_json::from_value(serde_json::json!({"driver": driver, "host": "x"})).unwrap(),
            );
        }
        examples.push(
            serde_json::from_value(serde_json::json!({"driver": "modbus-rtu", "path": "/dev/x"}))
                .unwrap(),
        );
        for setting in SETTINGS {
            for driver in setting.drivers {
                let example = examples.iter().find(|d| driver_name(d) == *driver).unwrap();
                let mut json = serde_json::to_value(example).unwrap();
                json[setting.name] = match setting.input {
                    Input::Number => serde_json::json!(1),
                    Input::Select(options) => serde_json::json!(options[0]),
                    Input::Text | Input::Password => serde_json::json!("x"),
                };
                let parsed: Result<DriverConfig, _> = serde_json::from_value(json);
                assert!(
                    parsed.is_ok(),
                    "{driver} does not take {}: {parsed:?}",
                    setting.name
                );
            }
        }
        for (driver, _) in DRIVERS {
            assert!(ALL.contains(&driver));
        }
    }

    #[test]
    fn addresses_read_as_engineers_write_them() {
        let tcp: DriverConfig = serde_json::from_value(
            serde_json::json!({"driver": "modbus-tcp", "host": "10.0.0.5", "port": 5020}),
        )
        .unwrap();
        assert_eq!(device_address(&tcp), "10.0.0.5:5020");
        let v6: DriverConfig = serde_json::from_value(
            serde_json::json!({"driver": "modbus-rtu-tcp", "host": "fe80::1"}),
        )
        .unwrap();
        assert_eq!(device_address(&v6), "[fe80::1]:502");
        let rtu: DriverConfig = serde_json::from_value(
            serde_json::json!({"driver": "modbus-rtu", "path": "/dev/ttyUSB0"}),
        )
        .unwrap();
        assert_eq!(device_address(&rtu), "/dev/ttyUSB0 19200 even");
        assert_eq!(device_url("new"), "/devices/New");
        assert_eq!(device_url("press-plc"), "/devices/press-plc");
    }
}
