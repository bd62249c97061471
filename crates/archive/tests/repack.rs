//! Re-packing a tar stream (what docker's archive endpoint gives for a path) in each format.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read as _;
use std::path::Path;

use argoexec_archive::{
    Error, PackFormat, pack_to, repack_gzip_stream, repack_stream, repack_to, tar_files,
};
use futures::TryStreamExt as _;

/// A tar whose one top-level entry is `out/` (with two files) or the file `x`.
fn tar_of(dir: bool) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let header = |size: u64, kind| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        h
    };
    if dir {
        b.append_data(
            &mut header(0, tar::EntryType::Directory),
            "out/",
            std::io::empty(),
        )
        .unwrap();
        b.append_data(
            &mut header(3, tar::EntryType::Regular),
            "out/a",
            &b"one"[..],
        )
        .unwrap();
        b.append_data(
            &mut header(3, tar::EntryType::Regular),
            "out/b",
            &b"two"[..],
        )
        .unwrap();
    } else {
        b.append_data(&mut header(5, tar::EntryType::Regular), "x", &b"hello"[..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

fn repack(tar: &[u8], format: PackFormat) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    repack_to(tar, Path::new("/tmp/out"), &format, &mut out).map(|_| out)
}

#[test]
fn tar_gz_is_the_stream_gzipped_as_it_is() {
    let tar = tar_of(true);
    let gz = repack(&tar, PackFormat::TarGz { level: 6 }).unwrap();
    let mut back = Vec::new();
    flate2::read::MultiGzDecoder::new(&gz[..])
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, tar);
    assert_eq!(repack(&tar, PackFormat::Tar).unwrap(), tar);
}

#[test]
fn as_is_is_the_one_file_and_refuses_a_directory() {
    assert_eq!(repack(&tar_of(false), PackFormat::AsIs).unwrap(), b"hello");
    assert!(matches!(
        repack(&tar_of(true), PackFormat::AsIs),
        Err(Error::PackDirectoryAsIs { .. })
    ));
    assert!(repack(b"", PackFormat::AsIs).is_err());
}

#[tokio::test]
async fn the_stream_form_reads_an_async_reader() {
    let tar = tar_of(false);
    let body = repack_stream(std::io::Cursor::new(tar), "/tmp/x", PackFormat::AsIs);
    let bytes: Vec<u8> = body
        .map_ok(|chunk| chunk.to_vec())
        .try_concat()
        .await
        .unwrap();
    assert_eq!(bytes, b"hello");
}

/// A directory with a file, an empty subdirectory, a nested file and a symlink.
fn tree() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(out.join("sub/empty")).unwrap();
    std::fs::write(out.join("a.txt"), "alpha").unwrap();
    std::fs::write(out.join("sub/b.bin"), vec![7u8; 100_000]).unwrap();
    std::os::unix::fs::symlink("a.txt", out.join("link")).unwrap();
    dir
}

#[test]
fn zip_from_a_tar_is_byte_for_byte_what_packing_the_path_makes() {
    let dir = tree();
    let out = dir.path().join("out");
    let mut tar = Vec::new();
    pack_to(&out, &PackFormat::Tar, &mut tar).unwrap();
    let mut zip = Vec::new();
    pack_to(&out, &PackFormat::Zip, &mut zip).unwrap();
    assert_eq!(repack(&tar, PackFormat::Zip).unwrap(), zip);
    // A single file too.
    let mut tar = Vec::new();
    pack_to(&out.join("a.txt"), &PackFormat::Tar, &mut tar).unwrap();
    let mut zip = Vec::new();
    pack_to(&out.join("a.txt"), &PackFormat::Zip, &mut zip).unwrap();
    assert_eq!(repack(&tar, PackFormat::Zip).unwrap(), zip);
}

/// A tar holding `out/`, `out/a` and `out/b`, a hard link to it.
fn tar_with_hard_link() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    h.set_cksum();
    b.append_data(&mut h, "out/", std::io::empty()).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "out/a", &b"one"[..]).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Link);
    h.set_size(0);
    h.set_mode(0o644);
    b.append_link(&mut h, "out/b", "out/a").unwrap();
    b.into_inner().unwrap()
}

#[test]
fn zip_refuses_a_hard_link_whose_data_went_by() {
    let err = repack(&tar_with_hard_link(), PackFormat::Zip).unwrap_err();
    assert!(chain(&err).contains("hard link"), "{}", chain(&err));
}

async fn collect(body: argoexec_archive::PackStream) -> Vec<u8> {
    body.map_ok(|chunk| chunk.to_vec())
        .try_concat()
        .await
        .unwrap()
}

#[tokio::test]
async fn tar_files_hands_out_each_file_below_the_top_entry() {
    let dir = tree();
    let out = dir.path().join("out");
    let mut tgz = Vec::new();
    pack_to(&out, &PackFormat::TarGz { level: 1 }, &mut tgz).unwrap();
    let mut files = tar_files(std::io::Cursor::new(tgz), true, "/tmp/out");
    let mut got = Vec::new();
    while let Some(file) = files.next().await {
        let file = file.unwrap_or_else(|e| panic!("{}", chain(&e)));
        got.push((file.path.clone(), collect(file.body).await));
    }
    // The symlink is skipped, with a warning; directories give no files.
    assert_eq!(
        got,
        [
            ("a.txt".to_owned(), b"alpha".to_vec()),
            ("sub/b.bin".to_owned(), vec![7u8; 100_000]),
        ]
    );

    // A single file is the top entry itself: its path is empty.
    let mut files = tar_files(std::io::Cursor::new(tar_of(false)), false, "/tmp/x");
    let file = files.next().await.unwrap().unwrap();
    assert_eq!(file.path, "");
    assert_eq!(collect(file.body).await, b"hello");
    assert!(files.next().await.is_none());

    // A hard link cannot be stored: its data went by.
    let mut files = tar_files(
        std::io::Cursor::new(tar_with_hard_link()),
        false,
        "/tmp/out",
    );
    let first = files.next().await.unwrap().unwrap();
    assert_eq!(collect(first.body).await, b"one");
    let err = files.next().await.unwrap().unwrap_err();
    assert!(chain(&err).contains("hard link"), "{}", chain(&err));

    // Nothing at all is an error, not an empty directory.
    let mut files = tar_files(std::io::Cursor::new(vec![0u8; 1024]), false, "/tmp/out");
    assert!(files.next().await.unwrap().is_err());
}

#[tokio::test]
async fn a_gzipped_tar_is_repacked_from_its_content() {
    let dir = tree();
    let out = dir.path().join("out");
    let mut tgz = Vec::new();
    pack_to(&out, &PackFormat::default(), &mut tgz).unwrap();
    let mut zip = Vec::new();
    pack_to(&out, &PackFormat::Zip, &mut zip).unwrap();
    let body = repack_gzip_stream(std::io::Cursor::new(tgz), "/tmp/out", PackFormat::Zip);
    assert_eq!(collect(body).await, zip);
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out += &format!(": {s}");
        source = s.source();
    }
    out
}
