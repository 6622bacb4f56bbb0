//! Avoiding duplicate construction: similar projects found when one is submitted and on
//! demand, office's finding in the preliminary review, and the overlaps in the portfolio.

use govit_platform::Role;
use govit_proto::projects::v1::{self as pb, ProjectState as S};
use tonic::Code;

use crate::helpers::*;

/// A project of the unit `client` belongs to (`org`), with what it builds.
async fn project(
    client: &Client,
    org: &str,
    (name, description, construction): (&str, &str, &str),
) -> pb::Project {
    client
        .clone()
        .create_project(pb::CreateProjectRequest {
            request_id: String::new(),
            project: Some(pb::Project {
                display_name: name.into(),
                description: description.into(),
                construction_content: construction.into(),
                equipment_selection: "国产服务器10台".into(),
                ..new_project(org)
            }),
        })
        .await
        .unwrap()
        .into_inner()
}

/// Uploads the application's documents as `client` and submits.
async fn submit(client: &Client, p: &pb::Project) -> pb::Project {
    for (kind, sealed) in [
        (pb::DocumentKind::ApplicationForm, 3),
        (pb::DocumentKind::FeasibilityStudyReport, 0),
    ] {
        upload(client, &p.name, kind, sealed, b"%PDF", "")
            .await
            .unwrap();
    }
    let p = get(client, &p.name).await;
    client
        .clone()
        .submit_project(pb::SubmitProjectRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
        })
        .await
        .unwrap()
        .into_inner()
}

