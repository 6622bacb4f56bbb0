//! Spawning real services on 127.0.0.1:0 with a fresh database each, and typed clients.
//! Set GOVIT_TEST_POSTGRES_URL (e.g. postgres://postgres@127.0.0.1:5432/postgres) to run the
//! same tests on PostgreSQL: each test then gets a database of its own on that server.
//! Set TEST_LOG=1 to see the services' logs.

use std::{net::SocketAddr, path::PathBuf, sync::LazyLock, time::Duration};

use govit_platform::{
    Authenticator, Role, VerificationKey, auth::Bureau, auth::mint_hs256, server::ServerOptions,
    uscc,
};
use govit_projects::{ProjectsConfig, ProjectsService, SupervisionPolicy};
use govit_proto::projects::v1::{self as pb, project_service_client::ProjectServiceClient};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{
    Code, Request, Status,
    metadata::MetadataValue,
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
};
use tonic_types::StatusExt;

pub const KEY: &[u8] = b"integration-test-key-0123456789abcdef";

static TRACING: LazyLock<()> = LazyLock::new(|| {
    if std::env::var_os("TEST_LOG").is_some() {
        let _ = govit_platform::telemetry::init(Default::default(), None);
    }
});

/// A bearer token on every call.
#[derive(Clone)]
pub struct Bearer(pub Option<MetadataValue<tonic::metadata::Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(token) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", token.clone());
        }
        Ok(request)
    }
}

pub type Client = ProjectServiceClient<InterceptedService<Channel, Bearer>>;

/// A token for `role`; a supervisor's is the audit bureau's, whose remit is every project.
pub fn token(role: Role, org: Option<&str>, expert: Option<&str>) -> String {
    if role == Role::Supervisor {
        return bureau_token(Bureau::Audit);
    }
    mint_hs256(
        KEY,
        &format!("test-{role}"),
        role,
        org,
        expert,
        Duration::from_secs(600),
    )
    .unwrap()
}

/// A supervisor's token for `bureau`.
pub fn bureau_token(bureau: Bureau) -> String {
    govit_platform::auth::mint_hs256_for_bureau(
        KEY,
        &format!("test-{bureau}-bureau"),
        bureau,
        Duration::from_secs(600),
    )
    .unwrap()
}

/// A credit code with a valid check character, distinct per `n`.
pub fn credit_code(n: u32) -> String {
    uscc::with_check_character(&format!("91650100MA77{n:05}")).unwrap()
}

pub fn org_name(code: &str) -> String {
    format!("organizations/{code}")
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub channel: Channel,
    pub service: ProjectsService,
    pub database_url: String,
    pub blob_dir: PathBuf,
    pub max_document_bytes: u64,
    pub supervision: SupervisionPolicy,
    pub options: ServerOptions,
    _dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
    /// The applying unit created for the test, and its applicant's client.
    pub applicant_code: String,
}

pub async fn fresh_database_url(dir: &std::path::Path, service: &str) -> String {
    match std::env::var("GOVIT_TEST_POSTGRES_URL") {
        Ok(base) if !base.is_empty() => {
            let (server, _) = base
                .rsplit_once('/')
                .expect("GOVIT_TEST_POSTGRES_URL has a database");
            format!(
                "{server}/govit_test_{service}_{}",
                uuid::Uuid::new_v4().simple()
            )
        }
        _ => govit_platform::db::sqlite_url(&dir.join(format!("{service}.db"))),
    }
}

pub struct Options {
    pub max_document_bytes: u64,
    pub cors_origins: Vec<String>,
    pub reflection: bool,
    pub supervision: SupervisionPolicy,
}

