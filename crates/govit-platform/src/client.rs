//! Calling another service: a lazily connected channel with a bearer token on every call.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::Interceptor,
    transport::{Channel, ClientTlsConfig, Endpoint},
};

/// Puts `authorization: Bearer <token>` on every call.
#[derive(Clone)]
pub struct BearerToken(Arc<Source>);

enum Source {
    /// A token an issuer gave (GOVIT_SERVICE_TOKEN): its holder renews it.
    Given(MetadataValue<Ascii>),
    /// Minted here with the deployment's HS256 key, short-lived and renewed well before it
    /// expires, so no long-lived service token exists to be stolen.
    Minted {
        secret: Vec<u8>,
        subject: String,
        current: Mutex<(MetadataValue<Ascii>, u64)>,
    },
}

/// How long a minted service token lives, and when it is renewed.
const MINTED_LIFETIME: Duration = Duration::from_secs(3600);
const RENEW_AFTER: u64 = 1800;

fn header(token: &str) -> anyhow::Result<MetadataValue<Ascii>> {
    Ok(format!("Bearer {token}").parse()?)
}

impl BearerToken {
    pub fn new(token: &str) -> anyhow::Result<Self> {
        Ok(BearerToken(Arc::new(Source::Given(header(token)?))))
    }

    /// A service token minted with `secret` for `subject`, renewed as it ages.
    pub fn minting(secret: Vec<u8>, subject: &str) -> anyhow::Result<Self> {
        let first = Self::mint(&secret, subject)?;
        Ok(BearerToken(Arc::new(Source::Minted {
            secret,
            subject: subject.to_owned(),
            current: Mutex::new((first, jsonwebtoken::get_current_timestamp() + RENEW_AFTER)),
        })))
    }

    fn mint(secret: &[u8], subject: &str) -> anyhow::Result<MetadataValue<Ascii>> {
        header(&crate::auth::mint_hs256(
            secret,
            subject,
            crate::Role::Service,
            None,
            None,
            MINTED_LIFETIME,
        )?)
    }

    fn value(&self) -> Result<MetadataValue<Ascii>, Status> {
        match &*self.0 {
            Source::Given(value) => Ok(value.clone()),
            Source::Minted {
                secret,
                subject,
                current,
            } => {
                let mut current = current
                    .lock()
                    .map_err(|_| Status::internal("service token lock poisoned"))?;
                let now = jsonwebtoken::get_current_timestamp();
                if now >= current.1 {
                    let fresh = Self::mint(secret, subject)
                        .map_err(|_| Status::internal("could not mint a service token"))?;
                    *current = (fresh, now + RENEW_AFTER);
                }
                Ok(current.0.clone())
            }
        }
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(..)")
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let value = self.value()?;
        request.metadata_mut().insert("authorization", value);
        // The services' calls to each other carry the trace of the call that made them.
        crate::telemetry::inject_current(request.metadata_mut());
        Ok(request)
    }
}

/// A channel that connects on first use and reconnects after the peer restarts, so a service
/// can start before the services it calls.
pub fn lazy_channel(url: &str, tls: Option<&crate::tls::PeerTls>) -> anyhow::Result<Channel> {
    Ok(endpoint(url, tls)?
        .connect_timeout(std::time::Duration::from_secs(5))
        .timeout(std::time::Duration::from_secs(30))
        .tcp_nodelay(true)
        .connect_lazy())
}

/// The endpoint of `url`: over TLS for `https://` (with `tls`, or the system's roots), in
/// plaintext for `http://`.
pub fn endpoint(url: &str, tls: Option<&crate::tls::PeerTls>) -> anyhow::Result<Endpoint> {
    let endpoint = Endpoint::from_shared(url.to_owned())?;
    if !url.starts_with("https://") {
        return Ok(endpoint);
    }
    let tls = tls
        .map(|t| t.config().clone())
        .unwrap_or_else(|| ClientTlsConfig::new().with_native_roots());
    Ok(endpoint.tls_config(tls)?)
}

/// Whether the peer behind `channel` answers its health check with SERVING (within 2 s).
pub async fn peer_serving(channel: &Channel) -> bool {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let mut client = HealthClient::new(channel.clone());
    let check = client.check(HealthCheckRequest {
        service: String::new(),
    });
    matches!(
        tokio::time::timeout(std::time::Duration::from_secs(2), check).await,
        Ok(Ok(response)) if response.get_ref().status == ServingStatus::Serving as i32
    )
}
