//! The SQL of projects and of what a project change writes with it.

use govit_platform::{
    Caller, ServiceError, ServiceResult, Tx,
    db::{Backend, is_unique_violation},
    idempotency::call_claims_request_id,
    time::{now, to_stored},
};
use govit_proto::{
    StoredEnum,
    projects::v1::{ProjectState, ReviewDecision, ReviewStage},
};
use sqlx::{AssertSqlSafe, Row};

use super::{
    Arg, EVENT_COLUMNS, NewEvent, OverrideEvent, ReadSize, Store, bind_all, insert_baseline,
    insert_event, placeholders,
};
use crate::model::{Fen, ProjectCode, ProjectListing, ProjectRow};

const PROJECT_COLUMNS: &str = "code, year, seq, display_name, applicant, category, description, \
    planned_start_date, planned_end_date, estimated_investment_fen, funding_source, contacts, \
    feasibility_consultancy, state, suspended_from, review_panel, return_reasons, \
    implementation_plan, contractor, supervision_firm, contract_amount_fen, contract_date, \
    post_evaluation_summary, version, event_count, create_time, update_time, approved_budget_fen, \
    original_approved_fen, disbursed_fen, post_evaluation, review, tender_record, \
    promised_indicators, acceptance_record, operation_start_date, post_evaluation_from, \
    construction_content, equipment_selection, similar_projects, duplication_finding";

/// A row of [`PROJECT_COLUMNS`] as a SQLite reader reads it, column by position; the same
/// checks as the sqlx decoding (`FromRow`): a stored enum that is no known value is a corrupt
/// row.
fn project_from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<ProjectRow> {
    use govit_platform::sqlite_reader::get_converted;
    let mut column = 0..;
    let mut next = || column.next().unwrap_or_default();
    let text = |row: &rusqlite::Row<'_>, i: usize| row.get::<_, String>(i);
    let optional = |row: &rusqlite::Row<'_>, i: usize| row.get::<_, Option<String>>(i);
    let int = |row: &rusqlite::Row<'_>, i: usize| row.get::<_, i64>(i);
    let fen =
        |row: &rusqlite::Row<'_>, i: usize| row.get::<_, Option<i64>>(i).map(|f| f.map(Fen::new));
    Ok(ProjectRow {
        code: ProjectCode::as_named(&text(row, next())?),
        year: int(row, next())?,
        seq: int(row, next())?,
        display_name: text(row, next())?,
        applicant: text(row, next())?,
        category: text(row, next())?,
        description: text(row, next())?,
        planned_start_date: optional(row, next())?,
        planned_end_date: optional(row, next())?,
        estimated_investment_fen: Fen::new(int(row, next())?),
        funding_source: get_converted::<String, _>(row, next())?,
        contacts: text(row, next())?,
        feasibility_consultancy: optional(row, next())?,
        state: get_converted::<String, _>(row, next())?,
        suspended_from: get_converted::<Option<String>, _>(row, next())?,
        review_panel: text(row, next())?,
        return_reasons: text(row, next())?,
        implementation_plan: optional(row, next())?,
        contractor: optional(row, next())?,
        supervision_firm: optional(row, next())?,
        contract_amount_fen: fen(row, next())?,
        contract_date: optional(row, next())?,
        post_evaluation_summary: text(row, next())?,
        version: int(row, next())?,
        event_count: int(row, next())?,
        create_time: text(row, next())?,
        update_time: text(row, next())?,
        approved_budget_fen: fen(row, next())?,
        original_approved_fen: fen(row, next())?,
        disbursed_fen: Fen::new(int(row, next())?),
        post_evaluation: optional(row, next())?,
        review: optional(row, next())?,
        tender_record: optional(row, next())?,
        promised_indicators: text(row, next())?,
        acceptance_record: optional(row, next())?,
        operation_start_date: optional(row, next())?,
        post_evaluation_from: optional(row, next())?,
        construction_content: text(row, next())?,
        equipment_selection: text(row, next())?,
        similar_projects: text(row, next())?,
        duplication_finding: optional(row, next())?,
    })
}

