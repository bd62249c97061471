//! What reporting costs the API server and the step: API requests per step (constant however
//! long main runs: nothing polls) and the time from main's exit to the outputs being reported,
//! for each protocol, against the fake API server with a chosen per-request latency.
//!
//! `cargo run -p argoexec-kube --example report_bench -- [RUNS] [LATENCY_MS]`
//!
//! Each step does what `argoexec wait` does against the API: connect, check access, (v4) create
//! the task result, let main run (a sleep of 0.2 s, 1 s or 3 s), then report. The wait for main
//! itself (PNS) is measured by `crates/runtime/examples/pns_latency.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use argoexec_config::KubeOverrides;
use argoexec_kube::{Backoff, KubeReporter, Names, check_access, connect};
use argoexec_report::StepReport;
use argoexec_template::{Outputs, Protocol};
use argoexec_testkube::TestKube;
use serde_json::json;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args
        .next()
        .map_or(5, |a| a.parse().expect("RUNS: a number"));
    let latency_ms: u64 = args
        .next()
        .map_or(2, |a| a.parse().expect("LATENCY_MS: a number"));
    let server = TestKube::start().unwrap();
    server.set_latency(Duration::from_millis(latency_ms));
    println!(
        "API latency {latency_ms} ms per request, {runs} runs per row (median); reported ms: from main's exit to the report's last answer"
    );
    println!(
        "{:<9} {:>6} {:>9}  {:<82} {:>12}",
        "protocol", "main s", "requests", "by verb and resource", "reported ms"
    );
    for protocol in [Protocol::V2, Protocol::V3, Protocol::V4] {
        for main in [0.2, 1.0, 3.0] {
            let mut latencies = Vec::new();
            let mut counts = Vec::new();
            let mut by_verb = BTreeMap::new();
            for run in 0..runs {
                let pod = format!("pod-{protocol:?}-{main}-{run}")
                    .to_lowercase()
                    .replace('.', "-");
                server.apply(json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": pod, "namespace": "argo", "uid": "u"},
                    "spec": {"containers": [{"name": "main"}]}}));
                server.clear_requests();
                let (requests, latency) = step(&server, protocol, &pod, main).await;
                latencies.push(latency);
                counts.push(requests.values().sum::<usize>());
                by_verb = requests;
            }
            latencies.sort();
            counts.sort_unstable();
            let verbs: Vec<String> = by_verb.iter().map(|(v, n)| format!("{v}={n}")).collect();
            println!(
                "{:<9} {:>6.1} {:>9}  {:<82} {:>12.1}",
                format!("{protocol:?}"),
                main,
                counts[counts.len() / 2],
                verbs.join(" "),
                latencies[latencies.len() / 2].as_secs_f64() * 1000.0
            );
        }
    }
}

/// One step; returns the requests by kind and the time from main's exit to the report's end.
async fn step(
    server: &TestKube,
    protocol: Protocol,
    pod: &str,
    main_secs: f64,
) -> (BTreeMap<String, usize>, Duration) {
    let kube = connect(&KubeOverrides {
        server: Some(server.url().to_owned()),
        namespace: Some("argo".into()),
        ..KubeOverrides::default()
    })
    .await
    .unwrap();
    check_access(&kube, protocol).await.unwrap();
    let names = Names {
        pod: pod.to_owned(),
        pod_uid: Some("u".into()),
        node_id: Some(format!("{pod}-node")),
        workflow: Some("wf".into()),
        workflow_uid: Some("wf-uid".into()),
        instance_id: None,
    };
    let reporter = KubeReporter::new(kube, protocol, names, Backoff::default()).unwrap();
    reporter.start().await.unwrap();
    tokio::time::sleep(Duration::from_secs_f64(main_secs)).await;
    let exited = Instant::now();
    let report = StepReport {
        outputs: Outputs {
            result: Some("done".into()),
            ..Outputs::default()
        },
        message: None,
        progress: None,
    };
    reporter.report_outputs(&report).await.unwrap();
    let latency = exited.elapsed();
    let mut by_verb = BTreeMap::new();
    for request in server.requests() {
        let resource = request
            .path
            .rsplit('/')
            .find(|p| ["pods", "workflowtaskresults", "selfsubjectaccessreviews"].contains(p))
            .unwrap_or("other");
        *by_verb
            .entry(format!("{} {resource}", request.verb))
            .or_insert(0) += 1;
    }
    (by_verb, latency)
}
