//! How a client reaches the broker: plain TCP, TLS, WebSocket (plain or over
//! TLS) or QUIC. Past [`Transport::open`] every kind is a byte stream
//! (`AsyncRead + AsyncWrite`), so the client task (`driver.rs`) is one generic
//! function instantiated per kind: a TCP client carries a bare `TcpStream`,
//! neither boxed nor wrapped, and pays nothing for the other kinds.
//!
//! Layout: [`tls`] (rustls client configuration from PEM files, `insecure`),
//! [`ws`] (the upgrade and frames as bytes), [`quic`] (one endpoint per
//! source address, one bidirectional stream per MQTT connection).

pub mod quic;
pub mod tls;
pub mod ws;

use std::future::poll_fn;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::Arc;

use rustls_pki_types::ServerName;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::SemaphorePermit;
use tokio_rustls::TlsConnector;

use crate::scenario::Target;

/// The kinds of connection, as written in a scenario's `[target] transport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportKind {
    #[default]
    Tcp,
    Tls,
    Ws,
    Wss,
    Quic,
}

impl TransportKind {
    pub fn name(self) -> &'static str {
        match self {
            TransportKind::Tcp => "tcp",
            TransportKind::Tls => "tls",
            TransportKind::Ws => "ws",
            TransportKind::Wss => "wss",
            TransportKind::Quic => "quic",
        }
    }

    /// True for the kinds that run a TLS handshake (QUIC's is TLS 1.3).
    pub fn uses_tls(self) -> bool {
        matches!(self, TransportKind::Tls | TransportKind::Wss | TransportKind::Quic)
    }

    /// QUIC multiplexes every connection of a source address over one UDP
    /// port, so the per-source port limit of TCP does not apply.
    pub fn uses_source_ports(self) -> bool {
        self != TransportKind::Quic
    }
}

/// A connection to the broker that the client task drives.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + Sized + 'static {
    /// Connects client `number` (which picks its target and source address)
    /// and completes the transport's handshakes, ready for MQTT bytes.
    fn open(dialer: &Dialer, number: u64) -> impl Future<Output = Result<Self, String>> + Send;

    /// Waits until this kind lets one more client connect, and holds that
    /// place until the connect ends (QUIC bounds its connects in flight). The
    /// wait is outside the connect timeout: the client has sent nothing yet,
    /// and the achieved connect rate shows the delay.
    fn turn(dialer: &Dialer) -> impl Future<Output = Option<SemaphorePermit<'_>>> + Send {
        let _ = dialer;
        std::future::ready(None)
    }

    /// Ends the connection the transport's own way, once the DISCONNECT is
    /// out: TCP a FIN, TLS a close_notify, WebSocket a Close frame.
    fn close(&mut self) -> impl Future<Output = ()> + Send {
        async move {
            let _ = poll_fn(|cx| Pin::new(&mut *self).poll_shutdown(cx)).await;
        }
    }
}

impl Transport for TcpStream {
    async fn open(dialer: &Dialer, number: u64) -> Result<Self, String> {
        dialer.tcp(number).await
    }
}

/// One resolved target.
#[derive(Debug, Clone)]
pub struct TargetAddr {
    pub addr: SocketAddr,
    /// The host as written, or `server_name`: what the broker's certificate
    /// must name, sent as TLS SNI and as the WebSocket request's Host.
    pub name: String,
    pub server_name: ServerName<'static>,
}

/// What every client of a run needs to open its connection: targets, source
/// addresses, and the transport's shared state (TLS configuration, QUIC endpoints).
#[derive(Debug)]
pub struct Dialer {
    kind: TransportKind,
    targets: Vec<TargetAddr>,
    sources: Vec<IpAddr>,
    tls: Option<Arc<rustls::ClientConfig>>,
    ws_path: String,
    quic: Option<quic::Endpoints>,
}

impl Dialer {
    /// Resolves the targets and loads the certificate files; errors name the key.
    pub fn new(target: &Target) -> Result<Self, String> {
        let kind = target.transport;
        let targets = resolve_targets(target)?;
        let tls = match kind {
            TransportKind::Tls | TransportKind::Wss => Some(Arc::new(tls::client_config(target, None)?)),
            TransportKind::Tcp | TransportKind::Ws | TransportKind::Quic => None,
        };
        let quic = match kind {
            TransportKind::Quic => Some(quic::Endpoints::new(tls::client_config(target, Some(quic::ALPN))?)?),
            _ => None,
        };
        Ok(Self { kind, targets, sources: target.ifaddr.clone(), tls, ws_path: target.ws_path.clone(), quic })
    }

    pub fn kind(&self) -> TransportKind {
        self.kind
    }

