//! `argoexec run --api`: the pod served through a Kubernetes API server of its own, so that init
//! and wait take the code paths they take in a cluster.
//!
//! With `--kubeconfig` an existing API server serves the pod instead (see the `remote` module:
//! no kubelet there, so no `pods/exec` or `pods/log`). Otherwise the runner starts the in-repo API
//! server (`argoexec-testkube`) on `127.0.0.1`, creates the pod
//! there (with the name, namespace and uid its containers see) and the Secrets and ConfigMaps of
//! `--secrets` / `--configmaps`, and plays kubelet towards it:
//!
//! - the pod's `status` follows the run: phase, `initContainerStatuses` and `containerStatuses`
//!   from `waiting` to `running` (`startedAt`) to `terminated` (`exitCode`, `reason`,
//!   `finishedAt`), and the pod's `DeadlineExceeded` when `activeDeadlineSeconds` passes;
//! - `pods/log` of a container is its combined state file;
//! - `pods/exec` runs the command inside the container ([`NsExec`]: `argoexec __nsexec` enters
//!   the container's PID, mount and UTS namespaces); into a container that is not running it fails
//!   as a cluster does, with kubelet's `container not found ("<name>")` in the `Status`.
//!
//! The pod is rewritten as Argo's controller writes it for the runtime ([`ApiRuntime`]): for
//! `k8sapi`, `ARGO_CONTAINER_RUNTIME_EXECUTOR=k8sapi` and no `shareProcessNamespace`, so every
//! container gets a PID namespace of its own with its command as PID 1. Init and wait find the
//! server through a kubeconfig in the work directory (`KUBECONFIG`; in a cluster they use the
//! pod's service account), and wait reports to it, as the pod's Argo version asks (v2 annotation,
//! v3 WorkflowTaskResult, v4 WorkflowTaskResult with the completion label); the runner reads the
//! outputs back from there. A v4 pod keeps the emissary, the only runtime Argo v4 has: its wait
//! sees main through `/var/run/argo` and only reports through the API.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use argoexec_pod::StepPod;
use argoexec_template::{
    ANNOTATION_NODE_ID, ANNOTATION_NODE_MESSAGE, ANNOTATION_OUTPUTS, Protocol,
};
use argoexec_testkube::{ExecHandler, ExecRefusal, ExecTarget, LogSource};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, EnvVar, Secret};
use serde_json::{Value, json};

use crate::Error;
use crate::env::{KeyedDirs, PodInfo};
use crate::plan::{ApiOptions, ApiRuntime, ExecutorAccess, Role, random_uid};
use crate::remote::{Server, connect_existing, start_own};
use crate::report::ContainerResult;
use crate::shim::COMBINED_FILE;

const RUNTIME_ENV: &str = argoexec_config::env::ARGO_CONTAINER_RUNTIME_EXECUTOR;
/// The pod's reason and message once `activeDeadlineSeconds` passed, as kubelet writes them.
const DEADLINE_REASON: &str = "DeadlineExceeded";
const DEADLINE_MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

/// Rewrites the pod as Argo's controller writes it for `runtime`: every executor container names
/// it, and only a PNS pod shares its process namespace. Gives the pod a uid if it has none, so
/// that the server's and the containers' agree. An Argo v4 pod keeps the emissary, the only
/// runtime v4 has.
pub(crate) fn rewrite(step: &mut StepPod, runtime: ApiRuntime) -> Result<(), Error> {
    let pod = &mut step.pod;
    if pod.metadata.uid.is_none() {
        pod.metadata.uid = Some(random_uid());
    }
    if step.protocol == Protocol::V4 {
        tracing::info!(
            runtime = runtime.executor(),
            "an Argo v4 pod runs only under the emissary: wait keeps it and reports through the API"
        );
        return Ok(());
    }
    let Some(spec) = pod.spec.as_mut() else {
        return Ok(());
    };
    spec.share_process_namespace = None;
    let containers = spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut());
    for c in containers {
        let env = c.env.get_or_insert_with(Vec::new);
        match env.iter_mut().find(|e| e.name == RUNTIME_ENV) {
            Some(var) => {
                var.value = Some(runtime.executor().into());
                var.value_from = None;
            }
            None if c.name == "wait" || c.name == "init" => env.push(EnvVar {
                name: RUNTIME_ENV.into(),
                value: Some(runtime.executor().into()),
                value_from: None,
            }),
            None => {}
        }
    }
    Ok(())
}

/// A running container as an exec sees it.
#[derive(Debug, Clone)]
struct Entered {
    /// The host PID of the container's first process.
    pid: u32,
    env: Vec<(String, String)>,
    cwd: Option<String>,
}

