//! `argoexec agent main`: the loop of Argo's `AgentExecutor.Agent`. The workflow's task set is
//! watched (no polling); each task is run once, at most `workers` at a time; results are merged
//! into `status.nodes` by merge patches at most one per `patch_rate`; the agent stops when the
//! task set is deleted or labelled `workflows.argoproj.io/completed=true`.
//!
//! Where it differs from Argo's, deliberately: a result is patched as soon as the rate allows
//! (Argo waits for the next tick of a ticker); a task whose node already has a finished result
//! in the status (an agent restarted before the controller took it) is not run again; pending
//! results are patched once more when the workflow completes (Argo drops them).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use argoexec_kube::{TaskSet, TaskSetEvent};
use argoexec_storage::Secrets;
use argoexec_template::{Template, TemplateKind};
use futures::StreamExt as _;
use kube::api::DynamicObject;
use serde_json::Value;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::http::HttpRunner;
use crate::model::NodeResult;

/// The label the controller sets on a finished workflow's task set.
pub const LABEL_COMPLETED: &str = "workflows.argoproj.io/completed";

/// How the agent runs.
#[derive(Debug, Clone, Copy)]
pub struct AgentOptions {
    /// Tasks run at once (`ARGO_AGENT_TASK_WORKERS`).
    pub workers: usize,
    /// The least time between two patches (`ARGO_AGENT_PATCH_RATE`).
    pub patch_rate: Duration,
}

/// Why the agent stopped without error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// The task set was deleted.
    Deleted,
    /// The workflow completed.
    Completed,
}

/// Why the agent stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The watch failed for good (403, the resource type missing).
    #[error("watch the task set")]
    Watch(#[source] argoexec_kube::Error),
    /// The watch ended (it never does by itself).
    #[error("the watch of {0} ended")]
    WatchEnded(String),
}

/// Runs the agent on `task_set` until it is deleted or completed.
pub async fn run<S: Secrets + 'static>(
    task_set: &TaskSet,
    runner: HttpRunner<S>,
    options: AgentOptions,
) -> Result<Stopped, AgentError> {
    tracing::info!(
        task_workers = options.workers,
        patch_rate = ?options.patch_rate,
        taskset = %task_set.target(),
        "Starting Agent"
    );
    let runner = Arc::new(runner);
    let permits = Arc::new(Semaphore::new(options.workers.max(1)));
    let mut considered = HashSet::new();
    let mut running: JoinSet<(String, NodeResult)> = JoinSet::new();
    let mut patcher = Patcher::new(options.patch_rate);
    let mut events = std::pin::pin!(task_set.watch());
    loop {
        let due = patcher.due();
        tokio::select! {
            event = events.next() => match event {
                None => return Err(AgentError::WatchEnded(task_set.target())),
                Some(Err(error)) => return Err(AgentError::Watch(error)),
                Some(Ok(TaskSetEvent::Deleted)) => {
                    tracing::info!("TaskSet deleted, stopping agent");
                    return Ok(Stopped::Deleted);
                }
                Some(Ok(TaskSetEvent::Applied(object))) => {
                    if is_completed(&object) {
                        tracing::info!("Workflow completed, stopping agent");
                        patcher.flush(task_set).await;
                        return Ok(Stopped::Completed);
                    }
                    for (node, template) in new_tasks(&object, &mut considered) {
                        let runner = runner.clone();
                        let permits = permits.clone();
                        running.spawn(async move {
                            // Never closed, so acquiring never fails; were it to, the task would
                            // only run unbounded.
                            let _permit = permits.acquire_owned().await.ok();
                            let result = execute(&runner, &node, template).await;
                            (node, result)
                        });
                    }
                }
            },
            Some(joined) = running.join_next(), if !running.is_empty() => match joined {
                Ok((node, result)) => {
                    tracing::info!(node, phase = %result.phase, message = %result.message, "Sending result");
                    patcher.add(node, result);
                }
                // A task that panicked has no node to report; the controller times it out.
                Err(error) => tracing::error!(%error, "Agent task ended abnormally"),
            },
            () = sleep_until(due), if due.is_some() => patcher.patch(task_set).await,
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due).await;
    }
}

