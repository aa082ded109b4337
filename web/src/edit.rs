//! Changing the model over the REST API: devices, tags, the namespace tree, the Sparkplug
//! ids, scan classes, and the whole model (JSON or the TOML of `sparkedge export`) with a
//! preview of what would change. Northbound connections have their own module
//! ([`crate::northbound`]) and change the model through [`change`] here.
//!
//! Every change goes the same way: load the running model, change a copy, and hand the copy
//! to [`ModelSource::apply`](crate::ModelSource::apply), which validates the whole model,
//! stores it in one transaction and applies it to the running appliance. So a change is
//! checked by the same rules as an import, and either all of it takes effect or none. One
//! change runs at a time (`AppState::edits`), so two users editing at once cannot lose each
//! other's changes between load and apply.
//!
//! Errors name the field as the caller wrote it: `datatype` for the tag being edited,
//! `servers[1]` for the northbound connection being saved, `[3].name` for the fourth tag of a
//! bulk create, and for anything else the model path with names instead
//! of indices (`tags[packaging/line3/filler/temperature].location`), so a script or a form can
//! point at the culprit.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value as JsonValue, json};
use uns_model::{Area, Device, DriverConfig, Model, ModelDiff, ScanClass, SparkplugIds, Tag};

use crate::AppState;
use crate::api_error::{ApiError, JsonBody};

/// Which part of the model a request changes: its errors are named relative to it.
#[derive(Clone, Debug)]
pub(crate) enum Scope {
    Whole,
    Device(usize),
    Northbound(usize),
    Tag(usize),
    /// Tags appended from this index on, named `[i]` in the order sent.
    NewTags(usize),
    /// Tags from a CSV file: model index → the file's row, named `row[N]`.
    Rows(std::collections::HashMap<usize, usize>),
}

/// Turns a model error path into the name the caller used (see the module doc).
fn relabel(model: &Model, scope: &Scope, field: &str) -> String {
    let Some((head, rest)) = field.split_once("].") else {
        return field.to_owned();
    };
    let Some((kind, index)) = head.split_once('[') else {
        return field.to_owned();
    };
    let Ok(index) = index.parse::<usize>() else {
        return field.to_owned();
    };
    match (kind, scope) {
        ("tag", Scope::Tag(i)) if *i == index => rest.to_owned(),
        ("tag", Scope::NewTags(first)) if index >= *first => {
            format!("[{}].{rest}", index - first)
        }
        ("tag", Scope::Rows(rows)) if rows.contains_key(&index) => {
            format!("row[{}].{rest}", rows[&index])
        }
        ("device", Scope::Device(i)) if *i == index => rest.to_owned(),
        ("northbound", Scope::Northbound(i)) if *i == index => rest.to_owned(),
        ("tag", _) => match model.tags.get(index) {
            Some(t) => format!("tags[{}/{}].{rest}", t.location, t.name),
            None => field.to_owned(),
        },
        ("device", _) => match model.devices.get(index) {
            Some(d) => format!("devices[{}].{rest}", d.name),
            None => field.to_owned(),
        },
        ("northbound", _) => match model.northbound.get(index) {
            Some(n) => format!("northbound[{}].{rest}", n.name),
            None => field.to_owned(),
        },
        _ => field.to_owned(),
    }
}

/// Loads the running model, lets `change` edit a copy, and applies the copy; returns what
/// `change` returned. One change at a time.
pub(crate) async fn change<R: Send + 'static>(
    state: &AppState,
    change: impl FnOnce(&mut Model) -> Result<(R, Scope), ApiError> + Send + 'static,
) -> Result<R, ApiError> {
    let _one_at_a_time = state.edits.lock().await;
    let source = state.model.clone();
    tokio::task::spawn_blocking(move || {
        let running = source.load().map_err(ApiError::unavailable)?;
        let mut model = Model::clone(&running);
        drop(running);
        let (result, scope) = change(&mut model)?;
        if let Err(errors) = model.validate() {
            return Err(ApiError::invalid(errors, |f| relabel(&model, &scope, f)));
        }
        source.apply(model).map_err(|e| match e {
            // Validated above; a second opinion from the store is reported as it is.
            crate::ApplyError::Invalid(errors) => ApiError::invalid(errors, str::to_owned),
            crate::ApplyError::Failed(reason) => ApiError::unavailable(reason),
        })?;
        Ok(result)
    })
    .await
    .map_err(|e| ApiError::unavailable(format!("the change failed: {e}")))?
}

