//! A corpus of hostile archives. Each must fail with an error naming the entry, leave nothing
//! outside `tmp/dest` (the temp dir is walked before and after) and leave no `tmp/dest` at all.
// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::io::{Cursor, Write};
use std::path::Path;

use argoexec_archive::{Error, Limits, Refusal, UnpackFormat, unpack_from};
use common::{Arena, Raw, gzip, raw_tar, snapshot};
use zip::write::SimpleFileOptions;

/// Which refusal a case expects.
#[derive(Debug, Clone, Copy)]
enum Expect {
    Absolute,
    ParentDir,
    Symlink,
    Hardlink,
    ThroughSymlink,
    NotADirectory,
    ReplacesDirectory,
    Special,
    TooMany,
    TooLarge,
    Ratio,
    Header,
}

impl Expect {
    fn matches(self, refusal: &Refusal) -> bool {
        matches!(
            (self, refusal),
            (Expect::Absolute, Refusal::AbsolutePath)
                | (Expect::ParentDir, Refusal::ParentDirectory)
                | (Expect::Symlink, Refusal::SymlinkEscapes { .. })
                | (
                    Expect::Hardlink,
                    Refusal::HardlinkEscapes { .. } | Refusal::HardlinkTarget { .. }
                )
                | (Expect::ThroughSymlink, Refusal::ThroughSymlink { .. })
                | (Expect::NotADirectory, Refusal::NotADirectory { .. })
                | (Expect::ReplacesDirectory, Refusal::ReplacesDirectory)
                | (Expect::Special, Refusal::SpecialFile { .. })
                | (Expect::TooMany, Refusal::TooManyEntries { .. })
                | (Expect::TooLarge, Refusal::TooLarge { .. })
                | (Expect::Ratio, Refusal::RatioExceeded { .. })
                | (Expect::Header, Refusal::HeaderTooLarge { .. })
        )
    }
}

struct Case {
    name: &'static str,
    archive: Vec<u8>,
    format: UnpackFormat,
    limits: Limits,
    /// The entry the error must name.
    entry: String,
    expect: Expect,
}

impl Case {
    fn tar(name: &'static str, entries: &[Raw], entry: &str, expect: Expect) -> Self {
        Case {
            name,
            archive: raw_tar(entries),
            format: UnpackFormat::Tar,
            limits: Limits::default(),
            entry: entry.to_owned(),
            expect,
        }
    }

    /// The same entries gzip-compressed and undeclared: detection must not weaken the checks.
    fn tgz(name: &'static str, entries: &[Raw], entry: &str, expect: Expect) -> Self {
        Case {
            archive: gzip(&raw_tar(entries)),
            format: UnpackFormat::Detect,
            ..Case::tar(name, entries, entry, expect)
        }
    }

    fn zip(name: &'static str, archive: Vec<u8>, entry: &str, expect: Expect) -> Self {
        Case {
            name,
            archive,
            format: UnpackFormat::Zip,
            limits: Limits::default(),
            entry: entry.to_owned(),
            expect,
        }
    }

    fn with_limits(self, limits: Limits) -> Self {
        Case { limits, ..self }
    }

    fn run(&self, arena: &Arena) {
        let before = snapshot(arena.tmp.path());
        let dest = arena.dest();
        let result = unpack_from(&self.archive[..], &dest, self.format, &self.limits);
        let err = match result {
            Ok(stats) => panic!("{}: unpacked {stats:?}", self.name),
            Err(err) => err,
        };
        let Error::CheckEntry { entry, reason } = &err else {
            panic!("{}: not a refusal: {err:?}", self.name);
        };
        assert_eq!(entry, &self.entry, "{}: {err}", self.name);
        assert!(
            self.expect.matches(reason),
            "{}: expected {:?}, got {err}",
            self.name,
            self.expect
        );
        assert!(
            err.to_string().contains(&format!("{:?}", self.entry)),
            "{}: message does not name the entry: {err}",
            self.name
        );
        assert!(
            fs::symlink_metadata(&dest).is_err(),
            "{}: left a destination",
            self.name
        );
        assert_eq!(
            snapshot(arena.tmp.path()),
            before,
            "{}: left something behind",
            self.name
        );
        assert_eq!(fs::read(arena.sentinel().join("keep")).unwrap(), b"keep");
    }
}

fn zip_with(build: impl FnOnce(&mut zip::ZipWriter<Cursor<Vec<u8>>>)) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    build(&mut zip);
    zip.finish().unwrap().into_inner()
}

fn zip_file(zip: &mut zip::ZipWriter<Cursor<Vec<u8>>>, name: &str, data: &[u8]) {
    zip.start_file(name, SimpleFileOptions::default()).unwrap();
    zip.write_all(data).unwrap();
}

/// A name no test machine has in /etc, so a broken check cannot touch a real file.
const ETC_PROBE: &str = "argoexec-archive-hostile-probe";

