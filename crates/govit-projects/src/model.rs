//! Rows as stored and their wire forms. JSON-in-text columns use the small serde records here,
//! not prost types, so the stored form does not change when the proto grows.

use govit_platform::time::{date_from_stored, date_to_proto, stored_to_timestamp};
use govit_proto::{
    CorruptValue, StoredEnum,
    projects::v1::{self as pb, ProjectState as S},
};
use serde::{Deserialize, Serialize};

pub use crate::money::Fen;
pub use govit_platform::json::{from_json, to_json};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContactRec {
    pub name: String,
    pub title: String,
    pub phone: String,
    pub email: String,
}

impl From<&pb::Contact> for ContactRec {
    fn from(c: &pb::Contact) -> Self {
        ContactRec {
            name: c.name.trim().to_owned(),
            title: c.title.trim().to_owned(),
            phone: c.phone.trim().to_owned(),
            email: c.email.trim().to_owned(),
        }
    }
}

impl From<ContactRec> for pb::Contact {
    fn from(c: ContactRec) -> Self {
        pb::Contact {
            name: c.name,
            title: c.title,
            phone: c.phone,
            email: c.email,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PanelRec {
    pub category: String,
    pub count: i32,
    pub alternates: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PlanRec {
    pub task_plan: String,
    pub system_design: String,
    pub equipment_selection: String,
    pub schedule: String,
    pub plan_document: String,
}

/// What a tender recorded besides its parties, amount and date.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TenderRec {
    /// The stored name of the method (`SINGLE_SOURCE`).
    pub method: String,
    pub method_justification: String,
    /// The design firm's credit code.
    pub design_firm: String,
    /// Stored date (`2026-02-01`).
    pub announcement_date: String,
    pub design_standards: Vec<String>,
    pub construction_standards: Vec<String>,
    pub supervision_standards: Vec<String>,
}

/// A figure the feasibility study promises.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct IndicatorRec {
    /// The stored name of the dimension (`OPERATING_STATE`).
    pub dimension: String,
    pub name: String,
    pub unit: String,
    pub target: f64,
    /// The stored name of the direction (`AT_LEAST`).
    pub direction: String,
}

impl IndicatorRec {
    pub fn to_proto(&self) -> anyhow::Result<pb::PromisedIndicator> {
        Ok(pb::PromisedIndicator {
            dimension: pb::EvaluationDimension::from_stored(&self.dimension)? as i32,
            name: self.name.clone(),
            unit: self.unit.clone(),
            target: self.target,
            direction: pb::IndicatorDirection::from_stored(&self.direction)? as i32,
        })
    }

    /// Whether `actual` meets the target in the promised direction.
    pub fn met_by(&self, actual: f64) -> anyhow::Result<bool> {
        Ok(
            match pb::IndicatorDirection::from_stored(&self.direction)? {
                pb::IndicatorDirection::AtMost => actual <= self.target,
                _ => actual >= self.target,
            },
        )
    }
}

/// A promised indicator with what was measured at post-evaluation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MeasuredRec {
    pub promised: IndicatorRec,
    pub actual: f64,
    pub met: bool,
}

/// A project like another, as found when the other was submitted.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SimilarRec {
    pub code: String,
    pub display_name: String,
    /// Credit code.
    pub applicant: String,
    /// Stored state name.
    pub state: String,
    pub similarity: f64,
    pub terms: Vec<String>,
}

impl SimilarRec {
    pub fn to_proto(&self) -> anyhow::Result<pb::SimilarProject> {
        Ok(pb::SimilarProject {
            project: format!("projects/{}", self.code),
            display_name: self.display_name.clone(),
            applicant: org_name(&self.applicant),
            state: S::from_stored(&self.state)? as i32,
            similarity: self.similarity,
            matched_terms: self.terms.clone(),
        })
    }
}

/// Office's finding on duplicate construction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FindingRec {
    /// Stored verdict name (`OVERLAP`).
    pub verdict: String,
    /// Project codes.
    pub overlapping: Vec<String>,
    pub reasons: String,
    pub across_units: bool,
    pub recorded_by: String,
    pub record_time: String,
}

