//! Replacements, run from the outbox: the registry names the next alternate in a declined,
//! lapsed or removed expert's place, who is invited here; when a category's alternates are
//! used up, a supplementary draw is opened for it.

use govit_platform::{ServiceError, ServiceResult, error::status_reason, time::date_from_stored};
use govit_proto::{experts::v1 as epb, scheduling::v1 as pb};
use sqlx::Row;

use super::{
    OPEN_STATES, Replacement, ReviewEvent, derived_key, internal, lock_review_in, move_review,
};
use crate::{
    SchedulingService,
    model::ReviewRow,
    notify::{self, Channel},
};

impl SchedulingService {
    /// Runs a replacement message: the next alternate, or a supplementary draw when the
    /// category's alternates are used up.
    pub(crate) async fn replace(
        &self,
        request: epb::ReplaceExpertRequest,
    ) -> ServiceResult<Replacement> {
        let draw_id = request
            .name
            .strip_prefix("draws/")
            .unwrap_or_default()
            .to_owned();
        let Some(of) =
            sqlx::query("SELECT review_id, abandoned FROM review_draws WHERE draw_id = $1")
                .bind(draw_id.clone())
                .fetch_optional(&self.db.pool)
                .await?
        else {
            return Err(ServiceError::not_found("review draw", request.name.clone()));
        };
        let review_id: String = of.try_get(0)?;
        // An amended panel's old draw invites nobody any more.
        if of.try_get::<i64, _>(1)? != 0 {
            return Ok(Replacement::Done);
        }
        let r = self.review(&review_id).await?;
        match r.state {
            // Nobody is to be invited to a review that has ended.
            pb::ReviewState::Cancelled | pb::ReviewState::Concluded => {
                return Ok(Replacement::Done);
            }
            pb::ReviewState::Paused => return Ok(Replacement::Paused),
            _ => {}
        }
        let result = self.registry.clone().replace_expert(request.clone()).await;
        match result {
            Ok(d) => {
                self.invite_alternate(&r, &draw_id, &request, &d.into_inner())
                    .await?;
                Ok(Replacement::Done)
            }
            Err(status) if status_reason(&status).as_deref() == Some("ALTERNATES_EXHAUSTED") => {
                self.draw_supplement(&r, &draw_id, &request).await?;
                Ok(Replacement::Done)
            }
            Err(status) => Err(ServiceError::from_peer("expert registry", status)),
        }
    }

    /// Invites the alternate the registry brought in, who also takes over the chair from the
    /// expert they replace.
    async fn invite_alternate(
        &self,
        r: &ReviewRow,
        draw_id: &str,
        request: &epb::ReplaceExpertRequest,
        d: &epb::Draw,
    ) -> ServiceResult<()> {
        let (category, expert) = (&request.category, &request.expert_id);
        let came_in = d
            .replacements
            .iter()
            .rev()
            .find(|x| &x.category == category && &x.left_expert_id == expert)
            .map(|x| x.replacement_expert_id.clone())
            .ok_or_else(|| {
                internal(anyhow::anyhow!(
                    "the registry reports no replacement for {expert}"
                ))
            })?;
        let review_id = r.id.as_str();
        let mut tx = self.begin().await?;
        // The review may have ended or paused while the registry answered.
        if !lock_review_in(&mut tx, review_id, &OPEN_STATES).await? {
            return Ok(());
        }
        self.invite(&mut tx, r, &came_in, category, draw_id).await?;
        sqlx::query(
            "UPDATE reviews SET chair_expert_id = $1 WHERE id = $2 AND chair_expert_id = $3",
        )
        .bind(came_in.clone())
        .bind(review_id.to_owned())
        .bind(expert.clone())
        .execute(&mut *tx)
        .await?;
        move_review(&mut tx, review_id, ReviewEvent::InviteAlternate, None).await?;
        Self::event(
            &mut tx,
            review_id,
            "scheduling",
            "ExpertReplaced",
            &format!("{category}: {expert} → {came_in} (alternate)"),
        )
        .await?;
        notify::record(
            &mut tx,
            "office",
            Channel::Email,
            &format!(
                "Review {review_id}: {expert} was replaced by alternate {came_in} ({category})"
            ),
            review_id,
        )
        .await?;
        tx.commit().await?;
        self.notify.notify_waiters();
        Ok(())
    }

    /// Opens a supplementary draw of one expert for the category whose alternates are used
    /// up, and takes the review on with it; stalls the review when none can be drawn.
    async fn draw_supplement(
        &self,
        r: &ReviewRow,
        draw_id: &str,
        request: &epb::ReplaceExpertRequest,
    ) -> ServiceResult<()> {
        let category = &request.category;
        let opened = self
            .registry
            .clone()
            .open_draw(epb::OpenDrawRequest {
                project: r.project_name(),
                stage: r.stage as i32,
                requirements: vec![epb::PanelRequirement {
                    category: category.clone(),
                    count: 1,
                    alternates: 1,
                }],
                excluded_organizations: r.excluded().map_err(internal)?,
                // Everyone the review invited, from any of its draws, is left out
                // (MANUAL); the registry adds the parent draw's experts (ALREADY_DRAWN).
                excluded_experts: self
                    .invitations(&r.id)
                    .await?
                    .into_iter()
                    .map(|i| epb::ExcludedExpert {
                        expert_id: i.expert_id,
                        reason: "already invited to this review".into(),
                    })
                    .collect(),
                meeting_date: Some(govit_platform::time::date_to_proto(
                    date_from_stored(&r.deadline).map_err(internal)?,
                )),
                supplements: format!("draws/{draw_id}"),
                request_id: derived_key(&[&request.request_id, "supplement"]),
                validate_only: false,
            })
            .await;
        let d = match opened {
            Ok(d) => d.into_inner(),
            Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                let why = format!(
                    "no supplementary {category} expert can be drawn: {}",
                    s.message()
                );
                return self.stall(r, &why).await;
            }
            Err(s) => return Err(ServiceError::from_peer("expert registry", s)),
        };
        self.add_draw(r, &d.draw_id, category).await?;
        self.advance(&r.id).await
    }
}
