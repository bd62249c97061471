//! The `kubelet` runtime against testkube playing the kubelet's API over HTTPS (a CA made at
//! start, a bearer token checked): exits of real processes seen through a followed log and
//! `/pods`, exit codes, kills of processes that honour or ignore SIGTERM through exec, logs,
//! insecure mode, and the errors of a wrong CA, a refused token and image files.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use argoexec_kube::KubeletOptions;
use argoexec_runtime::{ContainerRuntime as _, KillOutcome, Kubelet, LogStream};
use argoexec_testkube::{ExecHandler, ExecTarget, LogSource, Pid1Exec, ServerOptions, TestKube};
use futures::TryStreamExt as _;
use serde_json::json;

mod common;

use common::chain;

const NS: &str = "argo";
const POD: &str = "pod-1";
const TOKEN: &str = "sa-token";

fn server() -> Arc<TestKube> {
    let server = TestKube::start_with(ServerOptions::default().tls().token(TOKEN)).unwrap();
    server.apply(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": POD, "namespace": NS},
        "spec": {"restartPolicy": "Never", "containers": [
            {"name": "wait"}, {"name": "main"}, {"name": "sidecar"}]}}));
    // Another pod on the same node: /pods lists it too.
    server.apply(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "other", "namespace": NS},
        "spec": {"containers": [{"name": "main"}]}}));
    Arc::new(server)
}

/// The service account's files as a pod has them: the token and the CA of `server`.
fn account(dir: &Path, server: &TestKube, token: &str) -> (PathBuf, PathBuf) {
    let (token_file, ca_file) = (dir.join("token"), dir.join("ca.crt"));
    std::fs::write(&token_file, token).unwrap();
    std::fs::write(&ca_file, server.ca_pem().unwrap()).unwrap();
    (token_file, ca_file)
}

fn options(server: &TestKube, token_file: PathBuf, ca_file: PathBuf) -> KubeletOptions {
    KubeletOptions {
        host: "127.0.0.1".into(),
        port: server.port(),
        insecure: false,
        token_file,
        ca_file,
        namespace: NS.into(),
        pod: POD.into(),
    }
}

fn runtime(server: &TestKube, dir: &Path) -> Kubelet {
    let (token, ca) = account(dir, server, TOKEN);
    Kubelet::new(options(server, token, ca)).unwrap()
}

/// `kill -N 1` in a container signals its PID 1: here, the process the test started.
/// Starts `script` as container `name`, its output (both streams) the container's log: running in the pod's
/// status, then terminated with its exit code (128 + signal) once it ends.
fn start(
    server: &Arc<TestKube>,
    pid1: &Pid1Exec,
    dir: &Path,
    name: &str,
    script: &str,
) -> std::thread::JoinHandle<i32> {
    let log = dir.join(format!("{name}.log"));
    server.set_log(NS, POD, name, LogSource::File(log.clone()));
    let log = std::fs::File::create(&log).unwrap();
    let child = std::process::Command::new("sh")
        .args(["-c", script])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    pid1.set(name, child.id());
    server.adopt(NS, POD, name, child)
}

