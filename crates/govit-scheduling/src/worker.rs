//! The background worker: delivers the outbox, advances open reviews, lapses unanswered
//! invitations and sends reminders. Every step is safe to repeat, so several replicas may run
//! it, and a step interrupted by a crash or an outage is simply done again on the next tick.

use std::time::Duration;

use govit_platform::outbox;
use govit_proto::{experts::v1 as epb, projects::v1 as ppb};

use crate::{SchedulingService, reviews::OPEN_STATES};

impl SchedulingService {
    /// One pass of everything the worker does. Errors of one item do not stop the others;
    /// they are logged and retried on a later tick.
    pub async fn tick(&self) -> anyhow::Result<()> {
        for message in outbox::claim_due(&self.db, 50).await? {
            match self.deliver(&message).await {
                Ok(()) => outbox::delivered(&self.db, &message.id).await?,
                Err(e) => {
                    tracing::warn!(message = %message.id, kind = %message.kind, error = %e, "outbox message not delivered; will retry");
                    outbox::failed(&self.db, &message, &e.to_string()).await?;
                }
            }
        }
        let open: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT id FROM reviews WHERE state IN ({}) ORDER BY create_time",
            OPEN_STATES
                .iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
        .fetch_all(&self.db.pool)
        .await?;
        for id in open {
            if let Err(e) = self.advance(&id).await {
                tracing::warn!(review = %id, error = ?e, "review not advanced; will retry");
            }
        }
        // Reminders first: an invitation due to lapse on this pass still gets its reminder.
        self.remind().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
        self.lapse_overdue()
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(())
    }

    async fn deliver(&self, message: &outbox::Message) -> anyhow::Result<()> {
        let p = &message.payload;
        let text = |k: &str| p[k].as_str().unwrap_or_default().to_owned();
        match message.kind.as_str() {
            "REPLACE_EXPERT" => self
                .replace(&message.id, p)
                .await
                .map_err(|e| anyhow::anyhow!("{e:?}")),
            "REPORT_OUTCOME" => {
                let stage = match text("stage").as_str() {
                    "PRELIMINARY_REVIEW" => ppb::ReviewStage::PreliminaryReview,
                    "IMPLEMENTATION_PLAN_REVIEW" => ppb::ReviewStage::ImplementationPlanReview,
                    "ACCEPTANCE" => ppb::ReviewStage::Acceptance,
                    _ => ppb::ReviewStage::PostEvaluation,
                };
                let decision = ppb::ReviewDecision::from_str_name(&format!(
                    "REVIEW_DECISION_{}",
                    text("decision")
                ))
                .unwrap_or_default();
                let mut projects = self.projects.clone();
                projects
                    .record_review_outcome(ppb::RecordReviewOutcomeRequest {
                        name: format!("projects/{}", text("project_id")),
                        etag: String::new(),
                        review_id: text("review_id"),
                        stage: stage as i32,
                        decision: decision as i32,
                        summary: text("summary"),
                    })
                    .await
                    .map(|_| ())
                    .map_err(|s| anyhow::anyhow!("{:?}: {}", s.code(), s.message()))
            }
            "RECORD_SERVICE" => {
                let mut registry = self.registry.clone();
                registry
                    .record_review_service(epb::RecordReviewServiceRequest {
                        name: format!("experts/{}", text("expert_id")),
                        review_id: text("review_id"),
                        rating: p["rating"].as_i64().unwrap_or_default() as i32,
                        comment: text("comment"),
                    })
                    .await
                    .map(|_| ())
                    .map_err(|s| anyhow::anyhow!("{:?}: {}", s.code(), s.message()))
            }
            other => anyhow::bail!("unknown outbox message kind {other}"),
        }
    }

    /// Runs `tick` every `interval` until the process stops.
    pub fn spawn_worker(&self, interval: Duration) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        tokio::spawn(async move {
            loop {
                if let Err(e) = service.tick().await {
                    tracing::warn!(error = %e, "scheduling worker pass failed");
                }
                tokio::time::sleep(interval).await;
            }
        })
    }
}
