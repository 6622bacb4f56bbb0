//! Resumable uploads: a document sent in unary calls (start, append at an offset, finish with
//! the SHA-256), for browsers, whose gRPC-Web cannot stream a request, and for networks that
//! break. The bytes wait in the blob store's `uploads/` folder and become a document only when
//! finished, through the same path as a streamed upload.

use std::time::Duration;

use govit_platform::{
    Caller, ServiceError, ServiceResult,
    time::{from_stored, now, stored_to_timestamp, to_stored},
};
use govit_proto::{StoredEnum, projects::v1 as pb};
use tonic::Code;

use crate::{
    ProjectsService,
    documents::{MAX_CHUNK_BYTES, Upload},
    model::ProjectCode,
    store::Finishing,
    validation as check,
};

/// How long an upload may wait for its next chunk before it is removed with its bytes; a
/// finished upload's row is kept as long after finishing, so that finishing again (its reply
/// was lost) still answers its document.
pub const UPLOAD_LIFETIME: Duration = Duration::from_secs(24 * 3600);

fn internal(e: impl Into<anyhow::Error>) -> ServiceError {
    ServiceError::Internal(e.into())
}

fn expiry_from_now() -> String {
    to_stored(now() + chrono::Duration::from_std(UPLOAD_LIFETIME).unwrap_or_default())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct UploadRow {
    id: String,
    project_code: ProjectCode,
    #[sqlx(try_from = "String")]
    kind: pb::DocumentKind,
    file_name: String,
    media_type: String,
    sealed_copies: i64,
    expected_sha256: String,
    uploaded_by: String,
    received_bytes: i64,
    create_time: String,
    expire_time: String,
    document_id: Option<String>,
}

const UPLOAD_COLUMNS: &str = "id, project_code, kind, file_name, media_type, sealed_copies, \
    expected_sha256, uploaded_by, received_bytes, create_time, expire_time, document_id";

impl UploadRow {
    fn name(&self) -> String {
        format!("projects/{}/uploads/{}", self.project_code, self.id)
    }

    fn metadata(&self) -> anyhow::Result<Upload> {
        Ok(Upload {
            code: self.project_code.clone(),
            kind: self.kind,
            file_name: self.file_name.clone(),
            media_type: self.media_type.clone(),
            sealed_copies: i32::try_from(self.sealed_copies)?,
            expected_sha256: self.expected_sha256.clone(),
            request_id: String::new(),
        })
    }

    fn to_proto(&self, max_bytes: u64) -> anyhow::Result<pb::Upload> {
        Ok(pb::Upload {
            name: self.name(),
            metadata: Some(pb::DocumentUpload {
                request_id: String::new(),
                ..self.metadata()?.to_proto_with(&self.expected_sha256)
            }),
            received_bytes: self.received_bytes,
            max_bytes: max_bytes as i64,
            create_time: Some(stored_to_timestamp(&self.create_time)?),
            expire_time: Some(stored_to_timestamp(&self.expire_time)?),
            document: self
                .document_id
                .as_ref()
                .map(|id| format!("projects/{}/documents/{id}", self.project_code))
                .unwrap_or_default(),
        })
    }

    fn expired(&self) -> bool {
        from_stored(&self.expire_time).is_ok_and(|at| at <= now())
    }
}

/// The caller's own upload, read through `executor`; another's, or an expired one, is not
/// found.
async fn own_upload<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    caller: &Caller,
    code: &ProjectCode,
    id: &str,
    name: &str,
) -> ServiceResult<UploadRow> {
    let sql = format!("SELECT {UPLOAD_COLUMNS} FROM uploads WHERE id = $1 AND project_code = $2");
    let row: Option<UploadRow> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(code.as_str())
        .fetch_optional(executor)
        .await?;
    match row {
        Some(row) if row.uploaded_by == caller.subject && !row.expired() => Ok(row),
        _ => Err(ServiceError::not_found("upload", name.to_owned())),
    }
}

/// `projects/{code}/uploads/{id}`, parsed.
pub(crate) fn parse_upload_name(field: &str, name: &str) -> ServiceResult<(ProjectCode, String)> {
    let malformed = || ServiceError::field(field, "must be projects/{code}/uploads/{id}");
    let (project, id) = name.split_once("/uploads/").ok_or_else(malformed)?;
    let code = check::parse_project_name(field, project).map_err(|_| malformed())?;
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        return Err(malformed());
    }
    Ok((code, id.to_owned()))
}

/// A chunk for [`ProjectsService::append_upload`], checked.
pub(crate) struct Chunk {
    code: ProjectCode,
    id: String,
    name: String,
    offset: u64,
    data: Vec<u8>,
}

impl TryFrom<pb::AppendUploadRequest> for Chunk {
    type Error = ServiceError;

    fn try_from(req: pb::AppendUploadRequest) -> ServiceResult<Self> {
        let (code, id) = parse_upload_name("name", &req.name)?;
        let offset = u64::try_from(req.offset)
            .map_err(|_| ServiceError::field("offset", "must not be negative"))?;
        if req.data.is_empty() {
            return Err(ServiceError::field("data", "is empty"));
        }
        if req.data.len() > MAX_CHUNK_BYTES {
            return Err(ServiceError::field(
                "data",
                format!("is {} bytes; a chunk is at most 1 MiB", req.data.len()),
            ));
        }
        Ok(Chunk {
            code,
            id,
            name: req.name,
            offset,
            data: req.data,
        })
    }
}

