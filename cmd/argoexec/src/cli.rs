//! The command line, compatible with Argo's `argoexec`: the same subcommands and global flags.

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use argoexec_config::{Flags, KubeOverrides, LogFormat, LogLevel, env};
use clap::{Args, Parser, Subcommand};

/// The environment variables, rendered once for `--help`.
static ENV_HELP: LazyLock<String> = LazyLock::new(|| {
    let mut text = String::from("Environment (set by Argo's controller):\n");
    for (name, doc, default) in env::TABLE {
        let default = if default.is_empty() {
            String::new()
        } else {
            format!(" [default: {default}]")
        };
        text.push_str(&format!("  {name}\n          {doc}{default}\n"));
    }
    text
});

/// argoexec is the executor sidecar to workflow containers: a drop-in, streaming re-implementation
/// of Argo Workflows' executor.
#[derive(Debug, Parser)]
#[command(name = "argoexec", version, after_long_help = ENV_HELP.as_str())]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Flags every subcommand accepts.
#[derive(Debug, Args)]
pub(crate) struct GlobalArgs {
    /// Set the logging level. One of: debug|info|warn|error
    #[arg(long, global = true, default_value = "info")]
    pub(crate) loglevel: LogLevel,
    /// The formatter to use for logs. One of: text|json
    #[arg(long, global = true, default_value = "text")]
    pub(crate) log_format: LogFormat,
    /// Set the glog logging level (accepted for compatibility; unused)
    #[arg(long, global = true, default_value_t = 0)]
    pub(crate) gloglevel: i32,
    /// Pod annotations file from the Kubernetes downward API (v2 pods)
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) pod_annotations: Option<PathBuf>,
    /// Where the first error is written for Kubernetes (written only if the file exists, as it
    /// does in a pod, or when this flag is given)
    #[arg(long, global = true, value_name = "PATH", hide = true)]
    pub(crate) termination_log: Option<PathBuf>,
    /// Root under which the pod's paths (/argo, /var/run/argo, /mainctrfs, ...) are found; the
    /// local runner and tests set it, a pod never does
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        hide = true,
        default_value = "/"
    )]
    pub(crate) pod_root: PathBuf,
    #[command(flatten)]
    pub(crate) kube: KubeArgs,
}

/// kubectl-style overrides of the Kubernetes client configuration.
#[derive(Debug, Args)]
pub(crate) struct KubeArgs {
    /// Path to a kube config. Only required if out-of-cluster
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// The address and port of the Kubernetes API server
    #[arg(long, short = 's', global = true)]
    pub(crate) server: Option<String>,
    /// Bearer token for authentication to the API server
    #[arg(long, global = true)]
    pub(crate) token: Option<String>,
    /// If present, the namespace scope for this CLI request
    #[arg(long, short = 'n', global = true)]
    pub(crate) namespace: Option<String>,
    /// The name of the kubeconfig context to use
    #[arg(long, global = true)]
    pub(crate) context: Option<String>,
    /// The name of the kubeconfig cluster to use
    #[arg(long, global = true)]
    pub(crate) cluster: Option<String>,
    /// The name of the kubeconfig user to use
    #[arg(long, global = true)]
    pub(crate) user: Option<String>,
    /// If true, the server's certificate will not be checked for validity
    #[arg(long, global = true)]
    pub(crate) insecure_skip_tls_verify: bool,
    /// Path to a cert file for the certificate authority
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) certificate_authority: Option<PathBuf>,
    /// Path to a client certificate file for TLS
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) client_certificate: Option<PathBuf>,
    /// Path to a client key file for TLS
    #[arg(long, global = true, value_name = "PATH")]
    pub(crate) client_key: Option<PathBuf>,
    /// Username for basic authentication to the API server
    #[arg(long, global = true)]
    pub(crate) username: Option<String>,
    /// Password for basic authentication to the API server
    #[arg(long, global = true)]
    pub(crate) password: Option<String>,
    /// Username to impersonate for the operation
    #[arg(long = "as", global = true, value_name = "USER")]
    pub(crate) as_user: Option<String>,
    /// Group to impersonate for the operation; repeat for more groups
    #[arg(long, global = true, value_name = "GROUP")]
    pub(crate) as_group: Vec<String>,
    /// Server name to use for server certificate validation
    #[arg(long, global = true)]
    pub(crate) tls_server_name: Option<String>,
    /// How long to wait for a single server request (0: no timeout), e.g. 1s, 2m, or plain seconds
    #[arg(long, global = true, value_parser = parse_request_timeout)]
    pub(crate) request_timeout: Option<Duration>,
}

