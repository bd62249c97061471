//! Black-box tests of `argoexec artifact delete` (the artifact GC pod) against the real
//! kube-apiserver of `tests/oracle/cluster` (Argo's CRDs applied) and an S3 server (s3s-fs): the
//! test creates WorkflowArtifactGCTasks as Argo's controller does, runs the binary as the
//! service account bound by Argo's own `artifactgc` Role (from its quick-start manifests), and
//! checks the objects and the tasks' `status.artifactResultsByNode`. The last test runs the same
//! task with Argo's own `argoexec` v4.0.5 and compares the two statuses artifact by artifact.
//!
//! Without the oracle's programs the tests fail naming the build; `ARGOEXEC_SKIP_ORACLE=1`
//! (never under CI) skips them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use argoexec_testsupport::oracle::{Oracle, oracle_bin};
use argoexec_testsupport::s3s::S3Server;
use serde_json::{Value, json};

const BUCKET: &str = "artifacts";
const SECRET: &str = "s3-credentials";
const LABEL: &str = "workflows.argoproj.io/artifact-gc-pod";

/// Argo's `manifests/quick-start/base/artifactgc-role.yaml` (v4.0.5), bound to `default`.
const ROLE: &str = r#"
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: artifactgc
rules:
  - apiGroups: [argoproj.io]
    resources: [workflowartifactgctasks]
    verbs: [list, watch]
  - apiGroups: [argoproj.io]
    resources: [workflowartifactgctasks/status]
    verbs: [patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: artifactgc
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: artifactgc}
subjects: [{kind: ServiceAccount, name: default}]
"#;

/// A namespace bound by the Role, an S3 server with its secret files under a pod root.
struct Setup {
    oracle: &'static Oracle,
    namespace: String,
    kubeconfig: PathBuf,
    s3: S3Server,
    /// The pod root: `argo/secret/<SECRET>/{accesskey,secretkey}`.
    root: tempfile::TempDir,
}

impl Setup {
    fn new(prefix: &str) -> Option<Self> {
        let oracle = Oracle::shared()?;
        let namespace = oracle.namespace(prefix);
        oracle.kubectl_stdin(&["-n", &namespace, "apply", "-f", "-"], Some(ROLE));
        let root = tempfile::tempdir().unwrap();
        let token = oracle.service_account_token(&namespace, "default");
        let kubeconfig = oracle.kubeconfig_for(root.path(), &token, &namespace);
        let s3 = S3Server::start();
        s3.write_secrets(&root.path().join("argo/secret"), SECRET);
        // Argo signs with the file's bytes as they are: no trailing newline, for its run.
        let secret_key = root
            .path()
            .join("argo/secret")
            .join(SECRET)
            .join("secretkey");
        std::fs::write(secret_key, argoexec_testsupport::s3s::SECRET).unwrap();
        Some(Self {
            oracle,
            namespace,
            kubeconfig,
            s3,
            root,
        })
    }