impl FindingRec {
    pub fn to_proto(&self) -> anyhow::Result<pb::DuplicationFinding> {
        Ok(pb::DuplicationFinding {
            verdict: pb::DuplicationVerdict::from_stored(&self.verdict)? as i32,
            overlapping_projects: self
                .overlapping
                .iter()
                .map(|c| format!("projects/{c}"))
                .collect(),
            reasons: self.reasons.clone(),
            across_units: self.across_units,
            recorded_by: self.recorded_by.clone(),
            record_time: Some(stored_to_timestamp(&self.record_time)?),
        })
    }
}

/// The acceptance's report and who took part in it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AcceptanceRec {
    pub report_document: String,
    /// Credit codes.
    pub participating_units: Vec<String>,
}

/// The body a caller acts for: the IT office for office, its bureau for a supervisor.
pub fn supervising_body(caller: &govit_platform::Caller) -> Option<pb::SupervisingBody> {
    use govit_platform::{Role, auth::Bureau};
    match (caller.role, caller.bureau) {
        (Role::Office, _) => Some(pb::SupervisingBody::ItOffice),
        (Role::Supervisor, Some(Bureau::Finance)) => Some(pb::SupervisingBody::FinanceBureau),
        (Role::Supervisor, Some(Bureau::DevelopmentReform)) => {
            Some(pb::SupervisingBody::DevelopmentReformCommission)
        }
        (Role::Supervisor, Some(Bureau::Audit)) => Some(pb::SupervisingBody::AuditBureau),
        _ => None,
    }
}

pub fn org_name(credit_code: &str) -> String {
    format!("organizations/{credit_code}")
}

/// A project's code (`2026-0007`), the `{code}` of `projects/{code}`; never to be mistaken
/// for an organisation's credit code or a child resource's id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, sqlx::Type)]
#[sqlx(transparent)]
pub struct ProjectCode(String);

impl ProjectCode {
    /// A code as assigned: four-digit year, hyphen, sequence of four to nine digits.
    pub fn parse(code: &str) -> Option<ProjectCode> {
        let (year, seq) = code.split_once('-')?;
        let well_formed = year.len() == 4
            && (4..=9).contains(&seq.len())
            && year.bytes().all(|b| b.is_ascii_digit())
            && seq.bytes().all(|b| b.is_ascii_digit());
        well_formed.then(|| ProjectCode(code.to_owned()))
    }

    /// A code as a request or a peer names it where its form has never been checked (an
    /// override's name, a review's project): a malformed one finds no project, as before,
    /// rather than failing as a field.
    pub fn as_named(code: &str) -> ProjectCode {
        ProjectCode(code.to_owned())
    }

    /// A new draft's, empty until the store assigns its code on insert.
    pub fn unassigned() -> ProjectCode {
        ProjectCode(String::new())
    }

    /// The code the store assigns a new project: its year and sequence within it.
    pub fn assigned(year: i64, seq: i64) -> ProjectCode {
        ProjectCode(format!("{year}-{seq:04}"))
    }

