//! Black-box tests of `argoexec run --backend docker`: the fixture pods of `tests/fixtures/pods/`
//! run as containers of a real Docker Engine, their executor told to use the docker runtime
//! (`ARGO_CONTAINER_RUNTIME_EXECUTOR: docker`), must give what the same pods give through the
//! namespaces backend with PNS: phase, message, exit codes, outputs, and the artifacts' contents.
//! Images come from one local image made with `docker import` (busybox-static plus the C library
//! this binary links against), mapped with `--image-map '*=...'`; one test leaves the executor's
//! image unmapped, so init and wait run from the real executor image `argoexec:local` that
//! `tests/image` builds. Needs root and a running engine (`tests/docker-engine`, which `tests/run`
//! calls); without them the tests skip, loudly, or fail with the reason when CI is set.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use argoexec_runtime::testdocker::{docker, engine_or_skip, ensure_image};
use serde_json::Value;

const IMAGE: &str = "argoexec-test/base:1";
/// The executor's image `tests/image` builds: `FROM scratch`, the static binary without the
/// local runner, user 8737.
const EXECUTOR_IMAGE: &str = "argoexec:local";

/// Whether what a test needs is here; when it is not, the test skips, loudly, or, with CI set,
/// fails with `why`: a suite must not pass in CI for want of what it tests.
fn present_or_skip(present: bool, why: &str) -> bool {
    if !present {
        assert!(std::env::var_os("CI").is_none(), "{why}");
        eprintln!("SKIPPED: {why}");
    }
    present
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/pods")
        .join(format!("{name}.yaml"))
}

/// The report and the run's work directory.
struct Run {
    report: Value,
    work: PathBuf,
}

fn run(pod: &Path, work: &Path, extra: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_argoexec"))
        .args(["run", "--quiet", "--output", "json", "--linger", "2s"])
        .arg("--workdir")
        .arg(work)
        .arg("--pod")
        .arg(pod)
        .args(extra)
        .output()
        .unwrap();
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    Run {
        report,
        work: work.to_owned(),
    }
}

/// What must agree between the two backends: the artifacts' digests differ (the tar comes from
/// docker's archive endpoint, not from our packer), so they are left out and compared unpacked.
fn comparable(report: &Value) -> Value {
    let mut report = report.clone();
    if let Some(artifacts) = report["outputs"]["artifacts"].as_array_mut() {
        for artifact in artifacts {
            if let Some(map) = artifact.as_object_mut() {
                map.remove("sha256");
                map.remove("size");
            }
        }
    }
    let codes: BTreeMap<String, Value> = report["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["exitCode"].clone(),
            )
        })
        .collect();
    serde_json::json!({
        "phase": report["phase"],
        "message": report["message"],
        "exitCodes": codes,
        "outputs": report["outputs"],
    })
}

/// The regular files below `dir`, recursively.
fn files_below(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.is_file() {
                out.push(path);
            }
        }
    }
    out
}

/// Every file of every `.tgz` in the run's local repository: archive path, entry path -> bytes.
fn artifacts(work: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for path in files_below(&work.join("artifacts")) {
        let key = path.strip_prefix(work).unwrap().display().to_string();
        let file = std::fs::File::open(&path).unwrap();
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            if entry.header().entry_type().is_file() {
                let name = entry.path().unwrap().display().to_string();
                let mut bytes = Vec::new();
                entry.read_to_end(&mut bytes).unwrap();
                out.insert(format!("{key}:{name}"), bytes);
            }
        }
    }
    out
}

/// Runs `name` through both backends and checks they agree; returns the docker run.
fn same_as_pns(name: &str) -> Option<Run> {
    if !engine_or_skip() {
        return None;
    }
    let tmp = tempfile::tempdir().unwrap();
    let yaml = std::fs::read_to_string(fixture(name)).unwrap();
    let (docker, pns) = both_backends(&yaml, tmp.path());
    assert_eq!(artifacts(&docker.work), artifacts(&pns.work));
    // The work directory lives as long as the returned run's checks need it.
    let kept = tmp.keep();
    Some(Run {
        report: docker.report,
        work: kept,
    })
}

