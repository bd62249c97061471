//! The executor's configuration: every environment variable of Argo's executor contract and every
//! global flag, parsed into types and validated before any work starts.
//!
//! [`env`] names each variable once. [`Config::from_lookup`] reads them through a lookup function, so
//! tests pass a map instead of touching the process environment; a bad value is an error that names
//! the variable, the value and what was expected. Defaults are Argo's.
//!
//! Modules: `flags` (the global flags: log level and format, the client's overrides), `kube` (the
//! Kubernetes client's overrides [`KubeOverrides`], the kubelet's settings, where kubelet mounts
//! the service account: [`SERVICE_ACCOUNT_DIR`]), `pods` (the artifact GC and agent pods'
//! settings), `settings` (the runtime, retries, progress,
//! identity, unpacking caps), `parse` (reading variables and parsing Go's forms), `error`.

pub mod env;
mod error;
mod flags;
mod kube;
mod parse;
mod pods;
mod settings;

use std::path::PathBuf;
use std::time::Duration;

use argoexec_template::{LoadError, Protocol, SourcePaths, TemplateSource};

pub use error::ConfigError;
pub use flags::{Flags, LogFormat, LogLevel};
pub use kube::{KubeOverrides, KubeletSettings, SERVICE_ACCOUNT_DIR};
pub use parse::parse_go_duration;
pub use pods::{AgentSettings, ArtifactGcSettings};
pub use settings::{Identity, ProgressSettings, RetrySettings, RuntimeKind, UnpackSettings};

