//! Black-box tests of `argoexec init`: the real binary, a pod layout under a temp dir
//! (`--pod-root`), templates as the controller passes them.

// A test fails by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

fn init(root: &Path, template: &serde_json::Value, extra_env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_argoexec"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ARGO_POD_NAME", "pod-1")
        .env("ARGO_TEMPLATE", template.to_string())
        .envs(extra_env.iter().copied())
        .arg("init")
        .arg("--pod-root")
        .arg(root)
        .arg("--termination-log")
        .arg(root.join("termination-log"));
    cmd.output().unwrap()
}

/// Runs init, which must succeed; its stderr.
fn init_succeeds(root: &Path, template: &serde_json::Value, extra_env: &[(&str, &str)]) -> String {
    let out = init(root, template, extra_env);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

/// Runs init in a PNS pod, which must fail as an executor error; its termination log.
fn init_fails(root: &Path, template: &serde_json::Value) -> String {
    let out = init(
        root,
        template,
        &[("ARGO_CONTAINER_RUNTIME_EXECUTOR", "pns")],
    );
    assert_eq!(
        out.status.code(),
        Some(64),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    read(root.join("termination-log"))
}

/// A file's text, which must exist.
fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn stages_script_bootstraps_emissary_and_loads_raw_inputs() {
    let root = tempfile::tempdir().unwrap();
    let template = serde_json::json!({
        "name": "script",
        "inputs": {"artifacts": [
            {"name": "greeting", "path": "/tmp/greeting.txt", "raw": {"data": "hello\n"}, "mode": 384},
            {"name": "on-volume", "path": "/work/data/x.txt", "raw": {"data": "v"}},
            {"name": "maybe", "path": "/tmp/maybe", "optional": true},
        ]},
        "script": {
            "image": "alpine", "command": ["sh"], "source": "echo hi\n",
            "volumeMounts": [{"name": "work", "mountPath": "/work"}]
        }
    });
    let stderr = init_succeeds(root.path(), &template, &[]);
    let r = root.path();
    assert_eq!(read(r.join("argo/staging/script")), "echo hi\n");
    assert_eq!(
        mode(&r.join("argo/staging/script")),
        0o644,
        "v3 stages the script 0644"
    );
    assert_eq!(mode(&r.join("var/run/argo/argoexec")), 0o555);
    assert_eq!(
        std::fs::read(r.join("var/run/argo/argoexec")).unwrap(),
        std::fs::read(env!("CARGO_BIN_EXE_argoexec")).unwrap()
    );
    assert_eq!(mode(&r.join("var/run/argo/template")), 0o444);
    let copied: serde_json::Value =
        serde_json::from_slice(&std::fs::read(r.join("var/run/argo/template")).unwrap()).unwrap();
    assert_eq!(copied, template);
    let greeting = r.join("argo/inputs/artifacts/greeting");
    assert_eq!(std::fs::read_to_string(&greeting).unwrap(), "hello\n");
    assert_eq!(mode(&greeting), 0o600);
    assert_eq!(
        read(r.join("mainctrfs/work/data/x.txt")),
        "v",
        "an input under a volume mount goes to /mainctrfs"
    );
    assert!(
        stderr.contains("Ignoring optional artifact which was not supplied"),
        "{stderr}"
    );
}

#[test]
fn v4_stages_the_script_executable() {
    let root = tempfile::tempdir().unwrap();
    let template = serde_json::json!({"name": "s", "script": {"image": "a", "source": "true"}});
    let out = init(root.path(), &template, &[("ARGO_WORKFLOW_UID", "uid-1")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&root.path().join("argo/staging/script")), 0o755);
}

#[test]
fn resource_manifest_is_staged_and_pns_skips_the_bootstrap() {
    let root = tempfile::tempdir().unwrap();
    let template = serde_json::json!({
        "name": "r",
        "resource": {"action": "create", "manifest": "kind: ConfigMap\n"}
    });
    let out = init(
        root.path(),
        &template,
        &[("ARGO_CONTAINER_RUNTIME_EXECUTOR", "pns")],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        read(root.path().join("tmp/manifest.yaml")),
        "kind: ConfigMap\n"
    );
    assert!(!root.path().join("var/run/argo/argoexec").exists());
}

/// Runs init on a container template with these input artifacts; it must fail with exit 64 and
/// exactly `message` in the termination log.
fn assert_inputs_fail(artifacts: serde_json::Value, message: &str) {
    let root = tempfile::tempdir().unwrap();
    let template = serde_json::json!({
        "name": "t",
        "container": {"image": "a"},
        "inputs": {"artifacts": artifacts}
    });
    let log = init_fails(root.path(), &template);
    assert_eq!(log, message);
}

#[test]
fn required_artifact_not_supplied_fails_with_argos_message() {
    assert_inputs_fail(
        serde_json::json!([{"name": "data", "path": "/data"}]),
        "required artifact 'data' not supplied",
    );
}

#[test]
fn traversal_in_an_artifact_path_is_refused() {
    assert_inputs_fail(
        serde_json::json!([{"name": "evil", "path": "/tmp/safe/../../etc/x", "raw": {"data": "x"}}]),
        "Artifact 'evil' attempted to use a path containing '..'. Directory traversal is not permitted",
    );
}

#[test]
fn key_only_artifact_without_archive_location_names_the_problem() {
    assert_inputs_fail(
        serde_json::json!([{"name": "in", "path": "/in", "s3": {"key": "a/b.tgz"}}]),
        "failed to load artifact 'in': template artifact location not set",
    );
}

use argoexec_testsupport::s3s;

#[test]
fn loads_s3_inputs_a_file_and_a_directory_through_archive_location() {
    let server = s3s::S3Server::start();
    // Objects as an earlier step left them: the server stores a bucket as a folder.
    let bucket = server.data.path().join("artifacts");
    std::fs::create_dir_all(bucket.join("wf/pod-a/outdir/sub")).unwrap();
    std::fs::write(bucket.join("wf/pod-a/report.txt"), "report\n").unwrap();
    std::fs::write(bucket.join("wf/pod-a/outdir/one.txt"), "1").unwrap();
    std::fs::write(bucket.join("wf/pod-a/outdir/sub/two.txt"), "2").unwrap();

    let root = tempfile::tempdir().unwrap();
    server.write_secrets(&root.path().join("argo/secret"), "my-s3");
    let template = serde_json::json!({
        "name": "consume",
        "container": {"image": "alpine"},
        "archiveLocation": {"s3": server.location("artifacts", "my-s3")},
        "inputs": {"artifacts": [
            // Key-only: completed from archiveLocation, as Argo passes artifacts between steps.
            {"name": "report", "path": "/in/report.txt", "s3": {"key": "wf/pod-a/report.txt"}, "archive": {"none": {}}},
            {"name": "dir", "path": "/in/dir", "s3": {"key": "wf/pod-a/outdir"}},
            {"name": "gone", "path": "/in/gone", "optional": true, "s3": {"key": "wf/pod-a/missing"}},
        ]}
    });
    let stderr = init_succeeds(root.path(), &template, &pns_with_attempts("1"));
    let arts = root.path().join("argo/inputs/artifacts");
    assert_eq!(read(arts.join("report")), "report\n");
    assert_eq!(read(arts.join("dir/one.txt")), "1");
    assert_eq!(read(arts.join("dir/sub/two.txt")), "2");
    assert!(!arts.join("gone").exists());
    assert!(
        stderr.contains("Skipping optional input artifact that was not found"),
        "{stderr}"
    );
}

use argoexec_testsupport::faultproxy;

use faultproxy::{Fault, FaultProxy};

/// A bucket with one 3 MiB object, and a template that loads it through `proxy`.
fn faulty_setup(
    server: &s3s::S3Server,
    proxy: &FaultProxy,
    root: &Path,
) -> (serde_json::Value, Vec<u8>) {
    let bucket = server.data.path().join("artifacts");
    std::fs::create_dir_all(&bucket).unwrap();
    let data: Vec<u8> = (0..3u32 << 20).map(|i| (i % 253) as u8).collect();
    std::fs::write(bucket.join("big.bin"), &data).unwrap();
    server.write_secrets(&root.join("argo/secret"), "s3");
    let mut location = server.location("artifacts", "s3");
    location["endpoint"] = format!("127.0.0.1:{}", proxy.port).into();
    location["key"] = "big.bin".into();
    let template = serde_json::json!({
        "name": "t",
        "container": {"image": "a"},
        "inputs": {"artifacts": [{"name": "big", "path": "/big", "s3": location, "archive": {"none": {}}}]}
    });
    (template, data)
}

/// A PNS pod whose transfers are tried `steps` times.
fn pns_with_attempts(steps: &str) -> [(&str, &str); 2] {
    [
        ("ARGO_CONTAINER_RUNTIME_EXECUTOR", "pns"),
        ("EXECUTOR_RETRY_BACKOFF_STEPS", steps),
    ]
}

const FAST_RETRIES: [(&str, &str); 3] = [
    ("ARGO_CONTAINER_RUNTIME_EXECUTOR", "pns"),
    ("EXECUTOR_RETRY_BACKOFF_DURATION", "20ms"),
    ("EXECUTOR_RETRY_BACKOFF_STEPS", "4"),
];

#[test]
fn survives_slowdown_a_closed_connection_and_a_cut_download() {
    let server = s3s::S3Server::start();
    let proxy = FaultProxy::start(
        server.port,
        vec![Fault::SlowDown, Fault::Close, Fault::CutAfter(1 << 20)],
    );
    let root = tempfile::tempdir().unwrap();
    let (template, data) = faulty_setup(&server, &proxy, root.path());
    let stderr = init_succeeds(root.path(), &template, &FAST_RETRIES);
    assert_eq!(proxy.remaining(), 0, "every fault was met");
    let loaded = std::fs::read(root.path().join("argo/inputs/artifacts/big")).unwrap();
    assert!(loaded == data, "the loaded file is whole and exact");
    assert_eq!(
        stderr.matches("transient failure, retrying").count(),
        3,
        "{stderr}"
    );
    assert!(
        stderr.contains("SlowDown"),
        "each retry logs its cause: {stderr}"
    );
}

#[test]
fn gives_up_clearly_when_attempts_run_out() {
    let server = s3s::S3Server::start();
    let proxy = FaultProxy::start(server.port, vec![Fault::SlowDown; 10]);
    let root = tempfile::tempdir().unwrap();
    let (template, _) = faulty_setup(&server, &proxy, root.path());
    let out = init(root.path(), &template, &FAST_RETRIES);
    assert_eq!(out.status.code(), Some(64));
    let log = std::fs::read_to_string(root.path().join("termination-log")).unwrap();
    assert!(log.starts_with("artifact big failed to load: "), "{log}");
    assert!(log.contains("SlowDown"), "{log}");
    assert!(log.contains("gave up after 4 attempts"), "{log}");
    assert!(
        std::fs::read_dir(root.path().join("argo/inputs/artifacts")).map_or(0, |d| d.count()) == 0,
        "nothing half-written is left"
    );
}

/// Builds the archives an earlier step (or a user) left in the bucket, with the system's own
/// `tar` and Python's `zipfile`/`tarfile`, so the unpacker is checked against other writers.
fn archives_in_bucket(bucket: &Path) {
    let work = tempfile::tempdir().unwrap();
    let tree = work.path().join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    std::fs::create_dir_all(tree.join("empty")).unwrap();
    std::fs::write(tree.join("one.txt"), "1").unwrap();
    std::fs::write(tree.join("sub/two.txt"), "2").unwrap();
    std::os::unix::fs::symlink("one.txt", tree.join("link")).unwrap();
    let dir = bucket.join("wf");
    std::fs::create_dir_all(&dir).unwrap();
    let run = |cmd: &mut Command| assert!(cmd.status().unwrap().success(), "{cmd:?}");
    for (flags, name) in [("-czf", "tree.tgz"), ("-cf", "tree.tar")] {
        run(Command::new("tar")
            .arg(flags)
            .arg(dir.join(name))
            .arg("-C")
            .arg(work.path())
            .arg("tree"));
    }
    let python = [
        (
            "import sys, zipfile\n\
             with zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z:\n\
             \x20   z.writestr('a.txt', 'A')\n\
             \x20   z.writestr('d/b.txt', 'B')\n",
            "flat.zip",
        ),
        (
            "import io, sys, tarfile\n\
             with tarfile.open(sys.argv[1], 'w:gz') as t:\n\
             \x20   for name in ('ok.txt', '../escaped.txt'):\n\
             \x20       info = tarfile.TarInfo(name); info.size = 2\n\
             \x20       t.addfile(info, io.BytesIO(b'hi'))\n",
            "evil.tgz",
        ),
    ];
    for (script, name) in python {
        run(Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(dir.join(name)));
    }
}

#[test]
fn unpacks_inputs_by_strategy_and_by_magic_bytes() {
    let server = s3s::S3Server::start();
    let bucket = server.data.path().join("artifacts");
    archives_in_bucket(&bucket);
    let root = tempfile::tempdir().unwrap();
    server.write_secrets(&root.path().join("argo/secret"), "my-s3");
    let key = |k: &str| {
        let mut loc = server.location("artifacts", "my-s3");
        loc["key"] = serde_json::json!(k);
        loc
    };
    let template = serde_json::json!({
        "name": "consume",
        "container": {"image": "alpine"},
        "inputs": {"artifacts": [
            // Nothing declared: gzip+tar is found by its magic bytes and untarred; its one
            // top-level directory becomes the artifact itself.
            {"name": "tgz", "path": "/in/tgz", "s3": key("wf/tree.tgz")},
            {"name": "tar", "path": "/in/tar", "s3": key("wf/tree.tar"), "archive": {"tar": {}}},
            {"name": "zip", "path": "/in/zip", "s3": key("wf/flat.zip"), "archive": {"zip": {}}},
            // Declared none: the bytes stay as they are, gzip or not.
            {"name": "kept", "path": "/in/kept", "s3": key("wf/tree.tgz"), "archive": {"none": {}}},
            // Nothing declared and not gzip: a plain tar is kept as is, as Argo does.
            {"name": "plain", "path": "/in/plain", "s3": key("wf/tree.tar")},
        ]}
    });
    init_succeeds(
        root.path(),
        &template,
        &[("ARGO_CONTAINER_RUNTIME_EXECUTOR", "pns")],
    );
    let arts = root.path().join("argo/inputs/artifacts");
    for name in ["tgz", "tar"] {
        let dir = arts.join(name);
        assert_eq!(std::fs::read_to_string(dir.join("one.txt")).unwrap(), "1");
        assert_eq!(read(dir.join("sub/two.txt")), "2");
        assert!(dir.join("empty").is_dir(), "{name}: empty directory kept");
        assert_eq!(
            std::fs::read_link(dir.join("link")).unwrap(),
            Path::new("one.txt"),
            "{name}: symlink kept as a symlink"
        );
    }
    // Two top-level entries: the zip's contents go under the destination.
    assert_eq!(read(arts.join("zip/a.txt")), "A");
    assert_eq!(read(arts.join("zip/d/b.txt")), "B");
    assert_eq!(
        std::fs::read(arts.join("kept")).unwrap(),
        std::fs::read(bucket.join("wf/tree.tgz")).unwrap()
    );
    assert_eq!(
        std::fs::read(arts.join("plain")).unwrap(),
        std::fs::read(bucket.join("wf/tree.tar")).unwrap()
    );
}

#[test]
fn refuses_an_archive_that_reaches_outside_and_leaves_nothing() {
    let server = s3s::S3Server::start();
    let bucket = server.data.path().join("artifacts");
    archives_in_bucket(&bucket);
    let root = tempfile::tempdir().unwrap();
    server.write_secrets(&root.path().join("argo/secret"), "my-s3");
    let mut loc = server.location("artifacts", "my-s3");
    loc["key"] = serde_json::json!("wf/evil.tgz");
    let template = serde_json::json!({
        "name": "consume",
        "container": {"image": "alpine"},
        "inputs": {"artifacts": [{"name": "evil", "path": "/in/evil", "s3": loc}]}
    });
    let out = init(root.path(), &template, &pns_with_attempts("3"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("../escaped.txt"),
        "names the entry: {stderr}"
    );
    // Refused once: a refusal is not transient, so it is not retried.
    assert_eq!(stderr.matches("retrying").count(), 0, "{stderr}");
    let arts = root.path().join("argo/inputs/artifacts");
    assert!(!arts.join("evil").exists());
    assert!(!arts.join("escaped.txt").exists());
    assert!(!root.path().join("argo/inputs/escaped.txt").exists());
    let left: Vec<_> = std::fs::read_dir(&arts).unwrap().collect();
    assert!(left.is_empty(), "staging left behind: {left:?}");
}

use argoexec_testsupport::gitrepos;

#[test]
fn checks_out_a_git_input_at_a_tag_and_a_branch_with_mode() {
    let Some(fx) = gitrepos::Fixture::new() else {
        return;
    };
    let Some(daemon) = gitrepos::GitDaemon::start(&fx.root) else {
        return;
    };
    let root = tempfile::tempdir().unwrap();
    let template = serde_json::json!({
        "name": "build",
        "container": {"image": "golang", "volumeMounts": [{"name": "work", "mountPath": "/work"}]},
        "inputs": {"artifacts": [
            {"name": "src", "path": "/src", "git": {"repo": daemon.url("repo.git"), "revision": "v1"}},
            {"name": "feature", "path": "/work/feature", "mode": 448,
             "git": {"repo": daemon.url("repo.git"), "revision": "feature", "depth": 1}},
        ]}
    });
    let stderr = init_succeeds(
        root.path(),
        &template,
        &[("ARGO_CONTAINER_RUNTIME_EXECUTOR", "pns")],
    );
    let src = root.path().join("argo/inputs/artifacts/src");
    assert_eq!(read(src.join("README")), "one\n");
    assert!(
        src.join(".git").is_dir(),
        "the destination is a working tree"
    );
    let feature = root.path().join("mainctrfs/work/feature");
    assert_eq!(read(feature.join("feature.txt")), "feature\n");
    // Without recurseMode, as in Argo, the mode is the working tree's own.
    assert_eq!(mode(&feature), 0o700);
    assert_eq!(mode(&feature.join("feature.txt")), 0o644);
    assert!(
        stderr.contains(&fx.one) && stderr.contains(&fx.feature),
        "{stderr}"
    );
}

#[test]
fn an_unknown_git_revision_fails_init_naming_it() {
    let Some(fx) = gitrepos::Fixture::new() else {
        return;
    };
    let url = format!("file://{}", fx.root.join("repo.git").display());
    let root = tempfile::tempdir().unwrap();
    let template = serde_json::json!({
        "name": "t",
        "container": {"image": "a"},
        "inputs": {"artifacts": [
            {"name": "src", "path": "/src", "git": {"repo": url, "revision": "v9"}},
        ]}
    });
    let log = init_fails(root.path(), &template);
    assert!(log.starts_with("artifact src failed to load"), "{log}");
    assert!(log.contains("\"v9\"") && log.contains(&url), "{log}");
    assert!(!root.path().join("argo/inputs/artifacts/src").exists());
}
