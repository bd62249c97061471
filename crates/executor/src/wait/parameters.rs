//! Output parameters read from a file (`valueFrom.path`), with their defaults.

use std::path::Path;

use argoexec_runtime::ContainerRuntime;
use argoexec_storage::{Secrets, chain};
use argoexec_template::Outputs;

use super::error::WaitError;
use super::step::Step;

/// Reads one parameter's file: from main's image through the runtime, or from the volume it is on.
async fn read_param<R: ContainerRuntime, S: Secrets>(
    step: &Step<'_, R, S>,
    path: &str,
) -> Result<Vec<u8>, argoexec_runtime::Error> {
    if step.is_base_image_path(path) {
        tracing::info!(path, "Copying output parameter from base image layer");
        step.runtime.read_file(step.main(), Path::new(path)).await
    } else {
        let mounted = step.options.paths.main_fs(path);
        tracing::info!(path, mounted = %mounted.display(), "Copying output parameter from volume mount");
        tokio::fs::read(&mounted)
            .await
            .map_err(|e| argoexec_runtime::Error::io(format!("read {}", mounted.display()), e))
    }
}

/// Fills in the value of every parameter of `outputs` that is read from a path; one that cannot
/// be read takes its default, or is an error.
pub(super) async fn save_parameters<R: ContainerRuntime, S: Secrets>(
    step: &Step<'_, R, S>,
    outputs: &mut Outputs,
    errors: &mut Vec<WaitError>,
) {
    let Some(params) = outputs.parameters.as_mut() else {
        return;
    };
    for param in params.iter_mut() {
        let Some(path) = param.value_from.as_ref().and_then(|v| v.path.clone()) else {
            continue;
        };
        tracing::info!(parameter = %param.name, "Saving path output parameter");
        let value = match read_param(step, &path).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(err) => match param.value_from.as_ref().and_then(|v| v.default.as_ref()) {
                Some(default) => {
                    tracing::info!(parameter = %param.name, error = %chain(&err), "Using the default value");
                    default.to_string()
                }
                None => {
                    errors.push(WaitError::SaveParameter {
                        name: param.name.clone(),
                        path,
                        source: err,
                    });
                    continue;
                }
            },
        };
        // One trailing newline off, for the user's convenience, as Argo does.
        let value = value.strip_suffix('\n').unwrap_or(&value);
        param.set_value(value);
        tracing::info!(parameter = %param.name, "Successfully saved output parameter");
    }
}
