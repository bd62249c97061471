//! The git driver against real servers started by each test on 127.0.0.1: `file://`,
//! `git daemon` (git://) and smart HTTP (nginx + fcgiwrap + git-http-backend, with basic auth),
//! over fixture repositories made with the git CLI (`tests/support/gitrepos.rs`).

// A test fails by panicking, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use argoexec_testsupport::gitrepos;
use argoexec_testsupport::tls;

use std::path::Path;

use argoexec_storage::{Driver, Error, Git, MountedSecrets, Retryable as _, chain};
use argoexec_template::GitArtifact;
use gitrepos::{Fixture, GitDaemon, GitHttp, GitSsh, PASSWORD, USER, git};

async fn driver(location: serde_json::Value, secrets: &MountedSecrets) -> Result<Git, Error> {
    let location: GitArtifact = serde_json::from_value(location).unwrap();
    Git::from_location(&location, secrets).await
}

fn no_secrets() -> MountedSecrets {
    MountedSecrets::new("/nonexistent")
}

/// Checks `location` out into a fresh `out` folder of `dir`; returns the commit and the folder.
async fn checkout(
    dir: &Path,
    location: serde_json::Value,
) -> Result<(String, std::path::PathBuf), Error> {
    let dest = dir.join(format!("out-{}", fastrand::u64(..)));
    let commit = driver(location, &no_secrets())
        .await?
        .checkout(&dest)
        .await?;
    Ok((commit, dest))
}

fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Nothing but the listed names in `dir` (no staging folder left behind).
fn assert_only(dir: &Path, names: &[&str]) {
    let mut found: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "srv" && n != "work")
        .collect();
    found.sort();
    assert_eq!(found, names);
}

#[tokio::test]
async fn file_url_checks_out_the_default_branch_with_its_submodule() {
    let Some(fx) = Fixture::new() else { return };
    let url = format!("file://{}", fx.root.join("repo.git").display());
    let (commit, out) = checkout(fx.dir.path(), serde_json::json!({"repo": url}))
        .await
        .unwrap();
    assert_eq!(commit, fx.three);
    assert_eq!(read(&out, "README"), "three\n");
    assert!(!out.join("feature.txt").exists());
    // The relative submodule URL resolved against file://.../repo.git.
    assert_eq!(read(&out, "sub/sub.txt"), "in the submodule\n");
    assert_eq!(git(&out.join("sub"), &["rev-parse", "HEAD"]), fx.sub);
    // A working tree git itself accepts.
    assert_eq!(git(&out, &["rev-parse", "HEAD"]), fx.three);
    assert_eq!(git(&out, &["status", "--porcelain"]), "");
}

#[tokio::test]
async fn disable_submodules_leaves_the_submodule_folder_empty() {
    let Some(fx) = Fixture::new() else { return };
    let url = format!("file://{}", fx.root.join("repo.git").display());
    let (_, out) = checkout(
        fx.dir.path(),
        serde_json::json!({"repo": url, "disableSubmodules": true}),
    )
    .await
    .unwrap();
    assert_eq!(read(&out, "README"), "three\n");
    assert!(!out.join("sub/sub.txt").exists());
}

#[tokio::test]
async fn git_daemon_resolves_branches_tags_full_and_short_commits_and_refs() {
    let Some(fx) = Fixture::new() else { return };
    let Some(daemon) = GitDaemon::start(&fx.root) else {
        return;
    };
    let url = daemon.url("repo.git");
    let cases = [
        ("feature", &fx.feature, "feature.txt", "feature\n"),
        (
            "refs/heads/feature",
            &fx.feature,
            "feature.txt",
            "feature\n",
        ),
        ("v1", &fx.one, "README", "one\n"),
        ("light", &fx.two, "README", "two\n"),
        (fx.two.as_str(), &fx.two, "README", "two\n"),
        (&fx.one[..7], &fx.one, "README", "one\n"),
        ("main", &fx.three, "README", "three\n"),
    ];
    for (revision, commit, file, text) in cases {
        let (got, out) = checkout(
            fx.dir.path(),
            serde_json::json!({"repo": url, "revision": revision}),
        )
        .await
        .unwrap_or_else(|e| panic!("revision {revision}: {}", chain(&e)));
        assert_eq!(&got, commit, "revision {revision}");
        assert_eq!(read(&out, file), text, "revision {revision}");
        assert_eq!(git(&out, &["rev-parse", "HEAD"]), *commit);
    }
    // The default branch's submodule also comes over git://.
    let (_, out) = checkout(fx.dir.path(), serde_json::json!({"repo": url}))
        .await
        .unwrap();
    assert_eq!(read(&out, "sub/sub.txt"), "in the submodule\n");
}