    /// The resource name, `projects/{code}`.
    pub fn name(&self) -> String {
        format!("projects/{}", self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ProjectCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An enum that may be absent, as the wire carries it: absent is 0, `UNSPECIFIED`.
fn on_wire<E: Into<i32>>(value: Option<E>) -> i32 {
    value.map_or(0, Into::into)
}

/// A nullable column holding a stored enum: NULL is `None`, anything else must be a known
/// value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Nullable<T>(pub Option<T>);

impl<T: StoredEnum> TryFrom<Option<String>> for Nullable<T> {
    type Error = CorruptValue;

    fn try_from(text: Option<String>) -> Result<Self, Self::Error> {
        text.as_deref()
            .map(T::from_stored)
            .transpose()
            .map(Nullable)
    }
}

impl<T: StoredEnum> Nullable<T> {
    pub fn as_stored(self) -> Option<&'static str> {
        self.0.map(T::as_stored)
    }
}

/// A project's funding source. A draft may have none yet, stored as `UNSPECIFIED` (the one
/// place that name is stored), so this column does not read through `from_stored`, which
/// refuses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Funding(pub Option<pb::FundingSource>);

impl Funding {
    const NONE_YET: &'static str = "UNSPECIFIED";

    pub fn as_stored(self) -> &'static str {
        self.0.map_or(Self::NONE_YET, StoredEnum::as_stored)
    }
}

impl From<pb::FundingSource> for Funding {
    fn from(source: pb::FundingSource) -> Self {
        Funding(Some(source).filter(|s| *s != pb::FundingSource::Unspecified))
    }
}

impl TryFrom<String> for Funding {
    type Error = CorruptValue;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text == Self::NONE_YET {
            Ok(Funding(None))
        } else {
            pb::FundingSource::from_stored(&text).map(|s| Funding(Some(s)))
        }
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgRow {
    pub credit_code: String,
    pub display_name: String,
    #[sqlx(try_from = "String")]
    pub kind: pb::OrganizationKind,
    pub contacts: String,
    pub version: i64,
    pub create_time: String,
    pub update_time: String,
}

impl OrgRow {
    pub fn name(&self) -> String {
        org_name(&self.credit_code)
    }

    pub fn to_proto(&self) -> anyhow::Result<pb::Organization> {
        let contacts: Vec<ContactRec> = from_json("contacts", &self.contacts)?;
        Ok(pb::Organization {
            name: self.name(),
            credit_code: self.credit_code.clone(),
            display_name: self.display_name.clone(),
            kind: self.kind as i32,
            contacts: contacts.into_iter().map(Into::into).collect(),
            create_time: Some(stored_to_timestamp(&self.create_time)?),
            update_time: Some(stored_to_timestamp(&self.update_time)?),
            etag: self.version.to_string(),
        })
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProjectRow {
    pub code: ProjectCode,
    pub year: i64,
    pub seq: i64,
    pub display_name: String,
    pub applicant: String,
    pub category: String,
    pub description: String,
    pub planned_start_date: Option<String>,
    pub planned_end_date: Option<String>,
    pub estimated_investment_fen: Fen,
    #[sqlx(try_from = "String")]
    pub funding_source: Funding,
    pub contacts: String,
    pub feasibility_consultancy: Option<String>,
    #[sqlx(try_from = "String")]
    pub state: S,
    /// The state a suspended project returns to.
    #[sqlx(try_from = "Option<String>")]
    pub suspended_from: Nullable<S>,
    pub review_panel: String,
    pub return_reasons: String,
    pub implementation_plan: Option<String>,
    pub contractor: Option<String>,
    pub supervision_firm: Option<String>,
    pub contract_amount_fen: Option<Fen>,
    pub contract_date: Option<String>,
    pub post_evaluation_summary: String,
    pub version: i64,
    pub event_count: i64,
    pub create_time: String,
    pub update_time: String,
    pub approved_budget_fen: Option<Fen>,
    pub original_approved_fen: Option<Fen>,
    pub disbursed_fen: Fen,
    pub post_evaluation: Option<String>,
    /// The id of the review the project was last sent to.
    pub review: Option<String>,
    /// A [`TenderRec`] as JSON; none for a tender recorded before methods were.
    pub tender_record: Option<String>,
    /// [`IndicatorRec`]s as a JSON list.
    pub promised_indicators: String,
    /// An [`AcceptanceRec`] as JSON.
    pub acceptance_record: Option<String>,
    pub operation_start_date: Option<String>,
    /// The first day a post-evaluation may be recorded.
    pub post_evaluation_from: Option<String>,
    pub construction_content: String,
    pub equipment_selection: String,
    /// [`SimilarRec`]s as a JSON list.
    pub similar_projects: String,
    /// A [`FindingRec`] as JSON.
    pub duplication_finding: Option<String>,
}

/// A project as a list page shows it (`PROJECT_VIEW_BASIC`): the columns of [`ProjectRow`] a
/// list needs and none of its JSON, so that a page reads, decodes and sends a fraction of the
/// whole projects, and a BASIC page carries no one's contact details.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProjectListing {
    pub code: ProjectCode,
    pub year: i64,
    pub seq: i64,
    pub display_name: String,
    pub applicant: String,
    pub category: String,
    pub planned_start_date: Option<String>,
    pub planned_end_date: Option<String>,
    pub estimated_investment_fen: Fen,
    #[sqlx(try_from = "String")]
    pub funding_source: Funding,
    #[sqlx(try_from = "String")]
    pub state: S,
    #[sqlx(try_from = "Option<String>")]
    pub suspended_from: Nullable<S>,
    pub approved_budget_fen: Option<Fen>,
    pub disbursed_fen: Fen,
    pub review: Option<String>,
    pub version: i64,
    pub create_time: String,
    pub update_time: String,
}

impl ProjectListing {
    /// The columns read, in the order of the fields.
    pub const COLUMNS: &str = "code, year, seq, display_name, applicant, category, \
        planned_start_date, planned_end_date, estimated_investment_fen, funding_source, state, \
        suspended_from, approved_budget_fen, disbursed_fen, review, version, create_time, \
        update_time";

