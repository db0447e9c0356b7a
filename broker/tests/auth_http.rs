//! The HTTP callout: a service on loopback answers allow / deny / ignore by
//! user name; failures follow `on_error`; answers are cached; over https the
//! service's certificate must chain to the configured CA.
#![allow(clippy::unwrap_used)]

mod auth_common;
mod pki;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use auth_common::{WAIT, chain, connack, start, tcp, verdict};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use mqtt_codec::{ProtocolVersion, ReasonCode};
use parking_lot::Mutex;
use serde_json::{Value, json};

#[derive(Default)]
struct Service {
    calls: AtomicUsize,
    last: Mutex<Option<Value>>,
}

async fn decide(State(service): State<Arc<Service>>, Json(request): Json<Value>) -> (StatusCode, String) {
    service.calls.fetch_add(1, Ordering::SeqCst);
    *service.last.lock() = Some(request.clone());
    let result = match request["username"].as_str() {
        Some("alice") if request["password"] == "secret" => "allow",
        Some("alice" | "mallory") => "deny",
        Some("slow") => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            "allow"
        }
        Some("broken") => return (StatusCode::INTERNAL_SERVER_ERROR, "oops".into()),
        Some("garbled") => return (StatusCode::OK, "allow".into()),
        _ => "ignore",
    };
    (StatusCode::OK, json!({ "result": result, "is_superuser": false }).to_string())
}

/// A service on 127.0.0.1, port 0.
async fn service() -> (Arc<Service>, SocketAddr) {
    let service = Arc::new(Service::default());
    let app = axum::Router::new().route("/auth", post(decide)).with_state(Arc::clone(&service));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (service, addr)
}

fn http_config(addr: SocketAddr, extra: &str) -> String {
    format!(
        "[auth]\nallow_anonymous = true\nchain = [\"http\"]\n[auth.http]\nurl = \"http://{addr}/auth\"\ntimeout_ms = 500\n{extra}"
    )
}

#[tokio::test]
async fn the_service_allows_denies_and_ignores() {
    let (service, addr) = service().await;
    let auth = chain(&http_config(addr, "cache_ttl_secs = 0\n"));
    assert_eq!(verdict(&*auth, "c1", Some("alice"), Some("secret"), &tcp()).await, Ok(()));
    let request = service.last.lock().clone().unwrap();
    assert_eq!(
        request,
        json!({ "clientid": "c1", "username": "alice", "password": "secret", "peerhost": "127.0.0.1", "listener": "tcp:default" })
    );
    assert_eq!(
        verdict(&*auth, "c", Some("alice"), Some("wrong"), &tcp()).await,
        Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );
    assert_eq!(
        verdict(&*auth, "c", Some("mallory"), Some("x"), &tcp()).await,
        Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );
    // "ignore" with nobody after it: credentials nobody vouched for are refused; no credentials: anonymous.
    assert_eq!(
        verdict(&*auth, "c", Some("carol"), Some("x"), &tcp()).await,
        Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );
    assert_eq!(verdict(&*auth, "c", None, None, &tcp()).await, Ok(()));
    assert_eq!(service.calls.load(Ordering::SeqCst), 5);
}

#[tokio::test]
async fn failures_deny_by_default() {
    let (_service, addr) = service().await;
    let auth = chain(&http_config(addr, ""));
    for user in ["slow", "broken", "garbled"] {
        assert_eq!(
            verdict(&*auth, "c", Some(user), Some("x"), &tcp()).await,
            Err(ReasonCode::SERVER_UNAVAILABLE),
            "{user}"
        );
    }
    // Nothing listens on port 1 of 127.0.0.2.
    let refused = chain(&http_config("127.0.0.2:1".parse().unwrap(), ""));
    assert_eq!(verdict(&*refused, "c", Some("u"), Some("x"), &tcp()).await, Err(ReasonCode::SERVER_UNAVAILABLE));
}

#[tokio::test]
async fn failures_can_be_ignored() {
    let (_service, addr) = service().await;
    let toml = format!(
        "[auth]\nallow_anonymous = false\nchain = [\"http\", \"x509\"]\n[auth.http]\nurl = \"http://{addr}/auth\"\n\
         timeout_ms = 300\non_error = \"ignore\"\n[auth.x509]\n"
    );
    let auth = chain(&toml);
    let certified = broker::auth::TransportInfo {
        listener: "tls:default".into(),
        certificate: Some(broker::auth::CertIdentity::default()),
    };
    let started = tokio::time::Instant::now();
    assert_eq!(
        verdict(&*auth, "c", Some("slow"), Some("x"), &certified).await,
        Ok(()),
        "x509 decides after the timeout"
    );
    assert!(started.elapsed() < Duration::from_secs(2), "the timeout bounds the wait: {:?}", started.elapsed());
    assert_eq!(
        verdict(&*auth, "c", Some("broken"), Some("x"), &tcp()).await,
        Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );
}

