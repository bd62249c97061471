//! Git fixtures for the git driver's tests: repositories made with the `git` CLI (branches, tags,
//! a submodule, a ref outside the branches) and the servers that serve them on 127.0.0.1:
//! `git daemon` (git://) and smart HTTP (nginx + fcgiwrap + git-http-backend, with a basic-auth
//! location). `tests/setup` installs nginx and fcgiwrap. Include `nginx.rs` beside this file as
//! module `nginx` of the same parent.
//!
//! A missing program fails the test when `CI` is set and skips it (saying so) otherwise.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The user the HTTP server's private location accepts.
pub const USER: &str = "alice";
/// Their password.
pub const PASSWORD: &str = "wonderland";

/// `name`, found on PATH or in /usr/sbin (not on every user's PATH). `None` (after saying why)
/// when it is missing outside CI; in CI a missing program fails the test.
pub fn program(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        let message = format!("{name} is not installed: run tests/setup (as root) to install it");
        assert!(std::env::var_os("CI").is_none(), "{message}");
        eprintln!("skipped: {message}");
    }
    found
}

/// Runs git in `dir` with a fixed identity and returns its trimmed stdout; panics on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "protocol.file.allow=always",
            "-c",
            "init.defaultBranch=main",
        ])
        .args(args)
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.com")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.com")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run git ({e})"));
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// The served repositories and the commits the tests expect.
pub struct Fixture {
    /// Holds everything; removed when dropped.
    pub dir: tempfile::TempDir,
    /// The folder served: `repo.git`, `sub.git`, `empty.git`.
    pub root: PathBuf,
    /// `main~2`, tagged `v1` (annotated): README is "one".
    pub one: String,
    /// `main~1`, tagged `light` (lightweight): README is "two".
    pub two: String,
    /// `main`: README is "three", submodule `sub` (URL `../sub.git`) added.
    pub three: String,
    /// `feature`, on top of `two`: adds feature.txt.
    pub feature: String,
    /// On top of `two`, reachable only through `refs/pull/1/head`: adds pr.txt.
    pub pull: String,
    /// The submodule's only commit: sub.txt.
    pub sub: String,
}

impl Fixture {
    /// Makes the repositories with the git CLI. `None` when git is missing (outside CI).
    pub fn new() -> Option<Self> {
        program("git")?;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("srv");
        let work = dir.path().join("work");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(work.join("sub")).unwrap();
        std::fs::create_dir_all(work.join("repo")).unwrap();

        let sub = work.join("sub");
        git(&sub, &["init", "-q"]);
        std::fs::write(sub.join("sub.txt"), "in the submodule\n").unwrap();
        git(&sub, &["add", "."]);
        git(&sub, &["commit", "-q", "-m", "sub"]);
        let sub_commit = git(&sub, &["rev-parse", "HEAD"]);
        git(
            dir.path(),
            &["clone", "-q", "--bare", "work/sub", "srv/sub.git"],
        );

        let repo = work.join("repo");
        let commit = |text: &str, file: &str| {
            std::fs::write(repo.join(file), text).unwrap();
            git(&repo, &["add", "."]);
            git(&repo, &["commit", "-q", "-m", text.trim()]);
            git(&repo, &["rev-parse", "HEAD"])
        };
        git(&repo, &["init", "-q"]);
        let one = commit("one\n", "README");
        git(&repo, &["tag", "-a", "v1", "-m", "release one"]);
        let two = commit("two\n", "README");
        git(&repo, &["tag", "light"]);
        git(&repo, &["checkout", "-q", "-b", "feature"]);
        let feature = commit("feature\n", "feature.txt");
        git(&repo, &["checkout", "-q", "-b", "pr", &two]);
        let pull = commit("pull request\n", "pr.txt");
        git(&repo, &["checkout", "-q", "main"]);
        let sub_url = root.join("sub.git").display().to_string();
        git(&repo, &["submodule", "add", "-q", &sub_url, "sub"]);
        // Relative, as projects write them: resolved against the superproject's remote.
        git(
            &repo,
            &[
                "config",
                "-f",
                ".gitmodules",
                "submodule.sub.url",
                "../sub.git",
            ],
        );
        let three = commit("three\n", "README");
        git(
            dir.path(),
            &["clone", "-q", "--bare", "work/repo", "srv/repo.git"],
        );
        let bare = root.join("repo.git");
        git(&bare, &["update-ref", "refs/pull/1/head", &pull]);
        git(&bare, &["branch", "-D", "pr"]);
        git(&root, &["init", "-q", "--bare", "empty.git"]);
        Some(Self {
            dir,
            root,
            one,
            two,
            three,
            feature,
            pull,
            sub: sub_commit,
        })
    }
}

