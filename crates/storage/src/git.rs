//! Git repositories, checked out whole into a directory (input only, as in Argo).
//!
//! A git location is not an object store: [`Git::checkout`] clones `repo` into a hidden folder
//! beside the destination, checks out `revision` (a branch, a tag, a full or abbreviated commit
//! id, a `refs/...` name; the remote's `HEAD` when unset), clones the submodules recursively
//! (unless `disableSubmodules`), and renames the finished working tree into place. `get`, `put`,
//! `list` and `delete` are unsupported.
//!
//! Behaviour follows Argo's driver (`workflow/artifacts/git/git.go`): `depth` makes the clone
//! shallow (every branch and tag tip with that many commits, as go-git's clone fetches all tags:
//! a commit further back is then unknown); `fetch` refspecs are fetched with the clone; `singleBranch` fetches only `branch`
//! (and is an error without it); `usernameSecret`/`passwordSecret` are sent as HTTP basic auth
//! (also over plain `http://`, as Argo does); `insecureSkipTLS` accepts any server certificate.
//! A branch that is not the remote's default is found as `origin/<branch>`, as `git checkout`
//! does. Where Argo clones an empty repository into an empty working tree, so do we.
//!
//! The client is [gix](https://docs.rs/gix) (pure Rust) on a blocking thread. HTTP(S) goes
//! through reqwest over rustls with aws-lc-rs, the provider every other driver uses, with no total
//! timeout (packs are as large as repositories; Argo sets none either). `ssh://` and
//! `user@host:path` URLs run the `ssh` program, which must be installed in the image: the private
//! key of `sshPrivateKeySecret` is written to a 0600 temporary file for the duration of the clone,
//! `insecureIgnoreHostKey` turns off host key checking, and a URL without a user logs in as `git`
//! (Argo's default).
//!
//! Submodules are cloned into their path with their own `.git` directory (git keeps theirs under
//! the superproject's `.git/modules`; the working tree is the same), at the commit the
//! superproject records, at most 10 levels deep (go-git's default, which Argo uses).
//!
//! Failures: connection errors and timeouts are [`Error::Transient`]; refused credentials, an
//! unknown revision and everything else are [`Error::Failed`], naming the repository (and the
//! revision).

use std::fmt;
use std::io::{self, Write as _};
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

use argoexec_template::GitArtifact;
use gix::ObjectId;
use gix::credentials::helper::Action;
use gix::credentials::protocol::Outcome;
use gix::progress::Discard;
use gix::protocol::transport::client::blocking_io::{Transport, http};
use gix::refs::Target;
use gix::refs::transaction::{Change, LogChange, PreviousValue, RefEdit, RefLog};
use gix::remote::Direction;
use gix::remote::fetch::Shallow;

use crate::driver::{ByteStream, Driver, Error, Secrets, text_secret};
use crate::retry::is_transient_io;
use crate::transfer::staging_path;

/// The driver's name in messages.
const DRIVER: &str = "git";
/// The name of the remote a clone creates.
const REMOTE: &str = "origin";
/// How many levels of submodules are followed (go-git's `DefaultSubmoduleRecursionDepth`).
const SUBMODULE_LEVELS: usize = 10;

/// A git repository, checked out whole with [`Driver::checkout`].
#[derive(Clone)]
pub struct Git {
    repo: String,
    revision: Option<String>,
    depth: Option<NonZeroU32>,
    fetch: Vec<String>,
    single_branch: Option<String>,
    submodules: bool,
    access: Arc<Access>,
}

/// How to reach the remote: credentials and transport settings, shared by the superproject and
/// its submodules.
struct Access {
    basic: Option<(String, String)>,
    ssh_key: Option<Vec<u8>>,
    insecure_ignore_host_key: bool,
    insecure_skip_tls: bool,
}

impl fmt::Debug for Git {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Credentials stay out of logs.
        f.debug_struct("Git")
            .field("repo", &self.repo)
            .field("revision", &self.revision)
            .field("depth", &self.depth)
            .field("fetch", &self.fetch)
            .field("single_branch", &self.single_branch)
            .field("submodules", &self.submodules)
            .finish_non_exhaustive()
    }
}

