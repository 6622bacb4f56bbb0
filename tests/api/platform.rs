//! What every service offers: health, reflection, gRPC-Web, request ids, restarts.

use bytes::Bytes;
use govit_platform::{Authenticator, Role, VerificationKey, server::ServerOptions};
use govit_proto::projects::v1::{self as pb};
use http_body_util::{BodyExt, Full};
use prost::Message;
use tokio::net::TcpListener;
use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::helpers::*;

async fn health(channel: Channel, service: &str) -> i32 {
    HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
}

async fn reflected_services(channel: Channel) -> Vec<String> {
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.message().await.unwrap().unwrap();
    match response.message_response {
        Some(MessageResponse::ListServicesResponse(list)) => {
            let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
            names.sort();
            names
        }
        other => panic!("unexpected reflection response {other:?}"),
    }
}

#[tokio::test]
async fn all_three_services_report_serving_and_list_themselves_without_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let auth = Authenticator::new(&VerificationKey::Hs256(KEY.to_vec())).unwrap();
    let options = ServerOptions::default();
    let projects = govit_projects::ProjectsService::open(&govit_projects::ProjectsConfig {
        database_url: fresh_database_url(dir.path(), "projects").await,
        blob_dir: dir.path().join("blobs"),
        max_document_bytes: 1024,
        supervision: Default::default(),
    })
    .await
    .unwrap()
    .routes(auth.clone(), &options)
    .await
    .unwrap();
    let experts = govit_experts::ExpertsService::open(
        &fresh_database_url(dir.path(), "experts").await,
        Default::default(),
    )
    .await
    .unwrap()
    .routes(auth.clone(), &options)
    .await
    .unwrap();
    let scheduling = govit_scheduling::SchedulingService::open(
        &fresh_database_url(dir.path(), "scheduling").await,
        Default::default(),
        &govit_scheduling::Peers {
            experts_url: "http://127.0.0.1:1".into(),
            projects_url: "http://127.0.0.1:1".into(),
            service_token: govit_platform::client::BearerToken::new(&token(
                Role::Service,
                None,
                None,
            ))
            .unwrap(),
            tls: None,
        },
    )
    .await
    .unwrap()
    .routes(auth, &options)
    .await
    .unwrap();
    for (routes, name, also) in [
        (
            projects,
            "govit.projects.v1.ProjectService",
            // Published notices, which anyone may read, are a service of their own.
            Some("govit.projects.v1.PublicNoticeService"),
        ),
        (experts, "govit.experts.v1.ExpertRegistryService", None),
        (
            scheduling,
            "govit.scheduling.v1.ReviewSchedulingService",
            None,
        ),
    ] {
        let (_, channel) = serve_on_free_port(routes, &options).await;
        assert_eq!(
            health(channel.clone(), name).await,
            ServingStatus::Serving as i32,
            "{name}"
        );
        assert_eq!(
            health(channel.clone(), "").await,
            ServingStatus::Serving as i32,
            "{name}"
        );
        if let Some(also) = also {
            assert_eq!(
                health(channel.clone(), also).await,
                ServingStatus::Serving as i32,
                "{also}"
            );
        }
        let services = reflected_services(channel).await;
        // Sorted, as reflected_services returns them: the services' own names sort first.
        let expected: Vec<&str> = [name]
            .into_iter()
            .chain(also)
            .chain([
                "grpc.health.v1.Health",
                "grpc.reflection.v1.ServerReflection",
            ])
            .collect();
        assert_eq!(services, expected);
    }
}

fn grpc_web_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = vec![0u8];
    frame.extend((message.len() as u32).to_be_bytes());
    frame.extend(message);
    frame
}

/// Splits a gRPC-Web response body into its message frames and its trailer block.
fn grpc_web_parse(mut body: &[u8]) -> (Vec<Vec<u8>>, String) {
    let mut messages = Vec::new();
    let mut trailers = String::new();
    while body.len() >= 5 {
        let flag = body[0];
        let len = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        let payload = &body[5..5 + len];
        if flag & 0x80 != 0 {
            trailers.push_str(std::str::from_utf8(payload).unwrap());
        } else {
            messages.push(payload.to_vec());
        }
        body = &body[5 + len..];
    }
    (messages, trailers)
}