/// The running model, off the async threads.
pub(crate) async fn running(state: &AppState) -> Result<Arc<Model>, ApiError> {
    crate::running_model(state)
        .await
        .map_err(|(_, reason)| ApiError::unavailable(reason))
}

/// A device as the API shows it: without its password, which is write-only.
fn device_json(device: &Device, tags: usize) -> JsonValue {
    let mut shown = device.clone();
    if let DriverConfig::OpcUa { password, .. } = &mut shown.driver {
        *password = None;
    }
    let mut json = serde_json::to_value(&shown).unwrap_or(JsonValue::Null);
    if let JsonValue::Object(map) = &mut json {
        map.insert("tags".to_owned(), json!(tags));
    }
    json
}

/// A PUT without a password keeps the stored one, so a client that read the device (which
/// never shows the password) can write it back unchanged.
pub(crate) fn keep_password(old: &Device, new: &mut Device) {
    if let (
        DriverConfig::OpcUa {
            password: Some(old),
            ..
        },
        DriverConfig::OpcUa {
            password: new @ None,
            identity: uns_model::OpcUaIdentity::Username,
            ..
        },
    ) = (&old.driver, &mut new.driver)
    {
        *new = Some(old.clone());
    }
}

/// Reads a device from JSON. Its driver settings are an internally tagged enum (`driver =
/// "modbus-tcp"`), which serde reads from a buffer and so loses track of the field at fault;
/// [`crate::api_error::parse`] recovers it from serde's words.
pub(crate) fn parse_device(json: JsonValue) -> Result<Device, ApiError> {
    #[derive(Deserialize)]
    struct Common {
        name: String,
        #[serde(default = "yes")]
        enabled: bool,
    }
    fn yes() -> bool {
        true
    }
    let JsonValue::Object(mut map) = json else {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "a device must be a JSON object",
        ));
    };
    let mut common = serde_json::Map::new();
    for key in ["name", "enabled"] {
        if let Some(v) = map.remove(key) {
            common.insert(key.to_owned(), v);
        }
    }
    let Common { name, enabled } = crate::api_error::parse(&JsonValue::Object(common))?;
    let driver = crate::api_error::parse(&JsonValue::Object(map))?;
    Ok(Device {
        name,
        enabled,
        driver,
    })
}

pub(crate) fn find_device(model: &Model, name: &str) -> Result<usize, ApiError> {
    model
        .devices
        .iter()
        .position(|d| d.name == name)
        .or_else(|| {
            model
                .devices
                .iter()
                .position(|d| d.name.eq_ignore_ascii_case(name))
        })
        .ok_or_else(|| ApiError::not_found("device", name, "device"))
}

/// A tag is addressed by its place below the site, `location/name`, which is unique.
pub(crate) fn find_tag(model: &Model, path: &str) -> Result<usize, ApiError> {
    let matches = |t: &Tag, exact: bool| {
        let Some((location, name)) = path.rsplit_once('/') else {
            return false;
        };
        if exact {
            t.location == location && t.name == name
        } else {
            t.location.eq_ignore_ascii_case(location) && t.name.eq_ignore_ascii_case(name)
        }
    };
    model
        .tags
        .iter()
        .position(|t| matches(t, true))
        .or_else(|| model.tags.iter().position(|t| matches(t, false)))
        .ok_or_else(|| ApiError::not_found("tag", path, "tag"))
}

fn created(location: String, body: JsonValue) -> Response {
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(body),
    )
        .into_response()
}

// ---- whole model ----

#[derive(Debug, Deserialize)]
pub(crate) struct DryRun {
    #[serde(default)]
    dry_run: bool,
}

/// `GET /api/model`: the whole model as JSON, passwords included (admin only).
pub(crate) async fn get_model(State(state): State<AppState>) -> Result<Json<Model>, ApiError> {
    Ok(Json(Model::clone(&*running(&state).await?)))
}

