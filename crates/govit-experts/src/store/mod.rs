//! All SQL of the registry except the log's (see `translog`). Each change is one transaction
//! with its log entry.

use std::collections::BTreeMap;

use govit_platform::{Db, ServiceError, ServiceResult, Tx, db::is_unique_violation};
use serde_json::json;
use sqlx::{AssertSqlSafe, Row};

use crate::{
    model::{CategoryRow, DRAW_COLUMNS, DrawRow, ExpertFull, ExpertRow, ReplacementRow},
    translog,
};

const CATEGORY_COLUMNS: &str =
    "code, display_name, description, parent, active, version, create_time, update_time";
pub const EXPERT_COLUMNS: &str = "id, display_name, employer_credit_code, employer_name, source, title, phone, email, \
    id_number, appointment_start, appointment_end, status, unavailable, conflicts, draws_count, reviews_count, \
    version, create_time, update_time, rating_count, rating_sum";

#[derive(Debug, Clone)]
pub struct Store {
    pub db: Db,
}

fn internal(e: anyhow::Error) -> ServiceError {
    ServiceError::Internal(e)
}

/// `$start, $start+1, …` for an IN list of `n` values.
pub fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Store {
    // ---- categories ----

    pub async fn get_category(&self, code: &str) -> ServiceResult<Option<CategoryRow>> {
        let sql = format!("SELECT {CATEGORY_COLUMNS} FROM categories WHERE code = $1");
        Ok(sqlx::query_as::<_, CategoryRow>(AssertSqlSafe(sql))
            .bind(code.to_owned())
            .fetch_optional(&self.db.pool)
            .await?)
    }

    pub async fn categories(
        &self,
        codes: &[String],
    ) -> ServiceResult<BTreeMap<String, CategoryRow>> {
        if codes.is_empty() {
            return Ok(BTreeMap::new());
        }
        let sql = format!(
            "SELECT {CATEGORY_COLUMNS} FROM categories WHERE code IN ({})",
            placeholders(1, codes.len())
        );
        let mut q = sqlx::query_as::<_, CategoryRow>(AssertSqlSafe(sql));
        for c in codes {
            q = q.bind(c.clone());
        }
        Ok(q.fetch_all(&self.db.pool)
            .await?
            .into_iter()
            .map(|r| (r.code.clone(), r))
            .collect())
    }

    pub async fn list_categories(
        &self,
        show_inactive: bool,
        after: Option<&str>,
        limit: i64,
    ) -> ServiceResult<Vec<CategoryRow>> {
        let sql = format!(
            "SELECT {CATEGORY_COLUMNS} FROM categories WHERE ($1 = 1 OR active = 1) AND code > $2 ORDER BY code LIMIT $3"
        );
        Ok(sqlx::query_as::<_, CategoryRow>(AssertSqlSafe(sql))
            .bind(i64::from(show_inactive))
            .bind(after.unwrap_or("").to_owned())
            .bind(limit)
            .fetch_all(&self.db.pool)
            .await?)
    }

    pub async fn create_category(&self, row: &CategoryRow) -> ServiceResult<()> {
        let mut tx = translog::begin(&self.db).await?;
        let inserted = sqlx::query(
            "INSERT INTO categories (code, display_name, description, parent, active, version, create_time, update_time) \
             VALUES ($1, $2, $3, $4, 1, 1, $5, $5)",
        )
        .bind(row.code.clone())
        .bind(row.display_name.clone())
        .bind(row.description.clone())
        .bind(row.parent.clone())
        .bind(row.create_time.clone())
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(ServiceError::AlreadyExists {
                    resource_type: "category",
                    name: format!("categories/{}", row.code),
                });
            }
            other => other?,
        };
        translog::append(&mut tx, json!({"type": "category_created", "category": row.code, "parent": row.parent, "active": true}), None)
            .await
            .map_err(internal)?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn update_category(
        &self,
        row: &CategoryRow,
        expected: i64,
        fields: &[String],
    ) -> ServiceResult<()> {
        let mut tx = translog::begin(&self.db).await?;
        let done = sqlx::query(
            "UPDATE categories SET display_name = $1, description = $2, parent = $3, active = $4, \
             version = version + 1, update_time = $5 WHERE code = $6 AND version = $7",
        )
        .bind(row.display_name.clone())
        .bind(row.description.clone())
        .bind(row.parent.clone())
        .bind(row.active)
        .bind(row.update_time.clone())
        .bind(row.code.clone())
        .bind(expected)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(ServiceError::stale_etag(&format!(
                "categories/{}",
                row.code
            )));
        }
        translog::append(
            &mut tx,
            json!({"type": "category_updated", "category": row.code, "fields": fields, "parent": row.parent, "active": row.active != 0}),
            None,
        )
        .await
        .map_err(internal)?;
        tx.commit().await?;
        Ok(())
    }

    // ---- experts ----

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

    pub async fn get_expert(&self, id: &str) -> ServiceResult<Option<ExpertFull>> {
        let sql = format!("SELECT {EXPERT_COLUMNS} FROM experts WHERE id = $1");
        let Some(row) = sqlx::query_as::<_, ExpertRow>(AssertSqlSafe(sql))
            .bind(id.to_owned())
            .fetch_optional(&self.db.pool)
            .await?
        else {
            return Ok(None);
        };
        let categories = self
            .categories_of(std::slice::from_ref(&row.id))
            .await?
            .remove(&row.id)
            .unwrap_or_default();
        Ok(Some(ExpertFull { row, categories }))
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
        let found: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut categories = self.categories_of(&found).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let cats = categories.remove(&row.id).unwrap_or_default();
                (
                    row.id.clone(),
                    ExpertFull {
                        row,
                        categories: cats,
                    },
                )
            })
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
        status: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> ServiceResult<Vec<ExpertFull>> {
        let columns = EXPERT_COLUMNS
            .split(", ")
            .map(|c| format!("e.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT {columns} FROM experts e WHERE ($1 = '' OR EXISTS (SELECT 1 FROM expert_categories c \
             WHERE c.expert_id = e.id AND c.category = $1)) AND ($2 = '' OR e.status = $2) AND e.id > $3 \
             ORDER BY e.id LIMIT $4"
        );
        let rows = sqlx::query_as::<_, ExpertRow>(AssertSqlSafe(sql))
            .bind(category.unwrap_or("").to_owned())
            .bind(status.unwrap_or("").to_owned())
            .bind(after.unwrap_or("").to_owned())
            .bind(limit)
            .fetch_all(&self.db.pool)
            .await?;
        let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
        let mut cats = self.categories_of(&ids).await?;
        Ok(rows
            .into_iter()
            .map(|row| {
                let categories = cats.remove(&row.id).unwrap_or_default();
                ExpertFull { row, categories }
            })
            .collect())
    }

    /// Inserts or replaces an expert (by id) with its categories and log entry, inside `tx`.
    /// `expected` is the version an update must find; None inserts.
    pub async fn write_expert(
        tx: &mut Tx,
        expert: &ExpertFull,
        expected: Option<i64>,
        log_fields: &[String],
    ) -> ServiceResult<()> {
        let r = &expert.row;
        match expected {
            None => {
                let sql = format!(
                    "INSERT INTO experts ({EXPERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                     $15, $16, $17, $18, $19, $20, $21)"
                );
                let inserted = sqlx::query(AssertSqlSafe(sql))
                    .bind(r.id.clone())
                    .bind(r.display_name.clone())
                    .bind(r.employer_credit_code.clone())
                    .bind(r.employer_name.clone())
                    .bind(r.source.clone())
                    .bind(r.title.clone())
                    .bind(r.phone.clone())
                    .bind(r.email.clone())
                    .bind(r.id_number.clone())
                    .bind(r.appointment_start.clone())
                    .bind(r.appointment_end.clone())
                    .bind(r.status.clone())
                    .bind(r.unavailable.clone())
                    .bind(r.conflicts.clone())
                    .bind(r.draws_count)
                    .bind(r.reviews_count)
                    .bind(r.version)
                    .bind(r.create_time.clone())
                    .bind(r.update_time.clone())
                    .bind(r.rating_count)
                    .bind(r.rating_sum)
                    .execute(&mut **tx)
                    .await;
                match inserted {
                    Err(e) if is_unique_violation(&e) => {
                        return Err(ServiceError::AlreadyExists {
                            resource_type: "expert",
                            name: format!("experts/{}", r.id),
                        });
                    }
                    other => other?,
                };
            }
            Some(version) => {
                let done = sqlx::query(
                    "UPDATE experts SET display_name = $1, employer_credit_code = $2, employer_name = $3, source = $4, \
                     title = $5, phone = $6, email = $7, id_number = $8, appointment_start = $9, appointment_end = $10, \
                     status = $11, unavailable = $12, conflicts = $13, version = version + 1, update_time = $14 \
                     WHERE id = $15 AND version = $16",
                )
                .bind(r.display_name.clone())
                .bind(r.employer_credit_code.clone())
                .bind(r.employer_name.clone())
                .bind(r.source.clone())
                .bind(r.title.clone())
                .bind(r.phone.clone())
                .bind(r.email.clone())
                .bind(r.id_number.clone())
                .bind(r.appointment_start.clone())
                .bind(r.appointment_end.clone())
                .bind(r.status.clone())
                .bind(r.unavailable.clone())
                .bind(r.conflicts.clone())
                .bind(r.update_time.clone())
                .bind(r.id.clone())
                .bind(version)
                .execute(&mut **tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Err(ServiceError::stale_etag(&format!("experts/{}", r.id)));
                }
                sqlx::query("DELETE FROM expert_categories WHERE expert_id = $1")
                    .bind(r.id.clone())
                    .execute(&mut **tx)
                    .await?;
            }
        }
        for category in &expert.categories {
            sqlx::query("INSERT INTO expert_categories (category, expert_id) VALUES ($1, $2)")
                .bind(category.clone())
                .bind(r.id.clone())
                .execute(&mut **tx)
                .await?;
        }
        // Only what shapes the pool goes into the log: never names, phones or ID numbers.
        let entry = json!({
            "type": if expected.is_none() { "expert_created" } else { "expert_updated" },
            "expert_id": r.id,
            "fields": log_fields,
            "categories": expert.categories,
            "status": r.status,
            "employer_credit_code": r.employer_credit_code,
            "appointment_start": r.appointment_start,
            "appointment_end": r.appointment_end,
        });
        translog::append(tx, entry, None).await.map_err(internal)?;
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

    /// The pool for a draw: every expert tagged with one of `categories`, with that category.
    pub async fn pool(&self, categories: &[String]) -> ServiceResult<Vec<(String, ExpertRow)>> {
        let columns = EXPERT_COLUMNS
            .split(", ")
            .map(|c| format!("e.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "SELECT c.category AS pool_category, {columns} FROM expert_categories c JOIN experts e ON e.id = c.expert_id \
             WHERE c.category IN ({})",
            placeholders(1, categories.len())
        );
        let mut q = sqlx::query(AssertSqlSafe(sql));
        for c in categories {
            q = q.bind(c.clone());
        }
        let rows = q.fetch_all(&self.db.pool).await?;
        rows.iter()
            .map(|row| -> ServiceResult<_> {
                let category: String = row.try_get("pool_category")?;
                Ok((category, <ExpertRow as sqlx::FromRow<_>>::from_row(row)?))
            })
            .collect()
    }

    /// How often each expert was selected since `since` (stored instant).
    pub async fn selection_counts(&self, since: &str) -> ServiceResult<BTreeMap<String, i64>> {
        let rows = sqlx::query(
            "SELECT expert_id, COUNT(*) FROM selections WHERE role = 'SELECTED' AND execute_time >= $1 GROUP BY expert_id",
        )
        .bind(since.to_owned())
        .fetch_all(&self.db.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
            .collect()
    }

    // ---- draws ----

    pub async fn get_draw(&self, id: &str) -> ServiceResult<Option<DrawRow>> {
        let sql = format!("SELECT {DRAW_COLUMNS} FROM draws WHERE id = $1");
        Ok(sqlx::query_as::<_, DrawRow>(AssertSqlSafe(sql))
            .bind(id.to_owned())
            .fetch_optional(&self.db.pool)
            .await?)
    }

    pub async fn draw_by_request(&self, request_id: &str) -> ServiceResult<Option<DrawRow>> {
        let sql = format!("SELECT {DRAW_COLUMNS} FROM draws WHERE request_id = $1");
        Ok(sqlx::query_as::<_, DrawRow>(AssertSqlSafe(sql))
            .bind(request_id.to_owned())
            .fetch_optional(&self.db.pool)
            .await?)
    }

    pub async fn list_draws(
        &self,
        project_id: Option<&str>,
        after: Option<(String, String)>,
        limit: i64,
    ) -> ServiceResult<Vec<DrawRow>> {
        let (t, id) = after.unwrap_or_default();
        let sql = format!(
            "SELECT {DRAW_COLUMNS} FROM draws WHERE ($1 = '' OR project_id = $1) AND (open_time > $2 OR (open_time = $2 AND id > $3)) \
             ORDER BY open_time, id LIMIT $4"
        );
        Ok(sqlx::query_as::<_, DrawRow>(AssertSqlSafe(sql))
            .bind(project_id.unwrap_or("").to_owned())
            .bind(t)
            .bind(id)
            .bind(limit)
            .fetch_all(&self.db.pool)
            .await?)
    }

    pub async fn replacements(&self, draw_id: &str) -> ServiceResult<Vec<ReplacementRow>> {
        Ok(sqlx::query_as::<_, ReplacementRow>(
            "SELECT category, left_expert, came_in, reason, replace_time FROM draw_replacements WHERE draw_id = $1 ORDER BY seq",
        )
        .bind(draw_id.to_owned())
        .fetch_all(&self.db.pool)
        .await?)
    }

    /// Inserts a freshly opened draw and logs it. A request id seen before returns false.
    pub async fn insert_draw(&self, d: &DrawRow) -> ServiceResult<bool> {
        let mut tx = translog::begin(&self.db).await?;
        let inserted = sqlx::query(
            "INSERT INTO draws (id, project_id, stage, state, meeting_date, request_id, supplements, input, input_hash, \
             server_secret, manual_exclusions, open_time, version, request_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1, $13)",
        )
        .bind(d.id.clone())
        .bind(d.project_id.clone())
        .bind(d.stage.clone())
        .bind(d.state.clone())
        .bind(d.meeting_date.clone())
        .bind(d.request_id.clone())
        .bind(d.supplements.clone())
        .bind(d.input.clone())
        .bind(d.input_hash.clone())
        .bind(d.server_secret.clone())
        .bind(d.manual_exclusions.clone())
        .bind(d.open_time.clone())
        .bind(d.request_hash.clone())
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) && d.request_id.is_some() => return Ok(false),
            other => other?,
        };
        let entry = json!({
            "type": "draw_opened",
            "draw_id": d.id,
            "project_id": d.project_id,
            "stage": d.stage,
            "input_hash": d.input_hash,
            "supplements": d.supplements,
        });
        translog::append(&mut tx, entry, Some(&d.id))
            .await
            .map_err(internal)?;
        tx.commit().await?;
        Ok(true)
    }

    /// Moves a draw from `from_state` with `set` (column assignments after `$3`), logging
    /// `entry`. A draw no longer in `from_state` (a racing request won) is FAILED_PRECONDITION.
    pub async fn begin_draw_change(
        &self,
        id: &str,
        from_state: &str,
        to_state: &str,
    ) -> ServiceResult<Tx> {
        let mut tx = translog::begin(&self.db).await?;
        let done = sqlx::query(
            "UPDATE draws SET state = $1, version = version + 1 WHERE id = $2 AND state = $3",
        )
        .bind(to_state.to_owned())
        .bind(id.to_owned())
        .bind(from_state.to_owned())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                format!("draws/{id}"),
                format!("draws/{id} changed state meanwhile; read it again"),
            ));
        }
        Ok(tx)
    }
}
