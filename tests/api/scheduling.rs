//! Review scheduling: the working-day calendar against the published arrangements, meetings
//! without double-booking, the rules on invitations, opinions and conclusions, notifications.

use govit_experts::DrawPolicy;
use govit_platform::Role;
use govit_proto::{
    google::r#type::Date,
    projects::v1 as pb,
    scheduling::v1::{
        self as spb, review_scheduling_service_client::ReviewSchedulingServiceClient,
    },
};
use tokio_stream::StreamExt;
use tonic::Code;

use crate::{
    helpers::*,
    system::{
        accepted_for_review, confirm_all, preliminary_scores, schedule_in_slot, seed_pool, slot,
        the_review,
    },
};

fn d(year: i32, month: i32, day: i32) -> Option<Date> {
    Some(Date { year, month, day })
}

async fn add(system: &System, from: Option<Date>, days: i32) -> Result<Date, tonic::Status> {
    system
        .scheduling_client(Role::Applicant)
        .add_working_days(spb::AddWorkingDaysRequest { date: from, days })
        .await
        .map(|r| r.into_inner().date.unwrap())
}

#[tokio::test]
async fn deadlines_follow_the_published_2026_arrangement_make_up_weekends_included() {
    let system = spawn_system(DrawPolicy::default()).await;
    // Spring Festival (国办发明电〔2025〕7号): Saturday 14 February worked, 15–23 off.
    assert_eq!(
        add(&system, d(2026, 2, 13), 1).await.unwrap(),
        d(2026, 2, 14).unwrap()
    );
    assert_eq!(
        add(&system, d(2026, 2, 14), 1).await.unwrap(),
        d(2026, 2, 24).unwrap()
    );
    // National Day: Sunday 20 September worked; 1–7 October off; Saturday 10 October worked.
    assert_eq!(
        add(&system, d(2026, 9, 18), 1).await.unwrap(),
        d(2026, 9, 20).unwrap()
    );
    assert_eq!(
        add(&system, d(2026, 9, 30), 1).await.unwrap(),
        d(2026, 10, 8).unwrap()
    );
    assert_eq!(
        add(&system, d(2026, 10, 9), 1).await.unwrap(),
        d(2026, 10, 10).unwrap()
    );
    // The preliminary review's 5 working days from the eve of Labour Day (1–5 May off, 9 May
    // worked): 6, 7, 8, 9, 11 May.
    assert_eq!(
        add(&system, d(2026, 4, 30), 5).await.unwrap(),
        d(2026, 5, 11).unwrap()
    );
    let day = system
        .scheduling_client(Role::Office)
        .is_working_day(spb::IsWorkingDayRequest {
            date: d(2026, 2, 17),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!day.working_day);
    assert_eq!(day.name, "春节");
    assert_eq!(day.calendar_version, "2026v1");
    let between = system
        .scheduling_client(Role::Office)
        .working_days_between(spb::WorkingDaysBetweenRequest {
            start_date: d(2026, 2, 13),
            end_date: d(2026, 2, 28),
        })
        .await
        .unwrap()
        .into_inner();
    // 14 (Sat, worked), 24, 25, 26, 27 and 28 (Sat, worked).
    assert_eq!(between.working_days, 6);
    // A year without a calendar is refused, not guessed.
    let status = add(&system, d(2027, 3, 1), 5).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("2027"), "{}", status.message());
}

