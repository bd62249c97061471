//! Deleting one task's artifacts: each located (its own location, else the node's
//! `archiveLocation` with its key, as Argo's `Relocate` does), opened with its driver, deleted
//! under the storage retry policy, and its result recorded. At most `parallelism` deletions run
//! at once across every task of the pod (one [`Deleter`] per pod).

use argoexec_storage::{AnyDriver, Driver as _, RetryError, RetryPolicy, Secrets, StorageOptions};
use argoexec_template::{Artifact, ArtifactLocation, KeyUnsupported, LocationKind};
use tokio::sync::Semaphore;

use crate::model::{ArtifactResult, GcSpec, GcStatus, NodeResults};

/// Why one artifact was not deleted. Its chain of causes is the `error` of its result.
#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    /// The artifact names no complete location and its node has no `archiveLocation`.
    #[error(
        "artifact {name:?} has no complete location and its node has no archiveLocation to complete it"
    )]
    NoLocation {
        /// The artifact.
        name: String,
    },
    /// The archive location's kind takes no key (http, git, raw).
    #[error("artifact {name:?}: cannot place its key in the node's archiveLocation")]
    Relocate {
        /// The artifact.
        name: String,
        /// Why.
        #[source]
        source: KeyUnsupported,
    },
    /// The artifact is stored by an artifact driver plugin, which this executor does not run.
    #[error(
        "artifact {name:?} is stored by artifact plugin {plugin:?}: argoexec-rs does not run artifact plugins, so it cannot delete it; delete it with the plugin, or use Argo's own executor image for artifact GC"
    )]
    Plugin {
        /// The artifact.
        name: String,
        /// The plugin's name.
        plugin: String,
    },
    /// The driver could not be set up (location, credentials).
    #[error("artifact {name:?}: open its {kind} store")]
    Open {
        /// The artifact.
        name: String,
        /// The location kind.
        kind: &'static str,
        /// Why.
        #[source]
        source: Box<argoexec_storage::Error>,
    },
    /// The delete failed (after retries when the failure was transient).
    #[error("artifact {name:?}: delete {key}")]
    Delete {
        /// The artifact.
        name: String,
        /// Its key.
        key: String,
        /// Why.
        #[source]
        source: Box<RetryError<argoexec_storage::Error>>,
    },
}

/// What deletions run with.
#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Deletions at once, across every task (`ARGOEXEC_ARTIFACT_GC_PARALLELISM`).
    pub parallelism: usize,
    /// The storage retry policy, as for transfers.
    pub retry: RetryPolicy,
    /// Driver settings.
    pub storage: StorageOptions,
}

/// Deletes artifacts with credentials from `S`, a bounded number at once.
#[derive(Debug)]
pub struct Deleter<S> {
    secrets: S,
    options: GcOptions,
    permits: Semaphore,
}

impl<S: Secrets> Deleter<S> {
    /// A deleter reading credentials through `secrets`.
    pub fn new(secrets: S, options: GcOptions) -> Self {
        let permits = Semaphore::new(options.parallelism.max(1));
        Self {
            secrets,
            options,
            permits,
        }
    }

    /// Deletes every artifact of a task's `spec` and returns the task's status: a result for
    /// each artifact, under its node (every node of the spec has an entry, as in Argo's).
    #[tracing::instrument(skip_all, fields(task = task))]
    pub async fn delete_task(&self, task: &str, spec: &GcSpec) -> GcStatus {
        let jobs = spec.artifacts_by_node.iter().flat_map(|(node, artifacts)| {
            let archive = artifacts.archive_location.as_ref();
            artifacts
                .artifacts
                .values()
                .map(move |artifact| self.delete_one(node, archive, artifact))
        });
        let done = futures::future::join_all(jobs).await;
        let mut status = GcStatus::default();
        for node in spec.artifacts_by_node.keys() {
            status
                .artifact_results_by_node
                .insert(node.clone(), NodeResults::default());
        }
        for (node, result) in done {
            if let Some(results) = status.artifact_results_by_node.get_mut(node) {
                results.artifact_results.insert(result.name.clone(), result);
            }
        }
        status
    }

