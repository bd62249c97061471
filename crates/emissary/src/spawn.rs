//! Starting the command: `posix_spawnp` in a new process group, with an empty signal mask (the
//! emissary blocks the signals it forwards, and a mask is inherited across `exec`; Rust's
//! `Command` keeps it) and SIGPIPE back to its default action. Its stdout and stderr are pipes
//! when they are captured, else the emissary's own.

use std::ffi::CString;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;

use nix::spawn::{PosixSpawnAttr, PosixSpawnFileActions, PosixSpawnFlags, posix_spawnp};
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::Pid;

use crate::Error;

/// The started command.
pub(crate) struct Child {
    /// Its pid, also its process group's id.
    pub(crate) pid: Pid,
    /// The read end of its stdout, when captured.
    pub(crate) stdout: Option<std::fs::File>,
    /// The read end of its stderr, when captured.
    pub(crate) stderr: Option<std::fs::File>,
}

/// Starts `program` (looked up in `PATH`) with `args` and this process's environment.
pub(crate) fn spawn(program: &str, args: &[String], capture: bool) -> Result<Child, Error> {
    let start = |source: std::io::Error| Error::Start {
        program: program.to_owned(),
        source,
    };
    let c_string = |text: &[u8]| {
        CString::new(text).map_err(|_| start(std::io::Error::other("an argument holds a NUL byte")))
    };
    let mut argv = vec![c_string(program.as_bytes())?];
    for arg in args {
        argv.push(c_string(arg.as_bytes())?);
    }
    let env = std::env::vars_os()
        .map(|(name, value)| {
            let mut pair = name.as_bytes().to_vec();
            pair.push(b'=');
            pair.extend_from_slice(value.as_bytes());
            c_string(&pair)
        })
        .collect::<Result<Vec<_>, _>>()?;

    let spawn_err = |e: nix::Error| start(e.into());
    let mut attr = PosixSpawnAttr::init().map_err(spawn_err)?;
    attr.set_flags(
        PosixSpawnFlags::POSIX_SPAWN_SETPGROUP
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGMASK
            | PosixSpawnFlags::POSIX_SPAWN_SETSIGDEF,
    )
    .map_err(spawn_err)?;
    attr.set_pgroup(Pid::from_raw(0)).map_err(spawn_err)?;
    attr.set_sigmask(&SigSet::empty()).map_err(spawn_err)?;
    let mut default = SigSet::empty();
    default.add(Signal::SIGPIPE);
    attr.set_sigdefault(&default).map_err(spawn_err)?;

    let mut actions = PosixSpawnFileActions::init().map_err(spawn_err)?;
    // Both ends close on exec; dup2 gives the child its 1 and 2 without that flag.
    let pipes: Option<[(OwnedFd, OwnedFd); 2]> = if capture {
        let pipe = || nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(spawn_err);
        let (out, err) = (pipe()?, pipe()?);
        actions.add_dup2(out.1.as_raw_fd(), 1).map_err(spawn_err)?;
        actions.add_dup2(err.1.as_raw_fd(), 2).map_err(spawn_err)?;
        Some([out, err])
    } else {
        None
    };
    let pid = posix_spawnp(&argv[0], &actions, &attr, &argv, &env).map_err(spawn_err)?;
    // The write ends now belong to the child alone: dropping ours lets its exit end the pipes.
    let (stdout, stderr) = match pipes {
        Some([(out, _), (err, _)]) => (Some(out.into()), Some(err.into())),
        None => (None, None),
    };
    Ok(Child {
        pid,
        stdout,
        stderr,
    })
}
