//! Several listeners of one kind: each serves MQTT, `Server::listeners`
//! reports them, and each applies its own `max_connections` and
//! `connect_timeout_secs`.
#![allow(clippy::unwrap_used)]

mod tcp_common;

use std::net::SocketAddr;
use std::time::Duration;

use broker::config::ListenerKind;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use tcp_common::Connect;

async fn start(text: &str) -> broker::Server {
    broker::Server::start(broker::Config::parse(text).unwrap(), broker::seam::Runtime::tokio()).await.unwrap()
}

/// Sends a CONNECT and returns the CONNACK's first byte, or None if the socket closed first.
async fn connack(addr: SocketAddr, id: &str) -> Option<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(&Connect::v311(id).encode()).await.ok()?;
    let mut buf = [0u8; 4];
    match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await.unwrap() {
        Ok(n) if n > 0 => Some(buf[0]),
        _ => None,
    }
}

/// Whether the broker closes a silent socket within `wait`.
async fn closes_silent_socket_within(addr: SocketAddr, wait: Duration) -> bool {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 1];
    matches!(tokio::time::timeout(wait, stream.read(&mut buf)).await, Ok(Ok(0) | Err(_)))
}

#[tokio::test]
async fn every_named_listener_serves_and_is_listed() {
    let server = start(
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n\
         [listeners.tcp.internal]\nbind = \"127.0.0.2:0\"\n\
         [listeners.tcp.edge]\nbind = \"127.0.0.3:0\"\n\
         [listeners.ws.browsers]\nbind = \"127.0.0.1:0\"\n\
         [listeners.ws.apps]\nbind = \"127.0.0.1:0\"\npath = \"/apps\"\n",
    )
    .await;
    let listed: Vec<(ListenerKind, &str)> = server.listeners().iter().map(|l| (l.kind, l.name.as_str())).collect();
    use ListenerKind::{Tcp, Ws};
    assert_eq!(listed, [(Tcp, "default"), (Tcp, "edge"), (Tcp, "internal"), (Ws, "apps"), (Ws, "browsers")]);
    assert_eq!(server.local_addr(), server.listener_addr(Tcp, "default").unwrap());
    assert_eq!(server.ws_addr(), server.listener_addr(Ws, "apps"), "the first of a kind without a default");
    for listener in server.listeners() {
        assert_ne!(listener.addr.port(), 0, "{listener:?} reports its bound port");
    }
    for name in ["default", "internal", "edge"] {
        let addr = server.listener_addr(Tcp, name).unwrap();
        assert_eq!(connack(addr, &format!("via-{name}")).await, Some(0x20), "tcp:{name} serves MQTT");
    }
    assert_eq!(server.listener_addr(Tcp, "internal").unwrap().ip().to_string(), "127.0.0.2");
    server.shutdown().await;
}

#[tokio::test]
async fn max_connections_counts_per_listener() {
    let server = start(
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n\
         [listeners.tcp.small]\nbind = \"127.0.0.1:0\"\nmax_connections = 1\n",
    )
    .await;
    let small = server.listener_addr(ListenerKind::Tcp, "small").unwrap();
    let mut held = TcpStream::connect(small).await.unwrap();
    held.write_all(&Connect::v311("holder").encode()).await.unwrap();
    let mut buf = [0u8; 4];
    held.read_exact(&mut buf).await.unwrap();
    assert_eq!(buf[0], 0x20);
    assert_eq!(connack(small, "second").await, None, "the full listener closes the next socket");
    assert_eq!(connack(server.local_addr(), "elsewhere").await, Some(0x20), "another listener still accepts");
    drop(held);
    let mut accepted = false;
    for _ in 0..50 {
        if connack(small, "after").await == Some(0x20) {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted, "a closed connection frees its place");
    server.shutdown().await;
}

#[tokio::test]
async fn connect_timeout_applies_per_listener() {
    let server = start(
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\nconnect_timeout_secs = 30\n\
         [listeners.tcp.impatient]\nbind = \"127.0.0.1:0\"\nconnect_timeout_secs = 1\n",
    )
    .await;
    let impatient = server.listener_addr(ListenerKind::Tcp, "impatient").unwrap();
    let (fast, slow) = tokio::join!(
        closes_silent_socket_within(impatient, Duration::from_secs(4)),
        closes_silent_socket_within(server.local_addr(), Duration::from_secs(3)),
    );
    assert!(fast, "the 1 s listener closes a socket that sends no CONNECT");
    assert!(!slow, "the 30 s listener still waits");
    server.shutdown().await;
}

#[tokio::test]
async fn a_switched_off_default_tcp_listener_does_not_bind() {
    let server = start("[listeners.tcp]\nenable = false\n[listeners.tcp.only]\nbind = \"127.0.0.1:0\"\n").await;
    assert_eq!(server.listeners().len(), 1);
    assert_eq!(server.local_addr(), server.listener_addr(ListenerKind::Tcp, "only").unwrap());
    assert_eq!(connack(server.local_addr(), "only").await, Some(0x20));
    server.shutdown().await;
}
