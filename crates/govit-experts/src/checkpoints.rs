//! The log in the ecosystem's standard form: checkpoints (c2sp.org/tlog-checkpoint) signed as
//! notes by the registry's key and cosigned by the supervising bureaus' witnesses
//! (c2sp.org/tlog-witness), and the tree served as tiles (c2sp.org/tlog-tiles) over plain HTTP
//! on the registry's listener. Hash tiles and checkpoints reveal only hashes and are public;
//! entry bundles name who was drawn and need a token of a role that may read the log.

use std::time::Duration;

use axum::{
    Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use base64::{Engine, engine::general_purpose::STANDARD as B64};
use ed25519_dalek::SigningKey;
use govit_draw::{
    merkle::nodes,
    note::{Checkpoint, Note, NoteSignature, TYPE_ED25519, Verifier},
    tiles::{Tile, TileKind, WIDTH, entry_bundle},
};
use govit_platform::{
    Authenticator, ServiceError,
    time::{now, to_stored},
};
use sqlx::Row;

use crate::{ExpertsService, api::LOG_READERS, translog};

/// The origin a registry names its log with unless configured.
pub const DEFAULT_ORIGIN: &str = "govit.local/experts-log";

/// How long a witness may take to answer.
const WITNESS_TIMEOUT: Duration = Duration::from_secs(10);

/// A witness this registry asks to cosign: where it listens and its key (type 0x04).
#[derive(Debug, Clone)]
pub struct WitnessPeer {
    pub url: String,
    pub verifier: Verifier,
}

impl WitnessPeer {
    /// Reads `URL=VKEY`, as configured.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let (url, vkey) = text
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("a witness is URL=VERIFIER_KEY, not {text:?}"))?;
        let verifier = Verifier::parse(vkey)?;
        anyhow::ensure!(
            verifier.kind == govit_draw::note::TYPE_COSIGNATURE_V1,
            "witness {} has a key of type {:#04x}; a witness cosigns with type 0x04",
            verifier.name,
            verifier.kind
        );
        Ok(Self {
            url: url.trim_end_matches('/').to_owned(),
            verifier,
        })
    }
}

/// The log's name and signing key as notes carry them.
#[derive(Clone)]
pub struct LogIdentity {
    pub origin: String,
    pub key: SigningKey,
}

impl LogIdentity {
    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.origin.clone(),
            kind: TYPE_ED25519,
            key: self.key.verifying_key(),
        }
    }
}

/// A checkpoint as published: its size, the note, and how many witnesses cosigned it.
#[derive(Debug, Clone)]
pub struct Published {
    pub size: u64,
    pub note: String,
    pub cosigners: usize,
}

impl ExpertsService {
    /// The log's verifier key, `<origin>+<key id>+<key>`: what inspectors and witnesses pin.
    pub fn log_vkey(&self) -> String {
        self.log.verifier().vkey()
    }

    /// Signs a checkpoint of the log as it is, asks every configured witness to cosign it,
    /// stores the note with the cosignatures that came back and returns it. A witness that
    /// refuses or cannot be reached is logged and left out; the checkpoint still stands.
    pub async fn publish_checkpoint(&self) -> anyhow::Result<Published> {
        let db = &self.store.db;
        let size = translog::size(db).await?;
        let root = translog::from_nodes(db, |s| nodes::root(size, &s)).await?;
        let checkpoint = Checkpoint {
            origin: self.log.origin.clone(),
            size,
            root,
        };
        let mut note = Note::new(&checkpoint.text())?;
        note.sign(&self.log.origin, &self.log.key);
        let mut cosigners = 0usize;
        for witness in self.witnesses.iter() {
            match self.cosign_with(witness, &note, size).await {
                Ok(lines) => {
                    note.signatures.extend(lines);
                    cosigners += 1;
                }
                Err(e) => tracing::warn!(
                    witness = %witness.verifier.name,
                    size,
                    error = %e,
                    "a witness did not cosign the checkpoint"
                ),
            }
        }
        let encoded = note.encode();
        sqlx::query(
            "INSERT INTO log_checkpoints (size, note, cosigners, create_time) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (size) DO UPDATE SET note = excluded.note, cosigners = excluded.cosigners, \
             create_time = excluded.create_time WHERE excluded.cosigners >= log_checkpoints.cosigners",
        )
        .bind(size as i64)
        .bind(encoded.clone())
        .bind(cosigners as i64)
        .bind(to_stored(now()))
        .execute(&db.pool)
        .await?;
        Ok(Published {
            size,
            note: encoded,
            cosigners,
        })
    }

