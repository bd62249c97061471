//! Fidelity of the template model against Argo's own material in `../shared/argo`:
//! - every template of every example workflow deserializes and serializes back to the same JSON;
//! - every property Argo's schemas list for a type reachable from `Template` lands in a typed
//!   field of our model, not in `extra`.
//!
//! The shared folder is `$ARGOEXEC_SHARED_DIR`, else `../shared` beside the checkout. Without it
//! the tests fail: they must never pass by finding nothing to check.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use argoexec_template::{
    ArchiveStrategy, Arguments, Artifact, ArtifactGC, ArtifactLocation, ArtifactPaths,
    ArtifactoryArtifact, AzureArtifact, Backoff, BasicAuth, Cache, ClientCertAuth, ContainerNode,
    ContainerSetRetryStrategy, ContainerSetTemplate, ContinueOn, Counter, CreateS3BucketOptions,
    DagTask, DagTemplate, Data, DataSource, ExecutorConfig, Gauge, GcsArtifact, GitArtifact,
    HdfsArtifact, Header, Histogram, HttpArtifact, HttpAuth, HttpBodySource, HttpHeader,
    HttpHeaderSource, HttpTemplate, Inputs, LifecycleHook, ManifestFrom, Memoize, Metadata,
    MetricLabel, Metrics, Mutex, NoneStrategy, OAuth2Auth, OAuth2EndpointParam, OssArtifact,
    OssLifecycleRule, Outputs, Parameter, PluginArtifact, Prometheus, RawArtifact,
    ResourceTemplate, RetryAffinity, RetryNodeAntiAffinity, RetryStrategy, S3Artifact,
    S3EncryptionOptions, ScriptTemplate, SemaphoreRef, Sequence, SuppliedValueFrom,
    SuspendTemplate, SyncDatabaseRef, Synchronization, TarStrategy, Template, TemplateRef,
    TransformationStep, UserContainer, ValueFrom, WorkflowStep, ZipStrategy,
};
use k8s_openapi::api::core::v1::Container;
use serde::Deserialize;
use serde_json::{Value, json};

const KINDS: [&str; 4] = [
    "Workflow",
    "WorkflowTemplate",
    "ClusterWorkflowTemplate",
    "CronWorkflow",
];
const EXAMPLE_DIRS: [&str; 2] = ["examples-v2.3.0", "examples-v4.1.2"];
const SCHEMAS: [&str; 3] = [
    "swagger-v2.3.0.json",
    "schema-v3.3.8.json",
    "schema-v4.1.2.json",
];
const ARGO: &str = "io.argoproj.workflow.v1alpha1.";

fn argo_dir() -> PathBuf {
    let shared = match std::env::var_os("ARGOEXEC_SHARED_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"),
    };
    let argo = shared.join("argo");
    assert!(
        argo.is_dir(),
        "Argo's examples and schemas are not at {}: set ARGOEXEC_SHARED_DIR to the shared folder",
        argo.display()
    );
    argo
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
}

/// Every template of every workflow-like document in `path`, as JSON.
fn templates_of(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let mut templates = Vec::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let doc = Value::deserialize(document).map_err(|e| format!("YAML: {e}"))?;
        let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
        if !KINDS.contains(&kind) {
            continue;
        }
        for pointer in ["/spec/templates", "/spec/workflowSpec/templates"] {
            if let Some(list) = doc.pointer(pointer).and_then(Value::as_array) {
                templates.extend(list.iter().cloned());
            }
        }
    }
    Ok(templates)
}

/// Explicit nulls removed: Argo's Go types read `key: null` as an absent key, and so does the
/// model (see `an_explicit_null_reads_as_absent`). Nulls are the only thing normalized.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// The JSON pointer of the first place `written` and `back` differ, and what each holds there.
fn first_difference(written: &Value, back: &Value, pointer: &str) -> Option<String> {
    fn show(v: Option<&Value>) -> String {
        v.map_or_else(|| "(absent)".to_owned(), Value::to_string)
    }
    let differ = |a: Option<&Value>, b: Option<&Value>, at: &str| {
        let at = if at.is_empty() { "/" } else { at };
        Some(format!("{at}: written {}, came back {}", show(a), show(b)))
    };
    match (written, back) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|key| {
                let at = format!("{pointer}/{}", key.replace('~', "~0").replace('/', "~1"));
                match (a.get(key), b.get(key)) {
                    (Some(a), Some(b)) => first_difference(a, b, &at),
                    (a, b) => differ(a, b, &at),
                }
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .find_map(|(i, (a, b))| first_difference(a, b, &format!("{pointer}/{i}"))),
        (a, b) if a == b => None,
        (a, b) => differ(Some(a), Some(b), pointer),
    }
}

