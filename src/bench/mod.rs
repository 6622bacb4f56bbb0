//! `govit bench`: the load generator behind docs/BENCHMARKS.md. Each command starts the service
//! it measures in this process, on a scratch data directory (or a scratch database on the
//! PostgreSQL server given), measures the floor and then the call in the same run, and prints
//! both with their ratio. Calls come from many concurrent streams over several HTTP/2
//! connections, as an h2load run would send them.

mod draw;
mod floor;
mod load;
mod raw;
pub mod roster;

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use govit_platform::{
    Role, VerificationKey,
    client::{BearerToken, endpoint},
    uscc,
};
use govit_proto::{
    experts::v1 as epb,
    projects::v1::{self as pb, project_service_client::ProjectServiceClient},
};
use tokio::net::TcpListener;
use tonic::{
    metadata::{Ascii, MetadataValue},
    transport::Channel,
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::config::{ServiceName, Settings};
use load::{Load, Tally};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
    /// Measure on this PostgreSQL server instead of embedded SQLite: a scratch database is
    /// created on it and dropped afterwards (postgres://USER@HOST:PORT/DB, any existing DB).
    #[arg(long, global = true)]
    pub postgres: Option<String>,
    /// HTTP/2 connections the calls are spread over.
    #[arg(long, global = true, default_value_t = 8)]
    pub connections: usize,
    /// Concurrent calls on each connection.
    #[arg(long, global = true, default_value_t = 16)]
    pub streams: usize,
    /// How long each measured phase runs (after one second of warm-up).
    #[arg(long, global = true, default_value_t = 10)]
    pub seconds: u64,
}

#[derive(Debug, clap::Subcommand)]
pub enum BenchWhat {
    /// GetProject, against the empty handler (grpc.health.v1.Health/Check) on the same server.
    GetProject {
        /// Projects in the database; calls read them in turn.
        #[arg(long, default_value_t = 1000)]
        projects: usize,
    },
    /// A ListProjects page of 50, whole projects and then the BASIC view, against the empty
    /// handler on the same server.
    ListProjects {
        #[arg(long, default_value_t = 1000)]
        projects: usize,
    },
    /// CreateProject (a project and its audit event), against raw two-insert transactions at
    /// the same durability in the database's own shell (sqlite3, psql).
    CreateProject,
    /// ListProjects with filters and GetPortfolioSummary over many projects: the latency of one
    /// call at a time, against the empty handler.
    Portfolio {
        #[arg(long, default_value_t = 100_000)]
        projects: usize,
    },
    /// `govit experts import` of a generated roster of ROWS experts, in one command, timed
    /// from reading the file to the committed answer.
    Import {
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
    },
    /// OpenDraw + ExecuteDraw over a pool of POOL experts, DRAWS times, against the database's
    /// own shell reading the pool's rows; with the resident memory of the registry process
    /// (run as `govit serve experts`) during the draws and after a minute idle.
    Draw {
        #[arg(long, default_value_t = 100_000)]
        pool: usize,
        #[arg(long, default_value_t = 100)]
        draws: usize,
        /// How long the registry rests after the import before the draws.
        #[arg(long, default_value_t = 20)]
        settle_seconds: u64,
        /// How long its memory is watched, idle, after the draws.
        #[arg(long, default_value_t = 60)]
        idle_seconds: u64,
    },
    /// Writes a generated roster (valid codes, distinct ids) to a file, for trying an import
    /// by hand.
    Roster {
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// The category every expert belongs to (it must exist when imported).
        #[arg(long, default_value = "bench")]
        category: String,
        out: PathBuf,
    },
}

pub async fn run(settings: &Settings, args: BenchArgs) -> anyhow::Result<()> {
    if let BenchWhat::Roster {
        rows,
        category,
        out,
    } = &args.what
    {
        let file =
            std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
        let mut writer = std::io::BufWriter::new(file);
        roster::write(&mut writer, *rows, category)?;
        std::io::Write::flush(&mut writer)?;
        println!("{}: {rows} experts in category {category}", out.display());
        return Ok(());
    }
    let bench = Bench::start(settings, &args).await?;
    let outcome = bench.run(&args).await;
    bench.stop().await?;
    outcome
}

/// A service running in this process for one measurement, and how to call it.
struct Bench {
    settings: Settings,
    scratch: PathBuf,
    key: Vec<u8>,
    postgres: Option<floor::ScratchDatabase>,
    load: Load,
}

