//! The async face: packing into a byte stream and unpacking from an `AsyncRead`, each running the
//! sync core off the async threads.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use flate2::read::MultiGzDecoder;
use futures::Stream;
use tokio::io::AsyncRead;
use tokio::sync::mpsc;
use tokio_util::io::SyncIoBridge;

use crate::{
    Error, Limits, PackFormat, PackStats, UnpackFormat, UnpackStats, pack_to, repack_to,
    unpack_from,
};

/// Bytes per chunk sent from the packing thread.
const CHUNK: usize = 256 * 1024;
/// Chunks in flight between the packing thread and the consumer: with [`CHUNK`], 1 MiB.
const IN_FLIGHT: usize = 4;

#[derive(Debug)]
enum Message {
    Data(Bytes),
    Done(PackStats),
    Failed(Error),
}

/// The archive of a file or directory as a stream of bytes; see [`pack_stream`].
///
/// A failure ends the stream with an [`io::Error`] whose inner error is this crate's [`Error`]
/// (`err.get_ref()` and downcast). Dropping the stream stops the packing thread at its next write.
/// To read it as an `AsyncRead`, wrap it in `tokio_util::io::StreamReader`.
#[derive(Debug)]
pub struct PackStream {
    rx: mpsc::Receiver<Message>,
    stats: Option<PackStats>,
    ended: bool,
}

impl PackStream {
    /// What the pack did, once the stream has ended without error.
    pub fn stats(&self) -> Option<PackStats> {
        self.stats
    }
}

impl Stream for PackStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Message::Data(bytes))) => Poll::Ready(Some(Ok(bytes))),
            Poll::Ready(Some(Message::Done(stats))) => {
                self.stats = Some(stats);
                self.ended = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Message::Failed(err))) => {
                self.ended = true;
                Poll::Ready(Some(Err(io::Error::other(err))))
            }
            Poll::Ready(None) => {
                self.ended = true;
                Poll::Ready(Some(Err(io::Error::other(
                    "the packing thread stopped without a result",
                ))))
            }
        }
    }
}

/// Packs `src` in `format` as a stream of bytes, running [`pack_to`] on a dedicated thread that
/// feeds a bounded channel: memory stays near 1 MiB plus the gzip workers' blocks, whatever the
/// size. Needs no runtime to be called; the stream can be polled from any.
pub fn pack_stream(src: impl Into<PathBuf>, format: PackFormat) -> PackStream {
    let src = src.into();
    spawn_packer("argoexec-pack", src.clone(), move |out| {
        pack_to(&src, &format, out)
    })
}

/// Re-packs a tar stream (`reader`) in `format` as a stream of bytes: [`repack_to`] on a
/// dedicated thread, reading through `SyncIoBridge`, feeding a bounded channel as
/// [`pack_stream`] does. `label` names the artifact's path in errors. Must be called inside a
/// Tokio runtime (the bridge reads through it).
pub fn repack_stream<R>(reader: R, label: impl Into<PathBuf>, format: PackFormat) -> PackStream
where
    R: AsyncRead + Send + Unpin + 'static,
{
    let bridge = SyncIoBridge::new(reader);
    spawn_repack(move || bridge, label.into(), format)
}

/// [`repack_stream`] for a gzip-compressed tar stream (one member or many): it is decompressed
/// on the same thread as it is read.
pub fn repack_gzip_stream<R>(reader: R, label: impl Into<PathBuf>, format: PackFormat) -> PackStream
where
    R: AsyncRead + Send + Unpin + 'static,
{
    let bridge = SyncIoBridge::new(reader);
    // Made on the repacking thread: the decoder reads the gzip header as it is made.
    let tar = move || MultiGzDecoder::new(io::BufReader::with_capacity(CHUNK, bridge));
    spawn_repack(tar, label.into(), format)
}

