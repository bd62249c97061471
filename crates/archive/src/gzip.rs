//! gzip compression on every core: the input is cut into blocks, each block is compressed on a
//! worker thread into a gzip member of its own, and the members are written in order.
//!
//! The output is a multi-member gzip stream (RFC 1952 allows it; `gzip -d`, Go's `gzip.Reader`, which
//! Argo uses, and [`flate2::read::MultiGzDecoder`] read it as one). We do this here instead of
//! using `gzp`: `gzp` needs a C zlib (`libz-sys`) or a second deflate backend beside zlib-rs, and a
//! `'static` writer; the whole job is this small file on `std` threads.
//!
//! Memory stays bounded: at most `workers + 1` blocks are in flight, and their buffers and each
//! worker's deflate state are reused rather than reallocated per block (fresh 512 KiB allocations
//! per block made glibc's heap grow to several times the data in flight).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use flate2::write::GzEncoder;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Input bytes per gzip member. Each member restarts deflate's 32 KiB window, which costs under 1%
/// of ratio at this size (0.4% at 1 MiB, 3.6% at 128 KiB on a tarball of Rust sources).
const BLOCK: usize = 512 << 10;

/// Most worker threads: past this, gzip outruns what an artifact upload takes, and each worker
/// adds about 1.5 MiB of blocks and deflate state.
pub(crate) const MAX_THREADS: usize = 8;

/// A gzip member's header: deflate, no flags, no mtime, unknown OS (as `flate2` writes it).
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// A gzip writer: one member on a single core, many members in parallel otherwise.
pub(crate) enum GzipWriter<W: Write> {
    Single(GzEncoder<W>),
    Parallel(ParallelGzip<W>),
}

impl<W: Write> GzipWriter<W> {
    /// A writer at `level` using up to `threads` worker threads (1 means no thread at all).
    pub(crate) fn new(out: W, level: u32, threads: usize) -> Self {
        if threads <= 1 {
            GzipWriter::Single(GzEncoder::new(out, Compression::new(level)))
        } else {
            GzipWriter::Parallel(ParallelGzip::new(out, level, threads))
        }
    }

    /// Writes what is buffered and the gzip trailer(s); returns the inner writer.
    pub(crate) fn finish(self) -> io::Result<W> {
        match self {
            GzipWriter::Single(encoder) => encoder.finish(),
            GzipWriter::Parallel(parallel) => parallel.finish(),
        }
    }
}

impl<W: Write> Write for GzipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            GzipWriter::Single(encoder) => encoder.write(buf),
            GzipWriter::Parallel(parallel) => parallel.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            GzipWriter::Single(encoder) => encoder.flush(),
            // A member boundary is the only flush point; the caller flushes for real at finish.
            GzipWriter::Parallel(_) => Ok(()),
        }
    }
}

/// A block to compress, the buffer to compress it into, and where to send both back.
struct Job {
    data: Vec<u8>,
    member: Vec<u8>,
    reply: SyncSender<io::Result<Buffers>>,
}

/// An input block and the gzip member made of it.
struct Buffers {
    data: Vec<u8>,
    member: Vec<u8>,
}

/// The parallel side of [`GzipWriter`]. Dropping it without `finish` closes the queue; the
/// workers finish their block and exit.
pub(crate) struct ParallelGzip<W: Write> {
    out: W,
    block: Vec<u8>,
    pending: VecDeque<Receiver<io::Result<Buffers>>>,
    max_pending: usize,
    spare: Vec<Buffers>,
    jobs: Option<SyncSender<Job>>,
    workers: Vec<JoinHandle<()>>,
    wrote_member: bool,
}

impl<W: Write> ParallelGzip<W> {
    fn new(out: W, level: u32, threads: usize) -> Self {
        let (jobs, queue) = sync_channel::<Job>(threads);
        let queue = Arc::new(Mutex::new(queue));
        let workers = (0..threads)
            .filter_map(|i| {
                let queue = Arc::clone(&queue);
                thread::Builder::new()
                    .name(format!("argoexec-gzip-{i}"))
                    .spawn(move || work(&queue, level))
                    .ok()
            })
            .collect();
        ParallelGzip {
            out,
            block: Vec::with_capacity(BLOCK),
            pending: VecDeque::new(),
            max_pending: threads + 1,
            spare: Vec::new(),
            jobs: Some(jobs),
            workers,
            wrote_member: false,
        }
    }

