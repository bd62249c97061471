//! Black-box tests of `argoexec run --pod`, the local pod runner. Each runs the real binary (as
//! root: the pod is made of Linux namespaces) on a fixture pod from `tests/fixtures/pods/` or on a
//! small pod written here, with its work directory in a fresh temp dir, and checks what the pod
//! machinery promises: shared PID namespace, PID 1 reaping, volumes, environment, the pod state
//! files, exit codes and phases. Tests that need `argoexec wait` to save outputs are ignored until
//! it lands.

// A test fails by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use argoexec_testsupport::pods::{fixture, is_root};

/// A finished run: its output and its work directory (`work/` in a temp dir).
struct Run {
    out: Output,
    tmp: tempfile::TempDir,
}

impl Run {
    fn dir(&self) -> PathBuf {
        self.tmp.path().join("work")
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    fn state(&self, container: &str, file: &str) -> String {
        let path = self.dir().join("state").join(container).join(file);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e}\n{}", path.display(), self.stderr()))
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\n{}", self.stdout(), self.stderr()))
    }

    fn exit_code_of(&self, container: &str) -> Option<i64> {
        let json = self.json();
        let containers = json["containers"].as_array().unwrap();
        let found = containers.iter().find(|c| c["name"] == container);
        found.unwrap_or_else(|| panic!("no container {container}: {}", self.stdout()))["exitCode"]
            .as_i64()
    }
}

/// Runs a pod with `--output json --linger 1s` and a work directory of its own.
fn run(pod: &Path, extra: &[&str]) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_argoexec"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .current_dir(tmp.path())
        .args(["run", "--output", "json", "--workdir", "work"])
        // Sidecars are killed by the runner soon, unless the test says otherwise.
        .args(if extra.contains(&"--linger") {
            &[][..]
        } else {
            &["--linger", "1s"][..]
        })
        .arg("--pod")
        .arg(pod)
        .args(extra)
        .output()
        .unwrap();
    Run { out, tmp }
}

/// Writes a pod manifest into a temp dir and returns its path.
fn write_pod(dir: &Path, yaml: &str) -> PathBuf {
    let path = dir.join("pod.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// A pod with no executor: every container is a shell command, so the machinery is tested on its
/// own. `{main}` and `{side}` are replaced by the scripts.
fn probe_pod(main: &str, side: &str, extra_main: &str) -> String {
    let template = r#"{"name":"probe","container":{"image":"alpine","command":["sh"]}}"#;
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: probe-pod-abc12
  namespace: testing
  uid: 11111111-2222-3333-4444-555555555555
  labels: {{app: probe, workflows.argoproj.io/workflow: probe-wf}}
  annotations: {{note: "say \"hi\"\nsecond line", a.example/first: "1"}}
spec:
  shareProcessNamespace: true
  serviceAccountName: runner-sa
  volumes:
    - {{name: shared, emptyDir: {{}}}}
    - name: podinfo
      downwardAPI:
        items:
          - {{path: annotations, fieldRef: {{fieldPath: metadata.annotations}}}}
          - {{path: labels, fieldRef: {{fieldPath: metadata.labels}}}}
  containers:
    - name: main
      image: alpine
      command: [sh, -c]
      args: [{main:?}, "$(GREETING)-arg"]
      workingDir: /shared/wd
      env:
        - {{name: ARGO_CONTAINER_NAME, value: main}}
        - {{name: ARGO_TEMPLATE, value: '{template}'}}
{extra_main}
      volumeMounts:
        - {{name: shared, mountPath: /shared}}
        - {{name: podinfo, mountPath: /etc/podinfo}}
    - name: side
      image: alpine
      command: [sh, -c, {side:?}]
      env: [{{name: ARGO_CONTAINER_NAME, value: side}}]
      volumeMounts:
        - {{name: shared, mountPath: /shared}}
"#
    )
}

#[test]
fn containers_share_a_pid_namespace_whose_pid_1_reaps_orphans() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // main: waits for the sidecar, lists the pod's processes, shows its own parent (0: outside
    // the namespace), then makes an orphan and checks that PID 1 reaped it.
    let main = "until [ -e /shared/side-up ]; do sleep 0.05; done; \
                for p in /proc/[0-9]*; do echo \"proc $(basename $p) $(tr '\\000' ' ' < $p/cmdline)\"; done; \
                grep PPid /proc/$$$$/status; \
                ( sh -c 'exit 0' & ); sleep 0.5; \
                echo zombies=$(cat /proc/[0-9]*/stat | awk '{print $3}' | grep -c Z)";
    let side = "touch /shared/side-up; exec sleep 30";
    let pod = write_pod(dir.path(), &probe_pod(main, side, ""));
    let r = run(&pod, &[]);
    let out = r.state("main", "stdout");
    assert!(
        out.contains("proc 1 ") && out.contains("__pause"),
        "PID 1 is pause:\n{out}"
    );
    assert!(
        out.contains("sleep 30"),
        "main sees the sidecar's process:\n{out}"
    );
    assert!(
        out.contains("PPid:\t0"),
        "a container's first process has its parent outside:\n{out}"
    );
    assert!(out.contains("zombies=0"), "PID 1 reaps orphans:\n{out}");
    assert_eq!(r.exit_code_of("main"), Some(0), "{}", r.stderr());
    // The sidecar outlived main and there is no wait: killed after --linger, and said so.
    assert_eq!(r.exit_code_of("side"), Some(137));
    assert!(
        r.json()["notes"][0]
            .as_str()
            .unwrap()
            .contains("sidecar side"),
        "{}",
        r.stdout()
    );
}

