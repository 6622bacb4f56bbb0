//! The conclusion: recorded by the chair once every confirmed member gave an opinion, with the
//! averages of their scores, and reported to the projects service; then office rates the
//! experts who served, which the registry keeps.

use std::collections::BTreeMap;

use govit_platform::{
    Caller, ServiceError, ServiceResult, Violations,
    time::{now, to_stored},
    validate::is_code,
};
use govit_proto::{StoredEnum, experts::v1 as epb, projects::v1 as ppb, scheduling::v1 as pb};

use super::{
    ReviewEvent, decision_names, internal, move_review, opinions::require_meeting_in_progress,
    parse_review,
};
use crate::{
    SchedulingService,
    model::{ConclusionRec, OpinionRow, ReviewRow, from_json, to_json},
    notify::{self, Channel},
    outbox::Outgoing,
};

/// A conclusion as sent, before it is checked against the review's stage.
#[derive(Debug, Clone)]
pub struct Conclusion {
    pub id: String,
    request: pb::RecordConclusionRequest,
}

impl TryFrom<pb::RecordConclusionRequest> for Conclusion {
    type Error = ServiceError;

    fn try_from(request: pb::RecordConclusionRequest) -> ServiceResult<Self> {
        Ok(Conclusion {
            id: parse_review(&request.name)?,
            request,
        })
    }
}

/// A conclusion whose decision the review's stage admits.
#[derive(Debug, Clone)]
pub struct CheckedConclusion {
    decision: pb::ReviewDecision,
    summary: String,
}

impl Conclusion {
    pub fn check(self, r: &ReviewRow) -> ServiceResult<CheckedConclusion> {
        let req = self.request;
        let decision = pb::ReviewDecision::try_from(req.decision)
            .ok()
            .filter(|d| r.stage.admits(*d));
        let mut v = Violations::new();
        if decision.is_none() {
            v.add(
                "decision",
                format!(
                    "must be one of {} for {}",
                    decision_names(r.stage),
                    r.stage.as_stored()
                ),
            );
        }
        v.text("summary", &req.summary, 20_000);
        v.finish()?;
        Ok(CheckedConclusion {
            decision: decision.unwrap_or_default(),
            summary: req.summary.trim().to_owned(),
        })
    }
}

/// Office's rating of an expert who served.
#[derive(Debug, Clone)]
pub struct RateExpert {
    pub id: String,
    expert_id: String,
    rating: i32,
    comment: String,
}

impl TryFrom<pb::RateExpertRequest> for RateExpert {
    type Error = ServiceError;

    fn try_from(req: pb::RateExpertRequest) -> ServiceResult<Self> {
        let id = parse_review(&req.name)?;
        let mut v = Violations::new();
        if !is_code(&req.expert_id) {
            v.add("expert_id", "must be an expert id");
        }
        if !(1..=5).contains(&req.rating) {
            v.add("rating", "must be from 1 to 5");
        }
        v.optional_text("comment", &req.comment, 2000);
        v.finish()?;
        Ok(RateExpert {
            id,
            expert_id: req.expert_id,
            rating: req.rating,
            comment: req.comment,
        })
    }
}

impl SchedulingService {
    pub(crate) async fn conclude(
        &self,
        caller: &Caller,
        r: &ReviewRow,
        checked: CheckedConclusion,
    ) -> ServiceResult<ReviewRow> {
        if caller.expert.is_none() || r.chair_expert_id != caller.expert {
            return Err(ServiceError::PermissionDenied(
                "only the chair records the conclusion".into(),
            ));
        }
        require_meeting_in_progress(r)?;
        let opinions = self.all_opinions_in(r).await?;
        let (averages_centi, overall_centi) = self.averages(r, &opinions)?;
        let conclusion = ConclusionRec {
            decision: checked.decision,
            summary: checked.summary,
            averages_centi,
            overall_centi,
            chair: caller.expert.clone().unwrap_or_default(),
            at: to_stored(now()),
        };
        self.store_conclusion(caller, r, &conclusion).await?;
        tracing::info!(review = %r.id, decision = %conclusion.decision.as_stored(), "review concluded");
        self.review(&r.id).await
    }

    /// The opinions of the review, once every confirmed member has given theirs.
    async fn all_opinions_in(&self, r: &ReviewRow) -> ServiceResult<Vec<OpinionRow>> {
        let confirmed: Vec<String> = self
            .invitations(&r.id)
            .await?
            .into_iter()
            .filter(|i| i.is_confirmed())
            .map(|i| i.expert_id)
            .collect();
        let opinions =
            sqlx::query_as::<_, OpinionRow>("SELECT * FROM opinions WHERE review_id = $1")
                .bind(r.id.clone())
                .fetch_all(&self.db.pool)
                .await?;
        let missing: Vec<&str> = confirmed
            .iter()
            .filter(|e| !opinions.iter().any(|o| &o.expert_id == *e))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() || opinions.is_empty() {
            return Err(ServiceError::precondition(
                "OPINIONS_MISSING",
                r.name(),
                format!("waiting for the opinions of {}", missing.join(", ")),
            ));
        }
        Ok(opinions)
    }

