//! Google Cloud Storage, through its JSON API on the HTTP driver's client (reqwest over rustls
//! with aws-lc-rs).
//!
//! Why not `object_store`'s GCS client: it speaks the XML API, which failed against the
//! emulators, and it looks for the metadata server even when told where to go.
//!
//! - Download: `GET /storage/v1/b/B/o/O?alt=media`, streamed.
//! - Upload: a body smaller than one chunk goes up in one `uploadType=media` request; a larger
//!   one through a resumable session, in chunks of 8 MiB (a multiple of 256 KiB, as
//!   the API requires), one in flight, so memory stays at about one chunk. The object appears
//!   when the last chunk lands; a failed session is cancelled.
//! - List: `prefix=` with pagination; names ending in `/` (folder placeholders) are skipped, as
//!   Argo skips them. A key with objects under `key/` is a directory.
//! - Delete: an object already gone counts as deleted, so a retried delete does not fail.
//!
//! Credentials: `serviceAccountKeySecret` holds a service account's JSON key; each access token
//! comes from a self-signed RS256 assertion (scope `devstorage.read_write`, as Argo asks) and is
//! renewed a minute before it expires. Without a key, tokens come from the metadata server
//! (GKE Workload Identity, GCE), as Argo assumes; `GOOGLE_APPLICATION_CREDENTIALS` and gcloud's
//! user credentials are not read. With [`StorageOptions::gcs_endpoint`](crate::StorageOptions)
//! (`STORAGE_EMULATOR_HOST`), requests go there, unauthenticated unless a key is given, and the
//! metadata server is never asked.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use argoexec_template::GcsArtifact;
use bytes::{Buf as _, Bytes, BytesMut};
use futures::{StreamExt as _, TryStreamExt as _};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, LOCATION, RANGE};
use reqwest::{Method, RequestBuilder, Response, Url};

use crate::driver::{ByteStream, Driver, Error, Secrets, text_secret};
use crate::web::{HttpTimeouts, body_error, check, client, request_error};

const DRIVER: &str = "gcs";
/// Google's endpoint.
const GOOGLE: &str = "https://storage.googleapis.com";
/// The OAuth2 scope Argo asks for.
const SCOPE: &str = "https://www.googleapis.com/auth/devstorage.read_write";
/// The metadata server's token endpoint (GKE Workload Identity, GCE).
const METADATA_TOKEN: &str =
    "http://169.254.169.254/computeMetadata/v1/instance/service-accounts/default/token";
/// The size of one chunk of a resumable upload: a multiple of 256 KiB.
const CHUNK_SIZE: usize = 32 * 256 * 1024;
/// A token is renewed this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(60);

/// A bucket in Google Cloud Storage.
#[derive(Debug, Clone)]
pub struct Gcs {
    client: reqwest::Client,
    base: Url,
    bucket: String,
    auth: Arc<Auth>,
}

/// Where access tokens come from.
enum Credentials {
    /// None: an emulator.
    Anonymous,
    /// A service account's key.
    ServiceAccount {
        email: String,
        key_id: String,
        key: jsonwebtoken::EncodingKey,
        token_uri: String,
    },
    /// The metadata server.
    Metadata,
}

/// Credentials and the current token.
struct Auth {
    credentials: Credentials,
    token: Mutex<Option<(String, Instant)>>,
}

// Hand-written so that keys and tokens never reach a log line.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match &self.credentials {
            Credentials::Anonymous => "Anonymous",
            Credentials::ServiceAccount { .. } => "ServiceAccount(..)",
            Credentials::Metadata => "Metadata",
        })
    }
}

/// The base URL for `STORAGE_EMULATOR_HOST`: `host:port` means plain HTTP, as Google's clients
/// read it.
fn emulator_base(host: &str) -> Result<Url, Error> {
    let text = if host.contains("://") {
        host.to_owned()
    } else {
        format!("http://{host}")
    };
    Url::parse(&text).map_err(|e| Error::Location {
        driver: DRIVER,
        reason: format!("STORAGE_EMULATOR_HOST {host:?} is not a host or URL: {e}"),
    })
}

