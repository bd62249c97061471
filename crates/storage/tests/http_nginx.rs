//! The HTTP and Artifactory drivers against a real nginx (installed by `tests/setup`), started by
//! each test on a free loopback port with a generated configuration: WebDAV PUT under `/files/`,
//! basic auth under `/private/`, a 503, a 302 and a header check.

// A test fails by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../../../tests/support/nginx.rs"]
mod nginx;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Child;

use argoexec_storage::{Artifactory, ByteStream, Driver, Error, Http, MountedSecrets};
use argoexec_template::{ArtifactoryArtifact, HttpArtifact};
use bytes::Bytes;
use futures::StreamExt as _;

const USER: &str = "alice";
const PASSWORD: &str = "wonderland";

/// An nginx in the foreground, in one process (`master_process off`), so that killing the child
/// stops it whole; its configuration, logs, temp files and document root live in a tempdir.
struct Nginx {
    child: Child,
    base: String,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Nginx {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    /// Secrets mounted as files, as Argo mounts them: `creds/username`, `creds/password`.
    fn secrets(&self, password: &str) -> MountedSecrets {
        let root = self.dir.path().join(format!("secrets-{password}"));
        std::fs::create_dir_all(root.join("creds")).unwrap();
        std::fs::write(root.join("creds/username"), format!("{USER}\n")).unwrap();
        std::fs::write(root.join("creds/password"), password).unwrap();
        MountedSecrets::new(root)
    }
}

fn start() -> Nginx {
    let nginx = nginx::find().unwrap_or_else(|| {
        panic!("nginx is not installed: run tests/setup (as root) to install it")
    });
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for sub in ["www/files", "www/private", "www/token"] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    std::fs::write(d.join("www/files/target.txt"), "redirect target\n").unwrap();
    std::fs::write(d.join("www/token/secret.txt"), "header accepted\n").unwrap();
    std::fs::write(
        d.join("htpasswd"),
        nginx::htpasswd_line(USER, PASSWORD) + "\n",
    )
    .unwrap();

    // This instance answers with its own marker.
    let marker = format!("{}-{}", std::process::id(), fastrand::u64(..));
    std::fs::write(d.join("www/files/instance.txt"), &marker).unwrap();
    let server = |_port| {
        format!(
            r#"
            root {www};
            location /files/ {{
                dav_methods PUT DELETE MKCOL;
                create_full_put_path on;
            }}
            location /private/ {{
                auth_basic "argoexec";
                auth_basic_user_file {htpasswd};
                dav_methods PUT DELETE;
                create_full_put_path on;
            }}
            location /token/ {{
                if ($http_x_token != "abc") {{ return 403; }}
            }}
            location = /unavailable {{ return 503 "try again later"; }}
            location = /moved {{ return 302 /files/target.txt; }}
            "#,
            www = d.join("www").display(),
            htpasswd = d.join("htpasswd").display(),
        )
    };
    let (child, port) = nginx::start(&nginx, d, server, |port| {
        nginx::answers(port, "/files/instance.txt", &marker)
    });
    Nginx {
        child,
        base: format!("http://127.0.0.1:{port}"),
        dir,
    }
}

async fn http(location: serde_json::Value, secrets: &MountedSecrets) -> Http {
    let location: HttpArtifact = serde_json::from_value(location).unwrap();
    Http::from_location(&location, secrets).await.unwrap()
}

async fn plain() -> Http {
    http(serde_json::json!({}), &MountedSecrets::new("/nonexistent")).await
}

fn basic_auth_location() -> serde_json::Value {
    serde_json::json!({"auth": {"basicAuth": {
        "usernameSecret": {"name": "creds", "key": "username"},
        "passwordSecret": {"name": "creds", "key": "password"},
    }}})
}

async fn read_all(driver: &impl Driver, url: &str) -> Result<Vec<u8>, Error> {
    let mut stream = driver.get(url).await?;
    let mut out = Vec::new();
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.unwrap());
    }
    Ok(out)
}

fn body(data: &[u8]) -> ByteStream {
    let chunks: Vec<_> = data
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(chunks).boxed()
}

/// The error and its cause, as `main` prints them.
fn chain(err: &Error) -> String {
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(c) = cause {
        text.push_str(&format!(": {c}"));
        cause = c.source();
    }
    text
}

fn on_disk(root: &Path, path: &str) -> Vec<u8> {
    std::fs::read(root.join(path)).unwrap()
}

#[tokio::test]
async fn put_then_get_20_mib_streams_the_same_bytes() {
    let server = start();
    let driver = plain().await;
    let mut rng = fastrand::Rng::with_seed(7);
    let data: Vec<u8> = (0..20 * 1024 * 1024).map(|_| rng.u8(..)).collect();
    let url = server.url("/files/deep/dir/big.bin");

    driver.put(&url, body(&data)).await.unwrap();
    assert!(on_disk(&server.root(), "files/deep/dir/big.bin") == data);
    let back = read_all(&driver, &url).await.unwrap();
    assert_eq!(back.len(), data.len());
    assert!(back == data, "GET returned other bytes than were PUT");
}

