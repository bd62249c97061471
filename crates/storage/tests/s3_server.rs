//! The S3 driver against a real S3-compatible server (s3s-fs, installed by `tests/setup`),
//! started by the test on a free loopback port.

// A test fails by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use argoexec_storage::{AnyDriver, Driver, Error, MountedSecrets, S3Tuning, StorageOptions};
use argoexec_template::ArtifactLocation;
use bytes::Bytes;
use futures::StreamExt as _;

use argoexec_testsupport::s3s;

use s3s::{ACCESS, S3Server};

fn secrets(access: &str) -> (tempfile::TempDir, MountedSecrets) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("creds")).unwrap();
    std::fs::write(dir.path().join("creds/accesskey"), access).unwrap();
    std::fs::write(
        dir.path().join("creds/secretkey"),
        format!("{}\n", s3s::SECRET),
    )
    .unwrap();
    let secrets = MountedSecrets::new(dir.path());
    (dir, secrets)
}

fn location(port: u16, bucket: &str, create: bool) -> ArtifactLocation {
    let mut s3 = serde_json::json!({
        "endpoint": format!("127.0.0.1:{port}"),
        "insecure": true,
        "bucket": bucket,
        "accessKeySecret": {"name": "creds", "key": "accesskey"},
        "secretKeySecret": {"name": "creds", "key": "secretkey"},
    });
    if create {
        s3["createBucketIfNotPresent"] = serde_json::json!({});
    }
    serde_json::from_value(serde_json::json!({ "s3": s3 })).unwrap()
}

fn body(data: Vec<u8>, chunk: usize) -> argoexec_storage::ByteStream {
    let chunks: Vec<std::io::Result<Bytes>> = data
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks).boxed()
}

async fn read_all(driver: &AnyDriver, key: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = driver.get(key).await.unwrap();
    while let Some(c) = s.next().await {
        out.extend_from_slice(&c.unwrap());
    }
    out
}

fn options() -> StorageOptions {
    StorageOptions {
        s3: S3Tuning {
            part_size: 5 << 20,
            concurrency: 3,
        },
        ..StorageOptions::default()
    }
}

#[tokio::test]
async fn put_get_list_delete_small_and_multipart() {
    let server = S3Server::start();
    let (_dir, secrets) = secrets(ACCESS);
    let loc = location(server.port, "artifacts", true);
    let (driver, _) = AnyDriver::for_location(&loc, &secrets, &options())
        .await
        .unwrap();

    driver
        .put("wf/pod/small.txt", body(b"hello".to_vec(), 2))
        .await
        .unwrap();
    assert_eq!(read_all(&driver, "wf/pod/small.txt").await, b"hello");

    driver
        .put("wf/pod/empty", body(Vec::new(), 1))
        .await
        .unwrap();
    assert_eq!(read_all(&driver, "wf/pod/empty").await, b"");

    // 17 MiB in 5 MiB parts: four parts, the last short, three in flight.
    let big: Vec<u8> = (0..17 << 20).map(|i: u32| (i % 251) as u8).collect();
    driver
        .put("wf/pod/dir/big.bin", body(big.clone(), 64 << 10))
        .await
        .unwrap();
    assert!(read_all(&driver, "wf/pod/dir/big.bin").await == big);

    let keys = driver.list("wf/pod/").await.unwrap();
    assert_eq!(
        keys,
        ["wf/pod/dir/big.bin", "wf/pod/empty", "wf/pod/small.txt"]
    );
    assert!(driver.is_dir("wf/pod/dir").await.unwrap());
    assert!(!driver.is_dir("wf/pod/small.txt").await.unwrap());

    driver.delete("wf/pod/small.txt").await.unwrap();
    let err = driver.get("wf/pod/small.txt").await.err().unwrap();
    assert!(err.is_not_found(), "{err}");
}

#[tokio::test]
async fn an_existing_bucket_is_fine_for_create_bucket_if_not_present() {
    let server = S3Server::start();
    let (_dir, secrets) = secrets(ACCESS);
    let loc = location(server.port, "shared", true);
    let (first, _) = AnyDriver::for_location(&loc, &secrets, &options())
        .await
        .unwrap();
    first.put("a", body(b"1".to_vec(), 1)).await.unwrap();
    // A second step creating the same bucket: Argo 3.3.9 failed here.
    let (second, _) = AnyDriver::for_location(&loc, &secrets, &options())
        .await
        .unwrap();
    second.put("b", body(b"2".to_vec(), 1)).await.unwrap();
    assert_eq!(read_all(&second, "a").await, b"1");
}

#[tokio::test]
async fn wrong_credentials_are_not_retried() {
    let server = S3Server::start();
    let (_dir, secrets) = secrets("WRONGKEY");
    let loc = location(server.port, "artifacts", true);
    let (driver, _) = AnyDriver::for_location(&loc, &secrets, &options())
        .await
        .unwrap();
    let err = driver.put("k", body(b"x".to_vec(), 1)).await.unwrap_err();
    assert!(matches!(err, Error::Failed { .. }), "{err:?}");
}

#[tokio::test]
async fn missing_secret_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let loc = location(1, "b", false);
    let err = AnyDriver::for_location(&loc, &MountedSecrets::new(dir.path()), &options())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "read secret creds/accesskey");
}
