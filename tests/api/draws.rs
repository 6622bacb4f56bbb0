//! Draws through the registry's API, checked as an inspector would check them.

use govit_experts::{DrawPolicy, WorkloadRule};
use govit_platform::Role;
use govit_proto::experts::v1::{self as epb};
use serde_json::Value;
use tonic::Code;

use crate::helpers::*;

/// A pool: software s01..s08, network n01..n05, and experts left out for each reason.
async fn pool(r: &Registry) {
    r.category("software").await;
    r.category("network").await;
    for i in 1..=8 {
        r.expert(expert(&format!("s{i:02}"), &["software"], 100 + i))
            .await;
    }
    for i in 1..=5 {
        r.expert(expert(&format!("n{i:02}"), &["network"], 200 + i))
            .await;
    }
    // Works for the applicant (credit code 1).
    r.expert(expert("x-employer", &["software"], 1)).await;
    // Declared a conflict with the applicant.
    let mut declared = expert("x-declared", &["software", "network"], 300);
    declared.conflicts = vec![epb::DeclaredConflict {
        credit_code: credit_code(1),
        reason: "former consultant".into(),
    }];
    r.expert(declared).await;
    // Appointment over before the meeting.
    let mut expired = expert("x-expired", &["network"], 301);
    expired.appointment_end_date = date(2026, 6, 30);
    r.expert(expired).await;
    // Away on the meeting day.
    let mut away = expert("x-away", &["software"], 302);
    away.unavailable_periods = vec![epb::UnavailablePeriod {
        start_date: date(2026, 12, 1),
        end_date: date(2026, 12, 5),
        reason: "leave".into(),
    }];
    r.expert(away).await;
    // Suspended.
    let s = r.expert(expert("x-suspended", &["network"], 303)).await;
    r.client(Role::RegistryAdmin)
        .suspend_expert(epb::SuspendExpertRequest {
            name: s.name,
            etag: s.etag,
            reason: "review".into(),
        })
        .await
        .unwrap();
}

fn request() -> epb::OpenDrawRequest {
    let mut req = open_request(
        "2026-0007",
        vec![requirement("software", 3, 2), requirement("network", 2, 1)],
    );
    req.excluded_organizations = vec![credit_code(1)];
    req.excluded_experts = vec![epb::ExcludedExpert {
        expert_id: "s08".into(),
        reason: "reviewed this unit's last project".into(),
    }];
    req
}

async fn record(r: &Registry, draw: &str) -> String {
    r.client(Role::Inspector)
        .get_draw_record(epb::GetDrawRecordRequest { name: draw.into() })
        .await
        .unwrap()
        .into_inner()
        .record_json
}

