//! Inspections and their findings: what the bureau found, by when it must be put right
//! (working days on the scheduling service's calendar), and the rectifications recorded.

use chrono::NaiveDate;
use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, Tx, Violations,
    paging::Page,
    time::{
        date_from_proto, date_from_stored, date_to_proto, date_to_stored, now, stored_to_timestamp,
        to_stored,
    },
};
use govit_proto::{StoredEnum, projects::v1 as pb};
use sqlx::AssertSqlSafe;

use super::{BUREAUS, KEEPERS, date_field, internal, new_id};
use crate::{
    ProjectsService,
    model::{Nullable, ProjectCode, supervising_body, to_json},
    store::NewEvent,
    validation::{self as check, MAX_TEXT_CHARS},
    workdays,
};

/// A finding of a new inspection, checked.
struct NewFinding {
    description: String,
    severity: pb::FindingSeverity,
    rectification_required: String,
    deadline_working_days: u32,
}

/// An inspection to record, checked.
pub(crate) struct NewInspection {
    code: ProjectCode,
    inspection_date: NaiveDate,
    scopes: Vec<pb::InspectionScope>,
    participants: Vec<String>,
    findings: Vec<NewFinding>,
}

impl NewInspection {
    /// The IT office and each bureau, in its own name.
    pub(crate) const ROLES: &[Role] = &[Role::Office, Role::Supervisor];
}

fn checked_scopes(v: &mut Violations, scopes: &[i32]) -> Vec<pb::InspectionScope> {
    if scopes.is_empty() {
        v.add(
            "inspection.scopes",
            "must name at least one of QUALITY, PROGRESS, FUNDS, BUDGET",
        );
    }
    scopes
        .iter()
        .enumerate()
        .filter_map(|(n, s)| {
            check::enum_value::<pb::InspectionScope>(
                v,
                &format!("inspection.scopes[{n}]"),
                *s,
                false,
            )
        })
        .collect()
}

fn checked_findings(v: &mut Violations, findings: &[pb::Finding]) -> Vec<NewFinding> {
    let mut out = Vec::new();
    for (n, f) in findings.iter().enumerate() {
        let field = format!("inspection.findings[{n}]");
        check::text(
            v,
            &format!("{field}.description"),
            &f.description,
            MAX_TEXT_CHARS,
        );
        let severity = check::enum_value::<pb::FindingSeverity>(
            v,
            &format!("{field}.severity"),
            f.severity,
            false,
        );
        check::text(
            v,
            &format!("{field}.rectification_required"),
            &f.rectification_required,
            MAX_TEXT_CHARS,
        );
        if !(1..=250).contains(&f.deadline_working_days) {
            v.add(
                format!("{field}.deadline_working_days"),
                "must be between 1 and 250",
            );
        }
        if let Some(severity) = severity {
            out.push(NewFinding {
                description: f.description.clone(),
                severity,
                rectification_required: f.rectification_required.clone(),
                deadline_working_days: f.deadline_working_days.max(0) as u32,
            });
        }
    }
    out
}

impl TryFrom<pb::CreateInspectionRequest> for NewInspection {
    type Error = ServiceError;

    fn try_from(req: pb::CreateInspectionRequest) -> ServiceResult<Self> {
        let i = req.inspection.unwrap_or_default();
        let mut v = Violations::new();
        let date = date_field(
            &mut v,
            "inspection.inspection_date",
            i.inspection_date.as_ref(),
            true,
        );
        let scopes = checked_scopes(&mut v, &i.scopes);
        for (n, p) in i.participants.iter().enumerate() {
            check::text(&mut v, &format!("inspection.participants[{n}]"), p, 200);
        }
        let findings = checked_findings(&mut v, &i.findings);
        v.finish()?;
        Ok(Self {
            code: check::parse_project_name("parent", &req.parent)?,
            inspection_date: date
                .ok_or_else(|| ServiceError::field("inspection.inspection_date", "is required"))?,
            scopes,
            participants: i.participants,
            findings,
        })
    }
}

/// A rectification to record against a finding, checked.
pub(crate) struct Rectification {
    finding: String,
    code: ProjectCode,
    inspection_id: String,
    seq: i64,
    rectification: String,
    rectified_date: Option<NaiveDate>,
}

impl Rectification {
    pub(crate) const ROLES: &[Role] = &KEEPERS;
}

