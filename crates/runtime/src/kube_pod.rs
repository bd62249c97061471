//! What the runtimes that see the pod through Kubernetes share (`k8sapi` through the API server,
//! `kubelet` through the node's kubelet): a container's state read from the pod's status, the
//! kill by exec'd `kill -N 1`, and the verdict on an exec'd command.

use std::io;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerState, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;

use crate::runtime::{Error, ExitStatus, KillOutcome};

/// The pod's reason once its `activeDeadlineSeconds` passed.
const DEADLINE_EXCEEDED: &str = "DeadlineExceeded";
/// At most this much of a failed command's stderr goes into its error.
pub(crate) const STDERR_LIMIT: usize = 4096;

/// A failed call to the API server or the kubelet, kept whole so that
/// [`Error::is_transient`] can ask it.
pub(crate) fn api(source: argoexec_kube::Error) -> Error {
    Error::Api(Box::new(source))
}

/// The names of the pod's containers, as its spec lists them.
pub(crate) fn container_names(pod: Pod) -> Vec<String> {
    pod.spec
        .map(|s| s.containers.into_iter().map(|c| c.name).collect())
        .unwrap_or_default()
}

/// How `container` ended, from the status of a pod where it terminated or that passed its
/// deadline (`pod_name` for the log).
pub(crate) fn exit_status(pod: &Pod, container: &str, pod_name: &str) -> ExitStatus {
    let code = state(pod, container)
        .and_then(|s| s.terminated.as_ref())
        .map(|t| t.exit_code);
    if code.is_none() {
        tracing::info!(
            container,
            pod = pod_name,
            "Pod deadline exceeded: container counts as exited"
        );
    }
    ExitStatus { code }
}

/// Whether `container` of `pod` can be signalled by an exec'd `kill N 1`: false once it has
/// exited (or the pod passed its deadline); an error when it is not in the pod, or when PID 1 is
/// not its own (a pod sharing its process namespace, or hostPID), which `runtime` cannot handle.
pub(crate) fn signallable(
    pod: &Pod,
    container: &str,
    runtime: &'static str,
) -> Result<bool, Error> {
    if !in_spec(pod, container) {
        return Err(Error::ContainerNotFound {
            container: container.to_owned(),
        });
    }
    if is_terminated(pod, container) || deadline_exceeded(pod) {
        return Ok(false);
    }
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.share_process_namespace) == Some(true) {
        return Err(Error::Unsupported {
            runtime,
            what: "kill a container of a pod sharing its process namespace (use pns)",
        });
    }
    if spec.and_then(|s| s.host_pid) == Some(true) {
        return Err(Error::Unsupported {
            runtime,
            what: "kill a container of a hostPID pod",
        });
    }
    Ok(true)
}

/// The kill of the runtimes that signal a container's PID 1 by exec (k8sapi, kubelet), as Argo's
/// `KillGracefully`: `kill -15 1`, the grace, `kill -9 1`, one more grace, then give up. The
/// last grace matters: an exec'd `kill -9 1` can fail to end the container, because the kernel
/// drops signals sent from inside a PID namespace to its init (the container's PID 1) unless it
/// handles them, and SIGKILL cannot be handled.
pub(crate) async fn kill_gracefully<S, W>(
    container: &str,
    pod: &str,
    grace: Duration,
    signal: impl Fn(u8) -> S,
    wait_exited: impl Fn() -> W,
) -> Result<KillOutcome, Error>
where
    S: Future<Output = Result<bool, Error>>,
    W: Future<Output = Result<ExitStatus, Error>>,
{
    if !signal(15).await? {
        return Ok(KillOutcome::AlreadyExited);
    }
    if tokio::time::timeout(grace, wait_exited())
        .await
        .is_ok_and(|exited| exited.is_ok())
    {
        return Ok(KillOutcome::Terminated);
    }
    tracing::info!(container, "Still running after the grace period: SIGKILL");
    if !signal(9).await? {
        return Ok(KillOutcome::Terminated);
    }
    match tokio::time::timeout(grace, wait_exited()).await {
        Ok(exited) => exited.map(|_| KillOutcome::Killed),
        Err(_) => Err(Error::io(
            format!("kill container {container:?} of pod {pod}"),
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "still running {grace:?} after `kill -9 1` (its PID 1 ignores signals sent from inside the container)"
                ),
            ),
        )),
    }
}

/// Whether the command ran and exited 0; otherwise an error naming the container, the program
/// when the container lacks it (with `needs`, what the runtime asks of images), and the
/// command's stderr.
pub(crate) fn check(
    container: &str,
    program: &str,
    status: Option<Status>,
    stderr: &str,
    needs: &str,
) -> Result<(), Error> {
    let Some(status) = status else {
        return Err(Error::io(
            format!("exec {program} in container {container:?}"),
            io::Error::other("the API server sent no exit status"),
        ));
    };
    if status.status.as_deref() == Some("Success") {
        return Ok(());
    }
    let code = status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| {
            causes
                .iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
        })
        .and_then(|c| c.message.as_deref())
        .and_then(|m| m.parse::<i32>().ok());
    let message = status.message.unwrap_or_default();
    let missing = matches!(code, Some(126 | 127))
        || message.contains("executable file not found")
        || message.contains("no such file or directory");
    if missing {
        return Err(Error::io(
            format!("exec {program} in container {container:?}"),
            io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "the container's image has no usable `{program}` ({needs}): {}",
                    if stderr.is_empty() { &message } else { stderr }
                ),
            ),
        ));
    }
    let detail = match code {
        Some(code) => format!("exit code {code}"),
        None => message,
    };
    let kind = if stderr.contains("No such file or directory") {
        io::ErrorKind::NotFound
    } else {
        io::ErrorKind::Other
    };
    let detail = if stderr.is_empty() {
        detail
    } else {
        format!("{detail}: {stderr}")
    };
    Err(Error::io(
        format!("exec {program} in container {container:?}"),
        io::Error::new(kind, detail),
    ))
}

/// Whether `container` is in the pod's spec (a pod without a spec has them all).
pub(crate) fn in_spec(pod: &Pod, container: &str) -> bool {
    pod.spec
        .as_ref()
        .is_none_or(|s| s.containers.iter().any(|c| c.name == container))
}

/// `container`'s state in the pod's status, once it has one.
pub(crate) fn state<'a>(pod: &'a Pod, container: &str) -> Option<&'a ContainerState> {
    pod.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == container)?
        .state
        .as_ref()
}

/// Whether `container` has terminated.
pub(crate) fn is_terminated(pod: &Pod, container: &str) -> bool {
    state(pod, container).is_some_and(|s| s.terminated.is_some())
}

/// Whether the pod passed its `activeDeadlineSeconds`.
pub(crate) fn deadline_exceeded(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.reason.as_deref()) == Some(DEADLINE_EXCEEDED)
}
