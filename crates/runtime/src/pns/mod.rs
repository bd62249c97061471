//! The PNS runtime: the pod shares one process namespace (`shareProcessNamespace: true`), so
//! `wait` sees the other containers' processes in `/proc`.
//!
//! - Discovery: a background thread finds each container's root process (parent 0 as seen in
//!   the namespace, not PID 1, not ours) and names it from `ARGO_CONTAINER_NAME` in its
//!   environment. On sight it opens and holds the process's root directory and a pidfd, so a
//!   container that exits at once stays readable and its exit is seen.
//! - Exit: the pidfd becomes readable when the process exits; no polling. The code of a process
//!   that is not our child cannot be read from `/proc`: it comes from the pod state directory
//!   (`ARGOEXEC_POD_STATE_DIR`) when one is configured, else it is unknown.
//! - Files: read through the held root, symlinks resolved inside the container's root.
//! - Kill: SIGTERM through the pidfd, up to the grace period, then SIGKILL. Only the container's
//!   root process is signalled, as Argo does. Its children do not die with it: the pod's PID
//!   namespace lives on (its PID 1 is the pause process), so they are re-parented to the pause
//!   process and keep running until the kubelet tears the pod down. A root process that forwards
//!   the signal to its children (a shell with a trap, tini, the emissary) ends them too.
//! - Logs: from the pod state directory; the Kubernetes API (`pods/log`) comes later as a second
//!   [`LogSource`].

mod discovery;
mod process;
mod resolve;

use std::io;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustix::process::Signal;

use crate::runtime::{
    ByteStream, ContainerRuntime, Error, ExitStatus, KillOutcome, LogStream, PathSource,
};
use crate::state_dir;
use discovery::{Discovery, Found};

/// How long to wait for `exitcode` after a container's process exited, by default.
pub const DEFAULT_EXIT_CODE_WAIT: Duration = Duration::from_secs(10);

/// How a [`Pns`] runtime is set up.
#[derive(Debug, Clone)]
pub struct PnsOptions {
    /// Where the namespace's processes are listed: `/proc`, or a fake tree in tests.
    pub proc_root: PathBuf,
    /// The container this process runs in (`ARGO_CONTAINER_NAME`): its processes are skipped.
    pub own_container: Option<String>,
    /// The pod state directory (`ARGOEXEC_POD_STATE_DIR`), source of exit codes and logs.
    pub state_dir: Option<PathBuf>,
    /// How long to wait for `exitcode` to appear once a container's process exited.
    pub exit_code_wait: Duration,
}

impl Default for PnsOptions {
    fn default() -> Self {
        Self {
            proc_root: PathBuf::from("/proc"),
            own_container: None,
            state_dir: None,
            exit_code_wait: DEFAULT_EXIT_CODE_WAIT,
        }
    }
}

impl PnsOptions {
    /// `/proc`, with the own container and the state directory from the environment
    /// (`ARGO_CONTAINER_NAME`, `ARGOEXEC_POD_STATE_DIR`; unset or empty means none).
    pub fn from_env() -> Self {
        let var = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
        Self {
            own_container: var(argoexec_config::env::ARGO_CONTAINER_NAME)
                .map(|name| name.to_string_lossy().into_owned()),
            state_dir: var(argoexec_config::env::ARGOEXEC_POD_STATE_DIR).map(PathBuf::from),
            ..Self::default()
        }
    }
}

/// Where logs come from. The seam for the Kubernetes API's `pods/log`, which comes later.
#[derive(Debug, Clone)]
enum LogSource {
    /// `<dir>/<container>/{stdout,combined}`.
    StateDir(PathBuf),
    /// Nothing configured.
    Unavailable,
}

/// The PNS runtime. See the [module docs](self).
#[derive(Debug)]
pub struct Pns {
    discovery: Discovery,
    state_dir: Option<PathBuf>,
    logs: LogSource,
    exit_code_wait: Duration,
}

impl Pns {
    /// The runtime of a pod with a shared process namespace: `/proc`, configured from the
    /// environment ([`PnsOptions::from_env`]). Starts discovery at once.
    ///
    /// Fails when this process is PID 1: then the namespace is not shared.
    pub fn new() -> Result<Self, Error> {
        Self::with_options(PnsOptions::from_env())
    }

    /// Like [`new`](Self::new), with the processes listed under `dir` instead of `/proc`.
    pub fn with_proc_root(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        Self::with_options(PnsOptions {
            proc_root: dir.into(),
            ..PnsOptions::from_env()
        })
    }

