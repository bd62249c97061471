//! Putting a downloaded artifact into place: straight from the stream into the destination,
//! unpacked by its archive strategy, whole or not at all.

use std::path::Path;

use argoexec_config::UnpackSettings;

use argoexec_archive::UnpackFormat;
pub use argoexec_archive::{Limits, UnpackStats};
use argoexec_storage::{ByteStream, Retryable};
use argoexec_template::ArchiveKind;
use tokio_util::io::StreamReader;

/// Why an artifact could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// The storage side failed (opening or reading the object).
    #[error(transparent)]
    Storage(#[from] argoexec_storage::Error),
    /// The mode could not be applied.
    #[error(transparent)]
    Mode(argoexec_archive::Error),
    /// The archive could not be unpacked (or was refused as unsafe); nothing was left behind.
    #[error(transparent)]
    Unpack(argoexec_archive::Error),
    /// A blocking task failed to run to completion.
    #[error("blocking task failed: {0}")]
    Task(String),
}

impl PlaceError {
    /// Whether the object was not found (an optional input may skip it).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Storage(e) if e.is_not_found())
    }
}

impl Retryable for PlaceError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Storage(e) => e.is_transient(),
            // Only a stream cut short is worth another attempt (it surfaces while reading the
            // archive, or while copying an entry out of it); a refused entry or a corrupt
            // archive will be refused again.
            Self::Unpack(
                argoexec_archive::Error::ReadArchive { source }
                | argoexec_archive::Error::ExtractEntry { source, .. },
            ) => argoexec_storage::is_transient_io(source),
            Self::Unpack(_) | Self::Mode(_) | Self::Task(_) => false,
        }
    }
}

/// Streams `body` into `dest` according to the declared archive strategy, as Argo's init does:
/// `none` keeps the bytes, `tar` untars (gzip-compressed or not), `zip` unzips, and with nothing
/// declared a gzip-compressed tar is untarred and anything else kept as is. An archive whose only
/// top-level entry is a single file or directory becomes `dest` itself. Entries that would land
/// outside `dest` are refused, and a failure leaves nothing at `dest`.
pub async fn place(
    body: ByteStream,
    dest: &Path,
    archive: Option<ArchiveKind>,
    limits: Limits,
) -> Result<UnpackStats, PlaceError> {
    let format = match archive {
        None => UnpackFormat::Detect,
        Some(ArchiveKind::None) => UnpackFormat::AsIs,
        Some(ArchiveKind::Tar) => UnpackFormat::Tar,
        Some(ArchiveKind::Zip) => UnpackFormat::Zip,
    };
    argoexec_archive::unpack(StreamReader::new(body), dest, format, limits)
        .await
        .map_err(PlaceError::Unpack)
}

/// The unpack caps: the archive crate's defaults, overridden where `ARGOEXEC_UNPACK_*` is set.
pub fn unpack_limits(settings: &UnpackSettings) -> Limits {
    let default = Limits::default();
    Limits {
        max_entries: settings.max_entries.unwrap_or(default.max_entries),
        max_bytes: settings.max_bytes.unwrap_or(default.max_bytes),
        max_ratio: settings.max_ratio.unwrap_or(default.max_ratio),
        ..default
    }
}

/// Applies an artifact's `mode` (and with `recurse`, to everything below it) through the
/// archive crate's rule: directories keep search permission wherever the mode grants read.
pub async fn apply_mode(path: &Path, mode: u32, recurse: bool) -> Result<(), PlaceError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || argoexec_archive::apply_mode(&path, mode, recurse))
        .await
        .map_err(|e| PlaceError::Task(e.to_string()))?
        .map_err(PlaceError::Mode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures::StreamExt as _;
    use std::os::unix::fs::PermissionsExt as _;

    #[tokio::test]
    async fn recurse_mode_reaches_every_entry() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("a");
        std::fs::create_dir_all(root.join("b")).unwrap();
        std::fs::write(root.join("b/f"), "x").unwrap();
        apply_mode(&root, 0o640, true).await.unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root), 0o750);
        assert_eq!(mode(&root.join("b")), 0o750);
        assert_eq!(mode(&root.join("b/f")), 0o640);
    }

    #[tokio::test]
    async fn a_broken_stream_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        let body: ByteStream = futures::stream::iter(vec![
            Ok(Bytes::from_static(b"part")),
            Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        ])
        .boxed();
        let err = place(body, &dest, None, Limits::default())
            .await
            .unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
