//! The PNS runtime against real processes in a real PID namespace (root, util-linux, and
//! busybox-static for the chrooted container; `tests/setup` installs them).
//!
//! Each test builds a pod: [`PodNamespace`] is the pause process, containers are started into it
//! with `nsenter` (so their parent is outside and they see `PPid: 0`, as under a container
//! runtime), and the runtime runs in the probe: this test binary re-executed inside the
//! namespace as container `wait`, reporting `PROBE <key> <value>` lines the test checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argoexec_runtime::testns::{PodNamespace, Reports, collect, now_ns};
use argoexec_runtime::{ContainerRuntime as _, KillOutcome, LogStream, Pns};

/// Which probe scenario to run; unset in a normal test run.
const ROLE: &str = "PNS_TEST_ROLE";
const WAIT: Duration = Duration::from_secs(30);

/// Not a test of its own: the probe's entry point when this binary runs inside a namespace.
#[test]
fn probe_entry() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(probe(&role));
}

fn report(key: &str, value: impl std::fmt::Display) {
    println!("{}{key} {value}", Reports::PREFIX);
}

async fn probe(role: &str) {
    let pns = Pns::new().unwrap();
    report("ready", "");
    match role {
        "kill" => {
            pns.wait_started("timed").await.unwrap();
            pns.wait_exited("timed").await.unwrap();
            report("woke", now_ns());
            pns.wait_started("main").await.unwrap();
            pns.wait_started("sidecar").await.unwrap();
            report("containers", pns.containers().await.unwrap().join(","));
            for (name, grace) in [("sidecar", 5000), ("main", 300)] {
                let start = Instant::now();
                let outcome = pns.kill(name, Duration::from_millis(grace)).await.unwrap();
                report(name, format!("{outcome:?} {:?}", start.elapsed()));
            }
        }
        "fast" => {
            pns.wait_exited("fast").await.unwrap();
            for path in ["/file", "/link"] {
                let bytes = pns.read_file("fast", Path::new(path)).await.unwrap();
                report(path, String::from_utf8(bytes).unwrap().trim());
            }
            let missing = pns.read_file("fast", Path::new("/nope")).await.unwrap_err();
            report("missing", missing);
        }
        "state" => {
            let status = pns.wait_exited("main").await.unwrap();
            report("code", format!("{:?}", status.code));
            for stream in [LogStream::Stdout, LogStream::Combined] {
                let bytes = collect(pns.logs("main", stream).await.unwrap())
                    .await
                    .unwrap();
                report(
                    &format!("{stream:?}"),
                    format!("{:?}", String::from_utf8(bytes).unwrap()),
                );
            }
        }
        other => panic!("unknown probe role {other}"),
    }
}

/// Skips (with a note) where the namespaces cannot be made.
fn can_run() -> bool {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: the PNS tests make PID namespaces and need root");
        return false;
    }
    true
}

