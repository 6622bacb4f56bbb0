//! Experts: creating, changing and reading them, and the machine of their status. Reads
//! unmask personal data for registry admins only, and record that they did.

use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, StateMachine, Violations,
    paging::Page,
    time::{date_to_stored, now, to_stored},
};
use govit_proto::{
    StoredEnum,
    experts::v1::{self as pb, ExpertStatus as S},
};

use crate::{
    ExpertsService, internal,
    model::{ExpertFull, ExpertRow, to_json},
    validation::{self as check, parse_name},
};

/// Every field of an expert its owner sets, in the order they are checked.
pub const EXPERT_FIELDS: [&str; 12] = [
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

/// A status change of an expert, with the RPC that asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpertEvent {
    Suspend,
    Reinstate,
    Retire,
}

impl ExpertEvent {
    fn rpc(self) -> &'static str {
        match self {
            ExpertEvent::Suspend => "SuspendExpert",
            ExpertEvent::Reinstate => "ReinstateExpert",
            ExpertEvent::Retire => "RetireExpert",
        }
    }

    /// Taking an expert out of the pool says why; bringing one back needs no reason.
    fn needs_reason(self) -> bool {
        self.target() != S::Active
    }
}

impl StateMachine for ExpertEvent {
    type State = S;

    fn sources(self) -> &'static [S] {
        match self {
            ExpertEvent::Suspend => &[S::Active],
            ExpertEvent::Reinstate => &[S::Suspended],
            ExpertEvent::Retire => &[S::Active, S::Suspended],
        }
    }

    fn target(self) -> S {
        match self {
            ExpertEvent::Suspend => S::Suspended,
            ExpertEvent::Reinstate => S::Active,
            ExpertEvent::Retire => S::Retired,
        }
    }

    fn refuse(self, subject: &str, from: S) -> ServiceError {
        let needed: Vec<&str> = self.sources().iter().map(|s| s.as_stored()).collect();
        ServiceError::precondition(
            "STATE_CONFLICT",
            subject,
            format!(
                "{subject} is {}; {} needs it to be {}",
                from.as_stored(),
                self.rpc(),
                needed.join(" or ")
            ),
        )
    }
}

/// The new values of the fields a request names, checked by the field rules. A value that
/// fails them is reported and, for enums and dates, not kept.
#[derive(Default)]
pub struct ExpertPatch {
    display_name: Option<String>,
    employer: Option<(String, String)>,
    source: Option<pb::ExpertSource>,
    title: Option<String>,
    categories: Option<Vec<String>>,
    phone: Option<String>,
    email: Option<String>,
    id_number: Option<String>,
    appointment_start: Option<String>,
    appointment_end: Option<String>,
    unavailable: Option<String>,
    conflicts: Option<String>,
}

impl ExpertPatch {
    /// Checks the fields of `e` named by `paths`, reporting under `prefix`.
    pub fn read(v: &mut Violations, prefix: &str, e: &pb::Expert, paths: &[&str]) -> Self {
        let mut patch = ExpertPatch::default();
        for path in paths {
            let field = format!("{prefix}.{path}");
            patch.read_field(v, &field, e, path);
        }
        patch
    }

    fn read_field(&mut self, v: &mut Violations, field: &str, e: &pb::Expert, path: &str) {
        match path {
            "display_name" => {
                check::text(v, field, &e.display_name, 100);
                self.display_name = Some(e.display_name.trim().to_owned());
            }
            "employer" => {
                let employer = e.employer.clone().unwrap_or_default();
                check::credit_code(v, &format!("{field}.credit_code"), &employer.credit_code);
                check::text(v, &format!("{field}.name"), &employer.name, 200);
                self.employer = Some((
                    employer.credit_code.trim().to_owned(),
                    employer.name.trim().to_owned(),
                ));
            }
            "source" => self.source = check::source(v, field, e.source),
            "title" => {
                check::optional_text(v, field, &e.title, 100);
                self.title = Some(e.title.trim().to_owned());
            }
            "categories" => {
                check::categories(v, field, &e.categories);
                let mut categories = e.categories.clone();
                categories.sort();
                categories.dedup();
                self.categories = Some(categories);
            }
            "phone" => {
                check::phone(v, field, e.phone.trim());
                self.phone = Some(e.phone.trim().to_owned());
            }
            "email" => {
                check::email(v, field, e.email.trim());
                self.email = Some(e.email.trim().to_owned());
            }
            "id_number" => {
                check::id_number(v, field, e.id_number.trim());
                self.id_number = Some(e.id_number.trim().to_owned());
            }
            "appointment_start_date" => {
                self.appointment_start =
                    check::date(v, field, e.appointment_start_date.as_ref()).map(date_to_stored);
            }
            "appointment_end_date" => {
                self.appointment_end =
                    check::date(v, field, e.appointment_end_date.as_ref()).map(date_to_stored);
            }
            "unavailable_periods" => {
                self.unavailable = Some(to_json(&check::periods(v, field, &e.unavailable_periods)))
            }
            "conflicts" => {
                self.conflicts = Some(to_json(&check::conflicts(v, field, &e.conflicts)))
            }
            other => check::not_updatable(v, other),
        }
    }

