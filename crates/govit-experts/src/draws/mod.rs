//! Draws: opening, witnessing, executing, replacing and cancelling. Each step is one
//! transaction with its log entry, so no crash leaves a draw executed but unlogged or logged
//! but unstored. The machine of a draw's state is [`DrawEvent`]; the store moves a draw only
//! through it.

mod open;
mod replace;

use govit_draw::{DrawInput, DrawRecord, draw};
use govit_platform::{
    Caller, ServiceError, ServiceResult, StateMachine, Violations,
    paging::Page,
    time::{now, to_stored},
};
use govit_proto::{
    StoredEnum,
    experts::v1::{self as pb, DrawState as S},
};
use serde_json::json;

pub use open::OpenDraw;
pub use replace::{PanelReplacement, Replacement};

use crate::{
    ExpertsService, internal,
    model::{DrawId, DrawRow, Panel, PanelRec, from_json, to_json},
    store::Store,
    translog,
    validation::parse_name,
};

/// A step that moves a draw from one state to another. Opening is not one: it inserts the
/// draw in [`OPENED`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrawEvent {
    /// A supervisor or inspector supplies witness entropy.
    Witness,
    /// The draw runs, with witness entropy or, where the policy allows, without.
    Execute,
    /// A draw not yet executed is called off.
    Cancel,
}

/// The state a draw is opened in.
pub const OPENED: S = S::Open;

impl DrawEvent {
    /// The `type` of the log entry that records the step.
    fn log_type(self) -> &'static str {
        match self {
            DrawEvent::Witness => "witness_entropy_submitted",
            DrawEvent::Execute => "draw_executed",
            DrawEvent::Cancel => "draw_cancelled",
        }
    }
}

impl StateMachine for DrawEvent {
    type State = S;

    fn sources(self) -> &'static [S] {
        match self {
            DrawEvent::Witness => &[S::Open],
            // Once executed, a panel is replaced member by member, never redrawn: cancelling
            // after seeing the outcome would be a way to choose it.
            DrawEvent::Execute | DrawEvent::Cancel => &[S::Open, S::Witnessed],
        }
    }

    fn target(self) -> S {
        match self {
            DrawEvent::Witness => S::Witnessed,
            DrawEvent::Execute => S::Executed,
            DrawEvent::Cancel => S::Cancelled,
        }
    }

    fn refuse(self, subject: &str, from: S) -> ServiceError {
        let message = match (self, from) {
            (DrawEvent::Witness, S::Witnessed) => {
                format!("{subject} already has its witness entropy")
            }
            (DrawEvent::Witness, _) => format!(
                "{subject} is {}; witness entropy is taken only while it is OPEN",
                from.as_stored()
            ),
            (DrawEvent::Execute, _) => {
                format!("{subject} is {}; it cannot execute", from.as_stored())
            }
            (DrawEvent::Cancel, _) => format!(
                "{subject} is {}; only a draw not yet executed can be cancelled",
                from.as_stored()
            ),
        };
        ServiceError::precondition("STATE_CONFLICT", subject, message)
    }
}

/// What executing a draw produced, as stored.
pub struct Execution {
    pub witness: String,
    pub outcome: pb::DrawOutcome,
    pub seed: String,
    /// The result as JSON; None when the pool could not fill the panel.
    pub result: Option<String>,
    pub record_hash: String,
    pub panel: Panel,
    pub at: String,
}

/// The draw a request names by `name`.
pub fn draw_id(name: &str) -> ServiceResult<DrawId> {
    parse_name("name", name, "draws").map(DrawId)
}

/// Witness entropy for a draw.
pub struct Witness {
    id: DrawId,
    entropy: String,
}

impl TryFrom<pb::SubmitWitnessEntropyRequest> for Witness {
    type Error = ServiceError;

    fn try_from(req: pb::SubmitWitnessEntropyRequest) -> ServiceResult<Self> {
        let mut v = Violations::new();
        let id = draw_id(&req.name);
        if id.is_err() {
            v.add("name", "must be draws/{id}");
        }
        if req.witness_entropy.is_empty() {
            v.add("witness_entropy", "must not be empty");
        } else if req.witness_entropy.len() > draw::MAX_WITNESS_BYTES {
            v.add(
                "witness_entropy",
                format!("is {} bytes; at most 1024", req.witness_entropy.len()),
            );
        } else if let Some(problem) =
            govit_platform::validate::personal_data_problem(&req.witness_entropy)
        {
            // The record that keeps it can never change: no personal data in it.
            v.add("witness_entropy", problem);
        }
        v.finish()?;
        Ok(Witness {
            id: id?,
            entropy: req.witness_entropy,
        })
    }
}

