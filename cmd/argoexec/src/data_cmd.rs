//! `argoexec data`: a data template's source and transformations.

use std::process::ExitCode;

use argoexec_config::Config;

use crate::cli::GlobalArgs;
use crate::{Failure, NotImplemented};

/// Runs the data template named by ARGO_TEMPLATE.
pub(crate) fn data(global: &GlobalArgs) -> Result<ExitCode, Failure> {
    Config::from_process_env(global.flags())?;
    Err(NotImplemented {
        command: "data",
        what: "data templates",
    }
    .into())
}
