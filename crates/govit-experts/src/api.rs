//! The gRPC face of the registry: request checks, roles, then the store or the draw steps.

use std::collections::BTreeSet;

use govit_draw::{Requirement, merkle};
use govit_platform::error::respond;
use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, Violations, idempotency,
    paging::Page,
    time::{date_to_stored, now, to_stored},
    validate::is_code,
};
use govit_proto::experts::v1::{self as pb, expert_registry_service_server::ExpertRegistryService};
use tonic::{Request, Response, Status};

use crate::{
    ExpertsService,
    draws::OpenRequest,
    model::{CategoryRow, ExpertFull, ExpertRow, ManualExclusion, enum_suffix, to_json},
    roster,
    store::Store,
    translog,
    validation::{self as check},
};

const EXPERT_READERS: [Role; 4] = [
    Role::RegistryAdmin,
    Role::Office,
    Role::Inspector,
    Role::Service,
];
const DRAW_READERS: [Role; 4] = [
    Role::Office,
    Role::RegistryAdmin,
    Role::Inspector,
    Role::Service,
];
const DRAW_RUNNERS: [Role; 2] = [Role::Office, Role::Service];
const DRAW_FINDERS: [Role; 5] = [
    Role::Office,
    Role::RegistryAdmin,
    Role::Inspector,
    Role::Service,
    Role::Supervisor,
];
const WITNESSES: [Role; 2] = [Role::Supervisor, Role::Inspector];
// The log names who was drawn and who the pool holds: confidential like the draws.
const LOG_READERS: [Role; 4] = [
    Role::Office,
    Role::RegistryAdmin,
    Role::Inspector,
    Role::Service,
];

fn internal(e: impl Into<anyhow::Error>) -> ServiceError {
    ServiceError::Internal(e.into())
}

fn parse_name(field: &str, name: &str, collection: &str) -> ServiceResult<String> {
    match name
        .strip_prefix(collection)
        .and_then(|r| r.strip_prefix('/'))
    {
        Some(id) if is_code(id) => Ok(id.to_owned()),
        _ => Err(ServiceError::field(
            field,
            format!("must be {collection}/{{id}}"),
        )),
    }
}

/// A violation for every category that does not exist or is inactive.
fn category_violations(
    known: &std::collections::BTreeMap<String, CategoryRow>,
    v: &mut Violations,
    field: impl Fn(usize) -> String,
    categories: &[String],
) {
    for (i, c) in categories.iter().enumerate() {
        match known.get(c) {
            None if is_code(c) => v.add(field(i), format!("no category {c}")),
            Some(row) if row.active == 0 => v.add(field(i), format!("category {c} is inactive")),
            _ => {}
        }
    }
}

fn etag(v: &mut Violations, field: &str, etag: &str) -> i64 {
    match etag.parse::<i64>() {
        Ok(e) => e,
        Err(_) => {
            v.add(
                field,
                if etag.is_empty() {
                    "is required: send the etag as read"
                } else {
                    "is not an etag of this service"
                },
            );
            0
        }
    }
}

const EXPERT_FIELDS: [&str; 12] = [
    "display_name",
    "employer",
    "source",
    "title",
    "categories",
    "phone",
    "email",
    "id_number",
    "appointment_start_date",
    "appointment_end_date",
    "unavailable_periods",
    "conflicts",
];

fn blank_expert(id: &str) -> ExpertFull {
    let at = to_stored(now());
    ExpertFull {
        row: ExpertRow {
            id: id.to_owned(),
            display_name: String::new(),
            employer_credit_code: String::new(),
            employer_name: String::new(),
            source: String::new(),
            title: String::new(),
            phone: String::new(),
            email: String::new(),
            id_number: String::new(),
            appointment_start: String::new(),
            appointment_end: String::new(),
            status: "ACTIVE".into(),
            unavailable: "[]".into(),
            conflicts: "[]".into(),
            draws_count: 0,
            reviews_count: 0,
            version: 1,
            create_time: at.clone(),
            update_time: at,
            rating_count: 0,
            rating_sum: 0,
        },
        categories: Vec::new(),
    }
}

/// Checks the fields named by `paths` and sets them on `target`.
fn apply_expert(
    v: &mut Violations,
    prefix: &str,
    e: &pb::Expert,
    paths: &[&str],
    target: &mut ExpertFull,
) {
    let r = &mut target.row;
    for path in paths {
        let field = format!("{prefix}.{path}");
        match *path {
            "display_name" => {
                check::text(v, &field, &e.display_name, 100);
                r.display_name = e.display_name.trim().to_owned();
            }
            "employer" => {
                let employer = e.employer.clone().unwrap_or_default();
                check::credit_code(v, &format!("{field}.credit_code"), &employer.credit_code);
                check::text(v, &format!("{field}.name"), &employer.name, 200);
                r.employer_credit_code = employer.credit_code.trim().to_owned();
                r.employer_name = employer.name.trim().to_owned();
            }
            "source" => {
                if let Some(s) = check::source(v, &field, e.source) {
                    r.source = enum_suffix(s.as_str_name(), "EXPERT_SOURCE_").to_owned();
                }
            }
            "title" => {
                check::optional_text(v, &field, &e.title, 100);
                r.title = e.title.trim().to_owned();
            }
            "categories" => {
                check::categories(v, &field, &e.categories);
                let mut cats = e.categories.clone();
                cats.sort();
                cats.dedup();
                target.categories = cats;
            }
            "phone" => {
                check::phone(v, &field, e.phone.trim());
                r.phone = e.phone.trim().to_owned();
            }
            "email" => {
                check::email(v, &field, e.email.trim());
                r.email = e.email.trim().to_owned();
            }
            "id_number" => {
                check::id_number(v, &field, e.id_number.trim());
                r.id_number = e.id_number.trim().to_owned();
            }
            "appointment_start_date" => {
                if let Some(d) = check::date(v, &field, e.appointment_start_date.as_ref()) {
                    r.appointment_start = date_to_stored(d);
                }
            }
            "appointment_end_date" => {
                if let Some(d) = check::date(v, &field, e.appointment_end_date.as_ref()) {
                    r.appointment_end = date_to_stored(d);
                }
            }
            "unavailable_periods" => {
                r.unavailable = to_json(&check::periods(v, &field, &e.unavailable_periods))
            }
            "conflicts" => r.conflicts = to_json(&check::conflicts(v, &field, &e.conflicts)),
            other => v.add(
                "update_mask",
                format!("{other:?} is not an updatable field"),
            ),
        }
    }
    if !r.appointment_start.is_empty()
        && !r.appointment_end.is_empty()
        && r.appointment_start > r.appointment_end
    {
        v.add(
            format!("{prefix}.appointment_end_date"),
            "must not be before appointment_start_date",
        );
    }
}

