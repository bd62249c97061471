//! How soon the runtimes that ask Kubernetes see a container exit: `k8sapi` (a watch on its own
//! pod, through testkube as the API server) or `kubelet` (testkube playing the kubelet over
//! HTTPS). N containers, each `sh -c 'sleep 0.2; exec date +%s%N'` (the command prints the time
//! as its last act) with its output as the container's log; a thread reaps it and writes its
//! exit into the pod's status, as kubelet would; the runtime notes the time its `wait_exited`
//! returns. Prints percentiles and the requests per exit. Then kills, with a 1 s grace, three
//! containers whose PID 1 ignores SIGTERM, and prints how long each kill took (the contract:
//! gone within grace + 1 s).
//!
//! The fake kubelet ends a followed log as soon as the status changes; a real one checks the
//! container's state at least once a second, and its `/pods` serves the status the API server
//! last sent it, so on a node the latency is up to about a second more. Argo's kubelet runtime
//! polls `/pods` every 5 s (`WAIT_CONTAINER_STATUS_CHECK_INTERVAL`).
//!
//! `cargo run -p argoexec-runtime --example api_latency -- 30 kubelet`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use argoexec_config::KubeOverrides;
use argoexec_kube::{Backoff, KubeletOptions};
use argoexec_runtime::testns::{Latencies, now_ns};
use argoexec_runtime::{AnyRuntime, ContainerRuntime as _, K8sApi, Kubelet};
use argoexec_testkube::{LogSource, Pid1Exec, ServerOptions, TestKube};
use serde_json::json;

fn main() {
    let usage = "usage: api_latency RUNS k8sapi|kubelet";
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().expect(usage).parse().expect(usage);
    let name = args.next().expect(usage);
    let kubelet = match name.as_str() {
        "kubelet" => true,
        "k8sapi" => false,
        _ => panic!("{usage}"),
    };
    let dir = tempfile::tempdir().unwrap();
    // The kubelet takes HTTPS with the service account's token; the API server here plain HTTP.
    let options = ServerOptions::default().token("t");
    let server =
        Arc::new(TestKube::start_with(if kubelet { options.tls() } else { options }).unwrap());
    let mut containers: Vec<_> = (0..runs)
        .map(|i| json!({"name": format!("c{i}")}))
        .collect();
    containers.extend((0..3).map(|i| json!({"name": format!("k{i}")})));
    let pid1 = Pid1Exec::default();
    server.set_exec(pid1.clone());
    server.apply(json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "pod", "namespace": "argo"},
        "spec": {"restartPolicy": "Never", "containers": containers}}));
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let runtime: AnyRuntime = if kubelet {
        std::fs::write(dir.path().join("token"), "t").unwrap();
        std::fs::write(dir.path().join("ca.crt"), server.ca_pem().unwrap()).unwrap();
        let _entered = tokio.enter();
        AnyRuntime::from(
            Kubelet::new(KubeletOptions {
                host: "127.0.0.1".into(),
                port: server.port(),
                insecure: false,
                token_file: dir.path().join("token"),
                ca_file: dir.path().join("ca.crt"),
                namespace: "argo".into(),
                pod: "pod".into(),
            })
            .unwrap(),
        )
    } else {
        let kube = tokio
            .block_on(argoexec_kube::connect(&KubeOverrides {
                server: Some(server.url().to_owned()),
                namespace: Some("argo".into()),
                token: Some("t".into()),
                ..KubeOverrides::default()
            }))
            .unwrap();
        AnyRuntime::from(K8sApi::new(&kube, "pod", Backoff::default()))
    };

    let mut latencies = Latencies::default();
    server.clear_requests();
    for i in 0..runs {
        let name = format!("c{i}");
        let log = dir.path().join(format!("{name}.log"));
        server.set_log("argo", "pod", &name, LogSource::File(log.clone()));
        let child = Command::new("sh")
            .args(["-c", "sleep 0.2; exec date +%s%N"])
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let reaper = server.adopt("argo", "pod", &name, child);
        let woke = tokio.block_on(async {
            runtime.wait_exited(&name).await.unwrap();
            now_ns()
        });
        reaper.join().unwrap();
        let exited: u128 = std::fs::read_to_string(&log)
            .unwrap()
            .trim()
            .parse()
            .expect("the command's last line is the time");
        latencies.push(exited, woke);
    }

    let requests = server.requests();
    // Requests per exit, by verb and what they asked for (pods, or the kubelet's containerLogs).
    let mut by_kind = std::collections::BTreeMap::<String, usize>::new();
    for r in &requests {
        let what = r
            .path
            .split('/')
            .find(|part| ["pods", "containerLogs", "exec"].contains(part))
            .unwrap_or(&r.path);
        *by_kind.entry(format!("{} {what}", r.verb)).or_default() += 1;
    }
    println!("{}", latencies.summary(&name));
    let per_exit: Vec<String> = by_kind
        .iter()
        .map(|(kind, n)| format!("{kind} {:.1}", *n as f64 / runs as f64))
        .collect();
    println!("{name} (fake server): per exit {}", per_exit.join(", "));

    let mut kills = Vec::new();
    for i in 0..3 {
        let name = format!("k{i}");
        let ready = dir.path().join(format!("{name}.ready"));
        let child = Command::new("sh")
            .args([
                "-c",
                &format!(
                    "trap '' TERM; touch {}; while :; do sleep 0.05; done",
                    ready.display()
                ),
            ])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        while !ready.exists() {
            std::thread::sleep(Duration::from_millis(5));
        }
        pid1.set(&name, child.id());
        server.set_log("argo", "pod", &name, LogSource::Bytes("".into()));
        let reaper = server.adopt("argo", "pod", &name, child);
        let started = std::time::Instant::now();
        let outcome = tokio
            .block_on(runtime.kill(&name, Duration::from_secs(1)))
            .unwrap();
        kills.push(format!("{:?} ({outcome:?})", started.elapsed()));
        reaper.join().unwrap();
    }
    println!(
        "{name} (fake server): kill of a PID 1 that ignores SIGTERM, grace 1 s: {}",
        kills.join(", ")
    );
}
