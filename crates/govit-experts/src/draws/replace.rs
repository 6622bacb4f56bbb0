//! Replacing a member of an executed draw's panel by the category's next alternate. Review
//! scheduling owns the panels and retries, so a replacement is idempotent by request id.

use govit_platform::{
    Caller, ServiceError, ServiceResult, Violations, idempotency,
    time::{now, to_stored},
};
use govit_proto::{StoredEnum, experts::v1 as pb};
use serde_json::json;

use super::draw_id;
use crate::{
    ExpertsService, internal,
    model::{DrawId, DrawRow, ExpertId, Panel},
    translog, validation as check,
};

/// A request to replace `leaving` on the `category` panel of a draw.
pub struct PanelReplacement {
    id: DrawId,
    category: String,
    leaving: ExpertId,
    reason: pb::ReplacementReason,
    request_id: String,
}

impl TryFrom<pb::ReplaceExpertRequest> for PanelReplacement {
    type Error = ServiceError;

    fn try_from(req: pb::ReplaceExpertRequest) -> ServiceResult<Self> {
        let mut v = Violations::new();
        let id = draw_id(&req.name);
        if id.is_err() {
            v.add("name", "must be draws/{id}");
        }
        check::code(&mut v, "category", &req.category);
        check::code(&mut v, "expert_id", &req.expert_id);
        let reason = match pb::ReplacementReason::try_from(req.reason) {
            Ok(pb::ReplacementReason::Unspecified) | Err(_) => {
                v.add(
                    "reason",
                    "must be DECLINED, UNREACHABLE, CONFLICT_DISCOVERED, UNAVAILABLE or OTHER",
                );
                pb::ReplacementReason::Unspecified
            }
            Ok(r) => r,
        };
        v.finish()?;
        Ok(PanelReplacement {
            id: id?,
            category: req.category,
            leaving: ExpertId(req.expert_id),
            reason,
            request_id: req.request_id,
        })
    }
}

/// A replacement as recorded: who left which category's panel, who came in, and why.
pub struct Replacement {
    pub category: String,
    pub leaving: ExpertId,
    pub came_in: String,
    pub reason: pb::ReplacementReason,
    /// The caller's scoped idempotency key.
    pub request_id: Option<String>,
}

impl ExpertsService {
    pub(crate) async fn replace_on_panel(
        &self,
        caller: &Caller,
        r: PanelReplacement,
    ) -> ServiceResult<DrawRow> {
        let key =
            (!r.request_id.is_empty()).then(|| idempotency::scoped_key(caller, &r.request_id));
        // A redelivered request (the scheduling service retries) must not replace twice; the
        // same key asking for another replacement is refused.
        if let Some(key) = &key
            && let Some((draw, category, left, reason)) =
                self.store.replacement_by_request(key).await?
        {
            let same = draw == r.id.0
                && category == r.category
                && left == r.leaving.0
                && reason == r.reason;
            if !same {
                return Err(ServiceError::request_id_reused("replacement", &r.id.name()));
            }
            return self.draw_or_not_found(&r.id).await;
        }
        let d = self.draw_or_not_found(&r.id).await?;
        if !d.has_panel().map_err(internal)? {
            return Err(ServiceError::precondition(
                "STATE_CONFLICT",
                d.name(),
                format!("{} has no panel: it is {}", d.name(), d.state.as_stored()),
            ));
        }
        let mut panel = d.panel().map_err(internal)?;
        let came_in = next_alternate(&d, &mut panel, &r.category, &r.leaving)?;
        let replacement = Replacement {
            category: r.category,
            leaving: r.leaving,
            came_in,
            reason: r.reason,
            request_id: key,
        };
        let at = to_stored(now());
        let mut tx = self
            .store
            .record_replacement(&d, &panel, &replacement, &at)
            .await?;
        translog::append(
            &mut tx,
            json!({"type": "expert_replaced", "draw_id": r.id.as_str(), "category": replacement.category,
                "left": replacement.leaving.as_str(), "came_in": replacement.came_in, "reason": replacement.reason.as_stored()}),
            Some(r.id.as_str()),
        )
        .await
        .map_err(internal)?;
        tx.commit().await?;
        self.draw_or_not_found(&r.id).await
    }
}

/// Puts the category's first alternate in the place of `leaving` on `panel`; the alternate.
fn next_alternate(
    d: &DrawRow,
    panel: &mut Panel,
    category: &str,
    leaving: &ExpertId,
) -> ServiceResult<String> {
    let Some(p) = panel.get_mut(category) else {
        return Err(ServiceError::precondition(
            "NOT_ON_PANEL",
            d.name(),
            format!("{} drew no panel for category {category}", d.name()),
        ));
    };
    // Whether the expert serves depends on the panel as it is now: a replacement that lost
    // a race finds them gone, which is a state, not a malformed request.
    let Some(position) = p.selected.iter().position(|e| *e == leaving.0) else {
        let (reason, what) = if p.replaced.contains(&leaving.0) {
            ("ALREADY_REPLACED", "was already replaced on")
        } else {
            ("NOT_ON_PANEL", "is not serving on")
        };
        return Err(ServiceError::precondition(
            reason,
            leaving.name(),
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
    p.replaced.push(leaving.0.clone());
    Ok(came_in)
}
