//! MQTT over WebSocket: the upgrade (path, subprotocol), binary frames with
//! several packets in one frame and one packet across frames, the refusals
//! (wrong path, text frames), WebSocket over TLS, and the client address
//! forwarded by a trusted proxy (X-Forwarded-For).
#![allow(clippy::unwrap_used)]

mod pki;
mod tcp_common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tcp_common::{Connect, Level, PublishSpec, subscribe_packet};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn start() -> broker::Server {
    let mut config = broker::Config::default();
    config.listeners.tcp.bind = "127.0.0.1:0".parse().unwrap();
    config.listeners.ws = broker::Config::parse("[listeners.ws]\nbind = \"127.0.0.1:0\"\n").unwrap().listeners.ws;
    broker::Server::start(config, broker::seam::Runtime::tokio()).await.unwrap()
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(server: &broker::Server, path: &str, protocol: Option<&str>) -> Result<Ws, String> {
    let url = format!("ws://{}{path}", server.ws_addr().unwrap());
    let mut request = url.into_client_request().unwrap();
    if let Some(p) = protocol {
        request.headers_mut().insert("sec-websocket-protocol", p.parse().unwrap());
    }
    let (ws, response) = tokio_tungstenite::connect_async(request).await.map_err(|e| e.to_string())?;
    if let Some(p) = protocol {
        let chosen = response.headers().get("sec-websocket-protocol").map(|v| v.to_str().unwrap().to_string());
        assert_eq!(chosen.as_deref(), Some(p.split(',').next().unwrap().trim()));
    }
    Ok(ws)
}

/// The bytes of every binary frame received within a short wait, concatenated.
async fn received(ws: &mut Ws) -> Vec<u8> {
    let mut bytes = Vec::new();
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_millis(300), ws.next()).await {
        if let Message::Binary(data) = message {
            bytes.extend_from_slice(&data);
        }
    }
    bytes
}

