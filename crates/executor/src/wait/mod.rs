//! `argoexec wait` (contract §5): wait for the main containers, then save the script result, the
//! logs, the output parameters and the output artifacts, report them, and kill the sidecars. Every
//! step runs even when an earlier one failed; the first error is the step's.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use argoexec_archive::PackFormat;
use argoexec_runtime::{ContainerRuntime, KillOutcome, LogStream, PathSource};
use argoexec_storage::{
    AnyDriver, ByteStream, Digest, Digesting, Driver, LocalStore, RetryError, RetryPolicy,
    Retryable, Secrets, StorageOptions, chain, upload_dir,
};
use argoexec_template::{
    ArchiveKind, Artifact, ArtifactLocation, Outputs, Protocol, Template, TemplateKind,
};
use futures::StreamExt as _;

use crate::paths::{PathError, PodPaths, clean_artifact_path, overlapping_mount};
use crate::report::{Reporter, StepReport};

/// The most bytes `outputs.result` may hold: Argo's annotation-size limit. Argo keeps the last
/// 256 KiB silently; we refuse and say so.
pub const MAX_RESULT_BYTES: usize = 256 * 1024;

/// Files of a directory artifact uploaded at once.
const DIR_PARALLELISM: usize = 8;

/// Argo's message when an output has nowhere to go.
const NO_REPOSITORY: &str = "You need to configure artifact storage. More information on how to do this can be found in the docs: https://argo-workflows.readthedocs.io/en/latest/configure-artifact-repository/";

/// What wait needs besides the template, the runtime and the reporter.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// The protocol generation of the pod.
    pub protocol: Protocol,
    /// The pod layout (`/mainctrfs`).
    pub paths: PodPaths,
    /// When the step must be over (`ARGO_DEADLINE`).
    pub deadline: Option<SystemTime>,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// `ARGO_INCLUDE_SCRIPT_OUTPUT`.
    pub include_script_output: bool,
    /// The storage retry policy.
    pub retry: RetryPolicy,
    /// Driver settings.
    pub storage: StorageOptions,
    /// The name of the container wait runs in (never killed as a sidecar).
    pub self_container: String,
    /// A directory used as the artifact repository when the template has none
    /// (`ARGOEXEC_LOCAL_REPOSITORY`, set by `argoexec run`).
    pub local_repository: Option<PathBuf>,
    /// The key prefix in the local repository (`<workflow>/<pod>`, as Argo's default key format).
    pub local_key_prefix: String,
    /// The progress file (`ARGO_PROGRESS_FILE`), read once for the report.
    pub progress_file: Option<PathBuf>,
}

/// One failure of the wait sequence. The messages are Argo's where Argo has one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// The deadline passed while main was running.
    #[error("Step exceeded its deadline")]
    Deadline,
    /// Wait was asked to stop (SIGTERM) while main was running.
    #[error("Step terminated")]
    Terminated,
    /// Waiting for a main container failed.
    #[error("failed to wait for main container to complete")]
    WaitMain(#[source] argoexec_runtime::Error),
    /// The script result could not be read.
    #[error("failed to capture script result")]
    CaptureResult(#[source] argoexec_runtime::Error),
    /// The script result is over the limit; it was not truncated.
    #[error(
        "the script result is {size} bytes, over the {limit}-byte limit of outputs.result; it was not saved (Argo would have kept only its end): write large output to a file and declare it an output artifact"
    )]
    ResultTooLarge {
        /// Bytes of stdout, one trailing newline stripped.
        size: u64,
        /// The limit.
        limit: usize,
    },
    /// Reading the result stream failed.
    #[error("failed to capture script result")]
    ReadResult(#[source] std::io::Error),
    /// A container's logs could not be saved.
    #[error("failed to save logs of container {container}")]
    SaveLogs {
        /// The container.
        container: String,
        /// The cause.
        #[source]
        source: SaveError,
    },
    /// An output parameter could not be read and has no default.
    #[error("failed to save output parameter '{name}' from {path}")]
    SaveParameter {
        /// The parameter.
        name: String,
        /// Its `valueFrom.path`.
        path: String,
        /// The cause.
        #[source]
        source: argoexec_runtime::Error,
    },
    /// An output artifact's path is missing or escapes.
    #[error(transparent)]
    ArtifactPath(#[from] PathError),
    /// An output artifact could not be saved.
    #[error("failed to save artifact '{name}'")]
    SaveArtifact {
        /// The artifact.
        name: String,
        /// The cause.
        #[source]
        source: SaveError,
    },
    /// The outputs could not be reported.
    #[error("failed to report outputs")]
    Report(#[source] crate::report::ReportError),
}

/// Why one output could not be stored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SaveError {
    /// There is no artifact repository to put it in.
    #[error("{NO_REPOSITORY}")]
    NoRepository,
    /// The repository's location cannot take a key.
    #[error("the archive location cannot hold the output: {0}")]
    Location(String),
    /// The source path is not in the container.
    #[error(transparent)]
    Runtime(#[from] argoexec_runtime::Error),
    /// The archive strategy is invalid (e.g. a compression level gzip does not know).
    #[error(transparent)]
    Pack(argoexec_archive::Error),
    /// The driver could not be set up (location, credentials).
    #[error(transparent)]
    Driver(argoexec_storage::Error),
    /// The transfer failed, after retries when the failure was transient.
    #[error(transparent)]
    Upload(#[from] RetryError<UploadError>),
}

/// One failed upload attempt.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The storage side failed.
    #[error(transparent)]
    Storage(#[from] argoexec_storage::Error),
    /// Packing the source failed.
    #[error(transparent)]
    Pack(argoexec_archive::Error),
}

impl Retryable for UploadError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Storage(e) => e.is_transient(),
            Self::Pack(_) => false,
        }
    }
}

