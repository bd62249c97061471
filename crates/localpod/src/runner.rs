//! The runner: what kubelet does for one pod, on this machine.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use argoexec_pod::StepPod;
use argoexec_template::{ArtifactLocation, TEMPLATE_ANNOTATION};
use k8s_openapi::api::core::v1::{Container, Pod};
use nix::sched::{CloneFlags, unshare};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::Error;
use crate::api::PodApi;
use crate::env::{self, KeyedDirs, PodInfo};
use crate::repo;
use crate::shim::{self, BindMount, EXE_IN_CONTAINER, ShimSpec};
use crate::volumes;

/// Set on the wait container: the pod state directory (`<dir>/<container>/{stdout,combined,exitcode}`).
pub const POD_STATE_DIR_ENV: &str = argoexec_config::env::ARGOEXEC_POD_STATE_DIR;
/// Set on the wait container: where the local reporter writes the outputs JSON.
pub const REPORT_FILE_ENV: &str = argoexec_config::env::ARGOEXEC_REPORT_FILE;
/// Set on init and wait: the directory object store used when the template has no repository.
pub const LOCAL_REPOSITORY_ENV: &str = argoexec_config::env::ARGOEXEC_LOCAL_REPOSITORY;

/// How to run a pod.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Secrets as mounted in a pod: `DIR/<secret>/<key>`.
    pub secrets: Option<PathBuf>,
    /// ConfigMaps the same way: `DIR/<configmap>/<key>`.
    pub configmaps: Option<PathBuf>,
    /// An Argo ArtifactRepository (YAML or JSON) that becomes the template's `archiveLocation`.
    pub artifact_repo: Option<PathBuf>,
    /// The run's directory (it must exist): volumes, state, containers' roots, report, artifacts.
    pub workdir: PathBuf,
    /// This binary, run for the pause process, the shims and Argo's executor containers.
    pub exe: PathBuf,
    /// How long sidecars may outlive the wait and main containers before they are killed.
    pub linger: Duration,
    /// Echo each container's output on stderr, lines prefixed with `[container]`.
    pub echo: bool,
    /// The runtime to run the pod with instead of the one its manifest names: the pod is
    /// rewritten as Argo's controller writes it for that runtime (only emissary for now).
    pub runtime: Option<argoexec_config::RuntimeKind>,
    /// Serve the pod through an API server of its own (`--api`): init and wait talk to it.
    pub api: Option<crate::ApiOptions>,
}

/// A step's outcome, as Argo would record the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Phase {
    /// Main (and wait) succeeded.
    Succeeded,
    /// An init container or main failed, or the pod exceeded its deadline.
    Failed,
    /// The executor (wait) failed.
    Error,
}

/// What a container is in the pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// An init container.
    Init,
    /// Argo's wait container.
    Wait,
    /// A main container of the template.
    Main,
    /// Any other container.
    Sidecar,
}

/// How one container ended.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerResult {
    /// The container's name.
    pub name: String,
    /// Its exit code (a signal N gives 128+N); none when it never ran.
    pub exit_code: Option<i32>,
    /// What it is in the pod.
    pub role: Role,
    /// Its termination message (`/dev/termination-log`), if it wrote one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_message: Option<String>,
    /// From the pod's start to the container's process existing.
    #[serde(skip)]
    pub started_after: Option<Duration>,
}

/// The pod's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct PodReport {
    /// The step's phase.
    pub phase: Phase,
    /// Why, when it did not succeed (or the reporter's message).
    pub message: Option<String>,
    /// Every container that ran, init containers first.
    pub containers: Vec<ContainerResult>,
    /// The outputs the wait container reported (Argo's `outputs` JSON), if it reported any.
    pub outputs: Option<Value>,
    /// What the runner had to do that kubelet would tell in events (sidecars killed, ...).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl PodReport {
    /// A summary for people.
    pub fn render_text(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        // Writing to a String cannot fail.
        for c in &self.containers {
            let code = c
                .exit_code
                .map_or("never ran".to_owned(), |c| format!("exit code {c}"));
            let role = format!("{:?}", c.role).to_lowercase();
            let _ = writeln!(out, "{:<10} {role:<8} {code}", c.name);
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        let _ = writeln!(out, "phase: {:?}", self.phase);
        if let Some(message) = &self.message {
            let _ = writeln!(out, "message: {message}");
        }
        match &self.outputs {
            Some(outputs) => {
                let text = serde_json::to_string_pretty(outputs).unwrap_or_default();
                let _ = writeln!(out, "outputs: {text}");
            }
            None => {
                let _ = writeln!(out, "outputs: none reported");
            }
        }
        out
    }
}

