//! The lifecycle actions a client takes, one [`Step`] each: the request converted into the
//! action, its project and its own data, and the guard and changes that data makes.

use govit_platform::{
    Caller, ServiceError, ServiceResult, Violations, error::PreconditionViolation,
    time::date_to_stored,
};
use govit_proto::{StoredEnum, projects::v1 as pb};

use super::{Change, Target};
use crate::{
    ProjectsService,
    lifecycle::Action,
    model::{DocumentRow, EvaluationRec, Fen, Funding, PanelRec, PlanRec, ProjectRow, to_json},
    store::NewEvent,
    validation::{self as check, MAX_REASON_CHARS, MAX_TEXT_CHARS},
};

/// A lifecycle action asked for by a client.
pub(crate) struct Step {
    action: Action,
    target: Target,
    data: StepData,
}

/// What an action carries besides its project.
enum StepData {
    Nothing,
    /// The submission, guarded by the documents and fields review needs.
    Submission,
    /// Why the project or its plan goes back to the applicant.
    Reasons(Vec<String>),
    /// The expert panel the review needs.
    Panel(Vec<PanelRec>),
    /// A remark for the audit trail.
    Remark(String),
    Plan {
        plan: pb::ImplementationPlan,
        document_id: Option<String>,
    },
    Tender {
        contractor: String,
        supervision_firm: String,
        contract_amount: Fen,
        contract_date: Option<String>,
    },
    Evaluation {
        scores: [i32; 3],
        req: pb::RecordPostEvaluationRequest,
        document_id: Option<String>,
    },
}

impl Step {
    /// Adds the project's name and etag to the request's own violations and ends the check.
    fn finish(
        mut v: Violations,
        name: &str,
        etag: &str,
        action: Action,
        data: StepData,
    ) -> ServiceResult<Step> {
        let target = Target::parse(&mut v, name, etag, action);
        v.finish()?;
        let target = target.ok_or_else(|| ServiceError::field("name", "is required"))?;
        Ok(Step {
            action,
            target,
            data,
        })
    }

    fn plain(name: &str, etag: &str, action: Action) -> ServiceResult<Step> {
        Step::finish(Violations::new(), name, etag, action, StepData::Nothing)
    }

    fn with_reasons(
        name: &str,
        etag: &str,
        action: Action,
        reasons: Vec<String>,
    ) -> ServiceResult<Step> {
        let mut v = Violations::new();
        check::reasons(&mut v, "reasons", &reasons);
        Step::finish(v, name, etag, action, StepData::Reasons(reasons))
    }

    fn with_panel(
        name: &str,
        etag: &str,
        action: Action,
        panel: &[pb::PanelRequirement],
    ) -> ServiceResult<Step> {
        let mut v = Violations::new();
        let panel = check::panel(&mut v, "panel", panel);
        Step::finish(v, name, etag, action, StepData::Panel(panel))
    }

    /// `remark` in `field`, required or not.
    fn with_remark(
        name: &str,
        etag: &str,
        action: Action,
        (field, remark, required): (&str, String, bool),
    ) -> ServiceResult<Step> {
        let mut v = Violations::new();
        if required {
            check::text(&mut v, field, &remark, MAX_REASON_CHARS);
        } else {
            check::optional_text(&mut v, field, &remark, MAX_REASON_CHARS);
        }
        Step::finish(v, name, etag, action, StepData::Remark(remark))
    }

    pub fn action(&self) -> Action {
        self.action
    }
}

macro_rules! plain_steps {
    ($($request:ident => $action:expr;)+) => {$(
        impl TryFrom<pb::$request> for Step {
            type Error = ServiceError;
            fn try_from(req: pb::$request) -> ServiceResult<Step> {
                Step::plain(&req.name, &req.etag, $action)
            }
        }
    )+};
}

plain_steps! {
    StartTenderingRequest => Action::StartTendering;
    RequestAcceptanceRequest => Action::RequestAcceptance;
    StartOperationRequest => Action::StartOperation;
    CloseProjectRequest => Action::Close;
}

impl TryFrom<pb::SubmitProjectRequest> for Step {
    type Error = ServiceError;
    fn try_from(req: pb::SubmitProjectRequest) -> ServiceResult<Step> {
        let data = StepData::Submission;
        Step::finish(
            Violations::new(),
            &req.name,
            &req.etag,
            Action::Submit,
            data,
        )
    }
}

