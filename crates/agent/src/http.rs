//! One HTTP template, run as Argo's agent runs it (`executeHTTPTemplate`): the request (method,
//! URL, headers with values from secrets, `body` or `bodyFrom.bytes`), a timeout over the whole
//! exchange (`timeoutSeconds`), TLS verification unless `insecureSkipVerify`, and the node's
//! result: `Succeeded` or `Failed` by `successCondition` (default: a 2xx status), the response
//! body as `outputs.result`, Argo's messages.

use std::sync::Arc;
use std::time::Duration;

use argoexec_storage::Secrets;
use argoexec_template::HttpTemplate;
use base64::Engine as _;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::condition::{self, RequestScope, ResponseScope};
use crate::model::NodeResult;

/// Why the HTTP clients could not be built.
#[derive(Debug, thiserror::Error)]
#[error("build the HTTP client: {0}")]
pub struct ClientError(String);

/// Runs HTTP templates, with credentials for headers from `S`.
#[derive(Debug, Clone)]
pub struct HttpRunner<S> {
    verifying: reqwest::Client,
    insecure: reqwest::Client,
    secrets: S,
}

impl<S: Secrets> HttpRunner<S> {
    /// Clients over rustls with aws-lc-rs: one that verifies servers against the system's roots,
    /// one that accepts any certificate (`insecureSkipVerify`). Redirects are followed (10 at
    /// most) and proxies taken from the environment, as Go's default client does.
    pub fn new(secrets: S) -> Result<Self, ClientError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = || {
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(|e| ClientError(e.to_string()))
        };
        let mut roots = rustls::RootCertStore::empty();
        // Unreadable system certificates are skipped, as Go does.
        roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        let verifying = builder()?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let insecure = builder()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.clone())))
            .with_no_client_auth();
        let client = |mut tls: rustls::ClientConfig| {
            // reqwest is built without HTTP/2.
            tls.alpn_protocols = vec![b"http/1.1".to_vec()];
            reqwest::Client::builder()
                .use_preconfigured_tls(tls)
                .redirect(reqwest::redirect::Policy::limited(10))
                .build()
                .map_err(|e| ClientError(e.to_string()))
        };
        Ok(Self {
            verifying: client(verifying)?,
            insecure: client(insecure)?,
            secrets,
        })
    }

    /// Runs the template; every failure is the node's (`Failed` with a message).
    #[tracing::instrument(skip_all, fields(method = http.method.as_deref().unwrap_or(""), url = %http.url))]
    pub async fn run(&self, http: &HttpTemplate) -> NodeResult {
        match self.exchange(http).await {
            Ok(result) => result,
            Err(message) => NodeResult::failed(message),
        }
    }

    async fn exchange(&self, http: &HttpTemplate) -> Result<NodeResult, String> {
        let method_text = http.method.clone().unwrap_or_default();
        // Go sends GET for an empty method.
        let method = if method_text.is_empty() {
            reqwest::Method::GET
        } else {
            reqwest::Method::from_bytes(method_text.as_bytes())
                .map_err(|_| format!("net/http: invalid method {method_text:?}"))?
        };
        let url_error =
            |reason: &str| format!("{} \"{}\": {reason}", go_url_op(&method_text), http.url);
        let body_bytes = match http.body_from.as_ref() {
            Some(from) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(from.bytes.as_deref().unwrap_or_default())
                    .map_err(|e| format!("bodyFrom.bytes is not base64: {e}"))?,
            ),
            None => None,
        };
        let body = http.body.clone().unwrap_or_default();
        let client = if http.insecure_skip_verify.unwrap_or(false) {
            &self.insecure
        } else {
            &self.verifying
        };
        let mut request = client.request(method, &http.url);
        let mut literal_headers = Vec::new();
        for header in http.headers.as_deref().unwrap_or_default() {
            let secret = header
                .value_from
                .as_ref()
                .and_then(|from| from.secret_key_ref.as_ref());
            let value = match secret {
                Some(selector) => {
                    let bytes = self
                        .secrets
                        .get(&selector.name, &selector.key)
                        .await
                        .map_err(|e| argoexec_storage::chain(&e))?;
                    String::from_utf8_lossy(&bytes).into_owned()
                }
                None => {
                    let value = header.value.clone().unwrap_or_default();
                    if header.value_from.is_none() {
                        literal_headers.push((header.name.clone(), value.clone()));
                    }
                    value
                }
            };
            request = request.header(header.name.as_str(), value);
        }
        request = match &body_bytes {
            Some(bytes) => request.body(bytes.clone()),
            None if body.is_empty() => request,
            None => request.body(body.clone()),
        };
        if let Some(seconds) = http.timeout_seconds {
            // Argo's context deadline covers the request and reading the body.
            request = request.timeout(Duration::from_secs(u64::try_from(seconds).unwrap_or(0)));
        }
        let response = request.send().await.map_err(|e| url_error(&reason(&e)))?;
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect();
        let bytes = response.bytes().await.map_err(|e| url_error(&reason(&e)))?;
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let verdict = match http.success_condition.as_deref().filter(|c| !c.is_empty()) {
            None if (200..300).contains(&status) => None,
            None => Some(format!("received non-2xx response code: {status}")),
            Some(expression) => {
                let request = RequestScope {
                    method: method_text.clone(),
                    url: http.url.clone(),
                    body,
                    body_bytes,
                    headers: literal_headers,
                };
                let response = ResponseScope {
                    status,
                    body: text.clone(),
                    headers,
                };
                let success = condition::evaluate(expression, &request, &response)
                    .map_err(|e| e.to_string())?;
                (!success).then(|| format!("successCondition '{expression}' evaluated false"))
            }
        };
        Ok(match verdict {
            None => NodeResult::succeeded(text),
            Some(message) => NodeResult::failed_with_result(message, text),
        })
    }
}

/// Go's `url.Error` operation: the method with only its first letter upper-case (`Get`).
fn go_url_op(method: &str) -> String {
    let method = if method.is_empty() { "GET" } else { method };
    let mut chars = method.chars();
    chars.next().map_or_else(String::new, |first| {
        first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect()
    })
}

/// A failed request's reason, in Go's words where they matter to the controller's users (a
/// timeout is Go's `context deadline exceeded`), else the chain of causes.
fn reason(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        return "context deadline exceeded".to_owned();
    }
    let mut text = String::new();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        // reqwest's own message repeats the URL, which the prefix already gives.
        let part = e.to_string();
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
        cause = e.source();
    }
    text
}

/// Accepts any server certificate (`insecureSkipVerify`), still checking the handshake's
/// signatures with the provider's algorithms.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_errors_name_the_method_as_go_does() {
        assert_eq!(go_url_op("GET"), "Get");
        assert_eq!(go_url_op("post"), "Post");
        assert_eq!(go_url_op(""), "Get");
    }
}
