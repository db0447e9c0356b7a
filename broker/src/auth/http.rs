//! An HTTP service decides (EMQX's convention): POST the client's identity
//! as JSON, read `{"result": "allow" | "deny" | "ignore"}` from a 200 answer.
//! One HTTP/1.1 connection per call, opened through the network seam; answers
//! are cached (`cache`).

mod cache;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use mqtt_codec::ReasonCode;
use parking_lot::Mutex;
use rand::RngCore;
use tokio::sync::Semaphore;

use self::cache::Cache;
use super::config::{HttpConfig, OnError};
use super::password::hmac_sha256;
use super::{Backend, Credentials, Decision, refusal};
use crate::seam::{Clock, Network};

/// Largest answer read from the service: its answer is a few bytes of JSON.
const ANSWER_LEN_MAX: usize = 64 * 1024;
/// Calls in flight at once, at most: a burst of CONNECTs waits here (within
/// its timeout) instead of opening a connection each to the service.
const CALLS_CONCURRENT_MAX: usize = 64;

/// Where the service listens: `http://host[:port]/path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`, for name resolution.
    pub host_port: String,
    /// The Host header.
    pub authority: String,
    pub path: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Self, String> {
        if url.starts_with("https://") {
            return Err("https is not supported yet; use http:// (on a trusted network or loopback)".into());
        }
        let rest = url.strip_prefix("http://").ok_or("expected http://host[:port]/path")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err("expected a host (and no user info) after http://".into());
        }
        if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err("the path contains white space or control characters".into());
        }
        let has_port = match authority.rfind(']') {
            Some(bracket) => authority[bracket..].contains(':'),
            None => authority.contains(':'),
        };
        let host_port = if has_port { authority.to_owned() } else { format!("{authority}:80") };
        let port = host_port.rsplit_once(':').map(|(_, p)| p).unwrap_or_default();
        if port.parse::<u16>().is_err() {
            return Err(format!("port {port:?} is not a number from 0 to 65535"));
        }
        Ok(Self { host_port, authority: authority.to_owned(), path: path.to_owned() })
    }
}

pub struct HttpBackend {
    endpoint: Endpoint,
    config: HttpConfig,
    network: Arc<dyn Network>,
    clock: Clock,
    cache: Mutex<Cache>,
    calls: Semaphore,
    /// Keys the cache's request hashes, so that they cannot be matched
    /// against guessed passwords offline.
    cache_key: [u8; 32],
}

impl std::fmt::Debug for HttpBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpBackend").field("endpoint", &self.endpoint).finish_non_exhaustive()
    }
}

impl HttpBackend {
    pub fn new(
        config: &HttpConfig,
        network: Arc<dyn Network>,
        clock: Clock,
        rng: &mut impl RngCore,
    ) -> Result<Self, String> {
        let endpoint = Endpoint::parse(&config.url).map_err(|e| format!("[auth.http] url = {:?}: {e}", config.url))?;
        let mut cache_key = [0u8; 32];
        rng.fill_bytes(&mut cache_key);
        let cache = Cache::new(config.cache_ttl_secs.saturating_mul(1000), config.cache_size.get());
        let calls = Semaphore::new(CALLS_CONCURRENT_MAX);
        Ok(Self { endpoint, config: config.clone(), network, clock, cache: Mutex::new(cache), calls, cache_key })
    }

    async fn decide(&self, credentials: Credentials<'_>) -> Decision {
        let connect = credentials.connect;
        let body = serde_json::json!({
            "clientid": &*connect.client_id,
            "username": connect.username.as_deref(),
            // MQTT passwords are binary; services expect a string, as EMQX sends it.
            "password": connect.password.as_deref().map(String::from_utf8_lossy),
            "peerhost": credentials.peer.ip().to_string(),
            "listener": credentials.transport.listener,
        })
        .to_string();
        let key = hmac_sha256(&self.cache_key, body.as_bytes());
        let cached = self.cache.lock().get(&key, self.clock.now());
        if let Some(decision) = cached {
            return decision;
        }
        let timeout = Duration::from_millis(self.config.timeout_ms.get());
        let bounded = async {
            let _permit = self.calls.acquire().await.map_err(|e| e.to_string())?;
            self.call(body).await
        };
        let answer = match tokio::time::timeout(timeout, bounded).await {
            Ok(answer) => answer,
            Err(_) => Err(format!("no answer within {} ms", self.config.timeout_ms)),
        };
        let decision = match answer {
            Ok(Answer::Allow) => Decision::Allow,
            Ok(Answer::Deny) => Decision::Deny(refusal(connect)),
            Ok(Answer::Ignore) => Decision::Ignore,
            Err(error) => {
                tracing::warn!(url = %self.config.url, client_id = %connect.client_id, %error, "HTTP authentication failed");
                return match self.config.on_error {
                    OnError::Deny => Decision::Deny(ReasonCode::SERVER_UNAVAILABLE),
                    OnError::Ignore => Decision::Ignore,
                };
            }
        };
        self.cache.lock().insert(key, decision, self.clock.now());
        decision
    }

