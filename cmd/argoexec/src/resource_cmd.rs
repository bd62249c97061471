//! `argoexec resource ACTION [MANIFEST_PATH]`: a resource template's action, as Argo's
//! `execResource` runs it: the task result created first (v4), the action, the conditions, the
//! output parameters reported, and the task result marked complete (v4) however it ended.
//!
//! The manifest is `MANIFEST_PATH` when given; else, for `manifestFrom.artifact`, the file of the
//! input artifact of that name (the init container loaded it); else the template's `manifest`
//! (what Argo stages into `/tmp/manifest.yaml`); else the file `/tmp/manifest.yaml` under
//! `--pod-root`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use argoexec_config::Config;
use argoexec_report::{Reporter as _, StepReport};
use argoexec_resource::manifest::{self, Owner};
use argoexec_resource::{Action, Condition, Flags, Request, Resources};
use argoexec_template::{Outputs, Protocol, ResourceTemplate, Template};

use crate::cli::GlobalArgs;
use crate::wait_cmd::{self, AnyReporter};
use crate::{Failure, load_template};

/// Where Argo's controller has the manifest staged (`common.ExecutorResourceManifestPath`).
const MANIFEST_PATH: &str = "/tmp/manifest.yaml";

/// Runs the action on the manifest.
pub(crate) fn resource(
    global: &GlobalArgs,
    action: &str,
    manifest_path: Option<PathBuf>,
) -> Result<ExitCode, Failure> {
    let config = Config::from_process_env(global.flags())?;
    let root = global.pod_root.clone();
    let (template, _, protocol) = load_template(&config, &root, "resource")?;
    let with_protocol = |error: anyhow::Error| Failure {
        error,
        protocol: Some(protocol),
    };
    let action: Action = action
        .parse()
        .map_err(|e| with_protocol(anyhow::Error::new(e)))?;
    let tokio = tokio::runtime::Runtime::new()
        .context("start the async runtime")
        .map_err(with_protocol)?;
    let step = Step {
        config: &config,
        root: &root,
        template: &template,
        protocol,
        action,
        manifest_path,
    };
    tokio.block_on(step.run()).map_err(with_protocol)?;
    Ok(ExitCode::SUCCESS)
}

/// One resource step.
struct Step<'a> {
    config: &'a Config,
    root: &'a Path,
    template: &'a Template,
    protocol: Protocol,
    action: Action,
    manifest_path: Option<PathBuf>,
}

