//! Deadlines the worker watches: invitations lapse past their response deadline and are
//! replaced; experts are reminded before that deadline and before the meeting, once each.

use govit_platform::{
    ServiceResult,
    time::{now, to_stored},
};
use govit_proto::{StoredEnum, experts::v1 as epb, scheduling::v1 as pb};
use sqlx::AssertSqlSafe;

use super::{
    InvitationEvent, PANEL_STATES, internal, lock_review_in, move_invitations, sql_states,
};
use crate::{
    SchedulingService,
    model::{InvitationRow, ReviewRow},
    notify::{self, Channel},
};

/// Pending invitations of reviews forming their panel, answerable before `$1`; a paused
/// review's invitations wait (they get a fresh window when it resumes).
fn pending_before(extra: &str) -> String {
    format!(
        "SELECT i.* FROM invitations i JOIN reviews r ON r.id = i.review_id \
         WHERE i.state = '{}'{extra} AND i.respond_by < $1 AND r.state IN ({})",
        pb::InvitationState::Pending.as_stored(),
        sql_states(&PANEL_STATES)
    )
}

impl SchedulingService {
    /// Invitations past their response deadline lapse and are replaced.
    pub(crate) async fn lapse_overdue(&self) -> ServiceResult<usize> {
        let overdue = sqlx::query_as::<_, InvitationRow>(AssertSqlSafe(pending_before("")))
            .bind(to_stored(now()))
            .fetch_all(&self.db.pool)
            .await?;
        for i in &overdue {
            let mut tx = self.begin().await?;
            // Paused or ended since it was read: the invitation does not lapse.
            if !lock_review_in(&mut tx, &i.review_id, &PANEL_STATES).await? {
                continue;
            }
            let lapsed = move_invitations(
                &mut tx,
                &i.review_id,
                Some(&i.expert_id),
                InvitationEvent::Lapse,
                None,
            )
            .await?;
            if lapsed == 1 {
                Self::event(
                    &mut tx,
                    &i.review_id,
                    "scheduling",
                    "InvitationLapsed",
                    &i.expert_id,
                )
                .await?;
                Self::queue_replacement(&mut tx, i, epb::ReplacementReason::Unreachable).await?;
            }
            tx.commit().await?;
        }
        Ok(overdue.len())
    }

    /// Reminders before the response deadline (when half the time is gone) and the meeting
    /// (within a day), each sent once.
    pub(crate) async fn remind(&self) -> ServiceResult<()> {
        self.remind_to_answer().await?;
        self.remind_of_meetings().await
    }

    async fn remind_to_answer(&self) -> ServiceResult<()> {
        let soon = to_stored(now() + chrono::Duration::hours(self.policy.response_hours / 2));
        let due = sqlx::query_as::<_, InvitationRow>(AssertSqlSafe(pending_before(
            " AND i.reminded = 0",
        )))
        .bind(soon)
        .fetch_all(&self.db.pool)
        .await?;
        for i in due {
            let mut tx = self.begin().await?;
            let done = sqlx::query("UPDATE invitations SET reminded = 1 WHERE review_id = $1 AND expert_id = $2 AND reminded = 0")
                .bind(i.review_id.clone())
                .bind(i.expert_id.clone())
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 1 {
                notify::record(
                    &mut tx,
                    &format!("experts/{}", i.expert_id),
                    Channel::Voice,
                    &format!(
                        "Reminder: please answer the invitation to review {} before {}.",
                        i.review_id, i.respond_by
                    ),
                    &i.review_id,
                )
                .await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    async fn remind_of_meetings(&self) -> ServiceResult<()> {
        let within_a_day = to_stored(now() + chrono::Duration::hours(24));
        let reviews = sqlx::query_as::<_, ReviewRow>(AssertSqlSafe(format!(
            "SELECT * FROM reviews WHERE meeting_reminded = 0 AND meeting_start <> '' \
             AND meeting_start <= $1 AND state IN ({})",
            sql_states(&PANEL_STATES)
        )))
        .bind(within_a_day)
        .fetch_all(&self.db.pool)
        .await?;
        for r in reviews {
            let Some(m) = r.scheduled_meeting().map_err(internal)? else {
                continue;
            };
            let mut tx = self.begin().await?;
            // Only the meeting as read: one moved since is reminded of on its own terms.
            let marked = sqlx::query(
                "UPDATE reviews SET meeting_reminded = 1 WHERE id = $1 AND meeting = $2 AND meeting_reminded = 0",
            )
            .bind(r.id.clone())
            .bind(r.meeting.clone().unwrap_or_default())
            .execute(&mut *tx)
            .await?;
            if marked.rows_affected() == 1 {
                for i in self
                    .invitations(&r.id)
                    .await?
                    .iter()
                    .filter(|i| i.is_confirmed())
                {
                    notify::record(
                        &mut tx,
                        &format!("experts/{}", i.expert_id),
                        Channel::Sms,
                        &format!(
                            "Reminder: the review meeting of project {} starts at {} at {}.",
                            r.project_id,
                            m.start,
                            m.place()
                        ),
                        &r.id,
                    )
                    .await?;
                }
            }
            tx.commit().await?;
        }
        Ok(())
    }
}
