//! The rustls client configuration (ring provider) from the target's PEM
//! files: the CA that signed the broker's certificate (no system roots: the
//! machines this runs on may have none), an optional client certificate for
//! mutual TLS, or `insecure`, which accepts any broker certificate.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::{Dialer, Transport};
use crate::scenario::Target;

impl Transport for TlsStream<TcpStream> {
    async fn open(dialer: &Dialer, number: u64) -> Result<Self, String> {
        dialer.tls(number).await
    }
}

/// Builds the client configuration; `alpn` set means QUIC, which needs TLS 1.3
/// and names its application protocol. Errors name the key and the file.
pub fn client_config(target: &Target, alpn: Option<&[u8]>) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] =
        if alpn.is_some() { &[&rustls::version::TLS13] } else { rustls::DEFAULT_VERSIONS };
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match (&target.cacertfile, target.insecure) {
        (Some(_), true) => return Err("target.insecure and target.cacertfile exclude each other".into()),
        (Some(path), false) => builder.with_root_certificates(roots(path)?),
        (None, true) => builder.dangerous().with_custom_certificate_verifier(Arc::new(AnyServerCert { provider })),
        (None, false) => {
            return Err(format!(
                "target.transport {:?} needs target.cacertfile (--cacertfile: the CA that signed the broker's \
                 certificate) or target.insecure = true (--insecure: no verification)",
                target.transport.name()
            ));
        }
    };
    let mut config = match (&target.certfile, &target.keyfile) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let chain = certificates(cert, "target.certfile")?;
            let key =
                PrivateKeyDer::from_pem_file(key).map_err(|e| format!("target.keyfile {}: {e}", key.display()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("target.certfile and target.keyfile: {e}"))?
        }
        _ => return Err("target.certfile and target.keyfile go together (--certfile, --keyfile)".into()),
    };
    if let Some(alpn) = alpn {
        config.alpn_protocols = vec![alpn.to_vec()];
    }
    Ok(config)
}

fn certificates(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{key} {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{key} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{key} {}: no certificate in the file", path.display()));
    }
    Ok(certs)
}

fn roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in certificates(path, "target.cacertfile")? {
        roots.add(cert).map_err(|e| format!("target.cacertfile {}: {e}", path.display()))?;
    }
    Ok(roots)
}

/// `insecure`: any certificate is taken for the broker's. The handshake's
/// signatures are still checked (against the certificate presented), so the
/// connection is encrypted, just not authenticated.
#[derive(Debug)]
struct AnyServerCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for AnyServerCert {
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
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
