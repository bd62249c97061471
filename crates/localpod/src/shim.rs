//! The per-container shim and the exec trampoline.
//!
//! The shim (`argoexec __shim SPEC`) runs outside the pod's PID namespace, like containerd's shim:
//! it enters the namespace for its children (`setns` moves only the children), takes a mount and a
//! UTS namespace of its own, builds the container's root (a tmpfs whose top-level entries are bind
//! mounts of this machine's, since images are not pulled) with a private `/tmp` and `/dev`, binds
//! the pod's volumes at their mount paths, then starts the trampoline (`argoexec __exec -- CMD`),
//! the container's first process: a member of the pod's PID namespace whose parent is outside it
//! (parent pid 0 as seen inside, as PNS expects), which mounts the pod's `/proc` and execs the
//! command. The shim keeps the container's stdout and stderr pipes and writes the pod state files.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::os::unix::process::{CommandExt as _, ExitStatusExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::fcntl::{OFlag, openat, renameat};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Where this binary is bound inside every container.
pub(crate) const EXE_IN_CONTAINER: &str = "/.argoexec/argoexec";
/// Where another executor binary (`run --executor-binary`) is bound in init and wait, which run it
/// instead of this one; the trampoline stays [`EXE_IN_CONTAINER`].
pub(crate) const EXECUTOR_IN_CONTAINER: &str = "/.argoexec/executor/argoexec";
/// The directory of [`EXECUTOR_IN_CONTAINER`], first in the `PATH` of init and wait.
pub(crate) const EXECUTOR_DIR_IN_CONTAINER: &str = "/.argoexec/executor";
/// Where a container that must not start before wait holds it sees its own state directory
/// (read-only): the PNS runtime of wait creates [`SEEN_FILE`] there once it holds the container's
/// root and pidfd.
pub(crate) const STATE_IN_CONTAINER: &str = "/.argoexec/state";
/// Created by wait's PNS runtime in `<pod state dir>/<container>/` (argoexec-runtime's
/// `pns::discovery::SEEN_FILE`).
const SEEN_FILE: &str = "seen";
/// How long a container waits to be held by wait before it starts anyway, with a warning.
const AWAIT_SEEN_LIMIT: Duration = Duration::from_secs(10);
/// The state files of a container, in its directory under the pod state directory.
pub(crate) const STDOUT_FILE: &str = "stdout";
/// stdout and stderr interleaved as read.
pub(crate) const COMBINED_FILE: &str = "combined";
/// The exit code, written last.
pub(crate) const EXITCODE_FILE: &str = "exitcode";
/// The exit code of a container that could not be started (kubelet's StartError).
pub(crate) const START_ERROR_EXIT: i32 = 128;

/// Everything the shim needs to run one container, written by the runner as JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimSpec {
    /// The container's name.
    pub name: String,
    /// The pod's PID namespace (`/proc/<pause pid>/ns/pid`).
    pub pid_ns: PathBuf,
    /// Give the container a PID namespace of its own, its command PID 1 there, as kubelet does
    /// for a pod that does not set `shareProcessNamespace`; otherwise it joins [`Self::pid_ns`].
    #[serde(default)]
    pub own_pid_ns: bool,
    /// The pod's host name.
    pub hostname: String,
    /// An empty directory on this machine where the container's root is built.
    pub rootfs: PathBuf,
    /// This binary on this machine, bound at [`EXE_IN_CONTAINER`].
    pub exe: PathBuf,
    /// Another executor binary on this machine, bound at [`EXECUTOR_IN_CONTAINER`] (init and
    /// wait under `run --executor-binary`).
    #[serde(default)]
    pub executor: Option<PathBuf>,
    /// The command and its arguments, resolved.
    pub argv: Vec<String>,
    /// The environment, resolved, in order.
    pub env: Vec<(String, String)>,
    /// The working directory, if the container sets one.
    pub working_dir: Option<String>,
    /// Bind mounts, parents before children.
    pub mounts: Vec<BindMount>,
    /// The container's directory under the pod state directory.
    pub state_dir: PathBuf,
    /// Start the command only once wait's PNS runtime holds the container (see
    /// [`STATE_IN_CONTAINER`]), so that a quick command cannot exit before its files are secured.
    #[serde(default)]
    pub await_seen: bool,
    /// The file bound at `/dev/termination-log`.
    pub termination_log: PathBuf,
    /// The directory bound at `/tmp`.
    pub tmp: PathBuf,
    /// Echo the container's output to the shim's stderr, each line prefixed with `[name]`.
    pub echo: bool,
}

