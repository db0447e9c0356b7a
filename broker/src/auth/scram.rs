//! SCRAM-SHA-256 (RFC 5802, RFC 7677) as an MQTT 5 enhanced-authentication
//! method, the server side, sans-IO:
//!
//! 1. CONNECT's Authentication Data: client-first `n,,n=user,r=cnonce`.
//! 2. AUTH 0x18 to the client: server-first `r=cnonce+snonce,s=salt,i=iterations`.
//! 3. AUTH 0x18 from the client: client-final `c=biws,r=nonce,p=proof`.
//! 4. CONNACK's Authentication Data: server-final `v=signature`.
//!
//! Channel binding is not offered (`n` and `y` GS2 flags only). A user the
//! file does not know (or one without a SCRAM entry) gets made-up keys
//! derived from its name and a per-process secret: the same salt at every
//! attempt, the default iteration count, and a proof check that does the
//! same work as a real one before it fails, so that neither the messages nor
//! their timing reveal which users exist.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use mqtt_codec::ReasonCode;
use parking_lot::Mutex;
use rand::RngCore;
use rand::rngs::StdRng;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::password::{SALT_LEN, SCRAM_ITERATIONS, ScramKeys, hmac_sha256};
use super::users::UserDb;
use super::{AuthExchange, AuthStep, ReAuthenticator};

/// The Authentication Method name.
pub const METHOD: &str = "SCRAM-SHA-256";
/// Bytes of randomness in the server nonce (base64-encoded on the wire).
const NONCE_LEN: usize = 18;
/// Longest client message accepted: user name plus nonce plus proof fit easily.
const MESSAGE_LEN_MAX: usize = 4096;

/// Starts SCRAM exchanges against the users file.
pub struct Scram {
    users: Arc<UserDb>,
    rng: Mutex<StdRng>,
    /// Derives the made-up salts of unknown users; secret, fixed per process.
    mock_key: [u8; 32],
}

impl std::fmt::Debug for Scram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scram").finish_non_exhaustive()
    }
}

impl Scram {
    pub fn new(users: Arc<UserDb>, mut rng: StdRng) -> Self {
        let mut mock_key = [0u8; 32];
        rng.fill_bytes(&mut mock_key);
        Self { users, rng: Mutex::new(rng), mock_key }
    }

    /// A new exchange; `connect_username` is the CONNECT's user name, which
    /// must match the SCRAM user when present.
    pub fn exchange(&self, connect_username: Option<&str>) -> ScramExchange {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng.lock().fill_bytes(&mut nonce);
        ScramExchange {
            users: Arc::clone(&self.users),
            mock_key: self.mock_key,
            server_nonce: BASE64.encode(nonce),
            connect_username: connect_username.map(str::to_owned),
            state: State::Start,
            user: None,
        }
    }
}

impl ReAuthenticator for Scram {
    /// Re-authentication must prove the same user the connection authenticated as.
    fn start(&self, method: &str, user: Option<&str>) -> Option<Box<dyn AuthExchange>> {
        (method == METHOD).then(|| Box::new(self.exchange(user)) as Box<dyn AuthExchange>)
    }
}

enum State {
    Start,
    /// Server-first sent. Boxed: most of an exchange's size, needed for one round.
    Challenged(Box<Challenge>),
    Done,
}

struct Challenge {
    client_first_bare: String,
    server_first: String,
    nonce: String,
    gs2_header: String,
    /// Made up for an unknown user (see `known`).
    keys: ScramKeys,
    /// False for a user without a SCRAM entry: no proof is accepted.
    known: bool,
    user: String,
}

/// One client's SCRAM exchange.
pub struct ScramExchange {
    users: Arc<UserDb>,
    mock_key: [u8; 32],
    server_nonce: String,
    connect_username: Option<String>,
    state: State,
    /// Set once the proof checked out.
    user: Option<String>,
}

impl std::fmt::Debug for ScramExchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramExchange").finish_non_exhaustive()
    }
}

const REFUSED: AuthStep = AuthStep::Failure(ReasonCode::NOT_AUTHORIZED);
const MALFORMED: AuthStep = AuthStep::Failure(ReasonCode::BAD_AUTHENTICATION_METHOD);

impl AuthExchange for ScramExchange {
    fn step(&mut self, data: &[u8]) -> AuthStep {
        if data.len() > MESSAGE_LEN_MAX {
            return MALFORMED;
        }
        let Ok(message) = std::str::from_utf8(data) else { return MALFORMED };
        match std::mem::replace(&mut self.state, State::Done) {
            State::Start => self.client_first(message),
            State::Challenged(challenge) => {
                let Challenge { client_first_bare, server_first, nonce, gs2_header, keys, known, user } = *challenge;
                let transcript = Transcript {
                    client_first_bare: &client_first_bare,
                    server_first: &server_first,
                    nonce: &nonce,
                    gs2_header: &gs2_header,
                };
                let step = client_final(message, &transcript, &keys, known);
                if matches!(step, AuthStep::Success(_)) {
                    self.user = Some(user);
                }
                step
            }
            State::Done => REFUSED,
        }
    }

    fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }
}

impl ScramExchange {
    fn client_first(&mut self, message: &str) -> AuthStep {
        // gs2-header: "n" or "y" (no channel binding), an optional authzid we do not support, then the bare message.
        let mut parts = message.splitn(3, ',');
        let (Some(flag), Some(authzid), Some(bare)) = (parts.next(), parts.next(), parts.next()) else {
            return MALFORMED;
        };
        if !matches!(flag, "n" | "y") || !authzid.is_empty() {
            return MALFORMED;
        }
        let mut attributes = bare.split(',');
        let user = match attributes.next().and_then(|a| a.strip_prefix("n=")).and_then(decode_saslname) {
            Some(user) if !user.is_empty() => user,
            _ => return MALFORMED,
        };
        let client_nonce = match attributes.next().and_then(|a| a.strip_prefix("r=")) {
            Some(nonce) if !nonce.is_empty() && nonce.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b',') => nonce,
            _ => return MALFORMED,
        };
        // A mandatory extension ("m=") we do not know must fail the exchange (RFC 5802 section 5.1).
        if attributes.any(|a| a.starts_with("m=")) {
            return MALFORMED;
        }
        if self.connect_username.as_deref().is_some_and(|u| u != user) {
            return REFUSED;
        }
        let (keys, known) = match self.users.get(&user).and_then(|hash| hash.scram().cloned()) {
            Some(keys) => (keys, true),
            None => (mock_keys(&self.mock_key, &user), false),
        };
        let nonce = format!("{client_nonce}{}", self.server_nonce);
        let server_first = format!("r={nonce},s={},i={}", BASE64.encode(&keys.salt), keys.iterations);
        self.state = State::Challenged(Box::new(Challenge {
            client_first_bare: bare.to_owned(),
            server_first: server_first.clone(),
            nonce,
            gs2_header: format!("{flag},,"),
            keys,
            known,
            user,
        }));
        AuthStep::Continue(Bytes::from(server_first))
    }
}

/// The messages of one exchange that the proof signs.
struct Transcript<'a> {
    client_first_bare: &'a str,
    server_first: &'a str,
    nonce: &'a str,
    gs2_header: &'a str,
}

fn client_final(message: &str, transcript: &Transcript<'_>, keys: &ScramKeys, known: bool) -> AuthStep {
    let Some((without_proof, proof)) = message.rsplit_once(",p=") else { return MALFORMED };
    let mut attributes = without_proof.split(',');
    let binding = attributes.next().and_then(|a| a.strip_prefix("c="));
    let their_nonce = attributes.next().and_then(|a| a.strip_prefix("r="));
    if binding != Some(BASE64.encode(transcript.gs2_header).as_str()) || their_nonce != Some(transcript.nonce) {
        return MALFORMED;
    }
    let Ok(proof) = BASE64.decode(proof) else { return MALFORMED };
    let Ok(proof) = <[u8; 32]>::try_from(proof) else { return MALFORMED };
    let auth_message = format!("{},{},{without_proof}", transcript.client_first_bare, transcript.server_first);
    let client_signature = hmac_sha256(&keys.stored_key, auth_message.as_bytes());
    let mut client_key = [0u8; 32];
    for (i, byte) in client_key.iter_mut().enumerate() {
        *byte = proof[i] ^ client_signature[i];
    }
    let stored_key: [u8; 32] = Sha256::digest(client_key).into();
    // Made-up keys go through the same work and fail here, not earlier.
    if !bool::from(stored_key[..].ct_eq(&keys.stored_key[..]) & Choice::from(u8::from(known))) {
        return REFUSED;
    }
    let server_signature = hmac_sha256(&keys.server_key, auth_message.as_bytes());
    AuthStep::Success(Some(Bytes::from(format!("v={}", BASE64.encode(server_signature)))))
}

/// The keys shown to a user without a SCRAM entry: stable per user name (a
/// second attempt sees the same salt, as it would for a real user), shaped
/// like the ones `broker ctl users` makes, and unusable (no password derives them).
fn mock_keys(secret: &[u8; 32], user: &str) -> ScramKeys {
    let derive = |label: &[u8]| hmac_sha256(secret, &[label, user.as_bytes()].concat());
    ScramKeys {
        iterations: SCRAM_ITERATIONS,
        salt: derive(b"salt\0")[..SALT_LEN].to_vec(),
        stored_key: derive(b"stored key\0"),
        server_key: derive(b"server key\0"),
    }
}

/// A SASL name with `=2C` and `=3D` decoded; None if another `=` escape appears.
fn decode_saslname(name: &str) -> Option<String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3)? {
            "=2C" => out.push(','),
            "=3D" => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests;
