//! Small lists and records stored as JSON text in a column (the SQL subset both backends share
//! has no array type).

use serde::{Deserialize, Serialize};

/// The stored text of a plain record; serialising strings, numbers and vectors cannot fail.
pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Reads a stored column back; a failure means the row is corrupt, so it names the column.
pub fn from_json<T: for<'de> Deserialize<'de>>(column: &str, text: &str) -> anyhow::Result<T> {
    serde_json::from_str(text).map_err(|e| anyhow::anyhow!("stored {column} is unreadable: {e}"))
}
