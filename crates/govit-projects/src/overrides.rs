//! Office decisions over a review's: asked for with a reason, approved by a second office user
//! where the deployment requires it, then applied as the project's transition — the open review
//! cancelled, the act in the audit trail and in the registry's transparency log.

use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, Violations,
    time::{now, stored_to_timestamp, to_stored},
};
use govit_proto::{
    experts::v1 as epb,
    projects::v1::{self as pb, ReviewDecision, ReviewStage},
};
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{
    ProjectsService,
    lifecycle::{Action, state_name},
    outbox::Outgoing,
    store::{Extra, NewEvent, project_event},
    validation::{self as check},
};

const MIN_REASON_CHARS: usize = 10;
const MAX_REASON_CHARS: usize = 2000;
const PENDING: &str = "PENDING_APPROVAL";
const APPLIED: &str = "APPLIED";
const REJECTED: &str = "REJECTED";
const OVERRIDE_READERS: [Role; 3] = [Role::Office, Role::Supervisor, Role::Inspector];

fn internal(e: impl Into<anyhow::Error>) -> ServiceError {
    ServiceError::Internal(e.into())
}

/// An override as stored.
struct OverrideRow {
    id: String,
    project_code: String,
    stage: ReviewStage,
    decision: ReviewDecision,
    reason: String,
    review_id: Option<String>,
    state: String,
    requested_by: String,
    approved_by: Option<String>,
    create_time: String,
    apply_time: Option<String>,
    reason_salt: String,
}

impl OverrideRow {
    fn name(&self) -> String {
        format!("projects/{}/overrides/{}", self.project_code, self.id)
    }

    fn from_row(row: &sqlx::any::AnyRow) -> anyhow::Result<Self> {
        let stage: String = row.try_get(2)?;
        let decision: String = row.try_get(3)?;
        Ok(OverrideRow {
            id: row.try_get(0)?,
            project_code: row.try_get(1)?,
            stage: ReviewStage::from_short_name(&stage)
                .ok_or_else(|| anyhow::anyhow!("stored stage {stage:?} is unknown"))?,
            decision: ReviewDecision::from_short_name(&decision)
                .ok_or_else(|| anyhow::anyhow!("stored decision {decision:?} is unknown"))?,
            reason: row.try_get(4)?,
            review_id: row.try_get(5)?,
            state: row.try_get(6)?,
            requested_by: row.try_get(7)?,
            approved_by: row.try_get(8)?,
            create_time: row.try_get(9)?,
            apply_time: row.try_get(10)?,
            reason_salt: row.try_get(11)?,
        })
    }

    fn to_proto(&self) -> anyhow::Result<pb::ReviewOverride> {
        let state = match self.state.as_str() {
            PENDING => pb::ReviewOverrideState::PendingApproval,
            APPLIED => pb::ReviewOverrideState::Applied,
            REJECTED => pb::ReviewOverrideState::Rejected,
            other => anyhow::bail!("stored override state {other:?} is unknown"),
        };
        Ok(pb::ReviewOverride {
            name: self.name(),
            stage: self.stage as i32,
            decision: self.decision as i32,
            reason: self.reason.clone(),
            review: self
                .review_id
                .as_ref()
                .map(|id| format!("reviews/{id}"))
                .unwrap_or_default(),
            state: state as i32,
            requested_by: self.requested_by.clone(),
            approved_by: self.approved_by.clone().unwrap_or_default(),
            create_time: Some(stored_to_timestamp(&self.create_time)?),
            apply_time: self
                .apply_time
                .as_deref()
                .map(stored_to_timestamp)
                .transpose()?,
            reason_salt: self.reason_salt.clone(),
        })
    }
}

const COLUMNS: &str = "id, project_code, stage, decision, reason, review_id, state, requested_by, approved_by, create_time, apply_time, reason_salt";

