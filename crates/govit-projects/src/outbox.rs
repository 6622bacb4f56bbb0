//! What the projects service owes review scheduling and the registry, as typed calls in its
//! outbox, and the worker pass that delivers them.

use govit_platform::{
    error::status_reason,
    outbox::{self, OutboxPayload},
};
use govit_proto::{StoredEnum, experts::v1 as epb, scheduling::v1 as spb};
use prost::Message;
use tonic::Status;

use crate::ProjectsService;

/// Every call the projects service makes to another service after a commit.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    RequestReview(spb::RequestReviewRequest),
    CancelReview(spb::CancelReviewRequest),
    PauseReview(spb::PauseReviewRequest),
    ResumeReview(spb::ResumeReviewRequest),
    /// To the registry's transparency log.
    RecordReviewOverride(epb::RecordReviewOverrideRequest),
}

govit_proto::stored_enum! {
    /// What a message is, as the outbox stores it: the name of the call.
    pub enum Kind("outbox message kind") {
        RequestReview = "RequestReview",
        CancelReview = "CancelReview",
        PauseReview = "PauseReview",
        ResumeReview = "ResumeReview",
        RecordReviewOverride = "RecordReviewOverride",
    }
}

/// The kinds each peer receives, for resuming after that peer's outage.
const SCHEDULING_KINDS: [Kind; 4] = [
    Kind::RequestReview,
    Kind::CancelReview,
    Kind::PauseReview,
    Kind::ResumeReview,
];
const REGISTRY_KINDS: [Kind; 1] = [Kind::RecordReviewOverride];

impl Outgoing {
    fn message_kind(&self) -> Kind {
        match self {
            Outgoing::RequestReview(_) => Kind::RequestReview,
            Outgoing::CancelReview(_) => Kind::CancelReview,
            Outgoing::PauseReview(_) => Kind::PauseReview,
            Outgoing::ResumeReview(_) => Kind::ResumeReview,
            Outgoing::RecordReviewOverride(_) => Kind::RecordReviewOverride,
        }
    }
}

impl OutboxPayload for Outgoing {
    fn kind(&self) -> &'static str {
        self.message_kind().as_stored()
    }

    /// The review: its request, pause, resumption and cancellation go out in that order.
    fn subject(&self) -> String {
        match self {
            Outgoing::RequestReview(r) => format!("reviews/{}", r.review_id),
            Outgoing::CancelReview(r) => r.name.clone(),
            Outgoing::PauseReview(r) => r.name.clone(),
            Outgoing::ResumeReview(r) => r.name.clone(),
            Outgoing::RecordReviewOverride(r) => r.r#override.clone(),
        }
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Outgoing::RequestReview(r) => r.encode_to_vec(),
            Outgoing::CancelReview(r) => r.encode_to_vec(),
            Outgoing::PauseReview(r) => r.encode_to_vec(),
            Outgoing::ResumeReview(r) => r.encode_to_vec(),
            Outgoing::RecordReviewOverride(r) => r.encode_to_vec(),
        }
    }

    fn decode(kind: &str, _subject: &str, bytes: &[u8]) -> anyhow::Result<Self> {
        Ok(match Kind::from_stored(kind)? {
            Kind::RequestReview => Outgoing::RequestReview(Message::decode(bytes)?),
            Kind::CancelReview => Outgoing::CancelReview(Message::decode(bytes)?),
            Kind::PauseReview => Outgoing::PauseReview(Message::decode(bytes)?),
            Kind::ResumeReview => Outgoing::ResumeReview(Message::decode(bytes)?),
            Kind::RecordReviewOverride => Outgoing::RecordReviewOverride(Message::decode(bytes)?),
        })
    }
}

impl ProjectsService {
    /// Delivers the messages due in the outbox; returns how many were delivered. Transient
    /// failures are retried later with backoff; final refusals are parked for office.
    pub async fn deliver_outbox(&self) -> anyhow::Result<usize> {
        let mut delivered = 0;
        for message in outbox::claim_due(&self.store.db, 50).await? {
            let call = match message.decode::<Outgoing>() {
                Ok(call) => call,
                Err(e) => {
                    outbox::park_unreadable(&self.store.db, &message, &e).await?;
                    continue;
                }
            };
            let result = self.deliver(call).await;
            if result.is_ok() {
                delivered += 1;
            }
            outbox::settle(&self.store.db, &message, result).await?;
        }
        Ok(delivered)
    }

    async fn deliver(&self, call: Outgoing) -> Result<(), Status> {
        let unconfigured = |peer: &str| {
            Status::unavailable(format!("no {peer} is configured for this projects service"))
        };
        let scheduling = || {
            self.calendar
                .clone()
                .ok_or_else(|| unconfigured("scheduling service"))
        };
        match call {
            Outgoing::RequestReview(r) => scheduling()?.request_review(r).await.map(|_| ()),
            // A review that concluded before the cancellation arrived has nothing left to
            // cancel; its decision reaches the project and is kept without applying.
            Outgoing::CancelReview(r) => match scheduling()?.cancel_review(r).await {
                Err(s) if status_reason(&s).as_deref() == Some("REVIEW_CONCLUDED") => Ok(()),
                other => other.map(|_| ()),
            },
            Outgoing::PauseReview(r) => scheduling()?.pause_review(r).await.map(|_| ()),
            Outgoing::ResumeReview(r) => scheduling()?.resume_review(r).await.map(|_| ()),
            Outgoing::RecordReviewOverride(r) => {
                let mut registry = self
                    .registry
                    .clone()
                    .ok_or_else(|| unconfigured("registry"))?;
                registry.record_review_override(r).await.map(|_| ())
            }
        }
    }

    /// Runs `deliver_outbox` (and the monthly snapshot) every `interval` until the process
    /// stops. After an outage the worker watches each peer's health (`scheduling`, `registry`:
    /// their channels) and resumes within a pass of its return.
    pub fn spawn_outbox_worker(
        &self,
        scheduling: tonic::transport::Channel,
        registry: tonic::transport::Channel,
        interval: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let service = self.clone();
        tokio::spawn(async move {
            loop {
                let peers: [(_, &[Kind]); 2] = [
                    (&scheduling, &SCHEDULING_KINDS),
                    (&registry, &REGISTRY_KINDS),
                ];
                for (peer, kinds) in peers {
                    let kinds: Vec<&str> = kinds.iter().map(|k| k.as_stored()).collect();
                    if let Err(e) =
                        outbox::resume_if_peer_back(&service.store.db, peer, &kinds).await
                    {
                        tracing::warn!(error = %e, "outbox peer check failed");
                    }
                }
                if let Err(e) = service.deliver_outbox().await {
                    tracing::warn!(error = %e, "outbox delivery failed");
                }
                // Taking the snapshot logs it; nothing is logged while nothing happens.
                match service.snapshot_previous_month_if_due().await {
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = ?e, "monthly snapshot not taken; will retry"),
                }
                tokio::time::sleep(interval).await;
            }
        })
    }
}
