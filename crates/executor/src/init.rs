//! `argoexec init` (contract §4): stage the script or manifest, bootstrap the emissary, load every
//! input artifact into place.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use argoexec_config::RuntimeKind;
use argoexec_storage::{
    Digest, Digesting, Driver as _, RetryError, RetryPolicy, Secrets, StorageOptions, download_dir,
};
use argoexec_template::{Artifact, Protocol, Template, TemplateKind, overlapping_mount};

use crate::paths::{PathError, PodPaths, clean_artifact_path};
use crate::place::{Limits, PlaceError, place};
use crate::store::{self, Defaults, StoreError};

/// Files of a directory artifact downloaded at once.
const DIR_PARALLELISM: usize = 8;

/// Why init failed. Messages are Argo's where Argo has one.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A staged file could not be written.
    #[error("stage {path}")]
    Stage {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A required input has no location.
    #[error("required artifact '{0}' not supplied")]
    NotSupplied(String),
    /// The artifact path is missing or escapes.
    #[error(transparent)]
    Path(#[from] PathError),
    /// A key-only artifact and no archive location to complete it.
    #[error("failed to load artifact '{name}': {reason}")]
    Relocate {
        /// The artifact.
        name: String,
        /// Why.
        reason: String,
    },
    /// No driver for the location, or its credentials could not be read.
    #[error("failed to load artifact '{name}'")]
    Driver {
        /// The artifact.
        name: String,
        /// The failure.
        #[source]
        source: argoexec_storage::Error,
    },
    /// Download or unpack failed (after retries, when the failure was transient).
    #[error("artifact {name} failed to load")]
    Load {
        /// The artifact.
        name: String,
        /// The failure.
        #[source]
        source: RetryError<PlaceError>,
    },
    /// The mode could not be applied.
    #[error("artifact {name}: apply mode")]
    Mode {
        /// The artifact.
        name: String,
        /// The failure.
        #[source]
        source: PlaceError,
    },
}

/// What init needs besides the template.
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// The protocol generation of the pod.
    pub protocol: Protocol,
    /// The runtime `wait` will use.
    pub runtime: RuntimeKind,
    /// The template's JSON text, copied for the emissary.
    pub template_json: String,
    /// This binary, copied for the emissary.
    pub self_exe: PathBuf,
    /// The pod layout.
    pub paths: PodPaths,
    /// The storage retry policy.
    pub retry: RetryPolicy,
    /// Driver settings.
    pub storage: StorageOptions,
    /// Caps on unpacking input archives.
    pub unpack_limits: Limits,
}

/// What init did, for the log.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct InitReport {
    /// Files staged (script, manifest, emissary bootstrap).
    pub staged: Vec<PathBuf>,
    /// Input artifacts loaded, with where they went and, for single objects, the sha256 and size
    /// of the bytes downloaded.
    pub loaded: Vec<(String, PathBuf, Option<Digest>)>,
    /// Optional input artifacts skipped, with why.
    pub skipped: Vec<(String, &'static str)>,
}

/// Runs the whole init sequence.
pub async fn run_init<S: Secrets>(
    template: &Template,
    options: &InitOptions,
    secrets: &S,
) -> Result<InitReport, InitError> {
    let mut report = InitReport::default();
    stage_files(template, options, &mut report).await?;
    for artifact in template.input_artifacts() {
        load_input(template, artifact, options, secrets, &mut report).await?;
    }
    Ok(report)
}

async fn write_file(path: &Path, body: &[u8], mode: u32) -> Result<(), InitError> {
    let stage = |source| InitError::Stage {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await.map_err(stage)?;
    }
    tokio::fs::write(path, body).await.map_err(stage)?;
    // Set the mode explicitly: the umask must not decide it (Argo runs init with umask 0).
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .await
        .map_err(stage)
}

/// Steps 1 and 2: the script or the manifest; for the emissary, this binary and the template.
async fn stage_files(
    template: &Template,
    options: &InitOptions,
    report: &mut InitReport,
) -> Result<(), InitError> {
    let paths = &options.paths;
    match template.kind() {
        Some(TemplateKind::Script) => {
            let source = template.script.as_ref().map_or("", |s| s.source.as_str());
            let mode = if options.protocol == Protocol::V4 {
                0o755
            } else {
                0o644
            };
            let path = paths.script();
            tracing::info!(path = %path.display(), "Loading script source");
            write_file(&path, source.as_bytes(), mode).await?;
            report.staged.push(path);
        }
        Some(TemplateKind::Resource) => {
            let resource = template.resource.as_ref();
            if let Some(manifest) = resource
                .filter(|r| r.manifest_from.is_none())
                .and_then(|r| r.manifest.as_deref())
            {
                let path = paths.manifest();
                tracing::info!(path = %path.display(), "Loading manifest");
                write_file(&path, manifest.as_bytes(), 0o644).await?;
                report.staged.push(path);
            }
        }
        _ => {}
    }
    if options.runtime == RuntimeKind::Emissary {
        let dir = paths.var_run_argo();
        let exe = dir.join("argoexec");
        let bytes =
            tokio::fs::read(&options.self_exe)
                .await
                .map_err(|source| InitError::Stage {
                    path: options.self_exe.clone(),
                    source,
                })?;
        write_file(&exe, &bytes, 0o555).await?;
        let template_path = dir.join("template");
        write_file(&template_path, options.template_json.as_bytes(), 0o444).await?;
        report.staged.extend([exe, template_path]);
    }
    Ok(())
}

