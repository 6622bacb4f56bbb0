//! A year of the calendar as office reads and imports it: an import replaces the year's days,
//! bumps its version and recomputes the deadlines of open reviews the year touches, each with
//! a review event, all in one transaction.

use chrono::Datelike;
use govit_platform::{
    Caller, ServiceError, ServiceResult, Tx, Violations,
    time::{date_from_proto, date_from_stored, date_to_proto, now, stored_to_timestamp, to_stored},
};
use govit_proto::{StoredEnum, scheduling::v1 as pb};
use sqlx::{AssertSqlSafe, Row};

use super::{Kind, SpecialDays, View, is_weekend};
use crate::{SchedulingService, model::ReviewRow, reviews::internal};

/// A year's arrangement as office sends it, checked.
#[derive(Debug, Clone)]
pub struct YearImport {
    year: i32,
    status: pb::CalendarStatus,
    source: String,
    days: SpecialDays,
}

impl TryFrom<pb::ImportCalendarYearRequest> for YearImport {
    type Error = ServiceError;

    fn try_from(req: pb::ImportCalendarYearRequest) -> ServiceResult<Self> {
        let mut v = Violations::new();
        if !(2000..=2100).contains(&req.year) {
            v.add("year", "must be between 2000 and 2100");
        }
        let status = match pb::CalendarStatus::try_from(req.status) {
            Ok(s @ (pb::CalendarStatus::Official | pb::CalendarStatus::Provisional)) => s,
            _ => {
                v.add("status", "must be OFFICIAL or PROVISIONAL");
                pb::CalendarStatus::Unspecified
            }
        };
        v.text("source", &req.source, 500);
        let mut days = SpecialDays::new();
        for (i, d) in req.days.iter().enumerate() {
            check_day(&mut v, &mut days, req.year, i, d);
        }
        v.finish()?;
        // Only what differs from Monday to Friday is stored.
        days.retain(|_, (k, _)| *k != Kind::Workday);
        Ok(YearImport {
            year: req.year,
            status,
            source: req.source.trim().to_owned(),
            days,
        })
    }
}

/// Checks the `i`th day of the import and adds it to `days`.
fn check_day(v: &mut Violations, days: &mut SpecialDays, year: i32, i: usize, d: &pb::CalendarDay) {
    let field = format!("days[{i}]");
    let Some(day) = d.date.as_ref().and_then(date_from_proto) else {
        v.add(format!("{field}.date"), "is not a calendar date");
        return;
    };
    if day.year() != year {
        v.add(format!("{field}.date"), format!("{day} is not in {year}"));
    }
    let kind = match pb::DayKind::try_from(d.kind) {
        Ok(k @ (Kind::Workday | Kind::MakeupWorkday | Kind::Holiday)) => k,
        _ => {
            v.add(
                format!("{field}.kind"),
                format!("{} is not a known day kind", d.kind),
            );
            return;
        }
    };
    if kind == Kind::MakeupWorkday && !is_weekend(day) {
        v.add(
            format!("{field}.kind"),
            format!("{day} is a weekday; only a weekend day is a make-up workday"),
        );
    }
    if kind == Kind::Workday && is_weekend(day) {
        v.add(
            format!("{field}.kind"),
            format!("{day} is a weekend day: a worked weekend is MAKEUP_WORKDAY"),
        );
    }
    v.optional_text(&format!("{field}.name"), &d.name, 100);
    if days.insert(day, (kind, d.name.trim().to_owned())).is_some() {
        v.add(format!("{field}.date"), format!("{day} appears twice"));
    }
}

