//! An S3-compatible server (s3s-fs, installed by `tests/setup`) on a free loopback port, for the
//! tests of every crate; stopped when dropped.

// Each test binary that includes this file uses a different part of it.
#![allow(dead_code)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The access key the server accepts.
pub(crate) const ACCESS: &str = "AKIAARGOEXEC";
/// The secret key the server accepts.
pub(crate) const SECRET: &str = "secret-key-for-tests";

/// A running s3s-fs.
pub(crate) struct S3Server {
    child: Child,
    /// Its port on 127.0.0.1.
    pub(crate) port: u16,
    /// Where it keeps buckets (one folder each) and objects (files).
    pub(crate) data: tempfile::TempDir,
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl S3Server {
    /// Starts a server with an empty store; panics, saying how to install it, when s3s-fs is
    /// missing.
    pub(crate) fn start() -> Self {
        Self::start_with(tempfile::tempdir().unwrap())
    }

    /// Like [`S3Server::start`], with the store in a fresh folder under `parent` (a benchmark
    /// keeps its gigabytes off `/tmp`).
    pub(crate) fn start_in(parent: &std::path::Path) -> Self {
        Self::start_with(tempfile::tempdir_in(parent).unwrap())
    }

    fn start_with(data: tempfile::TempDir) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("s3s-fs")
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS, "--secret-key", SECRET])
            .arg(data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start s3s-fs ({e}): run tests/setup to install it"));
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "s3s-fs did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port, data }
    }

    /// Writes secret files `<dir>/<name>/accesskey` and `secretkey` for this server.
    pub(crate) fn write_secrets(&self, dir: &std::path::Path, name: &str) {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join("accesskey"), ACCESS).unwrap();
        std::fs::write(dir.join(name).join("secretkey"), format!("{SECRET}\n")).unwrap();
    }

    /// An `s3` location (JSON) for a bucket of this server, with the secret `name`.
    pub(crate) fn location(&self, bucket: &str, secret: &str) -> serde_json::Value {
        serde_json::json!({
            "endpoint": format!("127.0.0.1:{}", self.port),
            "insecure": true,
            "bucket": bucket,
            "accessKeySecret": {"name": secret, "key": "accesskey"},
            "secretKeySecret": {"name": secret, "key": "secretkey"},
        })
    }
}