#[tokio::test]
async fn a_browser_calls_over_grpc_web_with_cors() {
    let app = spawn_app().await;
    let p = draft(&app).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let url = format!(
        "http://{}/govit.projects.v1.ProjectService/GetProject",
        app.addr
    );

    let preflight = http::Request::builder()
        .method("OPTIONS")
        .uri(&url)
        .header("origin", "https://office.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-grpc-web",
        )
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(preflight).await.unwrap();
    assert!(response.status().is_success());
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://office.example"
    );

    let body = grpc_web_frame(
        &pb::GetProjectRequest {
            name: p.name.clone(),
        }
        .encode_to_vec(),
    );
    let call = http::Request::builder()
        .method("POST")
        .uri(&url)
        .header("origin", "https://office.example")
        .header("content-type", "application/grpc-web+proto")
        .header("x-grpc-web", "1")
        .header(
            "authorization",
            format!("Bearer {}", token(Role::Office, None, None)),
        )
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let response = client.request(call).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://office.example"
    );
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/grpc-web")
    );
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let (messages, trailers) = grpc_web_parse(&bytes);
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let project = pb::Project::decode(messages[0].as_slice()).unwrap();
    assert_eq!(project.name, p.name);

    // An origin not configured gets no CORS grant.
    let preflight = http::Request::builder()
        .method("OPTIONS")
        .uri(&url)
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(preflight).await.unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let mut request = tonic::Request::new(pb::ListProjectsRequest::default());
    request
        .metadata_mut()
        .insert("x-request-id", "trace-me-123".parse().unwrap());
    let response = app
        .client(Role::Office)
        .list_projects(request)
        .await
        .unwrap();
    assert_eq!(
        response.metadata().get("x-request-id").unwrap(),
        "trace-me-123"
    );
    let response = app
        .client(Role::Office)
        .list_projects(pb::ListProjectsRequest::default())
        .await
        .unwrap();
    let generated = response
        .metadata()
        .get("x-request-id")
        .expect("generated request id");
    assert_eq!(generated.len(), 36, "a UUID: {generated:?}");
}

#[tokio::test]
async fn data_survives_a_restart() {
    let mut app = spawn_app().await;
    let p = draft(&app).await;
    let doc = upload(
        &app.client(Role::Applicant),
        &p.name,
        pb::DocumentKind::Other,
        0,
        b"kept",
        "",
    )
    .await
    .unwrap();
    app.restart().await;
    let after = get(&app, &p.name).await;
    assert_eq!(after, p);
    let listed = app
        .client(Role::Applicant)
        .list_documents(pb::ListDocumentsRequest {
            parent: p.name.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.documents, vec![doc]);
    // Codes keep counting after the restart.
    let next = draft(&app).await;
    assert_ne!(next.code, p.code);
}

/// Sends `message` to `path` as if it were that method's request.
async fn raw_call<M: Message + Default + Send + Sync + 'static>(
    app: &TestApp,
    path: &'static str,
    message: M,
) -> tonic::Status {
    let mut grpc = tonic::client::Grpc::new(app.channel.clone());
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {}", token(Role::Office, None, None))
            .parse()
            .unwrap(),
    );
    grpc.unary::<M, pb::Project, _>(
        request,
        http::uri::PathAndQuery::from_static(path),
        tonic_prost::ProstCodec::default(),
    )
    .await
    .unwrap_err()
}

#[tokio::test]
async fn a_body_that_is_not_the_methods_message_is_the_clients_fault() {
    let app = spawn_app().await;
    // Field 1 of GetProjectRequest is a string; a varint there cannot be decoded.
    let status = raw_call(
        &app,
        "/govit.projects.v1.ProjectService/GetProject",
        prost_types::Timestamp {
            seconds: 5,
            nanos: 0,
        },
    )
    .await;
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert_eq!(error_reason(&status), "INVALID_ARGUMENT");
    // Larger than the server takes (4 MiB): RESOURCE_EXHAUSTED, not OUT_OF_RANGE.
    let status = raw_call(
        &app,
        "/govit.projects.v1.ProjectService/GetProject",
        pb::GetProjectRequest {
            name: "x".repeat(5 * 1024 * 1024),
        },
    )
    .await;
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    assert_eq!(error_reason(&status), "MESSAGE_TOO_LARGE");
}

#[tokio::test]
async fn error_details_stay_small_however_large_the_bad_request() {
    let app = spawn_app().await;
    let mut project = new_project(&app.applicant_code);
    project.contacts = (0..2000)
        .map(|_| pb::Contact {
            name: "n".repeat(2000),
            phone: "not a phone".into(),
            ..Default::default()
        })
        .collect();
    let status = app
        .client(Role::Office)
        .create_project(pb::CreateProjectRequest {
            request_id: String::new(),
            project: Some(project),
        })
        .await
        .unwrap_err();
    let fields = violated_fields(&status);
    assert_eq!(fields.len(), 51, "fifty and a count of the rest");
    assert!(
        status.details().len() < 64 * 1024,
        "{}",
        status.details().len()
    );
    assert!(status.message().len() < 64 * 1024);
}

