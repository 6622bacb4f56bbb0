//! The SQL of documents.

use govit_platform::{Caller, ServiceError, ServiceResult};
use govit_proto::StoredEnum;
use sqlx::AssertSqlSafe;

use super::{Arg, NewEvent, Store, bind_all, placeholders, project_event};
use crate::model::{DocumentRow, ProjectCode};

const DOCUMENT_COLUMNS: &str = "id, project_code, kind, file_name, media_type, size_bytes, sha256, \
    sealed_copies, uploaded_by, create_time";

/// The resumable upload a document is made from, and how long its finished row answers.
pub struct Finishing<'a> {
    pub id: &'a str,
    pub expire_time: &'a str,
}

impl Store {
    /// Records an uploaded document and its audit event. `place_blob` moves the content into
    /// the blob store; it runs inside the transaction, so a failure there writes nothing, and a
    /// failed commit is answered by `remove_blob`. `finishing` is the resumable upload the
    /// document comes from: marked finished in the same transaction, once.
    pub async fn insert_document(
        &self,
        row: &DocumentRow,
        actor: &Caller,
        finishing: Option<Finishing<'_>>,
        place_blob: impl AsyncFnOnce() -> std::io::Result<()>,
        remove_blob: impl AsyncFnOnce(),
    ) -> ServiceResult<()> {
        let mut tx = self.db.begin_write().await?;
        if let Some(upload) = finishing {
            // Only as hashed: an append that came in meanwhile, a concurrent finish or a
            // cancellation leaves this one nothing to finish. The row stays locked until the
            // content is in place, so no append can reach the file after this.
            let marked = sqlx::query(
                "UPDATE uploads SET document_id = $1, expire_time = $2 \
                 WHERE id = $3 AND document_id IS NULL AND received_bytes = $4",
            )
            .bind(&row.id)
            .bind(upload.expire_time)
            .bind(upload.id)
            .bind(row.size_bytes)
            .execute(&mut *tx)
            .await?;
            if marked.rows_affected() != 1 {
                return Err(ServiceError::Aborted(
                    "the upload was changed, finished or cancelled by a concurrent call; read it again"
                        .into(),
                ));
            }
        }
        let sql = format!(
            "INSERT INTO documents ({DOCUMENT_COLUMNS}) VALUES ({})",
            placeholders(1, 10)
        );
        sqlx::query(AssertSqlSafe(sql))
            .bind(row.id.clone())
            .bind(row.project_code.clone())
            .bind(row.kind.as_stored())
            .bind(row.file_name.clone())
            .bind(row.media_type.clone())
            .bind(row.size_bytes)
            .bind(row.sha256.clone())
            .bind(row.sealed_copies)
            .bind(row.uploaded_by.clone())
            .bind(row.create_time.clone())
            .execute(&mut *tx)
            .await?;
        let event = NewEvent {
            action: "UploadDocument".into(),
            changed_fields: vec![format!("documents/{}", row.id)],
            reason: format!("{} {}", row.kind.as_stored(), row.file_name),
            document_sha256: vec![row.sha256.clone()],
            ..NewEvent::default()
        };
        project_event(&mut tx, &row.project_code, &row.create_time, actor, &event).await?;
        place_blob().await.map_err(|e| {
            ServiceError::Internal(anyhow::Error::new(e).context("storing document content"))
        })?;
        if let Err(e) = tx.commit().await {
            remove_blob().await;
            return Err(e.into());
        }
        Ok(())
    }

    pub async fn get_document(
        &self,
        project_code: &ProjectCode,
        id: &str,
    ) -> ServiceResult<Option<DocumentRow>> {
        let sql =
            format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE project_code = $1 AND id = $2");
        Ok(sqlx::query_as::<_, DocumentRow>(AssertSqlSafe(sql))
            .bind(project_code.to_owned())
            .bind(id.to_owned())
            .fetch_optional(&self.db.pool)
            .await?)
    }

    /// A page of the project's documents, oldest first, after the (time, id) key `after`.
    pub async fn list_documents(
        &self,
        project_code: &ProjectCode,
        after: Option<(String, String)>,
        limit: i64,
    ) -> ServiceResult<Vec<DocumentRow>> {
        let mut sql = format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE project_code = $1");
        let mut args = vec![Arg::from(project_code.as_str())];
        if let Some((time, id)) = after {
            args.push(Arg::Text(time));
            args.push(Arg::Text(id));
            sql.push_str(" AND (create_time > $2 OR (create_time = $2 AND id > $3))");
        }
        args.push(Arg::Int(limit));
        sql.push_str(&format!(" ORDER BY create_time, id LIMIT ${}", args.len()));
        let query = bind_all(sqlx::query_as::<_, DocumentRow>(AssertSqlSafe(sql)), args);
        Ok(query.fetch_all(&self.db.pool).await?)
    }

    /// Every document of the project, oldest first: for guards that need several kinds.
    pub async fn all_documents(
        &self,
        project_code: &ProjectCode,
    ) -> ServiceResult<Vec<DocumentRow>> {
        self.list_documents(project_code, None, i64::MAX / 2).await
    }
}
