//! `run --api --kubeconfig FILE`: the pod served by an existing Kubernetes API server instead of
//! the run's own, so that two executors can be compared against the same real server.
//!
//! The runner reaches the server as the kubeconfig's user (an admin: it creates the pod and
//! writes its status), and init and wait get another kubeconfig (`--executor-kubeconfig`, the
//! pod's service account in a cluster), copied into the work directory. There is no kubelet:
//! `pods/exec` and `pods/log` are not served, which an Argo v4 (emissary) pod does not need (its
//! wait only creates and patches a WorkflowTaskResult). The pod is created with the server's uid
//! (read back for the containers' `metadata.uid`), its status follows the run as under the run's
//! own server, and it is left in place at the end, as kubelet leaves a finished pod.

use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::{Value, json};

use argoexec_config::SERVICE_ACCOUNT_DIR;
use argoexec_testkube::{ServerOptions, TestKube};

use crate::Error;
use crate::env::PodInfo;
use crate::plan::{ApiRuntime, ExecutorAccess, ExistingServer, random_uid};
use crate::shim::BindMount;

/// Where the run's pod is served: the run's own server, or an existing one.
#[derive(Debug)]
pub(crate) enum Server {
    /// The in-process API server of `argoexec-testkube`.
    Fake(TestKube),
    /// An existing API server.
    Remote(Remote),
}

impl Server {
    /// Creates `object` (a Pod, Secret or ConfigMap; status included on the run's own server)
    /// and returns it as the server has it.
    pub(crate) fn apply(&self, object: Value) -> Result<Value, Error> {
        match self {
            Self::Fake(server) => Ok(server.apply(object)),
            Self::Remote(remote) => remote.create(object),
        }
    }

    /// An object by its resource (plural), namespace and name.
    pub(crate) fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        match self {
            Self::Fake(server) => server.get(plural, namespace, name),
            Self::Remote(remote) => remote.get(plural, namespace, name),
        }
    }

    /// Replaces the pod's status.
    pub(crate) fn set_pod_status(&self, namespace: &str, pod: &str, status: Value) {
        match self {
            Self::Fake(server) => server.set_pod_status(namespace, pod, status),
            Self::Remote(remote) => remote.set_pod_status(namespace, pod, status),
        }
    }
}

/// An existing API server, reached as the admin kubeconfig's user.
pub(crate) struct Remote {
    client: kube::Client,
    handle: tokio::runtime::Handle,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("server", &self.client.default_namespace())
            .finish_non_exhaustive()
    }
}

fn failed(what: String) -> impl FnOnce(kube::Error) -> Error {
    move |e| Error::Process {
        what,
        source: std::io::Error::other(e.to_string()),
    }
}

impl Remote {
    /// Connects with the kubeconfig at `path`.
    pub(crate) fn connect(path: &Path) -> Result<Self, Error> {
        let handle = tokio::runtime::Handle::current();
        let fail = |message: String| Error::Process {
            what: format!("use the kubeconfig {}", path.display()),
            source: std::io::Error::other(message),
        };
        let client = tokio::task::block_in_place(|| {
            handle.block_on(async {
                let kubeconfig =
                    kube::config::Kubeconfig::read_from(path).map_err(|e| fail(e.to_string()))?;
                let config = kube::Config::from_custom_kubeconfig(
                    kubeconfig,
                    &kube::config::KubeConfigOptions::default(),
                )
                .await
                .map_err(|e| fail(e.to_string()))?;
                kube::Client::try_from(config).map_err(|e| fail(e.to_string()))
            })
        })?;
        Ok(Self { client, handle })
    }

    fn block_on<F: std::future::Future>(&self, future: F) -> F::Output {
        tokio::task::block_in_place(|| self.handle.block_on(future))
    }

