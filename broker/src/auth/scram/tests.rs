use super::*;
use crate::auth::password::format_scram;
use rand::SeedableRng;

/// RFC 7677 section 3: user "user", password "pencil".
const SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";
const CLIENT_FIRST: &str = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const SERVER_NONCE: &str = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const SERVER_FIRST: &str = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const CLIENT_FINAL: &str =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

fn users(name: &str, password: &[u8]) -> Arc<UserDb> {
    let salt = BASE64.decode(SALT).expect("salt");
    let entry = format_scram(&ScramKeys::derive(password, &salt, 4096));
    let path = std::env::temp_dir().join(format!("scram-users-{}-{name}", std::process::id()));
    std::fs::write(
        &path,
        format!("user:{entry}\nplain:$sha256$s$0000000000000000000000000000000000000000000000000000000000000000\n"),
    )
    .expect("write");
    let db = UserDb::load(&path).expect("users");
    let _ = std::fs::remove_file(&path);
    Arc::new(db)
}

fn exchange(db: Arc<UserDb>, connect_username: Option<&str>) -> ScramExchange {
    let mut exchange = Scram::new(db, StdRng::seed_from_u64(1)).exchange(connect_username);
    exchange.server_nonce = SERVER_NONCE.to_owned();
    exchange
}

fn text(step: &AuthStep) -> &str {
    match step {
        AuthStep::Continue(data) | AuthStep::Success(Some(data)) => std::str::from_utf8(data).expect("utf-8"),
        other => panic!("expected data, got {other:?}"),
    }
}

#[test]
fn the_rfc_7677_exchange_succeeds_with_the_rfc_messages() {
    let mut scram = exchange(users("rfc", b"pencil"), None);
    let first = scram.step(CLIENT_FIRST.as_bytes());
    assert_eq!(text(&first), SERVER_FIRST);
    let last = scram.step(CLIENT_FINAL.as_bytes());
    assert!(matches!(last, AuthStep::Success(_)), "{last:?}");
    assert_eq!(text(&last), SERVER_FINAL);
    assert_eq!(scram.user(), Some("user"));
    assert_eq!(scram.step(b"again"), REFUSED, "a finished exchange takes no more steps");
}

#[test]
fn a_wrong_password_fails_at_the_proof() {
    let mut scram = exchange(users("wrong", b"not pencil"), None);
    assert_eq!(text(&scram.step(CLIENT_FIRST.as_bytes())), SERVER_FIRST);
    assert_eq!(scram.step(CLIENT_FINAL.as_bytes()), REFUSED);
    assert_eq!(scram.user(), None);
}

/// The salt of a server-first message.
fn salt_of(server_first: &str) -> Vec<u8> {
    let salt = server_first.split(',').find_map(|a| a.strip_prefix("s=")).expect("s=");
    BASE64.decode(salt).expect("base64 salt")
}

#[test]
fn an_unknown_user_gets_a_stable_made_up_salt_and_fails() {
    let db = users("unknown", b"pencil");
    let scram = Scram::new(db, StdRng::seed_from_u64(1));
    let first = |user: &str| {
        let mut exchange = scram.exchange(None);
        exchange.server_nonce = SERVER_NONCE.to_owned();
        let step = exchange.step(format!("n,,n={user},r=abc").as_bytes());
        (text(&step).to_owned(), exchange)
    };
    let (a, mut exchange) = first("nobody");
    let (b, _) = first("nobody");
    let (other, _) = first("somebody");
    assert_eq!(a, b, "the same user always sees the same salt");
    assert_ne!(salt_of(&a), salt_of(&other), "another user sees another salt");
    // Shaped like a real user's: a salt as long as `broker ctl users` makes, the default iterations.
    assert_eq!(salt_of(&a).len(), crate::auth::password::SALT_LEN);
    assert!(a.starts_with(&format!("r=abc{SERVER_NONCE},s=")) && a.ends_with(",i=4096"), "{a}");
    let final_message = format!("c=biws,r=abc{SERVER_NONCE},p={}", BASE64.encode([0u8; 32]));
    assert_eq!(exchange.step(final_message.as_bytes()), REFUSED);
    assert_eq!(exchange.user(), None);
}

