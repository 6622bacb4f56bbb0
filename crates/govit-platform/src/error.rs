//! The one mapping from domain errors to gRPC status. Handlers return [`ServiceError`]; only
//! this module decides codes and `google.rpc` details. Every status carries a
//! `google.rpc.ErrorInfo` with domain [`DOMAIN`] and a stable reason, so callers (the other
//! services included) branch on the reason, never on the message.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
pub use tonic_types::{FieldViolation, PreconditionViolation};

/// The `google.rpc.ErrorInfo` domain of every govit error.
pub const DOMAIN: &str = "govit";

/// The stable `ErrorInfo` reasons that are not a precondition's own (those are named where they
/// are raised, e.g. `ALTERNATES_EXHAUSTED`). docs/api.md lists them all.
pub mod reason {
    pub const INVALID_ARGUMENT: &str = "INVALID_ARGUMENT";
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const ALREADY_EXISTS: &str = "ALREADY_EXISTS";
    pub const STATE_CONFLICT: &str = "STATE_CONFLICT";
    pub const CONCURRENT_MODIFICATION: &str = "CONCURRENT_MODIFICATION";
    pub const PERMISSION_DENIED: &str = "PERMISSION_DENIED";
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub const PEER_UNAVAILABLE: &str = "PEER_UNAVAILABLE";
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    pub const DEADLINE_EXCEEDED: &str = "DEADLINE_EXCEEDED";
    pub const INTERNAL: &str = "INTERNAL";
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The request itself is wrong: each violation names a field.
    #[error("invalid request")]
    InvalidArgument(Vec<FieldViolation>),
    /// The thing named does not exist (or the caller may not know that it does).
    #[error("{resource_type} {name} not found")]
    NotFound {
        resource_type: &'static str,
        name: String,
    },
    /// The thing exists already.
    #[error("{resource_type} {name} already exists")]
    AlreadyExists {
        resource_type: &'static str,
        name: String,
    },
    /// The resource is in the wrong state for this request. The `ErrorInfo` reason is the
    /// first violation's type.
    #[error("{message}")]
    FailedPrecondition {
        message: String,
        violations: Vec<PreconditionViolation>,
    },
    /// A status made elsewhere: a peer service's refusal passed on to this service's caller
    /// with its code and details (the request was wrong in a way only the peer could tell), or
    /// one with a reason of its own ([`ServiceError::request_id_reused`]).
    #[error("{}", .0.message())]
    Relayed(Status),
    /// The caller's etag is stale, or a concurrent change won.
    #[error("{0}")]
    Aborted(String),
    #[error("{0}")]
    PermissionDenied(String),
    #[error("{0}")]
    Unauthenticated(String),
    /// A service this one depends on cannot be reached; the client may retry.
    #[error("{0}")]
    Unavailable(String),
    /// The caller sent more calls than its rate allows; it may retry after `retry_after`.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after: std::time::Duration,
    },
    /// A bug or an outage. Logged with context; the client sees only an opaque message.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type ServiceResult<T> = Result<T, ServiceError>;

impl ServiceError {
    pub fn field(field: impl Into<String>, description: impl Into<String>) -> Self {
        ServiceError::InvalidArgument(vec![FieldViolation::new(field, description)])
    }

    pub fn not_found(resource_type: &'static str, name: impl Into<String>) -> Self {
        ServiceError::NotFound {
            resource_type,
            name: name.into(),
        }
    }

    /// A wrong state: `kind` is a short machine-readable type such as `STATE`,
    /// `subject` the resource name.
    pub fn precondition(
        kind: &str,
        subject: impl Into<String>,
        description: impl Into<String>,
    ) -> Self {
        let description = description.into();
        ServiceError::FailedPrecondition {
            message: description.clone(),
            violations: vec![PreconditionViolation::new(kind, subject, description)],
        }
    }

    pub fn stale_etag(name: &str) -> Self {
        ServiceError::Aborted(format!(
            "{name} was changed since the etag was read; read it again and retry"
        ))
    }
}

/// The `google.rpc.ErrorInfo` reason of a status, when it carries one of govit's.
pub fn status_reason(status: &Status) -> Option<String> {
    status
        .get_error_details()
        .error_info()
        .filter(|info| info.domain == DOMAIN)
        .map(|info| info.reason.clone())
}