/// A path of this machine bound into the container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BindMount {
    /// The path on this machine (a directory or a file).
    pub source: PathBuf,
    /// The absolute path in the container.
    pub target: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// Runs the shim: builds the container and runs it to its end. Prints `pid <host pid>` on stdout
/// once the container's process exists, writes `exitcode` last, when both pipes reached their end,
/// prints `exited <code>`, and returns the exit code (a signal N gives 128+N) once the runner
/// closes its stdin.
pub fn shim_main(spec_path: &Path) -> Result<i32, Error> {
    let text = std::fs::read(spec_path).map_err(Error::io("read container spec", spec_path))?;
    let spec: ShimSpec = serde_json::from_slice(&text).map_err(|source| Error::Spec {
        path: spec_path.to_owned(),
        source,
    })?;
    let state = StateFiles::create(&spec.state_dir)?;
    let code = match start(&spec) {
        Ok(child) => run_to_end(&spec, child, state)?,
        Err(err) => {
            // The container never ran: say why where its output would have been, and record
            // kubelet's StartError code so whoever waits on the exit code is not left waiting.
            let line = format!(
                "argoexec: container {} failed to start: {}\n",
                spec.name,
                chain(&err)
            );
            let _ = state
                .combined
                .lock()
                .map(|mut f| f.write_all(line.as_bytes()));
            let _ = std::io::stderr().write_all(format!("[{}] {}", spec.name, line).as_bytes());
            state.finish(START_ERROR_EXIT)?;
            START_ERROR_EXIT
        }
    };
    hold_until_teardown(code);
    Ok(code)
}

/// Says `exited <code>` to the runner, then stays until the runner closes our stdin at pod
/// teardown. The shim is the last process in the container's mount namespace: while it lives, the
/// container's filesystem (its volumes and private `/tmp` included) stays whole for `wait` to read
/// through the root it holds, as a container's filesystem outlives its process in a real pod.
fn hold_until_teardown(code: i32) {
    let mut out = std::io::stdout();
    // The runner may be gone (it closed the pipe): then there is nobody to hold for.
    if writeln!(out, "exited {code}")
        .and_then(|()| out.flush())
        .is_err()
    {
        return;
    }
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
}

/// The open state files of one container. The directory is held open: after the pivot its path
/// may not resolve in the shim's new root.
struct StateFiles {
    dir: File,
    dir_path: PathBuf,
    stdout: Mutex<File>,
    combined: Mutex<File>,
}

impl StateFiles {
    fn create(dir: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(Error::io("create state directory", dir))?;
        let open = |name: &str| {
            let path = dir.join(name);
            File::create(&path).map_err(Error::io("create state file", path))
        };
        Ok(Self {
            dir: File::open(dir).map_err(Error::io("open state directory", dir))?,
            dir_path: dir.to_owned(),
            stdout: Mutex::new(open(STDOUT_FILE)?),
            combined: Mutex::new(open(COMBINED_FILE)?),
        })
    }

