//! Milestones: a project's plan, dates and costs as planned, projected and actual, from which
//! variance is computed.

use std::collections::HashMap;

use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, Tx, Violations,
    time::{date_from_stored, date_to_proto, date_to_stored, now, to_stored},
};
use govit_proto::projects::v1 as pb;
use sqlx::AssertSqlSafe;

use super::{KEEPERS, date_field, internal, new_id};
use crate::{
    ProjectsService,
    model::ProjectCode,
    store::{Arg, NewEvent, bind_all},
    validation as check,
};

/// Milestones grouped by their project, in their project's order.
#[derive(Debug, Default)]
pub struct MilestonesByProject(HashMap<ProjectCode, Vec<MilestoneRow>>);

impl MilestonesByProject {
    pub fn of(&self, code: &ProjectCode) -> Vec<&MilestoneRow> {
        self.0
            .get(code)
            .map(|ms| ms.iter().collect())
            .unwrap_or_default()
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MilestoneRow {
    pub id: String,
    pub project_code: ProjectCode,
    pub display_name: String,
    pub planned_start: String,
    pub planned_end: String,
    pub projected_end: String,
    pub actual_start: Option<String>,
    pub actual_end: Option<String>,
    pub planned_cost_fen: i64,
    pub projected_cost_fen: i64,
    pub actual_cost_fen: Option<i64>,
    pub version: i64,
    pub create_time: String,
    pub update_time: String,
}

impl MilestoneRow {
    fn blank() -> Self {
        let at = to_stored(now());
        MilestoneRow {
            id: String::new(),
            project_code: ProjectCode::unassigned(),
            display_name: String::new(),
            planned_start: String::new(),
            planned_end: String::new(),
            projected_end: String::new(),
            actual_start: None,
            actual_end: None,
            planned_cost_fen: 0,
            projected_cost_fen: 0,
            actual_cost_fen: None,
            version: 1,
            create_time: at.clone(),
            update_time: at,
        }
    }

    async fn insert(&self, tx: &mut Tx) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO milestones (id, project_code, display_name, planned_start, planned_end, projected_end, actual_start, actual_end, \
             planned_cost_fen, projected_cost_fen, actual_cost_fen, version, create_time, update_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 1, $12, $12)",
        )
        .bind(self.id.clone())
        .bind(self.project_code.clone())
        .bind(self.display_name.clone())
        .bind(self.planned_start.clone())
        .bind(self.planned_end.clone())
        .bind(self.projected_end.clone())
        .bind(self.actual_start.clone())
        .bind(self.actual_end.clone())
        .bind(self.planned_cost_fen)
        .bind(self.projected_cost_fen)
        .bind(self.actual_cost_fen)
        .bind(self.create_time.clone())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Writes the row over the version `expected`; false when another change came first.
    async fn update(&self, tx: &mut Tx, expected: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE milestones SET display_name = $1, planned_start = $2, planned_end = $3, projected_end = $4, actual_start = $5, \
             actual_end = $6, planned_cost_fen = $7, projected_cost_fen = $8, actual_cost_fen = $9, update_time = $10, \
             version = version + 1 WHERE id = $11 AND version = $12",
        )
        .bind(self.display_name.clone())
        .bind(self.planned_start.clone())
        .bind(self.planned_end.clone())
        .bind(self.projected_end.clone())
        .bind(self.actual_start.clone())
        .bind(self.actual_end.clone())
        .bind(self.planned_cost_fen)
        .bind(self.projected_cost_fen)
        .bind(self.actual_cost_fen)
        .bind(self.update_time.clone())
        .bind(self.id.clone())
        .bind(expected)
        .execute(&mut **tx)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    fn to_proto(&self) -> anyhow::Result<pb::Milestone> {
        let date = |s: &str| -> anyhow::Result<_> { Ok(Some(date_to_proto(date_from_stored(s)?))) };
        Ok(pb::Milestone {
            name: format!("projects/{}/milestones/{}", self.project_code, self.id),
            display_name: self.display_name.clone(),
            planned_start_date: date(&self.planned_start)?,
            planned_end_date: date(&self.planned_end)?,
            projected_end_date: date(&self.projected_end)?,
            actual_start_date: self
                .actual_start
                .as_deref()
                .map(date)
                .transpose()?
                .flatten(),
            actual_end_date: self.actual_end.as_deref().map(date).transpose()?.flatten(),
            planned_cost_fen: self.planned_cost_fen,
            projected_cost_fen: self.projected_cost_fen,
            actual_cost_fen: self.actual_cost_fen.unwrap_or_default(),
            etag: self.version.to_string(),
        })
    }

    /// Sets the fields named by `paths` from `m`, adding what is wrong with them to `v`.
    fn apply(&mut self, v: &mut Violations, m: &pb::Milestone, paths: &[&str]) {
        for path in paths {
            self.apply_field(v, m, path);
        }
        if self.projected_end.is_empty() {
            self.projected_end = self.planned_end.clone();
        }
        self.check_dates(v);
    }

    fn apply_field(&mut self, v: &mut Violations, m: &pb::Milestone, path: &str) {
        let field = format!("milestone.{path}");
        let date = |v: &mut Violations, d: Option<&govit_proto::google::r#type::Date>, required| {
            date_field(v, &field, d, required).map(date_to_stored)
        };
        match path {
            "display_name" => {
                check::text(v, &field, &m.display_name, 200);
                self.display_name = m.display_name.trim().to_owned();
            }
            "planned_start_date" => {
                self.planned_start =
                    date(v, m.planned_start_date.as_ref(), true).unwrap_or_default()
            }
            "planned_end_date" => {
                self.planned_end = date(v, m.planned_end_date.as_ref(), true).unwrap_or_default()
            }
            "projected_end_date" => {
                self.projected_end =
                    date(v, m.projected_end_date.as_ref(), false).unwrap_or_default()
            }
            "actual_start_date" => self.actual_start = date(v, m.actual_start_date.as_ref(), false),
            "actual_end_date" => self.actual_end = date(v, m.actual_end_date.as_ref(), false),
            "planned_cost_fen" => {
                check::amount(v, &field, m.planned_cost_fen, true);
                self.planned_cost_fen = m.planned_cost_fen;
            }
            "projected_cost_fen" => {
                check::amount(v, &field, m.projected_cost_fen, true);
                self.projected_cost_fen = m.projected_cost_fen;
            }
            "actual_cost_fen" => {
                check::amount(v, &field, m.actual_cost_fen, true);
                self.actual_cost_fen = (m.actual_cost_fen > 0 || m.actual_end_date.is_some())
                    .then_some(m.actual_cost_fen);
            }
            other => v.add(
                "update_mask",
                format!("{other:?} is not an updatable field"),
            ),
        }
    }

