//! S3 and S3-compatible servers, through aws-sdk-s3.
//!
//! Downloads stream the response body. Uploads stream too: objects smaller than one part go up in
//! one request; larger ones as a multipart upload with a bounded number of parts in flight, the
//! part size doubling every 1,000 parts so S3's 10,000-part limit is never reached whatever the
//! size. A failed multipart upload is aborted, so a retry starts from nothing.

use std::sync::Arc;

use argoexec_template::S3Artifact;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream as AwsBody;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use base64::Engine as _;
use bytes::{Bytes, BytesMut};
use futures::{StreamExt as _, TryStreamExt as _};
use md5::Digest as _;

use crate::Secrets;
use crate::driver::{ByteStream, Driver, Error};
use crate::retry::{S3_TRANSIENT_CODES, is_transient_status};

const DRIVER: &str = "s3";
/// S3's smallest part (but the last).
const MIN_PART: usize = 5 * 1024 * 1024;
/// Parts at one size before the size doubles.
const PARTS_PER_STEP: usize = 1000;

/// Upload tuning: part size and parts in flight (`ARTIFACT_S3_UPLOAD_*`).
#[derive(Debug, Clone, Copy)]
pub struct S3Tuning {
    /// The size of the first parts, in bytes (at least 5 MiB).
    pub part_size: usize,
    /// Parts uploaded at once.
    pub concurrency: usize,
}

impl Default for S3Tuning {
    fn default() -> Self {
        Self {
            part_size: 8 * 1024 * 1024,
            concurrency: 4,
        }
    }
}

/// Sets the encryption headers of a write request. A macro because `PutObject` and
/// `CreateMultipartUpload` have distinct builder types with the same setters.
macro_rules! with_encryption {
    ($req:expr, $enc:expr) => {{
        let mut req = $req;
        if let Some((id, ctx)) = &$enc.kms {
            req = req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .ssekms_key_id(id)
                .set_ssekms_encryption_context(ctx.clone());
        } else if $enc.s3_managed {
            req = req.server_side_encryption(ServerSideEncryption::Aes256);
        }
        if let Some((k, md5)) = &$enc.customer {
            req = req
                .sse_customer_algorithm("AES256")
                .sse_customer_key(k)
                .sse_customer_key_md5(md5);
        }
        req
    }};
}

/// Server-side encryption settings for writes (and, for SSE-C, reads).
#[derive(Clone, Default)]
struct Encryption {
    /// `aws:kms` with this key (empty: the bucket's default KMS key).
    kms: Option<(String, Option<String>)>,
    /// SSE-S3 (`AES256`).
    s3_managed: bool,
    /// SSE-C: base64 of the key and of its MD5.
    customer: Option<(String, String)>,
}

impl std::fmt::Debug for Encryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material.
        f.debug_struct("Encryption")
            .field("kms", &self.kms.as_ref().map(|(id, _)| id))
            .field("s3_managed", &self.s3_managed)
            .field("customer", &self.customer.is_some())
            .finish()
    }
}

/// A bucket on an S3-compatible server.
#[derive(Debug, Clone)]
pub struct S3 {
    client: Client,
    bucket: String,
    create_bucket: Option<bool>,
    encryption: Arc<Encryption>,
    tuning: S3Tuning,
}

fn secret_ref(
    selector: Option<&k8s_openapi::api::core::v1::SecretKeySelector>,
) -> Option<(&str, &str)> {
    selector.map(|s| (s.name.as_str(), s.key.as_str()))
}

async fn read_secret<S: Secrets>(
    secrets: &S,
    r: Option<(&str, &str)>,
) -> Result<Option<String>, Error> {
    match r {
        None => Ok(None),
        Some((name, key)) => {
            let bytes = secrets.get(name, key).await?;
            Ok(Some(String::from_utf8_lossy(&bytes).trim().to_owned()))
        }
    }
}

/// An HTTPS client that trusts the system's roots and the PEM certificates of a `caSecret`, as
/// Argo appends the secret's CA to the system pool. Same TLS stack as the SDK's default client.
fn client_trusting(pem: Vec<u8>) -> Result<aws_sdk_s3::config::SharedHttpClient, Error> {
    use aws_smithy_http_client::tls;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(Error::Location {
            driver: DRIVER,
            reason: "caSecret holds no PEM certificate (expected -----BEGIN CERTIFICATE-----)"
                .into(),
        });
    }
    let trust = tls::TrustStore::default().with_pem_certificate(pem);
    let context = tls::TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .map_err(|e| Error::Location {
            driver: DRIVER,
            reason: format!("caSecret: {e}"),
        })?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::AwsLc,
        ))
        .tls_context(context)
        .build_https())
}

