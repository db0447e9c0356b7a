//! The TLS listener: rustls with the ring provider, TLS 1.2 and 1.3, and
//! optional verification of client certificates against a CA (mutual TLS).
//! A socket gets `connect_timeout_secs` for its handshake; a failed handshake
//! closes that socket and is logged, nothing else.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsListenerConfig;
use crate::seam::{Accepted, Listener};

use super::{Shared, serve_accepted};

/// Builds the acceptor from the configured PEM files; errors name the file.
pub fn acceptor(config: &TlsListenerConfig) -> Result<TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&config.cert)
        .map_err(|e| format!("[listeners.tls] cert {:?}: {e}", config.cert))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("[listeners.tls] cert {:?}: {e}", config.cert))?;
    if certs.is_empty() {
        return Err(format!("[listeners.tls] cert {:?}: no certificate in the file", config.cert));
    }
    let key =
        PrivateKeyDer::from_pem_file(&config.key).map_err(|e| format!("[listeners.tls] key {:?}: {e}", config.key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("[listeners.tls]: {e}"))?;
    let builder = match &config.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = RootCertStore::empty();
            let cas =
                CertificateDer::pem_file_iter(path).map_err(|e| format!("[listeners.tls] client_ca {path:?}: {e}"))?;
            for ca in cas {
                let ca = ca.map_err(|e| format!("[listeners.tls] client_ca {path:?}: {e}"))?;
                roots.add(ca).map_err(|e| format!("[listeners.tls] client_ca {path:?}: {e}"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("[listeners.tls] client_ca {path:?}: {e}"))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let server = builder.with_single_cert(certs, key).map_err(|e| format!("[listeners.tls] cert and key: {e}"))?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Accepts sockets, runs each handshake in its own task, and serves the
/// connections that complete it.
pub(super) async fn accept_loop(shared: Arc<Shared>, mut listener: Box<dyn Listener>, acceptor: TlsAcceptor) {
    let Some(config) = shared.config.listeners.tls.clone() else { return };
    let handshake_max = Duration::from_secs(u64::from(config.connect_timeout_secs.get()));
    let mut shutdown = shared.shutting_down.subscribe();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let accepted = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "TLS accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let task_shared = Arc::clone(&shared);
        let max = config.max_connections.get();
        shared.runtime.spawn(async move {
            let peer = accepted.peer;
            let stream = match tokio::time::timeout(handshake_max, acceptor.accept(accepted.stream)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(error)) => return handshake_failed(peer, &error),
                Err(_) => return tracing::info!(%peer, "TLS handshake timed out"),
            };
            serve_accepted(task_shared, Accepted { stream: Box::new(stream), peer }, max).await;
        });
    }
}

fn handshake_failed(peer: std::net::SocketAddr, error: &io::Error) {
    tracing::info!(%peer, %error, "TLS handshake failed");
}
