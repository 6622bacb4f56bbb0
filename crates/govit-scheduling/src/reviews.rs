//! Reviews: from the request through the drawn panel, invitations and replacements, the
//! meeting, opinions and the conclusion. Each change is one transaction with its review event,
//! its notifications and, where another service must hear of it, its outbox message.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, NaiveDate, Utc};
use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, Tx, Violations,
    error::{FieldViolation, field_violations, status_reason},
    time::{date_from_stored, now, to_stored},
    validate::is_code,
};
use govit_proto::{experts::v1 as epb, projects::v1 as ppb, scheduling::v1 as pb};
use sqlx::{AssertSqlSafe, Row};

use crate::{
    SchedulingService,
    calendar::View,
    model::{
        ConclusionRec, InvitationRow, MeetingRec, OpinionRow, PanelRec, ReviewRow, from_json,
        to_json,
    },
    notify::{self, Channel},
    outbox::Outgoing,
};

pub fn internal(e: impl Into<anyhow::Error>) -> ServiceError {
    ServiceError::Internal(e.into())
}

pub use govit_platform::time::{beijing as cst, beijing_today as today};

/// States the worker takes further on its own.
pub const OPEN_STATES: [&str; 4] = ["DRAWING", "AWAITING_WITNESS", "INVITING", "PANEL_CONFIRMED"];

/// States in which experts answer, meet and conclude.
const PANEL_STATES: [&str; 2] = ["INVITING", "PANEL_CONFIRMED"];

/// A short, fixed-length idempotency key for a call this service makes on a review's behalf.
fn derived_key(parts: &[&str]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(parts.join("/").as_bytes());
    format!("rq-{}", &hex::encode(digest)[..40])
}

/// The registry's field names for a panel, as the caller of this service named them.
fn panel_violations(status: &tonic::Status, field: &str) -> Vec<FieldViolation> {
    field_violations(status)
        .into_iter()
        .map(|v| FieldViolation::new(v.field.replacen("requirements", field, 1), v.description))
        .collect()
}

pub const REVIEW_READERS: [Role; 6] = [
    Role::Office,
    Role::Service,
    Role::Supervisor,
    Role::Inspector,
    Role::Applicant,
    Role::Expert,
];

