//! Artifact storage for the executor.
//!
//! Every backend implements one small streaming [`Driver`] trait (get, put, list, is-dir, delete;
//! only `get` is required). What all of them share lives here once: one retry policy that
//! classifies failures by kind ([`RetryPolicy`], [`Retryable`]); the sha256 and size of every
//! artifact, computed while it streams ([`Digesting`]); credentials behind the [`Secrets`] trait
//! ([`MountedSecrets`] reads Argo's `/argo/secret/<name>/<key>` files).
//!
//! Drivers so far: [`LocalStore`] (a directory, the local runner's default repository) and
//! [`Raw`]. The network drivers (s3, gcs, azure, oss, http, artifactory, git, hdfs) are not
//! written yet.

mod any;
mod digest;
mod driver;
mod local;
mod raw;
mod retry;

pub use any::AnyDriver;
pub use digest::{Digest, DigestHandle, Digesting};
pub use driver::{BoxError, ByteStream, Driver, Error, MountedSecrets, Secrets};
pub use local::LocalStore;
pub use raw::Raw;
pub use retry::{
    GaveUp, RetryError, RetryPolicy, Retryable, S3_TRANSIENT_CODES, is_transient_io,
    is_transient_status,
};