use parse::{Reader, parse_deadline, positive};

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The global flags.
    pub flags: Flags,
    /// Who this pod is.
    pub identity: Identity,
    /// `ARGO_TEMPLATE` as set (the template is read later, by the subcommand that needs it).
    pub argo_template: Option<String>,
    /// `ARGO_CONTAINER_RUNTIME_EXECUTOR` as set.
    pub runtime: Option<RuntimeKind>,
    /// `ARGO_INCLUDE_SCRIPT_OUTPUT`.
    pub include_script_output: bool,
    /// `ARGO_DEADLINE`; `None` when unset or Go's zero time.
    pub deadline: Option<jiff::Timestamp>,
    /// `ARGO_TERMINATION_GRACE_PERIOD_SECONDS` as set; see [`Config::termination_grace`].
    pub termination_grace: Option<Duration>,
    /// Progress reporting.
    pub progress: ProgressSettings,
    /// The kubelet runtime.
    pub kubelet: KubeletSettings,
    /// `ARGO_DEBUG_PAUSE_BEFORE` is set.
    pub debug_pause_before: bool,
    /// `ARGO_DEBUG_PAUSE_AFTER` is set.
    pub debug_pause_after: bool,
    /// `ARGO_CONTAINER_ARGS_FILE`.
    pub container_args_file: Option<PathBuf>,
    /// The storage retry policy.
    pub retry: RetrySettings,
    /// `ARTIFACT_S3_UPLOAD_THREADS`.
    pub s3_upload_threads: usize,
    /// `ARTIFACT_S3_UPLOAD_PART_SIZE_MIB`.
    pub s3_part_size_mib: Option<u64>,
    /// Caps on unpacking input archives (`ARGOEXEC_UNPACK_*`); `None` keeps the default.
    pub unpack: UnpackSettings,
    /// `ARGOEXEC_LOCAL_REPOSITORY`.
    pub local_repository: Option<PathBuf>,
    /// `ARGOEXEC_REPORT_FILE`.
    pub report_file: Option<PathBuf>,
    /// `ARGOEXEC_POD_STATE_DIR`.
    pub pod_state_dir: Option<PathBuf>,
    /// `STORAGE_EMULATOR_HOST`: the GCS endpoint to use instead of Google's.
    pub gcs_emulator_host: Option<String>,
    /// `TRACEPARENT`.
    pub traceparent: Option<String>,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`.
    pub otlp_endpoint: Option<String>,
    /// `RESOURCE_STATE_CHECK_INTERVAL`: resource templates poll at this interval when they may
    /// not watch the object.
    pub resource_state_check_interval: Duration,
}

impl Config {
    /// Builds the configuration from the process environment.
    pub fn from_process_env(flags: Flags) -> Result<Self, ConfigError> {
        Self::from_lookup(flags, |var| std::env::var_os(var))
    }

    /// Builds the configuration from `lookup`, which answers an environment variable's value.
    pub fn from_lookup(
        flags: Flags,
        lookup: impl Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<Self, ConfigError> {
        let r = Reader::new(lookup);
        let id = |var| r.string(var).map(|v| v.filter(|s| !s.is_empty()));
        let path = |var| id(var).map(|v| v.map(PathBuf::from));
        let identity = Identity {
            pod_name: id(env::ARGO_POD_NAME)?,
            pod_uid: id(env::ARGO_POD_UID)?,
            node_id: id(env::ARGO_NODE_ID)?,
            workflow_name: id(env::ARGO_WORKFLOW_NAME)?,
            workflow_uid: id(env::ARGO_WORKFLOW_UID)?,
            instance_id: id(env::ARGO_INSTANCE_ID)?,
            container_name: id(env::ARGO_CONTAINER_NAME)?,
        };
        let runtime = r.parsed(
            env::ARGO_CONTAINER_RUNTIME_EXECUTOR,
            "one of docker, k8sapi, kubelet, pns, emissary",
            |s| s.parse().ok(),
        )?;
        let deadline = r
            .parsed(
                env::ARGO_DEADLINE,
                "an RFC 3339 time such as 2026-01-02T15:04:05Z",
                parse_deadline,
            )?
            .flatten();
        let termination_grace = r
            .parsed(
                env::ARGO_TERMINATION_GRACE_PERIOD_SECONDS,
                "a whole number of seconds, 0 or more",
                |s| s.parse::<u64>().ok(),
            )?
            .map(Duration::from_secs);
        let progress = ProgressSettings {
            file: r
                .string(env::ARGO_PROGRESS_FILE)?
                .filter(|s| !s.is_empty())
                .map_or_else(|| PathBuf::from("/var/run/argo/progress"), PathBuf::from),
            patch_tick: r
                .duration(env::ARGO_PROGRESS_PATCH_TICK_DURATION)?
                .unwrap_or(Duration::from_secs(60)),
            file_tick: r
                .duration(env::ARGO_PROGRESS_FILE_TICK_DURATION)?
                .unwrap_or(Duration::from_secs(3)),
        };
        let kubelet = KubeletSettings {
            host: id(env::ARGO_KUBELET_HOST)?,
            port: r
                .parsed(env::ARGO_KUBELET_PORT, "a TCP port number", |s| {
                    s.parse::<u16>().ok().filter(|p| *p != 0)
                })?
                .unwrap_or(10250),
            insecure: r.boolean(env::ARGO_KUBELET_INSECURE)?.unwrap_or(false),
        };
        let retry = RetrySettings {
            steps: r
                .parsed(
                    env::EXECUTOR_RETRY_BACKOFF_STEPS,
                    "a whole number of attempts, 1 or more",
                    |s| s.parse::<u32>().ok().filter(|n| *n >= 1),
                )?
                .unwrap_or(5),
            duration: r
                .duration(env::EXECUTOR_RETRY_BACKOFF_DURATION)?
                .unwrap_or(Duration::from_secs(1)),
            factor: r
                .parsed(
                    env::EXECUTOR_RETRY_BACKOFF_FACTOR,
                    "a number, 1.0 or more",
                    |s| s.parse::<f64>().ok().filter(|f| f.is_finite() && *f >= 1.0),
                )?
                .unwrap_or(1.6),
            jitter: r
                .parsed(
                    env::EXECUTOR_RETRY_BACKOFF_JITTER,
                    "a number from 0 to 1",
                    |s| s.parse::<f64>().ok().filter(|j| (0.0..=1.0).contains(j)),
                )?
                .unwrap_or(0.5),
            transient_pattern: r
                .parsed(
                    env::TRANSIENT_ERROR_PATTERN,
                    "a valid regular expression",
                    |s| regex::Regex::new(s).ok(),
                )?
                .filter(|re| !re.as_str().is_empty()),
        };
        Ok(Self {
            flags,
            identity,
            argo_template: r.string(env::ARGO_TEMPLATE)?,
            resource_state_check_interval: r
                .duration(env::RESOURCE_STATE_CHECK_INTERVAL)?
                .filter(|d| !d.is_zero())
                .unwrap_or(Duration::from_secs(5)),
            runtime,
            include_script_output: r.boolean(env::ARGO_INCLUDE_SCRIPT_OUTPUT)?.unwrap_or(false),
            deadline,
            termination_grace,
            progress,
            kubelet,
            debug_pause_before: r.set(env::ARGO_DEBUG_PAUSE_BEFORE),
            debug_pause_after: r.set(env::ARGO_DEBUG_PAUSE_AFTER),
            container_args_file: r
                .string(env::ARGO_CONTAINER_ARGS_FILE)?
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
            retry,
            s3_upload_threads: r
                .parsed(
                    env::ARTIFACT_S3_UPLOAD_THREADS,
                    "a whole number, 1 or more",
                    |s| s.parse::<usize>().ok().filter(|n| *n >= 1),
                )?
                .unwrap_or(4),
            s3_part_size_mib: r.parsed(
                env::ARTIFACT_S3_UPLOAD_PART_SIZE_MIB,
                "a whole number of MiB from 5 to 5120",
                |s| s.parse::<u64>().ok().filter(|n| (5..=5120).contains(n)),
            )?,
            local_repository: path(env::ARGOEXEC_LOCAL_REPOSITORY)?,
            report_file: path(env::ARGOEXEC_REPORT_FILE)?,
            pod_state_dir: path(env::ARGOEXEC_POD_STATE_DIR)?,
            unpack: UnpackSettings {
                max_entries: r.parsed(
                    env::ARGOEXEC_UNPACK_MAX_ENTRIES,
                    "a whole number, 1 or more",
                    positive,
                )?,
                max_bytes: r
                    .parsed(
                        env::ARGOEXEC_UNPACK_MAX_MIB,
                        "a whole number of MiB, 1 or more",
                        positive,
                    )?
                    .map(|mib| mib.saturating_mul(1 << 20)),
                max_ratio: r.parsed(
                    env::ARGOEXEC_UNPACK_MAX_RATIO,
                    "a whole number, 1 or more",
                    positive,
                )?,
            },
            gcs_emulator_host: r
                .string(env::STORAGE_EMULATOR_HOST)?
                .filter(|s| !s.is_empty()),
            traceparent: id(env::TRACEPARENT)?,
            otlp_endpoint: id(env::OTEL_EXPORTER_OTLP_ENDPOINT)?,
        })
    }

    /// The pod name, which init, wait, resource and data cannot work without.
    pub fn pod_name(&self) -> Result<&str, ConfigError> {
        self.identity
            .pod_name
            .as_deref()
            .ok_or(ConfigError::Missing {
                var: env::ARGO_POD_NAME,
                what: "pod name",
            })
    }

    /// Chooses the template source (contract §1), with `paths` for the file-backed sources.
    /// `--pod-annotations` forces the v2 annotations file.
    pub fn template_source(&self, paths: &SourcePaths) -> Result<TemplateSource, LoadError> {
        if let Some(path) = &self.flags.pod_annotations
            && self.argo_template.is_none()
        {
            return Ok(TemplateSource::annotations(path.clone()));
        }
        TemplateSource::detect(
            self.argo_template.clone(),
            self.identity.workflow_uid.is_some(),
            paths,
        )
    }

    /// The runtime: as set, else Argo's default for the protocol (docker for v2, emissary after).
    pub fn runtime_for(&self, protocol: Protocol) -> RuntimeKind {
        match (self.runtime, protocol) {
            (_, Protocol::V4) => RuntimeKind::Emissary,
            (Some(kind), _) => kind,
            (None, Protocol::V2) => RuntimeKind::Docker,
            (None, Protocol::V3) => RuntimeKind::Emissary,
        }
    }

    /// The grace between SIGTERM and SIGKILL: as set, else 10 s for v2 and 30 s after.
    pub fn termination_grace(&self, protocol: Protocol) -> Duration {
        self.termination_grace.unwrap_or_else(|| match protocol {
            Protocol::V2 => Duration::from_secs(10),
            Protocol::V3 | Protocol::V4 => Duration::from_secs(30),
        })
    }

    /// The annotations file the v2 protocol reads, as `--pod-annotations` or the default.
    pub fn annotations_path(&self, paths: &SourcePaths) -> PathBuf {
        self.flags
            .pod_annotations
            .clone()
            .unwrap_or_else(|| paths.annotations.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::ffi::OsString;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(*v)))
            .collect();
        Config::from_lookup(Flags::default(), move |k| map.get(k).cloned())
    }

    #[test]
    fn defaults_are_argos() {
        let c = config(&[]).unwrap();
        assert_eq!(c.retry.steps, 5);
        assert_eq!(c.retry.duration, Duration::from_secs(1));
        assert!((c.retry.factor - 1.6).abs() < f64::EPSILON);
        assert!((c.retry.jitter - 0.5).abs() < f64::EPSILON);
        assert_eq!(c.progress.file, PathBuf::from("/var/run/argo/progress"));
        assert_eq!(c.progress.patch_tick, Duration::from_secs(60));
        assert_eq!(c.progress.file_tick, Duration::from_secs(3));
        assert!(c.progress.enabled());
        assert_eq!(c.kubelet.port, 10250);
        assert_eq!(c.deadline, None);
        assert!(!c.include_script_output);
        assert_eq!(c.termination_grace(Protocol::V2), Duration::from_secs(10));
        assert_eq!(c.termination_grace(Protocol::V3), Duration::from_secs(30));
        assert_eq!(c.runtime_for(Protocol::V2), RuntimeKind::Docker);
        assert_eq!(c.runtime_for(Protocol::V3), RuntimeKind::Emissary);
        assert_eq!(c.s3_upload_threads, 4);
        assert_eq!(c.unpack, UnpackSettings::default());
    }

    #[test]
    fn unpack_caps_are_read_and_checked() {
        let c = config(&[
            ("ARGOEXEC_UNPACK_MAX_MIB", "2"),
            ("ARGOEXEC_UNPACK_MAX_RATIO", "50"),
        ])
        .unwrap();
        assert_eq!(c.unpack.max_bytes, Some(2 << 20));
        assert_eq!(c.unpack.max_ratio, Some(50));
        assert_eq!(c.unpack.max_entries, None);
        let err = config(&[("ARGOEXEC_UNPACK_MAX_ENTRIES", "0")]).unwrap_err();
        assert!(
            err.to_string().contains("ARGOEXEC_UNPACK_MAX_ENTRIES"),
            "{err}"
        );
    }

    #[test]
    fn parses_every_kind_of_value() {
        let c = config(&[
            ("ARGO_POD_NAME", "wf-123"),
            ("ARGO_DEADLINE", "2026-01-02T15:04:05Z"),
            ("ARGO_TERMINATION_GRACE_PERIOD_SECONDS", "5"),
            ("ARGO_INCLUDE_SCRIPT_OUTPUT", "true"),
            ("ARGO_CONTAINER_RUNTIME_EXECUTOR", "pns"),
            ("ARGO_PROGRESS_PATCH_TICK_DURATION", "0"),
            ("EXECUTOR_RETRY_BACKOFF_DURATION", "1m30s"),
            ("TRANSIENT_ERROR_PATTERN", "Rate exceeded"),
            ("ARGO_DEBUG_PAUSE_BEFORE", ""),
        ])
        .unwrap();
        assert_eq!(c.pod_name().unwrap(), "wf-123");
        assert_eq!(c.deadline.unwrap().to_string(), "2026-01-02T15:04:05Z");
        assert_eq!(c.termination_grace(Protocol::V2), Duration::from_secs(5));
        assert!(c.include_script_output);
        assert_eq!(c.runtime_for(Protocol::V3), RuntimeKind::Pns);
        assert_eq!(c.runtime_for(Protocol::V4), RuntimeKind::Emissary);
        assert!(!c.progress.enabled());
        assert_eq!(c.retry.duration, Duration::from_secs(90));
        assert!(
            c.retry
                .transient_pattern
                .unwrap()
                .is_match("x: Rate exceeded")
        );
        assert!(c.debug_pause_before);
        assert!(!c.debug_pause_after);
    }

    #[test]
    fn go_zero_time_means_no_deadline() {
        let c = config(&[("ARGO_DEADLINE", "0001-01-01T00:00:00Z")]).unwrap();
        assert_eq!(c.deadline, None);
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value, expected) in [
            ("ARGO_DEADLINE", "tomorrow", "an RFC 3339 time"),
            (
                "ARGO_TERMINATION_GRACE_PERIOD_SECONDS",
                "-1",
                "whole number",
            ),
            ("ARGO_INCLUDE_SCRIPT_OUTPUT", "yes", "true or false"),
            (
                "ARGO_CONTAINER_RUNTIME_EXECUTOR",
                "containerd",
                "one of docker",
            ),
            (
                "ARGO_PROGRESS_FILE_TICK_DURATION",
                "3 seconds",
                "Go duration",
            ),
            ("EXECUTOR_RETRY_BACKOFF_DURATION", "-1s", "not negative"),
            ("EXECUTOR_RETRY_BACKOFF_STEPS", "0", "1 or more"),
            ("EXECUTOR_RETRY_BACKOFF_FACTOR", "abc", "a number"),
            ("EXECUTOR_RETRY_BACKOFF_JITTER", "2", "from 0 to 1"),
            ("TRANSIENT_ERROR_PATTERN", "(unclosed", "regular expression"),
            ("ARGO_KUBELET_PORT", "70000", "TCP port"),
        ] {
            let err = config(&[(var, value)]).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!("invalid {var}={value:?}: expected")),
                "{err}"
            );
            assert!(err.contains(expected), "{err}");
        }
    }

    #[test]
    fn missing_pod_name_is_reported() {
        let err = config(&[]).unwrap().pod_name().unwrap_err().to_string();
        assert_eq!(
            err,
            "unable to determine pod name from environment variable ARGO_POD_NAME"
        );
    }

    #[test]
    fn env_table_names_every_constant_once() {
        let mut names: Vec<_> = env::TABLE.iter().map(|(n, _, _)| *n).collect();
        let len = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), len);
        assert!(names.contains(&env::ARGO_DEADLINE));
        assert!(env::TABLE.iter().all(|(_, doc, _)| !doc.is_empty()));
    }
}