    /// Puts `keys` (each with some bytes) into the bucket, which is created.
    fn seed(&self, keys: &[&str]) {
        for key in keys {
            let path = self.s3.data.path().join(BUCKET).join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, format!("content of {key}")).unwrap();
        }
    }

    fn exists(&self, key: &str) -> bool {
        self.s3.data.path().join(BUCKET).join(key).is_file()
    }

    /// An S3 location of this server, `bucket` and `key`, as the controller records outputs.
    fn s3(&self, bucket: &str, key: &str) -> Value {
        let mut location = self.s3.location(bucket, SECRET);
        location["key"] = json!(key);
        location
    }

    /// Creates task `name` labelled for the GC pod `label`, with `spec`.
    fn create_task(&self, name: &str, label: &str, spec: &Value) {
        let task = json!({
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "WorkflowArtifactGCTask",
            "metadata": {"name": name, "namespace": self.namespace, "labels": {LABEL: label}},
            "spec": spec,
        });
        self.oracle.apply(&task.to_string());
    }

    fn status(&self, name: &str) -> Value {
        let task = self
            .oracle
            .get_json(&self.namespace, "workflowartifactgctask", name);
        task["status"].clone()
    }

    /// Runs our `argoexec artifact delete` as the GC pod `label`.
    fn run_ours(&self, label: &str, extra_env: &[(&str, &str)]) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_argoexec"));
        command
            .args(["artifact", "delete", "--kubeconfig"])
            .arg(&self.kubeconfig)
            .arg("--pod-root")
            .arg(self.root.path())
            .env("ARGO_POD_NAME", format!("{label}-pod"))
            .env("ARGO_ARTIFACT_POD_NAME", label)
            .env("EXECUTOR_RETRY_BACKOFF_DURATION", "10ms");
        for (k, v) in extra_env {
            command.env(k, v);
        }
        run(&mut command)
    }

    /// Runs Argo's own `argoexec artifact delete` as the GC pod `label`, with the secret files
    /// at `/argo/secret` in a mount namespace of its own (Argo reads that path only).
    fn run_argo(&self, argo: &Path, label: &str) -> Output {
        // An empty mount point; the secrets are bound over it in the child's namespace only.
        std::fs::create_dir_all("/argo").unwrap();
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(r#"mount --bind "$0" /argo && exec "$@""#)
            .arg(self.root.path().join("argo"))
            .arg(argo)
            .args(["artifact", "delete", "--kubeconfig"])
            .arg(&self.kubeconfig)
            .env("ARGO_POD_NAME", format!("{label}-pod"))
            .env("ARGO_ARTIFACT_POD_NAME", label)
            // Argo's namespace lookup reads the kubeconfig from the environment, not the flag.
            .env("KUBECONFIG", &self.kubeconfig)
            .env("ARGO_TEMPLATE", "{}")
            .env("ARGO_DEADLINE", "2099-01-01T00:00:00Z");
        run(&mut command)
    }
}

