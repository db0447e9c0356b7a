//! An HTTP service decides (EMQX's convention): POST the client's identity
//! as JSON, read `{"result": "allow" | "deny" | "ignore"}` from a 200 answer.
//! One HTTP/1.1 connection per call, opened through the network seam (TLS on
//! top of it for `https://`, `tls`); answers are cached (`cache`).

mod cache;
mod endpoint;
mod tls;

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
use parking_lot::{Mutex, RwLock};
use rand::RngCore;
use tokio::sync::Semaphore;

use self::cache::Cache;
pub use self::endpoint::Endpoint;
use self::tls::Tls;
use super::config::{HttpConfig, OnError};
use super::password::hmac_sha256;
use super::{Backend, Credentials, Decision, refusal};
use crate::seam::{Clock, Network, Stream};

/// Largest answer read from the service: its answer is a few bytes of JSON.
const ANSWER_LEN_MAX: usize = 64 * 1024;
/// Calls in flight at once, at most: a burst of CONNECTs waits here (within
/// its timeout) instead of opening a connection each to the service.
const CALLS_CONCURRENT_MAX: usize = 64;

pub struct HttpBackend {
    endpoint: Endpoint,
    config: HttpConfig,
    network: Arc<dyn Network>,
    clock: Clock,
    /// For `https://`; replaced whole when a reload rereads `ca_file`.
    tls: RwLock<Option<Tls>>,
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
    /// Checks the URL and reads `ca_file`; the error names the key.
    pub fn new(
        config: &HttpConfig,
        network: Arc<dyn Network>,
        clock: Clock,
        rng: &mut impl RngCore,
    ) -> Result<Self, String> {
        let endpoint = Endpoint::parse(&config.url).map_err(|e| format!("[auth.http] url = {:?}: {e}", config.url))?;
        let tls = make_tls(&endpoint, config, clock)?;
        let mut cache_key = [0u8; 32];
        rng.fill_bytes(&mut cache_key);
        let cache = Cache::new(config.cache_ttl_secs.saturating_mul(1000), config.cache_size.get());
        let calls = Semaphore::new(CALLS_CONCURRENT_MAX);
        Ok(Self {
            endpoint,
            config: config.clone(),
            network,
            clock,
            tls: RwLock::new(tls),
            cache: Mutex::new(cache),
            calls,
            cache_key,
        })
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
        let stream = self.open().await?;
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
        // The connection future drives the socket. It can end cleanly in the
        // same poll that hands over the whole answer (a service that closes
        // after answering), so the exchange is still awaited then: it either
        // has the answer or fails now that the connection is gone.
        let mut exchange = std::pin::pin!(exchange);
        let (status, body) = tokio::select! {
            result = &mut exchange => result?,
            ended = connection => match ended {
                Ok(()) => exchange.await?,
                Err(e) => return Err(format!("HTTP: {e}")),
            },
        };
        if status != StatusCode::OK {
            return Err(format!("HTTP status {status}"));
        }
        Answer::parse(&body)
    }

    /// A connection to the service (TLS established for https): each address
    /// the name resolves to in turn, so that one dead address is not fatal.
    async fn open(&self) -> Result<Box<dyn Stream>, String> {
        let addrs = self.network.resolve(&self.endpoint.host_port).await.map_err(|e| format!("resolve: {e}"))?;
        let mut failure = String::from("the host name has no address");
        for addr in addrs {
            match self.network.connect(addr).await {
                Ok(stream) => {
                    let tls = self.tls.read().clone();
                    return match tls {
                        Some(tls) => tls.connect(stream).await.map_err(|e| format!("TLS with {addr}: {e}")),
                        None => Ok(stream),
                    };
                }
                Err(e) => failure = format!("connect to {addr}: {e}"),
            }
        }
        Err(failure)
    }
}

/// The TLS client of an https endpoint, None for http.
fn make_tls(endpoint: &Endpoint, config: &HttpConfig, clock: Clock) -> Result<Option<Tls>, String> {
    match &endpoint.tls_name {
        Some(name) => Tls::new(name.clone(), config.ca_file.as_deref(), clock).map(Some),
        None if config.ca_file.is_some() => Err("[auth.http] ca_file is for https:// URLs".into()),
        None => Ok(None),
    }
}

/// What `broker --check-config` reads of `[auth.http]`: the URL and `ca_file`.
pub fn check_files(config: &HttpConfig) -> Result<(), String> {
    let endpoint = Endpoint::parse(&config.url).map_err(|e| format!("[auth.http] url = {:?}: {e}", config.url))?;
    make_tls(&endpoint, config, Clock::new()).map(drop)
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

    /// Rereads `ca_file` (a rotated CA); on error the CA in use stays.
    fn reload(&self) -> Result<(), String> {
        let tls = make_tls(&self.endpoint, &self.config, self.clock)?;
        *self.tls.write() = tls;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_follow_emqx() {
        assert_eq!(Answer::parse(br#"{"result":"allow","is_superuser":false}"#), Ok(Answer::Allow));
        assert_eq!(Answer::parse(br#"{"result":"deny"}"#), Ok(Answer::Deny));
        assert_eq!(Answer::parse(br#"{"result":"ignore"}"#), Ok(Answer::Ignore));
        assert!(Answer::parse(br#"{"result":"maybe"}"#).is_err());
        assert!(Answer::parse(b"allow").is_err());
    }
}
