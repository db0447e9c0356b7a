//! A WebSocket connection as a byte stream, for MQTT over WebSocket: reads
//! yield the payloads of binary frames in order, so several packets in one
//! frame and one packet across frames both work ([MQTT-6.0.0-2]); each write
//! goes out as one binary frame. The broker's listener and the load
//! generator's client both use it, after their own side of the HTTP upgrade.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// See the crate's documentation.
#[derive(Debug)]
pub struct WsStream<S> {
    ws: WebSocketStream<S>,
    /// What is left of the frame being read.
    reading: Bytes,
}

impl<S> WsStream<S> {
    /// A stream over an upgraded WebSocket connection.
    pub fn new(ws: WebSocketStream<S>) -> Self {
        Self { ws, reading: Bytes::new() }
    }
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
                // MQTT travels in binary frames only ([MQTT-6.0.0-1]): a text frame ends the connection.
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

#[cfg(test)]
mod tests {
    use futures_util::SinkExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;

    async fn pair() -> (WsStream<tokio::io::DuplexStream>, WebSocketStream<tokio::io::DuplexStream>) {
        let (a, b) = tokio::io::duplex(1 << 16);
        let ours = WebSocketStream::from_raw_socket(a, Role::Server, None).await;
        let theirs = WebSocketStream::from_raw_socket(b, Role::Client, None).await;
        (WsStream::new(ours), theirs)
    }

    #[tokio::test]
    async fn frames_become_one_byte_stream_and_writes_become_frames() {
        let (mut stream, mut peer) = pair().await;
        // Two frames, the second carrying the end of one "packet" and the whole of another.
        peer.send(Message::Binary(Bytes::from_static(b"abc"))).await.expect("sent");
        peer.send(Message::Ping(Bytes::new())).await.expect("sent");
        peer.send(Message::Binary(Bytes::from_static(b"defgh"))).await.expect("sent");
        let mut got = [0u8; 8];
        stream.read_exact(&mut got).await.expect("eight bytes");
        assert_eq!(&got, b"abcdefgh");

        stream.write_all(b"xyz").await.expect("written");
        stream.flush().await.expect("flushed");
        // tungstenite answered the ping on its own, before our frame.
        let pong = futures_util::StreamExt::next(&mut peer).await;
        assert!(matches!(pong, Some(Ok(Message::Pong(_)))), "{pong:?}");
        let frame = futures_util::StreamExt::next(&mut peer).await;
        assert!(matches!(frame, Some(Ok(Message::Binary(ref b))) if b.as_ref() == b"xyz"), "{frame:?}");
    }

    #[tokio::test]
    async fn a_text_frame_is_an_error_and_a_close_frame_the_end() {
        let (mut stream, mut peer) = pair().await;
        peer.send(Message::Text("no".into())).await.expect("sent");
        let mut buf = [0u8; 4];
        let error = stream.read(&mut buf).await.expect_err("a text frame is refused");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);

        let (mut stream, mut peer) = pair().await;
        peer.close(None).await.expect("closed");
        assert_eq!(stream.read(&mut buf).await.expect("the end"), 0);
    }
}
