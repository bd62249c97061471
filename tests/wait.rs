//! Black-box tests of `argoexec wait` with the PNS runtime: the real binary as the wait container
//! of a real PID namespace, real main and sidecar processes beside it, the test playing the pod
//! runner (it writes the pod state directory). Needs root and util-linux (`tests/setup`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use argoexec_runtime::testns::PodNamespace;

/// Starts container `name` running `script` in the namespace; a thread plays the runner: it
/// keeps stdout (here also the combined output) in the state dir and writes `exitcode` last.
fn start_container(ns: &PodNamespace, state: &Path, name: &str, script: &str) {
    let dir = state.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let stdout = std::fs::File::create(dir.join("stdout")).unwrap();
    let mut child = ns
        .command("sh")
        .args(["-c", script])
        .env("ARGO_CONTAINER_NAME", name)
        .stdin(Stdio::null())
        .stdout(stdout)
        .spawn()
        .unwrap();
    std::thread::spawn(move || {
        let status = child.wait().unwrap();
        std::fs::copy(dir.join("stdout"), dir.join("combined")).unwrap();
        let code = status.code().unwrap_or(137);
        std::fs::write(dir.join("exitcode"), code.to_string()).unwrap();
    });
}

fn run_wait(
    ns: &PodNamespace,
    root: &Path,
    template: &serde_json::Value,
    extra: &[(&str, &str)],
) -> Output {
    ns.command(env!("CARGO_BIN_EXE_argoexec"))
        .args(["wait", "--pod-root"])
        .arg(root)
        .arg("--termination-log")
        .arg(root.join("termination-log"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ARGO_POD_NAME", "pod-1")
        .env("ARGO_WORKFLOW_NAME", "wf")
        .env("ARGO_CONTAINER_NAME", "wait")
        .env("ARGO_CONTAINER_RUNTIME_EXECUTOR", "pns")
        .env("ARGO_TEMPLATE", template.to_string())
        .env("ARGO_TERMINATION_GRACE_PERIOD_SECONDS", "1")
        .env("ARGOEXEC_POD_STATE_DIR", root.join("state"))
        .env("ARGOEXEC_REPORT_FILE", root.join("report.json"))
        .env("ARGOEXEC_LOCAL_REPOSITORY", root.join("repo"))
        .envs(extra.iter().copied())
        .output()
        .unwrap()
}

/// Whether a process whose command line holds `pattern` is still there a moment later (the
/// `nsenter` that started it also names it, and exits only once it has reaped the container).
fn alive(pattern: &str) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let found = Command::new("pgrep")
            .args(["-f", pattern])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success();
        if !found || std::time::Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn saves_the_outputs_of_a_real_main_and_kills_the_sidecar() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let out = root.join("main-out");
    let ns = PodNamespace::start().unwrap();
    // One shell that ignores SIGTERM: a child of it would outlive it, as in a pod whose runner
    // does not clean up.
    let marker = format!("sidecar-{}", std::process::id());
    start_container(
        &ns,
        &root.join("state"),
        "sidecar",
        &format!("trap '' TERM; while :; do sleep 0.1; done; : {marker}"),
    );
    start_container(
        &ns,
        &root.join("state"),
        "main",
        &format!(
            "mkdir -p {o}/dir/sub && echo 42 > {o}/param && echo a > {o}/dir/a && \
             echo b > {o}/dir/sub/b && sleep 0.3 && echo hello",
            o = out.display()
        ),
    );
    let template = serde_json::json!({
        "name": "step",
        "script": {"image": "alpine", "source": "echo hello"},
        "outputs": {
            "parameters": [{"name": "p", "valueFrom": {"path": format!("{}/param", out.display())}}],
            "artifacts": [{"name": "tree", "path": format!("{}/dir", out.display())}],
        },
    });
    let output = run_wait(
        &ns,
        root,
        &template,
        &[("ARGO_INCLUDE_SCRIPT_OUTPUT", "true")],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("report.json")).unwrap()).unwrap();
    let outputs = &report["outputs"];
    assert_eq!(outputs["result"], "hello", "{report:#}");
    assert_eq!(outputs["parameters"][0]["value"], "42");
    assert_eq!(outputs["artifacts"][0]["local"]["key"], "wf/pod-1/tree.tgz");
    assert!(root.join("repo/wf/pod-1/tree.tgz").is_file());
    // The sidecar ignored SIGTERM: wait escalated to SIGKILL after the 1 s grace.
    assert!(stderr.contains("Killing sidecars"), "{stderr}");
    assert!(!alive(&marker), "the sidecar outlived wait: {stderr}");
}

#[test]
fn a_deadline_kills_main_reports_and_fails_with_argos_message() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let ns = PodNamespace::start().unwrap();
    let marker = format!("sleep 4{}", std::process::id() % 1000);
    start_container(
        &ns,
        &root.join("state"),
        "main",
        &format!("echo started; exec {marker}"),
    );
    let deadline = jiff::Timestamp::now() + jiff::SignedDuration::from_millis(500);
    let template = serde_json::json!({
        "name": "step",
        "container": {"image": "alpine"},
        "outputs": {"parameters": [{"name": "p", "valueFrom": {"path": "/nonexistent", "default": "d"}}]},
    });
    let output = run_wait(
        &ns,
        root,
        &template,
        &[("ARGO_DEADLINE", &deadline.to_string())],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(root.join("termination-log")).unwrap(),
        "Step exceeded its deadline"
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["message"], "Step exceeded its deadline");
    assert_eq!(report["outputs"]["parameters"][0]["value"], "d");
    assert!(!alive(&marker), "main outlived the deadline");
}

#[test]
fn a_wait_that_cannot_start_still_reports_why() {
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let template = serde_json::json!({
        "name": "step",
        "container": {"image": "alpine"},
        "outputs": {"parameters": [{"name": "p", "valueFrom": {"path": "/p"}}]},
    });
    // The kubelet runtime is not written yet: wait fails at once, and says so in the report.
    let output = Command::new(env!("CARGO_BIN_EXE_argoexec"))
        .args(["wait", "--pod-root"])
        .arg(root)
        .env_clear()
        .env("ARGO_POD_NAME", "pod-1")
        .env("ARGO_CONTAINER_RUNTIME_EXECUTOR", "kubelet")
        .env("ARGO_TEMPLATE", template.to_string())
        .env("ARGOEXEC_REPORT_FILE", root.join("report.json"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(64));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("report.json")).unwrap()).unwrap();
    let message = report["message"].as_str().unwrap();
    assert!(message.contains("kubelet runtime"), "{message}");
    assert_eq!(report["outputs"]["parameters"][0]["name"], "p");
}
