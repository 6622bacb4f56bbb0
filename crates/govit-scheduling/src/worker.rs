//! The background worker: delivers the outbox, advances open reviews, lapses unanswered
//! invitations and sends reminders. Every step is safe to repeat, so several replicas may run
//! it, and a step interrupted by a crash or an outage is simply done again on the next tick.

use std::time::Duration;

use govit_platform::{
    ServiceError,
    error::status_reason,
    outbox,
    time::{now, to_stored},
};
use tonic::Status;

use crate::{
    SchedulingService,
    outbox::{Outgoing, PROJECTS_KINDS, REGISTRY_KINDS, stored_kinds},
    reviews::{Replacement, next_wake},
};

/// How long a replacement for a paused review waits before it is looked at again, unless the
/// review resumes first (which makes it due at once).
const PAUSED_WAIT: chrono::Duration = chrono::Duration::hours(1);

/// How soon a review with a draw not yet executed is looked at again: the draw waits for its
/// witness's entropy, which reaches the registry, not this service; or the registry failed.
const ADVANCE_RETRY: chrono::Duration = chrono::Duration::seconds(2);

/// What became of one message.
enum Delivery {
    Done(Result<(), Status>),
    /// Its review is paused: it waits, without counting as a failure.
    Held,
}

impl SchedulingService {
    /// One pass of everything the worker does. Errors of one item do not stop the others;
    /// they are logged and retried on a later tick.
    pub async fn tick(&self) -> anyhow::Result<()> {
        let registry_kinds = stored_kinds(&REGISTRY_KINDS);
        let projects_kinds = stored_kinds(&PROJECTS_KINDS);
        outbox::resume_if_peer_back(&self.db, &self.peers.registry, &registry_kinds).await?;
        outbox::resume_if_peer_back(&self.db, &self.peers.projects, &projects_kinds).await?;
        for message in outbox::claim_due(&self.db, 50).await? {
            match message.decode::<Outgoing>() {
                Ok(outgoing) => match self.deliver(outgoing).await {
                    Delivery::Held => {
                        outbox::defer(&self.db, &message, chrono::Utc::now() + PAUSED_WAIT).await?
                    }
                    Delivery::Done(result) => outbox::settle(&self.db, &message, result).await?,
                },
                Err(e) => outbox::park_unreadable(&self.db, &message, &e).await?,
            }
        }
        self.advance_due().await?;
        // Reminders first: an invitation due to lapse on this pass still gets its reminder. Each
        // step stands alone, so one unreadable row cannot stop invitations lapsing everywhere.
        if let Err(e) = self.remind().await {
            tracing::error!(error = ?e, "reminders not sent on this pass");
        }
        self.lapse_overdue()
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        Ok(())
    }

    /// Takes further the reviews due (`reviews.wake_at`), a batch at a time, and sets when each
    /// is due next. An idle system reads one index entry per pass, however many reviews are
    /// open.
    async fn advance_due(&self) -> anyhow::Result<()> {
        let started = now();
        loop {
            let due: Vec<String> = sqlx::query_scalar(
                "SELECT id FROM reviews WHERE wake_at <= $1 ORDER BY wake_at, id LIMIT 100",
            )
            .bind(to_stored(started))
            .fetch_all(&self.db.pool)
            .await?;
            for id in &due {
                let advanced = self.advance(id).await;
                if let Err(e) = &advanced {
                    tracing::warn!(review = %id, error = ?e, "review not advanced; will retry");
                }
                // The retry is after the pass started, so one pass never takes a review twice.
                let retry = to_stored(now().max(started) + ADVANCE_RETRY);
                let mut tx = self.begin().await.map_err(|e| anyhow::anyhow!("{e:?}"))?;
                next_wake(&mut tx, id, &retry)
                    .await
                    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
                tx.commit().await?;
            }
            if due.len() < 100 {
                return Ok(());
            }
        }
    }

    /// Makes one call to another service (a replacement also invites whoever comes in).
    async fn deliver(&self, message: Outgoing) -> Delivery {
        let result = match message {
            Outgoing::ReplaceExpert(request) => match self.replace(request).await {
                Ok(Replacement::Done) => Ok(()),
                Ok(Replacement::Paused) => return Delivery::Held,
                Err(ServiceError::Internal(e)) => {
                    tracing::warn!(error = ?e, "replacement not done; will retry");
                    Err(Status::internal("the replacement could not be completed"))
                }
                Err(other) => Err(Status::from(other)),
            },
            Outgoing::CancelDraw(request) => {
                match self.registry.clone().cancel_draw(request).await {
                    // Executed or cancelled already: there is nothing left to cancel.
                    Err(s) if status_reason(&s).as_deref() == Some("STATE_CONFLICT") => Ok(()),
                    other => other.map(|_| ()),
                }
            }
            Outgoing::RecordReviewOutcome(request) => self
                .projects
                .clone()
                .record_review_outcome(request)
                .await
                .map(|_| ()),
            Outgoing::RecordReviewCancellation(request) => self
                .projects
                .clone()
                .record_review_cancellation(request)
                .await
                .map(|_| ()),
            Outgoing::RecordReviewService(request) => self
                .registry
                .clone()
                .record_review_service(request)
                .await
                .map(|_| ()),
        };
        Delivery::Done(result)
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
