//! Values rendered as Argo's Go code renders them: `json.Marshal` sorts object keys and escapes
//! `<`, `>`, `&`, U+2028 and U+2029.

use serde_json::Value;

/// Compact JSON as Go's `json.Marshal` writes it.
pub(crate) fn go_json(value: &Value) -> String {
    let text = sorted(value).to_string();
    // Outside strings JSON never holds these characters, so replacing them everywhere only
    // touches string contents.
    text.replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}

fn sorted(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), sorted(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::go_json;
    use serde_json::json;

    #[test]
    fn sorted_and_escaped_as_go() {
        let v = json!({"b": [{"z": 1, "a": "<&>"}], "a": null});
        assert_eq!(
            go_json(&v),
            r#"{"a":null,"b":[{"a":"\u003c\u0026\u003e","z":1}]}"#
        );
    }
}
