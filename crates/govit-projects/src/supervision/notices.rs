//! Organisation notices (commendations and violations) and the organisation's record: its
//! projects' findings and the notices it received.

use chrono::NaiveDate;
use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, Tx, Violations,
    time::{date_from_stored, date_to_proto, date_to_stored, now, to_stored},
    uscc::CreditCode,
};
use govit_proto::{StoredEnum, projects::v1 as pb};

use super::{internal, new_id};
use crate::{
    ProjectsService,
    model::{ProjectCode, org_name, to_json},
    store::{NewEvent, insert_event},
    validation::{self as check, MAX_TEXT_CHARS},
};

/// A notice to issue to an organisation, checked.
pub(crate) struct NewNotice {
    org: CreditCode,
    kind: pb::NoticeKind,
    /// The projects as named, and their codes.
    projects: Vec<String>,
    codes: Vec<ProjectCode>,
    grounds: String,
    handling: String,
    notice_date: Option<NaiveDate>,
}

impl NewNotice {
    pub(crate) const ROLES: &[Role] = &[Role::Office];
}

/// Who may read an organisation's record; applicants only their own organisation's.
pub(crate) const RECORD_READERS: [Role; 4] = [
    Role::Office,
    Role::Supervisor,
    Role::Inspector,
    Role::Applicant,
];

impl TryFrom<pb::CreateOrganizationNoticeRequest> for NewNotice {
    type Error = ServiceError;

