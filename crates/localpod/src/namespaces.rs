//! The namespaces backend of `argoexec run`: the pod out of Linux namespaces on this machine.
//! A pause process is PID 1 of the pod's PID namespace, and a shim per container builds its root
//! and holds its output (see the crate doc); [`run_pod`] plans the pod, and the shared supervise
//! loop drives it through [`Namespaces`].

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;

use argoexec_pod::StepPod;
use k8s_openapi::api::core::v1::Container;
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};

use crate::Error;
use crate::api::PodApi;
use crate::env::{KeyedDirs, PodInfo};
use crate::plan::{self, Dirs, Limits, Prepared, Role, RunOptions, prepare};
use crate::report::{ContainerResult, PodReport, read_report, read_termination_message};
use crate::shim::{self, BindMount, ShimSpec};
use crate::supervise::{self, Backend, Exited, Started, Watches};
use crate::volumes;

/// Runs the pod to its end: init containers in order, then every container together.
pub async fn run_pod(step: &StepPod, options: &RunOptions) -> Result<PodReport, Error> {
    let mut step = plan::step_with_repository(step, options)?;
    let mut dirs = Dirs::create(&options.workdir)?;
    if options.runtime == Some(argoexec_config::RuntimeKind::Emissary) {
        crate::emissary::rewrite(&mut step)?;
    }
    if let Some(api) = &options.api {
        crate::api::rewrite(&mut step, api.runtime)?;
    }
    let mut info = plan::pod_info(&step.pod);
    let keyed = KeyedDirs {
        secrets: options.secrets.as_deref(),
        configmaps: options.configmaps.as_deref(),
    };
    let volumes = volumes::prepare(&step.pod, &info, keyed, &dirs.volumes)?;
    let api = match &options.api {
        Some(api_options) => {
            let (api, access) = PodApi::start(
                &step,
                &info,
                keyed,
                &dirs.state,
                &dirs.root.join("kube"),
                api_options,
                &options.exe,
            )?;
            info.uid = api.uid().to_owned();
            dirs.api = Some(access);
            Some(Arc::new(api))
        }
        None => None,
    };
    let spec = step.pod.spec.clone().unwrap_or_default();
    // A PNS wait must hold each container's root before the container can exit, or a quick main's
    // files are lost (a race Argo's PNS runtime has in real pods); here the runner can close it.
    let wait_uses_pns = spec.containers.iter().any(|c| {
        c.name == "wait"
            && c.env.iter().flatten().any(|e| {
                e.name == argoexec_config::env::ARGO_CONTAINER_RUNTIME_EXECUTOR
                    && e.value.as_deref() == Some("pns")
            })
    });
    // Only under --api, where the pod was rewritten for its runtime, does a pod that does not
    // share its process namespace get one per container; other pods keep the shared namespace
    // the local runner has always given them.
    let own_pid_ns = options.api.is_some() && spec.share_process_namespace != Some(true);
    let pause = Pause::start(&options.exe)?;
    let limits = Limits::starting_now(&spec, options.linger);
    let mut shims: Vec<(Role, ShimSpec)> = Vec::new();
    for (role, c) in plan::containers(&spec, &step) {
        let mut shim = container_spec(c, role, &info, keyed, &volumes, &dirs, options, &pause)?;
        if !matches!(role, Role::Init | Role::Wait) && wait_uses_pns {
            hold_until_seen(&mut shim);
        }
        shim.own_pid_ns = own_pid_ns;
        shims.push((role, shim));
    }
    let names: Vec<(Role, String)> = shims.iter().map(|(r, s)| (*r, s.name.clone())).collect();
    let mut backend = Namespaces {
        shims: &shims,
        dirs: &dirs,
        options,
        step: &step,
        pause,
        api,
        pids: BTreeMap::new(),
        watches: Watches::new(),
        exited: Vec::new(),
    };
    supervise::run(&mut backend, &names, limits).await
}

/// The pod's containers as shims under one pause process.
struct Namespaces<'a> {
    shims: &'a [(Role, ShimSpec)],
    dirs: &'a Dirs,
    options: &'a RunOptions,
    step: &'a StepPod,
    pause: Pause,
    /// Under `--api`: the pod's API server, told what kubelet would tell it.
    api: Option<Arc<PodApi>>,
    /// The first process of each running container, when its shim said.
    pids: BTreeMap<usize, Option<Pid>>,
    watches: Watches<(Option<ExitStatus>, Running)>,
    /// Containers that exited, their shims held until the pod is torn down.
    exited: Vec<Running>,
}

