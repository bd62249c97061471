//! Black-box tests of `argoexec data`: a data template's `artifactPaths` listed from a real S3
//! server (s3s-fs), its expr-lang transformations, its errors, the result reported as the step's
//! `result` output (the local report file here); and the same template run by Argo's own
//! `argoexec` v4.0.5 and by ours against the oracle's real kube-apiserver, the WorkflowTaskResults
//! they write compared.
//!
//! The comparison needs the oracle; without it the test fails naming the build, and
//! `ARGOEXEC_SKIP_ORACLE=1` (never under CI) skips it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use argoexec_testsupport::oracle::{Oracle, oracle_bin};
use argoexec_testsupport::s3s::{self, S3Server};
use serde_json::{Value, json};

const ARGOEXEC: &str = env!("CARGO_BIN_EXE_argoexec");
const BUCKET: &str = "data";
const SECRET: &str = "s3-creds";

/// A server with a bucket of objects, and a pod root whose secrets reach it.
struct Setup {
    server: S3Server,
    root: tempfile::TempDir,
}

impl Setup {
    fn new(keys: &[&str]) -> Self {
        let server = S3Server::start();
        let bucket = server.data.path().join(BUCKET);
        std::fs::create_dir_all(&bucket).unwrap();
        for key in keys {
            let path = bucket.join(key);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, key.as_bytes()).unwrap();
        }
        let root = tempfile::tempdir().unwrap();
        server.write_secrets(&root.path().join("argo/secret"), SECRET);
        Self { server, root }
    }

    /// A data template listing `key` with `expressions` as its transformation.
    fn template(&self, key: &str, expressions: &[&str]) -> Value {
        let mut s3 = self.server.location(BUCKET, SECRET);
        s3["key"] = json!(key);
        data_template(s3, expressions)
    }

    /// Runs our `argoexec data` with the template in ARGO_TEMPLATE, reporting to a local file.
    fn run(&self, template: &Value) -> (Output, Option<Value>) {
        let report = self.root.path().join("report.json");
        let _ = std::fs::remove_file(&report);
        let _ = std::fs::remove_file(self.root.path().join("termination-log"));
        let out = Command::new(ARGOEXEC)
            .args(["data", "--pod-root"])
            .arg(self.root.path())
            .arg("--termination-log")
            .arg(self.root.path().join("termination-log"))
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("ARGO_POD_NAME", "pod-1")
            .env("ARGO_TEMPLATE", template.to_string())
            .env("ARGOEXEC_REPORT_FILE", &report)
            .output()
            .unwrap();
        let report = std::fs::read(&report)
            .ok()
            .map(|bytes| serde_json::from_slice(&bytes).unwrap());
        (out, report)
    }

    /// The `result` our `argoexec data` reports for `key` and `expressions`; panics on failure.
    fn result(&self, key: &str, expressions: &[&str]) -> String {
        let (out, report) = self.run(&self.template(key, expressions));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{key} {expressions:?}: {stderr}");
        let report = report.expect("a report");
        report["outputs"]["result"]
            .as_str()
            .unwrap_or_else(|| panic!("no result: {report:#}"))
            .to_owned()
    }

    /// Runs a template that must fail: exit 64, no report, the message in the termination log.
    fn failure(&self, template: &Value) -> String {
        let (out, report) = self.run(template);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{stderr}");
        assert!(
            report.is_none(),
            "a failed data step reports nothing: {report:?}"
        );
        std::fs::read_to_string(self.root.path().join("termination-log")).unwrap()
    }
}

fn data_template(s3: Value, expressions: &[&str]) -> Value {
    let transformation: Vec<Value> = expressions
        .iter()
        .map(|e| json!({ "expression": e }))
        .collect();
    json!({
        "name": "list",
        "data": {
            "source": {"artifactPaths": {"s3": s3}},
            "transformation": if expressions.is_empty() { Value::Null } else { json!(transformation) },
        },
        "outputs": {},
    })
}

const KEYS: &[&str] = &[
    "in/a.csv",
    "in/b.txt",
    "in/sub/c.csv",
    "in-other/d.csv",
    "top.csv",
];

