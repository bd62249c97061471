//! The Kubernetes side of the executor against a fake API server that speaks the real protocol
//! (`argoexec-testkube`): reporters of each protocol, retries under injected faults, access
//! checks, the pod watch across dropped streams and expired resourceVersions, secrets and config
//! maps (also as HDFS reads its Kerberos config map).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use argoexec_config::KubeOverrides;
use argoexec_kube::{
    AnySecrets, ApiSecrets, Backoff, KubeReporter, Names, PodWatch, check_access, connect,
};
use argoexec_report::StepReport;
use argoexec_storage::{AnyDriver, Secrets as _};
use argoexec_template::{Outputs, Parameter, Protocol};
use argoexec_testkube::{Fault, TestKube};
use serde_json::{Value, json};

mod common;

use common::{NS, client};

fn fast() -> Backoff {
    Backoff {
        first: Duration::from_millis(10),
        cap: Duration::from_millis(100),
        budget: Duration::from_secs(10),
        ..Backoff::default()
    }
}

fn server_with_pod() -> TestKube {
    let kube = TestKube::start().unwrap();
    kube.apply(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "pod-1", "namespace": NS, "uid": "pod-uid-1",
                     "annotations": {"kept": "yes"}},
        "spec": {"containers": [{"name": "wait"}, {"name": "main"}]}}));
    kube
}

fn names() -> Names {
    Names {
        pod: "pod-1".into(),
        pod_uid: Some("pod-uid-1".into()),
        node_id: Some("wf-123".into()),
        workflow: Some("wf".into()),
        workflow_uid: Some("wf-uid".into()),
        instance_id: None,
    }
}

fn report() -> StepReport {
    let parameter: Parameter = serde_json::from_value(json!({"name": "p", "value": "42"})).unwrap();
    StepReport {
        outputs: Outputs {
            parameters: Some(vec![parameter]),
            result: Some("hello".into()),
            ..Outputs::default()
        },
        message: None,
        progress: None,
    }
}

fn annotation(server: &TestKube, key: &str) -> Option<String> {
    server.get("pods", NS, "pod-1").unwrap()["metadata"]["annotations"][key]
        .as_str()
        .map(str::to_owned)
}

fn verbs(server: &TestKube) -> Vec<String> {
    server
        .requests()
        .into_iter()
        .filter(|r| r.verb != "discovery")
        .map(|r| format!("{} {} {}", r.verb, r.path, r.status))
        .collect()
}

#[tokio::test]
async fn v2_reports_outputs_and_the_error_as_pod_annotations() {
    let server = server_with_pod();
    let kube = client(&server).await;
    let reporter = KubeReporter::new(kube, Protocol::V2, names(), fast()).unwrap();
    let mut step = report();
    step.message = Some("failed to save artifact 'x'".into());
    reporter.report_outputs(&step).await.unwrap();
    let outputs: Value =
        serde_json::from_str(&annotation(&server, "workflows.argoproj.io/outputs").unwrap())
            .unwrap();
    assert_eq!(
        outputs,
        json!({"parameters": [{"name": "p", "value": "42"}], "result": "hello"})
    );
    assert_eq!(
        annotation(&server, "workflows.argoproj.io/node-message").as_deref(),
        Some("failed to save artifact 'x'")
    );
    assert_eq!(
        annotation(&server, "kept").as_deref(),
        Some("yes"),
        "a merge patch keeps other annotations"
    );
    assert_eq!(
        verbs(&server),
        ["patch /api/v1/namespaces/argo/pods/pod-1 200"]
    );
}

