//! Cost and schedule variance as the US federal IT Dashboard computes them, and the risk colour
//! of the configured bands. Pure arithmetic on integers: fen, days and basis points.
//!
//! For each milestone, the cost is the actual cost once it is complete, else the projected
//! cost; its end is the actual end once complete, else the projected end.
//!
//! - cost variance = Σ planned cost − Σ cost (positive: under plan); in basis points of Σ
//!   planned cost.
//! - schedule variance = Σ (planned end − end) in days (positive: ahead); in basis points of Σ
//!   planned durations (end − start + 1 days).
//!
//! Basis points are truncated toward zero. The colour comes from the absolute value: within
//! the green band green, within the yellow band yellow, beyond it red.

use chrono::NaiveDate;

use crate::money::Fen;

#[derive(Debug, Clone)]
pub struct MilestoneFigures {
    pub planned_start: NaiveDate,
    pub planned_end: NaiveDate,
    pub projected_end: NaiveDate,
    pub actual_end: Option<NaiveDate>,
    pub planned_cost_fen: i64,
    pub projected_cost_fen: i64,
    pub actual_cost_fen: Option<i64>,
}

/// Bands in basis points: |variance| ≤ green is green, ≤ yellow is yellow, else red.
#[derive(Debug, Clone, Copy)]
pub struct Bands {
    pub green_bp: i64,
    pub yellow_bp: i64,
}

impl Default for Bands {
    fn default() -> Self {
        Bands {
            green_bp: 1000,
            yellow_bp: 3000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Color {
    Green,
    Yellow,
    Red,
}

impl Bands {
    pub fn color(&self, bp: i64) -> Color {
        match bp.abs() {
            v if v <= self.green_bp => Color::Green,
            v if v <= self.yellow_bp => Color::Yellow,
            _ => Color::Red,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variance {
    pub planned_cost_fen: i64,
    pub projected_cost_fen: i64,
    pub cost_variance_fen: i64,
    pub cost_variance_bp: i64,
    pub planned_duration_days: i64,
    pub schedule_variance_days: i64,
    pub schedule_variance_bp: i64,
    pub cost_color: Color,
    pub schedule_color: Color,
    pub color: Color,
}

fn bp(part: i64, whole: i64) -> i64 {
    if whole == 0 {
        0
    } else {
        (i128::from(part) * 10_000 / i128::from(whole)) as i64
    }
}

pub fn variance(milestones: &[MilestoneFigures], bands: Bands) -> Variance {
    let mut planned_cost = 0i64;
    let mut cost = 0i64;
    let mut planned_days = 0i64;
    let mut schedule_days = 0i64;
    for m in milestones {
        planned_cost += m.planned_cost_fen;
        cost += match (m.actual_end, m.actual_cost_fen) {
            (Some(_), Some(actual)) => actual,
            _ => m.projected_cost_fen,
        };
        planned_days += (m.planned_end - m.planned_start).num_days() + 1;
        schedule_days += (m.planned_end - m.actual_end.unwrap_or(m.projected_end)).num_days();
    }
    let cost_variance_bp = bp(planned_cost - cost, planned_cost);
    let schedule_variance_bp = bp(schedule_days, planned_days);
    let cost_color = bands.color(cost_variance_bp);
    let schedule_color = bands.color(schedule_variance_bp);
    Variance {
        planned_cost_fen: planned_cost,
        projected_cost_fen: cost,
        cost_variance_fen: planned_cost - cost,
        cost_variance_bp,
        planned_duration_days: planned_days,
        schedule_variance_days: schedule_days,
        schedule_variance_bp,
        cost_color,
        schedule_color,
        color: cost_color.max(schedule_color),
    }
}

/// Whether `budget` is more than `threshold_bp` above `original`: exactly at the line is not.
pub fn beyond_threshold(original: Fen, budget: Fen, threshold_bp: i64) -> bool {
    let (original, budget) = (original.get(), budget.get());
    i128::from(budget - original) * 10_000 > i128::from(original) * i128::from(threshold_bp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn hand_computed_cost_and_schedule_variance() {
        // Milestone A: planned 1–10 March (10 days), 1,000,000 fen; done 12 March at 1,100,000.
        // Milestone B: planned 11–30 March (20 days), 2,000,000 fen; projected 4 April at
        // 2,300,000.
        let ms = [
            MilestoneFigures {
                planned_start: d("2027-03-01"),
                planned_end: d("2027-03-10"),
                projected_end: d("2027-03-10"),
                actual_end: Some(d("2027-03-12")),
                planned_cost_fen: 1_000_000,
                projected_cost_fen: 1_000_000,
                actual_cost_fen: Some(1_100_000),
            },
            MilestoneFigures {
                planned_start: d("2027-03-11"),
                planned_end: d("2027-03-30"),
                projected_end: d("2027-04-04"),
                actual_end: None,
                planned_cost_fen: 2_000_000,
                projected_cost_fen: 2_300_000,
                actual_cost_fen: None,
            },
        ];
        let v = variance(&ms, Bands::default());
        // Cost: 3,000,000 planned, 3,400,000 expected: −400,000 fen, −13.33% → −1333 bp.
        assert_eq!(
            (
                v.planned_cost_fen,
                v.projected_cost_fen,
                v.cost_variance_fen
            ),
            (3_000_000, 3_400_000, -400_000)
        );
        assert_eq!(v.cost_variance_bp, -1333);
        assert_eq!(v.cost_color, Color::Yellow);
        // Schedule: −2 and −5 days over 30 planned days: −7 days, −23.33% → −2333 bp.
        assert_eq!(
            (
                v.planned_duration_days,
                v.schedule_variance_days,
                v.schedule_variance_bp
            ),
            (30, -7, -2333)
        );
        assert_eq!(v.color, Color::Yellow);
    }

    #[test]
    fn bands_are_inclusive_at_their_bounds() {
        let b = Bands::default();
        assert_eq!(b.color(1000), Color::Green);
        assert_eq!(b.color(-1001), Color::Yellow);
        assert_eq!(b.color(3000), Color::Yellow);
        assert_eq!(b.color(3001), Color::Red);
    }

    #[test]
    fn the_ten_percent_line_is_exact_to_the_fen() {
        let beyond =
            |original, budget| beyond_threshold(Fen::new(original), Fen::new(budget), 1000);
        assert!(!beyond(100_000_000, 110_000_000));
        assert!(beyond(100_000_000, 110_000_001));
        assert!(!beyond(333, 366));
        assert!(beyond(333, 367));
    }

    #[test]
    fn no_milestones_means_no_variance() {
        let v = variance(&[], Bands::default());
        assert_eq!(
            (v.cost_variance_bp, v.schedule_variance_bp, v.color),
            (0, 0, Color::Green)
        );
    }
}