/// Step 3 for one artifact.
async fn load_input<S: Secrets>(
    template: &Template,
    artifact: &Artifact,
    options: &InitOptions,
    secrets: &S,
    report: &mut InitReport,
) -> Result<(), InitError> {
    let name = artifact.name.clone();
    tracing::info!(artifact = %name, "Downloading artifact");
    let location = &artifact.location;
    if !location.has_location() && location.key().is_none() {
        if artifact.is_optional() {
            tracing::warn!(artifact = %name, "Ignoring optional artifact which was not supplied");
            report.skipped.push((name, "not supplied"));
            return Ok(());
        }
        return Err(InitError::NotSupplied(name));
    }
    let path = clean_artifact_path(&name, artifact.path.as_deref())?;
    // A key-only artifact is completed from the template's archive location; inputs never come
    // from the local repository.
    let defaults = Defaults::new(template, None);
    let store = store::open(location, None, defaults, secrets, &options.storage)
        .await
        .map_err(|e| match e {
            StoreError::NoRepository => InitError::Relocate {
                name: name.clone(),
                reason: "template artifact location not set".into(),
            },
            StoreError::Location(e) => InitError::Relocate {
                name: name.clone(),
                reason: e.to_string(),
            },
            StoreError::Driver(source) => InitError::Driver {
                name: name.clone(),
                source,
            },
        })?;
    let (driver, key) = (&store.driver, store.key.as_str());
    let dest = match overlapping_mount(template, &path) {
        Some(mount) => {
            tracing::info!(
                path = %path, mount = %mount.mount_path,
                "Specified artifact path overlaps with volume mount. Extracting to volume mount"
            );
            options.paths.main_fs(&path)
        }
        None => options.paths.input_artifacts().join(&name),
    };
    // Each attempt starts afresh: place(), download_dir() and checkout() leave nothing behind on
    // failure.
    let result = options
        .retry
        .run("load artifact", |_| async {
            // A git location is a working tree, checked out whole; there is nothing to unpack
            // (Argo's auto-detection never finds a tarball in a directory).
            if driver.is_checkout() {
                driver.checkout(&dest).await?;
                return Ok::<_, PlaceError>(None);
            }
            // A key with objects under it is a directory (s3, gcs, azure, oss); drivers that
            // have no directories answer no.
            if !key.is_empty() && driver.is_dir(key).await? {
                download_dir(driver, key, &dest, DIR_PARALLELISM).await?;
                return Ok::<_, PlaceError>(None);
            }
            let stream = driver.get(key).await?;
            let (stream, digest) = Digesting::new(stream);
            let stats = place(
                Box::pin(stream),
                &dest,
                artifact.archive_kind(),
                options.unpack_limits.clone(),
            )
            .await?;
            tracing::debug!(
                artifact = %name, kind = ?stats.kind, entries = stats.entries,
                bytes_out = stats.bytes_out, "Placed artifact"
            );
            Ok(digest.get())
        })
        .await;
    let digest = match result {
        Ok(digest) => digest,
        Err(err) if artifact.is_optional() && err.last.is_not_found() => {
            tracing::info!(artifact = %name, "Skipping optional input artifact that was not found");
            report.skipped.push((name, "not found"));
            return Ok(());
        }
        Err(source) => return Err(InitError::Load { name, source }),
    };
    if let Some(mode) = artifact.mode_bits() {
        crate::place::apply_mode(&dest, mode, artifact.recurse_mode.unwrap_or(false))
            .await
            .map_err(|source| InitError::Mode {
                name: name.clone(),
                source,
            })?;
    }
    match &digest {
        Some(d) => tracing::info!(
            artifact = %name, path = %dest.display(), digest = %d.sha256, size = d.size,
            "Successfully downloaded artifact"
        ),
        None => {
            tracing::info!(artifact = %name, path = %dest.display(), "Successfully downloaded artifact")
        }
    }
    report.loaded.push((name, dest, digest));
    Ok(())
}
