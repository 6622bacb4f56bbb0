//! Invitations: an expert invited (and booked for a meeting already set), the answer, the panel
//! confirmed once every category is full, and a replacement asked for in a leaver's place.

use std::collections::BTreeMap;

use govit_platform::{
    Caller, ServiceError, ServiceResult, StateMachine, Tx, Violations,
    time::{now, to_stored},
};
use govit_proto::{StoredEnum, experts::v1 as epb, scheduling::v1 as pb};
use sqlx::Row;

use super::{
    InvitationEvent, PANEL_STATES, ReviewEvent, internal, lock_review_in, move_invitations,
    move_review, next_seq, parse_invitation,
};
use crate::{
    SchedulingService,
    model::{InvitationRow, ReviewRow},
    notify::{self, Channel},
    outbox::Outgoing,
};

/// An expert's answer to an invitation.
#[derive(Debug, Clone)]
pub struct Answer {
    pub name: String,
    pub review_id: String,
    pub expert_id: String,
    pub accept: bool,
    pub decline_reason: String,
}

impl TryFrom<pb::RespondToInvitationRequest> for Answer {
    type Error = ServiceError;

    fn try_from(req: pb::RespondToInvitationRequest) -> ServiceResult<Self> {
        let (review_id, expert_id) = parse_invitation(&req.name)?;
        if !req.accept && req.decline_reason.trim().is_empty() {
            return Err(ServiceError::field(
                "decline_reason",
                "is required when declining",
            ));
        }
        let mut v = Violations::new();
        v.optional_text("decline_reason", &req.decline_reason, 500);
        v.finish()?;
        Ok(Answer {
            name: req.name,
            review_id,
            expert_id,
            accept: req.accept,
            decline_reason: req.decline_reason.trim().to_owned(),
        })
    }
}

impl Answer {
    /// Experts answer only their own invitations.
    pub fn check_caller(&self, caller: &Caller) -> ServiceResult<()> {
        caller.require(&[govit_platform::Role::Expert])?;
        if caller.expert.as_deref() != Some(self.expert_id.as_str()) {
            return Err(ServiceError::PermissionDenied(
                "experts answer only their own invitations".into(),
            ));
        }
        Ok(())
    }

    fn event(&self) -> InvitationEvent {
        if self.accept {
            InvitationEvent::Confirm
        } else {
            InvitationEvent::Decline
        }
    }
}

