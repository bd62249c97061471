//! One enum over every driver, chosen from an artifact location.

use argoexec_template::{ArtifactLocation, LocationKind};

#[cfg(feature = "azure")]
use crate::azure::Azure;
use crate::driver::{ByteStream, Driver, Error, Secrets};
#[cfg(feature = "gcs")]
use crate::gcs::Gcs;
#[cfg(feature = "git")]
use crate::git::Git;
#[cfg(feature = "hdfs")]
use crate::hdfs::Hdfs;
#[cfg(feature = "oss")]
use crate::oss::Oss;
use crate::raw::Raw;
#[cfg(feature = "s3")]
use crate::s3::{S3, S3Tuning};
#[cfg(feature = "http")]
use crate::{artifactory::Artifactory, http::Http};
use std::path::Path;

/// Settings drivers take beyond the location.
#[derive(Debug, Clone, Default)]
pub struct StorageOptions {
    /// S3 upload tuning.
    #[cfg(feature = "s3")]
    pub s3: S3Tuning,
    /// The GCS endpoint to use instead of Google's (`STORAGE_EMULATOR_HOST`: `host:port`, plain
    /// HTTP, or a URL). Requests to it carry no credentials unless a key is given, as with
    /// Google's own clients.
    pub gcs_endpoint: Option<String>,
}

/// Every driver of this build, chosen by [`AnyDriver::for_location`].
#[derive(Debug, Clone)]
pub enum AnyDriver {
    /// `raw`: data in the template.
    Raw(Raw),
    /// `s3`: S3 and S3-compatible servers.
    #[cfg(feature = "s3")]
    S3(S3),
    /// `azure`: Azure Blob Storage.
    #[cfg(feature = "azure")]
    Azure(Azure),
    /// `gcs`: Google Cloud Storage.
    #[cfg(feature = "gcs")]
    Gcs(Gcs),
    /// `oss`: Alibaba Cloud OSS.
    #[cfg(feature = "oss")]
    Oss(Oss),
    /// `http`: GET and PUT on a URL.
    #[cfg(feature = "http")]
    Http(Http),
    /// `artifactory`: an Artifactory repository (HTTP with basic auth).
    #[cfg(feature = "http")]
    Artifactory(Artifactory),
    /// `git`: a repository, checked out whole (input only).
    #[cfg(feature = "git")]
    Git(Git),
    /// `hdfs`: a file in HDFS.
    #[cfg(feature = "hdfs")]
    Hdfs(Hdfs),
}

