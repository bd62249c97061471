//! Where an artifact is stored, for init and wait alike: from the artifact's own location, the
//! template's `archiveLocation` and the local repository of `argoexec run`, to a driver and the
//! key to use with it, resolved once; and, for an output, recording the stored location back on
//! the artifact.

use std::path::Path;

use argoexec_storage::{
    AnyDriver, ByteStream, Digest, Driver, LocalStore, Secrets, StorageOptions,
};
use argoexec_template::{Artifact, ArtifactLocation, KeyUnsupported, Template};

/// Argo's message when an output has nowhere to go.
const NO_REPOSITORY: &str = "You need to configure artifact storage. More information on how to do this can be found in the docs: https://argo-workflows.readthedocs.io/en/latest/configure-artifact-repository/";

/// Why an artifact's store could not be resolved or reached.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    /// The artifact has no complete location and there is no repository to complete it from.
    #[error("{NO_REPOSITORY}")]
    NoRepository,
    /// The repository's location cannot take a key (http, git, raw, no kind).
    #[error(transparent)]
    Location(KeyUnsupported),
    /// The driver could not be set up (location, credentials).
    #[error(transparent)]
    Driver(argoexec_storage::Error),
}

/// The repositories an artifact without a complete location of its own falls back on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Defaults<'a> {
    /// The template's `archiveLocation`, when it names a storage kind.
    archive_location: Option<&'a ArtifactLocation>,
    /// The local directory repository and the key prefix of default keys in it.
    local: Option<(&'a Path, &'a str)>,
}

impl<'a> Defaults<'a> {
    /// The template's archive location, then the local repository (`argoexec run`'s, with the
    /// prefix of default keys in it), when there is one.
    pub(crate) fn new(template: &'a Template, local: Option<(&'a Path, &'a str)>) -> Self {
        Self {
            archive_location: template
                .archive_location
                .as_ref()
                .filter(|l| l.kind().is_some()),
            local,
        }
    }
}

/// Where a stored artifact is, for its record.
#[derive(Debug, Clone)]
enum Store {
    /// A location of the template (`archiveLocation` or the artifact's own), its key set.
    Location(Box<ArtifactLocation>),
    /// The local directory repository of `argoexec run`.
    Local,
}

/// An artifact's store, opened: the driver, the key in it, and what to record.
#[derive(Debug)]
pub(crate) struct Opened {
    /// The driver of the store.
    pub(crate) driver: StoreDriver,
    /// The key to use with it: the location's own address (an HTTP URL is its key), else the
    /// key the artifact was given in a default store.
    pub(crate) key: String,
    store: Store,
}

/// Opens the store of an artifact whose location is `own`: its own when complete, else the first
/// of `defaults` with the key `own`'s key, or `<default key>/<default_name>` when it has none
/// (outputs). The key is resolved here once, for the transfer and the record alike.
pub(crate) async fn open<S: Secrets>(
    own: &ArtifactLocation,
    default_name: Option<&str>,
    defaults: Defaults<'_>,
    secrets: &S,
    storage: &StorageOptions,
) -> Result<Opened, StoreError> {
    if own.has_location() {
        // A complete location addresses itself: its key is the driver's (a URL for http).
        let (driver, key) = AnyDriver::for_location(own, secrets, storage)
            .await
            .map_err(StoreError::Driver)?;
        return Ok(Opened {
            driver: StoreDriver::Any(driver),
            key,
            store: Store::Location(Box::new(own.clone())),
        });
    }
    // A key and no repository: the key goes into the default repository as it is; no key: the
    // default name under the repository's own key.
    let own_key = own.key().filter(|k| !k.is_empty());
    if let Some(base) = defaults.archive_location {
        let key = match (own_key, default_name) {
            (Some(key), _) => key.to_owned(),
            (None, Some(name)) => join_key(base.key().unwrap_or_default(), name),
            (None, None) => String::new(),
        };
        let mut location = base.clone();
        location
            .set_key(key.clone())
            .map_err(StoreError::Location)?;
        // The logs flag belongs to the archive location, not to an artifact.
        location.archive_logs = None;
        // The driver's key is the one just set.
        let (driver, _) = AnyDriver::for_location(&location, secrets, storage)
            .await
            .map_err(StoreError::Driver)?;
        return Ok(Opened {
            driver: StoreDriver::Any(driver),
            key,
            store: Store::Location(Box::new(location)),
        });
    }
    let (dir, prefix) = defaults.local.ok_or(StoreError::NoRepository)?;
    let key = match (own_key, default_name) {
        (Some(key), _) => key.to_owned(),
        (None, Some(name)) => join_key(prefix, name),
        (None, None) => String::new(),
    };
    Ok(Opened {
        driver: StoreDriver::Local(LocalStore::new(dir)),
        key,
        store: Store::Local,
    })
}

