//! What review scheduling owes the registry and the projects service, as typed calls in its
//! outbox. A message's subject is the resource its receiver acts on (a draw or an expert at the
//! registry, a review at the projects service), so an outage of one receiver never holds back
//! another's messages, and messages about one resource go out in order.

use govit_platform::outbox::OutboxPayload;
use govit_proto::{experts::v1 as epb, projects::v1 as ppb};
use prost::Message;

#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// The next alternate in a declined or lapsed expert's place, invited here once the
    /// registry names them (or a supplementary draw when the alternates are used up).
    ReplaceExpert(epb::ReplaceExpertRequest),
    /// A draw of a cancelled review, or of an amended panel, that was not executed yet.
    CancelDraw(epb::CancelDrawRequest),
    RecordReviewOutcome(ppb::RecordReviewOutcomeRequest),
    RecordReviewCancellation(ppb::RecordReviewCancellationRequest),
    RecordReviewService(epb::RecordReviewServiceRequest),
}

/// The kinds each peer receives, for resuming after that peer's outage.
pub const REGISTRY_KINDS: &[&str] = &["ReplaceExpert", "CancelDraw", "RecordReviewService"];
pub const PROJECTS_KINDS: &[&str] = &["RecordReviewOutcome", "RecordReviewCancellation"];

impl OutboxPayload for Outgoing {
    fn kind(&self) -> &'static str {
        match self {
            Outgoing::ReplaceExpert(_) => "ReplaceExpert",
            Outgoing::CancelDraw(_) => "CancelDraw",
            Outgoing::RecordReviewOutcome(_) => "RecordReviewOutcome",
            Outgoing::RecordReviewCancellation(_) => "RecordReviewCancellation",
            Outgoing::RecordReviewService(_) => "RecordReviewService",
        }
    }

    fn subject(&self) -> String {
        match self {
            Outgoing::ReplaceExpert(r) => r.name.clone(),
            Outgoing::CancelDraw(r) => r.name.clone(),
            Outgoing::RecordReviewOutcome(r) => r.review.clone(),
            Outgoing::RecordReviewCancellation(r) => r.review.clone(),
            Outgoing::RecordReviewService(r) => r.name.clone(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Outgoing::ReplaceExpert(r) => r.encode_to_vec(),
            Outgoing::CancelDraw(r) => r.encode_to_vec(),
            Outgoing::RecordReviewOutcome(r) => r.encode_to_vec(),
            Outgoing::RecordReviewCancellation(r) => r.encode_to_vec(),
            Outgoing::RecordReviewService(r) => r.encode_to_vec(),
        }
    }

    fn decode(kind: &str, _subject: &str, bytes: &[u8]) -> anyhow::Result<Self> {
        Ok(match kind {
            "ReplaceExpert" => Outgoing::ReplaceExpert(Message::decode(bytes)?),
            "CancelDraw" => Outgoing::CancelDraw(Message::decode(bytes)?),
            "RecordReviewOutcome" => Outgoing::RecordReviewOutcome(Message::decode(bytes)?),
            "RecordReviewCancellation" => {
                Outgoing::RecordReviewCancellation(Message::decode(bytes)?)
            }
            "RecordReviewService" => Outgoing::RecordReviewService(Message::decode(bytes)?),
            other => anyhow::bail!("unknown outbox message kind {other:?}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_unknown_kinds_are_refused() {
        let message = Outgoing::CancelDraw(epb::CancelDrawRequest {
            name: "draws/d-1".into(),
            reason: "review cancelled".into(),
            reason_code: epb::DrawCancelReason::ReviewCancelled as i32,
        });
        assert_eq!(message.subject(), "draws/d-1");
        let decoded =
            Outgoing::decode(message.kind(), &message.subject(), &message.encode()).unwrap();
        assert_eq!(decoded, message);
        assert!(Outgoing::decode("REPLACE_EXPERT", "draws/d-1", &[]).is_err());
    }
}