#[tokio::test]
async fn a_witnessed_draw_freezes_eligibility_and_reproduces_for_an_inspector() {
    let r = spawn_registry(DrawPolicy::default()).await;
    pool(&r).await;
    let office = r.client(Role::Office);
    let opened = office
        .clone()
        .open_draw(request())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(opened.state, epb::DrawState::Open as i32);
    assert!(opened.witness_required);
    let input: Value = serde_json::from_str(&opened.input_json).unwrap();
    assert_eq!(
        input["candidates"]["software"],
        serde_json::json!(["s01", "s02", "s03", "s04", "s05", "s06", "s07"])
    );
    assert_eq!(
        input["candidates"]["network"],
        serde_json::json!(["n01", "n02", "n03", "n04", "n05"])
    );
    let exclusions: Vec<(String, String, Vec<String>)> = input["exclusions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["category"].as_str().unwrap().to_owned(),
                e["expert_id"].as_str().unwrap().to_owned(),
                e["reasons"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_str().unwrap().to_owned())
                    .collect(),
            )
        })
        .collect();
    let expect = |c: &str, e: &str, reasons: &[&str]| {
        (
            c.to_owned(),
            e.to_owned(),
            reasons.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        exclusions,
        [
            expect("network", "x-declared", &["DECLARED_CONFLICT"]),
            expect("network", "x-expired", &["APPOINTMENT_EXPIRED"]),
            expect("network", "x-suspended", &["INACTIVE"]),
            expect("software", "s08", &["MANUAL"]),
            expect("software", "x-away", &["UNAVAILABLE"]),
            expect("software", "x-declared", &["DECLARED_CONFLICT"]),
            expect("software", "x-employer", &["EMPLOYER_CONFLICT"]),
        ]
    );

    // Without witness entropy the draw does not execute.
    let early = office
        .clone()
        .execute_draw(epb::ExecuteDrawRequest {
            name: opened.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(early.code(), Code::FailedPrecondition);
    let not_yet = r
        .client(Role::Inspector)
        .get_draw_record(epb::GetDrawRecordRequest {
            name: opened.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        not_yet.code(),
        Code::FailedPrecondition,
        "the secret stays secret until execution"
    );

    let witnessed = r
        .client(Role::Supervisor)
        .submit_witness_entropy(epb::SubmitWitnessEntropyRequest {
            name: opened.name.clone(),
            witness_entropy: "骰子 2-6-4".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(witnessed.state, epb::DrawState::Witnessed as i32);
    assert!(
        witnessed.input_json.is_empty() && witnessed.panel.is_empty(),
        "a supervisor sees no pool and no panel"
    );
    let second = r
        .client(Role::Inspector)
        .submit_witness_entropy(epb::SubmitWitnessEntropyRequest {
            name: opened.name.clone(),
            witness_entropy: "again".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(second.code(), Code::FailedPrecondition);

    let executed = office
        .clone()
        .execute_draw(epb::ExecuteDrawRequest {
            name: opened.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(executed.state, epb::DrawState::Executed as i32);
    assert_eq!(executed.outcome, epb::DrawOutcome::Executed as i32);
    let twice = office
        .clone()
        .execute_draw(epb::ExecuteDrawRequest {
            name: opened.name.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);
    // A drawn panel is never thrown away to draw again.
    let cancel = office
        .clone()
        .cancel_draw(epb::CancelDrawRequest {
            name: opened.name.clone(),
            reason: "did not like it".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(cancel.code(), Code::FailedPrecondition);

    let json = record(&r, &opened.name).await;
    let report = govit_draw::draw::verify(json.as_bytes()).expect("the record reproduces");
    assert!(report.checks.len() >= 5);
    let rec: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(rec["witness_entropy"], "骰子 2-6-4");
    let software = &executed
        .panel
        .iter()
        .find(|p| p.category == "software")
        .unwrap();
    assert_eq!(
        rec["result"]["software"]["selected"],
        serde_json::json!(software.selected)
    );
    assert_eq!(software.selected.len(), 3);
    assert_eq!(software.alternates.len(), 2);
    let hash =
        hex::encode(govit_draw::DrawRecord::hash(&serde_json::from_str(&json).unwrap()).unwrap());
    assert_eq!(hash, executed.record_hash);

    let counted = r
        .client(Role::RegistryAdmin)
        .get_expert(epb::GetExpertRequest {
            name: format!("experts/{}", software.selected[0]),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(counted.draws_count, 1);
}

#[tokio::test]
async fn who_was_drawn_is_confidential() {
    let r = spawn_registry(DrawPolicy {
        require_witness: false,
        ..DrawPolicy::default()
    })
    .await;
    pool(&r).await;
    let d = r
        .client(Role::Office)
        .open_draw(request())
        .await
        .unwrap()
        .into_inner();
    r.client(Role::Service)
        .execute_draw(epb::ExecuteDrawRequest {
            name: d.name.clone(),
        })
        .await
        .unwrap();
    for role in [Role::Applicant, Role::Expert] {
        let status = r
            .client(role)
            .get_draw(epb::GetDrawRequest {
                name: d.name.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{role}");
        let status = r
            .client(role)
            .get_draw_record(epb::GetDrawRecordRequest {
                name: d.name.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{role}");
        let status = r
            .client(role)
            .list_log_entries(epb::ListLogEntriesRequest::default())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{role}");
        let status = r.client(role).open_draw(request()).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{role}");
    }
    for role in [
        Role::Office,
        Role::RegistryAdmin,
        Role::Inspector,
        Role::Service,
    ] {
        let seen = r
            .client(role)
            .get_draw(epb::GetDrawRequest {
                name: d.name.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(seen.panel.len(), 2, "{role}");
    }
}

#[tokio::test]
async fn without_a_required_witness_a_draw_executes_at_once_with_empty_entropy() {
    let r = spawn_registry(DrawPolicy {
        require_witness: false,
        ..DrawPolicy::default()
    })
    .await;
    pool(&r).await;
    let d = r
        .client(Role::Service)
        .open_draw(request())
        .await
        .unwrap()
        .into_inner();
    assert!(!d.witness_required);
    r.client(Role::Service)
        .execute_draw(epb::ExecuteDrawRequest {
            name: d.name.clone(),
        })
        .await
        .unwrap();
    let json = record(&r, &d.name).await;
    assert!(govit_draw::draw::verify(json.as_bytes()).is_ok());
    assert_eq!(
        serde_json::from_str::<Value>(&json).unwrap()["witness_entropy"],
        ""
    );
}

#[tokio::test]
async fn a_decline_is_replaced_by_the_next_alternate_then_a_supplementary_draw_covers_the_rest() {
    let r = spawn_registry(DrawPolicy {
        require_witness: false,
        ..DrawPolicy::default()
    })
    .await;
    pool(&r).await;
    let office = r.client(Role::Office);
    let d = office
        .clone()
        .open_draw(request())
        .await
        .unwrap()
        .into_inner();
    let d = office
        .clone()
        .execute_draw(epb::ExecuteDrawRequest {
            name: d.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let network = d
        .panel
        .iter()
        .find(|p| p.category == "network")
        .unwrap()
        .clone();
    let leaving = network.selected[1].clone();
    let alternate = network.alternates[0].clone();
    // Replacements are review scheduling's (service) alone; office replaces through it.
    let runner = r.client(Role::Service);
    let denied = office
        .clone()
        .replace_expert(epb::ReplaceExpertRequest {
            name: d.name.clone(),
            category: "network".into(),
            expert_id: leaving.clone(),
            reason: epb::ReplacementReason::Declined as i32,
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let not_on_panel = runner
        .clone()
        .replace_expert(epb::ReplaceExpertRequest {
            name: d.name.clone(),
            category: "network".into(),
            expert_id: alternate.clone(),
            reason: epb::ReplacementReason::Declined as i32,
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    // Whether someone serves is the panel's state, not the request's shape.
    assert_eq!(not_on_panel.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&not_on_panel), "NOT_ON_PANEL");

    let replaced = runner
        .clone()
        .replace_expert(epb::ReplaceExpertRequest {
            name: d.name.clone(),
            category: "network".into(),
            expert_id: leaving.clone(),
            reason: epb::ReplacementReason::Declined as i32,
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let now = replaced
        .panel
        .iter()
        .find(|p| p.category == "network")
        .unwrap();
    assert_eq!(
        now.selected,
        [network.selected[0].clone(), alternate.clone()],
        "the alternate takes the place of who left"
    );
    assert!(now.alternates.is_empty());
    assert_eq!(now.replaced, std::slice::from_ref(&leaving));
    assert_eq!(replaced.replacements.len(), 1);
    assert_eq!(replaced.replacements[0].replacement_expert_id, alternate);
    // A second replacement of the same expert lost the race: a state conflict, named so.
    let lost = runner
        .clone()
        .replace_expert(epb::ReplaceExpertRequest {
            name: d.name.clone(),
            category: "network".into(),
            expert_id: leaving.clone(),
            reason: epb::ReplacementReason::Declined as i32,
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(lost.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&lost), "ALREADY_REPLACED");

    let log_before = r.log_size().await;
    let exhausted = runner
        .clone()
        .replace_expert(epb::ReplaceExpertRequest {
            name: d.name.clone(),
            category: "network".into(),
            expert_id: alternate.clone(),
            reason: epb::ReplacementReason::Unreachable as i32,
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(exhausted.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&exhausted), "ALTERNATES_EXHAUSTED");
    assert!(
        exhausted.message().contains("supplementary draw"),
        "{}",
        exhausted.message()
    );
    assert_eq!(
        r.log_size().await,
        log_before,
        "a refused replacement writes nothing"
    );

    let mut supplement = open_request("2026-0007", vec![requirement("network", 1, 0)]);
    supplement.supplements = d.name.clone();
    supplement.excluded_organizations = vec![credit_code(1)];
    let s = office
        .clone()
        .open_draw(supplement)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(s.supplements, d.name);
    let input: Value = serde_json::from_str(&s.input_json).unwrap();
    let already: Vec<&str> = input["exclusions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .any(|x| x == "ALREADY_DRAWN")
        })
        .map(|e| e["expert_id"].as_str().unwrap())
        .collect();
    let mut drawn = network.selected.clone();
    drawn.extend(network.alternates.clone());
    drawn.sort();
    assert_eq!(
        already,
        drawn.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn bad_draw_requests_get_field_violations_and_write_nothing() {
    let r = spawn_registry(DrawPolicy::default()).await;
    pool(&r).await;
    r.category("archives").await;
    let admin = r.client(Role::RegistryAdmin);
    admin
        .clone()
        .update_category(epb::UpdateCategoryRequest {
            category: Some(epb::Category {
                name: "categories/archives".into(),
                etag: "1".into(),
                active: false,
                ..Default::default()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["active".into()],
            }),
        })
        .await
        .unwrap();
    let before = (r.log_size().await, r.count("draws").await);
    let office = r.client(Role::Office);
    let mut bad = open_request(
        "2026-0007",
        vec![
            requirement("software", 0, 1),
            requirement("software", 2, 11),
            requirement("network", 1, 0),
        ],
    );
    bad.stage = 9;
    bad.meeting_date = None;
    let status = office.clone().open_draw(bad).await.unwrap_err();
    assert_eq!(
        violated_fields(&status),
        [
            "stage",
            "requirements[0].count",
            "requirements[1].category",
            "requirements[1].alternates",
            "meeting_date"
        ]
    );
    let status = office
        .clone()
        .open_draw(open_request(
            "2026-0007",
            vec![requirement("archives", 1, 0), requirement("ghost", 1, 0)],
        ))
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&status),
        ["requirements[0].category", "requirements[1].category"]
    );
    assert!(status.message().contains("inactive"));
    let status = office
        .clone()
        .open_draw(open_request(
            "2026-0007",
            vec![requirement("network", 7, 0)],
        ))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "more needed than eligible"
    );
    assert!(
        status.message().contains("network: 6 eligible, 7 needed"),
        "{}",
        status.message()
    );
    assert_eq!((r.log_size().await, r.count("draws").await), before);

    let d = office
        .clone()
        .open_draw(request())
        .await
        .unwrap()
        .into_inner();
    let long = "骰".repeat(342);
    let status = r
        .client(Role::Supervisor)
        .submit_witness_entropy(epb::SubmitWitnessEntropyRequest {
            name: d.name.clone(),
            witness_entropy: long,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["witness_entropy"]);
    let status = r
        .client(Role::Office)
        .submit_witness_entropy(epb::SubmitWitnessEntropyRequest {
            name: d.name.clone(),
            witness_entropy: "mine".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::PermissionDenied,
        "office does not witness its own draw"
    );
    let missing = office
        .clone()
        .execute_draw(epb::ExecuteDrawRequest {
            name: "draws/d-nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn a_cancelled_draw_stays_visible_and_an_open_request_id_is_idempotent() {
    let r = spawn_registry(DrawPolicy::default()).await;
    pool(&r).await;
    let office = r.client(Role::Office);
    let mut req = request();
    req.request_id = "review-17-panel".into();
    let first = office
        .clone()
        .open_draw(req.clone())
        .await
        .unwrap()
        .into_inner();
    let again = office.clone().open_draw(req).await.unwrap().into_inner();
    assert_eq!(first.name, again.name);
    let cancelled = office
        .clone()
        .cancel_draw(epb::CancelDrawRequest {
            name: first.name.clone(),
            reason: "meeting moved to next month".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.state, epb::DrawState::Cancelled as i32);
    let listed = office
        .clone()
        .list_draws(epb::ListDrawsRequest {
            project: "projects/2026-0007".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.draws.len(), 1);
    assert_eq!(listed.draws[0].cancel_reason, "meeting moved to next month");
    let entries = office
        .clone()
        .list_log_entries(epb::ListLogEntriesRequest {
            draw_id: first.draw_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    let kinds: Vec<Value> = entries
        .iter()
        .map(|e| serde_json::from_str::<Value>(&e.entry_json).unwrap()["type"].clone())
        .collect();
    assert_eq!(kinds, ["draw_opened", "draw_cancelled"]);
}

#[tokio::test]
async fn the_workload_rule_leaves_out_experts_drawn_too_often() {
    let r = spawn_registry(DrawPolicy {
        require_witness: false,
        workload: Some(WorkloadRule {
            max_selections: 1,
            days: 30,
        }),
        ..DrawPolicy::default()
    })
    .await;
    pool(&r).await;
    let office = r.client(Role::Office);
    let d = office
        .clone()
        .open_draw(open_request(
            "2026-0001",
            vec![requirement("network", 2, 0)],
        ))
        .await
        .unwrap()
        .into_inner();
    let d = office
        .clone()
        .execute_draw(epb::ExecuteDrawRequest { name: d.name })
        .await
        .unwrap()
        .into_inner();
    let busy = d.panel[0].selected.clone();
    let next = office
        .clone()
        .open_draw(open_request(
            "2026-0002",
            vec![requirement("network", 2, 0)],
        ))
        .await
        .unwrap()
        .into_inner();
    let input: Value = serde_json::from_str(&next.input_json).unwrap();
    for id in &busy {
        assert!(
            !input["candidates"]["network"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c == id.as_str())
        );
        assert!(
            input["exclusions"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["expert_id"] == id.as_str() && e["reasons"][0] == "WORKLOAD_LIMIT")
        );
    }
}
