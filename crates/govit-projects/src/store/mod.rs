//! The SQL of projects, organisations, documents, review outcomes and overrides, and the audit
//! trail (supervision keeps its own). Every change and its audit event are written in one
//! transaction; optimistic concurrency on `version` decides races.

mod documents;
mod organizations;
mod overrides;
mod projects;

use govit_platform::{Caller, Db, ServiceError, ServiceResult, Tx};
use govit_proto::{StoredEnum, projects::v1::ProjectState};
use sqlx::{AssertSqlSafe, Row};

use crate::model::{EventRow, Fen, ProjectCode, to_json};

pub use documents::Finishing;
pub use overrides::{OverrideEvent, OverrideRow, move_override};
pub use projects::{Extra, ReviewOutcomeRecord};

/// What an audit event says beyond who and when.
#[derive(Debug, Default, Clone)]
pub struct NewEvent {
    pub action: String,
    pub from_state: Option<ProjectState>,
    pub to_state: Option<ProjectState>,
    pub changed_fields: Vec<String>,
    pub reason: String,
    pub document_sha256: Vec<String>,
}

/// A bound value for the statements built from column lists.
#[derive(Debug, Clone)]
pub enum Arg {
    Text(String),
    Int(i64),
    OptionalText(Option<String>),
    OptionalInt(Option<i64>),
}

impl From<&str> for Arg {
    fn from(text: &str) -> Self {
        Arg::Text(text.to_owned())
    }
}

const EVENT_COLUMNS: &str = "resource, seq, occur_time, actor_subject, actor_role, action, \
    from_state, to_state, changed_fields, reason, document_sha256, actor_body";

#[derive(Debug, Clone)]
pub struct Store {
    pub db: Db,
}

/// `query` and `query_as` each have their own `bind`, with no trait between them.
macro_rules! bind_arg {
    ($query:expr, $arg:expr) => {
        match $arg {
            Arg::Text(s) => $query.bind(s),
            Arg::Int(i) => $query.bind(i),
            Arg::OptionalText(s) => $query.bind(s),
            Arg::OptionalInt(i) => $query.bind(i),
        }
    };
}

/// A sqlx statement values can be bound to: `query` and `query_as` alike.
pub(crate) trait Bind: Sized {
    fn bind_arg(self, arg: Arg) -> Self;
}

impl<'q> Bind for sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    fn bind_arg(self, arg: Arg) -> Self {
        bind_arg!(self, arg)
    }
}

impl<'q, O> Bind for sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments> {
    fn bind_arg(self, arg: Arg) -> Self {
        bind_arg!(self, arg)
    }
}

pub(crate) fn bind_all<Q: Bind>(query: Q, args: Vec<Arg>) -> Q {
    args.into_iter().fold(query, Bind::bind_arg)
}

impl rusqlite::ToSql for Arg {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Arg::Text(s) => s.to_sql(),
            Arg::Int(i) => i.to_sql(),
            Arg::OptionalText(s) => s.to_sql(),
            Arg::OptionalInt(i) => i.to_sql(),
        }
    }
}

/// Runs `sql`, written with sqlx's numbered placeholders, on a SQLite reader connection.
pub(crate) fn sqlite_query<T>(
    conn: &rusqlite::Connection,
    sql: &str,
    args: &[Arg],
    mut each: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut statement = conn.prepare_cached(sql)?;
    govit_platform::sqlite_reader::bind_numbered(&mut statement, args)?;
    let mut rows = statement.raw_query();
    let mut answer = Vec::new();
    while let Some(row) = rows.next()? {
        answer.push(each(row)?);
    }
    Ok(answer)
}

/// How much a read may take, which decides how a SQLite reader runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadSize {
    /// A row or a page: microseconds, run in place.
    Page,
    /// Every selected project: milliseconds, with the worker's other tasks handed on first.
    Whole,
}

