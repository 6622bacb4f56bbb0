//! Instants are UTC; calendar dates are dates. Both cross the wire as protobuf well-known
//! types and are stored as text in one fixed format.

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Utc};
use govit_proto::google::r#type::Date;

/// The city keeps Beijing time: "today", a meeting's day, a payment's day are dates there.
pub fn beijing() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600)
        .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!()))
}

/// Today's date in Beijing.
pub fn beijing_today() -> NaiveDate {
    Utc::now().with_timezone(&beijing()).date_naive()
}

/// Now, truncated to microseconds: what the database keeps is what the client sees.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}

/// The stored form: `2026-11-28T05:00:00.000000Z`, fixed width so text order is time order.
pub fn to_stored(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn from_stored(s: &str) -> anyhow::Result<DateTime<Utc>> {
    Ok(DateTime::parse_from_rfc3339(s)
        .map_err(|e| anyhow::anyhow!("stored instant {s:?} is unreadable: {e}"))?
        .with_timezone(&Utc))
}

pub fn to_timestamp(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: t.timestamp_subsec_nanos() as i32,
    }
}

pub fn stored_to_timestamp(s: &str) -> anyhow::Result<prost_types::Timestamp> {
    from_stored(s).map(to_timestamp)
}

/// A full calendar date from the wire, or None when it is not a real date.
pub fn date_from_proto(d: &Date) -> Option<NaiveDate> {
    NaiveDate::from_ymd_opt(
        d.year,
        u32::try_from(d.month).ok()?,
        u32::try_from(d.day).ok()?,
    )
}

pub fn date_to_proto(d: NaiveDate) -> Date {
    Date {
        year: d.year(),
        month: d.month() as i32,
        day: d.day() as i32,
    }
}

pub fn date_to_stored(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

pub fn date_from_stored(s: &str) -> anyhow::Result<NaiveDate> {
    // A date as `date_to_stored` writes it (YYYY-MM-DD) is read by position: chrono's parsers
    // were 4% of the CPU of a list page. Anything else (a year beyond four digits) goes to
    // chrono with the format `date_to_stored` writes, which, unlike chrono's `FromStr`, takes
    // no stray whitespace.
    if let [y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2] = *s.as_bytes() {
        let number = |digits: &[u8]| {
            digits.iter().try_fold(0u32, |n, &d| {
                d.is_ascii_digit().then(|| n * 10 + u32::from(d - b'0'))
            })
        };
        if let (Some(year), Some(month), Some(day)) = (
            number(&[y1, y2, y3, y4]),
            number(&[m1, m2]),
            number(&[d1, d2]),
        ) {
            return NaiveDate::from_ymd_opt(year as i32, month, day)
                .ok_or_else(|| anyhow::anyhow!("stored date {s:?} is not a calendar date"));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|e| anyhow::anyhow!("stored date {s:?} is unreadable: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_dates_are_read_as_written_and_anything_else_is_refused() {
        let date = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        assert_eq!(date_from_stored("2026-03-01").unwrap(), date);
        assert_eq!(date_from_stored(&date.to_string()).unwrap(), date);
        let far = NaiveDate::from_ymd_opt(12026, 3, 1).unwrap();
        assert_eq!(date_from_stored(&date_to_stored(far)).unwrap(), far);
        assert_eq!(
            date_from_stored("0999-12-31").unwrap().to_string(),
            "0999-12-31"
        );
        for bad in [
            "2026-02-30",
            "2026/03/01",
            "01-03-2026",
            "2026-3",
            "2026-03-0x",
            "2026-03-01 ",
            "2026 -03-01",
            "2026-13-01",
            "",
        ] {
            assert!(date_from_stored(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn stored_instants_round_trip_and_sort() {
        let a = now();
        let b = a + chrono::Duration::microseconds(1);
        assert_eq!(from_stored(&to_stored(a)).unwrap(), a);
        assert!(to_stored(a) < to_stored(b));
    }

    #[test]
    fn impossible_dates_are_refused() {
        assert!(
            date_from_proto(&Date {
                year: 2026,
                month: 2,
                day: 30
            })
            .is_none()
        );
        assert!(
            date_from_proto(&Date {
                year: 2026,
                month: -1,
                day: 1
            })
            .is_none()
        );
    }
}
