//! The tag pages: the form for a new tag of a device (`GET /devices/{name}/tags/new`), the
//! same form for a saved tag (`GET /tags/{location/name}/edit`), and the CSV import
//! (`GET /tags/import`). All for admins; as with the device pages, the forms are sent to the
//! REST API by `/static/devices.js`, which also runs "Test read" and the Modbus decode
//! preview against the device with what the form holds, before anything is saved.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;
use serde_json::Value as JsonValue;
use uns_model::{DataType, Tag};

use crate::device_pages::{
    LocationOption, device_url, driver_name, find_device, locations, model_or_page, page_error,
    render,
};
use crate::{AppState, CurrentUser};

/// A device a tag can be read from, for the form's device select.
struct DeviceOption {
    name: String,
    driver: &'static str,
}

/// The byte orders a Modbus tag can have: the model's name, and how a form shows it.
const BYTE_ORDERS: [(&str, &str); 4] = [
    (
        "ABCD",
        "ABCD · ABCDEFGH — big-endian, high word first (Modbus default)",
    ),
    ("CDAB", "CDAB · GHEFCDAB — low word first (word swap)"),
    ("BADC", "BADC · BADCFEHG — bytes swapped in each register"),
    ("DCBA", "DCBA · HGFEDCBA — little-endian"),
];

#[derive(askama::Template)]
#[template(path = "tag_form.html")]
struct TagFormPage {
    user: Option<CurrentUser>,
    /// `location/name` of the saved tag; `None` for a new one.
    saved_path: Option<String>,
    /// The device the tag belongs to (the form can move it to another).
    device: String,
    device_url: String,
    devices: Vec<DeviceOption>,
    locations: Vec<LocationOption>,
    /// The saved location when it is not a line or cell of the namespace (an invalid model):
    /// offered anyway so the form shows what is saved.
    stray_location: Option<String>,
    scan_classes: Vec<(String, u32)>,
    datatypes: Vec<&'static str>,
    byte_orders: [(&'static str, &'static str); 4],
    /// The tag's settings as the API writes them, by key.
    values: serde_json::Map<String, JsonValue>,
    writable: bool,
}

impl TagFormPage {
    /// A setting as the form shows it; empty when unset.
    fn value(&self, key: &str) -> String {
        match self.values.get(key) {
            None | Some(JsonValue::Null) => String::new(),
            Some(JsonValue::String(s)) => s.clone(),
            Some(other) => other.to_string(),
        }
    }

    /// The API call Save makes.
    fn api(&self) -> String {
        match &self.saved_path {
            None => "POST /api/tags".to_owned(),
            Some(path) => format!("PUT /api/tags/{path}"),
        }
    }

    /// The saved byte order under its 32-bit name (the select's value); empty when unset.
    fn byte_order(&self) -> String {
        let saved = self.value("byte_order");
        saved
            .parse::<uns_model::ByteOrder>()
            .map_or(saved, |o| o.name(2).to_owned())
    }

    /// A saved byte order that is none of the four, so the select can still show it.
    fn stray_byte_order(&self) -> Option<String> {
        let saved = self.value("byte_order");
        (!saved.is_empty() && saved.parse::<uns_model::ByteOrder>().is_err()).then_some(saved)
    }

