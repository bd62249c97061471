//! What the suites against the real API server (`tests/real_api.rs`, `tests/real_rbac.rs`) build
//! on: clients of the oracle's kube-apiserver for a bearer token, the Roles we ship
//! (`manifests/rbac/`) applied into a namespace, and the server's own answer to "may I?"
//! (SelfSubjectAccessReview).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use argoexec_config::KubeOverrides;
use argoexec_kube::{Backoff, Kube, connect};
use argoexec_testsupport::oracle::Oracle;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, PostParams};
use serde::Deserialize as _;
use serde_json::Value;

/// Retries short enough for a test, long enough for a busy machine.
pub(crate) fn fast() -> Backoff {
    Backoff {
        first: Duration::from_millis(20),
        cap: Duration::from_millis(500),
        budget: Duration::from_secs(20),
        ..Backoff::default()
    }
}

/// A client of the oracle's API server authenticated by `token`, working in `namespace`, built
/// by [`connect`] from a kubeconfig as wait builds it from `--kubeconfig`.
pub(crate) async fn client(oracle: &Oracle, token: &str, namespace: &str) -> Kube {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = oracle.kubeconfig_for(dir.path(), token, namespace);
    connect(&KubeOverrides {
        kubeconfig: Some(kubeconfig),
        ..KubeOverrides::default()
    })
    .await
    .unwrap()
}

/// The client of the service account `namespace:default`, with a token from TokenRequest.
pub(crate) async fn service_account(oracle: &Oracle, namespace: &str) -> Kube {
    let token = oracle.service_account_token(namespace, "default");
    client(oracle, &token, namespace).await
}

/// `manifests/rbac/NAME`.
pub(crate) fn rbac_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../manifests/rbac")
        .join(name)
}

/// The documents of `manifests/rbac/NAME`.
pub(crate) fn rbac_documents(name: &str) -> Vec<Value> {
    let path = rbac_file(name);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

/// Applies `documents` (Roles, bindings) as the admin for the service account `namespace:default`:
/// namespaced objects into `namespace`; cluster-scoped ones renamed after the namespace (so that
/// the suites do not share them) with their subjects moved there.
pub(crate) fn apply_rbac(oracle: &Oracle, namespace: &str, documents: &[Value]) {
    let items: Vec<Value> = documents
        .iter()
        .map(|doc| {
            let mut doc = doc.clone();
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            if kind.starts_with("Cluster") {
                let name = format!("{}-{namespace}", doc["metadata"]["name"].as_str().unwrap());
                doc["metadata"]["name"] = name.into();
                if kind == "ClusterRoleBinding" {
                    let role = format!("{}-{namespace}", doc["roleRef"]["name"].as_str().unwrap());
                    doc["roleRef"]["name"] = role.into();
                    for subject in doc["subjects"].as_array_mut().unwrap() {
                        subject["namespace"] = namespace.into();
                    }
                }
            } else {
                doc["metadata"]["namespace"] = namespace.into();
            }
            doc
        })
        .collect();
    let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
    oracle.apply(&list.to_string());
}

/// One permission as the RBAC tables name it: (API group, resource with subresource, verb).
pub(crate) type Triple = (&'static str, &'static str, &'static str);

/// Whether the real authorizer lets `kube`'s user do `verb` on `resource` (`pods/log` form) of
/// `group` in its namespace (cluster-wide for nodes).
pub(crate) async fn can(kube: &Kube, (group, resource, verb): Triple) -> bool {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_owned())),
        None => (resource, None),
    };
    let namespace = (resource != "nodes").then(|| kube.namespace().to_owned());
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace,
                verb: Some(verb.to_owned()),
                group: Some(group.to_owned()),
                resource: Some(resource.to_owned()),
                subresource,
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let reviews: Api<SelfSubjectAccessReview> = Api::all(kube.client().clone());
    let answer = reviews
        .create(&PostParams::default(), &review)
        .await
        .unwrap();
    answer.status.unwrap_or_default().allowed
}

/// Waits (10 s at most) until the authorizer's answer for every triple is `allowed`: RBAC
/// objects reach the authorizer through an informer, a moment after they are written.
pub(crate) async fn settle(kube: &Kube, triples: &[Triple], allowed: bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for &triple in triples {
        while can(kube, triple).await != allowed {
            assert!(
                Instant::now() < deadline,
                "the authorizer still answers {} for {triple:?} 10 s after the RBAC change",
                !allowed
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Creates a pod (the admin, as the controller would) with containers `wait` and `main`; no
/// kubelet runs, so it stays Pending. Returns its UID.
pub(crate) fn create_pod(oracle: &Oracle, namespace: &str, name: &str) -> String {
    let annotations = serde_json::json!({"kept": "yes"});
    oracle.create_pod(namespace, name, &["wait", "main"], &annotations)
}

/// The secret `s3-creds` with `accessKey: AKIA`, made by the admin (the user, in real life).
pub(crate) fn create_secret(oracle: &Oracle, namespace: &str) {
    oracle.kubectl(&[
        "-n",
        namespace,
        "create",
        "secret",
        "generic",
        "s3-creds",
        "--from-literal=accessKey=AKIA",
    ]);
}