    fn submit(&mut self) -> io::Result<()> {
        while self.pending.len() >= self.max_pending {
            self.write_oldest()?;
        }
        let spare = self.spare.pop().unwrap_or_else(|| Buffers {
            data: Vec::with_capacity(BLOCK),
            member: Vec::new(),
        });
        let data = std::mem::replace(&mut self.block, spare.data);
        let (reply, result) = sync_channel(1);
        let job = Job {
            data,
            member: spare.member,
            reply,
        };
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok());
        if !sent {
            return Err(stopped());
        }
        self.pending.push_back(result);
        self.wrote_member = true;
        Ok(())
    }

    fn write_oldest(&mut self) -> io::Result<()> {
        if let Some(result) = self.pending.pop_front() {
            let mut buffers = result.recv().map_err(|_| stopped())??;
            self.out.write_all(&buffers.member)?;
            buffers.data.clear();
            self.spare.push(buffers);
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        // An empty input still makes one (empty) member: a gzip stream with no member is invalid.
        if !self.block.is_empty() || !self.wrote_member {
            self.submit()?;
        }
        while !self.pending.is_empty() {
            self.write_oldest()?;
        }
        self.out.flush()?;
        let ParallelGzip {
            out, jobs, workers, ..
        } = self;
        // Closing the queue lets each worker's `recv` fail, so it returns.
        drop(jobs);
        for worker in workers {
            // A worker that panicked already surfaced as a `stopped` error on its block.
            let _ = worker.join();
        }
        Ok(out)
    }
}

impl<W: Write> Write for ParallelGzip<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = BLOCK - self.block.len();
        let n = room.min(buf.len());
        self.block.extend_from_slice(&buf[..n]);
        if self.block.len() == BLOCK {
            self.submit()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A worker: compresses blocks from the queue until it closes, with one deflate state reused.
fn work(queue: &Mutex<Receiver<Job>>, level: u32) {
    let mut deflate = Compress::new(Compression::new(level), false);
    loop {
        let job = match queue.lock() {
            Ok(queue) => queue.recv(),
            Err(_) => return,
        };
        let Ok(Job {
            data,
            mut member,
            reply,
        }) = job
        else {
            return;
        };
        let result =
            gzip_member(&mut deflate, &data, &mut member).map(|()| Buffers { data, member });
        // The writer may have given up (an error elsewhere); nothing to do then.
        let _ = reply.send(result);
    }
}

/// Writes `data` as one complete gzip member into `member` (cleared first).
fn gzip_member(deflate: &mut Compress, data: &[u8], member: &mut Vec<u8>) -> io::Result<()> {
    member.clear();
    member.extend_from_slice(&HEADER);
    deflate.reset();
    loop {
        let consumed = usize::try_from(deflate.total_in()).map_err(io::Error::other)?;
        if member.capacity() - member.len() < 4096 {
            member.reserve(data.len() / 2 + 4096);
        }
        let status = deflate
            .compress_vec(&data[consumed..], member, FlushCompress::Finish)
            .map_err(io::Error::other)?;
        if status == Status::StreamEnd {
            break;
        }
    }
    let mut crc = Crc::new();
    crc.update(data);
    member.extend_from_slice(&crc.sum().to_le_bytes());
    // ISIZE is the length modulo 2^32; a block is far smaller.
    member.extend_from_slice(&crc.amount().to_le_bytes());
    Ok(())
}

fn stopped() -> io::Error {
    io::Error::other("gzip worker thread stopped")
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn roundtrip(input: &[u8], threads: usize) -> Vec<u8> {
        let mut writer = GzipWriter::new(Vec::new(), 6, threads);
        for chunk in input.chunks(7000) {
            writer.write_all(chunk).unwrap();
        }
        let compressed = writer.finish().unwrap();
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&compressed[..])
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn parallel_members_decode_to_the_input() {
        let input: Vec<u8> = (0..3 * BLOCK + 12345).map(|i| (i % 251) as u8).collect();
        assert_eq!(roundtrip(&input, 3), input);
        assert_eq!(roundtrip(&input, 1), input);
        assert_eq!(roundtrip(b"", 2), b"");
        assert_eq!(roundtrip(&input[..BLOCK], 2), &input[..BLOCK]);
    }
}
