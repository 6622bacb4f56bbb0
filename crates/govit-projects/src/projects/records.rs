//! A project's record: created as a draft, read, listed, and edited while the applicant may
//! still edit it.

use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, Violations,
    paging::Page,
    time::{date_to_stored, now, to_stored},
};
use govit_proto::{
    StoredEnum,
    projects::v1::{self as pb, ProjectState as S},
};

use super::internal;
use crate::{
    ProjectsService,
    lifecycle::EDITABLE,
    model::{Fen, Funding, Nullable, ProjectCode, ProjectListing, ProjectRow, to_json},
    store::{Arg, NewEvent},
    validation::{self as check, MAX_NAME_CHARS, MAX_TEXT_CHARS},
};

const PROJECT_FIELDS: [&str; 12] = [
    "display_name",
    "category",
    "description",
    "planned_start_date",
    "planned_end_date",
    "estimated_investment_fen",
    "funding_source",
    "contacts",
    "feasibility_consultancy",
    "promised_indicators",
    "construction_content",
    "equipment_selection",
];

const CATEGORY_RULE: &str = "must be 1 to 64 characters of A-Z a-z 0-9 . _ -";

impl ProjectRow {
    /// A new draft of `year`, before its fields are set and its code is assigned.
    pub(crate) fn draft(year: i64, at: String) -> ProjectRow {
        ProjectRow {
            code: ProjectCode::unassigned(),
            year,
            seq: 0,
            display_name: String::new(),
            applicant: String::new(),
            category: String::new(),
            description: String::new(),
            planned_start_date: None,
            planned_end_date: None,
            estimated_investment_fen: Fen::ZERO,
            funding_source: Funding(None),
            contacts: "[]".into(),
            feasibility_consultancy: None,
            state: S::Draft,
            suspended_from: Nullable(None),
            review_panel: "[]".into(),
            return_reasons: "[]".into(),
            implementation_plan: None,
            contractor: None,
            supervision_firm: None,
            contract_amount_fen: None,
            contract_date: None,
            post_evaluation_summary: String::new(),
            version: 1,
            event_count: 1,
            create_time: at.clone(),
            update_time: at,
            approved_budget_fen: None,
            original_approved_fen: None,
            disbursed_fen: Fen::ZERO,
            post_evaluation: None,
            review: None,
            tender_record: None,
            promised_indicators: "[]".into(),
            acceptance_record: None,
            operation_start_date: None,
            post_evaluation_from: None,
            construction_content: String::new(),
            equipment_selection: String::new(),
            similar_projects: "[]".into(),
            duplication_finding: None,
        }
    }

    /// Sets the fields named by `paths` from `p`, adding what is wrong to `v`. Returns the
    /// feasibility consultancy when one is named, to be checked for existence.
    fn set_fields(
        &mut self,
        v: &mut Violations,
        p: &pb::Project,
        paths: &[&str],
    ) -> Option<String> {
        let mut consultancy = None;
        for path in paths {
            let field = format!("project.{path}");
            match *path {
                "display_name" => {
                    check::text(v, &field, &p.display_name, MAX_NAME_CHARS);
                    self.display_name = p.display_name.trim().to_owned();
                }
                "category" => {
                    v.check(
                        govit_platform::validate::is_code(&p.category),
                        &field,
                        CATEGORY_RULE,
                    );
                    self.category = p.category.clone();
                }
                "description" => {
                    check::optional_text(v, &field, &p.description, MAX_TEXT_CHARS);
                    self.description = p.description.clone();
                }
                "planned_start_date" => {
                    self.planned_start_date =
                        check::date(v, &field, p.planned_start_date.as_ref()).map(date_to_stored);
                }
                "planned_end_date" => {
                    self.planned_end_date =
                        check::date(v, &field, p.planned_end_date.as_ref()).map(date_to_stored);
                }
                "estimated_investment_fen" => {
                    check::amount(v, &field, p.estimated_investment_fen, true);
                    self.estimated_investment_fen = Fen::new(p.estimated_investment_fen);
                }
                "funding_source" => {
                    if let Some(f) =
                        check::enum_value::<pb::FundingSource>(v, &field, p.funding_source, true)
                    {
                        self.funding_source = Funding::from(f);
                    }
                }
                "contacts" => {
                    self.contacts = to_json(&check::contacts(v, &field, &p.contacts));
                }
                "feasibility_consultancy" => {
                    if p.feasibility_consultancy.is_empty() {
                        self.feasibility_consultancy = None;
                    } else if let Some(code) =
                        check::org_name(v, &field, &p.feasibility_consultancy)
                    {
                        self.feasibility_consultancy = Some(code.to_string());
                        consultancy = Some(code.to_string());
                    }
                }
                "construction_content" => {
                    check::optional_text(v, &field, &p.construction_content, MAX_TEXT_CHARS);
                    self.construction_content = p.construction_content.trim().to_owned();
                }
                "equipment_selection" => {
                    check::optional_text(v, &field, &p.equipment_selection, MAX_TEXT_CHARS);
                    self.equipment_selection = p.equipment_selection.trim().to_owned();
                }
                "promised_indicators" => {
                    self.promised_indicators =
                        to_json(&check::indicators(v, &field, &p.promised_indicators));
                }
                other => v.add(
                    "update_mask",
                    format!("{other:?} is not an updatable field"),
                ),
            }
        }
        if let (Some(start), Some(end)) = (&self.planned_start_date, &self.planned_end_date)
            && start > end
        {
            v.add(
                "project.planned_end_date",
                "must not be before planned_start_date",
            );
        }
        consultancy
    }
}