impl TryFrom<pb::ReturnProjectRequest> for Step {
    type Error = ServiceError;
    fn try_from(req: pb::ReturnProjectRequest) -> ServiceResult<Step> {
        Step::with_reasons(&req.name, &req.etag, Action::Return, req.reasons)
    }
}

impl TryFrom<pb::ReturnImplementationPlanRequest> for Step {
    type Error = ServiceError;
    fn try_from(req: pb::ReturnImplementationPlanRequest) -> ServiceResult<Step> {
        Step::with_reasons(&req.name, &req.etag, Action::ReturnPlan, req.reasons)
    }
}

impl TryFrom<pb::AcceptForReviewRequest> for Step {
    type Error = ServiceError;
    fn try_from(req: pb::AcceptForReviewRequest) -> ServiceResult<Step> {
        Step::with_panel(&req.name, &req.etag, Action::AcceptForReview, &req.panel)
    }
}

impl TryFrom<pb::StartAcceptanceRequest> for Step {
    type Error = ServiceError;
    fn try_from(req: pb::StartAcceptanceRequest) -> ServiceResult<Step> {
        Step::with_panel(&req.name, &req.etag, Action::StartAcceptance, &req.panel)
    }
}

impl TryFrom<pb::RecordImplementationPlanRequest> for Step {
    type Error = ServiceError;
    fn try_from(req: pb::RecordImplementationPlanRequest) -> ServiceResult<Step> {
        let remark = ("comment", req.comment, false);
        Step::with_remark(&req.name, &req.etag, Action::RecordPlan, remark)
    }
}

impl TryFrom<pb::WithdrawProjectRequest> for Step {
    type Error = ServiceError;
    fn try_from(req: pb::WithdrawProjectRequest) -> ServiceResult<Step> {
        let remark = ("reason", req.reason, false);
        Step::with_remark(&req.name, &req.etag, Action::Withdraw, remark)
    }
}

impl TryFrom<pb::SuspendProjectRequest> for Step {
    type Error = ServiceError;
    fn try_from(req: pb::SuspendProjectRequest) -> ServiceResult<Step> {
        let remark = ("reason", req.reason, true);
        Step::with_remark(&req.name, &req.etag, Action::Suspend, remark)
    }
}

impl TryFrom<pb::ResumeProjectRequest> for Step {
    type Error = ServiceError;
    fn try_from(req: pb::ResumeProjectRequest) -> ServiceResult<Step> {
        let remark = ("reason", req.reason, false);
        Step::with_remark(&req.name, &req.etag, Action::Resume, remark)
    }
}

impl TryFrom<pb::FileImplementationPlanRequest> for Step {
    type Error = ServiceError;
    fn try_from(req: pb::FileImplementationPlanRequest) -> ServiceResult<Step> {
        let mut v = Violations::new();
        let plan = req.plan.unwrap_or_default();
        for (field, text) in [
            ("plan.task_plan", &plan.task_plan),
            ("plan.system_design", &plan.system_design),
            ("plan.equipment_selection", &plan.equipment_selection),
            ("plan.schedule", &plan.schedule),
        ] {
            check::text(&mut v, field, text, MAX_TEXT_CHARS);
        }
        let document_id =
            document_field(&mut v, "plan.plan_document", &req.name, &plan.plan_document);
        let data = StepData::Plan { plan, document_id };
        Step::finish(v, &req.name, &req.etag, Action::FilePlan, data)
    }
}

/// The id of `document` if it is a document of project `name`, else a violation.
fn document_field(v: &mut Violations, field: &str, name: &str, document: &str) -> Option<String> {
    let id = check::document_of(name, document);
    if id.is_none() {
        v.add(
            field,
            format!("must be a document of this project: {name}/documents/{{id}}"),
        );
    }
    id
}

