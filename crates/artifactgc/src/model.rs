//! The fields of a `WorkflowArtifactGCTask` the GC pod reads (`spec`) and writes (`status`), in
//! Argo's JSON (`pkg/apis/workflow/v1alpha1/artifact_gc_task_types.go`).

use std::collections::BTreeMap;

use argoexec_template::{Artifact, ArtifactLocation};
use serde::{Deserialize, Serialize};

/// `spec`: the artifacts to delete, by node ID.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GcSpec {
    /// Node ID to that node's artifacts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub artifacts_by_node: BTreeMap<String, NodeArtifacts>,
}

/// One node's artifacts (Argo's `ArtifactNodeSpec`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeArtifacts {
    /// The template's `archiveLocation`, which completes an artifact that names only its key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_location: Option<ArtifactLocation>,
    /// Artifact name to artifact.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub artifacts: BTreeMap<String, Artifact>,
}

/// `status`: what became of each artifact, by node ID.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GcStatus {
    /// Node ID to that node's results.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub artifact_results_by_node: BTreeMap<String, NodeResults>,
}

/// One node's results (Argo's `ArtifactResultNodeStatus`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeResults {
    /// Artifact name to its result.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub artifact_results: BTreeMap<String, ArtifactResult>,
}

/// What became of one artifact (Argo's `ArtifactResult`). As in Argo's JSON, `success` is left
/// out when false.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactResult {
    /// The artifact's name.
    pub name: String,
    /// Whether it was deleted (or was gone already).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub success: bool,
    /// Why it was not, when it was not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ArtifactResult {
    /// A deleted artifact.
    pub fn deleted(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            success: true,
            error: None,
        }
    }

    /// An artifact that could not be deleted, and why.
    pub fn failed(name: &str, error: String) -> Self {
        Self {
            name: name.to_owned(),
            success: false,
            error: Some(error),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn spec_reads_argos_json_and_status_writes_it() {
        let spec: GcSpec = serde_json::from_value(json!({"artifactsByNode": {"wf-1": {
            "archiveLocation": {"s3": {"bucket": "b", "endpoint": "e:9000"}},
            "artifacts": {"out": {"name": "out", "path": "/tmp/x", "s3": {"key": "k.tgz"}}}
        }}}))
        .unwrap();
        let node = &spec.artifacts_by_node["wf-1"];
        assert_eq!(node.artifacts["out"].location.key(), Some("k.tgz"));
        assert!(node.archive_location.as_ref().unwrap().s3.is_some());
        let mut results = NodeResults::default();
        results
            .artifact_results
            .insert("a".into(), ArtifactResult::deleted("a"));
        results
            .artifact_results
            .insert("b".into(), ArtifactResult::failed("b", "denied".into()));
        let status = GcStatus {
            artifact_results_by_node: [("wf-1".to_owned(), results)].into(),
        };
        assert_eq!(
            serde_json::to_value(&status).unwrap(),
            json!({"artifactResultsByNode": {"wf-1": {"artifactResults": {
                "a": {"name": "a", "success": true},
                "b": {"name": "b", "error": "denied"},
            }}}})
        );
    }
}
