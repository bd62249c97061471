//! Wiring of `argoexec wait`: the runtime, the reporter and the options from the configuration.

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context as _;
use argoexec_config::{Config, RuntimeKind};
use argoexec_executor::{
    FileReporter, NoReporter, PodPaths, Reporter as _, StepReport, WaitOptions, WaitOutcome,
    run_wait,
};
use argoexec_runtime::{AnyRuntime, ContainerRuntime, Emissary, Pns, PnsOptions};
use argoexec_storage::{MountedSecrets, RetryPolicy, chain};
use argoexec_template::{Protocol, Template};

use crate::{Failure, NotImplemented, storage_options};

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
    let options = WaitOptions {
        protocol,
        paths: PodPaths::under(root),
        deadline: config.deadline.map(SystemTime::from),
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
    let runtime = match config.runtime_for(protocol) {
        RuntimeKind::Pns => Pns::with_options(PnsOptions {
            own_container: config.identity.container_name.clone(),
            state_dir: config.pod_state_dir.clone(),
            ..PnsOptions::default()
        })
        .map(AnyRuntime::Pns)
        .map_err(anyhow::Error::from),
        RuntimeKind::Emissary => Ok(AnyRuntime::Emissary(Emissary::new(
            PodPaths::under(root).var_run_argo(),
        ))),
        other => Err(NotImplemented {
            command: "wait",
            what: runtime_missing(other),
        }
        .into()),
    };
    let runtime = match runtime {
        Ok(runtime) => runtime,
        Err(error) => {
            // Even a wait that cannot start reports: the step's outputs say why they are empty.
            report_setup_failure(config, template, &error);
            return Err(with_protocol(error));
        }
    };
    run_with(config, root, template, &options, &runtime).map_err(with_protocol)
}

/// Reports the template's outputs unfilled, with the error that stopped wait before it began.
fn report_setup_failure(config: &Config, template: &Template, error: &anyhow::Error) {
    let Some(path) = &config.report_file else {
        return;
    };
    let report = StepReport {
        outputs: template.outputs.clone().unwrap_or_default(),
        message: Some(format!("{error:#}")),
        progress: None,
    };
    let written = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| {
            rt.block_on(FileReporter::new(path).report(&report))
                .map_err(anyhow::Error::from)
        });
    if let Err(e) = written {
        tracing::error!(error = %format!("{e:#}"), "Failed to report the failure");
    }
}

fn runtime_missing(kind: RuntimeKind) -> &'static str {
    match kind {
        RuntimeKind::Docker => "the docker runtime",
        RuntimeKind::K8sApi => "the k8sapi runtime",
        RuntimeKind::Kubelet => "the kubelet runtime",
        RuntimeKind::Emissary => "the emissary runtime",
        RuntimeKind::Pns => "the pns runtime",
    }
}

fn run_with<R: ContainerRuntime>(
    config: &Config,
    root: &Path,
    template: &Template,
    options: &WaitOptions,
    runtime: &R,
) -> anyhow::Result<ExitCode> {
    let secrets = MountedSecrets::new(root.join("argo/secret"));
    let tokio = tokio::runtime::Runtime::new().context("start the async runtime")?;
    let outcome = tokio.block_on(async {
        let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("listen for SIGTERM")?;
        let terminate = async move {
            sigterm.recv().await;
        };
        let outcome = match &config.report_file {
            Some(path) => {
                run_wait(
                    template,
                    options,
                    runtime,
                    &FileReporter::new(path),
                    &secrets,
                    terminate,
                )
                .await
            }
            None => run_wait(template, options, runtime, &NoReporter, &secrets, terminate).await,
        };
        anyhow::Ok(outcome)
    })?;
    finish(outcome)
}

/// Logs every error after the first, and makes the first the command's.
fn finish(outcome: WaitOutcome) -> anyhow::Result<ExitCode> {
    let WaitOutcome { report, errors } = outcome;
    log_outputs(&report);
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
