//! Resumable uploads: unary calls a browser can make, ending in the same document a streamed
//! upload makes.

use govit_platform::Role;
use govit_proto::projects::v1 as pb;
use sha2::{Digest, Sha256};
use tonic::Code;

use crate::helpers::*;

fn metadata(parent: &str) -> pb::DocumentUpload {
    pb::DocumentUpload {
        parent: parent.to_owned(),
        kind: pb::DocumentKind::FeasibilityStudyReport as i32,
        file_name: "study.pdf".into(),
        media_type: "application/pdf".into(),
        ..Default::default()
    }
}

async fn start(client: &Client, parent: &str) -> Result<pb::Upload, tonic::Status> {
    client
        .clone()
        .start_upload(pb::StartUploadRequest {
            metadata: Some(metadata(parent)),
        })
        .await
        .map(|r| r.into_inner())
}

async fn append(
    client: &Client,
    name: &str,
    offset: usize,
    data: &[u8],
) -> Result<pb::Upload, tonic::Status> {
    client
        .clone()
        .append_upload(pb::AppendUploadRequest {
            name: name.to_owned(),
            offset: offset as i64,
            data: data.to_vec(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn finish(
    client: &Client,
    name: &str,
    content: &[u8],
) -> Result<pb::Document, tonic::Status> {
    client
        .clone()
        .finish_upload(pb::FinishUploadRequest {
            name: name.to_owned(),
            sha256: hex::encode(Sha256::digest(content)),
        })
        .await
        .map(|r| r.into_inner())
}

async fn get_upload(client: &Client, name: &str) -> Result<pb::Upload, tonic::Status> {
    client
        .clone()
        .get_upload(pb::GetUploadRequest {
            name: name.to_owned(),
        })
        .await
        .map(|r| r.into_inner())
}

async fn documents(app: &TestApp, parent: &str) -> Vec<pb::Document> {
    app.client(Role::Office)
        .list_documents(pb::ListDocumentsRequest {
            parent: parent.to_owned(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .documents
}

async fn download(app: &TestApp, name: &str) -> Vec<u8> {
    let mut stream = app
        .client(Role::Office)
        .download_document(pb::DownloadDocumentRequest {
            name: name.to_owned(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut content = Vec::new();
    while let Some(message) = stream.message().await.unwrap() {
        if let Some(pb::download_document_response::Part::Chunk(bytes)) = message.part {
            content.extend(bytes);
        }
    }
    content
}

#[tokio::test]
async fn an_upload_in_chunks_resumed_after_a_break_becomes_the_document() {
    let app = spawn_app().await;
    let project = draft(&app).await;
    let applicant = app.client(Role::Applicant);
    let content: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();

    let upload = start(&applicant, &project.name).await.unwrap();
    assert!(
        upload
            .name
            .starts_with(&format!("{}/uploads/", project.name))
    );
    assert_eq!(upload.received_bytes, 0);
    assert_eq!(upload.max_bytes, app.max_document_bytes as i64);

    let first = append(&applicant, &upload.name, 0, &content[..100_000])
        .await
        .unwrap();
    assert_eq!(first.received_bytes, 100_000);
    // The first chunk's reply was "lost": sending it again changes nothing.
    let resent = append(&applicant, &upload.name, 0, &content[..100_000])
        .await
        .unwrap();
    assert_eq!(resent.received_bytes, 100_000);
    // A chunk at the wrong offset is refused with where to continue.
    let skipped = assert_code(
        append(&applicant, &upload.name, 200_000, &content[200_000..]).await,
        Code::FailedPrecondition,
    );
    assert_eq!(error_reason(&skipped), "UPLOAD_OFFSET_MISMATCH");
    let info = tonic_types::StatusExt::get_error_details(&skipped)
        .error_info()
        .cloned()
        .unwrap();
    assert_eq!(info.metadata["received_bytes"], "100000");

    // After a break, the client asks where it was and goes on from there.
    let resumed_at = get_upload(&applicant, &upload.name)
        .await
        .unwrap()
        .received_bytes as usize;
    append(&applicant, &upload.name, resumed_at, &content[resumed_at..])
        .await
        .unwrap();
    // Nothing is a document until finished.
    assert!(documents(&app, &project.name).await.is_empty());

    let document = finish(&applicant, &upload.name, &content).await.unwrap();
    assert_eq!(document.size_bytes, content.len() as i64);
    assert_eq!(document.sha256, hex::encode(Sha256::digest(&content)));
    assert_eq!(
        document.kind,
        pb::DocumentKind::FeasibilityStudyReport as i32
    );
    assert_eq!(documents(&app, &project.name).await, vec![document.clone()]);
    assert_eq!(download(&app, &document.name).await, content);
    // Finishing again (its reply was lost) answers the same document.
    assert_eq!(
        finish(&applicant, &upload.name, &content).await.unwrap(),
        document
    );
    let finished = get_upload(&applicant, &upload.name).await.unwrap();
    assert_eq!(finished.document, document.name);
    assert_code(
        append(&applicant, &upload.name, content.len(), b"more").await,
        Code::FailedPrecondition,
    );
    // One file: the document's; the upload's bytes became it.
    assert_eq!(app.service.blobs().count_files().await.unwrap(), 1);
    // The upload left the same audit event a streamed upload leaves.
    let events = app
        .client(Role::Office)
        .list_project_events(pb::ListProjectEventsRequest {
            parent: project.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(events.last().unwrap().action, "UploadDocument");
}

#[tokio::test]
async fn a_wrong_hash_discards_the_upload_and_makes_no_document() {
    let app = spawn_app().await;
    let project = draft(&app).await;
    let applicant = app.client(Role::Applicant);
    let upload = start(&applicant, &project.name).await.unwrap();
    append(&applicant, &upload.name, 0, b"%PDF corrupted in transit")
        .await
        .unwrap();
    let refused = assert_code(
        finish(&applicant, &upload.name, b"%PDF as the client meant it").await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&refused), vec!["sha256"]);
    assert!(documents(&app, &project.name).await.is_empty());
    assert_eq!(app.service.blobs().count_files().await.unwrap(), 0);
    assert_code(get_upload(&applicant, &upload.name).await, Code::NotFound);
}

#[tokio::test]
async fn the_size_limit_holds_as_bytes_arrive() {
    let app = spawn_app().await;
    let project = draft(&app).await;
    let applicant = app.client(Role::Applicant);
    let upload = start(&applicant, &project.name).await.unwrap();
    let limit = app.max_document_bytes as usize;
    let chunk = vec![7u8; 1024 * 1024];
    let mut offset = 0;
    while offset + chunk.len() <= limit {
        append(&applicant, &upload.name, offset, &chunk)
            .await
            .unwrap();
        offset += chunk.len();
    }
    let over = assert_code(
        append(&applicant, &upload.name, offset, &chunk).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&over), vec!["data"]);
    let too_big_chunk = vec![0u8; 1024 * 1024 + 1];
    assert_code(
        append(&applicant, &upload.name, offset, &too_big_chunk).await,
        Code::InvalidArgument,
    );
}

#[tokio::test]
async fn only_the_uploader_sees_its_upload_and_cancelling_removes_its_bytes() {
    let app = spawn_app().await;
    let project = draft(&app).await;
    let applicant = app.client(Role::Applicant);
    let upload = start(&applicant, &project.name).await.unwrap();
    append(&applicant, &upload.name, 0, b"%PDF half")
        .await
        .unwrap();
    // Office may upload too, but not into the applicant's upload.
    assert_code(
        append(&app.client(Role::Office), &upload.name, 9, b" more").await,
        Code::NotFound,
    );
    assert_code(
        start(&app.stranger(), &project.name).await,
        Code::PermissionDenied,
    );
    for role in [
        Role::Supervisor,
        Role::Expert,
        Role::RegistryAdmin,
        Role::Inspector,
    ] {
        assert_code(
            start(&app.client(role), &project.name).await,
            Code::PermissionDenied,
        );
    }
    applicant
        .clone()
        .cancel_upload(pb::CancelUploadRequest {
            name: upload.name.clone(),
        })
        .await
        .unwrap();
    assert_code(
        append(&applicant, &upload.name, 9, b" more").await,
        Code::NotFound,
    );
    assert_eq!(app.service.blobs().count_files().await.unwrap(), 0);
}

#[tokio::test]
async fn an_abandoned_upload_expires_with_its_bytes() {
    let app = spawn_app().await;
    let project = draft(&app).await;
    let applicant = app.client(Role::Applicant);
    let upload = start(&applicant, &project.name).await.unwrap();
    append(&applicant, &upload.name, 0, b"%PDF abandoned")
        .await
        .unwrap();
    assert_eq!(app.service.blobs().count_files().await.unwrap(), 1);
    assert_eq!(app.service.expire_uploads().await.unwrap(), 0, "not yet");
    // A day passes without a chunk.
    sqlx::query("UPDATE uploads SET expire_time = '2000-01-01T00:00:00.000000Z'")
        .execute(&app.service.db().pool)
        .await
        .unwrap();
    assert_code(
        append(&applicant, &upload.name, 14, b" more").await,
        Code::NotFound,
    );
    assert_eq!(app.service.expire_uploads().await.unwrap(), 1);
    assert_eq!(app.service.blobs().count_files().await.unwrap(), 0);
}

#[tokio::test]
async fn a_started_upload_survives_a_restart() {
    let mut app = spawn_app().await;
    let project = draft(&app).await;
    let upload = start(&app.client(Role::Applicant), &project.name)
        .await
        .unwrap();
    append(
        &app.client(Role::Applicant),
        &upload.name,
        0,
        b"%PDF before",
    )
    .await
    .unwrap();
    app.restart().await;
    let applicant = app.client(Role::Applicant);
    append(&applicant, &upload.name, 11, b" and after")
        .await
        .unwrap();
    let document = finish(&applicant, &upload.name, b"%PDF before and after")
        .await
        .unwrap();
    assert_eq!(
        download(&app, &document.name).await,
        b"%PDF before and after"
    );
}

#[tokio::test]
async fn bad_upload_requests_name_their_field() {
    let app = spawn_app().await;
    let project = draft(&app).await;
    let applicant = app.client(Role::Applicant);
    let mut bad = metadata(&project.name);
    bad.file_name = "../etc/passwd".into();
    let status = assert_code(
        applicant
            .clone()
            .start_upload(pb::StartUploadRequest {
                metadata: Some(bad),
            })
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), vec!["metadata.file_name"]);
    let upload = start(&applicant, &project.name).await.unwrap();
    for (name, offset, data, field) in [
        (
            "projects/2026-0001/uploads/../../x",
            0,
            b"x".to_vec(),
            "name",
        ),
        (upload.name.as_str(), -1, b"x".to_vec(), "offset"),
        (upload.name.as_str(), 0, Vec::new(), "data"),
    ] {
        let status = assert_code(
            applicant
                .clone()
                .append_upload(pb::AppendUploadRequest {
                    name: name.to_owned(),
                    offset,
                    data,
                })
                .await,
            Code::InvalidArgument,
        );
        assert_eq!(violated_fields(&status), vec![field]);
    }
    let status = assert_code(
        applicant
            .clone()
            .finish_upload(pb::FinishUploadRequest {
                name: upload.name.clone(),
                sha256: "abc".into(),
            })
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), vec!["sha256"]);
}

#[tokio::test]
async fn a_refused_finish_keeps_the_uploads_bytes_and_an_empty_upload_is_not_finished() {
    let app = spawn_app().await;
    let project = draft(&app).await;
    let applicant = app.client(Role::Applicant);
    let empty = start(&applicant, &project.name).await.unwrap();
    let status = assert_code(
        finish(&applicant, &empty.name, b"").await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["name"]);

    let upload = start(&applicant, &project.name).await.unwrap();
    append(&applicant, &upload.name, 0, b"%PDF kept")
        .await
        .unwrap();
    applicant
        .clone()
        .withdraw_project(pb::WithdrawProjectRequest {
            name: project.name.clone(),
            etag: project.etag.clone(),
            reason: "no longer needed".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // The project takes no more documents: the finish is refused, and nothing is lost.
    assert_code(
        finish(&applicant, &upload.name, b"%PDF kept").await,
        Code::FailedPrecondition,
    );
    let kept = get_upload(&applicant, &upload.name).await.unwrap();
    assert_eq!((kept.received_bytes, kept.document.as_str()), (9, ""));
    assert_eq!(
        app.service.blobs().count_files().await.unwrap(),
        2,
        "both uploads' files"
    );
}

#[tokio::test]
async fn a_finished_upload_answers_for_a_day_and_its_expiry_leaves_the_document() {
    let app = spawn_app().await;
    let project = draft(&app).await;
    let applicant = app.client(Role::Applicant);
    let upload = start(&applicant, &project.name).await.unwrap();
    append(&applicant, &upload.name, 0, b"%PDF done")
        .await
        .unwrap();
    let document = finish(&applicant, &upload.name, b"%PDF done")
        .await
        .unwrap();
    let finished = get_upload(&applicant, &upload.name).await.unwrap();
    let day = 24 * 3600;
    let left = finished.expire_time.unwrap().seconds - finished.create_time.unwrap().seconds;
    assert!((day - 60..=day + 60).contains(&left), "{left}");
    assert_eq!(app.service.expire_uploads().await.unwrap(), 0);
    sqlx::query("UPDATE uploads SET expire_time = '2000-01-01T00:00:00.000000Z'")
        .execute(&app.service.db().pool)
        .await
        .unwrap();
    assert_eq!(app.service.expire_uploads().await.unwrap(), 1);
    assert_eq!(download(&app, &document.name).await, b"%PDF done");
    assert_eq!(app.service.blobs().count_files().await.unwrap(), 1);
}
