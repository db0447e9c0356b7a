//! Keep alive and expiry over real TCP with tokio's paused clock: the
//! runtime jumps to the next timer when every task waits, so these tests
//! wait for seconds of broker time in microseconds, and never flake on load.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use broker::seam::Runtime;
use broker::{Config, Server};
use bytes::{Bytes, BytesMut};
use mqtt_codec::{
    Connect, ConnectProperties, Decoder, Packet, ProtocolVersion, QoS, ReasonCode, Subscribe, SubscribeProperties,
    SubscriptionOptions, Will, encode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

struct Client {
    stream: TcpStream,
    decoder: Decoder,
    buf: BytesMut,
}

impl Client {
    async fn connect(server: &Server, connect: Connect) -> (Self, Packet) {
        let stream = TcpStream::connect(server.local_addr()).await.unwrap();
        let mut client =
            Self { stream, decoder: Decoder::with_version(ProtocolVersion::V5, 1 << 20), buf: BytesMut::new() };
        client.send(Packet::Connect(Box::new(connect))).await;
        let connack = client.recv().await.unwrap();
        (client, connack)
    }

    async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        encode(&packet, ProtocolVersion::V5, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next packet, or None when the broker closed the connection.
    async fn recv(&mut self) -> Option<Packet> {
        loop {
            if let Some(packet) = self.decoder.decode(&mut self.buf).unwrap() {
                return Some(packet);
            }
            if self.stream.read_buf(&mut self.buf).await.unwrap_or(0) == 0 {
                return None;
            }
        }
    }
}

fn connect(id: &str, keep_alive: u16, expiry: Option<u32>) -> Connect {
    Connect {
        protocol: ProtocolVersion::V5,
        clean_start: expiry.is_none(),
        keep_alive,
        client_id: id.into(),
        will: None,
        username: None,
        password: None,
        properties: ConnectProperties { session_expiry_interval: expiry, ..Default::default() },
    }
}

async fn server() -> Server {
    let mut config = Config::default();
    config.listeners.tcp.bind = "127.0.0.1:0".parse().unwrap();
    Server::start(config, Runtime::tokio()).await.unwrap()
}

fn session_present(packet: &Packet) -> bool {
    match packet {
        Packet::ConnAck(ack) => ack.session_present,
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn silent_client_is_disconnected_after_one_and_a_half_keep_alives_and_its_will_published() {
    let server = server().await;
    let (mut watcher, _) = Client::connect(&server, connect("watcher", 0, None)).await;
    let subscribe = Subscribe {
        packet_id: std::num::NonZeroU16::MIN,
        filters: vec![("will/#".into(), SubscriptionOptions { qos: QoS::AtLeastOnce, ..Default::default() })],
        properties: SubscribeProperties::default(),
    };
    watcher.send(Packet::Subscribe(subscribe)).await;
    assert!(matches!(watcher.recv().await, Some(Packet::SubAck(_))));

    let mut silent = connect("silent", 10, None);
    silent.will = Some(Will {
        topic: "will/silent".into(),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: Default::default(),
    });
    let (mut client, _) = Client::connect(&server, silent).await;
    let started = tokio::time::Instant::now();
    match client.recv().await {
        Some(Packet::Disconnect(d)) => assert_eq!(d.reason_code, ReasonCode::KEEP_ALIVE_TIMEOUT),
        other => panic!("expected DISCONNECT 0x8D, got {other:?}"),
    }
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(15), "not before 1.5 x 10 s: {waited:?}");
    assert!(waited < Duration::from_secs(16), "soon after 1.5 x 10 s: {waited:?}");
    assert!(client.recv().await.is_none(), "the connection is closed");
    match watcher.recv().await {
        Some(Packet::Publish(p)) => assert_eq!((p.topic.as_ref(), &p.payload[..]), ("will/silent", &b"gone"[..])),
        other => panic!("expected the will, got {other:?}"),
    }
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn client_that_keeps_pinging_stays_connected() {
    let server = server().await;
    let (mut client, _) = Client::connect(&server, connect("pinger", 10, None)).await;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(9)).await;
        client.send(Packet::PingReq).await;
        assert_eq!(client.recv().await, Some(Packet::PingResp));
    }
    server.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn session_outlives_its_connection_for_its_expiry_interval_only() {
    let server = server().await;
    let (client, _) = Client::connect(&server, connect("s", 0, Some(60))).await;
    drop(client);
    tokio::time::sleep(Duration::from_secs(59)).await;
    let (client, connack) = Client::connect(&server, connect("s", 0, Some(60))).await;
    assert!(session_present(&connack), "kept for 60 s");
    drop(client);
    tokio::time::sleep(Duration::from_secs(61)).await;
    let (_, connack) = Client::connect(&server, connect("s", 0, Some(60))).await;
    assert!(!session_present(&connack), "gone after 60 s");
    server.shutdown().await;
}
