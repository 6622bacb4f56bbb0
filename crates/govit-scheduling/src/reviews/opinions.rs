//! Opinions: each confirmed member scores the stage's criteria and recommends a decision, once,
//! while the meeting is on.

use std::collections::BTreeSet;

use govit_platform::{
    Caller, ServiceError, ServiceResult, Violations,
    time::{now, to_stored},
};
use govit_proto::{StoredEnum, scheduling::v1 as pb};

use super::{PANEL_STATES, decision_names, internal, parse_review};
use crate::{
    SchedulingPolicy, SchedulingService,
    model::{OpinionRow, ReviewRow, to_json},
};

/// An opinion as sent, before it is checked against the review's stage.
#[derive(Debug, Clone)]
pub struct NewOpinion {
    pub id: String,
    request: pb::SubmitOpinionRequest,
}

impl TryFrom<pb::SubmitOpinionRequest> for NewOpinion {
    type Error = ServiceError;

    fn try_from(request: pb::SubmitOpinionRequest) -> ServiceResult<Self> {
        let id = parse_review(&request.review)
            .map_err(|_| ServiceError::field("review", "must be reviews/{id}"))?;
        Ok(NewOpinion { id, request })
    }
}

/// An opinion checked against the review's criteria and stage.
#[derive(Debug, Clone)]
pub struct CheckedOpinion {
    scores: Vec<(String, i32)>,
    opinion: String,
    recommendation: pb::ReviewDecision,
}

impl NewOpinion {
    /// Every criterion of the stage scored once from 0 to 100, and a decision the stage admits.
    pub fn check(self, r: &ReviewRow, policy: &SchedulingPolicy) -> ServiceResult<CheckedOpinion> {
        let req = self.request;
        let criteria = policy
            .criteria
            .get(r.stage.as_stored())
            .cloned()
            .unwrap_or_default();
        let mut v = Violations::new();
        let mut scores = Vec::new();
        let mut seen = BTreeSet::new();
        // The stage's criteria are kept by their stored names; the wire has the enum.
        let wire_name = |stored: &str| {
            pb::ReviewCriterion::from_stored(stored)
                .map(|c| c.as_str_name())
                .unwrap_or("?")
        };
        let mut given = Vec::new();
        for (i, s) in req.scores.iter().enumerate() {
            let stored = pb::ReviewCriterion::try_from(s.criterion)
                .ok()
                .map(StoredEnum::as_stored)
                .filter(|c| criteria.iter().any(|k| k == c));
            match stored {
                None => v.add(
                    format!("scores[{i}].criterion"),
                    format!(
                        "must be one of {}",
                        criteria
                            .iter()
                            .map(|c| wire_name(c))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                Some(c) if !seen.insert(c) => {
                    v.add(format!("scores[{i}].criterion"), "appears twice")
                }
                Some(_) => {}
            }
            if !(0..=100).contains(&s.score) {
                v.add(format!("scores[{i}].score"), "must be between 0 and 100");
            }
            given.extend(stored);
            scores.push((stored.unwrap_or_default().to_owned(), s.score));
        }
        for c in &criteria {
            if !given.contains(&c.as_str()) {
                v.add("scores", format!("no score for {}", wire_name(c)));
            }
        }
        v.text("opinion", &req.opinion, 20_000);
        let recommendation = pb::ReviewDecision::try_from(req.recommendation)
            .ok()
            .filter(|d| r.stage.admits(*d));
        if recommendation.is_none() {
            v.add(
                "recommendation",
                format!("must be one of {}", decision_names(r.stage)),
            );
        }
        v.finish()?;
        Ok(CheckedOpinion {
            scores,
            opinion: req.opinion.trim().to_owned(),
            recommendation: recommendation.unwrap_or_default(),
        })
    }
}

impl SchedulingService {
    pub(crate) async fn add_opinion(
        &self,
        caller: &Caller,
        r: &ReviewRow,
        opinion: CheckedOpinion,
    ) -> ServiceResult<OpinionRow> {
        let id = &r.id;
        let me = caller.expert.clone().unwrap_or_default();
        let confirmed = self
            .invitations(id)
            .await?
            .iter()
            .any(|i| i.expert_id == me && i.is_confirmed());
        if !confirmed {
            return Err(ServiceError::PermissionDenied(
                "only confirmed panel members give opinions".into(),
            ));
        }
        require_meeting_in_progress(r)?;
        let mut tx = self.begin().await?;
        let inserted = sqlx::query("INSERT INTO opinions (review_id, expert_id, scores, opinion, recommendation, submit_time) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(id.clone())
            .bind(me.clone())
            .bind(to_json(&opinion.scores))
            .bind(opinion.opinion)
            .bind(opinion.recommendation.as_stored())
            .bind(to_stored(now()))
            .execute(&mut *tx)
            .await;
        match inserted {
            Err(e) if govit_platform::db::is_unique_violation(&e) => {
                return Err(ServiceError::AlreadyExists {
                    resource_type: "opinion",
                    name: format!("reviews/{id}/opinions/{me}"),
                });
            }
            other => other?,
        };
        Self::event(&mut tx, id, &caller.subject, "OpinionSubmitted", &me).await?;
        tx.commit().await?;
        sqlx::query_as::<_, OpinionRow>(
            "SELECT * FROM opinions WHERE review_id = $1 AND expert_id = $2",
        )
        .bind(id.clone())
        .bind(me)
        .fetch_one(&self.db.pool)
        .await
        .map_err(Into::into)
    }
}

/// Opinions and the conclusion need a scheduled meeting of a review going on.
pub(super) fn require_meeting_in_progress(r: &ReviewRow) -> ServiceResult<()> {
    if r.state == pb::ReviewState::Concluded {
        return Err(ServiceError::precondition(
            "STATE_CONFLICT",
            r.name(),
            format!("{} already has its conclusion", r.name()),
        ));
    }
    if !PANEL_STATES.contains(&r.state) {
        return Err(ServiceError::precondition(
            "STATE_CONFLICT",
            r.name(),
            format!("{} is {}", r.name(), r.state.as_stored()),
        ));
    }
    if r.scheduled_meeting().map_err(internal)?.is_none() {
        return Err(ServiceError::precondition(
            "STATE_CONFLICT",
            r.name(),
            format!("{} has no scheduled meeting", r.name()),
        ));
    }
    Ok(())
}
