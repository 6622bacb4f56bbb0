//! Token keys published by an OIDC provider (Keycloak and the like) as a JSON Web Key Set. The
//! set is fetched in the background, refreshed periodically, and refetched (at most every
//! few seconds) when a token names a key the cached set does not hold: a provider rotating its
//! keys publishes the new one before signing with it, and retires the old one after.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use jsonwebtoken::{Algorithm, DecodingKey, jwk::JwkSet};

/// The least time between two fetches, however many unknown keys are seen: a flood of tokens
/// with made-up key ids must not become a flood of requests to the provider.
const MIN_REFETCH: Duration = Duration::from_secs(5);

/// How far behind this machine's the provider's clock may be, for telling a key rotated in
/// since the last fetch from one retired.
const ISSUER_CLOCK_SKEW: u64 = 60;

/// One verifying key of the set, with the algorithm it verifies.
#[derive(Clone)]
pub struct Key {
    pub decoding: DecodingKey,
    pub algorithm: Algorithm,
}

/// The provider's current keys by key id. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct Jwks {
    url: Arc<str>,
    keys: Arc<RwLock<Fetched>>,
    wake: Arc<tokio::sync::Notify>,
}

/// The set as last fetched, and when (Unix seconds; 0: never).
#[derive(Default)]
struct Fetched {
    keys: HashMap<String, Key>,
    at: u64,
}

/// Why a key id found no key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// The set has not been fetched since `issued`: the key may have been rotated in since.
    NotYetSeen,
    /// A set fetched after `issued` does not hold it: retired, or never the provider's.
    NotPublished,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Jwks {
    /// Starts fetching `url` now and every `refresh`, on the current Tokio runtime.
    pub fn spawn(url: &str, refresh: Duration) -> Self {
        let jwks = Self {
            url: url.into(),
            keys: Default::default(),
            wake: Default::default(),
        };
        let worker = jwks.clone();
        tokio::spawn(async move {
            loop {
                match worker.fetch().await {
                    Ok(count) => tracing::debug!(keys = count, "token keys refreshed"),
                    Err(e) => {
                        tracing::warn!(url = %worker.url, error = %e, "token keys not refreshed")
                    }
                }
                tokio::time::sleep(MIN_REFETCH).await;
                let _ = tokio::time::timeout(
                    refresh.saturating_sub(MIN_REFETCH),
                    worker.wake.notified(),
                )
                .await;
            }
        });
        jwks
    }

    /// The key `kid`, if the set holds it.
    pub fn key(&self, kid: &str) -> Option<Key> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys
            .get(kid)
            .cloned()
    }

    /// Why a token issued at `issued` (Unix seconds) named a key the set does not hold; asks
    /// for a refetch either way (at most every few seconds), since the provider's clock may be
    /// behind this one's.
    pub fn missing(&self, issued: u64) -> Missing {
        self.wake.notify_one();
        let fetched_at = self
            .keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .at;
        if fetched_at > issued.saturating_add(ISSUER_CLOCK_SKEW) {
            Missing::NotPublished
        } else {
            Missing::NotYetSeen
        }
    }

    /// Fetches the set and replaces the cached one; keys govit cannot use (encryption keys,
    /// unknown algorithms) are left out. How many keys it holds.
    async fn fetch(&self) -> anyhow::Result<usize> {
        let reply = crate::http::request(
            http::Method::GET,
            &self.url,
            &[("accept", "application/json")],
            Vec::new(),
            Duration::from_secs(10),
        )
        .await?;
        anyhow::ensure!(
            reply.status == 200,
            "the provider answered {}",
            reply.status
        );
        let set: JwkSet = serde_json::from_slice(&reply.body)?;
        let keys = usable_keys(&set);
        let count = keys.len();
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Fetched {
            keys,
            at: jsonwebtoken::get_current_timestamp(),
        };
        Ok(count)
    }
}

/// The signing keys of `set` by key id.
pub fn usable_keys(set: &JwkSet) -> HashMap<String, Key> {
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, PublicKeyUse};
    set.keys
        .iter()
        .filter(|jwk| {
            !matches!(
                jwk.common.public_key_use,
                Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
            )
        })
        .filter_map(|jwk| {
            let kid = jwk.common.key_id.clone()?;
            let algorithm = match jwk.common.key_algorithm {
                Some(named) => Algorithm::try_from(named).ok()?,
                None => match &jwk.algorithm {
                    AlgorithmParameters::RSA(_) => Algorithm::RS256,
                    AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
                    AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
                        EllipticCurve::P256 => Algorithm::ES256,
                        EllipticCurve::P384 => Algorithm::ES384,
                        _ => return None,
                    },
                    // A shared secret is never published; other kinds are not ones govit uses.
                    _ => return None,
                },
            };
            if matches!(
                algorithm,
                Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
            ) {
                return None;
            }
            let decoding = DecodingKey::from_jwk(jwk).ok()?;
            Some((
                kid,
                Key {
                    decoding,
                    algorithm,
                },
            ))
        })
        .collect()
}
