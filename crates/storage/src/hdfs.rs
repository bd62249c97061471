//! Files in HDFS, through `hdfs-native` (Hadoop's RPC and data transfer protocols in Rust; no JVM,
//! no libhdfs). The key is the file's absolute path.
//!
//! As in Argo, an HDFS artifact is one file (a directory travels as an archive): a directory at
//! the path is refused. One name node address is used as given; several are one HA name service,
//! tried in turn (Argo's client does the same). The user is `hdfsUser`, sent in the RPC
//! connection context (Hadoop's "simple" authentication).
//!
//! Kerberos (`krbCCacheSecret`, `krbKeytabSecret`) is refused with a clear error: `hdfs-native`
//! would load `libgssapi_krb5` at run time (a system library the static image does not have) and
//! read `krb5.conf` from the process environment (`KRB5_CONFIG`), which a library cannot set
//! safely in a running process. The `krbConfigConfigMap` is still read first, through the
//! credential source, as Argo's driver does, so a missing config map or key is named before the
//! refusal. Nothing here is tested against a real name node: the tests check the connection at
//! the protocol edge.

use std::collections::HashMap;
use std::io;

use argoexec_template::HdfsArtifact;
use futures::{StreamExt as _, TryStreamExt as _};
use hdfs_native::{Client, ClientBuilder, HdfsError, WriteOptions};

use crate::driver::{ByteStream, Driver, Error, Secrets};

/// The name service several name node addresses are grouped under.
const NAME_SERVICE: &str = "argo";

/// Hadoop's suffix for a file being written (`hdfs dfs -put`); renamed into place when complete.
const COPYING_SUFFIX: &str = "._COPYING_";

/// A file in HDFS.
#[derive(Debug, Clone)]
pub struct Hdfs {
    client: Client,
    /// `hdfs://<addresses>`, to name the name nodes in every message.
    endpoint: String,
    force: bool,
}

impl Hdfs {
    /// [`Hdfs::from_location`], after reading the location's `krbConfigConfigMap` from `secrets`
    /// as Argo's driver does first: a config map or key that cannot be read is the error.
    pub async fn from_location_with<S: Secrets>(
        location: &HdfsArtifact,
        secrets: &S,
    ) -> Result<Self, Error> {
        let config_map = location
            .krb_config_config_map
            .as_ref()
            .filter(|selector| !selector.name.is_empty());
        if let Some(selector) = config_map {
            let krb5_conf = secrets.config_map(&selector.name, &selector.key).await?;
            tracing::debug!(
                config_map = %selector.name,
                key = %selector.key,
                bytes = krb5_conf.len(),
                "Read the Kerberos configuration"
            );
        }
        Self::from_location(location)
    }

