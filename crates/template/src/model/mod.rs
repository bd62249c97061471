//! Argo's template model: `Template` and every type under it, field by field as in Argo's Go
//! types (tags v2.3.0, v3.3.8, v4.1.2: the union of their fields), Kubernetes types from
//! `k8s-openapi`.
//!
//! Built for round-trip fidelity, because the init container hands the template on to the other
//! containers and the wait container reports outputs built from it:
//! - optional fields are `Option`s written only when set, so `[]`, `{}` and `false` come back;
//! - every Argo struct keeps the fields it does not know in `extra`;
//! - values Argo accepts in several JSON forms keep theirs ([`AnyString`], [`Item`],
//!   `IntOrString`);
//! - Kubernetes values are wrapped in [`K8s`], which papers over the ways `k8s-openapi` does not
//!   round-trip (unknown fields, numeric quantities, defaulted required fields).
//!
//! One thing does not come back: an explicit `null` on an Argo field reads as an absent field,
//! exactly as in Argo's Go types.
//!
//! Modules: `template` (the template and its kinds), `io` (inputs, outputs, parameters,
//! artifacts, archiving), `location` (artifact storage), `workflow` (steps and DAGs), `policy`
//! (retries, locks, metrics), `common` (multi-form values, metadata), `k8s` (the wrapper).

mod common;
mod io;
mod k8s;
mod location;
mod policy;
mod template;
mod workflow;

pub use common::{Amount, AnyString, Item, Metadata};
pub use io::{
    ArchiveKind, ArchiveStrategy, Arguments, Artifact, ArtifactGC, ArtifactPaths,
    ArtifactRepositoryRef, Inputs, NoneStrategy, Outputs, Parameter, SuppliedValueFrom,
    TarStrategy, ValueFrom, ZipStrategy,
};
pub use k8s::K8s;
pub use location::{
    ArtifactLocation, ArtifactoryArtifact, AzureArtifact, BasicAuth, ClientCertAuth,
    CreateS3BucketOptions, GcsArtifact, GitArtifact, HdfsArtifact, Header, HttpArtifact, HttpAuth,
    KeyUnsupported, LocationKind, OAuth2Auth, OAuth2EndpointParam, OssArtifact, OssLifecycleRule,
    PluginArtifact, RawArtifact, S3Artifact, S3EncryptionOptions,
};
pub use policy::{
    Backoff, Cache, Counter, Gauge, Histogram, Memoize, MetricLabel, Metrics, Mutex, Prometheus,
    RetryAffinity, RetryNodeAntiAffinity, RetryStrategy, SemaphoreRef, SyncDatabaseRef,
    Synchronization,
};
pub use template::{
    ContainerNode, ContainerSetRetryStrategy, ContainerSetTemplate, Data, DataSource,
    ExecutorConfig, HttpBodySource, HttpHeader, HttpHeaderSource, HttpTemplate, ManifestFrom,
    Plugin, ResourceTemplate, ScriptTemplate, SuspendTemplate, Template, TemplateKind,
    TransformationStep, UserContainer,
};
pub use workflow::{
    ContinueOn, DagTask, DagTemplate, LifecycleHook, ParallelSteps, Sequence, TemplateRef,
    WorkflowStep,
};
