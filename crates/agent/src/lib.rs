//! The agent pod of HTTP (and executor plugin) templates: `argoexec agent init` and `argoexec
//! agent main` (Argo's `cmd/argoexec/commands/agent.go`, `workflow/executor/agent.go`).
//!
//! Argo's controller runs one agent pod per workflow that has HTTP or plugin templates, and
//! writes those templates into the workflow's `WorkflowTaskSet` (`spec.tasks`, by node ID).
//!
//! - `agent init` ([`write_tokens`]) writes a token per executor plugin
//!   (`/var/run/argo/<plugin>/token`) for the plugin sidecars.
//! - `agent main` ([`run`]) watches the task set, runs each task once with at most
//!   `ARGO_AGENT_TASK_WORKERS` at a time ([`HttpRunner`]: the request, then `successCondition`
//!   through [`evaluate`], the `expr-lang` crate), and merge-patches the results into
//!   `status.nodes` at most once per `ARGO_AGENT_PATCH_RATE`, until the task set is deleted or
//!   labelled completed.
//!
//! Executor plugins are not run: a plugin template fails with a message naming the plugin.

mod agent;
mod condition;
mod http;
mod model;
mod token;

pub use agent::{AgentError, AgentOptions, LABEL_COMPLETED, Stopped, run};
pub use condition::{ConditionError, RequestScope, ResponseScope, canonical_header_key, evaluate};
pub use http::{ClientError, HttpRunner};
pub use model::{NodeResult, ResultOutputs, TaskSetSpec};
pub use token::{TokenError, token_path, write_tokens};
