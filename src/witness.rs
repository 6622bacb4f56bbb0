//! `govit witness`: a transparency-log witness speaking `c2sp.org/tlog-witness`.
//!
//! A supervising bureau runs one so that the registry cannot show one history to the public
//! and another to an inspector: the witness cosigns (`c2sp.org/tlog-cosignature`) a checkpoint
//! only when it is provably an append-only extension of the last one it cosigned for that log,
//! and it never cosigns two roots for one size. Its state, the last cosigned size and root of
//! each log, lives in a SQLite file of its own: losing that file lets the log roll it back.

use std::{
    collections::HashMap,
    fmt,
    future::Future,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context as _;
use axum::{
    Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::{HeaderValue, StatusCode, header::CONTENT_TYPE},
    response::{IntoResponse, Response},
    routing::post,
};
use base64::{Engine as _, engine::general_purpose::STANDARD as B64};
use ed25519_dalek::SigningKey;
use govit_draw::{
    merkle::{self, Hash},
    note::{
        Checkpoint, Note, NoteError, TYPE_COSIGNATURE_V1, TYPE_ED25519, Verifier, cosignature,
        signing_key_from_pem, signing_key_to_pem, valid_name,
    },
};
use sqlx::{
    Row as _, SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

/// Where the witness listens unless told otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7380";
/// A request bigger than this is not a checkpoint: 63 proof lines and a note with a hundred
/// signatures fit well inside it.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The protocol's bound on consistency proof lines.
pub const MAX_PROOF_LINES: usize = 63;
/// The content type of a 409 that tells the client the size the witness last cosigned.
pub const SIZE_CONTENT_TYPE: &str = "text/x.tlog.size";
const TEXT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// Why a checkpoint was not cosigned, as the HTTP reply the protocol prescribes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WitnessRefusal {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl WitnessRefusal {
    fn text(status: u16, reason: impl fmt::Display) -> Self {
        Self {
            status,
            content_type: TEXT_CONTENT_TYPE,
            body: format!("{reason}\n"),
        }
    }

    fn bad_request(reason: impl fmt::Display) -> Self {
        Self::text(400, reason)
    }

    fn stale(last_size: u64) -> Self {
        Self {
            status: 409,
            content_type: SIZE_CONTENT_TYPE,
            body: format!("{last_size}\n"),
        }
    }

    fn internal(err: impl fmt::Display) -> Self {
        tracing::error!(error = %err, "witness: cannot reach its state");
        Self::text(500, "internal error")
    }
}

impl fmt::Display for WitnessRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.body.trim_end())
    }
}

impl std::error::Error for WitnessRefusal {}

impl IntoResponse for WitnessRefusal {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (
            status,
            [(CONTENT_TYPE, HeaderValue::from_static(self.content_type))],
            self.body,
        )
            .into_response()
    }
}

/// A witness: its name and key, the logs it follows, and its state.
pub struct Witness {
    name: String,
    key: SigningKey,
    logs: HashMap<String, Vec<Verifier>>,
    state: SqlitePool,
}

