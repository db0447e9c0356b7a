//! MQTT over QUIC with a quinn client: one bidirectional stream per MQTT
//! connection (ALPN "mqtt"), subscribe and publish at QoS 0, 1 and 2 on it,
//! a client certificate's names with mutual TLS, and the end of the MQTT
//! connection closing the QUIC connection.
#![allow(clippy::unwrap_used)]

mod mqtt_stream;
mod pki;
mod tcp_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mqtt_codec::{Packet, QoS};
use quinn::crypto::rustls::QuicClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use mqtt_stream::Client;
use pki::{Ca, Leaf};
use tcp_common::{Connect, Level, PublishSpec, subscribe_packet};

/// The client's side of the stream: quinn's two halves as one byte stream.
struct Bi {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
}

impl AsyncRead for Bi {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        AsyncRead::poll_read(std::pin::Pin::new(&mut self.recv), cx, buf)
    }
}

impl AsyncWrite for Bi {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        AsyncWrite::poll_write(std::pin::Pin::new(&mut self.send), cx, data)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        AsyncWrite::poll_flush(std::pin::Pin::new(&mut self.send), cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        AsyncWrite::poll_shutdown(std::pin::Pin::new(&mut self.send), cx)
    }
}

async fn start(name: &str, ca: &Ca, extra: &str) -> broker::Server {
    let dir = pki::dir(name);
    pki::write_server_files(&dir, &ca.server("broker"), ca);
    let text = format!(
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n[listeners.quic]\nbind = \"127.0.0.1:0\"\n{}{extra}",
        pki::listener_keys(&dir, !extra.is_empty())
    );
    broker::Server::start(broker::Config::parse(&text).unwrap(), broker::seam::Runtime::tokio()).await.unwrap()
}

/// Opens a QUIC connection and its one stream.
async fn open(addr: SocketAddr, ca: &Ca, client: Option<&Leaf>) -> Result<(quinn::Connection, Client<Bi>), String> {
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let tls = pki::client_config(ca, client, &[b"mqtt"]);
    let crypto = QuicClientConfig::try_from(tls).unwrap();
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let connection = endpoint.connect(addr, "localhost").unwrap().await.map_err(|e| e.to_string())?;
    let (send, recv) = connection.open_bi().await.map_err(|e| e.to_string())?;
    Ok((connection, Client::new(Bi { send, recv })))
}

