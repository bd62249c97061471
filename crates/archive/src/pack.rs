//! Packing a file or a directory into a tar, tar+gzip or zip stream, or copying a file as is.

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use tracing::{debug, warn};
use zip::write::{ExtendedFileOptions, FileOptions, StreamWriter};
use zip::{CompressionMethod, ZipWriter};

use crate::dostime;
use crate::gzip::{self, GzipWriter};
use crate::{Error, PackFormat};

/// What a pack did, for logs and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackStats {
    /// Entries written: files, directories and symlinks.
    pub entries: u64,
    /// Bytes read from the source files.
    pub bytes_in: u64,
    /// Bytes of archive written.
    pub bytes_out: u64,
}

/// Packs `src` into `out` in `format`; the sync core of [`pack_stream`](crate::pack_stream).
///
/// A directory's entries are named `<basename(src)>/<relative path>`, a single file is named
/// `basename(src)`. `src` itself is followed if it is a symlink (the artifact path names what the
/// user means); below it, symlinks are stored as symlinks and never followed. Entries are written
/// in sorted order with their mode, mtime and uid/gid; empty directories are kept. Sockets, fifos
/// and devices are skipped with a warning.
///
/// gzip runs on every available core (up to 8), writing a multi-member gzip stream.
#[tracing::instrument(level = "debug", skip_all, fields(src = %src.display(), ?format))]
pub fn pack_to<W: Write>(src: &Path, format: &PackFormat, out: W) -> Result<PackStats, Error> {
    let pack_err = |source| Error::Pack {
        path: src.to_path_buf(),
        source,
    };
    let meta = fs::metadata(src).map_err(pack_err)?;
    let name = src
        .file_name()
        .ok_or_else(|| pack_err(invalid("the path has no file name")))?
        .to_owned();
    let mut stats = PackStats::default();
    let out = CountWriter::new(out);
    let out = match format {
        PackFormat::AsIs => {
            if meta.is_dir() {
                return Err(Error::PackDirectoryAsIs {
                    path: src.to_path_buf(),
                });
            }
            let mut out = out;
            let mut file = File::open(src).map_err(pack_err)?;
            stats.bytes_in = io::copy(&mut file, &mut out).map_err(pack_err)?;
            stats.entries = 1;
            out
        }
        PackFormat::Tar => {
            let mut sink = TarSink::new(out);
            walk(src, Path::new(&name), &meta, &mut sink, &mut stats)?;
            sink.builder.into_inner().map_err(pack_err)?
        }
        PackFormat::TarGz { level } => {
            let threads = std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(gzip::MAX_THREADS);
            let mut sink = TarSink::new(GzipWriter::new(out, *level, threads));
            walk(src, Path::new(&name), &meta, &mut sink, &mut stats)?;
            let gzip = sink.builder.into_inner().map_err(pack_err)?;
            gzip.finish().map_err(pack_err)?
        }
        PackFormat::Zip => {
            let mut sink = ZipSink::new(out);
            walk(src, Path::new(&name), &meta, &mut sink, &mut stats)?;
            sink.finish().map_err(pack_err)?
        }
    };
    let mut out = out;
    out.flush().map_err(pack_err)?;
    stats.bytes_out = out.count;
    debug!(
        entries = stats.entries,
        bytes_in = stats.bytes_in,
        bytes_out = stats.bytes_out,
        "packed"
    );
    Ok(stats)
}

/// Where walked entries go: a tar builder or a zip writer.
trait Sink {
    fn dir(&mut self, name: &Path, meta: &Metadata) -> io::Result<()>;
    fn file(&mut self, name: &Path, meta: &Metadata, data: &mut dyn Read) -> io::Result<()>;
    fn symlink(&mut self, name: &Path, target: &Path, meta: &Metadata) -> io::Result<()>;
}