fn start_probe(ns: &PodNamespace, role: &str, envs: &[(&str, &Path)]) -> Reports {
    let mut command = ns.command(std::env::current_exe().unwrap());
    command
        .args(["probe_entry", "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env("ARGO_CONTAINER_NAME", "wait");
    for (key, value) in envs {
        command.env(key, value);
    }
    let probe = Reports::spawn(command).unwrap();
    probe.expect("ready", WAIT).unwrap();
    probe
}

fn container(ns: &PodNamespace, name: &str, script: &str) -> Command {
    let mut command = ns.command("sh");
    command
        .args(["-c", script])
        .env("ARGO_CONTAINER_NAME", name);
    command
}

#[test]
fn finds_containers_by_name_sees_exits_and_kills_with_escalation() {
    if !can_run() {
        return;
    }
    let ns = PodNamespace::start().unwrap();
    let probe = start_probe(&ns, "kill", &[]);

    let exited = ns.run_timed_exit("timed", "0.3").unwrap();
    let woke: u128 = probe.expect("woke", WAIT).unwrap().parse().unwrap();
    println!(
        "exit-to-wake latency: {:.3} ms (date printed its time, then exited)",
        (woke.saturating_sub(exited)) as f64 / 1e6
    );

    let mut main = container(&ns, "main", "trap '' TERM; while :; do sleep 0.05; done")
        .spawn()
        .unwrap();
    let mut sidecar = container(&ns, "sidecar", "exec sleep 30").spawn().unwrap();

    // Containers seen stay known after they exit; `wait` (the probe's own) is never listed.
    assert_eq!(
        probe.expect("containers", WAIT).unwrap(),
        "main,sidecar,timed"
    );
    let sidecar_kill = probe.expect("sidecar", WAIT).unwrap();
    let main_kill = probe.expect("main", WAIT).unwrap();
    println!("kill sidecar (honours SIGTERM, grace 5 s): {sidecar_kill}");
    println!("kill main (ignores SIGTERM, grace 300 ms): {main_kill}");
    assert!(sidecar_kill.starts_with(&format!("{:?} ", KillOutcome::Terminated)));
    assert!(main_kill.starts_with(&format!("{:?} ", KillOutcome::Killed)));

    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(sidecar.wait().unwrap().signal(), Some(15));
    assert_eq!(main.wait().unwrap().signal(), Some(9));
    assert!(probe.wait().unwrap().success());
}

#[test]
fn a_container_that_exits_at_once_stays_readable_through_its_held_root() {
    if !can_run() {
        return;
    }
    assert!(
        Path::new("/bin/busybox").exists(),
        "install busybox-static (tests/setup)"
    );
    let ns = PodNamespace::start().unwrap();
    let mnt = tempfile::tempdir().unwrap();
    let probe = start_probe(&ns, "fast", &[]);

    // Like runc: in its own mount namespace the container's root (a tmpfs) is prepared, the
    // process enters it, and only then execs the command with the container's environment. When
    // it exits, its mount namespace and the tmpfs go: the held root is the only way in.
    let script = r#"mount -t tmpfs tmpfs "$MNT" && cp /bin/busybox "$MNT/" \
        && echo secret > "$MNT/file" && ln -s /file "$MNT/link" \
        && exec unshare --root="$MNT" /busybox env ARGO_CONTAINER_NAME=fast /busybox sleep 0.1"#;
    let status = ns
        .command("unshare")
        .args(["--mount", "sh", "-c", script])
        .env("MNT", mnt.path())
        .status()
        .unwrap();
    assert!(status.success());

    assert_eq!(probe.expect("/file", WAIT).unwrap(), "secret");
    assert_eq!(
        probe.expect("/link", WAIT).unwrap(),
        "secret",
        "an absolute symlink resolves inside the container's root"
    );
    assert!(probe.expect("missing", WAIT).unwrap().contains("not found"));
    assert!(probe.wait().unwrap().success());
    assert_eq!(
        std::fs::read_dir(mnt.path()).unwrap().count(),
        0,
        "the container's tmpfs was never visible outside it"
    );
}

#[test]
fn exit_code_and_logs_come_from_the_pod_state_dir() {
    if !can_run() {
        return;
    }
    let ns = PodNamespace::start().unwrap();
    let state = tempfile::tempdir().unwrap();
    let probe = start_probe(&ns, "state", &[("ARGOEXEC_POD_STATE_DIR", state.path())]);

    let ctr = state.path().join("main");
    std::fs::create_dir_all(&ctr).unwrap();
    let code = run_like_a_pod_runner(
        container(
            &ns,
            "main",
            "echo out; sleep 0.05; echo err >&2; sleep 0.2; exit 7",
        ),
        &ctr,
    );
    assert_eq!(code, 7);

    assert_eq!(probe.expect("code", WAIT).unwrap(), "Some(7)");
    assert_eq!(probe.expect("Stdout", WAIT).unwrap(), r#""out\n""#);
    assert_eq!(probe.expect("Combined", WAIT).unwrap(), r#""out\nerr\n""#);
    assert!(probe.wait().unwrap().success());
}

/// What the local pod runner does: copy stdout to `stdout` and `combined`, stderr to `combined`,
/// and once both reached their end and the process exited, write `exitcode` (atomically, last).
fn run_like_a_pod_runner(mut command: Command, ctr: &Path) -> i32 {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let combined = Arc::new(Mutex::new(
        std::fs::File::create(ctr.join("combined")).unwrap(),
    ));
    let copy = |mut from: Box<dyn std::io::Read + Send>, also: Option<PathBuf>| {
        let combined = Arc::clone(&combined);
        std::thread::spawn(move || {
            let mut also = also.map(|path| std::fs::File::create(path).unwrap());
            let mut buf = [0; 4096];
            loop {
                let n = from.read(&mut buf).unwrap();
                if n == 0 {
                    return;
                }
                combined.lock().unwrap().write_all(&buf[..n]).unwrap();
                if let Some(file) = &mut also {
                    file.write_all(&buf[..n]).unwrap();
                }
            }
        })
    };
    let out = copy(
        Box::new(child.stdout.take().unwrap()),
        Some(ctr.join("stdout")),
    );
    let err = copy(Box::new(child.stderr.take().unwrap()), None);
    out.join().unwrap();
    err.join().unwrap();
    let code = child.wait().unwrap().code().unwrap();
    // Late on purpose: the runtime must wait for it rather than read a missing file.
    std::thread::sleep(Duration::from_millis(100));
    std::fs::write(ctr.join("exitcode.tmp"), code.to_string()).unwrap();
    std::fs::rename(ctr.join("exitcode.tmp"), ctr.join("exitcode")).unwrap();
    code
}
