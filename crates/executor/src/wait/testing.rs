//! A pod for the wait sequence's tests: a fake runtime with `main`, `wait` and a `sidecar`, a
//! local repository, and a reporter that records.

use std::sync::Mutex;
use std::time::Duration;

use argoexec_report::{ReportError, Reporter, StepReport};
use argoexec_runtime::{FakeContainer, FakeRuntime};
use argoexec_storage::{MountedSecrets, RetryPolicy, StorageOptions};
use argoexec_template::{Protocol, Template};

use super::{WaitOptions, WaitOutcome, run_wait};
use crate::paths::PodPaths;

#[derive(Default)]
pub(super) struct Recorder(pub(super) Mutex<Vec<StepReport>>);

impl Reporter for Recorder {
    async fn report(&self, report: &StepReport) -> Result<(), ReportError> {
        self.0.lock().unwrap().push(report.clone());
        Ok(())
    }
}

pub(super) struct Pod {
    pub(super) dir: tempfile::TempDir,
    pub(super) runtime: FakeRuntime,
}

impl Pod {
    /// A pod with `main` (files under `<dir>/main`), a `wait` and a `sidecar`.
    pub(super) fn new(stdout: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let runtime = FakeRuntime::new();
        runtime.add(
            "main",
            FakeContainer {
                root: dir.path().join("main"),
                stdout: stdout.as_bytes().to_vec(),
                combined: format!("{stdout}and stderr\n").into_bytes(),
                ..Default::default()
            },
        );
        runtime.add("wait", FakeContainer::default());
        runtime.add(
            "sidecar",
            FakeContainer {
                ignores_term: true,
                ..Default::default()
            },
        );
        Self { dir, runtime }
    }

    pub(super) fn file(&self, path: &str, text: &str) {
        let path = self
            .dir
            .path()
            .join("main")
            .join(path.trim_start_matches('/'));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    pub(super) fn options(&self) -> WaitOptions {
        WaitOptions {
            protocol: Protocol::V3,
            paths: PodPaths::under(self.dir.path().join("wait-root")),
            deadline: None,
            grace: Duration::from_millis(20),
            include_script_output: true,
            retry: RetryPolicy::none(),
            storage: StorageOptions::default(),
            self_container: "wait".into(),
            local_repository: Some(self.dir.path().join("repo")),
            local_key_prefix: "wf/pod".into(),
            progress_file: None,
        }
    }

    pub(super) async fn wait(
        &self,
        template: serde_json::Value,
        options: &WaitOptions,
    ) -> WaitOutcome {
        let template: Template = serde_json::from_value(template).unwrap();
        let reporter = Recorder::default();
        let secrets = MountedSecrets::new(self.dir.path().join("secrets"));
        let outcome = run_wait(
            &template,
            options,
            &self.runtime,
            &reporter,
            &secrets,
            std::future::pending(),
        )
        .await;
        let reports = reporter.0.into_inner().unwrap();
        assert_eq!(reports.len(), 1, "reported exactly once");
        assert_eq!(reports[0], outcome.report);
        outcome
    }
}

pub(super) fn script(outputs: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "name": "step",
        "script": {"image": "alpine", "source": "echo hi"},
        "outputs": outputs,
    })
}
