//! Writing checked entries into the staging root.
//!
//! The staging root is a fresh directory nothing else writes to, so what is on disk under it is
//! exactly what [`Extractor`] created, and [`Extractor`] keeps that tree in memory. Every decision
//! is taken on the in-memory tree, never by asking the file system to resolve a path:
//!
//! - a name is a relative path without `..`; each parent must be a directory the archive made (a
//!   parent that is a symlink or a file refuses the entry), missing parents are created;
//! - files are created with `O_CREAT|O_EXCL` (`create_new`), which never follows a symlink; an
//!   entry that replaces a file or a symlink removes it first, so a later entry never writes
//!   through an earlier link (hard or symbolic); nothing may replace a directory;
//! - a symlink's target is resolved on the tree, following the archive's own symlinks, and must
//!   stay inside the root at every step; this is checked when the link is made and again at the
//!   end, against the final tree and the final root (see [`Extractor::finish`]);
//! - a hard link must name a regular file extracted earlier, through directories only;
//! - devices, fifos and sockets are refused.
//!
//! Directory modes and mtimes are applied at the end, deepest first, so a read-only directory
//! does not block its own children and creating children does not reset its mtime.

use std::collections::{HashMap, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs::{self, DirBuilder, OpenOptions, Permissions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use filetime::FileTime;

use super::meter::Meter;
use crate::{Error, Limits, Refusal};

/// Longest symlink target accepted (Linux's `PATH_MAX`).
const MAX_TARGET: usize = 4096;
/// Symlinks followed while resolving one target before it counts as a loop (Linux's `MAXSYMLINKS`).
const MAX_HOPS: usize = 40;
const COPY_BUFFER: usize = 64 * 1024;

/// What the archive made at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Node {
    Dir,
    File,
    Symlink(Vec<u8>),
}

/// Mode and mtime an entry carries.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EntryMeta {
    /// Permission bits.
    pub(crate) mode: Option<u32>,
    /// Seconds since the Unix epoch.
    pub(crate) mtime: Option<i64>,
}

/// What to move into place once extraction succeeded.
pub(crate) struct Extracted {
    /// The staging root, or its single top-level entry.
    pub(crate) path: PathBuf,
    pub(crate) entries: u64,
    pub(crate) bytes_out: u64,
}

/// Writes entries under a fresh root, refusing anything unsafe or over the limits.
pub(crate) struct Extractor<'a> {
    root: PathBuf,
    nodes: HashMap<PathBuf, Node>,
    /// Symlinks made, with the entry name that made them, for the final check.
    links: Vec<(PathBuf, String)>,
    /// Explicit directory entries, applied at the end.
    dirs: Vec<(PathBuf, EntryMeta)>,
    limits: &'a Limits,
    /// Archive bytes read so far, the denominator of the expansion ratio.
    input: Rc<Meter>,
    entries: u64,
    /// Bytes written to files.
    bytes_out: u64,
    /// Bytes read and dropped; they count against the limits too.
    bytes_skipped: u64,
    buffer: Vec<u8>,
}

impl<'a> Extractor<'a> {
    /// Creates `root` (which must not exist) and an extractor writing under it.
    pub(crate) fn new(root: PathBuf, limits: &'a Limits, input: Rc<Meter>) -> io::Result<Self> {
        DirBuilder::new().mode(0o755).create(&root)?;
        Ok(Extractor {
            root,
            nodes: HashMap::new(),
            links: Vec::new(),
            dirs: Vec::new(),
            limits,
            input,
            entries: 0,
            bytes_out: 0,
            bytes_skipped: 0,
            buffer: vec![0; COPY_BUFFER],
        })
    }

