//! The transparency log: entries appended in the same transaction as the change they record,
//! hashed as RFC 6962, with tree heads signed by the registry's Ed25519 key.
//!
//! Appends take a row lock on `log_state` (PostgreSQL) or the write lock (SQLite), so replicas
//! sharing one database append one after another and can never fork the log.

use ed25519_dalek::SigningKey;
use govit_draw::merkle::{self, Hash, TreeHead};
use govit_platform::{
    Db, Tx,
    time::{now, to_stored},
};
use serde_json::Value;
use sqlx::Row;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntryRow {
    pub idx: i64,
    pub entry: String,
    pub leaf_hash: String,
}

/// Begins a registry write. Every registry write appends to the log, and the log's row is
/// taken first, so writers queue in one order and cannot deadlock each other on the experts'
/// rows they also touch (two draws executing at once, say).
pub async fn begin(db: &Db) -> Result<Tx, govit_platform::ServiceError> {
    let mut tx = db.begin_write().await?;
    sqlx::query("UPDATE log_state SET size = size WHERE id = 1")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Appends one entry; returns its index. `entry` gets an `at` timestamp if it has none.
pub async fn append(tx: &mut Tx, mut entry: Value, draw_id: Option<&str>) -> anyhow::Result<i64> {
    let at = to_stored(now());
    if let Some(map) = entry.as_object_mut() {
        map.entry("at").or_insert_with(|| Value::String(at.clone()));
    }
    let bytes = govit_draw::jcs::canonical(&entry)?;
    let leaf = merkle::leaf_hash(&bytes);
    let size: i64 = sqlx::query("UPDATE log_state SET size = size + 1 WHERE id = 1 RETURNING size")
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
    let index = size - 1;
    sqlx::query("INSERT INTO log_entries (idx, entry, leaf_hash, draw_id, create_time) VALUES ($1, $2, $3, $4, $5)")
        .bind(index)
        .bind(String::from_utf8(bytes)?)
        .bind(hex::encode(leaf))
        .bind(draw_id.map(str::to_owned))
        .bind(at)
        .execute(&mut **tx)
        .await?;
    Ok(index)
}

pub async fn size(db: &Db) -> anyhow::Result<u64> {
    let size: i64 = sqlx::query("SELECT size FROM log_state WHERE id = 1")
        .fetch_one(&db.pool)
        .await?
        .try_get(0)?;
    Ok(size as u64)
}

/// The leaf hashes of the first `size` entries.
pub async fn leaves(db: &Db, size: u64) -> anyhow::Result<Vec<Hash>> {
    let rows = sqlx::query("SELECT leaf_hash FROM log_entries WHERE idx < $1 ORDER BY idx")
        .bind(size as i64)
        .fetch_all(&db.pool)
        .await?;
    rows.iter()
        .map(|r| -> anyhow::Result<Hash> {
            let text: String = r.try_get(0)?;
            hex::decode(&text)?
                .try_into()
                .map_err(|_| anyhow::anyhow!("stored leaf hash is not 32 bytes"))
        })
        .collect()
}

pub async fn entries(
    db: &Db,
    start: u64,
    limit: u32,
    draw_id: Option<&str>,
) -> anyhow::Result<Vec<EntryRow>> {
    let rows = match draw_id {
        Some(d) => {
            sqlx::query_as::<_, EntryRow>(
                "SELECT idx, entry, leaf_hash FROM log_entries WHERE draw_id = $1 AND idx >= $2 ORDER BY idx LIMIT $3",
            )
            .bind(d.to_owned())
            .bind(start as i64)
            .bind(i64::from(limit))
            .fetch_all(&db.pool)
            .await?
        }
        None => {
            sqlx::query_as::<_, EntryRow>("SELECT idx, entry, leaf_hash FROM log_entries WHERE idx >= $1 ORDER BY idx LIMIT $2")
                .bind(start as i64)
                .bind(i64::from(limit))
                .fetch_all(&db.pool)
                .await?
        }
    };
    Ok(rows)
}

/// The registry's signing key: made on first start, kept in the database so every replica
/// signs with the same key. Whoever can read the database can sign heads; guard it.
pub async fn signing_key(db: &Db) -> anyhow::Result<SigningKey> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let fresh = SigningKey::from_bytes(&secret);
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO signing_keys (id, secret_key, public_key, create_time) VALUES (1, $1, $2, $3) \
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(hex::encode(fresh.to_bytes()))
    .bind(hex::encode(fresh.verifying_key().to_bytes()))
    .bind(to_stored(now()))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    let stored: String = sqlx::query("SELECT secret_key FROM signing_keys WHERE id = 1")
        .fetch_one(&db.pool)
        .await?
        .try_get(0)?;
    let bytes: [u8; 32] = hex::decode(stored)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("stored signing key is not 32 bytes"))?;
    Ok(SigningKey::from_bytes(&bytes))
}

/// Signs the current head.
pub async fn head(db: &Db, key: &SigningKey) -> anyhow::Result<TreeHead> {
    let size = size(db).await?;
    let leaves = leaves(db, size).await?;
    let timestamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    Ok(TreeHead::sign(
        key,
        size,
        &merkle::root(&leaves),
        &timestamp,
    ))
}
