//! What `synchronous = FULL` costs: committed write transactions per second on the embedded
//! SQLite database, FULL against NORMAL, each a transaction of two inserts (a row and its audit
//! event, the shape of most govit writes) through the same pool the services use.
//!
//!     cargo bench --bench durability
//!
//! Results: docs/BENCHMARKS.md.

use std::time::Instant;

use govit_platform::db::{Db, sqlite_url};

const COMMITS: usize = 2000;

async fn rate(url: &str) -> anyhow::Result<f64> {
    let db = Db::connect(url).await?;
    sqlx::query("CREATE TABLE rows (id BIGINT PRIMARY KEY, body TEXT NOT NULL)")
        .execute(&db.pool)
        .await?;
    sqlx::query("CREATE TABLE events (id BIGINT PRIMARY KEY, body TEXT NOT NULL)")
        .execute(&db.pool)
        .await?;
    let started = Instant::now();
    for i in 0..COMMITS as i64 {
        let mut tx = db.begin_write().await?;
        for table in ["rows", "events"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO {table} (id, body) VALUES ($1, $2)"
            )))
            .bind(i)
            .bind("a body of the size of a project row, more or less, with some text in it")
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    db.pool.close().await;
    Ok(COMMITS as f64 / elapsed)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // On the disk the data directory would be on, not a RAM-backed temp directory.
    let dir = tempfile::tempdir_in(".")?;
    println!("| synchronous | commits/s (two inserts each) |");
    println!("|-------------|-----------------------------:|");
    for mode in ["full", "normal"] {
        let url = format!(
            "{}?synchronous={mode}",
            sqlite_url(&dir.path().join(format!("{mode}.db")))
        );
        println!("| {mode:<11} | {:>28.0} |", rate(&url).await?);
    }
    Ok(())
}
