//! The sections under `[auth]`: one per backend of the chain, and SCRAM.
//! `crate::config::AuthConfig` holds them and checks the rules that span them.

use std::num::{NonZeroU64, NonZeroUsize};
use std::path::PathBuf;

use serde::Deserialize;

/// A backend of the chain, as `[auth] chain` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// The users file (`[auth.users]`).
    Users,
    /// A JSON Web Token as the password (`[auth.jwt]`).
    Jwt,
    /// An HTTP service decides (`[auth.http]`).
    Http,
    /// A verified client certificate (`[auth.x509]`).
    X509,
}

impl BackendKind {
    /// The key of the backend's section under `[auth]`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Users => "users",
            Self::Jwt => "jwt",
            Self::Http => "http",
            Self::X509 => "x509",
        }
    }
}

/// `[auth.users]`: the built-in user database.
///
/// - `file` (required): the users file, one `username:hash` per line (`#`
///   starts a comment). Hashes: argon2id and pbkdf2-sha256 PHC strings,
///   bcrypt (`$2b$...`), salted SHA-256 (`$sha256$salt$hex`, for imported
///   users) and SCRAM-SHA-256 (`SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey`).
///   `broker ctl users` edits it; a missing or malformed file stops start-up
///   with the file and line. Hashes that would make one login too costly
///   (argon2id above m = 256 MiB or t = 16, PBKDF2 above 10,000,000 rounds,
///   bcrypt above cost 16) are malformed.
///
/// A user name the file does not know is ignored, but only after its
/// password was verified against a dummy argon2id hash (the answer must not
/// come sooner than for a known user): list `users` after backends that
/// decide most clients cheaply (`jwt`, `x509`) rather than before them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersConfig {
    pub file: PathBuf,
}

/// The signature algorithm tokens must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
pub enum JwtAlgorithm {
    /// HMAC-SHA-256 with a shared `secret`.
    #[default]
    #[serde(rename = "HS256")]
    Hs256,
    /// RSA PKCS#1 v1.5 SHA-256, checked against `public_key_file`.
    #[serde(rename = "RS256")]
    Rs256,
}

/// `[auth.jwt]`: the CONNECT password is a JSON Web Token.
///
/// - `algorithm` (default `"HS256"`): `"HS256"` or `"RS256"`; a token with
///   another `alg` is refused.
/// - `secret`: the HS256 key (required with HS256).
/// - `public_key_file`: PEM RSA public key (required with RS256).
/// - `require_exp` (default true): a token without `exp` is refused. `exp`
///   and `nbf` are checked against the broker's clock.
/// - `leeway_secs` (default 0): clock skew allowed on `exp` and `nbf`.
/// - `username_claim`, `clientid_claim` (default unset): when set, that claim
///   must equal the CONNECT's user name / client identifier. Unset, a valid
///   token admits any user name and client identifier.
/// - `audience` (default unset): when set, the token's `aud` must contain it;
///   unset, `aud` is not checked.
///
/// A client with no password is not this backend's (ignore); a password that
/// is not a JWT at all is not either; a JWT that fails a check is refused.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    pub algorithm: JwtAlgorithm,
    pub secret: Option<String>,
    pub public_key_file: Option<PathBuf>,
    pub require_exp: bool,
    pub leeway_secs: u64,
    pub username_claim: Option<String>,
    pub clientid_claim: Option<String>,
    pub audience: Option<String>,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            algorithm: JwtAlgorithm::Hs256,
            secret: None,
            public_key_file: None,
            require_exp: true,
            leeway_secs: 0,
            username_claim: None,
            clientid_claim: None,
            audience: None,
        }
    }
}

/// What the HTTP backend answers when the service fails (connection refused,
/// timeout, a status other than 200, a body it cannot read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Refuse the client (CONNACK 0x88, server unavailable).
    #[default]
    Deny,
    /// Let the next backend decide.
    Ignore,
}

/// `[auth.http]`: an HTTP service decides (EMQX's convention).
///
/// The broker POSTs `{"clientid", "username", "password", "peerhost",
/// "listener"}` as JSON; a 200 answer `{"result": "allow" | "deny" |
/// "ignore"}` decides.
///
/// - `url` (required): `http://host[:port]/path` or `https://host[:port]/path`.
///   With https the service's certificate must be valid for the URL's host
///   (a name or an IP address, also sent as SNI); a call whose TLS handshake
///   fails is a failed call (`on_error`).
/// - `ca_file` (default unset; https only): PEM file of the certificate
///   authorities trusted for the service, instead of the public web roots
///   (Mozilla's, built in). Reread on reload; a bad file keeps the old one.
/// - `timeout_ms` (default 5000): connect, request and answer together.
/// - `on_error` (default `"deny"`): `"deny"` or `"ignore"` when the call fails.
/// - `cache_ttl_secs` (default 60; 0: no cache): how long an answer is
///   reused for the same clientid, username, password, peer host and listener.
/// - `cache_size` (default 10000): most answers cached; the oldest go first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    pub url: String,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_http_timeout")]
    pub timeout_ms: NonZeroU64,
    #[serde(default)]
    pub on_error: OnError,
    #[serde(default = "default_cache_ttl")]
    pub cache_ttl_secs: u64,
    #[serde(default = "default_cache_size")]
    pub cache_size: NonZeroUsize,
}

impl HttpConfig {
    /// What can be checked without reading files: the URL, and `ca_file`
    /// against the scheme and the file system. The error names the key.
    pub fn validate(&self) -> Result<(), String> {
        let endpoint = crate::auth::http::Endpoint::parse(&self.url)
            .map_err(|e| format!("[auth.http] url = {:?}: {e}", self.url))?;
        match &self.ca_file {
            Some(_) if endpoint.tls_name.is_none() => Err("[auth.http] ca_file is for https:// URLs".into()),
            Some(path) if !path.is_file() => Err(format!("[auth.http] ca_file = {path:?}: no such file")),
            _ => Ok(()),
        }
    }
}

fn default_http_timeout() -> NonZeroU64 {
    NonZeroU64::new(5_000).unwrap_or(NonZeroU64::MIN)
}

fn default_cache_ttl() -> u64 {
    60
}

fn default_cache_size() -> NonZeroUsize {
    NonZeroUsize::new(10_000).unwrap_or(NonZeroUsize::MIN)
}

/// `[auth.x509]`: a client certificate verified by the TLS listener
/// (`[listeners.tls] client_ca`) authenticates the client; a client without
/// one is not this backend's.
///
/// - `match_username` (default false): the certificate's common name must
///   also equal the CONNECT's user name.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct X509Config {
    pub match_username: bool,
}

/// `[auth.scram]`: MQTT 5 enhanced authentication with SCRAM-SHA-256
/// (Authentication Method `"SCRAM-SHA-256"`), against the users file.
///
/// - `enabled` (default false). Needs `[auth.users]`; only users stored as
///   `SCRAM-SHA-256$...` entries (`broker ctl users add --hash scram-sha-256`)
///   can use it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScramConfig {
    pub enabled: bool,
}
