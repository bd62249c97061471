//! The YAML in `manifests/` is checked against the Kubernetes types it claims to be: every
//! document parses as its kind with k8s-openapi and serialises back to the same JSON (so a
//! misspelt or misplaced field fails), the controller configuration carries a valid executor
//! container, and each runtime's Role grants what that runtime calls.

#![allow(clippy::expect_used, clippy::unwrap_used)] // a test: a failed expectation is the report

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Pod};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use serde::Deserialize as _;
use serde::de::DeserializeOwned;
use serde_json::Value;

mod rbac_needs;

use rbac_needs::needs;

fn manifests_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests")
}

fn yaml_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, found);
        } else if path
            .extension()
            .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            found.push(path);
        }
    }
}

/// Every YAML document under `manifests/`, with the file it came from.
fn documents() -> Vec<(PathBuf, Value)> {
    let mut files = Vec::new();
    yaml_files(&manifests_dir(), &mut files);
    assert!(!files.is_empty(), "no YAML under manifests/");
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read manifest");
        for document in serde_yaml_ng::Deserializer::from_str(&text) {
            let value = Value::deserialize(document)
                .unwrap_or_else(|e| panic!("{}: not YAML: {e}", file.display()));
            if !value.is_null() {
                docs.push((file.clone(), value));
            }
        }
    }
    docs
}

/// Parses `value` as `T` and checks that nothing was dropped or invented on the way.
fn round_trip<T: DeserializeOwned + serde::Serialize>(what: &str, value: &Value) -> T {
    let typed: T = serde_path_to_error::deserialize(value.clone())
        .unwrap_or_else(|e| panic!("{what}: not a valid {}: {e}", std::any::type_name::<T>()));
    let back = serde_json::to_value(&typed).expect("serialise");
    assert_eq!(
        &back,
        value,
        "{what}: fields were lost or changed by parsing as {} (misspelt or misplaced?)",
        std::any::type_name::<T>()
    );
    typed
}

fn name(value: &Value) -> String {
    value["metadata"]["name"].as_str().unwrap_or("?").to_owned()
}

#[test]
fn every_manifest_is_a_valid_object_of_its_kind() {
    let docs = documents();
    let mut kinds = BTreeSet::new();
    for (file, value) in &docs {
        let what = format!("{} ({})", file.display(), name(value));
        let api_version = value["apiVersion"].as_str().unwrap_or_default();
        let kind = value["kind"].as_str().unwrap_or_default();
        match (api_version, kind) {
            ("v1", "Pod") => drop(round_trip::<Pod>(&what, value)),
            ("v1", "ConfigMap") => drop(round_trip::<ConfigMap>(&what, value)),
            ("rbac.authorization.k8s.io/v1", "Role") => drop(round_trip::<Role>(&what, value)),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => {
                drop(round_trip::<RoleBinding>(&what, value))
            }
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => {
                drop(round_trip::<ClusterRole>(&what, value))
            }
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                drop(round_trip::<ClusterRoleBinding>(&what, value))
            }
            other => panic!("{what}: no check for apiVersion/kind {other:?}; add one"),
        }
        kinds.insert(kind.to_owned());
    }
    for kind in ["Pod", "ConfigMap", "Role", "RoleBinding"] {
        assert!(kinds.contains(kind), "no {kind} under manifests/");
    }
}

/// The controller configuration: `executor` must be a Container spec with an image, and the
/// runtime one that argoexec-rs implements.
#[test]
fn controller_configuration_names_our_image_and_a_runtime_we_implement() {
    let configs: Vec<_> = documents()
        .into_iter()
        .filter(|(_, v)| v["kind"] == "ConfigMap" && name(v) == "workflow-controller-configmap")
        .collect();
    assert_eq!(
        configs.len(),
        2,
        "expected the v3/v4 and the v2 configuration"
    );
    let mut seen_v2 = false;
    for (file, value) in configs {
        let what = file.display().to_string();
        let data = &value["data"];
        // v2 keeps the whole configuration as one document under `config`.
        let (config, v2) = match data["config"].as_str() {
            Some(text) => (yaml(&what, text), true),
            None => (data.clone(), false),
        };
        seen_v2 |= v2;
        let mut executor = match &config["executor"] {
            Value::String(text) => yaml(&what, text),
            other => other.clone(),
        };
        // The controller names the container (init, wait); k8s-openapi writes a missing name
        // back as "", so give it that before comparing.
        if executor.get("name").is_none() {
            executor["name"] = Value::from("");
        }
        let container: Container = round_trip(&format!("{what}: executor"), &executor);
        let image = if v2 {
            config["executorImage"].as_str().map(str::to_owned)
        } else {
            container.image.clone()
        };
        assert!(
            image.is_some_and(|i| i.contains("argoexec")),
            "{what}: no executor image"
        );
        let runtime = config["containerRuntimeExecutor"]
            .as_str()
            .unwrap_or_else(|| panic!("{what}: containerRuntimeExecutor missing"));
        let known: &[&str] = if v2 {
            &["docker", "pns", "k8sapi", "kubelet"]
        } else {
            &["emissary", "docker", "pns", "k8sapi", "kubelet"]
        };
        assert!(known.contains(&runtime), "{what}: runtime {runtime:?}");
    }
    assert!(seen_v2, "no v2 configuration");
}

