//! The portfolio view: the supervised projects' totals, and those beyond their bands, over
//! their budget threshold, or late.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, Violations, db::Backend, time::from_stored,
};
use govit_proto::{
    StoredEnum,
    projects::v1::{self as pb, ProjectState as S},
};
use sqlx::AssertSqlSafe;

use super::{BUREAUS, MilestonesByProject, internal, risk::figures};
use crate::{
    ProjectsService,
    lifecycle::Action,
    model::{Fen, ProjectCode},
    store::{Arg, bind_all, sqlite_query},
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
    /// Whether the estimate counts `project` overdue; reported reviews are matched against
    /// the selection apart, since a reported project need not stand out otherwise.
    fn estimates(&self, project: &StandingOut) -> bool {
        match self {
            OverdueReviews::Reported(_) => false,
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

/// What the summary reads of a project that may stand out: one with milestones (its
/// variance), a changed budget, a duplication finding, or under preliminary review.
#[derive(Debug, sqlx::FromRow)]
struct StandingOut {
    code: ProjectCode,
    applicant: String,
    #[sqlx(try_from = "String")]
    state: S,
    original_approved_fen: Option<Fen>,
    approved_budget_fen: Option<Fen>,
    duplication_finding: Option<String>,
}

impl StandingOut {
    /// In the order `from_sqlite` reads them; `FromRow` finds them by name on PostgreSQL.
    const COLUMNS: &str = "p.code, p.applicant, p.state, p.original_approved_fen, \
        p.approved_budget_fen, p.duplication_finding";

    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<StandingOut> {
        Ok(StandingOut {
            code: ProjectCode::as_named(&row.get::<_, String>(0)?),
            applicant: row.get(1)?,
            state: govit_platform::sqlite_reader::get_converted::<String, _>(row, 2)?,
            original_approved_fen: row.get::<_, Option<i64>>(3)?.map(Fen::new),
            approved_budget_fen: row.get::<_, Option<i64>>(4)?.map(Fen::new),
            duplication_finding: row.get(5)?,
        })
    }

    fn name(&self) -> String {
        self.code.name()
    }
}

/// One state's count and totals, summed in SQL.
#[derive(Debug, sqlx::FromRow)]
struct StateTotals {
    state: String,
    projects: i64,
    /// Projects whose stored funding source is no known value: corrupt rows.
    unknown_sources: i64,
    approved_fen: Option<i64>,
    contracted_fen: Option<i64>,
    disbursed_fen: Option<i64>,
}

impl StateTotals {
    fn from_sqlite(row: &rusqlite::Row<'_>) -> rusqlite::Result<StateTotals> {
        Ok(StateTotals {
            state: row.get(0)?,
            projects: row.get(1)?,
            unknown_sources: row.get(2)?,
            approved_fen: row.get(3)?,
            contracted_fen: row.get(4)?,
            disbursed_fen: row.get(5)?,
        })
    }
}

/// The WHERE clause of the portfolio's projects, table `projects` as `p`: the query's
/// filters and the caller's remit, with their arguments from `$1`.
fn selection(
    filters: &[(&'static str, Arg)],
    remit: Option<&[pb::FundingSource]>,
) -> (String, Vec<Arg>) {
    let mut sql = String::from("1 = 1");
    let mut args = Vec::new();
    for (column, value) in filters {
        args.push(value.clone());
        sql.push_str(&format!(" AND p.{column} = ${}", args.len()));
    }
    if let Some(sources) = remit {
        let first = args.len() + 1;
        args.extend(sources.iter().map(|s| Arg::from(s.as_stored())));
        // An empty remit selects nothing, as `supervises` decides.
        sql.push_str(&if sources.is_empty() {
            " AND 1 = 0".to_owned()
        } else {
            format!(
                " AND p.funding_source IN ({})",
                crate::store::placeholders(first, sources.len())
            )
        });
    }
    (sql, args)
}

/// A read of the portfolio's snapshot: a statement, its arguments from `$1`.
type Statement = (String, Vec<Arg>);

/// What the summary reads of its projects, all from one snapshot of the database, so that its
/// counts and its lists agree even while projects change.
struct SelectionRead {
    totals: Vec<StateTotals>,
    standing_out: Vec<StandingOut>,
    /// Code, year and sequence of each project asked about (reported overdue reviews, overdue
    /// findings) that the selection holds.
    members: Vec<(String, i64, i64)>,
}

impl ProjectsService {
    /// The portfolio `query` names, within the caller's remit (a bureau's, or all).
    ///
    /// Counts and totals are summed by the database; only projects that may stand out are
    /// read, and of them only what decides it. At 100,000 projects reading every project
    /// whole took over a second (docs/BENCHMARKS.md).
    pub(crate) async fn portfolio_summary(
        &self,
        caller: &Caller,
        query: PortfolioQuery,
    ) -> ServiceResult<pb::PortfolioSummary> {
        let today = chrono::Utc::now().date_naive();
        // What other records say first: the reads of the projects then share one snapshot.
        let overdue = self.overdue_reviews(today).await?;
        let findings = self.findings_overdue_on(today).await?;
        let finding_codes: Vec<ProjectCode> = findings
            .iter()
            .filter_map(|f| {
                f.name
                    .strip_prefix("projects/")
                    .and_then(|rest| rest.split('/').next())
                    .map(ProjectCode::as_named)
            })
            .collect();
        let mut asked: BTreeSet<&ProjectCode> = finding_codes.iter().collect();
        if let OverdueReviews::Reported(reported) = &overdue {
            asked.extend(reported.iter());
        }

        let (selected, args) = selection(&query.filters, self.policy.remit_of(caller));
        // Every funding source a project may hold: one that is none of them is a corrupt row,
        // which would otherwise fall silently out of a bureau's remit.
        let sources: Vec<Arg> = std::iter::once(crate::model::Funding(None))
            .chain(
                (1..i32::from(u8::MAX))
                    .filter_map(|i| pb::FundingSource::try_from(i).ok())
                    .map(crate::model::Funding::from),
            )
            .map(|f| Arg::from(f.as_stored()))
            .collect();
        let mut totals_args = args.clone();
        let first_source = totals_args.len() + 1;
        let sources_count = sources.len();
        totals_args.extend(sources);
        let totals = (
            format!(
                "SELECT p.state, COUNT(*) AS projects, \
                 CAST(SUM(CASE WHEN p.funding_source IN ({}) THEN 0 ELSE 1 END) AS BIGINT) \
                     AS unknown_sources, \
                 CAST(SUM(p.approved_budget_fen) AS BIGINT) AS approved_fen, \
                 CAST(SUM(p.contract_amount_fen) AS BIGINT) AS contracted_fen, \
                 CAST(SUM(p.disbursed_fen) AS BIGINT) AS disbursed_fen \
                 FROM projects p WHERE {selected} GROUP BY p.state",
                crate::store::placeholders(first_source, sources_count)
            ),
            totals_args,
        );
        let mut standing_out_args = args.clone();
        standing_out_args.push(Arg::from(S::UnderPreliminaryReview.as_stored()));
        let under_review = standing_out_args.len();
        let standing_out = (
            format!(
                "SELECT {} FROM projects p WHERE {selected} AND (\
                 p.duplication_finding IS NOT NULL \
                 OR (p.original_approved_fen IS NOT NULL \
                     AND p.approved_budget_fen <> p.original_approved_fen) \
                 OR p.state = ${under_review} \
                 OR p.code IN (SELECT m.project_code FROM milestones m)) \
                 ORDER BY p.year, p.seq",
                StandingOut::COLUMNS
            ),
            standing_out_args,
        );
        let asked: Vec<&ProjectCode> = asked.into_iter().collect();
        // Well under either database's limit on parameters in one statement.
        let members = asked
            .chunks(500)
            .map(|chunk| {
                let mut chunk_args = args.clone();
                let first = chunk_args.len() + 1;
                chunk_args.extend(chunk.iter().map(|c| Arg::Text(c.to_string())));
                (
                    format!(
                        "SELECT p.code, p.year, p.seq FROM projects p WHERE {selected} \
                         AND p.code IN ({})",
                        crate::store::placeholders(first, chunk.len())
                    ),
                    chunk_args,
                )
            })
            .collect::<Vec<_>>();
        let read = self
            .read_selection(&totals, &standing_out, &members)
            .await?;

        let mut summary = pb::PortfolioSummary::default();
        let mut counts: BTreeMap<i32, i32> = BTreeMap::new();
        for t in &read.totals {
            let state = S::from_stored(&t.state).map_err(internal)?;
            if t.unknown_sources != 0 {
                return Err(internal(anyhow::anyhow!(
                    "{} stored funding sources are not known values",
                    t.unknown_sources
                )));
            }
            let count = i32::try_from(t.projects).map_err(internal)?;
            *counts.entry(state as i32).or_default() += count;
            summary.project_count += count;
            summary.total_approved_fen += t.approved_fen.unwrap_or(0);
            summary.total_contracted_fen += t.contracted_fen.unwrap_or(0);
            summary.total_disbursed_fen += t.disbursed_fen.unwrap_or(0);
        }
        summary.counts = counts
            .into_iter()
            .map(|(state, count)| pb::StateCount { state, count })
            .collect();

        let milestones = self.milestones_where(&query.filters).await?;
        for p in &read.standing_out {
            self.tally(&mut summary, p, &milestones, &overdue)?;
        }
        summary.overlaps = overlaps(&read.standing_out)?;
        let mut members = read.members;
        members.sort_by_key(|(_, year, seq)| (*year, *seq));
        let members: Vec<ProjectCode> = members
            .into_iter()
            .map(|(code, _, _)| ProjectCode::as_named(&code))
            .collect();
        if let OverdueReviews::Reported(reported) = &overdue {
            summary.overdue_reviews = members
                .iter()
                .filter(|code| reported.contains(*code))
                .map(ProjectCode::name)
                .collect();
        }
        let members: BTreeSet<ProjectCode> = members.into_iter().collect();
        summary.overdue_findings = finding_codes
            .iter()
            .filter(|code| members.contains(code))
            .count() as i32;
        Ok(summary)
    }

    /// Runs the summary's reads of its projects in one read transaction: on a SQLite reader,
    /// or through sqlx (`REPEATABLE READ` on PostgreSQL; a SQLite transaction reads one
    /// snapshot in WAL mode).
    async fn read_selection(
        &self,
        totals: &Statement,
        standing_out: &Statement,
        members: &[Statement],
    ) -> ServiceResult<SelectionRead> {
        let db = &self.store.db;
        if let Some(reader) = &db.reader {
            return reader.read_long(|c| -> ServiceResult<SelectionRead> {
                let tx = c.unchecked_transaction()?;
                let mut read = SelectionRead {
                    totals: sqlite_query(&tx, &totals.0, &totals.1, StateTotals::from_sqlite)?,
                    standing_out: sqlite_query(
                        &tx,
                        &standing_out.0,
                        &standing_out.1,
                        StandingOut::from_sqlite,
                    )?,
                    members: Vec::new(),
                };
                for (sql, args) in members {
                    read.members.extend(sqlite_query(&tx, sql, args, |row| {
                        Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                    })?);
                }
                tx.commit()?;
                Ok(read)
            });
        }
        let mut tx = db.pool.begin().await?;
        if db.backend == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        let mut read = SelectionRead {
            totals: bind_all(
                sqlx::query_as::<_, StateTotals>(AssertSqlSafe(totals.0.clone())),
                totals.1.clone(),
            )
            .fetch_all(&mut *tx)
            .await?,
            standing_out: bind_all(
                sqlx::query_as::<_, StandingOut>(AssertSqlSafe(standing_out.0.clone())),
                standing_out.1.clone(),
            )
            .fetch_all(&mut *tx)
            .await?,
            members: Vec::new(),
        };
        for (sql, args) in members {
            read.members.extend(
                bind_all(
                    sqlx::query_as::<_, (String, i64, i64)>(AssertSqlSafe(sql.clone())),
                    args.clone(),
                )
                .fetch_all(&mut *tx)
                .await?,
            );
        }
        tx.commit().await?;
        Ok(read)
    }

    /// Adds one project's figures to the summary, and lists it where it stands out.
    fn tally(
        &self,
        summary: &mut pb::PortfolioSummary,
        p: &StandingOut,
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
        if overdue.estimates(p) {
            summary.overdue_reviews.push(p.name());
        }
        Ok(())
    }

    /// The scheduling service knows the real deadlines; alone, this service estimates them.
    async fn overdue_reviews(&self, today: NaiveDate) -> ServiceResult<OverdueReviews> {
        Ok(match self.overdue_review_projects().await? {
            Some(projects) => OverdueReviews::Reported(projects),
            None => OverdueReviews::Estimated {
                accepted: self.review_starts().await?,
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

/// The projects office found to overlap or duplicate others, those across units first.
fn overlaps(projects: &[StandingOut]) -> ServiceResult<Vec<pb::ProjectOverlap>> {
    let mut overlaps = Vec::new();
    for p in projects {
        let Some(finding) = p
            .duplication_finding
            .as_deref()
            .map(|f| crate::model::from_json::<crate::model::FindingRec>("duplication_finding", f))
            .transpose()
            .map_err(internal)?
        else {
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
