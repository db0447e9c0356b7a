//! MQTT 5 enhanced authentication with SCRAM-SHA-256, end to end: the client
//! side is computed here from RFC 5802, the broker's from the users file.
#![allow(clippy::unwrap_used)]

mod auth_common;

use std::net::SocketAddr;
use std::path::Path;

use auth_common::{TestDir, WAIT, start, temp_dir};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use broker::auth::password::{NewHash, hash_new};
use bytes::{Bytes, BytesMut};
use hmac::{Hmac, Mac};
use mqtt_codec::{Auth, AuthProperties, Decoder, Disconnect, Packet, ProtocolVersion, ReasonCode, encode};
use rand::SeedableRng;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const METHOD: &str = "SCRAM-SHA-256";

/// The users file is in the directory, which must live as long as the configuration is used.
fn scram_config(name: &str) -> (TestDir, String) {
    let dir = temp_dir(name);
    let file = dir.join("users");
    let entry = hash_new(NewHash::ScramSha256, b"pencil", &mut rand::rngs::StdRng::seed_from_u64(9)).unwrap();
    let plain: String = Sha256::digest(b"spencil").iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&file, format!("user:{entry}\nplain:$sha256$s${plain}\n")).unwrap();
    let toml = config_for(&file);
    (dir, toml)
}

fn config_for(file: &Path) -> String {
    format!(
        "[auth]\nallow_anonymous = false\nchain = [\"users\"]\n[auth.users]\nfile = {:?}\n[auth.scram]\nenabled = true\n",
        file.display().to_string()
    )
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().into()
}

struct Client {
    stream: TcpStream,
    decoder: Decoder,
    buf: BytesMut,
}

impl Client {
    async fn connect(addr: SocketAddr, method: Option<&str>, data: Option<&str>, user: Option<&str>) -> Self {
        let mut connect = auth_common::connect_packet(ProtocolVersion::V5, "scram-client", user, None);
        connect.properties.authentication_method = method.map(Into::into);
        connect.properties.authentication_data = data.map(|d| Bytes::copy_from_slice(d.as_bytes()));
        let mut client = Self {
            stream: TcpStream::connect(addr).await.unwrap(),
            decoder: Decoder::with_version(ProtocolVersion::V5, 1 << 20),
            buf: BytesMut::new(),
        };
        client.send(Packet::Connect(Box::new(connect))).await;
        client
    }

