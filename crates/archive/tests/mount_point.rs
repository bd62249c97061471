//! Unpacking into a destination that is a mount point (a volume mounted where the artifact
//! goes): it cannot be renamed or replaced, so the archive is staged inside it and moved in.
//! Each test mounts a real tmpfs, which needs root: outside CI a test without it is skipped.

// A test fails by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use argoexec_archive::{Limits, UnpackFormat, unpack_from};
use common::{Raw, gzip, raw_tar};

/// A tmpfs mounted on a fresh directory, unmounted when dropped.
struct Tmpfs {
    _dir: tempfile::TempDir,
    mount: PathBuf,
}

impl Tmpfs {
    fn new() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("volume");
        std::fs::create_dir(&mount).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(&mount)
            .output()
            .unwrap();
        if !out.status.success() {
            let why = String::from_utf8_lossy(&out.stderr);
            assert!(std::env::var_os("CI").is_none(), "mount tmpfs: {why}");
            eprintln!("skipped: cannot mount a tmpfs (needs root): {why}");
            return None;
        }
        Some(Self { _dir: dir, mount })
    }

    fn is_mounted(&self) -> bool {
        let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let mount = self.mount.display().to_string();
        info.lines()
            .any(|l| l.split(' ').nth(4) == Some(mount.as_str()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mount).status();
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn an_archive_unpacks_into_a_mount_point_replacing_what_it_held() {
    let Some(volume) = Tmpfs::new() else { return };
    std::fs::write(volume.mount.join("old.txt"), "from before").unwrap();
    std::fs::create_dir(volume.mount.join("old-dir")).unwrap();
    let archive = gzip(&raw_tar(&[
        Raw::file("a.txt", b"alpha"),
        Raw::dir("sub"),
        Raw::file("sub/b.txt", b"beta"),
    ]));

    unpack_from(
        &archive[..],
        &volume.mount,
        UnpackFormat::Detect,
        &Limits::default(),
    )
    .unwrap();

    assert_eq!(
        names(&volume.mount),
        ["a.txt", "sub"],
        "old entries gone, no staging left"
    );
    assert_eq!(
        std::fs::read_to_string(volume.mount.join("a.txt")).unwrap(),
        "alpha"
    );
    assert_eq!(
        std::fs::read_to_string(volume.mount.join("sub/b.txt")).unwrap(),
        "beta"
    );
    assert!(volume.is_mounted(), "the volume is still mounted there");
}

#[test]
fn a_single_top_directory_becomes_the_mount_points_contents() {
    let Some(volume) = Tmpfs::new() else { return };
    let archive = raw_tar(&[Raw::dir("top"), Raw::file("top/c.txt", b"gamma")]);
    unpack_from(
        &archive[..],
        &volume.mount,
        UnpackFormat::Tar,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(names(&volume.mount), ["c.txt"]);
    assert!(volume.is_mounted());
}

#[test]
fn a_failed_unpack_leaves_the_mount_point_as_it_was() {
    let Some(volume) = Tmpfs::new() else { return };
    std::fs::write(volume.mount.join("old.txt"), "from before").unwrap();
    // A gzip stream cut in the middle.
    let archive = gzip(&raw_tar(&[Raw::file("a.txt", &[7u8; 100_000])]));
    let cut = &archive[..archive.len() / 2];
    unpack_from(cut, &volume.mount, UnpackFormat::Tar, &Limits::default()).unwrap_err();
    assert_eq!(names(&volume.mount), ["old.txt"]);
}

#[test]
fn a_single_file_cannot_replace_a_mount_point() {
    let Some(volume) = Tmpfs::new() else { return };
    std::fs::write(volume.mount.join("old.txt"), "from before").unwrap();
    let err = unpack_from(
        &b"just bytes"[..],
        &volume.mount,
        UnpackFormat::AsIs,
        &Limits::default(),
    )
    .unwrap_err();
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(text.contains("mount point"), "{text}");
    assert!(text.contains(&volume.mount.display().to_string()), "{text}");
    assert_eq!(names(&volume.mount), ["old.txt"], "left as it was");
}
