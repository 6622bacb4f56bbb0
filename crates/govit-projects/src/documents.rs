//! Documents of a project: uploaded as a stream through a temporary file and committed with
//! their audit event, listed, and downloaded as a stream (recorded as a read).

use std::pin::Pin;

use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, Violations,
    idempotency::Once,
    paging::Page,
    time::{now, to_stored},
};
use govit_proto::{StoredEnum, projects::v1 as pb};
use tokio_stream::{Stream, StreamExt};
use tonic::{Status, Streaming};

use crate::{
    ProjectsService,
    blobs::{FinishedBlob, PendingBlob, UploadError},
    lifecycle::TERMINAL,
    model::{DocumentRow, ProjectCode, ProjectRow},
    store::Finishing,
    validation as check,
};

/// Who may upload documents; applicants to their own organisation's projects.
pub(crate) const UPLOADERS: [Role; 2] = [Role::Applicant, Role::Office];
const DOWNLOAD_CHUNK: usize = 64 * 1024;
/// The largest chunk an upload message may carry, as the API documents.
pub(crate) const MAX_CHUNK_BYTES: usize = 1024 * 1024;

pub(crate) type DownloadStream =
    Pin<Box<dyn Stream<Item = Result<pb::DownloadDocumentResponse, Status>> + Send>>;

fn internal(e: impl Into<anyhow::Error>) -> ServiceError {
    ServiceError::Internal(e.into())
}

/// An upload's metadata, checked: the first message of the stream, or a resumable upload's
/// start.
pub(crate) struct Upload {
    pub(crate) code: ProjectCode,
    pub(crate) kind: pb::DocumentKind,
    pub(crate) file_name: String,
    pub(crate) media_type: String,
    pub(crate) sealed_copies: i32,
    /// Lower-case hex, or empty when the client sent none.
    pub(crate) expected_sha256: String,
    pub(crate) request_id: String,
}

impl Upload {
    /// Reads the metadata, which must come first.
    pub async fn first(stream: &mut Streaming<pb::UploadDocumentRequest>) -> ServiceResult<Self> {
        let first = stream
            .message()
            .await
            .map_err(|s| ServiceError::field("metadata", s.message().to_owned()))?;
        let Some(pb::upload_document_request::Part::Metadata(meta)) = first.and_then(|m| m.part)
        else {
            return Err(ServiceError::field(
                "metadata",
                "the first message must carry the metadata",
            ));
        };
        Upload::try_from(meta)
    }
}

fn check_file_name(v: &mut Violations, file_name: &str) {
    check::text(v, "metadata.file_name", file_name, 255);
    if file_name.contains(['/', '\\']) {
        v.add("metadata.file_name", "must not contain path separators");
    } else if matches!(file_name.trim(), "." | "..") || file_name.trim().starts_with('.') {
        // Names that mean a directory, or hide a file, when someone saves the download.
        v.add(
            "metadata.file_name",
            "must not be . or .. nor start with a dot",
        );
    }
}

fn is_media_type(media_type: &str) -> bool {
    media_type.len() <= 127
        && media_type.split_once('/').is_some_and(|(a, b)| {
            !a.is_empty() && !b.is_empty() && media_type.bytes().all(|c| c.is_ascii_graphic())
        })
}

impl TryFrom<pb::DocumentUpload> for Upload {
    type Error = ServiceError;

    fn try_from(meta: pb::DocumentUpload) -> ServiceResult<Self> {
        let mut v = Violations::new();
        let code = check::parse_project_name("metadata.parent", &meta.parent).ok();
        if code.is_none() {
            v.add("metadata.parent", "must be projects/{code}");
        }
        let kind = check::enum_value::<pb::DocumentKind>(&mut v, "metadata.kind", meta.kind, false);
        check_file_name(&mut v, &meta.file_name);
        if !is_media_type(&meta.media_type) {
            v.add(
                "metadata.media_type",
                "must be a media type such as application/pdf",
            );
        }
        match kind {
            Some(pb::DocumentKind::ApplicationForm) if !(1..=99).contains(&meta.sealed_copies) => v
                .add(
                    "metadata.sealed_copies",
                    "the application form needs the number of sealed copies received (1 to 99)",
                ),
            Some(k) if k != pb::DocumentKind::ApplicationForm && meta.sealed_copies != 0 => v.add(
                "metadata.sealed_copies",
                "only the application form records sealed copies",
            ),
            _ => {}
        }
        let expected = meta.expected_sha256.trim().to_ascii_lowercase();
        if !expected.is_empty()
            && (expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            v.add(
                "metadata.expected_sha256",
                "must be 64 hexadecimal characters",
            );
        }
        v.finish()?;
        let (Some(code), Some(kind)) = (code, kind) else {
            return Err(ServiceError::field("metadata", "is invalid"));
        };
        Ok(Upload {
            code,
            kind,
            file_name: meta.file_name.trim().to_owned(),
            media_type: meta.media_type,
            sealed_copies: meta.sealed_copies,
            expected_sha256: expected,
            request_id: meta.request_id,
        })
    }
}

