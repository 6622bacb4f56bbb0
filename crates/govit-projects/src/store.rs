//! All SQL of the projects service. Every change and its audit event are written in one
//! transaction; optimistic concurrency on `version` decides races.

use govit_platform::{
    Caller, Db, ServiceError, ServiceResult, Tx,
    db::is_unique_violation,
    time::{now, to_stored},
};
use sqlx::{AssertSqlSafe, Row};

use govit_proto::projects::v1::{ReviewDecision, ReviewStage};

use crate::model::{DocumentRow, EventRow, OrgRow, ProjectRow, to_json};

/// What an audit event says beyond who and when.
#[derive(Debug, Default, Clone)]
pub struct NewEvent {
    pub action: String,
    pub from_state: Option<&'static str>,
    pub to_state: Option<&'static str>,
    pub changed_fields: Vec<String>,
    pub reason: String,
    pub document_sha256: Vec<String>,
}

/// A bound value for the dynamically built list queries.
#[derive(Debug, Clone)]
pub enum Arg {
    Text(String),
    Int(i64),
}

const PROJECT_COLUMNS: &str = "code, year, seq, display_name, applicant, category, description, \
    planned_start_date, planned_end_date, estimated_investment_fen, funding_source, contacts, \
    feasibility_consultancy, state, suspended_from, review_panel, return_reasons, \
    implementation_plan, contractor, supervision_firm, contract_amount_fen, contract_date, \
    post_evaluation_summary, version, event_count, create_time, update_time, approved_budget_fen, \
    original_approved_fen, disbursed_fen, post_evaluation, review";

const ORG_COLUMNS: &str =
    "credit_code, display_name, kind, contacts, version, create_time, update_time";

const DOCUMENT_COLUMNS: &str = "id, project_code, kind, file_name, media_type, size_bytes, sha256, \
    sealed_copies, uploaded_by, create_time";

const EVENT_COLUMNS: &str = "resource, seq, occur_time, actor_subject, actor_role, action, \
    from_state, to_state, changed_fields, reason, document_sha256";

#[derive(Debug, Clone)]
pub struct Store {
    pub db: Db,
}

pub async fn insert_event(
    tx: &mut Tx,
    resource: &str,
    seq: i64,
    at: &str,
    actor: &Caller,
    event: &NewEvent,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO audit_events (resource, seq, occur_time, actor_subject, actor_role, action, \
         from_state, to_state, changed_fields, reason, document_sha256) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(resource.to_owned())
    .bind(seq)
    .bind(at.to_owned())
    .bind(actor.subject.clone())
    .bind(actor.role.as_str())
    .bind(event.action.clone())
    .bind(event.from_state)
    .bind(event.to_state)
    .bind(to_json(&event.changed_fields))
    .bind(event.reason.clone())
    .bind(to_json(&event.document_sha256))
    .execute(&mut **tx)
    .await?;
    Ok(())
}

fn bind_all<'q, O>(
    mut query: sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments>,
    args: Vec<Arg>,
) -> sqlx::query::QueryAs<'q, sqlx::Any, O, sqlx::any::AnyArguments> {
    for arg in args {
        query = match arg {
            Arg::Text(s) => query.bind(s),
            Arg::Int(i) => query.bind(i),
        };
    }
    query
}

impl Store {
    // ---- organisations ----

    pub async fn get_org(&self, credit_code: &str) -> ServiceResult<Option<OrgRow>> {
        let sql = format!("SELECT {ORG_COLUMNS} FROM organizations WHERE credit_code = $1");
        Ok(sqlx::query_as::<_, OrgRow>(AssertSqlSafe(sql))
            .bind(credit_code.to_owned())
            .fetch_optional(&self.db.pool)
            .await?)
    }

    pub async fn org_exists(&self, credit_code: &str) -> ServiceResult<bool> {
        let row = sqlx::query("SELECT 1 FROM organizations WHERE credit_code = $1")
            .bind(credit_code.to_owned())
            .fetch_optional(&self.db.pool)
            .await?;
        Ok(row.is_some())
    }

