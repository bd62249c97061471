//! The objects the fake server holds, one resourceVersion counter for all of them, and the history
//! of changes that a watch replays from a resourceVersion.

use std::collections::BTreeMap;

use serde_json::{Value, json};

/// A resource the server knows: its plural, API group and version, and kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resource {
    pub(crate) plural: &'static str,
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    pub(crate) kind: &'static str,
}

impl Resource {
    /// `v1` or `group/version`.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Every resource served.
pub(crate) const RESOURCES: &[Resource] = &[
    Resource {
        plural: "pods",
        group: "",
        version: "v1",
        kind: "Pod",
    },
    Resource {
        plural: "secrets",
        group: "",
        version: "v1",
        kind: "Secret",
    },
    Resource {
        plural: "configmaps",
        group: "",
        version: "v1",
        kind: "ConfigMap",
    },
    Resource {
        plural: "workflowtaskresults",
        group: "argoproj.io",
        version: "v1alpha1",
        kind: "WorkflowTaskResult",
    },
    Resource {
        plural: "workflows",
        group: "argoproj.io",
        version: "v1alpha1",
        kind: "Workflow",
    },
];

/// The resource named `plural` in `group`, if served.
pub(crate) fn resource(group: &str, plural: &str) -> Option<Resource> {
    RESOURCES
        .iter()
        .copied()
        .find(|r| r.group == group && r.plural == plural)
}

/// One change, as a watch sends it.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) resource_version: u64,
    pub(crate) plural: &'static str,
    pub(crate) namespace: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub(crate) kind: &'static str,
    pub(crate) object: Value,
}

