//! `argoexec run` and the hidden helpers its pods re-execute this binary as (`__pause`, `__shim`,
//! `__exec`, `__nsexec`): the local pod runner of `crates/localpod`. Built only with the
//! `local-runner` feature (on by default): the executor image leaves it out, because Argo copies
//! that binary into every user container and the runner brings the fake API server of
//! `crates/testkube` (axum, rcgen, websockets) with it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};

use crate::Failure;
use crate::duration_arg::parse_request_timeout;

/// The local runner's subcommands, flattened into the binary's.
#[derive(Debug, Subcommand)]
pub(crate) enum LocalCommand {
    /// Run one step locally from a pod manifest, with no cluster: init, main, sidecars and wait
    #[command(long_about = RUN_ABOUT)]
    Run(Box<RunArgs>),
    /// The local pod's PID 1 (internal)
    #[command(name = "__pause", hide = true)]
    Pause,
    /// The shim of one container of a local pod (internal)
    #[command(name = "__shim", hide = true)]
    Shim {
        /// The container's spec, written by the runner
        spec: PathBuf,
    },
    /// A local container's first process: mounts /proc, then execs the command (internal)
    #[command(name = "__exec", hide = true)]
    Exec {
        /// Start the command only once this file exists (wait holds the container)
        #[arg(long, value_name = "FILE")]
        await_seen: Option<PathBuf>,
        /// The command and its arguments
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// Runs a command inside a running local container: enters its namespaces (internal; the
    /// local pod's `pods/exec` under `run --api`)
    #[command(name = "__nsexec", hide = true)]
    NsExec {
        /// The host PID of the container's first process
        #[arg(long)]
        pid: u32,
        /// The working directory inside the container
        #[arg(long)]
        cwd: Option<String>,
        /// The command and its arguments
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
}

/// The long help of `argoexec run`.
const RUN_ABOUT: &str = "\
Run one step locally from a pod manifest, with no cluster, as kubelet would run the pod Argo's \
controller generated: init containers in order, then every container together, in a pod made of \
Linux namespaces (a shared PID namespace, a mount namespace per container with the pod's volumes \
at their mount paths). Needs root.

Images are NOT pulled: main and sidecars run on this machine's own filesystem, with their command, \
args, env and workingDir from the manifest; a container whose command is Argo's executor \
(`argoexec ...`) runs this binary. Volumes: emptyDir and downwardAPI are made in the work \
directory, secret and configMap come from --secrets and --configmaps, hostPath is used as given.

Prints each container's exit code, the step's phase and its outputs (as the wait container \
reported them); exits 0 when the step succeeded, 1 when it did not.

With --backend docker the pod runs as real containers of the local Docker Engine (DOCKER_HOST or /var/run/docker.sock): a sandbox container owning the pod's namespaces, every container joined to it, with kubelet's labels, so a wait container using the docker runtime finds them. Images are not pulled either: each must exist in the engine, or be renamed to a local one with --image-map (e.g. `--image-map alpine:3.16=local/busybox:1 --image-map '*=local/base:1'`). Init, wait and the sandbox run the executor's own image, argoexec:local (built on this machine by tests/image), with argoexec from its PATH; when --image-map maps their image (by name or `*`), they run that image with this binary bind-mounted at /.argoexec/argoexec instead, so it needs the C library the binary links against.

With --api the runner also plays kubelet towards a Kubernetes API server of its own (in-process, \
127.0.0.1): the pod, its Secrets and ConfigMaps are created there and the pod's status follows \
the run; logs are served from the containers' output and pods/exec runs inside the named \
container. The pod is rewritten for Argo's k8sapi runtime (no shared process namespace: each \
command is PID 1 of its container), so wait watches the pod, reads files and kills sidecars \
through exec, and reports outputs to the API (v2 annotation, v3 WorkflowTaskResult), from where the runner \
reads them. An Argo v4 pod keeps the emissary (v4's only runtime) and reports a v4 task result. As with k8sapi in a cluster, outputs must be on volumes: an exec \
into main once it has exited fails. --api-log FILE lists the requests the step made. \
With --kubeconfig FILE (and --executor-kubeconfig FILE for init and wait) an existing API server \
serves the pod instead: no kubelet is there, so it suits v4 pods. --executor-binary PATH runs \
init and wait (and the emissary init copies) with another executor, e.g. Argo's own.";

/// `argoexec run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The pod manifest, as Argo's controller generates it (YAML or JSON)
    #[arg(long, value_name = "FILE")]
    pub(crate) pod: PathBuf,
    /// Secrets, as mounted in a pod: files DIR/<secret>/<key>
    #[arg(long, value_name = "DIR")]
    pub(crate) secrets: Option<PathBuf>,
    /// ConfigMaps, the same way: files DIR/<configmap>/<key>
    #[arg(long, value_name = "DIR")]
    pub(crate) configmaps: Option<PathBuf>,
    /// Artifact repository to use instead of the template's (YAML or JSON of Argo's
    /// ArtifactRepository: s3, gcs, azure, oss, artifactory or hdfs, and archiveLogs); becomes the
    /// template's archiveLocation with key {{workflow.name}}/{{pod.name}}
    #[arg(long, value_name = "FILE")]
    pub(crate) artifact_repo: Option<PathBuf>,
    /// Work directory of the run: volumes, pod state, the outputs report and the default artifact
    /// repository (DIR/artifacts). Kept. [default: a new directory in $TMPDIR or /var/tmp, removed
    /// at the end unless --keep]
    #[arg(long, value_name = "DIR")]
    pub(crate) workdir: Option<PathBuf>,
    /// Keep the temporary work directory
    #[arg(long)]
    pub(crate) keep: bool,
    /// How long sidecars may keep running after wait and main exited before they are killed
    /// (wait normally kills them), e.g. 30s
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_request_timeout)]
    pub(crate) linger: Duration,
    /// Do not echo the containers' output on stderr
    #[arg(long, short = 'q')]
    pub(crate) quiet: bool,
    /// Output format of the result
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub(crate) output: Output,
    /// Load and check the pod and its template, print what the step would do, run nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// How to run the pod
    #[arg(long, value_enum, default_value_t = Backend::Namespaces)]
    pub(crate) backend: Backend,
    /// With --backend docker: run image FROM as the local image TO (repeatable; FROM `*` maps
    /// every image not named)
    #[arg(long, value_name = "FROM=TO")]
    pub(crate) image_map: Vec<String>,
    /// Run the pod with this runtime instead of the one it names, rewriting it as Argo's
    /// controller does for that runtime (emissary: every container but wait runs under
    /// `/var/run/argo/argoexec emissary --`). With --api: k8sapi (the default there) or kubelet
    /// (the run's server also plays the node's kubelet, over HTTPS with a service-account token)
    #[arg(long, value_enum, value_name = "RUNTIME")]
    pub(crate) runtime: Option<RunRuntime>,
    /// Serve the pod through a Kubernetes API server of its own (in-process, on 127.0.0.1), so
    /// init and wait run as in a cluster: wait uses the k8sapi runtime (pod watch, exec, logs)
    /// and reports outputs to the API as the pod's Argo version does; they find the server
    /// through a kubeconfig (KUBECONFIG) where a real pod uses its service account. Outputs
    /// must be on volumes, as Argo's k8sapi requires
    #[arg(long)]
    pub(crate) api: bool,
    /// With --api: write the Kubernetes API requests the step made to FILE, one a line (method,
    /// verb, status, path)
    #[arg(long, value_name = "FILE", requires = "api")]
    pub(crate) api_log: Option<PathBuf>,
    /// Run the pod's executor containers (init, wait, and the emissary init copies into
    /// /var/run/argo) with this executor binary instead of this one, e.g. Argo's own argoexec
    /// (static: it runs on this machine's filesystem); the pod's machinery stays this binary.
    /// Argo's executor always talks to Kubernetes: add --api
    #[arg(long, value_name = "PATH")]
    pub(crate) executor_binary: Option<PathBuf>,
    /// With --api: serve the pod through the existing API server of this kubeconfig (the
    /// runner's own access, as an admin: it creates the pod and writes its status) instead of a
    /// server of the run's own. No kubelet is there: pods/exec and pods/log are not served, which
    /// suits Argo v4 (emissary) pods. Needs --executor-kubeconfig
    #[arg(
        long,
        value_name = "FILE",
        requires = "api",
        requires = "executor_kubeconfig"
    )]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// With --kubeconfig: the kubeconfig init and wait get (KUBECONFIG), as the pod's service
    /// account in a cluster
    #[arg(long, value_name = "FILE", requires = "kubeconfig")]
    pub(crate) executor_kubeconfig: Option<PathBuf>,
}

