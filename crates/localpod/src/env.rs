//! A container's environment as kubelet resolves it, and Kubernetes' `$(VAR)` expansion.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{Container, EnvVar, ResourceRequirements};

use crate::Error;

/// What the pod is, for `fieldRef`s and the downward API.
#[derive(Debug, Clone)]
pub(crate) struct PodInfo {
    pub(crate) name: String,
    pub(crate) namespace: String,
    pub(crate) uid: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) annotations: BTreeMap<String, String>,
    pub(crate) node_name: String,
    pub(crate) service_account: String,
    /// Both the pod's and the host's IP: the pod shares this machine's network.
    pub(crate) ip: String,
    pub(crate) workflow_name: String,
}

/// Where keyed values (`secretKeyRef`, `configMapKeyRef`, volumes) come from: `DIR/<name>/<key>`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KeyedDirs<'a> {
    pub(crate) secrets: Option<&'a Path>,
    pub(crate) configmaps: Option<&'a Path>,
}

/// A Secret or a ConfigMap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keyed {
    Secret,
    ConfigMap,
}

impl Keyed {
    fn flag(self) -> &'static str {
        match self {
            Self::Secret => "--secrets",
            Self::ConfigMap => "--configmaps",
        }
    }

    fn noun(self) -> &'static str {
        match self {
            Self::Secret => "secret",
            Self::ConfigMap => "configMap",
        }
    }
}

impl KeyedDirs<'_> {
    /// The directory of one Secret or ConfigMap, `Ok(None)` when it is missing and optional.
    pub(crate) fn dir(
        &self,
        kind: Keyed,
        name: &str,
        optional: bool,
    ) -> Result<Option<std::path::PathBuf>, String> {
        let base = match kind {
            Keyed::Secret => self.secrets,
            Keyed::ConfigMap => self.configmaps,
        };
        let Some(base) = base else {
            return if optional {
                Ok(None)
            } else {
                Err(format!(
                    "{} {name:?} is needed: give {} DIR with files DIR/{name}/<key>",
                    kind.noun(),
                    kind.flag()
                ))
            };
        };
        let dir = base.join(name);
        if dir.is_dir() {
            Ok(Some(dir))
        } else if optional {
            Ok(None)
        } else {
            Err(format!(
                "{} {name:?} not found: no directory {}",
                kind.noun(),
                dir.display()
            ))
        }
    }

    /// One key of a Secret or ConfigMap, `Ok(None)` when it is missing and optional.
    pub(crate) fn value(
        &self,
        kind: Keyed,
        name: &str,
        key: &str,
        optional: bool,
    ) -> Result<Option<String>, String> {
        let Some(dir) = self.dir(kind, name, optional)? else {
            return Ok(None);
        };
        let path = dir.join(key);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(String::from_utf8_lossy(&bytes).into_owned())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && optional => Ok(None),
            Err(e) => Err(format!(
                "{} {name:?} key {key:?}: read {}: {e}",
                kind.noun(),
                path.display()
            )),
        }
    }
}

/// The value of a downward-API `fieldPath`.
pub(crate) fn field_value(pod: &PodInfo, path: &str) -> Option<String> {
    let indexed = |prefix: &str, map: &BTreeMap<String, String>| {
        let key = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.get(key).cloned().unwrap_or_default())
    };
    Some(match path {
        "metadata.name" => pod.name.clone(),
        "metadata.namespace" => pod.namespace.clone(),
        "metadata.uid" => pod.uid.clone(),
        "spec.nodeName" => pod.node_name.clone(),
        "spec.serviceAccountName" => pod.service_account.clone(),
        "status.podIP" | "status.hostIP" | "status.podIPs" | "status.hostIPs" => pod.ip.clone(),
        "metadata.labels" => render_map(&pod.labels),
        "metadata.annotations" => render_map(&pod.annotations),
        _ => {
            return indexed("metadata.labels['", &pod.labels)
                .or_else(|| indexed("metadata.annotations['", &pod.annotations));
        }
    })
}

/// Labels or annotations in kubelet's downward-API file format.
pub(crate) fn render_map(map: &BTreeMap<String, String>) -> String {
    argoexec_template::Annotations::from(map.clone()).render()
}

/// Resolves a container's environment: `envFrom` first, then `env` in order (a later name
/// replaces an earlier one), each value `$(VAR)`-expanded against the variables before it.
pub(crate) fn resolve(
    container: &Container,
    pod: &PodInfo,
    keyed: KeyedDirs<'_>,
) -> Result<Vec<(String, String)>, Error> {
    let fail = |message: String| Error::Container {
        container: container.name.clone(),
        message,
    };
    let mut env: Vec<(String, String)> = Vec::new();
    let set = |env: &mut Vec<(String, String)>, name: String, value: String| match env
        .iter_mut()
        .find(|(n, _)| *n == name)
    {
        Some(slot) => slot.1 = value,
        None => env.push((name, value)),
    };
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.as_deref().unwrap_or("");
        let (kind, name, optional) = match (&from.secret_ref, &from.config_map_ref) {
            (Some(s), _) => (Keyed::Secret, s.name.as_str(), s.optional.unwrap_or(false)),
            (None, Some(c)) => (
                Keyed::ConfigMap,
                c.name.as_str(),
                c.optional.unwrap_or(false),
            ),
            (None, None) => continue,
        };
        let Some(dir) = keyed.dir(kind, name, optional).map_err(fail)? else {
            continue;
        };
        let mut keys: Vec<_> = std::fs::read_dir(&dir)
            .map_err(Error::io("list", &dir))?
            .filter_map(Result::ok)
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        keys.sort();
        for key in keys {
            if let Some(value) = keyed.value(kind, name, &key, optional).map_err(fail)? {
                set(&mut env, format!("{prefix}{key}"), value);
            }
        }
    }
    for var in container.env.iter().flatten() {
        if let Some(value) = env_value(var, container, pod, keyed, &env).map_err(fail)? {
            set(&mut env, var.name.clone(), value);
        }
    }
    Ok(env)
}

