//! The panel's meeting: set or moved by office on a working day before the deadline, with
//! every member booked (bookings serialised through `expert_locks`, so no expert is in two
//! meetings at once), called off, and the chair appointed.

use chrono::{DateTime, Utc};
use govit_platform::{
    Caller, ServiceError, ServiceResult, Tx, Violations,
    time::{date_from_stored, now, to_stored},
    validate::is_code,
};
use govit_proto::{StoredEnum, experts::v1 as epb, scheduling::v1 as pb};
use sqlx::Row;

use super::{
    MeetingEvent, PANEL_STATES, cst, internal, lock_review_in, meeting_after, parse_review,
    store_meeting,
};
use crate::{
    SchedulingService,
    calendar::View,
    model::{MeetingRec, ReviewRow},
    notify::{self, Channel},
};

/// A meeting office asks for, before it is checked against the review and the calendar.
#[derive(Debug, Clone)]
pub struct MeetingPlan {
    pub id: String,
    start: Option<DateTime<Utc>>,
    end: Option<DateTime<Utc>>,
    venue: String,
    online_link: String,
    reason: String,
}

impl TryFrom<pb::ScheduleMeetingRequest> for MeetingPlan {
    type Error = ServiceError;

    fn try_from(req: pb::ScheduleMeetingRequest) -> ServiceResult<Self> {
        let instant = |t: &Option<prost_types::Timestamp>| {
            t.as_ref()
                .and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        };
        Ok(MeetingPlan {
            id: parse_review(&req.name)?,
            start: instant(&req.start_time),
            end: instant(&req.end_time),
            venue: req.venue,
            online_link: req.online_link,
            reason: req.reason,
        })
    }
}

/// A meeting checked: its times, and whether it moves one already set.
#[derive(Debug, Clone)]
pub struct CheckedMeeting {
    meeting: MeetingRec,
    /// The meeting's day (Beijing time), `YYYY-MM-DD`.
    day: String,
    moves_scheduled: bool,
    reason: String,
}

impl MeetingPlan {
    fn check_fields(&self, v: &mut Violations) {
        if self.start.is_none() {
            v.add("start_time", "is required");
        }
        if self.end.is_none() {
            v.add("end_time", "is required");
        }
        if self.venue.trim().is_empty() && self.online_link.trim().is_empty() {
            v.add("venue", "a venue or an online link is required");
        }
        for (field, value) in [
            ("venue", &self.venue),
            ("online_link", &self.online_link),
            ("reason", &self.reason),
        ] {
            v.optional_text(field, value, 500);
        }
    }
}

/// A call-off of a review's meeting.
#[derive(Debug, Clone)]
pub struct CancelMeeting {
    pub id: String,
    reason: String,
}

impl TryFrom<pb::CancelMeetingRequest> for CancelMeeting {
    type Error = ServiceError;

    fn try_from(req: pb::CancelMeetingRequest) -> ServiceResult<Self> {
        let id = parse_review(&req.name)?;
        let mut v = Violations::new();
        v.text("reason", &req.reason, 500);
        v.finish()?;
        Ok(CancelMeeting {
            id,
            reason: req.reason.trim().to_owned(),
        })
    }
}

/// Office's choice of chair.
#[derive(Debug, Clone)]
pub struct SetChair {
    pub id: String,
    expert_id: String,
}

impl TryFrom<pb::SetChairRequest> for SetChair {
    type Error = ServiceError;

    fn try_from(req: pb::SetChairRequest) -> ServiceResult<Self> {
        let id = parse_review(&req.name)?;
        if !is_code(&req.expert_id) {
            return Err(ServiceError::field("expert_id", "must be an expert id"));
        }
        Ok(SetChair {
            id,
            expert_id: req.expert_id,
        })
    }
}

impl SchedulingService {
    /// Checks the plan against the review (its deadline, a meeting already set) and the
    /// calendar; every problem of the request is reported at once.
    pub(crate) async fn check_meeting(
        &self,
        r: &ReviewRow,
        plan: MeetingPlan,
    ) -> ServiceResult<CheckedMeeting> {
        let mut v = Violations::new();
        plan.check_fields(&mut v);
        if let (Some(s), Some(e)) = (plan.start, plan.end) {
            self.check_meeting_day(&mut v, r, s, e).await?;
        }
        let current = r.meeting().map_err(internal)?;
        let moves_scheduled = current.as_ref().is_some_and(MeetingRec::is_scheduled);
        if moves_scheduled && plan.reason.trim().is_empty() {
            v.add("reason", "is required to move a scheduled meeting");
        }
        v.finish()?;
        let reason = plan.reason.trim().to_owned();
        let mut meeting = meeting_after(current, MeetingEvent::Schedule, &reason)
            .ok_or_else(|| internal(anyhow::anyhow!("a meeting is always schedulable")))?;
        let (start, end) = (plan.start.unwrap_or_default(), plan.end.unwrap_or_default());
        meeting.start = to_stored(start);
        meeting.end = to_stored(end);
        meeting.venue = plan.venue.trim().to_owned();
        meeting.online_link = plan.online_link.trim().to_owned();
        Ok(CheckedMeeting {
            meeting,
            day: start.with_timezone(&cst()).date_naive().to_string(),
            moves_scheduled,
            reason,
        })
    }

