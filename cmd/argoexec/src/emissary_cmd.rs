//! Wiring of `argoexec emissary -- CMD ARGS...`: options and template from the configuration,
//! the exit code written on every path, the process's exit code.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use argoexec_config::Config;
use argoexec_emissary::{Emissary, Options};
use argoexec_executor::PodPaths;
use argoexec_template::{SourceKind, SourcePaths, Template, parse_template};

use crate::Failure;

/// Runs the emissary. Its own failures exit 64 (a failed dependency passes on its code), after
/// writing that code to `ctr/<c>/exitcode` so wait is never left waiting.
pub(crate) fn emissary(
    config: &Config,
    root: &Path,
    args: Vec<String>,
) -> Result<ExitCode, Failure> {
    let container = config
        .identity
        .container_name
        .clone()
        .filter(|name| !name.is_empty())
        .context("ARGO_CONTAINER_NAME is not set: the emissary needs it to name /var/run/argo/ctr/<container>")?;
    let var_run_argo = PodPaths::under(root).var_run_argo();
    let options = Options {
        var_run_argo: var_run_argo.clone(),
        container,
        include_script_output: config.include_script_output,
        debug_pause_before: config.debug_pause_before,
        debug_pause_after: config.debug_pause_after,
    };
    let emissary = Emissary::start(options)?;
    let outcome = load_template(config, root, &var_run_argo).and_then(|template| {
        let argv = with_args_file(config, root, args)?;
        emissary.run(&template, &argv).map_err(anyhow::Error::from)
    });
    let code = match &outcome {
        Ok(code) => *code,
        Err(error) => error
            .downcast_ref::<argoexec_emissary::Error>()
            .map_or(64, argoexec_emissary::Error::exit_code),
    };
    if let Err(error) = emissary.finish(code) {
        tracing::error!(error = %format!("{error:#}"), "failed to write exit code");
    }
    match outcome {
        Ok(code) => Ok(ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX))),
        // A failed dependency is not an executor error: its code is the container's.
        Err(error) if code != 64 => {
            tracing::error!(error = %format!("{error:#}"), "not starting");
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX)))
        }
        Err(error) => Err(error.into()),
    }
}

/// The template as Argo's emissary reads it: `/var/run/argo/template` (written by init), else
/// `ARGO_TEMPLATE` (v4 pods without an init container).
fn load_template(config: &Config, root: &Path, var_run_argo: &Path) -> anyhow::Result<Template> {
    let file = var_run_argo.join("template");
    match std::fs::read_to_string(&file) {
        Ok(text) => Ok(parse_template(&text, &SourceKind::File(file))?),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let source = config
                .template_source(&SourcePaths::under(root))
                .with_context(|| {
                    format!(
                        "failed to read template: neither {} nor ARGO_TEMPLATE is available",
                        file.display()
                    )
                })?;
            Ok(source.load()?.0)
        }
        Err(error) => {
            Err(error).with_context(|| format!("failed to read template {}", file.display()))
        }
    }
}

/// The longest argument `execve` takes (Linux's `MAX_ARG_STRLEN`, Argo's `MaxEnvVarLen`).
const MAX_ARG_LEN: usize = 128 * 1024;

/// `args` (the command first) plus the JSON list in `ARGO_CONTAINER_ARGS_FILE` (v4 offloads long
/// argument lists there). As Argo's emissary does then, an argument longer than exec takes is
/// written to `/tmp/argo_arg_<i>.txt` (`i` counting from the first argument after the command)
/// and passed as `@/tmp/argo_arg_<i>.txt`: the program must understand `@file`.
fn with_args_file(
    config: &Config,
    root: &Path,
    mut args: Vec<String>,
) -> anyhow::Result<Vec<String>> {
    let Some(path) = &config.container_args_file else {
        return Ok(args);
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("failed to read container args file {}", path.display()))?;
    let more: Vec<String> = serde_json::from_str(&text).with_context(|| {
        format!(
            "invalid container args file {}: expected a JSON list of strings",
            path.display()
        )
    })?;
    args.extend(more);
    for (i, arg) in args.iter_mut().enumerate().skip(1) {
        if arg.len() > MAX_ARG_LEN {
            let name = format!("/tmp/argo_arg_{}.txt", i - 1);
            let file = root.join(name.trim_start_matches('/'));
            std::fs::write(&file, arg.as_bytes()).with_context(|| {
                format!(
                    "failed to offload argument {} ({} bytes) to {}",
                    i - 1,
                    arg.len(),
                    file.display()
                )
            })?;
            tracing::info!(index = i - 1, size = arg.len(), file = %name, "Offloaded a long argument: the program gets @file");
            *arg = format!("@{name}");
        }
    }
    Ok(args)
}