impl ProjectsService {
    pub(crate) async fn request_override(
        &self,
        caller: &Caller,
        req: pb::OverrideReviewOutcomeRequest,
    ) -> ServiceResult<pb::ReviewOverride> {
        let mut v = Violations::new();
        let code = check::parse_project_name("name", &req.name);
        if code.is_err() {
            v.add("name", "must be projects/{code}, e.g. projects/2026-0007");
        }
        let expected = check::etag("etag", &req.etag);
        if expected.is_err() {
            v.add("etag", "is required: send the etag as read");
        }
        let stage = check::enum_value::<ReviewStage>(&mut v, "stage", req.stage, false);
        let decision = check::enum_value::<ReviewDecision>(&mut v, "decision", req.decision, false);
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
        let reason = req.reason.trim();
        check::text(&mut v, "reason", reason, MAX_REASON_CHARS);
        // The audit trail keeps it for good: no ID or phone numbers in it.
        if let Some(problem) = govit_platform::validate::personal_data_problem(reason) {
            v.add("reason", problem);
        }
        if reason.chars().count() < MIN_REASON_CHARS {
            v.add(
                "reason",
                format!("must say why office decides instead of the panel, at least {MIN_REASON_CHARS} characters"),
            );
        }
        v.finish()?;
        let (Ok(code), Ok(expected), Some(stage), Some(decision)) =
            (code, expected, stage, decision)
        else {
            return Err(ServiceError::field("stage", "is required"));
        };
        let action = Action::OverrideOutcome(stage, decision);
        caller.require(action.roles())?;
        let row = self.visible_project(caller, &code).await?;
        if expected != row.version {
            return Err(ServiceError::stale_etag(&row.name()));
        }
        let from = row.state().map_err(internal)?;
        if !action.sources().contains(&from) {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                row.name(),
                format!(
                    "{} is {}; a {} decision cannot be made for it",
                    row.name(),
                    state_name(from),
                    stage.short_name()
                ),
            ));
        }
        // A pending override the project has moved past (another state, another review) is
        // overtaken and blocks nothing.
        self.reject_overtaken(&code, row.review.as_deref(), from, caller)
            .await?;
        if self.pending_override(&code).await?.is_some() {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                row.name(),
                format!("an override of {} waits for approval already", row.name()),
            ));
        }
        let id = format!("ov-{}", uuid::Uuid::now_v7().simple());
        let at = to_stored(now());
        let mut tx = self.store.db.begin_write().await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO review_overrides ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, $9, NULL, $10)"
        )))
        .bind(id.clone())
        .bind(code.clone())
        .bind(stage.short_name())
        .bind(decision.short_name())
        .bind(reason.to_owned())
        .bind(row.review.clone())
        .bind(PENDING)
        .bind(caller.subject.clone())
        .bind(at.clone())
        .bind(uuid::Uuid::new_v4().simple().to_string())
        .execute(&mut *tx)
        .await?;
        let name = format!("projects/{code}/overrides/{id}");
        project_event(
            &mut tx,
            &code,
            &at,
            caller,
            &NewEvent {
                action: "OverrideReviewOutcomeRequested".into(),
                changed_fields: vec![name.clone(), decision.short_name().into()],
                reason: reason.to_owned(),
                ..NewEvent::default()
            },
        )
        .await?;
        tx.commit().await?;
        tracing::info!(project = %code, r#override = %id, "review override requested");
        let ov = self.override_row(&code, &id).await?;
        if self.policy.override_approvers <= 1 {
            return self.apply_override(caller, ov, None).await;
        }
        ov.to_proto().map_err(internal)
    }

    pub(crate) async fn approve_override(
        &self,
        caller: &Caller,
        req: pb::ApproveReviewOverrideRequest,
    ) -> ServiceResult<pb::ReviewOverride> {
        let (code, id) = parse_override(&req.name)?;
        caller.require(&[Role::Office])?;
        let ov = self.override_row(&code, &id).await?;
        if ov.state != PENDING {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                req.name.clone(),
                format!("{} took effect already", req.name),
            ));
        }
        if ov.requested_by == caller.subject {
            return Err(ServiceError::PermissionDenied(
                "an override is approved by a second office user, not by who asked for it".into(),
            ));
        }
        // What was asked must still be what would happen: the same review, a state it fits.
        let row = self.visible_project(caller, &code).await?;
        let from = row.state().map_err(internal)?;
        if row.review != ov.review_id
            || !Action::OverrideOutcome(ov.stage, ov.decision)
                .sources()
                .contains(&from)
        {
            self.reject_overtaken(&code, row.review.as_deref(), from, caller)
                .await?;
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                req.name.clone(),
                format!(
                    "{} was overtaken: the project is {} with review {:?} now",
                    req.name,
                    state_name(from),
                    row.review
                ),
            ));
        }
        self.apply_override(caller, ov, Some(caller.subject.clone()))
            .await
    }

    pub(crate) async fn reject_override(
        &self,
        caller: &Caller,
        req: pb::RejectReviewOverrideRequest,
    ) -> ServiceResult<pb::ReviewOverride> {
        let (code, id) = parse_override(&req.name)?;
        caller.require(&[Role::Office])?;
        let ov = self.override_row(&code, &id).await?;
        let mut tx = self.store.db.begin_write().await?;
        let done = sqlx::query(
            "UPDATE review_overrides SET state = 'REJECTED', approved_by = $1, apply_time = $2 WHERE id = $3 AND state = 'PENDING_APPROVAL'",
        )
        .bind(caller.subject.clone())
        .bind(to_stored(now()))
        .bind(id.clone())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                req.name.clone(),
                format!("{} is {} already", req.name, ov.state),
            ));
        }
        project_event(
            &mut tx,
            &code,
            &to_stored(now()),
            caller,
            &NewEvent {
                action: "RejectReviewOverride".into(),
                changed_fields: vec![req.name.clone()],
                ..NewEvent::default()
            },
        )
        .await?;
        tx.commit().await?;
        self.override_row(&code, &id)
            .await?
            .to_proto()
            .map_err(internal)
    }

    /// Marks the project's pending override rejected when the project has moved past it.
    async fn reject_overtaken(
        &self,
        code: &str,
        review: Option<&str>,
        from: pb::ProjectState,
        caller: &Caller,
    ) -> ServiceResult<()> {
        let Some(id) = self.pending_override(code).await? else {
            return Ok(());
        };
        let ov = self.override_row(code, &id).await?;
        let fits = ov.review_id.as_deref() == review
            && Action::OverrideOutcome(ov.stage, ov.decision)
                .sources()
                .contains(&from);
        if fits {
            return Ok(());
        }
        sqlx::query("UPDATE review_overrides SET state = 'REJECTED', apply_time = $1 WHERE id = $2 AND state = 'PENDING_APPROVAL'")
            .bind(to_stored(now()))
            .bind(id.clone())
            .execute(&self.store.db.pool)
            .await?;
        tracing::info!(r#override = %id, by = %caller.subject, "pending review override overtaken");
        Ok(())
    }

    pub(crate) async fn list_overrides(
        &self,
        caller: &Caller,
        req: pb::ListReviewOverridesRequest,
    ) -> ServiceResult<pb::ListReviewOverridesResponse> {
        let code = check::parse_project_name("parent", &req.parent)?;
        caller.require(&OVERRIDE_READERS)?;
        self.visible_project(caller, &code).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM review_overrides WHERE project_code = $1 ORDER BY create_time, id"
        )))
        .bind(code)
        .fetch_all(&self.store.db.pool)
        .await?;
        let overrides = rows
            .iter()
            .map(|r| OverrideRow::from_row(r).and_then(|o| o.to_proto()))
            .collect::<anyhow::Result<_>>()
            .map_err(internal)?;
        Ok(pb::ListReviewOverridesResponse { overrides })
    }

    /// The project moves as the override says, in one transaction with the override's state,
    /// the open review's cancellation and the entry for the registry's log.
    async fn apply_override(
        &self,
        caller: &Caller,
        ov: OverrideRow,
        approved_by: Option<String>,
    ) -> ServiceResult<pb::ReviewOverride> {
        let name = ov.name();
        let mut extras = vec![Extra::ApplyOverride {
            id: ov.id.clone(),
            approved_by: approved_by.clone(),
        }];
        if self.registry.is_some() {
            extras.push(Extra::Outbox(Outgoing::RecordReviewOverride(
                epb::RecordReviewOverrideRequest {
                    r#override: name.clone(),
                    review: ov
                        .review_id
                        .as_ref()
                        .map(|id| format!("reviews/{id}"))
                        .unwrap_or_default(),
                    stage: ov.stage as i32,
                    decision: ov.decision as i32,
                    reason_sha256: {
                        let mut hasher = Sha256::new();
                        hasher.update(hex::decode(&ov.reason_salt).map_err(internal)?);
                        hasher.update(ov.reason.as_bytes());
                        hex::encode(hasher.finalize())
                    },
                    approvals: if approved_by.is_some() { 2 } else { 1 },
                },
            )));
        }
        let reason = format!("decided by office override {name}: {}", ov.reason);
        let event_name = name.clone();
        self.transition_with(
            caller,
            &format!("projects/{}", ov.project_code),
            "",
            Action::OverrideOutcome(ov.stage, ov.decision),
            Violations::new(),
            move |_, event, _| {
                event.reason = reason;
                event.changed_fields = vec![event_name];
                Ok(())
            },
            extras,
        )
        .await?;
        tracing::info!(r#override = %name, "review override applied");
        self.override_row(&ov.project_code, &ov.id)
            .await?
            .to_proto()
            .map_err(internal)
    }

    async fn override_row(&self, code: &str, id: &str) -> ServiceResult<OverrideRow> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM review_overrides WHERE project_code = $1 AND id = $2"
        )))
        .bind(code.to_owned())
        .bind(id.to_owned())
        .fetch_optional(&self.store.db.pool)
        .await?
        .ok_or_else(|| {
            ServiceError::not_found("review override", format!("projects/{code}/overrides/{id}"))
        })?;
        OverrideRow::from_row(&row).map_err(internal)
    }

    async fn pending_override(&self, code: &str) -> ServiceResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM review_overrides WHERE project_code = $1 AND state = 'PENDING_APPROVAL'",
        )
        .bind(code.to_owned())
        .fetch_optional(&self.store.db.pool)
        .await?)
    }
}

fn parse_override(name: &str) -> ServiceResult<(String, String)> {
    govit_platform::validate::child_ids(name, "projects", "overrides")
        .map(|(code, id)| (code.to_owned(), id.to_owned()))
        .ok_or_else(|| ServiceError::field("name", "must be projects/{code}/overrides/{id}"))
}
