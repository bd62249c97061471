//! The emissary's sequence and its poll loop.

use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use argoexec_runtime::DirWatch;
use argoexec_template::Template;
use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use rustix::event::{PollFd, PollFlags, Timespec, poll};

use crate::ctr::{self, CtrDir};
use crate::signals::stops_waiting;
use crate::spawn::{self, Child};
use crate::{Emissary, Error, MAIN_CONTAINER, Retry, outputs};

/// How long the command's output pipes are still read after it exited, when a process it left
/// behind holds them open (Argo's emissary gives the copy 100 ms).
const DRAIN: Duration = Duration::from_millis(200);

/// The whole sequence; see [`Emissary::run`].
pub(crate) fn run(emissary: &Emissary, template: &Template, argv: &[String]) -> Result<i32, Error> {
    let (program, args) = argv.split_first().ok_or(Error::NoCommand)?;
    let options = &emissary.options;
    let own = DirWatch::new(emissary.ctr.path())
        .map_err(|e| Error::io(format!("watch {}", emissary.ctr.path().display()), e))?;
    let waiter = Waiter {
        emissary,
        own: &own,
    };
    for dependency in dependencies(template, &options.container) {
        tracing::info!(dependency, "waiting for dependency");
        let dep = CtrDir::new(&options.var_run_argo, dependency);
        // The dependency may not have started: create its directory so it can be watched.
        dep.create()?;
        let watch = DirWatch::new(dep.path())
            .map_err(|e| Error::io(format!("watch {}", dep.path().display()), e))?;
        match waiter.until(Some(&watch), None, || dep.exit_code())? {
            Waited::Done(0) => {}
            Waited::Done(code) => {
                return Err(Error::DependencyFailed {
                    name: dependency.to_owned(),
                    code,
                });
            }
            Waited::Signalled(n) => return Ok(128 + n),
            // Not given a bound, so never.
            Waited::TimedOut => {}
        }
    }
    if options.debug_pause_before {
        tracing::info!(file = %emissary.ctr.file(ctr::BEFORE).display(), "debug pause: waiting for the file before starting");
        let before = emissary.ctr.file(ctr::BEFORE);
        if let Waited::Signalled(n) = waiter.until(None, None, || before.exists().then_some(()))? {
            return Ok(128 + n);
        }
    }
    let retry = Retry::of(template)?;
    let capture = options.include_script_output || template.archive_logs();
    let mut code = 0;
    for attempt in 1..=retry.attempts {
        if attempt > 1 {
            tracing::info!(attempt, exit_code = code, pause = ?retry.pause, "retrying the command");
            if let Waited::Signalled(n) = waiter.until(None, Some(retry.pause), || None::<()>)? {
                code = 128 + n;
                break;
            }
        }
        let logs = capture
            .then(|| {
                Ok::<_, Error>(Logs {
                    stdout: emissary.ctr.open_log(ctr::STDOUT)?,
                    combined: emissary.ctr.open_log(ctr::COMBINED)?,
                })
            })
            .transpose()?;
        let child = spawn::spawn(program, args, capture)?;
        code = waiter.supervise(child, logs)?;
        tracing::info!(exit_code = code, "sub-process exited");
        if code == 0 {
            break;
        }
    }
    if options.debug_pause_after {
        tracing::info!(file = %emissary.ctr.file(ctr::AFTER).display(), "debug pause: waiting for the file before finishing");
        let after = emissary.ctr.file(ctr::AFTER);
        // A signal ends the pause; the outputs are still staged.
        waiter.until(None, None, || after.exists().then_some(()))?;
    }
    if options.container == MAIN_CONTAINER {
        outputs::stage(template, Path::new("/"), &options.var_run_argo)?;
    } else {
        tracing::info!("not saving outputs - not main container");
    }
    Ok(code)
}

/// The containers `container` depends on in the template's container set.
fn dependencies<'t>(template: &'t Template, container: &str) -> Vec<&'t str> {
    template
        .container_set
        .iter()
        .flat_map(|set| &set.containers)
        .filter(|node| node.container.name == container)
        .flat_map(|node| node.dependencies.iter().flatten())
        .map(String::as_str)
        .collect()
}

