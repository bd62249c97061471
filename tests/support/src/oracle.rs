//! The compatibility oracle from the tests' side: the programs `tests/oracle/build` made (Argo's
//! own `argoexec` and `workflow-controller`, a real `kube-apiserver` and `etcd`) and a real control
//! plane started by `tests/oracle/cluster` on 127.0.0.1 (a CA made at start, static tokens for an
//! admin and for the service account `argo:default`, the RBAC authorizer, Argo's CRDs applied).
//!
//! A missing program fails the test and names what to run. Only a developer's own request skips:
//! `ARGOEXEC_SKIP_ORACLE=1` with `CI` unset makes [`Oracle::shared`], [`Oracle::start`] and
//! [`oracle_bin`] return `None`; under `CI` the variable is refused.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The variable with which a developer asks to skip the suites that need the oracle.
pub const SKIP_ENV: &str = "ARGOEXEC_SKIP_ORACLE";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where `tests/oracle/build` puts its output (`ORACLE_DIR`, as the scripts read it).
pub fn oracle_dir() -> PathBuf {
    std::env::var_os("ORACLE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/oracle"))
}

/// Whether the developer asked to skip; panics when that is asked under `CI`.
fn skip_requested(what: &str) -> bool {
    let asked = std::env::var_os(SKIP_ENV).is_some_and(|v| !v.is_empty() && v != "0");
    if asked {
        assert!(
            std::env::var_os("CI").is_none(),
            "{SKIP_ENV} is set under CI: the suites that need {what} never skip there"
        );
        eprintln!("SKIPPED (asked by {SKIP_ENV}): this test needs {what}");
    }
    asked
}

/// A program built by `tests/oracle/build` (`argoexec`, `workflow-controller`, `kube-apiserver`,
/// `etcd`). Panics, naming the command that builds it, when it is missing; `None` only when the
/// developer asked to skip.
pub fn oracle_bin(name: &str) -> Option<PathBuf> {
    let path = oracle_dir().join("bin").join(name);
    if path.is_file() {
        return Some(path);
    }
    if skip_requested(&format!("the oracle's {name}")) {
        return None;
    }
    panic!(
        "MISSING: {} is not built: run `tests/oracle/build {name}` (Go 1.26 and the Go module \
         proxy), or set {SKIP_ENV}=1 to skip the suites that need it",
        path.display()
    );
}

/// A real control plane: etcd and kube-apiserver started by `tests/oracle/cluster`.
pub struct Oracle {
    dir: PathBuf,
    /// Owns `dir` for a cluster stopped on drop; `None` for the shared one.
    _owned: Option<tempfile::TempDir>,
    env: BTreeMap<String, String>,
    stop_on_drop: bool,
}

static SHARED: OnceLock<Option<Oracle>> = OnceLock::new();

