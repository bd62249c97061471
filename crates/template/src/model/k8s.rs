//! `K8s<T>`: a `k8s-openapi` value that serializes back to the JSON it was read from.

use std::fmt;
use std::ops::{Deref, DerefMut};

use serde::de::{DeserializeOwned, Error as _};
use serde::ser::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

/// A Kubernetes value from `k8s-openapi` (a `Container`, a `Volume`, a `SecretKeySelector`...),
/// kept with the JSON it was read from so that it serializes back to exactly that JSON.
///
/// `k8s-openapi`'s types are not lossless, and templates hit all three of their quirks:
/// - they drop fields they do not know (newer Kubernetes fields, typos Argo tolerates);
/// - a `Quantity` written as a number (`cpu: 1`) is read as the string `"1"` and written back so;
/// - a required field that is absent is filled with a default and always written: a template's
///   `container` has no `name`, so it would come back with `"name": ""`.
///
/// `K8s<T>` derefs to the typed value. When serializing that value would not give back what was
/// read, the JSON as read is kept beside it and written instead. After a change through
/// `DerefMut`, the changed value is written, with the parts that did not change (and the fields
/// `k8s-openapi` does not know) taken from the JSON as read.
///
/// Two values are equal when their typed values are, whatever JSON they were read from.
#[derive(Clone, Default)]
pub struct K8s<T> {
    value: T,
    /// `Some` only when serializing `value` right after reading did not give back what was read.
    source: Option<Box<Source>>,
}

/// The two forms of a value that `k8s-openapi` does not round-trip.
#[derive(Clone)]
struct Source {
    /// The JSON as read.
    raw: Value,
    /// The JSON the typed value serialized to right after reading.
    typed: Value,
}

impl<T> K8s<T> {
    /// Wraps a value built in code; it serializes as `k8s-openapi` serializes it.
    pub fn new(value: T) -> Self {
        Self {
            value,
            source: None,
        }
    }

    /// The typed value, without the JSON it was read from.
    pub fn into_inner(self) -> T {
        self.value
    }
}

impl<T> From<T> for K8s<T> {
    fn from(value: T) -> Self {
        Self::new(value)
    }
}

impl<T> Deref for K8s<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for K8s<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: PartialEq> PartialEq for K8s<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<T: fmt::Debug> fmt::Debug for K8s<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<'de, T: DeserializeOwned + Serialize> Deserialize<'de> for K8s<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(deserializer)?;
        // The outer path tracker cannot see inside this second pass, so name the inner path in
        // the message: "resources.limits.cpu: invalid type: ...".
        let value: T = serde_path_to_error::deserialize(&raw).map_err(|err| {
            let path = err.path().to_string();
            let inner = err.into_inner();
            if path == "." {
                D::Error::custom(inner)
            } else {
                D::Error::custom(format_args!("{path}: {inner}"))
            }
        })?;
        let typed = serde_json::to_value(&value).map_err(D::Error::custom)?;
        let source = (typed != raw).then(|| Box::new(Source { raw, typed }));
        Ok(Self { value, source })
    }
}

impl<T: Serialize> Serialize for K8s<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let Some(source) = &self.source else {
            return self.value.serialize(serializer);
        };
        let now = serde_json::to_value(&self.value).map_err(S::Error::custom)?;
        restore(now, &source.typed, &source.raw).serialize(serializer)
    }
}

