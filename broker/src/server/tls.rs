//! The TLS handshake of the TLS and WSS listeners: rustls with the ring
//! provider, TLS 1.2 and 1.3, and the client certificate verified against
//! `client_ca` when one is set (mutual TLS). The configuration, and its
//! reload, is `certs.rs`; a failed handshake closes that socket only.

use tokio_rustls::TlsAcceptor;

use super::certs::{self, CertSet, PeerCert};
use crate::seam::Accepted;

/// Runs the server side of the handshake with the listener's current
/// certificates; returns the encrypted stream and the verified client
/// certificate's names, if the client presented one.
pub(super) async fn handshake(certs: &CertSet, accepted: Accepted) -> Result<(Accepted, Option<PeerCert>), String> {
    let acceptor = TlsAcceptor::from(certs.tls());
    let stream = acceptor.accept(accepted.stream).await.map_err(|e| format!("TLS handshake failed: {e}"))?;
    let cert = certs::peer_cert(stream.get_ref().1.peer_certificates());
    Ok((Accepted { stream: Box::new(stream), peer: accepted.peer }, cert))
}
