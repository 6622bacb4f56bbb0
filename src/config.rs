//! Configuration: command-line flags, then `GOVIT_*` environment variables, then an optional
//! TOML file, then defaults — the first that says something wins. clap resolves flags over
//! environment; this module lays the file and the defaults beneath.

use std::{net::SocketAddr, path::PathBuf};

use anyhow::Context;
use govit_platform::{
    Authenticator, VerificationKey, auth::DEVELOPMENT_KEY, server::ServerOptions,
};
use serde::Deserialize;

use crate::cli::GlobalArgs;

/// The optional TOML file. Every key is optional; see `docs/configuration.md`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub data_dir: Option<PathBuf>,
    pub jwt_hs256_key: Option<String>,
    pub jwt_ed25519_public_key: Option<PathBuf>,
    pub jwt_rsa_public_key: Option<PathBuf>,
    pub jwks_url: Option<String>,
    pub jwks_refresh_seconds: Option<u64>,
    pub cors_origins: Option<Vec<String>>,
    pub max_message_bytes: Option<usize>,
    pub reflection: Option<bool>,
    /// Seconds calls in flight get to finish on SIGTERM.
    pub drain_seconds: Option<u64>,
    /// The deadline, in seconds, of a call that sends none (default 30; 0: none).
    pub default_deadline_seconds: Option<u64>,
    /// `full` (default) or `normal` for the embedded SQLite databases.
    pub sqlite_synchronous: Option<String>,
    /// Calls a second one token subject may make (default 50, bursts twice that; 0: off).
    pub rate_limit_per_second: Option<f64>,
    pub max_document_bytes: Option<u64>,
    pub blob_dir: Option<PathBuf>,
    /// Where Prometheus metrics are served (`/metrics`); off unless set.
    pub admin_listen: Option<SocketAddr>,
    #[serde(default)]
    pub draws: DrawsFileConfig,
    #[serde(default)]
    pub supervision: SupervisionFileConfig,
    #[serde(default)]
    pub log: LogFileConfig,
    #[serde(default)]
    pub tls: TlsFileConfig,
    #[serde(default)]
    pub projects: ServiceFileConfig,
    #[serde(default)]
    pub experts: ServiceFileConfig,
    #[serde(default)]
    pub scheduling: ServiceFileConfig,
}

/// `[tls]`: the listeners' certificate, and how this process calls the others.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFileConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    pub peer_ca: Option<PathBuf>,
    pub peer_cert: Option<PathBuf>,
    pub peer_key: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFileConfig {
    pub listen: Option<SocketAddr>,
    pub database_url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrawsFileConfig {
    pub require_witness: Option<bool>,
    pub max_alternates: Option<u32>,
    pub workload_max_selections: Option<u32>,
    pub workload_days: Option<u32>,
}

/// The registry's transparency log: its name, key and witnesses.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogFileConfig {
    pub origin: Option<String>,
    pub key_file: Option<PathBuf>,
    /// `URL=VERIFIER_KEY` of each witness.
    pub witnesses: Option<Vec<String>>,
}

/// How the registry names, signs and has its log cosigned.
#[derive(Debug, Clone)]
pub struct LogSettings {
    pub origin: String,
    pub key_file: Option<PathBuf>,
    pub witnesses: Vec<govit_experts::WitnessPeer>,
}

/// Supervision rules; percentages may have two decimals (10.5).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionFileConfig {
    pub budget_threshold_percent: Option<f64>,
    pub green_band_percent: Option<f64>,
    pub yellow_band_percent: Option<f64>,
    pub evaluation_weights: Option<[i32; 3]>,
    pub review_deadline_working_days: Option<u32>,
    pub override_approvers: Option<u32>,
    pub stable_operation_months: Option<u32>,
    /// Per bureau (finance, development_reform, audit), the funding sources of the projects
    /// it supervises (CITY_BUDGET, ...).
    pub remit: Option<std::collections::BTreeMap<String, Vec<String>>>,
}

