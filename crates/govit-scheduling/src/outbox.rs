//! What review scheduling owes the registry and the projects service, as typed calls in its
//! outbox. A message's subject is the resource its receiver acts on (a draw or an expert at the
//! registry, a review at the projects service), so an outage of one receiver never holds back
//! another's messages, and messages about one resource go out in order.

use govit_platform::outbox::OutboxPayload;
use govit_proto::{StoredEnum, experts::v1 as epb, projects::v1 as ppb};
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

govit_proto::stored_enum! {
    /// What a message is, as the outbox stores it: the name of the call.
    pub enum Kind("outbox message kind") {
        ReplaceExpert = "ReplaceExpert",
        CancelDraw = "CancelDraw",
        RecordReviewOutcome = "RecordReviewOutcome",
        RecordReviewCancellation = "RecordReviewCancellation",
        RecordReviewService = "RecordReviewService",
    }
}

/// The kinds each peer receives, for resuming after that peer's outage.
pub const REGISTRY_KINDS: [Kind; 3] = [
    Kind::ReplaceExpert,
    Kind::CancelDraw,
    Kind::RecordReviewService,
];
pub const PROJECTS_KINDS: [Kind; 2] = [Kind::RecordReviewOutcome, Kind::RecordReviewCancellation];

/// The stored names of `kinds`, as the outbox queries take them.
pub fn stored_kinds(kinds: &[Kind]) -> Vec<&'static str> {
    kinds.iter().map(|k| k.as_stored()).collect()
}

impl Outgoing {
    fn message_kind(&self) -> Kind {
        match self {
            Outgoing::ReplaceExpert(_) => Kind::ReplaceExpert,
            Outgoing::CancelDraw(_) => Kind::CancelDraw,
            Outgoing::RecordReviewOutcome(_) => Kind::RecordReviewOutcome,
            Outgoing::RecordReviewCancellation(_) => Kind::RecordReviewCancellation,
            Outgoing::RecordReviewService(_) => Kind::RecordReviewService,
        }
    }
}

impl OutboxPayload for Outgoing {
    fn kind(&self) -> &'static str {
        self.message_kind().as_stored()
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
        Ok(match Kind::from_stored(kind)? {
            Kind::ReplaceExpert => Outgoing::ReplaceExpert(Message::decode(bytes)?),
            Kind::CancelDraw => Outgoing::CancelDraw(Message::decode(bytes)?),
            Kind::RecordReviewOutcome => Outgoing::RecordReviewOutcome(Message::decode(bytes)?),
            Kind::RecordReviewCancellation => {
                Outgoing::RecordReviewCancellation(Message::decode(bytes)?)
            }
            Kind::RecordReviewService => Outgoing::RecordReviewService(Message::decode(bytes)?),
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