impl Bench {
    async fn start(settings: &Settings, args: &BenchArgs) -> anyhow::Result<Bench> {
        let scratch = std::env::temp_dir().join(format!("govit-bench-{}", std::process::id()));
        std::fs::create_dir_all(&scratch)?;
        let mut random = [0u8; 32];
        getrandom::fill(&mut random).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        // As text, because a child process is given it as GOVIT_JWT_HS256_KEY.
        let key = hex::encode(random).into_bytes();
        let mut settings = settings.clone();
        settings.data_dir = scratch.clone();
        settings.blob_dir = scratch.join("blobs");
        settings.key = Some(VerificationKey::Hs256(key.clone()));
        settings.using_development_key = false;
        // The bench's streams share one subject per role; a per-subject limit would measure
        // the limiter, not the service.
        settings.rate_limit = None;
        let postgres = match &args.postgres {
            Some(url) => {
                // A registry on PostgreSQL is given its log key, as its replicas would be.
                let keys = settings.keys_dir();
                std::fs::create_dir_all(&keys)?;
                govit_experts::generate_log_key(
                    &keys.join("log-signing-key.pem"),
                    &settings.log.origin,
                )?;
                Some(floor::ScratchDatabase::create(url).await?)
            }
            None => None,
        };
        Ok(Bench {
            settings,
            scratch,
            key,
            postgres,
            load: Load {
                connections: args.connections,
                streams: args.streams,
                duration: Duration::from_secs(args.seconds),
            },
        })
    }

    async fn stop(self) -> anyhow::Result<()> {
        if let Some(db) = self.postgres {
            db.drop().await?;
        }
        std::fs::remove_dir_all(&self.scratch).ok();
        Ok(())
    }

    /// Starts the three services as `govit up` does, each on a fresh port, for the calls
    /// that ask the others (a summary asks review scheduling for overdue reviews); returns
    /// the address of `service`.
    async fn serve(&self, service: ServiceName) -> anyhow::Result<String> {
        let mut listeners = Vec::new();
        for _ in ServiceName::ALL {
            listeners.push(TcpListener::bind("127.0.0.1:0").await?);
        }
        let url = |i: usize| -> anyhow::Result<String> {
            Ok(format!("http://{}", listeners[i].local_addr()?))
        };
        let peers = crate::run::Addresses {
            projects: url(0)?,
            experts: url(1)?,
            scheduling: url(2)?,
        };
        let wanted = url(ServiceName::ALL
            .iter()
            .position(|s| *s == service)
            .context("an unknown service")?)?;
        for (name, listener) in ServiceName::ALL.into_iter().zip(listeners) {
            let database_url = match &self.postgres {
                // One scratch database each, as every service has its own.
                Some(db) => db.for_service(name.as_str()).await?,
                None => self.settings.database_url(name, None),
            };
            let (routes, _) = crate::run::start_service(
                &self.settings,
                name,
                &database_url,
                self.settings.authenticator()?,
                &peers,
            )
            .await?;
            let options = self.settings.server.clone();
            tokio::spawn(async move {
                govit_platform::server::serve(listener, routes, &options, std::future::pending())
                    .await
            });
        }
        Ok(wanted)
    }

    fn token_text(&self, role: Role, org: Option<&str>) -> anyhow::Result<String> {
        govit_platform::auth::mint_hs256(
            &self.key,
            &format!("bench-{role}"),
            role,
            org,
            None,
            Duration::from_secs(24 * 3600),
        )
    }

    fn token(&self, role: Role, org: Option<&str>) -> anyhow::Result<BearerToken> {
        BearerToken::new(&self.token_text(role, org)?)
    }

    async fn channels(&self, url: &str) -> anyhow::Result<Vec<Channel>> {
        let mut channels = Vec::new();
        for _ in 0..self.load.connections {
            // One connect per channel: each is its own HTTP/2 connection.
            channels.push(endpoint(url, None)?.connect().await?);
        }
        Ok(channels)
    }

    async fn run(&self, args: &BenchArgs) -> anyhow::Result<()> {
        match &args.what {
            BenchWhat::GetProject { projects } => self.get_project(*projects).await,
            BenchWhat::ListProjects { projects } => self.list_projects(*projects).await,
            BenchWhat::CreateProject => self.create_project().await,
            BenchWhat::Portfolio { projects } => self.portfolio(*projects).await,
            BenchWhat::Import { rows } => self.import(*rows).await,
            BenchWhat::Draw {
                pool,
                draws,
                settle_seconds,
                idle_seconds,
            } => {
                let rest = (
                    Duration::from_secs(*settle_seconds),
                    Duration::from_secs(*idle_seconds),
                );
                self.draws(*pool, *draws, rest).await
            }
            BenchWhat::Roster { .. } => unreachable!("handled before a service starts"),
        }
    }

