//! Waiting for a process to exit and signalling it, through its pidfd.

use std::io;
use std::os::fd::OwnedFd;

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use rustix::process::Signal;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

/// Registers `fd` with tokio's reactor for readability.
///
/// tokio 1.54 deprecated its safe constructors in favour of `unsafe fn register`, because a
/// generic `T` may return a different raw fd from one `as_raw_fd` call to the next. An `OwnedFd`
/// returns the one fd it owns, open, until it is dropped: exactly what `register`'s safety
/// contract asks for. So the safe constructor is sound here, and this crate forbids `unsafe`.
#[allow(deprecated)]
pub(super) fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    AsyncFd::with_interest(fd, Interest::READABLE)
}

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
