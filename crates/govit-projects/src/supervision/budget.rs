//! Budget control: requests to raise a project's approved budget, office's decision on each,
//! and the baselines every approved figure leaves behind.

use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, StateMachine, Tx, Violations,
    time::{date_from_stored, date_to_proto, date_to_stored, now, stored_to_timestamp, to_stored},
};
use govit_proto::{
    StoredEnum,
    projects::v1::{self as pb, BudgetChangeState},
};
use serde::{Deserialize, Serialize};
use sqlx::AssertSqlSafe;

use super::{KEEPERS, date_field, internal, new_id, next_sequence};
use crate::{
    ProjectsService,
    lifecycle::TERMINAL,
    model::{Fen, ProjectCode, to_json},
    store::{NewEvent, insert_baseline},
    validation::{self as check, MAX_REASON_CHARS, MAX_TEXT_CHARS},
    variance,
};

/// Where a budget baseline came from: defined once, in the protos.
pub(crate) use pb::BudgetBaselineSource as BaselineSource;

/// Office's decision on a pending budget change, taken once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BudgetChangeEvent {
    Approve,
    Refuse,
}

impl StateMachine for BudgetChangeEvent {
    type State = BudgetChangeState;

    fn sources(self) -> &'static [BudgetChangeState] {
        &[BudgetChangeState::Pending]
    }

    fn target(self) -> BudgetChangeState {
        match self {
            BudgetChangeEvent::Approve => BudgetChangeState::Approved,
            BudgetChangeEvent::Refuse => BudgetChangeState::Refused,
        }
    }
}

impl BudgetChangeEvent {
    /// The RPC, as the audit trail records it.
    fn action(self) -> &'static str {
        match self {
            BudgetChangeEvent::Approve => "ApproveBudgetChange",
            BudgetChangeEvent::Refuse => "RefuseBudgetChange",
        }
    }

    /// Whether the decision moves the project's approved budget, leaving a new baseline and
    /// a new project version (so a stale etag elsewhere notices).
    fn moves_budget(self) -> bool {
        matches!(self, BudgetChangeEvent::Approve)
    }

    /// The refusal of a change no longer pending, in the words clients know.
    fn refusal(self, name: &str, from: BudgetChangeState) -> ServiceError {
        ServiceError::precondition(
            "STATE_CONFLICT",
            name,
            format!("{name} is already {}", from.as_stored()),
        )
    }
}

/// The approving department's re-approval of a budget beyond the threshold, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct HigherApprovalRec {
    department: String,
    reference: String,
    date: String,
}

impl HigherApprovalRec {
    fn to_proto(&self) -> anyhow::Result<pb::HigherApproval> {
        Ok(pb::HigherApproval {
            department: self.department.clone(),
            reference: self.reference.clone(),
            approval_date: Some(date_to_proto(date_from_stored(&self.date)?)),
        })
    }
}

/// A request to raise the approved budget, checked.
pub(crate) struct NewBudgetChange {
    code: ProjectCode,
    requested_budget: Fen,
    reason: String,
    funding: pb::FundingSource,
}

impl NewBudgetChange {
    pub(crate) const ROLES: &[Role] = &KEEPERS;
}

impl TryFrom<pb::CreateBudgetChangeRequest> for NewBudgetChange {
    type Error = ServiceError;

    fn try_from(req: pb::CreateBudgetChangeRequest) -> ServiceResult<Self> {
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
        Ok(Self {
            code: check::parse_project_name("parent", &req.parent)?,
            requested_budget: Fen::new(req.requested_budget_fen),
            reason: req.reason,
            funding: funding
                .ok_or_else(|| ServiceError::field("funding_source", "must be specified"))?,
        })
    }
}

/// Office's decision on a budget change, checked.
pub(crate) struct BudgetDecision {
    name: String,
    code: ProjectCode,
    id: String,
    comment: String,
    event: BudgetChangeEvent,
    higher: Option<HigherApprovalRec>,
}

