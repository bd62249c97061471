//! HTTPS, as the kubelet serves its API: a CA and a server certificate for `127.0.0.1` and
//! `localhost` made at start (rcgen), served with rustls over aws-lc-rs (never ring: two crypto
//! providers in one process make rustls panic).

use std::sync::Arc;

use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

/// The certificates of one server: the CA a client trusts and the acceptor that serves the leaf.
pub(crate) struct Certificates {
    /// The CA certificate, PEM.
    pub(crate) ca_pem: String,
    pub(crate) acceptor: TlsAcceptor,
}

fn other(e: impl std::error::Error + Send + Sync + 'static) -> std::io::Error {
    std::io::Error::other(e)
}

/// A fresh CA and a server certificate it signed for `127.0.0.1`, `::1` and `localhost`.
pub(crate) fn generate() -> std::io::Result<Certificates> {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(other)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "testkube CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca =
        CertifiedIssuer::self_signed(ca, KeyPair::generate().map_err(other)?).map_err(other)?;
    let names = ["127.0.0.1", "::1", "localhost"].map(str::to_owned);
    let mut leaf = CertificateParams::new(names.to_vec()).map_err(other)?;
    leaf.distinguished_name.push(DnType::CommonName, "testkube");
    let key = KeyPair::generate().map_err(other)?;
    let cert = leaf.signed_by(&key, &ca).map_err(other)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(other)?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(other)?;
    Ok(Certificates {
        ca_pem: ca.pem(),
        acceptor: TlsAcceptor::from(Arc::new(config)),
    })
}

/// Serves `app` over TLS on `listener`, one task per connection, upgrades (exec) included.
pub(crate) async fn serve(listener: tokio::net::TcpListener, app: Router, acceptor: TlsAcceptor) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            // A client that refuses the certificate ends its handshake here: nothing to serve.
            let Ok(stream) = acceptor.accept(tcp).await else {
                return;
            };
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
                .with_upgrades()
                .await;
        });
    }
}