    /// One witness's cosignature lines for `note`, from the size it last cosigned: once more
    /// from the size it names when it says ours is stale (409).
    async fn cosign_with(
        &self,
        witness: &WitnessPeer,
        note: &Note,
        size: u64,
    ) -> anyhow::Result<Vec<NoteSignature>> {
        let db = &self.store.db;
        let mut old = self.witness_size(&witness.verifier.name).await?;
        for _ in 0..2 {
            anyhow::ensure!(
                old <= size,
                "the witness has cosigned size {old}, beyond this log's {size}"
            );
            let proof = if old == 0 {
                Vec::new()
            } else {
                translog::from_nodes(db, |s| nodes::consistency_proof(old, size, &s)).await?
            };
            let mut body = format!("old {old}\n");
            for hash in &proof {
                body.push_str(&B64.encode(hash));
                body.push('\n');
            }
            body.push('\n');
            body.push_str(&note.encode());
            let reply = govit_platform::http::request(
                http::Method::POST,
                &format!("{}/add-checkpoint", witness.url),
                &[],
                body.into_bytes(),
                WITNESS_TIMEOUT,
            )
            .await?;
            match reply.status {
                200 => {
                    let lines = cosignatures(note, &reply.body, &witness.verifier)?;
                    self.set_witness_size(&witness.verifier.name, size).await?;
                    return Ok(lines);
                }
                409 if reply.content_type.starts_with("text/x.tlog.size") => {
                    let named = String::from_utf8_lossy(&reply.body);
                    old = named.trim().parse().map_err(|_| {
                        anyhow::anyhow!("the witness named an unreadable size {named:?}")
                    })?;
                }
                status => anyhow::bail!(
                    "the witness answered {status}: {}",
                    String::from_utf8_lossy(&reply.body)
                        .chars()
                        .take(200)
                        .collect::<String>()
                ),
            }
        }
        anyhow::bail!("the witness's size kept changing")
    }

    async fn witness_size(&self, witness: &str) -> anyhow::Result<u64> {
        let row = sqlx::query("SELECT size FROM witness_sizes WHERE witness = $1")
            .bind(witness.to_owned())
            .fetch_optional(&self.store.db.pool)
            .await?;
        Ok(match row {
            Some(row) => row.try_get::<i64, _>(0)? as u64,
            None => 0,
        })
    }

    async fn set_witness_size(&self, witness: &str, size: u64) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO witness_sizes (witness, size) VALUES ($1, $2) \
             ON CONFLICT (witness) DO UPDATE SET size = excluded.size",
        )
        .bind(witness.to_owned())
        .bind(size as i64)
        .execute(&self.store.db.pool)
        .await?;
        Ok(())
    }

    /// The newest stored checkpoint, or a freshly signed one if none was published yet.
    pub async fn latest_checkpoint(&self) -> anyhow::Result<String> {
        let row = sqlx::query("SELECT note FROM log_checkpoints ORDER BY size DESC LIMIT 1")
            .fetch_optional(&self.store.db.pool)
            .await?;
        match row {
            Some(row) => Ok(row.try_get(0)?),
            None => {
                let db = &self.store.db;
                let size = translog::size(db).await?;
                let root = translog::from_nodes(db, |s| nodes::root(size, &s)).await?;
                let text = Checkpoint {
                    origin: self.log.origin.clone(),
                    size,
                    root,
                }
                .text();
                let mut note = Note::new(&text)?;
                note.sign(&self.log.origin, &self.log.key);
                Ok(note.encode())
            }
        }
    }

    /// The bytes of a tile or entry bundle the log has, or None.
    pub async fn tile_bytes(&self, tile: &Tile) -> anyhow::Result<Option<Vec<u8>>> {
        let db = &self.store.db;
        let size = translog::size(db).await?;
        // Any prefix of the log's nodes is fixed forever, so every tile within the log as it
        // now is may be served, partial ones included.
        let level = match tile.kind {
            TileKind::Hashes { level } => u32::from(level),
            TileKind::Entries => 0,
        };
        let Some(unit) = WIDTH.checked_pow(level) else {
            return Ok(None);
        };
        let range = tile.entries();
        if range.end > size / unit {
            return Ok(None);
        }
        match tile.kind {
            TileKind::Hashes { level } => {
                let rows = sqlx::query(
                    "SELECT hash FROM log_nodes WHERE level = $1 AND idx >= $2 AND idx < $3 ORDER BY idx",
                )
                .bind(i64::from(level) * 8)
                .bind(range.start as i64)
                .bind(range.end as i64)
                .fetch_all(&db.pool)
                .await?;
                anyhow::ensure!(
                    rows.len() == usize::from(tile.width),
                    "the stored tree lacks nodes of {}",
                    tile.path()
                );
                let mut bytes = Vec::with_capacity(rows.len() * 32);
                for row in rows {
                    bytes.extend_from_slice(&translog::decode_hash(&row.try_get::<String, _>(0)?)?);
                }
                Ok(Some(bytes))
            }
            TileKind::Entries => {
                let rows = sqlx::query(
                    "SELECT entry FROM log_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
                )
                .bind(range.start as i64)
                .bind(range.end as i64)
                .fetch_all(&db.pool)
                .await?;
                let entries: Vec<String> = rows
                    .iter()
                    .map(|r| r.try_get(0))
                    .collect::<Result<_, _>>()?;
                anyhow::ensure!(
                    entries.len() == usize::from(tile.width),
                    "the log lacks entries of {}",
                    tile.path()
                );
                entry_bundle(entries.iter().map(|e| e.as_bytes()))
                    .map(Some)
                    .ok_or_else(|| anyhow::anyhow!("an entry of {} is over 64 KiB", tile.path()))
            }
        }
    }

    /// Writes the newest checkpoint and every tile of its tree under `dir`, laid out as the
    /// HTTP paths are, for any static web server to host. Entry bundles name who was drawn;
    /// they are written only with `with_entries`, for a directory served to the log's readers.
    /// Returns the checkpoint's size and the number of files written.
    pub async fn export_static(
        &self,
        dir: &std::path::Path,
        with_entries: bool,
    ) -> anyhow::Result<(u64, usize)> {
        let note = self.latest_checkpoint().await?;
        let size = Checkpoint::parse(&Note::parse(&note)?.text)?.size;
        std::fs::create_dir_all(dir)?;
        let mut written = 0;
        for tile in govit_draw::tiles::all_tiles(size) {
            if tile.kind == TileKind::Entries && !with_entries {
                continue;
            }
            let bytes = self
                .tile_bytes(&tile)
                .await?
                .ok_or_else(|| anyhow::anyhow!("the log has no {}", tile.path()))?;
            let path = dir.join(tile.path());
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, bytes)?;
            written += 1;
        }
        // Last, so a reader never finds a checkpoint whose tiles are not there yet.
        std::fs::write(dir.join("checkpoint"), &note)?;
        Ok((size, written + 1))
    }

    /// `GET /checkpoint` and `GET /tile/…` beside the gRPC service.
    pub fn http_routes(&self, auth: Authenticator) -> Router {
        Router::new()
            .route("/checkpoint", get(serve_checkpoint))
            .route("/tile/{*path}", get(serve_tile))
            .with_state((self.clone(), auth))
    }
}

