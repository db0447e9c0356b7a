//! Authentication and authorization hooks. Later work adds real backends
//! (user database, JWT, HTTP, ACL files); the broker only sees these traits.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use mqtt_codec::{Connect, ReasonCode};

/// What a client presented at CONNECT.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    pub connect: &'a Connect,
    pub peer: SocketAddr,
}

/// Decides whether a CONNECT may proceed. Asynchronous, because a backend may
/// call out (HTTP, a database); it runs before the connection touches the core.
pub trait Authenticator: Send + Sync + 'static {
    fn authenticate<'a>(
        &'a self,
        credentials: Credentials<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<(), ReasonCode>> + Send + 'a>>;
}

/// Accepts clients without credentials when anonymous access is allowed;
/// with no backend configured, a client that presents credentials is refused
/// (there is nothing to check them against).
#[derive(Debug, Clone, Copy)]
pub struct AnonymousOnly {
    pub allow_anonymous: bool,
}

impl Authenticator for AnonymousOnly {
    fn authenticate<'a>(
        &'a self,
        credentials: Credentials<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<(), ReasonCode>> + Send + 'a>> {
        let anonymous = credentials.connect.username.is_none() && credentials.connect.password.is_none();
        let result = if anonymous && !self.allow_anonymous {
            Err(ReasonCode::NOT_AUTHORIZED)
        } else if anonymous || self.allow_anonymous {
            Ok(())
        } else {
            Err(ReasonCode::BAD_USER_NAME_OR_PASSWORD)
        };
        Box::pin(std::future::ready(result))
    }
}

/// Decides publish and subscribe rights. Synchronous: it runs inside the
/// core on every PUBLISH and SUBSCRIBE, so rules must already be in memory.
pub trait Authorizer: Send + Sync + 'static {
    fn can_publish(&self, client_id: &str, topic: &str) -> bool;
    fn can_subscribe(&self, client_id: &str, filter: &str) -> bool;
}

/// Every client may publish and subscribe to everything.
#[derive(Debug, Clone, Copy)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn can_publish(&self, _client_id: &str, _topic: &str) -> bool {
        true
    }

    fn can_subscribe(&self, _client_id: &str, _filter: &str) -> bool {
        true
    }
}
