//! The Kubernetes side of the executor against a real kube-apiserver (Kubernetes v1.37.2 with
//! Argo v4.0.5's CRDs, `tests/oracle/cluster`), beside the fake server of `tests/api.rs` that
//! stays for injected faults. Every call the executor makes is made with a service account's
//! token bound to the Role we ship for it (`manifests/rbac/`), so RBAC is the real authorizer's;
//! the admin only plays the controller (pods, workflows, secrets) and reads back with kubectl.
//!
//! Task results are validated by Argo's own WorkflowTaskResult schema. Argo's "minimal" CRDs,
//! the cluster's default, slim the Workflow kinds only: their WorkflowTaskResult is the full
//! schema, byte for byte. So a field of ours that Argo does not know would be pruned (the
//! read-back comparisons below catch that) and a value it forbids refused (422, shown below).
//!
//! Without the oracle's programs every test fails naming the build; `ARGOEXEC_SKIP_ORACLE=1`
//! (never under CI) skips them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use argoexec_kube::{ApiSecrets, KubeReporter, Names, PodWatch, check_access};
use argoexec_report::StepReport;
use argoexec_storage::Secrets as _;
use argoexec_template::{Outputs, Protocol};
use argoexec_testsupport::oracle::{Oracle, container_state};
use futures::StreamExt as _;
use serde_json::{Value, json};

mod real;

use real::{
    Triple, apply_rbac, create_pod, create_secret, fast, rbac_documents, service_account, settle,
};

const TASK_RESULTS: [Triple; 2] = [
    ("argoproj.io", "workflowtaskresults", "create"),
    ("argoproj.io", "workflowtaskresults", "patch"),
];

/// Outputs as Argo's executor writes them: parameters, an S3 artifact, the result.
fn outputs() -> Value {
    json!({
        "parameters": [{"name": "p", "value": "42"}],
        "artifacts": [{
            "name": "out",
            "path": "/tmp/out.txt",
            "s3": {"key": "wf/pod/out.tgz"},
            "archive": {"tar": {}}
        }],
        "result": "hello",
        "exitCode": "0"
    })
}

/// What the reporter sends for `outputs`: Argo's JSON through our types.
fn sent(outputs: Value) -> Value {
    serde_json::to_value(step(outputs, None).outputs).unwrap()
}

fn step(outputs: Value, message: Option<&str>) -> StepReport {
    let outputs: Outputs = serde_json::from_value(outputs).unwrap();
    StepReport {
        outputs,
        message: message.map(str::to_owned),
        progress: None,
    }
}

fn names(pod: &str, pod_uid: &str) -> Names {
    Names {
        pod: pod.into(),
        pod_uid: Some(pod_uid.into()),
        node_id: Some("wf-123".into()),
        workflow: Some("wf".into()),
        workflow_uid: None,
        instance_id: None,
    }
}

/// The annotations of `pod-1`, and its outputs annotation parsed.
fn pod_annotations(oracle: &Oracle, ns: &str) -> (Value, Value) {
    let annotations = oracle.get_json(ns, "pod", "pod-1")["metadata"]["annotations"].clone();
    let outputs = annotations["workflows.argoproj.io/outputs"]
        .as_str()
        .unwrap();
    let outputs = serde_json::from_str(outputs).unwrap();
    (annotations, outputs)
}

/// Reports [`outputs`] and reads the task result back: the schema kept every field we sent.
async fn report_and_read_back(reporter: &KubeReporter, oracle: &Oracle, ns: &str) -> Value {
    reporter
        .report_outputs(&step(outputs(), None))
        .await
        .unwrap();
    let result = oracle.get_json(ns, "workflowtaskresult", "wf-123");
    assert_eq!(
        result["outputs"],
        sent(outputs()),
        "pruned or changed by the schema"
    );
    result
}

/// A namespace whose service account `default` is bound by `manifests/rbac/ROLE`.
async fn namespace_with_role(
    oracle: &Oracle,
    prefix: &str,
    role: &str,
    allowed: &[Triple],
) -> (String, argoexec_kube::Kube) {
    let ns = oracle.namespace(prefix);
    apply_rbac(oracle, &ns, &rbac_documents(role));
    let kube = service_account(oracle, &ns).await;
    settle(&kube, allowed, true).await;
    (ns, kube)
}