impl BudgetDecision {
    pub(crate) const ROLES: &[Role] = &[Role::Office];

    fn checked(
        event: BudgetChangeEvent,
        name: String,
        comment: String,
        higher: Option<pb::HigherApproval>,
    ) -> ServiceResult<Self> {
        let (code, id) = check::parse_child_name("name", &name, "budgetChanges")?;
        let mut v = Violations::new();
        check::optional_text(&mut v, "comment", &comment, MAX_REASON_CHARS);
        let higher = higher.and_then(|h| {
            check::text(&mut v, "higher_approval.department", &h.department, 200);
            check::text(&mut v, "higher_approval.reference", &h.reference, 200);
            let date = date_field(
                &mut v,
                "higher_approval.approval_date",
                h.approval_date.as_ref(),
                true,
            );
            date.map(|d| HigherApprovalRec {
                department: h.department.trim().into(),
                reference: h.reference.trim().into(),
                date: date_to_stored(d),
            })
        });
        v.finish()?;
        Ok(Self {
            name,
            code,
            id,
            comment,
            event,
            higher,
        })
    }
}

impl TryFrom<pb::ApproveBudgetChangeRequest> for BudgetDecision {
    type Error = ServiceError;

    fn try_from(req: pb::ApproveBudgetChangeRequest) -> ServiceResult<Self> {
        Self::checked(
            BudgetChangeEvent::Approve,
            req.name,
            req.comment,
            req.higher_approval,
        )
    }
}

impl TryFrom<pb::RefuseBudgetChangeRequest> for BudgetDecision {
    type Error = ServiceError;

    fn try_from(req: pb::RefuseBudgetChangeRequest) -> ServiceResult<Self> {
        Self::checked(BudgetChangeEvent::Refuse, req.name, req.comment, None)
    }
}

#[derive(Debug, sqlx::FromRow)]
struct BudgetChangeRow {
    id: String,
    project_code: ProjectCode,
    current_budget_fen: Fen,
    requested_budget_fen: Fen,
    reason: String,
    #[sqlx(try_from = "String")]
    funding_source: pb::FundingSource,
    #[sqlx(try_from = "String")]
    state: BudgetChangeState,
    requires_higher_approval: i64,
    higher_approval: Option<String>,
    decision_comment: String,
    requested_by: String,
    decided_by: String,
    create_time: String,
    decide_time: Option<String>,
}

impl BudgetChangeRow {
    fn flagged(&self) -> bool {
        self.requires_higher_approval != 0
    }

