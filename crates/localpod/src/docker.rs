//! `argoexec run --backend docker`: the pod as real containers of a local Docker Engine, as
//! kubelet's dockershim made them.
//!
//! - A sandbox container (`POD`) owns the pod's namespaces: it runs this binary's `__pause` as
//!   PID 1 (reaping orphans), with this machine's network and the pod's name as hostname. Every
//!   other container joins its PID, IPC and network namespaces (`container:<sandbox>`).
//! - Containers carry kubelet's labels (`io.kubernetes.pod.namespace`, `.pod.name`, `.pod.uid`,
//!   `.container.name`) and names (`k8s_<container>_<pod>_<namespace>_<uid>_0`), so the docker
//!   runtime in the wait container finds them as it would on a node.
//! - Volumes are directories of the work directory (or given ones), bind-mounted as the local
//!   runner mounts them; `/dev/termination-log` and the service account's `namespace` file are
//!   bind-mounted too. Init and wait get this binary at `/.argoexec/argoexec`, the work directory at
//!   its own path, and wait gets the engine's socket at `/var/run/docker.sock` unless the pod
//!   mounts one (Argo's docker-executor pods do).
//! - Images are not pulled: each must exist in the engine; [`ImageMap`] renames the manifest's
//!   images to local ones. The sandbox uses wait's image (it runs this binary too).
//! - When a container exits, its logs and exit code are written to the pod state directory as the
//!   namespaces backend writes them. Every container is removed at the end.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use argoexec_pod::StepPod;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Container;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::Error;
use crate::env::{KeyedDirs, PodInfo};
use crate::runner::{
    ContainerResult, Dirs, PodReport, Prepared, Role, RunOptions, Supervisor, conclude, pod_info,
    prepare, read_report, recv, set_archive_location, sleep_until,
};
use crate::shim::EXE_IN_CONTAINER;
use crate::{repo, volumes};

/// Where Argo's docker-executor pods mount the engine's socket in the wait container.
const DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// bollard's timeout covers whole requests, waits included: long enough to mean "none".
const REQUEST_TIMEOUT_SECS: u64 = 10 * 365 * 24 * 3600;
/// Where kubelet mounts the service account (its `namespace` file names the pod's namespace).
const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Manifest images to local images: `FROM=TO` pairs; `*` maps every image not named.
#[derive(Debug, Clone, Default)]
pub struct ImageMap {
    map: BTreeMap<String, String>,
}

impl ImageMap {
    /// Parses `FROM=TO` pairs.
    pub fn parse<'a>(pairs: impl IntoIterator<Item = &'a str>) -> Result<Self, String> {
        let mut map = BTreeMap::new();
        for pair in pairs {
            let (from, to) = pair
                .split_once('=')
                .filter(|(from, to)| !from.is_empty() && !to.is_empty())
                .ok_or_else(|| format!("invalid image mapping {pair:?}: expected FROM=TO"))?;
            map.insert(from.to_owned(), to.to_owned());
        }
        Ok(Self { map })
    }

    /// The local image for `image`.
    pub fn local(&self, image: &str) -> String {
        self.map
            .get(image)
            .or_else(|| self.map.get("*"))
            .cloned()
            .unwrap_or_else(|| image.to_owned())
    }
}

/// A container of the run, created in the engine.
struct Made {
    index: usize,
    id: String,
    name: String,
    role: Role,
    state_dir: PathBuf,
    termination_log: PathBuf,
}

