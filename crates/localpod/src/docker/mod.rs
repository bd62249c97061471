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
//!   bind-mounted too. Init and wait get the work directory at its own path, and wait gets the
//!   engine's socket at `/var/run/docker.sock` unless the pod mounts one (Argo's docker-executor
//!   pods do).
//! - Images are not pulled: each must exist in the engine; [`ImageMap`] renames the manifest's
//!   images to local ones. Init and wait run the executor's own image, [`EXECUTOR_IMAGE`], with
//!   `argoexec` from its `PATH`, as root unless the pod's securityContext names a user (the
//!   image's user is 8737; the pns and docker runtimes need root); when the map names their
//!   image, that image instead, with this binary bound at `/.argoexec/argoexec`. The sandbox
//!   runs wait's image with this binary's `__pause` bound in (the executor's image is built
//!   without the local runner); into the executor's own image, which has no C library, this
//!   machine's loader and the libraries this binary loaded are bound as well.
//! - When a container exits, its logs and exit code are written to the pod state directory as the
//!   namespaces backend writes them. Every container is removed at the end.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use argoexec_config::SERVICE_ACCOUNT_DIR;
use argoexec_pod::StepPod;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Container, PodSecurityContext};
use nix::sys::signal::Signal;
use serde_json::Value;

use crate::Error;
use crate::env::{KeyedDirs, PodInfo};
use crate::plan::{self, Dirs, Limits, Prepared, Role, RunOptions, prepare};
use crate::report::{ContainerResult, PodReport, read_report, read_termination_message};
use crate::shim::EXE_IN_CONTAINER;
use crate::supervise::{self, Backend, Exited, Started, Watches};
use crate::volumes;

mod host;
mod image;

use image::Choice;
pub use image::{EXECUTOR_IMAGE, ImageMap};

/// Where Argo's docker-executor pods mount the engine's socket in the wait container.
const DOCKER_SOCKET: &str = "/var/run/docker.sock";
/// bollard's timeout covers whole requests, waits included: long enough to mean "none".
const REQUEST_TIMEOUT_SECS: u64 = 10 * 365 * 24 * 3600;

/// A container of the run, created in the engine.
#[derive(Debug, Clone)]
struct Made {
    id: String,
    name: String,
    state_dir: PathBuf,
    termination_log: PathBuf,
}

/// Runs the pod to its end as containers of the engine at `DOCKER_HOST` (or the default socket).
pub async fn run_pod_docker(
    step: &StepPod,
    options: &RunOptions,
    images: &ImageMap,
) -> Result<PodReport, Error> {
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
            .map_err(engine("connect to the engine".into()))?;
    let docker = docker
        .negotiate_version()
        .await
        .map_err(engine("negotiate the engine's API version".into()))?;
    let step = plan::step_with_repository(step, options)?;
    let dirs = Dirs::create(&options.workdir)?;
    let info = plan::pod_info(&step.pod);
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
    let containers = plan::containers(&spec, &step);
    // The sandbox runs this binary's `__pause` in wait's image, as an executor's.
    let sandbox_image = containers
        .iter()
        .find(|(role, _)| *role == Role::Wait)
        .or_else(|| containers.first())
        .and_then(|(_, c)| c.image.as_deref())
        .map(|image| images.choose(image, true))
        .ok_or_else(|| Error::Container {
            container: "POD".into(),
            message: "the pod has no container whose image the sandbox could use".into(),
        })?;
    let names: Vec<(Role, String)> = containers
        .iter()
        .map(|(role, c)| (*role, c.name.clone()))
        .collect();
    let limits = Limits::starting_now(&spec, options.linger);
    let mut pod = Pod {
        docker: &docker,
        info: &info,
        dirs: &dirs,
        options,
        images,
        keyed,
        volumes: &volumes,
        service_account: &service_account,
        socket: Path::new(&socket),
        containers: &containers,
        pod_security: spec.security_context.as_ref(),
        sandbox_image,
        sandbox: None,
        made: BTreeMap::new(),
        removable: Vec::new(),
        watches: Watches::new(),
    };
    supervise::run(&mut pod, &names, limits).await
}

/// The engine's failure as an [`Error`], saying what was being done.
fn engine(what: String) -> impl Fn(bollard::errors::Error) -> Error {
    move |e| Error::Docker {
        what: what.clone(),
        message: e.to_string(),
    }
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

/// The pod's containers in the engine: one sandbox, the others joined to it.
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
    containers: &'a [(Role, &'a Container)],
    /// The pod's securityContext (`runAsUser`, `runAsGroup` for every container).
    pod_security: Option<&'a PodSecurityContext>,
    sandbox_image: Choice,
    /// The sandbox's id, once made.
    sandbox: Option<String>,
    /// The pod's containers made so far, by index.
    made: BTreeMap<usize, Made>,
    /// Every container made (the sandbox first), to be removed at the end.
    removable: Vec<String>,
    watches: Watches<Option<i32>>,
}

