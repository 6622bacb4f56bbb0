use govit_platform::Role;
use govit_proto::projects::v1::{self as pb};
use sha2::{Digest, Sha256};
use tonic::Code;

use crate::helpers::*;

async fn download(client: &Client, name: &str) -> Result<(pb::Document, Vec<u8>), tonic::Status> {
    let mut stream = client
        .clone()
        .download_document(pb::DownloadDocumentRequest { name: name.into() })
        .await?
        .into_inner();
    let mut metadata = None;
    let mut content = Vec::new();
    while let Some(message) = stream.message().await? {
        match message.part {
            Some(pb::download_document_response::Part::Metadata(m)) => metadata = Some(m),
            Some(pb::download_document_response::Part::Chunk(c)) => content.extend(c),
            None => panic!("empty message"),
        }
    }
    Ok((metadata.expect("metadata first"), content))
}

#[tokio::test]
async fn a_document_round_trips_with_its_hash() {
    let app = spawn_app().await;
    let p = draft(&app).await;
    let content: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let sha = hex::encode(Sha256::digest(&content));
    let applicant = app.client(Role::Applicant);
    let doc = upload(
        &applicant,
        &p.name,
        pb::DocumentKind::FeasibilityStudyReport,
        0,
        &content,
        &sha,
    )
    .await
    .unwrap();
    assert_eq!(doc.sha256, sha);
    assert_eq!(doc.size_bytes, content.len() as i64);
    assert_eq!(doc.uploaded_by, "test-applicant");
    assert!(doc.name.starts_with(&format!("{}/documents/", p.name)));

    let (meta, downloaded) = download(&app.client(Role::Supervisor), &doc.name)
        .await
        .unwrap();
    assert_eq!(meta, doc);
    assert_eq!(downloaded, content);

    let listed = applicant
        .clone()
        .list_documents(pb::ListDocumentsRequest {
            parent: p.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.documents, vec![doc.clone()]);
    assert_eq!(
        download(&app.stranger(), &doc.name)
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    assert_eq!(
        download(&app.client(Role::Expert), &doc.name)
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );

    let events = app
        .client(Role::Office)
        .list_project_events(pb::ListProjectEventsRequest {
            parent: p.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let upload_event = events
        .iter()
        .find(|e| e.action == "UploadDocument")
        .unwrap();
    assert_eq!(upload_event.document_sha256, vec![sha]);
}

#[tokio::test]
async fn an_oversized_upload_is_refused_and_nothing_is_stored() {
    let app = spawn_app_with(Options {
        max_document_bytes: 50_000,
        ..Options::default()
    })
    .await;
    let p = draft(&app).await;
    let events = app.event_count().await;
    let status = upload(
        &app.client(Role::Applicant),
        &p.name,
        pb::DocumentKind::Other,
        0,
        &vec![7u8; 50_001],
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&status), ["chunk"]);
    assert!(status.message().contains("50000"), "{}", status.message());
    assert_eq!(app.event_count().await, events);
    assert_eq!(app.service.blobs().count_files().await.unwrap(), 0);
    let listed = app
        .client(Role::Office)
        .list_documents(pb::ListDocumentsRequest {
            parent: p.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.documents.is_empty());
    // Exactly at the limit is fine.
    assert!(
        upload(
            &app.client(Role::Applicant),
            &p.name,
            pb::DocumentKind::Other,
            0,
            &vec![7u8; 50_000],
            ""
        )
        .await
        .is_ok()
    );
}

#[tokio::test]
async fn a_hash_mismatch_is_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let p = draft(&app).await;
    let wrong = "0".repeat(64);
    let status = upload(
        &app.client(Role::Applicant),
        &p.name,
        pb::DocumentKind::Other,
        0,
        b"content",
        &wrong,
    )
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&status), ["metadata.expected_sha256"]);
    assert!(
        status
            .message()
            .contains(&hex::encode(Sha256::digest(b"content")))
    );
    assert_eq!(app.service.blobs().count_files().await.unwrap(), 0);
}

#[tokio::test]
async fn bad_upload_metadata_is_named_field_by_field() {
    let app = spawn_app().await;
    let p = draft(&app).await;
    let applicant = app.client(Role::Applicant);
    let status = upload(
        &applicant,
        &p.name,
        pb::DocumentKind::Unspecified,
        3,
        b"x",
        "xyz",
    )
    .await
    .unwrap_err();
    assert_eq!(
        violated_fields(&status),
        ["metadata.kind", "metadata.expected_sha256"]
    );
    let status = upload(
        &applicant,
        &p.name,
        pb::DocumentKind::ApplicationForm,
        0,
        b"x",
        "",
    )
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&status), ["metadata.sealed_copies"]);
    let status = upload(&applicant, &p.name, pb::DocumentKind::Contract, 0, b"", "")
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["chunk"]);
    // Content without metadata first.
    let only_chunk = vec![pb::UploadDocumentRequest {
        part: Some(pb::upload_document_request::Part::Chunk(b"x".to_vec())),
    }];
    let status = applicant
        .clone()
        .upload_document(tokio_stream::iter(only_chunk))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["metadata"]);
    assert_eq!(app.service.blobs().count_files().await.unwrap(), 0);
}

async fn upload_named(
    app: &TestApp,
    parent: &str,
    file_name: &str,
    chunks: Vec<Vec<u8>>,
) -> Result<pb::Document, tonic::Status> {
    let mut messages = vec![pb::UploadDocumentRequest {
        part: Some(pb::upload_document_request::Part::Metadata(
            pb::DocumentUpload {
                request_id: String::new(),
                parent: parent.to_owned(),
                kind: pb::DocumentKind::FeasibilityStudyReport as i32,
                file_name: file_name.into(),
                media_type: "application/pdf".into(),
                sealed_copies: 0,
                expected_sha256: String::new(),
            },
        )),
    }];
    messages.extend(chunks.into_iter().map(|c| pb::UploadDocumentRequest {
        part: Some(pb::upload_document_request::Part::Chunk(c)),
    }));
    app.client(Role::Applicant)
        .upload_document(tokio_stream::iter(messages))
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn file_names_that_mislead_and_oversize_chunks_are_refused() {
    let app = spawn_app_with(Options {
        max_document_bytes: 8 * 1024 * 1024,
        ..Options::default()
    })
    .await;
    let p = draft(&app).await;
    for name in ["..", ".", ".hidden.pdf", "report\u{202e}fdp.exe", "a/b.pdf"] {
        let refused = upload_named(&app, &p.name, name, vec![b"%PDF".to_vec()])
            .await
            .unwrap_err();
        assert_eq!(
            violated_fields(&refused),
            ["metadata.file_name"],
            "{name:?}"
        );
    }
    let big = upload_named(
        &app,
        &p.name,
        "study.pdf",
        vec![vec![b'x'; 3 * 1024 * 1024]],
    )
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&big), ["chunk"]);
    let fine = upload_named(
        &app,
        &p.name,
        "study.pdf",
        vec![vec![b'x'; 1024 * 1024], vec![b'y'; 1024 * 1024]],
    )
    .await
    .unwrap();
    assert_eq!(fine.size_bytes, 2 * 1024 * 1024);
}
