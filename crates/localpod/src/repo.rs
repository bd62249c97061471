//! `--artifact-repo`: an Argo `ArtifactRepository` turned into the template's `archiveLocation`,
//! as the controller does when it creates a pod.

use std::path::Path;

use argoexec_template::ArtifactLocation;
use k8s_openapi::api::core::v1::{KeyToPath, Pod, SecretVolumeSource, Volume, VolumeMount};
use serde_json::{Map, Value};

use crate::Error;

/// The controller's default key pattern (`common.DefaultArchivePattern`).
const DEFAULT_PATTERN: &str = "{{workflow.name}}/{{pod.name}}";

/// Names substituted in key patterns.
pub(crate) struct Names<'a> {
    pub(crate) workflow: &'a str,
    pub(crate) namespace: &'a str,
    pub(crate) pod: &'a str,
}

/// Reads an ArtifactRepository (YAML or JSON; also accepted wrapped in `artifactRepository:` as in
/// the controller's ConfigMap) and returns the archive location for this pod.
pub(crate) fn load(path: &Path, names: &Names<'_>) -> Result<ArtifactLocation, Error> {
    let fail = |message: String| Error::ArtifactRepository {
        path: path.to_owned(),
        message,
    };
    let text =
        std::fs::read_to_string(path).map_err(Error::io("read artifact repository", path))?;
    let mut repo: Value = serde_yaml_ng::from_str(&text).map_err(|e| fail(e.to_string()))?;
    if let Some(inner) = repo.get_mut("artifactRepository") {
        repo = inner.take();
    }
    to_location(repo, names).map_err(fail)
}

/// ArtifactRepository -> ArtifactLocation (Argo's `ArtifactRepository.ToArtifactLocation`), the
/// key pattern substituted.
pub(crate) fn to_location(repo: Value, names: &Names<'_>) -> Result<ArtifactLocation, String> {
    let Value::Object(mut repo) = repo else {
        return Err("expected a mapping such as `s3: {bucket: ..., endpoint: ...}`".into());
    };
    let mut location = Map::new();
    if let Some(logs) = repo.remove("archiveLogs") {
        location.insert("archiveLogs".into(), logs);
    }
    // (kind, field of the location that holds the key, repository fields that make the key)
    let kinds: [(&str, &str); 6] = [
        ("s3", "key"),
        ("gcs", "key"),
        ("oss", "key"),
        ("azure", "blob"),
        ("artifactory", "url"),
        ("hdfs", "path"),
    ];
    let mut found = None;
    for (kind, key_field) in kinds {
        let Some(Value::Object(mut fields)) = repo.remove(kind) else {
            continue;
        };
        let take = |fields: &mut Map<String, Value>, name: &str| {
            fields
                .remove(name)
                .and_then(|v| v.as_str().map(str::to_owned))
                .filter(|s| !s.is_empty())
        };
        let format = take(&mut fields, "keyFormat")
            .or_else(|| take(&mut fields, "blobNameFormat"))
            .or_else(|| take(&mut fields, "pathFormat"));
        let prefix = take(&mut fields, "keyPrefix");
        let mut key = match (format, prefix) {
            (Some(format), _) => format,
            (None, Some(prefix)) => format!("{}/{DEFAULT_PATTERN}", prefix.trim_end_matches('/')),
            (None, None) => DEFAULT_PATTERN.to_owned(),
        };
        if kind == "artifactory" {
            let url = take(&mut fields, "repoURL").ok_or("artifactory needs repoURL")?;
            key = format!("{}/{key}", url.trim_end_matches('/'));
        }
        fields.insert(key_field.into(), Value::String(substitute(&key, names)));
        location.insert(kind.into(), Value::Object(fields));
        found = Some(kind);
        break;
    }
    if found.is_none() {
        return Err("no repository: expected one of s3, gcs, azure, oss, artifactory, hdfs".into());
    }
    serde_json::from_value(Value::Object(location)).map_err(|e| e.to_string())
}

fn substitute(pattern: &str, names: &Names<'_>) -> String {
    pattern
        .replace("{{workflow.name}}", names.workflow)
        .replace("{{workflow.namespace}}", names.namespace)
        .replace("{{pod.name}}", names.pod)
}

/// Where Argo's controller mounts an artifact location's Secrets in init and wait
/// (`common.SecretVolMountPath`), one directory per Secret.
const SECRET_MOUNT_DIR: &str = "/argo/secret";

/// The Secret keys an archive location names (`accessKeySecret`, `passwordSecret`, ...): every
/// `{name, key}` object under a field ending in `Secret`, as `(secret, key)`.
fn secret_keys(location: &Value, out: &mut Vec<(String, String)>) {
    let Value::Object(map) = location else {
        return;
    };
    for (field, value) in map {
        let name = value.get("name").and_then(Value::as_str);
        let key = value.get("key").and_then(Value::as_str);
        match (field.ends_with("Secret"), name, key) {
            (true, Some(name), Some(key)) if !name.is_empty() && !key.is_empty() => {
                if !out.iter().any(|(n, k)| n == name && k == key) {
                    out.push((name.to_owned(), key.to_owned()));
                }
            }
            _ => secret_keys(value, out),
        }
    }
}

