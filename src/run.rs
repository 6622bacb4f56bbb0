//! Starting and stopping services.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use govit_platform::{Authenticator, client::BearerToken, metrics::Gauges, server::ServerOptions};
use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use tonic::service::Routes;

use crate::config::{ServiceName, Settings};
use govit_experts::MissingKeyFile;

/// Where each service listens or is reached.
#[derive(Debug, Clone)]
pub struct Addresses {
    pub projects: String,
    pub experts: String,
    pub scheduling: String,
}

/// How often the background workers (outboxes, review progress) run.
const WORKER_INTERVAL: Duration = Duration::from_secs(1);

/// The token a service presents to the others: `GOVIT_SERVICE_TOKEN`, or short-lived ones
/// minted (and renewed) with the configured HS256 key.
pub fn service_token(settings: &Settings) -> anyhow::Result<BearerToken> {
    if let Ok(token) = std::env::var("GOVIT_SERVICE_TOKEN") {
        return BearerToken::new(&token);
    }
    let secret = settings
        .signing_secret()
        .context("set GOVIT_SERVICE_TOKEN: with a public-key configuration govit cannot mint its own service token")?;
    BearerToken::minting(secret, "govit-services")
}

/// How often the registry publishes a checkpoint when its log grew.
const CHECKPOINT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Opens a service's database (migrating it), builds its routes and starts its worker; the
/// gauges are what the admin listener reads of it.
pub async fn start_service(
    settings: &Settings,
    service: ServiceName,
    database_url: &str,
    auth: Authenticator,
    peers: &Addresses,
) -> anyhow::Result<(Routes, Arc<dyn Gauges>)> {
    let options = &settings.server;
    let started: anyhow::Result<(Routes, Arc<dyn Gauges>)> = async { match service {
        ServiceName::Projects => {
            let config = govit_projects::ProjectsConfig {
                database_url: database_url.to_owned(),
                blob_dir: settings.blob_dir.clone(),
                max_document_bytes: settings.max_document_bytes,
                supervision: settings.supervision.clone(),
            };
            let projects = govit_projects::ProjectsService::open(&config).await?;
            let token = service_token(settings)?;
            let tls = settings.peer_tls.as_ref();
            let scheduling = govit_platform::client::lazy_channel(&peers.scheduling, tls)?;
            let registry = govit_platform::client::lazy_channel(&peers.experts, tls)?;
            let projects = projects
                .with_calendar(govit_proto::scheduling::v1::review_scheduling_service_client::ReviewSchedulingServiceClient::with_interceptor(
                    scheduling.clone(),
                    token.clone(),
                ))
                .with_registry(govit_proto::experts::v1::expert_registry_service_client::ExpertRegistryServiceClient::with_interceptor(
                    registry.clone(),
                    token,
                ));
            projects.spawn_outbox_worker(scheduling, registry, WORKER_INTERVAL);
            projects.spawn_housekeeping();
            let gauges: Arc<dyn Gauges> = Arc::new(projects.clone());
            Ok((projects.routes(auth, options).await?, gauges))
        }
        ServiceName::Experts => {
            let registry = open_registry(settings, database_url).await?;
            tracing::info!(vkey = %registry.log_vkey(), "transparency log verifier key");
            registry.spawn_checkpoint_worker(CHECKPOINT_INTERVAL);
            govit_platform::idempotency::spawn_forgetting(registry.db().clone());
            let gauges: Arc<dyn Gauges> = Arc::new(registry.clone());
            Ok((registry.routes(auth, options).await?, gauges))
        }
        ServiceName::Scheduling => {
            let peers = govit_scheduling::Peers {
                experts_url: peers.experts.clone(),
                projects_url: peers.projects.clone(),
                service_token: service_token(settings)?,
                tls: settings.peer_tls.clone(),
            };
            let scheduling = govit_scheduling::SchedulingService::open(database_url, Default::default(), &peers).await?;
            scheduling.spawn_worker(WORKER_INTERVAL);
            govit_platform::idempotency::spawn_forgetting(scheduling.db().clone());
            let gauges: Arc<dyn Gauges> = Arc::new(scheduling.clone());
            Ok((scheduling.routes(auth, options).await?, gauges))
        }
    } }
    .await;
    started.with_context(|| format!("starting the {} service", service.as_str()))
}

async fn bind(service: ServiceName, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {} service to {addr}", service.as_str()))
}

/// Serves `routes` until `stop` turns true.
async fn serve_until(
    listener: TcpListener,
    routes: Routes,
    options: ServerOptions,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    govit_platform::server::serve(listener, routes, &options, async move {
        let _ = stop.wait_for(|s| *s).await;
    })
    .await
}

