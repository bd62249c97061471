//! Reporting outputs the way each controller generation reads them (contract §1, §5).
//!
//! - v2: merge-patch the pod's annotations `workflows.argoproj.io/outputs` (the outputs JSON) and
//!   `workflows.argoproj.io/node-message` (the first error).
//! - v3: a `WorkflowTaskResult` named after the node, owned by the pod: create, or merge-patch when
//!   it exists; on 403 (the role predates task results) the outputs annotation instead.
//! - v4: the same task result, owned by the Workflow and labelled
//!   `workflows.argoproj.io/report-outputs-completed`: created `"false"` before main runs
//!   ([`KubeReporter::start`]), set `"true"` once the outputs are in.
//!
//! The task result's body is Argo's `NodeResult` as its executor writes it: `outputs` and
//! `progress` (the error travels in the termination message and exit code).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use argoexec_report::{ReportError, Reporter, StepReport};
use argoexec_template::{
    ANNOTATION_NODE_MESSAGE, ANNOTATION_OUTPUTS, ANNOTATION_PROGRESS, LABEL_INSTANCE_ID,
    LABEL_REPORT_OUTPUTS_COMPLETED, LABEL_WORKFLOW, Protocol,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};

use crate::client::Kube;
use crate::error::Error;
use crate::retry::Backoff;

/// The names the controller gave the step (its `ARGO_*` variables).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    /// `ARGO_POD_NAME`.
    pub pod: String,
    /// `ARGO_POD_UID`: owner of a v3 task result.
    pub pod_uid: Option<String>,
    /// `ARGO_NODE_ID`: the task result's name.
    pub node_id: Option<String>,
    /// `ARGO_WORKFLOW_NAME`.
    pub workflow: Option<String>,
    /// `ARGO_WORKFLOW_UID`: owner of a v4 task result.
    pub workflow_uid: Option<String>,
    /// `ARGO_INSTANCE_ID`.
    pub instance_id: Option<String>,
}

/// Reports a step's outputs to the Kubernetes API, as the pod's protocol asks.
#[derive(Debug)]
pub struct KubeReporter {
    kube: Kube,
    protocol: Protocol,
    names: Names,
    backoff: Backoff,
    task_results: Api<DynamicObject>,
    resource: ApiResource,
    created: AtomicBool,
}

/// What an upsert of the task result ended in.
enum Upserted {
    Done,
    /// The API refused task results (403): v3 falls back to the pod annotation.
    Forbidden(Error),
}

impl KubeReporter {
    /// A reporter for a pod of `protocol`; v3 and v4 need the node ID and workflow name, v4 the
    /// workflow UID too.
    pub fn new(
        kube: Kube,
        protocol: Protocol,
        names: Names,
        backoff: Backoff,
    ) -> Result<Self, Error> {
        if protocol != Protocol::V2 {
            if names.node_id.is_none() {
                return Err(Error::Missing("ARGO_NODE_ID"));
            }
            if names.workflow.is_none() {
                return Err(Error::Missing("ARGO_WORKFLOW_NAME"));
            }
        }
        if protocol == Protocol::V4 && names.workflow_uid.is_none() {
            return Err(Error::Missing("ARGO_WORKFLOW_UID"));
        }
        let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", "WorkflowTaskResult");
        let resource = ApiResource::from_gvk_with_plural(&gvk, "workflowtaskresults");
        let task_results = Api::namespaced_with(kube.client().clone(), kube.namespace(), &resource);
        Ok(Self {
            kube,
            protocol,
            names,
            backoff,
            task_results,
            resource,
            created: AtomicBool::new(false),
        })
    }

    /// Before main runs. v4: creates the task result, `report-outputs-completed: "false"`, so the
    /// controller waits for the outputs; a refusal (403) is an error, as any other. Nothing for v2
    /// and v3.
    #[tracing::instrument(skip(self), fields(protocol = %self.protocol))]
    pub async fn start(&self) -> Result<(), Error> {
        if self.protocol == Protocol::V4
            && let Upserted::Forbidden(error) = self.upsert(&json!({})).await?
        {
            return Err(error);
        }
        Ok(())
    }