/// Runs the PNS pod `yaml` through the namespaces backend and, told to use the docker runtime,
/// through the engine, in `dir`; checks that they agree; returns (docker, pns).
fn both_backends(yaml: &str, dir: &Path) -> (Run, Run) {
    ensure_image(IMAGE, &[Path::new(env!("CARGO_BIN_EXE_argoexec"))]).unwrap();
    let pns_pod = dir.join("pns.yaml");
    std::fs::write(&pns_pod, yaml).unwrap();
    let docker_pod = dir.join("docker.yaml");
    std::fs::write(&docker_pod, yaml.replace("value: pns", "value: docker")).unwrap();
    let docker = run(
        &docker_pod,
        &dir.join("docker"),
        &["--backend", "docker", "--image-map", &format!("*={IMAGE}")],
    );
    let pns = run(&pns_pod, &dir.join("pns"), &[]);
    assert_eq!(
        comparable(&docker.report),
        comparable(&pns.report),
        "docker:\n{:#}\npns:\n{:#}",
        docker.report,
        pns.report
    );
    (docker, pns)
}

fn cleanup(run: &Run) {
    let _ = std::fs::remove_dir_all(&run.work);
}

#[test]
fn script_result_matches_pns() {
    let Some(run) = same_as_pns("hello-world-result") else {
        return;
    };
    // The sandbox gives the pod's name as hostname, as kubelet does.
    assert_eq!(
        run.report["outputs"]["result"],
        "hello from hello-world-result-x7k2p"
    );
    cleanup(&run);
}

#[test]
fn output_parameter_from_the_image_matches_pns() {
    let Some(run) = same_as_pns("output-parameter") else {
        return;
    };
    assert_eq!(
        run.report["outputs"]["parameters"][0]["value"],
        "hello world"
    );
    cleanup(&run);
}

#[test]
fn output_artifact_directory_from_the_image_matches_pns() {
    let Some(run) = same_as_pns("output-artifact-dir") else {
        return;
    };
    let files = artifacts(&run.work.join("docker"));
    let names: Vec<&str> = files
        .keys()
        .map(|k| k.rsplit_once(':').unwrap().1)
        .collect();
    assert_eq!(names, ["out/a.txt", "out/sub/b.txt"], "{files:?}");
    cleanup(&run);
}

#[test]
fn failing_main_matches_pns() {
    let Some(run) = same_as_pns("failing-main") else {
        return;
    };
    assert_eq!(run.report["phase"], "Failed");
    cleanup(&run);
}

#[test]
fn v2_pod_with_the_template_in_annotations_matches_pns() {
    let Some(run) = same_as_pns("v2-annotations") else {
        return;
    };
    cleanup(&run);
}

#[test]
fn raw_input_artifact_matches_pns() {
    let Some(run) = same_as_pns("input-artifact-raw") else {
        return;
    };
    cleanup(&run);
}

/// Every file of the run's local repository, archives unpacked: repository path, file path
/// inside -> bytes.
fn repository(work: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let root = work.join("artifacts");
    for path in files_below(&root) {
        let key = path.strip_prefix(&root).unwrap().display().to_string();
        let format = if key.ends_with(".zip") {
            argoexec_archive::UnpackFormat::Zip
        } else if key.ends_with(".tgz") {
            argoexec_archive::UnpackFormat::Tar
        } else {
            out.insert(key, std::fs::read(&path).unwrap());
            continue;
        };
        let back = tempfile::tempdir().unwrap();
        let dest = back.path().join("x");
        let file = std::fs::File::open(&path).unwrap();
        argoexec_archive::unpack_from(file, &dest, format, &Default::default()).unwrap();
        for inner in files_below(&dest) {
            let name = inner.strip_prefix(&dest).unwrap().display();
            out.insert(format!("{key}:{name}"), std::fs::read(&inner).unwrap());
        }
    }
    out
}

