//! Wiring of `argoexec wait`: the runtime, the reporter and the options from the configuration.
//!
//! The reporter is the local file when `argoexec run` set `ARGOEXEC_REPORT_FILE`, else the
//! Kubernetes API as the pod's protocol asks (v2 annotations, v3/v4 task results). Every exit
//! path reports, a wait that cannot start included, as long as the reporter itself could be built.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use argoexec_config::{Config, RuntimeKind, SERVICE_ACCOUNT_DIR};
use argoexec_executor::{PodPaths, Stop, WaitError, WaitOptions, WaitOutcome, run_wait};
use argoexec_kube::{AnySecrets, ApiSecrets, Backoff, KubeReporter, KubeletOptions, Names};
use argoexec_report::{FileReporter, ReportError, Reporter, StepReport};
use argoexec_runtime::{
    AnyRuntime, ContainerRuntime, Docker, DockerOptions, Emissary, K8sApi, Kubelet, Pns, PnsOptions,
};
use argoexec_storage::{MountedSecrets, RetryPolicy, chain};
use argoexec_template::{Protocol, Template};

use crate::execution::{self, Execution};
use crate::{Failure, storage_options};

/// Runs the wait sequence with the runtime the pod asks for; the first error is the step's.
pub(crate) fn wait(
    config: &Config,
    root: &Path,
    template: &Template,
    protocol: Protocol,
) -> Result<ExitCode, Failure> {
    let with_protocol = |error: anyhow::Error| Failure {
        error,
        protocol: Some(protocol),
    };
    // v2: the deadline is the execution annotation's (contract §1), read again when the file
    // changes or on SIGUSR2.
    let execution = match protocol {
        Protocol::V2 if config.deadline.is_none() => Some(
            execution::read(&execution::annotations_path(config, root)).map_err(with_protocol)?,
        ),
        _ => None,
    };
    let deadline = match execution {
        Some(Execution::Deadline(at)) => Some(at),
        _ => config.deadline.map(SystemTime::from),
    };
    let options = WaitOptions {
        protocol,
        paths: PodPaths::under(root),
        deadline,
        grace: config.termination_grace(protocol),
        include_script_output: config.include_script_output,
        retry: RetryPolicy::from_settings(&config.retry),
        storage: storage_options(config),
        self_container: config
            .identity
            .container_name
            .clone()
            .unwrap_or_else(|| "wait".into()),
        local_repository: config.local_repository.clone(),
        local_key_prefix: format!(
            "{}/{}",
            config.identity.workflow_name.as_deref().unwrap_or("local"),
            config.pod_name().map_err(|e| with_protocol(e.into()))?
        ),
        progress_file: config
            .progress
            .enabled()
            .then(|| config.progress.file.clone()),
    };
    let tokio = tokio::runtime::Runtime::new()
        .context("start the async runtime")
        .map_err(with_protocol)?;
    let runtime = match config.runtime_for(protocol) {
        RuntimeKind::Pns => Pns::with_options(PnsOptions {
            own_container: config.identity.container_name.clone(),
            state_dir: config.pod_state_dir.clone(),
            ..PnsOptions::default()
        })
        .map(AnyRuntime::from)
        .map_err(anyhow::Error::from),
        RuntimeKind::Docker => {
            docker_options(config, root).map(|o| AnyRuntime::from(Docker::new(o)))
        }
        RuntimeKind::Emissary => emissary(root),
        RuntimeKind::K8sApi => tokio.block_on(k8sapi(config, api_backoff(config, protocol))),
        // kube's client needs a runtime to be built in.
        RuntimeKind::Kubelet => {
            let _entered = tokio.enter();
            kubelet(config, root, pod_namespace(config, root))
        }
    };
    let runtime_access = argoexec_kube::runtime_access(config.runtime_for(protocol));
    let reporter = tokio.block_on(reporter_for(config, root, protocol, runtime_access));
    let (runtime, (reporter, secrets)) = match (runtime, reporter) {
        (Ok(runtime), Ok(reporter)) => (runtime, reporter),
        (Err(error), reporter) => {
            // Even a wait that cannot start reports: the step's outputs say why they are empty.
            let report = StepReport {
                outputs: template.outputs.clone().unwrap_or_default(),
                message: Some(format!("{error:#}")),
                progress: None,
            };
            let reported = match reporter {
                Ok((reporter, _)) => tokio
                    .block_on(reporter.report(&report))
                    .map_err(anyhow::Error::from),
                Err(e) => Err(e),
            };
            if let Err(e) = reported {
                tracing::error!(error = %format!("{e:#}"), "Failed to report the failure");
            }
            return Err(with_protocol(error));
        }
        (Ok(_), Err(error)) => return Err(with_protocol(error)),
    };
    let run = RunWith {
        execution: execution.map(|e| (execution::annotations_path(config, root), e)),
        config,
        template,
        options: &options,
        reporter: &reporter,
        secrets: &secrets,
    };
    tokio.block_on(run.run(&runtime)).map_err(with_protocol)
}

