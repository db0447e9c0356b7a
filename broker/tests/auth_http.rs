//! The HTTP callout: a service on loopback answers allow / deny / ignore by
//! user name; failures follow `on_error`; answers are cached.
#![allow(clippy::unwrap_used)]

mod auth_common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use auth_common::{chain, connack, start, tcp, verdict};
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