impl Options {
    /// A deployment that lets a post-evaluation follow operation at once, for tests that walk
    /// a project to its end within a day.
    pub fn no_stable_period() -> Options {
        Options {
            supervision: SupervisionPolicy {
                stable_operation_months: 0,
                ..Default::default()
            },
            ..Default::default()
        }
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_document_bytes: 1024 * 1024,
            cors_origins: vec!["https://office.example".into()],
            reflection: true,
            supervision: SupervisionPolicy::default(),
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    LazyLock::force(&TRACING);
    let dir = tempfile::tempdir().unwrap();
    let database_url = fresh_database_url(dir.path(), "projects").await;
    let blob_dir = dir.path().join("blobs");
    let server_options = ServerOptions {
        cors_origins: options.cors_origins,
        reflection: options.reflection,
        ..ServerOptions::default()
    };
    let mut app = TestApp {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        channel: Channel::from_static("http://127.0.0.1:1").connect_lazy(),
        service: open(
            &database_url,
            &blob_dir,
            options.max_document_bytes,
            options.supervision.clone(),
        )
        .await,
        database_url,
        blob_dir,
        max_document_bytes: options.max_document_bytes,
        supervision: options.supervision,
        options: server_options,
        _dir: dir,
        shutdown: None,
        handle: None,
        applicant_code: credit_code(1),
    };
    app.start().await;
    let office = app.client(Role::Office);
    create_org(
        &office,
        &app.applicant_code,
        pb::OrganizationKind::ApplyingUnit,
    )
    .await;
    app
}

async fn open(
    database_url: &str,
    blob_dir: &std::path::Path,
    max: u64,
    supervision: SupervisionPolicy,
) -> ProjectsService {
    ProjectsService::open(&ProjectsConfig {
        database_url: database_url.to_owned(),
        blob_dir: blob_dir.to_owned(),
        max_document_bytes: max,
        supervision,
    })
    .await
    .expect("open projects service")
}

impl TestApp {
    async fn start(&mut self) {
        let auth = Authenticator::new(&VerificationKey::Hs256(KEY.to_vec())).unwrap();
        // A drain is the end of one server; a restarted one starts undrained.
        let options = ServerOptions {
            drain: Default::default(),
            ..self.options.clone()
        };
        let routes = self.service.clone().routes(auth, &options).await.unwrap();
        // Bound before serving: the client can connect at once, no sleeping.
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        self.handle = Some(tokio::spawn(async move {
            govit_platform::server::serve(listener, routes, &options, async {
                let _ = rx.await;
            })
            .await
        }));
        self.shutdown = Some(tx);
        self.channel = Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .expect("connect to the service");
    }

    /// Stops the server and starts a new one on the same database and blob directory, as an
    /// operator restarting the process would.
    pub async fn restart(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await.unwrap().unwrap();
        }
        self.service.db().pool.close().await;
        self.service = open(
            &self.database_url,
            &self.blob_dir,
            self.max_document_bytes,
            self.supervision.clone(),
        )
        .await;
        self.start().await;
    }

    pub fn client_with_token(&self, token: Option<String>) -> Client {
        let value = token.map(|t| format!("Bearer {t}").parse().unwrap());
        ProjectServiceClient::with_interceptor(self.channel.clone(), Bearer(value))
    }

    pub fn client(&self, role: Role) -> Client {
        let (org, expert) = match role {
            Role::Applicant => (Some(self.applicant_code.as_str()), None),
            Role::Expert => (None, Some("e-001")),
            _ => (None, None),
        };
        self.client_with_token(Some(token(role, org, expert)))
    }

    /// A supervisor of `bureau`.
    pub fn bureau(&self, bureau: Bureau) -> Client {
        self.client_with_token(Some(bureau_token(bureau)))
    }

    /// The applicant of another organisation.
    pub fn stranger(&self) -> Client {
        self.client_with_token(Some(token(Role::Applicant, Some(&credit_code(999)), None)))
    }

    pub async fn project_count(&self) -> i64 {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM projects")
            .fetch_one(&self.service.db().pool)
            .await
            .unwrap()
    }

    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM audit_events")
            .fetch_one(&self.service.db().pool)
            .await
            .unwrap()
    }
}

pub async fn create_org(
    client: &Client,
    code: &str,
    kind: pb::OrganizationKind,
) -> pb::Organization {
    client
        .clone()
        .create_organization(pb::CreateOrganizationRequest {
            request_id: String::new(),
            organization: Some(pb::Organization {
                credit_code: code.to_owned(),
                display_name: format!("Unit {code}"),
                kind: kind as i32,
                contacts: vec![contact()],
                ..Default::default()
            }),
        })
        .await
        .expect("create organisation")
        .into_inner()
}

pub fn contact() -> pb::Contact {
    pb::Contact {
        name: "Ayşe Wang".into(),
        title: "project lead".into(),
        phone: "0991-1234567".into(),
        email: "lead@unit.example".into(),
    }
}

pub fn date(year: i32, month: i32, day: i32) -> Option<govit_proto::google::r#type::Date> {
    Some(govit_proto::google::r#type::Date { year, month, day })
}

/// Today in Beijing, as the services date what happens.
pub fn today() -> Option<govit_proto::google::r#type::Date> {
    use chrono::Datelike;
    let d = govit_platform::time::beijing_today();
    date(d.year(), d.month() as i32, d.day() as i32)
}

/// A tender result as the notice asks for it: open tender announced 2026-01-20 and signed
/// 2026-02-20, the design firm `designer`.
pub fn tender_result(
    contractor: &str,
    firm: &str,
    designer: &str,
    contract_amount_fen: i64,
) -> pb::TenderResult {
    pb::TenderResult {
        contractor: org_name(contractor),
        supervision_firm: org_name(firm),
        contract_amount_fen,
        contract_date: date(2026, 2, 20),
        method: pb::TenderMethod::Open as i32,
        method_justification: String::new(),
        design_firm: org_name(designer),
        announcement_date: date(2026, 1, 20),
        standards: Some(pb::ConstructionStandards {
            design: vec!["GB/T 22239-2019 网络安全等级保护基本要求".into()],
            construction: vec!["GB 50174-2017 数据中心设计规范".into()],
            supervision: vec!["GB/T 19668.1-2014 信息技术服务 监理".into()],
        }),
    }
}

