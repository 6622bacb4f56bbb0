//! Opening a draw: the request checked, the pool read and filtered by the eligibility rules,
//! and the input frozen with the server's commitment, all before anyone can see an outcome.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use govit_draw::{DrawInput, Exclusion, Requirement, draw};
use govit_platform::{
    Caller, ServiceError, ServiceResult, Violations,
    error::PreconditionViolation,
    idempotency,
    time::{now, to_stored},
};
use govit_proto::{StoredEnum, experts::v1 as pb};

use super::{DrawId, OPENED};
use crate::{
    DrawPolicy, ExpertsService,
    eligibility::{Rules, exclusion_reasons},
    internal,
    model::{DrawRow, ManualExclusion, to_json},
    validation::{self as check, parse_name},
};

/// A draw to open. `problems` holds what is wrong with the request; whether its categories
/// and excluded experts exist is checked against the store only when nothing else is wrong.
pub struct OpenDraw {
    request: pb::OpenDrawRequest,
    project_id: String,
    stage: pb::ReviewStage,
    /// In category order, as draw-v1 wants them.
    requirements: Vec<Requirement>,
    excluded_organizations: BTreeSet<String>,
    manual: Vec<ManualExclusion>,
    meeting_date: Option<NaiveDate>,
    supplements: Option<DrawId>,
    problems: Violations,
}

impl TryFrom<(pb::OpenDrawRequest, &DrawPolicy)> for OpenDraw {
    type Error = ServiceError;

    fn try_from((req, policy): (pb::OpenDrawRequest, &DrawPolicy)) -> ServiceResult<Self> {
        let mut v = Violations::new();
        let project_id = v.resource_id("project", &req.project, "projects", false);
        let stage = match pb::ReviewStage::try_from(req.stage) {
            Ok(pb::ReviewStage::Unspecified) | Err(_) => {
                v.add("stage", "must be PRELIMINARY_REVIEW, IMPLEMENTATION_PLAN_REVIEW, ACCEPTANCE or POST_EVALUATION");
                pb::ReviewStage::Unspecified
            }
            Ok(stage) => stage,
        };
        check_requirements(&mut v, &req.requirements, policy.max_alternates);
        for (i, org) in req.excluded_organizations.iter().enumerate() {
            check::credit_code(&mut v, &format!("excluded_organizations[{i}]"), org);
        }
        for (i, e) in req.excluded_experts.iter().enumerate() {
            check::code(
                &mut v,
                &format!("excluded_experts[{i}].expert_id"),
                &e.expert_id,
            );
            check::text(
                &mut v,
                &format!("excluded_experts[{i}].reason"),
                &e.reason,
                500,
            );
        }
        let meeting_date = check::date(&mut v, "meeting_date", req.meeting_date.as_ref());
        let supplements = if req.supplements.is_empty() {
            None
        } else {
            match parse_name("supplements", &req.supplements, "draws") {
                Ok(id) => Some(DrawId(id)),
                Err(_) => {
                    v.add("supplements", "must be draws/{id}");
                    None
                }
            }
        };
        if !req.request_id.is_empty() {
            check::code(&mut v, "request_id", &req.request_id);
        }
        let mut requirements: Vec<Requirement> = req
            .requirements
            .iter()
            .map(|r| Requirement {
                category: r.category.clone(),
                count: r.count as u64,
                alternates: r.alternates as u64,
            })
            .collect();
        requirements.sort_by(|a, b| a.category.cmp(&b.category));
        Ok(OpenDraw {
            project_id,
            stage,
            requirements,
            excluded_organizations: req
                .excluded_organizations
                .iter()
                .map(|o| o.trim().to_owned())
                .collect(),
            manual: req
                .excluded_experts
                .iter()
                .map(|e| ManualExclusion {
                    expert_id: e.expert_id.clone(),
                    reason: e.reason.clone(),
                })
                .collect(),
            meeting_date,
            supplements,
            problems: v,
            request: req,
        })
    }
}

fn check_requirements(
    v: &mut Violations,
    requirements: &[pb::PanelRequirement],
    max_alternates: u32,
) {
    if requirements.is_empty() {
        v.add("requirements", "must name at least one category");
    }
    let mut seen = BTreeSet::new();
    for (i, r) in requirements.iter().enumerate() {
        check::code(v, &format!("requirements[{i}].category"), &r.category);
        if !seen.insert(r.category.as_str()) {
            v.add(format!("requirements[{i}].category"), "appears twice");
        }
        if !(1..=50).contains(&r.count) {
            v.add(
                format!("requirements[{i}].count"),
                "must be between 1 and 50",
            );
        }
        if r.alternates < 0 || r.alternates as u32 > max_alternates {
            v.add(
                format!("requirements[{i}].alternates"),
                format!("must be between 0 and {max_alternates}"),
            );
        }
    }
}

/// Who may be drawn for each category, and who may not and why.
struct Eligible {
    candidates: BTreeMap<String, Vec<String>>,
    exclusions: Vec<Exclusion>,
    pool_size: usize,
}

