//! The S3 driver over TLS with a private CA (`caSecret`): s3s-fs behind socat's TLS listener,
//! with a CA and a server certificate made by the openssl CLI for the test (`tests/setup`
//! installs socat; openssl is on every machine of this kind).

// A test fails by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use argoexec_storage::{AnyDriver, Driver as _, MountedSecrets, StorageOptions};
use argoexec_template::ArtifactLocation;
use futures::StreamExt as _;

#[path = "../../../tests/support/s3s.rs"]
mod s3s;

struct Socat(Child);

impl Drop for Socat {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is needed to make the test's certificates");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, and a certificate for 127.0.0.1 signed by it, in `dir`.
fn make_certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=argoexec test CA",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

/// socat terminating TLS on a free port and forwarding to `backend`.
fn tls_front(dir: &Path, backend: u16) -> (Socat, u16) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("socat")
        .arg(format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
            dir.join("server.pem").display(),
            dir.join("server.key").display()
        ))
        .arg(format!("TCP:127.0.0.1:{backend}"))
        .stdout(Stdio::null())
        .spawn()
        .expect("socat is not installed: run tests/setup");
    let socat = Socat(child);
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "socat did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (socat, port)
}

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
