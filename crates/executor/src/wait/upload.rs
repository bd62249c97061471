//! Moving one output's bytes into storage: from a path this process can read, or from a tar
//! stream the runtime gives; packed in the artifact's format or stored as they are; retried, each
//! attempt afresh.

use std::path::{Path, PathBuf};

use argoexec_archive::PackFormat;
use argoexec_runtime::{ContainerRuntime, PathSource};
use argoexec_storage::{
    ByteStream, Digest, Digesting, Driver, RetryError, RetryPolicy, upload_dir,
};
use argoexec_template::{ArchiveKind, Artifact};
use futures::StreamExt as _;

use super::error::UploadError;

/// Files of a directory artifact uploaded at once.
const DIR_PARALLELISM: usize = 8;

/// How an output is stored: the archive format, or as is.
pub(super) fn pack_format(
    artifact: &Artifact,
) -> Result<Option<PackFormat>, argoexec_archive::Error> {
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
pub(super) async fn upload<D: Driver>(
    driver: &D,
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
pub(super) enum Staged {
    /// A path this process can read (a volume, PNS's view of main's root).
    Local(PathBuf),
    /// A tar stream of the path from the runtime (docker's archive endpoint, the emissary's
    /// staged `.tgz`).
    Tar(TarStream),
}

impl Staged {
    /// Where a path the runtime opened is read from.
    pub(super) fn of(source: PathSource) -> Self {
        TarStream::of(source).map_or_else(Self::Local, Self::Tar)
    }
}

/// A tar stream of a container's path, as the runtime gave it.
pub(super) struct TarStream {
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
    async fn upload_as_is<D: Driver>(
        self,
        driver: &D,
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
pub(super) struct TarFrom<'a, R> {
    /// The runtime that gave the stream.
    pub(super) runtime: &'a R,
    /// The container.
    pub(super) container: &'a str,
    /// The path inside it.
    pub(super) path: &'a Path,
}

impl<R: ContainerRuntime> TarFrom<'_, R> {
    /// A fresh stream of the path. The runtime's failure stays whole, so the retry policy can
    /// ask it whether it passes.
    async fn reopen(&self) -> Result<TarStream, UploadError> {
        let source = self
            .runtime
            .open_path(self.container, self.path)
            .await
            .map_err(UploadError::Runtime)?;
        TarStream::of(source).map_err(|path| UploadError::NotTar { path })
    }
}

/// Uploads a path the runtime gave as a tar stream, re-packed in `format` unless it already is in
/// that format, or as is (none: a file's bytes, a directory's files); each retry asks the runtime
/// for a fresh stream.
pub(super) async fn upload_tar<R: ContainerRuntime, D: Driver>(
    driver: &D,
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
                None => from.reopen().await?,
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use argoexec_runtime::{FakeContainer, FakeRuntime};
    use argoexec_storage::LocalStore;

    use super::*;

    /// A tar stream whose connection resets: the first attempt fails in a way worth retrying.
    fn reset_stream() -> TarStream {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        TarStream {
            stream: futures::stream::iter([Err(reset)]).boxed(),
            gzipped: true,
        }
    }

    /// Uploads `/out` of `main` from a stream that resets, the runtime failing its reopening
    /// with `error`; returns the error and how often the runtime was asked to reopen.
    async fn upload_failing(error: argoexec_runtime::Error) -> (RetryError<UploadError>, usize) {
        let repo = tempfile::tempdir().unwrap();
        let runtime = FakeRuntime::new();
        runtime.add("main", FakeContainer::default());
        runtime.fail("open_path", error);
        let retry = RetryPolicy {
            attempts: 3,
            initial: Duration::from_millis(1),
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        let from = TarFrom {
            runtime: &runtime,
            container: "main",
            path: Path::new("/out"),
        };
        let driver = LocalStore::new(repo.path());
        let format = Some(PackFormat::default());
        let err = upload_tar(&driver, "out.tgz", from, reset_stream(), format, &retry)
            .await
            .unwrap_err();
        let reopened = runtime
            .calls()
            .iter()
            .filter(|c| c.starts_with("open_path"))
            .count();
        (err, reopened)
    }

    #[tokio::test]
    async fn a_transient_runtime_failure_on_the_upload_path_is_retried() {
        let reset = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "exec stream reset");
        let (err, reopened) = upload_failing(argoexec_runtime::Error::io("exec tar", reset)).await;
        // Attempt 2 met the reset and was retried; attempt 3 reached the fake's /out, which does
        // not exist.
        assert_eq!(reopened, 2);
        assert_eq!(err.attempts, 3);
        assert!(
            matches!(&err.last, UploadError::Runtime(e) if e.is_not_found()),
            "{:?}",
            err.last
        );
    }

    #[tokio::test]
    async fn a_permanent_runtime_failure_on_the_upload_path_is_not_retried() {
        let gone = argoexec_runtime::Error::RootGone {
            container: "main".into(),
        };
        let (err, reopened) = upload_failing(gone).await;
        assert_eq!(reopened, 1);
        assert_eq!(err.attempts, 2);
        assert!(
            matches!(
                &err.last,
                UploadError::Runtime(argoexec_runtime::Error::RootGone { .. })
            ),
            "{:?}",
            err.last
        );
        assert!(err.gave_up.is_none());
    }
}
