//! Supervision: budget control, disbursements, milestones and progress, variance and risk,
//! monthly snapshots, inspections, notices and the portfolio view. Every change writes its
//! audit event in the same transaction; the SQL of this part lives here.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, Violations,
    time::{
        date_from_proto, date_from_stored, date_to_proto, date_to_stored, now, stored_to_timestamp,
        to_stored,
    },
};
use govit_proto::projects::v1::{self as pb, ProjectState as S};
use serde::{Deserialize, Serialize};
use sqlx::{AssertSqlSafe, Row};

use crate::{
    ProjectsService,
    lifecycle::{TERMINAL, state_name},
    model::{ProjectRow, funding_name, org_name, project_name, to_json},
    store::{NewEvent, insert_baseline, insert_event, project_event},
    validation::{self as check, MAX_REASON_CHARS, MAX_TEXT_CHARS},
    variance::{self, Color, MilestoneFigures},
    workdays,
};

fn internal(e: impl Into<anyhow::Error>) -> ServiceError {
    ServiceError::Internal(e.into())
}

const BUREAUS: [Role; 3] = [Role::Office, Role::Supervisor, Role::Inspector];

fn color_proto(c: Color) -> pb::RiskColor {
    match c {
        Color::Green => pb::RiskColor::Green,
        Color::Yellow => pb::RiskColor::Yellow,
        Color::Red => pb::RiskColor::Red,
    }
}

