//! Black-box test of `argoexec wait` (v3 pod, `k8sapi` runtime) against the real kube-apiserver
//! of `tests/oracle/cluster`, as the service account bound by `manifests/rbac/k8sapi.yaml`: the
//! start-up access check, the watch of the pod until main terminates (the test plays the kubelet
//! by patching the pod's status), main's log through `pods/log`, and the script result reported
//! as a WorkflowTaskResult. No kubelet runs: the pod is on no node, so its log is empty, and
//! anything needing `pods/exec` (output files, killing sidecars) stays with `wait_k8sapi.rs`.
//!
//! Without the oracle's programs the test fails naming the build; `ARGOEXEC_SKIP_ORACLE=1`
//! (never under CI) skips it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::time::{Duration, Instant};

use argoexec_testsupport::oracle::{Oracle, container_state};
use argoexec_testsupport::waitcmd::wait_command;
use serde_json::json;

const POD: &str = "pod-1";

#[test]
fn wait_reports_to_the_real_api_server_as_the_service_account() {
    let Some(oracle) = Oracle::shared() else {
        return;
    };
    let ns = oracle.namespace("wait");
    oracle.apply_rbac_file(&ns, "k8sapi.yaml");
    let uid = oracle.create_pod(&ns, POD, &["wait", "main"], &json!({}));
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let token = oracle.service_account_token(&ns, "default");
    let kubeconfig = oracle.kubeconfig_for(dir, &token, &ns);
    let template = json!({"name": "step", "script": {"image": "alpine", "source": "echo hello"}});
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_argoexec"));
    let mut wait = wait_command(&mut command, dir, "k8sapi", &template)
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .env("ARGO_POD_UID", &uid)
        .env("ARGO_NODE_ID", "wf-123")
        .env("ARGO_TERMINATION_GRACE_PERIOD_SECONDS", "1")
        .env("ARGO_INCLUDE_SCRIPT_OUTPUT", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // wait is following the pod; main has not ended yet.
    std::thread::sleep(Duration::from_secs(2));
    assert!(wait.try_wait().unwrap().is_none(), "wait ended before main");
    let ended = Instant::now();
    let terminated = json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
    oracle.patch_pod_status(&ns, POD, &container_state("main", terminated));
    let output = wait.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    eprintln!(
        "wait ended {:.1} s after main's status changed",
        ended.elapsed().as_secs_f64()
    );
    let result = oracle.get_json(&ns, "workflowtaskresult", "wf-123");
    assert_eq!(result["outputs"], json!({"result": ""}), "{result:#}");
    assert_eq!(
        result["metadata"]["ownerReferences"][0]["uid"],
        json!(uid),
        "{result:#}"
    );
}
