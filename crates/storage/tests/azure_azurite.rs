//! The Azure driver against Azurite (installed by `tests/setup`), started by each test on a free
//! loopback port.

// A test fails by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};

use argoexec_storage::{AnyDriver, Driver as _, Error, StorageOptions};
use argoexec_template::ArtifactLocation;
use base64::Engine as _;
use sha2::Digest as _;

use argoexec_testsupport::process;
mod support;

use process::Process as Server;

/// Azurite's well-known account and key.
const ACCOUNT: &str = "devstoreaccount1";
const KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

fn azurite() -> Server {
    Server::spawn("azurite-blob", |port, dir| {
        [
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--location",
            &dir.display().to_string(),
            "--skipApiVersionCheck",
            "--loose",
            "--silent",
        ]
        .map(String::from)
        .to_vec()
    })
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let inner = sha2::Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    sha2::Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .to_vec()
}

/// Creates a container with a shared-key signed request (the driver, like Argo's, never does).
fn create_container(port: u16, container: &str) {
    let b64 = base64::engine::general_purpose::STANDARD;
    let date = jiff::Timestamp::now()
        .strftime("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    let version = "2021-08-06";
    let to_sign = format!(
        "PUT\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n/{ACCOUNT}/{ACCOUNT}/{container}\nrestype:container"
    );
    let signature = b64.encode(hmac_sha256(&b64.decode(KEY).unwrap(), to_sign.as_bytes()));
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        conn,
        "PUT /{ACCOUNT}/{container}?restype=container HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         x-ms-date: {date}\r\nx-ms-version: {version}\r\n\
         Authorization: SharedKey {ACCOUNT}:{signature}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    conn.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 201"), "{response}");
}

fn location(port: u16, container: &str, secret_key: &str) -> ArtifactLocation {
    serde_json::from_value(serde_json::json!({ "azure": {
        "endpoint": format!("http://127.0.0.1:{port}/{ACCOUNT}"),
        "container": container,
        "blob": "wf/pod/x",
        "accountKeySecret": {"name": "azure", "key": secret_key},
    }}))
    .unwrap()
}

#[tokio::test]
async fn put_get_list_delete_small_multi_block_and_directory() {
    let server = azurite();
    create_container(server.port, "artifacts");
    let (_dir, secrets) = support::secrets(&[("azure", "key", &format!("{KEY}\n"))]);
    let loc = location(server.port, "artifacts", "key");
    let (driver, key) = AnyDriver::for_location(&loc, &secrets, &StorageOptions::default())
        .await
        .unwrap();
    assert_eq!(key, "wf/pod/x");
    // 20 MiB: three 8 MiB blocks, the last short, committed by one block list.
    let size = 20 << 20;
    let times = support::exercise(&driver, size).await;
    support::report("azurite", size, times);
}

#[tokio::test]
async fn a_missing_container_is_not_found_and_a_wrong_key_is_permanent() {
    let server = azurite();
    create_container(server.port, "artifacts");
    let wrong = base64::engine::general_purpose::STANDARD.encode([7u8; 64]);
    let (_dir, secrets) = support::secrets(&[("azure", "key", KEY), ("azure", "wrong", &wrong)]);

    let (driver, _) = AnyDriver::for_location(
        &location(server.port, "nocontainer", "key"),
        &secrets,
        &StorageOptions::default(),
    )
    .await
    .unwrap();
    let err = driver.get("a").await.err().unwrap();
    assert!(err.is_not_found(), "{err:?}");

    let (driver, _) = AnyDriver::for_location(
        &location(server.port, "artifacts", "wrong"),
        &secrets,
        &StorageOptions::default(),
    )
    .await
    .unwrap();
    let err = driver.put("a", support::body(b"x", 1)).await.unwrap_err();
    assert!(matches!(err, Error::Failed { .. }), "{err:?}");
}

#[tokio::test]
async fn a_server_that_is_gone_is_transient() {
    let port = {
        let server = azurite();
        server.port
    };
    let (_dir, secrets) = support::secrets(&[("azure", "key", KEY)]);
    let (driver, _) = AnyDriver::for_location(
        &location(port, "artifacts", "key"),
        &secrets,
        &StorageOptions::default(),
    )
    .await
    .unwrap();
    let err = driver.get("a").await.err().unwrap();
    assert!(matches!(err, Error::Transient { .. }), "{err:?}");
}

#[tokio::test]
async fn location_errors_name_the_field() {
    let (_dir, secrets) = support::secrets(&[]);
    let for_json = |json: serde_json::Value| {
        let loc: ArtifactLocation =
            serde_json::from_value(serde_json::json!({ "azure": json })).unwrap();
        let secrets = &secrets;
        async move {
            AnyDriver::for_location(&loc, secrets, &StorageOptions::default())
                .await
                .unwrap_err()
                .to_string()
        }
    };
    assert_eq!(
        for_json(serde_json::json!({"container": "c", "blob": "b"})).await,
        "invalid azure artifact location: endpoint is not set"
    );
    assert_eq!(
        for_json(
            serde_json::json!({"endpoint": "https://a.blob.core.windows.net", "container": "c"})
        )
        .await,
        "invalid azure artifact location: accountKeySecret is required when useSDKCreds is false"
    );
    assert_eq!(
        for_json(serde_json::json!({"endpoint": "https://a.blob.core.windows.net", "blob": "b"}))
            .await,
        "invalid azure artifact location: container is not set"
    );
}