impl TryFrom<pb::RecordTenderResultRequest> for Step {
    type Error = ServiceError;
    fn try_from(req: pb::RecordTenderResultRequest) -> ServiceResult<Step> {
        let mut v = Violations::new();
        let result = req.result.unwrap_or_default();
        let contractor = check::org_name(&mut v, "result.contractor", &result.contractor);
        let firm = check::org_name(&mut v, "result.supervision_firm", &result.supervision_firm);
        check::amount(
            &mut v,
            "result.contract_amount_fen",
            result.contract_amount_fen,
            false,
        );
        let date = check::date(
            &mut v,
            "result.contract_date",
            result.contract_date.as_ref(),
        );
        if result.contract_date.is_none() {
            v.add("result.contract_date", "is required");
        }
        if contractor.is_some() && contractor == firm {
            v.add(
                "result.supervision_firm",
                "must not be the contractor: supervision is independent",
            );
        }
        let data = StepData::Tender {
            contractor: contractor.map(|c| c.to_string()).unwrap_or_default(),
            supervision_firm: firm.map(|f| f.to_string()).unwrap_or_default(),
            contract_amount: Fen::new(result.contract_amount_fen),
            contract_date: date.map(date_to_stored),
        };
        Step::finish(v, &req.name, &req.etag, Action::RecordTenderResult, data)
    }
}

impl TryFrom<pb::RecordPostEvaluationRequest> for Step {
    type Error = ServiceError;
    fn try_from(req: pb::RecordPostEvaluationRequest) -> ServiceResult<Step> {
        let mut v = Violations::new();
        check::text(&mut v, "summary", &req.summary, MAX_TEXT_CHARS);
        let scores = [
            req.engineering_quality_score,
            req.operating_state_score,
            req.investment_benefit_score,
        ];
        for (field, score) in [
            "engineering_quality_score",
            "operating_state_score",
            "investment_benefit_score",
        ]
        .iter()
        .zip(scores)
        {
            // A grade is computed from the scores: a score of 0 is taken as "not given".
            v.check(
                (1..=100).contains(&score),
                field,
                "must be a score from 1 to 100",
            );
        }
        if req.benefits.is_empty() {
            v.add("benefits", "must compare at least one benefit promised in the feasibility study with what was achieved");
        }
        for (i, b) in req.benefits.iter().enumerate() {
            check::text(&mut v, &format!("benefits[{i}].benefit"), &b.benefit, 500);
            check::text(
                &mut v,
                &format!("benefits[{i}].promised"),
                &b.promised,
                MAX_REASON_CHARS,
            );
            check::text(
                &mut v,
                &format!("benefits[{i}].achieved"),
                &b.achieved,
                MAX_REASON_CHARS,
            );
        }
        let document_id =
            document_field(&mut v, "report_document", &req.name, &req.report_document);
        let (name, etag) = (req.name.clone(), req.etag.clone());
        let data = StepData::Evaluation {
            scores,
            req,
            document_id,
        };
        Step::finish(v, &name, &etag, Action::RecordPostEvaluation, data)
    }
}

impl ProjectsService {
    /// Takes a client's lifecycle step.
    pub(crate) async fn take_step(
        &self,
        caller: &Caller,
        step: Step,
    ) -> ServiceResult<pb::Project> {
        if let StepData::Tender {
            contractor,
            supervision_firm,
            ..
        } = &step.data
        {
            // Checked before the transition so a missing organisation changes nothing.
            self.require_org(contractor).await?;
            self.require_org(supervision_firm).await?;
        }
        let change = step.data.into_change(self.policy.evaluation_weights);
        self.run_transition(caller, step.target, step.action, change)
            .await
    }
}

impl StepData {
    /// What the data changes on the project and in its audit event; a post-evaluation is
    /// graded by `weights`.
    fn into_change(self, weights: [i32; 3]) -> Change {
        match self {
            Self::Nothing => Change::new(|_, _, _| Ok(())),
            Self::Submission => Change::new(submission_guard),
            Self::Reasons(reasons) => Change::new(move |row, event, _| {
                row.return_reasons = to_json(&reasons);
                event.reason = reasons.join("; ");
                event.changed_fields = vec!["return_reasons".into()];
                Ok(())
            }),
            Self::Panel(panel) => Change::new(move |row, event, _| {
                row.review_panel = to_json(&panel);
                event.changed_fields = vec!["review_panel".into()];
                Ok(())
            }),
            Self::Remark(remark) => Change::new(move |_, event, _| {
                event.reason = remark;
                Ok(())
            }),
            Self::Plan { plan, document_id } => {
                Change::new(move |row, event, docs| file_plan(row, event, docs, plan, document_id))
            }
            Self::Tender {
                contractor,
                supervision_firm,
                contract_amount,
                contract_date,
            } => Change::new(move |row, event, _| {
                set_tender_result(
                    row,
                    event,
                    [contractor, supervision_firm],
                    contract_amount,
                    contract_date,
                )
            }),
            Self::Evaluation {
                scores,
                req,
                document_id,
            } => Change::new(move |row, event, docs| {
                let report = find_document(
                    docs,
                    document_id,
                    &req.report_document,
                    pb::DocumentKind::EvaluationReport,
                )?;
                record_evaluation(
                    row,
                    event,
                    Evaluated {
                        scores,
                        weights,
                        req,
                    },
                    report,
                )
            }),
        }
    }
}

