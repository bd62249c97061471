//! Artifact storage for the executor.
//!
//! Every backend implements one small streaming [`Driver`] trait (get, put, list, is-dir, delete;
//! only `get` is required). What all of them share lives here once: one retry policy that
//! classifies failures by kind ([`RetryPolicy`], [`Retryable`]); the sha256 and size of every
//! artifact, computed while it streams ([`Digesting`]); credentials behind the [`Secrets`] trait
//! ([`MountedSecrets`] reads Argo's `/argo/secret/<name>/<key>` files).
//!
//! Drivers so far: [`LocalStore`] (a directory, the local runner's default repository), [`Raw`],
//! `S3` (feature `s3`), `Http` and `Artifactory` (feature `http`), `Git` (feature `git`, input
//! only: a repository is checked out whole through [`Driver::checkout`]), `Azure` (feature
//! `azure`, object_store), `Gcs` (feature `gcs`, the JSON API on reqwest), `Oss` (feature
//! `oss`, OSS's S3-compatible API through `S3`) and `Hdfs` (feature `hdfs`, hdfs-native; no
//! Kerberos).

mod any;
#[cfg(feature = "http")]
mod artifactory;
#[cfg(feature = "azure")]
mod azure;
mod digest;
mod driver;
#[cfg(feature = "gcs")]
mod gcs;
#[cfg(feature = "git")]
mod git;
#[cfg(feature = "hdfs")]
mod hdfs;
#[cfg(feature = "http")]
mod http;
mod local;
#[cfg(feature = "http")]
mod oauth2;
#[cfg(feature = "oss")]
mod oss;
mod raw;
mod retry;
#[cfg(feature = "s3")]
mod s3;
mod transfer;
#[cfg(feature = "http")]
mod web;

pub use any::{AnyDriver, StorageOptions};
#[cfg(feature = "http")]
pub use artifactory::Artifactory;
#[cfg(feature = "azure")]
pub use azure::Azure;
pub use digest::{Digest, DigestHandle, Digesting};
pub use driver::{BoxError, ByteStream, Driver, Error, MountedSecrets, Secrets};
#[cfg(feature = "gcs")]
pub use gcs::Gcs;
#[cfg(feature = "git")]
pub use git::Git;
#[cfg(feature = "hdfs")]
pub use hdfs::Hdfs;
#[cfg(feature = "http")]
pub use http::Http;
pub use local::LocalStore;
#[cfg(feature = "oss")]
pub use oss::Oss;
pub use raw::Raw;
pub use retry::{
    GaveUp, RetryError, RetryPolicy, Retryable, S3_TRANSIENT_CODES, chain, is_transient_io,
    is_transient_status,
};
#[cfg(feature = "s3")]
pub use s3::{S3, S3Tuning, part_size};
pub use transfer::{download_dir, staging_path, upload_dir, write_whole};
#[cfg(feature = "http")]
pub use web::{HttpTimeouts, StatusError};