    /// Writes `exitcode` whole (a staging file renamed into place), after everything else.
    fn finish(&self, code: i32) -> Result<(), Error> {
        let path = self.dir_path.join(EXITCODE_FILE);
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_CLOEXEC;
        let fd = openat(
            &self.dir,
            ".exitcode",
            flags,
            Mode::from_bits_truncate(0o644),
        )
        .map_err(Error::sys(format!("write {}", path.display())))?;
        File::from(fd)
            .write_all(code.to_string().as_bytes())
            .map_err(Error::io("write", &path))?;
        renameat(&self.dir, ".exitcode", &self.dir, EXITCODE_FILE)
            .map_err(Error::sys(format!("write {}", path.display())))
    }
}

/// An error and its cause, on one line (this crate's errors have at most one cause, an I/O or
/// system-call error that has none).
fn chain(err: &Error) -> String {
    match std::error::Error::source(err) {
        Some(cause) => format!("{err}: {cause}"),
        None => err.to_string(),
    }
}

/// Enters the namespaces, builds the root and starts the trampoline.
fn start(spec: &ShimSpec) -> Result<std::process::Child, Error> {
    let own_ns = File::open("/proc/self/ns/pid").map_err(Error::io("open", "/proc/self/ns/pid"))?;
    if spec.own_pid_ns {
        unshare(CloneFlags::CLONE_NEWPID).map_err(Error::sys("unshare a PID namespace"))?;
    } else {
        let pid_ns =
            File::open(&spec.pid_ns).map_err(Error::io("open PID namespace", &spec.pid_ns))?;
        setns(&pid_ns, CloneFlags::CLONE_NEWPID).map_err(Error::sys(format!(
            "enter PID namespace {}",
            spec.pid_ns.display()
        )))?;
    }
    unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS)
        .map_err(Error::sys("unshare mount and UTS namespaces"))?;
    nix::unistd::sethostname(&spec.hostname).map_err(Error::sys("set host name"))?;
    // Nothing mounted from here on may leak back to this machine's namespace.
    mount_flags(
        None::<&Path>,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
    )?;
    build_root(spec)?;
    // The old root stays reachable at OLD_ROOT until the volumes are bound, so that sources are
    // taken from this machine and mount paths resolve inside the new root (symlinks such as
    // /var/run included); then it is detached.
    pivot(&spec.rootfs)?;
    for m in &spec.mounts {
        bind_volume(m)?;
    }
    umount2(OLD_ROOT, MntFlags::MNT_DETACH).map_err(Error::sys("detach the old root"))?;
    let _ = std::fs::remove_dir(OLD_ROOT);
    // The root's /var (or wherever the work dir lives) shows a copy of the root itself.
    let _ = umount2(&spec.rootfs, MntFlags::MNT_DETACH);
    let cwd = spec.working_dir.as_deref().unwrap_or("/");
    std::fs::create_dir_all(cwd).map_err(Error::io("create working directory", cwd))?;
    let mut command = Command::new(EXE_IN_CONTAINER);
    command.arg("__exec");
    if spec.await_seen {
        command
            .arg("--await-seen")
            .arg(Path::new(STATE_IN_CONTAINER).join(SEEN_FILE));
    }
    command
        .arg("--")
        .args(&spec.argv)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().map_err(|source| Error::Process {
        what: format!("start {}", spec.argv.join(" ")),
        source,
    })?;
    // Threads cannot be created while children would go to another PID namespace (the kernel
    // refuses CLONE_THREAD then), and the pipes are copied by threads: back to our own.
    setns(&own_ns, CloneFlags::CLONE_NEWPID)
        .map_err(Error::sys("return to the shim's PID namespace"))?;
    Ok(child)
}

