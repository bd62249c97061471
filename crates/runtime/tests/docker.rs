//! The docker runtime against a real Docker Engine (`tests/setup` installs docker.io,
//! `tests/docker-engine` starts it). Each test makes a pod of its own: containers run from a
//! busybox image imported locally, labelled as the kubelet labels them, with a sandbox container
//! named `POD` that the runtime must skip. Skipped, loudly, only when no engine answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use argoexec_runtime::testdocker::{docker_ok, engine_or_skip, ensure_image, remove_labelled};
use argoexec_runtime::testns::collect;
use argoexec_runtime::{
    CONTAINER_NAME_LABEL, ContainerRuntime as _, Docker, DockerOptions, Error, ExitStatus,
    KillOutcome, LogStream, POD_NAME_LABEL, POD_NAMESPACE_LABEL, PathSource,
};

const IMAGE: &str = "argoexec-test/busybox:1";
const NAMESPACE: &str = "runtime-tests";

/// A pod of containers in the engine, removed on drop.
struct Pod {
    name: String,
}

impl Pod {
    /// A fresh pod with its sandbox running, or `None` (and a loud message) without an engine.
    fn new(name: &str) -> Option<Self> {
        if !engine_or_skip() {
            return None;
        }
        ensure_image(IMAGE, &[]).unwrap();
        let pod = Self {
            name: format!("{name}-{}", std::process::id()),
        };
        pod.remove();
        pod.run("POD", "exec sleep 3600");
        Some(pod)
    }

    /// Starts container `name` running `script` with busybox sh; returns its id.
    fn run(&self, name: &str, script: &str) -> String {
        self.docker(
            &["run", "-d", "--network", "none"],
            name,
            &["sh", "-c", script],
        )
    }

    /// Creates container `name` joined to the sandbox's network and PID namespace, as the
    /// kubelet makes a pod's containers, running `command`, without starting it; returns its id.
    fn create(&self, name: &str, command: &str) -> String {
        let sandbox = docker_ok(&[
            "ps",
            "-q",
            "--filter",
            &format!("label={POD_NAME_LABEL}={}", self.name),
            "--filter",
            &format!("label={CONTAINER_NAME_LABEL}=POD"),
        ])
        .unwrap();
        let joined = format!("container:{}", sandbox.trim());
        let id = self.docker(
            &["create", "--network", &joined, "--pid", &joined],
            name,
            &[command],
        );
        id.trim().to_owned()
    }

    /// `docker <how> <the pod's labels for container name> IMAGE <command>`.
    fn docker(&self, how: &[&str], name: &str, command: &[&str]) -> String {
        let labels = [
            format!("{POD_NAMESPACE_LABEL}={NAMESPACE}"),
            format!("{POD_NAME_LABEL}={}", self.name),
            format!("{CONTAINER_NAME_LABEL}={name}"),
        ];
        let mut args: Vec<&str> = how.to_vec();
        for label in &labels {
            args.extend(["--label", label]);
        }
        args.push(IMAGE);
        args.extend(command);
        docker_ok(&args).unwrap()
    }

    fn runtime(&self) -> Docker {
        Docker::new(DockerOptions {
            host: None,
            namespace: NAMESPACE.into(),
            pod_name: self.name.clone(),
        })
    }

    fn remove(&self) {
        remove_labelled(&format!("{POD_NAME_LABEL}={}", self.name)).unwrap();
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.remove();
    }
}

#[tokio::test]
async fn containers_are_found_by_labels_and_exit_codes_are_theirs() {
    let Some(pod) = Pod::new("codes") else { return };
    let docker = pod.runtime();
    pod.run("main", "exit 3");
    pod.run("zero", "true");
    pod.run("max", "exit 255");
    // Another pod's container of the same name is not this pod's.
    let other = Pod::new("codes-other").unwrap();
    other.run("main", "exit 9");

    assert_eq!(
        docker.wait_exited("main").await.unwrap(),
        ExitStatus::code(3)
    );
    assert_eq!(
        docker.wait_exited("zero").await.unwrap(),
        ExitStatus::code(0)
    );
    assert_eq!(
        docker.wait_exited("max").await.unwrap(),
        ExitStatus::code(255)
    );
    // The sandbox is not a container of the spec.
    assert_eq!(docker.containers().await.unwrap(), ["main", "max", "zero"]);
    assert!(matches!(
        docker.kill("absent", Duration::ZERO).await,
        Err(Error::ContainerNotFound { .. })
    ));
}

