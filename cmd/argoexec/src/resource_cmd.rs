//! `argoexec resource ACTION [MANIFEST_PATH]`: a resource template's action.

use std::path::PathBuf;
use std::process::ExitCode;

use argoexec_config::Config;

use crate::cli::GlobalArgs;
use crate::{Failure, NotImplemented};

/// Runs the action on the manifest.
pub(crate) fn resource(
    global: &GlobalArgs,
    _action: &str,
    _manifest_path: Option<PathBuf>,
) -> Result<ExitCode, Failure> {
    Config::from_process_env(global.flags())?;
    Err(NotImplemented {
        command: "resource",
        what: "resource templates",
    }
    .into())
}