impl SchedulingService {
    pub(crate) async fn review(&self, id: &str) -> ServiceResult<ReviewRow> {
        sqlx::query_as::<_, ReviewRow>("SELECT * FROM reviews WHERE id = $1")
            .bind(id.to_owned())
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| ServiceError::not_found("review", format!("reviews/{id}")))
    }

    pub(crate) async fn invitations(&self, id: &str) -> ServiceResult<Vec<InvitationRow>> {
        Ok(sqlx::query_as::<_, InvitationRow>(
            "SELECT * FROM invitations WHERE review_id = $1 ORDER BY seq, expert_id",
        )
        .bind(id.to_owned())
        .fetch_all(&self.db.pool)
        .await?)
    }

    /// Appends a review event inside `tx` and bumps the review's counter.
    pub(crate) async fn event(
        tx: &mut Tx,
        id: &str,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> ServiceResult<()> {
        let seq: i64 = sqlx::query(
            "UPDATE reviews SET event_count = event_count + 1 WHERE id = $1 RETURNING event_count",
        )
        .bind(id.to_owned())
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
        sqlx::query("INSERT INTO review_events (review_id, seq, at, actor, action, detail) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(id.to_owned())
            .bind(seq)
            .bind(to_stored(now()))
            .bind(actor.to_owned())
            .bind(action.to_owned())
            .bind(detail.to_owned())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Whether `caller` may read the review, and whether they may see who sits on its panel.
    pub(crate) fn visibility(
        caller: &Caller,
        r: &ReviewRow,
        invitations: &[InvitationRow],
    ) -> ServiceResult<bool> {
        caller.require(&REVIEW_READERS)?;
        match caller.role {
            Role::Applicant => {
                if r.applicant.is_empty()
                    || Some(r.applicant.as_str()) != caller.organization.as_deref()
                {
                    return Err(hidden(caller));
                }
                // The applicant learns the panel's names only when the meeting starts.
                Ok(r.meeting()
                    .map_err(internal)?
                    .is_some_and(|m| m.state == "SCHEDULED" && m.start <= to_stored(now())))
            }
            Role::Expert => {
                let serving = invitations.iter().any(|i| {
                    Some(i.expert_id.as_str()) == caller.expert.as_deref()
                        && (i.state == "PENDING" || i.state == "CONFIRMED")
                });
                if !serving {
                    return Err(hidden(caller));
                }
                Ok(true)
            }
            // Who was drawn is confidential to office, registry admins, inspectors and services.
            Role::Supervisor => Ok(false),
            _ => Ok(true),
        }
    }

    pub(crate) async fn view(&self, caller: &Caller, r: &ReviewRow) -> ServiceResult<pb::Review> {
        let invitations = self.invitations(&r.id).await?;
        let show = Self::visibility(caller, r, &invitations)?;
        // Who was drawn is confidential until the panel meets: every person who sees it
        // earlier is on record (the services' own reads are the system at work).
        let before_meeting = r
            .meeting()
            .map_err(internal)?
            .is_none_or(|m| m.state != "SCHEDULED" || m.start > to_stored(now()));
        if show && before_meeting && !invitations.is_empty() && caller.role != Role::Service {
            govit_platform::reads::record(&self.db, caller, "PanelBeforeMeeting", &r.name())
                .await?;
        }
        let draws: Vec<String> = sqlx::query_scalar(
            "SELECT draw_id FROM review_draws WHERE review_id = $1 ORDER BY seq",
        )
        .bind(r.id.clone())
        .fetch_all(&self.db.pool)
        .await?;
        let opinions = sqlx::query_as::<_, OpinionRow>(
            "SELECT * FROM opinions WHERE review_id = $1 ORDER BY submit_time, expert_id",
        )
        .bind(r.id.clone())
        .fetch_all(&self.db.pool)
        .await?;
        let ratings = sqlx::query("SELECT expert_id, rating, comment FROM ratings WHERE review_id = $1 ORDER BY expert_id")
            .bind(r.id.clone())
            .fetch_all(&self.db.pool)
            .await?
            .iter()
            .map(|x| -> Result<_, sqlx::Error> {
                Ok(pb::ExpertRating { expert_id: x.try_get(0)?, rating: x.try_get::<i64, _>(1)? as i32, comment: x.try_get(2)? })
            })
            .collect::<Result<Vec<_>, _>>()?;
        r.to_proto(
            draws.into_iter().map(|d| format!("draws/{d}")).collect(),
            &invitations,
            &opinions,
            ratings,
            show,
            today(),
        )
        .map_err(internal)
    }

    /// Creates the review the request describes, or returns the one this caller created with
    /// this very request before; with `validate_only`, checks it and answers None.
    pub(crate) async fn request_review(
        &self,
        caller: &Caller,
        req: pb::RequestReviewRequest,
    ) -> ServiceResult<Option<ReviewRow>> {
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
        caller.require(&[Role::Service, Role::Office])?;
        let hash = request_hash(&req);
        if !req.validate_only
            && !req.review_id.is_empty()
            && let Some(existing) = self.review_if_any(&req.review_id).await?
        {
            return same_request(existing, caller, &hash).map(Some);
        }
        // The deadline counts from office's acceptance, whenever the request arrives.
        let request_date = accepted.with_timezone(&cst()).date_naive();
        let n = self
            .policy
            .deadline_working_days
            .get(stage.short_name())
            .copied()
            .unwrap_or(5);
        let (deadline, version) = View::default()
            .add_working_days(&self.db, request_date, n)
            .await?;
        // The projects service checked this panel when office accepted the project: whatever
        // changed since (a category retired, the pool shrunk) is found when the draw is opened,
        // which stalls the review for office. A check, and anyone else's request, is judged by
        // the registry now.
        if req.validate_only || !caller.is(Role::Service) {
            let checked = self
                .check_with_registry(
                    &req.project,
                    stage,
                    &req.panel,
                    &req.excluded_organizations,
                    deadline,
                    "panel",
                )
                .await;
            match checked {
                // A request is never lost to a registry outage: the review waits for it to draw.
                Err(ServiceError::Unavailable(why)) if !req.validate_only => {
                    tracing::warn!(project = %project_id, %why, "registry unreachable; the review is created and its panel checked when drawn");
                }
                other => other?,
            }
        }
        if req.validate_only {
            return Ok(None);
        }
        let id = if req.review_id.is_empty() {
            format!("rv-{}", uuid::Uuid::now_v7().simple())
        } else {
            req.review_id.clone()
        };
        let panel: Vec<PanelRec> = req
            .panel
            .iter()
            .map(|p| PanelRec {
                category: p.category.clone(),
                count: p.count,
                alternates: p.alternates,
            })
            .collect();
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO reviews (id, request_key, project_id, stage, state, panel, excluded_organizations, request_date, deadline, \
             calendar_version, chair_expert_id, meeting, conclusion, stall_reason, version, event_count, create_time, applicant, \
             requester, request_hash, accept_time, paused_from, cancel_reason) \
             VALUES ($1, $1, $2, $3, 'DRAWING', $4, $5, $6, $7, $8, NULL, NULL, NULL, '', 1, 0, $9, $10, $11, $12, $13, NULL, '') \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(id.clone())
        .bind(project_id.clone())
        .bind(stage.short_name())
        .bind(to_json(&panel))
        .bind(to_json(&req.excluded_organizations))
        .bind(request_date.to_string())
        .bind(deadline.to_string())
        .bind(version.clone())
        .bind(to_stored(now()))
        .bind(req.applicant_organization.clone())
        .bind(caller.subject.clone())
        .bind(hash.clone())
        .bind(to_stored(accepted))
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            // The same id raced us and won: the same request gets its review, another is refused.
            drop(tx);
            return same_request(self.review(&id).await?, caller, &hash).map(Some);
        }
        Self::event(
            &mut tx,
            &id,
            &caller.subject,
            "RequestReview",
            &format!(
                "deadline {deadline} ({n} working days from {request_date}, calendar {version})"
            ),
        )
        .await?;
        tx.commit().await?;
        tracing::info!(review = %id, project = %project_id, stage = stage.short_name(), %deadline, "review requested");
        self.review(&id).await.map(Some)
    }

    /// Inside `tx`: whether the review is still in one of `states`, taking its row so that no
    /// cancellation or pause can slip in before the transaction commits.
    pub(crate) async fn still_in(tx: &mut Tx, id: &str, states: &[&str]) -> ServiceResult<bool> {
        let done = sqlx::query(AssertSqlSafe(format!(
            "UPDATE reviews SET version = version + 1 WHERE id = $1 AND state IN ({})",
            states
                .iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        )))
        .bind(id.to_owned())
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(crate) async fn review_if_any(&self, id: &str) -> ServiceResult<Option<ReviewRow>> {
        Ok(
            sqlx::query_as::<_, ReviewRow>("SELECT * FROM reviews WHERE id = $1")
                .bind(id.to_owned())
                .fetch_optional(&self.db.pool)
                .await?,
        )
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

    // ---- drawing and inviting (run by the worker and by AdvanceReview) ----

    /// Takes the review as far as it can go without a person: opens the draw, executes it once
    /// witnessed (or at once when no witness is required), invites whoever was drawn.
    pub(crate) async fn advance(&self, id: &str) -> ServiceResult<()> {
        let r = self.review(id).await?;
        if !OPEN_STATES.contains(&r.state.as_str()) {
            return Ok(());
        }
        let draws: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM review_draws WHERE review_id = $1 AND abandoned = 0",
        )
        .bind(id.to_owned())
        .fetch_one(&self.db.pool)
        .await?;
        if draws == 0 {
            // Each panel (the first, or one office amended) has its own draw, and its own key
            // at the registry, so a retried opening never opens two. The key counts only the
            // abandoned draws: a second pass racing this one, which sees the first's draw
            // already recorded, must still send the same key and get the same draw.
            let generation: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM review_draws WHERE review_id = $1 AND abandoned = 1",
            )
            .bind(id.to_owned())
            .fetch_one(&self.db.pool)
            .await?;
            let mut registry = self.registry.clone();
            let meeting_date = date_from_stored(&r.deadline).map_err(internal)?;
            let d = registry
                .open_draw(epb::OpenDrawRequest {
                    project: r.project_name(),
                    stage: r.stage().map_err(internal)? as i32,
                    requirements: r
                        .panel()
                        .map_err(internal)?
                        .into_iter()
                        .map(|p| epb::PanelRequirement {
                            category: p.category,
                            count: p.count,
                            alternates: p.alternates,
                        })
                        .collect(),
                    excluded_organizations: r.excluded().map_err(internal)?,
                    excluded_experts: Vec::new(),
                    meeting_date: Some(govit_platform::time::date_to_proto(meeting_date)),
                    supplements: String::new(),
                    request_id: derived_key(&[id, "main", &generation.to_string()]),
                    validate_only: false,
                })
                .await;
            let d = match d {
                Ok(d) => d.into_inner(),
                // The registry refused the request itself (its pool shrank since the panel
                // was checked, say): retrying cannot help; office must act.
                Err(s)
                    if matches!(
                        s.code(),
                        tonic::Code::FailedPrecondition | tonic::Code::InvalidArgument
                    ) =>
                {
                    let why = match status_reason(&s).as_deref() {
                        Some("INSUFFICIENT_EXPERTS") => {
                            format!("the pool cannot supply the panel: {}", s.message())
                        }
                        _ => format!("the registry refused the draw: {}", s.message()),
                    };
                    return self.stall(&r, &why).await;
                }
                Err(s) => return Err(ServiceError::from_peer("expert registry", s)),
            };
            self.add_draw(&r, &d.draw_id, "").await?;
        }
        let draws = sqlx::query("SELECT draw_id, seq, category, invited FROM review_draws WHERE review_id = $1 AND abandoned = 0 ORDER BY seq")
            .bind(id.to_owned())
            .fetch_all(&self.db.pool)
            .await?;
        for row in draws {
            let invited: i64 = row.try_get(3)?;
            if invited != 0 {
                continue;
            }
            let draw_id: String = row.try_get(0)?;
            let seq: i64 = row.try_get(1)?;
            let category: String = row.try_get(2)?;
            let mut registry = self.registry.clone();
            let mut d = registry
                .get_draw(epb::GetDrawRequest {
                    name: format!("draws/{draw_id}"),
                })
                .await
                .map_err(|s| ServiceError::from_peer("expert registry", s))?
                .into_inner();
            let state = epb::DrawState::try_from(d.state).unwrap_or_default();
            if matches!(state, epb::DrawState::Open | epb::DrawState::Witnessed) {
                if d.witness_required && !d.witnessed {
                    self.set_state(
                        &r,
                        &["DRAWING"],
                        "AWAITING_WITNESS",
                        "draw opened; waiting for witness entropy",
                    )
                    .await?;
                    continue;
                }
                d = registry
                    .execute_draw(epb::ExecuteDrawRequest {
                        name: d.name.clone(),
                    })
                    .await
                    .map_err(|s| ServiceError::from_peer("expert registry", s))?
                    .into_inner();
            }
            if epb::DrawState::try_from(d.state).unwrap_or_default() == epb::DrawState::Cancelled {
                self.stall(&r, &format!("draw {draw_id} was cancelled at the registry"))
                    .await?;
                continue;
            }
            if epb::DrawOutcome::try_from(d.outcome).unwrap_or_default()
                == epb::DrawOutcome::Insufficient
            {
                self.stall(
                    &r,
                    &format!("draw {draw_id} found too few eligible experts"),
                )
                .await?;
                continue;
            }
            self.invite_drawn(&r, &d, seq, &category).await?;
        }
        Ok(())
    }

    async fn add_draw(&self, r: &ReviewRow, draw_id: &str, category: &str) -> ServiceResult<()> {
        let mut tx = self.begin().await?;
        if !Self::still_in(&mut tx, &r.id, &OPEN_STATES).await? {
            // Cancelled or paused while the registry opened it: the draw is not this review's
            // any more, and must not wait at the registry.
            let cancel = epb::CancelDrawRequest {
                name: format!("draws/{draw_id}"),
                reason: "the review ended while the draw was opened".into(),
                reason_code: epb::DrawCancelReason::ReviewCancelled as i32,
            };
            govit_platform::outbox::enqueue(&mut tx, &Outgoing::CancelDraw(cancel)).await?;
            tx.commit().await?;
            return Ok(());
        }
        let seq: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM review_draws WHERE review_id = $1")
            .bind(r.id.clone())
            .fetch_one(&mut *tx)
            .await?;
        let exists =
            sqlx::query("SELECT 1 FROM review_draws WHERE review_id = $1 AND draw_id = $2")
                .bind(r.id.clone())
                .bind(draw_id.to_owned())
                .fetch_optional(&mut *tx)
                .await?;
        // A panel has one main draw: another, opened by a pass that lost a race, is cancelled
        // at the registry instead of recorded.
        let other_main = category.is_empty()
            && exists.is_none()
            && sqlx::query(
                "SELECT 1 FROM review_draws WHERE review_id = $1 AND category = '' AND abandoned = 0",
            )
            .bind(r.id.clone())
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
        if other_main {
            let cancel = epb::CancelDrawRequest {
                name: format!("draws/{draw_id}"),
                reason: "opened twice for one panel".into(),
                reason_code: epb::DrawCancelReason::Other as i32,
            };
            govit_platform::outbox::enqueue(&mut tx, &Outgoing::CancelDraw(cancel)).await?;
            tx.commit().await?;
            return Ok(());
        }
        if exists.is_none() {
            sqlx::query("INSERT INTO review_draws (review_id, draw_id, seq, category, invited) VALUES ($1, $2, $3, $4, 0)")
                .bind(r.id.clone())
                .bind(draw_id.to_owned())
                .bind(seq + 1)
                .bind(category.to_owned())
                .execute(&mut *tx)
                .await?;
            let what = if category.is_empty() {
                format!("draw {draw_id} opened")
            } else {
                format!("supplementary draw {draw_id} opened for {category}")
            };
            Self::event(&mut tx, &r.id, "scheduling", "DrawOpened", &what).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_state(
        &self,
        r: &ReviewRow,
        from: &[&str],
        to: &str,
        detail: &str,
    ) -> ServiceResult<()> {
        if !from.contains(&r.state.as_str()) {
            return Ok(());
        }
        let mut tx = self.begin().await?;
        let sql = format!(
            "UPDATE reviews SET state = $1, version = version + 1 WHERE id = $2 AND state IN ({})",
            from.iter()
                .map(|s| format!("'{s}'"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(to.to_owned())
            .bind(r.id.clone())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() > 0 {
            Self::event(
                &mut tx,
                &r.id,
                "scheduling",
                "StateChanged",
                &format!("{} → {to}: {detail}", r.state),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn stall(&self, r: &ReviewRow, reason: &str) -> ServiceResult<()> {
        let mut tx = self.begin().await?;
        // Only a review still under way stalls: one cancelled or paused meanwhile stays so.
        let stalled = sqlx::query(AssertSqlSafe(format!(
            "UPDATE reviews SET state = 'STALLED', stall_reason = $1, version = version + 1 WHERE id = $2 AND state IN ({})",
            OPEN_STATES.map(|s| format!("'{s}'")).join(", ")
        )))
        .bind(reason.to_owned())
        .bind(r.id.clone())
        .execute(&mut *tx)
        .await?;
        if stalled.rows_affected() == 0 {
            return Ok(());
        }
        Self::event(&mut tx, &r.id, "scheduling", "Stalled", reason).await?;
        notify::record(
            &mut tx,
            "office",
            Channel::Email,
            &format!(
                "Review {} of project {} stalled: {reason}",
                r.id, r.project_id
            ),
            &r.id,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Invites the experts an executed draw selected (all categories for the main draw, the
    /// one category of a supplementary draw).
    async fn invite_drawn(
        &self,
        r: &ReviewRow,
        d: &epb::Draw,
        seq: i64,
        category: &str,
    ) -> ServiceResult<()> {
        let mut tx = self.begin().await?;
        if !Self::still_in(&mut tx, &r.id, &OPEN_STATES).await? {
            return Ok(());
        }
        let claimed = sqlx::query(
            "UPDATE review_draws SET invited = 1 WHERE review_id = $1 AND seq = $2 AND invited = 0 AND abandoned = 0",
        )
        .bind(r.id.clone())
        .bind(seq)
        .execute(&mut *tx)
        .await?;
        if claimed.rows_affected() == 0 {
            return Ok(());
        }
        let mut first = None;
        for p in &d.panel {
            if !category.is_empty() && p.category != category {
                continue;
            }
            for expert in &p.selected {
                first.get_or_insert_with(|| expert.clone());
                self.invite(&mut tx, r, expert, &p.category, &d.draw_id)
                    .await?;
            }
        }
        if category.is_empty() {
            // The chair is by default the first selected expert.
            sqlx::query(
                "UPDATE reviews SET chair_expert_id = COALESCE(chair_expert_id, $1) WHERE id = $2",
            )
            .bind(first)
            .bind(r.id.clone())
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE reviews SET state = 'INVITING', version = version + 1 WHERE id = $1 AND state IN ('DRAWING', 'AWAITING_WITNESS', 'PANEL_CONFIRMED')")
            .bind(r.id.clone())
            .execute(&mut *tx)
            .await?;
        Self::event(
            &mut tx,
            &r.id,
            "scheduling",
            "Invited",
            &format!("draw {} executed; panel invited", d.draw_id),
        )
        .await?;
        tx.commit().await?;
        self.notify.notify_waiters();
        Ok(())
    }

    pub(crate) async fn invite(
        &self,
        tx: &mut Tx,
        r: &ReviewRow,
        expert: &str,
        category: &str,
        draw_id: &str,
    ) -> ServiceResult<()> {
        let respond_by = to_stored(now() + chrono::Duration::hours(self.policy.response_hours));
        let seq: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM invitations WHERE review_id = $1")
            .bind(r.id.clone())
            .fetch_one(&mut **tx)
            .await?;
        // A redelivered replacement invites nobody twice; ON CONFLICT keeps the transaction
        // usable on PostgreSQL, where a failed insert would abort it.
        let inserted = sqlx::query(
            "INSERT INTO invitations (review_id, expert_id, category, draw_id, seq, state, respond_by, decline_reason, reminded) \
             VALUES ($1, $2, $3, $4, $5, 'PENDING', $6, '', 0) ON CONFLICT (review_id, expert_id) DO NOTHING",
        )
        .bind(r.id.clone())
        .bind(expert.to_owned())
        .bind(category.to_owned())
        .bind(draw_id.to_owned())
        .bind(seq + 1)
        .bind(respond_by.clone())
        .execute(&mut **tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Ok(());
        }
        let deadline = &r.deadline;
        notify::record(
            tx,
            &format!("experts/{expert}"),
            Channel::Sms,
            &format!(
                "You are invited to the {} of project {} ({category}); the meeting is due by {deadline}. Please confirm or decline before {respond_by}.",
                r.stage.to_lowercase().replace('_', " "),
                r.project_id
            ),
            &r.id,
        )
        .await?;
        // Someone joining after the meeting was set is booked for it too.
        if let Some(m) = r
            .meeting()
            .map_err(internal)?
            .filter(|m| m.state == "SCHEDULED")
        {
            sqlx::query("INSERT INTO bookings (expert_id, review_id, start_time, end_time) VALUES ($1, $2, $3, $4) ON CONFLICT (expert_id, review_id) DO NOTHING")
                .bind(expert.to_owned())
                .bind(r.id.clone())
                .bind(m.start.clone())
                .bind(m.end.clone())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Marks a review PANEL_CONFIRMED once every category has its count confirmed.
    async fn check_panel(&self, tx: &mut Tx, r: &ReviewRow) -> ServiceResult<()> {
        let rows = sqlx::query("SELECT category, COUNT(*) FROM invitations WHERE review_id = $1 AND state = 'CONFIRMED' GROUP BY category")
            .bind(r.id.clone())
            .fetch_all(&mut **tx)
            .await?;
        let confirmed: BTreeMap<String, i64> = rows
            .iter()
            .map(|x| Ok((x.try_get(0)?, x.try_get(1)?)))
            .collect::<Result<_, sqlx::Error>>()?;
        let complete = r
            .panel()
            .map_err(internal)?
            .iter()
            .all(|p| confirmed.get(&p.category).copied().unwrap_or(0) >= i64::from(p.count));
        if complete {
            let done = sqlx::query("UPDATE reviews SET state = 'PANEL_CONFIRMED', version = version + 1 WHERE id = $1 AND state = 'INVITING'")
                .bind(r.id.clone())
                .execute(&mut **tx)
                .await?;
            if done.rows_affected() > 0 {
                Self::event(
                    tx,
                    &r.id,
                    "scheduling",
                    "PanelConfirmed",
                    "every panel member confirmed",
                )
                .await?;
            }
        }
        Ok(())
    }

    pub(crate) async fn respond(
        &self,
        caller: &Caller,
        req: pb::RespondToInvitationRequest,
    ) -> ServiceResult<InvitationRow> {
        let (review_id, expert) = parse_invitation(&req.name)?;
        if !req.accept && req.decline_reason.trim().is_empty() {
            return Err(ServiceError::field(
                "decline_reason",
                "is required when declining",
            ));
        }
        let mut v = Violations::new();
        v.optional_text("decline_reason", &req.decline_reason, 500);
        v.finish()?;
        caller.require(&[Role::Expert])?;
        if caller.expert.as_deref() != Some(expert.as_str()) {
            return Err(ServiceError::PermissionDenied(
                "experts answer only their own invitations".into(),
            ));
        }
        // A review that does not exist and one without this expert answer alike.
        let r = self
            .review(&review_id)
            .await
            .map_err(|_| ServiceError::not_found("invitation", req.name.clone()))?;
        let invitation = self
            .invitations(&review_id)
            .await?
            .into_iter()
            .find(|i| i.expert_id == expert)
            .ok_or_else(|| ServiceError::not_found("invitation", req.name.clone()))?;
        if invitation.state == "PENDING" && !PANEL_STATES.contains(&r.state.as_str()) {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                r.name(),
                format!(
                    "{} is {}; invitations wait until it goes on",
                    r.name(),
                    r.state
                ),
            ));
        }
        if invitation.state != "PENDING" {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                req.name.clone(),
                format!("{} is already {}", req.name, invitation.state),
            ));
        }
        if invitation.respond_by < to_stored(now()) {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                req.name.clone(),
                format!("the response deadline {} has passed", invitation.respond_by),
            ));
        }
        let mut tx = self.begin().await?;
        if !Self::still_in(&mut tx, &review_id, &PANEL_STATES).await? {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                r.name(),
                format!("{} is no longer taking answers", r.name()),
            ));
        }
        let to = if req.accept { "CONFIRMED" } else { "DECLINED" };
        let done = sqlx::query("UPDATE invitations SET state = $1, decline_reason = $2 WHERE review_id = $3 AND expert_id = $4 AND state = 'PENDING'")
            .bind(to)
            .bind(req.decline_reason.trim().to_owned())
            .bind(review_id.clone())
            .bind(expert.clone())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(ServiceError::Aborted(format!(
                "{} was answered concurrently",
                req.name
            )));
        }
        if req.accept {
            Self::event(
                &mut tx,
                &review_id,
                &caller.subject,
                "InvitationConfirmed",
                &expert,
            )
            .await?;
            self.check_panel(&mut tx, &r).await?;
        } else {
            Self::event(
                &mut tx,
                &review_id,
                &caller.subject,
                "InvitationDeclined",
                &format!("{expert}: {}", req.decline_reason.trim()),
            )
            .await?;
            Self::queue_replacement(&mut tx, &invitation, epb::ReplacementReason::Declined).await?;
        }
        tx.commit().await?;
        let updated = self
            .invitations(&review_id)
            .await?
            .into_iter()
            .find(|i| i.expert_id == expert);
        updated.ok_or_else(|| ServiceError::not_found("invitation", req.name.clone()))
    }

    /// Asks the registry (through the outbox) for the next alternate in the expert's place.
    pub(crate) async fn queue_replacement(
        tx: &mut Tx,
        i: &InvitationRow,
        reason: epb::ReplacementReason,
    ) -> ServiceResult<()> {
        let request = epb::ReplaceExpertRequest {
            name: format!("draws/{}", i.draw_id),
            category: i.category.clone(),
            expert_id: i.expert_id.clone(),
            reason: reason as i32,
            // The registry's key for this one replacement, so a redelivery replaces once.
            request_id: uuid::Uuid::now_v7().simple().to_string(),
        };
        govit_platform::outbox::enqueue(tx, &Outgoing::ReplaceExpert(request)).await?;
        Ok(())
    }

    /// Runs a replacement message: the next alternate, or a supplementary draw when the
    /// category's alternates are used up.
    pub(crate) async fn replace(
        &self,
        request: epb::ReplaceExpertRequest,
    ) -> ServiceResult<Replacement> {
        let draw_id = request
            .name
            .strip_prefix("draws/")
            .unwrap_or_default()
            .to_owned();
        let Some(of) =
            sqlx::query("SELECT review_id, abandoned FROM review_draws WHERE draw_id = $1")
                .bind(draw_id.clone())
                .fetch_optional(&self.db.pool)
                .await?
        else {
            return Err(ServiceError::not_found("review draw", request.name.clone()));
        };
        let review_id: String = of.try_get(0)?;
        let review_id = review_id.as_str();
        // An amended panel's old draw invites nobody any more.
        if of.try_get::<i64, _>(1)? != 0 {
            return Ok(Replacement::Done);
        }
        let r = self.review(review_id).await?;
        match r.state.as_str() {
            // Nobody is to be invited to a review that has ended.
            "CANCELLED" | "CONCLUDED" => return Ok(Replacement::Done),
            "PAUSED" => return Ok(Replacement::Paused),
            _ => {}
        }
        let (category, expert) = (request.category.clone(), request.expert_id.clone());
        let mut registry = self.registry.clone();
        let result = registry.replace_expert(request.clone()).await;
        match result {
            Ok(d) => {
                let d = d.into_inner();
                let came_in = d
                    .replacements
                    .iter()
                    .rev()
                    .find(|x| x.category == category && x.left_expert_id == expert)
                    .map(|x| x.replacement_expert_id.clone())
                    .ok_or_else(|| {
                        internal(anyhow::anyhow!(
                            "the registry reports no replacement for {expert}"
                        ))
                    })?;
                let mut tx = self.begin().await?;
                // The review may have ended or paused while the registry answered.
                if !Self::still_in(&mut tx, review_id, &OPEN_STATES).await? {
                    return Ok(Replacement::Done);
                }
                self.invite(&mut tx, &r, &came_in, &category, &draw_id)
                    .await?;
                sqlx::query("UPDATE reviews SET chair_expert_id = $1 WHERE id = $2 AND chair_expert_id = $3")
                    .bind(came_in.clone())
                    .bind(review_id.to_owned())
                    .bind(expert.clone())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("UPDATE reviews SET state = 'INVITING', version = version + 1 WHERE id = $1 AND state = 'PANEL_CONFIRMED'")
                    .bind(review_id.to_owned())
                    .execute(&mut *tx)
                    .await?;
                Self::event(
                    &mut tx,
                    review_id,
                    "scheduling",
                    "ExpertReplaced",
                    &format!("{category}: {expert} → {came_in} (alternate)"),
                )
                .await?;
                notify::record(&mut tx, "office", Channel::Email, &format!("Review {review_id}: {expert} was replaced by alternate {came_in} ({category})"), review_id).await?;
                tx.commit().await?;
                self.notify.notify_waiters();
                Ok(Replacement::Done)
            }
            Err(status) if status_reason(&status).as_deref() == Some("ALTERNATES_EXHAUSTED") => {
                let d = registry
                    .open_draw(epb::OpenDrawRequest {
                        project: r.project_name(),
                        stage: r.stage().map_err(internal)? as i32,
                        requirements: vec![epb::PanelRequirement {
                            category: category.clone(),
                            count: 1,
                            alternates: 1,
                        }],
                        excluded_organizations: r.excluded().map_err(internal)?,
                        // Everyone the review invited, from any of its draws, is left out
                        // (MANUAL); the registry adds the parent draw's experts (ALREADY_DRAWN).
                        excluded_experts: self
                            .invitations(review_id)
                            .await?
                            .into_iter()
                            .map(|i| epb::ExcludedExpert {
                                expert_id: i.expert_id,
                                reason: "already invited to this review".into(),
                            })
                            .collect(),
                        meeting_date: Some(govit_platform::time::date_to_proto(
                            date_from_stored(&r.deadline).map_err(internal)?,
                        )),
                        supplements: format!("draws/{draw_id}"),
                        request_id: derived_key(&[&request.request_id, "supplement"]),
                        validate_only: false,
                    })
                    .await;
                let d = match d {
                    Ok(d) => d.into_inner(),
                    Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                        self.stall(
                            &r,
                            &format!(
                                "no supplementary {category} expert can be drawn: {}",
                                s.message()
                            ),
                        )
                        .await?;
                        return Ok(Replacement::Done);
                    }
                    Err(s) => return Err(ServiceError::from_peer("expert registry", s)),
                };
                self.add_draw(&r, &d.draw_id, &category).await?;
                self.advance(review_id).await?;
                Ok(Replacement::Done)
            }
            Err(status) => Err(ServiceError::from_peer("expert registry", status)),
        }
    }

    /// Invitations past their response deadline lapse and are replaced.
    pub(crate) async fn lapse_overdue(&self) -> ServiceResult<usize> {
        // A paused review's invitations wait; they get a fresh window when it resumes.
        let overdue = sqlx::query_as::<_, InvitationRow>(
            "SELECT i.* FROM invitations i JOIN reviews r ON r.id = i.review_id \
             WHERE i.state = 'PENDING' AND i.respond_by < $1 AND r.state IN ('INVITING', 'PANEL_CONFIRMED')",
        )
        .bind(to_stored(now()))
        .fetch_all(&self.db.pool)
        .await?;
        for i in &overdue {
            let mut tx = self.begin().await?;
            // Paused or ended since it was read: the invitation does not lapse.
            if !Self::still_in(&mut tx, &i.review_id, &PANEL_STATES).await? {
                continue;
            }
            let done = sqlx::query("UPDATE invitations SET state = 'LAPSED' WHERE review_id = $1 AND expert_id = $2 AND state = 'PENDING'")
                .bind(i.review_id.clone())
                .bind(i.expert_id.clone())
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 1 {
                Self::event(
                    &mut tx,
                    &i.review_id,
                    "scheduling",
                    "InvitationLapsed",
                    &i.expert_id,
                )
                .await?;
                Self::queue_replacement(&mut tx, i, epb::ReplacementReason::Unreachable).await?;
            }
            tx.commit().await?;
        }
        Ok(overdue.len())
    }

    /// Reminders before the response deadline (when half the time is gone) and the meeting
    /// (within a day), each sent once.
    pub(crate) async fn remind(&self) -> ServiceResult<()> {
        let soon = to_stored(now() + chrono::Duration::hours(self.policy.response_hours / 2));
        let due = sqlx::query_as::<_, InvitationRow>("SELECT i.* FROM invitations i JOIN reviews r ON r.id = i.review_id \
             WHERE i.state = 'PENDING' AND i.reminded = 0 AND i.respond_by < $1 AND r.state IN ('INVITING', 'PANEL_CONFIRMED')")
            .bind(soon)
            .fetch_all(&self.db.pool)
            .await?;
        for i in due {
            let mut tx = self.begin().await?;
            let done = sqlx::query("UPDATE invitations SET reminded = 1 WHERE review_id = $1 AND expert_id = $2 AND reminded = 0")
                .bind(i.review_id.clone())
                .bind(i.expert_id.clone())
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 1 {
                notify::record(
                    &mut tx,
                    &format!("experts/{}", i.expert_id),
                    Channel::Voice,
                    &format!(
                        "Reminder: please answer the invitation to review {} before {}.",
                        i.review_id, i.respond_by
                    ),
                    &i.review_id,
                )
                .await?;
            }
            tx.commit().await?;
        }
        let reviews = sqlx::query_as::<_, ReviewRow>("SELECT * FROM reviews WHERE state IN ('INVITING', 'PANEL_CONFIRMED') AND meeting IS NOT NULL")
            .fetch_all(&self.db.pool)
            .await?;
        let within_a_day = to_stored(now() + chrono::Duration::hours(24));
        for r in reviews {
            let Some(mut m) = r.meeting().map_err(internal)? else {
                continue;
            };
            if m.state != "SCHEDULED"
                || m.start > within_a_day
                || m.change_reason.ends_with("[reminded]")
            {
                continue;
            }
            m.change_reason = format!("{} [reminded]", m.change_reason).trim().to_owned();
            let mut tx = self.begin().await?;
            let done =
                sqlx::query("UPDATE reviews SET meeting = $1 WHERE id = $2 AND meeting = $3")
                    .bind(to_json(&m))
                    .bind(r.id.clone())
                    .bind(r.meeting.clone())
                    .execute(&mut *tx)
                    .await?;
            if done.rows_affected() == 1 {
                for i in self
                    .invitations(&r.id)
                    .await?
                    .iter()
                    .filter(|i| i.state == "CONFIRMED")
                {
                    notify::record(
                        &mut tx,
                        &format!("experts/{}", i.expert_id),
                        Channel::Sms,
                        &format!(
                            "Reminder: the review meeting of project {} starts at {} at {}.",
                            r.project_id,
                            m.start,
                            if m.venue.is_empty() {
                                &m.online_link
                            } else {
                                &m.venue
                            }
                        ),
                        &r.id,
                    )
                    .await?;
                }
            }
            tx.commit().await?;
        }
        Ok(())
    }

    // ---- meetings ----

    pub(crate) async fn schedule_meeting(
        &self,
        caller: &Caller,
        req: pb::ScheduleMeetingRequest,
    ) -> ServiceResult<ReviewRow> {
        let id = parse_review(&req.name)?;
        let mut v = Violations::new();
        let start = req
            .start_time
            .as_ref()
            .and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32));
        let end = req
            .end_time
            .as_ref()
            .and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32));
        if start.is_none() {
            v.add("start_time", "is required");
        }
        if end.is_none() {
            v.add("end_time", "is required");
        }
        if req.venue.trim().is_empty() && req.online_link.trim().is_empty() {
            v.add("venue", "a venue or an online link is required");
        }
        for (field, value) in [
            ("venue", &req.venue),
            ("online_link", &req.online_link),
            ("reason", &req.reason),
        ] {
            v.optional_text(field, value, 500);
        }
        let r = self.review(&id).await?;
        let mut calendar = View::default();
        if let (Some(s), Some(e)) = (start, end) {
            let (sd, ed) = (
                s.with_timezone(&cst()).date_naive(),
                e.with_timezone(&cst()).date_naive(),
            );
            if e <= s {
                v.add("end_time", "must be after start_time");
            } else if sd != ed {
                v.add(
                    "end_time",
                    "must be on the same day as start_time (Beijing time)",
                );
            }
            if s <= Utc::now() {
                v.add("start_time", "must be in the future");
            }
            let deadline = date_from_stored(&r.deadline).map_err(internal)?;
            if sd > deadline {
                v.add(
                    "start_time",
                    format!("{sd} is after the review's deadline, {deadline}"),
                );
            }
            match calendar.kind(&self.db, sd).await {
                Ok((kind, name)) if !kind.is_working() => v.add(
                    "start_time",
                    format!(
                        "{sd} is not a working day{}",
                        if name.is_empty() {
                            String::new()
                        } else {
                            format!(" ({name})")
                        }
                    ),
                ),
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        let had_meeting = r
            .meeting()
            .map_err(internal)?
            .is_some_and(|m| m.state == "SCHEDULED");
        if had_meeting && req.reason.trim().is_empty() {
            v.add("reason", "is required to move a scheduled meeting");
        }
        v.finish()?;
        caller.require(&[Role::Office])?;
        if !["INVITING", "PANEL_CONFIRMED"].contains(&r.state.as_str()) {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                r.name(),
                format!("{} is {}; a meeting needs a drawn panel", r.name(), r.state),
            ));
        }
        let (start, end) = (start.unwrap_or_default(), end.unwrap_or_default());
        let experts: Vec<String> = {
            let mut e: Vec<String> = self
                .invitations(&id)
                .await?
                .into_iter()
                .filter(|i| i.state == "PENDING" || i.state == "CONFIRMED")
                .map(|i| i.expert_id)
                .collect();
            e.sort();
            e
        };
        // Experts' own unavailable periods, as the registry keeps them.
        let day = start.with_timezone(&cst()).date_naive().to_string();
        let mut registry = self.registry.clone();
        for expert in &experts {
            let e = registry
                .get_expert(epb::GetExpertRequest {
                    name: format!("experts/{expert}"),
                })
                .await
                .map_err(|s| ServiceError::from_peer("expert registry", s))?
                .into_inner();
            let away = e.unavailable_periods.iter().any(|p| {
                let d = |x: &Option<govit_proto::google::r#type::Date>| {
                    x.as_ref()
                        .map(|x| format!("{:04}-{:02}-{:02}", x.year, x.month, x.day))
                        .unwrap_or_default()
                };
                d(&p.start_date) <= day && day <= d(&p.end_date)
            });
            if away {
                return Err(ServiceError::precondition(
                    "EXPERT_UNAVAILABLE",
                    format!("experts/{expert}"),
                    format!("{expert} has declared {day} unavailable"),
                ));
            }
        }
        let (s, e) = (to_stored(start), to_stored(end));
        let mut tx = self.begin().await?;
        // Registry calls took time: the review must still be going on as the bookings go in.
        if !Self::still_in(&mut tx, &id, &PANEL_STATES).await? {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                r.name(),
                format!("{} is no longer under way", r.name()),
            ));
        }
        // Lock each expert's calendar (in a fixed order), then look for overlaps: two racing
        // requests for one expert are serialised here by the database.
        for expert in &experts {
            sqlx::query("INSERT INTO expert_locks (expert_id, touched) VALUES ($1, $2) ON CONFLICT (expert_id) DO UPDATE SET touched = excluded.touched")
                .bind(expert.clone())
                .bind(to_stored(now()))
                .execute(&mut *tx)
                .await?;
        }
        for expert in &experts {
            let clash = sqlx::query("SELECT review_id FROM bookings WHERE expert_id = $1 AND review_id <> $2 AND start_time < $3 AND end_time > $4 LIMIT 1")
                .bind(expert.clone())
                .bind(id.clone())
                .bind(e.clone())
                .bind(s.clone())
                .fetch_optional(&mut *tx)
                .await?;
            if let Some(other) = clash {
                let other: String = other.try_get(0)?;
                return Err(ServiceError::precondition(
                    "DOUBLE_BOOKED",
                    format!("experts/{expert}"),
                    format!(
                        "{expert} is already booked for the meeting of review {other} at that time"
                    ),
                ));
            }
        }
        sqlx::query("DELETE FROM bookings WHERE review_id = $1")
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
        for expert in &experts {
            sqlx::query("INSERT INTO bookings (expert_id, review_id, start_time, end_time) VALUES ($1, $2, $3, $4)")
                .bind(expert.clone())
                .bind(id.clone())
                .bind(s.clone())
                .bind(e.clone())
                .execute(&mut *tx)
                .await?;
        }
        let meeting = MeetingRec {
            start: s.clone(),
            end: e.clone(),
            venue: req.venue.trim().to_owned(),
            online_link: req.online_link.trim().to_owned(),
            state: "SCHEDULED".into(),
            change_reason: req.reason.trim().to_owned(),
        };
        sqlx::query("UPDATE reviews SET meeting = $1, version = version + 1 WHERE id = $2")
            .bind(to_json(&meeting))
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
        let action = if had_meeting {
            "MeetingRescheduled"
        } else {
            "MeetingScheduled"
        };
        Self::event(
            &mut tx,
            &id,
            &caller.subject,
            action,
            &format!("{s} to {e}; {}", req.reason.trim()),
        )
        .await?;
        let place = if meeting.venue.is_empty() {
            meeting.online_link.clone()
        } else {
            meeting.venue.clone()
        };
        for expert in &experts {
            let text = if had_meeting {
                format!(
                    "The review meeting of project {} moved to {s} – {e} at {place}: {}",
                    r.project_id,
                    req.reason.trim()
                )
            } else {
                format!(
                    "The review meeting of project {} is set for {s} – {e} at {place}.",
                    r.project_id
                )
            };
            notify::record(
                &mut tx,
                &format!("experts/{expert}"),
                Channel::Email,
                &text,
                &id,
            )
            .await?;
        }
        tx.commit().await?;
        self.notify.notify_waiters();
        self.review(&id).await
    }

    pub(crate) async fn cancel_meeting(
        &self,
        caller: &Caller,
        req: pb::CancelMeetingRequest,
    ) -> ServiceResult<ReviewRow> {
        let id = parse_review(&req.name)?;
        let mut v = Violations::new();
        v.text("reason", &req.reason, 500);
        v.finish()?;
        caller.require(&[Role::Office])?;
        let r = self.review(&id).await?;
        let Some(mut m) = r
            .meeting()
            .map_err(internal)?
            .filter(|m| m.state == "SCHEDULED")
        else {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                r.name(),
                format!("{} has no scheduled meeting", r.name()),
            ));
        };
        if r.state == "CONCLUDED" {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                r.name(),
                format!("{} is concluded", r.name()),
            ));
        }
        m.state = "CANCELLED".into();
        m.change_reason = req.reason.trim().to_owned();
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM bookings WHERE review_id = $1")
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE reviews SET meeting = $1, version = version + 1 WHERE id = $2")
            .bind(to_json(&m))
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
        Self::event(
            &mut tx,
            &id,
            &caller.subject,
            "MeetingCancelled",
            req.reason.trim(),
        )
        .await?;
        for i in self
            .invitations(&id)
            .await?
            .iter()
            .filter(|i| i.state == "PENDING" || i.state == "CONFIRMED")
        {
            notify::record(
                &mut tx,
                &format!("experts/{}", i.expert_id),
                Channel::Email,
                &format!(
                    "The review meeting of project {} is cancelled: {}",
                    r.project_id,
                    req.reason.trim()
                ),
                &id,
            )
            .await?;
        }
        tx.commit().await?;
        self.review(&id).await
    }

    pub(crate) async fn set_chair(
        &self,
        caller: &Caller,
        req: pb::SetChairRequest,
    ) -> ServiceResult<ReviewRow> {
        let id = parse_review(&req.name)?;
        if !is_code(&req.expert_id) {
            return Err(ServiceError::field("expert_id", "must be an expert id"));
        }
        caller.require(&[Role::Office])?;
        let r = self.review(&id).await?;
        if r.state == "CONCLUDED" {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                r.name(),
                format!("{} is concluded", r.name()),
            ));
        }
        let on_panel = self.invitations(&id).await?.iter().any(|i| {
            i.expert_id == req.expert_id && (i.state == "PENDING" || i.state == "CONFIRMED")
        });
        if !on_panel {
            return Err(ServiceError::field(
                "expert_id",
                format!("{} is not on the panel", req.expert_id),
            ));
        }
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE reviews SET chair_expert_id = $1, version = version + 1 WHERE id = $2")
            .bind(req.expert_id.clone())
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
        Self::event(&mut tx, &id, &caller.subject, "ChairSet", &req.expert_id).await?;
        tx.commit().await?;
        self.review(&id).await
    }

    // ---- opinions and the conclusion ----

    pub(crate) async fn submit_opinion(
        &self,
        caller: &Caller,
        req: pb::SubmitOpinionRequest,
    ) -> ServiceResult<OpinionRow> {
        let id = parse_review(&req.review)
            .map_err(|_| ServiceError::field("review", "must be reviews/{id}"))?;
        let r = self.review(&id).await?;
        let criteria = self
            .policy
            .criteria
            .get(&r.stage)
            .cloned()
            .unwrap_or_default();
        let mut v = Violations::new();
        let mut scores = Vec::new();
        let mut seen = BTreeSet::new();
        for (i, s) in req.scores.iter().enumerate() {
            if !criteria.contains(&s.criterion) {
                v.add(
                    format!("scores[{i}].criterion"),
                    format!("must be one of {}", criteria.join(", ")),
                );
            } else if !seen.insert(s.criterion.clone()) {
                v.add(format!("scores[{i}].criterion"), "appears twice");
            }
            if !(0..=100).contains(&s.score) {
                v.add(format!("scores[{i}].score"), "must be between 0 and 100");
            }
            scores.push((s.criterion.clone(), s.score));
        }
        for c in &criteria {
            if !req.scores.iter().any(|s| &s.criterion == c) {
                v.add("scores", format!("no score for {c}"));
            }
        }
        v.text("opinion", &req.opinion, 20_000);
        let stage = r.stage().map_err(internal)?;
        let recommendation = pb::ReviewDecision::try_from(req.recommendation)
            .ok()
            .filter(|d| stage.admits(*d));
        if recommendation.is_none() {
            v.add(
                "recommendation",
                format!("must be one of {}", decision_names(stage)),
            );
        }
        v.finish()?;
        caller.require(&[Role::Expert])?;
        let me = caller.expert.clone().unwrap_or_default();
        let confirmed = self
            .invitations(&id)
            .await?
            .iter()
            .any(|i| i.expert_id == me && i.state == "CONFIRMED");
        if !confirmed {
            return Err(ServiceError::PermissionDenied(
                "only confirmed panel members give opinions".into(),
            ));
        }
        require_meeting_in_progress(&r)?;
        let mut tx = self.begin().await?;
        let inserted = sqlx::query("INSERT INTO opinions (review_id, expert_id, scores, opinion, recommendation, submit_time) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(id.clone())
            .bind(me.clone())
            .bind(to_json(&scores))
            .bind(req.opinion.trim().to_owned())
            .bind(recommendation.unwrap_or_default().short_name())
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
        Self::event(&mut tx, &id, &caller.subject, "OpinionSubmitted", &me).await?;
        tx.commit().await?;
        sqlx::query_as::<_, OpinionRow>(
            "SELECT * FROM opinions WHERE review_id = $1 AND expert_id = $2",
        )
        .bind(id)
        .bind(me)
        .fetch_one(&self.db.pool)
        .await
        .map_err(Into::into)
    }

    pub(crate) async fn record_conclusion(
        &self,
        caller: &Caller,
        req: pb::RecordConclusionRequest,
    ) -> ServiceResult<ReviewRow> {
        let id = parse_review(&req.name)?;
        let r = self.review(&id).await?;
        let stage = r.stage().map_err(internal)?;
        let decision = pb::ReviewDecision::try_from(req.decision)
            .ok()
            .filter(|d| stage.admits(*d));
        let mut v = Violations::new();
        if decision.is_none() {
            v.add(
                "decision",
                format!("must be one of {} for {}", decision_names(stage), r.stage),
            );
        }
        v.text("summary", &req.summary, 20_000);
        v.finish()?;
        caller.require(&[Role::Expert])?;
        if caller.expert.is_none() || r.chair_expert_id != caller.expert {
            return Err(ServiceError::PermissionDenied(
                "only the chair records the conclusion".into(),
            ));
        }
        require_meeting_in_progress(&r)?;
        let confirmed: Vec<String> = self
            .invitations(&id)
            .await?
            .into_iter()
            .filter(|i| i.state == "CONFIRMED")
            .map(|i| i.expert_id)
            .collect();
        let opinions =
            sqlx::query_as::<_, OpinionRow>("SELECT * FROM opinions WHERE review_id = $1")
                .bind(id.clone())
                .fetch_all(&self.db.pool)
                .await?;
        let missing: Vec<&String> = confirmed
            .iter()
            .filter(|e| !opinions.iter().any(|o| &o.expert_id == *e))
            .collect();
        if !missing.is_empty() || opinions.is_empty() {
            return Err(ServiceError::precondition(
                "OPINIONS_MISSING",
                r.name(),
                format!(
                    "waiting for the opinions of {}",
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let criteria = self
            .policy
            .criteria
            .get(&r.stage)
            .cloned()
            .unwrap_or_default();
        let mut sums: BTreeMap<String, i64> = BTreeMap::new();
        for o in &opinions {
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
        let decision = decision.unwrap_or_default();
        let conclusion = ConclusionRec {
            decision: decision.short_name().to_owned(),
            summary: req.summary.trim().to_owned(),
            averages_centi: averages,
            overall_centi: overall,
            chair: caller.expert.clone().unwrap_or_default(),
            at: to_stored(now()),
        };
        let mut tx = self.begin().await?;
        let done = sqlx::query("UPDATE reviews SET state = 'CONCLUDED', conclusion = $1, version = version + 1 WHERE id = $2 AND state IN ('INVITING', 'PANEL_CONFIRMED')")
            .bind(to_json(&conclusion))
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                r.name(),
                format!("{} is no longer under way", r.name()),
            ));
        }
        Self::event(
            &mut tx,
            &id,
            &caller.subject,
            "Concluded",
            &format!("{}: {}", conclusion.decision, conclusion.summary),
        )
        .await?;
        if stage != pb::ReviewStage::PostEvaluation {
            let report = ppb::RecordReviewOutcomeRequest {
                name: r.project_name(),
                etag: String::new(),
                review: r.name(),
                stage: stage as i32,
                decision: decision as i32,
                summary: conclusion.summary.clone(),
            };
            govit_platform::outbox::enqueue(&mut tx, &Outgoing::RecordReviewOutcome(report))
                .await?;
        }
        notify::record(
            &mut tx,
            "office",
            Channel::Email,
            &format!(
                "Review {id} of project {} concluded: {}",
                r.project_id, conclusion.decision
            ),
            &id,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(review = %id, decision = %conclusion.decision, "review concluded");
        self.review(&id).await
    }

    pub(crate) async fn rate_expert(
        &self,
        caller: &Caller,
        req: pb::RateExpertRequest,
    ) -> ServiceResult<ReviewRow> {
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
        caller.require(&[Role::Office])?;
        let r = self.review(&id).await?;
        if r.state != "CONCLUDED" {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                r.name(),
                format!("{} is not concluded yet", r.name()),
            ));
        }
        if !self
            .invitations(&id)
            .await?
            .iter()
            .any(|i| i.expert_id == req.expert_id && i.state == "CONFIRMED")
        {
            return Err(ServiceError::field(
                "expert_id",
                format!("{} did not serve on this panel", req.expert_id),
            ));
        }
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO ratings (review_id, expert_id, rating, comment) VALUES ($1, $2, $3, $4)",
        )
        .bind(id.clone())
        .bind(req.expert_id.clone())
        .bind(i64::from(req.rating))
        .bind(req.comment.clone())
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if govit_platform::db::is_unique_violation(&e) => {
                return Err(ServiceError::AlreadyExists {
                    resource_type: "rating",
                    name: format!("reviews/{id}/ratings/{}", req.expert_id),
                });
            }
            other => other?,
        };
        let service = epb::RecordReviewServiceRequest {
            name: format!("experts/{}", req.expert_id),
            review: r.name(),
            rating: req.rating,
            comment: req.comment.clone(),
        };
        govit_platform::outbox::enqueue(&mut tx, &Outgoing::RecordReviewService(service)).await?;
        Self::event(&mut tx, &id, &caller.subject, "ExpertRated", &req.expert_id).await?;
        tx.commit().await?;
        self.review(&id).await
    }
}

