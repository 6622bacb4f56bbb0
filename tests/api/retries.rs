//! AIP-155 request ids: a create or record call resent after its reply was lost is answered
//! with the first result and changes nothing twice; the same id with another request is
//! refused; ids are the caller's own.

use govit_platform::Role;
use govit_proto::projects::v1::{self as pb, project_service_client::ProjectServiceClient};
use tonic::Code;

use crate::helpers::*;

fn request_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn applicant_through(app: &TestApp, proxy: &LossyProxy) -> Client {
    let value = format!(
        "Bearer {}",
        token(Role::Applicant, Some(&app.applicant_code), None)
    )
    .parse()
    .unwrap();
    ProjectServiceClient::with_interceptor(proxy.channel(), Bearer(Some(value)))
}

fn create(id: &str, app: &TestApp) -> pb::CreateProjectRequest {
    pb::CreateProjectRequest {
        project: Some(new_project(&app.applicant_code)),
        request_id: id.to_owned(),
    }
}

#[tokio::test]
async fn a_create_project_resent_after_its_reply_was_lost_creates_one_project() {
    let app = spawn_app().await;
    let proxy = LossyProxy::to(app.addr).await;
    let id = request_id();
    let (projects_before, events_before) = (app.project_count().await, app.event_count().await);

    let mut lossy = applicant_through(&app, &proxy);
    proxy.lose_replies();
    let call = tokio::spawn({
        let request = create(&id, &app);
        async move { lossy.create_project(request).await }
    });
    until_answer_kept(app.service.db(), "CreateProject").await;
    proxy.cut();
    let lost = call.await.unwrap();
    assert!(lost.is_err(), "the client must not have seen the reply");
    assert_eq!(app.project_count().await, projects_before + 1);

    // The client does not know whether it was applied, so it sends the same request again.
    let retried = app
        .client(Role::Applicant)
        .create_project(create(&id, &app))
        .await
        .expect("the retry is answered")
        .into_inner();
    let again = app
        .client(Role::Applicant)
        .create_project(create(&id, &app))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried, again);
    assert_eq!(app.project_count().await, projects_before + 1);
    assert_eq!(app.event_count().await, events_before + 1);
    assert_eq!(get(&app, &retried.name).await, retried);
}

#[tokio::test]
async fn a_request_id_sent_with_another_request_is_refused_and_writes_nothing() {
    let app = spawn_app().await;
    let id = request_id();
    let applicant = app.client(Role::Applicant);
    let mine = applicant
        .clone()
        .create_project(create(&id, &app))
        .await
        .unwrap()
        .into_inner();
    let mut changed = create(&id, &app);
    changed.project.as_mut().unwrap().display_name = "Another project".into();
    let refused = assert_code(
        applicant.clone().create_project(changed).await,
        Code::AlreadyExists,
    );
    assert_eq!(error_reason(&refused), "REQUEST_ID_REUSED");
    assert_eq!(app.project_count().await, 1);

    // The same id from another caller is that caller's own id: a new project.
    let office = app.client(Role::Office);
    let theirs = office
        .clone()
        .create_project(create(&id, &app))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(app.project_count().await, 2);
    assert_ne!(
        theirs.name, mine.name,
        "not answered with the applicant's project"
    );
}

#[tokio::test]
async fn a_malformed_request_id_is_refused_naming_the_field() {
    let app = spawn_app().await;
    let status = assert_code(
        app.client(Role::Applicant)
            .create_project(create("not an id!", &app))
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), vec!["request_id"]);
    assert_eq!(app.project_count().await, 0);
}

#[tokio::test]
async fn without_a_request_id_a_resend_is_a_new_request() {
    let app = spawn_app().await;
    let applicant = app.client(Role::Applicant);
    for _ in 0..2 {
        applicant
            .clone()
            .create_project(create("", &app))
            .await
            .unwrap();
    }
    assert_eq!(app.project_count().await, 2);
}