#[test]
fn volumes_are_shared_and_state_files_follow_the_protocol() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let main = "until [ -s /shared/from-side ]; do sleep 0.05; done; cat /shared/from-side; \
                echo err-line >&2; echo out-line; hostname; exit 3";
    let side = "echo written by side > /shared/from-side";
    let pod = write_pod(dir.path(), &probe_pod(main, side, ""));
    let r = run(&pod, &[]);
    assert_eq!(
        r.state("main", "stdout"),
        "written by side\nout-line\nprobe-pod-abc12\n"
    );
    let combined = r.state("main", "combined");
    assert!(
        combined.contains("err-line\n") && combined.contains("out-line\n"),
        "{combined}"
    );
    assert_eq!(r.state("main", "exitcode"), "3");
    assert_eq!(r.state("side", "exitcode"), "0");
    assert!(!r.out.status.success());
    let json = r.json();
    assert_eq!(json["phase"], "Failed");
    assert_eq!(json["message"], "Error (exit code 3)");
    // Echoed for people, prefixed with the container's name.
    assert!(r.stderr().contains("[main] err-line"), "{}", r.stderr());
    // The volume is a directory of the run.
    let shared = r.dir().join("volumes/shared/from-side");
    assert_eq!(
        std::fs::read_to_string(shared).unwrap(),
        "written by side\n"
    );
}

