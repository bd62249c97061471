//! The driver trait every backend implements, its error, and the credentials trait.

use std::future::Future;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::stream::BoxStream;

use crate::retry::{Retryable, is_transient_io};

/// An object's bytes, as a stream of chunks.
pub type ByteStream = BoxStream<'static, io::Result<Bytes>>;

/// A boxed cause.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Why a storage operation failed. The variant says what a caller may do about it: retry a
/// transient failure, skip an optional artifact that is not found, report the rest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No object (and no prefix) at that key.
    #[error("{driver}: {key} not found")]
    NotFound {
        /// The driver.
        driver: &'static str,
        /// The key or URL.
        key: String,
    },
    /// The driver cannot do this at all (e.g. save to git).
    #[error("{driver} artifacts do not support {operation}")]
    Unsupported {
        /// The driver.
        driver: &'static str,
        /// What was asked.
        operation: &'static str,
    },
    /// The artifact location is incomplete or contradictory.
    #[error("invalid {driver} artifact location: {reason}")]
    Location {
        /// The driver.
        driver: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A credential could not be read.
    #[error("read secret {name}/{key}")]
    Secret {
        /// The secret's name.
        name: String,
        /// The key within it.
        key: String,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// A key of a config map (HDFS's `krbConfigConfigMap`) could not be read.
    #[error("read config map {name}/{key}")]
    ConfigMap {
        /// The config map's name.
        name: String,
        /// The key within it.
        key: String,
        /// The failure.
        #[source]
        source: io::Error,
    },
    /// The request failed in a way that may pass if sent again (connection reset, timeout, 5xx,
    /// throttling).
    #[error("{operation} {key}: transient failure")]
    Transient {
        /// What was being done.
        operation: &'static str,
        /// The key or URL.
        key: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
    /// The request failed for good (denied, bad request, local disk error).
    #[error("{operation} {key}")]
    Failed {
        /// What was being done.
        operation: &'static str,
        /// The key or URL.
        key: String,
        /// The cause.
        #[source]
        source: BoxError,
    },
}

impl Error {
    /// A failed request: [`Error::Transient`] when `transient`, else [`Error::Failed`].
    pub fn request(
        transient: bool,
        operation: &'static str,
        key: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        let (key, source) = (key.into(), source.into());
        if transient {
            Self::Transient {
                operation,
                key,
                source,
            }
        } else {
            Self::Failed {
                operation,
                key,
                source,
            }
        }
    }

    /// An I/O failure, classified by its kind.
    pub fn io(operation: &'static str, key: impl Into<String>, source: io::Error) -> Self {
        Self::request(is_transient_io(&source), operation, key, source)
    }

    /// Whether this is "not found", which an optional artifact may skip.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound { .. })
    }
}

impl Retryable for Error {
    fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}

/// An object store reached through one kind of artifact location. Keys are the driver's own
/// (an object key, a URL).
///
/// Required: [`Driver::name`] and [`Driver::get`]. The rest default to "unsupported" (or, for
/// [`Driver::is_dir`] and [`Driver::is_checkout`], to "no"), as most read-only backends want.
pub trait Driver: Send + Sync {
    /// The location kind, for messages (`s3`, `http`, ...).
    fn name(&self) -> &'static str;

    /// Opens an object for reading. Fails with [`Error::NotFound`] when it does not exist.
    fn get(&self, key: &str) -> impl Future<Output = Result<ByteStream, Error>> + Send;

    /// Writes an object from a stream. The object appears whole or not at all.
    fn put(&self, key: &str, body: ByteStream) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = (key, body);
        let name = self.name();
        async move {
            Err(Error::Unsupported {
                driver: name,
                operation: "saving",
            })
        }
    }

    /// Lists the keys of the objects under a prefix (a "directory"), recursively.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Vec<String>, Error>> + Send {
        let _ = prefix;
        let name = self.name();
        async move {
            Err(Error::Unsupported {
                driver: name,
                operation: "listing",
            })
        }
    }

    /// Whether a key names a directory (a prefix with objects under it) rather than an object.
    fn is_dir(&self, key: &str) -> impl Future<Output = Result<bool, Error>> + Send {
        let _ = key;
        async { Ok(false) }
    }

    /// Whether this driver's locations are whole trees fetched with [`Driver::checkout`] (a git
    /// repository) rather than objects read by key. Defaults to no.
    fn is_checkout(&self) -> bool {
        false
    }

    /// Fetches the whole location into `dest`, which appears complete or not at all (an earlier
    /// `dest` is replaced). Returns what was checked out (a commit id), for the log. Defaults to
    /// "unsupported".
    fn checkout(&self, dest: &Path) -> impl Future<Output = Result<String, Error>> + Send {
        let _ = dest;
        let name = self.name();
        async move {
            Err(Error::Unsupported {
                driver: name,
                operation: "checking out",
            })
        }
    }

    /// Deletes an object.
    fn delete(&self, key: &str) -> impl Future<Output = Result<(), Error>> + Send {
        let _ = key;
        let name = self.name();
        async move {
            Err(Error::Unsupported {
                driver: name,
                operation: "deleting",
            })
        }
    }
}