impl Git {
    /// The driver for a git location. The location is validated (URL, refspecs, `singleBranch`
    /// with `branch`) and the credentials are read now.
    pub async fn from_location<S: Secrets>(
        location: &GitArtifact,
        secrets: &S,
    ) -> Result<Self, Error> {
        let bad = |reason: String| Error::Location {
            driver: DRIVER,
            reason,
        };
        let repo = location
            .repo
            .clone()
            .filter(|r| !r.is_empty())
            .ok_or_else(|| bad("repo is not set".into()))?;
        gix::url::parse(repo.as_str())
            .map_err(|e| bad(format!("repo {repo:?} is not a git URL: {e}")))?;
        let fetch = location.fetch.clone().unwrap_or_default();
        for spec in &fetch {
            gix::refspec::parse(spec.as_str().into(), gix::refspec::parse::Operation::Fetch)
                .map_err(|e| bad(format!("invalid fetch refspec {spec:?}: {e}")))?;
        }
        let single_branch = match (location.single_branch, location.branch.as_deref()) {
            (Some(true), Some(branch)) if !branch.is_empty() => Some(branch.to_owned()),
            (Some(true), _) => {
                return Err(bad("single branch mode without a branch specified".into()));
            }
            _ => None,
        };
        let depth = match location.depth {
            None | Some(0) => None,
            Some(d) => Some(
                u32::try_from(d)
                    .ok()
                    .and_then(NonZeroU32::new)
                    .ok_or_else(|| bad(format!("depth {d} is too large")))?,
            ),
        };
        let username = match &location.username_secret {
            Some(s) => Some(text_secret(secrets, s).await?),
            None => None,
        };
        let password = match &location.password_secret {
            Some(s) => Some(text_secret(secrets, s).await?),
            None => None,
        };
        let basic = (username.is_some() || password.is_some())
            .then(|| (username.unwrap_or_default(), password.unwrap_or_default()));
        let ssh_key = match &location.ssh_private_key_secret {
            Some(s) => Some(secrets.get(&s.name, &s.key).await?),
            None => None,
        };
        Ok(Self {
            repo,
            revision: location.revision.clone().filter(|r| !r.is_empty()),
            depth,
            fetch,
            single_branch,
            submodules: !location.disable_submodules.unwrap_or(false),
            access: Arc::new(Access {
                basic,
                ssh_key,
                insecure_ignore_host_key: location.insecure_ignore_host_key.unwrap_or(false),
                insecure_skip_tls: location.insecure_skip_tls.unwrap_or(false),
            }),
        })
    }

    /// The repository's URL, as given.
    pub fn repo(&self) -> &str {
        &self.repo
    }

    fn checkout_blocking(&self, dest: &Path) -> Result<String, Error> {
        let io = |e| Error::io("write", dest.display().to_string(), e);
        let staging = staging_path(dest, "partial-checkout");
        if let Some(parent) = staging.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        let _ = std::fs::remove_dir_all(&staging);
        // Removed when dropped, after the clone (and its submodules) finished either way.
        let key = self
            .access
            .ssh_key
            .as_deref()
            .map(write_key)
            .transpose()
            .map_err(|e| Error::io("write ssh key", self.repo.clone(), e))?;
        let overrides = ssh_overrides(
            key.as_ref().map(|k| k.path()),
            self.access.insecure_ignore_host_key,
        );
        let result = (|| {
            let url = remote_url(&self.repo)?;
            if url.scheme == gix::url::Scheme::Ssh
                && on_path("ssh", std::env::var_os("PATH").as_deref()).is_none()
            {
                return Err(Error::Failed {
                    operation: "clone",
                    key: self.repo.clone(),
                    source: "ssh URLs need the `ssh` program, which is not on PATH \
                             (install openssh-client in the image)"
                        .into(),
                });
            }
            let plan = Plan {
                url,
                dir: &staging,
                want: match &self.revision {
                    Some(r) => Want::Revision(r),
                    None => Want::Head,
                },
                depth: self.depth,
                single_branch: self.single_branch.as_deref(),
                fetch: &self.fetch,
                submodules: self.submodules,
            };
            let commit = clone(&plan, &self.access, &overrides, 0)?;
            remove_any(dest).map_err(io)?;
            std::fs::rename(&staging, dest).map_err(io)?;
            Ok(commit)
        })();
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&staging);
        }
        result.map(|commit| commit.map(|c| c.to_string()).unwrap_or_default())
    }
}

