//! The boundaries between the services: a panel is checked before a project is sent to review,
//! every review can end (amended, cancelled, withdrawn with its project at any point, paused
//! with its suspension), final refusals are parked for office, work resumes soon after an
//! outage, the legal deadline counts from office's acceptance, and callers branch on
//! `ErrorInfo` reasons.

use std::time::{Duration, Instant};

use govit_experts::DrawPolicy;
use govit_platform::Role;
use govit_proto::{
    common::v1 as cpb,
    experts::v1 as epb,
    projects::v1::{self as pb, ProjectState as S},
    scheduling::v1 as spb,
};
use tonic::Code;

use crate::{
    helpers::*,
    system::{
        confirm_all, meet_and_give_opinions, preliminary_scores, seed_pool, slot,
        submitted_project, the_review,
    },
};

fn no_witness() -> DrawPolicy {
    DrawPolicy {
        require_witness: false,
        ..DrawPolicy::default()
    }
}

fn software(count: i32, alternates: i32) -> pb::PanelRequirement {
    pb::PanelRequirement {
        category: "software".into(),
        count,
        alternates,
    }
}

async fn accept(
    system: &System,
    p: &pb::Project,
    panel: Vec<pb::PanelRequirement>,
) -> Result<pb::Project, tonic::Status> {
    system
        .projects_client(Role::Office)
        .accept_for_review(pb::AcceptForReviewRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag.clone(),
            panel,
        })
        .await
        .map(|r| r.into_inner())
}

async fn review(system: &System, name: &str) -> spb::Review {
    system
        .scheduling_client(Role::Office)
        .get_review(spb::GetReviewRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
}

async fn count(db: &govit_platform::Db, sql: &str, bind: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(bind.to_owned())
        .fetch_one(&db.pool)
        .await
        .unwrap()
}

/// Delivers both outboxes and runs the scheduling worker until nothing is left to send.
async fn settle(system: &System) {
    for _ in 0..4 {
        system.deliver_projects_outbox().await;
        system.tick().await;
    }
}

async fn outbox_messages(db: &govit_platform::Db) -> (i64, i64) {
    (
        govit_platform::outbox::pending(db).await.unwrap(),
        govit_platform::outbox::parked(db).await.unwrap(),
    )
}

#[tokio::test]
async fn a_panel_the_registry_would_refuse_leaves_the_project_submitted() {
    let mut system = spawn_system(no_witness()).await;
    seed_pool(&system).await;
    let p = submitted_project(&system).await;

    let unknown = accept(
        &system,
        &p,
        vec![
            software(2, 1),
            pb::PanelRequirement {
                category: "no-such-category".into(),
                count: 2,
                alternates: 1,
            },
        ],
    )
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&unknown), ["panel[1].category"]);
    assert!(
        unknown.message().contains("no-such-category"),
        "{unknown:?}"
    );

    // The pool has six software experts: seven cannot be drawn.
    let short = accept(&system, &p, vec![software(7, 0)]).await.unwrap_err();
    assert_eq!(short.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&short), "INSUFFICIENT_EXPERTS");

    // A peer that cannot be reached: UNAVAILABLE, and nothing changes.
    system.registry_run.stop().await;
    let down = accept(&system, &p, vec![software(2, 1)]).await.unwrap_err();
    assert_eq!(down.code(), Code::Unavailable);
    assert_eq!(error_reason(&down), "PEER_UNAVAILABLE");
    system.restart_registry().await;
    system.scheduling_run.stop().await;
    let down = accept(&system, &p, vec![software(2, 1)]).await.unwrap_err();
    assert_eq!(down.code(), Code::Unavailable);
    system.restart_scheduling().await;

    let now = get_project(&system, &p.name).await;
    assert_eq!(now.state, S::Submitted as i32);
    assert_eq!(now.etag, p.etag, "nothing was written");
    assert_eq!(outbox_messages(system.projects.db()).await, (0, 0));

    let accepted = accept(&system, &p, vec![software(2, 1)]).await.unwrap();
    assert_eq!(accepted.state, S::UnderPreliminaryReview as i32);
    assert!(
        accepted.review.starts_with("reviews/rv-"),
        "{}",
        accepted.review
    );
    system.deliver_projects_outbox().await;
    let r = the_review(&system, &accepted).await;
    assert_eq!(r.name, accepted.review, "the project names its review");
    assert_eq!(r.project, p.name);
}

