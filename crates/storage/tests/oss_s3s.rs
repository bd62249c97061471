//! The OSS driver (OSS's S3-compatible API) against an S3-compatible server (s3s-fs, installed
//! by `tests/setup`), started by each test on a free loopback port.

// A test fails by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use argoexec_storage::{AnyDriver, Driver as _, Error, S3Tuning, StorageOptions};
use argoexec_template::ArtifactLocation;

use argoexec_testsupport::s3s;
mod support;

use s3s::{ACCESS, S3Server, SECRET};

fn location(port: u16, extra: serde_json::Value) -> ArtifactLocation {
    let mut oss = serde_json::json!({
        // No scheme: plain HTTP, as the OSS SDK has it; an IP address: path-style.
        "endpoint": format!("127.0.0.1:{port}"),
        "bucket": "artifacts",
        "key": "wf/pod/x",
        "accessKeySecret": {"name": "oss", "key": "accessKey"},
        "secretKeySecret": {"name": "oss", "key": "secretKey"},
        "createBucketIfNotPresent": true,
    });
    for (k, v) in extra.as_object().unwrap() {
        oss[k] = v.clone();
    }
    serde_json::from_value(serde_json::json!({ "oss": oss })).unwrap()
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
async fn put_get_list_delete_small_multipart_and_directory() {
    let server = S3Server::start();
    let (_dir, secrets) =
        support::secrets(&[("oss", "accessKey", ACCESS), ("oss", "secretKey", SECRET)]);
    let loc = location(server.port, serde_json::json!({}));
    let (driver, key) = AnyDriver::for_location(&loc, &secrets, &options())
        .await
        .unwrap();
    assert_eq!(key, "wf/pod/x");
    // 12 MiB in 5 MiB parts: a multipart upload of three parts.
    let size = 12 << 20;
    let times = support::exercise(&driver, size).await;
    support::report("oss on s3s-fs", size, times);
}

#[tokio::test]
async fn wrong_keys_are_refused_for_good() {
    let server = S3Server::start();
    let (_dir, secrets) =
        support::secrets(&[("oss", "accessKey", ACCESS), ("oss", "secretKey", "wrong")]);
    let loc = location(
        server.port,
        serde_json::json!({"securityToken": "sts-token"}),
    );
    let (driver, _) = AnyDriver::for_location(&loc, &secrets, &options())
        .await
        .unwrap();
    let err = driver.put("k", support::body(b"x", 1)).await.unwrap_err();
    assert!(matches!(err, Error::Failed { .. }), "{err:?}");
}

#[tokio::test]
async fn a_security_token_goes_with_the_keys() {
    let server = S3Server::start();
    let (_dir, secrets) =
        support::secrets(&[("oss", "accessKey", ACCESS), ("oss", "secretKey", SECRET)]);
    let loc = location(
        server.port,
        serde_json::json!({"securityToken": "sts-token"}),
    );
    let (driver, _) = AnyDriver::for_location(&loc, &secrets, &options())
        .await
        .unwrap();
    driver.put("k", support::body(b"x", 1)).await.unwrap();
    assert_eq!(support::read_all(&driver, "k").await, b"x");
}

#[tokio::test]
async fn fields_without_support_are_refused_by_name() {
    let (_dir, secrets) = support::secrets(&[]);
    let refused = |extra: serde_json::Value| {
        let loc = location(1, extra);
        let secrets = &secrets;
        async move {
            AnyDriver::for_location(&loc, secrets, &options())
                .await
                .unwrap_err()
                .to_string()
        }
    };
    assert_eq!(
        refused(serde_json::json!({"lifecycleRule": {"markDeletionAfterDays": 30}})).await,
        "oss artifacts do not support lifecycleRule with markInfrequentAccessAfterDays or \
         markDeletionAfterDays set"
    );
    assert_eq!(
        refused(serde_json::json!({"useSDKCreds": true})).await,
        "oss artifacts do not support useSDKCreds (Alibaba's default credential chain); \
         give accessKeySecret and secretKeySecret"
    );
    // Zero days is no rule, as in Argo: only the missing secret stops this one.
    assert_eq!(
        refused(serde_json::json!({"lifecycleRule": {"markDeletionAfterDays": 0}})).await,
        "read secret oss/accessKey"
    );
}
