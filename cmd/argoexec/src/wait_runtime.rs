//! The runtimes wait can use: those of `argoexec-runtime` ([`AnyRuntime`]) and `k8sapi` and
//! `kubelet`, which live in `argoexec-kube` (they need kube's client, and `argoexec-kube` already
//! depends on `argoexec-runtime` through the executor, so `AnyRuntime` cannot hold them).

use std::path::Path;

use anyhow::Context as _;
use argoexec_config::{Config, SERVICE_ACCOUNT_DIR};
use argoexec_kube::{Backoff, K8sApi, Kubelet, KubeletOptions};
use argoexec_runtime::AnyRuntime;

/// One runtime, chosen by `ARGO_CONTAINER_RUNTIME_EXECUTOR`.
#[derive(Debug)]
pub(crate) enum WaitRuntime {
    /// PNS (and the later runtimes of `argoexec-runtime`).
    Any(AnyRuntime),
    /// The pod seen through the Kubernetes API.
    K8sApi(Box<K8sApi>),
    /// The pod seen through its node's kubelet.
    Kubelet(Box<Kubelet>),
}

impl From<AnyRuntime> for WaitRuntime {
    fn from(runtime: AnyRuntime) -> Self {
        Self::Any(runtime)
    }
}

/// The `k8sapi` runtime for this pod (`ARGO_POD_NAME`), through the configured client.
pub(crate) async fn k8sapi(config: &Config, backoff: Backoff) -> anyhow::Result<WaitRuntime> {
    let kube = argoexec_kube::connect(&config.flags.kube)
        .await
        .context("connect to the Kubernetes API for the k8sapi runtime")?;
    let pod = config.pod_name()?;
    Ok(WaitRuntime::K8sApi(Box::new(K8sApi::new(
        &kube, pod, backoff,
    ))))
}

/// The `kubelet` runtime for this pod: `ARGO_KUBELET_HOST`/`_PORT`/`_INSECURE`, the service
/// account's token and CA as the pod mounts them under `root`, the pod's `namespace`.
pub(crate) fn kubelet(
    config: &Config,
    root: &Path,
    namespace: String,
) -> anyhow::Result<WaitRuntime> {
    let host = config.kubelet.host.clone().context(
        "the kubelet runtime needs ARGO_KUBELET_HOST (the controller sets it to the node's status.hostIP)",
    )?;
    let account = root.join(SERVICE_ACCOUNT_DIR.trim_start_matches('/'));
    let kubelet = Kubelet::new(KubeletOptions {
        host,
        port: config.kubelet.port,
        insecure: config.kubelet.insecure,
        token_file: account.join("token"),
        ca_file: account.join("ca.crt"),
        namespace,
        pod: config.pod_name()?.to_owned(),
    })
    .context("set up the kubelet runtime")?;
    Ok(WaitRuntime::Kubelet(Box::new(kubelet)))
}

macro_rules! dispatch {
    ($self:ident, $runtime:ident => $call:expr) => {
        match $self {
            WaitRuntime::Any($runtime) => $call,
            WaitRuntime::K8sApi($runtime) => $call,
            WaitRuntime::Kubelet($runtime) => $call,
        }
    };
}

argoexec_runtime::forward_container_runtime!(WaitRuntime, dispatch);