    /// A meeting is one future working day (Beijing time), no later than the deadline.
    async fn check_meeting_day(
        &self,
        v: &mut Violations,
        r: &ReviewRow,
        s: DateTime<Utc>,
        e: DateTime<Utc>,
    ) -> ServiceResult<()> {
        let (sd, ed) = (
            s.with_timezone(&cst()).date_naive(),
            e.with_timezone(&cst()).date_naive(),
        );
        if e <= s {
            v.add("end_time", "must be after start_time");
        } else if sd != ed {
            v.add(
                "end_time",
                "must be on the same day as start_time (Beijing time)",
            );
        }
        if s <= Utc::now() {
            v.add("start_time", "must be in the future");
        }
        let deadline = date_from_stored(&r.deadline).map_err(internal)?;
        if sd > deadline {
            v.add(
                "start_time",
                format!("{sd} is after the review's deadline, {deadline}"),
            );
        }
        let (kind, name) = View::default().kind(&self.db, sd).await?;
        if !crate::calendar::is_working(kind) {
            let name = if name.is_empty() {
                String::new()
            } else {
                format!(" ({name})")
            };
            v.add("start_time", format!("{sd} is not a working day{name}"));
        }
        Ok(())
    }

    /// Books every member for the checked meeting and tells them.
    pub(crate) async fn book_meeting(
        &self,
        caller: &Caller,
        r: &ReviewRow,
        checked: CheckedMeeting,
    ) -> ServiceResult<ReviewRow> {
        if !PANEL_STATES.contains(&r.state) {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                r.name(),
                format!(
                    "{} is {}; a meeting needs a drawn panel",
                    r.name(),
                    r.state.as_stored()
                ),
            ));
        }
        let mut experts: Vec<String> = self
            .invitations(&r.id)
            .await?
            .into_iter()
            .filter(|i| i.is_open())
            .map(|i| i.expert_id)
            .collect();
        experts.sort();
        let m = &checked.meeting;
        self.check_available(&experts, &checked.day).await?;
        let mut tx = self.begin().await?;
        // Registry calls took time: the review must still be going on as the bookings go in.
        if !lock_review_in(&mut tx, &r.id, &PANEL_STATES).await? {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                r.name(),
                format!("{} is no longer under way", r.name()),
            ));
        }
        reserve(&mut tx, &r.id, &experts, m).await?;
        if !store_meeting(&mut tx, &r.id, m, r.meeting.as_deref()).await? {
            return Err(meeting_changed(&r.name()));
        }
        let action = if checked.moves_scheduled {
            "MeetingRescheduled"
        } else {
            "MeetingScheduled"
        };
        let detail = format!("{} to {}; {}", m.start, m.end, checked.reason);
        Self::event(&mut tx, &r.id, &caller.subject, action, &detail).await?;
        announce(&mut tx, r, &experts, &checked).await?;
        tx.commit().await?;
        self.notify.notify_waiters();
        self.review(&r.id).await
    }

    /// Experts' own unavailable periods, as the registry keeps them.
    async fn check_available(&self, experts: &[String], day: &str) -> ServiceResult<()> {
        let mut registry = self.registry.clone();
        for expert in experts {
            let e = registry
                .get_expert(epb::GetExpertRequest {
                    name: format!("experts/{expert}"),
                })
                .await
                .map_err(|s| ServiceError::from_peer("expert registry", s))?
                .into_inner();
            let away = e.unavailable_periods.iter().any(|p| {
                let d = |x: &Option<govit_proto::google::r#type::Date>| {
                    x.as_ref()
                        .map(|x| format!("{:04}-{:02}-{:02}", x.year, x.month, x.day))
                        .unwrap_or_default()
                };
                d(&p.start_date).as_str() <= day && day <= d(&p.end_date).as_str()
            });
            if away {
                return Err(ServiceError::precondition(
                    "EXPERT_UNAVAILABLE",
                    format!("experts/{expert}"),
                    format!("{expert} has declared {day} unavailable"),
                ));
            }
        }
        Ok(())
    }

    pub(crate) async fn call_off_meeting(
        &self,
        caller: &Caller,
        cancel: CancelMeeting,
    ) -> ServiceResult<ReviewRow> {
        let id = &cancel.id;
        let r = self.review(id).await?;
        let Some(m) = meeting_after(
            r.meeting().map_err(internal)?,
            MeetingEvent::Cancel,
            &cancel.reason,
        ) else {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                r.name(),
                format!("{} has no scheduled meeting", r.name()),
            ));
        };
        if r.state == pb::ReviewState::Concluded {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                r.name(),
                format!("{} is concluded", r.name()),
            ));
        }
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM bookings WHERE review_id = $1")
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
        if !store_meeting(&mut tx, id, &m, r.meeting.as_deref()).await? {
            return Err(meeting_changed(&r.name()));
        }
        Self::event(
            &mut tx,
            id,
            &caller.subject,
            "MeetingCancelled",
            &cancel.reason,
        )
        .await?;
        for i in self.invitations(id).await?.iter().filter(|i| i.is_open()) {
            notify::record(
                &mut tx,
                &format!("experts/{}", i.expert_id),
                Channel::Email,
                &format!(
                    "The review meeting of project {} is cancelled: {}",
                    r.project_id, cancel.reason
                ),
                id,
            )
            .await?;
        }
        tx.commit().await?;
        self.review(id).await
    }

    pub(crate) async fn appoint_chair(
        &self,
        caller: &Caller,
        chair: SetChair,
    ) -> ServiceResult<ReviewRow> {
        let (id, expert) = (&chair.id, &chair.expert_id);
        let r = self.review(id).await?;
        if r.state == pb::ReviewState::Concluded {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                r.name(),
                format!("{} is concluded", r.name()),
            ));
        }
        let on_panel = self
            .invitations(id)
            .await?
            .iter()
            .any(|i| &i.expert_id == expert && i.is_open());
        if !on_panel {
            return Err(ServiceError::field(
                "expert_id",
                format!("{expert} is not on the panel"),
            ));
        }
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE reviews SET chair_expert_id = $1 WHERE id = $2")
            .bind(expert.clone())
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
        Self::event(&mut tx, id, &caller.subject, "ChairSet", expert).await?;
        tx.commit().await?;
        self.review(id).await
    }
}

