//! The gRPC face of the registry. Every method has one shape: the request becomes a command
//! (its `TryFrom` checks the fields), the caller's role is checked, and the domain does the
//! rest.

use govit_platform::{Caller, Role, error::respond, idempotency::Once};
use govit_proto::experts::v1::{self as pb, expert_registry_service_server::ExpertRegistryService};
use tonic::{Request, Response, Status, Streaming};

use crate::{
    ExpertsService,
    categories::{CategoryChange, NewCategory},
    draws::{DrawCancel, DrawQuery, OpenDraw, PanelReplacement, Witness, draw_id},
    experts::{ExpertChange, ExpertEvent, ExpertQuery, NewExpert, StatusChange, StatusRequest},
    import::{self, RosterImport},
    reviews::{OutcomeOverride, ReviewService},
    translog::EntriesQuery,
    validation::parse_name,
};

const EXPERT_READERS: [Role; 4] = [
    Role::RegistryAdmin,
    Role::Office,
    Role::Inspector,
    Role::Service,
];
/// Who sees a draw's input and panel; others see its commitment and state.
pub(crate) const DRAW_READERS: [Role; 4] = [
    Role::Office,
    Role::RegistryAdmin,
    Role::Inspector,
    Role::Service,
];
const DRAW_RUNNERS: [Role; 2] = [Role::Office, Role::Service];
// Supervisors find draws too, to see those waiting for their witness; they see each draw's
// commitment and state only.
const DRAW_FINDERS: [Role; 5] = [
    Role::Office,
    Role::RegistryAdmin,
    Role::Inspector,
    Role::Service,
    Role::Supervisor,
];
const WITNESSES: [Role; 2] = [Role::Supervisor, Role::Inspector];
// The log names who was drawn and who the pool holds: confidential like the draws.
pub(crate) const LOG_READERS: [Role; 4] = [
    Role::Office,
    Role::RegistryAdmin,
    Role::Inspector,
    Role::Service,
];

impl ExpertsService {
    async fn change_status(
        &self,
        request: Request<StatusRequest>,
        event: ExpertEvent,
    ) -> Result<Response<pb::Expert>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let change = StatusChange::try_from((request.into_inner(), event))?;
                caller.require(&[Role::RegistryAdmin])?;
                self.move_expert_status(&caller, change).await
            }
            .await,
        )
    }
}

#[tonic::async_trait]
impl ExpertRegistryService for ExpertsService {
    async fn create_category(
        &self,
        request: Request<pb::CreateCategoryRequest>,
    ) -> Result<Response<pb::Category>, Status> {
        let caller = Caller::from_request(&request)?;
        // Before a kept answer is given: a retry is the caller's too.
        caller.require(&[Role::RegistryAdmin])?;
        let once = Once::new(
            &caller,
            "CreateCategory",
            &request.get_ref().request_id,
            request.get_ref(),
        )?;
        respond(
            once.run(self.db(), async {
                let new = NewCategory::try_from(request.into_inner())?;
                self.add_category(new).await
            })
            .await,
        )
    }

    async fn get_category(
        &self,
        request: Request<pb::GetCategoryRequest>,
    ) -> Result<Response<pb::Category>, Status> {
        // Every role may read the taxonomy.
        let req = request.into_inner();
        respond(
            async {
                let code = parse_name("name", &req.name, "categories")?;
                self.category_named(&code, &req.name).await
            }
            .await,
        )
    }

    async fn list_categories(
        &self,
        request: Request<pb::ListCategoriesRequest>,
    ) -> Result<Response<pb::ListCategoriesResponse>, Status> {
        respond(self.category_page(request.get_ref()).await)
    }

