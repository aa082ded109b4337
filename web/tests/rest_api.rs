//! The REST API for changing the model, through the real router: every endpoint, its
//! validation and the shape of its errors. (Roles and sessions are tested with the login.)

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value as JsonValue, json};
use tower::ServiceExt;
use uns_model::{DriverConfig, Model, file::demo_model};
use web::{AppState, Auth, MemoryModel, ModelSource, Role, UserStore};

struct Api {
    state: AppState,
    model: Arc<MemoryModel>,
    /// An admin's session cookie and CSRF token, sent with every request.
    cookie: String,
    csrf: String,
}

impl Api {
    fn new() -> Api {
        let model = Arc::new(MemoryModel::new(demo_model()));
        let users = UserStore::open_in_memory().unwrap();
        users.add("root", Role::Admin, "root password", 0).unwrap();
        let session = users.start_session("root", now_ms()).unwrap();
        let state = AppState {
            model: model.clone(),
            ..AppState::in_memory(demo_model(), Auth::new(users).unwrap())
        };
        Api {
            state,
            model,
            cookie: format!("sparkedge_session={}", session.token),
            csrf: session.csrf,
        }
    }

    /// `request` as the logged-in admin.
    async fn call(&self, mut request: Request<Body>) -> axum::response::Response {
        let headers = request.headers_mut();
        headers.insert(header::COOKIE, self.cookie.parse().unwrap());
        headers.insert("x-csrf-token", self.csrf.parse().unwrap());
        web::router(self.state.clone())
            .oneshot(request)
            .await
            .unwrap()
    }

    fn model(&self) -> Arc<Model> {
        self.model.load().unwrap()
    }

    async fn send(
        &self,
        method: Method,
        uri: &str,
        body: Option<JsonValue>,
    ) -> (StatusCode, JsonValue) {
        let request = Request::builder().method(method).uri(uri);
        let request = match body {
            Some(b) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => request.body(Body::empty()),
        }
        .unwrap();
        self.raw(request).await
    }

    async fn raw(&self, request: Request<Body>) -> (StatusCode, JsonValue) {
        let response = self.call(request).await;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| JsonValue::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, json)
    }

    async fn get(&self, uri: &str) -> (StatusCode, JsonValue) {
        self.send(Method::GET, uri, None).await
    }
}

fn now_ms() -> u64 {
    web::auth::Clock::system().now_ms()
}

/// The one error of a response, as (field, value, reason).
fn only_error(body: &JsonValue) -> (String, String, String) {
    let errors = body["errors"].as_array().expect("an errors list");
    assert_eq!(errors.len(), 1, "{body}");
    let text = |k: &str| errors[0][k].as_str().unwrap_or_default().to_owned();
    (text("field"), text("value"), text("reason"))
}

fn modbus_device(name: &str) -> JsonValue {
    json!({"name": name, "driver": "modbus-tcp", "host": "127.0.0.1", "port": 1502})
}

fn modbus_tag(name: &str, device: &str, address: &str) -> JsonValue {
    json!({"device": device, "location": "packaging/line3", "name": name,
           "datatype": "int16", "address": address})
}