type RunningMap = Arc<Mutex<HashMap<String, Entered>>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind: still usable.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// `pods/exec` inside the container: `argoexec __nsexec --pid PID -- CMD` with the container's
/// environment and working directory.
#[derive(Debug)]
struct NsExec {
    exe: PathBuf,
    running: RunningMap,
}

impl ExecHandler for NsExec {
    fn command(
        &self,
        target: &ExecTarget,
        argv: &[String],
    ) -> std::io::Result<tokio::process::Command> {
        let entered = lock(&self.running).get(&target.container).cloned();
        let Some(entered) = entered else {
            return Err(ExecRefusal::new(not_running(&target.container)).into_io());
        };
        let mut command = tokio::process::Command::new(&self.exe);
        command
            .arg("__nsexec")
            .arg("--pid")
            .arg(entered.pid.to_string());
        if let Some(cwd) = &entered.cwd {
            command.arg("--cwd").arg(cwd);
        }
        command
            .arg("--")
            .args(argv)
            .env_clear()
            .envs(entered.env.iter().map(|(k, v)| (k, v)));
        Ok(command)
    }
}

/// The `Status` an exec into a container that is not running gets: kubelet finds no running
/// container of that name (`container not found ("main")`), and the API server's websocket
/// translator wraps the failed upgrade as an internal error.
fn not_running(container: &str) -> Value {
    let message = format!(
        "Internal error occurred: unable to upgrade connection: container not found (\"{container}\")"
    );
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": "InternalError", "code": 500,
        "details": {"causes": [{"message": message}]}})
}

/// The pod's API server and what kubelet reports to it.
#[derive(Debug)]
pub(crate) struct PodApi {
    server: Server,
    /// The pod's uid on the server.
    uid: String,
    namespace: String,
    name: String,
    /// `(name, image)` of each init and app container, in order.
    inits: Vec<(String, String)>,
    apps: Vec<(String, String)>,
    status: Mutex<Status>,
    running: RunningMap,
}

/// The pod's status as kubelet would report it.
#[derive(Debug, Default)]
struct Status {
    phase: &'static str,
    reason: Option<&'static str>,
    start_time: String,
    /// Each container's `state` and whether it started, by name.
    states: BTreeMap<String, (Value, bool)>,
}

impl PodApi {
    /// Starts the server (or connects to the existing one `options` names) and creates the pod,
    /// its Secrets and ConfigMaps there; writes the kubeconfig init and wait use into `kube_dir`
    /// (for the kubelet runtime, also the service account's token and the server's CA, served
    /// over HTTPS), and says how they reach it.
    pub(crate) fn start(
        step: &StepPod,
        info: &PodInfo,
        keyed: KeyedDirs<'_>,
        state_dir: &Path,
        kube_dir: &Path,
        options: &ApiOptions,
        exe: &Path,
    ) -> Result<(Self, ExecutorAccess), Error> {
        std::fs::create_dir_all(kube_dir).map_err(Error::io("create", kube_dir))?;
        let (server, access) = match &options.existing {
            Some(existing) => connect_existing(existing, kube_dir)?,
            None => start_own(options.runtime, kube_dir, info)?,
        };
        let spec = step.pod.spec.clone().unwrap_or_default();
        let named = |c: &k8s_openapi::api::core::v1::Container| {
            (c.name.clone(), c.image.clone().unwrap_or_default())
        };
        let running = RunningMap::default();
        let api = Self {
            namespace: info.namespace.clone(),
            name: info.name.clone(),
            inits: spec.init_containers.iter().flatten().map(named).collect(),
            apps: spec.containers.iter().map(named).collect(),
            status: Mutex::new(Status {
                phase: "Pending",
                start_time: now(),
                ..Status::default()
            }),
            running: Arc::clone(&running),
            uid: info.uid.clone(),
            server,
        };
        let mut pod = serde_json::to_value(&step.pod).map_err(|source| Error::Spec {
            path: PathBuf::from("pod"),
            source,
        })?;
        pod["metadata"]["name"] = json!(info.name);
        pod["metadata"]["namespace"] = json!(info.namespace);
        pod["metadata"]["uid"] = json!(info.uid);
        if pod["spec"]["nodeName"].is_null() {
            pod["spec"]["nodeName"] = json!(info.node_name);
        }
        pod["status"] = api.render(&lock(&api.status));
        let created = api.server.apply(pod)?;
        // An existing server gives the pod a uid of its own.
        let uid = created["metadata"]["uid"].as_str().map(str::to_owned);
        for object in keyed_objects(keyed, &info.namespace)? {
            api.server.apply(object)?;
        }
        let mut api = api;
        api.uid = uid.unwrap_or_else(|| info.uid.clone());
        if let Server::Fake(server) = &api.server {
            for (name, _) in api.inits.iter().chain(&api.apps) {
                server.set_log(
                    &info.namespace,
                    &info.name,
                    name,
                    LogSource::File(state_dir.join(name).join(COMBINED_FILE)),
                );
            }
            server.set_exec(NsExec {
                exe: exe.to_owned(),
                running,
            });
        }
        Ok((api, access))
    }