/// Visits `path` (named `name` in the archive) and everything below it in sorted order.
fn walk(
    path: &Path,
    name: &Path,
    meta: &Metadata,
    sink: &mut dyn Sink,
    stats: &mut PackStats,
) -> Result<(), Error> {
    let pack_err = |source| Error::Pack {
        path: path.to_path_buf(),
        source,
    };
    let kind = meta.file_type();
    if kind.is_dir() {
        sink.dir(name, meta).map_err(pack_err)?;
        stats.entries += 1;
        let mut children = fs::read_dir(path)
            .and_then(|dir| dir.collect::<io::Result<Vec<_>>>())
            .map_err(pack_err)?;
        children.sort_by_key(|child| child.file_name());
        for child in children {
            let child_path = child.path();
            let child_meta = fs::symlink_metadata(&child_path).map_err(|source| Error::Pack {
                path: child_path.clone(),
                source,
            })?;
            walk(
                &child_path,
                &name.join(child.file_name()),
                &child_meta,
                sink,
                stats,
            )?;
        }
    } else if kind.is_file() {
        let file = File::open(path).map_err(pack_err)?;
        let mut data = ExactReader {
            inner: file.take(meta.len()),
            left: meta.len(),
        };
        sink.file(name, meta, &mut data).map_err(pack_err)?;
        stats.entries += 1;
        stats.bytes_in += meta.len();
    } else if kind.is_symlink() {
        let target = fs::read_link(path).map_err(pack_err)?;
        sink.symlink(name, &target, meta).map_err(pack_err)?;
        stats.entries += 1;
    } else {
        let what = if kind.is_fifo() {
            "fifo"
        } else if kind.is_socket() {
            "socket"
        } else {
            "device"
        };
        warn!(path = %path.display(), kind = what, "not packing a special file");
    }
    Ok(())
}

struct TarSink<W: Write> {
    builder: tar::Builder<W>,
}

impl<W: Write> TarSink<W> {
    fn new(out: W) -> Self {
        let mut builder = tar::Builder::new(out);
        builder.follow_symlinks(false);
        TarSink { builder }
    }
}

fn tar_header(meta: &Metadata) -> tar::Header {
    let mut header = tar::Header::new_gnu();
    header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
    // Permission bits only, as Go's tar writer and GNU tar store them (the tar crate keeps S_IFMT).
    header.set_mode(meta.mode() & 0o7777);
    header
}

impl<W: Write> Sink for TarSink<W> {
    fn dir(&mut self, name: &Path, meta: &Metadata) -> io::Result<()> {
        let mut header = tar_header(meta);
        header.set_size(0);
        let mut name = name.as_os_str().to_owned();
        name.push("/");
        self.builder.append_data(&mut header, name, io::empty())
    }

    fn file(&mut self, name: &Path, meta: &Metadata, data: &mut dyn Read) -> io::Result<()> {
        let mut header = tar_header(meta);
        self.builder.append_data(&mut header, name, data)
    }

    fn symlink(&mut self, name: &Path, target: &Path, meta: &Metadata) -> io::Result<()> {
        let mut header = tar_header(meta);
        header.set_size(0);
        self.builder.append_link(&mut header, name, target)
    }
}

struct ZipSink<W: Write> {
    writer: ZipWriter<StreamWriter<W>>,
}

/// zip's extended-timestamp extra field (0x5455): exact Unix mtime, which Go and Info-ZIP read.
const EXTENDED_TIMESTAMP: u16 = 0x5455;

