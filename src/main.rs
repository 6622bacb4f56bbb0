//! The `govit` binary: see `govit --help`.

#![forbid(unsafe_code)]

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
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