/// What ended a wait.
enum Waited<T> {
    /// The condition held.
    Done(T),
    /// Signal N arrived (by the signal file or as a signal) before it did.
    Signalled(i32),
    /// The bound passed.
    TimedOut,
}

/// The captured output files.
struct Logs {
    stdout: std::fs::File,
    combined: std::fs::File,
}

/// Which of the command's pipes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stream {
    Out,
    Err,
}

struct Pipe {
    stream: Stream,
    reader: std::fs::File,
}

struct Waiter<'a> {
    emissary: &'a Emissary,
    own: &'a DirWatch,
}

impl Waiter<'_> {
    fn signals(&self) -> BorrowedFd<'_> {
        self.emissary.signals.as_fd()
    }

    /// Waits until `check` gives a value, re-checking whenever `watch` sees a change, for at
    /// most `bound`. A stopping signal or the signal file ends the wait early; children that
    /// exit meanwhile (orphans, when PID 1) are reaped.
    fn until<T>(
        &self,
        watch: Option<&DirWatch>,
        bound: Option<Duration>,
        mut check: impl FnMut() -> Option<T>,
    ) -> Result<Waited<T>, Error> {
        let deadline = bound.map(|b| Instant::now() + b);
        loop {
            if let Some(n) = self.emissary.ctr.take_signal() {
                tracing::info!(signal = n, "received signal (file) while waiting");
                return Ok(Waited::Signalled(n));
            }
            if let Some(value) = check() {
                return Ok(Waited::Done(value));
            }
            let timeout = match deadline {
                Some(at) => match at.checked_duration_since(Instant::now()) {
                    Some(left) => Some(left),
                    None => return Ok(Waited::TimedOut),
                },
                None => None,
            };
            let signals = self.signals();
            let mut fds = vec![
                PollFd::new(&signals, PollFlags::IN),
                PollFd::new(self.own, PollFlags::IN),
            ];
            if let Some(w) = watch {
                fds.push(PollFd::new(w, PollFlags::IN));
            }
            wait_ready(&mut fds, timeout)?;
            drop(fds);
            for signal in self.emissary.signals.pending()? {
                if signal == Signal::SIGCHLD {
                    reap(None)?;
                } else if stops_waiting(signal) {
                    tracing::info!(%signal, "received signal while waiting");
                    return Ok(Waited::Signalled(signal as i32));
                }
            }
            for w in std::iter::once(self.own).chain(watch) {
                w.drain().map_err(|e| Error::io("read inotify events", e))?;
            }
        }
    }

    /// Runs the started command to its end: forwards signals and the signal file to its process
    /// group, tees its output when captured, reaps every child. Returns its exit code.
    fn supervise(&self, child: Child, mut logs: Option<Logs>) -> Result<i32, Error> {
        let pid = child.pid;
        let mut pipes: Vec<Pipe> = Vec::new();
        if let Some(out) = child.stdout {
            pipes.push(Pipe {
                stream: Stream::Out,
                reader: out,
            });
        }
        if let Some(err) = child.stderr {
            pipes.push(Pipe {
                stream: Stream::Err,
                reader: err,
            });
        }
        // A signal written before the command started is for the command.
        if let Some(n) = self.emissary.ctr.take_signal() {
            forward(pid, n);
        }
        let mut exited: Option<(i32, Instant)> = None;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            if let Some((code, at)) = exited
                && (pipes.is_empty() || at.elapsed() >= DRAIN)
            {
                return Ok(code);
            }
            let timeout = exited.map(|(_, at)| DRAIN.saturating_sub(at.elapsed()));
            let (signals_ready, own_ready, pipes_ready) = {
                let signals = self.signals();
                let mut fds = vec![
                    PollFd::new(&signals, PollFlags::IN),
                    PollFd::new(self.own, PollFlags::IN),
                ];
                for pipe in &pipes {
                    fds.push(PollFd::new(&pipe.reader, PollFlags::IN));
                }
                wait_ready(&mut fds, timeout)?;
                let ready = |fd: &PollFd<'_>| !fd.revents().is_empty();
                (
                    ready(&fds[0]),
                    ready(&fds[1]),
                    fds[2..].iter().map(ready).collect::<Vec<_>>(),
                )
            };
            if signals_ready {
                for signal in self.emissary.signals.pending()? {
                    if signal == Signal::SIGCHLD {
                        if let Some(code) = reap(Some(pid))? {
                            exited.get_or_insert((code, Instant::now()));
                        }
                    } else if exited.is_none() {
                        tracing::debug!(%signal, "forwarding signal");
                        forward(pid, signal as i32);
                    }
                }
            }
            if own_ready {
                self.own
                    .drain()
                    .map_err(|e| Error::io("read inotify events", e))?;
                if let Some(n) = self.emissary.ctr.take_signal() {
                    tracing::info!(signal = n, "received signal (file)");
                    forward(pid, n);
                }
            }
            let mut index = 0;
            pipes.retain_mut(|pipe| {
                let ready = pipes_ready.get(index).copied().unwrap_or(false);
                index += 1;
                if !ready {
                    return true;
                }
                match pipe.reader.read(&mut buf) {
                    Ok(0) => false,
                    Ok(n) => {
                        tee(pipe.stream, &buf[..n], logs.as_mut());
                        true
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => true,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the command's output");
                        false
                    }
                }
            });
        }
    }
}

