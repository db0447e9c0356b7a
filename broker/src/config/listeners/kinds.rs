//! The keys of each kind of listener, and [`Keys`]: what every kind answers
//! (the common keys, the TLS side, the WebSocket side), so that a
//! `ListenerEntry` asks once instead of matching on the kind at every key.

use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroUsize};
use std::path::PathBuf;

use serde::Deserialize;

use super::{TlsOptions, WsOptions};
use crate::authz::Cidr;
use crate::config::{nz16, nzu};

/// The keys every kind of listener has.
#[derive(Debug, Clone, Copy)]
pub(super) struct Common {
    pub enable: bool,
    pub bind: SocketAddr,
    pub max_connections: NonZeroUsize,
    pub connect_timeout_secs: NonZeroU16,
}

/// One listener's configuration, whatever its kind.
pub(super) trait Keys {
    fn common(&self) -> Common;

    /// The TLS side of a TLS, WSS or QUIC listener.
    fn tls(&self) -> Option<TlsOptions> {
        None
    }

    /// The WebSocket side of a WS or WSS listener.
    fn websocket(&self) -> Option<WsOptions> {
        None
    }
}

/// The keys of every kind, for a struct that has them under their names.
macro_rules! common {
    ($c:expr) => {
        Common {
            enable: $c.enable,
            bind: $c.bind,
            max_connections: $c.max_connections,
            connect_timeout_secs: $c.connect_timeout_secs,
        }
    };
}

/// The TLS keys, for a struct that has them under their names.
macro_rules! tls_options {
    ($c:expr) => {
        TlsOptions {
            cert: $c.cert.clone(),
            key: $c.key.clone(),
            client_ca: $c.client_ca.clone(),
            peer_cert_as_username: $c.peer_cert_as_username,
            peer_cert_as_clientid: $c.peer_cert_as_clientid,
        }
    };
}

/// The WebSocket keys, for a struct that has them under their names.
macro_rules! ws_options {
    ($c:expr) => {
        WsOptions {
            path: $c.path.clone(),
            proxy_address_header: $c.proxy_address_header.clone(),
            trusted_proxies: $c.trusted_proxies.clone(),
        }
    };
}

impl Keys for TcpListenerConfig {
    fn common(&self) -> Common {
        common!(self)
    }
}

/// Also QUIC's: [`QuicListenerConfig`] is this type.
impl Keys for TlsListenerConfig {
    fn common(&self) -> Common {
        common!(self)
    }

    fn tls(&self) -> Option<TlsOptions> {
        Some(tls_options!(self))
    }
}

impl Keys for WsListenerConfig {
    fn common(&self) -> Common {
        common!(self)
    }

    fn websocket(&self) -> Option<WsOptions> {
        Some(ws_options!(self))
    }
}

impl Keys for WssListenerConfig {
    fn common(&self) -> Common {
        common!(self)
    }

    fn tls(&self) -> Option<TlsOptions> {
        Some(tls_options!(self))
    }

    fn websocket(&self) -> Option<WsOptions> {
        Some(ws_options!(self))
    }
}

/// `[listeners.tcp]` / `[listeners.tcp.NAME]`: MQTT over TCP (EMQX's port 1883).
///
/// Keys: `enable` (default true; the default TCP listener exists unless it is
/// switched off), `bind` (default "127.0.0.1:1883"), `max_connections`
/// (100000: sockets beyond are closed at accept), `connect_timeout_secs` (10:
/// seconds a new socket has to deliver its CONNECT).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpListenerConfig {
    pub enable: bool,
    pub bind: SocketAddr,
    pub max_connections: NonZeroUsize,
    pub connect_timeout_secs: NonZeroU16,
}

impl Default for TcpListenerConfig {
    fn default() -> Self {
        Self {
            enable: true,
            bind: SocketAddr::from(([127, 0, 0, 1], 1883)),
            max_connections: default_max_connections(),
            connect_timeout_secs: default_connect_timeout(),
        }
    }
}

