//! `govit demo`: walks one project from application to approval and on through acceptance,
//! against running services, printing each step in words a new user can follow. The system
//! integration test runs the same walk.

use std::{future::Future, io::Write, time::Duration};

mod pool;
mod review;

use anyhow::{Context, bail};
use govit_platform::{
    Role,
    client::{BearerToken, lazy_channel},
    uscc,
};
use govit_proto::StoredEnum;
use govit_proto::{
    experts::v1::expert_registry_service_client::ExpertRegistryServiceClient,
    google::r#type::Date,
    projects::v1::{self as pb, project_service_client::ProjectServiceClient},
    scheduling::v1::{
        self as spb, review_scheduling_service_client::ReviewSchedulingServiceClient,
    },
};
use tonic::{service::interceptor::InterceptedService, transport::Channel};

type Projects = ProjectServiceClient<InterceptedService<Channel, BearerToken>>;
type Registry = ExpertRegistryServiceClient<InterceptedService<Channel, BearerToken>>;
type Scheduling = ReviewSchedulingServiceClient<InterceptedService<Channel, BearerToken>>;

/// Where the services are and the HS256 key to mint the demo's tokens with.
#[derive(Debug, Clone)]
pub struct Targets {
    pub projects: String,
    pub experts: String,
    pub scheduling: String,
    pub key: Vec<u8>,
    /// How `https://` services are called.
    pub tls: Option<govit_platform::tls::PeerTls>,
}

/// What the walk ended with, for the integration test to check.
#[derive(Debug)]
pub struct Outcome {
    pub project: pb::Project,
    pub events: Vec<pb::ProjectEvent>,
    pub reviews: Vec<spb::Review>,
    pub verified_draws: usize,
}

struct Demo<'a, W: Write> {
    t: &'a Targets,
    out: &'a mut W,
    applicant_org: String,
    step: usize,
}

/// A token for `role`; the demo's supervisor is the finance bureau's.
fn token(
    key: &[u8],
    role: Role,
    org: Option<&str>,
    expert: Option<&str>,
    subject: &str,
) -> anyhow::Result<BearerToken> {
    if role == Role::Supervisor {
        return BearerToken::new(&govit_platform::auth::mint_hs256_for_bureau(
            key,
            subject,
            govit_platform::auth::Bureau::Finance,
            Duration::from_secs(3600),
        )?);
    }
    BearerToken::new(&govit_platform::auth::mint_hs256(
        key,
        subject,
        role,
        org,
        expert,
        Duration::from_secs(3600),
    )?)
}

fn date(d: chrono::NaiveDate) -> Option<Date> {
    Some(govit_platform::time::date_to_proto(d))
}

/// Waits for the background workers: polls `check` until it yields a value.
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    for _ in 0..600 {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!("timed out after 60 s waiting for {what}")
}