/// Runs [`repack_to`] over the reader `tar` makes, on a dedicated thread feeding the returned
/// stream.
fn spawn_repack<T: io::Read>(
    tar: impl FnOnce() -> T + Send + 'static,
    label: PathBuf,
    format: PackFormat,
) -> PackStream {
    spawn_packer("argoexec-repack", label.clone(), move |out| {
        repack_to(tar(), &label, &format, out)
    })
}

/// Runs `pack` on a thread named `name`, writing into a bounded channel that the returned stream
/// reads; `path` names the artifact in errors.
fn spawn_packer(
    name: &str,
    path: PathBuf,
    pack: impl FnOnce(&mut ChannelWriter) -> Result<PackStats, Error> + Send + 'static,
) -> PackStream {
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    // The thread logs under the caller's span.
    let span = tracing::Span::current();
    let spawned = std::thread::Builder::new().name(name.to_owned()).spawn({
        let tx = tx.clone();
        let path = path.clone();
        move || {
            let _entered = span.enter();
            let mut writer = ChannelWriter {
                tx: tx.clone(),
                buf: BytesMut::with_capacity(CHUNK),
            };
            let result = pack(&mut writer).and_then(|stats| {
                writer
                    .flush()
                    .map_err(|source| Error::Pack { path, source })?;
                Ok(stats)
            });
            let last = match result {
                Ok(stats) => Message::Done(stats),
                Err(err) => Message::Failed(err),
            };
            // The consumer may be gone; then nobody wants the result.
            let _ = tx.blocking_send(last);
        }
    });
    if let Err(err) = spawned {
        // Capacity is IN_FLIGHT and nothing was sent yet, so this cannot be full.
        let _ = tx.try_send(Message::Failed(Error::Pack { path, source: err }));
    }
    PackStream {
        rx,
        stats: None,
        ended: false,
    }
}

/// A `Write` that sends full chunks down the channel, blocking while it is full.
struct ChannelWriter {
    tx: mpsc::Sender<Message>,
    buf: BytesMut,
}

impl ChannelWriter {
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.buf.reserve(CHUNK);
        self.tx
            .blocking_send(Message::Data(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the pack stream was dropped"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// Unpacks `reader` into `dest`: [`unpack_from`] on a blocking thread, reading through
/// `SyncIoBridge`. Must be awaited inside a Tokio runtime.
pub async fn unpack<R>(
    reader: R,
    dest: impl Into<PathBuf>,
    format: UnpackFormat,
    limits: Limits,
) -> Result<UnpackStats, Error>
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let dest = dest.into();
    let bridge = SyncIoBridge::new(reader);
    // The blocking thread logs under the caller's span.
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        unpack_from(bridge, &dest, format, &limits)
    })
    .await
    .map_err(|source| Error::RunTask { source })?
}

/// One regular file of a tar stream, from [`tar_files`].
#[derive(Debug)]
pub struct TarFile {
    /// Its path below the archive's one top-level entry, `/`-separated; empty when the top-level
    /// entry is this file.
    pub path: String,
    /// Its bytes. Read it to its end or drop it before asking for the next file: the stream is
    /// read once, in order.
    pub body: PackStream,
}

/// The regular files of a tar stream, one at a time; see [`tar_files`].
#[derive(Debug)]
pub struct TarFiles {
    rx: mpsc::Receiver<Result<TarFile, Error>>,
}

impl TarFiles {
    /// The next file, an error that ended the stream, or `None` after the last file.
    pub async fn next(&mut self) -> Option<Result<TarFile, Error>> {
        self.rx.recv().await
    }
}

