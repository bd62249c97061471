//! `argoexec`: the binary. Flags, logging, wiring and exit codes; the work lives in the crates.
//!
//! Exit codes follow Argo's executor (contract §8): 0 on success; on an executor error 1 for a v2
//! pod (template from the downward-API annotations) and 64 otherwise, which Argo's controller reads
//! as an executor failure; clap's usage errors exit 2. The first error is also written to
//! `/dev/termination-log` when that file exists, as kubelet provides it in every container.

mod agent_cmd;
mod artifact_cmd;
mod cli;
mod data_cmd;
mod duration_arg;
mod emissary_cmd;
mod execution;
mod kill_cmd;
mod logging;
mod resource_cmd;
#[cfg(feature = "local-runner")]
mod run_cmd;
mod wait_cmd;

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use argoexec_config::{Config, LogFormat};
use argoexec_executor::{InitOptions, PodPaths, run_init};
use argoexec_storage::{RetryPolicy, S3Tuning, StorageOptions};
use argoexec_template::{Protocol, SourcePaths, Template};
use clap::Parser as _;

use crate::cli::{ArtifactCommand, Cli, Command};

/// Argo's exit code for an executor error in v3 and v4 pods.
const EXIT_EXECUTOR_ERROR: u8 = 64;
/// Argo's exit code for an executor error in v2 pods.
const EXIT_EXECUTOR_ERROR_V2: u8 = 1;
/// Kubelet's default termination message path.
const TERMINATION_LOG: &str = "/dev/termination-log";

/// A subcommand whose implementation has not landed yet.
#[derive(Debug, thiserror::Error)]
#[error("argoexec {command} is not implemented yet ({what})")]
pub(crate) struct NotImplemented {
    pub(crate) command: &'static str,
    pub(crate) what: &'static str,
}

/// An error on its way out, with what is known of the pod's protocol for the exit code.
pub(crate) struct Failure {
    error: anyhow::Error,
    protocol: Option<Protocol>,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(error: E) -> Self {
        Self {
            error: error.into(),
            protocol: None,
        }
    }
}

