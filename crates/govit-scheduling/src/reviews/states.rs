//! The machines of a review, its invitations and its meeting, as data: per event the states it
//! may leave, the state it reaches and the columns it writes beside the state. Each table has
//! one transition function, which puts the sources in the `WHERE` clause so that a concurrent
//! change loses cleanly instead of being overwritten.

use govit_platform::{ServiceResult, StateMachine, Tx};
use govit_proto::{
    StoredEnum,
    scheduling::v1::{InvitationState as I, MeetingState as M, ReviewState as S},
};
use sqlx::AssertSqlSafe;

use crate::model::{MeetingRec, to_json};

/// States the worker takes further on its own.
pub const OPEN_STATES: [S; 4] = [
    S::Drawing,
    S::AwaitingWitness,
    S::Inviting,
    S::PanelConfirmed,
];

/// States in which experts answer, meet and conclude.
pub const PANEL_STATES: [S; 2] = [S::Inviting, S::PanelConfirmed];

/// States a review can no longer leave.
pub const ENDED_STATES: [S; 2] = [S::Concluded, S::Cancelled];

/// States a review is paused from, and resumes to.
pub const PAUSABLE_STATES: [S; 5] = [
    S::Drawing,
    S::AwaitingWitness,
    S::Inviting,
    S::PanelConfirmed,
    S::Stalled,
];

