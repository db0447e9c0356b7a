//! MQTT over QUIC as EMQX serves it: ALPN `mqtt`, one bidirectional stream
//! per MQTT connection, opened by the client, carrying the MQTT bytes as TCP
//! would. Every client from one source address shares one quinn endpoint
//! (one UDP socket and its driver task), not one per client.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use parking_lot::Mutex;
use quinn::crypto::rustls::QuicClientConfig;
use quinn::{ClientConfig, Connection, Endpoint, EndpointConfig, RecvStream, SendStream, TransportConfig, VarInt};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::{Dialer, Transport};

/// The application protocol EMQX's QUIC listener negotiates.
pub const ALPN: &[u8] = b"mqtt";
/// QUIC closes a connection that is silent for the idle timeout (quinn's
/// default is 30 s, and the smaller of the two peers' wins), while an idle
/// MQTT client may send nothing for its whole keep alive (300 s by default):
/// a QUIC ping at half quinn's timeout keeps it open.
const QUIC_KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Every client of a source address shares one UDP socket, and a connect
/// burst brings the broker's handshake flights (several datagrams each) at
/// once: the system's default buffer (about 200 KiB) overflows, and a lost
/// handshake datagram costs a retransmission timeout of a second or more.
/// Linux caps the request at `net.core.rmem_max` / `wmem_max`.
const UDP_BUFFER_BYTES: usize = 8 << 20;

/// QUIC connects a loadgen process runs at once (handshake to CONNACK). A
/// handshake costs both sides far more CPU than a TCP one (key exchange,
/// signature, a few datagrams each way through user space): past what the
/// two can do, every handshake in flight slows down together, the sockets'
/// queues grow, lost and late datagrams bring retransmissions, and many
/// miss the connect timeout (measured on two shared cores, 15,000 clients
/// asked at 5,000/s: 9,195 connected unbounded, all 15,000 with the bound).
/// With a bound, the surplus waits its turn before it sends anything, and
/// the connect rate settles at what the two can do.
const HANDSHAKES_IN_FLIGHT_MAX: usize = 256;

/// The endpoints of a run, one per local address, made on first use.
#[derive(Debug)]
pub struct Endpoints {
    config: ClientConfig,
    by_address: Mutex<HashMap<IpAddr, Endpoint>>,
    handshakes: Semaphore,
}

impl Endpoints {
    pub fn new(tls: rustls::ClientConfig) -> Result<Self, String> {
        let crypto = QuicClientConfig::try_from(tls).map_err(|e| format!("QUIC: {e}"))?;
        let mut transport = TransportConfig::default();
        transport
            .keep_alive_interval(Some(QUIC_KEEP_ALIVE))
            // The broker opens no streams toward a client and sends no datagrams.
            .max_concurrent_bidi_streams(VarInt::from_u32(0))
            .max_concurrent_uni_streams(VarInt::from_u32(0))
            .datagram_receive_buffer_size(None);
        let mut config = ClientConfig::new(Arc::new(crypto));
        config.transport_config(Arc::new(transport));
        Ok(Self {
            config,
            by_address: Mutex::new(HashMap::new()),
            handshakes: Semaphore::new(HANDSHAKES_IN_FLIGHT_MAX),
        })
    }

    /// The endpoint bound to `local` (port 0), made if it is the first.
    fn endpoint(&self, local: IpAddr) -> Result<Endpoint, String> {
        let mut endpoints = self.by_address.lock();
        if let Some(endpoint) = endpoints.get(&local) {
            return Ok(endpoint.clone());
        }
        let socket = bind_udp(SocketAddr::new(local, 0)).map_err(|e| format!("QUIC endpoint on {local}: {e}"))?;
        let runtime = quinn::default_runtime().ok_or("QUIC needs the tokio runtime")?;
        let mut endpoint = Endpoint::new(EndpointConfig::default(), None, socket, runtime)
            .map_err(|e| format!("QUIC endpoint on {local}: {e}"))?;
        endpoint.set_default_client_config(self.config.clone());
        endpoints.insert(local, endpoint.clone());
        Ok(endpoint)
    }
}

/// A client socket as quinn's `Endpoint::client` makes it (dual-stack for
/// IPv6), with buffers for connect bursts.
fn bind_udp(local: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(local), Type::DGRAM, Some(Protocol::UDP))?;
    if local.is_ipv6() {
        let _ = socket.set_only_v6(false);
    }
    let _ = socket.set_recv_buffer_size(UDP_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(UDP_BUFFER_BYTES);
    socket.bind(&local.into())?;
    Ok(socket.into())
}

/// One MQTT connection over QUIC: the stream's two halves, and the connection
/// they belong to (to close it once the stream is done).
#[derive(Debug)]
pub struct QuicStream {
    send: SendStream,
    recv: RecvStream,
    connection: Connection,
}

impl Transport for QuicStream {
    async fn turn(dialer: &Dialer) -> Option<SemaphorePermit<'_>> {
        // The semaphore is never closed, so acquiring fails only without a QUIC configuration,
        // which `open` reports.
        dialer.quic().ok()?.handshakes.acquire().await.ok()
    }

    async fn open(dialer: &Dialer, number: u64) -> Result<Self, String> {
        let target = dialer.target(number);
        let local = dialer.source(number).unwrap_or(if target.addr.is_ipv4() {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        });
        let endpoints = dialer.quic()?;
        let endpoint = endpoints.endpoint(local)?;
        let connecting =
            endpoint.connect(target.addr, &target.name).map_err(|e| format!("QUIC connect {}: {e}", target.addr))?;
        let connection =
            connecting.await.map_err(|e| format!("QUIC handshake with {} ({}): {e}", target.addr, target.name))?;
        let (send, recv) = connection.open_bi().await.map_err(|e| format!("QUIC stream to {}: {e}", target.addr))?;
        Ok(QuicStream { send, recv, connection })
    }

    /// Finishes the stream, waits until the broker has it all (or closes), then
    /// closes the connection: dropping it instead could lose the DISCONNECT.
    fn close(&mut self) -> impl Future<Output = ()> + Send {
        let _ = self.send.finish();
        let stopped = self.send.stopped();
        let connection = self.connection.clone();
        async move {
            let _ = stopped.await;
            connection.close(VarInt::from_u32(0), b"");
        }
    }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use tokio::net::TcpStream;

    use super::*;
    use crate::scenario::Target;

    const WAIT: Duration = Duration::from_millis(50);

    fn dialer(transport: &str) -> Dialer {
        let tls = if transport == "quic" { "insecure = true" } else { "" };
        let text = format!("hosts = [\"127.0.0.1\"]\ntransport = \"{transport}\"\n{tls}");
        Dialer::new(&toml::from_str::<Target>(&text).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn a_quic_connect_past_the_bound_waits_for_one_to_end() {
        let dialer = dialer("quic");
        let mut turns = Vec::new();
        for _ in 0..HANDSHAKES_IN_FLIGHT_MAX {
            turns.push(QuicStream::turn(&dialer).await.unwrap());
        }
        assert!(tokio::time::timeout(WAIT, QuicStream::turn(&dialer)).await.is_err(), "one too many runs at once");
        turns.pop();
        assert!(tokio::time::timeout(WAIT, QuicStream::turn(&dialer)).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn tcp_connects_take_no_turn() {
        let dialer = dialer("tcp");
        assert!(TcpStream::turn(&dialer).await.is_none());
    }
}
