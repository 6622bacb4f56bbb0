//! The gRPC face of review scheduling. Every method has one shape: the request becomes a
//! command (`TryFrom`, where its checks live), the caller is checked, and the domain acts.
//! Meetings, opinions and conclusions are checked against their review before the caller, as
//! their fields' rules depend on it.

use std::pin::Pin;

use govit_platform::{Caller, Role, ServiceError, error::respond, idempotency::Once};
use govit_proto::{
    common::v1 as cpb,
    scheduling::v1::{self as pb, review_scheduling_service_server::ReviewSchedulingService},
};
use sqlx::Row;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::{
    SchedulingService,
    calendar::{Day, Span, WorkingDaysAfter, YearImport},
    control::{MemberRemoval, PanelAmendment, ReviewChange},
    notify::{self, Acknowledgement},
    reviews::{
        Answer, CancelMeeting, Conclusion, MeetingPlan, NewOpinion, NewReview, REVIEW_READERS,
        RateExpert, ReviewFilter, SetChair, internal, parse_review,
    },
};

type NotificationStream = Pin<Box<dyn Stream<Item = Result<pb::Notification, Status>> + Send>>;

#[tonic::async_trait]
impl ReviewSchedulingService for SchedulingService {
    async fn import_calendar_year(
        &self,
        request: Request<pb::ImportCalendarYearRequest>,
    ) -> Result<Response<pb::CalendarYear>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require(&[Role::Office])?;
        let once = Once::new(
            &caller,
            "ImportCalendarYear",
            &request.get_ref().request_id,
            request.get_ref(),
        )?;
        respond(
            once.run(self.db(), async {
                let import = YearImport::try_from(request.into_inner())?;
                self.import_calendar(&caller, import).await
            })
            .await,
        )
    }

    async fn get_calendar_year(
        &self,
        request: Request<pb::GetCalendarYearRequest>,
    ) -> Result<Response<pb::CalendarYear>, Status> {
        respond(self.calendar_year(request.into_inner().year).await)
    }

    async fn is_working_day(
        &self,
        request: Request<pb::IsWorkingDayRequest>,
    ) -> Result<Response<pb::IsWorkingDayResponse>, Status> {
        respond(
            async {
                let day = Day::try_from(request.into_inner())?;
                self.day_kind(day).await
            }
            .await,
        )
    }

    async fn add_working_days(
        &self,
        request: Request<pb::AddWorkingDaysRequest>,
    ) -> Result<Response<pb::AddWorkingDaysResponse>, Status> {
        respond(
            async {
                let after = WorkingDaysAfter::try_from(request.into_inner())?;
                self.working_day_after(after).await
            }
            .await,
        )
    }

    async fn working_days_between(
        &self,
        request: Request<pb::WorkingDaysBetweenRequest>,
    ) -> Result<Response<pb::WorkingDaysBetweenResponse>, Status> {
        respond(
            async {
                let span = Span::try_from(request.into_inner())?;
                self.count_working_days(span).await
            }
            .await,
        )
    }

    async fn request_review(
        &self,
        request: Request<pb::RequestReviewRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let new = NewReview::try_from(request.into_inner())?;
                caller.require(&[Role::Service, Role::Office])?;
                self.open_review(&caller, new).await
            }
            .await,
        )
    }

    async fn get_review(
        &self,
        request: Request<pb::GetReviewRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let id = parse_review(&request.get_ref().name)?;
                caller.require(&REVIEW_READERS)?;
                self.read_review(&caller, &id).await
            }
            .await,
        )
    }

    async fn list_reviews(
        &self,
        request: Request<pb::ListReviewsRequest>,
    ) -> Result<Response<pb::ListReviewsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let filter = ReviewFilter::try_from(request.into_inner())?;
                caller.require(&REVIEW_READERS)?;
                self.find_reviews(&caller, filter).await
            }
            .await,
        )
    }

    async fn advance_review(
        &self,
        request: Request<pb::AdvanceReviewRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let id = parse_review(&request.get_ref().name)?;
                caller.require(&[Role::Office, Role::Service])?;
                self.review(&id).await?;
                self.advance(&id).await?;
                self.view(&caller, &self.review(&id).await?).await
            }
            .await,
        )
    }

    async fn amend_review_panel(
        &self,
        request: Request<pb::AmendReviewPanelRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let amendment = PanelAmendment::try_from(request.into_inner())?;
                caller.require(&[Role::Office])?;
                let r = self.amend_panel(&caller, amendment).await?;
                self.advance_and_view(&caller, &r.id, "draw not started yet")
                    .await
            }
            .await,
        )
    }

    async fn cancel_review(
        &self,
        request: Request<pb::CancelReviewRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let change = ReviewChange::try_from(request.into_inner())?;
                caller.require(&[Role::Office, Role::Service])?;
                let r = self.call_off_review(&caller, change).await?;
                self.view(&caller, &r).await
            }
            .await,
        )
    }

    async fn pause_review(
        &self,
        request: Request<pb::PauseReviewRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let change = ReviewChange::try_from(request.into_inner())?;
                // Only as its project is suspended: office suspends the project, not the review.
                caller.require(&[Role::Service])?;
                let r = self.pause(&caller, change).await?;
                self.view(&caller, &r).await
            }
            .await,
        )
    }

    async fn resume_review(
        &self,
        request: Request<pb::ResumeReviewRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let change = ReviewChange::try_from(request.into_inner())?;
                caller.require(&[Role::Service])?;
                let r = self.resume(&caller, change).await?;
                self.advance_and_view(&caller, &r.id, "review not advanced yet")
                    .await
            }
            .await,
        )
    }

    async fn list_read_events(
        &self,
        request: Request<cpb::ListReadEventsRequest>,
    ) -> Result<Response<cpb::ListReadEventsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(govit_platform::reads::list(&self.db, &caller, request.get_ref()).await)
    }

    async fn list_outbox_messages(
        &self,
        request: Request<cpb::ListOutboxMessagesRequest>,
    ) -> Result<Response<cpb::ListOutboxMessagesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(govit_platform::outbox::list(&self.db, &caller, request.get_ref()).await)
    }

    async fn retry_outbox_message(
        &self,
        request: Request<cpb::RetryOutboxMessageRequest>,
    ) -> Result<Response<cpb::OutboxMessage>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(govit_platform::outbox::retry(&self.db, &caller, &request.get_ref().name).await)
    }

    async fn replace_panel_member(
        &self,
        request: Request<pb::ReplacePanelMemberRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let removal = MemberRemoval::try_from(request.into_inner())?;
                caller.require(&[Role::Office])?;
                let invitation = self.replace_member(&caller, removal).await?;
                invitation.to_proto().map_err(internal)
            }
            .await,
        )
    }

    async fn respond_to_invitation(
        &self,
        request: Request<pb::RespondToInvitationRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let answer = Answer::try_from(request.into_inner())?;
                answer.check_caller(&caller)?;
                let invitation = self.answer_invitation(&caller, answer).await?;
                invitation.to_proto().map_err(internal)
            }
            .await,
        )
    }

    async fn schedule_meeting(
        &self,
        request: Request<pb::ScheduleMeetingRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let plan = MeetingPlan::try_from(request.into_inner())?;
                let r = self.review(&plan.id).await?;
                let meeting = self.check_meeting(&r, plan).await?;
                caller.require(&[Role::Office])?;
                let r = self.book_meeting(&caller, &r, meeting).await?;
                self.view(&caller, &r).await
            }
            .await,
        )
    }

    async fn cancel_meeting(
        &self,
        request: Request<pb::CancelMeetingRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let cancel = CancelMeeting::try_from(request.into_inner())?;
                caller.require(&[Role::Office])?;
                let r = self.call_off_meeting(&caller, cancel).await?;
                self.view(&caller, &r).await
            }
            .await,
        )
    }

    async fn set_chair(
        &self,
        request: Request<pb::SetChairRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let chair = SetChair::try_from(request.into_inner())?;
                caller.require(&[Role::Office])?;
                let r = self.appoint_chair(&caller, chair).await?;
                self.view(&caller, &r).await
            }
            .await,
        )
    }

    async fn submit_opinion(
        &self,
        request: Request<pb::SubmitOpinionRequest>,
    ) -> Result<Response<pb::Opinion>, Status> {
        let caller = Caller::from_request(&request)?;
        // Before a kept answer is given: a retry is the caller's too.
        caller.require(&[Role::Expert])?;
        let once = Once::new(
            &caller,
            "SubmitOpinion",
            &request.get_ref().request_id,
            request.get_ref(),
        )?;
        respond(
            once.run(self.db(), async {
                let new = NewOpinion::try_from(request.into_inner())?;
                let r = self.review(&new.id).await?;
                let opinion = new.check(&r, &self.policy)?;
                let opinion = self.add_opinion(&caller, &r, opinion).await?;
                opinion.to_proto().map_err(internal)
            })
            .await,
        )
    }

    async fn record_conclusion(
        &self,
        request: Request<pb::RecordConclusionRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = Caller::from_request(&request)?;
        // Before a kept answer is given: a retry is the caller's too.
        caller.require(&[Role::Expert])?;
        let once = Once::new(
            &caller,
            "RecordConclusion",
            &request.get_ref().request_id,
            request.get_ref(),
        )?;
        respond(
            once.run(self.db(), async {
                let conclusion = Conclusion::try_from(request.into_inner())?;
                let r = self.review(&conclusion.id).await?;
                let conclusion = conclusion.check(&r)?;
                let r = self.conclude(&caller, &r, conclusion).await?;
                self.view(&caller, &r).await
            })
            .await,
        )
    }

    async fn rate_expert(
        &self,
        request: Request<pb::RateExpertRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = Caller::from_request(&request)?;
        // Before a kept answer is given: a retry is the caller's too.
        caller.require(&[Role::Office])?;
        let once = Once::new(
            &caller,
            "RateExpert",
            &request.get_ref().request_id,
            request.get_ref(),
        )?;
        respond(
            once.run(self.db(), async {
                let rating = RateExpert::try_from(request.into_inner())?;
                let r = self.rate(&caller, rating).await?;
                self.view(&caller, &r).await
            })
            .await,
        )
    }

    type StreamNotificationsStream = NotificationStream;

    async fn stream_notifications(
        &self,
        request: Request<pb::StreamNotificationsRequest>,
    ) -> Result<Response<Self::StreamNotificationsStream>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require(&[Role::Service]).map_err(Status::from)?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let db = self.db.clone();
        let notify = self.notify.clone();
        let drain = self.drain.clone();
        tokio::spawn(async move {
            let mut last = 0i64;
            loop {
                let rows = match notify::pending_after(&db, last).await {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = tx.send(Err(Status::from(ServiceError::from(e)))).await;
                        return;
                    }
                };
                for r in &rows {
                    last = r.try_get::<i64, _>("seq").unwrap_or(last);
                    let item =
                        notify::to_proto(r).map_err(|e| Status::from(ServiceError::Internal(e)));
                    if tx.send(item).await.is_err() {
                        return;
                    }
                }
                if rows.is_empty() {
                    // New notifications wake the stream at once; other replicas' are found by
                    // the periodic look.
                    // On shutdown the stream ends cleanly: the client reconnects (to another
                    // replica) and is sent again what it did not acknowledge.
                    tokio::select! {
                        _ = notify.notified() => {}
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        _ = tx.closed() => return,
                        _ = drain.started() => return,
                    }
                }
            }
        });
        Ok(Response::new(
            Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx)) as NotificationStream,
        ))
    }

    async fn acknowledge_notification(
        &self,
        request: Request<pb::AcknowledgeNotificationRequest>,
    ) -> Result<Response<pb::Notification>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let ack = Acknowledgement::try_from(request.into_inner())?;
                caller.require(&[Role::Service])?;
                notify::acknowledge(&self.db, ack).await
            }
            .await,
        )
    }

    async fn get_outbox_message(
        &self,
        request: Request<cpb::GetOutboxMessageRequest>,
    ) -> Result<Response<cpb::OutboxMessage>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(govit_platform::outbox::get(&self.db, &caller, &request.get_ref().name).await)
    }

    async fn get_read_event(
        &self,
        request: Request<cpb::GetReadEventRequest>,
    ) -> Result<Response<cpb::ReadEvent>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(govit_platform::reads::get(&self.db, &caller, &request.get_ref().name).await)
    }
}
