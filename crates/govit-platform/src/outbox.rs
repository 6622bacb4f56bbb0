//! The transactional outbox: a message to another service is written in the same transaction
//! as the change that causes it, then delivered at least once by a worker, with exponential
//! backoff. Receivers are idempotent, so a redelivery after a lost reply changes nothing.
//!
//! Messages are typed: each service has one enum of the calls it owes others
//! ([`OutboxPayload`]), stored as the call's protobuf request, decoded by an exhaustive match
//! that refuses unknown kinds. Messages about one subject (a project, a review) are delivered in
//! the order they were written, so a cancellation never overtakes the request it cancels.
//!
//! A receiver's final refusal parks the message where office can see it
//! (`ListOutboxMessages`); only transient failures back off and retry.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::STANDARD};
use govit_proto::common::v1 as cpb;
use sqlx::Row;
use tonic::Status;

use tonic::Code;

use crate::{
    Caller, Db, Role, ServiceError, ServiceResult, Tx,
    error::{is_final, is_transient, status_reason},
    paging::Page,
    time::{from_stored, now, stored_to_timestamp, to_stored},
};

/// One service's messages to the others: every kind it may send, each a typed request.
pub trait OutboxPayload: Sized {
    /// The kind as stored and shown to office, e.g. `RequestReview`.
    fn kind(&self) -> &'static str;
    /// The resource the message is about; messages about one subject go out in order.
    fn subject(&self) -> String;
    fn encode(&self) -> Vec<u8>;
    /// Refuses kinds it does not know: a message is never guessed at.
    fn decode(kind: &str, subject: &str, bytes: &[u8]) -> anyhow::Result<Self>;
}

#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub kind: String,
    pub subject: String,
    payload: String,
    pub attempts: i64,
}

impl Message {
    pub fn decode<P: OutboxPayload>(&self) -> anyhow::Result<P> {
        let bytes = STANDARD
            .decode(&self.payload)
            .map_err(|e| anyhow::anyhow!("the payload is not base64: {e}"))?;
        P::decode(&self.kind, &self.subject, &bytes)
    }
}