#[tokio::test]
async fn importing_a_year_is_checked_and_recomputes_open_deadlines() {
    let system = spawn_system(DrawPolicy::default()).await;
    let office = system.scheduling_client(Role::Office);
    let day = |date: Option<Date>, kind: spb::DayKind| spb::CalendarDay {
        date,
        kind: kind as i32,
        name: "test".into(),
    };
    let bad = office
        .clone()
        .import_calendar_year(spb::ImportCalendarYearRequest {
            request_id: String::new(),
            year: 2027,
            status: spb::CalendarStatus::Provisional as i32,
            source: "draft".into(),
            days: vec![
                day(d(2027, 1, 1), spb::DayKind::Holiday),
                spb::CalendarDay {
                    date: d(2027, 1, 4),
                    kind: 9,
                    name: String::new(),
                },
                day(d(2027, 1, 1), spb::DayKind::Holiday),
                day(d(2027, 1, 5), spb::DayKind::MakeupWorkday),
                day(d(2028, 1, 1), spb::DayKind::Holiday),
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&bad),
        [
            "days[1].kind",
            "days[2].date",
            "days[3].kind",
            "days[4].date"
        ]
    );
    assert_eq!(
        office
            .clone()
            .get_calendar_year(spb::GetCalendarYearRequest { year: 2027 })
            .await
            .unwrap_err()
            .code(),
        Code::NotFound,
        "nothing written"
    );
    let denied = system
        .scheduling_client(Role::Supervisor)
        .import_calendar_year(spb::ImportCalendarYearRequest {
            request_id: String::new(),
            year: 2027,
            status: 1,
            source: "x".into(),
            days: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let imported = office
        .clone()
        .import_calendar_year(spb::ImportCalendarYearRequest {
            request_id: String::new(),
            year: 2027,
            status: spb::CalendarStatus::Provisional as i32,
            source: "expected arrangement".into(),
            days: vec![day(d(2027, 1, 1), spb::DayKind::Holiday)],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (imported.version, imported.status),
        (1, spb::CalendarStatus::Provisional as i32)
    );
    assert_eq!(
        add(&system, d(2026, 12, 31), 1).await.unwrap(),
        d(2027, 1, 4).unwrap()
    );

    // An open review's deadline moves when its year is corrected, with an event saying so.
    seed_pool(&system).await;
    let p = accepted_for_review(
        &system,
        vec![pb::PanelRequirement {
            category: "software".into(),
            count: 2,
            alternates: 0,
        }],
    )
    .await;
    system.deliver_projects_outbox().await;
    let before = the_review(&system, &p).await;
    let deadline = govit_platform::time::date_from_proto(&before.deadline.unwrap()).unwrap();
    // The first working day after the request becomes a holiday.
    let mut extra = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .date_naive();
    loop {
        extra = extra.succ_opt().unwrap();
        let w = office
            .clone()
            .is_working_day(spb::IsWorkingDayRequest {
                date: Some(govit_platform::time::date_to_proto(extra)),
            })
            .await
            .unwrap()
            .into_inner();
        if w.working_day {
            break;
        }
    }
    assert!(extra <= deadline);
    let year = chrono::Datelike::year(&extra);
    let current = office
        .clone()
        .get_calendar_year(spb::GetCalendarYearRequest { year })
        .await
        .unwrap()
        .into_inner();
    let mut days = current.days;
    days.push(day(
        Some(govit_platform::time::date_to_proto(extra)),
        spb::DayKind::Holiday,
    ));
    let corrected = office
        .clone()
        .import_calendar_year(spb::ImportCalendarYearRequest {
            request_id: String::new(),
            year,
            status: spb::CalendarStatus::Official as i32,
            source: "corrected".into(),
            days,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(corrected.version, current.version + 1);
    let after = the_review(&system, &p).await;
    assert!(
        after
            .calendar_version
            .contains(&format!("{year}v{}", corrected.version)),
        "{}",
        after.calendar_version
    );
    let moved = govit_platform::time::date_from_proto(&after.deadline.unwrap()).unwrap();
    assert!(moved > deadline, "{moved} should be after {deadline}");
}

/// A review with a confirmed panel of `count` software experts, ready for its meeting.
async fn confirmed_review_of(system: &System, count: i32) -> (pb::Project, spb::Review) {
    let alternates = i32::from(count < 6);
    let p = accepted_for_review(
        system,
        vec![pb::PanelRequirement {
            category: "software".into(),
            count,
            alternates,
        }],
    )
    .await;
    system.deliver_projects_outbox().await;
    system.tick().await;
    let r = the_review(system, &p).await;
    let r = confirm_all(system, &r.name).await;
    assert_eq!(r.state, spb::ReviewState::PanelConfirmed as i32, "{r:?}");
    (p, r)
}

async fn confirmed_review(system: &System) -> (pb::Project, spb::Review) {
    confirmed_review_of(system, 2).await
}

#[tokio::test]
async fn meetings_keep_to_working_days_the_deadline_and_nobodys_double_booking() {
    let system = spawn_system(DrawPolicy {
        require_witness: false,
        ..DrawPolicy::default()
    })
    .await;
    seed_pool(&system).await;
    let (_, r) = confirmed_review(&system).await;
    let office = system.scheduling_client(Role::Office);
    let schedule = |name: String, start: prost_types::Timestamp, end: prost_types::Timestamp| {
        let mut office = office.clone();
        async move {
            office
                .schedule_meeting(spb::ScheduleMeetingRequest {
                    name,
                    start_time: Some(start),
                    end_time: Some(end),
                    venue: "room 3".into(),
                    ..Default::default()
                })
                .await
        }
    };
    let ts = |s: &str| {
        let t = chrono::DateTime::parse_from_rfc3339(s).unwrap();
        prost_types::Timestamp {
            seconds: t.timestamp(),
            nanos: 0,
        }
    };
    // A Sunday, a holiday, and a day after the deadline.
    let deadline = govit_platform::time::date_from_proto(&r.deadline.unwrap()).unwrap();
    let mut sunday = deadline;
    while chrono::Datelike::weekday(&sunday) != chrono::Weekday::Sun {
        sunday = sunday.pred_opt().unwrap();
    }
    if sunday > chrono::Utc::now().date_naive() {
        let s = format!("{sunday}T10:00:00+08:00");
        let e = format!("{sunday}T12:00:00+08:00");
        let status = schedule(r.name.clone(), ts(&s), ts(&e)).await.unwrap_err();
        assert_eq!(violated_fields(&status), ["start_time"]);
        assert!(
            status.message().contains("not a working day"),
            "{}",
            status.message()
        );
    }
    let late = deadline + chrono::Duration::days(7);
    let status = schedule(
        r.name.clone(),
        ts(&format!("{late}T10:00:00+08:00")),
        ts(&format!("{late}T12:00:00+08:00")),
    )
    .await
    .unwrap_err();
    assert!(violated_fields(&status).contains(&"start_time".to_string()));
    assert!(
        status.message().contains("after the review's deadline"),
        "{}",
        status.message()
    );
    let (start, end) = slot(&system, 0).await;
    let status = schedule(r.name.clone(), end, start).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["end_time"]);

    // A second review of five of the six software experts shares at least one with the first;
    // both race for the same slot, and exactly one wins.
    let (_, other) = confirmed_review_of(&system, 5).await;
    assert!(
        r.invitations
            .iter()
            .any(|i| other.invitations.iter().any(|o| o.expert_id == i.expert_id))
    );
    let (a, b) = tokio::join!(
        schedule(r.name.clone(), start, end),
        schedule(other.name.clone(), start, end)
    );
    assert_eq!(
        [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count(),
        1,
        "{a:?} {b:?}"
    );
    let winner = if a.is_ok() {
        r.name.clone()
    } else {
        other.name.clone()
    };
    let loser = a.err().or(b.err()).unwrap();
    assert_eq!(loser.code(), Code::FailedPrecondition);
    assert!(
        loser.message().contains("already booked"),
        "{}",
        loser.message()
    );
    // Moving a scheduled meeting needs a reason; with one, it moves.
    let (start2, end2) = slot(&system, 4).await;
    let status = schedule(winner.clone(), start2, end2).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["reason"]);
    let moved = office
        .clone()
        .schedule_meeting(spb::ScheduleMeetingRequest {
            name: winner.clone(),
            start_time: Some(start2),
            end_time: Some(end2),
            venue: "room 5".into(),
            reason: "room 3 flooded".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let meeting = moved.meeting.unwrap();
    assert_eq!(
        (meeting.start_time, meeting.change_reason.as_str()),
        (Some(start2), "room 3 flooded")
    );
    // The old slot is free again for the other review.
    let other_name = if winner == r.name {
        other.name.clone()
    } else {
        r.name.clone()
    };
    schedule(other_name, start, end).await.unwrap();
    // Cancelling needs a reason too; a cancelled meeting frees its experts and tells them.
    let status = office
        .clone()
        .cancel_meeting(spb::CancelMeetingRequest {
            name: winner.clone(),
            reason: " ".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["reason"]);
    let cancelled = office
        .clone()
        .cancel_meeting(spb::CancelMeetingRequest {
            name: winner.clone(),
            reason: "the applicant withdrew".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        cancelled.meeting.unwrap().state,
        spb::MeetingState::Cancelled as i32
    );
    let again = office
        .clone()
        .cancel_meeting(spb::CancelMeetingRequest {
            name: winner.clone(),
            reason: "twice".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    schedule(winner.clone(), start2, end2).await.unwrap();
}

#[tokio::test]
async fn invitations_opinions_and_conclusions_keep_their_rules() {
    let system = spawn_system(DrawPolicy {
        require_witness: false,
        ..DrawPolicy::default()
    })
    .await;
    seed_pool(&system).await;
    let p = accepted_for_review(
        &system,
        vec![pb::PanelRequirement {
            category: "software".into(),
            count: 2,
            alternates: 1,
        }],
    )
    .await;
    system.deliver_projects_outbox().await;
    system.tick().await;
    let r = the_review(&system, &p).await;
    let invited = &r.invitations[0];
    let candidates = ["s01", "s02", "s03", "s04", "s05", "s06"];
    let stranger = *candidates
        .iter()
        .find(|c| r.invitations.iter().all(|i| &i.expert_id != *c))
        .unwrap();
    // An expert not invited, and an expert answering for someone else.
    {
        let status = system
            .expert_client(stranger)
            .respond_to_invitation(spb::RespondToInvitationRequest {
                name: format!("{}/invitations/{stranger}", r.name),
                accept: true,
                decline_reason: String::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
    }
    let status = system
        .expert_client(stranger)
        .respond_to_invitation(spb::RespondToInvitationRequest {
            name: invited.name.clone(),
            accept: true,
            decline_reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = system
        .expert_client(&invited.expert_id)
        .respond_to_invitation(spb::RespondToInvitationRequest {
            name: invited.name.clone(),
            accept: false,
            decline_reason: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["decline_reason"]);

    // The applicant sees the review but not the panel before the meeting starts.
    let seen = system
        .scheduling_client(Role::Applicant)
        .get_review(spb::GetReviewRequest {
            name: r.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        seen.invitations.is_empty() && seen.draws.is_empty() && seen.chair_expert_id.is_empty()
    );

    let r = confirm_all(&system, &r.name).await;
    let (start, end) = slot(&system, 0).await;
    system
        .scheduling_client(Role::Office)
        .schedule_meeting(spb::ScheduleMeetingRequest {
            name: r.name.clone(),
            start_time: Some(start),
            end_time: Some(end),
            online_link: "https://meet.example/r".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let member = &r.invitations[0].expert_id;
    let mut bad_scores = preliminary_scores(80);
    bad_scores[0].score = 101;
    bad_scores.pop();
    let status = system
        .expert_client(member)
        .submit_opinion(spb::SubmitOpinionRequest {
            request_id: String::new(),
            review: r.name.clone(),
            scores: bad_scores,
            opinion: "x".into(),
            recommendation: spb::ReviewDecision::Passed as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&status),
        ["scores[0].score", "scores", "recommendation"]
    );
    // Criteria are the enum's, and only the stage's: acceptance's, an unset one, an unknown
    // number and a repeat are each refused, naming the criterion.
    let mut wrong_criteria = preliminary_scores(80);
    wrong_criteria[0].criterion = spb::ReviewCriterion::Completeness as i32;
    wrong_criteria[1].criterion = spb::ReviewCriterion::Unspecified as i32;
    wrong_criteria[2].criterion = 99;
    wrong_criteria[4].criterion = wrong_criteria[3].criterion;
    let status = system
        .expert_client(member)
        .submit_opinion(spb::SubmitOpinionRequest {
            request_id: String::new(),
            review: r.name.clone(),
            scores: wrong_criteria,
            opinion: "x".into(),
            recommendation: spb::ReviewDecision::Approved as i32,
        })
        .await
        .unwrap_err();
    let violations = govit_platform::error::field_violations(&status);
    let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "scores[0].criterion",
            "scores[1].criterion",
            "scores[2].criterion",
            "scores[4].criterion",
            "scores",
            "scores",
            "scores",
            "scores",
        ]
    );
    assert!(
        violations[0]
            .description
            .contains("REVIEW_CRITERION_NECESSITY, REVIEW_CRITERION_FEASIBILITY"),
        "{violations:?}"
    );
    assert_eq!(violations[3].description, "appears twice");
    assert_eq!(
        violations[4].description,
        "no score for REVIEW_CRITERION_NECESSITY"
    );
    // The conclusion waits for every confirmed member's opinion, and only the chair gives it.
    let status = system
        .expert_client(&r.chair_expert_id)
        .record_conclusion(spb::RecordConclusionRequest {
            request_id: String::new(),
            name: r.name.clone(),
            decision: spb::ReviewDecision::Approved as i32,
            summary: "ok".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    for i in &r.invitations {
        system
            .expert_client(&i.expert_id)
            .submit_opinion(spb::SubmitOpinionRequest {
                request_id: String::new(),
                review: r.name.clone(),
                scores: preliminary_scores(90),
                opinion: "good".into(),
                recommendation: spb::ReviewDecision::Approved as i32,
            })
            .await
            .unwrap();
    }
    let twice = system
        .expert_client(member)
        .submit_opinion(spb::SubmitOpinionRequest {
            request_id: String::new(),
            review: r.name.clone(),
            scores: preliminary_scores(90),
            opinion: "again".into(),
            recommendation: spb::ReviewDecision::Approved as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::AlreadyExists);
    let not_chair = r
        .invitations
        .iter()
        .find(|i| i.expert_id != r.chair_expert_id)
        .unwrap();
    let status = system
        .expert_client(&not_chair.expert_id)
        .record_conclusion(spb::RecordConclusionRequest {
            request_id: String::new(),
            name: r.name.clone(),
            decision: spb::ReviewDecision::Approved as i32,
            summary: "ok".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = system
        .expert_client(&r.chair_expert_id)
        .record_conclusion(spb::RecordConclusionRequest {
            request_id: String::new(),
            name: r.name.clone(),
            decision: spb::ReviewDecision::Passed as i32,
            summary: "ok".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&status),
        ["decision"],
        "PASSED belongs to acceptance"
    );
    let done = system
        .expert_client(&r.chair_expert_id)
        .record_conclusion(spb::RecordConclusionRequest {
            request_id: String::new(),
            name: r.name.clone(),
            decision: spb::ReviewDecision::Approved as i32,
            summary: "sound".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.conclusion.unwrap().overall_average_centi, 9000);
    let second = system
        .expert_client(&r.chair_expert_id)
        .record_conclusion(spb::RecordConclusionRequest {
            request_id: String::new(),
            name: r.name.clone(),
            decision: spb::ReviewDecision::Rejected as i32,
            summary: "no".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(second.code(), Code::FailedPrecondition);
    // Concluded on written opinions before the meeting's time: the applicant still sees no
    // names, and a supervisor never does; an inspector does.
    for (role, names) in [
        (Role::Applicant, 0),
        (Role::Supervisor, 0),
        (Role::Inspector, 2),
    ] {
        let seen = system
            .scheduling_client(role)
            .get_review(spb::GetReviewRequest {
                name: r.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(seen.invitations.len(), names, "{role}");
        assert_eq!(seen.state, spb::ReviewState::Concluded as i32);
    }
    // Another organisation's applicant does not see the review at all.
    let stranger = ReviewSchedulingServiceClient::with_interceptor(
        govit_platform::client::lazy_channel(&system.urls()[2], None).unwrap(),
        govit_platform::client::BearerToken::new(&token(
            Role::Applicant,
            Some(&credit_code(77)),
            None,
        ))
        .unwrap(),
    )
    .get_review(spb::GetReviewRequest {
        name: r.name.clone(),
    })
    .await
    .unwrap_err();
    assert_eq!(stranger.code(), Code::PermissionDenied);
    let status = system
        .scheduling_client(Role::Supervisor)
        .list_reviews(spb::ListReviewsRequest {
            state: 99,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["state"]);
}

#[tokio::test]
async fn a_gateway_receives_notifications_until_it_acknowledges_them_across_restarts() {
    let mut system = spawn_system(DrawPolicy {
        require_witness: false,
        ..DrawPolicy::default()
    })
    .await;
    seed_pool(&system).await;
    let p = accepted_for_review(
        &system,
        vec![pb::PanelRequirement {
            category: "network".into(),
            count: 2,
            alternates: 0,
        }],
    )
    .await;
    system.deliver_projects_outbox().await;
    system.tick().await;
    let r = the_review(&system, &p).await;
    assert_eq!(r.invitations.len(), 2);
    let denied = system
        .scheduling_client(Role::Office)
        .stream_notifications(spb::StreamNotificationsRequest {})
        .await;
    assert_eq!(denied.err().map(|s| s.code()), Some(Code::PermissionDenied));

    let read_two = |system: &System| {
        let mut gateway = system.scheduling_client(Role::Service);
        async move {
            let mut stream = gateway
                .stream_notifications(spb::StreamNotificationsRequest {})
                .await
                .unwrap()
                .into_inner();
            let mut got = Vec::new();
            while got.len() < 2 {
                got.push(stream.next().await.unwrap().unwrap());
            }
            got
        }
    };
    let first = read_two(&system).await;
    assert!(first.iter().all(|n| n.channel == spb::Channel::Sms as i32
        && n.text.contains("invited")
        && n.recipient.starts_with("experts/")));
    assert!(
        first.iter().all(|n| !n.text.contains("1381234")),
        "no phone numbers in notifications"
    );
    system
        .scheduling_client(Role::Service)
        .acknowledge_notification(spb::AcknowledgeNotificationRequest {
            name: first[0].name.clone(),
        })
        .await
        .unwrap();

    // After a restart the unacknowledged one comes again, the acknowledged one does not.
    system.restart_scheduling().await;
    let mut gateway = system.scheduling_client(Role::Service);
    let mut stream = gateway
        .stream_notifications(spb::StreamNotificationsRequest {})
        .await
        .unwrap()
        .into_inner();
    let again = stream.next().await.unwrap().unwrap();
    assert_eq!(again.name, first[1].name);
    // A decline makes more: the replacement's invitation arrives on the open stream.
    let decliner = r.invitations[0].clone();
    system
        .expert_client(&decliner.expert_id)
        .respond_to_invitation(spb::RespondToInvitationRequest {
            name: decliner.name.clone(),
            accept: false,
            decline_reason: "ill".into(),
        })
        .await
        .unwrap();
    system.tick().await;
    let next = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(
        next.text.contains("invited") || next.text.contains("replaced"),
        "{next:?}"
    );
}

#[tokio::test]
async fn unanswered_invitations_lapse_to_the_alternates_then_to_a_supplementary_draw() {
    // No time to answer at all: every invitation lapses on the next pass.
    let policy = govit_scheduling::SchedulingPolicy {
        response_hours: 0,
        ..Default::default()
    };
    let system = spawn_system_with(
        DrawPolicy {
            require_witness: false,
            ..DrawPolicy::default()
        },
        policy,
    )
    .await;
    seed_pool(&system).await;
    let p = accepted_for_review(
        &system,
        vec![pb::PanelRequirement {
            category: "network".into(),
            count: 1,
            alternates: 1,
        }],
    )
    .await;
    system.deliver_projects_outbox().await;
    let r = the_review(&system, &p).await;
    assert_eq!(r.invitations.len(), 1, "invited at once");
    let first = r.invitations[0].expert_id.clone();
    // With no time to answer, each pass lapses whoever is pending and hands the place on.
    system.tick().await; // the first lapses; its replacement is queued
    system.tick().await; // the alternate is invited, and lapses in turn
    let r = the_review(&system, &p).await;
    let states: Vec<(String, i32)> = r
        .invitations
        .iter()
        .map(|i| (i.expert_id.clone(), i.state))
        .collect();
    assert_eq!(states.len(), 2, "{states:?}");
    assert_eq!(
        states[0],
        (first.clone(), spb::InvitationState::Lapsed as i32)
    );
    assert_eq!(states[1].1, spb::InvitationState::Lapsed as i32);
    assert_eq!(r.draws.len(), 1);
    system.tick().await; // alternates used up: a supplementary draw, excluding both
    let r = the_review(&system, &p).await;
    assert_eq!(r.draws.len(), 2, "{r:?}");
    assert_eq!(r.invitations.len(), 3);
    let third = &r.invitations[2];
    assert_eq!(third.draw, r.draws[1]);
    assert!(
        r.invitations[..2]
            .iter()
            .all(|i| i.expert_id != third.expert_id)
    );
    let supplement = system
        .registry_client(Role::Inspector)
        .get_draw(govit_proto::experts::v1::GetDrawRequest {
            name: r.draws[1].clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(supplement.supplements, r.draws[0]);
    assert!(supplement.input_json.contains("ALREADY_DRAWN"));
    // Reminders went out before the deadlines (by voice), and the office heard of the swap.
    let mut gateway = system.scheduling_client(Role::Service);
    let mut stream = gateway
        .stream_notifications(spb::StreamNotificationsRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut kinds = Vec::new();
    while let Ok(Some(Ok(n))) =
        tokio::time::timeout(std::time::Duration::from_millis(300), stream.next()).await
    {
        kinds.push((n.channel, n.recipient));
    }
    assert!(
        kinds.iter().any(|(c, _)| *c == spb::Channel::Voice as i32),
        "{kinds:?}"
    );
    assert!(kinds.iter().any(|(_, r)| r == "office"), "{kinds:?}");
}

#[tokio::test]
async fn office_imports_a_year_from_a_csv_with_the_cli() {
    let system = spawn_system(DrawPolicy::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("2028.csv");
    std::fs::write(
        &file,
        "date,kind,name\n2028-01-01,HOLIDAY,元旦\n2028-01-29,MAKEUP_WORKDAY,春节\n",
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_govit"))
        .args([
            "calendar",
            "import",
            file.to_str().unwrap(),
            "--year",
            "2028",
            "--status",
            "provisional",
            "--source",
            "expected",
            "--server",
            &system.urls()[2],
        ])
        .env("GOVIT_JWT_HS256_KEY", std::str::from_utf8(KEY).unwrap())
        .env_remove("GOVIT_TOKEN")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("2028: version 1, 2 days"));
    let y = system
        .scheduling_client(Role::Office)
        .get_calendar_year(spb::GetCalendarYearRequest { year: 2028 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(y.status, spb::CalendarStatus::Provisional as i32);
    // Saturday 29 January 2028 is worked.
    assert_eq!(
        add(&system, d(2028, 1, 28), 1).await.unwrap(),
        d(2028, 1, 29).unwrap()
    );
    std::fs::write(&file, "2028-02-30,HOLIDAY,x\n").unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_govit"))
        .args([
            "calendar",
            "import",
            file.to_str().unwrap(),
            "--year",
            "2028",
            "--status",
            "official",
            "--source",
            "x",
            "--server",
            &system.urls()[2],
        ])
        .env("GOVIT_JWT_HS256_KEY", std::str::from_utf8(KEY).unwrap())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("line 1"));
}

#[tokio::test]
async fn rectification_deadlines_count_working_days_on_the_holiday_calendar() {
    let system = spawn_system(DrawPolicy::default()).await;
    let p = system
        .projects_client(Role::Applicant)
        .create_project(pb::CreateProjectRequest {
            request_id: String::new(),
            project: Some(new_project(&system.applicant_code)),
        })
        .await
        .unwrap()
        .into_inner();
    backdate_project(system.projects.db(), &p.name).await;
    let inspection = system
        .projects_client(Role::Office)
        .create_inspection(pb::CreateInspectionRequest {
            request_id: String::new(),
            parent: p.name.clone(),
            inspection: Some(pb::Inspection {
                inspection_date: d(2026, 9, 30),
                scopes: vec![pb::InspectionScope::Progress as i32],
                findings: vec![pb::Finding {
                    description: "schedule slipping".into(),
                    severity: pb::FindingSeverity::Medium as i32,
                    rectification_required: "recovery plan".into(),
                    deadline_working_days: 1,
                    ..Default::default()
                }],
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    // One working day after 30 September 2026 is 8 October: 1–7 October are the National Day
    // holiday (Monday to Friday alone would have said 1 October).
    assert_eq!(inspection.findings[0].due_date, d(2026, 10, 8));
}

#[tokio::test]
async fn a_panel_the_registry_would_refuse_is_refused_before_any_review_exists() {
    let system = spawn_system(DrawPolicy::default()).await;
    seed_pool(&system).await;
    // More alternates than the registry allows (10 by default), and a category it lacks.
    let status = system
        .scheduling_client(Role::Office)
        .request_review(spb::RequestReviewRequest {
            review_id: "office-request-1".into(),
            project: "projects/2026-0099".into(),
            stage: spb::ReviewStage::PreliminaryReview as i32,
            panel: vec![spb::PanelRequirement {
                category: "software".into(),
                count: 2,
                alternates: 11,
            }],
            accept_time: Some(govit_platform::time::to_timestamp(chrono::Utc::now())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["panel[0].alternates"]);
    assert_eq!(error_reason(&status), "INVALID_ARGUMENT");
    let status = system
        .scheduling_client(Role::Office)
        .request_review(spb::RequestReviewRequest {
            review_id: "office-request-1".into(),
            project: "projects/2026-0099".into(),
            stage: spb::ReviewStage::PreliminaryReview as i32,
            panel: vec![
                spb::PanelRequirement {
                    category: "software".into(),
                    count: 2,
                    alternates: 1,
                },
                spb::PanelRequirement {
                    category: "no-such-category".into(),
                    count: 1,
                    alternates: 0,
                },
            ],
            accept_time: Some(govit_platform::time::to_timestamp(chrono::Utc::now())),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["panel[1].category"]);
    let listed = system
        .scheduling_client(Role::Office)
        .list_reviews(spb::ListReviewsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.reviews.is_empty(), "nothing was created");
}

/// The meeting reminders the gateway has been sent so far.
async fn meeting_reminders(system: &System) -> Vec<String> {
    let mut stream = system
        .scheduling_client(Role::Service)
        .stream_notifications(spb::StreamNotificationsRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut reminders = Vec::new();
    while let Ok(Some(Ok(n))) =
        tokio::time::timeout(std::time::Duration::from_millis(300), stream.next()).await
    {
        if n.text.starts_with("Reminder: the review meeting") {
            assert_eq!(n.channel, spb::Channel::Sms as i32);
            reminders.push(n.recipient);
        }
    }
    reminders.sort();
    reminders
}

/// Makes the review's meeting start `from_now`, as the clock would.
async fn meeting_starts_in(system: &System, review: &str, from_now: chrono::Duration) {
    let soon = govit_platform::time::to_stored(chrono::Utc::now() + from_now);
    sqlx::query("UPDATE reviews SET meeting_start = $1 WHERE id = $2")
        .bind(soon)
        .bind(review.trim_start_matches("reviews/").to_owned())
        .execute(&system.scheduling.db().pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn experts_are_reminded_of_their_meeting_once_and_again_when_it_moves() {
    let system = spawn_system(DrawPolicy {
        require_witness: false,
        ..DrawPolicy::default()
    })
    .await;
    seed_pool(&system).await;
    let (_, r) = confirmed_review(&system).await;
    let panel: Vec<String> = {
        let mut p: Vec<String> = r
            .invitations
            .iter()
            .filter(|i| i.state == spb::InvitationState::Confirmed as i32)
            .map(|i| format!("experts/{}", i.expert_id))
            .collect();
        p.sort();
        p
    };
    assert_eq!(panel.len(), 2);
    let office = system.scheduling_client(Role::Office);
    schedule_in_slot(&system, &r.name, 0, "room 3", "").await;
    // A meeting more than a day away is not reminded of yet.
    meeting_starts_in(&system, &r.name, chrono::Duration::days(3)).await;
    system.tick().await;
    assert_eq!(meeting_reminders(&system).await, Vec::<String>::new());

    meeting_starts_in(&system, &r.name, chrono::Duration::hours(2)).await;
    let meeting = |office: ReviewSchedulingServiceClient<_>| {
        let name = r.name.clone();
        let mut office = office;
        async move {
            office
                .get_review(spb::GetReviewRequest { name })
                .await
                .unwrap()
                .into_inner()
                .meeting
        }
    };
    let before = meeting(office.clone()).await;
    system.tick().await;
    system.tick().await;
    assert_eq!(meeting_reminders(&system).await, panel, "once per expert");
    assert_eq!(
        meeting(office.clone()).await,
        before,
        "the reminder is not part of the meeting"
    );

    // Moved, the meeting is reminded of afresh.
    schedule_in_slot(&system, &r.name, 3, "room 5", "room 3 flooded").await;
    meeting_starts_in(&system, &r.name, chrono::Duration::hours(2)).await;
    system.tick().await;
    let both: Vec<String> = {
        let mut b = [panel.clone(), panel.clone()].concat();
        b.sort();
        b
    };
    assert_eq!(meeting_reminders(&system).await, both);
}

#[tokio::test]
async fn a_year_lists_its_festivals_weekend_days_as_the_working_day_query_names_them() {
    let mut system = spawn_system(DrawPolicy::default()).await;
    let national_day_sunday = Some(Date {
        year: 2026,
        month: 10,
        day: 4,
    });
    let listed = |year: spb::CalendarYear| {
        year.days
            .into_iter()
            .find(|d| d.date == national_day_sunday)
            .map(|d| (d.kind, d.name))
    };
    let year = system
        .scheduling_client(Role::Applicant)
        .get_calendar_year(spb::GetCalendarYearRequest { year: 2026 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed(year),
        Some((spb::DayKind::Holiday as i32, "国庆节".to_owned()))
    );
    let day = system
        .scheduling_client(Role::Applicant)
        .is_working_day(spb::IsWorkingDayRequest {
            date: national_day_sunday,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (day.working_day, day.kind, day.name.as_str()),
        (false, spb::DayKind::Holiday as i32, "国庆节")
    );
    // A database seeded before the weekend days were listed gets them at its next start,
    // without a new calendar version: no working day changed.
    sqlx::query("DELETE FROM calendar_days WHERE day = '2026-10-04'")
        .execute(&system.scheduling.db().pool)
        .await
        .unwrap();
    system.restart_scheduling().await;
    let year = system
        .scheduling_client(Role::Applicant)
        .get_calendar_year(spb::GetCalendarYearRequest { year: 2026 })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(year.version, 1);
    assert_eq!(
        listed(year),
        Some((spb::DayKind::Holiday as i32, "国庆节".to_owned()))
    );
}

#[tokio::test]
async fn a_calendar_import_resent_with_its_request_id_makes_one_version() {
    let system = spawn_system(DrawPolicy::default()).await;
    let office = system.scheduling_client(Role::Office);
    let import = |request_id: &str| spb::ImportCalendarYearRequest {
        request_id: request_id.into(),
        year: 2028,
        status: spb::CalendarStatus::Provisional as i32,
        source: "expected arrangement".into(),
        days: vec![spb::CalendarDay {
            date: d(2028, 1, 3),
            kind: spb::DayKind::Holiday as i32,
            name: "New Year".into(),
        }],
    };
    let first = office
        .clone()
        .import_calendar_year(import("calendar-2028"))
        .await
        .unwrap()
        .into_inner();
    let resent = office
        .clone()
        .import_calendar_year(import("calendar-2028"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resent, first, "the first import's answer, no new version");
    let plain = office
        .clone()
        .import_calendar_year(import(""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (first.version, plain.version),
        (1, 2),
        "without the id, importing again is a new version"
    );
}

/// The worker's own wake-up, without the test helper that wakes every waiting review: a
/// review that needs the worker is due at once, one pass takes it as far as it goes, and a
/// review with nothing pending sleeps until an event wakes it.
#[tokio::test]
async fn a_requested_review_is_due_at_once_and_sleeps_once_nothing_is_pending() {
    let system = spawn_system(DrawPolicy {
        require_witness: false,
        ..DrawPolicy::default()
    })
    .await;
    seed_pool(&system).await;
    let p = accepted_for_review(
        &system,
        vec![pb::PanelRequirement {
            category: "software".into(),
            count: 2,
            alternates: 0,
        }],
    )
    .await;
    system.deliver_projects_outbox().await;
    let wake_at = || async {
        sqlx::query_scalar::<_, Option<String>>("SELECT wake_at FROM reviews")
            .fetch_one(&system.scheduling.db().pool)
            .await
            .unwrap()
    };
    assert_eq!(wake_at().await.as_deref(), Some(""), "due at once");
    system.scheduling.tick().await.unwrap();
    let r = the_review(&system, &p).await;
    assert_eq!(r.state, spb::ReviewState::Inviting as i32, "{r:?}");
    assert_eq!(r.invitations.len(), 2, "drawn and invited in one pass");
    assert_eq!(wake_at().await, None, "nothing pending: asleep");
    // A pass with nothing due changes nothing.
    system.scheduling.tick().await.unwrap();
    assert_eq!(the_review(&system, &p).await, r);
}
