//! A project's audit trail, read a page at a time.

use govit_platform::{Caller, ServiceError, ServiceResult, paging::Page};
use govit_proto::projects::v1 as pb;

use super::internal;
use crate::{ProjectsService, model::ProjectCode, validation as check};

/// A page of a project's events.
pub(crate) struct EventQuery {
    code: ProjectCode,
    page: Page,
}

impl TryFrom<pb::ListProjectEventsRequest> for EventQuery {
    type Error = ServiceError;

    fn try_from(req: pb::ListProjectEventsRequest) -> ServiceResult<Self> {
        let code = check::parse_project_name("parent", &req.parent)?;
        let page = Page::parse(req.page_size, &req.page_token, &format!("events {code}"))?;
        Ok(EventQuery { code, page })
    }
}

impl ProjectsService {
    pub(crate) async fn project_events(
        &self,
        caller: &Caller,
        query: EventQuery,
    ) -> ServiceResult<pb::ListProjectEventsResponse> {
        let EventQuery { code, page } = query;
        let project = self.visible_project(caller, &code).await?;
        let after = page
            .after
            .as_deref()
            .map(|k| k.parse::<i64>())
            .transpose()
            .map_err(|_| {
                ServiceError::field("page_token", "is not a page token of this service")
            })?;
        let mut rows = self
            .store
            .list_events(&project.name(), after, page.fetch_limit())
            .await?;
        let next_page_token = page.finish(&mut rows, |r| r.seq.to_string());
        Ok(pb::ListProjectEventsResponse {
            events: rows
                .iter()
                .map(|r| r.to_proto())
                .collect::<Result<_, _>>()
                .map_err(internal)?,
            next_page_token,
        })
    }

    /// One event of the project's audit trail, by its number.
    pub(crate) async fn project_event(
        &self,
        caller: &Caller,
        code: &ProjectCode,
        seq: i64,
        name: &str,
    ) -> ServiceResult<pb::ProjectEvent> {
        let project = self.visible_project(caller, code).await?;
        self.store
            .list_events(&project.name(), Some(seq - 1), 1)
            .await?
            .into_iter()
            .find(|r| r.seq == seq)
            .ok_or_else(|| ServiceError::not_found("event", name.to_owned()))?
            .to_proto()
            .map_err(internal)
    }
}
