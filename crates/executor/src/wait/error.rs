//! The failures of the wait sequence: one [`WaitError`] per failed step, [`SaveError`] for one
//! output that could not be stored, [`UploadError`] for one transfer attempt, which the retry
//! policy asks whether it is worth another.

use std::path::PathBuf;

use argoexec_storage::{RetryError, Retryable};

use crate::paths::PathError;
use crate::store::StoreError;

/// One failure of the wait sequence. The messages are Argo's where Argo has one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The deadline passed while main was running.
    #[error("Step exceeded its deadline")]
    Deadline,
    /// Wait was asked to stop (SIGTERM) while main was running.
    #[error("Step terminated")]
    Terminated,
    /// Waiting for a main container failed.
    #[error("failed to wait for main container to complete")]
    WaitMain(#[source] argoexec_runtime::Error),
    /// The script result could not be read.
    #[error("failed to capture script result")]
    CaptureResult(#[source] argoexec_runtime::Error),
    /// The script result is over the limit; it was not truncated.
    #[error(
        "the script result is {size} bytes, over the {limit}-byte limit of outputs.result; it was not saved (Argo would have kept only its end): write large output to a file and declare it an output artifact"
    )]
    ResultTooLarge {
        /// Bytes of stdout, one trailing newline stripped.
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// Reading the result stream failed.
    #[error("failed to capture script result")]
    ReadResult(#[source] std::io::Error),
    /// A container's logs could not be saved.
    #[error("failed to save logs of container {container}")]
    SaveLogs {
        /// The container.
        container: String,
        /// The cause.
        #[source]
        source: SaveError,
    },
    /// An output parameter could not be read and has no default.
    #[error("failed to save output parameter '{name}' from {path}")]
    SaveParameter {
        /// The parameter.
        name: String,
        /// Its `valueFrom.path`.
        path: String,
        /// The cause.
        #[source]
        source: argoexec_runtime::Error,
    },
    /// An output artifact's path is missing or escapes.
    #[error(transparent)]
    ArtifactPath(#[from] PathError),
    /// An output artifact could not be saved.
    #[error("failed to save artifact '{name}'")]
    SaveArtifact {
        /// The artifact.
        name: String,
        /// The cause.
        #[source]
        source: SaveError,
    },
    /// The outputs could not be reported.
    #[error("failed to report outputs")]
    Report(#[source] argoexec_report::ReportError),
}

/// Why one output could not be stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaveError {
    /// There is no artifact repository to put it in.
    #[error("{}", StoreError::NoRepository)]
    NoRepository,
    /// The repository's location cannot take a key.
    #[error("the archive location cannot hold the output: {0}")]
    Location(String),
    /// The source path is not in the container.
    #[error(transparent)]
    Runtime(#[from] argoexec_runtime::Error),
    /// The archive strategy is invalid (e.g. a compression level gzip does not know).
    #[error(transparent)]
    Pack(argoexec_archive::Error),
    /// The driver could not be set up (location, credentials).
    #[error(transparent)]
    Driver(argoexec_storage::Error),
    /// The transfer failed, after retries when the failure was transient.
    #[error(transparent)]
    Upload(#[from] RetryError<UploadError>),
}

impl From<StoreError> for SaveError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NoRepository => Self::NoRepository,
            StoreError::Location(e) => Self::Location(e.to_string()),
            StoreError::Driver(e) => Self::Driver(e),
        }
    }
}

/// One failed upload attempt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UploadError {
    /// The storage side failed.
    #[error(transparent)]
    Storage(#[from] argoexec_storage::Error),
    /// Packing the source failed.
    #[error(transparent)]
    Pack(argoexec_archive::Error),
    /// The runtime could not give the source (a container's path or logs) again.
    #[error(transparent)]
    Runtime(argoexec_runtime::Error),
    /// The runtime gave a path it had streamed before as a local path on a retry.
    #[error("read {}: expected a tar stream from the runtime", path.display())]
    NotTar {
        /// The local path the runtime gave.
        path: PathBuf,
    },
}

impl Retryable for UploadError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Storage(e) => e.is_transient(),
            Self::Runtime(e) => e.is_transient(),
            Self::Pack(_) | Self::NotTar { .. } => false,
        }
    }
}