impl ExpertsService {
    /// Opens a draw; with `validate_only`, checks everything opening would (including that
    /// the pool can supply the panel) and answers what would be opened.
    pub(crate) async fn open_new_draw(
        &self,
        caller: &Caller,
        mut open: OpenDraw,
    ) -> ServiceResult<pb::Draw> {
        let mut problems = std::mem::take(&mut open.problems);
        self.check_draw_references(&mut problems, &open.request)
            .await?;
        problems.finish()?;
        let Some(meeting_date) = open.meeting_date else {
            return Err(ServiceError::field("meeting_date", "is required"));
        };
        let req = &open.request;
        let validate_only = req.validate_only;
        let key =
            (!req.request_id.is_empty()).then(|| idempotency::scoped_key(caller, &req.request_id));
        let hash = idempotency::request_hash(&pb::OpenDrawRequest {
            validate_only: false,
            ..req.clone()
        });
        if !validate_only
            && let Some(key) = &key
            && let Some(existing) = self.store.draw_by_request(key).await?
        {
            return self.draw_view(caller, same_request(existing, &hash)?).await;
        }
        let eligible = self.eligible(&open, meeting_date).await?;
        refuse_short(&open.requirements, &eligible.candidates)?;
        if validate_only {
            // What would be opened: nothing of it exists yet.
            return Ok(pb::Draw {
                project: req.project.clone(),
                stage: req.stage,
                meeting_date: req.meeting_date,
                supplements: req.supplements.clone(),
                witness_required: self.policy.require_witness,
                ..Default::default()
            });
        }
        let pool_size = eligible.pool_size;
        let row = frozen_draw(open, meeting_date, eligible, key, hash)?;
        if !self.store.insert_draw(&row).await? {
            // The same request raced us and won: answer with its draw.
            let key = row.request_id.clone().unwrap_or_default();
            let existing = self
                .store
                .draw_by_request(&key)
                .await?
                .ok_or_else(|| internal(anyhow::anyhow!("draw of request {key} vanished")))?;
            let existing = same_request(existing, &row.request_hash)?;
            return self.draw_view(caller, existing).await;
        }
        tracing::info!(draw = %row.id, project = %row.project_id, pool = pool_size, "draw opened");
        self.draw_view(caller, row).await
    }

    /// Adds violations for categories and excluded experts the registry does not have,
    /// unless the request is wrong already.
    async fn check_draw_references(
        &self,
        v: &mut Violations,
        req: &pb::OpenDrawRequest,
    ) -> ServiceResult<()> {
        let categories: Vec<String> = req
            .requirements
            .iter()
            .map(|r| r.category.clone())
            .collect();
        if v.is_empty() {
            self.check_categories(v, |i| format!("requirements[{i}].category"), &categories)
                .await?;
        }
        let manual_ids: Vec<String> = req
            .excluded_experts
            .iter()
            .map(|e| e.expert_id.clone())
            .collect();
        if v.is_empty() && !manual_ids.is_empty() {
            let known: BTreeSet<String> = self
                .store
                .existing_expert_ids(&manual_ids)
                .await?
                .into_iter()
                .collect();
            for (i, id) in manual_ids.iter().enumerate() {
                if !known.contains(id) {
                    v.add(
                        format!("excluded_experts[{i}].expert_id"),
                        format!("no expert {id}"),
                    );
                }
            }
        }
        Ok(())
    }

    /// Every expert a draw and the draws it supplements took, selected, alternate or replaced.
    async fn already_drawn(&self, mut id: Option<DrawId>) -> ServiceResult<BTreeSet<String>> {
        let mut drawn = BTreeSet::new();
        while let Some(current) = id {
            let d = self.draw_or_not_found(&current).await?;
            for p in d.panel().map_err(internal)?.into_values() {
                drawn.extend(p.selected.into_iter().chain(p.alternates).chain(p.replaced));
            }
            id = d.supplemented();
        }
        Ok(drawn)
    }

