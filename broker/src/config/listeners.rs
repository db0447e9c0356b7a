//! `[listeners]`: any number of listeners of each kind.
//!
//! `[listeners.KIND]`'s own keys configure the listener named `default`
//! (the single-table syntax of earlier versions); each sub-table
//! `[listeners.KIND.NAME]` is one more listener of that kind, with the same
//! keys. `[listeners.KIND.default]` may be written instead of the own keys,
//! EMQX style. Kinds: `tcp`, `tls`, `ws`, `wss`, `quic`.
//!
//! - this file: the listeners as a list of entries, and the checks that span keys;
//! - `kinds.rs`: the keys of each kind, and the `Keys` every kind answers;
//! - `de.rs`: reading `[listeners]` from TOML without losing toml's line numbers.

mod de;
mod kinds;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU16, NonZeroUsize};
use std::path::PathBuf;

use serde::Deserialize;

use self::kinds::Keys;
pub use self::kinds::{
    PeerCertField, QuicListenerConfig, TcpListenerConfig, TlsListenerConfig, WsListenerConfig, WssListenerConfig,
};
use crate::authz::Cidr;

/// Every listener, by kind. The defaults: one TCP listener on 127.0.0.1:1883
/// and nothing else.
#[derive(Debug, Clone, Default)]
pub struct ListenersConfig {
    /// `[listeners.tcp]`: the default TCP listener (present unless `enable = false`).
    pub tcp: TcpListenerConfig,
    /// `[listeners.tls]`: the default TLS listener, when its keys are set.
    pub tls: Option<TlsListenerConfig>,
    /// `[listeners.ws]`: the default WebSocket listener, when its keys are set.
    pub ws: Option<WsListenerConfig>,
    /// `[listeners.wss]`: the default WebSocket-over-TLS listener, when its keys are set.
    pub wss: Option<WssListenerConfig>,
    /// `[listeners.quic]`: the default QUIC listener, when its keys are set.
    pub quic: Option<QuicListenerConfig>,
    /// `[listeners.KIND.NAME]`: the named listeners.
    pub named: NamedListeners,
}

/// The named listeners of each kind, by name.
#[derive(Debug, Clone, Default)]
pub struct NamedListeners {
    pub tcp: BTreeMap<String, TcpListenerConfig>,
    pub tls: BTreeMap<String, TlsListenerConfig>,
    pub ws: BTreeMap<String, WsListenerConfig>,
    pub wss: BTreeMap<String, WssListenerConfig>,
    pub quic: BTreeMap<String, QuicListenerConfig>,
}

/// The kinds of listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ListenerKind {
    Tcp,
    Tls,
    Ws,
    Wss,
    Quic,
}

impl ListenerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Tls => "tls",
            Self::Ws => "ws",
            Self::Wss => "wss",
            Self::Quic => "quic",
        }
    }
}

impl fmt::Display for ListenerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One listener's configuration, whatever its kind.
#[derive(Debug, Clone, Copy)]
pub enum ListenerSpec<'a> {
    Tcp(&'a TcpListenerConfig),
    Tls(&'a TlsListenerConfig),
    Ws(&'a WsListenerConfig),
    Wss(&'a WssListenerConfig),
    Quic(&'a QuicListenerConfig),
}

/// A listener with its kind and name.
#[derive(Debug, Clone, Copy)]
pub struct ListenerEntry<'a> {
    pub kind: ListenerKind,
    pub name: &'a str,
    pub spec: ListenerSpec<'a>,
}

impl ListenerEntry<'_> {
    /// Where the configuration file sets it: `[listeners.tcp]`, `[listeners.tls.internal]`.
    pub fn label(&self) -> String {
        match self.name {
            DEFAULT_NAME => format!("[listeners.{}]", self.kind),
            name => format!("[listeners.{}.{name}]", self.kind),
        }
    }

    /// `kind:name`, as in logs and [`crate::auth::TransportInfo::listener`].
    pub fn id(&self) -> String {
        format!("{}:{}", self.kind, self.name)
    }

    pub fn enabled(&self) -> bool {
        self.keys().common().enable
    }

    pub fn bind(&self) -> SocketAddr {
        self.keys().common().bind
    }

    pub fn max_connections(&self) -> NonZeroUsize {
        self.keys().common().max_connections
    }

    pub fn connect_timeout_secs(&self) -> NonZeroU16 {
        self.keys().common().connect_timeout_secs
    }

    /// The TLS side of a TLS, WSS or QUIC listener.
    pub fn tls(&self) -> Option<TlsOptions> {
        self.keys().tls()
    }

    /// The WebSocket side of a WS or WSS listener.
    pub fn websocket(&self) -> Option<WsOptions> {
        self.keys().websocket()
    }

    fn keys(&self) -> &dyn Keys {
        match self.spec {
            ListenerSpec::Tcp(c) => c,
            ListenerSpec::Tls(c) | ListenerSpec::Quic(c) => c,
            ListenerSpec::Ws(c) => c,
            ListenerSpec::Wss(c) => c,
        }
    }
}

/// The TLS keys of a TLS, WSS or QUIC listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub peer_cert_as_username: PeerCertField,
    pub peer_cert_as_clientid: PeerCertField,
}

/// The WebSocket keys of a WS or WSS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsOptions {
    pub path: String,
    pub proxy_address_header: Option<String>,
    pub trusted_proxies: Vec<Cidr>,
}