#[test]
fn env_field_refs_secrets_configmaps_and_downward_api_resolve() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets/creds");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("token"), "s3cr3t").unwrap();
    let configmaps = dir.path().join("configmaps/settings");
    std::fs::create_dir_all(&configmaps).unwrap();
    std::fs::write(configmaps.join("color"), "blue").unwrap();
    let env = r#"        - {name: GREETING, value: hello}
        - {name: COMBINED, value: "$(GREETING) world $(MISSING) $$(GREETING)"}
        - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
        - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
        - {name: UID, valueFrom: {fieldRef: {fieldPath: metadata.uid}}}
        - {name: APP, valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}}
        - {name: SA, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}
        - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
        - {name: TOKEN, valueFrom: {secretKeyRef: {name: creds, key: token}}}
        - {name: COLOR, valueFrom: {configMapKeyRef: {name: settings, key: color}}}
        - {name: NOPE, valueFrom: {secretKeyRef: {name: absent, key: k, optional: true}}}"#;
    // $(VAR) in args is expanded by Kubernetes, not by the shell ($0 is "$(GREETING)-arg").
    let main = "echo \"$COMBINED|$POD|$NS|$UID|$APP|$SA|$IP|$TOKEN|$COLOR|${NOPE-unset}|$(pwd)\"; \
                echo \"arg=$0\"; cat /etc/podinfo/annotations; cat /etc/podinfo/labels";
    let yaml = probe_pod(main, "true", "").replace(
        "        - {name: ARGO_CONTAINER_NAME, value: main}\n",
        &format!("        - {{name: ARGO_CONTAINER_NAME, value: main}}\n{env}\n"),
    );
    let pod = write_pod(dir.path(), &yaml);
    let secrets_dir = dir.path().join("secrets");
    let configmaps_dir = dir.path().join("configmaps");
    let r = run(
        &pod,
        &[
            "--secrets",
            secrets_dir.to_str().unwrap(),
            "--configmaps",
            configmaps_dir.to_str().unwrap(),
        ],
    );
    let out = r.state("main", "stdout");
    let mut lines = out.lines();
    assert_eq!(
        lines.next().unwrap(),
        "hello world $(MISSING) $(GREETING)|probe-pod-abc12|testing|11111111-2222-3333-4444-555555555555\
         |probe|runner-sa|127.0.0.1|s3cr3t|blue|unset|/shared/wd",
        "{}",
        r.stderr()
    );
    assert_eq!(lines.next().unwrap(), "arg=hello-arg");
    let rest: Vec<&str> = lines.collect();
    assert_eq!(
        rest,
        [
            "a.example/first=\"1\"",
            "note=\"say \\\"hi\\\"\\nsecond line\"",
            "app=\"probe\"",
            "workflows.argoproj.io/workflow=\"probe-wf\"",
        ]
    );
}

#[test]
fn a_failing_init_container_stops_the_pod_and_is_named() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let yaml = probe_pod("echo main ran", "true", "").replace(
        "  containers:\n",
        "  initContainers:\n    - {name: setup, image: alpine, command: [sh, -c, 'echo setup failing; exit 2']}\n  containers:\n",
    );
    let r = run(&write_pod(dir.path(), &yaml), &[]);
    let json = r.json();
    assert_eq!(json["phase"], "Failed");
    assert_eq!(json["message"], "init container setup failed (exit code 2)");
    assert_eq!(r.exit_code_of("setup"), Some(2));
    assert_eq!(r.exit_code_of("main"), None, "main never ran");
    assert_eq!(r.out.status.code(), Some(1));
}

#[test]
fn fixture_script_step_runs_init_and_main_as_argo_would() {
    if !is_root() {
        return;
    }
    let r = run(&fixture("hello-world-result.yaml"), &[]);
    assert_eq!(r.exit_code_of("init"), Some(0), "{}", r.stderr());
    assert_eq!(r.exit_code_of("main"), Some(0), "{}", r.stderr());
    // init staged the script into the argo-staging volume; main ran it with the pod's host name.
    assert_eq!(
        r.state("main", "stdout"),
        "hello from hello-world-result-x7k2p\n"
    );
    let staged = r.dir().join("volumes/argo-staging/script");
    assert!(
        std::fs::read_to_string(staged)
            .unwrap()
            .contains("hello from")
    );
}

#[test]
fn fixture_raw_input_artifact_reaches_main_through_a_sub_path() {
    if !is_root() {
        return;
    }
    let r = run(&fixture("input-artifact-raw.yaml"), &[]);
    assert_eq!(r.exit_code_of("init"), Some(0), "{}", r.stderr());
    assert_eq!(
        r.state("main", "stdout"),
        "this is\nthe raw file\ncontents\n"
    );
}

#[test]
fn fixture_v2_pod_reads_its_template_from_the_downward_api_file() {
    if !is_root() {
        return;
    }
    let r = run(&fixture("v2-annotations.yaml"), &[]);
    // init found and parsed the template in /argo/podmetadata/annotations (kubelet's format).
    assert_eq!(r.exit_code_of("init"), Some(0), "{}", r.stderr());
    assert!(
        r.state("init", "combined")
            .contains("source=\"annotations file /argo/podmetadata/annotations\"")
            || r.state("init", "combined").contains("protocol=v2"),
        "{}",
        r.state("init", "combined")
    );
    assert_eq!(r.state("main", "stdout"), "hello v2\n");
    let file = std::fs::read_to_string(r.dir().join("volumes/podmetadata/annotations")).unwrap();
    assert!(
        file.starts_with("workflows.argoproj.io/node-name=\"arguments-parameters-2tkmb\"\n"),
        "{file}"
    );
    assert!(
        file.contains("workflows.argoproj.io/template=\"{\\\"name\\\":\\\"print-message\\\""),
        "{file}"
    );
}