/// Reads a service account's JSON key.
fn service_account(json: &str) -> Result<Credentials, String> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let field = |name: &str| value.get(name).and_then(|v| v.as_str()).unwrap_or_default();
    if field("type") != "service_account" {
        return Err(format!(
            "type is {:?}: expected \"service_account\"",
            field("type")
        ));
    }
    let (email, pem) = (field("client_email"), field("private_key"));
    if email.is_empty() || pem.is_empty() {
        return Err("client_email and private_key must be set".into());
    }
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes())
        .map_err(|e| format!("private_key: {e}"))?;
    let token_uri = match field("token_uri") {
        "" => "https://oauth2.googleapis.com/token".to_owned(),
        uri => uri.to_owned(),
    };
    Ok(Credentials::ServiceAccount {
        email: email.to_owned(),
        key_id: field("private_key_id").to_owned(),
        key,
        token_uri,
    })
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Auth {
    /// A valid token, renewed when it is about to expire; `None` for an emulator.
    async fn token(&self, client: &reqwest::Client) -> Result<Option<String>, Error> {
        if matches!(self.credentials, Credentials::Anonymous) {
            return Ok(None);
        }
        {
            let cached = self.token.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((token, expires)) = cached.as_ref()
                && Instant::now() + TOKEN_MARGIN < *expires
            {
                return Ok(Some(token.clone()));
            }
        }
        // Two callers may both fetch a token at expiry; either result is good.
        let (token, lifetime) = self.fetch(client).await?;
        let expires = Instant::now() + Duration::from_secs(lifetime);
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some((token.clone(), expires));
        Ok(Some(token))
    }

    async fn fetch(&self, client: &reqwest::Client) -> Result<(String, u64), Error> {
        const OPERATION: &str = "get a gcs access token from";
        let (url, request) = match &self.credentials {
            Credentials::Anonymous => return Ok((String::new(), u64::MAX / 4)),
            Credentials::ServiceAccount {
                email,
                key_id,
                key,
                token_uri,
            } => {
                let iat = now_secs();
                let claims = serde_json::json!({
                    "iss": email,
                    "scope": SCOPE,
                    "aud": token_uri,
                    "iat": iat,
                    "exp": iat + 3600,
                });
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
                header.kid = (!key_id.is_empty()).then(|| key_id.clone());
                let assertion =
                    jsonwebtoken::encode(&header, &claims, key).map_err(|e| Error::Failed {
                        operation: "sign a gcs token request for",
                        key: email.clone(),
                        source: e.into(),
                    })?;
                let form = [
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", assertion.as_str()),
                ];
                (token_uri.as_str(), client.post(token_uri).form(&form))
            }
            Credentials::Metadata => (
                METADATA_TOKEN,
                client
                    .get(METADATA_TOKEN)
                    .header("Metadata-Flavor", "Google"),
            ),
        };
        let response = request
            .send()
            .await
            .map_err(|e| request_error(OPERATION, url, e))?;
        let response = check(DRIVER, OPERATION, url, response).await?;
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| request_error(OPERATION, url, e))?;
        let token = body
            .get("access_token")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::Failed {
                operation: OPERATION,
                key: url.to_owned(),
                source: "the response has no access_token".into(),
            })?;
        let lifetime = body
            .get("expires_in")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(3600);
        Ok((token.to_owned(), lifetime))
    }
}

impl Gcs {
    /// The driver for a complete GCS location; the key is read now, a token on first use.
    /// `endpoint` is [`StorageOptions::gcs_endpoint`](crate::StorageOptions).
    pub async fn from_location<S: Secrets>(
        location: &GcsArtifact,
        secrets: &S,
        endpoint: Option<&str>,
    ) -> Result<Self, Error> {
        let bad = |reason: String| Error::Location {
            driver: DRIVER,
            reason,
        };
        let bucket = location
            .bucket
            .clone()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| bad("bucket is not set".into()))?;
        let base = match endpoint.filter(|e| !e.is_empty()) {
            Some(host) => emulator_base(host)?,
            None => Url::parse(GOOGLE).map_err(|e| bad(e.to_string()))?,
        };
        let credentials = match location.service_account_key_secret.as_deref() {
            Some(selector) => {
                let json = text_secret(secrets, selector).await?;
                service_account(&json).map_err(|e| {
                    bad(format!(
                        "serviceAccountKeySecret {}/{}: {e}",
                        selector.name, selector.key
                    ))
                })?
            }
            None if endpoint.is_some() => Credentials::Anonymous,
            None => Credentials::Metadata,
        };
        Ok(Self {
            client: client(None, HttpTimeouts::default())?,
            base,
            bucket,
            auth: Arc::new(Auth {
                credentials,
                token: Mutex::new(None),
            }),
        })
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// `base` + the path segments (each escaped whole, so an object name's `/` becomes `%2F`).
    fn url(&self, segments: &[&str]) -> Url {
        let mut url = self.base.clone();
        if let Ok(mut path) = url.path_segments_mut() {
            path.pop_if_empty().extend(segments);
        }
        url
    }