/// The name of the listener configured by `[listeners.KIND]`'s own keys.
pub const DEFAULT_NAME: &str = "default";

impl ListenersConfig {
    /// Every listener, enabled or not: per kind (tcp, tls, ws, wss, quic) the
    /// default one first, then the named ones by name.
    pub fn entries(&self) -> Vec<ListenerEntry<'_>> {
        fn add<'a, T>(
            out: &mut Vec<ListenerEntry<'a>>,
            kind: ListenerKind,
            default: Option<&'a T>,
            named: &'a BTreeMap<String, T>,
            spec: fn(&'a T) -> ListenerSpec<'a>,
        ) {
            out.extend(default.map(|c| ListenerEntry { kind, name: DEFAULT_NAME, spec: spec(c) }));
            out.extend(named.iter().map(|(name, c)| ListenerEntry { kind, name, spec: spec(c) }));
        }
        let mut out = Vec::new();
        let n = &self.named;
        add(&mut out, ListenerKind::Tcp, Some(&self.tcp), &n.tcp, ListenerSpec::Tcp);
        add(&mut out, ListenerKind::Tls, self.tls.as_ref(), &n.tls, ListenerSpec::Tls);
        add(&mut out, ListenerKind::Ws, self.ws.as_ref(), &n.ws, ListenerSpec::Ws);
        add(&mut out, ListenerKind::Wss, self.wss.as_ref(), &n.wss, ListenerSpec::Wss);
        add(&mut out, ListenerKind::Quic, self.quic.as_ref(), &n.quic, ListenerSpec::Quic);
        out
    }

    /// The enabled listeners, in the order of [`ListenersConfig::entries`].
    pub fn enabled(&self) -> Vec<ListenerEntry<'_>> {
        self.entries().into_iter().filter(ListenerEntry::enabled).collect()
    }

    /// Checks what spans keys: files exist, anonymous access on public
    /// addresses is a decision, no two stream listeners share an address.
    /// `anonymous_decided`: `[auth] allow_anonymous` is set.
    pub(super) fn validate(&self, anonymous_decided: bool) -> Result<(), String> {
        let enabled = self.enabled();
        if enabled.is_empty() {
            return Err("[listeners]: no listener is enabled (the default TCP listener has enable = false)".into());
        }
        for entry in &enabled {
            validate_one(entry, anonymous_decided)?;
        }
        for (i, a) in enabled.iter().enumerate() {
            let stream = |e: &ListenerEntry<'_>| e.kind != ListenerKind::Quic;
            if let Some(b) =
                enabled[..i].iter().find(|b| b.bind() == a.bind() && a.bind().port() != 0 && stream(a) == stream(b))
            {
                return Err(format!("{} and {} both bind \"{}\"", b.label(), a.label(), a.bind()));
            }
        }
        Ok(())
    }
}

fn validate_one(entry: &ListenerEntry<'_>, anonymous_decided: bool) -> Result<(), String> {
    let label = entry.label();
    let tls = entry.tls();
    if let Some(tls) = &tls {
        check_tls(&label, tls)?;
    }
    if let Some(ws) = entry.websocket() {
        check_websocket(&label, &ws)?;
    }
    let client_certs = tls.as_ref().is_some_and(|t| t.client_ca.is_some());
    if !anonymous_decided && !entry.bind().ip().is_loopback() && !client_certs {
        let with_ca =
            if tls.is_some() { ", or client_ca (clients then prove who they are with a certificate)" } else { "" };
        return Err(format!(
            "{label} bind = \"{}\" opens a non-loopback address: set [auth] allow_anonymous = true \
             (or configure authentication){with_ca} to accept clients there",
            entry.bind()
        ));
    }
    Ok(())
}

/// The TLS side of a TLS, WSS or QUIC listener: its files exist (their
/// contents are read by `server::check_files` and at start-up), and a
/// certificate field stands in for a name only when certificates are verified.
fn check_tls(label: &str, tls: &TlsOptions) -> Result<(), String> {
    for (key, path) in [("cert", Some(&tls.cert)), ("key", Some(&tls.key)), ("client_ca", tls.client_ca.as_ref())] {
        if let Some(path) = path
            && !path.is_file()
        {
            return Err(format!("{label} {key} = {path:?}: no such file"));
        }
    }
    for (key, field) in
        [("peer_cert_as_username", tls.peer_cert_as_username), ("peer_cert_as_clientid", tls.peer_cert_as_clientid)]
    {
        if field != PeerCertField::Disabled && tls.client_ca.is_none() {
            return Err(format!(
                "{label} {key} = \"{}\" needs client_ca: without it no client certificate is verified",
                field.as_str()
            ));
        }
    }
    Ok(())
}

/// The WebSocket side of a WS or WSS listener.
fn check_websocket(label: &str, ws: &WsOptions) -> Result<(), String> {
    if !ws.path.starts_with('/') {
        return Err(format!("{label} path = {:?}: an HTTP path starts with '/'", ws.path));
    }
    if let Some(header) = &ws.proxy_address_header {
        if header.is_empty() || !header.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return Err(format!("{label} proxy_address_header = {header:?} is not an HTTP header name"));
        }
        if ws.trusted_proxies.is_empty() {
            return Err(format!(
                "{label} proxy_address_header needs trusted_proxies: a header from anyone else is a forgery"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "listeners_tests.rs"]
mod tests;