impl Step<'_> {
    async fn run(&self) -> anyhow::Result<()> {
        let (reporter, _) =
            wait_cmd::reporter_for(self.config, self.root, self.protocol, Vec::new()).await?;
        let kube = match &reporter {
            AnyReporter::Kube(kube) => Some(kube.as_ref()),
            AnyReporter::File(_) => None,
        };
        if let Some(kube) = kube
            && let Err(e) = kube.start().await
        {
            tracing::error!(error = %argoexec_storage::chain(&e), "Failed to initialize the task result");
        }
        let outcome = self.act().await;
        let v4 = self.protocol == Protocol::V4;
        let reported = match (&outcome, kube) {
            (Ok(Some(outputs)), _) => reporter.report(&report(outputs.clone(), None)).await,
            // v3 and v4 read an error from the termination message; v4 needs the task result
            // marked complete whatever happened (Argo's deferred FinalizeOutput).
            (_, Some(kube)) if v4 => kube
                .finalize()
                .await
                .map_err(|e| argoexec_report::ReportError::Backend(Box::new(e))),
            (Ok(None), Some(_)) => Ok(()),
            (Ok(None), None) => reporter.report(&report(Outputs::default(), None)).await,
            (Err(e), _) => {
                reporter
                    .report(&report(Outputs::default(), Some(format!("{e:#}"))))
                    .await
            }
        };
        match (outcome, reported) {
            (Err(e), Err(r)) => {
                tracing::error!(error = %argoexec_storage::chain(&r), "Also failed to report");
                Err(e)
            }
            (Err(e), Ok(())) => Err(e),
            (Ok(_), Err(r)) => Err(anyhow::Error::new(r).context("report the outputs")),
            (Ok(_), Ok(())) => Ok(()),
        }
    }

    /// The action, the wait and the outputs; the outputs to report when the template has output
    /// parameters (Argo reports nothing else for a resource step).
    async fn act(&self) -> anyhow::Result<Option<Outputs>> {
        let spec = self.template.resource.as_ref().with_context(|| {
            format!(
                "template {:?} has no resource: argoexec resource runs resource templates",
                self.template.name.as_deref().unwrap_or("")
            )
        })?;
        let mut outputs = self.template.outputs.clone().unwrap_or_default();
        let mut parameters = outputs.parameters.take().unwrap_or_default();
        let success = condition("success", spec.success_condition.as_deref())?;
        let failure = condition("fail", spec.failure_condition.as_deref())?;
        if self.action == Action::Delete
            && (success.is_some() || failure.is_some() || !parameters.is_empty())
        {
            anyhow::bail!(
                "successCondition, failureCondition and outputs are not supported for delete action"
            );
        }
        let mut flags = Flags::parse(spec.flags.as_deref().unwrap_or_default())?;
        if self.action == Action::Delete {
            // Argo always passes --ignore-not-found to kubectl delete.
            flags.ignore_not_found = true;
        }
        let text = self.manifest_text(spec)?;
        let mut manifest = manifest::parse(&text)?;
        if text.trim().is_empty() && flags.args.is_empty() {
            anyhow::bail!("Must provide at least one of flags or manifest.");
        }
        if spec.set_owner_reference == Some(true)
            && !matches!(self.action, Action::Get | Action::Delete)
            && let Some(object) = manifest.as_mut().filter(|m| m.get("kind").is_some())
        {
            let id = &self.config.identity;
            let owner = Owner {
                name: id.workflow_name.clone().context(
                    "setOwnerReference needs ARGO_WORKFLOW_NAME (the controller sets it)",
                )?,
                uid: id.workflow_uid.clone().context(
                    "setOwnerReference needs ARGO_WORKFLOW_UID (set by Argo 4 controllers)",
                )?,
            };
            manifest::set_owner(object, &owner)?;
        }
        let request = Request {
            action: self.action,
            manifest,
            flags,
            merge_strategy: spec.merge_strategy.as_deref().unwrap_or_default().parse()?,
        };
        let kube = argoexec_kube::connect(&self.config.flags.kube)
            .await
            .context("connect to the Kubernetes API")?;
        let resources = Resources::new(kube.client().clone(), kube.namespace());
        let acted = resources.run(&request).await?;
        if let Some(acted) = &acted {
            argoexec_resource::wait_conditions(
                resources.client(),
                acted,
                success.as_ref(),
                failure.as_ref(),
                self.config.resource_state_check_interval,
            )
            .await?;
        }
        if parameters.is_empty() {
            tracing::info!("No output parameters");
            return Ok(None);
        }
        match &acted {
            // Argo: a `get` that found nothing gives every parameter its default.
            None => argoexec_resource::set_outputs(&mut parameters, None)?,
            Some(acted) if argoexec_resource::reads_object(&parameters) => {
                let api = acted.target.api(resources.client());
                let object = api.get(&acted.target.name).await.map_err(|e| {
                    argoexec_resource::Error::Api {
                        action: "get",
                        target: acted.target.to_string(),
                        source: Box::new(e),
                    }
                })?;
                let object = serde_json::to_value(acted.target.typed(object))?;
                argoexec_resource::set_outputs(&mut parameters, Some(&object))?;
            }
            Some(_) => {}
        }
        outputs.parameters = Some(parameters);
        outputs.artifacts = None;
        Ok(Some(outputs))
    }

    /// The manifest's text, from the first source that has it (see the module's doc).
    fn manifest_text(&self, spec: &ResourceTemplate) -> anyhow::Result<String> {
        let path = if let Some(path) = &self.manifest_path {
            path.clone()
        } else if let Some(from) = &spec.manifest_from {
            let name = &from.artifact.name;
            let artifact = self
                .template
                .inputs
                .as_ref()
                .and_then(|i| i.artifacts.as_ref())
                .and_then(|a| a.iter().find(|a| &a.name == name))
                .with_context(|| format!("manifestFrom names artifact {name:?}, which is not an input of the template"))?;
            let path = artifact
                .path
                .as_deref()
                .with_context(|| format!("input artifact {name:?} (manifestFrom) has no path"))?;
            under(self.root, path)
        } else if let Some(text) = spec.manifest.as_deref() {
            return Ok(text.to_owned());
        } else {
            under(self.root, MANIFEST_PATH)
        };
        std::fs::read_to_string(&path)
            .with_context(|| format!("read the manifest {}", path.display()))
    }
}

/// A pod path under `--pod-root`.
fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn condition(which: &'static str, text: Option<&str>) -> anyhow::Result<Option<Condition>> {
    match text.filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(text) => Condition::parse(text).map(Some).map_err(|source| {
            argoexec_resource::Error::Condition {
                which,
                text: text.to_owned(),
                source,
            }
            .into()
        }),
    }
}

fn report(outputs: Outputs, message: Option<String>) -> StepReport {
    StepReport {
        outputs,
        message,
        progress: None,
    }
}