/// Copies a chunk of the command's output to the emissary's own stdout or stderr (the
/// container's log) and to the capture files.
fn tee(stream: Stream, bytes: &[u8], logs: Option<&mut Logs>) {
    // The container's log may be gone (a closed stdout): the capture still matters.
    let _ = match stream {
        Stream::Out => io::stdout().write_all(bytes),
        Stream::Err => io::stderr().write_all(bytes),
    };
    if let Some(logs) = logs {
        let write = |file: &mut std::fs::File| {
            if let Err(e) = file.write_all(bytes) {
                tracing::warn!(error = %e, "cannot capture the command's output");
            }
        };
        if stream == Stream::Out {
            write(&mut logs.stdout);
        }
        write(&mut logs.combined);
    }
}

/// Sends signal number `n` to the process group of `pid` (the command's, made at spawn).
fn forward(pid: Pid, n: i32) {
    let Ok(signal) = Signal::try_from(n) else {
        tracing::warn!(signal = n, "not a signal number; ignored");
        return;
    };
    match killpg(pid, signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(e) => tracing::warn!(%signal, error = %e, "cannot signal the command"),
    }
}

/// Reaps every child that has exited; returns the exit code of `watched` if it was among them
/// (a signal N gives 128+N).
fn reap(watched: Option<Pid>) -> Result<Option<i32>, Error> {
    let mut found = None;
    loop {
        match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return Ok(found),
            Ok(WaitStatus::Exited(pid, code)) if Some(pid) == watched => found = Some(code),
            Ok(WaitStatus::Signaled(pid, signal, _)) if Some(pid) == watched => {
                found = Some(128 + signal as i32);
            }
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(Error::io("wait for child processes", e)),
        }
    }
}

/// `poll` until one of `fds` is ready or `timeout` passes; restarted when interrupted.
fn wait_ready(fds: &mut [PollFd<'_>], timeout: Option<Duration>) -> Result<(), Error> {
    let timeout = timeout.map(|t| Timespec {
        tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(t.subsec_nanos()),
    });
    loop {
        match poll(fds, timeout.as_ref()) {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::io("poll", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn dependencies_come_from_the_container_set() {
        let template: Template = serde_json::from_value(serde_json::json!({
            "name": "t",
            "containerSet": {"containers": [
                {"name": "a", "image": "x"},
                {"name": "b", "image": "x", "dependencies": ["a"]},
                {"name": "main", "image": "x", "dependencies": ["a", "b"]}
            ]}
        }))
        .unwrap();
        assert!(dependencies(&template, "a").is_empty());
        assert_eq!(dependencies(&template, "b"), ["a"]);
        assert_eq!(dependencies(&template, "main"), ["a", "b"]);
        assert!(dependencies(&template, "other").is_empty());
    }
}
