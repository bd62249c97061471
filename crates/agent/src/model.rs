//! The fields of a `WorkflowTaskSet` the agent reads (`spec.tasks`) and writes
//! (`status.nodes`), in Argo's JSON (`workflow_taskset_types.go`, `NodeResult`).

use std::collections::BTreeMap;

use argoexec_template::Template;
use serde::{Deserialize, Serialize};

/// `spec`: the templates to run, by node ID.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSetSpec {
    /// Node ID to template.
    #[serde(default)]
    pub tasks: BTreeMap<String, Template>,
}

/// A node's result (Argo's `NodeResult`), as the agent patches it into `status.nodes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeResult {
    /// `Succeeded`, `Failed` or `Error`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phase: String,
    /// Why it did not succeed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    /// The response body, as `result`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outputs: Option<ResultOutputs>,
}

/// The outputs of an HTTP node: the response body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultOutputs {
    /// The response body.
    pub result: String,
}

impl NodeResult {
    /// Succeeded, with the response body.
    pub fn succeeded(body: String) -> Self {
        Self {
            phase: "Succeeded".into(),
            message: String::new(),
            outputs: Some(ResultOutputs { result: body }),
        }
    }

    /// Failed, with a message and the response body.
    pub fn failed_with_result(message: String, body: String) -> Self {
        Self {
            phase: "Failed".into(),
            message,
            outputs: Some(ResultOutputs { result: body }),
        }
    }

    /// Failed before any response.
    pub fn failed(message: String) -> Self {
        Self {
            phase: "Failed".into(),
            message,
            outputs: None,
        }
    }

    /// An error of the agent itself, not of the task.
    pub fn error(message: String) -> Self {
        Self {
            phase: "Error".into(),
            message,
            outputs: None,
        }
    }
}