/// The `google.rpc.BadRequest` field violations of a status, if it carries any.
pub fn field_violations(status: &Status) -> Vec<FieldViolation> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| b.field_violations.clone())
        .unwrap_or_default()
}

/// Whether a peer's status is worth retrying: the peer or the network was in the way, not the
/// request. UNKNOWN and CANCELLED are what a broken connection looks like to the client;
/// govit's own handlers never answer them.
pub fn is_transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::Cancelled
            | Code::Unknown
    )
}

/// Whether a peer's status is its final word on the request itself: the same request will be
/// refused again, whenever it is sent.
pub fn is_final(code: Code) -> bool {
    matches!(
        code,
        Code::InvalidArgument
            | Code::FailedPrecondition
            | Code::NotFound
            | Code::AlreadyExists
            | Code::OutOfRange
    )
}

impl ServiceError {
    /// A refusal with a reason and metadata of its own, for clients to act on (where an upload
    /// continues, which method a request id was used with).
    pub fn with_reason(
        code: Code,
        reason: &str,
        message: impl Into<String>,
        metadata: &[(&str, &str)],
    ) -> ServiceError {
        ServiceError::Relayed(with_info(code, message.into(), reason, metadata))
    }

    /// An idempotency key sent again by another caller or with another request: refused, so a
    /// key can neither be pre-empted nor replayed with different content.
    pub fn request_id_reused(resource_type: &'static str, name: &str) -> ServiceError {
        let mut details = info(
            "REQUEST_ID_REUSED",
            &[("resource_type", resource_type), ("resource_name", name)],
        );
        details.set_resource_info(resource_type, name, "", "created by another request");
        ServiceError::Relayed(Status::with_error_details(
            Code::AlreadyExists,
            format!(
                "{name} was created by another request; send a new id for a new request, or the same request to read it"
            ),
            details,
        ))
    }

    /// What a peer's refusal means to this service's caller: an unreachable peer is
    /// UNAVAILABLE; a refusal of the request's content is passed on as it came; anything else
    /// (a refused service token, a peer's internal error) is this deployment's fault.
    pub fn from_peer(peer: &str, status: Status) -> ServiceError {
        match status.code() {
            code if is_transient(code) => ServiceError::Unavailable(format!(
                "the {peer} cannot be reached ({}); nothing was changed, try again",
                status.message()
            )),
            code if is_final(code) => {
                // Code, message and details only: the peer's own headers are not ours to send.
                ServiceError::Relayed(Status::with_details(
                    status.code(),
                    status.message().to_owned(),
                    status.details().to_vec().into(),
                ))
            }
            code => ServiceError::Internal(anyhow::anyhow!(
                "the {peer} answered {code:?}: {}",
                status.message()
            )),
        }
    }
}

impl From<rusqlite::Error> for ServiceError {
    fn from(err: rusqlite::Error) -> Self {
        ServiceError::Internal(anyhow::Error::new(err).context("database error"))
    }
}

impl From<sqlx::Error> for ServiceError {
    fn from(err: sqlx::Error) -> Self {
        ServiceError::Internal(anyhow::Error::new(err).context("database error"))
    }
}

/// At most this many violations in one answer, each text at most this long: a huge bad request
/// must not make an answer larger than clients accept.
const MAX_VIOLATIONS: usize = 50;
const MAX_DETAIL_CHARS: usize = 300;

fn clip(text: &str) -> String {
    if text.chars().count() <= MAX_DETAIL_CHARS {
        text.to_owned()
    } else {
        let mut clipped: String = text.chars().take(MAX_DETAIL_CHARS).collect();
        clipped.push('…');
        clipped
    }
}

fn bounded(violations: Vec<FieldViolation>) -> Vec<FieldViolation> {
    let total = violations.len();
    let mut kept: Vec<FieldViolation> = violations
        .into_iter()
        .take(MAX_VIOLATIONS)
        .map(|v| FieldViolation::new(clip(&v.field), clip(&v.description)))
        .collect();
    if total > MAX_VIOLATIONS {
        kept.push(FieldViolation::new(
            "",
            format!("and {} more violations not listed", total - MAX_VIOLATIONS),
        ));
    }
    kept
}

fn info(reason: &str, metadata: &[(&str, &str)]) -> ErrorDetails {
    ErrorDetails::with_error_info(
        reason,
        DOMAIN,
        metadata
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
    )
}

