//! Differential runs: every Argo v4 (emissary) fixture pod run twice by `argoexec run --api`, once
//! with Argo's own executor (`--executor-binary`, built by `tests/oracle/build`) and once with
//! ours, against the same S3 server (s3s-fs) and the same kind of API server (the run's in-process
//! one), then compared field by field: phase, exit codes, message, outputs (result, parameters,
//! exit code), every artifact's location and stored file tree (archives unpacked), the keys
//! uploaded, and the WorkflowTaskResult minus names, uids and timestamps. Each test prints its
//! table (fixture, field, Argo, ours, verdict) and fails on any difference not listed in
//! `compare::DELIBERATE`. A missing Argo binary fails the test naming its build command.

// A test fails by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "differential/compare.rs"]
mod compare;

use std::path::{Path, PathBuf};
use std::process::Command;

use argoexec_testsupport::oracle::{Oracle, oracle_bin};
use argoexec_testsupport::pods::{fixture, is_root};
use argoexec_testsupport::s3s::{self, S3Server};
use argoexec_testsupport::{gitrepos, nginx};

/// The bucket of the runs' artifact repository.
const BUCKET: &str = "artifacts";
/// The secret holding the bucket's keys.
const SECRET: &str = "s3-credentials";

/// Objects a fixture's inputs read, put into the bucket before each run: `(key, bytes)`.
type Seed = fn() -> Vec<(&'static str, Vec<u8>)>;

fn no_inputs() -> Vec<(&'static str, Vec<u8>)> {
    Vec::new()
}

/// `inputs/s3.txt`, and `inputs/dir.tgz`: a tar.gz of a directory `dir` with two files.
fn s3_inputs() -> Vec<(&'static str, Vec<u8>)> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::default(),
    ));
    for (path, data) in [("dir/a.txt", "a from s3\n"), ("dir/b.txt", "b from s3\n")] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, data.as_bytes()).unwrap();
    }
    let tgz = tar.into_inner().unwrap().finish().unwrap();
    vec![
        ("inputs/s3.txt", b"file from s3\n".to_vec()),
        ("inputs/dir.tgz", tgz),
    ]
}

/// One fixture's two runs share a server and the bucket's starting content.
struct Setup {
    server: S3Server,
    dir: tempfile::TempDir,
    seed: Seed,
    /// A real control plane serving the pod (`run --kubeconfig`) instead of each run's own.
    cluster: Option<&'static Oracle>,
}

impl Setup {
    /// A server, the bucket's inputs, and the secret's files, each followed by `secret_tail`.
    fn new(seed: Seed, secret_tail: &str) -> Self {
        let server = S3Server::start();
        // Not under /tmp: wait has a volume of its own there, which would hide the work directory.
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        // Argo signs with the files' bytes as they are: a trailing newline is part of the key
        // (see secret_with_a_trailing_newline).
        let secret = dir.path().join("secrets").join(SECRET);
        std::fs::create_dir_all(&secret).unwrap();
        let keys = [("accesskey", s3s::ACCESS), ("secretkey", s3s::SECRET)];
        for (file, key) in keys {
            std::fs::write(secret.join(file), format!("{key}{secret_tail}")).unwrap();
        }
        let repo = serde_json::json!({"s3": server.location(BUCKET, SECRET)});
        std::fs::write(dir.path().join("repo.json"), repo.to_string()).unwrap();
        Self {
            server,
            dir,
            seed,
            cluster: None,
        }
    }

    fn bucket(&self) -> PathBuf {
        self.server.data.path().join(BUCKET)
    }

