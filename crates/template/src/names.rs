//! The names Argo's controller and executor agree on: the annotations and labels of step pods and
//! task results. Every crate that reads or writes one takes its name from here.

/// The annotation holding the template in v2 pods.
pub const TEMPLATE_ANNOTATION: &str = "workflows.argoproj.io/template";
/// The annotation holding `{"deadline": RFC3339}` in v2 pods.
pub const EXECUTION_ANNOTATION: &str = "workflows.argoproj.io/execution";
/// Annotation holding the outputs JSON on the pod (v2; v3 fallback).
pub const ANNOTATION_OUTPUTS: &str = "workflows.argoproj.io/outputs";
/// Annotation holding the step's error message on the pod (v2).
pub const ANNOTATION_NODE_MESSAGE: &str = "workflows.argoproj.io/node-message";
/// Annotation holding the step's progress on the pod (v3 fallback).
pub const ANNOTATION_PROGRESS: &str = "workflows.argoproj.io/progress";
/// Annotation naming the step's node on the pod (v2, v3).
pub const ANNOTATION_NODE_ID: &str = "workflows.argoproj.io/node-id";
/// Label naming the workflow of a pod or a task result.
pub const LABEL_WORKFLOW: &str = "workflows.argoproj.io/workflow";
/// Label naming the controller instance of a task result.
pub const LABEL_INSTANCE_ID: &str = "workflows.argoproj.io/controller-instanceid";
/// Label of a v4 task result: `"false"` until every output is reported, then `"true"`.
pub const LABEL_REPORT_OUTPUTS_COMPLETED: &str = "workflows.argoproj.io/report-outputs-completed";
