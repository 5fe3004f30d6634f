//! The client IP of a request: the connection's peer, or, when that peer is
//! a trusted proxy, the address `X-Forwarded-For` names for it.
//!
//! The rule (the one nginx's `real_ip_recursive on` and HAProxy apply):
//! - the peer is the TCP peer, or the source a PROXY protocol header gave;
//! - an untrusted peer is the client, whatever it wrote in
//!   `X-Forwarded-For` (a client cannot spoof its own address);
//! - a trusted peer vouches only for the entry it appended, the rightmost:
//!   walk the entries right to left over every `X-Forwarded-For` line (later
//!   lines are to the right) and take the first one that is not trusted;
//! - if every entry is trusted, the leftmost;
//! - an entry that is not an address (`unknown`, garbage) stops the walk:
//!   the answer is the last address accepted, i.e. the trusted hop to its
//!   right, or the peer itself if the rightmost entry is already bad. Nothing
//!   left of a bad entry is believed, since no trusted hop vouched for it.
//! - at most [`MAX_HOPS`] entries are examined, then the walk stops the same
//!   way (it bounds the work per request; an attacker cannot place entries
//!   to the right of the one its trusted proxy appends, so this never
//!   decides in its favour);
//! - empty list elements (`a,,b`, RFC 9110 §5.6.1) are skipped. An entry may
//!   carry a port (`192.0.2.1:5000`, `[2001:db8::1]:443`) or brackets
//!   (`[2001:db8::1]`), which are ignored. IPv4-mapped IPv6 addresses are
//!   reported as IPv4.
//!
//! Pure: no I/O, no allocation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::net::cidr::CidrSet;

/// Most `X-Forwarded-For` entries examined per request.
pub const MAX_HOPS: usize = 64;

/// Longest entry considered: the longest IPv6 text form in brackets with a
/// port (`[ffff:...:255.255.255.255]:65535`) is 53 bytes.
const MAX_ENTRY: usize = 64;

/// The client IP for a request from `peer` whose `X-Forwarded-For` field
/// values are `xff_rev`, **last field first** (the order in which the walk
/// visits them).
pub fn resolve<'a>(
    peer: IpAddr,
    trusted: &CidrSet,
    xff_rev: impl Iterator<Item = &'a [u8]>,
) -> IpAddr {
    let peer = peer.to_canonical();
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    let mut client = peer;
    let mut examined = 0;
    for line in xff_rev {
        for element in line.rsplit(|&b| b == b',') {
            let element = trim_ows(element);
            if element.is_empty() {
                continue;
            }
            examined += 1;
            if examined > MAX_HOPS {
                return client;
            }
            let Some(ip) = parse_entry(element) else {
                return client;
            };
            client = ip;
            if !trusted.contains(ip) {
                return ip;
            }
        }
    }
    client
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// One `X-Forwarded-For` entry as an address: `IPv4`, `IPv4:port`, `IPv6`,
/// `[IPv6]` or `[IPv6]:port`. `None` for anything else.
pub fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    if entry.len() > MAX_ENTRY {
        return None;
    }
    let s = std::str::from_utf8(entry).ok()?;
    let ip = if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        if !after.is_empty() {
            port(after.strip_prefix(':')?)?;
        }
        IpAddr::V6(inner.parse::<Ipv6Addr>().ok()?)
    } else if s.bytes().filter(|&b| b == b':').count() > 1 {
        IpAddr::V6(s.parse::<Ipv6Addr>().ok()?)
    } else {
        let (addr, p) = match s.split_once(':') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        if let Some(p) = p {
            port(p)?;
        }
        IpAddr::V4(addr.parse::<Ipv4Addr>().ok()?)
    };
    Some(ip.to_canonical())
}