#[tokio::test]
async fn devices_are_created_read_renamed_and_deleted() {
    let api = Api::new();
    let (status, body) = api
        .send(
            Method::POST,
            "/api/devices",
            Some(modbus_device("press-plc")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "press-plc");
    assert_eq!(body["tags"], 0);
    assert!(api.model().devices.iter().any(|d| d.name == "press-plc"));

    let (status, body) = api.get("/api/devices/press-plc").await;
    assert_eq!((status, &body["port"]), (StatusCode::OK, &json!(1502)));
    let (_, list) = api.get("/api/devices").await;
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["demo-plc", "press-plc"]);
    assert_eq!(list[0]["tags"], json!(demo_model().tags.len()));

    // Renaming the demo device moves its tags with it.
    let mut renamed = serde_json::to_value(&demo_model().devices[0]).unwrap();
    renamed["name"] = json!("filler-plc");
    let (status, body) = api
        .send(Method::PUT, "/api/devices/demo-plc", Some(renamed))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let model = api.model();
    assert!(model.tags.iter().all(|t| t.device == "filler-plc"));

    // A device with tags goes only with its tags, when asked.
    let (status, body) = api
        .send(Method::DELETE, "/api/devices/filler-plc", None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (field, _, reason) = only_error(&body);
    assert_eq!(field, "device");
    assert!(reason.contains("delete_tags=true"), "{reason}");
    assert_eq!(api.model().devices.len(), 2, "nothing was deleted");
    let (status, body) = api
        .send(
            Method::DELETE,
            "/api/devices/filler-plc?delete_tags=true",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tags_deleted"], json!(demo_model().tags.len()));
    let model = api.model();
    assert_eq!((model.devices.len(), model.tags.len()), (1, 0));

    let (status, body) = api.get("/api/devices/filler-plc").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(only_error(&body).0, "device");
}

#[tokio::test]
async fn bad_devices_are_refused_naming_the_field_and_nothing_changes() {
    let api = Api::new();
    let before = api.model();

    // A rule of the model, named relative to the device.
    let mut slow = modbus_device("press-plc");
    slow["period_ms"] = json!(5);
    let (status, body) = api.send(Method::POST, "/api/devices", Some(slow)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (field, value, reason) = only_error(&body);
    assert_eq!((field.as_str(), value.as_str()), ("period_ms", "5"));
    assert!(reason.contains("between 10 and"), "{reason}");

    // A type error in the body.
    let mut bad_port = modbus_device("press-plc");
    bad_port["port"] = json!("five-o-two");
    let (status, body) = api.send(Method::POST, "/api/devices", Some(bad_port)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (field, value, reason) = only_error(&body);
    assert_eq!((field.as_str(), value.as_str()), ("port", "five-o-two"));
    assert_eq!(reason, "must be a whole number from 0 to 65535");
    let mut misspelt = modbus_device("press-plc");
    misspelt["prot"] = json!(502);
    let (status, body) = api.send(Method::POST, "/api/devices", Some(misspelt)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (field, value, reason) = only_error(&body);
    assert_eq!((field.as_str(), value.as_str()), ("prot", "502"));
    assert!(
        reason.starts_with("unknown field prot; the fields here are: ") && reason.contains("port"),
        "{reason}"
    );
    let mut no_host = modbus_device("press-plc");
    no_host.as_object_mut().unwrap().remove("host");
    let (_, body) = api.send(Method::POST, "/api/devices", Some(no_host)).await;
    assert_eq!(only_error(&body).0, "host");

    // A taken name, ignoring case.
    let (status, body) = api
        .send(
            Method::POST,
            "/api/devices",
            Some(modbus_device("DEMO-plc")),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(only_error(&body).0, "name");

    // Not JSON, and JSON sent as something else.
    let request = Request::post("/api/devices")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{\"name\": "))
        .unwrap();
    let (status, body) = api.raw(request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(only_error(&body).2.contains("not JSON"), "{body}");
    let request = Request::post("/api/devices")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(modbus_device("x").to_string()))
        .unwrap();
    let (status, body) = api.raw(request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(only_error(&body).0, "Content-Type");

    assert_eq!(api.model(), before, "no refused request changed the model");
}

#[tokio::test]
async fn an_opc_ua_password_is_write_only_and_kept_when_omitted() {
    let api = Api::new();
    let device = json!({"name": "ua", "driver": "opc-ua", "endpoint": "opc.tcp://127.0.0.1:4840",
        "security_policy": "basic256sha256", "identity": "username",
        "username": "operator", "password": "s3cret-pass"});
    let (status, body) = api.send(Method::POST, "/api/devices", Some(device)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body.get("password").is_none(), "password shown: {body}");
    let (_, read) = api.get("/api/devices/ua").await;
    assert!(read.get("password").is_none(), "password shown: {read}");

    // Writing back what was read (no password) keeps the password.
    let mut edited = read.clone();
    edited.as_object_mut().unwrap().remove("tags");
    edited["period_ms"] = json!(500);
    let (status, body) = api.send(Method::PUT, "/api/devices/ua", Some(edited)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let model = api.model();
    let ua = model.devices.iter().find(|d| d.name == "ua").unwrap();
    match &ua.driver {
        DriverConfig::OpcUa {
            password,
            period_ms,
            ..
        } => assert_eq!(
            (password.as_deref(), *period_ms),
            (Some("s3cret-pass"), 500)
        ),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn tags_are_created_one_or_many_read_moved_and_deleted() {
    let api = Api::new();
    api.send(
        Method::POST,
        "/api/devices",
        Some(modbus_device("press-plc")),
    )
    .await;

    let (status, body) = api
        .send(
            Method::POST,
            "/api/tags",
            Some(modbus_tag("pressure", "press-plc", "40001")),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["uns_topic"], "acme/plant-a/packaging/line3/pressure");
    assert_eq!(body["sparkplug"]["metric"], "packaging/line3/pressure");
    assert_eq!(body["live"], JsonValue::Null);

    let many = json!([
        modbus_tag("speed", "press-plc", "40002"),
        modbus_tag("torque", "press-plc", "40003"),
    ]);
    let (status, body) = api.send(Method::POST, "/api/tags", Some(many)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["created"], 2);

    let (_, listed) = api.get("/api/tags?device=press-plc").await;
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["pressure", "speed", "torque"]);
    let (_, below) = api.get("/api/tags?location=packaging/line3/filler").await;
    assert_eq!(below.as_array().unwrap().len(), demo_model().tags.len());

    // Moving a tag to the filler cell and renaming it.
    let mut moved = modbus_tag("speed", "press-plc", "40002");
    moved["location"] = json!("packaging/line3/filler");
    moved["name"] = json!("line-speed");
    let (status, body) = api
        .send(Method::PUT, "/api/tags/packaging/line3/speed", Some(moved))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["uns_topic"],
        "acme/plant-a/packaging/line3/filler/line-speed"
    );
    let (status, _) = api.get("/api/tags/packaging/line3/speed").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, body) = api
        .send(
            Method::DELETE,
            "/api/tags/packaging/line3/filler/line-speed",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(api.model().tags.len(), demo_model().tags.len() + 2);
}

#[tokio::test]
async fn a_bad_row_in_a_bulk_create_is_named_and_nothing_is_created() {
    let api = Api::new();
    api.send(
        Method::POST,
        "/api/devices",
        Some(modbus_device("press-plc")),
    )
    .await;
    let before = api.model();

    // A body error: an unknown data type in the second row.
    let mut bad = modbus_tag("speed", "press-plc", "40002");
    bad["datatype"] = json!("flaot32");
    let rows = json!([modbus_tag("pressure", "press-plc", "40001"), bad]);
    let (status, body) = api.send(Method::POST, "/api/tags", Some(rows)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (field, value, reason) = only_error(&body);
    assert_eq!(
        (field.as_str(), value.as_str()),
        ("[1].datatype", "flaot32")
    );
    assert!(reason.contains("float32"), "{reason}");

    // Model rules: a location that is not in the namespace, a Modbus address out of range,
    // and a name taken by the first row; each named by its row.
    let mut nowhere = modbus_tag("speed", "press-plc", "40002");
    nowhere["location"] = json!("packaging/line9");
    let rows = json!([
        modbus_tag("pressure", "press-plc", "40001"),
        nowhere,
        modbus_tag("bad-address", "press-plc", "99999999"),
        modbus_tag("Pressure", "press-plc", "40004"),
    ]);
    let (status, body) = api.send(Method::POST, "/api/tags", Some(rows)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["[1].location", "[2].address", "[3].name"],
        "{body}"
    );
    assert_eq!(api.model(), before, "nothing was created");
}

#[tokio::test]
async fn the_namespace_is_replaced_renamed_and_guards_its_tags() {
    let api = Api::new();
    let (status, tree) = api.get("/api/namespace").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tree["areas"][0]["line"][0]["cells"][0], "filler");

    // Dropping the cell the demo tags sit in is refused, naming each tag by its path.
    let mut without_cell = tree.clone();
    without_cell["areas"][0]["line"][0]["cells"] = json!([]);
    let (status, body) = api
        .send(Method::PUT, "/api/namespace", Some(without_cell))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let first = &body["errors"][0];
    assert_eq!(
        first["field"],
        "tags[packaging/line3/filler/temperature].location"
    );
    assert_eq!(first["value"], "packaging/line3/filler");

    // Adding a line is fine.
    let mut more = tree.clone();
    more["areas"][0]["line"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "line4", "cells": ["capper"]}));
    let (status, body) = api.send(Method::PUT, "/api/namespace", Some(more)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Renaming the cell moves its tags.
    let (status, body) = api
        .send(
            Method::POST,
            "/api/namespace/rename",
            Some(json!({"from": "packaging/line3/filler", "to": "packaging/line3/filler-2"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["tags_moved"], json!(demo_model().tags.len()));
    assert!(
        api.model()
            .tags
            .iter()
            .all(|t| t.location == "packaging/line3/filler-2")
    );

    let (status, body) = api
        .send(
            Method::POST,
            "/api/namespace/rename",
            Some(json!({"from": "packaging/line3", "to": "assembly/line3"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(only_error(&body).0, "to");
}

#[tokio::test]
async fn sparkplug_ids_and_scan_classes_are_validated() {
    let api = Api::new();
    let (status, body) = api
        .send(
            Method::PUT,
            "/api/sparkplug",
            Some(json!({"edge_node_id": "bad/id"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(only_error(&body).0, "sparkplug.edge_node_id");
    let (status, _) = api
        .send(
            Method::PUT,
            "/api/sparkplug",
            Some(json!({"group_id": "plant-a", "edge_node_id": "filler-gw"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(api.model().sparkplug.edge_node_id, "filler-gw");
    assert_eq!(api.model().sparkplug.primary_host_id, None);
    let (status, body) = api
        .send(
            Method::PUT,
            "/api/sparkplug",
            Some(json!({"edge_node_id": "filler-gw", "primary_host_id": "scada/1"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(only_error(&body).0, "sparkplug.primary_host_id");
    assert_eq!(
        api.model().sparkplug.primary_host_id,
        None,
        "nothing changed"
    );
    let (status, _) = api
        .send(
            Method::PUT,
            "/api/sparkplug",
            Some(json!({"edge_node_id": "filler-gw", "primary_host_id": "SCADA Host"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        api.model().sparkplug.primary_host_id.as_deref(),
        Some("SCADA Host")
    );

    let (status, _) = api
        .send(
            Method::PUT,
            "/api/scan-classes",
            Some(json!([{"name": "fast", "period_ms": 100}])),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, classes) = api.get("/api/scan-classes").await;
    assert_eq!(classes, json!([{"name": "fast", "period_ms": 100}]));
    let (status, body) = api
        .send(
            Method::PUT,
            "/api/scan-classes",
            Some(json!([{"name": "fast", "period_ms": 1}])),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(only_error(&body).0, "scan_class[0].period_ms");
}

#[tokio::test]
async fn the_whole_model_is_previewed_then_replaced_as_toml_or_json() {
    let api = Api::new();
    let toml = uns_model::file::to_toml(&demo_model()).replace(
        "edge_node_id = \"sparkedge\"",
        "edge_node_id = \"gateway-7\"",
    );
    assert!(toml.contains("gateway-7"));
    let request = |uri: &str| {
        Request::put(uri)
            .header(header::CONTENT_TYPE, "application/toml")
            .body(Body::from(toml.clone()))
            .unwrap()
    };
    let (status, body) = api.raw(request("/api/model.toml?dry_run=true")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["applied"], false);
    assert_eq!(body["changes"]["sparkplug_changed"], true);
    assert_eq!(
        api.model().sparkplug.edge_node_id,
        "sparkedge",
        "a dry run changes nothing"
    );

    let (status, body) = api.raw(request("/api/model.toml")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["applied"], true);
    assert_eq!(api.model().sparkplug.edge_node_id, "gateway-7");

    // A bad file names the file's field.
    let bad = Request::put("/api/model.toml")
        .body(Body::from(
            toml.replace("datatype = \"float32\"", "datatype = \"real\""),
        ))
        .unwrap();
    let (status, body) = api.raw(bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["errors"][0]["field"]
            .as_str()
            .unwrap()
            .starts_with("tag[0]"),
        "{body}"
    );

    // JSON both ways.
    let (status, model) = api.get("/api/model").await;
    assert_eq!(status, StatusCode::OK);
    let mut changed = model.clone();
    changed["namespace"]["site"] = json!("plant-b");
    let (status, body) = api.send(Method::PUT, "/api/model", Some(changed)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["changes"]["namespace_changed"], true);
    assert_eq!(api.model().namespace.site, "plant-b");
}

#[tokio::test]
async fn tags_are_exported_and_imported_as_csv_with_every_bad_row_named() {
    let api = Api::new();
    let request = |uri: &str, body: String| {
        Request::post(uri)
            .header(header::CONTENT_TYPE, "text/csv")
            .body(Body::from(body))
            .unwrap()
    };
    let response = api
        .call(Request::get("/api/tags.csv").body(Body::empty()).unwrap())
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let exported = String::from_utf8(bytes.to_vec()).unwrap();
    assert_eq!(exported.lines().count(), 1 + demo_model().tags.len());

    // The export, with one tag changed and one added, merges back.
    let edited = exported.replacen("degC", "K", 1)
        + "demo-plc,packaging/line3/filler,pressure,float32,sine,bar,,,,,,,,,,,,,,\n";
    let (status, body) = api
        .raw(request("/api/tags.csv?dry_run=true", edited.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["changes"]["tags"]["added"],
        json!(["packaging/line3/filler/pressure"])
    );
    assert_eq!(
        body["changes"]["tags"]["changed"],
        json!(["packaging/line3/filler/temperature"])
    );
    assert_eq!(
        api.model().tags.len(),
        demo_model().tags.len(),
        "a dry run changes nothing"
    );
    let (status, body) = api.raw(request("/api/tags.csv", edited)).await;
    assert_eq!(
        (status, &body["rows"]),
        (StatusCode::OK, &json!(demo_model().tags.len() + 1))
    );
    let model = api.model();
    assert_eq!(model.tags.len(), demo_model().tags.len() + 1);
    assert_eq!(model.tags[0].unit.as_deref(), Some("K"));

    // One bad cell and one tag in a place the namespace lacks: both named by row in one
    // answer (the rows that read are checked against the model all the same), nothing
    // imported.
    let bad = "device,location,name,datatype,address\n\
               demo-plc,packaging/line9,lost,int16,ramp\n\
               demo-plc,packaging/line3/filler,typo,flaot32,ramp\n\
               demo-plc,packaging/line3/filler,ok,int16,ramp\n\
               demo-plc,packaging/line3/filler,ok,bool,toggle\n";
    for uri in ["/api/tags.csv", "/api/tags.csv?dry_run=true&mode=replace"] {
        let (status, body) = api.raw(request(uri, bad.to_owned())).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{uri}");
        let errors: Vec<(&str, &str)> = body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["field"].as_str().unwrap(), e["value"].as_str().unwrap()))
            .collect();
        assert_eq!(
            errors,
            vec![
                ("row[2].location", "packaging/line9"),
                ("row[3].datatype", "flaot32"),
                ("row[5].name", "ok"),
            ],
            "{uri}: {body}"
        );
        assert!(
            body["errors"][1]["reason"]
                .as_str()
                .unwrap()
                .contains("float32"),
            "{body}"
        );
    }
    let bad = bad.lines().take(4).collect::<Vec<_>>().join("\n");
    let (status, body) = api
        .raw(request("/api/tags.csv", bad.replace("flaot32", "float32")))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (field, value, _) = only_error(&body);
    assert_eq!(
        (field.as_str(), value.as_str()),
        ("row[2].location", "packaging/line9")
    );
    assert_eq!(api.model(), model, "nothing was imported");

    // Replace: the file becomes the tag list.
    let one = "device,location,name,datatype,address\ndemo-plc,packaging/line3,speed,int32,ramp\n";
    let (status, body) = api
        .raw(request("/api/tags.csv?mode=replace", one.to_owned()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["changes"]["tags"]["removed"].as_array().unwrap().len(),
        model.tags.len()
    );
    assert_eq!(api.model().tags.len(), 1);
}

/// A body that does not fit its type is answered in plain words naming what is allowed, with
/// the field path, never serde's own ("invalid type: string, expected u16").
#[tokio::test]
async fn type_errors_in_a_body_say_what_is_allowed() {
    let api = Api::new();
    let tag = |extra: JsonValue| {
        let mut tag = json!({"device": "demo-plc", "location": "packaging/line3/filler",
                             "name": "extra", "datatype": "int16", "address": "ramp"});
        for (k, v) in extra.as_object().unwrap() {
            tag[k] = v.clone();
        }
        tag
    };
    for (body, field, value, reason) in [
        (
            json!([tag(json!({})), tag(json!({"name": "x2", "length": -1}))]),
            "[1].length",
            "-1",
            "must be a whole number from 0 to 65535",
        ),
        (
            tag(json!({"writable": "yes"})),
            "writable",
            "yes",
            "must be true or false",
        ),
        (
            tag(json!({"datatype": "flaot32"})),
            "datatype",
            "flaot32",
            "must be one of: bool, ",
        ),
        // A setting of the flattened scaling part, named all the same.
        (tag(json!({"gain": "2x"})), "gain", "2x", "must be a number"),
        (
            tag(json!({"name": 5})),
            "name",
            "5",
            "must be text (in quotes)",
        ),
        (
            tag(json!({"unit": ["m"]})),
            "unit",
            "[\"m\"]",
            "must be text (in quotes)",
        ),
        (
            json!({"device": "demo-plc", "location": "packaging/line3", "name": "x",
                   "address": "ramp"}),
            "datatype",
            "",
            "required: datatype is missing",
        ),
    ] {
        let (status, answer) = api
            .send(Method::POST, "/api/tags", Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {answer}");
        let (f, v, r) = only_error(&answer);
        assert_eq!((f.as_str(), v.as_str()), (field, value), "{body}: {answer}");
        assert!(r.starts_with(reason), "{body}: {r:?} is not {reason:?}");
        assert!(!r.contains("expected"), "serde's words: {r}");
    }

    // A CSV cell, in the same words.
    let csv = "device,location,name,datatype,address,length\n\
               demo-plc,packaging/line3/filler,label,string,text,sixteen\n";
    let request = Request::post("/api/tags.csv?dry_run=true")
        .header(header::CONTENT_TYPE, "text/csv")
        .body(Body::from(csv))
        .unwrap();
    let (status, answer) = api.raw(request).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        only_error(&answer),
        (
            "row[2].length".to_owned(),
            "sixteen".to_owned(),
            "must be a whole number from 0 to 65535".to_owned()
        )
    );
}

#[tokio::test]
async fn every_documented_operation_exists_and_every_schema_reference_resolves() {
    let api = Api::new();
    let (status, doc) = api.get("/api/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(doc["openapi"], "3.0.3");

    // Every $ref points at a schema in the document.
    fn refs(value: &JsonValue, out: &mut Vec<String>) {
        match value {
            JsonValue::Object(map) => {
                if let Some(JsonValue::String(r)) = map.get("$ref") {
                    out.push(r.clone());
                }
                map.values().for_each(|v| refs(v, out));
            }
            JsonValue::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.iter().any(|r| r.ends_with("/Tag")), "{all:?}");
    for r in &all {
        let name = r.strip_prefix("#/components/schemas/").expect(r);
        assert!(
            doc["components"]["schemas"].get(name).is_some(),
            "{r} does not resolve"
        );
    }
    // The data type's schema lists the allowed names.
    let datatypes = doc["components"]["schemas"]["DataType"].to_string();
    assert!(datatypes.contains("float32[]"), "{datatypes}");

    // Every documented path and method is routed (a fresh model for each, so deletes work).
    let mut count = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let uri = path
            .replace("{name}", "demo-plc")
            .replace("{path}", "packaging/line3/filler/temperature")
            .replace("{topic}", "spBv1.0/plant-a/NBIRTH/sparkedge");
        for method in item.as_object().unwrap().keys() {
            let method: Method = method.to_uppercase().parse().unwrap();
            let fresh = Api::new();
            // `{name}` names an MQTT user too: one exists, so a 404 can only mean "no route".
            fresh
                .state
                .auth
                .users()
                .add_mqtt_user(
                    "demo-plc",
                    "mqtt password",
                    web::mqtt_users::MqttAccess::Subscribe,
                    0,
                )
                .unwrap();
            // ... and so does a northbound connection.
            let mut model = demo_model();
            model.northbound.push(
                serde_json::from_value(json!({"name": "demo-plc", "servers": ["mqtt://10.0.0.5"]}))
                    .unwrap(),
            );
            fresh.model.apply(model).unwrap();
            let request = Request::builder()
                .method(method.clone())
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            let response = fresh.call(request).await;
            assert!(
                ![StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED]
                    .contains(&response.status()),
                "{method} {uri}: {status}"
            );
            count += 1;
        }
    }
    assert!(count >= 20, "{count} operations documented");
}

#[tokio::test]
async fn mqtt_users_are_added_changed_and_removed_and_the_broker_is_told() {
    let api = Api::new();
    // The appliance's part: the broker gets every new table before the call returns.
    let (tables, table) = std::sync::mpsc::channel();
    api.state.auth.on_mqtt_users_changed(Box::new(move |users| {
        let _ = tables.send(users);
    }));
    let told = move || {
        table
            .try_recv()
            .expect("the broker is given the MQTT users")
    };
    let (status, body) = api
        .send(
            Method::POST,
            "/api/mqtt/users",
            Some(json!({"name": "scada", "password": "scada password", "access": "publish"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["access"], "publish");
    assert_eq!(told().len(), 1);
    let stored = api.state.auth.users().mqtt_credentials().unwrap();
    assert_eq!(stored.len(), 1);
    assert!(
        stored[0]
            .password_hash
            .starts_with("$argon2id$v=19$m=7168,t=5,p=1$"),
        "{}",
        stored[0].password_hash
    );

    // Refusals name the field and change nothing.
    for (body, field, status) in [
        (
            json!({"name": "Scada", "password": "another password", "access": "subscribe"}),
            "name",
            StatusCode::CONFLICT,
        ),
        (
            json!({"name": "sparkedge-internal", "password": "another password", "access": "subscribe"}),
            "name",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"name": "mes", "password": "short", "access": "subscribe"}),
            "password",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"name": "mes", "password": "long enough", "access": "write"}),
            "access",
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let (got, answer) = api.send(Method::POST, "/api/mqtt/users", Some(body)).await;
        assert_eq!(got, status, "{answer}");
        assert_eq!(only_error(&answer).0, field, "{answer}");
    }
    let (_, list) = api.get("/api/mqtt/users").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert!(
        !list.to_string().contains("argon2"),
        "never the hash: {list}"
    );

    let (status, body) = api
        .send(
            Method::PUT,
            "/api/mqtt/users/scada",
            Some(json!({"access": "subscribe"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["access"], "subscribe");
    assert_eq!(told()[0].access, web::mqtt_users::MqttAccess::Subscribe);
    let hash = api.state.auth.users().mqtt_credentials().unwrap()[0]
        .password_hash
        .clone();
    assert_eq!(hash, stored[0].password_hash, "no password given: kept");
    let (status, _) = api
        .send(
            Method::PUT,
            "/api/mqtt/users/scada",
            Some(json!({"password": "a new password"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let now = &api.state.auth.users().mqtt_credentials().unwrap()[0];
    assert_ne!(now.password_hash, hash);
    assert_eq!(
        now.access,
        web::mqtt_users::MqttAccess::Subscribe,
        "access kept"
    );

    let (status, body) = api
        .send(Method::DELETE, "/api/mqtt/users/nobody", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, _) = api
        .send(Method::DELETE, "/api/mqtt/users/scada", None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        api.state
            .auth
            .users()
            .mqtt_credentials()
            .unwrap()
            .is_empty()
    );
}

const CA: &str =
    "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUplantCA\n-----END CERTIFICATE-----\n";

/// A valid connection as a client would PUT it (no name: the URL gives it).
fn plant_broker() -> JsonValue {
    json!({
        "servers": ["mqtt://10.0.0.5:1883", "mqtts://10.0.0.6"],
        "username": "edge",
        "password": "s3cret-broker-pass",
        "ca_pem": CA,
        "primary_host_id": "scada",
    })
}

#[tokio::test]
async fn northbound_connections_are_created_read_replaced_and_deleted() {
    let api = Api::new();
    let request = Request::put("/api/northbound/plant")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(plant_broker().to_string()))
        .unwrap();
    let response = api.call(request).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(
        response.headers()[header::LOCATION],
        "/api/northbound/plant"
    );
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let created: JsonValue = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        created,
        json!({
            "name": "plant",
            "servers": ["mqtt://10.0.0.5:1883", "mqtts://10.0.0.6"],
            "client_id": null,
            "username": "edge",
            "password_set": true,
            "ca_pem": CA,
            "primary_host_id": "scada",
            "enabled": true,
        })
    );
    let stored = &api.model().northbound;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].password.as_deref(), Some("s3cret-broker-pass"));

    // Read: never the password.
    let (status, list) = api.get("/api/northbound").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([created]));
    let (status, one) = api.get("/api/northbound/plant").await;
    assert_eq!((status, &one), (StatusCode::OK, &created));
    assert!(!list.to_string().contains("s3cret"), "{list}");

    // What was read, written back changed (password_set and all), keeps the password.
    let mut edited = one.clone();
    edited["servers"] = json!(["mqtt://10.0.0.7"]);
    edited["enabled"] = json!(false);
    let (status, body) = api
        .send(Method::PUT, "/api/northbound/plant", Some(edited))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["servers"], json!(["mqtt://10.0.0.7"]));
    let stored = api.model().northbound[0].clone();
    assert_eq!(
        (stored.password.as_deref(), stored.enabled),
        (Some("s3cret-broker-pass"), false)
    );

    // Another user name cannot inherit the stored password ...
    let mut renamed_user = one.clone();
    renamed_user["username"] = json!("edge2");
    let (status, body) = api
        .send(
            Method::PUT,
            "/api/northbound/plant",
            Some(renamed_user.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (field, _, reason) = only_error(&body);
    assert_eq!(field, "password");
    assert!(reason.contains(r#"from "edge" to "edge2""#), "{reason}");
    assert_eq!(api.model().northbound[0], stored, "nothing changed");
    // ... it takes its own, or none.
    renamed_user["password"] = json!(null);
    let (status, body) = api
        .send(Method::PUT, "/api/northbound/plant", Some(renamed_user))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["password_set"], false);
    let stored = api.model().northbound[0].clone();
    assert_eq!(
        (stored.username.as_deref(), stored.password),
        (Some("edge2"), None)
    );

    let (status, body) = api
        .send(Method::DELETE, "/api/northbound/plant", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"deleted": "plant"}));
    assert!(api.model().northbound.is_empty());
    for method in [Method::GET, Method::DELETE] {
        let (status, body) = api
            .send(method.clone(), "/api/northbound/plant", None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method}: {body}");
        let (field, value, reason) = only_error(&body);
        assert_eq!((field.as_str(), value.as_str()), ("name", "plant"));
        assert!(reason.contains("northbound connection"), "{reason}");
    }
}

#[tokio::test]
async fn bad_northbound_connections_are_refused_naming_the_field_and_nothing_changes() {
    let api = Api::new();
    let (status, body) = api
        .send(Method::PUT, "/api/northbound/plant", Some(plant_broker()))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let before = api.model();

    let with = |changes: JsonValue| {
        let mut body = plant_broker();
        for (k, v) in changes.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let cases = [
        // New connections, then the stored one replaced: each names the field as sent.
        (
            "/api/northbound/line-7",
            with(json!({"servers": ["http://10.0.0.9"]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "servers[0]",
            "http://10.0.0.9",
            "mqtt://",
        ),
        (
            "/api/northbound/plant",
            with(json!({"servers": ["mqtt://10.0.0.5", "mqtt://10.0.0.6:99999"]})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "servers[1]",
            "mqtt://10.0.0.6:99999",
            "1 to 65535",
        ),
        (
            "/api/northbound/plant",
            with(json!({"ca_pem": null})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "servers[1]",
            "mqtts://10.0.0.6",
            "needs ca_pem",
        ),
        (
            "/api/northbound/plant",
            with(json!({"ca_pem": "plant-ca.pem"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "ca_pem",
            "plant-ca.pem",
            "BEGIN CERTIFICATE",
        ),
        (
            "/api/northbound/plant",
            with(json!({"servers": "mqtt://10.0.0.5"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "servers",
            "mqtt://10.0.0.5",
            "must be a list",
        ),
        (
            "/api/northbound/plant",
            with(json!({"name": "plant-2"})),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
            "plant-2",
            r#"must be "plant", the name in the URL"#,
        ),
        (
            "/api/northbound/line%207",
            plant_broker(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "name",
            "line 7",
            "letters, digits",
        ),
        (
            "/api/northbound/PLANT",
            plant_broker(),
            StatusCode::CONFLICT,
            "name",
            "PLANT",
            "unique ignoring case",
        ),
    ];
    for (uri, body, status, field, value, reason) in cases {
        let (got, answer) = api.send(Method::PUT, uri, Some(body)).await;
        assert_eq!(got, status, "{uri}: {answer}");
        let (f, v, r) = only_error(&answer);
        assert_eq!((f.as_str(), v.as_str()), (field, value), "{uri}: {answer}");
        assert!(r.contains(reason), "{uri}: {r}");
    }

    // The settings page's add form cannot replace a connection by accident.
    let create_only = Request::put("/api/northbound/plant")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::IF_NONE_MATCH, "*")
        .body(Body::from(
            with(json!({"servers": ["mqtt://10.0.0.99"]})).to_string(),
        ))
        .unwrap();
    let (status, answer) = api.raw(create_only).await;
    assert_eq!(status, StatusCode::PRECONDITION_FAILED, "{answer}");
    assert_eq!(only_error(&answer).0, "name");

    // A setting the model does not have is refused, not dropped.
    let (status, answer) = api
        .send(
            Method::PUT,
            "/api/northbound/plant",
            Some(with(json!({"keep_alive": 30}))),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    let (field, value, reason) = only_error(&answer);
    assert_eq!((field.as_str(), value.as_str()), ("keep_alive", "30"));
    assert!(
        reason.contains("the fields here are: name, servers, client_id"),
        "{reason}"
    );

    assert_eq!(api.model(), before, "nothing changed");
}

#[tokio::test]
async fn an_import_preview_lists_the_northbound_changes() {
    let api = Api::new();
    let (_, mut model) = api.get("/api/model").await;
    model["northbound"] = json!([{"name": "plant", "servers": ["mqtt://10.0.0.5"]}]);
    let (status, body) = api
        .send(Method::PUT, "/api/model?dry_run=true", Some(model))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["changes"]["northbound"],
        json!({"added": ["plant"], "removed": [], "changed": []})
    );
    assert!(
        api.model().northbound.is_empty(),
        "a dry run changes nothing"
    );
}