/// What the wait sequence did: the report it delivered (or tried to), the status of the main
/// containers, and every error in order (the first is the step's).
#[derive(Debug, Default)]
pub struct WaitOutcome {
    /// The outputs as reported.
    pub report: StepReport,
    /// Every failure, in the order it happened.
    pub errors: Vec<WaitError>,
}

/// The repository outputs go to.
#[derive(Debug, Clone)]
enum Store {
    /// A location of the template (`archiveLocation` or the artifact's own).
    Location(Box<ArtifactLocation>),
    /// The local directory repository of `argoexec run`.
    Local(PathBuf),
}

/// A driver for either kind of store.
#[derive(Debug)]
enum StoreDriver {
    Any(AnyDriver),
    Local(LocalStore),
}

impl Driver for StoreDriver {
    fn name(&self) -> &'static str {
        match self {
            Self::Any(d) => d.name(),
            Self::Local(d) => d.name(),
        }
    }

    async fn get(&self, key: &str) -> Result<ByteStream, argoexec_storage::Error> {
        match self {
            Self::Any(d) => d.get(key).await,
            Self::Local(d) => d.get(key).await,
        }
    }

    async fn put(&self, key: &str, body: ByteStream) -> Result<(), argoexec_storage::Error> {
        match self {
            Self::Any(d) => d.put(key, body).await,
            Self::Local(d) => d.put(key, body).await,
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, argoexec_storage::Error> {
        match self {
            Self::Any(d) => d.list(prefix).await,
            Self::Local(d) => d.list(prefix).await,
        }
    }
}

/// Why wait is asked to stop main before main exits by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM, or v2's execution control asking to stop now: "Step terminated".
    Terminated,
    /// A deadline learnt after start-up passed (v2: the execution annotation changed):
    /// "Step exceeded its deadline", as for the deadline in [`WaitOptions`].
    DeadlineExceeded,
}

/// Runs the wait sequence. `terminate` resolves when wait is asked to stop, and says why.
pub async fn run_wait<R, P, S>(
    template: &Template,
    options: &WaitOptions,
    runtime: &R,
    reporter: &P,
    secrets: &S,
    terminate: impl Future<Output = Stop> + Send,
) -> WaitOutcome
where
    R: ContainerRuntime,
    P: Reporter,
    S: Secrets,
{
    let mains: Vec<String> = template
        .main_container_names()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut errors = Vec::new();
    let mut outputs = template.outputs.clone().unwrap_or_default();

    if let Err(err) = wait_for_mains(&mains, options, runtime, terminate).await {
        tracing::error!(error = %err, "Main did not complete");
        errors.push(err);
    }
    let main = mains.first().map_or("main", String::as_str);
    if options.include_script_output && has_output(template) {
        match capture_result(runtime, main).await {
            Ok(result) => outputs.result = Some(result),
            Err(err) => errors.push(err),
        }
    }
    let log_artifacts = save_logs(template, options, runtime, secrets, &mains, &mut errors).await;
    save_parameters(template, options, runtime, main, &mut outputs, &mut errors).await;
    save_artifacts(
        template,
        options,
        runtime,
        secrets,
        main,
        &mut outputs,
        &mut errors,
    )
    .await;
    if !log_artifacts.is_empty() {
        outputs
            .artifacts
            .get_or_insert_default()
            .extend(log_artifacts);
    }

    let report = StepReport {
        outputs,
        message: errors.first().map(|e| chain(e)),
        progress: read_progress(options.progress_file.as_deref()).await,
    };
    if let Err(err) = reporter.report(&report).await {
        tracing::error!(error = %chain(&err), "Failed to report outputs");
        errors.push(WaitError::Report(err));
    }
    kill_sidecars(runtime, options, &mains).await;
    WaitOutcome { report, errors }
}