    /// The experts a supplementary draw must not take again; none for a first draw.
    async fn drawn_before(&self, supplements: Option<&DrawId>) -> ServiceResult<BTreeSet<String>> {
        let Some(parent) = supplements else {
            return Ok(BTreeSet::new());
        };
        let p = self.draw_or_not_found(parent).await?;
        if !p.has_panel().map_err(internal)? {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                p.name(),
                format!(
                    "{} is {}; only an executed draw can be supplemented",
                    p.name(),
                    p.state.as_stored()
                ),
            ));
        }
        self.already_drawn(Some(parent.clone())).await
    }

    /// The pool of the requested categories, each expert a candidate or an exclusion with
    /// its reasons.
    async fn eligible(&self, open: &OpenDraw, meeting_date: NaiveDate) -> ServiceResult<Eligible> {
        let already_drawn = self.drawn_before(open.supplements.as_ref()).await?;
        let categories: Vec<String> = open
            .requirements
            .iter()
            .map(|r| r.category.clone())
            .collect();
        let workload = match self.policy.workload {
            Some(rule) => {
                let since = to_stored(now() - chrono::Duration::days(i64::from(rule.days)));
                Some((
                    self.store.selection_counts(&since).await?,
                    i64::from(rule.max_selections),
                ))
            }
            None => None,
        };
        let manual: BTreeSet<String> = open.manual.iter().map(|m| m.expert_id.clone()).collect();
        let rules = Rules {
            meeting_date,
            excluded_organizations: &open.excluded_organizations,
            manual: &manual,
            already_drawn: &already_drawn,
            workload: workload.as_ref().map(|(counts, max)| (counts, *max)),
        };
        let mut candidates: BTreeMap<String, Vec<String>> =
            categories.iter().map(|c| (c.clone(), Vec::new())).collect();
        let mut exclusions = Vec::new();
        let pool_size = self
            .store
            .each_in_pool(&categories, |expert| {
                let reasons = exclusion_reasons(&expert, &rules).map_err(internal)?;
                if reasons.is_empty() {
                    candidates
                        .entry(expert.category)
                        .or_default()
                        .push(expert.id);
                } else {
                    exclusions.push(Exclusion {
                        category: expert.category,
                        expert_id: expert.id,
                        reasons: reasons.iter().map(|r| r.as_stored().to_owned()).collect(),
                    });
                }
                Ok(())
            })
            .await?;
        for ids in candidates.values_mut() {
            ids.sort_unstable();
        }
        exclusions
            .sort_unstable_by(|a, b| (&a.category, &a.expert_id).cmp(&(&b.category, &b.expert_id)));
        Ok(Eligible {
            candidates,
            exclusions,
            pool_size,
        })
    }
}

/// Refuses a draw the pool cannot fill, naming every category short of experts.
fn refuse_short(
    requirements: &[Requirement],
    candidates: &BTreeMap<String, Vec<String>>,
) -> ServiceResult<()> {
    let short: Vec<(&Requirement, usize)> = requirements
        .iter()
        .map(|r| (r, candidates[&r.category].len()))
        .filter(|(r, eligible)| (*eligible as u64) < r.count)
        .collect();
    if short.is_empty() {
        return Ok(());
    }
    Err(ServiceError::FailedPrecondition {
        message: format!(
            "too few eligible experts: {}",
            short
                .iter()
                .map(|(r, eligible)| format!(
                    "{}: {eligible} eligible, {} needed",
                    r.category, r.count
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ),
        violations: short
            .iter()
            .map(|(r, eligible)| {
                PreconditionViolation::new(
                    "INSUFFICIENT_EXPERTS",
                    format!("categories/{}", r.category),
                    format!("{eligible} eligible, {} needed", r.count),
                )
            })
            .collect(),
    })
}

/// The new draw: its input frozen with the commitment to a fresh server secret.
fn frozen_draw(
    open: OpenDraw,
    meeting_date: NaiveDate,
    eligible: Eligible,
    request_id: Option<String>,
    request_hash: String,
) -> ServiceResult<DrawRow> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| internal(anyhow::anyhow!("no OS randomness: {e}")))?;
    let opened = now();
    let id = DrawId(format!("d-{}", uuid::Uuid::now_v7().simple()));
    let input = DrawInput {
        protocol: draw::PROTOCOL.into(),
        draw_id: id.0.clone(),
        project_id: open.project_id.clone(),
        stage: open.stage.as_stored().to_owned(),
        opened_at: opened.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        requirements: open.requirements,
        candidates: eligible.candidates,
        exclusions: eligible.exclusions,
        server_commitment: draw::commitment(&secret),
    };
    input
        .validate()
        .map_err(|e| internal(anyhow::anyhow!("built an invalid draw input: {e}")))?;
    let canonical = input.canonical_bytes().map_err(internal)?;
    let input_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&canonical));
    Ok(DrawRow {
        id,
        project_id: open.project_id,
        stage: open.stage,
        state: OPENED,
        meeting_date: meeting_date.to_string(),
        request_id,
        supplements: open.supplements.map(|s| s.0),
        input: String::from_utf8(canonical).map_err(internal)?,
        input_hash,
        server_secret: hex::encode(secret),
        witness_entropy: None,
        outcome: None,
        seed: None,
        result: None,
        record_hash: None,
        panel: None,
        manual_exclusions: to_json(&open.manual),
        cancel_reason: None,
        open_time: to_stored(opened),
        execute_time: None,
        version: 1,
        request_hash,
    })
}

/// The draw a repeated OpenDraw gets: the one its key opened, for the same request only.
fn same_request(existing: DrawRow, request_hash: &str) -> ServiceResult<DrawRow> {
    if existing.request_hash == request_hash {
        Ok(existing)
    } else {
        Err(ServiceError::request_id_reused("draw", &existing.name()))
    }
}
