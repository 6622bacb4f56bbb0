//! The projects side of the review contract: a project sent to review asks review scheduling
//! for it (checked first, sent through the outbox), its withdrawal, suspension and resumption
//! reach the review the same way, and the review's decision or cancellation comes back to the
//! one project whose review it is.

use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, Violations,
    time::{now, to_timestamp},
};
use govit_proto::{
    projects::v1::{self as pb, ProjectState as S, ReviewDecision, ReviewStage},
    scheduling::v1 as spb,
};

use crate::{
    ProjectsService,
    lifecycle::{Action, REVIEW_STATES, ReviewEffect, state_name},
    model::ProjectRow,
    outbox::Outgoing,
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
                let request = spb::RequestReviewRequest {
                    review_id: review_id.clone(),
                    project: row.name(),
                    stage: stage as i32,
                    panel: row
                        .panel()
                        .map_err(internal)?
                        .into_iter()
                        .map(|p| pb::PanelRequirement {
                            category: p.category,
                            count: p.count,
                            alternates: p.alternates,
                        })
                        .collect(),
                    excluded_organizations: [
                        Some(&row.applicant),
                        row.contractor.as_ref(),
                        row.supervision_firm.as_ref(),
                        row.feasibility_consultancy.as_ref(),
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
                // A fixed text: whoever acted gave their own words to this service's audit
                // trail; the review need only know what happened, and cannot refuse it.
                let reason = match action {
                    Action::OverrideOutcome(..) => "office decided in the panel's stead".to_owned(),
                    _ => format!("the project was {}", state_name(to).to_lowercase()),
                };
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

    pub(crate) async fn record_outcome(
        &self,
        caller: &Caller,
        req: pb::RecordReviewOutcomeRequest,
    ) -> ServiceResult<pb::Project> {
        let mut v = Violations::new();
        let review_id = v.resource_id("review", &req.review, "reviews", false);
        let stage = check::enum_value::<ReviewStage>(&mut v, "stage", req.stage, false);
        let decision = check::enum_value::<ReviewDecision>(&mut v, "decision", req.decision, false);
        check::optional_text(&mut v, "summary", &req.summary, MAX_TEXT_CHARS);
        match (stage, decision) {
            (Some(ReviewStage::PostEvaluation), _) => v.add(
                "stage",
                "post-evaluation is recorded with RecordPostEvaluation",
            ),
            (Some(stage), Some(decision)) if !stage.admits(decision) => v.add(
                "decision",
                format!(
                    "{} does not apply to {}",
                    decision.as_str_name(),
                    stage.as_str_name()
                ),
            ),
            _ => {}
        }
        let code = check::parse_project_name("name", &req.name);
        if code.is_err() {
            v.add("name", "must be projects/{code}, e.g. projects/2026-0007");
        }
        v.finish()?;
        let (Some(stage), Some(decision), Ok(code)) = (stage, decision, code) else {
            return Err(ServiceError::field("stage", "is required"));
        };
        let action = Action::ReviewOutcome(stage, decision);
        caller.require(action.roles())?;
        // A redelivered outcome is answered with the project as it is now.
        if let Some(previous) = self.store.review_outcome(&review_id).await? {
            if previous.project_code != code
                || previous.stage != stage
                || previous.decision != decision
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
        let mut row = self.visible_project(caller, &code).await?;
        // Once the project has a review, only that review decides it.
        if let Some(own) = row.review.as_deref()
            && own != review_id
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
        let outcome = |applied| ReviewOutcomeRecord {
            review_id: review_id.clone(),
            project_code: code.clone(),
            stage,
            decision,
            summary: req.summary.clone(),
            applied,
        };
        let from = row.state().map_err(internal)?;
        let suspended_from = row.suspended_from().map_err(internal)?;
        let own_review = row.review.as_deref() == Some(review_id.as_str());
        if from == S::Suspended
            && let Some(left) = suspended_from.filter(|s| action.sources().contains(s))
        {
            // The decision was reached before the suspension took hold: it stands, and the
            // project resumes to where the decision leads.
            let to = action
                .target(left, None)
                .ok_or_else(|| ServiceError::field("decision", "does not apply to this stage"))?;
            let mut extras = vec![Extra::ReviewOutcome(outcome(true))];
            extras.extend(approval_effects(&mut row, left, to));
            row.suspended_from = Some(state_name(to).to_owned());
            let event = NewEvent {
                action: action.name().into(),
                from_state: Some(state_name(from)),
                to_state: Some(state_name(from)),
                changed_fields: vec![review_id.clone(), "suspended_from".into()],
                reason: req.summary.clone(),
                ..NewEvent::default()
            };
            return self.save(row, caller, event, extras).await;
        }
        if own_review && !action.sources().contains(&from) {
            // The review concluded as the project left it (withdrawn, or decided by an office
            // override): the panel's decision is kept and audited, and changes nothing.
            let event = NewEvent {
                action: "ReviewOutcomeNotApplied".into(),
                from_state: Some(state_name(from)),
                to_state: Some(state_name(from)),
                changed_fields: vec![review_id.clone()],
                reason: format!(
                    "{} arrived after the project was {}: {}",
                    decision.short_name(),
                    state_name(from),
                    req.summary
                ),
                ..NewEvent::default()
            };
            return self
                .save(
                    row,
                    caller,
                    event,
                    vec![Extra::ReviewOutcome(outcome(false))],
                )
                .await;
        }
        let summary = req.summary.clone();
        let event_review = review_id.clone();
        self.transition_with(
            caller,
            &req.name,
            &req.etag,
            action,
            Violations::new(),
            move |_row, event, _| {
                event.changed_fields = vec![event_review];
                event.reason = summary;
                Ok(())
            },
            vec![Extra::ReviewOutcome(outcome(true))],
        )
        .await
    }

    pub(crate) async fn record_cancellation(
        &self,
        caller: &Caller,
        req: pb::RecordReviewCancellationRequest,
    ) -> ServiceResult<pb::Project> {
        let mut v = Violations::new();
        let review_id = v.resource_id("review", &req.review, "reviews", false);
        check::optional_text(&mut v, "reason", &req.reason, MAX_REASON_CHARS);
        let code = check::parse_project_name("name", &req.name);
        if code.is_err() {
            v.add("name", "must be projects/{code}, e.g. projects/2026-0007");
        }
        v.finish()?;
        let code = code?;
        caller.require(&[Role::Service])?;
        let mut row = self.visible_project(caller, &code).await?;
        let from = row.state().map_err(internal)?;
        // A report about a review the project has moved past (withdrawn with it, or sent to a
        // new review since) changes nothing.
        if row.review.as_deref() != Some(review_id.as_str()) {
            return row.to_proto().map_err(internal);
        }
        let reason = format!("review {} cancelled: {}", req.review, req.reason);
        if REVIEW_STATES.contains(&from) {
            return self
                .transition(
                    caller,
                    &req.name,
                    "",
                    Action::ReviewCancelled,
                    Violations::new(),
                    move |_, event, _| {
                        event.reason = reason;
                        Ok(())
                    },
                )
                .await;
        }
        if from == S::Suspended
            && let Some(left) = row
                .suspended_from()
                .map_err(internal)?
                .filter(|s| REVIEW_STATES.contains(s))
            && let Some(to) = Action::ReviewCancelled.target(left, None)
        {
            row.suspended_from = Some(state_name(to).to_owned());
            let event = NewEvent {
                action: Action::ReviewCancelled.name().into(),
                from_state: Some(state_name(from)),
                to_state: Some(state_name(from)),
                changed_fields: vec!["suspended_from".into()],
                reason,
                ..NewEvent::default()
            };
            return self.save(row, caller, event, Vec::new()).await;
        }
        row.to_proto().map_err(internal)
    }

    async fn save(
        &self,
        row: ProjectRow,
        caller: &Caller,
        event: NewEvent,
        extras: Vec<Extra>,
    ) -> ServiceResult<pb::Project> {
        let version = row.version;
        self.store
            .save_project(row, version, caller, event, extras)
            .await?
            .to_proto()
            .map_err(internal)
    }
}

/// The approved investment (概算) is fixed when the preliminary review approves.
pub(crate) fn approval_effects(row: &mut ProjectRow, from: S, to: S) -> Option<Extra> {
    if to == S::Approved && from == S::UnderPreliminaryReview {
        row.approved_budget_fen = Some(row.estimated_investment_fen);
        row.original_approved_fen = Some(row.estimated_investment_fen);
        Some(Extra::FirstBaseline {
            budget_fen: row.estimated_investment_fen,
        })
    } else {
        None
    }
}