    fn object_url(&self, key: &str) -> Url {
        self.url(&["storage", "v1", "b", &self.bucket, "o", key])
    }

    async fn request(&self, method: Method, url: Url) -> Result<RequestBuilder, Error> {
        let request = self.client.request(method, url);
        Ok(match self.auth.token(&self.client).await? {
            Some(token) => request.bearer_auth(token),
            None => request,
        })
    }

    async fn send(
        &self,
        operation: &'static str,
        key: &str,
        request: RequestBuilder,
    ) -> Result<Response, Error> {
        let response = request
            .send()
            .await
            .map_err(|e| request_error(operation, key, e))?;
        check(DRIVER, operation, key, response).await
    }

    /// Lists one page of names under `prefix`.
    async fn list_page(
        &self,
        prefix: &str,
        page: Option<&str>,
        max: Option<u32>,
    ) -> Result<(Vec<String>, Option<String>), Error> {
        let mut url = self.url(&["storage", "v1", "b", &self.bucket, "o"]);
        {
            let mut query = url.query_pairs_mut();
            query.append_pair("prefix", prefix);
            query.append_pair("fields", "items(name),nextPageToken");
            if let Some(page) = page {
                query.append_pair("pageToken", page);
            }
            if let Some(max) = max {
                query.append_pair("maxResults", &max.to_string());
            }
        }
        let request = self.request(Method::GET, url).await?;
        let response = self.send("list", prefix, request).await?;
        let body: serde_json::Value = response
            .json()
            .await
            .map_err(|e| request_error("list", prefix, e))?;
        let names = body
            .get("items")
            .and_then(|i| i.as_array())
            .into_iter()
            .flatten()
            .filter_map(|item| item.get("name").and_then(|n| n.as_str()))
            .map(str::to_owned)
            .collect();
        let next = body
            .get("nextPageToken")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        Ok((names, next))
    }

    /// Uploads a body of one chunk or less in one request.
    async fn put_simple(&self, key: &str, body: Bytes) -> Result<(), Error> {
        let mut url = self.url(&["upload", "storage", "v1", "b", &self.bucket, "o"]);
        url.query_pairs_mut()
            .append_pair("uploadType", "media")
            .append_pair("name", key);
        let request = self
            .request(Method::POST, url)
            .await?
            .header(CONTENT_LENGTH, body.len())
            .body(body);
        self.send("put", key, request).await.map(drop)
    }

    /// Uploads through a resumable session; `pending` holds what was read so far.
    async fn put_resumable(
        &self,
        key: &str,
        mut pending: BytesMut,
        body: &mut ByteStream,
    ) -> Result<(), Error> {
        let mut url = self.url(&["upload", "storage", "v1", "b", &self.bucket, "o"]);
        url.query_pairs_mut()
            .append_pair("uploadType", "resumable")
            .append_pair("name", key);
        let request = self
            .request(Method::POST, url)
            .await?
            .header(CONTENT_LENGTH, 0);
        let response = self.send("start upload of", key, request).await?;
        let session = response
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| Url::parse(l).ok())
            .ok_or_else(|| Error::Failed {
                operation: "start upload of",
                key: key.to_owned(),
                source: "the response has no session Location".into(),
            })?;
        let result = self.send_chunks(key, &session, &mut pending, body).await;
        if result.is_err() {
            // Best effort: a session left behind expires within a week anyway.
            if let Ok(request) = self.request(Method::DELETE, session).await {
                let _ = request.send().await;
            }
        }
        result
    }

    async fn send_chunks(
        &self,
        key: &str,
        session: &Url,
        pending: &mut BytesMut,
        body: &mut ByteStream,
    ) -> Result<(), Error> {
        // Bytes the server has kept.
        let mut offset: u64 = 0;
        let mut ended = false;
        loop {
            while !ended && pending.len() < CHUNK_SIZE {
                match body.next().await {
                    Some(chunk) => pending.extend_from_slice(
                        &chunk.map_err(|e| Error::io("read upload body", key, e))?,
                    ),
                    None => ended = true,
                }
            }
            let last = ended && pending.len() <= CHUNK_SIZE;
            let len = if last { pending.len() } else { CHUNK_SIZE };
            let chunk = Bytes::copy_from_slice(&pending[..len]);
            let range = match (last, len) {
                (true, 0) => format!("bytes */{offset}"),
                (true, _) => format!(
                    "bytes {offset}-{}/{}",
                    offset + len as u64 - 1,
                    offset + len as u64
                ),
                (false, _) => format!("bytes {offset}-{}/*", offset + len as u64 - 1),
            };
            let request = self
                .request(Method::PUT, session.clone())
                .await?
                .header(CONTENT_RANGE, range)
                .header(CONTENT_LENGTH, len)
                .body(chunk);
            let response = request
                .send()
                .await
                .map_err(|e| request_error("put", key, e))?;
            if response.status().as_u16() == 308 {
                // "Resume Incomplete": Range says how much the server has (none when absent).
                let kept = response
                    .headers()
                    .get(RANGE)
                    .and_then(|r| r.to_str().ok())
                    .and_then(|r| r.rsplit('-').next())
                    .and_then(|end| end.parse::<u64>().ok())
                    .map_or(0, |end| end + 1);
                let advanced = kept.saturating_sub(offset);
                if advanced > len as u64 || kept < offset {
                    return Err(Error::Failed {
                        operation: "put",
                        key: key.to_owned(),
                        source: format!(
                            "the server reports {kept} bytes kept, {offset} sent before"
                        )
                        .into(),
                    });
                }
                pending.advance(usize::try_from(advanced).unwrap_or(len));
                offset = kept;
                continue;
            }
            check(DRIVER, "put", key, response).await?;
            if !last {
                return Err(Error::Failed {
                    operation: "put",
                    key: key.to_owned(),
                    source: "the server ended the upload before the last chunk".into(),
                });
            }
            return Ok(());
        }
    }
}