    /// The fields [`ProjectRow::to_proto`] fills from the same columns, the same way.
    pub fn to_proto(&self) -> anyhow::Result<pb::Project> {
        Ok(pb::Project {
            name: self.code.name(),
            code: self.code.to_string(),
            display_name: self.display_name.clone(),
            applicant: org_name(&self.applicant),
            category: self.category.clone(),
            planned_start_date: stored_date(&self.planned_start_date)?,
            planned_end_date: stored_date(&self.planned_end_date)?,
            estimated_investment_fen: self.estimated_investment_fen.get(),
            funding_source: on_wire(self.funding_source.0),
            state: self.state as i32,
            suspended_from: on_wire(self.suspended_from.0),
            approved_budget_fen: self.approved_budget_fen.unwrap_or_default().get(),
            disbursed_fen: self.disbursed_fen.get(),
            review: self
                .review
                .as_deref()
                .map(|id| format!("reviews/{id}"))
                .unwrap_or_default(),
            create_time: Some(stored_to_timestamp(&self.create_time)?),
            update_time: Some(stored_to_timestamp(&self.update_time)?),
            etag: self.version.to_string(),
            ..Default::default()
        })
    }
}

/// The post-evaluation as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvaluationRec {
    pub scores: [i32; 3],
    pub weights: [i32; 3],
    pub weighted_score_centi: i32,
    /// The stored name of the grade (`GOOD`).
    pub grade: String,
    pub benefits: Vec<(String, String, String)>,
    pub report_document: String,
    /// Absent from evaluations recorded before indicators were promised.
    #[serde(default)]
    pub indicators: Vec<MeasuredRec>,
    /// `reviews/{id}` of the post-evaluation panel, when one evaluated the project.
    #[serde(default)]
    pub panel_review: Option<String>,
    /// The stored name of the panel's decision (`PASSED`).
    #[serde(default)]
    pub panel_decision: Option<String>,
}

impl EvaluationRec {
    fn to_proto(&self) -> anyhow::Result<pb::PostEvaluation> {
        Ok(pb::PostEvaluation {
            engineering_quality_score: self.scores[0],
            operating_state_score: self.scores[1],
            investment_benefit_score: self.scores[2],
            engineering_quality_weight: self.weights[0],
            operating_state_weight: self.weights[1],
            investment_benefit_weight: self.weights[2],
            weighted_score_centi: self.weighted_score_centi,
            grade: pb::EvaluationGrade::from_stored(&self.grade)? as i32,
            benefits: self
                .benefits
                .iter()
                .map(|(benefit, promised, achieved)| pb::BenefitComparison {
                    benefit: benefit.clone(),
                    promised: promised.clone(),
                    achieved: achieved.clone(),
                })
                .collect(),
            report_document: self.report_document.clone(),
            indicators: self
                .indicators
                .iter()
                .map(|m| {
                    Ok(pb::IndicatorResult {
                        promised: Some(m.promised.to_proto()?),
                        actual: m.actual,
                        met: m.met,
                    })
                })
                .collect::<anyhow::Result<_>>()?,
            panel_review: self.panel_review.clone().unwrap_or_default(),
            panel_decision: self
                .panel_decision
                .as_deref()
                .map(pb::ReviewDecision::from_stored)
                .transpose()?
                .map_or(0, |d| d as i32),
        })
    }
}

impl PlanRec {
    fn to_proto(&self) -> pb::ImplementationPlan {
        pb::ImplementationPlan {
            task_plan: self.task_plan.clone(),
            system_design: self.system_design.clone(),
            equipment_selection: self.equipment_selection.clone(),
            schedule: self.schedule.clone(),
            plan_document: self.plan_document.clone(),
        }
    }
}

impl PanelRec {
    pub fn to_proto(&self) -> pb::PanelRequirement {
        pb::PanelRequirement {
            category: self.category.clone(),
            count: self.count,
            alternates: self.alternates,
        }
    }
}

fn stored_date(d: &Option<String>) -> anyhow::Result<Option<govit_proto::google::r#type::Date>> {
    d.as_deref()
        .map(|s| date_from_stored(s).map(date_to_proto))
        .transpose()
}

impl ProjectRow {
    pub fn name(&self) -> String {
        self.code.name()
    }

