//! The pod state directory: `<dir>/<container>/{stdout,combined,exitcode}`, the layout Argo's
//! emissary keeps under `/var/run/argo/ctr/` (so the PNS and emissary runtimes share it). Whoever runs the pod writes `stdout` and `combined`
//! while the container runs and `exitcode` last, once both pipes reached their end, so a present
//! `exitcode` means the logs are complete.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustix::fs::inotify;
use rustix::io::Errno;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

/// How often to look for `exitcode` when its directory does not exist yet (so there is nothing
/// to watch); otherwise inotify says when it is written.
const NO_DIR_POLL: Duration = Duration::from_millis(50);

/// `<dir>/<container>/<file>`.
pub(crate) fn file(dir: &Path, container: &str, file: &str) -> PathBuf {
    dir.join(container).join(file)
}

/// The container's `stdout` or `combined` file as a stream.
pub(crate) async fn open_log(
    dir: &Path,
    container: &str,
    stream: crate::LogStream,
) -> Result<crate::ByteStream, crate::Error> {
    use futures::TryStreamExt as _;
    let name = match stream {
        crate::LogStream::Stdout => "stdout",
        crate::LogStream::Combined => "combined",
    };
    let path = file(dir, container, name);
    let log = tokio::fs::File::open(&path)
        .await
        .map_err(|source| crate::Error::io(format!("open {}", path.display()), source))?;
    Ok(Box::pin(
        tokio_util::io::ReaderStream::new(log).map_err(io::Error::from),
    ))
}

/// The container's exit code once `exitcode` holds one, waiting at most `bound`; `None` (with a
/// warning) when it does not appear in time.
pub(super) async fn exit_code(dir: &Path, container: &str, bound: Duration) -> Option<i32> {
    let path = file(dir, container, "exitcode");
    let deadline = Instant::now() + bound;
    // Watch before looking, so a write between the look and the watch still wakes us.
    let mut watch = match DirWatch::new(&dir.join(container)) {
        Ok(watch) => Some(watch),
        Err(error) => {
            tracing::debug!(container, %error, "cannot watch the container's state directory; polling");
            None
        }
    };
    loop {
        match read_code(&path).await {
            Ok(Some(code)) => return Some(code),
            Ok(None) => {}
            Err(error) => {
                tracing::warn!(container, path = %path.display(), %error, "cannot read the exit code");
                return None;
            }
        }
        let woke = match &watch {
            Some(w) => match tokio::time::timeout_at(deadline, w.changed()).await {
                Ok(Ok(())) => true,
                Ok(Err(error)) => {
                    tracing::debug!(container, %error, "lost the watch on the state directory; polling");
                    watch = None;
                    true
                }
                Err(_) => false,
            },
            None => {
                tokio::time::sleep(
                    NO_DIR_POLL.min(deadline.saturating_duration_since(Instant::now())),
                )
                .await;
                Instant::now() < deadline
            }
        };
        if !woke {
            // One last look: the write may have landed just as the time ran out.
            if let Ok(Some(code)) = read_code(&path).await {
                return Some(code);
            }
            tracing::warn!(
                container,
                path = %path.display(),
                waited = ?bound,
                "the container exited but its exit code did not appear; reporting it as unknown"
            );
            return None;
        }
    }
}

/// Waits until `exitcode` exists (the logs are complete), at most `bound`; false when it did
/// not appear.
pub(super) async fn logs_complete(dir: &Path, container: &str, bound: Duration) -> bool {
    exit_code(dir, container, bound).await.is_some()
}

/// The code in an `exitcode` file; `None` when the file is missing or not completely written.
async fn read_code(path: &Path) -> io::Result<Option<i32>> {
    match tokio::fs::read_to_string(path).await {
        Ok(text) => Ok(text.trim().parse().ok()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(error),
    }
}

/// An inotify watch on one directory that wakes on every file written (closed after writing),
/// created or moved into it: `exitcode` files, or the `..data` symlink kubelet renames into a
/// downward-API volume when it updates it. Nothing polls.
#[derive(Debug)]
pub struct DirWatch(AsyncFd<OwnedFd>);

impl DirWatch {
    /// Watches `dir`, which must exist. Needs a tokio runtime with IO enabled.
    pub fn new(dir: &Path) -> io::Result<Self> {
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)?;
        inotify::add_watch(
            &fd,
            dir,
            inotify::WatchFlags::CLOSE_WRITE
                | inotify::WatchFlags::MOVED_TO
                | inotify::WatchFlags::CREATE,
        )?;
        register(fd).map(Self)
    }

    /// Resolves at the next change in the directory, after draining the events (a burst of
    /// changes wakes once).
    pub async fn changed(&self) -> io::Result<()> {
        let mut guard = self.0.readable().await?;
        let mut buf = [MaybeUninit::<u8>::uninit(); 1024];
        let mut reader = inotify::Reader::new(self.0.get_ref(), &mut buf);
        loop {
            match reader.next() {
                Ok(_) => {}
                Err(Errno::AGAIN) => break,
                Err(errno) => return Err(errno.into()),
            }
        }
        guard.clear_ready();
        Ok(())
    }
}

/// Registers `fd` with tokio's reactor for readability.
///
/// tokio 1.54 deprecated its safe constructors in favour of `unsafe fn register`, because a
/// generic `T` may return a different raw fd from one `as_raw_fd` call to the next. An `OwnedFd`
/// returns the one fd it owns, open, until it is dropped: exactly what `register`'s safety
/// contract asks for. So the safe constructor is sound here, and this crate forbids `unsafe`.
#[allow(deprecated)]
pub(crate) fn register(fd: OwnedFd) -> io::Result<AsyncFd<OwnedFd>> {
    AsyncFd::with_interest(fd, Interest::READABLE)
}
