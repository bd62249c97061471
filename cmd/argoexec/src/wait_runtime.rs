//! The runtimes wait can use: those of `argoexec-runtime` ([`AnyRuntime`]) and `k8sapi`, which
//! lives in `argoexec-kube` (it needs the API client, and `argoexec-kube` already depends on
//! `argoexec-runtime` through the executor, so `AnyRuntime` cannot hold it).

use anyhow::Context as _;
use argoexec_config::Config;
use argoexec_kube::{Backoff, K8sApi};
use argoexec_runtime::AnyRuntime;

/// One runtime, chosen by `ARGO_CONTAINER_RUNTIME_EXECUTOR`.
#[derive(Debug)]
pub(crate) enum WaitRuntime {
    /// PNS (and the later runtimes of `argoexec-runtime`).
    Any(AnyRuntime),
    /// The pod seen through the Kubernetes API.
    K8sApi(Box<K8sApi>),
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

macro_rules! dispatch {
    ($self:ident, $runtime:ident => $call:expr) => {
        match $self {
            WaitRuntime::Any($runtime) => $call,
            WaitRuntime::K8sApi($runtime) => $call,
        }
    };
}

argoexec_runtime::forward_container_runtime!(WaitRuntime, dispatch);