    async fn update_category(
        &self,
        request: Request<pb::UpdateCategoryRequest>,
    ) -> Result<Response<pb::Category>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let change = CategoryChange::try_from(request.into_inner())?;
                caller.require(&[Role::RegistryAdmin])?;
                self.change_category(change).await
            }
            .await,
        )
    }

    async fn create_expert(
        &self,
        request: Request<pb::CreateExpertRequest>,
    ) -> Result<Response<pb::Expert>, Status> {
        let caller = Caller::from_request(&request)?;
        // Before a kept answer is given: a retry is the caller's too.
        caller.require(&[Role::RegistryAdmin])?;
        let once = Once::new(
            &caller,
            "CreateExpert",
            &request.get_ref().request_id,
            request.get_ref(),
        )?;
        respond(
            once.run(self.db(), async {
                let new = NewExpert::try_from(request.into_inner())?;
                self.add_expert(&caller, new).await
            })
            .await,
        )
    }

    async fn get_expert(
        &self,
        request: Request<pb::GetExpertRequest>,
    ) -> Result<Response<pb::Expert>, Status> {
        let caller = Caller::from_request(&request)?;
        let req = request.into_inner();
        respond(
            async {
                let id = parse_name("name", &req.name, "experts")?;
                caller.require(&EXPERT_READERS)?;
                self.expert_named(&caller, &id, &req.name).await
            }
            .await,
        )
    }

    async fn list_experts(
        &self,
        request: Request<pb::ListExpertsRequest>,
    ) -> Result<Response<pb::ListExpertsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let query = ExpertQuery::try_from(request.into_inner())?;
                caller.require(&EXPERT_READERS)?;
                self.expert_page(&caller, query).await
            }
            .await,
        )
    }

    async fn update_expert(
        &self,
        request: Request<pb::UpdateExpertRequest>,
    ) -> Result<Response<pb::Expert>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let change = ExpertChange::try_from(request.into_inner())?;
                caller.require(&[Role::RegistryAdmin])?;
                self.change_expert(&caller, change).await
            }
            .await,
        )
    }

    async fn suspend_expert(
        &self,
        request: Request<pb::SuspendExpertRequest>,
    ) -> Result<Response<pb::Expert>, Status> {
        self.change_status(request.map(StatusRequest::from), ExpertEvent::Suspend)
            .await
    }

    async fn reinstate_expert(
        &self,
        request: Request<pb::ReinstateExpertRequest>,
    ) -> Result<Response<pb::Expert>, Status> {
        self.change_status(request.map(StatusRequest::from), ExpertEvent::Reinstate)
            .await
    }

    async fn retire_expert(
        &self,
        request: Request<pb::RetireExpertRequest>,
    ) -> Result<Response<pb::Expert>, Status> {
        self.change_status(request.map(StatusRequest::from), ExpertEvent::Retire)
            .await
    }

    async fn import_experts(
        &self,
        request: Request<pb::ImportExpertsRequest>,
    ) -> Result<Response<pb::ImportExpertsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        // Before a kept answer is given: a retry is the caller's too.
        caller.require(&[Role::RegistryAdmin])?;
        let _one_at_a_time = self.import_permit()?;
        let once = Once::new(
            &caller,
            "ImportExperts",
            &request.get_ref().request_id,
            request.get_ref(),
        )?;
        respond(
            once.run(self.db(), async {
                let import = RosterImport::try_from(request.into_inner())?;
                self.import_roster(import).await
            })
            .await,
        )
    }

    async fn stream_import_experts(
        &self,
        request: Request<Streaming<pb::StreamImportExpertsRequest>>,
    ) -> Result<Response<pb::ImportExpertsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        // Before any of the file is read: only the registry's administrator may send one.
        caller.require(&[Role::RegistryAdmin])?;
        let _one_at_a_time = self.import_permit()?;
        let whole = import::assemble(&mut request.into_inner()).await?;
        // The unary call's method name: a retry may come by either call.
        let once = Once::new(&caller, "ImportExperts", &whole.request_id, &whole)?;
        respond(
            once.run(self.db(), async {
                self.import_roster(RosterImport::try_from(whole)?).await
            })
            .await,
        )
    }

    async fn open_draw(
        &self,
        request: Request<pb::OpenDrawRequest>,
    ) -> Result<Response<pb::Draw>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let open = OpenDraw::try_from((request.into_inner(), &self.policy))?;
                caller.require(&DRAW_RUNNERS)?;
                self.open_new_draw(&caller, open).await
            }
            .await,
        )
    }

    async fn submit_witness_entropy(
        &self,
        request: Request<pb::SubmitWitnessEntropyRequest>,
    ) -> Result<Response<pb::Draw>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let witness = Witness::try_from(request.into_inner())?;
                caller.require(&WITNESSES)?;
                let d = self.submit_witness(witness).await?;
                self.draw_view(&caller, d).await
            }
            .await,
        )
    }

    async fn execute_draw(
        &self,
        request: Request<pb::ExecuteDrawRequest>,
    ) -> Result<Response<pb::Draw>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let id = draw_id(&request.get_ref().name)?;
                caller.require(&DRAW_RUNNERS)?;
                let started = std::time::Instant::now();
                let run = self.run_draw(&id).await;
                let outcome = if run.is_ok() { "ok" } else { "refused" };
                metrics::histogram!(crate::DRAW_SECONDS, "outcome" => outcome)
                    .record(started.elapsed().as_secs_f64());
                self.draw_view(&caller, run?).await
            }
            .await,
        )
    }

    async fn get_draw(
        &self,
        request: Request<pb::GetDrawRequest>,
    ) -> Result<Response<pb::Draw>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let id = draw_id(&request.get_ref().name)?;
                caller.require(&DRAW_FINDERS)?;
                let d = self.draw_or_not_found(&id).await?;
                self.draw_view(&caller, d).await
            }
            .await,
        )
    }

    async fn get_draw_record(
        &self,
        request: Request<pb::GetDrawRecordRequest>,
    ) -> Result<Response<pb::DrawRecord>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let id = draw_id(&request.get_ref().name)?;
                caller.require(&DRAW_READERS)?;
                self.draw_record(&id).await
            }
            .await,
        )
    }

    async fn list_draws(
        &self,
        request: Request<pb::ListDrawsRequest>,
    ) -> Result<Response<pb::ListDrawsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let query = DrawQuery::try_from(request.into_inner())?;
                caller.require(&DRAW_FINDERS)?;
                self.draw_page(&caller, query).await
            }
            .await,
        )
    }

    async fn replace_expert(
        &self,
        request: Request<pb::ReplaceExpertRequest>,
    ) -> Result<Response<pb::Draw>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let replacement = PanelReplacement::try_from(request.into_inner())?;
                // Review scheduling owns its panels: office replaces a member there
                // (ReplacePanelMember), so the registry and scheduling never disagree.
                caller.require(&[Role::Service])?;
                let d = self.replace_on_panel(&caller, replacement).await?;
                self.draw_view(&caller, d).await
            }
            .await,
        )
    }

    async fn cancel_draw(
        &self,
        request: Request<pb::CancelDrawRequest>,
    ) -> Result<Response<pb::Draw>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let cancel = DrawCancel::try_from(request.into_inner())?;
                caller.require(&DRAW_RUNNERS)?;
                let d = self.call_off_draw(cancel).await?;
                self.draw_view(&caller, d).await
            }
            .await,
        )
    }

    async fn record_review_service(
        &self,
        request: Request<pb::RecordReviewServiceRequest>,
    ) -> Result<Response<pb::Expert>, Status> {
        let caller = Caller::from_request(&request)?;
        // Before a kept answer is given: a retry is the caller's too.
        caller.require(&[Role::Service])?;
        let once = Once::new(
            &caller,
            "RecordReviewService",
            &request.get_ref().request_id,
            request.get_ref(),
        )?;
        respond(
            once.run(self.db(), async {
                let service = ReviewService::try_from(request.into_inner())?;
                // Only review scheduling, whose reviews they are: office rates through it, and
                // no one else can pre-empt a review's record with a rating of their own.
                self.count_review_service(&caller, service).await
            })
            .await,
        )
    }

    async fn record_review_override(
        &self,
        request: Request<pb::RecordReviewOverrideRequest>,
    ) -> Result<Response<pb::RecordReviewOverrideResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        // Before a kept answer is given: a retry is the caller's too.
        caller.require(&[Role::Service])?;
        let once = Once::new(
            &caller,
            "RecordReviewOverride",
            &request.get_ref().request_id,
            request.get_ref(),
        )?;
        respond(
            once.run(self.db(), async {
                let outcome_override = OutcomeOverride::try_from(request.into_inner())?;
                self.log_outcome_override(outcome_override).await
            })
            .await,
        )
    }

    async fn list_read_events(
        &self,
        request: Request<govit_proto::common::v1::ListReadEventsRequest>,
    ) -> Result<Response<govit_proto::common::v1::ListReadEventsResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(govit_platform::reads::list(&self.store.db, &caller, request.get_ref()).await)
    }

    async fn get_log_head(
        &self,
        request: Request<pb::GetLogHeadRequest>,
    ) -> Result<Response<pb::LogHead>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                caller.require(&LOG_READERS)?;
                self.signed_head().await
            }
            .await,
        )
    }

    async fn list_log_entries(
        &self,
        request: Request<pb::ListLogEntriesRequest>,
    ) -> Result<Response<pb::ListLogEntriesResponse>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                let query = EntriesQuery::try_from(request.into_inner())?;
                caller.require(&LOG_READERS)?;
                self.entry_page(query).await
            }
            .await,
        )
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::InclusionProof>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                caller.require(&LOG_READERS)?;
                self.inclusion(request.into_inner()).await
            }
            .await,
        )
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::ConsistencyProof>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(
            async {
                caller.require(&LOG_READERS)?;
                self.consistency(request.into_inner()).await
            }
            .await,
        )
    }

    async fn get_log_entry(
        &self,
        request: Request<pb::GetLogEntryRequest>,
    ) -> Result<Response<pb::LogEntry>, Status> {
        let caller = Caller::from_request(&request)?;
        caller.require(&LOG_READERS)?;
        respond(self.log_entry(request.get_ref().index).await)
    }

    async fn get_read_event(
        &self,
        request: Request<govit_proto::common::v1::GetReadEventRequest>,
    ) -> Result<Response<govit_proto::common::v1::ReadEvent>, Status> {
        let caller = Caller::from_request(&request)?;
        respond(govit_platform::reads::get(&self.store.db, &caller, &request.get_ref().name).await)
    }
}
