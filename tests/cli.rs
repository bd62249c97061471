//! Black-box tests of the `argoexec` command line: help, version, template sources and the error
//! path (one line, exit code, termination log). Each runs the real binary with a clean environment
//! in a fresh temp dir.

// A test fails by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

fn argoexec(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_argoexec"));
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(dir);
    cmd
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// The lines of stderr that are not log records.
fn error_lines(out: &Output) -> Vec<String> {
    text(&out.stderr)
        .lines()
        .filter(|l| !l.starts_with("time="))
        .map(str::to_owned)
        .collect()
}

#[test]
fn help_lists_every_subcommand_and_global_flag() {
    let dir = tempfile::tempdir().unwrap();
    let out = argoexec(dir.path()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = text(&out.stdout);
    for word in [
        "init",
        "wait",
        "emissary",
        "resource",
        "data",
        "run",
        "version",
        "--loglevel",
        "--log-format",
        "--gloglevel",
        "--kubeconfig",
        "--server",
        "--token",
        "--namespace",
        "--context",
        "--insecure-skip-tls-verify",
        "--certificate-authority",
    ] {
        assert!(help.contains(word), "--help lacks {word}:\n{help}");
    }
    assert!(
        help.contains("ARGO_DEADLINE"),
        "long help lists the environment"
    );
}

#[test]
fn init_help_describes_init() {
    let dir = tempfile::tempdir().unwrap();
    let out = argoexec(dir.path())
        .args(["init", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(text(&out.stdout).contains("Load artifacts"));
}

#[test]
fn version_prints_build_facts() {
    let dir = tempfile::tempdir().unwrap();
    let out = argoexec(dir.path()).arg("version").output().unwrap();
    assert!(out.status.success());
    let v = text(&out.stdout);
    assert!(
        v.starts_with(&format!("argoexec: v{}\n", env!("CARGO_PKG_VERSION"))),
        "{v}"
    );
    for key in [
        "BuildDate: ",
        "GitCommit: ",
        "RustVersion: rustc ",
        "Platform: linux/",
    ] {
        assert!(v.contains(key), "version lacks {key}: {v}");
    }
    let short = argoexec(dir.path())
        .args(["version", "--short"])
        .output()
        .unwrap();
    assert_eq!(text(&short.stdout).lines().count(), 1);
}

#[test]
fn malformed_argo_template_is_one_line_and_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("termination-log");
    let out = argoexec(dir.path())
        .env("ARGO_POD_NAME", "pod-1")
        .env(
            "ARGO_TEMPLATE",
            r#"{"name":"t","inputs":{"parameters":"oops"}}"#,
        )
        .arg("init")
        .arg("--termination-log")
        .arg(&log)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let lines = error_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        lines[0].starts_with(
            "Error: invalid template in environment variable ARGO_TEMPLATE: at inputs.parameters"
        ),
        "{}",
        lines[0]
    );
    let written = std::fs::read_to_string(&log).unwrap();
    assert!(written.starts_with("invalid template in environment variable ARGO_TEMPLATE"));
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn malformed_annotations_file_is_one_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let annotations = dir.path().join("annotations");
    std::fs::write(
        &annotations,
        "kubernetes.io/config.seen=\"x\"\nworkflows.argoproj.io/template=\"{\\q}\"\n",
    )
    .unwrap();
    let out = argoexec(dir.path())
        .env("ARGO_POD_NAME", "pod-1")
        .args(["wait", "--pod-annotations"])
        .arg(&annotations)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "v2 pods exit 1 on error");
    let lines = error_lines(&out);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("parse annotations file"), "{}", lines[0]);
    assert!(
        lines[0].contains("line 2, column 34: value of \"workflows.argoproj.io/template\""),
        "{}",
        lines[0]
    );
}

#[test]
fn missing_template_annotation_names_key_and_file() {
    let dir = tempfile::tempdir().unwrap();
    let annotations = dir.path().join("annotations");
    std::fs::write(&annotations, "a=\"b\"\n").unwrap();
    let out = argoexec(dir.path())
        .env("ARGO_POD_NAME", "pod-1")
        .args(["init", "--pod-annotations"])
        .arg(&annotations)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "annotation workflows.argoproj.io/template not found in {}",
            annotations.display()
        )),
        "{stderr}"
    );
}

