//! TLS for an `https://` callout: rustls with ring over the stream the
//! network seam opened, so that the seam still owns every connection.
//! Certificates are checked against `ca_file` when it is set (a private CA),
//! else against Mozilla's roots, and their validity against the seam's clock.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::client::ClientConfig;
use rustls::time_provider::TimeProvider;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::TlsConnector;

use crate::seam::{Clock, Stream};

/// Connects to the service's name over TLS.
#[derive(Clone)]
pub struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Tls {
    /// The TLS client for `name`; reads `ca_file` now. The error names the
    /// `[auth.http] ca_file` key.
    pub fn new(name: ServerName<'static>, ca_file: Option<&Path>, clock: Clock) -> Result<Self, String> {
        let roots = match ca_file {
            Some(path) => read_roots(path).map_err(|e| format!("[auth.http] ca_file = {path:?}: {e}"))?,
            None => RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() },
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_details(provider, Arc::new(SeamTime(clock)))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("[auth.http]: TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        // The client speaks HTTP/1.1 only; a service that negotiates ALPN must not pick h2.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self { connector: TlsConnector::from(Arc::new(config)), name })
    }

    /// The TLS handshake over `stream`; the certificate must be valid for the URL's host.
    pub async fn connect(&self, stream: Box<dyn Stream>) -> std::io::Result<Box<dyn Stream>> {
        let stream = self.connector.connect(self.name.clone(), stream).await?;
        Ok(Box::new(stream))
    }
}

/// The certificates of a PEM file, as trust anchors; an empty file is an error
/// (it would trust nothing, and every call would fail).
fn read_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| e.to_string())? {
        let cert = cert.map_err(|e| e.to_string())?;
        roots.add(cert).map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("no certificate in the file".into());
    }
    Ok(roots)
}

/// Certificate validity is judged on the broker's clock, not the system's.
#[derive(Debug)]
struct SeamTime(Clock);

impl TimeProvider for SeamTime {
    fn current_time(&self) -> Option<UnixTime> {
        Some(UnixTime::since_unix_epoch(Duration::from_millis(self.0.wall_ms(self.0.now()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name() -> ServerName<'static> {
        ServerName::try_from("localhost").expect("name")
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused_naming_the_key() {
        let path = std::env::temp_dir().join(format!("http-ca-empty-{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate\n").expect("write");
        let error = Tls::new(name(), Some(&path), Clock::new()).expect_err("empty CA file");
        let _ = std::fs::remove_file(&path);
        assert!(error.contains("[auth.http] ca_file") && error.contains("no certificate"), "{error}");
        let missing = Tls::new(name(), Some(Path::new("/nonexistent/ca.pem")), Clock::new()).expect_err("missing");
        assert!(missing.contains("/nonexistent/ca.pem"), "{missing}");
    }

    #[test]
    fn without_a_ca_file_the_web_roots_are_trusted() {
        Tls::new(name(), None, Clock::new()).expect("web roots");
    }
}