// By hand, so that the signing key can never reach a log line.
impl fmt::Debug for Witness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Witness")
            .field("name", &self.name)
            .field("logs", &self.logs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Witness {
    /// Opens (creating if absent) the state file and checks the configuration: the name is a
    /// valid key name, and every log key is an Ed25519 (type 0x01) note key, named after its
    /// log's origin.
    pub async fn open(
        name: &str,
        key: SigningKey,
        logs: Vec<Verifier>,
        state: &Path,
    ) -> anyhow::Result<Self> {
        if !valid_name(name) {
            anyhow::bail!("the witness name {name:?} is empty or has a space or '+'");
        }
        let mut by_origin: HashMap<String, Vec<Verifier>> = HashMap::new();
        for log in logs {
            if log.kind != TYPE_ED25519 {
                anyhow::bail!(
                    "the key of log {} is not an Ed25519 note key (type 0x01)",
                    log.name
                );
            }
            by_origin.entry(log.name.clone()).or_default().push(log);
        }
        if let Some(dir) = state.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the directory of {}", state.display()))?;
        }
        let options = SqliteConnectOptions::new()
            .filename(state)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A cosignature promises the state is on disk: a power cut must not forget it.
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .with_context(|| format!("opening the witness state {}", state.display()))?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS witness_checkpoints (
                origin TEXT PRIMARY KEY NOT NULL,
                size INTEGER NOT NULL CHECK (size >= 0),
                root BLOB NOT NULL CHECK (length(root) = 32)
            )",
        )
        .execute(&pool)
        .await
        .context("creating the witness state table")?;
        Ok(Self {
            name: name.to_owned(),
            key,
            logs: by_origin,
            state: pool,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The witness's cosigning key (type 0x04), for clients to trust.
    pub fn verifier(&self) -> Verifier {
        Verifier {
            name: self.name.clone(),
            kind: TYPE_COSIGNATURE_V1,
            key: self.key.verifying_key(),
        }
    }

    /// The verifier key string operators publish.
    pub fn vkey(&self) -> String {
        self.verifier().vkey()
    }

    /// The size and root last cosigned for `origin`, if any.
    pub async fn latest(&self, origin: &str) -> anyhow::Result<Option<(u64, Hash)>> {
        let mut conn = self.state.acquire().await?;
        read_latest(&mut conn, origin).await
    }

    /// Closes the state file; pending writes were committed before their replies.
    pub async fn close(&self) {
        self.state.close().await;
    }

    /// Handles one `add-checkpoint` request body: the cosignature line on success, else the
    /// reply the protocol prescribes. The check against the last cosigned checkpoint and the
    /// update happen in one write transaction, committed before the cosignature is made.
    pub async fn add_checkpoint(&self, body: &[u8]) -> Result<String, WitnessRefusal> {
        let request = Request::parse(body).map_err(WitnessRefusal::bad_request)?;
        let checkpoint = &request.checkpoint;
        let Some(trusted) = self.logs.get(&checkpoint.origin) else {
            return Err(WitnessRefusal::text(404, "unknown log origin"));
        };
        verify_log_signature(&request.note, trusted)?;
        if request.old > checkpoint.size {
            return Err(WitnessRefusal::bad_request(
                "the old size is larger than the checkpoint's",
            ));
        }

        // IMMEDIATE takes the write lock before the read, so that two requests cannot both see
        // the same last size and the slower one roll the state back.
        let mut tx = self
            .state
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(WitnessRefusal::internal)?;
        let (last_size, last_root) = read_latest(&mut tx, &checkpoint.origin)
            .await
            .map_err(WitnessRefusal::internal)?
            .unwrap_or((0, merkle::root(&[])));
        if request.old != last_size {
            tracing::debug!(
                origin = %checkpoint.origin,
                old = request.old,
                last_size,
                "witness: refused a checkpoint from a stale size"
            );
            return Err(WitnessRefusal::stale(last_size));
        }
        if checkpoint.size == last_size && checkpoint.root != last_root {
            tracing::warn!(
                origin = %checkpoint.origin,
                size = checkpoint.size,
                cosigned_root = %hex::encode(last_root),
                offered_root = %hex::encode(checkpoint.root),
                "witness: the log signed a second root for a size already cosigned (split view)"
            );
            return Err(WitnessRefusal::text(
                409,
                "a different root was already cosigned for this size",
            ));
        }
        if !merkle::verify_consistency(
            last_size,
            checkpoint.size,
            &last_root,
            &checkpoint.root,
            &request.proof,
        ) {
            tracing::warn!(
                origin = %checkpoint.origin,
                old_size = last_size,
                new_size = checkpoint.size,
                old_root = %hex::encode(last_root),
                new_root = %hex::encode(checkpoint.root),
                "witness: the consistency proof does not verify (possible split view)"
            );
            return Err(WitnessRefusal::text(
                422,
                "the consistency proof does not verify",
            ));
        }
        sqlx::query(
            "INSERT INTO witness_checkpoints (origin, size, root) VALUES ($1, $2, $3)
             ON CONFLICT (origin) DO UPDATE SET size = excluded.size, root = excluded.root",
        )
        .bind(&checkpoint.origin)
        .bind(to_stored_size(checkpoint.size))
        .bind(checkpoint.root.as_slice())
        .execute(&mut *tx)
        .await
        .map_err(WitnessRefusal::internal)?;
        tx.commit().await.map_err(WitnessRefusal::internal)?;

        let timestamp = now().map_err(WitnessRefusal::internal)?;
        let line = cosignature(&request.note.text, &self.name, &self.key, timestamp).line();
        tracing::info!(
            origin = %checkpoint.origin,
            size = checkpoint.size,
            "witness: cosigned a checkpoint"
        );
        Ok(line)
    }
}

/// One parsed `add-checkpoint` body.
struct Request {
    old: u64,
    proof: Vec<Hash>,
    note: Note,
    checkpoint: Checkpoint,
}

impl Request {
    fn parse(body: &[u8]) -> Result<Self, String> {
        let body = std::str::from_utf8(body).map_err(|_| "the body is not UTF-8".to_owned())?;
        let (first, mut rest) = body
            .split_once('\n')
            .ok_or("the body starts with an 'old <size>' line")?;
        let old = first
            .strip_prefix("old ")
            .and_then(parse_decimal)
            .ok_or("the first line is 'old <size>' in decimal without leading zeroes")?;
        let mut proof = Vec::new();
        loop {
            let (line, after) = rest
                .split_once('\n')
                .ok_or("the consistency proof ends in an empty line")?;
            rest = after;
            if line.is_empty() {
                break;
            }
            if proof.len() == MAX_PROOF_LINES {
                return Err(format!(
                    "more than {MAX_PROOF_LINES} consistency proof lines"
                ));
            }
            let hash: Hash = B64
                .decode(line)
                .ok()
                .and_then(|h| h.try_into().ok())
                .ok_or("a consistency proof line is not a base64 SHA-256 hash")?;
            proof.push(hash);
        }
        let note = Note::parse(rest).map_err(|e| e.to_string())?;
        let checkpoint = Checkpoint::parse(&note.text).map_err(|e| e.to_string())?;
        // Checkpoint::parse reads three lines; the spec also forbids empty extension lines.
        if note.text[..note.text.len() - 1]
            .split('\n')
            .skip(3)
            .any(str::is_empty)
        {
            return Err("a checkpoint's extension lines are not empty".to_owned());
        }
        // SQLite integers are signed; no real tree comes near 2^63 leaves.
        if i64::try_from(checkpoint.size).is_err() {
            return Err("the checkpoint size is out of range".to_owned());
        }
        Ok(Self {
            old,
            proof,
            note,
            checkpoint,
        })
    }
}

/// ASCII decimal without leading zeroes (except `0` itself).
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return None;
    }
    s.parse().ok()
}

