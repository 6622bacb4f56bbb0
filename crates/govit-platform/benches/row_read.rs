//! What one read by primary key costs through each way the services can reach a database:
//! sqlx's `Any` pool, a typed sqlx pool, and (SQLite) a `rusqlite` connection used in place,
//! as `SqliteReader` does. A table of 41 columns, like `projects`, 1,000 rows; 16 concurrent
//! readers on a multi-threaded runtime; CPU time of this process per read. docs/BENCHMARKS.md
//! ("sqlx's SQLite driver, not `Any`, was the cost of every read").
//!
//! cargo bench -p govit-platform --bench row_read
//! GOVIT_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench -p govit-platform --bench row_read

use std::{sync::Arc, time::Instant};

use govit_platform::sqlite_reader::SqliteReader;
use sqlx::{AssertSqlSafe, Row, any::AnyPoolOptions};

const READS: usize = 40_000;
const READERS: usize = 16;
const SQL: &str = "SELECT * FROM t WHERE code = $1";

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn columns() -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut decls = Vec::new();
    let mut names = Vec::new();
    let mut values = Vec::new();
    for i in 0..41 {
        if i % 3 == 0 {
            decls.push(format!("i{i} BIGINT"));
            names.push(format!("i{i}"));
            values.push(format!("{}", i * 1000));
        } else {
            decls.push(format!("t{i} TEXT"));
            names.push(format!("t{i}"));
            values.push(format!("'a text of about thirty chars {i}'"));
        }
    }
    (decls, names, values)
}

/// `measure` of the primary-key read through a sqlx pool, whatever its database: the typed pools
/// share no trait a function could take them by without a page of bounds.
macro_rules! measure_pool {
    ($label:expr, $pool:expr) => {{
        let pool = $pool.clone();
        measure($label, move |code| {
            let pool = pool.clone();
            async move {
                let row = sqlx::query(SQL)
                    .bind(code)
                    .fetch_one(&pool)
                    .await
                    .expect("row");
                checksum(&row)
            }
        })
        .await;
    }};
}

fn checksum(row: &impl RowAt) -> usize {
    (1..42)
        .map(|i| {
            if (i - 1) % 3 == 0 {
                row.int(i) as usize
            } else {
                row.text(i).len()
            }
        })
        .sum()
}

trait RowAt {
    fn int(&self, i: usize) -> i64;
    fn text(&self, i: usize) -> String;
}

impl<R: Row> RowAt for R
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn int(&self, i: usize) -> i64 {
        self.try_get(i).expect("an integer column")
    }
    fn text(&self, i: usize) -> String {
        self.try_get(i).expect("a text column")
    }
}

async fn measure<F, Fut>(label: &str, read: F)
where
    F: Fn(String) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = usize> + Send,
{
    let started = Instant::now();
    let cpu = cpu_seconds();
    let mut tasks = Vec::new();
    for reader in 0..READERS {
        let read = read.clone();
        tasks.push(tokio::spawn(async move {
            let mut sum = 0;
            for k in 0..READS / READERS {
                sum += read(format!("p{}", (k * READERS + reader) % 1000)).await;
            }
            sum
        }));
    }
    for task in tasks {
        std::hint::black_box(task.await.expect("a reader"));
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "| {label} | {:.0} | {:.1} |",
        READS as f64 / seconds,
        (cpu_seconds() - cpu) * 1e6 / READS as f64
    );
}

async fn fill(pool: &sqlx::AnyPool) {
    let (decls, names, values) = columns();
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP TABLE IF EXISTS t; CREATE TABLE t (code TEXT PRIMARY KEY, {})",
        decls.join(", ")
    )))
    .execute(pool)
    .await
    .expect("create");
    for k in 0..1000 {
        sqlx::raw_sql(AssertSqlSafe(format!(
            "INSERT INTO t (code, {}) VALUES ('p{k}', {})",
            names.join(", "),
            values.join(", ")
        )))
        .execute(pool)
        .await
        .expect("insert");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    sqlx::any::install_default_drivers();
    println!("| path | reads/s | CPU µs per read |");
    println!("|---|---:|---:|");
    let dir = tempfile::tempdir().expect("a scratch directory");
    let path = dir.path().join("rows.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let any = AnyPoolOptions::new()
        .max_connections(8)
        .connect(&url)
        .await
        .expect("sqlite");
    sqlx::raw_sql("PRAGMA journal_mode = WAL")
        .execute(&any)
        .await
        .expect("wal");
    fill(&any).await;
    let typed = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(8)
        .connect(&url)
        .await
        .expect("sqlite");
    let reader = Arc::new(SqliteReader::new(&path));
    for _ in 0..2 {
        measure_pool!("SQLite, sqlx Any pool", any);
        measure_pool!("SQLite, sqlx SqlitePool", typed);
        let reader = Arc::clone(&reader);
        measure("SQLite, rusqlite in place (SqliteReader)", move |code| {
            let reader = Arc::clone(&reader);
            async move {
                reader
                    .read(|c| {
                        let mut statement = c.prepare_cached("SELECT * FROM t WHERE code = ?1")?;
                        statement.query_row([code], |row| {
                            Ok((1..42)
                                .map(|i| {
                                    if (i - 1) % 3 == 0 {
                                        row.get::<_, i64>(i).unwrap_or_default() as usize
                                    } else {
                                        row.get::<_, String>(i).unwrap_or_default().len()
                                    }
                                })
                                .sum::<usize>())
                        })
                    })
                    .expect("row")
            }
        })
        .await;
    }
    let Ok(server) = std::env::var("GOVIT_BENCH_POSTGRES_URL") else {
        return;
    };
    let scratch = format!("govit_bench_rows_{}", std::process::id());
    let admin = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&server)
        .await
        .expect("postgres");
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {scratch}")))
        .execute(&admin)
        .await
        .expect("scratch database");
    let base = server.rsplit_once('/').map_or(server.as_str(), |(b, _)| b);
    let url = format!("{base}/{scratch}");
    let any = AnyPoolOptions::new()
        .max_connections(16)
        .connect(&url)
        .await
        .expect("postgres");
    fill(&any).await;
    let typed = sqlx::postgres::PgPoolOptions::new()
        .max_connections(16)
        .connect(&url)
        .await
        .expect("postgres");
    for _ in 0..2 {
        measure_pool!("PostgreSQL, sqlx Any pool", any);
        measure_pool!("PostgreSQL, sqlx PgPool", typed);
    }
    any.close().await;
    typed.close().await;
    sqlx::raw_sql(AssertSqlSafe(format!("DROP DATABASE {scratch}")))
        .execute(&admin)
        .await
        .expect("drop scratch database");
}
