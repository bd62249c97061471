//! Argo step pods as the controller writes them.
//!
//! [`StepPod::load`] reads a pod manifest (YAML or JSON), finds the step's template where the
//! controller put it (the `workflows.argoproj.io/template` annotation for v2 pods, the
//! `ARGO_TEMPLATE` variable of the executor containers for v3 and v4) and tells the protocol
//! generation. The local pod runner builds on it.

use std::path::{Path, PathBuf};

use argoexec_template::{Protocol, SourceKind, TEMPLATE_ANNOTATION, Template, parse_template};
use k8s_openapi::api::core::v1::{Container, EnvVar, Pod};

/// Why a pod manifest could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PodError {
    /// The file could not be read.
    #[error("read pod manifest {path}")]
    Read {
        /// The manifest.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a Pod in YAML or JSON.
    #[error("pod manifest {path} is not a valid Pod: {message}")]
    Parse {
        /// The manifest.
        path: PathBuf,
        /// What the parser found wrong, with its position.
        message: String,
    },
    /// The manifest is some other kind of object.
    #[error("pod manifest {path} has kind {kind:?}: expected Pod")]
    NotAPod {
        /// The manifest.
        path: PathBuf,
        /// The kind it has.
        kind: String,
    },
    /// Neither the annotation nor `ARGO_TEMPLATE` holds a template.
    #[error(
        "pod manifest {path} has no Argo template: expected annotation {TEMPLATE_ANNOTATION} (v2) \
         or environment variable ARGO_TEMPLATE on a container (v3, v4)"
    )]
    NoTemplate {
        /// The manifest.
        path: PathBuf,
    },
    /// The template was offloaded to a ConfigMap the manifest does not carry.
    #[error(
        "pod manifest {path}: ARGO_TEMPLATE is offloaded to a ConfigMap; put the template JSON \
         in the ARGO_TEMPLATE value instead"
    )]
    Offloaded {
        /// The manifest.
        path: PathBuf,
    },
    /// The template is there but invalid.
    #[error("pod manifest {path}")]
    Template {
        /// The manifest.
        path: PathBuf,
        /// What is wrong with the template.
        #[source]
        source: Box<argoexec_template::LoadError>,
    },
}

/// A step pod: the manifest, its template and the protocol its controller speaks.
#[derive(Debug, Clone)]
pub struct StepPod {
    /// The pod as written.
    pub pod: Pod,
    /// The step's template.
    pub template: Template,
    /// The template's JSON text as the controller wrote it.
    pub template_json: String,
    /// The protocol generation.
    pub protocol: Protocol,
}

impl StepPod {
    /// Reads and checks a pod manifest.
    pub fn load(path: &Path) -> Result<Self, PodError> {
        let text = std::fs::read_to_string(path).map_err(|source| PodError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses a manifest's text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self, PodError> {
        let value: serde_json::Value =
            serde_yaml_ng::from_str(text).map_err(|e| PodError::Parse {
                path: path.to_owned(),
                message: e.to_string(),
            })?;
        let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
        if kind != "Pod" {
            return Err(PodError::NotAPod {
                path: path.to_owned(),
                kind: kind.to_owned(),
            });
        }
        let pod: Pod = serde_json::from_value(value).map_err(|e| PodError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        let (template_json, protocol, source_kind) =
            find_template(&pod).ok_or_else(|| PodError::NoTemplate {
                path: path.to_owned(),
            })?;
        if template_json == argoexec_template::OFFLOADED {
            return Err(PodError::Offloaded {
                path: path.to_owned(),
            });
        }
        let template =
            parse_template(&template_json, &source_kind).map_err(|source| PodError::Template {
                path: path.to_owned(),
                source: Box::new(source),
            })?;
        Ok(Self {
            pod,
            template,
            template_json,
            protocol,
        })
    }

    /// The pod's name.
    pub fn name(&self) -> &str {
        self.pod.metadata.name.as_deref().unwrap_or("")
    }

    /// The init containers, then the containers, in pod order.
    pub fn all_containers(&self) -> impl Iterator<Item = &Container> {
        let spec = self.pod.spec.as_ref();
        spec.and_then(|s| s.init_containers.as_deref())
            .unwrap_or_default()
            .iter()
            .chain(spec.map(|s| s.containers.as_slice()).unwrap_or_default())
    }

    /// The value of an environment variable of a container, when it is a literal value.
    pub fn env_value<'a>(container: &'a Container, name: &str) -> Option<&'a str> {
        container
            .env
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|e: &&EnvVar| e.name == name)
            .and_then(|e| e.value.as_deref())
    }
}

