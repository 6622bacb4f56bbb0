//! Integrity against an insider with a legitimate role: idempotency keys are scoped to their
//! caller and bound to their request, and a review nobody asked for cannot decide a project.

use govit_experts::DrawPolicy;
use govit_platform::Role;
use govit_proto::{
    experts::v1 as epb,
    projects::v1::{self as pb, ProjectState as S},
    scheduling::v1 as spb,
};
use tonic::Code;

use crate::{
    helpers::*,
    system::{accepted_for_review, seed_pool, software_panel, submitted_project},
};

fn no_witness() -> DrawPolicy {
    DrawPolicy {
        require_witness: false,
        ..DrawPolicy::default()
    }
}

fn open(project: &str, count: i32, request_id: &str) -> epb::OpenDrawRequest {
    let mut req = open_request(project, vec![requirement("software", count, 1)]);
    req.request_id = request_id.into();
    req.meeting_date = Some(govit_platform::time::date_to_proto(
        chrono::Utc::now().date_naive() + chrono::Duration::days(7),
    ));
    req
}

#[tokio::test]
async fn a_draw_key_is_one_callers_key_for_one_request() {
    let system = spawn_system(no_witness()).await;
    seed_pool(&system).await;
    let office = system.registry_client(Role::Office);
    let service = system.registry_client(Role::Service);
    let first = office
        .clone()
        .open_draw(open("2026-0042", 2, "k-1"))
        .await
        .unwrap()
        .into_inner();
    // A retry gets the same draw.
    let retry = office
        .clone()
        .open_draw(open("2026-0042", 2, "k-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry.name, first.name);
    // Another caller's same key is its own key: it cannot take over office's draw.
    let theirs = service
        .clone()
        .open_draw(open("2026-0042", 2, "k-1"))
        .await
        .unwrap()
        .into_inner();
    assert_ne!(theirs.name, first.name);
    // The same key with another request is refused, whoever sends it.
    let changed = office
        .clone()
        .open_draw(open("2026-0042", 3, "k-1"))
        .await
        .unwrap_err();
    assert_eq!(changed.code(), Code::AlreadyExists);
    assert_eq!(error_reason(&changed), "REQUEST_ID_REUSED");
    let listed = office
        .clone()
        .list_draws(epb::ListDrawsRequest {
            project: "projects/2026-0042".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .draws;
    assert_eq!(
        listed.len(),
        2,
        "office's draw and the service's, nothing else"
    );
}

#[tokio::test]
async fn a_replacement_key_replaces_once_and_only_what_it_named() {
    let system = spawn_system(no_witness()).await;
    seed_pool(&system).await;
    let office = system.registry_client(Role::Office);
    let d = office
        .clone()
        .open_draw(open("2026-0042", 3, ""))
        .await
        .unwrap()
        .into_inner();
    let d = office
        .clone()
        .execute_draw(epb::ExecuteDrawRequest { name: d.name })
        .await
        .unwrap()
        .into_inner();
    let selected = d.panel[0].selected.clone();
    let runner = system.registry_client(Role::Service);
    let replace = |expert: &str| epb::ReplaceExpertRequest {
        name: d.name.clone(),
        category: "software".into(),
        expert_id: expert.into(),
        reason: epb::ReplacementReason::Declined as i32,
        request_id: "r-1".into(),
    };
    let once = runner
        .clone()
        .replace_expert(replace(&selected[0]))
        .await
        .unwrap()
        .into_inner();
    let again = runner
        .clone()
        .replace_expert(replace(&selected[0]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.replacements.len(), 1, "a retry replaces nobody twice");
    assert_eq!(once.replacements, again.replacements);
    let other = runner
        .clone()
        .replace_expert(replace(&selected[1]))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::AlreadyExists);
    assert_eq!(error_reason(&other), "REQUEST_ID_REUSED");
}

#[tokio::test]
async fn only_review_scheduling_records_review_service_and_once() {
    let system = spawn_system(no_witness()).await;
    seed_pool(&system).await;
    let record = |rating: i32| epb::RecordReviewServiceRequest {
        request_id: String::new(),
        name: "experts/s01".into(),
        review: "reviews/rv-1".into(),
        rating,
        comment: "thorough".into(),
    };
    for role in [
        Role::Office,
        Role::RegistryAdmin,
        Role::Inspector,
        Role::Supervisor,
        Role::Applicant,
    ] {
        let denied = system
            .registry_client(role)
            .record_review_service(record(1))
            .await
            .unwrap_err();
        assert!(
            matches!(
                denied.code(),
                Code::PermissionDenied | Code::Unauthenticated
            ),
            "{role:?}: {denied:?}"
        );
    }
    let service = system.registry_client(Role::Service);
    service
        .clone()
        .record_review_service(record(4))
        .await
        .unwrap();
    let again = service
        .clone()
        .record_review_service(record(4))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.rating_count, again.average_rating_centi), (1, 400));
    let changed = service
        .clone()
        .record_review_service(record(1))
        .await
        .unwrap_err();
    assert_eq!(error_reason(&changed), "REQUEST_ID_REUSED");
}

#[tokio::test]
async fn a_review_set_up_in_advance_cannot_decide_the_project() {
    let system = spawn_system(no_witness()).await;
    seed_pool(&system).await;
    let p = submitted_project(&system).await;
    // Office sets up a review of the project beforehand: no exclusions, a panel of its choice.
    let planted = system
        .scheduling_client(Role::Office)
        .request_review(spb::RequestReviewRequest {
            review_id: "planted".into(),
            project: p.name.clone(),
            stage: spb::ReviewStage::PreliminaryReview as i32,
            panel: vec![pb::PanelRequirement {
                category: "software".into(),
                count: 2,
                alternates: 0,
            }],
            accept_time: Some(govit_platform::time::to_timestamp(chrono::Utc::now())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let p = system
        .projects_client(Role::Office)
        .accept_for_review(pb::AcceptForReviewRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag.clone(),
            panel: vec![pb::PanelRequirement {
                category: "software".into(),
                count: 2,
                alternates: 1,
            }],
        })
        .await
        .unwrap()
        .into_inner();
    system.deliver_projects_outbox().await;
    // The project's review is its own, with the applicant excluded.
    assert_ne!(p.review, planted.name);
    let own = system
        .scheduling_client(Role::Office)
        .get_review(spb::GetReviewRequest {
            name: p.review.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        own.excluded_organizations,
        std::slice::from_ref(&system.applicant_code)
    );
    // The planted review's decision cannot move the project, even sent as the service would.
    let status = system
        .projects_client(Role::Service)
        .record_review_outcome(pb::RecordReviewOutcomeRequest {
            name: p.name.clone(),
            review: planted.name.clone(),
            stage: pb::ReviewStage::PreliminaryReview as i32,
            decision: pb::ReviewDecision::Approved as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&status), "REVIEW_MISMATCH");
    let now = system
        .projects_client(Role::Office)
        .get_project(pb::GetProjectRequest {
            name: p.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(now.state, S::UnderPreliminaryReview as i32);
}

#[tokio::test]
async fn an_office_override_is_its_own_act_approved_by_a_second_office_user_and_logged() {
    let system = spawn_system(no_witness()).await;
    seed_pool(&system).await;
    let p = accepted_for_review(&system, vec![software_panel()]).await;
    system.deliver_projects_outbox().await;
    let request = |etag: &str, reason: &str| pb::OverrideReviewOutcomeRequest {
        request_id: String::new(),
        name: p.name.clone(),
        etag: etag.into(),
        stage: pb::ReviewStage::PreliminaryReview as i32,
        decision: pb::ReviewDecision::Approved as i32,
        reason: reason.into(),
    };
    let reason = "the municipal government ordered the project approved on 2026-11-20";
    for role in [
        Role::Applicant,
        Role::Supervisor,
        Role::Inspector,
        Role::RegistryAdmin,
        Role::Service,
    ] {
        let denied = system
            .projects_client(role)
            .override_review_outcome(request(&p.etag, reason))
            .await
            .unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied, "{role:?}");
    }
    let office = |subject: &str| {
        let token = govit_platform::auth::mint_hs256(
            KEY,
            subject,
            Role::Office,
            None,
            None,
            std::time::Duration::from_secs(600),
        )
        .unwrap();
        system.projects_client_with_token(&token)
    };
    let no_reason = office("office-li")
        .override_review_outcome(request(&p.etag, "because"))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&no_reason), ["reason"]);
    let asked = office("office-li")
        .override_review_outcome(request(&p.etag, reason))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(asked.state, pb::ReviewOverrideState::PendingApproval as i32);
    assert_eq!(asked.review, p.review);
    let unchanged = system
        .projects_client(Role::Office)
        .get_project(pb::GetProjectRequest {
            name: p.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unchanged.state, S::UnderPreliminaryReview as i32);
    // Who asked cannot approve.
    let own = office("office-li")
        .approve_review_override(pb::ApproveReviewOverrideRequest {
            name: asked.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(own.code(), Code::PermissionDenied);
    let approved = office("office-wang")
        .approve_review_override(pb::ApproveReviewOverrideRequest {
            name: asked.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(approved.state, pb::ReviewOverrideState::Applied as i32);
    assert_eq!(approved.approved_by, "office-wang");
    let twice = office("office-zhao")
        .approve_review_override(pb::ApproveReviewOverrideRequest {
            name: asked.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(error_reason(&twice), "STATE_CONFLICT");

    // The project moved; the audit trail says who asked, who approved, and why.
    let events = system
        .projects_client(Role::Inspector)
        .list_project_events(pb::ListProjectEventsRequest {
            parent: p.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let asked_event = events
        .iter()
        .find(|e| e.action == "OverrideReviewOutcomeRequested")
        .unwrap();
    assert_eq!(asked_event.actor.as_ref().unwrap().subject, "office-li");
    let applied = events
        .iter()
        .find(|e| e.action == "OverrideReviewOutcome")
        .unwrap();
    assert_eq!(applied.actor.as_ref().unwrap().subject, "office-wang");
    assert!(applied.reason.contains(reason), "{}", applied.reason);
    assert_eq!(applied.to_state, S::Approved as i32);

    // The review is cancelled, the override is in the registry's log (its reason only as a
    // hash), and a panel decision arriving afterwards is kept, not applied, not dropped.
    for _ in 0..3 {
        system.deliver_projects_outbox().await;
        system.tick().await;
    }
    let review = system
        .scheduling_client(Role::Office)
        .get_review(spb::GetReviewRequest {
            name: p.review.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(review.state, spb::ReviewState::Cancelled as i32);
    let log = system
        .registry_client(Role::Inspector)
        .list_log_entries(epb::ListLogEntriesRequest {
            start: 0,
            limit: 1000,
            draw_id: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let logged: Vec<&epb::LogEntry> = log
        .iter()
        .filter(|e| e.entry_json.contains("review_outcome_overridden"))
        .collect();
    assert_eq!(logged.len(), 1);
    assert!(
        logged[0]
            .entry_json
            .contains(&asked.name.rsplit('/').next().unwrap().to_owned())
    );
    assert!(
        logged[0].entry_json.contains("\"approvals\":2"),
        "{}",
        logged[0].entry_json
    );
    assert!(
        !logged[0].entry_json.contains("municipal"),
        "the reason stays out of the log"
    );
    let late = system
        .projects_client(Role::Service)
        .record_review_outcome(pb::RecordReviewOutcomeRequest {
            name: p.name.clone(),
            review: p.review.clone(),
            stage: pb::ReviewStage::PreliminaryReview as i32,
            decision: pb::ReviewDecision::Rejected as i32,
            summary: "the panel would have rejected it".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(late.state, S::Approved as i32);
    let events = system
        .projects_client(Role::Inspector)
        .list_project_events(pb::ListProjectEventsRequest {
            parent: p.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let kept = events
        .iter()
        .find(|e| e.action == "ReviewOutcomeNotApplied")
        .unwrap();
    assert!(kept.reason.contains("REJECTED"), "{}", kept.reason);
    let overrides = system
        .projects_client(Role::Supervisor)
        .list_review_overrides(pb::ListReviewOverridesRequest {
            parent: p.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .overrides;
    assert_eq!(overrides.len(), 1);
    // The log's hash is of the salt and the reason: checkable here, not guessable there.
    let entry: serde_json::Value = serde_json::from_str(&logged[0].entry_json).unwrap();
    let mut salted = hex::decode(&overrides[0].reason_salt).unwrap();
    salted.extend_from_slice(reason.as_bytes());
    assert_eq!(
        entry["reason_sha256"],
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&salted))
    );
    assert_eq!(
        govit_platform::outbox::parked(system.projects.db())
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_pending_override_can_be_rejected_and_is_overtaken_when_the_project_moves_on() {
    let system = spawn_system(no_witness()).await;
    seed_pool(&system).await;
    let p = accepted_for_review(&system, vec![software_panel()]).await;
    let office = system.projects_client(Role::Office);
    let ask = |etag: String| pb::OverrideReviewOutcomeRequest {
        request_id: String::new(),
        name: p.name.clone(),
        etag,
        stage: pb::ReviewStage::PreliminaryReview as i32,
        decision: pb::ReviewDecision::Rejected as i32,
        reason: "the applying unit was dissolved by the city".into(),
    };
    let first = office
        .clone()
        .override_review_outcome(ask(p.etag.clone()))
        .await
        .unwrap()
        .into_inner();
    let second = office
        .clone()
        .override_review_outcome(ask(p.etag.clone()))
        .await
        .unwrap_err();
    assert_eq!(
        error_reason(&second),
        "STATE_CONFLICT",
        "one pending at a time"
    );
    let rejected = office
        .clone()
        .reject_review_override(pb::RejectReviewOverrideRequest {
            name: first.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rejected.state, pb::ReviewOverrideState::Rejected as i32);
    // Asked again, then the project is withdrawn before anyone approves: overtaken.
    let again = office
        .clone()
        .override_review_outcome(ask(p.etag.clone()))
        .await
        .unwrap()
        .into_inner();
    let now = office
        .clone()
        .get_project(pb::GetProjectRequest {
            name: p.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    system
        .projects_client(Role::Applicant)
        .withdraw_project(pb::WithdrawProjectRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: now.etag,
            reason: "merged into another project".into(),
        })
        .await
        .unwrap();
    let token = govit_platform::auth::mint_hs256(
        KEY,
        "office-second",
        Role::Office,
        None,
        None,
        std::time::Duration::from_secs(600),
    )
    .unwrap();
    let late = system
        .projects_client_with_token(&token)
        .approve_review_override(pb::ApproveReviewOverrideRequest {
            name: again.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(late.code(), Code::FailedPrecondition);
    let listed = office
        .clone()
        .list_review_overrides(pb::ListReviewOverridesRequest {
            parent: p.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .overrides;
    assert!(
        listed
            .iter()
            .all(|o| o.state == pb::ReviewOverrideState::Rejected as i32),
        "{listed:?}"
    );
}

#[tokio::test]
async fn applicants_and_experts_list_their_own_reviews_and_learn_nothing_of_others() {
    let system = spawn_system(no_witness()).await;
    seed_pool(&system).await;
    let p = accepted_for_review(&system, vec![software_panel()]).await;
    system.deliver_projects_outbox().await;
    // Another unit's review, set up by office directly.
    let other = system
        .scheduling_client(Role::Office)
        .request_review(spb::RequestReviewRequest {
            review_id: "other-unit".into(),
            project: "projects/2026-0999".into(),
            stage: spb::ReviewStage::PreliminaryReview as i32,
            panel: vec![pb::PanelRequirement {
                category: "network".into(),
                count: 2,
                alternates: 0,
            }],
            applicant_organization: credit_code(77),
            accept_time: Some(govit_platform::time::to_timestamp(chrono::Utc::now())),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let own = system
        .scheduling_client(Role::Applicant)
        .list_reviews(spb::ListReviewsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .reviews;
    assert_eq!(
        own.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
        std::slice::from_ref(&p.review)
    );
    assert!(
        own[0].invitations.is_empty(),
        "the panel stays hidden before the meeting"
    );
    let expert = own_expert(&system, &p.review).await;
    let theirs = system
        .expert_client(&expert)
        .list_reviews(spb::ListReviewsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .reviews;
    assert_eq!(
        theirs.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
        std::slice::from_ref(&p.review)
    );
    // A review one may not see and one that does not exist answer alike.
    for client in [
        system.scheduling_client(Role::Applicant),
        system.expert_client(&expert),
    ] {
        let hidden = client
            .clone()
            .get_review(spb::GetReviewRequest {
                name: other.name.clone(),
            })
            .await
            .unwrap_err();
        let missing = client
            .clone()
            .get_review(spb::GetReviewRequest {
                name: "reviews/no-such-review".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(hidden.code(), Code::PermissionDenied);
        assert_eq!(
            (hidden.code(), hidden.message()),
            (missing.code(), missing.message())
        );
    }
    let respond = |name: String| {
        let client = system.expert_client(&expert);
        async move {
            client
                .clone()
                .respond_to_invitation(spb::RespondToInvitationRequest {
                    name,
                    accept: true,
                    decline_reason: String::new(),
                })
                .await
                .unwrap_err()
        }
    };
    let not_invited = respond(format!("{}/invitations/{expert}", other.name)).await;
    let no_review = respond(format!("reviews/no-such-review/invitations/{expert}")).await;
    assert_eq!(not_invited.code(), Code::NotFound);
    assert_eq!(no_review.code(), Code::NotFound);
    // A supervisor finds the draws waiting for a witness without office's help, and sees
    // neither their input nor their panel.
    let draws = system
        .registry_client(Role::Supervisor)
        .list_draws(epb::ListDrawsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .draws;
    assert!(!draws.is_empty());
    assert!(
        draws
            .iter()
            .all(|d| d.panel.is_empty() && d.input_json.is_empty())
    );
}

async fn own_expert(system: &System, review: &str) -> String {
    system
        .scheduling_client(Role::Office)
        .get_review(spb::GetReviewRequest {
            name: review.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .invitations[0]
        .expert_id
        .clone()
}

#[tokio::test]
async fn reads_of_personal_data_and_confidential_material_are_on_record_for_inspectors() {
    use govit_proto::common::v1 as cpb;
    let system = spawn_system(no_witness()).await;
    seed_pool(&system).await;
    let p = accepted_for_review(&system, vec![software_panel()]).await;
    system.deliver_projects_outbox().await;
    // An unmasked expert record (registry admin); a masked one (office) is no such read.
    for role in [Role::RegistryAdmin, Role::Office] {
        system
            .registry_client(role)
            .get_expert(epb::GetExpertRequest {
                name: "experts/s01".into(),
            })
            .await
            .unwrap();
    }
    // A panel seen before its meeting.
    system
        .scheduling_client(Role::Office)
        .get_review(spb::GetReviewRequest {
            name: p.review.clone(),
        })
        .await
        .unwrap();
    // A document.
    let documents = system
        .projects_client(Role::Office)
        .list_documents(pb::ListDocumentsRequest {
            parent: p.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .documents;
    let mut stream = system
        .projects_client(Role::Office)
        .download_document(pb::DownloadDocumentRequest {
            name: documents[0].name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    while stream.message().await.unwrap().is_some() {}

    let registry = system
        .registry_client(Role::Inspector)
        .list_read_events(cpb::ListReadEventsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(registry.len(), 1, "{registry:?}");
    assert_eq!(
        (
            registry[0].kind.as_str(),
            registry[0].resource.as_str(),
            registry[0].role.as_str()
        ),
        ("ExpertUnmasked", "experts/s01", "registry_admin")
    );
    let scheduling = system
        .scheduling_client(Role::Inspector)
        .list_read_events(cpb::ListReadEventsRequest {
            resource: p.review.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(scheduling.len(), 1);
    assert_eq!(scheduling[0].kind, "PanelBeforeMeeting");
    assert_eq!(scheduling[0].role, "office");
    let projects = system
        .projects_client(Role::Inspector)
        .list_read_events(cpb::ListReadEventsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .events;
    assert_eq!(projects.len(), 1);
    assert_eq!(projects[0].resource, documents[0].name);
    // Only inspectors read the record of reads.
    for role in [
        Role::Office,
        Role::Supervisor,
        Role::RegistryAdmin,
        Role::Service,
    ] {
        let denied = system
            .registry_client(role)
            .list_read_events(cpb::ListReadEventsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied, "{role:?}");
    }
}
