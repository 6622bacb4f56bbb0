//! Idempotency keys (AIP-155 request ids) are scoped to their caller and bound to their
//! request: a key names one caller's one request, so another caller cannot pre-empt it and the
//! same caller cannot replay it with different content.
//!
//! [`Once`] makes a create or record call retry-safe. Its request id is claimed inside the
//! call's first write transaction ([`crate::Db::begin_write`] does it, reading the id from a
//! task-local the call runs in), so the claim and the write commit together: a reply lost after
//! the commit finds the claim on retry, and the retry is answered with the kept result.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::Context;
use base64::{Engine, engine::general_purpose::STANDARD as BASE64};
use prost::Message;
use sha2::{Digest, Sha256};
use tonic::Code;

use crate::{Caller, Db, ServiceError, ServiceResult, Tx, time};

/// The stored form of a caller's key: the same key from two callers is two keys.
pub fn scoped_key(caller: &Caller, request_id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(caller.subject.as_bytes());
    hasher.update([0]);
    hasher.update(request_id.as_bytes());
    hex::encode(hasher.finalize())
}

/// A hash of what was asked, to tell a retry from a different request under the same key.
/// Callers clear fields that do not change the request's meaning (the key itself,
/// `validate_only`) before hashing.
pub fn request_hash<M: Message>(request: &M) -> String {
    hex::encode(Sha256::digest(request.encode_to_vec()))
}

/// How long a request id is remembered: a client retrying later than this sends a new request.
pub const KEY_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long a claimed request may stay without its result before a retry stops being told
/// "in progress": the longest a call may run (the server's deadline cap) with room to spare.
const IN_PROGRESS_FOR: Duration = Duration::from_secs(120);

tokio::task_local! {
    /// The request id of the call this task serves, while it runs: [`crate::Db::begin_write`]
    /// claims it in the call's first write transaction, so the claim commits or rolls back
    /// with the write itself.
    static CLAIM: Arc<Claim>;
}

#[derive(Debug)]
struct Claim {
    key: String,
    method: &'static str,
    request_hash: String,
    /// This call's own mark on its claim row, to tell its claim from another call's.
    call_id: String,
    /// Whether a transaction of this call has written or seen its claim.
    claimed: AtomicBool,
}

/// Claims the current call's request id in `tx`, inside every write transaction of the call
/// until one of them holds it: a claim made in a transaction that then rolled back is made
/// again in the next. A claim already committed by an earlier transaction of the same call is
/// recognised by its `call_id`. Another call's claim (the same request sent twice at once)
/// fails this transaction; [`Once::run`] then answers from that call's record.
pub(crate) async fn claim_in(tx: &mut Tx) -> Result<(), sqlx::Error> {
    let Ok(claim) = CLAIM.try_with(Arc::clone) else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO idempotency_keys (key, method, request_hash, call_id, create_time) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (key) DO NOTHING",
    )
    .bind(&claim.key)
    .bind(claim.method)
    .bind(&claim.request_hash)
    .bind(&claim.call_id)
    .bind(time::to_stored(time::now()))
    .execute(&mut **tx)
    .await?;
    let holder: String = sqlx::query_scalar("SELECT call_id FROM idempotency_keys WHERE key = $1")
        .bind(&claim.key)
        .fetch_one(&mut **tx)
        .await?;
    if holder != claim.call_id {
        return Err(sqlx::Error::Protocol(
            "the request id is claimed by another call".into(),
        ));
    }
    claim.claimed.store(true, Ordering::Release);
    Ok(())
}

/// Whether the running call has a request id that its first write transaction claims. A write
/// of one statement may go without an explicit transaction only when it does not.
pub fn call_claims_request_id() -> bool {
    CLAIM.try_with(|_| ()).is_ok()
}

/// One create or record call made safe to retry (AIP-155): with a `request_id`, the first
/// success is kept and every retry of the same request is answered with it; the same id with
/// another request is refused. Without one, the call runs as it is.
#[derive(Debug)]
pub struct Once {
    claim: Option<Arc<Claim>>,
}

impl Once {
    /// `request` is hashed whole: its `request_id` (the same on every retry) and any
    /// `validate_only` included. A `validate_only` call writes nothing, so it never claims
    /// the id; sending the same id with `validate_only` after the real call is another request
    /// and is refused.
    pub fn new<M: Message>(
        caller: &Caller,
        method: &'static str,
        request_id: &str,
        request: &M,
    ) -> ServiceResult<Once> {
        if request_id.is_empty() {
            return Ok(Once { claim: None });
        }
        if let Some(problem) = request_id_problem(request_id) {
            return Err(ServiceError::field("request_id", problem));
        }
        let mut hasher = Sha256::new();
        hasher.update(method.as_bytes());
        hasher.update([0]);
        hasher.update(request.encode_to_vec());
        Ok(Once {
            claim: Some(Arc::new(Claim {
                key: scoped_key(caller, request_id),
                method,
                request_hash: hex::encode(hasher.finalize()),
                call_id: uuid::Uuid::new_v4().simple().to_string(),
                claimed: AtomicBool::new(false),
            })),
        })
    }

    /// Runs `call` unless its request was already answered, and keeps its answer.
    pub async fn run<R, F>(self, db: &Db, call: F) -> ServiceResult<R>
    where
        R: Message + Default,
        F: Future<Output = ServiceResult<R>>,
    {
        let Some(claim) = self.claim else {
            return call.await;
        };
        if let Some(kept) = kept(db, &claim.key).await? {
            return kept.answer(&claim);
        }
        let result = CLAIM.scope(Arc::clone(&claim), call).await;
        match result {
            Ok(response) => {
                if claim.claimed.load(Ordering::Acquire) {
                    keep(db, &claim, &response).await;
                }
                Ok(response)
            }
            Err(err) => match kept(db, &claim.key).await {
                // Another call with the same id got there first; this one lost on the key.
                Ok(Some(kept)) => kept.answer(&claim),
                _ => Err(err),
            },
        }
    }
}