/// Runs the pod to its end as containers of the engine at `DOCKER_HOST` (or the default socket).
pub async fn run_pod_docker(
    step: &StepPod,
    options: &RunOptions,
    images: &ImageMap,
) -> Result<PodReport, Error> {
    let engine = |what: &str| {
        let what = what.to_owned();
        move |e: bollard::errors::Error| Error::Docker {
            what: what.clone(),
            message: e.to_string(),
        }
    };
    let host = std::env::var(argoexec_config::env::DOCKER_HOST)
        .ok()
        .filter(|host| !host.is_empty());
    let socket = host
        .as_deref()
        .map_or(DOCKER_SOCKET, |host| {
            host.strip_prefix("unix://").unwrap_or(host)
        })
        .to_owned();
    let docker =
        Docker::connect_with_unix(&socket, REQUEST_TIMEOUT_SECS, bollard::API_DEFAULT_VERSION)
            .map_err(engine("connect to the engine"))?;
    let docker = docker
        .negotiate_version()
        .await
        .map_err(engine("negotiate the engine's API version"))?;
    let mut step = step.clone();
    let dirs = Dirs::create(&options.workdir)?;
    if let Some(path) = &options.artifact_repo {
        let info = pod_info(&step.pod);
        let names = repo::Names {
            workflow: &info.workflow_name,
            namespace: &info.namespace,
            pod: &info.name,
        };
        let location = repo::load(path, &names)?;
        set_archive_location(&mut step, location)?;
    }
    let info = pod_info(&step.pod);
    refuse_existing(&docker, &info).await?;
    let keyed = KeyedDirs {
        secrets: options.secrets.as_deref(),
        configmaps: options.configmaps.as_deref(),
    };
    let volumes = volumes::prepare(&step.pod, &info, keyed, &dirs.volumes)?;
    let service_account = dirs.containers.join("serviceaccount");
    std::fs::create_dir_all(&service_account).map_err(Error::io("create", &service_account))?;
    let namespace_file = service_account.join("namespace");
    std::fs::write(&namespace_file, &info.namespace)
        .map_err(Error::io("write", &namespace_file))?;
    let spec = step.pod.spec.clone().unwrap_or_default();
    let mains = step.template.main_container_names();
    let mut plan: Vec<(Role, &Container)> = Vec::new();
    for c in spec.init_containers.iter().flatten() {
        plan.push((Role::Init, c));
    }
    for c in &spec.containers {
        let role = if c.name == "wait" {
            Role::Wait
        } else if mains.contains(&c.name.as_str()) {
            Role::Main
        } else {
            Role::Sidecar
        };
        plan.push((role, c));
    }
    let pause_image = plan
        .iter()
        .find(|(role, _)| *role == Role::Wait)
        .or_else(|| plan.first())
        .and_then(|(_, c)| c.image.as_deref())
        .map(|image| images.local(image))
        .ok_or_else(|| Error::Container {
            container: "POD".into(),
            message: "the pod has no container whose image the sandbox could use".into(),
        })?;
    let started = Instant::now();
    let mut supervisor = Supervisor::new(&spec, started, options.linger);
    let mut results: Vec<ContainerResult> = plan
        .iter()
        .map(|(role, c)| ContainerResult {
            name: c.name.clone(),
            exit_code: None,
            role: *role,
            termination_message: None,
            started_after: None,
        })
        .collect();
    let pod = Pod {
        docker: &docker,
        info: &info,
        dirs: &dirs,
        options,
        images,
        keyed,
        volumes: &volumes,
        service_account: &service_account,
        socket: Path::new(&socket),
    };
    let mut made: Vec<String> = Vec::new();
    let outcome = pod
        .run(
            &plan,
            &pause_image,
            &mut supervisor,
            &mut results,
            &mut made,
        )
        .await;
    for id in made.iter().rev() {
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        if let Err(e) = docker.remove_container(id, Some(options)).await {
            tracing::warn!(id, error = %e, "Failed to remove container");
        }
    }
    outcome?;
    let report = read_report(&dirs.report);
    Ok(conclude(results, supervisor, report))
}

/// Fails when the engine already has containers of this pod: the docker runtime would confuse
/// them with this run's.
async fn refuse_existing(docker: &Docker, info: &PodInfo) -> Result<(), Error> {
    let filters = HashMap::from([("label", pod_labels(info))]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    let found = docker
        .list_containers(Some(options))
        .await
        .map_err(|e| Error::Docker {
            what: "list containers".into(),
            message: e.to_string(),
        })?;
    if found.is_empty() {
        return Ok(());
    }
    Err(Error::Docker {
        what: format!("run pod {}/{}", info.namespace, info.name),
        message: format!(
            "the engine already has {} container(s) of this pod; remove them first: \
             docker rm -f $(docker ps -aq --filter label=io.kubernetes.pod.namespace={} \
             --filter label=io.kubernetes.pod.name={})",
            found.len(),
            info.namespace,
            info.name
        ),
    })
}

fn pod_labels(info: &PodInfo) -> Vec<String> {
    vec![
        format!("io.kubernetes.pod.namespace={}", info.namespace),
        format!("io.kubernetes.pod.name={}", info.name),
    ]
}

/// What making the pod's containers needs.
struct Pod<'a> {
    docker: &'a Docker,
    info: &'a PodInfo,
    dirs: &'a Dirs,
    options: &'a RunOptions,
    images: &'a ImageMap,
    keyed: KeyedDirs<'a>,
    volumes: &'a BTreeMap<String, PathBuf>,
    service_account: &'a Path,
    /// The engine's socket on this machine, mounted into wait.
    socket: &'a Path,
}

