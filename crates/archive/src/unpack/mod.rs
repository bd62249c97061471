//! Unpacking a stream into a destination: detection, staging, limits; the formats are in
//! `untar` and `unzip`, the checks in `extract`.

mod extract;
mod meter;
mod staging;
mod untar;
mod unzip;

use std::io::{self, Read};
use std::path::Path;
use std::rc::Rc;

use flate2::read::MultiGzDecoder;
use tracing::{debug, warn};

use crate::format::{GZIP_MAGIC, is_tar_header, read_full};
use crate::{ArchiveKind, Error, UnpackFormat};
use extract::{EntryMeta, Extractor};
use meter::{Meter, Metered};
use staging::Staging;

/// Caps on what an archive may unpack to. The defaults are generous: they stop bombs, not
/// artifacts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most entries (files, directories, links) an archive may hold. Default 1,000,000.
    pub max_entries: u64,
    /// Most bytes all files together may unpack to. Default 1 TiB.
    pub max_bytes: u64,
    /// Most unpacked bytes per archive byte read, checked once `ratio_grace_bytes` are unpacked.
    /// Default 1000 (gzip's own ceiling is about 1032).
    pub max_ratio: u64,
    /// Unpacked bytes before the ratio is checked. Default 100 MiB.
    pub ratio_grace_bytes: u64,
    /// Most bytes of tar headers before one entry (GNU long names, PAX records), which the tar
    /// reader holds in memory. Default 1 MiB.
    pub max_header_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 1_000_000,
            max_bytes: 1 << 40,
            max_ratio: 1000,
            ratio_grace_bytes: 100 << 20,
            max_header_bytes: 1 << 20,
        }
    }
}

/// What an unpack did, for logs and benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackStats {
    /// The format found (or declared).
    pub kind: ArchiveKind,
    /// Entries written: files, directories and links (1 for a stream kept as is).
    pub entries: u64,
    /// Bytes read from the input stream.
    pub bytes_in: u64,
    /// Bytes written to files.
    pub bytes_out: u64,
}

/// Unpacks `reader` into `dest`; the sync core of [`unpack`](crate::unpack).
///
/// The format comes from `format` (see [`UnpackFormat`]). When the archive has exactly one
/// top-level entry, that entry becomes `dest` (a tar of `foo/...` unpacked to `/x/bar` gives
/// `/x/bar/...`); otherwise `dest` is a directory holding the top-level entries.
///
/// Everything is written into a fresh hidden directory beside `dest` (`dest`'s parent is created
/// if missing) and renamed into place at the end, replacing whatever was at `dest` only then. On
/// any error, the staging directory is removed: nothing is left outside `dest`, and `dest` is as it
/// was. Unsafe entries and archives over `limits` fail with [`Error::CheckEntry`].
#[tracing::instrument(level = "debug", skip_all, fields(dest = %dest.display(), ?format))]
pub fn unpack_from<R: Read>(
    reader: R,
    dest: &Path,
    format: UnpackFormat,
    limits: &Limits,
) -> Result<UnpackStats, Error> {
    let staging = Staging::new(dest)?;
    let input = Rc::new(Meter::default());
    let mut raw = Rewind::new(Metered::new(reader, Rc::clone(&input)));
    let kind = detect(&mut raw, format).map_err(|source| Error::ReadArchive { source })?;
    debug!(?kind, "unpacking");
    let extracted = match kind {
        ArchiveKind::AsIs => keep(raw, &staging, limits, &input)?,
        ArchiveKind::Tar => untar::untar(raw, staging.root(), limits, &input)?,
        ArchiveKind::TarGz => {
            untar::untar(MultiGzDecoder::new(raw), staging.root(), limits, &input)?
        }
        ArchiveKind::Zip => unzip::unzip(raw, &staging, limits)?,
    };
    staging.commit(&extracted.path)?;
    let stats = UnpackStats {
        kind,
        entries: extracted.entries,
        bytes_in: input.read(),
        bytes_out: extracted.bytes_out,
    };
    debug!(
        kind = ?stats.kind,
        entries = stats.entries,
        bytes_in = stats.bytes_in,
        bytes_out = stats.bytes_out,
        "unpacked"
    );
    Ok(stats)
}

