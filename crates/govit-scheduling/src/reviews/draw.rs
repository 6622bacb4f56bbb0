//! Drawing the panel (run by the worker and by AdvanceReview): the draw opened at the registry,
//! executed once witnessed (or at once when no witness is required), and whoever it selected
//! invited; a review whose panel cannot be drawn stalls for office.

use govit_platform::{
    ServiceError, ServiceResult, StateMachine, error::status_reason, time::date_from_stored,
};
use govit_proto::{StoredEnum, experts::v1 as epb};
use sqlx::Row;

use super::{
    OPEN_STATES, ReviewEvent, derived_key, internal, lock_review_in, move_review, next_seq,
    wake_review,
};
use crate::{
    SchedulingService,
    model::ReviewRow,
    notify::{self, Channel},
    outbox::Outgoing,
};

impl SchedulingService {
    /// Takes the review as far as it can go without a person: opens the draw, executes it once
    /// witnessed (or at once when no witness is required), invites whoever was drawn.
    pub(crate) async fn advance(&self, id: &str) -> ServiceResult<()> {
        let r = self.review(id).await?;
        if !OPEN_STATES.contains(&r.state) {
            return Ok(());
        }
        let draws: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM review_draws WHERE review_id = $1 AND abandoned = 0",
        )
        .bind(id.to_owned())
        .fetch_one(&self.db.pool)
        .await?;
        if draws == 0 && !self.open_main_draw(&r).await? {
            return Ok(());
        }
        let draws = sqlx::query("SELECT draw_id, seq, category, invited FROM review_draws WHERE review_id = $1 AND abandoned = 0 ORDER BY seq")
            .bind(id.to_owned())
            .fetch_all(&self.db.pool)
            .await?;
        for row in draws {
            let invited: i64 = row.try_get(3)?;
            if invited == 0 {
                self.run_draw(
                    &r,
                    &row.try_get::<String, _>(0)?,
                    row.try_get(1)?,
                    &row.try_get::<String, _>(2)?,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Opens the panel's main draw; false when the registry refused it and the review stalled.
    async fn open_main_draw(&self, r: &ReviewRow) -> ServiceResult<bool> {
        // Each panel (the first, or one office amended) has its own draw, and its own key
        // at the registry, so a retried opening never opens two. The key counts only the
        // abandoned draws: a second pass racing this one, which sees the first's draw
        // already recorded, must still send the same key and get the same draw.
        let generation: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM review_draws WHERE review_id = $1 AND abandoned = 1",
        )
        .bind(r.id.clone())
        .fetch_one(&self.db.pool)
        .await?;
        let meeting_date = date_from_stored(&r.deadline).map_err(internal)?;
        let opened = self
            .registry
            .clone()
            .open_draw(epb::OpenDrawRequest {
                project: r.project_name(),
                stage: r.stage as i32,
                requirements: r
                    .panel()
                    .map_err(internal)?
                    .into_iter()
                    .map(|p| epb::PanelRequirement {
                        category: p.category,
                        count: p.count,
                        alternates: p.alternates,
                    })
                    .collect(),
                excluded_organizations: r.excluded().map_err(internal)?,
                excluded_experts: Vec::new(),
                meeting_date: Some(govit_platform::time::date_to_proto(meeting_date)),
                supplements: String::new(),
                request_id: derived_key(&[&r.id, "main", &generation.to_string()]),
                validate_only: false,
            })
            .await;
        let d = match opened {
            Ok(d) => d.into_inner(),
            // The registry refused the request itself (its pool shrank since the panel
            // was checked, say): retrying cannot help; office must act.
            Err(s)
                if matches!(
                    s.code(),
                    tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument
                ) =>
            {
                let why = match status_reason(&s).as_deref() {
                    Some("INSUFFICIENT_EXPERTS") => {
                        format!("the pool cannot supply the panel: {}", s.message())
                    }
                    _ => format!("the registry refused the draw: {}", s.message()),
                };
                self.stall(r, &why).await?;
                return Ok(false);
            }
            Err(s) => return Err(ServiceError::from_peer("expert registry", s)),
        };
        self.add_draw(r, &d.draw_id, "").await?;
        Ok(true)
    }

    /// Executes one recorded draw when it may run, and invites whoever it selected.
    async fn run_draw(
        &self,
        r: &ReviewRow,
        draw_id: &str,
        seq: i64,
        category: &str,
    ) -> ServiceResult<()> {
        let mut registry = self.registry.clone();
        let mut d = registry
            .get_draw(epb::GetDrawRequest {
                name: format!("draws/{draw_id}"),
            })
            .await
            .map_err(|s| ServiceError::from_peer("expert registry", s))?
            .into_inner();
        if matches!(d.state(), epb::DrawState::Open | epb::DrawState::Witnessed) {
            if d.witness_required && !d.witnessed {
                return self.await_witness(r).await;
            }
            d = registry
                .execute_draw(epb::ExecuteDrawRequest {
                    name: d.name.clone(),
                })
                .await
                .map_err(|s| ServiceError::from_peer("expert registry", s))?
                .into_inner();
        }
        if d.state() == epb::DrawState::Cancelled {
            return self
                .stall(r, &format!("draw {draw_id} was cancelled at the registry"))
                .await;
        }
        if d.outcome() == epb::DrawOutcome::Insufficient {
            return self
                .stall(r, &format!("draw {draw_id} found too few eligible experts"))
                .await;
        }
        self.invite_drawn(r, &d, seq, category).await
    }

    /// Records a draw opened for the review (`category` empty for the main draw), or cancels it
    /// at the registry when it is not the review's to keep.
    pub(super) async fn add_draw(
        &self,
        r: &ReviewRow,
        draw_id: &str,
        category: &str,
    ) -> ServiceResult<()> {
        let mut tx = self.begin().await?;
        if !lock_review_in(&mut tx, &r.id, &OPEN_STATES).await? {
            // Cancelled or paused while the registry opened it: the draw is not this review's
            // any more, and must not wait at the registry.
            let cancel = epb::CancelDrawRequest {
                name: format!("draws/{draw_id}"),
                reason: "the review ended while the draw was opened".into(),
                reason_code: epb::DrawCancelReason::ReviewCancelled as i32,
            };
            govit_platform::outbox::enqueue(&mut tx, &Outgoing::CancelDraw(cancel)).await?;
            tx.commit().await?;
            return Ok(());
        }
        let exists =
            sqlx::query("SELECT 1 FROM review_draws WHERE review_id = $1 AND draw_id = $2")
                .bind(r.id.clone())
                .bind(draw_id.to_owned())
                .fetch_optional(&mut *tx)
                .await?;
        // A panel has one main draw: another, opened by a pass that lost a race, is cancelled
        // at the registry instead of recorded.
        let other_main = category.is_empty()
            && exists.is_none()
            && sqlx::query(
                "SELECT 1 FROM review_draws WHERE review_id = $1 AND category = '' AND abandoned = 0",
            )
            .bind(r.id.clone())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if other_main {
            let cancel = epb::CancelDrawRequest {
                name: format!("draws/{draw_id}"),
                reason: "opened twice for one panel".into(),
                reason_code: epb::DrawCancelReason::Other as i32,
            };
            govit_platform::outbox::enqueue(&mut tx, &Outgoing::CancelDraw(cancel)).await?;
            tx.commit().await?;
            return Ok(());
        }
        if exists.is_none() {
            let seq = next_seq(&mut tx, "review_draws", &r.id).await?;
            sqlx::query("INSERT INTO review_draws (review_id, draw_id, seq, category, invited) VALUES ($1, $2, $3, $4, 0)")
                .bind(r.id.clone())
                .bind(draw_id.to_owned())
                .bind(seq)
                .bind(category.to_owned())
                .execute(&mut *tx)
                .await?;
            let what = if category.is_empty() {
                format!("draw {draw_id} opened")
            } else {
                format!("supplementary draw {draw_id} opened for {category}")
            };
            Self::event(&mut tx, &r.id, "scheduling", "DrawOpened", &what).await?;
            wake_review(&mut tx, &r.id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The draw is open and its witness has not given entropy yet.
    async fn await_witness(&self, r: &ReviewRow) -> ServiceResult<()> {
        let event = ReviewEvent::AwaitWitness;
        if !event.allows(r.state) {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        if move_review(&mut tx, &r.id, event, None).await? {
            Self::event(
                &mut tx,
                &r.id,
                "scheduling",
                "StateChanged",
                &format!(
                    "{} → {}: draw opened; waiting for witness entropy",
                    r.state.as_stored(),
                    event.target().as_stored()
                ),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Stalls a review still under way (one cancelled or paused meanwhile stays so) and tells
    /// office why.
    pub(super) async fn stall(&self, r: &ReviewRow, reason: &str) -> ServiceResult<()> {
        let mut tx = self.begin().await?;
        if !move_review(&mut tx, &r.id, ReviewEvent::Stall, Some(reason.to_owned())).await? {
            return Ok(());
        }
        Self::event(&mut tx, &r.id, "scheduling", "Stalled", reason).await?;
        notify::record(
            &mut tx,
            "office",
            Channel::Email,
            &format!(
                "Review {} of project {} stalled: {reason}",
                r.id, r.project_id
            ),
            &r.id,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Invites the experts an executed draw selected (all categories for the main draw, the
    /// one category of a supplementary draw).
    async fn invite_drawn(
        &self,
        r: &ReviewRow,
        d: &epb::Draw,
        seq: i64,
        category: &str,
    ) -> ServiceResult<()> {
        let mut tx = self.begin().await?;
        if !lock_review_in(&mut tx, &r.id, &OPEN_STATES).await? {
            return Ok(());
        }
        let claimed = sqlx::query(
            "UPDATE review_draws SET invited = 1 WHERE review_id = $1 AND seq = $2 AND invited = 0 AND abandoned = 0",
        )
        .bind(r.id.clone())
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            return Ok(());
        }
        let mut first = None;
        for p in &d.panel {
            if !category.is_empty() && p.category != category {
                continue;
            }
            for expert in &p.selected {
                first.get_or_insert_with(|| expert.clone());
                self.invite(&mut tx, r, expert, &p.category, &d.draw_id)
                    .await?;
            }
        }
        if category.is_empty() {
            // The chair is by default the first selected expert.
            sqlx::query(
                "UPDATE reviews SET chair_expert_id = COALESCE(chair_expert_id, $1) WHERE id = $2",
            )
            .bind(first)
            .bind(r.id.clone())
            .execute(&mut *tx)
            .await?;
        }
        move_review(&mut tx, &r.id, ReviewEvent::Invite, None).await?;
        Self::event(
            &mut tx,
            &r.id,
            "scheduling",
            "Invited",
            &format!("draw {} executed; panel invited", d.draw_id),
        )
        .await?;
        tx.commit().await?;
        self.notify.notify_waiters();
        Ok(())
    }
}
