//! OpenDraw + ExecuteDraw end to end over gRPC, at pools of 1,000, 10,000 and 100,000 experts,
//! against two baselines measured in the same run on the same database: the bare query that
//! reads the pool's rows, and an empty gRPC call (the health check).
//!
//!     cargo bench --bench draw
//!     GOVIT_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench draw
//!     GOVIT_BENCH_SIZES=1000,10000 cargo bench --bench draw
//!
//! Results and their reading are in docs/BENCHMARKS.md.

use std::time::{Duration, Instant};

use govit_experts::{DrawPolicy, ExpertsService};
use govit_platform::{
    Authenticator, Role, VerificationKey, auth::mint_hs256, server::ServerOptions, uscc,
};
use govit_proto::{
    experts::v1::{self as epb, expert_registry_service_client::ExpertRegistryServiceClient},
    google::r#type::Date,
};
use tokio::net::TcpListener;
use tonic::{Request, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const KEY: &[u8] = b"benchmark-key-benchmark-key-benchmark-key";

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn seed(service: &ExpertsService, n: usize) -> anyhow::Result<()> {
    let pool = &service.db().pool;
    let now = "2026-11-28T00:00:00.000000Z";
    sqlx::query("INSERT INTO categories (code, display_name, description, parent, active, version, create_time, update_time) VALUES ('bench', 'Bench', '', NULL, 1, 1, $1, $1)")
        .bind(now)
        .execute(pool)
        .await?;
    let employer = uscc::with_check_character("91650100MA7700001").unwrap();
    let conflicts = format!(r#"[{{"credit_code":"{employer}","reason":"bench"}}]"#);
    let mut tx = pool.begin().await?;
    for chunk in (0..n).collect::<Vec<_>>().chunks(200) {
        let mut experts = String::from(
            "INSERT INTO experts (id, display_name, employer_credit_code, employer_name, source, title, phone, email, id_number, \
             appointment_start, appointment_end, status, unavailable, conflicts, draws_count, reviews_count, version, create_time, update_time) VALUES ",
        );
        let mut tags = String::from("INSERT INTO expert_categories (category, expert_id) VALUES ");
        for (k, i) in chunk.iter().enumerate() {
            if k > 0 {
                experts.push(',');
                tags.push(',');
            }
            experts.push_str(&format!(
                "('b{i:06}', 'Expert {i}', '{employer}', 'Employer', 'CITY', '', '13800000000', '', '11010519491231002X', \
                 '2025-01-01', '2029-12-31', 'ACTIVE', '[{{\"start\":\"2027-01-01\",\"end\":\"2027-01-05\",\"reason\":\"\"}}]', '{conflicts}', 0, 0, 1, '{now}', '{now}')"
            ));
            tags.push_str(&format!("('bench', 'b{i:06}')"));
        }
        sqlx::query(sqlx::AssertSqlSafe(experts))
            .execute(&mut *tx)
            .await?;
        sqlx::query(sqlx::AssertSqlSafe(tags))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn bare_pool_read(service: &ExpertsService) -> anyhow::Result<usize> {
    let rows = sqlx::query(
        "SELECT c.category AS pool_category, e.id, e.display_name, e.employer_credit_code, e.employer_name, e.source, e.title, \
         e.phone, e.email, e.id_number, e.appointment_start, e.appointment_end, e.status, e.unavailable, e.conflicts, \
         e.draws_count, e.reviews_count, e.version, e.create_time, e.update_time \
         FROM expert_categories c JOIN experts e ON e.id = c.expert_id WHERE c.category IN ($1)",
    )
    .bind("bench")
    .fetch_all(&service.db().pool)
    .await?;
    Ok(rows.len())
}

async fn run(backend: &str, url: &str, n: usize, runs: usize) -> anyhow::Result<()> {
    let service = ExpertsService::open(
        url,
        DrawPolicy {
            require_witness: false,
            ..DrawPolicy::default()
        },
    )
    .await?;
    seed(&service, n).await?;
    let auth = Authenticator::new(&VerificationKey::Hs256(KEY.to_vec()))?;
    let options = ServerOptions {
        max_message_bytes: 64 * 1024 * 1024,
        ..ServerOptions::default()
    };
    let routes = service.clone().routes(auth, &options).await?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        govit_platform::server::serve(listener, routes, &options, std::future::pending()).await
    });
    let channel = Channel::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let token: tonic::metadata::MetadataValue<_> = format!(
        "Bearer {}",
        mint_hs256(
            KEY,
            "bench",
            Role::Office,
            None,
            None,
            Duration::from_secs(3600)
        )?
    )
    .parse()?;
    let mut client =
        ExpertRegistryServiceClient::with_interceptor(channel.clone(), move |mut r: Request<()>| {
            r.metadata_mut().insert("authorization", token.clone());
            Ok(r)
        })
        .max_decoding_message_size(64 * 1024 * 1024);
    let mut health = HealthClient::new(channel);

    let (mut bare, mut empty, mut draws) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs + 1 {
        let t = Instant::now();
        assert_eq!(bare_pool_read(&service).await?, n);
        let bare_time = t.elapsed();

        let t = Instant::now();
        health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?;
        let empty_time = t.elapsed();

        let t = Instant::now();
        let d = client
            .open_draw(epb::OpenDrawRequest {
                project: format!("projects/2026-{i:04}"),
                stage: govit_proto::experts::v1::ReviewStage::Acceptance as i32,
                requirements: vec![epb::PanelRequirement {
                    category: "bench".into(),
                    count: 5,
                    alternates: 3,
                }],
                meeting_date: Some(Date {
                    year: 2026,
                    month: 12,
                    day: 10,
                }),
                ..Default::default()
            })
            .await?
            .into_inner();
        let executed = client
            .execute_draw(epb::ExecuteDrawRequest { name: d.name })
            .await?
            .into_inner();
        let draw_time = t.elapsed();
        assert_eq!(executed.outcome, epb::DrawOutcome::Executed as i32);
        // The first round warms caches and connections; it is not counted.
        if i > 0 {
            bare.push(bare_time);
            empty.push(empty_time);
            draws.push(draw_time);
        }
    }
    let (bare, empty, draw) = (median(bare), median(empty), median(draws));
    println!(
        "| {backend:<10} | {n:>7} | {:>9.2} | {:>9.3} | {:>9.2} | {:>5.2}x |",
        bare.as_secs_f64() * 1e3,
        empty.as_secs_f64() * 1e3,
        draw.as_secs_f64() * 1e3,
        draw.as_secs_f64() / bare.as_secs_f64()
    );
    service.db().pool.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let sizes: Vec<usize> = std::env::var("GOVIT_BENCH_SIZES")
        .unwrap_or_else(|_| "1000,10000,100000".into())
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    println!("| backend    |    pool | bare read ms | empty rpc ms | draw ms | draw / bare |");
    println!("|------------|--------:|----------:|----------:|----------:|-------:|");
    for &n in &sizes {
        let runs = if n >= 100_000 { 5 } else { 10 };
        let dir = tempfile::tempdir()?;
        let url = govit_platform::db::sqlite_url(&dir.path().join("bench.db"));
        run("SQLite", &url, n, runs).await?;
        if let Ok(pg) = std::env::var("GOVIT_BENCH_POSTGRES_URL") {
            let (server, _) = pg.rsplit_once('/').unwrap_or((&pg, ""));
            let name = format!("govit_bench_{}", uuid::Uuid::new_v4().simple());
            run("PostgreSQL", &format!("{server}/{name}"), n, runs).await?;
            let admin = sqlx::PgPool::connect(&pg).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&admin)
            .await?;
        }
    }
    Ok(())
}
