use govit_platform::Role;
use govit_proto::projects::v1::{self as pb};
use tonic::Code;

use crate::helpers::*;

#[tokio::test]
async fn organisations_are_created_read_and_updated_with_their_etag() {
    let app = spawn_app().await;
    let office = app.client(Role::Office);
    let code = credit_code(40);
    let org = create_org(&office, &code, pb::OrganizationKind::Consultancy).await;
    assert_eq!(org.name, org_name(&code));
    assert_eq!(org.kind, pb::OrganizationKind::Consultancy as i32);

    let again = office
        .clone()
        .create_organization(pb::CreateOrganizationRequest {
            request_id: String::new(),
            organization: Some(org.clone()),
        })
        .await;
    assert_code(again, Code::AlreadyExists);

    let mut renamed = org.clone();
    renamed.display_name = "Tianshan Consulting".into();
    let updated = office
        .clone()
        .update_organization(pb::UpdateOrganizationRequest {
            organization: Some(renamed.clone()),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.display_name, "Tianshan Consulting");
    assert_ne!(updated.etag, org.etag);
    let stale = office
        .clone()
        .update_organization(pb::UpdateOrganizationRequest {
            organization: Some(renamed),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into()],
            }),
        })
        .await;
    assert_code(stale, Code::Aborted);
    let read = office
        .clone()
        .get_organization(pb::GetOrganizationRequest {
            name: org.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read, updated);
}

#[tokio::test]
async fn applicants_see_and_register_only_their_own_organisation() {
    let app = spawn_app().await;
    let office = app.client(Role::Office);
    create_org(&office, &credit_code(41), pb::OrganizationKind::Contractor).await;
    let applicant = app.client(Role::Applicant);
    let listed = applicant
        .clone()
        .list_organizations(pb::ListOrganizationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    let listed_codes: Vec<&str> = listed
        .organizations
        .iter()
        .map(|o| o.credit_code.as_str())
        .collect();
    assert_eq!(listed_codes, [app.applicant_code.as_str()]);
    let all = office
        .clone()
        .list_organizations(pb::ListOrganizationsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.organizations.len(), 2);
    assert_code(
        applicant
            .clone()
            .get_organization(pb::GetOrganizationRequest {
                name: org_name(&credit_code(41)),
            })
            .await,
        Code::PermissionDenied,
    );
    let other = pb::Organization {
        credit_code: credit_code(42),
        display_name: "Not mine".into(),
        kind: pb::OrganizationKind::ApplyingUnit as i32,
        ..Default::default()
    };
    assert_code(
        applicant
            .clone()
            .create_organization(pb::CreateOrganizationRequest {
                request_id: String::new(),
                organization: Some(other),
            })
            .await,
        Code::PermissionDenied,
    );
    assert_code(
        app.client(Role::Expert)
            .list_organizations(pb::ListOrganizationsRequest::default())
            .await,
        Code::PermissionDenied,
    );
}
