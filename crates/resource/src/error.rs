//! The crate's error: each variant names the object, the action and the API server's reason.

use crate::condition::ParseError;
use crate::flags::FlagError;
use crate::jq::JqError;
use crate::jsonpath::JsonPathError;
use crate::manifest::ManifestError;

/// Why a resource action failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The template's flags.
    #[error(transparent)]
    Flags(#[from] FlagError),
    /// The manifest.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// What the action needs is missing or contradicts itself.
    #[error("{action}: {message}")]
    Usage {
        /// The action.
        action: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Discovery could not map a kind to a resource.
    #[error("{action}: the server has no resource type {what}")]
    UnknownKind {
        /// The action.
        action: &'static str,
        /// The kind or resource name asked for.
        what: String,
    },
    /// Discovery itself failed.
    #[error("{action}: discover the API resource of {what}: {}", reason(source))]
    Discovery {
        /// The action.
        action: &'static str,
        /// The kind looked up.
        what: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// The API server refused or failed a call.
    #[error("{action} {target}: {}", reason(source))]
    Api {
        /// The action (`create`, `get`, `watch`, ...).
        action: &'static str,
        /// The object (`configmap ns/name`).
        target: String,
        /// The API error.
        #[source]
        source: Box<kube::Error>,
    },
    /// A success or failure condition does not parse.
    #[error("{which} condition '{text}' failed to parse: {source}")]
    Condition {
        /// `success` or `fail`.
        which: &'static str,
        /// The condition as written.
        text: String,
        /// The parser's reason.
        #[source]
        source: ParseError,
    },
    /// The failure condition holds (Argo's message).
    #[error("failure condition '{requirement}' evaluated true (on {target})")]
    Failed {
        /// The requirement that held.
        requirement: String,
        /// The object.
        target: String,
    },
    /// The object went away while its conditions were awaited.
    #[error("{target}: the resource has been deleted while its status was still being checked")]
    Deleted {
        /// The object.
        target: String,
    },
    /// A delete's wait ran out (`--timeout`).
    #[error("delete {target}: still there after the --timeout of {seconds} s")]
    Timeout {
        /// The object.
        target: String,
        /// The timeout.
        seconds: u64,
    },
    /// An output parameter's jsonPath.
    #[error("output parameter {name}: {source}")]
    JsonPath {
        /// The parameter.
        name: String,
        /// Why.
        #[source]
        source: JsonPathError,
    },
    /// An output parameter's jqFilter.
    #[error("output parameter {name}: {source}")]
    Jq {
        /// The parameter.
        name: String,
        /// Why.
        #[source]
        source: JqError,
    },
}

impl Error {
    /// The HTTP status of an API error, if that is what this is.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { source, .. } | Self::Discovery { source, .. } => status(source),
            _ => None,
        }
    }
}

/// The HTTP status of a kube error from the API server.
pub(crate) fn status(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// The API server's words: its message and reason (`Forbidden`, `NotFound`, `Invalid`), or the
/// client's error.
pub(crate) fn reason(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => {
            let why = if status.reason.is_empty() {
                String::new()
            } else {
                format!(" (reason {}, code {})", status.reason, status.code)
            };
            format!("{}{why}", status.message)
        }
        other => {
            let mut text = other.to_string();
            let mut cause = std::error::Error::source(other);
            while let Some(c) = cause {
                text.push_str(": ");
                text.push_str(&c.to_string());
                cause = c.source();
            }
            text
        }
    }
}