impl Oracle {
    /// One cluster for the whole test process, started at the first call. A watchdog stops it
    /// when the process ends, however it ends. Tests sharing it keep to namespaces of their own
    /// ([`Oracle::namespace`]).
    pub fn shared() -> Option<&'static Oracle> {
        SHARED
            .get_or_init(|| {
                let oracle = Self::launch(false)?;
                oracle.watch_parent();
                Some(oracle)
            })
            .as_ref()
    }

    /// A cluster of the caller's own (for a test that restarts the API server), stopped when
    /// dropped.
    pub fn start() -> Option<Self> {
        Self::launch(true)
    }

    fn launch(stop_on_drop: bool) -> Option<Self> {
        for program in ["etcd", "kube-apiserver"] {
            oracle_bin(program)?;
        }
        let parent = oracle_dir().join("tmp");
        std::fs::create_dir_all(&parent).unwrap();
        let started = Instant::now();
        // The script picks free ports and then binds them: another process (tests run in
        // parallel) may take one in between. Only that is tried again, in a new directory.
        let mut attempt = 1;
        let owned = loop {
            let owned = tempfile::Builder::new()
                .prefix("cluster-")
                .tempdir_in(&parent)
                .unwrap();
            let out = Command::new(root().join("tests/oracle/cluster"))
                .arg("start")
                .arg(owned.path())
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("cannot run tests/oracle/cluster: {e}"));
            if out.status.success() {
                break owned;
            }
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(
                attempt < 3 && text.contains("address already in use"),
                "tests/oracle/cluster start {} failed ({}, attempt {attempt}):\n{text}",
                owned.path().display(),
                out.status,
            );
            eprintln!("oracle: a port was taken while the cluster started; starting again");
            attempt += 1;
        };
        let dir = owned.path().to_path_buf();
        let env = parse_env(&std::fs::read_to_string(dir.join("env")).unwrap());
        eprintln!(
            "oracle: kube-apiserver {} ready in {:.1} s (dir {})",
            env["ORACLE_APISERVER"],
            started.elapsed().as_secs_f64(),
            dir.display()
        );
        Some(Self {
            dir,
            _owned: Some(owned),
            env,
            stop_on_drop,
        })
    }

    /// Stops the cluster when this process ends: a shell that waits for its parent.
    fn watch_parent(&self) {
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; '{cluster}' stop '{dir}'; rm -rf '{dir}'",
            pid = std::process::id(),
            cluster = root().join("tests/oracle/cluster").display(),
            dir = self.dir.display(),
        );
        let watchdog = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("start the oracle's watchdog");
        reap(watchdog);
    }

    /// The cluster's directory (logs, certificates, kubeconfigs).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn var(&self, name: &str) -> &str {
        self.env
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from {}/env", self.dir.display()))
    }

    /// `https://127.0.0.1:PORT`.
    pub fn server(&self) -> &str {
        self.var("ORACLE_APISERVER")
    }

    /// The CA certificate the API server's serving certificate is signed by.
    pub fn ca_file(&self) -> PathBuf {
        PathBuf::from(self.var("ORACLE_CA"))
    }

    /// A kubeconfig for the admin (`system:masters`).
    pub fn admin_kubeconfig(&self) -> PathBuf {
        PathBuf::from(self.var("ORACLE_ADMIN_KUBECONFIG"))
    }

    /// A kubeconfig for the service account `argo:default`, bound to Argo's executor Role.
    pub fn workflow_kubeconfig(&self) -> PathBuf {
        PathBuf::from(self.var("ORACLE_WORKFLOW_KUBECONFIG"))
    }

    /// The admin's bearer token.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.var("ORACLE_ADMIN_TOKEN_FILE")).unwrap()
    }

    /// The namespace of the workflow service account (`argo`).
    pub fn workflow_namespace(&self) -> &str {
        self.var("ORACLE_NAMESPACE")
    }

    /// The API server's PID (it changes with [`Oracle::restart_apiserver`]).
    pub fn apiserver_pid(&self) -> u32 {
        std::fs::read_to_string(self.dir.join("kube-apiserver.pid"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// Runs `kubectl` as the admin.
    pub fn kubectl_output(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(self.admin_kubeconfig())
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().expect("run kubectl (tests/setup installs it)");
        if let Some(text) = stdin {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(text.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }

    /// Runs `kubectl` as the admin and returns its stdout; panics with stderr on failure.
    pub fn kubectl(&self, args: &[&str]) -> String {
        self.kubectl_stdin(args, None)
    }

    /// [`Oracle::kubectl`] with `stdin` fed to it (for `apply -f -`).
    pub fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> String {
        let out = self.kubectl_output(args, stdin);
        assert!(
            out.status.success(),
            "kubectl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Applies YAML or JSON (one or more documents) as the admin.
    pub fn apply(&self, manifest: &str) {
        self.kubectl_stdin(&["apply", "-f", "-"], Some(manifest));
    }

    /// `kubectl get KIND NAME -o json` in `namespace`, as the admin.
    pub fn get_json(&self, namespace: &str, kind: &str, name: &str) -> serde_json::Value {
        let text = self.kubectl(&["-n", namespace, "get", kind, name, "-o", "json"]);
        serde_json::from_str(&text).unwrap()
    }

    /// Applies `manifests/rbac/FILE` (a Role and its RoleBinding for the service account
    /// `default`) into `namespace`.
    pub fn apply_rbac_file(&self, namespace: &str, file: &str) {
        let path = root().join("manifests/rbac").join(file);
        self.kubectl(&["-n", namespace, "apply", "-f", &path.to_string_lossy()]);
    }

    /// Creates pod `name` in `namespace` with `containers` (`wait` first, as Argo's pods; images
    /// never pulled: no kubelet runs, the pod stays Pending) and `annotations`; returns its UID.
    pub fn create_pod(
        &self,
        namespace: &str,
        name: &str,
        containers: &[&str],
        annotations: &serde_json::Value,
    ) -> String {
        let containers: Vec<_> = containers
            .iter()
            .map(|c| serde_json::json!({"name": c, "image": "busybox"}))
            .collect();
        let pod = serde_json::json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations},
            "spec": {"restartPolicy": "Never", "containers": containers}});
        self.apply(&pod.to_string());
        let uid = &self.get_json(namespace, "pod", name)["metadata"]["uid"];
        uid.as_str().unwrap().to_owned()
    }

    /// Merge-patches the status of pod `name` as its kubelet would (`--subresource status`): the
    /// suites play the kubelet, none runs.
    pub fn patch_pod_status(&self, namespace: &str, name: &str, status: &serde_json::Value) {
        let patch = serde_json::json!({ "status": status }).to_string();
        self.kubectl(&[
            "-n",
            namespace,
            "patch",
            "pod",
            name,
            "--subresource",
            "status",
            "--type",
            "merge",
            "-p",
            &patch,
        ]);
    }

    /// A fresh namespace named `prefix-N` (unique in this cluster) with a service account
    /// `default`; returns its name.
    pub fn namespace(&self, prefix: &str) -> String {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("{prefix}-{}-{n}", std::process::id());
        self.kubectl(&["create", "namespace", &name]);
        self.kubectl(&["-n", &name, "create", "serviceaccount", "default"]);
        name
    }

    /// A token of the service account `namespace:name` (TokenRequest, valid one hour), which
    /// the API server authenticates as `system:serviceaccount:NAMESPACE:NAME`.
    pub fn service_account_token(&self, namespace: &str, name: &str) -> String {
        self.kubectl(&["-n", namespace, "create", "token", name, "--duration", "1h"])
            .trim()
            .to_owned()
    }

    /// A kubeconfig file in `dir` for `token`, with `namespace` as its default.
    pub fn kubeconfig_for(&self, dir: &Path, token: &str, namespace: &str) -> PathBuf {
        let path = dir.join(format!("kubeconfig-{namespace}"));
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: oracle\n  cluster:\n    server: {}\n    \
             certificate-authority: {}\nusers:\n- name: user\n  user:\n    token: {token}\n\
             contexts:\n- name: ctx\n  context:\n    cluster: oracle\n    user: user\n    \
             namespace: {namespace}\ncurrent-context: ctx\n",
            self.server(),
            self.ca_file().display()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Stops the API server (SIGTERM, then SIGKILL after 10 s) and starts it again with the same
    /// command line; returns once it is ready. etcd keeps the objects.
    pub fn restart_apiserver(&self) {
        let pid = self.apiserver_pid();
        let argv: Vec<String> = std::fs::read(format!("/proc/{pid}/cmdline"))
            .unwrap()
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8(a.to_vec()).unwrap())
            .collect();
        signal(pid, "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        if Path::new(&format!("/proc/{pid}")).exists() {
            signal(pid, "KILL");
        }
        let log = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir.join("kube-apiserver.log"))
            .unwrap();
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap();
        std::fs::write(self.dir.join("kube-apiserver.pid"), child.id().to_string()).unwrap();
        reap(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let out = self.kubectl_output(&["get", "--raw", "/readyz"], None);
            if out.status.success() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "kube-apiserver not ready 120 s after its restart (log {})",
                self.dir.join("kube-apiserver.log").display()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Stops the cluster (the shared one stops when the process ends).
    fn stop(&self) {
        let _ = Command::new(root().join("tests/oracle/cluster"))
            .arg("stop")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .status();
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        if self.stop_on_drop {
            self.stop();
        }
    }
}

/// Waits for `child` on a thread of its own, so that it leaves no zombie once it ends.
fn reap(mut child: std::process::Child) {
    std::thread::spawn(move || child.wait());
}

fn signal(pid: u32, name: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
}

/// A pod status in which container `name` (image busybox) is in `state` (`{"running": {}}`,
/// `{"terminated": {"exitCode": 0}}`), for [`Oracle::patch_pod_status`].
pub fn container_state(name: &str, state: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"containerStatuses": [{
        "name": name, "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
        "state": state
    }]})
}

/// `KEY=VALUE` lines.
fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_env;

    #[test]
    fn env_lines_become_variables() {
        let env = parse_env("A=1\nB=x=y\n\n");
        assert_eq!(env["A"], "1");
        assert_eq!(env["B"], "x=y");
        assert_eq!(env.len(), 2);
    }
}