/// The run's directory layout.
pub(crate) struct Dirs {
    pub(crate) root: PathBuf,
    pub(crate) state: PathBuf,
    pub(crate) volumes: PathBuf,
    pub(crate) containers: PathBuf,
    pub(crate) report: PathBuf,
    pub(crate) repository: PathBuf,
    /// Under `--api`: how init and wait reach the pod's API server (and kubelet).
    pub(crate) api: Option<crate::api::ExecutorAccess>,
}

impl Dirs {
    pub(crate) fn create(root: &Path) -> Result<Self, Error> {
        let root = std::fs::canonicalize(root).map_err(Error::io("open work directory", root))?;
        let dirs = Self {
            state: root.join("state"),
            volumes: root.join("volumes"),
            containers: root.join("containers"),
            report: root.join("outputs.json"),
            repository: root.join("artifacts"),
            api: None,
            root,
        };
        for dir in [
            &dirs.state,
            &dirs.volumes,
            &dirs.containers,
            &dirs.repository,
        ] {
            std::fs::create_dir_all(dir).map_err(Error::io("create", dir))?;
        }
        Ok(dirs)
    }
}

/// A container's shim, started.
pub(crate) struct Running {
    index: usize,
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

/// Runs the pod to its end: init containers in order, then every container together.
pub async fn run_pod(step: &StepPod, options: &RunOptions) -> Result<PodReport, Error> {
    let mut step = step.clone();
    let mut dirs = Dirs::create(&options.workdir)?;
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
    if options.runtime == Some(argoexec_config::RuntimeKind::Emissary) {
        crate::emissary::rewrite(&mut step)?;
    }
    if let Some(api) = &options.api {
        crate::api::rewrite(&mut step, api.runtime)?;
    }
    let info = pod_info(&step.pod);
    let keyed = KeyedDirs {
        secrets: options.secrets.as_deref(),
        configmaps: options.configmaps.as_deref(),
    };
    let volumes = volumes::prepare(&step.pod, &info, keyed, &dirs.volumes)?;
    let pod_api = match &options.api {
        Some(api_options) => {
            let (api, access) = PodApi::start(
                &step,
                &info,
                keyed,
                &dirs.state,
                &dirs.root.join("kube"),
                api_options.runtime,
                &options.exe,
            )?;
            dirs.api = Some(access);
            Some(Arc::new(api))
        }
        None => None,
    };
    let spec = step.pod.spec.clone().unwrap_or_default();
    let mains = step.template.main_container_names();
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
    let mut plan: Vec<(Role, ShimSpec)> = Vec::new();
    let mut pause = Pause::start(&options.exe)?;
    let started = Instant::now();
    for c in spec.init_containers.iter().flatten() {
        let mut shim = container_spec(
            c,
            Role::Init,
            &info,
            keyed,
            &volumes,
            &dirs,
            options,
            &pause,
        )?;
        shim.own_pid_ns = own_pid_ns;
        plan.push((Role::Init, shim));
    }
    for c in &spec.containers {
        let role = if c.name == "wait" {
            Role::Wait
        } else if mains.contains(&c.name.as_str()) {
            Role::Main
        } else {
            Role::Sidecar
        };
        let mut shim = container_spec(c, role, &info, keyed, &volumes, &dirs, options, &pause)?;
        if role != Role::Wait && wait_uses_pns {
            hold_until_seen(&mut shim);
        }
        shim.own_pid_ns = own_pid_ns;
        plan.push((role, shim));
    }
    let mut results: Vec<ContainerResult> = Vec::new();
    let mut supervisor = Supervisor::new(&spec, started, options.linger);
    supervisor.api = pod_api.clone();
    let outcome = run_plan(&plan, &dirs, options, &mut supervisor, &mut results).await;
    supervisor.teardown().await;
    pause.stop().await;
    outcome?;
    let report = match &pod_api {
        Some(api) => {
            api.finish(&results);
            if let Some(path) = options.api.as_ref().and_then(|a| a.request_log.as_ref()) {
                api.write_request_log(path)?;
            }
            api.report(&step, results.iter().find(|c| c.role == Role::Wait))
        }
        None => read_report(&dirs.report),
    };
    Ok(conclude(results, supervisor, report))
}

/// Starts init containers one by one, then the others together; fills `results`.
async fn run_plan(
    plan: &[(Role, ShimSpec)],
    dirs: &Dirs,
    options: &RunOptions,
    supervisor: &mut Supervisor,
    results: &mut Vec<ContainerResult>,
) -> Result<(), Error> {
    for (role, spec) in plan {
        results.push(ContainerResult {
            name: spec.name.clone(),
            exit_code: None,
            role: *role,
            termination_message: None,
            started_after: None,
        });
    }
    let inits: Vec<usize> = (0..plan.len())
        .filter(|&i| plan[i].0 == Role::Init)
        .collect();
    for i in inits {
        let running = launch(i, &plan[i].1, dirs, options, supervisor, results).await?;
        supervisor.supervise(vec![running], plan, results).await;
        if results[i].exit_code != Some(0) || supervisor.stopped() {
            return Ok(());
        }
    }
    let mut group = Vec::new();
    for i in (0..plan.len()).filter(|&i| plan[i].0 != Role::Init) {
        group.push(launch(i, &plan[i].1, dirs, options, supervisor, results).await?);
    }
    supervisor.supervise(group, plan, results).await;
    Ok(())
}

/// Writes the shim's spec, starts the shim and waits for the container's process to exist.
async fn launch(
    index: usize,
    spec: &ShimSpec,
    dirs: &Dirs,
    options: &RunOptions,
    supervisor: &Supervisor,
    results: &mut [ContainerResult],
) -> Result<Running, Error> {
    let started = supervisor.started;
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
    if pid.is_some() {
        let after = started.elapsed();
        results[index].started_after = Some(after);
        tracing::info!(container = %spec.name, after_ms = after.as_secs_f64() * 1e3, "Container started");
    }
    if let (Some(api), Some(pid)) = (&supervisor.api, pid) {
        let pid = u32::try_from(pid.as_raw()).unwrap_or_default();
        api.started(&spec.name, pid, &spec.env, spec.working_dir.as_deref());
    }
    Ok(Running {
        index,
        child,
        pid,
        lines,
    })
}

/// Watches running containers: deadline, lingering sidecars, interruption.
pub(crate) struct Supervisor {
    pub(crate) started: Instant,
    pub(crate) deadline: Option<Instant>,
    pub(crate) grace: Duration,
    pub(crate) linger: Duration,
    pub(crate) notes: Vec<String>,
    pub(crate) deadline_exceeded: bool,
    pub(crate) interrupted: bool,
    /// Containers that exited, their shims held until the pod is torn down.
    pub(crate) exited: Vec<Running>,
    /// Under `--api`: the pod's API server, told what kubelet would tell it.
    pub(crate) api: Option<Arc<PodApi>>,
}

impl Supervisor {
    /// A supervisor for a pod started at `started`: its deadline (`activeDeadlineSeconds`) and
    /// grace (`terminationGracePeriodSeconds`, 30 s by default, as kubelet has it).
    pub(crate) fn new(
        spec: &k8s_openapi::api::core::v1::PodSpec,
        started: Instant,
        linger: Duration,
    ) -> Self {
        Self {
            started,
            deadline: spec
                .active_deadline_seconds
                .and_then(|s| u64::try_from(s).ok())
                .map(|s| started + Duration::from_secs(s)),
            grace: Duration::from_secs(
                spec.termination_grace_period_seconds
                    .and_then(|s| u64::try_from(s).ok())
                    .unwrap_or(30),
            ),
            linger,
            notes: Vec::new(),
            deadline_exceeded: false,
            interrupted: false,
            exited: Vec::new(),
            api: None,
        }
    }

