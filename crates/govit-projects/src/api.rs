//! The gRPC face of the projects service. Each method checks the request, the caller and the
//! state in that order, then makes one transactional change through [`Store`].

use std::pin::Pin;

use govit_platform::error::respond;
use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, Violations,
    paging::Page,
    time::{date_to_stored, now, to_stored},
};
use govit_proto::projects::v1::{
    self as pb, ProjectState as S, project_service_server::ProjectService,
};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};

use crate::{
    ProjectsService,
    blobs::UploadError,
    lifecycle::{Action, EDITABLE, TERMINAL, state_name},
    model::{
        DocumentRow, OrgRow, PlanRec, ProjectRow, document_kind_name, funding_name, org_kind_name,
        to_json,
    },
    store::{Arg, Extra, NewEvent},
    validation::{self as check, MAX_NAME_CHARS, MAX_REASON_CHARS, MAX_TEXT_CHARS},
};

/// Roles that may read projects at all; applicants only their own organisation's.
const PROJECT_READERS: [Role; 5] = [
    Role::Applicant,
    Role::Office,
    Role::Supervisor,
    Role::Inspector,
    Role::Service,
];
const ORG_READERS: [Role; 6] = [
    Role::Applicant,
    Role::Office,
    Role::Supervisor,
    Role::Inspector,
    Role::Service,
    Role::RegistryAdmin,
];
const DOWNLOAD_CHUNK: usize = 64 * 1024;
/// The largest chunk an upload message may carry, as the API documents.
const MAX_CHUNK_BYTES: usize = 1024 * 1024;

fn internal(e: anyhow::Error) -> ServiceError {
    ServiceError::Internal(e)
}

impl ProjectsService {
    /// The project if the caller may see it. Applicants asking about another organisation's
    /// project get PERMISSION_DENIED whether it exists or not, so codes reveal nothing.
    pub(crate) async fn visible_project(
        &self,
        caller: &Caller,
        code: &str,
    ) -> ServiceResult<ProjectRow> {
        caller.require(&PROJECT_READERS)?;
        let row = self.store.get_project(code).await?;
        match (caller.role, row) {
            (Role::Applicant, Some(row))
                if caller.organization.as_deref() == Some(&row.applicant) =>
            {
                Ok(row)
            }
            (Role::Applicant, _) => Err(ServiceError::PermissionDenied(
                "applicants may only see their own organisation's projects".into(),
            )),
            (_, Some(row)) => Ok(row),
            (_, None) => Err(ServiceError::not_found(
                "project",
                crate::model::project_name(code),
            )),
        }
    }

    fn visible_org(caller: &Caller, code: &str) -> ServiceResult<()> {
        caller.require(&ORG_READERS)?;
        if caller.is(Role::Applicant) && caller.organization.as_deref() != Some(code) {
            return Err(ServiceError::PermissionDenied(
                "applicants may only see their own organisation".into(),
            ));
        }
        Ok(())
    }

    async fn require_org(&self, field: &str, code: &str) -> ServiceResult<()> {
        if self.store.org_exists(code).await? {
            Ok(())
        } else {
            let _ = field;
            Err(ServiceError::not_found(
                "organization",
                crate::model::org_name(code),
            ))
        }
    }

    /// Runs one lifecycle transition. `request_violations` holds what the request's own fields
    /// got wrong; `apply` sets the action's data on the row and may refuse with a guard.
    pub(crate) async fn transition(
        &self,
        caller: &Caller,
        name: &str,
        etag: &str,
        action: Action,
        request_violations: Violations,
        apply: impl FnOnce(&mut ProjectRow, &mut NewEvent, &[DocumentRow]) -> ServiceResult<()>,
    ) -> ServiceResult<pb::Project> {
        self.transition_with(
            caller,
            name,
            etag,
            action,
            request_violations,
            apply,
            Vec::new(),
        )
        .await
    }

