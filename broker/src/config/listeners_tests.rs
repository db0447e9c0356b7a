use super::de::struct_fields;
use super::*;
use crate::config::Config;

fn parse(text: &str) -> ListenersConfig {
    match Config::parse(text) {
        Ok(config) => config.listeners,
        Err(e) => panic!("{text:?} should parse: {e}"),
    }
}

fn error_of(text: &str) -> String {
    match Config::parse(text) {
        Ok(_) => panic!("expected an error for {text:?}"),
        Err(e) => e.to_string(),
    }
}

/// An existing file, for keys that name one.
fn a_file() -> String {
    format!("{:?}", concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
}

fn tls_keys() -> String {
    format!("cert = {f}\nkey = {f}\n", f = a_file())
}

#[test]
fn the_single_table_syntax_is_the_listener_named_default() {
    let l = parse(&format!(
        "[listeners.tcp]\nbind = \"127.0.0.1:1884\"\n[listeners.tls]\nbind = \"127.0.0.1:8883\"\n{}\
         [listeners.ws]\nbind = \"127.0.0.1:8083\"\n",
        tls_keys()
    ));
    assert_eq!(l.tcp.bind.port(), 1884);
    assert_eq!(l.tls.as_ref().map(|t| t.bind.port()), Some(8883));
    assert_eq!(l.ws.as_ref().map(|w| w.path.as_str()), Some("/mqtt"));
    let ids: Vec<String> = l.enabled().iter().map(ListenerEntry::id).collect();
    assert_eq!(ids, ["tcp:default", "tls:default", "ws:default"]);
}

#[test]
fn named_listeners_come_after_the_default_of_their_kind_by_name() {
    let l = parse(
        "[listeners.tcp.internal]\nbind = \"127.0.0.2:1883\"\nmax_connections = 5\n\
         [listeners.tcp.edge]\nbind = \"127.0.0.3:1883\"\n\
         [listeners.ws.browser]\nbind = \"127.0.0.1:8083\"\npath = \"/ws\"\n",
    );
    assert!(l.ws.is_none(), "a table of named listeners only has no default listener");
    let entries = l.enabled();
    let ids: Vec<String> = entries.iter().map(ListenerEntry::id).collect();
    assert_eq!(ids, ["tcp:default", "tcp:edge", "tcp:internal", "ws:browser"]);
    assert_eq!(entries[2].max_connections().get(), 5);
    assert_eq!(entries[2].label(), "[listeners.tcp.internal]");
    assert_eq!(entries[3].websocket().map(|w| w.path), Some("/ws".to_string()));
}

#[test]
fn own_keys_and_named_tables_mix_in_one_kind() {
    let l = parse(&format!(
        "[listeners.tls]\nbind = \"127.0.0.1:8883\"\n{k}[listeners.tls.second]\nbind = \"127.0.0.1:8884\"\n{k}",
        k = tls_keys()
    ));
    assert!(l.tls.is_some());
    assert_eq!(l.named.tls.keys().collect::<Vec<_>>(), ["second"]);
}

#[test]
fn the_emqx_style_default_table_is_the_default_listener() {
    let l = parse("[listeners.tcp.default]\nbind = \"127.0.0.1:11883\"\n");
    assert_eq!(l.tcp.bind.port(), 11883);
    assert!(l.named.tcp.is_empty());
    let e = error_of("[listeners.tcp]\nbind = \"127.0.0.1:1\"\n[listeners.tcp.default]\nbind = \"127.0.0.1:2\"\n");
    assert!(e.contains("listener named default"), "{e}");
}

#[test]
fn the_default_tcp_listener_can_be_switched_off() {
    let l = parse("[listeners.tcp]\nenable = false\n[listeners.tcp.only]\nbind = \"127.0.0.1:1999\"\n");
    let ids: Vec<String> = l.enabled().iter().map(ListenerEntry::id).collect();
    assert_eq!(ids, ["tcp:only"]);
}

#[test]
fn a_misspelt_option_is_reported_at_its_line_with_the_options() {
    let e = error_of("[listeners.tcp]\nbind = \"127.0.0.1:1883\"\nmax_conections = 5\n");
    assert!(e.contains("line 3"), "{e}");
    assert!(e.contains("max_conections") && e.contains("max_connections"), "{e}");
}

#[test]
fn an_unknown_key_in_a_named_listener_is_reported_at_its_line() {
    let e = error_of("[listeners.tcp.a]\nbind = \"127.0.0.1:1883\"\npath = \"/x\"\n");
    assert!(e.contains("line 3") && e.contains("path"), "{e}");
}

#[test]
fn a_bad_value_in_a_named_listener_is_reported_at_its_line() {
    let e = error_of("[listeners.ws.a]\nbind = \"127.0.0.1:8083\"\n\nmax_connections = 0\n");
    assert!(e.contains("line 4") && e.contains("max_connections"), "{e}");
    let e = error_of("[listeners.ws.a]\nbind = \"127.0.0.1:8083\"\ntrusted_proxies = [\"10.0.0.0/33\"]\n");
    assert!(e.contains("line 3"), "{e}");
}

#[test]
fn a_missing_required_key_names_the_key_and_the_table() {
    let e = error_of("[listeners.ws.a]\npath = \"/mqtt\"\n");
    assert!(e.contains("bind") && e.contains("line 1"), "{e}");
    let e = error_of("[listeners.tls]\nbind = \"127.0.0.1:8883\"\n");
    assert!(e.contains("cert"), "{e}");
}

#[test]
fn an_unknown_kind_is_reported_at_its_line() {
    let e = error_of("[node]\nname = \"n\"\n[listeners.mqtts]\nbind = \"127.0.0.1:1\"\n");
    assert!(e.contains("line 3") && e.contains("mqtts"), "{e}");
}

#[test]
fn a_listener_name_is_letters_digits_underscore_or_dash() {
    let e = error_of("[listeners.tcp.\"a b\"]\nbind = \"127.0.0.1:1\"\n");
    assert!(e.contains("listener name"), "{e}");
    parse("[listeners.tcp.edge_2-b]\nbind = \"127.0.0.1:2\"\n");
}

#[test]
fn two_stream_listeners_on_one_address_are_refused_but_quic_may_share_the_port() {
    let e = error_of("[listeners.ws]\nbind = \"127.0.0.1:1883\"\n");
    assert!(e.contains("[listeners.tcp] and [listeners.ws] both bind"), "{e}");
    parse(&format!("[listeners.quic]\nbind = \"127.0.0.1:1883\"\n{}", tls_keys()));
    parse("[listeners.tcp.a]\nbind = \"127.0.0.1:0\"\n[listeners.tcp.b]\nbind = \"127.0.0.1:0\"\n");
}

#[test]
fn public_named_listeners_need_an_anonymous_decision() {
    let e = error_of("[listeners.ws.public]\nbind = \"0.0.0.0:8083\"\n");
    assert!(e.contains("[listeners.ws.public]") && e.contains("allow_anonymous"), "{e}");
    let with_ca = format!("[listeners.tls.public]\nbind = \"0.0.0.0:8883\"\n{}client_ca = {}\n", tls_keys(), a_file());
    parse(&with_ca);
}

#[test]
fn peer_cert_fields_need_a_client_ca() {
    let text = format!("[listeners.tls]\nbind = \"127.0.0.1:8883\"\n{}peer_cert_as_username = \"cn\"\n", tls_keys());
    assert!(error_of(&text).contains("needs client_ca"));
    let e = error_of(&format!(
        "[listeners.tls]\nbind = \"127.0.0.1:8883\"\n{}peer_cert_as_username = \"crt\"\n",
        tls_keys()
    ));
    assert!(e.contains("line 5") && e.contains("san_dns"), "{e}");
}

#[test]
fn a_proxy_header_needs_trusted_proxies() {
    let e = error_of("[listeners.ws]\nbind = \"127.0.0.1:8083\"\nproxy_address_header = \"x-forwarded-for\"\n");
    assert!(e.contains("trusted_proxies"), "{e}");
    let l = parse(
        "[listeners.ws]\nbind = \"127.0.0.1:8083\"\nproxy_address_header = \"x-forwarded-for\"\n\
         trusted_proxies = [\"127.0.0.1/32\", \"::1/128\"]\n",
    );
    assert_eq!(l.ws.map(|w| w.trusted_proxies.len()), Some(2));
}

#[test]
fn missing_certificate_files_are_named() {
    let e = error_of("[listeners.wss.a]\nbind = \"127.0.0.1:8084\"\ncert = \"/nonexistent.pem\"\nkey = \"/x\"\n");
    assert!(e.contains("[listeners.wss.a] cert") && e.contains("nonexistent"), "{e}");
}

#[test]
fn the_probe_reads_the_keys_serde_derives() {
    assert_eq!(struct_fields::<TcpListenerConfig>(), ["enable", "bind", "max_connections", "connect_timeout_secs"]);
    assert!(struct_fields::<WssListenerConfig>().contains(&"trusted_proxies"));
}

#[test]
fn a_broker_without_any_listener_is_refused() {
    assert!(error_of("[listeners.tcp]\nenable = false\n").contains("no listener"));
}

#[test]
fn a_trusted_proxy_network_with_host_bits_is_refused_with_the_network_meant() {
    let e = error_of(
        "[listeners.ws]\nbind = \"127.0.0.1:8083\"\nproxy_address_header = \"x-forwarded-for\"\n\
         trusted_proxies = [\"10.0.0.0/8\", \"192.168.1.1/16\"]\n",
    );
    assert!(e.contains("line 4") && e.contains("did you mean 192.168.0.0/16?"), "{e}");
    let l = parse(
        "[listeners.ws]\nbind = \"127.0.0.1:8083\"\nproxy_address_header = \"x-forwarded-for\"\n\
         trusted_proxies = [\"::ffff:10.0.0.0/104\"]\n",
    );
    let trusted = l.ws.map(|w| w.trusted_proxies).unwrap_or_default();
    assert!(trusted.iter().any(|net| net.contains("10.9.9.9".parse().expect("an address"))), "{trusted:?}");
}
