//! Black-box tests of `argoexec resource ACTION` against the real kube-apiserver of
//! `tests/oracle/cluster`, as a service account of a namespace of each test's own: ConfigMaps
//! through every action and patch strategy, a Job whose status the test patches (playing the job
//! controller, which does not run) to drive the success and failure conditions through the watch,
//! the polling fallback when the watch is forbidden, output parameters by jsonPath and jqFilter
//! read back from the WorkflowTaskResult, a forbidden action with the server's reason, refused
//! flags, and Argo's own argoexec v4.0.5 run on the same manifests and templates for comparison.
//!
//! Without the oracle's programs the tests fail naming the build; `ARGOEXEC_SKIP_ORACLE=1`
//! (never under CI) skips them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use argoexec_testsupport::oracle::{Oracle, oracle_bin};
use serde_json::{Value, json};

/// The workflow's UID the steps run under (v4: the task result's owner).
const WORKFLOW_UID: &str = "0b7d1d6e-0000-4000-8000-000000000001";

/// A Role for the service account `default`: `rules` (JSON list) plus the task results.
fn role(oracle: &Oracle, ns: &str, rules: Value) {
    let mut rules = rules.as_array().cloned().unwrap_or_default();
    rules.push(json!({"apiGroups": ["argoproj.io"], "resources": ["workflowtaskresults"], "verbs": ["create", "patch", "get"]}));
    let manifest = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "resource", "namespace": ns}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "resource", "namespace": ns},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "resource"},
         "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": ns}]}
    ]});
    oracle.apply(&manifest.to_string());
}

/// Every verb on ConfigMaps and Jobs (and Jobs' status).
fn full_rules() -> Value {
    json!([
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]},
        {"apiGroups": ["batch"], "resources": ["jobs", "jobs/status"], "verbs": ["*"]}
    ])
}

/// One namespace with its service account's kubeconfig.
struct Cluster {
    oracle: &'static Oracle,
    ns: String,
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
}

impl Cluster {
    fn new(prefix: &str, rules: Value) -> Option<Self> {
        let oracle = Oracle::shared()?;
        let ns = oracle.namespace(prefix);
        role(oracle, &ns, rules);
        // Not under /tmp: Argo's executor runs with a private /tmp (see argo_command).
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let token = oracle.service_account_token(&ns, "default");
        let kubeconfig = oracle.kubeconfig_for(dir.path(), &token, &ns);
        Some(Self {
            oracle,
            ns,
            dir,
            kubeconfig,
        })
    }

    /// `argoexec resource ACTION` for `template` as step `node`; returns the command to spawn.
    fn command(&self, binary: &Path, action: &str, node: &str, template: &Value) -> Command {
        let mut command = Command::new(binary);
        command
            .args(["resource", action, "--kubeconfig"])
            .arg(&self.kubeconfig)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("KUBECONFIG", &self.kubeconfig)
            // Argo's embedded kubectl caches discovery under $HOME/.kube.
            .env("HOME", self.dir.path())
            .env("ARGO_POD_NAME", format!("{node}-pod"))
            .env("ARGO_NODE_ID", node)
            .env("ARGO_WORKFLOW_NAME", "wf")
            .env("ARGO_WORKFLOW_UID", WORKFLOW_UID)
            .env("ARGO_DEADLINE", "0001-01-01T00:00:00Z")
            .env("ARGO_TEMPLATE", template.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Ours, run to the end, with its termination log.
    fn ours(&self, action: &str, node: &str, template: &Value) -> (Output, String) {
        let log = self.dir.path().join(format!("{node}.termination-log"));
        let started = Instant::now();
        let out = self
            .command(
                Path::new(env!("CARGO_BIN_EXE_argoexec")),
                action,
                node,
                template,
            )
            .arg("--termination-log")
            .arg(&log)
            .arg("--pod-root")
            .arg(self.dir.path())
            .output()
            .unwrap();
        eprintln!(
            "ours: resource {action} ({node}) exited {:?} in {:.2} s",
            out.status.code(),
            started.elapsed().as_secs_f64()
        );
        (out, std::fs::read_to_string(&log).unwrap_or_default())
    }

    fn get(&self, kind: &str, name: &str) -> Value {
        self.oracle.get_json(&self.ns, kind, name)
    }

    fn exists(&self, kind: &str, name: &str) -> bool {
        let out = self
            .oracle
            .kubectl_output(&["-n", &self.ns, "get", kind, name, "-o", "name"], None);
        out.status.success()
    }

    fn task_result(&self, node: &str) -> Value {
        self.get("workflowtaskresult", node)
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn configmap(name: &str, data: Value) -> String {
    serde_json::to_string(&json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "resource-test"}}, "data": data}))
    .unwrap()
}

