//! All SQL of the registry except the log's (see `translog`), by area. Each change is one
//! transaction with its log entry.

mod categories;
mod draws;
mod experts;
mod reviews;

pub use reviews::ServiceRecorded;

use govit_platform::{Db, ServiceError};

#[derive(Debug, Clone)]
pub struct Store {
    pub db: Db,
}

fn internal(e: anyhow::Error) -> ServiceError {
    ServiceError::Internal(e)
}

/// `($1, $2), ($3, $4), …`: `rows` rows of `columns` parameters for a multi-row VALUES.
pub fn value_rows(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|i| format!("({})", placeholders(i * columns + 1, columns)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `$start, $start+1, …` for an IN list of `n` values.
pub fn placeholders(start: usize, n: usize) -> String {
    (start..start + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}