#[test]
fn fixture_failing_main_fails_the_step_with_its_exit_code() {
    if !is_root() {
        return;
    }
    let r = run(&fixture("failing-main.yaml"), &[]);
    assert_eq!(r.exit_code_of("main"), Some(3));
    assert_eq!(r.state("main", "exitcode"), "3");
    assert_eq!(r.state("main", "stdout"), "about to fail\n");
    // Two pipes read side by side: the lines are all there, in the order each pipe wrote them.
    let mut combined: Vec<String> = r
        .state("main", "combined")
        .lines()
        .map(str::to_owned)
        .collect();
    combined.sort();
    assert_eq!(combined, ["about to fail", "to stderr"]);
    let json = r.json();
    assert_eq!(json["phase"], "Failed");
    assert_eq!(json["message"], "Error (exit code 3)");
    assert_eq!(r.out.status.code(), Some(1));
}

#[test]
fn fixture_sidecar_that_ignores_sigterm_is_seen_by_main_and_killed_when_it_lingers() {
    if !is_root() {
        return;
    }
    let r = run(&fixture("sidecar-ignores-sigterm.yaml"), &[]);
    let listing = r.state("main", "stdout");
    assert!(
        listing.contains("while true; do sleep 1; done"),
        "{listing}"
    );
    // wait killed it (TERM ignored, then KILL after the grace), not the runner.
    assert_eq!(r.exit_code_of("stubborn"), Some(137), "{}", r.stderr());
}

#[test]
fn fixture_pod_past_its_active_deadline_is_terminated() {
    if !is_root() {
        return;
    }
    // Without wait's own deadline (Go's zero time is none), the pod's activeDeadlineSeconds: 2
    // is what stops main, as kubelet would.
    let yaml = std::fs::read_to_string(fixture("deadline-exceeded.yaml"))
        .unwrap()
        .replace("2020-01-01T00:00:00Z", "0001-01-01T00:00:00Z");
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let r = run(&write_pod(dir.path(), &yaml), &[]);
    assert!(
        started.elapsed().as_secs() < 30,
        "main's sleep 60 was cut short"
    );
    let json = r.json();
    assert_eq!(json["phase"], "Failed");
    assert_eq!(
        json["message"],
        "Pod was active on the node longer than the specified deadline"
    );
    assert_eq!(r.exit_code_of("main"), Some(143), "SIGTERM: 128+15");
}

#[test]
fn artifact_repo_becomes_the_archive_location_the_containers_see() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo.yaml");
    std::fs::write(
        &repo,
        "archiveLogs: true\ns3:\n  bucket: my-bucket\n  endpoint: 127.0.0.1:9000\n  insecure: true\n  keyPrefix: runs\n",
    )
    .unwrap();
    let yaml = probe_pod("printf '%s' \"$ARGO_TEMPLATE\"", "true", "");
    let r = run(
        &write_pod(dir.path(), &yaml),
        &["--artifact-repo", repo.to_str().unwrap()],
    );
    let template: serde_json::Value = serde_json::from_str(&r.state("main", "stdout")).unwrap();
    let location = &template["archiveLocation"];
    assert_eq!(location["archiveLogs"], true);
    assert_eq!(location["s3"]["bucket"], "my-bucket");
    assert_eq!(location["s3"]["key"], "runs/probe-wf/probe-pod-abc12");
}

#[test]
fn text_summary_and_exit_code_for_people() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pod = write_pod(dir.path(), &probe_pod("echo fine", "true", ""));
    let out = Command::new(env!("CARGO_BIN_EXE_argoexec"))
        .args(["run", "--quiet", "--pod"])
        .arg(&pod)
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("main       main     exit code 0"), "{text}");
    assert!(text.contains("phase: Succeeded"), "{text}");
}