#[tokio::test]
async fn v3_creates_a_task_result_owned_by_the_pod_then_patches_it() {
    let server = server_with_pod();
    let reporter = KubeReporter::new(client(&server).await, Protocol::V3, names(), fast()).unwrap();
    reporter.report_progress("1/3").await.unwrap();
    reporter.report_outputs(&report()).await.unwrap();
    let result = server.get("workflowtaskresults", NS, "wf-123").unwrap();
    assert_eq!(result["outputs"]["result"], "hello");
    assert_eq!(result["progress"], "1/3");
    assert_eq!(
        result["metadata"]["labels"]["workflows.argoproj.io/workflow"],
        "wf"
    );
    // The one owner is the pod, by a kind the garbage collector resolves (not Argo 3.3's "pods").
    assert_eq!(
        result["metadata"]["ownerReferences"],
        json!([{"apiVersion": "v1", "kind": "Pod", "name": "pod-1", "uid": "pod-uid-1"}])
    );
    assert!(annotation(&server, "workflows.argoproj.io/outputs").is_none());
    assert_eq!(
        verbs(&server),
        [
            "create /apis/argoproj.io/v1alpha1/namespaces/argo/workflowtaskresults 201",
            "patch /apis/argoproj.io/v1alpha1/namespaces/argo/workflowtaskresults/wf-123 200",
        ]
    );
}

#[tokio::test]
async fn v3_falls_back_to_the_pod_annotation_when_task_results_are_forbidden() {
    let server = server_with_pod();
    server.inject(Fault::status(403).path_contains("/workflowtaskresults"));
    let reporter = KubeReporter::new(client(&server).await, Protocol::V3, names(), fast()).unwrap();
    reporter.report_outputs(&report()).await.unwrap();
    let outputs: Value =
        serde_json::from_str(&annotation(&server, "workflows.argoproj.io/outputs").unwrap())
            .unwrap();
    assert_eq!(outputs["result"], "hello");
    assert!(server.get("workflowtaskresults", NS, "wf-123").is_none());
    // A 403 is not retried: one refused create, one patch.
    assert_eq!(verbs(&server).len(), 2, "{:?}", verbs(&server));
}

#[tokio::test]
async fn v4_task_result_is_owned_by_the_workflow_and_completed_false_then_true() {
    let server = server_with_pod();
    let reporter = KubeReporter::new(client(&server).await, Protocol::V4, names(), fast()).unwrap();
    reporter.start().await.unwrap();
    let result = server.get("workflowtaskresults", NS, "wf-123").unwrap();
    let labels = &result["metadata"]["labels"];
    assert_eq!(
        labels["workflows.argoproj.io/report-outputs-completed"],
        "false"
    );
    assert_eq!(labels["workflows.argoproj.io/workflow"], "wf");
    assert_eq!(
        result["metadata"]["ownerReferences"],
        json!([{"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "name": "wf", "uid": "wf-uid"}])
    );
    assert!(result.get("outputs").is_none());

    reporter.report_outputs(&report()).await.unwrap();
    let result = server.get("workflowtaskresults", NS, "wf-123").unwrap();
    assert_eq!(
        result["metadata"]["labels"]["workflows.argoproj.io/report-outputs-completed"],
        "true"
    );
    assert_eq!(result["outputs"]["parameters"][0]["value"], "42");
    assert_eq!(
        verbs(&server).len(),
        3,
        "create, patch outputs, patch label: {:?}",
        verbs(&server)
    );
}

#[tokio::test]
async fn v4_without_the_workflow_uid_is_refused_by_name() {
    let server = server_with_pod();
    let mut names = names();
    names.workflow_uid = None;
    let err = KubeReporter::new(client(&server).await, Protocol::V4, names, fast()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unable to report outputs: ARGO_WORKFLOW_UID is not set"
    );
}

#[tokio::test]
async fn transient_failures_500_429_and_patch_conflicts_are_retried() {
    let server = server_with_pod();
    server.inject(Fault::status(500).method("POST").times(2));
    server.inject(Fault::status(429).method("POST").times(1));
    server.inject(Fault::status(409).method("PATCH").times(2));
    let reporter = KubeReporter::new(client(&server).await, Protocol::V4, names(), fast()).unwrap();
    reporter.start().await.unwrap();
    reporter.report_outputs(&report()).await.unwrap();
    let result = server.get("workflowtaskresults", NS, "wf-123").unwrap();
    assert_eq!(
        result["metadata"]["labels"]["workflows.argoproj.io/report-outputs-completed"],
        "true"
    );
    let statuses: Vec<u16> = server.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 429, 201, 409, 409, 200, 200]);
}

#[tokio::test]
async fn a_non_transient_failure_is_not_retried_and_names_the_call() {
    let server = server_with_pod();
    let mut names = names();
    names.pod = "gone".into();
    let reporter = KubeReporter::new(client(&server).await, Protocol::V2, names, fast()).unwrap();
    let err = reporter.report_outputs(&report()).await.unwrap_err();
    let text = argoexec_storage::chain(&err);
    assert!(
        text.starts_with("patch pod argo/gone: ApiError: pods \"gone\" not found"),
        "{text}"
    );
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn retries_stop_when_the_budget_is_spent() {
    let server = server_with_pod();
    server.inject(Fault::status(503));
    let backoff = fast().within(Duration::from_millis(300));
    let reporter =
        KubeReporter::new(client(&server).await, Protocol::V2, names(), backoff).unwrap();
    let err = reporter.report_outputs(&report()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("patch pod argo/pod-1 (gave up after "),
        "{text}"
    );
    assert!(server.requests().len() > 1);
}

#[tokio::test]
async fn access_check_names_the_missing_verb_and_resource() {
    let server = server_with_pod();
    let kube = client(&server).await;
    check_access(&kube, Protocol::V4).await.unwrap();
    server.deny("patch", "workflowtaskresults");
    let err = check_access(&kube, Protocol::V4).await.unwrap_err();
    assert!(
        err.to_string().starts_with(
            "the service account may not patch workflowtaskresults.argoproj.io in namespace argo (testkube denies patch on workflowtaskresults)"
        ),
        "{err}"
    );
    // v3 can fall back to the pod annotation: denied only when that is denied too.
    check_access(&kube, Protocol::V3).await.unwrap();
    server.deny("patch", "pods");
    let err = check_access(&kube, Protocol::V3).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("may not patch workflowtaskresults.argoproj.io"),
        "{err}"
    );
    let err = check_access(&kube, Protocol::V2).await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("the service account may not patch pods in namespace argo"),
        "{err}"
    );
}

