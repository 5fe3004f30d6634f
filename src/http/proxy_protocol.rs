//! The PROXY protocol header (HAProxy's spec, versions 1 and 2), read before
//! the first request when the listener has `proxy_protocol` on.
//!
//! A load balancer in front of the gateway writes one header at the start of
//! each TCP connection, naming the client it accepted; that source address
//! becomes the connection's peer. Sans-IO: [`parse`] looks at the bytes
//! received so far and says "need more", "done after N bytes", or "not a
//! valid header" (the caller closes the connection: it is not HTTP yet, so
//! there is nobody to answer).
//!
//! Rules (spec sections in brackets):
//! - v1 [2.1]: `PROXY TCP4|TCP6 SRC DST SPORT DPORT\r\n`, single spaces,
//!   at most 107 bytes with the CRLF; `PROXY UNKNOWN ...\r\n` keeps the real
//!   peer (everything up to the CRLF is ignored). Addresses must match the
//!   family; ports are decimal 0..=65535.
//! - v2 [2.2]: the 12-byte signature, version 2, command LOCAL (keep the
//!   real peer: a health check from the balancer itself) or PROXY. TCP over
//!   IPv4 or IPv6 gives the source; the other valid families (UNSPEC, UDP,
//!   UNIX) fall back to the real peer, as the spec allows a receiver that
//!   does not implement them. Unknown versions, commands or families, or an
//!   address block shorter than its family needs, are errors. TLVs are
//!   skipped.
//! - A header longer than [`MAX_HEADER`] is refused, as nginx does
//!   (`NGX_PROXY_PROTOCOL_MAX_HEADER`): the spec allows 16 + 65535 bytes,
//!   no balancer sends more than a few hundred, and the bytes must fit in
//!   the request buffer.
//! - The first bytes decide: anything that is not a prefix of `PROXY ` or
//!   of the v2 signature is refused at once, without waiting for more.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Longest v1 header, CRLF included (spec 2.1).
pub const V1_MAX: usize = 107;

/// Longest header accepted (nginx's bound).
pub const MAX_HEADER: usize = 4096;

/// The v2 signature (spec 2.2).
pub const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

const V1_PREFIX: &[u8] = b"PROXY ";

/// The outcome of looking at the bytes received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A valid start: read more.
    Incomplete,
    /// A complete header of `len` bytes (consume them; HTTP follows).
    Complete {
        /// Header length.
        len: usize,
        /// The client the balancer accepted; `None`: keep the real peer
        /// (v1 `UNKNOWN`, v2 `LOCAL`, or a family not carried over TCP/IP).
        source: Option<SocketAddr>,
    },
}

/// Why the bytes are not a PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeaderError {
    /// Neither signature: the client spoke first without a header.
    Missing,
    /// A v1 line that breaks the grammar.
    BadV1(&'static str),
    /// A v2 header with invalid fields.
    BadV2(&'static str),
    /// Longer than [`V1_MAX`] (v1) or [`MAX_HEADER`] (v2).
    TooLong,
}

impl std::fmt::Display for ProxyHeaderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyHeaderError::Missing => f.write_str("no PROXY protocol header"),
            ProxyHeaderError::BadV1(why) => write!(f, "bad PROXY v1 header: {why}"),
            ProxyHeaderError::BadV2(why) => write!(f, "bad PROXY v2 header: {why}"),
            ProxyHeaderError::TooLong => f.write_str("PROXY header too long"),
        }
    }
}

/// Looks at `buf`, the connection's first bytes.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    if is_prefix_of(buf, V1_PREFIX) {
        if buf.len() < V1_PREFIX.len() {
            return Ok(Parsed::Incomplete);
        }
        return parse_v1(buf);
    }
    if is_prefix_of(buf, V2_SIGNATURE) {
        if buf.len() < 16 {
            return Ok(Parsed::Incomplete);
        }
        return parse_v2(buf);
    }
    Err(ProxyHeaderError::Missing)
}

