//! Putting a downloaded artifact into place: straight from the stream into the destination,
//! unpacked by its archive strategy, whole or not at all.

use std::path::Path;

use argoexec_storage::{ByteStream, Retryable};
use argoexec_template::ArchiveKind;

/// Why an artifact could not be put in place.
#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// The storage side failed (opening or reading the object).
    #[error(transparent)]
    Storage(#[from] argoexec_storage::Error),
    /// Writing the destination failed.
    #[error("write {path}")]
    Write {
        /// The destination.
        path: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// The mode could not be applied.
    #[error(transparent)]
    Mode(argoexec_archive::Error),
    /// A blocking task failed to run to completion.
    #[error("blocking task failed: {0}")]
    Task(String),
    /// The archive strategy is not supported by this build.
    #[error("unpacking {0} archives is not implemented yet")]
    Unsupported(&'static str),
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
            // A stream cut short surfaces as an I/O error while writing.
            Self::Write { source, .. } => argoexec_storage::is_transient_io(source),
            Self::Unsupported(_) | Self::Mode(_) | Self::Task(_) => false,
        }
    }
}

/// Streams `body` into `dest` according to the declared archive strategy. Until the archive
/// unpacker lands, only `none` (and undeclared) keep the bytes as they are.
pub async fn place(
    body: ByteStream,
    dest: &Path,
    archive: Option<ArchiveKind>,
) -> Result<(), PlaceError> {
    match archive {
        None | Some(ArchiveKind::None) => write_whole(body, dest).await,
        Some(ArchiveKind::Tar) => Err(PlaceError::Unsupported("tar")),
        Some(ArchiveKind::Zip) => Err(PlaceError::Unsupported("zip")),
    }
}

async fn write_whole(body: ByteStream, dest: &Path) -> Result<(), PlaceError> {
    argoexec_storage::write_whole(body, dest)
        .await
        .map_err(|source| PlaceError::Write {
            path: dest.display().to_string(),
            source,
        })
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
        let err = place(body, &dest, None).await.unwrap_err();
        assert!(err.is_transient(), "{err}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
