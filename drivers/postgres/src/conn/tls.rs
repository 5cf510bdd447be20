//! rustls client configuration per `sslmode`, with libpq's meanings:
//! prefer/allow/require check nothing about the certificate (require with an
//! `sslrootcert` behaves like verify-ca, as in libpq); verify-ca checks the chain;
//! verify-full checks the chain and the host name.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::conn::config::{ConnConfig, SslMode};
use crate::error::PgError;

fn provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

/// Builds the TLS settings `cfg.sslmode` asks for. Reads `sslrootcert` (or the system
/// roots) when the mode verifies certificates.
pub(crate) async fn client_config(cfg: &ConnConfig) -> Result<Arc<ClientConfig>, PgError> {
    let addr = cfg.addr();
    let tls_err = |reason: String| PgError::Tls {
        addr: addr.clone(),
        reason,
    };
    let verify_chain = match cfg.sslmode {
        SslMode::VerifyCa | SslMode::VerifyFull => true,
        SslMode::Require => cfg.sslrootcert.is_some(),
        SslMode::Disable | SslMode::Allow | SslMode::Prefer => false,
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(format!("{e}; this is a bug in instarec's TLS setup")))?;
    let config = if !verify_chain {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate))
            .with_no_client_auth()
    } else {
        let roots = Arc::new(load_roots(cfg).await?);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider())
            .build()
            .map_err(|e| {
                tls_err(format!(
                    "cannot use the trusted roots: {e}; check sslrootcert"
                ))
            })?;
        if cfg.sslmode == SslMode::VerifyFull {
            builder.with_webpki_verifier(webpki).with_no_client_auth()
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
                .with_no_client_auth()
        }
    };
    Ok(Arc::new(config))
}

/// The name sent in SNI and, for verify-full, checked against the certificate.
pub(crate) fn server_name(cfg: &ConnConfig) -> Result<ServerName<'static>, PgError> {
    ServerName::try_from(cfg.host.clone()).map_err(|e| PgError::Tls {
        addr: cfg.addr(),
        reason: format!(
            "host {:?} is not a valid TLS server name: {e}; use a DNS name or IP address",
            cfg.host
        ),
    })
}

async fn load_roots(cfg: &ConnConfig) -> Result<RootCertStore, PgError> {
    let addr = cfg.addr();
    let mut roots = RootCertStore::empty();
    match &cfg.sslrootcert {
        Some(path) => {
            let pem = tokio::fs::read(path).await.map_err(|e| PgError::Tls {
                addr: addr.clone(),
                reason: format!(
                    "cannot read sslrootcert {}: {e}; check the path and permissions",
                    path.display()
                ),
            })?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| PgError::Tls {
                    addr: addr.clone(),
                    reason: format!(
                        "sslrootcert {} is not valid PEM: {e}; give a PEM file of CA certificates",
                        path.display()
                    ),
                })?;
                roots.add(cert).map_err(|e| PgError::Tls {
                    addr: addr.clone(),
                    reason: format!(
                        "sslrootcert {} holds an unusable certificate: {e}",
                        path.display()
                    ),
                })?;
            }
        }
        None => {
            // Reading the system store touches files: keep it off the runtime threads.
            let native = tokio::task::spawn_blocking(rustls_native_certs::load_native_certs)
                .await
                .map_err(|e| PgError::Tls {
                    addr: addr.clone(),
                    reason: format!("loading system roots panicked: {e}"),
                })?;
            roots.add_parsable_certificates(native.certs);
        }
    }
    if roots.is_empty() {
        return Err(PgError::Tls {
            addr,
            reason: format!("sslmode={} needs trusted CA certificates and none were found; set sslrootcert=/path/to/ca.pem in the URL", cfg.sslmode),
        });
    }
    Ok(roots)
}

/// prefer/allow/require: encrypt, but accept any certificate (libpq does the same).
/// Handshake signatures are still checked so the session keys are sound.
#[derive(Debug)]
struct AcceptAnyCertificate;

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
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
            &ring::default_provider().signature_verification_algorithms,
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
            &ring::default_provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// verify-ca: the chain must lead to a trusted root; the host name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // The webpki verifier checks the name only after the chain verified, so a name
        // error here means the chain is good.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}