fn decision_names(stage: pb::ReviewStage) -> String {
    stage
        .decisions()
        .iter()
        .map(|d| d.short_name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Opinions and the conclusion need a scheduled meeting of a review going on.
fn require_meeting_in_progress(r: &ReviewRow) -> ServiceResult<()> {
    if r.state == "CONCLUDED" {
        return Err(ServiceError::precondition(
            "STATE_CONFLICT",
            r.name(),
            format!("{} already has its conclusion", r.name()),
        ));
    }
    if !PANEL_STATES.contains(&r.state.as_str()) {
        return Err(ServiceError::precondition(
            "STATE_CONFLICT",
            r.name(),
            format!("{} is {}", r.name(), r.state),
        ));
    }
    if r.meeting()
        .map_err(internal)?
        .is_none_or(|m| m.state != "SCHEDULED")
    {
        return Err(ServiceError::precondition(
            "STATE_CONFLICT",
            r.name(),
            format!("{} has no scheduled meeting", r.name()),
        ));
    }
    Ok(())
}

/// What an applicant or expert hears of a review they may not see, whether it exists or not:
/// the answer reveals nothing.
pub fn hidden(caller: &Caller) -> ServiceError {
    ServiceError::PermissionDenied(match caller.role {
        Role::Applicant => "applicants may only see reviews of their own projects".into(),
        _ => "experts may only see reviews whose panel they are on".into(),
    })
}

/// `reviews/{review}/invitations/{expert_id}`: the review's id and the expert's.
pub fn parse_invitation(name: &str) -> ServiceResult<(String, String)> {
    govit_platform::validate::child_ids(name, "reviews", "invitations")
        .map(|(r, e)| (r.to_owned(), e.to_owned()))
        .ok_or_else(|| {
            ServiceError::field("name", "must be reviews/{review}/invitations/{expert_id}")
        })
}

pub fn parse_review(name: &str) -> ServiceResult<String> {
    match name.strip_prefix("reviews/") {
        Some(id) if is_code(id) => Ok(id.to_owned()),
        _ => Err(ServiceError::field("name", "must be reviews/{id}")),
    }
}

/// What became of a replacement message.
pub(crate) enum Replacement {
    Done,
    /// The review is paused: the message waits for it to resume.
    Paused,
}

/// The shape of a panel, before the registry judges its categories and pool.
pub(crate) fn check_panel_shape(v: &mut Violations, field: &str, panel: &[pb::PanelRequirement]) {
    if panel.is_empty() {
        v.add(field, "must name at least one category");
    }
    let mut seen = BTreeSet::new();
    for (i, p) in panel.iter().enumerate() {
        if !is_code(&p.category) {
            v.add(
                format!("{field}[{i}].category"),
                "must be 1 to 64 characters of A-Z a-z 0-9 . _ -",
            );
        } else if !seen.insert(p.category.clone()) {
            v.add(format!("{field}[{i}].category"), "appears twice");
        }
        if !(1..=50).contains(&p.count) {
            v.add(format!("{field}[{i}].count"), "must be between 1 and 50");
        }
        if !(0..=50).contains(&p.alternates) {
            v.add(
                format!("{field}[{i}].alternates"),
                "must be between 0 and 50",
            );
        }
    }
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
