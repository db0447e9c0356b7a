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
use std::sync::atomic::{AtomicUsize, Ordering};
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
/// The UDP socket's receive and send buffers. Every connection of the
/// listener shares this one socket, and each handshake brings several
/// 1,200-byte datagrams: the system default (about 200 KiB, some 90
/// datagrams as the kernel counts them) overflowed in a burst of 15,000
/// clients (about 100,000 datagrams dropped), and each datagram lost costs
/// its client a retransmission timeout of a second or more. 8 MiB holds a
/// burst of a few thousand handshakes; against sustained overload a buffer
/// only delays. Linux caps the request at `net.core.rmem_max` / `wmem_max`.
const UDP_BUFFER_BYTES: usize = 8 << 20;
/// Handshakes in progress past which a new client must first prove that it
/// receives at its source address (a stateless Retry: one round trip more,
/// no state kept). UDP source addresses can be forged: unproven, an Initial
/// costs its sender one datagram and holds a place in `max_connections` for
/// the whole handshake deadline. Below the bound, clients connect without the
/// extra round trip.
const HANDSHAKES_WITHOUT_RETRY_MAX: usize = 256;

/// What a client may send ahead of the broker's reading, and what the broker
/// queues for a client ahead of its acknowledgements, per connection. quinn's
/// defaults (1.25 MB in, 10 MB out) are sized for bulk transfers; bounded here
/// like a TCP socket's buffers, so that a client that does not read (or a
/// reader paused by a rate limit) holds a fixed amount of the broker's
/// memory, and back-pressure reaches the session queue as it does over TCP.
const STREAM_WINDOW_BYTES: u32 = 256 * 1024;

/// The transport parameters of every QUIC connection: one bidirectional
/// stream (the MQTT connection), no unidirectional ones, no datagrams, and
/// bounded flow-control windows.
pub(super) fn transport() -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    transport.max_concurrent_bidi_streams(VarInt::from_u32(1));
    transport.max_concurrent_uni_streams(VarInt::from_u32(0));
    // MQTT has no use for unreliable datagrams; left on (quinn's default), a
    // client could park 1.25 MB of them per connection that nobody reads.
    transport.datagram_receive_buffer_size(None);
    transport.stream_receive_window(VarInt::from_u32(STREAM_WINDOW_BYTES));
    transport.receive_window(VarInt::from_u32(STREAM_WINDOW_BYTES));
    transport.send_window(u64::from(STREAM_WINDOW_BYTES));
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
    let fail = |e: io::Error| io::Error::new(e.kind(), format!("{} bind = \"{bind}\": {e}", certs.label()));
    let socket = bind_udp(bind).map_err(fail)?;
    let runtime = quinn::default_runtime().ok_or_else(|| io::Error::other("QUIC needs the tokio runtime"))?;
    let endpoint =
        quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(server_config), socket, runtime).map_err(fail)?;
    let addr = endpoint.local_addr()?;
    shared.runtime.spawn(accept_loop(Arc::clone(&shared), ctx, endpoint, certs));
    Ok(addr)
}

/// The listener's UDP socket, with buffers for bursts of handshakes.
fn bind_udp(bind: SocketAddr) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    // seam: quinn drives its own UDP socket; QUIC is not part of the deterministic simulation.
    let socket = Socket::new(Domain::for_address(bind), Type::DGRAM, Some(Protocol::UDP))?;
    // Sized before the bind, so that the first datagrams already find the room.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(UDP_BUFFER_BYTES);
    socket.bind(&bind.into())?;
    // Linux grants up to the cap and reports twice that (bookkeeping included).
    let granted = socket.recv_buffer_size().unwrap_or(0);
    if granted < UDP_BUFFER_BYTES {
        tracing::warn!(%bind, granted, wanted = UDP_BUFFER_BYTES,
            "QUIC socket receive buffer smaller than wanted: bursts of handshakes may lose datagrams \
             and time out; raise net.core.rmem_max");
    }
    Ok(socket.into())
}

async fn accept_loop(shared: Arc<Shared>, ctx: Arc<ListenerCtx>, endpoint: quinn::Endpoint, certs: Arc<CertSet>) {
    let mut shutdown = shared.shutting_down.subscribe();
    // A per-address rate charged to a forged address would lock out the client that owns it.
    let per_address_limits = shared.config.limits.max_conn_rate_per_ip > 0;
    let handshakes = Arc::new(AtomicUsize::new(0));
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            _ = shutdown.wait_for(|stop| *stop) => break,
        };
        let Some(incoming) = incoming else { break };
        let crowded = handshakes.load(Ordering::Relaxed) >= HANDSHAKES_WITHOUT_RETRY_MAX;
        if (per_address_limits || crowded) && !incoming.remote_address_validated() && incoming.may_retry() {
            // The client comes back with the token, from the address it claims; a dropped
            // `RetryError` refuses, which cannot happen after `may_retry`.
            let _ = incoming.retry();
            continue;
        }
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
        let handshaking = Handshaking::start(&handshakes);
        shared.runtime.spawn(serve(Arc::clone(&shared), slot, connecting, handshaking));
    }
    // New connections are refused from now on; open ones finish their shutdown on their own.
    endpoint.set_server_config(None);
}

/// A handshake in the listener's count, until dropped.
struct Handshaking(Arc<AtomicUsize>);

impl Handshaking {
    fn start(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::Relaxed);
        Self(Arc::clone(count))
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn serve(shared: Arc<Shared>, slot: Slot, connecting: quinn::Connecting, handshaking: Handshaking) {
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
    drop(handshaking);
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
