//! Credentials through the API (v2 pods: Argo 2 read artifact secrets with a GET), beside the
//! mounted files of v3 and v4 pods; config maps (HDFS's `krbConfigConfigMap`) through the API in
//! every version, as Argo's executor reads them.

use argoexec_storage::{MountedSecrets, Secrets};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;

use crate::client::Kube;
use crate::error::Error;
use crate::retry::Backoff;

/// Secrets and config maps read with `GET /api/v1/namespaces/<ns>/{secrets,configmaps}/<name>`.
#[derive(Debug, Clone)]
pub struct ApiSecrets {
    api: Api<Secret>,
    config_maps: Api<ConfigMap>,
    namespace: String,
    backoff: Backoff,
}

impl ApiSecrets {
    /// Secrets and config maps of the pod's namespace.
    pub fn new(kube: &Kube, backoff: Backoff) -> Self {
        Self {
            api: Api::namespaced(kube.client().clone(), kube.namespace()),
            config_maps: Api::namespaced(kube.client().clone(), kube.namespace()),
            namespace: kube.namespace().to_owned(),
            backoff,
        }
    }

    async fn config_map_value(&self, name: &str, key: &str) -> Result<String, Error> {
        let target = format!("config map {}/{name}", self.namespace);
        let config_map = self
            .backoff
            .run("get", &target, false, || self.config_maps.get(name))
            .await?;
        config_map
            .data
            .and_then(|mut d| d.remove(key))
            .ok_or_else(|| Error::MissingKey {
                kind: "config map",
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                key: key.to_owned(),
            })
    }

    async fn value(&self, name: &str, key: &str) -> Result<Vec<u8>, Error> {
        let target = format!("secret {}/{name}", self.namespace);
        let secret = self
            .backoff
            .run("get", &target, false, || self.api.get(name))
            .await?;
        let from_data = secret.data.and_then(|mut d| d.remove(key)).map(|b| b.0);
        let from_string = || {
            secret
                .string_data
                .and_then(|mut d| d.remove(key))
                .map(String::into_bytes)
        };
        from_data
            .or_else(from_string)
            .ok_or_else(|| Error::MissingKey {
                kind: "secret",
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                key: key.to_owned(),
            })
    }
}

impl Secrets for ApiSecrets {
    async fn get(&self, name: &str, key: &str) -> Result<Vec<u8>, argoexec_storage::Error> {
        self.value(name, key)
            .await
            .map_err(|e| argoexec_storage::Error::Secret {
                name: name.to_owned(),
                key: key.to_owned(),
                source: as_io(e),
            })
    }

    async fn config_map(&self, name: &str, key: &str) -> Result<String, argoexec_storage::Error> {
        self.config_map_value(name, key)
            .await
            .map_err(|e| argoexec_storage::Error::ConfigMap {
                name: name.to_owned(),
                key: key.to_owned(),
                source: as_io(e),
            })
    }
}

/// The API's answer as the I/O error kind the storage crate's callers branch on.
fn as_io(e: Error) -> std::io::Error {
    let kind = match &e {
        Error::MissingKey { .. } => std::io::ErrorKind::NotFound,
        e if e.status() == Some(404) => std::io::ErrorKind::NotFound,
        e if e.status() == Some(403) => std::io::ErrorKind::PermissionDenied,
        _ => std::io::ErrorKind::Other,
    };
    std::io::Error::new(kind, e)
}

/// Where credentials come from: files the controller mounted (v3, v4) or the API (v2).
#[derive(Debug, Clone)]
pub enum AnySecrets {
    /// `/argo/secret/<name>/<key>`; no config maps (no API client).
    Mounted(MountedSecrets),
    /// Secrets from the mounted files, config maps through the API (v3, v4 pods, as Argo).
    MountedWithApi(MountedSecrets, Box<ApiSecrets>),
    /// The Secret and ConfigMap objects themselves.
    Api(Box<ApiSecrets>),
}

impl Secrets for AnySecrets {
    async fn get(&self, name: &str, key: &str) -> Result<Vec<u8>, argoexec_storage::Error> {
        match self {
            Self::Mounted(s) | Self::MountedWithApi(s, _) => s.get(name, key).await,
            Self::Api(s) => s.get(name, key).await,
        }
    }

    async fn config_map(&self, name: &str, key: &str) -> Result<String, argoexec_storage::Error> {
        match self {
            Self::Mounted(s) => s.config_map(name, key).await,
            Self::MountedWithApi(_, api) | Self::Api(api) => api.config_map(name, key).await,
        }
    }
}