/// Where credentials come from: a secret's key, by the secret's name. Argo's v3 and v4 pods mount
/// them as files (`/argo/secret/<name>/<key>`); v2 pods read them through the Kubernetes API.
///
/// Config maps (HDFS's `krbConfigConfigMap`) come from the same source: Argo's executor reads them
/// through the Kubernetes API in every version, never from mounted files.
///
/// Required: [`Secrets::get`]. [`Secrets::config_map`] fails unless the source reads the API.
pub trait Secrets: Send + Sync {
    /// The value of `key` in secret `name`.
    fn get(&self, name: &str, key: &str) -> impl Future<Output = Result<Vec<u8>, Error>> + Send;

    /// The value of `key` in config map `name`, in the pod's namespace.
    fn config_map(
        &self,
        name: &str,
        key: &str,
    ) -> impl Future<Output = Result<String, Error>> + Send {
        let error = Error::ConfigMap {
            name: name.to_owned(),
            key: key.to_owned(),
            source: io::Error::new(
                io::ErrorKind::Unsupported,
                "config maps are read through the Kubernetes API, and there is no API client here",
            ),
        };
        std::future::ready(Err(error))
    }
}

/// Secrets mounted as files, `<root>/<name>/<key>`.
#[derive(Debug, Clone)]
pub struct MountedSecrets {
    root: PathBuf,
}

impl Default for MountedSecrets {
    /// Argo's mount point, `/argo/secret`.
    fn default() -> Self {
        Self::new("/argo/secret")
    }
}

impl MountedSecrets {
    /// Secrets under `root`.
    pub fn new(root: impl AsRef<Path>) -> Self {
        Self {
            root: root.as_ref().to_owned(),
        }
    }
}

impl Secrets for MountedSecrets {
    async fn get(&self, name: &str, key: &str) -> Result<Vec<u8>, Error> {
        let path = self.root.join(name).join(key);
        tokio::fs::read(&path)
            .await
            .map_err(|source| Error::Secret {
                name: name.to_owned(),
                key: key.to_owned(),
                source,
            })
    }
}

#[cfg(any(feature = "http", feature = "azure", feature = "git"))]
/// A secret holding text (a user name, a URL), trimmed as the S3 driver trims its keys.
pub(crate) async fn text_secret<S: Secrets>(
    secrets: &S,
    selector: &k8s_openapi::api::core::v1::SecretKeySelector,
) -> Result<String, Error> {
    let bytes = secrets.get(&selector.name, &selector.key).await?;
    String::from_utf8(bytes)
        .map(|s| s.trim().to_owned())
        .map_err(|e| Error::Secret {
            name: selector.name.clone(),
            key: selector.key.clone(),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })
}
