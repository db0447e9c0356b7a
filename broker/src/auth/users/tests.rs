use super::*;
use crate::auth::TransportInfo;
use bytes::Bytes;
use mqtt_codec::{Connect, ConnectProperties, ProtocolVersion};

/// sha256("s" ++ "secret"): cheap to verify, so the tests stay fast.
fn db(name: &str) -> Arc<UserDb> {
    use sha2::{Digest, Sha256};
    let hex: String = Sha256::digest(b"ssecret").iter().map(|b| format!("{b:02x}")).collect();
    let path = std::env::temp_dir().join(format!("users-backend-{}-{name}", std::process::id()));
    std::fs::write(&path, format!("alice:$sha256$s${hex}\n")).expect("write");
    let db = UserDb::load(&path).expect("users");
    let _ = std::fs::remove_file(&path);
    Arc::new(db)
}

async fn check(backend: &UsersBackend, user: Option<&str>, password: Option<&str>) -> Decision {
    let connect = Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 30,
        client_id: "c".into(),
        will: None,
        username: user.map(Into::into),
        password: password.map(|p| Bytes::copy_from_slice(p.as_bytes())),
        properties: ConnectProperties::default(),
    };
    let transport = TransportInfo::listener("tcp:default");
    let peer = "127.0.0.1:1".parse().expect("address");
    backend.check(Credentials { connect: &connect, peer, transport: &transport }).await
}

#[tokio::test]
async fn an_unknown_user_costs_a_verification_like_a_known_one() {
    let backend = UsersBackend::new(db("unknown"));
    assert_eq!(check(&backend, Some("nobody"), Some("secret")).await, Decision::Ignore);
    assert_eq!(backend.verifications(), 1, "the unknown user's password was verified against the dummy");
    assert_eq!(
        check(&backend, Some("alice"), Some("wrong")).await,
        Decision::Deny(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
    );
    assert_eq!(check(&backend, Some("alice"), Some("secret")).await, Decision::Allow);
    assert_eq!(backend.verifications(), 3);
}

#[tokio::test]
async fn without_a_password_nothing_is_verified() {
    let backend = UsersBackend::new(db("nopassword"));
    assert_eq!(check(&backend, Some("nobody"), None).await, Decision::Ignore);
    assert_eq!(check(&backend, Some("alice"), None).await, Decision::Deny(ReasonCode::BAD_USER_NAME_OR_PASSWORD));
    assert_eq!(check(&backend, None, Some("secret")).await, Decision::Ignore);
    assert_eq!(backend.verifications(), 0);
}

#[test]
fn the_dummy_is_one_real_argon2id_hash_made_once() {
    let dummy = password::dummy_hash().expect("argon2 hashes");
    assert_eq!(format!("{dummy:?}"), "argon2id");
    assert!(std::ptr::eq(dummy, password::dummy_hash().expect("argon2 hashes")), "made once");
    assert!(dummy.verify(b"no such user"), "a real hash: verifying it does the full work");
}
