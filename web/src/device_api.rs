//! REST endpoints that reach the devices themselves, for the pages that configure them and
//! for operators: test a connection, read tags once, preview Modbus registers under every
//! byte order, browse an OPC UA server, write a tag's value.
//!
//! | route | role | body |
//! |---|---|---|
//! | `POST /api/devices/test` | admin | a device, as `POST /api/devices` takes it (not saved) |
//! | `POST /api/devices/test-read` | admin | `{"device": {…}, "tags": [tag, …]}` (neither saved) |
//! | `POST /api/devices/{name}/test` | admin | — |
//! | `POST /api/devices/{name}/read` | admin | a tag or a list of tags (not saved; `device` may be left out) |
//! | `POST /api/devices/{name}/modbus-preview` | admin | `{"address", "count"?, "datatype"?, "length"?, "byte_order"?, scaling?}` |
//! | `GET /api/devices/{name}/browse?node=…&limit=…` | admin | — |
//! | `POST /api/tags/{location/name}/value` | operator | `{"value": …}` |
//!
//! The probes are admin's: they connect to plant equipment with whatever settings the body
//! gives. Writing a value is an operator's job.
//!
//! Two kinds of answer. A request the API refuses gets an HTTP error in the shape of every
//! API error, naming the field, the value and the reason: a bad body (422), an unknown device
//! (404), a register preview of a device that is not Modbus (422 naming `device`), a write
//! to a tag that is not writable (409 naming `writable`), all probe slots taken (503). A
//! probe that ran answers 200 with what the device said, failures included:
//! `{"ok": false, "error": "cannot connect to 127.0.0.1:1502: Connection refused …"}`, so a
//! form can show the device's own words next to the settings that caused them. A write the
//! device refuses is 502 with its reason, naming `value`.
//!
//! Nothing waits unbounded: every device call is bounded by the device's timeout inside
//! ([`DeviceAccess`]) and again here, and at most [`CONCURRENT_PROBES`] probes run at once.
//! Unsaved devices and tags are validated by the model's own rules first (as a scratch model
//! with the running namespace), so a probe never starts from settings a save would refuse.

use std::future::Future;
use std::time::Duration;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};
use uns_model::{
    Acquisition, DataType, Device, DriverConfig, ModbusAddress, Model, NodeAddress, Tag, TagId,
    Value,
};

use crate::AppState;
use crate::api_error::{ApiError, FieldError, JsonBody, text_of};
use crate::devices::{
    BrowseLevel, CONCURRENT_PROBES, Decode, PreviewRequest, RegisterData, RegisterPreview,
    TagReading,
};
use crate::edit::{find_device, find_tag, keep_password, parse_device, running};

/// Tags one test read takes at most.
pub const MAX_TEST_TAGS: usize = 100;

/// Children one browse lists at most, and by default.
pub const MAX_BROWSE_LIMIT: usize = 5000;
const DEFAULT_BROWSE_LIMIT: usize = 1000;

/// The longest any device call may keep a request waiting.
const MAX_WAIT: Duration = Duration::from_secs(150);

/// The device's limit for one request.
fn request_timeout(device: &Device) -> Duration {
    let ms = match &device.driver {
        DriverConfig::OpcUa { timeout_ms, .. } => *timeout_ms,
        DriverConfig::Simulator { period_ms } => (*period_ms).max(1000),
        other => other.modbus().map_or(1000, |m| m.timeout_ms),
    };
    Duration::from_millis(u64::from(ms.max(1)))
}

/// How long a probe of `requests` requests may keep a request waiting: more than the
/// implementation's own bound (a request each plus connecting), so this one only catches a
/// call that hangs.
fn probe_limit(device: &Device, requests: usize) -> Duration {
    let n = u32::try_from(requests)
        .unwrap_or(u32::MAX)
        .saturating_add(8);
    request_timeout(device)
        .saturating_mul(n)
        .saturating_add(Duration::from_secs(5))
        .min(MAX_WAIT)
}

/// How long a write may take to be confirmed: the write, the value read back, and a poll
/// that may be under way on the line, each within the device's timeout.
fn write_limit(device: &Device) -> Duration {
    request_timeout(device)
        .saturating_mul(4)
        .saturating_add(Duration::from_secs(2))
        .min(Duration::from_secs(60))
}

/// `call`, or 504 when it outlasts `limit`.
async fn bounded<T>(
    limit: Duration,
    what: &str,
    call: impl Future<Output = Result<T, String>>,
) -> Result<Result<T, String>, ApiError> {
    tokio::time::timeout(limit, call).await.map_err(|_| {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!("{what} gave no result within {} s", limit.as_secs()),
        )
    })
}

