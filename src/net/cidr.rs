//! CIDR blocks and sets of them: which peers are trusted proxies.
//!
//! Addresses are compared in canonical form: an IPv4-mapped IPv6 address
//! (`::ffff:10.0.0.1`, what a dual-stack listener reports for an IPv4 peer)
//! is the IPv4 address it maps, and a block inside `::ffff:0:0/96` is stored
//! as the IPv4 block it covers, so `10.0.0.0/8` matches a peer however the
//! socket spelled it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Most blocks in one set: a membership test is a linear scan, run for each
/// `X-Forwarded-For` hop examined, so the set is kept small by rule.
pub const MAX_BLOCKS: usize = 1024;

/// One address block, e.g. `10.0.0.0/8` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cidr {
    /// IPv4 network bits and prefix length (0..=32).
    V4 {
        /// Network address (host bits zero).
        net: u32,
        /// Prefix length.
        len: u8,
    },
    /// IPv6 network bits and prefix length (0..=128).
    V6 {
        /// Network address (host bits zero).
        net: u128,
        /// Prefix length.
        len: u8,
    },
}

fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

impl Cidr {
    /// Parses `ADDR/LEN` or a bare `ADDR` (a single host: /32 or /128).
    /// Host bits set below the prefix are an error (`10.0.0.1/8` is more
    /// likely a typo than a network), as is anything but a plain address.
    pub fn parse(s: &str) -> Result<Cidr, String> {
        let (addr_s, len_s) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr_s
            .parse()
            .map_err(|_| format!("'{s}' is not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len_s {
            None => max,
            Some(l) if !l.is_empty() && l.len() <= 3 && l.bytes().all(|b| b.is_ascii_digit()) => {
                match l.parse::<u8>() {
                    Ok(n) if n <= max => n,
                    _ => return Err(format!("'{s}': prefix length must be 0..={max}")),
                }
            }
            Some(_) => return Err(format!("'{s}': prefix length must be 0..={max}")),
        };
        let cidr = match addr {
            IpAddr::V4(a) => Cidr::V4 {
                net: u32::from(a),
                len,
            },
            IpAddr::V6(a) => Cidr::V6 {
                net: u128::from(a),
                len,
            },
        };
        let masked = cidr.masked();
        if masked != cidr {
            return Err(format!(
                "'{s}' has host bits set below the prefix (did you mean '{masked}'?)"
            ));
        }
        Ok(masked.canonical())
    }

    fn masked(self) -> Cidr {
        match self {
            Cidr::V4 { net, len } => Cidr::V4 {
                net: net & mask32(len),
                len,
            },
            Cidr::V6 { net, len } => Cidr::V6 {
                net: net & mask128(len),
                len,
            },
        }
    }

    /// A block inside `::ffff:0:0/96` as the IPv4 block it covers.
    fn canonical(self) -> Cidr {
        const MAPPED: u128 = 0xffff;
        match self {
            Cidr::V6 { net, len } if len >= 96 && net >> 32 == MAPPED => Cidr::V4 {
                net: net as u32,
                len: len - 96,
            },
            c => c,
        }
    }

    /// Whether `ip` (in canonical form) is inside the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (*self, ip.to_canonical()) {
            (Cidr::V4 { net, len }, IpAddr::V4(a)) => u32::from(a) & mask32(len) == net,
            (Cidr::V6 { net, len }, IpAddr::V6(a)) => u128::from(a) & mask128(len) == net,
            _ => false,
        }
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Cidr::V4 { net, len } => write!(f, "{}/{len}", Ipv4Addr::from(net)),
            Cidr::V6 { net, len } => write!(f, "{}/{len}", Ipv6Addr::from(net)),
        }
    }
}

/// A set of blocks; empty means "nothing is trusted".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CidrSet {
    blocks: Vec<Cidr>,
}

impl CidrSet {
    /// Parses a list of blocks. The error carries the index of the bad
    /// element, so the config can name it (`trusted_proxies[1]: ...`).
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<CidrSet, (usize, String)> {
        if items.len() > MAX_BLOCKS {
            return Err((MAX_BLOCKS, format!("at most {MAX_BLOCKS} entries")));
        }
        let blocks = items
            .iter()
            .enumerate()
            .map(|(i, s)| Cidr::parse(s.as_ref()).map_err(|e| (i, e)))
            .collect::<Result<_, _>>()?;
        Ok(CidrSet { blocks })
    }

