//! Output artifacts and the main containers' logs, each into its store: the key resolved once,
//! the bytes streamed (see [`upload`](super::upload)), the stored location recorded on the
//! artifact.

use std::path::{Path, PathBuf};

use argoexec_archive::PackFormat;
use argoexec_runtime::{ContainerRuntime, LogStream};
use argoexec_storage::{Digesting, Driver as _, Secrets, chain};
use argoexec_template::{Artifact, ArtifactLocation, Outputs, Protocol};
use futures::StreamExt as _;

use super::error::{SaveError, UploadError, WaitError};
use super::step::Step;
use super::upload::{Staged, TarFrom, pack_format, upload, upload_tar};
use crate::paths::clean_artifact_path;

/// Saves every output artifact of `outputs`; those not saved are left out of it (outputs never
/// point at objects that were not written).
pub(super) async fn save_artifacts<R: ContainerRuntime, S: Secrets>(
    step: &Step<'_, R, S>,
    outputs: &mut Outputs,
    errors: &mut Vec<WaitError>,
) {
    let Some(artifacts) = outputs.artifacts.take() else {
        return;
    };
    let mut saved = Vec::with_capacity(artifacts.len());
    for mut artifact in artifacts {
        match save_artifact(step, &mut artifact).await {
            Ok(true) => saved.push(artifact),
            // Optional and missing: left out, as Argo does.
            Ok(false) => {}
            Err(err) => {
                tracing::error!(artifact = %artifact.name, error = %chain(&err), "Failed to save artifact");
                errors.push(err);
            }
        }
    }
    outputs.artifacts = Some(saved);
}

/// Saves one output artifact; `Ok(false)` when it is optional and missing.
async fn save_artifact<R: ContainerRuntime, S: Secrets>(
    step: &Step<'_, R, S>,
    artifact: &mut Artifact,
) -> Result<bool, WaitError> {
    let name = artifact.name.clone();
    let fail = |source: SaveError| WaitError::SaveArtifact {
        name: name.clone(),
        source,
    };
    let main = step.main();
    let path = clean_artifact_path(&name, artifact.path.as_deref())?;
    tracing::info!(artifact = %name, %path, "Staging artifact");
    let staged = if step.is_base_image_path(&path) {
        match step.runtime.open_path(main, Path::new(&path)).await {
            Ok(source) => Staged::of(source),
            Err(err) if err.is_not_found() && artifact.is_optional() => {
                tracing::warn!(artifact = %name, %path, "Ignoring optional artifact which does not exist");
                return Ok(false);
            }
            Err(err) => return Err(fail(SaveError::Runtime(err))),
        }
    } else {
        let mounted = step.options.paths.main_fs(&path);
        if tokio::fs::symlink_metadata(&mounted).await.is_err() {
            if artifact.is_optional() {
                tracing::warn!(artifact = %name, %path, "Ignoring optional artifact which does not exist");
                return Ok(false);
            }
            return Err(fail(SaveError::Runtime(
                argoexec_runtime::Error::PathNotFound {
                    container: main.to_owned(),
                    path: PathBuf::from(&path),
                },
            )));
        }
        Staged::Local(mounted)
    };
    let format = pack_format(artifact).map_err(|e| fail(SaveError::Pack(e)))?;
    let file_name = match &format {
        None => Path::new(&path)
            .file_name()
            .map_or_else(|| name.clone(), |n| n.to_string_lossy().into_owned()),
        Some(PackFormat::Zip) => format!("{name}.zip"),
        Some(_) => format!("{name}.tgz"),
    };
    let store = step
        .open_store(&artifact.location, &file_name)
        .await
        .map_err(|e| fail(e.into()))?;
    let (driver, key) = (&store.driver, store.key.as_str());
    let retry = &step.options.retry;
    let uploaded = match staged {
        Staged::Local(local) => upload(driver, key, &local, format.as_ref(), retry).await,
        Staged::Tar(tar) => {
            let from = TarFrom {
                runtime: step.runtime,
                container: main,
                path: Path::new(&path),
            };
            upload_tar(driver, key, from, tar, format, retry).await
        }
    };
    let digest = uploaded.map_err(|e| fail(SaveError::Upload(e)))?;
    match &digest {
        Some(d) => {
            tracing::info!(artifact = %name, key, sha256 = %d.sha256, size = d.size, "Successfully saved artifact")
        }
        None => tracing::info!(artifact = %name, key, "Successfully saved artifact directory"),
    }
    // Argo 3 and 4 report an artifact that had no key of its own by kind and key only.
    let had_key = artifact.location.key().is_some();
    store.record(artifact, digest);
    if step.options.protocol != Protocol::V2 && !had_key {
        reduce_to_key(&mut artifact.location);
    }
    Ok(true)
}

