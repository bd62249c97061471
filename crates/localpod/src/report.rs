//! The pod's outcome: each container's end, the step's phase and message as Argo's controller
//! decides them, and the outputs the wait container reported.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;

use crate::plan::Role;

/// A step's outcome, as Argo would record the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Phase {
    /// Main (and wait) succeeded.
    Succeeded,
    /// An init container or main failed, or the pod exceeded its deadline.
    Failed,
    /// The executor (wait) failed.
    Error,
}

/// How one container ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerResult {
    /// The container's name.
    pub name: String,
    /// Its exit code (a signal N gives 128+N); none when it never ran.
    pub exit_code: Option<i32>,
    /// What it is in the pod.
    pub role: Role,
    /// Its termination message (`/dev/termination-log`), if it wrote one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_message: Option<String>,
    /// From the pod's start to the container's process existing.
    #[serde(skip)]
    pub started_after: Option<Duration>,
}

/// The pod's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct PodReport {
    /// The step's phase.
    pub phase: Phase,
    /// The exit code of the main container (the first main that failed, when there are several),
    /// as Argo records it in the node's `outputs.exitCode`; none when no main ran.
    #[serde(rename = "exitCode")]
    pub exit_code: Option<i32>,
    /// Why, when it did not succeed (or the reporter's message).
    pub message: Option<String>,
    /// Every container that ran, init containers first.
    pub containers: Vec<ContainerResult>,
    /// The outputs the wait container reported (Argo's `outputs` JSON), if it reported any.
    pub outputs: Option<Value>,
    /// Under `--api`, for v3 and v4 pods: the WorkflowTaskResult wait left on the API server, as
    /// it is there (for comparing executors).
    #[serde(rename = "taskResult", skip_serializing_if = "Option::is_none")]
    pub task_result: Option<Value>,
    /// What the runner had to do that kubelet would tell in events (sidecars killed, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl PodReport {
    /// A summary for people.
    pub fn render_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        // Writing to a String cannot fail.
        for c in &self.containers {
            let code = c
                .exit_code
                .map_or("never ran".to_owned(), |c| format!("exit code {c}"));
            let role = format!("{:?}", c.role).to_lowercase();
            let _ = writeln!(out, "{:<10} {role:<8} {code}", c.name);
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        let _ = writeln!(out, "phase: {:?}", self.phase);
        if let Some(message) = &self.message {
            let _ = writeln!(out, "message: {message}");
        }
        match &self.outputs {
            Some(outputs) => {
                let text = serde_json::to_string_pretty(outputs).unwrap_or_default();
                let _ = writeln!(out, "outputs: {text}");
            }
            None => {
                let _ = writeln!(out, "outputs: none reported");
            }
        }
        out
    }
}

/// Where the API's report carries the WorkflowTaskResult object it came from.
pub(crate) const TASK_RESULT_KEY: &str = "taskResult";

/// The reporter's JSON, if it wrote one.
pub(crate) fn read_report(path: &Path) -> Option<Value> {
    let text = std::fs::read(path).ok()?;
    match serde_json::from_slice(&text) {
        Ok(value) => Some(value),
        Err(err) => {
            tracing::warn!(path = %path.display(), %err, "Ignoring unreadable outputs report");
            None
        }
    }
}

/// A container's termination message (`/dev/termination-log`), if it wrote one.
pub(crate) fn read_termination_message(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Why the runner stopped the pod, and what it had to do.
#[derive(Debug, Default)]
pub(crate) struct Stopped {
    /// `activeDeadlineSeconds` passed.
    pub(crate) deadline_exceeded: bool,
    /// The runner got SIGTERM or SIGINT.
    pub(crate) interrupted: bool,
    /// What kubelet would tell in events.
    pub(crate) notes: Vec<String>,
}

/// The step's phase and message, as Argo's controller decides them from the pod.
pub(crate) fn conclude(
    containers: Vec<ContainerResult>,
    stopped: Stopped,
    report: Option<Value>,
) -> PodReport {
    let message_of = |c: &ContainerResult, code: i32| {
        c.termination_message
            .clone()
            .unwrap_or_else(|| format!("Error (exit code {code})"))
    };
    let reported = |key: &str| {
        report
            .as_ref()
            .and_then(|r| r.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let failed_init = containers
        .iter()
        .find(|c| c.role == Role::Init && c.exit_code != Some(0));
    let failed_main = containers
        .iter()
        .find(|c| c.role == Role::Main && c.exit_code.is_some_and(|code| code != 0));
    let failed_wait = containers
        .iter()
        .find(|c| c.role == Role::Wait && c.exit_code.is_some_and(|code| code != 0));
    let (phase, message) = if stopped.interrupted {
        (Phase::Failed, Some("interrupted".to_owned()))
    } else if stopped.deadline_exceeded {
        (
            Phase::Failed,
            Some("Pod was active on the node longer than the specified deadline".to_owned()),
        )
    } else if let Some(c) = failed_init {
        let code = c
            .exit_code
            .map_or("did not run".into(), |code| format!("exit code {code}"));
        let why = c
            .termination_message
            .clone()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        (
            Phase::Failed,
            Some(format!("init container {} failed ({code}){why}", c.name)),
        )
    } else if let Some(c) = failed_main {
        // main's own termination message first, then wait's (e.g. "Step exceeded its
        // deadline", which is why main was killed), then the exit code.
        let message = c
            .termination_message
            .clone()
            .or_else(|| reported("message"))
            .unwrap_or_else(|| message_of(c, c.exit_code.unwrap_or_default()));
        (Phase::Failed, Some(message))
    } else if let Some(c) = failed_wait {
        (
            Phase::Error,
            Some(message_of(c, c.exit_code.unwrap_or_default())),
        )
    } else {
        let phase = match reported("phase").as_deref() {
            Some("Failed") => Phase::Failed,
            Some("Error") => Phase::Error,
            _ => Phase::Succeeded,
        };
        (phase, reported("message"))
    };
    let exit_code = failed_main
        .or_else(|| containers.iter().find(|c| c.role == Role::Main))
        .and_then(|c| c.exit_code);
    let mut report = report;
    let task_result = report
        .as_mut()
        .and_then(|r| r.get_mut(TASK_RESULT_KEY).map(Value::take));
    PodReport {
        phase,
        exit_code,
        message,
        containers,
        task_result,
        outputs: report.and_then(|mut r| r.get_mut("outputs").map(Value::take)),
        notes: stopped.notes,
    }
}