/// A tmpfs root whose top-level entries are bind mounts of this machine's, except `/tmp`, `/run`,
/// `/dev` and `/proc`, which are the container's own, and this binary at [`EXE_IN_CONTAINER`].
fn build_root(spec: &ShimSpec) -> Result<(), Error> {
    let root = &spec.rootfs;
    mount_flags(Some("tmpfs"), root, Some("tmpfs"), MsFlags::MS_NOSUID)?;
    let entries = std::fs::read_dir("/").map_err(Error::io("list", "/"))?;
    for entry in entries {
        let entry = entry.map_err(Error::io("list", "/"))?;
        let name = entry.file_name();
        if ["tmp", "run", "dev", "proc"].iter().any(|n| name == *n) {
            continue;
        }
        let host = Path::new("/").join(&name);
        let inside = root.join(&name);
        let kind = entry.file_type().map_err(Error::io("stat", &host))?;
        if kind.is_symlink() {
            let link = std::fs::read_link(&host).map_err(Error::io("read link", &host))?;
            std::os::unix::fs::symlink(&link, &inside)
                .map_err(Error::io("create link", &inside))?;
        } else {
            make_mount_point(&inside, kind.is_dir())?;
            mount_flags(
                Some(&host),
                &inside,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
            )?;
        }
    }
    // /proc: the trampoline mounts the pod's own over the machine's (the shim needs it until then).
    make_mount_point(&root.join("proc"), true)?;
    mount_flags(
        Some("/proc"),
        &root.join("proc"),
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
    )?;
    // Like an image's, /run is the container's own: this machine's sockets and state stay out,
    // and mount points such as /var/run/argo are not made on this machine.
    make_mount_point(&root.join("run"), true)?;
    mount_flags(
        Some("tmpfs"),
        &root.join("run"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
    )?;
    make_mount_point(&root.join("tmp"), true)?;
    mount_flags(Some(&spec.tmp), &root.join("tmp"), None, MsFlags::MS_BIND)?;
    build_dev(spec, &root.join("dev"))?;
    let exe = root.join(EXE_IN_CONTAINER.trim_start_matches('/'));
    make_mount_point(&exe, false)?;
    mount_flags(Some(&spec.exe), &exe, None, MsFlags::MS_BIND)?;
    remount_read_only(&exe)?;
    if let Some(executor) = &spec.executor {
        let target = root.join(EXECUTOR_IN_CONTAINER.trim_start_matches('/'));
        make_mount_point(&target, false)?;
        mount_flags(Some(executor), &target, None, MsFlags::MS_BIND)?;
        remount_read_only(&target)?;
    }
    Ok(())
}

/// A private /dev as a container runtime makes it: the usual device nodes bound from this
/// machine, its own shm, and the container's termination log.
fn build_dev(spec: &ShimSpec, dev: &Path) -> Result<(), Error> {
    make_mount_point(dev, true)?;
    mount_flags(Some("tmpfs"), dev, Some("tmpfs"), MsFlags::MS_NOSUID)?;
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let host = Path::new("/dev").join(node);
        if host.exists() {
            make_mount_point(&dev.join(node), false)?;
            mount_flags(Some(&host), &dev.join(node), None, MsFlags::MS_BIND)?;
        }
    }
    for (name, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
    ] {
        let link = dev.join(name);
        std::os::unix::fs::symlink(target, &link).map_err(Error::io("create link", link))?;
    }
    make_mount_point(&dev.join("pts"), true)?;
    mount_flags(Some("/dev/pts"), &dev.join("pts"), None, MsFlags::MS_BIND)?;
    make_mount_point(&dev.join("shm"), true)?;
    mount_flags(
        Some("shm"),
        &dev.join("shm"),
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
    )?;
    let log = dev.join("termination-log");
    make_mount_point(&log, false)?;
    mount_flags(Some(&spec.termination_log), &log, None, MsFlags::MS_BIND)
}

/// Where the old root is while the volumes are bound.
const OLD_ROOT: &str = "/.oldroot";

/// Makes `root` the root of this mount namespace, the old one at [`OLD_ROOT`].
fn pivot(root: &Path) -> Result<(), Error> {
    let old = root.join(OLD_ROOT.trim_start_matches('/'));
    make_mount_point(&old, true)?;
    nix::unistd::pivot_root(root, &old)
        .map_err(Error::sys(format!("pivot_root to {}", root.display())))?;
    nix::unistd::chdir("/").map_err(Error::sys("enter /"))
}

