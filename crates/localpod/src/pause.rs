//! The pod's PID 1: holds the PID namespace open and reaps the orphans of every container.

use std::io::Read as _;

use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};

use crate::Error;

/// Runs as PID 1 of the pod's PID namespace until the runner goes away (its end of our stdin
/// closes) or it is told to stop (SIGTERM, SIGINT, SIGHUP). Reaps every zombie reparented to it.
///
/// When it returns, the caller exits, and the kernel kills every process left in the namespace.
pub fn pause_main() -> Result<(), Error> {
    // Signals to PID 1 without a handler are dropped, but blocked ones are queued: block them
    // before any thread exists (threads inherit the mask) and take them with sigwait.
    let mut set = SigSet::empty();
    for signal in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
    ] {
        set.add(signal);
    }
    set.thread_block()
        .map_err(Error::sys("block signals in the pause process"))?;
    std::thread::spawn(|| {
        // The runner holds the write end; EOF means it is gone and the pod must go too.
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    loop {
        match set.wait().map_err(Error::sys("wait for a signal"))? {
            Signal::SIGCHLD => reap(),
            _ => return Ok(()),
        }
    }
}

/// Reaps every exited child without blocking.
fn reap() {
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(status) => tracing::trace!(?status, "reaped"),
        }
    }
}