/// `PUT /api/model[?dry_run=true]`: replaces the whole model. With `dry_run`, only checks it
/// and says what would change.
pub(crate) async fn put_model(
    State(state): State<AppState>,
    Query(DryRun { dry_run }): Query<DryRun>,
    JsonBody(model): JsonBody<Model>,
) -> Result<Json<JsonValue>, ApiError> {
    replace_model(&state, model, dry_run).await
}

/// `GET /api/model.toml`: the model as the TOML of `sparkedge export` (admin only).
pub(crate) async fn get_model_toml(State(state): State<AppState>) -> Result<Response, ApiError> {
    let model = running(&state).await?;
    let text = uns_model::file::to_toml(&model);
    Ok((
        [
            (header::CONTENT_TYPE, "application/toml; charset=utf-8"),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"sparkedge.toml\"",
            ),
        ],
        text,
    )
        .into_response())
}

/// `PUT /api/model.toml[?dry_run=true]`: replaces the model with a TOML file's, as
/// `sparkedge import` does. Errors name the file's fields (`tag[3].datatype`).
pub(crate) async fn put_model_toml(
    State(state): State<AppState>,
    Query(DryRun { dry_run }): Query<DryRun>,
    body: String,
) -> Result<Json<JsonValue>, ApiError> {
    let model = uns_model::file::from_toml(&body)
        .map_err(|errors| ApiError::invalid(errors, str::to_owned))?;
    replace_model(&state, model, dry_run).await
}

async fn replace_model(
    state: &AppState,
    model: Model,
    dry_run: bool,
) -> Result<Json<JsonValue>, ApiError> {
    if dry_run {
        model
            .validate()
            .map_err(|errors| ApiError::invalid(errors, |f| relabel(&model, &Scope::Whole, f)))?;
        let running = running(state).await?;
        let diff = ModelDiff::between(&running, &model);
        return Ok(Json(json!({ "applied": false, "changes": diff })));
    }
    let diff = change(state, move |current| {
        let diff = ModelDiff::between(current, &model);
        *current = model;
        Ok((diff, Scope::Whole))
    })
    .await?;
    Ok(Json(json!({ "applied": true, "changes": diff })))
}

// ---- devices ----

/// `GET /api/devices`: every device with its tag count; passwords are never shown.
pub(crate) async fn list_devices(
    State(state): State<AppState>,
) -> Result<Json<Vec<JsonValue>>, ApiError> {
    let model = running(&state).await?;
    Ok(Json(
        model
            .devices
            .iter()
            .map(|d| device_json(d, tag_count(&model, &d.name)))
            .collect(),
    ))
}

fn tag_count(model: &Model, device: &str) -> usize {
    model.tags.iter().filter(|t| t.device == device).count()
}

/// `GET /api/devices/{name}`.
pub(crate) async fn get_device(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<JsonValue>, ApiError> {
    let model = running(&state).await?;
    let d = &model.devices[find_device(&model, &name)?];
    Ok(Json(device_json(d, tag_count(&model, &d.name))))
}

/// `POST /api/devices`: adds a device (409 if the name is taken).
pub(crate) async fn create_device(
    State(state): State<AppState>,
    JsonBody(device): JsonBody<JsonValue>,
) -> Result<Response, ApiError> {
    let device = parse_device(device)?;
    let shown = change(&state, move |model| {
        if let Some(existing) = model
            .devices
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(&device.name))
        {
            return Err(ApiError::field(
                StatusCode::CONFLICT,
                "name",
                &device.name,
                format!(
                    "a device named {:?} exists already; names are unique ignoring case",
                    existing.name
                ),
            ));
        }
        model.devices.push(device);
        let index = model.devices.len() - 1;
        Ok((device_json(&model.devices[index], 0), Scope::Device(index)))
    })
    .await?;
    let location = format!(
        "/api/devices/{}",
        shown["name"].as_str().unwrap_or_default()
    );
    Ok(created(location, shown))
}

/// `PUT /api/devices/{name}`: replaces a device's settings. A new name in the body renames it
/// and moves its tags with it; an absent password keeps the stored one.
pub(crate) async fn update_device(
    State(state): State<AppState>,
    Path(name): Path<String>,
    JsonBody(device): JsonBody<JsonValue>,
) -> Result<Json<JsonValue>, ApiError> {
    let mut device = parse_device(device)?;
    let shown = change(&state, move |model| {
        let index = find_device(model, &name)?;
        let old_name = model.devices[index].name.clone();
        keep_password(&model.devices[index], &mut device);
        if device.name != old_name {
            for tag in model.tags.iter_mut().filter(|t| t.device == old_name) {
                tag.device = device.name.as_str().into();
            }
        }
        model.devices[index] = device;
        let shown = device_json(
            &model.devices[index],
            tag_count(model, &model.devices[index].name),
        );
        Ok((shown, Scope::Device(index)))
    })
    .await?;
    Ok(Json(shown))
}

