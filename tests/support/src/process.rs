//! A server process (installed by `tests/setup`) started by a test on a free loopback port, with
//! its data in a temp dir; stopped when dropped. Shared by every launcher in `support/`.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server.
pub struct Process {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// Its data folder.
    pub data: tempfile::TempDir,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Process {
    /// Starts `program` with the arguments `args(port, data dir)` and waits until the port
    /// answers; panics, saying how to install it, when the program is missing.
    pub fn spawn(program: &str, args: impl Fn(u16, &Path) -> Vec<String>) -> Self {
        Self::spawn_in(&std::env::temp_dir(), program, args)
    }

    /// Like [`Process::spawn`], with the data directory in a fresh folder under `parent`.
    pub fn spawn_in(
        parent: &Path,
        program: &str,
        args: impl Fn(u16, &Path) -> Vec<String>,
    ) -> Self {
        let data = tempfile::tempdir_in(parent).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(program)
            .args(args(port, data.path()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {program} ({e}): run tests/setup to install it")
            });
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{program} did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port, data }
    }
}