impl Driver for Gcs {
    fn name(&self) -> &'static str {
        DRIVER
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %self.bucket, key = %key))]
    async fn get(&self, key: &str) -> Result<ByteStream, Error> {
        let mut url = self.object_url(key);
        url.query_pairs_mut().append_pair("alt", "media");
        let request = self.request(Method::GET, url).await?;
        let response = self.send("get", key, request).await?;
        Ok(response.bytes_stream().map_err(body_error).boxed())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(bucket = %self.bucket, key = %key))]
    async fn put(&self, key: &str, mut body: ByteStream) -> Result<(), Error> {
        let mut pending = BytesMut::new();
        while pending.len() <= CHUNK_SIZE {
            match body.next().await {
                Some(chunk) => pending
                    .extend_from_slice(&chunk.map_err(|e| Error::io("read upload body", key, e))?),
                None => return self.put_simple(key, pending.freeze()).await,
            }
        }
        self.put_resumable(key, pending, &mut body).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, Error> {
        let mut names = Vec::new();
        let mut page = None;
        loop {
            let (mut batch, next) = self.list_page(prefix, page.as_deref(), None).await?;
            // Folder placeholders are not files (Argo skips them too).
            batch.retain(|n| !n.ends_with('/'));
            names.append(&mut batch);
            match next {
                Some(next) => page = Some(next),
                None => return Ok(names),
            }
        }
    }

    async fn is_dir(&self, key: &str) -> Result<bool, Error> {
        let prefix = format!("{}/", key.trim_end_matches('/'));
        let (names, _) = self.list_page(&prefix, None, Some(1)).await?;
        Ok(!names.is_empty())
    }

    async fn delete(&self, key: &str) -> Result<(), Error> {
        let request = self.request(Method::DELETE, self.object_url(key)).await?;
        match self.send("delete", key, request).await {
            // Gone already is what was asked; a retried delete must not fail on it.
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_emulator_host_may_be_bare() {
        assert_eq!(
            emulator_base("127.0.0.1:4443").unwrap().as_str(),
            "http://127.0.0.1:4443/"
        );
        assert_eq!(
            emulator_base("https://gcs.local").unwrap().as_str(),
            "https://gcs.local/"
        );
    }

    #[test]
    fn a_key_that_is_not_a_service_account_is_refused() {
        let err = service_account(r#"{"type": "authorized_user"}"#)
            .err()
            .unwrap();
        assert_eq!(
            err,
            "type is \"authorized_user\": expected \"service_account\""
        );
        assert!(service_account("nope").is_err());
    }

    #[test]
    fn chunks_are_whole_multiples_of_256_kib() {
        assert_eq!(CHUNK_SIZE % (256 * 1024), 0);
    }
}