async fn wait_for_mains<R: ContainerRuntime>(
    mains: &[String],
    options: &WaitOptions,
    runtime: &R,
    terminate: impl Future<Output = Stop> + Send,
) -> Result<(), WaitError> {
    tracing::info!(containers = ?mains, "Waiting for main containers to complete");
    let all_exited = futures::future::try_join_all(mains.iter().map(|name| async move {
        runtime.wait_started(name).await?;
        let status = runtime.wait_exited(name).await?;
        tracing::info!(container = %name, exit_code = ?status.code, "Main container completed");
        Ok::<_, argoexec_runtime::Error>(())
    }));
    let deadline = async {
        match options.deadline {
            Some(at) => {
                let left = at.duration_since(SystemTime::now()).unwrap_or_default();
                tokio::time::sleep(left).await;
            }
            None => std::future::pending().await,
        }
    };
    let stop = tokio::select! {
        result = all_exited => return result.map(|_| ()).map_err(WaitError::WaitMain),
        () = deadline => WaitError::Deadline,
        stop = terminate => match stop {
            Stop::Terminated => WaitError::Terminated,
            Stop::DeadlineExceeded => WaitError::Deadline,
        },
    };
    tracing::warn!(reason = %stop, "Killing main containers");
    kill_all(runtime, mains, options.grace).await;
    Err(stop)
}

async fn kill_all<R: ContainerRuntime>(runtime: &R, names: &[String], grace: Duration) {
    futures::future::join_all(names.iter().map(|name| async move {
        match runtime.kill(name, grace).await {
            Ok(KillOutcome::Killed) => {
                tracing::warn!(container = %name, ?grace, "Container outlived its grace: killed");
            }
            Ok(outcome) => tracing::info!(container = %name, ?outcome, "Container stopped"),
            Err(err) => {
                tracing::warn!(container = %name, error = %chain(&err), "Failed to kill container");
            }
        }
    }))
    .await;
}

async fn kill_sidecars<R: ContainerRuntime>(runtime: &R, options: &WaitOptions, mains: &[String]) {
    let sidecars: Vec<String> = match runtime.containers().await {
        Ok(all) => all
            .into_iter()
            .filter(|c| *c != options.self_container && !mains.contains(c))
            .collect(),
        Err(err) => {
            tracing::warn!(error = %chain(&err), "Failed to list containers: no sidecar killed");
            return;
        }
    };
    if sidecars.is_empty() {
        return;
    }
    tracing::info!(containers = ?sidecars, "Killing sidecars");
    kill_all(runtime, &sidecars, options.grace).await;
}

async fn capture_result<R: ContainerRuntime>(runtime: &R, main: &str) -> Result<String, WaitError> {
    tracing::info!("Capturing script output");
    let mut stream = runtime
        .logs(main, LogStream::Stdout)
        .await
        .map_err(WaitError::CaptureResult)?;
    // Keep at most the limit plus a newline; count the rest, so the error can say how big it was.
    let mut kept = Vec::new();
    let mut size: u64 = 0;
    let mut last = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(WaitError::ReadResult)?;
        size += chunk.len() as u64;
        last = chunk.last().copied().or(last);
        let room = (MAX_RESULT_BYTES + 1).saturating_sub(kept.len());
        kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
    }
    if last == Some(b'\n') {
        size -= 1;
        if kept.len() as u64 > size {
            kept.pop();
        }
    }
    if size > MAX_RESULT_BYTES as u64 {
        return Err(WaitError::ResultTooLarge {
            size,
            limit: MAX_RESULT_BYTES,
        });
    }
    Ok(String::from_utf8_lossy(&kept).into_owned())
}

/// Whether the template runs a container whose stdout can be a result (Argo's `HasOutput`).
fn has_output(template: &Template) -> bool {
    matches!(
        template.kind(),
        Some(
            TemplateKind::Container
                | TemplateKind::ContainerSet
                | TemplateKind::Script
                | TemplateKind::Data
        )
    )
}

/// Whether a path is in main's image rather than on a volume wait can read (Argo's
/// `isBaseImagePath`): not under a volume mount, not under an input artifact.
fn is_base_image_path(template: &Template, path: &str) -> bool {
    if overlapping_mount(template, path).is_some() {
        return false;
    }
    !template.input_artifacts().iter().any(|a| {
        a.path.as_deref().is_some_and(|p| {
            let p = p.trim_end_matches('/');
            path == p || path.starts_with(&format!("{p}/"))
        })
    })
}

async fn read_param<R: ContainerRuntime>(
    template: &Template,
    options: &WaitOptions,
    runtime: &R,
    main: &str,
    path: &str,
) -> Result<Vec<u8>, argoexec_runtime::Error> {
    if is_base_image_path(template, path) {
        tracing::info!(path, "Copying output parameter from base image layer");
        runtime.read_file(main, Path::new(path)).await
    } else {
        let mounted = options.paths.main_fs(path);
        tracing::info!(path, mounted = %mounted.display(), "Copying output parameter from volume mount");
        tokio::fs::read(&mounted)
            .await
            .map_err(|e| argoexec_runtime::Error::io(format!("read {}", mounted.display()), e))
    }
}

