//! Errors of the JSON API, and the JSON body reader that produces them.
//!
//! Every API error has one shape, whatever went wrong:
//! `{"errors": [{"field": "datatype", "value": "flaot32", "reason": "must be one of: bool, …"}]}`.
//! `field` and `value` are there when the error is about an input (a body field, a path or
//! query parameter); `reason` always says what is wrong and what is allowed. A script can
//! show the reason as is; a form can put each error beside its field.
//!
//! A body that does not fit its type gets serde's words (`invalid type: string "abc",
//! expected u16`); the response says them as an engineer would ([`plain_words`]: `must be a
//! whole number from 0 to 65535`). The translation happens as the response is made, so
//! handlers can still read serde's own words until then.

use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value as JsonValue;
use uns_model::ModelErrors;

/// One problem with a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub reason: String,
}

/// An API error response: a status and every problem found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub errors: Vec<FieldError>,
}

impl ApiError {
    /// An error about the request as a whole.
    pub fn new(status: StatusCode, reason: impl Into<String>) -> ApiError {
        ApiError {
            status,
            errors: vec![FieldError {
                field: None,
                value: None,
                reason: reason.into(),
            }],
        }
    }

    /// An error about one input.
    pub fn field(
        status: StatusCode,
        field: impl Into<String>,
        value: impl Into<String>,
        reason: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            errors: vec![FieldError {
                field: Some(field.into()),
                value: Some(value.into()),
                reason: reason.into(),
            }],
        }
    }

    /// 404 for a named thing that does not exist.
    pub fn not_found(field: &str, value: &str, what: &str) -> ApiError {
        ApiError::field(
            StatusCode::NOT_FOUND,
            field,
            value,
            format!("no {what} of that name"),
        )
    }

    /// 422 with every rule the changed model breaks; `relabel` turns each model path
    /// (`tag[17].datatype`) into the name the caller used.
    pub fn invalid(errors: ModelErrors, relabel: impl Fn(&str) -> String) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            errors: errors
                .0
                .into_iter()
                .map(|e| FieldError {
                    field: Some(relabel(&e.field)),
                    value: Some(e.value),
                    reason: e.reason,
                })
                .collect(),
        }
    }

    /// 503: the appliance could not load or take a model right now.
    pub fn unavailable(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, reason)
    }
}

impl IntoResponse for ApiError {
    fn into_response(mut self) -> Response {
        for error in &mut self.errors {
            if let Some(plain) = plain_words(&error.reason) {
                error.reason = plain;
            }
        }
        (
            self.status,
            axum::Json(serde_json::json!({ "errors": self.errors })),
        )
            .into_response()
    }
}

/// serde's message for a value that does not fit, in plain words that name what is allowed;
/// `None` for any other message (ours say it plainly already).
pub fn plain_words(reason: &str) -> Option<String> {
    // `a`, `b` or `c` as serde lists names: "`a`", "`a` or `b`", "one of `a`, `b`, `c`".
    let names = |list: &str| -> Vec<String> {
        list.trim_start_matches("one of ")
            .split(", ")
            .flat_map(|item| item.split(" or "))
            .map(|name| name.trim().trim_matches('`').to_owned())
            .filter(|name| !name.is_empty())
            .collect()
    };
    if let Some(rest) = reason.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return Some(format!("required: {field} is missing"));
    }
    if let Some(rest) = reason.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
        let known = match expected.strip_prefix(", expected ") {
            Some(list) => format!("the fields here are: {}", names(list).join(", ")),
            None => "there are no fields here".to_owned(),
        };
        return Some(format!("unknown field {field}; {known}"));
    }
    if let Some(rest) = reason.strip_prefix("unknown variant `") {
        let (_, expected) = rest.split_once("`, expected ")?;
        return Some(format!("must be one of: {}", names(expected).join(", ")));
    }
    let (_, expected) = reason
        .strip_prefix("invalid type: ")
        .or_else(|| reason.strip_prefix("invalid value: "))?
        .rsplit_once(", expected ")?;
    let whole = |min: i128, max: i128| Some(format!("must be a whole number from {min} to {max}"));
    match expected {
        "u8" => whole(0, u8::MAX.into()),
        "u16" => whole(0, u16::MAX.into()),
        "u32" => whole(0, u32::MAX.into()),
        "u64" | "usize" => whole(0, u64::MAX.into()),
        "i8" => whole(i8::MIN.into(), i8::MAX.into()),
        "i16" => whole(i16::MIN.into(), i16::MAX.into()),
        "i32" => whole(i32::MIN.into(), i32::MAX.into()),
        "i64" | "isize" => whole(i64::MIN.into(), i64::MAX.into()),
        "f32" | "f64" => Some("must be a number".to_owned()),
        "a boolean" => Some("must be true or false".to_owned()),
        "a string" => Some("must be text (in quotes)".to_owned()),
        "a character" => Some("must be one character".to_owned()),
        "a sequence" => Some("must be a list: [ … ]".to_owned()),
        "a map" => Some("must be an object: { … }".to_owned()),
        _ if expected.starts_with("struct ") => Some("must be an object: { … }".to_owned()),
        // A type of ours says what it wants in its own words ("a Modbus address").
        _ => None,
    }
}

