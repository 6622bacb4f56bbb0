//! The `govit` binary as a new user runs it.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use tonic::transport::Channel;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running `govit up`: its stdout stays open, so its last line ("govit stopped") can be read
/// and printing it never fails on a closed pipe.
struct Up {
    child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    /// projects, experts, scheduling.
    ports: [u16; 3],
}

impl Up {
    /// Starts `govit [global] up` on `data_dir` on free ports and waits for its banner, which
    /// is printed once every listener is bound and serving.
    fn start(data_dir: &std::path::Path, global: &[&str], rust_log: &str, stderr: Stdio) -> Up {
        Self::start_in(data_dir, global, rust_log, stderr, &[])
    }

    /// `start`, quiet, with extra variables in the process's environment.
    fn start_with_env(data_dir: &std::path::Path, global: &[&str], env: &[(&str, &str)]) -> Up {
        Self::start_in(data_dir, global, "warn", Stdio::null(), env)
    }

    fn start_in(
        data_dir: &std::path::Path,
        global: &[&str],
        rust_log: &str,
        stderr: Stdio,
        env: &[(&str, &str)],
    ) -> Up {
        let ports = [free_port(), free_port(), free_port()];
        let mut child = Command::new(env!("CARGO_BIN_EXE_govit"))
            .args(["--data-dir", data_dir.to_str().unwrap()])
            .args(global)
            .arg("up")
            .args(["--projects-listen", &format!("127.0.0.1:{}", ports[0])])
            .args(["--experts-listen", &format!("127.0.0.1:{}", ports[1])])
            .args(["--scheduling-listen", &format!("127.0.0.1:{}", ports[2])])
            .env("RUST_LOG", rust_log)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let banner = lines.next().unwrap().unwrap();
        assert!(banner.starts_with("govit is up"), "{banner}");
        Up {
            child,
            lines,
            ports,
        }
    }

    fn url(&self, service: usize) -> String {
        format!("http://127.0.0.1:{}", self.ports[service])
    }

    fn terminate(&self) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
    }

    /// SIGTERM, then the exit, which must be a success; returns what it printed last.
    fn stop(mut self) -> Vec<String> {
        self.terminate();
        let rest: Vec<String> = self.lines.map_while(Result::ok).collect();
        assert!(self.child.wait().unwrap().success(), "{rest:?}");
        rest
    }
}