impl Driver for Git {
    fn name(&self) -> &'static str {
        DRIVER
    }

    async fn get(&self, key: &str) -> Result<ByteStream, Error> {
        let _ = key;
        Err(Error::Unsupported {
            driver: DRIVER,
            operation: "reading a single object (a repository is checked out as a directory)",
        })
    }

    fn is_checkout(&self) -> bool {
        true
    }

    async fn checkout(&self, dest: &Path) -> Result<String, Error> {
        let this = self.clone();
        let dest = dest.to_owned();
        tracing::info!(
            repo = %self.repo,
            revision = self.revision.as_deref().unwrap_or("(default branch)"),
            depth = %self.depth.map_or_else(|| "full".to_owned(), |d| d.to_string()),
            "Cloning git repository"
        );
        let commit = tokio::task::spawn_blocking(move || this.checkout_blocking(&dest))
            .await
            .map_err(|e| Error::Failed {
                operation: "clone",
                key: self.repo.clone(),
                source: e.into(),
            })??;
        tracing::info!(repo = %self.repo, commit = %commit, "Checked out git repository");
        Ok(commit)
    }
}

/// What to check out after the fetch.
enum Want<'a> {
    /// The remote's default branch.
    Head,
    /// A name or commit id, resolved in the clone.
    Revision(&'a str),
    /// A commit (a submodule's, recorded by its superproject).
    Commit(ObjectId),
}

/// One clone: the superproject or a submodule.
struct Plan<'a> {
    url: gix::Url,
    dir: &'a Path,
    want: Want<'a>,
    depth: Option<NonZeroU32>,
    single_branch: Option<&'a str>,
    fetch: &'a [String],
    submodules: bool,
}

/// The URL to clone from; an ssh URL without a user logs in as `git`, as in Argo.
fn remote_url(repo: &str) -> Result<gix::Url, Error> {
    let mut url = gix::url::parse(repo).map_err(|e| Error::Location {
        driver: DRIVER,
        reason: format!("repo {repo:?} is not a git URL: {e}"),
    })?;
    if url.scheme == gix::url::Scheme::Ssh && url.user().is_none() {
        url.set_user(Some("git".into()));
    }
    Ok(url)
}

/// Clones `plan.url` into `plan.dir`, checks out what it wants and, recursively, its
/// submodules. Returns the commit checked out (none for an empty repository).
fn clone(
    plan: &Plan<'_>,
    access: &Arc<Access>,
    overrides: &[String],
    level: usize,
) -> Result<Option<ObjectId>, Error> {
    let key = plan.url.to_bstring().to_string();
    let fail = |operation: &'static str, err: gix::Error| failure(operation, &key, err);
    let mut prepare = gix::clone::PrepareFetch::new(
        plan.url.clone(),
        plan.dir,
        gix::create::Kind::WithWorktree,
        gix::create::Options::default(),
        // No system or user configuration, no credential helpers, no prompts: the location says
        // everything.
        gix::open::Options::isolated(),
    )
    .map_err(|e| fail("clone", e))?
    .with_in_memory_config_overrides(overrides.iter().map(String::as_str));
    if let Some(depth) = plan.depth {
        prepare = prepare.with_shallow(Shallow::DepthAtRemote(depth));
    }
    let mut replace = None;
    if let Some(branch) = plan.single_branch {
        prepare = prepare
            .with_ref_name(Some(branch))
            .map_err(|e| fail("clone", e))?;
        replace = Some(format!(
            "+refs/heads/{branch}:refs/remotes/{REMOTE}/{branch}"
        ));
    }
    let mut extra = plan.fetch.to_vec();
    // Argo's go-git clone brings every tag as well, each tip at the clone's depth: a shallow clone
    // still finds a tag that is further back than `depth` on its branch.
    if plan.depth.is_some() && plan.single_branch.is_none() {
        extra.push("+refs/tags/*:refs/tags/*".to_owned());
    }
    prepare = prepare.configure_remote(move |mut remote| {
        if let Some(spec) = &replace {
            remote.replace_refspecs(Some(spec.as_str()), Direction::Fetch)?;
        }
        remote.with_refspecs(extra.iter().map(String::as_str), Direction::Fetch)
    });
    let conn_access = Arc::clone(access);
    prepare = prepare.configure_connection(move |conn| configure_connection(conn, &conn_access));

    let interrupt = AtomicBool::new(false);
    let (mut checkout, _) = prepare
        .fetch_then_checkout(Discard, &interrupt)
        .map_err(|e| fail("clone", e))?;
    let repo = checkout.repo();
    let empty = repo
        .references()
        .and_then(|refs| Ok(refs.all()?.next().is_none()))
        .map_err(|e| fail("clone", e))?;
    if empty {
        tracing::info!(repo = %key, "Cloned an empty repository");
    }
    let commit = match plan.want {
        _ if empty => None,
        Want::Head => None,
        Want::Revision(revision) => Some(
            resolve(repo, revision)
                .map_err(|e| failure("resolve revision", &format!("{revision:?} in {key}"), e))?,
        ),
        Want::Commit(id) => Some(id),
    };
    if let Some(id) = commit {
        detach_head(repo, id).map_err(|e| fail("check out", e))?;
    }
    let (repo, _) = checkout
        .main_worktree(Discard, &interrupt)
        .map_err(|e| fail("check out", e))?;
    let head = if empty {
        None
    } else {
        Some(repo.head_id().map_err(|e| fail("check out", e))?.detach())
    };
    if plan.submodules {
        clone_submodules(&repo, access, overrides, level)?;
    }
    Ok(head)
}

