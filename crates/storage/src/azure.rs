//! Azure Blob Storage, through `object_store`'s Azure client.
//!
//! The location is read as Argo reads it: the container's URL is `endpoint` + `/` + `container`;
//! the account name is the first label of the endpoint's host
//! (`https://ACCOUNT.blob.core.windows.net`), or, for `127.0.0.1` and `localhost` endpoints
//! (Azurite), the first segment of its path (`http://127.0.0.1:10000/devstoreaccount1`).
//! `accountKeySecret` holds the account's shared key, or a SAS token when it reads as a query
//! string (`?sv=...&sig=...`); with `useSDKCreds`, credentials come from the SDK's environment
//! (`AZURE_CLIENT_ID`, `AZURE_TENANT_ID` with `AZURE_FEDERATED_TOKEN_FILE` or
//! `AZURE_CLIENT_SECRET`, ...) and otherwise from the managed identity endpoint, as Azure's
//! `DefaultAzureCredential` does.
//!
//! Downloads stream the response body. Uploads stream too: a body smaller than one block goes up
//! in one Put Blob; a larger one as blocks of 8 MiB (4 in flight, so memory
//! stays bounded) committed by one Put Block List, which makes the blob appear whole or not at
//! all. At 50,000 blocks per blob, that caps one artifact at about 390 GiB.
//!
//! A key with blobs under `key/` is a directory, as in Argo. Blob names must be valid
//! `object_store` paths: no empty segments (`a//b`) and no `.` or `..` segments.
//! object_store's own retries are off: [`crate::RetryPolicy`] retries what [`classify`] calls
//! transient.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use argoexec_template::AzureArtifact;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt as _, TryStreamExt as _};
use object_store::azure::{AzureConfigKey, MicrosoftAzure, MicrosoftAzureBuilder};
use object_store::client::{HttpError, HttpErrorKind};
use object_store::path::Path;
use object_store::{
    ClientOptions, ObjectStore as _, ObjectStoreExt as _, PutPayload, RetryConfig, WriteMultipart,
};

use crate::driver::{ByteStream, Driver, Error, Secrets, text_secret};
use crate::retry::is_transient_status;

const DRIVER: &str = "azure";
/// The size of one block of a staged upload.
const BLOCK_SIZE: usize = 8 * 1024 * 1024;
/// Blocks uploaded at once.
const CONCURRENCY: usize = 4;
/// How long to wait for a TCP (and TLS) connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a response may stall between two reads; no total timeout, artifacts are large.
const READ_TIMEOUT: Duration = Duration::from_secs(300);

/// A container in Azure Blob Storage.
#[derive(Debug, Clone)]
pub struct Azure {
    store: Arc<MicrosoftAzure>,
    container: String,
}

/// Whether an account key is a SAS token: a query string with at least one `k=v` after a `?` or
/// `&` (Argo's `isSASAccountKey`).
fn is_sas(key: &str) -> bool {
    key.split(['?', '&']).skip(1).any(|pair| {
        pair.split_once('=')
            .is_some_and(|(k, v)| !k.is_empty() && !v.is_empty())
    })
}

/// The account name for a container URL, as Argo's `determineAccountName` finds it.
fn account_name(container_url: &url::Url) -> Option<String> {
    let host = container_url.host_str()?;
    if host.starts_with("127.0.0.1") || host.starts_with("localhost") {
        let mut segments = container_url.path_segments()?;
        // The path is /ACCOUNT/CONTAINER: a path of one segment names no account.
        let account = segments.next().filter(|a| !a.is_empty())?;
        segments.next()?;
        return Some(account.to_owned());
    }
    host.split('.')
        .next()
        .filter(|a| !a.is_empty())
        .map(str::to_owned)
}

