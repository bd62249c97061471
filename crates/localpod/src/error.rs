//! Why a local pod could not run.

use std::path::PathBuf;

/// Why a local pod could not be set up or run. A container that runs and fails is not an error:
/// it is a result in the [`PodReport`](crate::PodReport).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory of the run could not be read, written or created.
    #[error("{what} {path}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// A system call on namespaces, mounts or processes failed.
    #[error("{what}")]
    Sys {
        /// What was being done, with the paths involved.
        what: String,
        /// The failure.
        #[source]
        source: nix::Error,
    },
    /// A process of the pod could not be started or watched.
    #[error("{what}")]
    Process {
        /// What was being done.
        what: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A volume of the pod cannot be provided locally.
    #[error("volume {volume}: {message}")]
    Volume {
        /// The volume's name.
        volume: String,
        /// What is wrong.
        message: String,
    },
    /// A container cannot be run as written.
    #[error("container {container}: {message}")]
    Container {
        /// The container's name.
        container: String,
        /// What is wrong.
        message: String,
    },
    /// The artifact repository given with `--artifact-repo` cannot be used.
    #[error("artifact repository {path}: {message}")]
    ArtifactRepository {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The Docker Engine refused or failed a request (`run --backend docker`).
    #[error("docker engine: {what}: {message}")]
    Docker {
        /// What was being done.
        what: String,
        /// The engine's answer.
        message: String,
    },
    /// The shim's container description could not be read or written.
    #[error("container spec {path}")]
    Spec {
        /// The spec file.
        path: PathBuf,
        /// The JSON failure.
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { what, path, source }
    }

    pub(crate) fn sys(what: impl Into<String>) -> impl FnOnce(nix::Error) -> Self {
        let what = what.into();
        move |source| Self::Sys { what, source }
    }
}
