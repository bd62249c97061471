//! The manifest: one YAML or JSON document (an object, or for `mergeStrategy: json` a list of
//! patch operations), and the workflow's owner reference added to it.

use serde_json::{Value, json};

/// Why a manifest cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Not YAML or JSON.
    #[error("manifest is not valid YAML or JSON")]
    Parse(#[source] serde_yaml_ng::Error),
    /// More than one document.
    #[error("manifest holds {0} documents: a resource template acts on one")]
    Several(usize),
    /// An object without what the action needs.
    #[error("manifest: {0}")]
    Invalid(String),
}

/// Parses the manifest's text; `None` when it holds no document (only comments or blanks).
pub fn parse(text: &str) -> Result<Option<Value>, ManifestError> {
    let mut documents = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(text) {
        let value: Value =
            serde::Deserialize::deserialize(document).map_err(ManifestError::Parse)?;
        if !value.is_null() {
            documents.push(value);
        }
    }
    match documents.len() {
        0 => Ok(None),
        1 => Ok(documents.pop()),
        n => Err(ManifestError::Several(n)),
    }
}

/// The workflow as the owner of a resource: what Argo's controller adds to the manifest for
/// `setOwnerReference` (`metav1.NewControllerRef` of the Workflow).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// `ARGO_WORKFLOW_NAME`.
    pub name: String,
    /// `ARGO_WORKFLOW_UID`.
    pub uid: String,
}

/// Adds `owner` to the object's owner references, unless one with its UID is there already
/// (Argo's controller adds it to the manifest before the pod starts).
pub fn set_owner(object: &mut Value, owner: &Owner) -> Result<(), ManifestError> {
    let Some(object) = object.as_object_mut() else {
        return Err(ManifestError::Invalid(
            "setOwnerReference needs an object".into(),
        ));
    };
    let metadata = object
        .entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .ok_or_else(|| ManifestError::Invalid("metadata is not an object".into()))?;
    let references = metadata
        .entry("ownerReferences")
        .or_insert_with(|| json!([]));
    if references.is_null() {
        *references = json!([]);
    }
    let Some(references) = references.as_array_mut() else {
        return Err(ManifestError::Invalid(
            "metadata.ownerReferences is not a list".into(),
        ));
    };
    if references
        .iter()
        .any(|r| r.get("uid").and_then(Value::as_str) == Some(owner.uid.as_str()))
    {
        return Ok(());
    }
    references.push(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "name": owner.name,
        "uid": owner.uid,
        "controller": true,
        "blockOwnerDeletion": true,
    }));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_document_or_none() {
        let v = parse("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n").unwrap();
        assert_eq!(v.unwrap()["kind"], "ConfigMap");
        assert!(parse("# nothing\n").unwrap().is_none());
        assert!(parse("").unwrap().is_none());
        assert!(matches!(
            parse("a: 1\n---\nb: 2\n"),
            Err(ManifestError::Several(2))
        ));
        let patch = parse("- op: add\n  path: /data/x\n  value: y\n")
            .unwrap()
            .unwrap();
        assert!(patch.is_array());
    }

    #[test]
    fn owner_added_once() {
        let mut v = json!({"metadata": {"name": "a"}});
        let owner = Owner {
            name: "wf".into(),
            uid: "u-1".into(),
        };
        set_owner(&mut v, &owner).unwrap();
        set_owner(&mut v, &owner).unwrap();
        let refs = v["metadata"]["ownerReferences"].as_array().unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0]["controller"], true);
        assert_eq!(refs[0]["kind"], "Workflow");
    }
}
