//! Waiting for a process to exit and signalling it, through its pidfd.

use std::io;
use std::os::fd::OwnedFd;

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::Signal;

pub(super) use crate::state_dir::register;

/// Resolves when the process of `pidfd` has exited: a pidfd becomes readable then.
pub(super) async fn exited(pidfd: &OwnedFd) -> io::Result<()> {
    // Each waiter registers its own duplicate, so concurrent waits need no coordination.
    let fd = register(pidfd.try_clone()?)?;
    let _ready = fd.readable().await?;
    Ok(())
}

/// Whether the process of `pidfd` has exited, without waiting.
pub(super) fn has_exited(pidfd: &OwnedFd) -> io::Result<bool> {
    let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    let ready = rustix::event::poll(&mut fds, Some(&zero))?;
    Ok(ready > 0)
}

/// Sends `signal`; `Ok(false)` when the process is already gone.
pub(super) fn signal(pidfd: &OwnedFd, signal: Signal) -> io::Result<bool> {
    match rustix::process::pidfd_send_signal(pidfd, signal) {
        Ok(()) => Ok(true),
        Err(Errno::SRCH) => Ok(false),
        Err(errno) => Err(errno.into()),
    }
}
