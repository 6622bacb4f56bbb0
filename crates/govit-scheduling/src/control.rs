//! Taking a review off its course: cancelling it (office, or the projects service when the
//! project is withdrawn), pausing and resuming it with its project's suspension, and amending a
//! stalled review's panel. Each is one transaction with its events, notifications and outbox
//! messages; each leaves no invitation open, no booking held and no draw waiting.

use govit_platform::{
    Caller, ServiceError, ServiceResult, StateMachine, Tx, Violations,
    time::{date_from_stored, now, to_stored},
};
use govit_proto::{StoredEnum, experts::v1 as epb, projects::v1 as ppb, scheduling::v1 as pb};
use sqlx::{AssertSqlSafe, Row};

use crate::{
    SchedulingService,
    model::{InvitationRow, PanelRec, ReviewRow},
    notify::{self, Channel},
    outbox::Outgoing,
    reviews::{
        InvitationEvent, MeetingEvent, PANEL_STATES, PAUSABLE_STATES, ReviewEvent,
        check_panel_shape, internal, lock_review_in, meeting_after, move_invitations, move_review,
        parse_invitation, parse_review, store_meeting,
    },
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

/// A review to take off its course (cancel, pause or resume), with the reason given.
#[derive(Debug, Clone)]
pub struct ReviewChange {
    pub id: String,
    reason: String,
}

impl ReviewChange {
    fn parse(name: &str, why: &str, required: bool) -> ServiceResult<Self> {
        let id = parse_review(name)?;
        let mut v = Violations::new();
        let reason = reason(&mut v, why, required);
        v.finish()?;
        Ok(ReviewChange { id, reason })
    }
}

impl TryFrom<pb::CancelReviewRequest> for ReviewChange {
    type Error = ServiceError;

    fn try_from(req: pb::CancelReviewRequest) -> ServiceResult<Self> {
        Self::parse(&req.name, &req.reason, true)
    }
}

impl TryFrom<pb::PauseReviewRequest> for ReviewChange {
    type Error = ServiceError;

    fn try_from(req: pb::PauseReviewRequest) -> ServiceResult<Self> {
        Self::parse(&req.name, &req.reason, false)
    }
}

impl TryFrom<pb::ResumeReviewRequest> for ReviewChange {
    type Error = ServiceError;

    fn try_from(req: pb::ResumeReviewRequest) -> ServiceResult<Self> {
        Ok(ReviewChange {
            id: parse_review(&req.name)?,
            reason: String::new(),
        })
    }
}

/// A stalled review's new panel.
#[derive(Debug, Clone)]
pub struct PanelAmendment {
    pub id: String,
    panel: Vec<pb::PanelRequirement>,
    reason: String,
}

impl TryFrom<pb::AmendReviewPanelRequest> for PanelAmendment {
    type Error = ServiceError;

    fn try_from(req: pb::AmendReviewPanelRequest) -> ServiceResult<Self> {
        let id = parse_review(&req.name)?;
        let mut v = Violations::new();
        check_panel_shape(&mut v, "panel", &req.panel);
        let reason = reason(&mut v, &req.reason, true);
        v.finish()?;
        Ok(PanelAmendment {
            id,
            panel: req.panel,
            reason,
        })
    }
}

/// Office's removal of a panel member.
#[derive(Debug, Clone)]
pub struct MemberRemoval {
    name: String,
    id: String,
    expert: String,
    code: epb::ReplacementReason,
    explanation: String,
}

impl TryFrom<pb::ReplacePanelMemberRequest> for MemberRemoval {
    type Error = ServiceError;

    fn try_from(req: pb::ReplacePanelMemberRequest) -> ServiceResult<Self> {
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
        Ok(MemberRemoval {
            name: req.name,
            id,
            expert,
            code,
            explanation: req.explanation.trim().to_owned(),
        })
    }
}

fn changed_meanwhile(r: &ReviewRow) -> ServiceError {
    ServiceError::Aborted(format!("{} changed meanwhile; read it again", r.name()))
}

impl SchedulingService {
    pub(crate) async fn call_off_review(
        &self,
        caller: &Caller,
        change: ReviewChange,
    ) -> ServiceResult<ReviewRow> {
        let (id, why) = (&change.id, &change.reason);
        let r = self.review(id).await?;
        match r.state {
            pb::ReviewState::Cancelled => return Ok(r),
            pb::ReviewState::Concluded => {
                return Err(ServiceError::precondition(
                    "REVIEW_CONCLUDED",
                    r.name(),
                    format!("{} is concluded; its decision stands", r.name()),
                ));
            }
            _ => {}
        }
        let mut tx = self.begin().await?;
        if !move_review(&mut tx, id, ReviewEvent::Cancel, Some(why.clone())).await? {
            return Err(changed_meanwhile(&r));
        }
        self.withdraw_panel(
            &mut tx,
            &r,
            "the review was cancelled",
            epb::DrawCancelReason::ReviewCancelled,
        )
        .await?;
        Self::event(&mut tx, id, &caller.subject, "Cancelled", why).await?;
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
            id,
        )
        .await?;
        tx.commit().await?;
        self.notify.notify_waiters();
        tracing::info!(review = %id, "review cancelled");
        self.review(id).await
    }

    pub(crate) async fn pause(
        &self,
        caller: &Caller,
        change: ReviewChange,
    ) -> ServiceResult<ReviewRow> {
        let id = &change.id;
        let r = self.review(id).await?;
        if !ReviewEvent::Pause.allows(r.state) {
            // Paused already, or ended: nothing to pause.
            return Ok(r);
        }
        let mut tx = self.begin().await?;
        // From the state read, not any pausable one: a review that moved on meanwhile is the
        // caller's to look at again, as before.
        if !lock_review_in(&mut tx, id, &[r.state]).await?
            || !move_review(&mut tx, id, ReviewEvent::Pause, None).await?
        {
            return Err(changed_meanwhile(&r));
        }
        Self::event(&mut tx, id, &caller.subject, "Paused", &change.reason).await?;
        tx.commit().await?;
        self.review(id).await
    }

    pub(crate) async fn resume(
        &self,
        caller: &Caller,
        change: ReviewChange,
    ) -> ServiceResult<ReviewRow> {
        let id = &change.id;
        let r = self.review(id).await?;
        if r.state != pb::ReviewState::Paused {
            return Ok(r);
        }
        let back_to = r
            .paused_from()
            .map_err(internal)?
            .filter(|s| PAUSABLE_STATES.contains(s))
            .ok_or_else(|| {
                internal(anyhow::anyhow!(
                    "{} is PAUSED with no state to resume to ({:?})",
                    r.name(),
                    r.paused_from
                ))
            })?;
        let mut tx = self.begin().await?;
        if !move_review(&mut tx, id, ReviewEvent::Resume(back_to), None).await? {
            return Err(changed_meanwhile(&r));
        }
        // The time paused was not the experts' to answer in.
        let respond_by = to_stored(now() + chrono::Duration::hours(self.policy.response_hours));
        sqlx::query("UPDATE invitations SET respond_by = $1, reminded = 0 WHERE review_id = $2 AND state = $3")
            .bind(respond_by)
            .bind(id.clone())
            .bind(pb::InvitationState::Pending.as_stored())
            .execute(&mut *tx)
            .await?;
        let detail = format!("back to {}", back_to.as_stored());
        Self::event(&mut tx, id, &caller.subject, "Resumed", &detail).await?;
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
        self.review(id).await
    }

    pub(crate) async fn amend_panel(
        &self,
        caller: &Caller,
        amendment: PanelAmendment,
    ) -> ServiceResult<ReviewRow> {
        let id = &amendment.id;
        let r = self.review(id).await?;
        if !ReviewEvent::AmendPanel.allows(r.state) {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                r.name(),
                format!(
                    "{} is {}; only a stalled review's panel is amended",
                    r.name(),
                    r.state.as_stored()
                ),
            ));
        }
        let deadline = date_from_stored(&r.deadline).map_err(internal)?;
        self.check_with_registry(
            &r.project_name(),
            r.stage,
            &amendment.panel,
            &r.excluded().map_err(internal)?,
            deadline,
            "panel",
        )
        .await?;
        let panel = crate::model::to_json(&PanelRec::from_requirements(&amendment.panel));
        let mut tx = self.begin().await?;
        if !move_review(&mut tx, id, ReviewEvent::AmendPanel, Some(panel)).await? {
            return Err(changed_meanwhile(&r));
        }
        self.withdraw_panel(
            &mut tx,
            &r,
            "the review's panel was amended",
            epb::DrawCancelReason::PanelAmended,
        )
        .await?;
        Self::event(
            &mut tx,
            id,
            &caller.subject,
            "PanelAmended",
            &amendment.reason,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(review = %id, "review panel amended; drawing again");
        self.review(id).await
    }

    /// Office takes an expert off the panel; the next alternate is invited as for a decline.
    pub(crate) async fn replace_member(
        &self,
        caller: &Caller,
        removal: MemberRemoval,
    ) -> ServiceResult<InvitationRow> {
        let (id, expert, name) = (&removal.id, &removal.expert, &removal.name);
        let r = self.review(id).await?;
        let invitation = self.invitation(id, expert, name).await?;
        let mut tx = self.begin().await?;
        if !lock_review_in(&mut tx, id, &PANEL_STATES).await? {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                r.name(),
                format!(
                    "{} is {}; its panel is not being formed",
                    r.name(),
                    r.state.as_stored()
                ),
            ));
        }
        let withdrawn =
            move_invitations(&mut tx, id, Some(expert), InvitationEvent::Withdraw, None).await?;
        if withdrawn == 0 {
            return Err(ServiceError::precondition(
                "NOT_ON_PANEL",
                name.clone(),
                format!(
                    "{name} is {}; only a pending or confirmed member is replaced",
                    invitation.state.as_stored()
                ),
            ));
        }
        sqlx::query("DELETE FROM bookings WHERE review_id = $1 AND expert_id = $2")
            .bind(id.clone())
            .bind(expert.clone())
            .execute(&mut *tx)
            .await?;
        let detail = format!(
            "{expert} ({}): {}",
            removal.code.as_str_name(),
            removal.explanation
        );
        Self::event(&mut tx, id, &caller.subject, "MemberReplaced", &detail).await?;
        notify::record(
            &mut tx,
            &format!("experts/{expert}"),
            Channel::Sms,
            &format!(
                "Your invitation to the {} of project {} is withdrawn by the office. No action is needed.",
                r.stage_words(),
                r.project_id
            ),
            id,
        )
        .await?;
        Self::queue_replacement(&mut tx, &invitation, removal.code).await?;
        tx.commit().await?;
        self.invitation(id, expert, name).await
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
        let open: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT expert_id FROM invitations WHERE review_id = $1 AND state IN ({}) ORDER BY seq",
            InvitationEvent::Withdraw.sources_sql()
        )))
        .bind(r.id.clone())
        .fetch_all(&mut **tx)
        .await?;
        move_invitations(tx, &r.id, None, InvitationEvent::Withdraw, None).await?;
        for expert in &open {
            notify::record(
                tx,
                &format!("experts/{expert}"),
                Channel::Sms,
                &format!(
                    "Your invitation to the {} of project {} is withdrawn: {why}. No action is needed.",
                    r.stage_words(),
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
        if let Some(m) = meeting_after(r.meeting().map_err(internal)?, MeetingEvent::Cancel, why)
            && !store_meeting(tx, &r.id, &m, r.meeting.as_deref()).await?
        {
            return Err(changed_meanwhile(r));
        }
        abandon_draws(tx, r, why, code).await
    }
}

/// Inside `tx`: every draw of the review abandoned, and those still current cancelled at the
/// registry.
async fn abandon_draws(
    tx: &mut Tx,
    r: &ReviewRow,
    why: &str,
    code: epb::DrawCancelReason,
) -> ServiceResult<()> {
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