    /// A runtime set up exactly as `options` says. Starts discovery at once.
    ///
    /// Fails when this process is PID 1 of the real `/proc`: then the namespace is not shared.
    pub fn with_options(options: PnsOptions) -> Result<Self, Error> {
        if options.proc_root == Path::new("/proc") && std::process::id() == 1 {
            return Err(Error::Unsupported {
                runtime: "pns",
                what: "see other containers: process namespace sharing is not enabled on the pod",
            });
        }
        tracing::debug!(proc_root = %options.proc_root.display(), own_container = options.own_container.as_deref().unwrap_or("(none)"), "starting PNS discovery");
        let discovery = Discovery::start(
            options.proc_root,
            options.own_container,
            options.state_dir.clone(),
        )
        .map_err(|source| Error::io("start the PNS discovery thread", source))?;
        let logs = match &options.state_dir {
            Some(dir) => LogSource::StateDir(dir.clone()),
            None => LogSource::Unavailable,
        };
        Ok(Self {
            discovery,
            state_dir: options.state_dir,
            logs,
            exit_code_wait: options.exit_code_wait,
        })
    }

    /// The container, once discovery has seen it.
    async fn started(&self, container: &str) -> Result<Arc<Found>, Error> {
        let mut known = self.discovery.known();
        if let Some(found) = discovery::get(&known.borrow_and_update(), container) {
            return Ok(found);
        }
        let _waiting = self.discovery.waiting();
        let known = known
            .wait_for(|known| known.containers.contains_key(container))
            .await
            .map_err(|_| stopped())?;
        discovery::get(&known, container).ok_or_else(|| not_found(container))
    }

    /// The container once discovery has seen it, or, when the pod state directory says it has
    /// already exited (it lived less than a scan, e.g. `exit 3` at once), its exit code: a
    /// container that came and went unseen must not leave wait waiting forever.
    async fn seen(&self, container: &str) -> Result<Seen, Error> {
        let Some(dir) = &self.state_dir else {
            return self.started(container).await.map(Seen::Found);
        };
        tokio::select! {
            found = self.started(container) => found.map(Seen::Found),
            code = state_dir::exit_code(dir, container, FOREVER) => {
                if let Some(found) = discovery::get(&self.discovery.known().borrow(), container) {
                    return Ok(Seen::Found(found));
                }
                tracing::warn!(
                    container,
                    exit_code = code.map_or_else(|| "unknown".to_owned(), |c| c.to_string()),
                    "The container exited before it was seen: its files cannot be read"
                );
                Ok(Seen::Gone(code))
            }
        }
    }

    /// The container if it is known now or after a fresh scan, else `ContainerNotFound`.
    async fn lookup(&self, container: &str) -> Result<Arc<Found>, Error> {
        let mut known = self.discovery.known();
        let now = known.borrow_and_update().clone();
        if let Some(found) = discovery::get(&now, container) {
            return Ok(found);
        }
        // A scan may be under way that started before the container did: wait for the one after.
        let _waiting = self.discovery.waiting();
        let after = now.scans + 2;
        let known = known
            .wait_for(|known| known.scans >= after || known.containers.contains_key(container))
            .await
            .map_err(|_| stopped())?;
        discovery::get(&known, container).ok_or_else(|| not_found(container))
    }
}

/// What became of a container wait asked about.
enum Seen {
    /// Discovery found its root process (and holds its root and pidfd).
    Found(Arc<Found>),
    /// It exited, with this code, before discovery saw it.
    Gone(Option<i32>),
}

/// A bound long enough to mean "until it happens" for [`state_dir::exit_code`].
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

fn not_found(container: &str) -> Error {
    Error::ContainerNotFound {
        container: container.to_owned(),
    }
}

fn stopped() -> Error {
    Error::io(
        "wait for PNS discovery",
        io::Error::other("the discovery thread stopped"),
    )
}