#[tokio::test]
async fn depth_one_is_a_shallow_clone_of_one_commit() {
    let Some(fx) = Fixture::new() else { return };
    let Some(daemon) = GitDaemon::start(&fx.root) else {
        return;
    };
    let (commit, out) = checkout(
        fx.dir.path(),
        serde_json::json!({"repo": daemon.url("repo.git"), "depth": 1, "disableSubmodules": true}),
    )
    .await
    .unwrap();
    assert_eq!(commit, fx.three);
    assert_eq!(git(&out, &["rev-list", "--count", "HEAD"]), "1");
    assert_eq!(git(&out, &["rev-parse", "--is-shallow-repository"]), "true");
    // A tag further back than the depth is still found, as with Argo's go-git clone.
    let (commit, tagged) = checkout(
        fx.dir.path(),
        serde_json::json!({"repo": daemon.url("repo.git"), "revision": "v1", "depth": 1, "disableSubmodules": true}),
    )
    .await
    .unwrap();
    assert_eq!(commit, fx.one);
    assert_eq!(read(&tagged, "README"), "one\n");

    let (_, full) = checkout(
        fx.dir.path(),
        serde_json::json!({"repo": daemon.url("repo.git"), "disableSubmodules": true}),
    )
    .await
    .unwrap();
    assert_eq!(git(&full, &["rev-list", "--count", "HEAD"]), "3");
}

#[tokio::test]
async fn fetch_refspecs_bring_refs_outside_the_branches() {
    let Some(fx) = Fixture::new() else { return };
    let Some(daemon) = GitDaemon::start(&fx.root) else {
        return;
    };
    let url = daemon.url("repo.git");
    let without = checkout(
        fx.dir.path(),
        serde_json::json!({"repo": url, "revision": fx.pull}),
    )
    .await
    .unwrap_err();
    assert!(chain(&without).contains(&fx.pull), "{}", chain(&without));
    let (commit, out) = checkout(
        fx.dir.path(),
        serde_json::json!({
            "repo": url,
            "fetch": ["+refs/pull/*/head:refs/remotes/origin/pull/*"],
            "revision": fx.pull,
        }),
    )
    .await
    .unwrap();
    assert_eq!(commit, fx.pull);
    assert_eq!(read(&out, "pr.txt"), "pull request\n");
}