/// A probe slot, or 503.
fn slot(state: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, ApiError> {
    state.devices.slot().ok_or_else(|| {
        ApiError::unavailable(format!(
            "{CONCURRENT_PROBES} device tests are running already; try again when one has \
             finished"
        ))
    })
}

/// The driver's name as the model writes it (`modbus-tcp`, `opc-ua`).
fn driver_name(device: &Device) -> String {
    serde_json::to_value(&device.driver)
        .ok()
        .and_then(|v| {
            v.get("driver")
                .and_then(JsonValue::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

// ---- names of fields in errors ----

/// Puts `prefix` before the field of every error that names one (`port` → `device.port`,
/// `[2].address` → `tags[2].address`).
fn prefixed(mut error: ApiError, prefix: &str) -> ApiError {
    for FieldError { field, .. } in &mut error.errors {
        *field = Some(match field.take() {
            Some(f) if f.starts_with('[') => format!("{prefix}{f}"),
            Some(f) => format!("{prefix}.{f}"),
            None => prefix.to_owned(),
        });
    }
    error
}

/// How the caller named the device and tags of a probe, for the model's validation errors.
#[derive(Clone, Copy, Debug)]
struct Names {
    /// Before a device field: `""` or `"device."`.
    device: &'static str,
    /// Before a tag's index or field: `""` or `"tags"`.
    tags: &'static str,
    /// The tags were sent as a list (`[i].field`) rather than one object (`field`).
    many: bool,
}

impl Names {
    /// A model error path (`device[0].port`, `tag[2].address`) as the caller's field.
    fn relabel(self, field: &str) -> String {
        let Some((head, rest)) = field.split_once("].") else {
            return field.to_owned();
        };
        match head.split_once('[') {
            Some(("device", _)) => format!("{}{rest}", self.device),
            Some(("tag", i)) if self.many => format!("{}[{i}].{rest}", self.tags),
            Some(("tag", _)) if self.tags.is_empty() => rest.to_owned(),
            Some(("tag", _)) => format!("{}.{rest}", self.tags),
            _ => field.to_owned(),
        }
    }
}

/// Checks `device` with `tags` by the model's rules, in a scratch model with the running
/// namespace and scan classes: the same rules a save applies.
fn check(model: &Model, device: &Device, tags: &[Tag], names: Names) -> Result<(), ApiError> {
    let scratch = Model {
        namespace: model.namespace.clone(),
        sparkplug: model.sparkplug.clone(),
        northbound: Vec::new(),
        scan_classes: model.scan_classes.clone(),
        areas: model.areas.clone(),
        devices: vec![device.clone()],
        tags: tags.to_vec(),
    };
    scratch
        .validate()
        .map_err(|errors| ApiError::invalid(errors, |f| names.relabel(f)))
}

/// A saved device's password for an unsaved copy that leaves it out (a form never shows it).
fn with_saved_password(model: &Model, mut device: Device) -> Device {
    if let Some(saved) = model
        .devices
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(&device.name))
    {
        keep_password(saved, &mut device);
    }
    device
}

/// Tags from a body (one object or a list) for `device`; `device` may be left out of each.
/// Errors are named `[i].field` (a list) or `field` (one tag).
fn parse_tags(body: JsonValue, device: &str) -> Result<(Vec<Tag>, bool), ApiError> {
    let many = body.is_array();
    let mut items = match body {
        JsonValue::Array(items) => items,
        one => vec![one],
    };
    if items.len() > MAX_TEST_TAGS {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("[{MAX_TEST_TAGS}]"),
            items.len().to_string(),
            format!("a test reads at most {MAX_TEST_TAGS} tags at once"),
        ));
    }
    if items.is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no tags given: send a tag or a list of tags",
        ));
    }
    for item in &mut items {
        if let JsonValue::Object(map) = item {
            map.entry("device")
                .or_insert_with(|| JsonValue::String(device.to_owned()));
        }
    }
    let tags: Vec<Tag> = if many {
        crate::api_error::parse(&JsonValue::Array(items))?
    } else {
        vec![crate::api_error::parse(&items[0])?]
    };
    for (i, tag) in tags.iter().enumerate() {
        if tag.device != device {
            let field = if many {
                format!("[{i}].device")
            } else {
                "device".to_owned()
            };
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                field,
                tag.device.as_str(),
                format!("the tags are read from device {device:?}; leave device out or name it"),
            ));
        }
    }
    Ok((tags, many))
}

// ---- POST /api/devices/{name}: test and test-read of unsaved devices ----