    /// Lets every exited container's shim go: their filesystems are no longer needed.
    async fn teardown(&mut self) {
        for running in self.exited.drain(..) {
            running.release().await;
        }
    }

    fn stopped(&self) -> bool {
        self.deadline_exceeded || self.interrupted
    }

    /// Waits until every container of the group has exited.
    async fn supervise(
        &mut self,
        group: Vec<Running>,
        plan: &[(Role, ShimSpec)],
        results: &mut [ContainerResult],
    ) {
        let mut pids: BTreeMap<usize, Option<Pid>> = BTreeMap::new();
        let mut set = JoinSet::new();
        for mut running in group {
            pids.insert(running.index, running.pid);
            set.spawn(async move {
                let status = running.exited().await;
                (running.index, status, running)
            });
        }
        let leaders: Vec<usize> = pids
            .keys()
            .copied()
            .filter(|&i| matches!(plan[i].0, Role::Wait | Role::Main))
            .collect();
        let mut linger_at: Option<Instant> = None;
        let mut escalate_at: Option<Instant> = None;
        let mut terminate =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let mut interrupt =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
        while !set.is_empty() {
            tokio::select! {
                Some(joined) = set.join_next() => {
                    if let Ok((index, status, running)) = joined {
                        self.exited.push(running);
                        pids.remove(&index);
                        results[index].exit_code = exit_code(&plan[index].1, status);
                        results[index].termination_message = termination_message(&plan[index].1);
                        if let Some(api) = &self.api {
                            let r = &results[index];
                            api.exited(&r.name, r.exit_code, r.termination_message.as_deref());
                        }
                    }
                    let leaders_done = !leaders.is_empty() && leaders.iter().all(|i| !pids.contains_key(i));
                    if leaders_done && !pids.is_empty() && linger_at.is_none() {
                        linger_at = Some(Instant::now() + self.linger);
                    }
                }
                () = sleep_until(linger_at) => {
                    linger_at = Some(Instant::now() + Duration::from_secs(86_400 * 365));
                    for (&index, pid) in &pids {
                        let name = &plan[index].1.name;
                        self.notes.push(format!(
                            "sidecar {name} was still running {:?} after wait and main exited: killed",
                            self.linger
                        ));
                        tracing::warn!(container = %name, "Sidecar outlived wait and main: killing it");
                        signal(*pid, Signal::SIGKILL);
                    }
                }
                () = sleep_until(self.deadline.filter(|_| !self.deadline_exceeded)) => {
                    self.deadline_exceeded = true;
                    self.notes.push("pod exceeded activeDeadlineSeconds: containers terminated".into());
                    tracing::warn!("Pod exceeded its active deadline: terminating containers");
                    if let Some(api) = &self.api {
                        api.deadline_exceeded();
                    }
                    pids.values().for_each(|pid| signal(*pid, Signal::SIGTERM));
                    escalate_at = Some(Instant::now() + self.grace);
                }
                () = sleep_until(escalate_at) => {
                    escalate_at = None;
                    pids.values().for_each(|pid| signal(*pid, Signal::SIGKILL));
                }
                Some(()) = recv(&mut terminate) => self.interrupt(&pids, &mut escalate_at),
                Some(()) = recv(&mut interrupt) => self.interrupt(&pids, &mut escalate_at),
            }
        }
    }

