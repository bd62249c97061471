//! `Template`, and each kind of work a template can do.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::{
    Affinity, Container, HostAlias, PodResourceClaim, PodSecurityContext, ResourceRequirements,
    SecretKeySelector, Toleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{
    Artifact, ArtifactLocation, ArtifactPaths, DagTemplate, Inputs, K8s, Memoize, Metadata,
    Metrics, Outputs, ParallelSteps, RetryStrategy, Synchronization,
};

/// One Argo template: what a node of a workflow does, and everything the executor reads about it.
///
/// Exactly one of the kind fields is expected to be set (`container`, `containerSet`, `script`,
/// `resource`, `steps`, `dag`, `suspend`, `data`, `http`, `plugin`); see [`Template::kind`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Template {
    /// The template's name; inline templates have none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the template takes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Inputs>,
    /// What the template gives.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outputs: Option<Outputs>,
    /// Node labels the pod must match.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<BTreeMap<String, String>>,
    /// The pod's scheduling constraints.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affinity: Option<K8s<Affinity>>,
    /// Labels and annotations of the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Metadata>,
    /// The template keeps running in the background once ready (steps and tasks move on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub daemon: Option<bool>,
    /// Steps kind: groups run one after another, the steps of a group in parallel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<ParallelSteps>>,
    /// Container kind: the main container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<K8s<Container>>,
    /// Container-set kind: several main containers in one pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container_set: Option<ContainerSetTemplate>,
    /// Script kind: a container running a source text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<ScriptTemplate>,
    /// Resource kind: a Kubernetes resource to act on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<ResourceTemplate>,
    /// DAG kind: tasks and their dependencies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dag: Option<DagTemplate>,
    /// Suspend kind: wait for a resume or a duration.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suspend: Option<SuspendTemplate>,
    /// Data kind: list and transform artifacts, without a user container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Data>,
    /// HTTP kind: one request, run by the agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpTemplate>,
    /// Plugin kind: work done by an executor plugin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plugin: Option<Plugin>,
    /// Volumes of the pod (beside the workflow's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volumes: Option<Vec<K8s<Volume>>>,
    /// Init containers run before the main container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_containers: Option<Vec<UserContainer>>,
    /// Sidecars run beside the main container, killed once it ends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sidecars: Option<Vec<UserContainer>>,
    /// Where outputs without a location (and logs) are stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive_location: Option<ArtifactLocation>,
    /// Seconds the template may run (a number, or a string that can hold an expression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub active_deadline_seconds: Option<IntOrString>,
    /// When and how a failure is retried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_strategy: Option<RetryStrategy>,
    /// How many steps or tasks of this template run at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<i64>,
    /// Stop scheduling children after one fails (steps and DAGs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fail_fast: Option<bool>,
    /// Taints the pod tolerates.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tolerations: Option<Vec<K8s<Toleration>>>,
    /// The pod's scheduler.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduler_name: Option<String>,
    /// The pod's priority class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// The pod's priority (up to v3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// The pod's service account.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Whether the service account token is mounted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automount_service_account_token: Option<bool>,
    /// Settings of the executor's own containers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub executor: Option<ExecutorConfig>,
    /// Extra `/etc/hosts` entries of the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_aliases: Option<Vec<K8s<HostAlias>>>,
    /// The pod's security context.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub security_context: Option<K8s<PodSecurityContext>>,
    /// A strategic merge patch (JSON or YAML text) applied to the pod spec.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_spec_patch: Option<String>,
    /// Metrics emitted for the template.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Metrics>,
    /// Locks held while the template runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synchronization: Option<Synchronization>,
    /// Reuse of earlier outputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memoize: Option<Memoize>,
    /// How long the template may take, pending time included (a Go duration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Annotations added to the template at run time (v4), such as a display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// How long the node may stay pending, counted from its start (a Go duration; enforced by
    /// the controller).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_timeout: Option<String>,
    /// Pod-level resource requirements.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_resources: Option<K8s<ResourceRequirements>>,
    /// Resource claims of the pod (dynamic resource allocation).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_claims: Option<Vec<K8s<PodResourceClaim>>>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The kinds of work a [`Template`] can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TemplateKind {
    /// `container`
    Container,
    /// `containerSet`
    ContainerSet,
    /// `steps`
    Steps,
    /// `dag`
    Dag,
    /// `script`
    Script,
    /// `resource`
    Resource,
    /// `data`
    Data,
    /// `suspend`
    Suspend,
    /// `http`
    Http,
    /// `plugin`
    Plugin,
}

