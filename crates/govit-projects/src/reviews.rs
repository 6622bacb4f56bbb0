//! The projects side of the review contract: a project sent to review asks review scheduling
//! for it (checked first, sent through the outbox), its withdrawal, suspension and resumption
//! reach the review the same way, and the review's decision or cancellation comes back to the
//! one project whose review it is.

use govit_platform::{
    Caller, ServiceError, ServiceResult, Violations,
    time::{now, to_timestamp},
};
use govit_proto::{
    StoredEnum,
    projects::v1::{self as pb, ProjectState as S},
    scheduling::v1 as spb,
};

use crate::{
    ProjectsService,
    lifecycle::{Action, REVIEW_STATES, ReviewEffect},
    model::{Nullable, PanelRec, ProjectCode, ProjectRow},
    outbox::Outgoing,
    projects::{Change, Target, budget_effect},
    store::{Extra, NewEvent, ReviewOutcomeRecord},
    validation::{self as check, MAX_REASON_CHARS, MAX_TEXT_CHARS},
};

fn internal(e: anyhow::Error) -> ServiceError {
    ServiceError::Internal(e)
}

impl ProjectsService {
    /// The messages a transition owes review scheduling. A review request is checked with
    /// scheduling (and through it the registry) before anything is written; without a
    /// scheduling service nothing is requested and office records outcomes itself.
    pub(crate) async fn review_messages(
        &self,
        action: Action,
        from: S,
        to: S,
        row: &mut ProjectRow,
    ) -> ServiceResult<Vec<Extra>> {
        let Some(effect) = action.review_effect(from, to) else {
            return Ok(Vec::new());
        };
        let call = match effect {
            ReviewEffect::Request(stage) => {
                let Some(mut scheduling) = self.calendar.clone() else {
                    return Ok(Vec::new());
                };
                let review_id = format!("rv-{}", uuid::Uuid::now_v7().simple());
                // Experts of the designer are as interested as the contractor's.
                let designer = row
                    .tender_record()
                    .map_err(internal)?
                    .map(|t| t.design_firm);
                let request = spb::RequestReviewRequest {
                    review_id: review_id.clone(),
                    project: row.name(),
                    stage: stage as i32,
                    panel: row
                        .panel()
                        .map_err(internal)?
                        .iter()
                        .map(PanelRec::to_proto)
                        .collect(),
                    excluded_organizations: [
                        Some(&row.applicant),
                        row.contractor.as_ref(),
                        row.supervision_firm.as_ref(),
                        row.feasibility_consultancy.as_ref(),
                        designer.as_ref(),
                    ]
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect(),
                    applicant_organization: row.applicant.clone(),
                    accept_time: Some(to_timestamp(now())),
                    validate_only: true,
                };
                scheduling
                    .request_review(request.clone())
                    .await
                    .map_err(|s| ServiceError::from_peer("review scheduling service", s))?;
                row.review = Some(review_id);
                Outgoing::RequestReview(spb::RequestReviewRequest {
                    validate_only: false,
                    ..request
                })
            }
            other => {
                let Some(review) = row.review.as_ref().map(|id| format!("reviews/{id}")) else {
                    return Ok(Vec::new());
                };
                let reason = action.review_reason(to);
                match other {
                    ReviewEffect::Cancel => Outgoing::CancelReview(spb::CancelReviewRequest {
                        name: review,
                        reason,
                    }),
                    ReviewEffect::Pause => Outgoing::PauseReview(spb::PauseReviewRequest {
                        name: review,
                        reason,
                    }),
                    _ => Outgoing::ResumeReview(spb::ResumeReviewRequest { name: review }),
                }
            }
        };
        Ok(vec![Extra::Outbox(call)])
    }

