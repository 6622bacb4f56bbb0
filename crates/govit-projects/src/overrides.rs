//! Office decisions over a review's: asked for with a reason, approved by a second office user
//! where the deployment requires it, then applied as the project's transition — the open review
//! cancelled, the act in the audit trail and in the registry's transparency log. The override's
//! own machine is [`OverrideEvent`].

use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, StateMachine, Violations,
    time::{now, stored_to_timestamp, to_stored},
};
use govit_proto::{
    StoredEnum,
    experts::v1 as epb,
    projects::v1::{self as pb, ReviewDecision, ReviewOverrideState, ReviewStage},
};
use sha2::{Digest, Sha256};

use crate::{
    ProjectsService,
    lifecycle::Action,
    model::ProjectCode,
    outbox::Outgoing,
    projects::{Change, Target},
    store::{Extra, NewEvent, OverrideEvent, OverrideRow, move_override, project_event},
    validation::{self as check},
};

const MIN_REASON_CHARS: usize = 10;
const MAX_REASON_CHARS: usize = 2000;
pub(crate) const OVERRIDE_READERS: [Role; 3] = [Role::Office, Role::Supervisor, Role::Inspector];

fn internal(e: impl Into<anyhow::Error>) -> ServiceError {
    ServiceError::Internal(e.into())
}

impl OverrideRow {
    fn name(&self) -> String {
        format!("projects/{}/overrides/{}", self.project_code, self.id)
    }

    fn review_name(&self) -> String {
        self.review_id
            .as_ref()
            .map(|id| format!("reviews/{id}"))
            .unwrap_or_default()
    }

    fn action(&self) -> Action {
        Action::OverrideOutcome(self.stage, self.decision)
    }

    fn to_proto(&self) -> anyhow::Result<pb::ReviewOverride> {
        Ok(pb::ReviewOverride {
            name: self.name(),
            stage: self.stage as i32,
            decision: self.decision as i32,
            reason: self.reason.clone(),
            review: self.review_name(),
            state: self.state as i32,
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

    /// The registry's log entry: the reason only as a salted hash, so the log holds no text.
    fn log_entry(&self, approvals: i32) -> anyhow::Result<epb::RecordReviewOverrideRequest> {
        let mut hasher = Sha256::new();
        hasher.update(hex::decode(&self.reason_salt)?);
        hasher.update(self.reason.as_bytes());
        Ok(epb::RecordReviewOverrideRequest {
            r#override: self.name(),
            review: self.review_name(),
            stage: self.stage as i32,
            decision: self.decision as i32,
            reason_sha256: hex::encode(hasher.finalize()),
            approvals,
            // The registry keeps one entry per override name, which makes the outbox's
            // redeliveries safe without an id.
            request_id: String::new(),
        })
    }
}

/// An override asked for: the project, its etag as read, and the decision with its reason.
pub(crate) struct OverrideRequest {
    code: ProjectCode,
    expected: i64,
    stage: ReviewStage,
    decision: ReviewDecision,
    reason: String,
}

impl TryFrom<pb::OverrideReviewOutcomeRequest> for OverrideRequest {
    type Error = ServiceError;

    fn try_from(req: pb::OverrideReviewOutcomeRequest) -> ServiceResult<Self> {
        let mut v = Violations::new();
        let code = check::parse_project_name("name", &req.name);
        if code.is_err() {
            v.add("name", "must be projects/{code}, e.g. projects/2026-0007");
        }
        let expected = check::etag("etag", &req.etag);
        if expected.is_err() {
            v.add("etag", "is required: send the etag as read");
        }
        let (stage, decision) = check::stage_decision(&mut v, req.stage, req.decision);
        check::decision_fits(&mut v, stage, decision);
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
        Ok(OverrideRequest {
            code,
            expected,
            stage,
            decision,
            reason: reason.to_owned(),
        })
    }
}

impl OverrideRequest {
    pub fn action(&self) -> Action {
        Action::OverrideOutcome(self.stage, self.decision)
    }
}

/// An override named by a request: `projects/{code}/overrides/{id}`.
pub(crate) struct OverrideName {
    name: String,
    code: ProjectCode,
    id: String,
}

impl TryFrom<String> for OverrideName {
    type Error = ServiceError;

    fn try_from(name: String) -> ServiceResult<Self> {
        let (code, id) = govit_platform::validate::child_ids(&name, "projects", "overrides")
            .map(|(code, id)| (ProjectCode::as_named(code), id.to_owned()))
            .ok_or_else(|| ServiceError::field("name", "must be projects/{code}/overrides/{id}"))?;
        Ok(OverrideName { name, code, id })
    }
}

impl ProjectsService {
    pub(crate) async fn ask_override(
        &self,
        caller: &Caller,
        req: OverrideRequest,
    ) -> ServiceResult<pb::ReviewOverride> {
        let action = req.action();
        let code = &req.code;
        let row = self.visible_project(caller, code).await?;
        if req.expected != row.version {
            return Err(ServiceError::stale_etag(&row.name()));
        }
        let from = row.state;
        if !action.sources().contains(&from) {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                row.name(),
                format!(
                    "{} is {}; a {} decision cannot be made for it",
                    row.name(),
                    from.as_stored(),
                    req.stage.as_stored()
                ),
            ));
        }
        // A pending override the project has moved past (another state, another review) is
        // overtaken and blocks nothing.
        self.reject_overtaken(code, row.review.as_deref(), from, caller)
            .await?;
        if self.store.pending_override(code).await?.is_some() {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                row.name(),
                format!("an override of {} waits for approval already", row.name()),
            ));
        }
        let ov = OverrideRow {
            id: format!("ov-{}", uuid::Uuid::now_v7().simple()),
            project_code: code.clone(),
            stage: req.stage,
            decision: req.decision,
            reason: req.reason,
            review_id: row.review.clone(),
            state: ReviewOverrideState::PendingApproval,
            requested_by: caller.subject.clone(),
            approved_by: None,
            create_time: to_stored(now()),
            apply_time: None,
            reason_salt: uuid::Uuid::new_v4().simple().to_string(),
        };
        self.insert_override(caller, &ov).await?;
        tracing::info!(project = %code, r#override = %ov.id, "review override requested");
        let ov = self.store.get_override(code, &ov.id).await?;
        if self.policy.override_approvers <= 1 {
            return self.apply_override(caller, ov, None).await;
        }
        ov.to_proto().map_err(internal)
    }