impl TemplateKind {
    /// The field name Argo gives this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Container => "container",
            Self::ContainerSet => "containerSet",
            Self::Steps => "steps",
            Self::Dag => "dag",
            Self::Script => "script",
            Self::Resource => "resource",
            Self::Data => "data",
            Self::Suspend => "suspend",
            Self::Http => "http",
            Self::Plugin => "plugin",
        }
    }
}

impl fmt::Display for TemplateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Template {
    /// The kind of work the template does; when several kinds are set, the first in Argo's order
    /// (container, containerSet, steps, dag, script, resource, data, suspend, http, plugin).
    pub fn kind(&self) -> Option<TemplateKind> {
        let set = [
            (self.container.is_some(), TemplateKind::Container),
            (self.container_set.is_some(), TemplateKind::ContainerSet),
            (self.steps.is_some(), TemplateKind::Steps),
            (self.dag.is_some(), TemplateKind::Dag),
            (self.script.is_some(), TemplateKind::Script),
            (self.resource.is_some(), TemplateKind::Resource),
            (self.data.is_some(), TemplateKind::Data),
            (self.suspend.is_some(), TemplateKind::Suspend),
            (self.http.is_some(), TemplateKind::Http),
            (self.plugin.is_some(), TemplateKind::Plugin),
        ];
        set.into_iter()
            .find_map(|(is_set, kind)| is_set.then_some(kind))
    }

    /// The names of the main containers, which the wait container waits for and saves outputs
    /// of: the containers of a container set, else `["main"]`.
    pub fn main_container_names(&self) -> Vec<&str> {
        match &self.container_set {
            Some(set) => set
                .containers
                .iter()
                .map(|c| c.container.name.as_str())
                .collect(),
            None => vec!["main"],
        }
    }

    /// The input artifacts, empty when there are none.
    pub fn input_artifacts(&self) -> &[Artifact] {
        self.inputs
            .as_ref()
            .and_then(|i| i.artifacts.as_deref())
            .unwrap_or_default()
    }

    /// The output artifacts, empty when there are none.
    pub fn output_artifacts(&self) -> &[Artifact] {
        self.outputs
            .as_ref()
            .and_then(|o| o.artifacts.as_deref())
            .unwrap_or_default()
    }

    /// Whether the main containers' logs are saved (`archiveLocation.archiveLogs`).
    pub fn archive_logs(&self) -> bool {
        self.archive_location
            .as_ref()
            .and_then(|l| l.archive_logs)
            .unwrap_or(false)
    }
}

/// A container that runs a source text: the Kubernetes container plus `source`. The controller
/// appends the staged source's path to the container's `args`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScriptTemplate {
    /// The container (its fields sit beside `source`). It also keeps the fields neither knows.
    #[serde(flatten)]
    pub container: K8s<Container>,
    /// The script's text.
    pub source: String,
}

/// An init container or a sidecar: the Kubernetes container plus `mirrorVolumeMounts`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserContainer {
    /// The container (its fields sit beside `mirrorVolumeMounts`). It also keeps the fields
    /// neither knows.
    #[serde(flatten)]
    pub container: K8s<Container>,
    /// Mount the main container's volumes too, at the same paths.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror_volume_mounts: Option<bool>,
}

/// Several main containers in one pod, started in dependency order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSetTemplate {
    /// The containers.
    pub containers: Vec<ContainerNode>,
    /// Volume mounts added to every container.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_mounts: Option<Vec<K8s<VolumeMount>>>,
    /// How failed containers are retried within the pod.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_strategy: Option<ContainerSetRetryStrategy>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One container of a container set: the Kubernetes container plus `dependencies`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerNode {
    /// The container (its fields sit beside `dependencies`). It also keeps the fields neither
    /// knows.
    #[serde(flatten)]
    pub container: K8s<Container>,
    /// The containers that must succeed before this one starts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dependencies: Option<Vec<String>>,
}

