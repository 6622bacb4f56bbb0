use govit_platform::Role;
use govit_proto::projects::v1::{self as pb, ProjectState as S};
use tonic::Code;

use crate::helpers::*;

async fn events(app: &TestApp, name: &str) -> Vec<pb::ProjectEvent> {
    app.client(Role::Inspector)
        .list_project_events(pb::ListProjectEventsRequest {
            parent: name.to_owned(),
            page_size: 200,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .events
}

async fn outcome(
    app: &TestApp,
    p: &pb::Project,
    review: &str,
    stage: pb::ReviewStage,
    decision: pb::ReviewDecision,
) -> pb::Project {
    app.client(Role::Service)
        .record_review_outcome(pb::RecordReviewOutcomeRequest {
            name: p.name.clone(),
            etag: String::new(),
            review: format!("reviews/{review}"),
            stage: stage as i32,
            decision: decision as i32,
            summary: "panel consensus".into(),
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn a_project_walks_from_draft_to_closed_and_the_audit_trail_tells_it() {
    let app = spawn_app_with(Options::no_stable_period()).await;
    let applicant = app.client(Role::Applicant);
    let office = app.client(Role::Office);
    let contractor = credit_code(2);
    let firm = credit_code(3);
    create_org(&office, &contractor, pb::OrganizationKind::Contractor).await;
    create_org(&office, &firm, pb::OrganizationKind::SupervisionFirm).await;
    let designer = credit_code(4);
    create_org(&office, &designer, pb::OrganizationKind::DesignFirm).await;

    let p = draft(&app).await;
    assert_eq!(state(&p), S::Draft);
    assert!(
        p.code
            .starts_with(&format!("{}-", chrono::Utc::now().format("%Y"))),
        "{}",
        p.code
    );
    assert_eq!(p.name, format!("projects/{}", p.code));

    upload_application(&app, &p).await;
    let p = applicant
        .clone()
        .submit_project(pb::SubmitProjectRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&p), S::Submitted);

    let p = office
        .clone()
        .return_project(pb::ReturnProjectRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            reasons: vec!["the seal on copy 2 is illegible".into()],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&p), S::Returned);
    assert_eq!(p.return_reasons, vec!["the seal on copy 2 is illegible"]);

    let p = applicant
        .clone()
        .submit_project(pb::SubmitProjectRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(p.return_reasons.is_empty());
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
    assert_eq!(state(&p), S::UnderPreliminaryReview);
    assert_eq!(
        p.review_panel
            .iter()
            .map(|r| r.category.as_str())
            .collect::<Vec<_>>(),
        ["software", "network"],
        "kept in office's order"
    );

    let p = outcome(
        &app,
        &p,
        "r-1",
        pb::ReviewStage::PreliminaryReview,
        pb::ReviewDecision::Approved,
    )
    .await;
    assert_eq!(state(&p), S::Approved);

    let plan_doc = upload(
        &applicant,
        &p.name,
        pb::DocumentKind::ImplementationPlan,
        0,
        b"%PDF plan",
        "",
    )
    .await
    .unwrap();
    let plan = pb::ImplementationPlan {
        task_plan: "migrate 40 systems".into(),
        system_design: "two availability zones".into(),
        equipment_selection: "domestic servers".into(),
        schedule: "Q2 build, Q3 migrate, Q4 run".into(),
        plan_document: plan_doc.name.clone(),
    };
    let p = applicant
        .clone()
        .file_implementation_plan(pb::FileImplementationPlanRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            plan: Some(plan.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&p), S::ImplementationPlanFiled);
    assert_eq!(p.implementation_plan, Some(plan));

    let p = office
        .clone()
        .record_implementation_plan(pb::RecordImplementationPlanRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            comment: "recorded".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&p), S::PlanRecorded);
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
    assert_eq!(state(&p), S::Tendering);
    // 1,180,000 yuan, by open tender.
    let result = tender_result(&contractor, &firm, &designer, 118_000_000);
    // The applying unit cannot award the contract, the design or the supervision to itself.
    for (field, own) in [
        (
            "result.design_firm",
            pb::TenderResult {
                design_firm: org_name(&app.applicant_code),
                ..result.clone()
            },
        ),
        (
            "result.contractor",
            pb::TenderResult {
                contractor: org_name(&app.applicant_code),
                ..result.clone()
            },
        ),
        (
            "result.supervision_firm",
            pb::TenderResult {
                supervision_firm: org_name(&app.applicant_code),
                ..result.clone()
            },
        ),
    ] {
        let refused = applicant
            .clone()
            .record_tender_result(pb::RecordTenderResultRequest {
                request_id: String::new(),
                name: p.name.clone(),
                etag: p.etag.clone(),
                result: Some(own),
            })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&refused), [field]);
    }
    // What the notice asks a tender to record, each refused on its own field.
    let yesterday = govit_platform::time::beijing_today() - chrono::Duration::days(1);
    let tomorrow = govit_platform::time::beijing_today() + chrono::Duration::days(1);
    let as_date = |d: chrono::NaiveDate| {
        use chrono::Datelike;
        date(d.year(), d.month() as i32, d.day() as i32)
    };
    let single_source = pb::TenderResult {
        method: pb::TenderMethod::SingleSource as i32,
        ..result.clone()
    };
    let mut no_standards = result.clone();
    no_standards.standards.as_mut().unwrap().supervision.clear();
    for (field, incomplete) in [
        (
            "result.method",
            pb::TenderResult {
                method: 0,
                ..result.clone()
            },
        ),
        ("result.method_justification", single_source.clone()),
        (
            "result.design_firm",
            pb::TenderResult {
                design_firm: String::new(),
                ..result.clone()
            },
        ),
        (
            "result.design_firm",
            pb::TenderResult {
                design_firm: org_name(&firm),
                ..result.clone()
            },
        ),
        (
            "result.announcement_date",
            pb::TenderResult {
                announcement_date: None,
                ..result.clone()
            },
        ),
        (
            "result.announcement_date",
            pb::TenderResult {
                announcement_date: today(),
                contract_date: as_date(yesterday),
                ..result.clone()
            },
        ),
        (
            "result.contract_date",
            pb::TenderResult {
                contract_date: as_date(tomorrow),
                ..result.clone()
            },
        ),
        ("result.standards.supervision", no_standards),
    ] {
        let refused = applicant
            .clone()
            .record_tender_result(pb::RecordTenderResultRequest {
                request_id: String::new(),
                name: p.name.clone(),
                etag: p.etag.clone(),
                result: Some(incomplete),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{field}");
        assert!(
            violated_fields(&refused).contains(&field.to_owned()),
            "{field}: {:?}",
            violated_fields(&refused)
        );
    }
    // An unregistered design firm is not found, as a missing contractor is.
    let refused = applicant
        .clone()
        .record_tender_result(pb::RecordTenderResultRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag.clone(),
            result: Some(pb::TenderResult {
                design_firm: org_name(&credit_code(99)),
                ..result.clone()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::NotFound);
    // A contract above the approved budget is refused; the project stays in tendering.
    assert!(p.approved_budget_fen > 0);
    let refused = applicant
        .clone()
        .record_tender_result(pb::RecordTenderResultRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag.clone(),
            result: Some(pb::TenderResult {
                contract_amount_fen: p.approved_budget_fen + 1,
                ..result.clone()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::FailedPrecondition);
    assert_eq!(error_reason(&refused), "CONTRACT_EXCEEDS_BUDGET");
    let unchanged = office
        .clone()
        .get_project(pb::GetProjectRequest {
            name: p.name.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&unchanged), S::Tendering);
    assert_eq!(unchanged.tender_result, None);
    let p = applicant
        .clone()
        .record_tender_result(pb::RecordTenderResultRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            result: Some(result.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&p), S::UnderConstruction);
    assert_eq!(p.tender_result, Some(result));

    let acceptance_report = upload(
        &applicant,
        &p.name,
        pb::DocumentKind::AcceptanceReport,
        0,
        b"%PDF acceptance",
        "",
    )
    .await
    .unwrap();
    let units = vec![org_name(&contractor), org_name(&firm), org_name(&designer)];
    let p = applicant
        .clone()
        .request_acceptance(pb::RequestAcceptanceRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            acceptance_report: acceptance_report.name.clone(),
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
            panel: panel(),
            participating_units: units.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&p), S::UnderAcceptance);
    let p = outcome(
        &app,
        &p,
        "r-2",
        pb::ReviewStage::Acceptance,
        pb::ReviewDecision::Failed,
    )
    .await;
    assert_eq!(state(&p), S::AcceptanceFailed);
    let p = applicant
        .clone()
        .request_acceptance(pb::RequestAcceptanceRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            acceptance_report: acceptance_report.name.clone(),
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
            panel: panel(),
            participating_units: units.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        p.acceptance,
        Some(pb::AcceptanceRecord {
            report_document: acceptance_report.name.clone(),
            participating_units: units.clone(),
        })
    );
    let p = outcome(
        &app,
        &p,
        "r-3",
        pb::ReviewStage::Acceptance,
        pb::ReviewDecision::Passed,
    )
    .await;
    assert_eq!(state(&p), S::Accepted);
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
    // With no stable period configured, post-evaluation opens the day operation starts.
    assert_eq!(p.operation_start_date, today());
    assert_eq!(p.post_evaluation_open_date, today());
    let report = upload(
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
        .record_post_evaluation(evaluation(&p.name, &p.etag, &report.name))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&p), S::PostEvaluated);
    let e = p.post_evaluation.clone().unwrap();
    // Each promised indicator beside its measure: availability met, response time not.
    let promised = promised_indicators();
    assert_eq!(
        e.indicators,
        [
            pb::IndicatorResult {
                promised: Some(promised[0].clone()),
                actual: 99.95,
                met: true,
            },
            pb::IndicatorResult {
                promised: Some(promised[1].clone()),
                actual: 2.4,
                met: false,
            },
        ]
    );
    // 0.4 × 92 + 0.3 × 85 + 0.3 × 78 = 85.70: GOOD.
    assert_eq!(e.weighted_score_centi, 8570);
    assert_eq!(e.grade, pb::EvaluationGrade::Good as i32);
    let p = office
        .clone()
        .close_project(pb::CloseProjectRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&p), S::Closed);

    let trail = events(&app, &p.name).await;
    let actions: Vec<&str> = trail.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "CreateProject",
            "UploadDocument",
            "UploadDocument",
            "SubmitProject",
            "ReturnProject",
            "SubmitProject",
            "AcceptForReview",
            "RecordReviewOutcome",
            "UploadDocument",
            "FileImplementationPlan",
            "RecordImplementationPlan",
            "StartTendering",
            "RecordTenderResult",
            "UploadDocument",
            "RequestAcceptance",
            "StartAcceptance",
            "RecordReviewOutcome",
            "RequestAcceptance",
            "StartAcceptance",
            "RecordReviewOutcome",
            "StartOperation",
            "UploadDocument",
            "RecordPostEvaluation",
            "CloseProject",
        ]
    );
    assert_eq!(
        trail.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        (1..=trail.len() as i64).collect::<Vec<_>>()
    );
    let submit = &trail[3];
    assert_eq!(submit.actor.as_ref().unwrap().role, "applicant");
    assert_eq!(submit.from_state, S::Draft as i32);
    assert_eq!(submit.to_state, S::Submitted as i32);
    assert_eq!(
        submit.document_sha256.len(),
        2,
        "submission records the hashes of its documents"
    );
    let returned = &trail[4];
    assert_eq!(returned.actor.as_ref().unwrap().role, "office");
    assert_eq!(returned.reason, "the seal on copy 2 is illegible");
    assert_eq!(trail[7].actor.as_ref().unwrap().role, "service");
}

#[tokio::test]
async fn revision_required_lets_the_applicant_edit_and_resubmit() {
    let app = spawn_app().await;
    let p = submitted(&app).await;
    let office = app.client(Role::Office);
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
    let p = outcome(
        &app,
        &p,
        "rev-1",
        pb::ReviewStage::PreliminaryReview,
        pb::ReviewDecision::RevisionRequired,
    )
    .await;
    assert_eq!(state(&p), S::RevisionRequired);
    let mut changed = p.clone();
    changed.estimated_investment_fen = 99_000_000;
    let p = app
        .client(Role::Applicant)
        .update_project(pb::UpdateProjectRequest {
            project: Some(changed),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["estimated_investment_fen".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.estimated_investment_fen, 99_000_000);
    let p = app
        .client(Role::Applicant)
        .submit_project(pb::SubmitProjectRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&p), S::Submitted);
}

#[tokio::test]
async fn a_rejected_or_withdrawn_project_goes_nowhere() {
    let app = spawn_app().await;
    let p = under_review(&app).await;
    let p = outcome(
        &app,
        &p,
        "rej-1",
        pb::ReviewStage::PreliminaryReview,
        pb::ReviewDecision::Rejected,
    )
    .await;
    assert_eq!(state(&p), S::Rejected);
    let s = assert_code(
        app.client(Role::Office)
            .suspend_project(pb::SuspendProjectRequest {
                request_id: String::new(),
                name: p.name.clone(),
                etag: p.etag.clone(),
                reason: "audit".into(),
            })
            .await,
        Code::FailedPrecondition,
    );
    assert!(s.message().contains("REJECTED"), "{}", s.message());

    let q = draft(&app).await;
    let q = app
        .client(Role::Applicant)
        .withdraw_project(pb::WithdrawProjectRequest {
            request_id: String::new(),
            name: q.name.clone(),
            etag: q.etag,
            reason: "merged into another project".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&q), S::Withdrawn);
    assert_code(
        app.client(Role::Applicant)
            .submit_project(pb::SubmitProjectRequest {
                request_id: String::new(),
                name: q.name.clone(),
                etag: q.etag.clone(),
            })
            .await,
        Code::FailedPrecondition,
    );
}

#[tokio::test]
async fn every_illegal_transition_is_refused_and_changes_nothing() {
    let app = spawn_app().await;
    let p = draft(&app).await;
    upload_application(&app, &p).await;
    let p = get(&app, &p.name).await;
    let events_before = app.event_count().await;
    let office = app.client(Role::Office);
    let applicant = app.client(Role::Applicant);
    let (n, e) = (p.name.clone(), p.etag.clone());

    let attempts: Vec<(&str, Result<pb::Project, tonic::Status>)> = vec![
        (
            "return",
            office
                .clone()
                .return_project(pb::ReturnProjectRequest {
                    request_id: String::new(),
                    name: n.clone(),
                    etag: e.clone(),
                    reasons: vec!["x".into()],
                })
                .await
                .map(|r| r.into_inner()),
        ),
        (
            "accept",
            office
                .clone()
                .accept_for_review(pb::AcceptForReviewRequest {
                    request_id: String::new(),
                    name: n.clone(),
                    etag: e.clone(),
                    panel: panel(),
                })
                .await
                .map(|r| r.into_inner()),
        ),
        (
            "plan",
            applicant
                .clone()
                .file_implementation_plan(pb::FileImplementationPlanRequest {
                    request_id: String::new(),
                    name: n.clone(),
                    etag: e.clone(),
                    plan: Some(pb::ImplementationPlan {
                        task_plan: "t".into(),
                        system_design: "d".into(),
                        equipment_selection: "e".into(),
                        schedule: "s".into(),
                        plan_document: format!("{n}/documents/x"),
                    }),
                })
                .await
                .map(|r| r.into_inner()),
        ),
        (
            "record plan",
            office
                .clone()
                .record_implementation_plan(pb::RecordImplementationPlanRequest {
                    request_id: String::new(),
                    name: n.clone(),
                    etag: e.clone(),
                    comment: String::new(),
                })
                .await
                .map(|r| r.into_inner()),
        ),
        (
            "return plan",
            office
                .clone()
                .return_implementation_plan(pb::ReturnImplementationPlanRequest {
                    request_id: String::new(),
                    name: n.clone(),
                    etag: e.clone(),
                    reasons: vec!["x".into()],
                })
                .await
                .map(|r| r.into_inner()),
        ),
        (
            "tender",
            applicant
                .clone()
                .start_tendering(pb::StartTenderingRequest {
                    request_id: String::new(),
                    name: n.clone(),
                    etag: e.clone(),
                })
                .await
                .map(|r| r.into_inner()),
        ),
        (
            "acceptance",
            applicant
                .clone()
                .request_acceptance(pb::RequestAcceptanceRequest {
                    request_id: String::new(),
                    name: n.clone(),
                    etag: e.clone(),
                    acceptance_report: format!("{n}/documents/x"),
                })
                .await
                .map(|r| r.into_inner()),
        ),
        (
            "start acceptance",
            office
                .clone()
                .start_acceptance(pb::StartAcceptanceRequest {
                    request_id: String::new(),
                    name: n.clone(),
                    etag: e.clone(),
                    panel: panel(),
                    participating_units: vec![org_name(&app.applicant_code)],
                })
                .await
                .map(|r| r.into_inner()),
        ),
        (
            "operate",
            office
                .clone()
                .start_operation(pb::StartOperationRequest {
                    request_id: String::new(),
                    name: n.clone(),
                    etag: e.clone(),
                    operation_start_date: None,
                })
                .await
                .map(|r| r.into_inner()),
        ),
        (
            "evaluate",
            office
                .clone()
                .record_post_evaluation(evaluation(&n, &e, &format!("{n}/documents/x")))
                .await
                .map(|r| r.into_inner()),
        ),
        (
            "close",
            office
                .clone()
                .close_project(pb::CloseProjectRequest {
                    request_id: String::new(),
                    name: n.clone(),
                    etag: e.clone(),
                })
                .await
                .map(|r| r.into_inner()),
        ),
        (
            "resume",
            office
                .clone()
                .resume_project(pb::ResumeProjectRequest {
                    request_id: String::new(),
                    name: n.clone(),
                    etag: e.clone(),
                    reason: String::new(),
                })
                .await
                .map(|r| r.into_inner()),
        ),
        (
            "outcome",
            app.client(Role::Service)
                .record_review_outcome(pb::RecordReviewOutcomeRequest {
                    name: n.clone(),
                    etag: String::new(),
                    review: "reviews/r-x".into(),
                    stage: pb::ReviewStage::PreliminaryReview as i32,
                    decision: pb::ReviewDecision::Approved as i32,
                    summary: String::new(),
                })
                .await
                .map(|r| r.into_inner()),
        ),
    ];
    for (what, result) in attempts {
        let status = assert_code(result, Code::FailedPrecondition);
        assert!(
            status.message().contains("DRAFT"),
            "{what}: {}",
            status.message()
        );
        let failure = tonic_types::StatusExt::get_details_precondition_failure(&status)
            .expect("PreconditionFailure");
        assert_eq!(failure.violations[0].r#type, "STATE_CONFLICT", "{what}");
    }
    let after = get(&app, &n).await;
    assert_eq!(after.etag, p.etag);
    assert_eq!(state(&after), S::Draft);
    assert_eq!(app.event_count().await, events_before);
}

#[tokio::test]
async fn submission_needs_the_sealed_form_and_the_study() {
    let app = spawn_app().await;
    let p = draft(&app).await;
    let applicant = app.client(Role::Applicant);
    upload(
        &applicant,
        &p.name,
        pb::DocumentKind::ApplicationForm,
        2,
        b"%PDF form",
        "",
    )
    .await
    .unwrap();
    let status = assert_code(
        applicant
            .clone()
            .submit_project(pb::SubmitProjectRequest {
                request_id: String::new(),
                name: p.name.clone(),
                etag: p.etag.clone(),
            })
            .await,
        Code::FailedPrecondition,
    );
    let failure = tonic_types::StatusExt::get_details_precondition_failure(&status).unwrap();
    let subjects: Vec<_> = failure
        .violations
        .iter()
        .map(|v| v.subject.as_str())
        .collect();
    assert_eq!(subjects, ["application_form", "feasibility_study_report"]);
    assert!(
        status.message().contains("three sealed copies"),
        "{}",
        status.message()
    );
    assert_eq!(state(&get(&app, &p.name).await), S::Draft);
}

#[tokio::test]
async fn suspension_resumes_to_the_state_it_left() {
    let app = spawn_app().await;
    let p = submitted(&app).await;
    let supervisor = app.client(Role::Supervisor);
    let p = supervisor
        .clone()
        .suspend_project(pb::SuspendProjectRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            reason: "funds audit".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&p), S::Suspended);
    assert_eq!(p.suspended_from, S::Submitted as i32);
    let p = supervisor
        .clone()
        .resume_project(pb::ResumeProjectRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            reason: "audit closed".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&p), S::Submitted);
    assert_eq!(p.suspended_from, 0);
}

#[tokio::test]
async fn a_redelivered_review_outcome_is_applied_once() {
    let app = spawn_app().await;
    let p = under_review(&app).await;
    let first = outcome(
        &app,
        &p,
        "review-42",
        pb::ReviewStage::PreliminaryReview,
        pb::ReviewDecision::Approved,
    )
    .await;
    let events = app.event_count().await;
    let again = outcome(
        &app,
        &p,
        "review-42",
        pb::ReviewStage::PreliminaryReview,
        pb::ReviewDecision::Approved,
    )
    .await;
    assert_eq!(again, first);
    assert_eq!(
        app.event_count().await,
        events,
        "a redelivery writes nothing"
    );

    let conflicting = app
        .client(Role::Service)
        .record_review_outcome(pb::RecordReviewOutcomeRequest {
            name: p.name.clone(),
            etag: String::new(),
            review: "reviews/review-42".into(),
            stage: pb::ReviewStage::PreliminaryReview as i32,
            decision: pb::ReviewDecision::Rejected as i32,
            summary: String::new(),
        })
        .await;
    assert_code(conflicting, Code::AlreadyExists);
    assert_eq!(state(&get(&app, &p.name).await), S::Approved);
}

#[tokio::test]
async fn absurd_evaluation_scores_are_refused_not_overflowed() {
    let app = spawn_app().await;
    let p = draft(&app).await;
    let mut request = evaluation(&p.name, &p.etag, &format!("{}/documents/x", p.name));
    request.engineering_quality_score = i32::MAX;
    request.operating_state_score = i32::MIN;
    let status = app
        .client(Role::Office)
        .record_post_evaluation(request)
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&status),
        ["engineering_quality_score", "operating_state_score"]
    );
}

