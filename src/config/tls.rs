//! `tls`: the HTTPS listener beside the plain one, its certificates and
//! protocol floor.
//!
//! Invariants of a loaded config: every certificate and key file was read
//! and parsed, each key matches its certificate, no host is claimed by two
//! certificates, at most one certificate is the default (no `hosts`), and
//! `min_version` is 1.2 or 1.3. The files are read again when the TLS
//! state is built (and on every reload), so a renewed certificate needs no
//! config edit.

use std::net::SocketAddr;

use serde_json::Value;

use super::{as_object, check_keys, err, field, ConfigError};

/// The `tls` object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// The HTTPS listener.
    pub listen: SocketAddr,
    /// Certificates, in config order.
    pub certificates: Vec<CertConfig>,
    /// The oldest protocol version accepted.
    pub min_version: TlsVersion,
    /// The plain listener answers 308 to the HTTPS URL (health excepted).
    pub redirect_http: bool,
}

/// One certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertConfig {
    /// PEM chain, leaf first.
    pub cert: String,
    /// PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: String,
    /// Host names and `*.` wildcards it serves (lower-case); empty: the
    /// default certificate.
    pub hosts: Vec<String>,
}

/// A TLS protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    /// TLS 1.2.
    V12,
    /// TLS 1.3.
    V13,
}

impl TlsVersion {
    /// The config spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::V12 => "1.2",
            TlsVersion::V13 => "1.3",
        }
    }
}

/// Reads `tls`.
pub(super) fn tls(v: &Value) -> Result<TlsConfig, ConfigError> {
    let o = as_object(v, "tls")?;
    check_keys(
        o,
        "tls.",
        &["listen", "certificates", "min_version", "redirect_http"],
    )?;
    let listen: String = field(o, "listen", "tls.listen")?
        .ok_or_else(|| ConfigError("tls.listen: required".into()))?;
    let listen = super::resolve(&listen).map_err(|e| ConfigError(format!("tls.listen: {e}")))?;
    let list = match o.get("certificates") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) | None => {
            return err("tls.certificates", "at least one certificate is required")
        }
        Some(_) => return err("tls.certificates", "must be a list"),
    };
    let mut certificates: Vec<CertConfig> = Vec::with_capacity(list.len());
    for (i, c) in list.iter().enumerate() {
        let path = format!("tls.certificates[{i}]");
        let o = as_object(c, &path)?;
        check_keys(o, &format!("{path}."), &["cert", "key", "hosts"])?;
        let cert: String = field(o, "cert", &format!("{path}.cert"))?
            .ok_or_else(|| ConfigError(format!("{path}.cert: required")))?;
        let key: String = field(o, "key", &format!("{path}.key"))?
            .ok_or_else(|| ConfigError(format!("{path}.key: required")))?;
        let hosts: Vec<String> = field(o, "hosts", &format!("{path}.hosts"))?.unwrap_or_default();
        if o.contains_key("hosts") && hosts.is_empty() {
            return err(
                &format!("{path}.hosts"),
                "must not be empty (leave it out for the default certificate)",
            );
        }
        let mut lower = Vec::with_capacity(hosts.len());
        for (j, h) in hosts.iter().enumerate() {
            let at = format!("{path}.hosts[{j}]");
            if !super::routing::is_host_pattern(h) {
                return err(
                    &at,
                    format!("\"{h}\" is not a host name or a \"*.\" wildcard"),
                );
            }
            let h = h.trim_end_matches('.').to_ascii_lowercase();
            if let Some(k) = certificates.iter().position(|c| c.hosts.contains(&h)) {
                return err(
                    &at,
                    format!("\"{h}\" is already served by tls.certificates[{k}]"),
                );
            }
            if lower.contains(&h) {
                return err(&at, format!("\"{h}\" is listed twice"));
            }
            lower.push(h);
        }
        if lower.is_empty() {
            if let Some(k) = certificates.iter().position(|c| c.hosts.is_empty()) {
                return err(
                    &path,
                    format!(
                        "a second default certificate (tls.certificates[{k}] has no hosts either)"
                    ),
                );
            }
        }
        let c = CertConfig {
            cert,
            key,
            hosts: lower,
        };
        crate::tls::certs::load(&c, &path).map_err(ConfigError)?;
        certificates.push(c);
    }
    let min_version = match o.get("min_version") {
        None => TlsVersion::V12,
        Some(Value::String(s)) if s == "1.2" => TlsVersion::V12,
        Some(Value::String(s)) if s == "1.3" => TlsVersion::V13,
        Some(_) => return err("tls.min_version", "must be \"1.2\" or \"1.3\""),
    };
    let redirect_http = field(o, "redirect_http", "tls.redirect_http")?.unwrap_or(false);
    Ok(TlsConfig {
        listen,
        certificates,
        min_version,
        redirect_http,
    })
}
