//! AIP-158 pagination. A page token carries the last key of the page and a fingerprint of the
//! query that made it, so a token from another query is refused instead of silently skipping.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{ServiceError, ServiceResult};

pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 200;

#[derive(Serialize, Deserialize)]
struct Token {
    /// Fingerprint of the query.
    q: String,
    /// The last key of the previous page.
    k: String,
}

/// A validated page request: size, and where to start after.
#[derive(Debug, Clone)]
pub struct Page {
    pub size: i64,
    pub after: Option<String>,
    fingerprint: String,
}

impl Page {
    /// `query` must describe every filter and the order: anything that changes the result set.
    pub fn parse(page_size: i32, page_token: &str, query: &str) -> ServiceResult<Page> {
        if page_size < 0 {
            return Err(ServiceError::field("page_size", "must not be negative"));
        }
        let size = match i64::from(page_size) {
            0 => DEFAULT_PAGE_SIZE,
            n => n.min(MAX_PAGE_SIZE),
        };
        let fingerprint = hex_prefix(query);
        let after = if page_token.is_empty() {
            None
        } else {
            let token: Token = URL_SAFE_NO_PAD
                .decode(page_token)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .ok_or_else(|| {
                    ServiceError::field("page_token", "is not a page token of this service")
                })?;
            if token.q != fingerprint {
                return Err(ServiceError::field(
                    "page_token",
                    "belongs to another query; send the same filters and order as the first page",
                ));
            }
            Some(token.k)
        };
        Ok(Page {
            size,
            after,
            fingerprint,
        })
    }

    /// How many rows to fetch: one more than the page, to learn whether another page follows.
    pub fn fetch_limit(&self) -> i64 {
        self.size + 1
    }

    /// Trims the fetched rows to the page and returns the next token ("" on the last page).
    pub fn finish<T>(&self, rows: &mut Vec<T>, key_of: impl Fn(&T) -> String) -> String {
        if rows.len() as i64 > self.size {
            rows.truncate(self.size as usize);
            let last = rows.last().map(key_of).unwrap_or_default();
            let token = Token {
                q: self.fingerprint.clone(),
                k: last,
            };
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
        } else {
            String::new()
        }
    }
}

fn hex_prefix(query: &str) -> String {
    let digest = Sha256::digest(query.as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_only_serves_its_own_query() {
        let first = Page::parse(2, "", "state=DRAFT").unwrap();
        let mut rows = vec![1, 2, 3];
        let token = first.finish(&mut rows, |r| r.to_string());
        assert_eq!(rows, vec![1, 2]);
        let next = Page::parse(2, &token, "state=DRAFT").unwrap();
        assert_eq!(next.after.as_deref(), Some("2"));
        assert!(Page::parse(2, &token, "state=SUBMITTED").is_err());
        assert!(Page::parse(2, "garbage", "state=DRAFT").is_err());
    }
}