pub fn new_project(applicant_code: &str) -> pb::Project {
    pb::Project {
        display_name: "City e-government cloud, phase II".into(),
        applicant: org_name(applicant_code),
        category: "e-government".into(),
        description: "Consolidate the bureaus' servers into one managed cloud.".into(),
        planned_start_date: date(2027, 3, 1),
        planned_end_date: date(2027, 12, 31),
        estimated_investment_fen: 125_000_000, // 1,250,000 yuan
        funding_source: pb::FundingSource::CityBudget as i32,
        contacts: vec![contact()],
        promised_indicators: promised_indicators(),
        ..Default::default()
    }
}

/// What the test project's feasibility study promises.
pub fn promised_indicators() -> Vec<pb::PromisedIndicator> {
    vec![
        pb::PromisedIndicator {
            dimension: pb::EvaluationDimension::EngineeringQuality as i32,
            name: "availability".into(),
            unit: "%".into(),
            target: 99.9,
            direction: pb::IndicatorDirection::AtLeast as i32,
        },
        pb::PromisedIndicator {
            dimension: pb::EvaluationDimension::OperatingState as i32,
            name: "median response time".into(),
            unit: "seconds".into(),
            target: 2.0,
            direction: pb::IndicatorDirection::AtMost as i32,
        },
    ]
}

pub async fn draft(app: &TestApp) -> pb::Project {
    app.client(Role::Applicant)
        .create_project(pb::CreateProjectRequest {
            request_id: String::new(),
            project: Some(new_project(&app.applicant_code)),
        })
        .await
        .expect("create project")
        .into_inner()
}

pub async fn upload(
    client: &Client,
    parent: &str,
    kind: pb::DocumentKind,
    sealed_copies: i32,
    content: &[u8],
    expected_sha256: &str,
) -> Result<pb::Document, Status> {
    let mut messages = vec![pb::UploadDocumentRequest {
        part: Some(pb::upload_document_request::Part::Metadata(
            pb::DocumentUpload {
                request_id: String::new(),
                parent: parent.to_owned(),
                kind: kind as i32,
                file_name: "document.pdf".into(),
                media_type: "application/pdf".into(),
                sealed_copies,
                expected_sha256: expected_sha256.to_owned(),
            },
        )),
    }];
    for chunk in content.chunks(16 * 1024) {
        messages.push(pb::UploadDocumentRequest {
            part: Some(pb::upload_document_request::Part::Chunk(chunk.to_vec())),
        });
    }
    client
        .clone()
        .upload_document(tokio_stream::iter(messages))
        .await
        .map(|r| r.into_inner())
}

/// Uploads what submission needs: the application form (three sealed copies) and the
/// feasibility study report.
pub async fn upload_application(app: &TestApp, project: &pb::Project) {
    let applicant = app.client(Role::Applicant);
    upload(
        &applicant,
        &project.name,
        pb::DocumentKind::ApplicationForm,
        3,
        b"%PDF form",
        "",
    )
    .await
    .unwrap();
    upload(
        &applicant,
        &project.name,
        pb::DocumentKind::FeasibilityStudyReport,
        0,
        b"%PDF study",
        "",
    )
    .await
    .unwrap();
}

pub async fn submitted(app: &TestApp) -> pb::Project {
    let project = draft(app).await;
    upload_application(app, &project).await;
    app.client(Role::Applicant)
        .submit_project(pb::SubmitProjectRequest {
            request_id: String::new(),
            name: project.name.clone(),
            etag: project.etag.clone(),
        })
        .await
        .expect("submit")
        .into_inner()
}

/// A submitted project that office accepted for preliminary review with `panel()`.
pub async fn under_review(app: &TestApp) -> pb::Project {
    let p = submitted(app).await;
    app.client(Role::Office)
        .accept_for_review(pb::AcceptForReviewRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            panel: panel(),
        })
        .await
        .expect("accept for review")
        .into_inner()
}