#[derive(Debug, Deserialize)]
pub(crate) struct DeleteDevice {
    #[serde(default)]
    delete_tags: bool,
}

/// `DELETE /api/devices/{name}[?delete_tags=true]`: a device with tags is removed only when
/// the caller says its tags go too (409 otherwise, with the count).
pub(crate) async fn delete_device(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Query(DeleteDevice { delete_tags }): Query<DeleteDevice>,
) -> Result<Json<JsonValue>, ApiError> {
    change(&state, move |model| {
        let index = find_device(model, &name)?;
        let device = model.devices[index].name.clone();
        let tags = tag_count(model, &device);
        if tags > 0 && !delete_tags {
            return Err(ApiError::field(
                StatusCode::CONFLICT,
                "device",
                &device,
                format!(
                    "the device has {tags} tags; delete them first or repeat with \
                     ?delete_tags=true to delete the device with its tags"
                ),
            ));
        }
        model.tags.retain(|t| t.device != device);
        model.devices.remove(index);
        Ok((
            json!({ "deleted": device, "tags_deleted": tags }),
            Scope::Whole,
        ))
    })
    .await
    .map(Json)
}

// ---- tags ----

#[derive(Debug, Deserialize)]
pub(crate) struct TagFilter {
    device: Option<String>,
    /// `area`, `area/line` or `area/line/cell`: tags at or below it.
    location: Option<String>,
}

/// A tag as the API shows it: its settings, the names derived from them, its latest value.
fn tag_json(state: &AppState, model: &Model, index: usize) -> JsonValue {
    let tag = &model.tags[index];
    let names = uns_model::tag_names(model, tag);
    let mut json = serde_json::to_value(tag).unwrap_or(JsonValue::Null);
    let sample = u32::try_from(index)
        .ok()
        .and_then(|i| state.live.get(uns_model::TagId(i)));
    if let JsonValue::Object(map) = &mut json {
        map.insert("path".to_owned(), json!(names.metric_name));
        map.insert("uns_topic".to_owned(), json!(names.uns_topic));
        map.insert(
            "sparkplug".to_owned(),
            json!({ "device": names.device_id, "metric": names.metric_name }),
        );
        map.insert(
            "live".to_owned(),
            match sample {
                Some(s) => json!({
                    "value": s.value.as_ref().map(|v| v.to_json()),
                    "quality": s.quality.as_str(),
                    "timestamp": s.timestamp_ms,
                }),
                None => JsonValue::Null,
            },
        );
    }
    json
}

/// `GET /api/tags[?device=NAME][&location=PATH]`.
pub(crate) async fn list_tags(
    State(state): State<AppState>,
    Query(filter): Query<TagFilter>,
) -> Result<Json<Vec<JsonValue>>, ApiError> {
    let model = running(&state).await?;
    if let Some(device) = &filter.device {
        find_device(&model, device)?;
    }
    let below = |location: &str| match &filter.location {
        None => true,
        Some(prefix) => {
            location.eq_ignore_ascii_case(prefix)
                || location
                    .get(..prefix.len() + 1)
                    .is_some_and(|head| head.eq_ignore_ascii_case(&format!("{prefix}/")))
        }
    };
    Ok(Json(
        model
            .tags
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                filter
                    .device
                    .as_ref()
                    .is_none_or(|d| t.device.eq_ignore_ascii_case(d))
                    && below(&t.location)
            })
            .map(|(i, _)| tag_json(&state, &model, i))
            .collect(),
    ))
}