    /// The pod's uid, as the server has it.
    pub(crate) fn uid(&self) -> &str {
        &self.uid
    }

    /// A container's process exists: it is running, and exec reaches it.
    pub(crate) fn started(
        &self,
        container: &str,
        pid: u32,
        env: &[(String, String)],
        cwd: Option<&str>,
    ) {
        lock(&self.running).insert(
            container.to_owned(),
            Entered {
                pid,
                env: env.to_vec(),
                cwd: cwd.map(str::to_owned),
            },
        );
        let mut status = lock(&self.status);
        status.states.insert(
            container.to_owned(),
            (json!({"running": {"startedAt": now()}}), true),
        );
        if self.apps.iter().any(|(n, _)| n == container) && status.phase == "Pending" {
            status.phase = "Running";
        }
        self.publish(&status);
    }

    /// A container ended with `code`.
    pub(crate) fn exited(&self, container: &str, code: Option<i32>, message: Option<&str>) {
        lock(&self.running).remove(container);
        let mut status = lock(&self.status);
        let started_at = status
            .states
            .get(container)
            .and_then(|(s, _)| s.pointer("/running/startedAt").cloned())
            .unwrap_or_else(|| json!(now()));
        let code = code.unwrap_or(crate::shim::START_ERROR_EXIT);
        let mut terminated = json!({
            "exitCode": code,
            "reason": if code == 0 { "Completed" } else { "Error" },
            "startedAt": started_at,
            "finishedAt": now(),
        });
        if let Some(message) = message {
            terminated["message"] = json!(message);
        }
        status.states.insert(
            container.to_owned(),
            (json!({"terminated": terminated}), false),
        );
        self.publish(&status);
    }

    /// The pod passed `activeDeadlineSeconds`: kubelet fails it and kills its containers.
    pub(crate) fn deadline_exceeded(&self) {
        let mut status = lock(&self.status);
        status.phase = "Failed";
        status.reason = Some(DEADLINE_REASON);
        self.publish(&status);
    }

    /// Every container has ended: the pod's final phase (restartPolicy Never).
    pub(crate) fn finish(&self, results: &[ContainerResult]) {
        let mut status = lock(&self.status);
        if status.reason.is_none() {
            let all_ok = results
                .iter()
                .filter(|c| c.role == Role::Init || c.exit_code.is_some())
                .all(|c| c.exit_code == Some(0));
            status.phase = if all_ok { "Succeeded" } else { "Failed" };
        }
        self.publish(&status);
    }

    /// The outputs wait reported, in the local report's shape (`outputs`, `message`): from the
    /// pod's annotations (v2, and v3's fallback) or the WorkflowTaskResult named after the node
    /// (v3, v4); the message is v2's node-message annotation, else wait's termination message.
    /// A wait that ran and left nothing reported no outputs, as Argo's controller reads it; none
    /// when wait never ran.
    pub(crate) fn report(&self, step: &StepPod, wait: Option<&ContainerResult>) -> Option<Value> {
        let wait = wait.filter(|w| w.exit_code.is_some())?;
        let pod = self.server.get("pods", &self.namespace, &self.name)?;
        let annotations = &pod["metadata"]["annotations"];
        let annotated = annotations[ANNOTATION_OUTPUTS]
            .as_str()
            .and_then(|text| serde_json::from_str::<Value>(text).ok());
        let task_result = match step.protocol {
            Protocol::V2 => None,
            Protocol::V3 | Protocol::V4 => {
                self.server
                    .get("workflowtaskresults", &self.namespace, &node_id(step))
            }
        };
        let from_result = task_result
            .as_ref()
            .and_then(|result| result.get("outputs").cloned());
        let outputs = from_result.or(annotated).unwrap_or_else(|| json!({}));
        let message = annotations[ANNOTATION_NODE_MESSAGE]
            .as_str()
            .or(wait.termination_message.as_deref());
        let mut report = json!({ "outputs": outputs });
        if let Some(result) = task_result {
            report[crate::report::TASK_RESULT_KEY] = result;
        }
        if let Some(message) = message {
            report["message"] = json!(message);
        }
        Some(report)
    }