    /// Whether no block is configured.
    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Whether `ip` is inside any block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.blocks.iter().any(|b| b.contains(ip))
    }

    /// The blocks, canonical.
    pub fn blocks(&self) -> &[Cidr] {
        &self.blocks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn set(items: &[&str]) -> CidrSet {
        CidrSet::parse(items).unwrap()
    }

    #[test]
    fn parses_blocks_and_bare_hosts() {
        assert_eq!(
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::V4 {
                net: 0x0a00_0000,
                len: 8
            }
        );
        assert_eq!(
            Cidr::parse("127.0.0.1").unwrap().to_string(),
            "127.0.0.1/32"
        );
        assert_eq!(Cidr::parse("::1").unwrap().to_string(), "::1/128");
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
        assert_eq!(Cidr::parse("::/0").unwrap().to_string(), "::/0");
        assert_eq!(
            Cidr::parse("2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        // A mapped block is the IPv4 block it covers.
        assert_eq!(
            Cidr::parse("::ffff:10.0.0.0/104").unwrap().to_string(),
            "10.0.0.0/8"
        );
    }

    #[test]
    fn rejects_what_is_not_a_block() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/08x",
            "10.0.0.0/8/8",
            "10.0.0",
            "010.0.0.0/8",
            "host.example",
            " 10.0.0.0/8",
            "[::1]/128",
            "10.0.0.0/0008",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad:?} accepted");
        }
        let e = Cidr::parse("10.0.0.1/8").unwrap_err();
        assert!(e.contains("did you mean '10.0.0.0/8'"), "{e}");
    }

    #[test]
    fn names_the_bad_element() {
        let e = CidrSet::parse(&["10.0.0.0/8", "nope"]).unwrap_err();
        assert_eq!(e.0, 1);
        assert!(e.1.contains("'nope'"), "{}", e.1);
    }

    #[test]
    fn membership() {
        let s = set(&["10.0.0.0/8", "127.0.0.1/32", "::1/128", "2001:db8::/32"]);
        assert!(s.contains(ip("10.255.1.2")));
        assert!(!s.contains(ip("11.0.0.1")));
        assert!(s.contains(ip("127.0.0.1")));
        assert!(!s.contains(ip("127.0.0.2")));
        assert!(s.contains(ip("::1")));
        assert!(s.contains(ip("2001:db8:1::5")));
        assert!(!s.contains(ip("2001:db9::5")));
        // Mapped forms of IPv4 peers match the IPv4 blocks.
        assert!(s.contains(ip("::ffff:10.1.2.3")));
        assert!(s.contains(ip("::ffff:127.0.0.1")));
        assert!(!set(&[]).contains(ip("127.0.0.1")));
        assert!(set(&["0.0.0.0/0"]).contains(ip("203.0.113.9")));
        assert!(!set(&["0.0.0.0/0"]).contains(ip("2001:db8::1")));
    }

    proptest! {
        /// Membership agrees with a bit-by-bit reference on random blocks.
        #[test]
        fn v4_membership_matches_reference(net: u32, len in 0u8..=32, probe: u32) {
            let masked = if len == 0 { 0 } else { net & (u32::MAX << (32 - len)) };
            let c = Cidr::parse(&format!("{}/{len}", Ipv4Addr::from(masked))).unwrap();
            let same_prefix = (0..len).all(|i| (masked >> (31 - i)) & 1 == (probe >> (31 - i)) & 1);
            prop_assert_eq!(c.contains(IpAddr::V4(Ipv4Addr::from(probe))), same_prefix);
        }

        #[test]
        fn v6_membership_matches_reference(net: u128, len in 0u8..=128, probe: u128) {
            let masked = if len == 0 { 0 } else { net & (u128::MAX << (128 - len)) };
            let block = Cidr::parse(&format!("{}/{len}", Ipv6Addr::from(masked))).unwrap();
            let same_prefix = (0..len).all(|i| (masked >> (127 - i)) & 1 == (probe >> (127 - i)) & 1);
            // Mapped blocks and probes are compared as IPv4: skip that corner.
            prop_assume!(!matches!(block, Cidr::V4 { .. }));
            prop_assume!(Ipv6Addr::from(probe).to_ipv4_mapped().is_none());
            prop_assert_eq!(block.contains(IpAddr::V6(Ipv6Addr::from(probe))), same_prefix);
        }

        /// Parsing never panics, whatever the text.
        #[test]
        fn parse_never_panics(s in ".{0,60}") {
            let _ = Cidr::parse(&s);
        }
    }
}
