//! The trait every runtime implements, and its vocabulary.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;

/// A stream of bytes out of a container (a log, a tar of a path).
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitStatus {
    /// The exit code; a process killed by signal N counts as 128 + N, as shells and Kubernetes
    /// report it. `None` when the runtime saw the exit but cannot know the code (PNS watches a
    /// process that is not its child; the code then comes from the pod's status, if anywhere).
    pub code: Option<i32>,
}

impl ExitStatus {
    /// An exit with a known code.
    pub fn code(code: i32) -> Self {
        Self { code: Some(code) }
    }
}

/// What a kill did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillOutcome {
    /// The container had already exited: nothing was signalled.
    AlreadyExited,
    /// It exited within the grace period after SIGTERM.
    Terminated,
    /// It outlived the grace period and was sent SIGKILL.
    Killed,
}

/// Which output of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    /// Standard output only: the script result.
    Stdout,
    /// Standard output and standard error interleaved as written: the archived log.
    Combined,
}

/// A path of a container's filesystem, opened for reading or archiving.
pub enum PathSource {
    /// Readable from this process at this path (PNS: through the container's root held open).
    /// The path is only valid while the runtime that returned it lives.
    Local(PathBuf),
    /// A tar stream whose one top-level entry is the path's base name (docker's archive
    /// endpoint, `tar cf -` through exec).
    Tar(ByteStream),
    /// A gzip-compressed tar stream whose one top-level entry is the path's base name, packed the
    /// way `wait` packs an output with Argo's default strategy (`argoexec_archive::pack_to`,
    /// tar+gzip at level 6): for that strategy it is the artifact as is (the emissary's staged
    /// `.tgz`).
    TarGz(ByteStream),
}

impl std::fmt::Debug for PathSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local(path) => f.debug_tuple("Local").field(path).finish(),
            Self::Tar(_) => f.write_str("Tar(..)"),
            Self::TarGz(_) => f.write_str("TarGz(..)"),
        }
    }
}

/// Why a runtime call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No container of that name is (or was) in the pod.
    #[error("container {container:?} not found")]
    ContainerNotFound {
        /// The container's name.
        container: String,
    },
    /// The path does not exist in the container.
    #[error("path {} not found in container {container:?}", path.display())]
    PathNotFound {
        /// The container's name.
        container: String,
        /// The path inside the container.
        path: PathBuf,
    },
    /// This runtime cannot do that.
    #[error("the {runtime} runtime cannot {what}")]
    Unsupported {
        /// The runtime's name.
        runtime: &'static str,
        /// What was asked, as a verb phrase.
        what: &'static str,
    },
    /// The container was started but its process never ran (a missing or non-executable
    /// entrypoint); `message` is the engine's.
    #[error("container {container:?} could not start (exit code {code}): {message}")]
    StartFailed {
        /// The container's name.
        container: String,
        /// The exit code the engine recorded (127: not found, 126: not executable).
        code: i32,
        /// Why, as the engine put it.
        message: String,
    },
    /// The container's root filesystem is gone (it exited before its root was held).
    #[error("the filesystem of container {container:?} is no longer reachable")]
    RootGone {
        /// The container's name.
        container: String,
    },
    /// A call to the Kubernetes API server or the node's kubelet failed (the k8sapi and kubelet
    /// runtimes): the client's error, whole (an `argoexec_kube::Error`), so that
    /// [`is_transient`](Self::is_transient) can ask it.
    #[error(transparent)]
    Api(Box<dyn std::error::Error + Send + Sync>),
    /// A system call or file operation failed.
    #[error("{operation}")]
    Io {
        /// What was being done, e.g. `read /proc/42/environ`.
        operation: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// An I/O failure while doing `operation`.
    pub fn io(operation: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            operation: operation.into(),
            source,
        }
    }

    /// Whether the thing asked for does not exist (a missing optional output may be skipped).
    pub fn is_not_found(&self) -> bool {
        match self {
            Self::PathNotFound { .. } => true,
            Self::Io { source, .. } => source.kind() == io::ErrorKind::NotFound,
            _ => false,
        }
    }

    /// Whether the same call may succeed if made again: an I/O failure of a kind that passes (a
    /// connection refused, reset or cut short, a timeout, an interrupted call), or an API call
    /// that its client says may pass (a 5xx or 429 answer, a failed connection). A missing
    /// container or path, an unsupported call, a container that could not start, a root that is
    /// gone and an API call that was refused stay as they are.
    pub fn is_transient(&self) -> bool {
        use io::ErrorKind::*;
        let source = match self {
            Self::Io { source, .. } => source,
            Self::Api(source) => return api_is_transient(source.as_ref()),
            _ => return false,
        };
        // The kinds the storage retry policy retries (`argoexec_storage::is_transient_io`); storage
        // is no dependency of this crate, so the list is kept here too.
        matches!(
            source.kind(),
            ConnectionRefused
                | ConnectionReset
                | ConnectionAborted
                | NotConnected
                | BrokenPipe
                | TimedOut
                | UnexpectedEof
                | Interrupted
                | WouldBlock
                | HostUnreachable
                | NetworkUnreachable
                | NetworkDown
                | ResourceBusy
        )
    }
}

