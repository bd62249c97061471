//! The signals the emissary forwards: blocked at start and read from a signalfd, so they arrive
//! as readable data in the poll loop (even when the emissary is PID 1, whose default-action
//! signals the kernel would otherwise drop).

use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::os::fd::{AsFd, BorrowedFd};

use crate::Error;

/// Signals raised by a fault in the emissary itself: never blocked (blocking them would make a
/// fault undefined behaviour), never forwarded. SIGKILL and SIGSTOP cannot be caught at all.
const NOT_FORWARDED: [Signal; 8] = [
    Signal::SIGKILL,
    Signal::SIGSTOP,
    Signal::SIGSEGV,
    Signal::SIGBUS,
    Signal::SIGILL,
    Signal::SIGFPE,
    Signal::SIGTRAP,
    Signal::SIGSYS,
];

/// The blocked signals and the signalfd they are read from.
#[derive(Debug)]
pub(crate) struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// Blocks every standard signal but the fault signals, and opens a signalfd for them.
    /// Children get an empty mask back: Rust's `Command` resets it before `exec`.
    pub(crate) fn block() -> Result<Self, Error> {
        let mut set = SigSet::empty();
        for signal in Signal::iterator().filter(|s| !NOT_FORWARDED.contains(s)) {
            set.add(signal);
        }
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&set), None)
            .map_err(|e| Error::io("block signals", e))?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(|e| Error::io("open a signalfd", e))?;
        Ok(Self { fd })
    }

    /// Every signal pending now, in arrival order.
    pub(crate) fn pending(&self) -> Result<Vec<Signal>, Error> {
        let mut out = Vec::new();
        loop {
            match self.fd.read_signal() {
                Ok(Some(info)) => {
                    let number = i32::try_from(info.ssi_signo).unwrap_or(0);
                    if let Ok(signal) = Signal::try_from(number) {
                        out.push(signal);
                    }
                }
                Ok(None) => return Ok(out),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(Error::io("read the signalfd", e)),
            }
        }
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Whether `signal` ends a wait that has no command to forward it to (a dependency, a pause):
/// what a container runtime sends to stop a container.
pub(crate) fn stops_waiting(signal: Signal) -> bool {
    matches!(
        signal,
        Signal::SIGTERM | Signal::SIGINT | Signal::SIGHUP | Signal::SIGQUIT
    )
}
