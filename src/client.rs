//! Commands that talk to a running registry: roster import and export, draw export.

use std::path::Path;

use anyhow::Context;
use govit_platform::{Role, client::BearerToken};
use govit_proto::StoredEnum;
use govit_proto::experts::v1::{
    self as epb, expert_registry_service_client::ExpertRegistryServiceClient,
    stream_import_experts_request::Part,
};
use tonic::{Status, service::interceptor::InterceptedService, transport::Channel};

use crate::config::Settings;

/// Where a command finds the registry and which token it presents.
#[derive(Debug, Clone, clap::Args)]
pub struct Remote {
    /// The expert registry's address.
    #[arg(
        long,
        env = "GOVIT_EXPERTS_URL",
        default_value = "http://127.0.0.1:50052"
    )]
    pub server: String,
    /// A bearer token; without one, a short-lived token is minted with the configured HS256 key.
    #[arg(long, env = "GOVIT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

pub type Registry = ExpertRegistryServiceClient<InterceptedService<Channel, BearerToken>>;

/// Connects to a service and prepares the token to present: `token` as given, or a
/// short-lived one for `role` minted with the configured HS256 key.
pub async fn connect(
    settings: &Settings,
    server: &str,
    token: Option<&str>,
    role: Role,
    what: &str,
) -> anyhow::Result<(Channel, BearerToken)> {
    let token = match token {
        Some(t) => t.to_owned(),
        None => {
            let secret = settings
                .signing_secret()
                .context("no --token given and the configured key cannot mint one")?;
            govit_platform::auth::mint_hs256(
                &secret,
                &format!("cli-{role}"),
                role,
                None,
                None,
                std::time::Duration::from_secs(600),
            )?
        }
    };
    let channel = govit_platform::client::endpoint(server, settings.peer_tls.as_ref())?
        .connect()
        .await
        .with_context(|| format!("connecting to the {what} at {server}"))?;
    Ok((
        channel,
        BearerToken::new(&token).context("the token is not valid header text")?,
    ))
}

pub async fn registry(
    settings: &Settings,
    remote: &Remote,
    role: Role,
) -> anyhow::Result<Registry> {
    let (channel, bearer) = connect(
        settings,
        &remote.server,
        remote.token.as_deref(),
        role,
        "registry",
    )
    .await?;
    Ok(ExpertRegistryServiceClient::with_interceptor(
        channel, bearer,
    ))
}

/// Turns a status into an error that lists its field violations, one per line.
pub fn explain(status: Status) -> anyhow::Error {
    use tonic_types::StatusExt;
    let mut text = format!(
        "{:?}: {}",
        status.code(),
        status.message().split(": ").next().unwrap_or_default()
    );
    match status.get_details_bad_request() {
        Some(bad) => {
            for v in bad.field_violations {
                text.push_str(&format!("\n  {}: {}", v.field, v.description));
            }
        }
        None => text = format!("{:?}: {}", status.code(), status.message()),
    }
    anyhow::anyhow!(text)
}

/// The size of each message of a streamed roster, well under the 4 MiB a message may have.
const IMPORT_CHUNK_BYTES: usize = 1024 * 1024;
/// How long an import may take: a million rows, with room to spare.
const IMPORT_DEADLINE: std::time::Duration = std::time::Duration::from_secs(600);

