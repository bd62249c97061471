//! Where the executor finds its template, in the contract's detection order.

mod annotations;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::model::Template;
use crate::names::TEMPLATE_ANNOTATION;

pub use annotations::{
    Annotations, AnnotationsError, UnquoteError, parse_annotations, quote_go, unquote_go,
};

/// The value of `ARGO_TEMPLATE` that means "read the offloaded template file".
pub const OFFLOADED: &str = "offloaded";

/// Where each file-backed source lives. Defaults to the paths of an Argo pod; tests and the local
/// runner move them under another root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcePaths {
    /// The downward-API annotations file (v2).
    pub annotations: PathBuf,
    /// The template file the init container writes for the wait and emissary containers (v4).
    pub var_run_template: PathBuf,
    /// The folder of the configmap mount holding an offloaded `ARGO_TEMPLATE` (v4).
    pub offload_dir: PathBuf,
}

impl Default for SourcePaths {
    fn default() -> Self {
        Self::under(Path::new("/"))
    }
}

impl SourcePaths {
    /// The standard paths, under `root` instead of `/`.
    pub fn under(root: &Path) -> Self {
        Self {
            annotations: root.join("argo/podmetadata/annotations"),
            var_run_template: root.join("var/run/argo/template"),
            offload_dir: root.join("argo/config"),
        }
    }
}

/// The protocol generation of the controller that made the pod (contract §1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Protocol {
    /// Template in the downward-API annotations; outputs reported as a pod annotation.
    V2,
    /// `ARGO_TEMPLATE`; outputs reported as a WorkflowTaskResult owned by the pod.
    V3,
    /// `ARGO_TEMPLATE` (possibly offloaded) or `/var/run/argo/template`; task result owned by the
    /// Workflow, with the completion label.
    V4,
}

impl fmt::Display for Protocol {
    /// `v2`, `v3` or `v4`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V2 => "v2",
            Self::V3 => "v3",
            Self::V4 => "v4",
        })
    }
}

/// Which source a template came from, for error messages and the protocol choice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// The `ARGO_TEMPLATE` environment variable.
    Env,
    /// `ARGO_TEMPLATE=offloaded`: the file under the configmap mount.
    Offloaded(PathBuf),
    /// The template file written by the init container.
    File(PathBuf),
    /// The template annotation of the downward-API annotations file.
    Annotations(PathBuf),
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Env => f.write_str("environment variable ARGO_TEMPLATE"),
            Self::Offloaded(p) => write!(f, "{} (ARGO_TEMPLATE=offloaded)", p.display()),
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Annotations(p) => {
                write!(f, "annotation {TEMPLATE_ANNOTATION} in {}", p.display())
            }
        }
    }
}

/// A template source chosen by [`TemplateSource::detect`], not read yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateSource {
    kind: SourceKind,
    /// The value of `ARGO_TEMPLATE` when the source is [`SourceKind::Env`].
    inline: Option<String>,
    protocol: Protocol,
}

/// Why a template could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// `ARGO_TEMPLATE` is set to an empty string.
    #[error("environment variable ARGO_TEMPLATE is set but empty")]
    EmptyEnv,
    /// None of the sources exists.
    #[error(
        "no template found: ARGO_TEMPLATE is not set and neither {} nor {} exists",
        .0.var_run_template.display(), .0.annotations.display()
    )]
    NoSource(Box<SourcePaths>),
    /// A source file could not be read.
    #[error("read template from {source_kind}")]
    Read {
        /// The source being read.
        source_kind: SourceKind,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The annotations file is malformed.
    #[error("parse annotations file {path}")]
    Annotations {
        /// The annotations file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: AnnotationsError,
    },
    /// The annotations file has no template annotation.
    #[error("annotation {key} not found in {path}")]
    MissingAnnotation {
        /// The missing key.
        key: &'static str,
        /// The annotations file.
        path: PathBuf,
    },
    /// The template is not valid JSON, or does not match Argo's template schema.
    #[error(
        "invalid template in {source_kind}: at {path} (line {line}, column {column}): {message}"
    )]
    Json {
        /// The source being parsed.
        source_kind: SourceKind,
        /// Where in the template, as a field path (`inputs.artifacts[0].s3`), `.` for the top.
        path: String,
        /// Line within the JSON text.
        line: usize,
        /// Column within the JSON text.
        column: usize,
        /// What serde found wrong.
        message: String,
    },
}