/// Saves the combined output of every main container when the template archives logs; returns
/// the log artifacts saved.
pub(super) async fn save_logs<R: ContainerRuntime, S: Secrets>(
    step: &Step<'_, R, S>,
    errors: &mut Vec<WaitError>,
) -> Vec<Artifact> {
    if !step.template.archive_logs() {
        return Vec::new();
    }
    tracing::info!("Saving logs");
    let mut saved = Vec::new();
    for container in &step.mains {
        let result = async {
            let store = step
                .open_store(&ArtifactLocation::default(), &format!("{container}.log"))
                .await?;
            let digest = step
                .options
                .retry
                .run("save logs", |_| async {
                    let body = step
                        .runtime
                        .logs(container, LogStream::Combined)
                        .await
                        .map_err(UploadError::Runtime)?;
                    let (body, digest) = Digesting::new(body);
                    store.driver.put(&store.key, body.boxed()).await?;
                    Ok(digest.get())
                })
                .await?;
            Ok::<_, SaveError>((store, digest))
        }
        .await;
        match result {
            Ok((store, digest)) => {
                let name = if step.options.protocol == Protocol::V4 {
                    format!("{container}-logs")
                } else {
                    "main-logs".to_owned()
                };
                let mut artifact = Artifact {
                    name,
                    ..Artifact::default()
                };
                store.record(&mut artifact, digest);
                if step.options.protocol != Protocol::V2 {
                    reduce_to_key(&mut artifact.location);
                }
                saved.push(artifact);
            }
            Err(source) => errors.push(WaitError::SaveLogs {
                container: container.clone(),
                source,
            }),
        }
    }
    saved
}

/// Keeps only the location's kind and key (see [`crate::store::key_only`]).
fn reduce_to_key(location: &mut ArtifactLocation) {
    if let Some(reduced) = crate::store::key_only(location) {
        *location = reduced;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{Pod, script};
    use super::*;

    #[test]
    fn an_archive_location_artifact_is_reported_by_kind_and_key_as_argo_3_and_4_do() {
        let mut location: ArtifactLocation = serde_json::from_value(serde_json::json!({
            "s3": {"bucket": "b", "endpoint": "e:9000", "key": "wf/pod/a.tgz",
                "accessKeySecret": {"name": "s", "key": "ak"}}
        }))
        .unwrap();
        reduce_to_key(&mut location);
        assert_eq!(
            serde_json::to_value(&location).unwrap(),
            serde_json::json!({"s3": {"key": "wf/pod/a.tgz"}})
        );
        // Without a key there is nothing to reduce to: left as it is.
        let mut bare = ArtifactLocation::default();
        reduce_to_key(&mut bare);
        assert_eq!(serde_json::to_value(&bare).unwrap(), serde_json::json!({}));
    }

    #[tokio::test]
    async fn no_repository_is_argos_error() {
        let pod = Pod::new("");
        pod.file("/out.txt", "x");
        pod.runtime.exit("main", 0);
        let mut options = pod.options();
        options.local_repository = None;
        let outcome = pod
            .wait(
                script(serde_json::json!({"artifacts": [{"name": "o", "path": "/out.txt"}]})),
                &options,
            )
            .await;
        let message = outcome.report.message.unwrap();
        assert!(
            message.contains("You need to configure artifact storage"),
            "{message}"
        );
    }

    #[tokio::test]
    async fn logs_are_saved_per_main_container_when_archive_logs_is_set() {
        let pod = Pod::new("out\n");
        pod.runtime.exit("main", 0);
        let mut template = script(serde_json::json!({}));
        template["archiveLocation"] = serde_json::json!({"archiveLogs": true});
        let outcome = pod.wait(template, &pod.options()).await;
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        let out = serde_json::to_value(&outcome.report.outputs).unwrap();
        assert_eq!(out["artifacts"][0]["name"], "main-logs");
        assert_eq!(out["artifacts"][0]["local"]["key"], "wf/pod/main.log");
        let log = std::fs::read_to_string(pod.dir.path().join("repo/wf/pod/main.log")).unwrap();
        assert_eq!(log, "out\nand stderr\n");
    }

    #[tokio::test]
    async fn a_transient_failure_to_read_logs_is_retried_a_permanent_one_is_not() {
        let pod = Pod::new("out\n");
        pod.runtime.exit("main", 0);
        let mut options = pod.options();
        // The result would read main's logs first.
        options.include_script_output = false;
        options.retry = argoexec_storage::RetryPolicy {
            initial: std::time::Duration::from_millis(1),
            jitter: 0.0,
            ..argoexec_storage::RetryPolicy::default()
        };
        let mut template = script(serde_json::json!({}));
        template["archiveLocation"] = serde_json::json!({"archiveLogs": true});
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "stream reset");
        pod.runtime
            .fail("logs", argoexec_runtime::Error::io("get logs", reset));
        let outcome = pod.wait(template.clone(), &options).await;
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        let out = serde_json::to_value(&outcome.report.outputs).unwrap();
        assert_eq!(out["artifacts"][0]["local"]["key"], "wf/pod/main.log");

        let pod = Pod::new("out\n");
        pod.runtime.exit("main", 0);
        let gone = argoexec_runtime::Error::RootGone {
            container: "main".into(),
        };
        pod.runtime.fail("logs", gone);
        let outcome = pod.wait(template, &options).await;
        let combined = |c: &String| c == "logs main Combined";
        assert_eq!(
            pod.runtime.calls().iter().filter(|c| combined(c)).count(),
            1
        );
        let message = outcome.report.message.unwrap();
        assert!(message.contains("no longer reachable"), "{message}");
    }
}