/// Inside `tx`: locks each expert's calendar (in a fixed order), then looks for overlaps, so
/// two racing requests for one expert are serialised by the database; then books them all.
async fn reserve(
    tx: &mut Tx,
    review_id: &str,
    experts: &[String],
    m: &MeetingRec,
) -> ServiceResult<()> {
    for expert in experts {
        sqlx::query("INSERT INTO expert_locks (expert_id, touched) VALUES ($1, $2) ON CONFLICT (expert_id) DO UPDATE SET touched = excluded.touched")
            .bind(expert.clone())
            .bind(to_stored(now()))
            .execute(&mut **tx)
            .await?;
    }
    for expert in experts {
        let clash = sqlx::query("SELECT review_id FROM bookings WHERE expert_id = $1 AND review_id <> $2 AND start_time < $3 AND end_time > $4 LIMIT 1")
            .bind(expert.clone())
            .bind(review_id.to_owned())
            .bind(m.end.clone())
            .bind(m.start.clone())
            .fetch_optional(&mut **tx)
            .await?;
        if let Some(other) = clash {
            let other: String = other.try_get(0)?;
            return Err(ServiceError::precondition(
                "DOUBLE_BOOKED",
                format!("experts/{expert}"),
                format!(
                    "{expert} is already booked for the meeting of review {other} at that time"
                ),
            ));
        }
    }
    sqlx::query("DELETE FROM bookings WHERE review_id = $1")
        .bind(review_id.to_owned())
        .execute(&mut **tx)
        .await?;
    for expert in experts {
        sqlx::query("INSERT INTO bookings (expert_id, review_id, start_time, end_time) VALUES ($1, $2, $3, $4)")
            .bind(expert.clone())
            .bind(review_id.to_owned())
            .bind(m.start.clone())
            .bind(m.end.clone())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Inside `tx`: tells every member of the meeting set or moved.
async fn announce(
    tx: &mut Tx,
    r: &ReviewRow,
    experts: &[String],
    checked: &CheckedMeeting,
) -> ServiceResult<()> {
    let m = &checked.meeting;
    let (s, e, place) = (&m.start, &m.end, m.place());
    let text = if checked.moves_scheduled {
        format!(
            "The review meeting of project {} moved to {s} – {e} at {place}: {}",
            r.project_id, checked.reason
        )
    } else {
        format!(
            "The review meeting of project {} is set for {s} – {e} at {place}.",
            r.project_id
        )
    };
    for expert in experts {
        notify::record(
            tx,
            &format!("experts/{expert}"),
            Channel::Email,
            &text,
            &r.id,
        )
        .await?;
    }
    Ok(())
}

/// Another change to the meeting won since it was read.
fn meeting_changed(review: &str) -> ServiceError {
    ServiceError::Aborted(format!(
        "the meeting of {review} changed meanwhile; read it again"
    ))
}
