//! The portfolio view: the supervised projects' totals, and those beyond their bands, over
//! their budget threshold, or late.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use govit_platform::{Caller, Role, ServiceError, ServiceResult, Violations, time::from_stored};
use govit_proto::{
    StoredEnum,
    projects::v1::{self as pb, ProjectState as S},
};

use super::{BUREAUS, MilestonesByProject, internal, risk::figures};
use crate::{
    ProjectsService,
    lifecycle::Action,
    model::{Fen, ProjectCode, ProjectRow},
    store::Arg,
    validation as check,
    variance::{self, Color},
    workdays,
};

/// Which projects the portfolio covers, checked: a year, an applicant, a category, or all.
pub(crate) struct PortfolioQuery {
    filters: Vec<(&'static str, Arg)>,
}

impl PortfolioQuery {
    pub(crate) const ROLES: &[Role] = &BUREAUS;
}

impl TryFrom<pb::GetPortfolioSummaryRequest> for PortfolioQuery {
    type Error = ServiceError;

    fn try_from(req: pb::GetPortfolioSummaryRequest) -> ServiceResult<Self> {
        let mut v = Violations::new();
        if req.year != 0 && !(2000..=2100).contains(&req.year) {
            v.add("year", "must be 0 (all) or a year between 2000 and 2100");
        }
        let org = if req.organization.is_empty() {
            None
        } else {
            check::org_name(&mut v, "organization", &req.organization)
        };
        if !req.category.is_empty() && !govit_platform::validate::is_code(&req.category) {
            v.add(
                "category",
                "must be 1 to 64 characters of A-Z a-z 0-9 . _ -",
            );
        }
        v.finish()?;
        let mut filters = Vec::new();
        if req.year != 0 {
            filters.push(("year", Arg::Int(i64::from(req.year))));
        }
        if let Some(o) = &org {
            filters.push(("applicant", Arg::Text(o.to_string())));
        }
        if !req.category.is_empty() {
            filters.push(("category", Arg::Text(req.category)));
        }
        Ok(Self { filters })
    }
}

/// When reviews are overdue: as the scheduling service reports them, or, alone, estimated
/// from when each project was accepted for review.
enum OverdueReviews {
    Reported(BTreeSet<ProjectCode>),
    Estimated {
        accepted: BTreeMap<ProjectCode, NaiveDate>,
        today: NaiveDate,
        deadline_working_days: u32,
    },
}

impl OverdueReviews {
    fn includes(&self, project: &ProjectRow) -> bool {
        match self {
            OverdueReviews::Reported(projects) => projects.contains(&project.code),
            OverdueReviews::Estimated {
                accepted,
                today,
                deadline_working_days,
            } => {
                project.state == S::UnderPreliminaryReview
                    && accepted.get(&project.code).is_some_and(|start| {
                        workdays::add_working_days(*start, *deadline_working_days) < *today
                    })
            }
        }
    }
}

impl ProjectsService {
    /// The portfolio `query` names, within the caller's remit (a bureau's, or all).
    pub(crate) async fn portfolio_summary(
        &self,
        caller: &Caller,
        query: PortfolioQuery,
    ) -> ServiceResult<pb::PortfolioSummary> {
        let milestones = self.milestones_where(&query.filters).await?;
        let mut projects = self
            .store
            .list_projects(query.filters, None, false, i64::MAX / 2)
            .await?;
        projects.retain(|p| self.policy.supervises(caller, p));
        let codes: BTreeSet<&str> = projects.iter().map(|p| p.code.as_str()).collect();
        let today = chrono::Utc::now().date_naive();
        let overdue = self.overdue_reviews(today).await?;
        let mut counts: BTreeMap<i32, i32> = BTreeMap::new();
        let mut summary = pb::PortfolioSummary {
            project_count: projects.len() as i32,
            ..Default::default()
        };
        for p in &projects {
            *counts.entry(p.state as i32).or_default() += 1;
            self.tally(&mut summary, p, &milestones, &overdue)?;
        }
        summary.total_approved_fen = total(&projects, |p| p.approved_budget_fen);
        summary.total_contracted_fen = total(&projects, |p| p.contract_amount_fen);
        summary.total_disbursed_fen = total(&projects, |p| Some(p.disbursed_fen));
        summary.overlaps = overlaps(&projects)?;
        summary.counts = counts
            .into_iter()
            .map(|(state, count)| pb::StateCount { state, count })
            .collect();
        summary.overdue_findings = self
            .findings_overdue_on(today)
            .await?
            .iter()
            .filter(|f| {
                f.name
                    .strip_prefix("projects/")
                    .and_then(|rest| rest.split('/').next())
                    .is_some_and(|code| codes.contains(code))
            })
            .count() as i32;
        Ok(summary)
    }

