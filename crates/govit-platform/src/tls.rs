//! TLS for the listeners and for the calls services (and the CLI) make to each other, from PEM
//! files. Plaintext remains the default, for `govit up` on loopback.

use std::path::{Path, PathBuf};

use anyhow::Context;
use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

/// What a listener serves TLS with.
#[derive(Debug, Clone)]
pub struct ServerTlsFiles {
    /// The certificate chain, leaf first (PEM).
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1 PEM).
    pub key: PathBuf,
    /// When set, every client must present a certificate issued by this CA (mutual TLS).
    pub client_ca: Option<PathBuf>,
}

/// How this process calls the others over `https://`.
#[derive(Debug, Clone, Default)]
pub struct ClientTlsFiles {
    /// The CA that issued the services' certificates; the system's roots when unset.
    pub ca: Option<PathBuf>,
    /// The certificate and key this process presents where the services require mutual TLS.
    pub identity: Option<(PathBuf, PathBuf)>,
}

fn read(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading the {what} {}", path.display()))
}

impl ServerTlsFiles {
    pub fn load(&self) -> anyhow::Result<ServerTlsConfig> {
        let identity = Identity::from_pem(
            read(&self.cert, "TLS certificate")?,
            read(&self.key, "TLS key")?,
        );
        let mut config = ServerTlsConfig::new().identity(identity);
        if let Some(ca) = &self.client_ca {
            config = config.client_ca_root(Certificate::from_pem(read(ca, "client CA")?));
        }
        Ok(config)
    }
}

/// How this process calls `https://` services, loaded. Its Debug shows nothing: the client
/// identity holds a private key, and settings are printed in debugging.
#[derive(Clone)]
pub struct PeerTls(ClientTlsConfig);

impl std::fmt::Debug for PeerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PeerTls(..)")
    }
}

impl PeerTls {
    pub fn config(&self) -> &ClientTlsConfig {
        &self.0
    }
}

impl ClientTlsFiles {
    pub fn load(&self) -> anyhow::Result<PeerTls> {
        let mut config = ClientTlsConfig::new();
        config = match &self.ca {
            Some(ca) => config.ca_certificate(Certificate::from_pem(read(ca, "peer CA")?)),
            None => config.with_native_roots(),
        };
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(
                read(cert, "client certificate")?,
                read(key, "client key")?,
            ));
        }
        Ok(PeerTls(config))
    }
}