    /// First signal: SIGTERM every container, SIGKILL after the grace; a second: SIGKILL now.
    fn interrupt(
        &mut self,
        pids: &BTreeMap<usize, Option<Pid>>,
        escalate_at: &mut Option<Instant>,
    ) {
        if self.interrupted {
            pids.values().for_each(|pid| signal(*pid, Signal::SIGKILL));
            return;
        }
        self.interrupted = true;
        self.notes.push("interrupted: containers terminated".into());
        tracing::warn!("Interrupted: terminating containers (again to kill them now)");
        pids.values().for_each(|pid| signal(*pid, Signal::SIGTERM));
        *escalate_at = Some(Instant::now() + self.grace);
    }
}

pub(crate) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

pub(crate) async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

fn signal(pid: Option<Pid>, signal: Signal) {
    if let Some(pid) = pid {
        let _ = kill(pid, signal);
    }
}

/// The exit code the shim recorded, else the shim's own.
fn exit_code(spec: &ShimSpec, status: Option<ExitStatus>) -> Option<i32> {
    let recorded = std::fs::read_to_string(spec.state_dir.join(shim::EXITCODE_FILE))
        .ok()
        .and_then(|t| t.trim().parse().ok());
    recorded.or_else(|| status.and_then(|s| s.code()))
}

fn termination_message(spec: &ShimSpec) -> Option<String> {
    std::fs::read_to_string(&spec.termination_log)
        .ok()
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// The reporter's JSON, if it wrote one.
pub(crate) fn read_report(path: &Path) -> Option<Value> {
    let text = std::fs::read(path).ok()?;
    match serde_json::from_slice(&text) {
        Ok(value) => Some(value),
        Err(err) => {
            tracing::warn!(path = %path.display(), %err, "Ignoring unreadable outputs report");
            None
        }
    }
}

/// The step's phase and message, as Argo's controller decides them from the pod.
pub(crate) fn conclude(
    containers: Vec<ContainerResult>,
    supervisor: Supervisor,
    report: Option<Value>,
) -> PodReport {
    let message_of = |c: &ContainerResult, code: i32| {
        c.termination_message
            .clone()
            .unwrap_or_else(|| format!("Error (exit code {code})"))
    };
    let reported = |key: &str| {
        report
            .as_ref()
            .and_then(|r| r.get(key))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let failed_init = containers
        .iter()
        .find(|c| c.role == Role::Init && c.exit_code != Some(0));
    let failed_main = containers
        .iter()
        .find(|c| c.role == Role::Main && c.exit_code.is_some_and(|code| code != 0));
    let failed_wait = containers
        .iter()
        .find(|c| c.role == Role::Wait && c.exit_code.is_some_and(|code| code != 0));
    let (phase, message) = if supervisor.interrupted {
        (Phase::Failed, Some("interrupted".to_owned()))
    } else if supervisor.deadline_exceeded {
        (
            Phase::Failed,
            Some("Pod was active on the node longer than the specified deadline".to_owned()),
        )
    } else if let Some(c) = failed_init {
        let code = c
            .exit_code
            .map_or("did not run".into(), |code| format!("exit code {code}"));
        let why = c
            .termination_message
            .clone()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        (
            Phase::Failed,
            Some(format!("init container {} failed ({code}){why}", c.name)),
        )
    } else if let Some(c) = failed_main {
        // main's own termination message first, then wait's (e.g. "Step exceeded its
        // deadline", which is why main was killed), then the exit code.
        let message = c
            .termination_message
            .clone()
            .or_else(|| reported("message"))
            .unwrap_or_else(|| message_of(c, c.exit_code.unwrap_or_default()));
        (Phase::Failed, Some(message))
    } else if let Some(c) = failed_wait {
        (
            Phase::Error,
            Some(message_of(c, c.exit_code.unwrap_or_default())),
        )
    } else {
        let phase = match reported("phase").as_deref() {
            Some("Failed") => Phase::Failed,
            Some("Error") => Phase::Error,
            _ => Phase::Succeeded,
        };
        (phase, reported("message"))
    };
    PodReport {
        phase,
        message,
        containers,
        outputs: report.and_then(|mut r| r.get_mut("outputs").map(Value::take)),
        notes: supervisor.notes,
    }
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
        env,
        argv,
        executor,
    } = prepare(c, role, info, keyed, dirs)?;
    if c.command.as_ref().is_none_or(Vec::is_empty) && !executor {
        return Err(fail(
            "no command: images are not pulled, so the entrypoint of the image is unknown; \
             give the container a command"
                .into(),
        ));
    }
    let mut mounts = volumes::mounts(c, volumes, &env)?;
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

/// A container's resolved environment and command line.
pub(crate) struct Prepared {
    /// The environment, as kubelet resolves it, plus what the local pod adds.
    pub(crate) env: Vec<(String, String)>,
    /// command + args, `$(VAR)` expanded; Argo's executor as [`EXE_IN_CONTAINER`]. Empty when
    /// the container has neither: the image's entrypoint is meant.
    pub(crate) argv: Vec<String>,
    /// Whether this is Argo's executor (init, wait).
    pub(crate) executor: bool,
}

/// The environment and command line of a container, as the local pod runs it.
pub(crate) fn prepare(
    c: &Container,
    role: Role,
    info: &PodInfo,
    keyed: KeyedDirs<'_>,
    dirs: &Dirs,
) -> Result<Prepared, Error> {
    let mut env = env::resolve(c, info, keyed)?;
    let executor = is_argoexec(c);
    let mut extra = vec![
        ("HOSTNAME".to_owned(), info.name.clone()),
        ("HOME".to_owned(), "/root".to_owned()),
        (
            "PATH".to_owned(),
            std::env::var("PATH").unwrap_or_else(|_| {
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()
            }),
        ),
    ];
    if executor {
        extra.push((
            LOCAL_REPOSITORY_ENV.into(),
            dirs.repository.display().to_string(),
        ));
    }
    match &dirs.api {
        // Under --api, init and wait reach the pod's API server, and wait reports to it.
        Some(access) if executor => extra.extend(access.env.iter().cloned()),
        Some(_) => {}
        None if role == Role::Wait => {
            extra.push((POD_STATE_DIR_ENV.into(), dirs.state.display().to_string()));
            extra.push((REPORT_FILE_ENV.into(), dirs.report.display().to_string()));
        }
        None => {}
    }
    for (name, value) in extra {
        if !env.iter().any(|(n, _)| *n == name) {
            env.push((name, value));
        }
    }
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    let mut argv: Vec<String> = c
        .command
        .iter()
        .flatten()
        .chain(c.args.iter().flatten())
        .map(|a| env::expand(a, lookup))
        .collect();
    if c.command.as_ref().is_none_or(Vec::is_empty) && executor {
        argv.insert(0, EXE_IN_CONTAINER.into());
    }
    if executor && argv.first().is_some_and(|a| is_argoexec_path(a)) {
        argv[0] = EXE_IN_CONTAINER.into();
    }
    Ok(Prepared {
        env,
        argv,
        executor,
    })
}

/// Argo's executor: `argoexec ...`, `/var/run/argo/argoexec ...`, or an argoexec image with no
/// command.
fn is_argoexec(c: &Container) -> bool {
    // A container wrapped by the emissary runs the user's command: it is not the executor.
    if crate::emissary::is_wrapped(c) {
        return false;
    }
    match c.command.as_deref().and_then(<[String]>::first) {
        Some(program) => is_argoexec_path(program),
        None => c.image.as_deref().is_some_and(|i| i.contains("argoexec")),
    }
}

fn is_argoexec_path(program: &str) -> bool {
    Path::new(program)
        .file_name()
        .is_some_and(|n| n == "argoexec")
}

/// The pod as the downward API and `fieldRef`s see it.
pub(crate) fn pod_info(pod: &Pod) -> PodInfo {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    let workflow_name = meta
        .labels
        .as_ref()
        .and_then(|l| l.get("workflows.argoproj.io/workflow").cloned())
        .or_else(|| {
            meta.owner_references
                .iter()
                .flatten()
                .find(|o| o.kind == "Workflow")
                .map(|o| o.name.clone())
        })
        .or_else(|| {
            spec.into_iter()
                .flat_map(|s| s.init_containers.iter().flatten().chain(&s.containers))
                .find_map(|c| StepPod::env_value(c, "ARGO_WORKFLOW_NAME").map(str::to_owned))
        })
        .unwrap_or_default();
    PodInfo {
        name: meta.name.clone().unwrap_or_default(),
        namespace: meta.namespace.clone().unwrap_or_else(|| "default".into()),
        uid: meta.uid.clone().unwrap_or_else(random_uid),
        labels: meta.labels.clone().unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default(),
        node_name: spec
            .and_then(|s| s.node_name.clone())
            .or_else(|| {
                nix::unistd::gethostname()
                    .ok()
                    .map(|h| h.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "localhost".into()),
        service_account: spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_else(|| "default".into()),
        ip: "127.0.0.1".into(),
        workflow_name,
    }
}

pub(crate) fn random_uid() -> String {
    let hex = |n: usize| {
        (0..n)
            .map(|_| char::from_digit(fastrand::u32(0..16), 16).unwrap_or('0'))
            .collect::<String>()
    };
    format!("{}-{}-4{}-a{}-{}", hex(8), hex(4), hex(3), hex(3), hex(12))
}

/// Puts the archive location into the template, and the template back where the controller
/// wrote it: `ARGO_TEMPLATE` of every container (v3, v4) or the template annotation (v2).
pub(crate) fn set_archive_location(
    step: &mut StepPod,
    mut location: ArtifactLocation,
) -> Result<(), Error> {
    if location.archive_logs.is_none() {
        location.archive_logs = step
            .template
            .archive_location
            .as_ref()
            .and_then(|l| l.archive_logs);
    }
    step.template.archive_location = Some(location);
    let json = serde_json::to_string(&step.template).map_err(|source| Error::Spec {
        path: PathBuf::from("template"),
        source,
    })?;
    if let Some(value) = step
        .pod
        .metadata
        .annotations
        .as_mut()
        .and_then(|a| a.get_mut(TEMPLATE_ANNOTATION))
    {
        *value = json.clone();
    }
    if let Some(spec) = step.pod.spec.as_mut() {
        let containers = spec
            .init_containers
            .iter_mut()
            .flatten()
            .chain(spec.containers.iter_mut());
        for var in containers.flat_map(|c| c.env.iter_mut().flatten()) {
            if var.name == "ARGO_TEMPLATE" && var.value.is_some() {
                var.value = Some(json.clone());
            }
        }
    }
    step.template_json = json;
    Ok(())
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
