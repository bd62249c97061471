//! Answers in the API server's shapes: `Status` errors and JSON bodies.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::store::Resource;

/// A Kubernetes `Status` error answer.
pub(crate) fn status(code: u16, message: &str) -> Response {
    let reason = match code {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        410 => "Expired",
        415 => "UnsupportedMediaType",
        422 => "Invalid",
        429 => "TooManyRequests",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "InternalError",
    };
    status_with_reason(code, reason, message)
}

pub(crate) fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

pub(crate) fn status_with_reason(code: u16, reason: &str, message: &str) -> Response {
    let code_status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (code_status, json_body(&status_body(code, reason, message))).into_response()
}

pub(crate) fn json_body(value: &Value) -> ([(header::HeaderName, &'static str); 1], String) {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
}

pub(crate) fn ok(value: &Value) -> Response {
    json_body(value).into_response()
}

pub(crate) fn not_found(resource: Resource, name: &str) -> Response {
    let mut body = status_body(
        404,
        "NotFound",
        &format!(
            "{}.{} \"{name}\" not found",
            resource.plural, resource.group
        )
        .replace(". \"", " \""),
    );
    body["details"] = json!({"name": name, "group": resource.group, "kind": resource.plural});
    (StatusCode::NOT_FOUND, json_body(&body)).into_response()
}
