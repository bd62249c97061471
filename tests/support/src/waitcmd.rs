//! The wait container's command as the black-box tests run it: `argoexec wait --pod-root ROOT`
//! with a clean environment naming the pod, the template and the runtime, outputs going to a
//! local repository under the pod root.

use std::path::Path;
use std::process::Command;

/// `argoexec wait` for the pod under `root`, with `runtime` and `template`, on top of `command`
/// (the binary, maybe run through `nsenter`).
pub fn wait_command<'a>(
    command: &'a mut Command,
    root: &Path,
    runtime: &str,
    template: &serde_json::Value,
) -> &'a mut Command {
    command
        .args(["wait", "--pod-root"])
        .arg(root)
        .arg("--termination-log")
        .arg(root.join("termination-log"))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("ARGO_POD_NAME", "pod-1")
        .env("ARGO_WORKFLOW_NAME", "wf")
        .env("ARGO_CONTAINER_NAME", "wait")
        .env("ARGO_CONTAINER_RUNTIME_EXECUTOR", runtime)
        .env("ARGO_TEMPLATE", template.to_string())
        .env("ARGOEXEC_LOCAL_REPOSITORY", root.join("repo"))
}
