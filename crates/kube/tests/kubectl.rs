//! The real `kubectl` against the fake API server: proof that testkube speaks the protocol a
//! real client expects (discovery, get, list, strategic-merge patch), and a view of what the
//! reporter wrote as a cluster user would see it. Needs kubectl (`tests/setup` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use argoexec_config::KubeOverrides;
use argoexec_kube::{Backoff, KubeReporter, Names, connect};
use argoexec_report::StepReport;
use argoexec_template::{Outputs, Protocol};
use argoexec_testkube::TestKube;
use serde_json::json;

fn kubectl(config: &Path, args: &[&str]) -> String {
    let output = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(config)
        .args(args)
        .output()
        .expect("kubectl is not installed: run tests/setup");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "kubectl {args:?}: {stderr}");
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn kubectl_sees_the_annotations_the_reporter_wrote() {
    let server = TestKube::start().unwrap();
    server.apply(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "pod-1", "namespace": "argo"},
        "spec": {"containers": [{"name": "main", "image": "alpine"}]}}));
    let dir = tempfile::tempdir().unwrap();
    let config = server
        .write_kubeconfig(&dir.path().join("config"), "argo")
        .unwrap();

    let kube = connect(&KubeOverrides {
        kubeconfig: Some(config.clone()),
        ..KubeOverrides::default()
    })
    .await
    .unwrap();
    let names = Names {
        pod: "pod-1".into(),
        ..Names::default()
    };
    let backoff = Backoff::default().within(Duration::from_secs(5));
    let reporter = KubeReporter::new(kube, Protocol::V2, names, backoff).unwrap();
    let report = StepReport {
        outputs: Outputs {
            result: Some("hello".into()),
            ..Outputs::default()
        },
        message: None,
        progress: None,
    };
    reporter.report_outputs(&report).await.unwrap();

    let names = kubectl(&config, &["get", "pods", "-o", "name"]);
    assert_eq!(names.trim(), "pod/pod-1");
    let outputs = kubectl(
        &config,
        &[
            "get",
            "pod",
            "pod-1",
            "-o",
            r"jsonpath={.metadata.annotations.workflows\.argoproj\.io/outputs}",
        ],
    );
    assert_eq!(outputs, r#"{"result":"hello"}"#);
    // kubectl's own write: a strategic-merge patch of the annotations.
    kubectl(&config, &["annotate", "pod", "pod-1", "checked=yes"]);
    let pod = server.get("pods", "argo", "pod-1").unwrap();
    assert_eq!(pod["metadata"]["annotations"]["checked"], "yes");
    assert_eq!(
        pod["metadata"]["annotations"]["workflows.argoproj.io/outputs"],
        r#"{"result":"hello"}"#
    );
    let version = kubectl(&config, &["version", "-o", "json"]);
    assert!(version.contains("v1.37.0-testkube"), "{version}");
}