async fn save_parameters<R: ContainerRuntime>(
    template: &Template,
    options: &WaitOptions,
    runtime: &R,
    main: &str,
    outputs: &mut Outputs,
    errors: &mut Vec<WaitError>,
) {
    let Some(params) = outputs.parameters.as_mut() else {
        return;
    };
    for param in params.iter_mut() {
        let Some(path) = param.value_from.as_ref().and_then(|v| v.path.clone()) else {
            continue;
        };
        tracing::info!(parameter = %param.name, "Saving path output parameter");
        let value = match read_param(template, options, runtime, main, &path).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(err) => match param.value_from.as_ref().and_then(|v| v.default.as_ref()) {
                Some(default) => {
                    tracing::info!(parameter = %param.name, error = %chain(&err), "Using the default value");
                    default.to_string()
                }
                None => {
                    errors.push(WaitError::SaveParameter {
                        name: param.name.clone(),
                        path,
                        source: err,
                    });
                    continue;
                }
            },
        };
        // One trailing newline off, for the user's convenience, as Argo does.
        let value = value.strip_suffix('\n').unwrap_or(&value);
        param.set_value(value);
        tracing::info!(parameter = %param.name, "Successfully saved output parameter");
    }
}

/// The store outputs go to when an artifact has no key of its own.
fn default_store(template: &Template, options: &WaitOptions) -> Option<Store> {
    match &template.archive_location {
        Some(loc) if loc.kind().is_some() => Some(Store::Location(Box::new(loc.clone()))),
        _ => options.local_repository.clone().map(Store::Local),
    }
}

/// Completes an output's location: its own when it has a key, else the default store with the
/// key `<archive key>/<file name>`.
fn resolve_store(
    template: &Template,
    options: &WaitOptions,
    own: &ArtifactLocation,
    file_name: &str,
) -> Result<(Store, String), SaveError> {
    if own.has_location() {
        let key = own.key().unwrap_or_default().to_owned();
        return Ok((Store::Location(Box::new(own.clone())), key));
    }
    // A key and no repository: the key goes into the default repository, as for inputs.
    if let Some(own_key) = own.key().filter(|k| !k.is_empty()) {
        return match default_store(template, options).ok_or(SaveError::NoRepository)? {
            Store::Location(mut loc) => {
                loc.set_key(own_key)
                    .map_err(|e| SaveError::Location(e.to_string()))?;
                loc.archive_logs = None;
                Ok((Store::Location(loc), own_key.to_owned()))
            }
            Store::Local(dir) => Ok((Store::Local(dir), own_key.to_owned())),
        };
    }
    match default_store(template, options).ok_or(SaveError::NoRepository)? {
        Store::Location(mut loc) => {
            let base = loc
                .key()
                .unwrap_or_default()
                .trim_end_matches('/')
                .to_owned();
            let key = join_key(&base, file_name);
            loc.set_key(key.clone())
                .map_err(|e| SaveError::Location(e.to_string()))?;
            // The logs flag belongs to the archive location, not to an artifact.
            loc.archive_logs = None;
            Ok((Store::Location(loc), key))
        }
        Store::Local(dir) => {
            let key = join_key(&options.local_key_prefix, file_name);
            Ok((Store::Local(dir), key))
        }
    }
}

fn join_key(base: &str, name: &str) -> String {
    if base.is_empty() {
        name.to_owned()
    } else {
        format!("{base}/{name}")
    }
}

/// The driver for a store, and the key to use with it: a location's own (an HTTP URL is its
/// key), else `key`.
async fn driver_for<S: Secrets>(
    store: &Store,
    key: String,
    secrets: &S,
    options: &WaitOptions,
) -> Result<(StoreDriver, String), SaveError> {
    match store {
        Store::Location(loc) => AnyDriver::for_location(loc, secrets, &options.storage)
            .await
            .map(|(d, own)| (StoreDriver::Any(d), if own.is_empty() { key } else { own }))
            .map_err(SaveError::Driver),
        Store::Local(dir) => Ok((StoreDriver::Local(LocalStore::new(dir)), key)),
    }
}

/// Records where an artifact went in its JSON: the location (Argo's fields), or for the local
/// repository our `local: {key}` extension; and the digest and size.
fn record(artifact: &mut Artifact, store: &Store, key: &str, digest: Option<Digest>) {
    match store {
        Store::Location(loc) => {
            artifact.location = (**loc).clone();
            if artifact.location.key().is_none() {
                let _ = artifact.location.set_key(key);
            }
        }
        Store::Local(_) => {
            artifact
                .extra
                .insert("local".into(), serde_json::json!({ "key": key }));
        }
    }
    if let Some(d) = digest {
        artifact
            .extra
            .insert("sha256".into(), serde_json::json!(d.sha256));
        artifact
            .extra
            .insert("size".into(), serde_json::json!(d.size));
    }
}

/// How an output is stored: the archive format, or as is.
fn pack_format(artifact: &Artifact) -> Result<Option<PackFormat>, argoexec_archive::Error> {
    match artifact.archive_kind() {
        None | Some(ArchiveKind::Tar) => {
            let level = artifact
                .archive
                .as_ref()
                .and_then(argoexec_template::ArchiveStrategy::compression_level);
            PackFormat::tar_gz(level).map(Some)
        }
        Some(ArchiveKind::Zip) => Ok(Some(PackFormat::Zip)),
        Some(ArchiveKind::None) => Ok(None),
    }
}