/// A JSON request body whose errors name the field: a misspelt data type in the fourth tag of
/// a list is reported as field `[3].datatype` with the value written, not as "line 1 column
/// 812". Requires `Content-Type: application/json`.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let essence = content_type.split(';').next().unwrap_or("").trim();
        if !essence.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::field(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type",
                content_type,
                "must be application/json",
            ));
        }
        let bytes = axum::body::Bytes::from_request(request, state)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        let json: JsonValue = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the body is not JSON: {e}"),
            )
        })?;
        parse(&json).map(JsonBody)
    }
}

/// Deserializes `json` into `T`, naming the field and its value on error.
pub fn parse<T: DeserializeOwned>(json: &JsonValue) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(json).map_err(|e| {
        let path = e.path();
        let reason = e.inner().to_string();
        let at = value_at(json, path);
        // serde_path_to_error writes the root as "."; the whole body is no field to show.
        let mut field = Some(path.to_string()).filter(|f| f != ".");
        let mut value = at.map(text_of).unwrap_or_default();
        // A field of a flattened or tagged part (a tag's scaling, a device's driver settings)
        // is read from a buffer that forgets its name: the path ends at the object holding
        // it. serde's words still name it (missing, unknown) or quote its value; the field is
        // taken from them where that is unambiguous.
        if let Some(JsonValue::Object(object)) = at
            && let Some((key, found)) = named_in(&reason, object)
        {
            field = Some(match field {
                Some(parent) => format!("{parent}.{key}"),
                None => key,
            });
            value = found;
        }
        match field {
            Some(field) => ApiError::field(StatusCode::UNPROCESSABLE_ENTITY, field, value, reason),
            None => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, reason),
        }
    })
}

