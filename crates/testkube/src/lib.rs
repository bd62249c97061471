//! A fake Kubernetes API server for tests: it speaks the real HTTP protocol (JSON, watch streams
//! of JSON lines with resourceVersions and BOOKMARKs, merge patches, `pods/log`, discovery), so
//! kube-rs and `kubectl` talk to it as to a cluster. No kube-apiserver runs on these machines.
//!
//! [`TestKube::start`] serves on `127.0.0.1` on a random port from a thread of its own, so both
//! async tests and tests that run the real binary can use it. The test seeds objects
//! ([`TestKube::apply`]), drives pods ([`TestKube::set_container_state`]), supplies logs
//! ([`TestKube::set_log`]), reads back what the client wrote ([`TestKube::get`]) and every request
//! ([`TestKube::requests`]), and injects faults: latency, failing statuses ([`Fault`]), dropped
//! watch streams and expired resourceVersions (410 Gone). SelfSubjectAccessReviews are answered
//! from a deny list ([`TestKube::deny`]).
//!
//! Served: pods, secrets, configmaps (core v1) and workflowtaskresults, workflows
//! (argoproj.io/v1alpha1): get, list, watch, create, update, merge and strategic-merge patch (as
//! a merge patch: this server holds no schemas, which is exact for the metadata maps the executor
//! patches), delete; `pods/log` (`container`, `follow`, `timestamps`); `pods/exec` over a websocket (v4 and
//! v5 channel protocols) through a test-supplied [`ExecHandler`] ([`TestKube::set_exec`]). Not
//! yet: JSON patch, server-side apply.
//!
//! It also plays the kubelet's API for the kubelet runtime: `GET /pods` (every pod it holds),
//! `GET /containerLogs/{ns}/{pod}/{container}` (as `pods/log`, with `sinceTime`) and exec at
//! `/exec/{ns}/{pod}/{container}` (kubelet's `input`/`output`/`error` parameters), over HTTPS
//! with a CA made at start and a bearer token check when [`ServerOptions`] ask for them.

mod exec;
mod respond;
mod server;
mod store;
mod tls;

pub use exec::{ExecHandler, ExecTarget, LocalExec, Pid1Exec};
// `argoexec run --api`: an exec refused as kubelet refuses it.
pub use exec::ExecRefusal;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};

use crate::store::Store;

/// One request the server received, as the request log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GET`, `POST`, `PATCH`, ...
    pub method: String,
    /// The path, e.g. `/api/v1/namespaces/ns/pods/p`.
    pub path: String,
    /// The query string, without `?`.
    pub query: String,
    /// The Kubernetes verb: get, list, watch, create, update, patch, delete, or `discovery`.
    pub verb: String,
    /// The status answered.
    pub status: u16,
}

/// A failure the server answers instead of serving, for requests that match.
#[derive(Debug, Clone)]
pub struct Fault {
    status: u16,
    method: Option<String>,
    path_contains: Option<String>,
    times: Option<u32>,
}

impl Fault {
    /// Answer `status` (with a Kubernetes `Status` body) to every request, until narrowed.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            method: None,
            path_contains: None,
            times: None,
        }
    }

    /// Only requests with this method.
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Only requests whose path contains `part` (e.g. `/workflowtaskresults`).
    pub fn path_contains(mut self, part: &str) -> Self {
        self.path_contains = Some(part.to_owned());
        self
    }

    /// Only the next `n` matching requests (default: all of them).
    pub fn times(mut self, n: u32) -> Self {
        self.times = Some(n);
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.times != Some(0)
            && self.method.as_deref().is_none_or(|m| m == method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
    }
}

/// Where a container's log comes from.
#[derive(Debug, Clone)]
pub enum LogSource {
    /// These bytes.
    Bytes(bytes::Bytes),
    /// This file; `follow` keeps reading it until the container is terminated.
    File(PathBuf),
}

/// How [`TestKube::start_with`] serves: plain HTTP unless asked otherwise, any credentials.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    tls: bool,
    token: Option<String>,
}

impl ServerOptions {
    /// Serve HTTPS with a server certificate for `127.0.0.1`/`localhost` signed by a CA made at
    /// start ([`TestKube::ca_pem`]).
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Answer 401 to every request without `Authorization: Bearer <token>`.
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }
}

#[derive(Debug)]
struct Inner {
    store: Store,
    token: Option<String>,
    requests: Vec<Request>,
    faults: Vec<Fault>,
    latency: Duration,
    drop_watches: u32,
    expire_watches: u32,
    bookmark_interval: Duration,
    denied: Vec<(String, String)>,
    logs: HashMap<(String, String, String), LogSource>,
    exec: Arc<dyn ExecHandler>,
}

#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
    changes: tokio::sync::broadcast::Sender<store::Change>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked while holding the lock poisons it; the data is still the test's.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A running fake API server; stops when dropped.