#[tokio::test]
async fn v2_patches_the_annotations_of_a_real_pod() {
    let Some(oracle) = Oracle::shared() else {
        return;
    };
    let (ns, kube) = namespace_with_role(oracle, "v2", "v2.yaml", &[("", "pods", "patch")]).await;
    let uid = create_pod(oracle, &ns, "pod-1");
    check_access(&kube, Protocol::V2).await.unwrap();
    let reporter = KubeReporter::new(kube, Protocol::V2, names("pod-1", &uid), fast()).unwrap();
    reporter
        .report_outputs(&step(outputs(), Some("failed to save artifact 'x'")))
        .await
        .unwrap();
    let (annotations, written) = pod_annotations(oracle, &ns);
    assert_eq!(written, sent(outputs()));
    assert_eq!(
        annotations["workflows.argoproj.io/node-message"],
        "failed to save artifact 'x'"
    );
    assert_eq!(annotations["kept"], "yes", "a merge patch keeps the others");
}

#[tokio::test]
async fn v3_creates_then_patches_a_task_result_the_real_schema_keeps_whole() {
    let Some(oracle) = Oracle::shared() else {
        return;
    };
    let (ns, kube) = namespace_with_role(oracle, "v3", "emissary.yaml", &TASK_RESULTS).await;
    let uid = create_pod(oracle, &ns, "pod-1");
    check_access(&kube, Protocol::V3).await.unwrap();
    let reporter = KubeReporter::new(kube, Protocol::V3, names("pod-1", &uid), fast()).unwrap();
    reporter.report_progress("1/3").await.unwrap();
    let result = report_and_read_back(&reporter, oracle, &ns).await;
    assert_eq!(result["progress"], "1/3");
    assert_eq!(
        result["metadata"]["labels"],
        json!({"workflows.argoproj.io/workflow": "wf"})
    );
    assert_eq!(
        result["metadata"]["ownerReferences"],
        json!([{"apiVersion": "v1", "kind": "Pod", "name": "pod-1", "uid": uid}])
    );
    let annotations = &oracle.get_json(&ns, "pod", "pod-1")["metadata"]["annotations"];
    assert!(annotations.get("workflows.argoproj.io/outputs").is_none());
}

#[tokio::test]
async fn v3_falls_back_to_the_annotation_on_the_real_servers_403() {
    let Some(oracle) = Oracle::shared() else {
        return;
    };
    // The v2 Role: pods, no task results.
    let (ns, kube) =
        namespace_with_role(oracle, "v3-legacy", "v2.yaml", &[("", "pods", "patch")]).await;
    settle(&kube, &TASK_RESULTS, false).await;
    let uid = create_pod(oracle, &ns, "pod-1");
    check_access(&kube, Protocol::V3).await.unwrap();
    let err = check_access(&kube, Protocol::V4).await.unwrap_err();
    assert!(
        err.to_string()
            .contains("may not create workflowtaskresults.argoproj.io"),
        "{err}"
    );
    let reporter = KubeReporter::new(kube, Protocol::V3, names("pod-1", &uid), fast()).unwrap();
    reporter
        .report_outputs(&step(outputs(), None))
        .await
        .unwrap();
    let (_, written) = pod_annotations(oracle, &ns);
    assert_eq!(written, sent(outputs()));
    // v4 has no fallback: the refusal of the first report, before main, is an error by name.
    let names = Names {
        workflow_uid: Some("wf-uid".into()),
        ..names("pod-1", &uid)
    };
    let v4 = KubeReporter::new(
        service_account(oracle, &ns).await,
        Protocol::V4,
        names,
        fast(),
    );
    let err = v4.unwrap().start().await.unwrap_err();
    assert_eq!(err.status(), Some(403), "{err:?}");
    assert!(
        err.to_string()
            .starts_with(&format!("create workflowtaskresult {ns}/wf-123")),
        "{err}"
    );
}

