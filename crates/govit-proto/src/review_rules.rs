//! The rules of the shared review concepts that every service must apply alike. They live
//! beside the types so that no service keeps a copy of its own.

use crate::common::v1::{ReviewDecision, ReviewStage};

impl ReviewStage {
    /// The decisions a review of this stage may reach.
    pub fn decisions(self) -> &'static [ReviewDecision] {
        use ReviewDecision::*;
        match self {
            ReviewStage::PreliminaryReview => &[Approved, RevisionRequired, Rejected],
            ReviewStage::ImplementationPlanReview => &[Approved, RevisionRequired],
            ReviewStage::Acceptance | ReviewStage::PostEvaluation => &[Passed, Failed],
            ReviewStage::Unspecified => &[],
        }
    }

    /// Whether `decision` is one this stage may reach.
    pub fn admits(self, decision: ReviewDecision) -> bool {
        self.decisions().contains(&decision)
    }

    /// The stored and draw-record name: `PRELIMINARY_REVIEW` for
    /// `REVIEW_STAGE_PRELIMINARY_REVIEW`.
    pub fn short_name(self) -> &'static str {
        self.as_str_name().trim_start_matches("REVIEW_STAGE_")
    }

    /// The stage of a stored short name; None for anything else (UNSPECIFIED included).
    pub fn from_short_name(name: &str) -> Option<Self> {
        Self::from_str_name(&format!("REVIEW_STAGE_{name}")).filter(|s| *s != Self::Unspecified)
    }
}

impl ReviewDecision {
    /// `APPROVED` for `REVIEW_DECISION_APPROVED`.
    pub fn short_name(self) -> &'static str {
        self.as_str_name().trim_start_matches("REVIEW_DECISION_")
    }

    pub fn from_short_name(name: &str) -> Option<Self> {
        Self::from_str_name(&format!("REVIEW_DECISION_{name}")).filter(|d| *d != Self::Unspecified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_but_unspecified_has_decisions_and_names_round_trip() {
        for stage in [
            ReviewStage::PreliminaryReview,
            ReviewStage::ImplementationPlanReview,
            ReviewStage::Acceptance,
            ReviewStage::PostEvaluation,
        ] {
            assert!(!stage.decisions().is_empty());
            assert_eq!(
                ReviewStage::from_short_name(stage.short_name()),
                Some(stage)
            );
        }
        assert!(ReviewStage::Unspecified.decisions().is_empty());
        assert_eq!(ReviewStage::from_short_name("UNSPECIFIED"), None);
        assert!(!ReviewStage::Acceptance.admits(ReviewDecision::Approved));
        assert!(ReviewStage::PreliminaryReview.admits(ReviewDecision::Rejected));
        assert!(!ReviewStage::ImplementationPlanReview.admits(ReviewDecision::Rejected));
        assert_eq!(
            ReviewDecision::from_short_name("PASSED"),
            Some(ReviewDecision::Passed)
        );
        assert_eq!(ReviewDecision::from_short_name("NOPE"), None);
    }
}
