//! The pod layout the executor relies on (contract §3), under an injectable root, and Argo's
//! check of an artifact path against `..` traversal. Which volume mount a path falls under is
//! `argoexec_template::overlapping_mount`, shared with the emissary.

use std::path::{Path, PathBuf};

/// Where the executor's files live in the pod. `PodPaths::default()` is the real pod; tests and
/// the local runner use [`PodPaths::under`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodPaths {
    root: PathBuf,
}

impl Default for PodPaths {
    fn default() -> Self {
        Self::under("/")
    }
}

impl PodPaths {
    /// The layout under `root` instead of `/`.
    pub fn under(root: impl AsRef<Path>) -> Self {
        Self {
            root: root.as_ref().to_owned(),
        }
    }

    /// An absolute pod path, under the root.
    pub fn at(&self, pod_path: &str) -> PathBuf {
        self.root.join(pod_path.trim_start_matches('/'))
    }

    /// `/argo/staging/script`: the script source.
    pub fn script(&self) -> PathBuf {
        self.at("/argo/staging/script")
    }

    /// `/tmp/manifest.yaml`: the resource manifest.
    pub fn manifest(&self) -> PathBuf {
        self.at("/tmp/manifest.yaml")
    }

    /// `/var/run/argo`: the emptyDir shared by every container.
    pub fn var_run_argo(&self) -> PathBuf {
        self.at("/var/run/argo")
    }

    /// `/argo/inputs/artifacts`: input artifacts that do not overlap a user volume.
    pub fn input_artifacts(&self) -> PathBuf {
        self.at("/argo/inputs/artifacts")
    }

    /// `/mainctrfs/<path>`: a path of the main container, seen through its mirrored volumes.
    pub fn main_fs(&self, path: &str) -> PathBuf {
        self.at("/mainctrfs").join(path.trim_start_matches('/'))
    }
}

/// Why an artifact path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// The artifact has no path.
    #[error("Artifact '{0}' did not specify a path")]
    Missing(String),
    /// The path uses `..` to leave the directory before it.
    #[error(
        "Artifact '{0}' attempted to use a path containing '..'. Directory traversal is not permitted"
    )]
    Traversal(String),
}

/// Cleans an artifact path as Argo does: lexically (`filepath.Clean`), refusing a `..` that
/// climbs out of the directory written before the first `/../` (or a trailing `/..`).
pub fn clean_artifact_path(name: &str, path: Option<&str>) -> Result<String, PathError> {
    let path = path
        .filter(|p| !p.is_empty())
        .ok_or_else(|| PathError::Missing(name.to_owned()))?;
    let safe_dir = match path.find("/../") {
        Some(i) => Some(&path[..i]),
        None => path.strip_suffix("/.."),
    };
    let cleaned = clean(path);
    if let Some(safe) = safe_dir.filter(|s| !s.is_empty()) {
        let prefix = format!("{safe}/");
        if !cleaned.starts_with(&prefix) || cleaned.len() <= prefix.len() {
            return Err(PathError::Traversal(name.to_owned()));
        }
    }
    Ok(cleaned)
}

/// Go's `filepath.Clean` for `/`-separated paths.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_owned(),
        (false, false) => joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_like_go() {
        assert_eq!(clean("/a/b/../c/./d/"), "/a/c/d");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean("a/../../b"), "../b");
        assert_eq!(clean(""), ".");
    }

    #[test]
    fn refuses_traversal_out_of_the_safe_dir() {
        let ok = clean_artifact_path("a", Some("/tmp/./safe//y/")).unwrap();
        assert_eq!(ok, "/tmp/safe/y");
        // As in Argo, a `..` may not climb out of the directory written before it.
        assert_eq!(
            clean_artifact_path("a", Some("/tmp/safe/x/../y")),
            Err(PathError::Traversal("a".into()))
        );
        assert_eq!(
            clean_artifact_path("a", Some("/tmp/safe/../../etc")),
            Err(PathError::Traversal("a".into()))
        );
        assert_eq!(
            clean_artifact_path("a", Some("/tmp/safe/..")),
            Err(PathError::Traversal("a".into()))
        );
        assert_eq!(
            clean_artifact_path("a", None).unwrap_err().to_string(),
            "Artifact 'a' did not specify a path"
        );
    }
}
