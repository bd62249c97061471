//! `argoexec wait` (contract §5): wait for the main containers, then save the script result, the
//! logs, the output parameters and the output artifacts, report them, and kill the sidecars. Every
//! step runs even when an earlier one failed; the first error is the step's.
//!
//! This module is the sequence itself: waiting for the main containers (under the deadline and
//! the stop signal), calling the parts in order, reporting, killing the sidecars. The parts work
//! from one [`Step`](step::Step) and never call the sequence: [`result`] (the script result),
//! [`parameters`] (output parameters), [`artifacts`] (artifacts and logs, moved by [`upload`]).
//! Where an output is stored is resolved in [`crate::store`], which init shares.

mod artifacts;
mod error;
mod parameters;
mod result;
mod step;
#[cfg(test)]
mod testing;
mod upload;

use std::future::Future;
use std::path::Path;
use std::time::{Duration, SystemTime};

use argoexec_report::{Reporter, StepReport};
use argoexec_runtime::{ContainerRuntime, KillOutcome};
use argoexec_storage::{Secrets, chain};
use argoexec_template::Template;

pub use error::{SaveError, UploadError, WaitError};
pub use result::MAX_RESULT_BYTES;
pub use step::WaitOptions;

use step::Step;

/// What the wait sequence did: the report it delivered (or tried to), the status of the main
/// containers, and every error in order (the first is the step's).
#[derive(Debug, Default)]
pub struct WaitOutcome {
    /// The outputs as reported.
    pub report: StepReport,
    /// Every failure, in the order it happened.
    pub errors: Vec<WaitError>,
}

/// Why wait is asked to stop main before main exits by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM, or v2's execution control asking to stop now: "Step terminated".
    Terminated,
    /// A deadline learnt after start-up passed (v2: the execution annotation changed):
    /// "Step exceeded its deadline", as for the deadline in [`WaitOptions`].
    DeadlineExceeded,
}

/// Runs the wait sequence. `terminate` resolves when wait is asked to stop, and says why.
pub async fn run_wait<R, P, S>(
    template: &Template,
    options: &WaitOptions,
    runtime: &R,
    reporter: &P,
    secrets: &S,
    terminate: impl Future<Output = Stop> + Send,
) -> WaitOutcome
where
    R: ContainerRuntime,
    P: Reporter,
    S: Secrets,
{
    let step = Step::new(template, options, runtime, secrets);
    let mut errors = Vec::new();
    let mut outputs = template.outputs.clone().unwrap_or_default();

    if let Err(err) = wait_for_mains(&step, terminate).await {
        tracing::error!(error = %err, "Main did not complete");
        errors.push(err);
    }
    if options.include_script_output && result::has_output(template) {
        match result::capture_result(&step).await {
            Ok(result) => outputs.result = Some(result),
            Err(err) => errors.push(err),
        }
    }
    let log_artifacts = artifacts::save_logs(&step, &mut errors).await;
    parameters::save_parameters(&step, &mut outputs, &mut errors).await;
    artifacts::save_artifacts(&step, &mut outputs, &mut errors).await;
    if !log_artifacts.is_empty() {
        outputs
            .artifacts
            .get_or_insert_default()
            .extend(log_artifacts);
    }

    let report = StepReport {
        outputs,
        message: errors.first().map(|e| chain(e)),
        progress: read_progress(options.progress_file.as_deref()).await,
    };
    if let Err(err) = reporter.report(&report).await {
        tracing::error!(error = %chain(&err), "Failed to report outputs");
        errors.push(WaitError::Report(err));
    }
    kill_sidecars(&step).await;
    WaitOutcome { report, errors }
}

