//! The Roles we ship (`manifests/rbac/*.yaml`) decided by the real API server's RBAC authorizer
//! (kube-apiserver v1.37.2, `tests/oracle/cluster`). Each Role is applied into a fresh namespace,
//! bound to its service account `default`, and then, with that account's token:
//!
//! - the start-up check ([`check_access_for`], reporting and the runtime) passes for the Role's protocols, and every call the
//!   runtime makes (the table of `tests/rbac_needs.rs`) gets through the authorizer;
//! - the authorizer's answers over every verb on every resource the tables name are exactly the
//!   table, so the hand-written table cannot drift from reality;
//! - without any one of its verbs, that call is refused by the server, and the start-up check
//!   refuses too, naming the verb and resource, where it checks that permission at all (the
//!   printed table says where it does not).
//!
//! No kubelet runs: `pods/exec` passes the authorizer and then fails for want of a node (that is
//! what "allowed" means for it here), `pods/log` of a pod on no node is empty, and `nodes/proxy` is what the kubelet asks
//! the API server (a SubjectAccessReview), so it is asked the same way.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use argoexec_config::RuntimeKind;
use argoexec_kube::{
    ApiSecrets, Kube, KubeReporter, Names, PodWatch, check_access_for, runtime_access,
};
use argoexec_report::StepReport;
use argoexec_storage::Secrets as _;
use argoexec_template::Protocol;
use argoexec_testsupport::oracle::Oracle;
use futures::StreamExt as _;
use serde_json::Value;

#[path = "../../../tests/rbac_needs.rs"]
mod rbac_needs;
mod real;

use rbac_needs::needs;
use real::{
    Triple, apply_rbac, can, create_pod, create_secret, fast, rbac_documents, service_account,
    settle,
};

const FILES: [&str; 6] = [
    "docker.yaml",
    "emissary.yaml",
    "k8sapi.yaml",
    "kubelet.yaml",
    "pns.yaml",
    "v2.yaml",
];

/// The runtime a Role is written for; the v2 Role serves every runtime, k8sapi's calls included.
fn runtime(file: &str) -> RuntimeKind {
    match file {
        "docker.yaml" => RuntimeKind::Docker,
        "emissary.yaml" => RuntimeKind::Emissary,
        "kubelet.yaml" => RuntimeKind::Kubelet,
        "pns.yaml" => RuntimeKind::Pns,
        _ => RuntimeKind::K8sApi,
    }
}

/// The runtime wait runs for a pod of `protocol` with the Role of `file`: v4 pods have only the
/// emissary (as `argoexec_config::Config::runtime_for`).
fn runtime_of(protocol: Protocol, file: &str) -> RuntimeKind {
    match protocol {
        Protocol::V4 => RuntimeKind::Emissary,
        _ => runtime(file),
    }
}

/// The start-up check wait makes for a pod of `protocol` with the Role of `file`.
async fn startup_check(
    kube: &Kube,
    protocol: Protocol,
    file: &str,
) -> Result<(), argoexec_kube::Error> {
    check_access_for(kube, protocol, &runtime_access(runtime_of(protocol, file))).await
}

/// The protocols a Role serves: v2 pods, or v3 and v4 pods for the runtimes' Roles.
fn protocols(file: &str) -> &'static [Protocol] {
    if file == "v2.yaml" {
        &[Protocol::V2]
    } else {
        &[Protocol::V3, Protocol::V4]
    }
}

