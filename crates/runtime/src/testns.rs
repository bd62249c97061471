//! A pod-like PID namespace of real processes, for tests that need what PNS sees in a pod: a
//! pause process as PID 1 and containers whose parent is outside the namespace (so `PPid` is 0
//! inside it), as container runtimes start them. Needs root and util-linux's `unshare` and
//! `nsenter`.

use std::ffi::OsStr;
use std::io;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A PID namespace with its own `/proc` (and mount namespace), whose PID 1 is `sleep infinity`.
/// Dropping it kills PID 1, and with it every process in the namespace.
#[derive(Debug)]
pub struct PodNamespace {
    unshare: Child,
    init: u32,
}

impl PodNamespace {
    /// Starts the namespace and waits until its `/proc` is mounted.
    pub fn start() -> io::Result<Self> {
        let unshare = Command::new("unshare")
            .args(["--pid", "--mount", "--fork", "--mount-proc", "--kill-child"])
            .args(["sleep", "infinity"])
            .stdin(Stdio::null())
            .spawn()?;
        let mut ns = Self { unshare, init: 0 };
        let deadline = Instant::now() + Duration::from_secs(10);
        // unshare forks PID 1, which mounts /proc and then execs sleep: once it is `sleep`, the
        // namespace is ready.
        loop {
            if let Some(child) = child_of(ns.unshare.id()) {
                let comm =
                    std::fs::read_to_string(format!("/proc/{child}/comm")).unwrap_or_default();
                if comm.trim() == "sleep" {
                    ns.init = child;
                    return Ok(ns);
                }
            }
            if Instant::now() > deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the namespace's PID 1 did not start",
                ));
            }
            if let Some(status) = ns.unshare.try_wait()? {
                return Err(io::Error::other(format!("unshare exited: {status}")));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// The host's pid of the namespace's PID 1.
    pub fn init_pid(&self) -> u32 {
        self.init
    }

    /// Runs container `name`, a shell that sleeps `delay` seconds and then execs `date`: the
    /// container's root process prints the time as its last act and exits. Returns that time in
    /// nanoseconds since the epoch, to compare with [`now_ns`] where the exit was seen.
    pub fn run_timed_exit(&self, name: &str, delay: &str) -> io::Result<u128> {
        let out = self
            .command("sh")
            .args(["-c", &format!("sleep {delay}; exec date +%s%N")])
            .env("ARGO_CONTAINER_NAME", name)
            .output()?;
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .map_err(|_| io::Error::other(format!("date printed {:?}", out.stdout)))
    }

    /// A command that runs `program` in the namespace (PID and mount namespaces). `nsenter` forks
    /// after joining, so the new process's parent is outside: a container's root process.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg("--target")
            .arg(self.init.to_string())
            .args(["--pid", "--mount", "--"])
            .arg(program);
        command
    }
}

impl Drop for PodNamespace {
    fn drop(&mut self) {
        // --kill-child: PID 1 gets SIGKILL when unshare dies, and the whole namespace with it.
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// The time in nanoseconds since the epoch, as `date +%s%N` prints it.
pub fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos())
}

/// The whole of a byte stream (a log) in memory.
pub async fn collect(stream: crate::runtime::ByteStream) -> io::Result<Vec<u8>> {
    use futures::TryStreamExt as _;
    stream.map_ok(|chunk| chunk.to_vec()).try_concat().await
}

/// A child of `parent`, from the host's `/proc`.
fn child_of(parent: u32) -> Option<u32> {
    let wanted = format!("PPid:\t{parent}\n");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
            let status = std::fs::read_to_string(entry.path().join("status")).ok()?;
            status.contains(&wanted).then_some(pid)
        })
}

/// The reports of a process that prints lines `PROBE <key> <value>` on standard output (anything
/// else it prints is passed through; a report may follow other text on its line, as after
/// libtest's `test name ... `), read on a thread as they come.
#[derive(Debug)]
pub struct Reports {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Reports {
    /// The prefix of a report line.
    pub const PREFIX: &'static str = "PROBE ";

    /// Spawns `command` with its standard output piped.
    pub fn spawn(mut command: Command) -> io::Result<Self> {
        let mut child = command.stdout(Stdio::piped()).spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("no stdout"))?;
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in io::BufRead::lines(io::BufReader::new(stdout)).map_while(Result::ok) {
                match line.split_once(Self::PREFIX) {
                    Some((_, report)) => {
                        if tx.send(report.to_owned()).is_err() {
                            return;
                        }
                    }
                    None => println!("{line}"),
                }
            }
        });
        Ok(Self { child, lines })
    }

    /// The value of the next report named `key`, passing over others; waits at most `timeout`.
    pub fn expect(&self, key: &str, timeout: Duration) -> io::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).map_err(|_| {
                io::Error::new(io::ErrorKind::TimedOut, format!("no report {key:?}"))
            })?;
            match line.split_once(' ') {
                Some((k, value)) if k == key => return Ok(value.to_owned()),
                None if line == key => return Ok(String::new()),
                _ => {}
            }
        }
    }

    /// Waits for the process to end.
    pub fn wait(mut self) -> io::Result<std::process::ExitStatus> {
        self.child.wait()
    }
}

/// Exit-detection latencies of one runtime, summarised the same way by every latency benchmark
/// so `tests/runtime-bench` can set them side by side.
#[derive(Debug, Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    /// Notes one latency: from `exited_ns` (the container's own clock reading as its last act)
    /// to `woke_ns` (when the runtime's `wait_exited` returned), both from [`now_ns`].
    pub fn push(&mut self, exited_ns: u128, woke_ns: u128) {
        let nanos = u64::try_from(woke_ns.saturating_sub(exited_ns)).unwrap_or(u64::MAX);
        self.0.push(Duration::from_nanos(nanos));
    }

    /// The `p`th percentile (nearest rank), or none before the first latency.
    pub fn percentile(&self, p: usize) -> Option<Duration> {
        let mut sorted = self.0.clone();
        sorted.sort();
        let last = sorted.len().checked_sub(1)?;
        sorted.get((sorted.len() * p / 100).min(last)).copied()
    }

    /// One line: `exit-latency runtime=NAME runs=N p50_ms=.. p90_ms=.. p99_ms=.. max_ms=..`.
    pub fn summary(&self, runtime: &str) -> String {
        let ms = |p| {
            self.percentile(p)
                .map_or("-".to_owned(), |d| format!("{:.2}", d.as_secs_f64() * 1e3))
        };
        format!(
            "exit-latency runtime={runtime} runs={} p50_ms={} p90_ms={} p99_ms={} max_ms={}",
            self.0.len(),
            ms(50),
            ms(90),
            ms(99),
            ms(100)
        )
    }
}
