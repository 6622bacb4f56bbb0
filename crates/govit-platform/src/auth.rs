//! Bearer JWT authentication. The interceptor verifies the token and puts the [`Caller`] into
//! the request's extensions; handlers decide authorization from it.

use std::{fmt, str::FromStr, sync::Arc};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tonic::{Request, Status, service::Interceptor};

use crate::error::ServiceError;

/// The development HS256 key used when no key is configured. It is public (it is in the
/// source), so a service started with it must never hold real data.
pub const DEVELOPMENT_KEY: &str = "govit-development-key-not-for-production";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A person of an applying unit; bound to that organisation.
    Applicant,
    /// Staff of the city IT office.
    Office,
    /// Keeps the expert pool.
    RegistryAdmin,
    /// An expert; bound to one expert id.
    Expert,
    /// The supervising bureaus: finance, development and reform, audit.
    Supervisor,
    /// Checks that draws were fair; reads, never changes.
    Inspector,
    /// Another govit service.
    Service,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Applicant,
        Role::Office,
        Role::RegistryAdmin,
        Role::Expert,
        Role::Supervisor,
        Role::Inspector,
        Role::Service,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Applicant => "applicant",
            Role::Office => "office",
            Role::RegistryAdmin => "registry_admin",
            Role::Expert => "expert",
            Role::Supervisor => "supervisor",
            Role::Inspector => "inspector",
            Role::Service => "service",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
                format!("unknown role {s:?}; one of {}", names.join(", "))
            })
    }
}

/// The supervising bureaus. Each supervises in its own name: a supervisor's token names its
/// bureau, and what it records is recorded as that bureau's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Bureau {
    /// 财政局: the use of fiscal funds.
    Finance,
    /// 发展和改革委员会: investment approval and progress.
    DevelopmentReform,
    /// 审计局: audit of funds and budgets.
    Audit,
}

impl Bureau {
    pub const ALL: [Bureau; 3] = [Bureau::Finance, Bureau::DevelopmentReform, Bureau::Audit];

    /// The claim's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Bureau::Finance => "finance",
            Bureau::DevelopmentReform => "development_reform",
            Bureau::Audit => "audit",
        }
    }
}

impl fmt::Display for Bureau {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Bureau {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Bureau::ALL
            .into_iter()
            .find(|b| b.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Bureau::ALL.iter().map(|b| b.as_str()).collect();
                format!("unknown bureau {s:?}; one of {}", names.join(", "))
            })
    }
}

/// The claims govit reads from a token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    /// The organisation's unified social credit code, for applicants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// The expert id, for experts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expert: Option<String>,
    /// The bureau, for supervisors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bureau: Option<Bureau>,
    /// Who issued the token and for whom: both must be the ones govit is configured with.
    #[serde(default)]
    pub iss: String,
    #[serde(default)]
    pub aud: String,
    pub iat: u64,
    /// Not valid before, when the issuer sets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    pub exp: u64,
}

/// The issuer and audience govit mints and expects unless configured otherwise.
pub const DEFAULT_ISSUER: &str = "govit";
pub const DEFAULT_AUDIENCE: &str = "govit";
/// The longest a token may live from its issue: a stolen token is worth a day at most.
pub const DEFAULT_MAX_LIFETIME: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// What a token must be bound to besides its signature.
#[derive(Debug, Clone)]
pub struct TokenBinding {
    pub issuer: String,
    pub audience: String,
    pub max_lifetime: std::time::Duration,
}

impl Default for TokenBinding {
    fn default() -> Self {
        TokenBinding {
            issuer: DEFAULT_ISSUER.into(),
            audience: DEFAULT_AUDIENCE.into(),
            max_lifetime: DEFAULT_MAX_LIFETIME,
        }
    }
}

/// Who is calling, as proven by the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub role: Role,
    pub organization: Option<String>,
    pub expert: Option<String>,
    /// The supervisor's bureau.
    pub bureau: Option<Bureau>,
}