/// Gives the pod the Secret volumes of `location`, mounted read-only at `/argo/secret/<secret>` in
/// init and wait, as the controller's `createSecretVolumesAndMounts` does for the archive location
/// it sets: an executor reads its credentials from those files. Volumes the pod already has are
/// kept as they are.
pub(crate) fn mount_location_secrets(pod: &mut Pod, location: &ArtifactLocation) {
    let mut keys = Vec::new();
    if let Ok(json) = serde_json::to_value(location) {
        secret_keys(&json, &mut keys);
    }
    let Some(spec) = pod.spec.as_mut() else {
        return;
    };
    let mut names: Vec<&str> = keys.iter().map(|(n, _)| n.as_str()).collect();
    names.dedup();
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    let mut added = Vec::new();
    for name in names {
        if volumes.iter().any(|v| v.name == name) {
            continue;
        }
        let items = keys
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, key)| KeyToPath {
                key: key.clone(),
                path: key.clone(),
                ..KeyToPath::default()
            })
            .collect();
        volumes.push(Volume {
            name: name.to_owned(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(name.to_owned()),
                items: Some(items),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        added.push(name.to_owned());
    }
    let executors = spec
        .init_containers
        .iter_mut()
        .flatten()
        .filter(|c| c.name == "init")
        .chain(spec.containers.iter_mut().filter(|c| c.name == "wait"));
    for c in executors {
        let mounts = c.volume_mounts.get_or_insert_with(Vec::new);
        for name in &added {
            mounts.push(VolumeMount {
                name: name.clone(),
                mount_path: format!("{SECRET_MOUNT_DIR}/{name}"),
                read_only: Some(true),
                ..VolumeMount::default()
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: Names<'static> = Names {
        workflow: "wf-1",
        namespace: "argo",
        pod: "wf-1-123",
    };

    #[test]
    fn s3_repository_becomes_the_archive_location() {
        let repo = serde_json::json!({
            "archiveLogs": true,
            "s3": {"bucket": "b", "endpoint": "127.0.0.1:9000", "insecure": true,
                   "accessKeySecret": {"name": "cred", "key": "ak"}, "keyPrefix": "runs/"}
        });
        let loc = to_location(repo, &NAMES).unwrap();
        let json = serde_json::to_value(&loc).unwrap();
        assert_eq!(json["archiveLogs"], true);
        assert_eq!(json["s3"]["key"], "runs/wf-1/wf-1-123");
        assert_eq!(json["s3"]["bucket"], "b");
        assert_eq!(json["s3"]["accessKeySecret"]["key"], "ak");
        assert!(json["s3"].get("keyPrefix").is_none());
    }

    #[test]
    fn key_formats_and_other_kinds() {
        let loc = to_location(
            serde_json::json!({"azure": {"container": "c", "blobNameFormat": "x/{{pod.name}}"}}),
            &NAMES,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&loc).unwrap()["azure"]["blob"],
            "x/wf-1-123"
        );
        let loc = to_location(
            serde_json::json!({"artifactory": {"repoURL": "http://h/r/"}}),
            &NAMES,
        )
        .unwrap();
        assert_eq!(
            serde_json::to_value(&loc).unwrap()["artifactory"]["url"],
            "http://h/r/wf-1/wf-1-123"
        );
        let err = to_location(serde_json::json!({"nope": {}}), &NAMES).unwrap_err();
        assert!(err.contains("expected one of s3"), "{err}");
    }

    #[test]
    fn location_secrets_are_mounted_in_init_and_wait_as_the_controller_does() {
        let location = to_location(
            serde_json::json!({"s3": {"bucket": "b",
                "accessKeySecret": {"name": "creds", "key": "ak"},
                "secretKeySecret": {"name": "creds", "key": "sk"}}}),
            &NAMES,
        )
        .unwrap();
        let mut pod: Pod = serde_json::from_value(serde_json::json!({"spec": {
            "initContainers": [{"name": "init"}],
            "containers": [{"name": "wait"}, {"name": "main"}]}}))
        .unwrap();
        mount_location_secrets(&mut pod, &location);
        let json = serde_json::to_value(&pod).unwrap();
        assert_eq!(
            json["spec"]["volumes"],
            serde_json::json!([{"name": "creds", "secret": {"secretName": "creds",
                "items": [{"key": "ak", "path": "ak"}, {"key": "sk", "path": "sk"}]}}])
        );
        let mount = serde_json::json!([{"name": "creds", "mountPath": "/argo/secret/creds", "readOnly": true}]);
        assert_eq!(json["spec"]["initContainers"][0]["volumeMounts"], mount);
        assert_eq!(json["spec"]["containers"][0]["volumeMounts"], mount);
        assert!(json["spec"]["containers"][1].get("volumeMounts").is_none());
    }
}
