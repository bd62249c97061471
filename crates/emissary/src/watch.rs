//! Watching a `ctr/<c>/` directory with inotify: a file written there (closed after writing,
//! renamed or created into place) makes the watch readable.

use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::inotify;
use rustix::io::Errno;

/// An inotify watch on one directory.
#[derive(Debug)]
pub(crate) struct DirWatch {
    fd: OwnedFd,
}

impl DirWatch {
    /// Watches `dir`, which must exist.
    pub(crate) fn new(dir: &Path) -> io::Result<Self> {
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
    pub(crate) fn drain(&self) -> io::Result<()> {
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        let mut reader = inotify::Reader::new(&self.fd, &mut buf);
        loop {
            match reader.next() {
                Ok(_) => {}
                Err(Errno::AGAIN) => return Ok(()),
                Err(Errno::INTR) => {}
                Err(errno) => return Err(errno.into()),
            }
        }
    }
}

impl AsFd for DirWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