impl Backend for Pod<'_> {
    /// Makes the container, and the sandbox first if it is not there yet.
    async fn create(&mut self, index: usize) -> Result<(), Error> {
        let sandbox = match &self.sandbox {
            Some(id) => id.clone(),
            None => {
                let id = self.sandbox().await?;
                self.sandbox = Some(id.clone());
                id
            }
        };
        let made = self.make(index, &sandbox).await?;
        self.made.insert(index, made);
        Ok(())
    }

    async fn start(&mut self, index: usize) -> Result<Started, Error> {
        let Some(container) = self.made.get(&index).cloned() else {
            return Err(Error::Container {
                container: self.containers[index].1.name.clone(),
                message: "started before it was made".into(),
            });
        };
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
                return Err(engine(format!("start container {}", container.name))(e));
            };
            let code = i32::try_from(code).unwrap_or(i32::MAX);
            tracing::warn!(container = %container.name, error = %e, "The engine could not start the container");
            record(self.docker, &container, Some(code), self.options.echo).await;
            return Ok(Started::Failed(code));
        }
        let docker = self.docker.clone();
        let echo = self.options.echo;
        // The logs and exit code are recorded by the watch itself: a dropped next_exit loses nothing.
        self.watches.spawn(index, async move {
            let code = wait(&docker, &container.id).await;
            record(&docker, &container, code, echo).await;
            code
        });
        Ok(Started::Running)
    }

    async fn next_exit(&mut self) -> Option<Exited> {
        let (index, code) = self.watches.next().await?;
        let termination_message = self
            .made
            .get(&index)
            .and_then(|made| read_termination_message(&made.termination_log));
        Some(Exited {
            index,
            exit_code: code.flatten(),
            termination_message,
        })
    }

    async fn signal(&mut self, index: usize, signal: Signal) {
        let Some(made) = self.made.get(&index) else {
            return;
        };
        let options = KillContainerOptionsBuilder::new()
            .signal(signal.as_str())
            .build();
        // A container that exited meanwhile refuses the signal: nothing to do.
        let _ = self.docker.kill_container(&made.id, Some(options)).await;
    }

    async fn cleanup(&mut self) {
        self.watches.abort_all();
        for id in self.removable.iter().rev() {
            let options = RemoveContainerOptionsBuilder::new().force(true).build();
            if let Err(e) = self.docker.remove_container(id, Some(options)).await {
                tracing::warn!(id, error = %e, "Failed to remove container");
            }
        }
    }

    fn reported(&mut self, _results: &[ContainerResult]) -> Result<Option<Value>, Error> {
        Ok(read_report(&self.dirs.report))
    }
}