/// `--output` of `argoexec run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    /// Exit codes, phase and outputs for people
    Text,
    /// The report as JSON
    Json,
}

/// `--backend` of `argoexec run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Backend {
    /// Linux namespaces on this machine's filesystem
    Namespaces,
    /// Containers of the local Docker Engine
    Docker,
}

/// `--runtime` of `argoexec run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RunRuntime {
    /// Argo's emissary: the pod rewritten as the controller does for it
    Emissary,
    /// With --api: wait watches the pod, execs into its containers and reads `pods/log`
    #[value(name = "k8sapi")]
    K8sApi,
    /// With --api: wait talks to the node's kubelet over HTTPS
    Kubelet,
}

/// The name a value has on the command line, for messages.
fn flag_value(value: impl ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_owned())
        .unwrap_or_default()
}

/// Runs one of the local runner's subcommands.
pub(crate) fn run(command: LocalCommand) -> Result<ExitCode, Failure> {
    match command {
        LocalCommand::Pause => {
            argoexec_localpod::pause_main()?;
            Ok(ExitCode::SUCCESS)
        }
        LocalCommand::Shim { spec } => {
            let code = argoexec_localpod::shim_main(&spec)?;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX)))
        }
        // Before any thread starts: entering a mount namespace needs a single-threaded process.
        LocalCommand::NsExec { pid, cwd, args } => {
            let code = argoexec_localpod::nsexec_main(pid, cwd.as_deref(), &args)?;
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX)))
        }
        LocalCommand::Exec { await_seen, args } => {
            let code = argoexec_localpod::exec_main(await_seen.as_deref(), &args);
            Ok(ExitCode::from(u8::try_from(code).unwrap_or(u8::MAX)))
        }
        LocalCommand::Run(args) => {
            let pod = argoexec_pod::StepPod::load(&args.pod)?;
            if !args.dry_run {
                return run_local(&pod, &args);
            }
            match args.output {
                Output::Json => {
                    let doc = serde_json::json!({
                        "pod": pod.name(),
                        "protocol": format!("{:?}", pod.protocol).to_lowercase(),
                        "template": pod.template,
                    });
                    println!("{doc:#}");
                }
                Output::Text => print!("{}", pod.describe()),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `argoexec run` without `--dry-run`: runs the pod, prints the result, exits 0 if the step
/// succeeded and 1 if not.
fn run_local(pod: &argoexec_pod::StepPod, args: &RunArgs) -> Result<ExitCode, Failure> {
    let (workdir, temp) = match &args.workdir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("create work directory {}", dir.display()))?;
            (dir.clone(), None)
        }
        None => {
            let base =
                std::env::var_os("TMPDIR").map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from);
            let temp = tempfile::Builder::new()
                .prefix("argoexec-run-")
                .tempdir_in(&base)
                .with_context(|| format!("create a work directory in {}", base.display()))?;
            (temp.path().to_owned(), Some(temp))
        }
    };
    let executor_binary = args
        .executor_binary
        .as_deref()
        .map(executable_file)
        .transpose()?;
    if executor_binary.is_some() && args.backend != Backend::Namespaces {
        return Err(anyhow::anyhow!(
            "--executor-binary runs the pod out of Linux namespaces: it cannot be combined with \
             --backend {}",
            flag_value(args.backend)
        )
        .into());
    }
    let options = argoexec_localpod::RunOptions {
        secrets: args.secrets.clone(),
        configmaps: args.configmaps.clone(),
        artifact_repo: args.artifact_repo.clone(),
        workdir: workdir.clone(),
        exe: std::env::current_exe().context("locate this binary")?,
        executor_binary,
        linger: args.linger,
        echo: !args.quiet,
        runtime: match (args.runtime, args.api) {
            (Some(RunRuntime::Emissary), false) => Some(argoexec_config::RuntimeKind::Emissary),
            (Some(RunRuntime::Emissary), true) => {
                return Err(anyhow::anyhow!(
                    "--runtime emissary cannot be combined with --api (a v4 pod keeps its \
                     emissary under --api; for v2 and v3 pods --api runs k8sapi or kubelet)"
                )
                .into());
            }
            (Some(other), false) => {
                return Err(anyhow::anyhow!(
                    "--runtime {} talks to Kubernetes: add --api, which serves the pod \
                     through an API server of its own",
                    flag_value(other)
                )
                .into());
            }
            _ => None,
        },
        api: args.api.then(|| argoexec_localpod::ApiOptions {
            runtime: if args.runtime == Some(RunRuntime::Kubelet) {
                argoexec_localpod::ApiRuntime::Kubelet
            } else {
                argoexec_localpod::ApiRuntime::K8sApi
            },
            request_log: args.api_log.clone(),
            existing: args
                .kubeconfig
                .clone()
                .zip(args.executor_kubeconfig.clone())
                .map(
                    |(kubeconfig, executor_kubeconfig)| argoexec_localpod::ExistingServer {
                        kubeconfig,
                        executor_kubeconfig,
                    },
                ),
        }),
    };
    if args.api && args.backend != Backend::Namespaces {
        return Err(anyhow::anyhow!(
            "--api runs the pod out of Linux namespaces: it cannot be combined with --backend {}",
            flag_value(args.backend)
        )
        .into());
    }
    let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
    let report = if args.backend == Backend::Docker {
        let images = argoexec_localpod::ImageMap::parse(args.image_map.iter().map(String::as_str))
            .map_err(anyhow::Error::msg)?;
        runtime.block_on(argoexec_localpod::run_pod_docker(pod, &options, &images))
    } else {
        runtime.block_on(argoexec_localpod::run_pod(pod, &options))
    };
    match temp {
        Some(temp) if args.keep => {
            let kept = temp.keep();
            tracing::info!(workdir = %kept.display(), "Work directory kept");
        }
        Some(_) => {}
        None => tracing::info!(workdir = %workdir.display(), "Work directory kept"),
    }
    let report = report?;
    match args.output {
        Output::Json => println!(
            "{}",
            serde_json::to_string_pretty(&report).context("render the report")?
        ),
        Output::Text => print!("{}", report.render_text()),
    }
    Ok(if report.phase == argoexec_localpod::Phase::Succeeded {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `--executor-binary PATH`, absolute, once it is known to be an executable file.
fn executable_file(path: &std::path::Path) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta =
        std::fs::metadata(path).with_context(|| format!("--executor-binary {}", path.display()))?;
    if !meta.is_file() {
        anyhow::bail!("--executor-binary {}: not a file", path.display());
    }
    if meta.permissions().mode() & 0o111 == 0 {
        anyhow::bail!("--executor-binary {}: not executable", path.display());
    }
    std::fs::canonicalize(path).with_context(|| format!("--executor-binary {}", path.display()))
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::cli::{Cli, Command};

    #[test]
    fn api_takes_a_kubernetes_runtime_and_api_log_needs_api() {
        let cli = Cli::try_parse_from([
            "argoexec",
            "run",
            "--pod",
            "p",
            "--api",
            "--api-log",
            "l",
            "--runtime",
            "kubelet",
        ])
        .unwrap();
        let Command::Local(LocalCommand::Run(args)) = cli.command else {
            panic!("not run");
        };
        assert!(args.api);
        assert_eq!(args.runtime, Some(RunRuntime::Kubelet));
        let unknown = ["argoexec", "run", "--pod", "p", "--runtime", "docker"];
        assert!(Cli::try_parse_from(unknown).is_err());
        assert!(Cli::try_parse_from(["argoexec", "run", "--pod", "p", "--api-log", "l"]).is_err());
    }

    #[test]
    fn executor_binary_must_be_an_executable_file() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let missing = executable_file(&dir.path().join("nope")).unwrap_err();
        assert!(
            format!("{missing:#}").contains("--executor-binary"),
            "{missing:#}"
        );
        let not_file = executable_file(dir.path()).unwrap_err();
        assert!(not_file.to_string().ends_with("not a file"), "{not_file}");
        let plain = dir.path().join("plain");
        std::fs::write(&plain, "").unwrap();
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
        let not_exec = executable_file(&plain).unwrap_err();
        assert!(
            not_exec.to_string().ends_with("not executable"),
            "{not_exec}"
        );
        std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(executable_file(&plain).unwrap().is_absolute());
    }
}
