//! The pod state directory: `<dir>/<container>/{stdout,combined,exitcode}`, the layout Argo's
//! emissary keeps under `/var/run/argo/ctr/` (so the PNS and emissary runtimes share it). Whoever runs the pod writes `stdout` and `combined`
//! while the container runs and `exitcode` last, once both pipes reached their end, so a present
//! `exitcode` means the logs are complete.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
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
    stream: crate::runtime::LogStream,
) -> Result<crate::runtime::ByteStream, crate::runtime::Error> {
    use futures::TryStreamExt as _;
    let name = match stream {
        crate::runtime::LogStream::Stdout => "stdout",
        crate::runtime::LogStream::Combined => "combined",
    };
    let path = file(dir, container, name);
    let log = tokio::fs::File::open(&path)
        .await
        .map_err(|source| crate::runtime::Error::io(format!("open {}", path.display()), source))?;
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
    let mut watch = match DirChanges::new(&dir.join(container)) {
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
                waited_ms = bound.as_millis(),
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

fn watch_dir(dir: &Path) -> io::Result<AsyncFd<OwnedFd>> {
    register(DirWatch::new(dir)?.into())
}

/// Resolves at the next change in the watched directory, after draining the events.
async fn changed(watch: &AsyncFd<OwnedFd>) -> io::Result<()> {
    let mut guard = watch.readable().await?;
    drain(watch.get_ref().as_fd())?;
    guard.clear_ready();
    Ok(())
}

/// The async side of [`DirWatch`] (needs a tokio runtime with IO enabled): resolves at each
/// change in the directory, a burst of changes waking once. Wait's runtimes use it for
/// `exitcode` files, and wait for the `..data` symlink kubelet renames into a downward-API
/// volume when it updates it. Nothing polls.
#[derive(Debug)]
pub struct DirChanges(AsyncFd<OwnedFd>);

impl DirChanges {
    /// Watches `dir`, which must exist.
    pub fn new(dir: &Path) -> io::Result<Self> {
        watch_dir(dir).map(Self)
    }

    /// Resolves at the next change in the directory, after draining the events.
    pub async fn changed(&self) -> io::Result<()> {
        changed(&self.0).await
    }
}

/// An inotify watch on one directory of the pod state directory (`ctr/<c>/`): a file written
/// there (closed after writing, renamed or created into place) makes it readable. Both sides of
/// the protocol use it: wait's runtimes through tokio, the emissary in its `poll` loop.
#[derive(Debug)]
pub struct DirWatch {
    fd: OwnedFd,
}

impl DirWatch {
    /// Watches `dir`, which must exist.
    pub fn new(dir: &Path) -> io::Result<Self> {
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)?;
        inotify::add_watch(
            &fd,
            dir,
            inotify::WatchFlags::CLOSE_WRITE
                | inotify::WatchFlags::MOVED_TO
                | inotify::WatchFlags::CREATE,
        )?;
        Ok(Self { fd })
    }

    /// Reads every pending event, so the watch is quiet until the next change.
    pub fn drain(&self) -> io::Result<()> {
        drain(self.fd.as_fd())
    }
}

impl AsFd for DirWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl From<DirWatch> for OwnedFd {
    fn from(watch: DirWatch) -> Self {
        watch.fd
    }
}

/// Reads every pending event of the non-blocking inotify descriptor `fd`.
fn drain(fd: BorrowedFd<'_>) -> io::Result<()> {
    let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
    let mut reader = inotify::Reader::new(fd, &mut buf);
    loop {
        match reader.next() {
            Ok(_) => {}
            Err(Errno::AGAIN) => return Ok(()),
            Err(Errno::INTR) => {}
            Err(errno) => return Err(errno.into()),
        }
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