fn env_value(
    var: &EnvVar,
    container: &Container,
    pod: &PodInfo,
    keyed: KeyedDirs<'_>,
    earlier: &[(String, String)],
) -> Result<Option<String>, String> {
    let Some(from) = &var.value_from else {
        let value = var.value.as_deref().unwrap_or("");
        return Ok(Some(expand(value, |name| lookup(earlier, name))));
    };
    let what = |detail: String| format!("environment variable {}: {detail}", var.name);
    if let Some(field) = &from.field_ref {
        return field_value(pod, &field.field_path)
            .map(Some)
            .ok_or_else(|| what(format!("unsupported fieldPath {:?}", field.field_path)));
    }
    if let Some(s) = &from.secret_key_ref {
        return keyed
            .value(Keyed::Secret, &s.name, &s.key, s.optional.unwrap_or(false))
            .map_err(what);
    }
    if let Some(c) = &from.config_map_key_ref {
        return keyed
            .value(
                Keyed::ConfigMap,
                &c.name,
                &c.key,
                c.optional.unwrap_or(false),
            )
            .map_err(what);
    }
    if let Some(r) = &from.resource_field_ref {
        let divisor = r.divisor.as_ref().map_or("1", |q| q.0.as_str());
        return resource_value(container.resources.as_ref(), &r.resource, divisor)
            .map(Some)
            .ok_or_else(|| {
                what(format!(
                    "unsupported resourceFieldRef {:?} / {divisor:?}",
                    r.resource
                ))
            });
    }
    Err(what("unsupported valueFrom".into()))
}

fn lookup(env: &[(String, String)], name: &str) -> Option<String> {
    env.iter()
        .rev()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// `limits.cpu`, `requests.memory`, ...: the container's value, else this machine's (as kubelet
/// gives node allocatable for an unset limit), divided by the divisor and rounded up.
fn resource_value(
    resources: Option<&ResourceRequirements>,
    resource: &str,
    divisor: &str,
) -> Option<String> {
    let (table, name) = resource.split_once('.')?;
    let set = resources.and_then(|r| match table {
        "limits" => r.limits.as_ref(),
        "requests" => r.requests.as_ref(),
        _ => None,
    });
    let amount = match set.and_then(|m| m.get(name)) {
        Some(q) => parse_quantity(&q.0)?,
        None => match name {
            "cpu" => std::thread::available_parallelism().ok()?.get() as f64,
            "memory" => machine_memory()?,
            _ => return None,
        },
    };
    let divisor = parse_quantity(divisor)?;
    if divisor <= 0.0 {
        return None;
    }
    Some(format!("{}", (amount / divisor).ceil() as u64))
}

fn machine_memory() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// A Kubernetes quantity (`500m`, `2`, `128Mi`, `1G`) as a number.
fn parse_quantity(text: &str) -> Option<f64> {
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some(number * factor)
}

/// Kubernetes' expansion of `$(VAR)` references: a defined variable is replaced, an undefined one
/// is kept as written, `$$` is a literal `$`, and any other `$` stays.
pub(crate) fn expand(input: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let Some(next) = after.chars().next() else {
            // A trailing `$` is kept.
            out.push('$');
            rest = after;
            break;
        };
        match next {
            '$' => {
                out.push('$');
                rest = &after[1..];
            }
            '(' => match after.find(')') {
                Some(close) => {
                    let name = &after[1..close];
                    match lookup(name) {
                        Some(value) => out.push_str(&value),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &after[close + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = &after[1..];
                }
            },
            other => {
                out.push('$');
                out.push(other);
                rest = &after[other.len_utf8()..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_as_kubernetes_does() {
        for (input, want) in [
            ("$(A)", "alpha"),
            ("x$(A)y$(A)", "xalphayalpha"),
            ("$(B)", "$(B)"),
            ("$$(A)", "$(A)"),
            ("$$$(A)", "$alpha"),
            ("$(EMPTY)!", "!"),
            ("$A", "$A"),
            ("cost: 5$", "cost: 5$"),
            ("$(A", "$(A"),
            ("$é$(A)", "$éalpha"),
            ("plain", "plain"),
        ] {
            assert_eq!(expand(input, vars), want, "{input}");
        }
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("128Mi"), Some(134_217_728.0));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("2x"), None);
        let mut limits = BTreeMap::new();
        limits.insert(
            "cpu".to_owned(),
            k8s_openapi::apimachinery::pkg::api::resource::Quantity("1500m".into()),
        );
        let r = ResourceRequirements {
            limits: Some(limits),
            ..Default::default()
        };
        assert_eq!(
            resource_value(Some(&r), "limits.cpu", "1").as_deref(),
            Some("2")
        );
        assert_eq!(
            resource_value(Some(&r), "limits.cpu", "1m").as_deref(),
            Some("1500")
        );
    }
}