impl Pod<'_> {
    fn fail(&self, what: String) -> impl Fn(bollard::errors::Error) -> Error {
        move |e| Error::Docker {
            what: what.clone(),
            message: e.to_string(),
        }
    }

    /// The sandbox, then init containers one by one, then the rest together. Every container
    /// made is pushed to `made`, to be removed.
    async fn run(
        &self,
        plan: &[(Role, &Container)],
        pause_image: &str,
        supervisor: &mut Supervisor,
        results: &mut [ContainerResult],
        made: &mut Vec<String>,
    ) -> Result<(), Error> {
        let sandbox = self.sandbox(pause_image).await?;
        made.push(sandbox.clone());
        for (index, (role, c)) in plan.iter().enumerate() {
            if *role != Role::Init {
                continue;
            }
            let container = self.create(index, *role, c, &sandbox).await?;
            made.push(container.id.clone());
            if self.start(&container, supervisor, results).await? {
                self.supervise(vec![container], supervisor, results).await;
            }
            if results[index].exit_code != Some(0) || supervisor.deadline_exceeded {
                return Ok(());
            }
        }
        let mut group = Vec::new();
        for (index, (role, c)) in plan.iter().enumerate() {
            if *role == Role::Init {
                continue;
            }
            let container = self.create(index, *role, c, &sandbox).await?;
            made.push(container.id.clone());
            group.push(container);
        }
        let mut started = Vec::with_capacity(group.len());
        for container in group {
            if self.start(&container, supervisor, results).await? {
                started.push(container);
            }
        }
        self.supervise(started, supervisor, results).await;
        Ok(())
    }

    async fn sandbox(&self, image: &str) -> Result<String, Error> {
        let mut labels = self.labels("POD");
        labels.insert("io.kubernetes.docker.type".into(), "podsandbox".into());
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            cmd: Some(vec![EXE_IN_CONTAINER.into(), "__pause".into()]),
            hostname: Some(self.info.name.clone()),
            labels: Some(labels),
            // pause exits when its stdin closes: the engine holds it open while it runs.
            open_stdin: Some(true),
            host_config: Some(HostConfig {
                binds: Some(vec![format!(
                    "{}:{EXE_IN_CONTAINER}:ro",
                    self.options.exe.display()
                )]),
                network_mode: Some("host".into()),
                ipc_mode: Some("shareable".into()),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        };
        let name = self.docker_name("POD");
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let id = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(self.fail(format!("create the sandbox from image {image}")))?
            .id;
        self.docker
            .start_container(&id, None)
            .await
            .map_err(self.fail("start the sandbox".into()))?;
        Ok(id)
    }

    async fn create(
        &self,
        index: usize,
        role: Role,
        c: &Container,
        sandbox: &str,
    ) -> Result<Made, Error> {
        let Prepared {
            env,
            argv,
            executor,
        } = prepare(c, role, self.info, self.keyed, self.dirs)?;
        let mut binds: Vec<String> = volumes::mounts(c, self.volumes, &env)?
            .into_iter()
            .map(|m| {
                let ro = if m.read_only { ":ro" } else { "" };
                format!("{}:{}{ro}", m.source.display(), m.target)
            })
            .collect();
        let own = self.dirs.containers.join(&c.name);
        std::fs::create_dir_all(&own).map_err(Error::io("create", &own))?;
        let termination_log = own.join("termination-log");
        std::fs::write(&termination_log, b"").map_err(Error::io("create", &termination_log))?;
        binds.push(format!(
            "{}:/dev/termination-log",
            termination_log.display()
        ));
        binds.push(format!(
            "{}:{SERVICE_ACCOUNT_DIR}:ro",
            self.service_account.display()
        ));
        if executor {
            binds.push(format!(
                "{}:{EXE_IN_CONTAINER}:ro",
                self.options.exe.display()
            ));
            let workdir = self.dirs.root.display().to_string();
            binds.push(format!("{workdir}:{workdir}"));
        }
        let mounted_socket = c
            .volume_mounts
            .iter()
            .flatten()
            .any(|m| m.mount_path == DOCKER_SOCKET);
        if role == Role::Wait && !mounted_socket {
            binds.push(format!("{}:{DOCKER_SOCKET}", self.socket.display()));
        }
        let image = self.images.local(c.image.as_deref().unwrap_or_default());
        let caps: Vec<String> = c
            .security_context
            .as_ref()
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|caps| caps.add.clone())
            .unwrap_or_default();
        let join = format!("container:{sandbox}");
        let body = ContainerCreateBody {
            image: Some(image.clone()),
            cmd: (!argv.is_empty()).then_some(argv),
            env: Some(env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            working_dir: c.working_dir.clone().filter(|d| !d.is_empty()),
            labels: Some(self.labels(&c.name)),
            host_config: Some(HostConfig {
                binds: Some(binds),
                network_mode: Some(join.clone()),
                pid_mode: Some(join.clone()),
                ipc_mode: Some(join),
                cap_add: (!caps.is_empty()).then_some(caps),
                privileged: c.security_context.as_ref().and_then(|s| s.privileged),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        };
        let name = self.docker_name(&c.name);
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let id = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(self.fail(format!("create container {} from image {image}", c.name)))?
            .id;
        Ok(Made {
            index,
            id,
            name: c.name.clone(),
            role,
            state_dir: self.dirs.state.join(&c.name),
            termination_log,
        })
    }

    /// Starts the container; `false` when the engine could not run its process (recorded as
    /// its exit).
    async fn start(
        &self,
        container: &Made,
        supervisor: &Supervisor,
        results: &mut [ContainerResult],
    ) -> Result<bool, Error> {
        if let Err(e) = self.docker.start_container(&container.id, None).await {
            // A container whose process cannot run (a missing entrypoint) ends as the kubelet
            // records it: terminated with the engine's exit code; the pod goes on without it.
            let state = self
                .docker
                .inspect_container(&container.id, None)
                .await
                .ok()
                .and_then(|inspected| inspected.state)
                .filter(|state| state.error.as_deref().is_some_and(|e| !e.is_empty()));
            let Some(code) = state.and_then(|state| state.exit_code) else {
                return Err(self.fail(format!("start container {}", container.name))(e));
            };
            let code = i32::try_from(code).unwrap_or(i32::MAX);
            tracing::warn!(container = %container.name, code, error = %e, "Container could not start");
            self.record(container, Some(code)).await;
            results[container.index].exit_code = Some(code);
            return Ok(false);
        }
        let after = supervisor.started.elapsed();
        results[container.index].started_after = Some(after);
        tracing::info!(container = %container.name, after_ms = after.as_secs_f64() * 1e3, "Container started");
        Ok(true)
    }

    /// Waits until every container of the group has exited, enforcing the deadline and the
    /// sidecars' linger, and records each one's exit code, logs and termination message.
    async fn supervise(
        &self,
        group: Vec<Made>,
        supervisor: &mut Supervisor,
        results: &mut [ContainerResult],
    ) {
        let mut running: BTreeMap<usize, (String, Role)> = BTreeMap::new();
        let mut set = JoinSet::new();
        for container in group {
            running.insert(container.index, (container.id.clone(), container.role));
            let docker = self.docker.clone();
            set.spawn(async move {
                let code = wait(&docker, &container.id).await;
                (container, code)
            });
        }
        let leaders: Vec<usize> = running
            .iter()
            .filter(|(_, (_, role))| matches!(role, Role::Wait | Role::Main))
            .map(|(i, _)| *i)
            .collect();
        let mut linger_at: Option<Instant> = None;
        let mut escalate_at: Option<Instant> = None;
        let mut interrupt =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        while !set.is_empty() {
            tokio::select! {
                Some(joined) = set.join_next() => {
                    if let Ok((container, code)) = joined {
                        running.remove(&container.index);
                        self.record(&container, code).await;
                        results[container.index].exit_code = code;
                        results[container.index].termination_message =
                            std::fs::read_to_string(&container.termination_log)
                                .ok()
                                .map(|t| t.trim().to_owned())
                                .filter(|t| !t.is_empty());
                    }
                    let leaders_done = !leaders.is_empty() && leaders.iter().all(|i| !running.contains_key(i));
                    if leaders_done && !running.is_empty() && linger_at.is_none() {
                        linger_at = Some(Instant::now() + supervisor.linger);
                    }
                }
                () = sleep_until(linger_at) => {
                    linger_at = Some(Instant::now() + Duration::from_secs(86_400 * 365));
                    for index in running.keys() {
                        let name = &results[*index].name;
                        supervisor.notes.push(format!(
                            "sidecar {name} was still running {:?} after wait and main exited: killed",
                            supervisor.linger
                        ));
                    }
                    self.signal_all(&running, "SIGKILL").await;
                }
                () = sleep_until(supervisor.deadline.filter(|_| !supervisor.deadline_exceeded)) => {
                    supervisor.deadline_exceeded = true;
                    supervisor.notes.push("pod exceeded activeDeadlineSeconds: containers terminated".into());
                    tracing::warn!("Pod exceeded its active deadline: terminating containers");
                    self.signal_all(&running, "SIGTERM").await;
                    escalate_at = Some(Instant::now() + supervisor.grace);
                }
                () = sleep_until(escalate_at) => {
                    escalate_at = None;
                    self.signal_all(&running, "SIGKILL").await;
                }
                Some(()) = recv(&mut interrupt) => {
                    let signal = if supervisor.interrupted { "SIGKILL" } else { "SIGTERM" };
                    if !supervisor.interrupted {
                        supervisor.interrupted = true;
                        supervisor.notes.push("interrupted: containers terminated".into());
                        escalate_at = Some(Instant::now() + supervisor.grace);
                    }
                    self.signal_all(&running, signal).await;
                }
                Some(()) = recv(&mut terminate) => {
                    supervisor.interrupted = true;
                    self.signal_all(&running, "SIGKILL").await;
                }
            }
        }
    }

    async fn signal_all(&self, running: &BTreeMap<usize, (String, Role)>, signal: &str) {
        for (id, _) in running.values() {
            let options = KillContainerOptionsBuilder::new().signal(signal).build();
            // A container that exited meanwhile refuses the signal: nothing to do.
            let _ = self.docker.kill_container(id, Some(options)).await;
        }
    }

    /// Writes the container's logs and exit code to the pod state directory, as the namespaces
    /// backend does (`stdout`, `combined`, then `exitcode`), and echoes them when asked.
    async fn record(&self, container: &Made, code: Option<i32>) {
        if let Err(e) = std::fs::create_dir_all(&container.state_dir) {
            tracing::warn!(container = %container.name, error = %e, "Failed to create the state directory");
            return;
        }
        for (file, stderr) in [("stdout", false), ("combined", true)] {
            let options = LogsOptionsBuilder::new()
                .stdout(true)
                .stderr(stderr)
                .build();
            let mut logs = self.docker.logs(&container.id, Some(options));
            let mut bytes = Vec::new();
            while let Some(Ok(chunk)) = logs.next().await {
                bytes.extend_from_slice(&chunk.into_bytes());
            }
            if stderr && self.options.echo {
                for line in String::from_utf8_lossy(&bytes).lines() {
                    eprintln!("[{}] {line}", container.name);
                }
            }
            let path = container.state_dir.join(file);
            if let Err(e) = std::fs::write(&path, &bytes) {
                tracing::warn!(path = %path.display(), error = %e, "Failed to write logs");
            }
        }
        if let Some(code) = code {
            let path = container.state_dir.join("exitcode");
            if let Err(e) = std::fs::write(&path, code.to_string()) {
                tracing::warn!(path = %path.display(), error = %e, "Failed to write the exit code");
            }
        }
    }

    fn labels(&self, container: &str) -> HashMap<String, String> {
        HashMap::from([
            (
                "io.kubernetes.pod.namespace".to_owned(),
                self.info.namespace.clone(),
            ),
            ("io.kubernetes.pod.name".to_owned(), self.info.name.clone()),
            ("io.kubernetes.pod.uid".to_owned(), self.info.uid.clone()),
            (
                "io.kubernetes.container.name".to_owned(),
                container.to_owned(),
            ),
        ])
    }

    /// kubelet's (dockershim's) container name.
    fn docker_name(&self, container: &str) -> String {
        format!(
            "k8s_{container}_{}_{}_{}_0",
            self.info.name, self.info.namespace, self.info.uid
        )
    }
}

/// The container's exit code once it is no longer running; none when the engine cannot say.
async fn wait(docker: &Docker, id: &str) -> Option<i32> {
    let options = WaitContainerOptionsBuilder::new()
        .condition("not-running")
        .build();
    match docker.wait_container(id, Some(options)).next().await {
        Some(Ok(response)) => i32::try_from(response.status_code).ok(),
        // bollard reports a non-zero exit as an error.
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
            i32::try_from(code).ok()
        }
        other => {
            tracing::warn!(id, result = ?other.map(|r| r.map(|_| ())), "Waiting for a container failed");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn images_map_by_name_then_star() {
        let map = ImageMap::parse(["alpine:3.16=local/busybox:1", "*=local/base:1"]).unwrap();
        assert_eq!(map.local("alpine:3.16"), "local/busybox:1");
        assert_eq!(
            map.local("quay.io/argoproj/argoexec:v3.3.8"),
            "local/base:1"
        );
        assert_eq!(ImageMap::default().local("x:1"), "x:1");
        assert!(ImageMap::parse(["nope"]).is_err());
        assert!(ImageMap::parse(["=x"]).is_err());
    }
}
