//! A review requested: the request checked (its shape here, its panel by the registry), its
//! deadline counted in working days from office's acceptance, and the review created once per
//! id and request.

use chrono::{DateTime, NaiveDate, Utc};
use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, Violations,
    error::{FieldViolation, field_violations},
    time::{now, to_stored},
    validate::is_code,
};
use govit_proto::{StoredEnum, experts::v1 as epb, scheduling::v1 as pb};

use super::cst;
use crate::{
    SchedulingService,
    calendar::View,
    model::{PanelRec, ReviewRow, to_json},
};

/// A review request, checked for shape.
#[derive(Debug, Clone)]
pub struct NewReview {
    /// The request as sent: what a check answers with, and what the review id is bound to.
    pub request: pb::RequestReviewRequest,
    pub project_id: String,
    pub stage: pb::ReviewStage,
    pub accepted: DateTime<Utc>,
    hash: String,
}

impl TryFrom<pb::RequestReviewRequest> for NewReview {
    type Error = ServiceError;

    fn try_from(req: pb::RequestReviewRequest) -> ServiceResult<Self> {
        let mut v = Violations::new();
        if !req.review_id.is_empty() && !is_code(&req.review_id) {
            v.add(
                "review_id",
                "must be 1 to 64 characters of A-Z a-z 0-9 . _ -",
            );
        }
        let project_id = v.resource_id("project", &req.project, "projects", false);
        let stage = match pb::ReviewStage::try_from(req.stage) {
            Ok(pb::ReviewStage::Unspecified) | Err(_) => {
                v.add("stage", "must be PRELIMINARY_REVIEW, IMPLEMENTATION_PLAN_REVIEW, ACCEPTANCE or POST_EVALUATION");
                None
            }
            Ok(s) => Some(s),
        };
        check_panel_shape(&mut v, "panel", &req.panel);
        check_organizations(&mut v, &req);
        let accepted = req
            .accept_time
            .as_ref()
            .and_then(|t| DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?));
        match accepted {
            None => v.add(
                "accept_time",
                "is required: when office sent the project to review",
            ),
            // Clocks of two services differ a little; a request from the future does not.
            Some(t) if t > Utc::now() + chrono::Duration::minutes(5) => {
                v.add("accept_time", "must not be in the future")
            }
            Some(_) => {}
        }
        v.finish()?;
        let (Some(stage), Some(accepted)) = (stage, accepted) else {
            return Err(ServiceError::field("stage", "is required"));
        };
        Ok(NewReview {
            hash: request_hash(&req),
            request: req,
            project_id,
            stage,
            accepted,
        })
    }
}

fn check_organizations(v: &mut Violations, req: &pb::RequestReviewRequest) {
    for (i, o) in req.excluded_organizations.iter().enumerate() {
        if let Err(p) = govit_platform::uscc::CreditCode::parse(o) {
            v.add(
                format!("excluded_organizations[{i}]"),
                format!("credit code {p}"),
            );
        }
    }
    if !req.applicant_organization.is_empty()
        && let Err(p) = govit_platform::uscc::CreditCode::parse(&req.applicant_organization)
    {
        v.add("applicant_organization", format!("credit code {p}"));
    }
}

/// The review's deadline, as computed when it was requested.
struct Deadline {
    request_date: NaiveDate,
    working_days: u32,
    date: NaiveDate,
    calendar_version: String,
}

impl SchedulingService {
    /// Creates the review (or checks the request, with `validate_only`) and starts drawing its
    /// panel at once; the worker picks up whatever this could not finish.
    pub(crate) async fn open_review(
        &self,
        caller: &Caller,
        new: NewReview,
    ) -> ServiceResult<pb::Review> {
        let Some(r) = self.create_review(caller, new.clone()).await? else {
            // validate_only: what would be created, nothing of it stored.
            let req = new.request;
            return Ok(pb::Review {
                project: req.project,
                stage: req.stage,
                panel: req.panel,
                excluded_organizations: req.excluded_organizations,
                applicant_organization: req.applicant_organization,
                accept_time: req.accept_time,
                ..Default::default()
            });
        };
        self.advance_and_view(caller, &r.id, "draw not started yet")
            .await
    }

