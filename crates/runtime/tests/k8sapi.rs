//! The `k8sapi` runtime and testkube's `pods/exec` against real processes: the protocol through
//! kube-rs and kubectl, waits driven by the pod's status (watched, not polled), outputs copied by
//! exec'ing `tar` in a directory standing for the container's root, kills of real processes that
//! honour or ignore SIGTERM, logs, and images without `tar` or `sh`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argoexec_kube::{Backoff, Kube};
use argoexec_runtime::{ContainerRuntime as _, K8sApi, KillOutcome, LogStream, PathSource};
use argoexec_testkube::{ExecHandler, ExecTarget, LocalExec, LogSource, TestKube};
use futures::TryStreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use serde_json::json;
use tokio::io::AsyncReadExt as _;

mod common;

use common::chain;

/// The pod's namespace.
const NS: &str = "argo";
const POD: &str = "pod-1";

/// A client of `server` working in the pod's namespace (how wait builds one from its flags is
/// `argoexec-kube`'s to test).
async fn client(server: &TestKube) -> Kube {
    let config = kube::Config::new(server.url().parse().unwrap());
    Kube::new(kube::Client::try_from(config).unwrap(), NS)
}

fn server() -> TestKube {
    let server = TestKube::start().unwrap();
    server.apply(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": POD, "namespace": NS},
        "spec": {"restartPolicy": "Never", "containers": [
            {"name": "wait"}, {"name": "main"}, {"name": "sidecar"}, {"name": "bare"}]}}));
    server
}

fn runtime(kube: &Kube) -> K8sApi {
    K8sApi::new(kube, POD, Backoff::default())
}

/// Containers emulated with local processes: each has a directory standing for its root (paths
/// of `tar -C` are resolved in it), the programs its image holds, and the host PID of its PID 1.
#[derive(Debug, Default)]
struct Containers {
    roots: HashMap<String, PathBuf>,
    programs: HashMap<String, Vec<&'static str>>,
    pid1: Mutex<HashMap<String, u32>>,
}

impl ExecHandler for Containers {
    fn command(
        &self,
        target: &ExecTarget,
        argv: &[String],
    ) -> std::io::Result<tokio::process::Command> {
        let name = target.container.as_str();
        let program = Path::new(&argv[0]).file_name().unwrap().to_str().unwrap();
        let held = self
            .programs
            .get(name)
            .is_some_and(|p| p.contains(&program));
        // A program the image lacks: the runtime cannot start it, as runc reports.
        let mut command = tokio::process::Command::new(if held {
            program.to_owned()
        } else {
            format!("/nonexistent/{program}")
        });
        let root = self.roots.get(name);
        let mut args = argv[1..].to_vec();
        for i in 0..args.len() {
            if args[i] == "-C"
                && let (Some(root), Some(dir)) = (root, args.get(i + 1))
            {
                args[i + 1] = format!("{}{dir}", root.display());
            }
        }
        // `kill -N 1` in the container signals its PID 1: here, the process the test started.
        if let Some(pid) = self.pid1.lock().unwrap().get(name) {
            for arg in &mut args {
                if let Some(signal) = arg
                    .strip_prefix("kill -")
                    .and_then(|a| a.strip_suffix(" 1"))
                {
                    *arg = format!("kill -{signal} {pid}");
                }
            }
        }
        command.args(args);
        Ok(command)
    }
}

#[tokio::test]
async fn exec_through_kube_rs_streams_output_and_reports_exit_codes() {
    let server = server();
    server.set_exec(LocalExec::default());
    let pods: Api<Pod> = Api::namespaced(client(&server).await.client().clone(), NS);

    let params = AttachParams::default()
        .container("main")
        .stdout(true)
        .stderr(true);
    let mut process = pods
        .exec(POD, ["sh", "-c", "echo out; echo err >&2; exit 3"], &params)
        .await
        .unwrap();
    let (mut out, mut err) = (String::new(), String::new());
    let mut stdout = process.stdout().unwrap();
    let mut stderr = process.stderr().unwrap();
    let status = process.take_status().unwrap();
    stdout.read_to_string(&mut out).await.unwrap();
    stderr.read_to_string(&mut err).await.unwrap();
    let status = status.await.unwrap();
    assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
    assert_eq!(status.status.as_deref(), Some("Failure"));
    assert_eq!(status.reason.as_deref(), Some("NonZeroExitCode"));
    let cause = &status.details.unwrap().causes.unwrap()[0];
    assert_eq!(
        (cause.reason.as_deref(), cause.message.as_deref()),
        (Some("ExitCode"), Some("3"))
    );

    // stdin, closed through v5's close channel so that `cat` ends.
    let params = AttachParams::default()
        .container("main")
        .stdin(true)
        .stdout(true)
        .stderr(false);
    let mut process = pods.exec(POD, ["cat"], &params).await.unwrap();
    let mut stdin = process.stdin().unwrap();
    let mut stdout = process.stdout().unwrap();
    let status = process.take_status().unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stdin, b"through stdin")
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::shutdown(&mut stdin)
        .await
        .unwrap();
    let mut echoed = String::new();
    stdout.read_to_string(&mut echoed).await.unwrap();
    assert_eq!(echoed, "through stdin");
    assert_eq!(status.await.unwrap().status.as_deref(), Some("Success"));

    // No such container: the API server's 400, before any upgrade.
    let Err(error) = pods
        .exec(POD, ["true"], &AttachParams::default().container("nope"))
        .await
    else {
        panic!("exec into a container the pod lacks");
    };
    assert!(
        error.to_string().contains("container nope is not valid"),
        "{error}"
    );
}

