//! Working days when the projects service runs alone: Monday to Friday. With the scheduling
//! service configured (`ProjectsService::with_calendar`), deadlines use its holiday calendar
//! over gRPC instead; a service never reads another's tables.

use chrono::{Datelike, NaiveDate, Weekday};

pub fn is_working_day(d: NaiveDate) -> bool {
    !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
}

/// The date `n` working days after `start` (`start` itself not counted).
pub fn add_working_days(start: NaiveDate, n: u32) -> NaiveDate {
    let mut d = start;
    let mut left = n;
    while left > 0 {
        d = d.succ_opt().unwrap_or(d);
        if is_working_day(d) {
            left -= 1;
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weekends_are_skipped() {
        let friday: NaiveDate = "2026-11-27".parse().unwrap();
        assert_eq!(add_working_days(friday, 1).to_string(), "2026-11-30");
        assert_eq!(add_working_days(friday, 5).to_string(), "2026-12-04");
        assert_eq!(add_working_days(friday, 0), friday);
    }
}
