//! How soon the emissary runtime sees a container exit: N containers, each `argoexec emissary --
//! sh -c 'sleep 0.03; exec date +%s%N'` (the command prints the time as its last act); the
//! runtime notes the time its `wait_exited` returns. The difference covers the emissary reaping
//! its child, writing `exitcode` and the inotify wake-up. Prints percentiles.
//!
//! Needs the argoexec binary: `cargo build -p argoexec && cargo run -p argoexec-runtime --example
//! emissary_latency -- 100 target/debug/argoexec`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};

use argoexec_runtime::testns::{Latencies, now_ns};
use argoexec_runtime::{ContainerRuntime as _, Emissary};

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

    let mut latencies = Latencies::default();
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
        latencies.push(exited, woke);
    }

    println!("{}", latencies.summary("emissary"));
}
