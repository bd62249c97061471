//! Reporting a step's outputs: what wait tells the controller ([`StepReport`]), through a small
//! trait ([`Reporter`]).
//!
//! The wait sequence (`argoexec-executor`) reports through any [`Reporter`]; the Kubernetes
//! reporters live in `argoexec-kube`, which implements the trait without depending on the
//! executor. Here are the reporters that need no cluster: [`FileReporter`] writes the local report
//! of `argoexec run`, [`NoReporter`] only logs.

mod file;
mod reporter;

pub use file::FileReporter;
pub use reporter::{NoReporter, ReportError, Reporter, StepReport};