/// `GET /api/tags/{location/name}`.
pub(crate) async fn get_tag(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> Result<Json<JsonValue>, ApiError> {
    let model = running(&state).await?;
    let index = find_tag(&model, &path)?;
    Ok(Json(tag_json(&state, &model, index)))
}

/// `POST /api/tags`: adds one tag, or a list of tags all-or-nothing (errors name `[i].field`).
pub(crate) async fn create_tags(
    State(state): State<AppState>,
    JsonBody(body): JsonBody<JsonValue>,
) -> Result<Response, ApiError> {
    // Parsed here rather than through an untagged enum, whose error would not name the field.
    let (tags, many) = match &body {
        JsonValue::Array(_) => (crate::api_error::parse::<Vec<Tag>>(&body)?, true),
        _ => (vec![crate::api_error::parse::<Tag>(&body)?], false),
    };
    let paths: Vec<String> = tags
        .iter()
        .map(|t| format!("{}/{}", t.location, t.name))
        .collect();
    let count = tags.len();
    change(&state, move |model| {
        let first = model.tags.len();
        model.tags.extend(tags);
        let scope = if many {
            Scope::NewTags(first)
        } else {
            Scope::Tag(first)
        };
        Ok(((), scope))
    })
    .await?;
    let model = running(&state).await?;
    let shown: Vec<JsonValue> = paths
        .iter()
        .filter_map(|p| find_tag(&model, p).ok())
        .map(|i| tag_json(&state, &model, i))
        .collect();
    if many {
        Ok(created(
            "/api/tags".to_owned(),
            json!({ "created": count, "tags": shown }),
        ))
    } else {
        let location = format!("/api/tags/{}", paths[0]);
        Ok(created(
            location,
            shown.into_iter().next().unwrap_or(JsonValue::Null),
        ))
    }
}

/// `PUT /api/tags/{location/name}`: replaces a tag's settings; a new location or name in the
/// body moves it (its UNS topic and Sparkplug metric change with it).
pub(crate) async fn update_tag(
    State(state): State<AppState>,
    Path(path): Path<String>,
    JsonBody(tag): JsonBody<Tag>,
) -> Result<Json<JsonValue>, ApiError> {
    let new_path = format!("{}/{}", tag.location, tag.name);
    change(&state, move |model| {
        let index = find_tag(model, &path)?;
        model.tags[index] = tag;
        Ok(((), Scope::Tag(index)))
    })
    .await?;
    let model = running(&state).await?;
    let index = find_tag(&model, &new_path)?;
    Ok(Json(tag_json(&state, &model, index)))
}

/// `DELETE /api/tags/{location/name}`.
pub(crate) async fn delete_tag(
    State(state): State<AppState>,
    Path(path): Path<String>,
) -> Result<Json<JsonValue>, ApiError> {
    change(&state, move |model| {
        let index = find_tag(model, &path)?;
        let tag = model.tags.remove(index);
        Ok((
            json!({ "deleted": format!("{}/{}", tag.location, tag.name) }),
            Scope::Whole,
        ))
    })
    .await
    .map(Json)
}

// ---- tags as CSV ----

#[derive(Debug, Deserialize)]
pub(crate) struct CsvExport {
    device: Option<String>,
}

/// `GET /api/tags.csv[?device=NAME]`: the tags as a spreadsheet (columns of
/// [`uns_model::csv::COLUMNS`]).
pub(crate) async fn export_csv(
    State(state): State<AppState>,
    Query(CsvExport { device }): Query<CsvExport>,
) -> Result<Response, ApiError> {
    let model = running(&state).await?;
    if let Some(d) = &device {
        find_device(&model, d)?;
    }
    let tags = model.tags.iter().filter(|t| {
        device
            .as_ref()
            .is_none_or(|d| t.device.eq_ignore_ascii_case(d))
    });
    let name = device.as_deref().unwrap_or("tags");
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}.csv\""),
            ),
        ],
        uns_model::csv::to_csv(tags),
    )
        .into_response())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CsvMode {
    /// Rows add tags, or replace the tag of the same location/name.
    #[default]
    Merge,
    /// The file's rows become the model's whole tag list.
    Replace,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CsvImport {
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    mode: CsvMode,
}

/// `POST /api/tags.csv[?dry_run=true][&mode=merge|replace]`: imports tags from CSV. Every
/// problem in the file is reported at once as `row[N].column`: cells that do not read, and
/// the model's rules broken by the rows that do; with any problem nothing is imported. With
/// `dry_run`, says what would change.
pub(crate) async fn import_csv(
    State(state): State<AppState>,
    Query(CsvImport { dry_run, mode }): Query<CsvImport>,
    body: String,
) -> Result<Json<JsonValue>, ApiError> {
    let uns_model::csv::CsvRead { tags: rows, errors } = uns_model::csv::read_csv(&body);
    if !errors.is_empty() {
        return Err(csv_errors(&state, rows, errors, &mode).await);
    }
    let count = rows.len();
    let merge = move |model: &mut Model| merge_csv(model, rows, &mode);
    if dry_run {
        let running = running(&state).await?;
        let mut model = Model::clone(&running);
        let scope = merge(&mut model);
        model
            .validate()
            .map_err(|errors| ApiError::invalid(errors, |f| relabel(&model, &scope, f)))?;
        let diff = ModelDiff::between(&running, &model);
        return Ok(Json(
            json!({ "applied": false, "rows": count, "changes": diff }),
        ));
    }
    let diff = change(&state, move |model| {
        let before = model.clone();
        let scope = merge(model);
        Ok((ModelDiff::between(&before, model), scope))
    })
    .await?;
    Ok(Json(
        json!({ "applied": true, "rows": count, "changes": diff }),
    ))
}

/// Puts CSV rows into `model` (see [`CsvMode`]); the scope names each placed tag by its row.
fn merge_csv(model: &mut Model, rows: Vec<uns_model::csv::CsvTag>, mode: &CsvMode) -> Scope {
    let mut placed = std::collections::HashMap::new();
    if matches!(mode, CsvMode::Replace) {
        model.tags.clear();
    }
    for uns_model::csv::CsvTag { row, tag } in rows {
        let path = format!("{}/{}", tag.location, tag.name);
        // A file naming the same tag twice gets both rows into the model, where
        // validation reports the second as a duplicate of the first.
        let existing = find_tag(model, &path)
            .ok()
            .filter(|i| !placed.contains_key(i));
        let index = match existing {
            Some(i) => {
                model.tags[i] = tag;
                i
            }
            None => {
                model.tags.push(tag);
                model.tags.len() - 1
            }
        };
        placed.insert(index, row);
    }
    Scope::Rows(placed)
}

/// The 422 of a CSV file with unreadable cells: those, and what the model's rules say of the
/// rows that did read (checked against a copy of the running model, as a dry run), in row
/// order. Rules about the skipped rows come once their cells are fixed.
async fn csv_errors(
    state: &AppState,
    rows: Vec<uns_model::csv::CsvTag>,
    mut errors: Vec<uns_model::ModelError>,
    mode: &CsvMode,
) -> ApiError {
    // A model that cannot be loaded now leaves the cells' errors to say it alone.
    if !rows.is_empty()
        && let Ok(running) = running(state).await
    {
        let mut model = Model::clone(&running);
        let scope = merge_csv(&mut model, rows, mode);
        if let Err(broken) = model.validate() {
            errors.extend(broken.0.into_iter().map(|e| uns_model::ModelError {
                field: relabel(&model, &scope, &e.field),
                ..e
            }));
        }
    }
    // Stable: a row's own problems keep their column order; problems of no row go last.
    errors.sort_by_key(|e| csv_row(&e.field).unwrap_or(usize::MAX));
    ApiError::invalid(uns_model::ModelErrors(errors), str::to_owned)
}

/// `7` of `row[7].datatype`.
fn csv_row(field: &str) -> Option<usize> {
    field.strip_prefix("row[")?.split(']').next()?.parse().ok()
}

// ---- namespace, Sparkplug ids, scan classes ----

/// The ISA-95 levels this appliance publishes under.
#[derive(Debug, serde::Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NamespaceTree {
    enterprise: String,
    site: String,
    #[serde(default)]
    areas: Vec<Area>,
}

