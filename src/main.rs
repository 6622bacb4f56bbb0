//! The `govit` binary: see `govit --help`.

#![forbid(unsafe_code)]

use clap::Parser;

#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // Freed pages go back to the system from a background thread a few seconds after a peak
    // (a draw over a large pool, an import), even while the process is otherwise idle.
    if let Err(err) = tikv_jemalloc_ctl::background_thread::write(true) {
        eprintln!("warning: no allocator background thread: {err}");
    }
    let cli = govit::cli::Cli::parse();
    let telemetry = match govit_platform::telemetry::init(
        cli.global.log_format,
        cli.global.otlp_endpoint.as_deref(),
    ) {
        Ok(telemetry) => telemetry,
        Err(err) => {
            eprintln!("error: setting up traces: {err:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = govit::cli::run(cli).await;
    telemetry.shutdown();
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