#[test]
fn kubectl_exec_runs_the_command_and_exits_with_its_code() {
    if std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_err()
    {
        panic!("kubectl is not installed: run tests/setup");
    }
    let server = server();
    let dir = tempfile::tempdir().unwrap();
    let config = server
        .write_kubeconfig(&dir.path().join("config"), NS)
        .unwrap();
    let output = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&config)
        .args([
            "exec",
            POD,
            "-c",
            "main",
            "--",
            "sh",
            "-c",
            "echo hi; echo oops >&2; exit 4",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "hi\n", "{stderr}");
    assert!(stderr.contains("oops"), "{stderr}");
    assert_eq!(output.status.code(), Some(4), "{stderr}");
}

#[tokio::test]
async fn wait_exited_follows_the_status_without_polling() {
    let server = server();
    let kube = client(&server).await;
    let runtime = runtime(&kube);
    assert_eq!(
        runtime.containers().await.unwrap(),
        ["wait", "main", "sidecar", "bare"]
    );
    server.clear_requests();
    let exited = tokio::spawn({
        let runtime = runtime.clone();
        async move {
            runtime.wait_started("main").await.unwrap();
            runtime.wait_exited("main").await.unwrap()
        }
    });
    // Each change goes out once the runtime's watch is open (so it cannot be missed either way).
    let watching = || {
        server
            .requests()
            .iter()
            .filter(|r| r.verb == "watch")
            .count()
    };
    while watching() == 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.set_container_state(NS, POD, "main", json!({"running": {}}));
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.set_container_state(
        NS,
        POD,
        "main",
        json!({"terminated": {"exitCode": 42, "reason": "Error"}}),
    );
    assert_eq!(exited.await.unwrap().code, Some(42));
    let verbs: Vec<String> = server
        .requests()
        .iter()
        .filter(|r| r.verb != "discovery")
        .map(|r| r.verb.clone())
        .collect();
    // One list and one watch per wait; nothing else (no GET loop).
    assert!(
        verbs.iter().all(|v| v == "list" || v == "watch") && verbs.len() <= 4,
        "{verbs:?}"
    );
}

#[tokio::test]
async fn a_pod_past_its_deadline_counts_as_exited() {
    let server = server();
    let runtime = runtime(&client(&server).await);
    server.set_container_state(NS, POD, "main", json!({"running": {}}));
    let mut pod = server.get("pods", NS, POD).unwrap();
    pod["status"]["reason"] = json!("DeadlineExceeded");
    server.apply(pod);
    assert_eq!(runtime.wait_exited("main").await.unwrap().code, None);
}

fn main_root() -> (tempfile::TempDir, Containers) {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("tmp/dir/sub")).unwrap();
    std::fs::write(root.path().join("tmp/out.txt"), "forty-two\n").unwrap();
    std::fs::write(root.path().join("tmp/dir/sub/a"), "a").unwrap();
    let containers = Containers {
        roots: [("main".to_owned(), root.path().to_owned())].into(),
        programs: [("main".to_owned(), vec!["sh", "tar", "kill"])].into(),
        ..Containers::default()
    };
    (root, containers)
}

#[tokio::test]
async fn files_and_directories_come_out_through_exec_tar() {
    let server = server();
    let (_root, containers) = main_root();
    server.set_exec(containers);
    let runtime = runtime(&client(&server).await);

    let content = runtime
        .read_file("main", Path::new("/tmp/out.txt"))
        .await
        .unwrap();
    assert_eq!(content, b"forty-two\n");

    let PathSource::Tar(stream) = runtime
        .open_path("main", Path::new("/tmp/dir"))
        .await
        .unwrap()
    else {
        panic!("k8sapi paths are tar streams");
    };
    let bytes: Vec<u8> = stream
        .try_fold(Vec::new(), |mut all, chunk| async move {
            all.extend_from_slice(&chunk);
            Ok(all)
        })
        .await
        .unwrap();
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["dir/", "dir/sub/", "dir/sub/a"]);

    let missing = runtime
        .read_file("main", Path::new("/tmp/none"))
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing}");
    let exec = server
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/exec"))
        .count();
    assert_eq!(exec, 3);
}