/// Decides the format, reading ahead as little as it needs and rewinding.
fn detect<R: Read>(raw: &mut Rewind<R>, format: UnpackFormat) -> io::Result<ArchiveKind> {
    let kind = match format {
        UnpackFormat::AsIs => ArchiveKind::AsIs,
        UnpackFormat::Zip => ArchiveKind::Zip,
        UnpackFormat::Tar if starts_with_gzip(raw)? => ArchiveKind::TarGz,
        UnpackFormat::Tar => ArchiveKind::Tar,
        UnpackFormat::Detect if starts_with_gzip(raw)? && gzip_holds_tar(raw) => ArchiveKind::TarGz,
        UnpackFormat::Detect => ArchiveKind::AsIs,
    };
    raw.replay();
    Ok(kind)
}

fn starts_with_gzip<R: Read>(raw: &mut Rewind<R>) -> io::Result<bool> {
    let mut magic = [0; 2];
    let n = read_full(raw, &mut magic)?;
    raw.rewind();
    Ok(n == 2 && magic == GZIP_MAGIC)
}

/// Whether the gzip stream's first 512 bytes are a tar header. A stream that does not decode is
/// not a tarball (Argo's `isTarball` says the same) and is kept as is.
fn gzip_holds_tar<R: Read>(raw: &mut Rewind<R>) -> bool {
    let mut block = [0; 512];
    let read = read_full(&mut MultiGzDecoder::new(&mut *raw), &mut block);
    raw.rewind();
    matches!(read, Ok(512)) && is_tar_header(&block)
}

/// Keeps the stream as is: one file, named after the destination in errors.
fn keep<R: Read>(
    mut raw: R,
    staging: &Staging,
    limits: &Limits,
    input: &Rc<Meter>,
) -> Result<extract::Extracted, Error> {
    let mut extractor = Extractor::new(staging.root(), limits, Rc::clone(input))
        .map_err(|source| staging.error(source))?;
    let entry = staging.dest_name();
    extractor.file(&entry, b"data", EntryMeta::default(), None, &mut raw)?;
    extractor.finish()
}

/// Most bytes held to detect the format (the gzip decoder reads ahead 32 KiB).
const SNIFF_LIMIT: usize = 1 << 20;

/// A reader that records what it reads until [`Rewind::replay`], so detection can look ahead and
/// the real read starts from the first byte.
pub(crate) struct Rewind<R> {
    inner: R,
    buf: Vec<u8>,
    pos: usize,
    recording: bool,
}

impl<R> Rewind<R> {
    fn new(inner: R) -> Self {
        Rewind {
            inner,
            buf: Vec::new(),
            pos: 0,
            recording: true,
        }
    }

    /// Reads again from the first byte, still recording.
    fn rewind(&mut self) {
        self.pos = 0;
    }

    /// Reads again from the first byte and stops recording.
    fn replay(&mut self) {
        self.pos = 0;
        self.recording = false;
    }
}

impl<R: Read> Read for Rewind<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos < self.buf.len() {
            let n = out.len().min(self.buf.len() - self.pos);
            out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
            if !self.recording && self.pos == self.buf.len() {
                self.buf = Vec::new();
                self.pos = 0;
            }
            return Ok(n);
        }
        if !self.recording {
            return self.inner.read(out);
        }
        let room = SNIFF_LIMIT - self.buf.len();
        if room == 0 {
            return Err(io::Error::other("format detection read too far ahead"));
        }
        let len = out.len().min(room);
        let n = self.inner.read(&mut out[..len])?;
        self.buf.extend_from_slice(&out[..n]);
        self.pos = self.buf.len();
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewind_replays_what_detection_read() {
        let mut raw = Rewind::new(&b"hello world"[..]);
        let mut head = [0; 5];
        assert_eq!(read_full(&mut raw, &mut head).unwrap(), 5);
        raw.rewind();
        let mut again = [0; 2];
        assert_eq!(read_full(&mut raw, &mut again).unwrap(), 2);
        raw.replay();
        let mut all = Vec::new();
        raw.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"hello world");
    }

    #[test]
    fn metered_budget_stops_reads() {
        let meter = Rc::new(Meter::default());
        let mut reader = Metered::new(&[7u8; 100][..], Rc::clone(&meter));
        meter.set_budget(Some(10));
        let mut buf = [0; 64];
        assert_eq!(reader.read(&mut buf).unwrap(), 10);
        assert!(reader.read(&mut buf).is_err());
        assert!(meter.exhausted());
        meter.set_budget(None);
        assert_eq!(reader.read(&mut buf).unwrap(), 64);
        assert_eq!(meter.read(), 74);
    }
}
