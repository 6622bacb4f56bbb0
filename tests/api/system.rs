//! The three services as one system: the whole workflow, and an outage in the middle of it.

use std::time::Duration;

use govit_experts::DrawPolicy;
use govit_platform::Role;
use govit_proto::{
    experts::v1 as epb,
    projects::v1::{self as pb, ProjectState as S},
    scheduling::v1 as spb,
};

use crate::helpers::*;

/// Categories software and network; experts s01..s06 and n01..n04.
pub async fn seed_pool(system: &System) {
    let admin = system.registry_client(Role::RegistryAdmin);
    for code in ["software", "network"] {
        admin
            .clone()
            .create_category(epb::CreateCategoryRequest {
                request_id: String::new(),
                category: Some(epb::Category {
                    code: code.into(),
                    display_name: code.into(),
                    ..Default::default()
                }),
            })
            .await
            .unwrap();
    }
    for i in 1..=6 {
        admin
            .clone()
            .create_expert(epb::CreateExpertRequest {
                request_id: String::new(),
                expert: Some(expert(&format!("s{i:02}"), &["software"], 100 + i)),
            })
            .await
            .unwrap();
    }
    for i in 1..=4 {
        admin
            .clone()
            .create_expert(epb::CreateExpertRequest {
                request_id: String::new(),
                expert: Some(expert(&format!("n{i:02}"), &["network"], 200 + i)),
            })
            .await
            .unwrap();
    }
}

/// A submitted project accepted for preliminary review with the given panel.
pub async fn accepted_for_review(system: &System, panel: Vec<pb::PanelRequirement>) -> pb::Project {
    let p = submitted_project(system).await;
    system
        .projects_client(Role::Office)
        .accept_for_review(pb::AcceptForReviewRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            panel,
        })
        .await
        .unwrap()
        .into_inner()
}

/// Two software experts and an alternate.
pub fn software_panel() -> pb::PanelRequirement {
    pb::PanelRequirement {
        category: "software".into(),
        count: 2,
        alternates: 1,
    }
}

