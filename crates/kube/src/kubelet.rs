//! The node's kubelet over HTTPS (`ARGO_KUBELET_HOST:ARGO_KUBELET_PORT`, the service account's
//! bearer token; the kubelet authorises it as `nodes/proxy`): the raw requests the `kubelet`
//! container runtime of `argoexec-runtime` is built on. `GET /pods`, `/containerLogs` (whole or
//! followed) and `/exec` (websocket), through kube-rs's client pointed at the kubelet.
//!
//! A failed request is explained where the cause is known: a refused token (401), a missing
//! permission (403), a certificate not signed by the CA given.

use std::io;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{AttachParams, AttachedProcess, LogParams};
use kube::core::kubelet_debug::KubeletDebugParams;
use tokio_util::compat::FuturesAsyncReadCompatExt as _;

use crate::client::config_error;
use crate::container::ContainerLog;
use crate::error::Error;

/// Where the kubelet is and how to reach it.
#[derive(Debug, Clone)]
pub struct KubeletOptions {
    /// The node's address (`ARGO_KUBELET_HOST`, the pod's `status.hostIP`).
    pub host: String,
    /// The kubelet's port (`ARGO_KUBELET_PORT`, 10250).
    pub port: u16,
    /// Skip verifying the kubelet's certificate (`ARGO_KUBELET_INSECURE`).
    pub insecure: bool,
    /// The service account's token, sent as `Authorization: Bearer` (re-read when it rotates).
    pub token_file: PathBuf,
    /// The CA that signed the kubelet's certificate (the service account's `ca.crt`).
    pub ca_file: PathBuf,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub pod: String,
}

/// A client of one node's kubelet, for one pod of it.
#[derive(Clone)]
pub struct KubeletClient {
    client: kube::Client,
    endpoint: String,
    ca_file: Option<PathBuf>,
    namespace: String,
    pod: String,
}

impl std::fmt::Debug for KubeletClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeletClient")
            .field("endpoint", &self.endpoint)
            .field("namespace", &self.namespace)
            .field("pod", &self.pod)
            .finish_non_exhaustive()
    }
}

impl KubeletClient {
    /// The client for the kubelet of `options`; fails if the token or the CA cannot be read.
    /// Call it within a Tokio runtime (kube's client starts a task of its own).
    pub fn new(options: KubeletOptions) -> Result<Self, Error> {
        let host = if options.host.contains(':') && !options.host.starts_with('[') {
            format!("[{}]", options.host)
        } else {
            options.host.clone()
        };
        let endpoint = format!("https://{host}:{}", options.port);
        let url: http::Uri = endpoint.parse().map_err(|e: http::uri::InvalidUri| {
            config_error(format!(
                "the kubelet's address {endpoint:?} (ARGO_KUBELET_HOST, ARGO_KUBELET_PORT)"
            ))(e.into())
        })?;
        let mut config = kube::Config::new(url);
        config.default_namespace = options.namespace.clone();
        // Our callers decide what a failure costs.
        config.default_retry = false;
        config.auth_info.token_file = Some(options.token_file.to_string_lossy().into_owned());
        let ca_file = if options.insecure {
            tracing::warn!("Using a kubelet client with insecure options (ARGO_KUBELET_INSECURE)");
            config.accept_invalid_certs = true;
            None
        } else {
            let what = || {
                format!(
                    "the CA of the kubelet's certificate {} (ARGO_KUBELET_INSECURE=true skips the check)",
                    options.ca_file.display()
                )
            };
            let pem =
                std::fs::read(&options.ca_file).map_err(|e| config_error(what())(e.into()))?;
            let certs = pem_certificates(&pem);
            if certs.is_empty() {
                return Err(config_error(what())("it holds no PEM certificate".into()));
            }
            config.root_cert = Some(certs);
            // kube re-reads the file as the CA rotates.
            config.root_cert_file = Some(options.ca_file.clone());
            Some(options.ca_file.clone())
        };
        let client = kube::Client::try_from(config).map_err(|e| {
            config_error(format!(
                "the kubelet client (token {})",
                options.token_file.display()
            ))(e.into())
        })?;
        Ok(Self {
            client,
            endpoint,
            ca_file,
            namespace: options.namespace,
            pod: options.pod,
        })
    }

