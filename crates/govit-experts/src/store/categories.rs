//! The SQL of categories.

use std::collections::BTreeMap;

use govit_platform::{ServiceError, ServiceResult, db::is_unique_violation};
use serde_json::json;
use sqlx::AssertSqlSafe;

use super::{Store, internal, placeholders};
use crate::{model::CategoryRow, translog};

const CATEGORY_COLUMNS: &str =
    "code, display_name, description, parent, active, version, create_time, update_time";

impl Store {
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
}