/// A request for acceptance files the acceptance report; office names the units taking part;
/// the system's operation starts a stable period before which no post-evaluation is recorded;
/// and a post-evaluation measures every indicator the feasibility study promised.
#[tokio::test]
async fn acceptance_needs_its_report_and_units_and_evaluation_waits_for_stable_operation() {
    let app = spawn_app().await;
    let applicant = app.client(Role::Applicant);
    let office = app.client(Role::Office);
    let p = under_construction(&app).await;
    let contract = p.tender_result.clone().unwrap();
    let request = |report: &str| pb::RequestAcceptanceRequest {
        request_id: String::new(),
        name: p.name.clone(),
        etag: p.etag.clone(),
        acceptance_report: report.to_owned(),
    };
    // No report, a report of another project, a document that is not an acceptance report.
    let refused = applicant
        .clone()
        .request_acceptance(request(""))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["acceptance_report"]);
    let refused = applicant
        .clone()
        .request_acceptance(request("projects/2020-0001/documents/x"))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["acceptance_report"]);
    let contract_document = upload(
        &applicant,
        &p.name,
        pb::DocumentKind::Contract,
        0,
        b"%PDF contract",
        "",
    )
    .await
    .unwrap();
    let refused = applicant
        .clone()
        .request_acceptance(request(&contract_document.name))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&refused), "DOCUMENT_MISSING");
    let report = upload(
        &applicant,
        &p.name,
        pb::DocumentKind::AcceptanceReport,
        0,
        b"%PDF acceptance report",
        "",
    )
    .await
    .unwrap();
    let p = applicant
        .clone()
        .request_acceptance(request(&report.name))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&p), S::AcceptanceRequested);
    assert_eq!(p.acceptance.as_ref().unwrap().report_document, report.name);
    let trail = events(&app, &p.name).await;
    let filed = trail.last().unwrap();
    assert_eq!(filed.action, "RequestAcceptance");
    assert_eq!(filed.document_sha256, vec![report.sha256.clone()]);

    let start = |units: Vec<String>| pb::StartAcceptanceRequest {
        request_id: String::new(),
        name: p.name.clone(),
        etag: p.etag.clone(),
        panel: panel(),
        participating_units: units,
    };
    let (contractor, firm) = (
        contract.contractor.clone(),
        contract.supervision_firm.clone(),
    );
    for (units, field) in [
        (vec![], "participating_units"),
        (vec![contractor.clone()], "participating_units"),
        (
            vec![contractor.clone(), firm.clone(), contractor.clone()],
            "participating_units[2]",
        ),
        (vec!["bureau of works".into()], "participating_units[0]"),
    ] {
        let refused = office
            .clone()
            .start_acceptance(start(units.clone()))
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&refused), [field], "{units:?}");
    }
    let unregistered = org_name(&credit_code(98));
    let refused = office
        .clone()
        .start_acceptance(start(vec![
            contractor.clone(),
            firm.clone(),
            unregistered.clone(),
        ]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound, "{refused:?}");
    let unchanged = get(&app, &p.name).await;
    assert_eq!(state(&unchanged), S::AcceptanceRequested);
    let units = vec![
        org_name(&app.applicant_code),
        contractor.clone(),
        firm.clone(),
    ];
    let p = office
        .clone()
        .start_acceptance(start(units.clone()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&p), S::UnderAcceptance);
    assert_eq!(
        p.acceptance,
        Some(pb::AcceptanceRecord {
            report_document: report.name.clone(),
            participating_units: units,
        })
    );
    let p = outcome(
        &app,
        &p,
        "r-acceptance",
        pb::ReviewStage::Acceptance,
        pb::ReviewDecision::Passed,
    )
    .await;
    assert_eq!(state(&p), S::Accepted);

    // Operation cannot start in the future, nor before the contract was signed (2026-02-20).
    let today = govit_platform::time::beijing_today();
    let as_date = |d: chrono::NaiveDate| {
        use chrono::Datelike;
        date(d.year(), d.month() as i32, d.day() as i32)
    };
    let before_contract = chrono::NaiveDate::from_ymd_opt(2026, 2, 19).unwrap();
    for day in [today + chrono::Duration::days(1), before_contract] {
        let refused = office
            .clone()
            .start_operation(pb::StartOperationRequest {
                request_id: String::new(),
                name: p.name.clone(),
                etag: p.etag.clone(),
                operation_start_date: as_date(day),
            })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&refused), ["operation_start_date"], "{day}");
    }
    let p = office
        .clone()
        .start_operation(pb::StartOperationRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag.clone(),
            operation_start_date: as_date(today),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&p), S::InOperation);
    assert_eq!(p.operation_start_date, as_date(today));
    // Six months by default.
    let open = today.checked_add_months(chrono::Months::new(6)).unwrap();
    assert_eq!(p.post_evaluation_open_date, as_date(open));

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
    let refused = office
        .clone()
        .record_post_evaluation(evaluation(&p.name, &p.etag, &evaluation_report.name))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&refused), "STABLE_OPERATION_PERIOD");
    assert!(refused.message().contains(&open.to_string()), "{refused:?}");
    let unchanged = get(&app, &p.name).await;
    assert_eq!(state(&unchanged), S::InOperation);
    assert_eq!(unchanged.post_evaluation, None);
    // Nor may an expert panel start on it.
    let refused = office
        .clone()
        .start_post_evaluation_review(pb::StartPostEvaluationReviewRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag.clone(),
            panel: panel(),
        })
        .await
        .unwrap_err();
    assert_eq!(error_reason(&refused), "STABLE_OPERATION_PERIOD");
    assert_eq!(state(&get(&app, &p.name).await), S::InOperation);
}