fn basis_points(percent: f64) -> anyhow::Result<i64> {
    anyhow::ensure!(
        (0.0..=1000.0).contains(&percent),
        "a percentage must be between 0 and 1000"
    );
    Ok((percent * 100.0).round() as i64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServiceName {
    Projects,
    Experts,
    Scheduling,
}

impl ServiceName {
    pub const ALL: [ServiceName; 3] = [
        ServiceName::Projects,
        ServiceName::Experts,
        ServiceName::Scheduling,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Projects => "projects",
            ServiceName::Experts => "experts",
            ServiceName::Scheduling => "scheduling",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            ServiceName::Projects => 50051,
            ServiceName::Experts => 50052,
            ServiceName::Scheduling => 50053,
        }
    }

    pub fn grpc_name(self) -> &'static str {
        match self {
            ServiceName::Projects => "govit.projects.v1.ProjectService",
            ServiceName::Experts => "govit.experts.v1.ExpertRegistryService",
            ServiceName::Scheduling => "govit.scheduling.v1.ReviewSchedulingService",
        }
    }
}

/// Everything resolved.
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub key: Option<VerificationKey>,
    /// True when no key was configured and the public development key stands in.
    pub using_development_key: bool,
    pub server: ServerOptions,
    pub max_document_bytes: u64,
    pub blob_dir: PathBuf,
    pub draw_policy: govit_experts::DrawPolicy,
    pub log: LogSettings,
    /// `full` or `normal` for the embedded databases (default full).
    pub sqlite_synchronous: Option<String>,
    /// Calls a second per token subject (service tokens exempt); None when off.
    pub rate_limit: Option<govit_platform::auth::RateLimit>,
    pub supervision: govit_projects::SupervisionPolicy,
    /// Whether reflection was set by flag, variable or file (else each command has its default).
    pub reflection_configured: bool,
    /// How this process calls `https://` services; None: the system's roots, no client
    /// certificate.
    pub peer_tls: Option<govit_platform::tls::PeerTls>,
    /// Where Prometheus metrics are served; None: nowhere.
    pub admin_listen: Option<SocketAddr>,
    file: FileConfig,
}

impl Settings {
    /// Where the data directory keeps secrets (the log's signing key): backed up and restored
    /// with the databases.
    pub fn keys_dir(&self) -> PathBuf {
        self.data_dir.join("keys")
    }

    pub fn resolve(args: &GlobalArgs) -> anyhow::Result<Settings> {
        let file = read_file_config(args)?;
        let data_dir = args
            .data_dir
            .clone()
            .or_else(|| file.data_dir.clone())
            .unwrap_or_else(|| PathBuf::from("govit-data"));
        let key = token_key(args, &file)?;
        let max_document_bytes = args
            .max_document_bytes
            .or(file.max_document_bytes)
            .unwrap_or(govit_projects::DEFAULT_MAX_DOCUMENT_BYTES);
        let blob_dir = args
            .blob_dir
            .clone()
            .or_else(|| file.blob_dir.clone())
            .unwrap_or_else(|| data_dir.join("blobs"));
        Ok(Settings {
            data_dir,
            draw_policy: draw_policy(args, &file)?,
            log: log_settings(args, &file)?,
            sqlite_synchronous: args
                .sqlite_synchronous
                .clone()
                .or_else(|| file.sqlite_synchronous.clone()),
            rate_limit: rate_limit(args, &file)?,
            supervision: supervision_policy(args, &file)?,
            using_development_key: key.is_none(),
            key,
            server: ServerOptions {
                tls: server_tls(args, &file)?,
                ..server_options(args, &file)
            },
            peer_tls: peer_tls(args, &file)?,
            admin_listen: args.admin_listen.or(file.admin_listen),
            max_document_bytes,
            blob_dir,
            reflection_configured: args.reflection.is_some() || file.reflection.is_some(),
            file,
        })
    }

