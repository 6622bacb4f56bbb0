//! The gRPC face of the projects service. Every method has one shape: convert the request into
//! a command (`TryFrom`, where the field rules live), check the caller, call the domain
//! function of its area (`organizations`, `projects`, `reviews`, `overrides`, `documents`,
//! `supervision`).

use govit_platform::error::respond;
use govit_platform::{Caller, ServiceError, idempotency::Once, paging::Page};
use govit_proto::projects::v1::{self as pb, project_service_server::ProjectService};
use tonic::{Request, Response, Status, Streaming};

use crate::supervision::{
    BudgetDecision, MilestoneUpdate, NewBudgetChange, NewDisbursement, NewInspection, NewMilestone,
    NewNotice, NewProgressReport, NewRiskRating, OverdueFindingsQuery, PortfolioQuery,
    ProgressReview, PublicNoticeQuery, RECORD_READERS, Rectification, SnapshotMonth, SnapshotQuery,
};
use crate::{
    ProjectsService,
    documents::{DocumentQuery, DownloadStream, UPLOADERS, Upload},
    lifecycle::Action,
    organizations::{NewOrganization, ORG_WRITERS, OrgEdit, OrgQuery},
    overrides::{OVERRIDE_READERS, OverrideName, OverrideRequest},
    projects::{
        EventQuery, NewProject, PROJECT_READERS, PROJECT_WRITERS, ProjectEdit, ProjectQuery, Step,
    },
    reviews::{CancellationReport, OutcomeReport},
    uploads::Chunk,
    validation as check,
};

/// A lifecycle action's handler: the request becomes a [`Step`], the caller must hold one of
/// the action's roles, and the project moves.
macro_rules! lifecycle_step {
    ($service:ident, $request:ident, $method:literal) => {{
        let caller = Caller::from_request(&$request)?;
        let once = Once::new(
            &caller,
            $method,
            &$request.get_ref().request_id,
            $request.get_ref(),
        )?;
        let step = Step::try_from($request.into_inner())?;
        caller.require(step.action().roles())?;
        respond(
            once.run($service.db(), $service.take_step(&caller, step))
                .await
                .map(|p| shown_to(&caller, p)),
        )
    }};
}

/// A page of one project's records: the project named by the request's `$field`, its records
/// read whole by `$read` (which applies the List's reading rules) and paged by name.
macro_rules! project_records_page {
    ($service:ident, $request:ident, $field:ident, $readers:expr, $read:ident, $what:literal,
     $response:ident { $items:ident }) => {{
        let caller = Caller::from_request(&$request)?;
        let req = $request.get_ref();
        let code = check::parse_project_name(stringify!($field), &req.$field)?;
        let page = Page::parse(req.page_size, &req.page_token, &format!("{} {code}", $what))?;
        caller.require($readers)?;
        respond(
            async {
                let items = $service.$read(&caller, &code).await?;
                page.slice(items, |item| item.name.clone())
            }
            .await
            .map(|($items, next_page_token)| pb::$response {
                $items,
                next_page_token,
            }),
        )
    }};
}

/// One of a project's records by name, read as its List reads them.
macro_rules! project_record {
    ($service:ident, $request:ident, $collection:literal, $readers:expr, $read:ident,
     $what:literal) => {{
        let caller = Caller::from_request(&$request)?;
        let name = &$request.get_ref().name;
        let (code, _) = check::parse_child_name("name", name, $collection)?;
        caller.require($readers)?;
        respond(
            async {
                let items = $service.$read(&caller, &code).await?;
                named(items, name, $what, |item| &item.name)
            }
            .await,
        )
    }};
}

/// A project as `caller` may see it: an applicant sees, of the projects found like its own,
/// only its own unit's; the others are office's and the bureaus' to weigh (FindSimilarProjects
/// is theirs alone).
fn shown_to(caller: &Caller, mut project: pb::Project) -> pb::Project {
    if caller.is(govit_platform::Role::Applicant) {
        let own = caller
            .organization
            .as_deref()
            .map(crate::model::org_name)
            .unwrap_or_default();
        project.similar_projects.retain(|s| s.applicant == own);
    }
    project
}

#[tonic::async_trait]
impl ProjectService for ProjectsService {
    async fn create_organization(
        &self,
        request: Request<pb::CreateOrganizationRequest>,
    ) -> Result<Response<pb::Organization>, Status> {
        let caller = Caller::from_request(&request)?;
        let once = Once::new(
            &caller,
            "CreateOrganization",
            &request.get_ref().request_id,
            request.get_ref(),
        )?;
        let org = NewOrganization::try_from(request.into_inner())?;
        caller.require(&ORG_WRITERS)?;
        respond(once.run(self.db(), self.register_org(&caller, org)).await)
    }