/// Where outputs go: the local report file of `argoexec run`, or the Kubernetes API.
#[derive(Debug)]
pub(crate) enum AnyReporter {
    File(FileReporter),
    Kube(Box<KubeReporter>),
}

impl Reporter for AnyReporter {
    async fn report(&self, report: &StepReport) -> Result<(), ReportError> {
        match self {
            Self::File(r) => r.report(report).await,
            Self::Kube(r) => r.report(report).await,
        }
    }
}

/// The emissary runtime over the pod's `/var/run/argo`. The controller always mounts it in an
/// emissary pod; without it no container could ever be seen to exit, so wait fails at once
/// instead of waiting forever.
fn emissary(root: &Path) -> anyhow::Result<AnyRuntime> {
    let var_run_argo = PodPaths::under(root).var_run_argo();
    if !var_run_argo.is_dir() {
        anyhow::bail!(
            "the emissary runtime needs the pod's {} volume (the controller mounts it in every \
             container of an emissary pod): not found",
            var_run_argo.display()
        );
    }
    Ok(AnyRuntime::from(Emissary::new(var_run_argo)))
}

/// The `k8sapi` runtime for this pod (`ARGO_POD_NAME`), through the configured client.
async fn k8sapi(config: &Config, backoff: Backoff) -> anyhow::Result<AnyRuntime> {
    let kube = argoexec_kube::connect(&config.flags.kube)
        .await
        .context("connect to the Kubernetes API for the k8sapi runtime")?;
    let pod = config.pod_name()?;
    Ok(AnyRuntime::from(K8sApi::new(&kube, pod, backoff)))
}

/// The `kubelet` runtime for this pod: `ARGO_KUBELET_HOST`/`_PORT`/`_INSECURE`, the service
/// account's token and CA as the pod mounts them under `root`, the pod's `namespace`. Call it
/// within a Tokio runtime (kube's client starts a task of its own).
fn kubelet(config: &Config, root: &Path, namespace: String) -> anyhow::Result<AnyRuntime> {
    let host = config.kubelet.host.clone().context(
        "the kubelet runtime needs ARGO_KUBELET_HOST (the controller sets it to the node's status.hostIP)",
    )?;
    let account = root.join(SERVICE_ACCOUNT_DIR.trim_start_matches('/'));
    let kubelet = Kubelet::new(KubeletOptions {
        host,
        port: config.kubelet.port,
        insecure: config.kubelet.insecure,
        token_file: account.join("token"),
        ca_file: account.join("ca.crt"),
        namespace,
        pod: config.pod_name()?.to_owned(),
    })
    .context("set up the kubelet runtime")?;
    Ok(AnyRuntime::from(kubelet))
}

