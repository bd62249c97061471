//! Finding the containers' root processes in `/proc`, in one background thread shared by every
//! caller.
//!
//! A container's root process is one whose parent is outside the pod's PID namespace: as seen from
//! inside, its `PPid` is 0 (PID 1, the pause process, also has parent 0 and is skipped). Its name is
//! `ARGO_CONTAINER_NAME` from its environment. As soon as such a process is seen, its root directory
//! and a pidfd are opened and held, so that a container which exits at once stays readable and its
//! exit is seen.
//!
//! New processes raise no event a process can wait on without the netlink proc connector (which
//! needs CAP_NET_ADMIN and a netlink protocol parser), and procfs supports no inotify, so the
//! thread rescans: every 10 ms while something waits for a container not yet seen or after a scan
//! found something new, then backing off to every 250 ms. A scan reads one small file per
//! process not yet classified, so a pod with a few containers costs next to nothing.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::process::{Pid, PidfdFlags};
use tokio::sync::watch;

/// The shortest pause between scans, while someone waits or something changed.
const FAST: Duration = Duration::from_millis(10);
/// The longest pause between scans, when nothing happens.
const SLOW: Duration = Duration::from_millis(250);

/// The file that tells a container of `argoexec run` that wait holds it (see [`Discovery::start`]).
const SEEN_FILE: &str = "seen";

/// The variable that names a container, in its root process's environment.
const NAME_VAR: &[u8] = b"ARGO_CONTAINER_NAME=";

/// A container's root process, with what was opened while it lived.
#[derive(Debug)]
pub(super) struct Found {
    /// The process ID, as numbered in the scanned proc root.
    pub(super) pid: i32,
    /// The process's root directory (`/proc/<pid>/root`), held open.
    pub(super) root: OwnedFd,
    /// A pidfd of the process; `None` when it had exited before one could be opened.
    pub(super) pidfd: Option<OwnedFd>,
}

/// What discovery knows, published after every scan.
#[derive(Debug, Default, Clone)]
pub(super) struct Known {
    /// Containers by name; processes without `ARGO_CONTAINER_NAME` are named `pid/<pid>`, as
    /// Argo names them.
    pub(super) containers: BTreeMap<String, Arc<Found>>,
    /// How many scans have completed.
    pub(super) scans: u64,
}

/// The handle callers hold; dropping the last one stops the thread.
#[derive(Debug)]
pub(super) struct Discovery {
    known: watch::Receiver<Known>,
    hurry: mpsc::Sender<()>,
    waiters: Arc<AtomicUsize>,
}

/// Counts one waiter while it lives, keeping scans fast.
pub(super) struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Discovery {
    /// Starts the scanning thread over `proc_root`. With `announce`, each named container found
    /// is told so by a `seen` file in `<announce>/<name>/` (the pod state directory of `argoexec
    /// run`, whose containers wait for it before starting their command, so none exits unseen).
    pub(super) fn start(
        proc_root: PathBuf,
        own_name: Option<String>,
        announce: Option<PathBuf>,
    ) -> io::Result<Self> {
        let (tx, known) = watch::channel(Known::default());
        let (hurry, hurried) = mpsc::channel();
        let waiters = Arc::new(AtomicUsize::new(0));
        let scanner = Scanner {
            proc_root,
            own_pid: i32::try_from(std::process::id()).unwrap_or(i32::MAX),
            own_name,
            announce,
            ignored: HashSet::new(),
            anonymous: HashSet::new(),
            named: HashSet::new(),
        };
        let thread_waiters = Arc::clone(&waiters);
        std::thread::Builder::new()
            .name("pns-discovery".into())
            .spawn(move || scanner.run(&tx, &hurried, &thread_waiters))?;
        Ok(Self {
            known,
            hurry,
            waiters,
        })
    }

    /// A receiver of what is known.
    pub(super) fn known(&self) -> watch::Receiver<Known> {
        self.known.clone()
    }

    /// Asks for a scan now and keeps scans fast while the guard lives.
    pub(super) fn waiting(&self) -> Waiting<'_> {
        self.waiters.fetch_add(1, Ordering::Relaxed);
        // The thread only stops when this handle is dropped, so the send cannot fail while
        // `self` lives.
        let _ = self.hurry.send(());
        Waiting(&self.waiters)
    }
}

/// What one look at a process found.
enum Look {
    /// Not a container's root process (or ours): never looked at again while it lives.
    Ignore,
    /// Gone while looking.
    Gone,
    /// A container's root process, named or not.
    Root { dir: OwnedFd, name: Option<String> },
}

struct Scanner {
    proc_root: PathBuf,
    own_pid: i32,
    own_name: Option<String>,
    /// The pod state directory to announce containers in, if any.
    announce: Option<PathBuf>,
    /// Live processes that are not container roots.
    ignored: HashSet<i32>,
    /// Live root processes without a name yet: `runc init` shows up as one before it execs the
    /// container's command, so these are looked at again until they have a name.
    anonymous: HashSet<i32>,
    /// Live root processes published under their name.
    named: HashSet<i32>,
}