    async fn get_organization(
        &self,
        request: Request<pb::GetOrganizationRequest>,
    ) -> Result<Response<pb::Organization>, Status> {
        let caller = Caller::from_request(&request)?;
        let name = &request.get_ref().name;
        let code = check::parse_org_name("name", name)?;
        Self::visible_org(&caller, code.as_str())?;
        respond(self.org_named(&code, name).await)
    }

    async fn list_organizations(
        &self,
        request: Request<pb::ListOrganizationsRequest>,
    ) -> Result<Response<pb::ListOrganizationsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let query = OrgQuery::try_from(request.into_inner())?;
        caller.require(&crate::organizations::ORG_READERS)?;
        respond(self.find_orgs(&caller, query).await)
    }

    async fn update_organization(
        &self,
        request: Request<pb::UpdateOrganizationRequest>,
    ) -> Result<Response<pb::Organization>, Status> {
        let caller = Caller::from_request(&request)?;
        let edit = OrgEdit::try_from(request.into_inner())?;
        caller.require(&ORG_WRITERS)?;
        respond(self.edit_org(&caller, edit).await)
    }

    async fn create_project(
        &self,
        request: Request<pb::CreateProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let once = Once::new(
            &caller,
            "CreateProject",
            &request.get_ref().request_id,
            request.get_ref(),
        )?;
        let project = NewProject::try_from(request.into_inner())?;
        caller.require(&PROJECT_WRITERS)?;
        respond(
            once.run(self.db(), self.register_project(&caller, project))
                .await
                .map(|p| shown_to(&caller, p)),
        )
    }

    async fn get_project(
        &self,
        request: Request<pb::GetProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let code = check::parse_project_name("name", &request.get_ref().name)?;
        caller.require(&PROJECT_READERS)?;
        let row = self.visible_project(&caller, &code).await?;
        respond(
            row.to_proto()
                .map(|p| shown_to(&caller, p))
                .map_err(Into::into),
        )
    }

    async fn list_projects(
        &self,
        request: Request<pb::ListProjectsRequest>,
    ) -> Result<Response<pb::ListProjectsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let query = ProjectQuery::try_from(request.into_inner())?;
        caller.require(&PROJECT_READERS)?;
        respond(self.find_projects(&caller, query).await.map(|mut page| {
            page.projects = page
                .projects
                .into_iter()
                .map(|p| shown_to(&caller, p))
                .collect();
            page
        }))
    }

    async fn update_project(
        &self,
        request: Request<pb::UpdateProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let edit = ProjectEdit::try_from(request.into_inner())?;
        caller.require(&PROJECT_WRITERS)?;
        respond(
            self.edit_project(&caller, edit)
                .await
                .map(|p| shown_to(&caller, p)),
        )
    }

    async fn submit_project(
        &self,
        request: Request<pb::SubmitProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        lifecycle_step!(self, request, "SubmitProject")
    }

    async fn return_project(
        &self,
        request: Request<pb::ReturnProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        lifecycle_step!(self, request, "ReturnProject")
    }

    async fn accept_for_review(
        &self,
        request: Request<pb::AcceptForReviewRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        lifecycle_step!(self, request, "AcceptForReview")
    }

    async fn record_review_outcome(
        &self,
        request: Request<pb::RecordReviewOutcomeRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let outcome = OutcomeReport::try_from(request.into_inner())?;
        caller.require(outcome.action().roles())?;
        respond(self.apply_review_outcome(&caller, outcome).await)
    }

    async fn override_review_outcome(
        &self,
        request: Request<pb::OverrideReviewOutcomeRequest>,
    ) -> Result<Response<pb::ReviewOverride>, Status> {
        let caller = Caller::from_request(&request)?;
        let once = Once::new(
            &caller,
            "OverrideReviewOutcome",
            &request.get_ref().request_id,
            request.get_ref(),
        )?;
        let asked = OverrideRequest::try_from(request.into_inner())?;
        caller.require(asked.action().roles())?;
        respond(once.run(self.db(), self.ask_override(&caller, asked)).await)
    }

    async fn approve_review_override(
        &self,
        request: Request<pb::ApproveReviewOverrideRequest>,
    ) -> Result<Response<pb::ReviewOverride>, Status> {
        let caller = Caller::from_request(&request)?;
        let named = OverrideName::try_from(request.into_inner().name)?;
        caller.require(&[govit_platform::Role::Office])?;
        respond(self.approve_override(&caller, named).await)
    }

    async fn reject_review_override(
        &self,
        request: Request<pb::RejectReviewOverrideRequest>,
    ) -> Result<Response<pb::ReviewOverride>, Status> {
        let caller = Caller::from_request(&request)?;
        let named = OverrideName::try_from(request.into_inner().name)?;
        caller.require(&[govit_platform::Role::Office])?;
        respond(self.reject_override(&caller, named).await)
    }

    async fn list_review_overrides(
        &self,
        request: Request<pb::ListReviewOverridesRequest>,
    ) -> Result<Response<pb::ListReviewOverridesResponse>, Status> {
        project_records_page!(
            self,
            request,
            parent,
            &OVERRIDE_READERS,
            project_overrides,
            "overrides",
            ListReviewOverridesResponse { overrides }
        )
    }

    async fn record_review_cancellation(
        &self,
        request: Request<pb::RecordReviewCancellationRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = Caller::from_request(&request)?;
        let cancellation = CancellationReport::try_from(request.into_inner())?;
        caller.require(Action::ReviewCancelled.roles())?;
        respond(self.apply_review_cancellation(&caller, cancellation).await)
    }

    async fn file_implementation_plan(
        &self,
        request: Request<pb::FileImplementationPlanRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        lifecycle_step!(self, request, "FileImplementationPlan")
    }

    async fn record_implementation_plan(
        &self,
        request: Request<pb::RecordImplementationPlanRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        lifecycle_step!(self, request, "RecordImplementationPlan")
    }

    async fn return_implementation_plan(
        &self,
        request: Request<pb::ReturnImplementationPlanRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        lifecycle_step!(self, request, "ReturnImplementationPlan")
    }

    async fn start_tendering(
        &self,
        request: Request<pb::StartTenderingRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        lifecycle_step!(self, request, "StartTendering")
    }

    async fn record_tender_result(
        &self,
        request: Request<pb::RecordTenderResultRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        lifecycle_step!(self, request, "RecordTenderResult")
    }

    async fn request_acceptance(
        &self,
        request: Request<pb::RequestAcceptanceRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        lifecycle_step!(self, request, "RequestAcceptance")
    }

    async fn start_acceptance(
        &self,
        request: Request<pb::StartAcceptanceRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        lifecycle_step!(self, request, "StartAcceptance")
    }

    async fn start_operation(
        &self,
        request: Request<pb::StartOperationRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        lifecycle_step!(self, request, "StartOperation")
    }

    async fn find_similar_projects(
        &self,
        request: Request<pb::FindSimilarProjectsRequest>,
    ) -> Result<Response<pb::FindSimilarProjectsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        // Other units' projects are shown: office and the bureaus only.
        caller.require(&crate::supervision::BUREAUS)?;
        respond(self.find_similar(&caller, request.into_inner()).await)
    }

    async fn record_duplication_finding(
        &self,
        request: Request<pb::RecordDuplicationFindingRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        lifecycle_step!(self, request, "RecordDuplicationFinding")
    }

    async fn start_post_evaluation_review(
        &self,
        request: Request<pb::StartPostEvaluationReviewRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        lifecycle_step!(self, request, "StartPostEvaluationReview")
    }

    async fn record_post_evaluation(
        &self,
        request: Request<pb::RecordPostEvaluationRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        lifecycle_step!(self, request, "RecordPostEvaluation")
    }

    async fn close_project(
        &self,
        request: Request<pb::CloseProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        lifecycle_step!(self, request, "CloseProject")
    }

    async fn withdraw_project(
        &self,
        request: Request<pb::WithdrawProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        lifecycle_step!(self, request, "WithdrawProject")
    }

    async fn suspend_project(
        &self,
        request: Request<pb::SuspendProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        lifecycle_step!(self, request, "SuspendProject")
    }

    async fn resume_project(
        &self,
        request: Request<pb::ResumeProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        lifecycle_step!(self, request, "ResumeProject")
    }

    async fn upload_document(
        &self,
        request: Request<Streaming<pb::UploadDocumentRequest>>,
    ) -> Result<Response<pb::Document>, Status> {
        let caller = Caller::from_request(&request)?;
        let mut stream = request.into_inner();
        let upload = Upload::first(&mut stream).await?;
        caller.require(&UPLOADERS)?;
        respond(self.receive_document(&caller, upload, &mut stream).await)
    }

    async fn start_upload(
        &self,
        request: Request<pb::StartUploadRequest>,
    ) -> Result<Response<pb::Upload>, Status> {
        let caller = Caller::from_request(&request)?;
        let metadata = request.into_inner().metadata.unwrap_or_default();
        let once = Once::new(&caller, "StartUpload", &metadata.request_id, &metadata)?;
        let upload = Upload::try_from(metadata)?;
        caller.require(&UPLOADERS)?;
        respond(
            once.run(self.db(), self.start_upload(&caller, upload))
                .await,
        )
    }

    async fn append_upload(
        &self,
        request: Request<pb::AppendUploadRequest>,
    ) -> Result<Response<pb::Upload>, Status> {
        let caller = Caller::from_request(&request)?;
        let chunk = Chunk::try_from(request.into_inner())?;
        caller.require(&UPLOADERS)?;
        respond(self.append_upload(&caller, chunk).await)
    }

    async fn get_upload(
        &self,
        request: Request<pb::GetUploadRequest>,
    ) -> Result<Response<pb::Upload>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require(&UPLOADERS)?;
        respond(self.get_upload(&caller, &request.get_ref().name).await)
    }

    async fn finish_upload(
        &self,
        request: Request<pb::FinishUploadRequest>,
    ) -> Result<Response<pb::Document>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require(&UPLOADERS)?;
        let req = request.get_ref();
        respond(self.finish_upload(&caller, &req.name, &req.sha256).await)
    }

    async fn cancel_upload(
        &self,
        request: Request<pb::CancelUploadRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require(&UPLOADERS)?;
        respond(self.cancel_upload(&caller, &request.get_ref().name).await)
    }

    async fn list_documents(
        &self,
        request: Request<pb::ListDocumentsRequest>,
    ) -> Result<Response<pb::ListDocumentsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let query = DocumentQuery::try_from(request.into_inner())?;
        caller.require(&PROJECT_READERS)?;
        respond(self.project_documents(&caller, query).await)
    }

    type DownloadDocumentStream = DownloadStream;

    async fn download_document(
        &self,
        request: Request<pb::DownloadDocumentRequest>,
    ) -> Result<Response<Self::DownloadDocumentStream>, Status> {
        let caller = Caller::from_request(&request)?;
        let name = &request.get_ref().name;
        let document = check::parse_child_name("name", name, "documents")?;
        caller.require(&PROJECT_READERS)?;
        respond(self.open_document(&caller, document, name).await)
    }

    async fn list_project_events(
        &self,
        request: Request<pb::ListProjectEventsRequest>,
    ) -> Result<Response<pb::ListProjectEventsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let query = EventQuery::try_from(request.into_inner())?;
        caller.require(&PROJECT_READERS)?;
        respond(self.project_events(&caller, query).await)
    }

    // ---- supervision (see supervision/) ----

    async fn create_budget_change(
        &self,
        request: Request<pb::CreateBudgetChangeRequest>,
    ) -> Result<Response<pb::BudgetChange>, Status> {
        let caller = Caller::from_request(&request)?;
        let once = Once::new(
            &caller,
            "CreateBudgetChange",
            &request.get_ref().request_id,
            request.get_ref(),
        )?;
        let change = NewBudgetChange::try_from(request.into_inner())?;
        caller.require(NewBudgetChange::ROLES)?;
        respond(
            once.run(self.db(), self.file_budget_change(&caller, change))
                .await,
        )
    }

    async fn approve_budget_change(
        &self,
        request: Request<pb::ApproveBudgetChangeRequest>,
    ) -> Result<Response<pb::BudgetChange>, Status> {
        let caller = Caller::from_request(&request)?;
        let decision = BudgetDecision::try_from(request.into_inner())?;
        caller.require(BudgetDecision::ROLES)?;
        respond(self.decide_budget_change(&caller, decision).await)
    }

    async fn refuse_budget_change(
        &self,
        request: Request<pb::RefuseBudgetChangeRequest>,
    ) -> Result<Response<pb::BudgetChange>, Status> {
        let caller = Caller::from_request(&request)?;
        let decision = BudgetDecision::try_from(request.into_inner())?;
        caller.require(BudgetDecision::ROLES)?;
        respond(self.decide_budget_change(&caller, decision).await)
    }

    async fn list_budget_changes(
        &self,
        request: Request<pb::ListBudgetChangesRequest>,
    ) -> Result<Response<pb::ListBudgetChangesResponse>, Status> {
        project_records_page!(
            self,
            request,
            parent,
            &PROJECT_READERS,
            budget_changes_of,
            "budget changes",
            ListBudgetChangesResponse { budget_changes }
        )
    }

    async fn list_budget_baselines(
        &self,
        request: Request<pb::ListBudgetBaselinesRequest>,
    ) -> Result<Response<pb::ListBudgetBaselinesResponse>, Status> {
        project_records_page!(
            self,
            request,
            parent,
            &PROJECT_READERS,
            baselines_of,
            "budget baselines",
            ListBudgetBaselinesResponse { baselines }
        )
    }

    async fn record_disbursement(
        &self,
        request: Request<pb::RecordDisbursementRequest>,
    ) -> Result<Response<pb::Disbursement>, Status> {
        let caller = Caller::from_request(&request)?;
        let once = Once::new(
            &caller,
            "RecordDisbursement",
            &request.get_ref().request_id,
            request.get_ref(),
        )?;
        let disbursement = NewDisbursement::try_from(request.into_inner())?;
        caller.require(NewDisbursement::ROLES)?;
        respond(
            once.run(self.db(), self.add_disbursement(&caller, disbursement))
                .await,
        )
    }

    async fn list_disbursements(
        &self,
        request: Request<pb::ListDisbursementsRequest>,
    ) -> Result<Response<pb::ListDisbursementsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.get_ref();
        let code = check::parse_project_name("parent", &req.parent)?;
        let page = Page::parse(
            req.page_size,
            &req.page_token,
            &format!("disbursements {code}"),
        )?;
        caller.require(&PROJECT_READERS)?;
        respond(
            async {
                let (items, total_fen) = self.disbursements_of(&caller, &code).await?;
                let (disbursements, next_page_token) =
                    page.slice(items, |item| item.name.clone())?;
                Ok(pb::ListDisbursementsResponse {
                    disbursements,
                    total_fen,
                    next_page_token,
                })
            }
            .await,
        )
    }

    async fn create_milestone(
        &self,
        request: Request<pb::CreateMilestoneRequest>,
    ) -> Result<Response<pb::Milestone>, Status> {
        let caller = Caller::from_request(&request)?;
        let once = Once::new(
            &caller,
            "CreateMilestone",
            &request.get_ref().request_id,
            request.get_ref(),
        )?;
        let milestone = NewMilestone::try_from(request.into_inner())?;
        caller.require(NewMilestone::ROLES)?;
        respond(
            once.run(self.db(), self.add_milestone(&caller, milestone))
                .await,
        )
    }

    async fn update_milestone(
        &self,
        request: Request<pb::UpdateMilestoneRequest>,
    ) -> Result<Response<pb::Milestone>, Status> {
        let caller = Caller::from_request(&request)?;
        let update = MilestoneUpdate::try_from(request.into_inner())?;
        caller.require(MilestoneUpdate::ROLES)?;
        respond(self.change_milestone(&caller, update).await)
    }

    async fn list_milestones(
        &self,
        request: Request<pb::ListMilestonesRequest>,
    ) -> Result<Response<pb::ListMilestonesResponse>, Status> {
        project_records_page!(
            self,
            request,
            parent,
            &PROJECT_READERS,
            milestones_of,
            "milestones",
            ListMilestonesResponse { milestones }
        )
    }

    async fn file_progress_report(
        &self,
        request: Request<pb::FileProgressReportRequest>,
    ) -> Result<Response<pb::ProgressReport>, Status> {
        let caller = Caller::from_request(&request)?;
        let once = Once::new(
            &caller,
            "FileProgressReport",
            &request.get_ref().request_id,
            request.get_ref(),
        )?;
        let report = NewProgressReport::try_from(request.into_inner())?;
        caller.require(NewProgressReport::ROLES)?;
        respond(
            once.run(self.db(), self.add_progress_report(&caller, report))
                .await,
        )
    }

    async fn review_progress_report(
        &self,
        request: Request<pb::ReviewProgressReportRequest>,
    ) -> Result<Response<pb::ProgressReport>, Status> {
        let caller = Caller::from_request(&request)?;
        let review = ProgressReview::try_from(request.into_inner())?;
        caller.require(ProgressReview::ROLES)?;
        respond(self.review_progress(&caller, review).await)
    }

    async fn list_progress_reports(
        &self,
        request: Request<pb::ListProgressReportsRequest>,
    ) -> Result<Response<pb::ListProgressReportsResponse>, Status> {
        project_records_page!(
            self,
            request,
            parent,
            &PROJECT_READERS,
            progress_reports_of,
            "progress reports",
            ListProgressReportsResponse { reports }
        )
    }

    async fn get_project_variance(
        &self,
        request: Request<pb::GetProjectVarianceRequest>,
    ) -> Result<Response<pb::ProjectVariance>, Status> {
        let caller = Caller::from_request(&request)?;
        let code = check::parse_project_name("name", &request.get_ref().name)?;
        caller.require(&PROJECT_READERS)?;
        respond(self.variance_of(&caller, &code).await)
    }

    async fn rate_project_risk(
        &self,
        request: Request<pb::RateProjectRiskRequest>,
    ) -> Result<Response<pb::RiskRating>, Status> {
        let caller = Caller::from_request(&request)?;
        let once = Once::new(
            &caller,
            "RateProjectRisk",
            &request.get_ref().request_id,
            request.get_ref(),
        )?;
        let rating = NewRiskRating::try_from(request.into_inner())?;
        caller.require(NewRiskRating::ROLES)?;
        respond(once.run(self.db(), self.rate_risk(&caller, rating)).await)
    }

    async fn list_risk_ratings(
        &self,
        request: Request<pb::ListRiskRatingsRequest>,
    ) -> Result<Response<pb::ListRiskRatingsResponse>, Status> {
        project_records_page!(
            self,
            request,
            name,
            &PROJECT_READERS,
            ratings_of,
            "risk ratings",
            ListRiskRatingsResponse { ratings }
        )
    }

    async fn create_monthly_snapshot(
        &self,
        request: Request<pb::CreateMonthlySnapshotRequest>,
    ) -> Result<Response<pb::CreateMonthlySnapshotResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let once = Once::new(
            &caller,
            "CreateMonthlySnapshot",
            &request.get_ref().request_id,
            request.get_ref(),
        )?;
        let month = SnapshotMonth::try_from(request.into_inner())?;
        caller.require(SnapshotMonth::ROLES)?;
        respond(
            once.run(self.db(), async {
                self.snapshot_closed_month(month)
                    .await
                    .map(|projects| pb::CreateMonthlySnapshotResponse { projects })
            })
            .await,
        )
    }

    async fn list_snapshots(
        &self,
        request: Request<pb::ListSnapshotsRequest>,
    ) -> Result<Response<pb::ListSnapshotsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let query = SnapshotQuery::try_from(request.into_inner())?;
        caller.require(SnapshotQuery::ROLES)?;
        respond(
            self.snapshots_matching(query)
                .await
                .map(|(snapshots, next_page_token)| pb::ListSnapshotsResponse {
                    snapshots,
                    next_page_token,
                }),
        )
    }

    async fn create_inspection(
        &self,
        request: Request<pb::CreateInspectionRequest>,
    ) -> Result<Response<pb::Inspection>, Status> {
        let caller = Caller::from_request(&request)?;
        let once = Once::new(
            &caller,
            "CreateInspection",
            &request.get_ref().request_id,
            request.get_ref(),
        )?;
        let inspection = NewInspection::try_from(request.into_inner())?;
        caller.require(NewInspection::ROLES)?;
        respond(
            once.run(self.db(), self.record_inspection(&caller, inspection))
                .await,
        )
    }

    async fn record_rectification(
        &self,
        request: Request<pb::RecordRectificationRequest>,
    ) -> Result<Response<pb::Inspection>, Status> {
        let caller = Caller::from_request(&request)?;
        let once = Once::new(
            &caller,
            "RecordRectification",
            &request.get_ref().request_id,
            request.get_ref(),
        )?;
        let rectification = Rectification::try_from(request.into_inner())?;
        caller.require(Rectification::ROLES)?;
        respond(
            once.run(self.db(), self.rectify_finding(&caller, rectification))
                .await,
        )
    }

    async fn list_inspections(
        &self,
        request: Request<pb::ListInspectionsRequest>,
    ) -> Result<Response<pb::ListInspectionsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.get_ref();
        let code = check::parse_project_name("parent", &req.parent)?;
        let mut v = govit_platform::Violations::new();
        let body = check::enum_value::<pb::SupervisingBody>(&mut v, "body", req.body, true);
        v.finish()?;
        let body = body.filter(|b| *b != pb::SupervisingBody::Unspecified);
        let page = Page::parse(
            req.page_size,
            &req.page_token,
            &format!("inspections {code} {}", req.body),
        )?;
        caller.require(&PROJECT_READERS)?;
        respond(
            async {
                let mut inspections = self.inspections_of(&caller, &code).await?;
                if let Some(body) = body {
                    inspections.retain(|i| i.body == body as i32);
                }
                page.slice(inspections, |i| i.name.clone())
            }
            .await
            .map(
                |(inspections, next_page_token)| pb::ListInspectionsResponse {
                    inspections,
                    next_page_token,
                },
            ),
        )
    }

    async fn list_overdue_findings(
        &self,
        request: Request<pb::ListOverdueFindingsRequest>,
    ) -> Result<Response<pb::ListOverdueFindingsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        let query = OverdueFindingsQuery::try_from(request.into_inner())?;
        caller.require(OverdueFindingsQuery::ROLES)?;
        respond(
            async {
                let page = query.page.clone();
                // Overdue findings are few by nature (each one is a rectification late); they
                // are read whole, in (due date, inspection, number) order, and paged by that
                // key, so a finding rectified meanwhile leaves without breaking the cursor.
                let findings = self.overdue_findings(query).await?;
                Ok::<_, ServiceError>(page.slice_ordered(findings, overdue_order_key))
            }
            .await
            .map(
                |(findings, next_page_token)| pb::ListOverdueFindingsResponse {
                    findings,
                    next_page_token,
                },
            ),
        )
    }

    async fn create_organization_notice(
        &self,
        request: Request<pb::CreateOrganizationNoticeRequest>,
    ) -> Result<Response<pb::OrganizationNotice>, Status> {
        let caller = Caller::from_request(&request)?;
        let once = Once::new(
            &caller,
            "CreateOrganizationNotice",
            &request.get_ref().request_id,
            request.get_ref(),
        )?;
        let notice = NewNotice::try_from(request.into_inner())?;
        caller.require(NewNotice::ROLES)?;
        respond(
            once.run(self.db(), self.issue_notice(&caller, notice))
                .await,
        )
    }

    async fn get_organization_record(
        &self,
        request: Request<pb::GetOrganizationRecordRequest>,
    ) -> Result<Response<pb::OrganizationRecord>, Status> {
        let caller = Caller::from_request(&request)?;
        let name = &request.get_ref().name;
        let code = check::parse_org_name("name", name)?;
        caller.require(&RECORD_READERS)?;
        respond(self.record_of_organization(&caller, name, &code).await)
    }

    async fn list_outbox_messages(
        &self,
        request: Request<govit_proto::common::v1::ListOutboxMessagesRequest>,
    ) -> Result<Response<govit_proto::common::v1::ListOutboxMessagesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(govit_platform::outbox::list(&self.store.db, &caller, request.get_ref()).await)
    }

    async fn retry_outbox_message(
        &self,
        request: Request<govit_proto::common::v1::RetryOutboxMessageRequest>,
    ) -> Result<Response<govit_proto::common::v1::OutboxMessage>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            govit_platform::outbox::retry(&self.store.db, &caller, &request.get_ref().name).await,
        )
    }

    async fn list_read_events(
        &self,
        request: Request<govit_proto::common::v1::ListReadEventsRequest>,
    ) -> Result<Response<govit_proto::common::v1::ListReadEventsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(govit_platform::reads::list(&self.store.db, &caller, request.get_ref()).await)
    }

    async fn get_portfolio_summary(
        &self,
        request: Request<pb::GetPortfolioSummaryRequest>,
    ) -> Result<Response<pb::PortfolioSummary>, Status> {
        let caller = Caller::from_request(&request)?;
        let query = PortfolioQuery::try_from(request.into_inner())?;
        caller.require(PortfolioQuery::ROLES)?;
        respond(self.portfolio_summary(&caller, query).await)
    }

    async fn get_review_override(
        &self,
        request: Request<pb::GetReviewOverrideRequest>,
    ) -> Result<Response<pb::ReviewOverride>, Status> {
        project_record!(
            self,
            request,
            "overrides",
            &OVERRIDE_READERS,
            project_overrides,
            "review override"
        )
    }

    async fn get_budget_change(
        &self,
        request: Request<pb::GetBudgetChangeRequest>,
    ) -> Result<Response<pb::BudgetChange>, Status> {
        project_record!(
            self,
            request,
            "budgetChanges",
            &PROJECT_READERS,
            budget_changes_of,
            "budget change"
        )
    }

    async fn get_budget_baseline(
        &self,
        request: Request<pb::GetBudgetBaselineRequest>,
    ) -> Result<Response<pb::BudgetBaseline>, Status> {
        project_record!(
            self,
            request,
            "budgetBaselines",
            &PROJECT_READERS,
            baselines_of,
            "budget baseline"
        )
    }

    async fn get_milestone(
        &self,
        request: Request<pb::GetMilestoneRequest>,
    ) -> Result<Response<pb::Milestone>, Status> {
        project_record!(
            self,
            request,
            "milestones",
            &PROJECT_READERS,
            milestones_of,
            "milestone"
        )
    }

    async fn get_progress_report(
        &self,
        request: Request<pb::GetProgressReportRequest>,
    ) -> Result<Response<pb::ProgressReport>, Status> {
        project_record!(
            self,
            request,
            "progressReports",
            &PROJECT_READERS,
            progress_reports_of,
            "progress report"
        )
    }

    async fn get_risk_rating(
        &self,
        request: Request<pb::GetRiskRatingRequest>,
    ) -> Result<Response<pb::RiskRating>, Status> {
        project_record!(
            self,
            request,
            "riskRatings",
            &PROJECT_READERS,
            ratings_of,
            "risk rating"
        )
    }

    async fn get_inspection(
        &self,
        request: Request<pb::GetInspectionRequest>,
    ) -> Result<Response<pb::Inspection>, Status> {
        project_record!(
            self,
            request,
            "inspections",
            &PROJECT_READERS,
            inspections_of,
            "inspection"
        )
    }

    async fn get_disbursement(
        &self,
        request: Request<pb::GetDisbursementRequest>,
    ) -> Result<Response<pb::Disbursement>, Status> {
        let caller = Caller::from_request(&request)?;
        let name = &request.get_ref().name;
        let (code, _) = check::parse_child_name("name", name, "disbursements")?;
        caller.require(&PROJECT_READERS)?;
        respond(
            async {
                let (items, _) = self.disbursements_of(&caller, &code).await?;
                named(items, name, "disbursement", |item| &item.name)
            }
            .await,
        )
    }

    async fn get_project_snapshot(
        &self,
        request: Request<pb::GetProjectSnapshotRequest>,
    ) -> Result<Response<pb::ProjectSnapshot>, Status> {
        let caller = Caller::from_request(&request)?;
        let name = request.get_ref().name.clone();
        let (code, month) = check::parse_child_name("name", &name, "snapshots")?;
        let query = SnapshotQuery::try_from(pb::ListSnapshotsRequest {
            month,
            project: code.name(),
            ..Default::default()
        })
        .map_err(|_| {
            Status::from(ServiceError::field(
                "name",
                "must be projects/{code}/snapshots/{YYYY-MM}",
            ))
        })?;
        caller.require(SnapshotQuery::ROLES)?;
        respond(
            async {
                let (items, _) = self.snapshots_matching(query).await?;
                named(items, &name, "snapshot", |item| &item.name)
            }
            .await,
        )
    }

    async fn get_document(
        &self,
        request: Request<pb::GetDocumentRequest>,
    ) -> Result<Response<pb::Document>, Status> {
        let caller = Caller::from_request(&request)?;
        let name = &request.get_ref().name;
        let (code, id) = check::parse_child_name("name", name, "documents")?;
        caller.require(&PROJECT_READERS)?;
        respond(self.document_metadata(&caller, &code, &id, name).await)
    }

    async fn get_project_event(
        &self,
        request: Request<pb::GetProjectEventRequest>,
    ) -> Result<Response<pb::ProjectEvent>, Status> {
        let caller = Caller::from_request(&request)?;
        let name = &request.get_ref().name;
        let (code, seq) = check::parse_child_name("name", name, "events")?;
        let seq: i64 = seq.parse().map_err(|_| {
            Status::from(ServiceError::field(
                "name",
                "must be projects/{code}/events/{number}",
            ))
        })?;
        caller.require(&PROJECT_READERS)?;
        respond(self.project_event(&caller, &code, seq, name).await)
    }

    async fn get_finding(
        &self,
        request: Request<pb::GetFindingRequest>,
    ) -> Result<Response<pb::Finding>, Status> {
        let caller = Caller::from_request(&request)?;
        let name = &request.get_ref().name;
        let bad = || {
            Status::from(ServiceError::field(
                "name",
                "must be projects/{code}/inspections/{id}/findings/{number}",
            ))
        };
        let (inspection, _) = name.rsplit_once("/findings/").ok_or_else(bad)?;
        let (code, _) =
            check::parse_child_name("name", inspection, "inspections").map_err(|_| bad())?;
        caller.require(&PROJECT_READERS)?;
        respond(
            async {
                let inspections = self.inspections_of(&caller, &code).await?;
                let findings = inspections
                    .into_iter()
                    .filter(|i| i.name == inspection)
                    .flat_map(|i| i.findings)
                    .collect();
                named(findings, name, "finding", |f| &f.name)
            }
            .await,
        )
    }

    async fn get_outbox_message(
        &self,
        request: Request<govit_proto::common::v1::GetOutboxMessageRequest>,
    ) -> Result<Response<govit_proto::common::v1::OutboxMessage>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(govit_platform::outbox::get(&self.store.db, &caller, &request.get_ref().name).await)
    }

    async fn get_read_event(
        &self,
        request: Request<govit_proto::common::v1::GetReadEventRequest>,
    ) -> Result<Response<govit_proto::common::v1::ReadEvent>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(govit_platform::reads::get(&self.store.db, &caller, &request.get_ref().name).await)
    }
}