/// A channel to a `govit up` service with a token of `role` minted with the development key.
async fn dev_client(
    url: String,
    role: govit_platform::Role,
) -> (
    Channel,
    impl FnMut(tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> + Clone,
) {
    let token = govit_platform::auth::mint_hs256(
        govit_platform::auth::DEVELOPMENT_KEY.as_bytes(),
        &format!("cli-test-{role}"),
        role,
        None,
        None,
        Duration::from_secs(600),
    )
    .unwrap();
    let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
    let bearer: tonic::metadata::MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    let interceptor = move |mut r: tonic::Request<()>| {
        r.metadata_mut().insert("authorization", bearer.clone());
        Ok(r)
    };
    (channel, interceptor)
}

/// `govit [global] demo` against `up`'s services at `urls`; panics with its stderr unless it
/// succeeds, and returns what it printed.
fn run_demo(global: &[&str], urls: [String; 3]) -> String {
    let demo = Command::new(env!("CARGO_BIN_EXE_govit"))
        .args(global)
        .arg("demo")
        .args(["--projects-url", &urls[0]])
        .args(["--experts-url", &urls[1]])
        .args(["--scheduling-url", &urls[2]])
        .output()
        .unwrap();
    assert!(
        demo.status.success(),
        "{}",
        String::from_utf8_lossy(&demo.stderr)
    );
    String::from_utf8_lossy(&demo.stdout).into_owned()
}

/// A notification gateway holding a stream open, as one does all day.
async fn open_notification_stream(
    url: String,
) -> tonic::Streaming<govit_proto::scheduling::v1::Notification> {
    use govit_proto::scheduling::v1::{
        StreamNotificationsRequest, review_scheduling_service_client::ReviewSchedulingServiceClient,
    };
    let (channel, bearer) = dev_client(url, govit_platform::Role::Service).await;
    ReviewSchedulingServiceClient::with_interceptor(channel, bearer)
        .stream_notifications(StreamNotificationsRequest {})
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn govit_up_serves_all_three_services_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut up = Up::start(dir.path(), &[], "warn", Stdio::null());
    let ports = up.ports;
    let mut printed = String::new();
    for _ in 0..3 {
        printed.push_str(&up.lines.next().unwrap().unwrap());
    }
    for (port, name) in ports.iter().zip([
        "govit.projects.v1.ProjectService",
        "govit.experts.v1.ExpertRegistryService",
        "govit.scheduling.v1.ReviewSchedulingService",
    ]) {
        assert!(printed.contains(&format!("127.0.0.1:{port}")), "{printed}");
        let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: name.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{name}");
    }
    for db in ["projects.db", "experts.db", "scheduling.db"] {
        assert!(dir.path().join(db).exists(), "{db}");
    }
    // An open stream must not hold the process up: it ends, and the process exits well within
    // the drain.
    let mut stream = open_notification_stream(up.url(2)).await;

    up.terminate();
    let mut waited = 0;
    let status = loop {
        if let Some(status) = up.child.try_wait().unwrap() {
            break status;
        }
        // Well inside the 10 s drain: nothing in flight, and the stream ends at once.
        assert!(waited < 50, "govit did not stop within 5 s of SIGTERM");
        waited += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "{status:?}");
    let rest: Vec<String> = up.lines.map_while(Result::ok).collect();
    assert!(rest.iter().any(|l| l == "govit stopped"), "{rest:?}");
    let ended = tokio::time::timeout(Duration::from_secs(5), stream.message()).await;
    assert!(
        matches!(ended, Ok(Ok(None)) | Ok(Err(_))),
        "the stream is still open: {ended:?}"
    );
}

#[test]
fn govit_token_mints_a_token_the_services_accept() {
    let out = Command::new(env!("CARGO_BIN_EXE_govit"))
        .args([
            "token",
            "--role",
            "applicant",
            "--org",
            "91350100M000100Y43",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let token = String::from_utf8(out.stdout).unwrap();
    let auth = govit_platform::Authenticator::new(&govit_platform::VerificationKey::Hs256(
        govit_platform::auth::DEVELOPMENT_KEY.as_bytes().to_vec(),
    ))
    .unwrap();
    let caller = auth.verify(token.trim()).unwrap();
    assert_eq!(caller.role, govit_platform::Role::Applicant);
    assert_eq!(caller.organization.as_deref(), Some("91350100M000100Y43"));

    let refused = Command::new(env!("CARGO_BIN_EXE_govit"))
        .args(["token", "--role", "applicant"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--org"));

    // A supervisor's token names its bureau.
    let refused = Command::new(env!("CARGO_BIN_EXE_govit"))
        .args(["token", "--role", "supervisor"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--bureau"));
    let minted = Command::new(env!("CARGO_BIN_EXE_govit"))
        .args([
            "token",
            "--role",
            "supervisor",
            "--bureau",
            "development_reform",
        ])
        .output()
        .unwrap();
    assert!(minted.status.success());
    let caller = auth
        .verify(String::from_utf8(minted.stdout).unwrap().trim())
        .unwrap();
    assert_eq!(
        caller.bureau,
        Some(govit_platform::auth::Bureau::DevelopmentReform)
    );
}

#[test]
fn govit_serve_refuses_to_start_without_a_key() {
    let out = Command::new(env!("CARGO_BIN_EXE_govit"))
        .args([
            "serve",
            "projects",
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "sqlite::memory:",
        ])
        .env_remove("GOVIT_JWT_HS256_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no token key configured"));
}

#[test]
fn govit_up_refuses_the_development_key_off_loopback_and_long_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_govit"))
        .args([
            "up",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--projects-listen",
            "0.0.0.0:0",
        ])
        .env_remove("GOVIT_JWT_HS256_KEY")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("public development key"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let long = Command::new(env!("CARGO_BIN_EXE_govit"))
        .args(["token", "--role", "office", "--hours", "87600"])
        .output()
        .unwrap();
    assert!(!long.status.success());
}

/// A full run — `govit up` and `govit demo`, which registers experts with ID numbers and phone
/// numbers and sends tokens on every call — leaves none of them in either process's log, at
/// the most talkative level, in either log format.
#[tokio::test]
async fn a_full_run_logs_no_personal_data_and_no_token() {
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let up_log = std::fs::File::create(dir.path().join("up.log")).unwrap();
        let up = Up::start(
            dir.path(),
            &["--log-format", format],
            "debug",
            up_log.into(),
        );
        let demo = Command::new(env!("CARGO_BIN_EXE_govit"))
            .args(["--log-format", format, "demo"])
            .args(["--projects-url", &up.url(0)])
            .args(["--experts-url", &up.url(1)])
            .args(["--scheduling-url", &up.url(2)])
            .env("RUST_LOG", "debug")
            .output()
            .unwrap();
        up.stop();
        assert!(
            demo.status.success(),
            "{}",
            String::from_utf8_lossy(&demo.stderr)
        );
        let logs = format!(
            "{}\n{}",
            std::fs::read_to_string(dir.path().join("up.log")).unwrap(),
            String::from_utf8_lossy(&demo.stderr)
        );
        assert!(
            logs.lines().count() > 20,
            "{format}: the run logged almost nothing"
        );
        // The demo's experts: phones 1390000xxxx, ID numbers 65010219750101xxx.
        for secret in ["1390000", "65010219750101", "Bearer ", "eyJ"] {
            let leaked: Vec<&str> = logs
                .lines()
                .filter(|l| l.contains(secret))
                .take(3)
                .collect();
            assert!(
                leaked.is_empty(),
                "{format}: {secret:?} in the logs: {leaked:#?}"
            );
        }
        if format == "json" {
            let first = logs.lines().next().unwrap();
            serde_json::from_str::<serde_json::Value>(first)
                .unwrap_or_else(|e| panic!("not JSON: {first}: {e}"));
        } else {
            assert!(!logs.contains('\u{1b}'), "colour codes in a log file");
        }
    }
}

async fn registry_admin(
    url: String,
) -> govit_proto::experts::v1::expert_registry_service_client::ExpertRegistryServiceClient<
    tonic::service::interceptor::InterceptedService<Channel, impl tonic::service::Interceptor>,
> {
    let (channel, bearer) = dev_client(url, govit_platform::Role::RegistryAdmin).await;
    govit_proto::experts::v1::expert_registry_service_client::ExpertRegistryServiceClient::with_interceptor(channel, bearer)
}

/// A backup taken while the services run, restored into another data directory, serves the
/// same data; a restore never silently overwrites a database.
#[tokio::test]
async fn a_backup_taken_online_restores_into_a_new_data_directory() {
    use govit_proto::experts::v1 as epb;
    let dir = tempfile::tempdir().unwrap();
    let (old, new, copy) = (
        dir.path().join("old"),
        dir.path().join("new"),
        dir.path().join("copy"),
    );
    let running = Up::start(&old, &[], "warn", Stdio::null());
    registry_admin(running.url(1))
        .await
        .create_category(epb::CreateCategoryRequest {
            request_id: String::new(),
            category: Some(epb::Category {
                code: "software".into(),
                display_name: "Application software".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    std::fs::create_dir_all(old.join("blobs/ab")).unwrap();
    std::fs::write(old.join("blobs/ab/abcdef"), b"a sealed application form").unwrap();
    let head = |url: String| async move {
        registry_admin(url)
            .await
            .get_log_head(epb::GetLogHeadRequest {})
            .await
            .unwrap()
            .into_inner()
    };
    let signed_by = head(running.url(1)).await;
    assert_eq!(signed_by.key_id.len(), 8, "{signed_by:?}");
    // The log's key is a file only its owner reads, not a row of the database.
    let key_file = old.join("keys/log-signing-key.pem");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file).unwrap().permissions(),
    );
    assert_eq!(mode & 0o077, 0, "{mode:o}");
    assert!(
        std::fs::read_to_string(&key_file)
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----")
    );
    let govit = |data: &std::path::Path, args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_govit"))
            .args(["--data-dir", data.to_str().unwrap()])
            .args(args)
            .output()
            .unwrap()
    };
    let backup = govit(&old, &["backup", copy.to_str().unwrap()]);
    assert!(backup.status.success(), "{backup:?}");
    running.stop();

    let restored = govit(&new, &["restore", copy.to_str().unwrap()]);
    assert!(restored.status.success(), "{restored:?}");
    let again = govit(&new, &["restore", copy.to_str().unwrap()]);
    assert!(
        !again.status.success(),
        "a second restore must not overwrite silently"
    );
    assert_eq!(
        std::fs::read(new.join("blobs/ab/abcdef")).unwrap(),
        b"a sealed application form"
    );
    let running = Up::start(&new, &[], "warn", Stdio::null());
    let category = registry_admin(running.url(1))
        .await
        .get_category(epb::GetCategoryRequest {
            name: "categories/software".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(category.display_name, "Application software");
    // The restored log signs as the same log.
    let restored_head = head(running.url(1)).await;
    assert_eq!(
        (restored_head.public_key, restored_head.key_id),
        (signed_by.public_key, signed_by.key_id)
    );
    running.stop();
}

/// A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate, written as
/// PEM files into `dir`: ca.pem, server.pem, server.key, client.pem, client.key.
fn make_certificates(dir: &std::path::Path) {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa,
        KeyPair,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    for (name, sans, usage) in [
        (
            "server",
            vec!["127.0.0.1".to_string(), "localhost".to_string()],
            ExtendedKeyUsagePurpose::ServerAuth,
        ),
        (
            "client",
            vec!["govit-services".to_string()],
            ExtendedKeyUsagePurpose::ClientAuth,
        ),
    ] {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(sans).unwrap();
        params.extended_key_usages = vec![usage];
        let cert = params.signed_by(&key, &ca).unwrap();
        std::fs::write(dir.join(format!("{name}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{name}.key")), key.serialize_pem()).unwrap();
    }
}

/// Whether a health check over `endpoint` answers SERVING.
async fn serving(endpoint: tonic::transport::Endpoint) -> Result<(), String> {
    let channel = endpoint.connect().await.map_err(|e| format!("{e:?}"))?;
    let status = HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
        .map_err(|e| format!("{e:?}"))?
        .into_inner()
        .status;
    if status == ServingStatus::Serving as i32 {
        Ok(())
    } else {
        Err(format!("status {status}"))
    }
}

#[tokio::test]
async fn govit_up_serves_mutual_tls_and_its_services_call_each_other_over_it() {
    use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    make_certificates(&certs);
    let file = |name: &str| certs.join(name).to_str().unwrap().to_owned();
    let tls_flags = [
        "--tls-cert".to_string(),
        file("server.pem"),
        "--tls-key".into(),
        file("server.key"),
        "--tls-client-ca".into(),
        file("ca.pem"),
        "--peer-ca".into(),
        file("ca.pem"),
        "--peer-cert".into(),
        file("client.pem"),
        "--peer-key".into(),
        file("client.key"),
    ];
    let flags: Vec<&str> = tls_flags.iter().map(String::as_str).collect();
    let up = Up::start(&dir.path().join("data"), &flags, "warn", Stdio::null());
    let https = |service: usize| format!("https://127.0.0.1:{}", up.ports[service]);
    let ca = Certificate::from_pem(std::fs::read(certs.join("ca.pem")).unwrap());
    let identity = Identity::from_pem(
        std::fs::read(certs.join("client.pem")).unwrap(),
        std::fs::read(certs.join("client.key")).unwrap(),
    );

    for service in 0..3 {
        // Plaintext is not served.
        let plain = Endpoint::from_shared(up.url(service)).unwrap();
        assert!(serving(plain).await.is_err(), "plaintext answered");
        // TLS without a client certificate is refused: the listener requires one.
        let anonymous = Endpoint::from_shared(https(service))
            .unwrap()
            .tls_config(ClientTlsConfig::new().ca_certificate(ca.clone()))
            .unwrap();
        assert!(serving(anonymous).await.is_err(), "no client certificate");
        // With the CA's client certificate, it serves.
        let mutual = Endpoint::from_shared(https(service))
            .unwrap()
            .tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(ca.clone())
                    .identity(identity.clone()),
            )
            .unwrap();
        serving(mutual).await.unwrap();
    }

    // The demo walks a project through all three services, which call each other (acceptance
    // asks scheduling, scheduling asks the registry, outcomes come back) over mutual TLS.
    let printed = run_demo(&flags[6..], [https(0), https(1), https(2)]);
    up.stop();
    assert!(
        printed.contains("went from DRAFT to IN_OPERATION"),
        "{printed}"
    );
}

/// The body of `GET http://{addr}{path}`.
fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_owned()
}

/// The value of the sample `name{labels}` in a Prometheus text page.
fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn the_admin_listener_serves_call_outbox_pool_log_and_draw_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let admin = format!("127.0.0.1:{}", free_port());
    let up = Up::start(
        dir.path(),
        &["--admin-listen", &admin],
        "warn",
        Stdio::null(),
    );
    // One refused call, and a project walked through every service by the demo.
    let (channel, bearer) = dev_client(up.url(0), govit_platform::Role::Office).await;
    let missing =
        govit_proto::projects::v1::project_service_client::ProjectServiceClient::with_interceptor(
            channel, bearer,
        )
        .get_project(govit_proto::projects::v1::GetProjectRequest {
            name: "projects/2026-9999".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    run_demo(&[], [up.url(0), up.url(1), up.url(2)]);
    let page = http_get(&admin, "/metrics");
    up.stop();

    let projects = r#"grpc_service="govit.projects.v1.ProjectService""#;
    assert_eq!(
        sample(
            &page,
            &format!(
                r#"grpc_server_handled_total{{{projects},grpc_method="GetProject",grpc_code="NOT_FOUND"}}"#
            )
        ),
        Some(1.0),
        "{page}"
    );
    let created = sample(
        &page,
        &format!(
            r#"grpc_server_handled_total{{{projects},grpc_method="CreateProject",grpc_code="OK"}}"#
        ),
    );
    assert!(created >= Some(1.0), "{page}");
    assert!(
        sample(
            &page,
            &format!(
                r#"grpc_server_handling_seconds_count{{{projects},grpc_method="CreateProject"}}"#
            )
        ) >= created,
        "{page}"
    );
    assert!(
        page.contains("grpc_server_handling_seconds_bucket{"),
        "histograms have buckets"
    );
    // The demo's two panels were drawn and its log holds their entries.
    assert_eq!(
        sample(&page, r#"govit_draw_duration_seconds_count{outcome="ok"}"#),
        Some(2.0),
        "{page}"
    );
    assert!(sample(&page, "govit_log_entries") >= Some(2.0), "{page}");
    for service in ["projects", "scheduling"] {
        for gauge in [
            "govit_outbox_pending",
            "govit_outbox_oldest_age_seconds",
            "govit_outbox_parked",
        ] {
            let value = sample(&page, &format!(r#"{gauge}{{service="{service}"}}"#));
            assert!(
                value.is_some_and(|v| v >= 0.0),
                "{gauge} of {service}: {page}"
            );
        }
        assert_eq!(
            sample(
                &page,
                &format!(r#"govit_outbox_parked{{service="{service}"}}"#)
            ),
            Some(0.0)
        );
    }
    for service in ["projects", "experts", "scheduling"] {
        assert!(
            sample(
                &page,
                &format!(r#"govit_db_pool_max{{service="{service}"}}"#)
            ) >= Some(1.0),
            "{page}"
        );
        assert!(
            sample(
                &page,
                &format!(r#"govit_db_pool_connections{{service="{service}",state="idle"}}"#)
            )
            .is_some(),
            "{page}"
        );
    }
}

/// A stand-in OpenTelemetry collector: keeps every span it is sent.
#[derive(Default, Clone)]
struct Collector(
    std::sync::Arc<std::sync::Mutex<Vec<opentelemetry_proto::tonic::trace::v1::Span>>>,
);

#[tonic::async_trait]
impl opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceService
    for Collector
{
    async fn export(
        &self,
        request: tonic::Request<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest,
        >,
    ) -> Result<
        tonic::Response<
            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse,
        >,
        tonic::Status,
    > {
        let mut spans = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(Default::default()))
    }
}

/// The value of a span's string attribute.
fn attribute<'a>(
    span: &'a opentelemetry_proto::tonic::trace::v1::Span,
    key: &str,
) -> Option<&'a str> {
    use opentelemetry_proto::tonic::common::v1::any_value::Value;
    span.attributes.iter().find(|a| a.key == key).and_then(|a| {
        match a.value.as_ref()?.value.as_ref()? {
            Value::StringValue(s) => Some(s.as_str()),
            _ => None,
        }
    })
}

// Multi-threaded: the collector keeps serving while the test waits on the demo's process.
#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_crosses_the_services_is_one_exported_trace() {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let serving = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(
                opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::TraceServiceServer::new(
                    collector.clone(),
                ),
            )
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let dir = tempfile::tempdir().unwrap();
    // The batch processor exports every 100 ms, so the spans are there when the demo is done.
    let up = Up::start_with_env(
        dir.path(),
        &["--otlp-endpoint", &endpoint],
        &[("OTEL_BSP_SCHEDULE_DELAY", "100")],
    );
    run_demo(&[], [up.url(0), up.url(1), up.url(2)]);
    up.stop();
    serving.abort();

    let spans = collector.0.lock().unwrap().clone();
    let method = |s: &opentelemetry_proto::tonic::trace::v1::Span| {
        attribute(s, "method").unwrap_or_default().to_owned()
    };
    // Office's AcceptForReview asks scheduling (RequestReview, validate only), which asks the
    // registry (OpenDraw, validate only): three spans of one trace, each the child of the last.
    let accept = spans
        .iter()
        .find(|s| method(s).ends_with("ProjectService/AcceptForReview"))
        .unwrap_or_else(|| panic!("no AcceptForReview span among {} spans", spans.len()));
    let in_trace: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id == accept.trace_id)
        .collect();
    let request = in_trace
        .iter()
        .find(|s| method(s).ends_with("ReviewSchedulingService/RequestReview"))
        .unwrap_or_else(|| {
            panic!(
                "RequestReview is not in the trace: {:?}",
                in_trace.iter().map(|s| method(s)).collect::<Vec<_>>()
            )
        });
    assert_eq!(request.parent_span_id, accept.span_id);
    let open = in_trace
        .iter()
        .find(|s| method(s).ends_with("ExpertRegistryService/OpenDraw"))
        .expect("OpenDraw is not in the trace");
    assert_eq!(open.parent_span_id, request.span_id);
}