pub async fn get(app: &TestApp, name: &str) -> pb::Project {
    app.client(Role::Office)
        .get_project(pb::GetProjectRequest {
            name: name.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
}

pub fn evaluation(name: &str, etag: &str, report: &str) -> pb::RecordPostEvaluationRequest {
    pb::RecordPostEvaluationRequest {
        request_id: String::new(),
        name: name.to_owned(),
        etag: etag.to_owned(),
        summary: "stable for a year; benefits largely met".into(),
        engineering_quality_score: 92,
        operating_state_score: 85,
        investment_benefit_score: 78,
        benefits: vec![pb::BenefitComparison {
            benefit: "permits issued online".into(),
            promised: "80%".into(),
            achieved: "86%".into(),
        }],
        report_document: report.to_owned(),
        measured: vec![
            pb::MeasuredIndicator {
                name: "availability".into(),
                actual: 99.95,
            },
            pb::MeasuredIndicator {
                name: "median response time".into(),
                actual: 2.4,
            },
        ],
    }
}

pub fn panel() -> Vec<pb::PanelRequirement> {
    vec![
        pb::PanelRequirement {
            category: "software".into(),
            count: 3,
            alternates: 2,
        },
        pb::PanelRequirement {
            category: "network".into(),
            count: 2,
            alternates: 1,
        },
    ]
}

/// The field violations of an INVALID_ARGUMENT status, by field name.
pub fn violated_fields(status: &Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let bad = status
        .get_details_bad_request()
        .expect("BadRequest details");
    bad.field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}

#[track_caller]
/// The `google.rpc.ErrorInfo` reason of a govit error ("" when there is none).
pub fn error_reason(status: &Status) -> String {
    let details = status.get_error_details();
    let info = details
        .error_info()
        .expect("every govit error carries ErrorInfo");
    assert_eq!(info.domain, "govit");
    info.reason.clone()
}

pub fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> Status {
    match result {
        Ok(value) => panic!("expected {code:?}, got Ok({value:?})"),
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            status
        }
    }
}

pub fn state(project: &pb::Project) -> pb::ProjectState {
    pb::ProjectState::try_from(project.state).unwrap()
}

// ---- the expert registry ----

use govit_experts::{DrawPolicy, ExpertsService};
use govit_proto::experts::v1::{
    self as epb, expert_registry_service_client::ExpertRegistryServiceClient,
};

pub type RegistryClient = ExpertRegistryServiceClient<InterceptedService<Channel, Bearer>>;

pub struct Registry {
    addr: SocketAddr,
    pub channel: Channel,
    pub service: ExpertsService,
    pub database_url: String,
    _dir: Option<tempfile::TempDir>,
}

pub async fn spawn_registry(policy: DrawPolicy) -> Registry {
    LazyLock::force(&TRACING);
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database_url(dir.path(), "experts").await;
    let mut registry = spawn_registry_on(&url, policy).await;
    registry._dir = Some(dir);
    registry
}

/// Another replica on the same database.
pub async fn spawn_registry_on(database_url: &str, policy: DrawPolicy) -> Registry {
    let service = ExpertsService::open(database_url, policy)
        .await
        .expect("open registry");
    serve_registry(service, database_url).await
}

/// Serves a registry opened (and configured) by the caller.
/// Serves `routes` on a free loopback port until the test ends; the address, and a channel
/// connected to it.
pub async fn serve_on_free_port(
    routes: tonic::service::Routes,
    options: &ServerOptions,
) -> (SocketAddr, Channel) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let options = options.clone();
    tokio::spawn(async move {
        govit_platform::server::serve(listener, routes, &options, std::future::pending()).await
    });
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (addr, channel)
}

pub async fn serve_registry(service: ExpertsService, database_url: &str) -> Registry {
    let auth = Authenticator::new(&VerificationKey::Hs256(KEY.to_vec())).unwrap();
    let routes = service
        .clone()
        .routes(auth, &ServerOptions::default())
        .await
        .unwrap();
    let (addr, channel) = serve_on_free_port(routes, &ServerOptions::default()).await;
    Registry {
        addr,
        channel,
        service,
        database_url: database_url.to_owned(),
        _dir: None,
    }
}

impl Registry {
    pub fn channel_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn client(&self, role: Role) -> RegistryClient {
        let (org, expert) = match role {
            Role::Applicant => (Some(credit_code(1)), None),
            Role::Expert => (None, Some("e-001".to_string())),
            _ => (None, None),
        };
        let value = Some(
            format!("Bearer {}", token(role, org.as_deref(), expert.as_deref()))
                .parse()
                .unwrap(),
        );
        ExpertRegistryServiceClient::with_interceptor(self.channel.clone(), Bearer(value))
    }

    pub async fn log_size(&self) -> i64 {
        sqlx::query_scalar::<_, i64>("SELECT size FROM log_state")
            .fetch_one(&self.service.db().pool)
            .await
            .unwrap()
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
            .fetch_one(&self.service.db().pool)
            .await
            .unwrap()
    }

    pub async fn category(&self, code: &str) {
        self.client(Role::RegistryAdmin)
            .create_category(epb::CreateCategoryRequest {
                request_id: String::new(),
                category: Some(epb::Category {
                    code: code.into(),
                    display_name: format!("Category {code}"),
                    ..Default::default()
                }),
            })
            .await
            .expect("create category");
    }

