//! `argoexec artifact delete`: the artifact garbage collection pod (`argoexec-artifactgc`).

use std::process::ExitCode;

use anyhow::Context as _;
use argoexec_artifactgc::{Deleter, GcOptions};
use argoexec_config::{ArtifactGcSettings, Config, env};
use argoexec_kube::{ArtifactGcTasks, Backoff};
use argoexec_storage::{MountedSecrets, RetryPolicy};

use crate::Failure;
use crate::cli::GlobalArgs;

/// Deletes the artifacts of this pod's WorkflowArtifactGCTasks and reports each in its task's
/// status. Exits 0 when every task was read and reported, whatever became of the artifacts (the
/// controller reads the results), as Argo's executor does.
pub(crate) fn delete(global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let config = Config::from_process_env(global.flags())?;
    let settings = ArtifactGcSettings::from_process_env()?;
    let Some(label) = settings.pod_label.clone() else {
        // Argo's executor does nothing either: the controller always sets it.
        tracing::warn!(
            "{} is not set: no WorkflowArtifactGCTasks to work on",
            env::ARGO_ARTIFACT_POD_NAME
        );
        return Ok(ExitCode::SUCCESS);
    };
    if !settings.plugin_names.is_empty() {
        tracing::warn!(
            sidecars = ?settings.plugin_names,
            "The pod has artifact plugin sidecars: argoexec-rs does not run artifact plugins, \
             their artifacts are reported as not deleted, and the sidecars are not stopped"
        );
    }
    let options = GcOptions {
        parallelism: settings.parallelism,
        retry: RetryPolicy::from_settings(&config.retry),
        storage: crate::storage_options(&config),
    };
    let secrets = MountedSecrets::new(global.pod_root.join("argo/secret"));
    let deleter = Deleter::new(secrets, options);
    let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
    let summary = runtime.block_on(async {
        let kube = argoexec_kube::connect(&config.flags.kube).await?;
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            namespace = kube.namespace(),
            label,
            parallelism = settings.parallelism,
            "Starting artifact garbage collection"
        );
        let tasks = ArtifactGcTasks::new(&kube, Backoff::default());
        anyhow::Ok(argoexec_artifactgc::run(&tasks, &label, &deleter).await?)
    })?;
    tracing::info!(
        tasks = summary.tasks,
        deleted = summary.deleted,
        failed = summary.failed,
        "Artifacts deleted"
    );
    Ok(ExitCode::SUCCESS)
}
