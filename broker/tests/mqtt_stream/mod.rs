//! A minimal MQTT 5 client over any byte stream (TLS, QUIC, WebSocket
//! wrappers): raw bytes out, packets decoded by `mqtt-codec` in.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use bytes::BytesMut;
use mqtt_codec::{Decoder, Packet, ProtocolVersion};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// How long a test waits for one packet.
pub const PACKET_WAIT: Duration = Duration::from_secs(5);

pub struct Client<S> {
    pub stream: S,
    decoder: Decoder,
    buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub fn new(stream: S) -> Self {
        Self { stream, decoder: Decoder::with_version(ProtocolVersion::V5, 1 << 20), buf: BytesMut::new() }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }

    /// The next packet; None when the broker closed the stream (or broke it) first.
    pub async fn next(&mut self) -> Option<Packet> {
        tokio::time::timeout(PACKET_WAIT, async {
            loop {
                if let Some(packet) = self.decoder.decode(&mut self.buf).unwrap() {
                    return Some(packet);
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("a packet or the end of the stream in time")
    }

    /// The CONNACK's reason code byte, or None if the broker closed without one.
    pub async fn connack(&mut self) -> Option<u8> {
        match self.next().await? {
            Packet::ConnAck(ack) => Some(ack.reason_code.0),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }
}