/// How the containers of a container set are retried within the pod.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSetRetryStrategy {
    /// The most retries.
    pub retries: IntOrString,
    /// The delay between retries (a Go duration).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// An action on a Kubernetes resource (`argoexec resource <action>`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceTemplate {
    /// `get`, `create`, `apply`, `delete`, `replace` or `patch`.
    pub action: String,
    /// The patch type for `patch`: `strategic`, `merge` or `json`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merge_strategy: Option<String>,
    /// The manifest (YAML or JSON text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// The manifest, from an artifact.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub manifest_from: Option<ManifestFrom>,
    /// Make the workflow the owner of the resource.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub set_owner_reference: Option<bool>,
    /// Label-selector-like conditions meaning success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    /// Label-selector-like conditions meaning failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_condition: Option<String>,
    /// Extra `kubectl` flags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flags: Option<Vec<String>>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Where a resource template's manifest comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManifestFrom {
    /// The artifact holding the manifest.
    pub artifact: Artifact,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A data template: lists artifacts and transforms the list (`argoexec data`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Data {
    /// Where the data comes from.
    pub source: DataSource,
    /// The transformations applied, in order. Absent or `null` (Go's nil, which Argo's
    /// controller writes as `null`) is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transformation: Option<Vec<TransformationStep>>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The source of a data template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataSource {
    /// The artifacts under a location.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub artifact_paths: Option<ArtifactPaths>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One transformation of a data template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransformationStep {
    /// An expression over the data.
    pub expression: String,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// An HTTP template: one request, made by the agent.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpTemplate {
    /// The method; `GET` when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// The URL.
    pub url: String,
    /// Headers sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Vec<HttpHeader>>,
    /// Seconds before the request times out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
    /// An expression over the response meaning success.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_condition: Option<String>,
    /// The body, as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The body, from elsewhere.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_from: Option<HttpBodySource>,
    /// Skip TLS verification.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub insecure_skip_verify: Option<bool>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A header of an HTTP template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeader {
    /// The header's name.
    pub name: String,
    /// The header's value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// The header's value, from a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_from: Option<HttpHeaderSource>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Where an HTTP header's value comes from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpHeaderSource {
    /// A key of a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<K8s<SecretKeySelector>>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// An HTTP template's body given as bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpBodySource {
    /// The body, base64-encoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<String>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A plugin template: an object with exactly one key, the plugin's name, whose value is the
/// plugin's own configuration. Kept whole, as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Plugin(pub BTreeMap<String, Value>);

impl Plugin {
    /// The plugin's name: the object's key.
    pub fn name(&self) -> Option<&str> {
        self.0.keys().next().map(String::as_str)
    }

    /// The plugin's configuration: the value under its name.
    pub fn config(&self) -> Option<&Value> {
        self.0.values().next()
    }
}

/// A suspend template: waits for a resume, or for `duration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SuspendTemplate {
    /// How long to wait before resuming by itself (seconds, or a Go duration, as text); until
    /// resumed when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Settings of the executor's own containers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutorConfig {
    /// The service account whose token the executor uses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use serde_json::json;

    use super::*;

    fn template(value: Value) -> Template {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn unknown_fields_round_trip_at_every_level() {
        let input = json!({
            "name": "t",
            "fromTheFuture": {"a": [1, 2]},
            "inputs": {"parameters": [{"name": "p", "value": 1, "newKnob": true}], "x": 1},
            "script": {"image": "alpine", "source": "echo", "notAContainerField": "kept"},
            "dag": {"tasks": [{"name": "a", "inline": {"container": {"image": "a"}, "y": 2}}]},
        });
        let t = template(input.clone());
        assert_eq!(t.extra.get("fromTheFuture"), Some(&json!({"a": [1, 2]})));
        assert_eq!(t.inputs.as_ref().unwrap().extra.get("x"), Some(&json!(1)));
        assert_eq!(serde_json::to_value(&t).unwrap(), input);
    }

    #[test]
    fn int_or_string_keeps_its_form() {
        let input = json!({
            "retryStrategy": {"limit": "3", "backoff": {"factor": 2, "duration": "1s"}},
            "activeDeadlineSeconds": 60,
            "steps": [[{"name": "s", "withSequence": {"count": "5", "start": 1}}]],
        });
        let t = template(input.clone());
        let retry = t.retry_strategy.as_ref().unwrap();
        assert_eq!(retry.limit, Some(IntOrString::String("3".into())));
        assert_eq!(
            retry.backoff.as_ref().unwrap().factor,
            Some(IntOrString::Int(2))
        );
        assert_eq!(t.active_deadline_seconds, Some(IntOrString::Int(60)));
        assert_eq!(serde_json::to_value(&t).unwrap(), input);
    }

    #[test]
    fn empty_lists_and_false_are_kept() {
        let input = json!({
            "daemon": false,
            "inputs": {"parameters": [], "artifacts": []},
            "container": {"image": "a", "args": [], "env": []},
            "nodeSelector": {},
        });
        assert_eq!(
            serde_json::to_value(template(input.clone())).unwrap(),
            input
        );
    }

    #[test]
    fn an_explicit_null_reads_as_absent() {
        // As in Argo, whose Go types cannot tell `dependencies: null` from no `dependencies`.
        let t = template(json!({"dag": {"tasks": [{"name": "a", "dependencies": null}]}}));
        assert_eq!(t.dag.unwrap().tasks[0].dependencies, None);
    }

    #[test]
    fn main_container_names() {
        assert_eq!(
            template(json!({"container": {"image": "a"}})).main_container_names(),
            ["main"]
        );
        let set = template(json!({"containerSet": {"containers": [
            {"name": "a", "image": "x"},
            {"name": "b", "image": "x", "dependencies": ["a"]},
        ]}}));
        assert_eq!(set.main_container_names(), ["a", "b"]);
        assert_eq!(set.kind(), Some(TemplateKind::ContainerSet));
        let deps = set.container_set.as_ref().unwrap().containers[1]
            .dependencies
            .as_deref();
        assert_eq!(deps, Some(&["a".to_owned()][..]));
    }

    #[test]
    fn plugin_is_kept_whole() {
        let t = template(json!({"plugin": {"hello": {"text": "hi"}}}));
        let plugin = t.plugin.as_ref().unwrap();
        assert_eq!(plugin.name(), Some("hello"));
        assert_eq!(plugin.config(), Some(&json!({"text": "hi"})));
        assert_eq!(t.kind(), Some(TemplateKind::Plugin));
    }

    /// The path of a wrong type deep inside a template, as `serde_path_to_error` reports it.
    fn error_path(value: Value) -> String {
        let err = serde_path_to_error::deserialize::<_, Template>(&value).unwrap_err();
        format!("{}: {}", err.path(), err.inner())
    }

    #[test]
    fn a_wrong_type_deep_inside_names_its_path() {
        let in_dag = error_path(json!({"dag": {"tasks": [{"name": "a", "arguments": {
            "parameters": [{"name": "p", "valueFrom": {"path": ["not", "a", "string"]}}]
        }}]}}));
        assert!(
            in_dag.starts_with("dag.tasks[0].arguments.parameters[0].valueFrom.path: invalid type"),
            "{in_dag}"
        );

        let in_location = error_path(json!({"inputs": {"artifacts": [
            {"name": "a", "s3": {"insecure": "yes"}}
        ]}}));
        assert!(
            in_location.starts_with("inputs.artifacts[0].s3.insecure: invalid type"),
            "{in_location}"
        );

        // Inside a Kubernetes object the path continues in the message.
        let in_container =
            error_path(json!({"container": {"image": "a", "env": [{"name": "A", "value": 5}]}}));
        assert!(
            in_container.starts_with("container: env[0].value: invalid type"),
            "{in_container}"
        );
    }
}
