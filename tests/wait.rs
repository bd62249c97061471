//! Black-box tests of `argoexec wait` with the PNS runtime: the real binary as the wait container
//! of a real PID namespace, real main and sidecar processes beside it, the test playing the pod
//! runner (it writes the pod state directory). Needs root and util-linux (`tests/setup`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use argoexec_runtime::testns::PodNamespace;

use argoexec_testsupport::waitcmd;

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
    wait_command(ns, root, template)
        .env("ARGOEXEC_REPORT_FILE", root.join("report.json"))
        .envs(extra.iter().copied())
        .output()
        .unwrap()
}

/// The wait container's command, with no reporter chosen yet.
fn wait_command(ns: &PodNamespace, root: &Path, template: &serde_json::Value) -> Command {
    let mut command = ns.command(env!("CARGO_BIN_EXE_argoexec"));
    waitcmd::wait_command(&mut command, root, "pns", template)
        .env("ARGO_TERMINATION_GRACE_PERIOD_SECONDS", "1")
        .env("ARGOEXEC_POD_STATE_DIR", root.join("state"));
    command
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
fn a_deadline_kills_main_and_reports_argos_message_and_wait_exits_0_as_argos_does() {
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
    // Argo v3.3.8's and v4.0.5's wait exit 0 here (tests/differential.rs): main's exit code
    // fails the step, the message is in the termination log.
    assert_eq!(output.status.code(), Some(0), "{stderr}");
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
    // The kubelet runtime without ARGO_KUBELET_HOST: wait fails at once, and says so in the report.
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

// Reporting to the Kubernetes API: the same real wait and main, the outputs going to a fake API
// server that speaks the real protocol (argoexec-testkube) instead of the local report file.

mod kube {
    use super::*;
    use argoexec_testkube::{Fault, TestKube};
    use serde_json::{Value, json};

    const NS: &str = "argo";

    fn server() -> TestKube {
        let kube = TestKube::start().unwrap();
        kube.apply(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "pod-1", "namespace": NS, "uid": "pod-uid"},
            "spec": {"containers": [{"name": "wait"}, {"name": "main"}]}}));
        kube
    }

    /// A step whose main writes parameter `p` = `value` (after `gate` exists, when given).
    fn step(ns: &PodNamespace, root: &Path, value: &str, gate: Option<&Path>) -> Value {
        let out = root.join("out");
        std::fs::create_dir_all(&out).unwrap();
        let wait_gate = gate.map_or(String::new(), |g| {
            format!("while [ ! -e {} ]; do sleep 0.05; done; ", g.display())
        });
        start_container(
            ns,
            &root.join("state"),
            "main",
            // The sleep lets wait see main alive, so it can read main's files through /proc.
            &format!("sleep 0.3; {wait_gate}echo {value} > {}/p", out.display()),
        );
        json!({"name": "step", "container": {"image": "alpine"},
            "outputs": {"parameters": [{"name": "p", "valueFrom": {"path": format!("{}/p", out.display())}}]}})
    }

    fn api_wait(ns: &PodNamespace, root: &Path, server: &TestKube, template: &Value) -> Command {
        let mut command = wait_command(ns, root, template);
        command
            .args(["--server", server.url(), "--namespace", NS, "--token", "t"])
            .env("ARGO_NODE_ID", "wf-1234")
            .env("ARGO_POD_UID", "pod-uid");
        command
    }

    fn task_result(server: &TestKube) -> Option<Value> {
        server.get("workflowtaskresults", NS, "wf-1234")
    }

    #[test]
    fn v4_a_wait_that_cannot_start_still_completes_its_task_result() {
        let server = server();
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let ns = PodNamespace::start().unwrap();
        let template = step(&ns, root, "v4", None);
        // v4 pods run the emissary runtime, which needs the pod's /var/run/argo; this root has
        // none, so wait fails at once and must still tell the controller, or it would wait for
        // the outputs forever.
        let output = api_wait(&ns, root, &server, &template)
            .env("ARGO_WORKFLOW_UID", "wf-uid")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(64), "{stderr}");
        assert!(stderr.contains("var/run/argo"), "{stderr}");
        let result = task_result(&server).unwrap();
        let labels = &result["metadata"]["labels"];
        assert_eq!(
            labels["workflows.argoproj.io/report-outputs-completed"],
            "true"
        );
        assert_eq!(labels["workflows.argoproj.io/workflow"], "wf");
        assert_eq!(result["metadata"]["ownerReferences"][0]["uid"], "wf-uid");
        assert_eq!(result["outputs"]["parameters"][0]["name"], "p");
        assert!(!root.join("report.json").exists());
    }

    #[test]
    fn v3_survives_500s_and_falls_back_to_the_pod_annotation_on_403() {
        let server = server();
        server.inject(Fault::status(500).method("PATCH").times(2));
        server.inject(Fault::status(403).path_contains("/workflowtaskresults"));
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let ns = PodNamespace::start().unwrap();
        let template = step(&ns, root, "v3", None);
        let output = api_wait(&ns, root, &server, &template).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        let pod = server.get("pods", NS, "pod-1").unwrap();
        let outputs: Value = serde_json::from_str(
            pod["metadata"]["annotations"]["workflows.argoproj.io/outputs"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(outputs["parameters"][0]["value"], "v3");
        assert!(
            stderr.contains("falling back to legacy/insecure pod patch"),
            "{stderr}"
        );
        let statuses: Vec<u16> = server
            .requests()
            .iter()
            .filter(|r| r.method == "PATCH")
            .map(|r| r.status)
            .collect();
        assert_eq!(statuses, [500, 500, 200]);
    }

    #[test]
    fn v2_reports_outputs_and_the_error_as_annotations() {
        let server = server();
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let ns = PodNamespace::start().unwrap();
        let mut template = step(&ns, root, "v2", None);
        // A second parameter with no file and no default: the step's error, for node-message.
        template["outputs"]["parameters"]
            .as_array_mut()
            .unwrap()
            .push(json!({"name": "missing", "valueFrom": {"path": "/nonexistent/q"}}));
        let annotations = v2_annotations(root, &template, None);
        let output = api_wait(&ns, root, &server, &template)
            .env_remove("ARGO_TEMPLATE")
            .arg("--pod-annotations")
            .arg(&annotations)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        let pod = server.get("pods", NS, "pod-1").unwrap();
        let annotations = &pod["metadata"]["annotations"];
        let outputs: Value = serde_json::from_str(
            annotations["workflows.argoproj.io/outputs"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(outputs["parameters"][0]["value"], "v2");
        let message = annotations["workflows.argoproj.io/node-message"]
            .as_str()
            .unwrap();
        assert!(
            message.contains("failed to save output parameter 'missing'"),
            "{message}"
        );
    }

    /// A v2 pod's downward-API file: the template and, when given, the execution control.
    fn v2_annotations(
        root: &Path,
        template: &Value,
        execution: Option<&Value>,
    ) -> std::path::PathBuf {
        let path = root.join("annotations");
        std::fs::write(&path, annotations_text(template, execution)).unwrap();
        path
    }

    fn annotations_text(template: &Value, execution: Option<&Value>) -> String {
        let quote = |v: &Value| serde_json::to_string(&v.to_string()).unwrap();
        let mut text = String::new();
        if let Some(execution) = execution {
            text.push_str(&format!(
                "workflows.argoproj.io/execution={}\n",
                quote(execution)
            ));
        }
        text.push_str(&format!(
            "workflows.argoproj.io/template={}\n",
            quote(template)
        ));
        text
    }

    /// Writes `annotations` into a downward-API volume at `dir` as kubelet's atomic writer does:
    /// a new timestamped directory, a `..data_tmp` symlink to it renamed over `..data`, the
    /// visible file a symlink through `..data`, the old directory removed. Returns the file.
    fn kubelet_writes(dir: &Path, text: &str) -> std::path::PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let old = std::fs::read_link(dir.join("..data")).ok();
        let stamp = format!(
            "..{}",
            jiff::Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S.%f")
        );
        std::fs::create_dir(dir.join(&stamp)).unwrap();
        std::fs::write(dir.join(&stamp).join("annotations"), text).unwrap();
        std::os::unix::fs::symlink(&stamp, dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        let visible = dir.join("annotations");
        if old.is_none() {
            std::os::unix::fs::symlink("..data/annotations", &visible).unwrap();
        }
        if let Some(old) = old {
            std::fs::remove_dir_all(dir.join(old)).unwrap();
        }
        visible
    }

    /// How the controller changes the execution control once wait runs.
    enum Change {
        /// Argo 2: rewrite the file, then SIGUSR2 to wait.
        Signal,
        /// Kubelet updates the downward-API volume; nobody signals wait.
        Kubelet,
    }

    /// A v2 step whose main sleeps until killed; wait's node-message when it is stopped.
    fn v2_stopped(execution: &Value, then: Option<(&Value, Change)>) -> String {
        let server = server();
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let ns = PodNamespace::start().unwrap();
        let marker = format!("sleep 5{}", std::process::id() % 1000);
        start_container(&ns, &root.join("state"), "main", &format!("exec {marker}"));
        let template = json!({"name": "step", "container": {"image": "alpine"}});
        let volume = root.join("podmetadata");
        let annotations = match &then {
            Some((_, Change::Kubelet)) => {
                kubelet_writes(&volume, &annotations_text(&template, Some(execution)))
            }
            _ => v2_annotations(root, &template, Some(execution)),
        };
        let mut wait = api_wait(&ns, root, &server, &template)
            .env_remove("ARGO_TEMPLATE")
            .arg("--pod-annotations")
            .arg(&annotations)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        if let Some((then, change)) = then {
            // Once wait waits for main, the controller changes the annotation.
            let stderr = wait.stderr.take().unwrap();
            let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stderr));
            lines
                .find(|l| l.as_ref().unwrap().contains("Waiting for main containers"))
                .unwrap()
                .unwrap();
            std::thread::spawn(move || lines.for_each(drop));
            match change {
                Change::Signal => {
                    // Rewritten through a descriptor that stays open until wait is signalled:
                    // no close-after-write for wait's inotify watch to see, only the signal.
                    let mut file = std::fs::OpenOptions::new()
                        .write(true)
                        .truncate(true)
                        .open(&annotations)
                        .unwrap();
                    std::io::Write::write_all(
                        &mut file,
                        annotations_text(&template, Some(then)).as_bytes(),
                    )
                    .unwrap();
                    let pattern = format!("wait --pod-root {}", root.display());
                    let signalled = Command::new("pkill")
                        .args(["-USR2", "-n", "-f", &pattern])
                        .status()
                        .unwrap();
                    assert!(signalled.success());
                    assert_eq!(wait.wait().unwrap().code(), Some(1));
                    drop(file);
                }
                Change::Kubelet => {
                    kubelet_writes(&volume, &annotations_text(&template, Some(then)));
                }
            }
        }
        let status = wait.wait().unwrap();
        assert_eq!(status.code(), Some(1));
        assert!(!alive(&marker), "main outlived wait");
        let pod = server.get("pods", NS, "pod-1").unwrap();
        pod["metadata"]["annotations"]["workflows.argoproj.io/node-message"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    #[test]
    fn v2_deadline_comes_from_the_execution_annotation() {
        let deadline = jiff::Timestamp::now() + jiff::SignedDuration::from_millis(500);
        let message = v2_stopped(&json!({"deadline": deadline.to_string()}), None);
        assert_eq!(message, "Step exceeded its deadline");
    }

    #[test]
    fn v2_sigusr2_rereads_the_execution_annotation_and_stops_main() {
        let far = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
        let message = v2_stopped(
            &json!({"deadline": far.to_string()}),
            Some((&json!({"deadline": "0001-01-01T00:00:00Z"}), Change::Signal)),
        );
        assert_eq!(message, "Step terminated");
    }

    #[test]
    fn v2_kubelet_updating_the_annotations_volume_brings_a_new_deadline_without_a_signal() {
        let far = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
        let past = jiff::Timestamp::now() - jiff::SignedDuration::from_mins(1);
        let message = v2_stopped(
            &json!({"deadline": far.to_string()}),
            Some((&json!({"deadline": past.to_string()}), Change::Kubelet)),
        );
        assert_eq!(message, "Step exceeded its deadline");
    }

    #[test]
    fn a_denied_permission_fails_wait_at_start_naming_verb_and_resource() {
        let server = server();
        // v3 may fall back to the pod annotation: denied only when both ways are.
        server.deny("create", "workflowtaskresults");
        server.deny("patch", "pods");
        let root = tempfile::tempdir().unwrap();
        let root = root.path();
        let ns = PodNamespace::start().unwrap();
        let template = step(&ns, root, "x", None);
        let output = api_wait(&ns, root, &server, &template).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(64), "{stderr}");
        assert!(
            stderr.contains("the service account may not create workflowtaskresults.argoproj.io in namespace argo"),
            "{stderr}"
        );
        let termination = std::fs::read_to_string(root.join("termination-log")).unwrap();
        assert!(
            termination.contains("may not create workflowtaskresults"),
            "{termination}"
        );
        assert!(task_result(&server).is_none());
        let writes = server
            .requests()
            .into_iter()
            .filter(|r| r.method != "GET" && !r.path.contains("selfsubjectaccessreviews"))
            .count();
        assert_eq!(
            writes, 0,
            "nothing was reported: wait stopped before main ran"
        );
    }
}