/// A call that sent no deadline and outlasted the server's default one.
pub fn default_deadline_exceeded(deadline: std::time::Duration) -> Status {
    with_info(
        Code::DeadlineExceeded,
        format!(
            "the call took longer than the server's default deadline of {} ms; a client that \
             needs longer sends its own deadline (grpc-timeout)",
            deadline.as_millis()
        ),
        reason::DEADLINE_EXCEEDED,
        &[],
    )
}

fn with_info(code: Code, message: String, reason: &str, metadata: &[(&str, &str)]) -> Status {
    Status::with_error_details(code, message, info(reason, metadata))
}

fn invalid_argument(violations: Vec<FieldViolation>) -> Status {
    let violations = bounded(violations);
    // The details list every violation; the message, which travels in a header beside them,
    // names the first few.
    const IN_MESSAGE: usize = 5;
    let mut summary = violations
        .iter()
        .take(IN_MESSAGE)
        .map(|v| format!("{}: {}", v.field, v.description))
        .collect::<Vec<_>>()
        .join("; ");
    if violations.len() > IN_MESSAGE {
        summary.push_str(&format!(
            "; and {} more in the details",
            violations.len() - IN_MESSAGE
        ));
    }
    let mut details = info(reason::INVALID_ARGUMENT, &[]);
    details.set_bad_request(violations);
    Status::with_error_details(
        Code::InvalidArgument,
        format!("invalid request: {summary}"),
        details,
    )
}

