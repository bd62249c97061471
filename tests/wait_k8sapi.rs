//! Black-box test of `argoexec wait` with the `k8sapi` runtime: the real binary against a fake
//! API server speaking the real protocol (argoexec-testkube). The test plays the kubelet: main
//! and a sidecar are real processes whose exits it writes into the pod's status, `pods/exec`
//! runs in directories standing for the containers' roots and signals those processes, and
//! main's log is the file its stdout goes to. Artifacts in main's root come out as the tar
//! stream of an exec'd `tar` and are re-packed into the archive the template asks for.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use argoexec_testkube::{ExecHandler, ExecTarget, LogSource, Pid1Exec, TestKube};
use serde_json::json;

const NS: &str = "argo";
const POD: &str = "pod-1";

/// Each container: a directory standing for its root (`tar -C` resolves there) and the host PID
/// of its PID 1 (`kill -N 1` signals it).
#[derive(Debug, Default)]
struct Containers {
    roots: HashMap<String, PathBuf>,
    pid1: Pid1Exec,
}

/// The handler the server holds, sharing the containers with the test.
#[derive(Debug)]
struct Exec(Arc<Containers>);

impl ExecHandler for Exec {
    fn command(
        &self,
        target: &ExecTarget,
        argv: &[String],
    ) -> std::io::Result<tokio::process::Command> {
        let containers = &self.0;
        let mut command = tokio::process::Command::new(&argv[0]);
        let mut args = containers.pid1.rewrite(&target.container, &argv[1..]);
        if let Some(root) = containers.roots.get(&target.container) {
            for i in 1..args.len() {
                if args[i - 1] == "-C" {
                    args[i] = format!("{}{}", root.display(), args[i]);
                }
            }
        }
        command.args(args);
        Ok(command)
    }
}

/// Starts `script` as container `name`: running in the pod's status, terminated with its exit
/// code (128 + signal) once it ends; stdout to `log` when given.
fn start(
    server: &Arc<TestKube>,
    containers: &Containers,
    name: &str,
    script: &str,
    log: Option<&Path>,
) -> std::thread::JoinHandle<i32> {
    let mut command = std::process::Command::new("sh");
    command.args(["-c", script]).stdin(Stdio::null());
    if let Some(log) = log {
        command.stdout(std::fs::File::create(log).unwrap());
    }
    let child = command.spawn().unwrap();
    containers.pid1.set(name, child.id());
    server.adopt(NS, POD, name, child)
}