    /// Reports the outputs (and, v2, the error message).
    #[tracing::instrument(skip_all, fields(protocol = %self.protocol))]
    pub async fn report_outputs(&self, report: &StepReport) -> Result<(), Error> {
        let outputs = serde_json::to_value(&report.outputs).unwrap_or_default();
        let has_outputs = outputs.as_object().is_some_and(|o| !o.is_empty());
        match self.protocol {
            Protocol::V2 => {
                let mut annotations = serde_json::Map::new();
                if has_outputs {
                    annotations.insert(ANNOTATION_OUTPUTS.into(), json!(outputs.to_string()));
                }
                if let Some(message) = &report.message {
                    annotations.insert(ANNOTATION_NODE_MESSAGE.into(), json!(message));
                }
                if annotations.is_empty() {
                    return Ok(());
                }
                self.annotate(annotations).await
            }
            Protocol::V3 => {
                let mut body = serde_json::Map::new();
                if has_outputs {
                    body.insert("outputs".into(), outputs.clone());
                }
                if let Some(progress) = &report.progress {
                    body.insert("progress".into(), json!(progress));
                }
                if body.is_empty() {
                    return Ok(());
                }
                match self.upsert(&Value::Object(body)).await? {
                    Upserted::Done => Ok(()),
                    Upserted::Forbidden(error) => {
                        tracing::warn!(error = %error, "Failed to patch task result, falling back to legacy/insecure pod patch, see https://argo-workflows.readthedocs.io/en/latest/workflow-rbac/");
                        let mut annotations = serde_json::Map::new();
                        if has_outputs {
                            annotations
                                .insert(ANNOTATION_OUTPUTS.into(), json!(outputs.to_string()));
                        } else if let Some(progress) = &report.progress {
                            annotations.insert(ANNOTATION_PROGRESS.into(), json!(progress));
                        }
                        self.annotate(annotations).await
                    }
                }
            }
            Protocol::V4 => {
                let mut body = json!({"outputs": outputs});
                if let Some(progress) = &report.progress {
                    body["progress"] = json!(progress);
                }
                if let Upserted::Forbidden(error) = self.upsert(&body).await? {
                    return Err(error);
                }
                self.finalize().await
            }
        }
    }

    /// Reports progress (`N/M`) while main runs: v3 and v4 on the task result (v3 falls back to
    /// the progress annotation on 403); v2 pods have no progress.
    pub async fn report_progress(&self, progress: &str) -> Result<(), Error> {
        match self.protocol {
            Protocol::V2 => Ok(()),
            Protocol::V3 | Protocol::V4 => match self.upsert(&json!({"progress": progress})).await?
            {
                Upserted::Done => Ok(()),
                Upserted::Forbidden(error) if self.protocol == Protocol::V3 => {
                    tracing::debug!(error = %error, "Task results forbidden: progress goes to the pod annotation");
                    let mut annotations = serde_json::Map::new();
                    annotations.insert(ANNOTATION_PROGRESS.into(), json!(progress));
                    self.annotate(annotations).await
                }
                Upserted::Forbidden(error) => Err(error),
            },
        }
    }

    fn pod_target(&self) -> String {
        format!("pod {}/{}", self.kube.namespace(), self.names.pod)
    }

    fn result_target(&self) -> String {
        format!(
            "workflowtaskresult {}/{}",
            self.kube.namespace(),
            self.node_id()
        )
    }

    fn node_id(&self) -> &str {
        self.names.node_id.as_deref().unwrap_or_default()
    }

    /// Merge-patches annotations onto the pod.
    async fn annotate(&self, annotations: serde_json::Map<String, Value>) -> Result<(), Error> {
        let pods: Api<Pod> = Api::namespaced(self.kube.client().clone(), self.kube.namespace());
        let patch = Patch::Merge(json!({"metadata": {"annotations": annotations}}));
        let params = PatchParams::default();
        self.backoff
            .run("patch", &self.pod_target(), true, || {
                pods.patch(&self.names.pod, &params, &patch)
            })
            .await?;
        Ok(())
    }

    /// Argo's `upsertTaskResult`: create (AlreadyExists: patch), or once created patch (NotFound:
    /// create).
    async fn upsert(&self, body: &Value) -> Result<Upserted, Error> {
        let result = if self.created.load(Ordering::Acquire) {
            match self.patch_result(body).await {
                Err(e) if e.status() == Some(404) => self.create_result(body).await,
                other => other,
            }
        } else {
            match self.create_result(body).await {
                Err(e) if e.status() == Some(409) => {
                    self.created.store(true, Ordering::Release);
                    self.patch_result(body).await
                }
                other => other,
            }
        };
        match result {
            Ok(()) => Ok(Upserted::Done),
            Err(e) if e.status() == Some(403) => Ok(Upserted::Forbidden(e)),
            Err(e) => Err(e),
        }
    }

