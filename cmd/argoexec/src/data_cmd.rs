//! `argoexec data`: a data template's source and transformations (crates/data), the result
//! reported as the step's `result` output through wait's reporter.
//!
//! As Argo's (`cmd/argoexec/commands/data.go`, `workflow/executor/data.go`): the template comes
//! from the usual sources (ARGO_TEMPLATE), the JSON argument the controller passes is not read;
//! on success the template's outputs, `result` set, go into the task result, which v4 then
//! marks complete; on failure nothing is reported, the message goes to the termination log and
//! the command exits 64.

use std::process::ExitCode;

use anyhow::Context as _;
use argoexec_config::Config;
use argoexec_report::{Reporter as _, StepReport};
use argoexec_storage::RetryPolicy;

use crate::cli::GlobalArgs;
use crate::wait_cmd::reporter_for;
use crate::{Failure, load_template, storage_options};

/// Runs the data template of the pod's template and reports its result.
pub(crate) fn data(global: &GlobalArgs) -> Result<ExitCode, Failure> {
    let config = Config::from_process_env(global.flags())?;
    let root = global.pod_root.clone();
    let (template, _, protocol) = load_template(&config, &root, "data")?;
    let with_protocol = |error: anyhow::Error| Failure {
        error,
        protocol: Some(protocol),
    };
    let tokio = tokio::runtime::Runtime::new()
        .context("start the async runtime")
        .map_err(with_protocol)?;
    tokio
        .block_on(async {
            let data = template.data.as_ref().context("no data template found")?;
            let (reporter, secrets) = reporter_for(&config, &root, protocol, Vec::new()).await?;
            let result = argoexec_data::process(
                data,
                template.archive_location.as_ref(),
                &secrets,
                &storage_options(&config),
                &RetryPolicy::from_settings(&config.retry),
            )
            .await
            .context("unable to process data template")?;
            tracing::info!(result = %result, "Data template processed");
            let mut outputs = template.outputs.clone().unwrap_or_default();
            outputs.result = Some(result);
            outputs.artifacts = None;
            let report = StepReport {
                outputs,
                message: None,
                progress: None,
            };
            reporter
                .report(&report)
                .await
                .context("report the data template's result")?;
            anyhow::Ok(ExitCode::SUCCESS)
        })
        .map_err(with_protocol)
}