impl Failure {
    fn exit_code(&self) -> u8 {
        if self.error.downcast_ref::<NotImplemented>().is_some() {
            return EXIT_EXECUTOR_ERROR;
        }
        // Argo 3's and 4's wait exits 0 when the step's deadline passed and nothing else failed:
        // its deadline monitor writes the message to the termination log and kills main, and the
        // step fails through main's exit code (seen against Argo v3.3.8 and v4.0.5 by
        // tests/differential.rs).
        if matches!(self.protocol, Some(Protocol::V3 | Protocol::V4))
            && matches!(
                self.error.downcast_ref::<argoexec_executor::WaitError>(),
                Some(argoexec_executor::WaitError::Deadline)
            )
        {
            return 0;
        }
        match self.protocol {
            Some(Protocol::V2) => EXIT_EXECUTOR_ERROR_V2,
            _ => EXIT_EXECUTOR_ERROR,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.global.loglevel, cli.global.log_format);
    let log_format = cli.global.log_format;
    let termination_log = cli.global.termination_log.clone();
    match run(cli) {
        Ok(code) => code,
        Err(failure) => {
            let message = format!("{:#}", failure.error);
            report_error(&message, log_format);
            write_termination_log(termination_log, &message);
            ExitCode::from(failure.exit_code())
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Version { short } => {
            print!("{}", version_text(short));
            Ok(ExitCode::SUCCESS)
        }
        Command::Init => {
            let config = Config::from_process_env(cli.global.flags())?;
            let root = cli.global.pod_root.clone();
            let (template, template_json, protocol) = load_template(&config, &root, "init")?;
            let options = InitOptions {
                protocol,
                runtime: config.runtime_for(protocol),
                template_json,
                self_exe: std::env::current_exe().context("locate this binary")?,
                paths: PodPaths::under(&root),
                retry: RetryPolicy::from_settings(&config.retry),
                storage: storage_options(&config),
                unpack_limits: argoexec_executor::unpack_limits(&config.unpack),
            };
            let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
            let secrets = runtime.block_on(wait_cmd::init_secrets(&config, &root, protocol));
            runtime
                .block_on(run_init(&template, &options, &secrets))
                .map_err(|e| Failure {
                    error: e.into(),
                    protocol: Some(protocol),
                })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Wait => {
            let config = Config::from_process_env(cli.global.flags())?;
            let root = cli.global.pod_root.clone();
            let (template, _, protocol) = load_template(&config, &root, "wait")?;
            wait_cmd::wait(&config, &root, &template, protocol)
        }
        Command::Emissary { args } => {
            let config = Config::from_process_env(cli.global.flags())?;
            emissary_cmd::emissary(&config, &cli.global.pod_root, args)
        }
        Command::Resource {
            action,
            manifest_path,
        } => resource_cmd::resource(&cli.global, &action, manifest_path),
        Command::Data { .. } => data_cmd::data(&cli.global),
        Command::Kill { signal, pid } => kill_cmd::kill(&signal, &pid),
        Command::Agent { command } => agent_cmd::agent(&cli.global, command),
        Command::Artifact {
            command: ArtifactCommand::Delete,
        } => artifact_cmd::delete(&cli.global),
        Command::ArtifactPluginInit { .. } => Err(NotImplemented {
            command: "artifact-plugin-init",
            what: "artifact plugins",
        }
        .into()),
        Command::ArtifactPluginSidecar { .. } => Err(NotImplemented {
            command: "artifact-plugin-sidecar",
            what: "artifact plugins",
        }
        .into()),
        #[cfg(feature = "local-runner")]
        Command::Local(command) => run_cmd::run(command),
    }
}

/// Driver settings from the configuration.
fn storage_options(config: &Config) -> StorageOptions {
    StorageOptions {
        s3: S3Tuning {
            part_size: config
                .s3_part_size_mib
                .map_or(S3Tuning::default().part_size, |mib| {
                    usize::try_from(mib << 20).unwrap_or(usize::MAX)
                }),
            concurrency: config.s3_upload_threads,
        },
        gcs_endpoint: config.gcs_emulator_host.clone(),
    }
}

/// Validates the pod name and loads the template from the source the contract's order picks.
fn load_template(
    config: &Config,
    root: &Path,
    role: &str,
) -> Result<(Template, String, Protocol), Failure> {
    let pod_name = config.pod_name()?;
    let source = config.template_source(&SourcePaths::under(root))?;
    let protocol = source.protocol();
    let with_protocol = |error: anyhow::Error| Failure {
        error,
        protocol: Some(protocol),
    };
    let (template, json) = source.load().map_err(|e| with_protocol(e.into()))?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        pod = pod_name,
        template = template.name.as_deref().unwrap_or(""),
        source = %source.kind(),
        protocol = %protocol,
        runtime = %config.runtime_for(protocol),
        "Starting Workflow Executor ({role})"
    );
    Ok((template, json, protocol))
}

/// One line on stderr: plain for people, or a JSON log record when logs are JSON.
fn report_error(message: &str, format: LogFormat) {
    let line = match format {
        LogFormat::Text => format!("Error: {message}"),
        LogFormat::Json => serde_json::json!({
            "time": format!("{:.3}", jiff::Timestamp::now()),
            "level": "fatal",
            "msg": message,
        })
        .to_string(),
    };
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Writes the first error where kubelet reads it. Only when the file exists (kubelet mounts it in
/// every container) or its path was given: never creates `/dev/termination-log` on a workstation.
fn write_termination_log(explicit: Option<PathBuf>, message: &str) {
    let (path, must) = match explicit {
        Some(path) => (path, true),
        None => (PathBuf::from(TERMINATION_LOG), false),
    };
    if !must && !path.exists() {
        return;
    }
    // An earlier error of this container already wrote its message: that one stays.
    if std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() > 0) {
        return;
    }
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(message.as_bytes()))
        .with_context(|| format!("unable to write termination log {}", path.display()));
    if let Err(err) = result {
        let _ = writeln!(std::io::stderr(), "{err:#}");
    }
}

/// `argoexec version`, in the layout of Argo's.
fn version_text(short: bool) -> String {
    let version = concat!("v", env!("CARGO_PKG_VERSION"));
    if short {
        return format!("argoexec: {version}\n");
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!(
        "argoexec: {version}\n  BuildDate: {}\n  GitCommit: {}\n  RustVersion: {}\n  Platform: {}/{arch}\n  Target: {}\n",
        env!("ARGOEXEC_BUILD_DATE"),
        env!("ARGOEXEC_GIT_COMMIT"),
        env!("ARGOEXEC_RUSTC_VERSION"),
        std::env::consts::OS,
        env!("ARGOEXEC_TARGET"),
    )
}