    pub async fn expert(&self, e: epb::Expert) -> epb::Expert {
        self.client(Role::RegistryAdmin)
            .create_expert(epb::CreateExpertRequest {
                request_id: String::new(),
                expert: Some(e),
            })
            .await
            .expect("create expert")
            .into_inner()
    }
}

/// An ID number with a valid check character, distinct per `n`.
pub fn id_number(n: u32) -> String {
    govit_platform::resident_id::with_check_character(&format!("65010219800101{:03}", n % 1000))
        .unwrap()
}

pub fn expert(id: &str, categories: &[&str], employer: u32) -> epb::Expert {
    let n: u32 = id.bytes().map(u32::from).sum();
    epb::Expert {
        expert_id: id.into(),
        display_name: format!("Expert {id}"),
        employer: Some(epb::Employer {
            credit_code: credit_code(employer),
            name: format!("Employer {employer}"),
        }),
        source: epb::ExpertSource::ItEnterprise as i32,
        title: "senior engineer".into(),
        categories: categories.iter().map(|c| c.to_string()).collect(),
        phone: format!("1381234{:04}", n % 10000),
        email: format!("{id}@experts.example"),
        id_number: id_number(n),
        appointment_start_date: date(2025, 1, 1),
        appointment_end_date: date(2028, 12, 31),
        ..Default::default()
    }
}

pub fn requirement(category: &str, count: i32, alternates: i32) -> epb::PanelRequirement {
    epb::PanelRequirement {
        category: category.into(),
        count,
        alternates,
    }
}

pub fn open_request(
    project: &str,
    requirements: Vec<epb::PanelRequirement>,
) -> epb::OpenDrawRequest {
    epb::OpenDrawRequest {
        project: format!("projects/{project}"),
        stage: epb::ReviewStage::PreliminaryReview as i32,
        requirements,
        meeting_date: date(2026, 12, 3),
        ..Default::default()
    }
}

/// A project taken through the lifecycle to UNDER_CONSTRUCTION: approved budget 1,250,000 yuan,
/// contract 1,180,000 yuan signed 2026-02-20.
pub async fn under_construction(app: &TestApp) -> pb::Project {
    under_construction_for(app, 118_000_000).await
}

/// The same, with a contract of `contract_amount_fen`.
pub async fn under_construction_for(app: &TestApp, contract_amount_fen: i64) -> pb::Project {
    let office = app.client(Role::Office);
    let applicant = app.client(Role::Applicant);
    let (contractor, firm, designer) = (credit_code(2), credit_code(3), credit_code(4));
    for (code, kind) in [
        (&contractor, pb::OrganizationKind::Contractor),
        (&firm, pb::OrganizationKind::SupervisionFirm),
        (&designer, pb::OrganizationKind::DesignFirm),
    ] {
        let exists = office
            .clone()
            .get_organization(pb::GetOrganizationRequest {
                name: org_name(code),
            })
            .await
            .is_ok();
        if !exists {
            create_org(&office, code, kind).await;
        }
    }
    let p = under_review(app).await;
    let p = app
        .client(Role::Service)
        .record_review_outcome(pb::RecordReviewOutcomeRequest {
            name: p.name.clone(),
            review: format!("reviews/r-{}", p.code),
            stage: pb::ReviewStage::PreliminaryReview as i32,
            decision: pb::ReviewDecision::Approved as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let doc = upload(
        &applicant,
        &p.name,
        pb::DocumentKind::ImplementationPlan,
        0,
        b"%PDF plan",
        "",
    )
    .await
    .unwrap();
    let plan = pb::ImplementationPlan {
        task_plan: "t".into(),
        system_design: "d".into(),
        equipment_selection: "e".into(),
        schedule: "s".into(),
        plan_document: doc.name,
    };
    let p = applicant
        .clone()
        .file_implementation_plan(pb::FileImplementationPlanRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            plan: Some(plan),
        })
        .await
        .unwrap()
        .into_inner();
    let p = office
        .clone()
        .record_implementation_plan(pb::RecordImplementationPlanRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            comment: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let p = applicant
        .clone()
        .start_tendering(pb::StartTenderingRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
        })
        .await
        .unwrap()
        .into_inner();
    applicant
        .clone()
        .record_tender_result(pb::RecordTenderResultRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            result: Some(tender_result(
                &contractor,
                &firm,
                &designer,
                contract_amount_fen,
            )),
        })
        .await
        .unwrap()
        .into_inner()
}

// ---- the three services as one system ----

use govit_proto::scheduling::v1::review_scheduling_service_client::ReviewSchedulingServiceClient;
use govit_scheduling::{Peers, SchedulingPolicy, SchedulingService};

