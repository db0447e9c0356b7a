//! Certificate reload without a restart: after `Server::reload` (what SIGHUP
//! and `broker ctl reload` call) or a change of the files on disk, new
//! handshakes get the new certificate while a connection made before keeps
//! working; a bad file keeps the old certificate and reports the error.
#![allow(clippy::unwrap_used)]

mod mqtt_stream;
mod pki;
mod tcp_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mqtt_codec::Packet;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio_rustls::TlsConnector;

use mqtt_stream::Client;
use pki::Ca;
use tcp_common::Connect;

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

/// Connects, completes CONNECT / CONNACK, and returns the client with the
/// certificate the server presented.
async fn connect(addr: SocketAddr, ca: &Ca, id: &str) -> (Client<Tls>, CertificateDer<'static>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = TlsConnector::from(Arc::new(pki::client_config(ca, None, &[])));
    let tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone().into_owned();
    let mut client = Client::new(tls);
    client.send(&Connect::v5(id).encode()).await;
    assert_eq!(client.connack().await, Some(0), "{id} accepted");
    (client, presented)
}

async fn still_alive(client: &mut Client<Tls>) {
    client.send(&[0xC0, 0x00]).await;
    assert!(matches!(client.next().await, Some(Packet::PingResp)), "the connection made before still answers");
}

async fn start(dir: &std::path::Path, ca: &Ca, cn: &str) -> broker::Server {
    pki::write_server_files(dir, &ca.server(cn), ca);
    let text = format!(
        "[listeners.tcp]\nbind = \"127.0.0.1:0\"\n[listeners.tls]\nbind = \"127.0.0.1:0\"\n{}",
        pki::listener_keys(dir, false)
    );
    broker::Server::start(broker::Config::parse(&text).unwrap(), broker::seam::Runtime::tokio()).await.unwrap()
}

#[tokio::test]
async fn reload_serves_the_new_certificate_to_new_handshakes_and_keeps_open_connections() {
    let ca = Ca::new("ca");
    let dir = pki::dir("reload");
    let server = start(&dir, &ca, "first").await;
    let addr = server.tls_addr().unwrap();
    let (mut before, first) = connect(addr, &ca, "before").await;

    let second = ca.server("second");
    pki::write(&dir, "server.pem", &second.pem);
    pki::write(&dir, "server.key", &second.key_pem);
    server.reload().unwrap();
    let (_after, presented) = connect(addr, &ca, "after").await;
    assert_eq!(presented, second.der, "a new handshake gets the new certificate");
    assert_ne!(presented, first);
    still_alive(&mut before).await;

    // A broken key: the reload fails, naming the listener and the file, and the second certificate stays.
    pki::write(&dir, "server.key", "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n");
    let errors = server.reload().unwrap_err();
    assert!(errors.iter().any(|e| e.contains("[listeners.tls]") && e.contains("server.key")), "{errors:?}");
    let (_third, presented) = connect(addr, &ca, "after-bad").await;
    assert_eq!(presented, second.der, "the previous certificate stays in use");
    still_alive(&mut before).await;
    server.shutdown().await;
}

#[tokio::test]
async fn changed_files_are_picked_up_without_a_signal() {
    let ca = Ca::new("ca");
    let dir = pki::dir("watch");
    let server = start(&dir, &ca, "first").await;
    let addr = server.tls_addr().unwrap();
    let (mut before, _) = connect(addr, &ca, "before").await;
    // A key that does not match the certificate is not loaded, even once both files changed.
    let other = ca.server("other");
    let next = ca.server("next");
    pki::write(&dir, "server.pem", &next.pem);
    pki::write(&dir, "server.key", &other.key_pem);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_c, presented) = connect(addr, &ca, "mismatch").await;
    assert_ne!(presented, next.der, "a certificate without its key is not served");
    pki::write(&dir, "server.key", &next.key_pem);
    let mut waited = Duration::ZERO;
    loop {
        let (_c, presented) = connect(addr, &ca, "poll").await;
        if presented == next.der {
            break;
        }
        assert!(waited < Duration::from_secs(10), "the watcher reloads changed files within a few seconds");
        tokio::time::sleep(Duration::from_millis(250)).await;
        waited += Duration::from_millis(250);
    }
    still_alive(&mut before).await;
    server.shutdown().await;
}