    /// The driver for an HDFS location, checked as Argo checks it (addresses, an absolute path,
    /// a user or Kerberos credentials). No connection is made yet.
    pub fn from_location(location: &HdfsArtifact) -> Result<Self, Error> {
        let bad = |reason: &str| Error::Location {
            driver: "hdfs",
            reason: reason.to_owned(),
        };
        let addresses: Vec<&str> = location
            .addresses
            .iter()
            .flatten()
            .map(|a| a.trim())
            .filter(|a| !a.is_empty())
            .collect();
        if addresses.is_empty() {
            return Err(bad("addresses is required"));
        }
        if let Some(address) = addresses.iter().find(|a| a.contains('/')) {
            return Err(bad(&format!(
                "address {address:?} is not host:port (no scheme or path)"
            )));
        }
        match location.path.as_deref() {
            None | Some("") => return Err(bad("path is required")),
            Some(path) if !path.starts_with('/') => {
                return Err(bad(&format!("path {path:?} must be an absolute file path")));
            }
            Some(_) => {}
        }
        let ccache = location.krb_ccache_secret.is_some();
        let keytab = location.krb_keytab_secret.is_some();
        let user = location.hdfs_user.as_deref().unwrap_or_default();
        if user.is_empty() && !ccache && !keytab {
            return Err(bad(
                "either hdfsUser, krbCCacheSecret or krbKeytabSecret is required",
            ));
        }
        let has = |s: &Option<String>| s.as_deref().is_some_and(|s| !s.is_empty());
        let spn = has(&location.krb_service_principal_name);
        let config_map = location.krb_config_config_map.is_some();
        if keytab && !(spn && config_map && has(&location.krb_username) && has(&location.krb_realm))
        {
            return Err(bad(
                "krbServicePrincipalName, krbConfigConfigMap, krbUsername and krbRealm are \
                 required with krbKeytabSecret",
            ));
        }
        if ccache && !(spn && config_map) {
            return Err(bad(
                "krbServicePrincipalName and krbConfigConfigMap are required with krbCCacheSecret",
            ));
        }
        if ccache || keytab {
            return Err(bad(
                "Kerberos (krbCCacheSecret, krbKeytabSecret) is not supported in this build; \
                 use hdfsUser",
            ));
        }

        let endpoint = format!("hdfs://{}", addresses.join(","));
        let mut config = HashMap::new();
        if let Some(protection) = location
            .data_transfer_protection
            .as_deref()
            .filter(|p| !p.is_empty())
        {
            config.insert("dfs.data.transfer.protection".to_owned(), protection.into());
        }
        // One pass over the name nodes per call: the executor's retry policy (Argo's backoff)
        // repeats the whole transfer, so hdfs-native's own 15 failovers with sleeps of up to
        // 15 s would only hide a dead cluster for minutes.
        config.insert(
            "dfs.client.failover.max.attempts".to_owned(),
            (addresses.len() - 1).to_string(),
        );
        let url = match addresses.as_slice() {
            [one] => format!("hdfs://{one}"),
            many => {
                let names: Vec<String> = (0..many.len()).map(|i| format!("nn{i}")).collect();
                for (name, address) in names.iter().zip(many) {
                    config.insert(
                        format!("dfs.namenode.rpc-address.{NAME_SERVICE}.{name}"),
                        (*address).to_owned(),
                    );
                }
                config.insert(format!("dfs.ha.namenodes.{NAME_SERVICE}"), names.join(","));
                format!("hdfs://{NAME_SERVICE}")
            }
        };
        let client = ClientBuilder::new()
            .with_url(url)
            .with_config(config)
            .with_user(user)
            .build()
            .map_err(|e| Error::Location {
                driver: "hdfs",
                reason: format!("{endpoint}: {e}"),
            })?;
        Ok(Self {
            client,
            endpoint,
            force: location.force.unwrap_or(false),
        })
    }

    /// `hdfs://<addresses><path>`, for messages.
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.endpoint)
    }

    /// An `hdfs-native` failure as ours: not found, transient (I/O, failed-over calls) or failed.
    fn error(&self, operation: &'static str, path: &str, err: HdfsError) -> Error {
        match err {
            HdfsError::FileNotFound(_) => Error::NotFound {
                driver: "hdfs",
                key: self.url(path),
            },
            HdfsError::RPCError(class, _) if class == "java.io.FileNotFoundException" => {
                Error::NotFound {
                    driver: "hdfs",
                    key: self.url(path),
                }
            }
            HdfsError::AlreadyExists(_) if !self.force => Error::Failed {
                operation,
                key: self.url(path),
                source: format!("{err} (set force: true to overwrite it)").into(),
            },
            HdfsError::IOError(io) => Error::io(operation, self.url(path), io),
            other => Error::Failed {
                operation,
                key: self.url(path),
                source: other.into(),
            },
        }
    }

    /// Writes `body` to `tmp`, then renames it to `path`.
    async fn write_then_rename(
        &self,
        tmp: &str,
        path: &str,
        body: ByteStream,
    ) -> Result<(), Error> {
        let options = WriteOptions::default().overwrite(true);
        let mut writer = self
            .client
            .create(tmp, options)
            .await
            .map_err(|e| self.error("create", tmp, e))?;
        let mut body = body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Error::io("read the artifact for", self.url(path), e))?;
            writer
                .write_bytes(chunk)
                .await
                .map_err(|e| self.error("write", tmp, e))?;
        }
        writer
            .close()
            .await
            .map_err(|e| self.error("close", tmp, e))?;
        self.client
            .rename(tmp, path, self.force)
            .await
            .map_err(|e| self.error("rename into", path, e))
    }
}

