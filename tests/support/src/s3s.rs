//! An S3-compatible server (s3s-fs, installed by `tests/setup`) on a free loopback port, for the
//! tests of every crate; stopped when dropped.

use crate::process;

/// The access key the server accepts.
pub const ACCESS: &str = "AKIAARGOEXEC";
/// The secret key the server accepts.
pub const SECRET: &str = "secret-key-for-tests";

/// A running s3s-fs: `port`, and `data`, where it keeps buckets (one folder each) and objects
/// (files).
pub type S3Server = process::Process;

impl S3Server {
    /// Starts a server with an empty store; panics, saying how to install it, when s3s-fs is
    /// missing.
    pub fn start() -> Self {
        Self::start_in(&std::env::temp_dir())
    }

    /// Like [`S3Server::start`], with the store in a fresh folder under `parent` (a benchmark
    /// keeps its gigabytes off `/tmp`).
    pub fn start_in(parent: &std::path::Path) -> Self {
        Self::spawn_in(parent, "s3s-fs", |port, dir| {
            let port = port.to_string();
            let dir = dir.display().to_string();
            ["--host", "127.0.0.1", "--port", &port]
                .into_iter()
                .chain(["--access-key", ACCESS, "--secret-key", SECRET, &dir])
                .map(String::from)
                .collect()
        })
    }

    /// Writes secret files `<dir>/<name>/accesskey` and `secretkey` for this server.
    pub fn write_secrets(&self, dir: &std::path::Path, name: &str) {
        std::fs::create_dir_all(dir.join(name)).unwrap();
        std::fs::write(dir.join(name).join("accesskey"), ACCESS).unwrap();
        std::fs::write(dir.join(name).join("secretkey"), format!("{SECRET}\n")).unwrap();
    }

    /// An `s3` location (JSON) for a bucket of this server, with the secret `name`.
    pub fn location(&self, bucket: &str, secret: &str) -> serde_json::Value {
        serde_json::json!({
            "endpoint": format!("127.0.0.1:{}", self.port),
            "insecure": true,
            "bucket": bucket,
            "accessKeySecret": {"name": secret, "key": "accesskey"},
            "secretKeySecret": {"name": secret, "key": "secretkey"},
        })
    }
}
