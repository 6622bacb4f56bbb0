//! `govit demo`: walks one project from application to approval and on through acceptance,
//! against running services, printing each step in words a new user can follow. The system
//! integration test runs the same walk.

use std::{future::Future, io::Write, time::Duration};

use anyhow::{Context, bail};
use govit_platform::{
    Role,
    client::{BearerToken, lazy_channel},
    uscc,
};
use govit_proto::{
    experts::v1::{self as epb, expert_registry_service_client::ExpertRegistryServiceClient},
    google::r#type::Date,
    projects::v1::{self as pb, project_service_client::ProjectServiceClient},
    scheduling::v1::{
        self as spb, review_scheduling_service_client::ReviewSchedulingServiceClient,
    },
};
use tonic::{Code, service::interceptor::InterceptedService, transport::Channel};

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

fn token(
    key: &[u8],
    role: Role,
    org: Option<&str>,
    expert: Option<&str>,
    subject: &str,
) -> anyhow::Result<BearerToken> {
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
            lazy_channel(&self.t.projects)?,
            token(&self.t.key, role, org, None, &format!("demo-{role}"))?,
        ))
    }

    fn registry(&self, role: Role) -> anyhow::Result<Registry> {
        Ok(ExpertRegistryServiceClient::with_interceptor(
            lazy_channel(&self.t.experts)?,
            token(&self.t.key, role, None, None, &format!("demo-{role}"))?,
        ))
    }

    fn scheduling(&self, role: Role, expert: Option<&str>) -> anyhow::Result<Scheduling> {
        let subject = expert
            .map(|e| format!("expert-{e}"))
            .unwrap_or_else(|| format!("demo-{role}"));
        Ok(ReviewSchedulingServiceClient::with_interceptor(
            lazy_channel(&self.t.scheduling)?,
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

    /// One review from the request to the conclusion; returns the concluded review.
    async fn review(
        &mut self,
        project: &str,
        stage_enum: spb::ReviewStage,
        decision: spb::ReviewDecision,
        decline_one: bool,
    ) -> anyhow::Result<spb::Review> {
        let code = project.trim_start_matches("projects/").to_owned();
        let stage = stage_enum.short_name();
        let office = self.scheduling(Role::Office, None)?;
        let review = wait_for(
            "the scheduling service to receive the review request",
            || {
                let mut office = office.clone();
                let project = format!("projects/{code}");
                async move {
                    let list = office
                        .list_reviews(spb::ListReviewsRequest {
                            project,
                            stage: stage_enum as i32,
                            ..Default::default()
                        })
                        .await?
                        .into_inner();
                    Ok(list
                        .reviews
                        .into_iter()
                        .find(|r| r.state != spb::ReviewState::Concluded as i32))
                }
            },
        )
        .await?;
        let deadline = review.deadline.unwrap_or_default();
        self.say(format!(
            "The scheduling service opened review {} ({}): deadline {:04}-{:02}-{:02}, {} working days on calendar {}.",
            review.name,
            stage.to_lowercase().replace('_', " "),
            deadline.year,
            deadline.month,
            deadline.day,
            if stage == "PRELIMINARY_REVIEW" { 5 } else { 10 },
            review.calendar_version
        ))?;
        let review = wait_for("the panel's draw to be opened at the registry", || {
            let mut office = office.clone();
            let name = review.name.clone();
            async move {
                let r = office
                    .get_review(spb::GetReviewRequest { name })
                    .await?
                    .into_inner();
                Ok((!r.draws.is_empty()).then_some(r))
            }
        })
        .await?;
        let draw_name = review.draws[0].clone();
        let draw = self
            .registry(Role::Inspector)?
            .get_draw(epb::GetDrawRequest {
                name: draw_name.clone(),
            })
            .await?
            .into_inner();
        self.say(format!("The registry opened {draw_name}: the eligible pool is frozen, input hash {}…, server commitment {}….", &draw.input_hash[..16], &draw.server_commitment[..16]))?;
        if draw.witness_required && !draw.witnessed {
            let entropy = format!("dice rolled by the finance bureau for {code}: 3-5-6-2-4");
            self.registry(Role::Supervisor)?
                .submit_witness_entropy(epb::SubmitWitnessEntropyRequest {
                    name: draw_name.clone(),
                    witness_entropy: entropy.clone(),
                })
                .await?;
            self.say(format!(
                "A supervisor witnessed the draw with \"{entropy}\"."
            ))?;
        }
        let review = wait_for("the draw to be executed and the panel invited", || {
            let mut office = office.clone();
            let name = review.name.clone();
            async move {
                let r = office
                    .get_review(spb::GetReviewRequest { name })
                    .await?
                    .into_inner();
                Ok((!r.invitations.is_empty()).then_some(r))
            }
        })
        .await?;
        let record = self
            .registry(Role::Inspector)?
            .get_draw_record(epb::GetDrawRecordRequest {
                name: draw_name.clone(),
            })
            .await?
            .into_inner();
        let report = govit_draw::draw::verify(record.record_json.as_bytes())
            .map_err(|m| anyhow::anyhow!("the draw does not verify: {m}"))?;
        self.say(format!(
            "The draw executed; an inspector recomputed it from its record ({} checks passed):",
            report.checks.len()
        ))?;
        for check in &report.checks {
            self.detail(check)?;
        }
        let invited: Vec<String> = review
            .invitations
            .iter()
            .map(|i| format!("{} ({})", i.expert_id, i.category))
            .collect();
        self.say(format!("Invitations went out to {}.", invited.join(", ")))?;

        let mut answered = std::collections::BTreeSet::new();
        if decline_one {
            let first = review.invitations[1].clone();
            self.scheduling(Role::Expert, Some(&first.expert_id))?
                .respond_to_invitation(spb::RespondToInvitationRequest {
                    name: first.name.clone(),
                    accept: false,
                    decline_reason: "travelling that week".into(),
                })
                .await?;
            answered.insert(first.expert_id.clone());
            self.say(format!("{} declined (travelling that week); the registry hands the place to the next alternate of {}.", first.expert_id, first.category))?;
        }
        let panel_size: i32 = review.panel.iter().map(|p| p.count).sum();
        // Every invited expert answers as their invitation arrives (the alternate too).
        let mut waited = 0;
        let review = loop {
            let r = office
                .clone()
                .get_review(spb::GetReviewRequest {
                    name: review.name.clone(),
                })
                .await?
                .into_inner();
            for i in r
                .invitations
                .iter()
                .filter(|i| i.state == spb::InvitationState::Pending as i32)
            {
                if answered.insert(i.expert_id.clone()) {
                    self.scheduling(Role::Expert, Some(&i.expert_id))?
                        .respond_to_invitation(spb::RespondToInvitationRequest {
                            name: i.name.clone(),
                            accept: true,
                            decline_reason: String::new(),
                        })
                        .await?;
                }
            }
            let confirmed = r
                .invitations
                .iter()
                .filter(|i| i.state == spb::InvitationState::Confirmed as i32)
                .count() as i32;
            if r.state == spb::ReviewState::PanelConfirmed as i32 && confirmed == panel_size {
                break r;
            }
            waited += 1;
            if waited > 600 {
                bail!("timed out after 60 s waiting for every panel member to answer");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        if decline_one {
            let replaced = review
                .invitations
                .iter()
                .filter(|i| i.state == spb::InvitationState::Confirmed as i32)
                .map(|i| i.expert_id.clone())
                .collect::<Vec<_>>();
            self.say(format!(
                "The whole panel confirmed: {}.",
                replaced.join(", ")
            ))?;
        } else {
            self.say("The whole panel confirmed.")?;
        }

        // The first free two-hour slot on a working day before the deadline.
        let mut calendar = self.scheduling(Role::Office, None)?;
        let mut day = chrono::Utc::now()
            .with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).context("offset")?)
            .date_naive();
        let mut scheduled = None;
        'days: for _ in 0..15 {
            let next = calendar
                .add_working_days(spb::AddWorkingDaysRequest {
                    date: date(day),
                    days: 1,
                })
                .await?
                .into_inner();
            day = govit_platform::time::date_from_proto(&next.date.unwrap_or_default())
                .context("date")?;
            for hour in [9, 11, 14, 16] {
                let start = day
                    .and_hms_opt(hour, 0, 0)
                    .context("time")?
                    .and_local_timezone(chrono::FixedOffset::east_opt(8 * 3600).context("offset")?)
                    .single()
                    .context("time")?;
                let end = start + chrono::Duration::hours(2);
                let ts = |t: chrono::DateTime<chrono::FixedOffset>| prost_types::Timestamp {
                    seconds: t.timestamp(),
                    nanos: 0,
                };
                let result = office
                    .clone()
                    .schedule_meeting(spb::ScheduleMeetingRequest {
                        name: review.name.clone(),
                        start_time: Some(ts(start)),
                        end_time: Some(ts(end)),
                        venue: "City IT Office, meeting room 3".into(),
                        online_link: String::new(),
                        reason: String::new(),
                    })
                    .await;
                match result {
                    Ok(_) => {
                        scheduled = Some(start);
                        break 'days;
                    }
                    Err(s)
                        if s.code() == Code::FailedPrecondition
                            && s.message().contains("booked") =>
                    {
                        continue;
                    }
                    Err(s)
                        if s.code() == Code::InvalidArgument
                            && s.message().contains("deadline") =>
                    {
                        bail!("no free slot before the deadline")
                    }
                    Err(s) if s.code() == Code::InvalidArgument => continue 'days,
                    Err(s) => return Err(s.into()),
                }
            }
        }
        let start = scheduled.context("no free meeting slot before the deadline")?;
        self.say(format!("Office scheduled the meeting for {} (Beijing time), a working day on or before the deadline.", start.format("%Y-%m-%d %H:%M")))?;

        let criteria: Vec<String> = if stage == "ACCEPTANCE" {
            ["completeness", "quality", "documentation", "use_of_funds"]
                .map(String::from)
                .to_vec()
        } else {
            [
                "necessity",
                "feasibility",
                "technical_soundness",
                "budget_reasonableness",
                "security",
            ]
            .map(String::from)
            .to_vec()
        };
        let review = office
            .clone()
            .get_review(spb::GetReviewRequest {
                name: review.name.clone(),
            })
            .await?
            .into_inner();
        for (n, i) in review
            .invitations
            .iter()
            .filter(|i| i.state == spb::InvitationState::Confirmed as i32)
            .enumerate()
        {
            let scores = criteria
                .iter()
                .enumerate()
                .map(|(k, c)| spb::CriterionScore {
                    criterion: c.clone(),
                    score: 78 + ((n + k) % 5) as i32 * 4,
                })
                .collect();
            self.scheduling(Role::Expert, Some(&i.expert_id))?
                .submit_opinion(spb::SubmitOpinionRequest {
                    review: review.name.clone(),
                    scores,
                    opinion: "sound plan; see the notes on backup capacity".into(),
                    recommendation: decision as i32,
                })
                .await?;
        }
        self.say(format!(
            "Each of the {} panel members submitted an opinion with scores on {}.",
            panel_size,
            criteria.join(", ")
        ))?;
        let chair = review.chair_expert_id.clone();
        let concluded = self
            .scheduling(Role::Expert, Some(&chair))?
            .record_conclusion(spb::RecordConclusionRequest {
                name: review.name.clone(),
                decision: decision as i32,
                summary: "The panel agrees.".into(),
            })
            .await?
            .into_inner();
        let c = concluded.conclusion.clone().unwrap_or_default();
        self.say(format!(
            "The chair, {chair}, recorded the conclusion: {} (panel average {:.2}).",
            decision.short_name(),
            f64::from(c.overall_average_centi) / 100.0
        ))?;
        for i in concluded
            .invitations
            .iter()
            .filter(|i| i.state == spb::InvitationState::Confirmed as i32)
            .take(1)
        {
            office
                .clone()
                .rate_expert(spb::RateExpertRequest {
                    name: review.name.clone(),
                    expert_id: i.expert_id.clone(),
                    rating: 5,
                    comment: "thorough".into(),
                })
                .await?;
        }
        Ok(concluded)
    }
}

/// Creates the demo's categories and experts unless they exist.
async fn seed_pool<W: Write>(d: &mut Demo<'_, W>) -> anyhow::Result<()> {
    let mut admin = d.registry(Role::RegistryAdmin)?;
    for (code, name) in [
        ("software", "Application software"),
        ("network", "Networks and security"),
    ] {
        match admin
            .create_category(epb::CreateCategoryRequest {
                category: Some(epb::Category {
                    code: code.into(),
                    display_name: name.into(),
                    ..Default::default()
                }),
            })
            .await
        {
            Ok(_) => {}
            Err(s) if s.code() == Code::AlreadyExists => {}
            Err(s) => return Err(s.into()),
        }
    }
    let mut created = 0;
    for i in 1..=14u32 {
        let category = if i <= 9 { "software" } else { "network" };
        let id = format!("demo-e{i:02}");
        let employer =
            uscc::with_check_character(&format!("91650100MA78{i:05}")).context("credit code")?;
        let id_number =
            govit_platform::resident_id::with_check_character(&format!("65010219750101{i:03}"))
                .context("id number")?;
        let expert = epb::Expert {
            expert_id: id.clone(),
            display_name: format!("Demo Expert {i}"),
            employer: Some(epb::Employer {
                credit_code: employer,
                name: format!("Consultancy {i}"),
            }),
            source: epb::ExpertSource::ItEnterprise as i32,
            title: "senior engineer".into(),
            categories: vec![category.into()],
            phone: format!("1390000{i:04}"),
            email: format!("{id}@experts.example"),
            id_number,
            appointment_start_date: Some(Date {
                year: 2025,
                month: 1,
                day: 1,
            }),
            appointment_end_date: Some(Date {
                year: 2029,
                month: 12,
                day: 31,
            }),
            ..Default::default()
        };
        match admin
            .create_expert(epb::CreateExpertRequest {
                expert: Some(expert),
            })
            .await
        {
            Ok(_) => created += 1,
            Err(s) if s.code() == Code::AlreadyExists => {}
            Err(s) => return Err(s.into()),
        }
    }
    d.say(format!("The registry admin keeps the pool: categories software and network, 14 experts ({created} new). ID numbers and phones stay masked for everyone else."))?;
    Ok(())
}

pub async fn run(t: &Targets, out: &mut impl Write) -> anyhow::Result<Outcome> {
    let suffix = chrono::Utc::now().timestamp_millis() % 100_000;
    let applicant_org =
        uscc::with_check_character(&format!("91650100MA79{suffix:05}")).context("credit code")?;
    let mut d = Demo {
        t,
        out,
        applicant_org: applicant_org.clone(),
        step: 0,
    };
    writeln!(
        d.out,
        "govit demo: one project from application to acceptance\n"
    )?;
    seed_pool(&mut d).await?;

    let mut office = d.projects(Role::Office)?;
    let contractor =
        uscc::with_check_character(&format!("91650100MA80{suffix:05}")).context("credit code")?;
    let firm =
        uscc::with_check_character(&format!("91650100MA81{suffix:05}")).context("credit code")?;
    for (code, name, kind) in [
        (
            &applicant_org,
            "City Big Data Bureau",
            pb::OrganizationKind::ApplyingUnit,
        ),
        (
            &contractor,
            "Tianshan Systems Co.",
            pb::OrganizationKind::Contractor,
        ),
        (
            &firm,
            "Kunlun Supervision Co.",
            pb::OrganizationKind::SupervisionFirm,
        ),
    ] {
        office
            .create_organization(pb::CreateOrganizationRequest {
                organization: Some(pb::Organization {
                    credit_code: code.clone(),
                    display_name: name.into(),
                    kind: kind as i32,
                    contacts: vec![pb::Contact {
                        name: "Li Na".into(),
                        title: "project lead".into(),
                        email: "lead@unit.example".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            })
            .await?;
    }
    d.say(format!("Office registered the applying unit (credit code {applicant_org}), a contractor and a supervision firm."))?;

    let mut applicant = d.projects(Role::Applicant)?;
    let today = chrono::Utc::now().date_naive();
    let p = applicant
        .create_project(pb::CreateProjectRequest {
            project: Some(pb::Project {
                display_name: "Government data-sharing platform".into(),
                applicant: format!("organizations/{applicant_org}"),
                category: "software".into(),
                description: "One platform for the bureaus to exchange data.".into(),
                planned_start_date: date(today + chrono::Duration::days(60)),
                planned_end_date: date(today + chrono::Duration::days(300)),
                estimated_investment_fen: 280_000_000,
                funding_source: pb::FundingSource::CityBudget as i32,
                contacts: vec![pb::Contact {
                    name: "Li Na".into(),
                    title: "project lead".into(),
                    email: "lead@unit.example".into(),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        })
        .await?
        .into_inner();
    d.say(format!(
        "The applicant created project {} \"{}\" (DRAFT), 2,800,000 yuan.",
        p.code, p.display_name
    ))?;
    let form = d
        .upload(
            &p.name,
            pb::DocumentKind::ApplicationForm,
            3,
            "application-form.pdf",
            "application form, sealed",
        )
        .await?;
    let study = d
        .upload(
            &p.name,
            pb::DocumentKind::FeasibilityStudyReport,
            0,
            "feasibility-study.pdf",
            "feasibility study report",
        )
        .await?;
    d.say(format!("It uploaded the application form (three sealed copies, SHA-256 {}…) and the feasibility study ({}…).", &form.sha256[..12], &study.sha256[..12]))?;
    let p = applicant
        .submit_project(pb::SubmitProjectRequest {
            name: p.name.clone(),
            etag: p.etag,
        })
        .await?
        .into_inner();
    d.say(format!("It submitted the project: {}.", state(&p)))?;
    let p = office
        .accept_for_review(pb::AcceptForReviewRequest {
            name: p.name.clone(),
            etag: p.etag,
            panel: vec![
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
            ],
        })
        .await?
        .into_inner();
    d.say(format!("Office accepted it for preliminary review ({}), naming the panel: 3 software and 2 network experts with alternates. The scheduling service and the registry checked the panel first; the projects service now asks for the review through its outbox.", state(&p)))?;
    let first = d
        .review(
            &p.name,
            spb::ReviewStage::PreliminaryReview,
            spb::ReviewDecision::Approved,
            true,
        )
        .await?;
    let p = wait_for("the project to hear the review's outcome", || {
        let d = &d;
        let name = p.name.clone();
        async move {
            let p = d.project(&name).await?;
            Ok((p.state == pb::ProjectState::Approved as i32).then_some(p))
        }
    })
    .await?;
    d.say(format!("The scheduling service reported the conclusion; the project is now {} with an approved budget of {} fen.", state(&p), p.approved_budget_fen))?;

    let plan = d
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
            name: p.name.clone(),
            etag: p.etag,
            comment: "recorded".into(),
        })
        .await?
        .into_inner();
    let p = applicant
        .start_tendering(pb::StartTenderingRequest {
            name: p.name.clone(),
            etag: p.etag,
        })
        .await?
        .into_inner();
    let p = applicant
        .record_tender_result(pb::RecordTenderResultRequest {
            name: p.name.clone(),
            etag: p.etag,
            result: Some(pb::TenderResult {
                contractor: format!("organizations/{contractor}"),
                supervision_firm: format!("organizations/{firm}"),
                contract_amount_fen: 265_000_000,
                contract_date: date(today),
            }),
        })
        .await?
        .into_inner();
    d.say(format!("The plan was filed and recorded, the tender won by Tianshan Systems for 2,650,000 yuan: {}.", state(&p)))?;
    let p = applicant
        .request_acceptance(pb::RequestAcceptanceRequest {
            name: p.name.clone(),
            etag: p.etag,
        })
        .await?
        .into_inner();
    let p = office
        .start_acceptance(pb::StartAcceptanceRequest {
            name: p.name.clone(),
            etag: p.etag,
            panel: vec![pb::PanelRequirement {
                category: "software".into(),
                count: 3,
                alternates: 1,
            }],
        })
        .await?
        .into_inner();
    d.say(format!(
        "After construction the applicant requested acceptance; office started it: {}.",
        state(&p)
    ))?;
    let second = d
        .review(
            &p.name,
            spb::ReviewStage::Acceptance,
            spb::ReviewDecision::Passed,
            false,
        )
        .await?;
    let p = wait_for("the project to hear the acceptance outcome", || {
        let d = &d;
        let name = p.name.clone();
        async move {
            let p = d.project(&name).await?;
            Ok((p.state == pb::ProjectState::Accepted as i32).then_some(p))
        }
    })
    .await?;
    d.say(format!("The project is {}.", state(&p)))?;
    let events = office
        .list_project_events(pb::ListProjectEventsRequest {
            parent: p.name.clone(),
            page_size: 200,
            ..Default::default()
        })
        .await?
        .into_inner()
        .events;
    d.say("Its audit trail:")?;
    for e in &events {
        let actor = e.actor.clone().unwrap_or_default();
        let to = match pb::ProjectState::try_from(e.to_state) {
            Ok(pb::ProjectState::Unspecified) | Err(_) => "",
            Ok(s) => s.as_str_name().trim_start_matches("PROJECT_STATE_"),
        };
        d.detail(format!(
            "{:>2} {:<26} by {:<12} {}",
            e.sequence, e.action, actor.role, to
        ))?;
    }
    writeln!(
        d.out,
        "\nDone: {} went from DRAFT to ACCEPTED through two drawn, witnessed and verified panels.",
        p.code
    )?;
    Ok(Outcome {
        project: p,
        events,
        reviews: vec![first, second],
        verified_draws: 2,
    })
}

fn state(p: &pb::Project) -> &'static str {
    pb::ProjectState::try_from(p.state)
        .map(|s| s.as_str_name().trim_start_matches("PROJECT_STATE_"))
        .unwrap_or("?")
}
