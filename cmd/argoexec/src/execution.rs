//! v2 execution control: Argo 2 put the step's deadline in the pod annotation
//! `workflows.argoproj.io/execution` (`{"deadline": RFC 3339}`, Go's zero time meaning "stop now")
//! and told the wait container to re-read its downward-API file with SIGUSR2 when it changed.
//! The deadline at start-up becomes wait's deadline; the file is re-read when kubelet updates it
//! (inotify on its directory: kubelet swaps the volume's `..data` symlink, so the file itself never
//! changes in place) and on SIGUSR2. A later deadline stops main when it passes ("Step exceeded its
//! deadline"); Go's zero time stops it at once ("Step terminated", Argo 2's "terminated").

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Context as _;
use argoexec_config::Config;
use argoexec_executor::Stop;
use argoexec_runtime::DirChanges;
use argoexec_template::{EXECUTION_ANNOTATION, SourcePaths, parse_annotations};

/// Go's zero time, 0001-01-01T00:00:00Z, in Unix seconds.
const GO_ZERO_TIME: i64 = -62_135_596_800;

/// What the execution annotation asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Execution {
    /// No deadline.
    Unbounded,
    /// Stop at this time.
    Deadline(SystemTime),
    /// Go's zero time: stop now.
    Stop,
}

impl std::fmt::Display for Execution {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unbounded => f.write_str("no deadline"),
            Self::Deadline(at) => match jiff::Timestamp::try_from(*at) {
                Ok(at) => write!(f, "deadline {at}"),
                Err(_) => f.write_str("deadline out of range"),
            },
            Self::Stop => f.write_str("stop now"),
        }
    }
}

/// The downward-API annotations file of a v2 pod.
pub(crate) fn annotations_path(config: &Config, root: &Path) -> PathBuf {
    config
        .flags
        .pod_annotations
        .clone()
        .unwrap_or_else(|| SourcePaths::under(root).annotations)
}

/// Reads the execution annotation from the annotations file.
pub(crate) fn read(path: &Path) -> anyhow::Result<Execution> {
    let bytes =
        std::fs::read(path).with_context(|| format!("read pod annotations {}", path.display()))?;
    let annotations = parse_annotations(&bytes)
        .with_context(|| format!("parse pod annotations {}", path.display()))?;
    let Some(json) = annotations.get(EXECUTION_ANNOTATION) else {
        return Ok(Execution::Unbounded);
    };
    let control: serde_json::Value = serde_json::from_str(json).with_context(|| {
        format!("invalid annotation {EXECUTION_ANNOTATION}={json:?}: expected {{\"deadline\": RFC 3339}}")
    })?;
    let Some(deadline) = control.get("deadline").and_then(serde_json::Value::as_str) else {
        return Ok(Execution::Unbounded);
    };
    let at: jiff::Timestamp = deadline.parse().with_context(|| {
        format!(
            "invalid deadline {deadline:?} in annotation {EXECUTION_ANNOTATION}: expected RFC 3339"
        )
    })?;
    if at <= jiff::Timestamp::from_second(GO_ZERO_TIME)? {
        return Ok(Execution::Stop);
    }
    Ok(Execution::Deadline(SystemTime::from(at)))
}

/// Watches the directory of the annotations file, where kubelet renames the new `..data` symlink
/// in (or a plain file is written); `None`, with a warning, when it cannot: SIGUSR2 still works.
pub(crate) fn watch(path: &Path) -> Option<DirChanges> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    DirChanges::new(dir)
        .inspect_err(|error| {
            tracing::warn!(dir = %dir.display(), %error, "Cannot watch the pod annotations; re-read on SIGUSR2 only");
        })
        .ok()
}

/// Resolves when the execution control asks wait to stop: it says Go's zero time, or a deadline
/// other than `handled` (wait's own, which run_wait enforces) passes. Re-read when `watch` sees
/// the directory change and after SIGUSR2; a file that cannot be read is logged and the previous
/// control kept.
pub(crate) async fn stop_requested(
    path: PathBuf,
    mut current: Execution,
    handled: Option<SystemTime>,
    mut usr2: tokio::signal::unix::Signal,
    mut watch: Option<DirChanges>,
) -> Stop {
    loop {
        let until = match current {
            Execution::Stop => return Stop::Terminated,
            Execution::Deadline(at) if Some(at) != handled => Some(at),
            Execution::Deadline(_) => None,
            Execution::Unbounded => None,
        };
        let passed = async {
            match until {
                Some(at) => {
                    let left = at.duration_since(SystemTime::now()).unwrap_or_default();
                    tokio::time::sleep(left).await;
                }
                None => std::future::pending().await,
            }
        };
        let changed = async {
            match &watch {
                Some(w) => w.changed().await,
                None => std::future::pending().await,
            }
        };
        let why = tokio::select! {
            () = passed => return Stop::DeadlineExceeded,
            _ = usr2.recv() => "SIGUSR2",
            result = changed => match result {
                Ok(()) => "a change of the annotations file",
                Err(error) => {
                    tracing::warn!(%error, "Lost the watch on the pod annotations; re-read on SIGUSR2 only");
                    watch = None;
                    continue;
                }
            },
        };
        match read(&path) {
            Ok(execution) if execution != current => {
                tracing::info!(execution = %execution, after = why, "Execution control changed");
                current = execution;
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), after = why, "Cannot re-read the execution control")
            }
        }
    }
}
