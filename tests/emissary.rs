//! Black-box tests of `argoexec emissary -- CMD`: the real binary runs real commands, with its
//! `/var/run/argo` under a temp dir (`--pod-root`), and the files it leaves are checked as the
//! wait container reads them; the kill test goes through the emissary runtime wait uses. The PID 1
//! and non-root tests need root and util-linux (`unshare`, `setpriv`).

// A test fails by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use argoexec_runtime::{ContainerRuntime as _, Emissary, KillOutcome};

use argoexec_testsupport::waitcmd;

const ARGOEXEC: &str = env!("CARGO_BIN_EXE_argoexec");
/// How long a command that should end soon may take before the test gives up on it: a bound
/// against hanging, not a measure.
const LIVENESS: Duration = Duration::from_secs(60);

/// A pod root with `/var/run/argo/template`.
struct Pod {
    tmp: tempfile::TempDir,
}

impl Pod {
    fn new(template: serde_json::Value) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let pod = Self { tmp };
        std::fs::create_dir_all(pod.var_run_argo()).unwrap();
        std::fs::write(pod.var_run_argo().join("template"), template.to_string()).unwrap();
        pod
    }

    fn plain() -> Self {
        Self::new(serde_json::json!({"name": "t", "container": {"image": "x"}}))
    }

    fn root(&self) -> &Path {
        self.tmp.path()
    }

    fn var_run_argo(&self) -> PathBuf {
        self.root().join("var/run/argo")
    }

    fn ctr(&self, container: &str, file: &str) -> PathBuf {
        self.var_run_argo().join("ctr").join(container).join(file)
    }

    fn read(&self, container: &str, file: &str) -> String {
        let path = self.ctr(container, file);
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    /// `argoexec emissary --pod-root ROOT -- sh -c SCRIPT` as container `container`.
    fn command(&self, container: &str, script: &str) -> Command {
        let mut command = Command::new(ARGOEXEC);
        command
            .args(["emissary", "--pod-root"])
            .arg(self.root())
            .args(["--", "sh", "-c", script])
            .env("ARGO_CONTAINER_NAME", container)
            .env_remove("ARGO_INCLUDE_SCRIPT_OUTPUT")
            .env_remove("ARGO_TEMPLATE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn run(&self, container: &str, script: &str) -> Output {
        finish(self.command(container, script).spawn().unwrap())
    }
}

/// Waits for the child, failing the test if it outlives [`LIVENESS`].
fn finish(mut child: Child) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > LIVENESS {
            let _ = child.kill();
            panic!("the emissary did not finish within {LIVENESS:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// Waits until `path` exists (bounded by [`LIVENESS`]).
fn await_file(path: &Path) {
    let start = Instant::now();
    while !path.exists() {
        assert!(
            start.elapsed() < LIVENESS,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads the `ready` line the command prints once its traps are set.
fn read_ready(child: &mut Child) {
    let mut ready = [0u8; 6];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut ready).unwrap();
    assert_eq!(&ready, b"ready\n");
}

fn code(out: &Output) -> i32 {
    out.status
        .code()
        .unwrap_or_else(|| panic!("killed: {out:?}"))
}

fn is_root() -> bool {
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    if !root {
        eprintln!("skipped: needs root");
    }
    root
}

#[test]
fn exit_codes_are_the_commands_and_128_plus_the_signal() {
    let pod = Pod::plain();
    for (script, expected) in [
        ("exit 0", 0),
        ("exit 3", 3),
        ("kill -TERM $$", 143),
        ("kill -KILL $$", 137),
    ] {
        let out = pod.run("main", script);
        assert_eq!(code(&out), expected, "{script}: {out:?}");
        assert_eq!(
            pod.read("main", "exitcode"),
            expected.to_string(),
            "{script}"
        );
    }
    let mode = std::fs::metadata(pod.var_run_argo().join("ctr/main"))
        .unwrap()
        .mode();
    assert_eq!(mode & 0o777, 0o777, "any user may write the signal file");
}

#[test]
fn own_failures_exit_64_and_still_write_the_exit_code() {
    let pod = Pod::plain();
    let out = Command::new(ARGOEXEC)
        .args(["emissary", "--pod-root"])
        .arg(pod.root())
        .args(["--", "/no/such/program"])
        .env("ARGO_CONTAINER_NAME", "main")
        .output()
        .unwrap();
    assert_eq!(code(&out), 64);
    assert_eq!(pod.read("main", "exitcode"), "64");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("failed to start \"/no/such/program\""),
        "{stderr}"
    );
}

#[test]
fn output_is_captured_only_when_the_template_needs_it() {
    let pod = Pod::plain();
    let out = pod.run("main", "echo out; echo err >&2");
    assert_eq!(code(&out), 0);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "out\n",
        "the container's log"
    );
    assert!(!pod.ctr("main", "stdout").exists());

    let out = finish(
        pod.command("main", "echo out; echo err >&2")
            .env("ARGO_INCLUDE_SCRIPT_OUTPUT", "true")
            .spawn()
            .unwrap(),
    );
    assert_eq!(code(&out), 0);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(pod.read("main", "stdout"), "out\n");
    assert_eq!(pod.read("main", "combined"), "out\nerr\n");

    // archiveLogs asks for the logs too.
    let logs = Pod::new(
        serde_json::json!({"name": "t", "container": {"image": "x"}, "archiveLocation": {"archiveLogs": true}}),
    );
    assert_eq!(code(&logs.run("main", "echo a")), 0);
    assert_eq!(logs.read("main", "combined"), "a\n");
}

#[test]
fn the_signal_file_and_signals_reach_the_command() {
    let pod = Pod::plain();
    let trap = "trap 'echo got-$SIG; exit 42' TERM USR1; echo ready; while :; do sleep 0.05; done";
    // By the signal file, as wait sends it, once the trap is set.
    let mut child = pod
        .command("main", &trap.replace("$SIG", "term"))
        .spawn()
        .unwrap();
    read_ready(&mut child);
    std::fs::write(pod.ctr("main", "signal"), "15").unwrap();
    let out = finish(child);
    assert_eq!(code(&out), 42, "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("got-term"));
    assert!(
        !pod.ctr("main", "signal").exists(),
        "a signal is taken once"
    );

    // As a signal to the emissary, forwarded to the command's process group.
    let mut child = pod
        .command("main", &trap.replace("$SIG", "usr1"))
        .spawn()
        .unwrap();
    read_ready(&mut child);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGUSR1,
    )
    .unwrap();
    let out = finish(child);
    assert_eq!(code(&out), 42, "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("got-usr1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_ignoring_sigterm_is_killed_after_the_grace_period() {
    let pod = Pod::plain();
    // The ignored disposition is inherited by every process of the group.
    let mut child = pod
        .command(
            "main",
            "trap '' TERM; echo ready; while :; do sleep 0.05; done",
        )
        .spawn()
        .unwrap();
    read_ready(&mut child);
    let runtime = Emissary::new(pod.var_run_argo());
    let outcome = runtime
        .kill("main", Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(outcome, KillOutcome::Killed);
    assert_eq!(runtime.wait_exited("main").await.unwrap().code, Some(137));
    assert_eq!(code(&finish(child)), 137);

    // One that obeys is terminated within the grace period.
    let child = pod
        .command("main", "while :; do sleep 0.05; done")
        .spawn()
        .unwrap();
    await_file(&pod.ctr("main", "."));
    let _ = std::fs::remove_file(pod.ctr("main", "exitcode"));
    let outcome = runtime.kill("main", LIVENESS).await.unwrap();
    assert_eq!(outcome, KillOutcome::Terminated);
    assert_eq!(code(&finish(child)), 143);
}

#[test]
fn as_pid_1_orphans_are_reaped_and_background_processes_do_not_hold_it() {
    if !is_root() {
        return;
    }
    let pod = Pod::new(serde_json::json!({"name": "t", "container": {"image": "x"}}));
    let in_namespace = |script: &str, capture: bool| {
        let mut command = Command::new("unshare");
        command
            .args([
                "--pid",
                "--fork",
                "--mount-proc",
                "--kill-child",
                ARGOEXEC,
                "emissary",
                "--pod-root",
            ])
            .arg(pod.root())
            .args(["--", "sh", "-c", script])
            .env("ARGO_CONTAINER_NAME", "main")
            .env("ARGO_INCLUDE_SCRIPT_OUTPUT", capture.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        finish(command.spawn().unwrap())
    };
    // Orphans re-parented to the emissary must not stay zombies: the command looks for any.
    let zombies = "(sleep 0.1 &); (sleep 0.1 &); sleep 1; \
                   for s in /proc/[0-9]*/stat; do grep -q ') Z ' $s 2>/dev/null && { echo zombie $s; exit 9; }; done; exit 0";
    let out = in_namespace(zombies, false);
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stdout));
    // A background process holding the output pipes does not keep the container alive.
    for capture in [false, true] {
        let out = in_namespace("(sleep 3600 &); echo done; exit 0", capture);
        assert_eq!(code(&out), 0, "{out:?}");
        assert_eq!(pod.read("main", "exitcode"), "0");
    }
    assert_eq!(pod.read("main", "stdout"), "done\n");
}

#[test]
fn dependencies_are_awaited_and_a_failed_one_stops_the_container() {
    let template = serde_json::json!({"name": "t", "containerSet": {"containers": [
        {"name": "a", "image": "x"},
        {"name": "b", "image": "x", "dependencies": ["a"]}
    ]}});
    let pod = Pod::new(template.clone());
    let marker = pod.root().join("a-ran");
    // b starts first, and may only run its command once a has succeeded.
    let b = pod
        .command("b", &format!("test -f {}", marker.display()))
        .spawn()
        .unwrap();
    await_file(&pod.ctr("b", "."));
    assert_eq!(
        code(&pod.run("a", &format!("touch {}", marker.display()))),
        0
    );
    assert_eq!(code(&finish(b)), 0, "b ran after a");

    let pod = Pod::new(template);
    let b_marker = pod.root().join("b-ran");
    let b = pod
        .command("b", &format!("touch {}", b_marker.display()))
        .spawn()
        .unwrap();
    assert_eq!(code(&pod.run("a", "exit 5")), 5);
    let out = finish(b);
    assert_eq!(code(&out), 5, "the dependency's code is passed on");
    assert_eq!(pod.read("b", "exitcode"), "5");
    assert!(!b_marker.exists(), "b's command never ran");
    assert!(String::from_utf8_lossy(&out.stderr).contains("exited with non-zero code: 5"));
}

#[test]
fn container_set_retries_run_the_command_again() {
    let pod_with = |retries: u32| {
        Pod::new(serde_json::json!({"name": "t", "containerSet": {
            "containers": [{"name": "main", "image": "x"}],
            "retryStrategy": {"retries": retries, "duration": "10ms"}
        }}))
    };
    for (retries, code_expected, runs) in [(2, 0, "3"), (1, 1, "2")] {
        let pod = pod_with(retries);
        let count = pod.root().join("count");
        let script = format!(
            "n=$(cat {c} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {c}; [ $n -ge 3 ]",
            c = count.display()
        );
        assert_eq!(
            code(&pod.run("main", &script)),
            code_expected,
            "retries {retries}"
        );
        assert_eq!(
            std::fs::read_to_string(&count).unwrap().trim(),
            runs,
            "retries {retries}"
        );
    }
}

#[test]
fn debug_pause_before_waits_for_its_file() {
    let pod = Pod::plain();
    let marker = pod.root().join("ran");
    let child = pod
        .command("main", &format!("touch {}", marker.display()))
        .env("ARGO_DEBUG_PAUSE_BEFORE", "true")
        .spawn()
        .unwrap();
    await_file(&pod.ctr("main", "."));
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        !marker.exists(),
        "the command ran before the pause was released"
    );
    std::fs::write(pod.ctr("main", "before"), "").unwrap();
    assert_eq!(code(&finish(child)), 0);
    assert!(marker.exists());
}

#[test]
fn main_stages_outputs_before_its_exit_code() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path().display().to_string();
    let pod = Pod::new(
        serde_json::json!({"name": "t", "container": {"image": "x"}, "outputs": {
            "parameters": [{"name": "p", "valueFrom": {"path": format!("{w}/p.txt")}}],
            "artifacts": [{"name": "d", "path": format!("{w}/dir")}, {"name": "f", "path": format!("{w}/f.bin")}]
        }}),
    );
    let script = format!(
        "echo -n hello > {w}/p.txt; mkdir -p {w}/dir/sub; echo a > {w}/dir/sub/a; echo f > {w}/f.bin"
    );
    assert_eq!(code(&pod.run("main", &script)), 0);
    let staged = pod.var_run_argo().join("outputs");
    let rel = w.trim_start_matches('/');
    assert_eq!(
        std::fs::read_to_string(staged.join("parameters").join(rel).join("p.txt")).unwrap(),
        "hello"
    );
    let entries = |archive: PathBuf| -> Vec<String> {
        let gz = flate2::read::GzDecoder::new(std::fs::File::open(archive).unwrap());
        let mut names: Vec<String> = tar::Archive::new(gz)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        entries(staged.join("artifacts").join(rel).join("dir.tgz")),
        ["dir/", "dir/sub/", "dir/sub/a"]
    );
    assert_eq!(
        entries(staged.join("artifacts").join(rel).join("f.bin.tgz")),
        ["f.bin"]
    );

    // Another container of the pod stages nothing.
    let other = Pod::new(
        serde_json::json!({"name": "t", "container": {"image": "x"}, "outputs": {
            "parameters": [{"name": "p", "valueFrom": {"path": format!("{w}/p.txt")}}]
        }}),
    );
    assert_eq!(code(&other.run("sidecar", "true")), 0);
    assert!(!other.var_run_argo().join("outputs").exists());
}

#[test]
fn runs_as_nobody_with_a_read_only_root_filesystem() {
    if !is_root() {
        return;
    }
    let pod = Pod::new(
        serde_json::json!({"name": "t", "container": {"image": "x"}, "outputs": {
            "parameters": [{"name": "p", "valueFrom": {"path": "/proc/self/comm"}}]
        }}),
    );
    let root = pod.root().display().to_string();
    for dir in [
        pod.root().to_owned(),
        pod.root().join("var"),
        pod.root().join("var/run"),
        pod.var_run_argo(),
    ] {
        nix::unistd::chown(&dir, Some(65534.into()), Some(65534.into())).unwrap();
    }
    // In a mount namespace of its own: the pod root made a mount of its own (so it stays
    // writable), then `/` remounted read-only, then the emissary as uid and gid 65534.
    let script = format!(
        "mount --bind {root} {root} && mount -o remount,bind,ro / && \
         ! touch /tmp/argoexec-ro-check 2>/dev/null && \
         exec setpriv --reuid 65534 --regid 65534 --clear-groups {ARGOEXEC} emissary --pod-root {root} -- \
         sh -c 'id -u; touch /tmp/nope 2>/dev/null && echo writable'"
    );
    let out = finish(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c", &script])
            .env("ARGO_CONTAINER_NAME", "main")
            .env("ARGO_INCLUDE_SCRIPT_OUTPUT", "true")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // `touch` fails on the read-only root, so the command's last status is 1: the emissary
    // passed it on, having written everything it writes under the pod root.
    assert_eq!(code(&out), 1, "{out:?}");
    assert_eq!(pod.read("main", "stdout"), "65534\n");
    assert_eq!(pod.read("main", "exitcode"), "1");
    let owner = std::fs::metadata(pod.ctr("main", "exitcode"))
        .unwrap()
        .uid();
    assert_eq!(owner, 65534);
    let staged = pod.var_run_argo().join("outputs/parameters/proc/self/comm");
    assert!(staged.exists(), "{}", staged.display());
}

#[test]
fn offloaded_arguments_are_read_and_an_overlong_one_becomes_an_at_file() {
    let pod = Pod::plain();
    std::fs::create_dir_all(pod.root().join("tmp")).unwrap();
    let long = "x".repeat(200 * 1024);
    let args_file = pod.root().join("args.json");
    std::fs::write(
        &args_file,
        serde_json::to_string(&["first arg", long.as_str()]).unwrap(),
    )
    .unwrap();
    // `sh -c SCRIPT` then the file's arguments: $0 and $1 of the script.
    let out = finish(
        pod.command("main", r#"printf '%s|%s' "$0" "$1""#)
            .env("ARGO_CONTAINER_ARGS_FILE", &args_file)
            .spawn()
            .unwrap(),
    );
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    // Arguments after the command: `-c`, SCRIPT, "first arg", the long one (index 3).
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "first arg|@/tmp/argo_arg_3.txt"
    );
    assert_eq!(
        std::fs::read_to_string(pod.root().join("tmp/argo_arg_3.txt")).unwrap(),
        long
    );
}

#[test]
fn a_bad_arguments_file_is_the_emissarys_own_failure() {
    let pod = Pod::plain();
    let args_file = pod.root().join("args.json");
    std::fs::write(&args_file, r#"{"not": "a list"}"#).unwrap();
    let out = finish(
        pod.command("main", "exit 0")
            .env("ARGO_CONTAINER_ARGS_FILE", &args_file)
            .spawn()
            .unwrap(),
    );
    assert_eq!(code(&out), 64);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("expected a JSON list of strings") && stderr.contains("args.json"),
        "{stderr}"
    );
    assert_eq!(pod.read("main", "exitcode"), "64");
}

/// `argoexec wait --pod-root ROOT` with the emissary runtime, saving to a local repository under
/// the pod root, its temp dir `tmp`; returns its output.
fn wait_emissary(pod: &Pod, template: &serde_json::Value, tmp: &Path) -> Output {
    let root = pod.root();
    let mut command = Command::new(ARGOEXEC);
    let out = waitcmd::wait_command(&mut command, root, "emissary", template)
        .env("TMPDIR", tmp)
        .env("ARGOEXEC_REPORT_FILE", root.join("report.json"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(out)
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(bytes), &mut out).unwrap();
    out
}

#[test]
fn wait_uploads_the_staged_archive_as_is_and_repacks_other_strategies_without_temp_files() {
    let work = tempfile::tempdir().unwrap();
    let w = work.path().display().to_string();
    let template = serde_json::json!({"name": "t", "container": {"image": "x"}, "outputs": {
        "artifacts": [
            {"name": "d", "path": format!("{w}/dir")},
            {"name": "fast", "path": format!("{w}/dir"), "archive": {"tar": {"compressionLevel": 1}}},
            {"name": "f", "path": format!("{w}/f.txt"), "archive": {"none": {}}},
            {"name": "z", "path": format!("{w}/dir"), "archive": {"zip": {}}},
            {"name": "tree", "path": format!("{w}/dir"), "archive": {"none": {}}},
        ]
    }});
    let pod = Pod::new(template.clone());
    let script = format!(
        "mkdir -p {w}/dir/sub && seq 1 20000 > {w}/dir/sub/a && echo b > {w}/dir/b && \
         ln -s sub/a {w}/dir/link && echo -n file > {w}/f.txt"
    );
    assert_eq!(code(&pod.run("main", &script)), 0);
    let staged = pod
        .var_run_argo()
        .join("outputs/artifacts")
        .join(w.trim_start_matches('/'))
        .join("dir.tgz");
    let staged = std::fs::read(staged).unwrap();
    // What wait's own save packs for the default strategy (PNS reads main's files and packs them
    // with the same call), byte for byte: entry names under `dir/`, modes, mtimes, the link.
    let mut ours = Vec::new();
    argoexec_archive::pack_to(
        &work.path().join("dir"),
        &argoexec_archive::PackFormat::default(),
        &mut ours,
    )
    .unwrap();
    assert_eq!(staged, ours);

    let tmp = tempfile::tempdir().unwrap();
    let out = wait_emissary(&pod, &template, tmp.path());
    assert_eq!(code(&out), 0, "{}", String::from_utf8_lossy(&out.stderr));
    let repo = pod.root().join("repo/wf/pod-1");
    // The default strategy: the staged file itself.
    assert_eq!(std::fs::read(repo.join("d.tgz")).unwrap(), staged);
    // Another level: gzipped afresh from the same tar.
    let fast = std::fs::read(repo.join("fast.tgz")).unwrap();
    assert_ne!(fast, staged);
    assert_eq!(gunzip(&fast), gunzip(&staged));
    // none: the file's bytes.
    assert_eq!(std::fs::read(repo.join("f.txt")).unwrap(), b"file");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pod.root().join("report.json")).unwrap()).unwrap();
    let artifacts = report["outputs"]["artifacts"].as_array().unwrap();
    assert_eq!(artifacts.len(), 5, "{report}");
    assert_eq!(artifacts[2]["size"], 4);
    // zip: what packing the path makes, byte for byte (the staged tar keeps every mtime).
    let mut zip = Vec::new();
    argoexec_archive::pack_to(
        &work.path().join("dir"),
        &argoexec_archive::PackFormat::Zip,
        &mut zip,
    )
    .unwrap();
    assert_eq!(std::fs::read(repo.join("z.zip")).unwrap(), zip);
    // none of a directory: its files, one object each (the symlink is not stored).
    let tree = repo.join("dir");
    assert_eq!(
        std::fs::read(tree.join("sub/a")).unwrap(),
        std::fs::read(work.path().join("dir/sub/a")).unwrap()
    );
    assert_eq!(std::fs::read(tree.join("b")).unwrap(), b"b\n");
    assert!(!tree.join("link").exists());
    assert!(artifacts[4].get("sha256").is_none(), "{report}");
    // Nothing was written to wait's temp dir.
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);
}
