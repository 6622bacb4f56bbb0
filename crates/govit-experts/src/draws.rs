//! Opening, witnessing, executing, replacing and cancelling draws. Each step is one transaction
//! with its log entry, so no crash leaves a draw executed but unlogged or logged but unstored.

use std::collections::{BTreeMap, BTreeSet};

use chrono::NaiveDate;
use govit_draw::{DrawInput, DrawRecord, Exclusion, Requirement, draw};
use govit_platform::{
    ServiceError, ServiceResult,
    time::{now, to_stored},
};
use serde_json::json;
use sqlx::Row;

use crate::{
    ExpertsService,
    eligibility::{Rules, exclusion_reasons},
    model::{DrawRow, ManualExclusion, Panel, PanelRec, from_json, to_json},
    translog,
};

fn internal(e: impl Into<anyhow::Error>) -> ServiceError {
    ServiceError::Internal(e.into())
}

/// A validated request to open a draw.
pub struct OpenRequest {
    pub project_id: String,
    pub stage: String,
    pub requirements: Vec<Requirement>,
    pub excluded_organizations: BTreeSet<String>,
    pub manual: Vec<ManualExclusion>,
    pub meeting_date: NaiveDate,
    pub supplements: Option<String>,
    /// The caller's idempotency key, scoped to the caller.
    pub request_id: Option<String>,
    /// A hash of the request: the same key with another request is refused.
    pub request_hash: String,
    /// Check everything opening would, including that the pool can supply the panel, and open
    /// nothing.
    pub validate_only: bool,
}

pub const OPEN: &str = "OPEN";
pub const WITNESSED: &str = "WITNESSED";
pub const EXECUTED: &str = "EXECUTED";
pub const CANCELLED: &str = "CANCELLED";

impl ExpertsService {
    pub(crate) async fn draw_or_not_found(&self, id: &str) -> ServiceResult<DrawRow> {
        self.store
            .get_draw(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("draw", format!("draws/{id}")))
    }

    /// Every expert a draw and the draws it supplements took, selected, alternate or replaced.
    async fn already_drawn(&self, mut id: Option<String>) -> ServiceResult<BTreeSet<String>> {
        let mut drawn = BTreeSet::new();
        while let Some(current) = id {
            let d = self.draw_or_not_found(&current).await?;
            for p in d.panel().map_err(internal)?.into_values() {
                drawn.extend(p.selected.into_iter().chain(p.alternates).chain(p.replaced));
            }
            id = d.supplements;
        }
        Ok(drawn)
    }