/// Writes a message inside the caller's transaction.
pub async fn enqueue<P: OutboxPayload>(tx: &mut Tx, message: &P) -> Result<String, sqlx::Error> {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let at = to_stored(now());
    sqlx::query(
        "INSERT INTO outbox (id, kind, subject, payload, attempts, next_attempt_at, last_error, last_code, last_reason, delivered_at, parked_at, create_time) \
         VALUES ($1, $2, $3, $4, 0, $5, '', '', '', NULL, NULL, $5)",
    )
    .bind(id.clone())
    .bind(message.kind())
    .bind(message.subject())
    .bind(STANDARD.encode(message.encode()))
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// How long a claimed message is left to its worker before another may try it: longer than a
/// call's timeout (30 s), so a slow delivery is not sent twice.
const LEASE: Duration = Duration::from_secs(90);

/// Failures that are neither the receiver's final word nor an outage (an internal error, a
/// refused service token) are retried this many times, then parked for office.
const MAX_UNCLEAR_ATTEMPTS: i64 = 12;

/// What a receiver's status means for the message.
enum Verdict {
    /// The receiver or the network was in the way: back off and retry, without end.
    Transient,
    /// The receiver refused the request itself: park it now.
    Final,
    /// Something else went wrong: retry a while, then park.
    Unclear,
}

fn verdict(code: Code) -> Verdict {
    if is_transient(code) {
        Verdict::Transient
    } else if is_final(code) {
        Verdict::Final
    } else {
        Verdict::Unclear
    }
}

/// Claims up to `limit` due messages, each the oldest undelivered one of its subject. A claim
/// moves the message's next attempt past the lease, so two replicas' workers rarely deliver
/// the same message at once (and when they do, the receiver's idempotency absorbs it).
pub async fn claim_due(db: &Db, limit: i64) -> anyhow::Result<Vec<Message>> {
    let at = now();
    let rows = sqlx::query(
        "SELECT o.id, o.kind, o.subject, o.payload, o.attempts, o.next_attempt_at FROM outbox o \
         WHERE o.delivered_at IS NULL AND o.parked_at IS NULL AND o.next_attempt_at <= $1 \
         AND (o.leased_until IS NULL OR o.leased_until <= $1) \
         AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.subject = o.subject AND e.delivered_at IS NULL \
             AND e.parked_at IS NULL AND (e.create_time < o.create_time OR (e.create_time = o.create_time AND e.id < o.id))) \
         ORDER BY o.next_attempt_at, o.id LIMIT $2",
    )
    .bind(to_stored(at))
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    let lease = to_stored(at + chrono::Duration::from_std(LEASE)?);
    let mut claimed = Vec::new();
    for row in rows {
        let id: String = row.try_get(0)?;
        // The lease is a column of its own: making messages due now (an operator's retry, a
        // peer's return) never hands a message that is being delivered to a second worker.
        let done = sqlx::query("UPDATE outbox SET leased_until = $1 WHERE id = $2 AND delivered_at IS NULL AND parked_at IS NULL \
             AND (leased_until IS NULL OR leased_until <= $3)")
            .bind(lease.clone())
            .bind(id.clone())
            .bind(to_stored(at))
            .execute(&db.pool)
            .await?;
        if done.rows_affected() == 1 {
            claimed.push(Message {
                id,
                kind: row.try_get(1)?,
                subject: row.try_get(2)?,
                payload: row.try_get(3)?,
                attempts: row.try_get(4)?,
            });
        }
    }
    Ok(claimed)
}

pub async fn delivered(db: &Db, id: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE outbox SET delivered_at = $1, leased_until = NULL, attempts = attempts + 1, last_error = '', last_code = '', last_reason = '' WHERE id = $2")
        .bind(to_stored(now()))
        .bind(id.to_owned())
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Records the outcome of one delivery: done; retried later with backoff (1 s, 2 s, 4 s … at
/// most 5 minutes) when the receiver could not be reached; parked when the receiver refused
/// the request for good, or when an unclear failure keeps coming back.
pub async fn settle(db: &Db, message: &Message, result: Result<(), Status>) -> anyhow::Result<()> {
    let status = match result {
        Ok(()) => return delivered(db, &message.id).await,
        Err(status) => status,
    };
    let park = match verdict(status.code()) {
        Verdict::Transient => false,
        Verdict::Final => true,
        Verdict::Unclear => message.attempts + 1 >= MAX_UNCLEAR_ATTEMPTS,
    };
    if park {
        tracing::warn!(message = %message.id, kind = %message.kind, code = ?status.code(), reason = ?status_reason(&status), "outbox message refused; parked for office");
        return record_failure(db, message, &status, None).await;
    }
    tracing::warn!(message = %message.id, kind = %message.kind, code = ?status.code(), "outbox message not delivered; will retry");
    let backoff =
        Duration::from_secs(1u64 << message.attempts.clamp(0, 8)).min(Duration::from_secs(300));
    let next = now() + chrono::Duration::from_std(backoff)?;
    record_failure(db, message, &status, Some(to_stored(next))).await
}

/// Holds a message back without counting a failure, until `until` or until
/// [`retry_subject`] makes it due: for work its own sender has paused.
pub async fn defer(
    db: &Db,
    message: &Message,
    until: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<()> {
    sqlx::query("UPDATE outbox SET next_attempt_at = $1, leased_until = NULL WHERE id = $2 AND delivered_at IS NULL")
        .bind(to_stored(until))
        .bind(message.id.clone())
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Makes the pending messages about one subject due now.
pub async fn retry_subject(db: &Db, subject: &str) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE outbox SET next_attempt_at = $1 WHERE subject = $2 AND delivered_at IS NULL AND parked_at IS NULL",
    )
    .bind(to_stored(now()))
    .bind(subject.to_owned())
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// Parks a message this service cannot even read (a payload from another version, say).
pub async fn park_unreadable(
    db: &Db,
    message: &Message,
    error: &anyhow::Error,
) -> anyhow::Result<()> {
    tracing::error!(message = %message.id, kind = %message.kind, error = %error, "outbox message unreadable; parked for office");
    let status = Status::internal(format!("unreadable message: {error}"));
    record_failure(db, message, &status, None).await
}

async fn record_failure(
    db: &Db,
    message: &Message,
    status: &Status,
    retry_at: Option<String>,
) -> anyhow::Result<()> {
    let error: String = format!("{:?}: {}", status.code(), status.message())
        .chars()
        .take(500)
        .collect();
    let code = format!("{:?}", status.code());
    let reason = status_reason(status).unwrap_or_default();
    let (next, parked) = match retry_at {
        Some(next) => (next, None),
        None => (to_stored(now()), Some(to_stored(now()))),
    };
    sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $1, last_code = $2, last_reason = $3, next_attempt_at = $4, parked_at = $5, \
         leased_until = NULL WHERE id = $6 AND delivered_at IS NULL")
        .bind(error)
        .bind(code)
        .bind(reason)
        .bind(next)
        .bind(parked)
        .bind(message.id.clone())
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Messages not yet delivered nor parked: for tests and operators.
pub async fn pending(db: &Db) -> anyhow::Result<i64> {
    Ok(pending_and_oldest(db).await?.0)
}

/// Messages not yet delivered nor parked, and when the oldest of them was queued.
pub async fn pending_and_oldest(
    db: &Db,
) -> anyhow::Result<(i64, Option<chrono::DateTime<chrono::Utc>>)> {
    let (count, oldest): (i64, Option<String>) = sqlx::query_as(
        "SELECT COUNT(*), MIN(create_time) FROM outbox WHERE delivered_at IS NULL AND parked_at IS NULL",
    )
    .fetch_one(&db.pool)
    .await?;
    Ok((count, oldest.as_deref().map(from_stored).transpose()?))
}

/// Messages parked after a final refusal.
pub async fn parked(db: &Db) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE parked_at IS NOT NULL")
            .fetch_one(&db.pool)
            .await?,
    )
}

/// Makes every pending message due now: for tests, and for an operator after an outage.
pub async fn retry_now(db: &Db) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE outbox SET next_attempt_at = $1 WHERE delivered_at IS NULL AND parked_at IS NULL",
    )
    .bind(to_stored(now()))
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// `kind IN (…)` for message kinds, which are the sender's own constants.
fn kinds_clause(kinds: &[&str]) -> String {
    let quoted: Vec<String> = kinds
        .iter()
        .map(|k| format!("'{}'", k.replace('\'', "")))
        .collect();
    format!("kind IN ({})", quoted.join(", "))
}

/// Whether a pending message of one of `kinds` waits out a backoff because its receiver could
/// not be reached: the worker then watches the receiver's health instead of waiting it out.
pub async fn waiting_on_peer(db: &Db, kinds: &[&str]) -> anyhow::Result<bool> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT 1 FROM outbox WHERE delivered_at IS NULL AND parked_at IS NULL \
         AND last_code IN ('Unavailable', 'DeadlineExceeded', 'Unknown', 'Cancelled') AND next_attempt_at > $1 AND {} LIMIT 1",
        kinds_clause(kinds)
    )))
    .bind(to_stored(now()))
    .fetch_optional(&db.pool)
    .await?;
    Ok(row.is_some())
}