impl TemplateSource {
    /// Picks the source in the contract's order: `ARGO_TEMPLATE` set (v3, or v4 when the
    /// controller also set `ARGO_WORKFLOW_UID`, which only v4 controllers do, or the value is the
    /// `offloaded` sentinel); else `/var/run/argo/template` (v4); else the annotations file (v2).
    pub fn detect(
        argo_template: Option<String>,
        workflow_uid_set: bool,
        paths: &SourcePaths,
    ) -> Result<Self, LoadError> {
        if let Some(value) = argo_template {
            if value.is_empty() {
                return Err(LoadError::EmptyEnv);
            }
            if value == OFFLOADED {
                return Ok(Self {
                    kind: SourceKind::Offloaded(paths.offload_dir.join("ARGO_TEMPLATE")),
                    inline: None,
                    protocol: Protocol::V4,
                });
            }
            let protocol = if workflow_uid_set {
                Protocol::V4
            } else {
                Protocol::V3
            };
            return Ok(Self {
                kind: SourceKind::Env,
                inline: Some(value),
                protocol,
            });
        }
        if paths.var_run_template.exists() {
            return Ok(Self {
                kind: SourceKind::File(paths.var_run_template.clone()),
                inline: None,
                protocol: Protocol::V4,
            });
        }
        if paths.annotations.exists() {
            return Ok(Self::annotations(paths.annotations.clone()));
        }
        Err(LoadError::NoSource(Box::new(paths.clone())))
    }

    /// The annotations file at `path` (v2), as chosen by `--pod-annotations`.
    pub fn annotations(path: PathBuf) -> Self {
        Self {
            kind: SourceKind::Annotations(path),
            inline: None,
            protocol: Protocol::V2,
        }
    }

    /// Which source this is.
    pub fn kind(&self) -> &SourceKind {
        &self.kind
    }

    /// The protocol generation the source implies.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Reads and parses the template. Returns the template and the exact JSON text it came from
    /// (the init container copies that text to `/var/run/argo/template`).
    pub fn load(&self) -> Result<(Template, String), LoadError> {
        let read = |path: &Path| {
            std::fs::read(path).map_err(|source| LoadError::Read {
                source_kind: self.kind.clone(),
                source,
            })
        };
        let text = match &self.kind {
            SourceKind::Env => self.inline.clone().unwrap_or_default(),
            SourceKind::Offloaded(path) | SourceKind::File(path) => {
                String::from_utf8_lossy(&read(path)?).into_owned()
            }
            SourceKind::Annotations(path) => {
                let annotations =
                    parse_annotations(&read(path)?).map_err(|source| LoadError::Annotations {
                        path: path.clone(),
                        source,
                    })?;
                annotations
                    .get(TEMPLATE_ANNOTATION)
                    .ok_or_else(|| LoadError::MissingAnnotation {
                        key: TEMPLATE_ANNOTATION,
                        path: path.clone(),
                    })?
                    .to_owned()
            }
        };
        let template = parse_template(&text, &self.kind)?;
        Ok((template, text))
    }
}

/// Parses template JSON, naming the source and the field path of any error.
pub fn parse_template(text: &str, source_kind: &SourceKind) -> Result<Template, LoadError> {
    let mut de = serde_json::Deserializer::from_str(text);
    let result: Result<Template, _> = serde_path_to_error::deserialize(&mut de);
    result.map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        LoadError::Json {
            source_kind: source_kind.clone(),
            path,
            line: inner.line(),
            column: inner.column(),
            message: strip_position(&inner.to_string()),
        }
    })
}