impl Caller {
    /// The caller the interceptor stored; a missing one means the service was wired without
    /// the interceptor, which is a bug, not the client's fault.
    pub fn from_request<T>(request: &Request<T>) -> Result<Caller, ServiceError> {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("no caller on request")))
    }

    pub fn require(&self, allowed: &[Role]) -> Result<(), ServiceError> {
        if allowed.contains(&self.role) {
            Ok(())
        } else {
            Err(ServiceError::PermissionDenied(format!(
                "the {} role may not do this",
                self.role
            )))
        }
    }

    pub fn is(&self, role: Role) -> bool {
        self.role == role
    }
}

/// How tokens are verified.
#[derive(Clone)]
pub enum VerificationKey {
    /// A shared secret (HS256): development, or small single-office deployments.
    Hs256(Vec<u8>),
    /// An Ed25519 public key in PEM (EdDSA): the issuer keeps the private key.
    Ed25519Pem(Vec<u8>),
    /// An RSA public key in PEM (RS256).
    RsaPem(Vec<u8>),
    /// The keys an OIDC provider publishes at this URL (a JWKS), refreshed this often and
    /// when a token names a key not yet seen: the provider may rotate them at will.
    Jwks {
        url: String,
        refresh: std::time::Duration,
    },
}

impl fmt::Debug for VerificationKey {
    // Never print key material, not even a public key's bytes: logs are not the place.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            VerificationKey::Hs256(_) => "Hs256(..)",
            VerificationKey::Ed25519Pem(_) => "Ed25519Pem(..)",
            VerificationKey::RsaPem(_) => "RsaPem(..)",
            VerificationKey::Jwks { .. } => "Jwks(..)",
        })
    }
}

/// Verifies bearer tokens, and holds each caller to its rate. Cheap to clone; clones share the
/// rates, so one process's services count a caller's calls together.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<(Keys, Validation, TokenBinding)>,
    limiter: Option<Arc<RateLimiter>>,
}

/// Where the verifying key of a token comes from.
enum Keys {
    /// One key, configured.
    Fixed(DecodingKey),
    /// The provider's published set, by the token's key id.
    Published(crate::jwks::Jwks),
}

/// Calls per second a token subject may make, with bursts up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: f64,
}

/// A token bucket per subject. Buckets idle long enough to be full again are forgotten, so the
/// table stays as small as the set of recent callers.
#[derive(Debug)]
struct RateLimiter {
    limit: RateLimit,
    buckets: std::sync::Mutex<std::collections::HashMap<String, (f64, std::time::Instant)>>,
}