/// What a list of projects reads per project: a whole [`ProjectRow`] or a [`ProjectListing`].
pub trait ListedRow: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin {
    /// The columns selected, in the order `from_sqlite` reads them.
    const COLUMNS: &'static str;
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self>;
}

impl ListedRow for ProjectRow {
    const COLUMNS: &'static str = PROJECT_COLUMNS;
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        project_from_sqlite(row)
    }
}

impl ListedRow for ProjectListing {
    const COLUMNS: &'static str = ProjectListing::COLUMNS;
    /// By position, as [`project_from_sqlite`] reads a whole row.
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        use govit_platform::sqlite_reader::get_converted;
        let mut column = 0..;
        let mut next = || column.next().unwrap_or_default();
        Ok(ProjectListing {
            code: ProjectCode::as_named(&row.get::<_, String>(next())?),
            year: row.get(next())?,
            seq: row.get(next())?,
            display_name: row.get(next())?,
            applicant: row.get(next())?,
            category: row.get(next())?,
            planned_start_date: row.get(next())?,
            planned_end_date: row.get(next())?,
            estimated_investment_fen: Fen::new(row.get(next())?),
            funding_source: get_converted::<String, _>(row, next())?,
            state: get_converted::<String, _>(row, next())?,
            suspended_from: get_converted::<Option<String>, _>(row, next())?,
            approved_budget_fen: row.get::<_, Option<i64>>(next())?.map(Fen::new),
            disbursed_fen: Fen::new(row.get(next())?),
            review: row.get(next())?,
            version: row.get(next())?,
            create_time: row.get(next())?,
            update_time: row.get(next())?,
        })
    }
}

/// Takes the next number of a year's project codes. Its row stays locked until the creating
/// transaction ends, which keeps codes gapless and makes creates of one year take turns.
const NEXT_CODE: &str = "INSERT INTO project_code_counters (year, last_seq) VALUES ($1, 1) \
     ON CONFLICT (year) DO UPDATE SET last_seq = project_code_counters.last_seq + 1 \
     RETURNING last_seq";

fn assign_code(row: &mut ProjectRow, seq: i64) {
    row.seq = seq;
    row.code = ProjectCode::assigned(row.year, seq);
}

/// Every column a new project is inserted with but its code, year and sequence, which come
/// from the year's counter.
fn new_project_columns(row: &ProjectRow) -> Vec<(&'static str, Arg)> {
    let mut columns = vec![
        ("applicant", Arg::Text(row.applicant.clone())),
        ("version", Arg::Int(row.version)),
        ("event_count", Arg::Int(row.event_count)),
        ("create_time", Arg::Text(row.create_time.clone())),
    ];
    columns.extend(written_columns(row));
    columns
}