#[test]
fn valid_v2_template_loads_and_init_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let annotations = dir.path().join("annotations");
    let template =
        r#"{"name":"whalesay","container":{"image":"docker/whalesay","command":["cowsay"]}}"#;
    std::fs::write(
        &annotations,
        format!(
            "workflows.argoproj.io/template={}\n",
            serde_json_quote(template)
        ),
    )
    .unwrap();
    let out = argoexec(dir.path())
        .env("ARGO_POD_NAME", "pod-1")
        .args(["init", "--pod-root"])
        .arg(dir.path())
        .arg("--pod-annotations")
        .arg(&annotations)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    assert!(stderr.contains("template=whalesay"), "{stderr}");
    assert!(
        stderr.contains("runtime=docker"),
        "v2 defaults to docker: {stderr}"
    );
    assert!(out.status.success(), "{stderr}");
}

/// A Go string literal for a plain-ASCII JSON text: only `"` and `\` need escapes.
fn serde_json_quote(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[test]
fn bad_deadline_names_the_variable() {
    let dir = tempfile::tempdir().unwrap();
    let out = argoexec(dir.path())
        .env("ARGO_POD_NAME", "pod-1")
        .env("ARGO_TEMPLATE", r#"{"name":"t"}"#)
        .env("ARGO_DEADLINE", "next tuesday")
        .arg("wait")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let lines = error_lines(&out);
    assert_eq!(
        lines,
        [
            "Error: invalid ARGO_DEADLINE=\"next tuesday\": expected an RFC 3339 time such as 2026-01-02T15:04:05Z"
        ]
    );
}

#[test]
fn missing_pod_name_is_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let out = argoexec(dir.path())
        .env("ARGO_TEMPLATE", r#"{"name":"t"}"#)
        .arg("init")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        error_lines(&out),
        ["Error: unable to determine pod name from environment variable ARGO_POD_NAME"]
    );
}

#[test]
fn json_log_format_reports_errors_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let out = argoexec(dir.path())
        .env("ARGO_POD_NAME", "pod-1")
        .env("ARGO_TEMPLATE", r#"{"name":"t"}"#)
        // The kubelet runtime without ARGO_KUBELET_HOST, so wait fails at once.
        .env("ARGO_CONTAINER_RUNTIME_EXECUTOR", "kubelet")
        .args(["wait", "--log-format", "json"])
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    let records: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(records.len() >= 2, "{stderr}");
    assert_eq!(records[0]["level"], "info");
    assert_eq!(records[0]["template"], "t");
    let last = records.last().unwrap();
    assert_eq!(last["level"], "fatal");
    assert!(last["msg"].as_str().unwrap().contains("ARGO_KUBELET_HOST"));
}

#[test]
fn unsupported_subcommands_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["artifact-plugin-init", "--plugin-name", "p", "server"][..],
        &["artifact-plugin-sidecar", "server", "--port", "1"],
    ] {
        let out = argoexec(dir.path()).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(
            text(&out.stderr).contains("not implemented yet (artifact plugins)"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn help_lists_every_subcommand_of_argo_4() {
    let dir = tempfile::tempdir().unwrap();
    let out = argoexec(dir.path()).arg("--help").output().unwrap();
    let help = text(&out.stdout);
    for command in [
        "agent",
        "artifact-plugin-init",
        "artifact-plugin-sidecar",
        "emissary",
        "init",
        "kill",
        "resource",
        "wait",
        "data",
        "version",
        "artifact",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "{command} missing from --help:\n{help}"
        );
    }
}

#[test]
fn emissary_without_a_container_name_exits_64_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = argoexec(dir.path())
        .args(["emissary", "--pod-root"])
        .arg(dir.path())
        .args(["--", "true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(
        text(&out.stderr).contains("ARGO_CONTAINER_NAME is not set"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("var").exists());
}

fn example_pod() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests/examples/hello-world.yaml")
}

#[test]
fn run_dry_run_describes_the_example_pod() {
    let dir = tempfile::tempdir().unwrap();
    let out = argoexec(dir.path())
        .args(["run", "--dry-run", "--pod"])
        .arg(example_pod())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("template  hello (script)"), "{stdout}");
    let json = argoexec(dir.path())
        .args(["run", "--dry-run", "--output", "json", "--pod"])
        .arg(example_pod())
        .output()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(doc["protocol"], "v3");
    assert_eq!(doc["template"]["script"]["image"], "alpine:3.16");
}

#[test]
fn run_runs_the_example_pod() {
    // The pod is made of namespaces: root only (tests/localpod.rs covers the runner).
    if !std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = argoexec(dir.path())
        .args(["run", "--linger", "1s", "--pod"])
        .arg(example_pod())
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).contains("[main] hello from hello-world-8ztl2"),
        "{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).contains("main       main     exit code 0"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn run_with_a_missing_pod_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = argoexec(dir.path())
        .args(["run", "--dry-run", "--pod", "nope.yaml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        error_lines(&out),
        ["Error: read pod manifest nope.yaml: No such file or directory (os error 2)"]
    );
}