#[tokio::test]
async fn answers_are_cached_per_request_for_the_ttl() {
    let (service, addr) = service().await;
    let auth = chain(&http_config(addr, "cache_ttl_secs = 60\ncache_size = 2\n"));
    for _ in 0..3 {
        assert_eq!(verdict(&*auth, "c", Some("alice"), Some("secret"), &tcp()).await, Ok(()));
    }
    assert_eq!(service.calls.load(Ordering::SeqCst), 1, "one call, then the cache");
    assert_eq!(
        verdict(&*auth, "c", Some("alice"), Some("wrong"), &tcp()).await,
        Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );
    assert_eq!(verdict(&*auth, "other", Some("alice"), Some("secret"), &tcp()).await, Ok(()));
    assert_eq!(service.calls.load(Ordering::SeqCst), 3, "another password or client id is another request");
    // The cache holds two answers: the first one was evicted.
    assert_eq!(verdict(&*auth, "c", Some("alice"), Some("secret"), &tcp()).await, Ok(()));
    assert_eq!(service.calls.load(Ordering::SeqCst), 4);
    // Failures are not cached.
    assert_eq!(verdict(&*auth, "c", Some("broken"), Some("x"), &tcp()).await, Err(ReasonCode::SERVER_UNAVAILABLE));
    assert_eq!(verdict(&*auth, "c", Some("broken"), Some("x"), &tcp()).await, Err(ReasonCode::SERVER_UNAVAILABLE));
    assert_eq!(service.calls.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn cached_answers_expire() {
    let (service, addr) = service().await;
    let auth = chain(&http_config(addr, "cache_ttl_secs = 1\n"));
    assert_eq!(verdict(&*auth, "c", Some("alice"), Some("secret"), &tcp()).await, Ok(()));
    assert_eq!(verdict(&*auth, "c", Some("alice"), Some("secret"), &tcp()).await, Ok(()));
    assert_eq!(service.calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(verdict(&*auth, "c", Some("alice"), Some("secret"), &tcp()).await, Ok(()));
    assert_eq!(service.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_server_asks_the_service() {
    let (_service, addr) = service().await;
    let server = start(&http_config(addr, "")).await;
    let broker = server.local_addr();
    assert_eq!(
        connack(broker, ProtocolVersion::V5, "c", Some("alice"), Some("secret")).await,
        Some(ReasonCode::SUCCESS)
    );
    assert_eq!(
        connack(broker, ProtocolVersion::V5, "c", Some("mallory"), Some("x")).await,
        Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );
    server.shutdown().await;
}

/// Serves the same service over TLS with `leaf` as its certificate; a failed
/// handshake (an untrusting client) only drops that connection.
struct TlsListener {
    tcp: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, peer)) = self.tcp.accept().await else { continue };
            if let Ok(Ok(tls)) = tokio::time::timeout(WAIT, self.acceptor.accept(stream)).await {
                return (tls, peer);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.tcp.local_addr()
    }
}

async fn https_service(leaf: &pki::Leaf) -> (Arc<Service>, SocketAddr) {
    let key = rustls_pki_types::PrivateKeyDer::try_from(leaf.key_der.clone()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der.clone()], key)
        .unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener { tcp, acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)) };
    let service = Arc::new(Service::default());
    let app = axum::Router::new().route("/auth", post(decide)).with_state(Arc::clone(&service));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (service, addr)
}

fn https_config(url: &str, ca_file: Option<&std::path::Path>, extra: &str) -> String {
    let ca = ca_file.map(|path| format!("ca_file = {path:?}\n")).unwrap_or_default();
    format!(
        "[auth]\nallow_anonymous = false\nchain = [\"http\"]\n[auth.http]\nurl = \"{url}\"\ntimeout_ms = 2000\n\
         cache_ttl_secs = 0\n{ca}{extra}"
    )
}