impl RateLimiter {
    /// Takes one call from `subject`'s bucket, or says how long until one is there.
    fn admit(&self, subject: &str) -> Result<(), std::time::Duration> {
        let now = std::time::Instant::now();
        let RateLimit { per_second, burst } = self.limit;
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > 10_000 {
            let refill = std::time::Duration::from_secs_f64(burst / per_second);
            buckets.retain(|_, (_, at)| now.duration_since(*at) < refill);
        }
        let (tokens, at) = buckets.entry(subject.to_owned()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * per_second).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(std::time::Duration::from_secs_f64(
                (1.0 - *tokens) / per_second,
            ))
        }
    }
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator").finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(key: &VerificationKey) -> anyhow::Result<Self> {
        Self::with_binding(key, TokenBinding::default())
    }

    pub fn with_binding(key: &VerificationKey, binding: TokenBinding) -> anyhow::Result<Self> {
        let (keys, algorithm) = match key {
            VerificationKey::Hs256(secret) => (
                Keys::Fixed(DecodingKey::from_secret(secret)),
                Algorithm::HS256,
            ),
            VerificationKey::Ed25519Pem(pem) => (
                Keys::Fixed(DecodingKey::from_ed_pem(pem)?),
                Algorithm::EdDSA,
            ),
            VerificationKey::RsaPem(pem) => (
                Keys::Fixed(DecodingKey::from_rsa_pem(pem)?),
                Algorithm::RS256,
            ),
            // Each key of the set verifies the one algorithm it names (set per token below).
            VerificationKey::Jwks { url, refresh } => (
                Keys::Published(crate::jwks::Jwks::spawn(url, *refresh)),
                Algorithm::RS256,
            ),
        };
        let mut validation = Validation::new(algorithm);
        validation.set_required_spec_claims(&["exp", "sub", "iat", "iss", "aud"]);
        validation.set_issuer(&[binding.issuer.as_str()]);
        validation.set_audience(&[binding.audience.as_str()]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        Ok(Self {
            inner: Arc::new((keys, validation, binding)),
            limiter: None,
        })
    }

    /// Holds every token subject to `limit`; a call over it is refused `RESOURCE_EXHAUSTED`
    /// (reason `RATE_LIMITED`, with `RetryInfo`).
    pub fn with_rate_limit(mut self, limit: RateLimit) -> Self {
        self.limiter = Some(Arc::new(RateLimiter {
            limit,
            buckets: Default::default(),
        }));
        self
    }

    pub fn verify(&self, token: &str) -> Result<Caller, ServiceError> {
        let (keys, validation, binding) = &*self.inner;
        let unreadable = |e: jsonwebtoken::errors::Error| {
            ServiceError::Unauthenticated(token_problem(e.kind()).into())
        };
        let data = match keys {
            Keys::Fixed(key) => jsonwebtoken::decode::<Claims>(token, key, validation),
            Keys::Published(jwks) => {
                let header = jsonwebtoken::decode_header(token).map_err(unreadable)?;
                let kid = header.kid.ok_or_else(|| {
                    ServiceError::Unauthenticated("the token names no key (kid)".into())
                })?;
                let key = match jwks.key(&kid) {
                    Some(key) => key,
                    // Read unverified only to tell a key rotated in since the last fetch (retry)
                    // from one the provider does not publish (refused).
                    None => {
                        let issued = jsonwebtoken::dangerous::insecure_decode_claims::<Claims>(token)
                            .map_err(unreadable)?
                            .iat;
                        return Err(match jwks.missing(issued) {
                            crate::jwks::Missing::NotYetSeen => ServiceError::Unavailable(
                                "the token's key is not among the issuer's published keys yet; retry shortly"
                                    .into(),
                            ),
                            crate::jwks::Missing::NotPublished => ServiceError::Unauthenticated(
                                "the token's key is not one the issuer publishes".into(),
                            ),
                        });
                    }
                };
                let mut validation = validation.clone();
                validation.algorithms = vec![key.algorithm];
                jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation)
            }
        }
        .map_err(unreadable)?;
        let claims = data.claims;
        let now = jsonwebtoken::get_current_timestamp();
        if claims.iat > now + LEEWAY_SECS {
            return Err(ServiceError::Unauthenticated(
                "the token is issued in the future (iat)".into(),
            ));
        }
        if claims.exp.saturating_sub(claims.iat) > binding.max_lifetime.as_secs() {
            return Err(ServiceError::Unauthenticated(format!(
                "the token lives longer than {} hours (exp - iat); ask the issuer for a shorter one",
                binding.max_lifetime.as_secs() / 3600
            )));
        }
        if claims.sub.is_empty() {
            return Err(ServiceError::Unauthenticated(
                "token has an empty subject".into(),
            ));
        }
        match claims.role {
            Role::Applicant if claims.org.as_deref().is_none_or(str::is_empty) => {
                return Err(ServiceError::Unauthenticated(
                    "an applicant token must name its organisation (org)".into(),
                ));
            }
            Role::Expert if claims.expert.as_deref().is_none_or(str::is_empty) => {
                return Err(ServiceError::Unauthenticated(
                    "an expert token must name its expert id (expert)".into(),
                ));
            }
            Role::Supervisor if claims.bureau.is_none() => {
                return Err(ServiceError::Unauthenticated(
                    "a supervisor token must name its bureau (bureau: finance, \
                     development_reform or audit)"
                        .into(),
                ));
            }
            _ => {}
        }
        Ok(Caller {
            subject: claims.sub,
            role: claims.role,
            organization: claims.org.filter(|_| claims.role == Role::Applicant),
            expert: claims.expert.filter(|_| claims.role == Role::Expert),
            bureau: claims.bureau.filter(|_| claims.role == Role::Supervisor),
        })
    }
}