impl AnyDriver {
    /// The driver for a complete location, with the key to use with it. Credentials are read
    /// through `secrets` now, so a missing secret fails before any transfer starts.
    pub async fn for_location<S: Secrets>(
        location: &ArtifactLocation,
        secrets: &S,
        options: &StorageOptions,
    ) -> Result<(Self, String), Error> {
        // Without driver features (a build that only names the trait) neither is read.
        let _ = (options, secrets);
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
            #[cfg(feature = "s3")]
            LocationKind::S3 => {
                let s3 = location.s3.as_ref().ok_or(Error::Location {
                    driver: "s3",
                    reason: "no s3 location".into(),
                })?;
                Ok((
                    Self::S3(S3::from_location(s3, secrets, options.s3).await?),
                    key,
                ))
            }
            #[cfg(feature = "azure")]
            LocationKind::Azure => {
                let azure = location.azure.as_ref().ok_or(Error::Location {
                    driver: "azure",
                    reason: "no azure location".into(),
                })?;
                Ok((
                    Self::Azure(Azure::from_location(azure, secrets).await?),
                    key,
                ))
            }
            #[cfg(feature = "gcs")]
            LocationKind::Gcs => {
                let gcs = location.gcs.as_ref().ok_or(Error::Location {
                    driver: "gcs",
                    reason: "no gcs location".into(),
                })?;
                let driver = Gcs::from_location(gcs, secrets, options.gcs_endpoint.as_deref());
                Ok((Self::Gcs(driver.await?), key))
            }
            #[cfg(feature = "oss")]
            LocationKind::Oss => {
                let oss = location.oss.as_ref().ok_or(Error::Location {
                    driver: "oss",
                    reason: "no oss location".into(),
                })?;
                let driver = Oss::from_location(oss, secrets, options.s3);
                Ok((Self::Oss(driver.await?), key))
            }
            #[cfg(feature = "http")]
            LocationKind::Http => {
                let http = location.http.as_ref().ok_or(Error::Location {
                    driver: "http",
                    reason: "no http location".into(),
                })?;
                let url = http.url.clone().unwrap_or_default();
                Ok((Self::Http(Http::from_location(http, secrets).await?), url))
            }
            #[cfg(feature = "http")]
            LocationKind::Artifactory => {
                let art = location.artifactory.as_ref().ok_or(Error::Location {
                    driver: "artifactory",
                    reason: "no artifactory location".into(),
                })?;
                let url = art.url.clone().unwrap_or_default();
                Ok((
                    Self::Artifactory(Artifactory::from_location(art, secrets).await?),
                    url,
                ))
            }
            #[cfg(feature = "git")]
            LocationKind::Git => {
                let git = location.git.as_ref().ok_or(Error::Location {
                    driver: "git",
                    reason: "no git location".into(),
                })?;
                let git = Git::from_location(git, secrets).await?;
                let repo = git.repo().to_owned();
                Ok((Self::Git(git), repo))
            }
            #[cfg(feature = "hdfs")]
            LocationKind::Hdfs => {
                let hdfs = location.hdfs.as_ref().ok_or(Error::Location {
                    driver: "hdfs",
                    reason: "no hdfs location".into(),
                })?;
                Ok((
                    Self::Hdfs(Hdfs::from_location_with(hdfs, secrets).await?),
                    key,
                ))
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
            #[cfg(feature = "s3")]
            Self::S3(d) => d.name(),
            #[cfg(feature = "azure")]
            Self::Azure(d) => d.name(),
            #[cfg(feature = "gcs")]
            Self::Gcs(d) => d.name(),
            #[cfg(feature = "oss")]
            Self::Oss(d) => d.name(),
            #[cfg(feature = "http")]
            Self::Http(d) => d.name(),
            #[cfg(feature = "http")]
            Self::Artifactory(d) => d.name(),
            #[cfg(feature = "git")]
            Self::Git(d) => d.name(),
            #[cfg(feature = "hdfs")]
            Self::Hdfs(d) => d.name(),
        }
    }

    async fn get(&self, key: &str) -> Result<ByteStream, Error> {
        match self {
            Self::Raw(d) => d.get(key).await,
            #[cfg(feature = "s3")]
            Self::S3(d) => d.get(key).await,
            #[cfg(feature = "azure")]
            Self::Azure(d) => d.get(key).await,
            #[cfg(feature = "gcs")]
            Self::Gcs(d) => d.get(key).await,
            #[cfg(feature = "oss")]
            Self::Oss(d) => d.get(key).await,
            #[cfg(feature = "http")]
            Self::Http(d) => d.get(key).await,
            #[cfg(feature = "http")]
            Self::Artifactory(d) => d.get(key).await,
            #[cfg(feature = "git")]
            Self::Git(d) => d.get(key).await,
            #[cfg(feature = "hdfs")]
            Self::Hdfs(d) => d.get(key).await,
        }
    }

