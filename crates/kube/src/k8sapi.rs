//! The `k8sapi` runtime: containers seen only through the Kubernetes API, as Argo's
//! `workflow/executor/k8sapi` sees them.
//!
//! - Waits follow the pod with a watch ([`PodWatch`]): a container has exited when its status is
//!   `terminated` (the exit code is `state.terminated.exitCode`), or when the pod's reason is
//!   `DeadlineExceeded`.
//! - Paths are copied out by `pods/exec` of `tar cf - -C <dir> <base>` in the container, streamed.
//! - Kills are `pods/exec` of `/bin/sh -c "kill -15 1"`, then `kill -9 1` after the grace.
//! - Logs come from `pods/log`. The API serves stdout and stderr interleaved only, so
//!   [`LogStream::Stdout`] gets the combined log as well (Argo does the same, with a warning).
//!
//! The main image must therefore hold `sh` and `tar`; an exec that cannot find them fails naming
//! the container and the missing program. Like Argo, kills are refused in pods that share a
//! process namespace or the host's (PID 1 would not be the container's process).

use std::io;
use std::path::Path;
use std::time::Duration;

use argoexec_runtime::{
    ByteStream, ContainerRuntime, Error, ExitStatus, KillOutcome, LogStream, PathSource,
};
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{ContainerState, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::api::{Api, AttachParams, LogParams};
use tokio::io::AsyncReadExt as _;
use tokio_util::compat::FuturesAsyncReadCompatExt as _;
use tokio_util::io::ReaderStream;

use crate::client::Kube;
use crate::pod::PodWatch;
use crate::retry::Backoff;

/// The pod's reason once its `activeDeadlineSeconds` passed.
const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
/// At most this much of a failed command's stderr goes into its error.
pub(crate) const STDERR_LIMIT: usize = 4096;
/// What the images must hold, for errors.
const NEEDS: &str = "the k8sapi runtime needs `sh` and `tar` in every container it reads or kills";

/// The `k8sapi` runtime for one pod.
#[derive(Debug, Clone)]
pub struct K8sApi {
    api: Api<Pod>,
    pod: String,
    watch: PodWatch,
}

impl K8sApi {
    /// The runtime for pod `pod` of the client's namespace; `backoff` retries its GETs.
    pub fn new(kube: &Kube, pod: &str, backoff: Backoff) -> Self {
        Self {
            api: Api::namespaced(kube.client().clone(), kube.namespace()),
            pod: pod.to_owned(),
            watch: PodWatch::new(kube, pod, backoff),
        }
    }

    async fn get(&self) -> Result<Pod, Error> {
        self.watch
            .get()
            .await
            .map_err(|e| Error::io(format!("get pod {}", self.pod), io::Error::other(e)))
    }

    /// Waits until `done` holds for `container`'s state (`None` until it has one), or the pod
    /// passed its deadline.
    async fn wait_state(
        &self,
        container: &str,
        mut done: impl FnMut(Option<&ContainerState>) -> bool,
    ) -> Result<Pod, Error> {
        let mut missing = false;
        let pod = self
            .watch
            .wait_until(|pod| {
                if !in_spec(pod, container) {
                    missing = true;
                    return true;
                }
                deadline_exceeded(pod) || done(state(pod, container))
            })
            .await
            .map_err(|e| Error::io(format!("watch pod {}", self.pod), io::Error::other(e)))?;
        if missing {
            return Err(Error::ContainerNotFound {
                container: container.to_owned(),
            });
        }
        Ok(pod)
    }

    /// Runs `argv` in `container`, returning its stdout as a stream that ends with an error if the
    /// command failed, once the first bytes (or the end) arrived: a command that could not start
    /// or failed at once fails here, with its stderr.
    async fn exec_stream(&self, container: &str, argv: Vec<String>) -> Result<ByteStream, Error> {
        let what = format!(
            "exec {:?} in container {container:?} of pod {}",
            argv, self.pod
        );
        let params = AttachParams::default()
            .container(container)
            .stdout(true)
            .stderr(true);
        let mut process = self
            .api
            .exec(&self.pod, argv.clone(), &params)
            .await
            .map_err(|e| Error::io(what.clone(), io::Error::other(e)))?;
        let (Some(stdout), Some(mut stderr), Some(status)) =
            (process.stdout(), process.stderr(), process.take_status())
        else {
            return Err(Error::io(what, io::Error::other("the exec has no stdout")));
        };
        // Drained beside stdout, so that a chatty stderr never blocks the stream.
        let stderr = tokio::spawn(async move {
            let mut text = Vec::new();
            let _ = (&mut stderr)
                .take(STDERR_LIMIT as u64)
                .read_to_end(&mut text)
                .await;
            let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
            String::from_utf8_lossy(&text).trim().to_owned()
        });
        let mut stdout = ReaderStream::new(stdout);
        let first = stdout.next().await;
        let outcome = {
            let container = container.to_owned();
            let program = argv.first().cloned().unwrap_or_default();
            async move {
                let status = status.await;
                let stderr = stderr.await.unwrap_or_default();
                // Keep the process (and its background task) until the status is in.
                drop(process);
                check(&container, &program, status, &stderr, NEEDS)
            }
        };
        match first {
            None => {
                outcome.await?;
                Ok(futures::stream::empty().boxed())
            }
            Some(Err(e)) => Err(Error::io(what, e)),
            // Nothing but zeros: an empty archive's end marker, what tar writes when the path is
            // missing. The rest is padding; the status says whether the command failed.
            Some(Ok(bytes)) if bytes.iter().all(|b| *b == 0) => {
                let mut all = bytes.to_vec();
                while let Some(chunk) = stdout.next().await {
                    all.extend_from_slice(&chunk.map_err(|e| Error::io(what.clone(), e))?);
                }
                outcome.await?;
                Ok(futures::stream::once(async move { Ok(Bytes::from(all)) }).boxed())
            }
            Some(Ok(bytes)) => {
                let end = futures::stream::once(outcome).filter_map(|result| async move {
                    result.err().map(|e| Err(io::Error::other(e)))
                });
                Ok(futures::stream::once(async move { Ok(bytes) })
                    .chain(stdout)
                    .chain(end)
                    .boxed())
            }
        }
    }

    /// Runs `argv` in `container` to its end, discarding stdout.
    async fn exec(&self, container: &str, argv: Vec<String>) -> Result<(), Error> {
        let what = format!(
            "exec {argv:?} in container {container:?} of pod {}",
            self.pod
        );
        let mut output = self.exec_stream(container, argv).await?;
        while output
            .try_next()
            .await
            .map_err(|e| Error::io(what.clone(), e))?
            .is_some()
        {}
        Ok(())
    }

    /// Signals PID 1 of `container`, unless it has exited.
    async fn signal(&self, container: &str, signal: u8) -> Result<bool, Error> {
        let pod = self.get().await?;
        if !signallable(&pod, container, "k8sapi")? {
            return Ok(false);
        }
        let argv = ["/bin/sh", "-c", &format!("kill -{signal} 1")].map(str::to_owned);
        match self.exec(container, argv.into()).await {
            Ok(()) => Ok(true),
            // It may have exited between the GET and the exec.
            Err(e) if is_terminated(&self.get().await?, container) => {
                tracing::debug!(container, error = %e, "Container exited before its signal");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

impl ContainerRuntime for K8sApi {
    fn name(&self) -> &'static str {
        "k8sapi"
    }

    async fn containers(&self) -> Result<Vec<String>, Error> {
        let pod = self.get().await?;
        Ok(pod
            .spec
            .map(|s| s.containers.into_iter().map(|c| c.name).collect())
            .unwrap_or_default())
    }

    async fn wait_started(&self, container: &str) -> Result<(), Error> {
        self.wait_state(container, |state| {
            state.is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        })
        .await
        .map(drop)
    }

    async fn wait_exited(&self, container: &str) -> Result<ExitStatus, Error> {
        let pod = self
            .wait_state(container, |state| {
                state.is_some_and(|s| s.terminated.is_some())
            })
            .await?;
        let code = state(&pod, container)
            .and_then(|s| s.terminated.as_ref())
            .map(|t| t.exit_code);
        if code.is_none() {
            tracing::info!(container, pod = %self.pod, "Pod deadline exceeded: container counts as exited");
        }
        Ok(ExitStatus { code })
    }

    async fn kill(&self, container: &str, grace: Duration) -> Result<KillOutcome, Error> {
        kill_gracefully(
            container,
            &self.pod,
            grace,
            |signal| self.signal(container, signal),
            || self.wait_exited(container),
        )
        .await
    }

    async fn open_path(&self, container: &str, path: &Path) -> Result<PathSource, Error> {
        let (Some(dir), Some(base)) = (path.parent(), path.file_name()) else {
            return Err(Error::PathNotFound {
                container: container.to_owned(),
                path: path.to_owned(),
            });
        };
        let argv = vec![
            "tar".to_owned(),
            "cf".to_owned(),
            "-".to_owned(),
            "-C".to_owned(),
            dir.to_string_lossy().into_owned(),
            base.to_string_lossy().into_owned(),
        ];
        match self.exec_stream(container, argv).await {
            Ok(stream) => Ok(PathSource::Tar(stream)),
            Err(Error::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                Err(Error::PathNotFound {
                    container: container.to_owned(),
                    path: path.to_owned(),
                })
            }
            Err(e) => Err(e),
        }
    }

    async fn logs(&self, container: &str, stream: LogStream) -> Result<ByteStream, Error> {
        if stream == LogStream::Stdout {
            tracing::warn!(
                container,
                "The k8sapi runtime reads stdout and stderr combined"
            );
        }
        let params = LogParams {
            container: Some(container.to_owned()),
            ..LogParams::default()
        };
        let log = self.api.log_stream(&self.pod, &params).await.map_err(|e| {
            Error::io(
                format!("get the log of container {container:?} of pod {}", self.pod),
                io::Error::other(e),
            )
        })?;
        Ok(ReaderStream::new(log.compat()).boxed())
    }

    async fn read_file(&self, container: &str, path: &Path) -> Result<Vec<u8>, Error> {
        let PathSource::Tar(stream) = self.open_path(container, path).await? else {
            return Err(Error::Unsupported {
                runtime: "k8sapi",
                what: "read a file other than through tar",
            });
        };
        let what = || format!("read {} from container {container:?}", path.display());
        let archive: Vec<u8> = stream
            .try_fold(Vec::new(), |mut all, chunk| async move {
                all.extend_from_slice(&chunk);
                Ok(all)
            })
            .await
            .map_err(|e| Error::io(what(), e))?;
        let mut archive = tar::Archive::new(archive.as_slice());
        let mut entries = archive.entries().map_err(|e| Error::io(what(), e))?;
        let mut entry = match entries.next() {
            Some(entry) => entry.map_err(|e| Error::io(what(), e))?,
            None => {
                return Err(Error::io(
                    what(),
                    io::Error::other("the tar stream is empty"),
                ));
            }
        };
        if entry.header().entry_type().is_dir() {
            return Err(Error::io(what(), io::Error::other("it is a directory")));
        }
        let mut content = Vec::new();
        io::Read::read_to_end(&mut entry, &mut content).map_err(|e| Error::io(what(), e))?;
        Ok(content)
    }
}

/// Whether `container` of `pod` can be signalled by an exec'd `kill N 1`: false once it has
/// exited (or the pod passed its deadline); an error when it is not in the pod, or when PID 1 is
/// not its own (a pod sharing its process namespace, or hostPID), which `runtime` cannot handle.
pub(crate) fn signallable(
    pod: &Pod,
    container: &str,
    runtime: &'static str,
) -> Result<bool, Error> {
    if !in_spec(pod, container) {
        return Err(Error::ContainerNotFound {
            container: container.to_owned(),
        });
    }
    if is_terminated(pod, container) || deadline_exceeded(pod) {
        return Ok(false);
    }
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.share_process_namespace) == Some(true) {
        return Err(Error::Unsupported {
            runtime,
            what: "kill a container of a pod sharing its process namespace (use pns)",
        });
    }
    if spec.and_then(|s| s.host_pid) == Some(true) {
        return Err(Error::Unsupported {
            runtime,
            what: "kill a container of a hostPID pod",
        });
    }
    Ok(true)
}

/// The kill of the runtimes that signal a container's PID 1 by exec (k8sapi, kubelet), as Argo's
/// `KillGracefully`: `kill -15 1`, the grace, `kill -9 1`, one more grace, then give up. The
/// last grace matters: an exec'd `kill -9 1` can fail to end the container, because the kernel
/// drops signals sent from inside a PID namespace to its init (the container's PID 1) unless it
/// handles them, and SIGKILL cannot be handled.
pub(crate) async fn kill_gracefully<S, W>(
    container: &str,
    pod: &str,
    grace: Duration,
    signal: impl Fn(u8) -> S,
    wait_exited: impl Fn() -> W,
) -> Result<KillOutcome, Error>
where
    S: Future<Output = Result<bool, Error>>,
    W: Future<Output = Result<ExitStatus, Error>>,
{
    if !signal(15).await? {
        return Ok(KillOutcome::AlreadyExited);
    }
    if tokio::time::timeout(grace, wait_exited())
        .await
        .is_ok_and(|exited| exited.is_ok())
    {
        return Ok(KillOutcome::Terminated);
    }
    tracing::info!(container, "Still running after the grace period: SIGKILL");
    if !signal(9).await? {
        return Ok(KillOutcome::Terminated);
    }
    match tokio::time::timeout(grace, wait_exited()).await {
        Ok(exited) => exited.map(|_| KillOutcome::Killed),
        Err(_) => Err(Error::io(
            format!("kill container {container:?} of pod {pod}"),
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "still running {grace:?} after `kill -9 1` (its PID 1 ignores signals sent from inside the container)"
                ),
            ),
        )),
    }
}

/// Whether the command ran and exited 0; otherwise an error naming the container, the program
/// when the container lacks it (with `needs`, what the runtime asks of images), and the
/// command's stderr.
pub(crate) fn check(
    container: &str,
    program: &str,
    status: Option<Status>,
    stderr: &str,
    needs: &str,
) -> Result<(), Error> {
    let Some(status) = status else {
        return Err(Error::io(
            format!("exec {program} in container {container:?}"),
            io::Error::other("the API server sent no exit status"),
        ));
    };
    if status.status.as_deref() == Some("Success") {
        return Ok(());
    }
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| {
            causes
                .iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
        })
        .and_then(|c| c.message.as_deref())
        .and_then(|m| m.parse::<i32>().ok());
    let message = status.message.unwrap_or_default();
    let missing = matches!(code, Some(126 | 127))
        || message.contains("executable file not found")
        || message.contains("no such file or directory");
    if missing {
        return Err(Error::io(
            format!("exec {program} in container {container:?}"),
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "the container's image has no usable `{program}` ({needs}): {}",
                    if stderr.is_empty() { &message } else { stderr }
                ),
            ),
        ));
    }
    let detail = match code {
        Some(code) => format!("exit code {code}"),
        None => message,
    };
    let kind = if stderr.contains("No such file or directory") {
        io::ErrorKind::NotFound
    } else {
        io::ErrorKind::Other
    };
    let detail = if stderr.is_empty() {
        detail
    } else {
        format!("{detail}: {stderr}")
    };
    Err(Error::io(
        format!("exec {program} in container {container:?}"),
        io::Error::new(kind, detail),
    ))
}

pub(crate) fn in_spec(pod: &Pod, container: &str) -> bool {
    pod.spec
        .as_ref()
        .is_none_or(|s| s.containers.iter().any(|c| c.name == container))
}

pub(crate) fn state<'a>(pod: &'a Pod, container: &str) -> Option<&'a ContainerState> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == container)?
        .state
        .as_ref()
}

pub(crate) fn is_terminated(pod: &Pod, container: &str) -> bool {
    state(pod, container).is_some_and(|s| s.terminated.is_some())
}

pub(crate) fn deadline_exceeded(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.reason.as_deref()) == Some(DEADLINE_EXCEEDED)
}
