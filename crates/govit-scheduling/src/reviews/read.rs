//! Reading a review: who may, whether they may see its panel, and the reads of a panel before
//! its meeting, which are on record.

use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, StateMachine, Violations,
    paging::Page,
    time::{now, to_stored},
};
use govit_proto::{StoredEnum, scheduling::v1 as pb};
use sqlx::{AssertSqlSafe, Row};

use super::{ENDED_STATES, InvitationEvent, REVIEW_READERS, hidden, internal, sql_states, today};
use crate::{
    SchedulingService,
    model::{InvitationRow, OpinionRow, ReviewParts, ReviewRow},
};

impl SchedulingService {
    /// Whether `caller` may read the review, and whether they may see who sits on its panel.
    pub(crate) fn visibility(
        caller: &Caller,
        r: &ReviewRow,
        invitations: &[InvitationRow],
    ) -> ServiceResult<bool> {
        caller.require(&REVIEW_READERS)?;
        match caller.role {
            Role::Applicant => {
                if r.applicant.is_empty()
                    || Some(r.applicant.as_str()) != caller.organization.as_deref()
                {
                    return Err(hidden(caller));
                }
                // The applicant learns the panel's names only when the meeting starts.
                Ok(r.scheduled_meeting()
                    .map_err(internal)?
                    .is_some_and(|m| m.start <= to_stored(now())))
            }
            Role::Expert => {
                let serving = invitations
                    .iter()
                    .any(|i| Some(i.expert_id.as_str()) == caller.expert.as_deref() && i.is_open());
                if !serving {
                    return Err(hidden(caller));
                }
                Ok(true)
            }
            // Who was drawn is confidential to office, registry admins, inspectors and services.
            Role::Supervisor => Ok(false),
            _ => Ok(true),
        }
    }

    pub(crate) async fn view(&self, caller: &Caller, r: &ReviewRow) -> ServiceResult<pb::Review> {
        let invitations = self.invitations(&r.id).await?;
        let show = Self::visibility(caller, r, &invitations)?;
        // Who was drawn is confidential until the panel meets: every person who sees it
        // earlier is on record (the services' own reads are the system at work).
        let before_meeting = r
            .scheduled_meeting()
            .map_err(internal)?
            .is_none_or(|m| m.start > to_stored(now()));
        if show && before_meeting && !invitations.is_empty() && caller.role != Role::Service {
            govit_platform::reads::record(&self.db, caller, "PanelBeforeMeeting", &r.name())
                .await?;
        }
        let draws: Vec<String> = sqlx::query_scalar(
            "SELECT draw_id FROM review_draws WHERE review_id = $1 ORDER BY seq",
        )
        .bind(r.id.clone())
        .fetch_all(&self.db.pool)
        .await?;
        let opinions = sqlx::query_as::<_, OpinionRow>(
            "SELECT * FROM opinions WHERE review_id = $1 ORDER BY submit_time, expert_id",
        )
        .bind(r.id.clone())
        .fetch_all(&self.db.pool)
        .await?;
        let parts = ReviewParts {
            draws: draws.into_iter().map(|d| format!("draws/{d}")).collect(),
            invitations: &invitations,
            opinions: &opinions,
            ratings: self.ratings(&r.id).await?,
            show_panel: show,
        };
        r.to_proto(parts, today()).map_err(internal)
    }