/// The options of one zip entry: deflate, the permission bits, the mtime both as a DOS time and
/// exactly (extended timestamp); zip64 when a file of `size` bytes may reach 4 GiB.
fn zip_options(
    mode: u32,
    mtime: i64,
    size: Option<u64>,
) -> io::Result<FileOptions<'static, 'static, ExtendedFileOptions>> {
    let mut options = FileOptions::<ExtendedFileOptions>::default()
        .compression_method(CompressionMethod::Deflated)
        .unix_permissions(mode & 0o7777)
        // The margin covers deflate's worst-case growth.
        .large_file(size.is_some_and(|size| size >= u64::from(u32::MAX) - (16 << 20)));
    if let Some(dos) = dostime::to_dos(mtime) {
        options = options.last_modified_time(dos);
    }
    if let Ok(seconds) = u32::try_from(mtime) {
        let mut field = vec![1u8];
        field.extend_from_slice(&seconds.to_le_bytes());
        options
            .add_extra_field(EXTENDED_TIMESTAMP, field, false)
            .map_err(io::Error::other)?;
    }
    Ok(options)
}

fn zip_name(name: &Path) -> io::Result<String> {
    name.to_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid("zip needs UTF-8 names"))
}

/// What a zip entry keeps of a file's metadata, from the file system or from a tar header.
struct ZipMeta {
    mode: u32,
    mtime: i64,
}

impl From<&Metadata> for ZipMeta {
    fn from(meta: &Metadata) -> Self {
        ZipMeta {
            mode: meta.mode(),
            mtime: meta.mtime(),
        }
    }
}

impl<W: Write> ZipSink<W> {
    fn new(out: W) -> Self {
        ZipSink {
            writer: ZipWriter::new_stream(out),
        }
    }

    fn add_dir(&mut self, name: &Path, meta: &ZipMeta) -> io::Result<()> {
        // A tar names a directory with a trailing `/`, a walk without.
        let name = zip_name(name)?.trim_end_matches('/').to_owned() + "/";
        self.writer
            .add_directory(name, zip_options(meta.mode, meta.mtime, None)?)
            .map_err(io::Error::other)
    }

    fn add_file(
        &mut self,
        name: &Path,
        meta: &ZipMeta,
        size: u64,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        self.writer
            .start_file(
                zip_name(name)?,
                zip_options(meta.mode, meta.mtime, Some(size))?,
            )
            .map_err(io::Error::other)?;
        io::copy(data, &mut self.writer)?;
        Ok(())
    }

    fn add_symlink(&mut self, name: &Path, target: &Path, meta: &ZipMeta) -> io::Result<()> {
        let target = target
            .to_str()
            .ok_or_else(|| invalid("zip needs UTF-8 symlink targets"))?;
        let options = zip_options(0o777, meta.mtime, None)?;
        self.writer
            .add_symlink(zip_name(name)?, target, options)
            .map_err(io::Error::other)
    }

    /// Writes the central directory; returns the inner writer.
    fn finish(self) -> io::Result<W> {
        self.writer
            .finish()
            .map(StreamWriter::into_inner)
            .map_err(io::Error::other)
    }
}

impl<W: Write> Sink for ZipSink<W> {
    fn dir(&mut self, name: &Path, meta: &Metadata) -> io::Result<()> {
        self.add_dir(name, &meta.into())
    }

    fn file(&mut self, name: &Path, meta: &Metadata, data: &mut dyn Read) -> io::Result<()> {
        self.add_file(name, &meta.into(), meta.len(), data)
    }

    fn symlink(&mut self, name: &Path, target: &Path, meta: &Metadata) -> io::Result<()> {
        self.add_symlink(name, target, &meta.into())
    }
}