/// `projects/{code}/inspections/{id}/findings/{n}` → (code, id, n).
fn parse_finding_name(name: &str) -> Option<(ProjectCode, String, i64)> {
    let parts: Vec<&str> = name.split('/').collect();
    match parts.as_slice() {
        ["projects", code, "inspections", id, "findings", n] => {
            let code = ProjectCode::parse(code)?;
            n.parse::<i64>().ok().map(|n| (code, id.to_string(), n))
        }
        _ => None,
    }
}

impl TryFrom<pb::RecordRectificationRequest> for Rectification {
    type Error = ServiceError;

    fn try_from(req: pb::RecordRectificationRequest) -> ServiceResult<Self> {
        let parsed = parse_finding_name(&req.finding);
        let mut v = Violations::new();
        if parsed.is_none() {
            v.add(
                "finding",
                "must be projects/{code}/inspections/{id}/findings/{n}",
            );
        }
        check::text(&mut v, "rectification", &req.rectification, MAX_TEXT_CHARS);
        let rectified_date =
            date_field(&mut v, "rectified_date", req.rectified_date.as_ref(), true);
        v.finish()?;
        let (code, inspection_id, seq) =
            parsed.ok_or_else(|| ServiceError::field("finding", "is invalid"))?;
        Ok(Self {
            finding: req.finding,
            code,
            inspection_id,
            seq,
            rectification: req.rectification,
            rectified_date,
        })
    }
}

/// The day findings are overdue as of: given, or today.
pub(crate) struct OverdueFindingsQuery {
    as_of: NaiveDate,
    pub(crate) page: Page,
}

impl OverdueFindingsQuery {
    pub(crate) const ROLES: &[Role] = &BUREAUS;
}

impl TryFrom<pb::ListOverdueFindingsRequest> for OverdueFindingsQuery {
    type Error = ServiceError;

    fn try_from(req: pb::ListOverdueFindingsRequest) -> ServiceResult<Self> {
        let day = match req.as_of.as_ref() {
            Some(d) => date_from_proto(d)
                .ok_or_else(|| ServiceError::field("as_of", "is not a calendar date"))?,
            None => chrono::Utc::now().date_naive(),
        };
        let page = Page::parse(
            req.page_size,
            &req.page_token,
            &format!("overdue findings {day}"),
        )?;
        Ok(Self { as_of: day, page })
    }
}

#[derive(Debug, sqlx::FromRow)]
struct FindingRow {
    inspection_id: String,
    seq: i64,
    project_code: ProjectCode,
    description: String,
    #[sqlx(try_from = "String")]
    severity: pb::FindingSeverity,
    rectification_required: String,
    deadline_working_days: i64,
    due_date: String,
    rectified: i64,
    rectification: String,
    rectified_date: Option<String>,
}