    /// `https` when the listeners serve TLS.
    pub fn scheme(&self) -> &'static str {
        if self.server.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The key that verifies tokens: the configured one, or the development key.
    pub fn verification_key(&self) -> VerificationKey {
        self.key
            .clone()
            .unwrap_or_else(|| VerificationKey::Hs256(DEVELOPMENT_KEY.as_bytes().to_vec()))
    }

    pub fn authenticator(&self) -> anyhow::Result<Authenticator> {
        let auth = Authenticator::new(&self.verification_key())?;
        Ok(match self.rate_limit {
            Some(limit) => auth.with_rate_limit(limit),
            None => auth,
        })
    }

    /// The HS256 secret tokens can be minted with, if the configuration has one.
    pub fn signing_secret(&self) -> Option<Vec<u8>> {
        match self.verification_key() {
            VerificationKey::Hs256(secret) => Some(secret),
            _ => None,
        }
    }

    fn service_file(&self, service: ServiceName) -> &ServiceFileConfig {
        match service {
            ServiceName::Projects => &self.file.projects,
            ServiceName::Experts => &self.file.experts,
            ServiceName::Scheduling => &self.file.scheduling,
        }
    }

    /// The service's database: flag, file, or a SQLite file under the data directory.
    pub fn database_url(&self, service: ServiceName, flag: Option<&str>) -> String {
        flag.map(str::to_owned)
            .or_else(|| self.service_file(service).database_url.clone())
            .unwrap_or_else(|| {
                let url = govit_platform::db::sqlite_url(
                    &self.data_dir.join(format!("{}.db", service.as_str())),
                );
                match self.sqlite_synchronous.as_deref() {
                    Some(mode) => format!("{url}?synchronous={mode}"),
                    None => url,
                }
            })
    }

    pub fn listen(&self, service: ServiceName, flag: Option<SocketAddr>) -> SocketAddr {
        flag.or(self.service_file(service).listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], service.default_port())))
    }
}

