//! An HTTP template's `successCondition`: an expr-lang expression (Argo's `argoexpr.EvalBool`)
//! over `request` and `response`, evaluated by the `expr-lang` crate, which implements expr with
//! Go-compatible semantics.
//!
//! The scope is Argo's: `request.{method, url, body, bodyBytes, headers}` and
//! `response.{statusCode, body, headers}`, headers as lists of values by name (`http.Header`):
//! the request's as the template names them, the response's in Go's canonical form
//! (`Content-Type`).

use expr::{Context, Value};

/// Why a condition could not be decided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    /// The expression does not parse.
    #[error("{0}")]
    Compile(String),
    /// It failed while running.
    #[error("unable to evaluate expression '{expression}': {reason}")]
    Evaluate {
        /// The expression.
        expression: String,
        /// Why.
        reason: String,
    },
    /// It gave something other than a boolean.
    #[error("unable to cast expression result '{result}' to bool")]
    NotBool {
        /// What it gave, as expr prints it.
        result: String,
    },
}

/// What the condition sees of the request.
#[derive(Debug, Clone, Default)]
pub struct RequestScope {
    /// The method as the template gives it (may be empty: Go sends GET).
    pub method: String,
    /// The URL.
    pub url: String,
    /// `body`.
    pub body: String,
    /// `bodyFrom.bytes`, decoded; `None` when unset (Go's nil).
    pub body_bytes: Option<Vec<u8>>,
    /// The headers with a literal value (not those from secrets), in order.
    pub headers: Vec<(String, String)>,
}

/// What the condition sees of the response.
#[derive(Debug, Clone, Default)]
pub struct ResponseScope {
    /// The status code.
    pub status: u16,
    /// The body, as text.
    pub body: String,
    /// The headers as received, in order (names in any case).
    pub headers: Vec<(String, String)>,
}

/// Evaluates `expression` over the request and response.
pub fn evaluate(
    expression: &str,
    request: &RequestScope,
    response: &ResponseScope,
) -> Result<bool, ConditionError> {
    let program = expr::compile(expression).map_err(|e| ConditionError::Compile(e.to_string()))?;
    let mut context = Context::default();
    context.insert("request", request_value(request));
    context.insert("response", response_value(response));
    let result = expr::run(&program, &context).map_err(|e| ConditionError::Evaluate {
        expression: expression.to_owned(),
        reason: e.to_string(),
    })?;
    match result {
        Value::Bool(b) => Ok(b),
        other => Err(ConditionError::NotBool {
            result: other.to_string(),
        }),
    }
}

fn request_value(request: &RequestScope) -> Value {
    // `ToHeader` sets one value per name, a later header of a name replacing an earlier.
    let headers = request.headers.iter().map(|(n, v)| (n.clone(), v.clone()));
    [
        ("method", Value::from(request.method.as_str())),
        ("url", request.url.as_str().into()),
        ("body", request.body.as_str().into()),
        (
            "bodyBytes",
            request.body_bytes.clone().map_or(Value::Nil, Value::Bytes),
        ),
        ("headers", header_map(headers, false)),
    ]
    .into_iter()
    .collect()
}

fn response_value(response: &ResponseScope) -> Value {
    let headers = response
        .headers
        .iter()
        .map(|(n, v)| (canonical_header_key(n), v.clone()));
    [
        ("statusCode", Value::Integer(i64::from(response.status))),
        ("body", response.body.as_str().into()),
        ("headers", header_map(headers, true)),
    ]
    .into_iter()
    .collect()
}

/// Go's `http.Header`: each name to its list of values, names in the order first seen; a
/// repeated name adds its value when `append`, else replaces the list.
fn header_map(headers: impl Iterator<Item = (String, String)>, append: bool) -> Value {
    let mut map: Vec<(String, Vec<Value>)> = Vec::new();
    for (name, value) in headers {
        match map.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) if append => values.push(value.into()),
            Some((_, values)) => *values = vec![value.into()],
            None => map.push((name, vec![value.into()])),
        }
    }
    map.into_iter()
        .map(|(name, values)| (name, Value::Array(values)))
        .collect()
}

/// Go's `textproto.CanonicalMIMEHeaderKey`: the first letter and each letter after a hyphen
/// upper-case, the rest lower-case; a name with a space or a character outside a token is left
/// as it is.
pub fn canonical_header_key(name: &str) -> String {
    let is_token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !name.chars().all(is_token) {
        return name.to_owned();
    }
    let mut upper = true;
    name.chars()
        .map(|c| {
            let out = if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            upper = c == '-';
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn response(status: u16, body: &str) -> ResponseScope {
        ResponseScope {
            status,
            body: body.into(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-multi".into(), "a".into()),
                ("X-Multi".into(), "b".into()),
            ],
        }
    }

    #[test]
    fn conditions_see_argos_scope() {
        let request = RequestScope {
            method: "POST".into(),
            url: "http://x/y".into(),
            body: "hello".into(),
            body_bytes: None,
            headers: vec![
                ("x-token".into(), "1".into()),
                ("x-token".into(), "2".into()),
            ],
        };
        let ok = response(201, r#"{"id": 7}"#);
        let yes = |e: &str| evaluate(e, &request, &ok).unwrap();
        assert!(yes("response.statusCode == 201"));
        assert!(yes(r#"response.body contains "id""#));
        assert!(yes(
            r#"response.headers["Content-Type"][0] == "application/json""#
        ));
        assert!(yes(r#"len(response.headers["X-Multi"]) == 2"#));
        assert!(yes(
            r#"request.method == "POST" && request.url endsWith "/y""#
        ));
        assert!(yes(r#"request.headers["x-token"] == ["2"]"#));
        assert!(yes("request.bodyBytes == nil"));
        assert!(yes(r#"fromJSON(response.body).id == 7"#));
        assert!(!yes("response.statusCode >= 400"));
    }

    #[test]
    fn failures_are_told_as_argo_tells_them() {
        let request = RequestScope::default();
        let ok = response(200, "");
        assert_eq!(
            evaluate("response.statusCode", &request, &ok)
                .unwrap_err()
                .to_string(),
            "unable to cast expression result '200' to bool"
        );
        assert!(matches!(
            evaluate("response.statusCode ==", &request, &ok),
            Err(ConditionError::Compile(_))
        ));
    }

    #[test]
    fn header_keys_are_canonical_as_in_go() {
        assert_eq!(canonical_header_key("content-type"), "Content-Type");
        assert_eq!(canonical_header_key("X-REQUEST-ID"), "X-Request-Id");
        assert_eq!(canonical_header_key("etag"), "Etag");
        assert_eq!(canonical_header_key("bad key"), "bad key");
    }
}