/// Streams `local` (a file or directory) into `key`, packed by `format`, with retries; each
/// attempt packs afresh. Returns the digest of what was stored, or `None` for a directory stored
/// as is (many objects).
async fn upload(
    driver: &StoreDriver,
    key: &str,
    local: &Path,
    format: Option<&PackFormat>,
    retry: &RetryPolicy,
) -> Result<Option<Digest>, RetryError<UploadError>> {
    retry
        .run("save artifact", |_| async {
            let body: ByteStream = match format {
                Some(format) => argoexec_archive::pack_stream(local, *format).boxed(),
                None => {
                    let meta = tokio::fs::metadata(local).await.map_err(|e| {
                        argoexec_storage::Error::io("read", local.display().to_string(), e)
                    })?;
                    if meta.is_dir() {
                        upload_dir(driver, local, key, DIR_PARALLELISM).await?;
                        return Ok(None);
                    }
                    let file = tokio::fs::File::open(local).await.map_err(|e| {
                        argoexec_storage::Error::io("read", local.display().to_string(), e)
                    })?;
                    tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024).boxed()
                }
            };
            let (body, digest) = Digesting::new(body);
            driver.put(key, body.boxed()).await?;
            Ok(digest.get())
        })
        .await
}

/// Where an output artifact is read from.
enum Staged {
    /// A path this process can read (a volume, PNS's view of main's root).
    Local(PathBuf),
    /// A tar stream of the path from the runtime (docker's archive endpoint, the emissary's
    /// staged `.tgz`).
    Tar(TarStream),
}

/// A tar stream of a container's path, as the runtime gave it.
struct TarStream {
    stream: argoexec_runtime::ByteStream,
    /// gzip-compressed by our own packer at the default level ([`PathSource::TarGz`]).
    gzipped: bool,
}

impl TarStream {
    /// The stream of a path source, if it is one.
    fn of(source: PathSource) -> Result<Self, PathBuf> {
        match source {
            PathSource::Tar(stream) => Ok(Self {
                stream,
                gzipped: false,
            }),
            PathSource::TarGz(stream) => Ok(Self {
                stream,
                gzipped: true,
            }),
            PathSource::Local(local) => Err(local),
        }
    }

    /// The artifact's bytes in `format`: the stream itself when it is already what packing
    /// would make, else re-packed on a thread of its own.
    fn into_body(self, path: &Path, format: PackFormat) -> ByteStream {
        if self.gzipped && format == PackFormat::default() {
            return self.stream;
        }
        let reader = tokio_util::io::StreamReader::new(self.stream);
        if self.gzipped {
            argoexec_archive::repack_gzip_stream(reader, path, format).boxed()
        } else {
            argoexec_archive::repack_stream(reader, path, format).boxed()
        }
    }

    /// Stores the path as is (`archive: none`): a file's bytes at `key`, a directory's files
    /// under `key/`, as [`upload`] does for a local path; the digest of a file, none for a
    /// directory.
    async fn upload_as_is(
        self,
        driver: &StoreDriver,
        key: &str,
        path: &Path,
    ) -> Result<Option<Digest>, UploadError> {
        let reader = tokio_util::io::StreamReader::new(self.stream);
        let mut files = argoexec_archive::tar_files(reader, self.gzipped, path);
        let mut digest = None;
        while let Some(file) = files.next().await {
            let file = file.map_err(UploadError::Pack)?;
            if file.path.is_empty() {
                let (body, digested) = Digesting::new(file.body.boxed());
                driver.put(key, body.boxed()).await?;
                digest = digested.get();
            } else {
                let key = format!("{}/{}", key.trim_end_matches('/'), file.path);
                driver.put(&key, file.body.boxed()).await?;
            }
        }
        Ok(digest)
    }
}

/// The container path a tar stream comes from, to ask for it again on a retry.
struct TarFrom<'a, R> {
    runtime: &'a R,
    container: &'a str,
    path: &'a Path,
}

/// Uploads a path the runtime gave as a tar stream, re-packed in `format` unless it already is in
/// that format, or as is (none: a file's bytes, a directory's files); each retry asks the runtime
/// for a fresh stream.
async fn upload_tar<R: ContainerRuntime>(
    driver: &StoreDriver,
    key: &str,
    from: TarFrom<'_, R>,
    first: TarStream,
    format: Option<PackFormat>,
    retry: &RetryPolicy,
) -> Result<Option<Digest>, RetryError<UploadError>> {
    let first = std::sync::Mutex::new(Some(first));
    retry
        .run("save artifact", |_| async {
            let given = first.lock().ok().and_then(|mut first| first.take());
            let tar = match given {
                Some(tar) => tar,
                None => {
                    let source = from
                        .runtime
                        .open_path(from.container, from.path)
                        .await
                        .map_err(|e| {
                            UploadError::Storage(argoexec_storage::Error::io(
                                "read",
                                from.path.display().to_string(),
                                std::io::Error::other(chain(&e)),
                            ))
                        })?;
                    TarStream::of(source).map_err(|local| {
                        UploadError::Storage(argoexec_storage::Error::io(
                            "read",
                            local.display().to_string(),
                            std::io::Error::other("expected a tar stream from the runtime"),
                        ))
                    })?
                }
            };
            let Some(format) = format else {
                return tar.upload_as_is(driver, key, from.path).await;
            };
            let (body, digest) = Digesting::new(tar.into_body(from.path, format));
            driver.put(key, body.boxed()).await?;
            Ok(digest.get())
        })
        .await
}