/// Every verb on every resource any table names, and config maps: what the server is asked.
fn universe() -> Vec<Triple> {
    let mut resources: BTreeSet<(&str, &str)> = FILES
        .iter()
        .flat_map(|f| needs(f).iter().map(|&(g, r, _)| (g, r)))
        .collect();
    resources.insert(("", "configmaps"));
    let verbs = [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    resources
        .into_iter()
        .flat_map(|(g, r)| verbs.iter().map(move |&v| (g, r, v)))
        .collect()
}

/// A namespace with `documents` applied, its pod `pod-1` and secret `s3-creds` (made by the
/// admin, as the controller and the user would), and the client of its service account once the
/// authorizer allows `allowed` and refuses `refused`.
async fn setup(
    oracle: &Oracle,
    file: &str,
    documents: &[Value],
    allowed: &[Triple],
    refused: &[Triple],
) -> Kube {
    let prefix = format!("rbac-{}", file.trim_end_matches(".yaml"));
    let ns = oracle.namespace(&prefix);
    apply_rbac(oracle, &ns, documents);
    create_pod(oracle, &ns, "pod-1");
    create_secret(oracle, &ns);
    let kube = service_account(oracle, &ns).await;
    settle(&kube, allowed, true).await;
    settle(&kube, refused, false).await;
    kube
}

/// Whether an error says the server refused the user.
fn is_refusal(text: &str) -> bool {
    text.contains("403") || text.to_lowercase().contains("forbidden")
}

/// Makes the call the runtime makes for `triple`, as the service account. `Ok`: the authorizer
/// let it through (with what came after); `Err`: refused, with the error.
async fn call(kube: &Kube, triple: Triple) -> Result<String, String> {
    let chain = |e: &dyn std::error::Error| argoexec_storage::chain(e);
    let names = Names {
        pod: "pod-1".into(),
        pod_uid: Some("pod-uid".into()),
        node_id: Some("wf-1".into()),
        workflow: Some("wf".into()),
        workflow_uid: Some("wf-uid".into()),
        instance_id: None,
    };
    let reporter = |protocol| KubeReporter::new(kube.clone(), protocol, names.clone(), fast());
    match triple {
        ("argoproj.io", "workflowtaskresults", verb) => {
            // A new reporter creates; the next report patches.
            let reporter = reporter(Protocol::V4).unwrap();
            let created = reporter.report_progress("1/2").await;
            if verb == "create" {
                return created.map(|()| "created".into()).map_err(|e| chain(&e));
            }
            created.map_err(|e| format!("(create) {}", chain(&e)))?;
            let step = StepReport {
                outputs: serde_json::from_value(serde_json::json!({"result": "r"})).unwrap(),
                message: None,
                progress: None,
            };
            let patched = reporter.report_outputs(&step).await;
            patched.map(|()| "patched".into()).map_err(|e| chain(&e))
        }
        ("", "pods", "get") => {
            let pod = PodWatch::new(kube, "pod-1", fast()).get().await;
            pod.map(|_| "got".into()).map_err(|e| chain(&e))
        }
        ("", "pods", "watch") => {
            let watch = PodWatch::new(kube, "pod-1", fast());
            let mut changes = std::pin::pin!(watch.changes());
            match tokio::time::timeout(Duration::from_secs(5), changes.next()).await {
                Ok(Some(_)) => Ok("first version".into()),
                _ => Err("no version in 5 s (the watch is refused and retried)".into()),
            }
        }
        ("", "pods", "patch") => {
            let step = StepReport {
                message: Some("m".into()),
                ..StepReport::default()
            };
            let patched = reporter(Protocol::V2).unwrap().report_outputs(&step).await;
            patched.map(|()| "annotated".into()).map_err(|e| chain(&e))
        }
        ("", "pods/log", "get") => {
            use tokio::io::AsyncReadExt as _;
            let mut log = kube
                .container_log("pod-1", "main")
                .await
                .map_err(|e| chain(&e))?;
            let mut text = String::new();
            log.read_to_string(&mut text).await.unwrap();
            // A pod on no node: the server has no kubelet to ask, and answers an empty log.
            Ok(format!("read {} bytes", text.len()))
        }
        ("", "pods/exec", "get" | "create") => {
            let argv = vec!["true".to_owned()];
            after_authorization(kube.exec("pod-1", "main", argv).await)
        }
        ("", "secrets", "get") => {
            let value = ApiSecrets::new(kube, fast())
                .get("s3-creds", "accessKey")
                .await;
            value.map(|_| "read".into()).map_err(|e| chain(&e))
        }
        ("", "nodes/proxy", "get") => match can(kube, triple).await {
            true => Ok("allowed (SubjectAccessReview, as the kubelet asks)".into()),
            false => Err("refused (SubjectAccessReview, as the kubelet asks)".into()),
        },
        other => panic!("no call for {other:?}: add one"),
    }
}

/// A call the server proxies to a kubelet: past the authorizer it fails for want of a node.
fn after_authorization<T>(result: Result<T, argoexec_kube::Error>) -> Result<String, String> {
    match result {
        Ok(_) => Ok("ran".into()),
        Err(e) => {
            let text = argoexec_storage::chain(&e);
            if is_refusal(&text) {
                Err(text)
            } else {
                let server = text.split("ApiError: ").nth(1).unwrap_or(&text);
                let server = server.split(" (Status").next().unwrap_or(server);
                Ok(format!("authorized, then: {server}"))
            }
        }
    }
}

/// A line of the printed tables.
fn row(file: &str, verb: &str, resource: &str, server: &str, last: &str) -> String {
    format!("{file:<14} {verb:<7} {resource:<32} {server:<8} {last}")
}

fn short(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    line.chars().take(100).collect()
}

/// Each Role as shipped: the start-up check passes, every call of the runtime gets through, and
/// the authorizer allows exactly the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_allows_exactly_its_table_and_every_call_gets_through() {
    let Some(oracle) = Oracle::shared() else {
        return;
    };
    let mut table = vec![row("Role file", "verb", "resource", "server", "call")];
    for file in FILES {
        let kube = setup(oracle, file, &rbac_documents(file), needs(file), &[]).await;
        for &protocol in protocols(file) {
            startup_check(&kube, protocol, file)
                .await
                .unwrap_or_else(|e| panic!("{file}: start-up check for {protocol}: {e}"));
        }
        let answers = futures::future::join_all(universe().into_iter().map(|t| {
            let kube = &kube;
            async move { (t, can(kube, t).await) }
        }))
        .await;
        let allowed: BTreeSet<Triple> = answers
            .iter()
            .filter(|(_, allowed)| *allowed)
            .map(|(t, _)| *t)
            .collect();
        let table_says: BTreeSet<Triple> = needs(file).iter().copied().collect();
        assert_eq!(
            allowed, table_says,
            "{file}: what the real authorizer allows (left) vs tests/rbac_needs.rs (right)"
        );
        for &triple in needs(file) {
            let (group, resource, verb) = triple;
            let outcome = call(&kube, triple)
                .await
                .unwrap_or_else(|e| panic!("{file}: {verb} {resource} ({group:?}) refused: {e}"));
            let resource = qualified(group, resource);
            table.push(row(file, verb, &resource, "allowed", &short(&outcome)));
        }
    }
    eprintln!("{}", table.join("\n"));
}

fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}

/// `documents` without `verb` on `resource` of `group`; a rule left without verbs goes.
fn without(documents: &[Value], (group, resource, verb): Triple) -> Vec<Value> {
    let mut documents = documents.to_vec();
    let mut removed = false;
    for doc in &mut documents {
        let Some(rules) = doc.get_mut("rules").and_then(Value::as_array_mut) else {
            continue;
        };
        for rule in rules.iter_mut() {
            let names = |key: &str, want: &str| {
                rule[key]
                    .as_array()
                    .is_some_and(|l| l.iter().any(|x| x == want))
            };
            if names("apiGroups", group) && names("resources", resource) {
                let verbs = rule["verbs"].as_array_mut().unwrap();
                let before = verbs.len();
                verbs.retain(|v| v != verb);
                removed |= verbs.len() < before;
            }
        }
        rules.retain(|rule| rule["verbs"].as_array().is_some_and(|v| !v.is_empty()));
    }
    assert!(removed, "no rule grants {verb} on {resource} ({group:?})");
    documents
}

/// Whether the start-up check of `protocol` with the runtime of `file` asks for `triple` (for
/// reporting, in its first alternative: the one every Role here is written for).
fn startup_checks(protocol: Protocol, file: &str, triple: Triple) -> bool {
    let reporting = argoexec_kube::required_access(protocol);
    let first = reporting.first().cloned().unwrap_or_default();
    first
        .into_iter()
        .chain(runtime_access(runtime_of(protocol, file)))
        .any(|a| (a.group, a.resource, a.verb) == triple)
}

/// Each Role without each of its verbs in turn: the real server refuses that call, and the
/// start-up check refuses naming the verb and resource when reporting needs it (other calls are
/// not checked at start-up: the table says which).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_any_one_verb_the_server_refuses_and_the_startup_check_names_it() {
    let Some(oracle) = Oracle::shared() else {
        return;
    };
    let mut table = vec![row(
        "Role file",
        "removed",
        "resource",
        "server",
        "start-up check",
    )];
    for file in FILES {
        for &removed in needs(file) {
            let (group, resource, verb) = removed;
            let rest: Vec<Triple> = needs(file)
                .iter()
                .copied()
                .filter(|&t| t != removed)
                .collect();
            let documents = without(&rbac_documents(file), removed);
            let kube = setup(oracle, file, &documents, &rest, &[removed]).await;
            let refusal = call(&kube, removed).await.expect_err(&format!(
                "{file} without {verb} {resource}: the server let the call through"
            ));
            assert!(
                is_refusal(&refusal) || resource == "nodes/proxy" || verb == "watch",
                "{file} without {verb} {resource}: not a refusal: {refusal}"
            );
            let mut startup = Vec::new();
            for &protocol in protocols(file) {
                match startup_check(&kube, protocol, file).await {
                    Err(e) => {
                        let text = e.to_string();
                        let named = qualified(group, resource);
                        assert!(
                            text.contains(&format!("may not {verb} {named} ")),
                            "{file} without {verb} {resource}: {protocol}'s check: {text}"
                        );
                        startup.push(format!("{protocol} refused"));
                    }
                    Ok(()) => {
                        assert!(
                            !startup_checks(protocol, file, removed),
                            "{file} without {verb} {resource}: {protocol}'s check passed"
                        );
                        startup.push(format!("{protocol} passes (not checked)"));
                    }
                }
            }
            let resource = qualified(group, resource);
            table.push(row(file, verb, &resource, "refused", &startup.join(", ")));
        }
    }
    eprintln!("{}", table.join("\n"));
}