#[tokio::test]
async fn single_branch_fetches_only_that_branch() {
    let Some(fx) = Fixture::new() else { return };
    let Some(daemon) = GitDaemon::start(&fx.root) else {
        return;
    };
    let url = daemon.url("repo.git");
    let (commit, out) = checkout(
        fx.dir.path(),
        serde_json::json!({"repo": url, "singleBranch": true, "branch": "feature"}),
    )
    .await
    .unwrap();
    assert_eq!(commit, fx.feature);
    assert_eq!(read(&out, "feature.txt"), "feature\n");
    let branches = git(&out, &["branch", "-r", "--format=%(refname)"]);
    assert_eq!(branches, "refs/remotes/origin/feature");

    let err = driver(
        serde_json::json!({"repo": url, "singleBranch": true}),
        &no_secrets(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Location { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("single branch mode without a branch specified"),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_revision_fails_for_good_naming_repo_and_revision_and_leaves_nothing() {
    let Some(fx) = Fixture::new() else { return };
    let Some(daemon) = GitDaemon::start(&fx.root) else {
        return;
    };
    let url = daemon.url("repo.git");
    let dest = fx.dir.path().join("dest");
    let err = driver(
        serde_json::json!({"repo": url, "revision": "no-such-branch"}),
        &no_secrets(),
    )
    .await
    .unwrap()
    .checkout(&dest)
    .await
    .unwrap_err();
    let text = chain(&err);
    assert!(matches!(err, Error::Failed { .. }), "{text}");
    assert!(!err.is_transient(), "{text}");
    assert!(
        text.contains("no-such-branch") && text.contains(&url),
        "{text}"
    );
    assert_only(fx.dir.path(), &[]);
}

#[tokio::test]
async fn an_empty_repository_gives_an_empty_working_tree() {
    let Some(fx) = Fixture::new() else { return };
    let Some(daemon) = GitDaemon::start(&fx.root) else {
        return;
    };
    let (commit, out) = checkout(
        fx.dir.path(),
        serde_json::json!({"repo": daemon.url("empty.git")}),
    )
    .await
    .unwrap();
    assert_eq!(commit, "");
    let names: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [".git"]);
}

#[tokio::test]
async fn a_refused_connection_is_transient() {
    let Some(fx) = Fixture::new() else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = checkout(
        fx.dir.path(),
        serde_json::json!({"repo": format!("git://127.0.0.1:{port}/repo.git")}),
    )
    .await
    .unwrap_err();
    assert!(err.is_transient(), "{}", chain(&err));
    assert_only(fx.dir.path(), &[]);
}

#[tokio::test]
async fn smart_http_clones_with_submodules_and_checks_revisions() {
    let Some(fx) = Fixture::new() else { return };
    let Some(server) = GitHttp::start(&fx.root) else {
        return;
    };
    let url = server.url("repo.git");
    let (commit, out) = checkout(fx.dir.path(), serde_json::json!({"repo": url}))
        .await
        .unwrap_or_else(|e| panic!("{}\n{}", chain(&e), server.error_log()));
    assert_eq!(commit, fx.three);
    assert_eq!(read(&out, "sub/sub.txt"), "in the submodule\n");
    let (commit, out) = checkout(
        fx.dir.path(),
        serde_json::json!({"repo": url, "revision": "feature", "depth": 1}),
    )
    .await
    .unwrap();
    assert_eq!(commit, fx.feature);
    assert_eq!(read(&out, "feature.txt"), "feature\n");
    assert_eq!(git(&out, &["rev-list", "--count", "HEAD"]), "1");
}

/// Secrets mounted as files: `creds/username`, `creds/password`.
fn credentials(dir: &Path, password: &str) -> MountedSecrets {
    let root = dir.join(format!("secrets-{password}"));
    std::fs::create_dir_all(root.join("creds")).unwrap();
    std::fs::write(root.join("creds/username"), format!("{USER}\n")).unwrap();
    std::fs::write(root.join("creds/password"), password).unwrap();
    MountedSecrets::new(root)
}

#[tokio::test]
async fn smart_http_basic_auth_accepts_the_right_password_and_refuses_others_for_good() {
    let Some(fx) = Fixture::new() else { return };
    let Some(server) = GitHttp::start(&fx.root) else {
        return;
    };
    let secrets_dir = tempfile::tempdir().unwrap();
    let location = serde_json::json!({
        "repo": server.private_url("repo.git"),
        "usernameSecret": {"name": "creds", "key": "username"},
        "passwordSecret": {"name": "creds", "key": "password"},
        // The submodule's URL is relative: it is under /private/ too and gets the same credentials.
    });

    let good = driver(location.clone(), &credentials(secrets_dir.path(), PASSWORD))
        .await
        .unwrap();
    let out = fx.dir.path().join("good");
    let commit = good
        .checkout(&out)
        .await
        .unwrap_or_else(|e| panic!("{}\n{}", chain(&e), server.error_log()));
    assert_eq!(commit, fx.three);
    assert_eq!(read(&out, "sub/sub.txt"), "in the submodule\n");

    let bad = driver(
        location,
        &credentials(secrets_dir.path(), "queen-of-hearts"),
    )
    .await
    .unwrap();
    let err = bad.checkout(&fx.dir.path().join("bad")).await.unwrap_err();
    let text = chain(&err);
    assert!(matches!(err, Error::Failed { .. }), "{text}");
    assert!(text.contains("were not accepted"), "{text}");
    assert!(text.contains(&server.private_url("repo.git")), "{text}");

    let err = checkout(
        fx.dir.path(),
        serde_json::json!({"repo": server.private_url("repo.git")}),
    )
    .await
    .unwrap_err();
    assert!(!err.is_transient(), "{}", chain(&err));
    assert!(!fx.dir.path().join("bad").exists());
}

#[tokio::test]
async fn objects_are_unsupported_a_repository_is_a_checkout() {
    let git = driver(
        serde_json::json!({"repo": "https://example.com/x.git"}),
        &no_secrets(),
    )
    .await
    .unwrap();
    assert!(git.is_checkout());
    for err in [
        git.get("x").await.err().unwrap(),
        git.put("x", Box::pin(futures::stream::empty()))
            .await
            .unwrap_err(),
        git.list("x").await.unwrap_err(),
        git.delete("x").await.unwrap_err(),
    ] {
        assert!(
            matches!(err, Error::Unsupported { driver: "git", .. }),
            "{err}"
        );
    }
    let err = driver(serde_json::json!({}), &no_secrets())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("repo is not set"), "{err}");
}

/// The ssh key `key` as the mounted secret `ssh/key`.
fn ssh_key(dir: &Path, name: &str, key: &str) -> MountedSecrets {
    let root = dir.join(format!("secrets-{name}"));
    std::fs::create_dir_all(root.join("ssh")).unwrap();
    // Trimmed, as secrets often are: the driver adds the newline OpenSSH needs.
    std::fs::write(root.join("ssh/key"), key.trim_end()).unwrap();
    MountedSecrets::new(root)
}

#[tokio::test]
async fn ssh_clones_with_a_private_key_and_an_ignored_host_key() {
    let Some(fx) = Fixture::new() else { return };
    let Some(server) = GitSsh::start() else {
        return;
    };
    let secrets_dir = tempfile::tempdir().unwrap();
    let location = |ignore_host_key: bool| {
        serde_json::json!({
            "repo": server.url(&fx.root.join("repo.git")),
            "sshPrivateKeySecret": {"name": "ssh", "key": "key"},
            "insecureIgnoreHostKey": ignore_host_key,
        })
    };

    let good = driver(
        location(true),
        &ssh_key(secrets_dir.path(), "good", &server.key),
    )
    .await
    .unwrap();
    let out = fx.dir.path().join("over-ssh");
    let commit = good
        .checkout(&out)
        .await
        .unwrap_or_else(|e| panic!("{}\n{}", chain(&e), server.log()));
    assert_eq!(commit, fx.three);
    assert_eq!(read(&out, "README"), "three\n");
    // The relative submodule URL is ssh too, reached with the same key and options.
    assert_eq!(read(&out, "sub/sub.txt"), "in the submodule\n");

    // The host key is checked unless told otherwise: this server's is known nowhere.
    let strict = driver(
        location(false),
        &ssh_key(secrets_dir.path(), "good", &server.key),
    )
    .await
    .unwrap();
    let err = strict
        .checkout(&fx.dir.path().join("strict"))
        .await
        .unwrap_err();
    // ssh prints "Host key verification failed" to stderr and hangs up; gix only sees the
    // connection end, which reads as transient (a retry meets the same refusal).
    let text = chain(&err);
    assert!(
        text.contains(&server.url(&fx.root.join("repo.git"))),
        "{text}"
    );
    assert!(!fx.dir.path().join("strict").exists());
}

#[tokio::test]
async fn ssh_with_a_key_the_server_does_not_accept_fails_for_good() {
    let Some(fx) = Fixture::new() else { return };
    let Some(server) = GitSsh::start() else {
        return;
    };
    let secrets_dir = tempfile::tempdir().unwrap();
    let location = serde_json::json!({
        "repo": server.url(&fx.root.join("repo.git")),
        "sshPrivateKeySecret": {"name": "ssh", "key": "key"},
        "insecureIgnoreHostKey": true,
    });
    let bad = driver(
        location,
        &ssh_key(secrets_dir.path(), "other", &server.other_key),
    )
    .await
    .unwrap();
    let err = bad.checkout(&fx.dir.path().join("bad")).await.unwrap_err();
    let text = chain(&err);
    assert!(!err.is_transient(), "{text}");
    assert!(
        text.contains(&server.url(&fx.root.join("repo.git"))),
        "{text}"
    );
    assert!(!fx.dir.path().join("bad").exists());
}

#[tokio::test]
async fn https_with_a_private_ca_is_refused_unless_insecure_skip_tls() {
    let Some(fx) = Fixture::new() else { return };
    let Some(server) = GitHttp::start(&fx.root) else {
        return;
    };
    let certs = tempfile::tempdir().unwrap();
    tls::make_certificates(certs.path());
    let plain_port: u16 = server
        .url("")
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (_socat, port) = tls::tls_front(certs.path(), plain_port);
    let url = format!("https://127.0.0.1:{port}/git/repo.git");

    // The CA is known nowhere: the certificate is refused, for good.
    let err = checkout(fx.dir.path(), serde_json::json!({"repo": url}))
        .await
        .unwrap_err();
    let text = chain(&err);
    assert!(!err.is_transient(), "{text}");
    assert!(text.contains(&url), "{text}");
    assert!(text.to_lowercase().contains("certificate"), "{text}");

    let (commit, out) = checkout(
        fx.dir.path(),
        serde_json::json!({"repo": url, "insecureSkipTLS": true}),
    )
    .await
    .unwrap_or_else(|e| panic!("{}\n{}", chain(&e), server.error_log()));
    assert_eq!(commit, fx.three);
    // The submodule's relative URL is https through the same front, with the same setting.
    assert_eq!(read(&out, "sub/sub.txt"), "in the submodule\n");
}
