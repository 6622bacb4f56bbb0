//! The transparency log: entries appended in the same transaction as the change they record,
//! hashed as RFC 6962, with tree heads signed by the registry's Ed25519 key.
//!
//! Appends take a row lock on `log_state` (PostgreSQL) or the write lock (SQLite), so replicas
//! sharing one database append one after another and can never fork the log. Inspectors read
//! it through signed heads, entries and proofs.
//!
//! Each append also stores the complete subtrees it finishes (`log_nodes`), so heads and proofs
//! read O(log n) stored hashes (`merkle::nodes`) however long the log grows.

use std::collections::{BTreeSet, HashMap};

use ed25519_dalek::SigningKey;
use govit_draw::merkle::{
    self, Hash, TreeHead,
    nodes::{self, MissingNode, NodeId},
};
use govit_platform::{
    Db, ServiceError, ServiceResult, Tx, Violations,
    db::Backend,
    paging::Page,
    time::{now, to_stored},
};
use govit_proto::experts::v1 as pb;
use serde_json::Value;
use sqlx::{AssertSqlSafe, Row};

use crate::{ExpertsService, internal, store::value_rows, validation as check};

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
    store_nodes(tx, index as u64, leaf).await?;
    Ok(index)
}

/// Appends `entries` in order, as [`append`] would one by one, in a few statements: one size
/// update and multi-row inserts of the entries and of the nodes they complete. A roster import
/// of 100,000 experts is one such batch.
pub async fn append_many(tx: &mut Tx, entries: Vec<Value>) -> anyhow::Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let at = to_stored(now());
    let mut texts = Vec::with_capacity(entries.len());
    let mut leaves = Vec::with_capacity(entries.len());
    for mut entry in entries {
        if let Some(map) = entry.as_object_mut() {
            map.entry("at").or_insert_with(|| Value::String(at.clone()));
        }
        let bytes = govit_draw::jcs::canonical(&entry)?;
        leaves.push(merkle::leaf_hash(&bytes));
        texts.push(String::from_utf8(bytes)?);
    }
    let count = texts.len() as i64;
    let size: i64 =
        sqlx::query("UPDATE log_state SET size = size + $1 WHERE id = 1 RETURNING size")
            .bind(count)
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?;
    let first = size - count;
    let rows_per = Backend::of_connection(tx).rows_per_statement(4);
    for (c, chunk) in texts.chunks(rows_per).enumerate() {
        // No draw_id: an import's entries belong to no draw.
        let sql = format!(
            "INSERT INTO log_entries (idx, entry, leaf_hash, create_time) VALUES {}",
            value_rows(chunk.len(), 4)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (i, text) in chunk.iter().enumerate() {
            let offset = c * rows_per + i;
            query = query
                .bind(first + offset as i64)
                .bind(text.clone())
                .bind(hex::encode(leaves[offset]))
                .bind(at.clone());
        }
        query.execute(&mut **tx).await?;
    }
    let wanted = nodes::needed(|s| nodes::append_many(first as u64, &leaves, &s));
    let known = load_nodes(tx, &wanted).await?;
    let made = nodes::append_many(first as u64, &leaves, &|id| known.get(&id).copied())?;
    insert_nodes(tx, &made).await
}

/// Stores the nodes that appending entry `index` completes; the left siblings they need were
/// stored by earlier appends in this same serialised order.
async fn store_nodes(tx: &mut Tx, index: u64, leaf: Hash) -> anyhow::Result<()> {
    let wanted = nodes::needed(|s| nodes::append(index, leaf, &s));
    let known = load_nodes(tx, &wanted).await?;
    let made = nodes::append(index, leaf, &|id| known.get(&id).copied())?;
    insert_nodes(tx, &made).await
}

