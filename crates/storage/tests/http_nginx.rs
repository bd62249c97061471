//! The HTTP and Artifactory drivers against a real nginx (installed by `tests/setup`), started by
//! each test on a free loopback port with a generated configuration: WebDAV PUT under `/files/`,
//! basic auth under `/private/`, a 503, a 302 and a header check. The fault tests put the
//! fault-injecting proxy of `tests/support` between the driver and nginx.

// A test fails by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use argoexec_testsupport::nginx;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use argoexec_storage::{
    Artifactory, ByteStream, Digest, Digesting, Driver, Error, Http, HttpTimeouts, MountedSecrets,
    RetryError, RetryPolicy, write_whole,
};
use argoexec_template::{ArtifactoryArtifact, HttpArtifact};
use bytes::Bytes;
use futures::StreamExt as _;

const USER: &str = "alice";
const PASSWORD: &str = "wonderland";

/// An nginx in the foreground, in one process (`master_process off`), so that killing the child
/// stops it whole; its configuration, logs, temp files and document root live in a tempdir.
struct Nginx {
    child: Child,
    port: u16,
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
    for sub in [
        "www/files",
        "www/private",
        "www/token",
        "www/bearer",
        "www/bearer-new",
    ] {
        std::fs::create_dir_all(d.join(sub)).unwrap();
    }
    std::fs::write(d.join("www/files/target.txt"), "redirect target\n").unwrap();
    std::fs::write(d.join("www/token/secret.txt"), "header accepted\n").unwrap();
    for dir in ["bearer", "bearer-new"] {
        std::fs::write(d.join("www").join(dir).join("data.txt"), "token accepted\n").unwrap();
    }
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
            location /bearer/ {{
                if ($http_authorization !~ "^Bearer tok-[0-9]+$") {{ return 401; }}
                dav_methods PUT;
                create_full_put_path on;
            }}
            location /bearer-new/ {{
                if ($http_authorization !~ "^Bearer tok-([2-9]|[0-9][0-9]+)$") {{ return 401; }}
                dav_methods PUT;
                create_full_put_path on;
            }}
            location /bearer-never/ {{ return 401; }}
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
        port,
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

use argoexec_testsupport::faultproxy;
use argoexec_testsupport::tls;

use faultproxy::{Fault, FaultProxy};

/// Short enough that a stalled connection costs a test one second.
const READ_TIMEOUT: Duration = Duration::from_secs(1);

/// A plain driver that gives up on a stalled connection after [`READ_TIMEOUT`].
async fn impatient() -> Http {
    let location: HttpArtifact = serde_json::from_value(serde_json::json!({})).unwrap();
    let timeouts = HttpTimeouts {
        read: READ_TIMEOUT,
        ..HttpTimeouts::default()
    };
    Http::from_location_with(&location, &MountedSecrets::new("/nonexistent"), timeouts)
        .await
        .unwrap()
}

/// Argo's policy with quick, exact waits.
fn retries(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        initial: Duration::from_millis(20),
        jitter: 0.0,
        ..RetryPolicy::default()
    }
}

/// 8 MiB of random bytes (more than a socket buffer holds, so faults land mid-transfer) and
/// their digest as the driver reports it.
fn payload() -> (Vec<u8>, String) {
    use sha2::Digest as _;
    let mut rng = fastrand::Rng::with_seed(42);
    let data: Vec<u8> = (0..8 << 20).map(|_| rng.u8(..)).collect();
    let sha = format!("sha256:{:x}", sha2::Sha256::digest(&data));
    (data, sha)
}

/// nginx serving [`payload`] at `/files/big.bin`, behind a proxy that injects `faults`.
struct BigFile {
    _server: Nginx,
    proxy: FaultProxy,
    /// The file's URL through the proxy.
    url: String,
    data: Vec<u8>,
    sha: String,
}

fn big_file_behind(faults: Vec<Fault>) -> BigFile {
    let server = start();
    let (data, sha) = payload();
    std::fs::write(server.root().join("files/big.bin"), &data).unwrap();
    let proxy = FaultProxy::start(server.port, faults);
    let url = format!("http://127.0.0.1:{}/files/big.bin", proxy.port);
    BigFile {
        _server: server,
        proxy,
        url,
        data,
        sha,
    }
}