#[tokio::test]
async fn the_same_request_sent_twice_at_once_is_applied_once() {
    let app = spawn_app().await;
    let id = request_id();
    let calls: Vec<_> = (0..2)
        .map(|_| {
            let mut client = app.client(Role::Applicant);
            let request = create(&id, &app);
            tokio::spawn(async move { client.create_project(request).await })
        })
        .collect();
    let mut names = Vec::new();
    for call in calls {
        match call.await.unwrap() {
            Ok(project) => names.push(project.into_inner().name),
            // The loser may find the winner still answering: it is told to retry.
            Err(status) => {
                assert_eq!(status.code(), Code::Aborted, "{status:?}");
                assert_eq!(error_reason(&status), "REQUEST_IN_PROGRESS");
            }
        }
    }
    assert!(!names.is_empty());
    names.dedup();
    assert_eq!(names.len(), 1, "both answers name the one project");
    assert_eq!(app.project_count().await, 1);
}

fn disbursement_request(parent: &str, id: &str) -> pb::RecordDisbursementRequest {
    pb::RecordDisbursementRequest {
        parent: parent.to_owned(),
        disbursement: Some(pb::Disbursement {
            amount_fen: 2_000_000,
            payment_date: date(2026, 3, 15),
            payee: "Tianshan Systems Co.".into(),
            purpose: "first instalment".into(),
            ..Default::default()
        }),
        request_id: id.to_owned(),
    }
}

