//! Re-packing a tar stream (what docker's archive endpoint gives for a path) in each format.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Read as _;
use std::path::Path;

use argoexec_archive::{Error, PackFormat, repack_stream, repack_to};
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
    assert!(repack(&tar_of(true), PackFormat::Zip).is_err());
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