/// A Workflow as the controller would have created it (the minimal CRD keeps any spec); its UID.
fn create_workflow(oracle: &Oracle, ns: &str) -> String {
    let workflow = json!({
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"name": "wf", "namespace": ns},
        "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "busybox"}}]}
    });
    oracle.apply(&workflow.to_string());
    oracle.get_json(ns, "workflow", "wf")["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn v4_creates_the_result_incomplete_then_completes_it() {
    let Some(oracle) = Oracle::shared() else {
        return;
    };
    let (ns, kube) = namespace_with_role(oracle, "v4", "emissary.yaml", &TASK_RESULTS).await;
    let uid = create_pod(oracle, &ns, "pod-1");
    let workflow_uid = create_workflow(oracle, &ns);
    check_access(&kube, Protocol::V4).await.unwrap();
    let names = Names {
        workflow_uid: Some(workflow_uid.clone()),
        instance_id: Some("i1".into()),
        ..names("pod-1", &uid)
    };
    let reporter = KubeReporter::new(kube, Protocol::V4, names, fast()).unwrap();
    reporter.start().await.unwrap();
    let result = oracle.get_json(&ns, "workflowtaskresult", "wf-123");
    assert_eq!(
        result["metadata"]["labels"],
        json!({
            "workflows.argoproj.io/workflow": "wf",
            "workflows.argoproj.io/controller-instanceid": "i1",
            "workflows.argoproj.io/report-outputs-completed": "false"
        })
    );
    assert_eq!(
        result["metadata"]["ownerReferences"],
        json!([{"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "name": "wf",
                "uid": workflow_uid}])
    );
    assert!(result.get("outputs").is_none());
    let result = report_and_read_back(&reporter, oracle, &ns).await;
    assert_eq!(
        result["metadata"]["labels"]["workflows.argoproj.io/report-outputs-completed"],
        "true"
    );
}

#[tokio::test]
async fn the_real_schema_refuses_what_argo_forbids() {
    let Some(oracle) = Oracle::shared() else {
        return;
    };
    let (ns, kube) = namespace_with_role(oracle, "schema", "emissary.yaml", &TASK_RESULTS).await;
    let names = Names {
        workflow_uid: Some("wf-uid".into()),
        ..names("pod-1", "pod-uid")
    };
    let reporter = KubeReporter::new(kube, Protocol::V4, names, fast()).unwrap();
    reporter.start().await.unwrap();
    // Parameter names: pattern ^[-a-zA-Z0-9_]+$. Artifacts: a CEL rule, one location at most.
    let bad_name = json!({"parameters": [{"name": "not a name!", "value": "1"}]});
    let two_locations =
        json!({"artifacts": [{"name": "a", "s3": {"key": "k"}, "raw": {"data": "x"}}]});
    for (outputs, field) in [
        (bad_name, "outputs.parameters[0].name"),
        (two_locations, "at most one artifact location"),
    ] {
        let err = reporter
            .report_outputs(&step(outputs, None))
            .await
            .unwrap_err();
        assert_eq!(err.status(), Some(422), "{err:?}");
        let text = argoexec_storage::chain(&err);
        assert!(text.contains(field), "{text}");
        assert!(
            text.contains("workflowtaskresult"),
            "names the object: {text}"
        );
    }
    let result = oracle.get_json(&ns, "workflowtaskresult", "wf-123");
    assert_eq!(
        result["metadata"]["labels"]["workflows.argoproj.io/report-outputs-completed"], "false",
        "a refused report does not complete the result"
    );
}