async fn wait_for_mains<R: ContainerRuntime, S>(
    step: &Step<'_, R, S>,
    terminate: impl Future<Output = Stop> + Send,
) -> Result<(), WaitError> {
    let (mains, runtime) = (&step.mains, step.runtime);
    tracing::info!(containers = %mains.join(", "), "Waiting for main containers to complete");
    let all_exited = futures::future::try_join_all(mains.iter().map(|name| async move {
        runtime.wait_started(name).await?;
        let status = runtime.wait_exited(name).await?;
        match status.code {
            Some(code) => {
                tracing::info!(container = %name, exit_code = code, "Main container completed")
            }
            None => {
                tracing::info!(container = %name, exit_code = "unknown", "Main container completed")
            }
        }
        Ok::<_, argoexec_runtime::Error>(())
    }));
    let deadline = async {
        match step.options.deadline {
            Some(at) => {
                let left = at.duration_since(SystemTime::now()).unwrap_or_default();
                tokio::time::sleep(left).await;
            }
            None => std::future::pending().await,
        }
    };
    let stop = tokio::select! {
        result = all_exited => return result.map(|_| ()).map_err(WaitError::WaitMain),
        () = deadline => WaitError::Deadline,
        stop = terminate => match stop {
            Stop::Terminated => WaitError::Terminated,
            Stop::DeadlineExceeded => WaitError::Deadline,
        },
    };
    tracing::warn!(reason = %stop, "Killing main containers");
    kill_all(runtime, mains, step.options.grace).await;
    Err(stop)
}

async fn kill_all<R: ContainerRuntime>(runtime: &R, names: &[String], grace: Duration) {
    futures::future::join_all(names.iter().map(|name| async move {
        match runtime.kill(name, grace).await {
            Ok(KillOutcome::Killed) => {
                tracing::warn!(container = %name, ?grace, "Container outlived its grace: killed");
            }
            Ok(KillOutcome::Terminated) => {
                tracing::info!(container = %name, "Container stopped within its grace");
            }
            Ok(KillOutcome::AlreadyExited) => {
                tracing::info!(container = %name, "Container had already exited");
            }
            Err(err) => {
                tracing::warn!(container = %name, error = %chain(&err), "Failed to kill container");
            }
        }
    }))
    .await;
}

async fn kill_sidecars<R: ContainerRuntime, S>(step: &Step<'_, R, S>) {
    let sidecars: Vec<String> = match step.runtime.containers().await {
        Ok(all) => all
            .into_iter()
            .filter(|c| *c != step.options.self_container && !step.mains.contains(c))
            .collect(),
        Err(err) => {
            tracing::warn!(error = %chain(&err), "Failed to list containers: no sidecar killed");
            return;
        }
    };
    if sidecars.is_empty() {
        return;
    }
    tracing::info!(containers = %sidecars.join(", "), "Killing sidecars");
    kill_all(step.runtime, &sidecars, step.options.grace).await;
}

/// The last non-empty line of the progress file, when it has the form `N/M`.
async fn read_progress(path: Option<&Path>) -> Option<String> {
    let text = tokio::fs::read_to_string(path?).await.ok()?;
    let line = text.lines().rev().find(|l| !l.trim().is_empty())?.trim();
    let (n, m) = line.split_once('/')?;
    (n.parse::<u64>().is_ok() && m.parse::<u64>().is_ok()).then(|| line.to_owned())
}

#[cfg(test)]
mod tests {
    use super::testing::{Pod, Recorder, script};
    use super::*;
    use argoexec_storage::MountedSecrets;

