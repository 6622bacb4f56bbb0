//! Logging and traces. Filter with `RUST_LOG` (default `info`); `--log-format json` (or
//! `GOVIT_LOG_FORMAT=json`) writes one JSON object per line for a log collector. With an OTLP
//! endpoint, every call's span is exported too, and W3C trace context (`traceparent`) crosses
//! between the services, so a request that crosses them is one trace.

use std::io::IsTerminal;

use opentelemetry::{
    propagation::{Extractor, Injector},
    trace::TracerProvider as _,
};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::{EnvFilter, Layer, fmt, layer::SubscriberExt, util::SubscriberInitExt};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("log format {other:?} is neither text nor json")),
        }
    }
}

/// What `init` set up; `shutdown` flushes the spans not yet exported.
#[derive(Debug, Default)]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    pub fn shutdown(self) {
        if let Some(provider) = self.traces
            && let Err(e) = provider.shutdown()
        {
            eprintln!("traces not flushed: {e}");
        }
    }
}

/// Installs the global subscriber; a second call (tests) is a no-op. Logs go to stderr, with
/// colour only when stderr is a terminal: escape codes in a file or a collector are noise.
/// With `otlp_endpoint` (e.g. `http://collector:4317`), spans are also exported over OTLP/gRPC
/// under the service name `OTEL_SERVICE_NAME` (default `govit`). Must run inside Tokio.
pub fn init(format: LogFormat, otlp_endpoint: Option<&str>) -> anyhow::Result<Telemetry> {
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // stdout is for what a command prints (endpoints, tokens, verification lines).
    let logs = match format {
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_target(false)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => fmt::layer()
            .with_target(false)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let (traces, provider) = match otlp_endpoint {
        Some(endpoint) => {
            use opentelemetry_otlp::WithExportConfig;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()?;
            let name = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "govit".to_owned());
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name(name)
                        .build(),
                )
                .build();
            // Spans are traced at INFO whatever RUST_LOG says of the logs.
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("govit"))
                .with_filter(tracing_subscriber::filter::LevelFilter::INFO);
            (Some(layer), Some(provider))
        }
        None => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(traces)
        .try_init();
    Ok(Telemetry { traces: provider })
}

/// The trace context of an incoming call's headers, for its span's parent.
pub fn context_of(headers: &http::HeaderMap) -> opentelemetry::Context {
    struct Headers<'a>(&'a http::HeaderMap);
    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(http::HeaderName::as_str).collect()
        }
    }
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)))
}

/// Puts the current span's trace context into an outgoing call's metadata.
pub fn inject_current(metadata: &mut tonic::metadata::MetadataMap) {
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    struct Metadata<'a>(&'a mut tonic::metadata::MetadataMap);
    impl Injector for Metadata<'_> {
        fn set(&mut self, key: &str, value: String) {
            if let (Ok(key), Ok(value)) = (
                tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
                tonic::metadata::MetadataValue::try_from(value),
            ) {
                self.0.insert(key, value);
            }
        }
    }
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut Metadata(metadata))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_named_text_and_json() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert!("yaml".parse::<LogFormat>().is_err());
    }
}
