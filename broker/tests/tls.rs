//! The TLS listener with certificates made by rcgen: MQTT over TLS 1.2 and
//! 1.3, mutual TLS refusing clients without a certificate from the CA, and a
//! bad key file stopping start-up with the file named.
#![allow(clippy::unwrap_used)]

mod tcp_common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

use tcp_common::Connect;

struct Pki {
    dir: PathBuf,
    ca: CertificateDer<'static>,
    client_cert: CertificateDer<'static>,
    client_key: Vec<u8>,
}

fn make_pki(name: &str) -> Pki {
    let dir = std::env::temp_dir().join(format!("broker-tls-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&server_key, &ca).unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["client-1".to_string()]).unwrap().signed_by(&client_key, &ca).unwrap();
    std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    Pki { ca: ca.der().clone(), client_cert: client.der().clone(), client_key: client_key.serialize_der(), dir }
}

async fn start(pki: &Pki, mutual: bool) -> broker::Server {
    let mut config = broker::Config::default();
    config.listeners.tcp.bind = "127.0.0.1:0".parse().unwrap();
    let tls = format!(
        "[listeners.tls]\nbind = \"127.0.0.1:0\"\ncert = {:?}\nkey = {:?}\n{}",
        pki.dir.join("server.pem"),
        pki.dir.join("server.key"),
        if mutual { format!("client_ca = {:?}\n", pki.dir.join("ca.pem")) } else { String::new() }
    );
    config.listeners.tls = broker::Config::parse(&tls).unwrap().listeners.tls;
    broker::Server::start(config, broker::seam::Runtime::tokio()).await.unwrap()
}

fn connector(
    pki: &Pki,
    with_client_cert: bool,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots);
    let config = if with_client_cert {
        let key = PrivateKeyDer::try_from(pki.client_key.clone()).unwrap();
        builder.with_client_auth_cert(vec![pki.client_cert.clone()], key).unwrap()
    } else {
        builder.with_no_client_auth()
    };
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

#[tokio::test]
async fn mqtt_works_over_tls_1_2_and_1_3() {
    let pki = make_pki("plain");
    let server = start(&pki, false).await;
    let addr = server.tls_addr().unwrap();
    for versions in [&[&rustls::version::TLS13][..], &[&rustls::version::TLS12][..]] {
        let reply = mqtt_over_tls(addr, connector(&pki, false, versions)).await.unwrap();
        assert_eq!(reply.first(), Some(&0x20), "CONNACK over {versions:?}: {reply:?}");
        assert_eq!(reply.get(3), Some(&0x00), "accepted: {reply:?}");
    }
    // Plain MQTT on the TLS port is a failed handshake for that socket only.
    let mut plain = tokio::net::TcpStream::connect(addr).await.unwrap();
    plain.write_all(&Connect::v5("plain").encode()).await.unwrap();
    let mut buf = [0u8; 16];
    let n = plain.read(&mut buf).await.unwrap_or(0);
    assert!(n == 0 || buf[0] != 0x20, "no CONNACK without TLS");
    let reply = mqtt_over_tls(addr, connector(&pki, false, &[&rustls::version::TLS13])).await.unwrap();
    assert_eq!(reply.first(), Some(&0x20), "the listener still serves");
    server.shutdown().await;
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_a_certificate_from_the_ca() {
    let pki = make_pki("mutual");
    let server = start(&pki, true).await;
    let addr = server.tls_addr().unwrap();
    let refused = mqtt_over_tls(addr, connector(&pki, false, &[&rustls::version::TLS13])).await;
    assert!(refused.as_ref().map_or(true, |r| r.is_empty()), "no CONNACK without a client certificate: {refused:?}");
    let reply = mqtt_over_tls(addr, connector(&pki, true, &[&rustls::version::TLS13])).await.unwrap();
    assert_eq!(reply.first(), Some(&0x20), "{reply:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn a_bad_key_file_stops_start_up_naming_it() {
    let pki = make_pki("bad");
    std::fs::write(pki.dir.join("server.key"), "not a key").unwrap();
    let mut config = broker::Config::default();
    config.listeners.tcp.bind = "127.0.0.1:0".parse().unwrap();
    let tls = format!(
        "[listeners.tls]\nbind = \"127.0.0.1:0\"\ncert = {:?}\nkey = {:?}\n",
        pki.dir.join("server.pem"),
        pki.dir.join("server.key")
    );
    config.listeners.tls = broker::Config::parse(&tls).unwrap().listeners.tls;
    let error = broker::Server::start(config, broker::seam::Runtime::tokio()).await.unwrap_err();
    assert!(error.to_string().contains("server.key"), "{error}");
}