/// 403 unless a trusted key's signature verifies; a trusted key's signature that fails
/// rejects the whole note, as signed-note recommends.
fn verify_log_signature(note: &Note, trusted: &[Verifier]) -> Result<(), WitnessRefusal> {
    let mut verified = false;
    for verifier in trusted {
        match note.verify(verifier) {
            Ok(_) => verified = true,
            Err(NoteError::Unverified) => {}
            Err(_) => {
                return Err(WitnessRefusal::text(
                    403,
                    "a signature from a trusted log key does not verify",
                ));
            }
        }
    }
    if verified {
        Ok(())
    } else {
        Err(WitnessRefusal::text(
            403,
            "no signature from a trusted log key",
        ))
    }
}

async fn read_latest(
    conn: &mut sqlx::SqliteConnection,
    origin: &str,
) -> anyhow::Result<Option<(u64, Hash)>> {
    let Some(row) = sqlx::query("SELECT size, root FROM witness_checkpoints WHERE origin = $1")
        .bind(origin)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let size: i64 = row.try_get("size")?;
    let root: Vec<u8> = row.try_get("root")?;
    let size = u64::try_from(size).context("a stored size is negative")?;
    let root: Hash = root
        .try_into()
        .map_err(|_| anyhow::anyhow!("a stored root is not 32 bytes"))?;
    Ok(Some((size, root)))
}

fn to_stored_size(size: u64) -> i64 {
    // Request::parse refused sizes beyond i64.
    i64::try_from(size).unwrap_or(i64::MAX)
}

