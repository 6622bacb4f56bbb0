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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_stage_but_unspecified_has_decisions() {
        for stage in [
            ReviewStage::PreliminaryReview,
            ReviewStage::ImplementationPlanReview,
            ReviewStage::Acceptance,
            ReviewStage::PostEvaluation,
        ] {
            assert!(!stage.decisions().is_empty());
        }
        assert!(ReviewStage::Unspecified.decisions().is_empty());
        assert!(!ReviewStage::Acceptance.admits(ReviewDecision::Approved));
        assert!(ReviewStage::PreliminaryReview.admits(ReviewDecision::Rejected));
        assert!(!ReviewStage::ImplementationPlanReview.admits(ReviewDecision::Rejected));
    }
}
