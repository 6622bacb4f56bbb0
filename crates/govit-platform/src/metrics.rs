//! What operators graph and alert on, through the `metrics` facade. The binary installs the
//! Prometheus exporter behind its admin listener; a process without one (tests, tools) pays
//! next to nothing for these calls. Every metric is listed in docs/operations.md.

use std::{
    pin::Pin,
    task::{Context, Poll},
    time::Instant,
};

use http::{Request, Response};
use http_body::{Body as HttpBody, Frame};

use crate::Db;

/// Calls handled, by `grpc_service`, `grpc_method` and `grpc_code` (the names of
/// go-grpc-prometheus, so existing dashboards apply).
pub const HANDLED: &str = "grpc_server_handled_total";
/// Seconds from a call's arrival to its status (for a stream: to its end), by service and
/// method.
pub const HANDLING_SECONDS: &str = "grpc_server_handling_seconds";
/// Messages waiting in a service's outbox, by `service`.
pub const OUTBOX_PENDING: &str = "govit_outbox_pending";
/// Age in seconds of the oldest message waiting in a service's outbox (0 when none).
pub const OUTBOX_OLDEST_SECONDS: &str = "govit_outbox_oldest_age_seconds";
/// Messages parked after a final refusal, waiting for office (dead letters).
pub const OUTBOX_PARKED: &str = "govit_outbox_parked";
/// Database connections open, by `service` and `state` (`idle`, `in_use`), and the most a
/// pool may open (`govit_db_pool_max`).
pub const DB_CONNECTIONS: &str = "govit_db_pool_connections";
pub const DB_POOL_MAX: &str = "govit_db_pool_max";

/// Bucket bounds, in seconds, for every duration histogram.
pub const SECONDS_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The pool's connections now.
pub fn record_pool(service: &'static str, db: &Db) {
    let open = db.pool.size() as f64;
    let idle = db.pool.num_idle() as f64;
    metrics::gauge!(DB_CONNECTIONS, "service" => service, "state" => "idle").set(idle);
    metrics::gauge!(DB_CONNECTIONS, "service" => service, "state" => "in_use").set(open - idle);
    metrics::gauge!(DB_POOL_MAX, "service" => service)
        .set(f64::from(db.pool.options().get_max_connections()));
}

/// The outbox's depth, its oldest waiting message's age and its parked messages, now.
pub async fn record_outbox(service: &'static str, db: &Db) -> anyhow::Result<()> {
    let (pending, oldest) = crate::outbox::pending_and_oldest(db).await?;
    let age = oldest
        .map(|t| (crate::time::now() - t).num_milliseconds().max(0) as f64 / 1000.0)
        .unwrap_or(0.0);
    metrics::gauge!(OUTBOX_PENDING, "service" => service).set(pending as f64);
    metrics::gauge!(OUTBOX_OLDEST_SECONDS, "service" => service).set(age);
    metrics::gauge!(OUTBOX_PARKED, "service" => service)
        .set(crate::outbox::parked(db).await? as f64);
    Ok(())
}

/// A service's gauges, read from its database when the metrics are scraped.
pub trait Gauges: Send + Sync {
    fn record(&self) -> Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + '_>>;
}

/// The status name Prometheus dashboards expect (`OK`, `NOT_FOUND`, …).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Counts and times every gRPC call by its final status: from the response headers for a
/// trailers-only reply, else from the trailers when the body ends. A call the client dropped
/// before its status counts as CANCELLED. Sits inside the gRPC-Web translation, so browser
/// calls count the same.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricsLayer;

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = Metrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metrics { inner }
    }
}

#[derive(Debug, Clone)]
pub struct Metrics<S> {
    inner: S,
}

/// Every method served: govit's, health's and reflection's, as `/package.Service/Method`.
static KNOWN_METHODS: std::sync::LazyLock<std::collections::HashSet<String>> =
    std::sync::LazyLock::new(|| {
        use prost::Message;
        let mut known = std::collections::HashSet::new();
        for encoded in [
            govit_proto::FILE_DESCRIPTOR_SET,
            tonic_health::pb::FILE_DESCRIPTOR_SET,
        ] {
            let Ok(set) = prost_types::FileDescriptorSet::decode(encoded) else {
                continue;
            };
            for file in set.file {
                for service in &file.service {
                    for method in &service.method {
                        known.insert(format!(
                            "/{}.{}/{}",
                            file.package(),
                            service.name(),
                            method.name()
                        ));
                    }
                }
            }
        }
        for reflection in ["grpc.reflection.v1", "grpc.reflection.v1alpha"] {
            known.insert(format!(
                "/{reflection}.ServerReflection/ServerReflectionInfo"
            ));
        }
        known
    });

