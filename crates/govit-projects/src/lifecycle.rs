//! The project lifecycle as data: which action may be taken by whom, from which states, where
//! it leads, and what it carries with it (the etag rule, the message to review scheduling, the
//! budget baseline). Handlers check guards that need data (documents, fields); the table here
//! is the single place that knows the state machine.

use govit_platform::{Role, ServiceError};
use govit_proto::{
    StoredEnum,
    projects::v1::{ProjectState as S, ReviewDecision, ReviewStage},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Submit,
    Return,
    AcceptForReview,
    ReviewOutcome(ReviewStage, ReviewDecision),
    /// Office decides in the panel's stead (approved by a second office user where required).
    OverrideOutcome(ReviewStage, ReviewDecision),
    /// Review scheduling reports that office cancelled the project's review.
    ReviewCancelled,
    FilePlan,
    RecordPlan,
    ReturnPlan,
    StartTendering,
    RecordTenderResult,
    RequestAcceptance,
    StartAcceptance,
    StartOperation,
    StartPostEvaluationReview,
    RecordPostEvaluation,
    /// Office's finding on duplicate construction; the state stays.
    RecordDuplicationFinding,
    Close,
    Withdraw,
    Suspend,
    Resume,
}

/// States a project can no longer leave.
pub const TERMINAL: [S; 3] = [S::Rejected, S::Closed, S::Withdrawn];

/// States in which an expert review requested by this service is under way.
pub const REVIEW_STATES: [S; 3] = [
    S::UnderPreliminaryReview,
    S::UnderAcceptance,
    S::UnderPostEvaluation,
];

/// The side effects on the project's review that a transition carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewEffect {
    /// Ask review scheduling for a review of this stage.
    Request(ReviewStage),
    Cancel,
    Pause,
    Resume,
}

/// States in which the applicant may still edit the project.
pub const EDITABLE: [S; 3] = [S::Draft, S::Returned, S::RevisionRequired];

