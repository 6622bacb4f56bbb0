//! Identifiers, rows as stored and their wire forms, with the masking of personal data by role.

use std::collections::BTreeMap;

pub use govit_platform::json::{from_json, to_json};

use govit_platform::{
    Role, resident_id,
    time::{date_from_stored, date_to_proto, stored_to_timestamp},
};
use govit_proto::{StoredEnum, experts::v1 as pb};
use serde::{Deserialize, Serialize};

/// A draw's id (`d-…`), never to be mistaken for a project's, an expert's or a category's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DrawId(pub String);

impl DrawId {
    /// The resource name, `draws/{id}`.
    pub fn name(&self) -> String {
        format!("draws/{}", self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<String> for DrawId {
    fn from(id: String) -> Self {
        DrawId(id)
    }
}

impl std::fmt::Display for DrawId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An expert's id (`e-001`), never to be mistaken for a draw's or a category's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExpertId(pub String);

impl ExpertId {
    /// The resource name, `experts/{id}`.
    pub fn name(&self) -> String {
        format!("experts/{}", self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ExpertId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

govit_proto::stored_enum! {
    /// How an executed draw placed an expert on a category's panel (`selections.role`).
    pub enum SelectionRole("selection role") { Selected = "SELECTED", Alternate = "ALTERNATE" }
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

/// What a draw reads of each expert in its pool: the columns eligibility decides by, never
/// names, phones or ID numbers.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PoolMember {
    /// The requested category the expert is in the pool for.
    #[sqlx(rename = "pool_category")]
    pub category: String,
    pub id: String,
    pub employer_credit_code: String,
    pub appointment_start: String,
    pub appointment_end: String,
    #[sqlx(try_from = "String")]
    pub status: pb::ExpertStatus,
    pub unavailable: String,
    pub conflicts: String,
}

impl PoolMember {
    /// A row of the pool query read on a SQLite reader, by position as the query selects.
    pub fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<PoolMember> {
        use govit_platform::sqlite_reader::get_converted;
        Ok(PoolMember {
            category: row.get(0)?,
            id: row.get(1)?,
            employer_credit_code: row.get(2)?,
            appointment_start: row.get(3)?,
            appointment_end: row.get(4)?,
            status: get_converted::<String, _>(row, 5)?,
            unavailable: row.get(6)?,
            conflicts: row.get(7)?,
        })
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ExpertRow {
    pub id: String,
    pub display_name: String,
    pub employer_credit_code: String,
    pub employer_name: String,
    #[sqlx(try_from = "String")]
    pub source: pb::ExpertSource,
    pub title: String,
    pub phone: String,
    pub email: String,
    pub id_number: String,
    pub appointment_start: String,
    pub appointment_end: String,
    #[sqlx(try_from = "String")]
    pub status: pb::ExpertStatus,
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

impl ExpertFull {
    /// Registry admins see everything; everyone else sees the ID number and phone masked.
    pub fn to_proto(&self, viewer: Role) -> anyhow::Result<pb::Expert> {
        let r = &self.row;
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
            source: r.source as i32,
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
            status: r.status as i32,
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
    #[sqlx(try_from = "String")]
    pub id: DrawId,
    pub project_id: String,
    #[sqlx(try_from = "String")]
    pub stage: pb::ReviewStage,
    #[sqlx(try_from = "String")]
    pub state: pb::DrawState,
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
    #[sqlx(try_from = "String")]
    pub reason: pb::ReplacementReason,
    pub replace_time: String,
}

impl DrawRow {
    pub fn name(&self) -> String {
        self.id.name()
    }

    /// How the draw executed; None before it has.
    pub fn outcome(&self) -> anyhow::Result<Option<pb::DrawOutcome>> {
        Ok(self
            .outcome
            .as_deref()
            .map(pb::DrawOutcome::from_stored)
            .transpose()?)
    }

    /// Whether the draw executed with a full panel: the only draw that can be replaced on or
    /// supplemented.
    pub fn has_panel(&self) -> anyhow::Result<bool> {
        Ok(self.state == pb::DrawState::Executed
            && self.outcome()? == Some(pb::DrawOutcome::Executed))
    }

    /// The draw this one supplements, if any.
    pub fn supplemented(&self) -> Option<DrawId> {
        self.supplements.clone().map(DrawId)
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
        // Unspecified on the wire is how a draw that has not executed says so.
        let outcome = self.outcome()?.unwrap_or(pb::DrawOutcome::Unspecified);
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
                        reason: r.reason as i32,
                        replace_time: Some(stored_to_timestamp(&r.replace_time)?),
                    })
                })
                .collect::<anyhow::Result<_>>()?
        } else {
            Vec::new()
        };
        Ok(pb::Draw {
            name: self.name(),
            draw_id: self.id.0.clone(),
            project: format!("projects/{}", self.project_id),
            stage: self.stage as i32,
            state: self.state as i32,
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
