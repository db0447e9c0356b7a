//! The QUIC listener (quinn, TLS 1.3, ALPN `mqtt`): as EMQX does, one MQTT
//! connection per QUIC connection, carried on the first bidirectional stream
//! the client opens. The end of the MQTT connection closes the QUIC
//! connection, after the peer has acknowledged what was written.
//!
//! quinn owns its UDP socket and drives it from its own tokio task, so QUIC
//! is outside the network seam and the deterministic simulation; the one
//! place it binds is marked `// seam`.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use quinn::{RecvStream, SendStream, VarInt};
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::Shared;
use super::certs::{self, CertSet};
use super::listen::{ListenerCtx, Slot, serve_accepted};
use crate::seam::Accepted;

/// QUIC's own liveness check: a peer silent this long is gone, whatever its
/// MQTT keep alive says.
const IDLE_TIMEOUT_MAX: Duration = Duration::from_secs(60);
/// How often the broker pings an otherwise quiet connection, so that a live
/// client never reaches the idle timeout of either side.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(15);
/// How long a closing connection waits for the peer to acknowledge the last
/// bytes (a DISCONNECT, a refusing CONNACK) before it closes anyway.
const CLOSE_LINGER_MAX: Duration = Duration::from_secs(2);

/// The transport parameters of every QUIC connection: one bidirectional
/// stream (the MQTT connection), no unidirectional ones.
pub(super) fn transport() -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(VarInt::from_u32(1));
    transport.max_concurrent_uni_streams(VarInt::from_u32(0));
    transport.keep_alive_interval(Some(KEEP_ALIVE_INTERVAL));
    // 60 s fits a VarInt of milliseconds; the conversion cannot fail.
    transport.max_idle_timeout(quinn::IdleTimeout::try_from(IDLE_TIMEOUT_MAX).ok());
    transport
}

/// Binds the UDP socket and starts accepting; returns the bound address.
pub(super) fn start(
    shared: Arc<Shared>,
    ctx: Arc<ListenerCtx>,
    bind: SocketAddr,
    certs: Arc<CertSet>,
) -> io::Result<SocketAddr> {
    let config = certs.quic().ok_or_else(|| io::Error::other(format!("{}: no QUIC configuration", certs.label())))?;
    let server_config = Arc::unwrap_or_clone(config);
    // seam: quinn binds and drives its own UDP socket; QUIC is not part of the deterministic simulation.
    let endpoint = quinn::Endpoint::server(server_config, bind)
        .map_err(|e| io::Error::new(e.kind(), format!("{} bind = \"{bind}\": {e}", certs.label())))?;
    let addr = endpoint.local_addr()?;
    shared.runtime.spawn(accept_loop(Arc::clone(&shared), ctx, endpoint, certs));
    Ok(addr)
}

async fn accept_loop(shared: Arc<Shared>, ctx: Arc<ListenerCtx>, endpoint: quinn::Endpoint, certs: Arc<CertSet>) {
    let mut shutdown = shared.shutting_down.subscribe();
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let Some(incoming) = incoming else { break };
        let Some(slot) = ctx.admit(&shared, incoming.remote_address()) else {
            incoming.refuse();
            continue;
        };
        // The newest certificates, so that a reload applies to the next handshake.
        let Some(config) = certs.quic() else { break };
        let connecting = match incoming.accept_with(config) {
            Ok(connecting) => connecting,
            Err(error) => {
                tracing::info!(listener = %ctx.id, %error, "QUIC connection refused");
                continue;
            }
        };
        shared.runtime.spawn(serve(Arc::clone(&shared), slot, connecting));
    }
    // New connections are refused from now on; open ones finish their shutdown on their own.
    endpoint.set_server_config(None);
}

async fn serve(shared: Arc<Shared>, slot: Slot, connecting: quinn::Connecting) {
    let id = slot.listener().id.clone();
    let handshake = async {
        let connection = connecting.await?;
        let (send, recv) = connection.accept_bi().await?;
        Ok::<_, quinn::ConnectionError>((connection, send, recv))
    };
    let (connection, send, recv) = match tokio::time::timeout(slot.listener().connect_timeout, handshake).await {
        Ok(Ok(opened)) => opened,
        Ok(Err(error)) => return tracing::info!(listener = %id, %error, "QUIC connection closed before its stream"),
        Err(_) => return tracing::info!(listener = %id, "QUIC handshake timed out"),
    };
    let peer = connection.remote_address();
    let chain = connection.peer_identity().and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok());
    let cert = certs::peer_cert(chain.as_deref().map(Vec::as_slice));
    // Resolves once the peer acknowledged every byte of the finished stream (or stopped it).
    let acknowledged = send.stopped();
    serve_accepted(shared, slot, Accepted { stream: Box::new(QuicStream { send, recv }), peer }, cert).await;
    let _ = tokio::time::timeout(CLOSE_LINGER_MAX, acknowledged).await;
    connection.close(VarInt::from_u32(0), b"");
}

/// One bidirectional QUIC stream as the broker's byte stream. Dropping it
/// finishes the send side (quinn does so for a dropped `SendStream`).
struct QuicStream {
    send: SendStream,
    recv: RecvStream,
}

impl AsyncRead for QuicStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        AsyncRead::poll_read(Pin::new(&mut self.recv), cx, buf)
    }
}

impl AsyncWrite for QuicStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        AsyncWrite::poll_write(Pin::new(&mut self.send), cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_flush(Pin::new(&mut self.send), cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        AsyncWrite::poll_shutdown(Pin::new(&mut self.send), cx)
    }
}
