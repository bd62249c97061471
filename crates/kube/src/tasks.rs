//! The custom resources of the two pods that run no step: the artifact GC pod's
//! `WorkflowArtifactGCTask`s (listed by label, status merge-patched) and the agent pod's
//! `WorkflowTaskSet` (watched by name, status merge-patched).
//!
//! Objects travel as [`DynamicObject`]s: their schema is Argo's, and the crates that read them
//! (`argoexec-artifactgc`, `argoexec-agent`) own the few fields they need. Transient failures
//! are retried with the caller's [`Backoff`]; a watch that drops is resumed by kube-rs's
//! watcher, which lists once, then watches from the list's resourceVersion.

use futures::{Stream, StreamExt as _};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::{Value, json};

use crate::client::Kube;
use crate::error::{Error, is_transient};
use crate::retry::Backoff;

/// Argo's custom resource `kind` (in group `argoproj.io/v1alpha1`) with its plural.
fn resource(kind: &str, plural: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk("argoproj.io", "v1alpha1", kind);
    ApiResource::from_gvk_with_plural(&gvk, plural)
}

/// The `WorkflowArtifactGCTask`s of the pod's namespace.
#[derive(Clone)]
pub struct ArtifactGcTasks {
    api: Api<DynamicObject>,
    namespace: String,
    backoff: Backoff,
}

impl std::fmt::Debug for ArtifactGcTasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactGcTasks")
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl ArtifactGcTasks {
    /// The tasks of `kube`'s namespace, calls retried with `backoff`.
    pub fn new(kube: &Kube, backoff: Backoff) -> Self {
        let resource = resource("WorkflowArtifactGCTask", "workflowartifactgctasks");
        Self {
            api: Api::namespaced_with(kube.client().clone(), kube.namespace(), &resource),
            namespace: kube.namespace().to_owned(),
            backoff,
        }
    }

    /// The tasks whose labels match `selector` (`key = value`).
    #[tracing::instrument(skip(self), fields(namespace = %self.namespace))]
    pub async fn list(&self, selector: &str) -> Result<Vec<DynamicObject>, Error> {
        let target = format!(
            "workflowartifactgctasks in {} (labels {selector})",
            self.namespace
        );
        let params = ListParams::default().labels(selector);
        let list = self
            .backoff
            .run("list", &target, false, || self.api.list(&params))
            .await?;
        Ok(list.items)
    }

    /// Merge-patches task `name`'s status subresource with `status`.
    #[tracing::instrument(skip(self, status), fields(namespace = %self.namespace))]
    pub async fn patch_status(&self, name: &str, status: &Value) -> Result<(), Error> {
        let target = format!("workflowartifactgctask {}/{name} status", self.namespace);
        let patch = Patch::Merge(json!({ "status": status }));
        let params = PatchParams::default();
        self.backoff
            .run("patch", &target, true, || {
                self.api.patch_status(name, &params, &patch)
            })
            .await?;
        Ok(())
    }
}

/// What happened to the watched task set.
#[derive(Debug, Clone)]
pub enum TaskSetEvent {
    /// It exists, as it is now (created, changed, or seen when the watch (re)started).
    Applied(Box<DynamicObject>),
    /// It was deleted.
    Deleted,
}

/// The `WorkflowTaskSet` named after the workflow, in the pod's namespace.
#[derive(Clone)]
pub struct TaskSet {
    api: Api<DynamicObject>,
    name: String,
    namespace: String,
    backoff: Backoff,
}

impl std::fmt::Debug for TaskSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSet")
            .field("namespace", &self.namespace)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TaskSet {
    /// Task set `name` of `kube`'s namespace, patches retried with `backoff`.
    pub fn new(kube: &Kube, name: &str, backoff: Backoff) -> Self {
        let resource = resource("WorkflowTaskSet", "workflowtasksets");
        Self {
            api: Api::namespaced_with(kube.client().clone(), kube.namespace(), &resource),
            name: name.to_owned(),
            namespace: kube.namespace().to_owned(),
            backoff,
        }
    }

    /// `namespace/name`, for messages.
    pub fn target(&self) -> String {
        format!("workflowtaskset {}/{}", self.namespace, self.name)
    }

    /// The task set's changes, watched by `metadata.name` (as Argo's agent does), from its state
    /// now. kube-rs's watcher lists once (the agent's Role grants `list` and `watch`), then
    /// watches from there; a dropped watch is resumed and an expired resourceVersion starts
    /// afresh, paced by kube-rs's default backoff. Transient failures are logged and the watch
    /// goes on; any other (403, the resource type missing) is yielded as an error.
    pub fn watch(&self) -> impl Stream<Item = Result<TaskSetEvent, Error>> + Send + use<> {
        let config = watcher::Config::default().fields(&format!("metadata.name={}", self.name));
        let target = self.target();
        watcher::watcher(self.api.clone(), config)
            .default_backoff()
            .filter_map(move |event| {
                let target = target.clone();
                async move {
                    match event {
                        Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                            Some(Ok(TaskSetEvent::Applied(Box::new(object))))
                        }
                        Ok(watcher::Event::Delete(_)) => Some(Ok(TaskSetEvent::Deleted)),
                        Ok(watcher::Event::Init | watcher::Event::InitDone) => None,
                        Err(source) if watch_error_is_transient(&source) => {
                            tracing::warn!(%target, error = %source, "Watch interrupted, resuming");
                            None
                        }
                        Err(source) => Some(Err(Error::Watch {
                            target,
                            source: Box::new(source),
                        })),
                    }
                }
            })
    }

    /// Merge-patches the status subresource with `status`.
    #[tracing::instrument(skip(self, status), fields(taskset = %self.name))]
    pub async fn patch_status(&self, status: &Value) -> Result<(), Error> {
        let target = format!("{} status", self.target());
        let patch = Patch::Merge(json!({ "status": status }));
        let params = PatchParams::default();
        self.backoff
            .run("patch", &target, true, || {
                self.api.patch_status(&self.name, &params, &patch)
            })
            .await?;
        Ok(())
    }
}

/// Whether the watcher may get past `error` by itself: the server was busy or the connection
/// failed, or the resourceVersion expired (410: the watcher lists again).
fn watch_error_is_transient(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => is_transient(e, false),
        watcher::Error::WatchError(status) => {
            status.code >= 500 || status.code == 429 || status.code == 410
        }
        watcher::Error::NoResourceVersion => false,
    }
}