/// Binds one volume at its mount path, inside the new root.
fn bind_volume(m: &BindMount) -> Result<(), Error> {
    let source = Path::new(OLD_ROOT).join(m.source.strip_prefix("/").unwrap_or(&m.source));
    let target = Path::new(&m.target);
    if !source.exists() {
        // A subPath the volume does not have yet: kubelet creates it as a directory when the
        // container starts (not before, or an init container would find it there).
        std::fs::create_dir_all(&source).map_err(Error::io("create subPath", &m.source))?;
    }
    let is_dir = std::fs::metadata(&source)
        .map_err(Error::io("stat volume source", &m.source))?
        .is_dir();
    make_mount_point(target, is_dir)?;
    mount(
        Some(&source),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(Error::sys(format!(
        "bind {} at {}",
        m.source.display(),
        m.target
    )))?;
    if m.read_only {
        remount_read_only(target)?;
    }
    Ok(())
}

fn remount_read_only(target: &Path) -> Result<(), Error> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .map_err(Error::sys(format!("make {} read-only", target.display())))
}

/// Creates what a mount needs to land on: a directory, or an empty file for a file.
fn make_mount_point(path: &Path, dir: bool) -> Result<(), Error> {
    if dir {
        return std::fs::create_dir_all(path).map_err(Error::io("create mount point", path));
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(Error::io("create mount point", parent))?;
    }
    if !path.exists() {
        File::create(path).map_err(Error::io("create mount point", path))?;
    }
    Ok(())
}

fn mount_flags(
    source: Option<impl AsRef<Path>>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
) -> Result<(), Error> {
    let source = source.as_ref().map(AsRef::as_ref);
    mount(source, target, fstype, flags, None::<&str>).map_err(Error::sys(format!(
        "mount {} at {}",
        source.map_or("-".into(), |s| s.display().to_string()),
        target.display()
    )))
}

/// Copies both pipes to the state files (and the echo), waits for the process, then writes the
/// exit code.
fn run_to_end(
    spec: &ShimSpec,
    mut child: std::process::Child,
    state: StateFiles,
) -> Result<i32, Error> {
    println!("pid {}", child.id());
    let _ = std::io::stdout().flush();
    let state = Arc::new(state);
    let prefix = spec.echo.then(|| format!("[{}] ", spec.name));
    let mut copiers = Vec::new();
    if let Some(out) = child.stdout.take() {
        let (state, prefix) = (Arc::clone(&state), prefix.clone());
        copiers.push(std::thread::spawn(move || {
            copy_stream(out, &state, true, prefix.as_deref())
        }));
    }
    if let Some(err) = child.stderr.take() {
        let (state, prefix) = (Arc::clone(&state), prefix.clone());
        copiers.push(std::thread::spawn(move || {
            copy_stream(err, &state, false, prefix.as_deref())
        }));
    }
    let status = child.wait().map_err(|source| Error::Process {
        what: format!("wait for container {}", spec.name),
        source,
    })?;
    for copier in copiers {
        let _ = copier.join();
    }
    let code = status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(START_ERROR_EXIT);
    state.finish(code)?;
    Ok(code)
}

/// Copies one pipe, line by line, to the state files and the prefixed echo on stderr.
fn copy_stream(pipe: impl Read, state: &StateFiles, is_stdout: bool, prefix: Option<&str>) {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if let (true, Ok(mut f)) = (is_stdout, state.stdout.lock()) {
            let _ = f.write_all(&line);
        }
        if let Ok(mut f) = state.combined.lock() {
            let _ = f.write_all(&line);
        }
        if let Some(prefix) = prefix {
            let mut echo = Vec::with_capacity(prefix.len() + line.len() + 1);
            echo.extend_from_slice(prefix.as_bytes());
            echo.extend_from_slice(&line);
            if !line.ends_with(b"\n") {
                echo.push(b'\n');
            }
            // One write per line, so lines of different containers do not mix.
            let _ = std::io::stderr().write_all(&echo);
        }
    }
}

