//! Rows as stored and their wire forms. JSON-in-text columns use the small serde records here,
//! not prost types, so the stored form does not change when the proto grows.

use govit_platform::time::{date_from_stored, date_to_proto, stored_to_timestamp};
use govit_proto::projects::v1 as pb;
use serde::{Deserialize, Serialize};

pub use govit_platform::json::{from_json, to_json};

use crate::lifecycle::state_from_name;

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

pub fn org_name(credit_code: &str) -> String {
    format!("organizations/{credit_code}")
}

pub fn project_name(code: &str) -> String {
    format!("projects/{code}")
}

/// Stored kind names drop the enum prefix: `APPLYING_UNIT`.
pub fn org_kind_name(kind: pb::OrganizationKind) -> &'static str {
    kind.as_str_name().trim_start_matches("ORGANIZATION_KIND_")
}

pub fn funding_name(f: pb::FundingSource) -> &'static str {
    f.as_str_name().trim_start_matches("FUNDING_SOURCE_")
}

pub fn document_kind_name(k: pb::DocumentKind) -> &'static str {
    k.as_str_name().trim_start_matches("DOCUMENT_KIND_")
}

fn unreadable(column: &str, value: &str) -> anyhow::Error {
    anyhow::anyhow!("stored {column} {value:?} is unreadable")
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OrgRow {
    pub credit_code: String,
    pub display_name: String,
    pub kind: String,
    pub contacts: String,
    pub version: i64,
    pub create_time: String,
    pub update_time: String,
}

impl OrgRow {
    pub fn to_proto(&self) -> anyhow::Result<pb::Organization> {
        let kind = pb::OrganizationKind::from_str_name(&format!("ORGANIZATION_KIND_{}", self.kind))
            .ok_or_else(|| unreadable("organization kind", &self.kind))?;
        let contacts: Vec<ContactRec> = from_json("contacts", &self.contacts)?;
        Ok(pb::Organization {
            name: org_name(&self.credit_code),
            credit_code: self.credit_code.clone(),
            display_name: self.display_name.clone(),
            kind: kind as i32,
            contacts: contacts.into_iter().map(Into::into).collect(),
            create_time: Some(stored_to_timestamp(&self.create_time)?),
            update_time: Some(stored_to_timestamp(&self.update_time)?),
            etag: self.version.to_string(),
        })
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ProjectRow {
    pub code: String,
    pub year: i64,
    pub seq: i64,
    pub display_name: String,
    pub applicant: String,
    pub category: String,
    pub description: String,
    pub planned_start_date: Option<String>,
    pub planned_end_date: Option<String>,
    pub estimated_investment_fen: i64,
    pub funding_source: String,
    pub contacts: String,
    pub feasibility_consultancy: Option<String>,
    pub state: String,
    pub suspended_from: Option<String>,
    pub review_panel: String,
    pub return_reasons: String,
    pub implementation_plan: Option<String>,
    pub contractor: Option<String>,
    pub supervision_firm: Option<String>,
    pub contract_amount_fen: Option<i64>,
    pub contract_date: Option<String>,
    pub post_evaluation_summary: String,
    pub version: i64,
    pub event_count: i64,
    pub create_time: String,
    pub update_time: String,
    pub approved_budget_fen: Option<i64>,
    pub original_approved_fen: Option<i64>,
    pub disbursed_fen: i64,
    pub post_evaluation: Option<String>,
    /// The id of the review the project was last sent to.
    pub review: Option<String>,
}

/// The post-evaluation as stored.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EvaluationRec {
    pub scores: [i32; 3],
    pub weights: [i32; 3],
    pub weighted_score_centi: i32,
    pub grade: String,
    pub benefits: Vec<(String, String, String)>,
    pub report_document: String,
}

impl ProjectRow {
    pub fn state(&self) -> anyhow::Result<pb::ProjectState> {
        state_from_name(&self.state).ok_or_else(|| unreadable("state", &self.state))
    }

    pub fn suspended_from(&self) -> anyhow::Result<Option<pb::ProjectState>> {
        self.suspended_from
            .as_deref()
            .map(|s| state_from_name(s).ok_or_else(|| unreadable("suspended_from", s)))
            .transpose()
    }

    pub fn name(&self) -> String {
        project_name(&self.code)
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
        flags
    }

    pub fn to_proto(&self) -> anyhow::Result<pb::Project> {
        let funding =
            pb::FundingSource::from_str_name(&format!("FUNDING_SOURCE_{}", self.funding_source))
                .ok_or_else(|| unreadable("funding source", &self.funding_source))?;
        let contacts: Vec<ContactRec> = from_json("contacts", &self.contacts)?;
        let reasons: Vec<String> = from_json("return_reasons", &self.return_reasons)?;
        let plan: Option<PlanRec> = self
            .implementation_plan
            .as_deref()
            .map(|p| from_json("implementation_plan", p))
            .transpose()?;
        let date = |d: &Option<String>| -> anyhow::Result<Option<_>> {
            d.as_deref()
                .map(|s| date_from_stored(s).map(date_to_proto))
                .transpose()
        };
        let tender_result = match (&self.contractor, &self.supervision_firm) {
            (Some(contractor), Some(firm)) => Some(pb::TenderResult {
                contractor: org_name(contractor),
                supervision_firm: org_name(firm),
                contract_amount_fen: self.contract_amount_fen.unwrap_or_default(),
                contract_date: date(&self.contract_date)?,
            }),
            _ => None,
        };
        Ok(pb::Project {
            name: self.name(),
            code: self.code.clone(),
            display_name: self.display_name.clone(),
            applicant: org_name(&self.applicant),
            category: self.category.clone(),
            description: self.description.clone(),
            planned_start_date: date(&self.planned_start_date)?,
            planned_end_date: date(&self.planned_end_date)?,
            estimated_investment_fen: self.estimated_investment_fen,
            funding_source: funding as i32,
            contacts: contacts.into_iter().map(Into::into).collect(),
            feasibility_consultancy: self
                .feasibility_consultancy
                .as_deref()
                .map(org_name)
                .unwrap_or_default(),
            state: self.state()? as i32,
            suspended_from: self.suspended_from()?.map(|s| s as i32).unwrap_or_default(),
            review_panel: self
                .panel()?
                .into_iter()
                .map(|p| pb::PanelRequirement {
                    category: p.category,
                    count: p.count,
                    alternates: p.alternates,
                })
                .collect(),
            return_reasons: reasons,
            implementation_plan: plan.map(|p| pb::ImplementationPlan {
                task_plan: p.task_plan,
                system_design: p.system_design,
                equipment_selection: p.equipment_selection,
                schedule: p.schedule,
                plan_document: p.plan_document,
            }),
            tender_result,
            post_evaluation_summary: self.post_evaluation_summary.clone(),
            approved_budget_fen: self.approved_budget_fen.unwrap_or_default(),
            original_approved_budget_fen: self.original_approved_fen.unwrap_or_default(),
            disbursed_fen: self.disbursed_fen,
            review: self
                .review
                .as_deref()
                .map(|id| format!("reviews/{id}"))
                .unwrap_or_default(),
            flags: self.flags(),
            post_evaluation: self
                .post_evaluation
                .as_deref()
                .map(|e| from_json::<EvaluationRec>("post_evaluation", e))
                .transpose()?
                .map(|e| pb::PostEvaluation {
                    engineering_quality_score: e.scores[0],
                    operating_state_score: e.scores[1],
                    investment_benefit_score: e.scores[2],
                    engineering_quality_weight: e.weights[0],
                    operating_state_weight: e.weights[1],
                    investment_benefit_weight: e.weights[2],
                    weighted_score_centi: e.weighted_score_centi,
                    grade: pb::EvaluationGrade::from_str_name(&format!(
                        "EVALUATION_GRADE_{}",
                        e.grade
                    ))
                    .unwrap_or_default() as i32,
                    benefits: e
                        .benefits
                        .into_iter()
                        .map(|(benefit, promised, achieved)| pb::BenefitComparison {
                            benefit,
                            promised,
                            achieved,
                        })
                        .collect(),
                    report_document: e.report_document,
                }),
            create_time: Some(stored_to_timestamp(&self.create_time)?),
            update_time: Some(stored_to_timestamp(&self.update_time)?),
            etag: self.etag(),
        })
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DocumentRow {
    pub id: String,
    pub project_code: String,
    pub kind: String,
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

    pub fn kind(&self) -> anyhow::Result<pb::DocumentKind> {
        pb::DocumentKind::from_str_name(&format!("DOCUMENT_KIND_{}", self.kind))
            .ok_or_else(|| unreadable("document kind", &self.kind))
    }

    pub fn to_proto(&self) -> anyhow::Result<pb::Document> {
        Ok(pb::Document {
            name: self.name(),
            kind: self.kind()? as i32,
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
    pub action: String,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub changed_fields: String,
    pub reason: String,
    pub document_sha256: String,
}

impl EventRow {
    pub fn to_proto(&self) -> anyhow::Result<pb::ProjectEvent> {
        let state = |s: &Option<String>| -> anyhow::Result<i32> {
            Ok(match s.as_deref() {
                None => 0,
                Some(s) => state_from_name(s).ok_or_else(|| unreadable("event state", s))? as i32,
            })
        };
        Ok(pb::ProjectEvent {
            name: format!("{}/events/{}", self.resource, self.seq),
            sequence: self.seq,
            occur_time: Some(stored_to_timestamp(&self.occur_time)?),
            actor: Some(pb::Actor {
                subject: self.actor_subject.clone(),
                role: self.actor_role.clone(),
            }),
            action: self.action.clone(),
            from_state: state(&self.from_state)?,
            to_state: state(&self.to_state)?,
            changed_fields: from_json("changed_fields", &self.changed_fields)?,
            reason: self.reason.clone(),
            document_sha256: from_json("document_sha256", &self.document_sha256)?,
        })
    }
}
