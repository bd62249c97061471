//! What each runtime calls on the Kubernetes API, by hand: the table both RBAC suites check the
//! Roles of `manifests/rbac/` against. `tests/manifests.rs` checks it against the Roles as
//! written; `crates/kube/tests/real_rbac.rs` against what the real API server's authorizer
//! allows a service account bound by each Role, so the table cannot drift from reality.

/// What each runtime calls on the API server: (API group, resource, verb). `pods/exec` is a
/// websocket upgrade (kube-rs), authorised as `get`, and since Kubernetes 1.35 as `create` too.
pub(crate) fn needs(file: &str) -> &'static [(&'static str, &'static str, &'static str)] {
    const TASK_RESULTS: [(&str, &str, &str); 2] = [
        ("argoproj.io", "workflowtaskresults", "create"),
        ("argoproj.io", "workflowtaskresults", "patch"),
    ];
    match file {
        "emissary.yaml" | "docker.yaml" => &TASK_RESULTS,
        "pns.yaml" => &[
            TASK_RESULTS[0],
            TASK_RESULTS[1],
            ("", "pods", "get"),
            ("", "pods", "watch"),
            ("", "pods/log", "get"),
        ],
        "k8sapi.yaml" => &[
            TASK_RESULTS[0],
            TASK_RESULTS[1],
            ("", "pods", "get"),
            ("", "pods", "watch"),
            ("", "pods/exec", "get"),
            ("", "pods/exec", "create"),
            ("", "pods/log", "get"),
        ],
        "kubelet.yaml" => &[TASK_RESULTS[0], TASK_RESULTS[1], ("", "nodes/proxy", "get")],
        "v2.yaml" => &[
            ("", "pods", "get"),
            ("", "pods", "watch"),
            ("", "pods", "patch"),
            ("", "pods/log", "get"),
            ("", "secrets", "get"),
            ("", "pods/exec", "get"),
            ("", "pods/exec", "create"),
        ],
        other => panic!("manifests/rbac/{other}: which runtime is it for?"),
    }
}
