//! The working-day questions other services and clients ask: what a day is, the day so many
//! working days after another, and the working days between two days.

use chrono::{Datelike, NaiveDate};
use govit_platform::{ServiceError, ServiceResult, time::date_from_proto, time::date_to_proto};
use govit_proto::scheduling::v1 as pb;

use super::{View, is_working};
use crate::SchedulingService;

fn date(field: &str, d: Option<&govit_proto::google::r#type::Date>) -> ServiceResult<NaiveDate> {
    d.and_then(date_from_proto)
        .ok_or_else(|| ServiceError::field(field, "is not a calendar date"))
}

/// One day asked about.
#[derive(Debug, Clone, Copy)]
pub struct Day(NaiveDate);

impl TryFrom<pb::IsWorkingDayRequest> for Day {
    type Error = ServiceError;

    fn try_from(req: pb::IsWorkingDayRequest) -> ServiceResult<Self> {
        Ok(Day(date("date", req.date.as_ref())?))
    }
}

/// So many working days after a day.
#[derive(Debug, Clone, Copy)]
pub struct WorkingDaysAfter {
    date: NaiveDate,
    days: u32,
}

impl TryFrom<pb::AddWorkingDaysRequest> for WorkingDaysAfter {
    type Error = ServiceError;

    fn try_from(req: pb::AddWorkingDaysRequest) -> ServiceResult<Self> {
        let date = date("date", req.date.as_ref())?;
        if !(0..=366).contains(&req.days) {
            return Err(ServiceError::field("days", "must be between 0 and 366"));
        }
        Ok(WorkingDaysAfter {
            date,
            days: req.days as u32,
        })
    }
}

/// The days after `start` up to and including `end`.
#[derive(Debug, Clone, Copy)]
pub struct Span {
    start: NaiveDate,
    end: NaiveDate,
}

impl TryFrom<pb::WorkingDaysBetweenRequest> for Span {
    type Error = ServiceError;

    fn try_from(req: pb::WorkingDaysBetweenRequest) -> ServiceResult<Self> {
        let start = date("start_date", req.start_date.as_ref())?;
        let end = date("end_date", req.end_date.as_ref())?;
        if end < start || (end - start).num_days() > 3660 {
            return Err(ServiceError::field(
                "end_date",
                "must be on or after start_date, within ten years",
            ));
        }
        Ok(Span { start, end })
    }
}

impl SchedulingService {
    pub(crate) async fn day_kind(&self, Day(d): Day) -> ServiceResult<pb::IsWorkingDayResponse> {
        let mut view = View::default();
        let (kind, name) = view.kind(&self.db, d).await?;
        Ok(pb::IsWorkingDayResponse {
            working_day: is_working(kind),
            kind: kind as i32,
            name,
            calendar_version: view.version_of(&[d.year()].into()),
        })
    }

    pub(crate) async fn working_day_after(
        &self,
        after: WorkingDaysAfter,
    ) -> ServiceResult<pb::AddWorkingDaysResponse> {
        let (end, version) = View::default()
            .add_working_days(&self.db, after.date, after.days)
            .await?;
        Ok(pb::AddWorkingDaysResponse {
            date: Some(date_to_proto(end)),
            calendar_version: version,
        })
    }

    pub(crate) async fn count_working_days(
        &self,
        span: Span,
    ) -> ServiceResult<pb::WorkingDaysBetweenResponse> {
        let (n, version) = View::default()
            .working_days_between(&self.db, span.start, span.end)
            .await?;
        Ok(pb::WorkingDaysBetweenResponse {
            working_days: n,
            calendar_version: version,
        })
    }
}
