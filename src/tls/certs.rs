//! Certificates: loading PEM files into rustls keys, and choosing one by
//! SNI with the same host rules as routes (exact name, then the longest
//! `*.` wildcard suffix, then the default).

use std::collections::HashMap;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{CertConfig, TlsConfig};

/// The crypto provider the gateway uses (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// One loaded certificate, with what the metrics report about it.
#[derive(Debug)]
pub struct Loaded {
    /// The chain and key, ready for handshakes.
    pub key: Arc<CertifiedKey>,
    /// The leaf's `notAfter`, Unix seconds (`None` if unreadable).
    pub not_after: Option<i64>,
}

/// Reads and checks one certificate; errors name `path`'s fields.
pub fn load(c: &CertConfig, path: &str) -> Result<Loaded, String> {
    let read = |file: &str, field: &str| {
        std::fs::read(file).map_err(|e| format!("{path}.{field}: cannot read \"{file}\": {e}"))
    };
    let pem = read(&c.cert, "cert")?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            format!(
                "{path}.cert: \"{}\" is not a PEM certificate chain: {e}",
                c.cert
            )
        })?;
    if chain.is_empty() {
        return Err(format!("{path}.cert: \"{}\" holds no certificate", c.cert));
    }
    let pem = read(&c.key, "key")?;
    let key = PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| format!("{path}.key: \"{}\" is not a PEM private key: {e}", c.key))?;
    let not_after = not_after(&chain[0]);
    let key = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => {
            format!(
                "{path}.key: \"{}\" does not match the certificate \"{}\"",
                c.key, c.cert
            )
        }
        e => format!("{path}.key: \"{}\": {e}", c.key),
    })?;
    Ok(Loaded {
        key: Arc::new(key),
        not_after,
    })
}

/// The certificates of a `tls` config, chosen by SNI.
#[derive(Debug, Default)]
pub struct CertStore {
    exact: HashMap<String, usize>,
    /// `*.a.test` is stored as `a.test`.
    wildcard: HashMap<String, usize>,
    default: Option<usize>,
    /// Every certificate, in config order, with its config entry.
    pub certs: Vec<(CertConfig, Loaded)>,
}

impl CertStore {
    /// Loads every certificate of `cfg` (reading the files again).
    pub fn load(cfg: &TlsConfig) -> Result<CertStore, String> {
        let mut s = CertStore::default();
        for (i, c) in cfg.certificates.iter().enumerate() {
            let loaded = load(c, &format!("tls.certificates[{i}]"))?;
            if c.hosts.is_empty() {
                s.default = Some(i);
            }
            for h in &c.hosts {
                match h.strip_prefix("*.") {
                    Some(suffix) => s.wildcard.insert(suffix.to_string(), i),
                    None => s.exact.insert(h.clone(), i),
                };
            }
            s.certs.push((c.clone(), loaded));
        }
        Ok(s)
    }

    /// The certificate for `sni` (`None`: no SNI sent). `None` back means
    /// no certificate serves that name and there is no default.
    pub fn choose(&self, sni: Option<&str>) -> Option<&Arc<CertifiedKey>> {
        let i = match sni {
            Some(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                self.exact
                    .get(&name)
                    .copied()
                    .or_else(|| {
                        // Longest wildcard suffix first: `b.x.a.test` tries
                        // `x.a.test`, then `a.test`, then `test`.
                        name.match_indices('.')
                            .find_map(|(dot, _)| self.wildcard.get(&name[dot + 1..]).copied())
                    })
                    .or(self.default)
            }
            None => self.default,
        }?;
        self.certs.get(i).map(|(_, l)| &l.key)
    }
}

/// The leaf's `notAfter` as Unix seconds, read from its DER (the validity
/// is the fifth field of the TBSCertificate; only the time is parsed).
fn not_after(cert: &CertificateDer<'_>) -> Option<i64> {
    // Certificate ::= SEQUENCE { tbsCertificate SEQUENCE { ... }, ... }
    let (_, cert_seq, _) = der_element(cert.as_ref())?;
    let (_, tbs_content, _) = der_element(cert_seq)?;
    let tbs = der_children(tbs_content)?;
    // version [0] is optional: with it, validity is the 5th element.
    let first_is_version = tbs.first()?.0 == 0xa0;
    let validity = tbs.get(if first_is_version { 4 } else { 3 })?;
    let times = der_children(validity.1)?;
    let (tag, t) = *times.get(1)?;
    let t = std::str::from_utf8(t).ok()?;
    // UTCTime YYMMDDHHMMSSZ (years 1950-2049), GeneralizedTime YYYYMMDDHHMMSSZ.
    let (year, rest) = match tag {
        0x17 => {
            let yy: i64 = t.get(0..2)?.parse().ok()?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, t.get(2..)?)
        }
        0x18 => (t.get(0..4)?.parse().ok()?, t.get(4..)?),
        _ => return None,
    };
    let num = |r: std::ops::Range<usize>| rest.get(r)?.parse::<i64>().ok();
    let (mo, d, h, mi, s) = (num(0..2)?, num(2..4)?, num(4..6)?, num(6..8)?, num(8..10)?);
    Some(days_from_civil(year, mo, d) * 86_400 + h * 3600 + mi * 60 + s)
}

/// Days since 1970-01-01 (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (tag, content) of each element in `der`.
fn der_children(der: &[u8]) -> Option<Vec<(u8, &[u8])>> {
    let mut out = Vec::new();
    let mut rest = der;
    while !rest.is_empty() {
        let (tag, content, after) = der_element(rest)?;
        out.push((tag, content));
        rest = after;
    }
    Some(out)
}

/// One DER element: tag, content, what follows.
fn der_element(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *der.first()?;
    let first = *der.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for b in der.get(2..2 + n)? {
            len = (len << 8) | usize::from(*b);
        }
        (len, 2 + n)
    };
    let content = der.get(hdr..hdr.checked_add(len)?)?;
    Some((tag, content, &der[hdr + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2026, 12, 1), 20_788);
    }
}