/// Writes the entries of `tar` into `zip`, in the tar's order; a hard link is refused (its data
/// went by earlier in the stream), devices and fifos are skipped as [`pack_to`] skips them.
fn tar_to_zip<R: Read, W: Write>(
    tar: R,
    zip: &mut ZipSink<W>,
    stats: &mut PackStats,
) -> io::Result<()> {
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries()? {
        let mut entry = entry?;
        let name = entry.path()?.into_owned();
        let header = entry.header();
        let meta = ZipMeta {
            mode: header.mode()?,
            mtime: i64::try_from(header.mtime()?).unwrap_or(i64::MAX),
        };
        match header.entry_type() {
            tar::EntryType::Directory => zip.add_dir(&name, &meta)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let size = entry.size();
                zip.add_file(&name, &meta, size, &mut entry)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()?
                    .ok_or_else(|| invalid("a symbolic link without a target"))?
                    .into_owned();
                zip.add_symlink(&name, &target, &meta)?;
            }
            tar::EntryType::Link => {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!(
                        "{} is a hard link: a zip made from a tar stream cannot hold one",
                        name.display()
                    ),
                ));
            }
            kind if kind.is_pax_global_extensions() => continue,
            _ => {
                warn!(path = %name.display(), "not packing a special file");
                continue;
            }
        }
        stats.entries += 1;
    }
    Ok(())
}

/// A file's bytes, exactly as many as its header announced: tar writes the size first, so a file
/// that shrinks while packed must fail rather than corrupt the archive (one that grows is cut at
/// the announced size by `take`).
struct ExactReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while being packed",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// Counts the bytes written through it.
struct CountWriter<W> {
    inner: W,
    count: u64,
}

impl<W> CountWriter<W> {
    fn new(inner: W) -> Self {
        CountWriter { inner, count: 0 }
    }
}

impl<W: Write> Write for CountWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn invalid(message: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Re-packs `tar`, a tar stream whose one top-level entry is the artifact (what docker's archive
/// endpoint or `tar cf -` in a container gives), into `out` in `format`; `label` names it in
/// errors. tar+gzip compresses the stream as it is (Argo: `docker cp ... - | gzip`), tar copies
/// it, as-is writes the bytes of its one entry, which must be a regular file (a directory is
/// [`Error::PackDirectoryAsIs`]), zip writes each entry as [`pack_to`] would (a hard link, whose
/// data went by earlier in the stream, is refused).
pub fn repack_to<R: Read, W: Write>(
    tar: R,
    label: &Path,
    format: &PackFormat,
    out: W,
) -> Result<PackStats, Error> {
    let pack_err = |source| Error::Pack {
        path: label.to_path_buf(),
        source,
    };
    let mut stats = PackStats::default();
    let mut tar = CountReader::new(tar);
    let mut out = CountWriter::new(out);
    match format {
        PackFormat::Tar => {
            io::copy(&mut tar, &mut out).map_err(pack_err)?;
        }
        PackFormat::TarGz { level } => {
            let threads = std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(gzip::MAX_THREADS);
            let mut gzip = GzipWriter::new(&mut out, *level, threads);
            io::copy(&mut tar, &mut gzip).map_err(pack_err)?;
            gzip.finish().map_err(pack_err)?;
        }
        PackFormat::AsIs => {
            let mut archive = tar::Archive::new(&mut tar);
            let mut entries = archive.entries().map_err(pack_err)?;
            let mut entry = entries
                .next()
                .ok_or_else(|| pack_err(invalid("the archive is empty")))?
                .map_err(pack_err)?;
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    io::copy(&mut entry, &mut out).map_err(pack_err)?;
                }
                tar::EntryType::Directory => {
                    return Err(Error::PackDirectoryAsIs {
                        path: label.to_path_buf(),
                    });
                }
                _ => return Err(pack_err(invalid("not a regular file"))),
            }
            stats.entries = 1;
        }
        PackFormat::Zip => {
            let mut zip = ZipSink::new(&mut out);
            tar_to_zip(&mut tar, &mut zip, &mut stats).map_err(pack_err)?;
            zip.finish().map_err(pack_err)?;
        }
    }
    out.flush().map_err(pack_err)?;
    stats.bytes_in = tar.count;
    stats.bytes_out = out.count;
    Ok(stats)
}

struct CountReader<R> {
    inner: R,
    count: u64,
}

impl<R> CountReader<R> {
    fn new(inner: R) -> Self {
        CountReader { inner, count: 0 }
    }
}

impl<R: Read> Read for CountReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}