#[tokio::test]
async fn an_image_without_tar_or_sh_fails_naming_the_container_and_the_program() {
    let server = server();
    server.set_exec(Containers::default());
    let runtime = runtime(&client(&server).await);
    let error = runtime
        .read_file("bare", Path::new("/tmp/out.txt"))
        .await
        .unwrap_err();
    let message = chain(&error);
    assert!(
        message.contains("\"bare\"") && message.contains("no usable `tar`"),
        "{message}"
    );
    assert!(!error.is_not_found(), "a missing tar is not a missing file");

    server.set_container_state(NS, POD, "bare", json!({"running": {}}));
    let error = runtime
        .kill("bare", Duration::from_secs(1))
        .await
        .unwrap_err();
    let message = chain(&error);
    assert!(
        message.contains("\"bare\"") && message.contains("no usable `/bin/sh`"),
        "{message}"
    );
}

/// Starts `script` as the PID 1 of `container`, running in the pod's status until it exits,
/// then terminated with its code (128 + signal), as the kubelet reports it.
fn start_container(
    server: &Arc<TestKube>,
    containers: &Containers,
    container: &str,
    script: &str,
) -> tokio::task::JoinHandle<i32> {
    let mut child = tokio::process::Command::new("sh")
        .args(["-c", script])
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    containers
        .pid1
        .lock()
        .unwrap()
        .insert(container.to_owned(), child.id().unwrap());
    server.set_container_state(NS, POD, container, json!({"running": {}}));
    let server = Arc::clone(server);
    let container = container.to_owned();
    tokio::spawn(async move {
        use std::os::unix::process::ExitStatusExt as _;
        let status = child.wait().await.unwrap();
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap());
        server.set_container_state(
            NS,
            POD,
            &container,
            json!({"terminated": {"exitCode": code}}),
        );
        code
    })
}

#[derive(Debug)]
struct Shared(Arc<Containers>);

impl ExecHandler for Shared {
    fn command(
        &self,
        target: &ExecTarget,
        argv: &[String],
    ) -> std::io::Result<tokio::process::Command> {
        self.0.command(target, argv)
    }
}

#[tokio::test]
async fn kill_terms_then_kills_a_process_that_ignores_sigterm() {
    let server = Arc::new(server());
    let containers = Arc::new(Containers {
        programs: [
            ("sidecar".to_owned(), vec!["sh"]),
            ("main".to_owned(), vec!["sh"]),
        ]
        .into(),
        ..Containers::default()
    });
    server.set_exec(Shared(Arc::clone(&containers)));
    let runtime = runtime(&client(&server).await);

    // Honours SIGTERM: ends within the grace.
    let main = start_container(&server, &containers, "main", "exec sleep 600");
    let outcome = runtime.kill("main", Duration::from_secs(30)).await.unwrap();
    assert_eq!(outcome, KillOutcome::Terminated);
    assert_eq!(main.await.unwrap(), 128 + 15);

    // Ignores SIGTERM: SIGKILL after the grace.
    let ready = tempfile::tempdir().unwrap();
    let ready = ready.path().join("ready");
    let sidecar = start_container(
        &server,
        &containers,
        "sidecar",
        &format!(
            "trap '' TERM; touch {}; while :; do sleep 0.05; done",
            ready.display()
        ),
    );
    // A TERM that came before the trap would end it.
    while !ready.exists() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let outcome = runtime
        .kill("sidecar", Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(outcome, KillOutcome::Killed);
    assert_eq!(sidecar.await.unwrap(), 128 + 9);

    // Already gone: nothing is exec'd.
    server.clear_requests();
    let outcome = runtime
        .kill("sidecar", Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(outcome, KillOutcome::AlreadyExited);
    assert!(!server.requests().iter().any(|r| r.path.ends_with("/exec")));
}

#[tokio::test]
async fn logs_come_from_pods_log_combined() {
    let server = server();
    server.set_log(NS, POD, "main", LogSource::Bytes("out\nerr\n".into()));
    server.set_container_state(NS, POD, "main", json!({"terminated": {"exitCode": 0}}));
    let runtime = runtime(&client(&server).await);
    for stream in [LogStream::Combined, LogStream::Stdout] {
        let log: Vec<u8> = runtime
            .logs("main", stream)
            .await
            .unwrap()
            .try_fold(Vec::new(), |mut all, chunk| async move {
                all.extend_from_slice(&chunk);
                Ok(all)
            })
            .await
            .unwrap();
        assert_eq!(log, b"out\nerr\n");
    }
    let log = server
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with("/log"))
        .unwrap();
    assert!(log.query.contains("container=main"), "{}", log.query);
}
