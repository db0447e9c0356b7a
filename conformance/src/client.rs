//! A raw MQTT connection for cases: send bytes, receive frames, observe closes.

use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::packets::{self, ConnAck, ConnectBuilder, Publish, Version};
use crate::wire::{Frame, hex, kind, kind_name, split_frame};

/// Where the broker under test listens, and how to log in.
#[derive(Debug, Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// What a receive saw.
#[derive(Debug)]
pub enum Event {
    Frame(Frame),
    /// The server closed the connection (or reset it).
    Closed,
    /// Nothing arrived in time.
    Silent,
}

/// How long a case waits for a reply it expects.
pub const REPLY_WAIT: Duration = Duration::from_secs(5);
/// How long a case waits to conclude that nothing arrives.
pub const SILENCE_WAIT: Duration = Duration::from_millis(500);

/// One network connection to the server.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    buf: BytesMut,
    pub version: Version,
    closed: bool,
}

impl Client {
    /// Opens a TCP connection without sending anything.
    pub async fn open(target: &Target, version: Version) -> Result<Self, String> {
        let addr = format!("{}:{}", target.host, target.port);
        let stream = tokio::time::timeout(REPLY_WAIT, TcpStream::connect(&addr))
            .await
            .map_err(|_| format!("connecting to {addr} timed out"))?
            .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
        let _ = stream.set_nodelay(true);
        Ok(Self { stream, buf: BytesMut::with_capacity(4096), version, closed: false })
    }

    /// Opens a connection, sends `connect` and expects a CONNACK; returns it
    /// whatever its code (see `connect_ok` for a successful one).
    pub async fn connect(target: &Target, connect: &ConnectBuilder) -> Result<(Self, ConnAck), String> {
        let mut client = Self::open(target, connect.version).await?;
        client.send(&connect.bytes()).await?;
        let frame = client.expect(kind::CONNACK).await?;
        let connack = packets::parse_connack(&frame, connect.version)?;
        Ok((client, connack))
    }

    /// Like `connect`, and fails unless the CONNACK accepts the connection.
    pub async fn connect_ok(target: &Target, connect: &ConnectBuilder) -> Result<(Self, ConnAck), String> {
        let (client, connack) = Self::connect(target, connect).await?;
        if connack.code != 0 {
            return Err(format!("CONNACK refused the connection with code 0x{:02x}", connack.code));
        }
        Ok((client, connack))
    }

    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.stream.write_all(bytes).await.map_err(|e| format!("send failed: {e}"))
    }

    /// The next packet, a close, or silence after `within`.
    pub async fn recv(&mut self, within: Duration) -> Result<Event, String> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(frame) = split_frame(&mut self.buf)? {
                return Ok(Event::Frame(frame));
            }
            if self.closed {
                return Ok(Event::Closed);
            }
            match tokio::time::timeout_at(deadline, self.stream.read_buf(&mut self.buf)).await {
                Err(_) => return Ok(Event::Silent),
                Ok(Ok(0)) | Ok(Err(_)) => self.closed = true,
                Ok(Ok(_)) => {}
            }
        }
    }

    /// The next packet, which must be of `expected` kind; PINGRESP is never skipped.
    pub async fn expect(&mut self, expected: u8) -> Result<Frame, String> {
        match self.recv(REPLY_WAIT).await? {
            Event::Frame(frame) if frame.kind == expected => Ok(frame),
            Event::Frame(frame) => Err(format!("expected {}, got {frame:?}", kind_name(expected))),
            Event::Closed => Err(format!("expected {}, but the server closed the connection", kind_name(expected))),
            Event::Silent => {
                Err(format!("expected {}, but nothing arrived within {:?}", kind_name(expected), REPLY_WAIT))
            }
        }
    }

    /// The next PUBLISH, parsed.
    pub async fn expect_publish(&mut self) -> Result<Publish, String> {
        let frame = self.expect(kind::PUBLISH).await?;
        packets::parse_publish(&frame, self.version)
    }

    /// Fails if a packet arrives within `SILENCE_WAIT`.
    pub async fn expect_silence(&mut self) -> Result<(), String> {
        match self.recv(SILENCE_WAIT).await? {
            Event::Silent => Ok(()),
            Event::Closed => Err("expected silence, but the server closed the connection".into()),
            Event::Frame(frame) => Err(format!("expected nothing, got {frame:?}")),
        }
    }

    /// Waits until the server closes the connection; returns the packets it
    /// sent first (a 5.0 server may send DISCONNECT). Fails if still open after `within`.
    pub async fn expect_closed(&mut self, within: Duration) -> Result<Vec<Frame>, String> {
        let deadline = tokio::time::Instant::now() + within;
        let mut frames = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await? {
                Event::Closed => return Ok(frames),
                Event::Frame(frame) => frames.push(frame),
                Event::Silent => {
                    let seen: Vec<String> = frames.iter().map(|f| format!("{f:?}")).collect();
                    return Err(format!(
                        "expected the server to close the connection within {within:?}; it sent [{}] and stayed open",
                        seen.join(", ")
                    ));
                }
            }
        }
    }

    /// Expects the connection to be closed, and for 5.0 allows (and returns)
    /// a DISCONNECT before the close; for 3.1.1 no packet may come first.
    pub async fn expect_disconnected(&mut self) -> Result<Option<u8>, String> {
        let frames = self.expect_closed(REPLY_WAIT).await?;
        match (self.version, frames.as_slice()) {
            (_, []) => Ok(None),
            (Version::V5, [frame]) if frame.kind == kind::DISCONNECT => {
                Ok(Some(packets::parse_disconnect(frame)?.reason))
            }
            (_, frames) => Err(format!(
                "expected a close{}, got {:?} first",
                if self.version.is_v5() { " (after at most a DISCONNECT)" } else { "" },
                frames
            )),
        }
    }

    /// Drops the TCP connection without DISCONNECT (an abnormal close).
    pub fn drop_connection(self) {
        drop(self);
    }

    /// Closes the connection as a client must after sending DISCONNECT
    /// (3.1.1 MQTT-3.14.4-1, 5.0 MQTT-3.14.4-2): shuts down the sending side,
    /// then waits up to `within` for the server to close its side, which it
    /// does once it has read the DISCONNECT and the end of the stream. A case
    /// that connects again with the same client id then does not race the
    /// server's handling of this close. Returns whether the server closed in time.
    pub async fn close(mut self, within: Duration) -> bool {
        let _ = self.stream.shutdown().await;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                Ok(Event::Closed) | Err(_) => return true,
                Ok(Event::Silent) => return false,
                Ok(Event::Frame(_)) => {}
            }
        }
    }

    /// Unparsed bytes received but not yet split into frames, for messages.
    pub fn pending_hex(&self) -> String {
        hex(&self.buf)
    }
}