pub type SchedulingClient = ReviewSchedulingServiceClient<InterceptedService<Channel, Bearer>>;

/// One running service of a system: stoppable and restartable on the same address and
/// database, as an operator would restart a process.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Running {
    async fn start(listener: TcpListener, routes: tonic::service::Routes) -> Running {
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let handle = tokio::spawn(async move {
            govit_platform::server::serve(listener, routes, &ServerOptions::default(), async {
                let _ = rx.await;
            })
            .await
        });
        Running {
            addr,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.unwrap().unwrap();
        }
    }
}

pub struct System {
    pub projects: ProjectsService,
    pub registry: ExpertsService,
    pub scheduling: SchedulingService,
    pub projects_run: Running,
    pub registry_run: Running,
    pub scheduling_run: Running,
    urls: [String; 3],
    database_urls: [String; 3],
    policy: DrawPolicy,
    supervision: SupervisionPolicy,
    dir: tempfile::TempDir,
    pub applicant_code: String,
}

fn auth() -> Authenticator {
    Authenticator::new(&VerificationKey::Hs256(KEY.to_vec())).unwrap()
}

async fn listener_at(addr: Option<SocketAddr>) -> TcpListener {
    TcpListener::bind(addr.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))))
        .await
        .unwrap()
}

fn calendar_client(url: &str) -> govit_projects::SchedulingClient {
    ReviewSchedulingServiceClient::with_interceptor(
        govit_platform::client::lazy_channel(url, None).unwrap(),
        govit_platform::client::BearerToken::new(&token(Role::Service, None, None)).unwrap(),
    )
}

fn registry_service_client(url: &str) -> govit_projects::RegistryClient {
    ExpertRegistryServiceClient::with_interceptor(
        govit_platform::client::lazy_channel(url, None).unwrap(),
        govit_platform::client::BearerToken::new(&token(Role::Service, None, None)).unwrap(),
    )
}

fn projects_config(
    url: &str,
    dir: &std::path::Path,
    supervision: &SupervisionPolicy,
) -> ProjectsConfig {
    ProjectsConfig {
        database_url: url.to_owned(),
        blob_dir: dir.join("blobs"),
        max_document_bytes: 1024 * 1024,
        supervision: supervision.clone(),
    }
}

/// Spawns the three services on ephemeral ports with their own databases. No background
/// worker runs: tests drive `tick` and the projects outbox so every step is deterministic.
pub async fn spawn_system(policy: DrawPolicy) -> System {
    spawn_system_with(policy, SchedulingPolicy::default()).await
}

pub async fn spawn_system_with(policy: DrawPolicy, scheduling_policy: SchedulingPolicy) -> System {
    spawn_system_configured(policy, scheduling_policy, SupervisionPolicy::default()).await
}

pub async fn spawn_system_configured(
    policy: DrawPolicy,
    scheduling_policy: SchedulingPolicy,
    supervision: SupervisionPolicy,
) -> System {
    LazyLock::force(&TRACING);
    let dir = tempfile::tempdir().unwrap();
    let listeners = [
        listener_at(None).await,
        listener_at(None).await,
        listener_at(None).await,
    ];
    let urls = [0, 1, 2].map(|i| format!("http://{}", listeners[i].local_addr().unwrap()));
    let database_urls = [
        fresh_database_url(dir.path(), "projects").await,
        fresh_database_url(dir.path(), "experts").await,
        fresh_database_url(dir.path(), "scheduling").await,
    ];
    let projects = ProjectsService::open(&projects_config(
        &database_urls[0],
        dir.path(),
        &supervision,
    ))
    .await
    .unwrap()
    .with_calendar(calendar_client(&urls[2]))
    .with_registry(registry_service_client(&urls[1]));
    let registry = ExpertsService::open(&database_urls[1], policy.clone())
        .await
        .unwrap();
    let peers = Peers {
        experts_url: urls[1].clone(),
        projects_url: urls[0].clone(),
        service_token: govit_platform::client::BearerToken::new(&token(Role::Service, None, None))
            .unwrap(),
        tls: None,
    };
    let scheduling = SchedulingService::open(&database_urls[2], scheduling_policy, &peers)
        .await
        .unwrap();
    let [pl, rl, sl] = listeners;
    let projects_run = Running::start(
        pl,
        projects
            .clone()
            .routes(auth(), &ServerOptions::default())
            .await
            .unwrap(),
    )
    .await;
    let registry_run = Running::start(
        rl,
        registry
            .clone()
            .routes(auth(), &ServerOptions::default())
            .await
            .unwrap(),
    )
    .await;
    let scheduling_run = Running::start(
        sl,
        scheduling
            .clone()
            .routes(auth(), &ServerOptions::default())
            .await
            .unwrap(),
    )
    .await;
    let system = System {
        projects,
        registry,
        scheduling,
        projects_run,
        registry_run,
        scheduling_run,
        urls,
        database_urls,
        policy,
        supervision,
        dir,
        applicant_code: credit_code(1),
    };
    create_org(
        &system.projects_client(Role::Office),
        &system.applicant_code,
        pb::OrganizationKind::ApplyingUnit,
    )
    .await;
    system
}

