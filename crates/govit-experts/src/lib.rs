//! The expert registry service: categories and experts, draws per govit-draw/v1, and the
//! transparency log that lets inspectors check both.

#![forbid(unsafe_code)]

mod api;
mod categories;
mod checkpoints;
mod draws;
mod eligibility;
mod experts;
mod import;
mod model;
mod reviews;
mod roster;
mod store;
mod translog;

/// A new Ed25519 key from the OS's randomness: the log's, a witness's.
pub use translog::fresh_signing_key;
mod validation;

use std::{sync::Arc, time::Duration};

use ed25519_dalek::SigningKey;
use govit_platform::{Authenticator, Db, ServiceError, server::ServerOptions};
use govit_proto::experts::v1::expert_registry_service_server::ExpertRegistryServiceServer;
use sqlx::migrate::Migrator;
use tonic::service::Routes;

pub use checkpoints::{DEFAULT_ORIGIN, Published, WitnessPeer};

/// The expert registry's own migration stream.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/experts");

/// The deployment's rules for draws.
#[derive(Debug, Clone)]
pub struct DrawPolicy {
    /// A draw executes only after a supervisor or inspector supplied witness entropy.
    pub require_witness: bool,
    /// The most alternates one category may ask for.
    pub max_alternates: u32,
    /// No more than `max_selections` selections in the last `days` days; None when off.
    pub workload: Option<WorkloadRule>,
}

#[derive(Debug, Clone, Copy)]
pub struct WorkloadRule {
    pub max_selections: u32,
    pub days: u32,
}

impl Default for DrawPolicy {
    fn default() -> Self {
        DrawPolicy {
            require_witness: true,
            max_alternates: 10,
            workload: None,
        }
    }
}

/// A failure that is the registry's, not the caller's: logged, and opaque to the client.
fn internal(e: impl Into<anyhow::Error>) -> ServiceError {
    ServiceError::Internal(e.into())
}

/// The service, ready to serve. Cheap to clone.
#[derive(Clone)]
pub struct ExpertsService {
    store: store::Store,
    key: SigningKey,
    policy: DrawPolicy,
    /// The origin and key its checkpoints are signed with.
    log: checkpoints::LogIdentity,
    /// The witnesses asked to cosign each checkpoint.
    witnesses: Arc<[WitnessPeer]>,
    /// One roster import at a time (another is refused while it runs): each holds its whole
    /// file and rows in memory (up to 128 MiB of file), and imports serialise on the log's
    /// lock anyway.
    imports: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for ExpertsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpertsService")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl ExpertsService {
    /// Connects (creating the database if needed), migrates, and loads or makes a log signing
    /// key kept in the database. For tests and tools: `govit` itself signs with a key file
    /// (`open_with_key_file`), so that the database never holds the secret.
    pub async fn open(database_url: &str, policy: DrawPolicy) -> anyhow::Result<Self> {
        let db = Db::connect_and_migrate(database_url, &MIGRATOR).await?;
        let key = translog::signing_key(&db).await?;
        Self::assemble(db, key, policy).await
    }

    /// Connects, migrates, and signs with the PKCS#8 PEM key in `key_file`. What a missing
    /// file becomes is `missing`'s to say.
    pub async fn open_with_key_file(
        database_url: &str,
        policy: DrawPolicy,
        key_file: &std::path::Path,
        missing: MissingKeyFile,
    ) -> anyhow::Result<Self> {
        let db = Db::connect_and_migrate(database_url, &MIGRATOR).await?;
        let key = match std::fs::read_to_string(key_file) {
            Ok(pem) => govit_draw::note::signing_key_from_pem(&pem)
                .map_err(|e| anyhow::anyhow!("the log key {}: {e}", key_file.display()))?,
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    && missing != MissingKeyFile::Refuse =>
            {
                let key = match translog::stored_signing_key(&db).await? {
                    // Every replica reading one database writes the same key: one identity.
                    Some(stored) => {
                        write_key_file(key_file, &stored)?;
                        stored
                    }
                    None if missing == MissingKeyFile::FromDatabaseOrFresh => {
                        fresh_key_file(key_file)?
                    }
                    None => anyhow::bail!(
                        "no log key at {}: replicas sharing a database must share one key file; \
                         make one with `govit log keygen` and give it to every replica (--log-key)",
                        key_file.display()
                    ),
                };
                tracing::info!(path = %key_file.display(), "wrote the log signing key");
                key
            }
            Err(e) => {
                return Err(anyhow::anyhow!(
                    "reading the log key {}: {e}",
                    key_file.display()
                ));
            }
        };
        Self::assemble(db, key, policy).await
    }