/// A value as an error shows it: text without quotes, anything else as JSON.
pub(crate) fn text_of(v: &JsonValue) -> String {
    match v {
        JsonValue::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The key of `object` serde's `reason` is about, and its value as shown.
fn named_in(reason: &str, object: &serde_json::Map<String, JsonValue>) -> Option<(String, String)> {
    let quoted = |prefix: &str| Some(reason.strip_prefix(prefix)?.split('`').next()?.to_owned());
    if let Some(name) = quoted("missing field `") {
        return Some((name, String::new()));
    }
    if let Some(name) = quoted("unknown field `") {
        let value = object.get(&name).map(text_of).unwrap_or_default();
        return Some((name, value));
    }
    // "invalid type: string \"x\", expected u16" / "invalid value: integer `70000`, …":
    // the one key whose value the message quotes.
    let mentions = |value: &JsonValue| match value {
        JsonValue::String(s) => reason.contains(&format!("{s:?}")),
        JsonValue::Number(n) => reason.contains(&format!("`{n}`")),
        JsonValue::Bool(b) => reason.contains(&format!("`{b}`")),
        _ => false,
    };
    let mut candidates = object.iter().filter(|(_, v)| mentions(v));
    match (candidates.next(), candidates.next()) {
        (Some((k, v)), None) => Some((k.clone(), text_of(v))),
        _ => None,
    }
}

fn value_at<'a>(json: &'a JsonValue, path: &serde_path_to_error::Path) -> Option<&'a JsonValue> {
    use serde_path_to_error::Segment;
    path.iter().try_fold(json, |at, segment| match segment {
        Segment::Seq { index } => at.get(index),
        Segment::Map { key } => at.get(key),
        Segment::Enum { .. } | Segment::Unknown => Some(at),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use uns_model::Tag;

    #[test]
    fn a_bad_field_in_a_list_is_named_with_its_index_and_value() {
        let json = serde_json::json!([
            {"device": "plc", "location": "a/b", "name": "t1", "datatype": "int16", "address": "40001"},
            {"device": "plc", "location": "a/b", "name": "t2", "datatype": "flaot32", "address": "40002"},
        ]);
        let error = parse::<Vec<Tag>>(&json).unwrap_err();
        assert_eq!(error.status, StatusCode::UNPROCESSABLE_ENTITY);
        let e = &error.errors[0];
        assert_eq!(e.field.as_deref(), Some("[1].datatype"));
        assert_eq!(e.value.as_deref(), Some("flaot32"));
        assert!(e.reason.contains("float32"), "{}", e.reason);
    }

    #[test]
    fn a_missing_field_names_what_is_missing() {
        let json =
            serde_json::json!({"device": "plc", "location": "a/b", "name": "t1", "address": "1"});
        let error = parse::<Tag>(&json).unwrap_err();
        let e = &error.errors[0];
        assert_eq!(e.field.as_deref(), Some("datatype"), "{error:?}");
        assert_eq!(
            plain_words(&e.reason).as_deref(),
            Some("required: datatype is missing")
        );
    }

    #[test]
    fn serdes_words_become_what_is_allowed() {
        for (serde, plain) in [
            (
                "invalid type: string \"abc\", expected u16",
                "must be a whole number from 0 to 65535",
            ),
            (
                "invalid value: integer `-1`, expected u32",
                "must be a whole number from 0 to 4294967295",
            ),
            (
                "invalid type: floating point `1.5`, expected i16",
                "must be a whole number from -32768 to 32767",
            ),
            (
                "invalid type: string \"x\", expected f64",
                "must be a number",
            ),
            (
                "invalid type: string \"yes\", expected a boolean",
                "must be true or false",
            ),
            (
                "invalid type: integer `5`, expected a string",
                "must be text (in quotes)",
            ),
            (
                "invalid type: map, expected a sequence",
                "must be a list: [ … ]",
            ),
            (
                "invalid type: string \"t\", expected struct Tag",
                "must be an object: { … }",
            ),
            (
                "unknown variant `modbus`, expected one of `simulator`, `modbus-tcp`, `opc-ua`",
                "must be one of: simulator, modbus-tcp, opc-ua",
            ),
            (
                "unknown variant `x`, expected `a` or `b`",
                "must be one of: a, b",
            ),
            (
                "unknown field `prot`, expected one of `host`, `port`",
                "unknown field prot; the fields here are: host, port",
            ),
            (
                "unknown field `x`, there are no fields",
                "unknown field x; there are no fields here",
            ),
            ("missing field `host`", "required: host is missing"),
        ] {
            assert_eq!(plain_words(serde).as_deref(), Some(plain), "{serde}");
        }
        // Our own words, and a type that says what it wants, stay as they are.
        for kept in [
            "period_ms must be between 10 and 3600000",
            "invalid value: string \"x\", expected a Modbus address like hr:100",
        ] {
            assert_eq!(plain_words(kept), None, "{kept}");
        }
    }
}
