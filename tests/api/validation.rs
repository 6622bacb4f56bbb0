use govit_platform::Role;
use govit_proto::projects::v1::{self as pb};
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn a_bad_project_gets_every_field_named_and_nothing_is_written() {
    let app = spawn_app().await;
    let before = (app.project_count().await, app.event_count().await);
    let mut bad = new_project(&app.applicant_code);
    bad.display_name = "   ".into();
    bad.category = "电子政务".into();
    bad.planned_start_date = date(2027, 2, 30);
    bad.estimated_investment_fen = -5;
    bad.funding_source = 42;
    bad.contacts = vec![pb::Contact {
        name: "Li".into(),
        phone: "call me".into(),
        ..Default::default()
    }];
    let status = app
        .client(Role::Applicant)
        .create_project(pb::CreateProjectRequest {
            request_id: String::new(),
            project: Some(bad),
        })
        .await
        .unwrap_err();
    let fields = violated_fields(&status);
    for field in [
        "project.display_name",
        "project.category",
        "project.planned_start_date",
        "project.estimated_investment_fen",
        "project.funding_source",
        "project.contacts[0].phone",
    ] {
        assert!(
            fields.contains(&field.to_string()),
            "{field} missing from {fields:?}"
        );
    }
    assert_eq!((app.project_count().await, app.event_count().await), before);
}

#[tokio::test]
async fn absurd_and_overlong_values_are_refused() {
    let app = spawn_app().await;
    let mut p = new_project(&app.applicant_code);
    p.estimated_investment_fen = i64::MAX;
    p.display_name = "x".repeat(201);
    p.planned_end_date = date(2026, 1, 1);
    let status = app
        .client(Role::Applicant)
        .create_project(pb::CreateProjectRequest {
            request_id: String::new(),
            project: Some(p),
        })
        .await
        .unwrap_err();
    let fields = violated_fields(&status);
    assert!(fields.contains(&"project.estimated_investment_fen".to_string()));
    assert!(fields.contains(&"project.display_name".to_string()));
    assert!(
        fields.contains(&"project.planned_end_date".to_string()),
        "end before start: {fields:?}"
    );
    assert_eq!(app.project_count().await, 0);
}

#[tokio::test]
async fn a_bad_credit_code_is_refused_with_the_reason() {
    let app = spawn_app().await;
    let mut code = credit_code(7);
    let last = code.pop().unwrap();
    code.push(if last == '0' { '1' } else { '0' });
    let status = app
        .client(Role::Office)
        .create_organization(pb::CreateOrganizationRequest {
            request_id: String::new(),
            organization: Some(pb::Organization {
                credit_code: code,
                display_name: "Unit".into(),
                kind: pb::OrganizationKind::Contractor as i32,
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["organization.credit_code"]);
    assert!(
        status.message().contains("check character"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_project_of_an_unknown_organisation_is_not_found() {
    let app = spawn_app().await;
    let status = app
        .client(Role::Office)
        .create_project(pb::CreateProjectRequest {
            request_id: String::new(),
            project: Some(new_project(&credit_code(55))),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let info = tonic_types::StatusExt::get_details_resource_info(&status).unwrap();
    assert_eq!(info.resource_name, org_name(&credit_code(55)));
    assert_eq!(app.project_count().await, 0);
}

#[tokio::test]
async fn lifecycle_requests_are_checked_field_by_field() {
    let app = spawn_app().await;
    let p = submitted(&app).await;
    let office = app.client(Role::Office);
    let status = office
        .clone()
        .accept_for_review(pb::AcceptForReviewRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag.clone(),
            panel: vec![
                pb::PanelRequirement {
                    category: "software".into(),
                    count: 0,
                    alternates: 1,
                },
                pb::PanelRequirement {
                    category: "software".into(),
                    count: 2,
                    alternates: 99,
                },
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&status),
        ["panel[0].count", "panel[1].category", "panel[1].alternates"]
    );

    let status = office
        .clone()
        .return_project(pb::ReturnProjectRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: String::new(),
            reasons: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["reasons", "etag"]);

    let status = office
        .clone()
        .return_project(pb::ReturnProjectRequest {
            request_id: String::new(),
            name: "projects/nope".into(),
            etag: "1".into(),
            reasons: vec!["r".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["name"]);

    let status = app
        .client(Role::Service)
        .record_review_outcome(pb::RecordReviewOutcomeRequest {
            name: p.name.clone(),
            review: "reviews/r 1".into(),
            stage: pb::ReviewStage::Acceptance as i32,
            decision: 77,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["review", "decision"]);

    let status = app
        .client(Role::Service)
        .record_review_outcome(pb::RecordReviewOutcomeRequest {
            name: p.name.clone(),
            review: "reviews/r-1".into(),
            stage: pb::ReviewStage::Acceptance as i32,
            decision: pb::ReviewDecision::Approved as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["decision"]);
    assert_eq!(get(&app, &p.name).await.etag, p.etag);
}

#[tokio::test]
async fn a_stale_etag_is_aborted_and_changes_nothing() {
    let app = spawn_app().await;
    let p = draft(&app).await;
    let applicant = app.client(Role::Applicant);
    let mut first = p.clone();
    first.display_name = "Renamed once".into();
    let mask = prost_types::FieldMask {
        paths: vec!["display_name".into()],
    };
    let updated = applicant
        .clone()
        .update_project(pb::UpdateProjectRequest {
            project: Some(first),
            update_mask: Some(mask.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(updated.etag, p.etag);
    let mut stale = p.clone();
    stale.display_name = "Renamed from a stale read".into();
    assert_code(
        applicant
            .clone()
            .update_project(pb::UpdateProjectRequest {
                project: Some(stale),
                update_mask: Some(mask),
            })
            .await,
        Code::Aborted,
    );
    assert_code(
        applicant
            .clone()
            .withdraw_project(pb::WithdrawProjectRequest {
                request_id: String::new(),
                name: p.name.clone(),
                etag: p.etag.clone(),
                reason: String::new(),
            })
            .await,
        Code::Aborted,
    );
    let now = get(&app, &p.name).await;
    assert_eq!(now.display_name, "Renamed once");
    assert_eq!(now.etag, updated.etag);
}

#[tokio::test]
async fn an_update_outside_the_editable_states_is_refused() {
    let app = spawn_app().await;
    let p = submitted(&app).await;
    let mut changed = p.clone();
    changed.estimated_investment_fen = 1;
    let status = assert_code(
        app.client(Role::Applicant)
            .update_project(pb::UpdateProjectRequest {
                project: Some(changed),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["estimated_investment_fen".into()],
                }),
            })
            .await,
        Code::FailedPrecondition,
    );
    assert!(status.message().contains("SUBMITTED"));
    let status = app
        .client(Role::Applicant)
        .update_project(pb::UpdateProjectRequest {
            project: Some(p.clone()),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["state".into()],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["update_mask"]);
}
