//! Rows as stored and their wire forms.

use govit_platform::time::{date_from_stored, date_to_proto, stored_to_timestamp};
use govit_proto::{StoredEnum, scheduling::v1 as pb};
use serde::{Deserialize, Serialize};

use crate::reviews::ENDED_STATES;

pub use govit_platform::json::{from_json, to_json};

/// A stored enum inside a JSON column, by the same stored name a column of its own holds; an
/// unknown name fails the whole value.
mod stored_name {
    use govit_proto::StoredEnum;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<T: StoredEnum, S: Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(value.as_stored())
    }

    pub fn deserialize<'de, T: StoredEnum, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
        let text = String::deserialize(d)?;
        T::from_stored(&text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PanelRec {
    pub category: String,
    pub count: i32,
    pub alternates: i32,
}

impl PanelRec {
    pub fn from_requirements(panel: &[pb::PanelRequirement]) -> Vec<PanelRec> {
        panel
            .iter()
            .map(|p| PanelRec {
                category: p.category.clone(),
                count: p.count,
                alternates: p.alternates,
            })
            .collect()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MeetingRec {
    pub start: String,
    pub end: String,
    pub venue: String,
    pub online_link: String,
    #[serde(with = "stored_name")]
    pub state: pb::MeetingState,
    pub change_reason: String,
}

impl MeetingRec {
    pub fn is_scheduled(&self) -> bool {
        self.state == pb::MeetingState::Scheduled
    }

    /// Where the panel meets: the venue, or the online link when there is none.
    pub fn place(&self) -> &str {
        if self.venue.is_empty() {
            &self.online_link
        } else {
            &self.venue
        }
    }

    fn to_proto(&self) -> anyhow::Result<pb::Meeting> {
        Ok(pb::Meeting {
            start_time: Some(stored_to_timestamp(&self.start)?),
            end_time: Some(stored_to_timestamp(&self.end)?),
            venue: self.venue.clone(),
            online_link: self.online_link.clone(),
            state: self.state as i32,
            change_reason: self.change_reason.clone(),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConclusionRec {
    #[serde(with = "stored_name")]
    pub decision: pb::ReviewDecision,
    pub summary: String,
    pub averages_centi: Vec<(String, i32)>,
    pub overall_centi: i32,
    pub chair: String,
    pub at: String,
}

impl ConclusionRec {
    fn to_proto(&self, show_panel: bool) -> anyhow::Result<pb::Conclusion> {
        Ok(pb::Conclusion {
            decision: self.decision as i32,
            summary: self.summary.clone(),
            average_scores_centi: scores_proto(&self.averages_centi)?,
            overall_average_centi: self.overall_centi,
            chair_expert_id: if show_panel {
                self.chair.clone()
            } else {
                String::new()
            },
            conclude_time: Some(stored_to_timestamp(&self.at)?),
        })
    }
}

/// Scores as stored (criteria by their stored names) in their wire form; an unknown criterion
/// is a corrupt row.
fn scores_proto(scores: &[(String, i32)]) -> anyhow::Result<Vec<pb::CriterionScore>> {
    scores
        .iter()
        .map(|(criterion, score)| {
            Ok(pb::CriterionScore {
                criterion: pb::ReviewCriterion::from_stored(criterion)? as i32,
                score: *score,
            })
        })
        .collect()
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReviewRow {
    pub id: String,
    pub project_id: String,
    #[sqlx(try_from = "String")]
    pub stage: pb::ReviewStage,
    #[sqlx(try_from = "String")]
    pub state: pb::ReviewState,
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
    #[sqlx(try_from = "String")]
    pub state: pb::InvitationState,
    pub respond_by: String,
    pub decline_reason: String,
}

impl InvitationRow {
    /// Whether the expert still sits on the panel (invited or confirmed).
    pub fn is_open(&self) -> bool {
        matches!(
            self.state,
            pb::InvitationState::Pending | pb::InvitationState::Confirmed
        )
    }

    pub fn is_confirmed(&self) -> bool {
        self.state == pb::InvitationState::Confirmed
    }

    pub fn to_proto(&self) -> anyhow::Result<pb::Invitation> {
        Ok(pb::Invitation {
            name: format!("reviews/{}/invitations/{}", self.review_id, self.expert_id),
            expert_id: self.expert_id.clone(),
            category: self.category.clone(),
            state: self.state as i32,
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
    #[sqlx(try_from = "String")]
    pub recommendation: pb::ReviewDecision,
    pub submit_time: String,
}

impl OpinionRow {
    pub fn to_proto(&self) -> anyhow::Result<pb::Opinion> {
        let scores: Vec<(String, i32)> = from_json("scores", &self.scores)?;
        Ok(pb::Opinion {
            name: format!("reviews/{}/opinions/{}", self.review_id, self.expert_id),
            expert_id: self.expert_id.clone(),
            scores: scores_proto(&scores)?,
            opinion: self.opinion.clone(),
            recommendation: self.recommendation as i32,
            submit_time: Some(stored_to_timestamp(&self.submit_time)?),
        })
    }
}

/// What a reader sees of a review beside its own row; the panel parts only when `show_panel`
/// (false for applicants before the meeting starts).
pub struct ReviewParts<'a> {
    pub draws: Vec<String>,
    pub invitations: &'a [InvitationRow],
    pub opinions: &'a [OpinionRow],
    pub ratings: Vec<pb::ExpertRating>,
    pub show_panel: bool,
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

    /// The meeting, when one is scheduled (not cancelled).
    pub fn scheduled_meeting(&self) -> anyhow::Result<Option<MeetingRec>> {
        Ok(self.meeting()?.filter(MeetingRec::is_scheduled))
    }

    pub fn conclusion(&self) -> anyhow::Result<Option<ConclusionRec>> {
        self.conclusion
            .as_deref()
            .map(|c| from_json("conclusion", c))
            .transpose()
    }

    pub fn panel(&self) -> anyhow::Result<Vec<PanelRec>> {
        from_json("panel", &self.panel)
    }

    pub fn excluded(&self) -> anyhow::Result<Vec<String>> {
        from_json("excluded_organizations", &self.excluded_organizations)
    }

    pub fn paused_from(&self) -> anyhow::Result<Option<pb::ReviewState>> {
        Ok(self
            .paused_from
            .as_deref()
            .map(pb::ReviewState::from_stored)
            .transpose()?)
    }

    pub fn project_name(&self) -> String {
        format!("projects/{}", self.project_id)
    }

    /// The stage as notifications name it: `preliminary review`.
    pub fn stage_words(&self) -> String {
        self.stage.as_stored().to_lowercase().replace('_', " ")
    }

    /// The wire form.
    pub fn to_proto(
        &self,
        parts: ReviewParts<'_>,
        today: chrono::NaiveDate,
    ) -> anyhow::Result<pb::Review> {
        let deadline = date_from_stored(&self.deadline)?;
        let show = parts.show_panel;
        Ok(pb::Review {
            name: self.name(),
            project: self.project_name(),
            stage: self.stage as i32,
            state: self.state as i32,
            paused_from: self.paused_from()?.unwrap_or_default() as i32,
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
            chair_expert_id: if show {
                self.chair_expert_id.clone().unwrap_or_default()
            } else {
                String::new()
            },
            meeting: self.meeting()?.map(|m| m.to_proto()).transpose()?,
            conclusion: self.conclusion()?.map(|c| c.to_proto(show)).transpose()?,
            stall_reason: self.stall_reason.clone(),
            overdue: !ENDED_STATES.contains(&self.state) && deadline < today,
            create_time: Some(stored_to_timestamp(&self.create_time)?),
            applicant_organization: self.applicant.clone(),
            ..panel_proto(parts)?
        })
    }
}

/// The parts of a review that name its panel, empty when the reader may not see them.
fn panel_proto(parts: ReviewParts<'_>) -> anyhow::Result<pb::Review> {
    if !parts.show_panel {
        return Ok(pb::Review::default());
    }
    Ok(pb::Review {
        draws: parts.draws,
        invitations: parts
            .invitations
            .iter()
            .map(InvitationRow::to_proto)
            .collect::<anyhow::Result<_>>()?,
        opinions: parts
            .opinions
            .iter()
            .map(OpinionRow::to_proto)
            .collect::<anyhow::Result<_>>()?,
        ratings: parts.ratings,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meetings_keep_their_stored_text_and_refuse_unknown_states() {
        let stored = r#"{"start":"a","end":"b","venue":"v","online_link":"","state":"SCHEDULED","change_reason":""}"#;
        let m: MeetingRec = from_json("meeting", stored).unwrap();
        assert_eq!(m.state, pb::MeetingState::Scheduled);
        assert_eq!(to_json(&m), stored);
        let corrupt = stored.replace("SCHEDULED", "MAYBE");
        assert!(from_json::<MeetingRec>("meeting", &corrupt).is_err());
    }
}
