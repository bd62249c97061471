//! Argo's data templates, as its executor runs them (`argoexec data`, `workflow/data/data.go` and
//! `workflow/executor/executor_data_source_processor.go`).
//!
//! A data template has one source, `artifactPaths` (the keys under an artifact location, listed
//! through the storage drivers: [`list_artifact_paths`]), and a list of transformations, each an
//! expr-lang expression over `data`, the previous value ([`transform`], with the `expr-lang`
//! crate, whose semantics are Go's expr). The value is then written as Go's `json.Marshal` writes
//! it ([`go_json`]): that text is the step's `result` output. [`process`] does all three, with
//! Argo's error wording, so a failed step's message reads as Argo's.
//!
//! Loading the template and reporting the result (a `WorkflowTaskResult`) are the binary's: it
//! reuses wait's reporter.

mod gojson;
mod source;
mod transform;

pub use gojson::{EncodeError, go_json};
pub use source::{Listing, SourceError, list_artifact_paths};
pub use transform::{StepError, listing_value, transform};

use argoexec_storage::{RetryPolicy, Secrets, StorageOptions};
use argoexec_template::{ArtifactLocation, Data};

/// Why a data template failed, worded as Argo's `ProcessData`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The template names no source this version knows.
    #[error("unable to process data source: no valid source is used for data template")]
    NoSource,
    /// Listing the source failed.
    #[error("unable to process data source: unable to source artifact paths")]
    Source(#[source] SourceError),
    /// A transformation step failed.
    #[error("unable to process data transformation")]
    Transformation(#[source] StepError),
    /// The value cannot be written as JSON.
    #[error("encode the result")]
    Encode(#[source] EncodeError),
}

/// Runs a data template: lists its source, applies its transformations, and returns the result
/// as Go's JSON. `archive_location` (the template's) completes a source location that has a key
/// only.
pub async fn process<S: Secrets>(
    data: &Data,
    archive_location: Option<&ArtifactLocation>,
    secrets: &S,
    options: &StorageOptions,
    retry: &RetryPolicy,
) -> Result<String, Error> {
    let paths = data.source.artifact_paths.as_ref().ok_or(Error::NoSource)?;
    let listing = list_artifact_paths(paths, archive_location, secrets, options, retry)
        .await
        .map_err(Error::Source)?;
    let steps = data.transformation.as_deref().unwrap_or_default();
    let value = transform(listing_value(listing), steps).map_err(Error::Transformation)?;
    go_json(&value).map_err(Error::Encode)
}