impl StepPod {
    /// What the step would do, for people: the pod, its containers, inputs and outputs.
    pub fn describe(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let t = &self.template;
        let executor_env = |name: &str| {
            self.all_containers()
                .find_map(|c| Self::env_value(c, name))
                .map(str::to_owned)
        };
        let runtime = executor_env("ARGO_CONTAINER_RUNTIME_EXECUTOR").unwrap_or_else(|| match self
            .protocol
        {
            Protocol::V2 => "docker (default)".into(),
            Protocol::V3 | Protocol::V4 => "emissary (default)".into(),
        });
        let protocol = match self.protocol {
            Protocol::V2 => "v2",
            Protocol::V3 => "v3",
            Protocol::V4 => "v4",
        };
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "pod       {} (protocol {protocol}, runtime {runtime})",
            self.name()
        );
        let kind = t.kind().map_or("unknown", |k| k.as_str());
        let _ = writeln!(
            out,
            "template  {} ({kind})",
            t.name.as_deref().unwrap_or("<unnamed>")
        );
        let deadline = executor_env("ARGO_DEADLINE")
            .filter(|d| !d.starts_with("0001-01-01"))
            .unwrap_or_else(|| "none".into());
        let _ = writeln!(out, "deadline  {deadline}");
        let mains = t.main_container_names();
        let _ = writeln!(out, "containers");
        let init_names: Vec<&str> = self
            .pod
            .spec
            .iter()
            .flat_map(|s| s.init_containers.iter().flatten())
            .map(|c| c.name.as_str())
            .collect();
        for c in self.all_containers() {
            let role = if init_names.contains(&c.name.as_str()) {
                "init"
            } else if c.name == "wait" {
                "wait"
            } else if mains.contains(&c.name.as_str()) {
                "main"
            } else {
                "sidecar"
            };
            let command: Vec<&str> = c
                .command
                .iter()
                .flatten()
                .chain(c.args.iter().flatten())
                .map(String::as_str)
                .collect();
            let _ = writeln!(
                out,
                "  {:<8} {:<8} {:<34} {}",
                c.name,
                role,
                c.image.as_deref().unwrap_or("-"),
                command.join(" ")
            );
        }
        let inputs = t.inputs.as_ref();
        let outputs = t.outputs.as_ref();
        let params_in = inputs
            .and_then(|i| i.parameters.as_deref())
            .unwrap_or_default();
        let arts_in = t.input_artifacts();
        let params_out = outputs
            .and_then(|o| o.parameters.as_deref())
            .unwrap_or_default();
        let arts_out = t.output_artifacts();
        let _ = writeln!(out, "inputs");
        if params_in.is_empty() && arts_in.is_empty() {
            let _ = writeln!(out, "  none");
        }
        for p in params_in {
            let value = p.value_text().unwrap_or_default();
            let _ = writeln!(out, "  parameter {} = {value:?}", p.name);
        }
        for a in arts_in {
            let _ = writeln!(
                out,
                "  artifact  {} -> {} ({})",
                a.name,
                a.path.as_deref().unwrap_or("<no path>"),
                describe_location(a)
            );
        }
        let _ = writeln!(out, "outputs");
        let result = executor_env("ARGO_INCLUDE_SCRIPT_OUTPUT").is_some_and(|v| v == "true");
        if params_out.is_empty() && arts_out.is_empty() && !result {
            let _ = writeln!(out, "  none");
        }
        for p in params_out {
            let from = p
                .value_from
                .as_ref()
                .and_then(|v| v.path.as_deref())
                .unwrap_or("<not from a file>");
            let _ = writeln!(out, "  parameter {} <- {from}", p.name);
        }
        for a in arts_out {
            let _ = writeln!(
                out,
                "  artifact  {} <- {} ({})",
                a.name,
                a.path.as_deref().unwrap_or("<no path>"),
                describe_location(a)
            );
        }
        if result {
            let _ = writeln!(out, "  result    <- stdout of main");
        }
        out
    }
}