impl Action {
    /// The RPC name, as recorded in the audit trail.
    pub fn name(self) -> &'static str {
        match self {
            Action::Submit => "SubmitProject",
            Action::Return => "ReturnProject",
            Action::AcceptForReview => "AcceptForReview",
            Action::ReviewOutcome(..) => "RecordReviewOutcome",
            Action::ReviewCancelled => "RecordReviewCancellation",
            Action::OverrideOutcome(..) => "OverrideReviewOutcome",
            Action::FilePlan => "FileImplementationPlan",
            Action::RecordPlan => "RecordImplementationPlan",
            Action::ReturnPlan => "ReturnImplementationPlan",
            Action::StartTendering => "StartTendering",
            Action::RecordTenderResult => "RecordTenderResult",
            Action::RequestAcceptance => "RequestAcceptance",
            Action::StartAcceptance => "StartAcceptance",
            Action::StartOperation => "StartOperation",
            Action::StartPostEvaluationReview => "StartPostEvaluationReview",
            Action::RecordDuplicationFinding => "RecordDuplicationFinding",
            Action::RecordPostEvaluation => "RecordPostEvaluation",
            Action::Close => "CloseProject",
            Action::Withdraw => "WithdrawProject",
            Action::Suspend => "SuspendProject",
            Action::Resume => "ResumeProject",
        }
    }

    /// Who may take the action. Applicants additionally must own the project.
    pub fn roles(self) -> &'static [Role] {
        use Role::*;
        match self {
            Action::Submit | Action::Withdraw | Action::FilePlan | Action::RequestAcceptance => {
                &[Applicant]
            }
            Action::StartTendering | Action::RecordTenderResult => &[Applicant, Office],
            Action::ReviewOutcome(..) | Action::ReviewCancelled => &[Service],
            Action::OverrideOutcome(..) => &[Office],
            Action::Suspend | Action::Resume => &[Office, Supervisor],
            Action::Return
            | Action::AcceptForReview
            | Action::RecordPlan
            | Action::ReturnPlan
            | Action::StartAcceptance
            | Action::StartOperation
            | Action::StartPostEvaluationReview
            | Action::RecordDuplicationFinding
            | Action::RecordPostEvaluation
            | Action::Close => &[Office],
        }
    }

    /// The states the action may start from.
    pub fn sources(self) -> &'static [S] {
        match self {
            Action::Submit => &EDITABLE,
            Action::Return | Action::AcceptForReview => &[S::Submitted],
            Action::ReviewOutcome(ReviewStage::PreliminaryReview, _) => {
                &[S::UnderPreliminaryReview]
            }
            Action::ReviewOutcome(ReviewStage::ImplementationPlanReview, _)
            | Action::RecordPlan
            | Action::ReturnPlan => &[S::ImplementationPlanFiled],
            Action::ReviewOutcome(ReviewStage::Acceptance, _) => &[S::UnderAcceptance],
            Action::ReviewOutcome(ReviewStage::PostEvaluation, _) => &[S::UnderPostEvaluation],
            Action::ReviewOutcome(..) => &[],
            Action::OverrideOutcome(stage, decision) => {
                Action::ReviewOutcome(stage, decision).sources()
            }
            Action::ReviewCancelled => &REVIEW_STATES,
            Action::FilePlan => &[S::Approved],
            Action::StartTendering => &[S::PlanRecorded],
            Action::RecordTenderResult => &[S::Tendering],
            Action::RequestAcceptance => &[S::UnderConstruction, S::AcceptanceFailed],
            Action::StartAcceptance => &[S::AcceptanceRequested],
            Action::StartOperation => &[S::Accepted],
            Action::StartPostEvaluationReview | Action::RecordPostEvaluation => &[S::InOperation],
            Action::RecordDuplicationFinding => &[S::Submitted, S::UnderPreliminaryReview],
            Action::Close => &[S::PostEvaluated],
            Action::Withdraw => &[
                S::Draft,
                S::Submitted,
                S::Returned,
                S::UnderPreliminaryReview,
                S::RevisionRequired,
            ],
            Action::Suspend => &[
                S::Draft,
                S::Submitted,
                S::Returned,
                S::UnderPreliminaryReview,
                S::Approved,
                S::RevisionRequired,
                S::ImplementationPlanFiled,
                S::PlanRecorded,
                S::Tendering,
                S::UnderConstruction,
                S::AcceptanceRequested,
                S::UnderAcceptance,
                S::Accepted,
                S::AcceptanceFailed,
                S::InOperation,
                S::UnderPostEvaluation,
                S::PostEvaluated,
            ],
            Action::Resume => &[S::Suspended],
        }
    }

    /// What the transition from `from` to `to` does to the project's review, as the review
    /// scheduling service must hear it.
    pub fn review_effect(self, from: S, to: S) -> Option<ReviewEffect> {
        match self {
            Action::AcceptForReview => Some(ReviewEffect::Request(ReviewStage::PreliminaryReview)),
            Action::StartAcceptance => Some(ReviewEffect::Request(ReviewStage::Acceptance)),
            Action::StartPostEvaluationReview => {
                Some(ReviewEffect::Request(ReviewStage::PostEvaluation))
            }
            Action::Withdraw | Action::Return | Action::Close | Action::OverrideOutcome(..)
                if REVIEW_STATES.contains(&from) =>
            {
                Some(ReviewEffect::Cancel)
            }
            Action::Suspend if REVIEW_STATES.contains(&from) => Some(ReviewEffect::Pause),
            Action::Resume if REVIEW_STATES.contains(&to) => Some(ReviewEffect::Resume),
            _ => None,
        }
    }

    /// Whether the caller must send the etag it read. Peers report outcomes and cancellations
    /// of a review they run, and an override takes effect when approved, not when read: none
    /// of them acts on a copy of the project, so an etag is checked only when sent.
    pub fn etag_required(self) -> bool {
        !matches!(
            self,
            Action::ReviewOutcome(..) | Action::ReviewCancelled | Action::OverrideOutcome(..)
        )
    }

    /// Whether the action fixes the approved investment (概算) and writes the project's first
    /// budget baseline: the preliminary review's approval.
    pub fn fixes_budget(self) -> bool {
        matches!(
            self,
            Action::ReviewOutcome(ReviewStage::PreliminaryReview, ReviewDecision::Approved)
                | Action::OverrideOutcome(ReviewStage::PreliminaryReview, ReviewDecision::Approved)
        )
    }

    /// Whether the project remembers the state it leaves, to return to it (`suspended_from`).
    pub fn remembers_source(self) -> bool {
        matches!(self, Action::Suspend)
    }

    /// Why the review is cancelled or paused, as review scheduling hears it. A fixed text:
    /// whoever acted gave their own words to this service's audit trail; the review need only
    /// know what happened, and cannot refuse it.
    pub fn review_reason(self, to: S) -> String {
        match self {
            Action::OverrideOutcome(..) => "office decided in the panel's stead".to_owned(),
            _ => format!("the project was {}", to.as_stored().to_lowercase()),
        }
    }

    /// The refusal when `from` is not one of the action's sources.
    pub fn refuse(self, project: &str, from: S) -> ServiceError {
        let allowed: Vec<_> = self.sources().iter().map(|s| s.as_stored()).collect();
        ServiceError::precondition(
            "STATE_CONFLICT",
            project,
            format!(
                "{project} is {}; {} needs it to be {}",
                from.as_stored(),
                self.name(),
                if allowed.is_empty() {
                    "in no state".into()
                } else {
                    allowed.join(" or ")
                }
            ),
        )
    }

    /// Whether the guard of the action reads the project's documents.
    pub fn needs_documents(self) -> bool {
        matches!(
            self,
            Action::Submit
                | Action::FilePlan
                | Action::RequestAcceptance
                | Action::RecordPostEvaluation
        )
    }

    /// Where the action leads from `from`; `suspended_from` is used by Resume. None when the
    /// combination is not a transition (a decision that does not fit the stage).
    pub fn target(self, from: S, suspended_from: Option<S>) -> Option<S> {
        use ReviewDecision as D;
        use ReviewStage as St;
        Some(match self {
            Action::Submit => S::Submitted,
            Action::Return => S::Returned,
            Action::AcceptForReview => S::UnderPreliminaryReview,
            Action::ReviewOutcome(St::PreliminaryReview, D::Approved) => S::Approved,
            Action::ReviewOutcome(St::PreliminaryReview, D::RevisionRequired) => {
                S::RevisionRequired
            }
            Action::ReviewOutcome(St::PreliminaryReview, D::Rejected) => S::Rejected,
            Action::ReviewOutcome(St::ImplementationPlanReview, D::Approved) => S::PlanRecorded,
            Action::ReviewOutcome(St::ImplementationPlanReview, D::RevisionRequired) => S::Approved,
            Action::ReviewOutcome(St::Acceptance, D::Passed) => S::Accepted,
            Action::ReviewOutcome(St::Acceptance, D::Failed) => S::AcceptanceFailed,
            // Either way the system stays in operation: the panel's decision is the evaluation's
            // to cite, not a state.
            Action::ReviewOutcome(St::PostEvaluation, D::Passed | D::Failed) => S::InOperation,
            Action::ReviewOutcome(..) => return None,
            Action::OverrideOutcome(stage, decision) => {
                return Action::ReviewOutcome(stage, decision).target(from, suspended_from);
            }
            Action::ReviewCancelled if from == S::UnderPreliminaryReview => S::Submitted,
            Action::ReviewCancelled if from == S::UnderAcceptance => S::AcceptanceRequested,
            Action::ReviewCancelled if from == S::UnderPostEvaluation => S::InOperation,
            Action::ReviewCancelled => return None,
            Action::FilePlan => S::ImplementationPlanFiled,
            Action::RecordPlan => S::PlanRecorded,
            Action::ReturnPlan => S::Approved,
            Action::StartTendering => S::Tendering,
            Action::RecordTenderResult => S::UnderConstruction,
            Action::RequestAcceptance => S::AcceptanceRequested,
            Action::StartAcceptance => S::UnderAcceptance,
            Action::StartOperation => S::InOperation,
            Action::StartPostEvaluationReview => S::UnderPostEvaluation,
            Action::RecordDuplicationFinding => from,
            Action::RecordPostEvaluation => S::PostEvaluated,
            Action::Close => S::Closed,
            Action::Withdraw => S::Withdrawn,
            Action::Suspend => S::Suspended,
            Action::Resume => return suspended_from.filter(|_| from == S::Suspended),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_ACTIONS: [Action; 20] = [
        Action::ReviewCancelled,
        Action::OverrideOutcome(ReviewStage::Acceptance, ReviewDecision::Failed),
        Action::Submit,
        Action::Return,
        Action::AcceptForReview,
        Action::ReviewOutcome(ReviewStage::PreliminaryReview, ReviewDecision::Approved),
        Action::FilePlan,
        Action::RecordPlan,
        Action::ReturnPlan,
        Action::StartTendering,
        Action::RecordTenderResult,
        Action::RequestAcceptance,
        Action::StartAcceptance,
        Action::StartOperation,
        Action::StartPostEvaluationReview,
        Action::RecordPostEvaluation,
        Action::RecordDuplicationFinding,
        Action::Close,
        Action::Withdraw,
        Action::Suspend,
    ];

    #[test]
    fn no_action_leaves_a_terminal_state() {
        for action in ALL_ACTIONS {
            for t in TERMINAL {
                assert!(!action.sources().contains(&t), "{action:?} from {t:?}");
            }
        }
    }

    #[test]
    fn a_cancelled_review_sends_the_project_back_to_be_sent_again() {
        assert_eq!(
            Action::ReviewCancelled.target(S::UnderPreliminaryReview, None),
            Some(S::Submitted)
        );
        assert_eq!(
            Action::ReviewCancelled.target(S::UnderAcceptance, None),
            Some(S::AcceptanceRequested)
        );
        assert_eq!(
            Action::ReviewCancelled.target(S::UnderPostEvaluation, None),
            Some(S::InOperation)
        );
        assert_eq!(
            Action::Withdraw.review_effect(S::UnderPreliminaryReview, S::Withdrawn),
            Some(ReviewEffect::Cancel)
        );
        assert_eq!(Action::Withdraw.review_effect(S::Draft, S::Withdrawn), None);
        assert_eq!(
            Action::Suspend.review_effect(S::UnderAcceptance, S::Suspended),
            Some(ReviewEffect::Pause)
        );
        assert_eq!(
            Action::Resume.review_effect(S::Suspended, S::UnderAcceptance),
            Some(ReviewEffect::Resume)
        );
        assert_eq!(
            Action::Resume.review_effect(S::Suspended, S::Tendering),
            None
        );
    }

    #[test]
    fn resume_returns_to_the_state_it_left() {
        assert_eq!(
            Action::Resume.target(S::Suspended, Some(S::Tendering)),
            Some(S::Tendering)
        );
        assert_eq!(Action::Resume.target(S::Suspended, None), None);
    }

    #[test]
    fn a_post_evaluation_panel_leaves_the_system_in_operation_either_way() {
        let start = Action::StartPostEvaluationReview;
        assert_eq!(
            start.target(S::InOperation, None),
            Some(S::UnderPostEvaluation)
        );
        assert_eq!(
            start.review_effect(S::InOperation, S::UnderPostEvaluation),
            Some(ReviewEffect::Request(ReviewStage::PostEvaluation))
        );
        for decision in [ReviewDecision::Passed, ReviewDecision::Failed] {
            let outcome = Action::ReviewOutcome(ReviewStage::PostEvaluation, decision);
            assert_eq!(outcome.sources(), [S::UnderPostEvaluation]);
            assert_eq!(
                outcome.target(S::UnderPostEvaluation, None),
                Some(S::InOperation)
            );
        }
        let wrong = Action::ReviewOutcome(ReviewStage::PostEvaluation, ReviewDecision::Approved);
        assert_eq!(wrong.target(S::UnderPostEvaluation, None), None);
        // Office may decide in the panel's stead, as for the other reviews; the review is
        // cancelled with it.
        let overridden =
            Action::OverrideOutcome(ReviewStage::PostEvaluation, ReviewDecision::Failed);
        assert_eq!(overridden.sources(), [S::UnderPostEvaluation]);
        assert_eq!(
            overridden.target(S::UnderPostEvaluation, None),
            Some(S::InOperation)
        );
        assert_eq!(
            overridden.review_effect(S::UnderPostEvaluation, S::InOperation),
            Some(ReviewEffect::Cancel)
        );
        // Suspension pauses the panel and resumption resumes it.
        assert_eq!(
            Action::Suspend.review_effect(S::UnderPostEvaluation, S::Suspended),
            Some(ReviewEffect::Pause)
        );
        assert_eq!(
            Action::Resume.review_effect(S::Suspended, S::UnderPostEvaluation),
            Some(ReviewEffect::Resume)
        );
    }

    #[test]
    fn a_decision_must_fit_its_stage() {
        let wrong = Action::ReviewOutcome(ReviewStage::Acceptance, ReviewDecision::Approved);
        assert_eq!(wrong.target(S::UnderAcceptance, None), None);
    }

    #[test]
    fn only_the_preliminary_approval_fixes_the_budget() {
        for decision in [ReviewDecision::Approved, ReviewDecision::RevisionRequired] {
            let outcome = Action::ReviewOutcome(ReviewStage::PreliminaryReview, decision);
            assert_eq!(
                outcome.fixes_budget(),
                outcome.target(S::UnderPreliminaryReview, None) == Some(S::Approved)
            );
        }
        let plan_revision = Action::ReviewOutcome(
            ReviewStage::ImplementationPlanReview,
            ReviewDecision::RevisionRequired,
        );
        assert_eq!(
            plan_revision.target(S::ImplementationPlanFiled, None),
            Some(S::Approved)
        );
        assert!(!plan_revision.fixes_budget());
    }

    #[test]
    fn peers_need_no_etag() {
        assert!(!Action::ReviewCancelled.etag_required());
        assert!(Action::Submit.etag_required());
    }
}