#[test]
fn artifact_paths_lists_the_keys_under_a_prefix_as_argos_s3_driver_does() {
    let setup = Setup::new(KEYS);
    // The key is a directory: everything under `in/`, recursively, and nothing of `in-other/`.
    assert_eq!(
        setup.result("in", &[]),
        r#"["in/a.csv","in/b.txt","in/sub/c.csv"]"#
    );
    // A trailing slash and dots are cleaned away (Go's filepath.Clean).
    assert_eq!(setup.result("./in/sub/", &[]), r#"["in/sub/c.csv"]"#);
    // The key is an object: nothing under it, so Go's nil slice.
    assert_eq!(setup.result("top.csv", &[]), "null");
}

#[test]
fn transformations_are_expr_lang_expressions_over_the_previous_value() {
    let setup = Setup::new(KEYS);
    // Argo's example: a filter, then a map.
    assert_eq!(
        setup.result(
            "in",
            &[
                r#"filter(data, {# endsWith ".csv"})"#,
                r#"map(data, {"s3://data/" + #})"#
            ]
        ),
        r#"["s3://data/in/a.csv","s3://data/in/sub/c.csv"]"#
    );
    // Any value: a number, a map (keys sorted, as Go writes maps), HTML-escaped strings.
    assert_eq!(setup.result("in", &["len(data)"]), "3");
    assert_eq!(
        setup.result("in", &[r#"{"z": 3, "a": "<&>"}"#]),
        r#"{"a":"\u003c\u0026\u003e","z":3}"#
    );
    // The listing of an object is nil to Argo: an empty list to expressions.
    assert_eq!(setup.result("top.csv", &["len(data)"]), "0");
    // Outputs the template declares are reported beside the result.
    let mut template = setup.template("in", &["len(data)"]);
    template["outputs"] = json!({"parameters": [{"name": "p", "valueFrom": {"default": "x"}}]});
    let (out, report) = setup.run(&template);
    assert!(out.status.success());
    assert_eq!(
        report.unwrap()["outputs"],
        json!({"parameters": [{"name": "p", "valueFrom": {"default": "x"}}], "result": "3"})
    );
}

#[test]
fn failures_exit_64_with_argos_message_and_report_nothing() {
    let setup = Setup::new(KEYS);
    let message = setup.failure(&setup.template("missing", &[]));
    assert_eq!(
        message,
        "unable to process data template: unable to process data source: unable to source \
         artifact paths: no key found of name missing"
    );
    let message = setup.failure(&setup.template("in", &["len(data)", "filter(data,"]));
    assert!(
        message.starts_with(
            "unable to process data template: unable to process data transformation: error \
             processing data step 1: "
        ),
        "{message}"
    );
    // No key and no archive location: no location at all (Argo's S3 location needs a key).
    let message = setup.failure(&setup.template("", &[]));
    assert_eq!(
        message,
        "unable to process data template: unable to process data source: unable to source \
         artifact paths: template artifact location not set"
    );
    // An expression expr-lang 2.1 panics on: the step's error, not a crash.
    let message = setup.failure(&setup.template("in", &[r#"{"n": len(data)}"#]));
    assert!(
        message.contains("error processing data step 0: the expr-lang crate cannot evaluate"),
        "{message}"
    );
    // No source.
    let message =
        setup.failure(&json!({"name": "t", "data": {"source": {}, "transformation": []}}));
    assert_eq!(
        message,
        "unable to process data template: unable to process data source: no valid source is used \
         for data template"
    );
    // Not a data template.
    let message = setup.failure(&json!({"name": "t", "container": {"image": "x"}}));
    assert_eq!(message, "no data template found");
    // A location that cannot list.
    let message = setup.failure(&data_template_http());
    assert!(
        message.contains("http artifacts do not support listing"),
        "{message}"
    );
}

fn data_template_http() -> Value {
    json!({"name": "t", "data": {"source": {"artifactPaths": {"http": {"url": "http://127.0.0.1:1/x"}}}, "transformation": null}})
}

/// Argo's `argoexec data` (v4.0.5) and ours, each as a v4 pod's main container against the real
/// API server, listing the same bucket through the same transformations: the WorkflowTaskResults
/// they write must have the same outputs and the same labels.
#[test]
fn the_task_result_is_argos() {
    let Some(oracle) = Oracle::shared() else {
        return;
    };
    let Some(argo) = oracle_bin("argoexec") else {
        return;
    };
    // Names of one character under the prefix: Argo's S3 client (minio-go) against s3s-fs
    // returned every key cut to the prefix's length plus one (`in/a.csv` as `in/a`) with longer
    // names; the comparison keeps to names that cut leaves whole.
    let setup = Setup::new(&["in/a", "in/&", "in/<", "in/c", "other/x"]);
    let ns = oracle.namespace("data");
    oracle.apply_rbac_file(&ns, "emissary.yaml");
    let token = oracle.service_account_token(&ns, "default");
    let kubeconfig = oracle.kubeconfig_for(setup.root.path(), &token, &ns);
    // Credentials from the environment (useSDKCreds): Argo's reads secrets from /argo/secret
    // only, which a test on the host cannot give it.
    let mut s3 = setup.server.location(BUCKET, SECRET);
    s3["key"] = json!("in");
    s3["useSDKCreds"] = json!(true);
    s3["region"] = json!("us-east-1");
    for field in ["accessKeySecret", "secretKeySecret"] {
        s3.as_object_mut().unwrap().remove(field);
    }
    let cases: &[(&str, &[&str])] = &[
        ("plain", &[]),
        (
            "filter-map",
            &[
                r#"filter(data, {# != "in/c"})"#,
                r#"map(data, {upper(#) + ">"})"#,
            ],
        ),
        ("count", &["len(data)"]),
        ("map", &[r#"{"n": 4, "s": "a<b"}"#]),
    ];
    for (case, expressions) in cases {
        let template = data_template(s3.clone(), expressions);
        let mut results = Vec::new();
        for (who, binary) in [("argo", argo.as_path()), ("ours", Path::new(ARGOEXEC))] {
            let node = format!("wf-{case}-{who}");
            let out = Command::new(binary)
                .arg("data")
                .arg(template["data"].to_string())
                .arg("--kubeconfig")
                .arg(&kubeconfig)
                .env_clear()
                .env("PATH", std::env::var_os("PATH").unwrap_or_default())
                .env("HOME", setup.root.path())
                .env("AWS_ACCESS_KEY_ID", s3s::ACCESS)
                .env("AWS_SECRET_ACCESS_KEY", s3s::SECRET)
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env("ARGO_POD_NAME", format!("{node}-pod"))
                .env("ARGO_POD_UID", "00000000-0000-0000-0000-000000000001")
                .env("ARGO_NODE_ID", &node)
                .env("ARGO_WORKFLOW_NAME", "wf")
                .env("ARGO_WORKFLOW_UID", "00000000-0000-0000-0000-000000000002")
                .env("ARGO_CONTAINER_NAME", "main")
                // As the controller sets it when the step has no deadline; Argo's panics without.
                .env("ARGO_DEADLINE", "0001-01-01T00:00:00Z")
                .env("ARGO_TEMPLATE", template.to_string())
                .current_dir(setup.root.path())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{who} {case}: {stderr}");
            let result = oracle.get_json(&ns, "workflowtaskresult", &node);
            results.push((
                result["outputs"].clone(),
                result["metadata"]["labels"].clone(),
                result["metadata"]["ownerReferences"].clone(),
            ));
        }
        eprintln!("{case}: Argo's {}", results[0].0);
        assert_eq!(
            results[0].0, results[1].0,
            "{case}: outputs, Argo's then ours"
        );
        assert_eq!(
            results[0].1, results[1].1,
            "{case}: labels, Argo's then ours"
        );
        assert_eq!(
            results[0].2, results[1].2,
            "{case}: owners, Argo's then ours"
        );
    }
}

/// GCS through fake-gcs-server (installed by `tests/setup`): the key is a raw prefix (`in`
/// matches `in-other/` too, as Google's listing does), and an object named exactly the key is
/// the whole result, as Argo's `listByPrefix` has it.
#[test]
fn gcs_lists_a_raw_prefix_and_an_exact_name_is_the_whole_result() {
    let preload = tempfile::tempdir().unwrap();
    for key in ["in/a.csv", "in/sub/b.csv", "in-other/c.csv", "top.csv"] {
        let path = preload.path().join("bucket").join(key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, key).unwrap();
    }
    let preload_dir = preload.path().display().to_string();
    let server = argoexec_testsupport::process::Process::spawn("fake-gcs-server", |port, _| {
        let port = port.to_string();
        ["-scheme", "http", "-host", "127.0.0.1", "-port", &port]
            .into_iter()
            .chain(["-backend", "memory", "-data", &preload_dir])
            .chain(["-public-host", &format!("127.0.0.1:{port}")])
            .chain(["-log-level", "error"])
            .map(String::from)
            .collect()
    });
    let root = tempfile::tempdir().unwrap();
    let report = root.path().join("report.json");
    let run = |key: &str| {
        let template = json!({"name": "t", "data": {
            "source": {"artifactPaths": {"gcs": {"bucket": "bucket", "key": key}}},
            "transformation": null}});
        let out = Command::new(ARGOEXEC)
            .args(["data", "--pod-root"])
            .arg(root.path())
            .env_clear()
            .env("ARGO_POD_NAME", "pod-1")
            .env("ARGO_TEMPLATE", template.to_string())
            .env("ARGOEXEC_REPORT_FILE", &report)
            .env(
                "STORAGE_EMULATOR_HOST",
                format!("127.0.0.1:{}", server.port),
            )
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{key}: {stderr}");
        let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        report["outputs"]["result"].as_str().unwrap().to_owned()
    };
    assert_eq!(run("in"), r#"["in-other/c.csv","in/a.csv","in/sub/b.csv"]"#);
    assert_eq!(run("top.csv"), r#"["top.csv"]"#);
    assert_eq!(run("none"), "[]");
}