#[tokio::test]
async fn a_container_that_starts_later_is_seen_through_events() {
    let Some(pod) = Pod::new("later") else { return };
    let docker = pod.runtime();
    let waiting = tokio::spawn(async move { docker.wait_exited("main").await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "wait_exited returned before main existed"
    );
    pod.run("main", "sleep 0.3; exit 5");
    assert_eq!(waiting.await.unwrap().unwrap(), ExitStatus::code(5));
}

#[tokio::test]
async fn kill_escalates_to_sigkill_when_pid_1_ignores_sigterm() {
    let Some(pod) = Pod::new("kill") else { return };
    let docker = pod.runtime();
    // PID 1 of a container has no default action for SIGTERM: sh without a trap ignores it.
    pod.run("stubborn", "while true; do sleep 0.1; done");
    pod.run(
        "polite",
        "trap 'exit 0' TERM; while true; do sleep 0.1; done",
    );
    pod.run("done", "true");
    docker.wait_started("stubborn").await.unwrap();
    docker.wait_started("polite").await.unwrap();
    docker.wait_exited("done").await.unwrap();

    let grace = Duration::from_secs(1);
    let start = Instant::now();
    assert_eq!(
        docker.kill("stubborn", grace).await.unwrap(),
        KillOutcome::Killed
    );
    let took = start.elapsed();
    eprintln!("TERM, {grace:?} grace, KILL: {took:?}");
    assert!(
        took >= grace,
        "SIGKILL came before the grace ended: {took:?}"
    );
    assert_eq!(
        docker.wait_exited("stubborn").await.unwrap(),
        ExitStatus::code(137)
    );

    assert_eq!(
        docker
            .kill("polite", Duration::from_secs(20))
            .await
            .unwrap(),
        KillOutcome::Terminated
    );
    assert_eq!(
        docker.wait_exited("polite").await.unwrap(),
        ExitStatus::code(0)
    );
    assert_eq!(
        docker.kill("done", grace).await.unwrap(),
        KillOutcome::AlreadyExited
    );
}

#[tokio::test]
async fn files_of_the_image_are_read_through_the_archive_endpoint() {
    let Some(pod) = Pod::new("files") else { return };
    let docker = pod.runtime();
    // Written to the container's own filesystem (no volume), read after it exited.
    pod.run(
        "main",
        "mkdir -p /tmp/out/sub && printf 'one' > /tmp/out/a.txt && echo two > /tmp/out/sub/b.txt \
         && ln -s a.txt /tmp/out/link && ln -s /tmp/out/sub/b.txt /tmp/abs",
    );
    assert_eq!(
        docker.wait_exited("main").await.unwrap(),
        ExitStatus::code(0)
    );

    let read = |path: &'static str| docker.read_file("main", Path::new(path));
    assert_eq!(read("/tmp/out/a.txt").await.unwrap(), b"one");
    assert_eq!(read("/tmp/out/link").await.unwrap(), b"one");
    assert_eq!(read("/tmp/abs").await.unwrap(), b"two\n");
    assert!(matches!(
        read("/tmp/out/missing").await,
        Err(Error::PathNotFound { .. })
    ));
    assert!(
        read("/tmp/out/sub").await.is_err(),
        "a directory is not a file"
    );

    let PathSource::Tar(stream) = docker
        .open_path("main", Path::new("/tmp/out"))
        .await
        .unwrap()
    else {
        panic!("the docker runtime gives tar streams");
    };
    let bytes = collect(stream).await.unwrap();
    let mut names: Vec<String> = tar::Archive::new(&bytes[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().display().to_string())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["out/", "out/a.txt", "out/link", "out/sub/", "out/sub/b.txt"]
    );
    assert!(matches!(
        docker.open_path("main", Path::new("/nope")).await,
        Err(Error::PathNotFound { .. })
    ));
}

#[tokio::test]
async fn logs_are_stdout_alone_or_both_streams() {
    let Some(pod) = Pod::new("logs") else { return };
    let docker = pod.runtime();
    pod.run(
        "main",
        "echo out-1; sleep 0.1; echo err-1 >&2; sleep 0.1; echo out-2; sleep 0.1; \
         seq 1 20000 >/dev/stderr",
    );
    docker.wait_exited("main").await.unwrap();
    let stdout = collect(docker.logs("main", LogStream::Stdout).await.unwrap())
        .await
        .unwrap();
    assert_eq!(String::from_utf8(stdout).unwrap(), "out-1\nout-2\n");
    let combined = collect(docker.logs("main", LogStream::Combined).await.unwrap())
        .await
        .unwrap();
    let combined = String::from_utf8(combined).unwrap();
    assert!(
        combined.starts_with("out-1\nerr-1\nout-2\n1\n2\n"),
        "{}",
        &combined[..80]
    );
    assert!(combined.ends_with("\n19999\n20000\n"));
}

/// `path` of `main` through the docker runtime's tar stream.
async fn tar_of(
    docker: &Docker,
    path: &str,
) -> tokio_util::io::StreamReader<argoexec_runtime::ByteStream, bytes::Bytes> {
    let PathSource::Tar(stream) = docker.open_path("main", Path::new(path)).await.unwrap() else {
        panic!("the docker runtime gives tar streams");
    };
    tokio_util::io::StreamReader::new(stream)
}

#[tokio::test]
async fn the_engines_tar_stream_repacks_as_zip_and_as_is() {
    use argoexec_archive::{PackFormat, UnpackFormat};
    use futures::TryStreamExt as _;
    let Some(pod) = Pod::new("repack") else {
        return;
    };
    let docker = pod.runtime();
    pod.run(
        "main",
        "mkdir -p /tmp/out/sub/empty && printf 'one' > /tmp/out/a.txt && seq 1 50000 > /tmp/out/sub/b.txt \
         && ln -s a.txt /tmp/out/link && mkdir /tmp/linked && echo x > /tmp/linked/x && ln /tmp/linked/x /tmp/linked/y",
    );
    assert_eq!(
        docker.wait_exited("main").await.unwrap(),
        ExitStatus::code(0)
    );
    let expected_b: String = (1..=50000).map(|n| format!("{n}\n")).collect();

    // zip: unzips to the container's tree, the symlink and the empty directory included.
    let zip = argoexec_archive::repack_stream(
        tar_of(&docker, "/tmp/out").await,
        "/tmp/out",
        PackFormat::Zip,
    );
    let zip: Vec<u8> = zip.map_ok(|c| c.to_vec()).try_concat().await.unwrap();
    let back = tempfile::tempdir().unwrap();
    let dest = back.path().join("out");
    argoexec_archive::unpack_from(
        &zip[..],
        &dest,
        UnpackFormat::Zip,
        &argoexec_archive::Limits::default(),
    )
    .unwrap();
    assert_eq!(std::fs::read(dest.join("a.txt")).unwrap(), b"one");
    assert_eq!(
        std::fs::read_to_string(dest.join("sub/b.txt")).unwrap(),
        expected_b
    );
    assert_eq!(
        std::fs::read_link(dest.join("link")).unwrap(),
        Path::new("a.txt")
    );
    assert!(dest.join("sub/empty").is_dir());
    // A hard link's data went by earlier in the stream: refused, not dropped.
    let zip = argoexec_archive::repack_stream(
        tar_of(&docker, "/tmp/linked").await,
        "/tmp/linked",
        PackFormat::Zip,
    );
    let err = zip.map_ok(|c| c.to_vec()).try_concat().await.unwrap_err();
    assert!(format!("{:?}", err).contains("hard link"), "{err:?}");

    // none: a file is its bytes, a directory its regular files one by one.
    let plain = argoexec_archive::repack_stream(
        tar_of(&docker, "/tmp/out/a.txt").await,
        "/tmp/out/a.txt",
        PackFormat::AsIs,
    );
    let plain: Vec<u8> = plain.map_ok(|c| c.to_vec()).try_concat().await.unwrap();
    assert_eq!(plain, b"one");
    let mut files =
        argoexec_archive::tar_files(tar_of(&docker, "/tmp/out").await, false, "/tmp/out");
    let mut got = Vec::new();
    while let Some(file) = files.next().await {
        let file = file.unwrap();
        let body: Vec<u8> = file.body.map_ok(|c| c.to_vec()).try_concat().await.unwrap();
        got.push((file.path, body.len()));
    }
    got.sort();
    assert_eq!(
        got,
        [
            ("a.txt".to_owned(), 3),
            ("sub/b.txt".to_owned(), expected_b.len())
        ]
    );
}

#[tokio::test]
async fn a_main_that_cannot_start_ends_the_wait_with_the_engines_reason() {
    let Some(pod) = Pod::new("nostart") else {
        return;
    };
    let docker = pod.runtime();
    // Waiting before the start: docker 20.10 sends no event for a start that fails, so the
    // runtime's backstop inspection has to find it.
    let id = pod.create("main", "/no/such/entrypoint");
    let waiting = tokio::spawn(async move {
        let docker = docker;
        docker.wait_exited("main").await
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = std::process::Command::new("docker")
        .args(["start", &id])
        .output()
        .unwrap();
    assert!(!started.status.success(), "{started:?}");
    // A bound against hanging (the regression this guards), not a measure.
    let waited = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("the failed start was never seen");
    match waited.unwrap() {
        Err(Error::StartFailed {
            container,
            code,
            message,
        }) => {
            assert_eq!(container, "main");
            assert_eq!(code, 127);
            assert!(message.contains("/no/such/entrypoint"), "{message}");
        }
        other => panic!("expected a failed start, got {other:?}"),
    }
    // Asked after the failure: seen at once. Not executable: 126. Neither is killed.
    let docker = pod.runtime();
    let id = pod.create("side", "/tmp");
    assert!(
        !std::process::Command::new("docker")
            .args(["start", &id])
            .output()
            .unwrap()
            .status
            .success()
    );
    assert!(matches!(
        docker.wait_exited("side").await,
        Err(Error::StartFailed { code: 126, .. })
    ));
    assert_eq!(
        docker.kill("side", Duration::ZERO).await.unwrap(),
        KillOutcome::AlreadyExited
    );
}
