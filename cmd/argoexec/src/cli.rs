//! The command line, compatible with Argo's `argoexec`: the same subcommands and global flags.

use std::path::PathBuf;
use std::sync::LazyLock;
use std::time::Duration;

use argoexec_config::{Flags, KubeOverrides, LogFormat, LogLevel, env};
use clap::{Args, Parser, Subcommand};

use crate::duration_arg::parse_request_timeout;

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
        /// The action: get, create, apply, delete, replace or patch
        action: String,
        /// Where the manifest is (default: /tmp/manifest.yaml, where Argo's controller puts it)
        manifest_path: Option<PathBuf>,
    },
    /// Run a data template: list its source and apply its transformations
    Data {
        /// The data template as JSON, as Argo's controller passes it (the template itself is
        /// read from ARGO_TEMPLATE, as Argo's executor does)
        data: Option<String>,
    },
    /// Send a signal to a process: `argoexec kill SIGNAL PID`, as Argo 4's controller execs it
    Kill {
        /// The signal: a number (15) or a name (TERM, SIGTERM)
        #[arg(allow_hyphen_values = true)]
        signal: String,
        /// The process id
        #[arg(allow_hyphen_values = true)]
        pid: String,
    },
    /// The agent pod of HTTP templates
    Agent {
        #[command(subcommand)]
        command: AgentCommand,
    },
    /// Artifact garbage collection
    Artifact {
        #[command(subcommand)]
        command: ArtifactCommand,
    },
    /// Load the artifacts of one artifact plugin, running the plugin's server (an init container)
    ArtifactPluginInit {
        /// The artifact plugin's name
        #[arg(long)]
        plugin_name: Option<String>,
        /// The plugin server's command and its arguments
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run an artifact plugin's server as a sidecar, for wait to save through it
    ArtifactPluginSidecar {
        /// The plugin server's command and its arguments
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// `argoexec run` and its hidden helpers: the local pod runner, a build feature (off in the
    /// executor image, which Argo copies into every container)
    #[cfg(feature = "local-runner")]
    #[command(flatten)]
    Local(crate::run_cmd::LocalCommand),
    /// Print version information
    Version {
        /// Print only the version number
        #[arg(long)]
        short: bool,
    },
}

/// `argoexec agent ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum AgentCommand {
    /// Write each plugin's token (the agent pod's init container)
    Init,
    /// Run the HTTP requests of the workflow's task set (the agent pod's main container)
    Main,
}

/// `argoexec artifact ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ArtifactCommand {
    /// Delete the artifacts of this pod's WorkflowArtifactGCTasks (the artifact GC pod)
    Delete,
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
    fn rejects_unknown_log_level() {
        let err = Cli::try_parse_from(["argoexec", "init", "--loglevel", "loud"]).unwrap_err();
        assert!(
            err.to_string()
                .contains("expected one of debug, info, warn, error")
        );
    }
}