/// A project is submitted complete: the application form in three sealed copies, the
/// feasibility study, and the fields review needs.
fn submission_guard(
    row: &mut ProjectRow,
    event: &mut NewEvent,
    docs: &[DocumentRow],
) -> ServiceResult<()> {
    let form = docs
        .iter()
        .filter(|d| d.kind == pb::DocumentKind::ApplicationForm);
    let study = docs
        .iter()
        .find(|d| d.kind == pb::DocumentKind::FeasibilityStudyReport);
    let mut missing = missing_documents(form.clone(), study);
    missing.extend(missing_fields(row));
    if !missing.is_empty() {
        let message = format!(
            "{} cannot be submitted: {}",
            row.name(),
            missing
                .iter()
                .map(|m| m.2.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
        return Err(ServiceError::FailedPrecondition {
            message,
            violations: missing
                .into_iter()
                .map(|(t, s, d)| PreconditionViolation::new(t, s, d))
                .collect(),
        });
    }
    event.document_sha256 = form
        .map(|d| d.sha256.clone())
        .chain(study.map(|d| d.sha256.clone()))
        .collect();
    row.return_reasons = "[]".into();
    Ok(())
}

/// What keeps a project from submission: (precondition kind, subject, description).
type Missing = (&'static str, &'static str, String);

fn missing_documents<'d>(
    form: impl Iterator<Item = &'d DocumentRow>,
    study: Option<&DocumentRow>,
) -> Vec<Missing> {
    let mut missing = Vec::new();
    match form.map(|d| d.sealed_copies).max() {
        None => missing.push((
            "DOCUMENT_MISSING",
            "application_form",
            "the application form is not uploaded".to_owned(),
        )),
        Some(n) if n < 3 => missing.push((
            "DOCUMENT_MISSING",
            "application_form",
            format!("the application form must be recorded as three sealed copies, got {n}"),
        )),
        _ => {}
    }
    if study.is_none() {
        missing.push((
            "DOCUMENT_MISSING",
            "feasibility_study_report",
            "the feasibility study report is not uploaded".to_owned(),
        ));
    }
    missing
}

fn missing_fields(row: &ProjectRow) -> Vec<Missing> {
    let mut missing = Vec::new();
    if row.estimated_investment_fen <= Fen::ZERO {
        missing.push((
            "FIELD_MISSING",
            "estimated_investment_fen",
            "the estimated investment must be positive".to_owned(),
        ));
    }
    if row.planned_start_date.is_none() || row.planned_end_date.is_none() {
        missing.push((
            "FIELD_MISSING",
            "planned_construction_period",
            "the planned construction period must be set".to_owned(),
        ));
    }
    if row.funding_source == Funding(None) {
        missing.push((
            "FIELD_MISSING",
            "funding_source",
            "the funding source must be set".to_owned(),
        ));
    }
    if row.contacts == "[]" {
        missing.push((
            "FIELD_MISSING",
            "contacts",
            "at least one contact is needed".to_owned(),
        ));
    }
    missing
}

/// The document `id` among `docs`, which must be of `kind`.
fn find_document<'d>(
    docs: &'d [DocumentRow],
    id: Option<String>,
    name: &str,
    kind: pb::DocumentKind,
) -> ServiceResult<&'d DocumentRow> {
    let document = docs
        .iter()
        .find(|d| Some(&d.id) == id.as_ref())
        .ok_or_else(|| ServiceError::not_found("document", name.to_owned()))?;
    if document.kind != kind {
        return Err(ServiceError::precondition(
            "DOCUMENT_MISSING",
            name.to_owned(),
            format!(
                "{name} is a {} document, not an {}",
                document.kind.as_stored(),
                kind.as_stored()
            ),
        ));
    }
    Ok(document)
}