/// Whether the task set carries `completed=true`.
fn is_completed(object: &DynamicObject) -> bool {
    object
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(LABEL_COMPLETED))
        .is_some_and(|v| v == "true")
}

/// The tasks of the spec not considered yet (and now considered), with their templates parsed;
/// a task whose node has a finished result in the status is skipped.
fn new_tasks(
    object: &DynamicObject,
    considered: &mut HashSet<String>,
) -> Vec<(String, Result<Template, String>)> {
    let tasks = object
        .data
        .pointer("/spec/tasks")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let finished = |node: &str| {
        let phase = object
            .data
            .pointer(&format!(
                "/status/nodes/{}/phase",
                node.replace('~', "~0").replace('/', "~1")
            ))
            .and_then(Value::as_str);
        matches!(phase, Some("Succeeded" | "Failed" | "Error"))
    };
    let mut new = Vec::new();
    for (node, template) in tasks {
        if !considered.insert(node.clone()) {
            continue;
        }
        if finished(&node) {
            tracing::info!(node, "Task already has a result");
            continue;
        }
        let template = serde_json::from_value::<Template>(template).map_err(|e| e.to_string());
        new.push((node, template));
    }
    new
}

/// Runs one task: an HTTP template; anything else fails with a message saying why.
#[tracing::instrument(skip(runner, template))]
async fn execute<S: Secrets>(
    runner: &HttpRunner<S>,
    node: &str,
    template: Result<Template, String>,
) -> NodeResult {
    tracing::info!("Processing task");
    let template = match template {
        Ok(template) => template,
        Err(error) => {
            return NodeResult::error(format!(
                "error processing task: the task's template is not a template: {error}"
            ));
        }
    };
    match (
        template.kind(),
        template.http.as_ref(),
        template.plugin.as_ref(),
    ) {
        (Some(TemplateKind::Http), Some(http), _) => runner.run(http).await,
        (Some(TemplateKind::Plugin), _, Some(plugin)) => NodeResult::failed(format!(
            "plugin template {:?}: argoexec-rs's agent does not run executor plugins; run this workflow's agent with Argo's own executor image to use them",
            plugin.name().unwrap_or_default()
        )),
        (kind, _, _) => NodeResult::error(format!(
            "error processing task: agent cannot execute: unknown task type: {}",
            kind.map_or("", TemplateKind::as_str)
        )),
    }
}

/// Results waiting to be patched, and when the next patch may go.
struct Patcher {
    rate: Duration,
    pending: BTreeMap<String, NodeResult>,
    last: Option<Instant>,
}

impl Patcher {
    fn new(rate: Duration) -> Self {
        Self {
            rate,
            pending: BTreeMap::new(),
            last: None,
        }
    }

    fn add(&mut self, node: String, result: NodeResult) {
        self.pending.insert(node, result);
    }

    /// When the next patch is due: none without results, else one rate after the last patch.
    fn due(&self) -> Option<Instant> {
        if self.pending.is_empty() {
            return None;
        }
        Some(self.last.map_or_else(Instant::now, |last| last + self.rate))
    }

    /// Patches the pending results. On a permanent failure, as Argo's agent, the results become
    /// errors saying so (their content likely caused it), to be patched next time; on a
    /// transient one they are kept for next time.
    async fn patch(&mut self, task_set: &TaskSet) {
        self.last = Some(Instant::now());
        let status = serde_json::json!({ "nodes": &self.pending });
        match task_set.patch_status(&status).await {
            Ok(()) => {
                tracing::info!(nodes = self.pending.len(), "Patched TaskSet");
                self.pending.clear();
            }
            Err(error) if error.is_transient() => {
                tracing::warn!(error = %argoexec_storage::chain(&error), "TaskSet patch failed, retrying later");
            }
            Err(error) => {
                let message = argoexec_storage::chain(&error);
                tracing::error!(error = %message, "TaskSet patch failed");
                for result in self.pending.values_mut() {
                    *result = NodeResult::error(format!(
                        "HTTP request completed successfully but an error occurred when patching its result: {message}"
                    ));
                }
            }
        }
    }

    /// One last patch of what is pending, if anything.
    async fn flush(&mut self, task_set: &TaskSet) {
        if !self.pending.is_empty() {
            self.patch(task_set).await;
        }
    }
}
