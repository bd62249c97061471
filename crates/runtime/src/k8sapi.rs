//! The `k8sapi` runtime: containers seen only through the Kubernetes API, as Argo's
//! `workflow/executor/k8sapi` sees them, with `argoexec-kube`'s client.
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

use argoexec_kube::{Backoff, Kube, PodWatch};
use bytes::Bytes;
use futures::{StreamExt as _, TryStreamExt as _};
use k8s_openapi::api::core::v1::{ContainerState, Pod};
use tokio::io::AsyncReadExt as _;
use tokio_util::io::ReaderStream;

use crate::kube_pod::{
    STDERR_LIMIT, api, check, container_names, deadline_exceeded, exit_status, in_spec,
    is_terminated, kill_gracefully, signallable, state,
};
use crate::runtime::{
    ByteStream, ContainerRuntime, Error, ExitStatus, KillOutcome, LogStream, PathSource,
};

/// What the images must hold, for errors.
const NEEDS: &str = "the k8sapi runtime needs `sh` and `tar` in every container it reads or kills";

/// The `k8sapi` runtime for one pod.
#[derive(Debug, Clone)]
pub struct K8sApi {
    kube: Kube,
    pod: String,
    watch: PodWatch,
}

impl K8sApi {
    /// The runtime for pod `pod` of the client's namespace; `backoff` retries its GETs.
    pub fn new(kube: &Kube, pod: &str, backoff: Backoff) -> Self {
        Self {
            kube: kube.clone(),
            pod: pod.to_owned(),
            watch: PodWatch::new(kube, pod, backoff),
        }
    }

    async fn get(&self) -> Result<Pod, Error> {
        self.watch.get().await.map_err(api)
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
            .map_err(api)?;
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
        let program = argv.first().cloned().unwrap_or_default();
        let mut process = self
            .kube
            .exec(&self.pod, container, argv)
            .await
            .map_err(api)?;
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
        Ok(container_names(self.get().await?))
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
        Ok(exit_status(&pod, container, &self.pod))
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
        let log = self
            .kube
            .container_log(&self.pod, container)
            .await
            .map_err(api)?;
        Ok(ReaderStream::new(log).boxed())
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