async fn save_artifacts<R: ContainerRuntime, S: Secrets>(
    template: &Template,
    options: &WaitOptions,
    runtime: &R,
    secrets: &S,
    main: &str,
    outputs: &mut Outputs,
    errors: &mut Vec<WaitError>,
) {
    let Some(artifacts) = outputs.artifacts.take() else {
        return;
    };
    let mut saved = Vec::with_capacity(artifacts.len());
    for mut artifact in artifacts {
        match save_artifact(template, options, runtime, secrets, main, &mut artifact).await {
            Ok(true) => saved.push(artifact),
            // Optional and missing: left out, as Argo does.
            Ok(false) => {}
            Err(err) => {
                // Not reported as saved: outputs never point at objects that were not written.
                tracing::error!(artifact = %artifact.name, error = %chain(&err), "Failed to save artifact");
                errors.push(err);
            }
        }
    }
    outputs.artifacts = Some(saved);
}

/// Saves one output artifact; `Ok(false)` when it is optional and missing.
async fn save_artifact<R: ContainerRuntime, S: Secrets>(
    template: &Template,
    options: &WaitOptions,
    runtime: &R,
    secrets: &S,
    main: &str,
    artifact: &mut Artifact,
) -> Result<bool, WaitError> {
    let name = artifact.name.clone();
    let fail = |source: SaveError| WaitError::SaveArtifact {
        name: name.clone(),
        source,
    };
    let path = clean_artifact_path(&name, artifact.path.as_deref())?;
    tracing::info!(artifact = %name, %path, "Staging artifact");
    let staged = if is_base_image_path(template, &path) {
        match runtime.open_path(main, Path::new(&path)).await {
            Ok(source) => TarStream::of(source).map_or_else(Staged::Local, Staged::Tar),
            Err(err) if err.is_not_found() && artifact.is_optional() => {
                tracing::warn!(artifact = %name, %path, "Ignoring optional artifact which does not exist");
                return Ok(false);
            }
            Err(err) => return Err(fail(SaveError::Runtime(err))),
        }
    } else {
        let mounted = options.paths.main_fs(&path);
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
    let file_name = match (&format, artifact.archive_kind()) {
        (None, _) => Path::new(&path)
            .file_name()
            .map_or_else(|| name.clone(), |n| n.to_string_lossy().into_owned()),
        (Some(PackFormat::Zip), _) => format!("{name}.zip"),
        (Some(_), _) => format!("{name}.tgz"),
    };
    let (store, key) =
        resolve_store(template, options, &artifact.location, &file_name).map_err(fail)?;
    let (driver, key) = driver_for(&store, key, secrets, options)
        .await
        .map_err(fail)?;
    let uploaded = match staged {
        Staged::Local(local) => {
            upload(&driver, &key, &local, format.as_ref(), &options.retry).await
        }
        Staged::Tar(tar) => {
            let from = TarFrom {
                runtime,
                container: main,
                path: Path::new(&path),
            };
            upload_tar(&driver, &key, from, tar, format, &options.retry).await
        }
    };
    let digest = uploaded.map_err(|e| fail(SaveError::Upload(e)))?;
    record(artifact, &store, &key, digest.clone());
    match digest {
        Some(d) => {
            tracing::info!(artifact = %name, key, sha256 = %d.sha256, size = d.size, "Successfully saved artifact")
        }
        None => tracing::info!(artifact = %name, key, "Successfully saved artifact directory"),
    }
    Ok(true)
}

async fn save_logs<R: ContainerRuntime, S: Secrets>(
    template: &Template,
    options: &WaitOptions,
    runtime: &R,
    secrets: &S,
    mains: &[String],
    errors: &mut Vec<WaitError>,
) -> Vec<Artifact> {
    if !template.archive_logs() {
        return Vec::new();
    }
    tracing::info!("Saving logs");
    let mut saved = Vec::new();
    for container in mains {
        let result = async {
            let (store, key) = resolve_store(
                template,
                options,
                &ArtifactLocation::default(),
                &format!("{container}.log"),
            )?;
            let (driver, key) = driver_for(&store, key, secrets, options).await?;
            let digest = options
                .retry
                .run("save logs", |_| async {
                    let body = runtime
                        .logs(container, LogStream::Combined)
                        .await
                        .map_err(|e| {
                            UploadError::Storage(argoexec_storage::Error::io(
                                "read logs",
                                container.clone(),
                                std::io::Error::other(chain(&e)),
                            ))
                        })?;
                    let (body, digest) = Digesting::new(body);
                    driver.put(&key, body.boxed()).await?;
                    Ok(digest.get())
                })
                .await?;
            Ok::<_, SaveError>((store, key, digest))
        }
        .await;
        match result {
            Ok((store, key, digest)) => {
                let name = if options.protocol == Protocol::V4 {
                    format!("{container}-logs")
                } else {
                    "main-logs".to_owned()
                };
                let mut artifact = Artifact {
                    name,
                    ..Artifact::default()
                };
                record(&mut artifact, &store, &key, digest);
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

/// The last non-empty line of the progress file, when it has the form `N/M`.
async fn read_progress(path: Option<&Path>) -> Option<String> {
    let text = tokio::fs::read_to_string(path?).await.ok()?;
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?.trim();
    let (n, m) = line.split_once('/')?;
    (n.parse::<u64>().is_ok() && m.parse::<u64>().is_ok()).then(|| line.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::ReportError;
    use argoexec_runtime::{FakeContainer, FakeRuntime};
    use argoexec_storage::MountedSecrets;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<StepReport>>);

    impl Reporter for Recorder {
        async fn report(&self, report: &StepReport) -> Result<(), ReportError> {
            self.0.lock().unwrap().push(report.clone());
            Ok(())
        }
    }

    struct Pod {
        dir: tempfile::TempDir,
        runtime: FakeRuntime,
    }

    impl Pod {
        /// A pod with `main` (files under `<dir>/main`), a `wait` and a `sidecar`.
        fn new(stdout: &str) -> Self {
            let dir = tempfile::tempdir().unwrap();
            let runtime = FakeRuntime::new();
            runtime.add(
                "main",
                FakeContainer {
                    root: dir.path().join("main"),
                    stdout: stdout.as_bytes().to_vec(),
                    combined: format!("{stdout}and stderr\n").into_bytes(),
                    ..Default::default()
                },
            );
            runtime.add("wait", FakeContainer::default());
            runtime.add(
                "sidecar",
                FakeContainer {
                    ignores_term: true,
                    ..Default::default()
                },
            );
            Self { dir, runtime }
        }

        fn file(&self, path: &str, text: &str) {
            let path = self
                .dir
                .path()
                .join("main")
                .join(path.trim_start_matches('/'));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }

        fn options(&self) -> WaitOptions {
            WaitOptions {
                protocol: Protocol::V3,
                paths: PodPaths::under(self.dir.path().join("wait-root")),
                deadline: None,
                grace: Duration::from_millis(20),
                include_script_output: true,
                retry: RetryPolicy::none(),
                storage: StorageOptions::default(),
                self_container: "wait".into(),
                local_repository: Some(self.dir.path().join("repo")),
                local_key_prefix: "wf/pod".into(),
                progress_file: None,
            }
        }

        async fn wait(&self, template: serde_json::Value, options: &WaitOptions) -> WaitOutcome {
            let template: Template = serde_json::from_value(template).unwrap();
            let reporter = Recorder::default();
            let secrets = MountedSecrets::new(self.dir.path().join("secrets"));
            let outcome = run_wait(
                &template,
                options,
                &self.runtime,
                &reporter,
                &secrets,
                std::future::pending(),
            )
            .await;
            let reports = reporter.0.into_inner().unwrap();
            assert_eq!(reports.len(), 1, "reported exactly once");
            assert_eq!(reports[0], outcome.report);
            outcome
        }
    }

    fn script(outputs: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "name": "step",
            "script": {"image": "alpine", "source": "echo hi"},
            "outputs": outputs,
        })
    }

    #[tokio::test]
    async fn saves_result_parameters_and_artifacts_then_kills_sidecars() {
        let pod = Pod::new("hello\n");
        pod.file("/tmp/param.txt", "42\n\n");
        pod.file("/out/dir/a.txt", "a");
        pod.file("/out/dir/sub/b.txt", "b");
        pod.file("/out/single.txt", "single");
        pod.runtime.exit("main", 0);
        let outcome = pod
            .wait(
                script(serde_json::json!({
                    "parameters": [{"name": "p", "valueFrom": {"path": "/tmp/param.txt"}}],
                    "artifacts": [
                        {"name": "dir", "path": "/out/dir"},
                        {"name": "plain", "path": "/out/single.txt", "archive": {"none": {}}},
                        {"name": "zipped", "path": "/out/dir", "archive": {"zip": {}}},
                    ],
                })),
                &pod.options(),
            )
            .await;
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        let out = serde_json::to_value(&outcome.report.outputs).unwrap();
        assert_eq!(out["result"], "hello");
        // Exactly one trailing newline is stripped.
        assert_eq!(out["parameters"][0]["value"], "42\n");
        let repo = pod.dir.path().join("repo");
        assert_eq!(out["artifacts"][0]["local"]["key"], "wf/pod/dir.tgz");
        assert_eq!(out["artifacts"][1]["local"]["key"], "wf/pod/single.txt");
        assert_eq!(out["artifacts"][2]["local"]["key"], "wf/pod/zipped.zip");
        assert_eq!(
            std::fs::read_to_string(repo.join("wf/pod/single.txt")).unwrap(),
            "single"
        );
        assert_eq!(out["artifacts"][1]["size"], 6);
        // The tgz holds `dir/...` and unpacks to the same tree.
        let back = tempfile::tempdir().unwrap();
        let file = std::fs::File::open(repo.join("wf/pod/dir.tgz")).unwrap();
        argoexec_archive::unpack_from(
            file,
            &back.path().join("dir"),
            argoexec_archive::UnpackFormat::Detect,
            &argoexec_archive::Limits::default(),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(back.path().join("dir/sub/b.txt")).unwrap(),
            "b"
        );
        let sha = out["artifacts"][0]["sha256"].as_str().unwrap();
        assert!(sha.starts_with("sha256:") && sha.len() == 71, "{sha}");
        // The sidecar ignored SIGTERM and was killed; wait itself and main were not signalled.
        let calls = pod.runtime.calls();
        assert!(calls.contains(&"kill sidecar".to_owned()), "{calls:?}");
        assert!(!calls.contains(&"kill wait".to_owned()), "{calls:?}");
        assert!(!calls.contains(&"kill main".to_owned()), "{calls:?}");
    }

    #[tokio::test]
    async fn a_deadline_kills_main_and_still_saves_outputs() {
        let pod = Pod::new("partial\n");
        pod.file("/tmp/param.txt", "early");
        let mut options = pod.options();
        options.deadline = Some(SystemTime::now() + Duration::from_millis(50));
        let outcome = pod
            .wait(
                script(serde_json::json!({
                    "parameters": [{"name": "p", "valueFrom": {"path": "/tmp/param.txt"}}],
                })),
                &options,
            )
            .await;
        assert!(matches!(outcome.errors.first(), Some(WaitError::Deadline)));
        assert_eq!(
            outcome.report.message.as_deref(),
            Some("Step exceeded its deadline")
        );
        assert_eq!(outcome.report.outputs.result.as_deref(), Some("partial"));
        let calls = pod.runtime.calls();
        assert!(calls.contains(&"kill main".to_owned()), "{calls:?}");
    }

    #[tokio::test]
    async fn terminate_stops_the_wait_with_argos_message() {
        let pod = Pod::new("");
        let template: Template = serde_json::from_value(script(serde_json::json!({}))).unwrap();
        let options = pod.options();
        let reporter = Recorder::default();
        let secrets = MountedSecrets::new(pod.dir.path());
        let outcome = run_wait(
            &template,
            &options,
            &pod.runtime,
            &reporter,
            &secrets,
            async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Stop::Terminated
            },
        )
        .await;
        assert!(matches!(
            outcome.errors.first(),
            Some(WaitError::Terminated)
        ));
        assert_eq!(outcome.report.message.as_deref(), Some("Step terminated"));
    }

    #[tokio::test]
    async fn an_oversized_result_is_refused_not_truncated() {
        let big = "x".repeat(MAX_RESULT_BYTES + 1) + "\n";
        let pod = Pod::new(&big);
        pod.runtime.exit("main", 0);
        let outcome = pod
            .wait(script(serde_json::json!({})), &pod.options())
            .await;
        assert!(outcome.report.outputs.result.is_none());
        let message = outcome.report.message.unwrap();
        assert!(message.contains("262145 bytes"), "{message}");
        // Exactly at the limit (plus the stripped newline) is fine.
        let pod = Pod::new(&("y".repeat(MAX_RESULT_BYTES) + "\n"));
        pod.runtime.exit("main", 0);
        let outcome = pod
            .wait(script(serde_json::json!({})), &pod.options())
            .await;
        assert_eq!(
            outcome.report.outputs.result.map(|r| r.len()),
            Some(MAX_RESULT_BYTES)
        );
    }

    #[tokio::test]
    async fn missing_outputs_use_defaults_skip_optionals_and_fail_the_rest() {
        let pod = Pod::new("");
        pod.runtime.exit("main", 0);
        let outcome = pod
            .wait(
                script(serde_json::json!({
                    "parameters": [
                        {"name": "d", "valueFrom": {"path": "/nope", "default": "fallback"}},
                        {"name": "missing", "valueFrom": {"path": "/nope"}},
                    ],
                    "artifacts": [
                        {"name": "opt", "path": "/nope", "optional": true},
                        {"name": "req", "path": "/nope"},
                    ],
                })),
                &pod.options(),
            )
            .await;
        let out = serde_json::to_value(&outcome.report.outputs).unwrap();
        assert_eq!(out["parameters"][0]["value"], "fallback");
        // Neither artifact is reported: one skipped, one failed (never pointing at nothing).
        assert_eq!(out["artifacts"], serde_json::json!([]));
        let messages: Vec<String> = outcome.errors.iter().map(|e| chain(e)).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages[0].contains("output parameter 'missing'"),
            "{messages:?}"
        );
        assert!(
            messages[1].contains("failed to save artifact 'req'"),
            "{messages:?}"
        );
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
}
