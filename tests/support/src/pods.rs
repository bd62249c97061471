//! What the suites that run fixture pods (`argoexec run`) share: the fixtures' paths and the root
//! check the local pod runner needs.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// A pod manifest of `tests/fixtures/pods/`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/pods")
        .join(name)
}

/// Whether this process is root, as namespaces and mounts need; says so on stderr when not, so a
/// test that returns early is seen to have skipped.
pub fn is_root() -> bool {
    let root = std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false);
    if !root {
        eprintln!("skipped: the local pod runner needs root");
    }
    root
}