/// Calling off a draw not yet executed.
pub struct DrawCancel {
    id: DrawId,
    reason: String,
    code: pb::DrawCancelReason,
}

impl TryFrom<pb::CancelDrawRequest> for DrawCancel {
    type Error = ServiceError;

    fn try_from(req: pb::CancelDrawRequest) -> ServiceResult<Self> {
        let mut v = Violations::new();
        let id = draw_id(&req.name);
        if id.is_err() {
            v.add("name", "must be draws/{id}");
        }
        v.text("reason", &req.reason, 500);
        if let Some(problem) = govit_platform::validate::personal_data_problem(&req.reason) {
            v.add("reason", problem);
        }
        let code = match pb::DrawCancelReason::try_from(req.reason_code) {
            Ok(pb::DrawCancelReason::Unspecified) => pb::DrawCancelReason::Other,
            Ok(code) => code,
            Err(_) => {
                v.add(
                    "reason_code",
                    format!("{} is not a known value", req.reason_code),
                );
                pb::DrawCancelReason::Other
            }
        };
        v.finish()?;
        Ok(DrawCancel {
            id: id?,
            reason: req.reason,
            code,
        })
    }
}

/// Which draws a page lists.
pub struct DrawQuery {
    project_id: String,
    page_size: i32,
    page_token: String,
}

impl TryFrom<pb::ListDrawsRequest> for DrawQuery {
    type Error = ServiceError;

    fn try_from(req: pb::ListDrawsRequest) -> ServiceResult<Self> {
        let mut v = Violations::new();
        let project_id = v.resource_id("project", &req.project, "projects", true);
        v.finish()?;
        Ok(DrawQuery {
            project_id,
            page_size: req.page_size,
            page_token: req.page_token,
        })
    }
}

impl ExpertsService {
    pub(crate) async fn draw_or_not_found(&self, id: &DrawId) -> ServiceResult<DrawRow> {
        self.store
            .get_draw(id)
            .await?
            .ok_or_else(|| ServiceError::not_found("draw", id.name()))
    }

    /// A draw as `caller` may see it: its input and panel only for those who read draws.
    pub(crate) async fn draw_view(&self, caller: &Caller, d: DrawRow) -> ServiceResult<pb::Draw> {
        let replacements = self.store.replacements(&d.id).await?;
        d.to_proto(
            &replacements,
            crate::api::DRAW_READERS.contains(&caller.role),
            self.policy.require_witness,
        )
        .map_err(internal)
    }

    pub(crate) async fn draw_page(
        &self,
        caller: &Caller,
        q: DrawQuery,
    ) -> ServiceResult<pb::ListDrawsResponse> {
        let page = Page::parse(
            q.page_size,
            &q.page_token,
            &format!("draws {}", q.project_id),
        )?;
        let after = page.after.as_deref().map(|k| {
            let (t, id) = k.split_once(' ').unwrap_or((k, ""));
            (t.to_owned(), id.to_owned())
        });
        let project = (!q.project_id.is_empty()).then_some(q.project_id.as_str());
        let mut rows = self
            .store
            .list_draws(project, after, page.fetch_limit())
            .await?;
        let next_page_token = page.finish(&mut rows, |d| format!("{} {}", d.open_time, d.id));
        let mut draws = Vec::new();
        for d in rows {
            draws.push(self.draw_view(caller, d).await?);
        }
        Ok(pb::ListDrawsResponse {
            draws,
            next_page_token,
        })
    }

    pub(crate) async fn draw_record(&self, id: &DrawId) -> ServiceResult<pb::DrawRecord> {
        let d = self.draw_or_not_found(id).await?;
        let record = record_of(&d)?;
        Ok(pb::DrawRecord {
            record_json: serde_json::to_string_pretty(&record).map_err(internal)?,
            record_hash: d.record_hash.clone().unwrap_or_default(),
        })
    }

