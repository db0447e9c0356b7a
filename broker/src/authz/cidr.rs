//! IPv4 and IPv6 address blocks for `ip:` rules.

use std::fmt;
use std::net::IpAddr;

/// An address block, `10.0.0.0/8` or `fd00::/8`; a bare address is a block of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDRESS[/PREFIX]`. An address with bits set beyond the prefix
    /// is refused: `10.1.0.0/8` is more likely a typo than a wish for `10.0.0.0/8`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().map_err(|_| format!("{address:?} is not an IPv4 or IPv6 address"))?;
        let bits = max_prefix(network);
        let prefix = match prefix {
            None => bits,
            Some(p) => match p.parse::<u8>() {
                Ok(p) if p <= bits => p,
                _ => return Err(format!("prefix length {p:?} is not a number from 0 to {bits}")),
            },
        };
        let cidr = Self { network, prefix };
        if cidr.masked(network) != Some(as_bits(network)) {
            return Err(format!("{text} has address bits set beyond the /{prefix} prefix"));
        }
        Ok(cidr)
    }

    /// Whether `ip` is in the block. An IPv4-mapped IPv6 peer (`::ffff:10.0.0.1`,
    /// as a dual-stack listener reports IPv4 clients) counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.masked(ip.to_canonical()) == Some(as_bits(self.network))
    }

    /// `ip`'s bits under this block's mask, or `None` if it is of the other family.
    fn masked(&self, ip: IpAddr) -> Option<u128> {
        if ip.is_ipv4() != self.network.is_ipv4() {
            return None;
        }
        let host_bits = u32::from(max_prefix(ip) - self.prefix);
        let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
        Some(as_bits(ip) & mask)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn as_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        match Cidr::parse(text) {
            Ok(c) => c,
            Err(e) => panic!("{text}: {e}"),
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|_| panic!("{text} is an address"))
    }

    #[test]
    fn ipv4_blocks_contain_their_addresses_only() {
        let block = cidr("10.0.0.0/8");
        assert!(block.contains(ip("10.0.0.1")));
        assert!(block.contains(ip("10.255.255.255")));
        assert!(!block.contains(ip("11.0.0.1")));
        assert!(!block.contains(ip("::1")));
        assert!(cidr("0.0.0.0/0").contains(ip("192.0.2.7")));
        assert!(cidr("192.0.2.7").contains(ip("192.0.2.7")));
        assert!(!cidr("192.0.2.7").contains(ip("192.0.2.8")));
    }

    #[test]
    fn ipv6_blocks_contain_their_addresses_only() {
        let block = cidr("fd00::/8");
        assert!(block.contains(ip("fd12:3456::1")));
        assert!(!block.contains(ip("fe80::1")));
        assert!(!block.contains(ip("10.0.0.1")));
        assert!(cidr("::/0").contains(ip("2001:db8::1")));
        assert!(cidr("::1").contains(ip("::1")));
        assert!(cidr("2001:db8::/127").contains(ip("2001:db8::1")));
    }

    #[test]
    fn an_ipv4_mapped_peer_counts_as_ipv4() {
        assert!(cidr("127.0.0.0/8").contains(ip("::ffff:127.0.0.1")));
    }

    #[test]
    fn malformed_blocks_are_refused() {
        for bad in ["10.0.0.0/33", "10.0.0.0/x", "10.0.0/8", "10.1.0.0/8", "::1/129", "fd00::1/8", "", "/8"] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