fn date_field(
    v: &mut Violations,
    field: &str,
    d: Option<&govit_proto::google::r#type::Date>,
    required: bool,
) -> Option<NaiveDate> {
    match d {
        None if required => {
            v.add(field, "is required");
            None
        }
        None => None,
        Some(_) => check::date(v, field, d),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapshotFigures {
    state: String,
    approved_budget_fen: i64,
    contract_amount_fen: i64,
    disbursed_fen: i64,
    cost_variance_bp: i64,
    schedule_variance_bp: i64,
    color: String,
    percent_complete: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct HigherApprovalRec {
    department: String,
    reference: String,
    date: String,
}

impl ProjectsService {
    /// The project for a change by `caller`, who must have one of `roles` (applicants only
    /// their own), and must be in none of the terminal states.
    async fn project_for_change(
        &self,
        caller: &Caller,
        parent: &str,
        roles: &[Role],
    ) -> ServiceResult<ProjectRow> {
        let code = check::parse_project_name("parent", parent)?;
        caller.require(roles)?;
        self.visible_project(caller, &code).await
    }

    async fn audit(
        tx: &mut govit_platform::Tx,
        code: &str,
        caller: &Caller,
        event: NewEvent,
    ) -> ServiceResult<()> {
        project_event(tx, code, &to_stored(now()), caller, &event)
            .await
            .map(|_| ())
    }

    // ---- budget ----

    fn budget_change_proto(row: &sqlx::any::AnyRow) -> ServiceResult<pb::BudgetChange> {
        let get = |c: &str| -> ServiceResult<String> { Ok(row.try_get::<String, _>(c)?) };
        let state =
            pb::BudgetChangeState::from_str_name(&format!("BUDGET_CHANGE_STATE_{}", get("state")?))
                .unwrap_or_default();
        let funding =
            pb::FundingSource::from_str_name(&format!("FUNDING_SOURCE_{}", get("funding_source")?))
                .unwrap_or_default();
        let higher: Option<String> = row.try_get("higher_approval")?;
        let higher = higher
            .map(|h| serde_json::from_str::<HigherApprovalRec>(&h))
            .transpose()
            .map_err(internal)?
            .map(|h| -> ServiceResult<_> {
                Ok(pb::HigherApproval {
                    department: h.department,
                    reference: h.reference,
                    approval_date: Some(date_to_proto(
                        date_from_stored(&h.date).map_err(internal)?,
                    )),
                })
            })
            .transpose()?;
        let decide: Option<String> = row.try_get("decide_time")?;
        Ok(pb::BudgetChange {
            name: format!(
                "projects/{}/budgetChanges/{}",
                get("project_code")?,
                get("id")?
            ),
            current_budget_fen: row.try_get("current_budget_fen")?,
            requested_budget_fen: row.try_get("requested_budget_fen")?,
            reason: get("reason")?,
            funding_source: funding as i32,
            state: state as i32,
            requires_higher_approval: row.try_get::<i64, _>("requires_higher_approval")? != 0,
            higher_approval: higher,
            decision_comment: get("decision_comment")?,
            requested_by: get("requested_by")?,
            decided_by: get("decided_by")?,
            create_time: Some(stored_to_timestamp(&get("create_time")?).map_err(internal)?),
            decide_time: decide
                .as_deref()
                .map(stored_to_timestamp)
                .transpose()
                .map_err(internal)?,
        })
    }

    async fn budget_change_row(&self, code: &str, id: &str) -> ServiceResult<sqlx::any::AnyRow> {
        sqlx::query("SELECT * FROM budget_changes WHERE project_code = $1 AND id = $2")
            .bind(code.to_owned())
            .bind(id.to_owned())
            .fetch_optional(&self.store.db.pool)
            .await?
            .ok_or_else(|| {
                ServiceError::not_found(
                    "budget change",
                    format!("projects/{code}/budgetChanges/{id}"),
                )
            })
    }

    pub(crate) async fn create_budget_change(
        &self,
        caller: &Caller,
        req: pb::CreateBudgetChangeRequest,
    ) -> ServiceResult<pb::BudgetChange> {
        let mut v = Violations::new();
        check::amount(
            &mut v,
            "requested_budget_fen",
            req.requested_budget_fen,
            false,
        );
        check::text(&mut v, "reason", &req.reason, MAX_TEXT_CHARS);
        let funding = check::enum_value::<pb::FundingSource>(
            &mut v,
            "funding_source",
            req.funding_source,
            false,
        );
        v.finish()?;
        let project = self
            .project_for_change(caller, &req.parent, &[Role::Applicant, Role::Office])
            .await?;
        let state = project.state().map_err(internal)?;
        let (Some(current), Some(original)) =
            (project.approved_budget_fen, project.original_approved_fen)
        else {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                project.name(),
                format!("{} has no approved budget yet", project.name()),
            ));
        };
        if TERMINAL.contains(&state) {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                project.name(),
                format!(
                    "{} is {}; its budget can no longer change",
                    project.name(),
                    state_name(state)
                ),
            ));
        }
        if req.requested_budget_fen <= current {
            return Err(ServiceError::field(
                "requested_budget_fen",
                format!("must be above the current approved budget, {current} fen"),
            ));
        }
        let flagged = variance::beyond_threshold(
            original,
            req.requested_budget_fen,
            self.policy.budget_threshold_bp,
        );
        let id = uuid::Uuid::now_v7().simple().to_string();
        let at = to_stored(now());
        let mut tx = self.store.db.begin_write().await?;
        sqlx::query(
            "INSERT INTO budget_changes (id, project_code, current_budget_fen, requested_budget_fen, reason, funding_source, state, \
             requires_higher_approval, higher_approval, decision_comment, requested_by, decided_by, create_time) \
             VALUES ($1, $2, $3, $4, $5, $6, 'PENDING', $7, NULL, '', $8, '', $9)",
        )
        .bind(id.clone())
        .bind(project.code.clone())
        .bind(current)
        .bind(req.requested_budget_fen)
        .bind(req.reason.clone())
        .bind(funding_name(funding.unwrap_or_default()))
        .bind(i64::from(flagged))
        .bind(caller.subject.clone())
        .bind(at)
        .execute(&mut *tx)
        .await?;
        let event = NewEvent {
            action: "CreateBudgetChange".into(),
            changed_fields: vec![format!("budgetChanges/{id}")],
            reason: format!(
                "{current} → {} fen: {}",
                req.requested_budget_fen, req.reason
            ),
            ..NewEvent::default()
        };
        Self::audit(&mut tx, &project.code, caller, event).await?;
        tx.commit().await?;
        Self::budget_change_proto(&self.budget_change_row(&project.code, &id).await?)
    }

    pub(crate) async fn decide_budget_change(
        &self,
        caller: &Caller,
        name: &str,
        comment: &str,
        approve: bool,
        higher: Option<pb::HigherApproval>,
    ) -> ServiceResult<pb::BudgetChange> {
        let (code, id) = check::parse_child_name("name", name, "budgetChanges")?;
        let mut v = Violations::new();
        check::optional_text(&mut v, "comment", comment, MAX_REASON_CHARS);
        let higher_rec = match &higher {
            Some(h) => {
                check::text(&mut v, "higher_approval.department", &h.department, 200);
                check::text(&mut v, "higher_approval.reference", &h.reference, 200);
                let d = date_field(
                    &mut v,
                    "higher_approval.approval_date",
                    h.approval_date.as_ref(),
                    true,
                );
                d.map(|d| HigherApprovalRec {
                    department: h.department.trim().into(),
                    reference: h.reference.trim().into(),
                    date: date_to_stored(d),
                })
            }
            None => None,
        };
        v.finish()?;
        caller.require(&[Role::Office])?;
        let project = self.visible_project(caller, &code).await?;
        let row = self.budget_change_row(&code, &id).await?;
        let state: String = row.try_get("state")?;
        if state != "PENDING" {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                name.to_owned(),
                format!("{name} is already {state}"),
            ));
        }
        let requested: i64 = row.try_get("requested_budget_fen")?;
        let flagged = row.try_get::<i64, _>("requires_higher_approval")? != 0;
        if approve && flagged && higher_rec.is_none() {
            return Err(ServiceError::precondition(
                "REAPPROVAL_REQUIRED",
                name.to_owned(),
                format!(
                    "{requested} fen is more than {}% above the original approved budget of {} fen: the approving department \
                     must re-approve it; record its approval (department, reference, date) to approve",
                    self.policy.budget_threshold_bp as f64 / 100.0,
                    project.original_approved_fen.unwrap_or_default()
                ),
            ));
        }
        let at = to_stored(now());
        let mut tx = self.store.db.begin_write().await?;
        let done = sqlx::query(
            "UPDATE budget_changes SET state = $1, decision_comment = $2, decided_by = $3, decide_time = $4, higher_approval = $5 \
             WHERE id = $6 AND state = 'PENDING'",
        )
        .bind(if approve { "APPROVED" } else { "REFUSED" })
        .bind(comment.to_owned())
        .bind(caller.subject.clone())
        .bind(at.clone())
        .bind(higher_rec.as_ref().map(to_json))
        .bind(id.clone())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(ServiceError::Aborted(format!(
                "{name} was decided concurrently"
            )));
        }
        let mut event = NewEvent {
            action: if approve {
                "ApproveBudgetChange"
            } else {
                "RefuseBudgetChange"
            }
            .into(),
            changed_fields: vec![format!("budgetChanges/{id}")],
            reason: comment.to_owned(),
            ..NewEvent::default()
        };
        if approve {
            // The project's row first: it serialises approvals, and checks the request still
            // applies — to the budget it was filed against, and never below what is paid out.
            let current_at_filing: i64 = row.try_get("current_budget_fen")?;
            let moved = sqlx::query(
                "UPDATE projects SET approved_budget_fen = $1, version = version + 1, update_time = $2 \
                 WHERE code = $3 AND approved_budget_fen = $4 AND disbursed_fen <= $1",
            )
            .bind(requested)
            .bind(at.clone())
            .bind(code.clone())
            .bind(current_at_filing)
            .execute(&mut *tx)
            .await?;
            if moved.rows_affected() == 0 {
                return Err(ServiceError::precondition(
                    "BUDGET_EXCEEDED",
                    name.to_owned(),
                    format!(
                        "the approved budget is no longer the {current_at_filing} fen this request was filed against; file a new request"
                    ),
                ));
            }
            // A new baseline, never an edit of the old one; the version moved, so a stale etag
            // elsewhere notices the budget changed.
            let seq: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM budget_baselines WHERE project_code = $1")
                    .bind(code.clone())
                    .fetch_one(&mut *tx)
                    .await?;
            insert_baseline(
                &mut tx,
                &code,
                seq + 1,
                requested,
                "CHANGE",
                Some(&id),
                &row.try_get::<String, _>("reason")?,
                &at,
            )
            .await?;
            event.changed_fields.push("approved_budget_fen".into());
        }
        Self::audit(&mut tx, &code, caller, event).await?;
        tx.commit().await?;
        Self::budget_change_proto(&self.budget_change_row(&code, &id).await?)
    }

    pub(crate) async fn list_budget_changes(
        &self,
        caller: &Caller,
        parent: &str,
    ) -> ServiceResult<Vec<pb::BudgetChange>> {
        let code = check::parse_project_name("parent", parent)?;
        self.visible_project(caller, &code).await?;
        let rows = sqlx::query(
            "SELECT * FROM budget_changes WHERE project_code = $1 ORDER BY create_time, id",
        )
        .bind(code)
        .fetch_all(&self.store.db.pool)
        .await?;
        rows.iter().map(Self::budget_change_proto).collect()
    }

    pub(crate) async fn list_baselines(
        &self,
        caller: &Caller,
        parent: &str,
    ) -> ServiceResult<Vec<pb::BudgetBaseline>> {
        let code = check::parse_project_name("parent", parent)?;
        self.visible_project(caller, &code).await?;
        let rows = sqlx::query("SELECT seq, budget_fen, source, budget_change, reason, create_time FROM budget_baselines WHERE project_code = $1 ORDER BY seq")
            .bind(code.clone())
            .fetch_all(&self.store.db.pool)
            .await?;
        rows.iter()
            .map(|r| -> ServiceResult<_> {
                let change: Option<String> = r.try_get(3)?;
                Ok(pb::BudgetBaseline {
                    sequence: r.try_get(0)?,
                    budget_fen: r.try_get(1)?,
                    source: r.try_get(2)?,
                    budget_change: change
                        .map(|c| format!("projects/{code}/budgetChanges/{c}"))
                        .unwrap_or_default(),
                    reason: r.try_get(4)?,
                    effective_time: Some(
                        stored_to_timestamp(&r.try_get::<String, _>(5)?).map_err(internal)?,
                    ),
                })
            })
            .collect()
    }

    // ---- disbursements ----

    pub(crate) async fn record_disbursement(
        &self,
        caller: &Caller,
        req: pb::RecordDisbursementRequest,
    ) -> ServiceResult<pb::Disbursement> {
        let d = req.disbursement.unwrap_or_default();
        let mut v = Violations::new();
        check::amount(&mut v, "disbursement.amount_fen", d.amount_fen, false);
        let date = date_field(
            &mut v,
            "disbursement.payment_date",
            d.payment_date.as_ref(),
            true,
        );
        check::text(&mut v, "disbursement.payee", &d.payee, 200);
        check::text(&mut v, "disbursement.purpose", &d.purpose, MAX_REASON_CHARS);
        let document = if d.supporting_document.is_empty() {
            None
        } else {
            match check::parse_child_name(
                "disbursement.supporting_document",
                &d.supporting_document,
                "documents",
            ) {
                Ok((c, id)) => Some((c, id)),
                Err(_) => {
                    v.add(
                        "disbursement.supporting_document",
                        "must be projects/{code}/documents/{id}",
                    );
                    None
                }
            }
        };
        v.finish()?;
        let project = self
            .project_for_change(caller, &req.parent, &[Role::Applicant, Role::Office])
            .await?;
        let state = project.state().map_err(internal)?;
        let Some(contract_date) = project.contract_date.as_deref() else {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                project.name(),
                format!(
                    "{} is {}; disbursements are recorded once the contract is signed",
                    project.name(),
                    state_name(state)
                ),
            ));
        };
        if matches!(state, S::Closed | S::Suspended) {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                project.name(),
                format!(
                    "{} is {}; it takes no disbursements",
                    project.name(),
                    state_name(state)
                ),
            ));
        }
        let date =
            date.ok_or_else(|| ServiceError::field("disbursement.payment_date", "is required"))?;
        let today = govit_platform::time::beijing_today();
        if date > today {
            return Err(ServiceError::field(
                "disbursement.payment_date",
                format!("is after today ({today}): a disbursement records a payment made"),
            ));
        }
        if date_to_stored(date).as_str() < contract_date {
            return Err(ServiceError::field(
                "disbursement.payment_date",
                format!("is before the contract date, {contract_date}"),
            ));
        }
        if let Some((c, id)) = &document
            && (c != &project.code || self.store.get_document(c, id).await?.is_none())
        {
            return Err(ServiceError::not_found(
                "document",
                d.supporting_document.clone(),
            ));
        }
        let budget = project.approved_budget_fen.unwrap_or_default();
        let id = uuid::Uuid::now_v7().simple().to_string();
        let at = to_stored(now());
        let mut tx = self.store.db.begin_write().await?;
        // The line is checked by the database in the same statement that moves the total, so
        // racing disbursements can never pass it together.
        let moved = sqlx::query(
            "UPDATE projects SET disbursed_fen = disbursed_fen + $1 WHERE code = $2 AND approved_budget_fen IS NOT NULL \
             AND disbursed_fen + $1 <= approved_budget_fen RETURNING disbursed_fen",
        )
        .bind(d.amount_fen)
        .bind(project.code.clone())
        .fetch_optional(&mut *tx)
        .await?;
        if moved.is_none() {
            drop(tx);
            let now_row = self
                .store
                .get_project(&project.code)
                .await?
                .ok_or_else(|| ServiceError::not_found("project", project.name()))?;
            let budget = now_row.approved_budget_fen.unwrap_or(budget);
            return Err(ServiceError::FailedPrecondition {
                message: format!(
                    "disbursing {} fen would take the total to {} fen, above the approved budget of {} fen ({} fen disbursed so far)",
                    d.amount_fen,
                    now_row.disbursed_fen + d.amount_fen,
                    budget,
                    now_row.disbursed_fen
                ),
                violations: vec![govit_platform::error::PreconditionViolation::new(
                    "BUDGET_EXCEEDED",
                    project.name(),
                    format!(
                        "approved {budget} fen, disbursed {} fen, requested {} fen",
                        now_row.disbursed_fen, d.amount_fen
                    ),
                )],
            });
        }
        sqlx::query(
            "INSERT INTO disbursements (id, project_code, amount_fen, payment_date, payee, purpose, supporting_document, recorded_by, create_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id.clone())
        .bind(project.code.clone())
        .bind(d.amount_fen)
        .bind(date_to_stored(date))
        .bind(d.payee.trim().to_owned())
        .bind(d.purpose.clone())
        .bind(d.supporting_document.clone())
        .bind(caller.subject.clone())
        .bind(at.clone())
        .execute(&mut *tx)
        .await?;
        let event = NewEvent {
            action: "RecordDisbursement".into(),
            changed_fields: vec![format!("disbursements/{id}"), "disbursed_fen".into()],
            reason: format!("{} fen to {}", d.amount_fen, d.payee.trim()),
            ..NewEvent::default()
        };
        Self::audit(&mut tx, &project.code, caller, event).await?;
        tx.commit().await?;
        Ok(pb::Disbursement {
            name: format!("projects/{}/disbursements/{id}", project.code),
            amount_fen: d.amount_fen,
            payment_date: Some(date_to_proto(date)),
            payee: d.payee.trim().to_owned(),
            purpose: d.purpose,
            supporting_document: d.supporting_document,
            recorded_by: caller.subject.clone(),
            create_time: Some(stored_to_timestamp(&at).map_err(internal)?),
        })
    }

    pub(crate) async fn list_disbursements(
        &self,
        caller: &Caller,
        parent: &str,
    ) -> ServiceResult<pb::ListDisbursementsResponse> {
        let code = check::parse_project_name("parent", parent)?;
        let project = self.visible_project(caller, &code).await?;
        let rows = sqlx::query(
            "SELECT id, amount_fen, payment_date, payee, purpose, supporting_document, recorded_by, create_time FROM disbursements \
             WHERE project_code = $1 ORDER BY payment_date, create_time",
        )
        .bind(code.clone())
        .fetch_all(&self.store.db.pool)
        .await?;
        let disbursements = rows
            .iter()
            .map(|r| -> ServiceResult<_> {
                Ok(pb::Disbursement {
                    name: format!(
                        "projects/{code}/disbursements/{}",
                        r.try_get::<String, _>(0)?
                    ),
                    amount_fen: r.try_get(1)?,
                    payment_date: Some(date_to_proto(
                        date_from_stored(&r.try_get::<String, _>(2)?).map_err(internal)?,
                    )),
                    payee: r.try_get(3)?,
                    purpose: r.try_get(4)?,
                    supporting_document: r.try_get(5)?,
                    recorded_by: r.try_get(6)?,
                    create_time: Some(
                        stored_to_timestamp(&r.try_get::<String, _>(7)?).map_err(internal)?,
                    ),
                })
            })
            .collect::<ServiceResult<Vec<_>>>()?;
        Ok(pb::ListDisbursementsResponse {
            disbursements,
            total_fen: project.disbursed_fen,
        })
    }

    // ---- milestones and progress ----

    async fn milestone_rows(&self, codes: &[String]) -> ServiceResult<Vec<(String, MilestoneRow)>> {
        if codes.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT * FROM milestones WHERE project_code IN ({}) ORDER BY project_code, planned_start, id",
            (1..=codes.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut q = sqlx::query_as::<_, MilestoneRow>(AssertSqlSafe(sql));
        for c in codes {
            q = q.bind(c.clone());
        }
        Ok(q.fetch_all(&self.store.db.pool)
            .await?
            .into_iter()
            .map(|m| (m.project_code.clone(), m))
            .collect())
    }

    fn apply_milestone(
        v: &mut Violations,
        m: &pb::Milestone,
        paths: &[&str],
        row: &mut MilestoneRow,
    ) {
        for path in paths {
            let field = format!("milestone.{path}");
            let date = |v: &mut Violations,
                        d: Option<&govit_proto::google::r#type::Date>,
                        required: bool| {
                date_field(v, &field, d, required).map(date_to_stored)
            };
            match *path {
                "display_name" => {
                    check::text(v, &field, &m.display_name, 200);
                    row.display_name = m.display_name.trim().to_owned();
                }
                "planned_start_date" => {
                    row.planned_start =
                        date(v, m.planned_start_date.as_ref(), true).unwrap_or_default()
                }
                "planned_end_date" => {
                    row.planned_end = date(v, m.planned_end_date.as_ref(), true).unwrap_or_default()
                }
                "projected_end_date" => {
                    row.projected_end =
                        date(v, m.projected_end_date.as_ref(), false).unwrap_or_default()
                }
                "actual_start_date" => {
                    row.actual_start = date(v, m.actual_start_date.as_ref(), false)
                }
                "actual_end_date" => row.actual_end = date(v, m.actual_end_date.as_ref(), false),
                "planned_cost_fen" => {
                    check::amount(v, &field, m.planned_cost_fen, true);
                    row.planned_cost_fen = m.planned_cost_fen;
                }
                "projected_cost_fen" => {
                    check::amount(v, &field, m.projected_cost_fen, true);
                    row.projected_cost_fen = m.projected_cost_fen;
                }
                "actual_cost_fen" => {
                    check::amount(v, &field, m.actual_cost_fen, true);
                    row.actual_cost_fen = (m.actual_cost_fen > 0 || m.actual_end_date.is_some())
                        .then_some(m.actual_cost_fen);
                }
                other => v.add(
                    "update_mask",
                    format!("{other:?} is not an updatable field"),
                ),
            }
        }
        if row.projected_end.is_empty() {
            row.projected_end = row.planned_end.clone();
        }
        if !row.planned_start.is_empty()
            && !row.planned_end.is_empty()
            && row.planned_end < row.planned_start
        {
            v.add(
                "milestone.planned_end_date",
                "must not be before planned_start_date",
            );
        }
        if !row.planned_start.is_empty() && row.projected_end < row.planned_start {
            v.add(
                "milestone.projected_end_date",
                "must not be before planned_start_date",
            );
        }
        if let (Some(s), Some(e)) = (&row.actual_start, &row.actual_end)
            && e < s
        {
            v.add(
                "milestone.actual_end_date",
                "must not be before actual_start_date",
            );
        }
    }

    pub(crate) async fn create_milestone(
        &self,
        caller: &Caller,
        req: pb::CreateMilestoneRequest,
    ) -> ServiceResult<pb::Milestone> {
        let m = req.milestone.unwrap_or_default();
        let mut row = MilestoneRow::blank(String::new());
        let mut v = Violations::new();
        let mut paths = vec![
            "display_name",
            "planned_start_date",
            "planned_end_date",
            "planned_cost_fen",
        ];
        if m.projected_end_date.is_some() {
            paths.push("projected_end_date");
        }
        paths.push("projected_cost_fen");
        for optional in ["actual_start_date", "actual_end_date"] {
            let present = if optional == "actual_start_date" {
                m.actual_start_date.is_some()
            } else {
                m.actual_end_date.is_some()
            };
            if present {
                paths.push(optional);
            }
        }
        if m.actual_cost_fen != 0 {
            paths.push("actual_cost_fen");
        }
        let mut m2 = m.clone();
        if m2.projected_cost_fen == 0 {
            m2.projected_cost_fen = m2.planned_cost_fen;
        }
        Self::apply_milestone(&mut v, &m2, &paths, &mut row);
        v.finish()?;
        let project = self
            .project_for_change(caller, &req.parent, &[Role::Applicant, Role::Office])
            .await?;
        let state = project.state().map_err(internal)?;
        if TERMINAL.contains(&state) {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                project.name(),
                format!("{} is {}", project.name(), state_name(state)),
            ));
        }
        row.id = uuid::Uuid::now_v7().simple().to_string();
        row.project_code = project.code.clone();
        let mut tx = self.store.db.begin_write().await?;
        row.insert(&mut tx).await?;
        let event = NewEvent {
            action: "CreateMilestone".into(),
            changed_fields: vec![format!("milestones/{}", row.id)],
            ..NewEvent::default()
        };
        Self::audit(&mut tx, &project.code, caller, event).await?;
        tx.commit().await?;
        row.to_proto().map_err(internal)
    }

    pub(crate) async fn update_milestone(
        &self,
        caller: &Caller,
        req: pb::UpdateMilestoneRequest,
    ) -> ServiceResult<pb::Milestone> {
        let m = req.milestone.unwrap_or_default();
        let (code, id) = check::parse_child_name("milestone.name", &m.name, "milestones")?;
        let paths: Vec<String> = req.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(ServiceError::field(
                "update_mask",
                "must name the fields to change",
            ));
        }
        let expected = check::etag("milestone.etag", &m.etag)?;
        caller.require(&[Role::Applicant, Role::Office])?;
        self.visible_project(caller, &code).await?;
        let mut row = sqlx::query_as::<_, MilestoneRow>(
            "SELECT * FROM milestones WHERE project_code = $1 AND id = $2",
        )
        .bind(code.clone())
        .bind(id.clone())
        .fetch_optional(&self.store.db.pool)
        .await?
        .ok_or_else(|| ServiceError::not_found("milestone", m.name.clone()))?;
        let mut v = Violations::new();
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        Self::apply_milestone(&mut v, &m, &refs, &mut row);
        v.finish()?;
        if row.version != expected {
            return Err(ServiceError::stale_etag(&m.name));
        }
        row.update_time = to_stored(now());
        let mut tx = self.store.db.begin_write().await?;
        let done = sqlx::query(
            "UPDATE milestones SET display_name = $1, planned_start = $2, planned_end = $3, projected_end = $4, actual_start = $5, \
             actual_end = $6, planned_cost_fen = $7, projected_cost_fen = $8, actual_cost_fen = $9, update_time = $10, \
             version = version + 1 WHERE id = $11 AND version = $12",
        )
        .bind(row.display_name.clone())
        .bind(row.planned_start.clone())
        .bind(row.planned_end.clone())
        .bind(row.projected_end.clone())
        .bind(row.actual_start.clone())
        .bind(row.actual_end.clone())
        .bind(row.planned_cost_fen)
        .bind(row.projected_cost_fen)
        .bind(row.actual_cost_fen)
        .bind(row.update_time.clone())
        .bind(id.clone())
        .bind(expected)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(ServiceError::stale_etag(&m.name));
        }
        let mut changed = vec![format!("milestones/{id}")];
        changed.extend(paths);
        Self::audit(
            &mut tx,
            &code,
            caller,
            NewEvent {
                action: "UpdateMilestone".into(),
                changed_fields: changed,
                ..NewEvent::default()
            },
        )
        .await?;
        tx.commit().await?;
        row.version += 1;
        row.to_proto().map_err(internal)
    }

    pub(crate) async fn list_milestones(
        &self,
        caller: &Caller,
        parent: &str,
    ) -> ServiceResult<Vec<pb::Milestone>> {
        let code = check::parse_project_name("parent", parent)?;
        self.visible_project(caller, &code).await?;
        self.milestone_rows(&[code])
            .await?
            .into_iter()
            .map(|(_, m)| m.to_proto().map_err(internal))
            .collect()
    }

    pub(crate) async fn file_progress_report(
        &self,
        caller: &Caller,
        req: pb::FileProgressReportRequest,
    ) -> ServiceResult<pb::ProgressReport> {
        let mut v = Violations::new();
        let date = date_field(&mut v, "report_date", req.report_date.as_ref(), true);
        if !(0..=100).contains(&req.percent_complete) {
            v.add("percent_complete", "must be between 0 and 100");
        }
        check::text(&mut v, "narrative", &req.narrative, MAX_TEXT_CHARS);
        v.finish()?;
        let project = self
            .project_for_change(caller, &req.parent, &[Role::Applicant])
            .await?;
        let state = project.state().map_err(internal)?;
        if TERMINAL.contains(&state) {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                project.name(),
                format!("{} is {}", project.name(), state_name(state)),
            ));
        }
        let id = uuid::Uuid::now_v7().simple().to_string();
        let mut tx = self.store.db.begin_write().await?;
        sqlx::query(
            "INSERT INTO progress_reports (id, project_code, report_date, percent_complete, narrative, state, filed_by, review_comment, \
             reviewed_by, create_time) VALUES ($1, $2, $3, $4, $5, 'FILED', $6, '', '', $7)",
        )
        .bind(id.clone())
        .bind(project.code.clone())
        .bind(date.map(date_to_stored).unwrap_or_default())
        .bind(i64::from(req.percent_complete))
        .bind(req.narrative.clone())
        .bind(caller.subject.clone())
        .bind(to_stored(now()))
        .execute(&mut *tx)
        .await?;
        Self::audit(
            &mut tx,
            &project.code,
            caller,
            NewEvent {
                action: "FileProgressReport".into(),
                changed_fields: vec![format!("progressReports/{id}")],
                reason: format!("{}% complete", req.percent_complete),
                ..NewEvent::default()
            },
        )
        .await?;
        tx.commit().await?;
        self.progress_report(&project.code, &id).await
    }

    async fn progress_report(&self, code: &str, id: &str) -> ServiceResult<pb::ProgressReport> {
        let r = sqlx::query("SELECT * FROM progress_reports WHERE project_code = $1 AND id = $2")
            .bind(code.to_owned())
            .bind(id.to_owned())
            .fetch_optional(&self.store.db.pool)
            .await?
            .ok_or_else(|| {
                ServiceError::not_found(
                    "progress report",
                    format!("projects/{code}/progressReports/{id}"),
                )
            })?;
        progress_proto(&r)
    }

    pub(crate) async fn review_progress_report(
        &self,
        caller: &Caller,
        req: pb::ReviewProgressReportRequest,
    ) -> ServiceResult<pb::ProgressReport> {
        let (code, id) = check::parse_child_name("name", &req.name, "progressReports")?;
        let mut v = Violations::new();
        check::text(&mut v, "comment", &req.comment, MAX_REASON_CHARS);
        v.finish()?;
        caller.require(&[Role::Office])?;
        self.visible_project(caller, &code).await?;
        let current = self.progress_report(&code, &id).await?;
        if current.state != pb::ProgressReportState::Filed as i32 {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                req.name.clone(),
                format!("{} is already reviewed", req.name),
            ));
        }
        let mut tx = self.store.db.begin_write().await?;
        let done = sqlx::query("UPDATE progress_reports SET state = 'REVIEWED', review_comment = $1, reviewed_by = $2 WHERE id = $3 AND state = 'FILED'")
            .bind(req.comment.clone())
            .bind(caller.subject.clone())
            .bind(id.clone())
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(ServiceError::Aborted(format!(
                "{} was reviewed concurrently",
                req.name
            )));
        }
        Self::audit(
            &mut tx,
            &code,
            caller,
            NewEvent {
                action: "ReviewProgressReport".into(),
                changed_fields: vec![format!("progressReports/{id}")],
                reason: req.comment,
                ..NewEvent::default()
            },
        )
        .await?;
        tx.commit().await?;
        self.progress_report(&code, &id).await
    }

    pub(crate) async fn list_progress_reports(
        &self,
        caller: &Caller,
        parent: &str,
    ) -> ServiceResult<Vec<pb::ProgressReport>> {
        let code = check::parse_project_name("parent", parent)?;
        self.visible_project(caller, &code).await?;
        let rows = sqlx::query("SELECT * FROM progress_reports WHERE project_code = $1 ORDER BY report_date, create_time")
            .bind(code)
            .fetch_all(&self.store.db.pool)
            .await?;
        rows.iter().map(progress_proto).collect()
    }

    // ---- variance and risk ----

    fn figures(ms: &[&MilestoneRow]) -> ServiceResult<Vec<MilestoneFigures>> {
        ms.iter()
            .map(|m| -> anyhow::Result<_> {
                Ok(MilestoneFigures {
                    planned_start: date_from_stored(&m.planned_start)?,
                    planned_end: date_from_stored(&m.planned_end)?,
                    projected_end: date_from_stored(&m.projected_end)?,
                    actual_end: m.actual_end.as_deref().map(date_from_stored).transpose()?,
                    planned_cost_fen: m.planned_cost_fen,
                    projected_cost_fen: m.projected_cost_fen,
                    actual_cost_fen: m.actual_cost_fen,
                })
            })
            .collect::<anyhow::Result<_>>()
            .map_err(internal)
    }

    async fn latest_rating(&self, code: &str) -> ServiceResult<Option<pb::RiskRating>> {
        let r = sqlx::query("SELECT rating, comment, rating_date, rated_by FROM risk_ratings WHERE project_code = $1 ORDER BY rating_date DESC, create_time DESC LIMIT 1")
            .bind(code.to_owned())
            .fetch_optional(&self.store.db.pool)
            .await?;
        r.as_ref().map(rating_proto).transpose()
    }

    pub(crate) async fn project_variance(
        &self,
        caller: &Caller,
        name: &str,
    ) -> ServiceResult<pb::ProjectVariance> {
        let code = check::parse_project_name("name", name)?;
        self.visible_project(caller, &code).await?;
        let ms = self.milestone_rows(std::slice::from_ref(&code)).await?;
        let refs: Vec<&MilestoneRow> = ms.iter().map(|(_, m)| m).collect();
        let v = variance::variance(&Self::figures(&refs)?, self.policy.bands);
        Ok(pb::ProjectVariance {
            project: project_name(&code),
            planned_cost_fen: v.planned_cost_fen,
            projected_cost_fen: v.projected_cost_fen,
            cost_variance_fen: v.cost_variance_fen,
            cost_variance_bp: v.cost_variance_bp,
            planned_duration_days: v.planned_duration_days,
            schedule_variance_days: v.schedule_variance_days,
            schedule_variance_bp: v.schedule_variance_bp,
            cost_color: color_proto(v.cost_color) as i32,
            schedule_color: color_proto(v.schedule_color) as i32,
            color: color_proto(v.color) as i32,
            milestone_count: refs.len() as i32,
            latest_rating: self.latest_rating(&code).await?,
        })
    }

    pub(crate) async fn rate_risk(
        &self,
        caller: &Caller,
        req: pb::RateProjectRiskRequest,
    ) -> ServiceResult<pb::RiskRating> {
        let code = check::parse_project_name("name", &req.name)?;
        let mut v = Violations::new();
        let rating = check::enum_value::<pb::RiskColor>(&mut v, "rating", req.rating, false);
        check::text(&mut v, "comment", &req.comment, MAX_REASON_CHARS);
        let date = date_field(&mut v, "rating_date", req.rating_date.as_ref(), true);
        v.finish()?;
        caller.require(&[Role::Office])?;
        self.visible_project(caller, &code).await?;
        let rating = rating
            .unwrap_or_default()
            .as_str_name()
            .trim_start_matches("RISK_COLOR_")
            .to_owned();
        let mut tx = self.store.db.begin_write().await?;
        sqlx::query("INSERT INTO risk_ratings (id, project_code, rating, comment, rating_date, rated_by, create_time) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(uuid::Uuid::now_v7().simple().to_string())
            .bind(code.clone())
            .bind(rating.clone())
            .bind(req.comment.clone())
            .bind(date.map(date_to_stored).unwrap_or_default())
            .bind(caller.subject.clone())
            .bind(to_stored(now()))
            .execute(&mut *tx)
            .await?;
        Self::audit(
            &mut tx,
            &code,
            caller,
            NewEvent {
                action: "RateProjectRisk".into(),
                changed_fields: vec!["risk_rating".into()],
                reason: format!("{rating}: {}", req.comment),
                ..NewEvent::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(pb::RiskRating {
            rating: req.rating,
            comment: req.comment,
            rating_date: req.rating_date,
            rated_by: caller.subject.clone(),
        })
    }

    pub(crate) async fn list_ratings(
        &self,
        caller: &Caller,
        name: &str,
    ) -> ServiceResult<Vec<pb::RiskRating>> {
        let code = check::parse_project_name("name", name)?;
        self.visible_project(caller, &code).await?;
        let rows = sqlx::query("SELECT rating, comment, rating_date, rated_by FROM risk_ratings WHERE project_code = $1 ORDER BY rating_date, create_time")
            .bind(code)
            .fetch_all(&self.store.db.pool)
            .await?;
        rows.iter().map(rating_proto).collect()
    }

    // ---- snapshots ----

    async fn latest_percent(&self) -> ServiceResult<BTreeMap<String, i64>> {
        let rows = sqlx::query("SELECT project_code, percent_complete FROM progress_reports ORDER BY report_date, create_time")
            .fetch_all(&self.store.db.pool)
            .await?;
        let mut out = BTreeMap::new();
        for r in rows {
            out.insert(r.try_get::<String, _>(0)?, r.try_get::<i64, _>(1)?);
        }
        Ok(out)
    }

    pub(crate) async fn create_snapshot(&self, caller: &Caller, month: &str) -> ServiceResult<i32> {
        let valid = month.len() == 7
            && NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").is_ok();
        if !valid {
            return Err(ServiceError::field("month", "must be YYYY-MM"));
        }
        // A snapshot freezes today's figures: labelled with any month but the one just closed
        // it would misstate that month, and block its real snapshot.
        let closed = previous_month();
        if month != closed {
            return Err(ServiceError::field(
                "month",
                format!(
                    "must be {closed}, the month just closed: a snapshot freezes today's figures"
                ),
            ));
        }
        caller.require(&[Role::Office])?;
        self.take_snapshot(month).await
    }

    /// Takes the previous month's snapshot if nobody has yet: the outbox worker calls this on
    /// every pass, so each month is frozen early in the next without anyone remembering to.
    /// Returns the month taken, if any.
    pub async fn snapshot_previous_month_if_due(&self) -> ServiceResult<Option<String>> {
        let month = previous_month();
        let exists = sqlx::query("SELECT 1 FROM snapshots WHERE month = $1 LIMIT 1")
            .bind(month.clone())
            .fetch_optional(&self.store.db.pool)
            .await?;
        if exists.is_some() {
            return Ok(None);
        }
        match self.take_snapshot(&month).await {
            Ok(_) => Ok(Some(month)),
            // Another replica took it first.
            Err(ServiceError::AlreadyExists { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn take_snapshot(&self, month: &str) -> ServiceResult<i32> {
        let exists = sqlx::query("SELECT 1 FROM snapshots WHERE month = $1 LIMIT 1")
            .bind(month.to_owned())
            .fetch_optional(&self.store.db.pool)
            .await?;
        if exists.is_some() {
            return Err(ServiceError::AlreadyExists {
                resource_type: "snapshot",
                name: format!("snapshots/{month}"),
            });
        }
        let projects = self
            .store
            .list_projects(Vec::new(), None, false, i64::MAX / 2)
            .await?;
        let active: Vec<&ProjectRow> = projects
            .iter()
            .filter(|p| {
                !matches!(
                    p.state().unwrap_or(S::Unspecified),
                    S::Draft | S::Withdrawn | S::Rejected | S::Closed
                )
            })
            .collect();
        let codes: Vec<String> = active.iter().map(|p| p.code.clone()).collect();
        let milestones = self.milestone_rows(&codes).await?;
        let percent = self.latest_percent().await?;
        let at = to_stored(now());
        let mut tx = self.store.db.begin_write().await?;
        for p in &active {
            let ms: Vec<&MilestoneRow> = milestones
                .iter()
                .filter(|(c, _)| c == &p.code)
                .map(|(_, m)| m)
                .collect();
            let v = variance::variance(&Self::figures(&ms)?, self.policy.bands);
            let figures = SnapshotFigures {
                state: p.state.clone(),
                approved_budget_fen: p.approved_budget_fen.unwrap_or_default(),
                contract_amount_fen: p.contract_amount_fen.unwrap_or_default(),
                disbursed_fen: p.disbursed_fen,
                cost_variance_bp: v.cost_variance_bp,
                schedule_variance_bp: v.schedule_variance_bp,
                color: color_proto(v.color)
                    .as_str_name()
                    .trim_start_matches("RISK_COLOR_")
                    .to_owned(),
                percent_complete: percent.get(&p.code).copied().unwrap_or(0),
            };
            let inserted = sqlx::query("INSERT INTO snapshots (month, project_code, figures, create_time) VALUES ($1, $2, $3, $4)")
                .bind(month.to_owned())
                .bind(p.code.clone())
                .bind(to_json(&figures))
                .bind(at.clone())
                .execute(&mut *tx)
                .await;
            if let Err(e) = inserted {
                return Err(if govit_platform::db::is_unique_violation(&e) {
                    ServiceError::AlreadyExists {
                        resource_type: "snapshot",
                        name: format!("snapshots/{month}"),
                    }
                } else {
                    e.into()
                });
            }
        }
        tx.commit().await?;
        tracing::info!(month, projects = active.len(), "monthly snapshot taken");
        Ok(active.len() as i32)
    }

    pub(crate) async fn list_snapshots(
        &self,
        caller: &Caller,
        month: &str,
        project: &str,
    ) -> ServiceResult<Vec<pb::ProjectSnapshot>> {
        let code = if project.is_empty() {
            String::new()
        } else {
            check::parse_project_name("project", project)?
        };
        if !month.is_empty() && month.len() != 7 {
            return Err(ServiceError::field("month", "must be YYYY-MM"));
        }
        caller.require(&[
            Role::Office,
            Role::Supervisor,
            Role::Inspector,
            Role::Service,
        ])?;
        let rows = sqlx::query(
            "SELECT month, project_code, figures, create_time FROM snapshots WHERE ($1 = '' OR month = $1) AND ($2 = '' OR project_code = $2) \
             ORDER BY month, project_code",
        )
        .bind(month.to_owned())
        .bind(code)
        .fetch_all(&self.store.db.pool)
        .await?;
        rows.iter()
            .map(|r| -> ServiceResult<_> {
                let f: SnapshotFigures =
                    serde_json::from_str(&r.try_get::<String, _>(2)?).map_err(internal)?;
                Ok(pb::ProjectSnapshot {
                    month: r.try_get(0)?,
                    project: project_name(&r.try_get::<String, _>(1)?),
                    state: crate::lifecycle::state_from_name(&f.state).unwrap_or_default() as i32,
                    approved_budget_fen: f.approved_budget_fen,
                    contract_amount_fen: f.contract_amount_fen,
                    disbursed_fen: f.disbursed_fen,
                    cost_variance_bp: f.cost_variance_bp,
                    schedule_variance_bp: f.schedule_variance_bp,
                    color: pb::RiskColor::from_str_name(&format!("RISK_COLOR_{}", f.color))
                        .unwrap_or_default() as i32,
                    percent_complete: f.percent_complete as i32,
                    create_time: Some(
                        stored_to_timestamp(&r.try_get::<String, _>(3)?).map_err(internal)?,
                    ),
                })
            })
            .collect()
    }

    // ---- inspections ----

    pub(crate) async fn create_inspection(
        &self,
        caller: &Caller,
        req: pb::CreateInspectionRequest,
    ) -> ServiceResult<pb::Inspection> {
        let i = req.inspection.unwrap_or_default();
        let mut v = Violations::new();
        let date = date_field(
            &mut v,
            "inspection.inspection_date",
            i.inspection_date.as_ref(),
            true,
        );
        if i.scopes.is_empty() {
            v.add(
                "inspection.scopes",
                "must name at least one of QUALITY, PROGRESS, FUNDS, BUDGET",
            );
        }
        let mut scopes = Vec::new();
        for (n, s) in i.scopes.iter().enumerate() {
            if let Some(scope) = check::enum_value::<pb::InspectionScope>(
                &mut v,
                &format!("inspection.scopes[{n}]"),
                *s,
                false,
            ) {
                scopes.push(
                    scope
                        .as_str_name()
                        .trim_start_matches("INSPECTION_SCOPE_")
                        .to_owned(),
                );
            }
        }
        for (n, p) in i.participants.iter().enumerate() {
            check::text(&mut v, &format!("inspection.participants[{n}]"), p, 200);
        }
        let mut findings = Vec::new();
        for (n, f) in i.findings.iter().enumerate() {
            let field = format!("inspection.findings[{n}]");
            check::text(
                &mut v,
                &format!("{field}.description"),
                &f.description,
                MAX_TEXT_CHARS,
            );
            let severity = check::enum_value::<pb::FindingSeverity>(
                &mut v,
                &format!("{field}.severity"),
                f.severity,
                false,
            );
            check::text(
                &mut v,
                &format!("{field}.rectification_required"),
                &f.rectification_required,
                MAX_TEXT_CHARS,
            );
            if !(1..=250).contains(&f.deadline_working_days) {
                v.add(
                    format!("{field}.deadline_working_days"),
                    "must be between 1 and 250",
                );
            }
            findings.push((
                f,
                severity.map(|s| {
                    s.as_str_name()
                        .trim_start_matches("FINDING_SEVERITY_")
                        .to_owned()
                }),
            ));
        }
        v.finish()?;
        let project = self
            .project_for_change(caller, &req.parent, &[Role::Office])
            .await?;
        let date =
            date.ok_or_else(|| ServiceError::field("inspection.inspection_date", "is required"))?;
        let id = uuid::Uuid::now_v7().simple().to_string();
        let mut dues = Vec::new();
        for (f, _) in &findings {
            dues.push(
                self.add_working_days(date, f.deadline_working_days as u32)
                    .await?,
            );
        }
        let mut tx = self.store.db.begin_write().await?;
        sqlx::query("INSERT INTO inspections (id, project_code, inspection_date, scopes, participants, created_by, create_time) VALUES ($1, $2, $3, $4, $5, $6, $7)")
            .bind(id.clone())
            .bind(project.code.clone())
            .bind(date_to_stored(date))
            .bind(to_json(&scopes))
            .bind(to_json(&i.participants))
            .bind(caller.subject.clone())
            .bind(to_stored(now()))
            .execute(&mut *tx)
            .await?;
        for (n, (f, severity)) in findings.iter().enumerate() {
            let due = dues[n];
            sqlx::query(
                "INSERT INTO findings (inspection_id, seq, project_code, description, severity, rectification_required, deadline_working_days, \
                 due_date, rectified, rectification, rectified_date) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, '', NULL)",
            )
            .bind(id.clone())
            .bind(n as i64 + 1)
            .bind(project.code.clone())
            .bind(f.description.clone())
            .bind(severity.clone().unwrap_or_default())
            .bind(f.rectification_required.clone())
            .bind(i64::from(f.deadline_working_days))
            .bind(date_to_stored(due))
            .execute(&mut *tx)
            .await?;
        }
        Self::audit(
            &mut tx,
            &project.code,
            caller,
            NewEvent {
                action: "CreateInspection".into(),
                changed_fields: vec![format!("inspections/{id}")],
                reason: format!("{} findings", findings.len()),
                ..NewEvent::default()
            },
        )
        .await?;
        tx.commit().await?;
        self.inspection(&project.code, &id).await
    }

    async fn findings_where(
        &self,
        clause: &str,
        args: Vec<String>,
    ) -> ServiceResult<Vec<pb::Finding>> {
        let sql =
            format!("SELECT * FROM findings WHERE {clause} ORDER BY due_date, inspection_id, seq");
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for a in args {
            q = q.bind(a);
        }
        q.fetch_all(&self.store.db.pool)
            .await?
            .iter()
            .map(finding_proto)
            .collect()
    }

    async fn inspection(&self, code: &str, id: &str) -> ServiceResult<pb::Inspection> {
        let r = sqlx::query("SELECT * FROM inspections WHERE project_code = $1 AND id = $2")
            .bind(code.to_owned())
            .bind(id.to_owned())
            .fetch_optional(&self.store.db.pool)
            .await?
            .ok_or_else(|| {
                ServiceError::not_found("inspection", format!("projects/{code}/inspections/{id}"))
            })?;
        let scopes: Vec<String> =
            serde_json::from_str(&r.try_get::<String, _>("scopes")?).map_err(internal)?;
        Ok(pb::Inspection {
            name: format!("projects/{code}/inspections/{id}"),
            inspection_date: Some(date_to_proto(
                date_from_stored(&r.try_get::<String, _>("inspection_date")?).map_err(internal)?,
            )),
            scopes: scopes
                .iter()
                .map(|s| {
                    pb::InspectionScope::from_str_name(&format!("INSPECTION_SCOPE_{s}"))
                        .unwrap_or_default() as i32
                })
                .collect(),
            participants: serde_json::from_str(&r.try_get::<String, _>("participants")?)
                .map_err(internal)?,
            findings: {
                let mut f = self
                    .findings_where("inspection_id = $1", vec![id.to_owned()])
                    .await?;
                f.sort_by(|a, b| a.name.cmp(&b.name));
                f
            },
            created_by: r.try_get("created_by")?,
            create_time: Some(
                stored_to_timestamp(&r.try_get::<String, _>("create_time")?).map_err(internal)?,
            ),
        })
    }

    pub(crate) async fn record_rectification(
        &self,
        caller: &Caller,
        req: pb::RecordRectificationRequest,
    ) -> ServiceResult<pb::Inspection> {
        let parts: Vec<&str> = req.finding.split('/').collect();
        let parsed = match parts.as_slice() {
            ["projects", code, "inspections", id, "findings", n]
                if check::is_project_code(code) =>
            {
                n.parse::<i64>()
                    .ok()
                    .map(|n| (code.to_string(), id.to_string(), n))
            }
            _ => None,
        };
        let mut v = Violations::new();
        if parsed.is_none() {
            v.add(
                "finding",
                "must be projects/{code}/inspections/{id}/findings/{n}",
            );
        }
        check::text(&mut v, "rectification", &req.rectification, MAX_TEXT_CHARS);
        let date = date_field(&mut v, "rectified_date", req.rectified_date.as_ref(), true);
        v.finish()?;
        let (code, id, n) = parsed.ok_or_else(|| ServiceError::field("finding", "is invalid"))?;
        caller.require(&[Role::Applicant, Role::Office])?;
        self.visible_project(caller, &code).await?;
        let mut tx = self.store.db.begin_write().await?;
        let done = sqlx::query(
            "UPDATE findings SET rectified = 1, rectification = $1, rectified_date = $2 WHERE project_code = $3 AND inspection_id = $4 \
             AND seq = $5 AND rectified = 0",
        )
        .bind(req.rectification.clone())
        .bind(date.map(date_to_stored))
        .bind(code.clone())
        .bind(id.clone())
        .bind(n)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            drop(tx);
            let exists = self
                .findings_where(
                    "project_code = $1 AND inspection_id = $2",
                    vec![code.clone(), id.clone()],
                )
                .await?;
            return Err(if exists.iter().any(|f| f.name == req.finding) {
                ServiceError::precondition(
                    "STATE_CONFLICT",
                    req.finding.clone(),
                    format!("{} is already rectified", req.finding),
                )
            } else {
                ServiceError::not_found("finding", req.finding.clone())
            });
        }
        Self::audit(
            &mut tx,
            &code,
            caller,
            NewEvent {
                action: "RecordRectification".into(),
                changed_fields: vec![format!("inspections/{id}/findings/{n}")],
                reason: req.rectification,
                ..NewEvent::default()
            },
        )
        .await?;
        tx.commit().await?;
        self.inspection(&code, &id).await
    }

    pub(crate) async fn list_inspections(
        &self,
        caller: &Caller,
        parent: &str,
    ) -> ServiceResult<Vec<pb::Inspection>> {
        let code = check::parse_project_name("parent", parent)?;
        self.visible_project(caller, &code).await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM inspections WHERE project_code = $1 ORDER BY inspection_date, id",
        )
        .bind(code.clone())
        .fetch_all(&self.store.db.pool)
        .await?;
        let mut out = Vec::new();
        for id in ids {
            out.push(self.inspection(&code, &id).await?);
        }
        Ok(out)
    }

    pub(crate) async fn overdue_findings(
        &self,
        caller: &Caller,
        as_of: Option<&govit_proto::google::r#type::Date>,
    ) -> ServiceResult<Vec<pb::Finding>> {
        let day = match as_of {
            Some(d) => date_from_proto(d)
                .ok_or_else(|| ServiceError::field("as_of", "is not a calendar date"))?,
            None => chrono::Utc::now().date_naive(),
        };
        caller.require(&[Role::Office, Role::Supervisor, Role::Inspector])?;
        self.findings_where("rectified = 0 AND due_date < $1", vec![date_to_stored(day)])
            .await
    }

    // ---- notices and records ----

    pub(crate) async fn create_notice(
        &self,
        caller: &Caller,
        req: pb::CreateOrganizationNoticeRequest,
    ) -> ServiceResult<pb::OrganizationNotice> {
        let code = check::parse_org_name("parent", &req.parent)?;
        let n = req.notice.unwrap_or_default();
        let mut v = Violations::new();
        let kind = check::enum_value::<pb::NoticeKind>(&mut v, "notice.kind", n.kind, false);
        check::text(&mut v, "notice.grounds", &n.grounds, MAX_TEXT_CHARS);
        if kind == Some(pb::NoticeKind::Violation) {
            check::text(&mut v, "notice.handling", &n.handling, MAX_TEXT_CHARS);
        } else {
            check::optional_text(&mut v, "notice.handling", &n.handling, MAX_TEXT_CHARS);
        }
        let date = date_field(&mut v, "notice.notice_date", n.notice_date.as_ref(), true);
        let mut codes = Vec::new();
        for (i, p) in n.projects.iter().enumerate() {
            match check::parse_project_name("x", p) {
                Ok(c) => codes.push(c),
                Err(_) => v.add(format!("notice.projects[{i}]"), "must be projects/{code}"),
            }
        }
        if n.projects.is_empty() {
            v.add(
                "notice.projects",
                "must name the projects the notice concerns",
            );
        }
        v.finish()?;
        caller.require(&[Role::Office])?;
        if !self.store.org_exists(code.as_str()).await? {
            return Err(ServiceError::not_found(
                "organization",
                org_name(code.as_str()),
            ));
        }
        for c in &codes {
            let p = self
                .store
                .get_project(c)
                .await?
                .ok_or_else(|| ServiceError::not_found("project", project_name(c)))?;
            let involved = [
                Some(&p.applicant),
                p.contractor.as_ref(),
                p.supervision_firm.as_ref(),
                p.feasibility_consultancy.as_ref(),
            ];
            if !involved
                .iter()
                .flatten()
                .any(|o| o.as_str() == code.as_str())
            {
                return Err(ServiceError::field(
                    "notice.projects",
                    format!(
                        "{} has no part in {}",
                        org_name(code.as_str()),
                        project_name(c)
                    ),
                ));
            }
        }
        let kind = kind
            .unwrap_or_default()
            .as_str_name()
            .trim_start_matches("NOTICE_KIND_")
            .to_owned();
        let id = uuid::Uuid::now_v7().simple().to_string();
        let at = to_stored(now());
        let mut tx = self.store.db.begin_write().await?;
        sqlx::query(
            "INSERT INTO organization_notices (id, credit_code, kind, projects, grounds, handling, notice_date, issued_by, create_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id.clone())
        .bind(code.to_string())
        .bind(kind.clone())
        .bind(to_json(&n.projects))
        .bind(n.grounds.clone())
        .bind(n.handling.clone())
        .bind(date.map(date_to_stored).unwrap_or_default())
        .bind(caller.subject.clone())
        .bind(at.clone())
        .execute(&mut *tx)
        .await?;
        let seq: i64 = sqlx::query("UPDATE organizations SET event_count = event_count + 1 WHERE credit_code = $1 RETURNING event_count")
            .bind(code.to_string())
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        insert_event(
            &mut tx,
            &org_name(code.as_str()),
            seq,
            &at,
            caller,
            &NewEvent {
                action: "CreateOrganizationNotice".into(),
                changed_fields: vec![format!("notices/{id}")],
                reason: format!("{kind}: {}", n.grounds),
                ..NewEvent::default()
            },
        )
        .await?;
        tx.commit().await?;
        Ok(pb::OrganizationNotice {
            name: format!("{}/notices/{id}", org_name(code.as_str())),
            kind: pb::NoticeKind::from_str_name(&format!("NOTICE_KIND_{kind}")).unwrap_or_default()
                as i32,
            projects: n.projects,
            grounds: n.grounds,
            handling: n.handling,
            notice_date: n.notice_date,
            issued_by: caller.subject.clone(),
        })
    }

    pub(crate) async fn organization_record(
        &self,
        caller: &Caller,
        name: &str,
    ) -> ServiceResult<pb::OrganizationRecord> {
        let code = check::parse_org_name("name", name)?;
        caller.require(&[
            Role::Office,
            Role::Supervisor,
            Role::Inspector,
            Role::Applicant,
        ])?;
        if caller.is(Role::Applicant) && caller.organization.as_deref() != Some(code.as_str()) {
            return Err(ServiceError::PermissionDenied(
                "applicants may only see their own organisation's record".into(),
            ));
        }
        let org = self
            .store
            .get_org(code.as_str())
            .await?
            .ok_or_else(|| ServiceError::not_found("organization", name.to_owned()))?;
        // An applicant sees its own projects only, not those it took part in for others.
        let own_only = i64::from(caller.is(Role::Applicant));
        let codes: Vec<String> = sqlx::query_scalar(
            "SELECT code FROM projects WHERE (applicant = $1 OR ($2 = 0 AND (contractor = $1 OR supervision_firm = $1 \
             OR feasibility_consultancy = $1))) ORDER BY year, seq",
        )
        .bind(code.to_string())
        .bind(own_only)
        .fetch_all(&self.store.db.pool)
        .await?;
        let mut findings = Vec::new();
        for c in &codes {
            findings.extend(
                self.findings_where("project_code = $1", vec![c.clone()])
                    .await?,
            );
        }
        let rows = sqlx::query("SELECT * FROM organization_notices WHERE credit_code = $1 ORDER BY notice_date, create_time")
            .bind(code.to_string())
            .fetch_all(&self.store.db.pool)
            .await?;
        let (mut commendations, mut violations) = (Vec::new(), Vec::new());
        for r in rows {
            let kind: String = r.try_get("kind")?;
            let notice = pb::OrganizationNotice {
                name: format!("{name}/notices/{}", r.try_get::<String, _>("id")?),
                kind: pb::NoticeKind::from_str_name(&format!("NOTICE_KIND_{kind}"))
                    .unwrap_or_default() as i32,
                projects: serde_json::from_str(&r.try_get::<String, _>("projects")?)
                    .map_err(internal)?,
                grounds: r.try_get("grounds")?,
                handling: r.try_get("handling")?,
                notice_date: Some(date_to_proto(
                    date_from_stored(&r.try_get::<String, _>("notice_date")?).map_err(internal)?,
                )),
                issued_by: r.try_get("issued_by")?,
            };
            if kind == "COMMENDATION" {
                commendations.push(notice)
            } else {
                violations.push(notice)
            }
        }
        Ok(pb::OrganizationRecord {
            organization: Some(org.to_proto().map_err(internal)?),
            projects: codes.iter().map(|c| project_name(c)).collect(),
            findings,
            commendations,
            violations,
        })
    }

    // ---- the portfolio ----

    pub(crate) async fn portfolio(
        &self,
        caller: &Caller,
        req: pb::GetPortfolioSummaryRequest,
    ) -> ServiceResult<pb::PortfolioSummary> {
        let mut v = Violations::new();
        if req.year != 0 && !(2000..=2100).contains(&req.year) {
            v.add("year", "must be 0 (all) or a year between 2000 and 2100");
        }
        let org = if req.organization.is_empty() {
            None
        } else {
            check::org_name(&mut v, "organization", &req.organization)
        };
        if !req.category.is_empty() && !govit_platform::validate::is_code(&req.category) {
            v.add(
                "category",
                "must be 1 to 64 characters of A-Z a-z 0-9 . _ -",
            );
        }
        v.finish()?;
        caller.require(&BUREAUS)?;
        let mut filters = Vec::new();
        if req.year != 0 {
            filters.push(("year", crate::store::Arg::Int(i64::from(req.year))));
        }
        if let Some(o) = &org {
            filters.push(("applicant", crate::store::Arg::Text(o.to_string())));
        }
        if !req.category.is_empty() {
            filters.push(("category", crate::store::Arg::Text(req.category.clone())));
        }
        let projects = self
            .store
            .list_projects(filters, None, false, i64::MAX / 2)
            .await?;
        let codes: Vec<String> = projects.iter().map(|p| p.code.clone()).collect();
        let milestones = self.milestone_rows(&codes).await?;
        let mut counts: BTreeMap<i32, i32> = BTreeMap::new();
        let mut summary = pb::PortfolioSummary {
            project_count: projects.len() as i32,
            ..Default::default()
        };
        let today = chrono::Utc::now().date_naive();
        let accepted = self.review_starts().await?;
        // The scheduling service knows the real deadlines; alone, this service estimates them.
        let overdue_from_scheduling = self.overdue_review_projects().await?;
        for p in &projects {
            let state = p.state().map_err(internal)?;
            *counts.entry(state as i32).or_default() += 1;
            summary.total_approved_fen += p.approved_budget_fen.unwrap_or_default();
            summary.total_contracted_fen += p.contract_amount_fen.unwrap_or_default();
            summary.total_disbursed_fen += p.disbursed_fen;
            let ms: Vec<&MilestoneRow> = milestones
                .iter()
                .filter(|(c, _)| c == &p.code)
                .map(|(_, m)| m)
                .collect();
            if variance::variance(&Self::figures(&ms)?, self.policy.bands).color != Color::Green {
                summary.beyond_variance_bands.push(p.name());
            }
            if let (Some(original), Some(approved)) =
                (p.original_approved_fen, p.approved_budget_fen)
                && variance::beyond_threshold(original, approved, self.policy.budget_threshold_bp)
            {
                summary.beyond_budget_threshold.push(p.name());
            }
            let overdue = match &overdue_from_scheduling {
                Some(projects) => projects.contains(&p.code),
                None => {
                    state == S::UnderPreliminaryReview
                        && accepted.get(&p.code).is_some_and(|start| {
                            workdays::add_working_days(
                                *start,
                                self.policy.review_deadline_working_days,
                            ) < today
                        })
                }
            };
            if overdue {
                summary.overdue_reviews.push(p.name());
            }
        }
        summary.counts = counts
            .into_iter()
            .map(|(state, count)| pb::StateCount { state, count })
            .collect();
        let overdue = self
            .findings_where(
                "rectified = 0 AND due_date < $1",
                vec![date_to_stored(today)],
            )
            .await?;
        summary.overdue_findings = overdue
            .iter()
            .filter(|f| {
                codes
                    .iter()
                    .any(|c| f.name.starts_with(&format!("projects/{c}/")))
            })
            .count() as i32;
        Ok(summary)
    }

    /// `n` working days after `start`: on the scheduling service's calendar when it is
    /// configured (refused for a year it does not cover), else Monday to Friday.
    async fn add_working_days(&self, start: NaiveDate, n: u32) -> ServiceResult<NaiveDate> {
        let Some(calendar) = &self.calendar else {
            return Ok(workdays::add_working_days(start, n));
        };
        let request = govit_proto::scheduling::v1::AddWorkingDaysRequest {
            date: Some(date_to_proto(start)),
            days: n as i32,
        };
        match calendar.clone().add_working_days(request).await {
            Ok(r) => r
                .into_inner()
                .date
                .as_ref()
                .and_then(date_from_proto)
                .ok_or_else(|| internal(anyhow::anyhow!("the calendar answered without a date"))),
            Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                Err(ServiceError::precondition(
                    "CALENDAR_YEAR_MISSING",
                    "calendar",
                    s.message().to_owned(),
                ))
            }
            Err(s) => Err(ServiceError::Unavailable(format!(
                "the working-day calendar cannot be reached: {}",
                s.message()
            ))),
        }
    }

    /// Projects whose preliminary review is past its deadline, as the scheduling service
    /// reports them; None when it is not configured.
    async fn overdue_review_projects(
        &self,
    ) -> ServiceResult<Option<std::collections::BTreeSet<String>>> {
        use govit_proto::scheduling::v1 as spb;
        let Some(calendar) = &self.calendar else {
            return Ok(None);
        };
        let mut out = std::collections::BTreeSet::new();
        let mut token = String::new();
        loop {
            let page = calendar
                .clone()
                .list_reviews(spb::ListReviewsRequest {
                    overdue_only: true,
                    page_size: 200,
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await
                .map_err(|s| ServiceError::from_peer("review scheduling service", s))?
                .into_inner();
            out.extend(
                page.reviews
                    .into_iter()
                    .filter_map(|r| r.project.strip_prefix("projects/").map(str::to_owned)),
            );
            if page.next_page_token.is_empty() {
                return Ok(Some(out));
            }
            token = page.next_page_token;
        }
    }

    /// When each project was last accepted for review (UTC date of the event).
    async fn review_starts(&self) -> ServiceResult<BTreeMap<String, NaiveDate>> {
        let rows = sqlx::query("SELECT resource, occur_time FROM audit_events WHERE action = 'AcceptForReview' ORDER BY occur_time")
            .fetch_all(&self.store.db.pool)
            .await?;
        let mut out = BTreeMap::new();
        for r in rows {
            let resource: String = r.try_get(0)?;
            let at: String = r.try_get(1)?;
            let day = govit_platform::time::from_stored(&at)
                .map_err(internal)?
                .date_naive();
            out.insert(resource.trim_start_matches("projects/").to_owned(), day);
        }
        Ok(out)
    }
}

fn rating_proto(r: &sqlx::any::AnyRow) -> ServiceResult<pb::RiskRating> {
    let rating: String = r.try_get(0)?;
    Ok(pb::RiskRating {
        rating: pb::RiskColor::from_str_name(&format!("RISK_COLOR_{rating}")).unwrap_or_default()
            as i32,
        comment: r.try_get(1)?,
        rating_date: Some(date_to_proto(
            date_from_stored(&r.try_get::<String, _>(2)?).map_err(internal)?,
        )),
        rated_by: r.try_get(3)?,
    })
}

fn progress_proto(r: &sqlx::any::AnyRow) -> ServiceResult<pb::ProgressReport> {
    let state: String = r.try_get("state")?;
    Ok(pb::ProgressReport {
        name: format!(
            "projects/{}/progressReports/{}",
            r.try_get::<String, _>("project_code")?,
            r.try_get::<String, _>("id")?
        ),
        report_date: Some(date_to_proto(
            date_from_stored(&r.try_get::<String, _>("report_date")?).map_err(internal)?,
        )),
        percent_complete: r.try_get::<i64, _>("percent_complete")? as i32,
        narrative: r.try_get("narrative")?,
        state: pb::ProgressReportState::from_str_name(&format!("PROGRESS_REPORT_STATE_{state}"))
            .unwrap_or_default() as i32,
        filed_by: r.try_get("filed_by")?,
        review_comment: r.try_get("review_comment")?,
        reviewed_by: r.try_get("reviewed_by")?,
        create_time: Some(
            stored_to_timestamp(&r.try_get::<String, _>("create_time")?).map_err(internal)?,
        ),
    })
}

fn finding_proto(r: &sqlx::any::AnyRow) -> ServiceResult<pb::Finding> {
    let rectified_date: Option<String> = r.try_get("rectified_date")?;
    let severity: String = r.try_get("severity")?;
    Ok(pb::Finding {
        name: format!(
            "projects/{}/inspections/{}/findings/{}",
            r.try_get::<String, _>("project_code")?,
            r.try_get::<String, _>("inspection_id")?,
            r.try_get::<i64, _>("seq")?
        ),
        description: r.try_get("description")?,
        severity: pb::FindingSeverity::from_str_name(&format!("FINDING_SEVERITY_{severity}"))
            .unwrap_or_default() as i32,
        rectification_required: r.try_get("rectification_required")?,
        deadline_working_days: r.try_get::<i64, _>("deadline_working_days")? as i32,
        due_date: Some(date_to_proto(
            date_from_stored(&r.try_get::<String, _>("due_date")?).map_err(internal)?,
        )),
        rectified: r.try_get::<i64, _>("rectified")? != 0,
        rectification: r.try_get("rectification")?,
        rectified_date: rectified_date
            .as_deref()
            .map(date_from_stored)
            .transpose()
            .map_err(internal)?
            .map(date_to_proto),
    })
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MilestoneRow {
    pub id: String,
    pub project_code: String,
    pub display_name: String,
    pub planned_start: String,
    pub planned_end: String,
    pub projected_end: String,
    pub actual_start: Option<String>,
    pub actual_end: Option<String>,
    pub planned_cost_fen: i64,
    pub projected_cost_fen: i64,
    pub actual_cost_fen: Option<i64>,
    pub version: i64,
    pub create_time: String,
    pub update_time: String,
}

impl MilestoneRow {
    fn blank(id: String) -> Self {
        let at = to_stored(now());
        MilestoneRow {
            id,
            project_code: String::new(),
            display_name: String::new(),
            planned_start: String::new(),
            planned_end: String::new(),
            projected_end: String::new(),
            actual_start: None,
            actual_end: None,
            planned_cost_fen: 0,
            projected_cost_fen: 0,
            actual_cost_fen: None,
            version: 1,
            create_time: at.clone(),
            update_time: at,
        }
    }

    async fn insert(&self, tx: &mut govit_platform::Tx) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO milestones (id, project_code, display_name, planned_start, planned_end, projected_end, actual_start, actual_end, \
             planned_cost_fen, projected_cost_fen, actual_cost_fen, version, create_time, update_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12, $12)",
        )
        .bind(self.id.clone())
        .bind(self.project_code.clone())
        .bind(self.display_name.clone())
        .bind(self.planned_start.clone())
        .bind(self.planned_end.clone())
        .bind(self.projected_end.clone())
        .bind(self.actual_start.clone())
        .bind(self.actual_end.clone())
        .bind(self.planned_cost_fen)
        .bind(self.projected_cost_fen)
        .bind(self.actual_cost_fen)
        .bind(self.create_time.clone())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    fn to_proto(&self) -> anyhow::Result<pb::Milestone> {
        let date = |s: &str| -> anyhow::Result<_> { Ok(Some(date_to_proto(date_from_stored(s)?))) };
        Ok(pb::Milestone {
            name: format!("projects/{}/milestones/{}", self.project_code, self.id),
            display_name: self.display_name.clone(),
            planned_start_date: date(&self.planned_start)?,
            planned_end_date: date(&self.planned_end)?,
            projected_end_date: date(&self.projected_end)?,
            actual_start_date: self
                .actual_start
                .as_deref()
                .map(date)
                .transpose()?
                .flatten(),
            actual_end_date: self.actual_end.as_deref().map(date).transpose()?.flatten(),
            planned_cost_fen: self.planned_cost_fen,
            projected_cost_fen: self.projected_cost_fen,
            actual_cost_fen: self.actual_cost_fen.unwrap_or_default(),
            etag: self.version.to_string(),
        })
    }
}

/// The month just closed, in Beijing time, as YYYY-MM.
fn previous_month() -> String {
    let today = govit_platform::time::beijing_today();
    today
        .with_day(1)
        .and_then(|d| d.pred_opt())
        .unwrap_or(today)
        .format("%Y-%m")
        .to_string()
}
