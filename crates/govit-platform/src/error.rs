//! The one mapping from domain errors to gRPC status. Handlers return [`ServiceError`]; only
//! this module decides codes and `google.rpc` details.

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
pub use tonic_types::{FieldViolation, PreconditionViolation};

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
    /// The resource is in the wrong state for this request.
    #[error("{message}")]
    FailedPrecondition {
        message: String,
        violations: Vec<PreconditionViolation>,
    },
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

impl From<sqlx::Error> for ServiceError {
    fn from(err: sqlx::Error) -> Self {
        ServiceError::Internal(anyhow::Error::new(err).context("database error"))
    }
}

impl From<ServiceError> for Status {
    fn from(err: ServiceError) -> Status {
        match err {
            ServiceError::InvalidArgument(violations) => {
                let summary = violations
                    .iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect::<Vec<_>>()
                    .join("; ");
                Status::with_error_details(
                    Code::InvalidArgument,
                    format!("invalid request: {summary}"),
                    ErrorDetails::with_bad_request(violations),
                )
            }
            ServiceError::NotFound {
                resource_type,
                name,
            } => Status::with_error_details(
                Code::NotFound,
                format!("{resource_type} {name} not found"),
                ErrorDetails::with_resource_info(resource_type, name, "", "not found"),
            ),
            ServiceError::AlreadyExists {
                resource_type,
                name,
            } => Status::with_error_details(
                Code::AlreadyExists,
                format!("{resource_type} {name} already exists"),
                ErrorDetails::with_resource_info(resource_type, name, "", "already exists"),
            ),
            ServiceError::FailedPrecondition {
                message,
                violations,
            } => Status::with_error_details(
                Code::FailedPrecondition,
                message,
                ErrorDetails::with_precondition_failure(violations),
            ),
            ServiceError::Aborted(message) => Status::aborted(message),
            ServiceError::PermissionDenied(message) => Status::permission_denied(message),
            ServiceError::Unauthenticated(message) => Status::unauthenticated(message),
            ServiceError::Unavailable(message) => Status::unavailable(message),
            ServiceError::Internal(err) => {
                tracing::error!(error = ?err, "internal error");
                Status::internal("internal error")
            }
        }
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

    /// Records a violation unless `ok`.
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
