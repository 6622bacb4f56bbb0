//! The working-day calendar: Monday to Friday, except the days a year's State Council notice
//! makes holidays (放假) or make-up workdays (调休上班). A year the calendar does not cover is
//! refused, never guessed. `years` keeps the years office reads and imports.

use std::collections::{BTreeMap, BTreeSet};

use chinese_holiday::DayKind as Source;
use chrono::{Datelike, NaiveDate, Weekday};
use govit_platform::{
    Db, ServiceError, ServiceResult,
    time::{now, to_stored},
};
use govit_proto::{StoredEnum, scheduling::v1 as pb};
use sqlx::Row;

mod queries;
mod years;

pub use queries::{Day, Span, WorkingDaysAfter};
pub use years::YearImport;

/// The years seeded from the `chinese_holiday` crate at first start; later years are imported
/// by office (`ImportCalendarYear`, `govit calendar import`) as each notice comes out.
pub const SEED_YEARS: std::ops::RangeInclusive<i32> = 2024..=2026;
pub const SEED_SOURCE: &str = "chinese_holiday 2026.0.1, from the State Council notices it cites";

/// What a day is: stored, and sent, as the proto's `DayKind`.
pub type Kind = pb::DayKind;

/// Whether a day of this kind is worked.
pub fn is_working(kind: Kind) -> bool {
    kind != Kind::Holiday
}

pub fn is_weekend(d: NaiveDate) -> bool {
    matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

fn source_name(kind: Source) -> &'static str {
    use Source::*;
    match kind {
        NewYearsDayHoliday | NewYearsDayWorkday => "元旦",
        SpringFestivalHoliday | SpringFestivalWorkday => "春节",
        ChingMingFestivalHoliday | ChingMingFestivalWorkday => "清明节",
        InternationalWorkersDayHoliday | InternationalWorkersDayWorkday => "劳动节",
        DragonBoatFestivalHoliday | DragonBoatFestivalWorkday => "端午节",
        MidAutumnFestivalHoliday | MidAutumnFestivalWorkday => "中秋节",
        NationalDayHoliday | NationalDayWorkday => "国庆节",
        _ => "",
    }
}

/// The days of `year` that differ from Monday to Friday, from the `chinese_holiday` crate.
pub fn seed_days(year: i32) -> Vec<(NaiveDate, Kind, &'static str)> {
    let mut out = Vec::new();
    // The crate covers 2004-01-01 to 2026-12-25 and panics outside; the last days of 2026 are
    // ordinary (Saturday 26th, Sunday 27th, then weekdays).
    let last = NaiveDate::from_ymd_opt(2026, 12, 25).unwrap_or_default();
    let mut d = NaiveDate::from_ymd_opt(year, 1, 1).unwrap_or_default();
    while d.year() == year && d <= last {
        let kind = chinese_holiday::chinese_holiday(chinese_holiday::Ymd::new(
            year as u16,
            d.month() as u8,
            d.day() as u8,
        ));
        if is_weekend(d) && kind.is_workday() {
            out.push((d, Kind::MakeupWorkday, source_name(kind)));
        } else if kind.is_holiday() && kind != Source::NormalHoliday {
            // A festival's weekend days too: they are off either way, but a calendar lists
            // them under the festival's name, as the State Council notice does.
            out.push((d, Kind::Holiday, source_name(kind)));
        }
        d = d.succ_opt().unwrap_or(d);
    }
    out
}

