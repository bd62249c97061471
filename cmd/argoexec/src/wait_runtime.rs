//! The runtimes wait can use: those of `argoexec-runtime` ([`AnyRuntime`]) and `k8sapi`, which
//! lives in `argoexec-kube` (it needs the API client, and `argoexec-kube` already depends on
//! `argoexec-runtime` through the executor, so `AnyRuntime` cannot hold it).

use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use argoexec_config::Config;
use argoexec_kube::{Backoff, K8sApi};
use argoexec_runtime::{
    AnyRuntime, ByteStream, ContainerRuntime, Error, ExitStatus, KillOutcome, LogStream, PathSource,
};

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

impl ContainerRuntime for WaitRuntime {
    fn name(&self) -> &'static str {
        dispatch!(self, r => r.name())
    }

    async fn containers(&self) -> Result<Vec<String>, Error> {
        dispatch!(self, r => r.containers().await)
    }

    async fn wait_started(&self, container: &str) -> Result<(), Error> {
        dispatch!(self, r => r.wait_started(container).await)
    }

    async fn wait_exited(&self, container: &str) -> Result<ExitStatus, Error> {
        dispatch!(self, r => r.wait_exited(container).await)
    }

    async fn kill(&self, container: &str, grace: Duration) -> Result<KillOutcome, Error> {
        dispatch!(self, r => r.kill(container, grace).await)
    }

    async fn open_path(&self, container: &str, path: &Path) -> Result<PathSource, Error> {
        dispatch!(self, r => r.open_path(container, path).await)
    }

    async fn logs(&self, container: &str, stream: LogStream) -> Result<ByteStream, Error> {
        dispatch!(self, r => r.logs(container, stream).await)
    }

    async fn read_file(&self, container: &str, path: &Path) -> Result<Vec<u8>, Error> {
        dispatch!(self, r => r.read_file(container, path).await)
    }
}