#[derive(Debug)]
pub struct TestKube {
    url: String,
    ca_pem: Option<String>,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl TestKube {
    /// Starts a server on `127.0.0.1` on a free port, plain HTTP, any credentials.
    pub fn start() -> std::io::Result<Self> {
        Self::start_with(ServerOptions::default())
    }

    /// Starts a server on `127.0.0.1` on a free port, as `options` say.
    pub fn start_with(options: ServerOptions) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let certificates = options.tls.then(tls::generate).transpose()?;
        let scheme = if options.tls { "https" } else { "http" };
        let url = format!("{scheme}://{}", listener.local_addr()?);
        let (changes, _) = tokio::sync::broadcast::channel(4096);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                store: Store::default(),
                token: options.token,
                requests: Vec::new(),
                faults: Vec::new(),
                latency: Duration::ZERO,
                drop_watches: 0,
                expire_watches: 0,
                bookmark_interval: Duration::from_secs(1),
                denied: Vec::new(),
                logs: HashMap::new(),
                exec: Arc::new(LocalExec::default()),
            }),
            changes,
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(Arc::clone(&shared));
        let ca_pem = certificates.as_ref().map(|c| c.ca_pem.clone());
        let acceptor = certificates.map(|c| c.acceptor);
        let thread = std::thread::Builder::new()
            .name("testkube".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                        return;
                    };
                    match acceptor {
                        Some(acceptor) => tokio::select! {
                            () = tls::serve(listener, app, acceptor) => {}
                            _ = stopped => {}
                        },
                        None => tokio::select! {
                            _ = axum::serve(listener, app) => {}
                            _ = stopped => {}
                        },
                    }
                });
                // Open watch streams would hold a graceful shutdown until they time out.
                runtime.shutdown_background();
            })?;
        Ok(Self {
            url,
            ca_pem,
            shared,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The server's URL, `http://127.0.0.1:PORT` (`https://` when serving TLS).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_default()
    }

    /// The CA that signed the server's certificate, PEM, when serving TLS.
    pub fn ca_pem(&self) -> Option<&str> {
        self.ca_pem.as_deref()
    }

    /// Writes a kubeconfig for this server (context `testkube`, the bearer token the server
    /// checks or `testkube-token`, default namespace `namespace`; over TLS, the CA written next
    /// to it as `<path>.ca.crt`) and returns its path.
    pub fn write_kubeconfig(&self, path: &Path, namespace: &str) -> std::io::Result<PathBuf> {
        let token = self.token().unwrap_or_else(|| "testkube-token".to_owned());
        let ca = match &self.ca_pem {
            Some(pem) => {
                let mut ca = path.as_os_str().to_owned();
                ca.push(".ca.crt");
                let ca = PathBuf::from(ca);
                std::fs::write(&ca, pem)?;
                format!("\n    certificate-authority: {}", ca.display())
            }
            None => String::new(),
        };
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: testkube\n  cluster:\n    server: {}{ca}\n\
             users:\n- name: testkube\n  user:\n    token: {token}\n\
             contexts:\n- name: testkube\n  context:\n    cluster: testkube\n    user: testkube\n    namespace: {namespace}\n\
             current-context: testkube\n",
            self.url
        );
        std::fs::write(path, config)?;
        Ok(path.to_owned())
    }

    /// The bearer token the server requires, if it requires one.
    pub fn token(&self) -> Option<String> {
        self.shared.lock().token.clone()
    }

    /// Creates or replaces an object (`apiVersion` and `kind` say what it is; the namespace is
    /// `metadata.namespace`, else `default`). Returns it as stored.
    pub fn apply(&self, object: Value) -> Value {
        let (resource, ns, name) = identify(&object);
        let mut inner = self.shared.lock();
        let result = if inner.store.get(resource.plural, &ns, &name).is_some() {
            let mut object = object;
            if let Some(meta) = object["metadata"].as_object_mut() {
                meta.remove("resourceVersion");
            }
            inner.store.replace(resource, &ns, &name, object)
        } else {
            inner.store.create(resource, &ns, object)
        };
        match result {
            Ok(change) => {
                let _ = self.shared.changes.send(change.clone());
                change.object
            }
            Err(e) => panic!("testkube: cannot apply {ns}/{name}: {e:?}"),
        }
    }

    /// An object as stored, e.g. `get("pods", "ns", "p")`.
    pub fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let resource = store::RESOURCES.iter().find(|r| r.plural == plural)?;
        self.shared
            .lock()
            .store
            .get(resource.plural, namespace, name)
            .cloned()
    }

    /// Host process `child` is container `container` of the pod, as for a test playing the
    /// kubelet: running in the pod's status now, terminated with its exit code (128 + N for
    /// signal N) once it ends. The returned thread gives that code.
    pub fn adopt(
        self: &Arc<Self>,
        namespace: &str,
        pod: &str,
        container: &str,
        mut child: std::process::Child,
    ) -> std::thread::JoinHandle<i32> {
        use std::os::unix::process::ExitStatusExt as _;
        self.set_container_state(namespace, pod, container, json!({"running": {}}));
        let server = Arc::clone(self);
        let (namespace, pod, container) =
            (namespace.to_owned(), pod.to_owned(), container.to_owned());
        std::thread::spawn(move || {
            let code = child.wait().map_or(255, |status| {
                status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
            });
            server.set_container_state(
                &namespace,
                &pod,
                &container,
                json!({"terminated": {"exitCode": code}}),
            );
            code
        })
    }

    /// Sets the state of one container of a pod (`{"running": {...}}`, `{"terminated":
    /// {"exitCode": 0}}`, ...), as kubelet would, and sends the change to watches.
    pub fn set_container_state(&self, namespace: &str, pod: &str, container: &str, state: Value) {
        let mut inner = self.shared.lock();
        let change = inner.store.modify("pods", namespace, pod, |pod| {
            let statuses = &mut pod["status"]["containerStatuses"];
            if !statuses.is_array() {
                *statuses = json!([]);
            }
            if let Value::Array(list) = statuses {
                let ready = state.get("running").is_some();
                let entry = json!({"name": container, "state": state, "ready": ready,
                    "image": "", "imageID": "", "restartCount": 0});
                match list.iter_mut().find(|c| c["name"] == container) {
                    Some(existing) => *existing = entry,
                    None => list.push(entry),
                }
            }
        });
        if let Some(change) = change {
            let _ = self.shared.changes.send(change);
        }
    }

    /// Replaces the whole `status` of a pod, as kubelet reports it (phase, reason, the init and
    /// app containers' statuses), and sends the change to watches.
    pub fn set_pod_status(&self, namespace: &str, pod: &str, status: Value) {
        let mut inner = self.shared.lock();
        let change = inner
            .store
            .modify("pods", namespace, pod, |pod| pod["status"] = status);
        if let Some(change) = change {
            let _ = self.shared.changes.send(change);
        }
    }

    /// Where `pods/log` of `container` reads from.
    pub fn set_log(&self, namespace: &str, pod: &str, container: &str, source: LogSource) {
        self.shared.lock().logs.insert(
            (namespace.to_owned(), pod.to_owned(), container.to_owned()),
            source,
        );
    }

    /// Runs the commands of `pods/exec` through `handler` (default: [`LocalExec`]).
    pub fn set_exec(&self, handler: impl ExecHandler) {
        self.shared.lock().exec = Arc::new(handler);
    }

    /// SelfSubjectAccessReviews for `verb` on `resource` (a plural, e.g. `workflowtaskresults`)
    /// answer "not allowed"; everything else is allowed.
    pub fn deny(&self, verb: &str, resource: &str) {
        self.shared
            .lock()
            .denied
            .push((verb.to_owned(), resource.to_owned()));
    }

    /// Every request so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.shared.lock().requests.clone()
    }

    /// Forgets the requests so far.
    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Adds a fault; the first matching fault with uses left answers.
    pub fn inject(&self, fault: Fault) {
        self.shared.lock().faults.push(fault);
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.shared.lock().faults.clear();
    }

    /// Delays every answer by `latency`.
    pub fn set_latency(&self, latency: Duration) {
        self.shared.lock().latency = latency;
    }

    /// The next `n` watch streams break off (the connection is cut) before sending anything.
    pub fn drop_watches(&self, n: u32) {
        self.shared.lock().drop_watches = n;
    }

    /// The next `n` watches that give a resourceVersion get `410 Gone` (an ERROR event, as the
    /// API server sends when the version was compacted away).
    pub fn expire_watches(&self, n: u32) {
        self.shared.lock().expire_watches = n;
    }

    /// How often a watch that allows bookmarks gets a BOOKMARK (default 1 s).
    pub fn set_bookmark_interval(&self, every: Duration) {
        self.shared.lock().bookmark_interval = every;
    }
}

impl Drop for TestKube {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The resource, namespace and name of an object given by a test.
fn identify(object: &Value) -> (store::Resource, String, String) {
    let api_version = object["apiVersion"].as_str().unwrap_or("v1");
    let kind = object["kind"].as_str().unwrap_or_default();
    let resource = store::RESOURCES
        .iter()
        .copied()
        .find(|r| r.kind == kind && r.api_version() == api_version)
        .unwrap_or_else(|| panic!("testkube: does not serve {api_version} {kind}"));
    let ns = object
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("default")
        .to_owned();
    let name = object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("testkube: object without metadata.name"))
        .to_owned();
    (resource, ns, name)
}