#[tokio::test]
async fn secrets_and_config_maps_through_the_api_name_what_is_missing() {
    let Some(oracle) = Oracle::shared() else {
        return;
    };
    let secrets_get = ("", "secrets", "get");
    let (ns, kube) = namespace_with_role(oracle, "secrets", "v2.yaml", &[secrets_get]).await;
    create_secret(oracle, &ns);
    oracle.kubectl(&[
        "-n",
        &ns,
        "create",
        "configmap",
        "krb5",
        "--from-literal=krb5.conf=[libdefaults]",
    ]);
    let secrets = ApiSecrets::new(&kube, fast());
    assert_eq!(secrets.get("s3-creds", "accessKey").await.unwrap(), b"AKIA");
    let missing_key = secrets.get("s3-creds", "secretKey").await.unwrap_err();
    let text = argoexec_storage::chain(&missing_key);
    assert!(
        text.contains(&format!("secret {ns}/s3-creds has no key \"secretKey\"")),
        "{text}"
    );
    let missing = secrets.get("nope", "accessKey").await.unwrap_err();
    let text = argoexec_storage::chain(&missing);
    assert!(text.contains(&format!("secret {ns}/nope")), "{text}");
    assert!(text.contains("not found"), "{text}");
    // The v2 Role grants no config maps: HDFS's krbConfigConfigMap needs a Role of its own.
    let refused = secrets.config_map("krb5", "krb5.conf").await.unwrap_err();
    let text = argoexec_storage::chain(&refused);
    assert!(text.contains(&format!("config map {ns}/krb5")), "{text}");
    assert!(text.contains("forbidden"), "{text}");
    oracle.kubectl(&[
        "-n",
        &ns,
        "create",
        "role",
        "krb5",
        "--verb",
        "get",
        "--resource",
        "configmaps",
    ]);
    oracle.kubectl(&[
        "-n",
        &ns,
        "create",
        "rolebinding",
        "krb5",
        "--role",
        "krb5",
        "--serviceaccount",
        &format!("{ns}:default"),
    ]);
    settle(&kube, &[("", "configmaps", "get")], true).await;
    assert_eq!(
        secrets.config_map("krb5", "krb5.conf").await.unwrap(),
        "[libdefaults]"
    );
    let missing_key = secrets.config_map("krb5", "other").await.unwrap_err();
    let text = argoexec_storage::chain(&missing_key);
    assert!(
        text.contains(&format!("config map {ns}/krb5 has no key \"other\"")),
        "{text}"
    );
}

/// The k8sapi runtime's watch of its own pod, with the k8sapi Role, across a restart of the API
/// server: a status change made after the restart still arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pod_watch_survives_a_restart_of_the_api_server() {
    let Some(oracle) = Oracle::start() else {
        return;
    };
    let oracle = Arc::new(oracle);
    let allowed = [("", "pods", "get"), ("", "pods", "watch")];
    let (ns, kube) = namespace_with_role(&oracle, "watch", "k8sapi.yaml", &allowed).await;
    // No `list`, as in Argo's Roles: a watcher that starts with a LIST would never see the pod.
    settle(&kube, &[("", "pods", "list")], false).await;
    create_pod(&oracle, &ns, "pod-1");
    let watch = PodWatch::new(&kube, "pod-1", fast());
    assert_eq!(
        watch.get().await.unwrap().metadata.name.as_deref(),
        Some("pod-1")
    );
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let follower = tokio::spawn(async move {
        let mut changes = std::pin::pin!(watch.changes());
        while let Some(pod) = changes.next().await {
            if tx.send(pod).is_err() {
                break;
            }
        }
    });
    let first = tokio::time::timeout(Duration::from_secs(30), rx.recv())
        .await
        .expect("the watch's first version within 30 s")
        .unwrap();
    assert_eq!(first.metadata.name.as_deref(), Some("pod-1"));

    let restarting = Arc::clone(&oracle);
    let before = oracle.apiserver_pid();
    let started = Instant::now();
    tokio::task::spawn_blocking(move || restarting.restart_apiserver())
        .await
        .unwrap();
    let restart = started.elapsed();
    assert_ne!(oracle.apiserver_pid(), before, "a new API server process");

    let patched = Instant::now();
    let terminated = json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
    oracle.patch_pod_status(&ns, "pod-1", &container_state("main", terminated));
    let seen = tokio::time::timeout(Duration::from_secs(120), async {
        loop {
            let pod = rx.recv().await.expect("the watch never ends by itself");
            let statuses = pod
                .status
                .and_then(|s| s.container_statuses)
                .unwrap_or_default();
            if statuses.iter().any(|c| {
                c.name == "main" && c.state.as_ref().is_some_and(|s| s.terminated.is_some())
            }) {
                return;
            }
        }
    })
    .await;
    follower.abort();
    seen.expect("the status change made after the restart, within 120 s");
    eprintln!(
        "API server restarted in {:.1} s; the watch saw the status change {:.1} s after the patch",
        restart.as_secs_f64(),
        patched.elapsed().as_secs_f64()
    );
}
