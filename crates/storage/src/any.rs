//! One enum over every driver, chosen from an artifact location.

use argoexec_template::{ArtifactLocation, LocationKind};

use crate::driver::{ByteStream, Driver, Error, Secrets};
use crate::raw::Raw;

/// Every driver of this build, chosen by [`AnyDriver::for_location`].
#[derive(Debug, Clone)]
pub enum AnyDriver {
    /// `raw`: data in the template.
    Raw(Raw),
}

impl AnyDriver {
    /// The driver for a complete location, with the key to use with it. Credentials are read
    /// through `secrets` now, so a missing secret fails before any transfer starts.
    pub async fn for_location<S: Secrets>(
        location: &ArtifactLocation,
        secrets: &S,
    ) -> Result<(Self, String), Error> {
        let _ = secrets;
        let kind = location.kind().ok_or(Error::Location {
            driver: "artifact",
            reason: "no location kind is set".into(),
        })?;
        let key = location.key().unwrap_or_default().to_owned();
        match kind {
            LocationKind::Raw => {
                let data = location
                    .raw
                    .as_ref()
                    .and_then(|r| r.data.clone())
                    .unwrap_or_default();
                Ok((Self::Raw(Raw::new(data)), key))
            }
            other => Err(Error::Unsupported {
                driver: other.as_str(),
                operation: "transfers in this build (driver not implemented yet)",
            }),
        }
    }
}

impl Driver for AnyDriver {
    fn name(&self) -> &'static str {
        match self {
            Self::Raw(d) => d.name(),
        }
    }

    async fn get(&self, key: &str) -> Result<ByteStream, Error> {
        match self {
            Self::Raw(d) => d.get(key).await,
        }
    }

    async fn put(&self, key: &str, body: ByteStream) -> Result<(), Error> {
        match self {
            Self::Raw(d) => d.put(key, body).await,
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        match self {
            Self::Raw(d) => d.list(prefix).await,
        }
    }

    async fn is_dir(&self, key: &str) -> Result<bool, Error> {
        match self {
            Self::Raw(d) => d.is_dir(key).await,
        }
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        match self {
            Self::Raw(d) => d.delete(key).await,
        }
    }
}
