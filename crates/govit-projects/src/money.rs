//! Money as the supervision domain adds, compares and checks it against budgets: whole fen,
//! never to be mistaken for basis points, counts or sequence numbers.

use std::{fmt, iter::Sum, ops::Add};

/// An amount in fen (1/100 yuan), stored and carried on the wire as an `i64`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, sqlx::Type)]
#[sqlx(transparent)]
pub struct Fen(i64);

impl Fen {
    pub const ZERO: Fen = Fen(0);

    pub const fn new(fen: i64) -> Fen {
        Fen(fen)
    }

    /// The amount as the wire and the variance arithmetic carry it.
    pub const fn get(self) -> i64 {
        self.0
    }

    pub fn checked_add(self, other: Fen) -> Option<Fen> {
        self.0.checked_add(other.0).map(Fen)
    }

    pub fn saturating_mul(self, factor: i64) -> Fen {
        Fen(self.0.saturating_mul(factor))
    }
}

impl From<Fen> for i64 {
    fn from(fen: Fen) -> i64 {
        fen.0
    }
}

/// Overflow panics in debug builds like `i64` addition; totals of real budgets are far from it.
impl Add for Fen {
    type Output = Fen;

    fn add(self, other: Fen) -> Fen {
        Fen(self.0 + other.0)
    }
}

impl Sum for Fen {
    fn sum<I: Iterator<Item = Fen>>(iter: I) -> Fen {
        iter.fold(Fen::ZERO, Add::add)
    }
}

/// The bare number: messages say "{amount} fen" themselves.
impl fmt::Display for Fen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fen_add_compare_and_print_as_their_number() {
        let budget = Fen::new(1_000);
        assert!(Fen::new(400) + Fen::new(600) <= budget);
        assert_eq!(Fen::new(i64::MAX).checked_add(Fen::new(1)), None);
        assert_eq!(
            [Fen::new(1), Fen::new(2)].into_iter().sum::<Fen>(),
            Fen::new(3)
        );
        assert_eq!(format!("{} fen", Fen::new(-5)), "-5 fen");
        assert_eq!(i64::from(budget), 1_000);
    }
}
