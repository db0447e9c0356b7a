//! The configured backends, asked in order: the first that allows or denies
//! decides; when all ignore, anonymous access decides for a client without
//! credentials and any other is refused.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use mqtt_codec::ReasonCode;

use super::config::BackendKind;
use super::http::HttpBackend;
use super::jwt::JwtBackend;
use super::scram::{self, Scram};
use super::users::{UserDb, UsersBackend};
use super::x509::X509Backend;
use super::{AnonymousOnly, AuthExchange, Authenticator, Backend, Credentials, Decision, ReAuthenticator, refusal};
use crate::config::Config;
use crate::seam::Runtime;

/// Keeps the SCRAM nonces apart from the broker's own random stream when a
/// test seeds both from `[node] rng_seed`.
const SCRAM_SEED_SALT: u64 = 0x5c4a_4d00_5c4a_4d00;
const HTTP_SEED_SALT: u64 = 0x4854_5450_4854_5450;

pub struct Chain {
    backends: Vec<Box<dyn Backend>>,
    allow_anonymous: bool,
    /// Shared by the users backend and SCRAM; reloaded once for both.
    users: Option<Arc<UserDb>>,
    scram: Option<Arc<Scram>>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<_> = self.backends.iter().map(|b| b.name()).collect();
        f.debug_struct("Chain").field("backends", &names).field("scram", &self.scram.is_some()).finish()
    }
}

impl Chain {
    /// A chain of the given backends (for tests and embedders); no SCRAM.
    pub fn new(backends: Vec<Box<dyn Backend>>, allow_anonymous: bool) -> Self {
        Self { backends, allow_anonymous, users: None, scram: None }
    }

    async fn decide(&self, credentials: Credentials<'_>) -> Result<(), ReasonCode> {
        for backend in &self.backends {
            match backend.check(credentials).await {
                Decision::Allow => {
                    tracing::debug!(backend = backend.name(), client_id = %credentials.connect.client_id, "authenticated");
                    return Ok(());
                }
                Decision::Deny(reason) => {
                    tracing::debug!(backend = backend.name(), client_id = %credentials.connect.client_id, %reason, "refused");
                    return Err(reason);
                }
                Decision::Ignore => {}
            }
        }
        let connect = credentials.connect;
        let anonymous = connect.username.is_none() && connect.password.is_none();
        if anonymous && self.allow_anonymous { Ok(()) } else { Err(refusal(connect)) }
    }
}

impl Authenticator for Chain {
    fn authenticate<'a>(
        &'a self,
        credentials: Credentials<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<(), ReasonCode>> + Send + 'a>> {
        Box::pin(self.decide(credentials))
    }

    fn reload(&self) -> Result<(), String> {
        let mut errors = Vec::new();
        if let Some(users) = &self.users
            && let Err(e) = users.reload()
        {
            errors.push(e);
        }
        errors.extend(self.backends.iter().filter_map(|b| b.reload().err()));
        if errors.is_empty() { Ok(()) } else { Err(errors.join("; ")) }
    }

    fn methods(&self) -> Vec<&'static str> {
        if self.scram.is_some() { vec![scram::METHOD] } else { Vec::new() }
    }

    fn start_exchange(&self, method: &str, credentials: Credentials<'_>) -> Option<Box<dyn AuthExchange>> {
        let scram = self.scram.as_ref().filter(|_| method == scram::METHOD)?;
        Some(Box::new(scram.exchange(credentials.connect.username.as_deref())))
    }

    fn reauthenticator(&self) -> Option<Arc<dyn ReAuthenticator>> {
        self.scram.clone().map(|scram| scram as Arc<dyn ReAuthenticator>)
    }
}

/// The authenticator `[auth]` describes: the chain, or anonymous on/off when
/// nothing else is configured. The error names the bad file (and line).
pub fn build(config: &Config, runtime: &Runtime) -> Result<Arc<dyn Authenticator>, String> {
    let auth = &config.auth;
    let allow_anonymous = config.allow_anonymous();
    if !auth.has_backends() {
        return Ok(Arc::new(AnonymousOnly { allow_anonymous }));
    }
    let users = match &auth.users {
        Some(users) => Some(Arc::new(UserDb::load(&users.file)?)),
        None => None,
    };
    let seed = config.node.rng_seed;
    let mut backends: Vec<Box<dyn Backend>> = Vec::new();
    for kind in &auth.chain {
        let backend: Box<dyn Backend> = match kind {
            BackendKind::Users => match &users {
                Some(db) => Box::new(UsersBackend::new(Arc::clone(db))),
                None => return Err("[auth] chain lists \"users\" but there is no [auth.users] section".into()),
            },
            BackendKind::Jwt => match &auth.jwt {
                Some(jwt) => Box::new(JwtBackend::new(jwt, runtime.clock)?),
                None => return Err("[auth] chain lists \"jwt\" but there is no [auth.jwt] section".into()),
            },
            BackendKind::Http => match &auth.http {
                Some(http) => {
                    let mut rng = crate::seam::rng(seed.map(|s| s ^ HTTP_SEED_SALT));
                    Box::new(HttpBackend::new(http, Arc::clone(&runtime.network), runtime.clock, &mut rng)?)
                }
                None => return Err("[auth] chain lists \"http\" but there is no [auth.http] section".into()),
            },
            BackendKind::X509 => Box::new(X509Backend::new(&auth.x509.clone().unwrap_or_default())),
        };
        backends.push(backend);
    }
    let scram = match (&users, auth.scram.enabled) {
        (Some(db), true) => {
            Some(Arc::new(Scram::new(Arc::clone(db), crate::seam::rng(seed.map(|s| s ^ SCRAM_SEED_SALT)))))
        }
        (None, true) => return Err("[auth.scram] enabled = true needs [auth.users]".into()),
        (_, false) => None,
    };
    Ok(Arc::new(Chain { backends, allow_anonymous, users, scram }))
}

/// Reads the files `[auth]` names (users file, JWT key, the HTTP callout's
/// CA file) as start-up would, for `broker --check-config`.
pub fn check_files(config: &Config) -> Result<(), String> {
    if let Some(users) = &config.auth.users {
        UserDb::load(&users.file)?;
    }
    if let Some(jwt) = &config.auth.jwt {
        super::jwt::load_key(jwt)?;
    }
    if let Some(http) = &config.auth.http {
        super::http::check_files(http)?;
    }
    Ok(())
}