/// Office may have an expert panel evaluate the system first; its decision, either way,
/// leaves the system in operation and is cited by the evaluation office records.
#[tokio::test]
async fn a_post_evaluation_panel_is_cited_by_the_evaluation() {
    let app = spawn_app_with(Options::no_stable_period()).await;
    let office = app.client(Role::Office);
    let p = in_operation(&app).await;
    let start = |p: &pb::Project| pb::StartPostEvaluationReviewRequest {
        request_id: String::new(),
        name: p.name.clone(),
        etag: p.etag.clone(),
        panel: panel(),
    };
    for role in [
        Role::Applicant,
        Role::Supervisor,
        Role::Inspector,
        Role::Service,
    ] {
        let refused = app
            .client(role)
            .start_post_evaluation_review(start(&p))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{role:?}");
    }
    let refused = office
        .clone()
        .start_post_evaluation_review(pb::StartPostEvaluationReviewRequest {
            panel: vec![],
            ..start(&p)
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["panel"]);
    let p = office
        .clone()
        .start_post_evaluation_review(start(&p))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&p), S::UnderPostEvaluation);
    let refused = office
        .clone()
        .record_post_evaluation(evaluation(
            &p.name,
            &p.etag,
            &format!("{}/documents/x", p.name),
        ))
        .await
        .unwrap_err();
    assert_eq!(error_reason(&refused), "STATE_CONFLICT");
    let p = outcome(
        &app,
        &p,
        "r-pe",
        pb::ReviewStage::PostEvaluation,
        pb::ReviewDecision::Failed,
    )
    .await;
    assert_eq!(state(&p), S::InOperation);
    let report = upload(
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
        .record_post_evaluation(evaluation(&p.name, &p.etag, &report.name))
        .await
        .unwrap()
        .into_inner();
    let e = p.post_evaluation.unwrap();
    assert_eq!(e.panel_review, "reviews/r-pe");
    assert_eq!(
        e.panel_decision,
        govit_proto::common::v1::ReviewDecision::Failed as i32
    );
}

