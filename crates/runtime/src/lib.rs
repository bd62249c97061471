//! How `argoexec wait` sees the containers of its pod.
//!
//! [`ContainerRuntime`] is what the wait sequence needs from a runtime, and no more. Each runtime
//! (PNS through `/proc`, later docker, the Kubernetes API, the kubelet and the emissary's files)
//! implements it in its own module. Container names are the pod spec's names (`main`, `wait`,
//! sidecars).

#[cfg(feature = "test-util")]
mod fake;
mod runtime;

#[cfg(feature = "test-util")]
pub use fake::{FakeContainer, FakeRuntime};
pub use runtime::{
    ByteStream, ContainerRuntime, Error, ExitStatus, KillOutcome, LogStream, PathSource,
};