/// Seeds the years the crate covers, once; a year office already imported is left alone.
pub async fn seed(db: &Db) -> anyhow::Result<()> {
    for year in SEED_YEARS {
        let mut tx = db.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO calendar_years (year, status, version, source, update_time) VALUES ($1, $4, 1, $2, $3) \
             ON CONFLICT (year) DO NOTHING",
        )
        .bind(i64::from(year))
        .bind(SEED_SOURCE)
        .bind(to_stored(now()))
        .bind(pb::CalendarStatus::Official.as_stored())
        .execute(&mut *tx)
        .await?;
        // A year still as seeded (office never imported it) also gets the days a newer seed
        // adds — the festivals' weekend days, which change no working day and so no version.
        let still_seeded = inserted.rows_affected() == 1
            || sqlx::query(
                "SELECT 1 FROM calendar_years WHERE year = $1 AND source = $2 AND version = 1",
            )
            .bind(i64::from(year))
            .bind(SEED_SOURCE)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if still_seeded {
            for (day, kind, name) in seed_days(year) {
                sqlx::query(
                    "INSERT INTO calendar_days (day, year, kind, name) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (day) DO NOTHING",
                )
                .bind(day.to_string())
                .bind(i64::from(year))
                .bind(kind.as_stored())
                .bind(name)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
    }
    Ok(())
}

/// A year's days that differ from Monday to Friday, with their names.
pub type SpecialDays = BTreeMap<NaiveDate, (Kind, String)>;

/// Some years of the calendar, loaded: what deadline arithmetic reads.
#[derive(Debug, Default, Clone)]
pub struct View {
    /// year → (version, special days)
    years: BTreeMap<i32, (i64, SpecialDays)>,
}

impl View {
    pub async fn load(db: &Db, years: impl IntoIterator<Item = i32>) -> ServiceResult<View> {
        let mut view = View::default();
        for year in years.into_iter().collect::<BTreeSet<_>>() {
            view.load_year(db, year).await?;
        }
        Ok(view)
    }

    async fn load_year(&mut self, db: &Db, year: i32) -> ServiceResult<()> {
        if self.years.contains_key(&year) {
            return Ok(());
        }
        let Some(row) = sqlx::query("SELECT version FROM calendar_years WHERE year = $1")
            .bind(i64::from(year))
            .fetch_optional(&db.pool)
            .await?
        else {
            return Err(ServiceError::precondition(
                "CALENDAR_YEAR_MISSING",
                format!("calendars/{year}"),
                format!(
                    "the working-day calendar has no data for {year}; office must import the year's holiday arrangement first"
                ),
            ));
        };
        let version: i64 = row.try_get(0)?;
        let rows = sqlx::query("SELECT day, kind, name FROM calendar_days WHERE year = $1")
            .bind(i64::from(year))
            .fetch_all(&db.pool)
            .await?;
        let mut days = BTreeMap::new();
        for r in rows {
            let day: String = r.try_get(0)?;
            let kind: String = r.try_get(1)?;
            let day =
                govit_platform::time::date_from_stored(&day).map_err(ServiceError::Internal)?;
            let kind = Kind::from_stored(&kind).map_err(|e| ServiceError::Internal(e.into()))?;
            days.insert(day, (kind, r.try_get::<String, _>(2)?));
        }
        self.years.insert(year, (version, days));
        Ok(())
    }

    /// Replaces a year with figures not yet stored (an import in progress).
    pub fn with_year(
        mut self,
        year: i32,
        version: i64,
        days: BTreeMap<NaiveDate, (Kind, String)>,
    ) -> View {
        self.years.insert(year, (version, days));
        self
    }

    /// The kind of a day, or an error naming the uncovered year.
    pub async fn kind(&mut self, db: &Db, d: NaiveDate) -> ServiceResult<(Kind, String)> {
        self.load_year(db, d.year()).await?;
        let (_, days) = &self.years[&d.year()];
        Ok(days.get(&d).cloned().unwrap_or(if is_weekend(d) {
            (Kind::Holiday, String::new())
        } else {
            (Kind::Workday, String::new())
        }))
    }

    /// `2026v1`, or `2026v1+2027v2` when a computation crossed a year.
    pub fn version_of(&self, years: &BTreeSet<i32>) -> String {
        years
            .iter()
            .filter_map(|y| self.years.get(y).map(|(v, _)| format!("{y}v{v}")))
            .collect::<Vec<_>>()
            .join("+")
    }

    pub async fn add_working_days(
        &mut self,
        db: &Db,
        start: NaiveDate,
        n: u32,
    ) -> ServiceResult<(NaiveDate, String)> {
        let mut d = start;
        let mut left = n;
        let mut years = BTreeSet::from([start.year()]);
        self.load_year(db, start.year()).await?;
        while left > 0 {
            d = d
                .succ_opt()
                .ok_or_else(|| ServiceError::field("date", "is out of range"))?;
            years.insert(d.year());
            if is_working(self.kind(db, d).await?.0) {
                left -= 1;
            }
        }
        Ok((d, self.version_of(&years)))
    }

    /// Working days after `start` up to and including `end`.
    pub async fn working_days_between(
        &mut self,
        db: &Db,
        start: NaiveDate,
        end: NaiveDate,
    ) -> ServiceResult<(i32, String)> {
        let mut count = 0;
        let mut d = start;
        let mut years = BTreeSet::from([start.year()]);
        self.load_year(db, start.year()).await?;
        while d < end {
            d = d.succ_opt().unwrap_or(end);
            years.insert(d.year());
            if is_working(self.kind(db, d).await?.0) {
                count += 1;
            }
        }
        Ok((count, self.version_of(&years)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    /// The 2026 arrangement as the State Council published it (国办发明电〔2025〕7号,
    /// gov.cn/zhengce/content/202511/content_7047090.htm), checked against the seed data.
    #[test]
    fn the_2026_seed_matches_the_state_council_notice() {
        let days: BTreeMap<NaiveDate, Kind> = seed_days(2026)
            .into_iter()
            .map(|(d, k, _)| (d, k))
            .collect();
        let makeup = [
            "2026-01-04",
            "2026-02-14",
            "2026-02-28",
            "2026-05-09",
            "2026-09-20",
            "2026-10-10",
        ];
        for day in makeup {
            assert_eq!(days.get(&d(day)), Some(&Kind::MakeupWorkday), "{day}");
        }
        // The festivals' weekend days are listed too, named; ordinary weekends are not.
        for (day, name) in [
            ("2026-01-03", "元旦"),
            ("2026-02-21", "春节"),
            ("2026-10-03", "国庆节"),
            ("2026-10-04", "国庆节"),
        ] {
            assert!(
                seed_days(2026).contains(&(d(day), Kind::Holiday, name)),
                "{day}"
            );
        }
        assert!(
            !seed_days(2026)
                .iter()
                .any(|(day, _, _)| *day == d("2026-03-07"))
        );
        let weekend_holidays = seed_days(2026)
            .iter()
            .filter(|(day, kind, _)| is_weekend(*day) && *kind == Kind::Holiday)
            .count();
        let holidays = [
            "2026-01-01",
            "2026-01-02",
            "2026-02-16",
            "2026-02-17",
            "2026-02-18",
            "2026-02-19",
            "2026-02-20",
            "2026-02-23",
            "2026-04-06",
            "2026-05-01",
            "2026-05-04",
            "2026-05-05",
            "2026-06-19",
            "2026-09-25",
            "2026-10-01",
            "2026-10-02",
            "2026-10-05",
            "2026-10-06",
            "2026-10-07",
        ];
        for day in holidays {
            assert_eq!(days.get(&d(day)), Some(&Kind::Holiday), "{day}");
        }
        assert_eq!(
            days.len(),
            makeup.len() + holidays.len() + weekend_holidays,
            "no other 2026 day differs from Monday to Friday"
        );
    }

    #[test]
    fn the_2025_seed_matches_the_state_council_notice() {
        let days: BTreeMap<NaiveDate, Kind> = seed_days(2025)
            .into_iter()
            .map(|(d, k, _)| (d, k))
            .collect();
        for day in [
            "2025-01-26",
            "2025-02-08",
            "2025-04-27",
            "2025-09-28",
            "2025-10-11",
        ] {
            assert_eq!(days.get(&d(day)), Some(&Kind::MakeupWorkday), "{day}");
        }
        for day in [
            "2025-01-01",
            "2025-01-28",
            "2025-02-04",
            "2025-04-04",
            "2025-05-05",
            "2025-06-02",
            "2025-10-08",
        ] {
            assert_eq!(days.get(&d(day)), Some(&Kind::Holiday), "{day}");
        }
    }
}
