//! Command-line interface.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};
use govit_platform::Role;

use crate::{
    config::{ServiceName, Settings},
    run,
};

#[derive(Debug, Parser)]
#[command(
    name = "govit",
    version,
    about = "Government IT construction projects: lifecycle, expert draws, review scheduling"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// An optional TOML configuration file; flags and GOVIT_* variables override it.
    #[arg(long, global = true, env = "GOVIT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Where the embedded SQLite databases and document blobs live.
    #[arg(long, global = true, env = "GOVIT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Shared secret for HS256 tokens (at least 32 bytes). Prefer the environment variable:
    /// a flag shows in the process list.
    #[arg(
        long,
        global = true,
        env = "GOVIT_JWT_HS256_KEY",
        hide_env_values = true
    )]
    pub jwt_hs256_key: Option<String>,
    /// PEM file of the Ed25519 public key that verifies EdDSA tokens.
    #[arg(long, global = true, env = "GOVIT_JWT_ED25519_PUBLIC_KEY")]
    pub jwt_ed25519_public_key: Option<PathBuf>,
    /// PEM file of the RSA public key that verifies RS256 tokens.
    #[arg(long, global = true, env = "GOVIT_JWT_RSA_PUBLIC_KEY")]
    pub jwt_rsa_public_key: Option<PathBuf>,
    /// An OIDC provider's published token keys (JWKS), such as Keycloak's
    /// .../protocol/openid-connect/certs: tokens name their key (kid); the set is refreshed
    /// every --jwks-refresh-seconds and when a token names a key not yet seen.
    #[arg(long, global = true, env = "GOVIT_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// How often the JWKS is fetched again (default 300).
    #[arg(long, global = true, env = "GOVIT_JWKS_REFRESH_SECONDS")]
    pub jwks_refresh_seconds: Option<u64>,
    /// Browser origins allowed to call over gRPC-Web (repeat, or comma-separate); "*" for any.
    #[arg(
        long = "cors-origin",
        global = true,
        env = "GOVIT_CORS_ORIGINS",
        value_delimiter = ','
    )]
    pub cors_origins: Vec<String>,
    /// The largest gRPC message, in bytes (default 4 MiB).
    #[arg(long, global = true, env = "GOVIT_MAX_MESSAGE_BYTES")]
    pub max_message_bytes: Option<usize>,
    /// Whether to serve gRPC reflection (default: on for `up`, off for `serve`, which is for
    /// production, where it would list every method to anyone).
    #[arg(long, global = true, env = "GOVIT_REFLECTION")]
    pub reflection: Option<bool>,
    /// The largest document, in bytes (default 50 MiB).
    #[arg(long, global = true, env = "GOVIT_MAX_DOCUMENT_BYTES")]
    pub max_document_bytes: Option<u64>,
    /// Where document content is kept (default DATA_DIR/blobs).
    #[arg(long, global = true, env = "GOVIT_BLOB_DIR")]
    pub blob_dir: Option<PathBuf>,
    /// Whether a draw executes only after witness entropy (default true).
    #[arg(long, global = true, env = "GOVIT_DRAW_REQUIRE_WITNESS")]
    pub draw_require_witness: Option<bool>,
    /// The most alternates one category of a draw may ask for (default 10).
    #[arg(long, global = true, env = "GOVIT_DRAW_MAX_ALTERNATES")]
    pub draw_max_alternates: Option<u32>,
    /// The name of the registry's transparency log in its checkpoints, a schema-less URL such
    /// as `govit.example.gov/experts-log` (default `govit.local/experts-log`).
    #[arg(long, global = true, env = "GOVIT_LOG_ORIGIN")]
    pub log_origin: Option<String>,
    /// How the embedded SQLite databases sync commits: `full` (default; an acknowledged write
    /// survives a power cut) or `normal` (faster; a power cut can lose the last commits).
    #[arg(long, global = true, env = "GOVIT_SQLITE_SYNCHRONOUS", value_parser = ["full", "normal"])]
    pub sqlite_synchronous: Option<String>,
    /// The deadline, in seconds, of a gRPC call that sends none (default 30; 0: none). Refused
    /// DEADLINE_EXCEEDED; a client needing longer sends its own.
    #[arg(long, global = true, env = "GOVIT_DEFAULT_DEADLINE_SECONDS")]
    pub default_deadline_seconds: Option<u64>,
    /// Calls a second one token subject may make, in bursts of twice that (default 50; 0 turns
    /// it off). Services' own tokens are not limited.
    #[arg(long, global = true, env = "GOVIT_RATE_LIMIT")]
    pub rate_limit: Option<f64>,
    /// `text` (default; coloured only on a terminal) or `json`, one object per line.
    #[arg(long, global = true, env = "GOVIT_LOG_FORMAT", default_value = "text")]
    pub log_format: govit_platform::telemetry::LogFormat,
    /// On SIGTERM, how many seconds calls in flight get to finish before the process exits
    /// (default 10); streams end at once and their clients reconnect.
    #[arg(long, global = true, env = "GOVIT_DRAIN_SECONDS")]
    pub drain_seconds: Option<u64>,
    /// Export every call's span over OTLP/gRPC to this collector (e.g. http://collector:4317);
    /// the service name is OTEL_SERVICE_NAME (default govit). Off unless set.
    #[arg(long, global = true, env = "GOVIT_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
    /// Serve Prometheus metrics at http://ADDR/metrics (off unless set; keep it off the
    /// public network).
    #[arg(long, global = true, env = "GOVIT_ADMIN_LISTEN")]
    pub admin_listen: Option<std::net::SocketAddr>,
    /// Serve TLS with this certificate chain (PEM, leaf first); needs --tls-key.
    #[arg(long, global = true, env = "GOVIT_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, global = true, env = "GOVIT_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Require every client to present a certificate issued by this CA (mutual TLS).
    #[arg(
        long,
        global = true,
        env = "GOVIT_TLS_CLIENT_CA",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,
    /// The CA that issued the services' certificates, for calls to `https://` services (the
    /// system's roots when unset).
    #[arg(long, global = true, env = "GOVIT_PEER_CA")]
    pub peer_ca: Option<PathBuf>,
    /// The client certificate (PEM) presented to services that require mutual TLS.
    #[arg(long, global = true, env = "GOVIT_PEER_CERT")]
    pub peer_cert: Option<PathBuf>,
    /// The private key of --peer-cert (PEM).
    #[arg(long, global = true, env = "GOVIT_PEER_KEY")]
    pub peer_key: Option<PathBuf>,
    /// The log's Ed25519 signing key as a PKCS#8 PEM file; without it the key kept in the
    /// registry's database signs.
    #[arg(long, global = true, env = "GOVIT_LOG_KEY")]
    pub log_key: Option<PathBuf>,
    /// A witness asked to cosign each checkpoint, as `URL=VERIFIER_KEY` (repeat for each;
    /// the bureaus' witnesses, `govit witness`).
    #[arg(
        long = "witness-peer",
        global = true,
        env = "GOVIT_WITNESS_PEERS",
        value_delimiter = ','
    )]
    pub witness_peers: Vec<String>,
    /// Workload rule: an expert selected this many times within --workload-days is not drawn.
    /// Off unless both are set.
    #[arg(long, global = true, env = "GOVIT_WORKLOAD_MAX_SELECTIONS")]
    pub workload_max_selections: Option<u32>,
    #[arg(long, global = true, env = "GOVIT_WORKLOAD_DAYS")]
    pub workload_days: Option<u32>,
    /// A budget more than this many percent above the original approval needs re-approval by
    /// the approving department (default 10).
    #[arg(long, global = true, env = "GOVIT_BUDGET_THRESHOLD_PERCENT")]
    pub budget_threshold_percent: Option<f64>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs all three services in one process on embedded SQLite.
    Up {
        #[arg(long, env = "GOVIT_PROJECTS_LISTEN")]
        projects_listen: Option<SocketAddr>,
        #[arg(long, env = "GOVIT_EXPERTS_LISTEN")]
        experts_listen: Option<SocketAddr>,
        #[arg(long, env = "GOVIT_SCHEDULING_LISTEN")]
        scheduling_listen: Option<SocketAddr>,
    },
    /// Runs one service, as production does, on SQLite or PostgreSQL.
    Serve {
        service: ServiceName,
        #[arg(long, env = "GOVIT_LISTEN")]
        listen: Option<SocketAddr>,
        /// sqlite://PATH or postgres://USER@HOST/DB.
        #[arg(long, env = "GOVIT_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Accept tokens signed with the public development key. Never in production.
        #[arg(long)]
        dev_key: bool,
        /// Where the other services are (used by the services that call them).
        #[arg(
            long,
            env = "GOVIT_PROJECTS_URL",
            default_value = "http://127.0.0.1:50051"
        )]
        projects_url: String,
        #[arg(
            long,
            env = "GOVIT_EXPERTS_URL",
            default_value = "http://127.0.0.1:50052"
        )]
        experts_url: String,
        #[arg(
            long,
            env = "GOVIT_SCHEDULING_URL",
            default_value = "http://127.0.0.1:50053"
        )]
        scheduling_url: String,
    },
    /// Applies the migrations of one service (with --database-url) or of all three embedded
    /// databases.
    Migrate {
        service: Option<ServiceName>,
        #[arg(long, env = "GOVIT_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
    },
    /// The expert pool: roster import and export.
    Experts {
        #[command(subcommand)]
        command: ExpertsCommand,
    },
    /// Draws: export a draw's record for inspectors.
    Draws {
        #[command(subcommand)]
        command: DrawsCommand,
    },
    /// The working-day calendar of the scheduling service.
    Calendar {
        #[command(subcommand)]
        command: CalendarCommand,
    },
    /// Reports for the supervising bureaus.
    Report {
        #[command(subcommand)]
        command: ReportCommand,
    },
    /// Walks a project from application to operation against a running `govit up`.
    Demo {
        #[arg(
            long,
            env = "GOVIT_PROJECTS_URL",
            default_value = "http://127.0.0.1:50051"
        )]
        projects_url: String,
        #[arg(
            long,
            env = "GOVIT_EXPERTS_URL",
            default_value = "http://127.0.0.1:50052"
        )]
        experts_url: String,
        #[arg(
            long,
            env = "GOVIT_SCHEDULING_URL",
            default_value = "http://127.0.0.1:50053"
        )]
        scheduling_url: String,
    },
    /// Load and timings for docs/BENCHMARKS.md: each starts the service it measures on scratch
    /// data and prints the figure beside its floor measured in the same run.
    Bench(crate::bench::BenchArgs),
    /// Copies the embedded databases (online, consistently) and the document blobs into a new
    /// directory.
    Backup { dir: PathBuf },
    /// Puts a backup back where the configuration says the data lives; stop the services first.
    Restore {
        dir: PathBuf,
        /// Replace existing databases.
        #[arg(long)]
        force: bool,
    },
    /// The registry's transparency log as C2SP tiles.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// The inspector's tools.
    Verify {
        #[command(subcommand)]
        command: VerifyCommand,
    },
    /// Runs a transparency-log witness (c2sp.org/tlog-witness) for a supervising bureau.
    Witness(Box<crate::witness::WitnessArgs>),
    /// Mints a token with the configured HS256 key (the development key if none is set).
    Token {
        #[arg(long)]
        role: Role,
        /// The subject; defaults to "dev-<role>".
        #[arg(long)]
        subject: Option<String>,
        /// The organisation's credit code, for the applicant role.
        #[arg(long)]
        org: Option<String>,
        /// The expert id, for the expert role.
        #[arg(long)]
        expert: Option<String>,
        /// The bureau, for the supervisor role: finance, development_reform or audit.
        #[arg(long)]
        bureau: Option<govit_platform::auth::Bureau>,
        /// How long the token lives: at most 24 hours, the longest a service accepts.
        #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u64).range(1..=24))]
        hours: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum ExpertsCommand {
    /// Imports a CSV or XLSX roster: every row is created or updated, or none is.
    Import {
        file: PathBuf,
        /// Check every row and report, writing nothing.
        #[arg(long)]
        validate_only: bool,
        #[command(flatten)]
        remote: crate::client::Remote,
    },
    /// Writes every expert as a CSV roster (to stdout, or --out).
    Export {
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        remote: crate::client::Remote,
    },
}

#[derive(Debug, Subcommand)]
pub enum DrawsCommand {
    /// Writes the record of an executed draw (draw-v1 §4) to stdout or --out.
    Export {
        draw_id: String,
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        remote: crate::client::Remote,
    },
}

#[derive(Debug, Subcommand)]
pub enum LogCommand {
    /// Writes a new Ed25519 signing key for the log to FILE (PKCS#8 PEM, owner-only; never
    /// over an existing file) and prints its verifier key, for a new deployment's secret or a
    /// key rotation (docs/transparency-log.md).
    Keygen { file: PathBuf },
    /// Writes the newest checkpoint and every tile of its tree to DIR, laid out for any
    /// static web server (c2sp.org/tlog-tiles); reads the registry's database directly.
    Export {
        dir: PathBuf,
        /// Also write the entry bundles. They name who was drawn: serve that directory only
        /// to the roles that may read the log.
        #[arg(long)]
        entries: bool,
        /// The registry's database (default: the configured one).
        #[arg(long, env = "GOVIT_EXPERTS_DATABASE_URL")]
        database_url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CalendarCommand {
    /// Imports or corrects a year from a CSV of `date,kind,name` rows; open deadlines the year
    /// touches are recomputed.
    Import {
        file: PathBuf,
        #[arg(long)]
        year: i32,
        #[arg(long, value_enum)]
        status: crate::calendar::Status,
        /// Where the figures come from, e.g. the notice's number.
        #[arg(long)]
        source: String,
        #[command(flatten)]
        remote: crate::calendar::SchedulingRemote,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// The portfolio: one row per project and a total (CSV), or the summary with the rows (JSON).
    Portfolio {
        #[arg(long, default_value_t = 0)]
        year: i32,
        /// Only one applying organisation: its credit code.
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        category: Option<String>,
        #[arg(long, value_enum, default_value_t = crate::report::Format::Csv)]
        format: crate::report::Format,
        #[arg(long)]
        out: Option<PathBuf>,
        #[command(flatten)]
        remote: crate::report::ProjectsRemote,
    },
}

#[derive(Debug, Subcommand)]
pub enum VerifyCommand {
    /// Recomputes a draw from its record, offline: exit 0 when it reproduces.
    Draw { record: PathBuf },
    /// Checks the transparency log: the head's signature, a draw's inclusion, consistency with
    /// an earlier head; online, or offline from exported files.
    Log(Box<crate::inspect::LogArgs>),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut settings = Settings::resolve(&cli.global)?;
    if matches!(cli.command, Command::Serve { .. }) && !settings.reflection_configured {
        settings.server.reflection = false;
    }
    match cli.command {
        Command::Up {
            projects_listen,
            experts_listen,
            scheduling_listen,
        } => {
            run::up(
                &settings,
                [projects_listen, experts_listen, scheduling_listen],
            )
            .await
        }
        Command::Serve {
            service,
            listen,
            database_url,
            dev_key,
            projects_url,
            experts_url,
            scheduling_url,
        } => {
            let peers = run::Addresses {
                projects: projects_url,
                experts: experts_url,
                scheduling: scheduling_url,
            };
            serve(&settings, service, listen, database_url, dev_key, peers).await
        }
        Command::Migrate {
            service,
            database_url,
        } => run::migrate(&settings, service, database_url.as_deref()).await,
        Command::Demo {
            projects_url,
            experts_url,
            scheduling_url,
        } => {
            let targets = crate::demo::Targets {
                projects: projects_url,
                experts: experts_url,
                scheduling: scheduling_url,
                key: settings.signing_secret().ok_or_else(|| {
                    anyhow::anyhow!("the demo mints tokens and needs an HS256 key")
                })?,
                tls: settings.peer_tls.clone(),
            };
            crate::demo::run(&targets, &mut std::io::stdout())
                .await
                .map(|_| ())
        }
        Command::Bench(args) => crate::bench::run(&settings, args).await,
        Command::Token {
            role,
            subject,
            org,
            expert,
            bureau,
            hours,
        } => {
            let token = mint_token(&settings, role, subject, (org, expert, bureau), hours)?;
            println!("{token}");
            Ok(())
        }
        tool => run_tool(&settings, tool).await,
    }
}

fn mint_token(
    settings: &Settings,
    role: Role,
    subject: Option<String>,
    (org, expert, bureau): (
        Option<String>,
        Option<String>,
        Option<govit_platform::auth::Bureau>,
    ),
    hours: u64,
) -> anyhow::Result<String> {
    let Some(secret) = settings.signing_secret() else {
        anyhow::bail!("the configured key is a public key; tokens are minted by its issuer");
    };
    if role == Role::Applicant && org.is_none() {
        anyhow::bail!("an applicant token needs --org CREDIT_CODE");
    }
    if role == Role::Expert && expert.is_none() {
        anyhow::bail!("an expert token needs --expert ID");
    }
    let subject = subject.unwrap_or_else(|| format!("dev-{role}"));
    if role == Role::Supervisor {
        let Some(bureau) = bureau else {
            anyhow::bail!("a supervisor token needs --bureau finance|development_reform|audit");
        };
        return govit_platform::auth::mint_hs256_for_bureau(
            &secret,
            &subject,
            bureau,
            Duration::from_secs(hours * 3600),
        );
    }
    govit_platform::auth::mint_hs256(
        &secret,
        &subject,
        role,
        org.as_deref(),
        expert.as_deref(),
        Duration::from_secs(hours * 3600),
    )
}

async fn serve(
    settings: &Settings,
    service: ServiceName,
    listen: Option<SocketAddr>,
    database_url: Option<String>,
    dev_key: bool,
    peers: run::Addresses,
) -> anyhow::Result<()> {
    if settings.using_development_key && !dev_key {
        anyhow::bail!(
            "no token key configured: set GOVIT_JWT_HS256_KEY, GOVIT_JWT_ED25519_PUBLIC_KEY \
             or GOVIT_JWT_RSA_PUBLIC_KEY (or pass --dev-key to accept development tokens)"
        );
    }
    run::serve_one(settings, service, listen, database_url.as_deref(), &peers).await
}

/// The commands that work against running services or files: roster, draws, calendar,
/// reports, verification.
async fn run_tool(settings: &Settings, command: Command) -> anyhow::Result<()> {
    match command {
        Command::Experts {
            command:
                ExpertsCommand::Import {
                    file,
                    validate_only,
                    remote,
                },
        } => crate::client::import(settings, &remote, &file, validate_only).await,
        Command::Experts {
            command: ExpertsCommand::Export { out, remote },
        } => crate::client::export(settings, &remote, out.as_deref()).await,
        Command::Draws {
            command:
                DrawsCommand::Export {
                    draw_id,
                    out,
                    remote,
                },
        } => crate::client::export_draw(settings, &remote, &draw_id, out.as_deref()).await,
        Command::Calendar {
            command:
                CalendarCommand::Import {
                    file,
                    year,
                    status,
                    source,
                    remote,
                },
        } => crate::calendar::import(settings, &remote, &file, year, status, &source).await,
        Command::Report {
            command:
                ReportCommand::Portfolio {
                    year,
                    org,
                    category,
                    format,
                    out,
                    remote,
                },
        } => {
            crate::report::portfolio(
                settings,
                &remote,
                year,
                org,
                category,
                format,
                out.as_deref(),
            )
            .await
        }
        Command::Verify {
            command: VerifyCommand::Draw { record },
        } => crate::inspect::verify_draw(&record),
        Command::Verify {
            command: VerifyCommand::Log(args),
        } => crate::inspect::verify_log(settings, &args).await,
        Command::Witness(args) => crate::witness::run(&args, &settings.data_dir).await,
        Command::Backup { dir } => crate::backup::backup(settings, &dir).await,
        Command::Restore { dir, force } => crate::backup::restore(settings, &dir, force),
        Command::Log {
            command:
                LogCommand::Export {
                    dir,
                    entries,
                    database_url,
                },
        } => crate::run::export_log(settings, &dir, entries, database_url.as_deref()).await,
        Command::Log {
            command: LogCommand::Keygen { file },
        } => {
            let vkey = govit_experts::generate_log_key(&file, &settings.log.origin)?;
            println!("wrote {}; its verifier key:\n{vkey}", file.display());
            Ok(())
        }
        _ => anyhow::bail!("run handles every other command itself"),
    }
}
