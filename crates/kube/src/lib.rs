//! Every call the executor makes to the Kubernetes API, through kube-rs.
//!
//! - [`connect`] builds the client as Argo's `argoexec` does: in-cluster service account, else
//!   `--kubeconfig` / `KUBECONFIG` / `~/.kube/config`, with kubectl-style flags on top
//!   ([`argoexec_config::KubeOverrides`]); the namespace is `--namespace`, else the config's.
//! - [`KubeReporter`] reports a step's outputs the way the pod's controller generation reads
//!   them: v2 pod annotations, v3 `WorkflowTaskResult` with a fallback to the annotation on 403,
//!   v4 `WorkflowTaskResult` owned by the Workflow with its `report-outputs-completed` label.
//!   Transient failures (5xx, 429, cut connections, and conflicts) are retried with a capped
//!   exponential backoff within a time budget. It implements [`argoexec_report::Reporter`].
//! - [`check_access`] asks the API server (SelfSubjectAccessReview) whether the service account
//!   may do what the reporter needs, so wait fails at start-up naming the verb and resource.
//! - [`PodWatch`] follows the executor's own pod with a watch (never polling, never listing: the
//!   Roles grant `get` and `watch`), resumed after a dropped stream, started afresh from the
//!   pod's current state after an expired resourceVersion.
//! - [`Kube::exec`] and [`Kube::container_log`]: `pods/exec` and `pods/log` of a container.
//! - [`KubeletClient`]: the node's kubelet over HTTPS (`/pods`, `/containerLogs`, `/exec`).
//! - [`ApiSecrets`] reads credentials through the API (v2 pods); [`AnySecrets`] chooses between
//!   it and the mounted files.
//! - [`ArtifactGcTasks`] and [`TaskSet`]: the artifact GC pod's `WorkflowArtifactGCTask`s (list,
//!   status patch) and the agent pod's `WorkflowTaskSet` (watch, status patch).
//!
//! The `k8sapi` and `kubelet` container runtimes are built on `PodWatch`, `Kube::exec`,
//! `Kube::container_log` and `KubeletClient` in `argoexec-runtime`; this crate knows nothing of
//! runtimes. The annotation and label names are `argoexec-template`'s.

mod access;
mod client;
mod container;
mod error;
mod kubelet;
mod pod;
mod report;
mod retry;
mod secrets;
mod tasks;

pub use access::{Access, check_access, check_access_for, required_access, runtime_access};
pub use client::{Kube, connect};
pub use container::ContainerLog;
pub use error::Error;
pub use kube::api::AttachedProcess;
pub use kubelet::{KubeletClient, KubeletOptions};
pub use pod::PodWatch;
pub use report::{KubeReporter, Names, monitor_progress};
pub use retry::Backoff;
pub use secrets::{AnySecrets, ApiSecrets};
pub use tasks::{ArtifactGcTasks, TaskSet, TaskSetEvent};
