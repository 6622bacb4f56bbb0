//! The admin listener: Prometheus metrics at `GET /metrics`, apart from the gRPC listeners so
//! that it can stay inside the cluster while the services face clients.

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use govit_platform::{metrics::Gauges, server::Drain};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The process's exporter: installed once, the first time an admin listener starts.
fn exporter() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .set_buckets(&govit_platform::metrics::SECONDS_BUCKETS)?
        .install_recorder()
        .context("installing the metrics recorder")?;
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// Serves `/metrics` on `addr` until the drain starts. The services' gauges (outbox depth,
/// pool use, log size) are read from their databases on each scrape, so they are as fresh as
/// the scrape and cost nothing between scrapes.
pub async fn serve(
    addr: SocketAddr,
    gauges: Vec<Arc<dyn Gauges>>,
    drain: Drain,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let handle = exporter()?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the admin listener to {addr}"))?;
    tracing::info!(addr = %listener.local_addr()?, "metrics at /metrics");
    let metrics = axum::routing::get(move || {
        let (handle, gauges) = (handle.clone(), gauges.clone());
        async move {
            for g in &gauges {
                if let Err(e) = g.record().await {
                    tracing::warn!(error = %e, "a gauge could not be read");
                }
            }
            handle.run_upkeep();
            (
                [(
                    http::header::CONTENT_TYPE,
                    "text/plain; version=0.0.4; charset=utf-8",
                )],
                handle.render(),
            )
        }
    });
    let app = axum::Router::new().route("/metrics", metrics);
    Ok(tokio::spawn(async move {
        let stopped = async move { drain.started().await };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(error = %e, "the admin listener failed");
        }
    }))
}