#[test]
fn made_up_salts_depend_on_the_process_secret() {
    let salt = |seed: u64| {
        let mut exchange = Scram::new(users("secret", b"pencil"), StdRng::seed_from_u64(seed)).exchange(None);
        salt_of(text(&exchange.step(b"n,,n=nobody,r=abc")))
    };
    assert_ne!(salt(1), salt(2), "another process cannot predict this one's made-up salts");
}

#[test]
fn an_unknown_user_is_refused_even_with_a_proof_for_the_made_up_keys() {
    // The made-up stored key is known to the test (not to a client): a proof whose
    // ClientKey hashes to it cannot be made, but the `known` flag refuses it regardless.
    let scram = Scram::new(users("madeup", b"pencil"), StdRng::seed_from_u64(1));
    let keys = mock_keys(&scram.mock_key, "nobody");
    let transcript = Transcript {
        client_first_bare: "n=nobody,r=abc",
        server_first: "r=abcdef,s=x,i=4096",
        nonce: "abcdef",
        gs2_header: "n,,",
    };
    let client_key = [7u8; 32];
    let stored_key: [u8; 32] = Sha256::digest(client_key).into();
    let keys = ScramKeys { stored_key, ..keys };
    let without_proof = "c=biws,r=abcdef";
    let auth_message = format!("n=nobody,r=abc,r=abcdef,s=x,i=4096,{without_proof}");
    let signature = hmac_sha256(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(signature).map(|(k, s)| k ^ s).collect();
    let message = format!("{without_proof},p={}", BASE64.encode(&proof));
    assert!(matches!(client_final(&message, &transcript, &keys, true), AuthStep::Success(_)), "a valid proof");
    assert_eq!(client_final(&message, &transcript, &keys, false), REFUSED, "but not for an unknown user");
}

#[test]
fn users_without_a_scram_entry_cannot_use_scram() {
    let mut scram = exchange(users("plain", b"pencil"), None);
    scram.step(b"n,,n=plain,r=abc");
    let final_message = format!("c=biws,r=abc{SERVER_NONCE},p={}", BASE64.encode([0u8; 32]));
    assert_eq!(scram.step(final_message.as_bytes()), REFUSED);
}

#[test]
fn the_connect_user_name_must_be_the_scram_user() {
    let mut scram = exchange(users("mismatch", b"pencil"), Some("someone-else"));
    assert_eq!(scram.step(CLIENT_FIRST.as_bytes()), REFUSED);
    let mut scram = exchange(users("match", b"pencil"), Some("user"));
    assert_eq!(text(&scram.step(CLIENT_FIRST.as_bytes())), SERVER_FIRST);
}

#[test]
fn malformed_messages_are_refused_as_a_bad_method() {
    for first in [
        "",
        "p=tls-unique,,n=user,r=abc",
        "n,a=admin,n=user,r=abc",
        "n,,r=abc",
        "n,,n=user",
        "n,,n=us=41er,r=a",
        "n,,n=user,r=a,m=ext",
    ] {
        let mut scram = exchange(users("malformed", b"pencil"), None);
        assert_eq!(scram.step(first.as_bytes()), MALFORMED, "{first:?}");
    }
    let mut scram = exchange(users("badfinal", b"pencil"), None);
    scram.step(CLIENT_FIRST.as_bytes());
    let other_nonce = CLIENT_FINAL.replace("k0,p", "k1,p");
    assert_eq!(scram.step(other_nonce.as_bytes()), MALFORMED, "the nonce must be the server's");
}

#[test]
fn sasl_names_decode_their_escapes() {
    assert_eq!(decode_saslname("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
    assert_eq!(decode_saslname("a=41"), None);
    assert_eq!(decode_saslname("a="), None);
}