/// A project to create: the draft with its fields set, and the organisations it names.
pub(crate) struct NewProject {
    row: ProjectRow,
    consultancy: Option<String>,
}

impl TryFrom<pb::CreateProjectRequest> for NewProject {
    type Error = ServiceError;

    fn try_from(req: pb::CreateProjectRequest) -> ServiceResult<Self> {
        let Some(p) = req.project else {
            return Err(ServiceError::field("project", "is required"));
        };
        let at = now();
        let year = i64::from(chrono::Datelike::year(&at));
        let mut row = ProjectRow::draft(year, to_stored(at));
        let mut v = Violations::new();
        let applicant = check::org_name(&mut v, "project.applicant", &p.applicant);
        let consultancy = row.set_fields(&mut v, &p, &PROJECT_FIELDS);
        v.finish()?;
        let Some(applicant) = applicant else {
            return Err(ServiceError::field("project.applicant", "is required"));
        };
        row.applicant = applicant.to_string();
        Ok(NewProject { row, consultancy })
    }
}

/// An edit of a project's fields: which fields, their new values, and the etag as read.
pub(crate) struct ProjectEdit {
    code: ProjectCode,
    expected: i64,
    paths: Vec<String>,
    project: pb::Project,
}

impl TryFrom<pb::UpdateProjectRequest> for ProjectEdit {
    type Error = ServiceError;

    fn try_from(req: pb::UpdateProjectRequest) -> ServiceResult<Self> {
        let Some(project) = req.project else {
            return Err(ServiceError::field("project", "is required"));
        };
        let code = check::parse_project_name("project.name", &project.name)?;
        let paths: Vec<String> = req.update_mask.map(|m| m.paths).unwrap_or_default();
        let expected = check::etag("project.etag", &project.etag)?;
        if paths.is_empty() {
            return Err(ServiceError::field(
                "update_mask",
                "must name the fields to change",
            ));
        }
        Ok(ProjectEdit {
            code,
            expected,
            paths,
            project,
        })
    }
}

/// A listing of projects: its filters, order and page.
pub(crate) struct ProjectQuery {
    state: Option<S>,
    organization: Option<String>,
    year: i32,
    category: String,
    descending: bool,
    page_size: i32,
    page_token: String,
    /// Listings only (`PROJECT_VIEW_BASIC`) rather than whole projects.
    basic: bool,
}

impl TryFrom<pb::ListProjectsRequest> for ProjectQuery {
    type Error = ServiceError;

    fn try_from(req: pb::ListProjectsRequest) -> ServiceResult<Self> {
        let mut v = Violations::new();
        let state = check::enum_value::<S>(&mut v, "state", req.state, true);
        let organization = if req.organization.is_empty() {
            None
        } else {
            check::org_name(&mut v, "organization", &req.organization)
        };
        if req.year != 0 && !(2000..=2100).contains(&req.year) {
            v.add("year", "must be 0 (all) or a year between 2000 and 2100");
        }
        if !req.category.is_empty() && !govit_platform::validate::is_code(&req.category) {
            v.add("category", CATEGORY_RULE);
        }
        let view = check::enum_value::<pb::ProjectView>(&mut v, "view", req.view, true);
        let descending = match req.order_by.trim() {
            "" | "code" | "code asc" => false,
            "code desc" => true,
            _ => {
                v.add("order_by", "must be \"code\" or \"code desc\"");
                false
            }
        };
        v.finish()?;
        Ok(ProjectQuery {
            state: state.filter(|s| *s != S::Unspecified),
            organization: organization.map(|o| o.to_string()),
            year: req.year,
            category: req.category,
            descending,
            page_size: req.page_size,
            page_token: req.page_token,
            basic: view == Some(pb::ProjectView::Basic),
        })
    }
}