impl FindingRow {
    fn to_proto(&self) -> ServiceResult<pb::Finding> {
        Ok(pb::Finding {
            name: format!(
                "projects/{}/inspections/{}/findings/{}",
                self.project_code, self.inspection_id, self.seq
            ),
            description: self.description.clone(),
            severity: self.severity as i32,
            rectification_required: self.rectification_required.clone(),
            deadline_working_days: self.deadline_working_days as i32,
            due_date: Some(date_to_proto(
                date_from_stored(&self.due_date).map_err(internal)?,
            )),
            rectified: self.rectified != 0,
            rectification: self.rectification.clone(),
            rectified_date: self
                .rectified_date
                .as_deref()
                .map(date_from_stored)
                .transpose()
                .map_err(internal)?
                .map(date_to_proto),
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
struct InspectionRow {
    inspection_date: String,
    scopes: String,
    participants: String,
    created_by: String,
    create_time: String,
    #[sqlx(try_from = "Option<String>")]
    body: Nullable<pb::SupervisingBody>,
}

async fn insert_inspection(
    tx: &mut Tx,
    id: &str,
    inspection: &NewInspection,
    dues: &[NaiveDate],
    caller: &Caller,
) -> ServiceResult<()> {
    let scopes: Vec<&str> = inspection.scopes.iter().map(|s| s.as_stored()).collect();
    sqlx::query(
        "INSERT INTO inspections (id, project_code, inspection_date, scopes, participants, created_by, create_time, body) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id.to_owned())
    .bind(inspection.code.clone())
    .bind(date_to_stored(inspection.inspection_date))
    .bind(to_json(&scopes))
    .bind(to_json(&inspection.participants))
    .bind(caller.subject.clone())
    .bind(to_stored(now()))
    .bind(supervising_body(caller).map(StoredEnum::as_stored))
    .execute(&mut **tx)
    .await?;
    // Findings are numbered from 1 in the order the inspection lists them.
    for (seq, (f, due)) in (1_i64..).zip(inspection.findings.iter().zip(dues)) {
        sqlx::query(
            "INSERT INTO findings (inspection_id, seq, project_code, description, severity, rectification_required, deadline_working_days, \
             due_date, rectified, rectification, rectified_date) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, '', NULL)",
        )
        .bind(id.to_owned())
        .bind(seq)
        .bind(inspection.code.clone())
        .bind(f.description.clone())
        .bind(f.severity.as_stored())
        .bind(f.rectification_required.clone())
        .bind(i64::from(f.deadline_working_days))
        .bind(date_to_stored(*due))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Marks the finding rectified if it is still open; false when it is not (rectified already,
/// or no such finding).
async fn rectify(tx: &mut Tx, r: &Rectification) -> ServiceResult<bool> {
    let done = sqlx::query(
        "UPDATE findings SET rectified = 1, rectification = $1, rectified_date = $2 WHERE project_code = $3 AND inspection_id = $4 \
         AND seq = $5 AND rectified = 0",
    )
    .bind(r.rectification.clone())
    .bind(r.rectified_date.map(date_to_stored))
    .bind(r.code.clone())
    .bind(r.inspection_id.clone())
    .bind(r.seq)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected() > 0)
}

/// Findings across inspections, soonest due first (the order overdue findings page in).
pub(super) const BY_DUE_DATE: &str = "due_date, inspection_id, seq";

impl ProjectsService {
    pub(crate) async fn record_inspection(
        &self,
        caller: &Caller,
        inspection: NewInspection,
    ) -> ServiceResult<pb::Inspection> {
        let project = self.visible_project(caller, &inspection.code).await?;
        if !self.policy.supervises(caller, &project) {
            return Err(ServiceError::PermissionDenied(format!(
                "{} is outside the {} bureau's remit (funding source {})",
                project.name(),
                caller.bureau.map(|b| b.to_string()).unwrap_or_default(),
                project.funding_source.as_stored()
            )));
        }
        // An inspection records what happened.
        crate::validation::within_life(
            "inspection.inspection_date",
            &project.create_time,
            inspection.inspection_date,
        )?;
        let id = new_id();
        let mut dues = Vec::new();
        for f in &inspection.findings {
            dues.push(
                self.add_working_days(inspection.inspection_date, f.deadline_working_days)
                    .await?,
            );
        }
        let mut tx = self.store.db.begin_write().await?;
        insert_inspection(&mut tx, &id, &inspection, &dues, caller).await?;
        let event = NewEvent {
            action: "CreateInspection".into(),
            changed_fields: vec![format!("inspections/{id}")],
            reason: format!("{} findings", inspection.findings.len()),
            ..NewEvent::default()
        };
        Self::audit(&mut tx, &project.code, caller, event).await?;
        tx.commit().await?;
        self.inspection(&project.code, &id).await
    }

    /// `n` working days after `start`: on the scheduling service's calendar when it is
    /// configured (refused for a year it does not cover), else Monday to Friday.
    async fn add_working_days(&self, start: NaiveDate, n: u32) -> ServiceResult<NaiveDate> {
        let Some(calendar) = &self.calendar else {
            return Ok(workdays::add_working_days(start, n));
        };
        let request = govit_proto::scheduling::v1::AddWorkingDaysRequest {
            date: Some(date_to_proto(start)),
            days: n as i32,
        };
        match calendar.clone().add_working_days(request).await {
            Ok(r) => r
                .into_inner()
                .date
                .as_ref()
                .and_then(date_from_proto)
                .ok_or_else(|| internal(anyhow::anyhow!("the calendar answered without a date"))),
            Err(s) if s.code() == tonic::Code::FailedPrecondition => {
                Err(ServiceError::precondition(
                    "CALENDAR_YEAR_MISSING",
                    "calendar",
                    s.message().to_owned(),
                ))
            }
            Err(s) => Err(ServiceError::Unavailable(format!(
                "the working-day calendar cannot be reached: {}",
                s.message()
            ))),
        }
    }

    /// The findings matching `clause`, whose placeholders `args` fill, in `order` (SQL).
    pub(super) async fn findings_where(
        &self,
        clause: &'static str,
        args: Vec<String>,
        order: &'static str,
    ) -> ServiceResult<Vec<pb::Finding>> {
        let sql = format!("SELECT * FROM findings WHERE {clause} ORDER BY {order}");
        let mut q = sqlx::query_as::<_, FindingRow>(AssertSqlSafe(sql));
        for a in args {
            q = q.bind(a);
        }
        q.fetch_all(&self.store.db.pool)
            .await?
            .iter()
            .map(FindingRow::to_proto)
            .collect()
    }

    /// The open findings due before `day`.
    pub(super) async fn findings_overdue_on(
        &self,
        day: NaiveDate,
    ) -> ServiceResult<Vec<pb::Finding>> {
        self.findings_where(
            "rectified = 0 AND due_date < $1",
            vec![date_to_stored(day)],
            BY_DUE_DATE,
        )
        .await
    }

    async fn inspection(&self, code: &ProjectCode, id: &str) -> ServiceResult<pb::Inspection> {
        let name = format!("projects/{code}/inspections/{id}");
        let r = sqlx::query_as::<_, InspectionRow>(
            "SELECT * FROM inspections WHERE project_code = $1 AND id = $2",
        )
        .bind(code.to_owned())
        .bind(id.to_owned())
        .fetch_optional(&self.store.db.pool)
        .await?
        .ok_or_else(|| ServiceError::not_found("inspection", name.clone()))?;
        let scopes: Vec<String> = serde_json::from_str(&r.scopes).map_err(internal)?;
        // In the order they were recorded: findings/2 before findings/10.
        let findings = self
            .findings_where("inspection_id = $1", vec![id.to_owned()], "seq")
            .await?;
        Ok(pb::Inspection {
            name,
            inspection_date: Some(date_to_proto(
                date_from_stored(&r.inspection_date).map_err(internal)?,
            )),
            scopes: scopes
                .iter()
                .map(|s| pb::InspectionScope::from_stored(s).map(|s| s as i32))
                .collect::<Result<_, _>>()
                .map_err(internal)?,
            participants: serde_json::from_str(&r.participants).map_err(internal)?,
            findings,
            created_by: r.created_by,
            create_time: Some(stored_to_timestamp(&r.create_time).map_err(internal)?),
            body: r.body.0.map_or(0, |b| b as i32),
        })
    }

    pub(crate) async fn rectify_finding(
        &self,
        caller: &Caller,
        r: Rectification,
    ) -> ServiceResult<pb::Inspection> {
        self.visible_project(caller, &r.code).await?;
        let mut tx = self.store.db.begin_write().await?;
        if !rectify(&mut tx, &r).await? {
            drop(tx);
            let siblings = self
                .findings_where(
                    "project_code = $1 AND inspection_id = $2",
                    vec![r.code.to_string(), r.inspection_id.clone()],
                    "seq",
                )
                .await?;
            return Err(if siblings.iter().any(|f| f.name == r.finding) {
                ServiceError::precondition(
                    "STATE_CONFLICT",
                    r.finding.clone(),
                    format!("{} is already rectified", r.finding),
                )
            } else {
                ServiceError::not_found("finding", r.finding.clone())
            });
        }
        let event = NewEvent {
            action: "RecordRectification".into(),
            changed_fields: vec![format!(
                "inspections/{}/findings/{}",
                r.inspection_id, r.seq
            )],
            reason: r.rectification.clone(),
            ..NewEvent::default()
        };
        Self::audit(&mut tx, &r.code, caller, event).await?;
        tx.commit().await?;
        self.inspection(&r.code, &r.inspection_id).await
    }

    pub(crate) async fn inspections_of(
        &self,
        caller: &Caller,
        code: &ProjectCode,
    ) -> ServiceResult<Vec<pb::Inspection>> {
        self.visible_project(caller, code).await?;
        let ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM inspections WHERE project_code = $1 ORDER BY inspection_date, id",
        )
        .bind(code.to_owned())
        .fetch_all(&self.store.db.pool)
        .await?;
        let mut out = Vec::new();
        for id in ids {
            out.push(self.inspection(code, &id).await?);
        }
        Ok(out)
    }

    pub(crate) async fn overdue_findings(
        &self,
        query: OverdueFindingsQuery,
    ) -> ServiceResult<Vec<pb::Finding>> {
        self.findings_overdue_on(query.as_of).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finding_names_parse() {
        assert_eq!(
            parse_finding_name("projects/2026-0007/inspections/abc/findings/2"),
            Some((ProjectCode::parse("2026-0007").unwrap(), "abc".into(), 2))
        );
        assert_eq!(
            parse_finding_name("projects/2026-0007/inspections/abc/findings/x"),
            None
        );
        assert_eq!(
            parse_finding_name("projects/26-7/inspections/a/findings/1"),
            None
        );
    }
}