#[tokio::test]
async fn missing_file_is_not_found() {
    let server = start();
    let url = server.url("/files/missing.txt");
    let err = read_all(&plain().await, &url).await.unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert_eq!(err.to_string(), format!("http: {url} not found"));
}

#[tokio::test]
async fn service_unavailable_is_transient() {
    let server = start();
    let url = server.url("/unavailable");
    let err = read_all(&plain().await, &url).await.unwrap_err();
    assert!(matches!(err, Error::Transient { .. }), "{err}");
    assert_eq!(
        chain(&err),
        format!("GET {url}: transient failure: 503 Service Unavailable: try again later")
    );
}

#[tokio::test]
async fn refused_connection_is_transient() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/files/x");
    let err = read_all(&plain().await, &url).await.unwrap_err();
    assert!(matches!(err, Error::Transient { .. }), "{err}");
}

#[tokio::test]
async fn basic_auth_is_sent_and_required() {
    let server = start();
    let url = server.url("/private/report.txt");
    let authed = http(basic_auth_location(), &server.secrets(PASSWORD)).await;
    authed.put(&url, body(b"hello")).await.unwrap();
    assert_eq!(read_all(&authed, &url).await.unwrap(), b"hello");

    let err = read_all(&plain().await, &url).await.unwrap_err();
    assert!(matches!(err, Error::Failed { .. }), "{err}");
    let text = chain(&err);
    assert!(
        text.starts_with(&format!("GET {url}: 401 Unauthorized: <html>")),
        "{text}"
    );

    let wrong = http(basic_auth_location(), &server.secrets("wrong")).await;
    let err = wrong.put(&url, body(b"bye")).await.unwrap_err();
    assert!(chain(&err).starts_with(&format!("PUT {url}: 401 Unauthorized")));
    assert_eq!(on_disk(&server.root(), "private/report.txt"), b"hello");
}

#[tokio::test]
async fn redirect_is_followed() {
    let server = start();
    let got = read_all(&plain().await, &server.url("/moved"))
        .await
        .unwrap();
    assert_eq!(got, b"redirect target\n");
}

#[tokio::test]
async fn headers_are_sent() {
    let server = start();
    let url = server.url("/token/secret.txt");
    let with = http(
        serde_json::json!({"headers": [{"name": "X-Token", "value": "abc"}]}),
        &MountedSecrets::new("/nonexistent"),
    )
    .await;
    assert_eq!(read_all(&with, &url).await.unwrap(), b"header accepted\n");

    let err = read_all(&plain().await, &url).await.unwrap_err();
    assert!(matches!(err, Error::Failed { .. }), "{err}");
    assert!(chain(&err).starts_with(&format!("GET {url}: 403 Forbidden")));
}

#[tokio::test]
async fn put_where_not_allowed_fails() {
    let server = start();
    let url = server.url("/token/new.txt");
    let with = http(
        serde_json::json!({"headers": [{"name": "X-Token", "value": "abc"}]}),
        &MountedSecrets::new("/nonexistent"),
    )
    .await;
    let err = with.put(&url, body(b"x")).await.unwrap_err();
    assert!(matches!(err, Error::Failed { .. }), "{err}");
    let text = chain(&err);
    assert!(
        text.starts_with(&format!("PUT {url}: 405 Method Not Allowed")),
        "{text}"
    );
}

#[tokio::test]
async fn artifactory_puts_and_gets_with_basic_auth() {
    let server = start();
    let url = server.url("/private/libs/app-1.0.jar");
    let location = |url: &str| -> ArtifactoryArtifact {
        serde_json::from_value(serde_json::json!({
            "url": url,
            "usernameSecret": {"name": "creds", "key": "username"},
            "passwordSecret": {"name": "creds", "key": "password"},
        }))
        .unwrap()
    };
    let driver = Artifactory::from_location(&location(&url), &server.secrets(PASSWORD))
        .await
        .unwrap();
    assert_eq!(driver.name(), "artifactory");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    driver.put(&url, body(&data)).await.unwrap();
    assert!(read_all(&driver, &url).await.unwrap() == data);

    let err = read_all(&driver, &server.url("/private/libs/none.jar"))
        .await
        .unwrap_err();
    assert!(err.is_not_found(), "{err}");
    assert!(err.to_string().starts_with("artifactory: "), "{err}");

    let wrong = Artifactory::from_location(&location(&url), &server.secrets("wrong"))
        .await
        .unwrap();
    let err = read_all(&wrong, &url).await.unwrap_err();
    assert!(matches!(err, Error::Failed { .. }), "{err}");
    assert!(chain(&err).starts_with(&format!("GET {url}: 401 Unauthorized")));
}