// End to end with `argoexec wait`, which is being written: enabled when it lands.

#[test]
fn e2e_script_result_is_reported() {
    let r = run(&fixture("hello-world-result.yaml"), &[]);
    let json = r.json();
    assert_eq!(json["phase"], "Succeeded", "{}", r.stderr());
    assert_eq!(
        json["outputs"]["result"],
        "hello from hello-world-result-x7k2p"
    );
}

#[test]
fn e2e_output_parameter_from_a_file() {
    let r = run(&fixture("output-parameter.yaml"), &[]);
    let json = r.json();
    assert_eq!(json["phase"], "Succeeded", "{}", r.stderr());
    assert_eq!(json["outputs"]["parameters"][0]["value"], "hello world");
}

#[test]
fn e2e_output_artifact_directory_lands_in_the_local_repository() {
    let r = run(&fixture("output-artifact-dir.yaml"), &[]);
    let json = r.json();
    assert_eq!(json["phase"], "Succeeded", "{}", r.stderr());
    assert_eq!(json["outputs"]["artifacts"][0]["name"], "out");
    let repo = r.dir().join("artifacts");
    let found = walk(&repo)
        .into_iter()
        .any(|p| p.to_string_lossy().ends_with("out.tgz"));
    assert!(found, "no out.tgz under {}", repo.display());
}

#[test]
fn e2e_wait_kills_the_stubborn_sidecar() {
    let r = run(
        &fixture("sidecar-ignores-sigterm.yaml"),
        &["--linger", "60s"],
    );
    assert_eq!(r.json()["phase"], "Succeeded", "{}", r.stderr());
    assert_eq!(r.exit_code_of("stubborn"), Some(137));
    assert!(
        r.json().get("notes").is_none(),
        "wait, not the runner, killed it"
    );
}

#[test]
fn e2e_deadline_in_the_past_is_reported_by_wait() {
    let r = run(&fixture("deadline-exceeded.yaml"), &[]);
    assert_eq!(r.json()["phase"], "Failed");
    assert!(
        r.state("wait", "combined")
            .contains("Step exceeded its deadline"),
        "{}",
        r.stderr()
    );
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The step's result as Argo records it: phase, message, outputs and each container's exit code.
/// The artifacts' digests and sizes are left out: each run writes its files anew, with new
/// modification times, so two runs' archives differ in their headers.
fn outcome(r: &Run) -> serde_json::Value {
    let mut json = r.json();
    for artifact in json["outputs"]["artifacts"]
        .as_array_mut()
        .into_iter()
        .flatten()
    {
        if let Some(fields) = artifact.as_object_mut() {
            fields.remove("sha256");
            fields.remove("size");
        }
    }
    let codes: Vec<_> = json["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| serde_json::json!([c["name"], c["exitCode"]]))
        .collect();
    serde_json::json!({
        "phase": json["phase"],
        "message": json["message"],
        "outputs": json["outputs"],
        "containers": codes,
    })
}

#[test]
fn e2e_fixtures_give_the_same_outcome_with_the_emissary_as_with_pns() {
    if !is_root() {
        return;
    }
    let pods = [
        "hello-world-result.yaml",
        "output-parameter.yaml",
        "output-artifact-dir.yaml",
        "input-artifact-raw.yaml",
        "failing-main.yaml",
        "deadline-exceeded.yaml",
        "sidecar-ignores-sigterm.yaml",
    ];
    for pod in pods {
        let extra: &[&str] = if pod.starts_with("sidecar") {
            &["--linger", "60s"]
        } else {
            &[]
        };
        let pns = run(&fixture(pod), extra);
        let emissary = run(&fixture(pod), &[extra, &["--runtime", "emissary"]].concat());
        assert_eq!(
            outcome(&emissary),
            outcome(&pns),
            "{pod}: emissary (left) and PNS (right) differ\n{}",
            emissary.stderr()
        );
        // The emissary really ran main: its files are in the pod's /var/run/argo.
        let var_run_argo = walk(&emissary.dir().join("volumes"));
        assert!(
            var_run_argo
                .iter()
                .any(|p| p.ends_with("ctr/main/exitcode")),
            "{pod}: no ctr/main/exitcode in {var_run_argo:?}"
        );
    }
}

#[test]
fn the_emissary_refuses_a_v2_pod() {
    if !is_root() {
        return;
    }
    let r = run(&fixture("v2-annotations.yaml"), &["--runtime", "emissary"]);
    assert!(!r.out.status.success());
    assert!(r.stderr().contains("v3 or v4 pod"), "{}", r.stderr());
}

#[test]
fn fixture_v4_pod_under_the_emissary_reports_result_parameter_and_artifact() {
    let r = run(&fixture("v4-outputs.yaml"), &[]);
    let json = r.json();
    assert_eq!(json["phase"], "Succeeded", "{}", r.stderr());
    assert_eq!(json["outputs"]["result"], "hello v4");
    assert_eq!(json["outputs"]["parameters"][0]["value"], "42");
    let artifact = &json["outputs"]["artifacts"][0];
    assert_eq!(artifact["name"], "report");
    // The key as Argo 4 names it: <workflow>/<pod>/<artifact>.tgz under the repository.
    let key = artifact["local"]["key"].as_str().unwrap();
    assert_eq!(key, "v4-outputs-k2j9x/v4-outputs-k2j9x/report.tgz");
    let archive = std::fs::File::open(r.dir().join("artifacts").join(key)).unwrap();
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(archive));
    let mut summary = String::new();
    for entry in tar.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.path().unwrap() == Path::new("report/summary.txt") {
            std::io::Read::read_to_string(&mut entry, &mut summary).unwrap();
        }
    }
    assert_eq!(summary, "done\n");
    // The emissary, not PNS: main ran under it and left its exit code for wait.
    let exitcode = r.dir().join("volumes/var-run-argo/ctr/main/exitcode");
    assert_eq!(std::fs::read_to_string(exitcode).unwrap(), "0");
}