impl System {
    fn channel(url: &str) -> Channel {
        govit_platform::client::lazy_channel(url, None).unwrap()
    }

    fn bearer(role: Role, org: Option<&str>, expert: Option<&str>) -> Bearer {
        Bearer(Some(
            format!("Bearer {}", token(role, org, expert))
                .parse()
                .unwrap(),
        ))
    }

    pub fn projects_client(&self, role: Role) -> Client {
        let org = (role == Role::Applicant).then_some(self.applicant_code.as_str());
        ProjectServiceClient::with_interceptor(
            Self::channel(&self.urls[0]),
            Self::bearer(role, org, None),
        )
    }

    /// A projects client presenting `token` as it is.
    pub fn projects_client_with_token(&self, token: &str) -> Client {
        ProjectServiceClient::with_interceptor(
            Self::channel(&self.urls[0]),
            Bearer(Some(format!("Bearer {token}").parse().unwrap())),
        )
    }

    pub fn registry_client(&self, role: Role) -> RegistryClient {
        ExpertRegistryServiceClient::with_interceptor(
            Self::channel(&self.urls[1]),
            Self::bearer(role, None, None),
        )
    }

    pub fn scheduling_client(&self, role: Role) -> SchedulingClient {
        let org = (role == Role::Applicant).then_some(self.applicant_code.as_str());
        ReviewSchedulingServiceClient::with_interceptor(
            Self::channel(&self.urls[2]),
            Self::bearer(role, org, None),
        )
    }

    pub fn expert_client(&self, expert: &str) -> SchedulingClient {
        ReviewSchedulingServiceClient::with_interceptor(
            Self::channel(&self.urls[2]),
            Self::bearer(Role::Expert, None, Some(expert)),
        )
    }

    pub fn urls(&self) -> &[String; 3] {
        &self.urls
    }

    /// The projects service's outbox delivered to scheduling, as its worker would.
    pub async fn deliver_projects_outbox(&self) -> usize {
        govit_platform::outbox::retry_now(self.projects.db())
            .await
            .unwrap();
        self.projects.deliver_outbox().await.unwrap()
    }

    /// The projects service's outbox worker, as `govit up` runs it.
    pub fn spawn_projects_worker(&self, interval: Duration) -> JoinHandle<()> {
        self.projects.spawn_outbox_worker(
            Self::channel(&self.urls[2]),
            Self::channel(&self.urls[1]),
            interval,
        )
    }

    /// One pass of the scheduling worker, backoff skipped as after an operator's retry, and
    /// every review waiting on a witness looked at again at once.
    pub async fn tick(&self) {
        govit_platform::outbox::retry_now(self.scheduling.db())
            .await
            .unwrap();
        sqlx::query("UPDATE reviews SET wake_at = '' WHERE wake_at IS NOT NULL")
            .execute(&self.scheduling.db().pool)
            .await
            .unwrap();
        self.scheduling.tick().await.unwrap();
    }

    pub async fn restart_registry(&mut self) {
        self.registry_run.stop().await;
        self.registry = ExpertsService::open(&self.database_urls[1], self.policy.clone())
            .await
            .unwrap();
        let l = listener_at(Some(self.registry_run.addr)).await;
        self.registry_run = Running::start(
            l,
            self.registry
                .clone()
                .routes(auth(), &ServerOptions::default())
                .await
                .unwrap(),
        )
        .await;
    }

    pub async fn restart_scheduling(&mut self) {
        self.scheduling_run.stop().await;
        let peers = Peers {
            experts_url: self.urls[1].clone(),
            projects_url: self.urls[0].clone(),
            service_token: govit_platform::client::BearerToken::new(&token(
                Role::Service,
                None,
                None,
            ))
            .unwrap(),
            tls: None,
        };
        self.scheduling =
            SchedulingService::open(&self.database_urls[2], SchedulingPolicy::default(), &peers)
                .await
                .unwrap();
        let l = listener_at(Some(self.scheduling_run.addr)).await;
        self.scheduling_run = Running::start(
            l,
            self.scheduling
                .clone()
                .routes(auth(), &ServerOptions::default())
                .await
                .unwrap(),
        )
        .await;
    }

