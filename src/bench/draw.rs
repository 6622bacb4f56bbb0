//! Draws over a large pool, timed against the database's own shell reading the pool's rows,
//! with the memory of the registry process: it runs as `govit serve experts` in a child
//! process, so that what is measured is a server's resident set and nothing of the bench's.

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;
use govit_platform::Role;
use govit_proto::{
    experts::v1::{self as epb, expert_registry_service_client::ExpertRegistryServiceClient},
    google::r#type::Date,
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use super::{Bench, floor::ScratchDatabase};

/// The columns and rows a draw reads of its pool, as the registry's query reads them.
const POOL_QUERY: &str = "SELECT c.category, e.id, e.employer_credit_code, e.appointment_start, \
     e.appointment_end, e.status, e.unavailable, e.conflicts \
     FROM expert_categories c JOIN experts e ON e.id = c.expert_id WHERE c.category IN ('bench')";

/// A registry in a child process, killed when dropped.
struct Registry {
    child: Child,
    url: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    fn resident_mb(&self) -> anyhow::Result<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in /proc")?;
        Ok(kb / 1024.0)
    }
}

impl Bench {
    fn spawn_registry(&self) -> anyhow::Result<Registry> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let mut command = Command::new(std::env::current_exe()?);
        command
            .arg("--data-dir")
            .arg(&self.scratch)
            .args(["--draw-require-witness", "false", "serve", "experts"])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env(
                "GOVIT_JWT_HS256_KEY",
                String::from_utf8_lossy(&self.key).as_ref(),
            )
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null());
        if let Some(db) = &self.postgres {
            command.args(["--database-url", &db.url]);
        }
        if let Some(mode) = &self.settings.sqlite_synchronous {
            command.args(["--sqlite-synchronous", mode]);
        }
        Ok(Registry {
            child: command.spawn().context("starting govit serve experts")?,
            url: format!("http://127.0.0.1:{port}"),
        })
    }

    /// `rest`: how long the registry rests after the import, and is watched idle after the
    /// draws.
    pub(super) async fn draws(
        &self,
        pool: usize,
        draws: usize,
        rest: (Duration, Duration),
    ) -> anyhow::Result<()> {
        self.describe(crate::config::ServiceName::Experts);
        let registry = self.spawn_registry()?;
        let channel = wait_until_serving(&registry.url).await?;
        let started_mb = registry.resident_mb()?;
        let (file, remote) = self
            .roster_for(channel.clone(), &registry.url, pool)
            .await?;
        crate::client::import(&self.settings, &remote, &file, false).await?;
        let imported_mb = registry.resident_mb()?;
        // The import's peak is returned over some seconds; the draws are measured from rest.
        tokio::time::sleep(rest.0).await;
        let rested_mb = registry.resident_mb()?;

        let shell = pool_read_in_shell(&self.scratch, self.postgres.as_ref(), 5)?;
        let mut office = ExpertRegistryServiceClient::with_interceptor(
            channel.clone(),
            self.token(Role::Office, None)?,
        )
        // The answer carries the frozen input: every eligible expert's id.
        .max_decoding_message_size(256 * 1024 * 1024);
        let mut times = Vec::new();
        let mut peak_mb = rested_mb;
        for i in 0..draws {
            let started = Instant::now();
            let opened = office
                .open_draw(epb::OpenDrawRequest {
                    project: format!("projects/2026-{i:04}"),
                    stage: epb::ReviewStage::Acceptance as i32,
                    requirements: vec![epb::PanelRequirement {
                        category: "bench".into(),
                        count: 5,
                        alternates: 3,
                    }],
                    meeting_date: Some(Date {
                        year: 2027,
                        month: 3,
                        day: 10,
                    }),
                    ..Default::default()
                })
                .await?
                .into_inner();
            let executed = office
                .execute_draw(epb::ExecuteDrawRequest { name: opened.name })
                .await?
                .into_inner();
            times.push(started.elapsed());
            anyhow::ensure!(
                executed.outcome == epb::DrawOutcome::Executed as i32,
                "draw {i} did not execute"
            );
            peak_mb = peak_mb.max(registry.resident_mb()?);
        }
        let after_mb = registry.resident_mb()?;
        let mut idle = Vec::new();
        let idle_started = Instant::now();
        while idle_started.elapsed() < rest.1 {
            tokio::time::sleep(Duration::from_secs(5).min(rest.1)).await;
            idle.push(registry.resident_mb()?);
        }
        times.sort();
        let median = times[times.len() / 2];
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "| pool | draws | {} reading the pool, median ms | draw (OpenDraw + ExecuteDraw), median ms | ratio | slowest draw ms |",
            shell.0
        );
        println!("|---:|---:|---:|---:|---:|---:|");
        println!(
            "| {pool} | {draws} | {:.1} | {:.1} | {:.2}x | {:.1} |",
            ms(shell.1),
            ms(median),
            median.as_secs_f64() / shell.1.as_secs_f64(),
            ms(times[times.len() - 1])
        );
        println!();
        println!("resident memory of the registry process (MB):");
        println!(
            "| started | after the import | rested before the draws | peak during the draws | after the draws | idle after |"
        );
        println!("|---:|---:|---:|---:|---:|---:|");
        println!(
            "| {started_mb:.0} | {imported_mb:.0} | {rested_mb:.0} | {peak_mb:.0} | {after_mb:.0} | {:.0} |",
            idle.last().copied().unwrap_or(after_mb)
        );
        println!(
            "idle, every 5 s: {}",
            idle.iter()
                .map(|mb| format!("{mb:.0}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        Ok(())
    }
}

async fn wait_until_serving(url: &str) -> anyhow::Result<tonic::transport::Channel> {
    for _ in 0..300 {
        if let Ok(endpoint) = govit_platform::client::endpoint(url, None)
            && let Ok(channel) = endpoint.connect().await
            && HealthClient::new(channel.clone())
                .check(HealthCheckRequest::default())
                .await
                .is_ok()
        {
            return Ok(channel);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("the registry at {url} did not start within 30 s")
}

/// The median of `runs` reads of the pool's rows by the database's own shell, output
/// discarded: the floor a draw cannot go under.
fn pool_read_in_shell(
    scratch: &Path,
    postgres: Option<&ScratchDatabase>,
    runs: usize,
) -> anyhow::Result<(&'static str, Duration)> {
    let mut times = Vec::new();
    let name = if postgres.is_some() {
        "psql"
    } else {
        "sqlite3"
    };
    for _ in 0..runs {
        let mut command = match postgres {
            Some(db) => {
                let mut c = Command::new("psql");
                c.args(["-X", "-q", "-A", "-t", &db.url, "-c", POOL_QUERY]);
                c
            }
            None => {
                let mut c = Command::new("sqlite3");
                c.arg("-readonly")
                    .arg(scratch.join("experts.db"))
                    .arg(POOL_QUERY);
                c
            }
        };
        let started = Instant::now();
        let status = command
            .stdout(Stdio::null())
            .status()
            .with_context(|| format!("running {name}"))?;
        anyhow::ensure!(status.success(), "{name} failed: {status}");
        times.push(started.elapsed());
    }
    times.sort();
    Ok((name, times[times.len() / 2]))
}
