//! What the scheduling worker costs while nothing happens, as open reviews grow: one worker
//! pass (`SchedulingService::tick`, run every second by `govit up`) over 10,000 open reviews
//! with panels out for answers and meetings set, against the same pass over an empty database
//! (the floor: the fixed queries of a pass) and against a pass that takes every open review
//! further (what every pass cost before the worker woke on due instants).
//!
//!     cargo bench --bench worker
//!     GOVIT_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench worker
//!     GOVIT_BENCH_REVIEWS=300 cargo bench --bench worker
//!
//! Results: docs/BENCHMARKS.md.

use std::time::{Duration, Instant};

use govit_platform::client::BearerToken;
use govit_scheduling::{Peers, SchedulingPolicy, SchedulingService};

const PASSES: u32 = 50;

/// CPU time of the whole process so far (every thread: SQLite runs on its own), from
/// /proc/self/stat, in clock ticks of 10 ms.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_name = stat.rsplit(')').next().unwrap_or("");
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|t| t.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

async fn open(url: &str) -> anyhow::Result<SchedulingService> {
    // Nothing in this bench calls the other services; the channels are never connected.
    let peers = Peers {
        experts_url: "http://127.0.0.1:9".into(),
        projects_url: "http://127.0.0.1:9".into(),
        service_token: BearerToken::new("bench")?,
        tls: None,
    };
    SchedulingService::open(url, SchedulingPolicy::default(), &peers).await
}

/// `n` reviews inviting their panels: each has its draw executed, five invitations awaiting an
/// answer for another 20 hours, and (every other one) a meeting in three days.
async fn seed(service: &SchedulingService, n: usize) -> anyhow::Result<()> {
    let pool = &service.db().pool;
    let now = chrono::Utc::now();
    let stored = govit_platform::time::to_stored;
    let (created, respond_by) = (stored(now), stored(now + chrono::Duration::hours(20)));
    let meeting_start = stored(now + chrono::Duration::days(3));
    let meeting = format!(
        r#"{{"start":"{meeting_start}","end":"{meeting_start}","venue":"room 3","online_link":"","state":"SCHEDULED","change_reason":""}}"#
    );
    let panel = r#"[{"category":"software","count":5,"alternates":1}]"#;
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let mut tx = pool.begin().await?;
        for &i in chunk {
            let id = format!("r{i:06}");
            let (meeting, start) = if i % 2 == 0 {
                (Some(meeting.clone()), meeting_start.clone())
            } else {
                (None, String::new())
            };
            sqlx::query(
                "INSERT INTO reviews (id, request_key, project_id, stage, state, panel, excluded_organizations, request_date, deadline, \
                 calendar_version, chair_expert_id, meeting, conclusion, stall_reason, version, event_count, create_time, applicant, \
                 requester, request_hash, accept_time, paused_from, cancel_reason, wake_at, meeting_start, meeting_reminded) \
                 VALUES ($1, $1, $2, 'PRELIMINARY_REVIEW', 'INVITING', $3, '[]', '2026-11-27', '2026-12-04', '2026v1', NULL, $4, NULL, '', 1, 0, $5, \
                 '', 'office', '', $5, NULL, '', NULL, $6, 0)",
            )
            .bind(id.clone())
            .bind(format!("2026-{i:04}"))
            .bind(panel)
            .bind(meeting)
            .bind(created.clone())
            .bind(start)
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO review_draws (review_id, draw_id, seq, category, invited, abandoned) VALUES ($1, $2, 1, '', 1, 0)")
                .bind(id.clone())
                .bind(format!("d{i:06}"))
                .execute(&mut *tx)
                .await?;
            for e in 0..5 {
                sqlx::query(
                    "INSERT INTO invitations (review_id, expert_id, category, draw_id, seq, state, respond_by, decline_reason, reminded) \
                     VALUES ($1, $2, 'software', $3, 1, 'PENDING', $4, '', 0)",
                )
                .bind(id.clone())
                .bind(format!("e{:06}", i * 5 + e))
                .bind(format!("d{i:06}"))
                .bind(respond_by.clone())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
    }
    Ok(())
}

/// Wall and CPU time of one pass, the median and the mean over `count` passes.
async fn passes(
    service: &SchedulingService,
    all_due: bool,
    count: u32,
) -> anyhow::Result<(Duration, Duration)> {
    let mut walls = Vec::new();
    let cpu_before = cpu_time();
    for _ in 0..count {
        if all_due {
            sqlx::query("UPDATE reviews SET wake_at = ''")
                .execute(&service.db().pool)
                .await?;
        }
        let started = Instant::now();
        service.tick().await?;
        walls.push(started.elapsed());
    }
    let cpu = (cpu_time() - cpu_before) / count;
    walls.sort();
    Ok((walls[walls.len() / 2], cpu))
}

async fn database(name: &str, dir: &std::path::Path) -> anyhow::Result<String> {
    match std::env::var("GOVIT_BENCH_POSTGRES_URL") {
        Ok(base) => {
            let db = format!("govit_bench_worker_{name}");
            let admin = sqlx::PgPool::connect(&base).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("DROP DATABASE IF EXISTS {db}")))
                .execute(&admin)
                .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
                .execute(&admin)
                .await?;
            let (prefix, _) = base.rsplit_once('/').unwrap_or((&base, ""));
            Ok(format!("{prefix}/{db}"))
        }
        Err(_) => Ok(govit_platform::db::sqlite_url(
            &dir.join(format!("{name}.db")),
        )),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let reviews: usize = std::env::var("GOVIT_BENCH_REVIEWS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let dir = tempfile::tempdir_in(".")?;
    let empty = open(&database("empty", dir.path()).await?).await?;
    let full = open(&database("full", dir.path()).await?).await?;
    seed(&full, reviews).await?;
    // The first pass takes every seeded review once (as after an upgrade) and sets its wake.
    full.tick().await?;
    let (floor_wall, floor_cpu) = passes(&empty, false, PASSES).await?;
    let (idle_wall, idle_cpu) = passes(&full, false, PASSES).await?;
    // Seconds each: three are enough.
    let (all_wall, all_cpu) = passes(&full, true, 3).await?;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("| one worker pass | wall (median) | CPU (mean) | CPU-s per 10 s at 1 pass/s |");
    println!("|---|---:|---:|---:|");
    for (what, wall, cpu) in [
        ("empty database (floor)".to_string(), floor_wall, floor_cpu),
        (
            format!("{reviews} open reviews, none due"),
            idle_wall,
            idle_cpu,
        ),
        (
            format!("{reviews} open reviews, all due (the old scan)"),
            all_wall,
            all_cpu,
        ),
    ] {
        println!(
            "| {what} | {:.2} ms | {:.2} ms | {:.3} |",
            ms(wall),
            ms(cpu),
            cpu.as_secs_f64() * 10.0
        );
    }
    println!(
        "\nidle pass / floor: {:.2}× wall",
        idle_wall.as_secs_f64() / floor_wall.as_secs_f64()
    );
    Ok(())
}