    /// A transition that also writes `extras` (a review outcome) in its transaction.
    #[allow(clippy::too_many_arguments)] // `transition`'s arguments plus the extras
    pub(crate) async fn transition_with(
        &self,
        caller: &Caller,
        name: &str,
        etag: &str,
        action: Action,
        request_violations: Violations,
        apply: impl FnOnce(&mut ProjectRow, &mut NewEvent, &[DocumentRow]) -> ServiceResult<()>,
        mut extras: Vec<Extra>,
    ) -> ServiceResult<pb::Project> {
        let code = check::parse_project_name("name", name);
        let mut violations = request_violations;
        if let Err(ServiceError::InvalidArgument(vs)) = &code {
            for v in vs {
                violations.add(v.field.clone(), v.description.clone());
            }
        }
        let etag_required = !matches!(
            action,
            Action::ReviewOutcome(..) | Action::ReviewCancelled | Action::OverrideOutcome(..)
        );
        let expected = if etag.is_empty() && !etag_required {
            None
        } else {
            match check::etag("etag", etag) {
                Ok(v) => Some(v),
                Err(ServiceError::InvalidArgument(vs)) => {
                    for v in vs {
                        violations.add(v.field, v.description);
                    }
                    None
                }
                Err(e) => return Err(e),
            }
        };
        violations.finish()?;
        let code = code?;
        caller.require(action.roles())?;
        let mut row = self.visible_project(caller, &code).await?;
        if let Some(expected) = expected
            && expected != row.version
        {
            return Err(ServiceError::stale_etag(&row.name()));
        }
        let from = row.state().map_err(internal)?;
        if !action.sources().contains(&from) {
            let allowed: Vec<_> = action.sources().iter().map(|s| state_name(*s)).collect();
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                row.name(),
                format!(
                    "{} is {}; {} needs it to be {}",
                    row.name(),
                    state_name(from),
                    action.name(),
                    if allowed.is_empty() {
                        "in no state".into()
                    } else {
                        allowed.join(" or ")
                    }
                ),
            ));
        }
        let to = action
            .target(from, row.suspended_from().map_err(internal)?)
            .ok_or_else(|| {
                ServiceError::field("decision", "does not apply to this review stage")
            })?;
        let documents = if action.needs_documents() {
            self.store.all_documents(&code).await?
        } else {
            Vec::new()
        };
        let mut event = NewEvent {
            action: action.name().into(),
            from_state: Some(state_name(from)),
            to_state: Some(state_name(to)),
            ..NewEvent::default()
        };
        apply(&mut row, &mut event, &documents)?;
        row.suspended_from = match action {
            Action::Suspend => Some(state_name(from).to_owned()),
            _ => None,
        };
        row.state = state_name(to).to_owned();
        let version = row.version;
        extras.extend(self.review_messages(action, from, to, &mut row).await?);
        extras.extend(crate::reviews::approval_effects(&mut row, from, to));
        let saved = self
            .store
            .save_project(row, version, caller, event, extras)
            .await?;
        tracing::info!(project = %saved.code, action = action.name(), to = state_name(to), "project transition");
        saved.to_proto().map_err(internal)
    }

    fn project_fields(
        v: &mut Violations,
        p: &pb::Project,
        paths: &[&str],
        row: &mut ProjectRow,
    ) -> Option<String> {
        let mut consultancy = None;
        for path in paths {
            let field = format!("project.{path}");
            match *path {
                "display_name" => {
                    check::text(v, &field, &p.display_name, MAX_NAME_CHARS);
                    row.display_name = p.display_name.trim().to_owned();
                }
                "category" => {
                    if !govit_platform::validate::is_code(&p.category) {
                        v.add(field, "must be 1 to 64 characters of A-Z a-z 0-9 . _ -");
                    }
                    row.category = p.category.clone();
                }
                "description" => {
                    check::optional_text(v, &field, &p.description, MAX_TEXT_CHARS);
                    row.description = p.description.clone();
                }
                "planned_start_date" => {
                    row.planned_start_date =
                        check::date(v, &field, p.planned_start_date.as_ref()).map(date_to_stored);
                }
                "planned_end_date" => {
                    row.planned_end_date =
                        check::date(v, &field, p.planned_end_date.as_ref()).map(date_to_stored);
                }
                "estimated_investment_fen" => {
                    check::amount(v, &field, p.estimated_investment_fen, true);
                    row.estimated_investment_fen = p.estimated_investment_fen;
                }
                "funding_source" => {
                    if let Some(f) =
                        check::enum_value::<pb::FundingSource>(v, &field, p.funding_source, true)
                    {
                        row.funding_source = funding_name(f).to_owned();
                    }
                }
                "contacts" => {
                    row.contacts = to_json(&check::contacts(v, &field, &p.contacts));
                }
                "feasibility_consultancy" => {
                    if p.feasibility_consultancy.is_empty() {
                        row.feasibility_consultancy = None;
                    } else if let Some(code) =
                        check::org_name(v, &field, &p.feasibility_consultancy)
                    {
                        row.feasibility_consultancy = Some(code.to_string());
                        consultancy = Some(code.to_string());
                    }
                }
                other => v.add(
                    "update_mask",
                    format!("{other:?} is not an updatable field"),
                ),
            }
        }
        if let (Some(start), Some(end)) = (&row.planned_start_date, &row.planned_end_date)
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

const PROJECT_FIELDS: [&str; 9] = [
    "display_name",
    "category",
    "description",
    "planned_start_date",
    "planned_end_date",
    "estimated_investment_fen",
    "funding_source",
    "contacts",
    "feasibility_consultancy",
];

type DownloadStream =
    Pin<Box<dyn Stream<Item = Result<pb::DownloadDocumentResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ProjectService for ProjectsService {
    async fn create_organization(
        &self,
        request: Request<pb::CreateOrganizationRequest>,
    ) -> Result<Response<pb::Organization>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let mut v = Violations::new();
                let Some(org) = req.organization else {
                    return Err(ServiceError::field("organization", "is required"));
                };
                let code = match govit_platform::uscc::CreditCode::parse(&org.credit_code) {
                    Ok(c) => Some(c),
                    Err(problem) => {
                        v.add("organization.credit_code", problem);
                        None
                    }
                };
                check::text(
                    &mut v,
                    "organization.display_name",
                    &org.display_name,
                    MAX_NAME_CHARS,
                );
                let kind = check::enum_value::<pb::OrganizationKind>(
                    &mut v,
                    "organization.kind",
                    org.kind,
                    false,
                );
                let contacts = check::contacts(&mut v, "organization.contacts", &org.contacts);
                v.finish()?;
                let (Some(code), Some(kind)) = (code, kind) else {
                    return Err(ServiceError::field("organization", "is invalid"));
                };
                caller.require(&[Role::Office, Role::Applicant])?;
                if caller.is(Role::Applicant)
                    && caller.organization.as_deref() != Some(code.as_str())
                {
                    return Err(ServiceError::PermissionDenied(
                        "applicants may only register their own organisation".into(),
                    ));
                }
                let at = to_stored(now());
                let row = OrgRow {
                    credit_code: code.to_string(),
                    display_name: org.display_name.trim().to_owned(),
                    kind: org_kind_name(kind).to_owned(),
                    contacts: to_json(&contacts),
                    version: 1,
                    create_time: at.clone(),
                    update_time: at,
                };
                self.store.create_org(&row, &caller).await?;
                row.to_proto().map_err(internal)
            }
            .await,
        )
    }

    async fn get_organization(
        &self,
        request: Request<pb::GetOrganizationRequest>,
    ) -> Result<Response<pb::Organization>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let code = check::parse_org_name("name", &req.name)?;
                Self::visible_org(&caller, code.as_str())?;
                let row = self
                    .store
                    .get_org(code.as_str())
                    .await?
                    .ok_or_else(|| ServiceError::not_found("organization", req.name.clone()))?;
                row.to_proto().map_err(internal)
            }
            .await,
        )
    }

    async fn list_organizations(
        &self,
        request: Request<pb::ListOrganizationsRequest>,
    ) -> Result<Response<pb::ListOrganizationsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let mut v = Violations::new();
                let kind =
                    check::enum_value::<pb::OrganizationKind>(&mut v, "kind", req.kind, true);
                v.finish()?;
                caller.require(&ORG_READERS)?;
                let kind = kind
                    .filter(|k| *k != pb::OrganizationKind::Unspecified)
                    .map(org_kind_name);
                let page = Page::parse(
                    req.page_size,
                    &req.page_token,
                    &format!("orgs kind={kind:?}"),
                )?;
                let only = if caller.is(Role::Applicant) {
                    caller.organization.as_deref()
                } else {
                    None
                };
                let mut rows = self
                    .store
                    .list_orgs(kind, only, page.after.as_deref(), page.fetch_limit())
                    .await?;
                let next_page_token = page.finish(&mut rows, |r| r.credit_code.clone());
                Ok(pb::ListOrganizationsResponse {
                    organizations: rows
                        .iter()
                        .map(OrgRow::to_proto)
                        .collect::<Result<_, _>>()
                        .map_err(internal)?,
                    next_page_token,
                })
            }
            .await,
        )
    }

    async fn update_organization(
        &self,
        request: Request<pb::UpdateOrganizationRequest>,
    ) -> Result<Response<pb::Organization>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let Some(org) = req.organization else {
                    return Err(ServiceError::field("organization", "is required"));
                };
                let code = check::parse_org_name("organization.name", &org.name)?;
                let paths: Vec<String> = req.update_mask.map(|m| m.paths).unwrap_or_default();
                let mut v = Violations::new();
                if paths.is_empty() {
                    v.add("update_mask", "must name the fields to change");
                }
                let expected = match check::etag("organization.etag", &org.etag) {
                    Ok(e) => e,
                    Err(ServiceError::InvalidArgument(vs)) => {
                        for x in vs {
                            v.add(x.field, x.description);
                        }
                        0
                    }
                    Err(e) => return Err(e),
                };
                caller.require(&[Role::Office, Role::Applicant])?;
                Self::visible_org(&caller, code.as_str())?;
                let mut row = self
                    .store
                    .get_org(code.as_str())
                    .await?
                    .ok_or_else(|| ServiceError::not_found("organization", org.name.clone()))?;
                for path in &paths {
                    let field = format!("organization.{path}");
                    match path.as_str() {
                        "display_name" => {
                            check::text(&mut v, &field, &org.display_name, MAX_NAME_CHARS);
                            row.display_name = org.display_name.trim().to_owned();
                        }
                        "kind" => {
                            if let Some(k) = check::enum_value::<pb::OrganizationKind>(
                                &mut v, &field, org.kind, false,
                            ) {
                                row.kind = org_kind_name(k).to_owned();
                            }
                        }
                        "contacts" => {
                            row.contacts = to_json(&check::contacts(&mut v, &field, &org.contacts))
                        }
                        other => v.add(
                            "update_mask",
                            format!("{other:?} is not an updatable field"),
                        ),
                    }
                }
                v.finish()?;
                if row.version != expected {
                    return Err(ServiceError::stale_etag(&org.name));
                }
                row.update_time = to_stored(now());
                self.store
                    .update_org(&row, expected, &caller, paths)
                    .await?;
                row.version += 1;
                row.to_proto().map_err(internal)
            }
            .await,
        )
    }

    async fn create_project(
        &self,
        request: Request<pb::CreateProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let Some(p) = req.project else {
                    return Err(ServiceError::field("project", "is required"));
                };
                let at = now();
                let stored_at = to_stored(at);
                let mut row = ProjectRow {
                    code: String::new(),
                    year: i64::from(chrono::Datelike::year(&at)),
                    seq: 0,
                    display_name: String::new(),
                    applicant: String::new(),
                    category: String::new(),
                    description: String::new(),
                    planned_start_date: None,
                    planned_end_date: None,
                    estimated_investment_fen: 0,
                    funding_source: funding_name(pb::FundingSource::Unspecified).to_owned(),
                    contacts: "[]".into(),
                    feasibility_consultancy: None,
                    state: state_name(S::Draft).to_owned(),
                    suspended_from: None,
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
                    create_time: stored_at.clone(),
                    update_time: stored_at,
                    approved_budget_fen: None,
                    original_approved_fen: None,
                    disbursed_fen: 0,
                    post_evaluation: None,
                    review: None,
                };
                let mut v = Violations::new();
                let applicant = check::org_name(&mut v, "project.applicant", &p.applicant);
                let consultancy = Self::project_fields(&mut v, &p, &PROJECT_FIELDS, &mut row);
                v.finish()?;
                let Some(applicant) = applicant else {
                    return Err(ServiceError::field("project.applicant", "is required"));
                };
                caller.require(&[Role::Applicant, Role::Office])?;
                if caller.is(Role::Applicant)
                    && caller.organization.as_deref() != Some(applicant.as_str())
                {
                    return Err(ServiceError::PermissionDenied(
                        "applicants may only create projects of their own organisation".into(),
                    ));
                }
                self.require_org("project.applicant", applicant.as_str())
                    .await?;
                if let Some(c) = &consultancy {
                    self.require_org("project.feasibility_consultancy", c)
                        .await?;
                }
                row.applicant = applicant.to_string();
                let saved = self.store.create_project(row, &caller).await?;
                tracing::info!(project = %saved.code, "project created");
                saved.to_proto().map_err(internal)
            }
            .await,
        )
    }

    async fn get_project(
        &self,
        request: Request<pb::GetProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let code = check::parse_project_name("name", &req.name)?;
                self.visible_project(&caller, &code)
                    .await?
                    .to_proto()
                    .map_err(internal)
            }
            .await,
        )
    }

    async fn list_projects(
        &self,
        request: Request<pb::ListProjectsRequest>,
    ) -> Result<Response<pb::ListProjectsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
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
                    v.add(
                        "category",
                        "must be 1 to 64 characters of A-Z a-z 0-9 . _ -",
                    );
                }
                let descending = match req.order_by.trim() {
                    "" | "code" | "code asc" => false,
                    "code desc" => true,
                    _ => {
                        v.add("order_by", "must be \"code\" or \"code desc\"");
                        false
                    }
                };
                v.finish()?;
                caller.require(&PROJECT_READERS)?;
                let organization = match (caller.role, organization) {
                    (Role::Applicant, Some(o))
                        if caller.organization.as_deref() != Some(o.as_str()) =>
                    {
                        return Err(ServiceError::PermissionDenied(
                            "applicants may only list their own organisation's projects".into(),
                        ));
                    }
                    (Role::Applicant, _) => caller.organization.clone(),
                    (_, o) => o.map(|o| o.to_string()),
                };
                let mut filters: Vec<(&'static str, Arg)> = Vec::new();
                if let Some(s) = state.filter(|s| *s != S::Unspecified) {
                    filters.push(("state", Arg::Text(state_name(s).to_owned())));
                }
                if let Some(o) = &organization {
                    filters.push(("applicant", Arg::Text(o.clone())));
                }
                if req.year != 0 {
                    filters.push(("year", Arg::Int(i64::from(req.year))));
                }
                if !req.category.is_empty() {
                    filters.push(("category", Arg::Text(req.category.clone())));
                }
                let fingerprint = format!(
                    "projects {:?} desc={descending}",
                    filters
                        .iter()
                        .map(|(c, a)| format!("{c}={a:?}"))
                        .collect::<Vec<_>>()
                );
                let page = Page::parse(req.page_size, &req.page_token, &fingerprint)?;
                let after = match &page.after {
                    None => None,
                    Some(key) => Some(
                        key.split_once('-')
                            .and_then(|(y, s)| Some((y.parse().ok()?, s.parse().ok()?)))
                            .ok_or_else(|| {
                                ServiceError::field(
                                    "page_token",
                                    "is not a page token of this service",
                                )
                            })?,
                    ),
                };
                let mut rows = self
                    .store
                    .list_projects(filters, after, descending, page.fetch_limit())
                    .await?;
                let next_page_token = page.finish(&mut rows, |r| format!("{}-{}", r.year, r.seq));
                Ok(pb::ListProjectsResponse {
                    projects: rows
                        .iter()
                        .map(ProjectRow::to_proto)
                        .collect::<Result<_, _>>()
                        .map_err(internal)?,
                    next_page_token,
                })
            }
            .await,
        )
    }

    async fn update_project(
        &self,
        request: Request<pb::UpdateProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(async {
            let Some(p) = req.project else {
                return Err(ServiceError::field("project", "is required"));
            };
            let code = check::parse_project_name("project.name", &p.name)?;
            let paths: Vec<String> = req.update_mask.map(|m| m.paths).unwrap_or_default();
            let expected = check::etag("project.etag", &p.etag)?;
            if paths.is_empty() {
                return Err(ServiceError::field("update_mask", "must name the fields to change"));
            }
            caller.require(&[Role::Applicant, Role::Office])?;
            let mut row = self.visible_project(&caller, &code).await?;
            let mut v = Violations::new();
            let path_refs: Vec<&str> = paths.iter().map(String::as_str).collect();
            let consultancy = Self::project_fields(&mut v, &p, &path_refs, &mut row);
            v.finish()?;
            if row.version != expected {
                return Err(ServiceError::stale_etag(&row.name()));
            }
            let state = row.state().map_err(internal)?;
            if !EDITABLE.contains(&state) {
                return Err(ServiceError::precondition(
                    "STATE_CONFLICT",
                    row.name(),
                    format!(
                        "{} is {}; it can be edited only in DRAFT, RETURNED or REVISION_REQUIRED",
                        row.name(),
                        state_name(state)
                    ),
                ));
            }
            if let Some(c) = &consultancy {
                self.require_org("project.feasibility_consultancy", c).await?;
            }
            let event = NewEvent { action: "UpdateProject".into(), changed_fields: paths, ..NewEvent::default() };
            let saved = self.store.save_project(row, expected, &caller, event, Vec::new()).await?;
            saved.to_proto().map_err(internal)
        }
        .await)
    }

    async fn submit_project(
        &self,
        request: Request<pb::SubmitProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            self.transition(&caller, &req.name, &req.etag, Action::Submit, Violations::new(), |row, event, docs| {
                let mut missing = Vec::new();
                let form = docs.iter().filter(|d| d.kind == document_kind_name(pb::DocumentKind::ApplicationForm));
                let sealed = form.clone().map(|d| d.sealed_copies).max();
                match sealed {
                    None => missing.push(("DOCUMENT_MISSING", "application_form", "the application form is not uploaded".to_owned())),
                    Some(n) if n < 3 => missing.push((
                        "DOCUMENT_MISSING",
                        "application_form",
                        format!("the application form must be recorded as three sealed copies, got {n}"),
                    )),
                    _ => {}
                }
                let study = docs
                    .iter()
                    .find(|d| d.kind == document_kind_name(pb::DocumentKind::FeasibilityStudyReport));
                if study.is_none() {
                    missing.push(("DOCUMENT_MISSING", "feasibility_study_report", "the feasibility study report is not uploaded".to_owned()));
                }
                if row.estimated_investment_fen <= 0 {
                    missing.push(("FIELD_MISSING", "estimated_investment_fen", "the estimated investment must be positive".to_owned()));
                }
                if row.planned_start_date.is_none() || row.planned_end_date.is_none() {
                    missing.push(("FIELD_MISSING", "planned_construction_period", "the planned construction period must be set".to_owned()));
                }
                if row.funding_source == funding_name(pb::FundingSource::Unspecified) {
                    missing.push(("FIELD_MISSING", "funding_source", "the funding source must be set".to_owned()));
                }
                if row.contacts == "[]" {
                    missing.push(("FIELD_MISSING", "contacts", "at least one contact is needed".to_owned()));
                }
                if !missing.is_empty() {
                    let message = format!(
                        "{} cannot be submitted: {}",
                        row.name(),
                        missing.iter().map(|m| m.2.as_str()).collect::<Vec<_>>().join("; ")
                    );
                    return Err(ServiceError::FailedPrecondition {
                        message,
                        violations: missing
                            .into_iter()
                            .map(|(t, s, d)| govit_platform::error::PreconditionViolation::new(t, s, d))
                            .collect(),
                    });
                }
                event.document_sha256 = form
                    .map(|d| d.sha256.clone())
                    .chain(study.map(|d| d.sha256.clone()))
                    .collect();
                row.return_reasons = "[]".into();
                Ok(())
            })
            .await,
        )
    }

    async fn return_project(
        &self,
        request: Request<pb::ReturnProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        check::reasons(&mut v, "reasons", &req.reasons);
        respond(
            self.transition(
                &caller,
                &req.name,
                &req.etag,
                Action::Return,
                v,
                |row, event, _| {
                    row.return_reasons = to_json(&req.reasons);
                    event.reason = req.reasons.join("; ");
                    event.changed_fields = vec!["return_reasons".into()];
                    Ok(())
                },
            )
            .await,
        )
    }

    async fn accept_for_review(
        &self,
        request: Request<pb::AcceptForReviewRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let panel = check::panel(&mut v, "panel", &req.panel);
        respond(
            self.transition(
                &caller,
                &req.name,
                &req.etag,
                Action::AcceptForReview,
                v,
                |row, event, _| {
                    row.review_panel = to_json(&panel);
                    event.changed_fields = vec!["review_panel".into()];
                    Ok(())
                },
            )
            .await,
        )
    }

    async fn record_review_outcome(
        &self,
        request: Request<pb::RecordReviewOutcomeRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(self.record_outcome(&caller, request.into_inner()).await)
    }

    async fn override_review_outcome(
        &self,
        request: Request<pb::OverrideReviewOutcomeRequest>,
    ) -> Result<Response<pb::ReviewOverride>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(self.request_override(&caller, request.into_inner()).await)
    }

    async fn approve_review_override(
        &self,
        request: Request<pb::ApproveReviewOverrideRequest>,
    ) -> Result<Response<pb::ReviewOverride>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(self.approve_override(&caller, request.into_inner()).await)
    }

    async fn reject_review_override(
        &self,
        request: Request<pb::RejectReviewOverrideRequest>,
    ) -> Result<Response<pb::ReviewOverride>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(self.reject_override(&caller, request.into_inner()).await)
    }

    async fn list_review_overrides(
        &self,
        request: Request<pb::ListReviewOverridesRequest>,
    ) -> Result<Response<pb::ListReviewOverridesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(self.list_overrides(&caller, request.into_inner()).await)
    }

    async fn record_review_cancellation(
        &self,
        request: Request<pb::RecordReviewCancellationRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            self.record_cancellation(&caller, request.into_inner())
                .await,
        )
    }

    async fn file_implementation_plan(
        &self,
        request: Request<pb::FileImplementationPlanRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let plan = req.plan.unwrap_or_default();
        check::text(&mut v, "plan.task_plan", &plan.task_plan, MAX_TEXT_CHARS);
        check::text(
            &mut v,
            "plan.system_design",
            &plan.system_design,
            MAX_TEXT_CHARS,
        );
        check::text(
            &mut v,
            "plan.equipment_selection",
            &plan.equipment_selection,
            MAX_TEXT_CHARS,
        );
        check::text(&mut v, "plan.schedule", &plan.schedule, MAX_TEXT_CHARS);
        let document_id = check::document_of(&req.name, &plan.plan_document);
        if document_id.is_none() {
            v.add(
                "plan.plan_document",
                format!(
                    "must be a document of this project: {}/documents/{{id}}",
                    req.name
                ),
            );
        }
        respond(
            self.transition(
                &caller,
                &req.name,
                &req.etag,
                Action::FilePlan,
                v,
                |row, event, docs| {
                    let document = docs
                        .iter()
                        .find(|d| Some(&d.id) == document_id.as_ref())
                        .ok_or_else(|| {
                            ServiceError::not_found("document", plan.plan_document.clone())
                        })?;
                    if document.kind != document_kind_name(pb::DocumentKind::ImplementationPlan) {
                        return Err(ServiceError::precondition(
                            "DOCUMENT_MISSING",
                            plan.plan_document.clone(),
                            format!(
                                "{} is a {} document, not an IMPLEMENTATION_PLAN",
                                plan.plan_document, document.kind
                            ),
                        ));
                    }
                    row.implementation_plan = Some(to_json(&PlanRec {
                        task_plan: plan.task_plan.clone(),
                        system_design: plan.system_design.clone(),
                        equipment_selection: plan.equipment_selection.clone(),
                        schedule: plan.schedule.clone(),
                        plan_document: plan.plan_document.clone(),
                    }));
                    row.return_reasons = "[]".into();
                    event.changed_fields = vec!["implementation_plan".into()];
                    event.document_sha256 = vec![document.sha256.clone()];
                    Ok(())
                },
            )
            .await,
        )
    }

    async fn record_implementation_plan(
        &self,
        request: Request<pb::RecordImplementationPlanRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        check::optional_text(&mut v, "comment", &req.comment, MAX_REASON_CHARS);
        respond(
            self.transition(
                &caller,
                &req.name,
                &req.etag,
                Action::RecordPlan,
                v,
                |_, event, _| {
                    event.reason = req.comment.clone();
                    Ok(())
                },
            )
            .await,
        )
    }

    async fn return_implementation_plan(
        &self,
        request: Request<pb::ReturnImplementationPlanRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        check::reasons(&mut v, "reasons", &req.reasons);
        respond(
            self.transition(
                &caller,
                &req.name,
                &req.etag,
                Action::ReturnPlan,
                v,
                |row, event, _| {
                    row.return_reasons = to_json(&req.reasons);
                    event.reason = req.reasons.join("; ");
                    event.changed_fields = vec!["return_reasons".into()];
                    Ok(())
                },
            )
            .await,
        )
    }

    async fn start_tendering(
        &self,
        request: Request<pb::StartTenderingRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            self.transition(
                &caller,
                &req.name,
                &req.etag,
                Action::StartTendering,
                Violations::new(),
                |_, _, _| Ok(()),
            )
            .await,
        )
    }

    async fn record_tender_result(
        &self,
        request: Request<pb::RecordTenderResultRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let mut v = Violations::new();
                let result = req.result.clone().unwrap_or_default();
                let contractor = check::org_name(&mut v, "result.contractor", &result.contractor);
                let firm =
                    check::org_name(&mut v, "result.supervision_firm", &result.supervision_firm);
                check::amount(
                    &mut v,
                    "result.contract_amount_fen",
                    result.contract_amount_fen,
                    false,
                );
                let date = check::date(
                    &mut v,
                    "result.contract_date",
                    result.contract_date.as_ref(),
                );
                if result.contract_date.is_none() {
                    v.add("result.contract_date", "is required");
                }
                if contractor.is_some() && contractor == firm {
                    v.add(
                        "result.supervision_firm",
                        "must not be the contractor: supervision is independent",
                    );
                }
                if let (Some(c), Some(f)) = (&contractor, &firm) {
                    // Checked before the transition so a missing organisation changes nothing.
                    if v.is_empty() {
                        caller.require(Action::RecordTenderResult.roles())?;
                        self.require_org("result.contractor", c.as_str()).await?;
                        self.require_org("result.supervision_firm", f.as_str())
                            .await?;
                    }
                }
                self.transition(
                    &caller,
                    &req.name,
                    &req.etag,
                    Action::RecordTenderResult,
                    v,
                    |row, event, _| {
                        // The applying unit cannot contract or supervise its own project: the
                        // tender exists to buy from someone else.
                        for (field, org) in [
                            ("result.contractor", &contractor),
                            ("result.supervision_firm", &firm),
                        ] {
                            if org.as_ref().is_some_and(|o| o.as_str() == row.applicant) {
                                return Err(ServiceError::field(
                                    field,
                                    "must not be the applying unit itself",
                                ));
                            }
                        }
                        row.contractor = contractor.map(|c| c.to_string());
                        row.supervision_firm = firm.map(|f| f.to_string());
                        row.contract_amount_fen = Some(result.contract_amount_fen);
                        row.contract_date = date.map(date_to_stored);
                        event.changed_fields = vec!["tender_result".into()];
                        Ok(())
                    },
                )
                .await
            }
            .await,
        )
    }

    async fn request_acceptance(
        &self,
        request: Request<pb::RequestAcceptanceRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            self.transition(
                &caller,
                &req.name,
                &req.etag,
                Action::RequestAcceptance,
                Violations::new(),
                |_, _, _| Ok(()),
            )
            .await,
        )
    }

    async fn start_acceptance(
        &self,
        request: Request<pb::StartAcceptanceRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let panel = check::panel(&mut v, "panel", &req.panel);
        respond(
            self.transition(
                &caller,
                &req.name,
                &req.etag,
                Action::StartAcceptance,
                v,
                |row, event, _| {
                    row.review_panel = to_json(&panel);
                    event.changed_fields = vec!["review_panel".into()];
                    Ok(())
                },
            )
            .await,
        )
    }

    async fn start_operation(
        &self,
        request: Request<pb::StartOperationRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            self.transition(
                &caller,
                &req.name,
                &req.etag,
                Action::StartOperation,
                Violations::new(),
                |_, _, _| Ok(()),
            )
            .await,
        )
    }

    async fn record_post_evaluation(
        &self,
        request: Request<pb::RecordPostEvaluationRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        check::text(&mut v, "summary", &req.summary, MAX_TEXT_CHARS);
        let scores = [
            req.engineering_quality_score,
            req.operating_state_score,
            req.investment_benefit_score,
        ];
        for (field, score) in [
            "engineering_quality_score",
            "operating_state_score",
            "investment_benefit_score",
        ]
        .iter()
        .zip(scores)
        {
            // A grade is computed from the scores: a score of 0 is taken as "not given".
            if !(1..=100).contains(&score) {
                v.add(*field, "must be a score from 1 to 100");
            }
        }
        if req.benefits.is_empty() {
            v.add("benefits", "must compare at least one benefit promised in the feasibility study with what was achieved");
        }
        for (i, b) in req.benefits.iter().enumerate() {
            check::text(&mut v, &format!("benefits[{i}].benefit"), &b.benefit, 500);
            check::text(
                &mut v,
                &format!("benefits[{i}].promised"),
                &b.promised,
                MAX_REASON_CHARS,
            );
            check::text(
                &mut v,
                &format!("benefits[{i}].achieved"),
                &b.achieved,
                MAX_REASON_CHARS,
            );
        }
        let document_id = check::document_of(&req.name, &req.report_document);
        if document_id.is_none() {
            v.add(
                "report_document",
                format!(
                    "must be a document of this project: {}/documents/{{id}}",
                    req.name
                ),
            );
        }
        let weights = self.policy.evaluation_weights;
        // In i64: the scores are client input, checked only after this line.
        let weighted = scores
            .iter()
            .zip(weights)
            .map(|(s, w)| i64::from(*s) * i64::from(w))
            .sum::<i64>()
            .clamp(0, 10_000) as i32;
        let grade = match weighted {
            x if x >= 9000 => pb::EvaluationGrade::Excellent,
            x if x >= 7500 => pb::EvaluationGrade::Good,
            x if x >= 6000 => pb::EvaluationGrade::Pass,
            _ => pb::EvaluationGrade::Fail,
        };
        respond(
            self.transition(
                &caller,
                &req.name,
                &req.etag,
                Action::RecordPostEvaluation,
                v,
                |row, event, docs| {
                    let document = docs
                        .iter()
                        .find(|d| Some(&d.id) == document_id.as_ref())
                        .ok_or_else(|| {
                            ServiceError::not_found("document", req.report_document.clone())
                        })?;
                    if document.kind != document_kind_name(pb::DocumentKind::EvaluationReport) {
                        return Err(ServiceError::precondition(
                            "DOCUMENT_MISSING",
                            req.report_document.clone(),
                            format!(
                                "{} is a {} document, not an EVALUATION_REPORT",
                                req.report_document, document.kind
                            ),
                        ));
                    }
                    row.post_evaluation_summary = req.summary.clone();
                    row.post_evaluation = Some(to_json(&crate::model::EvaluationRec {
                        scores,
                        weights,
                        weighted_score_centi: weighted,
                        grade: grade
                            .as_str_name()
                            .trim_start_matches("EVALUATION_GRADE_")
                            .to_owned(),
                        benefits: req
                            .benefits
                            .iter()
                            .map(|b| (b.benefit.clone(), b.promised.clone(), b.achieved.clone()))
                            .collect(),
                        report_document: req.report_document.clone(),
                    }));
                    event.changed_fields =
                        vec!["post_evaluation".into(), "post_evaluation_summary".into()];
                    event.document_sha256 = vec![document.sha256.clone()];
                    event.reason = format!(
                        "grade {}",
                        grade.as_str_name().trim_start_matches("EVALUATION_GRADE_")
                    );
                    Ok(())
                },
            )
            .await,
        )
    }

    async fn close_project(
        &self,
        request: Request<pb::CloseProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            self.transition(
                &caller,
                &req.name,
                &req.etag,
                Action::Close,
                Violations::new(),
                |_, _, _| Ok(()),
            )
            .await,
        )
    }

    async fn withdraw_project(
        &self,
        request: Request<pb::WithdrawProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        check::optional_text(&mut v, "reason", &req.reason, MAX_REASON_CHARS);
        respond(
            self.transition(
                &caller,
                &req.name,
                &req.etag,
                Action::Withdraw,
                v,
                |_, event, _| {
                    event.reason = req.reason.clone();
                    Ok(())
                },
            )
            .await,
        )
    }

    async fn suspend_project(
        &self,
        request: Request<pb::SuspendProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        check::text(&mut v, "reason", &req.reason, MAX_REASON_CHARS);
        respond(
            self.transition(
                &caller,
                &req.name,
                &req.etag,
                Action::Suspend,
                v,
                |_, event, _| {
                    event.reason = req.reason.clone();
                    Ok(())
                },
            )
            .await,
        )
    }

    async fn resume_project(
        &self,
        request: Request<pb::ResumeProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        check::optional_text(&mut v, "reason", &req.reason, MAX_REASON_CHARS);
        respond(
            self.transition(
                &caller,
                &req.name,
                &req.etag,
                Action::Resume,
                v,
                |_, event, _| {
                    event.reason = req.reason.clone();
                    Ok(())
                },
            )
            .await,
        )
    }

    async fn upload_document(
        &self,
        request: Request<Streaming<pb::UploadDocumentRequest>>,
    ) -> Result<Response<pb::Document>, Status> {
        let caller = Caller::from_request(&request)?;
        let mut stream = request.into_inner();
        respond(async {
            let first = stream.message().await.map_err(|s| ServiceError::field("metadata", s.message().to_owned()))?;
            let Some(pb::upload_document_request::Part::Metadata(meta)) = first.and_then(|m| m.part) else {
                return Err(ServiceError::field("metadata", "the first message must carry the metadata"));
            };
            let mut v = Violations::new();
            let code = match check::parse_project_name("metadata.parent", &meta.parent) {
                Ok(c) => Some(c),
                Err(_) => {
                    v.add("metadata.parent", "must be projects/{code}");
                    None
                }
            };
            let kind = check::enum_value::<pb::DocumentKind>(&mut v, "metadata.kind", meta.kind, false);
            check::text(&mut v, "metadata.file_name", &meta.file_name, 255);
            if meta.file_name.contains(['/', '\\']) {
                v.add("metadata.file_name", "must not contain path separators");
            } else if matches!(meta.file_name.trim(), "." | "..") || meta.file_name.trim().starts_with('.') {
                // Names that mean a directory, or hide a file, when someone saves the download.
                v.add("metadata.file_name", "must not be . or .. nor start with a dot");
            }
            let media_ok = meta.media_type.len() <= 127
                && meta.media_type.split_once('/').is_some_and(|(a, b)| {
                    !a.is_empty() && !b.is_empty() && meta.media_type.bytes().all(|c| c.is_ascii_graphic())
                });
            if !media_ok {
                v.add("metadata.media_type", "must be a media type such as application/pdf");
            }
            match kind {
                Some(pb::DocumentKind::ApplicationForm) if !(1..=99).contains(&meta.sealed_copies) => {
                    v.add("metadata.sealed_copies", "the application form needs the number of sealed copies received (1 to 99)")
                }
                Some(k) if k != pb::DocumentKind::ApplicationForm && meta.sealed_copies != 0 => {
                    v.add("metadata.sealed_copies", "only the application form records sealed copies")
                }
                _ => {}
            }
            let expected = meta.expected_sha256.trim().to_ascii_lowercase();
            if !expected.is_empty() && (expected.len() != 64 || !expected.bytes().all(|b| b.is_ascii_hexdigit())) {
                v.add("metadata.expected_sha256", "must be 64 hexadecimal characters");
            }
            v.finish()?;
            let (Some(code), Some(kind)) = (code, kind) else {
                return Err(ServiceError::field("metadata", "is invalid"));
            };
            caller.require(&[Role::Applicant, Role::Office])?;
            let project = self.visible_project(&caller, &code).await?;
            let state = project.state().map_err(internal)?;
            if TERMINAL.contains(&state) {
                return Err(ServiceError::precondition(
                    "STATE_CONFLICT",
                    project.name(),
                    format!("{} is {}; it takes no more documents", project.name(), state_name(state)),
                ));
            }

            let mut pending = self.blobs.begin(self.max_document_bytes).await.map_err(|e| internal(e.into()))?;
            loop {
                let message = match stream.message().await {
                    Ok(Some(m)) => m,
                    Ok(None) => break,
                    Err(status) => return Err(ServiceError::field("chunk", format!("upload interrupted: {}", status.message()))),
                };
                match message.part {
                    Some(pb::upload_document_request::Part::Chunk(bytes)) => {
                        if bytes.len() > MAX_CHUNK_BYTES {
                            return Err(ServiceError::field("chunk", format!("is {} bytes; a chunk is at most 1 MiB", bytes.len())));
                        }
                        match pending.write(&bytes).await {
                            Ok(()) => {}
                            Err(UploadError::TooLarge { limit }) => {
                                return Err(ServiceError::field("chunk", format!("the document exceeds the limit of {limit} bytes")));
                            }
                            Err(UploadError::Io(e)) => return Err(internal(e.into())),
                        }
                    }
                    Some(pb::upload_document_request::Part::Metadata(_)) => {
                        return Err(ServiceError::field("metadata", "must be sent only in the first message"));
                    }
                    None => return Err(ServiceError::field("part", "each message must carry metadata or a chunk")),
                }
            }
            let blob = pending.finish().await.map_err(|e| internal(e.into()))?;
            if blob.size == 0 {
                return Err(ServiceError::field("chunk", "the document is empty"));
            }
            if !expected.is_empty() && expected != blob.sha256 {
                return Err(ServiceError::field(
                    "metadata.expected_sha256",
                    format!("does not match the content received, whose SHA-256 is {}", blob.sha256),
                ));
            }
            let row = DocumentRow {
                id: uuid::Uuid::now_v7().to_string(),
                project_code: code,
                kind: document_kind_name(kind).to_owned(),
                file_name: meta.file_name.trim().to_owned(),
                media_type: meta.media_type.clone(),
                size_bytes: blob.size as i64,
                sha256: blob.sha256.clone(),
                sealed_copies: i64::from(meta.sealed_copies),
                uploaded_by: caller.subject.clone(),
                create_time: to_stored(now()),
            };
            let blobs = &self.blobs;
            let id = row.id.clone();
            self.store
                .insert_document(&row, &caller, async || blobs.place(blob, &id).await, async || blobs.remove(&id).await)
                .await?;
            tracing::info!(project = %row.project_code, document = %row.id, size = row.size_bytes, "document stored");
            row.to_proto().map_err(internal)
        }
        .await)
    }

    async fn list_documents(
        &self,
        request: Request<pb::ListDocumentsRequest>,
    ) -> Result<Response<pb::ListDocumentsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let code = check::parse_project_name("parent", &req.parent)?;
                let page =
                    Page::parse(req.page_size, &req.page_token, &format!("documents {code}"))?;
                self.visible_project(&caller, &code).await?;
                let after = page.after.as_deref().map(|k| {
                    let (t, id) = k.split_once(' ').unwrap_or((k, ""));
                    (t.to_owned(), id.to_owned())
                });
                let mut rows = self
                    .store
                    .list_documents(&code, after, page.fetch_limit())
                    .await?;
                let next_page_token =
                    page.finish(&mut rows, |r| format!("{} {}", r.create_time, r.id));
                Ok(pb::ListDocumentsResponse {
                    documents: rows
                        .iter()
                        .map(DocumentRow::to_proto)
                        .collect::<Result<_, _>>()
                        .map_err(internal)?,
                    next_page_token,
                })
            }
            .await,
        )
    }

    type DownloadDocumentStream = DownloadStream;

    async fn download_document(
        &self,
        request: Request<pb::DownloadDocumentRequest>,
    ) -> Result<Response<Self::DownloadDocumentStream>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let (code, id) = check::parse_child_name("name", &req.name, "documents")?;
                self.visible_project(&caller, &code).await?;
                let row = self
                    .store
                    .get_document(&code, &id)
                    .await?
                    .ok_or_else(|| ServiceError::not_found("document", req.name.clone()))?;
                let metadata = row.to_proto().map_err(internal)?;
                govit_platform::reads::record(
                    &self.store.db,
                    &caller,
                    "DocumentDownloaded",
                    &row.name(),
                )
                .await?;
                let file = tokio::fs::File::open(self.blobs.path_of(&row.id))
                    .await
                    .map_err(|e| {
                        internal(
                            anyhow::Error::new(e)
                                .context(format!("opening content of {}", row.name())),
                        )
                    })?;
                let head = tokio_stream::once(Ok(pb::DownloadDocumentResponse {
                    part: Some(pb::download_document_response::Part::Metadata(metadata)),
                }));
                let body = tokio_util_stream(file).map(|chunk| match chunk {
                    Ok(bytes) => Ok(pb::DownloadDocumentResponse {
                        part: Some(pb::download_document_response::Part::Chunk(bytes)),
                    }),
                    Err(e) => Err(Status::from(internal(
                        anyhow::Error::new(e).context("reading document content"),
                    ))),
                });
                Ok(Box::pin(head.chain(body)) as DownloadStream)
            }
            .await,
        )
    }

    async fn list_project_events(
        &self,
        request: Request<pb::ListProjectEventsRequest>,
    ) -> Result<Response<pb::ListProjectEventsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let code = check::parse_project_name("parent", &req.parent)?;
                let page = Page::parse(req.page_size, &req.page_token, &format!("events {code}"))?;
                let project = self.visible_project(&caller, &code).await?;
                let after = page
                    .after
                    .as_deref()
                    .map(|k| k.parse::<i64>())
                    .transpose()
                    .map_err(|_| {
                        ServiceError::field("page_token", "is not a page token of this service")
                    })?;
                let mut rows = self
                    .store
                    .list_events(&project.name(), after, page.fetch_limit())
                    .await?;
                let next_page_token = page.finish(&mut rows, |r| r.seq.to_string());
                Ok(pb::ListProjectEventsResponse {
                    events: rows
                        .iter()
                        .map(|r| r.to_proto())
                        .collect::<Result<_, _>>()
                        .map_err(internal)?,
                    next_page_token,
                })
            }
            .await,
        )
    }

    // ---- supervision (see supervision.rs) ----

    async fn create_budget_change(
        &self,
        request: Request<pb::CreateBudgetChangeRequest>,
    ) -> Result<Response<pb::BudgetChange>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(self.create_budget_change(&caller, req).await)
    }
    async fn approve_budget_change(
        &self,
        request: Request<pb::ApproveBudgetChangeRequest>,
    ) -> Result<Response<pb::BudgetChange>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            self.decide_budget_change(&caller, &req.name, &req.comment, true, req.higher_approval)
                .await,
        )
    }
    async fn refuse_budget_change(
        &self,
        request: Request<pb::RefuseBudgetChangeRequest>,
    ) -> Result<Response<pb::BudgetChange>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            self.decide_budget_change(&caller, &req.name, &req.comment, false, None)
                .await,
        )
    }
    async fn list_budget_changes(
        &self,
        request: Request<pb::ListBudgetChangesRequest>,
    ) -> Result<Response<pb::ListBudgetChangesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            self.list_budget_changes(&caller, &req.parent)
                .await
                .map(|budget_changes| pb::ListBudgetChangesResponse { budget_changes }),
        )
    }
    async fn list_budget_baselines(
        &self,
        request: Request<pb::ListBudgetBaselinesRequest>,
    ) -> Result<Response<pb::ListBudgetBaselinesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            self.list_baselines(&caller, &req.parent)
                .await
                .map(|baselines| pb::ListBudgetBaselinesResponse { baselines }),
        )
    }
    async fn record_disbursement(
        &self,
        request: Request<pb::RecordDisbursementRequest>,
    ) -> Result<Response<pb::Disbursement>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(self.record_disbursement(&caller, req).await)
    }
    async fn list_disbursements(
        &self,
        request: Request<pb::ListDisbursementsRequest>,
    ) -> Result<Response<pb::ListDisbursementsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(self.list_disbursements(&caller, &req.parent).await)
    }
    async fn create_milestone(
        &self,
        request: Request<pb::CreateMilestoneRequest>,
    ) -> Result<Response<pb::Milestone>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(self.create_milestone(&caller, req).await)
    }
    async fn update_milestone(
        &self,
        request: Request<pb::UpdateMilestoneRequest>,
    ) -> Result<Response<pb::Milestone>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(self.update_milestone(&caller, req).await)
    }
    async fn list_milestones(
        &self,
        request: Request<pb::ListMilestonesRequest>,
    ) -> Result<Response<pb::ListMilestonesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            self.list_milestones(&caller, &req.parent)
                .await
                .map(|milestones| pb::ListMilestonesResponse { milestones }),
        )
    }
    async fn file_progress_report(
        &self,
        request: Request<pb::FileProgressReportRequest>,
    ) -> Result<Response<pb::ProgressReport>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(self.file_progress_report(&caller, req).await)
    }
    async fn review_progress_report(
        &self,
        request: Request<pb::ReviewProgressReportRequest>,
    ) -> Result<Response<pb::ProgressReport>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(self.review_progress_report(&caller, req).await)
    }
    async fn list_progress_reports(
        &self,
        request: Request<pb::ListProgressReportsRequest>,
    ) -> Result<Response<pb::ListProgressReportsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            self.list_progress_reports(&caller, &req.parent)
                .await
                .map(|reports| pb::ListProgressReportsResponse { reports }),
        )
    }
    async fn get_project_variance(
        &self,
        request: Request<pb::GetProjectVarianceRequest>,
    ) -> Result<Response<pb::ProjectVariance>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(self.project_variance(&caller, &req.name).await)
    }
    async fn rate_project_risk(
        &self,
        request: Request<pb::RateProjectRiskRequest>,
    ) -> Result<Response<pb::RiskRating>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(self.rate_risk(&caller, req).await)
    }
    async fn list_risk_ratings(
        &self,
        request: Request<pb::ListRiskRatingsRequest>,
    ) -> Result<Response<pb::ListRiskRatingsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            self.list_ratings(&caller, &req.name)
                .await
                .map(|ratings| pb::ListRiskRatingsResponse { ratings }),
        )
    }
    async fn create_monthly_snapshot(
        &self,
        request: Request<pb::CreateMonthlySnapshotRequest>,
    ) -> Result<Response<pb::CreateMonthlySnapshotResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            self.create_snapshot(&caller, &req.month)
                .await
                .map(|projects| pb::CreateMonthlySnapshotResponse { projects }),
        )
    }
    async fn list_snapshots(
        &self,
        request: Request<pb::ListSnapshotsRequest>,
    ) -> Result<Response<pb::ListSnapshotsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            self.list_snapshots(&caller, &req.month, &req.project)
                .await
                .map(|snapshots| pb::ListSnapshotsResponse { snapshots }),
        )
    }
    async fn create_inspection(
        &self,
        request: Request<pb::CreateInspectionRequest>,
    ) -> Result<Response<pb::Inspection>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(self.create_inspection(&caller, req).await)
    }
    async fn record_rectification(
        &self,
        request: Request<pb::RecordRectificationRequest>,
    ) -> Result<Response<pb::Inspection>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(self.record_rectification(&caller, req).await)
    }
    async fn list_inspections(
        &self,
        request: Request<pb::ListInspectionsRequest>,
    ) -> Result<Response<pb::ListInspectionsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            self.list_inspections(&caller, &req.parent)
                .await
                .map(|inspections| pb::ListInspectionsResponse { inspections }),
        )
    }
    async fn list_overdue_findings(
        &self,
        request: Request<pb::ListOverdueFindingsRequest>,
    ) -> Result<Response<pb::ListOverdueFindingsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            self.overdue_findings(&caller, req.as_of.as_ref())
                .await
                .map(|findings| pb::ListOverdueFindingsResponse { findings }),
        )
    }
    async fn create_organization_notice(
        &self,
        request: Request<pb::CreateOrganizationNoticeRequest>,
    ) -> Result<Response<pb::OrganizationNotice>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(self.create_notice(&caller, req).await)
    }
    async fn get_organization_record(
        &self,
        request: Request<pb::GetOrganizationRecordRequest>,
    ) -> Result<Response<pb::OrganizationRecord>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(self.organization_record(&caller, &req.name).await)
    }
    async fn list_outbox_messages(
        &self,
        request: Request<govit_proto::common::v1::ListOutboxMessagesRequest>,
    ) -> Result<Response<govit_proto::common::v1::ListOutboxMessagesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(govit_platform::outbox::list(&self.store.db, &caller, request.get_ref()).await)
    }

    async fn retry_outbox_message(
        &self,
        request: Request<govit_proto::common::v1::RetryOutboxMessageRequest>,
    ) -> Result<Response<govit_proto::common::v1::OutboxMessage>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            govit_platform::outbox::retry(&self.store.db, &caller, &request.get_ref().name).await,
        )
    }

    async fn list_read_events(
        &self,
        request: Request<govit_proto::common::v1::ListReadEventsRequest>,
    ) -> Result<Response<govit_proto::common::v1::ListReadEventsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(govit_platform::reads::list(&self.store.db, &caller, request.get_ref()).await)
    }

    async fn get_portfolio_summary(
        &self,
        request: Request<pb::GetPortfolioSummaryRequest>,
    ) -> Result<Response<pb::PortfolioSummary>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(self.portfolio(&caller, req).await)
    }
}

/// Reads a file as a stream of chunks without loading it whole.
fn tokio_util_stream(
    mut file: tokio::fs::File,
) -> impl Stream<Item = std::io::Result<Vec<u8>>> + Send {
    use tokio::io::AsyncReadExt;
    async_stream_from(move |tx| async move {
        loop {
            let mut buf = vec![0u8; DOWNLOAD_CHUNK];
            match file.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.send(Ok(buf)).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            }
        }
    })
}

/// A stream fed by a spawned producer through a small channel, so reading stays ahead of the
/// network by at most a few chunks.
fn async_stream_from<T, F, Fut>(producer: F) -> impl Stream<Item = T> + Send
where
    T: Send + 'static,
    F: FnOnce(tokio::sync::mpsc::Sender<T>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(producer(tx));
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