    async fn insert_override(&self, caller: &Caller, ov: &OverrideRow) -> ServiceResult<()> {
        let mut tx = self.store.db.begin_write().await?;
        self.store.insert_override(&mut tx, ov).await?;
        let event = NewEvent {
            action: "OverrideReviewOutcomeRequested".into(),
            changed_fields: vec![ov.name(), ov.decision.as_stored().into()],
            reason: ov.reason.clone(),
            ..NewEvent::default()
        };
        project_event(&mut tx, &ov.project_code, &ov.create_time, caller, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    pub(crate) async fn approve_override(
        &self,
        caller: &Caller,
        named: OverrideName,
    ) -> ServiceResult<pb::ReviewOverride> {
        let OverrideName { name, code, id } = &named;
        let ov = self.store.get_override(code, id).await?;
        if !OverrideEvent::Apply.allows(ov.state) {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                name,
                format!("{name} took effect already"),
            ));
        }
        if ov.requested_by == caller.subject {
            return Err(ServiceError::PermissionDenied(
                "an override is approved by a second office user, not by who asked for it".into(),
            ));
        }
        // What was asked must still be what would happen: the same review, a state it fits.
        let row = self.visible_project(caller, code).await?;
        let from = row.state;
        if row.review != ov.review_id || !ov.action().sources().contains(&from) {
            self.reject_overtaken(code, row.review.as_deref(), from, caller)
                .await?;
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                name,
                format!(
                    "{name} was overtaken: the project is {} with review {:?} now",
                    from.as_stored(),
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
        named: OverrideName,
    ) -> ServiceResult<pb::ReviewOverride> {
        let OverrideName { name, code, id } = &named;
        let ov = self.store.get_override(code, id).await?;
        let mut tx = self.store.db.begin_write().await?;
        let at = to_stored(now());
        let moved = move_override(
            &mut *tx,
            id,
            OverrideEvent::Reject,
            Some(caller.subject.clone()),
            &at,
        )
        .await?;
        if !moved {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                name,
                format!("{name} is {} already", ov.state.as_stored()),
            ));
        }
        let event = NewEvent {
            action: "RejectReviewOverride".into(),
            changed_fields: vec![name.to_owned()],
            ..NewEvent::default()
        };
        project_event(&mut tx, code, &at, caller, &event).await?;
        tx.commit().await?;
        self.store
            .get_override(code, id)
            .await?
            .to_proto()
            .map_err(internal)
    }

    /// Marks the project's pending override rejected when the project has moved past it.
    async fn reject_overtaken(
        &self,
        code: &ProjectCode,
        review: Option<&str>,
        from: pb::ProjectState,
        caller: &Caller,
    ) -> ServiceResult<()> {
        let Some(id) = self.store.pending_override(code).await? else {
            return Ok(());
        };
        let ov = self.store.get_override(code, &id).await?;
        if ov.review_id.as_deref() == review && ov.action().sources().contains(&from) {
            return Ok(());
        }
        let at = to_stored(now());
        move_override(&self.store.db.pool, &id, OverrideEvent::Overtake, None, &at).await?;
        tracing::info!(r#override = %id, by = %caller.subject, "pending review override overtaken");
        Ok(())
    }

    pub(crate) async fn project_overrides(
        &self,
        caller: &Caller,
        code: &ProjectCode,
    ) -> ServiceResult<Vec<pb::ReviewOverride>> {
        self.visible_project(caller, code).await?;
        self.store
            .list_overrides(code)
            .await?
            .iter()
            .map(OverrideRow::to_proto)
            .collect::<anyhow::Result<_>>()
            .map_err(internal)
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
            let approvals = if approved_by.is_some() { 2 } else { 1 };
            extras.push(Extra::Outbox(Outgoing::RecordReviewOverride(
                ov.log_entry(approvals).map_err(internal)?,
            )));
        }
        let reason = format!("decided by office override {name}: {}", ov.reason);
        let target = Target::without_etag(&ov.project_code);
        let event_name = name.clone();
        self.run_transition(
            caller,
            target,
            ov.action(),
            Change::new(move |_, event, _| {
                event.reason = reason;
                event.changed_fields = vec![event_name];
                Ok(())
            })
            .with(extras),
        )
        .await?;
        tracing::info!(r#override = %name, "review override applied");
        self.store
            .get_override(&ov.project_code, &ov.id)
            .await?
            .to_proto()
            .map_err(internal)
    }
}