    async fn put(&self, key: &str, body: ByteStream) -> Result<(), Error> {
        match self {
            Self::Raw(d) => d.put(key, body).await,
            #[cfg(feature = "s3")]
            Self::S3(d) => d.put(key, body).await,
            #[cfg(feature = "azure")]
            Self::Azure(d) => d.put(key, body).await,
            #[cfg(feature = "gcs")]
            Self::Gcs(d) => d.put(key, body).await,
            #[cfg(feature = "oss")]
            Self::Oss(d) => d.put(key, body).await,
            #[cfg(feature = "http")]
            Self::Http(d) => d.put(key, body).await,
            #[cfg(feature = "http")]
            Self::Artifactory(d) => d.put(key, body).await,
            #[cfg(feature = "git")]
            Self::Git(d) => d.put(key, body).await,
            #[cfg(feature = "hdfs")]
            Self::Hdfs(d) => d.put(key, body).await,
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        match self {
            Self::Raw(d) => d.list(prefix).await,
            #[cfg(feature = "s3")]
            Self::S3(d) => d.list(prefix).await,
            #[cfg(feature = "azure")]
            Self::Azure(d) => d.list(prefix).await,
            #[cfg(feature = "gcs")]
            Self::Gcs(d) => d.list(prefix).await,
            #[cfg(feature = "oss")]
            Self::Oss(d) => d.list(prefix).await,
            #[cfg(feature = "http")]
            Self::Http(d) => d.list(prefix).await,
            #[cfg(feature = "http")]
            Self::Artifactory(d) => d.list(prefix).await,
            #[cfg(feature = "git")]
            Self::Git(d) => d.list(prefix).await,
            #[cfg(feature = "hdfs")]
            Self::Hdfs(d) => d.list(prefix).await,
        }
    }

    async fn is_dir(&self, key: &str) -> Result<bool, Error> {
        match self {
            Self::Raw(d) => d.is_dir(key).await,
            #[cfg(feature = "s3")]
            Self::S3(d) => d.is_dir(key).await,
            #[cfg(feature = "azure")]
            Self::Azure(d) => d.is_dir(key).await,
            #[cfg(feature = "gcs")]
            Self::Gcs(d) => d.is_dir(key).await,
            #[cfg(feature = "oss")]
            Self::Oss(d) => d.is_dir(key).await,
            #[cfg(feature = "http")]
            Self::Http(d) => d.is_dir(key).await,
            #[cfg(feature = "http")]
            Self::Artifactory(d) => d.is_dir(key).await,
            #[cfg(feature = "git")]
            Self::Git(d) => d.is_dir(key).await,
            #[cfg(feature = "hdfs")]
            Self::Hdfs(d) => d.is_dir(key).await,
        }
    }

    fn is_checkout(&self) -> bool {
        match self {
            Self::Raw(d) => d.is_checkout(),
            #[cfg(feature = "s3")]
            Self::S3(d) => d.is_checkout(),
            #[cfg(feature = "http")]
            Self::Http(d) => d.is_checkout(),
            #[cfg(feature = "http")]
            Self::Artifactory(d) => d.is_checkout(),
            #[cfg(feature = "git")]
            Self::Git(d) => d.is_checkout(),
            #[cfg(feature = "hdfs")]
            Self::Hdfs(d) => d.is_checkout(),
            #[cfg(feature = "azure")]
            Self::Azure(d) => d.is_checkout(),
            #[cfg(feature = "gcs")]
            Self::Gcs(d) => d.is_checkout(),
            #[cfg(feature = "oss")]
            Self::Oss(d) => d.is_checkout(),
        }
    }

    async fn checkout(&self, dest: &Path) -> Result<String, Error> {
        match self {
            Self::Raw(d) => d.checkout(dest).await,
            #[cfg(feature = "s3")]
            Self::S3(d) => d.checkout(dest).await,
            #[cfg(feature = "http")]
            Self::Http(d) => d.checkout(dest).await,
            #[cfg(feature = "http")]
            Self::Artifactory(d) => d.checkout(dest).await,
            #[cfg(feature = "git")]
            Self::Git(d) => d.checkout(dest).await,
            #[cfg(feature = "hdfs")]
            Self::Hdfs(d) => d.checkout(dest).await,
            #[cfg(feature = "azure")]
            Self::Azure(d) => d.checkout(dest).await,
            #[cfg(feature = "gcs")]
            Self::Gcs(d) => d.checkout(dest).await,
            #[cfg(feature = "oss")]
            Self::Oss(d) => d.checkout(dest).await,
        }
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        match self {
            Self::Raw(d) => d.delete(key).await,
            #[cfg(feature = "s3")]
            Self::S3(d) => d.delete(key).await,
            #[cfg(feature = "azure")]
            Self::Azure(d) => d.delete(key).await,
            #[cfg(feature = "gcs")]
            Self::Gcs(d) => d.delete(key).await,
            #[cfg(feature = "oss")]
            Self::Oss(d) => d.delete(key).await,
            #[cfg(feature = "http")]
            Self::Http(d) => d.delete(key).await,
            #[cfg(feature = "http")]
            Self::Artifactory(d) => d.delete(key).await,
            #[cfg(feature = "git")]
            Self::Git(d) => d.delete(key).await,
            #[cfg(feature = "hdfs")]
            Self::Hdfs(d) => d.delete(key).await,
        }
    }
}
