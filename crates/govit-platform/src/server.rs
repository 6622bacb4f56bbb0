//! Server wiring shared by every service: health, reflection, gRPC-Web with CORS, request ids,
//! tracing, and graceful shutdown. A service hands over its routes; this module serves them.

use std::{future::Future, time::Duration};

use http::{HeaderName, HeaderValue, Request};
use tokio::net::TcpListener;
use tonic::{
    server::NamedService,
    service::Routes,
    transport::{Server, server::TcpIncoming},
};
use tonic_health::{ServingStatus, server::HealthReporter};
use tower_http::{
    cors::{AllowOrigin, CorsLayer},
    request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer},
    trace::TraceLayer,
};

/// What every service's server is configured with.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Browser origins allowed to call over gRPC-Web; empty allows none (same-origin only).
    pub cors_origins: Vec<String>,
    /// The largest message a service decodes or encodes.
    pub max_message_bytes: usize,
    /// Whether server reflection is served (it lists every method to anyone who asks).
    pub reflection: bool,
    /// The process's shutdown as every service of it sees it; clones share it.
    pub drain: Drain,
    /// How long calls in flight may take to finish once the drain started.
    pub drain_timeout: Duration,
    /// The deadline of a call that sends none (no `grpc-timeout`); None for no limit.
    pub default_deadline: Option<Duration>,
    /// TLS (and, with a client CA, mutual TLS) for the listener; None serves plaintext.
    pub tls: Option<tonic::transport::ServerTlsConfig>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            cors_origins: Vec::new(),
            max_message_bytes: 4 * 1024 * 1024,
            reflection: true,
            drain: Drain::default(),
            drain_timeout: Duration::from_secs(10),
            default_deadline: Some(Duration::from_secs(30)),
            tls: None,
        }
    }
}

/// A shutdown in progress. When it starts, health turns NOT_SERVING, long streams end (their
/// clients reconnect elsewhere and resume), the listener stops taking calls, and the calls in
/// flight get `drain_timeout` to finish.
#[derive(Debug, Clone)]
pub struct Drain(std::sync::Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Drain {
    fn default() -> Self {
        Self(std::sync::Arc::new(tokio::sync::watch::channel(false).0))
    }
}

impl Drain {
    pub fn start(&self) {
        self.0.send_replace(true);
    }

    pub fn is_started(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once the drain has started.
    pub async fn started(&self) {
        let mut watching = self.0.subscribe();
        let _ = watching.wait_for(|started| *started).await;
    }
}

/// Whether a request is a gRPC call (or a gRPC-Web one, translated): its content type.
pub(crate) fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("application/grpc"))
}

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Health and (where `options` allow it) reflection for one service: returns the routes to add
/// the service to, and the reporter (already SERVING for `service_name`).
pub async fn base_routes<S: NamedService>(
    options: &ServerOptions,
) -> anyhow::Result<(Routes, HealthReporter)> {
    base_routes_named(&[S::NAME], options).await
}