#[tokio::test]
async fn an_https_service_signed_by_the_configured_ca_allows_and_denies() {
    let ca = pki::Ca::new("callout CA");
    let dir = pki::dir("https-trusted");
    let ca_file = pki::write(&dir, "ca.pem", &ca.pem());
    let (service, addr) = https_service(&ca.server("auth service")).await;
    // By IP address (matched against the certificate's IP SAN), and by name (SNI "localhost").
    for url in [format!("https://{addr}/auth"), format!("https://localhost:{}/auth", addr.port())] {
        let auth = chain(&https_config(&url, Some(&ca_file), ""));
        assert_eq!(verdict(&*auth, "c", Some("alice"), Some("secret"), &tcp()).await, Ok(()), "{url}");
        assert_eq!(
            verdict(&*auth, "c", Some("mallory"), Some("x"), &tcp()).await,
            Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD),
            "{url}"
        );
    }
    assert_eq!(service.calls.load(Ordering::SeqCst), 4);

    // The same through a running broker: the CONNACK carries the service's verdict.
    let server = start(&https_config(&format!("https://{addr}/auth"), Some(&ca_file), "")).await;
    let broker = server.local_addr();
    assert_eq!(
        connack(broker, ProtocolVersion::V5, "c", Some("alice"), Some("secret")).await,
        Some(ReasonCode::SUCCESS)
    );
    assert_eq!(
        connack(broker, ProtocolVersion::V5, "c", Some("mallory"), Some("x")).await,
        Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn an_https_service_the_broker_does_not_trust_fails_closed() {
    let trusted = pki::Ca::new("trusted CA");
    let other = pki::Ca::new("another CA");
    let dir = pki::dir("https-untrusted");
    let ca_file = pki::write(&dir, "ca.pem", &trusted.pem());
    let (service, addr) = https_service(&other.server("impostor")).await;
    let url = format!("https://{addr}/auth");
    let unavailable = Err(ReasonCode::SERVER_UNAVAILABLE);

    let auth = chain(&https_config(&url, Some(&ca_file), ""));
    assert_eq!(verdict(&*auth, "c", Some("alice"), Some("secret"), &tcp()).await, unavailable, "another CA");
    // Without ca_file only the public web roots are trusted: a private CA is not.
    let auth = chain(&https_config(&url, None, ""));
    assert_eq!(verdict(&*auth, "c", Some("alice"), Some("secret"), &tcp()).await, unavailable, "web roots");
    // on_error = "ignore" lets the (empty) rest of the chain decide: still refused.
    let auth = chain(&https_config(&url, Some(&ca_file), "on_error = \"ignore\"\n"));
    assert_eq!(
        verdict(&*auth, "c", Some("alice"), Some("secret"), &tcp()).await,
        Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );
    assert_eq!(service.calls.load(Ordering::SeqCst), 0, "no request reached the impostor");

    // A certificate from the trusted CA, but for another name.
    let (service, addr) = https_service(&trusted.client("elsewhere", "org", &["elsewhere.example"])).await;
    let auth = chain(&https_config(&format!("https://{addr}/auth"), Some(&ca_file), ""));
    assert_eq!(verdict(&*auth, "c", Some("alice"), Some("secret"), &tcp()).await, unavailable, "wrong name");
    assert_eq!(service.calls.load(Ordering::SeqCst), 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_reload_rereads_the_ca_file() {
    let old = pki::Ca::new("old CA");
    let new = pki::Ca::new("new CA");
    let dir = pki::dir("https-reload");
    let ca_file = pki::write(&dir, "ca.pem", &old.pem());
    let (_service, addr) = https_service(&new.server("auth service")).await;
    let auth = chain(&https_config(&format!("https://{addr}/auth"), Some(&ca_file), ""));
    assert_eq!(verdict(&*auth, "c", Some("alice"), Some("secret"), &tcp()).await, Err(ReasonCode::SERVER_UNAVAILABLE));
    std::fs::write(&ca_file, "garbage\n").unwrap();
    let error = auth.reload().unwrap_err();
    assert!(error.contains("ca_file"), "{error}");
    std::fs::write(&ca_file, new.pem()).unwrap();
    auth.reload().unwrap();
    assert_eq!(verdict(&*auth, "c", Some("alice"), Some("secret"), &tcp()).await, Ok(()));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_bad_ca_file_stops_start_up_naming_the_key() {
    let dir = pki::dir("https-bad-ca");
    let empty = pki::write(&dir, "empty.pem", "no certificate here\n");
    let toml = https_config("https://127.0.0.1:1/auth", Some(&empty), "");
    let error = broker::auth::build(&auth_common::config(&toml), &broker::seam::Runtime::tokio()).err().unwrap();
    assert!(error.contains("[auth.http] ca_file") && error.contains("no certificate"), "{error}");
    let error = broker::auth::check_files(&auth_common::config(&toml)).unwrap_err();
    assert!(error.contains("[auth.http] ca_file"), "{error}");
    let missing = https_config("https://127.0.0.1:1/auth", Some(&dir.join("missing.pem")), "");
    let error = broker::Config::parse(&missing).unwrap_err().to_string();
    assert!(error.contains("[auth.http] ca_file") && error.contains("missing.pem"), "{error}");
    let plain =
        format!("[auth]\nchain = [\"http\"]\n[auth.http]\nurl = \"http://127.0.0.1:1/\"\nca_file = {empty:?}\n");
    let error = broker::Config::parse(&plain).unwrap_err().to_string();
    assert!(error.contains("ca_file is for https"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A service that answers and closes at once (`Connection: close`, as many
/// one-shot servers do): the answer must still count.
#[tokio::test]
async fn a_service_that_closes_right_after_answering_is_heard() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                // The request is small: read until its JSON body closes.
                while !request.ends_with(b"}") {
                    let n = stream.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                let body = r#"{"result":"allow"}"#;
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(answer.as_bytes()).await.unwrap();
                let _ = stream.shutdown().await;
            });
        }
    });
    let auth = chain(&http_config(addr, "cache_ttl_secs = 0\n"));
    for i in 0..200 {
        assert_eq!(verdict(&*auth, "c", Some("alice"), Some("secret"), &tcp()).await, Ok(()), "call {i}");
    }
}
