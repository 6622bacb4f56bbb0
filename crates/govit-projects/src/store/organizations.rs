//! The SQL of organisations.

use govit_platform::{Caller, ServiceError, ServiceResult, db::is_unique_violation};
use govit_proto::StoredEnum;
use sqlx::{AssertSqlSafe, Row};

use super::{Arg, NewEvent, Store, bind_all, insert_event};
use crate::model::OrgRow;

const ORG_COLUMNS: &str =
    "credit_code, display_name, kind, contacts, version, create_time, update_time";

impl Store {
    pub async fn get_org(&self, credit_code: &str) -> ServiceResult<Option<OrgRow>> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM organizations WHERE credit_code = $1");
        Ok(sqlx::query_as::<_, OrgRow>(AssertSqlSafe(sql))
            .bind(credit_code.to_owned())
            .fetch_optional(&self.db.pool)
            .await?)
    }

    pub async fn org_exists(&self, credit_code: &str) -> ServiceResult<bool> {
        let row = sqlx::query("SELECT 1 FROM organizations WHERE credit_code = $1")
            .bind(credit_code.to_owned())
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.is_some())
    }

    pub async fn list_orgs(
        &self,
        kind: Option<govit_proto::projects::v1::OrganizationKind>,
        only: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> ServiceResult<Vec<OrgRow>> {
        let mut sql = format!("SELECT {ORG_COLUMNS} FROM organizations WHERE 1 = 1");
        let mut args = Vec::new();
        for (column, value) in [
            ("kind", kind.map(StoredEnum::as_stored)),
            ("credit_code", only),
        ] {
            if let Some(v) = value {
                args.push(Arg::from(v));
                sql.push_str(&format!(" AND {column} = ${}", args.len()));
            }
        }
        if let Some(after) = after {
            args.push(Arg::from(after));
            sql.push_str(&format!(" AND credit_code > ${}", args.len()));
        }
        args.push(Arg::Int(limit));
        sql.push_str(&format!(" ORDER BY credit_code LIMIT ${}", args.len()));
        let query = bind_all(sqlx::query_as::<_, OrgRow>(AssertSqlSafe(sql)), args);
        Ok(query.fetch_all(&self.db.pool).await?)
    }

    pub async fn create_org(&self, row: &OrgRow, actor: &Caller) -> ServiceResult<()> {
        let mut tx = self.db.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO organizations (credit_code, display_name, kind, contacts, version, \
             event_count, create_time, update_time) VALUES ($1, $2, $3, $4, 1, 1, $5, $5)",
        )
        .bind(row.credit_code.clone())
        .bind(row.display_name.clone())
        .bind(row.kind.as_stored())
        .bind(row.contacts.clone())
        .bind(row.create_time.clone())
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(ServiceError::AlreadyExists {
                    resource_type: "organization",
                    name: row.name(),
                });
            }
            other => other?,
        };
        let event = NewEvent {
            action: "CreateOrganization".into(),
            changed_fields: vec!["display_name".into(), "kind".into(), "contacts".into()],
            ..NewEvent::default()
        };
        insert_event(&mut tx, &row.name(), 1, &row.create_time, actor, &event).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes the organisation if its version is still `expected_version`.
    pub async fn update_org(
        &self,
        row: &OrgRow,
        expected_version: i64,
        actor: &Caller,
        changed_fields: Vec<String>,
    ) -> ServiceResult<()> {
        let mut tx = self.db.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE organizations SET display_name = $1, kind = $2, contacts = $3, \
             version = version + 1, event_count = event_count + 1, update_time = $4 \
             WHERE credit_code = $5 AND version = $6 RETURNING event_count",
        )
        .bind(row.display_name.clone())
        .bind(row.kind.as_stored())
        .bind(row.contacts.clone())
        .bind(row.update_time.clone())
        .bind(row.credit_code.clone())
        .bind(expected_version)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(updated) = updated else {
            return Err(ServiceError::stale_etag(&row.name()));
        };
        let seq: i64 = updated.try_get(0)?;
        let event = NewEvent {
            action: "UpdateOrganization".into(),
            changed_fields,
            ..NewEvent::default()
        };
        insert_event(&mut tx, &row.name(), seq, &row.update_time, actor, &event).await?;
        tx.commit().await?;
        Ok(())
    }
}