/// [`base_routes`] for a listener that serves several services (`names`).
pub async fn base_routes_named(
    names: &[&'static str],
    options: &ServerOptions,
) -> anyhow::Result<(Routes, HealthReporter)> {
    let (reporter, health) = tonic_health::server::health_reporter();
    for name in names {
        reporter
            .set_service_status(*name, ServingStatus::Serving)
            .await;
    }
    reporter
        .set_service_status("", ServingStatus::Serving)
        .await;
    let (drain, draining) = (options.drain.clone(), reporter.clone());
    let all: Vec<&'static str> = names.iter().copied().chain([""]).collect();
    tokio::spawn(async move {
        drain.started().await;
        for name in all {
            draining
                .set_service_status(name, ServingStatus::NotServing)
                .await;
        }
    });
    let mut reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(govit_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1.ServerReflection");
    for name in names {
        reflection_v1 = reflection_v1.with_service_name(*name);
    }
    let reflection_v1 = reflection_v1.build_v1()?;
    let mut reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(govit_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .with_service_name("grpc.health.v1.Health")
        .with_service_name("grpc.reflection.v1alpha.ServerReflection");
    for name in names {
        reflection_v1alpha = reflection_v1alpha.with_service_name(*name);
    }
    let reflection_v1alpha = reflection_v1alpha.build_v1alpha()?;
    let routes = Routes::new(health);
    if !options.reflection {
        return Ok((routes, reporter));
    }
    let routes = routes
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    Ok((routes, reporter))
}

fn cors(options: &ServerOptions) -> CorsLayer {
    let origins: Vec<HeaderValue> = options
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let allow_origin = if options.cors_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins)
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([http::Method::POST, http::Method::OPTIONS])
        .allow_headers(
            [
                "authorization",
                "content-type",
                "x-grpc-web",
                "x-user-agent",
                "grpc-timeout",
                "x-request-id",
                // Sent by browser tracing (W3C trace context), which the server continues.
                "traceparent",
                "tracestate",
                // Chooses the language of errors' LocalizedMessage; browsers send it anyway,
                // but a page that sets it explicitly needs it allowed.
                "accept-language",
            ]
            .map(HeaderName::from_static),
        )
        .expose_headers(
            [
                "grpc-status",
                "grpc-message",
                "grpc-status-details-bin",
                "x-request-id",
            ]
            .map(HeaderName::from_static),
        )
        .max_age(Duration::from_secs(3600))
}

/// Serves `routes` on an already bound listener until `shutdown` resolves, then finishes the
/// calls in flight. Binding first lets callers (and tests) use port 0 and know the port.
pub async fn serve(
    listener: TcpListener,
    routes: Routes,
    options: &ServerOptions,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let in_flight = InFlight::default();
    let layers = tower::ServiceBuilder::new()
        .layer(InFlightLayer(in_flight.clone()))
        // A panic is a bug; it must cost one call, not the connection or the process.
        .layer(tower_http::catch_panic::CatchPanicLayer::new())
        .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
        .layer(
            TraceLayer::new_for_grpc().make_span_with(|request: &Request<_>| {
                let request_id = request
                    .headers()
                    .get(REQUEST_ID)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let span = tracing::info_span!("rpc", method = %request.uri().path(), request_id = %request_id);
                // The caller's trace, when it sent one: a call across services is one trace.
                let _ = tracing_opentelemetry::OpenTelemetrySpanExt::set_parent(
                    &span,
                    crate::telemetry::context_of(request.headers()),
                );
                span
            })
            // A refused request is the client's business: bugs are logged where they are
            // mapped to INTERNAL, so a failed status is only worth a debug line here.
            .on_failure(tower_http::trace::DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(cors(options))
        .layer(GrpcWebOrPlainLayer)
        .layer(crate::metrics::MetricsLayer)
        .layer(StatusDetailsLayer)
        .option_layer(options.default_deadline.map(DefaultDeadlineLayer));
    let drain = options.drain.clone();
    let graceful = {
        let drain = drain.clone();
        async move {
            tokio::select! {
                _ = shutdown => drain.start(),
                _ = drain.started() => {}
            }
        }
    };
    let timeout = options.drain_timeout;
    let deadline = async move {
        drain.started().await;
        tokio::time::sleep(timeout).await;
    };
    let mut builder = Server::builder();
    if let Some(tls) = options.tls.clone() {
        builder = builder.tls_config(tls)?;
    }
    let serving = builder
        .accept_http1(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .layer(layers)
        .add_routes(routes)
        // Without TCP_NODELAY a reply written in several pieces waits on the client's delayed
        // ACK: about 40 ms per call, measured in benches/draw.rs.
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            graceful,
        );
    // Once draining, the server stops when its last call ends: an idle connection a client
    // keeps open (as gateways and load balancers do) must not hold the process for the whole
    // drain. The last reply's frames get a moment to reach the wire (its body ended as it was
    // handed to the connection, not as it was sent), and the connections their GOAWAY.
    let calls_done = async {
        options.drain.started().await;
        in_flight.none().await;
    };
    let mut serving = std::pin::pin!(serving);
    tokio::select! {
        served = &mut serving => served?,
        _ = calls_done => {
            if let Ok(served) = tokio::time::timeout(FLUSH_GRACE, &mut serving).await {
                served?;
            }
            tracing::info!("no call in flight; stopped");
        }
        _ = deadline => tracing::warn!(
            seconds = timeout.as_secs(),
            "calls still in flight when the drain ended; stopping anyway"
        ),
    }
    Ok(())
}

/// How long a drained server keeps its connections once no call is in flight, for the last
/// replies to be written out.
const FLUSH_GRACE: Duration = Duration::from_millis(250);

/// The calls being served, from their arrival to the end of their response body (a stream is
/// in flight until it ends).
#[derive(Debug, Clone, Default)]
struct InFlight(std::sync::Arc<InFlightState>);

#[derive(Debug, Default)]
struct InFlightState {
    calls: std::sync::atomic::AtomicUsize,
    changed: tokio::sync::Notify,
}

impl InFlight {
    fn enter(&self) -> CallGuard {
        self.0
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        CallGuard(self.0.clone())
    }

    /// Resolves when no call is in flight.
    async fn none(&self) {
        loop {
            let changed = self.0.changed.notified();
            if self.0.calls.load(std::sync::atomic::Ordering::SeqCst) == 0 {
                return;
            }
            changed.await;
        }
    }
}

/// One call in flight; dropped with its response body (or its failure).
struct CallGuard(std::sync::Arc<InFlightState>);

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.0
            .calls
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.0.changed.notify_waiters();
    }
}

#[derive(Debug, Clone)]
struct InFlightLayer(InFlight);

impl<S> tower::Layer<S> for InFlightLayer {
    type Service = Counted<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Counted {
            inner,
            in_flight: self.0.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct Counted<S> {
    inner: S,
    in_flight: InFlight,
}

impl<S, ReqBody, ResBody> tower::Service<Request<ReqBody>> for Counted<S>
where
    S: tower::Service<Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: http_body::Body + Send + 'static,
{
    type Response = http::Response<GuardedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let guard = self.in_flight.enter();
        let future = self.inner.call(request);
        Box::pin(async move {
            let response = future.await?;
            Ok(response.map(|inner| GuardedBody {
                inner,
                _guard: guard,
            }))
        })
    }
}

/// A response body that keeps its call counted until it is dropped.
struct GuardedBody<B> {
    inner: B,
    _guard: CallGuard,
}

impl<B: http_body::Body + Unpin> http_body::Body for GuardedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// gRPC-Web translation for gRPC-Web requests; everything else that is not HTTP/2 (a plain
/// `GET /checkpoint` from curl or a static-file tool) goes to the routes untranslated, where
/// tonic-web alone would answer HTTP/1.1 requests 400.
#[derive(Debug, Clone, Copy)]
struct GrpcWebOrPlainLayer;

impl<S: Clone> tower::Layer<S> for GrpcWebOrPlainLayer {
    type Service = GrpcWebOrPlain<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GrpcWebOrPlain {
            web: tower::Layer::layer(&tonic_web::GrpcWebLayer::new(), inner.clone()),
            plain: inner,
        }
    }
}

#[derive(Debug, Clone)]
struct GrpcWebOrPlain<S> {
    web: tonic_web::GrpcWebService<S>,
    plain: S,
}

impl<S, ReqBody> tower::Service<Request<ReqBody>> for GrpcWebOrPlain<S>
where
    S: tower::Service<Request<tonic::body::Body>, Response = http::Response<tonic::body::Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send,
    ReqBody: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>> + std::fmt::Display,
    tonic_web::GrpcWebService<S>: tower::Service<
            Request<ReqBody>,
            Response = http::Response<tonic::body::Body>,
            Error = S::Error,
        >,
    <tonic_web::GrpcWebService<S> as tower::Service<Request<ReqBody>>>::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        <tonic_web::GrpcWebService<S> as tower::Service<Request<ReqBody>>>::poll_ready(
            &mut self.web,
            cx,
        )
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let grpc = is_grpc(request.headers());
        if grpc || request.version() == http::Version::HTTP_2 {
            let future = self.web.call(request);
            Box::pin(future)
        } else if is_connect_protocol(&request) {
            Box::pin(async { Ok(connect_protocol_refused()) })
        } else {
            // The ready service is the gRPC-Web one; a clone of the routes takes this call.
            let plain = self.plain.clone();
            let request = request.map(tonic::body::Body::new);
            Box::pin(tower::ServiceExt::oneshot(plain, request))
        }
    }
}