/// Whether a failed API call may pass: the Kubernetes client's error answers for itself. Any other
/// error (this build has no Kubernetes runtime) may not.
#[cfg(any(feature = "k8sapi", feature = "kubelet"))]
fn api_is_transient(error: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    error
        .downcast_ref::<argoexec_kube::Error>()
        .is_some_and(argoexec_kube::Error::is_transient)
}

#[cfg(not(any(feature = "k8sapi", feature = "kubelet")))]
fn api_is_transient(_: &(dyn std::error::Error + Send + Sync + 'static)) -> bool {
    false
}

/// What the wait sequence needs from a container runtime.
///
/// Required: [`name`](Self::name), [`containers`](Self::containers),
/// [`wait_started`](Self::wait_started), [`wait_exited`](Self::wait_exited), [`kill`](Self::kill),
/// [`open_path`](Self::open_path), [`logs`](Self::logs). [`read_file`](Self::read_file) has a
/// default built on `open_path`.
///
/// Every method is cancel-safe: dropping its future leaves the runtime usable.
pub trait ContainerRuntime: Send + Sync {
    /// The runtime's name as `ARGO_CONTAINER_RUNTIME_EXECUTOR` spells it (`pns`, `docker`, ...).
    fn name(&self) -> &'static str;

    /// The names of the pod's containers this runtime knows of (PNS: those seen so far).
    fn containers(&self) -> impl Future<Output = Result<Vec<String>, Error>> + Send;

    /// Resolves once `container` has started, and from then on keeps what later calls need (PNS
    /// holds the container's root open here, so a container that exits at once stays readable).
    fn wait_started(&self, container: &str) -> impl Future<Output = Result<(), Error>> + Send;

    /// Resolves when `container` has exited, with how. Reacts to the exit as an event (pidfd,
    /// watch, docker wait), not by polling.
    fn wait_exited(
        &self,
        container: &str,
    ) -> impl Future<Output = Result<ExitStatus, Error>> + Send;

    /// Sends SIGTERM to `container`, waits up to `grace` for it to exit, then sends SIGKILL and
    /// waits for the exit.
    fn kill(
        &self,
        container: &str,
        grace: Duration,
    ) -> impl Future<Output = Result<KillOutcome, Error>> + Send;

    /// Opens `path` (absolute, inside the container) for reading or archiving.
    fn open_path(
        &self,
        container: &str,
        path: &Path,
    ) -> impl Future<Output = Result<PathSource, Error>> + Send;

    /// Streams the whole of one of the container's outputs, from its start to its end; valid once
    /// the container has exited.
    fn logs(
        &self,
        container: &str,
        stream: LogStream,
    ) -> impl Future<Output = Result<ByteStream, Error>> + Send;

    /// Reads a whole file of the container (an output parameter).
    fn read_file(
        &self,
        container: &str,
        path: &Path,
    ) -> impl Future<Output = Result<Vec<u8>, Error>> + Send {
        async move {
            let local = match self.open_path(container, path).await? {
                PathSource::Local(local) => local,
                PathSource::Tar(_) | PathSource::TarGz(_) => {
                    return Err(Error::Unsupported {
                        runtime: self.name(),
                        what: "read a single file out of a tar stream",
                    });
                }
            };
            tokio::fs::read(&local).await.map_err(|source| {
                if source.kind() == io::ErrorKind::NotFound {
                    Error::PathNotFound {
                        container: container.to_owned(),
                        path: path.to_owned(),
                    }
                } else {
                    Error::io(format!("read {}", local.display()), source)
                }
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_io_failures_that_pass_are_transient() {
        let io = |kind| Error::io("read", io::Error::new(kind, "x"));
        assert!(io(io::ErrorKind::ConnectionReset).is_transient());
        assert!(io(io::ErrorKind::UnexpectedEof).is_transient());
        assert!(!io(io::ErrorKind::PermissionDenied).is_transient());
        assert!(!io(io::ErrorKind::Other).is_transient());
        let gone = Error::RootGone {
            container: "main".into(),
        };
        assert!(!gone.is_transient());
        // An API failure the Kubernetes client does not vouch for.
        assert!(!Error::Api("refused".into()).is_transient());
    }
}
