//! The projects service: organisations, projects and their lifecycle, documents, and the
//! project audit trail.

#![forbid(unsafe_code)]

mod api;
mod blobs;
mod documents;
mod lifecycle;
mod model;
mod money;
mod organizations;
mod outbox;
mod overrides;
mod projects;
mod reviews;
pub mod similarity;
mod store;
mod supervision;
mod uploads;
mod validation;
pub mod variance;
mod workdays;

use std::path::PathBuf;

use std::sync::Arc;

use govit_platform::{Authenticator, Caller, Db, auth::Bureau, server::ServerOptions};
use govit_proto::projects::v1::FundingSource;
use govit_proto::projects::v1::project_service_server::ProjectServiceServer;
use sqlx::migrate::Migrator;
use tonic::service::Routes;

pub use blobs::BlobStore;
pub use outbox::Outgoing;

/// The client the outbox worker logs overrides at the registry with.
pub type RegistryClient =
    govit_proto::experts::v1::expert_registry_service_client::ExpertRegistryServiceClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            govit_platform::client::BearerToken,
        >,
    >;

/// The client the outbox worker calls the scheduling service with.
pub type SchedulingClient =
    govit_proto::scheduling::v1::review_scheduling_service_client::ReviewSchedulingServiceClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            govit_platform::client::BearerToken,
        >,
    >;

/// The projects service's own migration stream.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/projects");

/// The default size limit of one document: 50 MiB.
pub const DEFAULT_MAX_DOCUMENT_BYTES: u64 = 50 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct ProjectsConfig {
    pub database_url: String,
    /// Where document content is kept.
    pub blob_dir: PathBuf,
    pub max_document_bytes: u64,
    pub supervision: SupervisionPolicy,
}

/// The supervising rules a deployment may tune.
#[derive(Debug, Clone)]
pub struct SupervisionPolicy {
    /// A budget more than this above the original approved figure needs re-approval by the
    /// approving department (basis points; 1000 = 10%).
    pub budget_threshold_bp: i64,
    pub bands: variance::Bands,
    /// Post-evaluation weights in percent: engineering quality, operating state, investment
    /// benefit. They add up to 100.
    pub evaluation_weights: [i32; 3],
    /// Working days from acceptance for review to the review meeting.
    pub review_deadline_working_days: u32,
    /// How many office users an override of a review's decision takes: 2 (one asks, another
    /// approves) or 1.
    pub override_approvers: u32,
    /// Months of stable operation before a post-evaluation may be recorded, counted from the
    /// day operation started.
    pub stable_operation_months: u32,
    /// The funding sources of the projects each bureau supervises; a bureau not listed
    /// supervises every project.
    pub bureau_remits: Vec<(Bureau, Vec<FundingSource>)>,
}

impl SupervisionPolicy {
    /// Whether the caller supervises `project`: every caller but a bureau outside its remit.
    pub fn supervises(&self, caller: &Caller, project: &model::ProjectRow) -> bool {
        self.remit_of(caller).is_none_or(|sources| {
            project
                .funding_source
                .0
                .is_some_and(|source| sources.contains(&source))
        })
    }

    /// The funding sources a bureau's remit is limited to; None for every other caller and
    /// for a bureau whose remit is every project.
    pub fn remit_of(&self, caller: &Caller) -> Option<&[FundingSource]> {
        let bureau = caller
            .bureau
            .filter(|_| caller.is(govit_platform::Role::Supervisor))?;
        self.bureau_remits
            .iter()
            .find(|(b, _)| *b == bureau)
            .map(|(_, sources)| sources.as_slice())
    }
}

impl Default for SupervisionPolicy {
    fn default() -> Self {
        SupervisionPolicy {
            budget_threshold_bp: 1000,
            bands: variance::Bands::default(),
            evaluation_weights: [40, 30, 30],
            review_deadline_working_days: 5,
            override_approvers: 2,
            stable_operation_months: 6,
            // The finance bureau supervises fiscal money; a unit's own funds are not its remit.
            bureau_remits: vec![(
                Bureau::Finance,
                vec![
                    FundingSource::CityBudget,
                    FundingSource::HigherLevelTransfer,
                    FundingSource::SpecialBond,
                    FundingSource::Mixed,
                ],
            )],
        }
    }
}