impl S3 {
    /// The driver for a complete S3 location; credentials are read now.
    pub async fn from_location<S: Secrets>(
        location: &S3Artifact,
        secrets: &S,
        tuning: S3Tuning,
    ) -> Result<Self, Error> {
        Self::with_session_token(location, secrets, tuning, None).await
    }

    /// As [`S3::from_location`], with a session token given as text (OSS's `securityToken`)
    /// rather than through `sessionTokenSecret`.
    pub(crate) async fn with_session_token<S: Secrets>(
        location: &S3Artifact,
        secrets: &S,
        tuning: S3Tuning,
        session_token: Option<String>,
    ) -> Result<Self, Error> {
        let bad = |reason: &str| Error::Location {
            driver: DRIVER,
            reason: reason.to_owned(),
        };
        let bucket = location
            .bucket
            .clone()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| bad("bucket is not set"))?;
        let region = location
            .region
            .clone()
            .filter(|r| !r.is_empty())
            .unwrap_or_else(|| "us-east-1".to_owned());
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.clone()));
        if !location.use_sdk_creds.unwrap_or(false) {
            let access =
                read_secret(secrets, secret_ref(location.access_key_secret.as_deref())).await?;
            let secret =
                read_secret(secrets, secret_ref(location.secret_key_secret.as_deref())).await?;
            let token = match session_token {
                Some(token) => Some(token),
                None => {
                    read_secret(
                        secrets,
                        secret_ref(location.session_token_secret.as_deref()),
                    )
                    .await?
                }
            };
            match (access, secret) {
                (Some(a), Some(s)) => {
                    loader = loader.credentials_provider(aws_sdk_s3::config::Credentials::new(
                        a,
                        s,
                        token,
                        None,
                        "argo-secret",
                    ));
                }
                (None, None) => loader = loader.no_credentials(),
                _ => {
                    return Err(bad(
                        "accessKeySecret and secretKeySecret must be set together",
                    ));
                }
            }
        }
        let shared = loader.load().await;
        let mut config = aws_sdk_s3::config::Builder::from(&shared)
            // One retry policy for every driver: ours (RetryPolicy), not the SDK's as well, which
            // would multiply attempts and hide each retry's cause.
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            // S3-compatible servers store aws-chunked trailing checksums verbatim; integrity is
            // checked by our own digest instead.
            .request_checksum_calculation(
                aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired,
            )
            .response_checksum_validation(
                aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired,
            );
        if let Some(arn) = location.role_arn.as_deref().filter(|a| !a.is_empty()) {
            let provider = aws_config::sts::AssumeRoleProvider::builder(arn)
                .session_name("argo-workflows")
                .region(aws_config::Region::new(region))
                .configure(&shared)
                .build()
                .await;
            config = config.credentials_provider(provider);
        }
        if let Some(sel) = location.ca_secret.as_deref() {
            let pem = secrets.get(&sel.name, &sel.key).await?;
            config = config.http_client(client_trusting(pem)?);
        }
        let endpoint = location.endpoint.as_deref().filter(|e| !e.is_empty());
        if let Some(endpoint) = endpoint {
            let url = if endpoint.contains("://") {
                endpoint.to_owned()
            } else if location.insecure.unwrap_or(false) {
                format!("http://{endpoint}")
            } else {
                format!("https://{endpoint}")
            };
            config = config.endpoint_url(url);
        }
        let path_style = match location.addressing_style.as_deref() {
            Some(s) if s.eq_ignore_ascii_case("path") => true,
            Some(s)
                if s.eq_ignore_ascii_case("virtual") || s.eq_ignore_ascii_case("virtualhosted") =>
            {
                false
            }
            Some("") | Some("auto") | Some("Auto") | None => endpoint.is_some(),
            Some(other) => {
                return Err(bad(&format!(
                    "addressingStyle {other:?}: expected path, virtual or auto"
                )));
            }
        };
        config = config.force_path_style(path_style);
        let mut encryption = Encryption::default();
        if let Some(opts) = &location.encryption_options {
            if opts.enable_encryption.unwrap_or(false) {
                match opts.kms_key_id.as_deref() {
                    Some(id) if !id.is_empty() => {
                        encryption.kms = Some((id.to_owned(), opts.kms_encryption_context.clone()));
                    }
                    _ => encryption.s3_managed = true,
                }
            }
            if let Some(sel) = opts.server_side_customer_key_secret.as_deref() {
                let key = secrets.get(&sel.name, &sel.key).await?;
                if encryption.kms.is_some() {
                    return Err(bad("SSE-C and SSE-KMS cannot be used together"));
                }
                let b64 = base64::engine::general_purpose::STANDARD;
                encryption.customer = Some((b64.encode(&key), b64.encode(md5::Md5::digest(&key))));
            }
        }
        Ok(Self {
            client: Client::from_conf(config.build()),
            bucket,
            create_bucket: location
                .create_bucket_if_not_present
                .as_ref()
                .map(|c| c.object_locking.unwrap_or(false)),
            encryption: Arc::new(encryption),
            tuning: S3Tuning {
                part_size: tuning.part_size.max(MIN_PART),
                concurrency: tuning.concurrency.max(1),
            },
        })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket when `createBucketIfNotPresent` asks for it; an existing bucket is fine.
    async fn ensure_bucket(&self) -> Result<(), Error> {
        let Some(object_locking) = self.create_bucket else {
            return Ok(());
        };
        if self
            .client
            .head_bucket()
            .bucket(&self.bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        let result = self
            .client
            .create_bucket()
            .bucket(&self.bucket)
            .object_lock_enabled_for_bucket(object_locking)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.code(),
                    Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(classify("create bucket", &self.bucket, e)),
        }
    }

    async fn put_single(&self, key: &str, body: Bytes) -> Result<(), Error> {
        let enc = &self.encryption;
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_length(i64::try_from(body.len()).unwrap_or(i64::MAX))
            .body(AwsBody::from(body));
        req = with_encryption!(req, enc);
        req.send().await.map_err(|e| classify("put", key, e))?;
        Ok(())
    }

    async fn put_multipart(
        &self,
        key: &str,
        first: Bytes,
        mut body: ByteStream,
    ) -> Result<(), Error> {
        let enc = &self.encryption;
        let mut create = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key);
        create = with_encryption!(create, enc);
        let upload = create.send().await.map_err(|e| classify("put", key, e))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();
        let result = self.upload_parts(key, &upload_id, first, &mut body).await;
        match result {
            Ok(parts) => {
                self.client
                    .complete_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .multipart_upload(
                        CompletedMultipartUpload::builder()
                            .set_parts(Some(parts))
                            .build(),
                    )
                    .send()
                    .await
                    .map_err(|e| classify("put", key, e))?;
                Ok(())
            }
            Err(err) => {
                // Leave nothing behind for the next attempt.
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                Err(err)
            }
        }
    }

    /// Cuts the stream into parts and uploads up to `concurrency` of them at once.
    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        first: Bytes,
        body: &mut ByteStream,
    ) -> Result<Vec<CompletedPart>, Error> {
        let mut in_flight = futures::stream::FuturesUnordered::new();
        let mut done = Vec::new();
        let mut number: i32 = 1;
        let mut next = Some(first);
        loop {
            let part = match next.take() {
                Some(p) => Some(p),
                None => {
                    let size = part_size(
                        self.tuning.part_size,
                        usize::try_from(number).unwrap_or(usize::MAX),
                    );
                    read_part(body, size)
                        .await
                        .map_err(|e| Error::io("read upload body", key, e))?
                }
            };
            let Some(part) = part else { break };
            let n = number;
            number += 1;
            let enc = Arc::clone(&self.encryption);
            let req = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(n)
                .content_length(i64::try_from(part.len()).unwrap_or(i64::MAX))
                .body(AwsBody::from(part));
            let req = match &enc.customer {
                Some((k, md5)) => req
                    .sse_customer_algorithm("AES256")
                    .sse_customer_key(k)
                    .sse_customer_key_md5(md5),
                None => req,
            };
            in_flight.push(async move {
                let out = req.send().await.map_err(|e| classify("put part", key, e))?;
                Ok::<_, Error>(
                    CompletedPart::builder()
                        .part_number(n)
                        .set_e_tag(out.e_tag)
                        .build(),
                )
            });
            while in_flight.len() >= self.tuning.concurrency {
                if let Some(done_part) = in_flight.next().await {
                    done.push(done_part?);
                }
            }
        }
        while let Some(done_part) = in_flight.next().await {
            done.push(done_part?);
        }
        done.sort_by_key(|p| p.part_number());
        Ok(done)
    }
}

