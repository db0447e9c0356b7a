//! Password hashes of the users file: parsing (cheap, at load), verifying
//! (slow by design: callers run it off the async runtime) and making new ones.
//!
//! Every comparison of secret-derived bytes is constant time: the hash
//! crates compare in constant time, and our own formats use `subtle`.

use std::fmt;

use argon2::Argon2;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use pbkdf2::Pbkdf2;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Bytes of salt in hashes this broker makes (the PHC recommendation).
pub const SALT_LEN: usize = 16;
/// PBKDF2-SHA256 rounds for new pbkdf2 hashes (OWASP 2023).
const PBKDF2_ROUNDS: u32 = 600_000;
/// SCRAM iterations for new SCRAM entries: the RFC 7677 minimum. The client
/// repeats this work at every connect, so it stays modest.
pub const SCRAM_ITERATIONS: u32 = 4096;
/// Highest SCRAM iteration count accepted from a file: bounds the work one
/// login costs the broker.
const SCRAM_ITERATIONS_MAX: u32 = 10_000_000;
/// The same bound for PBKDF2 rounds (a few seconds of CPU at most).
const PBKDF2_ROUNDS_MAX: u32 = 10_000_000;
/// Highest bcrypt cost accepted: each step doubles the work; 16 is about
/// four seconds of CPU, common costs are 10 to 14.
const BCRYPT_COST_MAX: u32 = 16;
/// Highest argon2 memory cost accepted, in KiB: each verification allocates
/// it, up to `VERIFY_CONCURRENT_MAX` (users.rs) at once. The default is 19 MiB.
const ARGON2_MEMORY_KIB_MAX: u32 = 256 * 1024;
/// Highest argon2 time cost (passes over the memory) accepted.
const ARGON2_PASSES_MAX: u32 = 16;

/// What an unknown user's password is checked against, so that a login
/// attempt costs the same time whether the user exists or not: an argon2id
/// hash (the default kind) of a fixed password, made at first use. None only
/// if argon2 cannot hash at all.
pub fn dummy_hash() -> Option<&'static StoredHash> {
    static DUMMY: std::sync::LazyLock<Option<StoredHash>> = std::sync::LazyLock::new(|| {
        // The salt need not be secret or random: the answer for an unknown user is never "allow".
        let salt = SaltString::encode_b64(&[0x5a; SALT_LEN]).ok()?;
        let hash = Argon2::default().hash_password(b"no such user", &salt).ok()?;
        Some(StoredHash::Phc(hash.to_string()))
    });
    DUMMY.as_ref()
}

/// The kinds `broker ctl users` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NewHash {
    Argon2id,
    Pbkdf2Sha256,
    ScramSha256,
}

/// The SCRAM-SHA-256 verifier of a user (RFC 5802 section 3): enough to
/// check a client's proof and sign the server's answer, not to log in as the user.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramKeys {
    pub iterations: u32,
    pub salt: Vec<u8>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl fmt::Debug for ScramKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScramKeys").field("iterations", &self.iterations).finish_non_exhaustive()
    }
}

impl ScramKeys {
    /// Derives the keys from a password (RFC 5802: SaltedPassword, ClientKey, StoredKey, ServerKey).
    pub fn derive(password: &[u8], salt: &[u8], iterations: u32) -> Self {
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut salted);
        let client_key = hmac_sha256(&salted, b"Client Key");
        Self {
            iterations,
            salt: salt.to_vec(),
            stored_key: Sha256::digest(client_key).into(),
            server_key: hmac_sha256(&salted, b"Server Key"),
        }
    }
}

/// A stored password hash.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredHash {
    /// A PHC string: `$argon2id$...` or `$pbkdf2-sha256$...`.
    Phc(String),
    /// `$2a$`, `$2b$`, `$2y$`.
    Bcrypt(String),
    /// SHA-256(salt ++ password), as EMQX's built-in database stores it
    /// (salt position "prefix"): `$sha256$salt$hex`.
    SaltedSha256 { salt: Vec<u8>, digest: [u8; 32] },
    /// `SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey` (RFC 5803, as PostgreSQL writes it).
    Scram(ScramKeys),
}

impl fmt::Debug for StoredHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Phc(s) if s.starts_with("$argon2id$") => "argon2id",
            Self::Phc(_) => "pbkdf2-sha256",
            Self::Bcrypt(_) => "bcrypt",
            Self::SaltedSha256 { .. } => "sha256",
            Self::Scram(_) => "scram-sha-256",
        })
    }
}

