//! Floors measured outside govit: what the database's own shell does with the same writes.

use std::{
    io::Write,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;

/// A database made on a PostgreSQL server for one bench run.
#[derive(Debug)]
pub struct ScratchDatabase {
    pub url: String,
    admin_url: String,
    name: String,
}

impl ScratchDatabase {
    pub async fn create(admin_url: &str) -> anyhow::Result<ScratchDatabase> {
        let name = format!("govit_bench_{}", std::process::id());
        let (base, _) = admin_url
            .rsplit_once('/')
            .context("the PostgreSQL URL has no database path")?;
        let admin = govit_platform::Db::connect(admin_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin.pool)
            .await?;
        Ok(ScratchDatabase {
            url: format!("{base}/{name}"),
            admin_url: admin_url.to_owned(),
            name,
        })
    }

    /// A further scratch database beside this one, for one more service (`name_suffix`);
    /// dropped with it. The experts service keeps `url` itself, which the floors read.
    pub async fn for_service(&self, suffix: &str) -> anyhow::Result<String> {
        if suffix == "experts" {
            return Ok(self.url.clone());
        }
        let name = format!("{}_{suffix}", self.name);
        let admin = govit_platform::Db::connect(&self.admin_url).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin.pool)
            .await?;
        let (base, _) = self.url.rsplit_once('/').context("no database path")?;
        Ok(format!("{base}/{name}"))
    }

    pub async fn drop(self) -> anyhow::Result<()> {
        let admin = govit_platform::Db::connect(&self.admin_url).await?;
        for name in [
            self.name.clone(),
            format!("{}_projects", self.name),
            format!("{}_scheduling", self.name),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&admin.pool)
            .await?;
        }
        Ok(())
    }
}

/// Raw transactions committed by a database shell.
#[derive(Debug)]
pub struct Floor {
    pub transactions: usize,
    pub elapsed: Duration,
    pub shell: &'static str,
}

impl Floor {
    pub fn rate(&self) -> f64 {
        self.transactions as f64 / self.elapsed.as_secs_f64()
    }
}

// About the sizes of a project's row and its audit event.
const ROW_BYTES: usize = 700;
const EVENT_BYTES: usize = 400;

/// Transactions of two inserts (a row and its audit event, the shape of a CreateProject) in
/// the database's own shell: `sqlite3` on a file beside the service's, in WAL mode with the
/// service's `synchronous` setting, one writer as SQLite allows; or `psql` on the scratch
/// database from `processes` sessions at once. Runs for about `duration`.
pub fn raw_inserts(
    scratch: &Path,
    postgres: Option<&ScratchDatabase>,
    sqlite_synchronous: Option<&str>,
    processes: usize,
    duration: Duration,
) -> anyhow::Result<Floor> {
    let run = |transactions: usize, first: usize| -> anyhow::Result<Floor> {
        match postgres {
            None => {
                let file = scratch.join("floor.db");
                let mut script = format!(
                    "PRAGMA journal_mode=WAL;\nPRAGMA synchronous={};\n{}",
                    sqlite_synchronous.unwrap_or("full"),
                    TABLES
                );
                script.push_str(&transactions_sql(first, transactions));
                let elapsed = shell(Command::new("sqlite3").arg(&file), &script)?;
                Ok(Floor {
                    transactions,
                    elapsed,
                    shell: "sqlite3",
                })
            }
            Some(db) => {
                let psql = || {
                    let mut command = Command::new("psql");
                    command.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", &db.url]);
                    command
                };
                shell(&mut psql(), TABLES)?;
                let share = transactions.div_ceil(processes);
                let started = Instant::now();
                let children: Vec<_> = (0..processes)
                    .map(|p| spawn(&mut psql(), transactions_sql(first + p * share, share)))
                    .collect::<anyhow::Result<_>>()?;
                for child in children {
                    finish(child)?;
                }
                Ok(Floor {
                    transactions: share * processes,
                    elapsed: started.elapsed(),
                    shell: "psql",
                })
            }
        }
    };
    // A short run to size the real one.
    let probe = run(300, 0)?;
    let wanted = (probe.rate() * duration.as_secs_f64()) as usize;
    // Keys far past the probe's, however its rows were shared among sessions.
    run(wanted.clamp(300, 500_000), 1_000_000)
}

const TABLES: &str = "CREATE TABLE IF NOT EXISTS floor_rows (id TEXT PRIMARY KEY, body TEXT NOT NULL);\n\
     CREATE TABLE IF NOT EXISTS floor_events (row_id TEXT NOT NULL, seq BIGINT NOT NULL, body TEXT NOT NULL, PRIMARY KEY (row_id, seq));\n";

fn transactions_sql(first: usize, n: usize) -> String {
    let row = "r".repeat(ROW_BYTES);
    let event = "e".repeat(EVENT_BYTES);
    let mut sql = String::with_capacity(n * (ROW_BYTES + EVENT_BYTES + 160));
    for k in first..first + n {
        sql.push_str(&format!(
            "BEGIN;\nINSERT INTO floor_rows VALUES ('p{k}', '{row}');\n\
             INSERT INTO floor_events VALUES ('p{k}', 1, '{event}');\nCOMMIT;\n"
        ));
    }
    sql
}

fn spawn(command: &mut Command, script: String) -> anyhow::Result<std::process::Child> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {:?} (is it installed?)", command.get_program()))?;
    let mut stdin = child.stdin.take().context("no stdin")?;
    // Written from a thread so that a shell that stops reading cannot block this one.
    std::thread::spawn(move || stdin.write_all(script.as_bytes()));
    Ok(child)
}

fn finish(child: std::process::Child) -> anyhow::Result<()> {
    let output = child.wait_with_output()?;
    anyhow::ensure!(
        output.status.success(),
        "the database shell failed: {}",
        output.status
    );
    Ok(())
}

fn shell(command: &mut Command, script: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    finish(spawn(command, script.to_owned())?)?;
    Ok(started.elapsed())
}