    fn resource(plural: &str) -> ApiResource {
        let (group, version, kind) = match plural {
            "workflowtaskresults" => ("argoproj.io", "v1alpha1", "WorkflowTaskResult"),
            "secrets" => ("", "v1", "Secret"),
            "configmaps" => ("", "v1", "ConfigMap"),
            _ => ("", "v1", "Pod"),
        };
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: if group.is_empty() {
                version.into()
            } else {
                format!("{group}/{version}")
            },
            kind: kind.into(),
            plural: plural.into(),
        }
    }

    fn create(&self, mut object: Value) -> Result<Value, Error> {
        let kind = object["kind"].as_str().unwrap_or("Pod").to_owned();
        let namespace = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        let name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let status = object.as_object_mut().and_then(|o| o.remove("status"));
        if let Some(meta) = object["metadata"].as_object_mut() {
            // The server gives the uid.
            meta.remove("uid");
        }
        let what = format!("create {kind} {namespace}/{name} on the API server");
        let plural = match kind.as_str() {
            "Secret" => "secrets",
            "ConfigMap" => "configmaps",
            _ => "pods",
        };
        let resource = Self::resource(plural);
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &namespace, &resource);
        let typed: DynamicObject = serde_json::from_value(object).map_err(|e| Error::Process {
            what: what.clone(),
            source: std::io::Error::other(e),
        })?;
        let created = if plural == "pods" {
            self.block_on(api.create(&PostParams::default(), &typed))
        } else {
            // A Secret or ConfigMap an earlier run left is brought up to date.
            let params = PatchParams::apply("argoexec-run").force();
            self.block_on(api.patch(&name, &params, &Patch::Apply(&typed)))
        }
        .map_err(failed(what.clone()))?;
        if let (Some(status), "pods") = (status, plural) {
            self.set_pod_status(&namespace, &name, status);
        }
        serde_json::to_value(created).map_err(|e| Error::Process {
            what,
            source: std::io::Error::other(e),
        })
    }

    fn get(&self, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &Self::resource(plural));
        match self.block_on(api.get_opt(name)) {
            Ok(found) => found.and_then(|o| serde_json::to_value(o).ok()),
            Err(err) => {
                tracing::warn!(%plural, %name, error = %err, "Failed to read from the API server");
                None
            }
        }
    }

    fn set_pod_status(&self, namespace: &str, pod: &str, status: Value) {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let patch = Patch::Merge(json!({ "status": status }));
        if let Err(err) = self.block_on(api.patch_status(pod, &PatchParams::default(), &patch)) {
            tracing::warn!(%pod, error = %err, "Failed to update the pod's status on the API server");
        }
    }
}

/// Starts the run's own API server; writes the kubeconfig init and wait use into `kube_dir` (for
/// the kubelet runtime, also the service account's token and the server's CA, served over HTTPS).
pub(crate) fn start_own(
    runtime: ApiRuntime,
    kube_dir: &Path,
    info: &PodInfo,
) -> Result<(Server, ExecutorAccess), Error> {
    let options = match runtime {
        ApiRuntime::K8sApi => ServerOptions::default(),
        // The kubelet runtime takes the node's kubelet over HTTPS with the pod's token.
        ApiRuntime::Kubelet => ServerOptions::default().tls().token(&random_uid()),
    };
    let server = TestKube::start_with(options).map_err(|source| Error::Process {
        what: "start the pod's Kubernetes API server".into(),
        source,
    })?;
    let kubeconfig = kube_dir.join("config");
    server
        .write_kubeconfig(&kubeconfig, &info.namespace)
        .map_err(Error::io("write kubeconfig", &kubeconfig))?;
    let mut access = ExecutorAccess {
        env: vec![(
            argoexec_config::env::KUBECONFIG.into(),
            kubeconfig.display().to_string(),
        )],
        mounts: Vec::new(),
    };
    if let (Some(token), Some(ca)) = (server.token(), server.ca_pem()) {
        let account = kube_dir.join("serviceaccount");
        std::fs::create_dir_all(&account).map_err(Error::io("create", &account))?;
        let files = [
            ("token", token.as_str()),
            ("ca.crt", ca),
            ("namespace", info.namespace.as_str()),
        ];
        for (file, text) in files {
            let path = account.join(file);
            std::fs::write(&path, text).map_err(Error::io("write", &path))?;
        }
        access.env.extend([
            (
                argoexec_config::env::ARGO_KUBELET_HOST.into(),
                "127.0.0.1".into(),
            ),
            (
                argoexec_config::env::ARGO_KUBELET_PORT.into(),
                server.port().to_string(),
            ),
        ]);
        access.mounts.push(BindMount {
            source: account,
            target: SERVICE_ACCOUNT_DIR.into(),
            read_only: true,
        });
    }
    Ok((Server::Fake(server), access))
}

/// Connects to an existing API server (`run --kubeconfig`) and copies the executor's kubeconfig
/// into `kube_dir`, where init and wait read it.
pub(crate) fn connect_existing(
    existing: &ExistingServer,
    kube_dir: &Path,
) -> Result<(Server, ExecutorAccess), Error> {
    let remote = Remote::connect(&existing.kubeconfig)?;
    let kubeconfig = kube_dir.join("config");
    std::fs::copy(&existing.executor_kubeconfig, &kubeconfig)
        .map_err(Error::io("copy kubeconfig", &existing.executor_kubeconfig))?;
    let access = ExecutorAccess {
        env: vec![(
            argoexec_config::env::KUBECONFIG.into(),
            kubeconfig.display().to_string(),
        )],
        mounts: Vec::new(),
    };
    Ok((Server::Remote(remote), access))
}
