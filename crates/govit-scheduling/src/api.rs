//! The gRPC face of review scheduling.

use std::{collections::BTreeMap, pin::Pin};

use chrono::{Datelike, NaiveDate};
use govit_platform::error::respond;
use govit_platform::{
    Caller, Role, ServiceError, ServiceResult, Violations,
    paging::Page,
    time::{date_from_proto, date_to_proto, now, stored_to_timestamp, to_stored},
};
use govit_proto::scheduling::v1::{
    self as pb, review_scheduling_service_server::ReviewSchedulingService,
};
use sqlx::Row;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::{
    SchedulingService,
    calendar::{Kind, View, is_weekend},
    model::ReviewRow,
    notify,
    reviews::{internal, parse_review, today},
};

fn date(field: &str, d: Option<&govit_proto::google::r#type::Date>) -> ServiceResult<NaiveDate> {
    d.and_then(date_from_proto)
        .ok_or_else(|| ServiceError::field(field, "is not a calendar date"))
}

fn kind_proto(k: Kind) -> pb::DayKind {
    match k {
        Kind::Workday => pb::DayKind::Workday,
        Kind::MakeupWorkday => pb::DayKind::MakeupWorkday,
        Kind::Holiday => pb::DayKind::Holiday,
    }
}

type NotificationStream = Pin<Box<dyn Stream<Item = Result<pb::Notification, Status>> + Send>>;

impl SchedulingService {
    async fn calendar_year(&self, year: i32) -> ServiceResult<pb::CalendarYear> {
        let row = sqlx::query(
            "SELECT status, version, source, update_time FROM calendar_years WHERE year = $1",
        )
        .bind(i64::from(year))
        .fetch_optional(&self.db.pool)
        .await?
        .ok_or_else(|| ServiceError::not_found("calendar year", format!("calendars/{year}")))?;
        let days =
            sqlx::query("SELECT day, kind, name FROM calendar_days WHERE year = $1 ORDER BY day")
                .bind(i64::from(year))
                .fetch_all(&self.db.pool)
                .await?;
        let status: String = row.try_get(0)?;
        Ok(pb::CalendarYear {
            year,
            status: pb::CalendarStatus::from_str_name(&format!("CALENDAR_STATUS_{status}"))
                .unwrap_or_default() as i32,
            version: row.try_get(1)?,
            source: row.try_get(2)?,
            days: days
                .iter()
                .map(|d| -> ServiceResult<_> {
                    let day: String = d.try_get(0)?;
                    let kind: String = d.try_get(1)?;
                    Ok(pb::CalendarDay {
                        date: Some(date_to_proto(
                            govit_platform::time::date_from_stored(&day).map_err(internal)?,
                        )),
                        kind: kind_proto(Kind::parse(&kind).unwrap_or(Kind::Workday)) as i32,
                        name: d.try_get(2)?,
                    })
                })
                .collect::<ServiceResult<_>>()?,
            update_time: Some(
                stored_to_timestamp(&row.try_get::<String, _>(3)?).map_err(internal)?,
            ),
        })
    }