    /// Empties the bucket and puts the inputs back.
    fn reset(&self) {
        let bucket = self.bucket();
        let _ = std::fs::remove_dir_all(&bucket);
        std::fs::create_dir_all(&bucket).unwrap();
        for (key, bytes) in (self.seed)() {
            let path = bucket.join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
    }

    /// Runs the pod with `executor` (Argo's) or this binary's own, and returns its fields.
    fn run(&self, pod: &Path, label: &str, executor: Option<&Path>, extra: &[&str]) -> Ran {
        self.reset();
        let work = self.dir.path().join(label);
        let mut command = Command::new(env!("CARGO_BIN_EXE_argoexec"));
        command
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .current_dir(self.dir.path())
            .args(["run", "--output", "json", "--api", "--workdir"])
            .arg(&work)
            .arg("--api-log")
            .arg(self.dir.path().join(format!("{label}-api.log")))
            .arg("--artifact-repo")
            .arg(self.dir.path().join("repo.json"))
            .arg("--secrets")
            .arg(self.dir.path().join("secrets"))
            .arg("--pod")
            .arg(pod)
            .args(if extra.contains(&"--linger") {
                &[][..]
            } else {
                &["--linger", "1s"][..]
            })
            .args(extra);
        if let Some(executor) = executor {
            command.arg("--executor-binary").arg(executor);
        }
        if let Some(cluster) = self.cluster {
            // The earlier run's pod and task result go first: no kubelet finalizes a pod there.
            let yaml: serde_json::Value =
                serde_yaml_ng::from_str(&std::fs::read_to_string(pod).unwrap()).unwrap();
            let name = yaml["metadata"]["name"].as_str().unwrap();
            let ns = yaml["metadata"]["namespace"].as_str().unwrap_or("default");
            for kind in ["pod", "workflowtaskresult"] {
                let args = ["-n", ns, "delete", kind, name, "--ignore-not-found"];
                let force = ["--grace-period=0", "--force"];
                let out = cluster.kubectl_output(&[&args[..], &force[..]].concat(), None);
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            command
                .arg("--kubeconfig")
                .arg(cluster.admin_kubeconfig())
                .arg("--executor-kubeconfig")
                .arg(cluster.workflow_kubeconfig());
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{label}: no JSON report ({e}): {}\n{stderr}",
                String::from_utf8_lossy(&out.stdout)
            )
        });
        let seeded: Vec<&str> = (self.seed)().into_iter().map(|(k, _)| k).collect();
        let objects = compare::objects(&self.bucket());
        Ran {
            fields: compare::fields(&report, &objects, &seeded),
            stderr,
        }
    }
}

/// A run's fields and its log.
struct Ran {
    fields: compare::Fields,
    stderr: String,
}

/// Runs the fixture `name` with Argo's executor and with ours, prints the table, and fails on a
/// difference that is not deliberate.
fn differential(name: &str, seed: Seed, extra: &[&str]) {
    differential_pod(ARGO_V4, name, &fixture(name), seed, extra, "", false);
}

/// Argo v4's executor, for v4 (emissary) pods.
const ARGO_V4: &str = "argoexec";
/// Argo v3.3's executor, for v3 pods under `run --api` (k8sapi: pod watch, exec, logs).
const ARGO_V3: &str = "argoexec-v3.3.8";

/// [`differential`] for the pod at `pod`, reported as the fixture `name`, with the oracle's
/// executor `binary`.
fn differential_pod(
    binary: &str,
    name: &str,
    pod: &Path,
    seed: Seed,
    extra: &[&str],
    secret_tail: &str,
    cluster: bool,
) {
    // Before anything else: a missing binary fails, naming its build command.
    let Some(argo) = oracle_bin(binary) else {
        return;
    };
    if !is_root() {
        return;
    }
    let mut setup = Setup::new(seed, secret_tail);
    if cluster {
        let Some(oracle) = Oracle::shared() else {
            return;
        };
        setup.cluster = Some(oracle);
        println!("{name}: against a real kube-apiserver (tests/oracle/cluster)");
    }
    let pod = pod.to_owned();
    let theirs = setup.run(&pod, "argo", Some(&argo), extra);
    let ours = setup.run(&pod, "ours", None, extra);
    let rows = compare::compare(name, &theirs.fields, &ours.fields);
    let table = compare::render(name, &rows);
    println!("| fixture | field | Argo | ours | verdict |\n|---|---|---|---|---|\n{table}");
    let failing: Vec<&compare::Row> = rows.iter().filter(|r| r.fails).collect();
    assert!(
        failing.is_empty(),
        "{name}: {} difference(s) not listed as deliberate:\n{}\n--- Argo's run ---\n{}\n--- our run ---\n{}",
        failing.len(),
        failing
            .iter()
            .map(|r| format!("{}: Argo {} / ours {}", r.field, r.argo, r.ours))
            .collect::<Vec<_>>()
            .join("\n"),
        theirs.stderr,
        ours.stderr
    );
}

#[test]
fn script_result_parameter_and_tgz_artifact() {
    differential("v4-outputs.yaml", no_inputs, &[]);
}

#[test]
fn parameters_from_a_file_json_and_a_default() {
    differential("v4-params.yaml", no_inputs, &[]);
}

#[test]
fn artifacts_as_tgz_none_zip_and_tar_with_symlinks_and_modes() {
    differential("v4-archives.yaml", no_inputs, &[]);
}

#[test]
fn optional_artifact_missing() {
    differential("v4-optional-artifact.yaml", no_inputs, &[]);
}

#[test]
fn required_artifact_missing() {
    differential("v4-missing-artifact.yaml", no_inputs, &[]);
}

#[test]
fn failing_main() {
    differential("v4-failing-main.yaml", no_inputs, &[]);
}

