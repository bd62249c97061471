//! Pack then unpack, for every format: the tree that comes out is the tree that went in.
// Helpers outside #[test] functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs::{self, Permissions};
use std::io::{Cursor, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use argoexec_archive::{
    ArchiveKind, Error, Limits, PackFormat, UnpackFormat, pack_stream, pack_to, unpack, unpack_from,
};
use common::{Arena, Node, Raw, gzip, raw_tar, tree};
use filetime::FileTime;
use futures::StreamExt;

fn set_mtime(path: &Path, seconds: i64) {
    let time = FileTime::from_unix_time(seconds, 0);
    filetime::set_symlink_file_times(path, time, time).unwrap();
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, Permissions::from_mode(mode)).unwrap();
}

/// A directory `données` with unicode names, modes 0600/0755/0700, a 0-byte file, an empty
/// directory and relative symlinks to a file and to a directory. Mtimes are set last, deepest
/// first, so creating children does not move them.
fn fixture(parent: &Path) -> PathBuf {
    let root = parent.join("données");
    fs::create_dir_all(root.join("sub/deep")).unwrap();
    fs::create_dir_all(root.join("empty_dir")).unwrap();
    fs::create_dir_all(root.join("private")).unwrap();
    fs::write(root.join("ü.txt"), "grüße\n").unwrap();
    fs::write(root.join("🎉 party.bin"), [0u8, 1, 2, 255]).unwrap();
    fs::write(root.join("empty.txt"), b"").unwrap();
    fs::write(root.join("private/secret"), b"s3cret").unwrap();
    fs::write(root.join("sub/deep/file"), b"deep").unwrap();
    std::os::unix::fs::symlink("ü.txt", root.join("link_to_file")).unwrap();
    std::os::unix::fs::symlink("sub", root.join("link_to_dir")).unwrap();
    std::os::unix::fs::symlink("../ü.txt", root.join("sub/up")).unwrap();
    std::os::unix::fs::symlink("missing", root.join("dangling")).unwrap();
    chmod(&root.join("ü.txt"), 0o600);
    chmod(&root.join("🎉 party.bin"), 0o755);
    chmod(&root.join("empty.txt"), 0o644);
    chmod(&root.join("private/secret"), 0o400);
    chmod(&root.join("sub/deep/file"), 0o640);
    let mut time = 1_500_000_000;
    for rel in [
        "ü.txt",
        "🎉 party.bin",
        "empty.txt",
        "private/secret",
        "sub/deep/file",
        "link_to_file",
        "link_to_dir",
        "sub/up",
        "dangling",
        "sub/deep",
        "sub",
        "empty_dir",
        "private",
        "",
    ] {
        // Even seconds, so even the MS-DOS time of a zip could carry them.
        time += 86_402;
        set_mtime(&root.join(rel), time);
    }
    chmod(&root.join("private"), 0o700);
    chmod(&root.join("empty_dir"), 0o755);
    root
}

fn pack(src: &Path, format: PackFormat) -> Vec<u8> {
    let mut out = Vec::new();
    let stats = pack_to(src, &format, &mut out).unwrap();
    assert_eq!(stats.bytes_out, out.len() as u64);
    out
}

const FORMATS: [(PackFormat, UnpackFormat, ArchiveKind); 6] = [
    (PackFormat::Tar, UnpackFormat::Tar, ArchiveKind::Tar),
    (
        PackFormat::TarGz { level: 6 },
        UnpackFormat::Tar,
        ArchiveKind::TarGz,
    ),
    (
        PackFormat::TarGz { level: 0 },
        UnpackFormat::Detect,
        ArchiveKind::TarGz,
    ),
    (
        PackFormat::TarGz { level: 9 },
        UnpackFormat::Detect,
        ArchiveKind::TarGz,
    ),
    (PackFormat::Zip, UnpackFormat::Zip, ArchiveKind::Zip),
    (
        PackFormat::TarGz { level: 1 },
        UnpackFormat::Tar,
        ArchiveKind::TarGz,
    ),
];

