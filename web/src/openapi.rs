//! The OpenAPI 3.0 document of the REST API, served at `/api/openapi.json`.
//!
//! The schemas of bodies (model, device, tag, …) are derived from the very types the API
//! deserializes (schemars, honouring their serde attributes and doc comments), so the
//! document cannot drift from what the API accepts. The paths are listed here by hand, each
//! with the role it needs; a test calls every documented operation to prove it exists.

use std::sync::LazyLock;

use axum::Json;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value as JsonValue, json};
use uns_model::{Device, Model, ScanClass, SparkplugIds, Tag};

use crate::device_api::{PreviewBody, TestReadBody, ValueBody};
use crate::edit::{NamespaceTree, Rename};
use crate::northbound::NorthboundView;

/// `GET /api/openapi.json`.
pub(crate) async fn document() -> Json<JsonValue> {
    Json(DOCUMENT.clone())
}

static DOCUMENT: LazyLock<JsonValue> = LazyLock::new(build);

/// One operation: summary, role, request body schema (if any), success status and body.
struct Op {
    method: &'static str,
    summary: &'static str,
    role: &'static str,
    request: Option<JsonValue>,
    success: (&'static str, JsonValue),
    /// A second success, with what it means (`201` created where `200` replaced).
    also: Option<(&'static str, &'static str, JsonValue)>,
    params: Vec<JsonValue>,
    /// Error statuses beyond 401, 403 and 422, with what each means.
    errors: Vec<(&'static str, &'static str)>,
}

fn op(method: &'static str, summary: &'static str, role: &'static str) -> Op {
    Op {
        method,
        summary,
        role,
        request: None,
        success: ("200", json!({})),
        also: None,
        params: Vec::new(),
        errors: Vec::new(),
    }
}

impl Op {
    fn body(mut self, schema: JsonValue) -> Op {
        self.request = Some(schema);
        self
    }

    fn returns(mut self, status: &'static str, schema: JsonValue) -> Op {
        self.success = (status, schema);
        self
    }

    fn also_returns(mut self, status: &'static str, means: &'static str, schema: JsonValue) -> Op {
        self.also = Some((status, means, schema));
        self
    }

    fn param(mut self, name: &str, place: &str, description: &str) -> Op {
        self.params.push(json!({
            "name": name,
            "in": place,
            "required": place == "path",
            "description": description,
            "schema": if name == "dry_run" || name == "delete_tags" {
                json!({"type": "boolean"})
            } else if name == "limit" {
                json!({"type": "integer", "minimum": 1})
            } else {
                json!({"type": "string"})
            },
        }));
        self
    }

    fn fails(mut self, status: &'static str, why: &'static str) -> Op {
        self.errors.push((status, why));
        self
    }

    fn json(self) -> JsonValue {
        let mut responses = Map::new();
        responses.insert(
            self.success.0.to_owned(),
            json!({
                "description": "success",
                "content": {"application/json": {"schema": self.success.1}},
            }),
        );
        if let Some((status, means, schema)) = self.also {
            responses.insert(
                status.to_owned(),
                json!({
                    "description": means,
                    "content": {"application/json": {"schema": schema}},
                }),
            );
        }
        for (status, why) in [
            ("401", "not logged in"),
            ("403", "the user's role is not enough"),
        ] {
            responses.insert(status.to_owned(), error_response(why));
        }
        if self.request.is_some() || !self.params.is_empty() {
            responses.insert(
                "422".to_owned(),
                error_response("invalid input: each error names the field, the value and the rule"),
            );
        }
        for (status, why) in self.errors {
            responses.insert(status.to_owned(), error_response(why));
        }
        let mut op = json!({
            "summary": self.summary,
            "description": format!("Role: {} or higher.", self.role),
            "x-required-role": self.role,
            "parameters": self.params,
            "responses": responses,
        });
        if let Some(schema) = self.request {
            op["requestBody"] = json!({
                "required": true,
                "content": {"application/json": {"schema": schema}},
            });
        }
        op
    }
}

fn error_response(description: &str) -> JsonValue {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Errors"}}},
    })
}

