//! Choosing a runtime at run time.

// Built without any runtime, every method matches on nothing and ignores its arguments.
#![cfg_attr(
    not(any(feature = "pns", feature = "docker", feature = "emissary")),
    allow(unused_variables)
)]

/// One of the runtimes this build has, chosen at run time (`ARGO_CONTAINER_RUNTIME_EXECUTOR`).
/// k8sapi and kubelet live in `argoexec-kube`; wait joins them in its own enum.
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

crate::forward_container_runtime!(AnyRuntime, dispatch);

/// Implements [`ContainerRuntime`] for an enum of runtimes, every method forwarded to the
/// variant's runtime: `forward_container_runtime!(Enum, dispatch)`, where `dispatch!(self, r =>
/// expr)` is the caller's macro matching each variant as `r`. For enums outside this crate too:
/// wait's own runtime enum adds the runtimes that live in `argoexec-kube`.
#[macro_export]
macro_rules! forward_container_runtime {
    ($ty:ty, $dispatch:ident) => {
        impl $crate::ContainerRuntime for $ty {
            fn name(&self) -> &'static str {
                $dispatch!(self, r => r.name())
            }

            async fn containers(&self) -> Result<Vec<String>, $crate::Error> {
                $dispatch!(self, r => r.containers().await)
            }

            async fn wait_started(&self, container: &str) -> Result<(), $crate::Error> {
                $dispatch!(self, r => r.wait_started(container).await)
            }

            async fn wait_exited(
                &self,
                container: &str,
            ) -> Result<$crate::ExitStatus, $crate::Error> {
                $dispatch!(self, r => r.wait_exited(container).await)
            }

            async fn kill(
                &self,
                container: &str,
                grace: std::time::Duration,
            ) -> Result<$crate::KillOutcome, $crate::Error> {
                $dispatch!(self, r => r.kill(container, grace).await)
            }

            async fn open_path(
                &self,
                container: &str,
                path: &std::path::Path,
            ) -> Result<$crate::PathSource, $crate::Error> {
                $dispatch!(self, r => r.open_path(container, path).await)
            }

            async fn logs(
                &self,
                container: &str,
                stream: $crate::LogStream,
            ) -> Result<$crate::ByteStream, $crate::Error> {
                $dispatch!(self, r => r.logs(container, stream).await)
            }

            async fn read_file(
                &self,
                container: &str,
                path: &std::path::Path,
            ) -> Result<Vec<u8>, $crate::Error> {
                $dispatch!(self, r => r.read_file(container, path).await)
            }
        }
    };
}