    #[tokio::test]
    async fn saves_result_parameters_and_artifacts_then_kills_sidecars() {
        let pod = Pod::new("hello\n");
        pod.file("/tmp/param.txt", "42\n\n");
        pod.file("/out/dir/a.txt", "a");
        pod.file("/out/dir/sub/b.txt", "b");
        pod.file("/out/single.txt", "single");
        pod.runtime.exit("main", 0);
        let outcome = pod
            .wait(
                script(serde_json::json!({
                    "parameters": [{"name": "p", "valueFrom": {"path": "/tmp/param.txt"}}],
                    "artifacts": [
                        {"name": "dir", "path": "/out/dir"},
                        {"name": "plain", "path": "/out/single.txt", "archive": {"none": {}}},
                        {"name": "zipped", "path": "/out/dir", "archive": {"zip": {}}},
                    ],
                })),
                &pod.options(),
            )
            .await;
        assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
        let out = serde_json::to_value(&outcome.report.outputs).unwrap();
        assert_eq!(out["result"], "hello");
        // Exactly one trailing newline is stripped.
        assert_eq!(out["parameters"][0]["value"], "42\n");
        let repo = pod.dir.path().join("repo");
        assert_eq!(out["artifacts"][0]["local"]["key"], "wf/pod/dir.tgz");
        assert_eq!(out["artifacts"][1]["local"]["key"], "wf/pod/single.txt");
        assert_eq!(out["artifacts"][2]["local"]["key"], "wf/pod/zipped.zip");
        assert_eq!(
            std::fs::read_to_string(repo.join("wf/pod/single.txt")).unwrap(),
            "single"
        );
        assert_eq!(out["artifacts"][1]["size"], 6);
        // The tgz holds `dir/...` and unpacks to the same tree.
        let back = tempfile::tempdir().unwrap();
        let file = std::fs::File::open(repo.join("wf/pod/dir.tgz")).unwrap();
        argoexec_archive::unpack_from(
            file,
            &back.path().join("dir"),
            argoexec_archive::UnpackFormat::Detect,
            &argoexec_archive::Limits::default(),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(back.path().join("dir/sub/b.txt")).unwrap(),
            "b"
        );
        let sha = out["artifacts"][0]["sha256"].as_str().unwrap();
        assert!(sha.starts_with("sha256:") && sha.len() == 71, "{sha}");
        // The sidecar ignored SIGTERM and was killed; wait itself and main were not signalled.
        let calls = pod.runtime.calls();
        assert!(calls.contains(&"kill sidecar".to_owned()), "{calls:?}");
        assert!(!calls.contains(&"kill wait".to_owned()), "{calls:?}");
        assert!(!calls.contains(&"kill main".to_owned()), "{calls:?}");
    }

    #[tokio::test]
    async fn a_deadline_kills_main_and_still_saves_outputs() {
        let pod = Pod::new("partial\n");
        pod.file("/tmp/param.txt", "early");
        let mut options = pod.options();
        options.deadline = Some(SystemTime::now() + Duration::from_millis(50));
        let outcome = pod
            .wait(
                script(serde_json::json!({
                    "parameters": [{"name": "p", "valueFrom": {"path": "/tmp/param.txt"}}],
                })),
                &options,
            )
            .await;
        assert!(matches!(outcome.errors.first(), Some(WaitError::Deadline)));
        assert_eq!(
            outcome.report.message.as_deref(),
            Some("Step exceeded its deadline")
        );
        assert_eq!(outcome.report.outputs.result.as_deref(), Some("partial"));
        let calls = pod.runtime.calls();
        assert!(calls.contains(&"kill main".to_owned()), "{calls:?}");
    }

    #[tokio::test]
    async fn terminate_stops_the_wait_with_argos_message() {
        let pod = Pod::new("");
        let template: Template = serde_json::from_value(script(serde_json::json!({}))).unwrap();
        let options = pod.options();
        let reporter = Recorder::default();
        let secrets = MountedSecrets::new(pod.dir.path());
        let outcome = run_wait(
            &template,
            &options,
            &pod.runtime,
            &reporter,
            &secrets,
            async {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Stop::Terminated
            },
        )
        .await;
        assert!(matches!(
            outcome.errors.first(),
            Some(WaitError::Terminated)
        ));
        assert_eq!(outcome.report.message.as_deref(), Some("Step terminated"));
    }

    #[tokio::test]
    async fn missing_outputs_use_defaults_skip_optionals_and_fail_the_rest() {
        let pod = Pod::new("");
        pod.runtime.exit("main", 0);
        let outcome = pod
            .wait(
                script(serde_json::json!({
                    "parameters": [
                        {"name": "d", "valueFrom": {"path": "/nope", "default": "fallback"}},
                        {"name": "missing", "valueFrom": {"path": "/nope"}},
                    ],
                    "artifacts": [
                        {"name": "opt", "path": "/nope", "optional": true},
                        {"name": "req", "path": "/nope"},
                    ],
                })),
                &pod.options(),
            )
            .await;
        let out = serde_json::to_value(&outcome.report.outputs).unwrap();
        assert_eq!(out["parameters"][0]["value"], "fallback");
        // Neither artifact is reported: one skipped, one failed (never pointing at nothing).
        assert_eq!(out["artifacts"], serde_json::json!([]));
        let messages: Vec<String> = outcome.errors.iter().map(|e| chain(e)).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages[0].contains("output parameter 'missing'"),
            "{messages:?}"
        );
        assert!(
            messages[1].contains("failed to save artifact 'req'"),
            "{messages:?}"
        );
    }
}
