//! Resolving a container path inside the container's root, the way the container itself would.
//!
//! A path walked from `/proc/self/fd/<root>` by the kernel would resolve an absolute symlink
//! against *our* root, not the container's: `/data -> /mnt/data` in the container would lead into
//! the wait container's own `/mnt/data`. So the path is resolved one component at a time, a
//! symlink's target is read and resolved again from the container's root (absolute) or from its
//! directory (relative), and `..` never climbs above the root. The result is a path under the held
//! root with no symlink left in it.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// As many symlinks as Linux follows in one lookup.
const MAX_LINKS: usize = 40;

enum Step {
    Parent,
    Name(OsString),
}

fn steps(path: &Path) -> impl DoubleEndedIterator<Item = Step> + '_ {
    path.components().filter_map(|c| match c {
        Component::ParentDir => Some(Step::Parent),
        Component::Normal(name) => Some(Step::Name(name.to_owned())),
        Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
    })
}

/// `path` (absolute inside the container; a relative one counts from its root) resolved under
/// `root`, following every symlink, the last one included.
pub(super) fn in_root(root: &Path, path: &Path) -> io::Result<PathBuf> {
    let mut pending: VecDeque<Step> = steps(path).collect();
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(step) = pending.pop_front() {
        let name = match step {
            Step::Parent => {
                resolved.pop();
                continue;
            }
            Step::Name(name) => name,
        };
        let candidate = resolved.join(&name);
        let here = root.join(&candidate);
        if !std::fs::symlink_metadata(&here)?.file_type().is_symlink() {
            resolved = candidate;
            continue;
        }
        links += 1;
        if links > MAX_LINKS {
            return Err(io::Error::from(rustix::io::Errno::LOOP));
        }
        let target = std::fs::read_link(&here)?;
        if target.has_root() {
            resolved = PathBuf::new();
        }
        for step in steps(&target).rev() {
            pending.push_front(step);
        }
    }
    if resolved.as_os_str().is_empty() {
        return Ok(root.to_path_buf());
    }
    Ok(root.join(resolved))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("mnt/data")).unwrap();
        std::fs::write(r.join("mnt/data/out.txt"), "x").unwrap();
        symlink("/mnt/data", r.join("data")).unwrap();
        symlink("../mnt/./data/out.txt", r.join("mnt/rel")).unwrap();
        symlink("/../../../mnt/data", r.join("escape")).unwrap();
        symlink("loop", r.join("loop")).unwrap();

        let data = r.join("mnt/data");
        assert_eq!(in_root(r, Path::new("/data")).unwrap(), data);
        assert_eq!(
            in_root(r, Path::new("/data/out.txt")).unwrap(),
            data.join("out.txt")
        );
        assert_eq!(
            in_root(r, Path::new("/mnt/rel")).unwrap(),
            data.join("out.txt")
        );
        assert_eq!(in_root(r, Path::new("/escape")).unwrap(), data);
        assert_eq!(
            in_root(r, Path::new("/../../mnt/data")).unwrap(),
            data,
            "`..` stops at the root"
        );
        assert_eq!(in_root(r, Path::new("/")).unwrap(), r.to_path_buf());
        assert_eq!(
            in_root(r, Path::new("/missing")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        assert_eq!(
            in_root(r, Path::new("/loop")).unwrap_err().raw_os_error(),
            Some(rustix::io::Errno::LOOP.raw_os_error())
        );
    }
}
