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
        Page::parse_sized(
            page_size,
            page_token,
            query,
            (DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
        )
    }

    /// [`Page::parse`] with a list's own default and largest page size.
    pub fn parse_sized(
        page_size: i32,
        page_token: &str,
        query: &str,
        (default, max): (i64, i64),
    ) -> ServiceResult<Page> {
        if page_size < 0 {
            return Err(ServiceError::field("page_size", "must not be negative"));
        }
        let size = match i64::from(page_size) {
            0 => default,
            n => n.min(max),
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

impl Page {
    /// Pages a list read whole, in its order: for one project's own records (its
    /// disbursements, milestones, inspections…), which a project's life keeps few and which are
    /// never deleted. The token holds the key of the last item shown and the next page starts
    /// after that item: an item added before it meanwhile is not shown, none is shown twice,
    /// unless an edit moves an item across the cursor (a milestone whose planned start
    /// changes). A list whose items leave (overdue findings) uses [`Page::slice_ordered`].
    pub fn slice<T>(
        &self,
        items: Vec<T>,
        key_of: impl Fn(&T) -> String,
    ) -> ServiceResult<(Vec<T>, String)> {
        let start = match &self.after {
            None => 0,
            Some(key) => {
                items
                    .iter()
                    .position(|item| key_of(item) == *key)
                    .ok_or_else(|| {
                        ServiceError::field(
                            "page_token",
                            "names an item no longer listed; start from the first page",
                        )
                    })?
                    + 1
            }
        };
        let mut page: Vec<T> = items
            .into_iter()
            .skip(start)
            .take(self.fetch_limit() as usize)
            .collect();
        let token = self.finish(&mut page, key_of);
        Ok((page, token))
    }
}

impl Page {
    /// Pages a list read whole whose keys sort as the list does: the next page starts at the
    /// first item whose key is past the token's, so an item that left the list meanwhile does
    /// not break the cursor.
    pub fn slice_ordered<T>(
        &self,
        items: Vec<T>,
        key_of: impl Fn(&T) -> String,
    ) -> (Vec<T>, String) {
        let mut page: Vec<T> = items
            .into_iter()
            .filter(|item| {
                self.after
                    .as_ref()
                    .is_none_or(|after| key_of(item) > *after)
            })
            .take(self.fetch_limit() as usize)
            .collect();
        let token = self.finish(&mut page, key_of);
        (page, token)
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

    #[test]
    fn an_ordered_list_pages_past_an_item_that_left_it() {
        let first = Page::parse(2, "", "overdue").unwrap();
        let (page, token) = first.slice_ordered(vec!["a", "b", "c", "d"], |s| s.to_string());
        assert_eq!(page, ["a", "b"]);
        // "b" was rectified and left the list; the cursor holds.
        let (page, token) = Page::parse(2, &token, "overdue")
            .unwrap()
            .slice_ordered(vec!["a", "c", "d"], |s| s.to_string());
        assert_eq!((page, token.as_str()), (vec!["c", "d"], ""));
    }

    #[test]
    fn a_list_read_whole_pages_after_the_last_key_shown() {
        let first = Page::parse(2, "", "milestones").unwrap();
        let (page, token) = first
            .slice(vec!["a", "b", "c", "d", "e"], |s| s.to_string())
            .unwrap();
        assert_eq!(page, ["a", "b"]);
        // An item added before the cursor meanwhile is not shown; none is shown twice.
        let next = Page::parse(2, &token, "milestones").unwrap();
        let (page, token) = next
            .slice(vec!["0", "a", "b", "c", "d", "e"], |s| s.to_string())
            .unwrap();
        assert_eq!(page, ["c", "d"]);
        let (page, token) = Page::parse(2, &token, "milestones")
            .unwrap()
            .slice(vec!["a", "b", "c", "d", "e"], |s| s.to_string())
            .unwrap();
        assert_eq!((page, token.as_str()), (vec!["e"], ""));
        // Exactly a page's worth leaves no next token.
        let (_, token) = Page::parse(5, "", "milestones")
            .unwrap()
            .slice(vec!["a", "b", "c", "d", "e"], |s| s.to_string())
            .unwrap();
        assert_eq!(token, "");
    }
}
