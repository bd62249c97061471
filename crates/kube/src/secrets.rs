//! Credentials through the API (v2 pods: Argo 2 read artifact secrets with a GET), beside the
//! mounted files of v3 and v4 pods.

use argoexec_storage::{MountedSecrets, Secrets};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use crate::client::Kube;
use crate::error::Error;
use crate::retry::Backoff;

/// Secrets read with `GET /api/v1/namespaces/<ns>/secrets/<name>`.
#[derive(Debug, Clone)]
pub struct ApiSecrets {
    api: Api<Secret>,
    namespace: String,
    backoff: Backoff,
}

impl ApiSecrets {
    /// Secrets of the pod's namespace.
    pub fn new(kube: &Kube, backoff: Backoff) -> Self {
        Self {
            api: Api::namespaced(kube.client().clone(), kube.namespace()),
            namespace: kube.namespace().to_owned(),
            backoff,
        }
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
                namespace: self.namespace.clone(),
                name: name.to_owned(),
                key: key.to_owned(),
            })
    }
}

impl Secrets for ApiSecrets {
    async fn get(&self, name: &str, key: &str) -> Result<Vec<u8>, argoexec_storage::Error> {
        self.value(name, key).await.map_err(|e| {
            let kind = match &e {
                Error::MissingKey { .. } => std::io::ErrorKind::NotFound,
                e if e.status() == Some(404) => std::io::ErrorKind::NotFound,
                e if e.status() == Some(403) => std::io::ErrorKind::PermissionDenied,
                _ => std::io::ErrorKind::Other,
            };
            argoexec_storage::Error::Secret {
                name: name.to_owned(),
                key: key.to_owned(),
                source: std::io::Error::new(kind, e),
            }
        })
    }
}

/// Where credentials come from: files the controller mounted (v3, v4) or the API (v2).
#[derive(Debug, Clone)]
pub enum AnySecrets {
    /// `/argo/secret/<name>/<key>`.
    Mounted(MountedSecrets),
    /// The Secret objects themselves.
    Api(Box<ApiSecrets>),
}

impl Secrets for AnySecrets {
    async fn get(&self, name: &str, key: &str) -> Result<Vec<u8>, argoexec_storage::Error> {
        match self {
            Self::Mounted(s) => s.get(name, key).await,
            Self::Api(s) => s.get(name, key).await,
        }
    }
}
