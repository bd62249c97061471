//! The `kubelet` runtime: the pod seen through the API of its node's kubelet
//! (`argoexec_kube::KubeletClient`: HTTPS, the service account's bearer token), as Argo's
//! `workflow/executor/kubelet` sees it.
//!
//! - State: `GET /pods` (every pod of the node; ours is picked by namespace and name).
//! - Exits: the kubelet has no watch, and Argo polls `/pods` every 5 s
//!   (`WAIT_CONTAINER_STATUS_CHECK_INTERVAL`). Here, while the container runs, wait follows its
//!   log (`/containerLogs/...?follow=true`), which the kubelet ends once the container stops
//!   (its log reader checks the container's state at least once a second). The request asks for
//!   lines written after the year 9999 (`sinceTime`), so the kubelet sends none of the log: the
//!   stream is only a signal. Then `/pods` is read again at once, and after 50 ms, 100 ms, ...
//!   up to 1 s apart until the pod's status says terminated (the kubelet serves the status the
//!   API server last sent it, which can lag the exit). A followed stream is also cut every 10 s
//!   to re-read `/pods`; where the log cannot be followed, `/pods` is polled the same way (up to
//!   once a second). Waiting for a start polls `/pods` so too.
//! - Kills: exec `/bin/sh -c "kill -15 1"` through the kubelet (`/exec/...`, websocket), then
//!   `kill -9 1` after the grace, as the k8sapi runtime does; refused where PID 1 is not the
//!   container's (shareProcessNamespace, hostPID).
//! - Logs: `/containerLogs/...`, stdout and stderr combined (the kubelet serves no other), so
//!   [`LogStream::Stdout`] gets the combined log, as in Argo, with a warning.
//! - Files of the container's image cannot be read: [`Kubelet::open_path`] says so. Outputs must
//!   be on a volume, which wait reads through its own mounts (`/mainctrfs/...`), as in Argo.

use std::io;
use std::path::Path;
use std::time::Duration;

use argoexec_kube::{KubeletClient, KubeletOptions};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use tokio::io::AsyncReadExt as _;
use tokio_util::io::ReaderStream;

use crate::kube_pod::{
    STDERR_LIMIT, api, check, container_names, deadline_exceeded, exit_status, in_spec,
    is_terminated, kill_gracefully, signallable, state,
};
use crate::runtime::{
    ByteStream, ContainerRuntime, Error, ExitStatus, KillOutcome, LogStream, PathSource,
};

/// `sinceTime` of the followed log: 9999-01-01T00:00:00Z, after every line the container writes.
const FAR_FUTURE_SECOND: i64 = 253_370_764_800;
/// A followed log is cut this often to read `/pods` anyway.
const BACKSTOP: Duration = Duration::from_secs(10);
/// The slowest `/pods` poll: when the log cannot be followed, or after it ended.
const POLL: Duration = Duration::from_secs(1);
/// The first delay between two reads of `/pods` that both found the container still running.
const FIRST_RETRY: Duration = Duration::from_millis(50);
/// What the images must hold, for errors.
const NEEDS: &str = "the kubelet runtime needs `sh` in every container it kills";
/// Why image files cannot be read, for errors.
const NO_IMAGE_FILES: &str = "read files of a container's image: base-image outputs are not \
    available with the kubelet runtime (nor in Argo's); put output parameters and artifacts on a \
    volume mounted in the main container (e.g. an emptyDir), or use the emissary runtime";

/// The `kubelet` runtime for one pod.
#[derive(Debug, Clone)]
pub struct Kubelet {
    client: KubeletClient,
}

impl Kubelet {
    /// The runtime of the pod of `options`, through its node's kubelet; fails if the token or the
    /// CA cannot be read. Call it within a Tokio runtime (kube's client starts a task of its own).
    pub fn new(options: KubeletOptions) -> Result<Self, Error> {
        KubeletClient::new(options)
            .map(Self::with_client)
            .map_err(api)
    }

    /// The runtime over a client built elsewhere.
    pub fn with_client(client: KubeletClient) -> Self {
        Self { client }
    }