/// A call in the Connect protocol (a POST of `application/proto` or `application/json`, as
/// Connect-ES's `createConnectTransport` sends): not served, so it is told which protocols are,
/// rather than failing in gRPC framing with an opaque INTERNAL.
fn is_connect_protocol<B>(request: &Request<B>) -> bool {
    request.method() == http::Method::POST
        && request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| {
                [
                    "application/proto",
                    "application/json",
                    "application/connect+",
                ]
                .iter()
                .any(|prefix| t.starts_with(prefix))
            })
}

fn connect_protocol_refused() -> http::Response<tonic::body::Body> {
    let mut response = http::Response::new(tonic::body::Body::new(http_body_util::Full::new(
        bytes::Bytes::from_static(
            b"this server speaks gRPC and gRPC-Web (application/grpc-web+proto), not the Connect \
              protocol: use createGrpcWebTransport; see docs/frontend.md\n",
        ),
    )));
    *response.status_mut() = http::StatusCode::UNSUPPORTED_MEDIA_TYPE;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response.headers_mut().insert(
        "accept-post",
        HeaderValue::from_static("application/grpc, application/grpc-web+proto"),
    );
    response
}

/// Gives a gRPC call that sent no deadline the server's default one: a client that forgot to set
/// one cannot hold a handler (and a database connection) forever. The deadline covers the
/// handler up to its response, so a server stream, once started, is not cut; a client-streaming
/// upload longer than the default sends its own `grpc-timeout`.
#[derive(Debug, Clone, Copy)]
struct DefaultDeadlineLayer(Duration);

