//! Images and containers for tests against a real Docker Engine, made without a registry: a
//! busybox-static root filesystem imported with `docker import`, optionally with the shared
//! libraries a dynamically linked program needs (this project's `argoexec`, bind-mounted into
//! init and wait containers). Uses the docker CLI; needs root, busybox-static and a running
//! engine (`tests/setup` installs it, `tests/docker-engine` starts it).

use std::io;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The busybox applets linked into the images' `/bin`.
const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "sleep", "ls", "mkdir", "kill", "ps", "tar", "date", "hostname", "true",
    "false", "touch", "rm", "ln", "env", "grep", "wc", "head", "tail", "tr", "test", "[", "printf",
    "id", "awk", "sed", "cp", "mv", "stat", "find", "chmod", "yes", "seq", "expr", "basename",
    "dirname", "pwd", "uname",
];

/// Whether the engine answers; when it does not, the test skips, loudly, or, with `CI` set, fails
/// naming what is missing: a suite must not pass in CI for want of the engine it tests.
pub fn engine_or_skip() -> bool {
    if engine_available() {
        return true;
    }
    let why = "no Docker Engine answers; run tests/docker-engine (tests/run does)";
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("SKIPPED: {why}");
    false
}

/// Whether the engine answers on its default socket (or `DOCKER_HOST`). Says why not on stderr.
pub fn engine_available() -> bool {
    match docker(&["version", "--format", "{{.Server.APIVersion}}"]) {
        Ok(out) => {
            let ok = out.status.success();
            if !ok {
                eprintln!(
                    "docker engine not reachable: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            ok
        }
        Err(e) => {
            eprintln!("docker CLI not runnable: {e}");
            false
        }
    }
}

/// Runs the docker CLI and returns its output.
pub fn docker(args: &[&str]) -> io::Result<Output> {
    Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
}

/// Runs the docker CLI, failing unless it succeeds; returns its stdout, trimmed.
pub fn docker_ok(args: &[&str]) -> io::Result<String> {
    let out = docker(args)?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "docker {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Makes image `tag` unless it exists: busybox-static as `/bin/*`, a world-writable `/tmp`,
/// `/etc/passwd`, and, for each of `programs`, the shared libraries `ldd` lists for it at the
/// same paths, so that the program bind-mounted into a container runs.
pub fn ensure_image(tag: &str, programs: &[&Path]) -> io::Result<()> {
    if docker(&["image", "inspect", tag])?.status.success() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let root = dir.path();
    for sub in ["bin", "tmp", "etc", "root", "proc", "sys", "dev", "var/run"] {
        std::fs::create_dir_all(root.join(sub))?;
    }
    std::fs::set_permissions(root.join("tmp"), std::fs::Permissions::from_mode(0o1777))?;
    std::fs::copy("/bin/busybox", root.join("bin/busybox"))?;
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
    }
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
    std::fs::write(root.join("etc/group"), "root:x:0:\n")?;
    for program in programs {
        for lib in shared_libraries(program)? {
            let inside = root.join(lib.trim_start_matches('/'));
            if let Some(parent) = inside.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::copy(&lib, &inside)?;
        }
    }
    let tar = Command::new("tar")
        .arg("-C")
        .arg(root)
        .args(["-c", "."])
        .stdout(Stdio::piped())
        .spawn()?;
    let imported = Command::new("docker")
        .args(["import", "-", tag])
        .stdin(
            tar.stdout
                .ok_or_else(|| io::Error::other("tar has no stdout"))?,
        )
        .output()?;
    if !imported.status.success() {
        return Err(io::Error::other(format!(
            "docker import {tag}: {}",
            String::from_utf8_lossy(&imported.stderr).trim()
        )));
    }
    Ok(())
}

/// The absolute paths of the shared libraries and loader `ldd` lists for `program` (none for a
/// static one).
fn shared_libraries(program: &Path) -> io::Result<Vec<String>> {
    let out = Command::new("ldd").arg(program).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(|line| {
            // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or `/lib64/ld-linux... (0x...)`
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next(),
                None => line.split_whitespace().next(),
            }?;
            path.starts_with('/').then(|| path.to_owned())
        })
        .collect())
}

/// Removes every container (running or not) carrying `label` (`key=value`).
pub fn remove_labelled(label: &str) -> io::Result<()> {
    let ids = docker_ok(&["ps", "-aq", "--filter", &format!("label={label}")])?;
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids);
        docker_ok(&args)?;
    }
    Ok(())
}