    /// Client `number`'s target: `hosts[number % len]`.
    pub fn target(&self, number: u64) -> &TargetAddr {
        &self.targets[(number % self.targets.len().max(1) as u64) as usize]
    }

    /// Client `number`'s source address: `ifaddr[number % len]`, if any are given.
    pub fn source(&self, number: u64) -> Option<IpAddr> {
        (!self.sources.is_empty()).then(|| self.sources[(number % self.sources.len() as u64) as usize])
    }

    /// A TCP connection from client `number`'s source address (bound before
    /// the connect) to its target.
    pub async fn tcp(&self, number: u64) -> Result<TcpStream, String> {
        let target = self.target(number).addr;
        let socket =
            if target.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }.map_err(|e| e.to_string())?;
        if let Some(source) = self.source(number) {
            socket.bind(SocketAddr::new(source, 0)).map_err(|e| format!("bind {source}: {e}"))?;
        }
        let stream = socket.connect(target).await.map_err(|e| format!("connect {target}: {e}"))?;
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    /// TCP, then the TLS handshake.
    pub async fn tls(&self, number: u64) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        let config = self.tls.as_ref().ok_or("no TLS configuration for this transport")?;
        let tcp = self.tcp(number).await?;
        let target = self.target(number);
        TlsConnector::from(Arc::clone(config))
            .connect(target.server_name.clone(), tcp)
            .await
            .map_err(|e| format!("TLS handshake with {} ({}): {e}", target.addr, target.name))
    }

    pub fn ws_path(&self) -> &str {
        &self.ws_path
    }

    pub fn quic(&self) -> Result<&quic::Endpoints, String> {
        self.quic.as_ref().ok_or_else(|| "no QUIC configuration for this transport".to_string())
    }
}

/// Splits `host`, `host:port`, `[v6]` or `[v6]:port`; a bare IPv6 address has no port.
fn split_host_port(text: &str, default_port: u16) -> Result<(String, u16), String> {
    let parse_port = |p: &str| p.parse::<u16>().map_err(|_| format!("target.hosts: bad port in {text:?}"));
    if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| format!("target.hosts: no ']' in {text:?}"))?;
        let port = match after.strip_prefix(':') {
            Some(p) => parse_port(p)?,
            None if after.is_empty() => default_port,
            None => return Err(format!("target.hosts: {text:?} is not [address]:port")),
        };
        return Ok((host.to_string(), port));
    }
    match text.split_once(':') {
        Some((host, port)) if !port.contains(':') => Ok((host.to_string(), parse_port(port)?)),
        _ => Ok((text.to_string(), default_port)),
    }
}

/// Resolves the scenario's hosts, each with the name its certificate must carry.
pub fn resolve_targets(target: &Target) -> Result<Vec<TargetAddr>, String> {
    target
        .hosts
        .iter()
        .map(|h| {
            let (host, port) = split_host_port(h, target.port)?;
            let addr = (host.as_str(), port)
                .to_socket_addrs()
                .map_err(|e| format!("host {h:?}: {e}"))?
                .next()
                .ok_or_else(|| format!("host {h:?} has no address"))?;
            let name = target.server_name.clone().unwrap_or(host);
            let server_name = ServerName::try_from(name.clone()).map_err(|_| {
                format!("host {name:?} is not a valid TLS server name; give target.server_name (--server-name)")
            })?;
            Ok(TargetAddr { addr, name, server_name })
        })
        .collect()
}

#[cfg(test)]
impl Dialer {
    pub fn for_test() -> Self {
        let addr = SocketAddr::from(([127, 0, 0, 1], 1883));
        let server_name = ServerName::from(addr.ip());
        Self {
            kind: TransportKind::Tcp,
            targets: vec![TargetAddr { addr, name: "127.0.0.1".into(), server_name }],
            sources: Vec::new(),
            tls: None,
            ws_path: "/mqtt".into(),
            quic: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::split_host_port;

    #[test]
    fn hosts_split_into_name_and_port_with_ipv6_in_brackets() {
        let split = |t: &str| split_host_port(t, 1883).unwrap_or_default();
        assert_eq!(split("localhost"), ("localhost".into(), 1883));
        assert_eq!(split("127.0.0.1:8883"), ("127.0.0.1".into(), 8883));
        assert_eq!(split("[::1]:8883"), ("::1".into(), 8883));
        assert_eq!(split("[::1]"), ("::1".into(), 1883));
        assert_eq!(split("::1"), ("::1".into(), 1883));
        assert!(split_host_port("host:port", 1883).is_err());
        assert!(split_host_port("[::1", 1883).is_err());
    }
}