impl<S> tower::Layer<S> for DefaultDeadlineLayer {
    type Service = DefaultDeadline<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DefaultDeadline {
            inner,
            deadline: self.0,
        }
    }
}

#[derive(Debug, Clone)]
struct DefaultDeadline<S> {
    inner: S,
    deadline: Duration,
}

impl<S, ReqBody> tower::Service<Request<ReqBody>> for DefaultDeadline<S>
where
    S: tower::Service<Request<ReqBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let grpc = is_grpc(request.headers());
        let applies = grpc && !request.headers().contains_key("grpc-timeout");
        let future = self.inner.call(request);
        if !applies {
            return Box::pin(future);
        }
        let deadline = self.deadline;
        Box::pin(async move {
            match tokio::time::timeout(deadline, future).await {
                Ok(answered) => answered,
                // Dropping the handler's future rolls back whatever transaction it had open.
                Err(_) => Ok(crate::error::default_deadline_exceeded(deadline).into_http()),
            }
        })
    }
}

/// Completes every error status on its way out ([`crate::localize::enrich`]): `ErrorInfo` where
/// tonic made the status, field violations' reasons, and a `LocalizedMessage` in the language
/// of the request's `accept-language`. It first rewrites the status of a request tonic refused
/// before any handler saw it ([`crate::error::codec_status`]). A unary error is trailers-only,
/// its status in the response headers; a stream's error comes in the body's trailers.
#[derive(Debug, Clone, Copy)]
struct StatusDetailsLayer;

impl<S> tower::Layer<S> for StatusDetailsLayer {
    type Service = StatusDetails<S>;

    fn layer(&self, inner: S) -> Self::Service {
        StatusDetails(inner)
    }
}

#[derive(Debug, Clone)]
struct StatusDetails<S>(S);

pub(crate) type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

/// Rewrites the status in `headers` (response headers or trailers), if it is an error.
fn complete_status(headers: &mut http::HeaderMap, language: crate::localize::Language) {
    let Some(status) = tonic::Status::from_header_map(headers) else {
        return;
    };
    if status.code() == tonic::Code::Ok {
        return;
    }
    let status = crate::error::codec_status(&status).unwrap_or(status);
    let status = crate::localize::enrich(&status, language);
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        headers.remove(name);
    }
    if status.add_header(headers).is_err() {
        tracing::warn!("could not rewrite an error's status");
    }
}

impl<S, ReqBody> tower::Service<Request<ReqBody>> for StatusDetails<S>
where
    S: tower::Service<Request<ReqBody>, Response = http::Response<tonic::body::Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let language = crate::localize::Language::from_accept_language(
            request
                .headers()
                .get(http::header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok()),
        );
        let future = self.0.call(request);
        Box::pin(async move {
            let mut response = future.await?;
            complete_status(response.headers_mut(), language);
            Ok(response.map(|inner| tonic::body::Body::new(StatusDetailsBody { inner, language })))
        })
    }
}