/// `run --api`: the pod served through its own API server, wait on the k8sapi runtime.
fn run_api(pod: &Path, extra: &[&str]) -> (Run, String) {
    let r = run(pod, &[&["--api", "--api-log", "api.log"], extra].concat());
    let log = std::fs::read_to_string(r.tmp.path().join("api.log"))
        .unwrap_or_else(|e| panic!("no request log: {e}\n{}", r.stderr()));
    (r, log)
}

/// Request-log lines (`METHOD VERB STATUS PATH?QUERY`) matching every part.
fn calls<'a>(log: &'a str, parts: &[&str]) -> Vec<&'a str> {
    log.lines()
        .filter(|line| parts.iter().all(|p| line.contains(p)))
        .collect()
}

#[test]
fn api_fixtures_give_the_same_outcome_as_pns() {
    if !is_root() {
        return;
    }
    let pods = [
        "hello-world-result.yaml",
        "output-volume.yaml",
        "input-artifact-raw.yaml",
        "failing-main.yaml",
        "v2-output-volume.yaml",
    ];
    for pod in pods {
        let pns = run(&fixture(pod), &[]);
        let (api, log) = run_api(&fixture(pod), &[]);
        assert_eq!(
            outcome(&api),
            outcome(&pns),
            "{pod}: --api (left) and PNS (right) differ\n{}\n{log}",
            api.stderr()
        );
        // wait followed its own pod (list, then watch) and read main's log through pods/log.
        assert!(
            !calls(
                &log,
                &["GET", "200", "/pods?", "fieldSelector=metadata.name"]
            )
            .is_empty(),
            "{pod}: {log}"
        );
        if pod.starts_with("hello") || pod.starts_with("output-volume") {
            assert!(
                !calls(&log, &["/log?", "container=main"]).is_empty(),
                "{pod}: {log}"
            );
        }
        // It reported as the pod's Argo version asks.
        if pod.starts_with("v2") {
            assert!(
                !calls(&log, &["PATCH", "200", "/pods/v2-output-volume"]).is_empty(),
                "{log}"
            );
            assert!(calls(&log, &["workflowtaskresults"]).is_empty(), "{log}");
        } else if pod.starts_with("output-volume") || pod.starts_with("hello") {
            assert!(
                !calls(&log, &["POST", "create", "201", "/workflowtaskresults"]).is_empty(),
                "{pod}: {log}"
            );
        }
    }
}

