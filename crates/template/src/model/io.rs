//! What a template takes and gives: parameters, artifacts and how artifacts are archived.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMapKeySelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    AnyString, ArtifactLocation, ArtifactoryArtifact, AzureArtifact, GcsArtifact, GitArtifact,
    HdfsArtifact, HttpArtifact, K8s, LocationKind, Metadata, OssArtifact, PluginArtifact,
    RawArtifact, S3Artifact,
};

/// A template's inputs: the parameters it is given and the artifacts placed in its containers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Inputs {
    /// Input parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<Parameter>>,
    /// Input artifacts, loaded by the init container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Vec<Artifact>>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A template's outputs, declared in the template and filled in by the wait container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outputs {
    /// Output parameters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<Parameter>>,
    /// Output artifacts, saved by the wait container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Vec<Artifact>>,
    /// The standard output of a script (or container, with `ARGO_INCLUDE_SCRIPT_OUTPUT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// The main container's exit code, as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<String>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The parameters and artifacts a step, task or hook passes to the template it runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Arguments {
    /// Parameters passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Vec<Parameter>>,
    /// Artifacts passed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Vec<Artifact>>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A named string value: an input, an argument, or an output whose value comes from
/// `valueFrom`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Parameter {
    /// The parameter's name, unique within its list.
    pub name: String,
    /// The default when no value is given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<AnyString>,
    /// The value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<AnyString>,
    /// Where the value comes from when it is not given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_from: Option<ValueFrom>,
    /// Export the (output) parameter to the workflow's global scope under this name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub global_name: Option<String>,
    /// The values allowed.
    #[serde(rename = "enum", skip_serializing_if = "Option::is_none")]
    pub enum_values: Option<Vec<AnyString>>,
    /// A description for users.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<AnyString>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl Parameter {
    /// The value as the string Argo uses (see [`AnyString::text`]).
    pub fn value_text(&self) -> Option<Cow<'_, str>> {
        self.value.as_ref().map(AnyString::text)
    }

    /// The default as the string Argo uses: `default`, else `valueFrom.default`.
    pub fn default_text(&self) -> Option<Cow<'_, str>> {
        self.default
            .as_ref()
            .or_else(|| self.value_from.as_ref()?.default.as_ref())
            .map(AnyString::text)
    }

    /// Sets the value to a string, as the executor does for output parameters.
    pub fn set_value(&mut self, value: impl Into<String>) {
        self.value = Some(AnyString::from(value.into()));
    }
}

/// Where a parameter's value comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValueFrom {
    /// A file in the main container, read by the wait container (outputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// A JSONPath into the resource a resource template made (outputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub json_path: Option<String>,
    /// A jq filter over the resource a resource template made (outputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jq_filter: Option<String>,
    /// An expression over the event that triggered the workflow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Another parameter, by reference (`{{steps.x.outputs.parameters.y}}`), for steps and DAGs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
    /// Supplied later, by a user resuming a suspend template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub supplied: Option<SuppliedValueFrom>,
    /// A key of a configmap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<K8s<ConfigMapKeySelector>>,
    /// The value when the source cannot be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default: Option<AnyString>,
    /// An expression over the node's outputs (steps and DAGs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Marks a value supplied later (through the CLI or API); it has no fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SuppliedValueFrom {
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A file or directory placed in, or taken from, a container, and where it is stored.
///
/// In Argo's JSON the location kinds (`s3`, `gcs`, ...) and `archiveLogs` sit beside the other
/// fields; here they are gathered in [`Artifact::location`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "ArtifactJson", into = "ArtifactJson")]
pub struct Artifact {
    /// The artifact's name, unique within its list.
    pub name: String,
    /// The path in the container.
    pub path: Option<String>,
    /// Mode bits applied to the loaded file (inputs); see [`Artifact::mode_bits`].
    ///
    /// An integer in Argo's JSON, but kept as written: YAML parsers disagree on `mode: 0755`
    /// (YAML 1.1, as Argo's CLI reads it, gives octal 493; YAML 1.2 parsers keep the text).
    pub mode: Option<IntOrString>,
    /// Another artifact, by reference (`{{steps.x.outputs.artifacts.y}}`).
    pub from: Option<String>,
    /// An expression giving the artifact to take.
    pub from_expression: Option<String>,
    /// Where the artifact is stored (`archiveLogs` and every location kind).
    pub location: ArtifactLocation,
    /// Export the (output) artifact to the workflow's global scope under this name.
    pub global_name: Option<String>,
    /// How the artifact is archived when saved.
    pub archive: Option<ArchiveStrategy>,
    /// A missing artifact is not an error.
    pub optional: Option<bool>,
    /// A path inside the located artifact to take instead of the whole.
    pub sub_path: Option<String>,
    /// Apply `mode` to every file under a directory too.
    pub recurse_mode: Option<bool>,
    /// How the stored artifact is garbage-collected.
    pub artifact_gc: Option<ArtifactGC>,
    /// Whether the stored artifact has been deleted by garbage collection.
    pub deleted: Option<bool>,
    /// Fields this version does not know, kept so they round-trip.
    pub extra: BTreeMap<String, Value>,
}

