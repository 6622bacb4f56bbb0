//! The expert registry service. This crate so far holds its database, migration stream, health and
//! reflection; its methods arrive with its issue. The service is registered (with no methods)
//! so that reflection and health already name it.

#![forbid(unsafe_code)]

use govit_platform::{Authenticator, Db, server::ServerOptions};
use govit_proto::experts::v1::expert_registry_service_server::{
    ExpertRegistryService, ExpertRegistryServiceServer,
};
use sqlx::migrate::Migrator;
use tonic::service::Routes;

/// The expert registry service's own migration stream.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/experts");

#[derive(Debug, Clone)]
pub struct ExpertsService {
    db: Db,
}

impl ExpertRegistryService for ExpertsService {}

impl ExpertsService {
    pub async fn open(database_url: &str) -> anyhow::Result<Self> {
        Ok(Self {
            db: Db::connect_and_migrate(database_url, &MIGRATOR).await?,
        })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Health, reflection and the authenticated service.
    pub async fn routes(
        self,
        auth: Authenticator,
        options: &ServerOptions,
    ) -> anyhow::Result<Routes> {
        let (routes, _health) =
            govit_platform::server::base_routes::<ExpertRegistryServiceServer<ExpertsService>>()
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