fn describe_location(a: &argoexec_template::Artifact) -> String {
    let place = match a.location_kind() {
        Some(kind) => {
            let key = a
                .location
                .key()
                .map(|k| format!(" {k}"))
                .unwrap_or_default();
            format!("{}{key}", kind.as_str())
        }
        None => "archive location".to_owned(),
    };
    let archive = a
        .archive_kind()
        .map(|k| format!(", archive {k:?}"))
        .unwrap_or_default();
    let optional = if a.is_optional() { ", optional" } else { "" };
    format!("{place}{archive}{optional}")
}

/// The template and protocol: the v2 annotation first, else `ARGO_TEMPLATE` of the first container
/// that has it (v4 when the controller also set `ARGO_WORKFLOW_UID`).
fn find_template(pod: &Pod) -> Option<(String, Protocol, SourceKind)> {
    if let Some(json) = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(TEMPLATE_ANNOTATION))
    {
        let kind = SourceKind::Annotations(PathBuf::from("metadata.annotations"));
        return Some((json.clone(), Protocol::V2, kind));
    }
    let spec = pod.spec.as_ref()?;
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    for container in containers {
        if let Some(json) = StepPod::env_value(container, "ARGO_TEMPLATE") {
            let protocol = if StepPod::env_value(container, "ARGO_WORKFLOW_UID").is_some() {
                Protocol::V4
            } else {
                Protocol::V3
            };
            return Some((json.to_owned(), protocol, SourceKind::Env));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const V3: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
    - name: main
      image: alpine
      env: [{name: ARGO_TEMPLATE, value: '{"name":"t","container":{"image":"alpine"}}'}]
"#;

    #[test]
    fn finds_v3_template_in_env() {
        let pod = StepPod::parse(V3, Path::new("p.yaml")).unwrap();
        assert_eq!(pod.protocol, Protocol::V3);
        assert_eq!(pod.template.name.as_deref(), Some("t"));
        assert_eq!(pod.name(), "p");
    }

    #[test]
    fn finds_v2_template_in_annotation() {
        let text = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","annotations":{"workflows.argoproj.io/template":"{\"name\":\"v2\"}"}},"spec":{"containers":[{"name":"main"}]}}"#;
        let pod = StepPod::parse(text, Path::new("p.json")).unwrap();
        assert_eq!(pod.protocol, Protocol::V2);
        assert_eq!(pod.template.name.as_deref(), Some("v2"));
    }

    #[test]
    fn errors_name_the_manifest_and_the_problem() {
        let err = StepPod::parse("kind: Service\n", Path::new("svc.yaml")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pod manifest svc.yaml has kind \"Service\": expected Pod"
        );
        let err = StepPod::parse(
            "kind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: main}]}\n",
            Path::new("p.yaml"),
        )
        .unwrap_err();
        assert!(matches!(err, PodError::NoTemplate { .. }), "{err}");
        let err = StepPod::parse("kind: Pod\nspec: [", Path::new("p.yaml")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("pod manifest p.yaml is not a valid Pod: "),
            "{err}"
        );
        let bad = V3.replace(r#""image":"alpine"}}"#, r#""image":7}}"#);
        let err = StepPod::parse(&bad, Path::new("p.yaml")).unwrap_err();
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert!(
            chain.contains("at container (line 1, column 36): image: invalid type"),
            "{chain}"
        );
    }

    #[test]
    fn example_manifests_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests/examples");
        let mut count = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yaml") {
                StepPod::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                count += 1;
            }
        }
        assert!(count >= 1, "no example pods in {}", dir.display());
    }

    #[test]
    fn describes_the_step() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../manifests/examples/hello-world.yaml");
        let text = StepPod::load(&path).unwrap().describe();
        assert!(
            text.contains("pod       hello-world-8ztl2 (protocol v3, runtime pns)"),
            "{text}"
        );
        assert!(text.contains("template  hello (script)"), "{text}");
        assert!(text.contains("  main     main     alpine:3.16"), "{text}");
        assert!(text.contains("  init     init "), "{text}");
        assert!(text.contains("  result    <- stdout of main"), "{text}");
    }
}
