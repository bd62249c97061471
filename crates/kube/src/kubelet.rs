//! The `kubelet` runtime: the pod seen through the API of its node's kubelet
//! (`ARGO_KUBELET_HOST:ARGO_KUBELET_PORT`, HTTPS, the service account's bearer token; the kubelet
//! authorises it as `nodes/proxy`), as Argo's `workflow/executor/kubelet` sees it.
//!
//! - State: `GET /pods` (every pod of the node; ours is picked by namespace and name).
//! - Exits: the kubelet has no watch, and Argo polls `/pods` every 5 s
//!   (`WAIT_CONTAINER_STATUS_CHECK_INTERVAL`). Here, while the container runs, wait follows its
//!   log (`/containerLogs/...?follow=true`), which the kubelet ends once the container stops
//!   (its log reader checks the container's state at least once a second). The request asks for
//!   lines written after the year 9999 (`sinceTime`), so the kubelet sends none of the log: the
//!   stream is only a signal. Then `/pods` is read again at once, and after 50 ms, 100 ms, ...
//!   up to 1 s apart until the pod's status says terminated (the kubelet serves the status the
//!   API server last sent it, which can lag the exit). A followed stream is also cut every 10 s
//!   to re-read `/pods`; where the log cannot be followed, `/pods` is polled the same way (up to
//!   once a second). Waiting for a start polls `/pods` so too.
//! - Kills: exec `/bin/sh -c "kill -15 1"` through the kubelet (`/exec/...`, websocket), then
//!   `kill -9 1` after the grace, as the k8sapi runtime does; refused where PID 1 is not the
//!   container's (shareProcessNamespace, hostPID).
//! - Logs: `/containerLogs/...`, stdout and stderr combined (the kubelet serves no other), so
//!   [`LogStream::Stdout`] gets the combined log, as in Argo, with a warning.
//! - Files of the container's image cannot be read: [`Kubelet::open_path`] says so. Outputs must
//!   be on a volume, which wait reads through its own mounts (`/mainctrfs/...`), as in Argo.

use std::error::Error as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use argoexec_runtime::{
    ByteStream, ContainerRuntime, Error, ExitStatus, KillOutcome, LogStream, PathSource,
};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{AttachParams, LogParams};
use kube::core::kubelet_debug::KubeletDebugParams;
use tokio::io::AsyncReadExt as _;
use tokio_util::compat::FuturesAsyncReadCompatExt as _;
use tokio_util::io::ReaderStream;

use crate::k8sapi::{
    STDERR_LIMIT, check, deadline_exceeded, in_spec, is_terminated, kill_gracefully, signallable,
    state,
};

/// `sinceTime` of the followed log: 9999-01-01T00:00:00Z, after every line the container writes.
const FAR_FUTURE_SECOND: i64 = 253_370_764_800;
/// A followed log is cut this often to read `/pods` anyway.
const BACKSTOP: Duration = Duration::from_secs(10);
/// The slowest `/pods` poll: when the log cannot be followed, or after it ended.
const POLL: Duration = Duration::from_secs(1);
/// The first delay between two reads of `/pods` that both found the container still running.
const FIRST_RETRY: Duration = Duration::from_millis(50);
/// What the images must hold, for errors.
const NEEDS: &str = "the kubelet runtime needs `sh` in every container it kills";
/// Why image files cannot be read, for errors.
const NO_IMAGE_FILES: &str = "read files of a container's image: base-image outputs are not \
    available with the kubelet runtime (nor in Argo's); put output parameters and artifacts on a \
    volume mounted in the main container (e.g. an emptyDir), or use the emissary runtime";

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

/// The `kubelet` runtime for one pod.
#[derive(Clone)]
pub struct Kubelet {
    client: kube::Client,
    endpoint: String,
    ca_file: Option<PathBuf>,
    namespace: String,
    pod: String,
}

impl std::fmt::Debug for Kubelet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kubelet")
            .field("endpoint", &self.endpoint)
            .field("namespace", &self.namespace)
            .field("pod", &self.pod)
            .finish_non_exhaustive()
    }
}

fn config_error(
    what: String,
) -> impl FnOnce(Box<dyn std::error::Error + Send + Sync>) -> crate::Error {
    move |source| crate::Error::Config { what, source }
}

