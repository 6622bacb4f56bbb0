//! One database per service, reached through sqlx's `Any` driver so that the same SQL serves
//! the embedded SQLite default and PostgreSQL.
//!
//! The SQL is written to the common subset of both: `$1` placeholders (SQLite accepts them),
//! TEXT/BIGINT/INTEGER/BOOLEAN columns, `ON CONFLICT ... DO UPDATE`, `RETURNING`. Instants are
//! stored as fixed-width RFC 3339 UTC text (see [`crate::time`]), which sorts correctly.

use std::{path::Path, sync::Arc, time::Duration};

use anyhow::Context;

use crate::sqlite_reader::SqliteReader;
use sqlx::{
    Any, AnyPool, Executor, Transaction,
    any::AnyPoolOptions,
    migrate::{MigrateDatabase, Migrator},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn of_url(url: &str) -> anyhow::Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Ok(Backend::Postgres)
        } else {
            anyhow::bail!("unsupported database URL: expected sqlite:// or postgres://")
        }
    }
}

impl Backend {
    /// The backend behind a connection of the pool.
    pub fn of_connection(conn: &sqlx::AnyConnection) -> Backend {
        if conn.backend_name() == "SQLite" {
            Backend::Sqlite
        } else {
            Backend::Postgres
        }
    }

    /// How many rows of `columns` parameters one multi-row statement should carry. The SQLite
    /// driver looks every parameter up by name among all of its statement's, so a statement's
    /// cost grows with the square of its parameters: near 128 is the sweet spot (measured in
    /// docs/BENCHMARKS.md, roster import). PostgreSQL pays a round trip per statement
    /// instead, so there larger statements win, well under its 65,535-parameter limit.
    pub fn rows_per_statement(self, columns: usize) -> usize {
        let parameters = match self {
            Backend::Sqlite => 128,
            Backend::Postgres => 4096,
        };
        (parameters / columns.max(1)).max(1)
    }
}

/// A service's database: the pool and which backend is behind it.
#[derive(Debug, Clone)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// On a SQLite file, read-only connections for the hot reads, used in place
    /// ([`crate::sqlite_reader`]); none on PostgreSQL or an in-memory database.
    pub reader: Option<Arc<SqliteReader>>,
}

pub type Tx = Transaction<'static, Any>;

impl Db {
    /// Connects, creating the SQLite file (and its directory) or PostgreSQL database if absent,
    /// and applies the service's migrations.
    pub async fn connect_and_migrate(url: &str, migrator: &Migrator) -> anyhow::Result<Db> {
        let db = Db::connect(url).await?;
        migrator
            .run(&db.pool)
            .await
            .context("applying migrations")?;
        Ok(db)
    }

    /// Connects. A SQLite URL may carry `synchronous=full` (the default: an acknowledged commit
    /// survives a power cut) or `synchronous=normal` (faster; in WAL mode a power cut can lose
    /// the last commits, never corrupt the file). docs/BENCHMARKS.md shows the cost.
    pub async fn connect(url: &str) -> anyhow::Result<Db> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of_url(url)?;
        let (url, synchronous) = match backend {
            Backend::Sqlite => split_synchronous(url)?,
            Backend::Postgres => (url.to_owned(), Synchronous::Full),
        };
        let url = url.as_str();
        let sqlite_dir = sqlite_file_path(url)
            .filter(|_| backend == Backend::Sqlite)
            .and_then(|path| Path::new(&path).parent().map(Path::to_path_buf))
            .filter(|dir| !dir.as_os_str().is_empty());
        if let Some(dir) = sqlite_dir {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("creating database directory {}", dir.display()))?;
        }
        if !Any::database_exists(url).await.unwrap_or(false) {
            Any::create_database(url)
                .await
                .context("creating database")?;
        }
        let options = AnyPoolOptions::new()
            .max_connections(match backend {
                // SQLite has one writer at a time anyway; a few readers suffice.
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        conn.execute("PRAGMA journal_mode = WAL").await?;
                        conn.execute("PRAGMA foreign_keys = ON").await?;
                        conn.execute("PRAGMA busy_timeout = 30000").await?;
                        conn.execute(synchronous.pragma()).await?;
                    }
                    Ok(())
                })
            });
        let pool = options
            .connect(url)
            .await
            .context("connecting to the database")?;
        let reader = reader_path(url)
            .filter(|_| backend == Backend::Sqlite)
            .map(|path| Arc::new(SqliteReader::new(Path::new(&path))));
        Ok(Db {
            pool,
            backend,
            reader,
        })
    }

    /// Begins a transaction that will write. On SQLite it takes the write lock at once
    /// (`BEGIN IMMEDIATE`): a deferred transaction that reads first and writes later can fail
    /// with SQLITE_BUSY instead of waiting when another writer got there in between.
    ///
    /// Inside an [`crate::idempotency::Once`] call, the first write transaction also claims the
    /// call's request id, so that the claim commits or rolls back with the write.
    pub async fn begin_write(&self) -> Result<Tx, sqlx::Error> {
        let mut tx = self.begin_side_write().await?;
        crate::idempotency::claim_in(&mut tx).await?;
        Ok(tx)
    }

    /// A write beside a call's own, which must not claim its request id: a recorded read, which
    /// commits even when the call's write then fails.
    pub async fn begin_side_write(&self) -> Result<Tx, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.pool.begin().await,
        }
    }
}