fn read_file_config(args: &GlobalArgs) -> anyhow::Result<FileConfig> {
    let Some(path) = &args.config else {
        return Ok(FileConfig::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config file {}", path.display()))
}

/// The one configured token key, if any: flags win over the file.
fn token_key(args: &GlobalArgs, file: &FileConfig) -> anyhow::Result<Option<VerificationKey>> {
    let read_key = |path: &PathBuf| {
        std::fs::read(path).with_context(|| format!("reading key file {}", path.display()))
    };
    let ed25519 = args
        .jwt_ed25519_public_key
        .clone()
        .or_else(|| file.jwt_ed25519_public_key.clone());
    let rsa = args
        .jwt_rsa_public_key
        .clone()
        .or_else(|| file.jwt_rsa_public_key.clone());
    let hs256 = args
        .jwt_hs256_key
        .clone()
        .or_else(|| file.jwt_hs256_key.clone());
    let jwks = args.jwks_url.clone().or_else(|| file.jwks_url.clone());
    if let Some(url) = jwks {
        anyhow::ensure!(
            ed25519.is_none() && rsa.is_none() && hs256.is_none(),
            "configure exactly one token key: HS256, Ed25519, RSA or a JWKS URL"
        );
        // Whoever can change the key set in transit can sign any role: plain HTTP only to a
        // provider on this machine.
        let loopback = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
            .iter()
            .any(|prefix| {
                url.strip_prefix(prefix)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with([':', '/']))
            });
        anyhow::ensure!(
            url.starts_with("https://") || loopback,
            "the JWKS URL must be https:// (plain http only on loopback)"
        );
        let refresh = args
            .jwks_refresh_seconds
            .or(file.jwks_refresh_seconds)
            .unwrap_or(300)
            .max(5);
        return Ok(Some(VerificationKey::Jwks {
            url,
            refresh: std::time::Duration::from_secs(refresh),
        }));
    }
    Ok(match (ed25519, rsa, hs256) {
        (Some(p), None, None) => Some(VerificationKey::Ed25519Pem(read_key(&p)?)),
        (None, Some(p), None) => Some(VerificationKey::RsaPem(read_key(&p)?)),
        (None, None, Some(secret)) => {
            anyhow::ensure!(
                secret.len() >= 32,
                "the HS256 key must be at least 32 bytes"
            );
            Some(VerificationKey::Hs256(secret.into_bytes()))
        }
        (None, None, None) => None,
        _ => anyhow::bail!("configure exactly one token key: HS256, Ed25519, RSA or a JWKS URL"),
    })
}

/// 50 calls a second per caller, in bursts of 100, unless configured; 0 turns it off.
fn rate_limit(
    args: &GlobalArgs,
    file: &FileConfig,
) -> anyhow::Result<Option<govit_platform::auth::RateLimit>> {
    let per_second = args
        .rate_limit
        .or(file.rate_limit_per_second)
        .unwrap_or(50.0);
    anyhow::ensure!(
        per_second.is_finite() && per_second >= 0.0,
        "the rate limit must be a number of calls a second, 0 for none"
    );
    if per_second == 0.0 {
        return Ok(None);
    }
    Ok(Some(govit_platform::auth::RateLimit {
        per_second,
        burst: (per_second * 2.0).max(1.0),
    }))
}

fn log_settings(args: &GlobalArgs, file: &FileConfig) -> anyhow::Result<LogSettings> {
    let peers = if args.witness_peers.is_empty() {
        file.log.witnesses.clone().unwrap_or_default()
    } else {
        args.witness_peers.clone()
    };
    Ok(LogSettings {
        origin: args
            .log_origin
            .clone()
            .or_else(|| file.log.origin.clone())
            .unwrap_or_else(|| govit_experts::DEFAULT_ORIGIN.to_owned()),
        key_file: args.log_key.clone().or_else(|| file.log.key_file.clone()),
        witnesses: peers
            .iter()
            .map(|p| govit_experts::WitnessPeer::parse(p))
            .collect::<anyhow::Result<_>>()?,
    })
}

/// The flag's path, else the file's.
fn pick(flag: &Option<PathBuf>, file: &Option<PathBuf>) -> Option<PathBuf> {
    flag.clone().or_else(|| file.clone())
}

fn server_tls(
    args: &GlobalArgs,
    file: &FileConfig,
) -> anyhow::Result<Option<tonic::transport::ServerTlsConfig>> {
    let cert = pick(&args.tls_cert, &file.tls.cert);
    let key = pick(&args.tls_key, &file.tls.key);
    let client_ca = pick(&args.tls_client_ca, &file.tls.client_ca);
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some(
            govit_platform::tls::ServerTlsFiles {
                cert,
                key,
                client_ca,
            }
            .load()?,
        )),
        (None, None) if client_ca.is_none() => Ok(None),
        _ => anyhow::bail!("TLS needs both a certificate and its key (tls_cert and tls_key)"),
    }
}

fn peer_tls(
    args: &GlobalArgs,
    file: &FileConfig,
) -> anyhow::Result<Option<govit_platform::tls::PeerTls>> {
    let ca = pick(&args.peer_ca, &file.tls.peer_ca);
    let identity = match (
        pick(&args.peer_cert, &file.tls.peer_cert),
        pick(&args.peer_key, &file.tls.peer_key),
    ) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        _ => anyhow::bail!("a client certificate needs its key (peer_cert and peer_key)"),
    };
    if ca.is_none() && identity.is_none() {
        return Ok(None);
    }
    Ok(Some(
        govit_platform::tls::ClientTlsFiles { ca, identity }.load()?,
    ))
}