    fn describe(&self, service: ServiceName) {
        let backend = match &self.postgres {
            Some(_) => "PostgreSQL".to_owned(),
            None => format!(
                "SQLite (synchronous={})",
                self.settings
                    .sqlite_synchronous
                    .as_deref()
                    .unwrap_or("full")
            ),
        };
        println!(
            "govit bench: {} service on {backend}; {} connections x {} streams, {} s per phase",
            service.as_str(),
            self.load.connections,
            self.load.streams,
            self.load.duration.as_secs()
        );
    }

    /// The empty handler on the same server: the floor of one call.
    async fn health_floor(&self, channels: &[Channel]) -> anyhow::Result<Tally> {
        self.load
            .measure(channels, |channel, _| async move {
                raw::call(
                    channel,
                    "/grpc.health.v1.Health/Check",
                    None,
                    HealthCheckRequest::default(),
                )
                .await
                .map(drop)
            })
            .await
    }

    fn authorization(&self, role: Role) -> anyhow::Result<MetadataValue<Ascii>> {
        Ok(format!("Bearer {}", self.token_text(role, None)?).parse()?)
    }

    async fn get_project(&self, projects: usize) -> anyhow::Result<()> {
        self.describe(ServiceName::Projects);
        let url = self.serve(ServiceName::Projects).await?;
        let channels = self.channels(&url).await?;
        let seeded = Arc::new(self.seed_projects(&channels, projects).await?);
        let floor = self.health_floor(&channels).await?;
        let office = self.authorization(Role::Office)?;
        let call = self
            .load
            .measure(&channels, move |channel, i| {
                let office = office.clone();
                let name = seeded[i as usize % seeded.len()].clone();
                async move {
                    raw::call(
                        channel,
                        "/govit.projects.v1.ProjectService/GetProject",
                        Some(&office),
                        pb::GetProjectRequest { name },
                    )
                    .await
                    .map(drop)
                }
            })
            .await?;
        load::report(
            &[("Health/Check (floor)", &floor), ("GetProject", &call)],
            Some(0),
        );
        Ok(())
    }

    async fn list_projects(&self, projects: usize) -> anyhow::Result<()> {
        self.describe(ServiceName::Projects);
        let url = self.serve(ServiceName::Projects).await?;
        let channels = self.channels(&url).await?;
        self.seed_projects(&channels, projects).await?;
        let request = pb::ListProjectsRequest {
            page_size: 50,
            ..Default::default()
        };
        // Read once in full: the calls measured then skip decoding what they are sent.
        let page = ProjectServiceClient::with_interceptor(
            channels[0].clone(),
            self.token(Role::Office, None)?,
        )
        .list_projects(request.clone())
        .await?
        .into_inner();
        anyhow::ensure!(
            page.projects.len() == 50,
            "a page of fewer than 50 projects"
        );
        let floor = self.health_floor(&channels).await?;
        let office = self.authorization(Role::Office)?;
        let mut pages = Vec::new();
        for view in [pb::ProjectView::Unspecified, pb::ProjectView::Basic] {
            let request = pb::ListProjectsRequest {
                view: view as i32,
                ..request.clone()
            };
            let office = office.clone();
            let call = self
                .load
                .measure(&channels, move |channel, _| {
                    let (office, request) = (office.clone(), request.clone());
                    async move {
                        raw::call(
                            channel,
                            "/govit.projects.v1.ProjectService/ListProjects",
                            Some(&office),
                            request,
                        )
                        .await
                        .map(drop)
                    }
                })
                .await?;
            pages.push(call);
        }
        load::report(
            &[
                ("Health/Check (floor)", &floor),
                ("ListProjects, page of 50", &pages[0]),
                ("ListProjects, page of 50, BASIC view", &pages[1]),
            ],
            Some(0),
        );
        Ok(())
    }

    async fn create_project(&self) -> anyhow::Result<()> {
        self.describe(ServiceName::Projects);
        let url = self.serve(ServiceName::Projects).await?;
        let channels = self.channels(&url).await?;
        let orgs = self.seed_organizations(&channels, 1).await?;
        let floor = floor::raw_inserts(
            &self.scratch,
            self.postgres.as_ref(),
            self.settings.sqlite_synchronous.as_deref(),
            self.load.connections,
            self.load.duration,
        )?;
        let applicant = self.token(Role::Applicant, Some(&orgs[0]))?;
        let org = orgs[0].clone();
        let call = self
            .load
            .measure(&channels, move |channel, i| {
                let applicant = applicant.clone();
                let org = org.clone();
                async move {
                    ProjectServiceClient::with_interceptor(channel, applicant)
                        .create_project(new_project(&org, i))
                        .await
                        .map(drop)
                }
            })
            .await?;
        println!(
            "floor: {} two-insert transactions in {:.2} s in {} ({:.0}/s)",
            floor.transactions,
            floor.elapsed.as_secs_f64(),
            floor.shell,
            floor.rate()
        );
        load::report(&[("CreateProject", &call)], None);
        println!(
            "CreateProject / raw two-insert transactions: {:.0}%",
            100.0 * call.rate() / floor.rate()
        );
        Ok(())
    }

