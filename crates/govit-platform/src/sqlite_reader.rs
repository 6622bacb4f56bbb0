//! Reads of SQLite on the calling thread, for the hot paths (a project by code, a page of
//! projects, a draw's pool, the portfolio's totals).
//!
//! sqlx's SQLite driver runs each connection on a worker thread and hands every command and
//! every row across a channel: measured on this project's machine kind, a one-row read by
//! primary key costs about 56 µs of CPU through it (typed pool or `Any` alike, within 10%),
//! against 7 µs for the same read on a connection used in place (docs/BENCHMARKS.md). Writes
//! stay on sqlx, in its transactions; these connections only read, each statement its own
//! snapshot of what has committed, so a read after a write's commit sees it.

use std::{
    path::{Path, PathBuf},
    sync::Mutex,
    time::Duration,
};

use rusqlite::{Connection, OpenFlags, config::DbConfig};

/// A small pool of read-only connections to one SQLite file.
pub struct SqliteReader {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl std::fmt::Debug for SqliteReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteReader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// More idle connections than a two-core server's concurrent readers are closed, not kept.
const MAX_IDLE: usize = 8;

impl SqliteReader {
    pub fn new(path: &Path) -> SqliteReader {
        SqliteReader {
            path: path.to_owned(),
            idle: Mutex::new(Vec::new()),
        }
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        // A checkpoint or a writer's recovery can hold a lock for a moment; wait as sqlx does.
        conn.busy_timeout(Duration::from_secs(30))?;
        conn.set_prepared_statement_cache_capacity(64);
        // Without the query planner stability guarantee, a statement whose plan might depend on
        // a bound value (a LIMIT, a range under STAT4, which the bundled SQLite enables) is
        // compiled again whenever that value is bound: every page of a list was parsed and
        // planned anew, 16% of the CPU of a `ListProjects` load.
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        Ok(conn)
    }

    /// Runs `read` on an idle connection (opening one when none is), in place. For reads that
    /// take microseconds: a row or a page.
    pub fn read<T, E: From<rusqlite::Error>>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        let taken = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match taken {
            Some(conn) => conn,
            None => self.open()?,
        };
        let answer = read(&conn);
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
        answer
    }

    /// Like [`Self::read`], for reads of many rows (a pool of 100,000 experts, every project):
    /// on a multi-threaded runtime the worker hands its other tasks on first, so that a read of
    /// tens of milliseconds does not hold them up. The read gets a connection of its own,
    /// closed after it: a scan fills a connection's page cache, and an idle registry should
    /// not keep it (the memory target in docs/BENCHMARKS.md); opening one costs far less than
    /// such a read.
    pub fn read_long<T, E: From<rusqlite::Error>>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, E>,
    ) -> Result<T, E> {
        let run = || -> Result<T, E> {
            let conn = self.open()?;
            read(&conn)
        };
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(run),
            _ => run(),
        }
    }
}

/// Binds sqlx's numbered placeholders on a reader's statement: `$N` to the N-th of `args`, by
/// its name, whatever order the placeholders appear in (as sqlx-sqlite binds them).
pub fn bind_numbered<A: rusqlite::ToSql>(
    statement: &mut rusqlite::Statement<'_>,
    args: impl IntoIterator<Item = A>,
) -> rusqlite::Result<()> {
    for (i, arg) in args.into_iter().enumerate() {
        if let Some(index) = statement.parameter_index(&format!("${}", i + 1))? {
            statement.raw_bind_parameter(index, arg)?;
        }
    }
    Ok(())
}

/// Column `index` read as `S` and converted to `T` (a stored enum from its text): a value that
/// does not convert is a corrupt row, as sqlx's `#[sqlx(try_from = ...)]` makes it, never a
/// panic.
pub fn get_converted<S, T>(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<T>
where
    S: rusqlite::types::FromSql,
    T: TryFrom<S>,
    T::Error: std::error::Error + Send + Sync + 'static,
{
    row.get::<_, S>(index)?.try_into().map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, Box::new(e))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reads_see_what_has_committed_and_only_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch(
                "PRAGMA journal_mode = WAL; CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1);",
            )
            .unwrap();
        let reader = SqliteReader::new(&path);
        let count = |r: &SqliteReader| {
            r.read(|c| c.query_row("SELECT COUNT(*) FROM t", [], |row| row.get::<_, i64>(0)))
                .unwrap()
        };
        assert_eq!(count(&reader), 1);
        writer.execute("INSERT INTO t VALUES (2)", []).unwrap();
        assert_eq!(count(&reader), 2, "a later read sees the commit");
        let long = reader
            .read_long(|c| c.query_row("SELECT SUM(v) FROM t", [], |row| row.get::<_, i64>(0)))
            .unwrap();
        assert_eq!(long, 3);
        let write = reader.read(|c| c.execute("INSERT INTO t VALUES (3)", []));
        assert!(write.is_err(), "the connections are read-only");
    }
}
