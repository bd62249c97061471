//! How soon the emissary runtime sees a container exit: N containers, each `argoexec emissary --
//! sh -c 'sleep 0.03; exec date +%s%N'` (the command prints the time as its last act); the
//! runtime notes the time its `wait_exited` returns. The difference covers the emissary reaping
//! its child, writing `exitcode` and the inotify wake-up. Prints percentiles.
//!
//! Needs the argoexec binary: `cargo build -p argoexec && cargo run -p argoexec-runtime --example
//! emissary_latency -- 100 target/debug/argoexec`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argoexec_runtime::{ContainerRuntime as _, Emissary};

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: emissary_latency RUNS ARGOEXEC";
    let runs: usize = args.next().expect(usage).parse().expect(usage);
    let argoexec = args.next().expect(usage);
    let root = tempfile::tempdir().unwrap();
    let var_run_argo = root.path().join("var/run/argo");
    std::fs::create_dir_all(&var_run_argo).unwrap();
    std::fs::write(
        var_run_argo.join("template"),
        r#"{"name":"latency","container":{"image":"x"}}"#,
    )
    .unwrap();
    let runtime = Emissary::new(&var_run_argo);
    let tokio = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();

    let mut latencies = Vec::with_capacity(runs);
    for i in 0..runs {
        let name = format!("c{i}");
        let child = Command::new(&argoexec)
            .args(["emissary", "--pod-root"])
            .arg(root.path())
            .args(["--", "sh", "-c", "sleep 0.03; exec date +%s%N"])
            .env("ARGO_CONTAINER_NAME", &name)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let woke = tokio.block_on(async {
            runtime.wait_exited(&name).await.unwrap();
            now_ns()
        });
        let output = child.wait_with_output().unwrap();
        let exited: u128 = String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .expect("the command's last line is the time");
        latencies.push(Duration::from_nanos(
            u64::try_from(woke.saturating_sub(exited)).unwrap(),
        ));
    }

    latencies.sort();
    let at = |p: usize| latencies[(latencies.len() * p / 100).min(latencies.len() - 1)];
    println!(
        "emissary: command exit to wait_exited, {runs} runs: p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
        at(50),
        at(90),
        at(99),
        latencies[latencies.len() - 1]
    );
}