    async fn portfolio(&self, projects: usize) -> anyhow::Result<()> {
        self.describe(ServiceName::Projects);
        let url = self.serve(ServiceName::Projects).await?;
        let channels = self.channels(&url).await?;
        let seeded = self.seed_projects(&channels, projects).await?;
        let office = self.token(Role::Office, None)?;
        let client = ProjectServiceClient::with_interceptor(channels[0].clone(), office);
        let org = format!("organizations/{}", organization_code(0)?);
        let year = chrono::Utc::now().format("%Y").to_string().parse::<i32>()?;
        let one = |label: &'static str, request: Probe| (label, request);
        let probes = [
            one("Health/Check (floor)", Probe::Health),
            one(
                "ListProjects: first page of 50, no filter",
                Probe::List(pb::ListProjectsRequest {
                    page_size: 50,
                    ..Default::default()
                }),
            ),
            one(
                "ListProjects: state, year, unit and category",
                Probe::List(pb::ListProjectsRequest {
                    page_size: 50,
                    state: pb::ProjectState::Draft as i32,
                    organization: org.clone(),
                    year,
                    category: "software".into(),
                    ..Default::default()
                }),
            ),
            one(
                "ListProjects: one category, newest first",
                Probe::List(pb::ListProjectsRequest {
                    page_size: 50,
                    category: "network".into(),
                    order_by: "code desc".into(),
                    ..Default::default()
                }),
            ),
            one(
                "GetPortfolioSummary: everything",
                Probe::Summary(pb::GetPortfolioSummaryRequest::default()),
            ),
            one(
                "GetPortfolioSummary: one unit",
                Probe::Summary(pb::GetPortfolioSummaryRequest {
                    organization: org,
                    ..Default::default()
                }),
            ),
        ];
        println!(
            "{} projects; each call 50 times, one at a time, after 5 warm-up calls",
            seeded.len()
        );
        println!("| call | median ms | p99 ms | max ms |");
        println!("|---|---:|---:|---:|");
        for (label, probe) in probes {
            let mut samples = Vec::new();
            for round in 0..55 {
                let started = std::time::Instant::now();
                probe.call(&client, &channels[0]).await?;
                if round >= 5 {
                    samples.push(started.elapsed());
                }
            }
            samples.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1000.0;
            println!(
                "| {label} | {:.2} | {:.2} | {:.2} |",
                ms(samples[samples.len() / 2]),
                ms(samples[samples.len() * 99 / 100]),
                ms(samples[samples.len() - 1])
            );
        }
        Ok(())
    }

    async fn import(&self, rows: usize) -> anyhow::Result<()> {
        self.describe(ServiceName::Experts);
        let url = self.serve(ServiceName::Experts).await?;
        let channel = endpoint(&url, None)?.connect().await?;
        let (file, remote) = self.roster_for(channel, &url, rows).await?;
        let bytes = std::fs::metadata(&file)?.len();
        for what in ["new experts", "the same file again: every row an update"] {
            let started = std::time::Instant::now();
            crate::client::import(&self.settings, &remote, &file, false).await?;
            let elapsed = started.elapsed();
            println!(
                "{rows} rows ({:.1} MB), {what}: {:.2} s, {:.0} rows/s",
                bytes as f64 / 1e6,
                elapsed.as_secs_f64(),
                rows as f64 / elapsed.as_secs_f64()
            );
        }
        Ok(())
    }

    /// Makes the category `bench` on the registry at `url` and writes a roster of `rows`
    /// experts in it; returns the file and how `govit experts import` reaches the registry.
    async fn roster_for(
        &self,
        channel: Channel,
        url: &str,
        rows: usize,
    ) -> anyhow::Result<(PathBuf, crate::client::Remote)> {
        epb::expert_registry_service_client::ExpertRegistryServiceClient::with_interceptor(
            channel,
            self.token(Role::RegistryAdmin, None)?,
        )
        .create_category(epb::CreateCategoryRequest {
            request_id: String::new(),
            category: Some(epb::Category {
                code: "bench".into(),
                display_name: "Bench".into(),
                ..Default::default()
            }),
        })
        .await?;
        let file = self.scratch.join("roster.csv");
        let mut writer = std::io::BufWriter::new(std::fs::File::create(&file)?);
        roster::write(&mut writer, rows, "bench")?;
        std::io::Write::flush(&mut writer)?;
        let remote = crate::client::Remote {
            server: url.to_owned(),
            token: Some(self.token_text(Role::RegistryAdmin, None)?),
        };
        Ok((file, remote))
    }