fn template(action: &str, manifest: &str, extra: Value) -> Value {
    let mut resource = json!({"action": action, "manifest": manifest});
    if let (Some(r), Some(e)) = (resource.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            r.insert(k.clone(), v.clone());
        }
    }
    json!({"name": "step", "resource": resource})
}

fn with_outputs(mut template: Value, parameters: Value) -> Value {
    template["outputs"] = json!({"parameters": parameters});
    template
}

#[test]
fn configmap_through_every_action_and_patch_strategy() {
    let Some(c) = Cluster::new("res-cm", full_rules()) else {
        return;
    };
    // create, with outputs by jsonPath and jqFilter.
    let manifest = configmap("cm-1", json!({"a": "1"}));
    let params = json!([
        {"name": "name", "valueFrom": {"jsonPath": "{.metadata.name}"}},
        {"name": "labels", "valueFrom": {"jqFilter": ".metadata.labels"}},
        {"name": "a", "valueFrom": {"jqFilter": ".data.a | tonumber + 1"}},
        {"name": "fixed", "value": "kept"}
    ]);
    let t = with_outputs(
        template("create", &manifest, json!({"setOwnerReference": true})),
        params,
    );
    let (out, log) = c.ours("create", "create-1", &t);
    assert!(out.status.success(), "{}{log}", stderr(&out));
    let cm = c.get("configmap", "cm-1");
    assert_eq!(cm["data"], json!({"a": "1"}));
    assert_eq!(cm["metadata"]["ownerReferences"][0]["uid"], WORKFLOW_UID);
    assert_eq!(cm["metadata"]["ownerReferences"][0]["kind"], "Workflow");
    let result = c.task_result("create-1");
    let values: Vec<&Value> = result["outputs"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["value"])
        .collect();
    assert_eq!(
        values,
        [
            &json!("cm-1"),
            &json!(r#"{"app":"resource-test"}"#),
            &json!("2"),
            &json!("kept")
        ],
        "{result:#}"
    );
    assert_eq!(
        result["metadata"]["labels"]["workflows.argoproj.io/report-outputs-completed"],
        "true"
    );

    // create again: AlreadyExists, with the server's words.
    let (out, log) = c.ours(
        "create",
        "create-2",
        &template("create", &manifest, json!({})),
    );
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        log.contains("create configmap") && log.contains("cm-1") && log.contains("AlreadyExists"),
        "{log}"
    );

    // get.
    let t = with_outputs(
        template("get", &manifest, json!({})),
        json!([{"name": "a", "valueFrom": {"jsonPath": "{.data.a}"}}]),
    );
    let (out, log) = c.ours("get", "get-1", &t);
    assert!(out.status.success(), "{}{log}", stderr(&out));
    assert_eq!(
        c.task_result("get-1")["outputs"]["parameters"][0]["value"],
        "1"
    );

    // apply: server-side, adds a key.
    let applied = configmap("cm-1", json!({"a": "1", "b": "2"}));
    let (out, log) = c.ours("apply", "apply-1", &template("apply", &applied, json!({})));
    assert!(out.status.success(), "{}{log}", stderr(&out));
    // kubectl hides managedFields unless asked.
    let text = c.oracle.kubectl(&[
        "-n",
        &c.ns,
        "get",
        "configmap",
        "cm-1",
        "-o",
        "json",
        "--show-managed-fields",
    ]);
    let cm: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(cm["data"], json!({"a": "1", "b": "2"}));
    let managers: Vec<&str> = cm["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(managers.contains(&"argoexec"), "{managers:?}");

    // replace: the whole data.
    let replaced = configmap("cm-1", json!({"c": "3"}));
    let (out, log) = c.ours(
        "replace",
        "replace-1",
        &template("replace", &replaced, json!({})),
    );
    assert!(out.status.success(), "{}{log}", stderr(&out));
    assert_eq!(c.get("configmap", "cm-1")["data"], json!({"c": "3"}));

    // patch, strategic (the default): manifest with kind and name.
    let patch = configmap("cm-1", json!({"d": "4"}));
    let (out, log) = c.ours("patch", "patch-1", &template("patch", &patch, json!({})));
    assert!(out.status.success(), "{}{log}", stderr(&out));
    assert_eq!(
        c.get("configmap", "cm-1")["data"],
        json!({"c": "3", "d": "4"})
    );

    // patch, merge: a kind-less manifest and `KIND NAME` in the flags.
    let t = template(
        "patch",
        "data:\n  c: null\n  e: \"5\"\n",
        json!({"mergeStrategy": "merge", "flags": ["configmap", "cm-1"]}),
    );
    let (out, log) = c.ours("patch", "patch-2", &t);
    assert!(out.status.success(), "{}{log}", stderr(&out));
    assert_eq!(
        c.get("configmap", "cm-1")["data"],
        json!({"d": "4", "e": "5"})
    );

    // patch, json: operations, the object in the flags (Argo's k8s-patch-json examples).
    let t = template(
        "patch",
        "- op: add\n  path: /data/f\n  value: \"6\"\n- op: remove\n  path: /data/d\n",
        json!({"mergeStrategy": "json", "flags": ["cm/cm-1"]}),
    );
    let (out, log) = c.ours("patch", "patch-3", &t);
    assert!(out.status.success(), "{}{log}", stderr(&out));
    assert_eq!(
        c.get("configmap", "cm-1")["data"],
        json!({"e": "5", "f": "6"})
    );

    // delete: waits until it is gone; a second delete finds nothing and succeeds.
    let (out, log) = c.ours(
        "delete",
        "delete-1",
        &template("delete", &manifest, json!({})),
    );
    assert!(out.status.success(), "{}{log}", stderr(&out));
    assert!(!c.exists("configmap", "cm-1"));
    let (out, log) = c.ours(
        "delete",
        "delete-2",
        &template("delete", &manifest, json!({})),
    );
    assert!(out.status.success(), "{}{log}", stderr(&out));

    // delete by selector, from the flags (Argo's resource-delete-with-flags example).
    for name in ["sel-1", "sel-2"] {
        c.oracle.apply(&configmap(name, json!({})).replace(
            "\"name\":",
            &format!("\"namespace\":\"{}\",\"name\":", c.ns),
        ));
    }
    let t = template(
        "delete",
        "",
        json!({"flags": ["configmap", "--selector", "app=resource-test"]}),
    );
    let (out, log) = c.ours("delete", "delete-3", &t);
    assert!(out.status.success(), "{}{log}", stderr(&out));
    assert!(!c.exists("configmap", "sel-1") && !c.exists("configmap", "sel-2"));
}

fn job(name: &str) -> String {
    serde_json::to_string(&json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "main", "image": "busybox", "command": ["true"]}]}}}}))
    .unwrap()
}