impl Artifact {
    /// The location kind set, partial or not (see [`ArtifactLocation::kind`]).
    pub fn location_kind(&self) -> Option<LocationKind> {
        self.location.kind()
    }

    /// Whether the artifact names a complete location (see [`ArtifactLocation::has_location`]).
    pub fn has_location(&self) -> bool {
        self.location.has_location()
    }

    /// How it is archived; `None` when unset (tar+gzip on save, detected on load).
    pub fn archive_kind(&self) -> Option<ArchiveKind> {
        self.archive.as_ref().and_then(ArchiveStrategy::kind)
    }

    /// The mode bits to apply, if any: an integer as is; a string of digits in octal when it starts
    /// with `0` (or `0o`), as YAML 1.1 reads `0755`, else in decimal. `None` for anything else.
    pub fn mode_bits(&self) -> Option<u32> {
        match self.mode.as_ref()? {
            IntOrString::Int(bits) => u32::try_from(*bits).ok(),
            IntOrString::String(text) => {
                let text = text.trim();
                match text.strip_prefix("0o").or_else(|| text.strip_prefix('0')) {
                    Some("") => Some(0),
                    Some(octal) => u32::from_str_radix(octal, 8).ok(),
                    None => text.parse().ok(),
                }
            }
        }
    }

    /// Whether a missing artifact is not an error.
    pub fn is_optional(&self) -> bool {
        self.optional.unwrap_or(false)
    }
}

/// [`Artifact`] as it is written: every field at one level. Going through it (rather than
/// flattening `location`) keeps serde's field paths in error messages exact, and keeps unknown
/// fields in one place, `Artifact::extra`.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactJson {
    // Go reads a missing name as empty (a data template's `artifactPaths` has none).
    #[serde(default)]
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<IntOrString>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from_expression: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    archive_logs: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    s3: Option<S3Artifact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    git: Option<GitArtifact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http: Option<HttpArtifact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    artifactory: Option<ArtifactoryArtifact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hdfs: Option<HdfsArtifact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    raw: Option<RawArtifact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    oss: Option<OssArtifact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gcs: Option<GcsArtifact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    azure: Option<AzureArtifact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    plugin: Option<PluginArtifact>,
    #[serde(skip_serializing_if = "Option::is_none")]
    global_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    archive: Option<ArchiveStrategy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    optional: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recurse_mode: Option<bool>,
    #[serde(rename = "artifactGC", skip_serializing_if = "Option::is_none")]
    artifact_gc: Option<ArtifactGC>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<bool>,
    #[serde(flatten)]
    extra: BTreeMap<String, Value>,
}

impl From<ArtifactJson> for Artifact {
    fn from(json: ArtifactJson) -> Self {
        Self {
            name: json.name,
            path: json.path,
            mode: json.mode,
            from: json.from,
            from_expression: json.from_expression,
            location: ArtifactLocation {
                archive_logs: json.archive_logs,
                s3: json.s3,
                git: json.git,
                http: json.http,
                artifactory: json.artifactory,
                hdfs: json.hdfs,
                raw: json.raw,
                oss: json.oss,
                gcs: json.gcs,
                azure: json.azure,
                plugin: json.plugin,
                extra: BTreeMap::new(),
            },
            global_name: json.global_name,
            archive: json.archive,
            optional: json.optional,
            sub_path: json.sub_path,
            recurse_mode: json.recurse_mode,
            artifact_gc: json.artifact_gc,
            deleted: json.deleted,
            extra: json.extra,
        }
    }
}

impl From<Artifact> for ArtifactJson {
    fn from(artifact: Artifact) -> Self {
        let location = artifact.location;
        let mut extra = artifact.extra;
        // Unknown location fields set by code land beside the artifact's own, as Argo writes them.
        extra.extend(location.extra);
        Self {
            name: artifact.name,
            path: artifact.path,
            mode: artifact.mode,
            from: artifact.from,
            from_expression: artifact.from_expression,
            archive_logs: location.archive_logs,
            s3: location.s3,
            git: location.git,
            http: location.http,
            artifactory: location.artifactory,
            hdfs: location.hdfs,
            raw: location.raw,
            oss: location.oss,
            gcs: location.gcs,
            azure: location.azure,
            plugin: location.plugin,
            global_name: artifact.global_name,
            archive: artifact.archive,
            optional: artifact.optional,
            sub_path: artifact.sub_path,
            recurse_mode: artifact.recurse_mode,
            artifact_gc: artifact.artifact_gc,
            deleted: artifact.deleted,
            extra,
        }
    }
}

/// The artifacts a data template reads: an [`Artifact`] whose key is a prefix.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ArtifactPaths {
    /// The artifact (every field of an artifact, at the same level).
    pub artifact: Artifact,
}