pub async fn import(
    settings: &Settings,
    remote: &Remote,
    file: &Path,
    validate_only: bool,
) -> anyhow::Result<()> {
    let format = match file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("csv") => epb::RosterFormat::Csv,
        Some("xlsx") => epb::RosterFormat::Xlsx,
        _ => anyhow::bail!("{} is neither .csv nor .xlsx", file.display()),
    };
    let content = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let mut client = registry(settings, remote, Role::RegistryAdmin).await?;
    // Streamed, so that a roster of any size goes in one call and one transaction.
    let first = epb::StreamImportExpertsRequest {
        part: Some(Part::Request(epb::ImportExpertsRequest {
            request_id: String::new(),
            format: format as i32,
            content: Vec::new(),
            validate_only,
        })),
    };
    let chunks: Vec<epb::StreamImportExpertsRequest> = content
        .chunks(IMPORT_CHUNK_BYTES)
        .map(|chunk| epb::StreamImportExpertsRequest {
            part: Some(Part::Chunk(chunk.to_vec())),
        })
        .collect();
    let progress = crate::progress::bar(content.len() as u64, "roster sent", true);
    drop(content);
    // Counted as the stream hands each chunk over; the server's check of every row follows.
    let counted = progress.clone();
    let chunks = chunks.into_iter().inspect(move |c| {
        if let Some(Part::Chunk(bytes)) = &c.part {
            counted.inc(bytes.len() as u64);
        }
    });
    let mut request = tonic::Request::new(tokio_stream::iter(std::iter::once(first).chain(chunks)));
    // The server's default deadline is for interactive calls; a large roster may need more.
    request.set_timeout(IMPORT_DEADLINE);
    let result = client.stream_import_experts(request).await.map_err(explain);
    progress.finish_and_clear();
    let result = result?.into_inner();
    let verb = if validate_only {
        "would create"
    } else {
        "created"
    };
    println!(
        "{}: {verb} {}, {} {}",
        file.display(),
        result.created,
        if validate_only {
            "would update"
        } else {
            "updated"
        },
        result.updated
    );
    Ok(())
}

/// Writes every expert as a CSV roster with the column names `import` reads.
pub async fn export(
    settings: &Settings,
    remote: &Remote,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let mut client = registry(settings, remote, Role::RegistryAdmin).await?;
    let sink: Box<dyn std::io::Write> = match out {
        Some(path) => Box::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let mut writer = csv::Writer::from_writer(sink);
    writer.write_record([
        "expert_id",
        "name",
        "employer_credit_code",
        "employer",
        "source",
        "title",
        "categories",
        "phone",
        "email",
        "id_number",
        "appointment_start",
        "appointment_end",
        "status",
    ])?;
    let date = |d: &Option<govit_proto::google::r#type::Date>| {
        d.as_ref()
            .map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
            .unwrap_or_default()
    };
    let mut token = String::new();
    let mut count = 0;
    let progress = crate::progress::counter("experts exported");
    loop {
        let page = client
            .list_experts(epb::ListExpertsRequest {
                page_size: 200,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .map_err(explain)?
            .into_inner();
        for e in page.experts {
            let employer = e.employer.clone().unwrap_or_default();
            let source = epb::ExpertSource::try_from(e.source).unwrap_or_default();
            let status = epb::ExpertStatus::try_from(e.status).unwrap_or_default();
            writer.write_record([
                e.expert_id.as_str(),
                &e.display_name,
                &employer.credit_code,
                &employer.name,
                source.as_stored(),
                &e.title,
                &e.categories.join(";"),
                &e.phone,
                &e.email,
                &e.id_number,
                &date(&e.appointment_start_date),
                &date(&e.appointment_end_date),
                status.as_stored(),
            ])?;
            count += 1;
            progress.inc(1);
        }
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    progress.finish_and_clear();
    writer.flush()?;
    eprintln!("{count} experts exported");
    Ok(())
}

pub async fn export_draw(
    settings: &Settings,
    remote: &Remote,
    draw_id: &str,
    out: Option<&Path>,
) -> anyhow::Result<()> {
    let mut client = registry(settings, remote, Role::Inspector).await?;
    let name = if draw_id.starts_with("draws/") {
        draw_id.to_owned()
    } else {
        format!("draws/{draw_id}")
    };
    let record = client
        .get_draw_record(epb::GetDrawRecordRequest { name })
        .await
        .map_err(explain)?
        .into_inner();
    match out {
        Some(path) => {
            std::fs::write(path, record.record_json + "\n")
                .with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "record written to {} (record hash {})",
                path.display(),
                record.record_hash
            );
        }
        None => println!("{}", record.record_json),
    }
    Ok(())
}
