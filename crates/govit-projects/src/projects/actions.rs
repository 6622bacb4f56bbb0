//! The lifecycle actions a client takes, one [`Step`] each: the request converted into the
//! action, its project and its own data, and the guard and changes that data makes.

use chrono::NaiveDate;
use govit_platform::{
    Caller, ServiceError, ServiceResult, Violations,
    error::PreconditionViolation,
    time::{date_from_stored, date_to_stored},
};
use govit_proto::{StoredEnum, google::r#type::Date, projects::v1 as pb};

use super::{Change, Target};
use crate::{
    ProjectsService, SupervisionPolicy,
    lifecycle::Action,
    model::{
        AcceptanceRec, DocumentRow, EvaluationRec, Fen, Funding, MeasuredRec, PanelRec, PlanRec,
        ProjectRow, SimilarRec, TenderRec, to_json,
    },
    store::NewEvent,
    validation::{self as check, MAX_NAME_CHARS, MAX_REASON_CHARS, MAX_TEXT_CHARS},
};

/// A lifecycle action asked for by a client.
pub(crate) struct Step {
    action: Action,
    target: Target,
    data: StepData,
}

/// What an action carries besides its project.
pub(super) enum StepData {
    Nothing,
    /// The submission, guarded by the documents and fields review needs, with the projects
    /// most like it for office to look at.
    Submission(Vec<SimilarRec>),
    /// Office's finding on duplicate construction, and whether it spans units.
    Finding(Box<super::duplicates::NewFinding>, bool),
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
    Tender(Box<Tender>),
    /// The acceptance report a request for acceptance files: its id and its full name.
    AcceptanceReport {
        document_id: Option<String>,
        name: String,
    },
    /// The panel an acceptance needs and the units taking part (credit codes).
    Acceptance {
        panel: Vec<PanelRec>,
        units: Vec<String>,
    },
    /// The day operation started, when given.
    Operation(Option<NaiveDate>),
    /// The panel a post-evaluation review needs.
    EvaluationPanel(Vec<PanelRec>),
    Evaluation {
        scores: [i32; 3],
        req: pb::RecordPostEvaluationRequest,
        document_id: Option<String>,
        /// The post-evaluation panel's review and decision, when one evaluated the project.
        panel: Option<(String, pb::ReviewDecision)>,
    },
}

/// A tender's result as checked from its request.
pub(super) struct Tender {
    contractor: String,
    supervision_firm: String,
    contract_amount: Fen,
    contract_date: NaiveDate,
    record: TenderRec,
}

impl Step {
    /// Adds the project's name and etag to the request's own violations and ends the check.
    pub(super) fn finish(
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
    CloseProjectRequest => Action::Close;
}

impl TryFrom<pb::SubmitProjectRequest> for Step {
    type Error = ServiceError;
    fn try_from(req: pb::SubmitProjectRequest) -> ServiceResult<Step> {
        let data = StepData::Submission(Vec::new());
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
        let mut v = Violations::new();
        let panel = check::panel(&mut v, "panel", &req.panel);
        let field = "participating_units";
        if req.participating_units.is_empty() {
            v.add(
                field,
                "must name the units taking part, the contractor and the supervision firm among them",
            );
        } else if req.participating_units.len() > MAX_PARTICIPATING_UNITS {
            v.add(
                field,
                format!("must name at most {MAX_PARTICIPATING_UNITS} units"),
            );
        }
        let mut units: Vec<String> = Vec::new();
        for (i, unit) in req
            .participating_units
            .iter()
            .enumerate()
            .take(MAX_PARTICIPATING_UNITS)
        {
            let field = format!("{field}[{i}]");
            if let Some(code) = check::org_name(&mut v, &field, unit) {
                let code = code.to_string();
                if units.contains(&code) {
                    v.add(field, format!("{unit} is named twice"));
                } else {
                    units.push(code);
                }
            }
        }
        let data = StepData::Acceptance { panel, units };
        Step::finish(v, &req.name, &req.etag, Action::StartAcceptance, data)
    }
}

const MAX_PARTICIPATING_UNITS: usize = 50;

impl TryFrom<pb::StartPostEvaluationReviewRequest> for Step {
    type Error = ServiceError;
    fn try_from(req: pb::StartPostEvaluationReviewRequest) -> ServiceResult<Step> {
        let mut v = Violations::new();
        let panel = check::panel(&mut v, "panel", &req.panel);
        let data = StepData::EvaluationPanel(panel);
        Step::finish(
            v,
            &req.name,
            &req.etag,
            Action::StartPostEvaluationReview,
            data,
        )
    }
}

impl TryFrom<pb::RequestAcceptanceRequest> for Step {
    type Error = ServiceError;
    fn try_from(req: pb::RequestAcceptanceRequest) -> ServiceResult<Step> {
        let mut v = Violations::new();
        let document_id = document_field(
            &mut v,
            "acceptance_report",
            &req.name,
            &req.acceptance_report,
        );
        let data = StepData::AcceptanceReport {
            document_id,
            name: req.acceptance_report,
        };
        Step::finish(v, &req.name, &req.etag, Action::RequestAcceptance, data)
    }
}

impl TryFrom<pb::StartOperationRequest> for Step {
    type Error = ServiceError;
    fn try_from(req: pb::StartOperationRequest) -> ServiceResult<Step> {
        let mut v = Violations::new();
        let day = check::date(
            &mut v,
            "operation_start_date",
            req.operation_start_date.as_ref(),
        );
        let data = StepData::Operation(day);
        Step::finish(v, &req.name, &req.etag, Action::StartOperation, data)
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
        let designer = check::org_name(&mut v, "result.design_firm", &result.design_firm);
        check::amount(
            &mut v,
            "result.contract_amount_fen",
            result.contract_amount_fen,
            false,
        );
        let contract_date = required_date(&mut v, "result.contract_date", &result.contract_date);
        let announcement_date = required_date(
            &mut v,
            "result.announcement_date",
            &result.announcement_date,
        );
        if let (Some(announced), Some(signed)) = (announcement_date, contract_date)
            && announced > signed
        {
            v.add(
                "result.announcement_date",
                format!("{announced} is after the contract date ({signed})"),
            );
        }
        if contractor.is_some() && contractor == firm {
            v.add(
                "result.supervision_firm",
                "must not be the contractor: supervision is independent",
            );
        }
        if firm.is_some() && designer == firm {
            v.add(
                "result.design_firm",
                "must not be the supervision firm: supervision is independent of the design it checks",
            );
        }
        let method =
            check::enum_value::<pb::TenderMethod>(&mut v, "result.method", result.method, false);
        let justification = result.method_justification.trim();
        if method.is_some_and(|m| m != pb::TenderMethod::Open) {
            check::text(
                &mut v,
                "result.method_justification",
                justification,
                MAX_REASON_CHARS,
            );
        } else {
            check::optional_text(
                &mut v,
                "result.method_justification",
                justification,
                MAX_REASON_CHARS,
            );
        }
        let standards = result.standards.unwrap_or_default();
        for (field, list) in [
            ("result.standards.design", &standards.design),
            ("result.standards.construction", &standards.construction),
            ("result.standards.supervision", &standards.supervision),
        ] {
            check::standards(&mut v, field, list);
        }
        let trimmed = |list: Vec<String>| list.iter().map(|s| s.trim().to_owned()).collect();
        // Each part left out is a violation already, which `finish` refuses.
        let (
            Some(contractor),
            Some(firm),
            Some(designer),
            Some(method),
            Some(contract_date),
            Some(announcement_date),
        ) = (
            contractor,
            firm,
            designer,
            method,
            contract_date,
            announcement_date,
        )
        else {
            return Step::finish(
                v,
                &req.name,
                &req.etag,
                Action::RecordTenderResult,
                StepData::Nothing,
            );
        };
        let data = StepData::Tender(Box::new(Tender {
            contractor: contractor.to_string(),
            supervision_firm: firm.to_string(),
            contract_amount: Fen::new(result.contract_amount_fen),
            contract_date,
            record: TenderRec {
                method: method.as_stored().to_owned(),
                method_justification: justification.to_owned(),
                design_firm: designer.to_string(),
                announcement_date: date_to_stored(announcement_date),
                design_standards: trimmed(standards.design),
                construction_standards: trimmed(standards.construction),
                supervision_standards: trimmed(standards.supervision),
            },
        }));
        Step::finish(v, &req.name, &req.etag, Action::RecordTenderResult, data)
    }
}

/// A date the request must carry.
fn required_date(v: &mut Violations, field: &str, d: &Option<Date>) -> Option<NaiveDate> {
    if d.is_none() {
        v.add(field, "is required");
    }
    check::date(v, field, d.as_ref())
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
        if req.benefits.is_empty() && req.measured.is_empty() {
            v.add("benefits", "must compare at least one benefit promised in the feasibility study with what was achieved");
        }
        let mut names = std::collections::HashSet::new();
        for (i, m) in req.measured.iter().enumerate() {
            let name = m.name.trim();
            check::text(&mut v, &format!("measured[{i}].name"), name, MAX_NAME_CHARS);
            if !name.is_empty() && !names.insert(name) {
                v.add(
                    format!("measured[{i}].name"),
                    format!("{name:?} is measured twice"),
                );
            }
            if !m.actual.is_finite() {
                v.add(format!("measured[{i}].actual"), "must be a finite number");
            }
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
            panel: None,
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
        if let StepData::Tender(tender) = &step.data {
            // Checked before the transition so a missing organisation changes nothing.
            self.require_org(&tender.contractor).await?;
            self.require_org(&tender.supervision_firm).await?;
            self.require_org(&tender.record.design_firm).await?;
        }
        if let StepData::Acceptance { units, .. } = &step.data {
            for unit in units {
                self.require_org(unit).await?;
            }
        }
        let mut step = step;
        if let StepData::Evaluation { panel, .. } = &mut step.data {
            // The evaluation's etag pins the project as it is now: a panel concluding since
            // changes it, and the transition refuses.
            let code = step.target.code();
            self.visible_project(caller, code).await?;
            *panel = self
                .store
                .latest_applied_outcome(code, pb::ReviewStage::PostEvaluation)
                .await?
                .map(|o| (format!("reviews/{}", o.review_id), o.decision));
        }
        match &mut step.data {
            StepData::Submission(similar) => {
                // Only a submission that can be taken is worth comparing every project for;
                // the transition refuses the rest as before. Read before the move: the
                // submission's etag pins the text compared.
                let row = self.visible_project(caller, step.target.code()).await?;
                if step.action.sources().contains(&row.state) {
                    *similar = self.similar_to(step.target.code(), 5).await?;
                }
            }
            StepData::Finding(finding, across_units) => {
                let project = self.visible_project(caller, step.target.code()).await?;
                *across_units = self
                    .across_units(caller, &project, finding.overlapping())
                    .await?;
            }
            _ => {}
        }
        let change = step.data.into_change(&self.policy, caller);
        self.run_transition(caller, step.target, step.action, change)
            .await
    }
}

impl StepData {
    /// What the data changes on the project and in its audit event; a post-evaluation is
    /// graded by `weights`.
    fn into_change(self, policy: &SupervisionPolicy, caller: &Caller) -> Change {
        let weights = policy.evaluation_weights;
        let stable_months = policy.stable_operation_months;
        match self {
            Self::Nothing => Change::new(|_, _, _| Ok(())),
            Self::Submission(similar) => Change::new(move |row, event, docs| {
                submission_guard(row, event, docs)?;
                row.similar_projects = to_json(&similar);
                Ok(())
            }),
            Self::Finding(finding, across_units) => {
                let recorded = finding.into_record(caller, across_units);
                Change::new(move |row, event, _| {
                    event.changed_fields = vec!["duplication_finding".into()];
                    event.reason =
                        format!("{}: {}", recorded.verdict, recorded.overlapping.join(", "));
                    row.duplication_finding = Some(to_json(&recorded));
                    Ok(())
                })
            }
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
            Self::Tender(tender) => {
                Change::new(move |row, event, _| set_tender_result(row, event, *tender))
            }
            Self::AcceptanceReport { document_id, name } => {
                Change::new(move |row, event, docs| {
                    let report = find_document(
                        docs,
                        document_id,
                        &name,
                        pb::DocumentKind::AcceptanceReport,
                    )?;
                    event.changed_fields = vec!["acceptance".into()];
                    event.document_sha256 = vec![report.sha256.clone()];
                    // A new request after a failed acceptance files its own report; the units
                    // are named again when office starts it.
                    row.acceptance_record = Some(to_json(&AcceptanceRec {
                        report_document: name,
                        participating_units: Vec::new(),
                    }));
                    Ok(())
                })
            }
            Self::Acceptance { panel, units } => {
                Change::new(move |row, event, _| start_acceptance(row, event, panel, units))
            }
            Self::Operation(day) => {
                Change::new(move |row, event, _| start_operation(row, event, day, stable_months))
            }
            Self::EvaluationPanel(panel) => Change::new(move |row, event, _| {
                stable_period_passed(row)?;
                row.review_panel = to_json(&panel);
                event.changed_fields = vec!["review_panel".into()];
                Ok(())
            }),
            Self::Evaluation {
                scores,
                req,
                document_id,
                panel,
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
                        panel,
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

fn start_acceptance(
    row: &mut ProjectRow,
    event: &mut NewEvent,
    panel: Vec<PanelRec>,
    units: Vec<String>,
) -> ServiceResult<()> {
    // The contractor hands the system over and the supervision firm attests to it: an
    // acceptance without either accepts nothing.
    for (role, party) in [
        ("contractor", &row.contractor),
        ("supervision firm", &row.supervision_firm),
    ] {
        if let Some(code) = party
            && !units.contains(code)
        {
            return Err(ServiceError::field(
                "participating_units",
                format!(
                    "must include the project's {role}, {}",
                    crate::model::org_name(code)
                ),
            ));
        }
    }
    let mut record = row.acceptance()?.unwrap_or_default();
    record.participating_units = units;
    row.acceptance_record = Some(to_json(&record));
    row.review_panel = to_json(&panel);
    event.changed_fields = vec!["review_panel".into(), "acceptance".into()];
    Ok(())
}

fn start_operation(
    row: &mut ProjectRow,
    event: &mut NewEvent,
    day: Option<NaiveDate>,
    stable_months: u32,
) -> ServiceResult<()> {
    let field = "operation_start_date";
    let day = day.unwrap_or_else(govit_platform::time::beijing_today);
    check::not_in_future(field, day)?;
    if let Some(signed) = row.contract_date.as_deref() {
        let signed = date_from_stored(signed).map_err(ServiceError::Internal)?;
        if day < signed {
            return Err(ServiceError::field(
                field,
                format!("{day} is before the contract was signed ({signed})"),
            ));
        }
    }
    let open = day
        .checked_add_months(chrono::Months::new(stable_months))
        .ok_or_else(|| ServiceError::field(field, format!("{day} is out of range")))?;
    row.operation_start_date = Some(date_to_stored(day));
    row.post_evaluation_from = Some(date_to_stored(open));
    event.changed_fields = vec![
        "operation_start_date".into(),
        "post_evaluation_open_date".into(),
    ];
    Ok(())
}

fn set_tender_result(
    row: &mut ProjectRow,
    event: &mut NewEvent,
    tender: Tender,
) -> ServiceResult<()> {
    // The applying unit cannot contract, design or supervise its own project: the tender
    // exists to buy from someone else.
    for (field, org) in [
        ("result.contractor", &tender.contractor),
        ("result.supervision_firm", &tender.supervision_firm),
        ("result.design_firm", &tender.record.design_firm),
    ] {
        if *org == row.applicant {
            return Err(ServiceError::field(
                field,
                "must not be the applying unit itself",
            ));
        }
    }
    // A tender is recorded after the fact. It may predate the project's record here: a
    // project already under way when the city adopted the system is entered late.
    check::not_in_future("result.contract_date", tender.contract_date)?;
    let contract_amount = tender.contract_amount;
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
    row.contractor = Some(tender.contractor);
    row.supervision_firm = Some(tender.supervision_firm);
    row.contract_amount_fen = Some(contract_amount);
    row.contract_date = Some(date_to_stored(tender.contract_date));
    row.tender_record = Some(to_json(&tender.record));
    event.changed_fields = vec!["tender_result".into()];
    Ok(())
}

/// A post-evaluation, by the panel or by office, waits for the stable period after operation
/// started. A project put into operation before the period was kept has none to wait for.
fn stable_period_passed(row: &ProjectRow) -> ServiceResult<()> {
    let Some(from) = row.post_evaluation_from.as_deref() else {
        return Ok(());
    };
    let from = date_from_stored(from).map_err(ServiceError::Internal)?;
    let today = govit_platform::time::beijing_today();
    if today >= from {
        return Ok(());
    }
    let started = row.operation_start_date.clone().unwrap_or_default();
    Err(ServiceError::FailedPrecondition {
        message: format!(
            "{} went into operation on {started}: its post-evaluation may start on {from}, \
             after the stable period",
            row.name()
        ),
        violations: vec![PreconditionViolation::new(
            "STABLE_OPERATION_PERIOD",
            row.name(),
            format!("in operation since {started}; post-evaluation from {from}"),
        )],
    })
}

/// Each indicator the project promised beside what was measured for it: every one measured,
/// nothing else.
fn measure(
    row: &ProjectRow,
    measured: &[pb::MeasuredIndicator],
) -> ServiceResult<Vec<MeasuredRec>> {
    let promised = row.promised_indicators().map_err(ServiceError::Internal)?;
    let mut v = Violations::new();
    for (i, m) in measured.iter().enumerate() {
        if !promised.iter().any(|p| p.name == m.name.trim()) {
            v.add(
                format!("measured[{i}].name"),
                format!(
                    "{:?} is not an indicator the project promised",
                    m.name.trim()
                ),
            );
        }
    }
    let mut results = Vec::new();
    for p in promised {
        match measured.iter().find(|m| m.name.trim() == p.name) {
            Some(m) => results.push(MeasuredRec {
                met: p.met_by(m.actual).map_err(ServiceError::Internal)?,
                actual: m.actual,
                promised: p,
            }),
            None => v.add(
                "measured",
                format!(
                    "must measure the promised indicator {:?} ({})",
                    p.name, p.unit
                ),
            ),
        }
    }
    v.finish()?;
    Ok(results)
}

/// A post-evaluation's scores, the weights they are graded by, and the request they came in.
struct Evaluated {
    scores: [i32; 3],
    weights: [i32; 3],
    req: pb::RecordPostEvaluationRequest,
    panel: Option<(String, pb::ReviewDecision)>,
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
    stable_period_passed(row)?;
    let indicators = measure(row, &evaluated.req.measured)?;
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
        indicators,
        panel_review: evaluated.panel.as_ref().map(|(review, _)| review.clone()),
        panel_decision: evaluated.panel.map(|(_, d)| d.as_stored().to_owned()),
    }));
    event.changed_fields = vec!["post_evaluation".into(), "post_evaluation_summary".into()];
    event.document_sha256 = vec![report.sha256.clone()];
    event.reason = format!("grade {}", grade.as_stored());
    Ok(())
}