impl<W: Write> Demo<'_, W> {
    fn say(&mut self, text: impl AsRef<str>) -> anyhow::Result<()> {
        self.step += 1;
        writeln!(self.out, "{:>2}. {}", self.step, text.as_ref())?;
        Ok(())
    }

    fn detail(&mut self, text: impl AsRef<str>) -> anyhow::Result<()> {
        writeln!(self.out, "      {}", text.as_ref())?;
        Ok(())
    }

    fn projects(&self, role: Role) -> anyhow::Result<Projects> {
        let org = (role == Role::Applicant).then_some(self.applicant_org.as_str());
        Ok(ProjectServiceClient::with_interceptor(
            lazy_channel(&self.t.projects, self.t.tls.as_ref())?,
            token(&self.t.key, role, org, None, &format!("demo-{role}"))?,
        ))
    }

    fn registry(&self, role: Role) -> anyhow::Result<Registry> {
        Ok(ExpertRegistryServiceClient::with_interceptor(
            lazy_channel(&self.t.experts, self.t.tls.as_ref())?,
            token(&self.t.key, role, None, None, &format!("demo-{role}"))?,
        ))
    }

    fn scheduling(&self, role: Role, expert: Option<&str>) -> anyhow::Result<Scheduling> {
        let subject = expert
            .map(|e| format!("expert-{e}"))
            .unwrap_or_else(|| format!("demo-{role}"));
        Ok(ReviewSchedulingServiceClient::with_interceptor(
            lazy_channel(&self.t.scheduling, self.t.tls.as_ref())?,
            token(&self.t.key, role, None, expert, &subject)?,
        ))
    }

    async fn project(&self, name: &str) -> anyhow::Result<pb::Project> {
        Ok(self
            .projects(Role::Office)?
            .get_project(pb::GetProjectRequest { name: name.into() })
            .await?
            .into_inner())
    }

    async fn upload(
        &self,
        parent: &str,
        kind: pb::DocumentKind,
        sealed: i32,
        file: &str,
        text: &str,
    ) -> anyhow::Result<pb::Document> {
        let messages = vec![
            pb::UploadDocumentRequest {
                part: Some(pb::upload_document_request::Part::Metadata(
                    pb::DocumentUpload {
                        request_id: String::new(),
                        parent: parent.into(),
                        kind: kind as i32,
                        file_name: file.into(),
                        media_type: "application/pdf".into(),
                        sealed_copies: sealed,
                        expected_sha256: String::new(),
                    },
                )),
            },
            pb::UploadDocumentRequest {
                part: Some(pb::upload_document_request::Part::Chunk(
                    text.as_bytes().to_vec(),
                )),
            },
        ];
        Ok(self
            .projects(Role::Applicant)?
            .upload_document(tokio_stream::iter(messages))
            .await?
            .into_inner())
    }
}

pub async fn run(t: &Targets, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let suffix = chrono::Utc::now().timestamp_millis() % 100_000;
    let applicant_org =
        uscc::with_check_character(&format!("91650100MA79{suffix:05}")).context("credit code")?;
    let mut d = Demo {
        t,
        out,
        applicant_org,
        step: 0,
    };
    writeln!(
        d.out,
        "govit demo: one project from application to operation\n"
    )?;
    pool::seed_pool(&mut d).await?;
    let firms = d.register_organizations(suffix).await?;
    let p = d.apply().await?;
    let (p, first) = d.preliminary_review(p).await?;
    let p = d.plan_and_tender(p, &firms).await?;
    d.finance_bureau_inspects(&p).await?;
    let (p, second) = d.acceptance(p, &firms).await?;
    let p = d.start_operation(p).await?;
    d.publish_commendation(&p, &firms).await?;
    let events = d.audit_trail(&p).await?;
    writeln!(
        d.out,
        "\nDone: {} went from DRAFT to IN_OPERATION through two drawn, witnessed and verified panels.",
        p.code
    )?;
    Ok(Outcome {
        project: p,
        events,
        reviews: vec![first, second],
        verified_draws: 2,
    })
}

/// The contractor and the supervision firm that win the tender.
struct Firms {
    contractor: String,
    supervision: String,
    design: String,
}

/// What the demo's feasibility study promises, one indicator per dimension.
fn promised_indicators() -> Vec<pb::PromisedIndicator> {
    let indicator = |dimension: pb::EvaluationDimension,
                     name: &str,
                     unit: &str,
                     target: f64,
                     direction: pb::IndicatorDirection| pb::PromisedIndicator {
        dimension: dimension as i32,
        name: name.into(),
        unit: unit.into(),
        target,
        direction: direction as i32,
    };
    vec![
        indicator(
            pb::EvaluationDimension::EngineeringQuality,
            "availability",
            "%",
            99.9,
            pb::IndicatorDirection::AtLeast,
        ),
        indicator(
            pb::EvaluationDimension::OperatingState,
            "bureaus exchanging data",
            "bureaus",
            40.0,
            pb::IndicatorDirection::AtLeast,
        ),
        indicator(
            pb::EvaluationDimension::InvestmentBenefit,
            "yearly operating cost",
            "10,000 yuan",
            60.0,
            pb::IndicatorDirection::AtMost,
        ),
    ]
}