impl StoredHash {
    /// Parses a hash as the users file holds it; the error says what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.starts_with("$argon2id$") || text.starts_with("$pbkdf2-sha256$") {
            let hash = PasswordHash::new(text).map_err(|e| format!("bad PHC string: {e}"))?;
            if hash.hash.is_none() || hash.salt.is_none() {
                return Err("PHC string without salt or hash".into());
            }
            check_phc_cost(&hash)?;
            return Ok(Self::Phc(text.to_owned()));
        }
        if ["$2a$", "$2b$", "$2y$"].iter().any(|p| text.starts_with(p)) {
            // Structure only: `$2b$NN$` + 22 characters of salt + 31 of hash.
            let cost =
                text.get(4..6).filter(|c| c.bytes().all(|b| b.is_ascii_digit())).and_then(|c| c.parse::<u32>().ok());
            if text.len() != 60 || text.as_bytes().get(6) != Some(&b'$') || !cost.is_some_and(|c| (4..=31).contains(&c))
            {
                return Err("bad bcrypt hash (expected $2b$<cost>$ and 53 characters)".into());
            }
            if cost.is_some_and(|c| c > BCRYPT_COST_MAX) {
                return Err(format!("bcrypt cost above {BCRYPT_COST_MAX}: each login would cost minutes of CPU"));
            }
            return Ok(Self::Bcrypt(text.to_owned()));
        }
        if let Some(rest) = text.strip_prefix("$sha256$") {
            let (salt, hex) = rest.split_once('$').ok_or("expected $sha256$<salt>$<hex digest>")?;
            let digest = decode_hex32(hex).ok_or("the SHA-256 digest is not 64 hex digits")?;
            return Ok(Self::SaltedSha256 { salt: salt.as_bytes().to_vec(), digest });
        }
        if let Some(rest) = text.strip_prefix("SCRAM-SHA-256$") {
            return parse_scram(rest).map(Self::Scram);
        }
        Err("unknown hash format (expected $argon2id$, $pbkdf2-sha256$, $2b$, $sha256$ or SCRAM-SHA-256$)".into())
    }

    /// Whether `password` matches. Slow (that is the point of these hashes):
    /// call it where blocking is fine.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            Self::Phc(text) => {
                let Ok(hash) = PasswordHash::new(text) else { return false };
                if text.starts_with("$argon2id$") {
                    Argon2::default().verify_password(password, &hash).is_ok()
                } else {
                    Pbkdf2.verify_password(password, &hash).is_ok()
                }
            }
            Self::Bcrypt(text) => bcrypt::verify(password, text).unwrap_or(false),
            Self::SaltedSha256 { salt, digest } => {
                let computed: [u8; 32] = Sha256::new().chain_update(salt).chain_update(password).finalize().into();
                computed[..].ct_eq(&digest[..]).into()
            }
            Self::Scram(keys) => {
                let derived = ScramKeys::derive(password, &keys.salt, keys.iterations);
                derived.stored_key[..].ct_eq(&keys.stored_key[..]).into()
            }
        }
    }

    /// The SCRAM verifier, for users stored as SCRAM entries.
    pub fn scram(&self) -> Option<&ScramKeys> {
        match self {
            Self::Scram(keys) => Some(keys),
            _ => None,
        }
    }
}

/// Hashes a new password; `rng` supplies the salt.
pub fn hash_new(kind: NewHash, password: &[u8], rng: &mut impl RngCore) -> Result<String, String> {
    let mut salt = [0u8; SALT_LEN];
    rng.fill_bytes(&mut salt);
    match kind {
        NewHash::Argon2id => {
            let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
            // Argon2's defaults are argon2id v19, m = 19 MiB, t = 2, p = 1 (OWASP's first choice).
            Ok(Argon2::default().hash_password(password, &salt).map_err(|e| e.to_string())?.to_string())
        }
        NewHash::Pbkdf2Sha256 => {
            let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
            let params = pbkdf2::Params { rounds: PBKDF2_ROUNDS, output_length: 32 };
            let hash =
                Pbkdf2.hash_password_customized(password, None, None, params, &salt).map_err(|e| e.to_string())?;
            Ok(hash.to_string())
        }
        NewHash::ScramSha256 => Ok(format_scram(&ScramKeys::derive(password, &salt, SCRAM_ITERATIONS))),
    }
}

/// The users-file text of a SCRAM verifier.
pub fn format_scram(keys: &ScramKeys) -> String {
    format!(
        "SCRAM-SHA-256${}:{}${}:{}",
        keys.iterations,
        BASE64.encode(&keys.salt),
        BASE64.encode(keys.stored_key),
        BASE64.encode(keys.server_key)
    )
}

fn parse_scram(rest: &str) -> Result<ScramKeys, String> {
    const FORMAT: &str = "expected SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey> (base64)";
    let (params, keys) = rest.split_once('$').ok_or(FORMAT)?;
    let (iterations, salt) = params.split_once(':').ok_or(FORMAT)?;
    let (stored, server) = keys.split_once(':').ok_or(FORMAT)?;
    let iterations: u32 = iterations.parse().map_err(|_| format!("SCRAM iterations {iterations:?} is not a number"))?;
    if !(1..=SCRAM_ITERATIONS_MAX).contains(&iterations) {
        return Err(format!("SCRAM iterations {iterations} is outside 1..={SCRAM_ITERATIONS_MAX}"));
    }
    let salt = BASE64.decode(salt).map_err(|_| "SCRAM salt is not base64")?;
    let key = |text: &str, what: &str| -> Result<[u8; 32], String> {
        let bytes = BASE64.decode(text).map_err(|_| format!("SCRAM {what} is not base64"))?;
        bytes.try_into().map_err(|_| format!("SCRAM {what} is not 32 bytes"))
    };
    Ok(ScramKeys { iterations, salt, stored_key: key(stored, "StoredKey")?, server_key: key(server, "ServerKey")? })
}

pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// Refuses PHC parameters that would make one login cost more than a few
/// seconds of CPU or hundreds of MiB: whoever knows a user name could make
/// the broker pay it at will.
fn check_phc_cost(hash: &PasswordHash<'_>) -> Result<(), String> {
    if hash.algorithm.as_str() == "argon2id" {
        let params = argon2::Params::try_from(hash).map_err(|e| format!("bad argon2id parameters: {e}"))?;
        if params.m_cost() > ARGON2_MEMORY_KIB_MAX || params.t_cost() > ARGON2_PASSES_MAX {
            return Err(format!(
                "argon2id m={} t={} is above m={ARGON2_MEMORY_KIB_MAX} t={ARGON2_PASSES_MAX}",
                params.m_cost(),
                params.t_cost()
            ));
        }
    } else {
        let params = pbkdf2::Params::try_from(hash).map_err(|e| format!("bad pbkdf2 parameters: {e}"))?;
        if params.rounds > PBKDF2_ROUNDS_MAX {
            return Err(format!("pbkdf2 rounds {} is above {PBKDF2_ROUNDS_MAX}", params.rounds));
        }
    }
    Ok(())
}

fn decode_hex32(hex: &str) -> Option<[u8; 32]> {
    // `from_str_radix` alone would take a sign: "+f" is 15.
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn rng() -> rand::rngs::StdRng {
        rand::rngs::StdRng::seed_from_u64(7)
    }

    fn check(stored: &str, right: &str) {
        let hash = StoredHash::parse(stored).unwrap_or_else(|e| panic!("{stored}: {e}"));
        assert!(hash.verify(right.as_bytes()), "{hash:?} refused the right password");
        assert!(!hash.verify(b"wrong"), "{hash:?} accepted a wrong password");
    }

    #[test]
    fn argon2id_hashes_made_here_verify() {
        check(&hash_new(NewHash::Argon2id, b"pw", &mut rng()).expect("hash"), "pw");
    }

    #[test]
    fn pbkdf2_hashes_made_here_verify() {
        let hash = hash_new(NewHash::Pbkdf2Sha256, b"pw", &mut rng()).expect("hash");
        assert!(hash.starts_with("$pbkdf2-sha256$i=600000,l=32$"), "{hash}");
        check(&hash, "pw");
    }

    #[test]
    fn bcrypt_hashes_from_elsewhere_verify() {
        // htpasswd -nbBC 4 u secret
        let hash =
            bcrypt::hash_with_salt("secret", 4, [7; 16]).expect("bcrypt").format_for_version(bcrypt::Version::TwoB);
        check(&hash, "secret");
    }

    #[test]
    fn salted_sha256_verifies_as_emqx_stores_it() {
        // sha256("salt" ++ "secret")
        let digest = Sha256::digest(b"saltsecret");
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        check(&format!("$sha256$salt${hex}"), "secret");
    }

    #[test]
    fn scram_entries_verify_plain_passwords_too() {
        let entry = hash_new(NewHash::ScramSha256, b"pencil", &mut rng()).expect("hash");
        check(&entry, "pencil");
        let parsed = StoredHash::parse(&entry).expect("parse");
        assert_eq!(parsed.scram().map(|k| k.iterations), Some(SCRAM_ITERATIONS));
    }

    #[test]
    fn malformed_hashes_say_what_is_wrong() {
        for (text, says) in [
            ("plain", "unknown hash format"),
            ("$argon2id$v=19$garbage", "PHC"),
            ("$2b$99$abc", "bcrypt"),
            ("$sha256$salt$abcd", "64 hex"),
            ("$sha256$salt$+f00000000000000000000000000000000000000000000000000000000000000", "64 hex"),
            ("$2b$17$abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz1", "bcrypt cost"),
            ("$2b$+4$abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz1", "bcrypt"),
            ("$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "m=4194304"),
            ("$argon2id$v=19$m=19456,t=1000,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", "t=1000"),
            ("$pbkdf2-sha256$i=4000000000$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA", "rounds"),
            ("SCRAM-SHA-256$0:AAAA$AAAA:AAAA", "iterations"),
            ("SCRAM-SHA-256$4096:AAAA$AAAA:AAAA", "32 bytes"),
        ] {
            let error = StoredHash::parse(text).expect_err(text);
            assert!(error.contains(says), "{text}: {error}");
        }
    }
}