#[tokio::test]
async fn reflection_can_be_turned_off_for_production() {
    let app = spawn_app_with(Options {
        reflection: false,
        ..Options::default()
    })
    .await;
    assert_eq!(health(app.channel.clone(), "").await, 1);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let refused = ServerReflectionClient::new(app.channel.clone())
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unimplemented);
    // The service itself answers as before.
    app.client(Role::Office)
        .list_projects(pb::ListProjectsRequest::default())
        .await
        .unwrap();
}

/// On shutdown a load balancer must see the replica leave before its calls are cut: health
/// turns NOT_SERVING as the drain starts, and a call still open is cut at the drain's end.
#[tokio::test]
async fn a_drain_turns_health_not_serving_at_once_and_ends_within_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path(), "experts").await;
    let registry = govit_experts::ExpertsService::open(&url, govit_experts::DrawPolicy::default())
        .await
        .unwrap();
    let options = ServerOptions {
        drain_timeout: std::time::Duration::from_millis(500),
        ..ServerOptions::default()
    };
    let auth = Authenticator::new(&VerificationKey::Hs256(KEY.to_vec())).unwrap();
    let routes = registry.routes(auth, &options).await.unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving_options = options.clone();
    let server = tokio::spawn(async move {
        govit_platform::server::serve(listener, routes, &serving_options, std::future::pending())
            .await
    });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    // A health watch never ends by itself: it is the call the drain has to cut.
    let mut watch = HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status, ServingStatus::Serving as i32);

    let started = std::time::Instant::now();
    options.drain.start();
    let next = watch.message().await.unwrap().unwrap();
    assert_eq!(next.status, ServingStatus::NotServing as i32);
    tokio::time::timeout(std::time::Duration::from_secs(5), server)
        .await
        .expect("the server stops once the drain times out")
        .unwrap()
        .unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(500));
}

/// One caller hammering the registry is held to its rate; another caller, and the services'
/// own traffic, are not held up by it.
#[tokio::test]
async fn a_caller_over_its_rate_is_refused_with_a_retry_time_and_others_are_not() {
    use govit_proto::experts::v1::{
        self as epb, expert_registry_service_client::ExpertRegistryServiceClient,
    };
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path(), "experts").await;
    let registry = govit_experts::ExpertsService::open(&url, govit_experts::DrawPolicy::default())
        .await
        .unwrap();
    let options = ServerOptions::default();
    let auth = Authenticator::new(&VerificationKey::Hs256(KEY.to_vec()))
        .unwrap()
        .with_rate_limit(govit_platform::auth::RateLimit {
            per_second: 0.5,
            burst: 3.0,
        });
    let routes = registry.routes(auth, &options).await.unwrap();
    let (addr, channel) = serve_on_free_port(routes, &options).await;
    let client = |role: Role| {
        let bearer: tonic::metadata::MetadataValue<_> =
            format!("Bearer {}", token(role, None, None))
                .parse()
                .unwrap();
        ExpertRegistryServiceClient::with_interceptor(
            channel.clone(),
            move |mut r: tonic::Request<()>| {
                r.metadata_mut().insert("authorization", bearer.clone());
                Ok(r)
            },
        )
    };
    let head = |role: Role| {
        let mut c = client(role);
        async move { c.get_log_head(epb::GetLogHeadRequest {}).await }
    };
    for _ in 0..3 {
        head(Role::Inspector).await.unwrap();
    }
    let refused = head(Role::Inspector).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    assert_eq!(error_reason(&refused), "RATE_LIMITED");
    use tonic_types::StatusExt;
    let retry = refused.get_details_retry_info().expect("RetryInfo");
    assert!(retry.retry_delay.unwrap() > std::time::Duration::ZERO);
    // The log's entry bundles, served over plain HTTP beside gRPC, hold the same caller to the
    // same rate: 429 with Retry-After, while another reader gets past it (to a tile the empty
    // log does not have yet).
    let bundle = |role: Role| {
        let url = format!("http://{addr}/tile/entries/000.p/1");
        async move {
            govit_platform::http::request(
                http::Method::GET,
                &url,
                &[(
                    "authorization",
                    &format!("Bearer {}", token(role, None, None)),
                )],
                Vec::new(),
                std::time::Duration::from_secs(5),
            )
            .await
            .unwrap()
        }
    };
    let limited = bundle(Role::Inspector).await;
    assert_eq!(
        limited.status,
        429,
        "{:?}",
        String::from_utf8_lossy(&limited.body)
    );
    assert_eq!(bundle(Role::RegistryAdmin).await.status, 404);
    // Another subject has its own bucket; the services' own token is not limited at all.
    head(Role::Office).await.unwrap();
    for _ in 0..10 {
        head(Role::Service).await.unwrap();
    }
}

