//! Authentication: who a client is, decided before the connection touches
//! the core. Authorization (what it may do) is [`crate::authz`].
//!
//! # Layout
//! - this file: the [`Authenticator`] trait the shell calls, what it is given
//!   ([`Credentials`]) and the enhanced-authentication exchange ([`AuthExchange`]).
//! - `chain`: [`Chain`], the configured backends asked in order, and [`build`].
//! - `users` + `password`: the users file and its password hashes; `users_file`
//!   edits it for `broker ctl users`.
//! - `jwt`, `http` (+ `http/cache`), `x509`: the other backends.
//! - `scram`: SCRAM-SHA-256 (RFC 5802 / 7677) for MQTT 5 AUTH.
//! - `config`: the `[auth.*]` sections.

pub mod chain;
pub mod config;
pub mod http;
pub mod jwt;
pub mod password;
pub mod scram;
pub mod users;
pub mod users_file;
pub mod x509;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use bytes::Bytes;
use mqtt_codec::{Connect, ReasonCode};

pub use self::chain::{Chain, build, check_files};

/// What a client presented at CONNECT.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub connect: &'a Connect,
    pub peer: SocketAddr,
    pub transport: &'a TransportInfo,
}

/// What the transport learned about a client before its CONNECT.
#[derive(Debug, Clone, Default)]
pub struct TransportInfo {
    /// The listener that accepted it, `kind:name` (`tcp:default`, `tls:default`, `ws:default`, ...).
    pub listener: String,
    /// The client certificate the TLS handshake verified (mutual TLS), if any.
    pub certificate: Option<CertIdentity>,
}

impl TransportInfo {
    pub fn listener(listener: impl Into<String>) -> Self {
        Self { listener: listener.into(), certificate: None }
    }
}

/// The identity in a verified client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CertIdentity {
    /// The subject's common name (CN), if it has one.
    pub common_name: Option<String>,
    /// The subject distinguished name, RFC 4514 style (`CN=a,O=b`).
    pub subject: String,
    /// DNS names, e-mail addresses and URIs of the subject alternative name.
    pub subject_alt_names: Vec<String>,
}

/// Decides whether a CONNECT may proceed. Asynchronous, because a backend may
/// call out (HTTP, a database); it runs before the connection touches the core.
pub trait Authenticator: Send + Sync + 'static {
    fn authenticate<'a>(
        &'a self,
        credentials: Credentials<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<(), ReasonCode>> + Send + 'a>>;

    /// Rereads the backend's files (SIGHUP, `broker ctl reload`). On error the
    /// backend keeps what it had: a bad file never opens the broker up.
    fn reload(&self) -> Result<(), String> {
        Ok(())
    }

    /// The MQTT 5 Authentication Methods this authenticator runs exchanges for.
    fn methods(&self) -> Vec<&'static str> {
        Vec::new()
    }

    /// Starts an enhanced-authentication exchange for a CONNECT carrying
    /// Authentication Method `method`; None: the method is not supported
    /// (the client gets CONNACK 0x8C).
    fn start_exchange(&self, _method: &str, _credentials: Credentials<'_>) -> Option<Box<dyn AuthExchange>> {
        None
    }

    /// What the core asks when a client re-authenticates (AUTH 0x19 after
    /// CONNACK); None: re-authentication is refused.
    fn reauthenticator(&self) -> Option<std::sync::Arc<dyn ReAuthenticator>> {
        None
    }
}

/// Starts re-authentication exchanges ([MQTT-4.12.1-1]) for the core, which
/// knows the connection's method and the user name it authenticated as.
pub trait ReAuthenticator: Send + Sync + 'static {
    /// None: the method cannot re-authenticate.
    fn start(&self, method: &str, user: Option<&str>) -> Option<Box<dyn AuthExchange>>;
}

/// What an exchange wants next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthStep {
    /// Send AUTH 0x18 (continue authentication) with this data, and step
    /// again with the data of the client's AUTH.
    Continue(Bytes),
    /// Authenticated; the data, if any, goes into the CONNACK.
    Success(Option<Bytes>),
    /// Refused: CONNACK with this reason.
    Failure(ReasonCode),
}

/// One client's enhanced authentication (MQTT 5, section 4.12): fed the
/// Authentication Data of the CONNECT, then of each AUTH the client sends.
/// Synchronous and cheap: a mechanism that needs slow work must not run it here.
pub trait AuthExchange: Send {
    fn step(&mut self, data: &[u8]) -> AuthStep;

    /// The user the exchange authenticated, once it succeeded: a CONNECT
    /// without a user name takes it, so that authorization and
    /// re-authentication see who the client proved to be.
    fn user(&self) -> Option<&str> {
        None
    }
}

/// A backend's answer for one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(ReasonCode),
    /// Not this backend's client: the next one decides.
    Ignore,
}