    /// Records a review's decision on its project: applied when the project waits for it,
    /// kept (and audited) when the project has left the review, and answered with the project
    /// as it is when redelivered.
    pub(crate) async fn apply_review_outcome(
        &self,
        caller: &Caller,
        outcome: OutcomeReport,
    ) -> ServiceResult<pb::Project> {
        let OutcomeReport { req, code, record } = outcome;
        let action = Action::ReviewOutcome(record.stage, record.decision);
        // A redelivered outcome is answered with the project as it is now.
        if let Some(previous) = self.store.review_outcome(&record.review_id).await? {
            if previous.project_code != code
                || previous.stage != record.stage
                || previous.decision != record.decision
            {
                return Err(ServiceError::AlreadyExists {
                    resource_type: "review outcome",
                    name: req.review.clone(),
                });
            }
            return self
                .visible_project(caller, &code)
                .await?
                .to_proto()
                .map_err(internal);
        }
        let row = self.visible_project(caller, &code).await?;
        // Once the project has a review, only that review decides it.
        if let Some(own) = row.review.as_deref()
            && own != record.review_id
        {
            return Err(ServiceError::precondition(
                "REVIEW_MISMATCH",
                row.name(),
                format!(
                    "{} is decided by its review reviews/{own}, not {}",
                    row.name(),
                    req.review
                ),
            ));
        }
        let from = row.state;
        let own_review = row.review.as_deref() == Some(record.review_id.as_str());
        if from == S::Suspended
            && let Some(left) = row
                .suspended_from
                .0
                .filter(|s| action.sources().contains(s))
        {
            return self.decide_while_suspended(caller, row, left, record).await;
        }
        if own_review && !action.sources().contains(&from) {
            return self.keep_unapplied(caller, row, record).await;
        }
        let summary = record.summary.clone();
        let event_review = record.review_id.clone();
        let target = Target::parse_alone(&req.name, &req.etag, action)?;
        let change = Change::new(move |_row, event, _| {
            event.changed_fields = vec![event_review];
            event.reason = summary;
            Ok(())
        });
        self.run_transition(
            caller,
            target,
            action,
            change.with(vec![Extra::ReviewOutcome(record)]),
        )
        .await
    }

    /// The decision was reached before the suspension took hold: it stands, and the project
    /// resumes to where the decision leads.
    async fn decide_while_suspended(
        &self,
        caller: &Caller,
        mut row: ProjectRow,
        left: S,
        record: ReviewOutcomeRecord,
    ) -> ServiceResult<pb::Project> {
        let action = Action::ReviewOutcome(record.stage, record.decision);
        let to = action
            .target(left, None)
            .ok_or_else(|| ServiceError::field("decision", "does not apply to this stage"))?;
        let event = NewEvent {
            action: action.name().into(),
            from_state: Some(row.state),
            to_state: Some(row.state),
            changed_fields: vec![record.review_id.clone(), "suspended_from".into()],
            reason: record.summary.clone(),
            ..NewEvent::default()
        };
        let mut extras = vec![Extra::ReviewOutcome(record)];
        extras.extend(budget_effect(action, &mut row));
        row.suspended_from = Nullable(Some(to));
        self.write_as_read(row, caller, event, extras).await
    }

    /// The review concluded as the project left it (withdrawn, or decided by an office
    /// override): the panel's decision is kept and audited, and changes nothing.
    async fn keep_unapplied(
        &self,
        caller: &Caller,
        row: ProjectRow,
        record: ReviewOutcomeRecord,
    ) -> ServiceResult<pb::Project> {
        let event = NewEvent {
            action: "ReviewOutcomeNotApplied".into(),
            from_state: Some(row.state),
            to_state: Some(row.state),
            changed_fields: vec![record.review_id.clone()],
            reason: format!(
                "{} arrived after the project was {}: {}",
                record.decision.as_stored(),
                row.state.as_stored(),
                record.summary
            ),
            ..NewEvent::default()
        };
        let record = ReviewOutcomeRecord {
            applied: false,
            ..record
        };
        self.write_as_read(row, caller, event, vec![Extra::ReviewOutcome(record)])
            .await
    }