type Key = (&'static str, String, String);

/// The objects, by (plural, namespace, name).
#[derive(Debug, Default)]
pub(crate) struct Store {
    resource_version: u64,
    uid: u64,
    objects: BTreeMap<Key, Value>,
    pub(crate) history: Vec<Change>,
}

/// Why a write was refused, as the API server says it.
#[derive(Debug)]
pub(crate) enum WriteError {
    NotFound,
    AlreadyExists,
    Conflict(String),
    Invalid(String),
}

impl Store {
    /// The current resourceVersion.
    pub(crate) fn resource_version(&self) -> u64 {
        self.resource_version
    }

    pub(crate) fn get(&self, plural: &'static str, ns: &str, name: &str) -> Option<&Value> {
        self.objects.get(&(plural, ns.to_owned(), name.to_owned()))
    }

    pub(crate) fn list(&self, plural: &'static str, ns: Option<&str>) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|((p, n, _), _)| *p == plural && ns.is_none_or(|ns| ns == n))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Creates the object; the server fills uid, resourceVersion and creationTimestamp.
    pub(crate) fn create(
        &mut self,
        resource: Resource,
        ns: &str,
        mut object: Value,
    ) -> Result<Change, WriteError> {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| WriteError::Invalid("metadata.name: Required value".into()))?
            .to_owned();
        let key = (resource.plural, ns.to_owned(), name);
        if self.objects.contains_key(&key) {
            return Err(WriteError::AlreadyExists);
        }
        self.uid += 1;
        object["apiVersion"] = json!(resource.api_version());
        object["kind"] = json!(resource.kind);
        let meta = &mut object["metadata"];
        meta["namespace"] = json!(ns);
        if meta.get("uid").is_none() {
            meta["uid"] = json!(format!("00000000-0000-0000-0000-{:012}", self.uid));
        }
        meta["creationTimestamp"] = json!(jiff::Timestamp::now().strftime("%FT%TZ").to_string());
        Ok(self.commit(key, "ADDED", object))
    }

    /// Replaces the object; a resourceVersion in `object` must be the current one.
    pub(crate) fn replace(
        &mut self,
        resource: Resource,
        ns: &str,
        name: &str,
        mut object: Value,
    ) -> Result<Change, WriteError> {
        let key = (resource.plural, ns.to_owned(), name.to_owned());
        let current = self.objects.get(&key).ok_or(WriteError::NotFound)?;
        if let Some(rv) = object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && Some(rv)
                != current
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
        {
            return Err(WriteError::Conflict(format!(
                "the object has been modified; please apply your changes to the latest version and try again (resourceVersion {rv} is stale)"
            )));
        }
        for field in ["uid", "creationTimestamp", "namespace", "name"] {
            object["metadata"][field] = current["metadata"][field].clone();
        }
        object["apiVersion"] = json!(resource.api_version());
        object["kind"] = json!(resource.kind);
        Ok(self.commit(key, "MODIFIED", object))
    }

    /// Applies a JSON merge patch (RFC 7386) to the object.
    pub(crate) fn merge_patch(
        &mut self,
        resource: Resource,
        ns: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Change, WriteError> {
        let key = (resource.plural, ns.to_owned(), name.to_owned());
        let mut object = self.objects.get(&key).ok_or(WriteError::NotFound)?.clone();
        merge(&mut object, patch);
        Ok(self.commit(key, "MODIFIED", object))
    }

    /// Changes the object in place (the test driving the pod's status).
    pub(crate) fn modify(
        &mut self,
        plural: &'static str,
        ns: &str,
        name: &str,
        change: impl FnOnce(&mut Value),
    ) -> Option<Change> {
        let key = (plural, ns.to_owned(), name.to_owned());
        let mut object = self.objects.get(&key)?.clone();
        change(&mut object);
        Some(self.commit(key, "MODIFIED", object))
    }

    pub(crate) fn delete(
        &mut self,
        plural: &'static str,
        ns: &str,
        name: &str,
    ) -> Result<Change, WriteError> {
        let key = (plural, ns.to_owned(), name.to_owned());
        let object = self.objects.remove(&key).ok_or(WriteError::NotFound)?;
        self.resource_version += 1;
        let change = Change {
            resource_version: self.resource_version,
            plural,
            namespace: ns.to_owned(),
            kind: "DELETED",
            object,
        };
        self.history.push(change.clone());
        Ok(change)
    }

    fn commit(&mut self, key: Key, kind: &'static str, mut object: Value) -> Change {
        self.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(self.resource_version.to_string());
        let change = Change {
            resource_version: self.resource_version,
            plural: key.0,
            namespace: key.1.clone(),
            kind,
            object: object.clone(),
        };
        self.objects.insert(key, object);
        self.history.push(change.clone());
        change
    }
}

/// RFC 7386: objects merge key by key, `null` deletes, anything else replaces.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Value::Object(target) = target {
        for (key, value) in patch {
            if value.is_null() {
                target.remove(key);
            } else {
                merge(target.entry(key.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

/// A field or label selector: `k=v`, `k==v`, `k!=v` and (labels) bare `k`, comma-separated.
#[derive(Debug, Default)]
pub(crate) struct Selector {
    terms: Vec<(String, Op)>,
}

#[derive(Debug)]
enum Op {
    Eq(String),
    Ne(String),
    Exists,
}

impl Selector {
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (key, op) = if let Some((k, v)) = term.split_once("!=") {
                (k, Op::Ne(v.to_owned()))
            } else if let Some((k, v)) = term.split_once("==") {
                (k, Op::Eq(v.to_owned()))
            } else if let Some((k, v)) = term.split_once('=') {
                (k, Op::Eq(v.to_owned()))
            } else if term.contains([' ', '(', '!']) {
                return Err(format!("unsupported selector term {term:?}"));
            } else {
                (term, Op::Exists)
            };
            terms.push((key.trim().to_owned(), op));
        }
        Ok(Self { terms })
    }

    /// Whether the labels match (label selector).
    pub(crate) fn matches_labels(&self, object: &Value) -> bool {
        let labels = object.pointer("/metadata/labels");
        self.terms.iter().all(|(key, op)| {
            let value = labels.and_then(|l| l.get(key)).and_then(Value::as_str);
            op.accepts(value)
        })
    }

    /// Whether the fields match (field selector: `metadata.name`, `metadata.namespace`, ...).
    pub(crate) fn matches_fields(&self, object: &Value) -> bool {
        self.terms.iter().all(|(key, op)| {
            let pointer = format!("/{}", key.replace('.', "/"));
            op.accepts(object.pointer(&pointer).and_then(Value::as_str))
        })
    }
}

impl Op {
    fn accepts(&self, value: Option<&str>) -> bool {
        match self {
            Self::Eq(want) => value == Some(want.as_str()),
            Self::Ne(want) => value != Some(want.as_str()),
            Self::Exists => value.is_some(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut target = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge(&mut target, &json!({"a": "z", "c": {"f": null}, "n": [1]}));
        assert_eq!(target, json!({"a": "z", "c": {"d": "e"}, "n": [1]}));
    }

    #[test]
    fn selectors_match_labels_and_fields() {
        let pod = json!({"metadata": {"name": "p", "labels": {"a": "1"}}});
        assert!(Selector::parse("a=1").unwrap().matches_labels(&pod));
        assert!(!Selector::parse("a!=1").unwrap().matches_labels(&pod));
        assert!(!Selector::parse("b").unwrap().matches_labels(&pod));
        assert!(
            Selector::parse("metadata.name=p")
                .unwrap()
                .matches_fields(&pod)
        );
        assert!(
            !Selector::parse("metadata.name=q")
                .unwrap()
                .matches_fields(&pod)
        );
    }
}
