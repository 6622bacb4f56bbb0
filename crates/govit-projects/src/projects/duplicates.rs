//! Avoiding duplicate construction: the projects like a project, found on demand and when it
//! is submitted, and office's finding, recorded in the preliminary review.

use govit_platform::{
    Caller, ServiceError, ServiceResult, Violations,
    time::{now, to_stored},
};
use govit_proto::{
    StoredEnum,
    projects::v1::{self as pb, ProjectState as S},
};
use sqlx::AssertSqlSafe;

use super::actions::{Step, StepData};
use crate::{
    ProjectsService,
    lifecycle::Action,
    model::{FindingRec, PlanRec, ProjectCode, ProjectRow, SimilarRec, from_json},
    similarity::{ProjectText, similar},
    validation::{self as check, MAX_REASON_CHARS},
};

/// Projects a new one could duplicate: everything submitted or further that is still meant
/// to be built or runs (drafts, withdrawn and rejected projects build nothing).
const NOT_CANDIDATES: [S; 3] = [S::Draft, S::Withdrawn, S::Rejected];

const DEFAULT_MATCHES: usize = 5;
const MAX_MATCHES: usize = 20;
const MAX_OVERLAPPING: usize = 20;

/// The text columns a comparison reads, and who and where the project is.
#[derive(Debug, sqlx::FromRow)]
struct Candidate {
    code: ProjectCode,
    applicant: String,
    #[sqlx(try_from = "String")]
    state: S,
    display_name: String,
    description: String,
    construction_content: String,
    equipment_selection: String,
    implementation_plan: Option<String>,
}

impl Candidate {
    /// What the project builds, in words. A stored plan that cannot be read leaves the plan
    /// out (and is logged): one corrupt row must not stop every submission.
    fn text(&self) -> ProjectText {
        let plan = match self
            .implementation_plan
            .as_deref()
            .map(|p| from_json::<PlanRec>("implementation_plan", p))
        {
            Some(Ok(p)) => [p.task_plan, p.system_design, p.equipment_selection].join("\n"),
            Some(Err(e)) => {
                tracing::error!(project = %self.code, error = %e, "unreadable implementation plan");
                String::new()
            }
            None => String::new(),
        };
        ProjectText {
            name: self.display_name.clone(),
            description: self.description.clone(),
            construction: self.construction_content.clone(),
            equipment: self.equipment_selection.clone(),
            plan,
        }
    }
}

/// Office's finding as the request gives it, checked.
pub(super) struct NewFinding {
    verdict: pb::DuplicationVerdict,
    overlapping: Vec<ProjectCode>,
    reasons: String,
}

impl TryFrom<pb::RecordDuplicationFindingRequest> for Step {
    type Error = ServiceError;
    fn try_from(req: pb::RecordDuplicationFindingRequest) -> ServiceResult<Step> {
        let mut v = Violations::new();
        let finding = req.finding.unwrap_or_default();
        let verdict = check::enum_value::<pb::DuplicationVerdict>(
            &mut v,
            "finding.verdict",
            finding.verdict,
            false,
        );
        let mut overlapping: Vec<ProjectCode> = Vec::new();
        if finding.overlapping_projects.len() > MAX_OVERLAPPING {
            v.add(
                "finding.overlapping_projects",
                format!("must name at most {MAX_OVERLAPPING} projects"),
            );
        }
        for (i, name) in finding
            .overlapping_projects
            .iter()
            .enumerate()
            .take(MAX_OVERLAPPING)
        {
            let field = format!("finding.overlapping_projects[{i}]");
            if let Some(code) = check::project_name_into(&mut v, &field, name) {
                if overlapping.contains(&code) || req.name == code.name() {
                    v.add(
                        field,
                        format!("{name} is named twice or is the project itself"),
                    );
                } else {
                    overlapping.push(code);
                }
            }
        }
        let reasons = finding.reasons.trim().to_owned();
        match verdict {
            Some(pb::DuplicationVerdict::None) => {
                if !finding.overlapping_projects.is_empty() {
                    v.add(
                        "finding.overlapping_projects",
                        "must be empty when no other project builds this",
                    );
                }
                check::optional_text(&mut v, "finding.reasons", &reasons, MAX_REASON_CHARS);
            }
            Some(_) => {
                if finding.overlapping_projects.is_empty() {
                    v.add(
                        "finding.overlapping_projects",
                        "must name the projects this one overlaps or duplicates",
                    );
                }
                check::text(&mut v, "finding.reasons", &reasons, MAX_REASON_CHARS);
            }
            None => {}
        }
        let data = match verdict {
            // Whether it spans units is read from the projects before the step is taken.
            Some(verdict) => StepData::Finding(
                Box::new(NewFinding {
                    verdict,
                    overlapping,
                    reasons,
                }),
                false,
            ),
            // The verdict's violation refuses the step.
            None => StepData::Nothing,
        };
        Step::finish(
            v,
            &req.name,
            &req.etag,
            Action::RecordDuplicationFinding,
            data,
        )
    }
}

