//! The `artifactPaths` source: the keys under an artifact location, listed through the storage
//! drivers with the semantics of each of Argo's drivers' `ListObjects`.
//!
//! Argo's drivers do not agree, and a data template's result shows it, so each is followed:
//! - S3 (`s3.go` `ListDirectory`): the prefix is `filepath.Clean(key) + "/"` (the whole bucket
//!   for an empty key), keys ending in `/` (console "folders") are skipped; when nothing is
//!   under it, the key must be an object itself (the result is then Go's nil slice, `null`), else
//!   the step fails with "no key found of name KEY".
//! - GCS (`listByPrefix`): the key is the prefix as is; an object named exactly the key is the
//!   whole result; names ending in `/` are skipped; nothing found is `[]`.
//! - Azure and OSS: the key is the prefix as is; nothing found is `null`.
//!
//! Other kinds (http, git, raw, artifactory, hdfs) cannot list, as in Argo.

use argoexec_storage::{AnyDriver, Driver as _, RetryPolicy, Secrets, StorageOptions};
use argoexec_template::{ArtifactLocation, ArtifactPaths, KeyUnsupported, LocationKind};

/// Why the source could not be listed.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Neither the artifact nor the template's archive location says where to list.
    #[error("template artifact location not set")]
    NoLocation,
    /// The archive location cannot take the artifact's key.
    #[error("relocate the artifact into the template's archive location")]
    Relocate(#[source] KeyUnsupported),
    /// An S3 key with nothing under it that is no object either (Argo's wording).
    #[error("no key found of name {0}")]
    NoKey(String),
    /// The driver could not be set up or the listing failed.
    #[error(transparent)]
    Storage(#[from] argoexec_storage::Error),
}

/// What a listing gives: the keys, or `None` for Go's nil slice (written `null`).
pub type Listing = Option<Vec<String>>;

/// Lists the keys under `paths`' location. A location without a repository of its own is
/// completed from `archive_location` (the template's), as Argo's `Relocate` does. Transient
/// failures are retried under `retry`.
#[tracing::instrument(skip_all)]
pub async fn list_artifact_paths<S: Secrets>(
    paths: &ArtifactPaths,
    archive_location: Option<&ArtifactLocation>,
    secrets: &S,
    options: &StorageOptions,
    retry: &RetryPolicy,
) -> Result<Listing, SourceError> {
    let location = relocate(&paths.artifact.location, archive_location)?;
    let (driver, key) = AnyDriver::for_location(&location, secrets, options).await?;
    let kind = location.kind().ok_or(SourceError::NoLocation)?;
    tracing::info!(driver = driver.name(), key = %key, "Listing the data source");
    retry
        .run("list", |_| list_once(&driver, kind, &key))
        .await
        .map_err(|e| e.into_inner().into())
}

/// The artifact's own location when it is complete, else the archive location with its key.
fn relocate(
    own: &ArtifactLocation,
    archive_location: Option<&ArtifactLocation>,
) -> Result<ArtifactLocation, SourceError> {
    if own.has_location() {
        return Ok(own.clone());
    }
    let base = archive_location
        .filter(|l| l.kind().is_some())
        .ok_or(SourceError::NoLocation)?;
    let mut location = base.clone();
    location
        .set_key(own.key().unwrap_or_default())
        .map_err(SourceError::Relocate)?;
    location.archive_logs = None;
    Ok(location)
}

/// One attempt at the listing, the driver's semantics applied.
async fn list_once(
    driver: &AnyDriver,
    kind: LocationKind,
    key: &str,
) -> Result<Listing, ListError> {
    match kind {
        LocationKind::S3 => {
            let prefix = s3_prefix(key);
            let keys: Vec<String> = driver
                .list(&prefix)
                .await?
                .into_iter()
                .filter(|k| !k.ends_with('/'))
                .collect();
            if !keys.is_empty() {
                return Ok(Some(keys));
            }
            // Argo's KeyExists (a stat): the key may be a single object.
            match driver.get(key).await {
                Ok(_) => Ok(None),
                Err(e) if e.is_not_found() => Err(ListError::NoKey(key.to_owned())),
                Err(e) => Err(e.into()),
            }
        }
        LocationKind::Gcs => {
            let names = driver.list(key).await?;
            if !key.is_empty() && names.iter().any(|n| n == key) {
                return Ok(Some(vec![key.to_owned()]));
            }
            Ok(Some(names))
        }
        _ => {
            let keys = driver.list(key).await?;
            Ok((!keys.is_empty()).then_some(keys))
        }
    }
}

/// S3's directory prefix: Go's `filepath.Clean(key) + "/"`, or the whole bucket.
fn s3_prefix(key: &str) -> String {
    if key.is_empty() {
        return String::new();
    }
    let cleaned = path_clean::clean(key);
    format!("{}/", cleaned.to_string_lossy())
}

/// A failed attempt: retried when the storage error is transient.
#[derive(Debug, thiserror::Error)]
enum ListError {
    #[error("no key found of name {0}")]
    NoKey(String),
    #[error(transparent)]
    Storage(#[from] argoexec_storage::Error),
}

impl argoexec_storage::Retryable for ListError {
    fn is_transient(&self) -> bool {
        match self {
            Self::NoKey(_) => false,
            Self::Storage(e) => e.is_transient(),
        }
    }
}

impl From<ListError> for SourceError {
    fn from(e: ListError) -> Self {
        match e {
            ListError::NoKey(key) => Self::NoKey(key),
            ListError::Storage(e) => Self::Storage(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_prefixes_are_cleaned_directories() {
        assert_eq!(s3_prefix(""), "");
        assert_eq!(s3_prefix("dir"), "dir/");
        assert_eq!(s3_prefix("dir/"), "dir/");
        assert_eq!(s3_prefix("a//b/./c/"), "a/b/c/");
        assert_eq!(s3_prefix("a/b/../c"), "a/c/");
    }

    #[test]
    fn a_key_only_location_takes_the_archive_locations_repository() {
        let own: ArtifactLocation = serde_json_from(r#"{"s3": {"key": "in/dir"}}"#);
        let archive: ArtifactLocation = serde_json_from(
            r#"{"s3": {"bucket": "b", "endpoint": "e:9000", "key": "x"}, "archiveLogs": true}"#,
        );
        let located = relocate(&own, Some(&archive)).unwrap();
        assert_eq!(located.key(), Some("in/dir"));
        assert!(located.archive_logs.is_none());
        assert!(matches!(relocate(&own, None), Err(SourceError::NoLocation)));
    }

    fn serde_json_from(text: &str) -> ArtifactLocation {
        serde_json::from_str(text).unwrap()
    }
}