impl Backend for Namespaces<'_> {
    async fn start(&mut self, index: usize) -> Result<Started, Error> {
        let spec = &self.shims[index].1;
        let mut running = launch(spec, self.dirs, self.options).await?;
        let pid = running.pid;
        self.pids.insert(index, pid);
        if let (Some(api), Some(pid)) = (&self.api, pid) {
            let pid = u32::try_from(pid.as_raw()).unwrap_or_default();
            api.started(&spec.name, pid, &spec.env, spec.working_dir.as_deref());
        }
        self.watches.spawn(index, async move {
            let status = running.exited().await;
            (status, running)
        });
        Ok(if pid.is_some() {
            Started::Running
        } else {
            Started::Unconfirmed
        })
    }

    async fn next_exit(&mut self) -> Option<Exited> {
        let (index, answer) = self.watches.next().await?;
        self.pids.remove(&index);
        let status = answer.and_then(|(status, running)| {
            self.exited.push(running);
            status
        });
        let spec = &self.shims[index].1;
        let exited = Exited {
            index,
            exit_code: exit_code(spec, status),
            termination_message: read_termination_message(&spec.termination_log),
        };
        if let Some(api) = &self.api {
            api.exited(
                &spec.name,
                exited.exit_code,
                exited.termination_message.as_deref(),
            );
        }
        Some(exited)
    }

    async fn signal(&mut self, index: usize, signal: Signal) {
        if let Some(Some(pid)) = self.pids.get(&index) {
            let _ = kill(*pid, signal);
        }
    }

    fn deadline_exceeded(&mut self) {
        if let Some(api) = &self.api {
            api.deadline_exceeded();
        }
    }

    /// Lets every exited container's shim go (their filesystems are no longer needed), then
    /// kills PID 1, which kills whatever is left.
    async fn cleanup(&mut self) {
        for running in self.exited.drain(..) {
            running.release().await;
        }
        self.pause.stop().await;
        // Shims still watched (a start failed midway) are killed as their tasks drop them.
        self.watches.abort_all();
    }

    fn reported(&mut self, results: &[ContainerResult]) -> Result<Option<Value>, Error> {
        let Some(api) = &self.api else {
            return Ok(read_report(&self.dirs.report));
        };
        api.finish(results);
        if let Some(path) = self
            .options
            .api
            .as_ref()
            .and_then(|a| a.request_log.as_ref())
        {
            api.write_request_log(path)?;
        }
        Ok(api.report(self.step, results.iter().find(|c| c.role == Role::Wait)))
    }
}

/// A container's shim, started.
struct Running {
    child: tokio::process::Child,
    pid: Option<Pid>,
    /// The shim's stdout, which says `exited <code>` when the container has exited.
    lines: Option<tokio::io::Lines<BufReader<tokio::process::ChildStdout>>>,
}

impl Running {
    /// Waits until the container has exited: the shim says so and stays (holding the container's
    /// filesystem) until its stdin closes; a shim that ends without saying so is waited for.
    async fn exited(&mut self) -> Option<ExitStatus> {
        if let Some(lines) = self.lines.as_mut() {
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("exited ") {
                    return None;
                }
            }
        }
        self.child.wait().await.ok()
    }

    /// Tears the container down: closes the shim's stdin so it exits, and reaps it.
    async fn release(mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait().await;
    }
}

/// Writes the shim's spec, starts the shim and waits for the container's process to exist.
async fn launch(spec: &ShimSpec, dirs: &Dirs, options: &RunOptions) -> Result<Running, Error> {
    let spec_path = dirs.containers.join(&spec.name).join("spec.json");
    let json = serde_json::to_vec_pretty(spec).map_err(|source| Error::Spec {
        path: spec_path.clone(),
        source,
    })?;
    std::fs::write(&spec_path, json).map_err(Error::io("write", &spec_path))?;
    let mut child = tokio::process::Command::new(&options.exe)
        .arg("__shim")
        .arg(&spec_path)
        // Held open until teardown: the shim keeps the container's filesystem while it is.
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        // Ctrl-C reaches the runner, which tears the pod down; not every process at once.
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| Error::Process {
            what: format!("start the shim of container {}", spec.name),
            source,
        })?;
    let mut pid = None;
    let mut lines = child.stdout.take().map(|out| BufReader::new(out).lines());
    if let Some(Ok(Some(line))) = match lines.as_mut() {
        Some(l) => Some(l.next_line().await),
        None => None,
    } {
        pid = line
            .trim()
            .strip_prefix("pid ")
            .and_then(|p| p.parse().ok())
            .map(Pid::from_raw);
    }
    Ok(Running { child, pid, lines })
}

/// The exit code the shim recorded, else the shim's own.
fn exit_code(spec: &ShimSpec, status: Option<ExitStatus>) -> Option<i32> {
    let recorded = std::fs::read_to_string(spec.state_dir.join(shim::EXITCODE_FILE))
        .ok()
        .and_then(|t| t.trim().parse().ok());
    recorded.or_else(|| status.and_then(|s| s.code()))
}

/// The pod's PID 1, started in a new PID namespace.
struct Pause {
    pid: u32,
    child: Option<std::process::Child>,
}