impl Store {
    /// Rows of a read, on the SQLite reader when there is one (decoded by `from_sqlite`, by
    /// position), else through sqlx (decoded by `FromRow`, by name): both select the same
    /// columns in the same order.
    pub(crate) async fn read_rows<T>(
        &self,
        size: ReadSize,
        sql: &str,
        args: Vec<Arg>,
        from_sqlite: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    ) -> ServiceResult<Vec<T>>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        if let Some(reader) = &self.db.reader {
            let read = |c: &rusqlite::Connection| sqlite_query(c, sql, &args, from_sqlite);
            return Ok(match size {
                ReadSize::Page => reader.read(read)?,
                ReadSize::Whole => reader.read_long(read)?,
            });
        }
        let query = bind_all(sqlx::query_as::<_, T>(AssertSqlSafe(sql)), args);
        Ok(query.fetch_all(&self.db.pool).await?)
    }
}

/// `$first, $first+1, …` for `count` values.
pub(crate) fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

pub async fn insert_event(
    tx: &mut Tx,
    resource: &str,
    seq: i64,
    at: &str,
    actor: &Caller,
    event: &NewEvent,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO audit_events ({EVENT_COLUMNS}) VALUES ({})",
        placeholders(1, 12)
    );
    let mut args = vec![Arg::Text(resource.to_owned())];
    args.extend(event_values(seq, at, actor, event));
    bind_all(sqlx::query(AssertSqlSafe(sql)), args)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The values of an audit event after its resource, in [`EVENT_COLUMNS`] order.
fn event_values(seq: i64, at: &str, actor: &Caller, event: &NewEvent) -> [Arg; 11] {
    use Arg::{Int, OptionalText, Text};
    let stored = |state: Option<ProjectState>| state.map(|s| s.as_stored().to_owned());
    [
        Int(seq),
        Text(at.to_owned()),
        Text(actor.subject.clone()),
        Text(actor.role.as_str().to_owned()),
        Text(event.action.clone()),
        OptionalText(stored(event.from_state)),
        OptionalText(stored(event.to_state)),
        Text(to_json(&event.changed_fields)),
        Text(event.reason.clone()),
        Text(to_json(&event.document_sha256)),
        OptionalText(crate::model::supervising_body(actor).map(|body| body.as_stored().to_owned())),
    ]
}

/// Writes the next audit event of a project inside `tx`: bumps the project's event counter
/// (which also locks its row) and records the event under that sequence. The one way events
/// that do not change the project's own fields are written.
pub async fn project_event(
    tx: &mut Tx,
    code: &ProjectCode,
    at: &str,
    actor: &Caller,
    event: &NewEvent,
) -> ServiceResult<i64> {
    let counted = sqlx::query(
        "UPDATE projects SET event_count = event_count + 1 WHERE code = $1 RETURNING event_count",
    )
    .bind(code.to_owned())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(counted) = counted else {
        return Err(ServiceError::not_found("project", code.name()));
    };
    let seq: i64 = counted.try_get(0)?;
    insert_event(tx, &code.name(), seq, at, actor, event).await?;
    Ok(seq)
}

#[allow(clippy::too_many_arguments)] // one column each; a struct would only rename them
pub async fn insert_baseline(
    tx: &mut Tx,
    project: &ProjectCode,
    seq: i64,
    budget: Fen,
    source: crate::supervision::BaselineSource,
    budget_change: Option<&str>,
    reason: &str,
    at: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO budget_baselines (project_code, seq, budget_fen, source, budget_change, reason, create_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(project.to_owned())
    .bind(seq)
    .bind(budget)
    .bind(source.as_stored())
    .bind(budget_change.map(str::to_owned))
    .bind(reason.to_owned())
    .bind(at.to_owned())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl Store {
    /// The audit trail of one resource, after `after_seq`, oldest first.
    pub async fn list_events(
        &self,
        resource: &str,
        after_seq: Option<i64>,
        limit: i64,
    ) -> ServiceResult<Vec<EventRow>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events WHERE resource = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3"
        );
        Ok(sqlx::query_as::<_, EventRow>(AssertSqlSafe(sql))
            .bind(resource.to_owned())
            .bind(after_seq.unwrap_or(0))
            .bind(limit)
            .fetch_all(&self.db.pool)
            .await?)
    }
}
