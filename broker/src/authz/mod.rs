//! Authorization: what an authenticated client may publish and subscribe to.
//! The core asks on every PUBLISH, will and SUBSCRIBE, re-checks a resumed
//! session's subscriptions, and after a reload removes the subscriptions the
//! new rules deny (README, "Authorization", has the file format and semantics).
//!
//! - `acl`: [`AclAuthorizer`], the rules of an ACL file, swapped whole on reload.
//! - `parse`: the file format, errors with line numbers.
//! - `rules`: the parsed rules and how the first matching rule is found.
//! - `filter`: covering and overlapping of topic filters.
//! - `cidr`: address blocks for `ip:` rules, also used by bans and trusted proxies.

mod acl;
pub mod cidr;
mod filter;
mod parse;
mod rules;

use std::net::IpAddr;
use std::sync::Arc;

use bytestring::ByteString;
use serde::Deserialize;

pub use self::acl::AclAuthorizer;
pub use self::cidr::Cidr;
pub use self::parse::AclError;

/// Who is asking: what the core knows of a client from its CONNECT and its
/// connection. Kept with the session, so that a will published after the
/// connection ended and a revocation check of an offline session ask with the
/// identity the client last connected with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub client_id: ByteString,
    /// The CONNECT's user name, if it had one.
    pub username: Option<ByteString>,
    /// The peer's address; `None` when the transport has none to give (tests,
    /// a session imported from another node before its CONNECT arrived).
    pub peer: Option<IpAddr>,
}

impl ClientInfo {
    /// A client known by its identifier only.
    pub fn new(client_id: ByteString) -> Self {
        Self { client_id, username: None, peer: None }
    }
}

/// The decision when no ACL rule matches (`[authz] no_match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum NoMatch {
    Allow,
    /// The default: a rule file that forgot a case closes it rather than opening it.
    #[default]
    Deny,
}

/// Decides publish and subscribe rights. Synchronous: it runs inside the
/// core on every PUBLISH and SUBSCRIBE, so rules must already be in memory.
pub trait Authorizer: Send + Sync + 'static {
    /// May `client` publish to the topic name `topic`?
    fn can_publish(&self, client: &ClientInfo, topic: &str) -> bool;

    /// May `client` hold a subscription to `filter` (a `$share/{group}/`
    /// prefix already removed), and so receive every topic it matches?
    fn can_subscribe(&self, client: &ClientInfo, filter: &str) -> bool;

    /// Rereads the rules (SIGHUP, `broker ctl reload`). On error the old rules
    /// stay in force.
    fn reload(&self) -> Result<(), String> {
        Ok(())
    }
}

/// Every client may publish and subscribe to everything.
#[derive(Debug, Clone, Copy)]
pub struct AllowAll;

impl Authorizer for AllowAll {
    fn can_publish(&self, _client: &ClientInfo, _topic: &str) -> bool {
        true
    }

    fn can_subscribe(&self, _client: &ClientInfo, _filter: &str) -> bool {
        true
    }
}

/// The authorizer `[authz]` asks for: the ACL file's rules, or [`AllowAll`]
/// when no file is configured. A missing or malformed file is an error naming
/// the file and line.
pub fn from_config(config: &crate::config::AuthzConfig) -> Result<Arc<dyn Authorizer>, AclError> {
    match &config.acl_file {
        Some(path) => {
            let acl = AclAuthorizer::load(path, config.no_match)?;
            tracing::info!(file = %path.display(), rules = acl.rule_count(), no_match = ?config.no_match, "ACL loaded");
            Ok(Arc::new(acl))
        }
        None => Ok(Arc::new(AllowAll)),
    }
}