#[test]
fn api_outputs_come_back_from_the_task_result_and_the_annotation() {
    if !is_root() {
        return;
    }
    let (v3, log) = run_api(&fixture("output-volume.yaml"), &[]);
    let json = v3.json();
    assert_eq!(json["phase"], "Succeeded", "{}\n{log}", v3.stderr());
    assert_eq!(json["outputs"]["result"], "done");
    assert_eq!(json["outputs"]["parameters"][0]["value"], "42");
    assert_eq!(json["outputs"]["artifacts"][0]["name"], "out");
    // No report file: the outputs went through the API only.
    assert!(!v3.dir().join("outputs.json").exists());
    // Every container got its own PID namespace: main's command was PID 1 there.
    assert_eq!(v3.exit_code_of("main"), Some(0));
    let (v2, log) = run_api(&fixture("v2-output-volume.yaml"), &[]);
    assert_eq!(
        v2.json()["outputs"]["parameters"][0]["value"],
        "hello v2",
        "{}\n{log}",
        v2.stderr()
    );
    assert!(!v2.dir().join("outputs.json").exists());
}

#[test]
fn api_base_image_outputs_fail_as_with_k8sapi_in_a_cluster() {
    if !is_root() {
        return;
    }
    // /tmp of main is its image's layer: wait must exec tar into main, which has exited.
    let (r, log) = run_api(&fixture("output-parameter.yaml"), &[]);
    let json = r.json();
    assert_eq!(json["phase"], "Error", "{}\n{log}", r.stderr());
    let message = json["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("container not found (\"main\")"),
        "{message}"
    );
    assert!(
        !calls(&log, &["/exec?", "container=main", "command=tar"]).is_empty(),
        "{log}"
    );
}

#[test]
fn api_sidecar_ignoring_term_gets_kill_through_exec_and_outlives_it_as_pid_1() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (r, log) = run_api(
        &with_short_grace(dir.path(), "sidecar-ignores-sigterm.yaml", None),
        &["--linger", "1s"],
    );
    let json = r.json();
    assert_eq!(json["phase"], "Succeeded", "{}\n{log}", r.stderr());
    // wait sent TERM, then KILL, through exec into the sidecar...
    let execs = calls(&log, &["/exec?", "container=stubborn"]);
    assert!(execs.iter().any(|l| l.contains("kill+-15+1")), "{log}");
    assert!(execs.iter().any(|l| l.contains("kill+-9+1")), "{log}");
    // ...which its PID 1 does not receive from inside its namespace: the runner killed it.
    assert_eq!(r.exit_code_of("stubborn"), Some(137));
    assert!(
        json["notes"][0]
            .as_str()
            .unwrap_or_default()
            .contains("stubborn"),
        "{json:#}"
    );
    // main saw only its own container's processes.
    assert!(
        !r.state("main", "stdout").contains("while true"),
        "{}",
        r.state("main", "stdout")
    );
}

#[test]
fn api_pod_past_its_deadline_fails_as_with_pns() {
    if !is_root() {
        return;
    }
    let (r, log) = run_api(&fixture("deadline-exceeded.yaml"), &[]);
    let json = r.json();
    assert_eq!(json["phase"], "Failed", "{}\n{log}", r.stderr());
    assert_eq!(
        json["message"],
        "Pod was active on the node longer than the specified deadline"
    );
}

#[test]
fn api_sidecar_handling_term_is_stopped_through_exec() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pod = with_short_grace(
        dir.path(),
        "sidecar-ignores-sigterm.yaml",
        Some(("trap '' TERM", "trap 'exit 0' TERM")),
    );
    let (r, log) = run_api(&pod, &["--linger", "60s"]);
    let json = r.json();
    assert_eq!(json["phase"], "Succeeded", "{}\n{log}", r.stderr());
    assert_eq!(
        r.exit_code_of("stubborn"),
        Some(0),
        "its TERM handler ran: {log}"
    );
    assert!(
        json.get("notes").is_none(),
        "wait, not the runner, stopped it: {json:#}"
    );
    assert!(
        !calls(&log, &["/exec?", "container=stubborn", "kill+-15+1"]).is_empty(),
        "{log}"
    );
}

