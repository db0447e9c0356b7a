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

use crate::authz::Cidr;

/// The client's address: from `values` (the header's occurrences, in order)
/// when `peer` is a trusted proxy and the header parses, else `peer`. The
/// port of a forwarded address is unknown and given as 0.
pub(super) fn client_addr<'a>(
    peer: SocketAddr,
    values: impl IntoIterator<Item = &'a str>,
    trusted: &[Cidr],
) -> SocketAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(*ip));
    if !is_trusted(&peer.ip()) {
        return peer;
    }
    // From the right: each entry was written by the hop after it, so the scan
    // stops at the first one no trusted proxy vouches for. What lies left of
    // it is the client's own claim, unread: garbage there must not hide the
    // client behind its proxy's address. Only the header's occurrences are
    // collected (tungstenite reads at most 124 headers in 64 KiB), not its
    // entries.
    let values: Vec<&str> = values.into_iter().collect();
    let mut leftmost = None;
    for entry in values.iter().rev().flat_map(|v| v.rsplit(',')).map(str::trim) {
        // A proxy wrote something unreadable (or "unknown"): nothing left of it can be placed.
        let Some(ip) = parse(entry) else { return peer };
        if !is_trusted(&ip) {
            return SocketAddr::new(ip, 0);
        }
        leftmost = Some(ip);
    }
    leftmost.map_or(peer, |ip| SocketAddr::new(ip, 0))
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
        let trusted: Vec<Cidr> = trusted.iter().map(|t| t.parse().unwrap()).collect();
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
    fn garbage_claimed_by_the_client_does_not_hide_it_behind_its_proxy() {
        check("10.0.0.2:1", &["garbage, 203.0.113.7"], &["10.0.0.0/8"], "203.0.113.7:0");
        check("10.0.0.2:1", &["unknown", "203.0.113.7, 10.0.0.1"], &["10.0.0.0/8"], "203.0.113.7:0");
    }

    #[test]
    fn an_unreadable_entry_written_by_a_trusted_proxy_keeps_the_peer() {
        check("10.0.0.2:1", &["203.0.113.7, unknown, 10.0.0.1"], &["10.0.0.0/8"], "10.0.0.2:1");
    }

    #[test]
    fn a_header_of_many_trusted_entries_is_read_to_its_leftmost() {
        let header = format!("203.0.113.7{}", ", 10.0.0.1".repeat(5000));
        check("10.0.0.2:1", &[header.as_str()], &["10.0.0.0/8"], "203.0.113.7:0");
    }

    #[test]
    fn an_unreadable_or_missing_header_keeps_the_peer() {
        check("127.0.0.1:9", &["unknown"], &["127.0.0.0/8"], "127.0.0.1:9");
        check("127.0.0.1:9", &[], &["127.0.0.0/8"], "127.0.0.1:9");
    }
}