    /// Writes the request log: one line per request, `METHOD VERB STATUS PATH[?QUERY]`.
    pub(crate) fn write_request_log(&self, path: &Path) -> Result<(), Error> {
        let mut text = String::new();
        let requests = match &self.server {
            Server::Fake(server) => server.requests(),
            Server::Remote(_) => Vec::new(),
        };
        for r in requests {
            let query = if r.query.is_empty() {
                String::new()
            } else {
                format!("?{}", r.query)
            };
            text.push_str(&format!(
                "{:<6} {:<9} {} {}{query}\n",
                r.method, r.verb, r.status, r.path
            ));
        }
        std::fs::write(path, text).map_err(Error::io("write the API request log", path))
    }

    fn publish(&self, status: &Status) {
        self.server
            .set_pod_status(&self.namespace, &self.name, self.render(status));
    }

    /// The status object.
    fn render(&self, status: &Status) -> Value {
        let statuses = |list: &[(String, String)]| -> Vec<Value> {
            list.iter()
                .map(|(name, image)| {
                    let (state, started) = status.states.get(name).cloned().unwrap_or_else(|| {
                        (json!({"waiting": {"reason": "PodInitializing"}}), false)
                    });
                    let ready = state.get("running").is_some();
                    json!({"name": name, "state": state, "lastState": {}, "ready": ready,
                        "started": started, "restartCount": 0, "image": image, "imageID": "",
                        "containerID": format!("argoexec://{name}")})
                })
                .collect()
        };
        let mut out = json!({
            "phase": status.phase,
            "hostIP": "127.0.0.1",
            "podIP": "127.0.0.1",
            "startTime": status.start_time,
            "initContainerStatuses": statuses(&self.inits),
            "containerStatuses": statuses(&self.apps),
        });
        if let Some(reason) = status.reason {
            out["reason"] = json!(reason);
            out["message"] = json!(DEADLINE_MESSAGE);
        }
        out
    }
}

/// The task result's name: the node ID (`ARGO_NODE_ID` of wait, else the node-id annotation,
/// else the pod's name).
fn node_id(step: &StepPod) -> String {
    let spec = step.pod.spec.as_ref();
    spec.and_then(|s| s.containers.iter().find(|c| c.name == "wait"))
        .and_then(|c| StepPod::env_value(c, "ARGO_NODE_ID").map(str::to_owned))
        .or_else(|| {
            step.pod
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get(ANNOTATION_NODE_ID).cloned())
        })
        .unwrap_or_else(|| step.pod.metadata.name.clone().unwrap_or_default())
}

/// The Secrets and ConfigMaps of `--secrets` / `--configmaps` (`DIR/<name>/<key>`) as objects.
fn keyed_objects(keyed: KeyedDirs<'_>, namespace: &str) -> Result<Vec<Value>, Error> {
    let mut objects = Vec::new();
    for (dir, secret) in [(keyed.secrets, true), (keyed.configmaps, false)] {
        let Some(dir) = dir else { continue };
        for (name, data) in read_keyed(dir)? {
            let metadata = k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name),
                namespace: Some(namespace.to_owned()),
                ..Default::default()
            };
            let object = if secret {
                serde_json::to_value(Secret {
                    metadata,
                    data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v))).collect()),
                    ..Secret::default()
                })
            } else {
                let (text, binary): (BTreeMap<_, _>, BTreeMap<_, _>) = data
                    .into_iter()
                    .partition(|(_, v)| std::str::from_utf8(v).is_ok());
                serde_json::to_value(ConfigMap {
                    metadata,
                    data: Some(
                        text.into_iter()
                            .map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned()))
                            .collect(),
                    ),
                    binary_data: Some(
                        binary
                            .into_iter()
                            .map(|(k, v)| (k, ByteString(v)))
                            .collect(),
                    ),
                    ..ConfigMap::default()
                })
            };
            let mut object = object.map_err(|source| Error::Spec {
                path: dir.to_owned(),
                source,
            })?;
            object["apiVersion"] = json!("v1");
            object["kind"] = json!(if secret { "Secret" } else { "ConfigMap" });
            objects.push(object);
        }
    }
    Ok(objects)
}