fn server_options(args: &GlobalArgs, file: &FileConfig) -> ServerOptions {
    ServerOptions {
        cors_origins: if args.cors_origins.is_empty() {
            file.cors_origins.clone().unwrap_or_default()
        } else {
            args.cors_origins.clone()
        },
        max_message_bytes: args
            .max_message_bytes
            .or(file.max_message_bytes)
            .unwrap_or(ServerOptions::default().max_message_bytes),
        reflection: args
            .reflection
            .or(file.reflection)
            .unwrap_or(ServerOptions::default().reflection),
        drain_timeout: args
            .drain_seconds
            .or(file.drain_seconds)
            .map(std::time::Duration::from_secs)
            .unwrap_or(ServerOptions::default().drain_timeout),
        default_deadline: match args
            .default_deadline_seconds
            .or(file.default_deadline_seconds)
        {
            Some(0) => None,
            Some(seconds) => Some(std::time::Duration::from_secs(seconds)),
            None => ServerOptions::default().default_deadline,
        },
        ..ServerOptions::default()
    }
}

fn draw_policy(args: &GlobalArgs, file: &FileConfig) -> anyhow::Result<govit_experts::DrawPolicy> {
    let defaults = govit_experts::DrawPolicy::default();
    let workload = match (
        args.workload_max_selections
            .or(file.draws.workload_max_selections),
        args.workload_days.or(file.draws.workload_days),
    ) {
        (Some(max_selections), Some(days)) => Some(govit_experts::WorkloadRule {
            max_selections,
            days,
        }),
        (None, None) => None,
        _ => anyhow::bail!(
            "the workload rule needs both a maximum of selections and a number of days"
        ),
    };
    Ok(govit_experts::DrawPolicy {
        require_witness: args
            .draw_require_witness
            .or(file.draws.require_witness)
            .unwrap_or(defaults.require_witness),
        max_alternates: args
            .draw_max_alternates
            .or(file.draws.max_alternates)
            .unwrap_or(defaults.max_alternates),
        workload,
    })
}