/// The service, ready to serve. Cheap to clone.
#[derive(Clone)]
pub struct ProjectsService {
    store: store::Store,
    blobs: BlobStore,
    max_document_bytes: u64,
    policy: SupervisionPolicy,
    /// The scheduling service: reviews are checked with it before a project is sent to
    /// review, and its working-day calendar counts deadlines. Without it (a service run alone)
    /// working days are Monday to Friday, no review is requested, and office records review
    /// outcomes itself.
    calendar: Option<SchedulingClient>,
    /// The expert registry, whose transparency log records office overrides.
    registry: Option<RegistryClient>,
    /// Public list calls running at once: anyone may call, with no token to rate-limit, so
    /// more are refused (RESOURCE_EXHAUSTED) rather than queued against the pool office uses.
    public_reads: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for ProjectsService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProjectsService")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl ProjectsService {
    /// Connects to the database (creating it if needed), applies migrations and opens the blob
    /// store.
    pub async fn open(config: &ProjectsConfig) -> anyhow::Result<Self> {
        let db = Db::connect_and_migrate(&config.database_url, &MIGRATOR).await?;
        let blobs = BlobStore::open(&config.blob_dir).await?;
        anyhow::ensure!(
            config.supervision.evaluation_weights.iter().sum::<i32>() == 100
                && config
                    .supervision
                    .evaluation_weights
                    .iter()
                    .all(|w| *w >= 0),
            "the post-evaluation weights must be non-negative and add up to 100"
        );
        anyhow::ensure!(
            (1..=2).contains(&config.supervision.override_approvers),
            "override_approvers must be 1 or 2"
        );
        Ok(Self {
            store: store::Store { db },
            blobs,
            max_document_bytes: config.max_document_bytes,
            policy: config.supervision.clone(),
            calendar: None,
            registry: None,
            public_reads: Arc::new(tokio::sync::Semaphore::new(PUBLIC_READS_AT_ONCE)),
        })
    }

    /// Works with the scheduling service: reviews are requested from it, and its working-day
    /// calendar counts the deadlines this service computes (rectification deadlines, overdue
    /// reviews).
    pub fn with_calendar(mut self, scheduling: SchedulingClient) -> Self {
        self.calendar = Some(scheduling);
        self
    }

    /// Logs office overrides of review decisions in the registry's transparency log.
    pub fn with_registry(mut self, registry: RegistryClient) -> Self {
        self.registry = Some(registry);
        self
    }

    pub fn db(&self) -> &Db {
        &self.store.db
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Health, reflection, the authenticated service and the public one.
    pub async fn routes(
        self,
        auth: Authenticator,
        options: &ServerOptions,
    ) -> anyhow::Result<Routes> {
        use govit_proto::projects::v1::public_notice_service_server::PublicNoticeServiceServer;
        use tonic::server::NamedService;
        let (routes, _health) = govit_platform::server::base_routes_named(
            &[
                ProjectServiceServer::<ProjectsService>::NAME,
                PublicNoticeServiceServer::<ProjectsService>::NAME,
            ],
            options,
        )
        .await?;
        // Published notices are for anyone: that one service takes no token, so no per-subject
        // rate limit either. Its requests are a few filters, and few run at once
        // (`public_notices`).
        let public = PublicNoticeServiceServer::new(self.clone())
            .max_decoding_message_size(PUBLIC_REQUEST_BYTES)
            .max_encoding_message_size(options.max_message_bytes);
        let service = ProjectServiceServer::new(self)
            .max_decoding_message_size(options.max_message_bytes)
            .max_encoding_message_size(options.max_message_bytes);
        Ok(routes.add_service(public).add_service(
            tonic::service::interceptor::InterceptedService::new(service, auth),
        ))
    }
}

/// The largest request the unauthenticated `PublicNoticeService` decodes.
const PUBLIC_REQUEST_BYTES: usize = 8 * 1024;
/// How many public list calls run at once.
const PUBLIC_READS_AT_ONCE: usize = 8;

impl govit_platform::metrics::Gauges for ProjectsService {
    fn record(&self) -> std::pin::Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + '_>> {
        Box::pin(async move {
            govit_platform::metrics::record_pool("projects", self.db());
            govit_platform::metrics::record_outbox("projects", self.db()).await?;
            Ok(())
        })
    }
}