fn run(command: &mut Command) -> Output {
    let output = command.output().unwrap();
    eprintln!(
        "--- {:?} exited {}\n{}",
        command.get_program(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Node -> artifact -> (success, whether an error is given).
fn outcomes(status: &Value) -> BTreeMap<String, BTreeMap<String, (bool, bool)>> {
    let nodes = status["artifactResultsByNode"].as_object().unwrap();
    nodes
        .iter()
        .map(|(node, results)| {
            let results = results["artifactResults"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            let by_name = results
                .iter()
                .map(|(name, r)| {
                    assert_eq!(r["name"], json!(name), "{r}");
                    let success = r["success"].as_bool().unwrap_or(false);
                    (name.clone(), (success, r["error"].is_string()))
                })
                .collect();
            (node.clone(), by_name)
        })
        .collect()
}

#[test]
fn deletes_s3_artifacts_and_reports_each_in_the_task_status() {
    let Some(setup) = Setup::new("gc-delete") else {
        return;
    };
    setup.seed(&[
        "wf/one.tgz",
        "wf/two.txt",
        "wf/dir/a.txt",
        "wf/dir/sub/b.txt",
        "wf/three.tgz",
        "keep.txt",
    ]);
    // Node 1: a key completed by the archive location, a complete location of its own, and a
    // directory (a key ending in "/"); node 2: an object already gone; a second task.
    let archive = json!({"s3": setup.s3(BUCKET, "")});
    setup.create_task(
        "gc-task-1",
        "gc-pod-1",
        &json!({"artifactsByNode": {
            "wf-111": {"archiveLocation": archive, "artifacts": {
                "one": {"name": "one", "path": "/tmp/one", "s3": {"key": "wf/one.tgz"}},
                "two": {"name": "two", "path": "/tmp/two", "s3": setup.s3(BUCKET, "wf/two.txt")},
                "dir": {"name": "dir", "path": "/tmp/dir", "s3": {"key": "wf/dir/"}},
            }},
            "wf-222": {"archiveLocation": archive, "artifacts": {
                "gone": {"name": "gone", "path": "/tmp/gone", "s3": {"key": "wf/never-saved.tgz"}},
            }},
        }}),
    );
    setup.create_task(
        "gc-task-2",
        "gc-pod-1",
        &json!({"artifactsByNode": {"wf-333": {"archiveLocation": archive, "artifacts": {
            "three": {"name": "three", "path": "/tmp/three", "s3": {"key": "wf/three.tgz"}},
        }}}}),
    );
    // Another pod's task is left alone.
    setup.create_task(
        "gc-task-other",
        "gc-pod-2",
        &json!({"artifactsByNode": {"wf-444": {"archiveLocation": archive, "artifacts": {
            "keep": {"name": "keep", "path": "/tmp/keep", "s3": {"key": "keep.txt"}},
        }}}}),
    );

    let out = setup.run_ours("gc-pod-1", &[("ARGOEXEC_ARTIFACT_GC_PARALLELISM", "2")]);
    assert!(out.status.success());

    for key in [
        "wf/one.tgz",
        "wf/two.txt",
        "wf/dir/a.txt",
        "wf/dir/sub/b.txt",
        "wf/three.tgz",
    ] {
        assert!(!setup.exists(key), "{key} still exists");
    }
    assert!(
        setup.exists("keep.txt"),
        "another pod's artifact was deleted"
    );
    assert_eq!(
        setup.status("gc-task-1"),
        json!({"artifactResultsByNode": {
            "wf-111": {"artifactResults": {
                "dir": {"name": "dir", "success": true},
                "one": {"name": "one", "success": true},
                "two": {"name": "two", "success": true},
            }},
            "wf-222": {"artifactResults": {"gone": {"name": "gone", "success": true}}},
        }})
    );
    assert_eq!(
        setup.status("gc-task-2"),
        json!({"artifactResultsByNode": {"wf-333": {"artifactResults": {
            "three": {"name": "three", "success": true},
        }}}})
    );
    assert_eq!(setup.status("gc-task-other"), Value::Null);
}

#[test]
fn a_missing_bucket_or_a_plugin_fails_that_artifact_only() {
    let Some(setup) = Setup::new("gc-errors") else {
        return;
    };
    setup.seed(&["wf/ok.txt"]);
    setup.create_task(
        "gc-task",
        "gc-pod",
        &json!({"artifactsByNode": {"wf-1": {"artifacts": {
            "ok": {"name": "ok", "s3": setup.s3(BUCKET, "wf/ok.txt")},
            "nobucket": {"name": "nobucket", "s3": setup.s3("no-such-bucket", "wf/x.txt")},
            "plugin": {"name": "plugin", "plugin": {"name": "my-store", "key": "k", "configuration": "{}"}},
            "nokey": {"name": "nokey", "s3": {"key": "wf/y.txt"}},
        }}}}),
    );
    let out = setup.run_ours("gc-pod", &[("ARGO_ARTIFACT_PLUGIN_NAMES", "my-store")]);
    // As Argo's: the failures are the tasks' to report, not the exit code's.
    assert!(out.status.success());
    assert!(!setup.exists("wf/ok.txt"));
    let status = setup.status("gc-task");
    let results = &status["artifactResultsByNode"]["wf-1"]["artifactResults"];
    assert_eq!(results["ok"], json!({"name": "ok", "success": true}));
    let error = |name: &str| {
        assert_eq!(results[name]["success"], Value::Null, "{status:#}");
        results[name]["error"].as_str().unwrap().to_owned()
    };
    let nobucket = error("nobucket");
    assert!(nobucket.contains("NoSuchBucket"), "{nobucket}");
    assert!(nobucket.contains("no-such-bucket"), "{nobucket}");
    let plugin = error("plugin");
    assert!(
        plugin.contains("artifact plugin \"my-store\"")
            && plugin.contains("does not run artifact plugins"),
        "{plugin}"
    );
    assert!(error("nokey").contains("no archiveLocation"));
}

#[test]
fn without_its_label_the_pod_does_nothing_and_a_forbidden_list_fails() {
    let Some(setup) = Setup::new("gc-refused") else {
        return;
    };
    let out = Command::new(env!("CARGO_BIN_EXE_argoexec"))
        .args(["artifact", "delete", "--kubeconfig"])
        .arg(&setup.kubeconfig)
        .env_remove("ARGO_ARTIFACT_POD_NAME")
        .output()
        .unwrap();
    assert!(out.status.success());
    // The namespace's own service account may not list tasks in another namespace.
    let other = setup.oracle.namespace("gc-other");
    let out = setup.run_ours("gc-pod", &[]);
    assert!(out.status.success());
    let out = Command::new(env!("CARGO_BIN_EXE_argoexec"))
        .args(["artifact", "delete", "--kubeconfig"])
        .arg(&setup.kubeconfig)
        .args(["--namespace", &other])
        .env("ARGO_ARTIFACT_POD_NAME", "gc-pod")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("list the WorkflowArtifactGCTasks labelled") && stderr.contains("403"),
        "{stderr}"
    );
}

#[test]
fn argo_and_ours_report_the_same_results() {
    // Before anything else: a missing binary fails, naming its build command.
    let Some(argo) = oracle_bin("argoexec") else {
        return;
    };
    let Some(setup) = Setup::new("gc-diff") else {
        return;
    };
    // A directory key ("wf/dir/") is left out here: Argo v4.0.5 reported it deleted but left its
    // objects in s3s-fs (not investigated yet); ours is checked by the first test.
    let keys = ["wf/one.tgz", "wf/two.txt"];
    let archive = json!({"s3": setup.s3(BUCKET, "")});
    let spec = json!({"artifactsByNode": {
        "wf-111": {"archiveLocation": archive, "artifacts": {
            "one": {"name": "one", "s3": {"key": "wf/one.tgz"}},
            "two": {"name": "two", "s3": setup.s3(BUCKET, "wf/two.txt")},
            "gone": {"name": "gone", "s3": {"key": "wf/never-saved.tgz"}},
        }},
        "wf-222": {"artifacts": {
            "nobucket": {"name": "nobucket", "s3": setup.s3("no-such-bucket", "wf/x.txt")},
        }},
    }});
    let mut statuses = Vec::new();
    for (who, label) in [("argo", "gc-argo"), ("ours", "gc-ours")] {
        setup.seed(&keys);
        let task = format!("task-{who}");
        setup.create_task(&task, label, &spec);
        let out = match who {
            "argo" => setup.run_argo(&argo, label),
            _ => setup.run_ours(label, &[]),
        };
        assert!(out.status.success(), "{who} failed");
        for key in keys {
            assert!(!setup.exists(key), "{who} left {key}");
        }
        statuses.push(setup.status(&task));
    }
    let (theirs, ours) = (&statuses[0], &statuses[1]);
    println!("| node | artifact | Argo | ours |\n|---|---|---|---|");
    let (theirs_by, ours_by) = (outcomes(theirs), outcomes(ours));
    for (node, results) in &theirs_by {
        for (name, outcome) in results {
            let our = ours_by.get(node).and_then(|r| r.get(name));
            println!("| {node} | {name} | {outcome:?} | {our:?} |");
        }
    }
    println!(
        "errors: Argo {:?} / ours {:?}",
        theirs["artifactResultsByNode"]["wf-222"]["artifactResults"]["nobucket"]["error"],
        ours["artifactResultsByNode"]["wf-222"]["artifactResults"]["nobucket"]["error"]
    );
    assert_eq!(theirs_by, ours_by, "Argo {theirs:#}\nours {ours:#}");
}
