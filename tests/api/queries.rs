use govit_platform::Role;
use govit_proto::projects::v1::{self as pb, ProjectState as S};

use crate::helpers::*;

#[tokio::test]
async fn projects_are_listed_by_filter_in_pages() {
    let app = spawn_app().await;
    let office = app.client(Role::Office);
    let other = credit_code(60);
    create_org(&office, &other, pb::OrganizationKind::ApplyingUnit).await;
    let mut mine = Vec::new();
    for _ in 0..5 {
        mine.push(draft(&app).await);
    }
    submitted(&app).await;
    office
        .clone()
        .create_project(pb::CreateProjectRequest {
            request_id: String::new(),
            project: Some(new_project(&other)),
        })
        .await
        .unwrap();

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = office
            .clone()
            .list_projects(pb::ListProjectsRequest {
                page_size: 2,
                page_token: token.clone(),
                state: S::Draft as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.projects.len() <= 2);
        seen.extend(page.projects.into_iter().map(|p| p.code));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut expected: Vec<String> = mine.iter().map(|p| p.code.clone()).collect();
    expected.push(format!("{}-0007", chrono::Utc::now().format("%Y")));
    assert_eq!(seen, expected, "drafts in code order, across pages");

    let desc = office
        .clone()
        .list_projects(pb::ListProjectsRequest {
            order_by: "code desc".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        desc.projects[0].code,
        format!("{}-0007", chrono::Utc::now().format("%Y"))
    );

    let submitted_only = office
        .clone()
        .list_projects(pb::ListProjectsRequest {
            state: S::Submitted as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(submitted_only.projects.len(), 1);

    let theirs = office
        .clone()
        .list_projects(pb::ListProjectsRequest {
            organization: org_name(&other),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(theirs.projects.len(), 1);

    let as_applicant = app
        .client(Role::Applicant)
        .list_projects(pb::ListProjectsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        as_applicant.projects.len(),
        6,
        "the applicant sees only its own organisation's projects"
    );
    let year = chrono::Datelike::year(&chrono::Utc::now());
    let none = office
        .clone()
        .list_projects(pb::ListProjectsRequest {
            year: year - 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(none.projects.is_empty());
}

#[tokio::test]
async fn a_page_token_from_another_query_is_refused() {
    let app = spawn_app().await;
    for _ in 0..3 {
        draft(&app).await;
    }
    let office = app.client(Role::Office);
    let first = office
        .clone()
        .list_projects(pb::ListProjectsRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!first.next_page_token.is_empty());
    let status = office
        .clone()
        .list_projects(pb::ListProjectsRequest {
            page_size: 1,
            page_token: first.next_page_token,
            state: S::Submitted as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["page_token"]);
    let status = office
        .clone()
        .list_projects(pb::ListProjectsRequest {
            page_size: -1,
            year: 1066,
            state: 99,
            order_by: "budget".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["state", "year", "order_by"]);
}

/// A stored value no state names is a corrupt row: every read path (a project, a page, the
/// portfolio's totals, on SQLite's readers and through sqlx alike) answers an error naming no
/// value it read, never panics, and the server goes on serving.
#[tokio::test]
async fn a_corrupt_stored_state_is_an_error_on_every_read_path() {
    let app = spawn_app().await;
    let office = app.client(Role::Office);
    let kept = draft(&app).await;
    let corrupt = draft(&app).await;
    let code = corrupt.name.trim_start_matches("projects/").to_owned();
    sqlx::query("UPDATE projects SET state = 'NO_SUCH_STATE' WHERE code = $1")
        .bind(code.clone())
        .execute(&app.service.db().pool)
        .await
        .unwrap();

    let got = office
        .clone()
        .get_project(pb::GetProjectRequest {
            name: corrupt.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(got.code(), tonic::Code::Internal, "{got:?}");
    let listed = office
        .clone()
        .list_projects(pb::ListProjectsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(listed.code(), tonic::Code::Internal, "{listed:?}");
    let listed_basic = office
        .clone()
        .list_projects(pb::ListProjectsRequest {
            view: pb::ProjectView::Basic as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        listed_basic.code(),
        tonic::Code::Internal,
        "{listed_basic:?}"
    );
    let summary = office
        .clone()
        .get_portfolio_summary(pb::GetPortfolioSummaryRequest::default())
        .await
        .unwrap_err();
    assert_eq!(summary.code(), tonic::Code::Internal, "{summary:?}");
    for status in [&got, &listed, &listed_basic, &summary] {
        assert_eq!(error_reason(status), "INTERNAL", "{status:?}");
        assert!(
            !status.message().contains("NO_SUCH_STATE"),
            "a stored value stays out of the answer: {status:?}"
        );
    }

    let still = office
        .clone()
        .get_project(pb::GetProjectRequest {
            name: kept.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(still.name, kept.name);
    sqlx::query("UPDATE projects SET state = 'DRAFT' WHERE code = $1")
        .bind(code)
        .execute(&app.service.db().pool)
        .await
        .unwrap();
    let page = office
        .clone()
        .list_projects(pb::ListProjectsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.projects.len(), 2);

    // A funding source no value names would fall silently out of a bureau's remit.
    sqlx::query("UPDATE projects SET funding_source = 'NO_SUCH_SOURCE' WHERE code = $1")
        .bind(corrupt.name.trim_start_matches("projects/").to_owned())
        .execute(&app.service.db().pool)
        .await
        .unwrap();
    let summary = office
        .clone()
        .get_portfolio_summary(pb::GetPortfolioSummaryRequest::default())
        .await
        .unwrap_err();
    assert_eq!(summary.code(), tonic::Code::Internal, "{summary:?}");
    assert!(!summary.message().contains("NO_SUCH_SOURCE"), "{summary:?}");
}

/// A project as `PROJECT_VIEW_BASIC` answers it: the fields the view documents, the rest unset.
fn basic_part(full: &pb::Project) -> pb::Project {
    pb::Project {
        name: full.name.clone(),
        code: full.code.clone(),
        display_name: full.display_name.clone(),
        applicant: full.applicant.clone(),
        category: full.category.clone(),
        planned_start_date: full.planned_start_date,
        planned_end_date: full.planned_end_date,
        estimated_investment_fen: full.estimated_investment_fen,
        funding_source: full.funding_source,
        state: full.state,
        suspended_from: full.suspended_from,
        approved_budget_fen: full.approved_budget_fen,
        disbursed_fen: full.disbursed_fen,
        review: full.review.clone(),
        create_time: full.create_time,
        update_time: full.update_time,
        etag: full.etag.clone(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_basic_list_answers_the_listed_fields_of_the_same_projects_in_the_same_pages() {
    let app = spawn_app().await;
    let built = under_construction(&app).await;
    let reviewed = under_review(&app).await;
    let drafted = draft(&app).await;
    let office = app.client(Role::Office);
    let list = |view: pb::ProjectView, page_token: String| {
        let mut office = office.clone();
        async move {
            office
                .list_projects(pb::ListProjectsRequest {
                    page_size: 2,
                    page_token,
                    view: view as i32,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        }
    };

    let mut token = String::new();
    let mut seen = Vec::new();
    loop {
        let full = list(pb::ProjectView::Full, token.clone()).await;
        let unset = list(pb::ProjectView::Unspecified, token.clone()).await;
        let basic = list(pb::ProjectView::Basic, token.clone()).await;
        assert_eq!(unset, full, "an unset view answers in full");
        assert_eq!(basic.next_page_token, full.next_page_token);
        let expected: Vec<_> = full.projects.iter().map(basic_part).collect();
        assert_eq!(basic.projects, expected);
        seen.extend(basic.projects);
        token = full.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    let names: Vec<_> = seen.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, [&built.name, &reviewed.name, &drafted.name]);

    // What only a whole project carries stays out of a list page, contacts above all.
    let listed_built = &seen[0];
    assert!(!built.contacts.is_empty() && listed_built.contacts.is_empty());
    assert!(built.tender_result.is_some() && listed_built.tender_result.is_none());
    assert!(!built.description.is_empty() && listed_built.description.is_empty());
    assert_eq!(listed_built.approved_budget_fen, built.approved_budget_fen);
    assert!(listed_built.approved_budget_fen > 0);
    assert_eq!(
        seen[1].state,
        pb::ProjectState::UnderPreliminaryReview as i32
    );
    assert_eq!(seen[2].etag, drafted.etag);
}

#[tokio::test]
async fn a_basic_list_keeps_an_applicant_to_their_own_projects_and_refuses_an_unknown_view() {
    let app = spawn_app().await;
    let office = app.client(Role::Office);
    let other = credit_code(61);
    create_org(&office, &other, pb::OrganizationKind::ApplyingUnit).await;
    let mine = draft(&app).await;
    let theirs = office
        .clone()
        .create_project(pb::CreateProjectRequest {
            request_id: String::new(),
            project: Some(new_project(&other)),
        })
        .await
        .unwrap()
        .into_inner();

    let list = |mut client: Client, view: i32| async move {
        client
            .list_projects(pb::ListProjectsRequest {
                view,
                ..Default::default()
            })
            .await
            .map(|answer| answer.into_inner().projects)
    };
    let basic = pb::ProjectView::Basic as i32;
    let listed = list(app.client(Role::Applicant), basic).await.unwrap();
    assert_eq!(listed, [basic_part(&mine)]);
    let all = list(office.clone(), basic).await.unwrap();
    assert_eq!(all, [basic_part(&mine), basic_part(&theirs)]);

    let refused = list(office.clone(), 9).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    assert_eq!(error_reason(&refused), "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&refused), ["view"]);
}
