//! Records what `argoexec version` prints: the git commit, the build date, the compiler and the
//! target platform.

use std::process::Command;

fn output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
}

fn main() {
    let commit = output("git", &["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into());
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let rustc_version = output(&rustc, &["--version"]).unwrap_or_else(|| "unknown".into());
    // SOURCE_DATE_EPOCH makes reproducible builds possible; otherwise the time of this build.
    let build_date = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|secs| jiff::Timestamp::from_second(secs).ok())
        .unwrap_or_else(jiff::Timestamp::now);
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());

    println!("cargo:rustc-env=ARGOEXEC_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=ARGOEXEC_RUSTC_VERSION={rustc_version}");
    println!("cargo:rustc-env=ARGOEXEC_BUILD_DATE={build_date:.0}");
    println!("cargo:rustc-env=ARGOEXEC_TARGET={target}");
    // Rebuild the stamp when the checked-out commit moves, not on every build. Git names the
    // files: in a worktree `.git` is a file, and a path that does not exist reruns every time.
    for name in ["HEAD", "refs/heads"] {
        let path = output("git", &["rev-parse", "--git-path", name])
            .unwrap_or_else(|| format!("../../.git/{name}"));
        println!("cargo:rerun-if-changed={path}");
    }
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
}
