//! The `transformation` steps: each an expr-lang expression over `data`, the previous step's
//! value (Argo's `processTransformation`).

use std::panic::AssertUnwindSafe;

use argoexec_template::TransformationStep;
use expr::{Context, Value};

use crate::source::Listing;

/// A step that failed, with Argo's wording and the step's index.
#[derive(Debug, thiserror::Error)]
#[error("error processing data step {step}")]
pub struct StepError {
    /// The step's index, from 0.
    pub step: usize,
    /// What expr said.
    #[source]
    pub source: expr::Error,
}

/// The listing as the value expressions and the result see: a list of strings, or nil.
pub fn listing_value(listing: Listing) -> Value {
    match listing {
        Some(keys) => Value::Array(keys.into_iter().map(Value::String).collect()),
        None => Value::Nil,
    }
}

/// Applies the steps in order; a step without an expression is skipped, as in Argo.
pub fn transform(data: Value, steps: &[TransformationStep]) -> Result<Value, StepError> {
    let mut data = data;
    for (step, transformation) in steps.iter().enumerate() {
        if transformation.expression.is_empty() {
            continue;
        }
        // Go's source is a typed nil slice: expressions see an empty list, not nil.
        let input = match data {
            Value::Nil if step_is_first(steps, step) => Value::Array(Vec::new()),
            other => other,
        };
        let mut context = Context::default();
        context.insert("data", input);
        let expression = transformation.expression.as_str();
        // expr-lang 2.1 panics on some valid expressions (a map literal whose values are not
        // literals, `{"n": len(data)}`): the step fails with a message instead of the process.
        let evaluated = std::panic::catch_unwind(AssertUnwindSafe(|| {
            expr::compile(expression).and_then(|program| expr::run(&program, &context))
        }))
        .unwrap_or_else(|_| {
            Err(expr::Error::ExprError(format!(
                "the expr-lang crate cannot evaluate {expression:?} (it panicked)"
            )))
        });
        data = evaluated.map_err(|source| StepError { step, source })?;
    }
    Ok(data)
}

/// Whether `step` is the first step with an expression (the one that sees the listing).
fn step_is_first(steps: &[TransformationStep], step: usize) -> bool {
    steps
        .iter()
        .position(|s| !s.expression.is_empty())
        .is_some_and(|first| first == step)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(expressions: &[&str]) -> Vec<TransformationStep> {
        expressions
            .iter()
            .map(|e| TransformationStep {
                expression: (*e).to_owned(),
                ..TransformationStep::default()
            })
            .collect()
    }

    fn keys(names: &[&str]) -> Value {
        listing_value(Some(names.iter().map(|s| (*s).to_owned()).collect()))
    }

    #[test]
    fn argos_example_filters_then_maps() {
        let data = keys(&["a/foo.csv", "a/bar.txt", "a/baz.csv"]);
        let out = transform(
            data,
            &steps(&[
                r#"filter(data, {# endsWith ".csv"})"#,
                "map(data, {upper(#)})",
            ]),
        )
        .unwrap();
        assert_eq!(out, keys(&["A/FOO.CSV", "A/BAZ.CSV"]));
    }

    #[test]
    fn a_nil_listing_is_an_empty_list_to_expressions() {
        let out = transform(Value::Nil, &steps(&["len(data)"])).unwrap();
        assert_eq!(out, Value::Integer(0));
        assert_eq!(transform(Value::Nil, &[]).unwrap(), Value::Nil);
    }

    #[test]
    fn errors_name_the_step() {
        let err = transform(keys(&["a"]), &steps(&["data", "filter(data,"])).unwrap_err();
        assert_eq!(err.step, 1);
        assert!(err.to_string().starts_with("error processing data step 1"));
        // A panic of the crate is the step's error.
        let err = transform(keys(&["a"]), &steps(&[r#"{"n": len(data)}"#])).unwrap_err();
        assert_eq!(err.step, 0);
    }
}
