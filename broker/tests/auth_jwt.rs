//! JWT as the CONNECT password: HS256 and RS256 signatures, `exp` / `nbf`
//! against the broker's clock, configured claims against the CONNECT.
#![allow(clippy::unwrap_used)]

mod auth_common;

use std::time::{SystemTime, UNIX_EPOCH};

use auth_common::{TestDir, chain, connack, start, tcp, temp_dir, verdict};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mqtt_codec::{ProtocolVersion, ReasonCode};
use serde_json::json;

/// A throw-away RSA key pair for these tests only.
const RSA_PRIVATE: &str = include_str!("auth_data/jwt-rsa-private.pem");
const RSA_PUBLIC: &str = include_str!("auth_data/jwt-rsa-public.pem");
const SECRET: &str = "jwt-test-secret";
const BAD: Result<(), ReasonCode> = Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD);

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

fn hs256(claims: &serde_json::Value, secret: &str) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
}

fn rs256(claims: &serde_json::Value) -> String {
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), claims, &key).unwrap()
}

fn hs256_config(extra: &str) -> String {
    format!("[auth]\nallow_anonymous = false\nchain = [\"jwt\"]\n[auth.jwt]\nsecret = \"{SECRET}\"\n{extra}")
}

#[tokio::test]
async fn hs256_tokens_are_checked_for_signature_and_time() {
    let auth = chain(&hs256_config(""));
    let check = |token: String| {
        let auth = auth.clone();
        async move { verdict(&*auth, "c", Some("u"), Some(&token), &tcp()).await }
    };
    assert_eq!(check(hs256(&json!({ "exp": now() + 60 }), SECRET)).await, Ok(()));
    assert_eq!(check(hs256(&json!({ "exp": now() - 1 }), SECRET)).await, BAD, "expired");
    assert_eq!(check(hs256(&json!({ "exp": now() + 60 }), "another secret")).await, BAD, "bad signature");
    assert_eq!(check(hs256(&json!({ "sub": "u" }), SECRET)).await, BAD, "no exp while require_exp");
    assert_eq!(check(hs256(&json!({ "exp": now() + 60, "nbf": now() + 60 }), SECRET)).await, BAD, "not yet valid");
    assert_eq!(check(hs256(&json!({ "exp": now() + 60, "nbf": now() - 1 }), SECRET)).await, Ok(()));
    assert_eq!(check(rs256(&json!({ "exp": now() + 60 }))).await, BAD, "another algorithm");
}

#[tokio::test]
async fn passwords_that_are_not_tokens_are_left_to_the_next_backend() {
    // x509 after jwt admits anyone with a certificate: it is reached only when jwt ignores.
    let auth = chain(&format!(
        "[auth]\nallow_anonymous = false\nchain = [\"jwt\", \"x509\"]\n[auth.jwt]\nsecret = \"{SECRET}\"\n[auth.x509]\n"
    ));
    let certified = broker::auth::TransportInfo {
        listener: "tls:default".into(),
        certificate: Some(broker::auth::CertIdentity { common_name: Some("d".into()), ..Default::default() }),
    };
    assert_eq!(verdict(&*auth, "c", Some("u"), None, &certified).await, Ok(()), "no password");
    assert_eq!(verdict(&*auth, "c", Some("u"), Some("plain password"), &certified).await, Ok(()), "not a JWT");
    let expired = hs256(&json!({ "exp": now() - 1 }), SECRET);
    assert_eq!(verdict(&*auth, "c", Some("u"), Some(&expired), &certified).await, BAD, "a JWT that fails is refused");
}

#[tokio::test]
async fn configured_claims_must_equal_the_connect() {
    let auth = chain(&hs256_config("username_claim = \"username\"\nclientid_claim = \"clientid\"\n"));
    let token = hs256(&json!({ "exp": now() + 60, "username": "alice", "clientid": "sensor-1" }), SECRET);
    assert_eq!(verdict(&*auth, "sensor-1", Some("alice"), Some(&token), &tcp()).await, Ok(()));
    assert_eq!(verdict(&*auth, "sensor-2", Some("alice"), Some(&token), &tcp()).await, BAD, "other client id");
    assert_eq!(verdict(&*auth, "sensor-1", Some("bob"), Some(&token), &tcp()).await, BAD, "other user name");
    assert_eq!(verdict(&*auth, "sensor-1", None, Some(&token), &tcp()).await, BAD, "no user name");
    let missing = hs256(&json!({ "exp": now() + 60, "username": "alice" }), SECRET);
    assert_eq!(verdict(&*auth, "sensor-1", Some("alice"), Some(&missing), &tcp()).await, BAD, "claim missing");
}

#[tokio::test]
async fn leeway_and_audience_are_honoured() {
    let auth = chain(&hs256_config("leeway_secs = 30\naudience = \"mqtt\"\n"));
    let check = |claims: serde_json::Value| {
        let auth = auth.clone();
        async move { verdict(&*auth, "c", Some("u"), Some(&hs256(&claims, SECRET)), &tcp()).await }
    };
    assert_eq!(check(json!({ "exp": now() - 5, "aud": "mqtt" })).await, Ok(()), "within the leeway");
    assert_eq!(check(json!({ "exp": now() - 60, "aud": "mqtt" })).await, BAD, "beyond the leeway");
    assert_eq!(check(json!({ "exp": now() + 60, "aud": "web" })).await, BAD, "another audience");
    assert_eq!(check(json!({ "exp": now() + 60, "aud": ["web", "mqtt"] })).await, Ok(()), "one of its audiences");
}