/// A post-evaluation measures every promised indicator once and nothing else.
#[tokio::test]
async fn a_post_evaluation_measures_every_promised_indicator() {
    let app = spawn_app_with(Options::no_stable_period()).await;
    let office = app.client(Role::Office);
    let p = in_operation(&app).await;
    let report = upload(
        &office,
        &p.name,
        pb::DocumentKind::EvaluationReport,
        0,
        b"%PDF evaluation",
        "",
    )
    .await
    .unwrap();
    let full = evaluation(&p.name, &p.etag, &report.name);
    let mut missing = full.clone();
    missing.measured.pop();
    let mut unknown = full.clone();
    unknown.measured.push(pb::MeasuredIndicator {
        name: "citizen satisfaction".into(),
        actual: 90.0,
    });
    let mut twice = full.clone();
    twice.measured.push(full.measured[0].clone());
    let mut infinite = full.clone();
    infinite.measured[0].actual = f64::INFINITY;
    for (request, field) in [
        (missing, "measured"),
        (unknown, "measured[2].name"),
        (twice, "measured[2].name"),
        (infinite, "measured[0].actual"),
    ] {
        let refused = office
            .clone()
            .record_post_evaluation(request)
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&refused), [field]);
    }
    assert_eq!(state(&get(&app, &p.name).await), S::InOperation);
    let p = office
        .clone()
        .record_post_evaluation(full)
        .await
        .unwrap()
        .into_inner();
    let met: Vec<(String, bool)> = p
        .post_evaluation
        .unwrap()
        .indicators
        .into_iter()
        .map(|i| (i.promised.unwrap().name, i.met))
        .collect();
    assert_eq!(
        met,
        [
            ("availability".to_owned(), true),
            ("median response time".to_owned(), false)
        ]
    );
}

