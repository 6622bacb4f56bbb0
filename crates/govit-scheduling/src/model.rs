//! Rows as stored and their wire forms.

use govit_platform::time::{date_from_stored, date_to_proto, stored_to_timestamp};
use govit_proto::scheduling::v1 as pb;
use serde::{Deserialize, Serialize};

pub use govit_platform::json::{from_json, to_json};

/// A stored value that names no known variant: the row is corrupt, never read as a default.
fn unknown(column: &str, value: &str) -> anyhow::Error {
    anyhow::anyhow!("stored {column} {value:?} is not a known value")
}

pub fn decision_from_stored(value: &str) -> anyhow::Result<pb::ReviewDecision> {
    pb::ReviewDecision::from_short_name(value).ok_or_else(|| unknown("decision", value))
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PanelRec {
    pub category: String,
    pub count: i32,
    pub alternates: i32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MeetingRec {
    pub start: String,
    pub end: String,
    pub venue: String,
    pub online_link: String,
    pub state: String,
    pub change_reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConclusionRec {
    pub decision: String,
    pub summary: String,
    pub averages_centi: Vec<(String, i32)>,
    pub overall_centi: i32,
    pub chair: String,
    pub at: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReviewRow {
    pub id: String,
    pub project_id: String,
    pub stage: String,
    pub state: String,
    pub panel: String,
    pub excluded_organizations: String,
    pub request_date: String,
    pub deadline: String,
    pub calendar_version: String,
    pub chair_expert_id: Option<String>,
    pub meeting: Option<String>,
    pub conclusion: Option<String>,
    pub stall_reason: String,
    pub create_time: String,
    pub applicant: String,
    /// Who asked for the review and a hash of what they asked: the review id is an
    /// idempotency key bound to both.
    pub requester: String,
    pub request_hash: String,
    pub accept_time: String,
    pub paused_from: Option<String>,
    pub cancel_reason: String,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct InvitationRow {
    pub review_id: String,
    pub expert_id: String,
    pub category: String,
    pub draw_id: String,
    pub state: String,
    pub respond_by: String,
    pub decline_reason: String,
}

impl InvitationRow {
    pub fn to_proto(&self) -> anyhow::Result<pb::Invitation> {
        Ok(pb::Invitation {
            name: format!("reviews/{}/invitations/{}", self.review_id, self.expert_id),
            expert_id: self.expert_id.clone(),
            category: self.category.clone(),
            state: pb::InvitationState::from_str_name(&format!("INVITATION_STATE_{}", self.state))
                .ok_or_else(|| unknown("invitation state", &self.state))? as i32,
            respond_by: Some(stored_to_timestamp(&self.respond_by)?),
            decline_reason: self.decline_reason.clone(),
            draw: format!("draws/{}", self.draw_id),
        })
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OpinionRow {
    pub review_id: String,
    pub expert_id: String,
    pub scores: String,
    pub opinion: String,
    pub recommendation: String,
    pub submit_time: String,
}

impl OpinionRow {
    pub fn to_proto(&self) -> anyhow::Result<pb::Opinion> {
        let scores: Vec<(String, i32)> = from_json("scores", &self.scores)?;
        Ok(pb::Opinion {
            name: format!("reviews/{}/opinions/{}", self.review_id, self.expert_id),
            expert_id: self.expert_id.clone(),
            scores: scores
                .into_iter()
                .map(|(criterion, score)| pb::CriterionScore { criterion, score })
                .collect(),
            opinion: self.opinion.clone(),
            recommendation: decision_from_stored(&self.recommendation)? as i32,
            submit_time: Some(stored_to_timestamp(&self.submit_time)?),
        })
    }
}

impl ReviewRow {
    pub fn name(&self) -> String {
        format!("reviews/{}", self.id)
    }

    pub fn meeting(&self) -> anyhow::Result<Option<MeetingRec>> {
        self.meeting
            .as_deref()
            .map(|m| from_json("meeting", m))
            .transpose()
    }

    pub fn panel(&self) -> anyhow::Result<Vec<PanelRec>> {
        from_json("panel", &self.panel)
    }

    pub fn excluded(&self) -> anyhow::Result<Vec<String>> {
        from_json("excluded_organizations", &self.excluded_organizations)
    }

    pub fn stage(&self) -> anyhow::Result<pb::ReviewStage> {
        pb::ReviewStage::from_short_name(&self.stage).ok_or_else(|| unknown("stage", &self.stage))
    }

    pub fn project_name(&self) -> String {
        format!("projects/{}", self.project_id)
    }

    /// The wire form. `show_panel` is false for applicants before the meeting starts.
    pub fn to_proto(
        &self,
        draws: Vec<String>,
        invitations: &[InvitationRow],
        opinions: &[OpinionRow],
        ratings: Vec<pb::ExpertRating>,
        show_panel: bool,
        today: chrono::NaiveDate,
    ) -> anyhow::Result<pb::Review> {
        let meeting = self.meeting()?.map(|m| -> anyhow::Result<_> {
            Ok(pb::Meeting {
                start_time: Some(stored_to_timestamp(&m.start)?),
                end_time: Some(stored_to_timestamp(&m.end)?),
                venue: m.venue,
                online_link: m.online_link,
                state: pb::MeetingState::from_str_name(&format!("MEETING_STATE_{}", m.state))
                    .ok_or_else(|| unknown("meeting state", &m.state))?
                    as i32,
                change_reason: m.change_reason,
            })
        });
        let conclusion = self
            .conclusion
            .as_deref()
            .map(|c| from_json::<ConclusionRec>("conclusion", c))
            .transpose()?
            .map(|c| -> anyhow::Result<_> {
                Ok(pb::Conclusion {
                    decision: decision_from_stored(&c.decision)? as i32,
                    summary: c.summary,
                    average_scores_centi: c
                        .averages_centi
                        .into_iter()
                        .map(|(criterion, score)| pb::CriterionScore { criterion, score })
                        .collect(),
                    overall_average_centi: c.overall_centi,
                    chair_expert_id: if show_panel { c.chair } else { String::new() },
                    conclude_time: Some(stored_to_timestamp(&c.at)?),
                })
            });
        let deadline = date_from_stored(&self.deadline)?;
        Ok(pb::Review {
            name: self.name(),
            project: self.project_name(),
            stage: self.stage()? as i32,
            state: review_state(&self.state)? as i32,
            paused_from: self
                .paused_from
                .as_deref()
                .map(review_state)
                .transpose()?
                .unwrap_or_default() as i32,
            cancel_reason: self.cancel_reason.clone(),
            accept_time: if self.accept_time.is_empty() {
                None
            } else {
                Some(stored_to_timestamp(&self.accept_time)?)
            },
            panel: self
                .panel()?
                .into_iter()
                .map(|p| pb::PanelRequirement {
                    category: p.category,
                    count: p.count,
                    alternates: p.alternates,
                })
                .collect(),
            excluded_organizations: self.excluded()?,
            request_date: Some(date_to_proto(date_from_stored(&self.request_date)?)),
            deadline: Some(date_to_proto(deadline)),
            calendar_version: self.calendar_version.clone(),
            draws: if show_panel { draws } else { Vec::new() },
            invitations: if show_panel {
                invitations
                    .iter()
                    .map(InvitationRow::to_proto)
                    .collect::<anyhow::Result<_>>()?
            } else {
                Vec::new()
            },
            chair_expert_id: if show_panel {
                self.chair_expert_id.clone().unwrap_or_default()
            } else {
                String::new()
            },
            meeting: meeting.transpose()?,
            opinions: if show_panel {
                opinions
                    .iter()
                    .map(OpinionRow::to_proto)
                    .collect::<anyhow::Result<_>>()?
            } else {
                Vec::new()
            },
            conclusion: conclusion.transpose()?,
            ratings: if show_panel { ratings } else { Vec::new() },
            stall_reason: self.stall_reason.clone(),
            overdue: !["CONCLUDED", "CANCELLED"].contains(&self.state.as_str()) && deadline < today,
            create_time: Some(stored_to_timestamp(&self.create_time)?),
            applicant_organization: self.applicant.clone(),
        })
    }
}

pub fn review_state(value: &str) -> anyhow::Result<pb::ReviewState> {
    pb::ReviewState::from_str_name(&format!("REVIEW_STATE_{value}"))
        .filter(|s| *s != pb::ReviewState::Unspecified)
        .ok_or_else(|| unknown("review state", value))
}