    /// Registers `n` applying units; returns their credit codes.
    async fn seed_organizations(
        &self,
        channels: &[Channel],
        n: usize,
    ) -> anyhow::Result<Vec<String>> {
        let mut office = ProjectServiceClient::with_interceptor(
            channels[0].clone(),
            self.token(Role::Office, None)?,
        );
        let mut codes = Vec::new();
        for i in 0..n {
            let code = organization_code(i)?;
            office
                .create_organization(pb::CreateOrganizationRequest {
                    request_id: String::new(),
                    organization: Some(pb::Organization {
                        credit_code: code.clone(),
                        display_name: format!("Bureau {i}"),
                        kind: pb::OrganizationKind::ApplyingUnit as i32,
                        ..Default::default()
                    }),
                })
                .await?;
            codes.push(code);
        }
        Ok(codes)
    }

    /// Creates `n` projects through the API, spread over 20 units and five categories, from
    /// every stream at once; returns their names.
    async fn seed_projects(&self, channels: &[Channel], n: usize) -> anyhow::Result<Vec<String>> {
        const UNITS: usize = 20;
        let orgs = self.seed_organizations(channels, UNITS).await?;
        let tokens: Arc<Vec<(String, BearerToken)>> = Arc::new(
            orgs.iter()
                .map(|org| Ok((org.clone(), self.token(Role::Applicant, Some(org))?)))
                .collect::<anyhow::Result<_>>()?,
        );
        let started = std::time::Instant::now();
        let names = self
            .load
            .count(channels, n, move |channel, i| {
                let (org, token) = tokens[i as usize % tokens.len()].clone();
                async move {
                    ProjectServiceClient::with_interceptor(channel, token)
                        .create_project(new_project(&org, i))
                        .await
                        .map(|p| p.into_inner().name)
                }
            })
            .await?;
        println!(
            "seeded {} projects in {:.1} s",
            names.len(),
            started.elapsed().as_secs_f64()
        );
        Ok(names)
    }
}

/// One call of the portfolio bench.
enum Probe {
    Health,
    List(pb::ListProjectsRequest),
    Summary(pb::GetPortfolioSummaryRequest),
}

type Projects =
    ProjectServiceClient<tonic::service::interceptor::InterceptedService<Channel, BearerToken>>;

impl Probe {
    async fn call(&self, client: &Projects, channel: &Channel) -> anyhow::Result<()> {
        match self {
            Probe::Health => {
                HealthClient::new(channel.clone())
                    .check(HealthCheckRequest::default())
                    .await?;
            }
            Probe::List(request) => {
                let page = client.clone().list_projects(request.clone()).await?;
                anyhow::ensure!(!page.get_ref().projects.is_empty(), "an empty page");
            }
            Probe::Summary(request) => {
                client
                    .clone()
                    .get_portfolio_summary(request.clone())
                    .await?;
            }
        }
        Ok(())
    }
}

fn organization_code(i: usize) -> anyhow::Result<String> {
    uscc::with_check_character(&format!("91650100MA8{i:06}")).context("credit code")
}

const CATEGORIES: [&str; 5] = ["software", "network", "hardware", "data", "security"];

fn new_project(org: &str, i: u64) -> pb::CreateProjectRequest {
    let today = chrono::Utc::now().date_naive();
    let date = |days| {
        Some(govit_platform::time::date_to_proto(
            today + chrono::Duration::days(days),
        ))
    };
    pb::CreateProjectRequest {
        request_id: String::new(),
        project: Some(pb::Project {
            display_name: format!("Data-sharing platform, phase {i}"),
            applicant: format!("organizations/{org}"),
            category: CATEGORIES[i as usize % CATEGORIES.len()].into(),
            description: "One platform for the bureaus to exchange data: a catalogue of shared \
                          datasets, an exchange gateway and the audit of every exchange."
                .into(),
            planned_start_date: date(60),
            planned_end_date: date(300),
            estimated_investment_fen: 280_000_000 + i as i64,
            funding_source: pb::FundingSource::CityBudget as i32,
            contacts: vec![pb::Contact {
                name: "Li Na".into(),
                title: "project lead".into(),
                email: "lead@unit.example".into(),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}