/// The commit a revision names. Branches other than the remote's default exist only as
/// remote-tracking branches after a clone (Argo fetches them to `refs/heads/*` instead): a
/// revision `<branch>` or `refs/heads/<branch>` is also looked up as `origin/<branch>`, as
/// `git checkout <branch>` does.
fn resolve(repo: &gix::Repository, revision: &str) -> Result<ObjectId, gix::Error> {
    let peel =
        |id: gix::Id<'_>| -> Result<ObjectId, gix::Error> { Ok(id.object()?.peel_to_commit()?.id) };
    let first = match repo.rev_parse_single(revision) {
        Ok(id) => return peel(id),
        Err(e) => e,
    };
    let branch = revision.strip_prefix("refs/heads/").unwrap_or(revision);
    let tracking = format!("refs/remotes/{REMOTE}/{branch}");
    match repo.rev_parse_single(tracking.as_str()) {
        Ok(id) => peel(id),
        Err(_) => Err(first),
    }
}

/// Points `HEAD` at `id`, detached, so that the checkout writes that commit's tree.
fn detach_head(repo: &gix::Repository, id: ObjectId) -> Result<(), gix::Error> {
    repo.edit_reference(RefEdit {
        change: Change::Update {
            log: LogChange {
                mode: RefLog::AndReference,
                force_create_reflog: false,
                message: format!("argoexec: checkout {id}").into(),
            },
            expected: PreviousValue::Any,
            new: Target::Object(id),
        },
        name: "HEAD".try_into().map_err(gix::Error::from_error)?,
        deref: false,
    })?;
    Ok(())
}

/// Clones every submodule recorded in the checked-out tree at its recorded commit, as
/// `git submodule update --init --recursive` does.
fn clone_submodules(
    repo: &gix::Repository,
    access: &Arc<Access>,
    overrides: &[String],
    level: usize,
) -> Result<(), Error> {
    let key = repo
        .workdir()
        .map(|w| w.display().to_string())
        .unwrap_or_default();
    let fail = |err: gix::Error| failure("read submodules of", &key, err);
    let Some(modules) = repo.submodules().map_err(fail)? else {
        return Ok(());
    };
    if level >= SUBMODULE_LEVELS {
        tracing::warn!(path = %key, "Submodules nested deeper than {SUBMODULE_LEVELS} levels are not cloned");
        return Ok(());
    }
    for module in modules {
        let name = module.name().to_string();
        // Listed in .gitmodules but not in the tree: git skips it too.
        let Some(commit) = module.head_id().map_err(fail)? else {
            continue;
        };
        let url = module.resolved_url().map_err(fail)?;
        let dir = module.work_dir().map_err(fail)?;
        tracing::info!(submodule = %name, url = %url.to_bstring(), commit = %commit, "Cloning submodule");
        let plan = Plan {
            url,
            dir: &dir,
            want: Want::Commit(commit),
            depth: None,
            single_branch: None,
            fetch: &[],
            submodules: true,
        };
        clone(&plan, access, overrides, level + 1).map_err(|e| Error::Failed {
            operation: "update submodule",
            key: format!("{name} of {key}"),
            source: e.into(),
        })?;
    }
    Ok(())
}

