//! Monthly snapshots: each month's figures of every supervised project, frozen early in the
//! next month and never changed.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use govit_platform::{
    Role, ServiceError, ServiceResult, Tx,
    paging::Page,
    time::{now, stored_to_timestamp, to_stored},
};
use govit_proto::{
    StoredEnum,
    projects::v1::{self as pb, ProjectState as S},
};
use serde::{Deserialize, Serialize};

use super::{MilestonesByProject, color_proto, internal, risk::figures};
use crate::{
    ProjectsService,
    model::{ProjectCode, ProjectRow, to_json},
    validation as check, variance,
};

/// Projects a snapshot leaves out: not yet under supervision, or no longer.
const UNSUPERVISED: [S; 4] = [S::Draft, S::Withdrawn, S::Rejected, S::Closed];

/// One project's figures in a month's snapshot, as stored (enums by their stored names).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SnapshotFigures {
    state: String,
    approved_budget_fen: i64,
    contract_amount_fen: i64,
    disbursed_fen: i64,
    cost_variance_bp: i64,
    schedule_variance_bp: i64,
    color: String,
    percent_complete: i64,
}

/// The month just closed, in Beijing time, as YYYY-MM.
fn previous_month() -> String {
    let today = govit_platform::time::beijing_today();
    today
        .with_day(1)
        .and_then(|d| d.pred_opt())
        .unwrap_or(today)
        .format("%Y-%m")
        .to_string()
}

fn is_month(text: &str) -> bool {
    text.len() == 7 && NaiveDate::parse_from_str(&format!("{text}-01"), "%Y-%m-%d").is_ok()
}

fn already_taken(month: &str) -> ServiceError {
    ServiceError::AlreadyExists {
        resource_type: "snapshot",
        name: format!("snapshots/{month}"),
    }
}

/// The month office asks to snapshot, checked: only the month just closed.
pub(crate) struct SnapshotMonth(String);

impl SnapshotMonth {
    pub(crate) const ROLES: &[Role] = &[Role::Office];
}

impl TryFrom<pb::CreateMonthlySnapshotRequest> for SnapshotMonth {
    type Error = ServiceError;

    fn try_from(req: pb::CreateMonthlySnapshotRequest) -> ServiceResult<Self> {
        if !is_month(&req.month) {
            return Err(ServiceError::field("month", "must be YYYY-MM"));
        }
        // A snapshot freezes today's figures: labelled with any month but the one just closed
        // it would misstate that month, and block its real snapshot.
        let closed = previous_month();
        if req.month != closed {
            return Err(ServiceError::field(
                "month",
                format!(
                    "must be {closed}, the month just closed: a snapshot freezes today's figures"
                ),
            ));
        }
        Ok(Self(req.month))
    }
}

/// Which snapshots to list, checked: a month, a project, both or neither (empty).
pub(crate) struct SnapshotQuery {
    month: String,
    /// The project asked about; None for every project.
    code: Option<ProjectCode>,
    page: Page,
}

impl SnapshotQuery {
    pub(crate) const ROLES: &[Role] = &[
        Role::Office,
        Role::Supervisor,
        Role::Inspector,
        Role::Service,
    ];
}

impl TryFrom<pb::ListSnapshotsRequest> for SnapshotQuery {
    type Error = ServiceError;

