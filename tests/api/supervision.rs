//! Supervision: the budget line and the disbursement line at and around their edges, variance
//! against hand-computed figures, frozen snapshots, inspections, notices, and who may do what.

use govit_platform::Role;
use govit_proto::projects::v1::{self as pb, ProjectState as S};
use tonic::Code;

use crate::helpers::*;

fn change(parent: &str, to: i64) -> pb::CreateBudgetChangeRequest {
    pb::CreateBudgetChangeRequest {
        request_id: String::new(),
        parent: parent.into(),
        requested_budget_fen: to,
        reason: "added a disaster-recovery site".into(),
        funding_source: pb::FundingSource::CityBudget as i32,
    }
}

fn disbursement(amount: i64) -> pb::Disbursement {
    pb::Disbursement {
        amount_fen: amount,
        payment_date: date(2026, 3, 15),
        payee: "Tianshan Systems Co.".into(),
        purpose: "first instalment".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn approval_fixes_the_budget_and_every_change_is_a_new_baseline() {
    let app = spawn_app().await;
    let p = under_construction(&app).await;
    assert_eq!(
        (p.approved_budget_fen, p.original_approved_budget_fen),
        (125_000_000, 125_000_000)
    );
    let office = app.client(Role::Office);
    let applicant = app.client(Role::Applicant);

    // Exactly 10% above the original: office alone may approve.
    let at_line = applicant
        .clone()
        .create_budget_change(change(&p.name, 137_500_000))
        .await
        .unwrap()
        .into_inner();
    assert!(!at_line.requires_higher_approval);
    let approved = office
        .clone()
        .approve_budget_change(pb::ApproveBudgetChangeRequest {
            name: at_line.name.clone(),
            comment: "ok".into(),
            higher_approval: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(approved.state, pb::BudgetChangeState::Approved as i32);
    assert_eq!(get(&app, &p.name).await.approved_budget_fen, 137_500_000);

    // One fen more: flagged, and office alone cannot approve it.
    let over = applicant
        .clone()
        .create_budget_change(change(&p.name, 137_500_001))
        .await
        .unwrap()
        .into_inner();
    assert!(over.requires_higher_approval);
    let refused = office
        .clone()
        .approve_budget_change(pb::ApproveBudgetChangeRequest {
            name: over.name.clone(),
            comment: String::new(),
            higher_approval: None,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("137500001") && refused.message().contains("125000000"),
        "{}",
        refused.message()
    );
    assert_eq!(
        get(&app, &p.name).await.approved_budget_fen,
        137_500_000,
        "nothing changed"
    );
    let with_reapproval = office
        .clone()
        .approve_budget_change(pb::ApproveBudgetChangeRequest {
            name: over.name.clone(),
            comment: "re-approved".into(),
            higher_approval: Some(pb::HigherApproval {
                department: "City Development and Reform Commission".into(),
                reference: "DRC [2027] 41".into(),
                approval_date: date(2027, 4, 2),
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        with_reapproval.higher_approval.unwrap().reference,
        "DRC [2027] 41"
    );

    let baselines = office
        .clone()
        .list_budget_baselines(pb::ListBudgetBaselinesRequest {
            parent: p.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .baselines;
    assert_eq!(
        baselines
            .iter()
            .map(|b| (b.sequence, b.budget_fen, b.source()))
            .collect::<Vec<_>>(),
        [
            (1, 125_000_000, pb::BudgetBaselineSource::Approval),
            (2, 137_500_000, pb::BudgetBaselineSource::Change),
            (3, 137_500_001, pb::BudgetBaselineSource::Change)
        ]
    );

    let summary = office
        .clone()
        .get_portfolio_summary(pb::GetPortfolioSummaryRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        summary.beyond_budget_threshold,
        std::slice::from_ref(&p.name)
    );

    // A decided request cannot be decided again; a refused one moves nothing.
    assert_eq!(
        office
            .clone()
            .refuse_budget_change(pb::RefuseBudgetChangeRequest {
                name: over.name.clone(),
                comment: String::new()
            })
            .await
            .unwrap_err()
            .code(),
        Code::FailedPrecondition
    );
    let small = applicant
        .clone()
        .create_budget_change(change(&p.name, 140_000_000))
        .await
        .unwrap()
        .into_inner();
    office
        .clone()
        .refuse_budget_change(pb::RefuseBudgetChangeRequest {
            name: small.name,
            comment: "not justified".into(),
        })
        .await
        .unwrap();
    assert_eq!(get(&app, &p.name).await.approved_budget_fen, 137_500_001);
}

#[tokio::test]
async fn disbursements_never_pass_the_approved_budget_even_when_racing() {
    let app = spawn_app().await;
    let p = under_construction(&app).await;
    let applicant = app.client(Role::Applicant);
    applicant
        .clone()
        .record_disbursement(pb::RecordDisbursementRequest {
            request_id: String::new(),
            parent: p.name.clone(),
            disbursement: Some(disbursement(100_000_000)),
        })
        .await
        .unwrap();
    // Exactly to the line is allowed; one fen over is not, and names the figures.
    let over = applicant
        .clone()
        .record_disbursement(pb::RecordDisbursementRequest {
            request_id: String::new(),
            parent: p.name.clone(),
            disbursement: Some(disbursement(25_000_001)),
        })
        .await
        .unwrap_err();
    assert_eq!(over.code(), Code::FailedPrecondition);
    assert!(
        over.message().contains("125000001")
            && over.message().contains("125000000")
            && over.message().contains("100000000"),
        "{}",
        over.message()
    );

    // Twenty racing disbursements of 2,000,000 fen against 25,000,000 left: exactly twelve pass.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let mut client = app.client(Role::Applicant);
        let parent = p.name.clone();
        tasks.push(tokio::spawn(async move {
            client
                .record_disbursement(pb::RecordDisbursementRequest {
                    request_id: String::new(),
                    parent,
                    disbursement: Some(disbursement(2_000_000)),
                })
                .await
                .map(|_| ())
                .map_err(|s| s.code())
        }));
    }
    let mut passed = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => passed += 1,
            Err(code) => assert_eq!(code, Code::FailedPrecondition),
        }
    }
    assert_eq!(passed, 12);
    let listed = app
        .client(Role::Inspector)
        .list_disbursements(pb::ListDisbursementsRequest {
            parent: p.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total_fen, 124_000_000);
    assert_eq!(listed.disbursements.len(), 13);
    assert_eq!(
        listed
            .disbursements
            .iter()
            .map(|d| d.amount_fen)
            .sum::<i64>(),
        124_000_000
    );
    assert_eq!(get(&app, &p.name).await.disbursed_fen, 124_000_000);
}

#[tokio::test]
async fn bad_supervision_requests_are_refused_and_write_nothing() {
    let app = spawn_app().await;
    let p = under_construction(&app).await;
    let applicant = app.client(Role::Applicant);
    let events = app.event_count().await;

    let status = applicant
        .clone()
        .record_disbursement(pb::RecordDisbursementRequest {
            request_id: String::new(),
            parent: p.name.clone(),
            disbursement: Some(disbursement(0)),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["disbursement.amount_fen"]);
    let mut early = disbursement(5);
    early.payment_date = date(2026, 2, 19);
    let status = applicant
        .clone()
        .record_disbursement(pb::RecordDisbursementRequest {
            request_id: String::new(),
            parent: p.name.clone(),
            disbursement: Some(early),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["disbursement.payment_date"]);
    assert!(status.message().contains("2026-02-20"));
    let status = applicant
        .clone()
        .create_budget_change(change(&p.name, -1))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["requested_budget_fen"]);
    let status = applicant
        .clone()
        .create_milestone(pb::CreateMilestoneRequest {
            request_id: String::new(),
            parent: p.name.clone(),
            milestone: Some(pb::Milestone {
                display_name: "build".into(),
                planned_start_date: date(2027, 5, 1),
                planned_end_date: date(2027, 4, 1),
                planned_cost_fen: 10,
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert!(violated_fields(&status).contains(&"milestone.planned_end_date".to_string()));
    let report = upload(
        &app.client(Role::Office),
        &p.name,
        pb::DocumentKind::EvaluationReport,
        0,
        b"r",
        "",
    )
    .await
    .unwrap();
    let events = events + 1;
    let mut no_scores = evaluation(&p.name, &p.etag, &report.name);
    no_scores.engineering_quality_score = 0;
    no_scores.operating_state_score = 0;
    no_scores.investment_benefit_score = 0;
    let status = app
        .client(Role::Office)
        .record_post_evaluation(no_scores)
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&status),
        [
            "engineering_quality_score",
            "operating_state_score",
            "investment_benefit_score"
        ]
    );
    // Another organisation's applicant.
    let status = app
        .stranger()
        .record_disbursement(pb::RecordDisbursementRequest {
            request_id: String::new(),
            parent: p.name.clone(),
            disbursement: Some(disbursement(5)),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = app
        .stranger()
        .create_budget_change(change(&p.name, 130_000_000))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(app.event_count().await, events, "nothing was written");
    assert_eq!(get(&app, &p.name).await.disbursed_fen, 0);

    // A change request on a closed (here: withdrawn, the other terminal way) project.
    let q = draft(&app).await;
    app.client(Role::Applicant)
        .withdraw_project(pb::WithdrawProjectRequest {
            request_id: String::new(),
            name: q.name.clone(),
            etag: q.etag,
            reason: String::new(),
        })
        .await
        .unwrap();
    let status = applicant
        .clone()
        .create_budget_change(change(&q.name, 130_000_000))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    // Disbursing before a contract exists.
    let r = submitted(&app).await;
    let status = applicant
        .clone()
        .record_disbursement(pb::RecordDisbursementRequest {
            request_id: String::new(),
            parent: r.name.clone(),
            disbursement: Some(disbursement(5)),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn variance_and_risk_follow_the_milestones() {
    let app = spawn_app().await;
    let p = under_construction(&app).await;
    let applicant = app.client(Role::Applicant);
    let a = applicant
        .clone()
        .create_milestone(pb::CreateMilestoneRequest {
            request_id: String::new(),
            parent: p.name.clone(),
            milestone: Some(pb::Milestone {
                display_name: "A".into(),
                planned_start_date: date(2026, 3, 1),
                planned_end_date: date(2026, 3, 10),
                planned_cost_fen: 1_000_000,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        a.projected_end_date,
        date(2026, 3, 10),
        "the forecast starts at the plan"
    );
    applicant
        .clone()
        .create_milestone(pb::CreateMilestoneRequest {
            request_id: String::new(),
            parent: p.name.clone(),
            milestone: Some(pb::Milestone {
                display_name: "B".into(),
                planned_start_date: date(2026, 3, 11),
                planned_end_date: date(2026, 3, 30),
                projected_end_date: date(2026, 4, 4),
                planned_cost_fen: 2_000_000,
                projected_cost_fen: 2_300_000,
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let green = app
        .client(Role::Supervisor)
        .get_project_variance(pb::GetProjectVarianceRequest {
            name: p.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    // Before A completes: cost −300,000 of 3,000,000 (−10.00%: still green); schedule −5 of 30 days.
    assert_eq!(
        (
            green.cost_variance_fen,
            green.cost_variance_bp,
            green.schedule_variance_days,
            green.schedule_variance_bp
        ),
        (-300_000, -1000, -5, -1666)
    );
    assert_eq!(green.cost_color, pb::RiskColor::Green as i32);
    assert_eq!(green.schedule_color, pb::RiskColor::Yellow as i32);

    let mut done = a.clone();
    done.actual_end_date = date(2026, 3, 12);
    done.actual_cost_fen = 1_100_000;
    applicant
        .clone()
        .update_milestone(pb::UpdateMilestoneRequest {
            milestone: Some(done),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["actual_end_date".into(), "actual_cost_fen".into()],
            }),
        })
        .await
        .unwrap();
    let v = app
        .client(Role::Inspector)
        .get_project_variance(pb::GetProjectVarianceRequest {
            name: p.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    // The hand-computed case of variance.rs: −400,000 fen (−13.33%), −7 days (−23.33%).
    assert_eq!(
        (
            v.planned_cost_fen,
            v.projected_cost_fen,
            v.cost_variance_fen,
            v.cost_variance_bp
        ),
        (3_000_000, 3_400_000, -400_000, -1333)
    );
    assert_eq!(
        (
            v.planned_duration_days,
            v.schedule_variance_days,
            v.schedule_variance_bp
        ),
        (30, -7, -2333)
    );
    assert_eq!(v.color, pb::RiskColor::Yellow as i32);
    let stale = applicant
        .clone()
        .update_milestone(pb::UpdateMilestoneRequest {
            milestone: Some(a),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["display_name".into()],
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);

    app.client(Role::Office)
        .rate_project_risk(pb::RateProjectRiskRequest {
            request_id: String::new(),
            name: p.name.clone(),
            rating: pb::RiskColor::Red as i32,
            comment: "contractor short of staff".into(),
            rating_date: date(2026, 4, 1),
        })
        .await
        .unwrap();
    let v = app
        .client(Role::Supervisor)
        .get_project_variance(pb::GetProjectVarianceRequest {
            name: p.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.latest_rating.unwrap().rating, pb::RiskColor::Red as i32);
    let denied = app
        .client(Role::Supervisor)
        .rate_project_risk(pb::RateProjectRiskRequest {
            request_id: String::new(),
            name: p.name.clone(),
            rating: 1,
            comment: "x".into(),
            rating_date: date(2026, 4, 1),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let summary = app
        .client(Role::Supervisor)
        .get_portfolio_summary(pb::GetPortfolioSummaryRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.beyond_variance_bands, std::slice::from_ref(&p.name));
}

#[tokio::test]
async fn a_snapshot_is_frozen_and_taken_once_a_month() {
    let app = spawn_app().await;
    let p = under_construction(&app).await;
    draft(&app).await; // a draft is not active and is left out
    let office = app.client(Role::Office);
    app.client(Role::Applicant)
        .record_disbursement(pb::RecordDisbursementRequest {
            request_id: String::new(),
            parent: p.name.clone(),
            disbursement: Some(disbursement(10_000_000)),
        })
        .await
        .unwrap();
    app.client(Role::Applicant)
        .file_progress_report(pb::FileProgressReportRequest {
            request_id: String::new(),
            parent: p.name.clone(),
            report_date: date(2027, 3, 31),
            percent_complete: 35,
            narrative: "servers racked".into(),
        })
        .await
        .unwrap();
    let closed = previous_month();
    // Only the month just closed: any other would carry today's figures under a wrong label.
    for wrong in ["1999-12", "2035-01"] {
        let refused = office
            .clone()
            .create_monthly_snapshot(pb::CreateMonthlySnapshotRequest {
                request_id: String::new(),
                month: wrong.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&refused), ["month"], "{wrong}");
    }
    let taken = office
        .clone()
        .create_monthly_snapshot(pb::CreateMonthlySnapshotRequest {
            request_id: String::new(),
            month: closed.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(taken.projects, 1);
    let again = office
        .clone()
        .create_monthly_snapshot(pb::CreateMonthlySnapshotRequest {
            request_id: String::new(),
            month: closed.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    // Later edits do not rewrite the month.
    app.client(Role::Applicant)
        .record_disbursement(pb::RecordDisbursementRequest {
            request_id: String::new(),
            parent: p.name.clone(),
            disbursement: Some(disbursement(5_000_000)),
        })
        .await
        .unwrap();
    let snaps = app
        .client(Role::Inspector)
        .list_snapshots(pb::ListSnapshotsRequest {
            month: closed.clone(),
            project: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .snapshots;
    assert_eq!(snaps.len(), 1);
    assert_eq!(
        (
            snaps[0].disbursed_fen,
            snaps[0].approved_budget_fen,
            snaps[0].contract_amount_fen,
            snaps[0].percent_complete
        ),
        (10_000_000, 125_000_000, 118_000_000, 35)
    );
    assert_eq!(snaps[0].state, S::UnderConstruction as i32);
    let bad = office
        .clone()
        .create_monthly_snapshot(pb::CreateMonthlySnapshotRequest {
            request_id: String::new(),
            month: "2027-13".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad), ["month"]);
    let denied = app
        .client(Role::Supervisor)
        .create_monthly_snapshot(pb::CreateMonthlySnapshotRequest {
            request_id: String::new(),
            month: closed.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn inspections_track_findings_to_rectification_and_records_show_them() {
    let app = spawn_app().await;
    let p = under_construction(&app).await;
    backdate_project(app.service.db(), &p.name).await;
    let office = app.client(Role::Office);
    let inspection = office
        .clone()
        .create_inspection(pb::CreateInspectionRequest {
            request_id: String::new(),
            parent: p.name.clone(),
            inspection: Some(pb::Inspection {
                inspection_date: date(2026, 11, 27),
                scopes: vec![
                    pb::InspectionScope::Quality as i32,
                    pb::InspectionScope::Funds as i32,
                ],
                participants: vec!["City Finance Bureau".into(), "City Audit Bureau".into()],
                findings: vec![
                    pb::Finding {
                        description: "no backup tests".into(),
                        severity: pb::FindingSeverity::High as i32,
                        rectification_required: "test restores monthly".into(),
                        deadline_working_days: 5,
                        ..Default::default()
                    },
                    pb::Finding {
                        description: "invoice missing".into(),
                        severity: pb::FindingSeverity::Medium as i32,
                        rectification_required: "file the invoice".into(),
                        deadline_working_days: 1,
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    // Friday 27 November: 5 working days is Friday 4 December, 1 is Monday 30 November.
    assert_eq!(inspection.findings[0].due_date, date(2026, 12, 4));
    assert_eq!(inspection.findings[1].due_date, date(2026, 11, 30));
    let overdue = office
        .clone()
        .list_overdue_findings(pb::ListOverdueFindingsRequest {
            as_of: date(2026, 12, 1),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .findings;
    assert_eq!(
        overdue
            .iter()
            .map(|f| f.description.as_str())
            .collect::<Vec<_>>(),
        ["invoice missing"]
    );
    let fixed = app
        .client(Role::Applicant)
        .record_rectification(pb::RecordRectificationRequest {
            request_id: String::new(),
            finding: overdue[0].name.clone(),
            rectification: "invoice filed".into(),
            rectified_date: date(2026, 12, 1),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(
        fixed
            .findings
            .iter()
            .any(|f| f.rectified && f.rectification == "invoice filed")
    );
    let again = app
        .client(Role::Applicant)
        .record_rectification(pb::RecordRectificationRequest {
            request_id: String::new(),
            finding: overdue[0].name.clone(),
            rectification: "again".into(),
            rectified_date: date(2026, 12, 1),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    let overdue = office
        .clone()
        .list_overdue_findings(pb::ListOverdueFindingsRequest {
            as_of: date(2026, 12, 7),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .findings;
    assert_eq!(
        overdue
            .iter()
            .map(|f| f.description.as_str())
            .collect::<Vec<_>>(),
        ["no backup tests"]
    );

    // The contractor is commended, the supervision firm reported.
    let contractor = credit_code(2);
    office
        .clone()
        .create_organization_notice(pb::CreateOrganizationNoticeRequest {
            request_id: String::new(),
            parent: org_name(&contractor),
            notice: Some(pb::OrganizationNotice {
                kind: pb::NoticeKind::Commendation as i32,
                projects: vec![p.name.clone()],
                grounds: "delivered ahead of plan".into(),
                notice_date: date(2026, 12, 2),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let missing_handling = office
        .clone()
        .create_organization_notice(pb::CreateOrganizationNoticeRequest {
            request_id: String::new(),
            parent: org_name(&credit_code(3)),
            notice: Some(pb::OrganizationNotice {
                kind: pb::NoticeKind::Violation as i32,
                projects: vec![p.name.clone()],
                grounds: "signed off untested work".into(),
                notice_date: date(2026, 12, 2),
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&missing_handling),
        ["notice.handling", "notice.rule"]
    );
    let record = app
        .client(Role::Supervisor)
        .get_organization_record(pb::GetOrganizationRecordRequest {
            name: org_name(&contractor),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(record.projects, std::slice::from_ref(&p.name));
    assert_eq!(record.commendations.len(), 1);
    assert!(record.violations.is_empty());
    assert_eq!(record.findings.len(), 2);
    let status = app
        .client(Role::Inspector)
        .create_inspection(pb::CreateInspectionRequest {
            request_id: String::new(),
            parent: p.name.clone(),
            inspection: None,
        })
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::InvalidArgument,
        "inspectors are checked for their request too, then refused"
    );
    let status = app
        .client(Role::Inspector)
        .create_inspection(pb::CreateInspectionRequest {
            request_id: String::new(),
            parent: p.name.clone(),
            inspection: Some(pb::Inspection {
                inspection_date: date(2026, 11, 27),
                scopes: vec![1],
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn the_portfolio_adds_up_and_is_for_the_bureaus_only() {
    let app = spawn_app().await;
    let a = under_construction(&app).await;
    let b = under_construction(&app).await;
    draft(&app).await;
    app.client(Role::Applicant)
        .record_disbursement(pb::RecordDisbursementRequest {
            request_id: String::new(),
            parent: a.name.clone(),
            disbursement: Some(disbursement(7_000_000)),
        })
        .await
        .unwrap();
    app.client(Role::Applicant)
        .record_disbursement(pb::RecordDisbursementRequest {
            request_id: String::new(),
            parent: b.name.clone(),
            disbursement: Some(disbursement(3_000_000)),
        })
        .await
        .unwrap();
    for role in [Role::Office, Role::Supervisor, Role::Inspector] {
        let s = app
            .client(role)
            .get_portfolio_summary(pb::GetPortfolioSummaryRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert_eq!(s.project_count, 3, "{role}");
        assert_eq!(
            (
                s.total_approved_fen,
                s.total_contracted_fen,
                s.total_disbursed_fen
            ),
            (250_000_000, 236_000_000, 10_000_000)
        );
        let counts: Vec<(i32, i32)> = s.counts.iter().map(|c| (c.state, c.count)).collect();
        assert_eq!(
            counts,
            [(S::Draft as i32, 1), (S::UnderConstruction as i32, 2)]
        );
    }
    for role in [
        Role::Applicant,
        Role::Service,
        Role::Expert,
        Role::RegistryAdmin,
    ] {
        assert_eq!(
            app.client(role)
                .get_portfolio_summary(pb::GetPortfolioSummaryRequest::default())
                .await
                .unwrap_err()
                .code(),
            Code::PermissionDenied,
            "{role}"
        );
    }
    let filtered = app
        .client(Role::Office)
        .get_portfolio_summary(pb::GetPortfolioSummaryRequest {
            year: 2001,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(filtered.project_count, 0);
}

#[tokio::test]
async fn the_bureaus_take_the_portfolio_as_csv_or_json() {
    let app = spawn_app().await;
    let p = under_construction(&app).await;
    app.client(Role::Applicant)
        .record_disbursement(pb::RecordDisbursementRequest {
            request_id: String::new(),
            parent: p.name.clone(),
            disbursement: Some(disbursement(7_000_000)),
        })
        .await
        .unwrap();
    let server = format!("http://{}", app.addr);
    let run = |format: &'static str| {
        let server = server.clone();
        async move {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_govit"))
                .args([
                    "report",
                    "portfolio",
                    "--format",
                    format,
                    "--server",
                    &server,
                ])
                .env("GOVIT_JWT_HS256_KEY", std::str::from_utf8(KEY).unwrap())
                .env_remove("GOVIT_TOKEN")
                .output()
                .await
                .unwrap()
        }
    };
    let csv = run("csv").await;
    assert!(
        csv.status.success(),
        "{}",
        String::from_utf8_lossy(&csv.stderr)
    );
    let text = String::from_utf8(csv.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("project,name,applicant,category,state,approved_budget_fen"),
        "{text}"
    );
    assert!(
        lines[1].starts_with(&format!("{},", p.code))
            && lines[1]
                .contains(",UNDER_CONSTRUCTION,125000000,125000000,118000000,7000000,0,0,GREEN"),
        "{text}"
    );
    assert_eq!(
        lines[2],
        "TOTAL,1 projects,,,,125000000,,118000000,7000000,,,"
    );
    let json = run("json").await;
    assert!(json.status.success());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["total_disbursed_fen"], 7_000_000);
    assert_eq!(v["projects"][0]["project"], p.code.as_str());
}

#[tokio::test]
async fn a_budget_change_applies_only_to_the_budget_it_was_filed_against() {
    let app = spawn_app().await;
    let p = under_construction(&app).await;
    let applicant = app.client(Role::Applicant);
    let office = app.client(Role::Office);
    // Two requests filed against 125,000,000 fen; the first approved moves the budget.
    let a = applicant
        .clone()
        .create_budget_change(change(&p.name, 135_000_000))
        .await
        .unwrap()
        .into_inner();
    let b = applicant
        .clone()
        .create_budget_change(change(&p.name, 130_000_000))
        .await
        .unwrap()
        .into_inner();
    office
        .clone()
        .approve_budget_change(pb::ApproveBudgetChangeRequest {
            name: a.name,
            comment: String::new(),
            higher_approval: None,
        })
        .await
        .unwrap();
    app.client(Role::Applicant)
        .record_disbursement(pb::RecordDisbursementRequest {
            request_id: String::new(),
            parent: p.name.clone(),
            disbursement: Some(disbursement(132_000_000)),
        })
        .await
        .unwrap();
    // Approving the second would lower the budget below what is paid out.
    let stale = office
        .clone()
        .approve_budget_change(pb::ApproveBudgetChangeRequest {
            name: b.name.clone(),
            comment: String::new(),
            higher_approval: None,
        })
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Code::FailedPrecondition);
    assert!(stale.message().contains("125000000"), "{}", stale.message());
    let now = get(&app, &p.name).await;
    assert_eq!(
        (now.approved_budget_fen, now.disbursed_fen),
        (135_000_000, 132_000_000)
    );
    let baselines = office
        .clone()
        .list_budget_baselines(pb::ListBudgetBaselinesRequest {
            parent: p.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .baselines;
    assert_eq!(baselines.len(), 2);
}

#[tokio::test]
async fn an_applicant_sees_only_its_own_projects_in_its_record() {
    let app = spawn_app().await;
    let p = under_construction(&app).await;
    // The contractor's own applicant sees its record without the project it built for others.
    let contractor = credit_code(2);
    let as_contractor =
        app.client_with_token(Some(token(Role::Applicant, Some(&contractor), None)));
    let record = as_contractor
        .clone()
        .get_organization_record(pb::GetOrganizationRecordRequest {
            name: org_name(&contractor),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(record.projects.is_empty());
    let office_view = app
        .client(Role::Office)
        .get_organization_record(pb::GetOrganizationRecordRequest {
            name: org_name(&contractor),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(office_view.projects, std::slice::from_ref(&p.name));
}

#[tokio::test]
async fn the_previous_month_is_frozen_once_without_anyone_asking() {
    let app = spawn_app().await;
    let p = under_construction(&app).await;
    let taken = app.service.snapshot_previous_month_if_due().await.unwrap();
    let previous = previous_month();
    assert_eq!(taken.as_deref(), Some(previous.as_str()));
    assert_eq!(
        app.service.snapshot_previous_month_if_due().await.unwrap(),
        None,
        "taken once"
    );
    let snaps = app
        .client(Role::Supervisor)
        .list_snapshots(pb::ListSnapshotsRequest {
            month: previous.clone(),
            project: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .snapshots;
    let projects: Vec<&str> = snaps.iter().map(|s| s.project.as_str()).collect();
    assert_eq!(projects, [p.name.as_str()]);
    // Office asking for the same month again is told it exists.
    let again = app
        .client(Role::Office)
        .create_monthly_snapshot(pb::CreateMonthlySnapshotRequest {
            request_id: String::new(),
            month: previous,
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
}

fn previous_month() -> String {
    use chrono::Datelike as _;
    let beijing = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let today = chrono::Utc::now().with_timezone(&beijing).date_naive();
    today
        .with_day(1)
        .unwrap()
        .pred_opt()
        .unwrap()
        .format("%Y-%m")
        .to_string()
}

#[tokio::test]
async fn a_payment_not_yet_made_is_refused_and_a_token_contract_is_flagged_for_office() {
    let app = spawn_app().await;
    let p = under_construction(&app).await;
    assert!(p.flags.is_empty(), "{:?}", p.flags);
    let mut future = disbursement(5_000_000);
    future.payment_date = date(2099, 1, 1);
    let status = app
        .client(Role::Applicant)
        .record_disbursement(pb::RecordDisbursementRequest {
            request_id: String::new(),
            parent: p.name.clone(),
            disbursement: Some(future),
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["disbursement.payment_date"]);
    assert_eq!(
        get(&app, &p.name).await.disbursed_fen,
        0,
        "nothing recorded"
    );

    let app = spawn_app().await;
    let token = under_construction_for(&app, 1).await;
    assert_eq!(token.flags.len(), 1, "{:?}", token.flags);
    assert!(token.flags[0].contains("under 1% of the approved budget"));
}

/// With no project under supervision the month is still taken once: an idle system must not
/// take (and log) an empty snapshot on every pass of the worker.
#[tokio::test]
async fn an_empty_month_is_taken_once_too() {
    let app = spawn_app().await;
    let previous = previous_month();
    assert_eq!(
        app.service
            .snapshot_previous_month_if_due()
            .await
            .unwrap()
            .as_deref(),
        Some(previous.as_str())
    );
    for _ in 0..3 {
        assert_eq!(
            app.service.snapshot_previous_month_if_due().await.unwrap(),
            None
        );
    }
    let again = app
        .client(Role::Office)
        .create_monthly_snapshot(pb::CreateMonthlySnapshotRequest {
            request_id: String::new(),
            month: previous.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
}

#[tokio::test]
async fn an_inspections_findings_are_listed_in_the_order_they_were_recorded() {
    let app = spawn_app().await;
    let p = under_construction(&app).await;
    backdate_project(app.service.db(), &p.name).await;
    let findings: Vec<pb::Finding> = (1..=12)
        .map(|i| pb::Finding {
            description: format!("finding {i}"),
            severity: pb::FindingSeverity::Low as i32,
            rectification_required: "fix it".into(),
            // Later findings due sooner: the order is the recorded one, not the due dates'.
            deadline_working_days: 20 - i,
            ..Default::default()
        })
        .collect();
    let inspection = app
        .client(Role::Office)
        .create_inspection(pb::CreateInspectionRequest {
            request_id: String::new(),
            parent: p.name.clone(),
            inspection: Some(pb::Inspection {
                inspection_date: date(2026, 11, 27),
                scopes: vec![pb::InspectionScope::Quality as i32],
                participants: vec!["City Finance Bureau".into()],
                findings,
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let listed: Vec<String> = inspection
        .findings
        .iter()
        .map(|f| f.name.rsplit('/').next().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (1..=12).map(|i| i.to_string()).collect();
    assert_eq!(listed, expected);
    assert_eq!(inspection.findings[9].description, "finding 10");
}

#[tokio::test]
async fn records_of_what_happened_are_dated_within_the_projects_life() {
    let app = spawn_app().await;
    let p = under_construction(&app).await;
    let today = chrono::Utc::now()
        .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap())
        .date_naive();
    let day = |d: chrono::NaiveDate| govit_platform::time::date_to_proto(d);
    let inspect = |on: chrono::NaiveDate| {
        let mut office = app.client(Role::Office);
        let parent = p.name.clone();
        async move {
            office
                .create_inspection(pb::CreateInspectionRequest {
                    request_id: String::new(),
                    parent,
                    inspection: Some(pb::Inspection {
                        inspection_date: Some(day(on)),
                        scopes: vec![pb::InspectionScope::Quality as i32],
                        participants: vec!["City Audit Bureau".into()],
                        ..Default::default()
                    }),
                })
                .await
        }
    };
    // The project was created today: an inspection the day before, or tomorrow, did not happen.
    for refused in [today.pred_opt().unwrap(), today.succ_opt().unwrap()] {
        let status = inspect(refused).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{refused}");
        assert_eq!(violated_fields(&status), ["inspection.inspection_date"]);
    }
    inspect(today).await.unwrap();

    // A milestone is not completed (nor started) ahead of time.
    let milestone = |start: chrono::NaiveDate, end: Option<chrono::NaiveDate>| pb::Milestone {
        display_name: "build".into(),
        planned_start_date: date(2026, 1, 1),
        planned_end_date: date(2027, 1, 1),
        planned_cost_fen: 10,
        actual_start_date: Some(day(start)),
        actual_end_date: end.map(day),
        actual_cost_fen: 10,
        ..Default::default()
    };
    let tomorrow = today.succ_opt().unwrap();
    for (m, field) in [
        (
            milestone(today, Some(tomorrow)),
            "milestone.actual_end_date",
        ),
        (milestone(tomorrow, None), "milestone.actual_start_date"),
    ] {
        let status = app
            .client(Role::Applicant)
            .create_milestone(pb::CreateMilestoneRequest {
                request_id: String::new(),
                parent: p.name.clone(),
                milestone: Some(m),
            })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&status), [field]);
    }
    app.client(Role::Applicant)
        .create_milestone(pb::CreateMilestoneRequest {
            request_id: String::new(),
            parent: p.name.clone(),
            milestone: Some(milestone(today, Some(today))),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_snapshot_resent_with_its_request_id_is_answered_not_refused_as_taken() {
    let app = spawn_app().await;
    under_construction(&app).await;
    let office = app.client(Role::Office);
    let with_id = || pb::CreateMonthlySnapshotRequest {
        request_id: "snapshot-retry-1".into(),
        month: previous_month(),
    };
    let first = office
        .clone()
        .create_monthly_snapshot(with_id())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.projects, 1);
    let resent = office
        .clone()
        .create_monthly_snapshot(with_id())
        .await
        .expect("answered from the first call")
        .into_inner();
    assert_eq!(resent, first);
    // Without the id, the month is taken.
    let plain = office
        .clone()
        .create_monthly_snapshot(pb::CreateMonthlySnapshotRequest {
            request_id: String::new(),
            month: previous_month(),
        })
        .await;
    assert_code(plain, Code::AlreadyExists);
}

#[tokio::test]
async fn published_notices_are_for_anyone_newest_first_by_year_unit_and_kind() {
    use pb::public_notice_service_client::PublicNoticeServiceClient;
    let app = spawn_app().await;
    let p = draft(&app).await;
    let office = app.client(Role::Office);
    let unit = org_name(&app.applicant_code);
    let issue = |kind: pb::NoticeKind, grounds: &str, rule: &str, loss_fen: i64, day| {
        let office = office.clone();
        let notice = pb::OrganizationNotice {
            kind: kind as i32,
            projects: vec![p.name.clone()],
            grounds: grounds.into(),
            handling: if kind == pb::NoticeKind::Violation {
                "funds recovered; unit barred from applying for a year".into()
            } else {
                String::new()
            },
            rule: rule.into(),
            loss_fen,
            notice_date: day,
            ..Default::default()
        };
        let parent = unit.clone();
        async move {
            office
                .clone()
                .create_organization_notice(pb::CreateOrganizationNoticeRequest {
                    request_id: String::new(),
                    parent,
                    notice: Some(notice),
                })
                .await
        }
    };
    let violation = issue(
        pb::NoticeKind::Violation,
        "split the procurement to avoid open tender",
        "Government Procurement Law, art. 41",
        3_500_000,
        date(2025, 12, 31),
    )
    .await
    .unwrap()
    .into_inner();
    // The same day: the list orders the two by name, and pages must not lose either.
    issue(
        pb::NoticeKind::Violation,
        "paid for servers never delivered",
        "City budget rules, art. 12",
        800_000,
        date(2025, 12, 31),
    )
    .await
    .unwrap();
    assert_eq!(violation.rule, "Government Procurement Law, art. 41");
    assert_eq!(violation.loss_fen, 3_500_000);
    assert!(!violation.organization_display_name.is_empty());
    issue(
        pb::NoticeKind::Commendation,
        "data-sharing platform delivered under budget",
        "",
        0,
        date(2026, 11, 28),
    )
    .await
    .unwrap();

    // Refused when issued: personal data, a violation without its rule, a loss that is not one.
    let refused = issue(
        pb::NoticeKind::Violation,
        &format!(
            "the project lead ({}) signed unpaid invoices",
            govit_platform::resident_id::with_check_character("11010519491231002").unwrap()
        ),
        "",
        -1,
        date(2026, 11, 1),
    )
    .await
    .unwrap_err();
    assert_eq!(
        violated_fields(&refused),
        ["notice.rule", "notice.loss_fen", "notice.grounds"]
    );
    let refused = issue(
        pb::NoticeKind::Commendation,
        "good work; call 13912345678",
        "",
        100,
        date(2026, 11, 1),
    )
    .await
    .unwrap_err();
    assert_eq!(
        violated_fields(&refused),
        ["notice.loss_fen", "notice.grounds"]
    );

    // A notice issued before notices were published (written for office, the bureaus and the
    // unit only) stays out of the public list.
    sqlx::query(
        "INSERT INTO organization_notices (id, credit_code, kind, projects, grounds, handling, \
         notice_date, issued_by, create_time) VALUES ('old', $1, 'VIOLATION', $2, \
         'an old notice', 'handled', '2026-01-05', 'office-1', '2026-01-05T00:00:00.000000Z')",
    )
    .bind(app.applicant_code.clone())
    .bind(format!("[\"{}\"]", p.name))
    .execute(&app.service.db().pool)
    .await
    .unwrap();

    // Anyone reads them: no token at all.
    let mut public = PublicNoticeServiceClient::new(app.channel.clone());
    let all = public
        .list_public_notices(pb::ListPublicNoticesRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut grounds: Vec<&str> = all.notices.iter().map(|n| n.grounds.as_str()).collect();
    assert_eq!(grounds.len(), 3, "{grounds:?}");
    assert_eq!(
        grounds[0], "data-sharing platform delivered under budget",
        "newest first"
    );
    grounds[1..].sort();
    assert_eq!(
        grounds[1..],
        [
            "paid for servers never delivered",
            "split the procurement to avoid open tender"
        ]
    );
    assert!(
        all.notices[1].name > all.notices[2].name,
        "a day's notices by name, descending"
    );
    assert!(all.notices.iter().all(|n| n.issued_by.is_empty()));
    assert!(all.notices.iter().all(|n| n.name.starts_with(&unit)));
    let split = all
        .notices
        .iter()
        .find(|n| n.grounds.starts_with("split"))
        .unwrap();
    assert_eq!(split.loss_fen, 3_500_000);
    assert_eq!(split.rule, "Government Procurement Law, art. 41");
    assert_eq!(split.projects, std::slice::from_ref(&p.name));

    let list = |request: pb::ListPublicNoticesRequest| {
        let mut public = public.clone();
        async move { public.list_public_notices(request).await }
    };
    let of_2025 = list(pb::ListPublicNoticesRequest {
        year: 2025,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    assert_eq!(of_2025.notices.len(), 2, "31 December is in its year");
    assert!(
        of_2025
            .notices
            .iter()
            .all(|n| n.kind == pb::NoticeKind::Violation as i32)
    );
    let commendations = list(pb::ListPublicNoticesRequest {
        kind: pb::NoticeKind::Commendation as i32,
        organization: unit.clone(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    assert_eq!(commendations.notices.len(), 1);
    let other_unit = list(pb::ListPublicNoticesRequest {
        organization: org_name(&credit_code(77)),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    assert!(other_unit.notices.is_empty());

    // One at a time, the pages give every notice once, in the same order.
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(pb::ListPublicNoticesRequest {
            page_size: 1,
            page_token: token.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
        assert!(page.notices.len() <= 1);
        paged.extend(page.notices.into_iter().map(|n| n.name));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let names: Vec<String> = all.notices.iter().map(|n| n.name.clone()).collect();
    assert_eq!(paged, names);
    let first = list(pb::ListPublicNoticesRequest {
        page_size: 1,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner();
    let mixed = list(pb::ListPublicNoticesRequest {
        page_size: 1,
        page_token: first.next_page_token,
        year: 2026,
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&mixed), ["page_token"]);
    let bad = list(pb::ListPublicNoticesRequest {
        year: 1999,
        organization: "units/x".into(),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&bad), ["year", "organization"]);
}

/// The finance bureau, the development and reform commission and the audit bureau each inspect
/// in their own name: the inspection and the audit trail say which body acted, each lists its
/// own, and the finance bureau's remit is the fiscally funded projects.
#[tokio::test]
async fn each_bureau_supervises_in_its_own_name() {
    use govit_platform::auth::Bureau;
    let app = spawn_app().await;
    let funded = under_construction(&app).await;
    let own_funds = app
        .client(Role::Applicant)
        .create_project(pb::CreateProjectRequest {
            request_id: String::new(),
            project: Some(pb::Project {
                funding_source: pb::FundingSource::SelfRaised as i32,
                ..new_project(&app.applicant_code)
            }),
        })
        .await
        .unwrap()
        .into_inner();
    let inspect = |project: &pb::Project, participants: &str| pb::CreateInspectionRequest {
        request_id: String::new(),
        parent: project.name.clone(),
        inspection: Some(pb::Inspection {
            inspection_date: today(),
            scopes: vec![pb::InspectionScope::Funds as i32],
            participants: vec![participants.into()],
            findings: vec![pb::Finding {
                description: "a payment without its invoice".into(),
                severity: pb::FindingSeverity::Medium as i32,
                rectification_required: "file the invoice".into(),
                deadline_working_days: 5,
                ..Default::default()
            }],
            ..Default::default()
        }),
    };
    let bodies = [
        (
            app.client(Role::Office),
            pb::SupervisingBody::ItOffice,
            "test-office",
        ),
        (
            app.bureau(Bureau::Finance),
            pb::SupervisingBody::FinanceBureau,
            "test-finance-bureau",
        ),
        (
            app.bureau(Bureau::DevelopmentReform),
            pb::SupervisingBody::DevelopmentReformCommission,
            "test-development_reform-bureau",
        ),
        (
            app.bureau(Bureau::Audit),
            pb::SupervisingBody::AuditBureau,
            "test-audit-bureau",
        ),
    ];
    for (client, body, subject) in &bodies {
        let inspection = client
            .clone()
            .create_inspection(inspect(&funded, subject))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(inspection.body, *body as i32, "{subject}");
        assert_eq!(inspection.created_by, *subject);
    }
    // The audit trail names the body beside the subject.
    let trail = app
        .client(Role::Inspector)
        .list_project_events(pb::ListProjectEventsRequest {
            parent: funded.name.clone(),
            page_size: 200,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events;
    let inspected: Vec<(String, i32)> = trail
        .iter()
        .filter(|e| e.action == "CreateInspection")
        .map(|e| {
            let actor = e.actor.clone().unwrap();
            (actor.subject, actor.body)
        })
        .collect();
    assert_eq!(
        inspected,
        bodies
            .iter()
            .map(|(_, body, subject)| (subject.to_string(), *body as i32))
            .collect::<Vec<_>>()
    );
    // An applicant's own step carries no body.
    let created = &trail[0];
    assert_eq!(created.action, "CreateProject");
    assert_eq!(created.actor.as_ref().unwrap().body, 0);
    // Each body finds its own inspections.
    for (_, body, subject) in &bodies {
        let listed = app
            .client(Role::Inspector)
            .list_inspections(pb::ListInspectionsRequest {
                parent: funded.name.clone(),
                body: *body as i32,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .inspections;
        assert_eq!(listed.len(), 1, "{subject}");
        assert_eq!(listed[0].created_by, *subject);
    }
    let refused = app
        .client(Role::Inspector)
        .list_inspections(pb::ListInspectionsRequest {
            parent: funded.name.clone(),
            body: 99,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["body"]);

    // The unit's own money is outside the finance bureau's remit, not the audit bureau's.
    let refused = app
        .bureau(Bureau::Finance)
        .create_inspection(inspect(&own_funds, "finance"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    app.bureau(Bureau::Audit)
        .create_inspection(inspect(&own_funds, "audit"))
        .await
        .unwrap();
    let summary = |client: Client| async move {
        client
            .clone()
            .get_portfolio_summary(pb::GetPortfolioSummaryRequest::default())
            .await
            .unwrap()
            .into_inner()
    };
    let finance = summary(app.bureau(Bureau::Finance)).await;
    let audit = summary(app.bureau(Bureau::Audit)).await;
    let office = summary(app.client(Role::Office)).await;
    assert_eq!(finance.project_count, 1);
    assert_eq!(audit.project_count, 2);
    assert_eq!(office.project_count, 2);
    assert_eq!(finance.total_contracted_fen, audit.total_contracted_fen);
}