/// Downloads `url` into `dest` whole, as init loads a file: every attempt starts afresh, a body
/// cut short fails the attempt with its I/O cause.
async fn download(
    driver: &Http,
    url: &str,
    dest: &Path,
    policy: &RetryPolicy,
) -> Result<Digest, RetryError<Error>> {
    policy
        .run("download", |_| async {
            let (stream, digest) = Digesting::new(driver.get(url).await?);
            write_whole(stream.boxed(), dest)
                .await
                .map_err(|e| Error::io("GET", url, e))?;
            Ok(digest
                .get()
                .expect("a stream that ended cleanly has a digest"))
        })
        .await
}

/// Uploads `data` to `url`, each attempt with a fresh body.
async fn upload(
    driver: &Http,
    url: &str,
    data: &[u8],
    policy: &RetryPolicy,
) -> Result<(), RetryError<Error>> {
    policy.run("upload", |_| driver.put(url, body(data))).await
}

/// The retried operation's failure, as `main` prints it.
fn gave_up(err: &RetryError<Error>) -> String {
    argoexec_storage::chain(err)
}

#[tokio::test]
async fn get_survives_a_dropped_connection_a_reset_a_stall_and_a_503_with_identical_bytes() {
    let big = big_file_behind(vec![
        Fault::Close,
        Fault::ResetAfter(1 << 20),
        Fault::StallAfter(1 << 20),
        Fault::Unavailable,
    ]);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("big.bin");

    let digest = download(&impatient().await, &big.url, &dest, &retries(5))
        .await
        .unwrap();
    assert_eq!(big.proxy.remaining(), 0, "every fault was met");
    assert_eq!(
        *big.proxy.accepted.lock().unwrap(),
        5,
        "one connection per attempt"
    );
    assert_eq!(digest.sha256, big.sha);
    assert_eq!(digest.size, big.data.len() as u64);
    assert!(
        std::fs::read(&dest).unwrap() == big.data,
        "the file is whole and exact"
    );
}

#[tokio::test]
async fn put_survives_a_dropped_upload_a_stall_and_a_503_with_identical_bytes() {
    let server = start();
    let (data, sha) = payload();
    let proxy = FaultProxy::start(
        server.port,
        vec![Fault::Close, Fault::StallAfter(0), Fault::Unavailable],
    );
    let url = format!("http://127.0.0.1:{}/files/up/big.bin", proxy.port);

    upload(&impatient().await, &url, &data, &retries(4))
        .await
        .unwrap();
    assert_eq!(proxy.remaining(), 0, "every fault was met");
    assert!(on_disk(&server.root(), "files/up/big.bin") == data);
    // Read back past the proxy: the server holds exactly what was sent.
    let out = tempfile::tempdir().unwrap();
    let digest = download(
        &plain().await,
        &server.url("/files/up/big.bin"),
        &out.path().join("back.bin"),
        &RetryPolicy::none(),
    )
    .await
    .unwrap();
    assert_eq!(digest.sha256, sha);
}

#[tokio::test]
async fn get_gives_up_on_resets_naming_the_url_and_the_cause() {
    // Bound whole: the server and the proxy live as long as the test.
    let big = big_file_behind(vec![Fault::ResetAfter(1 << 20); 5]);
    let url = &big.url;
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("big.bin");

    let err = download(&impatient().await, url, &dest, &retries(3))
        .await
        .unwrap_err();
    assert_eq!(err.attempts, 3);
    let text = gave_up(&err);
    assert!(
        text.starts_with(&format!(
            "gave up after 3 attempts: GET {url}: transient failure: "
        )),
        "{text}"
    );
    assert!(text.to_lowercase().contains("connection reset"), "{text}");
    assert!(!dest.exists(), "nothing half-written is left");
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn get_gives_up_on_stalls_naming_the_url_and_the_timeout() {
    let big = big_file_behind(vec![Fault::StallAfter(1 << 20); 5]);
    let url = &big.url;
    let out = tempfile::tempdir().unwrap();

    let started = Instant::now();
    let err = download(
        &impatient().await,
        url,
        &out.path().join("big.bin"),
        &retries(2),
    )
    .await
    .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "stalls are cut by the read timeout"
    );
    let text = gave_up(&err);
    assert!(
        text.starts_with(&format!(
            "gave up after 2 attempts: GET {url}: transient failure: "
        )),
        "{text}"
    );
    assert!(text.contains("timed out"), "{text}");
}