impl Upload {
    /// The metadata as the client sent it (normalised), with `expected_sha256` set to
    /// `content_sha256`: what a request id is bound to, so that resending the same id with
    /// other content is refused.
    pub(crate) fn to_proto_with(&self, content_sha256: &str) -> pb::DocumentUpload {
        pb::DocumentUpload {
            parent: self.code.name(),
            kind: self.kind as i32,
            file_name: self.file_name.clone(),
            media_type: self.media_type.clone(),
            sealed_copies: self.sealed_copies,
            expected_sha256: content_sha256.to_owned(),
            request_id: self.request_id.clone(),
        }
    }
}

/// Writes the chunks that follow the metadata into `pending`.
async fn receive_chunks(
    stream: &mut Streaming<pb::UploadDocumentRequest>,
    pending: &mut PendingBlob,
) -> ServiceResult<()> {
    loop {
        let message = match stream.message().await {
            Ok(Some(m)) => m,
            Ok(None) => return Ok(()),
            Err(status) => {
                return Err(ServiceError::field(
                    "chunk",
                    format!("upload interrupted: {}", status.message()),
                ));
            }
        };
        let bytes = match message.part {
            Some(pb::upload_document_request::Part::Chunk(bytes)) => bytes,
            Some(pb::upload_document_request::Part::Metadata(_)) => {
                return Err(ServiceError::field(
                    "metadata",
                    "must be sent only in the first message",
                ));
            }
            None => {
                return Err(ServiceError::field(
                    "part",
                    "each message must carry metadata or a chunk",
                ));
            }
        };
        if bytes.len() > MAX_CHUNK_BYTES {
            return Err(ServiceError::field(
                "chunk",
                format!("is {} bytes; a chunk is at most 1 MiB", bytes.len()),
            ));
        }
        match pending.write(&bytes).await {
            Ok(()) => {}
            Err(UploadError::TooLarge { limit }) => {
                return Err(ServiceError::field(
                    "chunk",
                    format!("the document exceeds the limit of {limit} bytes"),
                ));
            }
            Err(UploadError::Io(e)) => return Err(internal(e)),
        }
    }
}

/// A page of a project's documents.
pub(crate) struct DocumentQuery {
    code: ProjectCode,
    page: Page,
}

impl TryFrom<pb::ListDocumentsRequest> for DocumentQuery {
    type Error = ServiceError;

    fn try_from(req: pb::ListDocumentsRequest) -> ServiceResult<Self> {
        let code = check::parse_project_name("parent", &req.parent)?;
        let page = Page::parse(req.page_size, &req.page_token, &format!("documents {code}"))?;
        Ok(DocumentQuery { code, page })
    }
}

