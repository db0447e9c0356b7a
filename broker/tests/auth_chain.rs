//! The chain: backends in the order listed, the first allow or deny wins,
//! all ignoring falls back to anonymous access; x509 through hand-made
//! transports (the TLS listener fills them in for real).
#![allow(clippy::unwrap_used)]

mod auth_common;

use auth_common::{TestDir, chain, connack, start, tcp, temp_dir, verdict};
use broker::auth::{CertIdentity, TransportInfo};
use jsonwebtoken::{EncodingKey, Header};
use mqtt_codec::{ProtocolVersion, ReasonCode};
use sha2::{Digest, Sha256};

const SECRET: &str = "chain-secret";

fn token(claims: serde_json::Value) -> String {
    jsonwebtoken::encode(&Header::default(), &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap()
}

fn far_future() -> u64 {
    4_000_000_000
}

/// alice's password in the users file is "a". The directory holds the users
/// file: it must live as long as the configuration is used.
fn users_and_jwt(test: &str, order: &str) -> (TestDir, String) {
    let dir = temp_dir(test);
    let digest: String = Sha256::digest(b"sa").iter().map(|b| format!("{b:02x}")).collect();
    let file = dir.join("users");
    std::fs::write(&file, format!("alice:$sha256$s${digest}\n")).unwrap();
    let toml = format!(
        "[auth]\nallow_anonymous = false\nchain = [{order}]\n[auth.users]\nfile = {:?}\n[auth.jwt]\nsecret = \"{SECRET}\"\n",
        file.display().to_string()
    );
    (dir, toml)
}

#[tokio::test]
async fn the_first_backend_that_decides_wins() {
    let (_dir, toml) = users_and_jwt("order-1", "\"users\", \"jwt\"");
    let auth = chain(&toml);
    let jwt = token(serde_json::json!({ "exp": far_future() }));
    // users knows alice: it decides, either way.
    assert_eq!(verdict(&*auth, "c", Some("alice"), Some("a"), &tcp()).await, Ok(()));
    assert_eq!(
        verdict(&*auth, "c", Some("alice"), Some(&jwt), &tcp()).await,
        Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD),
        "users denies before jwt is asked"
    );
    // users does not know bob: jwt decides.
    assert_eq!(verdict(&*auth, "c", Some("bob"), Some(&jwt), &tcp()).await, Ok(()));
    assert_eq!(verdict(&*auth, "c", Some("bob"), Some("a"), &tcp()).await, Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD));

    let (_dir, toml) = users_and_jwt("order-2", "\"jwt\", \"users\"");
    let auth = chain(&toml);
    assert_eq!(verdict(&*auth, "c", Some("alice"), Some(&jwt), &tcp()).await, Ok(()), "jwt first now admits alice");
    assert_eq!(
        verdict(&*auth, "c", Some("alice"), Some("a"), &tcp()).await,
        Ok(()),
        "not a JWT: jwt ignores, users decides"
    );
}

#[tokio::test]
async fn when_every_backend_ignores_anonymous_access_decides() {
    let closed = chain("[auth]\nallow_anonymous = false\nchain = [\"x509\"]\n[auth.x509]\n");
    assert_eq!(verdict(&*closed, "c", None, None, &tcp()).await, Err(ReasonCode::NOT_AUTHORIZED));
    let open = chain("[auth]\nallow_anonymous = true\nchain = [\"x509\"]\n[auth.x509]\n");
    assert_eq!(verdict(&*open, "c", None, None, &tcp()).await, Ok(()));
    assert_eq!(
        verdict(&*open, "c", Some("who"), Some("pw"), &tcp()).await,
        Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD),
        "credentials nobody vouches for are refused even when anonymous access is allowed"
    );
}

fn with_certificate(cn: &str) -> TransportInfo {
    TransportInfo {
        listener: "tls:default".into(),
        certificate: Some(CertIdentity {
            common_name: Some(cn.into()),
            subject: format!("CN={cn}"),
            subject_alt_names: Vec::new(),
        }),
    }
}

#[tokio::test]
async fn a_verified_certificate_admits_its_client() {
    let auth = chain("[auth]\nallow_anonymous = false\nchain = [\"x509\"]\n[auth.x509]\n");
    assert_eq!(verdict(&*auth, "c", None, None, &with_certificate("device-1")).await, Ok(()));
    assert_eq!(verdict(&*auth, "c", Some("anyone"), None, &with_certificate("device-1")).await, Ok(()));
    assert_eq!(verdict(&*auth, "c", None, None, &tcp()).await, Err(ReasonCode::NOT_AUTHORIZED), "no certificate");
}

#[tokio::test]
async fn match_username_requires_the_common_name_as_user_name() {
    let auth = chain("[auth]\nallow_anonymous = false\nchain = [\"x509\"]\n[auth.x509]\nmatch_username = true\n");
    assert_eq!(verdict(&*auth, "c", Some("device-1"), None, &with_certificate("device-1")).await, Ok(()));
    assert_eq!(
        verdict(&*auth, "c", Some("device-2"), None, &with_certificate("device-1")).await,
        Err(ReasonCode::NOT_AUTHORIZED)
    );
    assert_eq!(verdict(&*auth, "c", None, None, &with_certificate("device-1")).await, Err(ReasonCode::NOT_AUTHORIZED));
}

#[tokio::test]
async fn a_server_runs_the_configured_chain() {
    let (_dir, toml) = users_and_jwt("server", "\"users\", \"jwt\"");
    let server = start(&toml).await;
    let addr = server.local_addr();
    let jwt = token(serde_json::json!({ "exp": far_future() }));
    assert_eq!(connack(addr, ProtocolVersion::V5, "c", Some("alice"), Some("a")).await, Some(ReasonCode::SUCCESS));
    assert_eq!(connack(addr, ProtocolVersion::V5, "c", Some("bob"), Some(&jwt)).await, Some(ReasonCode::SUCCESS));
    assert_eq!(
        connack(addr, ProtocolVersion::V5, "c", Some("bob"), Some("a")).await,
        Some(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );
    assert_eq!(connack(addr, ProtocolVersion::V5, "c", None, None).await, Some(ReasonCode::NOT_AUTHORIZED));
    server.shutdown().await;
}
