//! Files served over HTTP(S): fetched with GET, saved with PUT. The key is the file's URL.
//!
//! Everything a request needs is resolved once, in [`Http::from_location`]: headers, basic auth,
//! the first OAuth2 client-credentials token (renewed when it expires or is refused: `oauth2.rs`),
//! a TLS client certificate. Bodies stream both ways; nothing is buffered in memory or on disk.
//! Redirects are followed (at most 10). A PUT may take any time while the server takes data: a
//! stall is caught by a watchdog ([`HttpTimeouts::read`]), not by a timeout on the whole request.
//!
//! TLS is rustls with the aws-lc-rs provider (the clients are built in `web.rs`), chosen explicitly
//! rather than through the process-wide default, so that no caller has to install one.

use std::future::Future;
use std::io;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argoexec_template::HttpArtifact;
use futures::future::Either;
use futures::{StreamExt as _, TryStreamExt as _};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tokio::time::Instant;

use crate::driver::{ByteStream, Driver, Error, Secrets, text_secret};
use crate::oauth2::TokenSource;
use crate::web::{HttpTimeouts, StatusError, body_error, check, clients, request_error};

/// A file served over HTTP(S).
#[derive(Debug, Clone)]
pub struct Http {
    driver: &'static str,
    client: reqwest::Client,
    /// For PUT: no read timeout, whose clock reqwest starts with the request (so it would cut a
    /// long upload); [`Progress`] watches for a stall instead.
    upload_client: reqwest::Client,
    /// How long an upload may make no progress.
    stall_limit: Duration,
    headers: HeaderMap,
    auth: Auth,
}

/// The credentials sent with every request.
#[derive(Clone, Default)]
enum Auth {
    #[default]
    None,
    Basic {
        username: String,
        password: Option<String>,
    },
    OAuth2(Arc<TokenSource>),
}

// Hand-written so that credentials never reach a log line.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "None",
            Self::Basic { .. } => "Basic(..)",
            Self::OAuth2(_) => "OAuth2(..)",
        })
    }
}

impl Http {
    /// The driver for an HTTP location; secrets are read and an OAuth2 token is fetched now.
    pub async fn from_location<S: Secrets>(
        location: &HttpArtifact,
        secrets: &S,
    ) -> Result<Self, Error> {
        Self::from_location_with(location, secrets, HttpTimeouts::default()).await
    }

    /// [`Http::from_location`] with other timeouts.
    pub async fn from_location_with<S: Secrets>(
        location: &HttpArtifact,
        secrets: &S,
        timeouts: HttpTimeouts,
    ) -> Result<Self, Error> {
        let bad = |reason: String| Error::Location {
            driver: "http",
            reason,
        };
        let mut headers = HeaderMap::new();
        for header in location.headers.iter().flatten() {
            let name = HeaderName::from_bytes(header.name.as_bytes())
                .map_err(|e| bad(format!("header name {:?}: {e}", header.name)))?;
            let value = HeaderValue::from_str(&header.value)
                .map_err(|e| bad(format!("value of header {:?}: {e}", header.name)))?;
            headers.append(name, value);
        }

        let auth = location.auth.as_ref();
        let identity = match auth.and_then(|a| a.client_cert.as_ref()) {
            None => None,
            Some(cert) => {
                let (Some(cert_secret), Some(key_secret)) =
                    (&cert.client_cert_secret, &cert.client_key_secret)
                else {
                    return Err(bad(
                        "auth.clientCert needs clientCertSecret and clientKeySecret".into(),
                    ));
                };
                let chain = secrets.get(&cert_secret.name, &cert_secret.key).await?;
                let key = secrets.get(&key_secret.name, &key_secret.key).await?;
                Some((chain, key))
            }
        };
        let (client, upload_client) = clients(identity, timeouts)?;

        let auth = match auth {
            Some(a) if a.basic_auth.is_some() && a.oauth2.is_some() => {
                return Err(bad("auth.basicAuth and auth.oauth2 are exclusive".into()));
            }
            Some(a) => match (&a.basic_auth, &a.oauth2) {
                (Some(basic), _) => {
                    let Some(user) = &basic.username_secret else {
                        return Err(bad("auth.basicAuth needs usernameSecret".into()));
                    };
                    Auth::Basic {
                        username: text_secret(secrets, user).await?,
                        password: match &basic.password_secret {
                            Some(p) => Some(text_secret(secrets, p).await?),
                            None => None,
                        },
                    }
                }
                (None, Some(oauth2)) => Auth::OAuth2(Arc::new(
                    TokenSource::new(client.clone(), oauth2, secrets).await?,
                )),
                (None, None) => Auth::None,
            },
            None => Auth::None,
        };
        Ok(Self {
            driver: "http",
            client,
            upload_client,
            stall_limit: timeouts.read,
            headers,
            auth,
        })
    }

