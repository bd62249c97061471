//! The S3 driver over TLS with a private CA (`caSecret`): s3s-fs behind socat's TLS listener,
//! with a CA and a server certificate made by the openssl CLI for the test (`tests/setup`
//! installs socat; openssl is on every machine of this kind).

// A test fails by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use argoexec_storage::{AnyDriver, Driver as _, MountedSecrets, StorageOptions};
use argoexec_template::ArtifactLocation;
use futures::StreamExt as _;

use argoexec_testsupport::s3s;
use argoexec_testsupport::tls;

use tls::{make_certificates, tls_front};

fn location(port: u16, ca: bool) -> ArtifactLocation {
    let mut s3 = serde_json::json!({
        "endpoint": format!("https://127.0.0.1:{port}"),
        "bucket": "tls",
        "accessKeySecret": {"name": "creds", "key": "accesskey"},
        "secretKeySecret": {"name": "creds", "key": "secretkey"},
        "createBucketIfNotPresent": {},
    });
    if ca {
        s3["caSecret"] = serde_json::json!({"name": "ca", "key": "ca.pem"});
    }
    serde_json::from_value(serde_json::json!({ "s3": s3 })).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ca_secret_makes_a_private_ca_trusted() {
    let server = s3s::S3Server::start();
    let certs = tempfile::tempdir().unwrap();
    make_certificates(certs.path());
    let (_socat, port) = tls_front(certs.path(), server.port);

    let secrets_dir = tempfile::tempdir().unwrap();
    server.write_secrets(secrets_dir.path(), "creds");
    std::fs::create_dir_all(secrets_dir.path().join("ca")).unwrap();
    std::fs::copy(
        certs.path().join("ca.pem"),
        secrets_dir.path().join("ca/ca.pem"),
    )
    .unwrap();
    let secrets = MountedSecrets::new(secrets_dir.path());
    let options = StorageOptions::default();

    let (driver, _) = AnyDriver::for_location(&location(port, true), &secrets, &options)
        .await
        .unwrap();
    let body = futures::stream::iter([Ok(bytes::Bytes::from_static(b"over tls"))]).boxed();
    driver.put("k", body).await.unwrap();
    let mut back = Vec::new();
    let mut stream = driver.get("k").await.unwrap();
    while let Some(chunk) = stream.next().await {
        back.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(back, b"over tls");

    // Without the CA, the server's certificate is not trusted: a clear, permanent failure.
    let (driver, _) = AnyDriver::for_location(&location(port, false), &secrets, &options)
        .await
        .unwrap();
    let err = match driver.get("k").await {
        Ok(_) => panic!("an untrusted certificate was accepted"),
        Err(err) => err,
    };
    let text = argoexec_storage::chain(&err);
    assert!(text.to_lowercase().contains("certificate"), "{text}");
}