/// A decimal port, 1 to 5 digits, at most 65535.
fn port(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 5 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn trusted() -> CidrSet {
        CidrSet::parse(&["10.0.0.0/8", "127.0.0.1", "::1", "2001:db8:ffff::/48"]).unwrap()
    }

    /// Resolves with the fields given in wire order.
    fn walk(peer: &str, lines: &[&str]) -> IpAddr {
        resolve(
            ip(peer),
            &trusted(),
            lines.iter().rev().map(|l| l.as_bytes()),
        )
    }

    #[test]
    fn untrusted_peer_is_the_client_whatever_xff_says() {
        assert_eq!(walk("203.0.113.9", &["198.51.100.1"]), ip("203.0.113.9"));
        assert_eq!(walk("203.0.113.9", &[]), ip("203.0.113.9"));
        let none = CidrSet::default();
        assert_eq!(
            resolve(ip("127.0.0.1"), &none, [&b"198.51.100.1"[..]].into_iter()),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn trusted_peer_yields_the_rightmost_untrusted_entry() {
        assert_eq!(walk("127.0.0.1", &["198.51.100.1"]), ip("198.51.100.1"));
        assert_eq!(
            walk("127.0.0.1", &["6.6.6.6, 198.51.100.1, 10.0.0.2"]),
            ip("198.51.100.1")
        );
        // Lines are concatenated in order: later lines are to the right.
        assert_eq!(
            walk("127.0.0.1", &["6.6.6.6, 198.51.100.1", "10.0.0.2,10.0.0.3"]),
            ip("198.51.100.1")
        );
        assert_eq!(
            walk("::1", &["2001:db8::7", "[2001:db8:ffff::1]:443"]),
            ip("2001:db8::7")
        );
        // No XFF: the trusted peer itself.
        assert_eq!(walk("10.1.1.1", &[]), ip("10.1.1.1"));
    }

    #[test]
    fn all_trusted_gives_the_leftmost() {
        assert_eq!(walk("127.0.0.1", &["10.0.0.5, 10.0.0.6"]), ip("10.0.0.5"));
    }

    #[test]
    fn a_bad_entry_stops_the_walk_at_the_last_good_address() {
        // Bad rightmost entry: the peer.
        assert_eq!(
            walk("127.0.0.1", &["198.51.100.1, unknown"]),
            ip("127.0.0.1")
        );
        // Bad entry behind a trusted hop: that hop.
        assert_eq!(
            walk("127.0.0.1", &["198.51.100.1, garbage, 10.0.0.9"]),
            ip("10.0.0.9")
        );
        assert_eq!(walk("127.0.0.1", &["1.2.3.4:99999"]), ip("127.0.0.1"));
        assert_eq!(walk("127.0.0.1", &["[::1"]), ip("127.0.0.1"));
    }

    #[test]
    fn ports_brackets_spaces_and_empty_elements() {
        assert_eq!(
            walk("127.0.0.1", &[" 198.51.100.1:5000 "]),
            ip("198.51.100.1")
        );
        assert_eq!(walk("127.0.0.1", &["[2001:db8::1]"]), ip("2001:db8::1"));
        assert_eq!(walk("127.0.0.1", &["\t2001:db8::1\t,,"]), ip("2001:db8::1"));
        assert_eq!(
            walk("127.0.0.1", &["198.51.100.1,, ,10.0.0.1"]),
            ip("198.51.100.1")
        );
        // Mapped addresses are IPv4, for the peer and for entries.
        assert_eq!(
            walk("::ffff:127.0.0.1", &["::ffff:198.51.100.1"]),
            ip("198.51.100.1")
        );
        assert_eq!(walk("::ffff:203.0.113.1", &[]), ip("203.0.113.1"));
    }

    #[test]
    fn entries() {
        for (s, want) in [
            ("192.0.2.1", Some("192.0.2.1")),
            ("192.0.2.1:80", Some("192.0.2.1")),
            ("2001:db8::1", Some("2001:db8::1")),
            ("[2001:db8::1]:8080", Some("2001:db8::1")),
            ("[::ffff:192.0.2.1]", Some("192.0.2.1")),
            ("192.0.2.1:", None),
            ("192.0.2.1:http", None),
            ("192.0.2.1:65536", None),
            ("[2001:db8::1]x", None),
            ("2001:db8::1%eth0", None),
            ("unknown", None),
            ("_hidden", None),
            ("192.0.2", None),
            ("01.2.3.4", None),
            ("", None),
        ] {
            assert_eq!(parse_entry(s.as_bytes()), want.map(ip), "{s:?}");
        }
        assert_eq!(parse_entry(&[0xff, b'1']), None);
    }

    #[test]
    fn the_walk_is_bounded() {
        let many = vec!["10.0.0.1"; MAX_HOPS + 5].join(",");
        let line = format!("198.51.100.1,{many}");
        // Past MAX_HOPS trusted entries the walk stops at a trusted hop.
        assert_eq!(walk("127.0.0.1", &[&line]), ip("10.0.0.1"));
        let few = vec!["10.0.0.1"; MAX_HOPS - 1].join(",");
        let line = format!("198.51.100.1,{few}");
        assert_eq!(walk("127.0.0.1", &[&line]), ip("198.51.100.1"));
    }

    /// The rule written the obvious way, over a collected list.
    fn reference(peer: IpAddr, set: &CidrSet, lines: &[String]) -> IpAddr {
        if !set.contains(peer) {
            return peer.to_canonical();
        }
        let entries: Vec<&str> = lines
            .iter()
            .flat_map(|l| l.split(','))
            .map(|e| e.trim_matches([' ', '\t']))
            .filter(|e| !e.is_empty())
            .collect();
        let mut client = peer.to_canonical();
        for (n, e) in entries.iter().rev().enumerate() {
            if n == MAX_HOPS {
                break;
            }
            match parse_entry(e.as_bytes()) {
                None => break,
                Some(a) if set.contains(a) => client = a,
                Some(a) => return a,
            }
        }
        client
    }

    fn addr() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("10.0.0.1".to_string()),
            Just("10.9.9.9:80".to_string()),
            Just("127.0.0.1".to_string()),
            Just("[::1]:443".to_string()),
            Just("198.51.100.1".to_string()),
            Just("2001:db8::5".to_string()),
            Just("203.0.113.7".to_string()),
            Just("unknown".to_string()),
            Just("".to_string()),
            "[0-9a-f:.\\[\\] ]{0,12}",
        ]
    }

    fn peer() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            Just(ip("127.0.0.1")),
            Just(ip("::ffff:10.1.2.3")),
            Just(ip("::1")),
            Just(ip("203.0.113.1")),
        ]
    }

    proptest! {
        /// The allocation-free walk agrees with the reference model.
        #[test]
        fn walk_matches_reference(
            peer in peer(),
            lines in prop::collection::vec(prop::collection::vec(addr(), 0..5), 0..4),
        ) {
            let lines: Vec<String> = lines.iter().map(|l| l.join(",")).collect();
            let set = trusted();
            let got = resolve(peer, &set, lines.iter().rev().map(|l| l.as_bytes()));
            prop_assert_eq!(got, reference(peer, &set, &lines));
        }

        /// Anti-spoofing: whatever a client writes to the left of what a
        /// trusted proxy appended cannot change the answer once an
        /// untrusted address is among the appended entries.
        #[test]
        fn a_client_prefix_cannot_move_the_answer(
            prefix in prop::collection::vec(addr(), 0..8),
            client in prop_oneof![Just("198.51.100.1"), Just("203.0.113.7"), Just("2001:db8::5")],
            hops in prop::collection::vec(prop_oneof![Just("10.0.0.1"), Just("127.0.0.1")], 0..4),
        ) {
            let mut appended = vec![client.to_string()];
            appended.extend(hops.iter().map(|h| h.to_string()));
            let honest = appended.join(", ");
            let spoofed = format!("{}, {honest}", prefix.join(", "));
            let set = trusted();
            let via = ip("127.0.0.1");
            let a = resolve(via, &set, [honest.as_bytes()].into_iter());
            let b = resolve(via, &set, [spoofed.as_bytes()].into_iter());
            prop_assert_eq!(a, ip(client));
            prop_assert_eq!(b, ip(client));
        }

        /// Never panics, and the answer is the peer or an address parsed from the input.
        #[test]
        fn arbitrary_bytes(peer in peer(), bytes in prop::collection::vec(any::<u8>(), 0..200)) {
            let got = resolve(peer, &trusted(), [bytes.as_slice()].into_iter());
            let from_input = bytes
                .split(|&b| b == b',')
                .filter_map(|e| parse_entry(trim_ows(e)))
                .any(|a| a == got);
            prop_assert!(got == peer.to_canonical() || from_input);
        }
    }
}
