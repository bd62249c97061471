//! The artifact garbage collection pod: `argoexec artifact delete` (Argo's
//! `cmd/argoexec/commands/artifact/delete.go`).
//!
//! Argo's controller creates the pod with `ARGO_ARTIFACT_POD_NAME` set, and one or more
//! `WorkflowArtifactGCTask`s labelled `workflows.argoproj.io/artifact-gc-pod=<that value>`, each
//! listing artifacts by node (`spec.artifactsByNode`). [`run`] lists those tasks, deletes their
//! artifacts through the storage drivers ([`Deleter`]) and merge-patches each task's
//! `status.artifactResultsByNode` with one result per artifact, which the controller reads to
//! mark the artifacts deleted (or to raise an `ArtifactGCError` condition).
//!
//! As in Argo: a missing object counts as deleted; a failed delete is reported in the task's
//! status, not by the exit code; the secrets are the files mounted at `/argo/secret`. Unlike
//! Argo, which deletes one artifact after another and stops at the first artifact it cannot
//! open (without reporting any), deletions run `parallelism` at once across every task, and
//! every failure (including an artifact plugin's artifact, which this executor does not run)
//! becomes that artifact's result.

mod delete;
mod model;

pub use delete::{DeleteError, Deleter, GcOptions};
pub use model::{ArtifactResult, GcSpec, GcStatus, NodeArtifacts, NodeResults};

use argoexec_kube::ArtifactGcTasks;
use argoexec_storage::Secrets;
use kube::api::DynamicObject;

/// The label that ties a task to its GC pod (`common.LabelKeyArtifactGCPodHash`).
pub const LABEL_ARTIFACT_GC_POD: &str = "workflows.argoproj.io/artifact-gc-pod";

/// Why the pod could not do or report its work.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The tasks could not be listed.
    #[error("list the WorkflowArtifactGCTasks labelled {selector}")]
    List {
        /// The label selector.
        selector: String,
        /// Why.
        #[source]
        source: argoexec_kube::Error,
    },
    /// A task's spec is not Argo's.
    #[error("read WorkflowArtifactGCTask {name}: its spec is not a WorkflowArtifactGCTask's")]
    Spec {
        /// The task.
        name: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// A task's status could not be patched.
    #[error("report the results of WorkflowArtifactGCTask {name}")]
    Patch {
        /// The task.
        name: String,
        /// Why.
        #[source]
        source: argoexec_kube::Error,
    },
}

/// What the pod did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Summary {
    /// Tasks found.
    pub tasks: usize,
    /// Artifacts deleted (or gone already).
    pub deleted: usize,
    /// Artifacts not deleted (each with its error in its task's status).
    pub failed: usize,
}

/// Lists the tasks labelled [`LABEL_ARTIFACT_GC_POD`]`=label`, deletes their artifacts with
/// `deleter` and patches each task's status. Every task is worked on, whatever happens to the
/// others; the first failure to read or report one is returned at the end.
#[tracing::instrument(skip(tasks, deleter))]
pub async fn run<S: Secrets>(
    tasks: &ArtifactGcTasks,
    label: &str,
    deleter: &Deleter<S>,
) -> Result<Summary, Error> {
    let selector = format!("{LABEL_ARTIFACT_GC_POD} = {label}");
    let found = tasks.list(&selector).await.map_err(|source| Error::List {
        selector: selector.clone(),
        source,
    })?;
    tracing::info!(
        tasks = found.len(),
        selector,
        "Found WorkflowArtifactGCTasks"
    );
    let done = futures::future::join_all(found.iter().map(|task| one_task(tasks, task, deleter)));
    let mut summary = Summary {
        tasks: found.len(),
        ..Summary::default()
    };
    let mut first_error = None;
    for outcome in done.await {
        match outcome {
            Ok((deleted, failed)) => {
                summary.deleted += deleted;
                summary.failed += failed;
            }
            Err(error) => {
                tracing::error!(error = %argoexec_storage::chain(&error), "WorkflowArtifactGCTask not done");
                first_error.get_or_insert(error);
            }
        }
    }
    match first_error {
        Some(error) => Err(error),
        None => Ok(summary),
    }
}

/// Deletes one task's artifacts and reports them; returns how many were deleted and not.
async fn one_task<S: Secrets>(
    tasks: &ArtifactGcTasks,
    task: &DynamicObject,
    deleter: &Deleter<S>,
) -> Result<(usize, usize), Error> {
    let name = task.metadata.name.clone().unwrap_or_default();
    let spec = task.data.get("spec").cloned().unwrap_or_default();
    let spec: GcSpec = if spec.is_null() {
        GcSpec::default()
    } else {
        serde_json::from_value(spec).map_err(|source| Error::Spec {
            name: name.clone(),
            source,
        })?
    };
    let status = deleter.delete_task(&name, &spec).await;
    let results = status
        .artifact_results_by_node
        .values()
        .flat_map(|node| node.artifact_results.values());
    let (deleted, failed) = results.fold((0, 0), |(ok, bad), r| {
        if r.success {
            (ok + 1, bad)
        } else {
            (ok, bad + 1)
        }
    });
    // The whole status, as Argo's executor writes it: results for every node of the spec.
    let body = serde_json::to_value(&status).unwrap_or_default();
    tasks
        .patch_status(&name, &body)
        .await
        .map_err(|source| Error::Patch {
            name: name.clone(),
            source,
        })?;
    tracing::info!(task = %name, deleted, failed, "WorkflowArtifactGCTask status patched");
    Ok((deleted, failed))
}
