//! How soon the kubelet runtime sees a container exit, against testkube playing the kubelet over
//! HTTPS: N containers, each `sh -c 'sleep 0.2; exec date +%s%N'` (the command prints the time
//! as its last act) with its output as the container's log; a thread reaps it and writes its
//! exit into the pod's status, as kubelet would; the runtime notes the time its `wait_exited`
//! returns. Prints percentiles and the kubelet requests per exit.
//!
//! The fake kubelet ends a followed log as soon as the status changes; a real one checks the
//! container's state at least once a second, and its `/pods` serves the status the API server
//! last sent it, so on a node the latency is up to about a second more. Argo's kubelet runtime
//! polls `/pods` every 5 s (`WAIT_CONTAINER_STATUS_CHECK_INTERVAL`).
//!
//! `cargo run -p argoexec-kube --example kubelet_latency -- 30`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argoexec_kube::{Kubelet, KubeletOptions};
use argoexec_runtime::ContainerRuntime as _;
use argoexec_testkube::{LogSource, ServerOptions, TestKube};
use serde_json::json;

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn main() {
    let usage = "usage: kubelet_latency RUNS";
    let runs: usize = std::env::args().nth(1).expect(usage).parse().expect(usage);
    let dir = tempfile::tempdir().unwrap();
    let server = Arc::new(TestKube::start_with(ServerOptions::default().tls().token("t")).unwrap());
    let containers: Vec<_> = (0..runs)
        .map(|i| json!({"name": format!("c{i}")}))
        .collect();
    server.apply(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "pod", "namespace": "argo"},
        "spec": {"restartPolicy": "Never", "containers": containers}}));
    std::fs::write(dir.path().join("token"), "t").unwrap();
    std::fs::write(dir.path().join("ca.crt"), server.ca_pem().unwrap()).unwrap();
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let kubelet = {
        let _entered = tokio.enter();
        Kubelet::new(KubeletOptions {
            host: "127.0.0.1".into(),
            port: server.port(),
            insecure: false,
            token_file: dir.path().join("token"),
            ca_file: dir.path().join("ca.crt"),
            namespace: "argo".into(),
            pod: "pod".into(),
        })
        .unwrap()
    };

    let mut latencies = Vec::with_capacity(runs);
    server.clear_requests();
    for i in 0..runs {
        let name = format!("c{i}");
        let log = dir.path().join(format!("{name}.log"));
        server.set_log("argo", "pod", &name, LogSource::File(log.clone()));
        let mut child = Command::new("sh")
            .args(["-c", "sleep 0.2; exec date +%s%N"])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        server.set_container_state("argo", "pod", &name, json!({"running": {}}));
        let reaper = {
            let (server, name) = (Arc::clone(&server), name.clone());
            std::thread::spawn(move || {
                let code = child.wait().unwrap().code().unwrap_or(1);
                server.set_container_state(
                    "argo",
                    "pod",
                    &name,
                    json!({"terminated": {"exitCode": code}}),
                );
            })
        };
        let woke = tokio.block_on(async {
            kubelet.wait_exited(&name).await.unwrap();
            now_ns()
        });
        reaper.join().unwrap();
        let exited: u128 = std::fs::read_to_string(&log)
            .unwrap()
            .trim()
            .parse()
            .expect("the command's last line is the time");
        latencies.push(Duration::from_nanos(
            u64::try_from(woke.saturating_sub(exited)).unwrap(),
        ));
    }

    let requests = server.requests();
    let count = |prefix: &str| {
        requests
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .count()
    };
    latencies.sort();
    let at = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    println!(
        "kubelet (fake, HTTPS): command exit to wait_exited, {runs} runs: p50 {:?}  p90 {:?}  max {:?}; per exit {:.1} GET /pods, {:.1} followed logs",
        at(50),
        at(90),
        latencies[latencies.len() - 1],
        count("/pods") as f64 / runs as f64,
        count("/containerLogs/") as f64 / runs as f64,
    );
}
