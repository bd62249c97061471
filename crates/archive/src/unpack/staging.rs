//! The hidden directory an archive is unpacked into, and its commit to the destination (by
//! rename, or entry by entry into a mount point).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use tracing::warn;

use crate::Error;

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
    pub(super) fn new(dest: &Path) -> Result<Self, Error> {
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
    pub(super) fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// A scratch path inside the staging directory, outside the extraction root.
    pub(super) fn scratch(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(super) fn dest_name(&self) -> String {
        self.dest
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    pub(super) fn error(&self, source: io::Error) -> Error {
        Error::Stage {
            path: self.dest.clone(),
            source,
        }
    }

    /// Moves `from` (inside the staging directory) to the destination, moving an existing
    /// destination aside first and back if the move fails, then removes the staging directory.
    pub(super) fn commit(self, from: &Path) -> Result<(), Error> {
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

#[cfg(test)]
mod tests {
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
