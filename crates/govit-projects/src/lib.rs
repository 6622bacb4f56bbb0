//! The projects service: organisations, projects and their lifecycle, documents, and the
//! project audit trail.

#![forbid(unsafe_code)]

mod api;
mod blobs;
mod lifecycle;
mod model;
mod store;
mod supervision;
mod validation;
pub mod variance;
mod workdays;

use std::path::PathBuf;

use govit_platform::{Authenticator, Db, server::ServerOptions};
use govit_proto::projects::v1::project_service_server::ProjectServiceServer;
use sqlx::migrate::Migrator;
use tonic::service::Routes;

pub use blobs::BlobStore;

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
}

impl Default for SupervisionPolicy {
    fn default() -> Self {
        SupervisionPolicy {
            budget_threshold_bp: 1000,
            bands: variance::Bands::default(),
            evaluation_weights: [40, 30, 30],
            review_deadline_working_days: 5,
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
    /// The scheduling service, for its working-day calendar; without it (a service run alone),
    /// working days are Monday to Friday.
    calendar: Option<SchedulingClient>,
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
        Ok(Self {
            store: store::Store { db },
            blobs,
            max_document_bytes: config.max_document_bytes,
            policy: config.supervision.clone(),
            calendar: None,
        })
    }

    /// Uses the scheduling service's working-day calendar for the deadlines this service
    /// computes (rectification deadlines, overdue reviews).
    pub fn with_calendar(mut self, scheduling: SchedulingClient) -> Self {
        self.calendar = Some(scheduling);
        self
    }

    /// Delivers the messages due in the outbox to the scheduling service; returns how many
    /// were delivered. Failures are retried later with backoff.
    pub async fn deliver_outbox(&self, scheduling: &mut SchedulingClient) -> anyhow::Result<usize> {
        use govit_platform::outbox;
        use govit_proto::scheduling::v1 as spb;
        let mut delivered = 0;
        for message in outbox::claim_due(&self.store.db, 50).await? {
            let p = &message.payload;
            let text = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
            let request = spb::RequestReviewRequest {
                request_key: text("request_key"),
                project_id: text("project_id"),
                stage: spb::ReviewStage::from_str_name(&format!("REVIEW_STAGE_{}", text("stage")))
                    .unwrap_or_default() as i32,
                panel: p["panel"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| spb::PanelRequirement {
                        category: r["category"].as_str().unwrap_or_default().to_owned(),
                        count: r["count"].as_i64().unwrap_or_default() as i32,
                        alternates: r["alternates"].as_i64().unwrap_or_default() as i32,
                    })
                    .collect(),
                excluded_organizations: p["excluded_organizations"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|o| o.as_str().map(str::to_owned))
                    .collect(),
                applicant_organization: text("applicant_organization"),
            };
            match scheduling.request_review(request).await {
                Ok(_) => {
                    outbox::delivered(&self.store.db, &message.id).await?;
                    delivered += 1;
                }
                Err(status) => {
                    tracing::warn!(message = %message.id, code = ?status.code(), error = %status.message(), "review request not delivered; will retry");
                    outbox::failed(&self.store.db, &message, status.message()).await?;
                }
            }
        }
        Ok(delivered)
    }

    /// Runs `deliver_outbox` every `interval` until the process stops.
    pub fn spawn_outbox_worker(
        &self,
        mut scheduling: SchedulingClient,
        interval: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = service.deliver_outbox(&mut scheduling).await {
                    tracing::warn!(error = %e, "outbox delivery failed");
                }
                match service.snapshot_previous_month_if_due().await {
                    Ok(Some(month)) => tracing::info!(month, "monthly snapshot taken"),
                    Ok(None) => {}
                    Err(e) => tracing::warn!(error = ?e, "monthly snapshot not taken; will retry"),
                }
                tokio::time::sleep(interval).await;
            }
        })
    }

    pub fn db(&self) -> &Db {
        &self.store.db
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    /// Health, reflection and the authenticated service.
    pub async fn routes(
        self,
        auth: Authenticator,
        options: &ServerOptions,
    ) -> anyhow::Result<Routes> {
        let (routes, _health) =
            govit_platform::server::base_routes::<ProjectServiceServer<ProjectsService>>().await?;
        let service = ProjectServiceServer::new(self)
            .max_decoding_message_size(options.max_message_bytes)
            .max_encoding_message_size(options.max_message_bytes);
        Ok(
            routes.add_service(tonic::service::interceptor::InterceptedService::new(
                service, auth,
            )),
        )
    }
}
