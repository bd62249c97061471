//! Helpers shared by the integration tests: tree snapshots and raw archive builders.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;

/// What is at one path, as much as an archive round trip must keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Dir {
        mode: u32,
        mtime: i64,
    },
    File {
        mode: u32,
        mtime: i64,
        data: Vec<u8>,
    },
    Symlink {
        target: PathBuf,
        mtime: i64,
    },
    Other,
}

/// Every path under `root` (relative, never following symlinks) and what is there. `root` itself
/// is the empty path.
pub fn tree(root: &Path) -> BTreeMap<PathBuf, Node> {
    let mut out = BTreeMap::new();
    visit(root, Path::new(""), &mut out);
    out
}

fn visit(path: &Path, rel: &Path, out: &mut BTreeMap<PathBuf, Node>) {
    let meta = fs::symlink_metadata(path).unwrap();
    let kind = meta.file_type();
    let node = if kind.is_dir() {
        for child in fs::read_dir(path).unwrap() {
            let child = child.unwrap();
            visit(&child.path(), &rel.join(child.file_name()), out);
        }
        Node::Dir {
            mode: meta.mode() & 0o7777,
            mtime: meta.mtime(),
        }
    } else if kind.is_file() {
        Node::File {
            mode: meta.mode() & 0o7777,
            mtime: meta.mtime(),
            data: fs::read(path).unwrap(),
        }
    } else if kind.is_symlink() {
        Node::Symlink {
            target: fs::read_link(path).unwrap(),
            mtime: meta.mtime(),
        }
    } else {
        Node::Other
    };
    out.insert(rel.to_path_buf(), node);
}

/// Every path under `root` with its kind only, for "nothing changed" checks.
pub fn snapshot(root: &Path) -> BTreeMap<PathBuf, &'static str> {
    tree(root)
        .into_iter()
        .map(|(path, node)| {
            let kind = match node {
                Node::Dir { .. } => "dir",
                Node::File { .. } => "file",
                Node::Symlink { .. } => "symlink",
                Node::Other => "other",
            };
            (path, kind)
        })
        .collect()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// One raw tar entry: a ustar header written byte by byte (so names the tar crate's builder
/// refuses, like `../x` or `/x`, can be made) and its data.
pub struct Raw {
    pub name: Vec<u8>,
    pub kind: u8,
    pub link: Vec<u8>,
    pub mode: u32,
    pub data: Vec<u8>,
}

impl Raw {
    pub fn file(name: &str, data: &[u8]) -> Self {
        Raw {
            name: name.as_bytes().to_vec(),
            kind: b'0',
            link: Vec::new(),
            mode: 0o644,
            data: data.to_vec(),
        }
    }

    pub fn dir(name: &str) -> Self {
        Raw {
            kind: b'5',
            mode: 0o755,
            ..Raw::file(name, b"")
        }
    }

    pub fn symlink(name: &str, target: &str) -> Self {
        Raw {
            kind: b'2',
            link: target.as_bytes().to_vec(),
            mode: 0o777,
            ..Raw::file(name, b"")
        }
    }

    pub fn hardlink(name: &str, target: &str) -> Self {
        Raw {
            kind: b'1',
            link: target.as_bytes().to_vec(),
            ..Raw::file(name, b"")
        }
    }

    pub fn special(name: &str, kind: u8) -> Self {
        Raw {
            kind,
            ..Raw::file(name, b"")
        }
    }

    /// A GNU long-name record for the entry that follows.
    pub fn long_name(name: &[u8]) -> Self {
        let mut data = name.to_vec();
        data.push(0);
        Raw {
            name: b"././@LongLink".to_vec(),
            kind: b'L',
            link: Vec::new(),
            mode: 0o644,
            data,
        }
    }

    /// A PAX extended header for the entry that follows.
    pub fn pax(records: &[(&str, &str)]) -> Self {
        let mut data = Vec::new();
        for (key, value) in records {
            let body = format!(" {key}={value}\n");
            // The length counts its own digits.
            let mut len = body.len() + 1;
            while format!("{len}{body}").len() != len {
                len += 1;
            }
            data.extend_from_slice(format!("{len}{body}").as_bytes());
        }
        Raw {
            name: b"PaxHeaders/x".to_vec(),
            kind: b'x',
            link: Vec::new(),
            mode: 0o644,
            data,
        }
    }

    fn header(&self) -> [u8; 512] {
        let mut h = [0u8; 512];
        assert!(self.name.len() <= 100 && self.link.len() <= 100);
        h[..self.name.len()].copy_from_slice(&self.name);
        octal(&mut h[100..108], u64::from(self.mode));
        octal(&mut h[108..116], 0);
        octal(&mut h[116..124], 0);
        octal(&mut h[124..136], self.data.len() as u64);
        octal(&mut h[136..148], 1_600_000_000);
        h[156] = self.kind;
        h[157..157 + self.link.len()].copy_from_slice(&self.link);
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
        let field = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(field.as_bytes());
        h
    }
}

fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let text = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(text.as_bytes());
    field[digits] = 0;
}

/// A tar stream of raw entries, with its end-of-archive blocks.
pub fn raw_tar(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        out.extend_from_slice(&entry.header());
        out.extend_from_slice(&entry.data);
        let pad = (512 - entry.data.len() % 512) % 512;
        out.extend(std::iter::repeat_n(0u8, pad));
    }
    out.extend(std::iter::repeat_n(0u8, 1024));
    out
}

/// A fresh temp dir laid out as `tmp/sentinel/keep` (the sibling that must survive) with
/// `tmp/dest` as the destination to use.
pub struct Arena {
    pub tmp: tempfile::TempDir,
}

impl Arena {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("sentinel")).unwrap();
        fs::write(tmp.path().join("sentinel/keep"), b"keep").unwrap();
        Arena { tmp }
    }

    pub fn dest(&self) -> PathBuf {
        self.tmp.path().join("dest")
    }

    pub fn sentinel(&self) -> PathBuf {
        self.tmp.path().join("sentinel")
    }
}