    pub fn etag(&self) -> String {
        self.version.to_string()
    }

    pub fn panel(&self) -> anyhow::Result<Vec<PanelRec>> {
        from_json("review_panel", &self.review_panel)
    }

    /// Figures office should look at: possible, but rarely honest.
    pub fn flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if let (Some(contract), Some(budget)) = (self.contract_amount_fen, self.approved_budget_fen)
            && contract.saturating_mul(100) < budget
        {
            flags.push(format!(
                "the contract amount ({contract} fen) is under 1% of the approved budget ({budget} fen): check the tender result"
            ));
        }
        // Above this, the city buys by open tender unless it says why not; a justification
        // no one reads is the loophole.
        const OPEN_TENDER_THRESHOLD_FEN: i64 = 200_000_000;
        if let (Some(contract), Ok(Some(tender))) = (self.contract_amount_fen, self.tender_record())
            && tender.method != pb::TenderMethod::Open.as_stored()
            && contract.get() >= OPEN_TENDER_THRESHOLD_FEN
        {
            flags.push(format!(
                "a contract of {contract} fen was awarded by {} rather than open tender: check the justification",
                tender.method.to_lowercase().replace('_', " ")
            ));
        }
        flags
    }

    fn tender_result(&self) -> anyhow::Result<Option<pb::TenderResult>> {
        let (Some(contractor), Some(firm)) = (&self.contractor, &self.supervision_firm) else {
            return Ok(None);
        };
        let mut result = pb::TenderResult {
            contractor: org_name(contractor),
            supervision_firm: org_name(firm),
            contract_amount_fen: self.contract_amount_fen.unwrap_or_default().get(),
            contract_date: stored_date(&self.contract_date)?,
            ..Default::default()
        };
        if let Some(rec) = self.tender_record()? {
            result.method = pb::TenderMethod::from_stored(&rec.method)? as i32;
            result.method_justification = rec.method_justification;
            result.design_firm = org_name(&rec.design_firm);
            result.announcement_date =
                Some(date_to_proto(date_from_stored(&rec.announcement_date)?));
            result.standards = Some(pb::ConstructionStandards {
                design: rec.design_standards,
                construction: rec.construction_standards,
                supervision: rec.supervision_standards,
            });
        }
        Ok(Some(result))
    }

    pub fn tender_record(&self) -> anyhow::Result<Option<TenderRec>> {
        self.tender_record
            .as_deref()
            .map(|t| from_json("tender_record", t))
            .transpose()
    }

    pub fn promised_indicators(&self) -> anyhow::Result<Vec<IndicatorRec>> {
        from_json("promised_indicators", &self.promised_indicators)
    }

    pub fn duplication_finding(&self) -> anyhow::Result<Option<FindingRec>> {
        self.duplication_finding
            .as_deref()
            .map(|f| from_json("duplication_finding", f))
            .transpose()
    }

