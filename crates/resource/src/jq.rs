//! Output parameters by `jqFilter`: the filter runs on jaq (a jq implementation in Rust) over the
//! object, and its outputs are joined as Argo joins gojq's: each string bare, anything else as
//! compact JSON (Go's `json.Marshal`: sorted keys), one per line, the whole trimmed.

use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use jaq_json::Val;
use serde_json::Value;

use crate::text::go_json;

/// Why a jq filter failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("jqFilter {filter:?}: {reason}")]
pub struct JqError {
    filter: String,
    reason: String,
}

/// Runs `filter` over `input` and renders its outputs as Argo does.
pub fn jq_filter(filter: &str, input: &Value) -> Result<String, JqError> {
    let error = |reason: String| JqError {
        filter: filter.to_owned(),
        reason,
    };
    let input = jaq_json::read::parse_single(input.to_string().as_bytes())
        .map_err(|e| error(format!("read the object: {e}")))?;
    let defs = jaq_core::defs()
        .chain(jaq_std::defs())
        .chain(jaq_json::defs());
    let funs = jaq_core::funs()
        .chain(jaq_std::funs())
        .chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let program = File {
        code: filter,
        path: (),
    };
    let modules = loader
        .load(&arena, program)
        .map_err(|errors| error(format!("does not parse: {errors:?}")))?;
    let compiled = Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|errors| error(format!("does not compile: {errors:?}")))?;
    let ctx = Ctx::<data::JustLut<Val>>::new(&compiled.lut, Vars::new([]));
    let mut out = String::new();
    for result in compiled.id.run((ctx, input)).map(unwrap_valr) {
        let value = result.map_err(|e| error(e.to_string()))?;
        let json: Value = serde_json::from_str(&value.to_string())
            .map_err(|e| error(format!("output {value} is not JSON: {e}")))?;
        match json {
            Value::String(s) => out.push_str(&s),
            other => out.push_str(&go_json(&other)),
        }
        out.push('\n');
    }
    Ok(out.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::jq_filter;
    use serde_json::json;

    #[test]
    fn outputs_as_argo_joins_them() {
        let cm =
            json!({"metadata": {"name": "cm", "labels": {"b": "2", "a": "1"}}, "data": {"n": "3"}});
        assert_eq!(jq_filter(".metadata.name", &cm).unwrap(), "cm");
        assert_eq!(
            jq_filter(".metadata.labels", &cm).unwrap(),
            r#"{"a":"1","b":"2"}"#
        );
        assert_eq!(jq_filter(".metadata.labels | keys[]", &cm).unwrap(), "a\nb");
        assert_eq!(jq_filter(".data.n | tonumber + 1", &cm).unwrap(), "4");
        assert_eq!(jq_filter(".missing", &cm).unwrap(), "null");
        assert!(jq_filter(".[", &cm).is_err());
        assert!(jq_filter("error(\"boom\")", &cm).is_err());
    }
}
