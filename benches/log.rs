//! The transparency log at scale: the signed head, inclusion and consistency proofs over gRPC,
//! and the C2SP checkpoint and a hash tile over HTTP, on a log of 1,000,000 entries, each as a
//! median against an empty gRPC call (the health check) on the same server in the same run.
//!
//!     cargo bench --bench log
//!     GOVIT_BENCH_LOG_SIZE=100000 cargo bench --bench log
//!     GOVIT_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench log
//!
//! The log is written straight into the database (entries, their subtrees, the size), as a
//! registry that appended them one by one would have left it. Results: docs/BENCHMARKS.md.

use std::{
    collections::HashMap,
    future::Future,
    time::{Duration, Instant},
};

use govit_draw::merkle::{
    self,
    nodes::{self, NodeId},
};
use govit_experts::{DrawPolicy, ExpertsService};
use govit_platform::{
    Authenticator, Role, VerificationKey, auth::mint_hs256, server::ServerOptions,
};
use govit_proto::experts::v1::{
    self as epb, expert_registry_service_client::ExpertRegistryServiceClient,
};
use tokio::net::TcpListener;
use tonic::{Request, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const KEY: &[u8] = b"benchmark-key-benchmark-key-benchmark-key";
const SAMPLES: usize = 200;

fn entry(i: u64) -> String {
    format!(r#"{{"at":"2026-11-28T00:00:00.000000Z","index":{i},"type":"bench"}}"#)
}

/// Writes `n` entries and every subtree their appends would have stored.
async fn fill(service: &ExpertsService, n: u64) -> anyhow::Result<()> {
    let pool = &service.db().pool;
    let mut made: HashMap<NodeId, merkle::Hash> = HashMap::new();
    let mut tx = pool.begin().await?;
    let mut entries = Vec::new();
    let mut rows = Vec::new();
    for i in 0..n {
        let text = entry(i);
        let leaf = merkle::leaf_hash(text.as_bytes());
        for (id, hash) in nodes::append(i, leaf, &|id| made.get(&id).copied())? {
            made.insert(id, hash);
            rows.push(format!(
                "({}, {}, '{}')",
                id.level,
                id.index,
                hex::encode(hash)
            ));
        }
        entries.push(format!(
            "({i}, '{text}', '{}', NULL, '2026-11-28T00:00:00.000000Z')",
            hex::encode(leaf)
        ));
        if entries.len() == 500 || i + 1 == n {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO log_entries (idx, entry, leaf_hash, draw_id, create_time) VALUES {}",
                entries.join(",")
            )))
            .execute(&mut *tx)
            .await?;
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "INSERT INTO log_nodes (level, idx, hash) VALUES {}",
                rows.join(",")
            )))
            .execute(&mut *tx)
            .await?;
            entries.clear();
            rows.clear();
        }
        // Only the right edge is ever read again while filling.
        if i % 100_000 == 99_999 {
            made.retain(|id, _| {
                let span = 1u64 << id.level;
                (id.index + 1) * span > i.saturating_sub(span * 2)
            });
        }
    }
    sqlx::query("UPDATE log_state SET size = $1 WHERE id = 1")
        .bind(n as i64)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

async fn median_of<F, Fut>(mut call: F) -> anyhow::Result<Duration>
where
    F: FnMut(u64) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES as u64 + 5 {
        let t = Instant::now();
        call(i).await?;
        // The first calls warm caches and connections; they are not counted.
        if i >= 5 {
            samples.push(t.elapsed());
        }
    }
    samples.sort();
    Ok(samples[samples.len() / 2])
}