    async fn assemble(db: Db, key: SigningKey, policy: DrawPolicy) -> anyhow::Result<Self> {
        translog::complete_nodes(&db).await?;
        // Public by design: inspectors pin it to check tree heads.
        tracing::info!(public_key = %hex::encode(key.verifying_key().to_bytes()), "transparency log signing key");
        Ok(Self {
            store: store::Store { db },
            log: checkpoints::LogIdentity {
                origin: DEFAULT_ORIGIN.to_owned(),
                key: key.clone(),
            },
            key,
            policy,
            witnesses: Arc::from(Vec::new()),
            imports: Arc::new(tokio::sync::Semaphore::new(1)),
        })
    }

    /// Names the log `origin` in its checkpoints.
    pub fn with_log(mut self, origin: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            govit_draw::note::valid_name(origin),
            "the log origin {origin:?} must be non-empty, without spaces or '+'"
        );
        self.log = checkpoints::LogIdentity {
            origin: origin.to_owned(),
            key: self.key.clone(),
        };
        Ok(self)
    }

    /// The witnesses to ask for cosignatures.
    pub fn with_witnesses(mut self, witnesses: Vec<WitnessPeer>) -> Self {
        self.witnesses = Arc::from(witnesses);
        self
    }

    /// Publishes a checkpoint every `interval` while the log grew or a witness has not yet
    /// cosigned its newest size.
    pub fn spawn_checkpoint_worker(&self, interval: Duration) {
        let service = self.clone();
        tokio::spawn(async move {
            let mut published: Option<checkpoints::Published> = None;
            loop {
                tokio::time::sleep(interval).await;
                let Ok(size) = translog::size(&service.store.db).await else {
                    continue;
                };
                let complete = |p: &checkpoints::Published| {
                    p.size == size && p.cosigners == service.witnesses.len()
                };
                if published.as_ref().is_some_and(complete) {
                    continue;
                }
                match service.publish_checkpoint().await {
                    Ok(checkpoint) => published = Some(checkpoint),
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "publishing a checkpoint failed")
                    }
                }
            }
        });
    }

    pub fn db(&self) -> &Db {
        &self.store.db
    }

    /// Hex of the public key that signs tree heads: publish it where inspectors can find it.
    pub fn public_key_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// Health, reflection and the authenticated service.
    pub async fn routes(
        self,
        auth: Authenticator,
        options: &ServerOptions,
    ) -> anyhow::Result<Routes> {
        let (routes, _health) = govit_platform::server::base_routes::<
            ExpertRegistryServiceServer<ExpertsService>,
        >(options)
        .await?;
        let http = self.http_routes(auth.clone());
        let service = ExpertRegistryServiceServer::new(self)
            .max_decoding_message_size(options.max_message_bytes)
            .max_encoding_message_size(options.max_message_bytes);
        let routes = routes.add_service(tonic::service::interceptor::InterceptedService::new(
            service, auth,
        ));
        Ok(Routes::from(routes.into_axum_router().merge(http)))
    }
}

/// Entries in the transparency log.
pub const LOG_ENTRIES: &str = "govit_log_entries";
/// Seconds an ExecuteDraw takes, by `outcome` (`ok`, `refused`).
pub const DRAW_SECONDS: &str = "govit_draw_duration_seconds";

impl govit_platform::metrics::Gauges for ExpertsService {
    fn record(&self) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + '_>> {
        Box::pin(async move {
            govit_platform::metrics::record_pool("experts", self.db());
            let size = translog::size(self.db()).await?;
            metrics::gauge!(LOG_ENTRIES).set(size as f64);
            Ok(())
        })
    }
}

/// What `open_with_key_file` does when the key file is not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingKeyFile {
    /// An error: the file was configured, and a wrong path must not start a new log identity.
    Refuse,
    /// Written from the key an earlier version kept in the database (so the log keeps its
    /// identity); an error when there is none. For a database replicas share.
    FromDatabase,
    /// As `FromDatabase`, or else a fresh key: one process on its own database.
    FromDatabaseOrFresh,
}

/// Writes a fresh signing key to a new file `path` only its owner may read; returns the
/// verifier key (`origin+keyid+key`) inspectors and witnesses pin.
pub fn generate_log_key(path: &std::path::Path, origin: &str) -> anyhow::Result<String> {
    let key = fresh_key_file(path)?;
    Ok(checkpoints::LogIdentity {
        origin: origin.to_owned(),
        key,
    }
    .verifier()
    .vkey())
}

/// A fresh signing key, written to a new file `path` only its owner may read.
fn fresh_key_file(path: &std::path::Path) -> anyhow::Result<SigningKey> {
    let key = translog::fresh_signing_key()?;
    write_key_file(path, &key)?;
    Ok(key)
}

/// Writes `key` as PKCS#8 PEM to a new file only its owner may read.
fn write_key_file(path: &std::path::Path, key: &SigningKey) -> anyhow::Result<()> {
    let pem = govit_draw::note::signing_key_to_pem(key).map_err(|e| anyhow::anyhow!("{e}"))?;
    govit_platform::secret_file::create(path, pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("writing the log key: {e:#}"))
}
