//! `govit calendar import`: office loads a year's holiday arrangement from a CSV file
//! (`date,kind,name` — kind HOLIDAY, MAKEUP_WORKDAY or WORKDAY) as each State Council notice
//! comes out.

use std::path::Path;

use anyhow::Context;
use govit_platform::Role;
use govit_proto::scheduling::v1::{
    self as spb, review_scheduling_service_client::ReviewSchedulingServiceClient,
};

use crate::{
    client::{connect, explain},
    config::Settings,
};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Status {
    Official,
    Provisional,
}

/// Where a command finds the scheduling service.
#[derive(Debug, Clone, clap::Args)]
pub struct SchedulingRemote {
    #[arg(
        long,
        env = "GOVIT_SCHEDULING_URL",
        default_value = "http://127.0.0.1:50053"
    )]
    pub server: String,
    /// A bearer token; without one, a short-lived office token is minted with the configured
    /// HS256 key.
    #[arg(long, env = "GOVIT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Reads `date,kind,name` rows (a header row is optional).
pub fn read_days(path: &Path) -> anyhow::Result<Vec<spb::CalendarDay>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut days = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim().trim_start_matches('\u{feff}');
        if line.is_empty()
            || line.starts_with('#')
            || (n == 0 && line.to_ascii_lowercase().starts_with("date"))
        {
            continue;
        }
        let mut cells = line.splitn(3, ',').map(str::trim);
        let (date, kind) = (
            cells.next().unwrap_or_default(),
            cells.next().unwrap_or_default(),
        );
        let name = cells.next().unwrap_or_default().to_owned();
        let date = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
            .with_context(|| format!("line {}: {date:?} is not YYYY-MM-DD", n + 1))?;
        let kind = match kind.to_ascii_uppercase().as_str() {
            "HOLIDAY" | "放假" => spb::DayKind::Holiday,
            "MAKEUP_WORKDAY" | "调休上班" | "上班" => spb::DayKind::MakeupWorkday,
            "WORKDAY" => spb::DayKind::Workday,
            other => anyhow::bail!(
                "line {}: unknown day kind {other:?} (HOLIDAY, MAKEUP_WORKDAY or WORKDAY)",
                n + 1
            ),
        };
        days.push(spb::CalendarDay {
            date: Some(govit_platform::time::date_to_proto(date)),
            kind: kind as i32,
            name,
        });
    }
    Ok(days)
}

pub async fn import(
    settings: &Settings,
    remote: &SchedulingRemote,
    file: &Path,
    year: i32,
    status: Status,
    source: &str,
) -> anyhow::Result<()> {
    let days = read_days(file)?;
    let (channel, bearer) = connect(
        settings,
        &remote.server,
        remote.token.as_deref(),
        Role::Office,
        "scheduling service",
    )
    .await?;
    let mut client = ReviewSchedulingServiceClient::with_interceptor(channel, bearer);
    let status = match status {
        Status::Official => spb::CalendarStatus::Official,
        Status::Provisional => spb::CalendarStatus::Provisional,
    };
    let year = client
        .import_calendar_year(spb::ImportCalendarYearRequest {
            request_id: String::new(),
            year,
            status: status as i32,
            source: source.to_owned(),
            days,
        })
        .await
        .map_err(explain)?
        .into_inner();
    println!(
        "{}: version {}, {} days that differ from Monday to Friday",
        year.year,
        year.version,
        year.days.len()
    );
    Ok(())
}