#[tokio::test]
async fn the_pod_watch_survives_dropped_streams_and_expired_versions() {
    let server = server_with_pod();
    server.set_bookmark_interval(Duration::from_millis(50));
    let kube = client(&server).await;
    let watch = PodWatch::new(&kube, "pod-1", fast());
    assert_eq!(
        watch.get().await.unwrap().metadata.uid.as_deref(),
        Some("pod-uid-1")
    );
    server.drop_watches(2);
    server.expire_watches(1);
    let waiter = tokio::spawn(async move { watch.wait_terminated(&["main".to_owned()]).await });
    server.set_container_state(NS, "pod-1", "main", json!({"running": {}}));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiter.is_finished(), "main is still running");
    server.set_container_state(NS, "pod-1", "main", json!({"terminated": {"exitCode": 3}}));
    let pod = tokio::time::timeout(Duration::from_secs(30), waiter)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let state = &pod.status.unwrap().container_statuses.unwrap()[0];
    assert_eq!(
        state
            .state
            .as_ref()
            .unwrap()
            .terminated
            .as_ref()
            .unwrap()
            .exit_code,
        3
    );
    let requests = server.requests();
    let watches = requests.iter().filter(|r| r.verb == "watch").count();
    assert!(watches >= 2, "watched again after the drops: {requests:?}");
    assert!(
        requests.iter().filter(|r| r.verb == "get").count() == 1,
        "no polling: {requests:?}"
    );
}

