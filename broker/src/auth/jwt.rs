//! JSON Web Tokens as CONNECT passwords: the signature (HS256 or RS256), the
//! time claims against the broker's clock, and the configured claims against
//! the CONNECT.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mqtt_codec::ReasonCode;
use serde_json::{Map, Value};

use super::config::{JwtAlgorithm, JwtConfig};
use super::{Backend, Credentials, Decision};
use crate::seam::Clock;

/// Longest token read. Real tokens are a few hundred bytes to a few KiB;
/// anything longer is refused before it is decoded and its signature hashed.
const TOKEN_LEN_MAX: usize = 8 * 1024;

/// Checks the token in the CONNECT password.
pub struct JwtBackend {
    key: DecodingKey,
    /// Signature and `aud` checks; the time claims are checked here against the seam's clock.
    validation: Validation,
    config: JwtConfig,
    clock: Clock,
}

impl std::fmt::Debug for JwtBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtBackend").field("algorithm", &self.config.algorithm).finish_non_exhaustive()
    }
}

impl JwtBackend {
    /// Reads the key; the error names the key file.
    pub fn new(config: &JwtConfig, clock: Clock) -> Result<Self, String> {
        let (key, algorithm) = load_key(config)?;
        let mut validation = Validation::new(algorithm);
        // jsonwebtoken reads the system clock for these; the broker's clock is the seam's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims = HashSet::new();
        match &config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                // jsonwebtoken checks `aud` only when the token has one; the config promises it must.
                validation.set_required_spec_claims(&["aud"]);
            }
            None => validation.validate_aud = false,
        }
        Ok(Self { key, validation, config: config.clone(), clock })
    }

    /// Unix seconds now, on the broker's clock.
    fn now_secs(&self) -> u64 {
        self.clock.wall_ms(self.clock.now()) / 1000
    }

    fn decide(&self, credentials: Credentials<'_>) -> Decision {
        let connect = credentials.connect;
        let Some(password) = connect.password.as_deref() else { return Decision::Ignore };
        let Ok(token) = std::str::from_utf8(password) else { return Decision::Ignore };
        let deny = Decision::Deny(ReasonCode::BAD_USER_NAME_OR_PASSWORD);
        if token.len() > TOKEN_LEN_MAX {
            // Three dot-separated parts: meant as a token, and too long for one.
            return if token.split('.').count() == 3 { deny } else { Decision::Ignore };
        }
        // Not shaped like a JWT at all: some other backend's password.
        if jsonwebtoken::decode_header(token).is_err() {
            return Decision::Ignore;
        }
        let claims = match jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &self.validation) {
            Ok(data) => data.claims,
            Err(error) => {
                tracing::debug!(client_id = %connect.client_id, %error, "JWT refused");
                return deny;
            }
        };
        let now = self.now_secs();
        let leeway = self.config.leeway_secs;
        match claims.get("exp").map(seconds) {
            Some(Some(exp)) if exp.saturating_add(leeway) <= now => return deny,
            Some(None) => return deny,
            None if self.config.require_exp => return deny,
            _ => {}
        }
        match claims.get("nbf").map(seconds) {
            Some(Some(nbf)) if nbf > now.saturating_add(leeway) => return deny,
            Some(None) => return deny,
            _ => {}
        }
        let equals = |claim: &Option<String>, expected: Option<&str>| match claim {
            None => true,
            Some(name) => claims.get(name).and_then(Value::as_str).is_some_and(|v| Some(v) == expected),
        };
        if !equals(&self.config.username_claim, connect.username.as_deref())
            || !equals(&self.config.clientid_claim, Some(&*connect.client_id))
        {
            return deny;
        }
        Decision::Allow
    }
}

/// The verification key and algorithm; the error names the key file.
pub fn load_key(config: &JwtConfig) -> Result<(DecodingKey, Algorithm), String> {
    Ok(match config.algorithm {
        JwtAlgorithm::Hs256 => {
            let secret = config.secret.as_deref().unwrap_or_default();
            (DecodingKey::from_secret(secret.as_bytes()), Algorithm::HS256)
        }
        JwtAlgorithm::Rs256 => {
            let path = config.public_key_file.as_deref().ok_or("[auth.jwt] RS256 needs public_key_file")?;
            let pem = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
            let key = DecodingKey::from_rsa_pem(&pem)
                .map_err(|e| format!("{}: not a PEM RSA public key: {e}", path.display()))?;
            (key, Algorithm::RS256)
        }
    })
}

/// A NumericDate: seconds, which RFC 7519 allows to be fractional.
fn seconds(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| value.as_f64().filter(|s| s.is_finite() && *s >= 0.0).map(|s| s as u64))
}

impl Backend for JwtBackend {
    fn name(&self) -> &'static str {
        "jwt"
    }

    fn check<'a>(&'a self, credentials: Credentials<'a>) -> Pin<Box<dyn Future<Output = Decision> + Send + 'a>> {
        Box::pin(std::future::ready(self.decide(credentials)))
    }
}
