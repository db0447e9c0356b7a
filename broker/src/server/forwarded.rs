//! The client address behind a reverse proxy (`proxy_address_header`, e.g.
//! X-Forwarded-For), believed only when the connection comes from a trusted
//! proxy.
//!
//! Each proxy appends the address it received the request from, so the
//! header reads client, proxy 1, proxy 2, ... and only the entries added by
//! trusted proxies can be believed. The client is therefore the rightmost
//! entry that is not itself a trusted proxy; entries to its left are what the
//! client claimed and are ignored. When every entry is a trusted proxy, the
//! leftmost is taken.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

/// The client's address: from `values` (the header's occurrences, in order)
/// when `peer` is a trusted proxy and the header parses, else `peer`. The
/// port of a forwarded address is unknown and given as 0.
pub(super) fn client_addr<'a>(
    peer: SocketAddr,
    values: impl IntoIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> SocketAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(&canonical(*ip)));
    if !is_trusted(&peer.ip()) {
        return peer;
    }
    let mut entries = Vec::new();
    for entry in values.into_iter().flat_map(|v| v.split(',')).map(str::trim) {
        match parse(entry) {
            Some(ip) => entries.push(ip),
            // A proxy wrote something unreadable (or "unknown"): nothing right of it can be placed.
            None => return peer,
        }
    }
    let client = entries.iter().rev().find(|ip| !is_trusted(ip)).or_else(|| entries.first());
    client.map_or(peer, |ip| SocketAddr::new(*ip, 0))
}

/// An entry: an address, or an address with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse(entry: &str) -> Option<IpAddr> {
    entry.parse::<IpAddr>().ok().or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip())).map(canonical)
}

/// An IPv4 address seen through an IPv6 socket (`::ffff:a.b.c.d`) as IPv4, so
/// that IPv4 networks match it.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn check(peer: &str, header: &[&str], trusted: &[&str], expected: &str) {
        let trusted: Vec<IpNet> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        let peer: SocketAddr = peer.parse().unwrap();
        let got = client_addr(peer, header.iter().copied(), &trusted);
        assert_eq!(got, expected.parse::<SocketAddr>().unwrap(), "peer {peer}, header {header:?}");
    }

    #[test]
    fn a_trusted_proxy_forwards_the_client_address() {
        check("127.0.0.1:5000", &["203.0.113.7"], &["127.0.0.1/32"], "203.0.113.7:0");
    }

    #[test]
    fn an_untrusted_peer_cannot_claim_another_address() {
        check("198.51.100.1:5000", &["203.0.113.7"], &["127.0.0.1/32"], "198.51.100.1:5000");
    }

    #[test]
    fn the_rightmost_untrusted_entry_is_the_client_not_what_it_claimed() {
        check("10.0.0.2:1", &["6.6.6.6, 203.0.113.7, 10.0.0.1"], &["10.0.0.0/8"], "203.0.113.7:0");
        check("10.0.0.2:1", &["6.6.6.6", "203.0.113.7"], &["10.0.0.0/8"], "203.0.113.7:0");
    }

    #[test]
    fn all_trusted_entries_give_the_leftmost() {
        check("10.0.0.2:1", &["10.0.0.9, 10.0.0.1"], &["10.0.0.0/8"], "10.0.0.9:0");
    }

    #[test]
    fn ports_and_ipv6_entries_are_read() {
        check("127.0.0.1:1", &["[2001:db8::1]:443"], &["127.0.0.0/8"], "[2001:db8::1]:0");
        check("127.0.0.1:1", &["203.0.113.7:8080"], &["127.0.0.0/8"], "203.0.113.7:0");
        check("[::ffff:127.0.0.1]:1", &["203.0.113.7"], &["127.0.0.0/8"], "203.0.113.7:0");
    }

    #[test]
    fn an_unreadable_or_missing_header_keeps_the_peer() {
        check("127.0.0.1:9", &["unknown"], &["127.0.0.0/8"], "127.0.0.1:9");
        check("127.0.0.1:9", &[], &["127.0.0.0/8"], "127.0.0.1:9");
    }
}