#[tokio::test]
async fn subscribe_and_publish_at_every_qos_over_one_quic_stream() {
    let ca = Ca::new("ca");
    let server = start("roundtrip", &ca, "").await;
    let addr = server.quic_addr().unwrap();
    let (connection, mut client) = open(addr, &ca, None).await.unwrap();
    assert_eq!(
        connection.handshake_data().unwrap().downcast::<quinn::crypto::rustls::HandshakeData>().unwrap().protocol,
        Some(b"mqtt".to_vec())
    );
    client.send(&Connect::v5("quic-client").encode()).await;
    assert_eq!(client.connack().await, Some(0));
    client.send(&subscribe_packet(Level::V5, 1, &[("quic/#", 2)], &[])).await;
    assert!(matches!(client.next().await, Some(Packet::SubAck(_))));

    // QoS 0: the message comes back.
    client.send(&PublishSpec::new("quic/0", b"zero").encode(Level::V5)).await;
    let Some(Packet::Publish(p)) = client.next().await else { panic!("the QoS 0 message") };
    assert_eq!((&*p.topic, &p.payload[..], p.qos), ("quic/0", &b"zero"[..], QoS::AtMostOnce));

    // QoS 1: PUBACK for ours and the delivery, in either order.
    client.send(&PublishSpec::new("quic/1", b"one").qos(1, 10).encode(Level::V5)).await;
    let mut acked = false;
    let mut delivered = None;
    while !(acked && delivered.is_some()) {
        match client.next().await {
            Some(Packet::PubAck(ack)) => acked |= ack.packet_id.get() == 10,
            Some(Packet::Publish(p)) => delivered = Some(p),
            other => panic!("unexpected {other:?}"),
        }
    }
    let p = delivered.unwrap();
    assert_eq!((&*p.topic, &p.payload[..], p.qos), ("quic/1", &b"one"[..], QoS::AtLeastOnce));
    let id = p.packet_id.unwrap().get().to_be_bytes();
    client.send(&[0x40, 0x02, id[0], id[1]]).await;

    // QoS 2: PUBREC, our PUBREL, PUBCOMP; the delivery arrives at QoS 2.
    client.send(&PublishSpec::new("quic/2", b"two").qos(2, 20).encode(Level::V5)).await;
    let mut completed = false;
    let mut delivered = None;
    while !(completed && delivered.is_some()) {
        match client.next().await {
            Some(Packet::PubRec(rec)) if rec.packet_id.get() == 20 => client.send(&[0x62, 0x02, 0x00, 20]).await,
            Some(Packet::PubComp(comp)) => completed |= comp.packet_id.get() == 20,
            Some(Packet::Publish(p)) => delivered = Some(p),
            Some(Packet::PubRel(rel)) => {
                let id = rel.packet_id.get().to_be_bytes();
                client.send(&[0x70, 0x02, id[0], id[1]]).await;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let p = delivered.unwrap();
    assert_eq!((&*p.topic, &p.payload[..], p.qos), ("quic/2", &b"two"[..], QoS::ExactlyOnce));
    let id = p.packet_id.unwrap().get().to_be_bytes();
    client.send(&[0x50, 0x02, id[0], id[1]]).await;
    assert!(matches!(client.next().await, Some(Packet::PubRel(_))));
    client.send(&[0x70, 0x02, id[0], id[1]]).await;

    // DISCONNECT ends the MQTT connection, and with it the QUIC connection.
    client.send(&[0xE0, 0x00]).await;
    let closed = tokio::time::timeout(Duration::from_secs(5), connection.closed()).await;
    assert!(closed.is_ok(), "the broker closes the QUIC connection after the MQTT one");
    assert_eq!(server.connection_count(), 0);
    server.shutdown().await;
}

/// 300 handshakes at once (past 256 in progress the broker asks for address
/// validation). Timing-proof on a loaded machine: one client endpoint for
/// all, and every deadline on both sides far above what the burst needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hundred_simultaneous_quic_handshakes_all_get_their_connack() {
    const CLIENTS: usize = 300;
    let ca = Arc::new(Ca::new("ca"));
    let dir = pki::dir("burst");
    pki::write_server_files(&dir, &ca.server("broker"), &ca);
    let text = format!(
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n[listeners.quic]\nbind = \"127.0.0.1:0\"\nconnect_timeout_secs = 120\n{}",
        pki::listener_keys(&dir, false)
    );
    let server =
        broker::Server::start(broker::Config::parse(&text).unwrap(), broker::seam::Runtime::tokio()).await.unwrap();
    let addr = server.quic_addr().unwrap();
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    let crypto = QuicClientConfig::try_from(pki::client_config(&ca, None, &[b"mqtt"])).unwrap();
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    let mut transport = quinn::TransportConfig::default();
    transport.max_idle_timeout(Some(Duration::from_secs(120).try_into().unwrap()));
    config.transport_config(Arc::new(transport));
    endpoint.set_default_client_config(config);
    let mut clients = tokio::task::JoinSet::new();
    for i in 0..CLIENTS {
        let endpoint = endpoint.clone();
        clients.spawn(async move {
            let connection = endpoint.connect(addr, "localhost").unwrap().await.unwrap();
            let (send, recv) = connection.open_bi().await.unwrap();
            let mut client = Client::new(Bi { send, recv });
            client.send(&Connect::v5(&format!("burst-{i}")).encode()).await;
            let code = client.connack().await;
            // Held to the end: a dropped stream ends its MQTT connection.
            (connection, client, code)
        });
    }
    let all = tokio::time::timeout(Duration::from_secs(240), clients.join_all()).await.unwrap();
    assert!(all.iter().all(|(_, _, code)| *code == Some(0)), "every client gets CONNACK 0");
    assert_eq!(server.connection_count(), CLIENTS);
    server.shutdown().await;
}

/// A UDP relay between QUIC clients and the broker that reaches the broker
/// from `source`. It records the long-header type of the broker's datagrams
/// (3: Retry) and, unless `answer`, never passes them back: its clients then
/// stand for a forger, whose replies go to an address that ignores them.
async fn relay(upstream: SocketAddr, source: &str, answer: bool) -> (SocketAddr, Arc<parking_lot::Mutex<Vec<u8>>>) {
    let front = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let back = tokio::net::UdpSocket::bind(format!("{source}:0")).await.unwrap();
    back.connect(upstream).await.unwrap();
    let addr = front.local_addr().unwrap();
    let types = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let seen = Arc::clone(&types);
    tokio::spawn(async move {
        let (mut up, mut down) = ([0u8; 2048], [0u8; 2048]);
        let mut client = None;
        loop {
            tokio::select! {
                Ok((n, from)) = front.recv_from(&mut up) => {
                    client = Some(from);
                    let _ = back.send(&up[..n]).await;
                }
                Ok(n) = back.recv(&mut down) => {
                    if n > 0 && down[0] & 0x80 != 0 {
                        seen.lock().push((down[0] >> 4) & 0x03);
                    }
                    if let (true, Some(to)) = (answer, client) {
                        let _ = front.send_to(&down[..n], to).await;
                    }
                }
            }
        }
    });
    (addr, types)
}

#[tokio::test]
async fn with_per_address_rate_limits_a_forged_source_address_is_not_charged() {
    let ca = Ca::new("ca");
    let dir = pki::dir("forged");
    pki::write_server_files(&dir, &ca.server("broker"), &ca);
    let text = format!(
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n[listeners.quic]\nbind = \"127.0.0.1:0\"\n{}\
         [limits]\nmax_conn_rate_per_ip = 1\nmax_conn_burst_per_ip = 1\n",
        pki::listener_keys(&dir, false)
    );
    let server =
        broker::Server::start(broker::Config::parse(&text).unwrap(), broker::seam::Runtime::tokio()).await.unwrap();
    let addr = server.quic_addr().unwrap();
    // Initials "from" 127.0.0.7 whose answers never reach a client: a forger's.
    let (forged, forged_types) = relay(addr, "127.0.0.7", false).await;
    let forger = tokio::spawn({
        // Its handshake never gets far enough for the CA to matter.
        let ca = Ca::new("forger");
        async move { open(forged, &ca, None).await.map(|_| ()) }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    forger.abort();
    assert!(forged_types.lock().iter().all(|t| *t == 3), "only Retry packets answer an unproven address");
    // The owner of 127.0.0.7 connects within the same second: its one token is still there.
    let (owner, owner_types) = relay(addr, "127.0.0.7", true).await;
    let (_connection, mut client) = open(owner, &ca, None).await.unwrap();
    client.send(&Connect::v5("owner-of-127.0.0.7").encode()).await;
    assert_eq!(client.connack().await, Some(0));
    assert_eq!(owner_types.lock().first(), Some(&3), "the first answer is a Retry");
    server.shutdown().await;
}

#[tokio::test]
async fn a_quic_client_gets_one_stream_and_no_datagrams() {
    let ca = Ca::new("ca");
    let server = start("streams", &ca, "").await;
    let (connection, mut client) = open(server.quic_addr().unwrap(), &ca, None).await.unwrap();
    client.send(&Connect::v5("quic-greedy").encode()).await;
    assert_eq!(client.connack().await, Some(0));
    // Datagrams the broker never reads would sit in its buffer: it offers none.
    assert_eq!(connection.max_datagram_size(), None);
    assert!(connection.send_datagram(bytes::Bytes::from_static(b"x")).is_err());
    // A second stream would be one nobody reads: the broker grants one at a time.
    let second = tokio::time::timeout(Duration::from_millis(300), connection.open_bi()).await;
    assert!(second.is_err(), "a second bidirectional stream was granted");
    assert!(tokio::time::timeout(Duration::from_millis(300), connection.open_uni()).await.is_err());
    server.shutdown().await;
}

#[tokio::test]
async fn quic_with_client_certificates_refuses_strangers_and_names_the_client() {
    let ca = Ca::new("ca");
    let server = start("mutual", &ca, "peer_cert_as_clientid = \"cn\"\n").await;
    let addr = server.quic_addr().unwrap();
    let stranger = Ca::new("other").client("intruder", "Elsewhere", &[]);
    let refused = match open(addr, &ca, Some(&stranger)).await {
        Err(_) => true,
        Ok((_c, mut client)) => {
            client.send(&Connect::v5("x").encode()).await;
            client.next().await.is_none()
        }
    };
    assert!(refused, "a certificate from another CA gets no MQTT session");

    let device = ca.client("quic-device-7", "Acme", &[]);
    let (_connection, mut client) = open(addr, &ca, Some(&device)).await.unwrap();
    client.send(&Connect::v5("").clean(true).encode()).await;
    let Some(Packet::ConnAck(ack)) = client.next().await else { panic!("CONNACK") };
    assert_eq!(ack.reason_code.0, 0);
    // The client id came from the certificate, so the broker assigned none.
    assert_eq!(ack.properties.assigned_client_identifier, None);
    server.shutdown().await;
}