impl Kubelet {
    /// The client for the kubelet of `options`; fails if the token or the CA cannot be read.
    /// Call it within a Tokio runtime (kube's client starts a task of its own).
    pub fn new(options: KubeletOptions) -> Result<Self, crate::Error> {
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

    fn params(&self) -> KubeletDebugParams<'_> {
        KubeletDebugParams {
            name: &self.pod,
            namespace: &self.namespace,
            pod_uid: None,
        }
    }

    /// A failed call, explained: a refused token, a missing permission, an untrusted certificate.
    fn failed(&self, what: &str, error: kube::Error) -> Error {
        let hint = match (&error, &self.ca_file) {
            (kube::Error::Api(status), _) if status.code == 401 => {
                " (401 Unauthorized: the kubelet refused the service account's token)".to_owned()
            }
            (kube::Error::Api(status), _) if status.code == 403 => {
                " (403 Forbidden: the service account needs `get` on nodes/proxy, see manifests/rbac/kubelet.yaml)"
                    .to_owned()
            }
            (_, Some(ca)) if is_certificate_error(&error) => format!(
                " (the kubelet's certificate is not signed by the CA in {}; ARGO_KUBELET_INSECURE=true skips the check)",
                ca.display()
            ),
            _ => String::new(),
        };
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Error::io(
            format!("{what} from the kubelet at {}{hint}", self.endpoint),
            io::Error::other(message),
        )
    }

    /// Our pod, from the kubelet's `/pods`.
    async fn pod(&self) -> Result<Pod, Error> {
        let request = http::Request::get("/pods")
            .body(Vec::new())
            .map_err(|e| Error::io("build GET /pods", io::Error::other(e)))?;
        let list: kube::core::ObjectList<Pod> = self
            .client
            .request(request)
            .await
            .map_err(|e| self.failed("GET /pods", e))?;
        list.items
            .into_iter()
            .find(|p| {
                p.metadata.namespace.as_deref() == Some(&self.namespace)
                    && p.metadata.name.as_deref() == Some(&self.pod)
            })
            .ok_or_else(|| {
                Error::io(
                    format!("GET /pods from the kubelet at {}", self.endpoint),
                    io::Error::new(
                        io::ErrorKind::NotFound,
                        format!(
                            "pod {}/{} is not in the kubelet's pod list (is ARGO_KUBELET_HOST this pod's node?)",
                            self.namespace, self.pod
                        ),
                    ),
                )
            })
    }

    /// Follows `container`'s log until the kubelet ends it (the container stopped), receiving
    /// none of it.
    async fn follow(&self, container: &str) -> Result<(), Error> {
        let params = LogParams {
            follow: true,
            since_time: jiff::Timestamp::from_second(FAR_FUTURE_SECOND).ok(),
            ..LogParams::default()
        };
        let what = format!("follow the log of container {container:?}");
        let log = self
            .client
            .kubelet_node_logs(&self.params(), container, &params)
            .await
            .map_err(|e| self.failed(&what, e))?;
        tokio::io::copy(&mut log.compat(), &mut tokio::io::sink())
            .await
            .map_err(|e| Error::io(what, e))?;
        Ok(())
    }

    /// Reads `/pods` until `container` has started (`exited` false) or exited, or the pod passed
    /// its deadline. While it runs and its exit is awaited, follows its log between reads; once
    /// the log ended (or cannot be followed), reads again at once, then 50 ms, 100 ms, ... up to
    /// 1 s apart.
    async fn wait_for(&self, container: &str, exited: bool) -> Result<Pod, Error> {
        let mut delay = Duration::ZERO;
        let mut follow = exited;
        loop {
            tokio::time::sleep(delay).await;
            let pod = self.pod().await?;
            if !in_spec(&pod, container) {
                return Err(Error::ContainerNotFound {
                    container: container.to_owned(),
                });
            }
            let running = state(&pod, container).is_some_and(|s| s.running.is_some());
            let done = if exited {
                is_terminated(&pod, container)
            } else {
                running || is_terminated(&pod, container)
            };
            if done || deadline_exceeded(&pod) {
                return Ok(pod);
            }
            if follow && running {
                match tokio::time::timeout(BACKSTOP, self.follow(container)).await {
                    // The container stopped: its status follows soon.
                    Ok(Ok(())) => follow = false,
                    Ok(Err(e)) => {
                        tracing::info!(container, error = %e, "Cannot follow the log: polling the kubelet's /pods");
                        follow = false;
                    }
                    // The backstop: read /pods, then follow again.
                    Err(_) => {}
                }
                delay = Duration::ZERO;
                continue;
            }
            delay = (delay * 2).clamp(FIRST_RETRY, POLL);
        }
    }