/// `POST /api/devices/test` and `POST /api/devices/test-read` (admin). Routed through the
/// device path, not as routes of their own: a static `/api/devices/test` route would take
/// `GET /api/devices/test` away from a device named `test`.
pub(crate) async fn post_device(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Json<JsonValue>, ApiError> {
    match name.as_str() {
        "test" => {
            let JsonBody(body) = JsonBody::<JsonValue>::from_request(request, &state).await?;
            test_unsaved(&state, body).await
        }
        "test-read" => {
            let JsonBody(body) = JsonBody::<TestReadBody>::from_request(request, &state).await?;
            test_read_unsaved(&state, body).await
        }
        _ => Err(ApiError::field(
            StatusCode::METHOD_NOT_ALLOWED,
            "name",
            name,
            "POST does not apply to a device: PUT changes it; POST /api/devices/{name}/test, \
             /read, /modbus-preview probe it",
        )),
    }
}

async fn test_unsaved(state: &AppState, body: JsonValue) -> Result<Json<JsonValue>, ApiError> {
    let device = parse_device(body)?;
    let model = running(state).await?;
    let device = with_saved_password(&model, device);
    let names = Names {
        device: "",
        tags: "",
        many: false,
    };
    check(&model, &device, &[], names)?;
    test(state, device).await
}

/// The body of `POST /api/devices/test-read`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestReadBody {
    /// A device, as `POST /api/devices` takes it.
    device: JsonValue,
    /// A tag or a list of tags, as `POST /api/tags` takes them; `device` may be left out.
    tags: JsonValue,
}

async fn test_read_unsaved(
    state: &AppState,
    body: TestReadBody,
) -> Result<Json<JsonValue>, ApiError> {
    let device = parse_device(body.device).map_err(|e| prefixed(e, "device"))?;
    let (tags, many) = parse_tags(body.tags, &device.name).map_err(|e| prefixed(e, "tags"))?;
    let model = running(state).await?;
    let device = with_saved_password(&model, device);
    let names = Names {
        device: "device.",
        tags: "tags",
        many,
    };
    check(&model, &device, &tags, names)?;
    read(state, device, tags).await
}

// ---- saved devices ----

/// A saved device, by name.
async fn saved(state: &AppState, name: &str) -> Result<(std::sync::Arc<Model>, Device), ApiError> {
    let model = running(state).await?;
    let device = model.devices[find_device(&model, name)?].clone();
    Ok((model, device))
}

/// `POST /api/devices/{name}/test` (admin): the saved device's connection.
pub(crate) async fn test_saved(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<JsonValue>, ApiError> {
    let (_, device) = saved(&state, &name).await?;
    test(&state, device).await
}

async fn test(state: &AppState, device: Device) -> Result<Json<JsonValue>, ApiError> {
    let _slot = slot(state)?;
    let limit = probe_limit(&device, 2);
    let call = state.devices.access().test_connection(device.clone());
    let result = bounded(limit, "the connection test", call).await?;
    Ok(Json(match result {
        Ok(message) => json!({ "device": device.name, "ok": true, "message": message }),
        Err(error) => json!({ "device": device.name, "ok": false, "error": error }),
    }))
}

/// `POST /api/devices/{name}/read` (admin): reads unsaved tags of a saved device once.
pub(crate) async fn read_saved(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<JsonValue>,
) -> Result<Json<JsonValue>, ApiError> {
    let (model, device) = saved(&state, &name).await?;
    let (tags, many) = parse_tags(body, &device.name)?;
    let names = Names {
        device: "device.",
        tags: "",
        many,
    };
    check(&model, &device, &tags, names)?;
    read(&state, device, tags).await
}

async fn read(
    state: &AppState,
    device: Device,
    tags: Vec<Tag>,
) -> Result<Json<JsonValue>, ApiError> {
    let _slot = slot(state)?;
    let paths: Vec<String> = tags
        .iter()
        .map(|t| format!("{}/{}", t.location, t.name))
        .collect();
    let limit = probe_limit(&device, tags.len());
    let call = state.devices.access().test_read(device.clone(), tags);
    let result = bounded(limit, "the test read", call).await?;
    Ok(Json(match result {
        Ok(readings) => json!({
            "device": device.name,
            "ok": true,
            "tags": paths.iter().zip(readings).map(|(p, r)| reading_json(p, &r)).collect::<Vec<_>>(),
        }),
        Err(error) => json!({
            "device": device.name,
            "ok": false,
            "error": error,
            "tags": paths.iter().map(|p| json!({
                "tag": p, "value": null, "quality": null, "timestamp": null,
                "error": format!("not read: {error}"),
            })).collect::<Vec<_>>(),
        }),
    }))
}

fn reading_json(path: &str, r: &TagReading) -> JsonValue {
    json!({
        "tag": path,
        "value": r.value.as_ref().map(Value::to_json),
        "quality": r.quality.as_str(),
        "timestamp": r.timestamp_ms,
        "error": r.error,
    })
}

// ---- Modbus register preview ----

/// The body of `POST /api/devices/{name}/modbus-preview`: where to read, and optionally how
/// to decode what is read (the fields a tag has, so a tag form can send its own).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PreviewBody {
    /// The first register or bit: `hr:100`, `ir:0`, `coil:5`, `di:0`, `hr:100.3`, `40101`.
    address: String,
    /// Registers (or bits) to read from there: 1 to 125 (2000 bits). Default: what
    /// `datatype` needs, else 1.
    #[serde(default)]
    count: Option<u16>,
    /// Decode the value at `address` as this type under every byte order.
    #[serde(default)]
    datatype: Option<DataType>,
    /// Characters, for a string.
    #[serde(default)]
    length: Option<u16>,
    /// The order the tag has now: marked `selected` in the result.
    #[serde(default)]
    byte_order: Option<String>,
    /// The register's type when the tag's differs (scaling).
    #[serde(default)]
    raw_type: Option<DataType>,
    #[serde(default)]
    gain: Option<f64>,
    #[serde(default)]
    offset: Option<f64>,
    #[serde(default)]
    raw_low: Option<f64>,
    #[serde(default)]
    raw_high: Option<f64>,
    #[serde(default)]
    eng_low: Option<f64>,
    #[serde(default)]
    eng_high: Option<f64>,
}

