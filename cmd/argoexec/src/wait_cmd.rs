//! Wiring of `argoexec wait`: the runtime, the reporter and the options from the configuration.

use std::path::Path;
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context as _;
use argoexec_config::{Config, RuntimeKind};
use argoexec_executor::{
    FileReporter, NoReporter, PodPaths, StepReport, WaitOptions, WaitOutcome, run_wait,
};
use argoexec_runtime::{AnyRuntime, ContainerRuntime, Pns};
use argoexec_storage::{MountedSecrets, RetryPolicy, chain};
use argoexec_template::{Protocol, Template};

use crate::{Failure, not_implemented, storage_options};

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
        RuntimeKind::Pns => AnyRuntime::Pns(Pns::new().map_err(|e| with_protocol(e.into()))?),
        other => return Err(not_implemented("wait", runtime_missing(other), protocol)),
    };
    run_with(config, root, template, &options, &runtime).map_err(with_protocol)
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
