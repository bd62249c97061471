//! The GCS driver against fake-gcs-server (installed by `tests/setup`), started by each test on
//! a free loopback port. No test reaches Google or the metadata server: every driver is given
//! the emulator's endpoint.

// A test fails by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use argoexec_storage::{AnyDriver, Driver as _, Error, StorageOptions};
use argoexec_template::ArtifactLocation;

#[path = "../../../tests/support/process.rs"]
mod process;
#[path = "support/server.rs"]
mod server;

use process::Process as Server;

fn fake_gcs() -> Server {
    Server::spawn("fake-gcs-server", |port, dir| {
        let url = format!("http://127.0.0.1:{port}");
        [
            "-scheme",
            "http",
            "-host",
            "127.0.0.1",
            "-port",
            &port.to_string(),
            "-backend",
            "filesystem",
            "-filesystem-root",
            &dir.display().to_string(),
            "-external-url",
            &url,
            "-public-host",
            &format!("127.0.0.1:{port}"),
            "-log-level",
            "error",
        ]
        .map(String::from)
        .to_vec()
    })
}

/// Creates a bucket through the JSON API (the driver, like Argo's, never does).
fn create_bucket(port: u16, bucket: &str) {
    use std::io::{Read as _, Write as _};
    let body = format!(r#"{{"name":"{bucket}"}}"#);
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        conn,
        "POST /storage/v1/b?project=test HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

fn location(bucket: &str) -> ArtifactLocation {
    serde_json::from_value(serde_json::json!({ "gcs": { "bucket": bucket, "key": "wf/pod/x" } }))
        .unwrap()
}

fn options(port: u16) -> StorageOptions {
    StorageOptions {
        gcs_endpoint: Some(format!("127.0.0.1:{port}")),
        ..StorageOptions::default()
    }
}

#[tokio::test]
async fn put_get_list_delete_small_resumable_and_directory() {
    let server = fake_gcs();
    create_bucket(server.port, "artifacts");
    let (_dir, secrets) = server::secrets(&[]);
    let (driver, key) =
        AnyDriver::for_location(&location("artifacts"), &secrets, &options(server.port))
            .await
            .unwrap();
    assert_eq!(key, "wf/pod/x");
    // 20 MiB: a resumable session of three chunks, the last short.
    let size = 20 << 20;
    let times = server::exercise(&driver, size).await;
    server::report("fake-gcs-server", size, times);
}

#[tokio::test]
async fn a_missing_bucket_is_not_found() {
    let server = fake_gcs();
    let (_dir, secrets) = server::secrets(&[]);
    let (driver, _) =
        AnyDriver::for_location(&location("nobucket"), &secrets, &options(server.port))
            .await
            .unwrap();
    let err = driver.get("a").await.err().unwrap();
    assert!(err.is_not_found(), "{err:?}");
}

#[tokio::test]
async fn a_server_that_is_gone_is_transient() {
    let port = fake_gcs().port;
    let (_dir, secrets) = server::secrets(&[]);
    let (driver, _) = AnyDriver::for_location(&location("artifacts"), &secrets, &options(port))
        .await
        .unwrap();
    let err = driver.get("a").await.err().unwrap();
    assert!(matches!(err, Error::Transient { .. }), "{err:?}");
}

#[tokio::test]
async fn a_key_that_is_not_a_service_account_names_the_secret() {
    let (_dir, secrets) = server::secrets(&[("gcs", "key.json", r#"{"type":"authorized_user"}"#)]);
    let loc: ArtifactLocation = serde_json::from_value(serde_json::json!({ "gcs": {
        "bucket": "b", "key": "k",
        "serviceAccountKeySecret": {"name": "gcs", "key": "key.json"},
    }}))
    .unwrap();
    let err = AnyDriver::for_location(&loc, &secrets, &options(1))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid gcs artifact location: serviceAccountKeySecret gcs/key.json: \
         type is \"authorized_user\": expected \"service_account\""
    );
}
