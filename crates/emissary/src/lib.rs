//! `argoexec emissary -- CMD ARGS...`: runs one container's command of an emissary pod and tells
//! the wait container about it through files in the shared `/var/run/argo` (contract §6).
//!
//! | File (under `/var/run/argo`) | Who writes it | What it says |
//! |---|---|---|
//! | `ctr/<c>/` | the emissary, at start (mode 0777, so any user may signal) | this container started |
//! | `ctr/<c>/stdout`, `combined` | the emissary, while the command runs, only when needed (script result or `archiveLogs`) | stdout; stdout and stderr as read |
//! | `ctr/<c>/signal` | wait (or anyone) | a signal number: the emissary removes the file and signals the command's process group |
//! | `ctr/<c>/before`, `after` | a person debugging | release the `ARGO_DEBUG_PAUSE_BEFORE` / `_AFTER` pause |
//! | `outputs/parameters/<path>` | the emissary of `main`, after the command | a copy of each output parameter file |
//! | `outputs/artifacts/<path>.tgz` | the emissary of `main`, after the command | each output artifact path as tar.gz, streamed |
//! | `ctr/<c>/exitcode` | the emissary, last | the exit code (a signal N gives 128+N); its presence means everything above is complete |
//!
//! One thread, one `poll` loop: every signal but the synchronous ones is blocked and read from a
//! signalfd, the `ctr` directories are watched with inotify, and the command's output pipes are
//! read as they fill. `SIGCHLD` reaps every child (the emissary is PID 1 of its container and
//! inherits orphans); every other signal is forwarded to the command's process group.

mod ctr;
mod error;
mod outputs;
mod retry;
mod signals;
mod spawn;
mod supervise;

use std::path::PathBuf;

use argoexec_template::Template;

pub use ctr::{AFTER, BEFORE, COMBINED, CtrDir, EXITCODE, SIGNAL, STDOUT};
pub use error::Error;
pub use retry::Retry;

/// How an emissary is set up: what the environment and the command line said.
#[derive(Debug, Clone)]
pub struct Options {
    /// `/var/run/argo` (under another root in tests and the local runner).
    pub var_run_argo: PathBuf,
    /// This container's name (`ARGO_CONTAINER_NAME`).
    pub container: String,
    /// `ARGO_INCLUDE_SCRIPT_OUTPUT` is true: stdout is the step's result, so it is captured.
    pub include_script_output: bool,
    /// `ARGO_DEBUG_PAUSE_BEFORE`: wait for `ctr/<c>/before` before starting the command.
    pub debug_pause_before: bool,
    /// `ARGO_DEBUG_PAUSE_AFTER`: wait for `ctr/<c>/after` once the command has exited.
    pub debug_pause_after: bool,
}

/// The name of the container whose outputs the emissary stages.
pub const MAIN_CONTAINER: &str = "main";

/// The emissary of one container. [`Emissary::start`] first (blocks signals, creates
/// `ctr/<c>/`), then [`Emissary::run`], then [`Emissary::finish`] with the exit code, always.
#[derive(Debug)]
pub struct Emissary {
    options: Options,
    ctr: CtrDir,
    signals: signals::Signals,
}

impl Emissary {
    /// Blocks the signals it will forward (before any thread exists, so none of them can kill
    /// the emissary before the command runs) and creates `ctr/<c>/`, which says it has started.
    pub fn start(options: Options) -> Result<Self, Error> {
        let signals = signals::Signals::block()?;
        let ctr = CtrDir::new(&options.var_run_argo, &options.container);
        ctr.create()?;
        Ok(Self {
            options,
            ctr,
            signals,
        })
    }

    /// This container's directory.
    pub fn ctr(&self) -> &CtrDir {
        &self.ctr
    }

    /// Waits for the container set's dependencies, pauses if asked, runs `argv` (retried as the
    /// container set's `retryStrategy` says), pauses again if asked and, in `main`, stages the
    /// outputs. Returns the exit code to report: the command's (128+N when a signal N killed
    /// it), or 128+N when signal N arrived before it started.
    pub fn run(&self, template: &Template, argv: &[String]) -> Result<i32, Error> {
        supervise::run(self, template, argv)
    }

    /// Writes `ctr/<c>/exitcode`: the last file, the one wait waits for.
    pub fn finish(&self, code: i32) -> Result<(), Error> {
        self.ctr.write_exit_code(code)
    }
}