    /// Per criterion of the stage, the average score in hundredths; and the average of those.
    fn averages(
        &self,
        r: &ReviewRow,
        opinions: &[OpinionRow],
    ) -> ServiceResult<(Vec<(String, i32)>, i32)> {
        let criteria = self
            .policy
            .criteria
            .get(r.stage.as_stored())
            .cloned()
            .unwrap_or_default();
        let mut sums: BTreeMap<String, i64> = BTreeMap::new();
        for o in opinions {
            for (c, s) in from_json::<Vec<(String, i32)>>("scores", &o.scores).map_err(internal)? {
                *sums.entry(c).or_default() += i64::from(s);
            }
        }
        let n = opinions.len() as i64;
        let averages: Vec<(String, i32)> = criteria
            .iter()
            .map(|c| {
                (
                    c.clone(),
                    (sums.get(c).copied().unwrap_or(0) * 100 / n) as i32,
                )
            })
            .collect();
        let overall = if averages.is_empty() {
            0
        } else {
            averages.iter().map(|(_, a)| i64::from(*a)).sum::<i64>() / averages.len() as i64
        } as i32;
        Ok((averages, overall))
    }

    /// Concludes the review with its event, its report to the projects service (every stage
    /// but post-evaluation moves the project) and office's notice.
    async fn store_conclusion(
        &self,
        caller: &Caller,
        r: &ReviewRow,
        conclusion: &ConclusionRec,
    ) -> ServiceResult<()> {
        let (id, decision) = (&r.id, conclusion.decision);
        let mut tx = self.begin().await?;
        if !move_review(
            &mut tx,
            id,
            ReviewEvent::Conclude,
            Some(to_json(conclusion)),
        )
        .await?
        {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                r.name(),
                format!("{} is no longer under way", r.name()),
            ));
        }
        let detail = format!("{}: {}", decision.as_stored(), conclusion.summary);
        Self::event(&mut tx, id, &caller.subject, "Concluded", &detail).await?;
        let report = ppb::RecordReviewOutcomeRequest {
            name: r.project_name(),
            etag: String::new(),
            review: r.name(),
            stage: r.stage as i32,
            decision: decision as i32,
            summary: conclusion.summary.clone(),
        };
        govit_platform::outbox::enqueue(&mut tx, &Outgoing::RecordReviewOutcome(report)).await?;
        notify::record(
            &mut tx,
            "office",
            Channel::Email,
            &format!(
                "Review {id} of project {} concluded: {}",
                r.project_id,
                decision.as_stored()
            ),
            id,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn rate(
        &self,
        caller: &Caller,
        rating: RateExpert,
    ) -> ServiceResult<ReviewRow> {
        let (id, expert) = (&rating.id, &rating.expert_id);
        let r = self.review(id).await?;
        if r.state != pb::ReviewState::Concluded {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                r.name(),
                format!("{} is not concluded yet", r.name()),
            ));
        }
        let served = self
            .invitations(id)
            .await?
            .iter()
            .any(|i| &i.expert_id == expert && i.is_confirmed());
        if !served {
            return Err(ServiceError::field(
                "expert_id",
                format!("{expert} did not serve on this panel"),
            ));
        }
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO ratings (review_id, expert_id, rating, comment) VALUES ($1, $2, $3, $4)",
        )
        .bind(id.clone())
        .bind(expert.clone())
        .bind(i64::from(rating.rating))
        .bind(rating.comment.clone())
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if govit_platform::db::is_unique_violation(&e) => {
                return Err(ServiceError::AlreadyExists {
                    resource_type: "rating",
                    name: format!("reviews/{id}/ratings/{expert}"),
                });
            }
            other => other?,
        };
        let service = epb::RecordReviewServiceRequest {
            name: format!("experts/{expert}"),
            review: r.name(),
            rating: rating.rating,
            comment: rating.comment.clone(),
            // The registry counts one service per expert and review, so redeliveries need no id.
            request_id: String::new(),
        };
        govit_platform::outbox::enqueue(&mut tx, &Outgoing::RecordReviewService(service)).await?;
        Self::event(&mut tx, id, &caller.subject, "ExpertRated", expert).await?;
        tx.commit().await?;
        self.review(id).await
    }
}
