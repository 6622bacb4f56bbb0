//! One expert review in the demo, from the request reaching the scheduling service to the
//! chair's conclusion: the draw witnessed and verified, invitations answered, a meeting
//! slot found on the working-day calendar, opinions and the conclusion recorded.

use std::{collections::BTreeSet, io::Write, time::Duration};

use anyhow::{Context, bail};
use chrono::{DateTime, FixedOffset, NaiveDate};
use govit_platform::{Role, error::status_reason};
use govit_proto::{StoredEnum, experts::v1 as epb, scheduling::v1 as spb};
use tonic::Code;

use super::{Demo, Scheduling, date, wait_for};

/// What a review of this stage is scored on.
fn criteria(stage: spb::ReviewStage) -> &'static [spb::ReviewCriterion] {
    use spb::ReviewCriterion as C;
    if stage == spb::ReviewStage::Acceptance {
        &[C::Completeness, C::Quality, C::Documentation, C::UseOfFunds]
    } else {
        &[
            C::Necessity,
            C::Feasibility,
            C::TechnicalSoundness,
            C::BudgetReasonableness,
            C::Security,
        ]
    }
}

fn beijing() -> anyhow::Result<FixedOffset> {
    FixedOffset::east_opt(8 * 3600).context("offset")
}

async fn get_review(office: &Scheduling, name: &str) -> anyhow::Result<spb::Review> {
    Ok(office
        .clone()
        .get_review(spb::GetReviewRequest { name: name.into() })
        .await?
        .into_inner())
}

/// Polls the review until `ready` holds.
async fn review_when(
    office: &Scheduling,
    what: &str,
    name: &str,
    ready: fn(&spb::Review) -> bool,
) -> anyhow::Result<spb::Review> {
    wait_for(what, || async move {
        let review = get_review(office, name).await?;
        Ok(ready(&review).then_some(review))
    })
    .await
}

