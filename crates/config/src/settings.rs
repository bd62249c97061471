//! The typed settings of one concern each that [`crate::Config`] is made of: the runtime, storage
//! retries, progress, the pod's identity and the unpacking caps.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// How `wait` sees the main container (contract §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// The Docker Engine API on the node's socket.
    Docker,
    /// The Kubernetes API: pod watch, exec and logs.
    K8sApi,
    /// The kubelet's API on the node.
    Kubelet,
    /// A process namespace shared by the pod's containers.
    Pns,
    /// Files exchanged with `argoexec emissary` wrapping each container.
    Emissary,
}

impl FromStr for RuntimeKind {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "docker" => Ok(Self::Docker),
            "k8sapi" => Ok(Self::K8sApi),
            "kubelet" => Ok(Self::Kubelet),
            "pns" => Ok(Self::Pns),
            "emissary" => Ok(Self::Emissary),
            _ => Err(()),
        }
    }
}

impl fmt::Display for RuntimeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Docker => "docker",
            Self::K8sApi => "k8sapi",
            Self::Kubelet => "kubelet",
            Self::Pns => "pns",
            Self::Emissary => "emissary",
        })
    }
}

/// The storage retry policy's settings (Argo's `EXECUTOR_RETRY_BACKOFF_*`).
#[derive(Debug, Clone)]
pub struct RetrySettings {
    /// Attempts in all.
    pub steps: u32,
    /// The first backoff.
    pub duration: Duration,
    /// Growth of the backoff per attempt.
    pub factor: f64,
    /// Random extra wait, as a fraction of the backoff.
    pub jitter: f64,
    /// Error messages matching this are transient too.
    pub transient_pattern: Option<regex::Regex>,
}

/// Progress reporting settings. Either tick at zero disables progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgressSettings {
    /// The file whose last non-empty line is the progress.
    pub file: PathBuf,
    /// How often progress is reported.
    pub patch_tick: Duration,
    /// How often the file is read.
    pub file_tick: Duration,
}

impl ProgressSettings {
    /// Whether progress is monitored at all.
    pub fn enabled(&self) -> bool {
        !self.patch_tick.is_zero() && !self.file_tick.is_zero()
    }
}

/// Names of the pod and its owners, as the controller set them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// `ARGO_POD_NAME`.
    pub pod_name: Option<String>,
    /// `ARGO_POD_UID`.
    pub pod_uid: Option<String>,
    /// `ARGO_NODE_ID`.
    pub node_id: Option<String>,
    /// `ARGO_WORKFLOW_NAME`.
    pub workflow_name: Option<String>,
    /// `ARGO_WORKFLOW_UID` (v4).
    pub workflow_uid: Option<String>,
    /// `ARGO_INSTANCE_ID`.
    pub instance_id: Option<String>,
    /// `ARGO_CONTAINER_NAME`.
    pub container_name: Option<String>,
}

/// Caps on unpacking an input archive, each `None` when the variable is unset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackSettings {
    /// `ARGOEXEC_UNPACK_MAX_ENTRIES`.
    pub max_entries: Option<u64>,
    /// `ARGOEXEC_UNPACK_MAX_MIB`, in bytes.
    pub max_bytes: Option<u64>,
    /// `ARGOEXEC_UNPACK_MAX_RATIO`.
    pub max_ratio: Option<u64>,
}