/// The regular files of `reader`, a tar stream (gzip-compressed when `gzipped`) whose one
/// top-level entry is a file or a directory, for storing a path as is (`archive: none`) when it
/// comes as a tar stream: a file gives itself (path empty), a directory each file below it.
/// Symbolic links and special files below a directory are skipped with a warning, a hard link is
/// an error (the stream cannot go back for its data); a top-level entry that is neither a file nor
/// a directory is an error. Read on a dedicated thread through `SyncIoBridge`, each file's bytes
/// through a bounded channel, as [`pack_stream`]; `label` names the artifact in errors. Must be
/// called inside a Tokio runtime.
pub fn tar_files<R>(reader: R, gzipped: bool, label: impl Into<PathBuf>) -> TarFiles
where
    R: AsyncRead + Send + Unpin + 'static,
{
    let label = label.into();
    let bridge = SyncIoBridge::new(reader);
    let (tx, rx) = mpsc::channel(1);
    let span = tracing::Span::current();
    let path = label.clone();
    let spawned = std::thread::Builder::new()
        .name("argoexec-untar".to_owned())
        .spawn({
            let tx = tx.clone();
            move || {
                let _entered = span.enter();
                let result = if gzipped {
                    let tar = MultiGzDecoder::new(io::BufReader::with_capacity(CHUNK, bridge));
                    send_files(tar, &label, &tx)
                } else {
                    send_files(bridge, &label, &tx)
                };
                if let Err(err) = result {
                    let _ = tx.blocking_send(Err(err));
                }
            }
        });
    if let Err(err) = spawned {
        let _ = tx.try_send(Err(Error::Pack { path, source: err }));
    }
    TarFiles { rx }
}

fn send_files(
    tar: impl io::Read,
    label: &Path,
    tx: &mpsc::Sender<Result<TarFile, Error>>,
) -> Result<(), Error> {
    let fail = |source| Error::Pack {
        path: label.to_path_buf(),
        source,
    };
    let invalid = |message: String| fail(io::Error::new(io::ErrorKind::InvalidData, message));
    let mut archive = tar::Archive::new(tar);
    let mut top: Option<PathBuf> = None;
    for entry in archive.entries().map_err(fail)? {
        let mut entry = entry.map_err(fail)?;
        let name = entry.path().map_err(fail)?.into_owned();
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            continue;
        }
        let rel = match &top {
            None => {
                if !(kind.is_file() || kind.is_dir()) {
                    return Err(invalid(format!(
                        "{} is neither a regular file nor a directory",
                        name.display()
                    )));
                }
                top = Some(name.clone());
                PathBuf::new()
            }
            Some(top) => name
                .strip_prefix(top)
                .map_err(|_| {
                    invalid(format!(
                        "{} is outside the archive's top-level entry {}",
                        name.display(),
                        top.display()
                    ))
                })?
                .to_owned(),
        };
        if kind.is_dir() {
            continue;
        }
        if kind.is_hard_link() {
            return Err(invalid(format!(
                "{} is a hard link, whose data went by earlier in the stream",
                name.display()
            )));
        }
        if !kind.is_file() {
            tracing::warn!(path = %name.display(), "not storing a symbolic link or special file of a directory stored as is");
            continue;
        }
        let path = rel
            .to_str()
            .ok_or_else(|| invalid(format!("{} is not UTF-8", name.display())))?
            .to_owned();
        let (file_tx, file_rx) = mpsc::channel(IN_FLIGHT);
        let body = PackStream {
            rx: file_rx,
            stats: None,
            ended: false,
        };
        if tx.blocking_send(Ok(TarFile { path, body })).is_err() {
            // Nobody wants the files any more.
            return Ok(());
        }
        let mut writer = ChannelWriter {
            tx: file_tx.clone(),
            buf: BytesMut::with_capacity(CHUNK),
        };
        let copied = io::copy(&mut entry, &mut writer).and_then(|n| writer.flush().map(|()| n));
        match copied {
            Ok(bytes) => {
                let stats = PackStats {
                    entries: 1,
                    bytes_in: bytes,
                    bytes_out: bytes,
                };
                let _ = file_tx.blocking_send(Message::Done(stats));
            }
            Err(source) => {
                let told = io::Error::new(source.kind(), source.to_string());
                let _ = file_tx.blocking_send(Message::Failed(fail(told)));
                return Err(fail(source));
            }
        }
    }
    match top {
        Some(_) => Ok(()),
        None => Err(invalid("the archive is empty".to_owned())),
    }
}