    /// Opens a draw; with `validate_only`, checks it and answers None.
    pub(crate) async fn open_draw(&self, req: OpenRequest) -> ServiceResult<Option<DrawRow>> {
        if !req.validate_only
            && let Some(key) = &req.request_id
            && let Some(existing) = self.store.draw_by_request(key).await?
        {
            return same_request(existing, &req.request_hash).map(Some);
        }
        let already_drawn = match &req.supplements {
            Some(parent) => {
                let p = self.draw_or_not_found(parent).await?;
                if p.state != EXECUTED || p.outcome.as_deref() != Some("EXECUTED") {
                    return Err(ServiceError::precondition(
                        "STATE_CONFLICT",
                        p.name(),
                        format!(
                            "{} is {}; only an executed draw can be supplemented",
                            p.name(),
                            p.state
                        ),
                    ));
                }
                self.already_drawn(Some(parent.clone())).await?
            }
            None => BTreeSet::new(),
        };
        let categories: Vec<String> = req
            .requirements
            .iter()
            .map(|r| r.category.clone())
            .collect();
        let pool = self.store.pool(&categories).await?;
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
        let manual: BTreeSet<String> = req.manual.iter().map(|m| m.expert_id.clone()).collect();
        let rules = Rules {
            meeting_date: req.meeting_date,
            excluded_organizations: &req.excluded_organizations,
            manual: &manual,
            already_drawn: &already_drawn,
            workload: workload.as_ref().map(|(counts, max)| (counts, *max)),
        };
        let mut candidates: BTreeMap<String, Vec<String>> =
            categories.iter().map(|c| (c.clone(), Vec::new())).collect();
        let mut exclusions = Vec::new();
        for (category, expert) in &pool {
            let reasons = exclusion_reasons(expert, &rules).map_err(internal)?;
            if reasons.is_empty() {
                candidates
                    .entry(category.clone())
                    .or_default()
                    .push(expert.id.clone());
            } else {
                exclusions.push(Exclusion {
                    category: category.clone(),
                    expert_id: expert.id.clone(),
                    reasons: reasons.into_iter().map(str::to_owned).collect(),
                });
            }
        }
        for ids in candidates.values_mut() {
            ids.sort_unstable();
        }
        exclusions
            .sort_unstable_by(|a, b| (&a.category, &a.expert_id).cmp(&(&b.category, &b.expert_id)));
        let short: Vec<String> = req
            .requirements
            .iter()
            .filter(|r| (candidates[&r.category].len() as u64) < r.count)
            .map(|r| {
                format!(
                    "{}: {} eligible, {} needed",
                    r.category,
                    candidates[&r.category].len(),
                    r.count
                )
            })
            .collect();
        if !short.is_empty() {
            return Err(ServiceError::FailedPrecondition {
                message: format!("too few eligible experts: {}", short.join("; ")),
                violations: req
                    .requirements
                    .iter()
                    .filter(|r| (candidates[&r.category].len() as u64) < r.count)
                    .map(|r| {
                        govit_platform::error::PreconditionViolation::new(
                            "INSUFFICIENT_EXPERTS",
                            format!("categories/{}", r.category),
                            format!(
                                "{} eligible, {} needed",
                                candidates[&r.category].len(),
                                r.count
                            ),
                        )
                    })
                    .collect(),
            });
        }
        if req.validate_only {
            return Ok(None);
        }

        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)
            .map_err(|e| internal(anyhow::anyhow!("no OS randomness: {e}")))?;
        let opened = now();
        let id = format!("d-{}", uuid::Uuid::now_v7().simple());
        let input = DrawInput {
            protocol: draw::PROTOCOL.into(),
            draw_id: id.clone(),
            project_id: req.project_id.clone(),
            stage: req.stage.clone(),
            opened_at: opened.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            requirements: req.requirements.clone(),
            candidates,
            exclusions,
            server_commitment: draw::commitment(&secret),
        };
        input
            .validate()
            .map_err(|e| internal(anyhow::anyhow!("built an invalid draw input: {e}")))?;
        let canonical = input.canonical_bytes().map_err(internal)?;
        let input_hash = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&canonical));
        let row = DrawRow {
            id,
            project_id: req.project_id,
            stage: req.stage,
            state: OPEN.into(),
            meeting_date: req.meeting_date.to_string(),
            request_id: req.request_id.clone(),
            supplements: req.supplements,
            input: String::from_utf8(canonical).map_err(internal)?,
            input_hash,
            server_secret: hex::encode(secret),
            witness_entropy: None,
            outcome: None,
            seed: None,
            result: None,
            record_hash: None,
            panel: None,
            manual_exclusions: to_json(&req.manual),
            cancel_reason: None,
            open_time: to_stored(opened),
            execute_time: None,
            version: 1,
            request_hash: req.request_hash.clone(),
        };
        if !self.store.insert_draw(&row).await? {
            // The same request raced us and won: answer with its draw.
            let key = req.request_id.unwrap_or_default();
            let existing = self
                .store
                .draw_by_request(&key)
                .await?
                .ok_or_else(|| internal(anyhow::anyhow!("draw of request {key} vanished")))?;
            return same_request(existing, &req.request_hash).map(Some);
        }
        tracing::info!(draw = %row.id, project = %row.project_id, pool = pool.len(), "draw opened");
        Ok(Some(row))
    }

    pub(crate) async fn submit_witness(&self, id: &str, entropy: &str) -> ServiceResult<DrawRow> {
        let d = self.draw_or_not_found(id).await?;
        if d.state != OPEN {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                d.name(),
                match d.state.as_str() {
                    WITNESSED => format!("{} already has its witness entropy", d.name()),
                    s => format!(
                        "{} is {s}; witness entropy is taken only while it is OPEN",
                        d.name()
                    ),
                },
            ));
        }
        let mut tx = self.store.begin_draw_change(id, OPEN, WITNESSED).await?;
        sqlx::query("UPDATE draws SET witness_entropy = $1 WHERE id = $2")
            .bind(entropy.to_owned())
            .bind(id.to_owned())
            .execute(&mut *tx)
            .await?;
        translog::append(
            &mut tx,
            // The record keeps the entropy for inspectors; the log, the hash the seed uses.
            json!({"type": "witness_entropy_submitted", "draw_id": id,
                "witness_entropy_sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(entropy.as_bytes()))}),
            Some(id),
        )
        .await
        .map_err(internal)?;
        tx.commit().await?;
        self.draw_or_not_found(id).await
    }

    pub(crate) async fn execute_draw(&self, id: &str) -> ServiceResult<DrawRow> {
        let d = self.draw_or_not_found(id).await?;
        let from = match d.state.as_str() {
            WITNESSED => WITNESSED,
            OPEN if !self.policy.require_witness => OPEN,
            OPEN => {
                return Err(ServiceError::precondition(
                    "WITNESS_REQUIRED",
                    d.name(),
                    format!(
                        "{} needs witness entropy from a supervisor or inspector before it executes",
                        d.name()
                    ),
                ));
            }
            s => {
                return Err(ServiceError::precondition(
                    "STATE_CONFLICT",
                    d.name(),
                    format!("{} is {s}; it cannot execute", d.name()),
                ));
            }
        };
        let input: DrawInput = from_json("input", &d.input).map_err(internal)?;
        let secret: [u8; 32] = hex::decode(&d.server_secret)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| internal(anyhow::anyhow!("stored secret of {id} is unreadable")))?;
        let witness = d.witness_entropy.clone().unwrap_or_default();
        let record = draw::execute(&input, &secret, &witness).map_err(internal)?;
        let record_hash = hex::encode(record.hash().map_err(internal)?);
        let at = to_stored(now());
        let panel: Panel = record
            .result
            .iter()
            .flatten()
            .map(|(c, s)| {
                (
                    c.clone(),
                    PanelRec {
                        selected: s.selected.clone(),
                        alternates: s.alternates.clone(),
                        replaced: Vec::new(),
                    },
                )
            })
            .collect();
        let outcome = match record.status {
            draw::Status::Executed => "EXECUTED",
            draw::Status::Insufficient => "INSUFFICIENT",
        };
        let mut tx = self.store.begin_draw_change(id, from, EXECUTED).await?;
        sqlx::query(
            "UPDATE draws SET witness_entropy = $1, outcome = $2, seed = $3, result = $4, record_hash = $5, panel = $6, \
             execute_time = $7 WHERE id = $8",
        )
        .bind(witness.clone())
        .bind(outcome)
        .bind(record.seed.clone())
        .bind(record.result.as_ref().map(to_json))
        .bind(record_hash.clone())
        .bind(to_json(&panel))
        .bind(at.clone())
        .bind(id.to_owned())
        .execute(&mut *tx)
        .await?;
        for (category, p) in &panel {
            for (role, ids) in [("SELECTED", &p.selected), ("ALTERNATE", &p.alternates)] {
                for expert in ids {
                    sqlx::query("INSERT INTO selections (draw_id, expert_id, category, role, execute_time) VALUES ($1, $2, $3, $4, $5)")
                        .bind(id.to_owned())
                        .bind(expert.clone())
                        .bind(category.clone())
                        .bind(role)
                        .bind(at.clone())
                        .execute(&mut *tx)
                        .await?;
                    if role == "SELECTED" {
                        sqlx::query(
                            "UPDATE experts SET draws_count = draws_count + 1 WHERE id = $1",
                        )
                        .bind(expert.clone())
                        .execute(&mut *tx)
                        .await?;
                    }
                }
            }
        }
        translog::append(
            &mut tx,
            json!({"type": "draw_executed", "draw_id": id, "status": outcome, "record_hash": record_hash}),
            Some(id),
        )
        .await
        .map_err(internal)?;
        tx.commit().await?;
        tracing::info!(draw = %id, outcome, "draw executed");
        self.draw_or_not_found(id).await
    }

    /// The record of an executed draw, rebuilt from what was stored; its hash is the one logged.
    pub(crate) fn record_of(d: &DrawRow) -> ServiceResult<DrawRecord> {
        let (Some(seed), Some(outcome)) = (&d.seed, &d.outcome) else {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                d.name(),
                format!(
                    "{} has not executed; its record (and secret) exist only after execution",
                    d.name()
                ),
            ));
        };
        Ok(DrawRecord {
            input: serde_json::from_str(&d.input).map_err(internal)?,
            input_hash: d.input_hash.clone(),
            server_secret: d.server_secret.clone(),
            witness_entropy: d.witness_entropy.clone().unwrap_or_default(),
            seed: seed.clone(),
            status: if outcome == "EXECUTED" {
                draw::Status::Executed
            } else {
                draw::Status::Insufficient
            },
            result: d
                .result
                .as_deref()
                .map(|r| from_json("result", r))
                .transpose()
                .map_err(internal)?,
        })
    }

    pub(crate) async fn replace_expert(
        &self,
        id: &str,
        category: &str,
        leaving: &str,
        reason: &str,
        request_id: Option<&str>,
    ) -> ServiceResult<DrawRow> {
        // A redelivered request (the scheduling service retries) must not replace twice; the
        // same key asking for another replacement is refused.
        if let Some(key) = request_id {
            let seen = sqlx::query(
                "SELECT draw_id, category, left_expert, reason FROM draw_replacements WHERE request_id = $1",
            )
            .bind(key.to_owned())
            .fetch_optional(&self.store.db.pool)
            .await?;
            if let Some(seen) = seen {
                let same = seen.try_get::<String, _>(0)? == id
                    && seen.try_get::<String, _>(1)? == category
                    && seen.try_get::<String, _>(2)? == leaving
                    && seen.try_get::<String, _>(3)? == reason;
                if !same {
                    return Err(ServiceError::request_id_reused(
                        "replacement",
                        &format!("draws/{id}"),
                    ));
                }
                return self.draw_or_not_found(id).await;
            }
        }
        let d = self.draw_or_not_found(id).await?;
        if d.state != EXECUTED || d.outcome.as_deref() != Some("EXECUTED") {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                d.name(),
                format!("{} has no panel: it is {}", d.name(), d.state),
            ));
        }
        let mut panel = d.panel().map_err(internal)?;
        let Some(p) = panel.get_mut(category) else {
            return Err(ServiceError::precondition(
                "NOT_ON_PANEL",
                d.name(),
                format!("{} drew no panel for category {category}", d.name()),
            ));
        };
        // Whether the expert serves depends on the panel as it is now: a replacement that lost
        // a race finds them gone, which is a state, not a malformed request.
        let Some(position) = p.selected.iter().position(|e| e == leaving) else {
            let (reason, what) = if p.replaced.iter().any(|e| e == leaving) {
                ("ALREADY_REPLACED", "was already replaced on")
            } else {
                ("NOT_ON_PANEL", "is not serving on")
            };
            return Err(ServiceError::precondition(
                reason,
                format!("experts/{leaving}"),
                format!("{leaving} {what} the {category} panel of {}", d.name()),
            ));
        };
        if p.alternates.is_empty() {
            return Err(ServiceError::precondition(
                "ALTERNATES_EXHAUSTED",
                format!("{}/{category}", d.name()),
                format!(
                    "the {category} alternates of {} are used up; open a supplementary draw (OpenDraw with supplements = {})",
                    d.name(),
                    d.name()
                ),
            ));
        }
        let came_in = p.alternates.remove(0);
        p.selected[position] = came_in.clone();
        p.replaced.push(leaving.to_owned());
        let at = to_stored(now());
        let mut tx = translog::begin(&self.store.db).await?;
        let done = sqlx::query(
            "UPDATE draws SET panel = $1, version = version + 1 WHERE id = $2 AND version = $3",
        )
        .bind(to_json(&panel))
        .bind(id.to_owned())
        .bind(d.version)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(ServiceError::Aborted(format!(
                "{} changed meanwhile; read it again and retry",
                d.name()
            )));
        }
        let seq: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM draw_replacements WHERE draw_id = $1")
                .bind(id.to_owned())
                .fetch_one(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO draw_replacements (draw_id, seq, category, left_expert, came_in, reason, replace_time, request_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(id.to_owned())
        .bind(seq + 1)
        .bind(category.to_owned())
        .bind(leaving.to_owned())
        .bind(came_in.clone())
        .bind(reason.to_owned())
        .bind(at)
        .bind(request_id.map(str::to_owned))
        .execute(&mut *tx)
        .await?;
        translog::append(
            &mut tx,
            json!({"type": "expert_replaced", "draw_id": id, "category": category, "left": leaving, "came_in": came_in, "reason": reason}),
            Some(id),
        )
        .await
        .map_err(internal)?;
        tx.commit().await?;
        self.draw_or_not_found(id).await
    }

    pub(crate) async fn cancel_draw(
        &self,
        id: &str,
        reason: &str,
        code: &str,
    ) -> ServiceResult<DrawRow> {
        let d = self.draw_or_not_found(id).await?;
        // Once executed, a panel is replaced member by member, never redrawn: cancelling after
        // seeing the outcome would be a way to choose it.
        if d.state != OPEN && d.state != WITNESSED {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                d.name(),
                format!(
                    "{} is {}; only a draw not yet executed can be cancelled",
                    d.name(),
                    d.state
                ),
            ));
        }
        let mut tx = self
            .store
            .begin_draw_change(id, &d.state, CANCELLED)
            .await?;
        sqlx::query("UPDATE draws SET cancel_reason = $1 WHERE id = $2")
            .bind(reason.to_owned())
            .bind(id.to_owned())
            .execute(&mut *tx)
            .await?;
        translog::append(&mut tx, json!({"type": "draw_cancelled", "draw_id": id, "previous_state": d.state, "reason": code}), Some(id))
            .await
            .map_err(internal)?;
        tx.commit().await?;
        self.draw_or_not_found(id).await
    }
}

/// The draw a repeated OpenDraw gets: the one its key opened, for the same request only.
fn same_request(existing: DrawRow, request_hash: &str) -> ServiceResult<DrawRow> {
    if existing.request_hash == request_hash {
        Ok(existing)
    } else {
        Err(ServiceError::request_id_reused("draw", &existing.name()))
    }
}
