//! How the executor reaches Kubernetes: kubectl-style overrides of the API client, the kubelet
//! runtime's settings, and where a pod's service account is mounted.

use std::path::PathBuf;
use std::time::Duration;

/// Where kubelet mounts the pod's service account (`token`, `ca.crt`, `namespace`).
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// kubectl-style overrides of the Kubernetes client configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubeOverrides {
    /// Path of a kubeconfig file.
    pub kubeconfig: Option<PathBuf>,
    /// API server address.
    pub server: Option<String>,
    /// Bearer token.
    pub token: Option<String>,
    /// Namespace of this pod.
    pub namespace: Option<String>,
    /// kubeconfig context.
    pub context: Option<String>,
    /// kubeconfig cluster.
    pub cluster: Option<String>,
    /// kubeconfig user.
    pub user: Option<String>,
    /// Skip verification of the server's certificate.
    pub insecure_skip_tls_verify: bool,
    /// CA bundle file.
    pub certificate_authority: Option<PathBuf>,
    /// Client certificate file.
    pub client_certificate: Option<PathBuf>,
    /// Client key file.
    pub client_key: Option<PathBuf>,
    /// Basic-auth user name.
    pub username: Option<String>,
    /// Basic-auth password.
    pub password: Option<String>,
    /// User to impersonate.
    pub as_user: Option<String>,
    /// Groups to impersonate.
    pub as_group: Vec<String>,
    /// Server name for TLS verification.
    pub tls_server_name: Option<String>,
    /// Per-request timeout.
    pub request_timeout: Option<Duration>,
}

/// The kubelet runtime's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletSettings {
    /// The node's address.
    pub host: Option<String>,
    /// The kubelet port.
    pub port: u16,
    /// Skip certificate verification.
    pub insecure: bool,
}