/// The JSON to write for a value that serializes to `now` today, serialized to `typed` right after
/// reading, and was read as `raw`: whatever did not change since reading is written as read.
fn restore(now: Value, typed: &Value, raw: &Value) -> Value {
    if now == *typed {
        return raw.clone();
    }
    match (now, typed, raw) {
        (Value::Object(mut now), Value::Object(typed), Value::Object(raw)) => {
            // A field the reader filled in with a default, still unchanged: leave it out again.
            now.retain(|key, value| raw.contains_key(key) || typed.get(key) != Some(value));
            for (key, value) in now.iter_mut() {
                if let (Some(typed), Some(raw)) = (typed.get(key), raw.get(key)) {
                    *value = restore(value.take(), typed, raw);
                }
            }
            // A field the reader dropped (unknown to k8s-openapi, or an explicit null): put it back.
            for (key, value) in raw {
                if !typed.contains_key(key) && !now.contains_key(key) {
                    now.insert(key.clone(), value.clone());
                }
            }
            Value::Object(now)
        }
        // Element by element only while the list has kept its length; a list that grew or shrank
        // is written as it is now.
        (Value::Array(now), Value::Array(typed), Value::Array(raw))
            if now.len() == typed.len() && typed.len() == raw.len() =>
        {
            let items = now.into_iter().zip(typed.iter().zip(raw));
            Value::Array(
                items
                    .map(|(now, (typed, raw))| restore(now, typed, raw))
                    .collect(),
            )
        }
        (now, _, _) => now,
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{Container, SecretKeySelector};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use serde_json::json;

    use super::*;

    fn round_trip<T: DeserializeOwned + Serialize>(input: &Value) -> Value {
        let value: K8s<T> = serde_json::from_value(input.clone()).unwrap();
        serde_json::to_value(&value).unwrap()
    }

    #[test]
    fn container_without_name_comes_back_without_name() {
        let input = json!({"image": "alpine", "command": ["sh"]});
        assert_eq!(round_trip::<Container>(&input), input);
    }

    #[test]
    fn quantity_written_as_number_stays_a_number() {
        let input = json!({"image": "a", "resources": {"requests": {"cpu": 1, "memory": "1Gi"}}});
        assert_eq!(round_trip::<Container>(&input), input);
    }

    #[test]
    fn fields_unknown_to_k8s_openapi_survive() {
        let input = json!({"image": "a", "futureField": {"x": 1}, "args": null});
        assert_eq!(round_trip::<Container>(&input), input);
    }

    #[test]
    fn unchanged_parts_are_kept_after_a_change() {
        let input = json!({
            "image": "a",
            "futureField": 1,
            "resources": {"limits": {"cpu": 2}},
        });
        let mut container: K8s<Container> = serde_json::from_value(input).unwrap();
        container.image = Some("b".into());
        assert_eq!(
            serde_json::to_value(&container).unwrap(),
            json!({"image": "b", "futureField": 1, "resources": {"limits": {"cpu": 2}}}),
        );

        let resources = container.resources.get_or_insert_default();
        let limits = resources.limits.get_or_insert_default();
        limits.insert("cpu".into(), Quantity("500m".into()));
        assert_eq!(
            serde_json::to_value(&container).unwrap(),
            json!({"image": "b", "futureField": 1, "resources": {"limits": {"cpu": "500m"}}}),
        );
    }

    #[test]
    fn a_default_set_on_purpose_is_written() {
        let mut selector: K8s<SecretKeySelector> =
            serde_json::from_value(json!({"key": "k"})).unwrap();
        selector.name = "creds".into();
        assert_eq!(
            serde_json::to_value(&selector).unwrap(),
            json!({"key": "k", "name": "creds"})
        );
    }

    #[test]
    fn equality_ignores_the_written_form() {
        let read: K8s<SecretKeySelector> =
            serde_json::from_value(json!({"key": "k", "name": "n", "extra": 1})).unwrap();
        let built = K8s::new(SecretKeySelector {
            key: "k".into(),
            name: "n".into(),
            optional: None,
        });
        assert_eq!(read, built);
    }

    #[test]
    fn a_value_built_in_code_serializes_plainly() {
        let selector = K8s::new(SecretKeySelector {
            key: "k".into(),
            name: "n".into(),
            optional: None,
        });
        assert_eq!(
            serde_json::to_value(&selector).unwrap(),
            json!({"key": "k", "name": "n"})
        );
    }

    #[test]
    fn errors_name_the_path_inside_the_value() {
        let err =
            serde_json::from_value::<K8s<Container>>(json!({"env": [{"name": "A", "value": 5}]}))
                .unwrap_err();
        assert!(
            err.to_string().starts_with("env[0].value: invalid type"),
            "{err}"
        );
    }
}