pub async fn up(settings: &Settings, listen: [Option<SocketAddr>; 3]) -> anyhow::Result<()> {
    if settings.using_development_key {
        // The development key is public: anyone who can reach a listener can mint any role.
        for (service, flag) in ServiceName::ALL.into_iter().zip(listen) {
            let addr = settings.listen(service, flag);
            anyhow::ensure!(
                addr.ip().is_loopback(),
                "the {} service would listen on {addr} with the public development key; \
                 configure a token key (GOVIT_JWT_HS256_KEY or a public key) or listen on loopback",
                service.as_str()
            );
        }
        tracing::warn!(
            "no token key configured: accepting tokens signed with the public development key, on loopback only"
        );
    }
    let auth = settings.authenticator()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut listeners = Vec::new();
    for (service, flag) in ServiceName::ALL.into_iter().zip(listen) {
        listeners.push((
            service,
            bind(service, settings.listen(service, flag)).await?,
        ));
    }
    let scheme = settings.scheme();
    let url = |i: usize| -> anyhow::Result<String> {
        Ok(format!("{scheme}://{}", listeners[i].1.local_addr()?))
    };
    let peers = Addresses {
        projects: url(0)?,
        experts: url(1)?,
        scheduling: url(2)?,
    };
    let mut endpoints = Vec::new();
    let mut gauges = Vec::new();
    for (service, listener) in listeners {
        let addr = listener.local_addr()?;
        let database_url = settings.database_url(service, None);
        let (routes, service_gauges) =
            start_service(settings, service, &database_url, auth.clone(), &peers).await?;
        gauges.push(service_gauges);
        tasks.spawn(serve_until(
            listener,
            routes,
            settings.server.clone(),
            stop_rx.clone(),
        ));
        endpoints.push((service, addr));
    }
    if let Some(addr) = settings.admin_listen {
        crate::admin::serve(addr, gauges, settings.server.drain.clone()).await?;
    }
    println!("govit is up (data in {}):", settings.data_dir.display());
    for (service, addr) in &endpoints {
        println!(
            "  {:<11} {:<45} {scheme}://{addr}",
            service.as_str(),
            service.grpc_name()
        );
    }
    println!();
    println!("Get a token:   cargo run --release -- token --role office");
    let transport = if scheme == "https" {
        "-cacert CA.pem"
    } else {
        "-plaintext"
    };
    println!(
        "Call it:       grpcurl {transport} -H \"authorization: Bearer $TOKEN\" {} list",
        endpoints[0].1
    );
    println!("See it work:   cargo run --release -- demo");
    println!("Stop with Ctrl-C.");
    tokio::select! {
        _ = govit_platform::server::shutdown_signal() => {}
        Some(result) = tasks.join_next() => {
            // A service stopped on its own: that is an error; stop the others too.
            let _ = stop_tx.send(true);
            result??;
            anyhow::bail!("a service stopped unexpectedly");
        }
    }
    let _ = stop_tx.send(true);
    while let Some(result) = tasks.join_next().await {
        result??;
    }
    println!("govit stopped");
    Ok(())
}

pub async fn serve_one(
    settings: &Settings,
    service: ServiceName,
    listen: Option<SocketAddr>,
    database_url: Option<&str>,
    peers: &Addresses,
) -> anyhow::Result<()> {
    let auth = settings.authenticator()?;
    let url = settings.database_url(service, database_url);
    let listener = bind(service, settings.listen(service, listen)).await?;
    let (routes, gauges) = start_service(settings, service, &url, auth, peers).await?;
    if let Some(addr) = settings.admin_listen {
        crate::admin::serve(addr, vec![gauges], settings.server.drain.clone()).await?;
    }
    tracing::info!(service = service.as_str(), addr = %listener.local_addr()?, "serving");
    govit_platform::server::serve(
        listener,
        routes,
        &settings.server,
        govit_platform::server::shutdown_signal(),
    )
    .await
}

/// `govit log export`: the registry opened on its own database, as its replicas would be.
pub async fn export_log(
    settings: &Settings,
    dir: &std::path::Path,
    entries: bool,
    database_url: Option<&str>,
) -> anyhow::Result<()> {
    let url = settings.database_url(ServiceName::Experts, database_url);
    let registry = open_registry(settings, &url).await?;
    let (size, files) = registry.export_static(dir, entries).await?;
    println!(
        "checkpoint of size {size} and {files} files written to {}; check them with --log-vkey {}",
        dir.display(),
        registry.log_vkey()
    );
    Ok(())
}

/// The registry with its log's name, key and witnesses from the settings.
async fn open_registry(
    settings: &Settings,
    database_url: &str,
) -> anyhow::Result<govit_experts::ExpertsService> {
    // A configured key must be there (a wrong path must not silently start a new log
    // identity); the default one, in the data directory, is made on first start.
    let default_file = settings.keys_dir().join("log-signing-key.pem");
    let (key_file, missing) = match &settings.log.key_file {
        Some(path) => (path.clone(), MissingKeyFile::Refuse),
        // Replicas of a PostgreSQL registry would each make a key of their own.
        None if govit_platform::db::Backend::of_url(database_url)?
            == govit_platform::db::Backend::Postgres =>
        {
            (default_file, MissingKeyFile::FromDatabase)
        }
        None => (default_file, MissingKeyFile::FromDatabaseOrFresh),
    };
    Ok(govit_experts::ExpertsService::open_with_key_file(
        database_url,
        settings.draw_policy.clone(),
        &key_file,
        missing,
    )
    .await?
    .with_log(&settings.log.origin)?
    .with_witnesses(settings.log.witnesses.clone()))
}

pub async fn migrate(
    settings: &Settings,
    service: Option<ServiceName>,
    database_url: Option<&str>,
) -> anyhow::Result<()> {
    let services: Vec<ServiceName> = match (service, database_url) {
        (Some(s), _) => vec![s],
        (None, None) => ServiceName::ALL.to_vec(),
        (None, Some(_)) => anyhow::bail!("name the service whose database --database-url is"),
    };
    for service in services {
        let url = settings.database_url(service, database_url);
        let migrator = match service {
            ServiceName::Projects => &govit_projects::MIGRATOR,
            ServiceName::Experts => &govit_experts::MIGRATOR,
            ServiceName::Scheduling => &govit_scheduling::MIGRATOR,
        };
        govit_platform::Db::connect_and_migrate(&url, migrator).await?;
        println!("{}: migrations applied", service.as_str());
    }
    Ok(())
}
