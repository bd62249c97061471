//! Staging `main`'s outputs for the wait container, which cannot see this container's
//! filesystem: each output parameter file is copied to `outputs/parameters/<path>`, each output
//! artifact path is packed as tar.gz (streamed straight into the file) to
//! `outputs/artifacts/<path>.tgz`. Paths under a volume mount are skipped: wait reads those
//! through `/mainctrfs`. Missing paths are skipped: the output may be optional, and wait decides.

use std::fs;
use std::io::{self, BufWriter, Write as _};
use std::path::{Path, PathBuf};

use argoexec_archive::PackFormat;
use argoexec_runtime::{staged_artifact, staged_parameter};
use argoexec_template::{Template, overlapping_mount};

use crate::Error;

/// What the emissary left for wait.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Staged {
    /// Files written under `outputs/`.
    pub(crate) files: Vec<PathBuf>,
}

/// Stages every output parameter (`valueFrom.path`) and artifact (`path`) of `template`, with
/// paths read under `root` (`/` in a pod).
pub(crate) fn stage(
    template: &Template,
    root: &Path,
    var_run_argo: &Path,
) -> Result<Staged, Error> {
    let mut staged = Staged::default();
    let outputs = template.outputs.as_ref();
    let parameters = outputs
        .and_then(|o| o.parameters.as_deref())
        .unwrap_or_default();
    for path in parameters
        .iter()
        .filter_map(|p| p.value_from.as_ref()?.path.as_deref())
        .filter(|p| !p.is_empty())
    {
        if skipped(template, root, path, "parameter") {
            continue;
        }
        let dst = staged_parameter(var_run_argo, path);
        tracing::info!(src = path, dst = %dst.display(), "saving parameter");
        copy_file(&inside(root, path), &dst).map_err(|source| output(path, source))?;
        staged.files.push(dst);
    }
    for path in template
        .output_artifacts()
        .iter()
        .filter_map(|a| a.path.as_deref())
        .filter(|p| !p.is_empty())
    {
        if skipped(template, root, path, "artifact") {
            continue;
        }
        let dst = staged_artifact(var_run_argo, path);
        tracing::info!(src = path, dst = %dst.display(), "saving artifact");
        pack(&inside(root, path), &dst).map_err(|source| output(path, source))?;
        staged.files.push(dst);
    }
    Ok(staged)
}

/// Whether an output is left to wait: under a volume mount, or missing.
fn skipped(template: &Template, root: &Path, path: &str, what: &str) -> bool {
    if overlapping_mount(template, path).is_some() {
        tracing::info!(src = path, "no need to save {what} - on overlapping volume");
        return true;
    }
    if fs::metadata(inside(root, path)).is_err() {
        tracing::warn!(src = path, "cannot save {what}, does not exist");
        return true;
    }
    false
}

fn inside(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn output(path: &str, source: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Output {
        path: PathBuf::from(path),
        source: Box::new(source),
    }
}

/// Creates the parent directories of `dst` (mode 0755, as Argo) and the file itself.
fn create(dst: &Path) -> io::Result<fs::File> {
    if let Some(parent) = dst.parent() {
        fs::create_dir_all(parent)?;
    }
    fs::File::create(dst)
}

fn copy_file(src: &Path, dst: &Path) -> io::Result<()> {
    let mut from = fs::File::open(src)?;
    let mut to = create(dst)?;
    io::copy(&mut from, &mut to)?;
    to.sync_data()
}

fn pack(src: &Path, dst: &Path) -> Result<(), PackFailed> {
    let file = create(dst)?;
    let mut out = BufWriter::with_capacity(256 * 1024, file);
    argoexec_archive::pack_to(
        src,
        &PackFormat::TarGz {
            level: PackFormat::DEFAULT_LEVEL,
        },
        &mut out,
    )?;
    out.flush()?;
    out.into_inner()
        .map_err(io::IntoInnerError::into_error)?
        .sync_data()?;
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum PackFailed {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Pack(#[from] argoexec_archive::Error),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn stages_in_argos_layout() {
        let root = tempfile::tempdir().unwrap();
        let var_run_argo = root.path().join("var/run/argo");
        fs::create_dir_all(root.path().join("tmp/dir/sub")).unwrap();
        fs::write(root.path().join("tmp/param.txt"), "hello\n").unwrap();
        fs::write(root.path().join("tmp/dir/sub/a"), "a").unwrap();
        fs::create_dir_all(root.path().join("work")).unwrap();
        fs::write(root.path().join("work/on-volume"), "v").unwrap();
        let template: Template = serde_json::from_value(serde_json::json!({
            "name": "t",
            "container": {"image": "x", "volumeMounts": [{"name": "w", "mountPath": "/work"}]},
            "outputs": {
                "parameters": [
                    {"name": "p", "valueFrom": {"path": "/tmp/param.txt"}},
                    {"name": "missing", "valueFrom": {"path": "/tmp/none"}},
                    {"name": "vol", "valueFrom": {"path": "/work/on-volume"}},
                    {"name": "lit", "value": "x"}
                ],
                "artifacts": [
                    {"name": "d", "path": "/tmp/dir/"},
                    {"name": "gone", "path": "/tmp/gone", "optional": true}
                ]
            }
        }))
        .unwrap();
        let staged = stage(&template, root.path(), &var_run_argo).unwrap();
        let param = var_run_argo.join("outputs/parameters/tmp/param.txt");
        let archive = var_run_argo.join("outputs/artifacts/tmp/dir.tgz");
        assert_eq!(staged.files, [param.clone(), archive.clone()]);
        assert_eq!(fs::read_to_string(param).unwrap(), "hello\n");
        // A tar.gz whose one top-level entry is the directory's base name.
        let tar = flate2::read::GzDecoder::new(fs::File::open(archive).unwrap());
        let mut names: Vec<String> = tar::Archive::new(tar)
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        names.sort();
        assert_eq!(names, ["dir/", "dir/sub/", "dir/sub/a"]);
        assert!(!var_run_argo.join("outputs/parameters/work").exists());
    }
}