    async fn create_result(&self, body: &Value) -> Result<(), Error> {
        let mut object = DynamicObject::new(self.node_id(), &self.resource)
            .within(self.kube.namespace())
            .data(body.clone());
        let mut labels = std::collections::BTreeMap::new();
        labels.insert(
            LABEL_WORKFLOW.to_owned(),
            self.names.workflow.clone().unwrap_or_default(),
        );
        if let Some(id) = &self.names.instance_id {
            labels.insert(LABEL_INSTANCE_ID.to_owned(), id.clone());
        }
        let owner = match self.protocol {
            Protocol::V4 => {
                labels.insert(
                    LABEL_REPORT_OUTPUTS_COMPLETED.to_owned(),
                    "false".to_owned(),
                );
                OwnerReference {
                    api_version: "argoproj.io/v1alpha1".into(),
                    kind: "Workflow".into(),
                    name: self.names.workflow.clone().unwrap_or_default(),
                    uid: self.names.workflow_uid.clone().unwrap_or_default(),
                    ..OwnerReference::default()
                }
            }
            // Owned by the pod, so the result goes when the pod does. Argo v3.3.8 (and v3.4.0 to
            // v3.4.7) wrote `kind: "pods"`, the resource's plural: the garbage collector maps an
            // owner's apiVersion and kind through the REST mapper, finds no kind "pods", and
            // never collects the result (Argo fixed it to "Pod" in #11048, v3.4.8; v3.5 moved the
            // owner to the Workflow, as v4 below). "Pod" is the kind it resolves.
            _ => OwnerReference {
                api_version: "v1".into(),
                kind: "Pod".into(),
                name: self.names.pod.clone(),
                uid: self.names.pod_uid.clone().unwrap_or_default(),
                ..OwnerReference::default()
            },
        };
        object.metadata.labels = Some(labels);
        object.metadata.owner_references = Some(vec![owner]);
        let params = PostParams::default();
        self.backoff
            .run("create", &self.result_target(), false, || {
                self.task_results.create(&params, &object)
            })
            .await?;
        self.created.store(true, Ordering::Release);
        Ok(())
    }

    async fn patch_result(&self, body: &Value) -> Result<(), Error> {
        let patch = Patch::Merge(body);
        let params = PatchParams::default();
        self.backoff
            .run("patch", &self.result_target(), true, || {
                self.task_results.patch(self.node_id(), &params, &patch)
            })
            .await?;
        Ok(())
    }

    /// v4's `FinalizeOutput`: the label that tells the controller every output is in. Reporting
    /// outputs does it; a step that reports none (a resource step without output parameters, or
    /// one that failed) calls it alone.
    pub async fn finalize(&self) -> Result<(), Error> {
        let patch = json!({"metadata": {"labels": {LABEL_REPORT_OUTPUTS_COMPLETED: "true"}}});
        self.patch_result(&patch).await
    }
}

impl Reporter for KubeReporter {
    async fn report(&self, report: &StepReport) -> Result<(), ReportError> {
        self.report_outputs(report)
            .await
            .map_err(|e| ReportError::Backend(Box::new(e)))
    }
}

/// Watches the progress file while main runs (Argo's `monitorProgress`): reads its last line every
/// `file_tick`, and every `patch_tick` reports a new `N/M` through `reporter`. Never returns: it
/// runs until dropped.
pub async fn monitor_progress(
    reporter: &KubeReporter,
    file: PathBuf,
    file_tick: Duration,
    patch_tick: Duration,
) -> std::convert::Infallible {
    let mut read = tokio::time::interval(file_tick);
    let mut patch = tokio::time::interval_at(tokio::time::Instant::now() + patch_tick, patch_tick);
    let mut last_line = String::new();
    let mut pending: Option<String> = None;
    loop {
        tokio::select! {
            _ = read.tick() => {
                let Ok(text) = tokio::fs::read_to_string(&file).await else { continue };
                let Some(line) = text.lines().map(str::trim).rfind(|l| !l.is_empty()) else { continue };
                if line == last_line {
                    continue;
                }
                line.clone_into(&mut last_line);
                if is_progress(line) {
                    tracing::info!(progress = line, "Progress");
                    pending = Some(line.to_owned());
                } else {
                    tracing::info!(line, "Unable to parse progress");
                }
            }
            _ = patch.tick() => {
                let Some(progress) = pending.take() else { continue };
                if let Err(e) = reporter.report_progress(&progress).await {
                    tracing::info!(error = %argoexec_storage::chain(&e), "Failed to report progress");
                    pending = Some(progress);
                }
            }
        }
    }
}

/// Argo's progress form: `N/M`, whole numbers, N at most M.
fn is_progress(line: &str) -> bool {
    line.split_once('/').is_some_and(|(n, m)| {
        match (n.trim().parse::<u64>(), m.trim().parse::<u64>()) {
            (Ok(n), Ok(m)) => n <= m,
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::is_progress;

    #[test]
    fn progress_is_n_of_m() {
        assert!(is_progress("3/10"));
        assert!(!is_progress("11/10"));
        assert!(!is_progress("half"));
    }
}
