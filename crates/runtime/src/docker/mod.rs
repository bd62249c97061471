//! The docker runtime: the pod's containers seen through the Docker Engine API (`docker.sock`
//! mounted into the wait container), as Argo's `DockerExecutor` does with the docker CLI.
//!
//! - Discovery: the kubelet labels every container it makes with `io.kubernetes.pod.namespace`,
//!   `io.kubernetes.pod.name` and `io.kubernetes.container.name`; the sandbox is named `POD` and
//!   skipped. When a name has more than one container (an old one not yet removed), the newest
//!   counts.
//! - Start: the engine's event stream (`start`, `die`), replayed from just before the container
//!   list was taken, so a container that starts between the two is not missed. A start that
//!   fails (a missing entrypoint) leaves the container `created` with `State.Error` and exit code
//!   127 or 126, and docker 20.10 sends no event at all for it (not even a network one when the
//!   container joins the sandbox's network): it is looked for by inspecting the container when
//!   the wait begins and then every 5 s until it starts, and ends the wait with
//!   [`Error::StartFailed`](crate::Error::StartFailed).
//! - Exit: `POST /containers/{id}/wait` (condition `not-running`), with the exit code. bollard
//!   reports a non-zero code as an error; it is an exit code here.
//! - Files: `GET /containers/{id}/archive`, a tar stream whose one top-level entry is the path's
//!   base name. It reads the container's own filesystem, so paths in main's image (not on a
//!   volume) work, also after the container exited.
//! - Kill: SIGTERM, up to the grace period, then SIGKILL, as `docker kill` does.
//! - Logs: `GET /containers/{id}/logs`, stdout alone for the result, stdout and stderr (as the
//!   engine interleaved them) for the archived log.