/// `DIR/<name>/<key>` files, by name then key.
fn read_keyed(dir: &Path) -> Result<BTreeMap<String, BTreeMap<String, Vec<u8>>>, Error> {
    let mut all = BTreeMap::new();
    for entry in std::fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let entry = entry.map_err(Error::io("list", dir))?;
        if !entry.path().is_dir() {
            continue;
        }
        let mut data = BTreeMap::new();
        let path = entry.path();
        for key in std::fs::read_dir(&path).map_err(Error::io("list", &path))? {
            let key = key.map_err(Error::io("list", &path))?;
            let file = key.path();
            // Mounted volumes keep `..data` links and hidden entries; the keys are the files.
            let name = key.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !file.is_file() {
                continue;
            }
            data.insert(
                name,
                std::fs::read(&file).map_err(Error::io("read", &file))?,
            );
        }
        all.insert(entry.file_name().to_string_lossy().into_owned(), data);
    }
    Ok(all)
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/pods")
            .join(name)
    }

    #[test]
    fn rewrite_names_k8sapi_unshares_pids_and_leaves_v4_to_the_emissary() {
        let mut step = StepPod::load(&fixture("output-volume.yaml")).unwrap();
        rewrite(&mut step, ApiRuntime::K8sApi).unwrap();
        let spec = step.pod.spec.as_ref().unwrap();
        assert_eq!(spec.share_process_namespace, None);
        for c in spec
            .init_containers
            .iter()
            .flatten()
            .chain(&spec.containers)
        {
            assert_eq!(
                StepPod::env_value(c, RUNTIME_ENV),
                Some("k8sapi"),
                "{}",
                c.name
            );
        }
        assert!(step.pod.metadata.uid.is_some());
        // The same pod from a v4 controller (it sets the workflow's uid).
        let dir = tempfile::tempdir().unwrap();
        let v4 = std::fs::read_to_string(fixture("output-volume.yaml"))
            .unwrap()
            .replace(
                "    - name: ARGO_NODE_ID\n",
                "    - name: ARGO_WORKFLOW_UID\n      value: 6f1c3d8e\n    - name: ARGO_NODE_ID\n",
            );
        std::fs::write(dir.path().join("v4.yaml"), v4).unwrap();
        let mut step = StepPod::load(&dir.path().join("v4.yaml")).unwrap();
        assert_eq!(step.protocol, Protocol::V4);
        let before = step.pod.spec.clone();
        rewrite(&mut step, ApiRuntime::K8sApi).unwrap();
        assert_eq!(step.pod.spec, before, "a v4 pod keeps its runtime");
        assert!(step.pod.metadata.uid.is_some());
    }

    #[test]
    fn secrets_and_configmaps_become_objects_with_their_keys() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = dir.path().join("secrets");
        let configmaps = dir.path().join("configmaps");
        std::fs::create_dir_all(secrets.join("creds")).unwrap();
        std::fs::create_dir_all(configmaps.join("settings")).unwrap();
        std::fs::write(secrets.join("creds/accessKey"), b"AK\n").unwrap();
        std::fs::write(secrets.join("creds/.hidden"), b"x").unwrap();
        std::fs::write(configmaps.join("settings/mode"), b"fast").unwrap();
        std::fs::write(configmaps.join("settings/blob"), [0xff, 0xfe]).unwrap();
        let keyed = KeyedDirs {
            secrets: Some(&secrets),
            configmaps: Some(&configmaps),
        };
        let objects = keyed_objects(keyed, "ns").unwrap();
        assert_eq!(objects.len(), 2);
        assert_eq!(objects[0]["kind"], "Secret");
        assert_eq!(objects[0]["metadata"]["namespace"], "ns");
        assert_eq!(objects[0]["data"], json!({"accessKey": "QUsK"}));
        assert_eq!(objects[1]["kind"], "ConfigMap");
        assert_eq!(objects[1]["data"], json!({"mode": "fast"}));
        assert_eq!(objects[1]["binaryData"], json!({"blob": "//4="}));
    }

    #[test]
    fn exec_into_a_container_that_is_not_running_is_refused_as_kubelet_does() {
        let handler = NsExec {
            exe: PathBuf::from("/bin/true"),
            running: RunningMap::default(),
        };
        let target = ExecTarget {
            namespace: "ns".into(),
            pod: "p".into(),
            container: "main".into(),
        };
        let err = handler.command(&target, &["tar".into()]).unwrap_err();
        assert!(
            err.to_string()
                .contains("unable to upgrade connection: container not found (\"main\")"),
            "{err}"
        );
        lock(&handler.running).insert(
            "main".into(),
            Entered {
                pid: 42,
                env: vec![("A".into(), "1".into())],
                cwd: Some("/w".into()),
            },
        );
        let command = handler.command(&target, &["tar".into()]).unwrap();
        let args: Vec<_> = command.as_std().get_args().collect();
        assert_eq!(
            args,
            ["__nsexec", "--pid", "42", "--cwd", "/w", "--", "tar"]
        );
    }
}