/// A response body whose trailers get [`complete_status`].
struct StatusDetailsBody<B> {
    inner: B,
    language: crate::localize::Language,
}

impl<B: http_body::Body + Unpin> http_body::Body for StatusDetailsBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let language = self.language;
        std::pin::Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map(|frame| {
                frame.map(|frame| {
                    frame.map(|frame| match frame.into_trailers() {
                        Ok(mut trailers) => {
                            complete_status(&mut trailers, language);
                            http_body::Frame::trailers(trailers)
                        }
                        Err(data) => data,
                    })
                })
            })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::{Layer, Service, ServiceExt};

    fn slow(
        delay: Duration,
    ) -> impl Service<
        Request<()>,
        Response = http::Response<tonic::body::Body>,
        Error = std::convert::Infallible,
        Future = impl Future<
            Output = Result<http::Response<tonic::body::Body>, std::convert::Infallible>,
        > + Send
                 + 'static,
    > + Clone {
        tower::service_fn(move |_: Request<()>| async move {
            tokio::time::sleep(delay).await;
            Ok(http::Response::new(tonic::body::Body::empty()))
        })
    }

    fn grpc_request(timeout: Option<&str>) -> Request<()> {
        let mut builder = Request::builder().header("content-type", "application/grpc");
        if let Some(t) = timeout {
            builder = builder.header("grpc-timeout", t);
        }
        builder.body(()).unwrap()
    }

    #[tokio::test]
    async fn a_call_without_a_deadline_gets_the_default_one_and_one_with_its_own_does_not() {
        let layer = DefaultDeadlineLayer(Duration::from_millis(50));
        let answer = layer
            .layer(slow(Duration::from_millis(400)))
            .oneshot(grpc_request(None))
            .await
            .unwrap();
        let status = tonic::Status::from_header_map(answer.headers()).expect("a gRPC status");
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert_eq!(
            crate::error::status_reason(&status).as_deref(),
            Some("DEADLINE_EXCEEDED")
        );
        let answer = layer
            .layer(slow(Duration::from_millis(400)))
            .oneshot(grpc_request(Some("10S")))
            .await
            .unwrap();
        assert!(tonic::Status::from_header_map(answer.headers()).is_none());
        // Plain HTTP (a checkpoint, a tile) is not a gRPC call.
        let plain = Request::builder().body(()).unwrap();
        let answer = layer
            .layer(slow(Duration::from_millis(400)))
            .oneshot(plain)
            .await
            .unwrap();
        assert!(tonic::Status::from_header_map(answer.headers()).is_none());
    }

    #[tokio::test]
    async fn a_streams_error_in_its_trailers_gets_error_info_and_a_localized_message() {
        use http_body_util::BodyExt;
        use tonic::Status;
        use tonic_types::StatusExt;
        let streaming = tower::service_fn(|_: Request<()>| async {
            let mut trailers = http::HeaderMap::new();
            Status::not_found("the stream's subject is gone")
                .add_header(&mut trailers)
                .unwrap();
            let frames = vec![
                Ok::<_, Status>(http_body::Frame::data(bytes::Bytes::from_static(
                    b"\0\0\0\0\0",
                ))),
                Ok(http_body::Frame::trailers(trailers)),
            ];
            let body = http_body_util::StreamBody::new(tokio_stream::iter(frames));
            Ok::<_, std::convert::Infallible>(http::Response::new(tonic::body::Body::new(body)))
        });
        let mut request = grpc_request(None);
        request
            .headers_mut()
            .insert("accept-language", HeaderValue::from_static("en-GB"));
        let response = StatusDetailsLayer
            .layer(streaming)
            .oneshot(request)
            .await
            .unwrap();
        let trailers = response
            .into_body()
            .collect()
            .await
            .unwrap()
            .trailers()
            .cloned()
            .unwrap();
        let status = Status::from_header_map(&trailers).unwrap();
        assert_eq!(status.code(), tonic::Code::NotFound);
        let details = status.get_error_details();
        assert_eq!(details.error_info().unwrap().reason, "NOT_FOUND");
        assert_eq!(
            details.localized_message().unwrap().message,
            "the stream's subject is gone"
        );
    }
}