    /// Sets the patched fields on `target`, then checks that its term still runs forwards.
    pub fn apply_to(self, v: &mut Violations, prefix: &str, target: &mut ExpertFull) {
        let r = &mut target.row;
        let set = |slot: &mut String, value: Option<String>| {
            if let Some(value) = value {
                *slot = value;
            }
        };
        set(&mut r.display_name, self.display_name);
        if let Some((credit_code, name)) = self.employer {
            r.employer_credit_code = credit_code;
            r.employer_name = name;
        }
        if let Some(source) = self.source {
            r.source = source;
        }
        set(&mut r.title, self.title);
        if let Some(categories) = self.categories {
            target.categories = categories;
        }
        set(&mut r.phone, self.phone);
        set(&mut r.email, self.email);
        set(&mut r.id_number, self.id_number);
        set(&mut r.appointment_start, self.appointment_start);
        set(&mut r.appointment_end, self.appointment_end);
        set(&mut r.unavailable, self.unavailable);
        set(&mut r.conflicts, self.conflicts);
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
}

/// An expert as it starts, before the fields of its request are set. Its source is
/// unspecified until then: a request without one is refused, so it is never stored.
pub fn new_expert_draft(id: &str) -> ExpertFull {
    let at = to_stored(now());
    ExpertFull {
        row: ExpertRow {
            id: id.to_owned(),
            display_name: String::new(),
            employer_credit_code: String::new(),
            employer_name: String::new(),
            source: pb::ExpertSource::Unspecified,
            title: String::new(),
            phone: String::new(),
            email: String::new(),
            id_number: String::new(),
            appointment_start: String::new(),
            appointment_end: String::new(),
            status: S::Active,
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

/// A new expert. `problems` holds what the field rules found; whether the categories exist
/// is checked against the store and reported with them.
pub struct NewExpert {
    expert: ExpertFull,
    /// The categories as requested, so that violations name their positions.
    requested_categories: Vec<String>,
    problems: Violations,
}

impl TryFrom<pb::CreateExpertRequest> for NewExpert {
    type Error = ServiceError;

    fn try_from(req: pb::CreateExpertRequest) -> ServiceResult<Self> {
        let e = req.expert.unwrap_or_default();
        let mut problems = Violations::new();
        check::code(&mut problems, "expert.expert_id", &e.expert_id);
        let mut expert = new_expert_draft(&e.expert_id);
        ExpertPatch::read(&mut problems, "expert", &e, &EXPERT_FIELDS).apply_to(
            &mut problems,
            "expert",
            &mut expert,
        );
        Ok(NewExpert {
            expert,
            requested_categories: e.categories,
            problems,
        })
    }
}

/// A change to an expert. `problems` holds what is wrong with the mask and the etag and what
/// the field rules found; they are reported once the expert is found, with what needs it (its
/// term, its categories).
pub struct ExpertChange {
    id: String,
    name: String,
    paths: Vec<String>,
    expected: i64,
    patch: ExpertPatch,
    /// The categories as requested when the mask names them, so that violations name their
    /// positions.
    requested_categories: Option<Vec<String>>,
    problems: Violations,
}

impl TryFrom<pb::UpdateExpertRequest> for ExpertChange {
    type Error = ServiceError;

    fn try_from(req: pb::UpdateExpertRequest) -> ServiceResult<Self> {
        let e = req.expert.unwrap_or_default();
        let id = parse_name("expert.name", &e.name, "experts")?;
        let mut problems = Violations::new();
        let paths = check::mask_paths(&mut problems, req.update_mask);
        let expected = check::etag(&mut problems, "expert.etag", &e.etag);
        let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
        let patch = ExpertPatch::read(&mut problems, "expert", &e, &refs);
        let requested_categories = refs.contains(&"categories").then_some(e.categories);
        Ok(ExpertChange {
            id,
            name: e.name,
            paths,
            expected,
            patch,
            requested_categories,
            problems,
        })
    }
}

/// Suspending, reinstating or retiring an expert.
pub struct StatusChange {
    id: String,
    name: String,
    expected: i64,
    event: ExpertEvent,
}

/// Suspending, reinstating and retiring an expert ask for the same fields.
pub(crate) struct StatusRequest {
    name: String,
    etag: String,
    reason: String,
}

macro_rules! status_request_from {
    ($($request:ty),+) => {$(
        impl From<$request> for StatusRequest {
            fn from(req: $request) -> Self {
                StatusRequest {
                    name: req.name,
                    etag: req.etag,
                    reason: req.reason,
                }
            }
        }
    )+};
}

status_request_from!(
    pb::SuspendExpertRequest,
    pb::ReinstateExpertRequest,
    pb::RetireExpertRequest
);

impl TryFrom<(StatusRequest, ExpertEvent)> for StatusChange {
    type Error = ServiceError;

    fn try_from((req, event): (StatusRequest, ExpertEvent)) -> ServiceResult<Self> {
        let mut v = Violations::new();
        let id = parse_name("name", &req.name, "experts");
        if let Err(ServiceError::InvalidArgument(vs)) = &id {
            for x in vs {
                v.add(x.field.clone(), x.description.clone());
            }
        }
        let expected = check::etag(&mut v, "etag", &req.etag);
        if event.needs_reason() {
            check::text(&mut v, "reason", &req.reason, 500);
        }
        v.finish()?;
        Ok(StatusChange {
            id: id?,
            name: req.name,
            expected,
            event,
        })
    }
}

/// Which experts a page lists.
pub struct ExpertQuery {
    category: String,
    status: Option<S>,
    page_size: i32,
    page_token: String,
}

impl TryFrom<pb::ListExpertsRequest> for ExpertQuery {
    type Error = ServiceError;

    fn try_from(req: pb::ListExpertsRequest) -> ServiceResult<Self> {
        let mut v = Violations::new();
        if !req.category.is_empty() {
            check::code(&mut v, "category", &req.category);
        }
        let status = match S::try_from(req.status) {
            Ok(S::Unspecified) => None,
            Ok(s) => Some(s),
            Err(_) => {
                v.add("status", format!("{} is not a known value", req.status));
                None
            }
        };
        v.finish()?;
        Ok(ExpertQuery {
            category: req.category,
            status,
            page_size: req.page_size,
            page_token: req.page_token,
        })
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

    pub(crate) async fn add_expert(
        &self,
        caller: &Caller,
        new: NewExpert,
    ) -> ServiceResult<pb::Expert> {
        let NewExpert {
            expert,
            requested_categories,
            mut problems,
        } = new;
        self.check_categories(
            &mut problems,
            |i| format!("expert.categories[{i}]"),
            &requested_categories,
        )
        .await?;
        problems.finish()?;
        self.store
            .save_expert(&expert, None, &EXPERT_FIELDS.map(str::to_owned))
            .await?;
        tracing::info!(expert = %expert.row.id, "expert created");
        expert.to_proto(caller.role).map_err(internal)
    }

    pub(crate) async fn expert_named(
        &self,
        caller: &Caller,
        id: &str,
        name: &str,
    ) -> ServiceResult<pb::Expert> {
        let expert = self
            .store
            .get_expert(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("expert", name.to_owned()))?;
        self.record_unmasked(caller, &[name.to_owned()]).await?;
        expert.to_proto(caller.role).map_err(internal)
    }

    pub(crate) async fn expert_page(
        &self,
        caller: &Caller,
        q: ExpertQuery,
    ) -> ServiceResult<pb::ListExpertsResponse> {
        let status = q.status.map(StoredEnum::as_stored);
        let page = Page::parse(
            q.page_size,
            &q.page_token,
            &format!("experts {} {status:?}", q.category),
        )?;
        let category = (!q.category.is_empty()).then_some(q.category.as_str());
        let mut rows = self
            .store
            .list_experts(
                category,
                q.status,
                page.after.as_deref(),
                page.fetch_limit(),
            )
            .await?;
        let next_page_token = page.finish(&mut rows, |e| e.row.id.clone());
        let names: Vec<String> = rows
            .iter()
            .map(|e| format!("experts/{}", e.row.id))
            .collect();
        self.record_unmasked(caller, &names).await?;
        Ok(pb::ListExpertsResponse {
            experts: rows
                .iter()
                .map(|e| e.to_proto(caller.role))
                .collect::<Result<_, _>>()
                .map_err(internal)?,
            next_page_token,
        })
    }

    pub(crate) async fn change_expert(
        &self,
        caller: &Caller,
        change: ExpertChange,
    ) -> ServiceResult<pb::Expert> {
        let ExpertChange {
            id,
            name,
            paths,
            expected,
            patch,
            requested_categories,
            mut problems,
        } = change;
        let mut expert = self
            .store
            .get_expert(&id)
            .await?
            .ok_or_else(|| ServiceError::not_found("expert", name.clone()))?;
        patch.apply_to(&mut problems, "expert", &mut expert);
        if let Some(categories) = requested_categories {
            self.check_categories(
                &mut problems,
                |i| format!("expert.categories[{i}]"),
                &categories,
            )
            .await?;
        }
        problems.finish()?;
        if expert.row.version != expected {
            return Err(ServiceError::stale_etag(&name));
        }
        expert.row.update_time = to_stored(now());
        self.store
            .save_expert(&expert, Some(expected), &paths)
            .await?;
        expert.row.version += 1;
        expert.to_proto(caller.role).map_err(internal)
    }

    pub(crate) async fn move_expert_status(
        &self,
        caller: &Caller,
        change: StatusChange,
    ) -> ServiceResult<pb::Expert> {
        let mut expert = self
            .store
            .get_expert(&change.id)
            .await?
            .ok_or_else(|| ServiceError::not_found("expert", change.name.clone()))?;
        if expert.row.version != change.expected {
            return Err(ServiceError::stale_etag(&change.name));
        }
        change.event.check(&change.name, expert.row.status)?;
        expert.row.status = change.event.target();
        expert.row.update_time = to_stored(now());
        self.store
            .move_expert(&expert, change.event, change.expected)
            .await?;
        expert.row.version += 1;
        expert.to_proto(caller.role).map_err(internal)
    }
}
