//! Artifact storage for the executor.
//!
//! Every driver moves bytes as streams; this crate adds what all of them share: one retry policy
//! that classifies failures by kind ([`RetryPolicy`], [`Retryable`]), and the sha256 and size of
//! every artifact computed while it streams ([`Digesting`]).

mod digest;
mod retry;

pub use digest::{Digest, DigestHandle, Digesting};
pub use retry::{
    GaveUp, RetryError, RetryPolicy, Retryable, S3_TRANSIENT_CODES, is_transient_io,
    is_transient_status,
};