impl ContainerRuntime for Pns {
    fn name(&self) -> &'static str {
        "pns"
    }

    async fn containers(&self) -> Result<Vec<String>, Error> {
        Ok(discovery::names(&self.discovery.known().borrow()))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn wait_started(&self, container: &str) -> Result<(), Error> {
        self.seen(container).await.map(|_| ())
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn wait_exited(&self, container: &str) -> Result<ExitStatus, Error> {
        let found = match self.seen(container).await? {
            Seen::Found(found) => found,
            Seen::Gone(code) => return Ok(ExitStatus { code }),
        };
        if let Some(pidfd) = &found.pidfd {
            process::exited(pidfd).await.map_err(|source| {
                Error::io(format!("wait for pid {} to exit", found.pid), source)
            })?;
        }
        tracing::debug!(container, pid = found.pid, "container process exited");
        let code = match &self.state_dir {
            Some(dir) => state_dir::exit_code(dir, container, self.exit_code_wait).await,
            None => None,
        };
        Ok(ExitStatus { code })
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn kill(&self, container: &str, grace: Duration) -> Result<KillOutcome, Error> {
        let found = self.lookup(container).await?;
        let pid = found.pid;
        let Some(pidfd) = &found.pidfd else {
            return Ok(KillOutcome::AlreadyExited);
        };
        let failed = |what: &str, source| Error::io(format!("{what} pid {pid}"), source);
        if process::has_exited(pidfd).map_err(|e| failed("poll", e))? {
            return Ok(KillOutcome::AlreadyExited);
        }
        if !process::signal(pidfd, Signal::TERM).map_err(|e| failed("send SIGTERM to", e))? {
            return Ok(KillOutcome::AlreadyExited);
        }
        tracing::info!(container, pid, ?grace, "sent SIGTERM");
        match tokio::time::timeout(grace, process::exited(pidfd)).await {
            Ok(done) => {
                done.map_err(|e| failed("wait for", e))?;
                return Ok(KillOutcome::Terminated);
            }
            Err(_) => {
                tracing::warn!(
                    container,
                    pid,
                    ?grace,
                    "still running after the grace period; sending SIGKILL"
                );
            }
        }
        if !process::signal(pidfd, Signal::KILL).map_err(|e| failed("send SIGKILL to", e))? {
            return Ok(KillOutcome::Terminated);
        }
        process::exited(pidfd)
            .await
            .map_err(|e| failed("wait for", e))?;
        Ok(KillOutcome::Killed)
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn open_path(&self, container: &str, path: &Path) -> Result<PathSource, Error> {
        let found = self.lookup(container).await?;
        // The held root, as a path this process can walk (and only this process).
        let root = PathBuf::from(format!("/proc/self/fd/{}", found.root.as_raw_fd()));
        let inside = path.to_owned();
        let resolved = tokio::task::spawn_blocking(move || {
            // `found` moves in so the root stays open while it is walked.
            let _held = &found;
            resolve::in_root(&root, &inside)
        })
        .await
        .map_err(|join| Error::io("resolve a container path", io::Error::other(join)))?;
        match resolved {
            Ok(local) => Ok(PathSource::Local(local)),
            Err(source)
                if matches!(
                    source.kind(),
                    io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
                ) =>
            {
                Err(Error::PathNotFound {
                    container: container.to_owned(),
                    path: path.to_owned(),
                })
            }
            Err(source) => Err(Error::io(
                format!("resolve {} in container {container:?}", path.display()),
                source,
            )),
        }
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn logs(&self, container: &str, stream: LogStream) -> Result<ByteStream, Error> {
        let dir = match &self.logs {
            LogSource::StateDir(dir) => dir,
            LogSource::Unavailable => {
                return Err(Error::Unsupported {
                    runtime: "pns",
                    what: "read logs without the Kubernetes API or ARGOEXEC_POD_STATE_DIR",
                });
            }
        };
        if !state_dir::logs_complete(dir, container, self.exit_code_wait).await {
            // A background process that inherited the container's output keeps the pipes open;
            // what was written so far is all there is to give.
            tracing::warn!(
                container,
                "logs may be incomplete: no exit code was written"
            );
        }
        state_dir::open_log(dir, container, stream).await
    }
}

#[cfg(test)]
mod tests {
    //! Discovery, naming, files and kill on a fake `/proc` tree whose pids are real child
    //! processes, so the pidfds are real too.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::process::{Child, Command};

    use super::*;

    struct Tree {
        dir: tempfile::TempDir,
    }

    impl Tree {
        fn new() -> Self {
            Self {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        /// A process entry: status with `ppid`, environ with `vars`, an empty root directory.
        fn process(&self, pid: u32, ppid: u32, vars: &[&str]) -> PathBuf {
            let dir = self.dir.path().join(pid.to_string());
            std::fs::create_dir_all(dir.join("root")).unwrap();
            std::fs::write(
                dir.join("status"),
                format!("Name:\tsleep\nPid:\t{pid}\nPPid:\t{ppid}\n"),
            )
            .unwrap();
            std::fs::write(dir.join("stat"), format!("{pid} (sleep) S {ppid}")).unwrap();
            self.environ(pid, vars);
            dir.join("root")
        }

        fn environ(&self, pid: u32, vars: &[&str]) {
            let mut environ = Vec::new();
            for var in vars {
                environ.extend_from_slice(var.as_bytes());
                environ.push(0);
            }
            let path = self.dir.path().join(pid.to_string()).join("environ");
            std::fs::write(path, environ).unwrap();
        }

        fn pns(&self, state_dir: Option<PathBuf>) -> Pns {
            Pns::with_options(PnsOptions {
                proc_root: self.dir.path().to_owned(),
                own_container: Some("wait".into()),
                state_dir,
                exit_code_wait: Duration::from_secs(5),
            })
            .unwrap()
        }
    }

    fn sleeper() -> Child {
        Command::new("sleep").arg("30").spawn().unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn discovery_names_container_roots_and_skips_the_rest() {
        let tree = Tree::new();
        let (mut main, mut late, mut own) = (sleeper(), sleeper(), sleeper());
        tree.process(1, 0, &["ARGO_CONTAINER_NAME=pause"]);
        let root = tree.process(main.id(), 0, &["PATH=/bin", "ARGO_CONTAINER_NAME=main"]);
        tree.process(late.id(), 0, &["PATH=/bin"]);
        tree.process(own.id(), 0, &["ARGO_CONTAINER_NAME=wait"]);
        tree.process(
            main.id() + 100_000,
            main.id(),
            &["ARGO_CONTAINER_NAME=child"],
        );
        std::fs::create_dir_all(tree.dir.path().join("self")).unwrap();
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/x"), "hello").unwrap();

        let pns = tree.pns(None);
        pns.wait_started("main").await.unwrap();
        let anonymous = format!("pid/{}", late.id());
        assert_eq!(
            pns.containers().await.unwrap(),
            ["main", anonymous.as_str()]
        );

        // `runc init` becomes the container's command by exec: the name appears later.
        tree.environ(late.id(), &["ARGO_CONTAINER_NAME=sidecar"]);
        pns.wait_started("sidecar").await.unwrap();
        assert_eq!(pns.containers().await.unwrap(), ["main", "sidecar"]);

        assert_eq!(
            pns.read_file("main", Path::new("/etc/x")).await.unwrap(),
            b"hello"
        );
        assert!(matches!(
            pns.read_file("main", Path::new("/etc/missing")).await,
            Err(Error::PathNotFound { .. })
        ));
        assert!(matches!(
            pns.kill("child", Duration::ZERO).await,
            Err(Error::ContainerNotFound { .. })
        ));
        assert!(matches!(
            pns.logs("main", LogStream::Stdout).await,
            Err(Error::Unsupported { .. })
        ));

        assert_eq!(
            pns.kill("main", Duration::from_secs(5)).await.unwrap(),
            KillOutcome::Terminated
        );
        assert_eq!(
            pns.wait_exited("main").await.unwrap(),
            ExitStatus { code: None }
        );
        assert_eq!(
            pns.kill("main", Duration::ZERO).await.unwrap(),
            KillOutcome::AlreadyExited
        );
        for child in [&mut main, &mut late, &mut own] {
            let _ = child.kill();
            child.wait().unwrap();
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exit_code_and_logs_come_from_the_state_dir() {
        let tree = Tree::new();
        let state = tempfile::tempdir().unwrap();
        let mut main = Command::new("sleep").arg("0.2").spawn().unwrap();
        tree.process(main.id(), 0, &["ARGO_CONTAINER_NAME=main"]);
        let ctr = state.path().join("main");
        std::fs::create_dir_all(&ctr).unwrap();
        std::fs::write(ctr.join("stdout"), "out\n").unwrap();
        std::fs::write(ctr.join("combined"), "out\nerr\n").unwrap();

        let pns = tree.pns(Some(state.path().to_owned()));
        pns.wait_started("main").await.unwrap();
        let writer = std::thread::spawn(move || {
            main.wait().unwrap();
            std::thread::sleep(Duration::from_millis(50));
            std::fs::write(ctr.join("exitcode"), "7").unwrap();
        });
        assert_eq!(pns.wait_exited("main").await.unwrap().code, Some(7));
        writer.join().unwrap();

        let logs = crate::testns::collect(pns.logs("main", LogStream::Combined).await.unwrap())
            .await
            .unwrap();
        assert_eq!(logs, b"out\nerr\n");
    }

    #[tokio::test]
    async fn a_missing_exit_code_is_unknown_after_the_bound() {
        let state = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(state.path().join("main")).unwrap();
        let start = std::time::Instant::now();
        let code = state_dir::exit_code(state.path(), "main", Duration::from_millis(100)).await;
        assert_eq!(code, None);
        assert!(start.elapsed() >= Duration::from_millis(100));
        // No directory to watch at all: the same, by polling.
        assert_eq!(
            state_dir::exit_code(state.path(), "other", Duration::from_millis(100)).await,
            None
        );
    }
}