/// Plays the job controller: merge-patches the job's status.
fn patch_job_status(c: &Cluster, name: &str, status: Value) {
    let patch = json!({"status": status}).to_string();
    c.oracle.kubectl(&[
        "-n",
        &c.ns,
        "patch",
        "job",
        name,
        "--subresource",
        "status",
        "--type",
        "merge",
        "-p",
        &patch,
    ]);
}

/// Spawns ours on a Job with conditions, checks it is still waiting, patches the status, and
/// returns how it ended.
fn job_step(
    c: &Cluster,
    name: &str,
    status: Value,
    extra_env: &[(&str, &str)],
) -> (Output, String) {
    let t = with_outputs(
        template(
            "create",
            &job(name),
            json!({"successCondition": "status.succeeded > 0",
                   "failureCondition": "status.failed > 2"}),
        ),
        json!([{"name": "succeeded", "valueFrom": {"jsonPath": "{.status.succeeded}"}}]),
    );
    let log = c.dir.path().join(format!("{name}.termination-log"));
    let mut command = c.command(
        Path::new(env!("CARGO_BIN_EXE_argoexec")),
        "create",
        name,
        &t,
    );
    command.arg("--termination-log").arg(&log);
    for (k, v) in extra_env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    // Created, and waiting on its conditions.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !c.exists("job", name) {
        assert!(Instant::now() < deadline, "job {name} never created");
        assert!(
            child.try_wait().unwrap().is_none(),
            "ended before the job existed"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        child.try_wait().unwrap().is_none(),
        "ended before the status changed"
    );
    patch_job_status(c, name, json!({"active": 1}));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().unwrap().is_none(),
        "ended on an unrelated status change"
    );
    let changed = Instant::now();
    patch_job_status(c, name, status);
    let out = child.wait_with_output().unwrap();
    eprintln!(
        "job {name}: ended {:.2} s after its status changed",
        changed.elapsed().as_secs_f64()
    );
    (out, std::fs::read_to_string(&log).unwrap_or_default())
}

