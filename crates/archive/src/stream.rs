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
    let path = src.clone();
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    // The thread logs under the caller's span.
    let span = tracing::Span::current();
    let spawned = std::thread::Builder::new()
        .name("argoexec-pack".to_owned())
        .spawn({
            let tx = tx.clone();
            move || {
                let _entered = span.enter();
                let result = pack_into_channel(&src, &format, tx.clone());
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
    let (tx, rx) = mpsc::channel(IN_FLIGHT);
    let span = tracing::Span::current();
    let path = label.clone();
    let spawned = std::thread::Builder::new()
        .name("argoexec-repack".to_owned())
        .spawn({
            let tx = tx.clone();
            move || {
                let _entered = span.enter();
                let mut writer = ChannelWriter {
                    tx: tx.clone(),
                    buf: BytesMut::with_capacity(CHUNK),
                };
                let result = repack_to(tar(), &label, &format, &mut writer).and_then(|stats| {
                    writer.flush().map_err(|source| Error::Pack {
                        path: label.clone(),
                        source,
                    })?;
                    Ok(stats)
                });
                let last = match result {
                    Ok(stats) => Message::Done(stats),
                    Err(err) => Message::Failed(err),
                };
                let _ = tx.blocking_send(last);
            }
        });
    if let Err(err) = spawned {
        let _ = tx.try_send(Message::Failed(Error::Pack { path, source: err }));
    }
    PackStream {
        rx,
        stats: None,
        ended: false,
    }
}

fn pack_into_channel(
    src: &Path,
    format: &PackFormat,
    tx: mpsc::Sender<Message>,
) -> Result<PackStats, Error> {
    let mut writer = ChannelWriter {
        tx,
        buf: BytesMut::with_capacity(CHUNK),
    };
    let stats = pack_to(src, format, &mut writer)?;
    writer.flush().map_err(|source| Error::Pack {
        path: src.to_path_buf(),
        source,
    })?;
    Ok(stats)
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