#[test]
fn every_example_template_round_trips() {
    let argo = argo_dir();
    let mut files = Vec::new();
    for dir in EXAMPLE_DIRS {
        let dir = argo.join(dir);
        assert!(dir.is_dir(), "missing example folder {}", dir.display());
        yaml_files(&dir, &mut files);
    }
    files.sort();

    let (mut total, mut passed) = (0, 0);
    let mut failures = Vec::new();
    let mut nulls_dropped = Vec::new();
    for file in &files {
        let shown = file
            .strip_prefix(&argo)
            .unwrap_or(file)
            .display()
            .to_string();
        let templates = match templates_of(file) {
            Ok(templates) => templates,
            Err(e) => {
                failures.push(format!("{shown}: cannot read: {e}"));
                continue;
            }
        };
        for written in templates {
            total += 1;
            let name = written
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("(unnamed)")
                .to_owned();
            let parsed = match serde_path_to_error::deserialize::<_, Template>(&written) {
                Ok(t) => t,
                Err(e) => {
                    failures.push(format!("{shown} template {name}: does not load: {e}"));
                    continue;
                }
            };
            let back = serde_json::to_value(&parsed).expect("a template serializes");
            match first_difference(&without_nulls(&written), &without_nulls(&back), "") {
                None => passed += 1,
                Some(diff) => failures.push(format!("{shown} template {name}: {diff}")),
            }
            if let Some(diff) = first_difference(&written, &back, "") {
                nulls_dropped.push(format!("{shown} template {name}: {diff}"));
            }
        }
    }

    println!(
        "{passed}/{total} templates round-trip ({} files)",
        files.len()
    );
    for dropped in &nulls_dropped {
        println!("  explicit null read as absent: {dropped}");
    }
    for failure in &failures {
        println!("  FAIL {failure}");
    }
    assert!(
        total >= 300,
        "only {total} templates found in {}: the examples are incomplete",
        argo.display()
    );
    assert!(
        failures.is_empty(),
        "{} of {total} templates failed (see above)",
        failures.len()
    );
    assert_eq!(passed, total);
}

// ---------------------------------------------------------------------------------------------
// Every schema property lands in a typed field.

/// Checks one sample object of a type: it must load, keep nothing in `extra`, and come back as is.
type Check = fn(&Value) -> Result<(), String>;

fn load<T: serde::de::DeserializeOwned>(v: &Value) -> Result<T, String> {
    serde_path_to_error::deserialize(v).map_err(|e| format!("does not load: {e}"))
}

fn same_back<T: serde::Serialize>(parsed: &T, v: &Value) -> Result<(), String> {
    let back = serde_json::to_value(parsed).map_err(|e| e.to_string())?;
    match first_difference(v, &back, "") {
        None => Ok(()),
        Some(diff) => Err(format!("does not round-trip: {diff}")),
    }
}

fn no_unknown(extra: &BTreeMap<String, Value>) -> Result<(), String> {
    match extra.keys().next() {
        None => Ok(()),
        Some(_) => Err(format!(
            "kept as unknown: {:?}",
            extra.keys().collect::<Vec<_>>()
        )),
    }
}

/// A type whose own `extra` must stay empty.
macro_rules! typed {
    ($t:ty) => {
        (|v: &Value| {
            let parsed: $t = load(v)?;
            no_unknown(&parsed.extra)?;
            same_back(&parsed, v)
        }) as Check
    };
}

/// A Kubernetes container plus fields of ours: every key must be ours or known to k8s-openapi.
macro_rules! with_container {
    ($t:ty, $($own:literal),+) => {
        (|v: &Value| {
            let parsed: $t = load(v)?;
            let known = serde_json::to_value::<&Container>(&parsed.container).map_err(|e| e.to_string())?;
            for key in v.as_object().into_iter().flat_map(|m| m.keys()) {
                if ![$($own),+].contains(&key.as_str()) && known.get(key).is_none() {
                    return Err(format!("`{key}` is not a field of ours or of k8s-openapi's Container"));
                }
            }
            same_back(&parsed, v)
        }) as Check
    };
}