async fn insert_nodes(tx: &mut Tx, made: &[(NodeId, Hash)]) -> anyhow::Result<()> {
    for chunk in made.chunks(Backend::of_connection(tx).rows_per_statement(3)) {
        let sql = format!(
            "INSERT INTO log_nodes (level, idx, hash) VALUES {}",
            value_rows(chunk.len(), 3)
        );
        let mut query = sqlx::query(AssertSqlSafe(sql));
        for (id, hash) in chunk {
            query = query
                .bind(i64::from(id.level))
                .bind(id.index as i64)
                .bind(hex::encode(hash));
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

/// The stored hashes of `ids` (those that exist), in one query per level.
async fn load_nodes(
    conn: &mut sqlx::AnyConnection,
    ids: &BTreeSet<NodeId>,
) -> anyhow::Result<HashMap<NodeId, Hash>> {
    let mut found = HashMap::new();
    let mut by_level: HashMap<u8, Vec<i64>> = HashMap::new();
    for id in ids {
        by_level.entry(id.level).or_default().push(id.index as i64);
    }
    for (level, indices) in by_level {
        for chunk in indices.chunks(500) {
            let list: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "SELECT idx, hash FROM log_nodes WHERE level = $1 AND idx IN ({})",
                list.join(", ")
            );
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(i64::from(level));
            for index in chunk {
                query = query.bind(*index);
            }
            for row in query.fetch_all(&mut *conn).await? {
                let index: i64 = row.try_get(0)?;
                let text: String = row.try_get(1)?;
                found.insert(
                    NodeId {
                        level,
                        index: index as u64,
                    },
                    decode_hash(&text)?,
                );
            }
        }
    }
    Ok(found)
}

pub(crate) fn decode_hash(text: &str) -> anyhow::Result<Hash> {
    hex::decode(text)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("stored hash is not 32 bytes"))
}

/// Runs `compute` over the stored nodes it needs, fetched in one pass.
pub(crate) async fn from_nodes<T>(
    db: &Db,
    compute: impl Fn(&dyn Fn(NodeId) -> Option<Hash>) -> Result<T, MissingNode>,
) -> anyhow::Result<T> {
    let wanted = nodes::needed(&compute);
    let mut conn = db.pool.acquire().await?;
    let known = load_nodes(&mut conn, &wanted).await?;
    Ok(compute(&|id| known.get(&id).copied())?)
}

/// Fills `log_nodes` for a log written before they were kept (or any entries missing them):
/// every node is recomputed from the leaves once, under the log's lock.
pub async fn complete_nodes(db: &Db) -> anyhow::Result<()> {
    let mut tx = begin(db).await?;
    let size: i64 = sqlx::query("SELECT size FROM log_state WHERE id = 1")
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    let stored: i64 = sqlx::query("SELECT COUNT(*) FROM log_nodes WHERE level = 0")
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
    if stored == size {
        return Ok(());
    }
    let leaves = leaf_hashes(&mut *tx, size as u64).await?;
    sqlx::query("DELETE FROM log_nodes")
        .execute(&mut *tx)
        .await?;
    let mut made = HashMap::new();
    for (index, leaf) in leaves.iter().enumerate() {
        let appended = nodes::append(index as u64, *leaf, &|id| made.get(&id).copied())?;
        made.extend(appended);
    }
    let mut all: Vec<(NodeId, Hash)> = made.into_iter().collect();
    all.sort();
    insert_nodes(&mut tx, &all).await?;
    tx.commit().await?;
    tracing::info!(
        entries = size,
        nodes = all.len(),
        "transparency log nodes completed"
    );
    Ok(())
}

pub async fn size(db: &Db) -> anyhow::Result<u64> {
    let size: i64 = sqlx::query("SELECT size FROM log_state WHERE id = 1")
        .fetch_one(&db.pool)
        .await?
        .try_get(0)?;
    Ok(size as u64)
}

/// The leaf hashes of the first `size` entries.
async fn leaf_hashes<'c, E>(executor: E, size: u64) -> anyhow::Result<Vec<Hash>>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    let rows = sqlx::query("SELECT leaf_hash FROM log_entries WHERE idx < $1 ORDER BY idx")
        .bind(size as i64)
        .fetch_all(executor)
        .await?;
    rows.iter()
        .map(|r| decode_hash(&r.try_get::<String, _>(0)?))
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

/// A new Ed25519 signing key from the operating system's randomness.
pub fn fresh_signing_key() -> anyhow::Result<SigningKey> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    Ok(SigningKey::from_bytes(&secret))
}

/// The registry's signing key kept in the database, made on first start (`ExpertsService::open`,
/// for tests and tools; govit itself signs with a key file). Whoever can read the database can
/// sign heads.
pub async fn signing_key(db: &Db) -> anyhow::Result<SigningKey> {
    let fresh = fresh_signing_key()?;
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
    stored_signing_key(db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("the signing key was not stored"))
}

/// The signing key an earlier version kept in the database, if this one has it: a key file
/// written from it keeps the log's identity.
pub async fn stored_signing_key(db: &Db) -> anyhow::Result<Option<SigningKey>> {
    let stored: Option<String> =
        sqlx::query_scalar("SELECT secret_key FROM signing_keys WHERE id = 1")
            .fetch_optional(&db.pool)
            .await?;
    let Some(stored) = stored else {
        return Ok(None);
    };
    let bytes: [u8; 32] = hex::decode(stored)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("stored signing key is not 32 bytes"))?;
    Ok(Some(SigningKey::from_bytes(&bytes)))
}

/// Signs the current head.
pub async fn head(db: &Db, key: &SigningKey) -> anyhow::Result<TreeHead> {
    let size = size(db).await?;
    let root = from_nodes(db, |s| nodes::root(size, &s)).await?;
    let timestamp = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    Ok(TreeHead::sign(key, size, &root, &timestamp))
}

/// Which log entries a page lists.
pub struct EntriesQuery {
    start: u64,
    page: Page,
    draw_id: String,
}

impl TryFrom<pb::ListLogEntriesRequest> for EntriesQuery {
    type Error = ServiceError;