    /// `https://host:port`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The pod's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The pod's name.
    pub fn pod(&self) -> &str {
        &self.pod
    }

    fn params(&self) -> KubeletDebugParams<'_> {
        KubeletDebugParams {
            name: &self.pod,
            namespace: &self.namespace,
            pod_uid: None,
        }
    }

    /// A failed request, explained: a refused token, a missing permission, an untrusted
    /// certificate.
    fn failed(&self, what: String, source: kube::Error) -> Error {
        let hint = match (&source, &self.ca_file) {
            (kube::Error::Api(status), _) if status.code == 401 => {
                " (401 Unauthorized: the kubelet refused the service account's token)".to_owned()
            }
            (kube::Error::Api(status), _) if status.code == 403 => {
                " (403 Forbidden: the service account needs `get` on nodes/proxy, see manifests/rbac/kubelet.yaml)"
                    .to_owned()
            }
            (_, Some(ca)) if is_certificate_error(&source) => format!(
                " (the kubelet's certificate is not signed by the CA in {}; ARGO_KUBELET_INSECURE=true skips the check)",
                ca.display()
            ),
            _ => String::new(),
        };
        Error::Kubelet {
            what: format!("{what} from the kubelet at {}", self.endpoint),
            hint,
            source,
        }
    }

    /// Every pod of the node, as the kubelet last heard of them (`GET /pods`).
    pub async fn pods(&self) -> Result<Vec<Pod>, Error> {
        let request = http::Request::get("/pods")
            .body(Vec::new())
            .map_err(|e| self.failed("build GET /pods".into(), kube::Error::HttpError(e)))?;
        let list: kube::core::ObjectList<Pod> = self
            .client
            .request(request)
            .await
            .map_err(|e| self.failed("GET /pods".into(), e))?;
        Ok(list.items)
    }

    /// The whole log of `container` of the pod, stdout and stderr combined (the kubelet serves no
    /// other form).
    pub async fn container_log(&self, container: &str) -> Result<ContainerLog, Error> {
        self.log(container, &LogParams::default(), "get the log")
            .await
    }

    /// The log of `container` from `since` on, followed: the kubelet ends it once the container
    /// stopped (its log reader checks the container's state at least once a second).
    pub async fn follow_log(
        &self,
        container: &str,
        since: jiff::Timestamp,
    ) -> Result<ContainerLog, Error> {
        let params = LogParams {
            follow: true,
            since_time: Some(since),
            ..LogParams::default()
        };
        self.log(container, &params, "follow the log").await
    }

    async fn log(
        &self,
        container: &str,
        params: &LogParams,
        action: &str,
    ) -> Result<ContainerLog, Error> {
        let log = self
            .client
            .kubelet_node_logs(&self.params(), container, params)
            .await
            .map_err(|e| self.failed(format!("{action} of container {container:?}"), e))?;
        Ok(Box::new(log.compat()))
    }

    /// Runs `argv` in `container` of the pod through the kubelet (`/exec`), its stdout and
    /// stderr attached, no stdin.
    pub async fn exec(&self, container: &str, argv: &[&str]) -> Result<AttachedProcess, Error> {
        let params = AttachParams::default().stdout(true).stderr(true);
        self.client
            .kubelet_node_exec(&self.params(), container, argv.iter().copied(), &params)
            .await
            .map_err(|e| self.failed(format!("exec {argv:?} in container {container:?}"), e))
    }
}

/// The DER certificates of a PEM bundle.
fn pem_certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject as _;
    CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .map(|c| c.to_vec())
        .collect()
}

/// Whether the connection failed because the server's certificate was not trusted.
fn is_certificate_error(error: &kube::Error) -> bool {
    matches!(
        rustls_cause(error),
        Some(rustls::Error::InvalidCertificate(_))
    )
}

/// The TLS error under `error`. An `io::Error` hides the error it wraps from `source()` (it
/// returns that error's own source), and connectors wrap TLS errors in one or two of them.
fn rustls_cause<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let wrapped = error
        .downcast_ref::<io::Error>()
        .and_then(io::Error::get_ref)
        .and_then(|inner| rustls_cause(inner));
    wrapped.or_else(|| error.source().and_then(rustls_cause))
}