fn parse_request_timeout(text: &str) -> Result<Duration, String> {
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    argoexec_config::parse_go_duration(text).ok_or_else(|| {
        format!("invalid duration {text:?}: expected seconds or a Go duration such as 30s")
    })
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Load artifacts (run as the pod's init container)
    Init,
    /// Wait for the main container to finish and save its outputs (run as the wait sidecar)
    Wait,
    /// Run a command as a container of an emissary pod: `argoexec emissary -- CMD [ARGS...]`
    Emissary {
        /// The command and its arguments
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// Execute a resource template's action (get, create, apply, delete, replace, patch)
    Resource {
        /// The action
        action: String,
    },
    /// Run a data template's transformation over its source
    Data {
        /// The data template as JSON
        data: String,
    },
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
    /// Print version information
    Version {
        /// Print only the version number
        #[arg(long)]
        short: bool,
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
into main once it has exited fails. --api-log FILE lists the requests the step made.";

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
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    pub(crate) output: String,
    /// Load and check the pod and its template, print what the step would do, run nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// How to run the pod: Linux namespaces on this machine's filesystem, or containers of the
    /// local Docker Engine
    #[arg(long, default_value = "namespaces", value_parser = ["namespaces", "docker"])]
    pub(crate) backend: String,
    /// With --backend docker: run image FROM as the local image TO (repeatable; FROM `*` maps
    /// every image not named)
    #[arg(long, value_name = "FROM=TO")]
    pub(crate) image_map: Vec<String>,
    /// Run the pod with this runtime instead of the one it names, rewriting it as Argo's
    /// controller does for that runtime (emissary: every container but wait runs under
    /// `/var/run/argo/argoexec emissary --`). With --api: k8sapi (the default there) or kubelet
    /// (the run's server also plays the node's kubelet, over HTTPS with a service-account token)
    #[arg(long, value_name = "RUNTIME", value_parser = ["emissary", "k8sapi", "kubelet"])]
    pub(crate) runtime: Option<String>,
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
}

impl GlobalArgs {
    /// The flags, as the configuration crate takes them.
    pub(crate) fn flags(&self) -> Flags {
        let k = &self.kube;
        Flags {
            log_level: self.loglevel,
            log_format: self.log_format,
            gloglevel: self.gloglevel,
            pod_annotations: self.pod_annotations.clone(),
            kube: KubeOverrides {
                kubeconfig: k.kubeconfig.clone(),
                server: k.server.clone(),
                token: k.token.clone(),
                namespace: k.namespace.clone(),
                context: k.context.clone(),
                cluster: k.cluster.clone(),
                user: k.user.clone(),
                insecure_skip_tls_verify: k.insecure_skip_tls_verify,
                certificate_authority: k.certificate_authority.clone(),
                client_certificate: k.client_certificate.clone(),
                client_key: k.client_key.clone(),
                username: k.username.clone(),
                password: k.password.clone(),
                as_user: k.as_user.clone(),
                as_group: k.as_group.clone(),
                tls_server_name: k.tls_server_name.clone(),
                request_timeout: k.request_timeout,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_argo_controller_invocations() {
        let cli = Cli::try_parse_from(["argoexec", "init", "--loglevel", "info"]).unwrap();
        assert!(matches!(cli.command, Command::Init));
        let cli =
            Cli::try_parse_from(["argoexec", "emissary", "--", "sh", "-c", "echo -n"]).unwrap();
        let Command::Emissary { args } = cli.command else {
            panic!("not emissary");
        };
        assert_eq!(args, ["sh", "-c", "echo -n"]);
        let cli = Cli::try_parse_from([
            "argoexec",
            "wait",
            "--log-format",
            "json",
            "--gloglevel",
            "2",
            "--request-timeout",
            "1m",
            "--as-group",
            "a",
            "--as-group",
            "b",
        ])
        .unwrap();
        let flags = cli.global.flags();
        assert_eq!(flags.log_format, LogFormat::Json);
        assert_eq!(flags.kube.request_timeout, Some(Duration::from_secs(60)));
        assert_eq!(flags.kube.as_group, ["a", "b"]);
    }

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
        let Command::Run(args) = cli.command else {
            panic!("not run");
        };
        assert!(args.api);
        assert_eq!(args.runtime.as_deref(), Some("kubelet"));
        let unknown = ["argoexec", "run", "--pod", "p", "--runtime", "docker"];
        assert!(Cli::try_parse_from(unknown).is_err());
        assert!(Cli::try_parse_from(["argoexec", "run", "--pod", "p", "--api-log", "l"]).is_err());
    }

    #[test]
    fn rejects_unknown_log_level() {
        let err = Cli::try_parse_from(["argoexec", "init", "--loglevel", "loud"]).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected one of debug, info, warn, error")
        );
    }
}