/// A fixture whose wait has a 1 s grace (`ARGO_TERMINATION_GRACE_PERIOD_SECONDS`), with one
/// text replaced, written into `dir`.
fn with_short_grace(dir: &Path, name: &str, replace: Option<(&str, &str)>) -> PathBuf {
    let wait = "    - name: ARGO_CONTAINER_NAME\n      value: wait\n";
    let mut yaml = std::fs::read_to_string(fixture(name)).unwrap().replace(
        wait,
        &format!("{wait}    - name: ARGO_TERMINATION_GRACE_PERIOD_SECONDS\n      value: '1'\n"),
    );
    if let Some((from, to)) = replace {
        assert!(yaml.contains(from), "{name} has no {from:?}");
        yaml = yaml.replace(from, to);
    }
    write_pod(dir, &yaml)
}

#[test]
fn api_v4_pod_keeps_the_emissary_and_reports_a_completed_task_result() {
    if !is_root() {
        return;
    }
    let local = run(&fixture("v4-outputs.yaml"), &[]);
    let (api, log) = run_api(&fixture("v4-outputs.yaml"), &[]);
    assert_eq!(api.json()["phase"], "Succeeded", "{}\n{log}", api.stderr());
    assert_eq!(outcome(&api), outcome(&local), "{log}");
    assert!(!api.dir().join("outputs.json").exists());
    // v4: the task result is created with the label "false", then patched to "true".
    let results = calls(&log, &["/workflowtaskresults"]);
    assert!(
        results
            .iter()
            .any(|l| l.contains("POST") && l.contains("201")),
        "{log}"
    );
    assert!(
        results
            .iter()
            .any(|l| l.contains("PATCH") && l.contains("200")),
        "{log}"
    );
    // The emissary, not k8sapi: no exec into main.
    assert!(calls(&log, &["/exec"]).is_empty(), "{log}");
}

#[test]
fn api_with_the_kubelet_runtime_gives_the_same_outcome_as_pns() {
    if !is_root() {
        return;
    }
    for pod in [
        "hello-world-result.yaml",
        "output-volume.yaml",
        "failing-main.yaml",
    ] {
        let pns = run(&fixture(pod), &[]);
        let (kubelet, log) = run_api(&fixture(pod), &["--runtime", "kubelet"]);
        assert_eq!(
            outcome(&kubelet),
            outcome(&pns),
            "{pod}: --api --runtime kubelet (left) and PNS (right) differ\n{}\n{log}",
            kubelet.stderr()
        );
        // wait asked the kubelet's /pods (and followed main's /containerLogs while it ran),
        // never the API server's pod list or watch.
        assert!(
            !calls(&log, &["GET", "200", " /pods"]).is_empty(),
            "{pod}: {log}"
        );
        assert!(
            calls(&log, &["fieldSelector=metadata.name"]).is_empty(),
            "{pod}: {log}"
        );
    }
}

#[test]
fn api_with_the_kubelet_runtime_refuses_base_image_outputs_clearly() {
    if !is_root() {
        return;
    }
    let (r, log) = run_api(&fixture("output-parameter.yaml"), &["--runtime", "kubelet"]);
    assert_eq!(r.json()["phase"], "Error", "{}\n{log}", r.stderr());
    let message = r.json()["message"].as_str().unwrap_or_default().to_owned();
    assert!(
        message.contains("base-image outputs are not available with the kubelet runtime"),
        "{message}"
    );
}

#[test]
fn a_kubernetes_runtime_without_api_is_refused_naming_api() {
    let r = run(
        &fixture("hello-world-result.yaml"),
        &["--runtime", "kubelet"],
    );
    assert!(!r.out.status.success());
    assert!(r.stderr().contains("add --api"), "{}", r.stderr());
}