async fn get(client: &Client, name: &str) -> pb::Project {
    client
        .clone()
        .get_project(pb::GetProjectRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
}

const EXCHANGE: (&str, &str, &str) = (
    "城市政务数据共享交换平台",
    "建设全市统一的政务数据共享交换平台，打通各委办局业务系统，编制数据资源目录。",
    "数据资源目录系统、数据交换总线、共享门户、接口监控",
);
const EXCHANGE_AGAIN: (&str, &str, &str) = (
    "政务信息资源共享交换系统",
    "搭建政务信息资源共享交换系统，支持跨部门数据交换与共享，编制政务数据资源目录。",
    "政务数据资源目录、交换前置机、共享交换总线、共享服务门户",
);
const ARCHIVES: (&str, &str, &str) = (
    "数字档案馆建设",
    "对馆藏纸质档案进行数字化扫描，实现档案在线查询利用和长期保存。",
    "档案数字化加工、数字档案管理系统、长期保存库",
);

#[tokio::test]
async fn a_submitted_project_shows_office_the_projects_it_may_duplicate() {
    let app = spawn_app().await;
    let office = app.client(Role::Office);
    let own = app.client(Role::Applicant);
    let other_unit = credit_code(999);
    create_org(&office, &other_unit, pb::OrganizationKind::ApplyingUnit).await;
    let other = app.stranger();

    let exchange = project(&own, &app.applicant_code, EXCHANGE).await;
    let exchange = submit(&own, &exchange).await;
    let archives = project(&own, &app.applicant_code, ARCHIVES).await;
    submit(&own, &archives).await;
    // A draft builds nothing yet: it is never offered as a match.
    let draft = project(&own, &app.applicant_code, EXCHANGE_AGAIN).await;
    let again = project(&other, &other_unit, EXCHANGE_AGAIN).await;
    let again = submit(&other, &again).await;

    assert_eq!(again.state, S::Submitted as i32);
    // The match is another unit's project: office sees it, the submitting unit does not.
    assert!(again.similar_projects.is_empty(), "{again:?}");
    assert!(get(&other, &again.name).await.similar_projects.is_empty());
    let seen_by_office = get(&office, &again.name).await;
    let found = &seen_by_office.similar_projects;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].project, exchange.name);
    assert_eq!(found[0].applicant, org_name(&app.applicant_code));
    assert_eq!(found[0].state, S::Submitted as i32);
    assert!(
        found[0].similarity >= 0.33 && found[0].similarity <= 1.0,
        "{found:?}"
    );
    assert!(
        found[0].matched_terms.iter().any(|t| t == "共享"),
        "{found:?}"
    );

    // On demand, for office and the bureaus: the draft asks too, and finds both.
    for role in [Role::Office, Role::Supervisor, Role::Inspector] {
        let asked = app
            .client(role)
            .find_similar_projects(pb::FindSimilarProjectsRequest {
                name: draft.name.clone(),
                page_size: 0,
            })
            .await
            .unwrap()
            .into_inner()
            .projects;
        let names: Vec<&str> = asked.iter().map(|m| m.project.as_str()).collect();
        assert_eq!(names.len(), 2, "{role:?}: {asked:?}");
        assert!(names.contains(&exchange.name.as_str()));
        assert!(names.contains(&again.name.as_str()));
    }
    let asked = office
        .clone()
        .find_similar_projects(pb::FindSimilarProjectsRequest {
            name: exchange.name.clone(),
            page_size: 5,
        })
        .await
        .unwrap()
        .into_inner()
        .projects;
    assert_eq!(
        asked.iter().map(|m| m.project.as_str()).collect::<Vec<_>>(),
        [again.name.as_str()],
        "the draft is no candidate; the archive is not alike"
    );
    // Submitted, the draft shows its unit both matches through office's eyes, only its own
    // unit's through its own.
    let draft = submit(&own, &draft).await;
    let mine: Vec<&str> = draft
        .similar_projects
        .iter()
        .map(|m| m.project.as_str())
        .collect();
    assert_eq!(mine, [exchange.name.as_str()]);
    assert_eq!(get(&office, &draft.name).await.similar_projects.len(), 2);
    // Other units' projects are not the applicant's to browse.
    let refused = own
        .clone()
        .find_similar_projects(pb::FindSimilarProjectsRequest {
            name: exchange.name.clone(),
            page_size: 5,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    for (name, size, code) in [
        ("projects/2026-9999".to_owned(), 5, Code::NotFound),
        ("bureau/1".to_owned(), 5, Code::InvalidArgument),
        (exchange.name.clone(), -1, Code::InvalidArgument),
    ] {
        let refused = office
            .clone()
            .find_similar_projects(pb::FindSimilarProjectsRequest {
                name: name.clone(),
                page_size: size,
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), code, "{name} {size}");
    }
}

#[tokio::test]
async fn office_records_its_duplication_finding_and_the_portfolio_lists_overlaps() {
    let app = spawn_app().await;
    let office = app.client(Role::Office);
    let own = app.client(Role::Applicant);
    let other_unit = credit_code(999);
    create_org(&office, &other_unit, pb::OrganizationKind::ApplyingUnit).await;
    let other = app.stranger();
    let exchange = project(&own, &app.applicant_code, EXCHANGE).await;
    let exchange = submit(&own, &exchange).await;
    let again = project(&other, &other_unit, EXCHANGE_AGAIN).await;
    let again = submit(&other, &again).await;
    let draft = project(&own, &app.applicant_code, ARCHIVES).await;

    let finding = |verdict: pb::DuplicationVerdict, projects: Vec<String>, reasons: &str| {
        pb::DuplicationFinding {
            verdict: verdict as i32,
            overlapping_projects: projects,
            reasons: reasons.into(),
            ..Default::default()
        }
    };
    let record = |p: &pb::Project, f: pb::DuplicationFinding| pb::RecordDuplicationFindingRequest {
        request_id: String::new(),
        name: p.name.clone(),
        etag: p.etag.clone(),
        finding: Some(f),
    };
    use pb::DuplicationVerdict as V;
    for (f, field) in [
        (finding(V::Unspecified, vec![], ""), "finding.verdict"),
        (
            finding(V::Overlap, vec![], "same exchange bus"),
            "finding.overlapping_projects",
        ),
        (
            finding(V::Duplicate, vec![exchange.name.clone()], ""),
            "finding.reasons",
        ),
        (
            finding(V::None, vec![exchange.name.clone()], ""),
            "finding.overlapping_projects",
        ),
        (
            finding(V::Overlap, vec![again.name.clone()], "itself"),
            "finding.overlapping_projects[0]",
        ),
        (
            finding(V::Overlap, vec!["projects/x".into()], "bad name"),
            "finding.overlapping_projects[0]",
        ),
    ] {
        let refused = office
            .clone()
            .record_duplication_finding(record(&again, f))
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&refused), [field]);
    }
    let refused = office
        .clone()
        .record_duplication_finding(record(
            &again,
            finding(V::Overlap, vec!["projects/2026-9999".into()], "gone"),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    // Office only, and only while the application is before office or the panel.
    for role in [Role::Applicant, Role::Supervisor, Role::Inspector] {
        let refused = app
            .client(role)
            .record_duplication_finding(record(&again, finding(V::None, vec![], "")))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{role:?}");
    }
    let refused = office
        .clone()
        .record_duplication_finding(record(&draft, finding(V::None, vec![], "")))
        .await
        .unwrap_err();
    assert_eq!(error_reason(&refused), "STATE_CONFLICT");

    let p = office
        .clone()
        .record_duplication_finding(record(
            &again,
            finding(
                V::Overlap,
                vec![exchange.name.clone()],
                "the exchange bus exists: build the catalogue on it",
            ),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.state, S::Submitted as i32, "the state stays");
    let recorded = p.duplication_finding.clone().unwrap();
    assert_eq!(recorded.verdict, V::Overlap as i32);
    assert_eq!(recorded.overlapping_projects, vec![exchange.name.clone()]);
    assert!(recorded.across_units, "another unit's project");
    assert_eq!(recorded.recorded_by, "test-office");
    assert!(recorded.record_time.is_some());
    let trail = app
        .client(Role::Inspector)
        .list_project_events(pb::ListProjectEventsRequest {
            parent: p.name.clone(),
            page_size: 50,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let last = trail.last().unwrap();
    assert_eq!(last.action, "RecordDuplicationFinding");
    assert_eq!(last.changed_fields, ["duplication_finding"]);

    // Under preliminary review it may still be recorded, and replaced.
    let p = office
        .clone()
        .accept_for_review(pb::AcceptForReviewRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            panel: panel(),
        })
        .await
        .unwrap()
        .into_inner();
    let own_none = office
        .clone()
        .record_duplication_finding(record(&exchange, finding(V::None, vec![], "")))
        .await
        .unwrap()
        .into_inner();
    assert!(!own_none.duplication_finding.unwrap().across_units);

    let portfolio = office
        .clone()
        .get_portfolio_summary(pb::GetPortfolioSummaryRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(portfolio.overlaps.len(), 1, "{:?}", portfolio.overlaps);
    assert_eq!(portfolio.overlaps[0].project, p.name);
    assert_eq!(portfolio.overlaps[0].applicant, org_name(&other_unit));
    assert!(portfolio.overlaps[0].finding.as_ref().unwrap().across_units);
}