    pub(crate) async fn submit_witness(&self, w: Witness) -> ServiceResult<DrawRow> {
        let d = self.draw_or_not_found(&w.id).await?;
        let event = DrawEvent::Witness;
        event.check(&d.name(), d.state)?;
        let mut tx = self.store.move_draw(&w.id, event, d.state).await?;
        Store::set_witness_entropy(&mut tx, &w.id, &w.entropy).await?;
        // The record keeps the entropy for inspectors; the log, the hash the seed uses.
        let entropy_hash =
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(w.entropy.as_bytes()));
        translog::append(
            &mut tx,
            json!({"type": event.log_type(), "draw_id": w.id.as_str(), "witness_entropy_sha256": entropy_hash}),
            Some(w.id.as_str()),
        )
        .await
        .map_err(internal)?;
        tx.commit().await?;
        self.draw_or_not_found(&w.id).await
    }

    pub(crate) async fn run_draw(&self, id: &DrawId) -> ServiceResult<DrawRow> {
        let d = self.draw_or_not_found(id).await?;
        let event = DrawEvent::Execute;
        event.check(&d.name(), d.state)?;
        if d.state == S::Open && self.policy.require_witness {
            return Err(ServiceError::precondition(
                "WITNESS_REQUIRED",
                d.name(),
                format!(
                    "{} needs witness entropy from a supervisor or inspector before it executes",
                    d.name()
                ),
            ));
        }
        let run = execute(&d)?;
        let mut tx = self.store.move_draw(id, event, d.state).await?;
        Store::record_execution(&mut tx, id, &run).await?;
        let outcome = run.outcome.as_stored();
        translog::append(
            &mut tx,
            json!({"type": event.log_type(), "draw_id": id.as_str(), "status": outcome, "record_hash": run.record_hash}),
            Some(id.as_str()),
        )
        .await
        .map_err(internal)?;
        tx.commit().await?;
        tracing::info!(draw = %id, outcome, "draw executed");
        self.draw_or_not_found(id).await
    }

    pub(crate) async fn call_off_draw(&self, c: DrawCancel) -> ServiceResult<DrawRow> {
        let d = self.draw_or_not_found(&c.id).await?;
        let event = DrawEvent::Cancel;
        event.check(&d.name(), d.state)?;
        let mut tx = self.store.move_draw(&c.id, event, d.state).await?;
        Store::set_cancel_reason(&mut tx, &c.id, &c.reason).await?;
        translog::append(
            &mut tx,
            json!({"type": event.log_type(), "draw_id": c.id.as_str(), "previous_state": d.state.as_stored(), "reason": c.code.as_stored()}),
            Some(c.id.as_str()),
        )
        .await
        .map_err(internal)?;
        tx.commit().await?;
        self.draw_or_not_found(&c.id).await
    }
}

/// Runs draw-v1 on the frozen input, the secret and the witness entropy of `d`.
fn execute(d: &DrawRow) -> ServiceResult<Execution> {
    let input: DrawInput = from_json("input", &d.input).map_err(internal)?;
    let secret: [u8; 32] = hex::decode(&d.server_secret)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| internal(anyhow::anyhow!("stored secret of {} is unreadable", d.id)))?;
    let witness = d.witness_entropy.clone().unwrap_or_default();
    let record = draw::execute(&input, &secret, &witness).map_err(internal)?;
    let record_hash = hex::encode(record.hash().map_err(internal)?);
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
    Ok(Execution {
        witness,
        outcome: match record.status {
            draw::Status::Executed => pb::DrawOutcome::Executed,
            draw::Status::Insufficient => pb::DrawOutcome::Insufficient,
        },
        seed: record.seed.clone(),
        result: record.result.as_ref().map(to_json),
        record_hash,
        panel,
        at: to_stored(now()),
    })
}

/// The record of an executed draw, rebuilt from what was stored; its hash is the one logged.
fn record_of(d: &DrawRow) -> ServiceResult<DrawRecord> {
    let (Some(seed), Some(outcome)) = (&d.seed, d.outcome().map_err(internal)?) else {
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
        status: match outcome {
            pb::DrawOutcome::Executed => draw::Status::Executed,
            pb::DrawOutcome::Insufficient | pb::DrawOutcome::Unspecified => {
                draw::Status::Insufficient
            }
        },
        result: d
            .result
            .as_deref()
            .map(|r| from_json("result", r))
            .transpose()
            .map_err(internal)?,
    })
}
