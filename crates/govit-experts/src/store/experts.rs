//! The SQL of experts and of the pool a draw reads.

use std::collections::BTreeMap;

use govit_platform::{
    ServiceError, ServiceResult, StateMachine, Tx,
    db::{Backend, is_unique_violation},
};
use govit_proto::{StoredEnum, experts::v1 as pb};
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, Row};
use tokio_stream::StreamExt;

use super::{Store, internal, placeholders, value_rows};
use crate::{
    experts::ExpertEvent,
    model::{ExpertFull, ExpertRow, PoolMember, SelectionRole},
    translog,
};

const EXPERT_COLUMNS: &str = "id, display_name, employer_credit_code, employer_name, source, title, phone, email, \
    id_number, appointment_start, appointment_end, status, unavailable, conflicts, draws_count, reviews_count, \
    version, create_time, update_time, rating_count, rating_sum";

/// The expert columns qualified by the alias `e`, for joins.
fn aliased_columns() -> String {
    EXPERT_COLUMNS
        .split(", ")
        .map(|c| format!("e.{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Whether a logged write brought an expert into the registry or changed one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExpertChange {
    Created,
    Updated,
}

impl Store {
    async fn categories_of(&self, ids: &[String]) -> ServiceResult<BTreeMap<String, Vec<String>>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT expert_id, category FROM expert_categories WHERE expert_id IN ({}) ORDER BY expert_id, category",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.clone());
            }
            for row in q.fetch_all(&self.db.pool).await? {
                out.entry(row.try_get(0)?)
                    .or_default()
                    .push(row.try_get(1)?);
            }
        }
        Ok(out)
    }

    /// Rows with their categories, in the order given.
    async fn with_categories(&self, rows: Vec<ExpertRow>) -> ServiceResult<Vec<ExpertFull>> {
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut categories = self.categories_of(&ids).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let categories = categories.remove(&row.id).unwrap_or_default();
                ExpertFull { row, categories }
            })
            .collect())
    }

    pub async fn get_expert(&self, id: &str) -> ServiceResult<Option<ExpertFull>> {
        let sql = format!("SELECT {EXPERT_COLUMNS} FROM experts WHERE id = $1");
        let row = sqlx::query_as::<_, ExpertRow>(AssertSqlSafe(sql))
            .bind(id.to_owned())
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(self.with_categories(row.into_iter().collect()).await?.pop())
    }

    /// The experts among `ids` that exist, with their categories: a few queries for a whole
    /// roster rather than two per row.
    pub async fn experts_by_ids(
        &self,
        ids: &[String],
    ) -> ServiceResult<BTreeMap<String, ExpertFull>> {
        let mut rows = Vec::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT {EXPERT_COLUMNS} FROM experts WHERE id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query_as::<_, ExpertRow>(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.clone());
            }
            rows.extend(q.fetch_all(&self.db.pool).await?);
        }
        Ok(self
            .with_categories(rows)
            .await?
            .into_iter()
            .map(|e| (e.row.id.clone(), e))
            .collect())
    }

    pub async fn existing_expert_ids(&self, ids: &[String]) -> ServiceResult<Vec<String>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let sql = format!(
                "SELECT id FROM experts WHERE id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut q = sqlx::query(AssertSqlSafe(sql));
            for id in chunk {
                q = q.bind(id.clone());
            }
            for row in q.fetch_all(&self.db.pool).await? {
                out.push(row.try_get(0)?);
            }
        }
        Ok(out)
    }

    pub async fn list_experts(
        &self,
        category: Option<&str>,
        status: Option<pb::ExpertStatus>,
        after: Option<&str>,
        limit: i64,
    ) -> ServiceResult<Vec<ExpertFull>> {
        let columns = aliased_columns();
        let sql = format!(
            "SELECT {columns} FROM experts e WHERE ($1 = '' OR EXISTS (SELECT 1 FROM expert_categories c \
             WHERE c.expert_id = e.id AND c.category = $1)) AND ($2 = '' OR e.status = $2) AND e.id > $3 \
             ORDER BY e.id LIMIT $4"
        );
        let rows = sqlx::query_as::<_, ExpertRow>(AssertSqlSafe(sql))
            .bind(category.unwrap_or("").to_owned())
            .bind(status.map(StoredEnum::as_stored).unwrap_or(""))
            .bind(after.unwrap_or("").to_owned())
            .bind(limit)
            .fetch_all(&self.db.pool)
            .await?;
        self.with_categories(rows).await
    }

    /// Inserts or replaces an expert (by id) with its categories and log entry, inside `tx`.
    /// `expected` is the version an update must find; None inserts.
    pub async fn write_expert(
        tx: &mut Tx,
        expert: &ExpertFull,
        expected: Option<i64>,
        log_fields: &[String],
    ) -> ServiceResult<()> {
        let change = match expected {
            None => {
                insert_expert_row(tx, &expert.row).await?;
                ExpertChange::Created
            }
            Some(version) => {
                update_expert_row(tx, &expert.row, version).await?;
                sqlx::query("DELETE FROM expert_categories WHERE expert_id = $1")
                    .bind(expert.row.id.clone())
                    .execute(&mut **tx)
                    .await?;
                ExpertChange::Updated
            }
        };
        for category in &expert.categories {
            sqlx::query("INSERT INTO expert_categories (category, expert_id) VALUES ($1, $2)")
                .bind(category.clone())
                .bind(expert.row.id.clone())
                .execute(&mut **tx)
                .await?;
        }
        log_expert(tx, expert, change, log_fields).await
    }

    /// Writes many experts as [`Store::write_expert`] writes one, in a few statements: new
    /// experts and their categories in multi-row inserts, the log entries in one batch. Each
    /// update still checks its expert's version.
    pub async fn write_experts(
        tx: &mut Tx,
        experts: &[(ExpertFull, Option<i64>)],
        log_fields: &[String],
    ) -> ServiceResult<()> {
        let (new, existing): (Vec<_>, Vec<_>) =
            experts.iter().partition(|(_, expected)| expected.is_none());
        let backend = Backend::of_connection(tx);
        for chunk in new.chunks(backend.rows_per_statement(21)) {
            match insert_expert_rows(tx, chunk.iter().map(|(e, _)| &e.row)).await {
                Err(e) if is_unique_violation(&e) => {
                    return Err(ServiceError::Aborted(
                        "another call created some of these experts meanwhile; send the roster again"
                            .into(),
                    ));
                }
                other => other?,
            }
        }
        for chunk in existing.chunks(backend.rows_per_statement(16)) {
            let rows: Vec<(&ExpertRow, i64)> = chunk
                .iter()
                .map(|(e, expected)| (&e.row, expected.unwrap_or_default()))
                .collect();
            if update_expert_rows(tx, &rows).await? != rows.len() as u64 {
                return Err(ServiceError::Aborted(
                    "another call changed some of these experts meanwhile; send the roster again"
                        .into(),
                ));
            }
        }
        for chunk in existing.chunks(backend.rows_per_statement(1)) {
            let sql = format!(
                "DELETE FROM expert_categories WHERE expert_id IN ({})",
                placeholders(1, chunk.len())
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (expert, _) in chunk {
                query = query.bind(expert.row.id.clone());
            }
            query.execute(&mut **tx).await?;
        }
        let pairs: Vec<(&String, &String)> = experts
            .iter()
            .flat_map(|(e, _)| e.categories.iter().map(move |c| (c, &e.row.id)))
            .collect();
        for chunk in pairs.chunks(backend.rows_per_statement(2)) {
            let sql = format!(
                "INSERT INTO expert_categories (category, expert_id) VALUES {}",
                value_rows(chunk.len(), 2)
            );
            let mut query = sqlx::query(AssertSqlSafe(sql));
            for (category, id) in chunk {
                query = query.bind((*category).clone()).bind((*id).clone());
            }
            query.execute(&mut **tx).await?;
        }
        let entries = experts
            .iter()
            .map(|(expert, expected)| {
                let change = match expected {
                    None => ExpertChange::Created,
                    Some(_) => ExpertChange::Updated,
                };
                expert_entry(expert, change, log_fields)
            })
            .collect();
        translog::append_many(tx, entries).await.map_err(internal)
    }

    /// Tells PostgreSQL's planner how large the pool has become after a bulk import. Until
    /// autovacuum gets to it, the planner believes the tables as small as before the import,
    /// joins the next import's updates by scanning the whole table, and an import of 100,000
    /// updates takes minutes instead of seconds. SQLite plans by its indexes without
    /// statistics.
    pub async fn refresh_statistics(&self) -> ServiceResult<()> {
        if self.db.backend == Backend::Postgres {
            sqlx::query("ANALYZE experts, expert_categories")
                .execute(&self.db.pool)
                .await?;
        }
        Ok(())
    }

    pub async fn save_expert(
        &self,
        expert: &ExpertFull,
        expected: Option<i64>,
        log_fields: &[String],
    ) -> ServiceResult<()> {
        let mut tx = translog::begin(&self.db).await?;
        Self::write_expert(&mut tx, expert, expected, log_fields).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The one status transition of experts: `event` moves `expert` (as read, at version
    /// `expected`) to its target, logged as the update of its status. An expert changed
    /// meanwhile has another version: a stale etag.
    pub async fn move_expert(
        &self,
        expert: &ExpertFull,
        event: ExpertEvent,
        expected: i64,
    ) -> ServiceResult<()> {
        let r = &expert.row;
        let mut tx = translog::begin(&self.db).await?;
        let sql = format!(
            "UPDATE experts SET status = $1, version = version + 1, update_time = $2 \
             WHERE id = $3 AND version = $4 AND status IN ({})",
            event.sources_sql()
        );
        let done = sqlx::query(AssertSqlSafe(sql))
            .bind(event.target().as_stored())
            .bind(r.update_time.clone())
            .bind(r.id.clone())
            .bind(expected)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(ServiceError::stale_etag(&format!("experts/{}", r.id)));
        }
        log_expert(
            &mut tx,
            expert,
            ExpertChange::Updated,
            &["status".to_owned()],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every expert tagged with one of `categories`, once per matching category, handed to
    /// `each` as it is read, so that a pool of 100,000 is never held whole; returns how many.
    pub async fn each_in_pool(
        &self,
        categories: &[String],
        mut each: impl FnMut(PoolMember) -> ServiceResult<()>,
    ) -> ServiceResult<usize> {
        let sql = format!(
            "SELECT c.category AS pool_category, e.id, e.employer_credit_code, e.appointment_start, \
             e.appointment_end, e.status, e.unavailable, e.conflicts \
             FROM expert_categories c JOIN experts e ON e.id = c.expert_id WHERE c.category IN ({})",
            placeholders(1, categories.len())
        );
        if let Some(reader) = &self.db.reader {
            // The pool is the one large read of a draw: 100,000 rows through sqlx's SQLite
            // worker cost four times what the database takes to read them.
            return reader.read_long(|conn| -> ServiceResult<usize> {
                let mut statement = conn.prepare_cached(&sql)?;
                govit_platform::sqlite_reader::bind_numbered(&mut statement, categories)?;
                let mut rows = statement.raw_query();
                let mut count = 0;
                while let Some(row) = rows.next()? {
                    each(PoolMember::from_sqlite(row)?)?;
                    count += 1;
                }
                Ok(count)
            });
        }
        let mut q = sqlx::query_as::<_, PoolMember>(AssertSqlSafe(sql));
        for c in categories {
            q = q.bind(c.clone());
        }
        let mut rows = q.fetch(&self.db.pool);
        let mut count = 0;
        while let Some(member) = rows.next().await {
            each(member?)?;
            count += 1;
        }
        Ok(count)
    }

    /// How often each expert was selected since `since` (stored instant).
    pub async fn selection_counts(&self, since: &str) -> ServiceResult<BTreeMap<String, i64>> {
        let rows = sqlx::query(
            "SELECT expert_id, COUNT(*) FROM selections WHERE role = $1 AND execute_time >= $2 GROUP BY expert_id",
        )
        .bind(SelectionRole::Selected.as_stored())
        .bind(since.to_owned())
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }
}

/// Inserts rows in one statement; the caller says what a unique violation means.
async fn insert_expert_rows<'a>(
    tx: &mut Tx,
    rows: impl ExactSizeIterator<Item = &'a ExpertRow>,
) -> Result<(), sqlx::Error> {
    let sql = format!(
        "INSERT INTO experts ({EXPERT_COLUMNS}) VALUES {}",
        value_rows(rows.len(), 21)
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for r in rows {
        query = bind_expert_row(query, r);
    }
    query.execute(&mut **tx).await.map(drop)
}

/// Binds every column of [`EXPERT_COLUMNS`], in order.
fn bind_expert_row<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    r: &ExpertRow,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(r.id.clone())
        .bind(r.display_name.clone())
        .bind(r.employer_credit_code.clone())
        .bind(r.employer_name.clone())
        .bind(r.source.as_stored())
        .bind(r.title.clone())
        .bind(r.phone.clone())
        .bind(r.email.clone())
        .bind(r.id_number.clone())
        .bind(r.appointment_start.clone())
        .bind(r.appointment_end.clone())
        .bind(r.status.as_stored())
        .bind(r.unavailable.clone())
        .bind(r.conflicts.clone())
        .bind(r.draws_count)
        .bind(r.reviews_count)
        .bind(r.version)
        .bind(r.create_time.clone())
        .bind(r.update_time.clone())
        .bind(r.rating_count)
        .bind(r.rating_sum)
}

async fn insert_expert_row(tx: &mut Tx, r: &ExpertRow) -> ServiceResult<()> {
    match insert_expert_rows(tx, std::iter::once(r)).await {
        Err(e) if is_unique_violation(&e) => Err(ServiceError::AlreadyExists {
            resource_type: "expert",
            name: format!("experts/{}", r.id),
        }),
        other => other.map(drop).map_err(Into::into),
    }
}

/// Writes every field an expert's owner edits, for many experts in one statement, each only
/// if its row is still at the version the caller read. The values' columns are column1… as
/// both databases name them; the version is cast because PostgreSQL types the rest as text.
/// Returns how many rows were still at their version, and so were written.
async fn update_expert_rows(tx: &mut Tx, experts: &[(&ExpertRow, i64)]) -> ServiceResult<u64> {
    const COLUMNS: usize = 16;
    let values: Vec<String> = (0..experts.len())
        .map(|i| {
            let p = |k: usize| format!("${}", i * COLUMNS + k);
            let mut row = vec![p(1), format!("CAST({} AS BIGINT)", p(2))];
            row.extend((3..=COLUMNS).map(p));
            format!("({})", row.join(", "))
        })
        .collect();
    let sql = format!(
        "UPDATE experts SET display_name = v.column3, employer_credit_code = v.column4, \
         employer_name = v.column5, source = v.column6, title = v.column7, phone = v.column8, \
         email = v.column9, id_number = v.column10, appointment_start = v.column11, \
         appointment_end = v.column12, status = v.column13, unavailable = v.column14, \
         conflicts = v.column15, update_time = v.column16, version = experts.version + 1 \
         FROM (VALUES {}) AS v WHERE experts.id = v.column1 AND experts.version = v.column2",
        values.join(", ")
    );
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for (r, expected) in experts {
        query = query
            .bind(r.id.clone())
            .bind(*expected)
            .bind(r.display_name.clone())
            .bind(r.employer_credit_code.clone())
            .bind(r.employer_name.clone())
            .bind(r.source.as_stored())
            .bind(r.title.clone())
            .bind(r.phone.clone())
            .bind(r.email.clone())
            .bind(r.id_number.clone())
            .bind(r.appointment_start.clone())
            .bind(r.appointment_end.clone())
            .bind(r.status.as_stored())
            .bind(r.unavailable.clone())
            .bind(r.conflicts.clone())
            .bind(r.update_time.clone());
    }
    Ok(query.execute(&mut **tx).await?.rows_affected())
}

/// Writes every field an expert's owner edits, if the row is still at `version`.
async fn update_expert_row(tx: &mut Tx, r: &ExpertRow, version: i64) -> ServiceResult<()> {
    if update_expert_rows(tx, &[(r, version)]).await? == 0 {
        return Err(ServiceError::stale_etag(&format!("experts/{}", r.id)));
    }
    Ok(())
}

/// Only what shapes the pool goes into the log: never names, phones or ID numbers.
async fn log_expert(
    tx: &mut Tx,
    expert: &ExpertFull,
    change: ExpertChange,
    log_fields: &[String],
) -> ServiceResult<()> {
    translog::append(tx, expert_entry(expert, change, log_fields), None)
        .await
        .map_err(internal)?;
    Ok(())
}

fn expert_entry(expert: &ExpertFull, change: ExpertChange, log_fields: &[String]) -> Value {
    let r = &expert.row;
    json!({
        "type": match change {
            ExpertChange::Created => "expert_created",
            ExpertChange::Updated => "expert_updated",
        },
        "expert_id": r.id,
        "fields": log_fields,
        "categories": expert.categories,
        "status": r.status.as_stored(),
        "employer_credit_code": r.employer_credit_code,
        "appointment_start": r.appointment_start,
        "appointment_end": r.appointment_end,
    })
}
