//! Reviews: from the request through the drawn panel, invitations and replacements, the
//! meeting, opinions and the conclusion. Each change is one transaction with its review event,
//! its notifications and, where another service must hear of it, its outbox message.
//!
//! `states` holds the machines and their transition functions; the other modules follow a
//! review's course: `request`, `read`, `draw`, `invitations`, `replacements`, `reminders`,
//! `meetings`, `opinions`, `conclusions`.

mod conclusions;
mod draw;
mod invitations;
mod meetings;
mod opinions;
mod read;
mod reminders;
mod replacements;
mod request;
mod states;

use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, Tx,
    time::{now, to_stored},
    validate::is_code,
};
use govit_proto::{StoredEnum, scheduling::v1 as pb};
use sqlx::Row;

use crate::{
    SchedulingService,
    model::{InvitationRow, ReviewRow},
};

pub use conclusions::{Conclusion, RateExpert};
pub use invitations::Answer;
pub use meetings::{CancelMeeting, MeetingPlan, SetChair};
pub use opinions::NewOpinion;
pub use read::ReviewFilter;
pub use request::{NewReview, check_panel_shape};
pub use states::{
    ENDED_STATES, InvitationEvent, MeetingEvent, OPEN_STATES, PANEL_STATES, PAUSABLE_STATES,
    ReviewEvent, lock_review_in, meeting_after, move_invitations, move_review, next_wake,
    sql_states, store_meeting, wake_review,
};

pub fn internal(e: impl Into<anyhow::Error>) -> ServiceError {
    ServiceError::Internal(e.into())
}

pub use govit_platform::time::{beijing as cst, beijing_today as today};

pub const REVIEW_READERS: [Role; 6] = [
    Role::Office,
    Role::Service,
    Role::Supervisor,
    Role::Inspector,
    Role::Applicant,
    Role::Expert,
];

/// A short, fixed-length idempotency key for a call this service makes on a review's behalf.
fn derived_key(parts: &[&str]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(parts.join("/").as_bytes());
    format!("rq-{}", &hex::encode(digest)[..40])
}

impl SchedulingService {
    pub(crate) async fn review(&self, id: &str) -> ServiceResult<ReviewRow> {
        self.review_if_any(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("review", format!("reviews/{id}")))
    }

    pub(crate) async fn review_if_any(&self, id: &str) -> ServiceResult<Option<ReviewRow>> {
        Ok(
            sqlx::query_as::<_, ReviewRow>("SELECT * FROM reviews WHERE id = $1")
                .bind(id.to_owned())
                .fetch_optional(&self.db.pool)
                .await?,
        )
    }

    pub(crate) async fn invitations(&self, id: &str) -> ServiceResult<Vec<InvitationRow>> {
        Ok(sqlx::query_as::<_, InvitationRow>(
            "SELECT * FROM invitations WHERE review_id = $1 ORDER BY seq, expert_id",
        )
        .bind(id.to_owned())
        .fetch_all(&self.db.pool)
        .await?)
    }

    /// The review's invitation of `expert`, or NOT_FOUND naming `name`.
    pub(crate) async fn invitation(
        &self,
        review_id: &str,
        expert: &str,
        name: &str,
    ) -> ServiceResult<InvitationRow> {
        self.invitations(review_id)
            .await?
            .into_iter()
            .find(|i| i.expert_id == expert)
            .ok_or_else(|| ServiceError::not_found("invitation", name.to_owned()))
    }

    /// Appends a review event inside `tx` and bumps the review's counter.
    pub(crate) async fn event(
        tx: &mut Tx,
        id: &str,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> ServiceResult<()> {
        let seq: i64 = sqlx::query(
            "UPDATE reviews SET event_count = event_count + 1 WHERE id = $1 RETURNING event_count",
        )
        .bind(id.to_owned())
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
        sqlx::query("INSERT INTO review_events (review_id, seq, at, actor, action, detail) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(id.to_owned())
            .bind(seq)
            .bind(to_stored(now()))
            .bind(actor.to_owned())
            .bind(action.to_owned())
            .bind(detail.to_owned())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }
}

/// The next sequence number among a review's rows of `table` (its draws, its invitations).
pub(crate) async fn next_seq(
    tx: &mut Tx,
    table: &'static str,
    review_id: &str,
) -> ServiceResult<i64> {
    let count: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT COUNT(*) FROM {table} WHERE review_id = $1"
    )))
    .bind(review_id.to_owned())
    .fetch_one(&mut **tx)
    .await?;
    Ok(count + 1)
}

/// What an applicant or expert hears of a review they may not see, whether it exists or not:
/// the answer reveals nothing.
pub fn hidden(caller: &Caller) -> ServiceError {
    ServiceError::PermissionDenied(match caller.role {
        Role::Applicant => "applicants may only see reviews of their own projects".into(),
        _ => "experts may only see reviews whose panel they are on".into(),
    })
}

/// `reviews/{review}/invitations/{expert_id}`: the review's id and the expert's.
pub fn parse_invitation(name: &str) -> ServiceResult<(String, String)> {
    govit_platform::validate::child_ids(name, "reviews", "invitations")
        .map(|(r, e)| (r.to_owned(), e.to_owned()))
        .ok_or_else(|| {
            ServiceError::field("name", "must be reviews/{review}/invitations/{expert_id}")
        })
}

pub fn parse_review(name: &str) -> ServiceResult<String> {
    match name.strip_prefix("reviews/") {
        Some(id) if is_code(id) => Ok(id.to_owned()),
        _ => Err(ServiceError::field("name", "must be reviews/{id}")),
    }
}

/// The decisions a stage admits, for a field violation.
fn decision_names(stage: pb::ReviewStage) -> String {
    stage
        .decisions()
        .iter()
        .map(|d| d.as_stored())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What became of a replacement message.
pub(crate) enum Replacement {
    Done,
    /// The review is paused: the message waits for it to resume.
    Paused,
}
