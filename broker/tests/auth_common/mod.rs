//! Shared helpers of the `auth_*` tests: a broker started from TOML on an
//! ephemeral loopback port, a raw CONNECT that returns the CONNACK's reason,
//! and chain-level checks that need no socket.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use broker::auth::{Authenticator, Credentials, TransportInfo};
use broker::seam::Runtime;
use broker::{Config, Server};
use bytes::{Bytes, BytesMut};
use mqtt_codec::{Connect, ConnectProperties, Decoder, Packet, ProtocolVersion, ReasonCode, encode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const WAIT: Duration = Duration::from_secs(10);

// Both this module and the other test helpers include it: a test binary
// with both has two copies of a small type, which is harmless.
#[allow(clippy::duplicate_mod)]
#[path = "../test_dir/mod.rs"]
mod test_dir;
pub use test_dir::TestDir;

/// A fresh directory for one test's files, removed when dropped.
pub fn temp_dir(name: &str) -> TestDir {
    TestDir::new("broker-auth", name)
}

/// The configuration `toml` describes, listening on 127.0.0.1 port 0.
pub fn config(toml: &str) -> Config {
    let mut config = Config::parse(toml).unwrap_or_else(|e| panic!("config: {e}\n{toml}"));
    config.listeners.tcp.bind = "127.0.0.1:0".parse().unwrap();
    config
}

pub async fn start(toml: &str) -> Server {
    tokio::time::timeout(WAIT, Server::start(config(toml), Runtime::tokio())).await.unwrap().unwrap()
}

/// The authenticator `toml` describes, without a server around it.
pub fn chain(toml: &str) -> Arc<dyn Authenticator> {
    broker::auth::build(&config(toml), &Runtime::tokio()).unwrap()
}

pub fn connect_packet(
    version: ProtocolVersion,
    client_id: &str,
    user: Option<&str>,
    password: Option<&[u8]>,
) -> Connect {
    Connect {
        protocol: version,
        clean_start: true,
        keep_alive: 30,
        client_id: client_id.into(),
        will: None,
        username: user.map(Into::into),
        password: password.map(Bytes::copy_from_slice),
        properties: ConnectProperties::default(),
    }
}

/// The chain's verdict for a v5 CONNECT over the given transport.
pub async fn verdict(
    auth: &dyn Authenticator,
    client_id: &str,
    user: Option<&str>,
    password: Option<&str>,
    transport: &TransportInfo,
) -> Result<(), ReasonCode> {
    let connect = connect_packet(ProtocolVersion::V5, client_id, user, password.map(str::as_bytes));
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    auth.authenticate(Credentials { connect: &connect, peer, transport }).await
}

pub fn tcp() -> TransportInfo {
    TransportInfo::listener("tcp:default")
}

/// Connects with raw bytes and returns the CONNACK's reason, or None if the
/// broker closed without one.
pub async fn connack(
    addr: SocketAddr,
    version: ProtocolVersion,
    client_id: &str,
    user: Option<&str>,
    password: Option<&str>,
) -> Option<ReasonCode> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let connect = connect_packet(version, client_id, user, password.map(str::as_bytes));
    let mut out = BytesMut::new();
    encode(&Packet::Connect(Box::new(connect)), version, &mut out).unwrap();
    stream.write_all(&out).await.unwrap();
    let mut decoder = Decoder::with_version(version, 1 << 20);
    let mut buf = BytesMut::new();
    tokio::time::timeout(WAIT, async {
        loop {
            if let Some(packet) = decoder.decode(&mut buf).unwrap() {
                let Packet::ConnAck(ack) = packet else { panic!("expected CONNACK, got {packet:?}") };
                return Some(ack.reason_code);
            }
            if stream.read_buf(&mut buf).await.unwrap_or(0) == 0 {
                return None;
            }
        }
    })
    .await
    .unwrap()
}