    /// A driver that sends basic auth (Artifactory's), under another driver name.
    pub(crate) fn with_basic_auth(
        driver: &'static str,
        username: String,
        password: Option<String>,
    ) -> Result<Self, Error> {
        let timeouts = HttpTimeouts::default();
        let (client, upload_client) = clients(None, timeouts)?;
        Ok(Self {
            driver,
            client,
            upload_client,
            stall_limit: timeouts.read,
            headers: HeaderMap::new(),
            auth: Auth::Basic { username, password },
        })
    }

    /// A request with the driver's headers and credentials; also returns the OAuth2 token sent,
    /// if any, for [`Http::renew`].
    async fn request(
        &self,
        method: Method,
        url: &str,
    ) -> Result<(RequestBuilder, Option<String>), Error> {
        let client = if method == Method::PUT {
            &self.upload_client
        } else {
            &self.client
        };
        let request = client.request(method, url).headers(self.headers.clone());
        Ok(match &self.auth {
            Auth::None => (request, None),
            Auth::Basic { username, password } => {
                (request.basic_auth(username, password.as_ref()), None)
            }
            Auth::OAuth2(source) => {
                let token = source.token().await?;
                (request.bearer_auth(&token), Some(token))
            }
        })
    }

    /// After `err`: whether it is a 401 to an OAuth2 `token` that has now been renewed, so that
    /// the request is worth sending again (once).
    async fn renew(&self, err: &Error, token: Option<&str>) -> Result<bool, Error> {
        let unauthorized = matches!(err, Error::Failed { source, .. }
            if source.downcast_ref::<StatusError>().is_some_and(|s| s.status == StatusCode::UNAUTHORIZED));
        match (&self.auth, token) {
            (Auth::OAuth2(source), Some(token)) if unauthorized => source.renew(token).await,
            _ => Ok(false),
        }
    }

    /// Sends a request and turns a failure status into an error.
    async fn send(
        &self,
        operation: &'static str,
        url: &str,
        request: RequestBuilder,
    ) -> Result<Response, Error> {
        let response = request
            .send()
            .await
            .map_err(|e| request_error(operation, url, e))?;
        check(self.driver, operation, url, response).await
    }
}

impl Driver for Http {
    fn name(&self) -> &'static str {
        self.driver
    }

    #[tracing::instrument(level = "debug", skip_all, fields(driver = self.driver, url = %key))]
    async fn get(&self, key: &str) -> Result<ByteStream, Error> {
        let (request, token) = self.request(Method::GET, key).await?;
        let response = match self.send("GET", key, request).await {
            Err(err) if self.renew(&err, token.as_deref()).await? => {
                let (request, _) = self.request(Method::GET, key).await?;
                self.send("GET", key, request).await?
            }
            other => other?,
        };
        Ok(response.bytes_stream().map_err(body_error).boxed())
    }

    #[tracing::instrument(level = "debug", skip_all, fields(driver = self.driver, url = %key))]
    async fn put(&self, key: &str, body: ByteStream) -> Result<(), Error> {
        let progress = Progress::start();
        let body = progress.watch(body);
        let (request, token) = self.request(Method::PUT, key).await?;
        let request = request.body(reqwest::Body::wrap_stream(body));
        let sent = self.send("PUT", key, request);
        match progress.or_stall(sent, self.stall_limit, "PUT", key).await {
            // The body is spent: a refused token makes the attempt transient, and the next
            // attempt (the caller's retry policy) sends the new one.
            Err(err) if self.renew(&err, token.as_deref()).await? => Err(transient(err)),
            other => other.map(drop),
        }
    }
}

/// When an upload last made progress: the server took a chunk of the body, or the body ended.
#[derive(Clone)]
struct Progress(Arc<Mutex<Instant>>);

impl Progress {
    fn start() -> Self {
        Self(Arc::new(Mutex::new(Instant::now())))
    }