#[tokio::test]
async fn waits_for_exits_through_the_followed_log_and_reads_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let server = server();
    let kubelet = runtime(&server, dir.path());
    assert_eq!(
        kubelet.containers().await.unwrap(),
        ["wait", "main", "sidecar"]
    );
    let pid1 = Pid1Exec::default();
    let main = start(
        &server,
        &pid1,
        dir.path(),
        "main",
        "echo hello; sleep 1.5; echo bye >&2; exit 3",
    );
    kubelet.wait_started("main").await.unwrap();
    server.clear_requests();
    let exit = kubelet.wait_exited("main").await.unwrap();
    assert_eq!(exit.code, Some(3));
    assert_eq!(main.join().unwrap(), 3);

    // One followed log (asking for lines from the year 9999: none is sent) instead of polling.
    let requests = server.requests();
    let follows: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/containerLogs/argo/pod-1/main")
        .collect();
    assert_eq!(follows.len(), 1, "{requests:?}");
    assert!(follows[0].query.contains("follow=true"), "{requests:?}");
    assert!(follows[0].query.contains("sinceTime=9999"), "{requests:?}");
    let pods = requests.iter().filter(|r| r.path == "/pods").count();
    assert!(pods <= 3, "main ran 1.5 s: {requests:?}");
    assert!(
        requests.iter().all(|r| r.verb == "get" && r.status == 200),
        "{requests:?}"
    );

    // Logs: the whole combined output.
    let log: Vec<u8> = kubelet
        .logs("main", LogStream::Combined)
        .await
        .unwrap()
        .map_ok(|chunk| chunk.to_vec())
        .try_concat()
        .await
        .unwrap();
    assert_eq!(String::from_utf8(log).unwrap(), "hello\nbye\n");

    // An exited container is seen at once; an unknown one is an error.
    assert_eq!(kubelet.wait_exited("main").await.unwrap().code, Some(3));
    let missing = kubelet.wait_exited("nope").await.unwrap_err();
    assert!(
        missing.to_string().contains("\"nope\" not found"),
        "{missing}"
    );
}

#[tokio::test]
async fn without_a_log_to_follow_exits_are_polled() {
    let dir = tempfile::tempdir().unwrap();
    let server = server();
    let kubelet = runtime(&server, dir.path());
    server.set_container_state(NS, POD, "sidecar", json!({"running": {}}));
    let waiting = tokio::spawn(async move { kubelet.wait_exited("sidecar").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.set_container_state(NS, POD, "sidecar", json!({"terminated": {"exitCode": 0}}));
    assert_eq!(waiting.await.unwrap().unwrap().code, Some(0));
    let requests = server.requests();
    assert!(
        requests
            .iter()
            .any(|r| r.path.starts_with("/containerLogs/") && r.status == 400),
        "{requests:?}"
    );
}

#[tokio::test]
async fn kill_terms_then_kills_through_exec() {
    let dir = tempfile::tempdir().unwrap();
    let server = server();
    let pid1 = Pid1Exec::default();
    server.set_exec(pid1.clone());
    let kubelet = runtime(&server, dir.path());

    // PID 1 ignores SIGTERM: SIGKILL after the grace.
    let ready = dir.path().join("ready");
    let stubborn = start(
        &server,
        &pid1,
        dir.path(),
        "sidecar",
        &format!(
            "trap '' TERM; touch {}; while :; do sleep 0.05; done",
            ready.display()
        ),
    );
    while !ready.exists() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let outcome = kubelet
        .kill("sidecar", Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(outcome, KillOutcome::Killed);
    assert_eq!(stubborn.join().unwrap(), 128 + 9);
    let execs: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.path == "/exec/argo/pod-1/sidecar")
        .collect();
    assert_eq!(execs.len(), 2, "{execs:?}");
    assert!(execs[0].query.contains("command=kill+-15+1"), "{execs:?}");
    assert!(execs[1].query.contains("command=kill+-9+1"), "{execs:?}");
    assert!(execs[0].query.contains("output=1"), "{execs:?}");

    // PID 1 honours SIGTERM.
    let polite = start(&server, &pid1, dir.path(), "main", "exec sleep 30");
    let outcome = kubelet.kill("main", Duration::from_secs(20)).await.unwrap();
    assert_eq!(outcome, KillOutcome::Terminated);
    assert_eq!(polite.join().unwrap(), 128 + 15);

    // Already exited: nothing to signal.
    let outcome = kubelet.kill("main", Duration::from_secs(1)).await.unwrap();
    assert_eq!(outcome, KillOutcome::AlreadyExited);
}

#[tokio::test]
async fn a_container_without_sh_cannot_be_killed_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let server = server();
    #[derive(Debug)]
    struct NoShell;
    impl ExecHandler for NoShell {
        fn command(
            &self,
            _: &ExecTarget,
            _: &[String],
        ) -> std::io::Result<tokio::process::Command> {
            Ok(tokio::process::Command::new("/nonexistent/sh"))
        }
    }
    server.set_exec(NoShell);
    server.set_container_state(NS, POD, "main", json!({"running": {}}));
    let kubelet = runtime(&server, dir.path());
    let error = kubelet
        .kill("main", Duration::from_millis(100))
        .await
        .unwrap_err();
    let text = chain(&error);
    assert!(text.contains("needs `sh`"), "{text}");
}

#[tokio::test]
async fn image_files_are_not_available_and_the_error_says_to_use_a_volume() {
    let dir = tempfile::tempdir().unwrap();
    let server = server();
    let kubelet = runtime(&server, dir.path());
    let error = kubelet
        .read_file("main", Path::new("/tmp/out"))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("kubelet runtime"), "{error}");
    assert!(error.contains("volume"), "{error}");
    // Nothing was asked of the kubelet.
    assert!(server.requests().is_empty());
}