    /// Whether any advanced setting is set, so the section opens to show it.
    fn has_advanced(&self) -> bool {
        [
            "scan_class",
            "raw_type",
            "gain",
            "offset",
            "raw_low",
            "raw_high",
            "eng_low",
            "eng_high",
            "deadband",
            "deadband_percent",
        ]
        .iter()
        .any(|k| !self.value(k).is_empty())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct NewTagQuery {
    /// Where the new tag goes, when the page that links here knows.
    location: String,
}

/// `GET /devices/{name}/tags/new` (admin).
pub(crate) async fn new_tag(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(name): Path<String>,
    Query(query): Query<NewTagQuery>,
) -> Response {
    let model = match model_or_page(&state, &user).await {
        Ok(model) => model,
        Err(page) => return page,
    };
    let Some(device) = find_device(&model, &name) else {
        return page_error(
            StatusCode::NOT_FOUND,
            &user,
            &format!("There is no device named {name:?} to add a tag to."),
        );
    };
    let mut values = serde_json::Map::new();
    values.insert("device".to_owned(), JsonValue::from(device.name.clone()));
    if !query.location.is_empty() {
        values.insert("location".to_owned(), JsonValue::from(query.location));
    }
    let page = form_page(&model, &user, None, &device.name, values, false);
    render(&page, &user)
}

/// `GET /tags/{location/name}/edit` (admin): the wildcard is the tag's path and `/edit`.
pub(crate) async fn edit_tag(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(path): Path<String>,
) -> Response {
    let Some(tag_path) = path.strip_suffix("/edit") else {
        return page_error(
            StatusCode::NOT_FOUND,
            &user,
            &format!(
                "There is no page /tags/{path}. A tag's form is at /tags/LOCATION/NAME/edit; \
                 its device's page lists it."
            ),
        );
    };
    let model = match model_or_page(&state, &user).await {
        Ok(model) => model,
        Err(page) => return page,
    };
    let Some(tag) = find_tag(&model.tags, tag_path) else {
        return page_error(
            StatusCode::NOT_FOUND,
            &user,
            &format!("There is no tag {tag_path:?}."),
        );
    };
    let values = match serde_json::to_value(tag) {
        Ok(JsonValue::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let saved = format!("{}/{}", tag.location, tag.name);
    let page = form_page(
        &model,
        &user,
        Some(saved),
        &tag.device,
        values,
        tag.writable,
    );
    render(&page, &user)
}

/// The tag at `path` (`location/name`), exactly or else ignoring case, as the API finds it.
fn find_tag<'a>(tags: &'a [Tag], path: &str) -> Option<&'a Tag> {
    let (location, name) = path.rsplit_once('/')?;
    tags.iter()
        .find(|t| t.location == location && t.name == name)
        .or_else(|| {
            tags.iter().find(|t| {
                t.location.eq_ignore_ascii_case(location) && t.name.eq_ignore_ascii_case(name)
            })
        })
}

fn form_page(
    model: &uns_model::Model,
    user: &CurrentUser,
    saved_path: Option<String>,
    device: &str,
    values: serde_json::Map<String, JsonValue>,
    writable: bool,
) -> TagFormPage {
    let locations = locations(model);
    let location = values
        .get("location")
        .and_then(JsonValue::as_str)
        .unwrap_or_default();
    let stray_location = (!location.is_empty() && !locations.iter().any(|l| l.path == location))
        .then(|| location.to_owned());
    TagFormPage {
        user: Some(user.clone()),
        saved_path,
        device: device.to_owned(),
        device_url: device_url(device),
        devices: model
            .devices
            .iter()
            .map(|d| DeviceOption {
                name: d.name.clone(),
                driver: driver_name(&d.driver),
            })
            .collect(),
        locations,
        stray_location,
        scan_classes: model
            .scan_classes
            .iter()
            .map(|s| (s.name.clone(), s.period_ms))
            .collect(),
        datatypes: DataType::ALL.iter().map(|d| d.as_str()).collect(),
        byte_orders: BYTE_ORDERS,
        values,
        writable,
    }
}

// ---- CSV import ----

#[derive(askama::Template)]
#[template(path = "tags_import.html")]
struct ImportPage {
    user: Option<CurrentUser>,
    columns: [&'static str; 20],
    devices: Vec<String>,
}

/// `GET /tags/import` (admin).
pub(crate) async fn import(State(state): State<AppState>, user: CurrentUser) -> Response {
    let model = match model_or_page(&state, &user).await {
        Ok(model) => model,
        Err(page) => return page,
    };
    let page = ImportPage {
        user: Some(user.clone()),
        columns: uns_model::csv::COLUMNS,
        devices: model.devices.iter().map(|d| d.name.clone()).collect(),
    };
    render(&page, &user)
}