fn software_and_network_panel() -> Vec<pb::PanelRequirement> {
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

fn lead_contact() -> pb::Contact {
    pb::Contact {
        name: "Li Na".into(),
        title: "project lead".into(),
        email: "lead@unit.example".into(),
        ..Default::default()
    }
}

impl<W: Write> Demo<'_, W> {
    async fn register_organizations(&mut self, suffix: i64) -> anyhow::Result<Firms> {
        let firms = Firms {
            contractor: uscc::with_check_character(&format!("91650100MA80{suffix:05}"))
                .context("credit code")?,
            supervision: uscc::with_check_character(&format!("91650100MA81{suffix:05}"))
                .context("credit code")?,
            design: uscc::with_check_character(&format!("91650100MA82{suffix:05}"))
                .context("credit code")?,
        };
        let mut office = self.projects(Role::Office)?;
        for (code, name, kind) in [
            (
                &self.applicant_org,
                "City Big Data Bureau",
                pb::OrganizationKind::ApplyingUnit,
            ),
            (
                &firms.contractor,
                "Tianshan Systems Co.",
                pb::OrganizationKind::Contractor,
            ),
            (
                &firms.supervision,
                "Kunlun Supervision Co.",
                pb::OrganizationKind::SupervisionFirm,
            ),
            (
                &firms.design,
                "Xinjiang Design Institute",
                pb::OrganizationKind::DesignFirm,
            ),
        ] {
            office
                .create_organization(pb::CreateOrganizationRequest {
                    request_id: String::new(),
                    organization: Some(pb::Organization {
                        credit_code: code.clone(),
                        display_name: name.into(),
                        kind: kind as i32,
                        contacts: vec![lead_contact()],
                        ..Default::default()
                    }),
                })
                .await?;
        }
        self.say(format!("Office registered the applying unit (credit code {}), a contractor and a supervision firm.", self.applicant_org))?;
        Ok(firms)
    }

    /// The applicant creates the project, uploads its documents and submits it.
    async fn apply(&mut self) -> anyhow::Result<pb::Project> {
        let mut applicant = self.projects(Role::Applicant)?;
        let today = govit_platform::time::beijing_today();
        let p = applicant
            .create_project(pb::CreateProjectRequest {
                request_id: String::new(),
                project: Some(pb::Project {
                    display_name: "Government data-sharing platform".into(),
                    applicant: format!("organizations/{}", self.applicant_org),
                    category: "software".into(),
                    description: "One platform for the bureaus to exchange data.".into(),
                    planned_start_date: date(today + chrono::Duration::days(60)),
                    planned_end_date: date(today + chrono::Duration::days(300)),
                    estimated_investment_fen: 280_000_000,
                    funding_source: pb::FundingSource::CityBudget as i32,
                    contacts: vec![lead_contact()],
                    promised_indicators: promised_indicators(),
                    ..Default::default()
                }),
            })
            .await?
            .into_inner();
        self.say(format!(
            "The applicant created project {} \"{}\" (DRAFT), 2,800,000 yuan, its feasibility study promising {} measurable indicators.",
            p.code,
            p.display_name,
            p.promised_indicators.len()
        ))?;
        let form = self
            .upload(
                &p.name,
                pb::DocumentKind::ApplicationForm,
                3,
                "application-form.pdf",
                "application form, sealed",
            )
            .await?;
        let study = self
            .upload(
                &p.name,
                pb::DocumentKind::FeasibilityStudyReport,
                0,
                "feasibility-study.pdf",
                "feasibility study report",
            )
            .await?;
        self.say(format!("It uploaded the application form (three sealed copies, SHA-256 {}…) and the feasibility study ({}…).", &form.sha256[..12], &study.sha256[..12]))?;
        let p = applicant
            .submit_project(pb::SubmitProjectRequest {
                request_id: String::new(),
                name: p.name.clone(),
                etag: p.etag,
            })
            .await?
            .into_inner();
        self.say(format!("It submitted the project: {}.", state(&p)))?;
        self.check_duplication(p).await
    }

    /// Office looks at the projects like this one, found when it was submitted, and records
    /// its finding on duplicate construction.
    async fn check_duplication(&mut self, p: pb::Project) -> anyhow::Result<pb::Project> {
        // As office reads it: the applicant is shown only its own unit's matches.
        let p = self
            .projects(Role::Office)?
            .get_project(pb::GetProjectRequest {
                name: p.name.clone(),
            })
            .await?
            .into_inner();
        let similar = &p.similar_projects;
        let (verdict, reasons) = if similar.is_empty() {
            (
                pb::DuplicationVerdict::None,
                "no project of any unit builds a data-sharing platform".to_owned(),
            )
        } else {
            (
                pb::DuplicationVerdict::Overlap,
                "an earlier run of the demo built the same platform".to_owned(),
            )
        };
        let found = if similar.is_empty() {
            "no similar project".to_owned()
        } else {
            similar
                .iter()
                .map(|m| {
                    format!(
                        "{} (similarity {:.2}: {})",
                        m.project,
                        m.similarity,
                        m.matched_terms.join(" ")
                    )
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        let p = self
            .projects(Role::Office)?
            .record_duplication_finding(pb::RecordDuplicationFindingRequest {
                request_id: String::new(),
                name: p.name.clone(),
                etag: p.etag,
                finding: Some(pb::DuplicationFinding {
                    verdict: verdict as i32,
                    overlapping_projects: similar.iter().map(|m| m.project.clone()).collect(),
                    reasons,
                    ..Default::default()
                }),
            })
            .await?
            .into_inner();
        self.say(format!(
            "Checking for duplicate construction, office found {found}, and recorded {}.",
            verdict.as_stored()
        ))?;
        Ok(p)
    }

    /// Office accepts the project for review; the panel's review runs to approval.
    async fn preliminary_review(
        &mut self,
        p: pb::Project,
    ) -> anyhow::Result<(pb::Project, spb::Review)> {
        let p = self
            .projects(Role::Office)?
            .accept_for_review(pb::AcceptForReviewRequest {
                request_id: String::new(),
                name: p.name.clone(),
                etag: p.etag,
                panel: software_and_network_panel(),
            })
            .await?
            .into_inner();
        self.say(format!("Office accepted it for preliminary review ({}), naming the panel: 3 software and 2 network experts with alternates. The scheduling service and the registry checked the panel first; the projects service now asks for the review through its outbox.", state(&p)))?;
        let review = self
            .review(
                &p.name,
                spb::ReviewStage::PreliminaryReview,
                spb::ReviewDecision::Approved,
                true,
            )
            .await?;
        let p = self
            .project_when(&p.name, pb::ProjectState::Approved, "the review's outcome")
            .await?;
        self.say(format!("The scheduling service reported the conclusion; the project is now {} with an approved budget of {} fen.", state(&p), p.approved_budget_fen))?;
        Ok((p, review))
    }

    /// Waits for the project to reach `state` as the review's outcome arrives.
    async fn project_when(
        &self,
        name: &str,
        state: pb::ProjectState,
        what: &str,
    ) -> anyhow::Result<pb::Project> {
        wait_for(&format!("the project to hear {what}"), || async move {
            let p = self.project(name).await?;
            Ok((p.state == state as i32).then_some(p))
        })
        .await
    }

    /// The plan filed and recorded, the tender run and its result recorded.
    async fn plan_and_tender(
        &mut self,
        p: pb::Project,
        firms: &Firms,
    ) -> anyhow::Result<pb::Project> {
        let today = govit_platform::time::beijing_today();
        let mut applicant = self.projects(Role::Applicant)?;
        let mut office = self.projects(Role::Office)?;
        let plan = self
            .upload(
                &p.name,
                pb::DocumentKind::ImplementationPlan,
                0,
                "implementation-plan.pdf",
                "implementation plan",
            )
            .await?;
        let p = applicant
            .file_implementation_plan(pb::FileImplementationPlanRequest {
                request_id: String::new(),
                name: p.name.clone(),
                etag: p.etag,
                plan: Some(pb::ImplementationPlan {
                    task_plan: "three phases".into(),
                    system_design: "service bus and data catalogue".into(),
                    equipment_selection: "domestic servers".into(),
                    schedule: "twelve months".into(),
                    plan_document: plan.name,
                }),
            })
            .await?
            .into_inner();
        let p = office
            .record_implementation_plan(pb::RecordImplementationPlanRequest {
                request_id: String::new(),
                name: p.name.clone(),
                etag: p.etag,
                comment: "recorded".into(),
            })
            .await?
            .into_inner();
        let p = applicant
            .start_tendering(pb::StartTenderingRequest {
                request_id: String::new(),
                name: p.name.clone(),
                etag: p.etag,
            })
            .await?
            .into_inner();
        let p = applicant
            .record_tender_result(pb::RecordTenderResultRequest {
                request_id: String::new(),
                name: p.name.clone(),
                etag: p.etag,
                result: Some(pb::TenderResult {
                    contractor: format!("organizations/{}", firms.contractor),
                    supervision_firm: format!("organizations/{}", firms.supervision),
                    contract_amount_fen: 265_000_000,
                    contract_date: date(today),
                    method: pb::TenderMethod::Open as i32,
                    method_justification: String::new(),
                    design_firm: format!("organizations/{}", firms.design),
                    announcement_date: date(today),
                    standards: Some(pb::ConstructionStandards {
                        design: vec!["GB/T 22239-2019 网络安全等级保护基本要求".into()],
                        construction: vec!["GB 50174-2017 数据中心设计规范".into()],
                        supervision: vec!["GB/T 19668.1-2014 信息技术服务 监理".into()],
                    }),
                }),
            })
            .await?
            .into_inner();
        self.say(format!("The plan was filed and recorded; by open tender against the national standards for security, data centres and IT supervision, Tianshan Systems won the contract for 2,650,000 yuan, designed by Xinjiang Design Institute: {}.", state(&p)))?;
        Ok(p)
    }

    /// Acceptance requested with its report, started with a panel and the units taking part,
    /// and passed.
    async fn acceptance(
        &mut self,
        p: pb::Project,
        firms: &Firms,
    ) -> anyhow::Result<(pb::Project, spb::Review)> {
        let report = self
            .upload(
                &p.name,
                pb::DocumentKind::AcceptanceReport,
                0,
                "acceptance-report.pdf",
                "construction summary, test and security assessment reports",
            )
            .await?;
        let p = self
            .projects(Role::Applicant)?
            .request_acceptance(pb::RequestAcceptanceRequest {
                request_id: String::new(),
                name: p.name.clone(),
                etag: p.etag,
                acceptance_report: report.name,
            })
            .await?
            .into_inner();
        let p = self
            .projects(Role::Office)?
            .start_acceptance(pb::StartAcceptanceRequest {
                request_id: String::new(),
                name: p.name.clone(),
                etag: p.etag,
                panel: vec![pb::PanelRequirement {
                    category: "software".into(),
                    count: 3,
                    alternates: 1,
                }],
                participating_units: [
                    &self.applicant_org,
                    &firms.contractor,
                    &firms.supervision,
                    &firms.design,
                ]
                .iter()
                .map(|code| format!("organizations/{code}"))
                .collect(),
            })
            .await?
            .into_inner();
        self.say(format!(
            "After construction the applicant requested acceptance with its report; office started it with the applying unit, the contractor, the supervision firm and the design institute taking part: {}.",
            state(&p)
        ))?;
        let review = self
            .review(
                &p.name,
                spb::ReviewStage::Acceptance,
                spb::ReviewDecision::Passed,
                false,
            )
            .await?;
        let p = self
            .project_when(
                &p.name,
                pb::ProjectState::Accepted,
                "the acceptance outcome",
            )
            .await?;
        self.say(format!("The project is {}.", state(&p)))?;
        Ok((p, review))
    }

    /// The finance bureau inspects the funds of the project under construction, in its own name.
    async fn finance_bureau_inspects(&mut self, p: &pb::Project) -> anyhow::Result<()> {
        let inspection = self
            .projects(Role::Supervisor)?
            .create_inspection(pb::CreateInspectionRequest {
                request_id: String::new(),
                parent: p.name.clone(),
                inspection: Some(pb::Inspection {
                    inspection_date: date(govit_platform::time::beijing_today()),
                    scopes: vec![
                        pb::InspectionScope::Funds as i32,
                        pb::InspectionScope::Budget as i32,
                    ],
                    participants: vec!["City Finance Bureau, budget division".into()],
                    ..Default::default()
                }),
            })
            .await?
            .into_inner();
        let body = pb::SupervisingBody::try_from(inspection.body)
            .map(|b| b.as_stored())
            .unwrap_or("?");
        self.say(format!(
            "The finance bureau inspected the contract's funds and budget in its own name ({body}): {} findings.",
            inspection.findings.len()
        ))?;
        Ok(())
    }

    /// Office puts the accepted system into operation; its post-evaluation opens after the
    /// stable period.
    async fn start_operation(&mut self, p: pb::Project) -> anyhow::Result<pb::Project> {
        let p = self
            .projects(Role::Office)?
            .start_operation(pb::StartOperationRequest {
                request_id: String::new(),
                name: p.name.clone(),
                etag: p.etag,
                operation_start_date: None,
            })
            .await?
            .into_inner();
        let day = |d: &Option<Date>| {
            d.as_ref()
                .map(|d| format!("{}-{:02}-{:02}", d.year, d.month, d.day))
                .unwrap_or_default()
        };
        let promised: Vec<String> = p
            .promised_indicators
            .iter()
            .map(|i| {
                let at = if i.direction == pb::IndicatorDirection::AtMost as i32 {
                    "at most"
                } else {
                    "at least"
                };
                format!("{} {at} {} {}", i.name, i.target, i.unit)
            })
            .collect();
        self.say(format!(
            "Office put the system into operation on {}: {}. After the stable period its post-evaluation opens on {}, measuring what the study promised: {}.",
            day(&p.operation_start_date),
            state(&p),
            day(&p.post_evaluation_open_date),
            promised.join("; ")
        ))?;
        Ok(p)
    }

    /// Office commends the contractor, and anyone reads the published notice without a token.
    async fn publish_commendation(&mut self, p: &pb::Project, firms: &Firms) -> anyhow::Result<()> {
        let today = govit_platform::time::beijing_today();
        self.projects(Role::Office)?
            .create_organization_notice(pb::CreateOrganizationNoticeRequest {
                request_id: String::new(),
                parent: format!("organizations/{}", firms.contractor),
                notice: Some(pb::OrganizationNotice {
                    kind: pb::NoticeKind::Commendation as i32,
                    projects: vec![p.name.clone()],
                    grounds: "delivered the platform on schedule and under its contract".into(),
                    rule: "the city's rules on commending IT construction units".into(),
                    notice_date: date(today),
                    ..Default::default()
                }),
            })
            .await?;
        let published = govit_proto::projects::v1::public_notice_service_client::PublicNoticeServiceClient::new(
            lazy_channel(&self.t.projects, self.t.tls.as_ref())?,
        )
        .list_public_notices(pb::ListPublicNoticesRequest {
            organization: format!("organizations/{}", firms.contractor),
            ..Default::default()
        })
        .await?
        .into_inner();
        let notice = published
            .notices
            .first()
            .context("the commendation is not published")?;
        self.say(format!(
            "Office commended {} (通报表扬); anyone can read it without signing in: \"{}\", {}.",
            notice.organization_display_name, notice.grounds, p.name
        ))?;
        Ok(())
    }

    async fn audit_trail(&mut self, p: &pb::Project) -> anyhow::Result<Vec<pb::ProjectEvent>> {
        let events = self
            .projects(Role::Office)?
            .list_project_events(pb::ListProjectEventsRequest {
                parent: p.name.clone(),
                page_size: 200,
                ..Default::default()
            })
            .await?
            .into_inner()
            .events;
        self.say("Its audit trail:")?;
        for e in &events {
            let actor = e.actor.clone().unwrap_or_default();
            let to = match pb::ProjectState::try_from(e.to_state) {
                Ok(pb::ProjectState::Unspecified) | Err(_) => "",
                Ok(s) => s.as_stored(),
            };
            // The body a supervisor or office acted for, as the trail records it.
            let by = match pb::SupervisingBody::try_from(actor.body) {
                Ok(pb::SupervisingBody::Unspecified) | Err(_) => actor.role.clone(),
                Ok(body) => body.as_stored().to_lowercase().replace('_', " "),
            };
            self.detail(format!(
                "{:>2} {:<26} by {:<32} {}",
                e.sequence, e.action, by, to
            ))?;
        }
        Ok(events)
    }
}

fn state(p: &pb::Project) -> &'static str {
    pb::ProjectState::try_from(p.state)
        .map(|s| s.as_stored())
        .unwrap_or("?")
}
