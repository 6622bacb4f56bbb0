//! What review scheduling reports to the registry: an expert's service on a review (counted
//! and rated on the expert) and office's overrides of review outcomes (logged for inspectors).

use govit_platform::{Caller, ServiceError, ServiceResult, Violations};
use govit_proto::{StoredEnum, experts::v1 as pb};
use serde_json::json;

use crate::{
    ExpertsService, internal,
    model::ExpertId,
    store::{ServiceRecorded, Store},
    translog,
    validation::{self as check, parse_name},
};

/// An expert's service on a review, with the panel's rating of it.
pub struct ReviewService {
    pub expert: ExpertId,
    pub name: String,
    pub review_id: String,
    pub rating: i32,
    pub comment: String,
}

impl TryFrom<pb::RecordReviewServiceRequest> for ReviewService {
    type Error = ServiceError;

    fn try_from(req: pb::RecordReviewServiceRequest) -> ServiceResult<Self> {
        let mut v = Violations::new();
        let id = parse_name("name", &req.name, "experts");
        if id.is_err() {
            v.add("name", "must be experts/{id}");
        }
        let review_id = v.resource_id("review", &req.review, "reviews", false);
        if !(1..=5).contains(&req.rating) {
            v.add("rating", "must be from 1 to 5");
        }
        check::optional_text(&mut v, "comment", &req.comment, 2000);
        v.finish()?;
        Ok(ReviewService {
            expert: ExpertId(id?),
            name: req.name,
            review_id,
            rating: req.rating,
            comment: req.comment,
        })
    }
}

/// Office's override of a review's outcome, as the projects service approved it.
pub struct OutcomeOverride {
    name: String,
    project: String,
    override_id: String,
    review: String,
    stage: pb::ReviewStage,
    decision: pb::ReviewDecision,
    reason_sha256: String,
    approvals: i32,
}

impl TryFrom<pb::RecordReviewOverrideRequest> for OutcomeOverride {
    type Error = ServiceError;

    fn try_from(req: pb::RecordReviewOverrideRequest) -> ServiceResult<Self> {
        let mut v = Violations::new();
        let (project, override_id) =
            match govit_platform::validate::child_ids(&req.r#override, "projects", "overrides") {
                Some((p, o)) => (p.to_owned(), o.to_owned()),
                None => {
                    v.add("override", "must be projects/{code}/overrides/{id}");
                    (String::new(), String::new())
                }
            };
        let review = v.resource_id("review", &req.review, "reviews", true);
        let stage = pb::ReviewStage::try_from(req.stage)
            .ok()
            .filter(|s| *s != pb::ReviewStage::Unspecified);
        let decision = pb::ReviewDecision::try_from(req.decision)
            .ok()
            .filter(|d| stage.is_some_and(|s| s.admits(*d)));
        if stage.is_none() {
            v.add("stage", "must be a review stage");
        }
        if decision.is_none() {
            v.add("decision", "must be a decision of the stage");
        }
        if req.reason_sha256.len() != 64
            || !req.reason_sha256.bytes().all(|b| b.is_ascii_hexdigit())
        {
            v.add("reason_sha256", "must be 64 hex characters");
        }
        if !(1..=2).contains(&req.approvals) {
            v.add("approvals", "must be 1 or 2");
        }
        v.finish()?;
        let (Some(stage), Some(decision)) = (stage, decision) else {
            return Err(ServiceError::field("stage", "is required"));
        };
        Ok(OutcomeOverride {
            name: req.r#override,
            project,
            override_id,
            review,
            stage,
            decision,
            reason_sha256: req.reason_sha256.to_ascii_lowercase(),
            approvals: req.approvals,
        })
    }
}

impl ExpertsService {
    pub(crate) async fn count_review_service(
        &self,
        caller: &Caller,
        s: ReviewService,
    ) -> ServiceResult<pb::Expert> {
        let not_found = || ServiceError::not_found("expert", s.name.clone());
        self.store
            .get_expert(s.expert.as_str())
            .await?
            .ok_or_else(not_found)?;
        let tx = translog::begin(&self.store.db).await?;
        match self.store.record_review_service(tx, &s).await? {
            ServiceRecorded::New(mut tx) => {
                translog::append(
                    &mut tx,
                    json!({"type": "review_service_recorded", "expert_id": s.expert.as_str(), "review_id": s.review_id}),
                    None,
                )
                .await
                .map_err(internal)?;
                tx.commit().await?;
            }
            // Recorded before: a redelivery changes nothing; a different record is refused.
            ServiceRecorded::Again => {}
            ServiceRecorded::Different => {
                return Err(ServiceError::request_id_reused(
                    "review service",
                    &format!("{}/reviews/{}", s.name, s.review_id),
                ));
            }
        }
        let expert = self
            .store
            .get_expert(s.expert.as_str())
            .await?
            .ok_or_else(not_found)?;
        expert.to_proto(caller.role).map_err(internal)
    }

    pub(crate) async fn log_outcome_override(
        &self,
        o: OutcomeOverride,
    ) -> ServiceResult<pb::RecordReviewOverrideResponse> {
        let mut tx = translog::begin(&self.store.db).await?;
        if let Some(index) = Store::override_index(&mut tx, &o.name).await? {
            return Ok(pb::RecordReviewOverrideResponse {
                index: index as u64,
            });
        }
        let index = translog::append(
            &mut tx,
            json!({
                "type": "review_outcome_overridden",
                "project_id": o.project,
                "override_id": o.override_id,
                "review_id": o.review,
                "stage": o.stage.as_stored(),
                "decision": o.decision.as_stored(),
                "reason_sha256": o.reason_sha256,
                "approvals": o.approvals,
            }),
            None,
        )
        .await
        .map_err(internal)?;
        Store::insert_override(&mut tx, &o.name, index).await?;
        tx.commit().await?;
        tracing::info!(r#override = %o.name, index, "review override logged");
        Ok(pb::RecordReviewOverrideResponse {
            index: index as u64,
        })
    }
}
