//! MQTT over WebSocket: the upgrade (path, subprotocol), binary frames with
//! several packets in one frame and one packet across frames, and the
//! refusals (wrong path, text frames).
#![allow(clippy::unwrap_used)]

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
