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

fn error_of(text: &str) -> String {
    match Cidr::parse(text) {
        Ok(c) => panic!("{text:?} accepted as {c}"),
        Err(e) => e,
    }
}

#[test]
fn blocks_print_in_canonical_form() {
    for (text, shown) in [
        ("10.0.0.0/8", "10.0.0.0/8"),
        ("192.0.2.7", "192.0.2.7/32"),
        ("0.0.0.0/0", "0.0.0.0/0"),
        (" 10.0.0.0/8 ", "10.0.0.0/8"),
        ("2001:db8::/32", "2001:db8::/32"),
        ("2001:0db8:0:0::/32", "2001:db8::/32"),
        ("::1", "::1/128"),
        ("::/0", "::/0"),
    ] {
        assert_eq!(cidr(text).to_string(), shown, "{text}");
    }
}

#[test]
fn ipv4_blocks_contain_their_addresses_only() {
    let block = cidr("10.0.0.0/8");
    assert!(block.contains(ip("10.0.0.1")));
    assert!(block.contains(ip("10.255.255.255")));
    assert!(!block.contains(ip("11.0.0.1")));
    assert!(!block.contains(ip("9.255.255.255")));
    assert!(!block.contains(ip("::1")));
    assert!(!block.contains(ip("::a00:1")), "an IPv4-compatible IPv6 address is IPv6");
    assert!(cidr("0.0.0.0/0").contains(ip("192.0.2.7")));
    assert!(!cidr("0.0.0.0/0").contains(ip("2001:db8::1")));
    assert!(cidr("192.0.2.7").contains(ip("192.0.2.7")));
    assert!(!cidr("192.0.2.7").contains(ip("192.0.2.8")));
    assert!(cidr("192.0.2.128/25").contains(ip("192.0.2.255")));
    assert!(!cidr("192.0.2.128/25").contains(ip("192.0.2.127")));
}

#[test]
fn ipv6_blocks_contain_their_addresses_only() {
    let block = cidr("fd00::/8");
    assert!(block.contains(ip("fd12:3456::1")));
    assert!(!block.contains(ip("fe80::1")));
    assert!(!block.contains(ip("10.0.0.1")));
    assert!(cidr("::/0").contains(ip("2001:db8::1")));
    assert!(!cidr("::/0").contains(ip("10.0.0.1")), "an IPv6 block holds no IPv4 client");
    assert!(!cidr("::/0").contains(ip("::ffff:10.0.0.1")), "nor one seen through a dual-stack socket");
    assert!(cidr("::1").contains(ip("::1")));
    assert!(cidr("2001:db8::/127").contains(ip("2001:db8::1")));
    assert!(!cidr("2001:db8::/127").contains(ip("2001:db8::2")));
}

#[test]
fn an_ipv4_mapped_peer_counts_as_ipv4() {
    assert!(cidr("127.0.0.0/8").contains(ip("::ffff:127.0.0.1")));
    assert!(!cidr("127.0.0.0/8").contains(ip("::ffff:128.0.0.1")));
}

#[test]
fn an_ipv4_mapped_block_is_the_ipv4_block() {
    assert_eq!(cidr("::ffff:10.0.0.0/104"), cidr("10.0.0.0/8"));
    assert_eq!(cidr("::ffff:192.0.2.7"), cidr("192.0.2.7/32"));
    assert_eq!(cidr("::ffff:0.0.0.0/96"), cidr("0.0.0.0/0"));
    assert!(cidr("::ffff:10.0.0.0/104").contains(ip("10.1.2.3")));
    assert!(cidr("::ffff:10.0.0.0/104").contains(ip("::ffff:10.1.2.3")));
}

#[test]
fn host_bits_are_refused_naming_the_block_probably_meant() {
    for (text, meant) in [
        ("10.1.2.3/8", "10.0.0.0/8"),
        ("192.0.2.77/24", "192.0.2.0/24"),
        ("fd00::1/8", "fd00::/8"),
        ("2001:db8::1/32", "2001:db8::/32"),
        ("::ffff:10.1.0.0/104", "10.0.0.0/8"),
        ("::ffff:10.0.0.0/64", "::/64"),
    ] {
        let e = error_of(text);
        assert!(e.contains(&format!("{text} has host bits set; did you mean {meant}?")), "{text}: {e}");
    }
}

#[test]
fn malformed_blocks_are_refused() {
    for bad in ["10.0.0.0/33", "10.0.0.0/x", "10.0.0.0/+8", "10.0.0.0/", "10.0.0/8", "::1/129", "", "/8", "host/8"] {
        error_of(bad);
    }
    assert!(error_of("10.0.0.0/33").contains("0 to 32"));
    assert!(error_of("::/129").contains("0 to 128"));
    assert!(error_of("nowhere/8").contains("not an IPv4 or IPv6 address"));
}

#[test]
fn the_block_around_an_address_clears_its_host_bits() {
    assert_eq!(Cidr::around(ip("2001:db8:0:1::7"), 64).to_string(), "2001:db8:0:1::/64");
    assert_eq!(Cidr::around(ip("::ffff:10.1.2.3"), 8).to_string(), "10.0.0.0/8");
    assert_eq!(Cidr::around(ip("10.1.2.3"), 64).to_string(), "10.1.2.3/32", "the prefix is capped");
    assert_eq!(Cidr::around(ip("10.1.2.3"), 0).to_string(), "0.0.0.0/0");
}

#[test]
fn a_block_deserializes_with_the_parsers_message() {
    #[derive(Debug, serde::Deserialize)]
    struct T {
        net: Cidr,
    }
    let t: T = toml::from_str("net = \"10.0.0.0/8\"").expect("a block");
    assert_eq!(t.net, cidr("10.0.0.0/8"));
    let e = toml::from_str::<T>("net = \"10.0.0.1/8\"").expect_err("host bits").to_string();
    assert!(e.contains("did you mean 10.0.0.0/8?"), "{e}");
}
