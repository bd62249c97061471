//! `/var/run/argo/ctr/<c>/`: one container's files.

use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::Error;

/// The signal file wait writes (a signal number).
pub const SIGNAL: &str = "signal";
/// The exit code file, written last.
pub const EXITCODE: &str = "exitcode";
/// Standard output, when captured.
pub const STDOUT: &str = "stdout";
/// Standard output and error as read, when captured.
pub const COMBINED: &str = "combined";
/// Releases the debug pause before the command.
pub const BEFORE: &str = "before";
/// Releases the debug pause after the command.
pub const AFTER: &str = "after";

/// The directory of one container under `<var_run_argo>/ctr/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CtrDir {
    dir: PathBuf,
}

impl CtrDir {
    /// `<var_run_argo>/ctr/<container>`.
    pub fn new(var_run_argo: &Path, container: &str) -> Self {
        Self {
            dir: var_run_argo.join("ctr").join(container),
        }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A file of the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Creates the directory (and `ctr/`) with mode 0777: the wait container and other
    /// containers may run as other users and must be able to write the signal file. Argo runs
    /// the emissary with umask 0 for this; the mode is set explicitly here so the command keeps
    /// the container's umask.
    pub fn create(&self) -> Result<(), Error> {
        let fail = |source| Error::Io {
            operation: format!("create directory {}", self.dir.display()),
            source,
        };
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o777)
            .create(&self.dir)
            .map_err(fail)?;
        for dir in [self.dir.parent(), Some(self.dir.as_path())]
            .into_iter()
            .flatten()
        {
            // Another user's directory (made by a container running as someone else) stays as
            // that user made it.
            let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777));
        }
        Ok(())
    }

    /// The exit code, when `exitcode` holds a complete one.
    pub fn exit_code(&self) -> Option<i32> {
        std::fs::read_to_string(self.file(EXITCODE))
            .ok()
            .and_then(|text| text.trim().parse().ok())
    }

    /// Writes `exitcode` (mode 0644) by renaming a complete temporary file into place, so a
    /// reader never sees it half written.
    pub fn write_exit_code(&self, code: i32) -> Result<(), Error> {
        let path = self.file(EXITCODE);
        let temp = self.file(".exitcode.tmp");
        let write = || -> io::Result<()> {
            let mut file = std::fs::File::create(&temp)?;
            file.write_all(code.to_string().as_bytes())?;
            file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
            drop(file);
            std::fs::rename(&temp, &path)
        };
        write().map_err(|source| Error::Io {
            operation: format!("write exit code {code} to {}", path.display()),
            source,
        })
    }

    /// Takes the signal written to the `signal` file: removes the file and returns the number.
    /// `None` when there is no file or it does not hold a positive number yet.
    pub fn take_signal(&self) -> Option<i32> {
        let path = self.file(SIGNAL);
        let number: i32 = std::fs::read_to_string(&path).ok()?.trim().parse().ok()?;
        if number <= 0 {
            return None;
        }
        let _ = std::fs::remove_file(&path);
        Some(number)
    }

    /// Opens `stdout` or `combined` for appending (mode 0666: a retry appends to the first
    /// attempt's output, as Argo does).
    pub fn open_log(&self, name: &str) -> Result<std::fs::File, Error> {
        let path = self.file(name);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| Error::Io {
                operation: format!("open {}", path.display()),
                source,
            })?;
        let _ = file.set_permissions(std::fs::Permissions::from_mode(0o666));
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn exit_code_and_signal_files() {
        let root = tempfile::tempdir().unwrap();
        let ctr = CtrDir::new(root.path(), "main");
        ctr.create().unwrap();
        let mode = std::fs::metadata(ctr.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o777);
        assert_eq!(ctr.exit_code(), None);
        ctr.write_exit_code(137).unwrap();
        assert_eq!(ctr.exit_code(), Some(137));
        assert_eq!(std::fs::read_to_string(ctr.file(EXITCODE)).unwrap(), "137");

        assert_eq!(ctr.take_signal(), None);
        std::fs::write(ctr.file(SIGNAL), "").unwrap();
        assert_eq!(ctr.take_signal(), None, "an empty file is not yet a signal");
        std::fs::write(ctr.file(SIGNAL), "15\n").unwrap();
        assert_eq!(ctr.take_signal(), Some(15));
        assert!(!ctr.file(SIGNAL).exists(), "a taken signal is removed");
    }
}
