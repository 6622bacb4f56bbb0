//! The SQL of draws: their rows, their one state transition, selections and replacements.

use govit_platform::{ServiceError, ServiceResult, StateMachine, Tx};
use govit_proto::{StoredEnum, experts::v1 as pb};
use serde_json::json;
use sqlx::{AssertSqlSafe, Row};

use super::{Store, internal};
use crate::{
    draws::{DrawEvent, Execution, Replacement},
    model::{DRAW_COLUMNS, DrawId, DrawRow, Panel, ReplacementRow, SelectionRole, to_json},
    translog,
};

impl Store {
    pub async fn get_draw(&self, id: &DrawId) -> ServiceResult<Option<DrawRow>> {
        let sql = format!("SELECT {DRAW_COLUMNS} FROM draws WHERE id = $1");
        Ok(sqlx::query_as::<_, DrawRow>(AssertSqlSafe(sql))
            .bind(id.0.clone())
            .fetch_optional(&self.db.pool)
            .await?)
    }

    pub async fn draw_by_request(&self, request_id: &str) -> ServiceResult<Option<DrawRow>> {
        let sql = format!("SELECT {DRAW_COLUMNS} FROM draws WHERE request_id = $1");
        Ok(sqlx::query_as::<_, DrawRow>(AssertSqlSafe(sql))
            .bind(request_id.to_owned())
            .fetch_optional(&self.db.pool)
            .await?)
    }

    pub async fn list_draws(
        &self,
        project_id: Option<&str>,
        after: Option<(String, String)>,
        limit: i64,
    ) -> ServiceResult<Vec<DrawRow>> {
        let (t, id) = after.unwrap_or_default();
        let sql = format!(
            "SELECT {DRAW_COLUMNS} FROM draws WHERE ($1 = '' OR project_id = $1) AND (open_time > $2 OR (open_time = $2 AND id > $3)) \
             ORDER BY open_time, id LIMIT $4"
        );
        Ok(sqlx::query_as::<_, DrawRow>(AssertSqlSafe(sql))
            .bind(project_id.unwrap_or("").to_owned())
            .bind(t)
            .bind(id)
            .bind(limit)
            .fetch_all(&self.db.pool)
            .await?)
    }

    pub async fn replacements(&self, draw_id: &DrawId) -> ServiceResult<Vec<ReplacementRow>> {
        Ok(sqlx::query_as::<_, ReplacementRow>(
            "SELECT category, left_expert, came_in, reason, replace_time FROM draw_replacements WHERE draw_id = $1 ORDER BY seq",
        )
        .bind(draw_id.0.clone())
        .fetch_all(&self.db.pool)
        .await?)
    }

    /// Inserts a freshly opened draw and logs it. A request id seen before returns false.
    pub async fn insert_draw(&self, d: &DrawRow) -> ServiceResult<bool> {
        let mut tx = translog::begin(&self.db).await?;
        let inserted = sqlx::query(
            "INSERT INTO draws (id, project_id, stage, state, meeting_date, request_id, supplements, input, input_hash, \
             server_secret, manual_exclusions, open_time, version, request_hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 1, $13)",
        )
        .bind(d.id.0.clone())
        .bind(d.project_id.clone())
        .bind(d.stage.as_stored())
        .bind(d.state.as_stored())
        .bind(d.meeting_date.clone())
        .bind(d.request_id.clone())
        .bind(d.supplements.clone())
        .bind(d.input.clone())
        .bind(d.input_hash.clone())
        .bind(d.server_secret.clone())
        .bind(d.manual_exclusions.clone())
        .bind(d.open_time.clone())
        .bind(d.request_hash.clone())
        .execute(&mut *tx)
        .await;
        match inserted {
            Err(e) if govit_platform::db::is_unique_violation(&e) && d.request_id.is_some() => {
                return Ok(false);
            }
            other => other?,
        };
        let entry = json!({
            "type": "draw_opened",
            "draw_id": d.id.as_str(),
            "project_id": d.project_id,
            "stage": d.stage.as_stored(),
            "input_hash": d.input_hash,
            "supplements": d.supplements,
        });
        translog::append(&mut tx, entry, Some(d.id.as_str()))
            .await
            .map_err(internal)?;
        tx.commit().await?;
        Ok(true)
    }