    /// Counts one more entry against [`Limits::max_entries`].
    fn count(&mut self, entry: &str) -> Result<(), Error> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(Error::check(
                entry,
                Refusal::TooManyEntries {
                    limit: self.limits.max_entries,
                },
            ));
        }
        Ok(())
    }

    /// Refuses `entry` for `reason`, after counting it.
    pub(crate) fn refuse(&mut self, entry: &str, reason: Refusal) -> Result<(), Error> {
        self.count(entry)?;
        Err(Error::check(entry, reason))
    }

    /// A directory entry. The root itself (`./`) is accepted and ignored.
    pub(crate) fn dir(&mut self, entry: &str, name: &[u8], meta: EntryMeta) -> Result<(), Error> {
        self.count(entry)?;
        let parts = normalize(name).map_err(|reason| Error::check(entry, reason))?;
        if parts.is_empty() {
            return Ok(());
        }
        let rel = self.prepare(entry, &parts, true)?;
        if self.nodes.get(&rel) != Some(&Node::Dir) {
            DirBuilder::new()
                .mode(0o755)
                .create(self.root.join(&rel))
                .map_err(|source| extract_err(entry, source))?;
            self.nodes.insert(rel.clone(), Node::Dir);
        }
        self.dirs.push((rel, meta));
        Ok(())
    }

    /// A regular file entry whose content is `data`; `size` is the size the archive announces.
    pub(crate) fn file(
        &mut self,
        entry: &str,
        name: &[u8],
        meta: EntryMeta,
        size: Option<u64>,
        data: &mut dyn Read,
    ) -> Result<(), Error> {
        self.count(entry)?;
        let parts = non_empty(normalize(name)).map_err(|reason| Error::check(entry, reason))?;
        if let Some(size) = size
            && (self.bytes_out + self.bytes_skipped).saturating_add(size) > self.limits.max_bytes
        {
            return Err(self.too_large(entry));
        }
        let rel = self.prepare(entry, &parts, false)?;
        let path = self.root.join(&rel);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| extract_err(entry, source))?;
        self.nodes.insert(rel, Node::File);
        let mut buffer = std::mem::take(&mut self.buffer);
        let copied = self.copy(entry, data, Some(&mut file), &mut buffer);
        self.buffer = buffer;
        copied?;
        file.set_permissions(Permissions::from_mode(meta.mode.unwrap_or(0o644)))
            .map_err(|source| extract_err(entry, source))?;
        if let Some(mtime) = meta.mtime {
            let time = FileTime::from_unix_time(mtime, 0);
            filetime::set_file_handle_times(&file, Some(time), Some(time))
                .map_err(|source| extract_err(entry, source))?;
        }
        Ok(())
    }

    /// Reads and drops what an entry carries beyond what was used (data on a directory, say),
    /// counting it against the limits like file data: a bomb must not hide in skipped bytes.
    pub(crate) fn skip(&mut self, entry: &str, data: &mut dyn Read) -> Result<(), Error> {
        let mut buffer = std::mem::take(&mut self.buffer);
        let copied = self.copy(entry, data, None, &mut buffer);
        self.buffer = buffer;
        copied
    }

    fn copy(
        &mut self,
        entry: &str,
        data: &mut dyn Read,
        mut out: Option<&mut fs::File>,
        buffer: &mut [u8],
    ) -> Result<(), Error> {
        loop {
            let n = match data.read(buffer) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(extract_err(entry, source)),
            };
            match out {
                Some(_) => self.bytes_out += n as u64,
                None => self.bytes_skipped += n as u64,
            }
            let total = self.bytes_out + self.bytes_skipped;
            if total > self.limits.max_bytes {
                return Err(self.too_large(entry));
            }
            let read = self.input.read();
            if total > self.limits.ratio_grace_bytes
                && total > read.saturating_mul(self.limits.max_ratio)
            {
                return Err(Error::check(
                    entry,
                    Refusal::RatioExceeded {
                        limit: self.limits.max_ratio,
                    },
                ));
            }
            if let Some(file) = out.as_deref_mut() {
                file.write_all(&buffer[..n])
                    .map_err(|source| extract_err(entry, source))?;
            }
        }
    }

    fn too_large(&self, entry: &str) -> Error {
        Error::check(
            entry,
            Refusal::TooLarge {
                limit: self.limits.max_bytes,
            },
        )
    }

    /// A symbolic link entry.
    pub(crate) fn symlink(
        &mut self,
        entry: &str,
        name: &[u8],
        target: &[u8],
        meta: EntryMeta,
    ) -> Result<(), Error> {
        self.count(entry)?;
        let parts = non_empty(normalize(name)).map_err(|reason| Error::check(entry, reason))?;
        if target.is_empty() || target.len() > MAX_TARGET || target.contains(&0) {
            return Err(Error::check(
                entry,
                Refusal::InvalidSymlink {
                    target: lossy(target),
                },
            ));
        }
        let rel = self.prepare(entry, &parts, false)?;
        // Fail fast on the tree so far; `finish` checks again on the whole tree.
        self.resolve(&rel, target, 0)
            .map_err(|reason| Error::check(entry, reason))?;
        let path = self.root.join(&rel);
        std::os::unix::fs::symlink(OsStr::from_bytes(target), &path)
            .map_err(|source| extract_err(entry, source))?;
        self.nodes
            .insert(rel.clone(), Node::Symlink(target.to_vec()));
        if let Some(mtime) = meta.mtime {
            let time = FileTime::from_unix_time(mtime, 0);
            filetime::set_symlink_file_times(&path, time, time)
                .map_err(|source| extract_err(entry, source))?;
        }
        self.links.push((rel, entry.to_owned()));
        Ok(())
    }

    /// A hard link entry to `target`, a file extracted earlier (named as in the archive).
    pub(crate) fn hardlink(
        &mut self,
        entry: &str,
        name: &[u8],
        target: &[u8],
    ) -> Result<(), Error> {
        self.count(entry)?;
        let parts = non_empty(normalize(name)).map_err(|reason| Error::check(entry, reason))?;
        let shown = lossy(target);
        let target_parts = normalize(target).map_err(|reason| {
            let reason = match reason {
                Refusal::AbsolutePath | Refusal::ParentDirectory => Refusal::HardlinkEscapes {
                    target: shown.clone(),
                },
                _ => Refusal::HardlinkTarget {
                    target: shown.clone(),
                },
            };
            Error::check(entry, reason)
        })?;
        let mut prefix = PathBuf::new();
        for (i, part) in target_parts.iter().enumerate() {
            prefix.push(OsStr::from_bytes(part));
            let last = i + 1 == target_parts.len();
            match self.nodes.get(&prefix) {
                Some(Node::Dir) if !last => {}
                Some(Node::File) if last => {}
                Some(Node::Symlink(_)) if !last => {
                    // Linking through a symlink could reach any file on the machine.
                    return Err(Error::check(
                        entry,
                        Refusal::HardlinkEscapes { target: shown },
                    ));
                }
                _ => {
                    return Err(Error::check(
                        entry,
                        Refusal::HardlinkTarget { target: shown },
                    ));
                }
            }
        }
        let target_rel = prefix;
        if target_parts.is_empty() || target_rel == join(&parts) {
            return Err(Error::check(
                entry,
                Refusal::HardlinkTarget { target: shown },
            ));
        }
        let rel = self.prepare(entry, &parts, false)?;
        fs::hard_link(self.root.join(&target_rel), self.root.join(&rel))
            .map_err(|source| extract_err(entry, source))?;
        self.nodes.insert(rel, Node::File);
        Ok(())
    }

    /// Makes the parents of `parts` (refusing symlinks and files on the way) and clears the slot
    /// itself: an existing file or symlink is removed; an existing directory stays for a directory
    /// entry and refuses anything else. Returns the relative path.
    fn prepare(&mut self, entry: &str, parts: &[&[u8]], is_dir: bool) -> Result<PathBuf, Error> {
        let mut rel = PathBuf::new();
        let Some((last, parents)) = parts.split_last() else {
            return Err(Error::check(entry, Refusal::InvalidName));
        };
        for part in parents {
            rel.push(OsStr::from_bytes(part));
            match self.nodes.get(&rel) {
                Some(Node::Dir) => {}
                Some(Node::Symlink(_)) => {
                    return Err(Error::check(
                        entry,
                        Refusal::ThroughSymlink {
                            link: lossy(rel.as_os_str().as_bytes()),
                        },
                    ));
                }
                Some(Node::File) => {
                    return Err(Error::check(
                        entry,
                        Refusal::NotADirectory {
                            parent: lossy(rel.as_os_str().as_bytes()),
                        },
                    ));
                }
                None => {
                    DirBuilder::new()
                        .mode(0o755)
                        .create(self.root.join(&rel))
                        .map_err(|source| extract_err(entry, source))?;
                    self.nodes.insert(rel.clone(), Node::Dir);
                }
            }
        }
        rel.push(OsStr::from_bytes(last));
        match self.nodes.get(&rel) {
            None => {}
            Some(Node::Dir) if is_dir => {}
            Some(Node::Dir) => return Err(Error::check(entry, Refusal::ReplacesDirectory)),
            Some(Node::File | Node::Symlink(_)) => {
                // Removing a symlink removes the link, never what it points to.
                fs::remove_file(self.root.join(&rel))
                    .map_err(|source| extract_err(entry, source))?;
                self.nodes.remove(&rel);
            }
        }
        Ok(rel)
    }

    /// Resolves the symlink at `link` with `target` on the tree, following the archive's own
    /// symlinks; refuses when any step leaves the first `root_len` components (the root).
    fn resolve(&self, link: &Path, target: &[u8], root_len: usize) -> Result<(), Refusal> {
        let escapes = || Refusal::SymlinkEscapes {
            target: lossy(target),
        };
        if target.starts_with(b"/") {
            return Err(escapes());
        }
        let mut stack: Vec<OsString> = link
            .parent()
            .map(|parent| {
                parent
                    .components()
                    .map(|c| c.as_os_str().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        if stack.len() < root_len {
            return Err(escapes());
        }
        let mut queue: VecDeque<&[u8]> = target.split(|&b| b == b'/').collect();
        let mut hops = 0;
        while let Some(part) = queue.pop_front() {
            match part {
                b"" | b"." => {}
                b".." => {
                    if stack.len() <= root_len {
                        return Err(escapes());
                    }
                    stack.pop();
                }
                name => {
                    stack.push(OsStr::from_bytes(name).to_owned());
                    let here: PathBuf = stack.iter().collect();
                    if let Some(Node::Symlink(next)) = self.nodes.get(&here) {
                        hops += 1;
                        if hops > MAX_HOPS {
                            return Err(Refusal::InvalidSymlink {
                                target: lossy(target),
                            });
                        }
                        if next.starts_with(b"/") {
                            return Err(escapes());
                        }
                        stack.pop();
                        for part in next.split(|&b| b == b'/').rev() {
                            queue.push_front(part);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks every symlink again on the finished tree, applies directory metadata, and says what
    /// becomes the destination: the single top-level entry if there is exactly one (Argo's rule),
    /// else the root itself.
    ///
    /// With a single top-level directory `top`, the destination is `top` renamed, so a link must
    /// stay inside `top`: `top/l -> ../top/x` would point outside once `top` is renamed. A single
    /// top-level symlink would resolve from the destination's parent and is refused.
    pub(crate) fn finish(mut self) -> Result<Extracted, Error> {
        let mut tops = self
            .nodes
            .keys()
            .filter(|path| path.components().nth(1).is_none());
        let single = match (tops.next(), tops.next()) {
            (Some(top), None) => Some(top.clone()),
            _ => None,
        };
        let root_len = usize::from(single.is_some());
        for (rel, entry) in &self.links {
            if let Some(Node::Symlink(target)) = self.nodes.get(rel) {
                self.resolve(rel, target, root_len)
                    .map_err(|reason| Error::check(entry.as_str(), reason))?;
            }
        }
        self.dirs
            .sort_by_key(|(rel, _)| std::cmp::Reverse(rel.components().count()));
        for (rel, meta) in &self.dirs {
            let path = self.root.join(rel);
            let entry = lossy(rel.as_os_str().as_bytes());
            if let Some(mode) = meta.mode {
                fs::set_permissions(&path, Permissions::from_mode(mode))
                    .map_err(|source| extract_err(&entry, source))?;
            }
            if let Some(mtime) = meta.mtime {
                let time = FileTime::from_unix_time(mtime, 0);
                filetime::set_symlink_file_times(&path, time, time)
                    .map_err(|source| extract_err(&entry, source))?;
            }
        }
        let path = match &single {
            Some(top) => self.root.join(top),
            None => self.root.clone(),
        };
        Ok(Extracted {
            path,
            entries: self.entries,
            bytes_out: self.bytes_out,
        })
    }
}

/// Splits an archive name into its components, dropping empty and `.` ones; refuses absolute
/// names, `..` and NUL bytes.
fn normalize(name: &[u8]) -> Result<Vec<&[u8]>, Refusal> {
    if name.contains(&0) {
        return Err(Refusal::InvalidName);
    }
    if name.starts_with(b"/") {
        return Err(Refusal::AbsolutePath);
    }
    let parts: Vec<&[u8]> = name
        .split(|&b| b == b'/')
        .filter(|part| !part.is_empty() && *part != b".")
        .collect();
    if parts.iter().any(|part| *part == b"..") {
        return Err(Refusal::ParentDirectory);
    }
    Ok(parts)
}

fn non_empty(parts: Result<Vec<&[u8]>, Refusal>) -> Result<Vec<&[u8]>, Refusal> {
    match parts {
        Ok(parts) if parts.is_empty() => Err(Refusal::InvalidName),
        other => other,
    }
}

fn join(parts: &[&[u8]]) -> PathBuf {
    parts.iter().map(|part| OsStr::from_bytes(part)).collect()
}

pub(crate) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn extract_err(entry: &str, source: io::Error) -> Error {
    Error::ExtractEntry {
        entry: entry.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_drops_dots_and_refuses_escapes() {
        assert_eq!(
            normalize(b"./a//b/./c/").unwrap(),
            vec![&b"a"[..], b"b", b"c"]
        );
        assert_eq!(normalize(b"./").unwrap(), Vec::<&[u8]>::new());
        assert_eq!(normalize(b"/etc/passwd"), Err(Refusal::AbsolutePath));
        assert_eq!(normalize(b"a/../../x"), Err(Refusal::ParentDirectory));
        assert_eq!(normalize(b".."), Err(Refusal::ParentDirectory));
        assert_eq!(normalize(b"a\0b"), Err(Refusal::InvalidName));
        // A name that merely starts with dots is a name.
        assert_eq!(normalize(b"..a/b..").unwrap(), vec![&b"..a"[..], b"b.."]);
    }

    fn extractor(limits: &Limits) -> (tempfile::TempDir, Extractor<'_>) {
        let dir = tempfile::tempdir().unwrap();
        let ex =
            Extractor::new(dir.path().join("root"), limits, Rc::new(Meter::default())).unwrap();
        (dir, ex)
    }

    #[test]
    fn resolve_follows_the_archive_symlinks() {
        let limits = Limits::default();
        let (_dir, mut ex) = extractor(&limits);
        ex.dir("d/", b"d/", EntryMeta::default()).unwrap();
        ex.dir("d/e/", b"d/e/", EntryMeta::default()).unwrap();
        ex.symlink("d/e/up", b"d/e/up", b"..", EntryMeta::default())
            .unwrap();
        // d/e/up/.. is d/.., the root: inside.
        assert!(ex.resolve(Path::new("d/x"), b"e/up/..", 0).is_ok());
        // d/e/up/../.. leaves the root.
        assert!(ex.resolve(Path::new("d/x"), b"e/up/../..", 0).is_err());
        // Inside the root but outside the single top-level directory `d`.
        assert!(ex.resolve(Path::new("d/x"), b"../d/e", 1).is_err());
        assert!(ex.resolve(Path::new("d/x"), b"e", 1).is_ok());
        assert!(ex.resolve(Path::new("d/x"), b"/d", 0).is_err());
    }

    #[test]
    fn resolve_stops_on_loops() {
        let limits = Limits::default();
        let (_dir, mut ex) = extractor(&limits);
        ex.symlink("a", b"a", b"b", EntryMeta::default()).unwrap();
        ex.symlink("b", b"b", b"a", EntryMeta::default()).unwrap();
        assert!(matches!(
            ex.resolve(Path::new("c"), b"a/x", 0),
            Err(Refusal::InvalidSymlink { .. })
        ));
    }
}