/// Registers a value of `datatype` occupies (`length` characters for a string); `None` for
/// types without a register encoding (datetime, arrays).
fn registers_of(datatype: DataType, length: u16) -> Option<u16> {
    match datatype {
        DataType::Bool | DataType::Int8 | DataType::UInt8 | DataType::Int16 | DataType::UInt16 => {
            Some(1)
        }
        DataType::Int32 | DataType::UInt32 | DataType::Float32 => Some(2),
        DataType::Int64 | DataType::UInt64 | DataType::Float64 => Some(4),
        DataType::String => Some(length.div_ceil(2)),
        _ => None,
    }
}

impl PreviewBody {
    /// The read and decoding asked for, checked; and the byte order to mark.
    fn request(
        &self,
    ) -> Result<(PreviewRequest, ModbusAddress, Option<uns_model::ByteOrder>), ApiError> {
        let bad = |field: &str, value: String, reason: String| {
            ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, field, value, reason)
        };
        let address: ModbusAddress = self
            .address
            .parse()
            .map_err(|e| bad("address", self.address.clone(), e))?;
        let kind = address.kind;
        let datatype = self.datatype.or(self.raw_type);
        let decode = match datatype {
            None => None,
            Some(_) if kind.is_bit() => {
                let field = if self.datatype.is_some() {
                    "datatype"
                } else {
                    "raw_type"
                };
                let value = datatype.map(|d| d.to_string()).unwrap_or_default();
                return Err(bad(
                    field,
                    value,
                    "coils and discrete inputs hold single bits: leave the type out".into(),
                ));
            }
            Some(datatype) => {
                let mut tag = Tag::new("preview", "preview", "preview", datatype, "");
                tag.acquisition = Acquisition {
                    raw_type: self.raw_type,
                    gain: self.gain,
                    offset: self.offset,
                    raw_low: self.raw_low,
                    raw_high: self.raw_high,
                    eng_low: self.eng_low,
                    eng_high: self.eng_high,
                    ..Acquisition::default()
                }
                .boxed();
                let conversion = tag.conversion();
                let raw = conversion.raw_type;
                let field = if self.raw_type.is_some() {
                    "raw_type"
                } else {
                    "datatype"
                };
                let length = match (raw, self.length) {
                    (DataType::String, None | Some(0)) => {
                        return Err(bad(
                            "length",
                            self.length.map(|l| l.to_string()).unwrap_or_default(),
                            "a string needs its length in characters (1 to 250)".into(),
                        ));
                    }
                    (DataType::String, Some(l)) if l > 250 => {
                        return Err(bad(
                            "length",
                            l.to_string(),
                            "a string is 1 to 250 characters".into(),
                        ));
                    }
                    (_, l) => l.unwrap_or(0),
                };
                if registers_of(raw, length).is_none() {
                    return Err(bad(
                        field,
                        raw.to_string(),
                        format!(
                            "{raw} has no register encoding; registers hold bool, int8 to \
                             uint64, float32, float64 or string"
                        ),
                    ));
                }
                Some(Decode { conversion, length })
            }
        };
        let needed = decode
            .as_ref()
            .and_then(|d| registers_of(d.conversion.raw_type, d.length))
            .unwrap_or(1);
        let count = self.count.unwrap_or(needed);
        let max = kind.max_per_read();
        let what = if kind.is_bit() { "bits" } else { "registers" };
        if count == 0 || count > max {
            return Err(bad(
                "count",
                count.to_string(),
                format!("one read takes 1 to {max} {what}"),
            ));
        }
        if u32::from(address.offset) + u32::from(count) > 65536 {
            return Err(bad(
                "count",
                count.to_string(),
                format!("the read would end past {}:65535", kind.prefix()),
            ));
        }
        if let Some(d) = &decode
            && count < needed
        {
            return Err(bad(
                "count",
                count.to_string(),
                format!(
                    "{} needs {needed} registers from {address}: read at least {needed}",
                    d.conversion.raw_type
                ),
            ));
        }
        let selected = match &self.byte_order {
            None => None,
            Some(o) => Some(o.parse().map_err(|e| bad("byte_order", o.clone(), e))?),
        };
        let request = PreviewRequest {
            kind,
            start: address.offset,
            count,
            decode,
        };
        Ok((request, address, selected))
    }
}