mod tarfile;

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::container::LogOutput;
use bollard::errors::Error as EngineError;
use bollard::models::{ContainerStateStatusEnum, ContainerSummaryStateEnum};
use bollard::query_parameters::{
    DownloadFromContainerOptionsBuilder, EventsOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, LogsOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures::{StreamExt as _, TryStreamExt as _};
use tokio::sync::OnceCell;

use crate::runtime::{
    ByteStream, ContainerRuntime, Error, ExitStatus, KillOutcome, LogStream, PathSource,
};

/// The kubelet's label naming a container's pod namespace.
pub const POD_NAMESPACE_LABEL: &str = "io.kubernetes.pod.namespace";
/// The kubelet's label naming a container's pod.
pub const POD_NAME_LABEL: &str = "io.kubernetes.pod.name";
/// The kubelet's label naming a container as the pod spec does (`POD` for the sandbox).
pub const CONTAINER_NAME_LABEL: &str = "io.kubernetes.container.name";
/// The sandbox (pause) container's name in [`CONTAINER_NAME_LABEL`]: not a container of the spec.
pub const SANDBOX_NAME: &str = "POD";

/// The engine's socket when `DOCKER_HOST` is not set.
const DEFAULT_SOCKET: &str = "/var/run/docker.sock";
/// How often a container that has not started is inspected for a failed start, which docker
/// 20.10 records (`State.Error`) without any event; a start or exit is seen at once, by event.
const START_BACKSTOP: Duration = Duration::from_secs(5);
/// bollard's request timeout applies to whole requests, `wait` and `events` included, which last
/// as long as the container runs: long enough to mean "none".
const REQUEST_TIMEOUT_SECS: u64 = 10 * 365 * 24 * 3600;

/// How a [`Docker`] runtime is set up.
#[derive(Debug, Clone, Default)]
pub struct DockerOptions {
    /// The engine's address as `DOCKER_HOST` spells it (`unix:///path`, `tcp://host:port`); none
    /// means `/var/run/docker.sock`.
    pub host: Option<String>,
    /// This pod's namespace (`io.kubernetes.pod.namespace`).
    pub namespace: String,
    /// This pod's name (`io.kubernetes.pod.name`).
    pub pod_name: String,
}

/// A container of the pod, as the engine lists it.
#[derive(Debug, Clone)]
struct Ctr {
    id: String,
    state: Option<ContainerSummaryStateEnum>,
    created: i64,
}

impl Ctr {
    /// Whether it has been started (it may have exited since).
    fn started(&self) -> bool {
        !matches!(
            self.state,
            None | Some(ContainerSummaryStateEnum::CREATED | ContainerSummaryStateEnum::EMPTY)
        )
    }

    fn running(&self) -> bool {
        matches!(
            self.state,
            Some(
                ContainerSummaryStateEnum::RUNNING
                    | ContainerSummaryStateEnum::PAUSED
                    | ContainerSummaryStateEnum::RESTARTING
            )
        )
    }
}

/// The docker runtime. See the [module docs](self).
#[derive(Debug)]
pub struct Docker {
    options: DockerOptions,
    /// Connected and version-negotiated on first use, so that making the runtime needs no async
    /// context and no engine.
    client: OnceCell<bollard::Docker>,
}

impl Docker {
    /// The runtime of the pod `options` names. Connects on first use.
    pub fn new(options: DockerOptions) -> Self {
        Self {
            options,
            client: OnceCell::new(),
        }
    }

    /// The engine's client, connected and speaking the engine's API version.
    async fn client(&self) -> Result<&bollard::Docker, Error> {
        self.client
            .get_or_try_init(|| async {
                let host = self.options.host.as_deref().unwrap_or(DEFAULT_SOCKET);
                let version = bollard::API_DEFAULT_VERSION;
                let connected = if let Some(addr) = host.strip_prefix("tcp://") {
                    bollard::Docker::connect_with_http(addr, REQUEST_TIMEOUT_SECS, version)
                } else {
                    let path = host.strip_prefix("unix://").unwrap_or(host);
                    bollard::Docker::connect_with_socket(path, REQUEST_TIMEOUT_SECS, version)
                };
                let client = connected.map_err(|e| engine(format!("connect to {host}"), e))?;
                // bollard asks for its newest API version; the engine may be older (20.10: 1.41).
                client
                    .negotiate_version()
                    .await
                    .map_err(|e| engine(format!("negotiate the API version with {host}"), e))
            })
            .await
    }

    /// The pod's containers by name, newest of each name, the sandbox left out.
    async fn list(&self) -> Result<BTreeMap<String, Ctr>, Error> {
        let filters = HashMap::from([("label", self.pod_labels())]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let summaries = self
            .client()
            .await?
            .list_containers(Some(options))
            .await
            .map_err(|e| engine(format!("list the containers of pod {}", self.pod()), e))?;
        let mut out: BTreeMap<String, Ctr> = BTreeMap::new();
        for summary in summaries {
            let name = summary
                .labels
                .as_ref()
                .and_then(|labels| labels.get(CONTAINER_NAME_LABEL));
            let (Some(name), Some(id)) = (name, summary.id) else {
                continue;
            };
            if name == SANDBOX_NAME {
                continue;
            }
            let ctr = Ctr {
                id,
                state: summary.state,
                created: summary.created.unwrap_or_default(),
            };
            match out.get(name) {
                Some(known) if known.created > ctr.created => {}
                _ => {
                    out.insert(name.clone(), ctr);
                }
            }
        }
        tracing::debug!(containers = ?out, "listed containers");
        Ok(out)
    }

    /// The container now, or `ContainerNotFound`.
    async fn lookup(&self, container: &str) -> Result<Ctr, Error> {
        self.list()
            .await?
            .remove(container)
            .ok_or_else(|| Error::ContainerNotFound {
                container: container.to_owned(),
            })
    }

    /// The container once it has been started: listed now, else told by the engine's events.
    /// A start that failed is [`Error::StartFailed`]: docker 20.10 sends no event for it, so it
    /// is looked for when the wait begins and then every [`START_BACKSTOP`].
    async fn started(&self, container: &str) -> Result<Ctr, Error> {
        // Events are replayed from before the list, so a start in between is seen either way.
        let since = unix_time_before(Duration::from_secs(1));
        if let Some(ctr) = self.started_now(container).await? {
            return Ok(ctr);
        }
        let mut labels = self.pod_labels();
        labels.push(format!("{CONTAINER_NAME_LABEL}={container}"));
        let filters = HashMap::from([
            ("type", vec!["container".to_owned()]),
            ("event", vec!["start".to_owned(), "die".to_owned()]),
            ("label", labels),
        ]);
        let options = EventsOptionsBuilder::new()
            .since(&since)
            .filters(&filters)
            .build();
        let mut events = self.client().await?.events(Some(options));
        let mut backstop =
            tokio::time::interval_at(tokio::time::Instant::now() + START_BACKSTOP, START_BACKSTOP);
        tracing::debug!(container, "waiting for the container to start");
        loop {
            let event = tokio::select! {
                event = events.next() => event,
                _ = backstop.tick() => {
                    if let Some(ctr) = self.started_now(container).await? {
                        return Ok(ctr);
                    }
                    continue;
                }
            };
            let Some(event) = event else { break };
            let event = event
                .map_err(|e| engine(format!("watch the engine's events for {container:?}"), e))?;
            // A `die` means it is done even if it is still listed `created` (Argo's issue 6352);
            // the wait API then gives its exit code.
            let died = event.action.as_deref() == Some("die");
            if let Some(ctr) = self
                .list()
                .await?
                .remove(container)
                .filter(|ctr| died || ctr.started())
            {
                return Ok(ctr);
            }
        }
        Err(engine_gone(format!(
            "the engine's event stream ended before container {container:?} started"
        )))
    }

    /// The container if it has been started; [`Error::StartFailed`] if the engine tried and
    /// could not (it stays `created`, with `State.Error` and an exit code).
    async fn started_now(&self, container: &str) -> Result<Option<Ctr>, Error> {
        let Some(ctr) = self.list().await?.remove(container) else {
            return Ok(None);
        };
        if ctr.started() {
            return Ok(Some(ctr));
        }
        let inspected = match self.client().await?.inspect_container(&ctr.id, None).await {
            Ok(inspected) => inspected,
            // Removed meanwhile: as if not there yet.
            Err(e) if is_status(&e, 404) => return Ok(None),
            Err(e) => return Err(engine(format!("inspect container {container:?}"), e)),
        };
        let state = inspected.state.unwrap_or_default();
        match state.error.filter(|error| !error.is_empty()) {
            Some(message) if state.status == Some(ContainerStateStatusEnum::CREATED) => {
                Err(Error::StartFailed {
                    container: container.to_owned(),
                    code: state
                        .exit_code
                        .map_or(128, |code| i32::try_from(code).unwrap_or(i32::MAX)),
                    message,
                })
            }
            _ => Ok(None),
        }
    }

    /// Resolves when the container is no longer running, with its exit code.
    async fn wait_not_running(&self, ctr: &Ctr, container: &str) -> Result<i32, Error> {
        let options = WaitContainerOptionsBuilder::new()
            .condition("not-running")
            .build();
        let mut waited = self.client().await?.wait_container(&ctr.id, Some(options));
        let code = match waited.next().await {
            Some(Ok(response)) => response.status_code,
            // bollard turns a non-zero exit into an error; it is the answer here.
            Some(Err(EngineError::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) if is_status(&e, 404) => {
                return Err(Error::ContainerNotFound {
                    container: container.to_owned(),
                });
            }
            Some(Err(e)) => return Err(engine(format!("wait for container {container:?}"), e)),
            None => {
                return Err(engine_gone(format!(
                    "the engine ended the wait for container {container:?} without an answer"
                )));
            }
        };
        Ok(i32::try_from(code).unwrap_or(i32::MAX))
    }

    /// Sends `signal`; `false` when the container is no longer running (or gone).
    async fn signal(&self, ctr: &Ctr, container: &str, signal: &str) -> Result<bool, Error> {
        let options = KillContainerOptionsBuilder::new().signal(signal).build();
        match self
            .client()
            .await?
            .kill_container(&ctr.id, Some(options))
            .await
        {
            Ok(()) => Ok(true),
            // 409: not running; 404: removed. Either way it has exited.
            Err(e) if is_status(&e, 409) || is_status(&e, 404) => Ok(false),
            Err(e) => Err(engine(
                format!("send {signal} to container {container:?}"),
                e,
            )),
        }
    }

    fn pod(&self) -> String {
        format!("{}/{}", self.options.namespace, self.options.pod_name)
    }

    fn pod_labels(&self) -> Vec<String> {
        vec![
            format!("{POD_NAMESPACE_LABEL}={}", self.options.namespace),
            format!("{POD_NAME_LABEL}={}", self.options.pod_name),
        ]
    }
}

impl ContainerRuntime for Docker {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn containers(&self) -> Result<Vec<String>, Error> {
        Ok(self.list().await?.into_keys().collect())
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn wait_started(&self, container: &str) -> Result<(), Error> {
        self.started(container).await.map(|_| ())
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn wait_exited(&self, container: &str) -> Result<ExitStatus, Error> {
        let ctr = self.started(container).await?;
        let code = self.wait_not_running(&ctr, container).await?;
        tracing::debug!(container, id = %ctr.id, code, "container exited");
        Ok(ExitStatus::code(code))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn kill(&self, container: &str, grace: Duration) -> Result<KillOutcome, Error> {
        let ctr = self.lookup(container).await?;
        if !ctr.running() || !self.signal(&ctr, container, "SIGTERM").await? {
            return Ok(KillOutcome::AlreadyExited);
        }
        tracing::info!(container, id = %ctr.id, ?grace, "sent SIGTERM");
        if let Ok(exited) =
            tokio::time::timeout(grace, self.wait_not_running(&ctr, container)).await
        {
            exited?;
            return Ok(KillOutcome::Terminated);
        }
        tracing::warn!(
            container,
            ?grace,
            "still running after the grace period; sending SIGKILL"
        );
        if !self.signal(&ctr, container, "SIGKILL").await? {
            return Ok(KillOutcome::Terminated);
        }
        self.wait_not_running(&ctr, container).await?;
        Ok(KillOutcome::Killed)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn open_path(&self, container: &str, path: &Path) -> Result<PathSource, Error> {
        let ctr = self.lookup(container).await?;
        let options = DownloadFromContainerOptionsBuilder::new()
            .path(&path.to_string_lossy())
            .build();
        let mut archive = self
            .client()
            .await?
            .download_from_container(&ctr.id, Some(options))
            .boxed();
        // The request is sent on the first poll: a missing path is known only then.
        let first = match archive.next().await {
            Some(Ok(bytes)) => bytes,
            Some(Err(e)) if is_status(&e, 404) => {
                return Err(Error::PathNotFound {
                    container: container.to_owned(),
                    path: path.to_owned(),
                });
            }
            Some(Err(e)) => {
                return Err(engine(
                    format!("archive {} of container {container:?}", path.display()),
                    e,
                ));
            }
            None => bytes::Bytes::new(),
        };
        let rest = archive.map_err(io::Error::other);
        Ok(PathSource::Tar(
            futures::stream::once(async move { Ok(first) })
                .chain(rest)
                .boxed(),
        ))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn read_file(&self, container: &str, path: &Path) -> Result<Vec<u8>, Error> {
        let mut path = path.to_owned();
        // Symbolic links are followed inside the container, a few hops at most, as a shell would.
        for _ in 0..MAX_LINK_HOPS {
            let stream = match self.open_path(container, &path).await? {
                PathSource::Tar(stream) => stream,
                // This runtime's own open_path gives plain tar streams only.
                PathSource::TarGz(_) => {
                    return Err(Error::Unsupported {
                        runtime: "docker",
                        what: "read a single file out of a gzip stream",
                    });
                }
                PathSource::Local(local) => {
                    return tokio::fs::read(&local)
                        .await
                        .map_err(|e| Error::io(format!("read {}", local.display()), e));
                }
            };
            let archive: Vec<u8> = stream
                .try_fold(Vec::new(), |mut all, chunk| async move {
                    all.extend_from_slice(&chunk);
                    Ok(all)
                })
                .await
                .map_err(|e| Error::io(format!("read {} of {container:?}", path.display()), e))?;
            match tarfile::first_entry(&archive)
                .map_err(|e| Error::io(format!("read the archive of {}", path.display()), e))?
            {
                tarfile::Entry::File(bytes) => return Ok(bytes),
                tarfile::Entry::Link(target) => path = resolve_link(&path, &target),
                tarfile::Entry::Other(kind) => {
                    return Err(Error::io(
                        format!("read {} of container {container:?}", path.display()),
                        io::Error::other(format!("expected a regular file, found a {kind}")),
                    ));
                }
            }
        }
        Err(Error::io(
            format!("read {} of container {container:?}", path.display()),
            io::Error::other(format!("more than {MAX_LINK_HOPS} symbolic links")),
        ))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn logs(&self, container: &str, stream: LogStream) -> Result<ByteStream, Error> {
        let ctr = self.lookup(container).await?;
        let options = LogsOptionsBuilder::new()
            .follow(false)
            .stdout(true)
            .stderr(stream == LogStream::Combined)
            .build();
        let logs = self.client().await?.logs(&ctr.id, Some(options));
        Ok(logs
            .try_filter_map(|output| async move {
                Ok(match output {
                    LogOutput::StdOut { message }
                    | LogOutput::StdErr { message }
                    | LogOutput::Console { message } => Some(message),
                    LogOutput::StdIn { .. } => None,
                })
            })
            .map_err(io::Error::other)
            .boxed())
    }
}

/// How many symbolic links [`Docker::read_file`] follows.
const MAX_LINK_HOPS: usize = 8;

/// A link's target as a path in the container: absolute as is, else beside the link.
fn resolve_link(link: &Path, target: &Path) -> PathBuf {
    if target.is_absolute() {
        return target.to_owned();
    }
    link.parent().unwrap_or(Path::new("/")).join(target)
}

/// The time `back` ago as the engine's `since` parameter (seconds.nanoseconds).
fn unix_time_before(back: Duration) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(back);
    format!("{}.{:09}", now.as_secs(), now.subsec_nanos())
}

fn is_status(error: &EngineError, status: u16) -> bool {
    matches!(error, EngineError::DockerResponseServerError { status_code, .. } if *status_code == status)
}

fn engine(operation: String, source: EngineError) -> Error {
    Error::io(operation, io::Error::other(source))
}

fn engine_gone(message: String) -> Error {
    Error::io(
        "talk to the docker engine",
        io::Error::new(io::ErrorKind::UnexpectedEof, message),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn links_resolve_beside_the_link_or_from_the_root() {
        assert_eq!(
            resolve_link(Path::new("/tmp/out/link"), Path::new("real")),
            Path::new("/tmp/out/real")
        );
        assert_eq!(
            resolve_link(Path::new("/tmp/link"), Path::new("/etc/x")),
            Path::new("/etc/x")
        );
    }

    #[test]
    fn since_has_nanoseconds() {
        let since = unix_time_before(Duration::from_secs(1));
        let (secs, nanos) = since.split_once('.').unwrap();
        assert!(secs.parse::<u64>().unwrap() > 1_600_000_000);
        assert_eq!(nanos.len(), 9);
    }
}