/// Regression: with `audience` set, a token without `aud` (or with an `aud`
/// that is not a string or list of strings) was admitted.
#[tokio::test]
async fn a_configured_audience_is_required() {
    let auth = chain(&hs256_config("audience = \"mqtt\"\n"));
    let check = |claims: serde_json::Value| {
        let auth = auth.clone();
        async move { verdict(&*auth, "c", Some("u"), Some(&hs256(&claims, SECRET)), &tcp()).await }
    };
    assert_eq!(check(json!({ "exp": now() + 60 })).await, BAD, "no aud");
    assert_eq!(check(json!({ "exp": now() + 60, "aud": 7 })).await, BAD, "aud not a string");
    assert_eq!(check(json!({ "exp": now() + 60, "aud": "mqtt" })).await, Ok(()));
}

#[tokio::test]
async fn an_over_long_token_is_refused_and_an_over_long_other_password_ignored() {
    // x509 after jwt admits anyone with a certificate: it is reached only when jwt ignores.
    let auth = chain(&format!(
        "[auth]\nallow_anonymous = false\nchain = [\"jwt\", \"x509\"]\n[auth.jwt]\nsecret = \"{SECRET}\"\n[auth.x509]\n"
    ));
    let certified = broker::auth::TransportInfo {
        listener: "tls:default".into(),
        certificate: Some(broker::auth::CertIdentity::default()),
    };
    let long = hs256(&json!({ "exp": now() + 60, "pad": "x".repeat(9000) }), SECRET);
    assert_eq!(verdict(&*auth, "c", Some("u"), Some(&long), &certified).await, BAD, "a token over 8 KiB");
    let short = hs256(&json!({ "exp": now() + 60, "pad": "x".repeat(6000) }), SECRET);
    assert_eq!(verdict(&*auth, "c", Some("u"), Some(&short), &tcp()).await, Ok(()), "a token under 8 KiB");
    let other = "p".repeat(9000);
    assert_eq!(verdict(&*auth, "c", Some("u"), Some(&other), &certified).await, Ok(()), "not a token: x509 decides");
}

/// The key file is in the directory, which must live as long as the configuration is used.
fn rs256_config(name: &str) -> (TestDir, String) {
    let dir = temp_dir(name);
    let key = dir.join("jwt.pub.pem");
    std::fs::write(&key, RSA_PUBLIC).unwrap();
    let toml = format!(
        "[auth]\nallow_anonymous = false\nchain = [\"jwt\"]\n[auth.jwt]\nalgorithm = \"RS256\"\npublic_key_file = {:?}\n",
        key.display().to_string()
    );
    (dir, toml)
}

#[tokio::test]
async fn rs256_tokens_are_checked_against_the_public_key() {
    let (_dir, toml) = rs256_config("rs256");
    let auth = chain(&toml);
    let good = rs256(&json!({ "exp": now() + 60, "username": "alice" }));
    assert_eq!(verdict(&*auth, "c", Some("alice"), Some(&good), &tcp()).await, Ok(()));
    assert_eq!(verdict(&*auth, "c", Some("alice"), Some(&rs256(&json!({ "exp": now() - 1 }))), &tcp()).await, BAD);
    // The same signature over other claims.
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[1] = URL_SAFE_NO_PAD.encode(json!({ "exp": now() + 60, "username": "mallory" }).to_string());
    assert_eq!(verdict(&*auth, "c", Some("mallory"), Some(&parts.join(".")), &tcp()).await, BAD, "tampered");
    assert_eq!(verdict(&*auth, "c", Some("a"), Some(&hs256(&json!({ "exp": now() + 60 }), SECRET)), &tcp()).await, BAD);
}

#[tokio::test]
async fn a_bad_key_file_stops_start_up_naming_the_file() {
    let dir = temp_dir("badkey");
    let key = dir.join("not-a-key.pem");
    std::fs::write(&key, "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n").unwrap();
    let toml = format!(
        "[auth]\nchain = [\"jwt\"]\n[auth.jwt]\nalgorithm = \"RS256\"\npublic_key_file = {:?}\n",
        key.display().to_string()
    );
    let error = broker::Server::start(auth_common::config(&toml), broker::seam::Runtime::tokio()).await.unwrap_err();
    assert!(error.to_string().contains("not-a-key.pem"), "{error}");
}

#[tokio::test]
async fn a_server_admits_a_client_with_a_token() {
    let (_dir, toml) = rs256_config("server");
    let server = start(&toml).await;
    let token = rs256(&json!({ "exp": now() + 60 }));
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        assert_eq!(
            connack(server.local_addr(), version, "c", Some("u"), Some(&token)).await,
            Some(ReasonCode::SUCCESS)
        );
        assert_eq!(
            connack(server.local_addr(), version, "c", Some("u"), Some("not a token")).await,
            Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
        );
    }
    server.shutdown().await;
}