impl Pod<'_> {
    async fn sandbox(&mut self) -> Result<String, Error> {
        let mut labels = self.labels("POD");
        labels.insert("io.kubernetes.docker.type".into(), "podsandbox".into());
        let choice = self.sandbox_image.clone();
        // `__pause` is the local runner's, which the executor's image leaves out: the sandbox
        // always runs this binary, bound in. A mapped image brings the C library it links
        // against; the executor's own image (`FROM scratch`) has none, so this machine's loader
        // and libraries are bound in beside it.
        let mut binds = vec![format!(
            "{}:{EXE_IN_CONTAINER}:ro",
            self.options.exe.display()
        )];
        let mut env = None;
        if !choice.bind_exe {
            let runtime = host::runtime_of_this_binary()?;
            binds.extend(runtime.binds);
            env = runtime
                .library_path
                .map(|path| vec![format!("LD_LIBRARY_PATH={path}")]);
        }
        let body = ContainerCreateBody {
            image: Some(choice.image.clone()),
            entrypoint: Some(vec![EXE_IN_CONTAINER.into()]),
            cmd: Some(vec!["__pause".into()]),
            env,
            hostname: Some(self.info.name.clone()),
            labels: Some(labels),
            // pause exits when its stdin closes: the engine holds it open while it runs.
            open_stdin: Some(true),
            host_config: Some(HostConfig {
                binds: Some(binds),
                network_mode: Some("host".into()),
                ipc_mode: Some("shareable".into()),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        };
        let id = self.create_container("POD", &choice, body).await?;
        self.docker
            .start_container(&id, None)
            .await
            .map_err(engine("start the sandbox".into()))?;
        Ok(id)
    }

    /// Creates a container in the engine, remembered for removal; a missing image is named
    /// with the way to get it.
    async fn create_container(
        &mut self,
        container: &str,
        choice: &Choice,
        body: ContainerCreateBody,
    ) -> Result<String, Error> {
        let name = self.docker_name(container);
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let what = format!("create container {container} from image {}", choice.image);
        match self.docker.create_container(Some(options), body).await {
            Ok(created) => {
                self.removable.push(created.id.clone());
                Ok(created.id)
            }
            Err(e) => match self.docker.inspect_image(&choice.image).await {
                Err(bollard::errors::Error::DockerResponseServerError {
                    status_code: 404, ..
                }) => Err(Error::Docker {
                    what,
                    message: choice.missing(),
                }),
                _ => Err(engine(what)(e)),
            },
        }
    }

    async fn make(&mut self, index: usize, sandbox: &str) -> Result<Made, Error> {
        let (role, c) = self.containers[index];
        let Prepared {
            env,
            mut argv,
            executor,
        } = prepare(c, role, self.info, self.keyed, self.dirs)?;
        let choice = self
            .images
            .choose(c.image.as_deref().unwrap_or_default(), executor);
        let mut binds: Vec<String> = volumes::mounts(c, self.volumes, &env, true)?
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
            if choice.bind_exe {
                binds.push(format!(
                    "{}:{EXE_IN_CONTAINER}:ro",
                    self.options.exe.display()
                ));
            } else if let Some(program) = argv.first_mut().filter(|p| *p == EXE_IN_CONTAINER) {
                choice.executor_program().clone_into(program);
            }
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
        let caps: Vec<String> = c
            .security_context
            .as_ref()
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|caps| caps.add.clone())
            .unwrap_or_default();
        let join = format!("container:{sandbox}");
        // As kubelet: a command replaces the image's entrypoint (the executor's image has one),
        // args alone follow it.
        let has_command = executor || c.command.as_ref().is_some_and(|c| !c.is_empty());
        let (entrypoint, cmd) = match argv.is_empty() {
            true => (None, None),
            false if has_command => (Some(argv), None),
            false => (None, Some(argv)),
        };
        let body = ContainerCreateBody {
            image: Some(choice.image.clone()),
            entrypoint,
            cmd,
            user: user(c, self.pod_security, executor),
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
        let id = self.create_container(&c.name, &choice, body).await?;
        Ok(Made {
            id,
            name: c.name.clone(),
            state_dir: self.dirs.state.join(&c.name),
            termination_log,
        })
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

/// The user a container runs as: the container's or else the pod's `runAsUser` (and
/// `runAsGroup`), as kubelet sets them; otherwise root for Argo's executor, whose image runs as
/// a non-root user (8737, like Argo's) while the pns and docker runtimes of wait need root, as
/// the controller's pods get it; otherwise the image's own user.
fn user(c: &Container, pod: Option<&PodSecurityContext>, executor: bool) -> Option<String> {
    let own = c.security_context.as_ref();
    let uid = own
        .and_then(|s| s.run_as_user)
        .or_else(|| pod.and_then(|p| p.run_as_user));
    let gid = own
        .and_then(|s| s.run_as_group)
        .or_else(|| pod.and_then(|p| p.run_as_group));
    match (uid, gid) {
        (Some(uid), Some(gid)) => Some(format!("{uid}:{gid}")),
        (Some(uid), None) => Some(uid.to_string()),
        (None, Some(gid)) if executor => Some(format!("0:{gid}")),
        (None, None) if executor => Some("0".to_owned()),
        // The engine cannot take a group without a user: the image's user and group stay.
        (None, _) => None,
    }
}

/// Writes the container's logs and exit code to the pod state directory, as the namespaces
/// backend does (`stdout`, `combined`, then `exitcode`), and echoes them when asked.
async fn record(docker: &Docker, container: &Made, code: Option<i32>, echo: bool) {
    if let Err(e) = std::fs::create_dir_all(&container.state_dir) {
        tracing::warn!(container = %container.name, error = %e, "Failed to create the state directory");
        return;
    }
    for (file, stderr) in [("stdout", false), ("combined", true)] {
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(stderr)
            .build();
        let mut logs = docker.logs(&container.id, Some(options));
        let mut bytes = Vec::new();
        while let Some(Ok(chunk)) = logs.next().await {
            bytes.extend_from_slice(&chunk.into_bytes());
        }
        if stderr && echo {
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
        Some(Err(err)) => {
            tracing::warn!(id, error = %err, "Waiting for a container failed");
            None
        }
        None => {
            tracing::warn!(id, "Waiting for a container ended without its exit status");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use k8s_openapi::api::core::v1::SecurityContext;

    use super::*;

    fn container(uid: Option<i64>, gid: Option<i64>) -> Container {
        Container {
            security_context: Some(SecurityContext {
                run_as_user: uid,
                run_as_group: gid,
                ..SecurityContext::default()
            }),
            ..Container::default()
        }
    }

    #[test]
    fn the_executor_runs_as_root_unless_the_security_context_names_a_user() {
        let none = Container::default();
        assert_eq!(user(&none, None, true).as_deref(), Some("0"));
        assert_eq!(user(&none, None, false), None);
        assert_eq!(
            user(&container(None, Some(5)), None, true).as_deref(),
            Some("0:5")
        );
        assert_eq!(user(&container(None, Some(5)), None, false), None);
        let pod = PodSecurityContext {
            run_as_user: Some(1000),
            ..PodSecurityContext::default()
        };
        assert_eq!(user(&none, Some(&pod), true).as_deref(), Some("1000"));
        assert_eq!(user(&none, Some(&pod), false).as_deref(), Some("1000"));
        // The container's own context wins over the pod's.
        assert_eq!(
            user(&container(Some(8737), Some(8737)), Some(&pod), true).as_deref(),
            Some("8737:8737")
        );
    }
}
