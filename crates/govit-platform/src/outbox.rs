//! The transactional outbox: a message to another service is written in the same transaction
//! as the change that causes it, then delivered at least once by a worker, with exponential
//! backoff. Receivers are idempotent, so a redelivery after a lost reply changes nothing.

use std::time::Duration;

use serde_json::Value;
use sqlx::Row;

use crate::{
    Db, Tx,
    time::{now, to_stored},
};

#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub kind: String,
    pub payload: Value,
    pub attempts: i64,
}

/// Writes a message inside the caller's transaction.
pub async fn enqueue(tx: &mut Tx, kind: &str, payload: &Value) -> Result<String, sqlx::Error> {
    let id = uuid::Uuid::now_v7().simple().to_string();
    let at = to_stored(now());
    sqlx::query(
        "INSERT INTO outbox (id, kind, payload, attempts, next_attempt_at, last_error, delivered_at, create_time) \
         VALUES ($1, $2, $3, 0, $4, '', NULL, $4)",
    )
    .bind(id.clone())
    .bind(kind.to_owned())
    .bind(payload.to_string())
    .bind(at)
    .execute(&mut **tx)
    .await?;
    Ok(id)
}

/// How long a claimed message is left to its worker before another may try it.
const LEASE: Duration = Duration::from_secs(30);

/// Claims up to `limit` due messages. A claim moves the message's next attempt past the lease,
/// so two replicas' workers rarely deliver the same message at once (and when they do, the
/// receiver's idempotency absorbs it).
pub async fn claim_due(db: &Db, limit: i64) -> anyhow::Result<Vec<Message>> {
    let at = now();
    let rows = sqlx::query(
        "SELECT id, kind, payload, attempts, next_attempt_at FROM outbox WHERE delivered_at IS NULL AND next_attempt_at <= $1 \
         ORDER BY next_attempt_at, id LIMIT $2",
    )
    .bind(to_stored(at))
    .bind(limit)
    .fetch_all(&db.pool)
    .await?;
    let lease = to_stored(at + chrono::Duration::from_std(LEASE)?);
    let mut claimed = Vec::new();
    for row in rows {
        let id: String = row.try_get(0)?;
        let previous: String = row.try_get(4)?;
        let done = sqlx::query("UPDATE outbox SET next_attempt_at = $1 WHERE id = $2 AND next_attempt_at = $3 AND delivered_at IS NULL")
            .bind(lease.clone())
            .bind(id.clone())
            .bind(previous)
            .execute(&db.pool)
            .await?;
        if done.rows_affected() == 1 {
            let payload: String = row.try_get(2)?;
            claimed.push(Message {
                id,
                kind: row.try_get(1)?,
                payload: serde_json::from_str(&payload)?,
                attempts: row.try_get(3)?,
            });
        }
    }
    Ok(claimed)
}

pub async fn delivered(db: &Db, id: &str) -> anyhow::Result<()> {
    sqlx::query("UPDATE outbox SET delivered_at = $1, attempts = attempts + 1, last_error = '' WHERE id = $2")
        .bind(to_stored(now()))
        .bind(id.to_owned())
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Records a failed attempt; the next comes after 1 s, 2 s, 4 s … at most 5 minutes.
pub async fn failed(db: &Db, message: &Message, error: &str) -> anyhow::Result<()> {
    let backoff =
        Duration::from_secs(1u64 << message.attempts.clamp(0, 8)).min(Duration::from_secs(300));
    let next = now() + chrono::Duration::from_std(backoff)?;
    sqlx::query("UPDATE outbox SET attempts = attempts + 1, last_error = $1, next_attempt_at = $2 WHERE id = $3")
        .bind(error.chars().take(500).collect::<String>())
        .bind(to_stored(next))
        .bind(message.id.clone())
        .execute(&db.pool)
        .await?;
    Ok(())
}

/// Messages not yet delivered: for tests and operators.
pub async fn pending(db: &Db) -> anyhow::Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL")
            .fetch_one(&db.pool)
            .await?,
    )
}

/// Makes every pending message due now: for tests, and for an operator after an outage.
pub async fn retry_now(db: &Db) -> anyhow::Result<()> {
    sqlx::query("UPDATE outbox SET next_attempt_at = $1 WHERE delivered_at IS NULL")
        .bind(to_stored(now()))
        .execute(&db.pool)
        .await?;
    Ok(())
}