async fn get_project(system: &System, name: &str) -> pb::Project {
    system
        .projects_client(Role::Office)
        .get_project(pb::GetProjectRequest { name: name.into() })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn a_stalled_review_is_amended_or_cancelled() {
    let system = spawn_system(DrawPolicy::default()).await;
    seed_pool(&system).await;
    let p = submitted_project(&system).await;
    let p = accept(&system, &p, vec![software(2, 1)]).await.unwrap();
    system.deliver_projects_outbox().await;
    let r = the_review(&system, &p).await;
    assert_eq!(r.state, spb::ReviewState::AwaitingWitness as i32);
    // Someone cancels the draw at the registry: the review cannot go on by itself.
    let first_draw = r.draws[0].clone();
    system
        .registry_client(Role::Office)
        .cancel_draw(epb::CancelDrawRequest {
            name: first_draw.clone(),
            reason: "meeting room unavailable".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    system.tick().await;
    let r = review(&system, &r.name).await;
    assert_eq!(r.state, spb::ReviewState::Stalled as i32, "{r:?}");

    // Only office amends, only a stalled review, and only with a panel the registry accepts.
    let amend = |role: Role, panel: Vec<pb::PanelRequirement>| {
        let name = r.name.clone();
        let client = system.scheduling_client(role);
        async move {
            client
                .clone()
                .amend_review_panel(spb::AmendReviewPanelRequest {
                    name,
                    panel,
                    reason: "the first draw was cancelled".into(),
                })
                .await
        }
    };
    let denied = amend(Role::Supervisor, vec![software(2, 1)])
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let bad = amend(
        Role::Office,
        vec![pb::PanelRequirement {
            category: "ghost".into(),
            count: 1,
            alternates: 0,
        }],
    )
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&bad), ["panel[0].category"]);
    let amended = amend(
        Role::Office,
        vec![pb::PanelRequirement {
            category: "network".into(),
            count: 2,
            alternates: 1,
        }],
    )
    .await
    .unwrap()
    .into_inner();
    assert_eq!(amended.state, spb::ReviewState::AwaitingWitness as i32);
    assert_eq!(
        amended.draws.len(),
        2,
        "the old draw stays listed: {amended:?}"
    );
    assert_eq!(amended.draws[0], first_draw);
    assert_eq!(amended.panel[0].category, "network");
    let again = amend(Role::Office, vec![software(2, 1)]).await.unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&again), "STATE_CONFLICT");

    // Office cancels instead: the open draw is cancelled at the registry, in its log, and the
    // project goes back to be sent again.
    let cancelled = system
        .scheduling_client(Role::Office)
        .cancel_review(spb::CancelReviewRequest {
            name: r.name.clone(),
            reason: "the project is to be resubmitted with a new scope".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.state, spb::ReviewState::Cancelled as i32);
    settle(&system).await;
    let second = system
        .registry_client(Role::Inspector)
        .get_draw(epb::GetDrawRequest {
            name: amended.draws[1].clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.state, epb::DrawState::Cancelled as i32);
    assert_eq!(
        second.cancel_reason, "the review was cancelled",
        "a fixed text, not office's words"
    );
    let log = system
        .registry_client(Role::Inspector)
        .list_log_entries(epb::ListLogEntriesRequest {
            draw_id: second.draw_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let cancelled: serde_json::Value =
        serde_json::from_str(&log.last().unwrap().entry_json).unwrap();
    assert_eq!(cancelled["type"], "draw_cancelled");
    assert_eq!(
        cancelled["reason"], "REVIEW_CANCELLED",
        "a code, not free text"
    );
    let back = get_project(&system, &p.name).await;
    assert_eq!(back.state, S::Submitted as i32);
    assert_eq!(outbox_messages(system.projects.db()).await, (0, 0));
    assert_eq!(outbox_messages(system.scheduling.db()).await, (0, 0));
    // Cancelling again answers the cancelled review; a new panel goes to a new review.
    let twice = system
        .scheduling_client(Role::Office)
        .cancel_review(spb::CancelReviewRequest {
            name: r.name.clone(),
            reason: "again".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(twice.state, spb::ReviewState::Cancelled as i32);
    let resent = accept(&system, &back, vec![software(2, 1)]).await.unwrap();
    assert_ne!(resent.review, p.review);
}

/// Where in a review the project is withdrawn.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Point {
    AwaitingWitness,
    Invited,
    MeetingBooked,
    OpinionsGiven,
}

async fn withdraw_at(point: Point) {
    let policy = if point == Point::AwaitingWitness {
        DrawPolicy::default()
    } else {
        no_witness()
    };
    let system = spawn_system(policy).await;
    seed_pool(&system).await;
    let p = submitted_project(&system).await;
    let p = accept(&system, &p, vec![software(2, 1)]).await.unwrap();
    system.deliver_projects_outbox().await;
    let mut r = the_review(&system, &p).await;
    if point != Point::AwaitingWitness {
        assert_eq!(r.state, spb::ReviewState::Inviting as i32, "{point:?}");
    }
    if matches!(point, Point::MeetingBooked | Point::OpinionsGiven) {
        r = confirm_all(&system, &r.name).await;
        let (start, end) = slot(&system, 0).await;
        r = system
            .scheduling_client(Role::Office)
            .schedule_meeting(spb::ScheduleMeetingRequest {
                name: r.name.clone(),
                start_time: Some(start),
                end_time: Some(end),
                venue: "room 1".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
    }
    if point == Point::OpinionsGiven {
        for i in &r.invitations {
            system
                .expert_client(&i.expert_id)
                .submit_opinion(spb::SubmitOpinionRequest {
                    request_id: String::new(),
                    review: r.name.clone(),
                    scores: preliminary_scores(80),
                    opinion: "sound".into(),
                    recommendation: spb::ReviewDecision::Approved as i32,
                })
                .await
                .unwrap();
        }
    }
    let invited: Vec<String> = r.invitations.iter().map(|i| i.expert_id.clone()).collect();
    let p = get_project(&system, &p.name).await;
    system
        .projects_client(Role::Applicant)
        .withdraw_project(pb::WithdrawProjectRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag.clone(),
            reason: "the bureau merged the project into another".into(),
        })
        .await
        .unwrap();
    settle(&system).await;

    let r = review(&system, &r.name).await;
    assert_eq!(
        r.state,
        spb::ReviewState::Cancelled as i32,
        "{point:?}: {r:?}"
    );
    assert!(
        r.invitations
            .iter()
            .all(|i| i.state == spb::InvitationState::Cancelled as i32),
        "{point:?}: {r:?}"
    );
    if let Some(m) = &r.meeting {
        assert_eq!(m.state, spb::MeetingState::Cancelled as i32, "{point:?}");
    }
    let db = system.scheduling.db();
    let id = r.name.trim_start_matches("reviews/");
    assert_eq!(
        count(db, "SELECT COUNT(*) FROM bookings WHERE review_id = $1", id).await,
        0,
        "{point:?}: bookings freed"
    );
    for expert in &invited {
        assert_eq!(
            count(
                db,
                "SELECT COUNT(*) FROM notifications WHERE recipient = $1 AND text LIKE '%withdrawn%'",
                &format!("experts/{expert}"),
            )
            .await,
            1,
            "{point:?}: {expert} is told"
        );
    }
    // A draw still waiting for its witness is cancelled; one already executed stays, final.
    let expected = if point == Point::AwaitingWitness {
        epb::DrawState::Cancelled
    } else {
        epb::DrawState::Executed
    };
    assert_eq!(r.draws.len(), 1, "{point:?}");
    let d = system
        .registry_client(Role::Inspector)
        .get_draw(epb::GetDrawRequest {
            name: r.draws[0].clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.state, expected as i32, "{point:?}: {d:?}");
    // Nothing retries and nothing was refused.
    assert_eq!(
        outbox_messages(system.projects.db()).await,
        (0, 0),
        "{point:?}"
    );
    assert_eq!(
        outbox_messages(system.scheduling.db()).await,
        (0, 0),
        "{point:?}"
    );
    assert_eq!(
        get_project(&system, &p.name).await.state,
        S::Withdrawn as i32
    );
    // An expert can no longer answer or give an opinion.
    if let Some(i) = r.invitations.first() {
        let status = system
            .expert_client(&i.expert_id)
            .respond_to_invitation(spb::RespondToInvitationRequest {
                name: i.name.clone(),
                accept: true,
                decline_reason: String::new(),
            })
            .await
            .unwrap_err();
        assert!(
            matches!(
                status.code(),
                Code::FailedPrecondition | Code::PermissionDenied
            ),
            "{point:?}: {status:?}"
        );
    }
}

#[tokio::test]
async fn a_project_withdrawn_while_the_draw_waits_for_its_witness_ends_the_review() {
    withdraw_at(Point::AwaitingWitness).await;
}

#[tokio::test]
async fn a_project_withdrawn_after_the_invitations_ends_the_review() {
    withdraw_at(Point::Invited).await;
}

#[tokio::test]
async fn a_project_withdrawn_after_the_meeting_is_booked_ends_the_review() {
    withdraw_at(Point::MeetingBooked).await;
}

#[tokio::test]
async fn a_project_withdrawn_after_the_opinions_ends_the_review() {
    withdraw_at(Point::OpinionsGiven).await;
}

#[tokio::test]
async fn a_suspended_project_pauses_its_review_and_a_decision_reached_meanwhile_stands() {
    let system = spawn_system(no_witness()).await;
    seed_pool(&system).await;
    let p = submitted_project(&system).await;
    let p = accept(&system, &p, vec![software(2, 1)]).await.unwrap();
    system.deliver_projects_outbox().await;
    let r = the_review(&system, &p).await;
    let suspend = |etag: String| {
        let client = system.projects_client(Role::Office);
        let name = p.name.clone();
        async move {
            client
                .clone()
                .suspend_project(pb::SuspendProjectRequest {
                    request_id: String::new(),
                    name,
                    etag,
                    reason: "audit of the applying unit".into(),
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let resume = |etag: String| {
        let client = system.projects_client(Role::Office);
        let name = p.name.clone();
        async move {
            client
                .clone()
                .resume_project(pb::ResumeProjectRequest {
                    request_id: String::new(),
                    name,
                    etag,
                    reason: "audit closed".into(),
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let suspended = suspend(get_project(&system, &p.name).await.etag).await;
    settle(&system).await;
    let paused = review(&system, &r.name).await;
    assert_eq!(paused.state, spb::ReviewState::Paused as i32);
    assert_eq!(paused.paused_from, spb::ReviewState::Inviting as i32);
    // Nobody answers, lapses or is replaced while it is paused.
    let i = &paused.invitations[0];
    let status = system
        .expert_client(&i.expert_id)
        .respond_to_invitation(spb::RespondToInvitationRequest {
            name: i.name.clone(),
            accept: true,
            decline_reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&status), "STATE_CONFLICT");

    resume(get_project(&system, &suspended.name).await.etag).await;
    settle(&system).await;
    let resumed = review(&system, &r.name).await;
    assert_eq!(resumed.state, spb::ReviewState::Inviting as i32);
    let r = confirm_all(&system, &r.name).await;
    meet_and_give_opinions(&system, &r, 90).await;
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
    // The project is suspended before the decision reaches it: the decision stands and the
    // project resumes to it.
    let suspended = suspend(get_project(&system, &p.name).await.etag).await;
    settle(&system).await;
    let held = get_project(&system, &p.name).await;
    assert_eq!(held.state, S::Suspended as i32);
    assert_eq!(held.suspended_from, S::Approved as i32);
    assert_eq!(held.approved_budget_fen, held.estimated_investment_fen);
    let resumed = resume(get_project(&system, &suspended.name).await.etag).await;
    assert_eq!(resumed.state, S::Approved as i32);
    assert_eq!(outbox_messages(system.projects.db()).await, (0, 0));
    assert_eq!(outbox_messages(system.scheduling.db()).await, (0, 0));
}

#[tokio::test]
async fn a_refused_message_is_parked_for_office_who_can_retry_it() {
    let system = spawn_system(no_witness()).await;
    seed_pool(&system).await;
    let p = submitted_project(&system).await;
    let p = accept(&system, &p, vec![software(2, 1)]).await.unwrap();
    system.deliver_projects_outbox().await;
    let r = the_review(&system, &p).await;
    let leaving = r.invitations[0].clone();
    // Office may no longer replace at the registry behind scheduling's back; a service token
    // still can, and when the expert then declines, the registry refuses scheduling's
    // replacement for good.
    let denied = system
        .registry_client(Role::Office)
        .replace_expert(epb::ReplaceExpertRequest {
            name: leaving.draw.clone(),
            category: leaving.category.clone(),
            expert_id: leaving.expert_id.clone(),
            reason: epb::ReplacementReason::Other as i32,
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    system
        .registry_client(Role::Service)
        .replace_expert(epb::ReplaceExpertRequest {
            name: leaving.draw.clone(),
            category: leaving.category.clone(),
            expert_id: leaving.expert_id.clone(),
            reason: epb::ReplacementReason::Other as i32,
            request_id: String::new(),
        })
        .await
        .unwrap();
    system
        .expert_client(&leaving.expert_id)
        .respond_to_invitation(spb::RespondToInvitationRequest {
            name: leaving.name.clone(),
            accept: false,
            decline_reason: "travelling".into(),
        })
        .await
        .unwrap();
    system.tick().await;
    system.tick().await;
    assert_eq!(outbox_messages(system.scheduling.db()).await, (0, 1));

    let office = system.scheduling_client(Role::Office);
    let parked = office
        .clone()
        .list_outbox_messages(cpb::ListOutboxMessagesRequest {
            state: cpb::OutboxMessageState::Parked as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .messages;
    assert_eq!(parked.len(), 1);
    let m = &parked[0];
    assert_eq!(m.kind, "ReplaceExpert");
    assert_eq!(m.subject, leaving.draw, "the registry acts on the draw");
    assert_eq!(m.attempts, 1, "a final refusal is not retried");
    assert_eq!(m.last_error_reason, "ALREADY_REPLACED");
    assert!(m.park_time.is_some());

    for client in [
        system.scheduling_client(Role::Applicant),
        system.expert_client(&leaving.expert_id),
        system.scheduling_client(Role::Supervisor),
        system.scheduling_client(Role::Inspector),
        system.scheduling_client(Role::Service),
    ] {
        let denied = client
            .clone()
            .list_outbox_messages(cpb::ListOutboxMessagesRequest::default())
            .await
            .unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied);
        assert_eq!(error_reason(&denied), "PERMISSION_DENIED");
    }
    let retried = office
        .clone()
        .retry_outbox_message(cpb::RetryOutboxMessageRequest {
            name: m.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried.state, cpb::OutboxMessageState::Pending as i32);
    system.tick().await;
    let again = office
        .clone()
        .list_outbox_messages(cpb::ListOutboxMessagesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .messages;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].state, cpb::OutboxMessageState::Parked as i32);
    assert_eq!(again[0].attempts, 2);
    let bad = office
        .clone()
        .retry_outbox_message(cpb::RetryOutboxMessageRequest {
            name: "outboxMessages/nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::NotFound);

    // The projects service lists its own, none parked.
    let projects = system
        .projects_client(Role::Office)
        .list_outbox_messages(cpb::ListOutboxMessagesRequest {
            state: cpb::OutboxMessageState::Delivered as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .messages;
    assert_eq!(projects.len(), 1);
    assert_eq!(projects[0].kind, "RequestReview");
}

#[tokio::test]
async fn work_resumes_within_five_seconds_of_the_peer_serving_again() {
    let mut system = spawn_system(no_witness()).await;
    seed_pool(&system).await;
    let p = submitted_project(&system).await;
    let p = accept(&system, &p, vec![software(2, 1)]).await.unwrap();
    system.scheduling_run.stop().await;
    // One failed delivery, and a backoff grown long as after minutes of outage.
    assert_eq!(system.deliver_projects_outbox().await, 0);
    sqlx::query("UPDATE outbox SET attempts = 8, next_attempt_at = $1")
        .bind(govit_platform::time::to_stored(
            chrono::Utc::now() + chrono::Duration::minutes(5),
        ))
        .execute(&system.projects.db().pool)
        .await
        .unwrap();
    let worker = system.spawn_projects_worker(Duration::from_secs(1));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    system.restart_scheduling().await;
    let back = Instant::now();
    loop {
        let reviews = system
            .scheduling_client(Role::Office)
            .list_reviews(spb::ListReviewsRequest {
                project: p.name.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .reviews;
        if !reviews.is_empty() {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "the review request waited out its backoff"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    worker.abort();
}

#[tokio::test]
async fn the_deadline_counts_from_office_acceptance_not_from_delivery() {
    let system = spawn_system(no_witness()).await;
    seed_pool(&system).await;
    let request =
        |review_id: &str, accepted: chrono::DateTime<chrono::Utc>| spb::RequestReviewRequest {
            review_id: review_id.into(),
            project: "projects/2026-0042".into(),
            stage: spb::ReviewStage::PreliminaryReview as i32,
            panel: vec![software(2, 1)],
            excluded_organizations: vec![],
            applicant_organization: String::new(),
            accept_time: Some(govit_platform::time::to_timestamp(accepted)),
            validate_only: false,
        };
    // Accepted on the eve of National Day 2026 (1–7 October off, 10 October worked): five
    // working days are 8, 9, 10, 12 and 13 October, whenever the request arrives.
    let accepted = chrono::DateTime::parse_from_rfc3339("2026-09-30T10:00:00+08:00")
        .unwrap()
        .to_utc();
    let service = system.scheduling_client(Role::Service);
    let r = service
        .clone()
        .request_review(request("late-delivery", accepted))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.request_date, date(2026, 9, 30));
    assert_eq!(r.deadline, date(2026, 10, 13));
    assert_eq!(r.name, "reviews/late-delivery");
    // The same caller sending the same request gets the same review; anything else is refused.
    let again = service
        .clone()
        .request_review(request("late-delivery", accepted))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.name, r.name);
    let other_time = service
        .clone()
        .request_review(request(
            "late-delivery",
            accepted + chrono::Duration::days(1),
        ))
        .await
        .unwrap_err();
    assert_eq!(other_time.code(), Code::AlreadyExists);
    assert_eq!(error_reason(&other_time), "REQUEST_ID_REUSED");
    let other_caller = system
        .scheduling_client(Role::Office)
        .request_review(request("late-delivery", accepted))
        .await
        .unwrap_err();
    assert_eq!(error_reason(&other_caller), "REQUEST_ID_REUSED");

    let future = service
        .clone()
        .request_review(request(
            "from-the-future",
            chrono::Utc::now() + chrono::Duration::days(2),
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&future), ["accept_time"]);
    let mut missing = request("no-time", accepted);
    missing.accept_time = None;
    let missing = service.clone().request_review(missing).await.unwrap_err();
    assert_eq!(violated_fields(&missing), ["accept_time"]);
}

#[tokio::test]
async fn an_unreachable_registry_is_unavailable_to_the_caller_not_internal() {
    let mut system = spawn_system(no_witness()).await;
    seed_pool(&system).await;
    let p = submitted_project(&system).await;
    let p = accept(&system, &p, vec![software(2, 1)]).await.unwrap();
    system.deliver_projects_outbox().await;
    let r = confirm_all(&system, &the_review(&system, &p).await.name).await;
    system.registry_run.stop().await;
    let (start, end) = slot(&system, 0).await;
    let status = system
        .scheduling_client(Role::Office)
        .schedule_meeting(spb::ScheduleMeetingRequest {
            name: r.name.clone(),
            start_time: Some(start),
            end_time: Some(end),
            venue: "room 4".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(error_reason(&status), "PEER_UNAVAILABLE");
    system.restart_registry().await;
    system
        .scheduling_client(Role::Office)
        .schedule_meeting(spb::ScheduleMeetingRequest {
            name: r.name.clone(),
            start_time: Some(start),
            end_time: Some(end),
            venue: "room 4".into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn an_outcome_comes_only_from_the_projects_own_review() {
    let system = spawn_system(no_witness()).await;
    seed_pool(&system).await;
    let p = submitted_project(&system).await;
    let p = accept(&system, &p, vec![software(2, 1)]).await.unwrap();
    let status = system
        .projects_client(Role::Service)
        .record_review_outcome(pb::RecordReviewOutcomeRequest {
            name: p.name.clone(),
            review: "reviews/made-up".into(),
            stage: pb::ReviewStage::PreliminaryReview as i32,
            decision: pb::ReviewDecision::Approved as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&status), "REVIEW_MISMATCH");
    assert_eq!(
        get_project(&system, &p.name).await.state,
        S::UnderPreliminaryReview as i32
    );
}

#[tokio::test]
async fn office_replaces_a_panel_member_through_scheduling_and_both_services_agree() {
    let system = spawn_system(no_witness()).await;
    seed_pool(&system).await;
    let p = submitted_project(&system).await;
    let p = accept(&system, &p, vec![software(2, 1)]).await.unwrap();
    system.deliver_projects_outbox().await;
    let r = confirm_all(&system, &the_review(&system, &p).await.name).await;
    assert_eq!(r.state, spb::ReviewState::PanelConfirmed as i32);
    let leaving = r.invitations[0].clone();
    let replace = |client: SchedulingClient, explanation: &str| {
        let req = spb::ReplacePanelMemberRequest {
            name: leaving.name.clone(),
            reason: epb::ReplacementReason::ConflictDiscovered as i32,
            explanation: explanation.into(),
        };
        async move { client.clone().replace_panel_member(req).await }
    };
    for client in [
        system.scheduling_client(Role::Supervisor),
        system.scheduling_client(Role::Service),
        system.expert_client(&leaving.expert_id),
    ] {
        let denied = replace(client, "consults for the applicant")
            .await
            .unwrap_err();
        assert_eq!(denied.code(), Code::PermissionDenied);
    }
    let personal = replace(
        system.scheduling_client(Role::Office),
        "reported by Zhang San, 13812345678",
    )
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&personal), ["explanation"]);
    let withdrawn = replace(
        system.scheduling_client(Role::Office),
        "consults for the applicant",
    )
    .await
    .unwrap()
    .into_inner();
    assert_eq!(withdrawn.state, spb::InvitationState::Cancelled as i32);
    system.tick().await;
    let after = review(&system, &r.name).await;
    let draw = system
        .registry_client(Role::Inspector)
        .get_draw(epb::GetDrawRequest {
            name: leaving.draw.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    // The registry's panel and scheduling's invitations name the same people.
    let serving: Vec<&String> = draw.panel.iter().flat_map(|p| &p.selected).collect();
    let invited: Vec<&String> = after
        .invitations
        .iter()
        .filter(|i| {
            i.state == spb::InvitationState::Pending as i32
                || i.state == spb::InvitationState::Confirmed as i32
        })
        .map(|i| &i.expert_id)
        .collect();
    let mut serving_sorted = serving.clone();
    serving_sorted.sort();
    let mut invited_sorted = invited.clone();
    invited_sorted.sort();
    assert_eq!(serving_sorted, invited_sorted);
    assert!(!invited.contains(&&leaving.expert_id));
    assert_eq!(after.state, spb::ReviewState::Inviting as i32);
    assert_eq!(outbox_messages(system.scheduling.db()).await, (0, 0));
}

#[tokio::test]
async fn a_pool_that_shrank_after_acceptance_stalls_the_review_instead_of_losing_it() {
    let system = spawn_system(no_witness()).await;
    seed_pool(&system).await;
    let p = submitted_project(&system).await;
    let p = accept(&system, &p, vec![software(4, 1)]).await.unwrap();
    // Before the request reaches scheduling, three software experts are suspended.
    let admin = system.registry_client(Role::RegistryAdmin);
    for id in ["s01", "s02", "s03"] {
        let e = admin
            .clone()
            .get_expert(epb::GetExpertRequest {
                name: format!("experts/{id}"),
            })
            .await
            .unwrap()
            .into_inner();
        admin
            .clone()
            .suspend_expert(epb::SuspendExpertRequest {
                name: e.name,
                etag: e.etag,
                reason: "appointment under review".into(),
            })
            .await
            .unwrap();
    }
    system.deliver_projects_outbox().await;
    let r = the_review(&system, &p).await;
    assert_eq!(r.state, spb::ReviewState::Stalled as i32, "{r:?}");
    assert!(r.stall_reason.contains("software"), "{}", r.stall_reason);
    assert_eq!(r.name, p.review);
    assert_eq!(
        outbox_messages(system.projects.db()).await,
        (0, 0),
        "delivered, not parked"
    );
    // Office has a review to act on: a panel the pool can supply draws at once.
    let amended = system
        .scheduling_client(Role::Office)
        .amend_review_panel(spb::AmendReviewPanelRequest {
            name: r.name.clone(),
            panel: vec![software(2, 1)],
            reason: "three software experts were suspended".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(amended.state, spb::ReviewState::Inviting as i32);
}

#[tokio::test]
async fn text_one_service_accepts_is_never_refused_by_the_next() {
    let system = spawn_system(no_witness()).await;
    seed_pool(&system).await;
    let p = submitted_project(&system).await;
    let p = accept(&system, &p, vec![software(2, 1)]).await.unwrap();
    system.deliver_projects_outbox().await;
    let r = confirm_all(&system, &the_review(&system, &p).await.name).await;
    meet_and_give_opinions(&system, &r, 88).await;
    let chair = system.expert_client(&r.chair_expert_id);
    for bad in [
        "approved\u{b}",
        "approved\u{c}",
        "nul\u{0}",
        "approved\u{202e}",
    ] {
        let refused = chair
            .clone()
            .record_conclusion(spb::RecordConclusionRequest {
                request_id: String::new(),
                name: r.name.clone(),
                decision: spb::ReviewDecision::Approved as i32,
                summary: bad.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&refused), ["summary"], "{bad:?}");
    }
    chair
        .clone()
        .record_conclusion(spb::RecordConclusionRequest {
            request_id: String::new(),
            name: r.name.clone(),
            decision: spb::ReviewDecision::Approved as i32,
            summary: "approved\r\nwith two remarks\tand a tab".into(),
        })
        .await
        .unwrap();
    let refused = system
        .scheduling_client(Role::Office)
        .rate_expert(spb::RateExpertRequest {
            request_id: String::new(),
            name: r.name.clone(),
            expert_id: r.chair_expert_id.clone(),
            rating: 5,
            comment: "thorough\u{c}".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["comment"]);
    system
        .scheduling_client(Role::Office)
        .rate_expert(spb::RateExpertRequest {
            request_id: String::new(),
            name: r.name.clone(),
            expert_id: r.chair_expert_id.clone(),
            rating: 5,
            comment: "thorough\r\n".into(),
        })
        .await
        .unwrap();
    settle(&system).await;
    // What scheduling took, the projects service and the registry took too.
    assert_eq!(
        get_project(&system, &p.name).await.state,
        S::Approved as i32
    );
    assert_eq!(outbox_messages(system.scheduling.db()).await, (0, 0));
}

/// Drives the project's open review of `stage` through scheduling to `decision`: invitations
/// confirmed, the meeting `shift` hours after the next working day's 9:00, every member's
/// opinion with `scores`, the chair's conclusion, and the outcome delivered to the project.
async fn conclude_through_scheduling(
    system: &System,
    project: &pb::Project,
    stage: spb::ReviewStage,
    decision: spb::ReviewDecision,
    scores: Vec<spb::CriterionScore>,
    shift: i64,
) -> spb::Review {
    system.deliver_projects_outbox().await;
    let reviews = system
        .scheduling_client(Role::Office)
        .list_reviews(spb::ListReviewsRequest {
            project: project.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .reviews;
    let open: Vec<&spb::Review> = reviews
        .iter()
        .filter(|r| r.stage == stage as i32 && r.conclusion.is_none())
        .collect();
    assert_eq!(open.len(), 1, "one open {stage:?} review: {reviews:?}");
    let r = confirm_all(system, &open[0].name).await;
    let (start, end) = slot(system, shift).await;
    system
        .scheduling_client(Role::Office)
        .schedule_meeting(spb::ScheduleMeetingRequest {
            name: r.name.clone(),
            start_time: Some(start),
            end_time: Some(end),
            venue: "room 1".into(),
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
                scores: scores.clone(),
                opinion: "as found".into(),
                recommendation: decision as i32,
            })
            .await
            .unwrap();
    }
    system
        .expert_client(&r.chair_expert_id)
        .record_conclusion(spb::RecordConclusionRequest {
            request_id: String::new(),
            name: r.name.clone(),
            decision: decision as i32,
            summary: format!("{decision:?}"),
        })
        .await
        .unwrap();
    settle(system).await;
    r
}

fn scores(criteria: &[spb::ReviewCriterion], score: i32) -> Vec<spb::CriterionScore> {
    criteria
        .iter()
        .map(|c| spb::CriterionScore {
            criterion: *c as i32,
            score,
        })
        .collect()
}

/// The post-evaluation panel is a review like the others: requested when office starts it,
/// drawn and scored on the post-evaluation's three parts, and its outcome comes back to the
/// project, which stays in operation; the evaluation office then records cites it.
#[tokio::test]
async fn a_post_evaluation_panel_concludes_through_scheduling_and_the_evaluation_cites_it() {
    use spb::ReviewCriterion as C;
    let system = spawn_system_configured(
        no_witness(),
        govit_scheduling::SchedulingPolicy::default(),
        govit_projects::SupervisionPolicy {
            stable_operation_months: 0,
            ..Default::default()
        },
    )
    .await;
    seed_pool(&system).await;
    let office = system.projects_client(Role::Office);
    let applicant = system.projects_client(Role::Applicant);
    let p = submitted_project(&system).await;
    let p = accept(&system, &p, vec![software(2, 1)]).await.unwrap();
    conclude_through_scheduling(
        &system,
        &p,
        spb::ReviewStage::PreliminaryReview,
        spb::ReviewDecision::Approved,
        preliminary_scores(88),
        0,
    )
    .await;
    let p = get_project(&system, &p.name).await;
    assert_eq!(p.state, S::Approved as i32);

    let plan = upload(
        &applicant,
        &p.name,
        pb::DocumentKind::ImplementationPlan,
        0,
        b"%PDF plan",
        "",
    )
    .await
    .unwrap();
    let p = applicant
        .clone()
        .file_implementation_plan(pb::FileImplementationPlanRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            plan: Some(pb::ImplementationPlan {
                task_plan: "t".into(),
                system_design: "d".into(),
                equipment_selection: "e".into(),
                schedule: "s".into(),
                plan_document: plan.name,
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let p = office
        .clone()
        .record_implementation_plan(pb::RecordImplementationPlanRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            comment: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let p = applicant
        .clone()
        .start_tendering(pb::StartTenderingRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
        })
        .await
        .unwrap()
        .into_inner();
    let (contractor, firm, designer) = (credit_code(2), credit_code(3), credit_code(4));
    for (code, kind) in [
        (&contractor, pb::OrganizationKind::Contractor),
        (&firm, pb::OrganizationKind::SupervisionFirm),
        (&designer, pb::OrganizationKind::DesignFirm),
    ] {
        create_org(&office, code, kind).await;
    }
    let p = applicant
        .clone()
        .record_tender_result(pb::RecordTenderResultRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            result: Some(tender_result(&contractor, &firm, &designer, 100_000_000)),
        })
        .await
        .unwrap()
        .into_inner();
    let report = upload(
        &applicant,
        &p.name,
        pb::DocumentKind::AcceptanceReport,
        0,
        b"%PDF acceptance",
        "",
    )
    .await
    .unwrap();
    let p = applicant
        .clone()
        .request_acceptance(pb::RequestAcceptanceRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            acceptance_report: report.name,
        })
        .await
        .unwrap()
        .into_inner();
    let p = office
        .clone()
        .start_acceptance(pb::StartAcceptanceRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            panel: vec![software(2, 1)],
            participating_units: vec![org_name(&contractor), org_name(&firm)],
        })
        .await
        .unwrap()
        .into_inner();
    conclude_through_scheduling(
        &system,
        &p,
        spb::ReviewStage::Acceptance,
        spb::ReviewDecision::Passed,
        scores(
            &[C::Completeness, C::Quality, C::Documentation, C::UseOfFunds],
            85,
        ),
        3,
    )
    .await;
    let p = get_project(&system, &p.name).await;
    assert_eq!(p.state, S::Accepted as i32);
    let p = office
        .clone()
        .start_operation(pb::StartOperationRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            operation_start_date: None,
        })
        .await
        .unwrap()
        .into_inner();

    // A panel the registry cannot fill is refused before anything changes.
    let refused = office
        .clone()
        .start_post_evaluation_review(pb::StartPostEvaluationReviewRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag.clone(),
            panel: vec![software(40, 0)],
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert_eq!(error_reason(&refused), "INSUFFICIENT_EXPERTS");
    let p = office
        .clone()
        .start_post_evaluation_review(pb::StartPostEvaluationReviewRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            panel: vec![software(2, 1)],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.state, S::UnderPostEvaluation as i32);
    // The post-evaluation is scored on its own three parts, not the acceptance's.
    system.deliver_projects_outbox().await;
    let open = system
        .scheduling_client(Role::Office)
        .list_reviews(spb::ListReviewsRequest {
            project: p.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .reviews
        .into_iter()
        .find(|r| r.stage == spb::ReviewStage::PostEvaluation as i32)
        .unwrap();
    let r = confirm_all(&system, &open.name).await;
    let refused = system
        .expert_client(&r.invitations[0].expert_id)
        .submit_opinion(spb::SubmitOpinionRequest {
            request_id: String::new(),
            review: r.name.clone(),
            scores: scores(
                &[C::Completeness, C::Quality, C::Documentation, C::UseOfFunds],
                80,
            ),
            opinion: "as found".into(),
            recommendation: spb::ReviewDecision::Passed as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    let r = conclude_through_scheduling(
        &system,
        &p,
        spb::ReviewStage::PostEvaluation,
        spb::ReviewDecision::Passed,
        scores(&[C::Quality, C::OperatingState, C::InvestmentBenefit], 82),
        6,
    )
    .await;
    let p = get_project(&system, &p.name).await;
    assert_eq!(p.state, S::InOperation as i32, "the outcome came back");
    let evaluation_report = upload(
        &office,
        &p.name,
        pb::DocumentKind::EvaluationReport,
        0,
        b"%PDF evaluation",
        "",
    )
    .await
    .unwrap();
    let p = office
        .clone()
        .record_post_evaluation(evaluation(&p.name, &p.etag, &evaluation_report.name))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.state, S::PostEvaluated as i32);
    let e = p.post_evaluation.unwrap();
    assert_eq!(e.panel_review, r.name);
    assert_eq!(e.panel_decision, cpb::ReviewDecision::Passed as i32);
    assert_eq!(outbox_messages(system.projects.db()).await, (0, 0));
    assert_eq!(outbox_messages(system.scheduling.db()).await, (0, 0));
}