impl Authenticator {
    /// The caller an `authorization` header value names, held to its rate: what every gRPC call
    /// and every authenticated plain-HTTP request (the log's entry bundles) goes through.
    pub fn authorize(&self, header: Option<&str>) -> Result<Caller, ServiceError> {
        let header = header.ok_or_else(|| {
            ServiceError::Unauthenticated("missing authorization: Bearer <token>".into())
        })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(|| {
                ServiceError::Unauthenticated("authorization must be Bearer <token>".into())
            })?;
        let caller = self.verify(token.trim())?;
        // Services' own tokens carry the system's work (outbox, workers), not a person's.
        if let Some(limiter) = self
            .limiter
            .as_ref()
            .filter(|_| caller.role != Role::Service)
            && let Err(retry_after) = limiter.admit(&caller.subject)
        {
            return Err(ServiceError::RateLimited {
                message: format!(
                    "too many calls from {}: at most {} a second; retry after {} ms",
                    caller.subject,
                    limiter.limit.per_second,
                    retry_after.as_millis().max(1)
                ),
                retry_after,
            });
        }
        Ok(caller)
    }
}

impl Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request.metadata().get("authorization").map(|v| {
            // A value that is not visible ASCII cannot be a bearer token.
            v.to_str().unwrap_or("")
        });
        let caller = self.authorize(header).map_err(Status::from)?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

/// Mints an HS256 token: for development and tests, and for `govit token`.
const LEEWAY_SECS: u64 = 30;

/// What is wrong with a token, in words for its holder, never the parser's internals.
fn token_problem(kind: &jsonwebtoken::errors::ErrorKind) -> &'static str {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => "the token has expired",
        K::ImmatureSignature => "the token is not valid yet (nbf)",
        K::InvalidIssuer => "the token was issued by another issuer (iss)",
        K::InvalidAudience => "the token is meant for another audience (aud)",
        K::InvalidSignature => "the token's signature does not verify",
        K::InvalidAlgorithm => "the token is signed with another algorithm than configured",
        K::MissingRequiredClaim(_) => {
            "the token lacks a required claim (sub, role, iss, aud, iat, exp)"
        }
        _ => "the token is malformed",
    }
}

/// Mints an HS256 token with govit's default issuer and audience. A supervisor's names its
/// bureau: mint it with [`mint_hs256_for_bureau`].
pub fn mint_hs256(
    secret: &[u8],
    subject: &str,
    role: Role,
    organization: Option<&str>,
    expert: Option<&str>,
    lifetime: std::time::Duration,
) -> anyhow::Result<String> {
    anyhow::ensure!(
        role != Role::Supervisor,
        "a supervisor token names its bureau: mint it with mint_hs256_for_bureau"
    );
    mint(
        secret,
        subject,
        role,
        (organization, expert, None),
        lifetime,
    )
}

/// Mints an HS256 supervisor token for `bureau`.
pub fn mint_hs256_for_bureau(
    secret: &[u8],
    subject: &str,
    bureau: Bureau,
    lifetime: std::time::Duration,
) -> anyhow::Result<String> {
    mint(
        secret,
        subject,
        Role::Supervisor,
        (None, None, Some(bureau)),
        lifetime,
    )
}