/// How SQLite syncs a commit to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synchronous {
    Full,
    Normal,
}

impl Synchronous {
    fn pragma(self) -> &'static str {
        match self {
            Synchronous::Full => "PRAGMA synchronous = FULL",
            Synchronous::Normal => "PRAGMA synchronous = NORMAL",
        }
    }
}

/// Takes govit's own `synchronous=` option out of a SQLite URL (sqlx does not know it).
fn split_synchronous(url: &str) -> anyhow::Result<(String, Synchronous)> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok((url.to_owned(), Synchronous::Full));
    };
    let mut synchronous = Synchronous::Full;
    let mut rest = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("synchronous", value)) => {
                synchronous = match value.to_ascii_lowercase().as_str() {
                    "full" => Synchronous::Full,
                    "normal" => Synchronous::Normal,
                    other => anyhow::bail!("synchronous={other} is neither full nor normal"),
                }
            }
            _ => rest.push(pair),
        }
    }
    let url = if rest.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    Ok((url, synchronous))
}

/// The file behind a `sqlite://path?options` URL, or None for an in-memory database.
pub fn sqlite_file_path(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        None
    } else {
        Some(path.to_owned())
    }
}

/// The file a SQLite reader may open beside sqlx's pool: only where it is surely the file sqlx
/// opened. An in-memory database (`:memory:`, `mode=memory`) has no file another connection
/// could share, and a percent-encoded path is decoded by sqlx, not here; those read through
/// sqlx alone.
fn reader_path(url: &str) -> Option<String> {
    let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    if query.split('&').any(|pair| pair == "mode=memory") {
        return None;
    }
    sqlite_file_path(url).filter(|path| !path.contains('%'))
}

/// Builds a SQLite URL for a file path.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Whether a sqlx error is a unique-constraint violation (both backends).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    matches!(err, sqlx::Error::Database(db) if db.is_unique_violation())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_read_from_urls() {
        assert_eq!(
            sqlite_file_path("sqlite://govit-data/p.db?mode=rwc").as_deref(),
            Some("govit-data/p.db")
        );
        assert_eq!(sqlite_file_path("sqlite::memory:"), None);
        assert_eq!(
            split_synchronous("sqlite://a.db?mode=rwc&synchronous=normal").unwrap(),
            ("sqlite://a.db?mode=rwc".to_owned(), Synchronous::Normal)
        );
        assert_eq!(
            split_synchronous("sqlite://a.db").unwrap(),
            ("sqlite://a.db".to_owned(), Synchronous::Full)
        );
        assert!(split_synchronous("sqlite://a.db?synchronous=off").is_err());
        assert!(Backend::of_url("mysql://x").is_err());
        assert_eq!(
            reader_path("sqlite://govit-data/p.db?mode=rwc").as_deref(),
            Some("govit-data/p.db")
        );
        assert_eq!(reader_path("sqlite://p.db?mode=memory&cache=shared"), None);
        assert_eq!(reader_path("sqlite::memory:"), None);
        assert_eq!(reader_path("sqlite://my%20data/p.db"), None);
    }
}