#[tokio::test]
async fn insecure_mode_trusts_any_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let server = server();
    std::fs::write(dir.path().join("token"), TOKEN).unwrap();
    let kubelet = Kubelet::new(KubeletOptions {
        insecure: true,
        ..options(
            &server,
            dir.path().join("token"),
            dir.path().join("no-such-ca.crt"),
        )
    })
    .unwrap();
    assert_eq!(kubelet.containers().await.unwrap().len(), 3);
}

#[tokio::test]
async fn a_kubelet_certificate_from_another_ca_is_refused_naming_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let server = server();
    let stranger = TestKube::start_with(ServerOptions::default().tls()).unwrap();
    let (token, _) = account(dir.path(), &server, TOKEN);
    let other_ca = dir.path().join("other-ca.crt");
    std::fs::write(&other_ca, stranger.ca_pem().unwrap()).unwrap();
    let kubelet = Kubelet::new(options(&server, token, other_ca.clone())).unwrap();
    let error = kubelet.containers().await.unwrap_err();
    let text = chain(&error);
    assert!(text.contains("not signed by the CA in"), "{text}");
    assert!(text.contains(&other_ca.display().to_string()), "{text}");
    assert!(text.contains("ARGO_KUBELET_INSECURE"), "{text}");

    // A CA file that is missing or holds no certificate fails at start, naming it.
    let missing = dir.path().join("missing.crt");
    let (token, _) = account(dir.path(), &server, TOKEN);
    let error = Kubelet::new(options(&server, token.clone(), missing.clone())).unwrap_err();
    let text = chain(&error);
    assert!(text.contains(&missing.display().to_string()), "{text}");
    std::fs::write(&missing, "not a certificate").unwrap();
    let error = Kubelet::new(options(&server, token, missing)).unwrap_err();
    let text = chain(&error);
    assert!(text.contains("no PEM certificate"), "{text}");
}

#[tokio::test]
async fn a_refused_token_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let server = server();
    let (token, ca) = account(dir.path(), &server, "stale-token");
    let kubelet = Kubelet::new(options(&server, token, ca)).unwrap();
    let error = kubelet.wait_started("main").await.unwrap_err();
    let text = chain(&error);
    assert!(text.contains("401 Unauthorized"), "{text}");
    assert!(
        text.contains("refused the service account's token"),
        "{text}"
    );
    assert_eq!(server.requests()[0].status, 401);
    assert!(
        !error.is_transient(),
        "a refused token stays refused: {text}"
    );
}

#[tokio::test]
async fn an_unreachable_kubelet_is_a_transient_failure() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("token"), TOKEN).unwrap();
    // A port nothing listens on any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubelet = Kubelet::new(KubeletOptions {
        host: "127.0.0.1".into(),
        port,
        insecure: true,
        token_file: dir.path().join("token"),
        ca_file: dir.path().join("ca.crt"),
        namespace: NS.into(),
        pod: POD.into(),
    })
    .unwrap();
    let error = kubelet.containers().await.unwrap_err();
    let text = chain(&error);
    assert!(text.contains("GET /pods from the kubelet at"), "{text}");
    assert!(error.is_transient(), "{text}");
}
