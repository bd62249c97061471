//! Alibaba Cloud OSS, through OSS's S3-compatible API and the [`S3`] driver (aws-sdk-s3, SigV4,
//! no aws-chunked bodies, which OSS refuses).
//!
//! The location is read as Argo's OSS SDK reads it:
//! - `endpoint`: a host (`oss-cn-hangzhou.aliyuncs.com`, plain HTTP as the OSS SDK defaults to)
//!   or a URL. An IP address is addressed path-style (`http://IP/bucket/key`), a name
//!   virtual-hosted (`bucket.oss-cn-hangzhou.aliyuncs.com`). The signing region is the region ID
//!   in the host (`oss-cn-hangzhou[-internal].aliyuncs.com` or `s3.oss-cn-hangzhou...` signs for
//!   `cn-hangzhou`), else `us-east-1`.
//! - `accessKeySecret`, `secretKeySecret`: static keys; `securityToken`: an STS token, sent as
//!   the session token (`x-amz-security-token`).
//! - `createBucketIfNotPresent`: creates the bucket before a save when it does not exist.
//! - `lifecycleRule`: with both day counts 0 (or absent) it is nothing, as in Argo. Anything
//!   else is refused: Argo replaces the bucket's whole lifecycle configuration with one rule,
//!   and the S3 server the tests run cannot check a rewrite of that.
//! - `useSDKCreds`: refused; Alibaba's default credential chain (RAM roles, OIDC) has no
//!   client here.
//!
//! Not carried over from Argo: bucket access logging when `ARGO_TRACE=1` (a debugging aid that
//! changes the bucket's configuration), and OSS's own error codes in the transient list
//! (5xx, 429 and S3's throttling codes are transient, as for S3). Verified against an
//! S3-compatible server (s3s-fs), not against OSS itself.

use argoexec_template::{CreateS3BucketOptions, OssArtifact, S3Artifact};

use crate::driver::{ByteStream, Driver, Error, Secrets};
use crate::s3::{S3, S3Tuning};

const DRIVER: &str = "oss";

/// A bucket in Alibaba Cloud OSS.
#[derive(Debug, Clone)]
pub struct Oss {
    inner: S3,
}

/// The signing region in an OSS host name, `oss-REGION[-internal].aliyuncs.com` (optionally
/// under `s3.`).
fn region_of(host: &str) -> Option<String> {
    let host = host.strip_prefix("s3.").unwrap_or(host);
    let first = host.split('.').next()?;
    let region = first.strip_prefix("oss-")?;
    let region = region.strip_suffix("-internal").unwrap_or(region);
    (!region.is_empty() && host.contains(".aliyuncs.com")).then(|| region.to_owned())
}

