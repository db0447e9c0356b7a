//! Certificates of the TLS, WSS and QUIC listeners: the server side (PEM
//! files turned into a rustls / quinn configuration, reloaded without a
//! restart) and the client side (who a verified client certificate names).
//!
//! A reload builds the new configuration aside and swaps it in only when it
//! is whole; handshakes already running and connections already open keep
//! the configuration they started with. A bad file leaves the old one in use.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::Shared;
use crate::auth::CertIdentity;
use crate::config::{PeerCertField, TlsOptions};

mod identity;

pub(crate) use identity::PeerCert;

/// How often the watcher looks at the certificate files' modification times.
const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// ALPN protocol of MQTT over QUIC (as EMQX and its clients use).
pub(crate) const QUIC_ALPN: &[u8] = b"mqtt";

/// The live configuration of one TLS-bearing listener.
pub(crate) struct CertSet {
    /// `[listeners.tls.NAME]`: errors and logs name the listener.
    label: String,
    options: TlsOptions,
    /// QUIC: TLS 1.3 only, ALPN `mqtt`, and a quinn configuration.
    quic: bool,
    current: RwLock<Built>,
    /// What the files looked like at the last (attempted) load.
    stamps: Mutex<Vec<Option<Stamp>>>,
}

#[derive(Clone)]
struct Built {
    tls: Arc<rustls::ServerConfig>,
    quic: Option<Arc<quinn::ServerConfig>>,
}

/// A file's modification time and length: a change of either means the file changed.
type Stamp = (SystemTime, u64);

impl CertSet {
    /// Loads the files; an error names the listener, the key and the file.
    pub fn load(label: String, options: TlsOptions, quic: bool) -> Result<Self, String> {
        let stamps = stamps(&options);
        let built = build(&label, &options, quic)?;
        Ok(Self { label, options, quic, current: RwLock::new(built), stamps: Mutex::new(stamps) })
    }

    pub fn label(&self) -> &str {
        &self.label
    }

    /// The configuration for a new TLS handshake.
    pub fn tls(&self) -> Arc<rustls::ServerConfig> {
        Arc::clone(&self.current.read().tls)
    }

    /// The configuration for a new QUIC connection (QUIC listeners only).
    pub fn quic(&self) -> Option<Arc<quinn::ServerConfig>> {
        self.current.read().quic.clone()
    }

    /// Rereads the files; on error the previous configuration stays in use.
    pub fn reload(&self) -> Result<(), String> {
        *self.stamps.lock() = stamps(&self.options);
        let built = build(&self.label, &self.options, self.quic)?;
        *self.current.write() = built;
        Ok(())
    }

    /// Whether a file changed since the last load (or attempt).
    fn changed_on_disk(&self) -> bool {
        *self.stamps.lock() != stamps(&self.options)
    }

    fn files(&self) -> impl Iterator<Item = &Path> {
        [Some(&self.options.cert), Some(&self.options.key), self.options.client_ca.as_ref()]
            .into_iter()
            .flatten()
            .map(PathBuf::as_path)
    }
}

fn stamps(options: &TlsOptions) -> Vec<Option<Stamp>> {
    [Some(&options.cert), Some(&options.key), options.client_ca.as_ref()]
        .into_iter()
        .flatten()
        .map(|path| std::fs::metadata(path).ok().and_then(|m| Some((m.modified().ok()?, m.len()))))
        .collect()
}

/// Reloads every set whose files changed, every [`WATCH_INTERVAL`], until shutdown.
pub(super) async fn watch(shared: Arc<Shared>, sets: Arc<Vec<Arc<CertSet>>>) {
    let mut shutdown = shared.shutting_down.subscribe();
    loop {
        tokio::select! {
            () = tokio::time::sleep(WATCH_INTERVAL) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        for set in sets.iter().filter(|s| s.changed_on_disk()) {
            let files: Vec<_> = set.files().map(Path::display).map(|d| d.to_string()).collect();
            match set.reload() {
                Ok(()) => tracing::info!(listener = set.label(), ?files, "certificates reloaded: files changed"),
                Err(error) => {
                    tracing::error!(%error, "certificate files changed but do not load; the previous ones stay in use")
                }
            }
        }
    }
}

fn build(label: &str, options: &TlsOptions, quic: bool) -> Result<Built, String> {
    let tls = Arc::new(server_config(label, options, quic)?);
    let quic = if quic {
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(Arc::clone(&tls))
            .map_err(|e| format!("{label}: the certificate does not suit QUIC: {e}"))?;
        let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        config.transport_config(Arc::new(super::quic::transport()));
        Some(Arc::new(config))
    } else {
        None
    };
    Ok(Built { tls, quic })
}

/// rustls with ring: TLS 1.2 and 1.3 (QUIC: 1.3 and ALPN `mqtt`), and mutual
/// TLS against `client_ca` when it is set.
fn server_config(label: &str, options: &TlsOptions, quic: bool) -> Result<rustls::ServerConfig, String> {
    let cert_path = &options.cert;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| format!("{label} cert {cert_path:?}: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{label} cert {cert_path:?}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{label} cert {cert_path:?}: no certificate in the file"));
    }
    let key_path = &options.key;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| format!("{label} key {key_path:?}: {e}"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider));
    let builder = if quic {
        builder.with_protocol_versions(&[&rustls::version::TLS13])
    } else {
        builder.with_safe_default_protocol_versions()
    }
    .map_err(|e| format!("{label}: {e}"))?;
    let builder = match &options.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let fail = |e: &dyn std::fmt::Display| format!("{label} client_ca {path:?}: {e}");
            let mut roots = RootCertStore::empty();
            for ca in CertificateDer::pem_file_iter(path).map_err(|e| fail(&e))? {
                roots.add(ca.map_err(|e| fail(&e))?).map_err(|e| fail(&e))?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider).build().map_err(|e| fail(&e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("{label} cert {cert_path:?} and key {key_path:?}: {e}"))?;
    if quic {
        config.alpn_protocols = vec![QUIC_ALPN.to_vec()];
    }
    Ok(config)
}

/// The identity of the leaf of a verified chain, if there is one and it parses.
pub(crate) fn peer_cert(chain: Option<&[CertificateDer<'_>]>) -> Option<PeerCert> {
    let leaf = chain?.first()?;
    let cert = PeerCert::parse(leaf);
    if cert.is_none() {
        tracing::warn!("a verified client certificate does not parse; its identity is not used");
    }
    cert
}

impl PeerCert {
    /// The value a `peer_cert_as_*` option picks, if the certificate has it.
    pub fn field(&self, field: PeerCertField) -> Option<&str> {
        match field {
            PeerCertField::Disabled => None,
            PeerCertField::Cn => self.identity.common_name.as_deref(),
            PeerCertField::Dn => Some(&self.identity.subject),
            PeerCertField::SanDns => self.dns.first().map(String::as_str),
            PeerCertField::SanEmail => self.email.first().map(String::as_str),
            PeerCertField::SanUri => self.uri.first().map(String::as_str),
        }
    }

    pub fn identity(&self) -> &CertIdentity {
        &self.identity
    }
}
