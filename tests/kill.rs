//! Black-box tests of `argoexec kill SIGNAL PID`, as Argo 4's controller execs it to stop a
//! container: real processes signalled, bad input refused, the output and exit codes compared with
//! Argo's own `argoexec` v4.0.5 from the oracle, and the emissary (PID 1 of an Argo 4 container)
//! stopped by it as the controller does.
//!
//! The comparison needs the oracle's `argoexec`; without it the test fails naming the build, and
//! `ARGOEXEC_SKIP_ORACLE=1` (never under CI) skips it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::ExitStatusExt as _;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use argoexec_testsupport::oracle::oracle_bin;

const ARGOEXEC: &str = env!("CARGO_BIN_EXE_argoexec");
/// A bound against hanging, not a measure.
const LIVENESS: Duration = Duration::from_secs(60);

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("1000")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn kill_with(binary: &Path, args: &[&str]) -> Output {
    Command::new(binary)
        .arg("kill")
        .args(args)
        .env_clear()
        .output()
        .unwrap()
}

fn ours(args: &[&str]) -> Output {
    kill_with(Path::new(ARGOEXEC), args)
}

/// Waits for the child, failing the test if it outlives [`LIVENESS`].
fn finish(mut child: Child) -> Output {
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > LIVENESS {
            let _ = child.kill();
            panic!("the process did not end within {LIVENESS:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

/// A PID that was a process of ours and is gone (reaped).
fn gone_pid() -> String {
    let mut child = Command::new("true").spawn().unwrap();
    child.wait().unwrap();
    child.id().to_string()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn signals_reach_a_real_process_by_number_and_by_name() {
    for (signal, number, name) in [
        ("15", 15, "terminated"),
        ("TERM", 15, "terminated"),
        ("SIGKILL", 9, "killed"),
        ("usr1", 10, "user defined signal 1"),
    ] {
        let child = sleeper();
        let pid = child.id().to_string();
        let out = ours(&[signal, &pid]);
        assert_eq!(out.status.code(), Some(0), "{signal}: {}", stderr(&out));
        assert_eq!(stdout(&out), format!("killing {pid} with {name}\n"));
        let ended = finish(child);
        assert_eq!(ended.status.signal(), Some(number), "{signal}");
    }
}

#[test]
fn bad_input_is_refused_with_exit_64_and_a_message_naming_it() {
    let gone = gone_pid();
    for (args, expected) in [
        (vec!["NOPE", "1"], "invalid signal \"NOPE\""),
        (vec!["-3", "1"], "invalid signal \"-3\""),
        (vec!["40", "1"], "signal 40 is not supported"),
        (vec!["15", "abc"], "invalid process ID \"abc\""),
        (vec!["15", "0"], "invalid process ID \"0\""),
        (vec!["15", "-1"], "invalid process ID \"-1\""),
        (vec!["15", &gone], "os: process already finished"),
    ] {
        let out = ours(&args);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    // clap's usage error for a missing operand, as for any subcommand.
    assert_eq!(ours(&["15"]).status.code(), Some(2));
}

#[test]
fn output_and_exit_codes_are_argos() {
    let Some(argo) = oracle_bin("argoexec") else {
        return;
    };
    // A live process: the same line on stdout, exit 0, the process ended by the signal.
    for signal in ["15", "9", "10"] {
        let mut lines = Vec::new();
        for binary in [argo.as_path(), Path::new(ARGOEXEC)] {
            let child = sleeper();
            let pid = child.id().to_string();
            let out = kill_with(binary, &[signal, &pid]);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{}: {}",
                binary.display(),
                stderr(&out)
            );
            lines.push(stdout(&out).replace(&pid, "PID"));
            let ended = finish(child);
            assert_eq!(ended.status.signal(), Some(signal.parse().unwrap()));
        }
        assert_eq!(lines[0], lines[1], "signal {signal}: Argo's, then ours");
    }
    // A process that is gone: both say so and exit 64.
    let gone = gone_pid();
    let (argo_out, our_out) = (kill_with(&argo, &["15", &gone]), ours(&["15", &gone]));
    assert_eq!(argo_out.status.code(), Some(64), "{}", stderr(&argo_out));
    assert_eq!(our_out.status.code(), Some(64));
    assert_eq!(stdout(&argo_out), stdout(&our_out));
    assert!(stderr(&argo_out).contains("os: process already finished"));
    assert!(stderr(&our_out).contains("os: process already finished"));
    // A signal that is no number: Argo's exits 64 too; ours accepts names (checked above) and
    // refuses what is neither with the same code.
    let argo_out = kill_with(&argo, &["NOPE", "1"]);
    assert_eq!(argo_out.status.code(), Some(64), "{}", stderr(&argo_out));
    assert_eq!(ours(&["NOPE", "1"]).status.code(), Some(64));
}

#[test]
fn the_emissary_is_stopped_as_argo_4s_controller_stops_it() {
    let root = tempfile::tempdir().unwrap();
    let var_run_argo = root.path().join("var/run/argo");
    std::fs::create_dir_all(&var_run_argo).unwrap();
    std::fs::write(
        var_run_argo.join("template"),
        r#"{"name": "t", "container": {"image": "x"}}"#,
    )
    .unwrap();
    let mut emissary = Command::new(ARGOEXEC)
        .args(["emissary", "--pod-root"])
        .arg(root.path())
        .args(["--", "sh", "-c", "echo ready; exec sleep 1000"])
        .env("ARGO_CONTAINER_NAME", "main")
        .env_remove("ARGO_TEMPLATE")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    std::io::Read::read_exact(emissary.stdout.as_mut().unwrap(), &mut ready).unwrap();
    assert_eq!(&ready, b"ready\n");
    // `argoexec kill 15 1` in the container: the emissary is its PID 1.
    let pid = emissary.id().to_string();
    let out = ours(&["15", &pid]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("killing {pid} with terminated\n"));
    let ended = finish(emissary);
    assert_eq!(ended.status.code(), Some(143), "{}", stderr(&ended));
    assert_eq!(
        std::fs::read_to_string(var_run_argo.join("ctr/main/exitcode")).unwrap(),
        "143"
    );
}