impl Azure {
    /// The driver for a complete Azure location; credentials are read now.
    pub async fn from_location<S: Secrets>(
        location: &AzureArtifact,
        secrets: &S,
    ) -> Result<Self, Error> {
        let bad = |reason: String| Error::Location {
            driver: DRIVER,
            reason,
        };
        let endpoint = location
            .endpoint
            .as_deref()
            .filter(|e| !e.is_empty())
            .ok_or_else(|| bad("endpoint is not set".into()))?;
        let container = location
            .container
            .clone()
            .filter(|c| !c.is_empty())
            .ok_or_else(|| bad("container is not set".into()))?;
        let mut account_url = url::Url::parse(endpoint)
            .map_err(|e| bad(format!("endpoint {endpoint:?} is not a URL: {e}")))?;
        // object_store appends /CONTAINER/BLOB to the endpoint's path: drop a trailing slash so
        // that the container URL is exactly Argo's.
        let trimmed = account_url.path().trim_end_matches('/').to_owned();
        account_url.set_path(&trimmed);
        let mut container_url = account_url.clone();
        container_url.set_path(&format!("{trimmed}/{container}"));

        let options = ClientOptions::new()
            .with_allow_http(account_url.scheme() == "http")
            .with_timeout_disabled()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_read_timeout(READ_TIMEOUT);
        let retry = RetryConfig {
            max_retries: 0,
            retry_timeout: Duration::ZERO,
            ..RetryConfig::default()
        };
        let sdk_creds = location.use_sdk_creds.unwrap_or(false);
        let key = match (sdk_creds, location.account_key_secret.as_deref()) {
            (true, _) => None,
            (false, Some(selector)) => Some(text_secret(secrets, selector).await?),
            (false, None) => {
                return Err(bad(
                    "accountKeySecret is required when useSDKCreds is false".into(),
                ));
            }
        };
        let sas = key.as_deref().is_some_and(is_sas);
        // Only a shared key signs with the account name; a SAS token or an SDK credential
        // needs none, as in Argo.
        let account = match account_name(&container_url) {
            Some(account) => account,
            None if key.is_some() && !sas => {
                return Err(bad(format!(
                    "cannot tell the storage account from endpoint {endpoint:?}"
                )));
            }
            None => account_url.host_str().unwrap_or_default().to_owned(),
        };
        let builder = if sdk_creds {
            MicrosoftAzureBuilder::from_env()
        } else {
            MicrosoftAzureBuilder::new()
        };
        let mut builder = builder
            .with_account(account)
            .with_container_name(&container)
            .with_endpoint(account_url.to_string().trim_end_matches('/').to_owned())
            .with_client_options(options)
            .with_retry(retry);
        if let Some(key) = key {
            builder = if sas {
                tracing::info!("Provided account key is a SAS token. Using no-credential client.");
                builder.with_config(AzureConfigKey::SasKey, key)
            } else {
                builder.with_access_key(key)
            };
        }
        let store = builder
            .build()
            .map_err(|e| bad(format!("azure client: {}", crate::retry::chain(&e))))?;
        Ok(Self {
            store: Arc::new(store),
            container,
        })
    }

    /// The container.
    pub fn container(&self) -> &str {
        &self.container
    }

    fn path(key: &str) -> Result<Path, Error> {
        Path::parse(key).map_err(|e| Error::Location {
            driver: DRIVER,
            reason: format!("blob name {key:?}: {e}"),
        })
    }

    async fn put_blocks(
        &self,
        path: &Path,
        first: Bytes,
        body: &mut ByteStream,
    ) -> Result<(), Error> {
        let key = path.as_ref();
        let upload = self
            .store
            .put_multipart(path)
            .await
            .map_err(|e| classify("put", key, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, BLOCK_SIZE);
        writer.put(first);
        let result = async {
            while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|e| Error::io("read upload body", key, e))?;
                writer
                    .wait_for_capacity(CONCURRENCY)
                    .await
                    .map_err(|e| classify("put block", key, e))?;
                writer.put(chunk);
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => writer
                .finish()
                .await
                .map(drop)
                .map_err(|e| classify("put", key, e)),
            Err(err) => {
                // Uncommitted blocks expire on their own; nothing is visible until the commit.
                let _ = writer.abort().await;
                Err(err)
            }
        }
    }
}

/// Reads up to `size` bytes from the stream (possibly a little more, a chunk at a time).
async fn read_up_to(body: &mut ByteStream, size: usize) -> io::Result<(Bytes, bool)> {
    let mut buf = BytesMut::new();
    while buf.len() < size {
        match body.next().await {
            Some(chunk) => buf.extend_from_slice(&chunk?),
            None => return Ok((buf.freeze(), true)),
        }
    }
    Ok((buf.freeze(), false))
}