    /// Signals PID 1 of `container`, unless it has exited.
    async fn signal(&self, container: &str, signal: u8) -> Result<bool, Error> {
        let pod = self.pod().await?;
        if !signallable(&pod, container, "kubelet")? {
            return Ok(false);
        }
        match self.exec(container, &format!("kill -{signal} 1")).await {
            Ok(()) => Ok(true),
            // It may have exited between the read and the exec.
            Err(e) if is_terminated(&self.pod().await?, container) => {
                tracing::debug!(container, error = %e, "Container exited before its signal");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Runs `/bin/sh -c script` in `container` through the kubelet, to its end.
    async fn exec(&self, container: &str, script: &str) -> Result<(), Error> {
        let what = format!("exec /bin/sh -c {script:?} in container {container:?}");
        let argv = ["/bin/sh", "-c", script];
        let params = AttachParams::default().stdout(true).stderr(true);
        let mut process = self
            .client
            .kubelet_node_exec(&self.params(), container, argv, &params)
            .await
            .map_err(|e| self.failed(&what, e))?;
        let status = process.take_status();
        let (Some(mut stdout), Some(mut stderr)) = (process.stdout(), process.stderr()) else {
            return Err(Error::io(what, io::Error::other("the exec has no output")));
        };
        let mut text = Vec::new();
        // Both drained together, so that neither blocks the other.
        let (mut sink, mut head) = (tokio::io::sink(), (&mut stderr).take(STDERR_LIMIT as u64));
        let _ = tokio::join!(
            tokio::io::copy(&mut stdout, &mut sink),
            head.read_to_end(&mut text),
        );
        let _ = tokio::io::copy(&mut stderr, &mut tokio::io::sink()).await;
        let status = match status {
            Some(status) => status.await,
            None => None,
        };
        drop(process);
        let stderr = String::from_utf8_lossy(&text).trim().to_owned();
        check(container, "/bin/sh", status, &stderr, NEEDS)
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

impl ContainerRuntime for Kubelet {
    fn name(&self) -> &'static str {
        "kubelet"
    }

    async fn containers(&self) -> Result<Vec<String>, Error> {
        let pod = self.pod().await?;
        Ok(pod
            .spec
            .map(|s| s.containers.into_iter().map(|c| c.name).collect())
            .unwrap_or_default())
    }

    async fn wait_started(&self, container: &str) -> Result<(), Error> {
        self.wait_for(container, false).await.map(drop)
    }

    async fn wait_exited(&self, container: &str) -> Result<ExitStatus, Error> {
        let pod = self.wait_for(container, true).await?;
        let code = state(&pod, container)
            .and_then(|s| s.terminated.as_ref())
            .map(|t| t.exit_code);
        if code.is_none() {
            tracing::info!(container, pod = %self.pod, "Pod deadline exceeded: container counts as exited");
        }
        Ok(ExitStatus { code })
    }

    async fn kill(&self, container: &str, grace: Duration) -> Result<KillOutcome, Error> {
        kill_gracefully(
            container,
            &self.pod,
            grace,
            |signal| self.signal(container, signal),
            || self.wait_exited(container),
        )
        .await
    }

    async fn open_path(&self, _container: &str, _path: &Path) -> Result<PathSource, Error> {
        Err(Error::Unsupported {
            runtime: "kubelet",
            what: NO_IMAGE_FILES,
        })
    }

    async fn logs(&self, container: &str, stream: LogStream) -> Result<ByteStream, Error> {
        if stream == LogStream::Stdout {
            tracing::warn!(
                container,
                "The kubelet runtime reads stdout and stderr combined"
            );
        }
        let what = format!("get the log of container {container:?}");
        let log = self
            .client
            .kubelet_node_logs(&self.params(), container, &LogParams::default())
            .await
            .map_err(|e| self.failed(&what, e))?;
        Ok(ReaderStream::new(log.compat()).boxed())
    }
}
