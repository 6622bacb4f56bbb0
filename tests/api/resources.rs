//! Every List method pages, and every resource a List returns has a Get that answers the same
//! item, with the List's reading rules.

use govit_platform::Role;
use govit_proto::{
    common::v1 as cpb,
    experts::v1::{self as epb},
    projects::v1 as pb,
};
use tonic::Code;

use crate::helpers::*;

/// The item a List answers at `$index`, checked against the same item by its Get.
macro_rules! listed_and_got {
    ($client:expr, $list:ident($request:expr).$field:ident[$index:expr], $get:ident($get_request:ident)) => {{
        let item = $client
            .clone()
            .$list($request)
            .await
            .unwrap()
            .into_inner()
            .$field
            .remove($index);
        let got = $client
            .clone()
            .$get(pb::$get_request {
                name: item.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(got, item, "{} by its Get", item.name);
        item
    }};
}

async fn milestones(app: &TestApp, p: &pb::Project, count: u32) {
    for n in 1..=count {
        app.client(Role::Applicant)
            .create_milestone(pb::CreateMilestoneRequest {
                parent: p.name.clone(),
                milestone: Some(pb::Milestone {
                    display_name: format!("stage {n}"),
                    planned_start_date: date(2026, 3, n as i32),
                    planned_end_date: date(2026, 4, n as i32),
                    planned_cost_fen: 1_000,
                    ..Default::default()
                }),
                request_id: String::new(),
            })
            .await
            .unwrap();
    }
}

async fn milestone_page(
    client: &Client,
    parent: &str,
    page_size: i32,
    page_token: &str,
) -> Result<pb::ListMilestonesResponse, tonic::Status> {
    client
        .clone()
        .list_milestones(pb::ListMilestonesRequest {
            parent: parent.to_owned(),
            page_size,
            page_token: page_token.to_owned(),
        })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn a_projects_records_page_in_order_and_a_token_serves_only_its_own_list() {
    let app = spawn_app().await;
    let p = under_construction(&app).await;
    milestones(&app, &p, 5).await;
    let office = app.client(Role::Office);
    let all = milestone_page(&office, &p.name, 0, "").await.unwrap();
    assert_eq!(all.milestones.len(), 5);
    assert_eq!(all.next_page_token, "");

    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = milestone_page(&office, &p.name, 2, &token).await.unwrap();
        assert!(page.milestones.len() <= 2);
        seen.extend(page.milestones);
        pages += 1;
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen, all.milestones,
        "the pages are the whole list, in order, once"
    );

    // A token of this list refused on another project's list, and on another list.
    let first = milestone_page(&office, &p.name, 2, "").await.unwrap();
    let other = draft(&app).await;
    let refused = assert_code(
        milestone_page(&office, &other.name, 2, &first.next_page_token).await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&refused), ["page_token"]);
    let refused = assert_code(
        office
            .clone()
            .list_inspections(pb::ListInspectionsRequest {
                parent: p.name.clone(),
                page_size: 2,
                page_token: first.next_page_token.clone(),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&refused), ["page_token"]);
    let refused = assert_code(
        milestone_page(&office, &p.name, -1, "").await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&refused), ["page_size"]);
}

#[tokio::test]
async fn every_listed_supervision_record_is_got_by_its_name() {
    let app = spawn_app().await;
    let p = under_construction(&app).await;
    backdate_project(app.service.db(), &p.name).await;
    milestones(&app, &p, 2).await;
    let office = app.client(Role::Office);
    let applicant = app.client(Role::Applicant);
    applicant
        .clone()
        .record_disbursement(pb::RecordDisbursementRequest {
            parent: p.name.clone(),
            disbursement: Some(pb::Disbursement {
                amount_fen: 1_000,
                payment_date: date(2026, 3, 15),
                payee: "Tianshan Systems Co.".into(),
                purpose: "first instalment".into(),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    office
        .clone()
        .rate_project_risk(pb::RateProjectRiskRequest {
            name: p.name.clone(),
            rating: pb::RiskColor::Yellow as i32,
            comment: "slipping".into(),
            rating_date: date(2026, 4, 1),
            ..Default::default()
        })
        .await
        .unwrap();
    office
        .clone()
        .create_inspection(pb::CreateInspectionRequest {
            parent: p.name.clone(),
            inspection: Some(pb::Inspection {
                inspection_date: date(2026, 4, 2),
                scopes: vec![pb::InspectionScope::Quality as i32],
                participants: vec!["City Finance Bureau".into()],
                findings: vec![pb::Finding {
                    description: "no backup tests".into(),
                    severity: pb::FindingSeverity::High as i32,
                    rectification_required: "test restores monthly".into(),
                    deadline_working_days: 5,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    let parent = || p.name.clone();

    let listed = office
        .clone()
        .list_milestones(pb::ListMilestonesRequest {
            parent: parent(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .milestones;
    for m in &listed {
        let got = office
            .clone()
            .get_milestone(pb::GetMilestoneRequest {
                name: m.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&got, m);
    }
    listed_and_got!(
        office,
        list_disbursements(pb::ListDisbursementsRequest {
            parent: parent(),
            ..Default::default()
        })
        .disbursements[0],
        get_disbursement(GetDisbursementRequest)
    );
    let baseline = listed_and_got!(
        office,
        list_budget_baselines(pb::ListBudgetBaselinesRequest {
            parent: parent(),
            ..Default::default()
        })
        .baselines[0],
        get_budget_baseline(GetBudgetBaselineRequest)
    );
    assert_eq!(baseline.name, format!("{}/budgetBaselines/1", p.name));
    let rating = listed_and_got!(
        office,
        list_risk_ratings(pb::ListRiskRatingsRequest {
            name: parent(),
            ..Default::default()
        })
        .ratings[0],
        get_risk_rating(GetRiskRatingRequest)
    );
    assert!(rating.name.starts_with(&format!("{}/riskRatings/", p.name)));
    let inspection = listed_and_got!(
        office,
        list_inspections(pb::ListInspectionsRequest {
            parent: parent(),
            ..Default::default()
        })
        .inspections[0],
        get_inspection(GetInspectionRequest)
    );
    let finding = &inspection.findings[0];
    assert_eq!(
        &office
            .clone()
            .get_finding(pb::GetFindingRequest {
                name: finding.name.clone()
            })
            .await
            .unwrap()
            .into_inner(),
        finding
    );
    listed_and_got!(
        office,
        list_project_events(pb::ListProjectEventsRequest {
            parent: parent(),
            ..Default::default()
        })
        .events[1],
        get_project_event(GetProjectEventRequest)
    );
    listed_and_got!(
        office,
        list_documents(pb::ListDocumentsRequest {
            parent: parent(),
            ..Default::default()
        })
        .documents[0],
        get_document(GetDocumentRequest)
    );

    // What does not exist is not found; another organisation's applicant is refused as the
    // List refuses it; a malformed name names the field.
    let missing = format!("{}/milestones/no-such-milestone", p.name);
    let status = assert_code(
        office
            .clone()
            .get_milestone(pb::GetMilestoneRequest { name: missing })
            .await,
        Code::NotFound,
    );
    assert_eq!(error_reason(&status), "NOT_FOUND");
    assert_code(
        app.stranger()
            .get_milestone(pb::GetMilestoneRequest {
                name: listed[0].name.clone(),
            })
            .await,
        Code::PermissionDenied,
    );
    let status = assert_code(
        office
            .clone()
            .get_disbursement(pb::GetDisbursementRequest {
                name: "disbursements/1".into(),
            })
            .await,
        Code::InvalidArgument,
    );
    assert_eq!(violated_fields(&status), ["name"]);
}

#[tokio::test]
async fn a_read_event_and_an_outbox_message_are_got_by_their_names() {
    struct Probe;
    impl govit_platform::outbox::OutboxPayload for Probe {
        fn kind(&self) -> &'static str {
            "Probe"
        }
        fn subject(&self) -> String {
            "projects/2026-0001".into()
        }
        fn encode(&self) -> Vec<u8> {
            Vec::new()
        }
        fn decode(_: &str, _: &str, _: &[u8]) -> anyhow::Result<Self> {
            Ok(Probe)
        }
    }
    let app = spawn_app().await;
    let p = under_review(&app).await;
    // A message waiting for a peer, as one written by a transition would.
    let mut tx = app.service.db().begin_write().await.unwrap();
    govit_platform::outbox::enqueue(&mut tx, &Probe)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let office = app.client(Role::Office);
    let message = office
        .clone()
        .list_outbox_messages(cpb::ListOutboxMessagesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .messages
        .into_iter()
        .next()
        .expect("the message waits in the outbox");
    assert_eq!(message.kind, "Probe");
    assert_eq!(
        office
            .clone()
            .get_outbox_message(cpb::GetOutboxMessageRequest {
                name: message.name.clone()
            })
            .await
            .unwrap()
            .into_inner(),
        message
    );
    assert_code(
        app.client(Role::Applicant)
            .get_outbox_message(cpb::GetOutboxMessageRequest {
                name: message.name.clone(),
            })
            .await,
        Code::PermissionDenied,
    );

    // Downloading a document is a recorded read; the inspector gets it by name.
    let document = office
        .clone()
        .list_documents(pb::ListDocumentsRequest {
            parent: p.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .documents
        .remove(0);
    let mut stream = office
        .clone()
        .download_document(pb::DownloadDocumentRequest {
            name: document.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    while stream.message().await.unwrap().is_some() {}
    let inspector = app.client(Role::Inspector);
    let read = inspector
        .clone()
        .list_read_events(cpb::ListReadEventsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .events
        .remove(0);
    assert_eq!(
        inspector
            .clone()
            .get_read_event(cpb::GetReadEventRequest {
                name: read.name.clone()
            })
            .await
            .unwrap()
            .into_inner(),
        read
    );
    assert_code(
        inspector
            .clone()
            .get_read_event(cpb::GetReadEventRequest {
                name: "readEvents/nothing".into(),
            })
            .await,
        Code::NotFound,
    );
}

#[tokio::test]
async fn the_transparency_log_pages_by_token_and_each_entry_is_got_by_index() {
    let registry = spawn_registry(Default::default()).await;
    registry.category("e-government").await;
    for n in 1..=4 {
        registry
            .expert(expert(&id_number(n), &["e-government"], n))
            .await;
    }
    let size = registry.log_size().await as usize;
    assert!(size >= 5);
    let inspector = registry.client(Role::Inspector);
    let mut entries = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = inspector
            .clone()
            .list_log_entries(epb::ListLogEntriesRequest {
                page_size: 2,
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.entries.len() <= 2);
        entries.extend(page.entries);
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let indexes: Vec<u64> = entries.iter().map(|e| e.index).collect();
    assert_eq!(indexes, (0..size as u64).collect::<Vec<_>>());
    for entry in &entries {
        let got = inspector
            .clone()
            .get_log_entry(epb::GetLogEntryRequest { index: entry.index })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&got, entry);
    }
    assert_code(
        inspector
            .clone()
            .get_log_entry(epb::GetLogEntryRequest { index: size as u64 })
            .await,
        Code::NotFound,
    );
    // The older start/limit still read the same entries.
    let old = inspector
        .clone()
        .list_log_entries(epb::ListLogEntriesRequest {
            start: 1,
            limit: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert_eq!(old, entries[1..3]);
}

#[tokio::test]
async fn project_codes_count_on_past_four_digits_with_and_without_a_request_id() {
    let app = spawn_app().await;
    let mut applicant = app.client(Role::Applicant);
    let first = draft(&app).await;
    let year = first
        .name
        .trim_start_matches("projects/")
        .split('-')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(first.name, format!("projects/{year}-0001"));
    sqlx::query("UPDATE project_code_counters SET last_seq = 9998")
        .execute(&app.service.db().pool)
        .await
        .unwrap();
    // On PostgreSQL a create with a request id runs in a transaction that claims the id, and
    // one without is one statement on its own: both spell the code alike, past four digits.
    let claimed = applicant
        .clone()
        .create_project(pb::CreateProjectRequest {
            request_id: "codes-past-four-digits".into(),
            project: Some(new_project(&app.applicant_code)),
        })
        .await
        .unwrap()
        .into_inner();
    let plain = draft(&app).await;
    assert_eq!(claimed.name, format!("projects/{year}-9999"));
    assert_eq!(plain.name, format!("projects/{year}-10000"));

    for created in [&claimed, &plain] {
        let got = applicant
            .clone()
            .get_project(pb::GetProjectRequest {
                name: created.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&got, created);
        let events = app
            .client(Role::Inspector)
            .list_project_events(pb::ListProjectEventsRequest {
                parent: created.name.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .events;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].name, format!("{}/events/1", created.name));
        assert_eq!(events[0].action, "CreateProject");
        assert_eq!(events[0].to_state, pb::ProjectState::Draft as i32);
    }
    let listed = applicant
        .list_projects(pb::ListProjectsRequest {
            order_by: "code desc".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .projects;
    let names: Vec<_> = listed.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, [&plain.name, &claimed.name, &first.name]);
}