    fn try_from(req: pb::ListSnapshotsRequest) -> ServiceResult<Self> {
        let code = if req.project.is_empty() {
            None
        } else {
            Some(check::parse_project_name("project", &req.project)?)
        };
        if !req.month.is_empty() && req.month.len() != 7 {
            return Err(ServiceError::field("month", "must be YYYY-MM"));
        }
        let page = Page::parse(
            req.page_size,
            &req.page_token,
            &format!("snapshots {:?} {:?}", req.month, req.project),
        )?;
        Ok(Self {
            month: req.month,
            code,
            page,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
struct SnapshotRow {
    month: String,
    project_code: ProjectCode,
    figures: String,
    create_time: String,
}

impl SnapshotRow {
    fn to_proto(&self) -> ServiceResult<pb::ProjectSnapshot> {
        let f: SnapshotFigures = serde_json::from_str(&self.figures).map_err(internal)?;
        Ok(pb::ProjectSnapshot {
            name: format!("projects/{}/snapshots/{}", self.project_code, self.month),
            month: self.month.clone(),
            project: self.project_code.name(),
            state: S::from_stored(&f.state).map_err(internal)? as i32,
            approved_budget_fen: f.approved_budget_fen,
            contract_amount_fen: f.contract_amount_fen,
            disbursed_fen: f.disbursed_fen,
            cost_variance_bp: f.cost_variance_bp,
            schedule_variance_bp: f.schedule_variance_bp,
            color: pb::RiskColor::from_stored(&f.color).map_err(internal)? as i32,
            percent_complete: f.percent_complete as i32,
            create_time: Some(stored_to_timestamp(&self.create_time).map_err(internal)?),
        })
    }
}

/// Writes one project's figures for `month`; a snapshot already there means the month is
/// taken (by another replica, or office racing the worker).
async fn insert_snapshot(
    tx: &mut Tx,
    month: &str,
    code: &ProjectCode,
    figures: &SnapshotFigures,
    at: &str,
) -> ServiceResult<()> {
    let inserted = sqlx::query(
        "INSERT INTO snapshots (month, project_code, figures, create_time) VALUES ($1, $2, $3, $4)",
    )
    .bind(month.to_owned())
    .bind(code.to_owned())
    .bind(to_json(figures))
    .bind(at.to_owned())
    .execute(&mut **tx)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if govit_platform::db::is_unique_violation(&e) => Err(already_taken(month)),
        Err(e) => Err(e.into()),
    }
}

impl ProjectsService {
    /// Takes the snapshot of the month just closed, as office asks.
    pub(crate) async fn snapshot_closed_month(&self, month: SnapshotMonth) -> ServiceResult<i32> {
        self.take_snapshot(&month.0).await
    }

    /// Takes the previous month's snapshot if nobody has yet: the outbox worker calls this on
    /// every pass, so each month is frozen early in the next without anyone remembering to.
    /// Returns the month taken, if any.
    pub async fn snapshot_previous_month_if_due(&self) -> ServiceResult<Option<String>> {
        let month = previous_month();
        if self.snapshot_exists(&month).await? {
            return Ok(None);
        }
        match self.take_snapshot(&month).await {
            Ok(_) => Ok(Some(month)),
            // Another replica took it first.
            Err(ServiceError::AlreadyExists { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn snapshot_exists(&self, month: &str) -> ServiceResult<bool> {
        let exists = sqlx::query("SELECT 1 FROM snapshot_months WHERE month = $1")
            .bind(month.to_owned())
            .fetch_optional(&self.store.db.pool)
            .await?;
        Ok(exists.is_some())
    }

    /// Each project's latest reported percentage complete.
    async fn latest_percent(&self) -> ServiceResult<BTreeMap<ProjectCode, i64>> {
        let rows: Vec<(ProjectCode, i64)> = sqlx::query_as(
            "SELECT project_code, percent_complete FROM progress_reports ORDER BY report_date, create_time",
        )
        .fetch_all(&self.store.db.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    fn snapshot_figures(
        &self,
        project: &ProjectRow,
        milestones: &MilestonesByProject,
        percent: &BTreeMap<ProjectCode, i64>,
    ) -> ServiceResult<SnapshotFigures> {
        let ms = milestones.of(&project.code);
        let v = variance::variance(&figures(&ms)?, self.policy.bands);
        Ok(SnapshotFigures {
            state: project.state.as_stored().to_owned(),
            approved_budget_fen: project.approved_budget_fen.unwrap_or_default().get(),
            contract_amount_fen: project.contract_amount_fen.unwrap_or_default().get(),
            disbursed_fen: project.disbursed_fen.get(),
            cost_variance_bp: v.cost_variance_bp,
            schedule_variance_bp: v.schedule_variance_bp,
            color: color_proto(v.color).as_stored().to_owned(),
            percent_complete: percent.get(&project.code).copied().unwrap_or(0),
        })
    }

    async fn take_snapshot(&self, month: &str) -> ServiceResult<i32> {
        if self.snapshot_exists(month).await? {
            return Err(already_taken(month));
        }
        let projects = self
            .store
            .list_projects::<ProjectRow>(Vec::new(), None, false, i64::MAX / 2)
            .await?;
        let active: Vec<&ProjectRow> = projects
            .iter()
            .filter(|p| !UNSUPERVISED.contains(&p.state))
            .collect();
        let milestones = self.milestones_where(&[]).await?;
        let percent = self.latest_percent().await?;
        let at = to_stored(now());
        let mut tx = self.store.db.begin_write().await?;
        // The month's marker first: of two replicas taking it at once, the second stops here.
        let marked = sqlx::query(
            "INSERT INTO snapshot_months (month, projects, create_time) VALUES ($1, $2, $3) \
             ON CONFLICT (month) DO NOTHING",
        )
        .bind(month.to_owned())
        .bind(active.len() as i64)
        .bind(at.clone())
        .execute(&mut *tx)
        .await?;
        if marked.rows_affected() == 0 {
            return Err(already_taken(month));
        }
        for p in &active {
            let figures = self.snapshot_figures(p, &milestones, &percent)?;
            insert_snapshot(&mut tx, month, &p.code, &figures, &at).await?;
        }
        tx.commit().await?;
        tracing::info!(month, projects = active.len(), "monthly snapshot taken");
        Ok(active.len() as i32)
    }

    /// A page of the snapshots matching `query`, in (month, project) order, read by key.
    pub(crate) async fn snapshots_matching(
        &self,
        query: SnapshotQuery,
    ) -> ServiceResult<(Vec<pb::ProjectSnapshot>, String)> {
        let page = &query.page;
        let (after_month, after_code) = page
            .after
            .as_deref()
            .and_then(|key| key.split_once(' '))
            .map(|(m, c)| (m.to_owned(), c.to_owned()))
            .unwrap_or_default();
        let mut rows = sqlx::query_as::<_, SnapshotRow>(
            "SELECT month, project_code, figures, create_time FROM snapshots \
             WHERE ($1 = '' OR month = $1) AND ($2 = '' OR project_code = $2) \
             AND (month > $3 OR (month = $3 AND project_code > $4)) \
             ORDER BY month, project_code LIMIT $5",
        )
        .bind(query.month)
        .bind(
            query
                .code
                .as_ref()
                .map_or("", ProjectCode::as_str)
                .to_owned(),
        )
        .bind(after_month)
        .bind(after_code)
        .bind(page.fetch_limit())
        .fetch_all(&self.store.db.pool)
        .await?;
        let token = page.finish(&mut rows, |r| format!("{} {}", r.month, r.project_code));
        let snapshots = rows
            .iter()
            .map(SnapshotRow::to_proto)
            .collect::<ServiceResult<_>>()?;
        Ok((snapshots, token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_year_and_month() {
        assert!(is_month("2026-11"));
        assert!(!is_month("2026-13"));
        assert!(!is_month("2026-1"));
        assert!(is_month(&previous_month()));
    }
}
