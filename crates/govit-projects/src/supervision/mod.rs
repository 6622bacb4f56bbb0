//! Supervision: budget control, disbursements, milestones and progress, variance and risk,
//! monthly snapshots, inspections, notices and the portfolio view. Every change writes its
//! audit event in the same transaction; each file keeps the SQL of its own tables.

mod budget;
mod disbursements;
mod inspections;
mod milestones;
mod notices;
mod portfolio;
mod progress;
mod risk;
mod snapshots;

use chrono::NaiveDate;
use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, Tx, Violations,
    time::{now, to_stored},
};
use govit_proto::{StoredEnum, projects::v1 as pb};
use sqlx::AssertSqlSafe;

use crate::{
    ProjectsService,
    lifecycle::TERMINAL,
    model::{ProjectCode, ProjectRow},
    store::{NewEvent, project_event},
    validation as check,
    variance::Color,
};

pub(crate) use budget::{BaselineSource, BudgetDecision, NewBudgetChange};
pub(crate) use disbursements::NewDisbursement;
pub(crate) use inspections::{NewInspection, OverdueFindingsQuery, Rectification};
pub use milestones::{MilestoneRow, MilestonesByProject};
pub(crate) use milestones::{MilestoneUpdate, NewMilestone};
pub(crate) use notices::{NewNotice, PublicNoticeQuery, RECORD_READERS};
pub(crate) use portfolio::PortfolioQuery;
pub(crate) use progress::{NewProgressReport, ProgressReview};
pub(crate) use risk::NewRiskRating;
pub(crate) use snapshots::{SnapshotMonth, SnapshotQuery};

/// The supervising bureaus: office, supervisors and inspectors.
pub(crate) const BUREAUS: [Role; 3] = [Role::Office, Role::Supervisor, Role::Inspector];

/// Who keeps a project's own supervision records (budget changes, disbursements, milestones,
/// rectifications): the applicant for its own projects, and office.
pub(crate) const KEEPERS: [Role; 2] = [Role::Applicant, Role::Office];

fn internal(e: impl Into<anyhow::Error>) -> ServiceError {
    ServiceError::Internal(e.into())
}

/// The next number of a sequence kept per parent in `table` (the rows whose `parent_column`
/// is `parent`), numbered from 1. Such rows are only ever inserted, so the next number is one
/// more than their count. Call it in the write transaction that inserts the row: the writer
/// lock serialises appenders, and the table's primary key refuses a duplicate regardless.
/// `table` and `parent_column` are identifiers of this program, never input.
pub(crate) async fn next_sequence(
    tx: &mut Tx,
    table: &'static str,
    parent_column: &'static str,
    parent: &str,
) -> ServiceResult<i64> {
    let sql = format!("SELECT COUNT(*) FROM {table} WHERE {parent_column} = $1");
    let count: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(parent.to_owned())
        .fetch_one(&mut **tx)
        .await?;
    Ok(count + 1)
}

fn color_proto(c: Color) -> pb::RiskColor {
    match c {
        Color::Green => pb::RiskColor::Green,
        Color::Yellow => pb::RiskColor::Yellow,
        Color::Red => pb::RiskColor::Red,
    }
}

/// A date field of a request; `required` ones are reported when absent.
fn date_field(
    v: &mut Violations,
    field: &str,
    d: Option<&govit_proto::google::r#type::Date>,
    required: bool,
) -> Option<NaiveDate> {
    match d {
        None if required => {
            v.add(field, "is required");
            None
        }
        None => None,
        Some(_) => check::date(v, field, d),
    }
}

/// A resource's id, new for each resource this part creates.
fn new_id() -> String {
    uuid::Uuid::now_v7().simple().to_string()
}

impl ProjectsService {
    /// The project `code` for a new record by `caller`, whose role the handler has checked:
    /// visible to the caller (applicants: their own), and in none of the terminal states.
    async fn open_project(&self, caller: &Caller, code: &ProjectCode) -> ServiceResult<ProjectRow> {
        let project = self.visible_project(caller, code).await?;
        if TERMINAL.contains(&project.state) {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                project.name(),
                format!("{} is {}", project.name(), project.state.as_stored()),
            ));
        }
        Ok(project)
    }

    async fn audit(
        tx: &mut Tx,
        code: &ProjectCode,
        caller: &Caller,
        event: NewEvent,
    ) -> ServiceResult<()> {
        project_event(tx, code, &to_stored(now()), caller, &event)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use std::path::PathBuf;

    use govit_platform::Db;

    /// The project every scratch database holds.
    pub const PROJECT: &str = "2026-0001";

    /// A fresh SQLite database with the service's schema, one organisation and one project;
    /// its files go when it is dropped.
    pub struct Scratch {
        pub db: Db,
        path: PathBuf,
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            for suffix in ["", "-wal", "-shm"] {
                let mut file = self.path.clone().into_os_string();
                file.push(suffix);
                let _ = std::fs::remove_file(file);
            }
        }
    }

    pub async fn scratch_db(name: &str) -> Scratch {
        let path = std::env::temp_dir().join(format!(
            "govit-supervision-{name}-{}.db",
            uuid::Uuid::now_v7().simple()
        ));
        let url = format!("sqlite://{}", path.display());
        let db = Db::connect_and_migrate(&url, &crate::MIGRATOR)
            .await
            .unwrap();
        for sql in [
            "INSERT INTO organizations (credit_code, display_name, kind, contacts, version, event_count, create_time, update_time) \
             VALUES ('91110000000000000X', 'A', 'APPLICANT', '[]', 1, 0, 't', 't')",
            "INSERT INTO projects (code, year, seq, display_name, applicant, category, description, estimated_investment_fen, \
             funding_source, contacts, state, review_panel, return_reasons, post_evaluation_summary, version, event_count, \
             create_time, update_time) VALUES ('2026-0001', 2026, 1, 'P', '91110000000000000X', 'c', '', 1, 'CITY_BUDGET', '[]', \
             'UNDER_CONSTRUCTION', '[]', '[]', '', 1, 0, 't', 't')",
        ] {
            sqlx::query(sql).execute(&db.pool).await.unwrap();
        }
        Scratch { db, path }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Fen;
    use crate::store::insert_baseline;

    #[tokio::test]
    async fn sequences_follow_the_rows_of_their_parent() {
        let scratch = testing::scratch_db("sequence").await;
        let db = &scratch.db;
        let mut tx = db.begin_write().await.unwrap();
        let first = next_sequence(
            &mut tx,
            "budget_baselines",
            "project_code",
            testing::PROJECT,
        )
        .await
        .unwrap();
        assert_eq!(first, 1);
        insert_baseline(
            &mut tx,
            &ProjectCode::parse(testing::PROJECT).unwrap(),
            first,
            Fen::new(10),
            BaselineSource::Approval,
            None,
            "r",
            "t",
        )
        .await
        .unwrap();
        assert_eq!(
            next_sequence(
                &mut tx,
                "budget_baselines",
                "project_code",
                testing::PROJECT
            )
            .await
            .unwrap(),
            2
        );
        assert_eq!(
            next_sequence(&mut tx, "budget_baselines", "project_code", "2026-0002")
                .await
                .unwrap(),
            1
        );
    }
}