#[test]
fn job_conditions_are_met_through_the_watch() {
    let Some(c) = Cluster::new("res-job", full_rules()) else {
        return;
    };
    let (out, log) = job_step(&c, "job-ok", json!({"succeeded": 1, "active": 0}), &[]);
    assert!(out.status.success(), "{}{log}", stderr(&out));
    let err = stderr(&out);
    assert!(!err.contains("forbidden"), "{err}");
    assert_eq!(
        c.task_result("job-ok")["outputs"]["parameters"][0]["value"],
        "1"
    );

    let (out, log) = job_step(&c, "job-bad", json!({"failed": 3, "active": 0}), &[]);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(
        log.contains("failure condition 'status.failed>2' evaluated true"),
        "{log}"
    );
    // The task result is complete, without outputs.
    let result = c.task_result("job-bad");
    assert_eq!(
        result["metadata"]["labels"]["workflows.argoproj.io/report-outputs-completed"],
        "true"
    );
    assert!(result.get("outputs").is_none(), "{result:#}");
}

#[test]
fn job_conditions_are_polled_when_the_watch_is_forbidden() {
    let rules = json!([
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]},
        {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["create", "get"]}
    ]);
    let Some(c) = Cluster::new("res-poll", rules) else {
        return;
    };
    let (out, log) = job_step(
        &c,
        "job-poll",
        json!({"succeeded": 1, "active": 0}),
        &[("RESOURCE_STATE_CHECK_INTERVAL", "1s")],
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}{log}");
    assert!(err.contains("forbidden"), "no fallback logged: {err}");
}

#[test]
fn a_forbidden_action_names_the_object_and_the_servers_reason() {
    let rules = json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]);
    let Some(c) = Cluster::new("res-deny", rules) else {
        return;
    };
    let manifest = configmap("denied", json!({}));
    let (out, log) = c.ours(
        "create",
        "deny-1",
        &template("create", &manifest, json!({})),
    );
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    for word in [
        "create configmap",
        "denied",
        "forbidden",
        "Forbidden",
        "403",
    ] {
        assert!(log.contains(word), "{word:?} missing: {log}");
    }
}