/// The size of part `number` (1-based): the base size, doubled every 1,000 parts.
pub fn part_size(base: usize, number: usize) -> usize {
    let step = u32::try_from(number.saturating_sub(1) / PARTS_PER_STEP).unwrap_or(u32::MAX);
    base.saturating_mul(2usize.saturating_pow(step))
}

/// Reads up to `size` bytes from the stream; `None` at its end.
async fn read_part(body: &mut ByteStream, size: usize) -> std::io::Result<Option<Bytes>> {
    let mut buf = BytesMut::new();
    while buf.len() < size {
        match body.next().await {
            Some(chunk) => buf.extend_from_slice(&chunk?),
            None => break,
        }
    }
    // A chunk may overshoot the part size; that is fine for S3 (parts need only a minimum).
    Ok((!buf.is_empty()).then(|| buf.freeze()))
}

/// Classifies an SDK failure: not found, transient (dispatch and timeout failures, 5xx, 429 and
/// S3's throttling codes) or permanent.
fn classify<E, R>(operation: &'static str, key: &str, err: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
    SdkError<E, R>: std::error::Error + Send + Sync + 'static,
{
    let status = match &err {
        SdkError::ServiceError(e) => Some(http_status(e.raw())),
        _ => None,
    };
    let code = err.code().map(str::to_owned);
    let not_found = matches!(
        code.as_deref(),
        Some("NoSuchKey" | "NotFound" | "NoSuchBucket")
    ) || status == Some(404);
    if not_found {
        return Error::NotFound {
            driver: DRIVER,
            key: key.to_owned(),
        };
    }
    let transient = match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(_) => {
            code.as_deref()
                .is_some_and(|c| S3_TRANSIENT_CODES.contains(&c))
                || status.is_some_and(is_transient_status)
        }
        _ => false,
    };
    let message = match (&code, err.message()) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c.clone(),
        _ => crate::retry::chain(&err),
    };
    Error::request(transient, operation, key, std::io::Error::other(message))
}