impl Driver for Hdfs {
    fn name(&self) -> &'static str {
        "hdfs"
    }

    #[tracing::instrument(level = "debug", skip_all, fields(driver = "hdfs", path = %key))]
    async fn get(&self, key: &str) -> Result<ByteStream, Error> {
        let status = self
            .client
            .get_file_info(key)
            .await
            .map_err(|e| self.error("stat", key, e))?;
        if status.isdir {
            return Err(Error::Failed {
                operation: "load",
                key: self.url(key),
                source: "HDFS artifacts do not support directory copy (the path is a directory)"
                    .into(),
            });
        }
        let reader = self
            .client
            .read(key)
            .await
            .map_err(|e| self.error("open", key, e))?;
        let stream = reader.read_range_stream(0, reader.file_length());
        Ok(stream.map_err(into_io).boxed())
    }

    /// Writes to `<path>._COPYING_` and renames it into place when complete, as `hdfs dfs -put`
    /// does, so a reader never sees half a file. An existing file is replaced only with `force`.
    #[tracing::instrument(level = "debug", skip_all, fields(driver = "hdfs", path = %key))]
    async fn put(&self, key: &str, body: ByteStream) -> Result<(), Error> {
        let tmp = format!("{key}{COPYING_SUFFIX}");
        let result = self.write_then_rename(&tmp, key, body).await;
        if result.is_err() {
            // Best effort: the temp file is Hadoop's usual leftover and harmless.
            let _ = self.client.delete(&tmp, false).await;
        }
        result
    }

    async fn is_dir(&self, key: &str) -> Result<bool, Error> {
        match self.client.get_file_info(key).await {
            Ok(status) => Ok(status.isdir),
            Err(HdfsError::FileNotFound(_)) => Ok(false),
            Err(e) => Err(self.error("stat", key, e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.client
            .delete(key, false)
            .await
            .map(drop)
            .map_err(|e| self.error("delete", key, e))
    }
}

/// A failure while streaming a file's blocks, as an I/O error whose kind says whether to retry.
fn into_io(err: HdfsError) -> io::Error {
    match err {
        HdfsError::IOError(io) => io,
        HdfsError::ChecksumError | HdfsError::DataTransferError(_) => {
            io::Error::new(io::ErrorKind::UnexpectedEof, err)
        }
        other => io::Error::other(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(json: serde_json::Value) -> HdfsArtifact {
        serde_json::from_value(json).unwrap()
    }

    fn refused(json: serde_json::Value) -> String {
        match Hdfs::from_location(&location(json)) {
            Ok(_) => panic!("accepted"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn checks_the_location_as_argo_does() {
        let prefix = "invalid hdfs artifact location: ";
        let cases = [
            (
                serde_json::json!({"path": "/a", "hdfsUser": "u"}),
                "addresses is required",
            ),
            (
                serde_json::json!({"addresses": ["nn:8020"], "hdfsUser": "u"}),
                "path is required",
            ),
            (
                serde_json::json!({"addresses": ["nn:8020"], "path": "a/b", "hdfsUser": "u"}),
                "path \"a/b\" must be an absolute file path",
            ),
            (
                serde_json::json!({"addresses": ["nn:8020"], "path": "/a"}),
                "either hdfsUser, krbCCacheSecret or krbKeytabSecret is required",
            ),
            (
                serde_json::json!({"addresses": ["hdfs://nn:8020"], "path": "/a", "hdfsUser": "u"}),
                "address \"hdfs://nn:8020\" is not host:port (no scheme or path)",
            ),
            (
                serde_json::json!({"addresses": ["nn:8020"], "path": "/a",
                    "krbKeytabSecret": {"name": "k", "key": "keytab"}}),
                "krbServicePrincipalName, krbConfigConfigMap, krbUsername and krbRealm are \
                 required with krbKeytabSecret",
            ),
            (
                serde_json::json!({"addresses": ["nn:8020"], "path": "/a",
                    "krbCCacheSecret": {"name": "k", "key": "ccache"}}),
                "krbServicePrincipalName and krbConfigConfigMap are required with krbCCacheSecret",
            ),
            (
                serde_json::json!({"addresses": ["nn:8020"], "path": "/a",
                    "krbCCacheSecret": {"name": "k", "key": "ccache"},
                    "krbServicePrincipalName": "hdfs/nn", "krbConfigConfigMap": {"name": "c", "key": "krb5.conf"}}),
                "Kerberos (krbCCacheSecret, krbKeytabSecret) is not supported in this build; use hdfsUser",
            ),
        ];
        for (json, reason) in cases {
            assert_eq!(refused(json), format!("{prefix}{reason}"));
        }
    }

    #[test]
    fn names_every_address_in_its_endpoint() {
        let hdfs = Hdfs::from_location(&location(serde_json::json!({
            "addresses": ["nn1:8020", " nn2:8020 "], "path": "/a", "hdfsUser": "u", "force": true,
            "dataTransferProtection": "privacy",
        })))
        .unwrap();
        assert_eq!(hdfs.url("/a"), "hdfs://nn1:8020,nn2:8020/a");
        assert!(hdfs.force);
    }
}
