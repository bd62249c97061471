//! The emissary runtime: every container but `wait` runs under `argoexec emissary`, which keeps
//! its state in the shared `/var/run/argo` (contract §6), so wait needs no privilege at all.
//!
//! - Exit: `ctr/<c>/exitcode` appears, seen with inotify (Argo polls every second). The emissary
//!   writes it last, after the logs and the staged outputs.
//! - Kill: `15` written to `ctr/<c>/signal`, up to the grace period, then `9` (Argo 3.3.9 never
//!   sent the second).
//! - Files: the emissary of `main` stages each output parameter at `outputs/parameters/<path>`
//!   and each output artifact as `outputs/artifacts/<path>.tgz`; nothing else of main's image is
//!   reachable. An artifact is given as its staged `.tgz`, streamed from the file
//!   ([`PathSource::TarGz`]): no temp file, and no re-compression for the default strategy.
//! - Logs: `ctr/<c>/stdout` and `combined`, which the emissary writes only when the template needs
//!   them (script result, `archiveLogs`).

use std::io;
use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::runtime::{
    ByteStream, ContainerRuntime, Error, ExitStatus, KillOutcome, LogStream, PathSource,
};
use crate::state_dir;

/// How long to wait for `exitcode` after writing SIGKILL to the signal file (Argo: 10 s).
const AFTER_KILL: Duration = Duration::from_secs(10);
/// Bytes per read of a staged archive.
const STREAM_CHUNK: usize = 256 * 1024;
/// A bound long enough to mean "until it happens".
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

/// The emissary runtime. See the [module docs](self).
#[derive(Debug)]
pub struct Emissary {
    var_run_argo: PathBuf,
}

impl Emissary {
    /// The runtime of a pod whose shared directory is `var_run_argo` (`/var/run/argo`).
    pub fn new(var_run_argo: impl Into<PathBuf>) -> Self {
        Self {
            var_run_argo: var_run_argo.into(),
        }
    }

    fn ctr(&self) -> PathBuf {
        self.var_run_argo.join("ctr")
    }

