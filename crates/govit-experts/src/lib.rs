//! The expert registry service: categories and experts, draws per govit-draw/v1, and the
//! transparency log that lets inspectors check both.

#![forbid(unsafe_code)]

mod api;
mod categories;
mod draws;
mod eligibility;
mod experts;
mod import;
mod model;
mod reviews;
mod roster;
mod store;
mod translog;
mod validation;

use ed25519_dalek::SigningKey;
use govit_platform::{Authenticator, Db, ServiceError, server::ServerOptions};
use govit_proto::experts::v1::expert_registry_service_server::ExpertRegistryServiceServer;
use sqlx::migrate::Migrator;
use tonic::service::Routes;

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
}

impl std::fmt::Debug for ExpertsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpertsService")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl ExpertsService {
    /// Connects (creating the database if needed), migrates, and loads or makes the log's
    /// signing key.
    pub async fn open(database_url: &str, policy: DrawPolicy) -> anyhow::Result<Self> {
        let db = Db::connect_and_migrate(database_url, &MIGRATOR).await?;
        let key = translog::signing_key(&db).await?;
        translog::complete_nodes(&db).await?;
        // Public by design: inspectors pin it to check tree heads.
        tracing::info!(public_key = %hex::encode(key.verifying_key().to_bytes()), "transparency log signing key");
        Ok(Self {
            store: store::Store { db },
            key,
            policy,
        })
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
        let service = ExpertRegistryServiceServer::new(self)
            .max_decoding_message_size(options.max_message_bytes)
            .max_encoding_message_size(options.max_message_bytes);
        Ok(
            routes.add_service(tonic::service::interceptor::InterceptedService::new(
                service, auth,
            )),
        )
    }
}
