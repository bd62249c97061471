//! Argo Workflows' template model, and every source the executor reads a template from.
//!
//! The model (`Template` and everything under it) mirrors Argo's Go types field by field, with
//! Kubernetes types taken from `k8s-openapi`. It is built for fidelity: a template deserialized and
//! serialized again gives the same JSON, so fields this version does not know are kept in each
//! type's `extra` map rather than dropped, and int-or-string values keep the form they were written in.
//!
//! The sources follow the detection order of Argo's executor contract: `ARGO_TEMPLATE` (with the
//! `offloaded` sentinel), then `/var/run/argo/template`, then the downward-API annotations file.
//!
//! Beside the model: the annotation and label names Argo's pods and task results carry
//! (`names`), and which volume mount of the main container a path falls under (`mounts`:
//! [`overlapping_mount`]), the rule init, wait and the emissary share.

mod model;
mod mounts;
mod names;
mod source;

// model re-exports (begin)
pub use model::{
    Amount, AnyString, ArchiveKind, ArchiveStrategy, Arguments, Artifact, ArtifactGC,
    ArtifactLocation, ArtifactPaths, ArtifactRepositoryRef, ArtifactoryArtifact, AzureArtifact,
    Backoff, BasicAuth, Cache, ClientCertAuth, ContainerNode, ContainerSetRetryStrategy,
    ContainerSetTemplate, ContinueOn, Counter, CreateS3BucketOptions, DagTask, DagTemplate, Data,
    DataSource, ExecutorConfig, Gauge, GcsArtifact, GitArtifact, HdfsArtifact, Header, Histogram,
    HttpArtifact, HttpAuth, HttpBodySource, HttpHeader, HttpHeaderSource, HttpTemplate, Inputs,
    Item, K8s, KeyUnsupported, LifecycleHook, LocationKind, ManifestFrom, Memoize, Metadata,
    MetricLabel, Metrics, Mutex, NoneStrategy, OAuth2Auth, OAuth2EndpointParam, OssArtifact,
    OssLifecycleRule, Outputs, ParallelSteps, Parameter, Plugin, PluginArtifact, Prometheus,
    RawArtifact, ResourceTemplate, RetryAffinity, RetryNodeAntiAffinity, RetryStrategy, S3Artifact,
    S3EncryptionOptions, ScriptTemplate, SemaphoreRef, Sequence, SuppliedValueFrom,
    SuspendTemplate, SyncDatabaseRef, Synchronization, TarStrategy, Template, TemplateKind,
    TemplateRef, TransformationStep, UserContainer, ValueFrom, WorkflowStep, ZipStrategy,
};
// model re-exports (end)
pub use mounts::{overlapping_mount, volume_mounts};
pub use names::{
    ANNOTATION_NODE_ID, ANNOTATION_NODE_MESSAGE, ANNOTATION_OUTPUTS, ANNOTATION_PROGRESS,
    EXECUTION_ANNOTATION, LABEL_INSTANCE_ID, LABEL_REPORT_OUTPUTS_COMPLETED, LABEL_WORKFLOW,
    TEMPLATE_ANNOTATION,
};
pub use source::{
    Annotations, AnnotationsError, LoadError, OFFLOADED, Protocol, SourceKind, SourcePaths,
    TemplateSource, UnquoteError, parse_annotations, parse_template, quote_go, unquote_go,
};