#[test]
fn zip_and_as_is_artifacts_from_the_image_match_pns() {
    if !engine_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let yaml = std::fs::read_to_string(fixture("output-artifact-dir")).unwrap();
    let artifacts = r#""artifacts":[{"name":"out","path":"/tmp/out"}]"#;
    assert!(yaml.contains(artifacts));
    // A pod name of its own: the tests run at once against one engine.
    let yaml = yaml.replace("output-artifact-dir-9fj3k", "repack-9fj3k").replace(
        artifacts,
        r#""artifacts":[{"name":"zipped","path":"/tmp/out","archive":{"zip":{}}},{"name":"plain","path":"/tmp/out/a.txt","archive":{"none":{}}},{"name":"tree","path":"/tmp/out","archive":{"none":{}}}]"#,
    );
    let (docker, pns) = both_backends(&yaml, tmp.path());
    assert_eq!(docker.report["phase"], "Succeeded", "{:#}", docker.report);
    let stored = repository(&docker.work);
    assert_eq!(stored, repository(&pns.work));
    let names: Vec<&str> = stored
        .keys()
        .map(|k| k.split_once('/').unwrap().1)
        .collect();
    assert_eq!(
        names,
        [
            "repack-9fj3k/a.txt",
            "repack-9fj3k/out/a.txt",
            "repack-9fj3k/out/sub/b.txt",
            "repack-9fj3k/zipped.zip:a.txt",
            "repack-9fj3k/zipped.zip:sub/b.txt",
        ],
        "{stored:?}"
    );
}