impl Pause {
    fn start(exe: &Path) -> Result<Self, Error> {
        let exe = exe.to_owned();
        // unshare(CLONE_NEWPID) changes the PID namespace of the calling thread's future
        // children only: a short-lived thread does it, so that its one child, the pause
        // process, is PID 1 of the new namespace, and nothing else the runner starts is inside.
        let spawned = std::thread::spawn(move || {
            unshare(CloneFlags::CLONE_NEWPID).map_err(Error::sys("unshare a PID namespace"))?;
            std::process::Command::new(&exe)
                .arg("__pause")
                // The runner holds the write end: should it die, pause sees EOF and the pod ends.
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .process_group(0)
                .spawn()
                .map_err(|source| Error::Process {
                    what: "start the pod's pause process".into(),
                    source,
                })
        })
        .join();
        let child = spawned.map_err(|_| Error::Process {
            what: "start the pod's pause process".into(),
            source: std::io::Error::other("the starting thread panicked"),
        })??;
        Ok(Self {
            pid: child.id(),
            child: Some(child),
        })
    }

    /// The PID namespace the containers join.
    fn pid_ns(&self) -> PathBuf {
        PathBuf::from(format!("/proc/{}/ns/pid", self.pid))
    }

    /// Kills PID 1, which kills whatever is left in the namespace.
    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = tokio::task::spawn_blocking(move || child.wait()).await;
        }
    }
}

impl Drop for Pause {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
        }
    }
}

/// Everything about a container that the shim needs.
#[allow(clippy::too_many_arguments)]
fn container_spec(
    c: &Container,
    role: Role,
    info: &PodInfo,
    keyed: KeyedDirs<'_>,
    volumes: &BTreeMap<String, PathBuf>,
    dirs: &Dirs,
    options: &RunOptions,
    pause: &Pause,
) -> Result<ShimSpec, Error> {
    let fail = |message: String| Error::Container {
        container: c.name.clone(),
        message,
    };
    let Prepared {
        mut env,
        mut argv,
        executor,
    } = prepare(c, role, info, keyed, dirs)?;
    // Init and wait run another executor when asked; what they copy for the emissary is theirs.
    let other_executor = options.executor_binary.clone().filter(|_| executor);
    if other_executor.is_some()
        && let Some(program) = argv.first_mut()
    {
        *program = shim::EXECUTOR_IN_CONTAINER.into();
        // Argo's emissary copies the `argoexec` its PATH finds (in the image, itself).
        let dir = shim::EXECUTOR_DIR_IN_CONTAINER;
        match env.iter_mut().rev().find(|(name, _)| name == "PATH") {
            Some((_, path)) => *path = format!("{dir}:{path}"),
            None => env.push(("PATH".into(), dir.into())),
        }
    }
    if c.command.as_ref().is_none_or(Vec::is_empty) && !executor {
        return Err(fail(
            "no command: images are not pulled, so the entrypoint of the image is unknown; \
             give the container a command"
                .into(),
        ));
    }
    let mut mounts = volumes::mounts(c, volumes, &env, false)?;
    if executor {
        // init and wait reach the state directory, the report file and the local repository at
        // their paths on this machine.
        let workdir = dirs.root.display().to_string();
        if let Some(shadow) = mounts
            .iter()
            .find(|m| Path::new(&workdir).starts_with(&m.target))
        {
            return Err(fail(format!(
                "the volume mounted at {} hides the work directory {workdir}: choose --workdir elsewhere",
                shadow.target
            )));
        }
        mounts.push(BindMount {
            source: dirs.root.clone(),
            target: workdir,
            read_only: false,
        });
        if let Some(access) = &dirs.api {
            mounts.extend(access.mounts.iter().cloned());
        }
        volumes::sort_mounts(&mut mounts);
    }
    let own = dirs.containers.join(&c.name);
    let tmp = own.join("tmp");
    let rootfs = own.join("rootfs");
    let termination_log = own.join("termination-log");
    for dir in [&tmp, &rootfs] {
        std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
    }
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o1777))
        .map_err(Error::io("chmod", &tmp))?;
    std::fs::write(&termination_log, b"").map_err(Error::io("create", &termination_log))?;
    Ok(ShimSpec {
        name: c.name.clone(),
        pid_ns: pause.pid_ns(),
        own_pid_ns: false,
        hostname: info.name.clone(),
        rootfs,
        exe: options.exe.clone(),
        executor: other_executor,
        argv,
        env,
        working_dir: c.working_dir.clone().filter(|d| !d.is_empty()),
        mounts,
        state_dir: dirs.state.join(&c.name),
        await_seen: false,
        termination_log,
        tmp,
        echo: options.echo,
    })
}

/// Makes the container start its command only once wait's PNS runtime holds it: its state
/// directory is bound read-only where the trampoline watches for the `seen` file.
fn hold_until_seen(shim: &mut ShimSpec) {
    shim.await_seen = true;
    shim.mounts.push(BindMount {
        source: shim.state_dir.clone(),
        target: crate::shim::STATE_IN_CONTAINER.into(),
        read_only: true,
    });
    volumes::sort_mounts(&mut shim.mounts);
}
