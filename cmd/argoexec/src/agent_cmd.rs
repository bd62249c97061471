//! `argoexec agent init|main`: the agent pod of HTTP templates.

use std::process::ExitCode;

use argoexec_config::Config;

use crate::cli::{AgentCommand, GlobalArgs};
use crate::{Failure, NotImplemented};

/// Runs the agent's init or main container.
pub(crate) fn agent(global: &GlobalArgs, _command: AgentCommand) -> Result<ExitCode, Failure> {
    Config::from_process_env(global.flags())?;
    Err(NotImplemented {
        command: "agent",
        what: "HTTP templates",
    }
    .into())
}