#[tokio::test]
async fn put_gives_up_on_503s_naming_the_url_and_the_status() {
    let server = start();
    let proxy = FaultProxy::start(server.port, vec![Fault::Unavailable; 5]);
    let url = format!("http://127.0.0.1:{}/files/never.bin", proxy.port);

    let err = upload(&impatient().await, &url, b"data", &retries(3))
        .await
        .unwrap_err();
    assert_eq!(err.attempts, 3);
    assert_eq!(
        gave_up(&err),
        format!(
            "gave up after 3 attempts: PUT {url}: transient failure: 503 Service Unavailable: \
             fault proxy: try again later"
        )
    );
    assert!(!server.root().join("files/never.bin").exists());
}

/// `data` as a body that hands out a 64 KiB chunk every `pause`.
fn slow_body(data: &[u8], pause: Duration) -> ByteStream {
    let chunks: Vec<Bytes> = data.chunks(64 * 1024).map(Bytes::copy_from_slice).collect();
    futures::stream::iter(chunks)
        .then(move |chunk| async move {
            tokio::time::sleep(pause).await;
            Ok(chunk)
        })
        .boxed()
}

#[tokio::test]
async fn a_put_longer_than_the_read_timeout_is_not_cut_while_the_server_takes_data() {
    let server = start();
    let proxy = FaultProxy::start(server.port, vec![]);
    let url = format!("http://127.0.0.1:{}/files/slow/up.bin", proxy.port);
    let (data, _) = payload();
    let data = &data[..1 << 20];

    // 16 chunks, one every 250 ms: the upload lasts 4 read timeouts.
    let pause = READ_TIMEOUT / 4;
    let started = Instant::now();
    impatient()
        .await
        .put(&url, slow_body(data, pause))
        .await
        .unwrap();
    assert!(started.elapsed() > READ_TIMEOUT * 3, "the upload was slow");
    assert!(on_disk(&server.root(), "files/slow/up.bin") == data);
}

#[tokio::test]
async fn put_gives_up_on_a_server_that_stops_taking_the_upload() {
    let server = start();
    let proxy = FaultProxy::start(server.port, vec![Fault::StallRequestAfter(1 << 20); 2]);
    let url = format!("http://127.0.0.1:{}/files/stalled.bin", proxy.port);
    // Far more than the socket buffers hold, so the client has to wait for the server; made
    // lazily, so an upload that is not cut is bounded but cheap to start.
    let chunk = Bytes::from(vec![7u8; 64 * 1024]);
    let endless = || -> ByteStream {
        let chunk = chunk.clone();
        futures::stream::iter((0..4096).map(move |_| Ok(chunk.clone()))).boxed()
    };
    let driver = impatient().await;

    let err = retries(2)
        .run("upload", |_| driver.put(&url, endless()))
        .await
        .unwrap_err();
    assert_eq!(proxy.remaining(), 0, "both attempts met a stall");
    assert_eq!(
        gave_up(&err),
        format!(
            "gave up after 2 attempts: PUT {url}: transient failure: timed out: the server took \
             no data and sent no answer for 1s"
        )
    );
    assert!(!server.root().join("files/stalled.bin").exists());
}

/// An OAuth2 token endpoint on a free port that hands out `tok-1`, `tok-2`, ... each valid for
/// `expires_in` seconds; returns its URL and how many tokens it has handed out. Real HTTP/1.1,
/// one request per connection.
async fn token_endpoint(expires_in: u64) -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/oauth/token", listener.local_addr().unwrap());
    let issued = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&issued);
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 4096];
            // Head and form body: the form ends the request (no body has a blank line).
            while !String::from_utf8_lossy(&request).contains("grant_type=client_credentials") {
                let n = conn.read(&mut buf).await.unwrap();
                assert!(n > 0, "the token request ended early");
                request.extend_from_slice(&buf[..n]);
            }
            let request = String::from_utf8_lossy(&request).to_string();
            assert!(request.starts_with("POST /oauth/token "), "{request}");
            let n = count.fetch_add(1, Ordering::SeqCst) + 1;
            let body = format!(
                r#"{{"access_token":"tok-{n}","token_type":"bearer","expires_in":{expires_in}}}"#
            );
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            conn.write_all(response.as_bytes()).await.unwrap();
            conn.shutdown().await.unwrap();
        }
    });
    (url, issued)
}