    pub async fn list_orgs(
        &self,
        kind: Option<&str>,
        only: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> ServiceResult<Vec<OrgRow>> {
        let mut sql = format!("SELECT {ORG_COLUMNS} FROM organizations WHERE 1 = 1");
        let mut args = Vec::new();
        for (column, value) in [("kind", kind), ("credit_code", only)] {
            if let Some(v) = value {
                args.push(Arg::Text(v.to_owned()));
                sql.push_str(&format!(" AND {column} = ${}", args.len()));
            }
        }
        if let Some(after) = after {
            args.push(Arg::Text(after.to_owned()));
            sql.push_str(&format!(" AND credit_code > ${}", args.len()));
        }
        args.push(Arg::Int(limit));
        sql.push_str(&format!(" ORDER BY credit_code LIMIT ${}", args.len()));
        let query = bind_all(sqlx::query_as::<_, OrgRow>(AssertSqlSafe(sql)), args);
        Ok(query.fetch_all(&self.db.pool).await?)
    }

    pub async fn create_org(&self, row: &OrgRow, actor: &Caller) -> ServiceResult<()> {
        let mut tx = self.db.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO organizations (credit_code, display_name, kind, contacts, version, \
             event_count, create_time, update_time) VALUES ($1, $2, $3, $4, 1, 1, $5, $5)",
        )
        .bind(row.credit_code.clone())
        .bind(row.display_name.clone())
        .bind(row.kind.clone())
        .bind(row.contacts.clone())
        .bind(row.create_time.clone())
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if is_unique_violation(&e) => {
                return Err(ServiceError::AlreadyExists {
                    resource_type: "organization",
                    name: crate::model::org_name(&row.credit_code),
                });
            }
            other => other?,
        };
        let event = NewEvent {
            action: "CreateOrganization".into(),
            changed_fields: vec!["display_name".into(), "kind".into(), "contacts".into()],
            ..NewEvent::default()
        };
        insert_event(
            &mut tx,
            &crate::model::org_name(&row.credit_code),
            1,
            &row.create_time,
            actor,
            &event,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Writes the organisation if its version is still `expected_version`.
    pub async fn update_org(
        &self,
        row: &OrgRow,
        expected_version: i64,
        actor: &Caller,
        changed_fields: Vec<String>,
    ) -> ServiceResult<()> {
        let mut tx = self.db.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE organizations SET display_name = $1, kind = $2, contacts = $3, \
             version = version + 1, event_count = event_count + 1, update_time = $4 \
             WHERE credit_code = $5 AND version = $6 RETURNING event_count",
        )
        .bind(row.display_name.clone())
        .bind(row.kind.clone())
        .bind(row.contacts.clone())
        .bind(row.update_time.clone())
        .bind(row.credit_code.clone())
        .bind(expected_version)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(updated) = updated else {
            return Err(ServiceError::stale_etag(&crate::model::org_name(
                &row.credit_code,
            )));
        };
        let seq: i64 = updated.try_get(0)?;
        let event = NewEvent {
            action: "UpdateOrganization".into(),
            changed_fields,
            ..NewEvent::default()
        };
        insert_event(
            &mut tx,
            &crate::model::org_name(&row.credit_code),
            seq,
            &row.update_time,
            actor,
            &event,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    // ---- projects ----

    pub async fn get_project(&self, code: &str) -> ServiceResult<Option<ProjectRow>> {
        let sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE code = $1");
        Ok(sqlx::query_as::<_, ProjectRow>(AssertSqlSafe(sql))
            .bind(code.to_owned())
            .fetch_optional(&self.db.pool)
            .await?)
    }

    /// Lists projects matching `filters` (column, value) ordered by (year, seq).
    pub async fn list_projects(
        &self,
        filters: Vec<(&'static str, Arg)>,
        after: Option<(i64, i64)>,
        descending: bool,
        limit: i64,
    ) -> ServiceResult<Vec<ProjectRow>> {
        let mut sql = format!("SELECT {PROJECT_COLUMNS} FROM projects WHERE 1 = 1");
        let mut args = Vec::new();
        for (column, value) in filters {
            args.push(value);
            sql.push_str(&format!(" AND {column} = ${}", args.len()));
        }
        if let Some((year, seq)) = after {
            let op = if descending { "<" } else { ">" };
            args.push(Arg::Int(year));
            let y = args.len();
            args.push(Arg::Int(seq));
            let s = args.len();
            sql.push_str(&format!(
                " AND (year {op} ${y} OR (year = ${y} AND seq {op} ${s}))"
            ));
        }
        let dir = if descending { "DESC" } else { "ASC" };
        args.push(Arg::Int(limit));
        sql.push_str(&format!(
            " ORDER BY year {dir}, seq {dir} LIMIT ${}",
            args.len()
        ));
        let query = bind_all(sqlx::query_as::<_, ProjectRow>(AssertSqlSafe(sql)), args);
        Ok(query.fetch_all(&self.db.pool).await?)
    }

    /// Inserts a new project, assigning its code from the year's counter.
    pub async fn create_project(
        &self,
        mut row: ProjectRow,
        actor: &Caller,
    ) -> ServiceResult<ProjectRow> {
        let mut tx = self.db.begin_write().await?;
        let seq: i64 = sqlx::query(
            "INSERT INTO project_code_counters (year, last_seq) VALUES ($1, 1) \
             ON CONFLICT (year) DO UPDATE SET last_seq = project_code_counters.last_seq + 1 \
             RETURNING last_seq",
        )
        .bind(row.year)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        row.seq = seq;
        row.code = format!("{}-{:04}", row.year, seq);
        row.version = 1;
        row.event_count = 1;
        sqlx::query(
            "INSERT INTO projects (code, year, seq, display_name, applicant, category, description, \
             planned_start_date, planned_end_date, estimated_investment_fen, funding_source, contacts, \
             feasibility_consultancy, state, suspended_from, review_panel, return_reasons, \
             implementation_plan, contractor, supervision_firm, contract_amount_fen, contract_date, \
             post_evaluation_summary, version, event_count, create_time, update_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, \
             $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)",
        )
        .bind(row.code.clone())
        .bind(row.year)
        .bind(row.seq)
        .bind(row.display_name.clone())
        .bind(row.applicant.clone())
        .bind(row.category.clone())
        .bind(row.description.clone())
        .bind(row.planned_start_date.clone())
        .bind(row.planned_end_date.clone())
        .bind(row.estimated_investment_fen)
        .bind(row.funding_source.clone())
        .bind(row.contacts.clone())
        .bind(row.feasibility_consultancy.clone())
        .bind(row.state.clone())
        .bind(row.suspended_from.clone())
        .bind(row.review_panel.clone())
        .bind(row.return_reasons.clone())
        .bind(row.implementation_plan.clone())
        .bind(row.contractor.clone())
        .bind(row.supervision_firm.clone())
        .bind(row.contract_amount_fen)
        .bind(row.contract_date.clone())
        .bind(row.post_evaluation_summary.clone())
        .bind(row.version)
        .bind(row.event_count)
        .bind(row.create_time.clone())
        .bind(row.update_time.clone())
        .execute(&mut *tx)
        .await?;
        let event = NewEvent {
            action: "CreateProject".into(),
            to_state: Some("DRAFT"),
            changed_fields: vec![
                "display_name".into(),
                "applicant".into(),
                "category".into(),
                "description".into(),
                "planned_start_date".into(),
                "planned_end_date".into(),
                "estimated_investment_fen".into(),
                "funding_source".into(),
                "contacts".into(),
            ],
            ..NewEvent::default()
        };
        insert_event(&mut tx, &row.name(), 1, &row.create_time, actor, &event).await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Writes every mutable column of `row` if the stored version is still `expected_version`,
    /// with its audit event, in one transaction. Returns the row as stored.
    pub async fn save_project(
        &self,
        mut row: ProjectRow,
        expected_version: i64,
        actor: &Caller,
        event: NewEvent,
        extras: Vec<Extra>,
    ) -> ServiceResult<ProjectRow> {
        let at = to_stored(now());
        row.update_time = at.clone();
        let mut tx = self.db.begin_write().await?;
        let updated = sqlx::query(
            "UPDATE projects SET display_name = $1, category = $2, description = $3, \
             planned_start_date = $4, planned_end_date = $5, estimated_investment_fen = $6, \
             funding_source = $7, contacts = $8, feasibility_consultancy = $9, state = $10, \
             suspended_from = $11, review_panel = $12, return_reasons = $13, \
             implementation_plan = $14, contractor = $15, supervision_firm = $16, \
             contract_amount_fen = $17, contract_date = $18, post_evaluation_summary = $19, \
             update_time = $20, approved_budget_fen = $23, original_approved_fen = $24, \
             post_evaluation = $25, review = $26, version = version + 1, event_count = event_count + 1 \
             WHERE code = $21 AND version = $22 RETURNING version, event_count",
        )
        .bind(row.display_name.clone())
        .bind(row.category.clone())
        .bind(row.description.clone())
        .bind(row.planned_start_date.clone())
        .bind(row.planned_end_date.clone())
        .bind(row.estimated_investment_fen)
        .bind(row.funding_source.clone())
        .bind(row.contacts.clone())
        .bind(row.feasibility_consultancy.clone())
        .bind(row.state.clone())
        .bind(row.suspended_from.clone())
        .bind(row.review_panel.clone())
        .bind(row.return_reasons.clone())
        .bind(row.implementation_plan.clone())
        .bind(row.contractor.clone())
        .bind(row.supervision_firm.clone())
        .bind(row.contract_amount_fen)
        .bind(row.contract_date.clone())
        .bind(row.post_evaluation_summary.clone())
        .bind(at.clone())
        .bind(row.code.clone())
        .bind(expected_version)
        .bind(row.approved_budget_fen)
        .bind(row.original_approved_fen)
        .bind(row.post_evaluation.clone())
        .bind(row.review.clone())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(updated) = updated else {
            return Err(ServiceError::stale_etag(&row.name()));
        };
        row.version = updated.try_get(0)?;
        row.event_count = updated.try_get(1)?;
        for extra in extras {
            match extra {
                Extra::ReviewOutcome(outcome) => {
                    let inserted = sqlx::query(
                        "INSERT INTO review_outcomes (review_id, project_code, stage, decision, summary, \
                         recorded_at, applied) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(outcome.review_id.clone())
                    .bind(row.code.clone())
                    .bind(outcome.stage.short_name())
                    .bind(outcome.decision.short_name())
                    .bind(outcome.summary)
                    .bind(at.clone())
                    .bind(i64::from(outcome.applied))
                    .execute(&mut *tx)
                    .await;
                    if let Err(e) = inserted {
                        // Another delivery of the same outcome won the race; ours must not apply twice.
                        return Err(if is_unique_violation(&e) {
                            ServiceError::Aborted(format!(
                                "review {} was recorded concurrently",
                                outcome.review_id
                            ))
                        } else {
                            e.into()
                        });
                    }
                }
                Extra::Outbox(message) => {
                    govit_platform::outbox::enqueue(&mut tx, &message).await?;
                }
                Extra::ApplyOverride { id, approved_by } => {
                    let done = sqlx::query(
                        "UPDATE review_overrides SET state = 'APPLIED', approved_by = $1, apply_time = $2 \
                         WHERE id = $3 AND state = 'PENDING_APPROVAL'",
                    )
                    .bind(approved_by)
                    .bind(at.clone())
                    .bind(id.clone())
                    .execute(&mut *tx)
                    .await?;
                    if done.rows_affected() == 0 {
                        return Err(ServiceError::Aborted(format!(
                            "override {id} was applied concurrently"
                        )));
                    }
                }
                Extra::FirstBaseline { budget_fen } => {
                    insert_baseline(
                        &mut tx,
                        &row.code,
                        1,
                        budget_fen,
                        "APPROVAL",
                        None,
                        "approved at the preliminary review",
                        &at,
                    )
                    .await?;
                }
            }
        }
        insert_event(&mut tx, &row.name(), row.event_count, &at, actor, &event).await?;
        tx.commit().await?;
        Ok(row)
    }

    pub async fn review_outcome(
        &self,
        review_id: &str,
    ) -> ServiceResult<Option<ReviewOutcomeRecord>> {
        let row = sqlx::query(
            "SELECT review_id, project_code, stage, decision, summary, applied FROM review_outcomes \
             WHERE review_id = $1",
        )
        .bind(review_id.to_owned())
        .fetch_optional(&self.db.pool)
        .await?;
        row.map(|r| -> anyhow::Result<_> {
            let stage: String = r.try_get(2)?;
            let decision: String = r.try_get(3)?;
            Ok(ReviewOutcomeRecord {
                review_id: r.try_get(0)?,
                project_code: r.try_get(1)?,
                stage: ReviewStage::from_short_name(&stage)
                    .ok_or_else(|| anyhow::anyhow!("stored review stage {stage:?} is unknown"))?,
                decision: ReviewDecision::from_short_name(&decision).ok_or_else(|| {
                    anyhow::anyhow!("stored review decision {decision:?} is unknown")
                })?,
                summary: r.try_get(4)?,
                applied: r.try_get::<i64, _>(5)? != 0,
            })
        })
        .transpose()
        .map_err(ServiceError::Internal)
    }

    // ---- documents ----

    /// Records an uploaded document and its audit event. `place_blob` moves the content into
    /// the blob store; it runs inside the transaction, so a failure there writes nothing, and a
    /// failed commit is answered by `remove_blob`.
    pub async fn insert_document(
        &self,
        row: &DocumentRow,
        actor: &Caller,
        place_blob: impl AsyncFnOnce() -> std::io::Result<()>,
        remove_blob: impl AsyncFnOnce(),
    ) -> ServiceResult<()> {
        let mut tx = self.db.begin_write().await?;
        sqlx::query(
            "INSERT INTO documents (id, project_code, kind, file_name, media_type, size_bytes, \
             sha256, sealed_copies, uploaded_by, create_time) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(row.id.clone())
        .bind(row.project_code.clone())
        .bind(row.kind.clone())
        .bind(row.file_name.clone())
        .bind(row.media_type.clone())
        .bind(row.size_bytes)
        .bind(row.sha256.clone())
        .bind(row.sealed_copies)
        .bind(row.uploaded_by.clone())
        .bind(row.create_time.clone())
        .execute(&mut *tx)
        .await?;
        let event = NewEvent {
            action: "UploadDocument".into(),
            changed_fields: vec![format!("documents/{}", row.id)],
            reason: format!("{} {}", row.kind, row.file_name),
            document_sha256: vec![row.sha256.clone()],
            ..NewEvent::default()
        };
        project_event(&mut tx, &row.project_code, &row.create_time, actor, &event).await?;
        place_blob().await.map_err(|e| {
            ServiceError::Internal(anyhow::Error::new(e).context("storing document content"))
        })?;
        if let Err(e) = tx.commit().await {
            remove_blob().await;
            return Err(e.into());
        }
        Ok(())
    }

    pub async fn get_document(
        &self,
        project_code: &str,
        id: &str,
    ) -> ServiceResult<Option<DocumentRow>> {
        let sql =
            format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE project_code = $1 AND id = $2");
        Ok(sqlx::query_as::<_, DocumentRow>(AssertSqlSafe(sql))
            .bind(project_code.to_owned())
            .bind(id.to_owned())
            .fetch_optional(&self.db.pool)
            .await?)
    }

    pub async fn list_documents(
        &self,
        project_code: &str,
        after: Option<(String, String)>,
        limit: i64,
    ) -> ServiceResult<Vec<DocumentRow>> {
        let mut sql = format!("SELECT {DOCUMENT_COLUMNS} FROM documents WHERE project_code = $1");
        let mut args = vec![Arg::Text(project_code.to_owned())];
        if let Some((time, id)) = after {
            args.push(Arg::Text(time));
            args.push(Arg::Text(id));
            sql.push_str(" AND (create_time > $2 OR (create_time = $2 AND id > $3))");
        }
        args.push(Arg::Int(limit));
        sql.push_str(&format!(" ORDER BY create_time, id LIMIT ${}", args.len()));
        let query = bind_all(sqlx::query_as::<_, DocumentRow>(AssertSqlSafe(sql)), args);
        Ok(query.fetch_all(&self.db.pool).await?)
    }

    /// Every document of the project, oldest first: for guards that need several kinds.
    pub async fn all_documents(&self, project_code: &str) -> ServiceResult<Vec<DocumentRow>> {
        self.list_documents(project_code, None, i64::MAX / 2).await
    }

    // ---- audit ----

    pub async fn list_events(
        &self,
        resource: &str,
        after_seq: Option<i64>,
        limit: i64,
    ) -> ServiceResult<Vec<EventRow>> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM audit_events WHERE resource = $1 AND seq > $2 \
             ORDER BY seq LIMIT $3"
        );
        Ok(sqlx::query_as::<_, EventRow>(AssertSqlSafe(sql))
            .bind(resource.to_owned())
            .bind(after_seq.unwrap_or(0))
            .bind(limit)
            .fetch_all(&self.db.pool)
            .await?)
    }
}

/// What else a project change writes in its transaction.
#[derive(Debug, Clone)]
pub enum Extra {
    ReviewOutcome(ReviewOutcomeRecord),
    /// The approved investment fixed at approval.
    FirstBaseline {
        budget_fen: i64,
    },
    /// A message to another service, sent by the outbox worker after commit.
    Outbox(crate::outbox::Outgoing),
    /// An office override taking effect with the project's transition.
    ApplyOverride {
        id: String,
        approved_by: Option<String>,
    },
}

#[allow(clippy::too_many_arguments)] // one column each; a struct would only rename them
pub async fn insert_baseline(
    tx: &mut Tx,
    project: &str,
    seq: i64,
    budget_fen: i64,
    source: &str,
    budget_change: Option<&str>,
    reason: &str,
    at: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO budget_baselines (project_code, seq, budget_fen, source, budget_change, reason, create_time) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(project.to_owned())
    .bind(seq)
    .bind(budget_fen)
    .bind(source.to_owned())
    .bind(budget_change.map(str::to_owned))
    .bind(reason.to_owned())
    .bind(at.to_owned())
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Writes the next audit event of a project inside `tx`: bumps the project's event counter
/// (which also locks its row) and records the event under that sequence. The one way events
/// that do not change the project's own fields are written.
pub async fn project_event(
    tx: &mut Tx,
    code: &str,
    at: &str,
    actor: &Caller,
    event: &NewEvent,
) -> ServiceResult<i64> {
    let counted = sqlx::query(
        "UPDATE projects SET event_count = event_count + 1 WHERE code = $1 RETURNING event_count",
    )
    .bind(code.to_owned())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(counted) = counted else {
        return Err(ServiceError::not_found(
            "project",
            crate::model::project_name(code),
        ));
    };
    let seq: i64 = counted.try_get(0)?;
    insert_event(tx, &crate::model::project_name(code), seq, at, actor, event).await?;
    Ok(seq)
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReviewOutcomeRecord {
    pub review_id: String,
    pub project_code: String,
    pub stage: ReviewStage,
    pub decision: ReviewDecision,
    pub summary: String,
    /// False for a decision that arrived after the project had moved on (withdrawn): kept,
    /// never applied.
    pub applied: bool,
}