/// What a request id must look like: AIP-155 asks for a UUID; any short token of URL-safe
/// characters is taken, so that clients with ids of their own need not convert them.
pub fn request_id_problem(request_id: &str) -> Option<&'static str> {
    if request_id.len() > 100 {
        Some("must be at most 100 characters (a UUID is recommended)")
    } else if !request_id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    {
        Some("may hold only letters, digits and - _ . : (a UUID is recommended)")
    } else {
        None
    }
}

struct Kept {
    method: String,
    request_hash: String,
    response: Option<String>,
    create_time: String,
}

async fn kept(db: &Db, key: &str) -> ServiceResult<Option<Kept>> {
    let row: Option<(String, String, Option<String>, String)> = sqlx::query_as(
        "SELECT method, request_hash, response, create_time FROM idempotency_keys WHERE key = $1",
    )
    .bind(key)
    .fetch_optional(&db.pool)
    .await?;
    Ok(
        row.map(|(method, request_hash, response, create_time)| Kept {
            method,
            request_hash,
            response,
            create_time,
        }),
    )
}

impl Kept {
    fn answer<R: Message + Default>(self, claim: &Claim) -> ServiceResult<R> {
        // The hash covers the method too: the same id sent to another method is refused here.
        if self.request_hash != claim.request_hash {
            return Err(ServiceError::with_reason(
                Code::AlreadyExists,
                "REQUEST_ID_REUSED",
                "this request_id was sent before with another request; send a new id for a new request",
                &[("method", &self.method)],
            ));
        }
        match self.response {
            Some(encoded) => {
                let bytes = BASE64
                    .decode(encoded)
                    .context("a kept response is not base64")?;
                Ok(R::decode(bytes.as_slice()).context("a kept response does not decode")?)
            }
            None => {
                let age = time::from_stored(&self.create_time)
                    .ok()
                    .and_then(|at| (time::now() - at).to_std().ok())
                    .unwrap_or_default();
                if age < IN_PROGRESS_FOR {
                    Err(ServiceError::with_reason(
                        Code::Aborted,
                        "REQUEST_IN_PROGRESS",
                        "a request with this request_id is still being applied; retry shortly",
                        &[("method", &self.method)],
                    ))
                } else {
                    Err(ServiceError::with_reason(
                        Code::FailedPrecondition,
                        "REQUEST_APPLIED_ANSWER_LOST",
                        "a request with this request_id was applied, but its answer was not kept; read the resource to see it",
                        &[("method", &self.method)],
                    ))
                }
            }
        }
    }
}

/// Keeps a success for its retries. Failing to keep it loses nothing already written: a retry
/// is then told the request was applied (see [`Kept::answer`]) rather than applying it again.
async fn keep<R: Message>(db: &Db, claim: &Claim, response: &R) {
    let encoded = BASE64.encode(response.encode_to_vec());
    let kept =
        sqlx::query("UPDATE idempotency_keys SET response = $1 WHERE key = $2 AND call_id = $3")
            .bind(&encoded)
            .bind(&claim.key)
            .bind(&claim.call_id)
            .execute(&db.pool)
            .await;
    if let Err(err) = kept {
        tracing::warn!(method = claim.method, error = %err, "could not keep a request's answer for its retries");
    }
}

/// Forgets request ids older than [`KEY_LIFETIME`]. Returns how many.
pub async fn forget_expired(db: &Db) -> Result<u64, sqlx::Error> {
    let cutoff = time::now() - chrono::Duration::from_std(KEY_LIFETIME).unwrap_or_default();
    let done = sqlx::query("DELETE FROM idempotency_keys WHERE create_time < $1")
        .bind(time::to_stored(cutoff))
        .execute(&db.pool)
        .await?;
    Ok(done.rows_affected())
}

/// How often expired request ids (and a service's other expired leftovers) are cleared.
pub const HOUSEKEEPING_INTERVAL: Duration = Duration::from_secs(600);

/// Forgets expired request ids every [`HOUSEKEEPING_INTERVAL`], while the runtime runs.
pub fn spawn_forgetting(db: Db) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            match forget_expired(&db).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(forgotten = n, "expired request ids forgotten"),
                Err(e) => tracing::warn!(error = %e, "forgetting expired request ids failed"),
            }
            tokio::time::sleep(HOUSEKEEPING_INTERVAL).await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    fn caller(subject: &str) -> Caller {
        Caller {
            subject: subject.into(),
            role: Role::Office,
            organization: None,
            expert: None,
            bureau: None,
        }
    }

    #[test]
    fn keys_are_scoped_to_their_caller() {
        assert_eq!(
            scoped_key(&caller("a"), "k-1"),
            scoped_key(&caller("a"), "k-1")
        );
        assert_ne!(
            scoped_key(&caller("a"), "k-1"),
            scoped_key(&caller("b"), "k-1")
        );
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(
            scoped_key(&caller("ab"), "c"),
            scoped_key(&caller("a"), "bc")
        );
    }

    #[test]
    fn a_request_hash_changes_with_the_request() {
        let a = prost_types::Timestamp {
            seconds: 1,
            nanos: 0,
        };
        let b = prost_types::Timestamp {
            seconds: 2,
            nanos: 0,
        };
        assert_eq!(request_hash(&a), request_hash(&a.clone()));
        assert_ne!(request_hash(&a), request_hash(&b));
    }
}
