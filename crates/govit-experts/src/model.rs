//! Rows as stored and their wire forms, with the masking of personal data by role.

use std::collections::BTreeMap;

pub use govit_platform::json::{from_json, to_json};

use govit_platform::{
    Role, resident_id,
    time::{date_from_stored, date_to_proto, stored_to_timestamp},
};
use govit_proto::experts::v1 as pb;
use serde::{Deserialize, Serialize};

fn unreadable(column: &str, value: &str) -> anyhow::Error {
    anyhow::anyhow!("stored {column} {value:?} is unreadable")
}

pub fn enum_suffix<'a>(full: &'a str, prefix: &str) -> &'a str {
    full.strip_prefix(prefix).unwrap_or(full)
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct CategoryRow {
    pub code: String,
    pub display_name: String,
    pub description: String,
    pub parent: Option<String>,
    pub active: i64,
    pub version: i64,
    pub create_time: String,
    pub update_time: String,
}

impl CategoryRow {
    pub fn to_proto(&self) -> anyhow::Result<pb::Category> {
        Ok(pb::Category {
            name: format!("categories/{}", self.code),
            code: self.code.clone(),
            display_name: self.display_name.clone(),
            description: self.description.clone(),
            parent: self
                .parent
                .as_deref()
                .map(|p| format!("categories/{p}"))
                .unwrap_or_default(),
            active: self.active != 0,
            create_time: Some(stored_to_timestamp(&self.create_time)?),
            update_time: Some(stored_to_timestamp(&self.update_time)?),
            etag: self.version.to_string(),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PeriodRec {
    /// YYYY-MM-DD, inclusive.
    pub start: String,
    pub end: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConflictRec {
    pub credit_code: String,
    pub reason: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExpertRow {
    pub id: String,
    pub display_name: String,
    pub employer_credit_code: String,
    pub employer_name: String,
    pub source: String,
    pub title: String,
    pub phone: String,
    pub email: String,
    pub id_number: String,
    pub appointment_start: String,
    pub appointment_end: String,
    pub status: String,
    pub unavailable: String,
    pub conflicts: String,
    pub draws_count: i64,
    pub reviews_count: i64,
    pub version: i64,
    pub create_time: String,
    pub update_time: String,
    pub rating_count: i64,
    pub rating_sum: i64,
}

/// An expert with its categories, as the API sees it.
#[derive(Debug, Clone)]
pub struct ExpertFull {
    pub row: ExpertRow,
    pub categories: Vec<String>,
}

pub const STATUS_ACTIVE: &str = "ACTIVE";

impl ExpertFull {
    /// Registry admins see everything; everyone else sees the ID number and phone masked.
    pub fn to_proto(&self, viewer: Role) -> anyhow::Result<pb::Expert> {
        let r = &self.row;
        let status = pb::ExpertStatus::from_str_name(&format!("EXPERT_STATUS_{}", r.status))
            .ok_or_else(|| unreadable("status", &r.status))?;
        let source = pb::ExpertSource::from_str_name(&format!("EXPERT_SOURCE_{}", r.source))
            .ok_or_else(|| unreadable("source", &r.source))?;
        let periods: Vec<PeriodRec> = from_json("unavailable", &r.unavailable)?;
        let conflicts: Vec<ConflictRec> = from_json("conflicts", &r.conflicts)?;
        let full = viewer == Role::RegistryAdmin;
        Ok(pb::Expert {
            name: format!("experts/{}", r.id),
            expert_id: r.id.clone(),
            display_name: r.display_name.clone(),
            employer: Some(pb::Employer {
                credit_code: r.employer_credit_code.clone(),
                name: r.employer_name.clone(),
            }),
            source: source as i32,
            title: r.title.clone(),
            categories: self.categories.clone(),
            phone: if full {
                r.phone.clone()
            } else {
                resident_id::mask_phone(&r.phone)
            },
            email: r.email.clone(),
            id_number: if full {
                r.id_number.clone()
            } else {
                resident_id::mask(&r.id_number)
            },
            appointment_start_date: Some(date_to_proto(date_from_stored(&r.appointment_start)?)),
            appointment_end_date: Some(date_to_proto(date_from_stored(&r.appointment_end)?)),
            status: status as i32,
            unavailable_periods: periods
                .into_iter()
                .map(|p| -> anyhow::Result<_> {
                    Ok(pb::UnavailablePeriod {
                        start_date: Some(date_to_proto(date_from_stored(&p.start)?)),
                        end_date: Some(date_to_proto(date_from_stored(&p.end)?)),
                        reason: p.reason,
                    })
                })
                .collect::<anyhow::Result<_>>()?,
            conflicts: conflicts
                .into_iter()
                .map(|c| pb::DeclaredConflict {
                    credit_code: c.credit_code,
                    reason: c.reason,
                })
                .collect(),
            draws_count: r.draws_count,
            reviews_count: r.reviews_count,
            rating_count: r.rating_count,
            average_rating_centi: if r.rating_count == 0 {
                0
            } else {
                r.rating_sum * 100 / r.rating_count
            },
            create_time: Some(stored_to_timestamp(&r.create_time)?),
            update_time: Some(stored_to_timestamp(&r.update_time)?),
            etag: r.version.to_string(),
        })
    }
}

/// One category of a panel as it stands: serving members, unused alternates, who left.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct PanelRec {
    pub selected: Vec<String>,
    pub alternates: Vec<String>,
    pub replaced: Vec<String>,
}

pub type Panel = BTreeMap<String, PanelRec>;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ManualExclusion {
    pub expert_id: String,
    pub reason: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DrawRow {
    pub id: String,
    pub project_id: String,
    pub stage: String,
    pub state: String,
    pub meeting_date: String,
    pub request_id: Option<String>,
    pub supplements: Option<String>,
    pub input: String,
    pub input_hash: String,
    pub server_secret: String,
    pub witness_entropy: Option<String>,
    pub outcome: Option<String>,
    pub seed: Option<String>,
    pub result: Option<String>,
    pub record_hash: Option<String>,
    pub panel: Option<String>,
    pub manual_exclusions: String,
    pub cancel_reason: Option<String>,
    pub open_time: String,
    pub execute_time: Option<String>,
    pub version: i64,
    /// A hash of the request that opened the draw under `request_id` (the caller's scoped key).
    pub request_hash: String,
}

pub const DRAW_COLUMNS: &str = "id, project_id, stage, state, meeting_date, request_id, supplements, \
    input, input_hash, server_secret, witness_entropy, outcome, seed, result, record_hash, panel, \
    manual_exclusions, cancel_reason, open_time, execute_time, version, request_hash";

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReplacementRow {
    pub category: String,
    pub left_expert: String,
    pub came_in: String,
    pub reason: String,
    pub replace_time: String,
}

impl DrawRow {
    pub fn name(&self) -> String {
        format!("draws/{}", self.id)
    }

    pub fn state(&self) -> anyhow::Result<pb::DrawState> {
        pb::DrawState::from_str_name(&format!("DRAW_STATE_{}", self.state))
            .ok_or_else(|| unreadable("draw state", &self.state))
    }

    pub fn panel(&self) -> anyhow::Result<Panel> {
        match &self.panel {
            Some(p) => from_json("panel", p),
            None => Ok(Panel::new()),
        }
    }

    /// The commitment, read from the frozen input.
    pub fn commitment(&self) -> anyhow::Result<String> {
        let input: govit_draw::DrawInput = from_json("input", &self.input)?;
        Ok(input.server_commitment)
    }

    /// The wire form. `confidential` decides whether the input and the panel are shown.
    pub fn to_proto(
        &self,
        replacements: &[ReplacementRow],
        confidential: bool,
        witness_required: bool,
    ) -> anyhow::Result<pb::Draw> {
        let outcome = match self.outcome.as_deref() {
            None => pb::DrawOutcome::Unspecified,
            Some(o) => pb::DrawOutcome::from_str_name(&format!("DRAW_OUTCOME_{o}"))
                .ok_or_else(|| unreadable("outcome", o))?,
        };
        let panel = if confidential {
            self.panel()?
                .into_iter()
                .map(|(category, p)| pb::CategoryPanel {
                    category,
                    selected: p.selected,
                    alternates: p.alternates,
                    replaced: p.replaced,
                })
                .collect()
        } else {
            Vec::new()
        };
        let replacements = if confidential {
            replacements
                .iter()
                .map(|r| -> anyhow::Result<_> {
                    Ok(pb::Replacement {
                        category: r.category.clone(),
                        left_expert_id: r.left_expert.clone(),
                        replacement_expert_id: r.came_in.clone(),
                        reason: pb::ReplacementReason::from_str_name(&format!(
                            "REPLACEMENT_REASON_{}",
                            r.reason
                        ))
                        .ok_or_else(|| unreadable("replacement reason", &r.reason))?
                            as i32,
                        replace_time: Some(stored_to_timestamp(&r.replace_time)?),
                    })
                })
                .collect::<anyhow::Result<_>>()?
        } else {
            Vec::new()
        };
        Ok(pb::Draw {
            name: self.name(),
            draw_id: self.id.clone(),
            project: format!("projects/{}", self.project_id),
            stage: pb::ReviewStage::from_short_name(&self.stage)
                .ok_or_else(|| anyhow::anyhow!("stored stage {:?} is unknown", self.stage))?
                as i32,
            state: self.state()? as i32,
            meeting_date: Some(date_to_proto(date_from_stored(&self.meeting_date)?)),
            input_json: if confidential {
                self.input.clone()
            } else {
                String::new()
            },
            input_hash: self.input_hash.clone(),
            server_commitment: self.commitment()?,
            witness_entropy: self.witness_entropy.clone().unwrap_or_default(),
            witnessed: self.witness_entropy.is_some(),
            outcome: outcome as i32,
            panel,
            replacements,
            supplements: self
                .supplements
                .as_deref()
                .map(|s| format!("draws/{s}"))
                .unwrap_or_default(),
            record_hash: self.record_hash.clone().unwrap_or_default(),
            cancel_reason: self.cancel_reason.clone().unwrap_or_default(),
            open_time: Some(stored_to_timestamp(&self.open_time)?),
            execute_time: self
                .execute_time
                .as_deref()
                .map(stored_to_timestamp)
                .transpose()?,
            witness_required,
        })
    }
}