/// `[listeners.tls]` / `[listeners.tls.NAME]`: MQTT over TLS 1.2 / 1.3
/// (rustls, ring; EMQX's port 8883). `[listeners.quic]` has the same keys.
///
/// Keys: `enable` (default true), `bind` (required), `cert` (required: PEM
/// certificate chain, leaf first), `key` (required: PEM private key, PKCS#8,
/// PKCS#1 or SEC1), `client_ca` (unset: PEM certificate authorities; set,
/// every client must present a certificate that chains to one: mutual TLS),
/// `peer_cert_as_username` and `peer_cert_as_clientid` (default "disabled":
/// replace the CONNECT's username / client id with a field of the verified
/// client certificate before authentication; need `client_ca`),
/// `max_connections` (100000, counting handshakes in progress),
/// `connect_timeout_secs` (10: for the handshake, and again for the CONNECT).
///
/// The files are reread on SIGHUP, `broker ctl reload`, and when they change
/// on disk; new handshakes use the new files, open connections stay.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsListenerConfig {
    #[serde(default = "yes")]
    pub enable: bool,
    pub bind: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    #[serde(default)]
    pub peer_cert_as_username: PeerCertField,
    #[serde(default)]
    pub peer_cert_as_clientid: PeerCertField,
    #[serde(default = "default_max_connections")]
    pub max_connections: NonZeroUsize,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: NonZeroU16,
}

/// `[listeners.quic]` / `[listeners.quic.NAME]`: MQTT over QUIC (quinn,
/// TLS 1.3, ALPN "mqtt"; EMQX's port 14567), one bidirectional stream per
/// connection. The keys of [`TlsListenerConfig`]; `bind` is a UDP address.
pub type QuicListenerConfig = TlsListenerConfig;

/// `[listeners.ws]` / `[listeners.ws.NAME]`: MQTT over WebSocket (binary
/// frames; subprotocols mqtt, mqttv3.1, mqttv3.1.1; EMQX's port 8083).
///
/// Keys: `enable` (default true), `bind` (required), `path` ("/mqtt": other
/// paths get 404), `max_connections` (100000), `connect_timeout_secs` (10:
/// for the upgrade, and again for the CONNECT), `proxy_address_header`
/// (unset: e.g. "x-forwarded-for") and `trusted_proxies` (empty: networks
/// such as "10.0.0.0/8"). When a connection comes from a trusted proxy, the
/// client address is taken from the header: its entries are read from the
/// right, skipping trusted proxies, and the first other address is the
/// client's (all trusted: the leftmost); its port is unknown and shown as 0.
/// From anyone else the header is ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WsListenerConfig {
    #[serde(default = "yes")]
    pub enable: bool,
    pub bind: SocketAddr,
    #[serde(default = "default_ws_path")]
    pub path: String,
    #[serde(default = "default_max_connections")]
    pub max_connections: NonZeroUsize,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: NonZeroU16,
    #[serde(default)]
    pub proxy_address_header: Option<String>,
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
}

/// `[listeners.wss]` / `[listeners.wss.NAME]`: MQTT over WebSocket over TLS
/// (EMQX's port 8084). The keys of [`TlsListenerConfig`] and of
/// [`WsListenerConfig`]; `connect_timeout_secs` covers handshake and upgrade.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WssListenerConfig {
    #[serde(default = "yes")]
    pub enable: bool,
    pub bind: SocketAddr,
    pub cert: PathBuf,
    pub key: PathBuf,
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    #[serde(default)]
    pub peer_cert_as_username: PeerCertField,
    #[serde(default)]
    pub peer_cert_as_clientid: PeerCertField,
    #[serde(default = "default_ws_path")]
    pub path: String,
    #[serde(default = "default_max_connections")]
    pub max_connections: NonZeroUsize,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: NonZeroU16,
    #[serde(default)]
    pub proxy_address_header: Option<String>,
    #[serde(default)]
    pub trusted_proxies: Vec<Cidr>,
}

/// Which field of a verified client certificate replaces a CONNECT's username
/// or client id (EMQX's `peer_cert_as_username` / `peer_cert_as_clientid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerCertField {
    /// The CONNECT's own value stays.
    #[default]
    Disabled,
    /// The subject's common name.
    Cn,
    /// The subject distinguished name, RFC 4514 (`CN=c1,O=Org`).
    Dn,
    /// The first DNS name of the subject alternative name.
    SanDns,
    /// The first e-mail address of the subject alternative name.
    SanEmail,
    /// The first URI of the subject alternative name.
    SanUri,
}

impl PeerCertField {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Cn => "cn",
            Self::Dn => "dn",
            Self::SanDns => "san_dns",
            Self::SanEmail => "san_email",
            Self::SanUri => "san_uri",
        }
    }
}

fn yes() -> bool {
    true
}

fn default_ws_path() -> String {
    "/mqtt".into()
}

fn default_max_connections() -> NonZeroUsize {
    nzu(100_000)
}

fn default_connect_timeout() -> NonZeroU16 {
    nz16(10)
}
