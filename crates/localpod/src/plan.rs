//! What to run: the options of a run, its directories, each container's role, environment and
//! command line, and the pod as the downward API sees it. Shared by every backend.

use std::path::{Path, PathBuf};
use std::time::Duration;

use argoexec_pod::StepPod;
use argoexec_template::{ArtifactLocation, LABEL_WORKFLOW, TEMPLATE_ANNOTATION};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};
use serde::Serialize;

use crate::Error;
use crate::env::{self, KeyedDirs, PodInfo};
use crate::repo;
use crate::shim::{BindMount, EXE_IN_CONTAINER};

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
    /// Another executor binary for init and wait (and, through init, the emissary), e.g. Argo's
    /// own: the pause process, shims and trampoline stay [`Self::exe`]. A static binary: it runs
    /// on this machine's filesystem.
    pub executor_binary: Option<PathBuf>,
    /// How long sidecars may outlive the wait and main containers before they are killed.
    pub linger: Duration,
    /// Echo each container's output on stderr, lines prefixed with `[container]`.
    pub echo: bool,
    /// The runtime to run the pod with instead of the one its manifest names: the pod is
    /// rewritten as Argo's controller writes it for that runtime (only emissary for now).
    pub runtime: Option<argoexec_config::RuntimeKind>,
    /// Serve the pod through an API server of its own (`--api`): init and wait talk to it.
    pub api: Option<ApiOptions>,
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

/// The run's directory layout.
pub(crate) struct Dirs {
    pub(crate) root: PathBuf,
    pub(crate) state: PathBuf,
    pub(crate) volumes: PathBuf,
    pub(crate) containers: PathBuf,
    pub(crate) report: PathBuf,
    pub(crate) repository: PathBuf,
    /// Under `--api`: how init and wait reach the pod's API server (and kubelet).
    pub(crate) api: Option<ExecutorAccess>,
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
        .and_then(|l| l.get(LABEL_WORKFLOW).cloned())
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

/// What init and wait use to see the pod under `--api`: one variant per runtime that talks to
/// Kubernetes (the kubelet's own API is the next one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiRuntime {
    /// Argo's `k8sapi`: pod watch, `pods/exec` of `tar` and `kill`, `pods/log`.
    K8sApi,
    /// Argo's `kubelet`: the node's kubelet API (`/pods`, `/containerLogs`, `/exec`) over HTTPS
    /// with the service account's token and CA; here the same server plays the kubelet.
    Kubelet,
}

impl ApiRuntime {
    /// The value of `ARGO_CONTAINER_RUNTIME_EXECUTOR`.
    pub(crate) fn executor(self) -> &'static str {
        match self {
            Self::K8sApi => "k8sapi",
            Self::Kubelet => "kubelet",
        }
    }
}

/// How init and wait reach the pod's API server: variables and mounts added to them.
#[derive(Debug, Clone, Default)]
pub(crate) struct ExecutorAccess {
    pub(crate) env: Vec<(String, String)>,
    pub(crate) mounts: Vec<BindMount>,
}

/// How `argoexec run --api` serves the pod.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// The runtime init and wait use.
    pub runtime: ApiRuntime,
    /// Where to write the requests the step made (method, verb, status, path), when wanted.
    pub request_log: Option<PathBuf>,
    /// An existing API server to serve the pod instead of the run's own.
    pub existing: Option<ExistingServer>,
}

/// An existing API server (`run --api --kubeconfig`): no kubelet serves `pods/exec` and
/// `pods/log` there, so it suits pods whose wait only reports to the API (Argo v4's emissary).
#[derive(Debug, Clone)]
pub struct ExistingServer {
    /// The runner's own access: creates the pod and writes its status.
    pub kubeconfig: PathBuf,
    /// What init and wait are given (`KUBECONFIG`), as a pod's service account.
    pub executor_kubeconfig: PathBuf,
}

/// The step as the run gives it to its containers: `--artifact-repo` as the template's
/// `archiveLocation`.
pub(crate) fn step_with_repository(step: &StepPod, options: &RunOptions) -> Result<StepPod, Error> {
    let mut step = step.clone();
    if let Some(path) = &options.artifact_repo {
        let info = pod_info(&step.pod);
        let names = repo::Names {
            workflow: &info.workflow_name,
            namespace: &info.namespace,
            pod: &info.name,
        };
        let location = repo::load(path, &names)?;
        repo::mount_location_secrets(&mut step.pod, &location);
        set_archive_location(&mut step, location)?;
    }
    Ok(step)
}

/// The pod's containers in the order they run, each with its role: init containers first.
pub(crate) fn containers<'a>(spec: &'a PodSpec, step: &StepPod) -> Vec<(Role, &'a Container)> {
    let mains = step.template.main_container_names();
    let inits = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| (Role::Init, c));
    let apps = spec.containers.iter().map(|c| {
        let role = if c.name == "wait" {
            Role::Wait
        } else if mains.contains(&c.name.as_str()) {
            Role::Main
        } else {
            Role::Sidecar
        };
        (role, c)
    });
    inits.chain(apps).collect()
}

/// How long the pod may run and how it is stopped: `activeDeadlineSeconds`, and
/// `terminationGracePeriodSeconds` (30 s by default, as kubelet has it) between TERM and KILL.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// When the pod started.
    pub(crate) started: tokio::time::Instant,
    /// When it must have ended.
    pub(crate) deadline: Option<tokio::time::Instant>,
    /// From TERM to KILL.
    pub(crate) grace: Duration,
    /// How long sidecars may outlive wait and main.
    pub(crate) linger: Duration,
}

impl Limits {
    /// The limits of a pod starting now.
    pub(crate) fn starting_now(spec: &PodSpec, linger: Duration) -> Self {
        let started = tokio::time::Instant::now();
        let seconds = |s: Option<i64>| s.and_then(|s| u64::try_from(s).ok());
        Self {
            started,
            deadline: seconds(spec.active_deadline_seconds)
                .map(|s| started + Duration::from_secs(s)),
            grace: Duration::from_secs(
                seconds(spec.termination_grace_period_seconds).unwrap_or(30),
            ),
            linger,
        }
    }
}