#[tokio::test]
async fn secrets_come_from_the_api() {
    let server = server_with_pod();
    server.apply(json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "s3", "namespace": NS}, "data": {"accessKey": "QUtJQQ=="}}));
    let secrets = AnySecrets::Api(Box::new(ApiSecrets::new(&client(&server).await, fast())));
    assert_eq!(secrets.get("s3", "accessKey").await.unwrap(), b"AKIA");
    let err = secrets.get("s3", "secretKey").await.unwrap_err();
    assert!(
        argoexec_storage::chain(&err).contains("secret argo/s3 has no key \"secretKey\""),
        "{}",
        argoexec_storage::chain(&err)
    );
    let err = secrets.get("nope", "k").await.unwrap_err();
    assert!(
        argoexec_storage::chain(&err).contains("get secret argo/nope"),
        "{}",
        argoexec_storage::chain(&err)
    );
}

#[tokio::test]
async fn config_maps_come_from_the_api_and_name_what_is_missing() {
    let server = server_with_pod();
    server.apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "krb", "namespace": NS}, "data": {"krb5.conf": "[libdefaults]\n"}}));
    let kube = client(&server).await;
    let mounted = argoexec_storage::MountedSecrets::new("/nonexistent");
    // v3 and v4 pods: secrets from files, config maps still through the API.
    let secrets =
        AnySecrets::MountedWithApi(mounted.clone(), Box::new(ApiSecrets::new(&kube, fast())));
    assert_eq!(
        secrets.config_map("krb", "krb5.conf").await.unwrap(),
        "[libdefaults]\n"
    );
    let chain_of = |e: &argoexec_storage::Error| argoexec_storage::chain(e);
    let err = secrets.config_map("krb", "other").await.unwrap_err();
    assert!(
        chain_of(&err)
            .contains("read config map krb/other: config map argo/krb has no key \"other\""),
        "{}",
        chain_of(&err)
    );
    let err = secrets.config_map("absent", "krb5.conf").await.unwrap_err();
    assert!(
        chain_of(&err).contains("read config map absent/krb5.conf: get config map argo/absent"),
        "{}",
        chain_of(&err)
    );
    server.inject(Fault::status(403).path_contains("/configmaps/krb"));
    let err = secrets.config_map("krb", "krb5.conf").await.unwrap_err();
    let argoexec_storage::Error::ConfigMap { source, .. } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(
        source.kind(),
        std::io::ErrorKind::PermissionDenied,
        "{}",
        chain_of(&err)
    );
    assert!(
        chain_of(&err).contains("get config map argo/krb"),
        "{}",
        chain_of(&err)
    );
    // No client: the error says config maps need the API.
    let err = AnySecrets::Mounted(mounted)
        .config_map("krb", "krb5.conf")
        .await
        .unwrap_err();
    assert!(
        chain_of(&err).contains(
            "read config map krb/krb5.conf: config maps are read through the Kubernetes API"
        ),
        "{}",
        chain_of(&err)
    );
}

#[tokio::test]
async fn hdfs_reads_its_kerberos_config_map_through_the_api_then_refuses_kerberos() {
    let server = server_with_pod();
    server.apply(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "krb", "namespace": NS}, "data": {"krb5.conf": "[libdefaults]\n"}}));
    let secrets = AnySecrets::Api(Box::new(ApiSecrets::new(&client(&server).await, fast())));
    let hdfs = |config_map: &str| -> argoexec_template::ArtifactLocation {
        serde_json::from_value(json!({"hdfs": {
            "addresses": ["nn:8020"], "path": "/a",
            "krbCCacheSecret": {"name": "k", "key": "ccache"},
            "krbServicePrincipalName": "hdfs/nn",
            "krbConfigConfigMap": {"name": config_map, "key": "krb5.conf"},
        }}))
        .unwrap()
    };
    let options = argoexec_storage::StorageOptions::default();
    let refused = |result: Result<_, argoexec_storage::Error>| match result {
        Ok(_) => panic!("accepted"),
        Err(e) => argoexec_storage::chain(&e),
    };
    let message = refused(AnyDriver::for_location(&hdfs("absent"), &secrets, &options).await);
    assert!(
        message.contains("read config map absent/krb5.conf: get config map argo/absent"),
        "{message}"
    );
    let message = refused(AnyDriver::for_location(&hdfs("krb"), &secrets, &options).await);
    assert!(
        message.contains("Kerberos (krbCCacheSecret, krbKeytabSecret) is not supported in this build; use hdfsUser"),
        "{message}"
    );
    let gets: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.path.contains("/configmaps/"))
        .map(|r| format!("{} {}", r.path, r.status))
        .collect();
    assert_eq!(
        gets,
        [
            "/api/v1/namespaces/argo/configmaps/absent 404",
            "/api/v1/namespaces/argo/configmaps/krb 200"
        ]
    );
}

