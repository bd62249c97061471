//! The pod's volumes as directories of this machine, and each container's bind mounts.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, KeyToPath, Pod, Volume};

use crate::Error;
use crate::env::{Keyed, KeyedDirs, PodInfo, expand, field_value};
use crate::shim::BindMount;

/// Makes every volume of the pod: name -> directory (or file, for a hostPath file).
pub(crate) fn prepare(
    pod: &Pod,
    info: &PodInfo,
    keyed: KeyedDirs<'_>,
    under: &Path,
) -> Result<BTreeMap<String, PathBuf>, Error> {
    let mut out = BTreeMap::new();
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let path =
            prepare_one(volume, info, keyed, &under.join(&volume.name)).map_err(|message| {
                Error::Volume {
                    volume: volume.name.clone(),
                    message,
                }
            })?;
        out.insert(volume.name.clone(), path);
    }
    Ok(out)
}

fn prepare_one(
    volume: &Volume,
    info: &PodInfo,
    keyed: KeyedDirs<'_>,
    dir: &Path,
) -> Result<PathBuf, String> {
    let mkdir = |dir: &Path| {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))
    };
    if volume.empty_dir.is_some() {
        mkdir(dir)?;
        // kubelet makes emptyDir world-writable, so any container user can write.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
            .map_err(|e| format!("chmod {}: {e}", dir.display()))?;
        return Ok(dir.to_owned());
    }
    if let Some(api) = &volume.downward_api {
        mkdir(dir)?;
        for item in api.items.iter().flatten() {
            let field = item.field_ref.as_ref().ok_or_else(|| {
                format!("item {:?}: only fieldRef items are supported", item.path)
            })?;
            let value = field_value(info, &field.field_path).ok_or_else(|| {
                format!(
                    "item {:?}: unsupported fieldPath {:?}",
                    item.path, field.field_path
                )
            })?;
            write_item(dir, &item.path, value.as_bytes())?;
        }
        return Ok(dir.to_owned());
    }
    if let Some(secret) = &volume.secret {
        let name = secret.secret_name.as_deref().unwrap_or_default();
        return keyed_volume(
            keyed,
            Keyed::Secret,
            name,
            secret.optional,
            secret.items.as_deref(),
            dir,
        );
    }
    if let Some(cm) = &volume.config_map {
        return keyed_volume(
            keyed,
            Keyed::ConfigMap,
            &cm.name,
            cm.optional,
            cm.items.as_deref(),
            dir,
        );
    }
    if let Some(host) = &volume.host_path {
        let path = PathBuf::from(&host.path);
        match host.type_.as_deref().unwrap_or("") {
            "DirectoryOrCreate" => mkdir(&path)?,
            "FileOrCreate" if !path.exists() => {
                if let Some(parent) = path.parent() {
                    mkdir(parent)?;
                }
                std::fs::write(&path, b"")
                    .map_err(|e| format!("create {}: {e}", path.display()))?;
            }
            _ if !path.exists() => {
                return Err(format!("hostPath {} does not exist", path.display()));
            }
            _ => {}
        }
        return Ok(path);
    }
    Err(
        "unsupported volume type: the local runner provides emptyDir, downwardAPI, secret, \
         configMap and hostPath volumes"
            .into(),
    )
}

/// A Secret or ConfigMap volume: its directory as given, or the selected keys copied.
fn keyed_volume(
    keyed: KeyedDirs<'_>,
    kind: Keyed,
    name: &str,
    optional: Option<bool>,
    items: Option<&[KeyToPath]>,
    dir: &Path,
) -> Result<PathBuf, String> {
    let optional = optional.unwrap_or(false);
    let source = keyed.dir(kind, name, optional)?;
    match (source, items) {
        (Some(source), None) => Ok(source),
        (None, _) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
            Ok(dir.to_owned())
        }
        (Some(_), Some(items)) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
            for item in items {
                if let Some(value) = keyed.value(kind, name, &item.key, optional)? {
                    write_item(dir, &item.path, value.as_bytes())?;
                }
            }
            Ok(dir.to_owned())
        }
    }
}

fn write_item(dir: &Path, relative: &str, bytes: &[u8]) -> Result<(), String> {
    if relative.split('/').any(|c| c == "..") || relative.starts_with('/') {
        return Err(format!(
            "item path {relative:?} must be relative, without '..'"
        ));
    }
    let path = dir.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("create {}: {e}", parent.display()))?;
    }
    std::fs::write(&path, bytes).map_err(|e| format!("write {}: {e}", path.display()))
}

/// The bind mounts of one container, parents before children (as containerd sorts them). A
/// missing subPath is created as a directory, as kubelet does when the container starts, only
/// with `create_sub_paths`: a backend that plans every container before the pod starts leaves
/// that to the container's start (the shim), or an init container would find it already there.
pub(crate) fn mounts(
    container: &Container,
    volumes: &BTreeMap<String, PathBuf>,
    env: &[(String, String)],
    create_sub_paths: bool,
) -> Result<Vec<BindMount>, Error> {
    let mut out = Vec::new();
    for m in container.volume_mounts.iter().flatten() {
        let fail = |message: String| Error::Container {
            container: container.name.clone(),
            message: format!("volumeMount {}: {message}", m.mount_path),
        };
        let volume = volumes
            .get(&m.name)
            .ok_or_else(|| fail(format!("no volume named {:?} in the pod", m.name)))?;
        let sub = match (&m.sub_path, &m.sub_path_expr) {
            (Some(p), _) if !p.is_empty() => p.clone(),
            (_, Some(e)) if !e.is_empty() => expand(e, |name| {
                env.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone())
            }),
            _ => String::new(),
        };
        if sub.starts_with('/') || sub.split('/').any(|c| c == "..") {
            return Err(fail(format!(
                "subPath {sub:?} must be relative, without '..'"
            )));
        }
        let source = if sub.is_empty() {
            volume.clone()
        } else {
            volume.join(&sub)
        };
        if create_sub_paths && !source.exists() {
            // kubelet creates a missing subPath as a directory.
            std::fs::create_dir_all(&source).map_err(Error::io("create subPath", &source))?;
        }
        out.push(BindMount {
            source,
            target: m.mount_path.clone(),
            read_only: m.read_only.unwrap_or(false),
        });
    }
    sort_mounts(&mut out);
    Ok(out)
}

/// Parents before children: by the number of path components, stable otherwise.
pub(crate) fn sort_mounts(mounts: &mut [BindMount]) {
    mounts.sort_by_key(|m| Path::new(&m.target).components().count());
}