async fn run(backend: &str, url: &str, n: u64) -> anyhow::Result<()> {
    let service = ExpertsService::open(url, DrawPolicy::default()).await?;
    let filling = Instant::now();
    fill(&service, n).await?;
    eprintln!(
        "{backend}: {n} entries written in {:.1} s",
        filling.elapsed().as_secs_f64()
    );
    // As a restarted registry: the subtrees are all there, so nothing is recomputed.
    let service = ExpertsService::open(url, DrawPolicy::default()).await?;
    let auth = Authenticator::new(&VerificationKey::Hs256(KEY.to_vec()))?;
    let options = ServerOptions::default();
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
            Role::Inspector,
            None,
            None,
            Duration::from_secs(3600)
        )?
    )
    .parse()?;
    let client =
        ExpertRegistryServiceClient::with_interceptor(channel.clone(), move |mut r: Request<()>| {
            r.metadata_mut().insert("authorization", token.clone());
            Ok(r)
        });
    let health = HealthClient::new(channel);
    // Spread over the log, deterministically.
    let pick = |i: u64, below: u64| (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) % below;

    let floor = median_of(|_| {
        let mut h = health.clone();
        async move {
            h.check(HealthCheckRequest {
                service: String::new(),
            })
            .await?;
            Ok(())
        }
    })
    .await?;
    let head = median_of(|_| {
        let mut c = client.clone();
        async move {
            let h = c
                .get_log_head(epb::GetLogHeadRequest {})
                .await?
                .into_inner();
            anyhow::ensure!(h.tree_size == n);
            Ok(())
        }
    })
    .await?;
    let inclusion = median_of(|i| {
        let mut c = client.clone();
        async move {
            c.get_inclusion_proof(epb::GetInclusionProofRequest {
                index: pick(i, n),
                tree_size: n,
            })
            .await?;
            Ok(())
        }
    })
    .await?;
    let consistency = median_of(|i| {
        let mut c = client.clone();
        async move {
            c.get_consistency_proof(epb::GetConsistencyProofRequest {
                old_size: 1 + pick(i, n - 1),
                new_size: n,
            })
            .await?;
            Ok(())
        }
    })
    .await?;
    let checkpoint = median_of(|_| async move {
        let reply = govit_platform::http::request(
            http::Method::GET,
            &format!("http://{addr}/checkpoint"),
            &[],
            Vec::new(),
            Duration::from_secs(10),
        )
        .await?;
        anyhow::ensure!(reply.status == 200);
        Ok(())
    })
    .await?;
    let tile = median_of(|i| async move {
        let index = pick(i, n / 256);
        let path = govit_draw::tiles::Tile {
            kind: govit_draw::tiles::TileKind::Hashes { level: 0 },
            index,
            width: 256,
        }
        .path();
        let reply = govit_platform::http::request(
            http::Method::GET,
            &format!("http://{addr}/{path}"),
            &[],
            Vec::new(),
            Duration::from_secs(10),
        )
        .await?;
        anyhow::ensure!(reply.status == 200 && reply.body.len() == 8192);
        Ok(())
    })
    .await?;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (what, d) in [
        ("GetLogHead", head),
        ("GetInclusionProof", inclusion),
        ("GetConsistencyProof", consistency),
        ("GET /checkpoint", checkpoint),
        ("GET /tile/0/N (full)", tile),
    ] {
        println!(
            "| {backend:<10} | {n:>9} | {what:<22} | {:>7.3} | {:>7.3} | {:>5.1}x |",
            ms(d),
            ms(floor),
            d.as_secs_f64() / floor.as_secs_f64()
        );
    }
    service.db().pool.close().await;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: u64 = std::env::var("GOVIT_BENCH_LOG_SIZE")
        .unwrap_or_else(|_| "1000000".into())
        .parse()?;
    println!(
        "| backend    |   entries | call                   | median ms | empty rpc ms | ratio |"
    );
    println!("|------------|----------:|------------------------|--------:|--------:|------:|");
    let dir = tempfile::tempdir()?;
    run(
        "SQLite",
        &govit_platform::db::sqlite_url(&dir.path().join("log.db")),
        n,
    )
    .await?;
    if let Ok(pg) = std::env::var("GOVIT_BENCH_POSTGRES_URL") {
        let (server, _) = pg.rsplit_once('/').unwrap_or((&pg, ""));
        let name = format!("govit_bench_{}", uuid::Uuid::new_v4().simple());
        run("PostgreSQL", &format!("{server}/{name}"), n).await?;
        let admin = sqlx::PgPool::connect(&pg).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&admin)
        .await?;
    }
    Ok(())
}
