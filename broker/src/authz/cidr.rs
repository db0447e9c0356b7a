//! IPv4 and IPv6 address blocks: the one parser and matcher of CIDR text in
//! the broker. ACL `ip:` rules, bans (`broker ctl ban --cidr`, the bans file)
//! and a WebSocket listener's `trusted_proxies` all go through [`Cidr::parse`],
//! so they accept and refuse the same spellings.
//!
//! The behaviour, in one place:
//! - `ADDRESS/PREFIX`, or a bare address (a block of one); blanks around the
//!   whole text are ignored.
//! - An address with bits set beyond the prefix is refused, naming the block
//!   that was probably meant: `10.1.2.3/8` is more likely a typo (or a host
//!   address pasted where a network belongs) than a wish for `10.0.0.0/8`,
//!   and silently widening what a rule or a ban covers is the worse failure.
//! - IPv4 clients that reach a dual-stack socket show up as IPv4-mapped IPv6
//!   addresses (`::ffff:10.0.0.1`); they are treated as the IPv4 address they
//!   carry. So is a block written in that form: `::ffff:10.0.0.0/104` is
//!   `10.0.0.0/8`. An IPv6 block never contains an IPv4 client (`::/0` is
//!   "every IPv6 client"), nor an IPv4 block an IPv6 client.

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Deserializer};

/// Bits an IPv4-mapped IPv6 address spends before the IPv4 address (`::ffff:0:0/96`).
const MAPPED_PREFIX: u8 = 96;

/// An address block, `10.0.0.0/8` or `fd00::/8`; a bare address is a block of one.
/// Always in canonical form: host bits zero, an IPv4-mapped block as IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `ADDRESS[/PREFIX]` (see the module documentation). The error
    /// says what is wrong and, for host bits, which block was probably meant.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| format!("{address:?} is not an IPv4 or IPv6 address"))?;
        let bits = max_prefix(address);
        let prefix = match prefix {
            None => bits,
            // Digits only: `u8::from_str` would also take "+8".
            Some(p) => match p.parse::<u8>() {
                Ok(n) if n <= bits && p.bytes().all(|b| b.is_ascii_digit()) => n,
                _ => return Err(format!("{text}: prefix length {p:?} is not a number from 0 to {bits}")),
            },
        };
        let (address, prefix) = match address {
            IpAddr::V6(v6) if prefix >= MAPPED_PREFIX => match v6.to_ipv4_mapped() {
                Some(v4) => (IpAddr::V4(v4), prefix - MAPPED_PREFIX),
                None => (address, prefix),
            },
            _ => (address, prefix),
        };
        let block = Self::masked(address, prefix);
        if block.network != address {
            return Err(format!("{text} has host bits set; did you mean {block}?"));
        }
        Ok(block)
    }

    /// The block of `prefix` bits (at most the address's length) that holds
    /// `ip`; an IPv4-mapped `ip` is taken as its IPv4 address.
    pub fn around(ip: IpAddr, prefix: u8) -> Self {
        Self::masked(ip.to_canonical(), prefix)
    }

    /// `ip`'s block of `prefix` bits, in `ip`'s family as given.
    fn masked(ip: IpAddr, prefix: u8) -> Self {
        let prefix = prefix.min(max_prefix(ip));
        Self { network: from_bits(ip, as_bits(ip) & mask(ip, prefix)), prefix }
    }

    /// Whether `ip` is in the block; an IPv4-mapped `ip` counts as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        ip.is_ipv4() == self.network.is_ipv4() && as_bits(ip) & mask(ip, self.prefix) == as_bits(self.network)
    }

    /// The block's first address (its host bits are zero).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    pub fn prefix(&self) -> u8 {
        self.prefix
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text)
    }
}

/// From a string, with [`Cidr::parse`]'s message (toml adds the line).
impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn max_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

/// The network mask of `prefix` bits for `ip`'s family, right-aligned in a u128.
fn mask(ip: IpAddr, prefix: u8) -> u128 {
    let host_bits = u32::from(max_prefix(ip).saturating_sub(prefix));
    let ones = if ip.is_ipv4() { u128::from(u32::MAX) } else { u128::MAX };
    ones & u128::MAX.checked_shl(host_bits).unwrap_or(0)
}

fn as_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_bits(family: IpAddr, bits: u128) -> IpAddr {
    match family {
        // `bits` came from an IPv4 address and a mask, so it fits.
        IpAddr::V4(_) => IpAddr::V4(u32::try_from(bits).unwrap_or(u32::MAX).into()),
        IpAddr::V6(_) => IpAddr::V6(bits.into()),
    }
}

#[cfg(test)]
#[path = "cidr_tests.rs"]
mod tests;