/// A free port on 127.0.0.1 (free a moment ago: servers retry when another takes it first).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `command(port)` on a free port, again on another when the port was taken meanwhile;
/// returns the server once it accepts connections, with its port.
fn spawn_listening(name: &str, mut command: impl FnMut(u16) -> Command) -> (Child, u16) {
    for _ in 0..5 {
        let port = free_port();
        let mut child = command(port)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let started = Instant::now();
        loop {
            if child.try_wait().unwrap().is_some() {
                break; // the port was taken: try another
            }
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return (child, port);
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{name} did not listen on {port} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    panic!("{name} could not start on a free port");
}

/// Children killed when dropped.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `git daemon` serving a fixture's root.
pub struct GitDaemon {
    _children: Children,
    port: u16,
}

impl GitDaemon {
    /// Starts the daemon. `None` when git is missing (outside CI).
    pub fn start(root: &Path) -> Option<Self> {
        program("git")?;
        let (child, port) = spawn_listening("git daemon", |port| {
            let mut command = Command::new("git");
            command
                .arg("daemon")
                .arg("--reuseaddr")
                .arg("--export-all")
                .arg(format!("--base-path={}", root.display()))
                .arg("--listen=127.0.0.1")
                .arg(format!("--port={port}"))
                .arg(root)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            command
        });
        Some(Self {
            _children: Children(vec![child]),
            port,
        })
    }

    /// The git:// URL of `name` (e.g. `repo.git`).
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }
}

/// Smart HTTP: nginx in one foreground process, git-http-backend behind fcgiwrap. `/git/<repo>`
/// is open, `/private/<repo>` needs basic auth.
pub struct GitHttp {
    _children: Children,
    port: u16,
    dir: tempfile::TempDir,
}

impl GitHttp {
    /// Starts fcgiwrap and nginx for a fixture's root. `None` when one is missing (outside CI).
    pub fn start(root: &Path) -> Option<Self> {
        let nginx = program("nginx")?;
        let fcgiwrap = program("fcgiwrap")?;
        let backend = PathBuf::from(git(root, &["--exec-path"])).join("git-http-backend");
        assert!(backend.is_file(), "no {}", backend.display());

        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("htpasswd"),
            crate::nginx::htpasswd_line(USER, PASSWORD) + "\n",
        )
        .unwrap();
        let socket = d.join("fcgiwrap.sock");
        let fcgi = Command::new(&fcgiwrap)
            .args(["-c", "2", "-s"])
            .arg(format!("unix:{}", socket.display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start fcgiwrap ({e}): run tests/setup"));
        let mut children = Children(vec![fcgi]);
        let started = Instant::now();
        while !socket.exists() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "fcgiwrap did not create its socket"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let cgi = format!(
            r#"
                fastcgi_pass unix:{socket};
                fastcgi_param SCRIPT_FILENAME {backend};
                fastcgi_param GIT_PROJECT_ROOT {root};
                fastcgi_param GIT_HTTP_EXPORT_ALL "";
                fastcgi_param PATH_INFO $1;
                fastcgi_param QUERY_STRING $query_string;
                fastcgi_param REQUEST_METHOD $request_method;
                fastcgi_param CONTENT_TYPE $content_type;
                fastcgi_param CONTENT_LENGTH $content_length;
                fastcgi_param REMOTE_USER $remote_user;
                fastcgi_param GIT_PROTOCOL $http_git_protocol;
                fastcgi_param HOME {home};
                fastcgi_read_timeout 300;
            "#,
            socket = socket.display(),
            backend = backend.display(),
            root = root.display(),
            home = d.display(),
        );
        let server = |_port| {
            format!(
                r#"
            location ~ ^/git(/.*)$ {{ {cgi} }}
            location ~ ^/private(/.*)$ {{
                auth_basic "argoexec";
                auth_basic_user_file {htpasswd};
                {cgi}
            }}
            "#,
                htpasswd = d.join("htpasswd").display(),
            )
        };
        // Only a server of this fixture serves its repository.
        let (child, port) = crate::nginx::start(&nginx, d, server, |port| {
            crate::nginx::answers(
                port,
                "/git/repo.git/info/refs?service=git-upload-pack",
                "# service=git-upload-pack",
            )
        });
        children.0.push(child);
        Some(Self {
            _children: children,
            port,
            dir,
        })
    }

    /// The URL of `name` under the open location.
    pub fn url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/git/{name}", self.port)
    }

    /// The URL of `name` under the basic-auth location.
    pub fn private_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/private/{name}", self.port)
    }

    /// nginx's error log, for failure messages.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
    }
}

/// OpenSSH's sshd on 127.0.0.1 with a fresh host key, letting the current user (root in CI) in
/// with a fresh client key only; git runs through the login shell as usual.
pub struct GitSsh {
    _children: Children,
    port: u16,
    user: String,
    /// The client's private key (OpenSSH PEM).
    pub key: String,
    /// A key the server does not accept.
    pub other_key: String,
    dir: tempfile::TempDir,
}

impl GitSsh {
    /// Starts sshd. `None` when sshd or ssh-keygen is missing (outside CI).
    pub fn start() -> Option<Self> {
        let sshd = program("sshd")?;
        let keygen = program("ssh-keygen")?;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let make_key = |name: &str| {
            let status = Command::new(&keygen)
                .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
                .arg(d.join(name))
                .status()
                .unwrap();
            assert!(status.success(), "ssh-keygen {name}");
            std::fs::read_to_string(d.join(name)).unwrap()
        };
        make_key("host_key");
        let key = make_key("client_key");
        let other_key = make_key("other_key");
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
        // sshd's privilege separation directory, which Debian's service unit would create.
        std::fs::create_dir_all("/run/sshd").unwrap();
        let user = std::env::var("USER")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "root".into());

        let (child, port) = spawn_listening("sshd", |port| {
            let config = d.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "ListenAddress 127.0.0.1\nPort {port}\nHostKey {d}/host_key\n\
                     AuthorizedKeysFile {d}/authorized_keys\nPidFile none\nStrictModes no\n\
                     UsePAM no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n\
                     KbdInteractiveAuthentication no\nLogLevel ERROR\n",
                    d = d.display()
                ),
            )
            .unwrap();
            let mut command = Command::new(&sshd);
            command
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(d.join("sshd.log")).unwrap());
            command
        });
        Some(Self {
            _children: Children(vec![child]),
            port,
            user,
            key,
            other_key,
            dir,
        })
    }

    /// The ssh:// URL of the repository at `path` (absolute).
    pub fn url(&self, path: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            path.display()
        )
    }

    /// sshd's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}