#[tokio::test]
async fn a_kubeconfig_file_configures_the_client() {
    let server = server_with_pod();
    let dir = tempfile::tempdir().unwrap();
    let path = server
        .write_kubeconfig(&dir.path().join("config"), NS)
        .unwrap();
    let kube = connect(&KubeOverrides {
        kubeconfig: Some(path),
        ..KubeOverrides::default()
    })
    .await
    .unwrap();
    assert_eq!(kube.namespace(), NS);
    let pod = PodWatch::new(&kube, "pod-1", fast()).get().await.unwrap();
    assert_eq!(pod.metadata.name.as_deref(), Some("pod-1"));
}

#[tokio::test]
async fn progress_is_patched_onto_the_task_result_while_main_runs() {
    let server = server_with_pod();
    let reporter = KubeReporter::new(client(&server).await, Protocol::V4, names(), fast()).unwrap();
    reporter.start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("progress");
    std::fs::write(&file, "starting\n1/3\n").unwrap();
    let monitor = argoexec_kube::monitor_progress(
        &reporter,
        file.clone(),
        Duration::from_millis(10),
        Duration::from_millis(30),
    );
    let seen = async {
        for expected in ["1/3", "2/3"] {
            while server.get("workflowtaskresults", NS, "wf-123").unwrap()["progress"] != expected {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            std::fs::write(&file, "1/3\n2/3\nnot progress\n2/3\n").unwrap();
        }
    };
    tokio::select! {
        () = seen => {}
        never = monitor => match never {},
    }
    // One create, then only patches for changes: "2/3" written twice is one patch.
    let patches = server
        .requests()
        .iter()
        .filter(|r| r.verb == "patch")
        .count();
    assert_eq!(patches, 2, "{:?}", verbs(&server));
}

#[tokio::test]
async fn testkube_serves_pod_logs_followed_until_the_container_ends() {
    use futures::{AsyncBufReadExt as _, StreamExt as _};
    use k8s_openapi::api::core::v1::Pod;
    use kube::api::{Api, LogParams};

    let server = server_with_pod();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("main.log");
    std::fs::write(&log, "one\n").unwrap();
    server.set_log(
        NS,
        "pod-1",
        "main",
        argoexec_testkube::LogSource::File(log.clone()),
    );
    server.set_container_state(NS, "pod-1", "main", json!({"running": {}}));
    let pods: Api<Pod> = Api::namespaced(client(&server).await.client().clone(), NS);
    let params = LogParams {
        container: Some("main".into()),
        follow: true,
        timestamps: true,
        ..LogParams::default()
    };
    let mut lines = pods.log_stream("pod-1", &params).await.unwrap().lines();
    let first = lines.next().await.unwrap().unwrap();
    let (stamp, text) = first.split_once(' ').unwrap();
    assert!(stamp.parse::<jiff::Timestamp>().is_ok(), "{first}");
    assert_eq!(text, "one");
    // Followed: a line written later arrives, and the stream ends once main has terminated.
    std::fs::write(&log, "one\ntwo\n").unwrap();
    let second = lines.next().await.unwrap().unwrap();
    assert!(second.ends_with(" two"), "{second}");
    server.set_container_state(NS, "pod-1", "main", json!({"terminated": {"exitCode": 0}}));
    assert!(lines.next().await.is_none());
    let whole = pods
        .logs(
            "pod-1",
            &LogParams {
                container: Some("main".into()),
                ..LogParams::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(whole, "one\ntwo\n");
}
