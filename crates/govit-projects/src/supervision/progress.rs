//! Progress reports: the applicant reports how far the project has come; office reviews each
//! report once.

use chrono::NaiveDate;
use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, StateMachine, Tx, Violations,
    time::{date_from_stored, date_to_proto, date_to_stored, now, stored_to_timestamp, to_stored},
};
use govit_proto::{
    StoredEnum,
    projects::v1::{self as pb, ProgressReportState},
};
use sqlx::AssertSqlSafe;

use super::{date_field, internal, new_id};
use crate::{
    ProjectsService,
    model::ProjectCode,
    store::NewEvent,
    validation::{self as check, MAX_REASON_CHARS, MAX_TEXT_CHARS},
};

/// What happens to a filed progress report: office reviews it, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProgressReportEvent {
    Review,
}

impl StateMachine for ProgressReportEvent {
    type State = ProgressReportState;

    fn sources(self) -> &'static [ProgressReportState] {
        &[ProgressReportState::Filed]
    }

    fn target(self) -> ProgressReportState {
        ProgressReportState::Reviewed
    }
}

impl ProgressReportEvent {
    /// The RPC, as the audit trail records it.
    fn action(self) -> &'static str {
        "ReviewProgressReport"
    }

    /// The refusal of a report already reviewed, in the words clients know.
    fn refusal(self, name: &str) -> ServiceError {
        ServiceError::precondition(
            "STATE_CONFLICT",
            name,
            format!("{name} is already reviewed"),
        )
    }
}

/// A progress report to file, checked.
pub(crate) struct NewProgressReport {
    code: ProjectCode,
    report_date: Option<NaiveDate>,
    percent_complete: i32,
    narrative: String,
}

impl NewProgressReport {
    pub(crate) const ROLES: &[Role] = &[Role::Applicant];
}

impl TryFrom<pb::FileProgressReportRequest> for NewProgressReport {
    type Error = ServiceError;

    fn try_from(req: pb::FileProgressReportRequest) -> ServiceResult<Self> {
        let mut v = Violations::new();
        let report_date = date_field(&mut v, "report_date", req.report_date.as_ref(), true);
        if !(0..=100).contains(&req.percent_complete) {
            v.add("percent_complete", "must be between 0 and 100");
        }
        check::text(&mut v, "narrative", &req.narrative, MAX_TEXT_CHARS);
        v.finish()?;
        Ok(Self {
            code: check::parse_project_name("parent", &req.parent)?,
            report_date,
            percent_complete: req.percent_complete,
            narrative: req.narrative,
        })
    }
}

/// Office's review of a report, checked.
pub(crate) struct ProgressReview {
    name: String,
    code: ProjectCode,
    id: String,
    comment: String,
    event: ProgressReportEvent,
}

impl ProgressReview {
    pub(crate) const ROLES: &[Role] = &[Role::Office];
}

impl TryFrom<pb::ReviewProgressReportRequest> for ProgressReview {
    type Error = ServiceError;