/// A page of listed rows as the answer: cut to the page's size, its next token from the last
/// row's (year, seq).
fn answer_page<T>(
    page: &Page,
    mut rows: Vec<T>,
    position: impl Fn(&T) -> (i64, i64),
    to_proto: impl Fn(&T) -> anyhow::Result<pb::Project>,
) -> ServiceResult<pb::ListProjectsResponse> {
    let next_page_token = page.finish(&mut rows, |r| {
        let (year, seq) = position(r);
        format!("{year}-{seq}")
    });
    Ok(pb::ListProjectsResponse {
        projects: rows
            .iter()
            .map(to_proto)
            .collect::<Result<_, _>>()
            .map_err(internal)?,
        next_page_token,
    })
}

impl ProjectQuery {
    /// The filters the caller may apply: an applicant sees their own organisation's only.
    fn filters(&self, caller: &Caller) -> ServiceResult<Vec<(&'static str, Arg)>> {
        let organization = match (caller.role, &self.organization) {
            (Role::Applicant, Some(o)) if caller.organization.as_deref() != Some(o.as_str()) => {
                return Err(ServiceError::PermissionDenied(
                    "applicants may only list their own organisation's projects".into(),
                ));
            }
            (Role::Applicant, _) => caller.organization.clone(),
            (_, o) => o.clone(),
        };
        let mut filters: Vec<(&'static str, Arg)> = Vec::new();
        if let Some(s) = self.state {
            filters.push(("state", s.as_stored().into()));
        }
        if let Some(o) = organization {
            filters.push(("applicant", Arg::Text(o)));
        }
        if self.year != 0 {
            filters.push(("year", Arg::Int(i64::from(self.year))));
        }
        if !self.category.is_empty() {
            filters.push(("category", Arg::Text(self.category.clone())));
        }
        Ok(filters)
    }
}

fn page_key(key: &str) -> ServiceResult<(i64, i64)> {
    key.split_once('-')
        .and_then(|(y, s)| Some((y.parse().ok()?, s.parse().ok()?)))
        .ok_or_else(|| ServiceError::field("page_token", "is not a page token of this service"))
}

impl ProjectsService {
    pub(crate) async fn register_project(
        &self,
        caller: &Caller,
        project: NewProject,
    ) -> ServiceResult<pb::Project> {
        let NewProject { row, consultancy } = project;
        if caller.is(Role::Applicant) && caller.organization.as_deref() != Some(&row.applicant) {
            return Err(ServiceError::PermissionDenied(
                "applicants may only create projects of their own organisation".into(),
            ));
        }
        self.require_org(&row.applicant).await?;
        if let Some(c) = &consultancy {
            self.require_org(c).await?;
        }
        let saved = self.store.create_project(row, caller).await?;
        tracing::info!(project = %saved.code, "project created");
        saved.to_proto().map_err(internal)
    }

    pub(crate) async fn find_projects(
        &self,
        caller: &Caller,
        query: ProjectQuery,
    ) -> ServiceResult<pb::ListProjectsResponse> {
        let filters = query.filters(caller)?;
        let fingerprint = format!(
            "projects {:?} desc={}",
            filters
                .iter()
                .map(|(c, a)| format!("{c}={a:?}"))
                .collect::<Vec<_>>(),
            query.descending
        );
        let page = Page::parse(query.page_size, &query.page_token, &fingerprint)?;
        let after = page.after.as_deref().map(page_key).transpose()?;
        let (limit, desc) = (page.fetch_limit(), query.descending);
        if query.basic {
            let rows: Vec<ProjectListing> = self
                .store
                .list_projects(filters, after, desc, limit)
                .await?;
            answer_page(&page, rows, |r| (r.year, r.seq), ProjectListing::to_proto)
        } else {
            let rows: Vec<ProjectRow> = self
                .store
                .list_projects(filters, after, desc, limit)
                .await?;
            answer_page(&page, rows, |r| (r.year, r.seq), ProjectRow::to_proto)
        }
    }

    pub(crate) async fn edit_project(
        &self,
        caller: &Caller,
        edit: ProjectEdit,
    ) -> ServiceResult<pb::Project> {
        let mut row = self.visible_project(caller, &edit.code).await?;
        let mut v = Violations::new();
        let paths: Vec<&str> = edit.paths.iter().map(String::as_str).collect();
        let consultancy = row.set_fields(&mut v, &edit.project, &paths);
        v.finish()?;
        if row.version != edit.expected {
            return Err(ServiceError::stale_etag(&row.name()));
        }
        if !EDITABLE.contains(&row.state) {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                row.name(),
                format!(
                    "{} is {}; it can be edited only in DRAFT, RETURNED or REVISION_REQUIRED",
                    row.name(),
                    row.state.as_stored()
                ),
            ));
        }
        if let Some(c) = &consultancy {
            self.require_org(c).await?;
        }
        let event = NewEvent {
            action: "UpdateProject".into(),
            changed_fields: edit.paths,
            ..NewEvent::default()
        };
        let expected = edit.expected;
        self.store
            .write_project(row, expected, caller, event, Vec::new())
            .await?
            .to_proto()
            .map_err(internal)
    }
}