fn corpus(arena: &Arena) -> Vec<Case> {
    let sentinel = arena.sentinel();
    let sentinel = sentinel.to_str().unwrap();
    let zeros = vec![0u8; 8 << 20];
    let small = Limits {
        max_entries: 10,
        max_bytes: 1 << 20,
        max_ratio: 10,
        ratio_grace_bytes: 0,
        max_header_bytes: 64 << 10,
    };
    vec![
        Case::tar(
            "absolute path",
            &[Raw::file(&format!("{sentinel}/evil"), b"x")],
            &format!("{sentinel}/evil"),
            Expect::Absolute,
        ),
        Case::tar(
            "dot-dot escape",
            &[Raw::file("../sentinel/evil", b"x")],
            "../sentinel/evil",
            Expect::ParentDir,
        ),
        Case::tgz(
            "dot-dot inside the name, gzip undeclared",
            &[Raw::dir("a/"), Raw::file("a/../../sentinel/evil", b"x")],
            "a/../../sentinel/evil",
            Expect::ParentDir,
        ),
        Case::tar(
            "symlink to /etc then a file through it",
            &[
                Raw::symlink("etc", "/etc"),
                Raw::file(&format!("etc/{ETC_PROBE}"), b"x"),
            ],
            "etc",
            Expect::Symlink,
        ),
        Case::tar(
            "absolute symlink to the sentinel then a file through it",
            &[Raw::symlink("s", sentinel), Raw::file("s/evil", b"x")],
            "s",
            Expect::Symlink,
        ),
        Case::tar(
            "relative symlink out then a file through it",
            &[Raw::symlink("s", "../sentinel"), Raw::file("s/evil", b"x")],
            "s",
            Expect::Symlink,
        ),
        Case::tar(
            "a file through an inside symlink",
            &[
                Raw::dir("d/"),
                Raw::symlink("l", "d"),
                Raw::file("l/through", b"x"),
            ],
            "l/through",
            Expect::ThroughSymlink,
        ),
        Case::tar(
            "symlink dot-dot chain",
            &[
                Raw::symlink("l1", "."),
                Raw::symlink("l2", "l1/../sentinel"),
            ],
            "l2",
            Expect::Symlink,
        ),
        Case::tgz(
            "symlink that escapes only through a later symlink",
            &[
                Raw::dir("d/"),
                Raw::symlink("d/p", "q/../sentinel"),
                Raw::symlink("d/q", ".."),
                Raw::file("other", b"x"),
            ],
            "d/p",
            Expect::Symlink,
        ),
        Case::tar(
            "symlink inside the root but outside the single top-level directory",
            &[
                Raw::dir("top/"),
                Raw::file("top/f", b"x"),
                Raw::symlink("top/l", "../top/f"),
            ],
            "top/l",
            Expect::Symlink,
        ),
        Case::tar(
            "a lone symlink that would become the destination",
            &[Raw::symlink("only", "sentinel")],
            "only",
            Expect::Symlink,
        ),
        Case::tar(
            "hard link to /etc/passwd",
            &[Raw::hardlink("passwd", "/etc/passwd")],
            "passwd",
            Expect::Hardlink,
        ),
        Case::tar(
            "hard link out through dot-dot",
            &[Raw::hardlink("keep", "../sentinel/keep")],
            "keep",
            Expect::Hardlink,
        ),
        Case::tar(
            "hard link through a symlink out",
            &[
                Raw::symlink("s", "."),
                Raw::file("f", b"x"),
                Raw::hardlink("h", "s/f"),
            ],
            "h",
            Expect::Hardlink,
        ),
        Case::tar(
            "hard link to a name not in the archive",
            &[Raw::hardlink("h", "nowhere")],
            "h",
            Expect::Hardlink,
        ),
        Case::tar(
            "symlink out then overwritten by a regular file",
            &[
                Raw::symlink("x", "../sentinel/keep"),
                Raw::file("x", b"overwritten"),
            ],
            "x",
            Expect::Symlink,
        ),
        Case::tar(
            "duplicate: a file then a symlink out at the same name",
            &[Raw::file("dup", b"x"), Raw::symlink("dup", "../sentinel")],
            "dup",
            Expect::Symlink,
        ),
        Case::tar(
            "duplicate: a directory then a symlink at the same name",
            &[
                Raw::dir("dup/"),
                Raw::symlink("dup", "."),
                Raw::file("dup/x", b"x"),
            ],
            "dup",
            Expect::ReplacesDirectory,
        ),
        Case::tar(
            "a file through a file",
            &[Raw::file("f", b"x"), Raw::file("f/g", b"y")],
            "f/g",
            Expect::NotADirectory,
        ),
        Case::tar(
            "block device",
            &[Raw::special("disk", b'4')],
            "disk",
            Expect::Special,
        ),
        Case::tar(
            "character device",
            &[Raw::file("ok", b"x"), Raw::special("null", b'3')],
            "null",
            Expect::Special,
        ),
        Case::tar(
            "fifo",
            &[Raw::special("pipe", b'6')],
            "pipe",
            Expect::Special,
        ),
        Case::tar(
            "GNU long name with dot-dot",
            &[
                Raw::long_name(format!("{}/../../sentinel/evil", "a".repeat(120)).as_bytes()),
                Raw::file("innocent", b"x"),
            ],
            &format!("{}/../../sentinel/evil", "a".repeat(120)),
            Expect::ParentDir,
        ),
        Case::tar(
            "PAX path with dot-dot",
            &[
                Raw::pax(&[("path", "../sentinel/evil")]),
                Raw::file("innocent", b"x"),
            ],
            "../sentinel/evil",
            Expect::ParentDir,
        ),
        Case::tar(
            "PAX linkpath to /etc",
            &[
                Raw::pax(&[("linkpath", "/etc")]),
                Raw::symlink("innocent", "innocent-target"),
                Raw::file(&format!("innocent/{ETC_PROBE}"), b"x"),
            ],
            "innocent",
            Expect::Symlink,
        ),
        Case::tar(
            "GNU long name bigger than the header budget",
            &[
                Raw::long_name(&vec![b'a'; 128 << 10]),
                Raw::file("innocent", b"x"),
            ],
            "(header after \"\")",
            Expect::Header,
        )
        .with_limits(small.clone()),
        Case::tar(
            "entry count bomb",
            &(0..50)
                .map(|i| Raw::file(&format!("f{i:02}"), b"x"))
                .collect::<Vec<_>>(),
            "f10",
            Expect::TooMany,
        )
        .with_limits(small.clone()),
        Case::tgz(
            "size bomb",
            &[Raw::file("ok", b"x"), Raw::file("big", &vec![7; 2 << 20])],
            "big",
            Expect::TooLarge,
        )
        .with_limits(small.clone()),
        Case::tgz(
            "ratio bomb",
            &[Raw::file("zeros", &zeros)],
            "zeros",
            Expect::Ratio,
        )
        .with_limits(Limits {
            max_bytes: 1 << 40,
            ..small.clone()
        }),
        Case::zip(
            "zip dot-dot name",
            zip_with(|zip| zip_file(zip, "../sentinel/evil", b"x")),
            "../sentinel/evil",
            Expect::ParentDir,
        ),
        Case::zip(
            "zip absolute name",
            zip_with(|zip| zip_file(zip, &format!("{sentinel}/evil"), b"x")),
            &format!("{sentinel}/evil"),
            Expect::Absolute,
        ),
        Case::zip(
            "zip symlink escape then a file through it",
            zip_with(|zip| {
                zip.add_symlink("l", "../../etc", SimpleFileOptions::default())
                    .unwrap();
                zip_file(zip, &format!("l/{ETC_PROBE}"), b"x");
            }),
            "l",
            Expect::Symlink,
        ),
        Case::zip(
            "zip file through an inside symlink",
            zip_with(|zip| {
                zip.add_directory("d/", SimpleFileOptions::default())
                    .unwrap();
                zip.add_symlink("l", "d", SimpleFileOptions::default())
                    .unwrap();
                zip_file(zip, "l/x", b"x");
            }),
            "l/x",
            Expect::ThroughSymlink,
        ),
        Case::zip(
            "zip fifo",
            zip_with(|zip| {
                let fifo = SimpleFileOptions::default().external_attributes(0o010_644 << 16);
                zip.start_file("pipe", fifo).unwrap();
            }),
            "pipe",
            Expect::Special,
        ),
        Case::zip(
            "zip ratio bomb",
            zip_with(|zip| zip_file(zip, "zeros", &zeros)),
            "zeros",
            Expect::Ratio,
        )
        .with_limits(Limits {
            max_bytes: 1 << 40,
            ..small.clone()
        }),
        Case::zip(
            "zip entry count bomb",
            zip_with(|zip| {
                for i in 0..50 {
                    zip_file(zip, &format!("f{i:02}"), b"x");
                }
            }),
            "f10",
            Expect::TooMany,
        )
        .with_limits(small),
    ]
}

#[test]
fn every_hostile_archive_is_refused_and_leaves_nothing() {
    // One arena for all: each case must leave it exactly as it found it, which `run` checks.
    let arena = Arena::new();
    let corpus = corpus(&arena);
    assert!(corpus.len() >= 20, "corpus too small: {}", corpus.len());
    for case in &corpus {
        case.run(&arena);
    }
    assert!(!Path::new("/etc").join(ETC_PROBE).exists());
}

#[test]
fn a_refused_archive_keeps_the_existing_destination() {
    let arena = Arena::new();
    fs::create_dir(arena.dest()).unwrap();
    fs::write(arena.dest().join("old"), b"old").unwrap();
    let archive = raw_tar(&[Raw::file("new", b"new"), Raw::symlink("out", "../sentinel")]);
    let before = snapshot(arena.tmp.path());
    let err = unpack_from(
        &archive[..],
        &arena.dest(),
        UnpackFormat::Tar,
        &Limits::default(),
    )
    .unwrap_err();
    assert!(err.refusal().is_some(), "{err}");
    assert_eq!(snapshot(arena.tmp.path()), before);
    assert_eq!(fs::read(arena.dest().join("old")).unwrap(), b"old");
}
