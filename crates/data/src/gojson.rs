//! A transformed value as Go's `encoding/json` `Marshal` writes it, which is the text Argo stores
//! as the step's `result`: map keys sorted, `<`, `>` and `&` (and U+2028, U+2029) escaped for
//! HTML, `\b` and `\f` short (Go 1.22+), floats in Go's shortest form (`1`, not `1.0`; `1e+21`),
//! bytes as base64, NaN and infinities refused.

use std::fmt::Write as _;

use base64::Engine as _;
use expr::Value;

/// A value Go's encoder refuses.
#[derive(Debug, thiserror::Error)]
#[error("json: unsupported value: {0}")]
pub struct EncodeError(String);

/// The value as Go's `json.Marshal` writes it.
pub fn go_json(value: &Value) -> Result<String, EncodeError> {
    let mut out = String::new();
    encode(value, &mut out)?;
    Ok(out)
}

fn encode(value: &Value, out: &mut String) -> Result<(), EncodeError> {
    match value {
        Value::Nil => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Integer(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => float(*f, out)?,
        Value::String(s) => string(s, out),
        Value::Bytes(bytes) => {
            out.push('"');
            out.push_str(&base64::engine::general_purpose::STANDARD.encode(bytes));
            out.push('"');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                encode(item, out)?;
            }
            out.push(']');
        }
        Value::Map(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(key, out);
                out.push(':');
                encode(item, out)?;
            }
            out.push('}');
        }
        Value::KeyedMap(_) => {
            return Err(EncodeError(
                "a map with keys that are not strings (Go: map[interface {}]interface {})".into(),
            ));
        }
    }
    Ok(())
}

/// Go's `floatEncoder` for float64: `'f'` format unless the magnitude is below 1e-6 or at least
/// 1e21, then `'e'` with the exponent's sign and without a leading zero in a negative one.
fn float(f: f64, out: &mut String) -> Result<(), EncodeError> {
    if !f.is_finite() {
        return Err(EncodeError(format_go_special(f)));
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Rust's `{:e}` is already shortest with `e-7`, `e21`: Go writes `e+21`.
        let text = format!("{f:e}");
        match text.split_once('e') {
            Some((mantissa, exp)) if !exp.starts_with('-') => {
                let _ = write!(out, "{mantissa}e+{exp}");
            }
            _ => out.push_str(&text),
        }
    } else {
        // Rust's `{}` is the shortest round-trip form without an exponent, as Go's `'f', -1`;
        // `-0` prints as Go's `-0` too.
        let _ = write!(out, "{f}");
    }
    Ok(())
}

fn format_go_special(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f > 0.0 {
        "+Inf".into()
    } else {
        "-Inf".into()
    }
}

/// Go's string encoder with `escapeHTML` on.
fn string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(value: Value) -> String {
        go_json(&value).unwrap()
    }

    #[test]
    fn strings_are_escaped_for_html_as_go_does() {
        assert_eq!(
            json(Value::String("a<b>&\"\\\n\u{1}\u{8}\u{c}\u{2028}é".into())),
            r#""a\u003cb\u003e\u0026\"\\\n\u0001\b\f\u2028é""#
        );
    }

    #[test]
    fn floats_are_gos_shortest_forms() {
        for (f, text) in [
            (1.0, "1"),
            (0.5, "0.5"),
            (-0.0, "-0"),
            (1e20, "100000000000000000000"),
            (1e21, "1e+21"),
            (1.5e-7, "1.5e-7"),
            (1e-10, "1e-10"),
            (0.000001, "0.000001"),
            (123456.789, "123456.789"),
        ] {
            assert_eq!(json(Value::Float(f)), text, "{f}");
        }
        assert!(go_json(&Value::Float(f64::NAN)).is_err());
    }

    #[test]
    fn maps_are_sorted_and_nil_is_null() {
        let map: expr::Value = Value::Map(
            [
                ("b", Value::Integer(1)),
                ("a", Value::Array(vec![Value::Nil])),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        );
        assert_eq!(json(map), r#"{"a":[null],"b":1}"#);
        assert_eq!(json(Value::Nil), "null");
        assert_eq!(json(Value::Array(vec![])), "[]");
        assert_eq!(json(Value::Bytes(b"hi".to_vec())), r#""aGk=""#);
    }
}