impl NewFinding {
    /// The record, with whether any overlapping project is another unit's.
    pub(super) fn into_record(self, caller: &Caller, across_units: bool) -> FindingRec {
        FindingRec {
            verdict: self.verdict.as_stored().to_owned(),
            overlapping: self.overlapping.iter().map(|c| c.to_string()).collect(),
            reasons: self.reasons,
            across_units,
            recorded_by: caller.subject.clone(),
            record_time: to_stored(now()),
        }
    }

    pub(super) fn overlapping(&self) -> &[ProjectCode] {
        &self.overlapping
    }
}

impl ProjectsService {
    /// The projects most like `code`'s, at most `limit`.
    pub(super) async fn similar_to(
        &self,
        code: &ProjectCode,
        limit: usize,
    ) -> ServiceResult<Vec<SimilarRec>> {
        let excluded: Vec<String> = NOT_CANDIDATES
            .iter()
            .map(|s| format!("'{}'", s.as_stored()))
            .collect();
        let sql = format!(
            "SELECT code, applicant, state, display_name, description, construction_content, \
             equipment_selection, implementation_plan FROM projects \
             WHERE state NOT IN ({}) OR code = $1 ORDER BY code",
            excluded.join(", ")
        );
        let candidates = sqlx::query_as::<_, Candidate>(AssertSqlSafe(sql))
            .bind(code.to_owned())
            .fetch_all(&self.store.db.pool)
            .await?;
        let Some(query) = candidates.iter().position(|c| &c.code == code) else {
            return Err(ServiceError::not_found("project", code.name()));
        };
        let corpus: Vec<(usize, ProjectText)> = candidates
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.text()))
            .collect();
        Ok(similar(&corpus, query, limit)
            .into_iter()
            .map(|m| {
                let c = &candidates[m.key];
                SimilarRec {
                    code: c.code.to_string(),
                    display_name: c.display_name.clone(),
                    applicant: c.applicant.clone(),
                    state: c.state.as_stored().to_owned(),
                    similarity: m.similarity,
                    terms: m.terms,
                }
            })
            .collect())
    }

    pub(crate) async fn find_similar(
        &self,
        caller: &Caller,
        req: pb::FindSimilarProjectsRequest,
    ) -> ServiceResult<pb::FindSimilarProjectsResponse> {
        let code = check::parse_project_name("name", &req.name)?;
        let limit = match req.page_size {
            0 => DEFAULT_MATCHES,
            n if n < 0 => return Err(ServiceError::field("page_size", "must not be negative")),
            n => (n as usize).min(MAX_MATCHES),
        };
        self.visible_project(caller, &code).await?;
        let projects = self
            .similar_to(&code, limit)
            .await?
            .iter()
            .map(SimilarRec::to_proto)
            .collect::<anyhow::Result<_>>()
            .map_err(ServiceError::Internal)?;
        Ok(pb::FindSimilarProjectsResponse { projects })
    }

    /// Whether any of `overlapping` is another unit's than `project`'s; each must exist.
    pub(super) async fn across_units(
        &self,
        caller: &Caller,
        project: &ProjectRow,
        overlapping: &[ProjectCode],
    ) -> ServiceResult<bool> {
        let mut across = false;
        for code in overlapping {
            let other = self.visible_project(caller, code).await?;
            across |= other.applicant != project.applicant;
        }
        Ok(across)
    }
}
