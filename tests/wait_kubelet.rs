//! Black-box test of `argoexec wait` with the `kubelet` runtime: the real binary against
//! testkube playing the node's kubelet over HTTPS (its CA and the bearer token in the pod's
//! service-account directory under `--pod-root`). The test plays the container runtime: main and
//! a sidecar are real processes whose exits it writes into the pod's status, their output is
//! their log, and exec'd `kill -N 1` signals them. Main's output parameter is on a volume, read
//! through wait's own mount (`/mainctrfs`), as the kubelet runtime cannot read image files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use argoexec_testkube::{LogSource, Pid1Exec, ServerOptions, TestKube};
use serde_json::json;

const NS: &str = "argo";
const POD: &str = "pod-1";
const TOKEN: &str = "sa-token";

/// Starts `script` as container `name`, its output its log: running in the pod's status, then
/// terminated with its exit code (128 + signal) once it ends.
fn start(
    server: &Arc<TestKube>,
    pids: &Pid1Exec,
    dir: &Path,
    name: &str,
    script: &str,
) -> std::thread::JoinHandle<i32> {
    let log = dir.join(format!("{name}.log"));
    server.set_log(NS, POD, name, LogSource::File(log.clone()));
    let child = std::process::Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    pids.set(name, child.id());
    server.adopt(NS, POD, name, child)
}

/// The pod's service account under the pod root, as kubelet mounts it: token, CA, namespace.
fn mount_service_account(root: &Path, server: &TestKube) {
    let account = root.join("var/run/secrets/kubernetes.io/serviceaccount");
    std::fs::create_dir_all(&account).unwrap();
    std::fs::write(account.join("token"), TOKEN).unwrap();
    std::fs::write(account.join("ca.crt"), server.ca_pem().unwrap()).unwrap();
    std::fs::write(account.join("namespace"), NS).unwrap();
}

#[test]
fn wait_with_kubelet_saves_outputs_from_a_volume_and_kills_the_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let server =
        Arc::new(TestKube::start_with(ServerOptions::default().tls().token(TOKEN)).unwrap());
    server.apply(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": POD, "namespace": NS},
        "spec": {"restartPolicy": "Never",
                 "containers": [{"name": "wait"}, {"name": "main"}, {"name": "sidecar"}]}}));
    server.set_container_state(NS, POD, "wait", json!({"running": {}}));
    let pids = Pid1Exec::default();
    server.set_exec(pids.clone());
    mount_service_account(dir, &server);
    // The volume main writes to, mirrored in wait at /mainctrfs/work.
    let volume = dir.join("mainctrfs/work");
    std::fs::create_dir_all(&volume).unwrap();

    let ready = dir.join("sidecar-ready");
    let sidecar = start(
        &server,
        &pids,
        dir,
        "sidecar",
        &format!(
            "trap '' TERM; touch {}; while :; do sleep 0.05; done",
            ready.display()
        ),
    );
    // A TERM that came before the trap would end it.
    while !ready.exists() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let main = start(
        &server,
        &pids,
        dir,
        "main",
        &format!(
            "sleep 0.3; echo 42 > {}/param && echo hello",
            volume.display()
        ),
    );
    let template = json!({
        "name": "step",
        "script": {"image": "alpine", "source": "echo hello",
                   "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
        "outputs": {
            "parameters": [{"name": "p", "valueFrom": {"path": "/work/param"}}],
        },
    });
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_argoexec"))
        .args(["wait", "--pod-root"])
        .arg(dir)
        .arg("--termination-log")
        .arg(dir.join("termination-log"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ARGO_POD_NAME", POD)
        .env("ARGO_WORKFLOW_NAME", "wf")
        .env("ARGO_CONTAINER_NAME", "wait")
        .env("ARGO_CONTAINER_RUNTIME_EXECUTOR", "kubelet")
        .env("ARGO_KUBELET_HOST", "127.0.0.1")
        .env("ARGO_KUBELET_PORT", server.port().to_string())
        .env("ARGO_TEMPLATE", template.to_string())
        .env("ARGO_TERMINATION_GRACE_PERIOD_SECONDS", "1")
        .env("ARGO_INCLUDE_SCRIPT_OUTPUT", "true")
        .env("ARGOEXEC_REPORT_FILE", dir.join("report.json"))
        .env("ARGOEXEC_LOCAL_REPOSITORY", dir.join("repo"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(main.join().unwrap(), 0);
    // The sidecar ignored SIGTERM: wait escalated to SIGKILL after the 1 s grace.
    assert_eq!(sidecar.join().unwrap(), 128 + 9, "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let outputs = &report["outputs"];
    assert_eq!(outputs["result"], "hello", "{report:#}");
    assert_eq!(outputs["parameters"][0]["value"], "42");
    // Everything went to the kubelet's endpoints, with the token (no 401), over HTTPS.
    let requests = server.requests();
    assert!(
        requests.iter().all(|r| matches!(r.status, 200 | 101)
            && (r.path == "/pods"
                || r.path.starts_with("/containerLogs/")
                || r.path.starts_with("/exec/"))),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.path == "/exec/argo/pod-1/sidecar")
    );
}

#[test]
fn wait_with_kubelet_says_base_image_outputs_need_a_volume() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let server =
        Arc::new(TestKube::start_with(ServerOptions::default().tls().token(TOKEN)).unwrap());
    server.apply(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": POD, "namespace": NS},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "wait"}, {"name": "main"}]}}));
    server.set_container_state(NS, POD, "main", json!({"terminated": {"exitCode": 0}}));
    server.set_log(NS, POD, "main", LogSource::Bytes("".into()));
    mount_service_account(dir, &server);
    let template = json!({
        "name": "step",
        "container": {"image": "alpine"},
        "outputs": {"parameters": [{"name": "p", "valueFrom": {"path": "/tmp/param"}}]},
    });
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_argoexec"))
        .args(["wait", "--pod-root"])
        .arg(dir)
        .args(["--namespace", NS])
        .env_clear()
        .env("ARGO_POD_NAME", POD)
        .env("ARGO_CONTAINER_NAME", "wait")
        .env("ARGO_CONTAINER_RUNTIME_EXECUTOR", "kubelet")
        .env("ARGO_KUBELET_HOST", "127.0.0.1")
        .env("ARGO_KUBELET_PORT", server.port().to_string())
        .env("ARGO_TEMPLATE", template.to_string())
        .env("ARGOEXEC_REPORT_FILE", dir.join("report.json"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let message = report["message"].as_str().unwrap();
    assert!(
        message.contains("base-image outputs are not available with the kubelet runtime"),
        "{message}"
    );
    assert!(message.contains("volume"), "{message}");
}