    pub fn acceptance(&self) -> anyhow::Result<Option<AcceptanceRec>> {
        self.acceptance_record
            .as_deref()
            .map(|a| from_json("acceptance_record", a))
            .transpose()
    }

    fn implementation_plan(&self) -> anyhow::Result<Option<pb::ImplementationPlan>> {
        let plan: Option<PlanRec> = self
            .implementation_plan
            .as_deref()
            .map(|p| from_json("implementation_plan", p))
            .transpose()?;
        Ok(plan.as_ref().map(PlanRec::to_proto))
    }

    fn post_evaluation(&self) -> anyhow::Result<Option<pb::PostEvaluation>> {
        self.post_evaluation
            .as_deref()
            .map(|e| from_json::<EvaluationRec>("post_evaluation", e)?.to_proto())
            .transpose()
    }

    pub fn to_proto(&self) -> anyhow::Result<pb::Project> {
        let contacts: Vec<ContactRec> = from_json("contacts", &self.contacts)?;
        Ok(pb::Project {
            name: self.name(),
            code: self.code.to_string(),
            display_name: self.display_name.clone(),
            applicant: org_name(&self.applicant),
            category: self.category.clone(),
            description: self.description.clone(),
            planned_start_date: stored_date(&self.planned_start_date)?,
            planned_end_date: stored_date(&self.planned_end_date)?,
            estimated_investment_fen: self.estimated_investment_fen.get(),
            funding_source: on_wire(self.funding_source.0),
            contacts: contacts.into_iter().map(Into::into).collect(),
            feasibility_consultancy: self
                .feasibility_consultancy
                .as_deref()
                .map(org_name)
                .unwrap_or_default(),
            state: self.state as i32,
            suspended_from: on_wire(self.suspended_from.0),
            review_panel: self.panel()?.iter().map(PanelRec::to_proto).collect(),
            return_reasons: from_json("return_reasons", &self.return_reasons)?,
            implementation_plan: self.implementation_plan()?,
            tender_result: self.tender_result()?,
            post_evaluation_summary: self.post_evaluation_summary.clone(),
            approved_budget_fen: self.approved_budget_fen.unwrap_or_default().get(),
            original_approved_budget_fen: self.original_approved_fen.unwrap_or_default().get(),
            disbursed_fen: self.disbursed_fen.get(),
            review: self
                .review
                .as_deref()
                .map(|id| format!("reviews/{id}"))
                .unwrap_or_default(),
            flags: self.flags(),
            promised_indicators: self
                .promised_indicators()?
                .iter()
                .map(IndicatorRec::to_proto)
                .collect::<anyhow::Result<_>>()?,
            acceptance: self.acceptance()?.map(|a| pb::AcceptanceRecord {
                report_document: a.report_document,
                participating_units: a.participating_units.iter().map(|c| org_name(c)).collect(),
            }),
            operation_start_date: stored_date(&self.operation_start_date)?,
            construction_content: self.construction_content.clone(),
            equipment_selection: self.equipment_selection.clone(),
            similar_projects: from_json::<Vec<SimilarRec>>(
                "similar_projects",
                &self.similar_projects,
            )?
            .iter()
            .map(SimilarRec::to_proto)
            .collect::<anyhow::Result<_>>()?,
            duplication_finding: self
                .duplication_finding()?
                .as_ref()
                .map(FindingRec::to_proto)
                .transpose()?,
            post_evaluation_open_date: stored_date(&self.post_evaluation_from)?,
            post_evaluation: self.post_evaluation()?,
            create_time: Some(stored_to_timestamp(&self.create_time)?),
            update_time: Some(stored_to_timestamp(&self.update_time)?),
            etag: self.etag(),
        })
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DocumentRow {
    pub id: String,
    pub project_code: ProjectCode,
    #[sqlx(try_from = "String")]
    pub kind: pb::DocumentKind,
    pub file_name: String,
    pub media_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub sealed_copies: i64,
    pub uploaded_by: String,
    pub create_time: String,
}

impl DocumentRow {
    pub fn name(&self) -> String {
        format!("projects/{}/documents/{}", self.project_code, self.id)
    }

    pub fn to_proto(&self) -> anyhow::Result<pb::Document> {
        Ok(pb::Document {
            name: self.name(),
            kind: self.kind as i32,
            file_name: self.file_name.clone(),
            media_type: self.media_type.clone(),
            size_bytes: self.size_bytes,
            sha256: self.sha256.clone(),
            sealed_copies: self.sealed_copies as i32,
            uploaded_by: self.uploaded_by.clone(),
            create_time: Some(stored_to_timestamp(&self.create_time)?),
        })
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EventRow {
    pub resource: String,
    pub seq: i64,
    pub occur_time: String,
    pub actor_subject: String,
    pub actor_role: String,
    #[sqlx(try_from = "Option<String>")]
    pub actor_body: Nullable<pb::SupervisingBody>,
    pub action: String,
    #[sqlx(try_from = "Option<String>")]
    pub from_state: Nullable<S>,
    #[sqlx(try_from = "Option<String>")]
    pub to_state: Nullable<S>,
    pub changed_fields: String,
    pub reason: String,
    pub document_sha256: String,
}

impl EventRow {
    pub fn to_proto(&self) -> anyhow::Result<pb::ProjectEvent> {
        Ok(pb::ProjectEvent {
            name: format!("{}/events/{}", self.resource, self.seq),
            sequence: self.seq,
            occur_time: Some(stored_to_timestamp(&self.occur_time)?),
            actor: Some(pb::Actor {
                subject: self.actor_subject.clone(),
                role: self.actor_role.clone(),
                body: on_wire(self.actor_body.0),
            }),
            action: self.action.clone(),
            from_state: on_wire(self.from_state.0),
            to_state: on_wire(self.to_state.0),
            changed_fields: from_json("changed_fields", &self.changed_fields)?,
            reason: self.reason.clone(),
            document_sha256: from_json("document_sha256", &self.document_sha256)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_codes_are_year_hyphen_sequence() {
        let code = ProjectCode::parse("2026-0007").unwrap();
        assert_eq!(code, ProjectCode::assigned(2026, 7));
        assert_eq!(code.name(), "projects/2026-0007");
        assert_eq!(code.to_string(), code.as_str());
        assert_eq!(ProjectCode::assigned(2026, 123_456).as_str(), "2026-123456");
        for bad in [
            "26-0007",
            "2026-007",
            "2026-0000000001",
            "2026_0007",
            "2026-00a7",
            "",
        ] {
            assert_eq!(ProjectCode::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_large_contract_awarded_without_open_tender_is_flagged() {
        let tendered = |method: pb::TenderMethod, contract_fen: i64| {
            let mut row = ProjectRow::draft(
                2026,
                govit_platform::time::to_stored(govit_platform::time::now()),
            );
            row.approved_budget_fen = Some(Fen::new(1_000_000_000));
            row.contract_amount_fen = Some(Fen::new(contract_fen));
            row.tender_record = Some(to_json(&TenderRec {
                method: method.as_stored().to_owned(),
                method_justification: "the only supplier of the licensed platform".into(),
                design_firm: "91650100MA7700004X".into(),
                announcement_date: "2026-11-02".into(),
                design_standards: vec!["GB/T 22239-2019".into()],
                construction_standards: vec!["GB 50174-2017".into()],
                supervision_standards: vec!["GB/T 19668.1-2014".into()],
            }));
            row.flags()
        };
        let flagged = tendered(pb::TenderMethod::SingleSource, 300_000_000);
        assert_eq!(flagged.len(), 1, "{flagged:?}");
        assert!(
            flagged[0].contains("single source rather than open tender"),
            "{flagged:?}"
        );
        assert!(
            tendered(pb::TenderMethod::CompetitiveNegotiation, 200_000_000)[0]
                .contains("competitive negotiation")
        );
        assert!(tendered(pb::TenderMethod::Open, 300_000_000).is_empty());
        assert!(tendered(pb::TenderMethod::SingleSource, 199_999_999).is_empty());
    }
}
