//! Taking a review off its course: cancelling it (office, or the projects service when the
//! project is withdrawn), pausing and resuming it with its project's suspension, and amending a
//! stalled review's panel. Each is one transaction with its events, notifications and outbox
//! messages; each leaves no invitation open, no booking held and no draw waiting.

use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, Tx, Violations,
    time::{date_from_stored, now, to_stored},
};
use govit_proto::{experts::v1 as epb, projects::v1 as ppb, scheduling::v1 as pb};
use sqlx::Row;

use crate::{
    SchedulingService,
    model::{PanelRec, ReviewRow, to_json},
    notify::{self, Channel},
    outbox::Outgoing,
    reviews::{OPEN_STATES, check_panel_shape, internal, parse_invitation, parse_review},
};

/// The same bound as the projects service's reasons, which reach it in cancellations.
const MAX_REASON_CHARS: usize = 2000;

/// A reason kept in the review's events, which are never erased: no ID or phone numbers.
fn reason(v: &mut Violations, value: &str, required: bool) -> String {
    if required {
        v.text("reason", value, MAX_REASON_CHARS);
    } else {
        v.optional_text("reason", value, MAX_REASON_CHARS);
    }
    if let Some(problem) = govit_platform::validate::personal_data_problem(value) {
        v.add("reason", problem);
    }
    value.trim().to_owned()
}

