//! The GCS driver against fake-gcs-server (installed by `tests/setup`), started by each test on
//! a free loopback port. No test reaches Google or the metadata server: every driver is given
//! the emulator's endpoint.

// A test fails by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use argoexec_storage::{AnyDriver, Driver as _, Error, StorageOptions};
use argoexec_template::ArtifactLocation;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use argoexec_testsupport::process;
mod support;

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
    let (_dir, secrets) = support::secrets(&[]);
    let (driver, key) =
        AnyDriver::for_location(&location("artifacts"), &secrets, &options(server.port))
            .await
            .unwrap();
    assert_eq!(key, "wf/pod/x");
    // 20 MiB: a resumable session of three chunks, the last short.
    let size = 20 << 20;
    let times = support::exercise(&driver, size).await;
    support::report("fake-gcs-server", size, times);
}

#[tokio::test]
async fn a_missing_bucket_is_not_found() {
    let server = fake_gcs();
    let (_dir, secrets) = support::secrets(&[]);
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
    let (_dir, secrets) = support::secrets(&[]);
    let (driver, _) = AnyDriver::for_location(&location("artifacts"), &secrets, &options(port))
        .await
        .unwrap();
    let err = driver.get("a").await.err().unwrap();
    assert!(matches!(err, Error::Transient { .. }), "{err:?}");
}

#[tokio::test]
async fn a_key_that_is_not_a_service_account_names_the_secret() {
    let (_dir, secrets) = support::secrets(&[("gcs", "key.json", r#"{"type":"authorized_user"}"#)]);
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

/// Reads an HTTP request head and as much body as `Content-Length` says.
async fn read_request(conn: &mut tokio::net::TcpStream) -> (String, String) {
    use tokio::io::AsyncReadExt as _;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = conn.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the request ended early");
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    let l = l.to_ascii_lowercase();
                    l.strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return (text[..end].to_owned(), text[end + 4..].to_owned());
            }
        }
    }
}

/// A token endpoint that accepts only RS256 assertions signed by `public_pem` for this
/// endpoint, with Argo's scope, and answers with `ya29.test-<n>`; counts the tokens issued.
async fn token_endpoint(public_pem: Vec<u8>) -> (String, Arc<AtomicUsize>) {
    use tokio::io::AsyncWriteExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let uri = format!("http://{}/token", listener.local_addr().unwrap());
    let issued = Arc::new(AtomicUsize::new(0));
    let (count, audience) = (Arc::clone(&issued), uri.clone());
    tokio::spawn(async move {
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(&public_pem).unwrap();
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let (head, body) = read_request(&mut conn).await;
            assert!(head.starts_with("POST /token "), "{head}");
            let form: std::collections::HashMap<&str, &str> = body
                .split('&')
                .filter_map(|kv| kv.split_once('='))
                .collect();
            let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
            validation.set_audience(&[&audience]);
            validation.set_issuer(&["argo@test.iam.gserviceaccount.com"]);
            let grant = form.get("grant_type").copied();
            let claims = jsonwebtoken::decode::<serde_json::Value>(
                form.get("assertion").copied().unwrap_or_default(),
                &key,
                &validation,
            );
            let (status, answer) = match claims {
                Ok(data)
                    if grant == Some("urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer")
                        && data.claims["scope"]
                            == "https://www.googleapis.com/auth/devstorage.read_write"
                        && data.header.kid.as_deref() == Some("key-1") =>
                {
                    let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                    (
                        "200 OK",
                        format!(r#"{{"access_token":"ya29.test-{n}","expires_in":3600}}"#),
                    )
                }
                other => (
                    "400 Bad Request",
                    format!(r#"{{"error":"invalid_grant: {other:?} {grant:?}"}}"#),
                ),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                answer.len()
            );
            conn.write_all(response.as_bytes()).await.unwrap();
            let _ = conn.shutdown().await;
        }
    });
    (uri, issued)
}

/// A proxy to `127.0.0.1:upstream` that records the head of the first request on each
/// connection; returns its port and the heads.
async fn recording_proxy(upstream: u16) -> (u16, Arc<Mutex<Vec<String>>>) {
    use tokio::io::AsyncWriteExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&heads);
    tokio::spawn(async move {
        loop {
            let (mut client, _) = listener.accept().await.unwrap();
            let seen = Arc::clone(&seen);
            tokio::spawn(async move {
                let (head, body) = read_request(&mut client).await;
                seen.lock().unwrap().push(head.clone());
                let mut server = tokio::net::TcpStream::connect(("127.0.0.1", upstream))
                    .await
                    .unwrap();
                server
                    .write_all(format!("{head}\r\n\r\n{body}").as_bytes())
                    .await
                    .unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (port, heads)
}

#[tokio::test]
async fn a_service_account_key_is_exchanged_for_a_bearer_token_sent_with_every_request() {
    let keys = tempfile::tempdir().unwrap();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .current_dir(keys.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "key.pem",
    ]);
    openssl(&["pkey", "-in", "key.pem", "-pubout", "-out", "public.pem"]);
    let private = std::fs::read_to_string(keys.path().join("key.pem")).unwrap();
    let public = std::fs::read(keys.path().join("public.pem")).unwrap();
    let (token_uri, issued) = token_endpoint(public).await;

    let server = fake_gcs();
    create_bucket(server.port, "signed");
    let (proxy, heads) = recording_proxy(server.port).await;
    let key = serde_json::json!({
        "type": "service_account",
        "client_email": "argo@test.iam.gserviceaccount.com",
        "private_key_id": "key-1",
        "private_key": private,
        "token_uri": token_uri,
    });
    let (_dir, secrets) = support::secrets(&[("gcs", "key.json", &key.to_string())]);
    let loc: ArtifactLocation = serde_json::from_value(serde_json::json!({ "gcs": {
        "bucket": "signed", "key": "wf/pod/out.txt",
        "serviceAccountKeySecret": {"name": "gcs", "key": "key.json"},
    }}))
    .unwrap();
    let (driver, key) = AnyDriver::for_location(&loc, &secrets, &options(proxy))
        .await
        .unwrap();
    driver
        .put(&key, support::body(b"signed upload", 4))
        .await
        .unwrap();
    let mut stream = driver.get(&key).await.unwrap();
    let mut back = Vec::new();
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        back.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(back, b"signed upload");

    assert_eq!(issued.load(Ordering::SeqCst), 1, "one token, reused");
    let heads = heads.lock().unwrap();
    assert!(!heads.is_empty());
    for head in heads.iter() {
        assert!(
            head.to_ascii_lowercase()
                .contains("\r\nauthorization: bearer ya29.test-1"),
            "{head}"
        );
    }
}