fn mint(
    secret: &[u8],
    subject: &str,
    role: Role,
    (organization, expert, bureau): (Option<&str>, Option<&str>, Option<Bureau>),
    lifetime: std::time::Duration,
) -> anyhow::Result<String> {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = Claims {
        sub: subject.to_owned(),
        role,
        org: organization.map(str::to_owned),
        expert: expert.map(str::to_owned),
        bureau,
        iss: DEFAULT_ISSUER.into(),
        aud: DEFAULT_AUDIENCE.into(),
        iat: now,
        nbf: None,
        exp: now + lifetime.as_secs(),
    };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(claims: &Claims) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(b"k"),
        )
        .unwrap()
    }

    fn good() -> Claims {
        let now = jsonwebtoken::get_current_timestamp();
        Claims {
            sub: "s".into(),
            role: Role::Office,
            org: None,
            expert: None,
            bureau: None,
            iss: DEFAULT_ISSUER.into(),
            aud: DEFAULT_AUDIENCE.into(),
            iat: now,
            nbf: None,
            exp: now + 600,
        }
    }

    #[test]
    fn a_supervisor_token_names_its_bureau() {
        let auth = Authenticator::new(&VerificationKey::Hs256(b"k".to_vec())).unwrap();
        let supervisor = Claims {
            role: Role::Supervisor,
            ..good()
        };
        assert!(matches!(
            auth.verify(&sign(&supervisor)),
            Err(ServiceError::Unauthenticated(m)) if m.contains("bureau")
        ));
        let caller = auth
            .verify(&sign(&Claims {
                bureau: Some(Bureau::DevelopmentReform),
                ..supervisor.clone()
            }))
            .unwrap();
        assert_eq!(caller.bureau, Some(Bureau::DevelopmentReform));
        // A bureau on another role's token means nothing.
        let office = auth
            .verify(&sign(&Claims {
                bureau: Some(Bureau::Audit),
                ..good()
            }))
            .unwrap();
        assert_eq!(office.bureau, None);
        // A bureau govit does not know is refused, not read as none.
        let mut unknown = serde_json::to_value(&supervisor).unwrap();
        unknown["bureau"] = "tax".into();
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &unknown,
            &EncodingKey::from_secret(b"k"),
        )
        .unwrap();
        assert!(matches!(
            auth.verify(&token),
            Err(ServiceError::Unauthenticated(_))
        ));
        assert!(
            mint_hs256(
                b"k",
                "s",
                Role::Supervisor,
                None,
                None,
                std::time::Duration::from_secs(60)
            )
            .is_err()
        );
        let minted = mint_hs256_for_bureau(
            b"k",
            "s",
            Bureau::Finance,
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(auth.verify(&minted).unwrap().bureau, Some(Bureau::Finance));
    }

    #[test]
    fn tokens_are_bound_in_time_issuer_and_audience() {
        let auth = Authenticator::new(&VerificationKey::Hs256(b"k".to_vec())).unwrap();
        assert!(auth.verify(&sign(&good())).is_ok());
        let now = jsonwebtoken::get_current_timestamp();
        let cases: Vec<(&str, Claims)> = vec![
            (
                "year 3000",
                Claims {
                    exp: 32_503_680_000,
                    ..good()
                },
            ),
            (
                "issued tomorrow",
                Claims {
                    iat: now + 86_400,
                    exp: now + 90_000,
                    ..good()
                },
            ),
            (
                "not before tomorrow",
                Claims {
                    nbf: Some(now + 86_400),
                    ..good()
                },
            ),
            (
                "another issuer",
                Claims {
                    iss: "evil".into(),
                    ..good()
                },
            ),
            (
                "another audience",
                Claims {
                    aud: "billing".into(),
                    ..good()
                },
            ),
            (
                "no issuer",
                Claims {
                    iss: String::new(),
                    ..good()
                },
            ),
        ];
        for (what, claims) in cases {
            match auth.verify(&sign(&claims)) {
                Err(ServiceError::Unauthenticated(message)) => {
                    assert!(!message.contains("Error("), "{what}: {message}");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_minted_token_verifies_and_carries_its_binding() {
        let auth = Authenticator::new(&VerificationKey::Hs256(b"k".to_vec())).unwrap();
        let token = mint_hs256(
            b"k",
            "alice",
            Role::Applicant,
            Some("91650100MA77XXXX0X"),
            None,
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        let caller = auth.verify(&token).unwrap();
        assert_eq!(caller.role, Role::Applicant);
        assert_eq!(caller.organization.as_deref(), Some("91650100MA77XXXX0X"));
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let auth = Authenticator::new(&VerificationKey::Hs256(b"right".to_vec())).unwrap();
        let token = mint_hs256(
            b"wrong",
            "x",
            Role::Office,
            None,
            None,
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        assert!(matches!(
            auth.verify(&token),
            Err(ServiceError::Unauthenticated(_))
        ));
    }

    #[test]
    fn an_applicant_token_without_organisation_is_refused() {
        let auth = Authenticator::new(&VerificationKey::Hs256(b"k".to_vec())).unwrap();
        let token = mint_hs256(
            b"k",
            "x",
            Role::Applicant,
            None,
            None,
            std::time::Duration::from_secs(60),
        )
        .unwrap();
        assert!(matches!(
            auth.verify(&token),
            Err(ServiceError::Unauthenticated(_))
        ));
    }
}
