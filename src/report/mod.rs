//! `govit report portfolio`: the supervising bureaus' figures as CSV or JSON for their own
//! spreadsheets, or as one HTML page with charts to look at, built from the projects service's
//! API.

mod html;

use std::{io::Write, path::Path};

use anyhow::Context;
use govit_platform::Role;
use govit_proto::StoredEnum;
use govit_proto::projects::v1::{self as pb, project_service_client::ProjectServiceClient};
use serde::Serialize;

use crate::{
    client::{connect, explain},
    config::Settings,
};

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Format {
    Csv,
    Json,
    /// One self-contained page: charts (inline SVG) and tables, no script.
    Html,
}

/// Where a command finds the projects service.
#[derive(Debug, Clone, clap::Args)]
pub struct ProjectsRemote {
    #[arg(
        long,
        env = "GOVIT_PROJECTS_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// A bearer token; without one, a short-lived office token is minted with the configured
    /// HS256 key.
    #[arg(long, env = "GOVIT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

#[derive(Debug, Serialize)]
pub(crate) struct Row {
    project: String,
    name: String,
    applicant: String,
    category: String,
    state: String,
    approved_budget_fen: i64,
    original_approved_budget_fen: i64,
    contract_amount_fen: i64,
    disbursed_fen: i64,
    cost_variance_bp: i64,
    schedule_variance_bp: i64,
    risk_color: String,
}

#[derive(Debug, Serialize)]
struct Report {
    year: i32,
    project_count: i32,
    counts_by_state: Vec<(String, i32)>,
    total_approved_fen: i64,
    total_contracted_fen: i64,
    total_disbursed_fen: i64,
    beyond_variance_bands: Vec<String>,
    beyond_budget_threshold: Vec<String>,
    overdue_findings: i32,
    overdue_reviews: Vec<String>,
    projects: Vec<Row>,
}

/// Which projects a report covers.
struct Filter {
    year: i32,
    organization: String,
    category: String,
}

type Projects = ProjectServiceClient<
    tonic::service::interceptor::InterceptedService<
        tonic::transport::Channel,
        govit_platform::client::BearerToken,
    >,
>;

pub async fn portfolio(
    settings: &Settings,
    remote: &ProjectsRemote,
    year: i32,
    org: Option<String>,
    category: Option<String>,
    format: Format,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let (channel, bearer) = connect(
        settings,
        &remote.server,
        remote.token.as_deref(),
        Role::Office,
        "projects service",
    )
    .await?;
    let mut client = ProjectServiceClient::with_interceptor(channel, bearer);
    let filter = Filter {
        year,
        organization: org
            .map(|o| format!("organizations/{o}"))
            .unwrap_or_default(),
        category: category.unwrap_or_default(),
    };
    let summary = client
        .get_portfolio_summary(pb::GetPortfolioSummaryRequest {
            year,
            organization: filter.organization.clone(),
            category: filter.category.clone(),
        })
        .await
        .map_err(explain)?
        .into_inner();
    let rows = project_rows(&mut client, &filter).await?;
    let codes: std::collections::BTreeSet<String> =
        rows.iter().map(|r| r.project.clone()).collect();
    let page = match format {
        Format::Html => Some(html_extras(&mut client, &codes).await?),
        _ => None,
    };
    let sink: Box<dyn std::io::Write> = match out {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    match (format, page) {
        (Format::Html, Some((snapshots, overdue))) => {
            let mut sink = sink;
            let page = html::render(&html::Page {
                year,
                generated: chrono::Utc::now()
                    .with_timezone(&govit_platform::time::beijing())
                    .format("%Y-%m-%d %H:%M (Beijing)")
                    .to_string(),
                project_count: summary.project_count,
                totals_fen: [
                    summary.total_approved_fen,
                    summary.total_contracted_fen,
                    summary.total_disbursed_fen,
                ],
                rows: &rows,
                snapshots: &snapshots,
                overdue: &overdue,
            })?;
            sink.write_all(page.as_bytes())?;
            Ok(())
        }
        (Format::Json, _) => write_json(sink, year, summary, rows),
        _ => write_csv(sink, &summary, &rows),
    }
}

type Snapshots = Vec<(String, String, String)>;
type Overdue = Vec<(String, String, String, String, String)>;

/// The monthly snapshots' risk colours and the overdue findings of the projects in `codes`.
async fn html_extras(
    client: &mut Projects,
    codes: &std::collections::BTreeSet<String>,
) -> anyhow::Result<(Snapshots, Overdue)> {
    let mut snapshots = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_snapshots(pb::ListSnapshotsRequest {
                page_size: 200,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .map_err(explain)?
            .into_inner();
        for s in page.snapshots {
            let code = s.project.trim_start_matches("projects/").to_owned();
            if codes.contains(&code) {
                let colour = pb::RiskColor::try_from(s.color)
                    .unwrap_or_default()
                    .as_stored()
                    .to_owned();
                snapshots.push((code, s.month, colour));
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut overdue = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_overdue_findings(pb::ListOverdueFindingsRequest {
                page_size: 200,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .map_err(explain)?
            .into_inner();
        for f in page.findings {
            let code = f
                .name
                .trim_start_matches("projects/")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_owned();
            if codes.contains(&code) {
                let due = f
                    .due_date
                    .map(|d| format!("{}-{:02}-{:02}", d.year, d.month, d.day))
                    .unwrap_or_default();
                let severity = pb::FindingSeverity::try_from(f.severity)
                    .unwrap_or_default()
                    .as_stored()
                    .to_owned();
                overdue.push((f.name, code, f.description, severity, due));
            }
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    Ok((snapshots, overdue))
}

/// `UNDER_CONSTRUCTION` for the wire value of `PROJECT_STATE_UNDER_CONSTRUCTION`.
fn state_name(state: i32) -> String {
    pb::ProjectState::try_from(state)
        .unwrap_or_default()
        .as_stored()
        .to_owned()
}

/// Every project the filter covers, with its variance, page by page; progress on a terminal.
async fn project_rows(client: &mut Projects, filter: &Filter) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut token = String::new();
    let progress = crate::progress::counter("projects read");
    loop {
        let page = client
            .list_projects(pb::ListProjectsRequest {
                page_size: 200,
                page_token: token.clone(),
                year: filter.year,
                organization: filter.organization.clone(),
                category: filter.category.clone(),
                ..Default::default()
            })
            .await
            .map_err(explain)?
            .into_inner();
        for p in page.projects {
            let v = client
                .get_project_variance(pb::GetProjectVarianceRequest {
                    name: p.name.clone(),
                })
                .await
                .map_err(explain)?
                .into_inner();
            rows.push(row(p, &v));
            progress.inc(1);
        }
        if page.next_page_token.is_empty() {
            progress.finish_and_clear();
            return Ok(rows);
        }
        token = page.next_page_token;
    }
}

fn row(p: pb::Project, v: &pb::ProjectVariance) -> Row {
    Row {
        project: p.code,
        name: p.display_name,
        applicant: p.applicant.trim_start_matches("organizations/").to_owned(),
        category: p.category,
        state: state_name(p.state),
        approved_budget_fen: p.approved_budget_fen,
        original_approved_budget_fen: p.original_approved_budget_fen,
        contract_amount_fen: p
            .tender_result
            .as_ref()
            .map(|t| t.contract_amount_fen)
            .unwrap_or_default(),
        disbursed_fen: p.disbursed_fen,
        cost_variance_bp: v.cost_variance_bp,
        schedule_variance_bp: v.schedule_variance_bp,
        risk_color: pb::RiskColor::try_from(v.color)
            .unwrap_or_default()
            .as_stored()
            .to_owned(),
    }
}

fn write_json(
    mut sink: Box<dyn std::io::Write>,
    year: i32,
    summary: pb::PortfolioSummary,
    rows: Vec<Row>,
) -> anyhow::Result<()> {
    let report = Report {
        year,
        project_count: summary.project_count,
        counts_by_state: summary
            .counts
            .iter()
            .map(|c| (state_name(c.state), c.count))
            .collect(),
        total_approved_fen: summary.total_approved_fen,
        total_contracted_fen: summary.total_contracted_fen,
        total_disbursed_fen: summary.total_disbursed_fen,
        beyond_variance_bands: summary.beyond_variance_bands,
        beyond_budget_threshold: summary.beyond_budget_threshold,
        overdue_findings: summary.overdue_findings,
        overdue_reviews: summary.overdue_reviews,
        projects: rows,
    };
    serde_json::to_writer_pretty(&mut sink, &report)?;
    writeln!(sink)?;
    Ok(())
}

const CSV_HEADER: [&str; 12] = [
    "project",
    "name",
    "applicant",
    "category",
    "state",
    "approved_budget_fen",
    "original_approved_budget_fen",
    "contract_amount_fen",
    "disbursed_fen",
    "cost_variance_bp",
    "schedule_variance_bp",
    "risk_color",
];

fn write_csv(
    sink: Box<dyn std::io::Write>,
    summary: &pb::PortfolioSummary,
    rows: &[Row],
) -> anyhow::Result<()> {
    let mut writer = csv::Writer::from_writer(sink);
    for row in rows {
        writer.serialize(row)?;
    }
    if rows.is_empty() {
        writer.write_record(CSV_HEADER)?;
    }
    writer.write_record([
        "TOTAL".to_owned(),
        format!("{} projects", summary.project_count),
        String::new(),
        String::new(),
        String::new(),
        summary.total_approved_fen.to_string(),
        String::new(),
        summary.total_contracted_fen.to_string(),
        summary.total_disbursed_fen.to_string(),
        String::new(),
        String::new(),
        String::new(),
    ])?;
    writer.flush()?;
    Ok(())
}
