//! Variance and risk: cost and schedule variance computed from the milestones, and office's
//! own risk ratings beside it.

use chrono::NaiveDate;
use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, Violations,
    time::{date_from_stored, date_to_proto, date_to_stored, now, to_stored},
};
use govit_proto::{StoredEnum, projects::v1 as pb};

use super::{MilestoneRow, color_proto, date_field, internal, new_id};
use crate::{
    ProjectsService,
    model::ProjectCode,
    store::NewEvent,
    validation::{self as check, MAX_REASON_CHARS},
    variance::{self, MilestoneFigures},
};

/// What variance arithmetic needs of the milestones.
pub(super) fn figures(ms: &[&MilestoneRow]) -> ServiceResult<Vec<MilestoneFigures>> {
    ms.iter()
        .map(|m| -> anyhow::Result<_> {
            Ok(MilestoneFigures {
                planned_start: date_from_stored(&m.planned_start)?,
                planned_end: date_from_stored(&m.planned_end)?,
                projected_end: date_from_stored(&m.projected_end)?,
                actual_end: m.actual_end.as_deref().map(date_from_stored).transpose()?,
                planned_cost_fen: m.planned_cost_fen,
                projected_cost_fen: m.projected_cost_fen,
                actual_cost_fen: m.actual_cost_fen,
            })
        })
        .collect::<anyhow::Result<_>>()
        .map_err(internal)
}

/// Office's rating of a project's risk, checked.
pub(crate) struct NewRiskRating {
    code: ProjectCode,
    rating: pb::RiskColor,
    comment: String,
    rating_date: NaiveDate,
}

impl NewRiskRating {
    pub(crate) const ROLES: &[Role] = &[Role::Office];
}

impl TryFrom<pb::RateProjectRiskRequest> for NewRiskRating {
    type Error = ServiceError;

    fn try_from(req: pb::RateProjectRiskRequest) -> ServiceResult<Self> {
        let code = check::parse_project_name("name", &req.name)?;
        let mut v = Violations::new();
        let rating = check::enum_value::<pb::RiskColor>(&mut v, "rating", req.rating, false);
        check::text(&mut v, "comment", &req.comment, MAX_REASON_CHARS);
        let date = date_field(&mut v, "rating_date", req.rating_date.as_ref(), true);
        v.finish()?;
        Ok(Self {
            code,
            rating: rating.ok_or_else(|| ServiceError::field("rating", "must be specified"))?,
            comment: req.comment,
            rating_date: date.ok_or_else(|| ServiceError::field("rating_date", "is required"))?,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
struct RatingRow {
    id: String,
    project_code: ProjectCode,
    #[sqlx(try_from = "String")]
    rating: pb::RiskColor,
    comment: String,
    rating_date: String,
    rated_by: String,
}

impl RatingRow {
    fn to_proto(&self) -> ServiceResult<pb::RiskRating> {
        Ok(pb::RiskRating {
            name: format!("projects/{}/riskRatings/{}", self.project_code, self.id),
            rating: self.rating as i32,
            comment: self.comment.clone(),
            rating_date: Some(date_to_proto(
                date_from_stored(&self.rating_date).map_err(internal)?,
            )),
            rated_by: self.rated_by.clone(),
        })
    }
}

impl ProjectsService {
    async fn latest_rating(&self, code: &ProjectCode) -> ServiceResult<Option<pb::RiskRating>> {
        sqlx::query_as::<_, RatingRow>(
            "SELECT id, project_code, rating, comment, rating_date, rated_by FROM risk_ratings WHERE project_code = $1 \
             ORDER BY rating_date DESC, create_time DESC LIMIT 1",
        )
        .bind(code.to_owned())
        .fetch_optional(&self.store.db.pool)
        .await?
        .as_ref()
        .map(RatingRow::to_proto)
        .transpose()
    }

    pub(crate) async fn variance_of(
        &self,
        caller: &Caller,
        code: &ProjectCode,
    ) -> ServiceResult<pb::ProjectVariance> {
        self.visible_project(caller, code).await?;
        let ms = self.milestone_rows(&[code.to_owned()]).await?;
        let refs: Vec<&MilestoneRow> = ms.iter().map(|(_, m)| m).collect();
        let v = variance::variance(&figures(&refs)?, self.policy.bands);
        Ok(pb::ProjectVariance {
            project: code.name(),
            planned_cost_fen: v.planned_cost_fen,
            projected_cost_fen: v.projected_cost_fen,
            cost_variance_fen: v.cost_variance_fen,
            cost_variance_bp: v.cost_variance_bp,
            planned_duration_days: v.planned_duration_days,
            schedule_variance_days: v.schedule_variance_days,
            schedule_variance_bp: v.schedule_variance_bp,
            cost_color: color_proto(v.cost_color) as i32,
            schedule_color: color_proto(v.schedule_color) as i32,
            color: color_proto(v.color) as i32,
            milestone_count: refs.len() as i32,
            latest_rating: self.latest_rating(code).await?,
        })
    }

    pub(crate) async fn rate_risk(
        &self,
        caller: &Caller,
        rating: NewRiskRating,
    ) -> ServiceResult<pb::RiskRating> {
        let code = &rating.code;
        self.visible_project(caller, code).await?;
        let stored = rating.rating.as_stored();
        let id = new_id();
        let mut tx = self.store.db.begin_write().await?;
        sqlx::query(
            "INSERT INTO risk_ratings (id, project_code, rating, comment, rating_date, rated_by, create_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&id)
        .bind(code.clone())
        .bind(stored)
        .bind(rating.comment.clone())
        .bind(date_to_stored(rating.rating_date))
        .bind(caller.subject.clone())
        .bind(to_stored(now()))
        .execute(&mut *tx)
        .await?;
        let event = NewEvent {
            action: "RateProjectRisk".into(),
            changed_fields: vec!["risk_rating".into()],
            reason: format!("{stored}: {}", rating.comment),
            ..NewEvent::default()
        };
        Self::audit(&mut tx, code, caller, event).await?;
        tx.commit().await?;
        Ok(pb::RiskRating {
            name: format!("projects/{code}/riskRatings/{id}"),
            rating: rating.rating as i32,
            comment: rating.comment,
            rating_date: Some(date_to_proto(rating.rating_date)),
            rated_by: caller.subject.clone(),
        })
    }

    pub(crate) async fn ratings_of(
        &self,
        caller: &Caller,
        code: &ProjectCode,
    ) -> ServiceResult<Vec<pb::RiskRating>> {
        self.visible_project(caller, code).await?;
        sqlx::query_as::<_, RatingRow>(
            "SELECT id, project_code, rating, comment, rating_date, rated_by FROM risk_ratings WHERE project_code = $1 \
             ORDER BY rating_date, create_time, id",
        )
        .bind(code.to_owned())
        .fetch_all(&self.store.db.pool)
        .await?
        .iter()
        .map(RatingRow::to_proto)
        .collect()
    }
}