const COLUMNS: &str = "id, kind, subject, attempts, last_error, last_code, last_reason, create_time, next_attempt_at, delivered_at, parked_at";

fn to_proto(row: &sqlx::any::AnyRow) -> anyhow::Result<cpb::OutboxMessage> {
    use cpb::OutboxMessageState as S;
    let id: String = row.try_get(0)?;
    let delivered: Option<String> = row.try_get(9)?;
    let parked: Option<String> = row.try_get(10)?;
    let state = match (&delivered, &parked) {
        (Some(_), _) => S::Delivered,
        (None, Some(_)) => S::Parked,
        (None, None) => S::Pending,
    };
    let time = |s: &Option<String>| s.as_deref().map(stored_to_timestamp).transpose();
    Ok(cpb::OutboxMessage {
        name: format!("outboxMessages/{id}"),
        kind: row.try_get(1)?,
        subject: row.try_get(2)?,
        state: state as i32,
        attempts: row.try_get(3)?,
        last_error: row.try_get(4)?,
        last_error_reason: row.try_get(6)?,
        create_time: Some(stored_to_timestamp(&row.try_get::<String, _>(7)?)?),
        next_attempt_time: if state == S::Pending {
            Some(stored_to_timestamp(&row.try_get::<String, _>(8)?)?)
        } else {
            None
        },
        deliver_time: time(&delivered)?,
        park_time: time(&parked)?,
    })
}

