//! Organisation notices (commendations and violations) and the organisation's record: its
//! projects' findings and the notices it received.

use chrono::NaiveDate;
use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, Tx, Violations,
    paging::Page,
    time::{date_from_stored, date_to_proto, date_to_stored, now, to_stored},
    uscc::CreditCode,
};
use govit_proto::{StoredEnum, projects::v1 as pb};
use sqlx::AssertSqlSafe;

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
    rule: String,
    loss_fen: i64,
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
        if kind == Some(pb::NoticeKind::Violation) {
            check::text(&mut v, "notice.rule", &n.rule, MAX_TEXT_CHARS);
        } else {
            check::optional_text(&mut v, "notice.rule", &n.rule, MAX_TEXT_CHARS);
        }
        if n.loss_fen > 0 && kind == Some(pb::NoticeKind::Commendation) {
            v.add("notice.loss_fen", "must be 0 for a commendation");
        } else {
            check::amount(&mut v, "notice.loss_fen", n.loss_fen, true);
        }
        // Notices are published to anyone (ListPublicNotices): no personal data in them.
        for (field, text) in [
            ("notice.grounds", &n.grounds),
            ("notice.handling", &n.handling),
            ("notice.rule", &n.rule),
        ] {
            if let Some(problem) = govit_platform::validate::personal_data_problem(text) {
                v.add(field, format!("{problem}: notices are published to anyone"));
            }
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
            rule: n.rule,
            loss_fen: n.loss_fen,
            notice_date,
        })
    }
}

/// A page of the public list, checked.
pub(crate) struct PublicNoticeQuery {
    year: Option<i32>,
    organization: Option<CreditCode>,
    kind: Option<pb::NoticeKind>,
    page: Page,
}

impl TryFrom<pb::ListPublicNoticesRequest> for PublicNoticeQuery {
    type Error = ServiceError;

    fn try_from(req: pb::ListPublicNoticesRequest) -> ServiceResult<Self> {
        let mut v = Violations::new();
        if req.year != 0 && !(2000..=2100).contains(&req.year) {
            v.add("year", "must be 0 (all) or a year between 2000 and 2100");
        }
        let organization = if req.organization.is_empty() {
            None
        } else {
            check::org_name(&mut v, "organization", &req.organization)
        };
        let kind = check::enum_value::<pb::NoticeKind>(&mut v, "kind", req.kind, true)
            .filter(|k| *k != pb::NoticeKind::Unspecified);
        v.finish()?;
        let page = Page::parse(
            req.page_size,
            &req.page_token,
            &format!(
                "public notices year={} organization={} kind={}",
                req.year, req.organization, req.kind
            ),
        )?;
        Ok(Self {
            year: (req.year != 0).then_some(req.year),
            organization,
            kind,
            page,
        })
    }
}

/// A notice with its unit's registered name, read by [`NOTICE_SELECT`].
#[derive(Debug, sqlx::FromRow)]
struct NoticeRow {
    id: String,
    credit_code: String,
    #[sqlx(try_from = "String")]
    kind: pb::NoticeKind,
    projects: String,
    grounds: String,
    handling: String,
    rule: String,
    loss_fen: i64,
    notice_date: String,
    issued_by: String,
    organization_display_name: String,
}

const NOTICE_SELECT: &str = "SELECT n.id, n.credit_code, n.kind, n.projects, n.grounds, n.handling, n.rule, \
     n.loss_fen, n.notice_date, n.issued_by, o.display_name AS organization_display_name \
     FROM organization_notices n JOIN organizations o ON o.credit_code = n.credit_code";

impl NoticeRow {
    fn to_proto(&self) -> ServiceResult<pb::OrganizationNotice> {
        Ok(pb::OrganizationNotice {
            name: format!("{}/notices/{}", org_name(&self.credit_code), self.id),
            kind: self.kind as i32,
            projects: serde_json::from_str(&self.projects).map_err(internal)?,
            grounds: self.grounds.clone(),
            handling: self.handling.clone(),
            rule: self.rule.clone(),
            loss_fen: self.loss_fen,
            notice_date: Some(date_to_proto(
                date_from_stored(&self.notice_date).map_err(internal)?,
            )),
            issued_by: self.issued_by.clone(),
            organization_display_name: self.organization_display_name.clone(),
        })
    }

    /// The notice as anyone may read it: not who issued it.
    fn to_public(&self) -> ServiceResult<pb::OrganizationNotice> {
        Ok(pb::OrganizationNotice {
            issued_by: String::new(),
            ..self.to_proto()?
        })
    }

