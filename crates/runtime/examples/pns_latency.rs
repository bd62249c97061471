//! How soon the PNS runtime sees a container exit: N containers in a real PID namespace, each
//! printing the time (`date +%s%N`) as its last act and exiting; the runtime, inside the
//! namespace, notes the time its `wait_exited` returns. Prints percentiles of the difference.
//!
//! Needs root and util-linux: `cargo run -p argoexec-runtime --all-features --example pns_latency -- 200`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use argoexec_runtime::testns::{Latencies, PodNamespace, Reports, now_ns};
use argoexec_runtime::{ContainerRuntime as _, Pns};

/// Set in the copy of this program that runs inside the namespace: how many containers to await.
const PROBE: &str = "PNS_LATENCY_PROBE";

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .map_or(100, |n| n.parse().expect("usage: pns_latency [RUNS]"));
    if let Ok(runs) = std::env::var(PROBE) {
        probe(runs.parse().unwrap());
        return;
    }
    let ns = PodNamespace::start().expect("a PID namespace (root, util-linux)");
    let mut command = ns.command(std::env::current_exe().unwrap());
    command
        .env(PROBE, runs.to_string())
        .env("ARGO_CONTAINER_NAME", "wait");
    let probe = Reports::spawn(command).unwrap();
    let wait = Duration::from_secs(30);
    probe.expect("ready", wait).unwrap();

    let mut latencies = Latencies::default();
    for i in 0..runs {
        let exited = ns.run_timed_exit(&format!("c{i}"), "0.03").unwrap();
        let woke: u128 = probe.expect("woke", wait).unwrap().parse().unwrap();
        latencies.push(exited, woke);
    }
    probe.wait().unwrap();

    println!("{}", latencies.summary("pns"));
}

fn probe(runs: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let pns = Pns::new().unwrap();
        println!("{}ready", Reports::PREFIX);
        for i in 0..runs {
            pns.wait_exited(&format!("c{i}")).await.unwrap();
            println!("{}woke {}", Reports::PREFIX, now_ns());
        }
    });
}