/// `buf` and `sig` agree on their common length.
fn is_prefix_of(buf: &[u8], sig: &[u8]) -> bool {
    let n = buf.len().min(sig.len());
    buf[..n] == sig[..n]
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= V1_MAX {
            Err(ProxyHeaderError::TooLong)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let len = lf + 1;
    let Some(line) = window[..lf].strip_suffix(b"\r") else {
        return Err(ProxyHeaderError::BadV1("line must end with CRLF"));
    };
    let rest = &line[V1_PREFIX.len()..];
    if rest.starts_with(b"UNKNOWN") && (rest.len() == 7 || rest[7] == b' ') {
        return Ok(Parsed::Complete { len, source: None });
    }
    let text = std::str::from_utf8(rest).map_err(|_| ProxyHeaderError::BadV1("not ASCII"))?;
    let mut fields = text.split(' ');
    let (Some(proto), Some(src), Some(dst), Some(sport), Some(dport), None) = (
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
        fields.next(),
    ) else {
        return Err(ProxyHeaderError::BadV1("expected 5 fields after PROXY"));
    };
    let bad_addr = ProxyHeaderError::BadV1("address does not match the protocol");
    // The destination is checked for syntax only: it is our own address.
    let src_ip: IpAddr = match proto {
        "TCP4" => {
            dst.parse::<Ipv4Addr>().map_err(|_| bad_addr)?;
            src.parse::<Ipv4Addr>().map_err(|_| bad_addr)?.into()
        }
        "TCP6" => {
            dst.parse::<Ipv6Addr>().map_err(|_| bad_addr)?;
            src.parse::<Ipv6Addr>().map_err(|_| bad_addr)?.into()
        }
        _ => {
            return Err(ProxyHeaderError::BadV1(
                "protocol must be TCP4, TCP6 or UNKNOWN",
            ))
        }
    };
    let sport = v1_port(sport)?;
    v1_port(dport)?;
    Ok(Parsed::Complete {
        len,
        source: Some(SocketAddr::new(src_ip, sport)),
    })
}

/// Decimal 0..=65535 without sign or leading zeros (spec 2.1).
fn v1_port(s: &str) -> Result<u16, ProxyHeaderError> {
    let bad = ProxyHeaderError::BadV1("bad port");
    if s.is_empty()
        || s.len() > 5
        || !s.bytes().all(|b| b.is_ascii_digit())
        || (s.len() > 1 && s.starts_with('0'))
    {
        return Err(bad);
    }
    s.parse().map_err(|_| bad)
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Err(ProxyHeaderError::BadV2("version must be 2"));
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(ProxyHeaderError::BadV2("command must be LOCAL or PROXY")),
    };
    let family = buf[13];
    // (family, transport) pairs the spec defines, with their address sizes.
    let addr_len = match family {
        0x00 => 0,
        0x11 | 0x12 => 12,
        0x21 | 0x22 => 36,
        0x31 | 0x32 => 216,
        _ => return Err(ProxyHeaderError::BadV2("unknown address family")),
    };
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body;
    if len > MAX_HEADER {
        return Err(ProxyHeaderError::TooLong);
    }
    if !local && body < addr_len {
        return Err(ProxyHeaderError::BadV2("address block too short"));
    }
    if buf.len() < len {
        return Ok(Parsed::Incomplete);
    }
    if local {
        // "The receiver must ... use the real connection endpoints and
        // discard the protocol block including the family" (spec 2.2).
        return Ok(Parsed::Complete { len, source: None });
    }
    let a = &buf[16..len];
    let source = match family {
        0x11 => {
            let ip: [u8; 4] = a[0..4].try_into().unwrap_or_default();
            let port = u16::from_be_bytes([a[8], a[9]]);
            Some(SocketAddr::new(Ipv4Addr::from(ip).into(), port))
        }
        0x21 => {
            let ip: [u8; 16] = a[0..16].try_into().unwrap_or_default();
            let port = u16::from_be_bytes([a[32], a[33]]);
            Some(SocketAddr::new(Ipv6Addr::from(ip).into(), port))
        }
        // UNSPEC, UDP, UNIX: fall back to the real peer.
        _ => None,
    };
    Ok(Parsed::Complete { len, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn done(len: usize, source: Option<&str>) -> Result<Parsed, ProxyHeaderError> {
        Ok(Parsed::Complete {
            len,
            source: source.map(sa),
        })
    }

    /// A v2 header: command, family, address block, TLV bytes.
    fn v2(cmd: u8, family: u8, addrs: &[u8], tlv: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | cmd);
        h.push(family);
        h.extend_from_slice(&((addrs.len() + tlv.len()) as u16).to_be_bytes());
        h.extend_from_slice(addrs);
        h.extend_from_slice(tlv);
        h
    }

    fn v2_tcp4(src: [u8; 4], sport: u16) -> Vec<u8> {
        let mut a = src.to_vec();
        a.extend_from_slice(&[127, 0, 0, 1]);
        a.extend_from_slice(&sport.to_be_bytes());
        a.extend_from_slice(&80u16.to_be_bytes());
        v2(1, 0x11, &a, &[])
    }

    #[test]
    fn v1_tcp4_tcp6_unknown() {
        let h = b"PROXY TCP4 198.51.100.9 127.0.0.1 5555 80\r\nGET / HTTP/1.1\r\n";
        assert_eq!(parse(h), done(43, Some("198.51.100.9:5555")));
        let h = b"PROXY TCP6 2001:db8::9 ::1 65535 0\r\n";
        assert_eq!(parse(h), done(h.len(), Some("[2001:db8::9]:65535")));
        assert_eq!(parse(b"PROXY UNKNOWN\r\n"), done(15, None));
        assert_eq!(
            parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\nxx"),
            done(35, None)
        );
    }

    #[test]
    fn v1_longest_header_fits() {
        let h = b"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        assert_eq!(h.len(), V1_MAX);
        assert!(matches!(parse(h), Ok(Parsed::Complete { len: V1_MAX, .. })));
    }

    #[test]
    fn v1_rejections() {
        for bad in [
            &b"PROXY TCP4 198.51.100.9 127.0.0.1 5555 80\n"[..],
            b"PROXY TCP4 198.51.100.9  127.0.0.1 5555 80\r\n",
            b"PROXY TCP4 198.51.100.9 127.0.0.1 5555\r\n",
            b"PROXY TCP4 198.51.100.9 127.0.0.1 5555 80 9\r\n",
            b"PROXY TCP4 2001:db8::9 127.0.0.1 5555 80\r\n",
            b"PROXY TCP6 198.51.100.9 ::1 5555 80\r\n",
            b"PROXY TCP4 198.51.100.9 127.0.0.1 65536 80\r\n",
            b"PROXY TCP4 198.51.100.9 127.0.0.1 055 80\r\n",
            b"PROXY TCP4 198.51.100.9 127.0.0.1 +55 80\r\n",
            b"PROXY UDP4 198.51.100.9 127.0.0.1 55 80\r\n",
            b"PROXY UNKNOWNX\r\n",
            b"PROXY tcp4 198.51.100.9 127.0.0.1 55 80\r\n",
            b"PROXY TCP4 198.51.100.9 127.0.0.1 55 80 \r\n",
            b"PROXY \xff\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(ProxyHeaderError::BadV1(_))),
                "{:?} -> {:?}",
                String::from_utf8_lossy(bad),
                parse(bad)
            );
        }
        let long = [b"PROXY UNKNOWN ".as_slice(), &[b'x'; 100]].concat();
        assert_eq!(parse(&long), Err(ProxyHeaderError::TooLong));
    }

    #[test]
    fn missing_header_is_refused_from_the_first_byte() {
        assert_eq!(parse(b"G"), Err(ProxyHeaderError::Missing));
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyHeaderError::Missing));
        assert_eq!(parse(b"PROXX"), Err(ProxyHeaderError::Missing));
        assert_eq!(
            parse(b"\r\n\r\n\0\r\nQUIT!"),
            Err(ProxyHeaderError::Missing)
        );
        assert_eq!(parse(b"\r\n\r\nGET"), Err(ProxyHeaderError::Missing));
        assert_eq!(parse(b""), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"PROX"), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"\r\n\r\n\0"), Ok(Parsed::Incomplete));
    }

    #[test]
    fn v2_tcp4_tcp6_local_unspec() {
        let h = v2_tcp4([198, 51, 100, 9], 5555);
        assert_eq!(h.len(), 28);
        assert_eq!(parse(&h), done(28, Some("198.51.100.9:5555")));

        let mut a = "2001:db8::9".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        a.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        a.extend_from_slice(&443u16.to_be_bytes());
        a.extend_from_slice(&80u16.to_be_bytes());
        let h = v2(1, 0x21, &a, &[0x04, 0, 1, 0]);
        assert_eq!(parse(&h), done(16 + 36 + 4, Some("[2001:db8::9]:443")));

        // LOCAL: the real peer, whatever the block holds.
        assert_eq!(parse(&v2(0, 0x00, &[], &[])), done(16, None));
        assert_eq!(parse(&v2(0, 0x11, &[1, 2], &[])), done(18, None));
        // UNSPEC and UDP under PROXY: fall back to the real peer.
        assert_eq!(parse(&v2(1, 0x00, &[], &[])), done(16, None));
        assert_eq!(parse(&v2(1, 0x12, &[0; 12], &[])), done(28, None));
    }

    #[test]
    fn v2_rejections() {
        let mut h = v2_tcp4([1, 2, 3, 4], 1);
        h[12] = 0x11;
        assert!(matches!(parse(&h), Err(ProxyHeaderError::BadV2(_))));
        h[12] = 0x22;
        assert!(matches!(parse(&h), Err(ProxyHeaderError::BadV2(_))));
        let mut h = v2_tcp4([1, 2, 3, 4], 1);
        h[13] = 0x13;
        assert!(matches!(parse(&h), Err(ProxyHeaderError::BadV2(_))));
        assert!(matches!(
            parse(&v2(1, 0x21, &[0; 12], &[])),
            Err(ProxyHeaderError::BadV2(_))
        ));
        // Too long is known from the length field alone.
        let mut h = v2(1, 0x11, &[0; 12], &[]);
        h[14..16].copy_from_slice(&(MAX_HEADER as u16).to_be_bytes());
        assert_eq!(parse(&h[..16]), Err(ProxyHeaderError::TooLong));
    }

    /// Splitting a header at every point: each prefix is Incomplete, the
    /// whole gives the same answer as in one piece.
    #[test]
    fn every_split_point() {
        let mut a = "2001:db8::9".parse::<Ipv6Addr>().unwrap().octets().to_vec();
        a.extend_from_slice(&[0; 20]);
        for h in [
            b"PROXY TCP4 198.51.100.9 127.0.0.1 5555 80\r\n".to_vec(),
            b"PROXY UNKNOWN\r\n".to_vec(),
            v2_tcp4([198, 51, 100, 9], 5555),
            v2(1, 0x21, &a, &[1, 0, 0]),
        ] {
            let whole = parse(&h);
            assert!(matches!(whole, Ok(Parsed::Complete { .. })));
            for cut in 0..h.len() {
                assert_eq!(parse(&h[..cut]), Ok(Parsed::Incomplete), "cut {cut}");
            }
            let mut more = h.clone();
            more.extend_from_slice(b"GET / HTTP/1.1\r\n");
            assert_eq!(parse(&more), whole);
        }
    }

    proptest! {
        /// Never panics; a complete header's length is within the input and
        /// the bounds; appending bytes never changes a final answer.
        #[test]
        fn arbitrary_bytes(prefix in prop_oneof![Just(b"PROXY ".to_vec()), Just(V2_SIGNATURE.to_vec()), Just(vec![])],
                           tail in prop::collection::vec(any::<u8>(), 0..200),
                           extra in prop::collection::vec(any::<u8>(), 0..20)) {
            let buf = [prefix, tail].concat();
            let r = parse(&buf);
            if let Ok(Parsed::Complete { len, .. }) = r {
                prop_assert!(len <= buf.len() && len <= MAX_HEADER);
            }
            if r != Ok(Parsed::Incomplete) {
                let longer = [buf.clone(), extra].concat();
                prop_assert_eq!(parse(&longer), r);
            }
        }
    }
}
