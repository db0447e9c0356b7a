//! The TLS listener with certificates made by rcgen: MQTT over TLS 1.2 and
//! 1.3, mutual TLS (with rustls and with Mosquitto's command line clients)
//! refusing clients without a certificate or with one from another CA, the
//! client certificate's names reaching authentication (`peer_cert_as_*`),
//! and a bad key file stopping start-up with the file named.
#![allow(clippy::unwrap_used)]

mod mqtt_stream;
mod pki;
mod tcp_common;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::process::Command;
use std::sync::Arc;

use broker::auth::{Authenticator, CertIdentity, Credentials};
use mqtt_codec::ReasonCode;
use parking_lot::Mutex;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use mqtt_stream::Client;
use pki::{Ca, Leaf};
use tcp_common::Connect;

fn config(listeners: &str) -> broker::Config {
    broker::Config::parse(&format!("[listeners.tcp]\nbind = \"127.0.0.1:0\"\n{listeners}")).unwrap()
}

/// A TLS listener on 127.0.0.1 with a server certificate from `ca`; `mutual`:
/// clients need a certificate from `ca` too. `extra`: more listener keys.
async fn start(name: &str, ca: &Ca, mutual: bool, extra: &str) -> (broker::Server, pki::TestDir) {
    let dir = pki::dir(name);
    pki::write_server_files(&dir, &ca.server("broker"), ca);
    let keys = pki::listener_keys(&dir, mutual);
    let config = config(&format!("[listeners.tls]\nbind = \"127.0.0.1:0\"\n{keys}{extra}"));
    (broker::Server::start(config, broker::seam::Runtime::tokio()).await.unwrap(), dir)
}

fn connector(ca: &Ca, client: Option<&Leaf>, versions: &[&'static rustls::SupportedProtocolVersion]) -> TlsConnector {
    let mut config = pki::client_config(ca, client, &[]);
    if versions.len() == 1 {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .unwrap()
            .with_root_certificates(roots);
        config = match client {
            Some(leaf) => {
                let key = rustls_pki_types::PrivateKeyDer::try_from(leaf.key_der.clone()).unwrap();
                builder.with_client_auth_cert(vec![leaf.der.clone()], key).unwrap()
            }
            None => builder.with_no_client_auth(),
        };
    }
    TlsConnector::from(Arc::new(config))
}

/// Connects over TLS, sends an MQTT 5 CONNECT and returns the first bytes
/// back (a CONNACK starts with 0x20), or an error if TLS or the connection failed.
async fn mqtt_over_tls(addr: SocketAddr, connector: TlsConnector) -> std::io::Result<Vec<u8>> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let mut tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
    tls.write_all(&Connect::v5("tls-client").encode()).await?;
    let mut buf = vec![0u8; 64];
    let n = tokio::time::timeout(std::time::Duration::from_secs(5), tls.read(&mut buf)).await??;
    buf.truncate(n);
    Ok(buf)
}

fn refused(reply: &std::io::Result<Vec<u8>>) -> bool {
    reply.as_ref().map_or(true, |r| r.is_empty())
}