    fn check_dates(&self, v: &mut Violations) {
        if !self.planned_start.is_empty()
            && !self.planned_end.is_empty()
            && self.planned_end < self.planned_start
        {
            v.add(
                "milestone.planned_end_date",
                "must not be before planned_start_date",
            );
        }
        if !self.planned_start.is_empty() && self.projected_end < self.planned_start {
            v.add(
                "milestone.projected_end_date",
                "must not be before planned_start_date",
            );
        }
        if let (Some(s), Some(e)) = (&self.actual_start, &self.actual_end)
            && e < s
        {
            v.add(
                "milestone.actual_end_date",
                "must not be before actual_start_date",
            );
        }
        // Actual dates record what happened: a milestone is not started or completed ahead.
        let today = govit_platform::time::date_to_stored(govit_platform::time::beijing_today());
        for (field, day) in [
            ("milestone.actual_start_date", &self.actual_start),
            ("milestone.actual_end_date", &self.actual_end),
        ] {
            if let Some(day) = day
                && *day > today
            {
                v.add(
                    field,
                    format!("{day} is in the future (today is {today} in Beijing)"),
                );
            }
        }
    }
}

/// A milestone to add, checked: its row but for the id and project.
pub(crate) struct NewMilestone {
    code: ProjectCode,
    row: MilestoneRow,
}

impl NewMilestone {
    pub(crate) const ROLES: &[Role] = &KEEPERS;
}

impl TryFrom<pb::CreateMilestoneRequest> for NewMilestone {
    type Error = ServiceError;

    fn try_from(req: pb::CreateMilestoneRequest) -> ServiceResult<Self> {
        let mut m = req.milestone.unwrap_or_default();
        // The fields a new milestone sets, in the order their violations are reported.
        let mut paths = vec![
            "display_name",
            "planned_start_date",
            "planned_end_date",
            "planned_cost_fen",
        ];
        if m.projected_end_date.is_some() {
            paths.push("projected_end_date");
        }
        paths.push("projected_cost_fen");
        if m.actual_start_date.is_some() {
            paths.push("actual_start_date");
        }
        if m.actual_end_date.is_some() {
            paths.push("actual_end_date");
        }
        if m.actual_cost_fen != 0 {
            paths.push("actual_cost_fen");
        }
        if m.projected_cost_fen == 0 {
            m.projected_cost_fen = m.planned_cost_fen;
        }
        let mut row = MilestoneRow::blank();
        let mut v = Violations::new();
        row.apply(&mut v, &m, &paths);
        v.finish()?;
        Ok(Self {
            code: check::parse_project_name("parent", &req.parent)?,
            row,
        })
    }
}

/// A change to a milestone, checked as far as it can be without the milestone.
pub(crate) struct MilestoneUpdate {
    code: ProjectCode,
    id: String,
    expected_version: i64,
    paths: Vec<String>,
    milestone: pb::Milestone,
}

impl MilestoneUpdate {
    pub(crate) const ROLES: &[Role] = &KEEPERS;
}

impl TryFrom<pb::UpdateMilestoneRequest> for MilestoneUpdate {
    type Error = ServiceError;