#[test]
fn flags_beyond_the_supported_ones_are_refused_by_name() {
    let Some(c) = Cluster::new("res-flags", full_rules()) else {
        return;
    };
    let manifest = configmap("flagged", json!({}));
    let t = template("create", &manifest, json!({"flags": ["--dry-run=server"]}));
    let (out, log) = c.ours("create", "flags-1", &t);
    assert_eq!(out.status.code(), Some(64), "{}", stderr(&out));
    assert!(log.contains("\"--dry-run=server\""), "{log}");
    assert!(!c.exists("configmap", "flagged"));
    // The ones users pass work.
    let t = template(
        "create",
        &manifest,
        json!({"flags": ["--validate=false", "-o", "name"]}),
    );
    let (out, log) = c.ours("create", "flags-2", &t);
    assert!(out.status.success(), "{}{log}", stderr(&out));
    assert!(c.exists("configmap", "flagged"));
}

/// Argo's argoexec in a mount namespace of its own with a private /tmp: it stages the manifest
/// at /tmp/manifest.yaml, which parallel runs would otherwise share.
fn argo(c: &Cluster, action: &str, node: &str, template: &Value) -> Output {
    let binary = oracle_bin("argoexec").unwrap();
    let inner = c.command(&binary, action, node, template);
    let mut command = Command::new("unshare");
    command
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .arg("mount -t tmpfs tmpfs /tmp && exec \"$@\"")
        .arg("sh")
        .arg(inner.get_program())
        .args(inner.get_args());
    command.env_clear();
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            command.env(k, v);
        }
    }
    let started = Instant::now();
    let out = command.output().unwrap();
    eprintln!(
        "argo: resource {action} ({node}) exited {:?} in {:.2} s",
        out.status.code(),
        started.elapsed().as_secs_f64()
    );
    out
}

/// The task result's body and completion label, names and times left out.
fn comparable(result: &Value) -> Value {
    json!({
        "outputs": result.get("outputs").cloned().unwrap_or(Value::Null),
        "completed": result["metadata"]["labels"]["workflows.argoproj.io/report-outputs-completed"],
    })
}

#[test]
fn compared_with_argos_own_executor() {
    let Some(c) = Cluster::new("res-argo", full_rules()) else {
        return;
    };
    let params = json!([
        {"name": "name", "valueFrom": {"jsonPath": "{.metadata.name}"}},
        {"name": "data", "valueFrom": {"jsonPath": "{.data}"}},
        {"name": "keys", "valueFrom": {"jqFilter": ".data | keys"}},
        {"name": "a", "valueFrom": {"jqFilter": ".data.a"}},
        {"name": "missing", "valueFrom": {"jsonPath": "{.data.nothing}"}}
    ]);
    let mut rows = Vec::new();
    for (who, suffix) in [("argo", "a"), ("ours", "o")] {
        let name = format!("cmp-{suffix}");
        let manifest = configmap(&name, json!({"a": "1", "b": "x y"}));
        let create = with_outputs(template("create", &manifest, json!({})), params.clone());
        let get = with_outputs(template("get", &manifest, json!({})), params.clone());
        let bad = template(
            "create",
            &manifest,
            json!({"successCondition": "status.phase > x"}),
        );
        for (action, node, t) in [
            ("create", format!("{name}-create"), &create),
            ("get", format!("{name}-get"), &get),
            ("create", format!("{name}-again"), &bad),
        ] {
            let code = match who {
                "argo" => argo(&c, action, &node, t).status.code(),
                _ => c.ours(action, &node, t).0.status.code(),
            };
            let result = c.task_result(&node);
            rows.push((who, node.replace(&name, "cmp"), code, comparable(&result)));
        }
    }
    let (argo_rows, our_rows) = rows.split_at(rows.len() / 2);
    let mut differences = Vec::new();
    for (a, o) in argo_rows.iter().zip(our_rows) {
        let outputs = |v: &Value| {
            v.to_string()
                .replace("cmp-a", "cmp")
                .replace("cmp-o", "cmp")
        };
        eprintln!(
            "{:<12} exit argo {:?} ours {:?}\n  argo {}\n  ours {}",
            a.1,
            a.2,
            o.2,
            outputs(&a.3),
            outputs(&o.3)
        );
        if a.2 != o.2 || outputs(&a.3) != outputs(&o.3) {
            differences.push(a.1.clone());
        }
    }
    assert!(differences.is_empty(), "differ from Argo: {differences:?}");
}
