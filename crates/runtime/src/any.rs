//! Choosing a runtime at run time.

// Built without any runtime, every method matches on nothing and ignores its arguments.
#![cfg_attr(
    not(any(feature = "pns", feature = "docker", feature = "emissary")),
    allow(unused_variables)
)]

use std::path::Path;
use std::time::Duration;

use crate::{ByteStream, ContainerRuntime, Error, ExitStatus, KillOutcome, LogStream, PathSource};

/// One of the runtimes this build has, chosen at run time (`ARGO_CONTAINER_RUNTIME_EXECUTOR`).
/// Later: k8sapi, kubelet.
#[derive(Debug)]
#[non_exhaustive]
pub enum AnyRuntime {
    /// Containers seen through `/proc` in a shared process namespace.
    #[cfg(feature = "pns")]
    Pns(crate::Pns),
    /// Containers seen through the Docker Engine API.
    #[cfg(feature = "docker")]
    Docker(crate::Docker),
    /// The files `argoexec emissary` keeps in `/var/run/argo`.
    #[cfg(feature = "emissary")]
    Emissary(crate::Emissary),
    /// Stands in for the runtimes this build was compiled without; never constructed.
    #[doc(hidden)]
    None(std::convert::Infallible),
}

#[cfg(feature = "pns")]
impl From<crate::Pns> for AnyRuntime {
    fn from(runtime: crate::Pns) -> Self {
        Self::Pns(runtime)
    }
}

#[cfg(feature = "docker")]
impl From<crate::Docker> for AnyRuntime {
    fn from(runtime: crate::Docker) -> Self {
        Self::Docker(runtime)
    }
}

#[cfg(feature = "emissary")]
impl From<crate::Emissary> for AnyRuntime {
    fn from(runtime: crate::Emissary) -> Self {
        Self::Emissary(runtime)
    }
}

macro_rules! dispatch {
    ($self:ident, $runtime:ident => $call:expr) => {
        match $self {
            #[cfg(feature = "pns")]
            AnyRuntime::Pns($runtime) => $call,
            #[cfg(feature = "docker")]
            AnyRuntime::Docker($runtime) => $call,
            #[cfg(feature = "emissary")]
            AnyRuntime::Emissary($runtime) => $call,
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