    /// One POST over a fresh connection.
    async fn call(&self, body: String) -> Result<Answer, String> {
        let addrs = self.network.resolve(&self.endpoint.host_port).await.map_err(|e| format!("resolve: {e}"))?;
        let addr = addrs.first().ok_or("the host name has no address")?;
        let stream = self.network.connect(*addr).await.map_err(|e| format!("connect to {addr}: {e}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| format!("HTTP: {e}"))?;
        let request = Request::post(&self.endpoint.path)
            .header(HOST, &self.endpoint.authority)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("request: {e}"))?;
        let exchange = async {
            let response = sender.send_request(request).await.map_err(|e| format!("HTTP: {e}"))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), ANSWER_LEN_MAX)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            Ok::<_, String>((status, body))
        };
        // The connection future drives the socket; it ends first only if the service hangs up early.
        let (status, body) = tokio::select! {
            result = exchange => result?,
            ended = connection => return Err(match ended {
                Ok(()) => "the service closed the connection without an answer".into(),
                Err(e) => format!("HTTP: {e}"),
            }),
        };
        if status != StatusCode::OK {
            return Err(format!("HTTP status {status}"));
        }
        Answer::parse(&body)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Allow,
    Deny,
    Ignore,
}

impl Answer {
    fn parse(body: &[u8]) -> Result<Self, String> {
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("answer is not JSON: {e}"))?;
        match value.get("result").and_then(serde_json::Value::as_str) {
            Some("allow") => Ok(Self::Allow),
            Some("deny") => Ok(Self::Deny),
            Some("ignore") => Ok(Self::Ignore),
            _ => Err("answer has no \"result\" of \"allow\", \"deny\" or \"ignore\"".into()),
        }
    }
}

impl Backend for HttpBackend {
    fn name(&self) -> &'static str {
        "http"
    }

    fn check<'a>(&'a self, credentials: Credentials<'a>) -> Pin<Box<dyn Future<Output = Decision> + Send + 'a>> {
        Box::pin(self.decide(credentials))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_into_endpoints() {
        let e = Endpoint::parse("http://auth.local:8080/mqtt/auth").expect("url");
        assert_eq!(
            (e.host_port.as_str(), e.authority.as_str(), e.path.as_str()),
            ("auth.local:8080", "auth.local:8080", "/mqtt/auth")
        );
        let e = Endpoint::parse("http://127.0.0.1").expect("url");
        assert_eq!((e.host_port.as_str(), e.path.as_str()), ("127.0.0.1:80", "/"));
        let e = Endpoint::parse("http://[::1]/a").expect("url");
        assert_eq!(e.host_port, "[::1]:80");
        let e = Endpoint::parse("http://[::1]:81/a").expect("url");
        assert_eq!(e.host_port, "[::1]:81");
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, says) in [
            ("https://a/b", "https"),
            ("ftp://a", "http://"),
            ("http:///a", "host"),
            ("http://u@a/", "user info"),
            ("http://a:99999/", "port"),
            ("http://a/b c", "white space"),
        ] {
            let error = Endpoint::parse(url).expect_err(url);
            assert!(error.contains(says), "{url}: {error}");
        }
    }

    #[test]
    fn answers_follow_emqx() {
        assert_eq!(Answer::parse(br#"{"result":"allow","is_superuser":false}"#), Ok(Answer::Allow));
        assert_eq!(Answer::parse(br#"{"result":"deny"}"#), Ok(Answer::Deny));
        assert_eq!(Answer::parse(br#"{"result":"ignore"}"#), Ok(Answer::Ignore));
        assert!(Answer::parse(br#"{"result":"maybe"}"#).is_err());
        assert!(Answer::parse(b"allow").is_err());
    }
}