/// `POST /api/devices/{name}/modbus-preview` (admin): raw registers, and the value at their
/// start under every byte order side by side.
pub(crate) async fn modbus_preview(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<PreviewBody>,
) -> Result<Json<JsonValue>, ApiError> {
    let (_, device) = saved(&state, &name).await?;
    if !device.driver.is_modbus() {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "device",
            &device.name,
            format!(
                "{} is a {} device; the register preview is for Modbus devices (modbus-tcp, \
                 modbus-rtu, modbus-rtu-tcp)",
                device.name,
                driver_name(&device)
            ),
        ));
    }
    let (request, address, selected) = body.request()?;
    let _slot = slot(&state)?;
    let limit = probe_limit(&device, 1);
    let call = state
        .devices
        .access()
        .modbus_preview(device.clone(), request.clone());
    let result = bounded(limit, "the register read", call).await?;
    let mut answer = json!({
        "device": device.name,
        "address": address.to_string(),
        "count": request.count,
    });
    match result {
        Ok(preview) => {
            answer["ok"] = json!(true);
            preview_json(&mut answer, &request, &address, selected, &preview);
        }
        Err(error) => {
            answer["ok"] = json!(false);
            answer["error"] = json!(error);
        }
    }
    Ok(Json(answer))
}

fn preview_json(
    answer: &mut JsonValue,
    request: &PreviewRequest,
    address: &ModbusAddress,
    selected: Option<uns_model::ByteOrder>,
    preview: &RegisterPreview,
) {
    let prefix = request.kind.prefix();
    let at = |i: usize| format!("{prefix}:{}", usize::from(request.start) + i);
    match &preview.data {
        RegisterData::Words(words) => {
            answer["registers"] = words
                .iter()
                .enumerate()
                .map(|(i, w)| json!({ "address": at(i), "hex": format!("{w:04X}"), "value": w }))
                .collect();
            if let (Some(bit), Some(word)) = (address.bit, words.first()) {
                answer["bit"] =
                    json!({ "address": address.to_string(), "value": word >> bit & 1 == 1 });
            }
        }
        RegisterData::Bits(bits) => {
            answer["bits"] = bits
                .iter()
                .enumerate()
                .map(|(i, b)| json!({ "address": at(i), "value": b }))
                .collect();
        }
    }
    if let Some(decode) = &request.decode {
        answer["datatype"] = json!(decode.conversion.datatype);
        answer["raw_type"] = json!(decode.conversion.raw_type);
        answer["orders"] = preview
            .orders
            .iter()
            .map(|o| {
                let error = match (&o.raw, &o.value) {
                    (Err(e), _) | (_, Err(e)) => Some(e.clone()),
                    _ => None,
                };
                json!({
                    "byte_order": o.name,
                    "raw": o.raw.as_ref().ok().map(Value::to_json),
                    "value": o.value.as_ref().ok().map(Value::to_json),
                    "error": error,
                    "selected": selected == Some(o.order),
                })
            })
            .collect();
    }
}

// ---- OPC UA browse ----

#[derive(Debug, Deserialize)]
pub(crate) struct BrowseQuery {
    node: Option<String>,
    limit: Option<String>,
}