#[tokio::test]
async fn a_connect_protocol_call_is_told_which_protocols_are_served() {
    let app = spawn_app().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let url = format!(
        "http://{}/govit.projects.v1.ProjectService/GetProject",
        app.addr
    );
    for content_type in ["application/proto", "application/json"] {
        let call = http::Request::builder()
            .method("POST")
            .uri(&url)
            .header("origin", "https://office.example")
            .header("content-type", content_type)
            .header("connect-protocol-version", "1")
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
        let response = client.request(call).await.unwrap();
        assert_eq!(response.status(), 415, "{content_type}");
        assert_eq!(
            response.headers()["accept-post"],
            "application/grpc, application/grpc-web+proto"
        );
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(
            String::from_utf8_lossy(&body).contains("createGrpcWebTransport"),
            "{body:?}"
        );
    }
}

#[tokio::test]
async fn the_cors_preflight_allows_trace_context_and_language_headers() {
    let app = spawn_app().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let preflight = http::Request::builder()
        .method("OPTIONS")
        .uri(format!(
            "http://{}/govit.projects.v1.ProjectService/GetProject",
            app.addr
        ))
        .header("origin", "https://office.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-grpc-web,traceparent,tracestate,accept-language",
        )
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = client.request(preflight).await.unwrap();
    let allowed = response.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    for header in ["traceparent", "tracestate", "accept-language"] {
        assert!(allowed.contains(header), "{allowed}");
    }
}

/// Reflection serves every file a client needs to decode errors, byte for byte as the vendored
/// upstream file compiles, so a client that also loads googleapis' own copy sees one file.
#[tokio::test]
async fn reflection_serves_the_google_protos_a_client_needs_as_upstream_has_them() {
    use prost::Message;
    let app = spawn_app().await;
    let ask = |request: MessageRequest| {
        let channel = app.channel.clone();
        async move {
            let mut responses = ServerReflectionClient::new(channel)
                .server_reflection_info(tokio_stream::iter(vec![ServerReflectionRequest {
                    host: String::new(),
                    message_request: Some(request),
                }]))
                .await
                .unwrap()
                .into_inner();
            responses.message().await.unwrap().unwrap().message_response
        }
    };
    for (symbol, file) in [
        ("google.rpc.ErrorInfo", "google/rpc/error_details.proto"),
        (
            "google.rpc.LocalizedMessage",
            "google/rpc/error_details.proto",
        ),
        ("google.rpc.Status", "google/rpc/status.proto"),
        ("google.rpc.Code", "google/rpc/code.proto"),
        ("google.type.Date", "google/type/date.proto"),
        (
            "google.api.FieldBehavior",
            "google/api/field_behavior.proto",
        ),
    ] {
        let Some(MessageResponse::FileDescriptorResponse(found)) =
            ask(MessageRequest::FileContainingSymbol(symbol.into())).await
        else {
            panic!("reflection does not know {symbol}");
        };
        let names: Vec<String> = found
            .file_descriptor_proto
            .iter()
            .map(|bytes| {
                prost_types::FileDescriptorProto::decode(bytes.as_slice())
                    .unwrap()
                    .name()
                    .to_owned()
            })
            .collect();
        assert!(names.contains(&file.to_owned()), "{symbol}: {names:?}");
    }
    // Upstream's date.proto, options included: the copy served before lacked them.
    let Some(MessageResponse::FileDescriptorResponse(date)) = ask(MessageRequest::FileByFilename(
        "google/type/date.proto".into(),
    ))
    .await
    else {
        panic!("no google/type/date.proto");
    };
    let date =
        prost_types::FileDescriptorProto::decode(date.file_descriptor_proto[0].as_slice()).unwrap();
    let options = date.options.unwrap();
    assert_eq!(options.objc_class_prefix(), "GTP");
    assert_eq!(
        options.go_package(),
        "google.golang.org/genproto/googleapis/type/date;date"
    );
    // And the vendored files are the upstream text (the README names the commit).
    let vendored = include_str!("../../proto/google/type/date.proto");
    assert!(vendored.contains("option objc_class_prefix = \"GTP\";"));
}