impl SchedulingService {
    pub(crate) async fn answer_invitation(
        &self,
        caller: &Caller,
        answer: Answer,
    ) -> ServiceResult<InvitationRow> {
        // A review that does not exist and one without this expert answer alike.
        let r = self
            .review(&answer.review_id)
            .await
            .map_err(|_| ServiceError::not_found("invitation", answer.name.clone()))?;
        let invitation = self
            .invitation(&answer.review_id, &answer.expert_id, &answer.name)
            .await?;
        check_answerable(&r, &invitation, &answer)?;
        let mut tx = self.begin().await?;
        if !lock_review_in(&mut tx, &r.id, &PANEL_STATES).await? {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                r.name(),
                format!("{} is no longer taking answers", r.name()),
            ));
        }
        let moved = move_invitations(
            &mut tx,
            &r.id,
            Some(&answer.expert_id),
            answer.event(),
            Some(answer.decline_reason.clone()),
        )
        .await?;
        if moved == 0 {
            return Err(ServiceError::Aborted(format!(
                "{} was answered concurrently",
                answer.name
            )));
        }
        let expert = &answer.expert_id;
        if answer.accept {
            Self::event(
                &mut tx,
                &r.id,
                &caller.subject,
                "InvitationConfirmed",
                expert,
            )
            .await?;
            self.confirm_panel_if_complete(&mut tx, &r).await?;
        } else {
            let detail = format!("{expert}: {}", answer.decline_reason);
            Self::event(
                &mut tx,
                &r.id,
                &caller.subject,
                "InvitationDeclined",
                &detail,
            )
            .await?;
            Self::queue_replacement(&mut tx, &invitation, epb::ReplacementReason::Declined).await?;
        }
        tx.commit().await?;
        self.invitation(&r.id, expert, &answer.name).await
    }

    /// Inside `tx`: invites `expert` (once) with a message, booking them for a meeting that is
    /// set already.
    pub(crate) async fn invite(
        &self,
        tx: &mut Tx,
        r: &ReviewRow,
        expert: &str,
        category: &str,
        draw_id: &str,
    ) -> ServiceResult<()> {
        let respond_by = to_stored(now() + chrono::Duration::hours(self.policy.response_hours));
        let seq = next_seq(tx, "invitations", &r.id).await?;
        // A redelivered replacement invites nobody twice; ON CONFLICT keeps the transaction
        // usable on PostgreSQL, where a failed insert would abort it.
        let inserted = sqlx::query(
            "INSERT INTO invitations (review_id, expert_id, category, draw_id, seq, state, respond_by, decline_reason, reminded) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, '', 0) ON CONFLICT (review_id, expert_id) DO NOTHING",
        )
        .bind(r.id.clone())
        .bind(expert.to_owned())
        .bind(category.to_owned())
        .bind(draw_id.to_owned())
        .bind(seq)
        .bind(pb::InvitationState::Pending.as_stored())
        .bind(respond_by.clone())
        .execute(&mut **tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(());
        }
        let deadline = &r.deadline;
        notify::record(
            tx,
            &format!("experts/{expert}"),
            Channel::Sms,
            &format!(
                "You are invited to the {} of project {} ({category}); the meeting is due by {deadline}. Please confirm or decline before {respond_by}.",
                r.stage_words(),
                r.project_id
            ),
            &r.id,
        )
        .await?;
        // Someone joining after the meeting was set is booked for it too.
        if let Some(m) = r.scheduled_meeting().map_err(internal)? {
            sqlx::query("INSERT INTO bookings (expert_id, review_id, start_time, end_time) VALUES ($1, $2, $3, $4) ON CONFLICT (expert_id, review_id) DO NOTHING")
                .bind(expert.to_owned())
                .bind(r.id.clone())
                .bind(m.start.clone())
                .bind(m.end.clone())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Marks a review PANEL_CONFIRMED once every category has its count confirmed.
    async fn confirm_panel_if_complete(&self, tx: &mut Tx, r: &ReviewRow) -> ServiceResult<()> {
        let rows = sqlx::query("SELECT category, COUNT(*) FROM invitations WHERE review_id = $1 AND state = $2 GROUP BY category")
            .bind(r.id.clone())
            .bind(pb::InvitationState::Confirmed.as_stored())
            .fetch_all(&mut **tx)
            .await?;
        let confirmed: BTreeMap<String, i64> = rows
            .iter()
            .map(|x| Ok((x.try_get(0)?, x.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        let complete = r
            .panel()
            .map_err(internal)?
            .iter()
            .all(|p| confirmed.get(&p.category).copied().unwrap_or(0) >= i64::from(p.count));
        if complete && move_review(tx, &r.id, ReviewEvent::ConfirmPanel, None).await? {
            Self::event(
                tx,
                &r.id,
                "scheduling",
                "PanelConfirmed",
                "every panel member confirmed",
            )
            .await?;
        }
        Ok(())
    }

    /// Asks the registry (through the outbox) for the next alternate in the expert's place.
    pub(crate) async fn queue_replacement(
        tx: &mut Tx,
        i: &InvitationRow,
        reason: epb::ReplacementReason,
    ) -> ServiceResult<()> {
        let request = epb::ReplaceExpertRequest {
            name: format!("draws/{}", i.draw_id),
            category: i.category.clone(),
            expert_id: i.expert_id.clone(),
            reason: reason as i32,
            // The registry's key for this one replacement, so a redelivery replaces once.
            request_id: uuid::Uuid::now_v7().simple().to_string(),
        };
        govit_platform::outbox::enqueue(tx, &Outgoing::ReplaceExpert(request)).await?;
        Ok(())
    }
}

/// An invitation is answered while pending, in time, and while its review forms its panel.
fn check_answerable(
    r: &ReviewRow,
    invitation: &InvitationRow,
    answer: &Answer,
) -> ServiceResult<()> {
    let pending = answer.event().allows(invitation.state);
    if pending && !PANEL_STATES.contains(&r.state) {
        return Err(ServiceError::precondition(
            "STATE_CONFLICT",
            r.name(),
            format!(
                "{} is {}; invitations wait until it goes on",
                r.name(),
                r.state.as_stored()
            ),
        ));
    }
    if !pending {
        return Err(ServiceError::precondition(
            "STATE_CONFLICT",
            answer.name.clone(),
            format!(
                "{} is already {}",
                answer.name,
                invitation.state.as_stored()
            ),
        ));
    }
    if invitation.respond_by < to_stored(now()) {
        return Err(ServiceError::precondition(
            "STATE_CONFLICT",
            answer.name.clone(),
            format!("the response deadline {} has passed", invitation.respond_by),
        ));
    }
    Ok(())
}
