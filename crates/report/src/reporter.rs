//! The report, the trait every reporter implements, and the reporter that only logs.

use std::future::Future;
use std::path::PathBuf;

use argoexec_template::Outputs;
use serde::Serialize;

/// What wait reports at the end of a step, in Argo's shape (the body of a `WorkflowTaskResult`:
/// `outputs`, `message`, `progress`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StepReport {
    /// The template's outputs with their values filled in, plus the log artifacts. Artifacts
    /// carry `sha256` and `size` of the bytes stored, an extension Argo ignores.
    pub outputs: Outputs,
    /// The first error of the step, if any (Argo's node message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The last `N/M` line of the progress file, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
}

/// Why a report could not be delivered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReportError {
    /// Writing the report failed.
    #[error("write report to {}", path.display())]
    Write {
        /// Where.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Serialising the report failed.
    #[error("serialise the report")]
    Serialise(#[source] serde_json::Error),
    /// The reporter's backend refused or failed (e.g. the Kubernetes API). The backend's own
    /// error, whole: a caller may downcast it to ask what failed.
    #[error(transparent)]
    Backend(Box<dyn std::error::Error + Send + Sync>),
}

/// Where outputs go. Required: [`report`](Self::report).
pub trait Reporter: Send + Sync {
    /// Delivers the report; called once the outputs are saved, and may be called again with a
    /// later, fuller report (the last call wins).
    fn report(&self, report: &StepReport) -> impl Future<Output = Result<(), ReportError>> + Send;
}

/// A reporter that drops reports, for a wait that has nowhere to report (it logs why).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoReporter;

impl Reporter for NoReporter {
    async fn report(&self, report: &StepReport) -> Result<(), ReportError> {
        tracing::warn!(
            outputs = %serde_json::to_string(&report.outputs).unwrap_or_default(),
            "No reporter is configured: outputs are only logged"
        );
        Ok(())
    }
}