impl Opened {
    /// Records where an artifact went in its JSON: the location (Argo's fields), or for the
    /// local repository our `local: {key}` extension; and the digest and size.
    pub(crate) fn record(&self, artifact: &mut Artifact, digest: Option<Digest>) {
        match &self.store {
            Store::Location(location) => artifact.location = (**location).clone(),
            Store::Local => {
                artifact
                    .extra
                    .insert("local".into(), serde_json::json!({ "key": self.key }));
            }
        }
        if let Some(d) = digest {
            artifact
                .extra
                .insert("sha256".into(), serde_json::json!(d.sha256));
            artifact
                .extra
                .insert("size".into(), serde_json::json!(d.size));
        }
    }
}

/// The location reduced to its kind and key: how Argo 3 and 4 report an artifact that had no key of
/// its own (`SetType` then `SetKey`), the controller completing it from the archive location.
/// `None` when the location has no key.
pub(crate) fn key_only(location: &ArtifactLocation) -> Option<ArtifactLocation> {
    let key = location.key()?;
    let serde_json::Value::Object(fields) = serde_json::to_value(location).ok()? else {
        return None;
    };
    let kept: serde_json::Map<String, serde_json::Value> = fields
        .into_iter()
        .filter(|(_, value)| value.get("key").is_some())
        .map(|(kind, _)| (kind, serde_json::json!({ "key": key })))
        .collect();
    serde_json::from_value(serde_json::Value::Object(kept)).ok()
}

fn join_key(base: &str, name: &str) -> String {
    let base = base.trim_end_matches('/');
    if base.is_empty() {
        name.to_owned()
    } else {
        format!("{base}/{name}")
    }
}

/// A driver for either kind of store.
#[derive(Debug)]
pub(crate) enum StoreDriver {
    /// A location's driver.
    Any(AnyDriver),
    /// The local directory repository.
    Local(LocalStore),
}

impl Driver for StoreDriver {
    fn name(&self) -> &'static str {
        match self {
            Self::Any(d) => d.name(),
            Self::Local(d) => d.name(),
        }
    }

    async fn get(&self, key: &str) -> Result<ByteStream, argoexec_storage::Error> {
        match self {
            Self::Any(d) => d.get(key).await,
            Self::Local(d) => d.get(key).await,
        }
    }

    async fn put(&self, key: &str, body: ByteStream) -> Result<(), argoexec_storage::Error> {
        match self {
            Self::Any(d) => d.put(key, body).await,
            Self::Local(d) => d.put(key, body).await,
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, argoexec_storage::Error> {
        match self {
            Self::Any(d) => d.list(prefix).await,
            Self::Local(d) => d.list(prefix).await,
        }
    }

    async fn is_dir(&self, key: &str) -> Result<bool, argoexec_storage::Error> {
        match self {
            Self::Any(d) => d.is_dir(key).await,
            Self::Local(d) => d.is_dir(key).await,
        }
    }

    fn is_checkout(&self) -> bool {
        match self {
            Self::Any(d) => d.is_checkout(),
            Self::Local(d) => d.is_checkout(),
        }
    }

    async fn checkout(&self, dest: &Path) -> Result<String, argoexec_storage::Error> {
        match self {
            Self::Any(d) => d.checkout(dest).await,
            Self::Local(d) => d.checkout(dest).await,
        }
    }

    async fn delete(&self, key: &str) -> Result<(), argoexec_storage::Error> {
        match self {
            Self::Any(d) => d.delete(key).await,
            Self::Local(d) => d.delete(key).await,
        }
    }
}