impl ProjectsService {
    /// The project, if the caller may see it and it still takes documents.
    pub(crate) async fn taking_documents(
        &self,
        caller: &Caller,
        code: &ProjectCode,
    ) -> ServiceResult<ProjectRow> {
        let project = self.visible_project(caller, code).await?;
        if TERMINAL.contains(&project.state) {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                project.name(),
                format!(
                    "{} is {}; it takes no more documents",
                    project.name(),
                    project.state.as_stored()
                ),
            ));
        }
        Ok(project)
    }

    /// Receives a streamed upload's content and records the document. A request id is bound
    /// to the metadata and the content's hash, so it is checked once the content is in.
    pub(crate) async fn receive_document(
        &self,
        caller: &Caller,
        upload: Upload,
        stream: &mut Streaming<pb::UploadDocumentRequest>,
    ) -> ServiceResult<pb::Document> {
        self.taking_documents(caller, &upload.code).await?;
        let mut pending = self
            .blobs
            .begin(self.max_document_bytes)
            .await
            .map_err(internal)?;
        receive_chunks(stream, &mut pending).await?;
        let blob = pending.finish().await.map_err(internal)?;
        let once = Once::new(
            caller,
            "UploadDocument",
            &upload.request_id,
            &upload.to_proto_with(&blob.sha256),
        )?;
        once.run(self.db(), self.record_document(caller, upload, blob, None))
            .await
    }

    /// Makes a received blob a document of its project, with its audit event; `finishing` is
    /// the resumable upload it came from, marked finished in the same transaction.
    pub(crate) async fn record_document(
        &self,
        caller: &Caller,
        upload: Upload,
        blob: FinishedBlob,
        finishing: Option<Finishing<'_>>,
    ) -> ServiceResult<pb::Document> {
        self.taking_documents(caller, &upload.code).await?;
        if blob.size == 0 {
            return Err(ServiceError::field("chunk", "the document is empty"));
        }
        if !upload.expected_sha256.is_empty() && upload.expected_sha256 != blob.sha256 {
            return Err(ServiceError::field(
                "metadata.expected_sha256",
                format!(
                    "does not match the content received, whose SHA-256 is {}",
                    blob.sha256
                ),
            ));
        }
        let row = DocumentRow {
            id: uuid::Uuid::now_v7().to_string(),
            project_code: upload.code,
            kind: upload.kind,
            file_name: upload.file_name,
            media_type: upload.media_type,
            size_bytes: blob.size as i64,
            sha256: blob.sha256.clone(),
            sealed_copies: i64::from(upload.sealed_copies),
            uploaded_by: caller.subject.clone(),
            create_time: to_stored(now()),
        };
        let blobs = &self.blobs;
        let id = row.id.clone();
        self.store
            .insert_document(
                &row,
                caller,
                finishing,
                async || blobs.place(blob, &id).await,
                async || blobs.remove(&id).await,
            )
            .await?;
        tracing::info!(project = %row.project_code, document = %row.id, size = row.size_bytes, "document stored");
        row.to_proto().map_err(internal)
    }

    pub(crate) async fn project_documents(
        &self,
        caller: &Caller,
        query: DocumentQuery,
    ) -> ServiceResult<pb::ListDocumentsResponse> {
        let DocumentQuery { code, page } = query;
        self.visible_project(caller, &code).await?;
        let after = page.after.as_deref().map(|k| {
            let (t, id) = k.split_once(' ').unwrap_or((k, ""));
            (t.to_owned(), id.to_owned())
        });
        let mut rows = self
            .store
            .list_documents(&code, after, page.fetch_limit())
            .await?;
        let next_page_token = page.finish(&mut rows, |r| format!("{} {}", r.create_time, r.id));
        Ok(pb::ListDocumentsResponse {
            documents: rows
                .iter()
                .map(DocumentRow::to_proto)
                .collect::<Result<_, _>>()
                .map_err(internal)?,
            next_page_token,
        })
    }

    /// The document's metadata alone (not a read of its content, so not recorded as one).
    pub(crate) async fn document_metadata(
        &self,
        caller: &Caller,
        code: &ProjectCode,
        id: &str,
        name: &str,
    ) -> ServiceResult<pb::Document> {
        self.visible_project(caller, code).await?;
        self.store
            .get_document(code, id)
            .await?
            .ok_or_else(|| ServiceError::not_found("document", name.to_owned()))?
            .to_proto()
            .map_err(internal)
    }

    /// The document's metadata, then its content in chunks; the read is recorded.
    pub(crate) async fn open_document(
        &self,
        caller: &Caller,
        (code, id): (ProjectCode, String),
        name: &str,
    ) -> ServiceResult<DownloadStream> {
        self.visible_project(caller, &code).await?;
        let row = self
            .store
            .get_document(&code, &id)
            .await?
            .ok_or_else(|| ServiceError::not_found("document", name.to_owned()))?;
        let metadata = row.to_proto().map_err(internal)?;
        govit_platform::reads::record(&self.store.db, caller, "DocumentDownloaded", &row.name())
            .await?;
        let file = tokio::fs::File::open(self.blobs.path_of(&row.id))
            .await
            .map_err(|e| {
                internal(
                    anyhow::Error::new(e).context(format!("opening content of {}", row.name())),
                )
            })?;
        let head = tokio_stream::once(Ok(pb::DownloadDocumentResponse {
            part: Some(pb::download_document_response::Part::Metadata(metadata)),
        }));
        let body = file_chunks(file).map(|chunk| match chunk {
            Ok(bytes) => Ok(pb::DownloadDocumentResponse {
                part: Some(pb::download_document_response::Part::Chunk(bytes)),
            }),
            Err(e) => Err(Status::from(internal(
                anyhow::Error::new(e).context("reading document content"),
            ))),
        });
        Ok(Box::pin(head.chain(body)) as DownloadStream)
    }
}

/// Reads a file as a stream of chunks without loading it whole.
fn file_chunks(mut file: tokio::fs::File) -> impl Stream<Item = std::io::Result<Vec<u8>>> + Send {
    use tokio::io::AsyncReadExt;
    stream_from(move |tx| async move {
        loop {
            let mut buf = vec![0u8; DOWNLOAD_CHUNK];
            match file.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.send(Ok(buf)).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            }
        }
    })
}

/// A stream fed by a spawned producer through a small channel, so reading stays ahead of the
/// network by at most a few chunks.
fn stream_from<T, F, Fut>(producer: F) -> impl Stream<Item = T> + Send
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(producer(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