/// `GET /api/devices/{name}/browse[?node=NODEID][&limit=N]` (admin): one level of the
/// server's address space below `node` (the Objects folder when absent).
pub(crate) async fn browse(
    State(state): State<AppState>,
    Path(name): Path<String>,
    query: Result<Query<BrowseQuery>, QueryRejection>,
) -> Result<Json<JsonValue>, ApiError> {
    let Query(query) =
        query.map_err(|e| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.body_text()))?;
    let bad = |field: &str, value: &str, reason: String| {
        ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, field, value, reason)
    };
    let node: Option<NodeAddress> = match &query.node {
        None => None,
        Some(n) if n.trim().is_empty() => None,
        Some(n) => Some(n.trim().parse().map_err(|e| bad("node", n, e))?),
    };
    let limit = match &query.limit {
        None => DEFAULT_BROWSE_LIMIT,
        Some(l) => l
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_BROWSE_LIMIT).contains(n))
            .ok_or_else(|| bad("limit", l, format!("a number from 1 to {MAX_BROWSE_LIMIT}")))?,
    };
    let (_, device) = saved(&state, &name).await?;
    if !matches!(device.driver, DriverConfig::OpcUa { .. }) {
        return Err(ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "device",
            &device.name,
            format!(
                "{} is a {} device; browsing is for OPC UA devices (opc-ua)",
                device.name,
                driver_name(&device)
            ),
        ));
    }
    let _slot = slot(&state)?;
    // A level of `limit` children is read in pages of up to 250, each with a Read.
    let limit_time = probe_limit(&device, limit.div_ceil(250) * 3);
    let shown = node
        .as_ref()
        .map_or_else(|| "i=85".to_owned(), ToString::to_string);
    let call = state.devices.access().browse(device.clone(), node, limit);
    let result = bounded(limit_time, "the browse", call).await?;
    Ok(Json(match result {
        Ok(level) => browse_json(&device.name, &shown, &level),
        Err(error) => json!({ "device": device.name, "node": shown, "ok": false, "error": error }),
    }))
}

fn browse_json(device: &str, node: &str, level: &BrowseLevel) -> JsonValue {
    let children: Vec<JsonValue> = level
        .nodes
        .iter()
        .map(|n| {
            json!({
                "address": n.address,
                "name": n.display_name,
                "browse_name": n.browse_name,
                "node_class": n.node_class.as_str(),
                "description": n.description,
                "has_children": n.has_children,
                "opcua_type": n.opcua_type,
                "datatype": n.datatype,
                "value_rank": n.value_rank,
                "readable": n.readable,
                "writable": n.writable,
            })
        })
        .collect();
    json!({
        "device": device,
        "node": node,
        "ok": true,
        "children": children,
        "truncated": level.truncated,
    })
}

// ---- writing a value ----

/// The body of `POST /api/tags/{location/name}/value`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ValueBody {
    /// The new value in the tag's engineering units, as JSON of the tag's type: a number,
    /// `true`/`false`, a string, RFC 3339 text for a datetime, an array for an array type.
    value: JsonValue,
}

/// `value` as a value of `tag`, or why it cannot be written to it: the type and range the
/// tag takes (its register's range through its scaling, a Modbus string's length).
pub(crate) fn parse_value(tag: &Tag, value: &JsonValue) -> Result<Value, String> {
    let parsed = Value::from_json(tag.datatype, value)?;
    match &parsed {
        // JSON has no float32: a number beyond its range would become infinity.
        Value::Float32(f) if !f.is_finite() && value.as_f64().is_some_and(f64::is_finite) => {
            return Err(format!(
                "{value} is out of range for float32 ({:e}..={:e})",
                f32::MIN,
                f32::MAX
            ));
        }
        Value::String(s) => {
            // Only Modbus string tags have a length (the model refuses it elsewhere).
            if let Some(max) = tag.length
                && s.len() > usize::from(max)
            {
                return Err(format!(
                    "{} bytes do not fit the tag's {max} characters",
                    s.len()
                ));
            }
        }
        _ => {}
    }
    tag.conversion().to_raw(&parsed)?;
    Ok(parsed)
}

/// The running model and the generation its tag numbers belong to ([`LiveValues::model`]
/// before and after loading it agree). A model applied while it loads is loaded again; one
/// that keeps changing is reported rather than written under.
///
/// [`LiveValues::model`]: crate::LiveValues::model
async fn numbered_model(state: &AppState) -> Result<(std::sync::Arc<Model>, u64), ApiError> {
    for _ in 0..3 {
        let generation = state.live.model();
        let model = running(state).await?;
        if state.live.model() == generation {
            return Ok((model, generation));
        }
    }
    Err(ApiError::unavailable(
        "the model changed three times while this write looked up its tag (an import is \
         running?); nothing was written: try again",
    ))
}