#[test]
fn a_main_that_cannot_start_fails_the_step_with_the_engines_reason() {
    if !engine_or_skip() {
        return;
    }
    ensure_image(IMAGE, &[Path::new(env!("CARGO_BIN_EXE_argoexec"))]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let yaml = std::fs::read_to_string(fixture("failing-main")).unwrap();
    // main's entrypoint does not exist: docker 20.10 leaves the container `created` with an
    // error and sends no event. The deadline only turns a regression (wait waiting forever)
    // into a failure instead of a hang.
    // A pod name of its own: the tests run at once against one engine.
    let yaml = yaml
        .replace("failing-main-p4k9s", "no-start-p4k9s")
        .replace("value: pns", "value: docker")
        .replace(
            "    command:\n    - sh\n",
            "    command:\n    - /no/such/entrypoint\n",
        )
        .replace(
            "  restartPolicy: Never\n",
            "  restartPolicy: Never\n  activeDeadlineSeconds: 120\n",
        );
    assert!(yaml.contains("/no/such/entrypoint"));
    let pod = tmp.path().join("pod.yaml");
    std::fs::write(&pod, yaml).unwrap();
    let run = run(
        &pod,
        &tmp.path().join("work"),
        &["--backend", "docker", "--image-map", &format!("*={IMAGE}")],
    );
    let report = &run.report;
    assert_eq!(report["phase"], "Failed", "{report:#}");
    let main = report["containers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "main")
        .unwrap();
    assert_eq!(main["exitCode"], 127, "{report:#}");
    // The message is wait's: it saw the failed start and names the engine's reason.
    let message = report["message"].as_str().unwrap();
    assert!(
        message.contains("could not start") && message.contains("/no/such/entrypoint"),
        "{message}"
    );
}

/// Fixture pods that cannot give the same report on both backends, with the reason.
const NOT_COMPARABLE: &[(&str, &str)] = &[];

/// Fields of a fixture's report that may differ between the backends: (fixture, field, why).
const UNEQUAL_FIELDS: &[(&str, &str, &str)] = &[(
    "deadline-exceeded",
    "message",
    "a race between wait's own deadline (ARGO_DEADLINE is in the past: \"Step exceeded its \
     deadline\") and the pod's activeDeadlineSeconds of 2 s (\"Pod was active on the node longer \
     ...\"); the engine starts containers slower than namespaces do, so the pod's deadline can win \
     there; phase, exit codes and outputs still agree",
)];

/// The fixture `name` under a pod name of its own, `<pod>-<suffix>`: the other tests of this file
/// run the same fixtures at once against the same engine. Returns (pod name, manifest).
fn renamed(name: &str, suffix: &str) -> (String, String) {
    let yaml = std::fs::read_to_string(fixture(name)).unwrap();
    let pod = yaml
        .lines()
        .find_map(|l| l.strip_prefix("  name: "))
        .unwrap()
        .trim()
        .to_owned();
    let renamed = format!("{pod}-{suffix}");
    (renamed.clone(), yaml.replace(&pod, &renamed))
}

/// The report's fields both backends must agree on, one entry per field: phase, exitCode,
/// message, each container's exit code, each output parameter, the result, and each artifact
/// as stored (its location; digest and size differ, the tar coming from docker's archive
/// endpoint, so the contents are compared unpacked instead).
fn fields(report: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for key in ["phase", "exitCode", "message"] {
        out.insert(key.to_owned(), report[key].clone());
    }
    for c in report["containers"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        out.insert(format!("containers.{name}.exitCode"), c["exitCode"].clone());
    }
    let outputs = &report["outputs"];
    out.insert("outputs.result".into(), outputs["result"].clone());
    for p in outputs["parameters"].as_array().into_iter().flatten() {
        let name = p["name"].as_str().unwrap();
        out.insert(format!("outputs.parameters.{name}"), p.clone());
    }
    for a in outputs["artifacts"].as_array().into_iter().flatten() {
        let mut a = a.clone();
        let map = a.as_object_mut().unwrap();
        map.remove("sha256");
        map.remove("size");
        let name = map["name"].as_str().unwrap().to_owned();
        out.insert(format!("outputs.artifacts.{name}"), a);
    }
    out
}

/// The fields on which two reports differ: (field, docker's, namespaces').
fn differences(docker: &Value, pns: &Value) -> Vec<(String, Value, Value)> {
    let (docker, pns) = (fields(docker), fields(pns));
    let keys: std::collections::BTreeSet<&String> = docker.keys().chain(pns.keys()).collect();
    keys.into_iter()
        .filter(|k| docker.get(*k) != pns.get(*k))
        .map(|k| {
            let of = |m: &BTreeMap<String, Value>| m.get(k).cloned().unwrap_or(Value::Null);
            (k.clone(), of(&docker), of(&pns))
        })
        .collect()
}

/// One fixture through both backends: its name, the fields that differ, whether the stored
/// artifacts agree, and both reports.
type Compared = (String, Vec<(String, Value, Value)>, bool, Value);

#[test]
fn every_fixture_pod_gives_the_same_report_on_both_backends() {
    if !engine_or_skip() {
        return;
    }
    ensure_image(IMAGE, &[Path::new(env!("CARGO_BIN_EXE_argoexec"))]).unwrap();
    let dir = fixture("x").parent().unwrap().to_owned();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|n| n.strip_suffix(".yaml").map(str::to_owned))
        .filter(|n| !NOT_COMPARABLE.iter().any(|(skip, _)| skip == n))
        .collect();
    names.sort();
    assert!(names.len() >= 10, "{names:?}");
    // Not under /tmp: some v4 fixtures mount a volume there, which would hide the work directory.
    let tmp = tempfile::tempdir_in("/var/tmp").unwrap();
    // Pods of their own names run at once: two at a time, the machine has few cores.
    let results: Vec<Compared> = names
        .chunks(2)
        .flat_map(|pair| {
            std::thread::scope(|s| {
                let handles: Vec<_> = pair
                    .iter()
                    .map(|name| {
                        let work = tmp.path().join(name);
                        s.spawn(move || {
                            std::fs::create_dir_all(&work).unwrap();
                            let (_, yaml) = renamed(name, "all");
                            let pns_pod = work.join("pns.yaml");
                            std::fs::write(&pns_pod, &yaml).unwrap();
                            let docker_pod = work.join("docker.yaml");
                            let docker_yaml = yaml.replace("value: pns", "value: docker");
                            std::fs::write(&docker_pod, docker_yaml).unwrap();
                            let image_map = format!("*={IMAGE}");
                            let docker_args = ["--backend", "docker", "--image-map", &image_map];
                            let docker = run(&docker_pod, &work.join("docker"), &docker_args);
                            let pns = run(&pns_pod, &work.join("pns"), &[]);
                            let stored_alike = repository(&docker.work) == repository(&pns.work);
                            let both =
                                serde_json::json!({"docker": docker.report, "pns": pns.report});
                            (
                                name.clone(),
                                differences(&docker.report, &pns.report),
                                stored_alike,
                                both,
                            )
                        })
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut failures = Vec::new();
    for (name, diffs, stored_alike, both) in &results {
        let allowed = |field: &str| {
            UNEQUAL_FIELDS
                .iter()
                .any(|(f, k, _)| f == name && *k == field)
        };
        let diffs: Vec<_> = diffs.iter().filter(|(field, ..)| !allowed(field)).collect();
        for (field, docker, pns) in &diffs {
            failures.push(format!(
                "{name}: {field}: docker {docker} != namespaces {pns}"
            ));
        }
        if !stored_alike {
            failures.push(format!("{name}: the stored artifacts differ"));
        }
        if !diffs.is_empty() || !stored_alike {
            failures.push(format!("{name}: reports {both:#}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The comparison is not vacuous: a failing main's exit code is in both reports.
    let failing = results.iter().find(|r| r.0 == "failing-main").unwrap();
    assert_eq!(failing.3["docker"]["exitCode"], 3, "{:#}", failing.3);
}

/// The fixture `name` as a docker-runtime pod of its own name (`<pod>-<suffix>`).
fn docker_pod(name: &str, suffix: &str) -> (String, String) {
    let (pod, yaml) = renamed(name, suffix);
    (pod, yaml.replace("value: pns", "value: docker"))
}

#[test]
fn init_and_wait_run_from_the_executor_image_built_here() {
    if !engine_or_skip() {
        return;
    }
    let built = docker(&["image", "inspect", EXECUTOR_IMAGE])
        .unwrap()
        .status
        .success();
    let why = format!(
        "image {EXECUTOR_IMAGE} is not in the engine: build it with tests/image (tests/run does)"
    );
    if !present_or_skip(built, &why) {
        return;
    }
    ensure_image(IMAGE, &[Path::new(env!("CARGO_BIN_EXE_argoexec"))]).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    // Only main's image is mapped: init, wait (and the sandbox) get the executor's own image,
    // whose binary has no local runner and runs as root by the runner's choice, not the image's.
    let main_only = format!("alpine:3.16={IMAGE}");
    let args = ["--backend", "docker", "--image-map", main_only.as_str()];

    // A script: init stages it, wait reads main's stdout from the engine as its result.
    let (pod, yaml) = docker_pod("hello-world-result", "own-image");
    let path = tmp.path().join("result.yaml");
    std::fs::write(&path, yaml).unwrap();
    let script = run(&path, &tmp.path().join("result"), &args);
    let report = &script.report;
    assert_eq!(report["phase"], "Succeeded", "{report:#}");
    assert_eq!(report["outputs"]["result"], format!("hello from {pod}"));
    for c in report["containers"].as_array().unwrap() {
        assert_eq!(c["exitCode"], 0, "{report:#}");
    }

    // An artifact: wait copies it out of main through the engine and stores it as tar.gz.
    let (pod, yaml) = docker_pod("output-artifact-dir", "own-image");
    let path = tmp.path().join("artifact.yaml");
    std::fs::write(&path, yaml).unwrap();
    let artifact = run(&path, &tmp.path().join("artifact"), &args);
    let report = &artifact.report;
    assert_eq!(report["phase"], "Succeeded", "{report:#}");
    assert_eq!(
        report["outputs"]["artifacts"][0]["name"], "out",
        "{report:#}"
    );
    let stored = artifacts(&artifact.work);
    let names: Vec<&str> = stored
        .keys()
        .map(|k| k.rsplit_once(':').unwrap().1)
        .collect();
    assert_eq!(names, ["out/a.txt", "out/sub/b.txt"], "{pod}: {stored:?}");
}

#[test]
fn a_missing_executor_image_is_named_with_the_flag_that_maps_it() {
    if !engine_or_skip() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (_, yaml) = docker_pod("hello-world-result", "no-image");
    let pod = tmp.path().join("pod.yaml");
    std::fs::write(&pod, yaml).unwrap();
    let executor = "quay.io/argoproj/argoexec:v3.3.8";
    let out = Command::new(env!("CARGO_BIN_EXE_argoexec"))
        .args(["run", "--quiet", "--backend", "docker", "--image-map"])
        .arg(format!("{executor}=argoexec-test/no-such-image:1"))
        .arg("--workdir")
        .arg(tmp.path().join("work"))
        .arg("--pod")
        .arg(&pod)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("image argoexec-test/no-such-image:1 (mapped from")
            && stderr.contains(&format!("--image-map {executor}=IMAGE")),
        "{stderr}"
    );
}
