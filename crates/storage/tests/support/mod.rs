//! What the storage drivers' integration tests share: secrets, bodies and one round trip of every
//! operation. Emulators start through `tests/support/process.rs`.

// Each test binary that includes this file uses a different part of it.
#![allow(dead_code)]

use std::time::Instant;

use argoexec_storage::{AnyDriver, ByteStream, Driver};
use bytes::Bytes;
use futures::StreamExt as _;

/// Secrets mounted as files under a temp dir: `(name, key, value)`.
pub(crate) fn secrets(
    files: &[(&str, &str, &str)],
) -> (tempfile::TempDir, argoexec_storage::MountedSecrets) {
    let dir = tempfile::tempdir().unwrap();
    for (name, key, value) in files {
        std::fs::create_dir_all(dir.path().join(name)).unwrap();
        std::fs::write(dir.path().join(name).join(key), value).unwrap();
    }
    let secrets = argoexec_storage::MountedSecrets::new(dir.path());
    (dir, secrets)
}

/// A body streamed in chunks of `chunk` bytes.
pub(crate) fn body(data: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks).boxed()
}

/// `size` bytes of a pattern that no power-of-two block boundary aligns with.
pub(crate) fn pattern(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8).collect()
}

/// The whole object.
pub(crate) async fn read_all(driver: &AnyDriver, key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = driver.get(key).await.unwrap();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

/// Puts, gets, lists, tells directories from files and deletes through `driver`, whose bucket
/// or container is empty: a small object, an empty one, `big` bytes (more than one block or
/// part) and a directory of two files. Returns the seconds the big upload and download took.
pub(crate) async fn exercise(driver: &AnyDriver, big: usize) -> (f64, f64) {
    driver
        .put("wf/pod/small.txt", body(b"hello", 2))
        .await
        .unwrap();
    assert_eq!(read_all(driver, "wf/pod/small.txt").await, b"hello");

    driver.put("wf/pod/empty", body(b"", 1)).await.unwrap();
    assert_eq!(read_all(driver, "wf/pod/empty").await, b"");

    let data = pattern(big);
    let started = Instant::now();
    driver
        .put("wf/pod/dir/big.bin", body(&data, 64 << 10))
        .await
        .unwrap();
    let up = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let back = read_all(driver, "wf/pod/dir/big.bin").await;
    let down = started.elapsed().as_secs_f64();
    assert!(
        back == data,
        "the big object came back different ({} bytes)",
        back.len()
    );
    driver
        .put("wf/pod/dir/sub/c.txt", body(b"c", 1))
        .await
        .unwrap();

    let mut keys = driver.list("wf/pod/").await.unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            "wf/pod/dir/big.bin",
            "wf/pod/dir/sub/c.txt",
            "wf/pod/empty",
            "wf/pod/small.txt"
        ]
    );
    let mut keys = driver.list("wf/pod/dir").await.unwrap();
    keys.sort();
    assert_eq!(keys, ["wf/pod/dir/big.bin", "wf/pod/dir/sub/c.txt"]);
    assert!(driver.is_dir("wf/pod/dir").await.unwrap());
    assert!(driver.is_dir("wf/pod/dir/").await.unwrap());
    assert!(!driver.is_dir("wf/pod/small.txt").await.unwrap());
    assert!(!driver.is_dir("wf/pod/nothing").await.unwrap());

    // A directory artifact downloads whole.
    let dest = tempfile::tempdir().unwrap();
    let n = argoexec_storage::download_dir(driver, "wf/pod/dir", &dest.path().join("d"), 2)
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(
        std::fs::read(dest.path().join("d/sub/c.txt")).unwrap(),
        b"c"
    );
    assert!(std::fs::read(dest.path().join("d/big.bin")).unwrap() == data);

    let err = driver.get("wf/pod/missing").await.err().unwrap();
    assert!(err.is_not_found(), "{err:?}");

    driver.delete("wf/pod/small.txt").await.unwrap();
    let err = driver.get("wf/pod/small.txt").await.err().unwrap();
    assert!(err.is_not_found(), "{err:?}");
    (up, down)
}

/// Prints a throughput line: `<what>: <MiB> MiB up <x> MiB/s, down <y> MiB/s`.
pub(crate) fn report(what: &str, size: usize, (up, down): (f64, f64)) {
    let mib = size as f64 / (1024.0 * 1024.0);
    println!(
        "{what}: {mib:.0} MiB up {:.0} MiB/s, down {:.0} MiB/s",
        mib / up,
        mib / down
    );
}