impl ExpertsService {
    /// Registry admins see ID numbers and phones unmasked: each such read is recorded.
    async fn record_unmasked(&self, caller: &Caller, names: &[String]) -> ServiceResult<()> {
        if caller.role != Role::RegistryAdmin {
            return Ok(());
        }
        govit_platform::reads::record_all(&self.store.db, caller, "ExpertUnmasked", names).await
    }

    /// Adds a violation for every category that does not exist or is inactive.
    async fn check_categories(
        &self,
        v: &mut Violations,
        field: impl Fn(usize) -> String,
        categories: &[String],
    ) -> ServiceResult<()> {
        let known = self.store.categories(categories).await?;
        category_violations(&known, v, field, categories);
        Ok(())
    }

    fn draw_view(
        &self,
        caller: &Caller,
        d: &crate::model::DrawRow,
        replacements: &[crate::model::ReplacementRow],
    ) -> ServiceResult<pb::Draw> {
        d.to_proto(
            replacements,
            DRAW_READERS.contains(&caller.role),
            self.policy.require_witness,
        )
        .map_err(internal)
    }

    async fn draw_response(
        &self,
        caller: &Caller,
        d: crate::model::DrawRow,
    ) -> ServiceResult<pb::Draw> {
        let replacements = self.store.replacements(&d.id).await?;
        self.draw_view(caller, &d, &replacements)
    }

    async fn change_status(
        &self,
        request: Request<pb::ChangeExpertStatusRequest>,
        from: &[&str],
        to: &str,
        action: &str,
    ) -> ServiceResult<pb::Expert> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        let mut v = Violations::new();
        let id = parse_name("name", &req.name, "experts");
        if let Err(ServiceError::InvalidArgument(vs)) = &id {
            for x in vs {
                v.add(x.field.clone(), x.description.clone());
            }
        }
        let expected = etag(&mut v, "etag", &req.etag);
        if to != "ACTIVE" {
            check::text(&mut v, "reason", &req.reason, 500);
        }
        v.finish()?;
        let id = id?;
        caller.require(&[Role::RegistryAdmin])?;
        let mut expert = self
            .store
            .get_expert(&id)
            .await?
            .ok_or_else(|| ServiceError::not_found("expert", req.name.clone()))?;
        if expert.row.version != expected {
            return Err(ServiceError::stale_etag(&req.name));
        }
        if !from.contains(&expert.row.status.as_str()) {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                req.name.clone(),
                format!(
                    "{} is {}; {action} needs it to be {}",
                    req.name,
                    expert.row.status,
                    from.join(" or ")
                ),
            ));
        }
        expert.row.status = to.to_owned();
        expert.row.update_time = to_stored(now());
        self.store
            .save_expert(&expert, Some(expected), &["status".to_owned()])
            .await?;
        expert.row.version += 1;
        expert.to_proto(caller.role).map_err(internal)
    }
}

