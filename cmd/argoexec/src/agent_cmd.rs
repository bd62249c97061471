//! `argoexec agent init|main`: the agent pod of HTTP templates (`argoexec-agent`).

use std::process::ExitCode;

use anyhow::Context as _;
use argoexec_agent::{AgentOptions, HttpRunner};
use argoexec_config::{AgentSettings, Config, ConfigError, env};
use argoexec_kube::{ApiSecrets, Backoff, TaskSet};

use crate::Failure;
use crate::cli::{AgentCommand, GlobalArgs};

/// Runs the agent's init or main container.
pub(crate) fn agent(global: &GlobalArgs, command: AgentCommand) -> Result<ExitCode, Failure> {
    let config = Config::from_process_env(global.flags())?;
    let settings = AgentSettings::from_process_env()?;
    let var_run_argo = global.pod_root.join("var/run/argo");
    match command {
        AgentCommand::Init => {
            argoexec_agent::write_tokens(&var_run_argo, &settings.plugin_names)?;
            Ok(ExitCode::SUCCESS)
        }
        AgentCommand::Main => main(&config, &settings),
    }
}

/// `agent main`: the task set of `ARGO_WORKFLOW_NAME`, until it is deleted or completed.
fn main(config: &Config, settings: &AgentSettings) -> Result<ExitCode, Failure> {
    let workflow = config
        .identity
        .workflow_name
        .clone()
        .ok_or(ConfigError::Missing {
            var: env::ARGO_WORKFLOW_NAME,
            what: "workflow name",
        })?;
    if !settings.plugin_names.is_empty() {
        tracing::warn!(
            plugins = ?settings.plugin_names,
            "argoexec-rs's agent does not run executor plugins: their templates will fail"
        );
    }
    let options = AgentOptions {
        workers: settings.task_workers,
        patch_rate: settings.patch_rate,
    };
    let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
    let stopped = runtime.block_on(async {
        let kube = argoexec_kube::connect(&config.flags.kube).await?;
        tracing::info!(
            version = env!("CARGO_PKG_VERSION"),
            namespace = kube.namespace(),
            workflow,
            "Starting Workflow Executor (agent)"
        );
        // Header values from secrets are read through the API, as Argo's agent reads them.
        let runner = HttpRunner::new(ApiSecrets::new(&kube, Backoff::default()))?;
        let task_set = TaskSet::new(&kube, &workflow, Backoff::default());
        anyhow::Ok(argoexec_agent::run(&task_set, runner, options).await?)
    })?;
    tracing::info!(?stopped, "Agent stopped");
    Ok(ExitCode::SUCCESS)
}