#[test]
fn directory_round_trips_in_every_format() {
    let src_dir = tempfile::tempdir().unwrap();
    let src = fixture(src_dir.path());
    let expected = tree(&src);
    for (pack_format, unpack_format, kind) in FORMATS {
        let archive = pack(&src, pack_format);
        let arena = Arena::new();
        // The single top-level entry `données` becomes the destination, whatever its name.
        let dest = arena.tmp.path().join("bar");
        let stats = unpack_from(&archive[..], &dest, unpack_format, &Limits::default()).unwrap();
        assert_eq!(stats.kind, kind, "{pack_format:?}");
        assert_eq!(stats.bytes_in, archive.len() as u64, "{pack_format:?}");
        assert_eq!(stats.entries, expected.len() as u64, "{pack_format:?}");
        assert_eq!(tree(&dest), expected, "{pack_format:?}");
        // Nothing else beside it: the staging directory is gone.
        let names: Vec<_> = fs::read_dir(arena.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{pack_format:?}: {names:?}");
    }
}

#[test]
fn tar_names_are_basename_slash_rel_in_sorted_order() {
    let src_dir = tempfile::tempdir().unwrap();
    let src = fixture(src_dir.path());
    let archive = pack(&src, PackFormat::Tar);
    let mut tar = tar::Archive::new(&archive[..]);
    let names: Vec<String> = tar
        .entries()
        .unwrap()
        .map(|e| String::from_utf8(e.unwrap().path_bytes().into_owned()).unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "données/",
            "données/dangling",
            "données/empty.txt",
            "données/empty_dir/",
            "données/link_to_dir",
            "données/link_to_file",
            "données/private/",
            "données/private/secret",
            "données/sub/",
            "données/sub/deep/",
            "données/sub/deep/file",
            "données/sub/up",
            "données/ü.txt",
            "données/🎉 party.bin",
        ]
    );
}

#[test]
fn packing_is_deterministic() {
    let src_dir = tempfile::tempdir().unwrap();
    let src = fixture(src_dir.path());
    for format in [
        PackFormat::Tar,
        PackFormat::TarGz { level: 6 },
        PackFormat::Zip,
    ] {
        assert_eq!(pack(&src, format), pack(&src, format), "{format:?}");
    }
}

#[test]
fn a_single_file_becomes_the_destination_in_every_format() {
    let src_dir = tempfile::tempdir().unwrap();
    let src = src_dir.path().join("a.txt");
    fs::write(&src, b"alpha\n").unwrap();
    chmod(&src, 0o640);
    set_mtime(&src, 1_234_567_890);
    let expected = tree(&src);
    for (pack_format, unpack_format, _) in FORMATS {
        let archive = pack(&src, pack_format);
        let arena = Arena::new();
        let dest = arena.tmp.path().join("bar");
        unpack_from(&archive[..], &dest, unpack_format, &Limits::default()).unwrap();
        assert_eq!(tree(&dest), expected, "{pack_format:?}");
    }
}

