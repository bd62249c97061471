//! Values Argo accepts in more than one JSON form, and pod metadata.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A value Argo reads as a string but lets users write as any JSON scalar (Go's `AnyString`):
/// a parameter's `value`, `default`, `enum` entries and `description`.
///
/// It keeps the JSON form it was written in, so `value: 5` comes back as the number 5 and
/// `value: "5"` as the string; [`AnyString::text`] gives the string Argo works with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AnyString(Value);

impl AnyString {
    /// The value as written.
    pub fn as_json(&self) -> &Value {
        &self.0
    }

    /// Whether it was written as a JSON string.
    pub fn is_string(&self) -> bool {
        self.0.is_string()
    }

    /// The string Argo uses: a string as is, a bool as `true`/`false`, a number in decimal
    /// without an exponent (`1e3` is `1000`, `0.5` is `0.5`).
    ///
    /// Anything else (an object, a list, null) is the empty string, as in Argo, whose
    /// `AnyString` leaves such values unset.
    pub fn text(&self) -> Cow<'_, str> {
        match &self.0 {
            Value::String(s) => Cow::Borrowed(s),
            Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Value::Number(n) => Cow::Owned(number_text(n)),
            Value::Null | Value::Array(_) | Value::Object(_) => Cow::Borrowed(""),
        }
    }
}

/// A number as Argo prints it (Go's `strconv.FormatFloat(v, 'f', -1, 64)`), except that integers
/// beyond 2^53 stay exact where Go, going through float64, would round them.
fn number_text(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        // Rust's float Display is the shortest form that reads back the same, never with an
        // exponent: what Go's 'f' format with precision -1 prints.
        n.as_f64().map(|f| f.to_string()).unwrap_or_default()
    }
}

impl fmt::Display for AnyString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl From<String> for AnyString {
    fn from(s: String) -> Self {
        Self(Value::String(s))
    }
}

impl From<&str> for AnyString {
    fn from(s: &str) -> Self {
        Self(Value::String(s.to_owned()))
    }
}

impl From<Value> for AnyString {
    fn from(value: Value) -> Self {
        Self(value)
    }
}

/// One entry of `withItems`: any JSON value (string, number, bool, list or map), kept as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Item(Value);

impl Item {
    /// The value as written.
    pub fn as_json(&self) -> &Value {
        &self.0
    }

    /// The string Argo substitutes for `{{item}}`: strings as is, numbers and bools printed, lists
    /// and maps as compact JSON.
    pub fn text(&self) -> Cow<'_, str> {
        match &self.0 {
            Value::String(s) => Cow::Borrowed(s),
            Value::Bool(b) => Cow::Borrowed(if *b { "true" } else { "false" }),
            Value::Number(n) => Cow::Owned(number_text(n)),
            other => Cow::Owned(other.to_string()),
        }
    }
}

impl From<Value> for Item {
    fn from(value: Value) -> Self {
        Self(value)
    }
}

/// A numeric amount (a histogram bucket bound), kept as written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Amount(pub serde_json::Number);

impl Amount {
    /// The amount as a float.
    pub fn as_f64(&self) -> Option<f64> {
        self.0.as_f64()
    }
}

/// Labels and annotations added to the template's pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// Annotations added to the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Labels added to the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn any(value: Value) -> AnyString {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn any_string_keeps_the_written_form() {
        for value in [
            json!(5),
            json!("5"),
            json!(true),
            json!("true"),
            json!(0.25),
        ] {
            assert_eq!(serde_json::to_value(any(value.clone())).unwrap(), value);
        }
    }

    #[test]
    fn any_string_text_is_argos_string() {
        assert_eq!(any(json!(5)).text(), "5");
        assert_eq!(any(json!("5")).text(), "5");
        assert_eq!(any(json!(-3)).text(), "-3");
        assert_eq!(any(json!(0.5)).text(), "0.5");
        assert_eq!(any(json!(1e21)).text(), "1000000000000000000000");
        assert_eq!(any(json!(5.0)).text(), "5");
        assert_eq!(any(json!(u64::MAX)).text(), "18446744073709551615");
        assert_eq!(any(json!(true)).text(), "true");
        assert_eq!(any(json!(false)).to_string(), "false");
        assert_eq!(any(json!({"a": 1})).text(), "");
        assert!(any(json!("x")).is_string());
        assert!(!any(json!(1)).is_string());
    }

    #[test]
    fn item_text_prints_maps_as_json() {
        let item: Item = serde_json::from_value(json!({"image": "debian", "tag": 9})).unwrap();
        assert_eq!(item.text(), r#"{"image":"debian","tag":9}"#);
        let item: Item = serde_json::from_value(json!(60)).unwrap();
        assert_eq!(item.text(), "60");
    }
}