    async fn ratings(&self, review_id: &str) -> ServiceResult<Vec<pb::ExpertRating>> {
        let rows = sqlx::query(
            "SELECT expert_id, rating, comment FROM ratings WHERE review_id = $1 ORDER BY expert_id",
        )
        .bind(review_id.to_owned())
        .fetch_all(&self.db.pool)
        .await?;
        let ratings = rows
            .iter()
            .map(|x| -> Result<_, sqlx::Error> {
                Ok(pb::ExpertRating {
                    expert_id: x.try_get(0)?,
                    rating: x.try_get::<i64, _>(1)? as i32,
                    comment: x.try_get(2)?,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(ratings)
    }
}

/// Which reviews a list asks for.
#[derive(Debug, Clone)]
pub struct ReviewFilter {
    project_id: String,
    stage: Option<pb::ReviewStage>,
    state: Option<pb::ReviewState>,
    overdue_only: bool,
    page_size: i32,
    page_token: String,
}

impl TryFrom<pb::ListReviewsRequest> for ReviewFilter {
    type Error = ServiceError;

    fn try_from(req: pb::ListReviewsRequest) -> ServiceResult<Self> {
        let mut v = Violations::new();
        let project_id = v.resource_id("project", &req.project, "projects", true);
        let stage = match pb::ReviewStage::try_from(req.stage) {
            Ok(pb::ReviewStage::Unspecified) => None,
            Ok(s) => Some(s),
            Err(_) => {
                v.add("stage", format!("{} is not a known value", req.stage));
                None
            }
        };
        let state = match pb::ReviewState::try_from(req.state) {
            Ok(pb::ReviewState::Unspecified) => None,
            Ok(s) => Some(s),
            Err(_) => {
                v.add("state", format!("{} is not a known value", req.state));
                None
            }
        };
        v.finish()?;
        Ok(ReviewFilter {
            project_id,
            stage,
            state,
            overdue_only: req.overdue_only,
            page_size: req.page_size,
            page_token: req.page_token,
        })
    }
}

impl SchedulingService {
    /// The review as `caller` may see it; applicants and experts learn nothing of a review
    /// that does not exist.
    pub(crate) async fn read_review(&self, caller: &Caller, id: &str) -> ServiceResult<pb::Review> {
        let r = match self.review(id).await {
            Err(ServiceError::NotFound { .. })
                if matches!(caller.role, Role::Applicant | Role::Expert) =>
            {
                return Err(hidden(caller));
            }
            other => other?,
        };
        self.view(caller, &r).await
    }

    /// A page of the reviews `caller` may see: applicants their own organisation's, experts
    /// those whose panel they are on, everyone else all of them.
    pub(crate) async fn find_reviews(
        &self,
        caller: &Caller,
        filter: ReviewFilter,
    ) -> ServiceResult<pb::ListReviewsResponse> {
        let (applicant, expert) = match caller.role {
            Role::Applicant => (
                caller.organization.clone().unwrap_or_else(|| "-".into()),
                String::new(),
            ),
            Role::Expert => (
                String::new(),
                caller.expert.clone().unwrap_or_else(|| "-".into()),
            ),
            _ => (String::new(), String::new()),
        };
        let stage = filter.stage.map(|s| s.as_stored().to_owned());
        let state = filter.state.map(|s| s.as_stored().to_owned());
        let page = Page::parse(
            filter.page_size,
            &filter.page_token,
            &format!(
                "reviews {} {stage:?} {state:?} {} {applicant} {expert}",
                filter.project_id, filter.overdue_only
            ),
        )?;
        let (after_time, after_id) = page
            .after
            .as_deref()
            .and_then(|k| k.split_once(' '))
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .unwrap_or_default();
        let mut rows = sqlx::query_as::<_, ReviewRow>(AssertSqlSafe(format!(
            "SELECT * FROM reviews WHERE ($1 = '' OR project_id = $1) AND ($2 = '' OR stage = $2) AND ($3 = '' OR state = $3) \
             AND ($4 = 0 OR (state NOT IN ({ended}) AND deadline < $5)) AND (create_time > $6 OR (create_time = $6 AND id > $7)) \
             AND ($9 = '' OR applicant = $9) \
             AND ($10 = '' OR EXISTS (SELECT 1 FROM invitations i WHERE i.review_id = reviews.id AND i.expert_id = $10 AND i.state IN ({open}))) \
             ORDER BY create_time, id LIMIT $8",
            ended = sql_states(&ENDED_STATES),
            open = InvitationEvent::Withdraw.sources_sql(),
        )))
        .bind(filter.project_id)
        .bind(stage.unwrap_or_default())
        .bind(state.unwrap_or_default())
        .bind(i64::from(filter.overdue_only))
        .bind(today().to_string())
        .bind(after_time)
        .bind(after_id)
        .bind(page.fetch_limit())
        .bind(applicant)
        .bind(expert)
        .fetch_all(&self.db.pool)
        .await?;
        let next_page_token = page.finish(&mut rows, |r| format!("{} {}", r.create_time, r.id));
        let mut reviews = Vec::new();
        for r in &rows {
            reviews.push(self.view(caller, r).await?);
        }
        Ok(pb::ListReviewsResponse {
            reviews,
            next_page_token,
        })
    }
}
