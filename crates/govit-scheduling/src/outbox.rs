//! What review scheduling owes the registry and the projects service, as typed calls in its
//! outbox. Every message is about one review and goes out in order with the review's others.

use govit_platform::outbox::OutboxPayload;
use govit_proto::{experts::v1 as epb, projects::v1 as ppb};
use prost::Message;

#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// The review's id.
    pub review: String,
    pub call: Call,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    /// The next alternate in a declined or lapsed expert's place, invited here once the
    /// registry names them (or a supplementary draw when the alternates are used up).
    ReplaceExpert(epb::ReplaceExpertRequest),
    /// A draw of a cancelled review, or of an amended panel, that was not executed yet.
    CancelDraw(epb::CancelDrawRequest),
    RecordReviewOutcome(ppb::RecordReviewOutcomeRequest),
    RecordReviewCancellation(ppb::RecordReviewCancellationRequest),
    RecordReviewService(epb::RecordReviewServiceRequest),
}

impl Outgoing {
    pub fn new(review: &str, call: Call) -> Self {
        Outgoing {
            review: review.to_owned(),
            call,
        }
    }
}

impl OutboxPayload for Outgoing {
    fn kind(&self) -> &'static str {
        match &self.call {
            Call::ReplaceExpert(_) => "ReplaceExpert",
            Call::CancelDraw(_) => "CancelDraw",
            Call::RecordReviewOutcome(_) => "RecordReviewOutcome",
            Call::RecordReviewCancellation(_) => "RecordReviewCancellation",
            Call::RecordReviewService(_) => "RecordReviewService",
        }
    }

    fn subject(&self) -> String {
        format!("reviews/{}", self.review)
    }

    fn encode(&self) -> Vec<u8> {
        match &self.call {
            Call::ReplaceExpert(r) => r.encode_to_vec(),
            Call::CancelDraw(r) => r.encode_to_vec(),
            Call::RecordReviewOutcome(r) => r.encode_to_vec(),
            Call::RecordReviewCancellation(r) => r.encode_to_vec(),
            Call::RecordReviewService(r) => r.encode_to_vec(),
        }
    }

    fn decode(kind: &str, subject: &str, bytes: &[u8]) -> anyhow::Result<Self> {
        let review = subject
            .strip_prefix("reviews/")
            .ok_or_else(|| anyhow::anyhow!("outbox subject {subject:?} is not a review"))?;
        let call = match kind {
            "ReplaceExpert" => Call::ReplaceExpert(Message::decode(bytes)?),
            "CancelDraw" => Call::CancelDraw(Message::decode(bytes)?),
            "RecordReviewOutcome" => Call::RecordReviewOutcome(Message::decode(bytes)?),
            "RecordReviewCancellation" => Call::RecordReviewCancellation(Message::decode(bytes)?),
            "RecordReviewService" => Call::RecordReviewService(Message::decode(bytes)?),
            other => anyhow::bail!("unknown outbox message kind {other:?}"),
        };
        Ok(Outgoing::new(review, call))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_unknown_kinds_are_refused() {
        let message = Outgoing::new(
            "rv-1",
            Call::CancelDraw(epb::CancelDrawRequest {
                name: "draws/d-1".into(),
                reason: "review cancelled".into(),
                reason_code: epb::DrawCancelReason::ReviewCancelled as i32,
            }),
        );
        let decoded =
            Outgoing::decode(message.kind(), &message.subject(), &message.encode()).unwrap();
        assert_eq!(decoded, message);
        assert!(Outgoing::decode("REPLACE_EXPERT", "reviews/rv-1", &[]).is_err());
        assert!(Outgoing::decode("CancelDraw", "projects/2026-0001", &[]).is_err());
    }
}
