//! How `argoexec wait` sees the containers of its pod.
//!
//! [`ContainerRuntime`] is what the wait sequence needs from a runtime, and no more. Each runtime
//! (PNS through `/proc`, later docker, the Kubernetes API, the kubelet and the emissary's files)
//! implements it in its own module, behind a cargo feature, and [`AnyRuntime`] chooses one at run
//! time. Container names are the pod spec's names (`main`, `wait`, sidecars).

mod any;
#[cfg(feature = "docker")]
mod docker;
#[cfg(feature = "emissary")]
mod emissary;
#[cfg(feature = "test-util")]
mod fake;
#[cfg(feature = "pns")]
mod pns;
mod runtime;
#[cfg(any(feature = "pns", feature = "emissary"))]
mod state_dir;
#[cfg(all(feature = "test-util", feature = "docker"))]
pub mod testdocker;
#[cfg(feature = "test-util")]
pub mod testns;

pub use any::AnyRuntime;
#[cfg(feature = "docker")]
pub use docker::{
    CONTAINER_NAME_LABEL, Docker, DockerOptions, POD_NAME_LABEL, POD_NAMESPACE_LABEL, SANDBOX_NAME,
};
#[cfg(feature = "emissary")]
pub use emissary::{Emissary, staged_artifact, staged_parameter};
#[cfg(feature = "test-util")]
pub use fake::{FakeContainer, FakeRuntime};
#[cfg(feature = "pns")]
pub use pns::{DEFAULT_EXIT_CODE_WAIT, Pns, PnsOptions};
pub use runtime::{
    ByteStream, ContainerRuntime, Error, ExitStatus, KillOutcome, LogStream, PathSource,
};
#[cfg(any(feature = "pns", feature = "emissary"))]
pub use state_dir::{DirChanges, DirWatch};