/// `GET /api/namespace`.
pub(crate) async fn get_namespace(
    State(state): State<AppState>,
) -> Result<Json<NamespaceTree>, ApiError> {
    let model = running(&state).await?;
    Ok(Json(NamespaceTree {
        enterprise: model.namespace.enterprise.clone(),
        site: model.namespace.site.clone(),
        areas: model.areas.clone(),
    }))
}

/// `PUT /api/namespace`: replaces the tree. Tags must still name a line or cell of it (use
/// `POST /api/namespace/rename` to move a subtree together with its tags).
pub(crate) async fn put_namespace(
    State(state): State<AppState>,
    JsonBody(tree): JsonBody<NamespaceTree>,
) -> Result<Json<NamespaceTree>, ApiError> {
    change(&state, move |model| {
        model.namespace.enterprise = tree.enterprise.clone();
        model.namespace.site = tree.site.clone();
        model.areas = tree.areas.clone();
        Ok((tree, Scope::Whole))
    })
    .await
    .map(Json)
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rename {
    /// `area`, `area/line` or `area/line/cell`.
    from: String,
    /// The same path with its last level renamed.
    to: String,
}

/// `POST /api/namespace/rename`: renames an area, line or cell, and moves every tag below it
/// (their UNS topics and Sparkplug metrics change; Sparkplug re-births the devices).
pub(crate) async fn rename_node(
    State(state): State<AppState>,
    JsonBody(rename): JsonBody<Rename>,
) -> Result<Json<JsonValue>, ApiError> {
    change(&state, move |model| {
        let from: Vec<&str> = rename.from.split('/').collect();
        let to: Vec<&str> = rename.to.split('/').collect();
        if from.len() != to.len() || from[..from.len() - 1] != to[..to.len() - 1] {
            return Err(ApiError::field(
                StatusCode::UNPROCESSABLE_ENTITY,
                "to",
                &rename.to,
                format!("must be {:?} with only its last level changed", rename.from),
            ));
        }
        let new_name = to[to.len() - 1].to_owned();
        let not_found = || ApiError::not_found("from", &rename.from, "area, line or cell");
        let area = model
            .areas
            .iter_mut()
            .find(|a| a.name == from[0])
            .ok_or_else(not_found)?;
        match from.len() {
            1 => area.name = new_name,
            2 | 3 => {
                let line = area
                    .lines
                    .iter_mut()
                    .find(|l| l.name == from[1])
                    .ok_or_else(not_found)?;
                if from.len() == 2 {
                    line.name = new_name;
                } else {
                    let cell = line
                        .cells
                        .iter_mut()
                        .find(|c| **c == from[2])
                        .ok_or_else(not_found)?;
                    *cell = new_name;
                }
            }
            _ => return Err(not_found()),
        }
        let mut moved = 0;
        for tag in &mut model.tags {
            let location = tag.location.as_str();
            let below = location == rename.from
                || location
                    .strip_prefix(rename.from.as_str())
                    .is_some_and(|rest| rest.starts_with('/'));
            if below {
                tag.location = format!("{}{}", rename.to, &location[rename.from.len()..]).into();
                moved += 1;
            }
        }
        Ok((
            json!({ "renamed": rename.from, "to": rename.to, "tags_moved": moved }),
            Scope::Whole,
        ))
    })
    .await
    .map(Json)
}

/// `GET /api/sparkplug`: the group, edge node and Primary Host id.
pub(crate) async fn get_sparkplug(
    State(state): State<AppState>,
) -> Result<Json<SparkplugIds>, ApiError> {
    Ok(Json(running(&state).await?.sparkplug.clone()))
}

/// `PUT /api/sparkplug`: a new group, edge node or Primary Host id ends the Sparkplug session
/// (NDEATH) and starts one under the new ids, gated on the new host.
pub(crate) async fn put_sparkplug(
    State(state): State<AppState>,
    JsonBody(ids): JsonBody<SparkplugIds>,
) -> Result<Json<SparkplugIds>, ApiError> {
    change(&state, move |model| {
        model.sparkplug = ids.clone();
        Ok((ids, Scope::Whole))
    })
    .await
    .map(Json)
}

/// `GET /api/scan-classes`.
pub(crate) async fn get_scan_classes(
    State(state): State<AppState>,
) -> Result<Json<Vec<ScanClass>>, ApiError> {
    Ok(Json(running(&state).await?.scan_classes.clone()))
}

/// `PUT /api/scan-classes`: replaces the list; a class still used by a tag cannot go.
pub(crate) async fn put_scan_classes(
    State(state): State<AppState>,
    JsonBody(classes): JsonBody<Vec<ScanClass>>,
) -> Result<Json<Vec<ScanClass>>, ApiError> {
    change(&state, move |model| {
        model.scan_classes = classes.clone();
        Ok((classes, Scope::Whole))
    })
    .await
    .map(Json)
}