#[test]
fn archived_logs() {
    differential("v4-archive-logs.yaml", no_inputs, &[]);
}

#[test]
fn step_deadline_passed() {
    differential("v4-deadline.yaml", no_inputs, &[]);
}

#[test]
fn sidecar_that_ignores_sigterm() {
    differential(
        "v4-sidecar-ignores-sigterm.yaml",
        no_inputs,
        &["--linger", "60s"],
    );
}

#[test]
fn container_set_with_dependencies() {
    differential("v4-container-set.yaml", no_inputs, &[]);
}

#[test]
fn input_artifacts_from_s3_and_raw() {
    differential("v4-input-artifacts.yaml", s3_inputs, &[]);
}

#[test]
fn script_result_over_256_kib() {
    differential("v4-large-result.yaml", no_inputs, &[]);
}

#[test]
fn input_artifacts_over_http_and_from_git() {
    let name = "v4-input-http-git.yaml";
    let dir = tempfile::tempdir().unwrap();
    let site = dir.path().join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("page.txt"), "page over http\n").unwrap();
    let program = nginx::find().expect("nginx is missing: run tests/setup");
    let root = site.display().to_string();
    let (mut child, http_port) = nginx::start(
        &program,
        &dir.path().join("nginx"),
        |_| format!("location / {{ root {root}; }}"),
        |port| nginx::answers(port, "/page.txt", "page over http"),
    );
    let repos = gitrepos::Fixture::new().expect("git is missing: run tests/setup");
    let daemon = gitrepos::GitDaemon::start(&repos.root).expect("git daemon");
    let git_port = daemon
        .url("")
        .rsplit(':')
        .next()
        .unwrap_or_default()
        .trim_end_matches('/')
        .to_owned();
    let text = std::fs::read_to_string(fixture(name))
        .unwrap()
        .replace("HTTP_PORT", &http_port.to_string())
        .replace("GIT_PORT", &git_port);
    let pod = dir.path().join(name);
    std::fs::write(&pod, text).unwrap();
    differential_pod(ARGO_V4, name, &pod, no_inputs, &[], "", false);
    let _ = child.kill();
    let _ = child.wait();
}

/// A v3 pod under `run --api` (k8sapi) with Argo v3.3.8's executor and with ours.
fn differential_v3(name: &str, extra: &[&str]) {
    differential_pod(ARGO_V3, name, &fixture(name), no_inputs, extra, "", false);
}

#[test]
fn v3_k8sapi_outputs_on_a_volume() {
    differential_v3("output-volume.yaml", &[]);
}

#[test]
fn v3_k8sapi_script_result() {
    differential_v3("hello-world-result.yaml", &[]);
}

#[test]
fn v3_k8sapi_failing_main() {
    differential_v3("failing-main.yaml", &[]);
}

#[test]
fn v3_k8sapi_deadline() {
    differential_v3("deadline-exceeded.yaml", &[]);
}

/// The fixture label of [`secret_with_a_trailing_newline`] in the table.
const NEWLINE_SECRET: &str = "v4-outputs.yaml, secret files ending in a newline";

#[test]
fn secret_with_a_trailing_newline() {
    let pod = fixture("v4-outputs.yaml");
    differential_pod(ARGO_V4, NEWLINE_SECRET, &pod, no_inputs, &[], "\n", false);
}

/// The v4 fixtures again, both executors facing a real kube-apiserver (`run --kubeconfig`): the
/// pod created there, its status written by the runner, the task result read back from there.
#[test]
fn v4_fixtures_against_a_real_api_server() {
    let cases: [(&str, Seed, &[&str]); 12] = [
        ("v4-outputs.yaml", no_inputs, &[]),
        ("v4-params.yaml", no_inputs, &[]),
        ("v4-archives.yaml", no_inputs, &[]),
        ("v4-optional-artifact.yaml", no_inputs, &[]),
        ("v4-missing-artifact.yaml", no_inputs, &[]),
        ("v4-failing-main.yaml", no_inputs, &[]),
        ("v4-archive-logs.yaml", no_inputs, &[]),
        ("v4-deadline.yaml", no_inputs, &[]),
        (
            "v4-sidecar-ignores-sigterm.yaml",
            no_inputs,
            &["--linger", "60s"],
        ),
        ("v4-container-set.yaml", no_inputs, &[]),
        ("v4-input-artifacts.yaml", s3_inputs, &[]),
        ("v4-large-result.yaml", no_inputs, &[]),
    ];
    for (name, seed, extra) in cases {
        differential_pod(ARGO_V4, name, &fixture(name), seed, extra, "", true);
    }
}
