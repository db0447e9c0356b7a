//! Whole runs over each transport against this repository's broker on
//! loopback: TLS (CA-verified, mutual, unknown CA, `insecure`), WebSocket,
//! WebSocket over TLS, QUIC (the broker's listener; and a quinn relay in front
//! of the broker's TCP listener, which records where each QUIC connection
//! came from), plus the command line's transport flags.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use loadgen::collect::{RunOptions, run_local};
use loadgen::result::RunResult;
use loadgen::scenario::Scenario;
use parking_lot::Mutex;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;

/// A CA, a broker certificate it signed (for `localhost` and `127.0.0.1`),
/// a client certificate it signed, and a second CA that signed nothing here.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("loadgen-transports-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = new_ca();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
        let client_key = KeyPair::generate().unwrap();
        let client = CertificateParams::new(vec!["client-1".to_string()]).unwrap().signed_by(&client_key, &ca).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.join("other-ca.pem"), new_ca().pem()).unwrap();
        std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
        std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
        std::fs::write(dir.join("client.pem"), client.pem()).unwrap();
        std::fs::write(dir.join("client.key"), client_key.serialize_pem()).unwrap();
        Pki { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// A QUIC server's rustls configuration with the broker's certificate, offering `alpn`.
    fn server_config(&self, alpn: &[u8]) -> rustls::ServerConfig {
        let certs: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(self.path("server.pem")).unwrap().collect::<Result<_, _>>().unwrap();
        let key = PrivateKeyDer::from_pem_file(self.path("server.key")).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
        config.alpn_protocols = vec![alpn.to_vec()];
        config
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn new_ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A broker with a TCP listener and the listeners `extra` configures.
async fn start_broker(extra: &str) -> broker::Server {
    let text = format!("[listeners.tcp]\nbind = \"127.0.0.1:0\"\n{extra}");
    let config = broker::Config::parse(&text).unwrap();
    broker::Server::start(config, broker::seam::Runtime::tokio()).await.expect("broker starts")
}

/// A `[listeners.KIND]` table with the broker's certificate and key.
fn listener(kind: &str, pki: &Pki) -> String {
    format!(
        "[listeners.{kind}]\nbind = \"127.0.0.1:0\"\ncert = {:?}\nkey = {:?}\n",
        pki.path("server.pem"),
        pki.path("server.key")
    )
}

fn tls_listener(pki: &Pki, mutual: bool) -> String {
    let client_ca = if mutual { format!("client_ca = {:?}\n", pki.path("ca.pem")) } else { String::new() };
    format!(
        "[listeners.tls]\nbind = \"127.0.0.1:0\"\ncert = {:?}\nkey = {:?}\n{client_ca}",
        pki.path("server.pem"),
        pki.path("server.key")
    )
}

/// `pairs` subscribers on `p2p/%i` and as many publishers at QoS 1, 200
/// messages/s in all for 1 s, over the transport `target` configures.
fn p2p(host: SocketAddr, target: &str, pairs: u64) -> Scenario {
    let text = format!(
        r#"
name = "transport-test"
[target]
hosts = ["{host}"]
{target}
[[group]]
name = "sub"
count = {pairs}
[[group]]
name = "pub"
count = {pairs}
[[phase]]
kind = "connect"
group = "sub"
[[phase]]
kind = "subscribe"
group = "sub"
topic = "p2p/%i"
qos = 1
[[phase]]
kind = "connect"
group = "pub"
[[phase]]
kind = "publish"
group = "pub"
topic = "p2p/%i"
qos = 1
size = 64
rate = 200.0
duration = "1s"
[[phase]]
kind = "hold"
duration = "300ms"
[[phase]]
kind = "disconnect"
"#
    );
    Scenario::from_toml(&text).expect("valid scenario")
}

/// Only `clients` connecting, then disconnecting.
fn connect_only(host: SocketAddr, target: &str, clients: u64) -> Scenario {
    let mut scenario = p2p(host, target, clients);
    scenario.groups.truncate(1);
    scenario.phases.truncate(1);
    scenario
}

async fn run(scenario: Scenario) -> RunResult {
    let options = RunOptions { quiet: true, ..RunOptions::default() };
    tokio::time::timeout(std::time::Duration::from_secs(60), run_local(scenario, options))
        .await
        .expect("the run ends")
        .expect("run")
}

/// Every client connected, every publish acknowledged and delivered once, in order.
fn check_delivered(r: &RunResult, clients: u64) {
    let t = &r.totals;
    assert_eq!((t.connects_ok, t.connects_failed), (clients, 0), "{t:?}");
    assert_eq!(t.subscribes_ok, clients / 2, "{t:?}");
    assert!(t.pub_sent > 0, "{t:?}");
    assert_eq!(t.pub_acked, t.pub_sent, "every QoS 1 publish acknowledged: {t:?}");
    assert_eq!(t.received, t.pub_sent, "every message delivered once: {t:?}");
    assert_eq!((t.lost, t.duplicates, t.out_of_order), (0, 0, 0), "{t:?}");
    assert_eq!(t.disconnects, 0, "no connection ended before it was told to: {t:?}");
    assert!(r.series.last().is_some_and(|s| s.connections == 0), "everything disconnected at the end");
}

fn ca_keys(pki: &Pki) -> String {
    format!("cacertfile = {:?}", pki.path("ca.pem"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qos1_run_over_tls_delivers_every_message_once() {
    let pki = Pki::new("tls");
    let server = start_broker(&tls_listener(&pki, false)).await;
    let target = format!("transport = \"tls\"\n{}", ca_keys(&pki));
    check_delivered(&run(p2p(server.tls_addr().unwrap(), &target, 10)).await, 20);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_runs_with_the_client_certificate_and_fails_without_it() {
    let pki = Pki::new("mtls");
    let server = start_broker(&tls_listener(&pki, true)).await;
    let addr = server.tls_addr().unwrap();
    let with_cert = format!(
        "transport = \"tls\"\n{}\ncertfile = {:?}\nkeyfile = {:?}\nserver_name = \"localhost\"",
        ca_keys(&pki),
        pki.path("client.pem"),
        pki.path("client.key")
    );
    check_delivered(&run(p2p(addr, &with_cert, 5)).await, 10);
    let without = format!("transport = \"tls\"\n{}\nconnect_timeout_ms = 3000", ca_keys(&pki));
    let refused = run(connect_only(addr, &without, 3)).await;
    assert_eq!((refused.totals.connects_ok, refused.totals.connects_failed), (0, 3), "{:?}", refused.totals);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_certificate_from_an_unknown_ca_fails_and_insecure_connects_anyway() {
    let pki = Pki::new("unknown-ca");
    let server = start_broker(&tls_listener(&pki, false)).await;
    let addr = server.tls_addr().unwrap();
    let wrong_ca = format!("transport = \"tls\"\ncacertfile = {:?}", pki.path("other-ca.pem"));
    let refused = run(connect_only(addr, &wrong_ca, 3)).await;
    assert_eq!((refused.totals.connects_ok, refused.totals.connects_failed), (0, 3), "{:?}", refused.totals);
    let insecure = run(connect_only(addr, "transport = \"tls\"\ninsecure = true", 3)).await;
    assert_eq!((insecure.totals.connects_ok, insecure.totals.connects_failed), (3, 0), "{:?}", insecure.totals);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_ca_file_stops_the_run_naming_the_key() {
    let error = run_local(
        connect_only("127.0.0.1:1".parse().unwrap(), "transport = \"tls\"\ncacertfile = \"/nonexistent/ca.pem\"", 1),
        RunOptions { quiet: true, ..RunOptions::default() },
    )
    .await
    .expect_err("no CA file");
    assert!(error.contains("target.cacertfile") && error.contains("/nonexistent/ca.pem"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qos1_run_over_websocket_delivers_every_message_once() {
    let server = start_broker("[listeners.ws]\nbind = \"127.0.0.1:0\"\npath = \"/mqtt\"\n").await;
    let addr = server.ws_addr().unwrap();
    check_delivered(&run(p2p(addr, "transport = \"ws\"", 10)).await, 20);
    // The path is the one asked for: another is refused by the broker.
    let wrong_path = run(connect_only(addr, "transport = \"ws\"\nws_path = \"/other\"", 2)).await;
    assert_eq!((wrong_path.totals.connects_ok, wrong_path.totals.connects_failed), (0, 2), "{:?}", wrong_path.totals);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qos1_run_over_websocket_over_tls_delivers_every_message_once() {
    let pki = Pki::new("wss");
    let server = start_broker(&listener("wss", &pki)).await;
    let target = format!("transport = \"wss\"\n{}", ca_keys(&pki));
    check_delivered(&run(p2p(server.wss_addr().unwrap(), &target, 10)).await, 20);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_qos1_run_over_the_brokers_quic_listener_delivers_every_message_once() {
    let pki = Pki::new("quic-broker");
    let server = start_broker(&listener("quic", &pki)).await;
    let target = format!("transport = \"quic\"\n{}", ca_keys(&pki));
    check_delivered(&run(p2p(server.quic_addr().unwrap(), &target, 10)).await, 20);
    server.shutdown().await;
}

/// A QUIC server (ALPN `mqtt`) that relays each bidirectional stream to a
/// TCP connection to `upstream`, and records the address every QUIC
/// connection came from.
async fn quic_relay(pki: &Pki, upstream: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<SocketAddr>>>) {
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(pki.server_config(b"mqtt")).unwrap();
    let config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let endpoint = quinn::Endpoint::server(config, "127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = endpoint.local_addr().unwrap();
    let peers = Arc::new(Mutex::new(Vec::new()));
    let seen = peers.clone();
    tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let Ok(connection) = incoming.await else { return };
                seen.lock().push(connection.remote_address());
                while let Ok((send, recv)) = connection.accept_bi().await {
                    tokio::spawn(async move {
                        let Ok(mut tcp) = TcpStream::connect(upstream).await else { return };
                        let mut stream = tokio::io::join(recv, send);
                        let _ = tokio::io::copy_bidirectional(&mut stream, &mut tcp).await;
                    });
                }
            });
        }
    });
    (addr, peers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_clients_share_one_endpoint_per_source_address() {
    let pki = Pki::new("quic");
    let server = start_broker("").await;
    let (relay, peers) = quic_relay(&pki, server.local_addr()).await;
    let sources: [IpAddr; 2] = ["127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap()];
    let target = format!("transport = \"quic\"\n{}\nifaddr = [\"{}\", \"{}\"]", ca_keys(&pki), sources[0], sources[1]);
    check_delivered(&run(p2p(relay, &target, 10)).await, 20);
    let peers = peers.lock().clone();
    assert_eq!(peers.len(), 20, "one QUIC connection per client: {peers:?}");
    let endpoints: HashSet<SocketAddr> = peers.iter().copied().collect();
    let addresses: HashSet<IpAddr> = endpoints.iter().map(SocketAddr::ip).collect();
    assert_eq!(endpoints.len(), 2, "one UDP endpoint per source address: {endpoints:?}");
    assert_eq!(addresses, sources.into_iter().collect(), "each bound to its source address");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_against_a_server_without_the_mqtt_alpn_fails_to_connect() {
    let pki = Pki::new("quic-alpn");
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(pki.server_config(b"h3")).unwrap();
    let endpoint =
        quinn::Endpoint::server(quinn::ServerConfig::with_crypto(Arc::new(crypto)), "127.0.0.1:0".parse().unwrap())
            .unwrap();
    let addr = endpoint.local_addr().unwrap();
    let target = format!("transport = \"quic\"\n{}\nconnect_timeout_ms = 3000", ca_keys(&pki));
    let accept = tokio::spawn(async move {
        while let Some(incoming) = endpoint.accept().await {
            let _ = incoming.await;
        }
    });
    let refused = run(connect_only(addr, &target, 2)).await;
    assert_eq!((refused.totals.connects_ok, refused.totals.connects_failed), (0, 2), "{:?}", refused.totals);
    accept.abort();
}

/// Runs the `loadgen` binary and reads the result it wrote.
fn loadgen(args: &[String], json: &Path) -> RunResult {
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen")).args(args).arg("--json").arg(json).output().unwrap();
    assert!(output.status.success(), "loadgen {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&std::fs::read(json).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_speaks_tls_websocket_and_quic() {
    let pki = Pki::new("cli");
    let listeners = format!(
        "{}{}{}[listeners.ws]\nbind = \"127.0.0.1:0\"\n",
        tls_listener(&pki, false),
        listener("wss", &pki),
        listener("quic", &pki)
    );
    let server = start_broker(&listeners).await;
    let ca = pki.path("ca.pem");
    let ca = ca.to_str().unwrap();
    let json = pki.path("result.json");
    let conn = ["conn", "-h", "127.0.0.1", "-c", "3", "-i", "1", "--duration", "300ms", "--quiet"];
    let port = |addr: Option<SocketAddr>| addr.unwrap().port().to_string();
    let cases: [(&str, Vec<String>); 5] = [
        ("--ssl", vec!["-p".into(), port(server.tls_addr()), "--ssl".into(), "--cacertfile".into(), ca.into()]),
        (
            "--tls --server-name",
            vec![
                "-p".into(),
                port(server.tls_addr()),
                "--tls".into(),
                "--cacertfile".into(),
                ca.into(),
                "--server-name".into(),
                "localhost".into(),
            ],
        ),
        ("--ws", vec!["-p".into(), port(server.ws_addr()), "--ws".into(), "--ws-path".into(), "/mqtt".into()]),
        (
            "--ws --ssl",
            vec!["-p".into(), port(server.wss_addr()), "--ws".into(), "-S".into(), "--cacertfile".into(), ca.into()],
        ),
        ("--quic", vec!["-p".into(), port(server.quic_addr()), "--quic".into(), "--cacertfile".into(), ca.into()]),
    ];
    for (name, extra) in cases {
        let args: Vec<String> = conn.iter().map(|a| a.to_string()).chain(extra).collect();
        let json_for_run = json.clone();
        let result = tokio::task::spawn_blocking(move || loadgen(&args, &json_for_run)).await.unwrap();
        assert_eq!((result.totals.connects_ok, result.totals.connects_failed), (3, 0), "{name}: {:?}", result.totals);
        assert!(result.loadgen_rss_per_connection_bytes.is_some(), "{name}: memory per connection reported");
    }
    // TLS with neither a CA nor --insecure is refused before anything connects, naming the options.
    let output = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["conn", "-h", "127.0.0.1", "-p", &port(server.tls_addr()), "-c", "1", "--ssl", "--quiet"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success() && stderr.contains("--cacertfile") && stderr.contains("--insecure"), "{stderr}");
    server.shutdown().await;
}
