//! What every govit service stands on. Nothing here knows a service's domain.

#![forbid(unsafe_code)]

pub mod auth;
pub mod client;
pub mod db;
pub mod error;
pub mod http;
pub mod idempotency;
pub mod json;
pub mod jwks;
pub mod localize;
pub mod machine;
pub mod metrics;
pub mod outbox;
pub mod paging;
pub mod reads;
pub mod resident_id;
pub mod secret_file;
pub mod server;
pub mod sqlite_reader;
pub mod telemetry;
pub mod time;
pub mod tls;
pub mod uscc;
pub mod validate;

pub use auth::{Authenticator, Caller, Role, VerificationKey};
pub use db::{Backend, Db, Tx};
pub use error::{ServiceError, ServiceResult, Violations};
pub use machine::StateMachine;