/// `POST /api/tags/{location/name}/value` (operator): writes a value to a writable tag and
/// answers once the device confirmed it. Routed through the tag path, whose last segment
/// says what is posted (a tag's path has no fixed length).
pub(crate) async fn post_tag(
    State(state): State<AppState>,
    Path(path): Path<String>,
    request: Request,
) -> Result<Json<JsonValue>, ApiError> {
    let Some(tag_path) = path.strip_suffix("/value") else {
        return Err(ApiError::field(
            StatusCode::METHOD_NOT_ALLOWED,
            "path",
            path,
            "POST /api/tags/{location/name}/value writes a value; PUT /api/tags/{location/name} \
             changes the tag",
        ));
    };
    let JsonBody(body) = JsonBody::<ValueBody>::from_request(request, &state).await?;
    // A tag's index in the running model is how the write finds its driver. Holding the
    // edit lock from looking it up until the device confirmed keeps this server's edits from
    // renumbering the tags in between; the model's generation goes with the write for a model
    // another process imports meanwhile (see `DeviceAccess::write`).
    let _no_model_change = state.edits.lock().await;
    let (model, generation) = numbered_model(&state).await?;
    let index = find_tag(&model, tag_path)?;
    let tag = &model.tags[index];
    let shown = format!("{}/{}", tag.location, tag.name);
    if !tag.writable {
        return Err(ApiError::field(
            StatusCode::CONFLICT,
            "writable",
            "false",
            format!("{shown} is not writable; an admin can make it writable (writable = true)"),
        ));
    }
    let device = model
        .devices
        .iter()
        .find(|d| d.name == tag.device)
        .ok_or_else(|| ApiError::not_found("device", &tag.device, "device"))?;
    if !device.enabled {
        return Err(ApiError::field(
            StatusCode::CONFLICT,
            "device",
            &device.name,
            format!(
                "device {} is disabled: no driver runs to write through",
                device.name
            ),
        ));
    }
    let value = parse_value(tag, &body.value).map_err(|reason| {
        ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            "value",
            text_of(&body.value),
            reason,
        )
    })?;
    let limit = write_limit(device);
    let id = TagId(u32::try_from(index).unwrap_or(u32::MAX));
    let call = state.devices.access().write(id, generation, value.clone());
    match tokio::time::timeout(limit, call).await {
        Err(_) => Err(ApiError::field(
            StatusCode::GATEWAY_TIMEOUT,
            "value",
            text_of(&body.value),
            format!(
                "device {} did not confirm the write within {} s; it may or may not have \
                 taken effect: watch the tag's value",
                device.name,
                limit.as_secs()
            ),
        )),
        Ok(Err(reason)) => Err(ApiError::field(
            StatusCode::BAD_GATEWAY,
            "value",
            text_of(&body.value),
            format!("the write to device {} failed: {reason}", device.name),
        )),
        Ok(Ok(())) => Ok(Json(json!({
            "tag": shown,
            "value": value.to_json(),
            "written": true,
        }))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(datatype: DataType) -> Tag {
        Tag::new("plc", "a/b", "t", datatype, "hr:0")
    }

    #[test]
    fn values_are_parsed_against_the_tag_type_and_range() {
        let int16 = tag(DataType::Int16);
        assert_eq!(parse_value(&int16, &json!(-300)), Ok(Value::Int16(-300)));
        let e = parse_value(&int16, &json!("12")).unwrap_err();
        assert!(e.contains("not an integer; int16 needs one"), "{e}");
        let e = parse_value(&int16, &json!(70000)).unwrap_err();
        assert!(e.contains("out of range for int16 (-32768..=32767)"), "{e}");
        let e = parse_value(&int16, &json!(1.5)).unwrap_err();
        assert!(e.contains("not an integer"), "{e}");
        assert_eq!(
            parse_value(&tag(DataType::Bool), &json!(true)),
            Ok(Value::Bool(true))
        );
        assert!(parse_value(&tag(DataType::Bool), &json!(1)).is_err());
        assert_eq!(
            parse_value(&tag(DataType::Float32), &json!(21.5)),
            Ok(Value::Float32(21.5))
        );
        let e = parse_value(&tag(DataType::Float32), &json!(1e300)).unwrap_err();
        assert!(e.contains("out of range for float32"), "{e}");
        assert!(parse_value(&tag(DataType::Float64), &json!(null)).is_err());
    }

    #[test]
    fn a_scaled_tag_takes_only_what_its_register_can_hold() {
        let mut scaled = tag(DataType::Float32);
        scaled.acquisition = Acquisition {
            raw_type: Some(DataType::Int16),
            raw_low: Some(0.0),
            raw_high: Some(27648.0),
            eng_low: Some(0.0),
            eng_high: Some(100.0),
            ..Acquisition::default()
        }
        .boxed();
        assert_eq!(parse_value(&scaled, &json!(50)), Ok(Value::Float32(50.0)));
        let e = parse_value(&scaled, &json!(150)).unwrap_err();
        assert!(e.contains("engineering range"), "{e}");
    }

    #[test]
    fn a_modbus_string_must_fit_its_length() {
        let mut label = tag(DataType::String);
        label.length = Some(4);
        assert_eq!(
            parse_value(&label, &json!("abcd")),
            Ok(Value::String("abcd".into()))
        );
        let e = parse_value(&label, &json!("abcde")).unwrap_err();
        assert!(e.contains("4 characters"), "{e}");
    }

    fn preview(
        body: JsonValue,
    ) -> Result<(PreviewRequest, ModbusAddress, Option<uns_model::ByteOrder>), ApiError> {
        crate::api_error::parse::<PreviewBody>(&body)?.request()
    }

    fn field_of(e: ApiError) -> (String, String) {
        let e = &e.errors[0];
        (e.field.clone().unwrap(), e.value.clone().unwrap())
    }

    #[test]
    fn a_preview_reads_what_the_type_needs_unless_told() {
        let (r, _, selected) =
            preview(json!({"address": "40101", "datatype": "float64", "byte_order": "cdab"}))
                .unwrap();
        assert_eq!(
            (r.kind, r.start, r.count),
            (uns_model::RegisterKind::HoldingRegister, 100, 4)
        );
        assert_eq!(selected, Some(uns_model::ByteOrder::CDAB));
        let (r, _, _) =
            preview(json!({"address": "hr:130", "datatype": "string", "length": 13})).unwrap();
        assert_eq!(r.count, 7);
        let (r, _, _) = preview(json!({"address": "coil:3", "count": 16})).unwrap();
        assert!(r.decode.is_none());
        // Scaling: the register type decides the registers.
        let (r, _, _) = preview(
            json!({"address": "hr:0", "datatype": "float64", "raw_type": "int16", "gain": 0.1}),
        )
        .unwrap();
        assert_eq!(r.count, 1);
    }

    #[test]
    fn a_bad_preview_names_its_field() {
        for (body, field, value) in [
            (json!({"address": "hr:x"}), "address", "hr:x"),
            (json!({"address": "hr:0", "count": 126}), "count", "126"),
            (json!({"address": "hr:65535", "count": 2}), "count", "2"),
            (
                json!({"address": "hr:0", "datatype": "float32", "count": 1}),
                "count",
                "1",
            ),
            (
                json!({"address": "hr:0", "datatype": "datetime"}),
                "datatype",
                "datetime",
            ),
            (
                json!({"address": "hr:0", "datatype": "string"}),
                "length",
                "",
            ),
            (
                json!({"address": "coil:0", "datatype": "bool"}),
                "datatype",
                "bool",
            ),
            (
                json!({"address": "hr:0", "datatype": "int32", "byte_order": "ACBD"}),
                "byte_order",
                "ACBD",
            ),
            (
                json!({"address": "hr:0", "datatype": "flaot32"}),
                "datatype",
                "flaot32",
            ),
        ] {
            let e = preview(body.clone()).unwrap_err();
            assert_eq!(e.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(field_of(e), (field.to_owned(), value.to_owned()), "{body}");
        }
    }

    #[test]
    fn validation_errors_are_named_as_the_caller_sent_them() {
        let one = Names {
            device: "",
            tags: "",
            many: false,
        };
        assert_eq!(one.relabel("device[0].port"), "port");
        assert_eq!(one.relabel("tag[0].address"), "address");
        let nested = Names {
            device: "device.",
            tags: "tags",
            many: true,
        };
        assert_eq!(nested.relabel("device[0].port"), "device.port");
        assert_eq!(nested.relabel("tag[3].address"), "tags[3].address");
        let single = Names {
            device: "device.",
            tags: "tags",
            many: false,
        };
        assert_eq!(single.relabel("tag[0].address"), "tags.address");
        assert_eq!(single.relabel("namespace.site"), "namespace.site");
        let e = prefixed(
            ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, "[2].datatype", "x", "bad"),
            "tags",
        );
        assert_eq!(e.errors[0].field.as_deref(), Some("tags[2].datatype"));
    }
}
