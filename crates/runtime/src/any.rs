//! Choosing a runtime at run time.

// Built without any runtime, every method matches on nothing and ignores its arguments.
#![cfg_attr(
    not(any(
        feature = "pns",
        feature = "docker",
        feature = "emissary",
        feature = "k8sapi",
        feature = "kubelet"
    )),
    allow(unused_variables)
)]

use std::path::Path;
use std::time::Duration;

use crate::runtime::{
    ByteStream, ContainerRuntime, Error, ExitStatus, KillOutcome, LogStream, PathSource,
};

/// One of the runtimes this build has, chosen at run time (`ARGO_CONTAINER_RUNTIME_EXECUTOR`).
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyRuntime {
    /// Containers seen through `/proc` in a shared process namespace.
    #[cfg(feature = "pns")]
    Pns(crate::pns::Pns),
    /// Containers seen through the Docker Engine API.
    #[cfg(feature = "docker")]
    Docker(crate::docker::Docker),
    /// The files `argoexec emissary` keeps in `/var/run/argo`.
    #[cfg(feature = "emissary")]
    Emissary(crate::emissary::Emissary),
    /// The pod seen through the Kubernetes API.
    #[cfg(feature = "k8sapi")]
    K8sApi(Box<crate::k8sapi::K8sApi>),
    /// The pod seen through its node's kubelet.
    #[cfg(feature = "kubelet")]
    Kubelet(Box<crate::kubelet::Kubelet>),
    /// Stands in for the runtimes this build was compiled without; never constructed.
    #[doc(hidden)]
    None(std::convert::Infallible),
}

#[cfg(feature = "pns")]
impl From<crate::pns::Pns> for AnyRuntime {
    fn from(runtime: crate::pns::Pns) -> Self {
        Self::Pns(runtime)
    }
}

#[cfg(feature = "docker")]
impl From<crate::docker::Docker> for AnyRuntime {
    fn from(runtime: crate::docker::Docker) -> Self {
        Self::Docker(runtime)
    }
}

#[cfg(feature = "emissary")]
impl From<crate::emissary::Emissary> for AnyRuntime {
    fn from(runtime: crate::emissary::Emissary) -> Self {
        Self::Emissary(runtime)
    }
}

#[cfg(feature = "k8sapi")]
impl From<crate::k8sapi::K8sApi> for AnyRuntime {
    fn from(runtime: crate::k8sapi::K8sApi) -> Self {
        Self::K8sApi(Box::new(runtime))
    }
}

#[cfg(feature = "kubelet")]
impl From<crate::kubelet::Kubelet> for AnyRuntime {
    fn from(runtime: crate::kubelet::Kubelet) -> Self {
        Self::Kubelet(Box::new(runtime))
    }
}

/// `$call` with `$runtime` bound to the runtime of whichever variant `$self` is.
macro_rules! dispatch {
    ($self:ident, $runtime:ident => $call:expr) => {
        match $self {
            #[cfg(feature = "pns")]
            AnyRuntime::Pns($runtime) => $call,
            #[cfg(feature = "docker")]
            AnyRuntime::Docker($runtime) => $call,
            #[cfg(feature = "emissary")]
            AnyRuntime::Emissary($runtime) => $call,
            #[cfg(feature = "k8sapi")]
            AnyRuntime::K8sApi($runtime) => $call,
            #[cfg(feature = "kubelet")]
            AnyRuntime::Kubelet($runtime) => $call,
            AnyRuntime::None(never) => match *never {},
        }
    };
}

impl ContainerRuntime for AnyRuntime {
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
