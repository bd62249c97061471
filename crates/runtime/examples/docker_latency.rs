//! How soon the docker runtime sees a container exit: N containers, each sleeping a little and
//! then printing the time (this machine's `date +%s%N`, bind-mounted: busybox's has no `%N`) as
//! its last act; the runtime's `wait_exited`, called
//! while the container runs, notes the time it returns. Prints percentiles of the difference.
//! The container's time comes from its log, read afterwards.
//!
//! Needs a running Docker Engine (`tests/docker-engine`) and busybox-static:
//! `cargo run -p argoexec-runtime --all-features --example docker_latency -- 50`

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use argoexec_runtime::testdocker::{docker_ok, engine_available, ensure_image, remove_labelled};
use argoexec_runtime::testns::{Latencies, collect, now_ns};
use argoexec_runtime::{
    CONTAINER_NAME_LABEL, ContainerRuntime as _, Docker, DockerOptions, LogStream, POD_NAME_LABEL,
    POD_NAMESPACE_LABEL,
};

/// busybox plus the C library, so that this machine's `date` runs in it.
const IMAGE: &str = "argoexec-test/busybox-libc:1";

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .map_or(20, |n| n.parse().expect("usage: docker_latency [RUNS]"));
    assert!(
        engine_available(),
        "no Docker Engine: run tests/docker-engine"
    );
    ensure_image(IMAGE, &[Path::new("/bin/date")]).unwrap();
    let pod = format!("latency-{}", std::process::id());
    let label = format!("{POD_NAME_LABEL}={pod}");
    remove_labelled(&label).unwrap();
    let docker = Docker::new(DockerOptions {
        host: None,
        namespace: "bench".into(),
        pod_name: pod.clone(),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut latencies = Latencies::default();
    for i in 0..runs {
        let name = format!("c{i}");
        docker_ok(&[
            "run",
            "-d",
            "--network",
            "none",
            "--label",
            &format!("{POD_NAMESPACE_LABEL}=bench"),
            "--label",
            &label,
            "--label",
            &format!("{CONTAINER_NAME_LABEL}={name}"),
            "-v",
            "/bin/date:/host/date:ro",
            IMAGE,
            "sh",
            "-c",
            "sleep 0.5; exec /host/date +%s%N",
        ])
        .unwrap();
        let (woke, exited) = runtime.block_on(async {
            docker.wait_exited(&name).await.unwrap();
            let woke = now_ns();
            let log = collect(docker.logs(&name, LogStream::Stdout).await.unwrap())
                .await
                .unwrap();
            let exited: u128 = String::from_utf8(log).unwrap().trim().parse().unwrap();
            (woke, exited)
        });
        latencies.push(exited, woke);
    }
    remove_labelled(&label).unwrap();

    println!("{}", latencies.summary("docker"));
}