/// `'A', 'B'` for a `state IN (…)`: stored names are fixed identifiers of this program.
pub fn sql_states<T: StoredEnum>(states: &[T]) -> String {
    states
        .iter()
        .map(|s| format!("'{}'", s.as_stored()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewEvent {
    /// The draw is open and needs its witness's entropy before it runs.
    AwaitWitness,
    /// A draw was executed and its experts invited.
    Invite,
    /// An alternate came in for a member of a confirmed panel.
    InviteAlternate,
    /// Every category has its count of confirmed members.
    ConfirmPanel,
    /// The pool or the registry cannot supply the panel: office must act. Writes the reason.
    Stall,
    /// The chair recorded the conclusion. Writes the conclusion.
    Conclude,
    /// Office (or the project's withdrawal) ended the review. Writes the reason.
    Cancel,
    /// The project was suspended; the state left is kept to resume to.
    Pause,
    /// The project resumed: back to the state the review was paused from.
    Resume(S),
    /// Office gave a stalled review a new panel, drawn afresh. Writes the panel.
    AmendPanel,
}

impl StateMachine for ReviewEvent {
    type State = S;

    fn sources(self) -> &'static [S] {
        use ReviewEvent::*;
        match self {
            AwaitWitness => &[S::Drawing],
            Invite => &[S::Drawing, S::AwaitingWitness, S::PanelConfirmed],
            InviteAlternate => &[S::PanelConfirmed],
            ConfirmPanel => &[S::Inviting],
            Stall => &OPEN_STATES,
            Conclude => &PANEL_STATES,
            Cancel => &[
                S::Drawing,
                S::AwaitingWitness,
                S::Inviting,
                S::PanelConfirmed,
                S::Stalled,
                S::Paused,
            ],
            Pause => &PAUSABLE_STATES,
            Resume(_) => &[S::Paused],
            AmendPanel => &[S::Stalled],
        }
    }

    fn target(self) -> S {
        use ReviewEvent::*;
        match self {
            AwaitWitness => S::AwaitingWitness,
            Invite | InviteAlternate => S::Inviting,
            ConfirmPanel => S::PanelConfirmed,
            Stall => S::Stalled,
            Conclude => S::Concluded,
            Cancel => S::Cancelled,
            Pause => S::Paused,
            Resume(back_to) => back_to,
            AmendPanel => S::Drawing,
        }
    }
}

impl ReviewEvent {
    /// The columns the move writes beside the state; `$3` is the event's value.
    fn also_sets(self) -> &'static str {
        use ReviewEvent::*;
        match self {
            Stall => ", stall_reason = $3",
            Conclude => ", conclusion = $3",
            Cancel => ", cancel_reason = $3, paused_from = NULL",
            // The right-hand side reads the row before the update: the state being left.
            Pause => ", paused_from = state",
            Resume(_) => ", paused_from = NULL",
            AmendPanel => ", panel = $3, stall_reason = '', chair_expert_id = NULL",
            AwaitWitness | Invite | InviteAlternate | ConfirmPanel => "",
        }
    }
}

/// Inside `tx`: moves the review by `event` if it is in one of the event's sources, writing
/// `value` where the event writes one. Whether it moved.
pub async fn move_review(
    tx: &mut Tx,
    id: &str,
    event: ReviewEvent,
    value: Option<String>,
) -> ServiceResult<bool> {
    let also = event.also_sets();
    debug_assert_eq!(also.contains("$3"), value.is_some(), "{event:?}");
    // Into a state the worker takes further: it looks at the review on its next pass, and
    // then sets the review's next wake itself (`next_wake`).
    let wake = if OPEN_STATES.contains(&event.target()) {
        WAKE_AT_ONCE
    } else {
        "NULL"
    };
    let sql = format!(
        "UPDATE reviews SET state = $1{also}, wake_at = {wake} WHERE id = $2 AND state IN ({})",
        event.sources_sql()
    );
    let mut query = sqlx::query(AssertSqlSafe(sql))
        .bind(event.target().as_stored())
        .bind(id.to_owned());
    if let Some(value) = value {
        query = query.bind(value);
    }
    Ok(query.execute(&mut **tx).await?.rows_affected() > 0)
}

/// `wake_at` of a review the worker should look at on its next pass: '' sorts before every
/// stored instant.
const WAKE_AT_ONCE: &str = "''";

/// Inside `tx`: has the worker look at the review on its next pass (a draw was added to it).
pub async fn wake_review(tx: &mut Tx, id: &str) -> ServiceResult<()> {
    sqlx::query(AssertSqlSafe(format!(
        "UPDATE reviews SET wake_at = {WAKE_AT_ONCE} WHERE id = $1"
    )))
    .bind(id.to_owned())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inside `tx`, after the worker took the review as far as it could: when it should look
/// again, as the review's rows now say. Nothing pending (no draw left to execute, or the review
/// left the open states): never, until an event wakes it. A draw not yet executed (it waits for
/// its witness's entropy, or failed): at `retry`. The review's row is taken first, so that the
/// rows read are those committed by now (PostgreSQL reads a statement's subqueries as of its
/// start): a draw added by a change that raced the pass is never slept through.
pub async fn next_wake(tx: &mut Tx, id: &str, retry: &str) -> ServiceResult<()> {
    if !lock_review_in(tx, id, &OPEN_STATES).await? {
        // Ended or paused: nothing for the worker to do.
        sqlx::query("UPDATE reviews SET wake_at = NULL WHERE id = $1")
            .bind(id.to_owned())
            .execute(&mut **tx)
            .await?;
        return Ok(());
    }
    sqlx::query(
        "UPDATE reviews SET wake_at = CASE \
           WHEN NOT EXISTS (SELECT 1 FROM review_draws d WHERE d.review_id = reviews.id AND d.abandoned = 0) \
             OR EXISTS (SELECT 1 FROM review_draws d WHERE d.review_id = reviews.id AND d.abandoned = 0 AND d.invited = 0) \
             THEN $2 \
           ELSE NULL END \
         WHERE id = $1",
    )
    .bind(id.to_owned())
    .bind(retry.to_owned())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Inside `tx`: whether the review is still in one of `states`, taking its row so that no
/// cancellation or pause can slip in before the transaction commits.
pub async fn lock_review_in(tx: &mut Tx, id: &str, states: &[S]) -> ServiceResult<bool> {
    let done = sqlx::query(AssertSqlSafe(format!(
        "UPDATE reviews SET state = state WHERE id = $1 AND state IN ({})",
        sql_states(states)
    )))
    .bind(id.to_owned())
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() == 1)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationEvent {
    /// The expert accepts. Writes the answer's text.
    Confirm,
    /// The expert declines. Writes the reason.
    Decline,
    /// The response deadline passed unanswered.
    Lapse,
    /// Office took the member off the panel, or the review ended.
    Withdraw,
}

impl StateMachine for InvitationEvent {
    type State = I;

    fn sources(self) -> &'static [I] {
        match self {
            InvitationEvent::Confirm | InvitationEvent::Decline | InvitationEvent::Lapse => {
                &[I::Pending]
            }
            InvitationEvent::Withdraw => &[I::Pending, I::Confirmed],
        }
    }

    fn target(self) -> I {
        match self {
            InvitationEvent::Confirm => I::Confirmed,
            InvitationEvent::Decline => I::Declined,
            InvitationEvent::Lapse => I::Lapsed,
            InvitationEvent::Withdraw => I::Cancelled,
        }
    }
}

impl InvitationEvent {
    fn also_sets(self) -> &'static str {
        match self {
            InvitationEvent::Confirm | InvitationEvent::Decline => ", decline_reason = $3",
            InvitationEvent::Lapse | InvitationEvent::Withdraw => "",
        }
    }
}

/// Inside `tx`: moves the invitations of the review (of one expert, or all) that are in the
/// event's sources. How many moved.
pub async fn move_invitations(
    tx: &mut Tx,
    review_id: &str,
    expert_id: Option<&str>,
    event: InvitationEvent,
    value: Option<String>,
) -> ServiceResult<u64> {
    let also = event.also_sets();
    debug_assert_eq!(also.contains("$3"), value.is_some(), "{event:?}");
    let mut sql = format!(
        "UPDATE invitations SET state = $1{also} WHERE review_id = $2 AND state IN ({})",
        event.sources_sql()
    );
    if expert_id.is_some() {
        let n = if value.is_some() { 4 } else { 3 };
        sql.push_str(&format!(" AND expert_id = ${n}"));
    }
    let mut query = sqlx::query(AssertSqlSafe(sql))
        .bind(event.target().as_stored())
        .bind(review_id.to_owned());
    if let Some(value) = value {
        query = query.bind(value);
    }
    if let Some(expert) = expert_id {
        query = query.bind(expert.to_owned());
    }
    Ok(query.execute(&mut **tx).await?.rows_affected())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MeetingEvent {
    /// Set or moved by office; a cancelled meeting may be set again.
    Schedule,
    /// Called off by office, or with the review's panel.
    Cancel,
}

impl StateMachine for MeetingEvent {
    type State = M;

    fn sources(self) -> &'static [M] {
        match self {
            MeetingEvent::Schedule => &[M::Scheduled, M::Cancelled],
            MeetingEvent::Cancel => &[M::Scheduled],
        }
    }

    fn target(self) -> M {
        match self {
            MeetingEvent::Schedule => M::Scheduled,
            MeetingEvent::Cancel => M::Cancelled,
        }
    }
}

/// The meeting as the event leaves it, with `reason` as its change reason; None when the
/// meeting is not in one of the event's sources (a meeting not yet set may be scheduled).
pub fn meeting_after(
    meeting: Option<MeetingRec>,
    event: MeetingEvent,
    reason: &str,
) -> Option<MeetingRec> {
    let mut m = match meeting {
        Some(m) if event.allows(m.state) => m,
        None if event == MeetingEvent::Schedule => MeetingRec {
            start: String::new(),
            end: String::new(),
            venue: String::new(),
            online_link: String::new(),
            state: M::Scheduled,
            change_reason: String::new(),
        },
        _ => return None,
    };
    m.state = event.target();
    m.change_reason = reason.to_owned();
    Some(m)
}

/// Inside `tx`: writes the review's meeting over the stored text it was read as (`None`: no
/// meeting yet), so that of two changes racing from one reading only the first is written.
/// Whether it was written.
pub async fn store_meeting(
    tx: &mut Tx,
    review_id: &str,
    meeting: &MeetingRec,
    expected: Option<&str>,
) -> ServiceResult<bool> {
    // A meeting set, moved or called off is reminded of afresh.
    let start = if meeting.is_scheduled() {
        meeting.start.clone()
    } else {
        String::new()
    };
    let set =
        "UPDATE reviews SET meeting = $1, meeting_start = $2, meeting_reminded = 0 WHERE id = $3";
    let done = match expected {
        None => {
            sqlx::query(AssertSqlSafe(format!("{set} AND meeting IS NULL")))
                .bind(to_json(meeting))
                .bind(start)
                .bind(review_id.to_owned())
                .execute(&mut **tx)
                .await?
        }
        Some(old) => {
            sqlx::query(AssertSqlSafe(format!("{set} AND meeting = $4")))
                .bind(to_json(meeting))
                .bind(start)
                .bind(review_id.to_owned())
                .bind(old.to_owned())
                .execute(&mut **tx)
                .await?
        }
    };
    Ok(done.rows_affected() == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn review_events_render_their_sources_and_targets() {
        assert_eq!(
            ReviewEvent::Stall.sources_sql(),
            "'DRAWING', 'AWAITING_WITNESS', 'INVITING', 'PANEL_CONFIRMED'"
        );
        assert_eq!(ReviewEvent::Resume(S::Stalled).target(), S::Stalled);
        for ended in ENDED_STATES {
            assert!(!ReviewEvent::Cancel.allows(ended));
            assert!(!ReviewEvent::Pause.allows(ended));
        }
        assert!(ReviewEvent::Pause.allows(S::Stalled));
    }

    #[test]
    fn meetings_move_only_from_their_sources() {
        let set = meeting_after(None, MeetingEvent::Schedule, "").unwrap();
        assert_eq!(set.state, M::Scheduled);
        assert!(meeting_after(None, MeetingEvent::Cancel, "x").is_none());
        let cancelled = meeting_after(Some(set), MeetingEvent::Cancel, "ill").unwrap();
        assert_eq!(
            (cancelled.state, cancelled.change_reason.as_str()),
            (M::Cancelled, "ill")
        );
        assert!(meeting_after(Some(cancelled), MeetingEvent::Cancel, "again").is_none());
    }

    #[test]
    fn invitations_are_withdrawn_while_open_only() {
        assert!(InvitationEvent::Withdraw.allows(I::Confirmed));
        assert!(!InvitationEvent::Lapse.allows(I::Confirmed));
        assert_eq!(InvitationEvent::Decline.target(), I::Declined);
    }
}
