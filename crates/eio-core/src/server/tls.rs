//! TLS for the native listener: the certificate and key as Node's `tls`
//! options give them (PEM), in a rustls configuration that
//! `setSecureContext` replaces for the connections that come after.

use parking_lot::RwLock;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsAcceptor;

/// Node's `tls.createServer` options that eio-rs supports, PEM as bytes.
#[derive(Debug, Clone, Default)]
pub struct TlsSettings {
    /// `key`: the private key (PKCS#8, PKCS#1 RSA or SEC1 EC), unencrypted.
    pub key: Vec<Vec<u8>>,
    /// `cert`: the certificate chain, the server's own first.
    pub cert: Vec<Vec<u8>>,
    /// `ca`: the authorities client certificates must chain to
    /// (with `request_cert`).
    pub ca: Vec<Vec<u8>>,
    /// `requestCert`: ask clients for a certificate.
    pub request_cert: bool,
    /// `rejectUnauthorized` (with `requestCert`): refuse clients without a
    /// valid one. Node's default is true.
    pub reject_unauthorized: bool,
    /// `minVersion`: `TLSv1.2` (Node's default) or `TLSv1.3`.
    pub min_version: Option<String>,
    /// `maxVersion`: `TLSv1.2` or `TLSv1.3` (the default).
    pub max_version: Option<String>,
    /// `handshakeTimeout`: how long a client may take to finish the TLS
    /// handshake before the connection is closed (Node's default: 120 s).
    pub handshake_timeout: Option<Duration>,
}

/// A TLS option eio-rs cannot use, by its Node name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError {
    /// The option at fault (`key`, `cert`, `ca`, `minVersion`, ...).
    pub option: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl TlsError {
    fn new(option: &'static str, message: impl Into<String>) -> Self {
        TlsError {
            option,
            message: message.into(),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS option `{}`: {}", self.option, self.message)
    }
}

impl std::error::Error for TlsError {}

/// Node's default `handshakeTimeout`.
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(120);

/// A listener's TLS: its current configuration, replaceable while it runs.
#[derive(Debug)]
pub struct Tls {
    config: RwLock<Arc<ServerConfig>>,
    handshake_timeout: Duration,
}

impl Tls {
    /// Checks `settings` and makes the configuration.
    pub fn new(settings: &TlsSettings) -> Result<Self, TlsError> {
        Ok(Tls {
            config: RwLock::new(Arc::new(server_config(settings)?)),
            handshake_timeout: settings
                .handshake_timeout
                .unwrap_or(DEFAULT_HANDSHAKE_TIMEOUT),
        })
    }

    /// Node's `server.setSecureContext()`: new connections use `settings`;
    /// open ones keep theirs. On an error nothing changes.
    pub fn replace(&self, settings: &TlsSettings) -> Result<(), TlsError> {
        let config = Arc::new(server_config(settings)?);
        *self.config.write() = config;
        Ok(())
    }

    /// The acceptor for a new connection.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.read().clone())
    }

    /// How long a handshake may take.
    pub(crate) fn handshake_timeout(&self) -> Duration {
        self.handshake_timeout
    }
}

fn server_config(s: &TlsSettings) -> Result<ServerConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions = versions(s)?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| TlsError::new("minVersion", e.to_string()))?;
    let builder = if s.request_cert {
        let mut roots = RootCertStore::empty();
        for pem in &s.ca {
            for cert in certificates(pem, "ca")? {
                roots
                    .add(cert)
                    .map_err(|e| TlsError::new("ca", e.to_string()))?;
            }
        }
        if roots.is_empty() {
            return Err(TlsError::new(
                "ca",
                "requestCert needs the authorities that client certificates chain to",
            ));
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
        let verifier = if s.reject_unauthorized {
            verifier
        } else {
            verifier.allow_unauthenticated()
        };
        let verifier = verifier
            .build()
            .map_err(|e| TlsError::new("ca", e.to_string()))?;
        builder.with_client_cert_verifier(verifier)
    } else {
        builder.with_no_client_auth()
    };
    let chain = s
        .cert
        .iter()
        .map(|pem| certificates(pem, "cert"))
        .collect::<Result<Vec<_>, _>>()?
        .concat();
    if chain.is_empty() {
        return Err(TlsError::new("cert", "no certificate (PEM) was given"));
    }
    let key = match s.key.as_slice() {
        [] => return Err(TlsError::new("key", "no private key was given")),
        [one] => private_key(one)?,
        _ => return Err(TlsError::new("key", "only one private key is supported")),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::new("key", format!("does not fit the certificate: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The configuration of the WebTransport endpoint from the same options:
/// QUIC runs TLS 1.3 only, speaks `h3`, and has no client certificates.
pub(crate) fn quic_server_config(s: &TlsSettings) -> Result<ServerConfig, TlsError> {
    let s = TlsSettings {
        min_version: Some("TLSv1.3".into()),
        max_version: None,
        request_cert: false,
        ..s.clone()
    };
    let mut config = server_config(&s)?;
    config.alpn_protocols = vec![b"h3".to_vec()];
    Ok(config)
}

fn versions(s: &TlsSettings) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, TlsError> {
    let rank = |option: &'static str, v: &Option<String>, default: u8| match v.as_deref() {
        None => Ok(default),
        Some("TLSv1.2") => Ok(2),
        Some("TLSv1.3") => Ok(3),
        Some(other) => Err(TlsError::new(
            option,
            format!("`{other}` is not supported (TLSv1.2 or TLSv1.3)"),
        )),
    };
    let min = rank("minVersion", &s.min_version, 2)?;
    let max = rank("maxVersion", &s.max_version, 3)?;
    if min > max {
        return Err(TlsError::new("minVersion", "is above maxVersion"));
    }
    Ok([(2, &rustls::version::TLS12), (3, &rustls::version::TLS13)]
        .into_iter()
        .filter(|(v, _)| (min..=max).contains(v))
        .map(|(_, p)| p)
        .collect())
}

fn certificates(
    pem: &[u8],
    option: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::new(option, format!("not a PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(TlsError::new(option, "holds no PEM certificate"));
    }
    Ok(certs)
}

fn private_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    if pem.windows(b"ENCRYPTED".len()).any(|w| w == b"ENCRYPTED") {
        return Err(TlsError::new(
            "passphrase",
            "encrypted keys are not supported: decrypt it first \
             (openssl pkey -in key.pem -out plain-key.pem)",
        ));
    }
    PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| TlsError::new("key", format!("no PEM private key found: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_refused_by_option_name() {
        let s = TlsSettings {
            key: vec![b"not a key".to_vec()],
            cert: vec![b"not a cert".to_vec()],
            ..Default::default()
        };
        assert_eq!(Tls::new(&s).unwrap_err().option, "cert");
        let s = TlsSettings::default();
        assert_eq!(Tls::new(&s).unwrap_err().option, "cert");
    }

    #[test]
    fn versions_follow_node_names() {
        let mut s = TlsSettings {
            min_version: Some("TLSv1.3".into()),
            ..Default::default()
        };
        assert_eq!(versions(&s).unwrap().len(), 1);
        s.min_version = Some("TLSv1".into());
        assert_eq!(versions(&s).unwrap_err().option, "minVersion");
        s.min_version = Some("TLSv1.3".into());
        s.max_version = Some("TLSv1.2".into());
        assert_eq!(versions(&s).unwrap_err().option, "minVersion");
    }

    #[test]
    fn an_encrypted_key_names_the_passphrase() {
        let pem =
            b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n";
        assert_eq!(private_key(pem).unwrap_err().option, "passphrase");
    }
}
