//! What a case is, what it returns, and what it is given.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::client::{Client, Target};
use crate::packets::{ConnAck, ConnectBuilder, Version};
use crate::wire::prop;

/// Why a case did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The server did something the statement forbids: expected vs seen.
    Fail(String),
    /// The target announced it lacks the feature, or the operator disabled it.
    Skip(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self::Fail(message)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Self::Fail(message.to_string())
    }
}

pub type CaseResult = Result<(), Failure>;
pub type CaseFuture = Pin<Box<dyn Future<Output = CaseResult> + Send>>;

/// One test case: the statements it checks, at one protocol version.
#[derive(Clone)]
pub struct Case {
    /// Unique, sentence-like (`first_packet_must_be_connect`).
    pub name: &'static str,
    pub version: Version,
    /// Normative statement ids (`MQTT-3.1.0-1`) of `version` that this case checks.
    pub statements: &'static [&'static str],
    pub run: fn(Ctx) -> CaseFuture,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Case").field("name", &self.name).field("version", &self.version).finish_non_exhaustive()
    }
}

/// Declares a case for each version listed.
/// `case!(name, [V311, V5], ["MQTT-3.1.0-1"], |ctx| async move { ... })`
#[macro_export]
macro_rules! case {
    ($name:ident, [$($version:ident),+], $statements:tt, |$ctx:ident| $body:expr) => {
        vec![$(
            $crate::case::Case {
                name: stringify!($name),
                version: $crate::packets::Version::$version,
                statements: &$statements,
                run: |$ctx| Box::pin($body),
            }
        ),+]
    };
}

/// Fails the case with a message unless the condition holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err($crate::case::Failure::Fail(format!($($fmt)+)));
        }
    };
}

/// What the target announced in a probe CONNACK (5.0), and what the operator disabled.
#[derive(Debug, Clone)]
pub struct Caps {
    pub shared_subscriptions: bool,
    pub wildcard_subscriptions: bool,
    pub subscription_identifiers: bool,
    pub retain: bool,
    pub maximum_qos: u8,
    pub topic_alias_maximum: u16,
    pub receive_maximum: u16,
    pub maximum_packet_size: Option<u32>,
}

impl Default for Caps {
    fn default() -> Self {
        Self {
            shared_subscriptions: true,
            wildcard_subscriptions: true,
            subscription_identifiers: true,
            retain: true,
            maximum_qos: 2,
            topic_alias_maximum: 0,
            receive_maximum: u16::MAX,
            maximum_packet_size: None,
        }
    }
}

impl Caps {
    /// Reads the capabilities a 5.0 CONNACK announces (absent means available).
    pub fn from_connack(connack: &ConnAck) -> Self {
        let p = &connack.props;
        Self {
            shared_subscriptions: p.u8(prop::SHARED_SUBSCRIPTION_AVAILABLE) != Some(0),
            wildcard_subscriptions: p.u8(prop::WILDCARD_SUBSCRIPTION_AVAILABLE) != Some(0),
            subscription_identifiers: p.u8(prop::SUBSCRIPTION_IDENTIFIER_AVAILABLE) != Some(0),
            retain: p.u8(prop::RETAIN_AVAILABLE) != Some(0),
            maximum_qos: p.u8(prop::MAXIMUM_QOS).unwrap_or(2),
            topic_alias_maximum: p.u16(prop::TOPIC_ALIAS_MAXIMUM).unwrap_or(0),
            receive_maximum: p.u16(prop::RECEIVE_MAXIMUM).unwrap_or(u16::MAX),
            maximum_packet_size: p.u32(prop::MAXIMUM_PACKET_SIZE),
        }
    }
}

static RUN_COUNTER: AtomicU64 = AtomicU64::new(0);

/// What a case is given: the target, its version, unique names, capabilities.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub target: Target,
    pub version: Version,
    pub caps: Caps,
    /// Unique per case run: client ids and topics built from it never collide
    /// with another case's, even when cases run at the same time.
    pub prefix: String,
}

impl Ctx {
    pub fn new(target: Target, version: Version, caps: Caps, case: &str, run_id: u64) -> Self {
        let n = RUN_COUNTER.fetch_add(1, Ordering::Relaxed);
        let _ = case;
        // Short, so that `client_id` stays within the 23 characters every server must accept.
        Self { target, version, caps, prefix: format!("c{:x}{n:x}", run_id & 0xFFFF) }
    }

    /// A client identifier unique to this case run; keep `name` to 10
    /// characters so the id stays within the 23 every server must accept.
    pub fn client_id(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// A topic unique to this case run: `cf/<prefix>/<suffix>`.
    pub fn topic(&self, suffix: &str) -> String {
        format!("cf/{}/{suffix}", self.prefix)
    }

    /// A CONNECT for this version with the operator's credentials, clean start, keep alive 60.
    pub fn connect_builder(&self, name: &str) -> ConnectBuilder {
        ConnectBuilder::new(self.version, &self.client_id(name))
            .credentials(self.target.username.as_deref(), self.target.password.as_deref().map(str::as_bytes))
    }

    /// Connects with `connect_builder(name)` and expects success.
    pub async fn connect(&self, name: &str) -> Result<(Client, ConnAck), String> {
        Client::connect_ok(&self.target, &self.connect_builder(name)).await
    }

    /// Skips the case unless the target supports the feature.
    pub fn require(&self, available: bool, feature: &str) -> CaseResult {
        if available { Ok(()) } else { Err(Failure::Skip(format!("target does not support {feature}"))) }
    }
}