/// The first violation's type is the reason, and its subject the ErrorInfo's.
fn failed_precondition(message: &str, violations: Vec<PreconditionViolation>) -> Status {
    let violations: Vec<PreconditionViolation> = violations
        .into_iter()
        .take(MAX_VIOLATIONS)
        .map(|v| PreconditionViolation::new(v.r#type, clip(&v.subject), clip(&v.description)))
        .collect();
    let first = violations.first();
    let reason = first
        .map(|v| v.r#type.clone())
        .unwrap_or_else(|| reason::STATE_CONFLICT.to_owned());
    let subject = first.map(|v| v.subject.clone()).unwrap_or_default();
    let mut details = info(&reason, &[("subject", &subject)]);
    details.set_precondition_failure(violations);
    Status::with_error_details(Code::FailedPrecondition, clip(message), details)
}

impl From<ServiceError> for Status {
    fn from(err: ServiceError) -> Status {
        match err {
            ServiceError::InvalidArgument(violations) => invalid_argument(violations),
            ServiceError::NotFound {
                resource_type,
                name,
            } => {
                let mut details = info(
                    reason::NOT_FOUND,
                    &[("resource_type", resource_type), ("resource_name", &name)],
                );
                details.set_resource_info(resource_type, name.clone(), "", "not found");
                Status::with_error_details(
                    Code::NotFound,
                    format!("{resource_type} {name} not found"),
                    details,
                )
            }
            ServiceError::AlreadyExists {
                resource_type,
                name,
            } => {
                let mut details = info(
                    reason::ALREADY_EXISTS,
                    &[("resource_type", resource_type), ("resource_name", &name)],
                );
                details.set_resource_info(resource_type, name.clone(), "", "already exists");
                Status::with_error_details(
                    Code::AlreadyExists,
                    format!("{resource_type} {name} already exists"),
                    details,
                )
            }
            ServiceError::FailedPrecondition {
                message,
                violations,
            } => failed_precondition(&message, violations),
            ServiceError::Relayed(status) => status,
            ServiceError::Aborted(message) => {
                with_info(Code::Aborted, message, reason::CONCURRENT_MODIFICATION, &[])
            }
            ServiceError::PermissionDenied(message) => with_info(
                Code::PermissionDenied,
                message,
                reason::PERMISSION_DENIED,
                &[],
            ),
            ServiceError::Unauthenticated(message) => {
                with_info(Code::Unauthenticated, message, reason::UNAUTHENTICATED, &[])
            }
            ServiceError::Unavailable(message) => {
                with_info(Code::Unavailable, message, reason::PEER_UNAVAILABLE, &[])
            }
            ServiceError::RateLimited {
                message,
                retry_after,
            } => {
                let mut details = info(reason::RATE_LIMITED, &[]);
                details.set_retry_info(Some(retry_after));
                Status::with_error_details(Code::ResourceExhausted, message, details)
            }
            ServiceError::Internal(err) => {
                tracing::error!(error = ?err, "internal error");
                with_info(
                    Code::Internal,
                    "internal error".into(),
                    reason::INTERNAL,
                    &[],
                )
            }
        }
    }
}

/// The status a request that never reached a handler deserves. tonic answers an undecodable
/// body INTERNAL and an oversize one OUT_OF_RANGE; both are the client's doing, so they become
/// INVALID_ARGUMENT and RESOURCE_EXHAUSTED, with ErrorInfo like every other error.
pub fn codec_status(status: &Status) -> Option<Status> {
    let message = status.message();
    match status.code() {
        Code::Internal if message.starts_with("failed to decode") => {
            Some(Status::from(ServiceError::field(
                "",
                format!(
                    "the request body is not a message of this method ({})",
                    clip(message)
                ),
            )))
        }
        Code::OutOfRange if message.contains("message length too large") => Some(with_info(
            Code::ResourceExhausted,
            clip(message),
            "MESSAGE_TOO_LARGE",
            &[],
        )),
        _ => None,
    }
}

/// A handler's result as tonic wants it: every RPC ends here.
pub fn respond<T>(result: ServiceResult<T>) -> Result<tonic::Response<T>, Status> {
    result.map(tonic::Response::new).map_err(Status::from)
}

/// Collects every field violation of a request, so the client learns all of them at once.
#[derive(Debug, Default)]
pub struct Violations(Vec<FieldViolation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(FieldViolation::new(field, description));
    }

    /// Human text by the one rule ([`crate::validate::text_problem`]): required, at most `max`
    /// characters.
    pub fn text(&mut self, field: &str, value: &str, max: usize) {
        if let Some(problem) = crate::validate::text_problem(value, max) {
            self.add(field, problem);
        }
    }

    /// Like [`Violations::text`], but empty is fine.
    pub fn optional_text(&mut self, field: &str, value: &str, max: usize) {
        if let Some(problem) = crate::validate::optional_text_problem(value, max) {
            self.add(field, problem);
        }
    }

    /// The id of the resource name `value` (`{collection}/{id}`); "" with a violation when it
    /// is not one, or when it is empty and not `optional`.
    pub fn resource_id(
        &mut self,
        field: &str,
        value: &str,
        collection: &str,
        optional: bool,
    ) -> String {
        if optional && value.is_empty() {
            return String::new();
        }
        match crate::validate::resource_id(value, collection) {
            Some(id) => id.to_owned(),
            None => {
                self.add(field, format!("must be {collection}/{{id}}"));
                String::new()
            }
        }
    }

    /// Records a violation unless `ok`.
    /// The shape of a review panel, the same rule wherever one is named (the projects service
    /// accepting a project, review scheduling amending a stalled panel): one to twenty
    /// categories, each once, 1 to 50 members and 0 to 50 alternates. The registry judges the
    /// categories and the pool.
    pub fn panel_shape(
        &mut self,
        field: &str,
        panel: &[govit_proto::common::v1::PanelRequirement],
    ) {
        if panel.is_empty() {
            self.add(field, "must name at least one category");
        }
        if panel.len() > 20 {
            self.add(field, "at most 20 categories");
        }
        let mut seen = std::collections::HashSet::new();
        for (i, p) in panel.iter().enumerate() {
            if !crate::validate::is_code(&p.category) {
                self.add(
                    format!("{field}[{i}].category"),
                    "must be 1 to 64 characters of A-Z a-z 0-9 . _ -",
                );
            } else if !seen.insert(p.category.as_str()) {
                self.add(format!("{field}[{i}].category"), "appears twice");
            }
            if !(1..=50).contains(&p.count) {
                self.add(format!("{field}[{i}].count"), "must be between 1 and 50");
            }
            if !(0..=50).contains(&p.alternates) {
                self.add(
                    format!("{field}[{i}].alternates"),
                    "must be between 0 and 50",
                );
            }
        }
    }

    pub fn check(&mut self, ok: bool, field: &str, description: impl Into<String>) {
        if !ok {
            self.add(field, description);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn finish(self) -> ServiceResult<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ServiceError::InvalidArgument(self.0))
        }
    }
}