#[tonic::async_trait]
impl ExpertRegistryService for ExpertsService {
    async fn create_category(
        &self,
        request: Request<pb::CreateCategoryRequest>,
    ) -> Result<Response<pb::Category>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let c = req.category.unwrap_or_default();
                let mut v = Violations::new();
                check::code(&mut v, "category.code", &c.code);
                check::text(&mut v, "category.display_name", &c.display_name, 100);
                check::optional_text(&mut v, "category.description", &c.description, 2000);
                let parent = if c.parent.is_empty() {
                    None
                } else {
                    Some(parse_name("category.parent", &c.parent, "categories"))
                };
                if let Some(Err(_)) = &parent {
                    v.add("category.parent", "must be categories/{code}");
                }
                v.finish()?;
                caller.require(&[Role::RegistryAdmin])?;
                let parent = parent.transpose()?;
                if let Some(p) = &parent {
                    self.store
                        .get_category(p)
                        .await?
                        .ok_or_else(|| ServiceError::not_found("category", c.parent.clone()))?;
                }
                let at = to_stored(now());
                let row = CategoryRow {
                    code: c.code.clone(),
                    display_name: c.display_name.trim().to_owned(),
                    description: c.description.clone(),
                    parent,
                    active: 1,
                    version: 1,
                    create_time: at.clone(),
                    update_time: at,
                };
                self.store.create_category(&row).await?;
                row.to_proto().map_err(internal)
            }
            .await,
        )
    }

    async fn get_category(
        &self,
        request: Request<pb::GetCategoryRequest>,
    ) -> Result<Response<pb::Category>, Status> {
        let req = request.into_inner();
        respond(
            async {
                let code = parse_name("name", &req.name, "categories")?;
                let row = self
                    .store
                    .get_category(&code)
                    .await?
                    .ok_or_else(|| ServiceError::not_found("category", req.name.clone()))?;
                row.to_proto().map_err(internal)
            }
            .await,
        )
    }

    async fn list_categories(
        &self,
        request: Request<pb::ListCategoriesRequest>,
    ) -> Result<Response<pb::ListCategoriesResponse>, Status> {
        let req = request.into_inner();
        respond(
            async {
                let page = Page::parse(
                    req.page_size,
                    &req.page_token,
                    &format!("categories inactive={}", req.show_inactive),
                )?;
                let mut rows = self
                    .store
                    .list_categories(req.show_inactive, page.after.as_deref(), page.fetch_limit())
                    .await?;
                let next_page_token = page.finish(&mut rows, |r| r.code.clone());
                Ok(pb::ListCategoriesResponse {
                    categories: rows
                        .iter()
                        .map(CategoryRow::to_proto)
                        .collect::<Result<_, _>>()
                        .map_err(internal)?,
                    next_page_token,
                })
            }
            .await,
        )
    }

    async fn update_category(
        &self,
        request: Request<pb::UpdateCategoryRequest>,
    ) -> Result<Response<pb::Category>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let c = req.category.unwrap_or_default();
                let code = parse_name("category.name", &c.name, "categories")?;
                let paths: Vec<String> = req.update_mask.map(|m| m.paths).unwrap_or_default();
                let mut v = Violations::new();
                if paths.is_empty() {
                    v.add("update_mask", "must name the fields to change");
                }
                let expected = etag(&mut v, "category.etag", &c.etag);
                caller.require(&[Role::RegistryAdmin])?;
                let mut row = self
                    .store
                    .get_category(&code)
                    .await?
                    .ok_or_else(|| ServiceError::not_found("category", c.name.clone()))?;
                for path in &paths {
                    let field = format!("category.{path}");
                    match path.as_str() {
                        "display_name" => {
                            check::text(&mut v, &field, &c.display_name, 100);
                            row.display_name = c.display_name.trim().to_owned();
                        }
                        "description" => {
                            check::optional_text(&mut v, &field, &c.description, 2000);
                            row.description = c.description.clone();
                        }
                        "active" => row.active = i64::from(c.active),
                        "parent" => {
                            if c.parent.is_empty() {
                                row.parent = None;
                            } else {
                                match parse_name(&field, &c.parent, "categories") {
                                    Ok(p) => row.parent = Some(p),
                                    Err(_) => v.add(field, "must be categories/{code}"),
                                }
                            }
                        }
                        other => v.add(
                            "update_mask",
                            format!("{other:?} is not an updatable field"),
                        ),
                    }
                }
                v.finish()?;
                if row.version != expected {
                    return Err(ServiceError::stale_etag(&c.name));
                }
                // A parent chain must not lead back to the category itself.
                let mut ancestor = row.parent.clone();
                while let Some(a) = ancestor {
                    if a == row.code {
                        return Err(ServiceError::field(
                            "category.parent",
                            "would make the category its own ancestor",
                        ));
                    }
                    ancestor = self
                        .store
                        .get_category(&a)
                        .await?
                        .ok_or_else(|| {
                            ServiceError::not_found("category", format!("categories/{a}"))
                        })?
                        .parent;
                }
                row.update_time = to_stored(now());
                self.store.update_category(&row, expected, &paths).await?;
                row.version += 1;
                row.to_proto().map_err(internal)
            }
            .await,
        )
    }

    async fn create_expert(
        &self,
        request: Request<pb::CreateExpertRequest>,
    ) -> Result<Response<pb::Expert>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let e = req.expert.unwrap_or_default();
                let mut v = Violations::new();
                check::code(&mut v, "expert.expert_id", &e.expert_id);
                let mut expert = blank_expert(&e.expert_id);
                apply_expert(&mut v, "expert", &e, &EXPERT_FIELDS, &mut expert);
                caller.require(&[Role::RegistryAdmin])?;
                self.check_categories(&mut v, |i| format!("expert.categories[{i}]"), &e.categories)
                    .await?;
                v.finish()?;
                self.store
                    .save_expert(&expert, None, &EXPERT_FIELDS.map(str::to_owned))
                    .await?;
                tracing::info!(expert = %expert.row.id, "expert created");
                expert.to_proto(caller.role).map_err(internal)
            }
            .await,
        )
    }

    async fn get_expert(
        &self,
        request: Request<pb::GetExpertRequest>,
    ) -> Result<Response<pb::Expert>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let id = parse_name("name", &req.name, "experts")?;
                caller.require(&EXPERT_READERS)?;
                let expert = self
                    .store
                    .get_expert(&id)
                    .await?
                    .ok_or_else(|| ServiceError::not_found("expert", req.name.clone()))?;
                self.record_unmasked(&caller, std::slice::from_ref(&req.name))
                    .await?;
                expert.to_proto(caller.role).map_err(internal)
            }
            .await,
        )
    }

    async fn list_experts(
        &self,
        request: Request<pb::ListExpertsRequest>,
    ) -> Result<Response<pb::ListExpertsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let mut v = Violations::new();
                if !req.category.is_empty() {
                    check::code(&mut v, "category", &req.category);
                }
                let status = match pb::ExpertStatus::try_from(req.status) {
                    Ok(pb::ExpertStatus::Unspecified) => None,
                    Ok(s) => Some(enum_suffix(s.as_str_name(), "EXPERT_STATUS_")),
                    Err(_) => {
                        v.add("status", format!("{} is not a known value", req.status));
                        None
                    }
                };
                v.finish()?;
                caller.require(&EXPERT_READERS)?;
                let page = Page::parse(
                    req.page_size,
                    &req.page_token,
                    &format!("experts {} {status:?}", req.category),
                )?;
                let category = (!req.category.is_empty()).then_some(req.category.as_str());
                let mut rows = self
                    .store
                    .list_experts(category, status, page.after.as_deref(), page.fetch_limit())
                    .await?;
                let next_page_token = page.finish(&mut rows, |e| e.row.id.clone());
                let names: Vec<String> = rows
                    .iter()
                    .map(|e| format!("experts/{}", e.row.id))
                    .collect();
                self.record_unmasked(&caller, &names).await?;
                Ok(pb::ListExpertsResponse {
                    experts: rows
                        .iter()
                        .map(|e| e.to_proto(caller.role))
                        .collect::<Result<_, _>>()
                        .map_err(internal)?,
                    next_page_token,
                })
            }
            .await,
        )
    }

    async fn update_expert(
        &self,
        request: Request<pb::UpdateExpertRequest>,
    ) -> Result<Response<pb::Expert>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let e = req.expert.unwrap_or_default();
                let id = parse_name("expert.name", &e.name, "experts")?;
                let paths: Vec<String> = req.update_mask.map(|m| m.paths).unwrap_or_default();
                let mut v = Violations::new();
                if paths.is_empty() {
                    v.add("update_mask", "must name the fields to change");
                }
                let expected = etag(&mut v, "expert.etag", &e.etag);
                caller.require(&[Role::RegistryAdmin])?;
                let mut expert = self
                    .store
                    .get_expert(&id)
                    .await?
                    .ok_or_else(|| ServiceError::not_found("expert", e.name.clone()))?;
                let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
                apply_expert(&mut v, "expert", &e, &refs, &mut expert);
                if refs.contains(&"categories") {
                    self.check_categories(
                        &mut v,
                        |i| format!("expert.categories[{i}]"),
                        &e.categories,
                    )
                    .await?;
                }
                v.finish()?;
                if expert.row.version != expected {
                    return Err(ServiceError::stale_etag(&e.name));
                }
                expert.row.update_time = to_stored(now());
                self.store
                    .save_expert(&expert, Some(expected), &paths)
                    .await?;
                expert.row.version += 1;
                expert.to_proto(caller.role).map_err(internal)
            }
            .await,
        )
    }

    async fn suspend_expert(
        &self,
        request: Request<pb::ChangeExpertStatusRequest>,
    ) -> Result<Response<pb::Expert>, Status> {
        respond(
            self.change_status(request, &["ACTIVE"], "SUSPENDED", "SuspendExpert")
                .await,
        )
    }

    async fn reinstate_expert(
        &self,
        request: Request<pb::ChangeExpertStatusRequest>,
    ) -> Result<Response<pb::Expert>, Status> {
        respond(
            self.change_status(request, &["SUSPENDED"], "ACTIVE", "ReinstateExpert")
                .await,
        )
    }

    async fn retire_expert(
        &self,
        request: Request<pb::ChangeExpertStatusRequest>,
    ) -> Result<Response<pb::Expert>, Status> {
        respond(
            self.change_status(request, &["ACTIVE", "SUSPENDED"], "RETIRED", "RetireExpert")
                .await,
        )
    }

    async fn import_experts(
        &self,
        request: Request<pb::ImportExpertsRequest>,
    ) -> Result<Response<pb::ImportExpertsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                caller.require(&[Role::RegistryAdmin])?;
                let format =
                    pb::RosterFormat::try_from(req.format).unwrap_or(pb::RosterFormat::Unspecified);
                let rows = roster::parse(format, &req.content).map_err(|problems| {
                    let mut v = Violations::new();
                    for p in problems {
                        v.add(p.field, p.description);
                    }
                    v.finish()
                        .err()
                        .unwrap_or_else(|| ServiceError::field("content", "is not a roster"))
                })?;
                let ids: Vec<String> = rows.iter().map(|r| r.expert.expert_id.clone()).collect();
                let mut existing = self.store.experts_by_ids(&ids).await?;
                let mut codes: Vec<String> = rows
                    .iter()
                    .flat_map(|r| r.expert.categories.clone())
                    .collect();
                codes.sort();
                codes.dedup();
                let known = self.store.categories(&codes).await?;
                let mut all = Violations::new();
                let mut seen = BTreeSet::new();
                let mut experts = Vec::new();
                for row in &rows {
                    let mut v = Violations::new();
                    let prefix = format!("rows[{}]", row.line);
                    check::code(
                        &mut v,
                        &format!("{prefix}.expert_id"),
                        &row.expert.expert_id,
                    );
                    if !seen.insert(row.expert.expert_id.clone()) {
                        v.add(
                            format!("{prefix}.expert_id"),
                            "appears on an earlier line too",
                        );
                    }
                    // The version an update must find; None for a new expert.
                    let (mut expert, expected) = match existing.remove(&row.expert.expert_id) {
                        Some(e) => {
                            let version = e.row.version;
                            (e, Some(version))
                        }
                        None => (blank_expert(&row.expert.expert_id), None),
                    };
                    apply_expert(&mut v, &prefix, &row.expert, &EXPERT_FIELDS, &mut expert);
                    match pb::ExpertStatus::try_from(row.expert.status) {
                        Ok(s) if s != pb::ExpertStatus::Unspecified => {
                            expert.row.status =
                                enum_suffix(s.as_str_name(), "EXPERT_STATUS_").to_owned()
                        }
                        _ => v.add(
                            format!("{prefix}.status"),
                            "must be ACTIVE, SUSPENDED or RETIRED",
                        ),
                    }
                    category_violations(
                        &known,
                        &mut v,
                        |i| format!("{prefix}.categories[{i}]"),
                        &row.expert.categories,
                    );
                    if let Err(ServiceError::InvalidArgument(violations)) = v.finish() {
                        for x in violations {
                            // rows[7].employer.credit_code → the column it came from.
                            let path = x
                                .field
                                .strip_prefix(&format!("{prefix}."))
                                .unwrap_or(&x.field);
                            let key = path.split(['.', '[']).next().unwrap_or(path);
                            let key = if key == "employer"
                                && path.contains("name")
                                && !path.contains("credit_code")
                            {
                                "employer_name"
                            } else if key == "employer" {
                                "employer_credit_code"
                            } else {
                                key
                            };
                            let column = row
                                .columns
                                .get(key)
                                .cloned()
                                .unwrap_or_else(|| key.to_owned());
                            all.add(
                                x.field.clone(),
                                format!("line {}, {column}: {}", row.line, x.description),
                            );
                        }
                    }
                    expert.row.update_time = to_stored(now());
                    experts.push((expert, expected));
                }
                all.finish()?;
                let created = experts
                    .iter()
                    .filter(|(_, expected)| expected.is_none())
                    .count() as i32;
                let updated = experts.len() as i32 - created;
                if !req.validate_only {
                    let mut tx = translog::begin(&self.store.db).await?;
                    for (expert, expected) in &experts {
                        Store::write_expert(
                            &mut tx,
                            expert,
                            *expected,
                            &EXPERT_FIELDS.map(str::to_owned),
                        )
                        .await?;
                    }
                    tx.commit().await?;
                    tracing::info!(created, updated, "roster imported");
                }
                Ok(pb::ImportExpertsResponse { created, updated })
            }
            .await,
        )
    }

    async fn open_draw(
        &self,
        request: Request<pb::OpenDrawRequest>,
    ) -> Result<Response<pb::Draw>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let mut v = Violations::new();
                let project_id = v.resource_id("project", &req.project, "projects", false);
                let stage = match pb::ReviewStage::try_from(req.stage) {
                    Ok(pb::ReviewStage::Unspecified) | Err(_) => {
                        v.add("stage", "must be PRELIMINARY_REVIEW, IMPLEMENTATION_PLAN_REVIEW, ACCEPTANCE or POST_EVALUATION");
                        pb::ReviewStage::Unspecified
                    }
                    Ok(stage) => stage,
                };
                if req.requirements.is_empty() {
                    v.add("requirements", "must name at least one category");
                }
                let mut seen = BTreeSet::new();
                for (i, r) in req.requirements.iter().enumerate() {
                    check::code(&mut v, &format!("requirements[{i}].category"), &r.category);
                    if !seen.insert(r.category.as_str()) {
                        v.add(format!("requirements[{i}].category"), "appears twice");
                    }
                    if !(1..=50).contains(&r.count) {
                        v.add(
                            format!("requirements[{i}].count"),
                            "must be between 1 and 50",
                        );
                    }
                    if r.alternates < 0 || r.alternates as u32 > self.policy.max_alternates {
                        v.add(
                            format!("requirements[{i}].alternates"),
                            format!("must be between 0 and {}", self.policy.max_alternates),
                        );
                    }
                }
                for (i, org) in req.excluded_organizations.iter().enumerate() {
                    check::credit_code(&mut v, &format!("excluded_organizations[{i}]"), org);
                }
                for (i, e) in req.excluded_experts.iter().enumerate() {
                    check::code(
                        &mut v,
                        &format!("excluded_experts[{i}].expert_id"),
                        &e.expert_id,
                    );
                    check::text(
                        &mut v,
                        &format!("excluded_experts[{i}].reason"),
                        &e.reason,
                        500,
                    );
                }
                let meeting_date = check::date(&mut v, "meeting_date", req.meeting_date.as_ref());
                let supplements = if req.supplements.is_empty() {
                    None
                } else {
                    match parse_name("supplements", &req.supplements, "draws") {
                        Ok(id) => Some(id),
                        Err(_) => {
                            v.add("supplements", "must be draws/{id}");
                            None
                        }
                    }
                };
                if !req.request_id.is_empty() {
                    check::code(&mut v, "request_id", &req.request_id);
                }
                caller.require(&DRAW_RUNNERS)?;
                let categories: Vec<String> = req
                    .requirements
                    .iter()
                    .map(|r| r.category.clone())
                    .collect();
                if v.is_empty() {
                    self.check_categories(
                        &mut v,
                        |i| format!("requirements[{i}].category"),
                        &categories,
                    )
                    .await?;
                }
                let manual_ids: Vec<String> = req
                    .excluded_experts
                    .iter()
                    .map(|e| e.expert_id.clone())
                    .collect();
                if v.is_empty() && !manual_ids.is_empty() {
                    let known: BTreeSet<String> = self
                        .store
                        .existing_expert_ids(&manual_ids)
                        .await?
                        .into_iter()
                        .collect();
                    for (i, id) in manual_ids.iter().enumerate() {
                        if !known.contains(id) {
                            v.add(
                                format!("excluded_experts[{i}].expert_id"),
                                format!("no expert {id}"),
                            );
                        }
                    }
                }
                v.finish()?;
                let Some(meeting_date) = meeting_date else {
                    return Err(ServiceError::field("meeting_date", "is required"));
                };
                let mut requirements: Vec<Requirement> = req
                    .requirements
                    .iter()
                    .map(|r| Requirement {
                        category: r.category.clone(),
                        count: r.count as u64,
                        alternates: r.alternates as u64,
                    })
                    .collect();
                requirements.sort_by(|a, b| a.category.cmp(&b.category));
                let opened = self
                    .open_draw(OpenRequest {
                        project_id,
                        stage: stage.short_name().to_owned(),
                        requirements,
                        excluded_organizations: req
                            .excluded_organizations
                            .iter()
                            .map(|o| o.trim().to_owned())
                            .collect(),
                        manual: req
                            .excluded_experts
                            .iter()
                            .map(|e| ManualExclusion {
                                expert_id: e.expert_id.clone(),
                                reason: e.reason.clone(),
                            })
                            .collect(),
                        meeting_date,
                        supplements,
                        request_id: (!req.request_id.is_empty())
                            .then(|| idempotency::scoped_key(&caller, &req.request_id)),
                        request_hash: idempotency::request_hash(&pb::OpenDrawRequest {
                            validate_only: false,
                            ..req.clone()
                        }),
                        validate_only: req.validate_only,
                    })
                    .await?;
                match opened {
                    Some(d) => self.draw_response(&caller, d).await,
                    // What would be opened: nothing of it exists yet.
                    None => Ok(pb::Draw {
                        project: req.project.clone(),
                        stage: req.stage,
                        meeting_date: req.meeting_date,
                        supplements: req.supplements.clone(),
                        witness_required: self.policy.require_witness,
                        ..Default::default()
                    }),
                }
            }
            .await,
        )
    }

    async fn submit_witness_entropy(
        &self,
        request: Request<pb::SubmitWitnessEntropyRequest>,
    ) -> Result<Response<pb::Draw>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let mut v = Violations::new();
                let id = parse_name("name", &req.name, "draws");
                if id.is_err() {
                    v.add("name", "must be draws/{id}");
                }
                if req.witness_entropy.is_empty() {
                    v.add("witness_entropy", "must not be empty");
                } else if req.witness_entropy.len() > govit_draw::draw::MAX_WITNESS_BYTES {
                    v.add(
                        "witness_entropy",
                        format!("is {} bytes; at most 1024", req.witness_entropy.len()),
                    );
                } else if let Some(problem) =
                    govit_platform::validate::personal_data_problem(&req.witness_entropy)
                {
                    // The record that keeps it can never change: no personal data in it.
                    v.add("witness_entropy", problem);
                }
                v.finish()?;
                caller.require(&WITNESSES)?;
                let d = self.submit_witness(&id?, &req.witness_entropy).await?;
                self.draw_response(&caller, d).await
            }
            .await,
        )
    }

    async fn execute_draw(
        &self,
        request: Request<pb::ExecuteDrawRequest>,
    ) -> Result<Response<pb::Draw>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let id = parse_name("name", &req.name, "draws")?;
                caller.require(&DRAW_RUNNERS)?;
                let d = self.execute_draw(&id).await?;
                self.draw_response(&caller, d).await
            }
            .await,
        )
    }

    async fn get_draw(
        &self,
        request: Request<pb::GetDrawRequest>,
    ) -> Result<Response<pb::Draw>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let id = parse_name("name", &req.name, "draws")?;
                caller.require(&DRAW_FINDERS)?;
                let d = self.draw_or_not_found(&id).await?;
                self.draw_response(&caller, d).await
            }
            .await,
        )
    }

    async fn get_draw_record(
        &self,
        request: Request<pb::GetDrawRecordRequest>,
    ) -> Result<Response<pb::DrawRecord>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let id = parse_name("name", &req.name, "draws")?;
                caller.require(&DRAW_READERS)?;
                let d = self.draw_or_not_found(&id).await?;
                let record = Self::record_of(&d)?;
                Ok(pb::DrawRecord {
                    record_json: serde_json::to_string_pretty(&record).map_err(internal)?,
                    record_hash: d.record_hash.clone().unwrap_or_default(),
                })
            }
            .await,
        )
    }

    async fn list_draws(
        &self,
        request: Request<pb::ListDrawsRequest>,
    ) -> Result<Response<pb::ListDrawsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let mut v = Violations::new();
                let project_id = v.resource_id("project", &req.project, "projects", true);
                v.finish()?;
                // Supervisors list draws too, to find those waiting for their witness; they see
                // each draw's commitment and state only, as with GetDraw.
                caller.require(&DRAW_FINDERS)?;
                let page = Page::parse(
                    req.page_size,
                    &req.page_token,
                    &format!("draws {project_id}"),
                )?;
                let after = page.after.as_deref().map(|k| {
                    let (t, id) = k.split_once(' ').unwrap_or((k, ""));
                    (t.to_owned(), id.to_owned())
                });
                let project = (!project_id.is_empty()).then_some(project_id.as_str());
                let mut rows = self
                    .store
                    .list_draws(project, after, page.fetch_limit())
                    .await?;
                let next_page_token =
                    page.finish(&mut rows, |d| format!("{} {}", d.open_time, d.id));
                let mut draws = Vec::new();
                for d in rows {
                    draws.push(self.draw_response(&caller, d).await?);
                }
                Ok(pb::ListDrawsResponse {
                    draws,
                    next_page_token,
                })
            }
            .await,
        )
    }

    async fn replace_expert(
        &self,
        request: Request<pb::ReplaceExpertRequest>,
    ) -> Result<Response<pb::Draw>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(async {
            let mut v = Violations::new();
            let id = parse_name("name", &req.name, "draws");
            if id.is_err() {
                v.add("name", "must be draws/{id}");
            }
            check::code(&mut v, "category", &req.category);
            check::code(&mut v, "expert_id", &req.expert_id);
            let reason = match pb::ReplacementReason::try_from(req.reason) {
                Ok(pb::ReplacementReason::Unspecified) | Err(_) => {
                    v.add("reason", "must be DECLINED, UNREACHABLE, CONFLICT_DISCOVERED, UNAVAILABLE or OTHER");
                    ""
                }
                Ok(r) => enum_suffix(r.as_str_name(), "REPLACEMENT_REASON_"),
            };
            v.finish()?;
            // Review scheduling owns its panels: office replaces a member there
            // (ReplacePanelMember), so the registry and scheduling never disagree.
            caller.require(&[Role::Service])?;
            let key = (!req.request_id.is_empty()).then(|| idempotency::scoped_key(&caller, &req.request_id));
            let d = self.replace_expert(&id?, &req.category, &req.expert_id, reason, key.as_deref()).await?;
            self.draw_response(&caller, d).await
        }
        .await)
    }

    async fn cancel_draw(
        &self,
        request: Request<pb::CancelDrawRequest>,
    ) -> Result<Response<pb::Draw>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let mut v = Violations::new();
                let id = parse_name("name", &req.name, "draws");
                if id.is_err() {
                    v.add("name", "must be draws/{id}");
                }
                check::text(&mut v, "reason", &req.reason, 500);
                if let Some(problem) = govit_platform::validate::personal_data_problem(&req.reason)
                {
                    v.add("reason", problem);
                }
                let code = match pb::DrawCancelReason::try_from(req.reason_code) {
                    Ok(pb::DrawCancelReason::Unspecified) => pb::DrawCancelReason::Other,
                    Ok(code) => code,
                    Err(_) => {
                        v.add(
                            "reason_code",
                            format!("{} is not a known value", req.reason_code),
                        );
                        pb::DrawCancelReason::Other
                    }
                };
                v.finish()?;
                caller.require(&DRAW_RUNNERS)?;
                let code = code.as_str_name().trim_start_matches("DRAW_CANCEL_REASON_");
                let d = self.cancel_draw(&id?, &req.reason, code).await?;
                self.draw_response(&caller, d).await
            }
            .await,
        )
    }

    async fn record_review_service(
        &self,
        request: Request<pb::RecordReviewServiceRequest>,
    ) -> Result<Response<pb::Expert>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(async {
            let mut v = Violations::new();
            let id = parse_name("name", &req.name, "experts");
            if id.is_err() {
                v.add("name", "must be experts/{id}");
            }
            let review_id = v.resource_id("review", &req.review, "reviews", false);
            if !(1..=5).contains(&req.rating) {
                v.add("rating", "must be from 1 to 5");
            }
            check::optional_text(&mut v, "comment", &req.comment, 2000);
            v.finish()?;
            let id = id?;
            // Only review scheduling, whose reviews they are: office rates through it, and no one
            // else can pre-empt a review's record with a rating of their own.
            caller.require(&[Role::Service])?;
            self.store.get_expert(&id).await?.ok_or_else(|| ServiceError::not_found("expert", req.name.clone()))?;
            let mut tx = translog::begin(&self.store.db).await?;
            let inserted = sqlx::query("INSERT INTO expert_reviews (expert_id, review_id, rating, comment, create_time) VALUES ($1, $2, $3, $4, $5)")
                .bind(id.clone())
                .bind(review_id.clone())
                .bind(i64::from(req.rating))
                .bind(req.comment.clone())
                .bind(to_stored(now()))
                .execute(&mut *tx)
                .await;
            match inserted {
                // Recorded before: a redelivery changes nothing; a different record is refused.
                Err(e) if govit_platform::db::is_unique_violation(&e) => {
                    drop(tx);
                    let same = sqlx::query("SELECT 1 FROM expert_reviews WHERE expert_id = $1 AND review_id = $2 AND rating = $3 AND comment = $4")
                        .bind(id.clone())
                        .bind(review_id.clone())
                        .bind(i64::from(req.rating))
                        .bind(req.comment.clone())
                        .fetch_optional(&self.store.db.pool)
                        .await?;
                    if same.is_none() {
                        return Err(ServiceError::request_id_reused("review service", &format!("{}/reviews/{review_id}", req.name)));
                    }
                }
                Err(e) => return Err(e.into()),
                Ok(_) => {
                    sqlx::query(
                        "UPDATE experts SET reviews_count = reviews_count + 1, rating_count = rating_count + 1, \
                         rating_sum = rating_sum + $1 WHERE id = $2",
                    )
                    .bind(i64::from(req.rating))
                    .bind(id.clone())
                    .execute(&mut *tx)
                    .await?;
                    translog::append(&mut tx, serde_json::json!({"type": "review_service_recorded", "expert_id": id, "review_id": review_id}), None)
                        .await
                        .map_err(internal)?;
                    tx.commit().await?;
                }
            }
            let expert = self.store.get_expert(&id).await?.ok_or_else(|| ServiceError::not_found("expert", req.name.clone()))?;
            expert.to_proto(caller.role).map_err(internal)
        }
        .await)
    }

    async fn record_review_override(
        &self,
        request: Request<pb::RecordReviewOverrideRequest>,
    ) -> Result<Response<pb::RecordReviewOverrideResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let mut v = Violations::new();
                let (project, override_id) = match govit_platform::validate::child_ids(
                    &req.r#override,
                    "projects",
                    "overrides",
                ) {
                    Some((p, o)) => (p.to_owned(), o.to_owned()),
                    None => {
                        v.add("override", "must be projects/{code}/overrides/{id}");
                        (String::new(), String::new())
                    }
                };
                let review = v.resource_id("review", &req.review, "reviews", true);
                let stage = pb::ReviewStage::try_from(req.stage)
                    .ok()
                    .filter(|s| *s != pb::ReviewStage::Unspecified);
                let decision = pb::ReviewDecision::try_from(req.decision)
                    .ok()
                    .filter(|d| stage.is_some_and(|s| s.admits(*d)));
                if stage.is_none() {
                    v.add("stage", "must be a review stage");
                }
                if decision.is_none() {
                    v.add("decision", "must be a decision of the stage");
                }
                if req.reason_sha256.len() != 64
                    || !req.reason_sha256.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    v.add("reason_sha256", "must be 64 hex characters");
                }
                if !(1..=2).contains(&req.approvals) {
                    v.add("approvals", "must be 1 or 2");
                }
                v.finish()?;
                caller.require(&[Role::Service])?;
                let (Some(stage), Some(decision)) = (stage, decision) else {
                    return Err(ServiceError::field("stage", "is required"));
                };
                let mut tx = translog::begin(&self.store.db).await?;
                let seen: Option<i64> = sqlx::query_scalar(
                    "SELECT log_index FROM review_overrides WHERE override_name = $1",
                )
                .bind(req.r#override.clone())
                .fetch_optional(&mut *tx)
                .await?;
                if let Some(index) = seen {
                    return Ok(pb::RecordReviewOverrideResponse {
                        index: index as u64,
                    });
                }
                let index = translog::append(
                    &mut tx,
                    serde_json::json!({
                        "type": "review_outcome_overridden",
                        "project_id": project,
                        "override_id": override_id,
                        "review_id": review,
                        "stage": stage.short_name(),
                        "decision": decision.short_name(),
                        "reason_sha256": req.reason_sha256.to_ascii_lowercase(),
                        "approvals": req.approvals,
                    }),
                    None,
                )
                .await
                .map_err(internal)?;
                sqlx::query(
                    "INSERT INTO review_overrides (override_name, log_index) VALUES ($1, $2)",
                )
                .bind(req.r#override.clone())
                .bind(index)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                tracing::info!(r#override = %req.r#override, index, "review override logged");
                Ok(pb::RecordReviewOverrideResponse {
                    index: index as u64,
                })
            }
            .await,
        )
    }

    async fn list_read_events(
        &self,
        request: Request<govit_proto::common::v1::ListReadEventsRequest>,
    ) -> Result<Response<govit_proto::common::v1::ListReadEventsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(govit_platform::reads::list(&self.store.db, &caller, request.get_ref()).await)
    }

    async fn get_log_head(
        &self,
        request: Request<pb::GetLogHeadRequest>,
    ) -> Result<Response<pb::LogHead>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                caller.require(&LOG_READERS)?;
                let head = translog::head(&self.store.db, &self.key)
                    .await
                    .map_err(internal)?;
                Ok(pb::LogHead {
                    tree_size: head.tree_size,
                    root_hash: head.root_hash,
                    timestamp: head.timestamp,
                    signature: head.signature,
                    public_key: head.public_key,
                })
            }
            .await,
        )
    }

    async fn list_log_entries(
        &self,
        request: Request<pb::ListLogEntriesRequest>,
    ) -> Result<Response<pb::ListLogEntriesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let mut v = Violations::new();
                if req.limit > 1000 {
                    v.add("limit", "must be at most 1000");
                }
                if !req.draw_id.is_empty() {
                    check::code(&mut v, "draw_id", &req.draw_id);
                }
                v.finish()?;
                caller.require(&LOG_READERS)?;
                let limit = if req.limit == 0 { 100 } else { req.limit };
                let draw = (!req.draw_id.is_empty()).then_some(req.draw_id.as_str());
                let rows = translog::entries(&self.store.db, req.start, limit, draw)
                    .await
                    .map_err(internal)?;
                Ok(pb::ListLogEntriesResponse {
                    entries: rows
                        .into_iter()
                        .map(|r| pb::LogEntry {
                            index: r.idx as u64,
                            entry_json: r.entry,
                            leaf_hash: r.leaf_hash,
                        })
                        .collect(),
                })
            }
            .await,
        )
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProof>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                caller.require(&LOG_READERS)?;
                let size = translog::size(&self.store.db).await.map_err(internal)?;
                let mut v = Violations::new();
                if req.tree_size == 0 || req.tree_size > size {
                    v.add(
                        "tree_size",
                        format!("must be between 1 and the log's size, {size}"),
                    );
                }
                if req.index >= req.tree_size {
                    v.add("index", "must be below tree_size");
                }
                v.finish()?;
                let leaves = translog::leaves(&self.store.db, req.tree_size)
                    .await
                    .map_err(internal)?;
                let proof = merkle::inclusion_proof(req.index as usize, &leaves);
                Ok(pb::InclusionProof {
                    index: req.index,
                    tree_size: req.tree_size,
                    leaf_hash: hex::encode(leaves[req.index as usize]),
                    hashes: proof.iter().map(hex::encode).collect(),
                })
            }
            .await,
        )
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                caller.require(&LOG_READERS)?;
                let size = translog::size(&self.store.db).await.map_err(internal)?;
                let mut v = Violations::new();
                if req.new_size == 0 || req.new_size > size {
                    v.add(
                        "new_size",
                        format!("must be between 1 and the log's size, {size}"),
                    );
                }
                if req.old_size == 0 || req.old_size > req.new_size {
                    v.add("old_size", "must be between 1 and new_size");
                }
                v.finish()?;
                let leaves = translog::leaves(&self.store.db, req.new_size)
                    .await
                    .map_err(internal)?;
                let proof = merkle::consistency_proof(req.old_size as usize, &leaves);
                Ok(pb::ConsistencyProof {
                    old_size: req.old_size,
                    new_size: req.new_size,
                    hashes: proof.iter().map(hex::encode).collect(),
                })
            }
            .await,
        )
    }
}