/// PostgreSQL: the counter, the project and its event in one statement. Every create of a year
/// waits on the counter's row lock until the holder commits, so what the holder does between
/// taking the number and committing decides how many creates a second a year can have; three
/// round trips there held creates on PostgreSQL to 1,000 a second. SQLite has no
/// data-modifying `WITH`, and its single writer makes creates take turns anyway.
///
/// The statement spells the code as [`ProjectCode::assigned`] does (a test crosses the step
/// from four digits to five on this path); the code as stored is the one answered.
async fn create_in_one_statement<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    row: &mut ProjectRow,
    actor: &Caller,
    event: &NewEvent,
) -> ServiceResult<()> {
    let (names, mut args): (Vec<_>, Vec<_>) = new_project_columns(row).into_iter().unzip();
    let first_event_arg = args.len() + 2;
    args.insert(0, Arg::Int(row.year));
    args.extend(super::event_values(1, &row.create_time, actor, event));
    let sql = format!(
        "WITH counter AS ({NEXT_CODE}), \
         assigned AS (SELECT last_seq AS seq, CAST($1 AS TEXT) || '-' || \
             lpad(CAST(last_seq AS TEXT), greatest(4, length(CAST(last_seq AS TEXT))), '0') \
             AS code FROM counter), \
         project AS (INSERT INTO projects (code, year, seq, {names}) \
             SELECT code, $1, seq, {values} FROM assigned RETURNING code), \
         event AS (INSERT INTO audit_events ({EVENT_COLUMNS}) \
             SELECT 'projects/' || code, {event_values} FROM project) \
         SELECT seq, code FROM assigned",
        names = names.join(", "),
        values = placeholders(2, names.len()),
        event_values = placeholders(first_event_arg, 11),
    );
    // fetch_all, not fetch_one: the answer comes back only once the statement, and so the
    // transaction it may be, is done, and a failure to commit reaches this call.
    let answer = bind_all(sqlx::query_as::<_, (i64, String)>(AssertSqlSafe(sql)), args)
        .fetch_all(db)
        .await?;
    let [(seq, code)] = answer.as_slice() else {
        return Err(ServiceError::Internal(anyhow::anyhow!(
            "creating a project answered {} rows",
            answer.len()
        )));
    };
    assign_code(row, *seq);
    if code != row.code.as_str() {
        // The project may already be committed under the stored code: report it as stored,
        // so that a retry does not create it twice.
        tracing::error!(stored = %code, expected = %row.code, "project code spelled otherwise");
        row.code = ProjectCode::as_named(code);
    }
    Ok(())
}

/// The columns a project's write sets, each beside its value. `disbursed_fen` is not among
/// them: only a disbursement moves it, in the statement that checks the budget.
fn written_columns(row: &ProjectRow) -> Vec<(&'static str, Arg)> {
    use Arg::{Int, OptionalInt, OptionalText, Text};
    vec![
        ("display_name", Text(row.display_name.clone())),
        ("category", Text(row.category.clone())),
        ("description", Text(row.description.clone())),
        (
            "planned_start_date",
            OptionalText(row.planned_start_date.clone()),
        ),
        (
            "planned_end_date",
            OptionalText(row.planned_end_date.clone()),
        ),
        (
            "estimated_investment_fen",
            Int(row.estimated_investment_fen.get()),
        ),
        ("funding_source", row.funding_source.as_stored().into()),
        ("contacts", Text(row.contacts.clone())),
        (
            "feasibility_consultancy",
            OptionalText(row.feasibility_consultancy.clone()),
        ),
        ("state", row.state.as_stored().into()),
        (
            "suspended_from",
            OptionalText(row.suspended_from.as_stored().map(str::to_owned)),
        ),
        ("review_panel", Text(row.review_panel.clone())),
        ("return_reasons", Text(row.return_reasons.clone())),
        (
            "implementation_plan",
            OptionalText(row.implementation_plan.clone()),
        ),
        ("contractor", OptionalText(row.contractor.clone())),
        (
            "supervision_firm",
            OptionalText(row.supervision_firm.clone()),
        ),
        (
            "contract_amount_fen",
            OptionalInt(row.contract_amount_fen.map(Fen::get)),
        ),
        ("contract_date", OptionalText(row.contract_date.clone())),
        (
            "post_evaluation_summary",
            Text(row.post_evaluation_summary.clone()),
        ),
        ("update_time", Text(row.update_time.clone())),
        (
            "approved_budget_fen",
            OptionalInt(row.approved_budget_fen.map(Fen::get)),
        ),
        (
            "original_approved_fen",
            OptionalInt(row.original_approved_fen.map(Fen::get)),
        ),
        ("post_evaluation", OptionalText(row.post_evaluation.clone())),
        ("review", OptionalText(row.review.clone())),
        ("tender_record", OptionalText(row.tender_record.clone())),
        ("promised_indicators", Text(row.promised_indicators.clone())),
        (
            "acceptance_record",
            OptionalText(row.acceptance_record.clone()),
        ),
        (
            "operation_start_date",
            OptionalText(row.operation_start_date.clone()),
        ),
        (
            "post_evaluation_from",
            OptionalText(row.post_evaluation_from.clone()),
        ),
        (
            "construction_content",
            Text(row.construction_content.clone()),
        ),
        ("equipment_selection", Text(row.equipment_selection.clone())),
        ("similar_projects", Text(row.similar_projects.clone())),
        (
            "duplication_finding",
            OptionalText(row.duplication_finding.clone()),
        ),
    ]
}

