//! Unpacking a stream into a destination: detection, staging, limits; the formats are in
//! `untar` and `unzip`, the checks in `extract`.

mod extract;
mod untar;
mod unzip;

use std::cell::Cell;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use flate2::read::MultiGzDecoder;
use tracing::{debug, warn};

use crate::format::{GZIP_MAGIC, is_tar_header, read_full};
use crate::{ArchiveKind, Error, UnpackFormat};
use extract::{EntryMeta, Extractor};

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

/// A hidden directory beside the destination that holds the unpacked tree until it is complete.
/// Dropping it removes it.
///
/// A destination that is a mount point (a volume mounted where the artifact goes) cannot be
/// renamed or replaced: there the hidden directory is made inside the destination (on the
/// mounted file system), and the commit empties the destination and moves the top-level entries
/// in one by one. The unpacking itself stays hidden until complete as elsewhere; only the final
/// moves are not one atomic step, so a failure during them (rare: renames within one file
/// system) can leave the destination with part of the new entries.
pub(crate) struct Staging {
    dir: tempfile::TempDir,
    dest: PathBuf,
    /// The destination is a mount point: staged inside it, committed entry by entry.
    in_place: bool,
}

impl Staging {
    fn new(dest: &Path) -> Result<Self, Error> {
        let stage_err = |source| Error::Stage {
            path: dest.to_path_buf(),
            source,
        };
        let name = dest
            .file_name()
            .ok_or_else(|| stage_err(io::Error::other("the destination has no file name")))?;
        let parent = match dest.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent,
            _ => Path::new("."),
        };
        fs::create_dir_all(parent).map_err(stage_err)?;
        let in_place = is_mount_point(dest);
        // Keep the name short enough for NAME_MAX whatever the destination's name.
        let shown: String = name.to_string_lossy().chars().take(64).collect();
        let dir = tempfile::Builder::new()
            .prefix(&format!(".{shown}."))
            .suffix(".unpacking")
            .tempdir_in(if in_place { dest } else { parent })
            .map_err(stage_err)?;
        Ok(Staging {
            dir,
            dest: dest.to_path_buf(),
            in_place,
        })
    }

    /// Where the archive is extracted.
    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// A scratch path inside the staging directory, outside the extraction root.
    fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn dest_name(&self) -> String {
        self.dest
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn error(&self, source: io::Error) -> Error {
        Error::Stage {
            path: self.dest.clone(),
            source,
        }
    }

    /// Moves `from` (inside the staging directory) to the destination, moving an existing
    /// destination aside first and back if the move fails, then removes the staging directory.
    fn commit(self, from: &Path) -> Result<(), Error> {
        let replace_err = |source| Error::Replace {
            path: self.dest.clone(),
            source,
        };
        if self.in_place {
            self.commit_into_mount(from).map_err(replace_err)?;
            return self.close();
        }
        let aside = self.dir.path().join("replaced");
        let replacing = match fs::symlink_metadata(&self.dest) {
            Ok(_) => {
                fs::rename(&self.dest, &aside).map_err(replace_err)?;
                true
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => false,
            Err(err) => return Err(replace_err(err)),
        };
        if let Err(err) = fs::rename(from, &self.dest) {
            if replacing && let Err(back) = fs::rename(&aside, &self.dest) {
                warn!(dest = %self.dest.display(), error = %back, "could not restore the previous destination");
            }
            return Err(replace_err(err));
        }
        self.close()
    }

    /// For a mount point: removes what the destination held (but the staging directory), then
    /// moves the entries of `from` in. A single file cannot become a mount point.
    fn commit_into_mount(&self, from: &Path) -> io::Result<()> {
        if !fs::symlink_metadata(from)?.is_dir() {
            return Err(io::Error::other(
                "the destination is a mount point, which a single file cannot replace \
                 (unpack a directory there, or load the file below it)",
            ));
        }
        for entry in fs::read_dir(&self.dest)? {
            let path = entry?.path();
            if path == self.dir.path() {
                continue;
            }
            match fs::symlink_metadata(&path)?.is_dir() {
                true => fs::remove_dir_all(&path)?,
                false => fs::remove_file(&path)?,
            }
        }
        for entry in fs::read_dir(from)? {
            let entry = entry?;
            fs::rename(entry.path(), self.dest.join(entry.file_name()))?;
        }
        Ok(())
    }

    /// Removes the staging directory.
    fn close(self) -> Result<(), Error> {
        let path = self.dir.path().to_path_buf();
        if let Err(err) = self.dir.close() {
            // The artifact is in place; a leftover hidden directory is not worth failing for.
            warn!(path = %path.display(), error = %err, "could not remove the staging directory");
        }
        Ok(())
    }
}

/// Whether `path` is an existing directory that is a mount point: listed as one in
/// `/proc/self/mountinfo`, or on another device than its parent.
fn is_mount_point(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Ok(meta) = fs::metadata(path) else {
        return false;
    };
    if !meta.is_dir() {
        return false;
    }
    let Ok(path) = fs::canonicalize(path) else {
        return false;
    };
    let other_device = path
        .parent()
        .and_then(|parent| fs::metadata(parent).ok())
        .is_some_and(|parent| parent.dev() != meta.dev());
    other_device
        || fs::read_to_string("/proc/self/mountinfo").is_ok_and(|info| {
            info.lines()
                .filter_map(|line| line.split(' ').nth(4))
                .any(|mount| Path::new(&unescape_mountinfo(mount)) == path)
        })
}

/// A mountinfo path field: space, tab, newline and backslash are written as `\ooo` octal.
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        let value = octal.map(|d| d.iter().fold(0u32, |v, b| v * 8 + u32::from(b - b'0')));
        match (bytes[i], value.and_then(|v| u8::try_from(v).ok())) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Counts bytes read through [`Metered`], and optionally caps them.
#[derive(Debug, Default)]
pub(crate) struct Meter {
    read: Cell<u64>,
    budget: Cell<Option<u64>>,
    exhausted: Cell<bool>,
}

impl Meter {
    pub(crate) fn read(&self) -> u64 {
        self.read.get()
    }

    /// Caps the bytes read from now on (`None`: no cap).
    pub(crate) fn set_budget(&self, budget: Option<u64>) {
        self.budget.set(budget);
    }

    /// Whether a read failed because the budget ran out.
    pub(crate) fn exhausted(&self) -> bool {
        self.exhausted.get()
    }
}

/// A reader that reports to a [`Meter`].
pub(crate) struct Metered<R> {
    inner: R,
    meter: Rc<Meter>,
}

impl<R> Metered<R> {
    pub(crate) fn new(inner: R, meter: Rc<Meter>) -> Self {
        Metered { inner, meter }
    }
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let len = match self.meter.budget.get() {
            Some(0) if !buf.is_empty() => {
                self.meter.exhausted.set(true);
                return Err(io::Error::other("tar header budget exhausted"));
            }
            Some(budget) => buf.len().min(usize::try_from(budget).unwrap_or(usize::MAX)),
            None => buf.len(),
        };
        let n = self.inner.read(&mut buf[..len])?;
        self.meter.read.set(self.meter.read.get() + n as u64);
        if let Some(budget) = self.meter.budget.get() {
            self.meter.budget.set(Some(budget.saturating_sub(n as u64)));
        }
        Ok(n)
    }
}

impl<R: Seek> Seek for Metered<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.inner.seek(pos)
    }
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

#[cfg(test)]
mod mount_tests {
    use super::*;

    #[test]
    fn mountinfo_paths_are_unescaped() {
        assert_eq!(
            unescape_mountinfo(r"/mnt/my\040data\134x"),
            r"/mnt/my data\x"
        );
        assert_eq!(unescape_mountinfo(r"/a\9zz\777"), r"/a\9zz\777");
    }

    #[test]
    fn a_plain_directory_or_a_missing_path_is_not_a_mount_point() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_mount_point(dir.path()));
        assert!(!is_mount_point(&dir.path().join("missing")));
        assert!(is_mount_point(Path::new("/proc")));
    }
}