    /// Where the public list continues after this notice (newest first).
    fn cursor(&self) -> String {
        format!("{}|{}", self.notice_date, self.id)
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
        "INSERT INTO organization_notices (id, credit_code, kind, projects, grounds, handling, notice_date, issued_by, create_time, \
         rule, loss_fen, publish_time) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $9)",
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
    .bind(notice.rule.clone())
    .bind(notice.loss_fen)
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
        self.notice(&id)
            .await?
            .ok_or_else(|| ServiceError::not_found("notice", format!("{org}/notices/{id}")))?
            .to_proto()
    }

    async fn notice(&self, id: &str) -> ServiceResult<Option<NoticeRow>> {
        let sql = format!("{NOTICE_SELECT} WHERE n.id = $1");
        Ok(sqlx::query_as::<_, NoticeRow>(AssertSqlSafe(sql))
            .bind(id.to_owned())
            .fetch_optional(&self.store.db.pool)
            .await?)
    }

    /// The published notices, newest first, for anyone.
    pub(crate) async fn public_notices(
        &self,
        query: PublicNoticeQuery,
    ) -> ServiceResult<pb::ListPublicNoticesResponse> {
        let _permit = self
            .public_reads
            .try_acquire()
            .map_err(|_| ServiceError::RateLimited {
                message: "too many public notice reads at once; retry shortly".into(),
                retry_after: std::time::Duration::from_secs(1),
            })?;
        // Only notices published when issued: older ones were never meant for the public.
        let mut sql = format!("{NOTICE_SELECT} WHERE n.publish_time IS NOT NULL");
        let mut args: Vec<String> = Vec::new();
        let mut arg = |sql: &mut String, condition: &str, value: String| {
            args.push(value);
            sql.push_str(&condition.replace("$?", &format!("${}", args.len())));
        };
        if let Some(year) = query.year {
            arg(
                &mut sql,
                " AND n.notice_date >= $?",
                format!("{year}-01-01"),
            );
            arg(
                &mut sql,
                " AND n.notice_date <= $?",
                format!("{year}-12-31"),
            );
        }
        if let Some(org) = &query.organization {
            arg(&mut sql, " AND n.credit_code = $?", org.to_string());
        }
        if let Some(kind) = query.kind {
            arg(&mut sql, " AND n.kind = $?", kind.as_stored().to_owned());
        }
        if let Some(after) = &query.page.after {
            let (date, id) = after.split_once('|').ok_or_else(|| {
                ServiceError::field("page_token", "is not a page token of this list")
            })?;
            arg(&mut sql, " AND (n.notice_date < $?", date.to_owned());
            arg(&mut sql, " OR (n.notice_date = $?", date.to_owned());
            arg(&mut sql, " AND n.id < $?))", id.to_owned());
        }
        sql.push_str(&format!(
            " ORDER BY n.notice_date DESC, n.id DESC LIMIT {}",
            query.page.fetch_limit()
        ));
        let mut q = sqlx::query_as::<_, NoticeRow>(AssertSqlSafe(sql));
        for value in args {
            q = q.bind(value);
        }
        let mut rows = q.fetch_all(&self.store.db.pool).await?;
        let next_page_token = query.page.finish(&mut rows, NoticeRow::cursor);
        Ok(pb::ListPublicNoticesResponse {
            notices: rows
                .iter()
                .map(NoticeRow::to_public)
                .collect::<ServiceResult<_>>()?,
            next_page_token,
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
        let (commendations, violations) = self.notices_of(code).await?;
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
        code: &CreditCode,
    ) -> ServiceResult<(Vec<pb::OrganizationNotice>, Vec<pb::OrganizationNotice>)> {
        let sql = format!(
            "{NOTICE_SELECT} WHERE n.credit_code = $1 ORDER BY n.notice_date, n.create_time"
        );
        let rows = sqlx::query_as::<_, NoticeRow>(AssertSqlSafe(sql))
            .bind(code.to_string())
            .fetch_all(&self.store.db.pool)
            .await?;
        let (mut commendations, mut violations) = (Vec::new(), Vec::new());
        for r in rows {
            let notice = r.to_proto()?;
            match r.kind {
                pb::NoticeKind::Commendation => commendations.push(notice),
                pb::NoticeKind::Violation | pb::NoticeKind::Unspecified => violations.push(notice),
            }
        }
        Ok((commendations, violations))
    }
}
