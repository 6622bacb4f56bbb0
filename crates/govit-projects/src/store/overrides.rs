//! The SQL of review overrides, and their state machine as data.

use govit_platform::{ServiceError, ServiceResult, StateMachine, Tx};
use govit_proto::{
    StoredEnum,
    projects::v1::{ReviewDecision, ReviewOverrideState as S, ReviewStage},
};
use sqlx::AssertSqlSafe;

use super::{Store, placeholders};
use crate::model::ProjectCode;

/// What happens to an override waiting for approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverrideEvent {
    /// A second office user approves (or none is required): the project moves with it.
    Apply,
    /// A second office user refuses it.
    Reject,
    /// The project moved past what was asked (another state, another review).
    Overtake,
}

impl StateMachine for OverrideEvent {
    type State = S;

    fn sources(self) -> &'static [S] {
        &[S::PendingApproval]
    }

    fn target(self) -> S {
        match self {
            OverrideEvent::Apply => S::Applied,
            OverrideEvent::Reject | OverrideEvent::Overtake => S::Rejected,
        }
    }
}

impl OverrideEvent {
    /// Whether the event records who decided (`approved_by`): an overtaken override was
    /// decided by nobody.
    fn records_decider(self) -> bool {
        !matches!(self, OverrideEvent::Overtake)
    }
}

/// An override as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OverrideRow {
    pub id: String,
    pub project_code: ProjectCode,
    #[sqlx(try_from = "String")]
    pub stage: ReviewStage,
    #[sqlx(try_from = "String")]
    pub decision: ReviewDecision,
    pub reason: String,
    pub review_id: Option<String>,
    #[sqlx(try_from = "String")]
    pub state: S,
    pub requested_by: String,
    pub approved_by: Option<String>,
    pub create_time: String,
    pub apply_time: Option<String>,
    pub reason_salt: String,
}

const COLUMNS: &str = "id, project_code, stage, decision, reason, review_id, state, requested_by, \
    approved_by, create_time, apply_time, reason_salt";

/// The one transition of an override: moves it by `event` if it is still in one of the
/// event's sources. False when it was not (a concurrent decision won).
pub async fn move_override<'c>(
    executor: impl sqlx::Executor<'c, Database = sqlx::Any>,
    id: &str,
    event: OverrideEvent,
    decided_by: Option<String>,
    at: &str,
) -> ServiceResult<bool> {
    let decider = if event.records_decider() {
        ", approved_by = $4"
    } else {
        ""
    };
    let sql = format!(
        "UPDATE review_overrides SET state = $1, apply_time = $2{decider} \
         WHERE id = $3 AND state IN ({})",
        event.sources_sql()
    );
    let mut query = sqlx::query(AssertSqlSafe(sql))
        .bind(event.target().as_stored())
        .bind(at.to_owned())
        .bind(id.to_owned());
    if event.records_decider() {
        query = query.bind(decided_by);
    }
    Ok(query.execute(executor).await?.rows_affected() > 0)
}

impl Store {
    pub async fn insert_override(&self, tx: &mut Tx, row: &OverrideRow) -> ServiceResult<()> {
        let sql = format!(
            "INSERT INTO review_overrides ({COLUMNS}) VALUES ({})",
            placeholders(1, 12)
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(row.id.clone())
            .bind(row.project_code.clone())
            .bind(row.stage.as_stored())
            .bind(row.decision.as_stored())
            .bind(row.reason.clone())
            .bind(row.review_id.clone())
            .bind(row.state.as_stored())
            .bind(row.requested_by.clone())
            .bind(row.approved_by.clone())
            .bind(row.create_time.clone())
            .bind(row.apply_time.clone())
            .bind(row.reason_salt.clone())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    pub async fn get_override(&self, code: &ProjectCode, id: &str) -> ServiceResult<OverrideRow> {
        let sql =
            format!("SELECT {COLUMNS} FROM review_overrides WHERE project_code = $1 AND id = $2");
        sqlx::query_as::<_, OverrideRow>(AssertSqlSafe(sql))
            .bind(code.to_owned())
            .bind(id.to_owned())
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| {
                ServiceError::not_found(
                    "review override",
                    format!("projects/{code}/overrides/{id}"),
                )
            })
    }

    pub async fn list_overrides(&self, code: &ProjectCode) -> ServiceResult<Vec<OverrideRow>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM review_overrides WHERE project_code = $1 \
             ORDER BY create_time, id"
        );
        Ok(sqlx::query_as::<_, OverrideRow>(AssertSqlSafe(sql))
            .bind(code.to_owned())
            .fetch_all(&self.db.pool)
            .await?)
    }

    /// The project's override waiting for approval, if any.
    pub async fn pending_override(&self, code: &ProjectCode) -> ServiceResult<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM review_overrides WHERE project_code = $1 AND state = $2",
        )
        .bind(code.to_owned())
        .bind(S::PendingApproval.as_stored())
        .fetch_optional(&self.db.pool)
        .await?)
    }
}