fn supervision_policy(
    args: &GlobalArgs,
    file: &FileConfig,
) -> anyhow::Result<govit_projects::SupervisionPolicy> {
    let sup = &file.supervision;
    let mut supervision = govit_projects::SupervisionPolicy::default();
    if let Some(p) = args
        .budget_threshold_percent
        .or(sup.budget_threshold_percent)
    {
        supervision.budget_threshold_bp = basis_points(p)?;
    }
    if let Some(p) = sup.green_band_percent {
        supervision.bands.green_bp = basis_points(p)?;
    }
    if let Some(p) = sup.yellow_band_percent {
        supervision.bands.yellow_bp = basis_points(p)?;
    }
    anyhow::ensure!(
        supervision.bands.green_bp <= supervision.bands.yellow_bp,
        "the green band must not be wider than the yellow"
    );
    if let Some(w) = sup.evaluation_weights {
        supervision.evaluation_weights = w;
    }
    if let Some(d) = sup.review_deadline_working_days {
        supervision.review_deadline_working_days = d;
    }
    if let Some(n) = sup.override_approvers {
        anyhow::ensure!((1..=2).contains(&n), "override_approvers must be 1 or 2");
        supervision.override_approvers = n;
    }
    if let Some(months) = sup.stable_operation_months {
        anyhow::ensure!(
            months <= 120,
            "stable_operation_months must be at most 120 (ten years)"
        );
        supervision.stable_operation_months = months;
    }
    for (bureau, sources) in sup.remit.iter().flatten() {
        let bureau: govit_platform::auth::Bureau = bureau
            .parse()
            .map_err(|e: String| anyhow::anyhow!("[supervision.remit]: {e}"))?;
        anyhow::ensure!(
            !sources.is_empty(),
            "[supervision.remit] {bureau}: a bureau supervises at least one funding source"
        );
        let sources = sources
            .iter()
            .map(|s| {
                use govit_proto::StoredEnum;
                govit_proto::projects::v1::FundingSource::from_stored(s)
                    .map_err(|e| anyhow::anyhow!("[supervision.remit] {bureau}: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        supervision.bureau_remits.retain(|(b, _)| *b != bureau);
        supervision.bureau_remits.push((bureau, sources));
    }
    Ok(supervision)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;

    fn settings(args: &[&str]) -> Settings {
        let cli = Cli::try_parse_from(args).unwrap();
        Settings::resolve(&cli.global).unwrap()
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("govit.toml");
        std::fs::write(
            &file,
            "data_dir = \"/srv/govit\"\ncors_origins = [\"https://a.example\"]\n\
             [projects]\nlisten = \"0.0.0.0:6000\"\ndatabase_url = \"postgres://db/p\"\n",
        )
        .unwrap();
        let path = file.to_str().unwrap();

        let from_file = settings(&["govit", "--config", path, "migrate"]);
        assert_eq!(from_file.data_dir, PathBuf::from("/srv/govit"));
        assert_eq!(from_file.server.cors_origins, ["https://a.example"]);
        assert_eq!(
            from_file.database_url(ServiceName::Projects, None),
            "postgres://db/p"
        );
        assert_eq!(from_file.listen(ServiceName::Projects, None).port(), 6000);
        assert_eq!(
            from_file.database_url(ServiceName::Experts, None),
            "sqlite:///srv/govit/experts.db"
        );
        assert_eq!(
            from_file.listen(ServiceName::Scheduling, None).port(),
            50053
        );
        assert!(from_file.using_development_key);

        let flagged = settings(&[
            "govit",
            "--config",
            path,
            "--data-dir",
            "/tmp/x",
            "--cors-origin",
            "https://b.example,https://c.example",
            "migrate",
        ]);
        assert_eq!(flagged.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(
            flagged.server.cors_origins,
            ["https://b.example", "https://c.example"]
        );
        assert_eq!(
            flagged.database_url(ServiceName::Projects, Some("sqlite://y.db")),
            "sqlite://y.db"
        );
    }

    #[test]
    fn a_short_or_ambiguous_key_is_refused() {
        let cli = Cli::try_parse_from(["govit", "--jwt-hs256-key", "short", "migrate"]).unwrap();
        assert!(Settings::resolve(&cli.global).is_err());
        let cli = Cli::try_parse_from([
            "govit",
            "--jwt-hs256-key",
            "0123456789abcdef0123456789abcdef",
            "--jwt-rsa-public-key",
            "/nonexistent.pem",
            "migrate",
        ])
        .unwrap();
        assert!(Settings::resolve(&cli.global).is_err());
    }

    #[test]
    fn each_bureau_supervises_the_funding_sources_its_remit_names() {
        use govit_platform::auth::Bureau;
        use govit_proto::projects::v1::FundingSource as F;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("govit.toml");
        let resolve = |text: &str| {
            std::fs::write(&file, text).unwrap();
            let cli = Cli::try_parse_from(["govit", "--config", file.to_str().unwrap(), "migrate"])
                .unwrap();
            Settings::resolve(&cli.global)
        };
        let defaults = resolve("").unwrap().supervision.bureau_remits;
        assert_eq!(
            defaults,
            [(
                Bureau::Finance,
                vec![
                    F::CityBudget,
                    F::HigherLevelTransfer,
                    F::SpecialBond,
                    F::Mixed
                ]
            )]
        );
        let configured = resolve(
            "[supervision.remit]\nfinance = [\"CITY_BUDGET\"]\naudit = [\"SELF_RAISED\"]\n",
        )
        .unwrap()
        .supervision
        .bureau_remits;
        assert_eq!(
            configured,
            [
                (Bureau::Audit, vec![F::SelfRaised]),
                (Bureau::Finance, vec![F::CityBudget])
            ]
        );
        for wrong in [
            "[supervision.remit]\ntax = [\"CITY_BUDGET\"]\n",
            "[supervision.remit]\nfinance = [\"LOTTERY\"]\n",
            "[supervision.remit]\nfinance = []\n",
        ] {
            assert!(resolve(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn an_unknown_file_key_is_an_error_not_a_silent_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("govit.toml");
        std::fs::write(&file, "data_dri = \"/typo\"\n").unwrap();
        let cli =
            Cli::try_parse_from(["govit", "--config", file.to_str().unwrap(), "migrate"]).unwrap();
        assert!(Settings::resolve(&cli.global).is_err());
    }
}
