//! How `argoexec wait` sees the containers of its pod.
//!
//! [`ContainerRuntime`] is what the wait sequence needs from a runtime, and no more. Each runtime
//! implements it in its own module, behind a cargo feature, and [`AnyRuntime`] chooses one at run
//! time: `pns` (`/proc` in a shared process namespace), `docker` (the Docker Engine API),
//! `emissary` (the files `argoexec emissary` keeps), `k8sapi` (the Kubernetes API: watch,
//! `pods/exec`, `pods/log`) and `kubelet` (the node's kubelet). The last two share `kube_pod`
//! (container states, the kill by exec'd `kill`) and reach Kubernetes only through
//! `argoexec-kube`'s clients. Container names are the pod spec's names (`main`, `wait`, sidecars).

mod any;
#[cfg(feature = "docker")]
mod docker;
#[cfg(feature = "emissary")]
mod emissary;
#[cfg(feature = "test-util")]
mod fake;
#[cfg(feature = "k8sapi")]
mod k8sapi;
#[cfg(any(feature = "k8sapi", feature = "kubelet"))]
mod kube_pod;
#[cfg(feature = "kubelet")]
mod kubelet;
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
#[cfg(feature = "k8sapi")]
pub use k8sapi::K8sApi;
#[cfg(feature = "kubelet")]
pub use kubelet::Kubelet;
#[cfg(feature = "pns")]
pub use pns::{DEFAULT_EXIT_CODE_WAIT, Pns, PnsOptions};
pub use runtime::{
    ByteStream, ContainerRuntime, Error, ExitStatus, KillOutcome, LogStream, PathSource,
};
#[cfg(any(feature = "pns", feature = "emissary"))]
pub use state_dir::{DirChanges, DirWatch};