/// Promised indicators are checked when the applicant writes them.
#[tokio::test]
async fn promised_indicators_are_complete_and_named_once() {
    let app = spawn_app().await;
    let p = draft(&app).await;
    assert_eq!(p.promised_indicators, promised_indicators());
    let mut indicators = promised_indicators();
    indicators[1].name = indicators[0].name.clone();
    indicators[0].direction = 0;
    indicators.push(pb::PromisedIndicator {
        target: f64::NAN,
        ..promised_indicators()[0].clone()
    });
    indicators[2].name = "uptime".into();
    indicators[2].unit = String::new();
    let refused = app
        .client(Role::Applicant)
        .update_project(pb::UpdateProjectRequest {
            project: Some(pb::Project {
                promised_indicators: indicators,
                ..p.clone()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["promised_indicators".into()],
            }),
        })
        .await
        .unwrap_err();
    let mut fields = violated_fields(&refused);
    fields.sort();
    assert_eq!(
        fields,
        [
            "project.promised_indicators[0].direction",
            "project.promised_indicators[1].name",
            "project.promised_indicators[2].target",
            "project.promised_indicators[2].unit",
        ]
    );
    let p = app
        .client(Role::Applicant)
        .update_project(pb::UpdateProjectRequest {
            project: Some(pb::Project {
                promised_indicators: vec![],
                ..p.clone()
            }),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["promised_indicators".into()],
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(p.promised_indicators.is_empty());
}