/// The endpoint as a URL (plain HTTP without a scheme, as the OSS SDK has it) and its host.
fn endpoint_url(endpoint: &str) -> (String, String) {
    let url = if endpoint.contains("://") {
        endpoint.to_owned()
    } else {
        format!("http://{endpoint}")
    };
    let host = url
        .split_once("://")
        .map_or(url.as_str(), |(_, rest)| rest)
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    // Without the port; an IPv6 literal keeps its brackets.
    let host = match host.rsplit_once(':') {
        Some((h, port)) if port.chars().all(|c| c.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    };
    (url.clone(), host.to_owned())
}

fn is_ip(host: &str) -> bool {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .is_ok()
}

/// The same error, told as this driver's.
fn as_oss(err: Error) -> Error {
    match err {
        Error::NotFound { key, .. } => Error::NotFound {
            driver: DRIVER,
            key,
        },
        Error::Location { reason, .. } => Error::Location {
            driver: DRIVER,
            reason,
        },
        Error::Unsupported { operation, .. } => Error::Unsupported {
            driver: DRIVER,
            operation,
        },
        other => other,
    }
}

impl Oss {
    /// The driver for a complete OSS location; credentials are read now.
    pub async fn from_location<S: Secrets>(
        location: &OssArtifact,
        secrets: &S,
        tuning: S3Tuning,
    ) -> Result<Self, Error> {
        let bad = |reason: &str| Error::Location {
            driver: DRIVER,
            reason: reason.to_owned(),
        };
        if location.use_sdk_creds.unwrap_or(false) {
            return Err(Error::Unsupported {
                driver: DRIVER,
                operation: "useSDKCreds (Alibaba's default credential chain); \
                            give accessKeySecret and secretKeySecret",
            });
        }
        if let Some(rule) = &location.lifecycle_rule {
            let days = |d: Option<i32>| d.unwrap_or(0);
            if days(rule.mark_infrequent_access_after_days) != 0
                || days(rule.mark_deletion_after_days) != 0
            {
                return Err(Error::Unsupported {
                    driver: DRIVER,
                    operation: "lifecycleRule with markInfrequentAccessAfterDays or \
                                markDeletionAfterDays set",
                });
            }
        }
        let endpoint = location
            .endpoint
            .as_deref()
            .filter(|e| !e.is_empty())
            .ok_or_else(|| bad("endpoint is not set"))?;
        if location.bucket.as_deref().is_none_or(str::is_empty) {
            return Err(bad("bucket is not set"));
        }
        if location.access_key_secret.is_none() || location.secret_key_secret.is_none() {
            return Err(bad(
                "accessKeySecret and secretKeySecret are required unless useSDKCreds is set",
            ));
        }
        let (url, host) = endpoint_url(endpoint);
        let s3 = S3Artifact {
            endpoint: Some(url),
            bucket: location.bucket.clone(),
            region: region_of(&host),
            access_key_secret: location.access_key_secret.clone(),
            secret_key_secret: location.secret_key_secret.clone(),
            create_bucket_if_not_present: location
                .create_bucket_if_not_present
                .unwrap_or(false)
                .then(CreateS3BucketOptions::default),
            addressing_style: Some(if is_ip(&host) { "path" } else { "virtual" }.to_owned()),
            key: location.key.clone(),
            ..S3Artifact::default()
        };
        let token = location.security_token.clone().filter(|t| !t.is_empty());
        let inner = S3::with_session_token(&s3, secrets, tuning, token)
            .await
            .map_err(as_oss)?;
        Ok(Self { inner })
    }
}

impl Driver for Oss {
    fn name(&self) -> &'static str {
        DRIVER
    }

    async fn get(&self, key: &str) -> Result<ByteStream, Error> {
        self.inner.get(key).await.map_err(as_oss)
    }

    async fn put(&self, key: &str, body: ByteStream) -> Result<(), Error> {
        self.inner.put(key, body).await.map_err(as_oss)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        self.inner.list(prefix).await.map_err(as_oss)
    }

    async fn is_dir(&self, key: &str) -> Result<bool, Error> {
        self.inner.is_dir(key).await.map_err(as_oss)
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        self.inner.delete(key).await.map_err(as_oss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_comes_from_the_oss_host() {
        assert_eq!(
            region_of("oss-cn-hangzhou.aliyuncs.com").as_deref(),
            Some("cn-hangzhou")
        );
        assert_eq!(
            region_of("oss-cn-beijing-internal.aliyuncs.com").as_deref(),
            Some("cn-beijing")
        );
        assert_eq!(
            region_of("s3.oss-ap-southeast-1.aliyuncs.com").as_deref(),
            Some("ap-southeast-1")
        );
        assert_eq!(region_of("127.0.0.1"), None);
        assert_eq!(region_of("minio.local"), None);
    }

    #[test]
    fn an_endpoint_without_scheme_is_plain_http_as_in_the_oss_sdk() {
        assert_eq!(
            endpoint_url("oss-cn-hangzhou.aliyuncs.com"),
            (
                "http://oss-cn-hangzhou.aliyuncs.com".to_owned(),
                "oss-cn-hangzhou.aliyuncs.com".to_owned()
            )
        );
        assert_eq!(
            endpoint_url("https://127.0.0.1:9000/"),
            ("https://127.0.0.1:9000/".to_owned(), "127.0.0.1".to_owned())
        );
        assert!(is_ip("127.0.0.1") && is_ip("[::1]") && !is_ip("oss.example"));
    }
}
