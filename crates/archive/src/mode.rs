//! Argo's artifact `mode` and `recurseMode`.

use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use tracing::debug;

use crate::Error;

/// Applies an artifact's `mode` (an octal int such as `0o755`) to `path`, and with `recurse`
/// (`recurseMode`) to every entry below it.
///
/// Files get `mode` as is. Directories get `mode` plus the search bit of every class the mode lets
/// read ([`dir_mode`]): `0o644` on a directory gives `0o755`, not Argo's unsearchable `0o644`.
/// Symlinks are never followed nor changed (Linux has no symlink modes); `path` itself being a
/// symlink is left alone. Children are changed before their directory, so a restrictive mode on a
/// directory does not block the walk below it.
pub fn apply_mode(path: &Path, mode: u32, recurse: bool) -> Result<(), Error> {
    let mode = mode & 0o7777;
    let meta = fs::symlink_metadata(path).map_err(|source| mode_err(path, mode, source))?;
    if meta.file_type().is_symlink() {
        debug!(path = %path.display(), "not changing the mode of a symlink");
        return Ok(());
    }
    if meta.is_dir() {
        if recurse {
            let children = fs::read_dir(path)
                .and_then(|dir| dir.collect::<io::Result<Vec<_>>>())
                .map_err(|source| mode_err(path, mode, source))?;
            for child in children {
                apply_mode(&child.path(), mode, true)?;
            }
        }
        let dir = dir_mode(mode);
        fs::set_permissions(path, Permissions::from_mode(dir))
            .map_err(|source| mode_err(path, dir, source))
    } else {
        fs::set_permissions(path, Permissions::from_mode(mode))
            .map_err(|source| mode_err(path, mode, source))
    }
}

/// The mode a directory gets for an artifact `mode`: each class (user, group, other) that may read
/// may also search. `0o644` gives `0o755`, `0o600` gives `0o700`, `0o640` gives `0o750`; modes that
/// already have their search bits are unchanged.
pub fn dir_mode(mode: u32) -> u32 {
    mode | ((mode & 0o444) >> 2)
}

fn mode_err(path: &Path, mode: u32, source: io::Error) -> Error {
    Error::ApplyMode {
        path: path.to_path_buf(),
        mode,
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;

    use super::*;

    fn mode_of(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o7777
    }

    #[test]
    fn dir_mode_adds_search_where_read_is_granted() {
        assert_eq!(dir_mode(0o644), 0o755);
        assert_eq!(dir_mode(0o600), 0o700);
        assert_eq!(dir_mode(0o640), 0o750);
        assert_eq!(dir_mode(0o755), 0o755);
        assert_eq!(dir_mode(0o200), 0o200);
        assert_eq!(dir_mode(0o4644), 0o4755);
    }

    #[test]
    fn mode_on_a_file_is_exact() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, b"x").unwrap();
        apply_mode(&file, 0o600, false).unwrap();
        assert_eq!(mode_of(&file), 0o600);
        apply_mode(&file, 0o755, true).unwrap();
        assert_eq!(mode_of(&file), 0o755);
    }

    #[test]
    fn mode_0644_on_a_directory_keeps_it_searchable() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("top");
        fs::create_dir_all(top.join("sub")).unwrap();
        fs::write(top.join("sub/f"), b"x").unwrap();
        let before = mode_of(&top.join("sub/f"));
        apply_mode(&top, 0o644, false).unwrap();
        assert_eq!(mode_of(&top), 0o755);
        // Not recursive: below is untouched.
        assert_eq!(mode_of(&top.join("sub/f")), before);
    }

    #[test]
    fn recurse_mode_reaches_every_entry_and_skips_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("top");
        fs::create_dir_all(top.join("sub")).unwrap();
        fs::write(top.join("sub/f"), b"x").unwrap();
        fs::write(top.join("g"), b"y").unwrap();
        let outside = dir.path().join("outside");
        fs::write(&outside, b"z").unwrap();
        fs::set_permissions(&outside, Permissions::from_mode(0o666)).unwrap();
        std::os::unix::fs::symlink(&outside, top.join("link")).unwrap();

        apply_mode(&top, 0o640, true).unwrap();
        assert_eq!(mode_of(&top), 0o750);
        assert_eq!(mode_of(&top.join("sub")), 0o750);
        assert_eq!(mode_of(&top.join("sub/f")), 0o640);
        assert_eq!(mode_of(&top.join("g")), 0o640);
        // The symlink's target, outside the artifact, is not touched.
        assert_eq!(mode_of(&outside), 0o666);
    }

    #[test]
    fn restrictive_recursive_mode_still_reaches_children() {
        let dir = tempfile::tempdir().unwrap();
        let top = dir.path().join("top");
        fs::create_dir_all(top.join("a/b")).unwrap();
        fs::write(top.join("a/b/f"), b"x").unwrap();
        apply_mode(&top, 0o700, true).unwrap();
        assert_eq!(mode_of(&top), 0o700);
        assert_eq!(mode_of(&top.join("a/b")), 0o700);
        assert_eq!(mode_of(&top.join("a/b/f")), 0o700);
    }

    #[test]
    fn a_missing_path_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = apply_mode(&dir.path().join("nope"), 0o644, false).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
    }
}