/// Credentials and HTTP settings for one connection.
fn configure_connection(
    conn: &mut gix::remote::Connection<'_, '_, '_, Box<dyn Transport + Send>>,
    access: &Access,
) -> gix::Result<()> {
    let basic = access.basic.clone();
    // Only the location's credentials, never a helper or a prompt; none means "no access".
    conn.set_credentials(move |action| match action {
        Action::Get(ctx) => Ok(basic.clone().map(|(username, password)| Outcome {
            identity: gix::sec::identity::Account {
                username,
                password,
                oauth_refresh_token: None,
            },
            next: ctx.into(),
        })),
        Action::Store(_) | Action::Erase(_) => Ok(None),
    });
    let url = conn
        .remote()
        .url(Direction::Fetch)
        .map(|u| u.to_bstring())
        .unwrap_or_default();
    let is_http = matches!(
        conn.remote().url(Direction::Fetch).map(|u| &u.scheme),
        Some(gix::url::Scheme::Http | gix::url::Scheme::Https)
    );
    if !is_http {
        return Ok(());
    }
    let mut options = conn
        .remote()
        .repo()
        .transport_options(url.as_slice(), None)?
        .and_then(|o| o.downcast::<http::Options>().ok())
        .map(|o| *o)
        .unwrap_or_default();
    let skip_tls = access.insecure_skip_tls;
    let backend = http::reqwest::Options {
        configure_client: Some(Box::new(move |builder| {
            // reqwest's blocking client gives up after 30 s in total by default: too short for
            // a pack of any size.
            Ok(builder.timeout(None).danger_accept_invalid_certs(skip_tls))
        })),
        configure_request: None,
    };
    options.backend = Some(Arc::new(Mutex::new(backend)));
    conn.set_transport_options(Box::new(options));
    Ok(())
}

/// `core.sshCommand` (and the variant, so gix does not probe the program) for ssh URLs: the
/// key, no prompts, and no host key checking when asked.
fn ssh_overrides(key: Option<&Path>, insecure_ignore_host_key: bool) -> Vec<String> {
    let mut command = String::from("ssh -o BatchMode=yes");
    if let Some(key) = key {
        command.push_str(&format!(
            " -o IdentitiesOnly=yes -i {}",
            shell_quote(&key.display().to_string())
        ));
    }
    if insecure_ignore_host_key {
        command.push_str(" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null");
    }
    vec![
        format!("core.sshCommand={command}"),
        "ssh.variant=ssh".to_owned(),
    ]
}

/// The first executable file `name` in the directories of `path` (a `PATH` value).
fn on_path(name: &str, path: Option<&std::ffi::OsStr>) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::split_paths(path?)
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// `s` as one single-quoted shell word.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The private key in a 0600 temporary file (ssh refuses group- or world-readable keys), with
/// the final newline OpenSSH needs.
fn write_key(key: &[u8]) -> io::Result<tempfile::NamedTempFile> {
    let mut file = tempfile::Builder::new().prefix("id_rsa.").tempfile()?;
    file.write_all(key)?;
    if !key.ends_with(b"\n") {
        file.write_all(b"\n")?;
    }
    file.flush()?;
    Ok(file)
}

/// Removes whatever is at `path` (a file or a directory); nothing there is fine.
fn remove_any(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A gix failure as a storage error: connection trouble is transient, refused credentials and
/// everything else are not.
fn failure(operation: &'static str, key: &str, err: gix::Error) -> Error {
    let denied = err.is_unauthenticated()
        || err.is_permission_denied()
        || err.iter_errors().any(crate::retry::is_tls_refusal);
    let transient = !denied
        && (err.can_retry_lenient()
            || err
                .iter_errors()
                .any(|e| e.downcast_ref::<io::Error>().is_some_and(is_transient_io)));
    Error::request(transient, operation, key, err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn on_path_finds_only_executable_files() {
        let dir = tempfile::tempdir().unwrap();
        let (bin, empty) = (dir.path().join("bin"), dir.path().join("empty"));
        std::fs::create_dir_all(bin.join("ssh-dir")).unwrap();
        std::fs::create_dir_all(&empty).unwrap();
        std::fs::write(bin.join("ssh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(bin.join("ssh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(bin.join("plain"), "").unwrap();
        let path = std::env::join_paths([&empty, &bin]).unwrap();
        assert_eq!(on_path("ssh", Some(&path)), Some(bin.join("ssh")));
        assert_eq!(on_path("plain", Some(&path)), None, "not executable");
        assert_eq!(on_path("ssh-dir", Some(&path)), None, "a directory");
        assert_eq!(on_path("ssh", Some(empty.as_os_str())), None);
        assert_eq!(on_path("ssh", None), None);
    }
}