#[tokio::test]
async fn mqtt_works_over_tls_1_2_and_1_3() {
    let ca = Ca::new("ca");
    let (server, _dir) = start("plain", &ca, false, "").await;
    let addr = server.tls_addr().unwrap();
    for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12][..]] {
        let reply = mqtt_over_tls(addr, connector(&ca, None, versions)).await.unwrap();
        assert_eq!(reply.first(), Some(&0x20), "CONNACK over {versions:?}: {reply:?}");
        assert_eq!(reply.get(3), Some(&0x00), "accepted: {reply:?}");
    }
    // Plain MQTT on the TLS port is a failed handshake for that socket only.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain.write_all(&Connect::v5("plain").encode()).await.unwrap();
    let mut buf = [0u8; 16];
    let n = plain.read(&mut buf).await.unwrap_or(0);
    assert!(n == 0 || buf[0] != 0x20, "no CONNACK without TLS");
    let reply = mqtt_over_tls(addr, connector(&ca, None, &[&rustls::version::TLS13])).await.unwrap();
    assert_eq!(reply.first(), Some(&0x20), "the listener still serves");
    server.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_refuses_no_certificate_and_a_certificate_from_another_ca() {
    let ca = Ca::new("ca");
    let (server, _dir) = start("mutual", &ca, true, "").await;
    let addr = server.tls_addr().unwrap();
    let tls13 = &[&rustls::version::TLS13][..];
    assert!(refused(&mqtt_over_tls(addr, connector(&ca, None, tls13)).await), "no client certificate");
    let stranger = Ca::new("other-ca").client("intruder", "Elsewhere", &[]);
    assert!(refused(&mqtt_over_tls(addr, connector(&ca, Some(&stranger), tls13)).await), "another CA's certificate");
    let good = ca.client("client-1", "Acme", &[]);
    let reply = mqtt_over_tls(addr, connector(&ca, Some(&good), tls13)).await.unwrap();
    assert_eq!(reply.first(), Some(&0x20), "{reply:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_key_file_stops_start_up_naming_it() {
    let ca = Ca::new("ca");
    let dir = pki::dir("bad");
    pki::write_server_files(&dir, &ca.server("broker"), &ca);
    std::fs::write(dir.join("server.key"), "not a key").unwrap();
    let keys = pki::listener_keys(&dir, false);
    let config = config(&format!("[listeners.tls]\nbind = \"127.0.0.1:0\"\n{keys}"));
    let error = broker::Server::start(config, broker::seam::Runtime::tokio()).await.unwrap_err();
    assert!(error.to_string().contains("server.key") && error.to_string().contains("[listeners.tls]"), "{error}");
}

/// Runs a Mosquitto client with the TLS options for `dir`'s files; true if it exits 0.
fn mosquitto(tool: &str, port: u16, dir: &Path, client: Option<(&str, &str)>, args: &[&str]) -> (bool, String) {
    let mut command = Command::new(tool);
    command.args(["-h", "localhost", "-p", &port.to_string(), "--cafile"]).arg(dir.join("ca.pem"));
    if let Some((cert, key)) = client {
        command.arg("--cert").arg(dir.join(cert)).arg("--key").arg(dir.join(key));
    }
    let output = command.args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {tool} ({e}): install mosquitto-clients (apt-get install -y mosquitto-clients; ci/test.sh does)"
        )
    });
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_connect_with_a_good_client_certificate_only() {
    let ca = Ca::new("ca");
    let (server, dir) = start("mosquitto", &ca, true, "").await;
    let port = server.tls_addr().unwrap().port();
    let good = ca.client("mosq-client", "Acme", &[]);
    pki::write(&dir, "good.pem", &good.pem);
    pki::write(&dir, "good.key", &good.key_pem);
    let stranger = Ca::new("other-ca").client("mosq-intruder", "Elsewhere", &[]);
    pki::write(&dir, "stranger.pem", &stranger.pem);
    pki::write(&dir, "stranger.key", &stranger.key_pem);
    let dir2 = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let dir = dir2;
        let publish = ["-t", "tls/mosq", "-m", "over-mutual-tls", "-r", "-q", "1", "-V", "mqttv311"];
        let (ok, out) = mosquitto("mosquitto_pub", port, &dir, Some(("good.pem", "good.key")), &publish);
        assert!(ok, "a client with a certificate from the CA publishes: {out}");
        let subscribe = ["-t", "tls/mosq", "-C", "1", "-W", "10", "-V", "mqttv5"];
        let (ok, out) = mosquitto("mosquitto_sub", port, &dir, Some(("good.pem", "good.key")), &subscribe);
        assert!(ok && out.contains("over-mutual-tls"), "and subscribes, getting the retained message: {out}");
        let (ok, out) = mosquitto("mosquitto_pub", port, &dir, None, &publish);
        assert!(!ok, "no client certificate: refused: {out}");
        let (ok, out) = mosquitto("mosquitto_pub", port, &dir, Some(("stranger.pem", "stranger.key")), &publish);
        assert!(!ok, "a certificate from another CA: refused: {out}");
    })
    .await
    .unwrap();
    server.shutdown().await;
}

/// What authentication saw of a client: username, client id, listener, certificate.
type Seen = (Option<String>, String, String, Option<CertIdentity>);