impl SchedulingService {
    pub(crate) async fn calendar_year(&self, year: i32) -> ServiceResult<pb::CalendarYear> {
        let row = sqlx::query(
            "SELECT status, version, source, update_time FROM calendar_years WHERE year = $1",
        )
        .bind(i64::from(year))
        .fetch_optional(&self.db.pool)
        .await?
        .ok_or_else(|| ServiceError::not_found("calendar year", format!("calendars/{year}")))?;
        let days =
            sqlx::query("SELECT day, kind, name FROM calendar_days WHERE year = $1 ORDER BY day")
                .bind(i64::from(year))
                .fetch_all(&self.db.pool)
                .await?;
        let status =
            pb::CalendarStatus::from_stored(&row.try_get::<String, _>(0)?).map_err(internal)?;
        Ok(pb::CalendarYear {
            year,
            status: status as i32,
            version: row.try_get(1)?,
            source: row.try_get(2)?,
            days: days
                .iter()
                .map(|d| -> ServiceResult<_> {
                    let day = date_from_stored(&d.try_get::<String, _>(0)?).map_err(internal)?;
                    let kind = Kind::from_stored(&d.try_get::<String, _>(1)?).map_err(internal)?;
                    Ok(pb::CalendarDay {
                        date: Some(date_to_proto(day)),
                        kind: kind as i32,
                        name: d.try_get(2)?,
                    })
                })
                .collect::<ServiceResult<_>>()?,
            update_time: Some(
                stored_to_timestamp(&row.try_get::<String, _>(3)?).map_err(internal)?,
            ),
        })
    }

    /// Replaces a year's days, bumps its version and recomputes the deadlines of open reviews
    /// that the year touches, each with a review event — all in one transaction.
    pub(crate) async fn import_calendar(
        &self,
        caller: &Caller,
        import: YearImport,
    ) -> ServiceResult<pb::CalendarYear> {
        let mut tx = self.begin().await?;
        let version = store_year(&mut tx, &import).await?;
        let view = View::default().with_year(import.year, version, import.days.clone());
        self.recompute_deadlines(&mut tx, caller, import.year, view)
            .await?;
        tx.commit().await?;
        tracing::info!(
            year = import.year,
            version,
            days = import.days.len(),
            "calendar year imported"
        );
        self.calendar_year(import.year).await
    }

    /// Inside `tx`: open deadlines that `year` touches, computed again with its new figures.
    async fn recompute_deadlines(
        &self,
        tx: &mut Tx,
        caller: &Caller,
        year: i32,
        mut view: View,
    ) -> ServiceResult<()> {
        let open = sqlx::query_as::<_, ReviewRow>(AssertSqlSafe(format!(
            "SELECT * FROM reviews WHERE state <> '{}'",
            pb::ReviewState::Concluded.as_stored()
        )))
        .fetch_all(&mut **tx)
        .await?;
        for r in open {
            let request = date_from_stored(&r.request_date).map_err(internal)?;
            let old = date_from_stored(&r.deadline).map_err(internal)?;
            if request.year() != year && old.year() != year {
                continue;
            }
            let n = self.deadline_working_days(r.stage);
            let Ok((new, cal)) = view.add_working_days(&self.db, request, n).await else {
                continue;
            };
            sqlx::query("UPDATE reviews SET deadline = $1, calendar_version = $2 WHERE id = $3")
                .bind(new.to_string())
                .bind(cal.clone())
                .bind(r.id.clone())
                .execute(&mut **tx)
                .await?;
            Self::event(
                tx,
                &r.id,
                &caller.subject,
                "DeadlineRecomputed",
                &format!("{old} → {new} (calendar {cal})"),
            )
            .await?;
        }
        Ok(())
    }
}

/// Inside `tx`: the year's row (its version bumped) and its days, replaced. The new version.
async fn store_year(tx: &mut Tx, import: &YearImport) -> ServiceResult<i64> {
    let version: i64 = sqlx::query(
        "INSERT INTO calendar_years (year, status, version, source, update_time) VALUES ($1, $2, 1, $3, $4) \
         ON CONFLICT (year) DO UPDATE SET status = excluded.status, version = calendar_years.version + 1, \
         source = excluded.source, update_time = excluded.update_time RETURNING version",
    )
    .bind(i64::from(import.year))
    .bind(import.status.as_stored())
    .bind(import.source.clone())
    .bind(to_stored(now()))
    .fetch_one(&mut **tx)
    .await?
    .try_get(0)?;
    sqlx::query("DELETE FROM calendar_days WHERE year = $1")
        .bind(i64::from(import.year))
        .execute(&mut **tx)
        .await?;
    for (day, (kind, name)) in &import.days {
        sqlx::query("INSERT INTO calendar_days (day, year, kind, name) VALUES ($1, $2, $3, $4)")
            .bind(day.to_string())
            .bind(i64::from(import.year))
            .bind(kind.as_stored())
            .bind(name.clone())
            .execute(&mut **tx)
            .await?;
    }
    Ok(version)
}