/// How an artifact is archived when saved (and unpacked when loaded): at most one of `tar`,
/// `none`, `zip`. Unset means tar+gzip at the default level.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArchiveStrategy {
    /// A gzipped tarball.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tar: Option<TarStrategy>,
    /// The file or directory as is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub none: Option<NoneStrategy>,
    /// A zip file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zip: Option<ZipStrategy>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The archive formats of an [`ArchiveStrategy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArchiveKind {
    /// `tar`: a gzipped tarball.
    Tar,
    /// `none`: the file or directory as is.
    None,
    /// `zip`: a zip file.
    Zip,
}

impl ArchiveStrategy {
    /// The format chosen, `None` when none is set. When several are, `none` wins over `zip` over
    /// `tar`, as in Argo's executor, which tests them in that order and tars otherwise.
    pub fn kind(&self) -> Option<ArchiveKind> {
        if self.none.is_some() {
            Some(ArchiveKind::None)
        } else if self.zip.is_some() {
            Some(ArchiveKind::Zip)
        } else if self.tar.is_some() {
            Some(ArchiveKind::Tar)
        } else {
            None
        }
    }

    /// The gzip level of a `tar` archive, when set.
    pub fn compression_level(&self) -> Option<i32> {
        self.tar.as_ref()?.compression_level
    }
}

/// Options of a gzipped tarball.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TarStrategy {
    /// The gzip level, 0 (store) to 9; the default level when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression_level: Option<i32>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// No archive: the file or directory is stored as is. It has no fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NoneStrategy {
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A zip archive. It has no fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ZipStrategy {
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// How a stored artifact is garbage-collected.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactGC {
    /// When: `OnWorkflowCompletion`, `OnWorkflowDeletion`, `Never`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    /// Metadata of the pod that deletes the artifact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_metadata: Option<Metadata>,
    /// The service account of the pod that deletes the artifact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Which artifact repository a workflow uses: a key of a configmap.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactRepositoryRef {
    /// The configmap; `artifact-repositories` when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map: Option<String>,
    /// The key in the configmap; the configmap's default-repository annotation when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn artifact_location_fields_sit_beside_the_others() {
        let input = json!({
            "name": "out",
            "path": "/tmp/out",
            "archiveLogs": true,
            "s3": {"key": "k", "createBucketIfNotPresent": {"objectLocking": false}},
            "archive": {"tar": {"compressionLevel": 0}},
            "futureField": [1],
        });
        let artifact: Artifact = serde_json::from_value(input.clone()).unwrap();
        assert_eq!(artifact.location.archive_logs, Some(true));
        assert_eq!(artifact.location_kind(), Some(LocationKind::S3));
        assert!(artifact.location.extra.is_empty());
        assert_eq!(artifact.extra.get("futureField"), Some(&json!([1])));
        assert_eq!(artifact.archive_kind(), Some(ArchiveKind::Tar));
        assert_eq!(
            artifact.archive.as_ref().unwrap().compression_level(),
            Some(0)
        );
        assert_eq!(serde_json::to_value(&artifact).unwrap(), input);
    }

    #[test]
    fn mode_bits_read_yaml_octal_text() {
        let bits = |mode: Value| {
            serde_json::from_value::<Artifact>(json!({"name": "a", "mode": mode}))
                .unwrap()
                .mode_bits()
        };
        assert_eq!(bits(json!(493)), Some(0o755));
        assert_eq!(bits(json!("0755")), Some(0o755));
        assert_eq!(bits(json!("0o644")), Some(0o644));
        assert_eq!(bits(json!("420")), Some(420));
        assert_eq!(bits(json!("0")), Some(0));
        assert_eq!(bits(json!("rwx")), None);
        assert_eq!(bits(json!(-1)), None);
    }

    #[test]
    fn archive_kind() {
        let kind = |v: Value| serde_json::from_value::<ArchiveStrategy>(v).unwrap().kind();
        assert_eq!(kind(json!({})), None);
        assert_eq!(kind(json!({"none": {}})), Some(ArchiveKind::None));
        assert_eq!(kind(json!({"zip": {}})), Some(ArchiveKind::Zip));
        assert_eq!(kind(json!({"tar": {}})), Some(ArchiveKind::Tar));
    }

    #[test]
    fn parameter_accessors() {
        let p: Parameter =
            serde_json::from_value(json!({"name": "n", "value": 3, "enum": [1, "two", true]}))
                .unwrap();
        assert_eq!(p.value_text().as_deref(), Some("3"));
        assert_eq!(p.default_text(), None);
        let texts: Vec<_> = p
            .enum_values
            .iter()
            .flatten()
            .map(AnyString::text)
            .collect();
        assert_eq!(texts, ["1", "two", "true"]);

        let mut out: Parameter =
            serde_json::from_value(json!({"name": "o", "valueFrom": {"path": "/p", "default": 0}}))
                .unwrap();
        assert_eq!(out.default_text().as_deref(), Some("0"));
        out.set_value("hello");
        assert_eq!(serde_json::to_value(&out).unwrap()["value"], json!("hello"));
    }
}