fn yaml(what: &str, text: &str) -> Value {
    serde_yaml_ng::from_str(text).unwrap_or_else(|e| panic!("{what}: embedded YAML: {e}"))
}

fn grants(rules: &[PolicyRule], group: &str, resource: &str, verb: &str) -> bool {
    rules.iter().any(|rule| {
        let has = |list: &Option<Vec<String>>, want: &str| {
            list.as_ref()
                .is_some_and(|l| l.iter().any(|x| x == want || x == "*"))
        };
        has(&rule.api_groups, group)
            && has(&rule.resources, resource)
            && rule.verbs.iter().any(|v| v == verb || v == "*")
    })
}

/// Each runtime's RBAC file grants what that runtime calls, nothing with wildcards, and binds
/// exactly the roles it defines.
#[test]
fn each_runtime_role_grants_what_the_runtime_calls_and_no_more_than_named() {
    let rbac = manifests_dir().join("rbac");
    let mut by_file: BTreeMap<PathBuf, Vec<Value>> = BTreeMap::new();
    for (file, value) in documents() {
        if file.parent() == Some(rbac.as_path()) {
            by_file.entry(file).or_default().push(value);
        }
    }
    for (file, docs) in &by_file {
        let file_name = file
            .file_name()
            .and_then(|n| n.to_str())
            .expect("file name");
        let mut rules = Vec::new();
        let mut defined = BTreeSet::new();
        let mut bound = BTreeSet::new();
        for doc in docs {
            match doc["kind"].as_str() {
                Some("Role") => {
                    let role: Role = serde_json::from_value(doc.clone()).expect("Role");
                    defined.insert(("Role", name(doc)));
                    rules.extend(role.rules.unwrap_or_default());
                }
                Some("ClusterRole") => {
                    let role: ClusterRole =
                        serde_json::from_value(doc.clone()).expect("ClusterRole");
                    defined.insert(("ClusterRole", name(doc)));
                    rules.extend(role.rules.unwrap_or_default());
                }
                Some("RoleBinding" | "ClusterRoleBinding") => {
                    let role_ref = &doc["roleRef"];
                    let kind = if role_ref["kind"] == "Role" {
                        "Role"
                    } else {
                        "ClusterRole"
                    };
                    bound.insert((kind, role_ref["name"].as_str().unwrap_or("").to_owned()));
                }
                other => panic!("{file_name}: unexpected kind {other:?}"),
            }
        }
        assert_eq!(defined, bound, "{file_name}: roles defined vs bound");
        for &(group, resource, verb) in needs(file_name) {
            assert!(
                grants(&rules, group, resource, verb),
                "{file_name}: does not grant {verb} on {resource} ({group:?})"
            );
        }
        for rule in &rules {
            let all: Vec<&String> = rule
                .api_groups
                .iter()
                .flatten()
                .chain(rule.resources.iter().flatten())
                .chain(rule.verbs.iter())
                .collect();
            assert!(
                all.iter().all(|x| x.as_str() != "*"),
                "{file_name}: wildcard in {rule:?}"
            );
            for resource in rule.resources.iter().flatten() {
                for verb in &rule.verbs {
                    let group = rule.api_groups.as_ref().and_then(|g| g.first());
                    let group = group.map(String::as_str).unwrap_or("");
                    assert!(
                        needs(file_name).contains(&(group, resource.as_str(), verb.as_str())),
                        "{file_name}: grants {verb} on {resource}, which the runtime never calls"
                    );
                }
            }
        }
    }
    assert_eq!(
        by_file.len(),
        6,
        "expected one RBAC file per runtime and one for v2"
    );
}