    fn mark(&self) {
        // A poisoned lock only means another holder panicked; the instant is still usable.
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn last(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `body`, marking progress each time the client takes a chunk and when it ends. The client
    /// takes the next chunk only when the socket has room, so a server that stops reading stops
    /// the marks.
    fn watch(&self, body: ByteStream) -> ByteStream {
        let (each, end) = (self.clone(), self.clone());
        body.inspect(move |_| each.mark())
            .chain(futures::stream::poll_fn(move |_| {
                end.mark();
                std::task::Poll::Ready(None)
            }))
            .boxed()
    }

    /// Runs `request` until it is done, or fails it as transient once no progress was made for
    /// `limit`: a server that stopped taking the body, or that has not answered `limit` after it.
    async fn or_stall<T>(
        &self,
        request: impl Future<Output = Result<T, Error>>,
        limit: Duration,
        operation: &'static str,
        url: &str,
    ) -> Result<T, Error> {
        let mut request = pin!(request);
        loop {
            let deadline = self.last() + limit;
            let sleep = pin!(tokio::time::sleep_until(deadline));
            match futures::future::select(request.as_mut(), sleep).await {
                Either::Left((done, _)) => return done,
                Either::Right(((), _)) if self.last() + limit <= Instant::now() => {
                    let stalled = io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "timed out: the server took no data and sent no answer for {limit:?}"
                        ),
                    );
                    return Err(Error::request(true, operation, url, stalled));
                }
                Either::Right(_) => {}
            }
        }
    }
}