fn checks() -> BTreeMap<&'static str, Check> {
    let artifact: Check = |v| {
        let parsed: Artifact = load(v)?;
        no_unknown(&parsed.extra)?;
        no_unknown(&parsed.location.extra)?;
        same_back(&parsed, v)
    };
    let artifact_paths: Check = |v| {
        let parsed: ArtifactPaths = load(v)?;
        no_unknown(&parsed.artifact.extra)?;
        no_unknown(&parsed.artifact.location.extra)?;
        same_back(&parsed, v)
    };
    BTreeMap::from([
        ("ArchiveStrategy", typed!(ArchiveStrategy)),
        ("Arguments", typed!(Arguments)),
        ("Artifact", artifact),
        ("ArtifactGC", typed!(ArtifactGC)),
        ("ArtifactLocation", typed!(ArtifactLocation)),
        ("ArtifactPaths", artifact_paths),
        ("ArtifactoryArtifact", typed!(ArtifactoryArtifact)),
        ("AzureArtifact", typed!(AzureArtifact)),
        ("Backoff", typed!(Backoff)),
        ("BasicAuth", typed!(BasicAuth)),
        ("Cache", typed!(Cache)),
        ("ClientCertAuth", typed!(ClientCertAuth)),
        (
            "ContainerNode",
            with_container!(ContainerNode, "dependencies"),
        ),
        (
            "ContainerSetRetryStrategy",
            typed!(ContainerSetRetryStrategy),
        ),
        ("ContainerSetTemplate", typed!(ContainerSetTemplate)),
        ("ContinueOn", typed!(ContinueOn)),
        ("Counter", typed!(Counter)),
        ("CreateS3BucketOptions", typed!(CreateS3BucketOptions)),
        ("DAGTask", typed!(DagTask)),
        ("DAGTemplate", typed!(DagTemplate)),
        ("Data", typed!(Data)),
        ("DataSource", typed!(DataSource)),
        ("ExecutorConfig", typed!(ExecutorConfig)),
        ("GCSArtifact", typed!(GcsArtifact)),
        ("Gauge", typed!(Gauge)),
        ("GitArtifact", typed!(GitArtifact)),
        ("HDFSArtifact", typed!(HdfsArtifact)),
        ("HTTP", typed!(HttpTemplate)),
        ("HTTPArtifact", typed!(HttpArtifact)),
        ("HTTPAuth", typed!(HttpAuth)),
        ("HTTPBodySource", typed!(HttpBodySource)),
        ("HTTPHeader", typed!(HttpHeader)),
        ("HTTPHeaderSource", typed!(HttpHeaderSource)),
        ("Header", typed!(Header)),
        ("Histogram", typed!(Histogram)),
        ("Inputs", typed!(Inputs)),
        ("LifecycleHook", typed!(LifecycleHook)),
        ("ManifestFrom", typed!(ManifestFrom)),
        ("Memoize", typed!(Memoize)),
        ("Metadata", typed!(Metadata)),
        ("MetricLabel", typed!(MetricLabel)),
        ("Metrics", typed!(Metrics)),
        ("Mutex", typed!(Mutex)),
        ("NoneStrategy", typed!(NoneStrategy)),
        ("OAuth2Auth", typed!(OAuth2Auth)),
        ("OAuth2EndpointParam", typed!(OAuth2EndpointParam)),
        ("OSSArtifact", typed!(OssArtifact)),
        ("OSSLifecycleRule", typed!(OssLifecycleRule)),
        ("Outputs", typed!(Outputs)),
        ("Parameter", typed!(Parameter)),
        ("PluginArtifact", typed!(PluginArtifact)),
        ("Prometheus", typed!(Prometheus)),
        ("RawArtifact", typed!(RawArtifact)),
        ("ResourceTemplate", typed!(ResourceTemplate)),
        ("RetryAffinity", typed!(RetryAffinity)),
        ("RetryNodeAntiAffinity", typed!(RetryNodeAntiAffinity)),
        ("RetryStrategy", typed!(RetryStrategy)),
        ("S3Artifact", typed!(S3Artifact)),
        ("S3EncryptionOptions", typed!(S3EncryptionOptions)),
        ("ScriptTemplate", with_container!(ScriptTemplate, "source")),
        ("SemaphoreRef", typed!(SemaphoreRef)),
        ("Sequence", typed!(Sequence)),
        ("SuppliedValueFrom", typed!(SuppliedValueFrom)),
        ("SuspendTemplate", typed!(SuspendTemplate)),
        ("SyncDatabaseRef", typed!(SyncDatabaseRef)),
        ("Synchronization", typed!(Synchronization)),
        ("TarStrategy", typed!(TarStrategy)),
        ("Template", typed!(Template)),
        ("TemplateRef", typed!(TemplateRef)),
        ("TransformationStep", typed!(TransformationStep)),
        (
            "UserContainer",
            with_container!(UserContainer, "mirrorVolumeMounts"),
        ),
        ("ValueFrom", typed!(ValueFrom)),
        ("WorkflowStep", typed!(WorkflowStep)),
        ("ZipStrategy", typed!(ZipStrategy)),
    ])
}