    /// Replaces a year's days, bumps its version and recomputes the deadlines of open reviews
    /// that the year touches, each with a review event — all in one transaction.
    async fn import_year(
        &self,
        caller: &Caller,
        req: pb::ImportCalendarYearRequest,
    ) -> ServiceResult<pb::CalendarYear> {
        let mut v = Violations::new();
        if !(2000..=2100).contains(&req.year) {
            v.add("year", "must be between 2000 and 2100");
        }
        let status = match pb::CalendarStatus::try_from(req.status) {
            Ok(pb::CalendarStatus::Official) => "OFFICIAL",
            Ok(pb::CalendarStatus::Provisional) => "PROVISIONAL",
            _ => {
                v.add("status", "must be OFFICIAL or PROVISIONAL");
                ""
            }
        };
        v.text("source", &req.source, 500);
        let mut days: BTreeMap<NaiveDate, (Kind, String)> = BTreeMap::new();
        for (i, d) in req.days.iter().enumerate() {
            let field = format!("days[{i}]");
            let Some(day) = d.date.as_ref().and_then(date_from_proto) else {
                v.add(format!("{field}.date"), "is not a calendar date");
                continue;
            };
            if day.year() != req.year {
                v.add(
                    format!("{field}.date"),
                    format!("{day} is not in {}", req.year),
                );
            }
            let kind = match pb::DayKind::try_from(d.kind) {
                Ok(pb::DayKind::Workday) => Kind::Workday,
                Ok(pb::DayKind::MakeupWorkday) => Kind::MakeupWorkday,
                Ok(pb::DayKind::Holiday) => Kind::Holiday,
                _ => {
                    v.add(
                        format!("{field}.kind"),
                        format!("{} is not a known day kind", d.kind),
                    );
                    continue;
                }
            };
            if kind == Kind::MakeupWorkday && !is_weekend(day) {
                v.add(
                    format!("{field}.kind"),
                    format!("{day} is a weekday; only a weekend day is a make-up workday"),
                );
            }
            if kind == Kind::Workday && is_weekend(day) {
                v.add(
                    format!("{field}.kind"),
                    format!("{day} is a weekend day: a worked weekend is MAKEUP_WORKDAY"),
                );
            }
            v.optional_text(&format!("{field}.name"), &d.name, 100);
            if days.insert(day, (kind, d.name.trim().to_owned())).is_some() {
                v.add(format!("{field}.date"), format!("{day} appears twice"));
            }
        }
        v.finish()?;
        caller.require(&[Role::Office])?;
        // Only what differs from Monday to Friday is stored.
        days.retain(|_, (k, _)| *k != Kind::Workday);
        let at = to_stored(now());
        let mut tx = self.begin().await?;
        let version: i64 = sqlx::query(
            "INSERT INTO calendar_years (year, status, version, source, update_time) VALUES ($1, $2, 1, $3, $4) \
             ON CONFLICT (year) DO UPDATE SET status = excluded.status, version = calendar_years.version + 1, \
             source = excluded.source, update_time = excluded.update_time RETURNING version",
        )
        .bind(i64::from(req.year))
        .bind(status)
        .bind(req.source.trim().to_owned())
        .bind(at)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        sqlx::query("DELETE FROM calendar_days WHERE year = $1")
            .bind(i64::from(req.year))
            .execute(&mut *tx)
            .await?;
        for (day, (kind, name)) in &days {
            sqlx::query(
                "INSERT INTO calendar_days (day, year, kind, name) VALUES ($1, $2, $3, $4)",
            )
            .bind(day.to_string())
            .bind(i64::from(req.year))
            .bind(kind.as_str())
            .bind(name.clone())
            .execute(&mut *tx)
            .await?;
        }
        // Open deadlines that the year touches are computed again with the new figures.
        let open =
            sqlx::query_as::<_, ReviewRow>("SELECT * FROM reviews WHERE state <> 'CONCLUDED'")
                .fetch_all(&mut *tx)
                .await?;
        let mut view = View::default().with_year(req.year, version, days.clone());
        for r in open {
            let request =
                govit_platform::time::date_from_stored(&r.request_date).map_err(internal)?;
            let old = govit_platform::time::date_from_stored(&r.deadline).map_err(internal)?;
            if request.year() != req.year && old.year() != req.year {
                continue;
            }
            let n = self
                .policy
                .deadline_working_days
                .get(&r.stage)
                .copied()
                .unwrap_or(5);
            let (new, cal) = match view.add_working_days(&self.db, request, n).await {
                Ok(x) => x,
                Err(_) => continue,
            };
            sqlx::query("UPDATE reviews SET deadline = $1, calendar_version = $2, version = version + 1 WHERE id = $3")
                .bind(new.to_string())
                .bind(cal.clone())
                .bind(r.id.clone())
                .execute(&mut *tx)
                .await?;
            Self::event(
                &mut tx,
                &r.id,
                &caller.subject,
                "DeadlineRecomputed",
                &format!("{old} → {new} (calendar {cal})"),
            )
            .await?;
        }
        tx.commit().await?;
        tracing::info!(
            year = req.year,
            version,
            days = days.len(),
            "calendar year imported"
        );
        self.calendar_year(req.year).await
    }
}