/// A failure made transient: worth another attempt after all.
fn transient(err: Error) -> Error {
    match err {
        Error::Failed {
            operation,
            key,
            source,
        } => Error::Transient {
            operation,
            key,
            source,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    use argoexec_template::{BasicAuth, HttpAuth, K8s};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    struct MapSecrets(HashMap<(String, String), Vec<u8>>);

    impl Secrets for MapSecrets {
        async fn get(&self, name: &str, key: &str) -> Result<Vec<u8>, Error> {
            self.0
                .get(&(name.to_owned(), key.to_owned()))
                .cloned()
                .ok_or_else(|| Error::Secret {
                    name: name.into(),
                    key: key.into(),
                    source: io::ErrorKind::NotFound.into(),
                })
        }
    }

    fn selector(
        name: &str,
        key: &str,
    ) -> Option<K8s<k8s_openapi::api::core::v1::SecretKeySelector>> {
        serde_json::from_value(serde_json::json!({"name": name, "key": key})).unwrap()
    }

    /// A server answering each connection, in turn, with one canned response; it hands back the
    /// requests it read.
    async fn canned(responses: Vec<String>) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/token", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut requests = Vec::new();
            for response in responses {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0; 4096];
                // Read the head, then as much body as Content-Length announces.
                loop {
                    let n = conn.read(&mut chunk).await.unwrap();
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length: ")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len || n == 0 {
                            break;
                        }
                    }
                }
                requests.push(String::from_utf8_lossy(&buf).to_string());
                conn.write_all(response.as_bytes()).await.unwrap();
                conn.shutdown().await.unwrap();
            }
            requests
        });
        (url, task)
    }

    fn respond(status: &str, body: &str) -> String {
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    }

    fn oauth2_location(token_url: &str) -> (HttpArtifact, MapSecrets) {
        let location: HttpArtifact = serde_json::from_value(serde_json::json!({
            "url": "http://unused/",
            "auth": {"oauth2": {
                "clientIDSecret": {"name": "o", "key": "id"},
                "clientSecretSecret": {"name": "o", "key": "secret"},
                "tokenURLSecret": {"name": "o", "key": "url"},
                "scopes": ["read", "write"],
                "endpointParams": [{"key": "audience", "value": "argo"}],
            }},
        }))
        .unwrap();
        let secrets = MapSecrets(HashMap::from([
            (("o".into(), "id".into()), b"client".to_vec()),
            (("o".into(), "secret".into()), b"s3cr3t\n".to_vec()),
            (("o".into(), "url".into()), token_url.as_bytes().to_vec()),
        ]));
        (location, secrets)
    }

    #[tokio::test]
    async fn oauth2_fetches_a_client_credentials_token() {
        let (url, server) = canned(vec![respond(
            "200 OK",
            r#"{"access_token":"tok-123","token_type":"bearer","expires_in":3600}"#,
        )])
        .await;
        let (location, secrets) = oauth2_location(&url);
        let http = Http::from_location(&location, &secrets).await.unwrap();
        let Auth::OAuth2(source) = &http.auth else {
            panic!("no oauth2 auth: {:?}", http.auth)
        };
        assert_eq!(source.current().await, "tok-123");

        let requests = server.await.unwrap();
        let request = &requests[0];
        assert!(request.starts_with("POST /token HTTP/1.1\r\n"), "{request}");
        assert!(
            request.contains("application/x-www-form-urlencoded"),
            "{request}"
        );
        // base64("client:s3cr3t")
        assert!(
            request.contains("authorization: Basic Y2xpZW50OnMzY3IzdA=="),
            "{request}"
        );
        let body = request.split("\r\n\r\n").nth(1).unwrap();
        assert_eq!(
            body,
            "grant_type=client_credentials&scope=read+write&audience=argo"
        );
    }

    #[tokio::test]
    async fn oauth2_falls_back_to_credentials_in_the_body() {
        let (url, server) = canned(vec![
            respond("401 Unauthorized", r#"{"error":"invalid_client"}"#),
            respond("200 OK", r#"{"access_token":"tok-456"}"#),
        ])
        .await;
        let (location, secrets) = oauth2_location(&url);
        let http = Http::from_location(&location, &secrets).await.unwrap();
        let Auth::OAuth2(source) = &http.auth else {
            panic!("no oauth2 auth: {:?}", http.auth)
        };
        assert_eq!(source.current().await, "tok-456");
        let requests = server.await.unwrap();
        let body = requests[1].split("\r\n\r\n").nth(1).unwrap();
        assert!(
            body.ends_with("&client_id=client&client_secret=s3cr3t"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn oauth2_refusal_names_the_token_url_and_status() {
        let (url, server) = canned(vec![respond(
            "403 Forbidden",
            r#"{"error":"unauthorized_client"}"#,
        )])
        .await;
        let (location, secrets) = oauth2_location(&url);
        let err = Http::from_location(&location, &secrets).await.unwrap_err();
        assert!(matches!(err, Error::Failed { .. }), "{err}");
        let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
        assert_eq!(
            chain,
            format!(r#"oauth2 token from {url}: 403 Forbidden: {{"error":"unauthorized_client"}}"#)
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn basic_auth_reads_both_secrets() {
        let location = HttpArtifact {
            auth: Some(HttpAuth {
                basic_auth: Some(BasicAuth {
                    username_secret: selector("b", "user"),
                    password_secret: selector("b", "pass"),
                    ..BasicAuth::default()
                }),
                ..HttpAuth::default()
            }),
            ..HttpArtifact::default()
        };
        let secrets = MapSecrets(HashMap::from([
            (("b".into(), "user".into()), b"alice\n".to_vec()),
            (("b".into(), "pass".into()), b"pw".to_vec()),
        ]));
        let http = Http::from_location(&location, &secrets).await.unwrap();
        assert!(
            matches!(&http.auth, Auth::Basic { username, password } if username == "alice" && password.as_deref() == Some("pw"))
        );
        assert_eq!(format!("{:?}", http.auth), "Basic(..)");
    }

    #[tokio::test]
    async fn client_cert_must_be_pem() {
        let location: HttpArtifact = serde_json::from_value(serde_json::json!({
            "auth": {"clientCert": {
                "clientCertSecret": {"name": "c", "key": "crt"},
                "clientKeySecret": {"name": "c", "key": "key"},
            }},
        }))
        .unwrap();
        let secrets = MapSecrets(HashMap::from([
            (("c".into(), "crt".into()), b"not pem".to_vec()),
            (("c".into(), "key".into()), b"not pem".to_vec()),
        ]));
        let err = Http::from_location(&location, &secrets).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid http artifact location: client certificate: no PEM certificate found"
        );
    }

    #[tokio::test]
    async fn invalid_header_is_a_location_error() {
        let location: HttpArtifact = serde_json::from_value(serde_json::json!({
            "headers": [{"name": "bad header", "value": "x"}],
        }))
        .unwrap();
        let err = Http::from_location(&location, &MapSecrets(HashMap::new()))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Location { .. }), "{err}");
    }
}
