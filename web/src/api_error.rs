//! Errors of the JSON API, and the JSON body reader that produces them.
//!
//! Every API error has one shape, whatever went wrong:
//! `{"errors": [{"field": "datatype", "value": "flaot32", "reason": "unknown variant …"}]}`.
//! `field` and `value` are there when the error is about an input (a body field, a path or
//! query parameter); `reason` always says what is wrong and what is allowed. A script can
//! show the reason as is; a form can put each error beside its field.

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
    fn into_response(self) -> Response {
        (
            self.status,
            axum::Json(serde_json::json!({ "errors": self.errors })),
        )
            .into_response()
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
        let value = value_at(json, path)
            .map(|v| match v {
                JsonValue::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default();
        let field = path.to_string();
        // serde_path_to_error writes the root as "."; the whole body is no field to show.
        if field == "." {
            return ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, e.inner().to_string());
        }
        ApiError::field(
            StatusCode::UNPROCESSABLE_ENTITY,
            field,
            value,
            e.inner().to_string(),
        )
    })
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
        assert!(
            error.errors[0].reason.contains("missing field `datatype`"),
            "{error:?}"
        );
    }
}