/// The docker runtime's view of this pod: its name, its namespace (`--namespace`, else the service
/// account's namespace file as kubelet mounts it, else `default`, as Argo's client resolves it)
/// and the engine's address (`DOCKER_HOST`).
fn docker_options(config: &Config, root: &Path) -> anyhow::Result<DockerOptions> {
    let namespace = pod_namespace(config, root);
    Ok(DockerOptions {
        host: std::env::var(argoexec_config::env::DOCKER_HOST)
            .ok()
            .filter(|host| !host.is_empty()),
        namespace,
        pod_name: config.pod_name()?.to_owned(),
    })
}

/// The pod's namespace: `--namespace`, else the service account's namespace file as kubelet
/// mounts it, else `default`, as Argo's client resolves it.
fn pod_namespace(config: &Config, root: &Path) -> String {
    let namespace_file = root
        .join(SERVICE_ACCOUNT_DIR.trim_start_matches('/'))
        .join("namespace");
    match &config.flags.kube.namespace {
        Some(namespace) => namespace.clone(),
        None => std::fs::read_to_string(&namespace_file)
            .map(|text| text.trim().to_owned())
            .ok()
            .filter(|text| !text.is_empty())
            .unwrap_or_else(|| "default".into()),
    }
}

/// The reporter and the credentials for the pod: a local run reports to its file and reads
/// mounted secrets; a pod connects to the API, checks it may report and make the calls of
/// `runtime_access` (failing fast, by name), and reads secrets through the API when it is a v2
/// pod (Argo 2 mounted none).
pub(crate) async fn reporter_for(
    config: &Config,
    root: &Path,
    protocol: Protocol,
    runtime_access: Vec<argoexec_kube::Access>,
) -> anyhow::Result<(AnyReporter, AnySecrets)> {
    let mounted = AnySecrets::Mounted(MountedSecrets::new(root.join("argo/secret")));
    if let Some(path) = &config.report_file {
        return Ok((AnyReporter::File(FileReporter::new(path)), mounted));
    }
    let kube = argoexec_kube::connect(&config.flags.kube)
        .await
        .context("connect to the Kubernetes API to report outputs")?;
    argoexec_kube::check_access_for(&kube, protocol, &runtime_access).await?;
    let id = &config.identity;
    let names = Names {
        pod: config.pod_name()?.to_owned(),
        pod_uid: id.pod_uid.clone(),
        node_id: id.node_id.clone(),
        workflow: id.workflow_name.clone(),
        workflow_uid: id.workflow_uid.clone(),
        instance_id: id.instance_id.clone(),
    };
    let backoff = api_backoff(config, protocol);
    let secrets = api_secrets(root, protocol, &kube, backoff);
    let reporter = KubeReporter::new(kube, protocol, names, backoff)?;
    Ok((AnyReporter::Kube(Box::new(reporter)), secrets))
}

/// Retries of API calls within the pod's grace period; a pod with a tiny grace period still
/// deserves a few retries (kubelet's kill ends them).
fn api_backoff(config: &Config, protocol: Protocol) -> Backoff {
    Backoff::default().within(
        config
            .termination_grace(protocol)
            .max(Duration::from_secs(10)),
    )
}

/// Credentials for init: a v2 pod reads Secrets through the API (Argo 2 mounted none), v3 and v4
/// pods the mounted files; config maps come through the API. Without a client, only the mounted
/// files.
pub(crate) async fn init_secrets(config: &Config, root: &Path, protocol: Protocol) -> AnySecrets {
    match argoexec_kube::connect(&config.flags.kube).await {
        Ok(kube) => api_secrets(root, protocol, &kube, api_backoff(config, protocol)),
        Err(e) => {
            tracing::debug!(error = %chain(&e), "No Kubernetes client: secrets come from mounted files");
            AnySecrets::Mounted(MountedSecrets::new(root.join("argo/secret")))
        }
    }
}