fn build() -> JsonValue {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut schema =
        |f: fn(&mut schemars::SchemaGenerator) -> schemars::Schema| f(&mut generator).to_value();
    let model = schema(|g| g.subschema_for::<Model>());
    let device = schema(|g| g.subschema_for::<Device>());
    let tag = schema(|g| g.subschema_for::<Tag>());
    let tags = schema(|g| g.subschema_for::<Vec<Tag>>());
    let namespace = schema(|g| g.subschema_for::<NamespaceTree>());
    let rename = schema(|g| g.subschema_for::<Rename>());
    let sparkplug = schema(|g| g.subschema_for::<SparkplugIds>());
    let scan_classes = schema(|g| g.subschema_for::<Vec<ScanClass>>());
    let preview = schema(|g| g.subschema_for::<PreviewBody>());
    let test_read = schema(|g| g.subschema_for::<TestReadBody>());
    let write_value = schema(|g| g.subschema_for::<ValueBody>());
    let mqtt_user = schema(|g| g.subschema_for::<crate::mqtt_users::MqttUser>());
    let mqtt_users = schema(|g| g.subschema_for::<Vec<crate::mqtt_users::MqttUser>>());
    let new_mqtt_user = schema(|g| g.subschema_for::<crate::mqtt_users::NewMqttUser>());
    let mqtt_user_change = schema(|g| g.subschema_for::<crate::mqtt_users::MqttUserChange>());
    let northbound = schema(|g| g.subschema_for::<uns_model::Northbound>());
    let northbound_view = schema(|g| g.subschema_for::<NorthboundView>());
    let northbound_list = schema(|g| g.subschema_for::<Vec<NorthboundView>>());
    let mut schemas = generator.take_definitions(true);
    schemas.insert(
        "Errors".to_owned(),
        json!({
            "type": "object",
            "required": ["errors"],
            "properties": {"errors": {"type": "array", "items": {
                "type": "object",
                "required": ["reason"],
                "properties": {
                    "field": {"type": "string", "description": "the input at fault: a body field (`datatype`, `[3].name`), a parameter or a header"},
                    "value": {"type": "string", "description": "the value given"},
                    "reason": {"type": "string", "description": "what is wrong and what is allowed"},
                },
            }}},
        }),
    );
    let object = json!({"type": "object"});
    let list = json!({"type": "array", "items": {"type": "object"}});
    let dry_run = "only check and report what would change";
    // What a probe answers: what the device said, failures included (see device_api.rs).
    let probe = |extra: JsonValue| {
        let mut properties = json!({
            "device": {"type": "string"},
            "ok": {"type": "boolean", "description": "the device answered; when false, `error` says what happened"},
            "error": {"type": "string", "description": "the device's or the transport's own words"},
        });
        if let (Some(p), JsonValue::Object(more)) = (properties.as_object_mut(), extra) {
            p.extend(more);
        }
        json!({"type": "object", "required": ["device", "ok"], "properties": properties})
    };
    let readings = json!({"type": "array", "items": {"type": "object", "properties": {
        "tag": {"type": "string", "description": "location/name"},
        "value": {"description": "the value read, as in /api/values"},
        "quality": {"type": "string", "enum": ["good", "uncertain", "bad", "stale"]},
        "timestamp": {"type": "integer"},
        "error": {"type": "string", "description": "why there is no value (a Modbus exception, an OPC UA status code)"},
    }}});
    let busy = "all probe slots are taken (4 run at once)";
    let hung = "the device call gave no result within its limit";

    let paths: Vec<(&str, Vec<Op>)> = vec![
        (
            "/api/values",
            vec![op("get", "Every tag with its names and latest value", "viewer").returns("200", list.clone())],
        ),
        (
            "/api/live",
            vec![op("get", "Server-Sent Events: every value, then changes (at most 4 events/s); `event: model` when the tags were renumbered, `event: session` before the stream ends because its login ended", "viewer")
                .param("tags", "query", "only these tags, by the `tag` of /api/values: numbers and ranges, e.g. 0-199,350; every tag without it")
                .returns("200", json!({"type": "string", "description": "text/event-stream"}))
                .fails("400", "tags is not a list of tag numbers and ranges")],
        ),
        (
            "/api/status",
            vec![op("get", "Broker, Sparkplug sessions and devices as they are now", "viewer")
                .returns("200", object.clone())],
        ),
        (
            "/api/sparkplug/births",
            vec![op("get", "The NBIRTHs and DBIRTHs the embedded broker holds (Sparkplug Aware certificates), summarised", "viewer")
                .returns("200", list.clone())],
        ),
        (
            "/api/sparkplug/births/{topic}",
            vec![op("get", "One birth decoded: every metric with name, alias, datatype, value, timestamp and properties", "viewer")
                .param("topic", "path", "the birth topic, e.g. spBv1.0/plant-a/DBIRTH/sparkedge/demo-plc")
                .returns("200", object.clone())],
        ),
        (
            "/api/mqtt/users",
            vec![
                op("get", "The embedded broker's MQTT users and what each may do (never a password)", "admin")
                    .returns("200", mqtt_users),
                op("post", "Add an MQTT user: `subscribe` (read only) or `publish` (publish and subscribe); the broker takes it at once", "admin")
                    .body(new_mqtt_user)
                    .returns("201", mqtt_user.clone())
                    .fails("409", "an MQTT user of this name exists"),
            ],
        ),
        (
            "/api/mqtt/users/{name}",
            vec![
                op("put", "Change an MQTT user's password or access; clients logged in under the old ones are disconnected", "admin")
                    .param("name", "path", "MQTT user name")
                    .body(mqtt_user_change)
                    .returns("200", mqtt_user)
                    .fails("404", "no MQTT user of that name"),
                op("delete", "Remove an MQTT user; its connected clients are disconnected", "admin")
                    .param("name", "path", "MQTT user name")
                    .returns("204", json!({}))
                    .fails("404", "no MQTT user of that name"),
            ],
        ),
        (
            "/api/northbound",
            vec![op("get", "The model's northbound connections: plant MQTT brokers, each with its own Sparkplug session carrying the same births as the embedded broker's (never a password: `password_set` says whether one is stored). A configuration file that lists its own [[northbound]] runs those instead (see /api/settings/runtime)", "admin")
                .returns("200", northbound_list)],
        ),
        (
            "/api/northbound/{name}",
            vec![
                op("get", "One northbound connection (never its password)", "admin")
                    .param("name", "path", "connection name")
                    .returns("200", northbound_view.clone())
                    .fails("404", "no northbound connection of that name (field `name`)"),
                op("put", "Create or replace a northbound connection; its session ends (NDEATH) and starts again with the new settings, a new one births on its servers.                     `name` may be left out, else it must be the URL's. `password`: a string sets it; null means none; left out keeps the stored one while `username` stays the same                     (with another username, give its password or null; without a username there is none). `password_set` is read-only and ignored", "admin")
                    .param("name", "path", "connection name")
                    .param("If-None-Match", "header", "`*`: only create; 412 when a connection of that name exists")
                    .body(northbound)
                    .returns("200", northbound_view.clone())
                    .also_returns("201", "created", northbound_view)
                    .fails("409", "a connection whose name differs only in case exists (field `name`)")
                    .fails("412", "If-None-Match: * and a connection of that name exists (field `name`)"),
                op("delete", "Remove a northbound connection; its session ends (NDEATH)", "admin")
                    .param("name", "path", "connection name")
                    .returns("200", json!({"type": "object", "properties": {"deleted": {"type": "string"}}}))
                    .fails("404", "no northbound connection of that name (field `name`)"),
            ],
        ),
        (
            "/api/settings/runtime",
            vec![op("get", "The process configuration it runs with (listeners, Primary Host id, northbound brokers; no passwords), from its configuration file", "admin")
                .returns("200", object.clone())],
        ),
        (
            "/api/model",
            vec![
                op("get", "The whole model, secrets included", "admin").returns("200", model.clone()),
                op("put", "Replace the whole model", "admin")
                    .body(model)
                    .param("dry_run", "query", dry_run)
                    .returns("200", object.clone()),
            ],
        ),
        (
            "/api/model.toml",
            vec![
                op("get", "The model as the TOML of `sparkedge export`", "admin")
                    .returns("200", json!({"type": "string"})),
                op("put", "Replace the model with a TOML file's (as `sparkedge import`)", "admin")
                    .body(json!({"type": "string"}))
                    .param("dry_run", "query", dry_run)
                    .returns("200", object.clone()),
            ],
        ),
        (
            "/api/devices",
            vec![
                op("get", "Every device with its tag count (passwords are never shown)", "viewer")
                    .returns("200", list.clone()),
                op("post", "Add a device", "admin").body(device.clone()).returns("201", object.clone()),
            ],
        ),
        (
            "/api/devices/{name}",
            vec![
                op("get", "One device", "viewer").param("name", "path", "device name").returns("200", object.clone()),
                op("put", "Replace a device's settings; a new name renames it with its tags; no password keeps the stored one", "admin")
                    .param("name", "path", "device name")
                    .body(device.clone())
                    .returns("200", object.clone()),
                op("delete", "Delete a device (with its tags only when delete_tags=true)", "admin")
                    .param("name", "path", "device name")
                    .param("delete_tags", "query", "also delete the device's tags")
                    .returns("200", object.clone()),
            ],
        ),
        (
            "/api/devices/test",
            vec![op("post", "Test the connection to a device described in the body (not saved); a saved device's password is used when the body leaves it out", "admin")
                .body(device.clone())
                .returns("200", probe(json!({"message": {"type": "string"}})))
                .fails("503", busy)
                .fails("504", hung)],
        ),
        (
            "/api/devices/test-read",
            vec![op("post", "Read tags once from a device, neither saved", "admin")
                .body(test_read)
                .returns("200", probe(json!({"tags": readings.clone()})))
                .fails("503", busy)
                .fails("504", hung)],
        ),
        (
            "/api/devices/{name}/test",
            vec![op("post", "Test the connection to a saved device", "admin")
                .param("name", "path", "device name")
                .returns("200", probe(json!({"message": {"type": "string"}})))
                .fails("404", "no device of that name")
                .fails("503", busy)
                .fails("504", hung)],
        ),
        (
            "/api/devices/{name}/read",
            vec![op("post", "Read tags (not saved; `device` may be left out) once from a saved device", "admin")
                .param("name", "path", "device name")
                .body(json!({"oneOf": [tag.clone(), {"type": "array", "items": tag.clone()}]}))
                .returns("200", probe(json!({"tags": readings})))
                .fails("404", "no device of that name")
                .fails("503", busy)
                .fails("504", hung)],
        ),
        (
            "/api/devices/{name}/modbus-preview",
            vec![op("post", "Read raw Modbus registers and decode the value at their start under every byte order (422 naming `device` for a device that is not Modbus)", "admin")
                .param("name", "path", "device name")
                .body(preview)
                .returns("200", probe(json!({
                    "address": {"type": "string"},
                    "count": {"type": "integer"},
                    "registers": {"type": "array", "items": {"type": "object", "properties": {
                        "address": {"type": "string"}, "hex": {"type": "string"}, "value": {"type": "integer"}}}},
                    "bits": {"type": "array", "items": {"type": "object", "properties": {
                        "address": {"type": "string"}, "value": {"type": "boolean"}}}},
                    "datatype": {"type": "string"},
                    "raw_type": {"type": "string"},
                    "orders": {"type": "array", "items": {"type": "object", "properties": {
                        "byte_order": {"type": "string", "description": "as a tag's byte_order takes it"},
                        "raw": {"description": "the register type's value"},
                        "value": {"description": "the tag's value (scaled)"},
                        "error": {"type": "string"},
                        "selected": {"type": "boolean", "description": "the byte_order sent"}}}},
                })))
                .fails("404", "no device of that name")
                .fails("503", busy)
                .fails("504", hung)],
        ),
        (
            "/api/devices/{name}/browse",
            vec![op("get", "One level of an OPC UA server's address space (422 naming `device` for a device that is not OPC UA)", "admin")
                .param("name", "path", "device name")
                .param("node", "query", "the node whose children to list, e.g. nsu=urn:plc;s=Line1 (default: the Objects folder, i=85)")
                .param("limit", "query", "children listed at most, 1 to 5000 (default 1000); `truncated` says when there were more")
                .returns("200", probe(json!({
                    "node": {"type": "string"},
                    "truncated": {"type": "boolean"},
                    "children": {"type": "array", "items": {"type": "object", "properties": {
                        "address": {"type": "string", "description": "as a tag's address takes it"},
                        "name": {"type": "string"},
                        "browse_name": {"type": "string"},
                        "node_class": {"type": "string", "enum": ["folder", "object", "variable"]},
                        "description": {"type": "string"},
                        "has_children": {"type": "boolean"},
                        "opcua_type": {"type": "string"},
                        "datatype": {"type": "string", "description": "the tag data type the variable reads as; null when none fits"},
                        "value_rank": {"type": "integer"},
                        "readable": {"type": "boolean"},
                        "writable": {"type": "boolean"}}}},
                })))
                .fails("404", "no device of that name")
                .fails("503", busy)
                .fails("504", hung)],
        ),
        (
            "/api/tags",
            vec![
                op("get", "Tags with names, UNS topic, Sparkplug metric and live value", "viewer")
                    .param("device", "query", "only this device's tags")
                    .param("location", "query", "only tags at or below this area, line or cell")
                    .returns("200", list.clone()),
                op("post", "Add a tag, or a list of tags all-or-nothing", "admin")
                    .body(json!({"oneOf": [tag.clone(), tags]}))
                    .returns("201", object.clone()),
            ],
        ),
        (
            "/api/tags.csv",
            vec![
                op("get", "The tags as CSV, one row per tag, columns as in the TOML file", "viewer")
                    .param("device", "query", "only this device's tags")
                    .returns("200", json!({"type": "string", "description": "text/csv"})),
                op("post", "Import tags from CSV (merge: add or replace by location/name; replace: the file becomes the tag list); errors name row[N].column", "admin")
                    .body(json!({"type": "string", "description": "text/csv, `,` or `;` separated, header row first"}))
                    .param("dry_run", "query", dry_run)
                    .param("mode", "query", "merge (default) or replace")
                    .returns("200", object.clone()),
            ],
        ),
        (
            "/api/tags/{path}",
            vec![
                op("get", "One tag by its location/name", "viewer")
                    .param("path", "path", "location/name, e.g. packaging/line3/filler/temperature")
                    .returns("200", object.clone()),
                op("put", "Replace a tag's settings; a new location or name moves it", "admin")
                    .param("path", "path", "location/name")
                    .body(tag)
                    .returns("200", object.clone()),
                op("delete", "Delete a tag", "admin")
                    .param("path", "path", "location/name")
                    .returns("200", object.clone()),
            ],
        ),
        (
            "/api/tags/{path}/value",
            vec![op("post", "Write a value to a writable tag; answers once the device confirmed it (the value read back arrives as a normal sample)", "operator")
                .param("path", "path", "location/name")
                .body(write_value)
                .returns("200", json!({"type": "object", "properties": {
                    "tag": {"type": "string"}, "value": {}, "written": {"type": "boolean"}}}))
                .fails("404", "no tag of that name")
                .fails("409", "the tag is not writable (field `writable`) or its device is disabled (field `device`)")
                .fails("502", "the device refused the write or could not be reached: the reason is the device's")
                .fails("504", "the device did not confirm the write in time")],
        ),
        (
            "/api/namespace",
            vec![
                op("get", "Enterprise, site and the area/line/cell tree", "viewer").returns("200", namespace.clone()),
                op("put", "Replace the tree (tags must still name one of its lines or cells)", "admin")
                    .body(namespace.clone())
                    .returns("200", namespace),
            ],
        ),
        (
            "/api/namespace/rename",
            vec![op("post", "Rename an area, line or cell and move its tags", "admin")
                .body(rename)
                .returns("200", object.clone())],
        ),
        (
            "/api/sparkplug",
            vec![
                op("get", "Sparkplug group id, edge node id and Primary Host id", "viewer").returns("200", sparkplug.clone()),
                op("put", "Change them (ends the Sparkplug session and starts one under the new ids or Primary Host)", "admin")
                    .body(sparkplug.clone())
                    .returns("200", sparkplug),
            ],
        ),
        (
            "/api/scan-classes",
            vec![
                op("get", "Named poll periods", "viewer").returns("200", scan_classes.clone()),
                op("put", "Replace the list (a class a tag uses cannot go)", "admin")
                    .body(scan_classes.clone())
                    .returns("200", scan_classes),
            ],
        ),
    ];

    let mut paths_json = Map::new();
    for (path, ops) in paths {
        let mut item = Map::new();
        for op in ops {
            item.insert(op.method.to_owned(), op.json());
        }
        paths_json.insert(path.to_owned(), JsonValue::Object(item));
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "sparkedge",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Configure devices, tags and the namespace of a sparkedge appliance and read live values. \
                Log in at /login: the session cookie authenticates API calls too, and requests that change \
                something must send the session's CSRF token in the X-CSRF-Token header. Every error is \
                {\"errors\": [{\"field\", \"value\", \"reason\"}]}. Every change is validated as a whole model \
                and applied without restart, or not at all.",
        },
        "paths": paths_json,
        "components": {"schemas": schemas},
    })
}