    /// The one state transition of draws: begins the write that moves draw `id` by `event`
    /// from `from`, the state it was read in. A draw no longer in `from` (a racing request
    /// won) is FAILED_PRECONDITION.
    pub async fn move_draw(
        &self,
        id: &DrawId,
        event: DrawEvent,
        from: pb::DrawState,
    ) -> ServiceResult<Tx> {
        event.check(&id.name(), from)?;
        let mut tx = translog::begin(&self.db).await?;
        let done = sqlx::query(
            "UPDATE draws SET state = $1, version = version + 1 WHERE id = $2 AND state = $3",
        )
        .bind(event.target().as_stored())
        .bind(id.0.clone())
        .bind(from.as_stored())
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                id.name(),
                format!("{} changed state meanwhile; read it again", id.name()),
            ));
        }
        Ok(tx)
    }

    pub async fn set_witness_entropy(tx: &mut Tx, id: &DrawId, entropy: &str) -> ServiceResult<()> {
        sqlx::query("UPDATE draws SET witness_entropy = $1 WHERE id = $2")
            .bind(entropy.to_owned())
            .bind(id.0.clone())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    pub async fn set_cancel_reason(tx: &mut Tx, id: &DrawId, reason: &str) -> ServiceResult<()> {
        sqlx::query("UPDATE draws SET cancel_reason = $1 WHERE id = $2")
            .bind(reason.to_owned())
            .bind(id.0.clone())
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// Stores what an execution produced, the selections it made, and the selected experts'
    /// draw counts.
    pub async fn record_execution(tx: &mut Tx, id: &DrawId, run: &Execution) -> ServiceResult<()> {
        sqlx::query(
            "UPDATE draws SET witness_entropy = $1, outcome = $2, seed = $3, result = $4, record_hash = $5, panel = $6, \
             execute_time = $7 WHERE id = $8",
        )
        .bind(run.witness.clone())
        .bind(run.outcome.as_stored())
        .bind(run.seed.clone())
        .bind(run.result.clone())
        .bind(run.record_hash.clone())
        .bind(to_json(&run.panel))
        .bind(run.at.clone())
        .bind(id.0.clone())
        .execute(&mut **tx)
        .await?;
        for (category, p) in &run.panel {
            for (role, ids) in [
                (SelectionRole::Selected, &p.selected),
                (SelectionRole::Alternate, &p.alternates),
            ] {
                for expert in ids {
                    insert_selection(tx, id, expert, category, role, &run.at).await?;
                }
            }
        }
        Ok(())
    }

    /// The replacement a request id already made: (draw id, category, leaving expert, reason).
    pub async fn replacement_by_request(
        &self,
        request_id: &str,
    ) -> ServiceResult<Option<(String, String, String, pb::ReplacementReason)>> {
        let seen = sqlx::query(
            "SELECT draw_id, category, left_expert, reason FROM draw_replacements WHERE request_id = $1",
        )
        .bind(request_id.to_owned())
        .fetch_optional(&self.db.pool)
        .await?;
        let Some(seen) = seen else { return Ok(None) };
        let reason: String = seen.try_get(3)?;
        Ok(Some((
            seen.try_get(0)?,
            seen.try_get(1)?,
            seen.try_get(2)?,
            pb::ReplacementReason::from_stored(&reason).map_err(anyhow::Error::new)?,
        )))
    }

    /// Begins the write of a replacement: the panel as it now stands, if the draw is still at
    /// the version it was read at, and the replacement's row.
    pub async fn record_replacement(
        &self,
        d: &DrawRow,
        panel: &Panel,
        r: &Replacement,
        at: &str,
    ) -> ServiceResult<Tx> {
        let mut tx = translog::begin(&self.db).await?;
        let done = sqlx::query(
            "UPDATE draws SET panel = $1, version = version + 1 WHERE id = $2 AND version = $3",
        )
        .bind(to_json(panel))
        .bind(d.id.0.clone())
        .bind(d.version)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(ServiceError::Aborted(format!(
                "{} changed meanwhile; read it again and retry",
                d.name()
            )));
        }
        let seq = next_replacement_seq(&mut tx, &d.id).await?;
        sqlx::query(
            "INSERT INTO draw_replacements (draw_id, seq, category, left_expert, came_in, reason, replace_time, request_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(d.id.0.clone())
        .bind(seq)
        .bind(r.category.clone())
        .bind(r.leaving.0.clone())
        .bind(r.came_in.clone())
        .bind(r.reason.as_stored())
        .bind(at.to_owned())
        .bind(r.request_id.clone())
        .execute(&mut *tx)
        .await?;
        Ok(tx)
    }
}

async fn insert_selection(
    tx: &mut Tx,
    id: &DrawId,
    expert: &str,
    category: &str,
    role: SelectionRole,
    at: &str,
) -> ServiceResult<()> {
    sqlx::query("INSERT INTO selections (draw_id, expert_id, category, role, execute_time) VALUES ($1, $2, $3, $4, $5)")
        .bind(id.0.clone())
        .bind(expert.to_owned())
        .bind(category.to_owned())
        .bind(role.as_stored())
        .bind(at.to_owned())
        .execute(&mut **tx)
        .await?;
    if role == SelectionRole::Selected {
        sqlx::query("UPDATE experts SET draws_count = draws_count + 1 WHERE id = $1")
            .bind(expert.to_owned())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The next number in a draw's sequence of replacements (1 for the first). The write lock the
/// transaction holds on the log keeps two writers from taking the same number.
async fn next_replacement_seq(tx: &mut Tx, id: &DrawId) -> ServiceResult<i64> {
    let count: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM draw_replacements WHERE draw_id = $1")
            .bind(id.0.clone())
            .fetch_one(&mut **tx)
            .await?;
    Ok(count + 1)
}