/// The item of a list named `name`: the list's reading rules decide who may see it.
fn named<T>(
    items: Vec<T>,
    name: &str,
    resource_type: &'static str,
    name_of: impl Fn(&T) -> &str,
) -> govit_platform::ServiceResult<T> {
    items
        .into_iter()
        .find(|item| name_of(item) == name)
        .ok_or_else(|| ServiceError::not_found(resource_type, name))
}

/// An overdue finding's place in its list, as text that sorts the same way: due date, then
/// inspection id, then the finding's number.
fn overdue_order_key(finding: &pb::Finding) -> String {
    let due = finding
        .due_date
        .map(|d| format!("{:04}-{:02}-{:02}", d.year, d.month, d.day))
        .unwrap_or_default();
    let (inspection, number) = finding
        .name
        .split_once("/inspections/")
        .and_then(|(_, rest)| rest.split_once("/findings/"))
        .unwrap_or_default();
    let number: u64 = number.parse().unwrap_or_default();
    format!("{due} {inspection} {number:020}")
}

#[tonic::async_trait]
impl pb::public_notice_service_server::PublicNoticeService for ProjectsService {
    // No caller: the service is served without the authenticator.
    async fn list_public_notices(
        &self,
        request: Request<pb::ListPublicNoticesRequest>,
    ) -> Result<Response<pb::ListPublicNoticesResponse>, Status> {
        let query = PublicNoticeQuery::try_from(request.into_inner())?;
        respond(self.public_notices(query).await)
    }
}