impl SchedulingService {
    pub(crate) async fn cancel_review(
        &self,
        caller: &Caller,
        req: pb::CancelReviewRequest,
    ) -> ServiceResult<ReviewRow> {
        let id = parse_review(&req.name)?;
        let mut v = Violations::new();
        let why = reason(&mut v, &req.reason, true);
        v.finish()?;
        caller.require(&[Role::Office, Role::Service])?;
        let r = self.review(&id).await?;
        match r.state.as_str() {
            "CANCELLED" => return Ok(r),
            "CONCLUDED" => {
                return Err(ServiceError::precondition(
                    "REVIEW_CONCLUDED",
                    r.name(),
                    format!("{} is concluded; its decision stands", r.name()),
                ));
            }
            _ => {}
        }
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE reviews SET state = 'CANCELLED', cancel_reason = $1, paused_from = NULL, version = version + 1 \
             WHERE id = $2 AND state NOT IN ('CANCELLED', 'CONCLUDED')")
            .bind(why.clone())
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(ServiceError::Aborted(format!(
                "{} changed meanwhile; read it again",
                r.name()
            )));
        }
        self.withdraw_panel(
            &mut tx,
            &r,
            "the review was cancelled",
            epb::DrawCancelReason::ReviewCancelled,
        )
        .await?;
        Self::event(&mut tx, &id, &caller.subject, "Cancelled", &why).await?;
        // The project goes back to be sent again; a project withdrawn already ignores it.
        let report = ppb::RecordReviewCancellationRequest {
            name: r.project_name(),
            review: r.name(),
            reason: why.clone(),
        };
        govit_platform::outbox::enqueue(&mut tx, &Outgoing::RecordReviewCancellation(report))
            .await?;
        notify::record(
            &mut tx,
            "office",
            Channel::Email,
            &format!(
                "Review {id} of project {} was cancelled: {why}",
                r.project_id
            ),
            &id,
        )
        .await?;
        tx.commit().await?;
        self.notify.notify_waiters();
        tracing::info!(review = %id, "review cancelled");
        self.review(&id).await
    }

    pub(crate) async fn pause_review(
        &self,
        caller: &Caller,
        req: pb::PauseReviewRequest,
    ) -> ServiceResult<ReviewRow> {
        let id = parse_review(&req.name)?;
        let mut v = Violations::new();
        let why = reason(&mut v, &req.reason, false);
        v.finish()?;
        // Only as its project is suspended: office suspends the project, not the review.
        caller.require(&[Role::Service])?;
        let r = self.review(&id).await?;
        if !OPEN_STATES.contains(&r.state.as_str()) && r.state != "STALLED" {
            // Paused already, or ended: nothing to pause.
            return Ok(r);
        }
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE reviews SET paused_from = state, state = 'PAUSED', version = version + 1 WHERE id = $1 AND state = $2")
            .bind(id.clone())
            .bind(r.state.clone())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(ServiceError::Aborted(format!(
                "{} changed meanwhile; read it again",
                r.name()
            )));
        }
        Self::event(&mut tx, &id, &caller.subject, "Paused", &why).await?;
        tx.commit().await?;
        self.review(&id).await
    }

    pub(crate) async fn resume_review(
        &self,
        caller: &Caller,
        req: pb::ResumeReviewRequest,
    ) -> ServiceResult<ReviewRow> {
        let id = parse_review(&req.name)?;
        caller.require(&[Role::Service])?;
        let r = self.review(&id).await?;
        if r.state != "PAUSED" {
            return Ok(r);
        }
        let back_to = r
            .paused_from
            .clone()
            .filter(|s| OPEN_STATES.contains(&s.as_str()) || s == "STALLED")
            .ok_or_else(|| {
                internal(anyhow::anyhow!(
                    "{} is PAUSED with no state to resume to ({:?})",
                    r.name(),
                    r.paused_from
                ))
            })?;
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE reviews SET state = $1, paused_from = NULL, version = version + 1 WHERE id = $2 AND state = 'PAUSED'")
            .bind(back_to.clone())
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(ServiceError::Aborted(format!(
                "{} changed meanwhile; read it again",
                r.name()
            )));
        }
        // The time paused was not the experts' to answer in.
        let respond_by = to_stored(now() + chrono::Duration::hours(self.policy.response_hours));
        sqlx::query("UPDATE invitations SET respond_by = $1, reminded = 0 WHERE review_id = $2 AND state = 'PENDING'")
            .bind(respond_by)
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
        Self::event(
            &mut tx,
            &id,
            &caller.subject,
            "Resumed",
            &format!("back to {back_to}"),
        )
        .await?;
        tx.commit().await?;
        // Replacements held back while paused go now.
        let draws: Vec<String> =
            sqlx::query_scalar("SELECT draw_id FROM review_draws WHERE review_id = $1")
                .bind(id.clone())
                .fetch_all(&self.db.pool)
                .await?;
        for draw in draws {
            govit_platform::outbox::retry_subject(&self.db, &format!("draws/{draw}"))
                .await
                .map_err(internal)?;
        }
        self.review(&id).await
    }

    pub(crate) async fn amend_panel(
        &self,
        caller: &Caller,
        req: pb::AmendReviewPanelRequest,
    ) -> ServiceResult<ReviewRow> {
        let id = parse_review(&req.name)?;
        let mut v = Violations::new();
        check_panel_shape(&mut v, "panel", &req.panel);
        let why = reason(&mut v, &req.reason, true);
        v.finish()?;
        caller.require(&[Role::Office])?;
        let r = self.review(&id).await?;
        if r.state != "STALLED" {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                r.name(),
                format!(
                    "{} is {}; only a stalled review's panel is amended",
                    r.name(),
                    r.state
                ),
            ));
        }
        let stage = r.stage().map_err(internal)?;
        let deadline = date_from_stored(&r.deadline).map_err(internal)?;
        self.check_with_registry(
            &r.project_name(),
            stage,
            &req.panel,
            &r.excluded().map_err(internal)?,
            deadline,
            "panel",
        )
        .await?;
        let panel: Vec<PanelRec> = req
            .panel
            .iter()
            .map(|p| PanelRec {
                category: p.category.clone(),
                count: p.count,
                alternates: p.alternates,
            })
            .collect();
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE reviews SET panel = $1, state = 'DRAWING', stall_reason = '', chair_expert_id = NULL, version = version + 1 \
             WHERE id = $2 AND state = 'STALLED'")
            .bind(to_json(&panel))
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(ServiceError::Aborted(format!(
                "{} changed meanwhile; read it again",
                r.name()
            )));
        }
        self.withdraw_panel(
            &mut tx,
            &r,
            "the review's panel was amended",
            epb::DrawCancelReason::PanelAmended,
        )
        .await?;
        Self::event(&mut tx, &id, &caller.subject, "PanelAmended", &why).await?;
        tx.commit().await?;
        tracing::info!(review = %id, "review panel amended; drawing again");
        self.review(&id).await
    }

    /// Office takes an expert off the panel; the next alternate is invited as for a decline.
    pub(crate) async fn replace_member(
        &self,
        caller: &Caller,
        req: pb::ReplacePanelMemberRequest,
    ) -> ServiceResult<crate::model::InvitationRow> {
        let (id, expert) = parse_invitation(&req.name)?;
        let mut v = Violations::new();
        let code = match epb::ReplacementReason::try_from(req.reason) {
            Ok(
                r @ (epb::ReplacementReason::ConflictDiscovered
                | epb::ReplacementReason::Unavailable
                | epb::ReplacementReason::Other),
            ) => r,
            _ => {
                v.add(
                    "reason",
                    "must be CONFLICT_DISCOVERED, UNAVAILABLE or OTHER",
                );
                epb::ReplacementReason::Other
            }
        };
        v.text("explanation", &req.explanation, MAX_REASON_CHARS);
        if let Some(problem) = govit_platform::validate::personal_data_problem(&req.explanation) {
            v.add("explanation", problem);
        }
        v.finish()?;
        caller.require(&[Role::Office])?;
        let r = self.review(&id).await?;
        let invitation = self
            .invitations(&id)
            .await?
            .into_iter()
            .find(|i| i.expert_id == expert)
            .ok_or_else(|| ServiceError::not_found("invitation", req.name.clone()))?;
        let mut tx = self.begin().await?;
        if !Self::still_in(&mut tx, &id, &["INVITING", "PANEL_CONFIRMED"]).await? {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                r.name(),
                format!("{} is {}; its panel is not being formed", r.name(), r.state),
            ));
        }
        let done = sqlx::query("UPDATE invitations SET state = 'CANCELLED' WHERE review_id = $1 AND expert_id = $2 AND state IN ('PENDING', 'CONFIRMED')")
            .bind(id.clone())
            .bind(expert.clone())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(ServiceError::precondition(
                "NOT_ON_PANEL",
                req.name.clone(),
                format!(
                    "{} is {}; only a pending or confirmed member is replaced",
                    req.name, invitation.state
                ),
            ));
        }
        sqlx::query("DELETE FROM bookings WHERE review_id = $1 AND expert_id = $2")
            .bind(id.clone())
            .bind(expert.clone())
            .execute(&mut *tx)
            .await?;
        Self::event(
            &mut tx,
            &id,
            &caller.subject,
            "MemberReplaced",
            &format!(
                "{expert} ({}): {}",
                code.as_str_name(),
                req.explanation.trim()
            ),
        )
        .await?;
        notify::record(
            &mut tx,
            &format!("experts/{expert}"),
            Channel::Sms,
            &format!(
                "Your invitation to the {} of project {} is withdrawn by the office. No action is needed.",
                r.stage.to_lowercase().replace('_', " "),
                r.project_id
            ),
            &id,
        )
        .await?;
        Self::queue_replacement(&mut tx, &invitation, code).await?;
        tx.commit().await?;
        self.invitations(&id)
            .await?
            .into_iter()
            .find(|i| i.expert_id == expert)
            .ok_or_else(|| ServiceError::not_found("invitation", req.name.clone()))
    }

    /// Inside `tx`: every open invitation withdrawn with a message to its expert, the meeting
    /// cancelled and its bookings freed, and every draw of the review abandoned (those not
    /// executed are cancelled at the registry with `code` and a fixed text: office's own words
    /// stay in the review's events).
    async fn withdraw_panel(
        &self,
        tx: &mut Tx,
        r: &ReviewRow,
        why: &str,
        code: epb::DrawCancelReason,
    ) -> ServiceResult<()> {
        let open: Vec<String> = sqlx::query_scalar(
            "SELECT expert_id FROM invitations WHERE review_id = $1 AND state IN ('PENDING', 'CONFIRMED') ORDER BY seq",
        )
        .bind(r.id.clone())
        .fetch_all(&mut **tx)
        .await?;
        sqlx::query("UPDATE invitations SET state = 'CANCELLED' WHERE review_id = $1 AND state IN ('PENDING', 'CONFIRMED')")
            .bind(r.id.clone())
            .execute(&mut **tx)
            .await?;
        for expert in &open {
            notify::record(
                tx,
                &format!("experts/{expert}"),
                Channel::Sms,
                &format!(
                    "Your invitation to the {} of project {} is withdrawn: {why}. No action is needed.",
                    r.stage.to_lowercase().replace('_', " "),
                    r.project_id
                ),
                &r.id,
            )
            .await?;
        }
        sqlx::query("DELETE FROM bookings WHERE review_id = $1")
            .bind(r.id.clone())
            .execute(&mut **tx)
            .await?;
        if let Some(mut m) = r
            .meeting()
            .map_err(internal)?
            .filter(|m| m.state == "SCHEDULED")
        {
            m.state = "CANCELLED".into();
            m.change_reason = why.to_owned();
            sqlx::query("UPDATE reviews SET meeting = $1 WHERE id = $2")
                .bind(to_json(&m))
                .bind(r.id.clone())
                .execute(&mut **tx)
                .await?;
        }
        let draws = sqlx::query(
            "SELECT draw_id FROM review_draws WHERE review_id = $1 AND abandoned = 0 ORDER BY seq",
        )
        .bind(r.id.clone())
        .fetch_all(&mut **tx)
        .await?;
        sqlx::query("UPDATE review_draws SET abandoned = 1 WHERE review_id = $1")
            .bind(r.id.clone())
            .execute(&mut **tx)
            .await?;
        for row in draws {
            let draw: String = row.try_get(0)?;
            let cancel = epb::CancelDrawRequest {
                name: format!("draws/{draw}"),
                reason: why.to_owned(),
                reason_code: code as i32,
            };
            govit_platform::outbox::enqueue(tx, &Outgoing::CancelDraw(cancel)).await?;
        }
        Ok(())
    }
}