    async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        encode(&packet, ProtocolVersion::V5, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    async fn send_auth(&mut self, reason: ReasonCode, data: &str) {
        let properties = AuthProperties {
            authentication_method: Some(METHOD.into()),
            authentication_data: Some(Bytes::copy_from_slice(data.as_bytes())),
            ..AuthProperties::default()
        };
        self.send(Packet::Auth(Auth { reason_code: reason, properties })).await;
    }

    /// The next packet, or None once the broker closed the connection.
    async fn recv(&mut self) -> Option<Packet> {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Some(packet) = self.decoder.decode(&mut self.buf).unwrap() {
                    return Some(packet);
                }
                if self.stream.read_buf(&mut self.buf).await.unwrap_or(0) == 0 {
                    return None;
                }
            }
        })
        .await
        .unwrap()
    }

    /// Runs the client side of SCRAM up to the CONNACK; returns it and the server signature expected in it.
    async fn scram(addr: SocketAddr, user: &str, password: &str) -> (Self, Packet, String) {
        let bare = format!("n={user},r=fyko+d2lbbFgONRv9qkxdawL");
        let mut client = Self::connect(addr, Some(METHOD), Some(&format!("n,,{bare}")), None).await;
        let signature = client.prove(&bare, password).await;
        let connack = client.recv().await.expect("a CONNACK");
        (client, connack, signature)
    }

    /// Answers the server-first message in the next AUTH with the proof for
    /// `password`; returns the server signature the server must send back.
    async fn prove(&mut self, bare: &str, password: &str) -> String {
        let Some(Packet::Auth(challenge)) = self.recv().await else { panic!("expected AUTH 0x18") };
        assert_eq!(challenge.reason_code, ReasonCode::CONTINUE_AUTHENTICATION);
        assert_eq!(challenge.properties.authentication_method.as_deref(), Some(METHOD), "[MQTT-4.12.0-5]");
        let server_first = String::from_utf8(challenge.properties.authentication_data.unwrap().to_vec()).unwrap();
        let mut fields = server_first.split(',');
        let nonce = fields.next().unwrap().strip_prefix("r=").unwrap().to_owned();
        let salt = B64.decode(fields.next().unwrap().strip_prefix("s=").unwrap()).unwrap();
        let iterations: u32 = fields.next().unwrap().strip_prefix("i=").unwrap().parse().unwrap();
        let client_nonce = bare.split(",r=").nth(1).unwrap();
        assert!(nonce.starts_with(client_nonce) && nonce.len() > client_nonce.len() + 8, "{nonce}");

        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut salted);
        let client_key = hmac(&salted, b"Client Key");
        let stored_key: [u8; 32] = Sha256::digest(client_key).into();
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{bare},{server_first},{without_proof}");
        let signature = hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key.iter().zip(signature).map(|(k, s)| k ^ s).collect();
        self.send_auth(ReasonCode::CONTINUE_AUTHENTICATION, &format!("{without_proof},p={}", B64.encode(proof))).await;
        format!("v={}", B64.encode(hmac(&hmac(&salted, b"Server Key"), auth_message.as_bytes())))
    }
}

#[tokio::test]
async fn a_scram_exchange_connects_proves_the_server_and_re_authenticates() {
    let (_dir, toml) = scram_config("ok");
    let server = start(&toml).await;
    let (mut client, connack, server_signature) = Client::scram(server.local_addr(), "user", "pencil").await;
    let Packet::ConnAck(ack) = connack else { panic!("expected CONNACK, got {connack:?}") };
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert_eq!(ack.properties.authentication_method.as_deref(), Some(METHOD), "[MQTT-4.12.0-5]");
    assert_eq!(ack.properties.authentication_data.as_deref(), Some(server_signature.as_bytes()));
    client.send(Packet::PingReq).await;
    assert_eq!(client.recv().await, Some(Packet::PingResp));

    // Re-authentication: AUTH 0x19 with a new client-first message, the same exchange, AUTH 0x00 at the end.
    let bare = "n=user,r=second-nonce";
    client.send_auth(ReasonCode::RE_AUTHENTICATE, &format!("n,,{bare}")).await;
    let signature = client.prove(bare, "pencil").await;
    let Some(Packet::Auth(done)) = client.recv().await else { panic!("expected AUTH 0x00") };
    assert_eq!(done.reason_code, ReasonCode::SUCCESS);
    assert_eq!(done.properties.authentication_method.as_deref(), Some(METHOD));
    assert_eq!(done.properties.authentication_data.as_deref(), Some(signature.as_bytes()));
    client.send(Packet::PingReq).await;
    assert_eq!(client.recv().await, Some(Packet::PingResp), "the connection goes on");

    // A failed re-authentication ends the connection ([MQTT-4.12.1-2]).
    let bare = "n=user,r=third-nonce";
    client.send_auth(ReasonCode::RE_AUTHENTICATE, &format!("n,,{bare}")).await;
    client.prove(bare, "not pencil").await;
    let Some(Packet::Disconnect(Disconnect { reason_code, .. })) = client.recv().await else {
        panic!("expected DISCONNECT")
    };
    assert_eq!(reason_code, ReasonCode::NOT_AUTHORIZED);
    assert_eq!(client.recv().await, None);
    server.shutdown().await;
}