/// Office sets (or, with a `reason`, moves) the review's meeting to two hours in `room`, at
/// the next working day's 9:00 plus `shift` hours (Beijing time).
pub async fn schedule_in_slot(system: &System, review: &str, shift: i64, room: &str, reason: &str) {
    let (start, end) = slot(system, shift).await;
    system
        .scheduling_client(Role::Office)
        .schedule_meeting(spb::ScheduleMeetingRequest {
            name: review.to_owned(),
            start_time: Some(start),
            end_time: Some(end),
            venue: room.into(),
            reason: reason.into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// Schedules the review's meeting in the next working-day slot, and every invited expert gives
/// an opinion recommending approval with `score` on each criterion.
pub async fn meet_and_give_opinions(system: &System, r: &spb::Review, score: i32) {
    schedule_in_slot(system, &r.name, 0, "room 1", "").await;
    for i in &r.invitations {
        system
            .expert_client(&i.expert_id)
            .submit_opinion(spb::SubmitOpinionRequest {
                request_id: String::new(),
                review: r.name.clone(),
                scores: preliminary_scores(score),
                opinion: "sound".into(),
                recommendation: spb::ReviewDecision::Approved as i32,
            })
            .await
            .unwrap();
    }
}

/// A project with its application documents, submitted.
pub async fn submitted_project(system: &System) -> pb::Project {
    let applicant = system.projects_client(Role::Applicant);
    let p = applicant
        .clone()
        .create_project(pb::CreateProjectRequest {
            request_id: String::new(),
            project: Some(new_project(&system.applicant_code)),
        })
        .await
        .unwrap()
        .into_inner();
    for (kind, sealed) in [
        (pb::DocumentKind::ApplicationForm, 3),
        (pb::DocumentKind::FeasibilityStudyReport, 0),
    ] {
        upload(&applicant, &p.name, kind, sealed, b"%PDF", "")
            .await
            .unwrap();
    }
    applicant
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

pub async fn the_review(system: &System, project: &pb::Project) -> spb::Review {
    let list = system
        .scheduling_client(Role::Office)
        .list_reviews(spb::ListReviewsRequest {
            project: project.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.reviews.len(), 1, "one review for the project");
    list.reviews[0].clone()
}

/// A future working-day slot before the deadline: tomorrow's first working day, 09:00–11:00
/// Beijing time, plus `shift` hours.
pub async fn slot(system: &System, shift: i64) -> (prost_types::Timestamp, prost_types::Timestamp) {
    let cst = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let today = chrono::Utc::now().with_timezone(&cst).date_naive();
    let next = system
        .scheduling_client(Role::Office)
        .add_working_days(spb::AddWorkingDaysRequest {
            date: Some(govit_platform::time::date_to_proto(today)),
            days: 1,
        })
        .await
        .unwrap()
        .into_inner()
        .date
        .unwrap();
    let day = govit_platform::time::date_from_proto(&next).unwrap();
    let start = day
        .and_hms_opt(9, 0, 0)
        .unwrap()
        .and_local_timezone(cst)
        .unwrap()
        + chrono::Duration::hours(shift);
    let ts = |t: chrono::DateTime<chrono::FixedOffset>| prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    };
    (ts(start), ts(start + chrono::Duration::hours(2)))
}

pub async fn confirm_all(system: &System, review: &str) -> spb::Review {
    let r = system
        .scheduling_client(Role::Office)
        .get_review(spb::GetReviewRequest {
            name: review.into(),
        })
        .await
        .unwrap()
        .into_inner();
    for i in r
        .invitations
        .iter()
        .filter(|i| i.state == spb::InvitationState::Pending as i32)
    {
        system
            .expert_client(&i.expert_id)
            .respond_to_invitation(spb::RespondToInvitationRequest {
                name: i.name.clone(),
                accept: true,
                decline_reason: String::new(),
            })
            .await
            .unwrap();
    }
    system
        .scheduling_client(Role::Office)
        .get_review(spb::GetReviewRequest {
            name: review.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

pub fn preliminary_scores(score: i32) -> Vec<spb::CriterionScore> {
    use spb::ReviewCriterion as C;
    [
        C::Necessity,
        C::Feasibility,
        C::TechnicalSoundness,
        C::BudgetReasonableness,
        C::Security,
    ]
    .map(|c| spb::CriterionScore {
        criterion: c as i32,
        score,
    })
    .to_vec()
}

#[tokio::test]
async fn the_demo_walks_a_project_through_all_three_services() {
    let system = spawn_system(DrawPolicy::default()).await;
    let worker = system.scheduling.spawn_worker(Duration::from_millis(50));
    let outbox = system.spawn_projects_worker(Duration::from_millis(50));
    let targets = govit::demo::Targets {
        projects: system.urls()[0].clone(),
        experts: system.urls()[1].clone(),
        scheduling: system.urls()[2].clone(),
        key: KEY.to_vec(),
        tls: None,
    };
    let mut printed = Vec::new();
    let outcome = govit::demo::run(&targets, &mut printed)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", String::from_utf8_lossy(&printed)));
    worker.abort();
    outbox.abort();
    let text = String::from_utf8(printed).unwrap();
    assert_eq!(outcome.project.state, S::InOperation as i32, "{text}");
    // The acceptance kept its report and who took part; operation opened the stable period.
    let acceptance = outcome.project.acceptance.clone().unwrap();
    assert!(
        acceptance
            .report_document
            .starts_with(&outcome.project.name)
    );
    assert_eq!(acceptance.participating_units.len(), 4);
    assert!(outcome.project.operation_start_date.is_some());
    assert_ne!(
        outcome.project.post_evaluation_open_date,
        outcome.project.operation_start_date
    );
    assert!(text.contains("post-evaluation opens on"), "{text}");
    assert!(text.contains("availability at least 99.9 %"), "{text}");
    // The finance bureau's inspection is in the trail under its name.
    let inspected = outcome
        .events
        .iter()
        .find(|e| e.action == "CreateInspection")
        .unwrap();
    assert_eq!(
        inspected.actor.as_ref().unwrap().body,
        pb::SupervisingBody::FinanceBureau as i32
    );
    assert!(text.contains("by finance bureau"), "{text}");
    // The first project in a fresh system duplicates nothing, and office says so.
    assert!(
        text.contains("office found no similar project, and recorded NONE"),
        "{text}"
    );
    let outcomes: Vec<&pb::ProjectEvent> = outcome
        .events
        .iter()
        .filter(|e| e.action == "RecordReviewOutcome")
        .collect();
    assert_eq!(outcomes.len(), 2);
    assert!(
        outcomes
            .iter()
            .all(|e| e.actor.as_ref().unwrap().role == "service")
    );
    assert!(
        outcome
            .reviews
            .iter()
            .all(|r| r.state == spb::ReviewState::Concluded as i32)
    );
    assert!(
        text.contains("declined") && text.contains("reproduced") && text.contains("ACCEPTED"),
        "{text}"
    );
    // The commendation is published and read back without a token.
    assert!(
        text.contains("Office commended Tianshan Systems Co. (通报表扬)"),
        "{text}"
    );
    // The declined expert's place went to an alternate, never a new random choice.
    let first = &outcome.reviews[0];
    assert_eq!(
        first
            .invitations
            .iter()
            .filter(|i| i.state == spb::InvitationState::Declined as i32)
            .count(),
        1
    );
    let draw = system
        .registry_client(Role::Inspector)
        .get_draw(epb::GetDrawRequest {
            name: first.draws[0].clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(draw.replacements.len(), 1);
    assert_eq!(first.draws.len(), 1, "no supplementary draw was needed");
    // The office's rating is kept with the review and, through the outbox, with the expert.
    let review = system
        .scheduling_client(Role::Office)
        .get_review(spb::GetReviewRequest {
            name: first.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(review.ratings.len(), 1);
    system.tick().await;
    let rated = system
        .registry_client(Role::RegistryAdmin)
        .get_expert(epb::GetExpertRequest {
            name: format!("experts/{}", review.ratings[0].expert_id),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((rated.rating_count, rated.average_rating_centi), (1, 500));
    assert!(rated.reviews_count >= 1);
}

#[tokio::test]
async fn a_service_stopped_mid_workflow_loses_nothing_and_doubles_nothing() {
    let mut system = spawn_system(DrawPolicy {
        require_witness: false,
        ..DrawPolicy::default()
    })
    .await;
    seed_pool(&system).await;
    let p = accepted_for_review(
        &system,
        vec![
            pb::PanelRequirement {
                category: "software".into(),
                count: 2,
                alternates: 1,
            },
            pb::PanelRequirement {
                category: "network".into(),
                count: 1,
                alternates: 1,
            },
        ],
    )
    .await;

    // The registry goes down before the review reaches it.
    system.registry_run.stop().await;
    assert_eq!(
        system.deliver_projects_outbox().await,
        1,
        "the review request reached scheduling"
    );
    system.tick().await;
    let r = the_review(&system, &p).await;
    assert_eq!(r.state, spb::ReviewState::Drawing as i32);
    assert!(r.draws.is_empty(), "no draw while the registry is down");
    // Back up: the next pass draws and invites.
    system.restart_registry().await;
    system.tick().await;
    system.tick().await;
    let r = the_review(&system, &p).await;
    assert_eq!(r.state, spb::ReviewState::Inviting as i32, "{r:?}");
    assert_eq!(r.invitations.len(), 3);
    let r = confirm_all(&system, &r.name).await;
    assert_eq!(r.state, spb::ReviewState::PanelConfirmed as i32);
    let (start, end) = slot(&system, 0).await;
    system
        .scheduling_client(Role::Office)
        .schedule_meeting(spb::ScheduleMeetingRequest {
            name: r.name.clone(),
            start_time: Some(start),
            end_time: Some(end),
            venue: "room 3".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    for i in &r.invitations {
        system
            .expert_client(&i.expert_id)
            .submit_opinion(spb::SubmitOpinionRequest {
                request_id: String::new(),
                review: r.name.clone(),
                scores: preliminary_scores(85),
                opinion: "fine".into(),
                recommendation: spb::ReviewDecision::Approved as i32,
            })
            .await
            .unwrap();
    }

    // The projects service goes down before it hears the conclusion.
    system.projects_run.stop().await;
    system
        .expert_client(&r.chair_expert_id)
        .record_conclusion(spb::RecordConclusionRequest {
            request_id: String::new(),
            name: r.name.clone(),
            decision: spb::ReviewDecision::Approved as i32,
            summary: "approved".into(),
        })
        .await
        .unwrap();
    system.tick().await;
    assert!(
        govit_platform::outbox::pending(system.scheduling.db())
            .await
            .unwrap()
            >= 1,
        "the outcome waits in the outbox"
    );
    system.restart_projects().await;
    system.tick().await;
    system.tick().await;
    assert_eq!(
        govit_platform::outbox::pending(system.scheduling.db())
            .await
            .unwrap(),
        0
    );
    let project = system
        .projects_client(Role::Office)
        .get_project(pb::GetProjectRequest {
            name: p.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(project.state, S::Approved as i32);

    // Nothing doubled: one review, one draw, one outcome, however often things were retried.
    assert_eq!(system.deliver_projects_outbox().await, 0);
    // The review's id cannot be taken over by a request that leaves out the exclusions.
    let review = the_review(&system, &p).await;
    assert_eq!(review.name, r.name);
    let again = system
        .scheduling_client(Role::Service)
        .request_review(spb::RequestReviewRequest {
            review_id: review.name.trim_start_matches("reviews/").into(),
            project: p.name.clone(),
            stage: spb::ReviewStage::PreliminaryReview as i32,
            panel: review.panel.clone(),
            excluded_organizations: vec![],
            applicant_organization: String::new(),
            accept_time: review.accept_time,
            validate_only: false,
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), tonic::Code::AlreadyExists);
    assert_eq!(error_reason(&again), "REQUEST_ID_REUSED");
    let draws = system
        .registry_client(Role::Inspector)
        .list_draws(epb::ListDrawsRequest {
            project: p.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .draws;
    assert_eq!(draws.len(), 1);
    let events = system
        .projects_client(Role::Office)
        .list_project_events(pb::ListProjectEventsRequest {
            parent: p.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action == "RecordReviewOutcome")
            .count(),
        1
    );
}