    fn try_from(req: pb::CreateOrganizationNoticeRequest) -> ServiceResult<Self> {
        let org = check::parse_org_name("parent", &req.parent)?;
        let n = req.notice.unwrap_or_default();
        let mut v = Violations::new();
        let kind = check::enum_value::<pb::NoticeKind>(&mut v, "notice.kind", n.kind, false);
        check::text(&mut v, "notice.grounds", &n.grounds, MAX_TEXT_CHARS);
        if kind == Some(pb::NoticeKind::Violation) {
            check::text(&mut v, "notice.handling", &n.handling, MAX_TEXT_CHARS);
        } else {
            check::optional_text(&mut v, "notice.handling", &n.handling, MAX_TEXT_CHARS);
        }
        let notice_date =
            super::date_field(&mut v, "notice.notice_date", n.notice_date.as_ref(), true);
        let mut codes = Vec::new();
        for (i, p) in n.projects.iter().enumerate() {
            match check::parse_project_name("x", p) {
                Ok(c) => codes.push(c),
                Err(_) => v.add(format!("notice.projects[{i}]"), "must be projects/{code}"),
            }
        }
        if n.projects.is_empty() {
            v.add(
                "notice.projects",
                "must name the projects the notice concerns",
            );
        }
        v.finish()?;
        Ok(Self {
            org,
            kind: kind.ok_or_else(|| ServiceError::field("notice.kind", "must be specified"))?,
            projects: n.projects,
            codes,
            grounds: n.grounds,
            handling: n.handling,
            notice_date,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
struct NoticeRow {
    id: String,
    #[sqlx(try_from = "String")]
    kind: pb::NoticeKind,
    projects: String,
    grounds: String,
    handling: String,
    notice_date: String,
    issued_by: String,
}

impl NoticeRow {
    fn to_proto(&self, org: &str) -> ServiceResult<pb::OrganizationNotice> {
        Ok(pb::OrganizationNotice {
            name: format!("{org}/notices/{}", self.id),
            kind: self.kind as i32,
            projects: serde_json::from_str(&self.projects).map_err(internal)?,
            grounds: self.grounds.clone(),
            handling: self.handling.clone(),
            notice_date: Some(date_to_proto(
                date_from_stored(&self.notice_date).map_err(internal)?,
            )),
            issued_by: self.issued_by.clone(),
        })
    }
}

async fn insert_notice(
    tx: &mut Tx,
    id: &str,
    notice: &NewNotice,
    issued_by: &str,
    at: &str,
) -> ServiceResult<()> {
    sqlx::query(
        "INSERT INTO organization_notices (id, credit_code, kind, projects, grounds, handling, notice_date, issued_by, create_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id.to_owned())
    .bind(notice.org.to_string())
    .bind(notice.kind.as_stored())
    .bind(to_json(&notice.projects))
    .bind(notice.grounds.clone())
    .bind(notice.handling.clone())
    .bind(notice.notice_date.map(date_to_stored).unwrap_or_default())
    .bind(issued_by.to_owned())
    .bind(at.to_owned())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes the organisation's audit event, numbered by its own counter.
async fn organization_event(
    tx: &mut Tx,
    org: &CreditCode,
    at: &str,
    caller: &Caller,
    event: &NewEvent,
) -> ServiceResult<()> {
    let seq: i64 = sqlx::query_scalar(
        "UPDATE organizations SET event_count = event_count + 1 WHERE credit_code = $1 RETURNING event_count",
    )
    .bind(org.to_string())
    .fetch_one(&mut **tx)
    .await?;
    insert_event(tx, &org_name(org.as_str()), seq, at, caller, event).await?;
    Ok(())
}

impl ProjectsService {
    /// Refuses a notice about a project the organisation had no part in.
    async fn check_involvement(&self, notice: &NewNotice) -> ServiceResult<()> {
        let org = notice.org.as_str();
        for c in &notice.codes {
            let p = self
                .store
                .get_project(c)
                .await?
                .ok_or_else(|| ServiceError::not_found("project", c.name()))?;
            let involved = [
                Some(&p.applicant),
                p.contractor.as_ref(),
                p.supervision_firm.as_ref(),
                p.feasibility_consultancy.as_ref(),
            ];
            if !involved.iter().flatten().any(|o| o.as_str() == org) {
                return Err(ServiceError::field(
                    "notice.projects",
                    format!("{} has no part in {}", org_name(org), c.name()),
                ));
            }
        }
        Ok(())
    }

    pub(crate) async fn issue_notice(
        &self,
        caller: &Caller,
        notice: NewNotice,
    ) -> ServiceResult<pb::OrganizationNotice> {
        let org = org_name(notice.org.as_str());
        if !self.store.org_exists(notice.org.as_str()).await? {
            return Err(ServiceError::not_found("organization", org));
        }
        self.check_involvement(&notice).await?;
        let id = new_id();
        let at = to_stored(now());
        let mut tx = self.store.db.begin_write().await?;
        insert_notice(&mut tx, &id, &notice, &caller.subject, &at).await?;
        let event = NewEvent {
            action: "CreateOrganizationNotice".into(),
            changed_fields: vec![format!("notices/{id}")],
            reason: format!("{}: {}", notice.kind.as_stored(), notice.grounds),
            ..NewEvent::default()
        };
        organization_event(&mut tx, &notice.org, &at, caller, &event).await?;
        tx.commit().await?;
        Ok(pb::OrganizationNotice {
            name: format!("{org}/notices/{id}"),
            kind: notice.kind as i32,
            projects: notice.projects,
            grounds: notice.grounds,
            handling: notice.handling,
            notice_date: notice.notice_date.map(date_to_proto),
            issued_by: caller.subject.clone(),
        })
    }

    /// The organisation's record as `caller` may see it: applicants only their own, and of
    /// it only their own projects, not those they took part in for others.
    pub(crate) async fn record_of_organization(
        &self,
        caller: &Caller,
        name: &str,
        code: &CreditCode,
    ) -> ServiceResult<pb::OrganizationRecord> {
        if caller.is(Role::Applicant) && caller.organization.as_deref() != Some(code.as_str()) {
            return Err(ServiceError::PermissionDenied(
                "applicants may only see their own organisation's record".into(),
            ));
        }
        let org = self
            .store
            .get_org(code.as_str())
            .await?
            .ok_or_else(|| ServiceError::not_found("organization", name.to_owned()))?;
        let own_only = i64::from(caller.is(Role::Applicant));
        let codes: Vec<ProjectCode> = sqlx::query_scalar(
            "SELECT code FROM projects WHERE (applicant = $1 OR ($2 = 0 AND (contractor = $1 OR supervision_firm = $1 \
             OR feasibility_consultancy = $1))) ORDER BY year, seq",
        )
        .bind(code.to_string())
        .bind(own_only)
        .fetch_all(&self.store.db.pool)
        .await?;
        let mut findings = Vec::new();
        for c in &codes {
            findings.extend(
                self.findings_where(
                    "project_code = $1",
                    vec![c.to_string()],
                    super::inspections::BY_DUE_DATE,
                )
                .await?,
            );
        }
        let (commendations, violations) = self.notices_of(name, code).await?;
        Ok(pb::OrganizationRecord {
            organization: Some(org.to_proto().map_err(internal)?),
            projects: codes.iter().map(ProjectCode::name).collect(),
            findings,
            commendations,
            violations,
        })
    }

    /// The notices the organisation received: commendations, then violations.
    async fn notices_of(
        &self,
        name: &str,
        code: &CreditCode,
    ) -> ServiceResult<(Vec<pb::OrganizationNotice>, Vec<pb::OrganizationNotice>)> {
        let rows = sqlx::query_as::<_, NoticeRow>(
            "SELECT * FROM organization_notices WHERE credit_code = $1 ORDER BY notice_date, create_time",
        )
        .bind(code.to_string())
        .fetch_all(&self.store.db.pool)
        .await?;
        let (mut commendations, mut violations) = (Vec::new(), Vec::new());
        for r in rows {
            let notice = r.to_proto(name)?;
            match r.kind {
                pb::NoticeKind::Commendation => commendations.push(notice),
                pb::NoticeKind::Violation | pb::NoticeKind::Unspecified => violations.push(notice),
            }
        }
        Ok((commendations, violations))
    }
}