/// The HTTP status in an object_store error's chain. object_store keeps its `RetryError` (which
/// has a `status()`) private, so the status is read from its message, "... status code: 503 ...".
fn status_in(err: &(dyn std::error::Error + 'static)) -> Option<u16> {
    let text = crate::retry::chain(err);
    let (_, rest) = text.split_once("status code: ")?;
    rest.get(..3)?.parse().ok()
}

/// Whether a connection-level failure is in the chain: refused or failed connection, a request
/// cut short, a timeout.
fn connection_failed(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(err);
    while let Some(e) = source {
        if let Some(http) = e.downcast_ref::<HttpError>() {
            return matches!(
                http.kind(),
                HttpErrorKind::Connect
                    | HttpErrorKind::Request
                    | HttpErrorKind::Timeout
                    | HttpErrorKind::Interrupted
            );
        }
        source = e.source();
    }
    false
}

/// Classifies an object_store failure: not found, transient (connection failures, timeouts, 5xx,
/// 429, 408) or permanent.
fn classify(operation: &'static str, key: &str, err: object_store::Error) -> Error {
    use object_store::Error as E;
    match err {
        E::NotFound { .. } => Error::NotFound {
            driver: DRIVER,
            key: key.to_owned(),
        },
        E::InvalidPath { source } => Error::Location {
            driver: DRIVER,
            reason: format!("blob name {key:?}: {source}"),
        },
        other => {
            let transient =
                connection_failed(&other) || status_in(&other).is_some_and(is_transient_status);
            Error::request(transient, operation, key, other)
        }
    }
}

impl Driver for Azure {
    fn name(&self) -> &'static str {
        DRIVER
    }

    #[tracing::instrument(level = "debug", skip_all, fields(container = %self.container, blob = %key))]
    async fn get(&self, key: &str) -> Result<ByteStream, Error> {
        let path = Self::path(key)?;
        let result = self
            .store
            .get(&path)
            .await
            .map_err(|e| classify("get", key, e))?;
        let key = key.to_owned();
        Ok(result
            .into_stream()
            .map_err(move |e| {
                // The response started: a failure now is the connection's, worth a retry.
                tracing::debug!(key = %key, error = %e, "azure body read failed");
                io::Error::new(io::ErrorKind::ConnectionAborted, e)
            })
            .boxed())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(container = %self.container, blob = %key))]
    async fn put(&self, key: &str, mut body: ByteStream) -> Result<(), Error> {
        let path = Self::path(key)?;
        let (first, ended) = read_up_to(&mut body, BLOCK_SIZE)
            .await
            .map_err(|e| Error::io("read upload body", key, e))?;
        if ended {
            self.store
                .put(&path, PutPayload::from(first))
                .await
                .map_err(|e| classify("put", key, e))?;
            return Ok(());
        }
        self.put_blocks(&path, first, &mut body).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let path = Self::path(prefix)?;
        let prefix_path = (!path.as_ref().is_empty()).then_some(&path);
        self.store
            .list(prefix_path)
            .map_ok(|meta| meta.location.to_string())
            .try_collect()
            .await
            .map_err(|e| classify("list", prefix, e))
    }

    async fn is_dir(&self, key: &str) -> Result<bool, Error> {
        let path = Self::path(key)?;
        if path.as_ref().is_empty() {
            // The whole container, as Argo has it.
            return Ok(true);
        }
        match self.store.list(Some(&path)).next().await {
            None => Ok(false),
            Some(Ok(_)) => Ok(true),
            Some(Err(e)) => Err(classify("list", key, e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        let path = Self::path(key)?;
        match self.store.delete(&path).await {
            // Gone already is what was asked (Argo deletes with allowNonExistent).
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(classify("delete", key, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sas_tokens_are_told_from_account_keys() {
        assert!(is_sas("?sv=2022-11-02&ss=b&sig=abc%3D"));
        assert!(is_sas("sv=2022-11-02&sig=abc"));
        assert!(!is_sas(
            "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
        ));
        assert!(!is_sas("sv=2022"));
    }

    #[test]
    fn account_name_is_the_host_label_or_azurite_path() {
        let url = |u: &str| url::Url::parse(u).unwrap();
        assert_eq!(
            account_name(&url("https://myacct.blob.core.windows.net/c")).as_deref(),
            Some("myacct")
        );
        assert_eq!(
            account_name(&url("http://127.0.0.1:10000/devstoreaccount1/c")).as_deref(),
            Some("devstoreaccount1")
        );
        assert_eq!(account_name(&url("http://localhost:10000/c")), None);
    }
}
