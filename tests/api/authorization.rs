//! Who may do what, role by role.

use govit_platform::Role;
use govit_proto::projects::v1::{self as pb};
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn a_call_without_a_valid_token_is_unauthenticated() {
    let app = spawn_app().await;
    let req = || pb::ListProjectsRequest::default();
    let status = app
        .client_with_token(None)
        .list_projects(req())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let forged = govit_platform::auth::mint_hs256(
        b"another-key-another-key-another-key",
        "mallory",
        Role::Office,
        None,
        None,
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    let status = app
        .client_with_token(Some(forged))
        .list_projects(req())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = app
        .client_with_token(Some("not-a-jwt".into()))
        .list_projects(req())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn reading_a_project_role_by_role() {
    let app = spawn_app().await;
    let p = draft(&app).await;
    let get = |client: Client| {
        let name = p.name.clone();
        async move {
            client
                .clone()
                .get_project(pb::GetProjectRequest { name })
                .await
        }
    };
    for role in [
        Role::Applicant,
        Role::Office,
        Role::Supervisor,
        Role::Inspector,
        Role::Service,
    ] {
        let project = get(app.client(role))
            .await
            .unwrap_or_else(|s| panic!("{role}: {s:?}"));
        assert_eq!(project.into_inner().name, p.name, "{role}");
    }
    for role in [Role::RegistryAdmin, Role::Expert] {
        assert_eq!(
            get(app.client(role)).await.unwrap_err().code(),
            Code::PermissionDenied,
            "{role}"
        );
    }
    assert_eq!(
        get(app.stranger()).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    // A stranger cannot tell a missing project from another unit's.
    let missing = app
        .stranger()
        .get_project(pb::GetProjectRequest {
            name: "projects/2020-9999".into(),
        })
        .await;
    assert_eq!(missing.unwrap_err().code(), Code::PermissionDenied);
    let missing = app
        .client(Role::Office)
        .get_project(pb::GetProjectRequest {
            name: "projects/2020-9999".into(),
        })
        .await;
    assert_eq!(missing.unwrap_err().code(), Code::NotFound);
}

#[tokio::test]
async fn creating_a_project_role_by_role() {
    let app = spawn_app().await;
    let create = |client: Client, code: String| async move {
        client
            .clone()
            .create_project(pb::CreateProjectRequest {
                request_id: String::new(),
                project: Some(new_project(&code)),
            })
            .await
    };
    assert!(
        create(app.client(Role::Applicant), app.applicant_code.clone())
            .await
            .is_ok()
    );
    assert!(
        create(app.client(Role::Office), app.applicant_code.clone())
            .await
            .is_ok()
    );
    for role in [
        Role::Supervisor,
        Role::Inspector,
        Role::RegistryAdmin,
        Role::Expert,
        Role::Service,
    ] {
        let status = create(app.client(role), app.applicant_code.clone())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{role}");
    }
    let status = create(app.stranger(), app.applicant_code.clone())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(app.project_count().await, 2);
}

#[tokio::test]
async fn transitions_role_by_role() {
    let app = spawn_app().await;
    let p = draft(&app).await;
    upload_application(&app, &p).await;
    let submit = |client: Client| {
        let (name, etag) = (p.name.clone(), p.etag.clone());
        async move {
            client
                .clone()
                .submit_project(pb::SubmitProjectRequest {
                    request_id: String::new(),
                    name,
                    etag,
                })
                .await
        }
    };
    for role in [
        Role::Office,
        Role::Supervisor,
        Role::Inspector,
        Role::RegistryAdmin,
        Role::Expert,
        Role::Service,
    ] {
        assert_eq!(
            submit(app.client(role)).await.unwrap_err().code(),
            Code::PermissionDenied,
            "{role} submits"
        );
    }
    assert_eq!(
        submit(app.stranger()).await.unwrap_err().code(),
        Code::PermissionDenied
    );
    let p = submit(app.client(Role::Applicant))
        .await
        .unwrap()
        .into_inner();

    let accept = |client: Client| {
        let (name, etag) = (p.name.clone(), p.etag.clone());
        async move {
            client
                .clone()
                .accept_for_review(pb::AcceptForReviewRequest {
                    request_id: String::new(),
                    name,
                    etag,
                    panel: panel(),
                })
                .await
        }
    };
    for role in [
        Role::Applicant,
        Role::Supervisor,
        Role::Inspector,
        Role::RegistryAdmin,
        Role::Expert,
        Role::Service,
    ] {
        assert_eq!(
            accept(app.client(role)).await.unwrap_err().code(),
            Code::PermissionDenied,
            "{role} accepts"
        );
    }
    let p = accept(app.client(Role::Office)).await.unwrap().into_inner();

    let suspend = |client: Client| {
        let (name, etag) = (p.name.clone(), p.etag.clone());
        async move {
            client
                .clone()
                .suspend_project(pb::SuspendProjectRequest {
                    request_id: String::new(),
                    name,
                    etag,
                    reason: "audit".into(),
                })
                .await
        }
    };
    for role in [
        Role::Applicant,
        Role::Inspector,
        Role::RegistryAdmin,
        Role::Expert,
        Role::Service,
    ] {
        assert_eq!(
            suspend(app.client(role)).await.unwrap_err().code(),
            Code::PermissionDenied,
            "{role} suspends"
        );
    }
    assert!(suspend(app.client(Role::Supervisor)).await.is_ok());
}

#[tokio::test]
async fn review_outcomes_come_from_the_service_only() {
    let app = spawn_app().await;
    let p = under_review(&app).await;
    let record = |client: Client, id: &str| {
        let req = pb::RecordReviewOutcomeRequest {
            name: p.name.clone(),
            etag: String::new(),
            review: format!("reviews/{id}"),
            stage: pb::ReviewStage::PreliminaryReview as i32,
            decision: pb::ReviewDecision::Approved as i32,
            summary: String::new(),
        };
        async move { client.clone().record_review_outcome(req).await }
    };
    // Office decides over a panel only by an override, a separate act with its own record.
    for role in [
        Role::Applicant,
        Role::Office,
        Role::Supervisor,
        Role::Inspector,
        Role::RegistryAdmin,
        Role::Expert,
    ] {
        assert_eq!(
            record(app.client(role), "r-1").await.unwrap_err().code(),
            Code::PermissionDenied,
            "{role}"
        );
    }
    assert!(record(app.client(Role::Service), "r-1").await.is_ok());
}

#[tokio::test]
async fn inspectors_read_everything_and_change_nothing() {
    let app = spawn_app().await;
    let p = draft(&app).await;
    let inspector = app.client(Role::Inspector);
    assert!(
        inspector
            .clone()
            .list_projects(pb::ListProjectsRequest::default())
            .await
            .is_ok()
    );
    assert!(
        inspector
            .clone()
            .list_project_events(pb::ListProjectEventsRequest {
                parent: p.name.clone(),
                ..Default::default()
            })
            .await
            .is_ok()
    );
    let status = upload(&inspector, &p.name, pb::DocumentKind::Other, 0, b"x", "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let mut changed = p.clone();
    changed.display_name = "changed by inspector".into();
    let status = inspector
        .clone()
        .update_project(pb::UpdateProjectRequest {
            project: Some(changed),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into()],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(get(&app, &p.name).await.display_name, p.display_name);
}
