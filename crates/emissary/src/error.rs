//! Why the emissary failed.

use std::io;
use std::path::PathBuf;

/// The emissary's own failures. Each exits 64 (an executor error to Argo's controller), except a
/// failed dependency, whose code is passed on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or system operation failed.
    #[error("failed to {operation}")]
    Io {
        /// What was being done.
        operation: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A container this one depends on (containerSet `dependencies`) did not succeed.
    #[error("dependency {name:?} exited with non-zero code: {code}")]
    DependencyFailed {
        /// The dependency's name.
        name: String,
        /// Its exit code.
        code: i32,
    },
    /// The command could not be started.
    #[error("failed to start {program:?}")]
    Start {
        /// The program, as given.
        program: String,
        /// The cause (not found in PATH, not executable, ...).
        #[source]
        source: io::Error,
    },
    /// No command was given.
    #[error("no command to run: expected `argoexec emissary -- CMD [ARGS...]`")]
    NoCommand,
    /// The container set's `retryStrategy` is invalid.
    #[error("invalid containerSet retryStrategy: {0}")]
    Retry(String),
    /// An output could not be staged for the wait container.
    #[error("failed to stage output {} for the wait container", path.display())]
    Output {
        /// The output's path in this container.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// An I/O failure while doing `operation`.
    pub(crate) fn io(operation: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Self::Io {
            operation: operation.into(),
            source: source.into(),
        }
    }

    /// The exit code this failure gives the container (and writes to `exitcode`): 64, Argo's
    /// executor error, or a failed dependency's own code.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::DependencyFailed { code, .. } => *code,
            _ => 64,
        }
    }
}
