//! MQTT over WebSocket: the HTTP upgrade (path `ws_path`, subprotocol `mqtt`),
//! then [`WsStream`], which turns binary frames into a byte stream. Each
//! write goes out as one frame; the client writes a whole batch of packets
//! at once, so frames stay few.

use std::net::Ipv6Addr;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
pub use ws_stream::WsStream;

use super::{Dialer, Transport};

/// The subprotocol MQTT over WebSocket names ([MQTT-6.0.0-3]).
const SUBPROTOCOL: &str = "mqtt";
/// tungstenite allocates its read buffer up front for every connection (128 KiB
/// by default); MQTT frames from a broker are mostly small, and an idle client
/// should hold little.
const READ_BUFFER_BYTES: usize = 4 << 10;

impl Transport for WsStream<TcpStream> {
    async fn open(dialer: &Dialer, number: u64) -> Result<Self, String> {
        let tcp = dialer.tcp(number).await?;
        upgrade(dialer, number, tcp, "ws").await
    }
}

impl Transport for WsStream<TlsStream<TcpStream>> {
    async fn open(dialer: &Dialer, number: u64) -> Result<Self, String> {
        let tls = dialer.tls(number).await?;
        upgrade(dialer, number, tls, "wss").await
    }
}

/// Sends the upgrade request over `stream` and checks the answer.
async fn upgrade<S>(dialer: &Dialer, number: u64, stream: S, scheme: &str) -> Result<WsStream<S>, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let target = dialer.target(number);
    let host = if target.name.parse::<Ipv6Addr>().is_ok() { format!("[{}]", target.name) } else { target.name.clone() };
    let url = format!("{scheme}://{host}:{}{}", target.addr.port(), dialer.ws_path());
    let mut request = url.as_str().into_client_request().map_err(|e| format!("WebSocket URL {url}: {e}"))?;
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_static(SUBPROTOCOL));
    // Frames are written when the client flushes, which it does after every batch.
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES).write_buffer_size(0);
    // tungstenite refuses an answer that does not choose the subprotocol offered.
    let (ws, _response) = tokio_tungstenite::client_async_with_config(request, stream, Some(config))
        .await
        .map_err(|e| format!("WebSocket upgrade at {url} ({}): {e}", target.addr))?;
    Ok(WsStream::new(ws))
}