impl Scanner {
    fn run(
        mut self,
        tx: &watch::Sender<Known>,
        hurried: &mpsc::Receiver<()>,
        waiters: &AtomicUsize,
    ) {
        let mut pause = FAST;
        loop {
            let found = match self.scan() {
                Ok(found) => found,
                Err(error) => {
                    tracing::warn!(proc_root = %self.proc_root.display(), %error, "cannot list processes");
                    Vec::new()
                }
            };
            let changed = !found.is_empty();
            // One update per scan: a caller sees every container one scan found, or none.
            tx.send_modify(|known| {
                for found in found {
                    found.apply(known);
                }
                known.scans += 1;
            });
            pause = if changed || waiters.load(Ordering::Relaxed) > 0 {
                FAST
            } else {
                (pause * 2).min(SLOW)
            };
            match hurried.recv_timeout(pause) {
                Ok(()) => while hurried.try_recv().is_ok() {},
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// One pass over the proc root: the root processes it found, or found named.
    fn scan(&mut self) -> io::Result<Vec<Publish>> {
        let mut live = HashSet::new();
        for entry in std::fs::read_dir(&self.proc_root)? {
            let Ok(entry) = entry else { continue };
            if let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i32>().ok())
            {
                live.insert(pid);
            }
        }
        // A process that is gone frees its pid; forget it so a new process with that pid is
        // looked at. (A pid reused within one pause between scans would be missed: pids are
        // handed out in increasing order, so that takes wrapping around the whole pid space.)
        self.ignored.retain(|pid| live.contains(pid));
        self.anonymous.retain(|pid| live.contains(pid));
        self.named.retain(|pid| live.contains(pid));

        let mut found = Vec::new();
        let mut pids: Vec<i32> = live.into_iter().collect();
        pids.sort_unstable();
        for pid in pids {
            if self.ignored.contains(&pid) || self.named.contains(&pid) {
                continue;
            }
            let known_anonymous = self.anonymous.contains(&pid);
            match self.look(pid, !known_anonymous) {
                Ok(Look::Ignore) => {
                    self.ignored.insert(pid);
                }
                Ok(Look::Gone) => {}
                Ok(Look::Root { dir, name }) => {
                    if known_anonymous && name.is_none() {
                        continue;
                    }
                    found.extend(self.secure(pid, &dir, name));
                }
                Err(error) => {
                    // Not a race with an exit (those are `Gone`): a permission problem that
                    // would repeat every scan, so warn once and leave the process alone.
                    tracing::warn!(pid, %error, "cannot inspect process; ignoring it");
                    self.ignored.insert(pid);
                }
            }
        }
        Ok(found)
    }

    /// Reads what decides whether `pid` is a container root, through one directory handle so that
    /// every read is of the same process (a stale handle fails instead of reading a newcomer).
    fn look(&self, pid: i32, check_parent: bool) -> io::Result<Look> {
        if pid == 1 || pid == self.own_pid {
            return Ok(Look::Ignore);
        }
        let dir = match rustix::fs::open(
            self.proc_root.join(pid.to_string()),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(dir) => dir,
            Err(errno) if gone(errno) => return Ok(Look::Gone),
            Err(errno) => return Err(errno.into()),
        };
        if check_parent {
            let status = match read_at(&dir, "status") {
                Ok(status) => status,
                Err(errno) if gone(errno) => return Ok(Look::Gone),
                Err(errno) => return Err(errno.into()),
            };
            if parent_pid(&status) != Some(0) {
                return Ok(Look::Ignore);
            }
        }
        let environ = match read_at(&dir, "environ") {
            Ok(environ) => environ,
            Err(errno) if gone(errno) => return Ok(Look::Gone),
            Err(errno) => return Err(errno.into()),
        };
        let name = container_name(&environ);
        if name.is_some() && name == self.own_name {
            return Ok(Look::Ignore);
        }
        Ok(Look::Root { dir, name })
    }

    /// Opens the root and a pidfd of `pid`, to be published.
    fn secure(&mut self, pid: i32, dir: &OwnedFd, name: Option<String>) -> Option<Publish> {
        let root = match rustix::fs::openat(
            dir,
            "root",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(root) => root,
            // A zombie has no root any more: nothing of it is left to read.
            Err(errno) if gone(errno) => return None,
            Err(errno) => {
                tracing::warn!(pid, error = %io::Error::from(errno), "cannot open the root of a container process; ignoring it");
                self.ignored.insert(pid);
                return None;
            }
        };
        let pidfd = open_pidfd(dir, pid);
        let found = Arc::new(Found { pid, root, pidfd });
        if let (Some(dir), Some(name)) = (&self.announce, &name) {
            // Only where the container's state directory exists: the runner made it.
            let seen = dir.join(name).join(SEEN_FILE);
            if let Err(error) = std::fs::File::create(&seen) {
                tracing::debug!(path = %seen.display(), %error, "cannot announce a container as seen");
            }
        }
        if name.is_some() {
            self.anonymous.remove(&pid);
            self.named.insert(pid);
        } else {
            self.anonymous.insert(pid);
        }
        Some(Publish { name, found })
    }
}

/// A root process to add to what is known.
struct Publish {
    /// `None` for a process without `ARGO_CONTAINER_NAME`.
    name: Option<String>,
    found: Arc<Found>,
}

impl Publish {
    fn apply(self, known: &mut Known) {
        let pid = self.found.pid;
        let anonymous = format!("pid/{pid}");
        let Some(name) = self.name else {
            tracing::debug!(
                pid,
                "found a container root process without ARGO_CONTAINER_NAME"
            );
            known.containers.insert(anonymous, self.found);
            return;
        };
        known.containers.remove(&anonymous);
        if let Some(first) = known.containers.get(&name) {
            // `kubectl exec` starts processes that look just like a container's root; the
            // first one seen is the container's own.
            tracing::debug!(pid, first = first.pid, container = %name, "ignoring a second root process of a container");
        } else {
            tracing::info!(pid, container = %name, exited = self.found.pidfd.is_none(), "secured the root of a container");
            known.containers.insert(name, self.found);
        }
    }
}

/// A pidfd of `pid`, or `None` when it has exited. The pidfd is only trusted when the process
/// directory, opened before it, still answers afterwards: then `pid` still named the same process
/// when the pidfd was opened.
fn open_pidfd(dir: &OwnedFd, pid: i32) -> Option<OwnedFd> {
    let raw = Pid::from_raw(pid)?;
    let pidfd = match rustix::process::pidfd_open(raw, PidfdFlags::empty()) {
        Ok(pidfd) => pidfd,
        Err(Errno::SRCH) => return None,
        Err(errno) => {
            tracing::warn!(pid, error = %io::Error::from(errno), "pidfd_open failed; the container's exit will not be seen");
            return None;
        }
    };
    match read_at(dir, "stat") {
        Ok(_) => Some(pidfd),
        Err(_) => None,
    }
}

/// Whether an error means the process went away while we looked.
fn gone(errno: Errno) -> bool {
    errno == Errno::NOENT || errno == Errno::SRCH
}

fn read_at(dir: &OwnedFd, name: &str) -> Result<Vec<u8>, Errno> {
    let fd = rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut std::fs::File::from(fd), &mut bytes)
        .map_err(|error| Errno::from_io_error(&error).unwrap_or(Errno::IO))?;
    Ok(bytes)
}

/// `PPid` of a `/proc/<pid>/status` file.
fn parent_pid(status: &[u8]) -> Option<i32> {
    status
        .split(|&b| b == b'\n')
        .find_map(|line| line.strip_prefix(b"PPid:"))
        .and_then(|value| std::str::from_utf8(value).ok())
        .and_then(|value| value.trim().parse().ok())
}

/// `ARGO_CONTAINER_NAME` of a NUL-separated `/proc/<pid>/environ`; `None` when unset or empty.
fn container_name(environ: &[u8]) -> Option<String> {
    environ
        .split(|&b| b == 0)
        .find_map(|var| var.strip_prefix(NAME_VAR))
        .filter(|name| !name.is_empty())
        .map(|name| String::from_utf8_lossy(name).into_owned())
}

/// Looks up a container in what discovery published.
pub(super) fn get(known: &Known, name: &str) -> Option<Arc<Found>> {
    known.containers.get(name).cloned()
}

/// Every name seen so far.
pub(super) fn names(known: &Known) -> Vec<String> {
    known.containers.keys().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parent_pid_reads_the_ppid_line() {
        let status =
            b"Name:\tsleep\nState:\tS (sleeping)\nTgid:\t7\nPid:\t7\nPPid:\t0\nTracerPid:\t0\n";
        assert_eq!(parent_pid(status), Some(0));
        assert_eq!(parent_pid(b"Name:\tx\nPPid:\t12\n"), Some(12));
        assert_eq!(parent_pid(b"Name:\tx\n"), None);
    }

    #[test]
    fn container_name_is_read_from_a_nul_separated_environment() {
        assert_eq!(
            container_name(b"PATH=/bin\0ARGO_CONTAINER_NAME=main\0HOME=/\0"),
            Some("main".into())
        );
        assert_eq!(container_name(b"ARGO_CONTAINER_NAME=\0"), None);
        assert_eq!(container_name(b"XARGO_CONTAINER_NAME=main\0"), None);
        assert_eq!(container_name(b""), None);
    }
}