#[tonic::async_trait]
impl ReviewSchedulingService for SchedulingService {
    async fn import_calendar_year(
        &self,
        request: Request<pb::ImportCalendarYearRequest>,
    ) -> Result<Response<pb::CalendarYear>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(self.import_year(&caller, request.into_inner()).await)
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
        let req = request.into_inner();
        respond(
            async {
                let d = date("date", req.date.as_ref())?;
                let mut view = View::default();
                let (kind, name) = view.kind(&self.db, d).await?;
                Ok(pb::IsWorkingDayResponse {
                    working_day: kind.is_working(),
                    kind: kind_proto(kind) as i32,
                    name,
                    calendar_version: view.version_of(&[d.year()].into()),
                })
            }
            .await,
        )
    }

    async fn add_working_days(
        &self,
        request: Request<pb::AddWorkingDaysRequest>,
    ) -> Result<Response<pb::AddWorkingDaysResponse>, Status> {
        let req = request.into_inner();
        respond(
            async {
                let d = date("date", req.date.as_ref())?;
                if !(0..=366).contains(&req.days) {
                    return Err(ServiceError::field("days", "must be between 0 and 366"));
                }
                let (end, version) = View::default()
                    .add_working_days(&self.db, d, req.days as u32)
                    .await?;
                Ok(pb::AddWorkingDaysResponse {
                    date: Some(date_to_proto(end)),
                    calendar_version: version,
                })
            }
            .await,
        )
    }

    async fn working_days_between(
        &self,
        request: Request<pb::WorkingDaysBetweenRequest>,
    ) -> Result<Response<pb::WorkingDaysBetweenResponse>, Status> {
        let req = request.into_inner();
        respond(
            async {
                let s = date("start_date", req.start_date.as_ref())?;
                let e = date("end_date", req.end_date.as_ref())?;
                if e < s || (e - s).num_days() > 3660 {
                    return Err(ServiceError::field(
                        "end_date",
                        "must be on or after start_date, within ten years",
                    ));
                }
                let (n, version) = View::default().working_days_between(&self.db, s, e).await?;
                Ok(pb::WorkingDaysBetweenResponse {
                    working_days: n,
                    calendar_version: version,
                })
            }
            .await,
        )
    }

    async fn request_review(
        &self,
        request: Request<pb::RequestReviewRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(async {
            let Some(r) = self.request_review(&caller, req.clone()).await? else {
                // validate_only: what would be created, nothing of it stored.
                return Ok(pb::Review {
                    project: req.project,
                    stage: req.stage,
                    panel: req.panel,
                    excluded_organizations: req.excluded_organizations,
                    applicant_organization: req.applicant_organization,
                    accept_time: req.accept_time,
                    ..Default::default()
                });
            };
            // Start drawing at once; the worker picks up whatever this could not finish.
            if let Err(e) = self.advance(&r.id).await {
                tracing::warn!(review = %r.id, error = ?e, "draw not started yet; the worker will retry");
            }
            self.view(&caller, &self.review(&r.id).await?).await
        }
        .await)
    }

    async fn get_review(
        &self,
        request: Request<pb::GetReviewRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let id = parse_review(&req.name)?;
                caller.require(&crate::reviews::REVIEW_READERS)?;
                let r = match self.review(&id).await {
                    Err(ServiceError::NotFound { .. })
                        if matches!(caller.role, Role::Applicant | Role::Expert) =>
                    {
                        return Err(crate::reviews::hidden(&caller));
                    }
                    other => other?,
                };
                self.view(&caller, &r).await
            }
            .await,
        )
    }

    async fn list_reviews(
        &self,
        request: Request<pb::ListReviewsRequest>,
    ) -> Result<Response<pb::ListReviewsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(async {
            let mut v = Violations::new();
            let project_id = v.resource_id("project", &req.project, "projects", true);
            let stage = match pb::ReviewStage::try_from(req.stage) {
                Ok(pb::ReviewStage::Unspecified) => None,
                Ok(s) => Some(s.short_name().to_owned()),
                Err(_) => {
                    v.add("stage", format!("{} is not a known value", req.stage));
                    None
                }
            };
            let state = match pb::ReviewState::try_from(req.state) {
                Ok(pb::ReviewState::Unspecified) => None,
                Ok(s) => Some(s.as_str_name().trim_start_matches("REVIEW_STATE_").to_owned()),
                Err(_) => {
                    v.add("state", format!("{} is not a known value", req.state));
                    None
                }
            };
            v.finish()?;
            caller.require(&crate::reviews::REVIEW_READERS)?;
            // Applicants list their own organisation's reviews, experts those whose panel they
            // are on; everyone else all of them.
            let (applicant, expert) = match caller.role {
                Role::Applicant => (caller.organization.clone().unwrap_or_else(|| "-".into()), String::new()),
                Role::Expert => (String::new(), caller.expert.clone().unwrap_or_else(|| "-".into())),
                _ => (String::new(), String::new()),
            };
            let page = Page::parse(req.page_size, &req.page_token, &format!("reviews {project_id} {stage:?} {state:?} {} {applicant} {expert}", req.overdue_only))?;
            let (after_time, after_id) = page.after.as_deref().and_then(|k| k.split_once(' ')).map(|(a, b)| (a.to_owned(), b.to_owned())).unwrap_or_default();
            let rows = sqlx::query_as::<_, ReviewRow>(
                "SELECT * FROM reviews WHERE ($1 = '' OR project_id = $1) AND ($2 = '' OR stage = $2) AND ($3 = '' OR state = $3) \
                 AND ($4 = 0 OR (state NOT IN ('CONCLUDED', 'CANCELLED') AND deadline < $5)) AND (create_time > $6 OR (create_time = $6 AND id > $7)) \
                 AND ($9 = '' OR applicant = $9) \
                 AND ($10 = '' OR EXISTS (SELECT 1 FROM invitations i WHERE i.review_id = reviews.id AND i.expert_id = $10 AND i.state IN ('PENDING', 'CONFIRMED'))) \
                 ORDER BY create_time, id LIMIT $8",
            )
            .bind(project_id)
            .bind(stage.unwrap_or_default())
            .bind(state.unwrap_or_default())
            .bind(i64::from(req.overdue_only))
            .bind(today().to_string())
            .bind(after_time)
            .bind(after_id)
            .bind(page.fetch_limit())
            .bind(applicant)
            .bind(expert)
            .fetch_all(&self.db.pool)
            .await?;
            let mut rows = rows;
            let next_page_token = page.finish(&mut rows, |r| format!("{} {}", r.create_time, r.id));
            let mut reviews = Vec::new();
            for r in &rows {
                reviews.push(self.view(&caller, r).await?);
            }
            Ok(pb::ListReviewsResponse { reviews, next_page_token })
        }
        .await)
    }

    async fn advance_review(
        &self,
        request: Request<pb::AdvanceReviewRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let id = parse_review(&req.name)?;
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
        let req = request.into_inner();
        respond(
            async {
                let r = self.amend_panel(&caller, req).await?;
                if let Err(e) = self.advance(&r.id).await {
                    tracing::warn!(review = %r.id, error = ?e, "draw not started yet; the worker will retry");
                }
                self.view(&caller, &self.review(&r.id).await?).await
            }
            .await,
        )
    }

    async fn cancel_review(
        &self,
        request: Request<pb::CancelReviewRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let r = self.cancel_review(&caller, req).await?;
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
        let req = request.into_inner();
        respond(
            async {
                let r = self.pause_review(&caller, req).await?;
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
        let req = request.into_inner();
        respond(
            async {
                let r = self.resume_review(&caller, req).await?;
                if let Err(e) = self.advance(&r.id).await {
                    tracing::warn!(review = %r.id, error = ?e, "review not advanced yet; the worker will retry");
                }
                self.view(&caller, &self.review(&r.id).await?).await
            }
            .await,
        )
    }

    async fn list_read_events(
        &self,
        request: Request<govit_proto::common::v1::ListReadEventsRequest>,
    ) -> Result<Response<govit_proto::common::v1::ListReadEventsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(govit_platform::reads::list(&self.db, &caller, request.get_ref()).await)
    }

    async fn list_outbox_messages(
        &self,
        request: Request<govit_proto::common::v1::ListOutboxMessagesRequest>,
    ) -> Result<Response<govit_proto::common::v1::ListOutboxMessagesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(govit_platform::outbox::list(&self.db, &caller, request.get_ref()).await)
    }

    async fn retry_outbox_message(
        &self,
        request: Request<govit_proto::common::v1::RetryOutboxMessageRequest>,
    ) -> Result<Response<govit_proto::common::v1::OutboxMessage>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(govit_platform::outbox::retry(&self.db, &caller, &request.get_ref().name).await)
    }

    async fn replace_panel_member(
        &self,
        request: Request<pb::ReplacePanelMemberRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                self.replace_member(&caller, req)
                    .await?
                    .to_proto()
                    .map_err(internal)
            }
            .await,
        )
    }

    async fn respond_to_invitation(
        &self,
        request: Request<pb::RespondToInvitationRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                self.respond(&caller, req)
                    .await?
                    .to_proto()
                    .map_err(internal)
            }
            .await,
        )
    }

    async fn schedule_meeting(
        &self,
        request: Request<pb::ScheduleMeetingRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let r = self.schedule_meeting(&caller, req).await?;
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
        let req = request.into_inner();
        respond(
            async {
                let r = self.cancel_meeting(&caller, req).await?;
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
        let req = request.into_inner();
        respond(
            async {
                let r = self.set_chair(&caller, req).await?;
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
        let req = request.into_inner();
        respond(
            async {
                self.submit_opinion(&caller, req)
                    .await?
                    .to_proto()
                    .map_err(internal)
            }
            .await,
        )
    }

    async fn record_conclusion(
        &self,
        request: Request<pb::RecordConclusionRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let r = self.record_conclusion(&caller, req).await?;
                self.view(&caller, &r).await
            }
            .await,
        )
    }

    async fn rate_expert(
        &self,
        request: Request<pb::RateExpertRequest>,
    ) -> Result<Response<pb::Review>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let r = self.rate_expert(&caller, req).await?;
                self.view(&caller, &r).await
            }
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
        tokio::spawn(async move {
            let mut last = 0i64;
            loop {
                let rows = sqlx::query("SELECT * FROM notifications WHERE status = 'PENDING' AND seq > $1 ORDER BY seq LIMIT 100")
                    .bind(last)
                    .fetch_all(&db.pool)
                    .await;
                let rows = match rows {
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
                    tokio::select! {
                        _ = notify.notified() => {}
                        _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                        _ = tx.closed() => return,
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
        let req = request.into_inner();
        respond(
            async {
                let id = req
                    .name
                    .strip_prefix("notifications/")
                    .filter(|i| govit_platform::validate::is_code(i))
                    .ok_or_else(|| ServiceError::field("name", "must be notifications/{id}"))?
                    .to_owned();
                caller.require(&[Role::Service])?;
                sqlx::query("UPDATE notifications SET status = 'DELIVERED' WHERE id = $1")
                    .bind(id.clone())
                    .execute(&self.db.pool)
                    .await?;
                let row = sqlx::query("SELECT * FROM notifications WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.db.pool)
                    .await?
                    .ok_or_else(|| ServiceError::not_found("notification", req.name.clone()))?;
                notify::to_proto(&row).map_err(internal)
            }
            .await,
        )
    }
}