    /// Deletes one artifact once a permit is free; returns its node and result.
    async fn delete_one<'a>(
        &self,
        node: &'a str,
        archive: Option<&ArtifactLocation>,
        artifact: &Artifact,
    ) -> (&'a str, ArtifactResult) {
        // The semaphore is never closed, so acquiring fails never; were it to, the deletion
        // would only run unbounded.
        let _permit = self.permits.acquire().await.ok();
        let name = artifact.name.as_str();
        match self.delete(archive, artifact).await {
            Ok(()) => {
                tracing::info!(node, artifact = name, "Artifact deleted");
                (node, ArtifactResult::deleted(name))
            }
            Err(error) => {
                let message = argoexec_storage::chain(&error);
                tracing::error!(node, artifact = name, error = %message, "Artifact not deleted");
                (node, ArtifactResult::failed(name, message))
            }
        }
    }

    async fn delete(
        &self,
        archive: Option<&ArtifactLocation>,
        artifact: &Artifact,
    ) -> Result<(), DeleteError> {
        let name = &artifact.name;
        let location = relocate(artifact, archive)?;
        if location.kind() == Some(LocationKind::Plugin) {
            let plugin = location
                .plugin
                .as_ref()
                .and_then(|p| p.name.clone())
                .unwrap_or_default();
            return Err(DeleteError::Plugin {
                name: name.clone(),
                plugin,
            });
        }
        let kind = location.kind().map_or("artifact", LocationKind::as_str);
        let (driver, key) =
            AnyDriver::for_location(&location, &self.secrets, &self.options.storage)
                .await
                .map_err(|source| DeleteError::Open {
                    name: name.clone(),
                    kind,
                    source: Box::new(source),
                })?;
        let what = format!("delete {kind} {key}");
        match self.options.retry.run(&what, |_| driver.delete(&key)).await {
            Ok(()) => Ok(()),
            // Gone already is what was asked.
            Err(e) if e.last.is_not_found() => {
                tracing::info!(artifact = %name, %key, "Artifact was already gone");
                Ok(())
            }
            Err(source) => Err(DeleteError::Delete {
                name: name.clone(),
                key,
                source: Box::new(source),
            }),
        }
    }
}

/// The artifact's own location when complete, else `archive` with the artifact's key (Argo's
/// `ArtifactLocation.Relocate`).
fn relocate(
    artifact: &Artifact,
    archive: Option<&ArtifactLocation>,
) -> Result<ArtifactLocation, DeleteError> {
    if artifact.location.has_location() {
        return Ok(artifact.location.clone());
    }
    let no_location = || DeleteError::NoLocation {
        name: artifact.name.clone(),
    };
    let archive = archive
        .filter(|a| a.kind().is_some())
        .ok_or_else(no_location)?;
    let key = artifact.location.key().ok_or_else(no_location)?;
    let mut location = archive.clone();
    location
        .set_key(key)
        .map_err(|source| DeleteError::Relocate {
            name: artifact.name.clone(),
            source,
        })?;
    Ok(location)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use argoexec_storage::MountedSecrets;
    use serde_json::json;

    fn deleter() -> Deleter<MountedSecrets> {
        Deleter::new(
            MountedSecrets::new("/nonexistent"),
            GcOptions {
                parallelism: 2,
                retry: RetryPolicy::none(),
                storage: StorageOptions::default(),
            },
        )
    }

    fn spec(value: serde_json::Value) -> GcSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn a_key_is_placed_in_the_archive_location() {
        let artifact: Artifact =
            serde_json::from_value(json!({"name": "a", "s3": {"key": "wf/a.tgz"}})).unwrap();
        let archive: ArtifactLocation =
            serde_json::from_value(json!({"s3": {"bucket": "b", "endpoint": "e", "key": "x"}}))
                .unwrap();
        let location = relocate(&artifact, Some(&archive)).unwrap();
        let s3 = location.s3.unwrap();
        assert_eq!(s3.key.as_deref(), Some("wf/a.tgz"));
        assert_eq!(s3.bucket.as_deref(), Some("b"));
        let err = relocate(&artifact, None).unwrap_err();
        assert!(err.to_string().contains("no archiveLocation"), "{err}");
    }

    #[tokio::test]
    async fn every_failure_is_reported_under_its_node() {
        let status = deleter()
            .delete_task(
                "t",
                &spec(json!({"artifactsByNode": {
                    "n1": {"artifacts": {
                        "p": {"name": "p", "plugin": {"name": "my-plugin", "key": "k", "configuration": "{}"}},
                        "g": {"name": "g", "git": {"repo": "https://example.com/r.git"}},
                    }},
                    "n2": {"artifacts": {"k": {"name": "k", "s3": {"key": "only-a-key"}}}},
                    "n3": {},
                }})),
            )
            .await;
        let n1 = &status.artifact_results_by_node["n1"].artifact_results;
        let plugin = n1["p"].error.as_deref().unwrap();
        assert!(!n1["p"].success);
        assert!(plugin.contains("artifact plugin \"my-plugin\""), "{plugin}");
        let git = n1["g"].error.as_deref().unwrap();
        assert!(
            git.contains("git artifacts do not support deleting"),
            "{git}"
        );
        let n2 = &status.artifact_results_by_node["n2"].artifact_results;
        assert!(
            n2["k"]
                .error
                .as_deref()
                .unwrap()
                .contains("no archiveLocation")
        );
        assert!(
            status.artifact_results_by_node["n3"]
                .artifact_results
                .is_empty()
        );
    }
}