    /// Records that review scheduling cancelled the project's review: the project goes back to
    /// be sent again (or will, when resumed).
    pub(crate) async fn apply_review_cancellation(
        &self,
        caller: &Caller,
        cancellation: CancellationReport,
    ) -> ServiceResult<pb::Project> {
        let CancellationReport {
            code,
            review_id,
            reason,
        } = cancellation;
        let mut row = self.visible_project(caller, &code).await?;
        let from = row.state;
        // A report about a review the project has moved past (withdrawn with it, or sent to a
        // new review since) changes nothing.
        if row.review.as_deref() != Some(review_id.as_str()) {
            return row.to_proto().map_err(internal);
        }
        if REVIEW_STATES.contains(&from) {
            let change = Change::new(move |_, event, _| {
                event.reason = reason;
                Ok(())
            });
            return self
                .run_transition(
                    caller,
                    Target::without_etag(&code),
                    Action::ReviewCancelled,
                    change,
                )
                .await;
        }
        if from == S::Suspended
            && let Some(left) = row.suspended_from.0.filter(|s| REVIEW_STATES.contains(s))
            && let Some(to) = Action::ReviewCancelled.target(left, None)
        {
            row.suspended_from = Nullable(Some(to));
            let event = NewEvent {
                action: Action::ReviewCancelled.name().into(),
                from_state: Some(from),
                to_state: Some(from),
                changed_fields: vec!["suspended_from".into()],
                reason,
                ..NewEvent::default()
            };
            return self.write_as_read(row, caller, event, Vec::new()).await;
        }
        row.to_proto().map_err(internal)
    }
}

/// A review's decision as review scheduling reports it.
pub(crate) struct OutcomeReport {
    req: pb::RecordReviewOutcomeRequest,
    code: ProjectCode,
    record: ReviewOutcomeRecord,
}

impl TryFrom<pb::RecordReviewOutcomeRequest> for OutcomeReport {
    type Error = ServiceError;

    fn try_from(req: pb::RecordReviewOutcomeRequest) -> ServiceResult<Self> {
        let mut v = Violations::new();
        let review_id = v.resource_id("review", &req.review, "reviews", false);
        let (stage, decision) = check::stage_decision(&mut v, req.stage, req.decision);
        check::optional_text(&mut v, "summary", &req.summary, MAX_TEXT_CHARS);
        check::decision_fits(&mut v, stage, decision);
        let code = check::parse_project_name("name", &req.name);
        if code.is_err() {
            v.add("name", "must be projects/{code}, e.g. projects/2026-0007");
        }
        v.finish()?;
        let (Some(stage), Some(decision), Ok(code)) = (stage, decision, code) else {
            return Err(ServiceError::field("stage", "is required"));
        };
        let record = ReviewOutcomeRecord {
            review_id,
            project_code: code.clone(),
            stage,
            decision,
            summary: req.summary.clone(),
            applied: true,
        };
        Ok(OutcomeReport { req, code, record })
    }
}

impl OutcomeReport {
    pub fn action(&self) -> Action {
        Action::ReviewOutcome(self.record.stage, self.record.decision)
    }
}

/// A review's cancellation as review scheduling reports it.
pub(crate) struct CancellationReport {
    code: ProjectCode,
    review_id: String,
    /// For the audit trail: which review, and why.
    reason: String,
}

impl TryFrom<pb::RecordReviewCancellationRequest> for CancellationReport {
    type Error = ServiceError;

    fn try_from(req: pb::RecordReviewCancellationRequest) -> ServiceResult<Self> {
        let mut v = Violations::new();
        let review_id = v.resource_id("review", &req.review, "reviews", false);
        check::optional_text(&mut v, "reason", &req.reason, MAX_REASON_CHARS);
        let code = check::parse_project_name("name", &req.name);
        if code.is_err() {
            v.add("name", "must be projects/{code}, e.g. projects/2026-0007");
        }
        v.finish()?;
        Ok(CancellationReport {
            code: code?,
            review_id,
            reason: format!("review {} cancelled: {}", req.review, req.reason),
        })
    }
}