#[test]
fn a_zero_byte_file_round_trips() {
    let src_dir = tempfile::tempdir().unwrap();
    let src = src_dir.path().join("empty");
    fs::write(&src, b"").unwrap();
    for (pack_format, unpack_format, _) in FORMATS {
        let archive = pack(&src, pack_format);
        let arena = Arena::new();
        unpack_from(
            &archive[..],
            &arena.dest(),
            unpack_format,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(fs::read(arena.dest()).unwrap(), b"", "{pack_format:?}");
    }
}

#[test]
fn as_is_packs_a_file_byte_for_byte_and_refuses_a_directory() {
    let src_dir = tempfile::tempdir().unwrap();
    let file = src_dir.path().join("f.bin");
    fs::write(&file, b"\x1f\x8bnot really gzip").unwrap();
    assert_eq!(pack(&file, PackFormat::AsIs), b"\x1f\x8bnot really gzip");
    let err = pack_to(src_dir.path(), &PackFormat::AsIs, Vec::new()).unwrap_err();
    assert!(matches!(err, Error::PackDirectoryAsIs { .. }), "{err}");
}

#[test]
fn several_top_level_entries_make_the_destination_a_directory() {
    let archive = raw_tar(&[
        Raw::file("a.txt", b"a"),
        Raw::dir("b/"),
        Raw::file("b/c", b"c"),
    ]);
    let arena = Arena::new();
    unpack_from(
        &archive[..],
        &arena.dest(),
        UnpackFormat::Tar,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(fs::read(arena.dest().join("a.txt")).unwrap(), b"a");
    assert_eq!(fs::read(arena.dest().join("b/c")).unwrap(), b"c");
}

#[test]
fn a_tar_of_one_directory_lands_at_the_destination_name() {
    let archive = gzip(&raw_tar(&[Raw::dir("foo/"), Raw::file("foo/x", b"x")]));
    let arena = Arena::new();
    let dest = arena.tmp.path().join("bar");
    unpack_from(
        &archive[..],
        &dest,
        UnpackFormat::Detect,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(fs::read(dest.join("x")).unwrap(), b"x");
    assert!(!arena.tmp.path().join("foo").exists());
}

#[test]
fn multi_member_gzip_input_is_untarred() {
    let tar = raw_tar(&[
        Raw::dir("top/"),
        Raw::file("top/one", &[1; 3000]),
        Raw::file("top/two", &[2; 5000]),
    ]);
    let mut members = Vec::new();
    for part in tar.chunks(1000) {
        members.extend_from_slice(&gzip(part));
    }
    let arena = Arena::new();
    let stats = unpack_from(
        &members[..],
        &arena.dest(),
        UnpackFormat::Detect,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(stats.kind, ArchiveKind::TarGz);
    assert_eq!(fs::read(arena.dest().join("one")).unwrap(), [1; 3000]);
    assert_eq!(fs::read(arena.dest().join("two")).unwrap(), [2; 5000]);
}

/// Undeclared input that is not a gzip+tar is kept byte for byte, as Argo does.
#[test]
fn undeclared_non_tarballs_are_kept_as_is() {
    let src_dir = tempfile::tempdir().unwrap();
    let src = fixture(src_dir.path());
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("plain text", b"just some text\n".to_vec()),
        ("empty", Vec::new()),
        ("one byte of gzip magic", vec![0x1f]),
        ("gzip of text", gzip(b"hello, not a tar\n")),
        ("gzip of an empty tar", gzip(&[0; 1024])),
        (
            "broken gzip",
            vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff],
        ),
        ("zip", pack(&src, PackFormat::Zip)),
        ("plain tar", pack(&src, PackFormat::Tar)),
    ];
    for (what, bytes) in cases {
        let arena = Arena::new();
        let stats = unpack_from(
            &bytes[..],
            &arena.dest(),
            UnpackFormat::Detect,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(stats.kind, ArchiveKind::AsIs, "{what}");
        assert_eq!(fs::read(arena.dest()).unwrap(), bytes, "{what}");
    }
}

#[test]
fn declared_none_keeps_even_a_tarball() {
    let archive = gzip(&raw_tar(&[Raw::file("x", b"x")]));
    let arena = Arena::new();
    let stats = unpack_from(
        &archive[..],
        &arena.dest(),
        UnpackFormat::AsIs,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(stats.kind, ArchiveKind::AsIs);
    assert_eq!(fs::read(arena.dest()).unwrap(), archive);
}

#[test]
fn an_existing_destination_is_replaced_only_on_success() {
    let arena = Arena::new();
    let dest = arena.dest();
    fs::create_dir_all(dest.join("old")).unwrap();
    fs::write(dest.join("old/file"), b"old").unwrap();

    let bad = raw_tar(&[Raw::file("ok", b"fine"), Raw::file("../evil", b"x")]);
    assert!(unpack_from(&bad[..], &dest, UnpackFormat::Tar, &Limits::default()).is_err());
    assert_eq!(fs::read(dest.join("old/file")).unwrap(), b"old");

    let good = raw_tar(&[Raw::dir("new/"), Raw::file("new/file", b"new")]);
    unpack_from(&good[..], &dest, UnpackFormat::Tar, &Limits::default()).unwrap();
    assert_eq!(fs::read(dest.join("file")).unwrap(), b"new");
    assert!(!dest.join("old").exists());
    assert_eq!(fs::read_dir(arena.tmp.path()).unwrap().count(), 2);
}

#[test]
fn later_entries_replace_earlier_files_and_links_inside() {
    let archive = raw_tar(&[
        Raw::dir("d/"),
        Raw::file("d/f", b"first"),
        Raw::symlink("d/l", "f"),
        Raw::file("d/f", b"second"),
        // Replacing the link writes a new file; it does not write through the link.
        Raw::file("d/l", b"not through"),
        Raw::hardlink("d/h", "d/f"),
    ]);
    let arena = Arena::new();
    unpack_from(
        &archive[..],
        &arena.dest(),
        UnpackFormat::Tar,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(fs::read(arena.dest().join("f")).unwrap(), b"second");
    assert_eq!(fs::read(arena.dest().join("l")).unwrap(), b"not through");
    assert_eq!(fs::read(arena.dest().join("h")).unwrap(), b"second");
}

#[tokio::test]
async fn async_pack_stream_feeds_async_unpack() {
    let src_dir = tempfile::tempdir().unwrap();
    let src = fixture(src_dir.path());
    let expected = tree(&src);
    for (pack_format, unpack_format, _) in FORMATS {
        let stream = pack_stream(src.clone(), pack_format);
        let reader = tokio_util::io::StreamReader::new(stream);
        let arena = Arena::new();
        let dest = arena.tmp.path().join("out");
        unpack(reader, dest.clone(), unpack_format, Limits::default())
            .await
            .unwrap();
        assert_eq!(tree(&dest), expected, "{pack_format:?}");
    }
}

#[tokio::test]
async fn pack_stream_reports_stats_and_errors() {
    let src_dir = tempfile::tempdir().unwrap();
    let src = fixture(src_dir.path());
    let mut stream = pack_stream(src.clone(), PackFormat::Tar);
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        bytes.extend_from_slice(&chunk.unwrap());
    }
    let stats = stream.stats().unwrap();
    assert_eq!(stats.bytes_out, bytes.len() as u64);
    assert_eq!(stats.entries, 14);
    assert_eq!(bytes, pack(&src, PackFormat::Tar));

    let mut failing = pack_stream(src_dir.path().join("missing"), PackFormat::Tar);
    let err = failing.next().await.unwrap().unwrap_err();
    let inner = err.get_ref().unwrap().downcast_ref::<Error>().unwrap();
    assert!(matches!(inner, Error::Pack { .. }), "{inner}");
    assert!(failing.next().await.is_none());
}

#[test]
fn stats_count_entries_and_bytes() {
    let src_dir = tempfile::tempdir().unwrap();
    let src = fixture(src_dir.path());
    let mut out = Vec::new();
    let stats = pack_to(&src, &PackFormat::Zip, &mut out).unwrap();
    assert_eq!(stats.entries, 14);
    assert_eq!(stats.bytes_in, ("grüße\n".len() + 4 + 6 + 4) as u64);
    let arena = Arena::new();
    let unpacked = unpack_from(
        &out[..],
        &arena.dest(),
        UnpackFormat::Zip,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(unpacked.bytes_out, stats.bytes_in);
    assert_eq!(unpacked.bytes_in, out.len() as u64);
}

#[test]
fn zip_archives_from_other_writers_unpack() {
    // A seekable writer puts sizes in the local headers; the streaming one uses data descriptors.
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().unix_permissions(0o751);
    zip.add_directory("top/", options).unwrap();
    zip.start_file("top/a", options).unwrap();
    zip.write_all(b"aaa").unwrap();
    let bytes = zip.finish().unwrap().into_inner();
    let arena = Arena::new();
    unpack_from(
        &bytes[..],
        &arena.dest(),
        UnpackFormat::Zip,
        &Limits::default(),
    )
    .unwrap();
    let mut content = String::new();
    fs::File::open(arena.dest().join("a"))
        .unwrap()
        .read_to_string(&mut content)
        .unwrap();
    assert_eq!(content, "aaa");
    match &tree(&arena.dest())[Path::new("a")] {
        Node::File { mode, .. } => assert_eq!(*mode, 0o751),
        other => panic!("{other:?}"),
    }
}

#[test]
fn long_names_and_link_targets_round_trip() {
    let src_dir = tempfile::tempdir().unwrap();
    let root = src_dir.path().join("long");
    let segment = "ñ".repeat(60);
    let deep = root.join(&segment).join(&segment);
    fs::create_dir_all(&deep).unwrap();
    fs::write(deep.join(format!("{segment}.txt")), b"far").unwrap();
    std::os::unix::fs::symlink(
        Path::new(&segment)
            .join(&segment)
            .join(format!("{segment}.txt")),
        root.join("shortcut"),
    )
    .unwrap();
    let expected = tree(&root);
    for (pack_format, unpack_format, _) in FORMATS {
        let archive = pack(&root, pack_format);
        let arena = Arena::new();
        unpack_from(
            &archive[..],
            &arena.dest(),
            unpack_format,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(tree(&arena.dest()), expected, "{pack_format:?}");
        assert_eq!(fs::read(arena.dest().join("shortcut")).unwrap(), b"far");
    }
}

/// A reader that yields `data` then fails, like a connection dropped mid-download.
struct Broken<'a> {
    data: &'a [u8],
}

impl Read for Broken<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.data.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "connection reset",
            ));
        }
        let n = buf.len().min(self.data.len()).min(700);
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn a_stream_that_breaks_midway_leaves_nothing() {
    let src_dir = tempfile::tempdir().unwrap();
    let src = fixture(src_dir.path());
    for (pack_format, unpack_format, _) in FORMATS {
        let archive = pack(&src, pack_format);
        let arena = Arena::new();
        let before = common::snapshot(arena.tmp.path());
        let broken = Broken {
            data: &archive[..archive.len() * 2 / 3],
        };
        let err =
            unpack_from(broken, &arena.dest(), unpack_format, &Limits::default()).unwrap_err();
        assert!(
            matches!(err, Error::ReadArchive { .. } | Error::ExtractEntry { .. }),
            "{pack_format:?}: {err}"
        );
        assert_eq!(
            common::snapshot(arena.tmp.path()),
            before,
            "{pack_format:?}"
        );
    }
}