#[tokio::test]
async fn mqtt_in_binary_frames_with_packets_split_and_joined_across_frames() {
    let server = start().await;
    let mut ws = open(&server, "/mqtt", Some("mqtt")).await.unwrap();
    // CONNECT and SUBSCRIBE in one frame.
    let mut first = Connect::v5("ws-client").encode();
    first.extend(subscribe_packet(Level::V5, 1, &[("ws/t", 1)], &[]));
    ws.send(Message::Binary(first.into())).await.unwrap();
    let got = received(&mut ws).await;
    assert_eq!(got[0], 0x20, "CONNACK first: {got:?}");
    assert!(got.iter().skip(2).any(|b| *b == 0x90), "then a SUBACK: {got:?}");
    // One PUBLISH across two frames.
    let publish = PublishSpec::new("ws/t", b"split-in-two").encode(Level::V5);
    let (a, b) = publish.split_at(publish.len() / 2);
    ws.send(Message::Binary(a.to_vec().into())).await.unwrap();
    ws.send(Message::Binary(b.to_vec().into())).await.unwrap();
    let got = received(&mut ws).await;
    assert_eq!(got.first(), Some(&0x30), "the PUBLISH comes back: {got:?}");
    assert!(got.windows(12).any(|w| w == b"split-in-two"), "{got:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_frame_larger_than_any_packet_the_broker_takes_closes_the_connection() {
    use tokio::io::AsyncWriteExt;
    let server = start().await;
    let mut ws = open(&server, "/mqtt", Some("mqtt")).await.unwrap();
    ws.send(Message::Binary(Connect::v5("ws-huge").keep_alive(60).encode().into())).await.unwrap();
    assert_eq!(received(&mut ws).await.first(), Some(&0x20), "CONNACK");
    // The header of an 8 MiB binary frame (masked, as from a client) and its first KiB: the broker
    // (maximum packet size 1 MiB) must not wait to buffer the rest.
    let mut frame = vec![0x82, 0xFF];
    frame.extend_from_slice(&(8u64 << 20).to_be_bytes());
    frame.extend_from_slice(&[1, 2, 3, 4]);
    frame.extend_from_slice(&[0u8; 1024]);
    let tokio_tungstenite::MaybeTlsStream::Plain(tcp) = ws.get_mut() else { panic!("plain TCP") };
    tcp.write_all(&frame).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the broker waits for the rest of an oversized frame");
    server.shutdown().await;
}

#[tokio::test]
async fn the_older_subprotocol_names_are_accepted_too() {
    let server = start().await;
    for protocol in ["mqttv3.1", "mqttv3.1.1"] {
        let mut ws = open(&server, "/mqtt", Some(protocol)).await.unwrap();
        ws.send(Message::Binary(Connect::v311("old-names").encode().into())).await.unwrap();
        assert_eq!(received(&mut ws).await.first(), Some(&0x20));
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_wrong_path_is_refused_and_a_text_frame_closes_the_connection() {
    let server = start().await;
    let refused = open(&server, "/elsewhere", Some("mqtt")).await.map(|_| ()).unwrap_err();
    assert!(refused.contains("404"), "{refused}");

    let mut ws = open(&server, "/mqtt", Some("mqtt")).await.unwrap();
    ws.send(Message::Binary(Connect::v5("texter").encode().into())).await.unwrap();
    assert_eq!(received(&mut ws).await.first(), Some(&0x20));
    ws.send(Message::Text("not MQTT".into())).await.unwrap();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the broker closes the connection after a text frame");
    server.shutdown().await;
}

#[tokio::test]
async fn wss_upgrades_after_the_tls_handshake_and_serves_mqtt() {
    let ca = pki::Ca::new("ca");
    let dir = pki::dir("wss");
    pki::write_server_files(&dir, &ca.server("broker"), &ca);
    let text = format!(
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n[listeners.wss]\nbind = \"127.0.0.1:0\"\n{}",
        pki::listener_keys(&dir, false)
    );
    let server =
        broker::Server::start(broker::Config::parse(&text).unwrap(), broker::seam::Runtime::tokio()).await.unwrap();
    let addr = server.wss_addr().unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(pki::client_config(&ca, None, &[])));
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    let mut request = format!("wss://localhost:{}/mqtt", addr.port()).into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", "mqtt".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(request, tls).await.unwrap();
    let mut first = Connect::v5("wss-client").encode();
    first.extend(subscribe_packet(Level::V5, 1, &[("wss/t", 0)], &[]));
    first.extend(PublishSpec::new("wss/t", b"through-tls-and-ws").encode(Level::V5));
    ws.send(Message::Binary(first.into())).await.unwrap();
    let mut got = Vec::new();
    while let Ok(Some(Ok(message))) = tokio::time::timeout(Duration::from_secs(2), ws.next()).await {
        if let Message::Binary(data) = message {
            got.extend_from_slice(&data);
        }
        if got.windows(18).any(|w| w == b"through-tls-and-ws") {
            break;
        }
    }
    assert_eq!(got.first(), Some(&0x20), "CONNACK first: {got:?}");
    assert!(got.windows(18).any(|w| w == b"through-tls-and-ws"), "the message comes back: {got:?}");
    server.shutdown().await;
}

/// Records the address authentication saw for each client.
#[derive(Default)]
struct Peers(parking_lot::Mutex<Vec<(String, std::net::SocketAddr)>>);

impl broker::auth::Authenticator for Peers {
    fn authenticate<'a>(
        &'a self,
        credentials: broker::auth::Credentials<'a>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), mqtt_codec::ReasonCode>> + Send + 'a>> {
        self.0.lock().push((credentials.connect.client_id.to_string(), credentials.peer));
        Box::pin(std::future::ready(Ok(())))
    }
}

#[tokio::test]
async fn x_forwarded_for_is_believed_from_trusted_proxies_only() {
    let text = "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n\
        [listeners.ws.behind-proxy]\nbind = \"127.0.0.1:0\"\nproxy_address_header = \"x-forwarded-for\"\n\
        trusted_proxies = [\"127.0.0.0/8\"]\n\
        [listeners.ws.strict]\nbind = \"127.0.0.1:0\"\nproxy_address_header = \"x-forwarded-for\"\n\
        trusted_proxies = [\"10.0.0.0/8\"]\n";
    let peers = std::sync::Arc::new(Peers::default());
    let server =
        broker::Server::start_with(broker::Config::parse(text).unwrap(), broker::seam::Runtime::tokio(), peers.clone())
            .await
            .unwrap();
    use broker::config::ListenerKind::Ws;
    for (listener, id) in [("behind-proxy", "proxied"), ("strict", "unproxied")] {
        let addr = server.listener_addr(Ws, listener).unwrap();
        let mut request = format!("ws://{addr}/mqtt").into_client_request().unwrap();
        request.headers_mut().insert("x-forwarded-for", "6.6.6.6, 203.0.113.9".parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        ws.send(Message::Binary(Connect::v5(id).encode().into())).await.unwrap();
        assert_eq!(received(&mut ws).await.first(), Some(&0x20));
    }
    let seen = peers.0.lock().clone();
    let proxied = seen.iter().find(|(id, _)| id == "proxied").unwrap().1;
    assert_eq!(proxied, "203.0.113.9:0".parse().unwrap(), "the rightmost untrusted entry is the client");
    let unproxied = seen.iter().find(|(id, _)| id == "unproxied").unwrap().1;
    assert_eq!(unproxied.ip().to_string(), "127.0.0.1", "an untrusted peer's header is ignored");
    assert_ne!(unproxied.port(), 0);
    server.shutdown().await;
}

/// Behind a trusted proxy every client arrives from the proxy's address: the
/// per-address connection rate counts the forwarded address instead, so the
/// proxy's clients do not share one allowance and one client cannot use up
/// everyone's.
#[tokio::test]
async fn behind_a_trusted_proxy_the_per_address_rate_counts_the_forwarded_address() {
    let text = "[listeners.ws]\nbind = \"127.0.0.1:0\"\nproxy_address_header = \"x-forwarded-for\"\n\
        trusted_proxies = [\"127.0.0.0/8\"]\n\
        [limits]\nmax_conn_rate_per_ip = 1\nmax_conn_burst_per_ip = 1\n";
    let server =
        broker::Server::start(broker::Config::parse(text).unwrap(), broker::seam::Runtime::tokio()).await.unwrap();
    let addr = server.listener_addr(broker::config::ListenerKind::Ws, "default").unwrap();
    let connack = |client: &'static str, id: &'static str| async move {
        let mut request = format!("ws://{addr}/mqtt").into_client_request().unwrap();
        request.headers_mut().insert("x-forwarded-for", client.parse().unwrap());
        let Ok((mut ws, _)) = tokio_tungstenite::connect_async(request).await else { return false };
        if ws.send(Message::Binary(Connect::v5(id).encode().into())).await.is_err() {
            return false;
        }
        received(&mut ws).await.first() == Some(&0x20)
    };
    // Three clients through one proxy address, each its own allowance.
    assert!(connack("203.0.113.1", "a").await);
    assert!(connack("203.0.113.2", "b").await);
    assert!(connack("203.0.113.3", "c").await);
    // One client again at once: over its own rate.
    assert!(!connack("203.0.113.1", "a2").await, "the forwarded address is limited");
    server.shutdown().await;
}
