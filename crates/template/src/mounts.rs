//! The main container's volume mounts, and which of them an artifact or output path falls
//! under (contract §3): init unpacks such an input through the wait container's mirror of the
//! volume, wait reads such an output there, and the emissary leaves it to wait.

use k8s_openapi::api::core::v1::VolumeMount;

use crate::model::Template;

/// The volume mounts of the template's main container(s): the container's or the script's,
/// else the container set's.
pub fn volume_mounts(template: &Template) -> Vec<&VolumeMount> {
    let container = template
        .container
        .as_deref()
        .or_else(|| template.script.as_ref().map(|s| &*s.container));
    if let Some(c) = container {
        return c.volume_mounts.iter().flatten().collect();
    }
    template
        .container_set
        .as_ref()
        .and_then(|s| s.volume_mounts.as_deref())
        .unwrap_or_default()
        .iter()
        .map(|m| &**m)
        .collect()
}

/// The volume mount a path falls under: it equals the mount path or starts with it and `/`;
/// the longest mount path wins (contract §3).
pub fn overlapping_mount<'a>(template: &'a Template, path: &str) -> Option<&'a VolumeMount> {
    volume_mounts(template)
        .into_iter()
        .filter(|m| {
            let mount = m.mount_path.trim_end_matches('/');
            path == mount || path.strip_prefix(mount).is_some_and(|r| r.starts_with('/'))
        })
        .max_by_key(|m| m.mount_path.trim_end_matches('/').len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_mount_wins() {
        let template: Template = serde_json::from_value(serde_json::json!({
            "name": "t",
            "container": {"image": "x", "volumeMounts": [
                {"name": "a", "mountPath": "/work"},
                {"name": "b", "mountPath": "/work/deep/"},
            ]}
        }))
        .unwrap();
        let name = |p| overlapping_mount(&template, p).map(|m| m.name.as_str());
        assert_eq!(name("/work"), Some("a"));
        assert_eq!(name("/work/x"), Some("a"));
        assert_eq!(name("/work/deep/x"), Some("b"));
        assert_eq!(name("/workshop"), None);
        assert_eq!(name("/tmp"), None);
    }
}