    /// `ctr/<c>/`, created (mode 0777) when missing, as Argo's wait does: the container may not
    /// have started, and its directory must exist to be watched and signalled.
    fn ctr_dir(&self, container: &str) -> Result<PathBuf, Error> {
        let dir = self.ctr().join(container);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o777)
            .create(&dir)
            .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777));
        Ok(dir)
    }

    fn send(&self, container: &str, signal: i32) -> Result<(), Error> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = self.ctr_dir(container)?.join("signal");
        // Mode 0666: the emissary, maybe another user, removes the file once it has read it.
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o666)
            .open(&path)
            .and_then(|mut file| file.write_all(signal.to_string().as_bytes()))
            .map_err(|e| Error::io(format!("write signal {signal} to {}", path.display()), e))
    }

    /// Resolves once the container's `exitcode` holds a code.
    async fn exited(&self, container: &str) -> Result<Option<i32>, Error> {
        self.ctr_dir(container)?;
        Ok(state_dir::exit_code(&self.ctr(), container, FOREVER).await)
    }

    /// The exit code if the container has exited, without waiting.
    fn exited_now(&self, container: &str) -> Option<i32> {
        std::fs::read_to_string(self.ctr().join(container).join("exitcode"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

/// Where the emissary of `main` stages the output parameter file `path` for wait:
/// `<var_run_argo>/outputs/parameters/<path>` (Argo's layout).
pub fn staged_parameter(var_run_argo: &Path, path: &str) -> PathBuf {
    var_run_argo
        .join("outputs/parameters")
        .join(path.trim_start_matches('/'))
}

/// Where the emissary of `main` stages the output artifact `path` for wait, as tar+gzip:
/// `<var_run_argo>/outputs/artifacts/<path>.tgz`, the path without its trailing `/` (Argo's
/// layout).
pub fn staged_artifact(var_run_argo: &Path, path: &str) -> PathBuf {
    let path = path.trim_start_matches('/').trim_end_matches('/');
    var_run_argo
        .join("outputs/artifacts")
        .join(format!("{path}.tgz"))
}

impl ContainerRuntime for Emissary {
    fn name(&self) -> &'static str {
        "emissary"
    }

    async fn containers(&self) -> Result<Vec<String>, Error> {
        let dir = self.ctr();
        let mut names = Vec::new();
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(names),
            Err(e) => return Err(Error::io(format!("list {}", dir.display()), e)),
        };
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| Error::io(format!("list {}", dir.display()), e))?
        {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// Nothing to hold: the emissary's files outlive the container.
    async fn wait_started(&self, _container: &str) -> Result<(), Error> {
        Ok(())
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn wait_exited(&self, container: &str) -> Result<ExitStatus, Error> {
        let code = self.exited(container).await?;
        Ok(ExitStatus { code })
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn kill(&self, container: &str, grace: Duration) -> Result<KillOutcome, Error> {
        if self.exited_now(container).is_some() {
            return Ok(KillOutcome::AlreadyExited);
        }
        self.send(container, 15)?;
        tracing::info!(container, ?grace, "sent SIGTERM (signal file)");
        if tokio::time::timeout(grace, self.exited(container))
            .await
            .is_ok()
        {
            return Ok(KillOutcome::Terminated);
        }
        tracing::warn!(
            container,
            ?grace,
            "still running after the grace period; sending SIGKILL"
        );
        self.send(container, 9)?;
        match tokio::time::timeout(AFTER_KILL, self.exited(container)).await {
            Ok(_) => Ok(KillOutcome::Killed),
            Err(_) => Err(Error::io(
                format!("kill container {container:?}"),
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "no exit code {AFTER_KILL:?} after SIGKILL was written to its signal file"
                    ),
                ),
            )),
        }
    }

    /// The staged `.tgz` as it is, streamed from the file: the emissary packed it exactly as a
    /// save of the path packs the default tar+gzip, so wait uploads it unchanged for that strategy
    /// and decompresses it for any other.
    #[tracing::instrument(level = "debug", skip(self))]
    async fn open_path(&self, container: &str, path: &Path) -> Result<PathSource, Error> {
        use futures::StreamExt as _;
        let archive = staged_artifact(&self.var_run_argo, &path.to_string_lossy());
        let file = match tokio::fs::File::open(&archive).await {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::PathNotFound {
                    container: container.to_owned(),
                    path: path.to_owned(),
                });
            }
            Err(e) => return Err(Error::io(format!("open {}", archive.display()), e)),
        };
        Ok(PathSource::TarGz(
            tokio_util::io::ReaderStream::with_capacity(file, STREAM_CHUNK).boxed(),
        ))
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn read_file(&self, container: &str, path: &Path) -> Result<Vec<u8>, Error> {
        let staged = staged_parameter(&self.var_run_argo, &path.to_string_lossy());
        tokio::fs::read(&staged).await.map_err(|source| {
            if source.kind() == io::ErrorKind::NotFound {
                Error::PathNotFound {
                    container: container.to_owned(),
                    path: path.to_owned(),
                }
            } else {
                Error::io(format!("read {}", staged.display()), source)
            }
        })
    }

    #[tracing::instrument(level = "debug", skip(self))]
    async fn logs(&self, container: &str, stream: LogStream) -> Result<ByteStream, Error> {
        crate::state_dir::open_log(&self.ctr(), container, stream).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn reads_the_staged_files() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = Emissary::new(dir.path());
        let params = dir.path().join("outputs/parameters/tmp");
        std::fs::create_dir_all(&params).unwrap();
        std::fs::write(params.join("p.txt"), "v").unwrap();
        assert_eq!(
            runtime
                .read_file("main", Path::new("/tmp/p.txt"))
                .await
                .unwrap(),
            b"v"
        );
        assert!(
            runtime
                .read_file("main", Path::new("/tmp/none"))
                .await
                .unwrap_err()
                .is_not_found()
        );

        // outputs/artifacts/tmp/out.tgz holding `out/a`.
        let tgz = dir.path().join("outputs/artifacts/tmp/out.tgz");
        std::fs::create_dir_all(tgz.parent().unwrap()).unwrap();
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&tgz).unwrap(),
            flate2::Compression::default(),
        );
        let mut tar = tar::Builder::new(gz);
        let mut header = tar::Header::new_gnu();
        header.set_size(1);
        header.set_mode(0o644);
        tar.append_data(&mut header, "out/a", &b"a"[..]).unwrap();
        tar.into_inner().unwrap().finish().unwrap();
        let PathSource::TarGz(stream) = runtime
            .open_path("main", Path::new("/tmp/out/"))
            .await
            .unwrap()
        else {
            panic!("not the staged tar.gz")
        };
        let bytes: Vec<u8> =
            futures::TryStreamExt::try_concat(futures::TryStreamExt::map_ok(stream, |chunk| {
                chunk.to_vec()
            }))
            .await
            .unwrap();
        assert_eq!(bytes, std::fs::read(&tgz).unwrap());
        assert!(
            runtime
                .open_path("main", Path::new("/tmp/missing"))
                .await
                .unwrap_err()
                .is_not_found()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn kill_escalates_and_exit_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = Emissary::new(dir.path());
        let ctr = dir.path().join("ctr/main");
        // A stand-in for an emissary whose command ignores SIGTERM: it writes the exit code
        // only once it reads 9 from the signal file.
        let watcher = {
            let ctr = ctr.clone();
            std::thread::spawn(move || {
                let mut seen = Vec::new();
                loop {
                    if let Ok(text) = std::fs::read_to_string(ctr.join("signal"))
                        && let Ok(n) = text.trim().parse::<i32>()
                    {
                        std::fs::remove_file(ctr.join("signal")).unwrap();
                        seen.push(n);
                        if n == 9 {
                            std::fs::write(ctr.join("exitcode"), "137").unwrap();
                            return seen;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
            })
        };
        assert_eq!(
            runtime
                .kill("main", Duration::from_millis(200))
                .await
                .unwrap(),
            KillOutcome::Killed
        );
        assert_eq!(watcher.join().unwrap(), [15, 9]);
        assert_eq!(runtime.wait_exited("main").await.unwrap().code, Some(137));
        assert_eq!(
            runtime.kill("main", Duration::ZERO).await.unwrap(),
            KillOutcome::AlreadyExited
        );
        assert_eq!(runtime.containers().await.unwrap(), ["main"]);
    }
}
