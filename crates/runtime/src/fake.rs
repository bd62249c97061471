//! A recording fake runtime for tests of the wait sequence: containers whose files live in a local
//! directory, whose output is given, and whose exit the test decides.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt as _;
use tokio::sync::watch;

use crate::runtime::{
    ByteStream, ContainerRuntime, Error, ExitStatus, KillOutcome, LogStream, PathSource,
};

/// One container of a [`FakeRuntime`].
#[derive(Debug, Clone, Default)]
pub struct FakeContainer {
    /// Where the container's filesystem is: `/a/b` inside is `root/a/b`.
    pub root: PathBuf,
    /// What it wrote to standard output.
    pub stdout: Vec<u8>,
    /// Standard output and standard error together.
    pub combined: Vec<u8>,
    /// Whether SIGTERM is ignored (only SIGKILL ends it).
    pub ignores_term: bool,
}

struct Entry {
    spec: FakeContainer,
    exit: watch::Sender<Option<ExitStatus>>,
}

/// A runtime whose containers the test scripts. Records every call in [`calls`](Self::calls);
/// [`fail`](Self::fail) makes the next calls of a method fail.
#[derive(Default)]
pub struct FakeRuntime {
    containers: Mutex<BTreeMap<String, Entry>>,
    calls: Mutex<Vec<String>>,
    failures: Mutex<BTreeMap<&'static str, VecDeque<Error>>>,
}

impl std::fmt::Debug for FakeRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeRuntime").finish_non_exhaustive()
    }
}

impl FakeRuntime {
    /// A runtime with no containers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a running container.
    pub fn add(&self, name: &str, spec: FakeContainer) {
        let (exit, _) = watch::channel(None);
        self.lock().insert(name.to_owned(), Entry { spec, exit });
    }

    /// Ends a container with `code`.
    pub fn exit(&self, name: &str, code: i32) {
        if let Some(entry) = self.lock().get(name) {
            entry.exit.send_replace(Some(ExitStatus::code(code)));
        }
    }

    /// Makes the next call of `method` (`wait_started`, `wait_exited`, `kill`, `open_path` or
    /// `logs`) fail with `error`; queued failures are used one per call, in order. The call is
    /// still recorded.
    pub fn fail(&self, method: &'static str, error: Error) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.entry(method).or_default().push_back(error);
        }
    }

    /// Every call so far, e.g. `kill main`, in order.
    pub fn calls(&self) -> Vec<String> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Records `call` of `method`, then fails it if a failure is queued for the method.
    fn record(&self, method: &'static str, call: String) -> Result<(), Error> {
        if let Ok(mut calls) = self.calls.lock() {
            calls.push(call);
        }
        let queued = self
            .failures
            .lock()
            .ok()
            .and_then(|mut f| f.get_mut(method).and_then(VecDeque::pop_front));
        queued.map_or(Ok(()), Err)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Entry>> {
        // A test that panicked while holding the lock has failed already.
        self.containers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(
        &self,
        name: &str,
    ) -> Result<(FakeContainer, watch::Receiver<Option<ExitStatus>>), Error> {
        let map = self.lock();
        let entry = map.get(name).ok_or_else(|| Error::ContainerNotFound {
            container: name.to_owned(),
        })?;
        Ok((entry.spec.clone(), entry.exit.subscribe()))
    }
}

async fn exited(mut rx: watch::Receiver<Option<ExitStatus>>) -> ExitStatus {
    loop {
        if let Some(status) = *rx.borrow_and_update() {
            return status;
        }
        if rx.changed().await.is_err() {
            // The runtime was dropped: nothing will ever end the container.
            std::future::pending::<()>().await;
        }
    }
}

impl ContainerRuntime for FakeRuntime {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn containers(&self) -> Result<Vec<String>, Error> {
        Ok(self.lock().keys().cloned().collect())
    }

    async fn wait_started(&self, container: &str) -> Result<(), Error> {
        self.record("wait_started", format!("wait_started {container}"))?;
        self.get(container).map(|_| ())
    }

    async fn wait_exited(&self, container: &str) -> Result<ExitStatus, Error> {
        self.record("wait_exited", format!("wait_exited {container}"))?;
        let (_, rx) = self.get(container)?;
        Ok(exited(rx).await)
    }

    async fn kill(&self, container: &str, grace: Duration) -> Result<KillOutcome, Error> {
        self.record("kill", format!("kill {container}"))?;
        let (spec, rx) = self.get(container)?;
        if rx.borrow().is_some() {
            return Ok(KillOutcome::AlreadyExited);
        }
        if !spec.ignores_term {
            self.exit(container, 128 + 15);
            return Ok(KillOutcome::Terminated);
        }
        if tokio::time::timeout(grace, exited(rx)).await.is_ok() {
            return Ok(KillOutcome::Terminated);
        }
        self.exit(container, 128 + 9);
        Ok(KillOutcome::Killed)
    }

    async fn open_path(&self, container: &str, path: &Path) -> Result<PathSource, Error> {
        self.record(
            "open_path",
            format!("open_path {container} {}", path.display()),
        )?;
        let (spec, _) = self.get(container)?;
        let local = spec.root.join(path.strip_prefix("/").unwrap_or(path));
        if std::fs::symlink_metadata(&local).is_err() {
            return Err(Error::PathNotFound {
                container: container.to_owned(),
                path: path.to_owned(),
            });
        }
        Ok(PathSource::Local(local))
    }

    async fn logs(&self, container: &str, stream: LogStream) -> Result<ByteStream, Error> {
        self.record("logs", format!("logs {container} {stream:?}"))?;
        let (spec, _) = self.get(container)?;
        let bytes = match stream {
            LogStream::Stdout => spec.stdout,
            LogStream::Combined => spec.combined,
        };
        Ok(futures::stream::iter([Ok(Bytes::from(bytes))]).boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn kill_escalates_when_term_is_ignored() {
        let rt = FakeRuntime::new();
        rt.add(
            "sidecar",
            FakeContainer {
                ignores_term: true,
                ..Default::default()
            },
        );
        rt.add("main", FakeContainer::default());
        let outcome = rt.kill("sidecar", Duration::from_millis(10)).await.unwrap();
        assert_eq!(outcome, KillOutcome::Killed);
        assert_eq!(rt.wait_exited("sidecar").await.unwrap().code, Some(137));
        assert_eq!(
            rt.kill("main", Duration::ZERO).await.unwrap(),
            KillOutcome::Terminated
        );
        assert_eq!(
            rt.kill("main", Duration::ZERO).await.unwrap(),
            KillOutcome::AlreadyExited
        );
        assert!(rt.calls().contains(&"kill sidecar".to_owned()));
    }
}