/// serde_json appends " at line L column C" to its messages; the error reports them separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("argoexec-src-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn env_wins_over_files() {
        let root = temp_root("env");
        let paths = SourcePaths::under(&root);
        write(&paths.var_run_template, r#"{"name":"file"}"#);
        let src = TemplateSource::detect(Some(r#"{"name":"env"}"#.into()), false, &paths).unwrap();
        assert_eq!(src.kind(), &SourceKind::Env);
        assert_eq!(src.protocol(), Protocol::V3);
        assert_eq!(src.load().unwrap().0.name.as_deref(), Some("env"));
        let v4 = TemplateSource::detect(Some(r#"{"name":"env"}"#.into()), true, &paths).unwrap();
        assert_eq!(v4.protocol(), Protocol::V4);
    }

    #[test]
    fn offloaded_reads_the_configmap_file() {
        let root = temp_root("offloaded");
        let paths = SourcePaths::under(&root);
        write(
            &paths.offload_dir.join("ARGO_TEMPLATE"),
            r#"{"name":"big"}"#,
        );
        let src = TemplateSource::detect(Some(OFFLOADED.into()), false, &paths).unwrap();
        assert_eq!(src.protocol(), Protocol::V4);
        assert_eq!(src.load().unwrap().0.name.as_deref(), Some("big"));
    }

    #[test]
    fn offloaded_without_file_names_the_file() {
        let root = temp_root("offloaded-missing");
        let paths = SourcePaths::under(&root);
        let src = TemplateSource::detect(Some(OFFLOADED.into()), false, &paths).unwrap();
        let err = src.load().unwrap_err();
        assert!(
            err.to_string()
                .contains("argo/config/ARGO_TEMPLATE (ARGO_TEMPLATE=offloaded)"),
            "{err}"
        );
    }

    #[test]
    fn var_run_file_then_annotations() {
        let root = temp_root("files");
        let paths = SourcePaths::under(&root);
        write(
            &paths.annotations,
            "workflows.argoproj.io/template=\"{\\\"name\\\":\\\"v2\\\"}\"\n",
        );
        let src = TemplateSource::detect(None, false, &paths).unwrap();
        assert_eq!(src.protocol(), Protocol::V2);
        assert_eq!(src.load().unwrap().0.name.as_deref(), Some("v2"));
        write(&paths.var_run_template, r#"{"name":"v4"}"#);
        let src = TemplateSource::detect(None, false, &paths).unwrap();
        assert_eq!(src.protocol(), Protocol::V4);
        assert_eq!(src.load().unwrap().0.name.as_deref(), Some("v4"));
    }

    #[test]
    fn nothing_found_names_every_place_looked() {
        let root = temp_root("none");
        let paths = SourcePaths::under(&root);
        let err = TemplateSource::detect(None, false, &paths).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("ARGO_TEMPLATE is not set"), "{msg}");
        assert!(msg.contains("var/run/argo/template"), "{msg}");
        assert!(msg.contains("argo/podmetadata/annotations"), "{msg}");
        assert!(matches!(
            TemplateSource::detect(Some(String::new()), false, &paths),
            Err(LoadError::EmptyEnv)
        ));
    }

    #[test]
    fn missing_annotation_names_key_and_file() {
        let root = temp_root("missing-key");
        let paths = SourcePaths::under(&root);
        write(&paths.annotations, "other=\"x\"\n");
        let err = TemplateSource::annotations(paths.annotations.clone())
            .load()
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("annotation workflows.argoproj.io/template not found in"),
            "{msg}"
        );
        assert!(msg.ends_with("argo/podmetadata/annotations"), "{msg}");
    }

    #[test]
    fn invalid_json_names_source_and_position() {
        let err =
            TemplateSource::detect(Some("{\"name\": ".into()), false, &SourcePaths::default())
                .unwrap()
                .load()
                .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid template in environment variable ARGO_TEMPLATE: at name (line 1, column 9): EOF while parsing a value"),
            "{err}"
        );
    }

    #[test]
    fn wrong_type_deep_inside_names_the_field_path() {
        let text =
            r#"{"name":"t","inputs":{"artifacts":[{"name":"a","path":"/a","s3":{"bucket":7}}]}}"#;
        let err = parse_template(text, &SourceKind::Env).unwrap_err();
        let LoadError::Json { path, message, .. } = &err else {
            panic!("unexpected {err}");
        };
        assert_eq!(path, "inputs.artifacts[0].s3.bucket");
        assert!(message.contains("expected a string"), "{message}");
    }
}