#[tokio::test]
async fn re_authentication_must_prove_the_same_user() {
    let (_dir, toml) = scram_config("reauth-user");
    let server = start(&toml).await;
    let (mut client, connack, _) = Client::scram(server.local_addr(), "user", "pencil").await;
    assert!(matches!(connack, Packet::ConnAck(ref ack) if ack.reason_code == ReasonCode::SUCCESS), "{connack:?}");
    client.send_auth(ReasonCode::RE_AUTHENTICATE, "n,,n=plain,r=abc").await;
    let Some(Packet::Disconnect(Disconnect { reason_code, .. })) = client.recv().await else {
        panic!("expected DISCONNECT")
    };
    assert_eq!(reason_code, ReasonCode::NOT_AUTHORIZED);
    server.shutdown().await;
}

#[tokio::test]
async fn a_wrong_password_or_a_user_without_scram_is_not_authorized() {
    let (_dir, toml) = scram_config("wrong");
    let server = start(&toml).await;
    for (user, password) in [("user", "not pencil"), ("plain", "pencil"), ("nobody", "pencil")] {
        let (mut client, connack, _) = Client::scram(server.local_addr(), user, password).await;
        let Packet::ConnAck(ack) = connack else { panic!("expected CONNACK, got {connack:?}") };
        assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED, "{user}");
        assert_eq!(client.recv().await, None, "closed after the refusal");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn an_unknown_method_is_refused_with_bad_authentication_method() {
    let (_dir, toml) = scram_config("unknown");
    let server = start(&toml).await;
    let mut client = Client::connect(server.local_addr(), Some("KERBEROS"), None, None).await;
    let Some(Packet::ConnAck(ack)) = client.recv().await else { panic!("expected CONNACK") };
    assert_eq!(ack.reason_code, ReasonCode::BAD_AUTHENTICATION_METHOD);
    assert_eq!(client.recv().await, None);
    server.shutdown().await;
}

#[tokio::test]
async fn the_connect_user_name_must_be_the_scram_user() {
    let (_dir, toml) = scram_config("username");
    let server = start(&toml).await;
    let mut client = Client::connect(server.local_addr(), Some(METHOD), Some("n,,n=user,r=abc"), Some("other")).await;
    let Some(Packet::ConnAck(ack)) = client.recv().await else { panic!("expected CONNACK") };
    assert_eq!(ack.reason_code, ReasonCode::NOT_AUTHORIZED);
    server.shutdown().await;
}

#[tokio::test]
async fn anything_but_auth_during_the_exchange_is_a_protocol_error() {
    let (_dir, toml) = scram_config("protocol");
    let server = start(&toml).await;
    let mut client = Client::connect(server.local_addr(), Some(METHOD), Some("n,,n=user,r=abc"), None).await;
    assert!(matches!(client.recv().await, Some(Packet::Auth(_))));
    client.send(Packet::PingReq).await;
    let Some(Packet::ConnAck(ack)) = client.recv().await else { panic!("expected CONNACK") };
    assert_eq!(ack.reason_code, ReasonCode::PROTOCOL_ERROR, "[MQTT-3.1.2-30]");
    server.shutdown().await;
}

#[tokio::test]
async fn auth_after_a_connect_without_a_method_is_a_protocol_error() {
    let server = start("").await;
    let mut client = Client::connect(server.local_addr(), None, None, None).await;
    let Some(Packet::ConnAck(ack)) = client.recv().await else { panic!("expected CONNACK") };
    assert_eq!(ack.reason_code, ReasonCode::SUCCESS);
    assert_eq!(ack.properties.authentication_method, None, "[MQTT-4.12.0-6]");
    client.send_auth(ReasonCode::RE_AUTHENTICATE, "n,,n=user,r=abc").await;
    let Some(Packet::Disconnect(Disconnect { reason_code, .. })) = client.recv().await else {
        panic!("expected DISCONNECT")
    };
    assert_eq!(reason_code, ReasonCode::PROTOCOL_ERROR, "[MQTT-4.12.0-7]");
    server.shutdown().await;
}