#[tokio::test]
async fn a_disbursement_resent_after_its_reply_was_lost_is_recorded_once() {
    let app = spawn_app().await;
    let project = under_construction(&app).await;
    let proxy = LossyProxy::to(app.addr).await;
    let id = request_id();
    let mut lossy = applicant_through(&app, &proxy);
    proxy.lose_replies();
    let call = tokio::spawn({
        let request = disbursement_request(&project.name, &id);
        async move { lossy.record_disbursement(request).await }
    });
    until_answer_kept(app.service.db(), "RecordDisbursement").await;
    proxy.cut();
    assert!(call.await.unwrap().is_err());

    let retried = app
        .client(Role::Applicant)
        .record_disbursement(disbursement_request(&project.name, &id))
        .await
        .unwrap()
        .into_inner();
    let listed = app
        .client(Role::Applicant)
        .list_disbursements(pb::ListDisbursementsRequest {
            parent: project.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.disbursements, vec![retried]);
    assert_eq!(listed.total_fen, 2_000_000);
}

#[tokio::test]
async fn a_streamed_upload_resent_with_its_request_id_makes_one_document() {
    let app = spawn_app().await;
    let project = draft(&app).await;
    let applicant = app.client(Role::Applicant);
    let id = request_id();
    let send = |content: &'static [u8]| {
        let mut client = applicant.clone();
        let parent = project.name.clone();
        let id = id.clone();
        async move {
            let messages = vec![
                pb::UploadDocumentRequest {
                    part: Some(pb::upload_document_request::Part::Metadata(
                        pb::DocumentUpload {
                            parent,
                            kind: pb::DocumentKind::FeasibilityStudyReport as i32,
                            file_name: "study.pdf".into(),
                            media_type: "application/pdf".into(),
                            request_id: id,
                            ..Default::default()
                        },
                    )),
                },
                pb::UploadDocumentRequest {
                    part: Some(pb::upload_document_request::Part::Chunk(content.to_vec())),
                },
            ];
            client.upload_document(tokio_stream::iter(messages)).await
        }
    };
    let first = send(b"%PDF study").await.unwrap().into_inner();
    let again = send(b"%PDF study").await.unwrap().into_inner();
    assert_eq!(first, again);
    // The same id with other content is another request.
    let other = assert_code(send(b"%PDF other study").await, Code::AlreadyExists);
    assert_eq!(error_reason(&other), "REQUEST_ID_REUSED");
    let documents = applicant
        .clone()
        .list_documents(pb::ListDocumentsRequest {
            parent: project.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .documents;
    assert_eq!(documents, vec![first]);
    // The copies of the resends were not kept.
    assert_eq!(app.service.blobs().count_files().await.unwrap(), 1);
}

#[tokio::test]
async fn a_lifecycle_step_resent_with_its_request_id_answers_the_project_again() {
    let app = spawn_app().await;
    let project = draft(&app).await;
    upload_application(&app, &project).await;
    let id = request_id();
    let submit = pb::SubmitProjectRequest {
        name: project.name.clone(),
        etag: project.etag.clone(),
        request_id: id,
    };
    let applicant = app.client(Role::Applicant);
    let first = applicant
        .clone()
        .submit_project(submit.clone())
        .await
        .unwrap()
        .into_inner();
    // Without the id the resend would be refused (the etag is stale); with it, it is answered.
    let again = applicant
        .clone()
        .submit_project(submit)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    assert_eq!(state(&first), pb::ProjectState::Submitted);
}

#[tokio::test]
async fn an_expert_created_with_a_request_id_is_answered_again_not_refused_as_existing() {
    let registry = spawn_registry(Default::default()).await;
    registry.category("e-government").await;
    let admin = registry.client(Role::RegistryAdmin);
    let request = govit_proto::experts::v1::CreateExpertRequest {
        expert: Some(expert(&id_number(7), &["e-government"], 3)),
        request_id: request_id(),
    };
    let first = admin.clone().create_expert(request.clone()).await.unwrap();
    let log_size = registry.log_size().await;
    let again = admin.clone().create_expert(request.clone()).await.unwrap();
    assert_eq!(first.into_inner(), again.into_inner());
    assert_eq!(registry.log_size().await, log_size, "nothing logged twice");
    // Without the id, the same expert again is what it always was: already there.
    let plain = govit_proto::experts::v1::CreateExpertRequest {
        request_id: String::new(),
        ..request
    };
    assert_code(
        admin.clone().create_expert(plain).await,
        Code::AlreadyExists,
    );
}

#[tokio::test]
async fn a_kept_answer_is_not_given_to_the_same_subject_under_another_role() {
    let registry = spawn_registry(Default::default()).await;
    registry.category("e-government").await;
    let as_role = |role: Role| {
        let token = govit_platform::auth::mint_hs256(
            KEY,
            "li.na",
            role,
            None,
            None,
            std::time::Duration::from_secs(600),
        )
        .unwrap();
        govit_proto::experts::v1::expert_registry_service_client::ExpertRegistryServiceClient::with_interceptor(
            registry.channel.clone(),
            Bearer(Some(format!("Bearer {token}").parse().unwrap())),
        )
    };
    let request = govit_proto::experts::v1::CreateExpertRequest {
        expert: Some(expert(&id_number(8), &["e-government"], 3)),
        request_id: request_id(),
    };
    as_role(Role::RegistryAdmin)
        .create_expert(request.clone())
        .await
        .unwrap();
    // The same person, now holding only the office role, resends it: refused, as any call.
    assert_code(
        as_role(Role::Office).create_expert(request).await,
        Code::PermissionDenied,
    );
}

#[tokio::test]
async fn a_streamed_upload_resent_after_its_reply_was_lost_makes_one_document() {
    let app = spawn_app().await;
    let project = draft(&app).await;
    let proxy = LossyProxy::to(app.addr).await;
    let id = request_id();
    let messages = || {
        vec![
            pb::UploadDocumentRequest {
                part: Some(pb::upload_document_request::Part::Metadata(
                    pb::DocumentUpload {
                        parent: project.name.clone(),
                        kind: pb::DocumentKind::FeasibilityStudyReport as i32,
                        file_name: "study.pdf".into(),
                        media_type: "application/pdf".into(),
                        request_id: id.clone(),
                        ..Default::default()
                    },
                )),
            },
            pb::UploadDocumentRequest {
                part: Some(pb::upload_document_request::Part::Chunk(
                    b"%PDF the study".to_vec(),
                )),
            },
        ]
    };
    let mut lossy = applicant_through(&app, &proxy);
    proxy.lose_replies();
    let first = messages();
    let call = tokio::spawn(async move { lossy.upload_document(tokio_stream::iter(first)).await });
    until_answer_kept(app.service.db(), "UploadDocument").await;
    proxy.cut();
    assert!(call.await.unwrap().is_err());

    let retried = app
        .client(Role::Applicant)
        .upload_document(tokio_stream::iter(messages()))
        .await
        .unwrap()
        .into_inner();
    let documents = app
        .client(Role::Applicant)
        .list_documents(pb::ListDocumentsRequest {
            parent: project.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .documents;
    assert_eq!(documents, vec![retried]);
    assert_eq!(app.service.blobs().count_files().await.unwrap(), 1);
}