/// A driver with OAuth2 credentials for `token_url`, through mounted secret files.
async fn oauth2_driver(token_url: &str) -> (Http, tempfile::TempDir) {
    let secrets = tempfile::tempdir().unwrap();
    let dir = secrets.path().join("oauth");
    std::fs::create_dir_all(&dir).unwrap();
    for (key, value) in [("id", "client"), ("secret", "s3cr3t"), ("url", token_url)] {
        std::fs::write(dir.join(key), value).unwrap();
    }
    let location = serde_json::json!({"auth": {"oauth2": {
        "clientIDSecret": {"name": "oauth", "key": "id"},
        "clientSecretSecret": {"name": "oauth", "key": "secret"},
        "tokenURLSecret": {"name": "oauth", "key": "url"},
    }}});
    let driver = http(location, &MountedSecrets::new(secrets.path())).await;
    (driver, secrets)
}

#[tokio::test]
async fn oauth2_token_is_fetched_once_and_reused_until_it_expires() {
    let server = start();
    let (token_url, issued) = token_endpoint(3600).await;
    let (driver, _secrets) = oauth2_driver(&token_url).await;
    for _ in 0..3 {
        let data = read_all(&driver, &server.url("/bearer/data.txt")).await;
        assert_eq!(data.unwrap(), b"token accepted\n");
    }
    assert_eq!(
        issued.load(Ordering::SeqCst),
        1,
        "one token for every request"
    );
}

#[tokio::test]
async fn oauth2_token_is_fetched_again_once_expired() {
    let server = start();
    // 5 s is inside the 10 s margin: every token has expired by the time it is used.
    let (token_url, issued) = token_endpoint(5).await;
    let (driver, _secrets) = oauth2_driver(&token_url).await;
    assert_eq!(issued.load(Ordering::SeqCst), 1);
    for round in 2..=3 {
        let data = read_all(&driver, &server.url("/bearer/data.txt")).await;
        assert_eq!(data.unwrap(), b"token accepted\n");
        assert_eq!(issued.load(Ordering::SeqCst), round);
    }
}

#[tokio::test]
async fn oauth2_token_refused_with_401_is_renewed_once_for_get_and_put() {
    let server = start();
    let (token_url, issued) = token_endpoint(3600).await;
    let (driver, _secrets) = oauth2_driver(&token_url).await;

    // tok-1 is refused, tok-2 accepted: the GET is sent again at once.
    let data = read_all(&driver, &server.url("/bearer-new/data.txt")).await;
    assert_eq!(data.unwrap(), b"token accepted\n");
    assert_eq!(issued.load(Ordering::SeqCst), 2);

    // A PUT's body cannot be sent twice: a refusal is transient, the retry carries tok-2.
    let (token_url, issued) = token_endpoint(3600).await;
    let (driver, _secrets) = oauth2_driver(&token_url).await;
    let url = server.url("/bearer-new/up/put.bin");
    upload(&driver, &url, b"uploaded with a renewed token", &retries(2))
        .await
        .unwrap();
    assert_eq!(issued.load(Ordering::SeqCst), 2);
    assert_eq!(
        on_disk(&server.root(), "bearer-new/up/put.bin"),
        b"uploaded with a renewed token"
    );
}

#[tokio::test]
async fn oauth2_token_refused_twice_fails_with_the_401() {
    let server = start();
    let (token_url, issued) = token_endpoint(3600).await;
    let (driver, _secrets) = oauth2_driver(&token_url).await;
    let url = server.url("/bearer-never/data.txt");
    let err = read_all(&driver, &url).await.unwrap_err();
    assert!(matches!(err, Error::Failed { .. }), "{err}");
    assert!(
        chain(&err).starts_with(&format!("GET {url}: 401 Unauthorized")),
        "{}",
        chain(&err)
    );
    assert_eq!(issued.load(Ordering::SeqCst), 2, "renewed once, not again");
}

#[tokio::test]
async fn an_untrusted_certificate_fails_for_good() {
    let server = start();
    let certs = tempfile::tempdir().unwrap();
    tls::make_certificates(certs.path());
    let (_socat, port) = tls::tls_front(certs.path(), server.port);
    let url = format!("https://127.0.0.1:{port}/files/instance.txt");
    let err = read_all(&plain().await, &url).await.unwrap_err();
    let text = chain(&err);
    assert!(matches!(err, Error::Failed { .. }), "{text} {err:?}");
    assert!(text.starts_with(&format!("GET {url}: ")), "{text}");
    assert!(text.contains("UnknownIssuer"), "{text}");
}