/// The witness's cosignature lines in a reply, each checked against its key.
fn cosignatures(
    note: &Note,
    reply: &[u8],
    witness: &Verifier,
) -> anyhow::Result<Vec<NoteSignature>> {
    let reply = std::str::from_utf8(reply)?;
    let cosigned = Note::parse(&format!("{}\n{reply}", note.text))?;
    cosigned.verify(witness)?;
    let id = witness.id();
    Ok(cosigned
        .signatures
        .into_iter()
        .filter(|s| s.name == witness.name && s.key_id == id)
        .collect())
}

type HttpState = State<(ExpertsService, Authenticator)>;

fn failure(e: anyhow::Error) -> Response {
    tracing::error!(error = %format!("{e:#}"), "serving the log over HTTP failed");
    (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
}

async fn serve_checkpoint(State((service, _)): HttpState) -> Response {
    match service.latest_checkpoint().await {
        Ok(note) => (
            [
                (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            note,
        )
            .into_response(),
        Err(e) => failure(e),
    }
}

async fn serve_tile(
    State((service, auth)): HttpState,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Some(tile) = Tile::parse(&format!("tile/{path}")) else {
        return (StatusCode::NOT_FOUND, "no such tile\n").into_response();
    };
    if tile.kind == TileKind::Entries {
        let header = headers
            .get(header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap_or(""));
        match auth.authorize(header) {
            Ok(caller) if caller.require(&LOG_READERS).is_ok() => {}
            Ok(_) => {
                return (StatusCode::FORBIDDEN, "this role may not read the log\n").into_response();
            }
            Err(ServiceError::RateLimited { retry_after, .. }) => {
                let seconds = retry_after.as_secs().max(1).to_string();
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, seconds)],
                    "too many requests from this token; retry later\n",
                )
                    .into_response();
            }
            Err(ServiceError::Unavailable(_)) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the token's key is not known yet; retry shortly\n",
                )
                    .into_response();
            }
            Err(_) => {
                return (
                    StatusCode::UNAUTHORIZED,
                    "entry bundles name who was drawn: send a valid bearer token\n",
                )
                    .into_response();
            }
        }
    }
    match service.tile_bytes(&tile).await {
        Ok(Some(bytes)) => {
            let cache = if tile.kind == TileKind::Entries {
                "private, max-age=31536000, immutable"
            } else {
                "public, max-age=31536000, immutable"
            };
            (
                [
                    (header::CONTENT_TYPE, "application/octet-stream"),
                    (header::CACHE_CONTROL, cache),
                ],
                bytes,
            )
                .into_response()
        }
        Ok(None) => (StatusCode::NOT_FOUND, "the log has no such tile yet\n").into_response(),
        Err(e) => failure(e),
    }
}
