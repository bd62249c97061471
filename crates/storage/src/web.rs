//! What the drivers that speak HTTP themselves share (HTTP, Artifactory, GCS and the OAuth2 token
//! source): clients over rustls with aws-lc-rs, and the reading of a response or a failed request
//! into an [`Error`] that says whether another attempt may pass.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use reqwest::{Response, StatusCode};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::driver::Error;
use crate::retry::{is_transient_io, is_transient_status};

/// How long the HTTP drivers wait for the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// For a TCP (and TLS) connection.
    pub connect: Duration,
    /// How long the server may make no progress. A GET waits this long for the response head,
    /// then between two reads of the body. A PUT's upload may take any time while the server
    /// takes data; it fails when the server has taken none for this long, or has not answered
    /// this long after the last byte was sent. There is no total timeout: artifacts are as large
    /// as users make them.
    pub read: Duration,
}

impl Default for HttpTimeouts {
    /// 30 s to connect, 300 s to read.
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(30),
            read: Duration::from_secs(300),
        }
    }
}

/// How much of an error response's body goes into the message.
const EXCERPT_LEN: usize = 256;

/// A response whose status is not a success, as a cause: `403 Forbidden: <body excerpt>`.
#[derive(Debug, thiserror::Error)]
#[error("{status}{}", excerpt.as_deref().map(|e| format!(": {e}")).unwrap_or_default())]
pub struct StatusError {
    /// The status.
    pub status: StatusCode,
    /// The start of the response body, when there was one.
    pub excerpt: Option<String>,
}

/// The clients of one driver: for GET (with the read timeout) and for PUT (without; see
/// [`Progress`]).
pub(crate) fn clients(
    identity: Option<(Vec<u8>, Vec<u8>)>,
    timeouts: HttpTimeouts,
) -> Result<(reqwest::Client, reqwest::Client), Error> {
    let tls = tls_config(identity)?;
    let upload = builder(tls.clone(), timeouts).build();
    let get = builder(tls, timeouts).read_timeout(timeouts.read).build();
    let built = |r: reqwest::Result<reqwest::Client>| {
        r.map_err(|e| Error::Location {
            driver: "http",
            reason: format!("http client: {e}"),
        })
    };
    Ok((built(get)?, built(upload)?))
}

/// A client over rustls with aws-lc-rs, the system's roots and, optionally, a client certificate
/// (PEM chain, PEM key). The read timeout covers a whole request (with its body) until the
/// response head: use it for requests with small bodies.
pub(crate) fn client(
    identity: Option<(Vec<u8>, Vec<u8>)>,
    timeouts: HttpTimeouts,
) -> Result<reqwest::Client, Error> {
    builder(tls_config(identity)?, timeouts)
        .read_timeout(timeouts.read)
        .build()
        .map_err(|e| Error::Location {
            driver: "http",
            reason: format!("http client: {e}"),
        })
}

/// A client builder with our TLS, connect timeout and redirect policy.
fn builder(tls: rustls::ClientConfig, timeouts: HttpTimeouts) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .connect_timeout(timeouts.connect)
        .redirect(reqwest::redirect::Policy::limited(10))
}

/// rustls with aws-lc-rs, the system's roots and, optionally, a client certificate.
fn tls_config(identity: Option<(Vec<u8>, Vec<u8>)>) -> Result<rustls::ClientConfig, Error> {
    let bad = |reason: String| Error::Location {
        driver: "http",
        reason,
    };
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are skipped, as curl and Go do; a server signed by none of
    // them fails the handshake with a clear message.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(format!("tls: {e}")))?
        .with_root_certificates(roots);
    let mut tls = match identity {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => {
            let chain = CertificateDer::pem_slice_iter(&chain)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(format!("client certificate: {e}")))?;
            if chain.is_empty() {
                return Err(bad("client certificate: no PEM certificate found".into()));
            }
            let key =
                PrivateKeyDer::from_pem_slice(&key).map_err(|e| bad(format!("client key: {e}")))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| bad(format!("client certificate: {e}")))?
        }
    };
    // reqwest is built without HTTP/2.
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tls)
}

/// Passes a success through; turns 404 into [`Error::NotFound`], a transient status into
/// [`Error::Transient`] and the rest into [`Error::Failed`], with an excerpt of the body.
pub(crate) async fn check(
    driver: &'static str,
    operation: &'static str,
    url: &str,
    response: Response,
) -> Result<Response, Error> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if status == StatusCode::NOT_FOUND {
        return Err(Error::NotFound {
            driver,
            key: url.to_owned(),
        });
    }
    let excerpt = excerpt(response).await;
    let source = StatusError { status, excerpt };
    Err(Error::request(
        is_transient_status(status.as_u16()),
        operation,
        url,
        source,
    ))
}

/// The first line of an error response's body, cut short; reads no more than it needs.
async fn excerpt(response: Response) -> Option<String> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while body.len() < EXCERPT_LEN {
        match stream.next().await {
            Some(Ok(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&body);
    let line = text
        .split(['\r', '\n'])
        .map(str::trim)
        .find(|l| !l.is_empty())?;
    let mut line: String = line.chars().take(EXCERPT_LEN).collect();
    if line.len() < text.trim().len() {
        line.push('…');
    }
    Some(line)
}

/// A request that got no response: a connection or timeout failure is transient, as is an I/O
/// failure of the kinds [`is_transient_io`] names (including those of a streamed request body)
/// and a connection the server closed before it answered.
pub(crate) fn request_error(operation: &'static str, url: &str, err: reqwest::Error) -> Error {
    let transient = !crate::retry::is_tls_refusal(&err)
        && (err.is_connect()
            || err.is_timeout()
            || io_cause(&err).is_some_and(is_transient_io)
            || connection_dropped(&err));
    Error::request(transient, operation, url, err)
}

/// Whether the connection closed before the response was complete ("connection closed before
/// message completed") or was closed or canceled under the request. The server said nothing, so
/// nothing says the request was refused; GET and PUT may be sent again.
fn connection_dropped(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = err.source();
    while let Some(e) = cause {
        if let Some(hyper) = e.downcast_ref::<hyper::Error>() {
            return hyper.is_incomplete_message() || hyper.is_closed() || hyper.is_canceled();
        }
        cause = e.source();
    }
    false
}

/// A failure while streaming a response body, as an I/O error whose kind says whether to retry.
pub(crate) fn body_error(err: reqwest::Error) -> io::Error {
    let kind = if err.is_timeout() {
        io::ErrorKind::TimedOut
    } else if let Some(io) = io_cause(&err) {
        io.kind()
    } else {
        // No decompression is enabled, so a body error means the connection broke or closed
        // before the announced length: a stream cut short, worth another attempt.
        io::ErrorKind::UnexpectedEof
    };
    io::Error::new(kind, err)
}

/// The first I/O error in a cause chain.
fn io_cause<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a io::Error> {
    let mut cause = err.source();
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<io::Error>() {
            return Some(io);
        }
        cause = e.source();
    }
    None
}