/// Schema definitions of every version, the first version's winning, so that a Kubernetes type
/// the v2 swagger only refers to is found in a later schema.
struct Schemas {
    versions: Vec<(&'static str, serde_json::Map<String, Value>)>,
}

impl Schemas {
    fn load(argo: &Path) -> Self {
        let versions = SCHEMAS
            .iter()
            .map(|file| {
                let text = std::fs::read_to_string(argo.join(file))
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
                let doc: Value =
                    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
                let Some(Value::Object(defs)) = doc.get("definitions").cloned() else {
                    panic!("{file} has no definitions");
                };
                (*file, defs)
            })
            .collect();
        Self { versions }
    }

    fn find(&self, preferred: &serde_json::Map<String, Value>, name: &str) -> Option<Value> {
        preferred
            .get(name)
            .or_else(|| self.versions.iter().find_map(|(_, defs)| defs.get(name)))
            .cloned()
    }

    /// A small valid value for `schema`: required properties only, one entry per list or map.
    fn sample(&self, defs: &serde_json::Map<String, Value>, schema: &Value, depth: usize) -> Value {
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference.rsplit('/').next().unwrap_or_default();
            return match name {
                "io.k8s.apimachinery.pkg.util.intstr.IntOrString" => json!("1"),
                "io.k8s.apimachinery.pkg.api.resource.Quantity" => json!("1"),
                // Any JSON value; v3+ leave its type unset.
                "io.argoproj.workflow.v1alpha1.Item" => json!("x"),
                _ => match self.find(defs, name) {
                    Some(def) => self.sample(defs, &def, depth + 1),
                    None => panic!("no schema defines {name}"),
                },
            };
        }
        let kind = schema.get("type").and_then(Value::as_str);
        match kind {
            Some("string") => match schema.get("format").and_then(Value::as_str) {
                Some("byte") => json!("aGk="),
                Some("int-or-string") => json!("1"),
                _ => json!("x"),
            },
            Some("integer") => json!(1),
            Some("number") => json!(1.5),
            Some("boolean") => json!(true),
            Some("array") => match schema.get("items") {
                Some(items) if depth < 8 => json!([self.sample(defs, items, depth + 1)]),
                _ => json!([]),
            },
            _ => {
                if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
                    return json!({"k": self.sample(defs, values, depth + 1)});
                }
                // An object; v2.3.0 leaves the type of empty ones (`NoneStrategy`) unset.
                let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                    return json!({});
                };
                let required = schema.get("required").and_then(Value::as_array);
                let mut object = serde_json::Map::new();
                for name in required.into_iter().flatten().filter_map(Value::as_str) {
                    if let Some(prop) = props.get(name) {
                        object.insert(name.to_owned(), self.sample(defs, prop, depth + 1));
                    }
                }
                Value::Object(object)
            }
        }
    }
}

/// The Argo types reachable from `Template` in one schema.
fn reachable(defs: &serde_json::Map<String, Value>) -> BTreeSet<String> {
    fn refs(schema: &Value, out: &mut Vec<String>) {
        match schema {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    out.push(r.rsplit('/').next().unwrap_or_default().to_owned());
                }
                map.values().for_each(|v| refs(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut seen = BTreeSet::new();
    let mut todo = vec![format!("{ARGO}Template")];
    while let Some(name) = todo.pop() {
        if !name.starts_with(ARGO) || !seen.insert(name.clone()) {
            continue;
        }
        if let Some(def) = defs.get(&name) {
            refs(def, &mut todo);
        }
    }
    seen
}

#[test]
fn every_schema_property_lands_in_a_typed_field() {
    let argo = argo_dir();
    let schemas = Schemas::load(&argo);
    let checks = checks();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (file, defs) in &schemas.versions {
        let types = reachable(defs);
        assert!(
            types.len() > 20,
            "{file}: only {} types reachable from Template",
            types.len()
        );
        for full_name in &types {
            let Some(def) = defs.get(full_name) else {
                continue;
            };
            let Some(props) = def.get("properties").and_then(Value::as_object) else {
                continue; // Item, Amount, ParallelSteps, Plugin: no fields of their own.
            };
            let name = &full_name[ARGO.len()..];
            let Some(check) = checks.get(name) else {
                failures.push(format!("{file}: {name}: no model type is checked for it"));
                continue;
            };
            let base = schemas.sample(defs, def, 0);
            for (prop, prop_schema) in props {
                let mut sample = base.clone();
                if let Value::Object(object) = &mut sample {
                    object.insert(prop.clone(), schemas.sample(defs, prop_schema, 1));
                }
                checked += 1;
                if let Err(e) = check(&sample) {
                    failures.push(format!(
                        "{file}: {name}.{prop}: {e}\n      sample: {sample}"
                    ));
                }
            }
        }
    }
    println!("{checked} schema properties checked");
    for failure in &failures {
        println!("  FAIL {failure}");
    }
    assert!(checked > 500, "only {checked} properties checked");
    assert!(
        failures.is_empty(),
        "{} schema properties are not typed fields (see above)",
        failures.len()
    );
}
