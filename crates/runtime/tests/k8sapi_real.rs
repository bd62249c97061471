//! The parts of the `k8sapi` runtime a real kube-apiserver can answer without a kubelet (none runs
//! in `tests/oracle/cluster`): the pod's containers (GET) and its container states (the watch),
//! with the service account bound by `manifests/rbac/k8sapi.yaml`, the admin playing kubelet by
//! patching the pod's status. `pods/exec` and `pods/log` are proxied to a kubelet, so reading
//! files, killing and logs stay with `tests/k8sapi.rs` and its fake server.
//!
//! Without the oracle's programs every test fails naming the build; `ARGOEXEC_SKIP_ORACLE=1`
//! (never under CI) skips them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use argoexec_kube::{Backoff, Kube};
use argoexec_runtime::{ContainerRuntime as _, K8sApi};
use argoexec_testsupport::oracle::{Oracle, container_state};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};

const POD: &str = "pod-1";

/// A namespace with the k8sapi Role bound to its service account and the pod `pod-1` (Pending:
/// no scheduler, no kubelet); the runtime as that service account, once the Role is in force.
async fn setup(oracle: &Oracle, prefix: &str) -> (String, K8sApi, tempfile::TempDir) {
    let ns = oracle.namespace(prefix);
    oracle.apply_rbac_file(&ns, "k8sapi.yaml");
    oracle.create_pod(&ns, POD, &["wait", "main", "sidecar"], &json!({}));
    let dir = tempfile::tempdir().unwrap();
    let token = oracle.service_account_token(&ns, "default");
    let path = oracle.kubeconfig_for(dir.path(), &token, &ns);
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::read_from(&path).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let kube = Kube::new(kube::Client::try_from(config).unwrap(), &ns);
    let runtime = K8sApi::new(&kube, POD, Backoff::default());
    // The RoleBinding reaches the authorizer a moment after it is written.
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Err(e) = runtime.containers().await {
        assert!(Instant::now() < deadline, "the Role is not in force: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (ns, runtime, dir)
}

/// Patches the pod's status: main in `state`.
fn set_status(oracle: &Oracle, ns: &str, status: Value) {
    oracle.patch_pod_status(ns, POD, &status);
}

fn main_state(state: Value) -> Value {
    container_state("main", state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_and_exit_codes_come_from_the_real_pod() {
    let Some(oracle) = Oracle::shared() else {
        return;
    };
    let (ns, runtime, _dir) = setup(oracle, "k8sapi").await;
    assert_eq!(
        runtime.containers().await.unwrap(),
        ["wait", "main", "sidecar"]
    );
    let exited = tokio::spawn({
        let runtime = runtime.clone();
        async move {
            runtime.wait_started("main").await.unwrap();
            runtime.wait_exited("main").await.unwrap()
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!exited.is_finished(), "main has no state yet");
    set_status(oracle, &ns, main_state(json!({"running": {}})));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!exited.is_finished(), "main is running");
    let terminated = json!({"terminated": {"exitCode": 42, "reason": "Error"}});
    set_status(oracle, &ns, main_state(terminated));
    let status = tokio::time::timeout(Duration::from_secs(30), exited)
        .await
        .expect("the exit within 30 s of the status change")
        .unwrap();
    assert_eq!(status.code, Some(42));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_pod_past_its_deadline_counts_as_exited() {
    let Some(oracle) = Oracle::shared() else {
        return;
    };
    let (ns, runtime, _dir) = setup(oracle, "deadline").await;
    let mut status = main_state(json!({"running": {}}));
    status["reason"] = json!("DeadlineExceeded");
    set_status(oracle, &ns, status);
    let exited = tokio::time::timeout(Duration::from_secs(30), runtime.wait_exited("main"))
        .await
        .expect("within 30 s")
        .unwrap();
    assert_eq!(exited.code, None);
}