/// The trampoline, the container's first process inside the pod's PID namespace: mounts the
/// pod's `/proc`, then becomes the command (same pid). Returns only on failure, with the exit code
/// (127 when the command is not found, 126 otherwise, as shells do).
///
/// With `await_seen`, the command starts only once that file exists (watched with inotify), or
/// after [`AWAIT_SEEN_LIMIT`].
pub fn exec_main(await_seen: Option<&Path>, argv: &[String]) -> i32 {
    let Some((program, args)) = argv.split_first() else {
        eprintln!("argoexec __exec: no command");
        return 126;
    };
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    if let Err(err) = mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>) {
        eprintln!("argoexec: mount the pod's /proc: {err}");
        return 126;
    }
    if let Some(seen) = await_seen {
        wait_for_file(seen, AWAIT_SEEN_LIMIT);
    }
    let err = Command::new(program).args(args).exec();
    eprintln!("argoexec: exec {program}: {err}");
    if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    }
}

/// Returns once `path` exists or `limit` has passed (then with a warning on stderr), woken by
/// inotify on its directory.
fn wait_for_file(path: &Path, limit: Duration) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    use std::os::fd::AsFd as _;

    let watched = path.parent().and_then(|dir| {
        let inotify = Inotify::init(InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK).ok()?;
        inotify
            .add_watch(dir, AddWatchFlags::IN_CREATE | AddWatchFlags::IN_MOVED_TO)
            .ok()?;
        Some(inotify)
    });
    let Some(inotify) = watched else {
        eprintln!(
            "argoexec: cannot watch {}: starting without waiting to be seen",
            path.display()
        );
        return;
    };
    let deadline = std::time::Instant::now() + limit;
    while !path.exists() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            eprintln!(
                "argoexec: wait did not take hold of this container within {limit:?}; starting anyway"
            );
            return;
        }
        let mut fds = [PollFd::new(inotify.as_fd(), PollFlags::POLLIN)];
        let millis = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
        let _ = poll(&mut fds, PollTimeout::from(millis));
        let _ = inotify.read_events();
    }
}

/// `argoexec __nsexec --pid PID [--cwd DIR] -- CMD`: runs a command inside a running container,
/// as a runtime's exec does: enters the PID, mount and UTS namespaces of the container's process
/// `pid` (a host PID), starts the command there (its environment is this process's) and returns
/// its exit code (128+N for signal N; 126 when it cannot start, 127 when it is not found).
///
/// Entering a mount namespace needs a single-threaded process: call this before any runtime or
/// thread starts.
pub fn nsexec_main(pid: u32, cwd: Option<&str>, argv: &[String]) -> Result<i32, Error> {
    let Some((program, args)) = argv.split_first() else {
        return Err(Error::Container {
            container: format!("pid {pid}"),
            message: "exec with no command".into(),
        });
    };
    for (kind, flag) in [
        ("pid", CloneFlags::CLONE_NEWPID),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ] {
        let path = PathBuf::from(format!("/proc/{pid}/ns/{kind}"));
        let ns = File::open(&path).map_err(Error::io("open namespace", &path))?;
        setns(&ns, flag).map_err(Error::sys(format!("enter {}", path.display())))?;
    }
    // Entering the mount namespace moved the root and the working directory to its root.
    let cwd = cwd.unwrap_or("/");
    let status = Command::new(program).args(args).current_dir(cwd).status();
    Ok(match status {
        Ok(status) => status
            .code()
            .or_else(|| status.signal().map(|s| 128 + s))
            .unwrap_or(START_ERROR_EXIT),
        Err(err) => {
            eprintln!("argoexec: exec {program}: {err}");
            if err.kind() == std::io::ErrorKind::NotFound {
                127
            } else {
                126
            }
        }
    })
}