/// The hash that finishes an upload, checked.
pub(crate) fn parse_sha256(field: &str, value: &str) -> ServiceResult<String> {
    let hash = value.trim().to_ascii_lowercase();
    if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ServiceError::field(
            field,
            "must be the 64 hexadecimal characters of the content's SHA-256",
        ));
    }
    Ok(hash)
}

fn offset_mismatch(name: &str, received: i64, offset: u64) -> ServiceError {
    ServiceError::with_reason(
        Code::FailedPrecondition,
        "UPLOAD_OFFSET_MISMATCH",
        format!(
            "{name} has received {received} bytes, not {offset}; continue at offset {received}"
        ),
        &[("received_bytes", &received.to_string()), ("upload", name)],
    )
}

impl ProjectsService {
    pub(crate) async fn start_upload(
        &self,
        caller: &Caller,
        upload: Upload,
    ) -> ServiceResult<pb::Upload> {
        self.taking_documents(caller, &upload.code).await?;
        let at = to_stored(now());
        let row = UploadRow {
            id: uuid::Uuid::now_v7().to_string(),
            project_code: upload.code.clone(),
            kind: upload.kind,
            file_name: upload.file_name.clone(),
            media_type: upload.media_type.clone(),
            sealed_copies: i64::from(upload.sealed_copies),
            expected_sha256: upload.expected_sha256.clone(),
            uploaded_by: caller.subject.clone(),
            received_bytes: 0,
            create_time: at,
            expire_time: expiry_from_now(),
            document_id: None,
        };
        self.blobs.create_upload(&row.id).await.map_err(internal)?;
        let mut tx = self.db().begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO uploads (id, project_code, kind, file_name, media_type, sealed_copies, \
             expected_sha256, uploaded_by, received_bytes, create_time, expire_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, $9, $10)",
        )
        .bind(&row.id)
        .bind(row.project_code.as_str())
        .bind(row.kind.as_stored())
        .bind(&row.file_name)
        .bind(&row.media_type)
        .bind(row.sealed_copies)
        .bind(&row.expected_sha256)
        .bind(&row.uploaded_by)
        .bind(&row.create_time)
        .bind(&row.expire_time)
        .execute(&mut *tx)
        .await;
        let committed = match inserted {
            Ok(_) => tx.commit().await,
            Err(e) => Err(e),
        };
        if let Err(e) = committed {
            self.blobs.remove_upload(&row.id).await;
            return Err(e.into());
        }
        row.to_proto(self.max_document_bytes).map_err(internal)
    }

    /// The caller's own upload; another's, or an expired one, is not found.
    async fn own_upload(
        &self,
        caller: &Caller,
        code: &ProjectCode,
        id: &str,
        name: &str,
    ) -> ServiceResult<UploadRow> {
        own_upload(&self.db().pool, caller, code, id, name).await
    }

    fn unfinished(row: &UploadRow) -> ServiceResult<()> {
        match &row.document_id {
            None => Ok(()),
            Some(_) => Err(ServiceError::precondition(
                "STATE_CONFLICT",
                row.name(),
                format!("{} is finished; it takes no more bytes", row.name()),
            )),
        }
    }

    pub(crate) async fn get_upload(
        &self,
        caller: &Caller,
        name: &str,
    ) -> ServiceResult<pb::Upload> {
        let (code, id) = parse_upload_name("name", name)?;
        let row = self.own_upload(caller, &code, &id, name).await?;
        row.to_proto(self.max_document_bytes).map_err(internal)
    }

    pub(crate) async fn append_upload(
        &self,
        caller: &Caller,
        chunk: Chunk,
    ) -> ServiceResult<pb::Upload> {
        // The row is read locked (a write transaction): no finish or other append can move it
        // while the bytes are written.
        let mut tx = self.db().begin_write().await?;
        sqlx::query("UPDATE uploads SET received_bytes = received_bytes WHERE id = $1")
            .bind(&chunk.id)
            .execute(&mut *tx)
            .await?;
        let mut row = own_upload(&mut *tx, caller, &chunk.code, &chunk.id, &chunk.name).await?;
        Self::unfinished(&row)?;
        let received = row.received_bytes as u64;
        let end = chunk.offset + chunk.data.len() as u64;
        if chunk.offset < received && end <= received {
            // A chunk sent again because its reply was lost: its bytes are in already.
            return row.to_proto(self.max_document_bytes).map_err(internal);
        }
        if chunk.offset != received {
            return Err(offset_mismatch(
                &row.name(),
                row.received_bytes,
                chunk.offset,
            ));
        }
        if end > self.max_document_bytes {
            return Err(ServiceError::field(
                "data",
                format!(
                    "the document would exceed the limit of {} bytes",
                    self.max_document_bytes
                ),
            ));
        }
        self.blobs
            .write_upload(&row.id, chunk.offset, &chunk.data)
            .await
            .map_err(internal)?;
        let expire_time = expiry_from_now();
        sqlx::query("UPDATE uploads SET received_bytes = $1, expire_time = $2 WHERE id = $3")
            .bind(end as i64)
            .bind(&expire_time)
            .bind(&row.id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        row.received_bytes = end as i64;
        row.expire_time = expire_time;
        row.to_proto(self.max_document_bytes).map_err(internal)
    }

    pub(crate) async fn finish_upload(
        &self,
        caller: &Caller,
        name: &str,
        sha256: &str,
    ) -> ServiceResult<pb::Document> {
        let (code, id) = parse_upload_name("name", name)?;
        let sha256 = parse_sha256("sha256", sha256)?;
        let row = self.own_upload(caller, &code, &id, name).await?;
        if let Some(document_id) = &row.document_id {
            // Finished already (the reply was lost): the same document, if the same content.
            let document = self
                .store
                .get_document(&code, document_id)
                .await?
                .ok_or_else(|| internal(anyhow::anyhow!("{name} names a missing document")))?;
            if document.sha256 != sha256 {
                return Err(ServiceError::field(
                    "sha256",
                    format!(
                        "the upload was finished with content whose SHA-256 is {}",
                        document.sha256
                    ),
                ));
            }
            return document.to_proto().map_err(internal);
        }
        if row.received_bytes == 0 {
            return Err(ServiceError::field(
                "name",
                "the upload has received no bytes; append the content first",
            ));
        }
        let blob = self
            .blobs
            .finish_upload(&row.id, row.received_bytes as u64)
            .await
            .map_err(internal)?;
        if blob.sha256 != sha256 {
            // The bytes are not what the client meant to send; nothing can resume from them.
            let received_sha256 = blob.sha256.clone();
            drop(blob);
            self.delete_upload_row(&row.id).await?;
            self.blobs.remove_upload(&row.id).await;
            return Err(ServiceError::field(
                "sha256",
                format!(
                    "does not match the {} bytes received, whose SHA-256 is {received_sha256}; the upload is discarded, start again",
                    row.received_bytes
                ),
            ));
        }
        let upload = row.metadata().map_err(internal)?;
        let expire_time = expiry_from_now();
        let finishing = Finishing {
            id: &row.id,
            expire_time: &expire_time,
        };
        let recorded = self
            .record_document(caller, upload, blob, Some(finishing))
            .await;
        if recorded.is_err() && !self.blobs.upload_exists(&row.id).await {
            // The content was moved into place and the commit then failed: there are no bytes
            // left to finish from, so the upload goes, and the client starts again.
            self.delete_upload_row(&row.id).await?;
        }
        recorded
    }

    pub(crate) async fn cancel_upload(&self, caller: &Caller, name: &str) -> ServiceResult<()> {
        let (code, id) = parse_upload_name("name", name)?;
        let row = self.own_upload(caller, &code, &id, name).await?;
        Self::unfinished(&row)?;
        self.delete_upload_row(&row.id).await?;
        self.blobs.remove_upload(&row.id).await;
        Ok(())
    }

    async fn delete_upload_row(&self, id: &str) -> ServiceResult<()> {
        sqlx::query("DELETE FROM uploads WHERE id = $1 AND document_id IS NULL")
            .bind(id)
            .execute(&self.db().pool)
            .await?;
        Ok(())
    }

    /// Removes uploads past their expiry time, with their bytes (finished ones have none left).
    /// Each is deleted only if still expired, so an append or finish that came in meanwhile
    /// keeps it. Returns how many.
    pub async fn expire_uploads(&self) -> anyhow::Result<u64> {
        let now = to_stored(now());
        let expired: Vec<String> =
            sqlx::query_scalar("SELECT id FROM uploads WHERE expire_time <= $1 LIMIT 1000")
                .bind(&now)
                .fetch_all(&self.db().pool)
                .await?;
        let mut removed = 0;
        for id in &expired {
            let deleted: Option<(Option<String>,)> = sqlx::query_as(
                "DELETE FROM uploads WHERE id = $1 AND expire_time <= $2 RETURNING document_id",
            )
            .bind(id)
            .bind(&now)
            .fetch_optional(&self.db().pool)
            .await?;
            if let Some((document_id,)) = deleted {
                removed += 1;
                if document_id.is_none() {
                    self.blobs.remove_upload(id).await;
                }
            }
        }
        Ok(removed)
    }
}

impl ProjectsService {
    /// Removes expired uploads and forgets expired request ids, every
    /// [`govit_platform::idempotency::HOUSEKEEPING_INTERVAL`] while the runtime runs.
    pub fn spawn_housekeeping(&self) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        govit_platform::idempotency::spawn_forgetting(self.db().clone());
        tokio::spawn(async move {
            loop {
                match service.expire_uploads().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "expired uploads removed"),
                    Err(e) => tracing::warn!(error = %e, "removing expired uploads failed"),
                }
                tokio::time::sleep(govit_platform::idempotency::HOUSEKEEPING_INTERVAL).await;
            }
        })
    }
}
