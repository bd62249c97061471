//! What every part of the wait sequence works from: the options, and one [`Step`] holding the
//! template, the runtime, the secrets and the stores, built once by the sequence.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use argoexec_runtime::ContainerRuntime;
use argoexec_storage::{RetryPolicy, Secrets, StorageOptions};
use argoexec_template::{ArtifactLocation, Protocol, Template, overlapping_mount};

use crate::paths::PodPaths;
use crate::store::{self, Defaults, Opened, StoreError};

/// What wait needs besides the template, the runtime and the reporter.
#[derive(Debug, Clone)]
pub struct WaitOptions {
    /// The protocol generation of the pod.
    pub protocol: Protocol,
    /// The pod layout (`/mainctrfs`).
    pub paths: PodPaths,
    /// When the step must be over (`ARGO_DEADLINE`).
    pub deadline: Option<SystemTime>,
    /// Between SIGTERM and SIGKILL.
    pub grace: Duration,
    /// `ARGO_INCLUDE_SCRIPT_OUTPUT`.
    pub include_script_output: bool,
    /// The storage retry policy.
    pub retry: RetryPolicy,
    /// Driver settings.
    pub storage: StorageOptions,
    /// The name of the container wait runs in (never killed as a sidecar).
    pub self_container: String,
    /// A directory used as the artifact repository when the template has none
    /// (`ARGOEXEC_LOCAL_REPOSITORY`, set by `argoexec run`).
    pub local_repository: Option<PathBuf>,
    /// The key prefix in the local repository (`<workflow>/<pod>`, as Argo's default key format).
    pub local_key_prefix: String,
    /// The progress file (`ARGO_PROGRESS_FILE`), read once for the report.
    pub progress_file: Option<PathBuf>,
}

/// One step being waited for: what the parts of the sequence share.
pub(super) struct Step<'a, R, S> {
    /// The step's template.
    pub(super) template: &'a Template,
    /// The options of this wait.
    pub(super) options: &'a WaitOptions,
    /// How the pod's containers are seen.
    pub(super) runtime: &'a R,
    /// Where credentials come from.
    pub(super) secrets: &'a S,
    /// The main containers, in the template's order.
    pub(super) mains: Vec<String>,
    /// The repositories outputs without a location of their own go to.
    defaults: Defaults<'a>,
}

impl<'a, R: ContainerRuntime, S: Secrets> Step<'a, R, S> {
    /// The step of `template`, waited for with `options` through `runtime`.
    pub(super) fn new(
        template: &'a Template,
        options: &'a WaitOptions,
        runtime: &'a R,
        secrets: &'a S,
    ) -> Self {
        let local = options
            .local_repository
            .as_deref()
            .map(|dir| (dir, options.local_key_prefix.as_str()));
        Self {
            template,
            options,
            runtime,
            secrets,
            mains: template
                .main_container_names()
                .into_iter()
                .map(str::to_owned)
                .collect(),
            defaults: Defaults::new(template, local),
        }
    }

    /// The container whose result, parameters and artifacts are saved.
    pub(super) fn main(&self) -> &str {
        self.mains.first().map_or("main", String::as_str)
    }

    /// Opens the store of an output whose location is `own`, named `file_name` in a default
    /// store when it has no key of its own.
    pub(super) async fn open_store(
        &self,
        own: &ArtifactLocation,
        file_name: &str,
    ) -> Result<Opened, StoreError> {
        store::open(
            own,
            Some(file_name),
            self.defaults,
            self.secrets,
            &self.options.storage,
        )
        .await
    }

    /// Whether a path is in main's image rather than on a volume wait can read (Argo's
    /// `isBaseImagePath`): not under a volume mount, not under an input artifact.
    pub(super) fn is_base_image_path(&self, path: &str) -> bool {
        if overlapping_mount(self.template, path).is_some() {
            return false;
        }
        !self.template.input_artifacts().iter().any(|a| {
            a.path.as_deref().is_some_and(|p| {
                let p = p.trim_end_matches('/');
                path == p || path.starts_with(&format!("{p}/"))
            })
        })
    }
}