    fn try_from(req: pb::ReviewProgressReportRequest) -> ServiceResult<Self> {
        let (code, id) = check::parse_child_name("name", &req.name, "progressReports")?;
        let mut v = Violations::new();
        check::text(&mut v, "comment", &req.comment, MAX_REASON_CHARS);
        v.finish()?;
        Ok(Self {
            name: req.name,
            code,
            id,
            comment: req.comment,
            event: ProgressReportEvent::Review,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
struct ProgressReportRow {
    id: String,
    project_code: ProjectCode,
    report_date: String,
    percent_complete: i64,
    narrative: String,
    #[sqlx(try_from = "String")]
    state: ProgressReportState,
    filed_by: String,
    review_comment: String,
    reviewed_by: String,
    create_time: String,
}

impl ProgressReportRow {
    fn to_proto(&self) -> ServiceResult<pb::ProgressReport> {
        Ok(pb::ProgressReport {
            name: format!("projects/{}/progressReports/{}", self.project_code, self.id),
            report_date: Some(date_to_proto(
                date_from_stored(&self.report_date).map_err(internal)?,
            )),
            percent_complete: self.percent_complete as i32,
            narrative: self.narrative.clone(),
            state: self.state as i32,
            filed_by: self.filed_by.clone(),
            review_comment: self.review_comment.clone(),
            reviewed_by: self.reviewed_by.clone(),
            create_time: Some(stored_to_timestamp(&self.create_time).map_err(internal)?),
        })
    }
}

async fn insert_progress_report(
    tx: &mut Tx,
    id: &str,
    code: &ProjectCode,
    report: &NewProgressReport,
    filed_by: &str,
) -> ServiceResult<()> {
    sqlx::query(
        "INSERT INTO progress_reports (id, project_code, report_date, percent_complete, narrative, state, filed_by, review_comment, \
         reviewed_by, create_time) VALUES ($1, $2, $3, $4, $5, $6, $7, '', '', $8)",
    )
    .bind(id.to_owned())
    .bind(code.to_owned())
    .bind(report.report_date.map(date_to_stored).unwrap_or_default())
    .bind(i64::from(report.percent_complete))
    .bind(report.narrative.clone())
    .bind(ProgressReportState::Filed.as_stored())
    .bind(filed_by.to_owned())
    .bind(to_stored(now()))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Moves the report of `review` to its event's target if it is still in one of the sources;
/// false when a concurrent review came first.
async fn move_progress_report(
    tx: &mut Tx,
    review: &ProgressReview,
    reviewed_by: &str,
) -> ServiceResult<bool> {
    let sql = format!(
        "UPDATE progress_reports SET state = $1, review_comment = $2, reviewed_by = $3 WHERE id = $4 AND state IN ({})",
        review.event.sources_sql()
    );
    let done = sqlx::query(AssertSqlSafe(sql))
        .bind(review.event.target().as_stored())
        .bind(review.comment.clone())
        .bind(reviewed_by.to_owned())
        .bind(review.id.clone())
        .execute(&mut **tx)
        .await?;
    Ok(done.rows_affected() > 0)
}

impl ProjectsService {
    pub(crate) async fn add_progress_report(
        &self,
        caller: &Caller,
        report: NewProgressReport,
    ) -> ServiceResult<pb::ProgressReport> {
        let project = self.open_project(caller, &report.code).await?;
        let id = new_id();
        let mut tx = self.store.db.begin_write().await?;
        insert_progress_report(&mut tx, &id, &project.code, &report, &caller.subject).await?;
        let event = NewEvent {
            action: "FileProgressReport".into(),
            changed_fields: vec![format!("progressReports/{id}")],
            reason: format!("{}% complete", report.percent_complete),
            ..NewEvent::default()
        };
        Self::audit(&mut tx, &project.code, caller, event).await?;
        tx.commit().await?;
        self.progress_report(&project.code, &id).await?.to_proto()
    }

    async fn progress_report(
        &self,
        code: &ProjectCode,
        id: &str,
    ) -> ServiceResult<ProgressReportRow> {
        sqlx::query_as::<_, ProgressReportRow>(
            "SELECT * FROM progress_reports WHERE project_code = $1 AND id = $2",
        )
        .bind(code.to_owned())
        .bind(id.to_owned())
        .fetch_optional(&self.store.db.pool)
        .await?
        .ok_or_else(|| {
            ServiceError::not_found(
                "progress report",
                format!("projects/{code}/progressReports/{id}"),
            )
        })
    }

    pub(crate) async fn review_progress(
        &self,
        caller: &Caller,
        review: ProgressReview,
    ) -> ServiceResult<pb::ProgressReport> {
        self.visible_project(caller, &review.code).await?;
        let current = self.progress_report(&review.code, &review.id).await?;
        if !review.event.allows(current.state) {
            return Err(review.event.refusal(&review.name));
        }
        let mut tx = self.store.db.begin_write().await?;
        if !move_progress_report(&mut tx, &review, &caller.subject).await? {
            return Err(ServiceError::Aborted(format!(
                "{} was reviewed concurrently",
                review.name
            )));
        }
        let event = NewEvent {
            action: review.event.action().into(),
            changed_fields: vec![format!("progressReports/{}", review.id)],
            reason: review.comment.clone(),
            ..NewEvent::default()
        };
        Self::audit(&mut tx, &review.code, caller, event).await?;
        tx.commit().await?;
        self.progress_report(&review.code, &review.id)
            .await?
            .to_proto()
    }

    pub(crate) async fn progress_reports_of(
        &self,
        caller: &Caller,
        code: &ProjectCode,
    ) -> ServiceResult<Vec<pb::ProgressReport>> {
        self.visible_project(caller, code).await?;
        sqlx::query_as::<_, ProgressReportRow>(
            "SELECT * FROM progress_reports WHERE project_code = $1 ORDER BY report_date, create_time",
        )
        .bind(code.to_owned())
        .fetch_all(&self.store.db.pool)
        .await?
        .iter()
        .map(ProgressReportRow::to_proto)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_is_reviewed_once() {
        let review = ProgressReportEvent::Review;
        assert!(review.allows(ProgressReportState::Filed));
        assert!(!review.allows(review.target()));
        assert_eq!(review.sources_sql(), "'FILED'");
    }
}
