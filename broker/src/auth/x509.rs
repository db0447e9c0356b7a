//! Client certificates: the TLS listener verified the chain (mutual TLS), so
//! a certificate is proof enough, unless its common name must also match the
//! CONNECT's user name.

use std::future::Future;
use std::pin::Pin;

use mqtt_codec::ReasonCode;

use super::config::X509Config;
use super::{Backend, Credentials, Decision};

#[derive(Debug, Clone)]
pub struct X509Backend {
    config: X509Config,
}

impl X509Backend {
    pub fn new(config: &X509Config) -> Self {
        Self { config: config.clone() }
    }

    fn decide(&self, credentials: Credentials<'_>) -> Decision {
        let Some(certificate) = &credentials.transport.certificate else { return Decision::Ignore };
        if !self.config.match_username {
            return Decision::Allow;
        }
        let username = credentials.connect.username.as_deref();
        match (certificate.common_name.as_deref(), username) {
            (Some(cn), Some(user)) if cn == user => Decision::Allow,
            _ => Decision::Deny(ReasonCode::NOT_AUTHORIZED),
        }
    }
}

impl Backend for X509Backend {
    fn name(&self) -> &'static str {
        "x509"
    }

    fn check<'a>(&'a self, credentials: Credentials<'a>) -> Pin<Box<dyn Future<Output = Decision> + Send + 'a>> {
        Box::pin(std::future::ready(self.decide(credentials)))
    }
}