/// Secrets through the API for a v2 pod, else the mounted files; config maps through the API.
fn api_secrets(
    root: &Path,
    protocol: Protocol,
    kube: &argoexec_kube::Kube,
    backoff: Backoff,
) -> AnySecrets {
    let api = Box::new(ApiSecrets::new(kube, backoff));
    match protocol {
        Protocol::V2 => AnySecrets::Api(api),
        Protocol::V3 | Protocol::V4 => {
            AnySecrets::MountedWithApi(MountedSecrets::new(root.join("argo/secret")), api)
        }
    }
}

/// What one wait runs with, besides the runtime.
struct RunWith<'a> {
    /// v2: the annotations file and the execution control read at start-up.
    execution: Option<(std::path::PathBuf, Execution)>,
    config: &'a Config,
    template: &'a Template,
    options: &'a WaitOptions,
    reporter: &'a AnyReporter,
    secrets: &'a AnySecrets,
}

impl RunWith<'_> {
    async fn run<R: ContainerRuntime>(&self, runtime: &R) -> anyhow::Result<ExitCode> {
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listen for SIGTERM")?;
        // Listening from here on: a SIGUSR2 that comes once wait has started never kills it.
        let execution = match &self.execution {
            Some((path, current)) => Some((
                path.clone(),
                *current,
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined2())
                    .context("listen for SIGUSR2")?,
                execution::watch(path),
            )),
            None => None,
        };
        let deadline = self.options.deadline;
        let terminate = async move {
            let stop = async {
                match execution {
                    Some((path, current, usr2, watch)) => {
                        let stop =
                            execution::stop_requested(path, current, deadline, usr2, watch).await;
                        tracing::info!(?stop, "Execution control asks to stop");
                        stop
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = sigterm.recv() => Stop::Terminated,
                stop = stop => stop,
            }
        };
        let progress = &self.config.progress;
        let kube = match self.reporter {
            AnyReporter::Kube(kube) => Some(kube.as_ref()),
            AnyReporter::File(_) => None,
        };
        if let Some(kube) = kube
            && let Err(e) = kube.start().await
        {
            // The final report tries again (Argo: InitializeOutput's error is the step's only if
            // the report fails too).
            tracing::error!(error = %chain(&e), "Failed to initialize the task result");
        }
        let wait = run_wait(
            self.template,
            self.options,
            runtime,
            self.reporter,
            self.secrets,
            terminate,
        );
        let outcome = match kube.filter(|_| progress.enabled()) {
            Some(kube) => {
                let monitor = argoexec_kube::monitor_progress(
                    kube,
                    progress.file.clone(),
                    progress.file_tick,
                    progress.patch_tick,
                );
                tokio::select! {
                    outcome = wait => outcome,
                    never = monitor => match never {},
                }
            }
            None => wait.await,
        };
        finish(outcome, self.options.protocol)
    }
}

/// Logs every error after the first, and makes the first the command's. Under v3 and v4 a passed
/// deadline gives way to any other error: Argo's deadline monitor only writes its message and
/// kills main, so wait fails only for the rest (and then with that error's message).
fn finish(outcome: WaitOutcome, protocol: Protocol) -> anyhow::Result<ExitCode> {
    let WaitOutcome { report, mut errors } = outcome;
    log_outputs(&report);
    if protocol != Protocol::V2
        && errors.len() > 1
        && matches!(errors.first(), Some(WaitError::Deadline))
    {
        errors.rotate_left(1);
    }
    let mut errors = errors.into_iter();
    let Some(first) = errors.next() else {
        return Ok(ExitCode::SUCCESS);
    };
    for later in errors {
        tracing::error!(error = %chain(&later), "Also failed");
    }
    Err(first.into())
}

fn log_outputs(report: &StepReport) {
    if let Ok(json) = serde_json::to_string(&report.outputs) {
        tracing::info!(outputs = %json, "Outputs reported");
    }
}
