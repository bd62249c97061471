//! nginx (installed by `tests/setup`) in the foreground and in one process
//! (`master_process off`), so that killing the child stops it whole, on a free loopback port;
//! its configuration, logs and temp files live in a folder the caller owns.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nginx binary, on PATH or in /usr/sbin (not on every user's PATH).
pub fn find() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("nginx"))
        .find(|p| p.is_file())
}

/// An htpasswd line for `user` (openssl's apr1 hash).
pub fn htpasswd_line(user: &str, password: &str) -> String {
    let out = Command::new("openssl")
        .args(["passwd", "-apr1", password])
        .output()
        .expect("openssl is needed to hash the test password");
    assert!(out.status.success(), "openssl passwd failed");
    format!("{user}:{}", String::from_utf8(out.stdout).unwrap().trim())
}

/// Starts `nginx` with its files under `dir` (`nginx.conf`, `logs/`, `tmp/`) and one server
/// whose body `server(port)` writes. The port was free a moment ago; another test's server may
/// take it first: ready means `ready(port)` (a check only this instance passes), a failed bind
/// means trying another port. Returns the running child and its port.
pub fn start(
    nginx: &Path,
    dir: &Path,
    server: impl Fn(u16) -> String,
    ready: impl Fn(u16) -> bool,
) -> (Child, u16) {
    for sub in ["tmp", "logs"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    let p = |sub: &str| dir.join(sub).display().to_string();
    for attempt in 1..=5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let conf = format!(
            r#"
    daemon off;
    master_process off;
    worker_processes 1;
    pid {pid};
    error_log {error_log} info;
    events {{ worker_connections 64; }}
    http {{
        access_log {access_log};
        client_body_temp_path {tmp}/body;
        proxy_temp_path {tmp}/proxy;
        fastcgi_temp_path {tmp}/fastcgi;
        uwsgi_temp_path {tmp}/uwsgi;
        scgi_temp_path {tmp}/scgi;
        client_max_body_size 0;
        server {{
            listen 127.0.0.1:{port};
            {server}
        }}
    }}
    "#,
            pid = p("logs/nginx.pid"),
            error_log = p("logs/error.log"),
            access_log = p("logs/access.log"),
            tmp = p("tmp"),
            server = server(port),
        );
        std::fs::write(dir.join("nginx.conf"), conf).unwrap();
        let mut child = Command::new(nginx)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(dir.join("nginx.conf"))
            .arg("-e")
            .arg(dir.join("logs/error.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} ({e}): run tests/setup", nginx.display()));
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(dir.join("logs/error.log")).unwrap_or_default();
                if log.contains("Address already in use") && attempt < 5 {
                    break;
                }
                panic!("nginx exited ({status}):\n{log}");
            }
            if ready(port) {
                return (child, port);
            }
            if started.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("nginx did not answer on port {port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    unreachable!("the fifth attempt either returns or panics")
}

/// Whether an HTTP/1.0 GET of `path` on `port` answers with a response containing `needle`.
pub fn answers(port: u16, path: &str, needle: &str) -> bool {
    use std::io::{Read as _, Write as _};
    let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let mut response = String::new();
    conn.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .is_ok()
        && conn.read_to_string(&mut response).is_ok()
        && response.contains(needle)
}
