//! MQTT over WebSocket: the HTTP upgrade (path `ws_path`, subprotocol `mqtt`),
//! then [`WsStream`], which turns binary frames into a byte stream. Each
//! write goes out as one frame; the client writes a whole batch of packets
//! at once, so frames stay few.

use std::io;
use std::net::Ipv6Addr;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

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
    Ok(WsStream { ws, reading: Bytes::new() })
}

/// A WebSocket connection as a byte stream: reads yield the payloads of
/// binary frames in order; each write goes out as one binary frame.
#[derive(Debug)]
pub struct WsStream<S> {
    ws: WebSocketStream<S>,
    /// What is left of the frame being read.
    reading: Bytes,
}

fn to_io(error: WsError) -> io::Error {
    match error {
        WsError::Io(e) => e,
        other => io::Error::other(other),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            if !self.reading.is_empty() {
                let n = self.reading.len().min(buf.remaining());
                buf.put_slice(&self.reading[..n]);
                self.reading.advance(n);
                return Poll::Ready(Ok(()));
            }
            match Pin::new(&mut self.ws).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                // The end of the stream or a Close frame: a read of zero bytes.
                Poll::Ready(None) | Poll::Ready(Some(Ok(Message::Close(_)))) => return Poll::Ready(Ok(())),
                Poll::Ready(Some(Ok(Message::Binary(data)))) => self.reading = data,
                // MQTT travels in binary frames only ([MQTT-6.0.0-1]).
                Poll::Ready(Some(Ok(Message::Text(_)))) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "text frame on MQTT over WebSocket",
                    )));
                }
                // tungstenite answers pings itself; pongs and raw frames carry nothing for MQTT.
                Poll::Ready(Some(Ok(_))) => {}
                Poll::Ready(Some(Err(error))) => return Poll::Ready(Err(to_io(error))),
            }
        }
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.ws).poll_ready(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(error)) => return Poll::Ready(Err(to_io(error))),
            Poll::Ready(Ok(())) => {}
        }
        match Pin::new(&mut self.ws).start_send(Message::Binary(Bytes::copy_from_slice(data))) {
            Ok(()) => Poll::Ready(Ok(data.len())),
            Err(error) => Poll::Ready(Err(to_io(error))),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(to_io)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_close(cx).map_err(to_io)
    }
}
