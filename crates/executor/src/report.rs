//! Reporting a step's outputs: what wait tells the controller, through a small trait. The local
//! reporter (for `argoexec run`) writes a file; the Kubernetes reporters live in the kube crate.

use std::future::Future;
use std::path::{Path, PathBuf};

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
    /// The reporter's backend refused or failed (e.g. the Kubernetes API).
    #[error("{0}")]
    Backend(String),
}

/// Where outputs go. Required: [`report`](Self::report).
pub trait Reporter: Send + Sync {
    /// Delivers the report; called once the outputs are saved, and may be called again with a
    /// later, fuller report (the last call wins).
    fn report(&self, report: &StepReport) -> impl Future<Output = Result<(), ReportError>> + Send;
}

/// Writes the report as JSON to a file, whole or not at all (`ARGOEXEC_REPORT_FILE`, set by
/// `argoexec run`).
#[derive(Debug, Clone)]
pub struct FileReporter {
    path: PathBuf,
}

impl FileReporter {
    /// A reporter writing to `path`.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Self {
            path: path.as_ref().to_owned(),
        }
    }
}

impl Reporter for FileReporter {
    async fn report(&self, report: &StepReport) -> Result<(), ReportError> {
        let json = serde_json::to_vec_pretty(report).map_err(ReportError::Serialise)?;
        let body = futures::stream::iter([Ok(bytes::Bytes::from(json))]);
        argoexec_storage::write_whole(Box::pin(body), &self.path)
            .await
            .map_err(|source| ReportError::Write {
                path: self.path.clone(),
                source,
            })
    }
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