/// POSIX seconds; a clock before 1970 would make every cosignature a false statement.
fn now() -> anyhow::Result<u64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs())
}

/// `POST /add-checkpoint` (the submission prefix is the root), bodies up to
/// [`MAX_BODY_BYTES`].
pub fn router(witness: Arc<Witness>) -> Router {
    Router::new()
        .route("/add-checkpoint", post(add_checkpoint))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(witness)
}

async fn add_checkpoint(State(witness): State<Arc<Witness>>, body: Bytes) -> Response {
    match witness.add_checkpoint(&body).await {
        Ok(lines) => (
            StatusCode::OK,
            [(CONTENT_TYPE, HeaderValue::from_static(TEXT_CONTENT_TYPE))],
            lines,
        )
            .into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

/// Serves the witness on `listener` until `shutdown` completes.
pub async fn serve(
    witness: Arc<Witness>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(witness))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Reads the witness key (PKCS#8 PEM Ed25519); with `create`, makes one first if the file does
/// not exist, readable by its owner only.
pub fn load_or_create_key(path: &Path, create: bool) -> anyhow::Result<SigningKey> {
    if create && !path.exists() {
        let key = govit_experts::fresh_signing_key()?;
        let pem = signing_key_to_pem(&key)?;
        govit_platform::secret_file::create(path, pem.as_bytes())
            .context("creating the witness key")?;
        return Ok(key);
    }
    let pem = std::fs::read_to_string(path)
        .with_context(|| format!("reading the witness key {}", path.display()))?;
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                key = %path.display(),
                "witness: the key file is readable by others than its owner; chmod 600 it"
            );
        }
    }
    signing_key_from_pem(&pem).with_context(|| format!("in {}", path.display()))
}

/// `govit witness`.
#[derive(Debug, clap::Args)]
pub struct WitnessArgs {
    /// Where to listen for `POST /add-checkpoint`.
    #[arg(long, env = "GOVIT_WITNESS_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// The witness's name, a schema-less URL such as witness.finance.example/govit.
    #[arg(long, env = "GOVIT_WITNESS_NAME")]
    pub name: String,
    /// The witness's Ed25519 key, PKCS#8 PEM.
    #[arg(long, env = "GOVIT_WITNESS_KEY")]
    pub key: PathBuf,
    /// Create --key (mode 0600) if it does not exist.
    #[arg(long)]
    pub init_key: bool,
    /// The SQLite file of the last cosigned checkpoints (default DATA_DIR/witness.db).
    #[arg(long, env = "GOVIT_WITNESS_STATE")]
    pub state: Option<PathBuf>,
    /// A log to witness: its verifier key `<origin>+<key id>+<key>` (repeat for several logs,
    /// or several keys of one log).
    #[arg(long = "log")]
    pub logs: Vec<String>,
    /// Print the witness's verifier key and exit.
    #[arg(long)]
    pub print_vkey: bool,
}

/// Runs `govit witness` until SIGTERM or Ctrl-C.
pub async fn run(args: &WitnessArgs, data_dir: &Path) -> anyhow::Result<()> {
    let key = load_or_create_key(&args.key, args.init_key)?;
    let verifier =
        Verifier::new(&args.name, TYPE_COSIGNATURE_V1, key.verifying_key()).context("--name")?;
    if args.print_vkey {
        println!("{}", verifier.vkey());
        return Ok(());
    }
    if args.logs.is_empty() {
        anyhow::bail!("no log to witness: pass --log <origin>+<key id>+<key>");
    }
    let logs = args
        .logs
        .iter()
        .map(|vkey| Verifier::parse(vkey).with_context(|| format!("--log {vkey}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let state = args
        .state
        .clone()
        .unwrap_or_else(|| data_dir.join("witness.db"));
    let witness = Arc::new(Witness::open(&args.name, key, logs, &state).await?);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    println!("{}", verifier.vkey());
    tracing::info!(
        name = %args.name,
        %addr,
        state = %state.display(),
        logs = witness.logs.len(),
        "witness: serving POST /add-checkpoint"
    );
    serve(
        Arc::clone(&witness),
        listener,
        govit_platform::server::shutdown_signal(),
    )
    .await?;
    witness.close().await;
    Ok(())
}