/// What authentication saw of each client.
#[derive(Default)]
struct Recorder(Mutex<Vec<Seen>>);

impl Authenticator for Recorder {
    fn authenticate<'a>(
        &'a self,
        credentials: Credentials<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<(), ReasonCode>> + Send + 'a>> {
        let c = credentials.connect;
        self.0.lock().push((
            c.username.as_ref().map(|u| u.to_string()),
            c.client_id.to_string(),
            credentials.transport.listener.clone(),
            credentials.transport.certificate.clone(),
        ));
        Box::pin(std::future::ready(Ok(())))
    }
}

async fn tls_client(
    addr: SocketAddr,
    ca: &Ca,
    leaf: &Leaf,
) -> Client<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let connector = TlsConnector::from(Arc::new(pki::client_config(ca, Some(leaf), &[])));
    Client::new(connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap())
}

#[tokio::test]
async fn peer_cert_as_username_and_clientid_replace_the_connect_s_names_before_authentication() {
    let ca = Ca::new("ca");
    let dir = pki::dir("peer-cert");
    pki::write_server_files(&dir, &ca.server("broker"), &ca);
    let keys = pki::listener_keys(&dir, true);
    let config = config(&format!(
        "[listeners.tls.devices]\nbind = \"127.0.0.1:0\"\n{keys}\
         peer_cert_as_username = \"cn\"\npeer_cert_as_clientid = \"san_dns\"\n"
    ));
    let recorder = Arc::new(Recorder::default());
    let server = broker::Server::start_with(config, broker::seam::Runtime::tokio(), recorder.clone()).await.unwrap();
    let addr = server.tls_addr().unwrap();

    let device = ca.client("dev-1", "Acme", &["dev-1.devices.example", "alt.example"]);
    let mut client = tls_client(addr, &ca, &device).await;
    client.send(&Connect::v5("chosen-by-client").encode()).await;
    assert_eq!(client.connack().await, Some(0), "accepted");
    let seen = recorder.0.lock().clone();
    let (username, client_id, listener, cert) = &seen[0];
    assert_eq!(username.as_deref(), Some("dev-1"));
    assert_eq!(client_id, "dev-1.devices.example");
    assert_eq!(listener, "tls:devices");
    let cert = cert.as_ref().expect("the verified certificate reaches authentication");
    assert_eq!(cert.common_name.as_deref(), Some("dev-1"));
    assert_eq!(cert.subject, "CN=dev-1,O=Acme");
    assert_eq!(cert.subject_alt_names, ["dev-1.devices.example", "alt.example"]);

    // A certificate without the field that names the client is not served under names of its own choosing.
    let nameless = ca.client("dev-2", "Acme", &[]);
    let mut client = tls_client(addr, &ca, &nameless).await;
    client.send(&Connect::v5("dev-2").encode()).await;
    assert_eq!(client.connack().await, None, "closed without a CONNACK");
    assert_eq!(recorder.0.lock().len(), 1, "authentication never saw it");
    server.shutdown().await;
}

#[tokio::test]
async fn without_peer_cert_options_the_connect_keeps_its_names_and_the_certificate_is_reported() {
    let ca = Ca::new("ca");
    let dir = pki::dir("cert-identity");
    pki::write_server_files(&dir, &ca.server("broker"), &ca);
    let keys = pki::listener_keys(&dir, true);
    let config = config(&format!("[listeners.tls]\nbind = \"127.0.0.1:0\"\n{keys}"));
    let recorder = Arc::new(Recorder::default());
    let server = broker::Server::start_with(config, broker::seam::Runtime::tokio(), recorder.clone()).await.unwrap();
    let mut client = tls_client(server.tls_addr().unwrap(), &ca, &ca.client("c-9", "Org", &[])).await;
    client.send(&Connect::v5("own-id").encode()).await;
    assert_eq!(client.connack().await, Some(0));
    let (username, client_id, listener, cert) = recorder.0.lock()[0].clone();
    assert_eq!((username, client_id.as_str(), listener.as_str()), (None, "own-id", "tls:default"));
    assert_eq!(cert.unwrap().subject, "CN=c-9,O=Org");
    server.shutdown().await;
}