    /// Our pod, from the kubelet's `/pods`.
    async fn pod(&self) -> Result<Pod, Error> {
        let (namespace, name) = (self.client.namespace(), self.client.pod());
        self.client
            .pods()
            .await
            .map_err(api)?
            .into_iter()
            .find(|p| {
                p.metadata.namespace.as_deref() == Some(namespace)
                    && p.metadata.name.as_deref() == Some(name)
            })
            .ok_or_else(|| {
                Error::io(
                    format!("GET /pods from the kubelet at {}", self.client.endpoint()),
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!(
                            "pod {namespace}/{name} is not in the kubelet's pod list (is ARGO_KUBELET_HOST this pod's node?)"
                        ),
                    ),
                )
            })
    }

    /// Follows `container`'s log until the kubelet ends it (the container stopped), receiving
    /// none of it.
    async fn follow(&self, container: &str) -> Result<(), Error> {
        let since = jiff::Timestamp::from_second(FAR_FUTURE_SECOND)
            .map_err(|e| Error::io("the followed log's sinceTime", io::Error::other(e)))?;
        let mut log = self
            .client
            .follow_log(container, since)
            .await
            .map_err(api)?;
        tokio::io::copy(&mut log, &mut tokio::io::sink())
            .await
            .map_err(|e| Error::io(format!("follow the log of container {container:?}"), e))?;
        Ok(())
    }

    /// Reads `/pods` until `container` has started (`exited` false) or exited, or the pod passed
    /// its deadline. While it runs and its exit is awaited, follows its log between reads; once
    /// the log ended (or cannot be followed), reads again at once, then 50 ms, 100 ms, ... up to
    /// 1 s apart.
    async fn wait_for(&self, container: &str, exited: bool) -> Result<Pod, Error> {
        let mut delay = Duration::ZERO;
        let mut follow = exited;
        loop {
            tokio::time::sleep(delay).await;
            let pod = self.pod().await?;
            if !in_spec(&pod, container) {
                return Err(Error::ContainerNotFound {
                    container: container.to_owned(),
                });
            }
            let running = state(&pod, container).is_some_and(|s| s.running.is_some());
            let done = if exited {
                is_terminated(&pod, container)
            } else {
                running || is_terminated(&pod, container)
            };
            if done || deadline_exceeded(&pod) {
                return Ok(pod);
            }
            if follow && running {
                match tokio::time::timeout(BACKSTOP, self.follow(container)).await {
                    // The container stopped: its status follows soon.
                    Ok(Ok(())) => follow = false,
                    Ok(Err(e)) => {
                        tracing::info!(container, error = %e, "Cannot follow the log: polling the kubelet's /pods");
                        follow = false;
                    }
                    // The backstop: read /pods, then follow again.
                    Err(_) => {}
                }
                delay = Duration::ZERO;
                continue;
            }
            delay = (delay * 2).clamp(FIRST_RETRY, POLL);
        }
    }

    /// Signals PID 1 of `container`, unless it has exited.
    async fn signal(&self, container: &str, signal: u8) -> Result<bool, Error> {
        let pod = self.pod().await?;
        if !signallable(&pod, container, "kubelet")? {
            return Ok(false);
        }
        match self.exec(container, &format!("kill -{signal} 1")).await {
            Ok(()) => Ok(true),
            // It may have exited between the read and the exec.
            Err(e) if is_terminated(&self.pod().await?, container) => {
                tracing::debug!(container, error = %e, "Container exited before its signal");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Runs `/bin/sh -c script` in `container` through the kubelet, to its end.
    async fn exec(&self, container: &str, script: &str) -> Result<(), Error> {
        let what = format!("exec /bin/sh -c {script:?} in container {container:?}");
        let mut process = self
            .client
            .exec(container, &["/bin/sh", "-c", script])
            .await
            .map_err(api)?;
        let status = process.take_status();
        let (Some(mut stdout), Some(mut stderr)) = (process.stdout(), process.stderr()) else {
            return Err(Error::io(what, io::Error::other("the exec has no output")));
        };
        let mut text = Vec::new();
        // Both drained together, so that neither blocks the other.
        let (mut sink, mut head) = (tokio::io::sink(), (&mut stderr).take(STDERR_LIMIT as u64));
        let _ = tokio::join!(
            tokio::io::copy(&mut stdout, &mut sink),
            head.read_to_end(&mut text),
        );
        let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        let status = match status {
            Some(status) => status.await,
            None => None,
        };
        drop(process);
        let stderr = String::from_utf8_lossy(&text).trim().to_owned();
        check(container, "/bin/sh", status, &stderr, NEEDS)
    }
}

impl ContainerRuntime for Kubelet {
    fn name(&self) -> &'static str {
        "kubelet"
    }

    async fn containers(&self) -> Result<Vec<String>, Error> {
        Ok(container_names(self.pod().await?))
    }

    async fn wait_started(&self, container: &str) -> Result<(), Error> {
        self.wait_for(container, false).await.map(drop)
    }

    async fn wait_exited(&self, container: &str) -> Result<ExitStatus, Error> {
        let pod = self.wait_for(container, true).await?;
        Ok(exit_status(&pod, container, self.client.pod()))
    }

    async fn kill(&self, container: &str, grace: Duration) -> Result<KillOutcome, Error> {
        kill_gracefully(
            container,
            self.client.pod(),
            grace,
            |signal| self.signal(container, signal),
            || self.wait_exited(container),
        )
        .await
    }

    async fn open_path(&self, _container: &str, _path: &Path) -> Result<PathSource, Error> {
        Err(Error::Unsupported {
            runtime: "kubelet",
            what: NO_IMAGE_FILES,
        })
    }

    async fn logs(&self, container: &str, stream: LogStream) -> Result<ByteStream, Error> {
        if stream == LogStream::Stdout {
            tracing::warn!(
                container,
                "The kubelet runtime reads stdout and stderr combined"
            );
        }
        let log = self.client.container_log(container).await.map_err(api)?;
        Ok(ReaderStream::new(log).boxed())
    }
}