/// What else a project change writes in its transaction.
#[derive(Debug, Clone)]
pub enum Extra {
    ReviewOutcome(ReviewOutcomeRecord),
    /// The approved investment fixed at approval.
    FirstBaseline {
        budget: Fen,
    },
    /// A message to another service, sent by the outbox worker after commit.
    Outbox(crate::outbox::Outgoing),
    /// An office override taking effect with the project's transition.
    ApplyOverride {
        id: String,
        approved_by: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReviewOutcomeRecord {
    pub review_id: String,
    pub project_code: ProjectCode,
    pub stage: ReviewStage,
    pub decision: ReviewDecision,
    pub summary: String,
    /// False for a decision that arrived after the project had moved on (withdrawn): kept,
    /// never applied.
    pub applied: bool,
}

#[derive(sqlx::FromRow)]
struct StoredOutcome {
    review_id: String,
    project_code: ProjectCode,
    #[sqlx(try_from = "String")]
    stage: ReviewStage,
    #[sqlx(try_from = "String")]
    decision: ReviewDecision,
    summary: String,
    applied: i64,
}

impl Store {
    pub async fn get_project(&self, code: &ProjectCode) -> ServiceResult<Option<ProjectRow>> {
        let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE code = $1");
        let args = vec![Arg::Text(code.to_string())];
        let rows = self
            .read_rows(ReadSize::Page, &sql, args, project_from_sqlite)
            .await?;
        Ok(rows.into_iter().next())
    }

    /// Lists projects matching `filters` (column, value) ordered by (year, seq), as whole
    /// rows or as listings.
    pub async fn list_projects<T: ListedRow>(
        &self,
        filters: Vec<(&'static str, Arg)>,
        after: Option<(i64, i64)>,
        descending: bool,
        limit: i64,
    ) -> ServiceResult<Vec<T>> {
        let mut sql = format!("SELECT {} FROM projects WHERE 1 = 1", T::COLUMNS);
        let mut args = Vec::new();
        for (column, value) in filters {
            args.push(value);
            sql.push_str(&format!(" AND {column} = ${}", args.len()));
        }
        if let Some((year, seq)) = after {
            let op = if descending { "<" } else { ">" };
            args.push(Arg::Int(year));
            let y = args.len();
            args.push(Arg::Int(seq));
            let s = args.len();
            sql.push_str(&format!(
                " AND (year {op} ${y} OR (year = ${y} AND seq {op} ${s}))"
            ));
        }
        let dir = if descending { "DESC" } else { "ASC" };
        args.push(Arg::Int(limit));
        sql.push_str(&format!(
            " ORDER BY year {dir}, seq {dir} LIMIT ${}",
            args.len()
        ));
        let size = if limit > 1000 {
            ReadSize::Whole
        } else {
            ReadSize::Page
        };
        self.read_rows(size, &sql, args, T::from_sqlite).await
    }

    /// Inserts a new project, assigning its code from the year's counter.
    pub async fn create_project(
        &self,
        mut row: ProjectRow,
        actor: &Caller,
    ) -> ServiceResult<ProjectRow> {
        row.version = 1;
        row.event_count = 1;
        let event = NewEvent {
            action: "CreateProject".into(),
            to_state: Some(row.state),
            changed_fields: [
                "display_name",
                "applicant",
                "category",
                "description",
                "planned_start_date",
                "planned_end_date",
                "estimated_investment_fen",
                "funding_source",
                "contacts",
            ]
            .map(String::from)
            .to_vec(),
            ..NewEvent::default()
        };
        if self.db.backend == Backend::Postgres && !call_claims_request_id() {
            // The statement is its own transaction: nothing of the client's, not even the
            // round trip of a COMMIT, sits between taking the year's number and committing.
            create_in_one_statement(&self.db.pool, &mut row, actor, &event).await?;
            return Ok(row);
        }
        let mut tx = self.db.begin_write().await?;
        match self.db.backend {
            Backend::Sqlite => {
                let seq: i64 = sqlx::query(NEXT_CODE)
                    .bind(row.year)
                    .fetch_one(&mut *tx)
                    .await?
                    .try_get(0)?;
                assign_code(&mut row, seq);
                let mut columns = vec![
                    ("code", Arg::Text(row.code.to_string())),
                    ("year", Arg::Int(row.year)),
                    ("seq", Arg::Int(row.seq)),
                ];
                columns.extend(new_project_columns(&row));
                let (names, args): (Vec<_>, Vec<_>) = columns.into_iter().unzip();
                let sql = format!(
                    "INSERT INTO projects ({}) VALUES ({})",
                    names.join(", "),
                    placeholders(1, names.len())
                );
                bind_all(sqlx::query(AssertSqlSafe(sql)), args)
                    .execute(&mut *tx)
                    .await?;
                insert_event(&mut tx, &row.name(), 1, &row.create_time, actor, &event).await?;
            }
            Backend::Postgres => create_in_one_statement(&mut *tx, &mut row, actor, &event).await?,
        }
        tx.commit().await?;
        Ok(row)
    }

    /// Writes a change of `row` that keeps its state (an edit, a decision kept for later):
    /// every written column if the stored version is still `expected_version`, with `extras`
    /// and the audit event, in one transaction. Returns the row as stored.
    pub async fn write_project(
        &self,
        row: ProjectRow,
        expected_version: i64,
        actor: &Caller,
        event: NewEvent,
        extras: Vec<Extra>,
    ) -> ServiceResult<ProjectRow> {
        self.write(row, (expected_version, None), actor, event, extras)
            .await
    }

    /// The one transition of a project: `row` (in its new state) is written only if the stored
    /// project is still at `expected_version` and in `from`, with `extras` and the audit event,
    /// in one transaction.
    pub async fn move_project(
        &self,
        row: ProjectRow,
        (expected_version, from): (i64, ProjectState),
        actor: &Caller,
        event: NewEvent,
        extras: Vec<Extra>,
    ) -> ServiceResult<ProjectRow> {
        self.write(row, (expected_version, Some(from)), actor, event, extras)
            .await
    }

    async fn write(
        &self,
        mut row: ProjectRow,
        (expected_version, from): (i64, Option<ProjectState>),
        actor: &Caller,
        event: NewEvent,
        extras: Vec<Extra>,
    ) -> ServiceResult<ProjectRow> {
        let at = to_stored(now());
        row.update_time = at.clone();
        let mut tx = self.db.begin_write().await?;
        let (names, mut args): (Vec<_>, Vec<_>) = written_columns(&row).into_iter().unzip();
        let set: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, name)| format!("{name} = ${}", i + 1))
            .collect();
        let mut sql = format!(
            "UPDATE projects SET {}, version = version + 1, event_count = event_count + 1 \
             WHERE code = ${} AND version = ${}",
            set.join(", "),
            args.len() + 1,
            args.len() + 2
        );
        args.push(Arg::Text(row.code.to_string()));
        args.push(Arg::Int(expected_version));
        if let Some(from) = from {
            args.push(from.as_stored().into());
            sql.push_str(&format!(" AND state = ${}", args.len()));
        }
        sql.push_str(" RETURNING version, event_count");
        let updated = bind_all(sqlx::query_as::<_, (i64, i64)>(AssertSqlSafe(sql)), args)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((version, event_count)) = updated else {
            return Err(ServiceError::stale_etag(&row.name()));
        };
        row.version = version;
        row.event_count = event_count;
        for extra in extras {
            write_extra(&mut tx, &row.code, &at, extra).await?;
        }
        insert_event(&mut tx, &row.name(), row.event_count, &at, actor, &event).await?;
        tx.commit().await?;
        Ok(row)
    }

    pub async fn review_outcome(
        &self,
        review_id: &str,
    ) -> ServiceResult<Option<ReviewOutcomeRecord>> {
        let stored = sqlx::query_as::<_, StoredOutcome>(
            "SELECT review_id, project_code, stage, decision, summary, applied FROM review_outcomes \
             WHERE review_id = $1",
        )
        .bind(review_id.to_owned())
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(stored.map(StoredOutcome::into_record))
    }

    /// The latest decision of `stage` applied to the project.
    pub async fn latest_applied_outcome(
        &self,
        code: &ProjectCode,
        stage: ReviewStage,
    ) -> ServiceResult<Option<ReviewOutcomeRecord>> {
        let stored = sqlx::query_as::<_, StoredOutcome>(
            "SELECT review_id, project_code, stage, decision, summary, applied FROM review_outcomes \
             WHERE project_code = $1 AND stage = $2 AND applied = 1 \
             ORDER BY recorded_at DESC, review_id DESC LIMIT 1",
        )
        .bind(code.to_owned())
        .bind(stage.as_stored())
        .fetch_optional(&self.db.pool)
        .await?;
        Ok(stored.map(StoredOutcome::into_record))
    }
}

impl StoredOutcome {
    fn into_record(r: StoredOutcome) -> ReviewOutcomeRecord {
        ReviewOutcomeRecord {
            review_id: r.review_id,
            project_code: r.project_code,
            stage: r.stage,
            decision: r.decision,
            summary: r.summary,
            applied: r.applied != 0,
        }
    }
}

async fn write_extra(tx: &mut Tx, code: &ProjectCode, at: &str, extra: Extra) -> ServiceResult<()> {
    match extra {
        Extra::ReviewOutcome(outcome) => insert_outcome(tx, code, at, outcome).await,
        Extra::Outbox(message) => {
            govit_platform::outbox::enqueue(tx, &message).await?;
            Ok(())
        }
        Extra::ApplyOverride { id, approved_by } => {
            let moved =
                super::move_override(&mut **tx, &id, OverrideEvent::Apply, approved_by, at).await?;
            if moved {
                Ok(())
            } else {
                Err(ServiceError::Aborted(format!(
                    "override {id} was applied concurrently"
                )))
            }
        }
        Extra::FirstBaseline { budget } => {
            insert_baseline(
                tx,
                code,
                1,
                budget,
                crate::supervision::BaselineSource::Approval,
                None,
                "approved at the preliminary review",
                at,
            )
            .await?;
            Ok(())
        }
    }
}

async fn insert_outcome(
    tx: &mut Tx,
    code: &ProjectCode,
    at: &str,
    outcome: ReviewOutcomeRecord,
) -> ServiceResult<()> {
    let inserted = sqlx::query(
        "INSERT INTO review_outcomes (review_id, project_code, stage, decision, summary, \
         recorded_at, applied) VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(outcome.review_id.clone())
    .bind(code.to_owned())
    .bind(outcome.stage.as_stored())
    .bind(outcome.decision.as_stored())
    .bind(outcome.summary)
    .bind(at.to_owned())
    .bind(i64::from(outcome.applied))
    .execute(&mut **tx)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        // Another delivery of the same outcome won the race; ours must not apply twice.
        Err(e) if is_unique_violation(&e) => Err(ServiceError::Aborted(format!(
            "review {} was recorded concurrently",
            outcome.review_id
        ))),
        Err(e) => Err(e.into()),
    }
}