    /// Takes the review on as far as it goes now (a failure is the worker's to retry), and
    /// answers with it as `caller` sees it.
    pub(crate) async fn advance_and_view(
        &self,
        caller: &Caller,
        id: &str,
        not_yet: &str,
    ) -> ServiceResult<pb::Review> {
        if let Err(e) = self.advance(id).await {
            tracing::warn!(review = %id, error = ?e, "{not_yet}; the worker will retry");
        }
        self.view(caller, &self.review(id).await?).await
    }

    /// Creates the review the request describes, or returns the one this caller created with
    /// this very request before; with `validate_only`, checks it and answers None.
    pub(crate) async fn create_review(
        &self,
        caller: &Caller,
        new: NewReview,
    ) -> ServiceResult<Option<ReviewRow>> {
        let req = &new.request;
        if !req.validate_only
            && !req.review_id.is_empty()
            && let Some(existing) = self.review_if_any(&req.review_id).await?
        {
            return same_request(existing, caller, &new.hash).map(Some);
        }
        let deadline = self.deadline(new.stage, new.accepted).await?;
        // The projects service checked this panel when office accepted the project: whatever
        // changed since (a category retired, the pool shrunk) is found when the draw is opened,
        // which stalls the review for office. A check, and anyone else's request, is judged by
        // the registry now.
        if req.validate_only || !caller.is(Role::Service) {
            let checked = self
                .check_with_registry(
                    &req.project,
                    new.stage,
                    &req.panel,
                    &req.excluded_organizations,
                    deadline.date,
                    "panel",
                )
                .await;
            match checked {
                // A request is never lost to a registry outage: the review waits for it to draw.
                Err(ServiceError::Unavailable(why)) if !req.validate_only => {
                    tracing::warn!(project = %new.project_id, %why, "registry unreachable; the review is created and its panel checked when drawn");
                }
                other => other?,
            }
        }
        if req.validate_only {
            return Ok(None);
        }
        self.insert_review(caller, &new, &deadline).await.map(Some)
    }

    /// The deadline counts from office's acceptance, whenever the request arrives.
    async fn deadline(
        &self,
        stage: pb::ReviewStage,
        accepted: DateTime<Utc>,
    ) -> ServiceResult<Deadline> {
        let request_date = accepted.with_timezone(&cst()).date_naive();
        let working_days = self.deadline_working_days(stage);
        let (date, calendar_version) = View::default()
            .add_working_days(&self.db, request_date, working_days)
            .await?;
        Ok(Deadline {
            request_date,
            working_days,
            date,
            calendar_version,
        })
    }

    pub(crate) fn deadline_working_days(&self, stage: pb::ReviewStage) -> u32 {
        self.policy
            .deadline_working_days
            .get(stage.as_stored())
            .copied()
            .unwrap_or(5)
    }

