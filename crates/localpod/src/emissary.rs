//! `argoexec run --runtime emissary`: the pod rewritten as Argo's controller writes it for the
//! emissary executor (`workflow/controller/workflowpod.go`): every container but `wait` runs
//! `/var/run/argo/argoexec emissary -- <its command>`, every container mounts the `var-run-argo`
//! emptyDir at `/var/run/argo`, an init container (which copies argoexec and the template there)
//! always runs, and `ARGO_CONTAINER_RUNTIME_EXECUTOR` says `emissary`.

use argoexec_pod::StepPod;
use argoexec_template::Protocol;
use k8s_openapi::api::core::v1::{Container, EmptyDirVolumeSource, EnvVar, Volume, VolumeMount};

use crate::Error;

/// Where the emissary binary and its files live in every container.
pub(crate) const VAR_RUN_ARGO: &str = "/var/run/argo";
/// The emissary binary, as the controller names it in the rewritten commands.
pub(crate) const EMISSARY_EXE: &str = "/var/run/argo/argoexec";
const VOLUME: &str = "var-run-argo";
const RUNTIME_ENV: &str = argoexec_config::env::ARGO_CONTAINER_RUNTIME_EXECUTOR;

/// Rewrites `step`'s pod for the emissary runtime, as Argo's controller would have made it.
pub fn rewrite(step: &mut StepPod) -> Result<(), Error> {
    if step.protocol == Protocol::V2 {
        return Err(Error::Container {
            container: "wait".into(),
            message: "the emissary runtime needs a v3 or v4 pod (this one is v2)".into(),
        });
    }
    let Some(spec) = step.pod.spec.as_mut() else {
        return Ok(());
    };
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    if !volumes.iter().any(|v| v.name == VOLUME) {
        volumes.push(Volume {
            name: VOLUME.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
    }
    let inits = spec.init_containers.get_or_insert_with(Vec::new);
    if inits.iter().all(|c| c.name != "init") {
        let wait = spec
            .containers
            .iter()
            .find(|c| c.name == "wait")
            .ok_or_else(|| Error::Container {
                container: "wait".into(),
                message: "the pod has no wait container to make the init container from".into(),
            })?;
        inits.insert(0, init_from(wait));
    }
    for c in inits.iter_mut() {
        prepare(c);
    }
    for c in &mut spec.containers {
        prepare(c);
        if c.name == "wait" || is_wrapped(c) {
            continue;
        }
        let command = c.command.get_or_insert_with(Vec::new);
        if command.is_empty() {
            return Err(Error::Container {
                container: c.name.clone(),
                message: "does not have the command specified: when using the emissary executor \
                          you must either explicitly specify the command, or list the image's \
                          command in the index"
                    .into(),
            });
        }
        command.splice(
            0..0,
            [EMISSARY_EXE.to_owned(), "emissary".into(), "--".into()],
        );
    }
    Ok(())
}

/// Whether the container already runs under the emissary.
pub(crate) fn is_wrapped(c: &Container) -> bool {
    let command = c.command.as_deref().unwrap_or_default();
    command.len() >= 2 && command[0] == EMISSARY_EXE && command[1] == "emissary"
}

/// The runtime variable set to `emissary` and `/var/run/argo` mounted.
fn prepare(c: &mut Container) {
    let env = c.env.get_or_insert_with(Vec::new);
    env.retain(|e| e.name != RUNTIME_ENV);
    env.push(EnvVar {
        name: RUNTIME_ENV.into(),
        value: Some("emissary".into()),
        value_from: None,
    });
    let mounts = c.volume_mounts.get_or_insert_with(Vec::new);
    if !mounts.iter().any(|m| m.mount_path == VAR_RUN_ARGO) {
        mounts.push(VolumeMount {
            name: VOLUME.into(),
            mount_path: VAR_RUN_ARGO.into(),
            ..VolumeMount::default()
        });
    }
}

/// The init container Argo adds to every emissary pod, made from the wait container.
fn init_from(wait: &Container) -> Container {
    let mut init = wait.clone();
    init.name = "init".into();
    init.command = Some(
        ["argoexec", "init", "--loglevel", "info"]
            .map(String::from)
            .to_vec(),
    );
    init.args = None;
    let env = init.env.get_or_insert_with(Vec::new);
    env.retain(|e| e.name != argoexec_config::env::ARGO_CONTAINER_NAME);
    env.push(EnvVar {
        name: argoexec_config::env::ARGO_CONTAINER_NAME.into(),
        value: Some("init".into()),
        value_from: None,
    });
    init
}
