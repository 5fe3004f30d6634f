//! TLS to a backend: the rustls client config a backend's `tls` object
//! describes. Verification is always on (the `ca_file`'s roots, else
//! Mozilla's); only an explicit `insecure_skip_verify: true` turns off the
//! certificate check, and the gateway logs a warning at start when it does.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;

use super::certs::provider;

/// A backend's TLS: the client config and the name its certificate must
/// carry.
pub struct UpstreamTls {
    /// The rustls client config (shared by every connection to it).
    pub config: Arc<ClientConfig>,
    /// The name sent as SNI and verified.
    pub name: ServerName<'static>,
    /// `ca_file`, if given (reports).
    pub ca_file: Option<String>,
    /// Verification is off (reports, and the start-up warning).
    pub insecure: bool,
}

impl fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("name", &self.name)
            .field("ca_file", &self.ca_file)
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl UpstreamTls {
    /// Whether a connection made with `self` is as good as one made with
    /// `other`: the same name verified, the same CA file, the same
    /// verification switch (the CA file's contents are read again by
    /// each reload and apply to new connections).
    pub fn same_settings(&self, other: &UpstreamTls) -> bool {
        self.name == other.name && self.ca_file == other.ca_file && self.insecure == other.insecure
    }

    /// Builds a backend's TLS from its `tls` fields; `at` names them in
    /// errors. `server_name` defaults to the address's IP.
    pub fn new(
        server_name: Option<&str>,
        ca_file: Option<&str>,
        insecure: bool,
        addr: SocketAddr,
        at: &str,
    ) -> Result<UpstreamTls, String> {
        let name = match server_name {
            Some(n) => ServerName::try_from(n.to_string()).map_err(|_| {
                format!("{at}.server_name: \"{n}\" is not a DNS name or IP address")
            })?,
            None => ServerName::IpAddress(addr.ip().into()),
        };
        let provider = provider();
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(rustls::DEFAULT_VERSIONS)
            .map_err(|e| format!("{at}: {e}"))?;
        let mut config = if insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
                .with_no_client_auth()
        } else {
            let mut roots = RootCertStore::empty();
            match ca_file {
                Some(file) => {
                    let pem = std::fs::read(file)
                        .map_err(|e| format!("{at}.ca_file: cannot read \"{file}\": {e}"))?;
                    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
                        .collect::<Result<_, _>>()
                        .map_err(|e| {
                            format!("{at}.ca_file: \"{file}\" is not PEM certificates: {e}")
                        })?;
                    let (added, _) = roots.add_parsable_certificates(certs);
                    if added == 0 {
                        return Err(format!(
                            "{at}.ca_file: \"{file}\" holds no usable CA certificate"
                        ));
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(UpstreamTls {
            config: Arc::new(config),
            name,
            ca_file: ca_file.map(str::to_string),
            insecure,
        })
    }
}

/// `insecure_skip_verify`: any certificate is accepted (the handshake's
/// signatures are still checked, so the peer holds the key it shows).
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
