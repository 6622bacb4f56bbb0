//! The review scheduling service: the working-day calendar, reviews with their drawn panels,
//! invitations and replacements, meetings without double-booking, opinions and conclusions,
//! notifications, and the outbox that tells the other services.

#![forbid(unsafe_code)]

mod api;
pub mod calendar;
mod control;
mod model;
mod notify;
mod outbox;
mod reviews;
mod worker;

use std::{collections::BTreeMap, sync::Arc};

use govit_platform::{Authenticator, Db, client::BearerToken, server::ServerOptions};
use govit_proto::{
    experts::v1::expert_registry_service_client::ExpertRegistryServiceClient,
    projects::v1::project_service_client::ProjectServiceClient,
    scheduling::v1::review_scheduling_service_server::ReviewSchedulingServiceServer,
};
use sqlx::migrate::Migrator;
use tonic::{
    service::{Routes, interceptor::InterceptedService},
    transport::Channel,
};

/// The review scheduling service's own migration stream.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/scheduling");

pub type RegistryClient = ExpertRegistryServiceClient<InterceptedService<Channel, BearerToken>>;
pub type ProjectsClient = ProjectServiceClient<InterceptedService<Channel, BearerToken>>;

/// What a deployment may tune.
#[derive(Debug, Clone)]
pub struct SchedulingPolicy {
    /// Working days from the request to the deadline, per stage name.
    pub deadline_working_days: BTreeMap<String, u32>,
    /// How long an invited expert has to answer.
    pub response_hours: i64,
    /// The scoring criteria per stage name.
    pub criteria: BTreeMap<String, Vec<String>>,
}

impl Default for SchedulingPolicy {
    fn default() -> Self {
        let preliminary: Vec<String> = [
            "necessity",
            "feasibility",
            "technical_soundness",
            "budget_reasonableness",
            "security",
        ]
        .map(String::from)
        .to_vec();
        let acceptance: Vec<String> = ["completeness", "quality", "documentation", "use_of_funds"]
            .map(String::from)
            .to_vec();
        // The three parts of a post-evaluation's score, as the projects service weighs them.
        let post_evaluation: Vec<String> = ["quality", "operating_state", "investment_benefit"]
            .map(String::from)
            .to_vec();
        SchedulingPolicy {
            deadline_working_days: BTreeMap::from([
                ("PRELIMINARY_REVIEW".into(), 5),
                ("IMPLEMENTATION_PLAN_REVIEW".into(), 10),
                ("ACCEPTANCE".into(), 10),
                ("POST_EVALUATION".into(), 20),
            ]),
            response_hours: 24,
            criteria: BTreeMap::from([
                ("PRELIMINARY_REVIEW".into(), preliminary.clone()),
                ("IMPLEMENTATION_PLAN_REVIEW".into(), preliminary),
                ("ACCEPTANCE".into(), acceptance),
                ("POST_EVALUATION".into(), post_evaluation),
            ]),
        }
    }
}

/// Where the other services are, and the token this service presents to them.
#[derive(Debug, Clone)]
pub struct Peers {
    pub experts_url: String,
    pub projects_url: String,
    pub service_token: BearerToken,
    /// How `https://` peers are called.
    pub tls: Option<govit_platform::tls::PeerTls>,
}

/// The raw channels to the other services, for their health.
#[derive(Clone)]
struct PeerChannels {
    registry: Channel,
    projects: Channel,
}

#[derive(Clone)]
pub struct SchedulingService {
    db: Db,
    policy: SchedulingPolicy,
    registry: RegistryClient,
    projects: ProjectsClient,
    peers: PeerChannels,
    notify: Arc<tokio::sync::Notify>,
    /// Ends notification streams when the process shuts down.
    drain: govit_platform::server::Drain,
}

impl std::fmt::Debug for SchedulingService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchedulingService")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl SchedulingService {
    /// Connects (creating the database if needed), migrates, seeds the calendar years it
    /// knows, and prepares clients to the other services (connected on first use).
    pub async fn open(
        database_url: &str,
        policy: SchedulingPolicy,
        peers: &Peers,
    ) -> anyhow::Result<Self> {
        let db = Db::connect_and_migrate(database_url, &MIGRATOR).await?;
        calendar::seed(&db).await?;
        let token = peers.service_token.clone();
        let channels = PeerChannels {
            registry: govit_platform::client::lazy_channel(&peers.experts_url, peers.tls.as_ref())?,
            projects: govit_platform::client::lazy_channel(
                &peers.projects_url,
                peers.tls.as_ref(),
            )?,
        };
        let registry =
            ExpertRegistryServiceClient::with_interceptor(channels.registry.clone(), token.clone());
        let projects = ProjectServiceClient::with_interceptor(channels.projects.clone(), token);
        Ok(Self {
            db,
            policy,
            registry,
            projects,
            peers: channels,
            notify: Arc::new(tokio::sync::Notify::new()),
            drain: govit_platform::server::Drain::default(),
        })
    }

    /// Begins a write. Every scheduling write takes the one notification-counter row first, so
    /// writers queue in one order and cannot deadlock on the reviews, invitations and counter
    /// rows they touch in different orders. Scheduling writes are few; the queue is short.
    pub(crate) async fn begin(&self) -> Result<govit_platform::Tx, govit_platform::ServiceError> {
        let mut tx = self.db.begin_write().await?;
        sqlx::query("UPDATE notification_counter SET last = last WHERE id = 1")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
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
        let (routes, _health) = govit_platform::server::base_routes::<
            ReviewSchedulingServiceServer<SchedulingService>,
        >(options)
        .await?;
        let service = ReviewSchedulingServiceServer::new(Self {
            drain: options.drain.clone(),
            ..self
        })
        .max_decoding_message_size(options.max_message_bytes)
        .max_encoding_message_size(options.max_message_bytes);
        Ok(routes.add_service(InterceptedService::new(service, auth)))
    }
}

impl govit_platform::metrics::Gauges for SchedulingService {
    fn record(&self) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + '_>> {
        Box::pin(async move {
            govit_platform::metrics::record_pool("scheduling", &self.db);
            govit_platform::metrics::record_outbox("scheduling", &self.db).await?;
            Ok(())
        })
    }
}
