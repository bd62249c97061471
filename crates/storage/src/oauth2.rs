//! OAuth2 client credentials (RFC 6749 §4.4) for the HTTP driver: a token fetched once, reused
//! until it expires, fetched again when it has, and once more when the server refuses it.
//!
//! As Go's `oauth2` package (which Argo uses), a token counts as expired 10 s before its
//! `expires_in` runs out, and one without `expires_in` never expires.

use std::time::Duration;

use argoexec_template::OAuth2Auth;
use reqwest::{RequestBuilder, StatusCode};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::driver::{Error, Secrets, text_secret};
use crate::web::{StatusError, check, request_error};

/// How long before its announced expiry a token is replaced (Go's `oauth2.expiryDelta`).
const EXPIRY_MARGIN: Duration = Duration::from_secs(10);

const OPERATION: &str = "oauth2 token from";

/// Where tokens come from, and the current one.
pub(crate) struct TokenSource {
    client: reqwest::Client,
    url: String,
    id: String,
    secret: String,
    form: Vec<(String, String)>,
    current: Mutex<Token>,
}

/// An access token and when to stop using it.
#[derive(Clone)]
struct Token {
    access: String,
    /// `None`: no `expires_in` was given.
    expires: Option<Instant>,
    /// Fetched because the server refused the one before: if this one is refused too, the
    /// credentials are wrong, and no new token is fetched for it.
    after_refusal: bool,
}

impl Token {
    fn expired(&self) -> bool {
        self.expires
            .is_some_and(|at| at <= Instant::now() + EXPIRY_MARGIN)
    }
}

impl TokenSource {
    /// Reads the credentials and fetches the first token, so that wrong credentials fail before
    /// any transfer.
    pub(crate) async fn new<S: Secrets>(
        client: reqwest::Client,
        oauth2: &OAuth2Auth,
        secrets: &S,
    ) -> Result<Self, Error> {
        let (Some(id), Some(secret), Some(url)) = (
            &oauth2.client_id_secret,
            &oauth2.client_secret_secret,
            &oauth2.token_url_secret,
        ) else {
            return Err(Error::Location {
                driver: "http",
                reason: "auth.oauth2 needs clientIDSecret, clientSecretSecret and tokenURLSecret"
                    .into(),
            });
        };
        let mut form = vec![("grant_type".to_owned(), "client_credentials".to_owned())];
        let scopes = oauth2.scopes.as_deref().unwrap_or_default();
        if !scopes.is_empty() {
            form.push(("scope".into(), scopes.join(" ")));
        }
        for param in oauth2.endpoint_params.iter().flatten() {
            form.push((param.key.clone(), param.value.clone().unwrap_or_default()));
        }
        let mut source = Self {
            client,
            id: text_secret(secrets, id).await?,
            secret: text_secret(secrets, secret).await?,
            url: text_secret(secrets, url).await?,
            form,
            current: Mutex::new(Token {
                access: String::new(),
                expires: None,
                after_refusal: false,
            }),
        };
        *source.current.get_mut() = source.fetch(false).await?;
        Ok(source)
    }

    /// A token to send: the current one, or a new one when it has expired.
    pub(crate) async fn token(&self) -> Result<String, Error> {
        let mut current = self.current.lock().await;
        if current.expired() {
            *current = self.fetch(false).await?;
        }
        Ok(current.access.clone())
    }

    /// The server answered 401 to `refused`: fetches a new token, unless `refused` was itself
    /// fetched after a refusal. Returns whether a request is worth sending again.
    pub(crate) async fn renew(&self, refused: &str) -> Result<bool, Error> {
        let mut current = self.current.lock().await;
        if current.access != refused {
            // Another request has renewed it already.
            return Ok(true);
        }
        if current.after_refusal {
            return Ok(false);
        }
        *current = self.fetch(true).await?;
        Ok(true)
    }

    /// Runs the flow once. Like Go's `clientcredentials` with auth style auto-detection, the
    /// client credentials go in a basic auth header first and, if the server refuses that with
    /// 400 or 401, in the form body.
    async fn fetch(&self, after_refusal: bool) -> Result<Token, Error> {
        let url = &self.url;
        let send = |request: RequestBuilder| async {
            let response = request
                .send()
                .await
                .map_err(|e| request_error(OPERATION, url, e))?;
            check("http", OPERATION, url, response).await
        };
        let in_header = self
            .client
            .post(url)
            .basic_auth(url_encode(&self.id), Some(url_encode(&self.secret)))
            .form(&self.form);
        let response = match send(in_header).await {
            Err(Error::Failed { source, .. })
                if source.downcast_ref::<StatusError>().is_some_and(|s| {
                    matches!(s.status, StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED)
                }) =>
            {
                let mut form = self.form.clone();
                form.push(("client_id".into(), self.id.clone()));
                form.push(("client_secret".into(), self.secret.clone()));
                send(self.client.post(url).form(&form)).await?
            }
            other => other?,
        };
        let failed = |source: crate::driver::BoxError| Error::Failed {
            operation: OPERATION,
            key: url.clone(),
            source,
        };
        let body: serde_json::Value = response.json().await.map_err(|e| failed(e.into()))?;
        let access = match body.get("access_token").and_then(|t| t.as_str()) {
            Some(token) if !token.is_empty() => token.to_owned(),
            _ => return Err(failed("the response has no access_token".into())),
        };
        // A number, or (some servers) a string holding one; 0 or none: no expiry.
        let expires_in = match body.get("expires_in") {
            Some(serde_json::Value::Number(n)) => n.as_u64(),
            Some(serde_json::Value::String(s)) => s.parse().ok(),
            _ => None,
        };
        Ok(Token {
            access,
            expires: expires_in
                .filter(|&s| s > 0)
                .map(|s| Instant::now() + Duration::from_secs(s)),
            after_refusal,
        })
    }

    /// The current token, for tests.
    #[cfg(test)]
    pub(crate) async fn current(&self) -> String {
        self.current.lock().await.access.clone()
    }
}

/// `application/x-www-form-urlencoded` escaping, which RFC 6749 §2.3.1 asks for on the client
/// id and secret before they go into a basic auth header.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_follows_the_form_rules() {
        assert_eq!(url_encode("a b:c/é"), "a+b%3Ac%2F%C3%A9");
    }

    #[test]
    fn a_token_expires_ten_seconds_early_and_never_without_expires_in() {
        let token = |expires| Token {
            access: "t".into(),
            expires,
            after_refusal: false,
        };
        assert!(!token(None).expired());
        assert!(token(Some(Instant::now() + Duration::from_secs(9))).expired());
        assert!(!token(Some(Instant::now() + Duration::from_secs(60))).expired());
    }
}
