//! `argoexec kill SIGNAL PID`, as Argo 4's controller execs it in a container to stop it.

use std::process::ExitCode;

use crate::{Failure, NotImplemented};

/// Sends the signal to the process.
pub(crate) fn kill(_signal: &str, _pid: &str) -> Result<ExitCode, Failure> {
    Err(NotImplemented {
        command: "kill",
        what: "signalling a process",
    }
    .into())
}
