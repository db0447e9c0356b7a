//! The authentication hook: a backend plugged into `Server::start_with`
//! decides CONNECT, and anonymous access follows the configuration.
#![allow(clippy::unwrap_used)]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use broker::auth::{Authenticator, Credentials};
use broker::seam::Runtime;
use broker::{Config, Server};
use bytes::{Bytes, BytesMut};
use mqtt_codec::{Connect, ConnectProperties, Decoder, Packet, ProtocolVersion, ReasonCode, encode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Accepts alice/secret only.
struct OneUser;

impl Authenticator for OneUser {
    fn authenticate<'a>(
        &'a self,
        credentials: Credentials<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<(), ReasonCode>> + Send + 'a>> {
        let c = credentials.connect;
        let ok = c.username.as_deref() == Some("alice") && c.password.as_deref() == Some(&b"secret"[..]);
        Box::pin(std::future::ready(if ok { Ok(()) } else { Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD) }))
    }
}

fn config() -> Config {
    let mut config = Config::default();
    config.listeners.tcp.bind = "127.0.0.1:0".parse().unwrap();
    config
}

/// Connects with raw bytes and returns the CONNACK's reason, or None if the
/// broker closed without one.
async fn connack(
    server: &Server,
    version: ProtocolVersion,
    user: Option<&str>,
    password: Option<&str>,
) -> Option<ReasonCode> {
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    let connect = Connect {
        protocol: version,
        clean_start: true,
        keep_alive: 30,
        client_id: "c".into(),
        will: None,
        username: user.map(Into::into),
        password: password.map(|p| Bytes::copy_from_slice(p.as_bytes())),
        properties: ConnectProperties::default(),
    };
    let mut out = BytesMut::new();
    encode(&Packet::Connect(Box::new(connect)), version, &mut out).unwrap();
    stream.write_all(&out).await.unwrap();
    let mut decoder = Decoder::with_version(version, 1 << 20);
    let mut buf = BytesMut::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(packet) = decoder.decode(&mut buf).unwrap() {
                let Packet::ConnAck(ack) = packet else { panic!("expected CONNACK, got {packet:?}") };
                return Some(ack.reason_code);
            }
            if stream.read_buf(&mut buf).await.unwrap() == 0 {
                return None;
            }
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn backend_accepts_good_credentials_and_refuses_bad_ones() {
    let server = Server::start_with(config(), Runtime::tokio(), Arc::new(OneUser)).await.unwrap();
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        assert_eq!(connack(&server, version, Some("alice"), Some("secret")).await, Some(ReasonCode::SUCCESS));
        // 3.1.1 return code 4 decodes back to 0x86.
        assert_eq!(
            connack(&server, version, Some("alice"), Some("wrong")).await,
            Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
        );
    }
    server.shutdown().await;
}

#[tokio::test]
async fn anonymous_clients_are_refused_when_anonymous_access_is_off() {
    let mut config = config();
    config.auth.allow_anonymous = Some(false);
    let server = Server::start(config, Runtime::tokio()).await.unwrap();
    assert_eq!(connack(&server, ProtocolVersion::V5, None, None).await, Some(ReasonCode::NOT_AUTHORIZED));
    assert_eq!(connack(&server, ProtocolVersion::V3_1_1, None, None).await, Some(ReasonCode::NOT_AUTHORIZED));
    server.shutdown().await;
}
