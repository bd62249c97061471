//! `argoexec artifact delete`: the artifact garbage collection pod.

use std::process::ExitCode;

use argoexec_config::Config;

use crate::cli::GlobalArgs;
use crate::{Failure, NotImplemented};

/// Deletes the artifacts of this pod's WorkflowArtifactGCTasks.
pub(crate) fn delete(global: &GlobalArgs) -> Result<ExitCode, Failure> {
    Config::from_process_env(global.flags())?;
    Err(NotImplemented {
        command: "artifact delete",
        what: "artifact garbage collection",
    }
    .into())
}
