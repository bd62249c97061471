//! The crate's error.

/// A failed call to the Kubernetes API, or a client that could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The client configuration could not be loaded.
    #[error("load the Kubernetes client configuration: {what}")]
    Config {
        /// What was being loaded.
        what: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A call failed (after retries when the failure was transient).
    #[error("{action} {target}{}", attempts_note(*attempts))]
    Api {
        /// What was being done: `patch`, `create`, `get`, ...
        action: &'static str,
        /// What it was done to: `pod ns/name`, `workflowtaskresult ns/name`.
        target: String,
        /// Attempts made.
        attempts: u32,
        /// The last cause.
        #[source]
        source: kube::Error,
    },
    /// The service account lacks a permission wait needs.
    #[error(
        "the service account may not {verb} {resource} in namespace {namespace}{}: grant it in the workflow's Role (see https://argo-workflows.readthedocs.io/en/latest/workflow-rbac/)",
        reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default()
    )]
    Forbidden {
        /// The verb, e.g. `create`.
        verb: String,
        /// The resource, e.g. `workflowtaskresults.argoproj.io`.
        resource: String,
        /// The namespace.
        namespace: String,
        /// The API server's reason, if it gave one.
        reason: Option<String>,
    },
    /// A configuration value the reporter needs is missing.
    #[error("unable to report outputs: {0} is not set")]
    Missing(&'static str),
    /// A key is not in the secret or config map.
    #[error("{kind} {namespace}/{name} has no key {key:?}")]
    MissingKey {
        /// `secret` or `config map`.
        kind: &'static str,
        /// The namespace.
        namespace: String,
        /// The secret or config map.
        name: String,
        /// The key.
        key: String,
    },
    /// A request to the node's kubelet failed.
    #[error("{what}{hint}")]
    Kubelet {
        /// What was asked of which kubelet, e.g. `GET /pods from the kubelet at
        /// https://10.0.0.7:10250`.
        what: String,
        /// What the failure likely means, with a leading space (a refused token, a missing
        /// permission, an untrusted certificate); empty when nothing is known.
        hint: String,
        /// The cause.
        #[source]
        source: kube::Error,
    },
    /// The pod watch ended or failed.
    #[error("watch pod {target}")]
    Watch {
        /// `ns/name`.
        target: String,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (gave up after {attempts} attempts)")
    } else {
        String::new()
    }
}

impl Error {
    /// The HTTP status the API server (or the kubelet) answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api {
                source: kube::Error::Api(status),
                ..
            }
            | Self::Kubelet {
                source: kube::Error::Api(status),
                ..
            } => Some(status.code),
            _ => None,
        }
    }

    /// Whether the same call may succeed if made again later: the server was busy or broken
    /// (5xx, 429) or the connection failed, and the call's own retries, if it had any, ran out
    /// of budget. A configuration, a refusal (401, 403, 404, ...), a missing key and a watch
    /// that ended are not transient.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Api { source, .. } | Self::Kubelet { source, .. } => is_transient(source, false),
            _ => false,
        }
    }
}

/// Whether a failed call may succeed if tried again: the server was busy or broken (5xx, 429),
/// the connection failed, or (when `conflict` is transient for the call) another writer won.
pub(crate) fn is_transient(error: &kube::Error, conflict: bool) -> bool {
    match error {
        kube::Error::Api(status) => {
            status.code >= 500 || status.code == 429 || (conflict && status.code == 409)
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}
