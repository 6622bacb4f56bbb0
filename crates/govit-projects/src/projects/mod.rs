//! Projects: who may see one, their records (create, read, list, edit), and the lifecycle
//! engine that takes every transition of [`crate::lifecycle`] the same way: the caller, the
//! etag, the state, the action's own data, then one write with the effects the action
//! carries.

mod actions;
mod duplicates;
mod events;
mod records;

use govit_platform::{Caller, Role, ServiceError, ServiceResult, Violations};
use govit_proto::{
    StoredEnum,
    projects::v1::{self as pb, ProjectState as S},
};

use crate::{
    ProjectsService,
    lifecycle::Action,
    model::{DocumentRow, Nullable, ProjectCode, ProjectRow},
    store::{Extra, NewEvent},
    validation as check,
};

pub(crate) use actions::Step;
pub(crate) use events::EventQuery;
pub(crate) use records::{NewProject, ProjectEdit, ProjectQuery};

/// Roles that may create and edit projects; applicants only their own organisation's.
pub(crate) const PROJECT_WRITERS: [Role; 2] = [Role::Applicant, Role::Office];

/// Roles that may read projects at all; applicants only their own organisation's.
pub(crate) const PROJECT_READERS: [Role; 5] = [
    Role::Applicant,
    Role::Office,
    Role::Supervisor,
    Role::Inspector,
    Role::Service,
];

fn internal(e: anyhow::Error) -> ServiceError {
    ServiceError::Internal(e)
}

/// The project a transition is about, and the etag its caller read (if the action needs one or
/// the caller sent one).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    code: ProjectCode,
    expected: Option<i64>,
}

impl Target {
    pub fn code(&self) -> &ProjectCode {
        &self.code
    }

    /// Reads `name` and `etag` into `v`, after the request's own fields, by the action's etag
    /// rule.
    pub fn parse(v: &mut Violations, name: &str, etag: &str, action: Action) -> Option<Target> {
        let code = check::project_name_into(v, "name", name);
        let expected = if etag.is_empty() && !action.etag_required() {
            None
        } else {
            check::etag_into(v, "etag", etag)
        };
        Some(Target {
            code: code?,
            expected,
        })
    }

    /// [`Target::parse`] for a request whose other fields were checked already.
    pub fn parse_alone(name: &str, etag: &str, action: Action) -> ServiceResult<Target> {
        let mut v = Violations::new();
        let target = Target::parse(&mut v, name, etag, action);
        v.finish()?;
        target.ok_or_else(|| ServiceError::field("name", "is required"))
    }

    /// A project this service moves on its own account, as it is now.
    pub fn without_etag(code: &ProjectCode) -> Target {
        Target {
            code: code.to_owned(),
            expected: None,
        }
    }
}

/// Sets an action's own data on the project and its audit event, and may refuse with a guard
/// that reads the project's documents.
pub(crate) type Apply =
    Box<dyn FnOnce(&mut ProjectRow, &mut NewEvent, &[DocumentRow]) -> ServiceResult<()> + Send>;

/// What a transition changes beyond the state: the action's data, and what else it writes in
/// its transaction (a review outcome, an override taking effect).
pub(crate) struct Change {
    apply: Apply,
    extras: Vec<Extra>,
}

impl Change {
    pub fn new(
        apply: impl FnOnce(&mut ProjectRow, &mut NewEvent, &[DocumentRow]) -> ServiceResult<()>
        + Send
        + 'static,
    ) -> Self {
        Change {
            apply: Box::new(apply),
            extras: Vec::new(),
        }
    }

    pub fn with(mut self, extras: Vec<Extra>) -> Self {
        self.extras = extras;
        self
    }
}

/// The approved investment (概算) is fixed when the action says so: the preliminary review's
/// approval, which also writes the first budget baseline.
pub(crate) fn budget_effect(action: Action, row: &mut ProjectRow) -> Option<Extra> {
    if !action.fixes_budget() {
        return None;
    }
    row.approved_budget_fen = Some(row.estimated_investment_fen);
    row.original_approved_fen = Some(row.estimated_investment_fen);
    Some(Extra::FirstBaseline {
        budget: row.estimated_investment_fen,
    })
}

impl ProjectsService {
    /// The project if the caller may see it. Applicants asking about another organisation's
    /// project get PERMISSION_DENIED whether it exists or not, so codes reveal nothing.
    pub(crate) async fn visible_project(
        &self,
        caller: &Caller,
        code: &ProjectCode,
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
            (_, None) => Err(ServiceError::not_found("project", code.name())),
        }
    }

    /// Takes one lifecycle transition: checks the caller, the etag and the state, applies the
    /// action's data, and writes the move with the effects the action carries.
    pub(crate) async fn run_transition(
        &self,
        caller: &Caller,
        target: Target,
        action: Action,
        change: Change,
    ) -> ServiceResult<pb::Project> {
        caller.require(action.roles())?;
        let mut row = self.visible_project(caller, &target.code).await?;
        if let Some(expected) = target.expected
            && expected != row.version
        {
            return Err(ServiceError::stale_etag(&row.name()));
        }
        let from = row.state;
        if !action.sources().contains(&from) {
            return Err(action.refuse(&row.name(), from));
        }
        let to = action.target(from, row.suspended_from.0).ok_or_else(|| {
            ServiceError::field("decision", "does not apply to this review stage")
        })?;
        let documents = if action.needs_documents() {
            self.store.all_documents(&target.code).await?
        } else {
            Vec::new()
        };
        let mut event = NewEvent {
            action: action.name().into(),
            from_state: Some(from),
            to_state: Some(to),
            ..NewEvent::default()
        };
        (change.apply)(&mut row, &mut event, &documents)?;
        self.write_transition(caller, row, action, (from, to), event, change.extras)
            .await
    }

    /// Writes the move `from → to` of `row`, with the review message and budget baseline the
    /// action carries.
    async fn write_transition(
        &self,
        caller: &Caller,
        mut row: ProjectRow,
        action: Action,
        (from, to): (S, S),
        event: NewEvent,
        mut extras: Vec<Extra>,
    ) -> ServiceResult<pb::Project> {
        row.suspended_from = Nullable(Some(from).filter(|_| action.remembers_source()));
        row.state = to;
        extras.extend(self.review_messages(action, from, to, &mut row).await?);
        extras.extend(budget_effect(action, &mut row));
        let version = row.version;
        let saved = self
            .store
            .move_project(row, (version, from), caller, event, extras)
            .await?;
        tracing::info!(project = %saved.code, action = action.name(), to = to.as_stored(), "project transition");
        saved.to_proto().map_err(internal)
    }

    /// Writes a change of `row` that is not a move of its state, at the version it was read.
    pub(crate) async fn write_as_read(
        &self,
        row: ProjectRow,
        caller: &Caller,
        event: NewEvent,
        extras: Vec<Extra>,
    ) -> ServiceResult<pb::Project> {
        let version = row.version;
        self.store
            .write_project(row, version, caller, event, extras)
            .await?
            .to_proto()
            .map_err(internal)
    }
}