    async fn insert_review(
        &self,
        caller: &Caller,
        new: &NewReview,
        deadline: &Deadline,
    ) -> ServiceResult<ReviewRow> {
        let req = &new.request;
        let id = if req.review_id.is_empty() {
            format!("rv-{}", uuid::Uuid::now_v7().simple())
        } else {
            req.review_id.clone()
        };
        let mut tx = self.begin().await?;
        // `version` is an unused column of the first schema; it is written once, as 1.
        let inserted = sqlx::query(
            "INSERT INTO reviews (id, request_key, project_id, stage, state, panel, excluded_organizations, request_date, deadline, \
             calendar_version, chair_expert_id, meeting, conclusion, stall_reason, version, event_count, create_time, applicant, \
             requester, request_hash, accept_time, paused_from, cancel_reason, wake_at) \
             VALUES ($1, $1, $2, $3, $14, $4, $5, $6, $7, $8, NULL, NULL, NULL, '', 1, 0, $9, $10, $11, $12, $13, NULL, '', '') \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.clone())
        .bind(new.project_id.clone())
        .bind(new.stage.as_stored())
        .bind(to_json(&PanelRec::from_requirements(&req.panel)))
        .bind(to_json(&req.excluded_organizations))
        .bind(deadline.request_date.to_string())
        .bind(deadline.date.to_string())
        .bind(deadline.calendar_version.clone())
        .bind(to_stored(now()))
        .bind(req.applicant_organization.clone())
        .bind(caller.subject.clone())
        .bind(new.hash.clone())
        .bind(to_stored(new.accepted))
        // A review starts by drawing its panel.
        .bind(pb::ReviewState::Drawing.as_stored())
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            // The same id raced us and won: the same request gets its review, another is refused.
            drop(tx);
            return same_request(self.review(&id).await?, caller, &new.hash);
        }
        let Deadline {
            request_date,
            working_days: n,
            date,
            calendar_version: version,
        } = deadline;
        Self::event(
            &mut tx,
            &id,
            &caller.subject,
            "RequestReview",
            &format!("deadline {date} ({n} working days from {request_date}, calendar {version})"),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(review = %id, project = %new.project_id, stage = new.stage.as_stored(), deadline = %date, "review requested");
        self.review(&id).await
    }

    /// Asks the registry whether it would open this panel's draw: the registry alone knows its
    /// categories and pool. Its field violations come back under `field`.
    pub(crate) async fn check_with_registry(
        &self,
        project: &str,
        stage: pb::ReviewStage,
        panel: &[pb::PanelRequirement],
        excluded_organizations: &[String],
        meeting_date: NaiveDate,
        field: &str,
    ) -> ServiceResult<()> {
        let answer = self
            .registry
            .clone()
            .open_draw(epb::OpenDrawRequest {
                project: project.to_owned(),
                stage: stage as i32,
                requirements: panel.to_vec(),
                excluded_organizations: excluded_organizations.to_vec(),
                excluded_experts: Vec::new(),
                meeting_date: Some(govit_platform::time::date_to_proto(meeting_date)),
                supplements: String::new(),
                request_id: String::new(),
                validate_only: true,
            })
            .await;
        match answer {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::InvalidArgument => {
                let violations = panel_violations(&s, field);
                if violations.is_empty() {
                    Err(ServiceError::field(field, s.message()))
                } else {
                    Err(ServiceError::InvalidArgument(violations))
                }
            }
            Err(s) => Err(ServiceError::from_peer("expert registry", s)),
        }
    }
}

/// The registry's field names for a panel, as the caller of this service named them.
fn panel_violations(status: &tonic::Status, field: &str) -> Vec<FieldViolation> {
    field_violations(status)
        .into_iter()
        .map(|v| FieldViolation::new(v.field.replacen("requirements", field, 1), v.description))
        .collect()
}

/// The shape of a panel, before the registry judges its categories and pool.
pub fn check_panel_shape(v: &mut Violations, field: &str, panel: &[pb::PanelRequirement]) {
    v.panel_shape(field, panel);
}

/// What a review request asked for, as a hash: its id is bound to it.
fn request_hash(req: &pb::RequestReviewRequest) -> String {
    use prost::Message;
    use sha2::Digest;
    let canonical = pb::RequestReviewRequest {
        validate_only: false,
        ..req.clone()
    };
    hex::encode(sha2::Sha256::digest(canonical.encode_to_vec()))
}

/// The review a repeated request gets: its own, when the same caller asks the same again.
fn same_request(existing: ReviewRow, caller: &Caller, hash: &str) -> ServiceResult<ReviewRow> {
    if existing.requester == caller.subject && existing.request_hash == hash {
        Ok(existing)
    } else {
        Err(ServiceError::request_id_reused("review", &existing.name()))
    }
}
