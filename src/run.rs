//! Starting and stopping services.

use std::net::SocketAddr;

use anyhow::Context;
use govit_platform::{Authenticator, server::ServerOptions};
use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use tonic::service::Routes;

use crate::config::{ServiceName, Settings};

/// Opens a service's database (migrating it) and builds its routes.
pub async fn build_routes(
    settings: &Settings,
    service: ServiceName,
    database_url: &str,
    auth: Authenticator,
) -> anyhow::Result<Routes> {
    let options = &settings.server;
    match service {
        ServiceName::Projects => {
            let config = govit_projects::ProjectsConfig {
                database_url: database_url.to_owned(),
                blob_dir: settings.blob_dir.clone(),
                max_document_bytes: settings.max_document_bytes,
                supervision: settings.supervision.clone(),
            };
            govit_projects::ProjectsService::open(&config)
                .await?
                .routes(auth, options)
                .await
        }
        ServiceName::Experts => {
            govit_experts::ExpertsService::open(database_url, settings.draw_policy.clone())
                .await?
                .routes(auth, options)
                .await
        }
        ServiceName::Scheduling => {
            govit_scheduling::SchedulingService::open(database_url)
                .await?
                .routes(auth, options)
                .await
        }
    }
    .with_context(|| format!("starting the {} service", service.as_str()))
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
        tracing::warn!(
            "no token key configured: accepting tokens signed with the public development key"
        );
    }
    let auth = settings.authenticator()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut endpoints = Vec::new();
    for (service, flag) in ServiceName::ALL.into_iter().zip(listen) {
        let listener = bind(service, settings.listen(service, flag)).await?;
        let addr = listener.local_addr()?;
        let url = settings.database_url(service, None);
        let routes = build_routes(settings, service, &url, auth.clone()).await?;
        tasks.spawn(serve_until(
            listener,
            routes,
            settings.server.clone(),
            stop_rx.clone(),
        ));
        endpoints.push((service, addr));
    }
    println!("govit is up (data in {}):", settings.data_dir.display());
    for (service, addr) in &endpoints {
        println!(
            "  {:<11} {:<45} http://{addr}",
            service.as_str(),
            service.grpc_name()
        );
    }
    println!();
    println!("Get a token:   cargo run --release -- token --role office");
    println!(
        "Call it:       grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" {} list",
        endpoints[0].1
    );
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
) -> anyhow::Result<()> {
    let auth = settings.authenticator()?;
    let url = settings.database_url(service, database_url);
    let listener = bind(service, settings.listen(service, listen)).await?;
    let routes = build_routes(settings, service, &url, auth).await?;
    tracing::info!(service = service.as_str(), addr = %listener.local_addr()?, "serving");
    govit_platform::server::serve(
        listener,
        routes,
        &settings.server,
        govit_platform::server::shutdown_signal(),
    )
    .await
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