    /// Adds one project's figures to the summary, and lists it where it stands out.
    fn tally(
        &self,
        summary: &mut pb::PortfolioSummary,
        p: &ProjectRow,
        milestones: &MilestonesByProject,
        overdue: &OverdueReviews,
    ) -> ServiceResult<()> {
        let ms = milestones.of(&p.code);
        if variance::variance(&figures(&ms)?, self.policy.bands).color != Color::Green {
            summary.beyond_variance_bands.push(p.name());
        }
        if let (Some(original), Some(approved)) = (p.original_approved_fen, p.approved_budget_fen)
            && variance::beyond_threshold(original, approved, self.policy.budget_threshold_bp)
        {
            summary.beyond_budget_threshold.push(p.name());
        }
        if overdue.includes(p) {
            summary.overdue_reviews.push(p.name());
        }
        Ok(())
    }

    /// The scheduling service knows the real deadlines; alone, this service estimates them.
    async fn overdue_reviews(&self, today: NaiveDate) -> ServiceResult<OverdueReviews> {
        // Both are read, as before, so a failure of either is reported whichever is used.
        let accepted = self.review_starts().await?;
        Ok(match self.overdue_review_projects().await? {
            Some(projects) => OverdueReviews::Reported(projects),
            None => OverdueReviews::Estimated {
                accepted,
                today,
                deadline_working_days: self.policy.review_deadline_working_days,
            },
        })
    }

    /// Projects whose preliminary review is past its deadline, as the scheduling service
    /// reports them; None when it is not configured.
    async fn overdue_review_projects(&self) -> ServiceResult<Option<BTreeSet<ProjectCode>>> {
        use govit_proto::scheduling::v1 as spb;
        let Some(calendar) = &self.calendar else {
            return Ok(None);
        };
        let mut out = BTreeSet::new();
        let mut token = String::new();
        loop {
            let page = calendar
                .clone()
                .list_reviews(spb::ListReviewsRequest {
                    overdue_only: true,
                    page_size: 200,
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await
                .map_err(|s| ServiceError::from_peer("review scheduling service", s))?
                .into_inner();
            out.extend(page.reviews.into_iter().filter_map(|r| {
                r.project
                    .strip_prefix("projects/")
                    .map(ProjectCode::as_named)
            }));
            if page.next_page_token.is_empty() {
                return Ok(Some(out));
            }
            token = page.next_page_token;
        }
    }

    /// When each project was last accepted for review (UTC date of the event).
    async fn review_starts(&self) -> ServiceResult<BTreeMap<ProjectCode, NaiveDate>> {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT resource, occur_time FROM audit_events WHERE action = $1 ORDER BY occur_time",
        )
        .bind(Action::AcceptForReview.name())
        .fetch_all(&self.store.db.pool)
        .await?;
        let mut out = BTreeMap::new();
        for (resource, at) in rows {
            let day = from_stored(&at).map_err(internal)?.date_naive();
            out.insert(
                ProjectCode::as_named(resource.trim_start_matches("projects/")),
                day,
            );
        }
        Ok(out)
    }
}

/// The sum of one figure over the projects, as the wire carries it; a project without the
/// figure adds nothing.
/// The projects office found to overlap or duplicate others, those across units first.
fn overlaps(projects: &[ProjectRow]) -> ServiceResult<Vec<pb::ProjectOverlap>> {
    let mut overlaps = Vec::new();
    for p in projects {
        let Some(finding) = p.duplication_finding().map_err(internal)? else {
            continue;
        };
        if finding.verdict == pb::DuplicationVerdict::None.as_stored() {
            continue;
        }
        overlaps.push(pb::ProjectOverlap {
            project: p.name(),
            applicant: crate::model::org_name(&p.applicant),
            finding: Some(finding.to_proto().map_err(internal)?),
        });
    }
    overlaps.sort_by_key(|o| !o.finding.as_ref().is_some_and(|f| f.across_units));
    Ok(overlaps)
}

fn total(projects: &[ProjectRow], figure: impl Fn(&ProjectRow) -> Option<Fen>) -> i64 {
    projects.iter().filter_map(figure).sum::<Fen>().get()
}