impl<W: Write> Demo<'_, W> {
    /// One review from the request to the conclusion; returns the concluded review.
    pub(super) async fn review(
        &mut self,
        project: &str,
        stage: spb::ReviewStage,
        decision: spb::ReviewDecision,
        decline_one: bool,
    ) -> anyhow::Result<spb::Review> {
        let office = self.scheduling(Role::Office, None)?;
        let review = self.requested_review(&office, project, stage).await?;
        let review = review_when(
            &office,
            "the panel's draw to be opened at the registry",
            &review.name,
            |r| !r.draws.is_empty(),
        )
        .await?;
        let draw_name = review.draws[0].clone();
        self.witness_draw(project, &draw_name).await?;
        let review = review_when(
            &office,
            "the draw to be executed and the panel invited",
            &review.name,
            |r| !r.invitations.is_empty(),
        )
        .await?;
        self.verify_draw(&draw_name).await?;
        let invited: Vec<String> = review
            .invitations
            .iter()
            .map(|i| format!("{} ({})", i.expert_id, i.category))
            .collect();
        self.say(format!("Invitations went out to {}.", invited.join(", ")))?;
        let review = self.gather_panel(&office, review, decline_one).await?;
        let start = self.schedule_meeting(&office, &review).await?;
        self.say(format!("Office scheduled the meeting for {} (Beijing time), a working day on or before the deadline.", start.format("%Y-%m-%d %H:%M")))?;
        let review = get_review(&office, &review.name).await?;
        self.give_opinions(&review, stage, decision).await?;
        self.conclude(&office, &review, decision).await
    }

    /// Waits for the scheduling service to receive the projects service's request.
    async fn requested_review(
        &mut self,
        office: &Scheduling,
        project: &str,
        stage: spb::ReviewStage,
    ) -> anyhow::Result<spb::Review> {
        let review = wait_for(
            "the scheduling service to receive the review request",
            || {
                let mut office = office.clone();
                let project = project.to_owned();
                async move {
                    let list = office
                        .list_reviews(spb::ListReviewsRequest {
                            project,
                            stage: stage as i32,
                            ..Default::default()
                        })
                        .await?
                        .into_inner();
                    Ok(list
                        .reviews
                        .into_iter()
                        .find(|r| r.state != spb::ReviewState::Concluded as i32))
                }
            },
        )
        .await?;
        let deadline = review.deadline.unwrap_or_default();
        self.say(format!(
            "The scheduling service opened review {} ({}): deadline {:04}-{:02}-{:02}, {} working days on calendar {}.",
            review.name,
            stage.as_stored().to_lowercase().replace('_', " "),
            deadline.year,
            deadline.month,
            deadline.day,
            if stage == spb::ReviewStage::PreliminaryReview { 5 } else { 10 },
            review.calendar_version
        ))?;
        Ok(review)
    }

    /// A supervisor adds the witness entropy the draw waits for.
    async fn witness_draw(&mut self, project: &str, draw_name: &str) -> anyhow::Result<()> {
        let draw = self
            .registry(Role::Inspector)?
            .get_draw(epb::GetDrawRequest {
                name: draw_name.into(),
            })
            .await?
            .into_inner();
        self.say(format!("The registry opened {draw_name}: the eligible pool is frozen, input hash {}…, server commitment {}….", &draw.input_hash[..16], &draw.server_commitment[..16]))?;
        if draw.witness_required && !draw.witnessed {
            let code = project.trim_start_matches("projects/");
            let entropy = format!("dice rolled by the finance bureau for {code}: 3-5-6-2-4");
            self.registry(Role::Supervisor)?
                .submit_witness_entropy(epb::SubmitWitnessEntropyRequest {
                    name: draw_name.into(),
                    witness_entropy: entropy.clone(),
                })
                .await?;
            self.say(format!(
                "A supervisor witnessed the draw with \"{entropy}\"."
            ))?;
        }
        Ok(())
    }

    /// An inspector recomputes the executed draw from its record.
    async fn verify_draw(&mut self, draw_name: &str) -> anyhow::Result<()> {
        let record = self
            .registry(Role::Inspector)?
            .get_draw_record(epb::GetDrawRecordRequest {
                name: draw_name.into(),
            })
            .await?
            .into_inner();
        let report = govit_draw::draw::verify(record.record_json.as_bytes())
            .map_err(|m| anyhow::anyhow!("the draw does not verify: {m}"))?;
        self.say(format!(
            "The draw executed; an inspector recomputed it from its record ({} checks passed):",
            report.checks.len()
        ))?;
        for check in &report.checks {
            self.detail(check)?;
        }
        Ok(())
    }

    /// Every invited expert answers as their invitation arrives (alternates too); with
    /// `decline_one`, the second declines first. Returns the review once the panel is full.
    async fn gather_panel(
        &mut self,
        office: &Scheduling,
        review: spb::Review,
        decline_one: bool,
    ) -> anyhow::Result<spb::Review> {
        let mut answered = BTreeSet::new();
        if decline_one {
            let first = review.invitations[1].clone();
            self.answer(&first, false).await?;
            answered.insert(first.expert_id.clone());
            self.say(format!("{} declined (travelling that week); the registry hands the place to the next alternate of {}.", first.expert_id, first.category))?;
        }
        let panel_size: i32 = review.panel.iter().map(|p| p.count).sum();
        let confirmed = |r: &spb::Review| {
            r.invitations
                .iter()
                .filter(|i| i.state == spb::InvitationState::Confirmed as i32)
                .map(|i| i.expert_id.clone())
                .collect::<Vec<_>>()
        };
        for _ in 0..600 {
            let r = get_review(office, &review.name).await?;
            for i in r
                .invitations
                .iter()
                .filter(|i| i.state == spb::InvitationState::Pending as i32)
            {
                if answered.insert(i.expert_id.clone()) {
                    self.answer(i, true).await?;
                }
            }
            let members = confirmed(&r);
            if r.state == spb::ReviewState::PanelConfirmed as i32
                && members.len() as i32 == panel_size
            {
                if decline_one {
                    self.say(format!(
                        "The whole panel confirmed: {}.",
                        members.join(", ")
                    ))?;
                } else {
                    self.say("The whole panel confirmed.")?;
                }
                return Ok(r);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("timed out after 60 s waiting for every panel member to answer")
    }

    async fn answer(&self, invitation: &spb::Invitation, accept: bool) -> anyhow::Result<()> {
        self.scheduling(Role::Expert, Some(&invitation.expert_id))?
            .respond_to_invitation(spb::RespondToInvitationRequest {
                name: invitation.name.clone(),
                accept,
                decline_reason: if accept {
                    String::new()
                } else {
                    "travelling that week".into()
                },
            })
            .await?;
        Ok(())
    }

    /// The first free two-hour slot on a working day before the deadline.
    async fn schedule_meeting(
        &self,
        office: &Scheduling,
        review: &spb::Review,
    ) -> anyhow::Result<DateTime<FixedOffset>> {
        let deadline = review
            .deadline
            .as_ref()
            .and_then(govit_platform::time::date_from_proto)
            .context("the review has no deadline")?;
        let mut day = chrono::Utc::now().with_timezone(&beijing()?).date_naive();
        for _ in 0..15 {
            day = self.next_working_day(day).await?;
            if day > deadline {
                break;
            }
            for hour in [9, 11, 14, 16] {
                let start = day
                    .and_hms_opt(hour, 0, 0)
                    .context("time")?
                    .and_local_timezone(beijing()?)
                    .single()
                    .context("time")?;
                match try_meeting(office, review, start).await {
                    Ok(()) => return Ok(start),
                    // Someone on the panel sits on another meeting then: the next slot.
                    Err(s) if status_reason(&s).as_deref() == Some("DOUBLE_BOOKED") => continue,
                    // Already past, say: the next day.
                    Err(s) if s.code() == Code::InvalidArgument => break,
                    Err(s) => return Err(s.into()),
                }
            }
        }
        bail!("no free meeting slot before the deadline")
    }

    async fn next_working_day(&self, day: NaiveDate) -> anyhow::Result<NaiveDate> {
        let next = self
            .scheduling(Role::Office, None)?
            .add_working_days(spb::AddWorkingDaysRequest {
                date: date(day),
                days: 1,
            })
            .await?
            .into_inner();
        govit_platform::time::date_from_proto(&next.date.unwrap_or_default()).context("date")
    }

    /// Each confirmed member scores every criterion and recommends `decision`.
    async fn give_opinions(
        &mut self,
        review: &spb::Review,
        stage: spb::ReviewStage,
        decision: spb::ReviewDecision,
    ) -> anyhow::Result<()> {
        let criteria = criteria(stage);
        let members = review
            .invitations
            .iter()
            .filter(|i| i.state == spb::InvitationState::Confirmed as i32);
        let mut count = 0;
        for (n, member) in members.enumerate() {
            let scores = criteria
                .iter()
                .enumerate()
                .map(|(k, c)| spb::CriterionScore {
                    criterion: *c as i32,
                    score: 78 + ((n + k) % 5) as i32 * 4,
                })
                .collect();
            self.scheduling(Role::Expert, Some(&member.expert_id))?
                .submit_opinion(spb::SubmitOpinionRequest {
                    request_id: String::new(),
                    review: review.name.clone(),
                    scores,
                    opinion: "sound plan; see the notes on backup capacity".into(),
                    recommendation: decision as i32,
                })
                .await?;
            count += 1;
        }
        self.say(format!(
            "Each of the {count} panel members submitted an opinion with scores on {}.",
            criteria
                .iter()
                .map(|c| govit_proto::StoredEnum::as_stored(*c).replace('_', " "))
                .collect::<Vec<_>>()
                .join(", ")
        ))
    }

    /// The chair records the conclusion; office rates one member.
    async fn conclude(
        &mut self,
        office: &Scheduling,
        review: &spb::Review,
        decision: spb::ReviewDecision,
    ) -> anyhow::Result<spb::Review> {
        let chair = review.chair_expert_id.clone();
        let concluded = self
            .scheduling(Role::Expert, Some(&chair))?
            .record_conclusion(spb::RecordConclusionRequest {
                request_id: String::new(),
                name: review.name.clone(),
                decision: decision as i32,
                summary: "The panel agrees.".into(),
            })
            .await?
            .into_inner();
        let c = concluded.conclusion.clone().unwrap_or_default();
        self.say(format!(
            "The chair, {chair}, recorded the conclusion: {} (panel average {:.2}).",
            decision.as_stored(),
            f64::from(c.overall_average_centi) / 100.0
        ))?;
        let rated = concluded
            .invitations
            .iter()
            .find(|i| i.state == spb::InvitationState::Confirmed as i32);
        if let Some(member) = rated {
            office
                .clone()
                .rate_expert(spb::RateExpertRequest {
                    request_id: String::new(),
                    name: review.name.clone(),
                    expert_id: member.expert_id.clone(),
                    rating: 5,
                    comment: "thorough".into(),
                })
                .await?;
        }
        Ok(concluded)
    }
}

async fn try_meeting(
    office: &Scheduling,
    review: &spb::Review,
    start: DateTime<FixedOffset>,
) -> Result<(), tonic::Status> {
    let ts = |t: DateTime<FixedOffset>| prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: 0,
    };
    office
        .clone()
        .schedule_meeting(spb::ScheduleMeetingRequest {
            name: review.name.clone(),
            start_time: Some(ts(start)),
            end_time: Some(ts(start + chrono::Duration::hours(2))),
            venue: "City IT Office, meeting room 3".into(),
            online_link: String::new(),
            reason: String::new(),
        })
        .await
        .map(|_| ())
}
