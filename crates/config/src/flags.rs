//! The global flags, as the binary parsed them: logging, and the Kubernetes client's overrides.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::kube::KubeOverrides;

/// The global flags, as the binary parsed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flags {
    /// `--loglevel`.
    pub log_level: LogLevel,
    /// `--log-format`.
    pub log_format: LogFormat,
    /// `--gloglevel`: accepted for compatibility; there is no glog here.
    pub gloglevel: i32,
    /// `--pod-annotations` (v2): the downward-API annotations file.
    pub pod_annotations: Option<PathBuf>,
    /// Kubernetes client overrides.
    pub kube: KubeOverrides,
}

impl Default for Flags {
    fn default() -> Self {
        Self {
            log_level: LogLevel::Info,
            log_format: LogFormat::Text,
            gloglevel: 0,
            pod_annotations: None,
            kube: KubeOverrides::default(),
        }
    }
}

/// Log verbosity (`--loglevel`). Accepts logrus' names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    /// Everything, including per-request detail.
    Trace,
    /// Debug detail.
    Debug,
    /// The default.
    Info,
    /// Warnings and errors.
    Warn,
    /// Errors only.
    Error,
}

impl FromStr for LogLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "trace" => Ok(Self::Trace),
            "debug" => Ok(Self::Debug),
            "info" => Ok(Self::Info),
            "warn" | "warning" => Ok(Self::Warn),
            "error" | "fatal" | "panic" => Ok(Self::Error),
            _ => Err(format!(
                "unknown log level {s:?}: expected one of debug, info, warn, error"
            )),
        }
    }
}

impl fmt::Display for LogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Trace => "trace",
            Self::Debug => "debug",
            Self::Info => "info",
            Self::Warn => "warn",
            Self::Error => "error",
        })
    }
}

/// Log line format (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// `time="..." level=info msg="..."`, as Argo's text logs.
    #[default]
    Text,
    /// One JSON object a line, as Argo's JSON logs.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            _ => Err(format!(
                "unknown log format {s:?}: expected one of text, json"
            )),
        }
    }
}
