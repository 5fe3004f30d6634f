//! The TLS side of the HTTPS listener: the rustls server config built from
//! `tls` (versions, ALPN, resumption, the SNI resolver), swapped whole on a
//! reload so new handshakes take the new certificates while open
//! connections keep the config they started with, and the handshake
//! counters the metrics report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls::{ProtocolVersion, ServerConfig, SupportedCipherSuite};

use super::certs::{provider, CertStore};
use crate::config::{TlsConfig, TlsVersion};

/// Resumption cache entries (TLS 1.2 session ids and 1.3 stateful tickets).
const SESSION_CACHE: usize = 4096;

/// What one snapshot of the TLS config serves.
#[derive(Debug)]
pub struct Snapshot {
    /// For `Accepted::into_connection`.
    pub config: Arc<ServerConfig>,
    /// The certificates (chosen before the handshake goes on: an unknown
    /// name without a default gets `unrecognized_name`).
    pub store: Arc<CertStore>,
}

/// Why a handshake failed (`gateway_tls_handshakes_total{result}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// No certificate for the SNI name and no default.
    UnknownName,
    /// Plain HTTP (or anything not TLS) sent to the TLS port.
    NotTls,
    /// A protocol error: a version or cipher we refuse, no common ALPN, a
    /// malformed message.
    Protocol,
    /// The client closed or the deadline passed before the handshake ended.
    Incomplete,
}

impl HandshakeFailure {
    /// Every reason, in index order.
    pub const ALL: [HandshakeFailure; 4] = [
        HandshakeFailure::UnknownName,
        HandshakeFailure::NotTls,
        HandshakeFailure::Protocol,
        HandshakeFailure::Incomplete,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            HandshakeFailure::UnknownName => "unknown_name",
            HandshakeFailure::NotTls => "not_tls",
            HandshakeFailure::Protocol => "protocol",
            HandshakeFailure::Incomplete => "incomplete",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// Handshake counters.
#[derive(Debug, Default)]
pub struct TlsStats {
    /// Handshakes completed.
    pub ok: AtomicU64,
    /// Failed, by [`HandshakeFailure`].
    pub failed: [AtomicU64; 4],
    /// Completed with TLS 1.2 and 1.3.
    pub versions: [AtomicU64; 2],
    /// Completed per cipher suite (the provider's list, in order).
    pub suites: Vec<(SupportedCipherSuite, AtomicU64)>,
}

impl TlsStats {
    /// Counts a failure.
    pub fn failed(&self, why: HandshakeFailure) {
        self.failed[why.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a completed handshake.
    pub fn completed(&self, version: Option<ProtocolVersion>, suite: Option<SupportedCipherSuite>) {
        self.ok.fetch_add(1, Ordering::Relaxed);
        match version {
            Some(ProtocolVersion::TLSv1_2) => self.versions[0].fetch_add(1, Ordering::Relaxed),
            Some(ProtocolVersion::TLSv1_3) => self.versions[1].fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        if let Some(s) = suite {
            if let Some((_, n)) = self.suites.iter().find(|(c, _)| c.suite() == s.suite()) {
                n.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The HTTPS listener's TLS state, shared by every worker.
#[derive(Debug)]
pub struct TlsServer {
    current: RwLock<Arc<Snapshot>>,
    /// Kept across reloads, so tickets issued before one still resume.
    ticketer: Arc<dyn rustls::server::ProducesTickets>,
    /// Counters.
    pub stats: TlsStats,
}

impl TlsServer {
    /// Builds the TLS state for `cfg` (reading the certificate files).
    pub fn new(cfg: &TlsConfig) -> Result<TlsServer, String> {
        let ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| e.to_string())?;
        let snapshot = build(cfg, &ticketer)?;
        let stats = TlsStats {
            suites: provider()
                .cipher_suites
                .iter()
                .map(|s| (*s, AtomicU64::new(0)))
                .collect(),
            ..TlsStats::default()
        };
        Ok(TlsServer {
            current: RwLock::new(Arc::new(snapshot)),
            ticketer,
            stats,
        })
    }

    /// The config new handshakes use.
    pub fn current(&self) -> Arc<Snapshot> {
        self.current
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Re-reads the certificate files of `cfg` and swaps them in; on any
    /// error nothing changes.
    pub fn reload(&self, cfg: &TlsConfig) -> Result<(), String> {
        let snapshot = self.prepare(cfg)?;
        self.install(snapshot);
        Ok(())
    }

    /// Reads `cfg`'s certificate files and builds what [`TlsServer::install`]
    /// would put in place, without touching the running state (a config
    /// reload validates everything before it changes anything).
    pub fn prepare(&self, cfg: &TlsConfig) -> Result<Arc<Snapshot>, String> {
        Ok(Arc::new(build(cfg, &self.ticketer)?))
    }

    /// Makes `snapshot` the one new handshakes use.
    pub fn install(&self, snapshot: Arc<Snapshot>) {
        match self.current.write() {
            Ok(mut cur) => *cur = snapshot,
            Err(p) => *p.into_inner() = snapshot,
        }
    }
}

fn build(
    cfg: &TlsConfig,
    ticketer: &Arc<dyn rustls::server::ProducesTickets>,
) -> Result<Snapshot, String> {
    let store = Arc::new(CertStore::load(cfg)?);
    let versions: &[&rustls::SupportedProtocolVersion] = match cfg.min_version {
        TlsVersion::V12 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V13 => &[&rustls::version::TLS13],
    };
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(versions)
        .map_err(|e| format!("tls: {e}"))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver(store.clone())));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    config.ticketer = ticketer.clone();
    Ok(Snapshot {
        config: Arc::new(config),
        store,
    })
}

/// SNI → certificate, for rustls.
#[derive(Debug)]
struct Resolver(Arc<CertStore>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.0.choose(hello.server_name()).cloned()
    }
}