/// A link of the [`Chain`].
pub trait Backend: Send + Sync + 'static {
    /// The backend's name in logs (`users`, `jwt`, ...).
    fn name(&self) -> &'static str;

    fn check<'a>(&'a self, credentials: Credentials<'a>) -> Pin<Box<dyn Future<Output = Decision> + Send + 'a>>;

    /// Rereads the backend's files; on error the old state stays.
    fn reload(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The refusal for bad credentials: 0x86 when the client presented a user
/// name or password, 0x87 when it presented none.
pub fn refusal(connect: &Connect) -> ReasonCode {
    if connect.username.is_some() || connect.password.is_some() {
        ReasonCode::BAD_USER_NAME_OR_PASSWORD
    } else {
        ReasonCode::NOT_AUTHORIZED
    }
}

/// Accepts clients without credentials when anonymous access is allowed;
/// with no backend configured, a client that presents credentials is refused
/// (there is nothing to check them against), except a user name without a
/// password that the client's verified certificate carries.
#[derive(Debug, Clone, Copy)]
pub struct AnonymousOnly {
    pub allow_anonymous: bool,
}

impl Authenticator for AnonymousOnly {
    fn authenticate<'a>(
        &'a self,
        credentials: Credentials<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<(), ReasonCode>> + Send + 'a>> {
        let connect = credentials.connect;
        let anonymous = connect.username.is_none() && connect.password.is_none();
        // Credentials nothing can check are refused even when anonymous
        // access is allowed: an unchecked user name would reach the ACL's
        // `user` rules and `${username}` placeholders as if it were proven.
        // A verified client certificate carrying the name proves it (the
        // listener's `peer_cert_as_username` puts it there).
        let proven = connect.password.is_none()
            && connect.username.as_deref().is_some_and(|user| {
                credentials.transport.certificate.as_ref().is_some_and(|cert| {
                    cert.common_name.as_deref() == Some(user)
                        || cert.subject == user
                        || cert.subject_alt_names.iter().any(|name| name == user)
                })
            });
        let result = if anonymous || proven {
            if self.allow_anonymous { Ok(()) } else { Err(refusal(connect)) }
        } else {
            Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
        };
        Box::pin(std::future::ready(result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqtt_codec::{ConnectProperties, ProtocolVersion};

    async fn anonymous_only(
        allow_anonymous: bool,
        user: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<(), ReasonCode> {
        with_certificate(allow_anonymous, user, password, None).await
    }

    async fn with_certificate(
        allow_anonymous: bool,
        user: Option<&str>,
        password: Option<&[u8]>,
        certificate: Option<CertIdentity>,
    ) -> Result<(), ReasonCode> {
        let connect = Connect {
            protocol: ProtocolVersion::V5,
            clean_start: true,
            keep_alive: 30,
            client_id: "c".into(),
            will: None,
            username: user.map(Into::into),
            password: password.map(Bytes::copy_from_slice),
            properties: ConnectProperties::default(),
        };
        let transport = TransportInfo { listener: "tls:default".into(), certificate };
        let peer = "127.0.0.1:1".parse().expect("address");
        AnonymousOnly { allow_anonymous }
            .authenticate(Credentials { connect: &connect, peer, transport: &transport })
            .await
    }

    /// Regression: with anonymous access allowed, a client claiming any user
    /// name was let in under it, though nothing had checked it.
    #[tokio::test]
    async fn without_backends_credentials_are_refused_and_anonymous_access_decides_the_rest() {
        let bad = Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD);
        assert_eq!(anonymous_only(true, None, None).await, Ok(()));
        assert_eq!(anonymous_only(false, None, None).await, Err(ReasonCode::NOT_AUTHORIZED));
        assert_eq!(anonymous_only(true, Some("admin"), None).await, bad);
        assert_eq!(anonymous_only(true, Some("admin"), Some(b"x")).await, bad);
        assert_eq!(anonymous_only(true, None, Some(b"x")).await, bad);
        assert_eq!(anonymous_only(false, Some("admin"), Some(b"x")).await, bad);
    }

    #[tokio::test]
    async fn a_user_name_a_verified_certificate_carries_counts_as_proven() {
        let cert = || {
            Some(CertIdentity {
                common_name: Some("dev-1".into()),
                subject: "CN=dev-1,O=Acme".into(),
                subject_alt_names: vec!["dev-1.example".into()],
            })
        };
        for name in ["dev-1", "CN=dev-1,O=Acme", "dev-1.example"] {
            assert_eq!(with_certificate(true, Some(name), None, cert()).await, Ok(()), "{name}");
        }
        let bad = Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD);
        assert_eq!(with_certificate(false, Some("dev-1"), None, cert()).await, bad, "anonymous access off");
        assert_eq!(with_certificate(true, Some("admin"), None, cert()).await, bad, "another name");
        assert_eq!(with_certificate(true, Some("dev-1"), Some(b"x"), cert()).await, bad, "an unchecked password");
    }
}
