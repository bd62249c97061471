//! The settings of the two pods that run no step: the artifact GC pod (`argoexec artifact
//! delete`) and the agent pod of HTTP and plugin templates (`argoexec agent init|main`).

use std::ffi::OsString;
use std::time::Duration;

use crate::env;
use crate::error::ConfigError;
use crate::parse::{Reader, positive};

/// `argoexec artifact delete`'s settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactGcSettings {
    /// `ARGO_ARTIFACT_POD_NAME`: the label value that selects this pod's tasks; `None` when
    /// unset, in which case Argo's executor does nothing.
    pub pod_label: Option<String>,
    /// `ARGO_ARTIFACT_PLUGIN_NAMES`, split at commas, blanks dropped.
    pub plugin_names: Vec<String>,
    /// `ARGOEXEC_ARTIFACT_GC_PARALLELISM`: artifacts deleted at once.
    pub parallelism: usize,
}

impl ArtifactGcSettings {
    /// Reads the settings through `lookup`, which answers a variable's value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self, ConfigError> {
        let r = Reader::new(lookup);
        let parallelism = r
            .parsed(
                env::ARGOEXEC_ARTIFACT_GC_PARALLELISM,
                "a whole number, 1 or more",
                positive,
            )?
            .map_or(8, |n| usize::try_from(n).unwrap_or(usize::MAX));
        Ok(Self {
            pod_label: r
                .string(env::ARGO_ARTIFACT_POD_NAME)?
                .filter(|s| !s.is_empty()),
            plugin_names: r
                .string(env::ARGO_ARTIFACT_PLUGIN_NAMES)?
                .map(|names| split_names(&names))
                .unwrap_or_default(),
            parallelism,
        })
    }

    /// Reads the settings from the process environment.
    pub fn from_process_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|var| std::env::var_os(var))
    }
}

/// `argoexec agent init|main`'s settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSettings {
    /// `ARGO_PLUGIN_NAMES`: the executor plugins' names.
    pub plugin_names: Vec<String>,
    /// `ARGO_PLUGIN_ADDRESSES`: their addresses, in the same order.
    pub plugin_addresses: Vec<String>,
    /// `ARGO_AGENT_TASK_WORKERS`: tasks run at once.
    pub task_workers: usize,
    /// `ARGO_AGENT_PATCH_RATE`: the least time between two patches of the task set.
    pub patch_rate: Duration,
}

impl AgentSettings {
    /// Reads the settings through `lookup`. Unlike Argo's agent, which exits when the plugin
    /// lists are not JSON arrays of text, an unset list is empty.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self, ConfigError> {
        let r = Reader::new(lookup);
        let list = |var| {
            r.parsed(
                var,
                "a JSON array of strings such as [\"a\", \"b\"]",
                parse_string_array,
            )
            .map(Option::unwrap_or_default)
        };
        let plugin_names = list(env::ARGO_PLUGIN_NAMES)?;
        let plugin_addresses = list(env::ARGO_PLUGIN_ADDRESSES)?;
        let task_workers = r
            .parsed(
                env::ARGO_AGENT_TASK_WORKERS,
                "a whole number, 1 or more",
                positive,
            )?
            .map_or(16, |n| usize::try_from(n).unwrap_or(usize::MAX));
        let patch_rate = r
            .duration(env::ARGO_AGENT_PATCH_RATE)?
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(10));
        Ok(Self {
            plugin_names,
            plugin_addresses,
            task_workers,
            patch_rate,
        })
    }

    /// Reads the settings from the process environment.
    pub fn from_process_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|var| std::env::var_os(var))
    }
}

/// Names separated by commas, as Argo's controller joins them; blanks dropped.
fn split_names(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A JSON array of strings; empty text and `null` are an empty list.
fn parse_string_array(text: &str) -> Option<Vec<String>> {
    if text.is_empty() {
        return Some(Vec::new());
    }
    serde_json::from_str::<Option<Vec<String>>>(text)
        .ok()
        .map(Option::unwrap_or_default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let map: HashMap<String, OsString> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), OsString::from(*v)))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn gc_defaults_and_values() {
        let s = ArtifactGcSettings::from_lookup(lookup(&[])).unwrap();
        assert_eq!(s.pod_label, None);
        assert!(s.plugin_names.is_empty());
        assert_eq!(s.parallelism, 8);
        let s = ArtifactGcSettings::from_lookup(lookup(&[
            ("ARGO_ARTIFACT_POD_NAME", "wf-artgc-1"),
            ("ARGO_ARTIFACT_PLUGIN_NAMES", "a-plugin, b ,"),
            ("ARGOEXEC_ARTIFACT_GC_PARALLELISM", "3"),
        ]))
        .unwrap();
        assert_eq!(s.pod_label.as_deref(), Some("wf-artgc-1"));
        assert_eq!(s.plugin_names, ["a-plugin", "b"]);
        assert_eq!(s.parallelism, 3);
        let err =
            ArtifactGcSettings::from_lookup(lookup(&[("ARGOEXEC_ARTIFACT_GC_PARALLELISM", "0")]))
                .unwrap_err();
        assert!(err.to_string().contains("ARGOEXEC_ARTIFACT_GC_PARALLELISM"));
    }

    #[test]
    fn agent_defaults_and_values() {
        let s = AgentSettings::from_lookup(lookup(&[])).unwrap();
        assert_eq!(s.task_workers, 16);
        assert_eq!(s.patch_rate, Duration::from_secs(10));
        assert!(s.plugin_names.is_empty());
        let s = AgentSettings::from_lookup(lookup(&[
            ("ARGO_PLUGIN_NAMES", r#"["hello", "w\"x"]"#),
            ("ARGO_PLUGIN_ADDRESSES", r#"["http://localhost:4355"]"#),
            ("ARGO_AGENT_TASK_WORKERS", "2"),
            ("ARGO_AGENT_PATCH_RATE", "500ms"),
        ]))
        .unwrap();
        assert_eq!(s.plugin_names, ["hello", "w\"x"]);
        assert_eq!(s.plugin_addresses, ["http://localhost:4355"]);
        assert_eq!(s.task_workers, 2);
        assert_eq!(s.patch_rate, Duration::from_millis(500));
    }

    #[test]
    fn plugin_lists_are_json_arrays_of_strings() {
        assert_eq!(parse_string_array("[]"), Some(vec![]));
        assert_eq!(parse_string_array("null"), Some(vec![]));
        assert_eq!(
            parse_string_array(r#"[ "a" ,"b\\c" ]"#),
            Some(vec!["a".into(), "b\\c".into()])
        );
        assert_eq!(parse_string_array("[a]"), None);
        assert_eq!(parse_string_array(r#"["a""#), None);
        assert_eq!(parse_string_array(r#"["a" "b"]"#), None);
        let err = AgentSettings::from_lookup(lookup(&[("ARGO_PLUGIN_NAMES", "x")])).unwrap_err();
        assert!(err.to_string().contains("ARGO_PLUGIN_NAMES"), "{err}");
    }
}