fn file_plan(
    row: &mut ProjectRow,
    event: &mut NewEvent,
    docs: &[DocumentRow],
    plan: pb::ImplementationPlan,
    document_id: Option<String>,
) -> ServiceResult<()> {
    let document = find_document(
        docs,
        document_id,
        &plan.plan_document,
        pb::DocumentKind::ImplementationPlan,
    )?;
    event.changed_fields = vec!["implementation_plan".into()];
    event.document_sha256 = vec![document.sha256.clone()];
    row.implementation_plan = Some(to_json(&PlanRec {
        task_plan: plan.task_plan,
        system_design: plan.system_design,
        equipment_selection: plan.equipment_selection,
        schedule: plan.schedule,
        plan_document: plan.plan_document,
    }));
    row.return_reasons = "[]".into();
    Ok(())
}

fn set_tender_result(
    row: &mut ProjectRow,
    event: &mut NewEvent,
    [contractor, firm]: [String; 2],
    contract_amount: Fen,
    contract_date: Option<String>,
) -> ServiceResult<()> {
    // The applying unit cannot contract or supervise its own project: the tender exists to
    // buy from someone else.
    for (field, org) in [
        ("result.contractor", &contractor),
        ("result.supervision_firm", &firm),
    ] {
        if *org == row.applicant {
            return Err(ServiceError::field(
                field,
                "must not be the applying unit itself",
            ));
        }
    }
    // A contract cannot commit more than was approved: a larger one goes through a budget
    // change (RequestBudgetChange) first, which is reviewed and may need re-approval.
    if let Some(budget) = row.approved_budget_fen
        && contract_amount.get() > budget.get()
    {
        let (contract, budget) = (contract_amount.get(), budget.get());
        return Err(ServiceError::FailedPrecondition {
            message: format!(
                "a contract of {contract} fen is above the approved budget of {budget} fen: \
                 have a budget change approved first"
            ),
            violations: vec![PreconditionViolation::new(
                "CONTRACT_EXCEEDS_BUDGET",
                row.name(),
                format!("approved {budget} fen, contract {contract} fen"),
            )],
        });
    }
    row.contractor = Some(contractor);
    row.supervision_firm = Some(firm);
    row.contract_amount_fen = Some(contract_amount);
    row.contract_date = contract_date;
    event.changed_fields = vec!["tender_result".into()];
    Ok(())
}

/// A post-evaluation's scores, the weights they are graded by, and the request they came in.
struct Evaluated {
    scores: [i32; 3],
    weights: [i32; 3],
    req: pb::RecordPostEvaluationRequest,
}

impl Evaluated {
    /// The weighted score in hundredths and its grade.
    fn grade(&self) -> (i32, pb::EvaluationGrade) {
        // In i64: the scores are client input.
        let weighted = self
            .scores
            .iter()
            .zip(self.weights)
            .map(|(s, w)| i64::from(*s) * i64::from(w))
            .sum::<i64>()
            .clamp(0, 10_000) as i32;
        let grade = match weighted {
            x if x >= 9000 => pb::EvaluationGrade::Excellent,
            x if x >= 7500 => pb::EvaluationGrade::Good,
            x if x >= 6000 => pb::EvaluationGrade::Pass,
            _ => pb::EvaluationGrade::Fail,
        };
        (weighted, grade)
    }
}

fn record_evaluation(
    row: &mut ProjectRow,
    event: &mut NewEvent,
    evaluated: Evaluated,
    report: &DocumentRow,
) -> ServiceResult<()> {
    let (weighted, grade) = evaluated.grade();
    let req = evaluated.req;
    row.post_evaluation_summary = req.summary;
    row.post_evaluation = Some(to_json(&EvaluationRec {
        scores: evaluated.scores,
        weights: evaluated.weights,
        weighted_score_centi: weighted,
        grade: grade.as_stored().to_owned(),
        benefits: req
            .benefits
            .into_iter()
            .map(|b| (b.benefit, b.promised, b.achieved))
            .collect(),
        report_document: req.report_document,
    }));
    event.changed_fields = vec!["post_evaluation".into(), "post_evaluation_summary".into()];
    event.document_sha256 = vec![report.sha256.clone()];
    event.reason = format!("grade {}", grade.as_stored());
    Ok(())
}