    fn to_proto(&self) -> ServiceResult<pb::BudgetChange> {
        let higher = self
            .higher_approval
            .as_deref()
            .map(|h| serde_json::from_str::<HigherApprovalRec>(h)?.to_proto())
            .transpose()
            .map_err(internal)?;
        Ok(pb::BudgetChange {
            name: format!("projects/{}/budgetChanges/{}", self.project_code, self.id),
            current_budget_fen: self.current_budget_fen.get(),
            requested_budget_fen: self.requested_budget_fen.get(),
            reason: self.reason.clone(),
            funding_source: self.funding_source as i32,
            state: self.state as i32,
            requires_higher_approval: self.flagged(),
            higher_approval: higher,
            decision_comment: self.decision_comment.clone(),
            requested_by: self.requested_by.clone(),
            decided_by: self.decided_by.clone(),
            create_time: Some(stored_to_timestamp(&self.create_time).map_err(internal)?),
            decide_time: self
                .decide_time
                .as_deref()
                .map(stored_to_timestamp)
                .transpose()
                .map_err(internal)?,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
struct BaselineRow {
    seq: i64,
    budget_fen: Fen,
    #[sqlx(try_from = "String")]
    source: BaselineSource,
    budget_change: Option<String>,
    reason: String,
    create_time: String,
}

async fn insert_budget_change(
    tx: &mut Tx,
    id: &str,
    code: &ProjectCode,
    current: Fen,
    change: &NewBudgetChange,
    flagged: bool,
    requested_by: &str,
) -> ServiceResult<()> {
    sqlx::query(
        "INSERT INTO budget_changes (id, project_code, current_budget_fen, requested_budget_fen, reason, funding_source, state, \
         requires_higher_approval, higher_approval, decision_comment, requested_by, decided_by, create_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, NULL, '', $9, '', $10)",
    )
    .bind(id.to_owned())
    .bind(code.to_owned())
    .bind(current)
    .bind(change.requested_budget)
    .bind(change.reason.clone())
    .bind(change.funding.as_stored())
    .bind(BudgetChangeState::Pending.as_stored())
    .bind(i64::from(flagged))
    .bind(requested_by.to_owned())
    .bind(to_stored(now()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves the change decided by `decision` to its event's target if it is still in one of the
/// sources; false when a concurrent decision came first.
async fn move_budget_change(
    tx: &mut Tx,
    decision: &BudgetDecision,
    decided_by: &str,
    at: &str,
) -> ServiceResult<bool> {
    let sql = format!(
        "UPDATE budget_changes SET state = $1, decision_comment = $2, decided_by = $3, decide_time = $4, higher_approval = $5 \
         WHERE id = $6 AND state IN ({})",
        decision.event.sources_sql()
    );
    let done = sqlx::query(AssertSqlSafe(sql))
        .bind(decision.event.target().as_stored())
        .bind(decision.comment.clone())
        .bind(decided_by.to_owned())
        .bind(at.to_owned())
        .bind(decision.higher.as_ref().map(to_json))
        .bind(decision.id.clone())
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Sets the approved budget to what `change` asked for, and records it as a new baseline.
/// The project's row is written first: it serialises approvals, and checks the request still
/// applies — to the budget it was filed against, and never below what is paid out.
async fn raise_approved_budget(
    tx: &mut Tx,
    decision: &BudgetDecision,
    change: &BudgetChangeRow,
    at: &str,
) -> ServiceResult<()> {
    let filed_against = change.current_budget_fen;
    let moved = sqlx::query(
        "UPDATE projects SET approved_budget_fen = $1, version = version + 1, update_time = $2 \
         WHERE code = $3 AND approved_budget_fen = $4 AND disbursed_fen <= $1",
    )
    .bind(change.requested_budget_fen)
    .bind(at.to_owned())
    .bind(decision.code.clone())
    .bind(filed_against)
    .execute(&mut **tx)
    .await?;
    if moved.rows_affected() == 0 {
        return Err(ServiceError::precondition(
            "BUDGET_EXCEEDED",
            decision.name.clone(),
            format!(
                "the approved budget is no longer the {filed_against} fen this request was filed against; file a new request"
            ),
        ));
    }
    // A new baseline, never an edit of the old one.
    let seq = next_sequence(
        tx,
        "budget_baselines",
        "project_code",
        decision.code.as_str(),
    )
    .await?;
    insert_baseline(
        tx,
        &decision.code,
        seq,
        change.requested_budget_fen,
        BaselineSource::Change,
        Some(&decision.id),
        &change.reason,
        at,
    )
    .await?;
    Ok(())
}

impl ProjectsService {
    async fn budget_change(&self, code: &ProjectCode, id: &str) -> ServiceResult<BudgetChangeRow> {
        sqlx::query_as::<_, BudgetChangeRow>(
            "SELECT * FROM budget_changes WHERE project_code = $1 AND id = $2",
        )
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

    /// Files a request to raise the approved budget; one beyond the threshold above the
    /// original figure is flagged for the approving department's re-approval.
    pub(crate) async fn file_budget_change(
        &self,
        caller: &Caller,
        change: NewBudgetChange,
    ) -> ServiceResult<pb::BudgetChange> {
        let project = self.visible_project(caller, &change.code).await?;
        let (Some(current), Some(original)) =
            (project.approved_budget_fen, project.original_approved_fen)
        else {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                project.name(),
                format!("{} has no approved budget yet", project.name()),
            ));
        };
        if TERMINAL.contains(&project.state) {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                project.name(),
                format!(
                    "{} is {}; its budget can no longer change",
                    project.name(),
                    project.state.as_stored()
                ),
            ));
        }
        if change.requested_budget <= current {
            return Err(ServiceError::field(
                "requested_budget_fen",
                format!("must be above the current approved budget, {current} fen"),
            ));
        }
        let flagged = variance::beyond_threshold(
            original,
            change.requested_budget,
            self.policy.budget_threshold_bp,
        );
        let id = new_id();
        let mut tx = self.store.db.begin_write().await?;
        insert_budget_change(
            &mut tx,
            &id,
            &project.code,
            current,
            &change,
            flagged,
            &caller.subject,
        )
        .await?;
        let event = NewEvent {
            action: "CreateBudgetChange".into(),
            changed_fields: vec![format!("budgetChanges/{id}")],
            reason: format!(
                "{current} → {} fen: {}",
                change.requested_budget, change.reason
            ),
            ..NewEvent::default()
        };
        Self::audit(&mut tx, &project.code, caller, event).await?;
        tx.commit().await?;
        self.budget_change(&project.code, &id).await?.to_proto()
    }

    /// Approves or refuses a pending budget change; an approval moves the approved budget.
    pub(crate) async fn decide_budget_change(
        &self,
        caller: &Caller,
        decision: BudgetDecision,
    ) -> ServiceResult<pb::BudgetChange> {
        let project = self.visible_project(caller, &decision.code).await?;
        let change = self.budget_change(&decision.code, &decision.id).await?;
        if !decision.event.allows(change.state) {
            return Err(decision.event.refusal(&decision.name, change.state));
        }
        if decision.event.moves_budget() && change.flagged() && decision.higher.is_none() {
            return Err(ServiceError::precondition(
                "REAPPROVAL_REQUIRED",
                decision.name.clone(),
                format!(
                    "{} fen is more than {}% above the original approved budget of {} fen: the approving department \
                     must re-approve it; record its approval (department, reference, date) to approve",
                    change.requested_budget_fen,
                    self.policy.budget_threshold_bp as f64 / 100.0,
                    project.original_approved_fen.unwrap_or_default()
                ),
            ));
        }
        let at = to_stored(now());
        let mut tx = self.store.db.begin_write().await?;
        if !move_budget_change(&mut tx, &decision, &caller.subject, &at).await? {
            return Err(ServiceError::Aborted(format!(
                "{} was decided concurrently",
                decision.name
            )));
        }
        let mut event = NewEvent {
            action: decision.event.action().into(),
            changed_fields: vec![format!("budgetChanges/{}", decision.id)],
            reason: decision.comment.clone(),
            ..NewEvent::default()
        };
        if decision.event.moves_budget() {
            raise_approved_budget(&mut tx, &decision, &change, &at).await?;
            event.changed_fields.push("approved_budget_fen".into());
        }
        Self::audit(&mut tx, &decision.code, caller, event).await?;
        tx.commit().await?;
        self.budget_change(&decision.code, &decision.id)
            .await?
            .to_proto()
    }

    pub(crate) async fn budget_changes_of(
        &self,
        caller: &Caller,
        code: &ProjectCode,
    ) -> ServiceResult<Vec<pb::BudgetChange>> {
        self.visible_project(caller, code).await?;
        sqlx::query_as::<_, BudgetChangeRow>(
            "SELECT * FROM budget_changes WHERE project_code = $1 ORDER BY create_time, id",
        )
        .bind(code.to_owned())
        .fetch_all(&self.store.db.pool)
        .await?
        .iter()
        .map(BudgetChangeRow::to_proto)
        .collect()
    }

    pub(crate) async fn baselines_of(
        &self,
        caller: &Caller,
        code: &ProjectCode,
    ) -> ServiceResult<Vec<pb::BudgetBaseline>> {
        self.visible_project(caller, code).await?;
        let rows = sqlx::query_as::<_, BaselineRow>(
            "SELECT seq, budget_fen, source, budget_change, reason, create_time FROM budget_baselines \
             WHERE project_code = $1 ORDER BY seq",
        )
        .bind(code.to_owned())
        .fetch_all(&self.store.db.pool)
        .await?;
        rows.into_iter()
            .map(|r| -> ServiceResult<_> {
                Ok(pb::BudgetBaseline {
                    name: format!("projects/{code}/budgetBaselines/{}", r.seq),
                    sequence: r.seq,
                    budget_fen: r.budget_fen.get(),
                    source: r.source as i32,
                    budget_change: r
                        .budget_change
                        .map(|c| format!("projects/{code}/budgetChanges/{c}"))
                        .unwrap_or_default(),
                    reason: r.reason,
                    effective_time: Some(stored_to_timestamp(&r.create_time).map_err(internal)?),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_change_is_decided_once() {
        for event in [BudgetChangeEvent::Approve, BudgetChangeEvent::Refuse] {
            assert!(event.allows(BudgetChangeState::Pending));
            assert!(!event.allows(event.target()));
            assert_eq!(event.sources_sql(), "'PENDING'");
        }
        assert_eq!(
            BudgetChangeEvent::Refuse.target(),
            BudgetChangeState::Refused
        );
        assert!(BudgetChangeEvent::Approve.moves_budget());
        assert!(!BudgetChangeEvent::Refuse.moves_budget());
    }

    #[tokio::test]
    async fn a_change_moves_once_and_a_corrupt_state_is_an_error() {
        let scratch = crate::supervision::testing::scratch_db("budget").await;
        let db = &scratch.db;
        let change = NewBudgetChange {
            code: ProjectCode::parse(crate::supervision::testing::PROJECT).unwrap(),
            requested_budget: Fen::new(120),
            reason: "more".into(),
            funding: pb::FundingSource::CityBudget,
        };
        let mut tx = db.begin_write().await.unwrap();
        insert_budget_change(
            &mut tx,
            "c1",
            &change.code,
            Fen::new(100),
            &change,
            false,
            "u",
        )
        .await
        .unwrap();
        let decision = BudgetDecision {
            name: "projects/2026-0001/budgetChanges/c1".into(),
            code: change.code.clone(),
            id: "c1".into(),
            comment: String::new(),
            event: BudgetChangeEvent::Approve,
            higher: None,
        };
        assert!(
            move_budget_change(&mut tx, &decision, "o", "t")
                .await
                .unwrap()
        );
        assert!(
            !move_budget_change(&mut tx, &decision, "o", "t")
                .await
                .unwrap()
        );
        tx.commit().await.unwrap();
        let read =
            |sql: &'static str| sqlx::query_as::<_, BudgetChangeRow>(sql).fetch_one(&db.pool);
        let row = read("SELECT * FROM budget_changes").await.unwrap();
        assert_eq!(row.state, BudgetChangeState::Approved);
        assert_eq!(row.project_code, change.code);
        assert_eq!(
            (row.current_budget_fen, row.requested_budget_fen),
            (Fen::new(100), Fen::new(120))
        );
        assert_eq!(row.funding_source, pb::FundingSource::CityBudget);
        sqlx::query("UPDATE budget_changes SET state = 'SHELVED'")
            .execute(&db.pool)
            .await
            .unwrap();
        assert!(read("SELECT * FROM budget_changes").await.is_err());
    }

    #[test]
    fn baselines_keep_their_stored_sources() {
        assert_eq!(
            BaselineSource::from_stored("APPROVAL"),
            Ok(BaselineSource::Approval)
        );
        assert_eq!(BaselineSource::Change.as_stored(), "CHANGE");
        assert!(BaselineSource::from_stored("EDIT").is_err());
    }
}