    pub async fn restart_projects(&mut self) {
        self.projects_run.stop().await;
        self.projects = ProjectsService::open(&projects_config(
            &self.database_urls[0],
            self.dir.path(),
            &self.supervision,
        ))
        .await
        .unwrap()
        .with_calendar(calendar_client(&self.urls[2]))
        .with_registry(registry_service_client(&self.urls[1]));
        let l = listener_at(Some(self.projects_run.addr)).await;
        self.projects_run = Running::start(
            l,
            self.projects
                .clone()
                .routes(auth(), &ServerOptions::default())
                .await
                .unwrap(),
        )
        .await;
    }
}

/// Makes the project `name` (`projects/{code}`) as old as if it had been created on 1 January
/// 2026, as the clock would have: tests record inspections on fixed past dates, which must not
/// precede the project.
pub async fn backdate_project(db: &govit_platform::Db, name: &str) {
    sqlx::query("UPDATE projects SET create_time = $1 WHERE code = $2")
        .bind("2026-01-01T00:00:00.000000Z")
        .bind(name.trim_start_matches("projects/").to_owned())
        .execute(&db.pool)
        .await
        .unwrap();
}

/// A TCP proxy that can lose replies: once [`LossyProxy::lose_replies`] is called, what the
/// server sends is read and thrown away, and [`LossyProxy::cut`] then closes every connection.
/// The client's request reaches the server whole; only the answer is lost, as on a network
/// that fails after the server committed.
pub struct LossyProxy {
    pub addr: SocketAddr,
    losing: std::sync::Arc<std::sync::atomic::AtomicBool>,
    connections: std::sync::Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
}

impl LossyProxy {
    pub async fn to(upstream: SocketAddr) -> LossyProxy {
        use std::sync::{Arc, Mutex, atomic::AtomicBool};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let losing = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (lose, conns) = (losing.clone(), connections.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let lose = lose.clone();
                let handle = tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let up = tokio::io::copy(&mut client_read, &mut server_write);
                    let down = async {
                        use tokio::io::{AsyncReadExt, AsyncWriteExt};
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match server_read.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if lose.load(std::sync::atomic::Ordering::SeqCst) {
                                continue;
                            }
                            if client_write.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                    }
                });
                conns.lock().unwrap().push(handle);
            }
        });
        LossyProxy {
            addr,
            losing,
            connections,
        }
    }

    pub fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect_lazy()
    }

    pub fn lose_replies(&self) {
        self.losing.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Closes every connection: the client sees its call fail.
    pub fn cut(&self) {
        for handle in self.connections.lock().unwrap().drain(..) {
            handle.abort();
        }
    }
}

/// Waits until the service has kept the answer of the call with this request id (the call
/// committed and answered), so that losing the reply afterwards loses only the reply.
pub async fn until_answer_kept(db: &govit_platform::Db, method: &str) {
    for _ in 0..500 {
        let kept: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM idempotency_keys WHERE method = $1 AND response IS NOT NULL",
        )
        .bind(method)
        .fetch_one(&db.pool)
        .await
        .unwrap();
        if kept > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{method} never kept its answer");
}

/// A project taken on from UNDER_CONSTRUCTION: acceptance requested with its report, started
/// with the contractor and the supervision firm, passed, and operation started today.
pub async fn in_operation(app: &TestApp) -> pb::Project {
    let applicant = app.client(Role::Applicant);
    let office = app.client(Role::Office);
    let p = under_construction(app).await;
    let contract = p.tender_result.clone().unwrap();
    let report = upload(
        &applicant,
        &p.name,
        pb::DocumentKind::AcceptanceReport,
        0,
        b"%PDF acceptance report",
        "",
    )
    .await
    .unwrap();
    let p = applicant
        .clone()
        .request_acceptance(pb::RequestAcceptanceRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            acceptance_report: report.name,
        })
        .await
        .unwrap()
        .into_inner();
    let p = office
        .clone()
        .start_acceptance(pb::StartAcceptanceRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            panel: vec![pb::PanelRequirement {
                category: "software".into(),
                count: 3,
                alternates: 1,
            }],
            participating_units: vec![contract.contractor, contract.supervision_firm],
        })
        .await
        .unwrap()
        .into_inner();
    let p = app
        .client(Role::Service)
        .record_review_outcome(pb::RecordReviewOutcomeRequest {
            name: p.name.clone(),
            etag: String::new(),
            review: format!("reviews/r-acceptance-{}", p.code),
            stage: pb::ReviewStage::Acceptance as i32,
            decision: pb::ReviewDecision::Passed as i32,
            summary: "passed".into(),
        })
        .await
        .unwrap()
        .into_inner();
    office
        .clone()
        .start_operation(pb::StartOperationRequest {
            request_id: String::new(),
            name: p.name.clone(),
            etag: p.etag,
            operation_start_date: None,
        })
        .await
        .unwrap()
        .into_inner()
}