#[test]
fn wait_with_k8sapi_saves_outputs_through_exec_and_kills_the_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let main_root = dir.join("main-root");
    std::fs::create_dir_all(main_root.join("tmp")).unwrap();
    let server = Arc::new(TestKube::start().unwrap());
    server.apply(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": POD, "namespace": NS},
        "spec": {"restartPolicy": "Never",
                 "containers": [{"name": "wait"}, {"name": "main"}, {"name": "sidecar"}]}}));
    server.set_container_state(NS, POD, "wait", json!({"running": {}}));
    let containers = Arc::new(Containers {
        roots: [("main".to_owned(), main_root.clone())].into(),
        ..Containers::default()
    });
    server.set_exec(Exec(Arc::clone(&containers)));
    let log = dir.join("main.log");
    server.set_log(NS, POD, "main", LogSource::File(log.clone()));
    let ready = dir.join("sidecar-ready");
    let sidecar = start(
        &server,
        &containers,
        "sidecar",
        &format!(
            "trap '' TERM; touch {}; while :; do sleep 0.05; done",
            ready.display()
        ),
        None,
    );
    // A TERM that came before the trap would end it.
    while !ready.exists() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let main = start(
        &server,
        &containers,
        "main",
        &format!(
            "sleep 0.3; echo 42 > {r}/tmp/param && mkdir -p {r}/tmp/out/dir/sub && \
             printf one > {r}/tmp/out/file.txt && printf a > {r}/tmp/out/dir/a && \
             printf b > {r}/tmp/out/dir/sub/b && echo hello",
            r = main_root.display()
        ),
        Some(&log),
    );
    let template = json!({
        "name": "step",
        "script": {"image": "alpine", "source": "echo hello"},
        "outputs": {
            "parameters": [{"name": "p", "valueFrom": {"path": "/tmp/param"}}],
            "artifacts": [
                {"name": "file", "path": "/tmp/out/file.txt"},
                {"name": "tree", "path": "/tmp/out/dir"},
                {"name": "plain", "path": "/tmp/out/file.txt", "archive": {"none": {}}},
            ],
        },
    });
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_argoexec"))
        .args(["wait", "--pod-root"])
        .arg(dir)
        .arg("--termination-log")
        .arg(dir.join("termination-log"))
        .args(["--server", server.url(), "--namespace", NS, "--token", "t"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ARGO_POD_NAME", POD)
        .env("ARGO_WORKFLOW_NAME", "wf")
        .env("ARGO_CONTAINER_NAME", "wait")
        .env("ARGO_CONTAINER_RUNTIME_EXECUTOR", "k8sapi")
        .env("ARGO_TEMPLATE", template.to_string())
        .env("ARGO_TERMINATION_GRACE_PERIOD_SECONDS", "1")
        .env("ARGO_INCLUDE_SCRIPT_OUTPUT", "true")
        .env("ARGOEXEC_REPORT_FILE", dir.join("report.json"))
        .env("ARGOEXEC_LOCAL_REPOSITORY", dir.join("repo"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(main.join().unwrap(), 0);
    // The sidecar ignored SIGTERM: wait escalated to SIGKILL after the 1 s grace.
    assert_eq!(sidecar.join().unwrap(), 128 + 9, "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    let outputs = &report["outputs"];
    assert_eq!(outputs["result"], "hello", "{report:#}");
    assert_eq!(outputs["parameters"][0]["value"], "42");
    // Each artifact is in the local repository as Argo packs it: a file or a directory under
    // its base name in a tar.gz, or the file itself.
    let repo = dir.join("repo/wf/pod-1");
    let keys: Vec<&str> = outputs["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["local"]["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "wf/pod-1/file.tgz",
            "wf/pod-1/tree.tgz",
            "wf/pod-1/file.txt"
        ],
        "{report:#}"
    );
    assert_eq!(
        tgz_entries(&repo.join("file.tgz")),
        [("file.txt".to_owned(), Some("one".to_owned()))]
    );
    assert_eq!(
        tgz_entries(&repo.join("tree.tgz")),
        [
            ("dir/".to_owned(), None),
            ("dir/a".to_owned(), Some("a".to_owned())),
            ("dir/sub/".to_owned(), None),
            ("dir/sub/b".to_owned(), Some("b".to_owned())),
        ]
    );
    assert_eq!(
        std::fs::read_to_string(repo.join("file.txt")).unwrap(),
        "one"
    );
    // The parameter and each artifact came out of main through an exec'd tar.
    let tars = server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/pods/pod-1/exec") && r.query.contains("command=tar"))
        .count();
    assert_eq!(tars, 4, "{:?}", server.requests());
    // Nothing polled the pod: its state came from watches.
    let gets = server
        .requests()
        .iter()
        .filter(|r| r.verb == "get" && r.path.ends_with("/pods/pod-1"))
        .count();
    assert!(gets <= 4, "{:?}", server.requests());
}

/// A tar.gz's entries, sorted: path, and the content of a regular file.
fn tgz_entries(path: &Path) -> Vec<(String, Option<String>)> {
    let file = std::fs::File::open(path).unwrap();
    let mut archive = tar::Archive::new(flate2::read::MultiGzDecoder::new(file));
    let mut entries: Vec<(String, Option<String>)> = archive
        .entries()
        .unwrap()
        .map(|entry| {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().to_string_lossy().into_owned();
            let content = entry.header().entry_type().is_file().then(|| {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
                text
            });
            (name, content)
        })
        .collect();
    entries.sort();
    entries
}
