//! How the controller runs a template: retries, memoization, locks and metrics. The executor
//! carries these through untouched.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMapKeySelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Amount, K8s};

/// When and how a failed template is retried.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryStrategy {
    /// The most retries, as a number or an expression string.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limit: Option<IntOrString>,
    /// `Always`, `OnFailure`, `OnError`, `OnTransientError`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_policy: Option<String>,
    /// The delay between retries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    /// Where retries are scheduled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub affinity: Option<RetryAffinity>,
    /// An expression deciding whether to retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expression: Option<String>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// The delay between retries: `duration * factor^n`, at most `cap`, until `maxDuration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Backoff {
    /// The first delay (seconds, or a Go duration such as `2m`, as text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// The growth factor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub factor: Option<IntOrString>,
    /// How long after the first attempt retrying stops.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_duration: Option<String>,
    /// The longest delay.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cap: Option<String>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Where retries are scheduled.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryAffinity {
    /// Keep retries off the nodes earlier attempts ran on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_anti_affinity: Option<RetryNodeAntiAffinity>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Anti-affinity to the nodes of earlier attempts; it has no fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RetryNodeAntiAffinity {
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Reuse of a template's earlier outputs, cached in a configmap.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Memoize {
    /// The cache key.
    pub key: String,
    /// Where the cache lives.
    pub cache: Cache,
    /// How old an entry may be (a Go duration).
    pub max_age: String,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A memoization cache.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cache {
    /// The configmap holding it (v3 takes a key selector, v4 only a name).
    pub config_map: K8s<ConfigMapKeySelector>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Locks a template holds while it runs: semaphores and mutexes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Synchronization {
    /// One semaphore (up to v3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub semaphore: Option<SemaphoreRef>,
    /// One mutex (up to v3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mutex: Option<Mutex>,
    /// Semaphores (v4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub semaphores: Option<Vec<SemaphoreRef>>,
    /// Mutexes (v4).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mutexes: Option<Vec<Mutex>>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A named mutex.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Mutex {
    /// The mutex's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The namespace it lives in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Held in the controller's database rather than in memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<bool>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A semaphore, sized by a configmap key or a database entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SemaphoreRef {
    /// The configmap key holding the size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<K8s<ConfigMapKeySelector>>,
    /// The namespace of the configmap.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The database entry holding the size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<SyncDatabaseRef>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A semaphore kept in the controller's database.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SyncDatabaseRef {
    /// The semaphore's key.
    pub key: String,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Prometheus metrics the controller emits for the template.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metrics {
    /// The metrics.
    pub prometheus: Vec<Prometheus>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// One Prometheus metric: a gauge, a histogram or a counter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prometheus {
    /// The metric's name.
    pub name: String,
    /// Labels attached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<MetricLabel>>,
    /// The help text.
    pub help: String,
    /// An expression deciding whether to emit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
    /// A gauge.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gauge: Option<Gauge>,
    /// A histogram.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub histogram: Option<Histogram>,
    /// A counter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counter: Option<Counter>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A metric label.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricLabel {
    /// The label's name.
    pub key: String,
    /// The label's value.
    pub value: String,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A gauge metric.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Gauge {
    /// The value (an expression).
    pub value: String,
    /// Updated while the template runs, not only at its end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub realtime: Option<bool>,
    /// How `value` is applied to the gauge's current value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A histogram metric.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Histogram {
    /// The value observed (an expression).
    pub value: String,
    /// The bucket bounds.
    pub buckets: Vec<Amount>,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// A counter metric.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Counter {
    /// The increment (an expression).
    pub value: String,
    /// Fields this version does not know, kept so they round-trip.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}