fn http_status<R: std::fmt::Debug>(raw: &R) -> u16 {
    // The raw response's Debug output carries its status; the SDK's typed accessor differs per
    // operation, so read it generically.
    let text = format!("{raw:?}");
    text.split("status: StatusCode(")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

impl Driver for S3 {
    fn name(&self) -> &'static str {
        DRIVER
    }

    async fn get(&self, key: &str) -> Result<ByteStream, Error> {
        let mut req = self.client.get_object().bucket(&self.bucket).key(key);
        if let Some((k, md5)) = &self.encryption.customer {
            req = req
                .sse_customer_algorithm("AES256")
                .sse_customer_key(k)
                .sse_customer_key_md5(md5);
        }
        let out = req.send().await.map_err(|e| classify("get", key, e))?;
        let key = key.to_owned();
        let reader = out.body.into_async_read();
        Ok(
            tokio_util::io::ReaderStream::with_capacity(reader, 256 * 1024)
                .map_err(move |e| {
                    // The response started: a failure now is the connection's, worth a retry.
                    tracing::debug!(key = %key, error = %e, "s3 body read failed");
                    std::io::Error::new(std::io::ErrorKind::ConnectionAborted, e)
                })
                .boxed(),
        )
    }

    async fn put(&self, key: &str, mut body: ByteStream) -> Result<(), Error> {
        self.ensure_bucket().await?;
        let first = read_part(&mut body, part_size(self.tuning.part_size, 1))
            .await
            .map_err(|e| Error::io("read upload body", key, e))?
            .unwrap_or_default();
        if first.len() < self.tuning.part_size {
            return self.put_single(key, first).await;
        }
        // More may follow: a multipart upload (a body of exactly one part is fine too).
        self.put_multipart(key, first, body).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| classify("list", prefix, e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        Ok(keys)
    }

    async fn is_dir(&self, key: &str) -> Result<bool, Error> {
        let prefix = format!("{}/", key.trim_end_matches('/'));
        let page = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&prefix)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| classify("list", &prefix, e))?;
        Ok(!page.contents().is_empty())
    }

    /// Deletes an object; a key ending in `/` deletes every object under that prefix, as Argo's
    /// driver does. A missing bucket is an error, not "not found": nothing was deleted, and the
    /// location is likely wrong.
    async fn delete(&self, key: &str) -> Result<(), Error> {
        let keys = if key.ends_with('/') {
            self.list(key)
                .await
                .map_err(|e| self.missing_bucket("list", key, e))?
        } else {
            vec![key.to_owned()]
        };
        for key in &keys {
            let deleted = self
                .client
                .delete_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await;
            if let Err(err) = deleted {
                let code = err.code().map(str::to_owned);
                let error = classify("delete", key, err);
                if code.as_deref() == Some("NoSuchBucket") {
                    return Err(self.missing_bucket("delete", key, error));
                }
                return Err(error);
            }
        }
        Ok(())
    }
}

impl S3 {
    /// `error` as a permanent failure when it says the bucket does not exist (every "not found"
    /// of a listing does); other errors as they are.
    fn missing_bucket(&self, operation: &'static str, key: &str, error: Error) -> Error {
        if !error.is_not_found() {
            return error;
        }
        Error::request(
            false,
            operation,
            key,
            std::io::Error::other(format!(
                "NoSuchBucket: the bucket {:?} does not exist",
                self.bucket
            )),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_size_doubles_so_the_part_limit_is_never_hit() {
        let base = 8 << 20;
        assert_eq!(part_size(base, 1), base);
        assert_eq!(part_size(base, 1000), base);
        assert_eq!(part_size(base, 1001), 2 * base);
        // 10,000 parts reach far beyond S3's 5 TiB object limit.
        let total: usize = (1..=10_000).map(|n| part_size(base, n)).sum();
        assert!(total > 5 << 40, "{total}");
    }
}