    fn try_from(req: pb::UpdateMilestoneRequest) -> ServiceResult<Self> {
        let milestone = req.milestone.unwrap_or_default();
        let (code, id) = check::parse_child_name("milestone.name", &milestone.name, "milestones")?;
        let paths: Vec<String> = req.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(ServiceError::field(
                "update_mask",
                "must name the fields to change",
            ));
        }
        Ok(Self {
            code,
            id,
            expected_version: check::etag("milestone.etag", &milestone.etag)?,
            paths,
            milestone,
        })
    }
}

impl ProjectsService {
    /// The milestones of the projects `codes`, each with its project's code, by project and
    /// planned start.
    pub(super) async fn milestone_rows(
        &self,
        codes: &[ProjectCode],
    ) -> ServiceResult<Vec<(ProjectCode, MilestoneRow)>> {
        if codes.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT * FROM milestones WHERE project_code IN ({}) ORDER BY project_code, planned_start, id",
            (1..=codes.len())
                .map(|i| format!("${i}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut q = sqlx::query_as::<_, MilestoneRow>(AssertSqlSafe(sql));
        for c in codes {
            q = q.bind(c.clone());
        }
        Ok(q.fetch_all(&self.store.db.pool)
            .await?
            .into_iter()
            .map(|m| (m.project_code.clone(), m))
            .collect())
    }

    /// The milestones of every project `filters` select (the ListProjects filters), in one
    /// query however many projects that is. An IN list of their codes outgrew SQLite's
    /// parameter limit at 100,000 projects, and the summary failed.
    pub(super) async fn milestones_where(
        &self,
        filters: &[(&'static str, Arg)],
    ) -> ServiceResult<MilestonesByProject> {
        let mut sql = String::from(
            "SELECT m.* FROM milestones m JOIN projects p ON p.code = m.project_code WHERE 1 = 1",
        );
        for (i, (column, _)) in filters.iter().enumerate() {
            sql.push_str(&format!(" AND p.{column} = ${}", i + 1));
        }
        sql.push_str(" ORDER BY m.project_code, m.planned_start, m.id");
        let args = filters.iter().map(|(_, arg)| arg.clone()).collect();
        let query = bind_all(sqlx::query_as::<_, MilestoneRow>(AssertSqlSafe(sql)), args);
        let mut grouped: HashMap<ProjectCode, Vec<MilestoneRow>> = HashMap::new();
        for m in query.fetch_all(&self.store.db.pool).await? {
            grouped.entry(m.project_code.clone()).or_default().push(m);
        }
        Ok(MilestonesByProject(grouped))
    }

    pub(crate) async fn add_milestone(
        &self,
        caller: &Caller,
        milestone: NewMilestone,
    ) -> ServiceResult<pb::Milestone> {
        let project = self.open_project(caller, &milestone.code).await?;
        let mut row = milestone.row;
        row.id = new_id();
        row.project_code = project.code.clone();
        let mut tx = self.store.db.begin_write().await?;
        row.insert(&mut tx).await?;
        let event = NewEvent {
            action: "CreateMilestone".into(),
            changed_fields: vec![format!("milestones/{}", row.id)],
            ..NewEvent::default()
        };
        Self::audit(&mut tx, &project.code, caller, event).await?;
        tx.commit().await?;
        row.to_proto().map_err(internal)
    }

    pub(crate) async fn change_milestone(
        &self,
        caller: &Caller,
        update: MilestoneUpdate,
    ) -> ServiceResult<pb::Milestone> {
        let MilestoneUpdate {
            code,
            id,
            expected_version,
            paths,
            milestone: m,
        } = update;
        self.visible_project(caller, &code).await?;
        let mut row = sqlx::query_as::<_, MilestoneRow>(
            "SELECT * FROM milestones WHERE project_code = $1 AND id = $2",
        )
        .bind(code.clone())
        .bind(id.clone())
        .fetch_optional(&self.store.db.pool)
        .await?
        .ok_or_else(|| ServiceError::not_found("milestone", m.name.clone()))?;
        let mut v = Violations::new();
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        row.apply(&mut v, &m, &refs);
        v.finish()?;
        if row.version != expected_version {
            return Err(ServiceError::stale_etag(&m.name));
        }
        row.update_time = to_stored(now());
        let mut tx = self.store.db.begin_write().await?;
        if !row.update(&mut tx, expected_version).await? {
            return Err(ServiceError::stale_etag(&m.name));
        }
        let mut changed = vec![format!("milestones/{id}")];
        changed.extend(paths);
        let event = NewEvent {
            action: "UpdateMilestone".into(),
            changed_fields: changed,
            ..NewEvent::default()
        };
        Self::audit(&mut tx, &code, caller, event).await?;
        tx.commit().await?;
        row.version += 1;
        row.to_proto().map_err(internal)
    }

    pub(crate) async fn milestones_of(
        &self,
        caller: &Caller,
        code: &ProjectCode,
    ) -> ServiceResult<Vec<pb::Milestone>> {
        self.visible_project(caller, code).await?;
        self.milestone_rows(&[code.to_owned()])
            .await?
            .into_iter()
            .map(|(_, m)| m.to_proto().map_err(internal))
            .collect()
    }
}
