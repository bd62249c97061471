//! `argoexec kill SIGNAL PID`, as Argo 4's controller execs it in a container to stop it
//! (`argoexec kill 15 1`, or `/var/run/argo/argoexec kill 15 1` in a user container, where init
//! copied this binary). It runs in images with no shell, so the signal is sent in process.
//!
//! Argo's (`cmd/argoexec/commands/kill.go`) takes a signal number only, prints `killing PID with
//! NAME` where NAME is Go's description of the signal (`terminated`), and fails with exit 64 when
//! the process is gone. This one also takes names (`TERM`, `SIGTERM`, any case), and refuses a PID
//! of 0 or below, which Go would hand to kill(2) as "every process of the group" or "every process".

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill as send};
use nix::unistd::Pid;

use crate::Failure;

/// Sends the signal to the process and says so on stdout, as Argo's does.
pub(crate) fn kill(signal: &str, pid: &str) -> Result<ExitCode, Failure> {
    let number = parse_signal(signal)?;
    let pid = parse_pid(pid)?;
    // Signal 0 only checks that the process exists; nix spells it `None`.
    let nix_signal = match number {
        0 => None,
        n => Some(Signal::try_from(n).with_context(|| {
            format!("signal {n} is not supported (real-time signals are not): expected 0 to 31")
        })?),
    };
    println!("killing {pid} with {}", go_signal_name(number));
    match send(Pid::from_raw(pid), nix_signal) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        // Go's message for a process that is gone.
        Err(Errno::ESRCH) => {
            Err(anyhow::anyhow!("os: process already finished (no process {pid})").into())
        }
        Err(errno) => Err(anyhow::Error::new(errno)
            .context(format!("send {} to process {pid}", go_signal_name(number)))
            .into()),
    }
}

/// A signal by number (`15`) or name (`TERM`, `SIGTERM`, `sigterm`).
fn parse_signal(text: &str) -> anyhow::Result<i32> {
    let text = text.trim();
    if let Ok(number) = text.parse::<i32>() {
        if number < 0 {
            bail!("invalid signal {text:?}: expected a number from 0 to 31 or a name such as TERM");
        }
        return Ok(number);
    }
    let upper = text.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>().map(|s| s as i32).map_err(|_| {
        anyhow::anyhow!(
            "invalid signal {text:?}: expected a number from 0 to 31 or a name such as TERM"
        )
    })
}

/// A process ID: a positive number.
fn parse_pid(text: &str) -> anyhow::Result<i32> {
    match text.trim().parse::<i32>() {
        Ok(pid) if pid > 0 => Ok(pid),
        _ => bail!("invalid process ID {text:?}: expected a positive number"),
    }
}

/// Go's `syscall.Signal.String()` on Linux: the description from its signal table, else
/// `signal N`.
fn go_signal_name(number: i32) -> String {
    const NAMES: [&str; 32] = [
        "",
        "hangup",
        "interrupt",
        "quit",
        "illegal instruction",
        "trace/breakpoint trap",
        "aborted",
        "bus error",
        "floating point exception",
        "killed",
        "user defined signal 1",
        "segmentation fault",
        "user defined signal 2",
        "broken pipe",
        "alarm clock",
        "terminated",
        "stack fault",
        "child exited",
        "continued",
        "stopped (signal)",
        "stopped",
        "stopped (tty input)",
        "stopped (tty output)",
        "urgent I/O condition",
        "CPU time limit exceeded",
        "file size limit exceeded",
        "virtual timer expired",
        "profiling timer expired",
        "window changed",
        "I/O possible",
        "power failure",
        "bad system call",
    ];
    usize::try_from(number)
        .ok()
        .and_then(|i| NAMES.get(i))
        .filter(|name| !name.is_empty())
        .map_or_else(|| format!("signal {number}"), |name| (*name).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_by_number_and_name() {
        assert_eq!(parse_signal("15").unwrap(), 15);
        assert_eq!(parse_signal("TERM").unwrap(), 15);
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("kill").unwrap(), 9);
        assert_eq!(parse_signal("0").unwrap(), 0);
        assert!(parse_signal("-1").is_err());
        assert!(parse_signal("NOPE").is_err());
        assert!(parse_signal("").is_err());
    }

    #[test]
    fn pids_are_positive() {
        assert_eq!(parse_pid("1").unwrap(), 1);
        assert!(parse_pid("0").is_err());
        assert!(parse_pid("-1").is_err());
        assert!(parse_pid("x").is_err());
    }

    #[test]
    fn names_are_gos() {
        assert_eq!(go_signal_name(15), "terminated");
        assert_eq!(go_signal_name(9), "killed");
        assert_eq!(go_signal_name(0), "signal 0");
        assert_eq!(go_signal_name(40), "signal 40");
    }
}