/// A page of messages, oldest first: pending and parked ones unless `state` names one (office).
pub async fn list(
    db: &Db,
    caller: &Caller,
    req: &cpb::ListOutboxMessagesRequest,
) -> ServiceResult<cpb::ListOutboxMessagesResponse> {
    use cpb::OutboxMessageState as S;
    caller.require(&[Role::Office])?;
    let state = S::try_from(req.state)
        .map_err(|_| ServiceError::field("state", "is not an outbox message state"))?;
    let filter = match state {
        S::Unspecified => "delivered_at IS NULL",
        S::Pending => "delivered_at IS NULL AND parked_at IS NULL",
        S::Delivered => "delivered_at IS NOT NULL",
        S::Parked => "delivered_at IS NULL AND parked_at IS NOT NULL",
    };
    let page = Page::parse(req.page_size, &req.page_token, &format!("outbox {filter}"))?;
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM outbox WHERE {filter} AND id > $1 ORDER BY id LIMIT $2"
    )))
    .bind(page.after.clone().unwrap_or_default())
    .bind(page.fetch_limit())
    .fetch_all(&db.pool)
    .await?;
    let mut messages = rows
        .iter()
        .map(to_proto)
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(ServiceError::Internal)?;
    let next_page_token = page.finish(&mut messages, |m| {
        m.name.trim_start_matches("outboxMessages/").to_owned()
    });
    Ok(cpb::ListOutboxMessagesResponse {
        messages,
        next_page_token,
    })
}

/// One message, delivered or not (office).
pub async fn get(db: &Db, caller: &Caller, name: &str) -> ServiceResult<cpb::OutboxMessage> {
    caller.require(&[Role::Office])?;
    let id = name
        .strip_prefix("outboxMessages/")
        .filter(|id| crate::validate::is_code(id))
        .ok_or_else(|| ServiceError::field("name", "must be outboxMessages/{id}"))?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM outbox WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| ServiceError::not_found("outbox message", name))?;
    to_proto(&row).map_err(ServiceError::Internal)
}

/// Makes one pending or parked message due now (a parked one is no longer parked; office).
pub async fn retry(db: &Db, caller: &Caller, name: &str) -> ServiceResult<cpb::OutboxMessage> {
    caller.require(&[Role::Office])?;
    let id = name
        .strip_prefix("outboxMessages/")
        .filter(|id| crate::validate::is_code(id))
        .ok_or_else(|| ServiceError::field("name", "must be outboxMessages/{id}"))?;
    // Messages about one subject go out in order: a parked message whose subject has since had
    // a later message delivered (a cancellation after a refused request, say) would undo it.
    let overtaken = sqlx::query(
        "SELECT 1 FROM outbox o JOIN outbox later ON later.subject = o.subject \
         WHERE o.id = $1 AND later.delivered_at IS NOT NULL \
         AND (later.create_time > o.create_time OR (later.create_time = o.create_time AND later.id > o.id)) LIMIT 1",
    )
    .bind(id.to_owned())
    .fetch_optional(&db.pool)
    .await?;
    if overtaken.is_some() {
        return Err(ServiceError::precondition(
            "MESSAGE_OVERTAKEN",
            name,
            format!(
                "a later message about the same subject was delivered after {name}; sending it now would undo that"
            ),
        ));
    }
    let done = sqlx::query(
        "UPDATE outbox SET parked_at = NULL, next_attempt_at = $1 WHERE id = $2 AND delivered_at IS NULL",
    )
    .bind(to_stored(now()))
    .bind(id.to_owned())
    .execute(&db.pool)
    .await?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM outbox WHERE id = $1"
    )))
    .bind(id.to_owned())
    .fetch_optional(&db.pool)
    .await?
    .ok_or_else(|| ServiceError::not_found("outbox message", name))?;
    if done.rows_affected() == 0 {
        return Err(ServiceError::precondition(
            "STATE_CONFLICT",
            name,
            format!("{name} was delivered already"),
        ));
    }
    tracing::info!(message = %id, "outbox message retried by office");
    to_proto(&row).map_err(ServiceError::Internal)
}

/// After an outage: when messages of `kinds` wait out a backoff because their receiver was
/// unreachable and its health is SERVING again, makes them due now, so work resumes within a
/// worker pass of the peer's return instead of after the longest backoff. Returns whether it
/// did.
pub async fn resume_if_peer_back(
    db: &Db,
    peer: &tonic::transport::Channel,
    kinds: &[&str],
) -> anyhow::Result<bool> {
    if !waiting_on_peer(db, kinds).await? || !crate::client::peer_serving(peer).await {
        return Ok(false);
    }
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE outbox SET next_attempt_at = $1 WHERE delivered_at IS NULL AND parked_at IS NULL \
         AND last_code IN ('Unavailable', 'DeadlineExceeded', 'Unknown', 'Cancelled') AND {}",
        kinds_clause(kinds)
    )))
    .bind(to_stored(now()))
    .execute(&db.pool)
    .await?;
    tracing::info!(
        ?kinds,
        "peer serving again; its pending outbox messages retried now"
    );
    Ok(true)
}