/// `/govit.projects.v1.ProjectService/GetProject` → (`govit.projects.v1.ProjectService`,
/// `GetProject`). Any other path a client sends is labelled `unknown`: labels come from a
/// fixed set, or anyone could grow the metrics without bound by calling made-up methods.
/// The labels borrow from the set, which lives as long as the process: no allocation per call.
fn method_of(path: &str) -> (&'static str, &'static str) {
    let known: &'static std::collections::HashSet<String> = &KNOWN_METHODS;
    known
        .get(path)
        .and_then(|known| known.strip_prefix('/')?.split_once('/'))
        .unwrap_or(("unknown", "unknown"))
}

fn status_of(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let value = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    Some(tonic::Code::from_i32(value))
}

struct Call {
    service: &'static str,
    method: &'static str,
    started: Instant,
}

impl Call {
    fn finish(self, code: tonic::Code) {
        let seconds = self.started.elapsed().as_secs_f64();
        metrics::counter!(HANDLED,
            "grpc_service" => self.service,
            "grpc_method" => self.method,
            "grpc_code" => code_name(code))
        .increment(1);
        metrics::histogram!(HANDLING_SECONDS,
            "grpc_service" => self.service,
            "grpc_method" => self.method)
        .record(seconds);
    }
}

impl<S, ReqBody> tower::Service<Request<ReqBody>> for Metrics<S>
where
    S: tower::Service<Request<ReqBody>, Response = Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = crate::server::BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Only gRPC calls: the plain-HTTP routes beside them (log tiles) are not counted here.
        let call = crate::server::is_grpc(request.headers()).then(|| {
            let (service, method) = method_of(request.uri().path());
            Call {
                service,
                method,
                started: Instant::now(),
            }
        });
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            let Some(call) = call else {
                return Ok(response);
            };
            if let Some(code) = status_of(response.headers()) {
                call.finish(code);
                return Ok(response);
            }
            Ok(response.map(|body| {
                tonic::body::Body::new(Recorded {
                    inner: body,
                    call: Some(call),
                })
            }))
        })
    }
}

/// A response body that records its call's status when its trailers pass.
struct Recorded {
    inner: tonic::body::Body,
    call: Option<Call>,
}

impl HttpBody for Recorded {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = status_of(trailers).unwrap_or(tonic::Code::Unknown);
                    if let Some(call) = self.call.take() {
                        call.finish(code);
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(call) = self.call.take() {
                    call.finish(tonic::Code::Internal);
                }
            }
            Poll::Ready(None) => {
                if let Some(call) = self.call.take() {
                    call.finish(tonic::Code::Unknown);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Recorded {
    fn drop(&mut self) {
        if let Some(call) = self.call.take() {
            call.finish(tonic::Code::Cancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_methods_served_get_their_own_labels() {
        assert_eq!(
            method_of("/govit.projects.v1.ProjectService/GetProject"),
            ("govit.projects.v1.ProjectService", "GetProject")
        );
        assert_eq!(
            method_of("/grpc.health.v1.Health/Check"),
            ("grpc.health.v1.Health", "Check")
        );
        let unknown = ("unknown", "unknown");
        assert_eq!(
            method_of("/govit.projects.v1.ProjectService/MadeUp"),
            unknown
        );
        assert_eq!(method_of("/a/b"), unknown);
        assert_eq!(method_of("/"), unknown);
    }

    #[test]
    fn every_code_has_its_canonical_name() {
        assert_eq!(code_name(tonic::Code::Ok), "OK");
        assert_eq!(code_name(tonic::Code::from_i32(5)), "NOT_FOUND");
        assert_eq!(code_name(tonic::Code::from_i32(16)), "UNAUTHENTICATED");
    }
}