    fn try_from(req: pb::ListLogEntriesRequest) -> ServiceResult<Self> {
        let mut v = Violations::new();
        if req.limit > 1000 {
            v.add("limit", "must be at most 1000");
        }
        if !req.draw_id.is_empty() {
            check::code(&mut v, "draw_id", &req.draw_id);
        }
        v.finish()?;
        // `limit` is the older name of `page_size`; a token continues after its last index.
        let size = if req.page_size != 0 {
            req.page_size
        } else {
            req.limit as i32
        };
        let page = Page::parse_sized(
            size,
            &req.page_token,
            &format!("log entries {:?}", req.draw_id),
            (100, 1000),
        )?;
        let start = match &page.after {
            None => req.start,
            Some(last) => {
                last.parse::<u64>().map_err(|_| {
                    ServiceError::field("page_token", "is not a page token of this log")
                })? + 1
            }
        };
        Ok(EntriesQuery {
            start,
            page,
            draw_id: req.draw_id,
        })
    }
}

impl ExpertsService {
    pub(crate) async fn signed_head(&self) -> ServiceResult<pb::LogHead> {
        let head = head(&self.store.db, &self.key).await.map_err(internal)?;
        Ok(pb::LogHead {
            tree_size: head.tree_size,
            root_hash: head.root_hash,
            timestamp: head.timestamp,
            signature: head.signature,
            public_key: head.public_key,
            key_id: hex::encode(self.log.verifier().id()),
        })
    }

    pub(crate) async fn entry_page(
        &self,
        q: EntriesQuery,
    ) -> ServiceResult<pb::ListLogEntriesResponse> {
        let draw = (!q.draw_id.is_empty()).then_some(q.draw_id.as_str());
        let limit = u32::try_from(q.page.fetch_limit()).unwrap_or(u32::MAX);
        let mut rows = entries(&self.store.db, q.start, limit, draw)
            .await
            .map_err(internal)?;
        let next_page_token = q.page.finish(&mut rows, |r| r.idx.to_string());
        Ok(pb::ListLogEntriesResponse {
            entries: rows
                .into_iter()
                .map(|r| pb::LogEntry {
                    index: r.idx as u64,
                    entry_json: r.entry,
                    leaf_hash: r.leaf_hash,
                })
                .collect(),
            next_page_token,
        })
    }

    pub(crate) async fn log_entry(&self, index: u64) -> ServiceResult<pb::LogEntry> {
        let row = entries(&self.store.db, index, 1, None)
            .await
            .map_err(internal)?
            .into_iter()
            .find(|r| r.idx as u64 == index)
            .ok_or_else(|| ServiceError::not_found("log entry", format!("logEntries/{index}")))?;
        Ok(pb::LogEntry {
            index: row.idx as u64,
            entry_json: row.entry,
            leaf_hash: row.leaf_hash,
        })
    }

    /// The sizes a proof asks about can only be checked against the log as it now is.
    pub(crate) async fn inclusion(
        &self,
        req: pb::GetInclusionProofRequest,
    ) -> ServiceResult<pb::InclusionProof> {
        let size = size(&self.store.db).await.map_err(internal)?;
        let mut v = Violations::new();
        if req.tree_size == 0 || req.tree_size > size {
            v.add(
                "tree_size",
                format!("must be between 1 and the log's size, {size}"),
            );
        }
        if req.index >= req.tree_size {
            v.add("index", "must be below tree_size");
        }
        v.finish()?;
        let (index, tree_size) = (req.index, req.tree_size);
        let leaf = NodeId { level: 0, index };
        let (leaf_hash, proof) = from_nodes(&self.store.db, |s| {
            let leaf_hash = s(leaf).ok_or(MissingNode(leaf))?;
            Ok((leaf_hash, nodes::inclusion_proof(index, tree_size, &s)?))
        })
        .await
        .map_err(internal)?;
        Ok(pb::InclusionProof {
            index: req.index,
            tree_size: req.tree_size,
            leaf_hash: hex::encode(leaf_hash),
            hashes: proof.iter().map(hex::encode).collect(),
        })
    }

    pub(crate) async fn consistency(
        &self,
        req: pb::GetConsistencyProofRequest,
    ) -> ServiceResult<pb::ConsistencyProof> {
        let size = size(&self.store.db).await.map_err(internal)?;
        let mut v = Violations::new();
        if req.new_size == 0 || req.new_size > size {
            v.add(
                "new_size",
                format!("must be between 1 and the log's size, {size}"),
            );
        }
        if req.old_size == 0 || req.old_size > req.new_size {
            v.add("old_size", "must be between 1 and new_size");
        }
        v.finish()?;
        let (old_size, new_size) = (req.old_size, req.new_size);
        let proof = from_nodes(&self.store.db, |s| {
            nodes::consistency_proof(old_size, new_size, &s)
        })
        .await
        .map_err(internal)?;
        Ok(pb::ConsistencyProof {
            old_size: req.old_size,
            new_size: req.new_size,
            hashes: proof.iter().map(hex::encode).collect(),
        })
    }
}
